"""Property-based tests (hypothesis) over every public op family.

1. Each compiled backend matches the float64 reference within the tolerance rule (opinfo.py) on
   drawn shapes (odd, small, empty, 0-d, and a few sizes at the kernels' parallel cut-offs), memory
   layouts (non-contiguous, Fortran order, negative strides, read-only), dtypes, parameters,
   thread counts and `out=` buffers (new, strided, or the input itself for elementwise ops).
2. Bad input (wrong dtypes, None, ragged or object arrays, wrong shapes, mixed dtypes, parameters
   of the wrong type, out of range, NaN or huge) gives TypeError or ValueError whose message names
   the op and the offending argument; a changed shape the op accepts gives the reference's result.

Values come from a drawn NumPy seed (fast, and every example stays small); hypothesis draws and
shrinks the shapes, parameters, layouts, backend and threads. Budgets: the profiles in conftest.py
("ci" by default, HYPOTHESIS_PROFILE=long for the long run).
"""
import fractions
import inspect
import re
from typing import NamedTuple

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, note, settings, strategies as st  # noqa: E402

import fastnn  # noqa: E402
from conftest import COMPILED, THREADS  # noqa: E402
from opinfo import OPS, as_tuple, assert_within, check_op, exact_and_bounds, snapshot, special  # noqa: E402


class Case(NamedTuple):
    """op(*args, **kwargs) on arrays of one float dtype; args holds arrays (None where optional)
    and adam_step's step, kwargs every other parameter (the error models read them by name)."""
    op: str
    args: tuple
    kwargs: dict
    dtype: type


# --- values --------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.float32, np.float64])


def reals(low, high):
    """Parameters float32 represents: a float32 kernel rounds them, and one that rounds to 0 (lr =
    1e-100) or moves a kink (a margin under ties) changes the result itself (0 * inf is NaN where
    the float64 oracle gives inf)."""
    return st.floats(float(np.float32(low)), float(np.float32(high)), allow_subnormal=False, width=32)


SCALES = st.sampled_from([1.0, 0.01, 3.0, 30.0])


@st.composite
def rngs(draw):
    return np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))


def randn(rng, shape, dtype, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)


NONFINITE = np.array([np.nan, np.inf, -np.inf])


def with_specials(rng, a, values=None):
    """a with `values` (default: NaN, infinities, signed zeros, huge and tiny values) at random
    positions."""
    a = np.array(a)
    if a.size:
        flat = a.reshape(-1)
        values = special(a.dtype) if values is None else values.astype(a.dtype)
        where = rng.integers(0, flat.size, max(1, flat.size // 8))
        flat[where] = values[rng.integers(0, values.size, where.size)]
    return a


# Sizes around the kernels' cut-offs: serial below 8192 (transcendental) / 65536 elements, work
# items of 8192 (optim) / 16384 (activations) elements.
CUTOFF_SIZES = [8191, 8193, 16383, 16385, 65535, 65536, 65537, 70001]


@st.composite
def any_shapes(draw, max_rank=4):
    """Small shapes of rank 0..max_rank with odd and zero sizes; now and then a long 1-d one."""
    if draw(st.integers(0, 9), label="long?") == 9:
        return (draw(st.sampled_from(CUTOFF_SIZES)),)
    return tuple(draw(st.lists(st.integers(0, 7), max_size=max_rank), label="shape"))


# --- activations ---------------------------------------------------------------------------

SLOPES = reals(-2, 2)
UNARY = {"relu": {}, "leaky_relu": {"negative_slope": SLOPES}, "sigmoid": {}, "tanh": {},
         "gelu": {"approximate": st.sampled_from(["none", "tanh"])}, "silu": {}, "elu": {"alpha": reals(-2, 3)}}
FROM_OUTPUT = {"sigmoid": lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype), "tanh": np.tanh}


@st.composite
def activation_cases(draw, op):
    dtype, rng, scale = draw(DTYPES), draw(rngs()), draw(SCALES)
    base = op.removesuffix("_backward")
    kwargs = {k: draw(v, label=k) for k, v in UNARY[base].items()}
    x = randn(rng, draw(any_shapes()), dtype, scale)
    if draw(st.booleans(), label="special values"):
        x = with_specials(rng, x)
    if op == base:
        return Case(op, (x,), kwargs, dtype)
    if base in FROM_OUTPUT:
        with np.errstate(all="ignore"):
            x = FROM_OUTPUT[base](x)  # the backward takes y = f(x)
    return Case(op, (randn(rng, x.shape, dtype), x), kwargs, dtype)


@st.composite
def prelu_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    shape = draw(any_shapes())
    per_channel = len(shape) >= 2 and draw(st.booleans(), label="a per channel")
    x = randn(rng, shape, dtype, draw(SCALES))
    if draw(st.booleans(), label="special values"):
        x = with_specials(rng, x)
    a = randn(rng, (shape[1],) if per_channel else (), dtype)
    args = (x, a) if op == "prelu" else (randn(rng, shape, dtype), x, a)
    return Case(op, args, {}, dtype)


@st.composite
def maxout_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    shape = list(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4), label="shape"))
    axis = draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    pieces = draw(st.integers(1, 4), label="pieces")
    units = draw(st.integers(0, 3), label="units")
    shape[axis] = units * pieces
    x = randn(rng, shape, dtype)
    if draw(st.booleans(), label="ties"):
        x = np.round(x)  # equal pieces: the first maximum wins
    if draw(st.booleans(), label="special values"):
        x = with_specials(rng, x)
    kwargs = {"pieces": pieces, "axis": axis}
    if op == "maxout":
        return Case(op, (x,), kwargs, dtype)
    shape[axis] = units
    return Case(op, (randn(rng, shape, dtype), x), kwargs, dtype)


# --- linear and losses ---------------------------------------------------------------------

@st.composite
def linear_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    if draw(st.integers(0, 9), label="GEMM-sized?") == 9:  # >= 2^20 multiply-adds: split over threads
        n, features, d_out = draw(st.sampled_from([(64, (129,), 130), (300, (7, 9), 67), (5, (2051,), 131)]))
    else:
        n = draw(st.integers(0, 6), label="N")
        features = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3), label="x.shape[1:]"))
        d_out = draw(st.integers(0, 7), label="D_out")
    d_in = int(np.prod(features))
    x = randn(rng, (n,) + features, dtype)
    if draw(st.integers(0, 4), label="NaN/inf?") == 4:  # only non-finite: a sum's overflow depends on its order
        x = with_specials(rng, x, NONFINITE)
    w = randn(rng, (d_in, d_out), dtype, 1 / np.sqrt(max(d_in, 1)))
    if op == "linear":
        # Kernel bug (Cython linear, b None, no input features: IndexError at w[0]): always a bias
        # when D_in = 0 until it is fixed.
        bias = d_in == 0 or draw(st.booleans(), label="bias")
        b = randn(rng, (d_out,), dtype) if bias else None
        return Case(op, (x, w, b), {}, dtype)
    kwargs = {"input_grad": draw(st.booleans(), label="input_grad")}
    return Case(op, (randn(rng, (n, d_out), dtype), x, w), kwargs, dtype)


LABEL_DTYPES = st.sampled_from([np.int64, np.int32, np.int16, np.uint8, np.uint64, np.int8])


@st.composite
def loss_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    if draw(st.integers(0, 9), label="wide?") == 9:
        n, classes = 33, 1000
    else:
        n, classes = draw(st.integers(1, 9), label="N"), draw(st.integers(1, 12), label="classes")
    scores = randn(rng, (n, classes), dtype, draw(st.sampled_from([1.0, 3.0, 100.0])))
    if draw(st.booleans(), label="ties"):
        scores = np.round(scores)  # margins exactly at the kink
    # NaN and +inf in softmax_cross_entropy (-inf, a zero probability, is beyond its error model).
    # NaN and +-inf in hinge_loss: a NaN margin (from NaN or inf - inf) is no violation in every
    # backend, as in torch's multi_margin_loss.
    if draw(st.integers(0, 4), label="NaN/inf?") == 4:
        scores = with_specials(rng, scores, NONFINITE[:2] if op == "softmax_cross_entropy" else NONFINITE)
    label_dtype = draw(LABEL_DTYPES)
    if classes > np.iinfo(label_dtype).max:
        label_dtype = np.int64
    labels = rng.integers(0, classes, n).astype(label_dtype)
    kwargs = {"margin": draw(reals(-1, 3), label="margin")} if op == "hinge_loss" else {}
    return Case(op, (scores, labels), kwargs, dtype)


# --- convolution and pooling ---------------------------------------------------------------

def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _int_or_pair(draw, values, label):
    """An (h, w) pair of draws, passed as an int when both are equal and the draw says so."""
    pair = (draw(values, label=label + "_h"), draw(values, label=label + "_w"))
    if pair[0] == pair[1] and draw(st.booleans(), label=label + " as int"):
        return pair, pair[0]
    return pair, pair


# The compiled backends' fast paths (N, C, F, H, W, KH, KW, params): Winograd 3x3 (Numba: >= 96
# output tiles, >= 4 channels; Cython: C >= 8, F >= 16, 6x6 outputs), 1x1 GEMM, Cython's direct
# kernel (float32, C <= 4, 7x7, rows of >= 32 outputs, F a multiple of 4).
FAST_CONVS = [
    (3, 4, 5, 24, 23, 3, 3, {"padding": 1}), (2, 8, 16, 9, 11, 3, 3, {"padding": 2}),
    (2, 9, 17, 6, 7, 3, 3, {}), (2, 8, 6, 5, 7, 1, 1, {}), (1, 3, 8, 9, 38, 7, 7, {"padding": 3}),
    (2, 3, 4, 11, 75, 7, 7, {"stride": 2, "padding": 3}), (1, 2, 4, 7, 40, 7, 9, {"padding": (0, 4)}),
]


@st.composite
def conv_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    if draw(st.integers(0, 5), label="fast path?") == 5:
        n, c, f, h, wd, kh, kw, kwargs = draw(st.sampled_from(FAST_CONVS))
        groups = 1
        kwargs = dict(kwargs)
        stride, padding, dilation = ((v, v) if isinstance(v, int) else v for v in
                                     (kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1)))
    else:
        groups = draw(st.integers(1, 3), label="groups")
        c = groups * draw(st.integers(1, 3), label="channels per group")
        f = groups * draw(st.integers(1, 3), label="filters per group")
        kh, kw = draw(st.integers(1, 4), label="KH"), draw(st.integers(1, 4), label="KW")
        stride, s = _int_or_pair(draw, st.integers(1, 3), "stride")
        padding, p = _int_or_pair(draw, st.integers(0, 3), "padding")
        dilation, d = _int_or_pair(draw, st.integers(1, 3), "dilation")
        # torch's strings: "valid" (0) and, at stride 1, "same" (any parity of dilation * (k - 1))
        strings = ["valid"] + (["same"] * 2 if stride == (1, 1) else [])
        mode = draw(st.sampled_from(["numbers"] + strings), label="padding")
        if mode != "numbers":
            padding, p = (0, 0), mode
        n = draw(st.integers(0, 3), label="N")
        low = [max(0, dil * (k - 1) + 1 - 2 * pad) for k, pad, dil in zip((kh, kw), padding, dilation)]
        low = [1, 1] if mode == "same" else low
        h = draw(st.integers(low[0], low[0] + 6), label="H")
        wd = draw(st.integers(low[1], low[1] + 6), label="W")
        kwargs = {"stride": s, "padding": p, "dilation": d, "groups": groups}
    unbatched = n == 1 and draw(st.booleans(), label="unbatched")  # (C, H, W): a batch of one
    x = randn(rng, (c, h, wd) if unbatched else (n, c, h, wd), dtype)
    # Only non-finite values (a sum's overflow depends on its order).
    if draw(st.integers(0, 4), label="NaN/inf?") == 4:
        x = with_specials(rng, x, NONFINITE)
    w = randn(rng, (f, c // groups, kh, kw), dtype, 1 / np.sqrt(c // groups * kh * kw))
    if op in ("conv2d", "conv2d_relu"):
        b = randn(rng, (f,), dtype) if draw(st.booleans(), label="bias") else None
        return Case(op, (x, w, b), kwargs, dtype)
    if kwargs.get("padding") == "same":
        ho, wo = h, wd
    else:
        ho, wo = (out_size(*a) for a in zip((h, wd), (kh, kw), stride, padding, dilation))
    x = (x / np.sqrt(max(1, n * ho * wo))).astype(dtype)  # dw of order 1, as dx
    kwargs["input_grad"] = draw(st.booleans(), label="input_grad")
    dy = randn(rng, (f, ho, wo) if unbatched else (n, f, ho, wo), dtype)
    return Case(op, (dy, x, w), kwargs, dtype)


@st.composite
def pool_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    kernel, k = _int_or_pair(draw, st.integers(1, 4), "kernel_size")
    if draw(st.booleans(), label="stride None"):
        stride, s = kernel, None
    else:
        stride, s = _int_or_pair(draw, st.integers(1, 3), "stride")
    padding, p = _int_or_pair(draw, st.integers(0, 2), "padding")
    padding = tuple(min(pad, kk // 2) for pad, kk in zip(padding, kernel))  # PyTorch's limit
    p = padding if isinstance(p, tuple) or padding[0] != padding[1] else padding[0]
    kwargs = {"kernel_size": k, "stride": s, "padding": p}
    dilation, ceil_mode = (1, 1), draw(st.booleans(), label="ceil_mode")
    if ceil_mode:
        kwargs["ceil_mode"] = True
    if op.startswith("max_pool2d"):
        dilation, d = _int_or_pair(draw, st.integers(1, 3), "dilation")
        if dilation != (1, 1):
            kwargs["dilation"] = d
        if op == "max_pool2d" and draw(st.booleans(), label="return_indices"):
            kwargs["return_indices"] = True
    else:
        if draw(st.booleans(), label="count_include_pad=False"):
            kwargs["count_include_pad"] = False
        if draw(st.booleans(), label="divisor_override"):
            kwargs["divisor_override"] = draw(st.sampled_from([1, 3, -2]), label="divisor")
    n, c = draw(st.integers(0, 2), label="N"), draw(st.integers(1, 3), label="C")
    unbatched = draw(st.booleans(), label="unbatched")
    # at least one window, and planes no narrower than the dilation (every window then holds x)
    low = [max(1, dd, dd * (kk - 1) + 1 - 2 * pad) for kk, pad, dd in zip(kernel, padding, dilation)]
    h = draw(st.integers(low[0], low[0] + 7), label="H")
    wd = draw(st.integers(low[1], low[1] + 7), label="W")
    lead = (c,) if unbatched else (n, c)
    x = randn(rng, lead + (h, wd), dtype, 3)
    if draw(st.booleans(), label="ties"):
        x = np.round(x)  # many equal maxima: the first in row-major order wins
    if OPS[op].special_values and draw(st.booleans(), label="special values"):
        x = with_specials(rng, x)
    if op.endswith("_backward"):
        ho, wo = (pool_out_size(size, kk, ss, pad, dd, ceil_mode)
                  for size, kk, ss, pad, dd in zip((h, wd), kernel, stride, padding, dilation))
        return Case(op, (randn(rng, lead + (ho, wo), dtype), x), kwargs, dtype)
    return Case(op, (x,), kwargs, dtype)


def pool_out_size(size, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    return out - 1 if ceil_mode and (out - 1) * s >= size + p else out


# --- batch normalization -------------------------------------------------------------------

@st.composite
def batchnorm_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    training = draw(st.booleans(), label="training")
    if draw(st.booleans(), label="2-d"):
        # columns in blocks of 1024 (Numba)
        shape = (draw(st.integers(0, 9), label="N"), draw(st.sampled_from([1, 2, 3, 5, 1023, 1025]), label="D"))
    else:
        # planes of >= 64 values take the plane path (Numba)
        shape = (draw(st.integers(0, 3), label="N"), draw(st.integers(0, 4), label="C"),
                 draw(st.sampled_from([1, 2, 3, 8, 9]), label="H"), draw(st.sampled_from([1, 2, 5, 8, 9]), label="W"))
    count = shape[0] * int(np.prod(shape[2:]))
    if training and count < 2:
        training = False  # training needs two values per channel (a ValueError: test_bad_input)
    channels = shape[1]
    x = randn(rng, shape, dtype, draw(st.sampled_from([0.5, 2.0]))) + dtype(draw(st.sampled_from([0.0, 0.5, 30.0])))
    if draw(st.integers(0, 4), label="NaN/inf?") == 4:
        x = with_specials(rng, x, NONFINITE)
    affine = draw(st.booleans(), label="affine")
    gamma, beta = (randn(rng, (channels,), dtype), randn(rng, (channels,), dtype)) if affine else (None, None)
    running = not training or draw(st.booleans(), label="running stats")
    stats = (randn(rng, (channels,), dtype), rng.uniform(0.5, 2, channels).astype(dtype)) if running else (None, None)
    kwargs = {"training": training, "momentum": draw(reals(0, 1), label="momentum"),
              "eps": draw(st.sampled_from([1e-5, 1e-3, 0.5]), label="eps")}
    if op in ("batch_norm", "batch_norm_relu"):
        return Case(op, (x, gamma, beta) + stats, kwargs, dtype)
    forward = fastnn.batch_norm_relu if op == "batch_norm_relu_backward" else fastnn.batch_norm
    with fastnn.use_backend("numpy"), np.errstate(all="ignore"):  # NaN/inf in x
        y, mean, invstd = forward(x, gamma, beta, *(None if s is None else s.copy() for s in stats), **kwargs)
    dy = randn(rng, shape, dtype)
    head = (dy, y, x) if op == "batch_norm_relu_backward" else (dy, x)
    return Case(op, head + (gamma, mean, invstd), {"training": training}, dtype)


# --- optimizer steps -----------------------------------------------------------------------

RATES = reals(0, 1)
DECAYS = st.one_of(st.just(0.0), reals(0, 0.1))


def epsilons(dtype):
    """eps = 0 only in float64: in float32 g*g underflows to 0 for |g| < 2**-75 (the special values
    hold 1e-30), so with alpha = 0 g / sqrt(0) is inf where the float64 result is finite."""
    return st.sampled_from([1e-8, 1e-10, 1e-3] + ([0.0] if dtype == np.float64 else []))


@st.composite
def optim_cases(draw, op):
    dtype, rng = draw(DTYPES), draw(rngs())
    shape = draw(any_shapes())
    p, g = randn(rng, shape, dtype), randn(rng, shape, dtype)
    if draw(st.booleans(), label="special grad"):
        g = with_specials(rng, g)

    def state(positive=False):
        s = randn(rng, shape, dtype)
        return np.abs(s, out=s) if positive else s  # 0-d arrays stay arrays

    lr = draw(RATES, label="lr")
    if op == "sgd_step":
        momentum = draw(st.one_of(st.just(0.0), reals(0, 0.99)), label="momentum")
        kwargs = {"lr": lr, "momentum": momentum, "nesterov": momentum > 0 and draw(st.booleans(), label="nesterov"),
                  "weight_decay": draw(DECAYS, label="weight_decay")}
        return Case(op, (p, g, state() if momentum else None), kwargs, dtype)
    if op == "adagrad_step":
        return Case(op, (p, g, state(True)), {"lr": lr, "eps": draw(epsilons(dtype), label="eps")}, dtype)
    if op == "rmsprop_step":
        kwargs = {"lr": lr, "alpha": draw(reals(0, 1), label="alpha"), "eps": draw(epsilons(dtype), label="eps")}
        return Case(op, (p, g, state(True)), kwargs, dtype)
    step = draw(st.integers(1, 10 ** 6), label="step")
    kwargs = {"lr": lr, "beta1": draw(reals(0, 0.99), label="beta1"),
              # beta2 >= 0.9: with less history in v, the step m / sqrt(v) of a cancelling g + wd * p
              # is ill-conditioned (the NumPy reference in float32 misses float64 by 4e4x the rule:
              # opinfo's error model for adam_step does not cover it; no backend is wrong there).
              "beta2": draw(reals(0.9, 0.999), label="beta2"),
              "eps": draw(st.sampled_from([1e-8, 1e-10, 1e-3]), label="eps"),
              "weight_decay": draw(DECAYS, label="weight_decay")}
    return Case(op, (p, g, state(), state(True), step), kwargs, dtype)


FAMILY_CASES = {"activations": activation_cases, "linear": linear_cases, "losses": loss_cases, "conv": conv_cases,
                "pool": pool_cases, "batchnorm": batchnorm_cases, "optim": optim_cases}


def cases(op):
    if op.startswith("prelu"):
        return prelu_cases(op)
    if op.startswith("maxout"):
        return maxout_cases(op)
    return FAMILY_CASES[fastnn._ops.FAMILY_OF[op]](op)


# --- 1. compiled backends against the reference --------------------------------------------

def _fortran(a):
    return np.asfortranarray(a) if a.ndim else a.copy()  # asfortranarray makes 0-d arrays 1-d


def _strided(a):
    """Every other element along each axis of a larger array."""
    if not a.ndim:
        return a.copy()
    wide = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = wide[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _reversed(a):
    """Negative strides along every axis."""
    if not a.ndim:
        return a.copy()
    flip = tuple(slice(None, None, -1) for _ in a.shape)
    return a[flip].copy()[flip]


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {"C": lambda a: a.copy(), "F": _fortran, "strided": _strided, "reversed": _reversed, "readonly": _readonly}
WRITABLE_LAYOUTS = ["C", "F", "strided", "reversed"]  # arrays an op updates in place
# Updated in place and required contiguous (a ValueError otherwise): batch norm's running stats.
CONTIGUOUS_IN_PLACE = {"batch_norm": (3, 4), "batch_norm_relu": (3, 4)}
# Elementwise ops: `out=` may be an input itself (API.md), any of the output's shape.
ELEMENTWISE = {op for op in OPS if fastnn._ops.FAMILY_OF[op] == "activations" and not op.startswith("maxout")}


def _with_threads(n, fn):
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        return fn()
    finally:
        fastnn.set_num_threads(previous)


def _layouts(data, case):
    """A drawn layout per array argument."""
    info = OPS[case.op]
    layouts = []
    for i, a in enumerate(case.args):
        if not isinstance(a, np.ndarray):
            layouts.append(None)
        elif i in CONTIGUOUS_IN_PLACE.get(case.op, ()):
            layouts.append("C")
        else:
            choices = WRITABLE_LAYOUTS if i in info.in_place else list(LAYOUTS)
            layouts.append(data.draw(st.sampled_from(choices), label=f"layout of arg {i}"))
    return layouts


def check_against_reference(data, case):
    """The case on a drawn backend, thread count, layout per argument and out= buffer: outputs and
    in-place arguments within the rule of the float64 reference (check_op), inputs unmodified."""
    op, info, dtype = case.op, OPS[case.op], case.dtype
    backend = data.draw(st.sampled_from(COMPILED), label="backend")
    threads = data.draw(st.sampled_from(THREADS), label="threads")
    layouts = _layouts(data, case)
    args = [LAYOUTS[layout](a) if layout else a for a, layout in zip(case.args, layouts)]
    kwargs = dict(case.kwargs)
    exact, exact_args, bounds = exact_and_bounds(op, args, kwargs, dtype)
    out_modes = ["none"] + (["new", "strided"] if info.supports_out else [])
    if op in ELEMENTWISE and info.supports_out:  # prelu's a is no elementwise input
        out_modes += [f"arg {i}" for i, a in enumerate(args) if a.shape == exact[0].shape and _names(op)[i] != "a"]
    out_mode = data.draw(st.sampled_from(out_modes), label="out")
    out = alias = None
    if out_mode in ("new", "strided"):
        out = np.full(exact[0].shape, 7, dtype)
        out = _strided(out) if out_mode == "strided" and out.ndim else out
    elif out_mode != "none":  # in place, in the argument's layout
        alias = int(out_mode.split()[1])
        if not args[alias].flags.writeable:
            args[alias] = np.array(args[alias])
        out = args[alias]
    if out is not None:
        kwargs["out"] = out
    before = snapshot(args)
    what = f"{op}[{backend}, {np.dtype(dtype).name}, {threads} threads, layouts {layouts}, out {out_mode}]"
    note(what)

    def run():
        with fastnn.use_backend(backend), np.errstate(all="raise"):  # no floating-point warnings
            return getattr(fastnn, op)(*args, **kwargs)

    actual = _with_threads(threads, run)
    if out is not None:
        assert as_tuple(actual)[0] is out, f"{what}: the result is not out"
    check_op(op, actual, before, case.kwargs, dtype, what)
    for i, (a, b) in enumerate(zip(args, before)):
        if not isinstance(a, np.ndarray) or i == alias:
            continue
        if i in info.in_place:
            assert_within(a, exact_args[i], bounds[f"arg{i}"], f"{what}: in-place arg {i}")
        else:
            assert np.array_equal(a, b, equal_nan=True), f"{what}: input {i} was modified"


def _ops_of(family, prefixes=None):
    return sorted(op for op in fastnn._ops.FAMILIES[family] if prefixes is None or op.startswith(prefixes))


GROUPS = {
    "activations": _ops_of("activations", ("relu", "leaky", "elu", "sigmoid", "tanh", "gelu", "silu")),
    "prelu_maxout": _ops_of("activations", ("prelu", "maxout")),
    **{family: _ops_of(family) for family in ("linear", "losses", "conv", "pool", "batchnorm", "optim")},
}


def test_groups_cover_every_op():
    """Every public op is drawn (a new op needs a strategy here)."""
    assert sorted(op for ops in GROUPS.values() for op in ops) == sorted(fastnn._ops.FAMILY_OF) == sorted(OPS)


@pytest.mark.parametrize("group", GROUPS)
@given(data=st.data())
def test_matches_reference(group, data):
    """Every compiled backend matches the float64 reference on drawn inputs of the group's ops."""
    op = data.draw(st.sampled_from(GROUPS[group]), label="op")
    check_against_reference(data, data.draw(cases(op), label="case"))


# --- 2. bad input: TypeError or ValueError naming the op and the argument ------------------

# Arguments that may be None (then None is no bad value for them); pooling's stride too.
OPTIONAL = {"linear": {"b"}, "conv2d": {"b"}, "conv2d_relu": {"b"},
            "batch_norm": {"gamma", "beta", "running_mean", "running_var"},
            "batch_norm_relu": {"gamma", "beta", "running_mean", "running_var"}, "batch_norm_backward": {"gamma"},
            "batch_norm_relu_backward": {"gamma"}, "sgd_step": {"momentum_buffer"},
            **{op: {"stride", "divisor_override"} for op in fastnn._ops.FAMILIES["pool"]}}


def _names(op):
    return list(inspect.signature(getattr(fastnn, op)).parameters)


def _bad_arrays(shape):
    """(label, factory) of values no float array argument accepts."""
    return [
        ("None", lambda: None), ("strings", lambda: ["a", "b"]), ("a string", lambda: "abc"),
        ("object array", lambda: np.array([1.0, None], dtype=object)), ("dict", lambda: {"a": 1}),
        ("ragged", lambda: [[1.0], [1.0, 2.0]]), ("huge int", lambda: 2 ** 70),
        ("complex", lambda: np.zeros(shape, np.complex128)), ("int", lambda: np.zeros(shape, np.int64)),
        ("int32", lambda: np.ones(shape, np.int32)), ("bool", lambda: np.zeros(shape, bool)),
        ("float16", lambda: np.zeros(shape, np.float16)), ("longdouble", lambda: np.zeros(shape, np.longdouble)),
        ("structured", lambda: np.zeros(shape, [("a", np.float64)])), ("datetime", lambda: np.zeros(shape, "M8[s]")),
    ]


def _bad_labels(shape):
    """(label, factory) of values integer labels refuse."""
    return [("None", lambda: None), ("floats", lambda: np.zeros(shape)), ("bool", lambda: np.zeros(shape, bool)),
            ("complex", lambda: np.zeros(shape, complex)), ("object", lambda: np.array([0, None], object)),
            ("strings", lambda: ["a", "b"]), ("ragged", lambda: [[0], [0, 1]])]


def _mentions(message, name):
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def _outcome(fn, errors, op, name, what, must_fail):
    """fn() returns, or raises one of `errors` whose message starts with the op and names `name`;
    never another exception. Returns (succeeded, result)."""
    try:
        result = fn()
    except errors as error:
        message = str(error)
        assert message.startswith(f"{op}:"), f"{what}: message does not start with the op: {message!r}"
        assert _mentions(message, name), f"{what}: message does not name {name!r}: {message!r}"
        return False, None
    assert not must_fail, f"{what}: no error raised"
    return True, result


def _call(op, args, kwargs, backend):
    def run():
        with fastnn.use_backend(backend), np.errstate(all="raise"):
            return getattr(fastnn, op)(*args, **kwargs)
    return run


def _bad_array(data, case, args, kwargs, backend):
    names = _names(case.op)
    i = data.draw(st.sampled_from([i for i, a in enumerate(args) if isinstance(a, np.ndarray)]), label="argument")
    bad = _bad_labels(args[i].shape) if args[i].dtype.kind in "iu" else _bad_arrays(args[i].shape)
    bad = [b for b in bad if b[0] != "None" or names[i] not in OPTIONAL.get(case.op, ())]
    label, make = data.draw(st.sampled_from(bad), label="bad value")
    args[i] = make()
    what = f"{case.op} with {names[i]} = {label}"
    _outcome(_call(case.op, args, kwargs, backend), TypeError, case.op, names[i], what, must_fail=True)


def _mixed_dtypes(data, case, args, kwargs, backend):
    names = _names(case.op)
    floats = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    i = data.draw(st.sampled_from(floats[1:]), label="argument")
    other = np.float32 if case.dtype == np.float64 else np.float64
    with np.errstate(over="ignore"):  # huge float64 values become float32 infinities
        args[i] = args[i].astype(other)
    what = f"{case.op} with {names[i]} {np.dtype(other).name}"
    _outcome(_call(case.op, args, kwargs, backend), TypeError, case.op, names[i], what, must_fail=True)


def _changed_shape(data, case, args, kwargs, backend):
    """An axis added, dropped or resized: a ValueError naming the argument, or (a shape the op
    accepts too) the reference's result."""
    names = _names(case.op)
    i = data.draw(st.sampled_from([i for i, a in enumerate(args) if isinstance(a, np.ndarray)]), label="argument")
    shape = list(args[i].shape)
    how = data.draw(st.sampled_from(["add axis", "drop axis", "resize axis"] if shape else ["add axis"]), label="how")
    axis = data.draw(st.integers(0, len(shape) - (how != "add axis")), label="axis")
    if how == "add axis":
        shape.insert(axis, data.draw(st.integers(1, 2), label="size"))
    elif how == "drop axis":
        del shape[axis]
    else:
        shape[axis] = data.draw(st.sampled_from(sorted({max(0, shape[axis] - 1), shape[axis] + 1, 0} - {shape[axis]})),
                                label="size")
    rng = np.random.default_rng(0)
    new = rng.standard_normal(shape) if args[i].dtype.kind == "f" else rng.integers(0, 1, shape)
    args[i] = new.astype(args[i].dtype)
    before = snapshot(args)
    what = f"{case.op} with {names[i]} of shape {tuple(shape)} (was {case.args[i].shape})"
    ok, result = _outcome(_call(case.op, args, kwargs, backend), ValueError, case.op, names[i], what, must_fail=False)
    if ok:
        check_op(case.op, result, before, kwargs, case.dtype, what)


# Parameter values that are always wrong, and values that may be valid (then the call may succeed).
PAIR_PARAMS = {"stride", "padding", "dilation", "kernel_size"}
INT_PARAMS = PAIR_PARAMS | {"groups", "pieces", "axis", "step", "divisor_override"}
REAL_PARAMS = {"negative_slope", "alpha", "margin", "momentum", "eps", "lr", "beta1", "beta2", "weight_decay"}
FLAG_PARAMS = {"training", "nesterov", "input_grad", "ceil_mode", "return_indices", "count_include_pad"}
CHOICE_PARAMS = {"approximate": ["none", "tanh"]}  # a string from a fixed set
BAD_CHOICES = [None, "", "erf", "TANH", b"tanh", 1, 0.5, np.str_("exact"), ["tanh"]]
BAD_INTS = [None, 1.5, 2.0, np.float64(2), "2", True, np.bool_(False), 1j, float("nan"), float("inf"), 2 ** 70,
            -2 ** 70, 2 ** 63, np.array([1, 2]), [1, 2, 3], (1, 2 ** 70), (1.0, 1), fractions.Fraction(1, 2)]
MAYBE_INTS = [0, -1, 1, 3, 2 ** 31 - 1, 2 ** 31, np.int64(2), np.uint8(1), (1, 2), (2, 1), [1, 1], np.array(2)]
BAD_REALS = [None, "0.1", b"1", 1j, np.complex128(1), float("nan"), float("inf"), -float("inf"), np.float32("nan"),
             2 ** 2000, -2 ** 2000, np.array([0.1, 0.2]), [0.1], (0.1,), True, np.bool_(True), {}]
MAYBE_REALS = [-1.0, 0.0, 1.0, 1.5, -1e-300, 1e300, np.float32(0.5), np.array(0.25), fractions.Fraction(1, 3), 2,
               10 ** 20]
BAD_FLAGS = [np.array([True, False]), np.zeros((2, 2)), np.array([])]
MAYBE_FLAGS = [0, 1, np.bool_(True), np.array(True), np.array([1])[0], None]


def _params_of(case):
    """{parameter name: position in args, or None for a keyword}."""
    names = _names(case.op)
    positional = {names[i]: i for i, a in enumerate(case.args) if isinstance(a, int)}  # adam_step's step
    return {**{name: None for name in case.kwargs}, **positional}


def _bad_parameter(data, case, args, kwargs, backend):
    params = _params_of(case)
    name = data.draw(st.sampled_from(sorted(params)), label="parameter")
    if name in INT_PARAMS:
        pair = name in PAIR_PARAMS  # an (h, w) pair is valid there, a tuple is wrong elsewhere
        bad = [v for v in BAD_INTS if pair or not isinstance(v, tuple)]
        maybe = [v for v in MAYBE_INTS if pair or not isinstance(v, (tuple, list))]
    elif name in REAL_PARAMS:
        bad, maybe = BAD_REALS, MAYBE_REALS
    elif name in CHOICE_PARAMS:
        bad, maybe = BAD_CHOICES, CHOICE_PARAMS[name]
    else:
        assert name in FLAG_PARAMS, f"{case.op}: parameter {name} has no bad values here"
        bad, maybe = BAD_FLAGS, MAYBE_FLAGS
    if name in OPTIONAL.get(case.op, ()):
        bad = [v for v in bad if v is not None]
    always_wrong = data.draw(st.booleans(), label="always wrong")
    value = data.draw(st.sampled_from(bad if always_wrong else maybe), label="value")
    if params[name] is None:
        kwargs[name] = value
    else:
        args[params[name]] = value
    # A success with such values is not compared: huge or odd values overflow float32 legitimately.
    _outcome(_call(case.op, args, kwargs, backend), (TypeError, ValueError), case.op, name,
             f"{case.op} with {name} = {value!r}", must_fail=always_wrong)


def _bad_out(data, case, args, kwargs, backend):
    shape = exact_and_bounds(case.op, args, kwargs, case.dtype)[0][0].shape
    other = np.float32 if case.dtype == np.float64 else np.float64
    label, out, error = data.draw(st.sampled_from([
        ("a list", [0.0], TypeError), ("other dtype", np.empty(shape, other), TypeError),
        ("int", np.empty(shape, np.int64), TypeError), ("wrong shape", np.empty(shape + (2,), case.dtype), ValueError),
        ("read-only", _readonly(np.empty(shape, case.dtype)), ValueError)]), label="out")
    what = f"{case.op} with out = {label}"
    _outcome(_call(case.op, args, {**kwargs, "out": out}, backend), error, case.op, "out", what, must_fail=True)


@settings(max_examples=5 * settings.default.max_examples)  # one test over every op and kind of input
@given(data=st.data())
def test_bad_input_gives_type_or_value_error_naming_the_argument(data):
    op = data.draw(st.sampled_from(sorted(OPS)), label="op")
    case = data.draw(cases(op), label="case")
    floats = [a for a in case.args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    kinds = [_bad_array, _changed_shape] + ([_mixed_dtypes] if len(floats) > 1 else [])
    kinds += ([_bad_parameter] if _params_of(case) else []) + ([_bad_out] if OPS[op].supports_out else [])
    corrupt = data.draw(st.sampled_from(kinds), label="bad input")
    backend = data.draw(st.sampled_from(COMPILED), label="backend")
    corrupt(data, case, list(case.args), dict(case.kwargs), backend)


@pytest.mark.parametrize("op", ["batch_norm", "batch_norm_relu"])
@pytest.mark.parametrize("shape", [(1, 3), (1, 2, 1, 1), (0, 3), (4, 2, 0, 3)])
def test_training_batch_norm_needs_two_values_per_channel(op, shape):
    """As PyTorch ("Expected more than 1 value per channel when training"); eval takes them."""
    x, c = np.ones(shape), shape[1]
    for backend in COMPILED:
        with fastnn.use_backend(backend):
            with pytest.raises(ValueError, match=rf"^{op}: expected more than 1 value per channel when training, "
                                                 rf"x has shape {re.escape(str(shape))}"):
                getattr(fastnn, op)(x, np.ones(c), np.zeros(c), np.zeros(c), np.ones(c))
            getattr(fastnn, op)(x, None, None, np.zeros(c), np.ones(c), training=False)


# --- the defects these properties found, pinned ------------------------------------------

def _first_sample(op):
    sample = OPS[op].samples(np.random.default_rng(5), np.float64)[0]
    names = _names(op)
    return dict(zip(names, sample.args)), sample.kwargs


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_array_argument_rejects_non_float_arrays(op):
    """None, strings, object, complex and ragged values: a TypeError naming op and argument, for
    every array argument (relu(None) raised AttributeError)."""
    named, kwargs = _first_sample(op)
    for name, value in named.items():
        if not isinstance(value, np.ndarray):
            continue
        bad = _bad_labels(value.shape) if value.dtype.kind in "iu" else _bad_arrays(value.shape)
        for label, make in bad:
            if label == "None" and name in OPTIONAL.get(op, ()):
                continue
            call = lambda: getattr(fastnn, op)(**{**named, name: make()}, **kwargs)  # noqa: E731
            _outcome(call, TypeError, op, name, f"{op} with {name} = {label}", must_fail=True)


X4, W4 = np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3))


@pytest.mark.parametrize("value", [2 ** 70, 2 ** 31, -2 ** 70])
@pytest.mark.parametrize("op, args, kwargs, name", [
    ("conv2d", (X4, W4), {}, "stride"), ("conv2d", (X4, W4), {}, "padding"), ("conv2d", (X4, W4), {}, "dilation"),
    ("conv2d", (X4, W4), {}, "groups"), ("max_pool2d", (X4,), {}, "kernel_size"),
    ("avg_pool2d", (X4,), {"kernel_size": 2}, "stride"), ("max_pool2d", (X4,), {"kernel_size": 2}, "padding"),
    ("maxout", (np.zeros((2, 0)),), {}, "pieces"), ("maxout", (X4,), {"pieces": 1}, "axis"),
])
def test_huge_integer_parameters_are_value_errors(op, args, kwargs, name, value):
    """Beyond the kernels' index range: a ValueError naming the parameter (was an OverflowError,
    or NumPy's error for the padded array)."""
    with pytest.raises(ValueError, match=rf"^{op}: {name}"):
        getattr(fastnn, op)(*args, **kwargs, **{name: value})


@pytest.mark.parametrize("op, args, padding", [
    ("conv2d", (X4, W4), 2 ** 15), ("conv2d", (X4, W4), (0, 2 ** 30)),
    ("avg_pool2d", (X4, 2 ** 16), 2 ** 15), ("max_pool2d", (X4, (1, 2 ** 31 - 1)), (0, 2 ** 30 - 1)),
])
def test_padding_that_makes_planes_beyond_the_index_range_is_a_value_error(op, args, padding):
    with pytest.raises(ValueError, match=rf"^{op}: padding .* too large"):
        getattr(fastnn, op)(*args, padding=padding)


@pytest.mark.parametrize("value, error", [(2 ** 2000, ValueError), (float("nan"), ValueError), ("0.1", TypeError),
                                          (np.array([0.1, 0.2]), TypeError), (np.complex128(0.5), TypeError)])
def test_real_parameters_reject_huge_nan_strings_arrays_and_complex(value, error):
    with pytest.raises(error, match="^leaky_relu: negative_slope"):
        fastnn.leaky_relu(np.zeros(3), value)
    with pytest.raises(error, match="^adam_step: lr"):
        fastnn.adam_step(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), 1, lr=value)
