"""The benchmark workloads: one list, WORKLOADS, at the bottom. Append only: never rename or
reshape a group, so results stay comparable across runs.

Contenders (the test ids inside each group; see harness.py for how each is run):
  numpy   fastnn's public functions on the "numpy" backend: the reference kernels of
          `fastnn.reference.<family>` (the baseline);
          for the optimizer and training-step workloads, fastnn.optim / fastnn.nn classes under
          `use_backend("numpy")` (the classes dispatch straight to those reference kernels);
  numba, cython   the public fastnn functions (or classes) under `fastnn.use_backend(...)`;
  torch   the same computation in PyTorch eager, float32, at fastnn's thread count.

Fairness choices:
  - Every contender allocates its outputs fresh on each call (no `out=` anywhere): that is how
    NumPy users and PyTorch eager run, and all contenders share one process, so page faults on
    fresh large outputs (if the allocator returns memory to the OS) hit them alike.
  - torch backward: the aten kernel that autograd would call for that op, called directly
    (threshold_backward, sigmoid_backward, convolution_backward, native_batch_norm_backward, ...):
    the same computation without the cost of recording a graph, as fastnn's backward functions
    are called directly. The training step uses real autograd on both sides' natural APIs.
  - Linear in torch is `addmm` on fastnn's (D_in, D_out) weight layout, so no transposes are timed.
"""
import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

F32 = 4  # bytes per element
GEMM_TOL = (1e-3, 1e-4)  # float32 sums over thousands of terms
ELEMENTWISE_TOL = (1e-4, 1e-5)


@dataclass
class Workload:
    group: str  # the report row: op, mode, shape
    ops: tuple  # fastnn ops the fastnn contenders need; a contender lacking one is skipped
    inputs: Callable  # rng -> dict of float32 arrays (labels int64)
    run: Callable = None  # (F, inp) -> result; F resolves op names (reference or public fastnn)
    torch: Callable = None  # (torch, inp) -> zero-argument function computing the same in torch
    torch_result: Callable = None  # converts that function's result to run()'s layout
    stateful: Callable = None  # inp -> zero-argument function (optim, nn classes), instead of run
    flops: float = 0.0
    bytes: float = 0.0  # minimum traffic: each input read once, each output written once
    kind: str = "memory"  # roofline: "memory" (copy bandwidth at `working_set`) or "gemm" (compute peak)
    tol: tuple = ELEMENTWISE_TOL  # allclose (rtol, atol); atol is scaled by max |reference|
    contenders: tuple = ("numpy", "numba", "cython", "torch")
    auto: bool = True  # informs run.py's AUTO table suggestion
    # distinct bytes touched per call as the benchmark loop runs it (inputs, outputs, intermediates),
    # where it differs from `bytes`: in-place updates touch an array once but move it twice
    working_set: float = 0.0
    # flops counted as direct convolution, where Winograd executes fewer: the kernel side of a stride-1,
    # one-group convolution a backend may run by Winograd (_winograd_kernel; 0 for every other workload)
    effective: int = 0

    @property
    def touched(self):
        """The working set the copy bandwidth of the roofline is taken at."""
        return self.working_set or self.bytes

    @property
    def id(self):
        return self.group.replace(" ", "-")

    @property
    def seed(self):
        return zlib.crc32(self.group.encode())


def _shape_name(shape):
    return "x".join(map(str, shape))


def _randn(rng, shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _aten(torch):
    return torch.ops.aten


# --- activations ---------------------------------------------------------------------------------

ACT_SHAPE = (32, 64, 32, 32)
ACT_N = int(np.prod(ACT_SHAPE))


def _torch_prelu_backward(torch, dy, x, a):
    dx, da_full = _aten(torch)._prelu_kernel_backward(dy, x, a.view(1, -1, 1, 1))
    return dx, da_full.sum((0, 2, 3))


def _torch_maxout(x, pieces):
    n, c, h, w = x.shape
    return x.view(n, c // pieces, pieces, h, w).max(dim=2)  # first maximal index on ties


def _torch_maxout_backward(torch, dy, x, index, pieces):
    n, c, h, w = x.shape
    dx = torch.zeros((n, c // pieces, pieces, h, w), dtype=x.dtype)
    return dx.scatter_(2, index.unsqueeze(2), dy.unsqueeze(2)).view(x.shape)


# name -> (kwargs, backward takes y (not x), torch forward, torch backward(dy, x, y), flops per element)
ACTIVATIONS = {
    "relu": ({}, False, lambda T, x: T.relu(x),
             lambda T, dy, x, y: _aten(T).threshold_backward(dy, x, 0), 2),
    "leaky_relu": ({"negative_slope": 0.01}, False, lambda T, x: T.nn.functional.leaky_relu(x, 0.01),
                   lambda T, dy, x, y: _aten(T).leaky_relu_backward(dy, x, 0.01, False), 4),
    "elu": ({"alpha": 1.0}, False, lambda T, x: T.nn.functional.elu(x, 1.0),
            lambda T, dy, x, y: _aten(T).elu_backward(dy, 1.0, 1, 1, False, x), 12),
    "sigmoid": ({}, True, lambda T, x: T.sigmoid(x),
                lambda T, dy, x, y: _aten(T).sigmoid_backward(dy, y), 10),
    "tanh": ({}, True, lambda T, x: T.tanh(x),
             lambda T, dy, x, y: _aten(T).tanh_backward(dy, y), 10),
    "gelu": ({}, False, lambda T, x: T.nn.functional.gelu(x),
             lambda T, dy, x, y: _aten(T).gelu_backward(dy, x), 24),
    "silu": ({}, False, lambda T, x: T.nn.functional.silu(x),
             lambda T, dy, x, y: _aten(T).silu_backward(dy, x), 16),
}


def _act_inputs(rng):
    return {"x": _randn(rng, ACT_SHAPE) * 3, "dy": _randn(rng, ACT_SHAPE)}


def _activation_fwd_bwd(name):
    kwargs, from_y, t_fwd, t_bwd, flops = ACTIVATIONS[name]

    def run(F, inp):
        x, dy = inp["x"], inp["dy"]
        y = getattr(F, name)(x, **kwargs)
        return y, getattr(F, name + "_backward")(dy, y if from_y else x, **kwargs)

    def torch_fn(T, inp):
        x, dy = T.from_numpy(inp["x"]), T.from_numpy(inp["dy"])

        def step():
            y = t_fwd(T, x)
            return y, t_bwd(T, dy, x, y)
        return step

    return Workload(f"{name} fwd+bwd {_shape_name(ACT_SHAPE)}", (name, name + "_backward"), _act_inputs,
                    run, torch_fn, flops=flops * ACT_N, bytes=4 * ACT_N * F32)


def _activation_fwd(name):
    kwargs, _, t_fwd, _, flops = ACTIVATIONS[name]

    def torch_fn(T, inp):
        x = T.from_numpy(inp["x"])
        return lambda: t_fwd(T, x)

    return Workload(f"{name} fwd {_shape_name(ACT_SHAPE)}", (name,), _act_inputs,
                    lambda F, inp: getattr(F, name)(inp["x"], **kwargs), torch_fn,
                    flops=flops // 2 * ACT_N, bytes=2 * ACT_N * F32)


def _prelu_inputs(rng):
    return dict(_act_inputs(rng), a=rng.uniform(0.05, 0.5, ACT_SHAPE[1]).astype(np.float32))


def _prelu_run(F, inp):
    x, dy, a = inp["x"], inp["dy"], inp["a"]
    return (F.prelu(x, a),) + tuple(F.prelu_backward(dy, x, a))


def _prelu_torch(T, inp):
    x, dy, a = (T.from_numpy(inp[k]) for k in ("x", "dy", "a"))
    return lambda: (T.prelu(x, a),) + _torch_prelu_backward(T, dy, x, a)


def _maxout_inputs(rng):
    half = (ACT_SHAPE[0], ACT_SHAPE[1] // 2) + ACT_SHAPE[2:]
    return {"x": _randn(rng, ACT_SHAPE), "dy": _randn(rng, half)}


def _maxout_run(F, inp):
    x, dy = inp["x"], inp["dy"]
    return F.maxout(x, 2, axis=1), F.maxout_backward(dy, x, 2, axis=1)


def _maxout_torch(T, inp):
    x, dy = T.from_numpy(inp["x"]), T.from_numpy(inp["dy"])

    def step():
        y, index = _torch_maxout(x, 2)
        return y, _torch_maxout_backward(T, dy, x, index, 2)
    return step


ACTIVATION_WORKLOADS = (
    [_activation_fwd_bwd(name) for name in ("relu", "leaky_relu")]
    + [Workload(f"prelu fwd+bwd {_shape_name(ACT_SHAPE)}", ("prelu", "prelu_backward"), _prelu_inputs,
                _prelu_run, _prelu_torch, flops=6 * ACT_N, bytes=4 * ACT_N * F32)]
    + [_activation_fwd_bwd(name) for name in ("elu", "sigmoid", "tanh", "gelu", "silu")]
    + [Workload(f"maxout2 fwd+bwd {_shape_name(ACT_SHAPE)}", ("maxout", "maxout_backward"), _maxout_inputs,
                _maxout_run, _maxout_torch, flops=1.5 * ACT_N, bytes=3 * ACT_N * F32)]
    + [_activation_fwd(name) for name in ("relu", "tanh", "elu")]
)


# --- convolution ---------------------------------------------------------------------------------

# name: (N, C, F, H=W, k, stride, padding)
CONV_SHAPES = {
    "c1": (32, 3, 32, 32, 7, 1, 3),
    "c2": (32, 64, 64, 32, 3, 1, 1),
    "c3": (32, 128, 128, 16, 3, 1, 1),
    "c4": (32, 64, 128, 32, 3, 2, 1),
    "c5": (32, 256, 256, 8, 3, 1, 1),
    "c6": (32, 256, 64, 16, 1, 1, 0),
    "c7": (16, 3, 64, 64, 7, 2, 3),
}


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _winograd_kernel(k, channels):
    """`effective` of a stride-1, one-group convolution: its kernel side where a backend may run it by
    Winograd (any 3x3; 5x5 and 7x7 from 8 input channels, Cython's rules), else 0."""
    return k if k == 3 or (k in (5, 7) and channels >= 8) else 0


def _conv_workloads(name, with_backward, spec=None):
    """spec (N, C, F, H=W, k, stride, padding[, groups]); CONV_SHAPES[name] by default."""
    n, c, f, hw, k, s, p, *rest = spec or CONV_SHAPES[name]
    groups = rest[0] if rest else 1
    cg = c // groups
    ho = _conv_out(hw, k, s, p)
    params = dict(stride=(s, s), padding=(p, p), dilation=(1, 1), groups=groups)

    def inputs(rng):
        return {"x": _randn(rng, (n, c, hw, hw)),
                "w": _randn(rng, (f, cg, k, k)) * np.float32(np.sqrt(2.0 / (cg * k * k))),
                "b": _randn(rng, (f,)), "dy": _randn(rng, (n, f, ho, ho))}

    def run(F, inp):
        y = F.conv2d(inp["x"], inp["w"], inp["b"], **params)
        if not with_backward:
            return y
        return (y,) + tuple(F.conv2d_backward(inp["dy"], inp["x"], inp["w"], **params))

    def torch_fn(T, inp):
        x, w, b, dy = (T.from_numpy(inp[key]) for key in ("x", "w", "b", "dy"))
        conv = T.nn.functional.conv2d
        if not with_backward:
            return lambda: conv(x, w, b, (s, s), (p, p), 1, groups)

        def step():
            y = conv(x, w, b, (s, s), (p, p), 1, groups)
            return (y,) + tuple(_aten(T).convolution_backward(
                dy, x, w, [f], [s, s], [p, p], [1, 1], False, [0, 0], groups, [True, True, True]))
        return step

    gemm_flops = 2 * n * f * ho * ho * cg * k * k
    x_b, w_b, y_b = n * c * hw * hw * F32, f * cg * k * k * F32, n * f * ho * ho * F32
    mode = "fwd+bwd" if with_backward else "fwd"
    ops = ("conv2d", "conv2d_backward") if with_backward else ("conv2d",)
    g = f"g{groups}" if groups > 1 else ""
    return Workload(
        f"conv2d {mode} {name}:{n}x{c}->{f}x{hw}x{hw}/k{k}s{s}p{p}{g}", ops, inputs, run, torch_fn,
        flops=gemm_flops * (3 if with_backward else 1),
        bytes=(2 * (x_b + w_b + y_b) + 2 * f * F32) if with_backward else x_b + w_b + y_b + f * F32,
        kind="gemm", tol=GEMM_TOL, effective=_winograd_kernel(k, cg) if s == 1 and groups == 1 else 0)


CONV_WORKLOADS = [_conv_workloads(name, bwd) for bwd in (False, True) for name in CONV_SHAPES]


# --- pooling ---------------------------------------------------------------------------------------

POOL_SHAPE = (32, 64, 32, 32)
POOL_N = int(np.prod(POOL_SHAPE))


def _pool_out(size, k, s, p, ceil_mode):
    """torch's pooling_output_shape (undilated)."""
    out = (size + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    return out - 1 if ceil_mode and (out - 1) * s >= size + p else out


def _pool_workload(op, with_backward, shape=POOL_SHAPE, k=2, s=2, p=0, ceil_mode=False, count_include_pad=True):
    """fastnn's pool against torch's; ceil_mode (and, for the average, count_include_pad) passed to both,
    and named in the label where not torch's default."""
    options = {"ceil_mode": ceil_mode} if op == "max_pool2d" else {"ceil_mode": ceil_mode,
                                                                     "count_include_pad": count_include_pad}
    params = dict(kernel_size=(k, k), stride=(s, s), padding=(p, p), **options)
    out_shape = shape[:2] + tuple(_pool_out(size, k, s, p, ceil_mode) for size in shape[2:])
    n_in, n_out = int(np.prod(shape)), int(np.prod(out_shape))

    def inputs(rng):
        return {"x": _randn(rng, shape), "dy": _randn(rng, out_shape)}

    def run(F, inp):
        y = getattr(F, op)(inp["x"], **params)
        if not with_backward:
            return y
        return y, getattr(F, op + "_backward")(inp["dy"], inp["x"], **params)

    def torch_fn(T, inp):
        x, dy = T.from_numpy(inp["x"]), T.from_numpy(inp["dy"])
        aten, kk, ss, pp = _aten(T), [k, k], [s, s], [p, p]
        if op == "max_pool2d":
            if not with_backward:
                return lambda: T.nn.functional.max_pool2d(x, k, s, p, ceil_mode=ceil_mode)

            def step():
                y, index = aten.max_pool2d_with_indices(x, kk, ss, pp, [1, 1], ceil_mode)
                return y, aten.max_pool2d_with_indices_backward(dy, x, kk, ss, pp, [1, 1], ceil_mode, index)
            return step
        if not with_backward:
            return lambda: T.nn.functional.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad)
        return lambda: (aten.avg_pool2d(x, kk, ss, pp, ceil_mode, count_include_pad, None),
                        aten.avg_pool2d_backward(dy, x, kk, ss, pp, ceil_mode, count_include_pad, None))

    mode = "fwd+bwd" if with_backward else "fwd"
    ops = (op, op + "_backward") if with_backward else (op,)
    elements = (n_in + n_out) * (2 if with_backward else 1)  # x + y [+ dy + dx]
    pad = f"p{p}" if p else ""
    tag = (" ceil" if ceil_mode else "") + ("" if count_include_pad else " nopadcount")
    return Workload(f"{op} {mode} {_shape_name(shape)}_k{k}s{s}{pad}{tag}", ops, inputs, run, torch_fn,
                    flops=n_out * k * k * (2 if with_backward else 1), bytes=elements * F32)


POOL_WORKLOADS = [_pool_workload(op, bwd) for op in ("max_pool2d", "avg_pool2d") for bwd in (False, True)]


# --- batch normalization -------------------------------------------------------------------------------

def _bn_workload(shape, with_backward, fused=None):
    """fused None: batch_norm alone; True: batch_norm_relu; False: batch_norm then relu (unfused)."""
    channels = shape[1]
    n = int(np.prod(shape))
    eps = 1e-5

    def inputs(rng):
        return {"x": _randn(rng, shape) * 2 + 0.5, "dy": _randn(rng, shape),
                "gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
                "beta": _randn(rng, (channels,))}

    def run(F, inp):
        x, dy, gamma, beta = inp["x"], inp["dy"], inp["gamma"], inp["beta"]
        forward = F.batch_norm_relu if fused else F.batch_norm
        y, mean, invstd = forward(x, gamma, beta, None, None, training=True, momentum=0.1, eps=eps)
        if fused is False:
            z = F.relu(y)
            if not with_backward:
                return z
            dz = F.relu_backward(dy, y)
            return (z,) + tuple(F.batch_norm_backward(dz, x, gamma, mean, invstd, training=True))
        if not with_backward:
            return y, mean, invstd
        if fused:
            grads = F.batch_norm_relu_backward(dy, y, x, gamma, mean, invstd, training=True)
        else:
            grads = F.batch_norm_backward(dy, x, gamma, mean, invstd, training=True)
        return (y,) + tuple(grads)

    def torch_fn(T, inp):
        x, dy, gamma, beta = (T.from_numpy(inp[k]) for k in ("x", "dy", "gamma", "beta"))
        aten = _aten(T)

        def step():
            y, mean, invstd = aten.native_batch_norm(x, gamma, beta, None, None, True, 0.1, eps)
            if fused is None and not with_backward:
                return y, mean, invstd
            dz = dy
            if fused is not None:
                z = T.relu(y)
                if not with_backward:
                    return z
                dz = aten.threshold_backward(dy, z, 0)
            grads = aten.native_batch_norm_backward(dz, x, gamma, None, None, mean, invstd, True, eps,
                                                    [True, True, True])
            return (z if fused is not None else y,) + tuple(grads)
        return step

    if fused is None:
        ops = ("batch_norm", "batch_norm_backward") if with_backward else ("batch_norm",)
        name = "batch_norm"
    elif fused:
        ops = ("batch_norm_relu", "batch_norm_relu_backward")
        name = "batch_norm_relu"
    else:
        ops = ("batch_norm", "batch_norm_backward", "relu", "relu_backward")
        name = "batch_norm+relu"
    mode = "fwd+bwd" if with_backward else "fwd"
    return Workload(f"{name} {mode} {_shape_name(shape)}", ops, inputs, run, torch_fn,
                    flops=n * (12 if with_backward else 5), bytes=(4 if with_backward else 2) * n * F32,
                    # unfused: y and relu's gradient are arrays of their own
                    working_set=(6 if with_backward else 3) * n * F32 if fused is False else 0.0,
                    tol=GEMM_TOL, auto=fused is not False)


BN_WORKLOADS = (
    [_bn_workload(shape, bwd) for shape in ((32, 64, 32, 32), (256, 4096)) for bwd in (False, True)]
    + [_bn_workload((32, 64, 32, 32), True, fused=True), _bn_workload((32, 64, 32, 32), True, fused=False)]
)


# --- linear, and the GEMMs it needs ---------------------------------------------------------------

LINEAR = (256, 4096, 1024)  # N, D_in, D_out


def _linear_inputs(rng):
    n, d_in, d_out = LINEAR
    return {"x": _randn(rng, (n, d_in)), "w": _randn(rng, (d_in, d_out)) * np.float32(d_in ** -0.5),
            "b": _randn(rng, (d_out,)), "dy": _randn(rng, (n, d_out))}


def _linear_run(F, inp):
    x, w, b, dy = inp["x"], inp["w"], inp["b"], inp["dy"]
    return (F.linear(x, w, b),) + tuple(F.linear_backward(dy, x, w))


def _linear_torch(T, inp):
    x, w, b, dy = (T.from_numpy(inp[k]) for k in ("x", "w", "b", "dy"))
    # what autograd runs for y = addmm(b, x, w): dx = dy @ w.T, dw = x.T @ dy, db = dy.sum(0)
    return lambda: (T.addmm(b, x, w), T.mm(dy, w.t()), T.mm(x.t(), dy), dy.sum(0))


def _gemm_run(F, inp):
    """The three GEMMs of linear fwd+bwd, plain BLAS (F unused: numpy's matmul is the contender)."""
    x, w, dy = inp["x"], inp["w"], inp["dy"]
    return x @ w, dy @ w.T, x.T @ dy


def _gemm_torch(T, inp):
    x, w, dy = (T.from_numpy(inp[k]) for k in ("x", "w", "dy"))
    return lambda: (T.mm(x, w), T.mm(dy, w.t()), T.mm(x.t(), dy))


def _linear_bytes():
    n, d_in, d_out = LINEAR
    return 2 * (n * d_in + d_in * d_out + n * d_out + d_out) * F32


LINEAR_NAME = "x".join(map(str, LINEAR))
LINEAR_WORKLOADS = [
    Workload(f"linear fwd+bwd {LINEAR_NAME}", ("linear", "linear_backward"), _linear_inputs, _linear_run,
             _linear_torch, flops=3 * 2 * math.prod(LINEAR), bytes=_linear_bytes(), kind="gemm", tol=GEMM_TOL),
    Workload(f"gemm(linear) fwd+bwd {LINEAR_NAME}", (), _linear_inputs, _gemm_run, _gemm_torch,
             flops=3 * 2 * math.prod(LINEAR), bytes=_linear_bytes(), kind="gemm", tol=GEMM_TOL,
             contenders=("numpy", "torch"), auto=False),
]


# --- losses ------------------------------------------------------------------------------------------

def _softmax_inputs(rng):
    return {"logits": _randn(rng, (256, 1000)) * 3, "labels": rng.integers(0, 1000, 256)}


def _softmax_torch(T, inp):
    logits, labels = T.from_numpy(inp["logits"]), T.from_numpy(inp["labels"])
    aten = _aten(T)
    one = T.ones((), dtype=logits.dtype)

    def step():  # autograd's own sequence for cross_entropy, without the graph
        log_p = aten._log_softmax(logits, 1, False)
        loss, total = aten.nll_loss_forward(log_p, labels, None, 1, -100)
        grad = aten.nll_loss_backward(one, log_p, labels, None, 1, -100, total)
        return loss.item(), aten._log_softmax_backward_data(grad, log_p, 1, logits.dtype)
    return step


LOSS_WORKLOADS = [
    Workload("softmax_cross_entropy 256x1000", ("softmax_cross_entropy",), _softmax_inputs,
             lambda F, inp: F.softmax_cross_entropy(inp["logits"], inp["labels"]), _softmax_torch,
             flops=256 * 1000 * 6, bytes=2 * 256 * 1000 * F32 + 256 * 8),
]


# --- optimizers (10M params, as 10 tensors of 1M: the state is per key) ---------------------------------

OPT_TENSORS, OPT_SIZE = 10, 1_000_000


def _opt_inputs(rng):
    return {"params": {f"p{i}": _randn(rng, (OPT_SIZE,)) for i in range(OPT_TENSORS)},
            "grads": {f"p{i}": _randn(rng, (OPT_SIZE,)) * np.float32(0.1) for i in range(OPT_TENSORS)}}


# name -> (fastnn.optim class and kwargs, torch.optim class and kwargs, bytes per element, flops per element)
OPTIMIZERS = {
    "adam": (("Adam", dict(lr=1e-3)), ("Adam", dict(lr=1e-3, fused=True)), 7, 14),
    "sgd_momentum": (("SGD", dict(lr=1e-2, momentum=0.9)),
                     ("SGD", dict(lr=1e-2, momentum=0.9, foreach=True)), 5, 4),
}
# arrays per element an optimizer step touches: adam p, g, m, v; sgd p, g, momentum (updated in place)
OPTIMIZER_ARRAYS = {"adam": 4, "sgd_momentum": 3}


def _optimizer_workload(name):
    (cls, kwargs), (t_cls, t_kwargs), bytes_per, flops_per = OPTIMIZERS[name]
    op = {"Adam": "adam_step", "SGD": "sgd_step"}[cls]

    def stateful(inp):
        import fastnn.optim

        optimizer = getattr(fastnn.optim, cls)(**kwargs)
        params, grads = inp["params"], inp["grads"]

        def step():
            optimizer.step(params, grads)
            return [params[k] for k in sorted(params)]
        return step

    def torch_fn(T, inp):
        params = [T.from_numpy(inp["params"][k]) for k in sorted(inp["params"])]
        for p, k in zip(params, sorted(inp["grads"])):
            p.grad = T.from_numpy(inp["grads"][k])
        optimizer = getattr(T.optim, t_cls)(params, **t_kwargs)

        def step():
            optimizer.step()
            return params
        return step

    total = OPT_TENSORS * OPT_SIZE
    return Workload(f"optim {name} step 10x1M", (op,), _opt_inputs, stateful=stateful, torch=torch_fn,
                    torch_result=lambda params: [p.detach().numpy() for p in params],
                    flops=flops_per * total, bytes=bytes_per * total * F32,
                    working_set=OPTIMIZER_ARRAYS[name] * total * F32, tol=(1e-5, 1e-6))


OPTIM_WORKLOADS = [_optimizer_workload(name) for name in OPTIMIZERS]


# --- one training step of cs231n's ThreeLayerConvNet ------------------------------------------------
# Same weights on both sides. Neither computes the input gradient of the first conv: torch's x needs
# no grad, and fastnn's Sequential.backward is told so (input_grad=False).

def _convnet_inputs(rng):
    def he(shape, fan_in):
        return _randn(rng, shape) * np.float32(np.sqrt(2.0 / fan_in))

    return {
        "x": _randn(rng, (50, 3, 32, 32)), "y": rng.integers(0, 10, 50),
        # fastnn's layouts and Sequential keys (conv 0, relu 1, pool 2, flatten 3, linear 4, relu 5, linear 6)
        "params": {"0.weight": he((32, 3, 7, 7), 3 * 49), "0.bias": np.zeros(32, np.float32),
                   "4.weight": he((8192, 100), 8192), "4.bias": np.zeros(100, np.float32),
                   "6.weight": he((100, 10), 100), "6.bias": np.zeros(10, np.float32)},
    }


def convnet_model(inp):
    """fastnn's ThreeLayerConvNet with the workload's weights, and its Adam optimizer."""
    import fastnn.nn as nn
    import fastnn.optim

    model = nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8192, 100), nn.ReLU(), nn.Linear(100, 10))
    for key, value in inp["params"].items():
        model.params[key][...] = value
    return model, fastnn.optim.Adam(lr=1e-3)


def _convnet_stateful(inp):
    import fastnn

    model, optimizer = convnet_model(inp)
    x, y = inp["x"], inp["y"]

    def step():
        loss, dscores = fastnn.softmax_cross_entropy(model.forward(x), y)
        model.backward(dscores, input_grad=False)
        optimizer.step(model.params, model.grads)
        return [loss] + [model.grads[k] for k in sorted(model.grads)]
    return step


def convnet_torch_model(T, inp):
    """PyTorch's ThreeLayerConvNet with the workload's weights (torch's layouts), and its Adam optimizer."""
    nn = T.nn
    model = nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8192, 100), nn.ReLU(), nn.Linear(100, 10))
    with T.no_grad():
        for key, p in model.named_parameters():
            value = inp["params"][key]
            p.copy_(T.from_numpy(value.T.copy() if key.endswith("weight") and value.ndim == 2 else value))
    return model, T.optim.Adam(model.parameters(), lr=1e-3)  # torch's default (foreach) Adam


def _torch_step(T, model, optimizer, loss_fn, inp):
    x, y = T.from_numpy(inp["x"]), T.from_numpy(inp["y"])
    named = dict(model.named_parameters())

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss, named
    return step


def _convnet_torch(T, inp):
    model, optimizer = convnet_torch_model(T, inp)
    return _torch_step(T, model, optimizer, T.nn.functional.cross_entropy, inp)


def _convnet_torch_result(result):
    loss, named = result
    grads = [named[k].grad.numpy() for k in sorted(named)]
    return [loss.item()] + [g.T if g.ndim == 2 else g for g in grads]


_CONVNET_FLOPS = 3 * (2 * 50 * 32 * 32 * 32 * 3 * 49 + 2 * 50 * 8192 * 100 + 2 * 50 * 100 * 10)
_CONVNET_PARAMS = 32 * 3 * 49 + 32 + 8192 * 100 + 100 + 100 * 10 + 10

TRAINING_WORKLOADS = [
    Workload("ThreeLayerConvNet train step batch50", ("conv2d", "conv2d_backward", "relu", "relu_backward",
                                                      "max_pool2d", "max_pool2d_backward", "linear",
                                                      "linear_backward", "softmax_cross_entropy", "adam_step"),
             _convnet_inputs, stateful=_convnet_stateful, torch=_convnet_torch, torch_result=_convnet_torch_result,
             flops=_CONVNET_FLOPS, bytes=(50 * 3 * 1024 + 6 * _CONVNET_PARAMS) * F32, kind="gemm",
             tol=GEMM_TOL, auto=False),
]


# --- the grid: shapes beyond the tuned ones (issue "fast on every shape") --------------------------------
# Kernel sizes 1, 3, 5, 7; strides 1 and 2; stems; depthwise and grouped; batch 1 and 32; odd sizes.

# name: (N, C, F, H=W, k, stride, padding, groups)
CONV_GRID = {
    "g5x5": (32, 32, 64, 16, 5, 1, 2, 1),
    "g3s2": (16, 128, 256, 16, 3, 2, 1, 1),
    "g1s2": (32, 256, 512, 14, 1, 2, 0, 1),
    "g1x1": (32, 64, 256, 28, 1, 1, 0, 1),
    "g7stem": (8, 3, 64, 112, 7, 2, 3, 1),
    "g7c64": (8, 64, 64, 28, 7, 1, 3, 1),
    "g3deep": (32, 512, 512, 7, 3, 1, 1, 1),
    "gdw": (32, 64, 64, 32, 3, 1, 1, 64),
    "gdws2": (32, 128, 128, 28, 3, 2, 1, 128),
    "ggroup4": (32, 64, 64, 28, 3, 1, 1, 4),
    "gbatch1": (1, 64, 64, 56, 3, 1, 1, 1),
    "godd": (32, 48, 64, 27, 3, 1, 1, 1),
    "g5odd": (16, 24, 48, 33, 5, 2, 2, 1),
    "ggroup8": (32, 128, 128, 14, 3, 1, 1, 8),  # ResNeXt's grouped 3x3 at 14x14
}
CONV_GRID_WORKLOADS = [_conv_workloads(name, bwd, spec) for bwd in (False, True) for name, spec in CONV_GRID.items()]

# (shape, kernel, stride, padding): overlapping windows, odd sizes, ResNet's stem pool
POOL_GRID = [((16, 96, 28, 28), 3, 2, 1), ((32, 64, 32, 32), 2, 1, 0), ((32, 64, 57, 57), 2, 2, 0),
             ((32, 64, 56, 56), 3, 2, 1), ((32, 32, 27, 27), 3, 3, 0)]
POOL_GRID_WORKLOADS = [_pool_workload(op, bwd, shape, k, s, p) for op in ("max_pool2d", "avg_pool2d")
                       for bwd in (False, True) for shape, k, s, p in POOL_GRID]

BN_GRID_WORKLOADS = [_bn_workload(shape, bwd) for shape in ((128, 1000), (16, 96, 28, 28), (32, 128, 56, 56), (64, 37))
                     for bwd in (False, True)]


def _activation_grid(name, shape):
    """The fwd+bwd activation workload on another shape (ACT_SHAPE's builder, rebound)."""
    kwargs, from_y, t_fwd, t_bwd, flops = ACTIVATIONS[name]
    n = int(np.prod(shape))

    def inputs(rng):
        return {"x": _randn(rng, shape) * 3, "dy": _randn(rng, shape)}

    def run(F, inp):
        y = getattr(F, name)(inp["x"], **kwargs)
        return y, getattr(F, name + "_backward")(inp["dy"], y if from_y else inp["x"], **kwargs)

    def torch_fn(T, inp):
        x, dy = T.from_numpy(inp["x"]), T.from_numpy(inp["dy"])

        def step():
            y = t_fwd(T, x)
            return y, t_bwd(T, dy, x, y)
        return step

    return Workload(f"{name} fwd+bwd {_shape_name(shape)}", (name, name + "_backward"), inputs, run, torch_fn,
                    flops=flops * n, bytes=4 * n * F32)


ACTIVATION_GRID_WORKLOADS = [_activation_grid(name, shape) for name, shape in
                             [("relu", (64, 128, 32, 32)), ("relu", (256, 4096)), ("gelu", (256, 4096)),
                              ("silu", (16, 96, 28, 28)), ("sigmoid", (1000, 37)), ("tanh", (64, 1000))]]


def _many_tensors(count, size):
    def inputs(rng):
        return {"params": {f"p{i}": _randn(rng, (size,)) for i in range(count)},
                "grads": {f"p{i}": _randn(rng, (size,)) * np.float32(0.1) for i in range(count)}}
    return inputs


def _optimizer_grid(name, count, size, label):
    """An OPTIMIZERS workload over `count` tensors of `size`: a real model's parameter list, where
    per-tensor call overhead counts."""
    base = _optimizer_workload(name)
    total = count * size
    _, _, bytes_per, flops_per = OPTIMIZERS[name]
    return Workload(f"optim {name} step {label}", base.ops, _many_tensors(count, size), stateful=base.stateful,
                    torch=base.torch, torch_result=base.torch_result, flops=flops_per * total,
                    bytes=bytes_per * total * F32, working_set=OPTIMIZER_ARRAYS[name] * total * F32, tol=base.tol)


OPTIM_GRID_WORKLOADS = [_optimizer_grid(name, count, size, label) for name in OPTIMIZERS
                        for count, size, label in ((200, 10_000, "200x10k"), (1, 10_000_000, "1x10M"))]


# --- one training step of a ResNet basic block -----------------------------------------------------------
# conv3x3 (no bias) -> BatchNorm2d -> ReLU -> conv3x3 -> BatchNorm2d, plus the identity, then ReLU;
# 64 channels, input (16, 64, 32, 32), SGD with momentum; fastnn.nn's Residual against torch eager.

RESNET_SHAPE = (16, 64, 32, 32)


def _resnet_inputs(rng):
    c = RESNET_SHAPE[1]
    scale = np.float32(np.sqrt(2.0 / (c * 9)))
    return {"x": _randn(rng, RESNET_SHAPE), "dy": _randn(rng, RESNET_SHAPE) * np.float32(1e-3),
            "w1": _randn(rng, (c, c, 3, 3)) * scale, "w2": _randn(rng, (c, c, 3, 3)) * scale}


def _resnet_stateful(inp):
    import fastnn.nn as nn
    import fastnn.optim

    c = RESNET_SHAPE[1]
    body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    block = nn.Residual(body, nn.ReLU())
    block.params["body.0.weight"][...] = inp["w1"]
    block.params["body.3.weight"][...] = inp["w2"]
    optimizer = fastnn.optim.SGD(lr=1e-2, momentum=0.9)
    x, dy = inp["x"], inp["dy"]

    def step():
        block.forward(x)
        dx = block.backward(dy)
        optimizer.step(block.params, block.grads)
        return [dx] + [block.grads[k] for k in sorted(block.grads)]
    return step


def _resnet_torch(T, inp):
    nn = T.nn
    c = RESNET_SHAPE[1]
    body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    with T.no_grad():
        body[0].weight.copy_(T.from_numpy(inp["w1"]))
        body[3].weight.copy_(T.from_numpy(inp["w2"]))
    optimizer = T.optim.SGD(body.parameters(), lr=1e-2, momentum=0.9)  # torch's default (foreach)
    x = T.from_numpy(inp["x"]).requires_grad_()
    dy = T.from_numpy(inp["dy"])
    named = dict(body.named_parameters())

    def step():
        optimizer.zero_grad(set_to_none=True)
        x.grad = None
        T.relu(body(x) + x).backward(dy)
        optimizer.step()
        return x, named
    return step


def _resnet_torch_result(result):
    x, named = result
    order = {"0.weight": "body.0.weight", "1.weight": "body.1.weight", "1.bias": "body.1.bias",
             "3.weight": "body.3.weight", "4.weight": "body.4.weight", "4.bias": "body.4.bias"}
    grads = {order[k]: p.grad.numpy() for k, p in named.items()}
    return [x.grad.numpy()] + [grads[k] for k in sorted(grads)]


_RESNET_CONV_FLOPS = 2 * int(np.prod(RESNET_SHAPE)) * RESNET_SHAPE[1] * 9
RESNET_WORKLOADS = [
    Workload(f"ResNet basic block train step {_shape_name(RESNET_SHAPE)}",
             ("conv2d", "conv2d_backward", "batch_norm", "batch_norm_backward", "relu", "relu_backward",
              "sgd_step"), _resnet_inputs, stateful=_resnet_stateful, torch=_resnet_torch,
             torch_result=_resnet_torch_result, flops=2 * 3 * _RESNET_CONV_FLOPS,
             bytes=12 * int(np.prod(RESNET_SHAPE)) * F32, kind="gemm", tol=GEMM_TOL, auto=False, effective=3),
]


# --- the same step in PyTorch, its model converted to fastnn (fastnn.torch) -------------------------------
# Contenders numba and cython: torch's model and Adam after fastnn.torch.convert, with
# fastnn.torch.cross_entropy, fastnn's kernels on that backend; torch: the plain model. Both return
# the loss and torch's gradients (weights (out, in)); the reference is the converted model on
# fastnn's NumPy kernels.

def _convnet_adapter_stateful(inp):
    import torch

    import fastnn.torch as ft

    model, optimizer = convnet_torch_model(torch, inp)
    step = _torch_step(torch, ft.convert(model), optimizer, ft.cross_entropy, inp)

    def run():  # NumPy views of the results (a few microseconds): what snapshot() takes
        return _torch_grads_result(step())
    return run


def _torch_grads_result(result):
    """The loss and the gradients sorted by name, as NumPy views in torch's layout."""
    loss, named = result
    return [loss.detach().numpy()] + [named[k].grad.numpy() for k in sorted(named)]


TORCH_ADAPTER_WORKLOADS = [
    Workload("ThreeLayerConvNet train step batch50 fastnn.torch",
             ("conv2d", "conv2d_backward", "relu", "relu_backward", "max_pool2d", "max_pool2d_backward", "linear",
              "softmax_cross_entropy"),
             _convnet_inputs, stateful=_convnet_adapter_stateful, torch=_convnet_torch,
             torch_result=_torch_grads_result,
             flops=_CONVNET_FLOPS, bytes=(50 * 3 * 1024 + 6 * _CONVNET_PARAMS) * F32, kind="gemm",
             tol=GEMM_TOL, contenders=("numba", "cython", "torch"), auto=False),
]


# --- issue 15: PyTorch's option space (GELU's tanh form, conv2d's padding="same") -------------------------

def _gelu_tanh_workload():
    """GELU's tanh form fwd+bwd on ACT_SHAPE: torch's F.gelu(approximate="tanh") and its aten backward."""
    def run(F, inp):
        x = inp["x"]
        return F.gelu(x, approximate="tanh"), F.gelu_backward(inp["dy"], x, approximate="tanh")

    def torch_fn(T, inp):
        x, dy = T.from_numpy(inp["x"]), T.from_numpy(inp["dy"])

        def step():
            return (T.nn.functional.gelu(x, approximate="tanh"),
                    _aten(T).gelu_backward(dy, x, approximate="tanh"))
        return step

    return Workload(f"gelu tanh fwd+bwd {_shape_name(ACT_SHAPE)}", ("gelu", "gelu_backward"), _act_inputs, run,
                    torch_fn, flops=30 * ACT_N, bytes=4 * ACT_N * F32)


# name: (N, C, F, H=W, k): padding="same" at stride 1 (odd kernels: the symmetric padding's kernels)
CONV_SAME = {"s3": (32, 64, 64, 32, 3), "s5": (32, 32, 64, 16, 5)}


def _conv_same_workload(name, with_backward):
    n, c, f, hw, k = CONV_SAME[name]
    p = (k - 1) // 2  # torch's backward takes the numbers "same" stands for

    def inputs(rng):
        scale = np.float32(np.sqrt(2.0 / (c * k * k)))
        return {"x": _randn(rng, (n, c, hw, hw)), "w": _randn(rng, (f, c, k, k)) * scale,
                "b": _randn(rng, (f,)), "dy": _randn(rng, (n, f, hw, hw))}

    def run(F, inp):
        y = F.conv2d(inp["x"], inp["w"], inp["b"], padding="same")
        if not with_backward:
            return y
        return (y,) + tuple(F.conv2d_backward(inp["dy"], inp["x"], inp["w"], padding="same"))

    def torch_fn(T, inp):
        x, w, b, dy = (T.from_numpy(inp[key]) for key in ("x", "w", "b", "dy"))
        conv = T.nn.functional.conv2d
        if not with_backward:
            return lambda: conv(x, w, b, padding="same")

        def step():
            y = conv(x, w, b, padding="same")
            return (y,) + tuple(_aten(T).convolution_backward(
                dy, x, w, [f], [1, 1], [p, p], [1, 1], False, [0, 0], 1, [True, True, True]))
        return step

    gemm_flops = 2 * n * f * hw * hw * c * k * k
    x_b, w_b, y_b = n * c * hw * hw * F32, f * c * k * k * F32, n * f * hw * hw * F32
    mode = "fwd+bwd" if with_backward else "fwd"
    ops = ("conv2d", "conv2d_backward") if with_backward else ("conv2d",)
    return Workload(
        f"conv2d {mode} {name}:{n}x{c}->{f}x{hw}x{hw}/k{k} same", ops, inputs, run, torch_fn,
        flops=gemm_flops * (3 if with_backward else 1),
        bytes=(2 * (x_b + w_b + y_b) + 2 * f * F32) if with_backward else x_b + w_b + y_b + f * F32,
        kind="gemm", tol=GEMM_TOL, effective=_winograd_kernel(k, c))


ISSUE15_WORKLOADS = [_gelu_tanh_workload()] + [_conv_same_workload(name, bwd) for bwd in (False, True)
                                                for name in CONV_SAME]


# --- pooling with torch's options: ceil_mode's hanging windows, count_include_pad=False --------------------

POOL_OPTION_WORKLOADS = [
    *(_pool_workload("max_pool2d", bwd, (32, 64, 56, 56), 3, 2, 0, ceil_mode=True) for bwd in (False, True)),
    *(_pool_workload("avg_pool2d", bwd, (32, 64, 56, 56), 3, 2, 1, ceil_mode=True, count_include_pad=False)
      for bwd in (False, True)),
    *(_pool_workload(op, bwd, (32, 64, 57, 57), 2, 2, 0, ceil_mode=True) for op in ("max_pool2d", "avg_pool2d")
      for bwd in (False, True)),
]


# --- the list: add new workloads at its end (append only) ----------------------------------------------

WORKLOADS = (ACTIVATION_WORKLOADS + CONV_WORKLOADS + POOL_WORKLOADS + BN_WORKLOADS + LINEAR_WORKLOADS
             + LOSS_WORKLOADS + OPTIM_WORKLOADS + TRAINING_WORKLOADS + CONV_GRID_WORKLOADS + POOL_GRID_WORKLOADS
             + BN_GRID_WORKLOADS + ACTIVATION_GRID_WORKLOADS + OPTIM_GRID_WORKLOADS + RESNET_WORKLOADS
             + TORCH_ADAPTER_WORKLOADS + ISSUE15_WORKLOADS + POOL_OPTION_WORKLOADS)


# --- softmax_cross_entropy with torch's cross_entropy options (issue 15) ------------------------------
# Label smoothing with class weights on (256, 1000) logits, and segmentation logits (N, C, H, W)
# against (N, H, W) labels with an ignored class (255, as Pascal VOC's borders). torch: its
# cross_entropy forward and autograd backward (the smoothed loss has no single aten kernel).

def _ce_smoothing_inputs(rng):
    return {"logits": _randn(rng, (256, 1000)) * 3, "labels": rng.integers(0, 1000, 256),
            "weight": rng.uniform(0.5, 2.0, 1000).astype(np.float32)}


def _ce_spatial_inputs(rng):
    labels = rng.integers(0, 21, (8, 64, 64))
    labels[:, :4] = 255  # a border of ignored pixels
    return {"logits": _randn(rng, (8, 21, 64, 64)) * 3, "labels": labels}


def _ce_options_run(**options):
    def run(F, inp):
        weight = {"weight": inp["weight"]} if "weight" in inp else {}
        return F.softmax_cross_entropy(inp["logits"], inp["labels"], **weight, **options)
    return run


def _ce_options_torch(**options):
    def contender(T, inp):
        logits = T.from_numpy(inp["logits"]).requires_grad_()
        labels = T.from_numpy(inp["labels"])
        weight = T.from_numpy(inp["weight"]) if "weight" in inp else None

        def step():
            loss = T.nn.functional.cross_entropy(logits, labels, weight, **options)
            (grad,) = T.autograd.grad(loss, logits)
            return loss.item(), grad
        return step
    return contender


CE_OPTION_WORKLOADS = [
    Workload("softmax_cross_entropy weight label_smoothing=0.1 256x1000", ("softmax_cross_entropy",),
             _ce_smoothing_inputs, _ce_options_run(label_smoothing=0.1), _ce_options_torch(label_smoothing=0.1),
             flops=256 * 1000 * 10, bytes=2 * 256 * 1000 * F32 + 256 * 8 + 1000 * F32),
    Workload("softmax_cross_entropy spatial ignore_index=255 8x21x64x64", ("softmax_cross_entropy",),
             _ce_spatial_inputs, _ce_options_run(ignore_index=255), _ce_options_torch(ignore_index=255),
             flops=8 * 21 * 64 * 64 * 6, bytes=2 * 8 * 21 * 64 * 64 * F32 + 8 * 64 * 64 * 8),
]
WORKLOADS = WORKLOADS + CE_OPTION_WORKLOADS
