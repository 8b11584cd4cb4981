"""fastnn.torch: torch.nn.functional's functions and torch.nn's layers on fastnn's kernels.

Gradients (gradcheck in float64, double backward with gradgradcheck) on every function over
strides, padding, groups, dilation, batch-norm modes, channels_last and non-contiguous inputs;
forwards against torch in float32; every unsupported case runs torch's own function (bitwise
torch's answer, or torch's error); modules and convert; a converted model trains like the original;
threads follow torch. Each fast-path test checks that fastnn ran (its autograd node, or a spy on
fastnn's functions), so a silent fallback cannot pass for it. Skipped without PyTorch.
"""
import copy
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import fastnn  # noqa: E402
import fastnn.torch as ft  # noqa: E402

F64 = torch.float64
OUR_NODES = {"_ActivationFnBackward", "_InplaceActivationFnBackward", "_Conv2dFnBackward", "_LinearFnBackward",
             "_BatchNormFnBackward", "_PoolFnBackward", "_CrossEntropyFnBackward"}
FASTNN_FUNCTIONS = ("conv2d", "conv2d_backward", "linear", "linear_backward", "batch_norm", "batch_norm_backward",
                    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "softmax_cross_entropy",
                    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward", "sigmoid",
                    "sigmoid_backward", "tanh", "tanh_backward", "gelu", "gelu_backward", "silu", "silu_backward")


def _graph_nodes(t):
    """Class names of every autograd node behind t."""
    names, seen, stack = set(), set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def _ran_fastnn(t):
    return bool(_graph_nodes(t) & OUR_NODES)


@pytest.fixture
def spy(monkeypatch):
    """Records (fastnn function, fastnn.get_num_threads() during the call) for every fastnn call."""
    calls = []
    for name in FASTNN_FUNCTIONS:
        original = getattr(fastnn, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, fastnn.get_num_threads()))
            return _original(*args, **kwargs)
        monkeypatch.setattr(fastnn, name, wrapper)
    return calls


def _randn(*shape, dtype=F64, seed=0):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


def _strided(t):
    """A non-contiguous view with t's values: every other element of a wider tensor's last dimension."""
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    return wide[..., ::2]


def _grad_inputs(*tensors):
    return tuple(t.detach().requires_grad_() if t is not None and t.is_floating_point() else t for t in tensors)


# --- gradients in float64: gradcheck on every function, fastnn checked to run -----------------------------

def _conv_case(x_shape, w_shape, bias=True, layout=None, **params):
    def build():
        x, w = _randn(*x_shape, seed=1), _randn(*w_shape, seed=2)
        b = _randn(w_shape[0], seed=3) if bias else None
        if layout is not None:
            x, w = layout(x), layout(w)
        return x, w, b
    return build, lambda x, w, b: ft.conv2d(x, w, b, **params)


def _linear_case(x_shape, w_shape, bias=True, x_layout=None, w_layout=None):
    def build():
        x, w = _randn(*x_shape, seed=1), _randn(*w_shape, seed=2)
        x = x_layout(x) if x_layout else x
        w = w_layout(w) if w_layout else w
        return x, w, (_randn(w_shape[0], seed=3) if bias else None)
    return build, ft.linear


def _bn_case(shape, training, affine=(True, True), layout=None):
    def build():
        x = _randn(*shape, seed=1) * 2 + 0.5
        x = layout(x) if layout else x
        c = shape[1]
        return (x, _randn(c, seed=2) if affine[0] else None, _randn(c, seed=3) if affine[1] else None)

    def fn(x, weight, bias):
        c = x.shape[1]
        mean, var = torch.linspace(-1, 1, c, dtype=F64), torch.linspace(0.5, 2, c, dtype=F64)
        return ft.batch_norm(x, mean, var, weight, bias, training, 0.1, 1e-5)
    return build, fn


def _pool_case(op, shape, layout=None, **params):
    def build():
        x = _randn(*shape, seed=1)
        return (layout(x) if layout else x,)
    return build, lambda x: getattr(ft, op)(x, **params)


def _activation_case(name, shape, layout=None, **params):
    def build():
        x = _randn(*shape, seed=1) * 2
        return (layout(x) if layout else x,)
    return build, lambda x: getattr(ft, name)(x, **params)


def _cross_entropy_case(layout=None, shape=(6, 5), target=None, **options):
    target = torch.tensor([0, 4, 2, 2, 1, 3]) if target is None else target

    def build():
        x = _randn(*shape, seed=1) * 3
        return (layout(x) if layout else x,)
    return build, lambda x: ft.cross_entropy(x, target, **options)


_CE_WEIGHT = torch.linspace(0.5, 2.0, 5, dtype=F64)
_CE_PROBS = _randn(6, 5, seed=4).softmax(1)


GRAD_CASES = {
    "conv2d": _conv_case((2, 3, 7, 8), (4, 3, 3, 3)),
    "conv2d stride2 pad(1,2) dilation(2,1)": _conv_case((2, 3, 9, 8), (4, 3, 3, 2), stride=2, padding=(1, 2),
                                                        dilation=(2, 1)),
    "conv2d groups2 no bias": _conv_case((2, 4, 6, 6), (6, 2, 3, 3), bias=False, groups=2, padding=1),
    "conv2d channels_last": _conv_case((2, 3, 6, 7), (4, 3, 3, 3), layout=_channels_last, padding=1),
    "conv2d non-contiguous": _conv_case((2, 3, 6, 7), (4, 3, 3, 3), layout=_strided, stride=(1, 2)),
    "conv2d padding same": _conv_case((2, 3, 6, 7), (4, 3, 3, 5), padding="same"),
    "conv2d padding valid": _conv_case((2, 3, 6, 7), (4, 3, 3, 3), padding="valid"),
    "conv2d unbatched": _conv_case((3, 6, 7), (4, 3, 3, 3), padding=1),
    "conv2d padding same, even kernel": _conv_case((2, 3, 6, 6), (4, 3, 4, 2), padding="same"),
    "conv2d padding same, dilation": _conv_case((2, 4, 7, 6), (4, 2, 2, 3), padding="same", dilation=(3, 2),
                                                groups=2),
    "conv2d unbatched padding same, even kernel": _conv_case((3, 5, 6), (4, 3, 2, 2), bias=False, padding="same"),
    "linear": _linear_case((5, 7), (4, 7)),
    "linear 3-d input no bias": _linear_case((2, 3, 7), (4, 7), bias=False),
    "linear 1-d input": _linear_case((7,), (4, 7)),
    "linear fastnn-layout weight": _linear_case((5, 7), (4, 7), w_layout=lambda w: w.t().contiguous().t()),
    "linear non-contiguous": _linear_case((5, 7), (4, 7), x_layout=_strided, w_layout=_strided),
    "batch_norm train 4-d": _bn_case((3, 4, 5, 2), True),
    "batch_norm eval 4-d": _bn_case((3, 4, 5, 2), False),
    "batch_norm train 2-d": _bn_case((6, 4), True),
    "batch_norm train 3-d": _bn_case((3, 4, 5), True),
    "batch_norm eval 3-d": _bn_case((3, 4, 5), False),
    "batch_norm train weight only": _bn_case((3, 4, 5, 2), True, affine=(True, False)),
    "batch_norm train bias only": _bn_case((3, 4, 5, 2), True, affine=(False, True)),
    "batch_norm train no affine": _bn_case((3, 4, 5, 2), True, affine=(False, False)),
    "batch_norm train channels_last": _bn_case((3, 4, 5, 2), True, layout=_channels_last),
    "batch_norm train 5-d": _bn_case((2, 4, 3, 2, 3), True),
    "batch_norm eval 5-d": _bn_case((2, 4, 3, 2, 3), False),
    "batch_norm train 5-d non-contiguous": _bn_case((2, 4, 3, 2, 3), True, layout=_strided),
    "max_pool2d k2": _pool_case("max_pool2d", (2, 3, 6, 8), kernel_size=2),
    "max_pool2d k3 s2 p1": _pool_case("max_pool2d", (2, 3, 7, 8), kernel_size=3, stride=2, padding=1),
    "max_pool2d k(3,2) s(2,1) p(1,1)": _pool_case("max_pool2d", (2, 3, 7, 6), kernel_size=(3, 2), stride=(2, 1),
                                                  padding=(1, 1)),
    "max_pool2d channels_last": _pool_case("max_pool2d", (2, 3, 6, 8), layout=_channels_last, kernel_size=2),
    "max_pool2d non-contiguous unbatched": _pool_case("max_pool2d", (3, 6, 8), layout=_strided, kernel_size=3,
                                                      stride=1),
    "avg_pool2d k2": _pool_case("avg_pool2d", (2, 3, 6, 8), kernel_size=2),
    "avg_pool2d k3 s2 p1": _pool_case("avg_pool2d", (2, 3, 7, 8), kernel_size=3, stride=2, padding=1),
    "avg_pool2d channels_last": _pool_case("avg_pool2d", (2, 3, 6, 8), layout=_channels_last, kernel_size=(2, 3)),
    "avg_pool2d no pad count_include_pad=False": _pool_case("avg_pool2d", (2, 3, 6, 8), kernel_size=2,
                                                            count_include_pad=False),
    "avg_pool2d unbatched non-contiguous": _pool_case("avg_pool2d", (3, 6, 8), layout=_strided, kernel_size=2),
    "max_pool2d ceil_mode": _pool_case("max_pool2d", (2, 3, 7, 8), kernel_size=3, stride=2, ceil_mode=True),
    "max_pool2d k2 ceil_mode channels_last": _pool_case("max_pool2d", (2, 3, 7, 9), layout=_channels_last,
                                                        kernel_size=2, ceil_mode=True),
    "max_pool2d dilation(2,3) p1 ceil_mode": _pool_case("max_pool2d", (2, 3, 9, 10), kernel_size=3, stride=2,
                                                        padding=1, dilation=(2, 3), ceil_mode=True),
    "max_pool2d return_indices values": (_pool_case("max_pool2d", (2, 3, 7, 8))[0],
                                         lambda x: ft.max_pool2d(x, 3, 2, 1, return_indices=True)[0]),
    "max_pool2d unbatched dilation": _pool_case("max_pool2d", (3, 9, 8), kernel_size=2, dilation=2),
    "avg_pool2d ceil_mode": _pool_case("avg_pool2d", (2, 3, 7, 7), kernel_size=2, ceil_mode=True),
    "avg_pool2d k3 s2 p1 ceil_mode count_include_pad=False": _pool_case(
        "avg_pool2d", (2, 3, 9, 10), kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    "avg_pool2d divisor_override": _pool_case("avg_pool2d", (2, 3, 6, 7), kernel_size=3, stride=2, padding=1,
                                              divisor_override=4),
    "avg_pool2d unbatched ceil_mode": _pool_case("avg_pool2d", (3, 7, 8), kernel_size=3, stride=2, ceil_mode=True),
    "cross_entropy": _cross_entropy_case(),
    "cross_entropy non-contiguous": _cross_entropy_case(layout=_strided),
    "cross_entropy reduction sum": _cross_entropy_case(reduction="sum"),
    "cross_entropy reduction none": _cross_entropy_case(reduction="none"),
    "cross_entropy weight": _cross_entropy_case(weight=_CE_WEIGHT),
    "cross_entropy label_smoothing weight none": _cross_entropy_case(weight=_CE_WEIGHT, label_smoothing=0.2,
                                                                     reduction="none"),
    "cross_entropy ignore_index hit": _cross_entropy_case(target=torch.tensor([0, -100, 4, 2, -100, 1]),
                                                          label_smoothing=0.1),
    "cross_entropy ignore_index=2 weight": _cross_entropy_case(ignore_index=2, weight=_CE_WEIGHT),
    "cross_entropy probabilities": _cross_entropy_case(target=_CE_PROBS, weight=_CE_WEIGHT, label_smoothing=0.1),
    "cross_entropy probabilities none": _cross_entropy_case(target=_CE_PROBS, reduction="none"),
    "cross_entropy (N, C, d1, d2)": _cross_entropy_case(shape=(2, 5, 3, 2), target=torch.tensor(
        [[[0, 4], [2, -100], [1, 3]], [[4, 4], [0, 1], [2, 2]]]), label_smoothing=0.1, reduction="none"),
    "cross_entropy (N, C, d) channels non-contiguous": _cross_entropy_case(
        layout=_strided, shape=(2, 5, 3), target=torch.tensor([[0, 4, 2], [1, 1, 3]]), weight=_CE_WEIGHT),
    "cross_entropy unbatched": _cross_entropy_case(shape=(5,), target=torch.tensor(3)),
    "cross_entropy unbatched none": _cross_entropy_case(shape=(5,), target=torch.tensor(3), reduction="none",
                                                        label_smoothing=0.3),
}
for _name, _params in (("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.7}),
                       ("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("gelu tanh", {"approximate": "tanh"}),
                       ("silu", {})):
    _op = _name.split()[0]
    GRAD_CASES[_name] = _activation_case(_op, (3, 4, 5), **_params)
    GRAD_CASES[f"{_name} channels_last"] = _activation_case(_op, (2, 3, 4, 5), layout=_channels_last, **_params)
    GRAD_CASES[f"{_name} non-contiguous"] = _activation_case(_op, (3, 4, 5), layout=_strided, **_params)


@pytest.mark.parametrize("case", GRAD_CASES, ids=list(GRAD_CASES))
def test_gradcheck(case):
    build, fn = GRAD_CASES[case]
    inputs = _grad_inputs(*build())
    assert _ran_fastnn(fn(*inputs)), "fastnn did not run"
    assert torch.autograd.gradcheck(fn, inputs)


DOUBLE_BACKWARD = ["conv2d stride2 pad(1,2) dilation(2,1)", "linear 3-d input no bias", "batch_norm train 4-d",
                   "batch_norm eval 3-d", "max_pool2d k3 s2 p1", "avg_pool2d k3 s2 p1",
                   "max_pool2d dilation(2,3) p1 ceil_mode", "max_pool2d return_indices values",
                   "avg_pool2d k3 s2 p1 ceil_mode count_include_pad=False", "cross_entropy",
                   "cross_entropy label_smoothing weight none", "cross_entropy probabilities", "relu",
                   "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "gelu tanh", "silu"]


@pytest.mark.parametrize("case", DOUBLE_BACKWARD)
def test_double_backward(case):
    """create_graph=True differentiates torch's own backward formulas."""
    build, fn = GRAD_CASES[case]
    assert torch.autograd.gradgradcheck(fn, _grad_inputs(*build()))


def test_gradients_skip_inputs_that_need_none(spy):
    """The first layer's input (data) needs no gradient: fastnn skips dx (input_grad=False)."""
    x = _randn(2, 3, 8, 8)
    w = _randn(4, 3, 3, 3).requires_grad_()
    y = ft.conv2d(x, w, padding=1)
    (dw,) = torch.autograd.grad(y.sum(), w)
    torch.testing.assert_close(dw, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), w)[0])
    assert [name for name, _ in spy] == ["conv2d", "conv2d_backward"]
    xl = _randn(5, 7).requires_grad_()
    wl = _randn(4, 7)
    (dx,) = torch.autograd.grad(ft.linear(xl, wl).sum(), xl)
    torch.testing.assert_close(dx, torch.ones(5, 4, dtype=F64) @ wl)


# --- float32 forwards and gradients against torch ----------------------------------------------------

FLOAT32_CASES = {
    "conv2d": (lambda x, w, b: ft.conv2d(x, w, b, 2, 1), lambda x, w, b: F.conv2d(x, w, b, 2, 1),
               [(8, 3, 16, 16), (16, 3, 5, 5), (16,)]),
    "linear": (ft.linear, F.linear, [(8, 64), (32, 64), (32,)]),
    "batch_norm": (lambda x, g, b: ft.batch_norm(x, None, None, g, b, True),
                   lambda x, g, b: F.batch_norm(x, None, None, g, b, True), [(8, 16, 6, 6), (16,), (16,)]),
    "max_pool2d": (lambda x: ft.max_pool2d(x, 3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), [(4, 8, 9, 9)]),
    "avg_pool2d": (lambda x: ft.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), [(4, 8, 9, 9)]),
    "max_pool2d k3 s2 ceil_mode": (lambda x: ft.max_pool2d(x, 3, 2, ceil_mode=True),
                                   lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), [(4, 8, 10, 11)]),
    "max_pool2d dilation 2": (lambda x: ft.max_pool2d(x, 3, 1, 1, 2), lambda x: F.max_pool2d(x, 3, 1, 1, 2),
                              [(4, 8, 9, 9)]),
    "avg_pool2d k3 s2 p1 ceil_mode count_include_pad=False": (
        lambda x: ft.avg_pool2d(x, 3, 2, 1, True, False), lambda x: F.avg_pool2d(x, 3, 2, 1, True, False),
        [(4, 8, 10, 11)]),
    "avg_pool2d k2 ceil_mode divisor_override": (lambda x: ft.avg_pool2d(x, 2, ceil_mode=True, divisor_override=3),
                                                 lambda x: F.avg_pool2d(x, 2, ceil_mode=True, divisor_override=3),
                                                 [(4, 8, 9, 9)]),
    "gelu": (ft.gelu, F.gelu, [(4, 8, 9, 9)]),
    "gelu tanh": (lambda x: ft.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
                  [(4, 8, 9, 9)]),
    "tanh": (ft.tanh, torch.tanh, [(4, 8, 9, 9)]),
}


@pytest.mark.parametrize("case", FLOAT32_CASES)
def test_float32_matches_torch(case):
    ours, theirs, shapes = FLOAT32_CASES[case]
    inputs = [_randn(*s, dtype=torch.float32, seed=i).requires_grad_() for i, s in enumerate(shapes)]
    y, expected = ours(*inputs), theirs(*inputs)
    assert _ran_fastnn(y)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    dy = _randn(*y.shape, dtype=torch.float32, seed=9)
    for got, want in zip(torch.autograd.grad(y, inputs, dy), torch.autograd.grad(expected, inputs, dy)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("unbatched", [False, True])
def test_max_pool2d_indices_are_torchs(dtype, unbatched, spy):
    """return_indices: torch's int64 indices exactly (ties to the first maximum), from fastnn, with
    and without a graph; max_unpool2d takes them; the module returns them too."""
    x = torch.round(_randn(2, 3, 9, 11, dtype=dtype) * 2)  # many ties
    x = x[0] if unbatched else x
    for args, kwargs in (((2,), {"ceil_mode": True}), ((3, 2, 1), {}), ((3, 2, 1), {"dilation": (2, 1)})):
        y, indices = ft.max_pool2d(x, *args, **kwargs, return_indices=True)
        expected, expected_indices = F.max_pool2d(x, *args, **kwargs, return_indices=True)
        assert indices.dtype == torch.int64 and torch.equal(indices, expected_indices) and torch.equal(y, expected)
        xg = x.clone().requires_grad_()
        y, indices = ft.max_pool2d(xg, *args, **kwargs, return_indices=True)
        assert _ran_fastnn(y) and not indices.requires_grad and torch.equal(indices, expected_indices)
        (dx,) = torch.autograd.grad(y, xg, torch.ones_like(y))
        xt = x.clone().requires_grad_()
        (expected_dx,) = torch.autograd.grad(F.max_pool2d(xt, *args, **kwargs), xt, torch.ones_like(expected))
        assert torch.equal(dx, expected_dx)
    y, indices = ft.max_pool2d(x, 3, 2, 1, return_indices=True)
    expected, expected_indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    unpooled = F.max_unpool2d(y, indices, 3, 2, 1, output_size=x.shape[-2:])
    assert torch.equal(unpooled, F.max_unpool2d(expected, expected_indices, 3, 2, 1, output_size=x.shape[-2:]))
    layer_y, layer_indices = ft.MaxPool2d(2, ceil_mode=True, return_indices=True)(x)
    assert torch.equal(layer_indices, F.max_pool2d(x, 2, ceil_mode=True, return_indices=True)[1])
    assert {name for name, _ in spy} == {"max_pool2d", "max_pool2d_backward"}


def test_pool_modules_with_options_run_fastnn():
    x = _randn(2, 3, 9, 10, dtype=torch.float32).requires_grad_()
    for ours, theirs in ((ft.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)),
                         (ft.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=None),
                          nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
                         (ft.AvgPool2d(2, divisor_override=3), nn.AvgPool2d(2, divisor_override=3))):
        y = ours(x)
        assert _ran_fastnn(y)
        torch.testing.assert_close(y, theirs(x), rtol=1e-5, atol=1e-6)


def test_cross_entropy_float32_matches_torch():
    x = _randn(64, 10, dtype=torch.float32).mul(3).requires_grad_()
    target = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(0))
    loss, expected = ft.cross_entropy(x, target), F.cross_entropy(x, target)
    assert _ran_fastnn(loss) and loss.dtype == torch.float32 and loss.shape == ()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss * 3, x)[0], torch.autograd.grad(expected * 3, x)[0])


CROSS_ENTROPY_OPTIONS = {
    "weight smoothing mean": ((64, 10), dict(weight=True, label_smoothing=0.1)),
    "ignore_index sum": ((64, 10), dict(ignore_index=3, reduction="sum")),
    "smoothing none": ((64, 10), dict(label_smoothing=0.2, reduction="none")),
    "spatial weight ignore 255": ((4, 10, 6, 5), dict(weight=True, ignore_index=255)),
    "probabilities weight smoothing": ((64, 10), dict(probabilities=True, weight=True, label_smoothing=0.1)),
    "spatial probabilities none": ((2, 10, 3, 4), dict(probabilities=True, reduction="none")),
    "unbatched smoothing": ((10,), dict(label_smoothing=0.1)),
}


@pytest.mark.parametrize("case", CROSS_ENTROPY_OPTIONS)
def test_cross_entropy_options_float32_match_torch(case):
    shape, options = CROSS_ENTROPY_OPTIONS[case]
    options = dict(options)
    g = torch.Generator().manual_seed(0)
    x = _randn(*shape, dtype=torch.float32).mul(3).requires_grad_()
    if options.pop("probabilities", False):
        target = _randn(*shape, dtype=torch.float32, seed=1).softmax(1 if len(shape) > 1 else 0)
    else:
        target = torch.randint(0, shape[1] if len(shape) > 1 else shape[0], shape[:1] + shape[2:] if len(shape) > 1
                               else (), generator=g)
        if options.get("ignore_index") == 255:
            target[0] = 255
    if options.pop("weight", False):
        options["weight"] = torch.linspace(0.5, 2.0, x.shape[1 if len(shape) > 1 else 0])
    loss, expected = ft.cross_entropy(x, target, **options), F.cross_entropy(x, target, **options)
    assert _ran_fastnn(loss) and loss.dtype == torch.float32 and loss.shape == expected.shape
    torch.testing.assert_close(loss, expected)
    dy = torch.randn(loss.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(torch.autograd.grad(loss, x, dy)[0], torch.autograd.grad(expected, x, dy)[0])
    with torch.no_grad():  # no graph: the forward alone, still on fastnn
        torch.testing.assert_close(ft.cross_entropy(x, target, **options), expected.detach())


def test_cross_entropy_legacy_arguments_map_to_reduction(spy):
    x, target = _x(4, 5), torch.tensor([0, 1, 4, 2])
    for legacy in (dict(size_average=False), dict(reduce=False), dict(size_average=True, reduce=True)):
        with pytest.warns(UserWarning, match="deprecated"):
            expected = F.cross_entropy(x, target, **legacy)
        with pytest.warns(UserWarning, match="deprecated"):
            got = ft.cross_entropy(x, target, **legacy)
        torch.testing.assert_close(got, expected)
    assert [name for name, _ in spy] == ["softmax_cross_entropy"] * 3


def test_cross_entropy_invalid_calls_raise_torch_errors():
    x = _x(4, 5)
    for call in (lambda f: f.cross_entropy(x, _x(4, 5).softmax(1), ignore_index=1),
                 lambda f: f.cross_entropy(x, torch.tensor([0, 1, 5, 2])),
                 lambda f: f.cross_entropy(x, torch.tensor([0, 1, 4, 2]), torch.ones(4)),
                 lambda f: f.cross_entropy(x, torch.tensor([0, 1, 4, 2]), label_smoothing=1.5)):
        with pytest.raises((RuntimeError, IndexError, ValueError)) as theirs:
            call(F)
        with pytest.raises(type(theirs.value)) as ours:
            call(ft)
        assert str(ours.value) == str(theirs.value)


def test_cross_entropy_loss_module():
    weight = torch.linspace(0.5, 2.0, 5)
    theirs = nn.CrossEntropyLoss(weight=weight, ignore_index=1, label_smoothing=0.1, reduction="sum")
    ours = ft.CrossEntropyLoss(weight=weight, ignore_index=1, label_smoothing=0.1, reduction="sum")
    assert isinstance(ours, nn.CrossEntropyLoss) and repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = _x(6, 5).requires_grad_()
    target = torch.tensor([0, 1, 4, 2, 1, 3])
    loss, expected = ours(x, target), theirs(x, target)
    assert _ran_fastnn(loss)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], torch.autograd.grad(expected, x)[0])
    converted = ft.convert(nn.Sequential(nn.Linear(3, 5), nn.CrossEntropyLoss()))
    assert type(converted[1]) is ft.CrossEntropyLoss


def test_no_grad_and_inference_mode_run_fastnn(spy):
    x, w = _randn(2, 3, 8, 8, dtype=torch.float32), _randn(4, 3, 3, 3, dtype=torch.float32).requires_grad_()
    expected = F.conv2d(x, w.detach())
    with torch.no_grad():
        y = ft.conv2d(x, w)
    with torch.inference_mode():
        z = ft.relu(ft.conv2d(x, w))
    assert y.grad_fn is None and not y.requires_grad
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z, expected.relu(), rtol=1e-4, atol=1e-5)
    assert [name for name, _ in spy] == ["conv2d", "conv2d", "relu"]


def test_pointwise_outputs_keep_the_input_layout():
    x = _channels_last(_randn(2, 3, 4, 5))
    y = ft.relu(x)
    assert y.stride() == x.stride()
    torch.testing.assert_close(y, x.relu())
    t = _randn(4, 6).t()
    assert ft.silu(t).stride() == t.stride()


# --- in place -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, args", [("relu", ()), ("leaky_relu", (0.1,)), ("elu", (1.0,)), ("silu", ())])
def test_inplace_without_graph(name, args, spy):
    x = _channels_last(_randn(2, 3, 4, 5))
    expected = getattr(F, name)(x.clone(), *args)
    version = x._version
    y = getattr(ft, name)(x, *args, inplace=True)
    assert y is x and x._version > version  # versioned as torch's in-place ops: saved copies are checked
    torch.testing.assert_close(x, expected)
    assert [n for n, _ in spy] == [name]


@pytest.mark.parametrize("name, args", [("relu", ()), ("leaky_relu", (0.1,))])
def test_inplace_with_graph(name, args):
    a = _randn(4, 5).requires_grad_()
    h = a * 2
    y = getattr(ft, name)(h, *args, inplace=True)
    assert y is h and _ran_fastnn(y)
    (da,) = torch.autograd.grad(y.sum(), a)
    a2 = a.detach().requires_grad_()
    (expected,) = torch.autograd.grad(getattr(F, name)(a2 * 2, *args, inplace=True).sum(), a2)
    torch.testing.assert_close(da, expected)


def test_inplace_on_a_view_and_on_saved_tensors_behaves_as_torch():
    a = _randn(4, 5).requires_grad_()
    h = a * 1
    ft.relu(h[1:3], inplace=True)
    (da,) = torch.autograd.grad(h.sum(), a)
    expected = torch.ones(4, 5, dtype=F64)
    expected[1:3] = (a[1:3] > 0).double()
    torch.testing.assert_close(da, expected)
    w = _randn(3, 4).requires_grad_()
    x = _randn(2, 4)
    y = x @ w.t()  # saves x
    ft.relu(x, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ft.relu(_randn(3).requires_grad_(), inplace=True)


def test_inplace_that_fastnn_cannot_differentiate_runs_torch():
    for name, args in (("elu", (1.0,)), ("silu", ()), ("leaky_relu", (-0.5,))):
        a = _randn(4, 5).requires_grad_()
        y = getattr(ft, name)(a * 1, *args, inplace=True)
        expected = getattr(F, name)(a * 1, *args, inplace=True)
        assert not _ran_fastnn(y) and torch.equal(y, expected)
        if name != "leaky_relu":  # torch has no gradient for a negative slope in place: its error below
            assert torch.equal(torch.autograd.grad(y.sum(), a)[0], torch.autograd.grad(expected.sum(), a)[0])
    with pytest.raises(RuntimeError, match="negative slope"):
        y.sum().backward()
    overlapping = torch.zeros(1, 3).expand(2, 3)
    with pytest.raises(RuntimeError):  # torch's own error for writing overlapping memory
        ft.relu(overlapping, inplace=True)


# --- what fastnn does not cover: torch's own function, torch's exact answer ------------------------

def _x(*shape, dtype=torch.float32):
    return _randn(*shape, dtype=dtype)


FALLBACKS = {
    "conv2d bfloat16": lambda f: f.conv2d(_x(2, 3, 6, 6, dtype=torch.bfloat16), _x(4, 3, 3, 3, dtype=torch.bfloat16)),
    "conv2d float16": lambda f: f.conv2d(_x(2, 3, 6, 6, dtype=torch.float16), _x(4, 3, 3, 3, dtype=torch.float16)),
    "linear bfloat16": lambda f: f.linear(_x(3, 4, dtype=torch.bfloat16), _x(2, 4, dtype=torch.bfloat16)),
    "linear 1-d weight": lambda f: f.linear(_x(3, 4), _x(4)),
    "batch_norm eval eps 0": lambda f: f.batch_norm(_x(4, 3), torch.zeros(3), torch.ones(3).add(1), eps=0.0),
    "batch_norm float16": lambda f: f.batch_norm(_x(4, 3, dtype=torch.float16), None, None, training=True),
    "batch_norm 6-d": lambda f: f.batch_norm(_x(2, 3, 2, 2, 2, 2), None, None, training=True),
    "max_pool2d float16": lambda f: f.max_pool2d(_x(2, 3, 6, 6, dtype=torch.float16), 2),
    "max_pool2d bfloat16 return_indices": lambda f: f.max_pool2d(_x(2, 3, 7, 7, dtype=torch.bfloat16), 2,
                                                                 ceil_mode=True, return_indices=True),
    "avg_pool2d float16 ceil_mode": lambda f: f.avg_pool2d(_x(2, 3, 7, 7, dtype=torch.float16), 2, ceil_mode=True),
    "relu float16": lambda f: f.relu(_x(3, 4, dtype=torch.float16)),
    "sigmoid bfloat16": lambda f: f.sigmoid(_x(3, 4, dtype=torch.bfloat16)),
    "relu int": lambda f: f.relu(torch.arange(-3, 3)),
    "cross_entropy uint8 target": lambda f: f.cross_entropy(_x(4, 5), torch.tensor([0, 1, 4, 2], dtype=torch.uint8)),
    "cross_entropy bfloat16": lambda f: f.cross_entropy(_x(4, 5, dtype=torch.bfloat16), torch.tensor([0, 1, 4, 2])),
    "cross_entropy probabilities that require grad": lambda f: f.cross_entropy(
        _x(4, 5), _x(4, 5).softmax(1).requires_grad_()),
    "cross_entropy negative label_smoothing": lambda f: f.cross_entropy(_x(4, 5), torch.tensor([0, 1, 4, 2]),
                                                                        label_smoothing=-0.5),
}


@pytest.mark.parametrize("case", FALLBACKS)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's own, both calls
def test_fallback_gives_torch_answer(case, spy):
    expected = FALLBACKS[case](F)
    got = FALLBACKS[case](ft)
    if isinstance(expected, tuple):
        assert all(torch.equal(g, e) for g, e in zip(got, expected))
    else:
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    assert not spy, f"fastnn ran: {spy}"


def test_fallback_gradients_are_torch_gradients():
    x = _x(2, 3, 7, 7, dtype=torch.bfloat16).requires_grad_()  # a dtype fastnn lacks
    y = ft.max_pool2d(x, 2, ceil_mode=True)
    assert not _ran_fastnn(y)
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(dx, torch.autograd.grad(F.max_pool2d(x, 2, ceil_mode=True).sum(), x)[0])


def test_running_stats_that_require_grad_get_torch_error():
    x = _x(4, 3).requires_grad_()
    mean = torch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'running_mean'"):
        ft.batch_norm(x, mean, torch.ones(3), training=False)


# torch's first forward-mode AD call loads decompositions with the deprecated torch.jit.script
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_modes_and_transforms_run_torch():
    """autocast, forward-mode AD, vmap, torch.func and meta tensors: torch's own functions."""
    x, w = _x(2, 3, 8, 8), _x(4, 3, 3, 3)
    with torch.autocast("cpu"):
        assert ft.conv2d(x, w).dtype == F.conv2d(x, w).dtype == torch.bfloat16
        assert torch.equal(ft.linear(_x(5, 8), _x(4, 8)), F.linear(_x(5, 8), _x(4, 8)))
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        assert torch.equal(fwAD.unpack_dual(ft.tanh(dual)).tangent, fwAD.unpack_dual(torch.tanh(dual)).tangent)
    assert torch.equal(torch.vmap(ft.gelu)(x), F.gelu(x))
    torch.testing.assert_close(torch.func.grad(lambda t: ft.silu(t).sum())(x),
                               torch.func.grad(lambda t: F.silu(t).sum())(x))
    meta = torch.empty(2, 3, 8, 8, device="meta")
    assert ft.max_pool2d(meta, 2).shape == (2, 3, 4, 4)


def test_invalid_calls_raise_torch_errors():
    x, w = _x(2, 3, 8, 8), _x(4, 2, 3, 3)
    with pytest.raises(RuntimeError) as ours:
        ft.conv2d(x, w)
    with pytest.raises(RuntimeError) as theirs:
        F.conv2d(x, w)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ft.batch_norm(_x(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError):
        ft.max_pool2d(x, 2, padding=2)  # torch: padding at most half the kernel
    with pytest.raises(TypeError) as ours:  # torch's functional refuses momentum=None (the modules' option)
        ft.batch_norm(_x(4, 3), torch.zeros(3), torch.ones(3), training=True, momentum=None)
    with pytest.raises(TypeError) as theirs:
        F.batch_norm(_x(4, 3), torch.zeros(3), torch.ones(3), training=True, momentum=None)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError) as ours:
        ft.gelu(x, approximate="tan")
    with pytest.raises(RuntimeError) as theirs:
        F.gelu(x, approximate="tan")
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError) as ours:  # fastnn refuses it too: torch's own error
        ft.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(RuntimeError) as theirs:
        F.avg_pool2d(x, 2, divisor_override=0)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError, match="divisor_override"):
        ft.avg_pool2d(x, 2, divisor_override=True)


# --- modules ----------------------------------------------------------------------------------------

MODULES = {
    "Conv2d": ((3, 8, 3), dict(stride=2, padding=1, groups=1, bias=True), (2, 3, 9, 9)),
    "Linear": ((12, 5), {}, (4, 12)),
    "BatchNorm1d": ((6,), dict(momentum=0.2), (8, 6, 3)),
    "BatchNorm2d": ((3,), {}, (4, 3, 5, 5)),
    "BatchNorm3d": ((3,), dict(momentum=None), (4, 3, 2, 5, 3)),
    "Conv2d same": ((3, 8, (4, 3)), dict(padding="same", dilation=(1, 2)), (2, 3, 7, 7)),
    "ReLU": ((), {}, (2, 3, 4, 4)),
    "LeakyReLU": ((0.2,), {}, (2, 3, 4, 4)),
    "ELU": ((0.5,), {}, (2, 3, 4, 4)),
    "Sigmoid": ((), {}, (2, 3, 4, 4)),
    "Tanh": ((), {}, (2, 3, 4, 4)),
    "GELU": ((), {}, (2, 3, 4, 4)),
    "GELU tanh": ((), dict(approximate="tanh"), (2, 3, 4, 4)),
    "SiLU": ((), {}, (2, 3, 4, 4)),
    "MaxPool2d": ((3, 2, 1), {}, (2, 3, 8, 8)),
    "AvgPool2d": ((2,), {}, (2, 3, 8, 8)),
}


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's own
def test_module_is_torch_module_with_same_state_and_results(name):
    args, kwargs, shape = MODULES[name]
    name = name.split()[0]  # "GELU tanh": the class, then its variant
    torch.manual_seed(0)
    theirs = getattr(nn, name)(*args, **kwargs)
    torch.manual_seed(0)
    ours = getattr(ft, name)(*args, **kwargs)
    assert isinstance(ours, getattr(nn, name)) and type(ours) is not getattr(nn, name)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (key, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(a, b), key
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = _randn(*shape, dtype=torch.float32, seed=5).requires_grad_()
        y, expected = ours(x), theirs(x)
        assert _ran_fastnn(y)
        torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
        for (key, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            torch.testing.assert_close(a, b, msg=key)


@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"])
@pytest.mark.parametrize("kwargs", [dict(momentum=None), dict(track_running_stats=False), dict(affine=False),
                                    dict(bias=False)], ids=["momentum=None", "no running stats", "no affine",
                                                            "no bias"])
def test_batch_norm_modules_track_statistics_as_torch(cls, kwargs):
    ours, theirs = getattr(ft, cls)(4, **kwargs), getattr(nn, cls)(4, **kwargs)
    shape = {"BatchNorm1d": (6, 4, 3), "BatchNorm2d": (6, 4, 3, 2), "BatchNorm3d": (3, 4, 3, 2, 2)}[cls]
    for step in range(5):
        x = _randn(*shape, dtype=torch.float32, seed=step) * (step + 1) + step
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
    for (key, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        torch.testing.assert_close(a, b, msg=key)
    if theirs.num_batches_tracked is not None:
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 5
    ours.eval()
    theirs.eval()
    x = _randn(*shape, dtype=torch.float32, seed=9)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_conv2d_padding_modes_run_torch():
    torch.manual_seed(0)
    theirs = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    ours = ft.convert(copy.deepcopy(theirs))
    x = _x(2, 3, 6, 6)
    assert type(ours) is ft.Conv2d and torch.equal(ours(x), theirs(x))


def test_linear_weight_in_fastnn_layout():
    layer = ft.Linear(6, 4)
    assert layer.weight.shape == (4, 6) and layer.weight.t().is_contiguous()
    x = _x(3, 6).requires_grad_()
    layer(x).sum().backward()
    assert layer.weight.grad.stride() == layer.weight.stride()  # autograd kept fastnn's gradient as is
    torch.testing.assert_close(layer.weight.grad, torch.ones(3, 4).t() @ x.detach())


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _MyLinear(nn.Linear):
    pass


def test_convert_swaps_in_place_sharing_parameters_buffers_and_mode():
    torch.manual_seed(0)
    model = nn.Sequential(_Block(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 5), _MyLinear(5, 3))
    model[0].bn.eval()
    params = {k: (p, p.detach().clone()) for k, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    seen = []
    model[0].conv.register_forward_hook(lambda module, args, output: seen.append(type(module)))
    assert ft.convert(model) is model
    assert type(model[0].conv) is ft.Conv2d and type(model[0].bn) is ft.BatchNorm2d
    assert type(model[0].act) is ft.ReLU and model[0].act.inplace
    assert type(model[1]) is ft.MaxPool2d and type(model[3]) is ft.Linear
    assert type(model[2]) is nn.Flatten and type(model[4]) is _MyLinear  # not supported / a user's subclass
    assert type(model[0]) is _Block
    for key, p in model.named_parameters():
        assert p is params[key][0] and torch.equal(p, params[key][1])
    for key, b in model.named_buffers():
        assert b is buffers[key]
    assert model.training and not model[0].bn.training and model[0].conv.training
    model(_x(2, 3, 4, 4))
    assert seen == [ft.Conv2d]
    single = nn.Tanh()
    assert ft.convert(single) is single and type(single) is ft.Tanh


def _small_convnet():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False), nn.LeakyReLU(0.1), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 32), nn.SiLU(),
        nn.Linear(32, 16), nn.ELU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 10),
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_converted_model_trains_like_the_original(optimizer):
    torch.manual_seed(0)
    original = _small_convnet()
    converted = ft.convert(copy.deepcopy(original))
    assert all(type(m).__module__.startswith("fastnn.torch") for m in converted if not isinstance(m, nn.Flatten))
    rng = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 3, 16, 16, generator=rng), torch.randint(0, 10, (16,), generator=rng))
            for _ in range(4)]
    losses = {}
    for name, model, loss_fn in (("torch", original, F.cross_entropy), ("fastnn", converted, ft.cross_entropy)):
        if optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses[name] = []
        for step in range(20):
            x, y = data[step % len(data)]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    # float32 rounding (about 1e-7 here), grown over 20 steps: a wrong gradient would differ from step 2
    np.testing.assert_allclose(losses["fastnn"], losses["torch"], rtol=1e-5)
    assert losses["torch"][16] < losses["torch"][0]  # the same batch, after 4 epochs: it learns
    original.eval()
    converted.eval()
    x = data[0][0]
    torch.testing.assert_close(converted(x), original(x), rtol=2e-3, atol=2e-4)


def test_state_dict_round_trips():
    torch.manual_seed(0)
    original = _small_convnet()
    converted = ft.convert(copy.deepcopy(original))
    x = _x(4, 3, 16, 16)
    converted(x)  # training mode: moves the running statistics and num_batches_tracked
    state = converted.state_dict()
    assert list(state) == list(original.state_dict())
    plain = _small_convnet()
    plain.load_state_dict(state)
    for (key, a), (_, b) in zip(plain.state_dict().items(), state.items()):
        assert torch.equal(a, b), key
    fresh = ft.convert(_small_convnet())
    fresh.load_state_dict(plain.state_dict())
    for (key, a), (_, b) in zip(fresh.state_dict().items(), state.items()):
        assert torch.equal(a, b), key
    fresh.eval()
    plain.eval()
    torch.testing.assert_close(fresh(x), plain(x), rtol=1e-4, atol=1e-5)


# --- threads ---------------------------------------------------------------------------------------

@pytest.fixture
def torch_threads():
    before, explicit = torch.get_num_threads(), fastnn._threads._explicit
    fastnn._threads._explicit = None
    yield
    torch.set_num_threads(before)
    fastnn._threads._explicit = explicit


@pytest.mark.skipif(fastnn._threads._MAX_THREADS < 2, reason="needs 2 cores")
def test_fastnn_follows_torch_threads_unless_set(torch_threads, spy):
    x = _x(2, 3, 8, 8)
    torch.set_num_threads(1)
    ft.relu(x)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(ft.relu(x)))  # a thread torch has not run in
    worker.start()
    worker.join()
    torch.set_num_threads(2)
    ft.relu(x)
    fastnn.set_num_threads(1)
    ft.relu(x)
    assert spy == [("relu", 1), ("relu", 1), ("relu", 2), ("relu", 1)]
    assert fastnn.get_num_threads() == 1


_THREAD_USE = """
import os, sys, time
import torch, numpy as np, fastnn, fastnn.torch as ft

def busy_threads(fn):
    '''Threads of this process that ran for at least a tenth of the busiest one's time during fn().'''
    def cpu():
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks
    before = cpu()
    fn()
    after = cpu()
    used = [after[t] - before.get(t, 0) for t in after]
    return sum(u >= max(used) / 10 for u in used)

torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(64, 32, 32, 32)
w = torch.randn(64, 32, 3, 3)
out = []
for backend in ("cython", "numba"):
    with fastnn.use_backend(backend):
        ft.conv2d(x, w, padding=1)  # compile / warm up
        out.append(busy_threads(lambda: [ft.conv2d(x, w, padding=1) for _ in range(int(sys.argv[2]))]))
print(*out)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or fastnn._threads._MAX_THREADS < 2,
                    reason="reads /proc; needs 2 cores")
def test_torch_set_num_threads_reaches_both_backends():
    """End to end: the threads that actually burn CPU during fastnn calls, after torch.set_num_threads."""
    def busy(threads):
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(_THREAD_USE), str(threads), "6"],
                             capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr
        return [int(n) for n in out.stdout.split()]
    assert busy(1) == [1, 1]
    assert busy(2) == [2, 2]


def test_import_fastnn_torch_imports_torch():
    """(`import fastnn` alone never does: tests/test_backends.py.)"""
    code = "import sys, fastnn.torch; print('torch' in sys.modules, fastnn.torch.Conv2d.__mro__[1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "<class", "'torch.nn.modules.conv.Conv2d'>"]


def test_torch_compile_of_a_converted_model_gives_torch_answer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    converted = ft.convert(copy.deepcopy(model))
    x = _x(2, 3, 4, 4)
    compiled = torch.compile(converted, backend="eager")  # dynamo's tracing, no code generation
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_readme_example_runs():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## fastnn inside PyTorch"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    exec(code[:code.index("```")], {})
