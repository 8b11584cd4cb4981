"""torch.nn.functional's functions on fastnn's kernels, differentiable through torch.autograd.

Each function takes torch.nn.functional's arguments (names, order, defaults, layouts) and returns
what it returns. The fast path: plain CPU float32/float64 tensors in eager mode go to fastnn as
zero-copy NumPy views (`Tensor.numpy()`, any strides: fastnn copies to contiguous when it needs
to), its results come back through `torch.from_numpy`, and a `torch.autograd.Function` per op runs
fastnn's backward kernels. Everything else runs torch's own function, so a valid torch call never
fails and never gives another answer: other devices, dtypes, layouts and tensor subclasses,
autocast, tracing, torch.compile, torch function/dispatch modes, forward-mode AD,
options fastnn lacks (see each function), and any argument fastnn rejects (torch then raises its
own error for an invalid call). Double backward (`create_graph=True`) differentiates torch's own
backward formulas, recomputing the forward with torch where needed.

Threads: every fastnn call runs with `torch.get_num_threads()` threads unless
`fastnn.set_num_threads` was called.
"""
from __future__ import annotations

import math
import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

import fastnn
from fastnn import _threads

__all__ = [
    "conv2d", "linear", "batch_norm", "max_pool2d", "avg_pool2d", "relu", "leaky_relu", "elu",
    "sigmoid", "tanh", "gelu", "silu", "cross_entropy",
]

_FLOATS = (torch.float32, torch.float64)
_PLAIN = (torch.Tensor, torch.nn.Parameter)  # subclasses may override torch functions: torch runs them
_UNSUPPORTED = (ValueError, TypeError, RuntimeError)  # fastnn rejects an argument, .numpy() refuses a tensor
_aten = torch.ops.aten
_C = torch._C
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch >= 2.3
_is_autocast = getattr(_C, "_is_any_autocast_enabled", None) or (
    lambda: torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled())  # older torch


# --- when fastnn runs, and how tensors cross over ------------------------------------------------

def _eager():
    """Plain eager mode: nothing that must see torch's own ops (autocast computes in lower precision;
    tracers, compilers and modes record or redirect ops; custom Functions have no forward-mode AD)."""
    return not (_is_autocast() or _C._get_tracing_state() is not None
                or _C._len_torch_function_stack() or _C._len_torch_dispatch_stack()
                or forward_ad._current_level >= 0 or _is_compiling())


def _fast(x, *others):
    """fastnn can take these tensors: plain strided CPU tensors, float32 or float64, one dtype (empty
    ones too: an empty shape fastnn rejects goes to torch, like any argument it rejects). None
    entries (optional arguments) pass."""
    if not _eager():
        return False
    dtype = x.dtype
    if dtype not in _FLOATS:
        return False
    for t in (x, *others):
        if t is None:
            continue
        if (type(t) not in _PLAIN or t.dtype is not dtype or not t.is_cpu or t.layout is not torch.strided
                or t.is_nested):
            return False
    return True


def _needs_graph(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _np(t):
    """The tensor's memory as a NumPy array (no copy), or None."""
    return None if t is None else t.detach().numpy()


def _tensor(a):
    return torch.from_numpy(a)


def _call(fn, *args, **kwargs):
    """A fastnn call with torch's thread count (fastnn.set_num_threads overrides it)."""
    with _threads.host_threads(torch.get_num_threads()):
        return fn(*args, **kwargs)


def _pair(value):
    """An int or a 1- or 2-sequence of ints (torch expands one value) as an (h, w) tuple; None if not."""
    try:
        if isinstance(value, (tuple, list, torch.Size)):
            if len(value) == 1:
                return (operator.index(value[0]),) * 2
            if len(value) == 2:
                return operator.index(value[0]), operator.index(value[1])
            return None
        return (operator.index(value),) * 2
    except TypeError:
        return None


def _torch_grads(forward, inputs, needs, grad_output):
    """Gradients from torch's own autograd, by recomputing the forward in torch: the create_graph
    (double backward) path, where the gradient itself must be differentiable."""
    with torch.enable_grad():
        output = forward(*inputs)
    wanted = [t for t, need in zip(inputs, needs) if need]
    grads = iter(torch.autograd.grad(output, wanted, grad_output, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in needs)


# --- activations ---------------------------------------------------------------------------------

def _dense_order(t):
    """The dimension order in which t's memory is C-contiguous (channels_last NCHW: (0, 2, 3, 1)), or
    None when t is contiguous already or has gaps or overlaps."""
    if t.is_contiguous():
        return None
    strides = t.stride()
    order = sorted(range(t.dim()), key=lambda d: -strides[d])
    return order if t.permute(order).is_contiguous() else None


def _pointwise(fn, like, *tensors, args=(), out=None):
    """fn over the tensors' memory in `like`'s own dimension order, so a dense input of any layout
    (channels_last included) goes in and out without a copy; the result has `like`'s strides, as
    torch's pointwise ops give."""
    order = _dense_order(like)
    arrays = [_np(t) for t in tensors]
    if order is not None:
        arrays = [a.transpose(order) for a in arrays]
        if out is not None:
            out = out.transpose(order)
    kwargs = {} if out is None else {"out": out}
    y = _call(fn, *arrays, *args, **kwargs)
    if order is not None:
        y = y.transpose(np.argsort(order))
    return y


class _Activation:
    """One activation: fastnn's forward and backward, whether the backward takes the output (y) or the
    input (x), torch's forward and its differentiable backward (for double backward), and whether its
    in-place form can take its gradient from the output."""

    def __init__(self, name, from_output, torch_forward, torch_backward, inplace_from_output=None):
        self.name = name
        self.from_output = from_output
        self.torch_forward = torch_forward  # (x, *args, inplace) -> y
        self.torch_backward = torch_backward  # (dy, saved, *args) -> dx
        self.inplace_from_output = inplace_from_output  # (*args) -> bool

    def forward(self, *arrays, **kwargs):
        return getattr(fastnn, self.name)(*arrays, **kwargs)

    def backward(self, *arrays):
        return getattr(fastnn, self.name + "_backward")(*arrays)


class _ActivationFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, act, args):
        y = _tensor(_pointwise(act.forward, x, x, args=args))
        ctx.act, ctx.args = act, args
        ctx.save_for_backward(y if act.from_output else x)
        return y

    @staticmethod
    def backward(ctx, dy):
        (saved,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return ctx.act.torch_backward(dy, saved, *ctx.args), None, None
        return _tensor(_pointwise(ctx.act.backward, saved, dy, saved, args=ctx.args)), None, None


class _InplaceActivationFn(torch.autograd.Function):
    """Overwrites x with the activation (marked dirty: autograd checks and versions it as torch's own
    in-place ops); the gradient comes from the output (relu, leaky_relu with a slope >= 0: same sign
    as the input, so the same branch)."""

    @staticmethod
    def forward(ctx, x, act, args):
        a = _np(x)
        _pointwise(act.forward, x, x, args=args, out=a)
        ctx.act, ctx.args = act, args
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    backward = _ActivationFn.backward  # the saved tensor is the output, which the backward takes


def _activation(act, x, args=(), inplace=False):
    if not _fast(x):
        return act.torch_forward(x, *args, inplace=inplace)
    try:
        if inplace:
            return _activation_inplace(act, x, args)
        if _needs_graph(x):
            return _ActivationFn.apply(x, act, args)
        return _tensor(_pointwise(act.forward, x, x, args=args))
    except _UNSUPPORTED:
        return act.torch_forward(x, *args, inplace=inplace)


def _activation_inplace(act, x, args):
    dense = x.is_contiguous() or _dense_order(x) is not None  # no overlaps: every element written once
    if not dense or x.is_inference():
        return act.torch_forward(x, *args, inplace=True)
    if _needs_graph(x):
        # torch refuses in-place on a leaf that requires grad, and some activations need the input
        if x.is_leaf or act.inplace_from_output is None or not act.inplace_from_output(*args):
            return act.torch_forward(x, *args, inplace=True)
        return _InplaceActivationFn.apply(x, act, args)
    _pointwise(act.forward, x, x, args=args, out=_np(x))
    torch.autograd.graph.increment_version(x)  # a graph that saved x sees the change, as with torch's ops
    return x


_RELU = _Activation("relu", False, lambda x, inplace: F.relu(x, inplace),
                    lambda dy, x: _aten.threshold_backward(dy, x, 0), lambda: True)
_LEAKY_RELU = _Activation("leaky_relu", False, lambda x, slope, inplace: F.leaky_relu(x, slope, inplace),
                          lambda dy, x, slope: _aten.leaky_relu_backward(dy, x, slope, False),
                          lambda slope: slope >= 0)
_ELU = _Activation("elu", False, lambda x, alpha, inplace: F.elu(x, alpha, inplace),
                   lambda dy, x, alpha: _aten.elu_backward(dy, alpha, 1, 1, False, x))
_SIGMOID = _Activation("sigmoid", True, lambda x, inplace: torch.sigmoid(x),
                       lambda dy, y: _aten.sigmoid_backward(dy, y))
_TANH = _Activation("tanh", True, lambda x, inplace: torch.tanh(x), lambda dy, y: _aten.tanh_backward(dy, y))
_GELU = _Activation("gelu", False, lambda x, approximate, inplace: F.gelu(x, approximate=approximate),
                    lambda dy, x, approximate: _aten.gelu_backward(dy, x, approximate=approximate))
_SILU = _Activation("silu", False, lambda x, inplace: F.silu(x, inplace),  # aten's silu_backward has no derivative
                    lambda dy, x: _torch_grads(F.silu, (x,), (True,), dy)[0])


def _real(value):
    """A Python float from a real number (a 0-d tensor included); TypeError otherwise."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a slope")
    return float(value)


def relu(input, inplace=False):
    """ReLU, as ``torch.nn.functional.relu``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.
    inplace : bool, default False
        Overwrite `input` and return it. Runs in place on fastnn when the tensor has no gaps or
        overlaps (torch's own in-place ReLU otherwise, and for a leaf that requires grad, which
        torch refuses).

    Returns
    -------
    torch.Tensor
        ``max(input, 0)``, laid out as `input`.
    """
    return _activation(_RELU, input, (), inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """Leaky ReLU, as ``torch.nn.functional.leaky_relu``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.
    negative_slope : float, default 0.01
        Slope for ``input <= 0``.
    inplace : bool, default False
        Overwrite `input`; with autograd, on fastnn only for ``negative_slope >= 0`` (torch's own
        otherwise, as for :func:`relu`).

    Returns
    -------
    torch.Tensor
        ``where(input > 0, input, negative_slope * input)``.
    """
    try:
        slope = _real(negative_slope)
    except (TypeError, ValueError):
        return F.leaky_relu(input, negative_slope, inplace)
    return _activation(_LEAKY_RELU, input, (slope,), inplace)


def elu(input, alpha=1.0, inplace=False):
    """ELU, as ``torch.nn.functional.elu``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.
    alpha : float, default 1.0
        ``alpha * (exp(x) - 1)`` for ``x <= 0``.
    inplace : bool, default False
        Overwrite `input`; with autograd this runs torch's own in-place ELU (fastnn's gradient needs
        the input).

    Returns
    -------
    torch.Tensor
    """
    try:
        alpha_value = _real(alpha)
    except (TypeError, ValueError):
        return F.elu(input, alpha, inplace)
    return _activation(_ELU, input, (alpha_value,), inplace)


def sigmoid(input):
    """Logistic sigmoid, as ``torch.nn.functional.sigmoid``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.

    Returns
    -------
    torch.Tensor
        ``1 / (1 + exp(-input))``; the backward uses this output.
    """
    return _activation(_SIGMOID, input)


def tanh(input):
    """Hyperbolic tangent, as ``torch.nn.functional.tanh``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.

    Returns
    -------
    torch.Tensor
        ``tanh(input)``; the backward uses this output.
    """
    return _activation(_TANH, input)


def gelu(input, approximate="none"):
    """GELU, as ``torch.nn.functional.gelu``, on fastnn's kernels (both forms).

    Parameters
    ----------
    input : torch.Tensor
        Any shape.
    approximate : {"none", "tanh"}, default "none"
        "none": the exact erf form; "tanh": torch's tanh approximation (fastnn's own kernels for
        both). Any other value runs torch's function, which raises its error.

    Returns
    -------
    torch.Tensor
        ``input * Phi(input)``, or its tanh approximation.
    """
    if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
        return F.gelu(input, approximate=approximate)
    return _activation(_GELU, input, (approximate,))


def silu(input, inplace=False):
    """SiLU (swish), as ``torch.nn.functional.silu``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape.
    inplace : bool, default False
        Overwrite `input`; with autograd this runs torch's own in-place SiLU (fastnn's gradient needs
        the input).

    Returns
    -------
    torch.Tensor
        ``input * sigmoid(input)``.
    """
    return _activation(_SILU, input, (), inplace)


# --- convolution ---------------------------------------------------------------------------------

def _conv_params(weight, stride, padding, dilation, groups):
    """(stride, padding, dilation, groups) as fastnn takes them ("valid" and "same" as such: fastnn
    places an odd "same" total as torch does), or None for what torch must answer (its errors)."""
    stride, dilation = _pair(stride), _pair(dilation)
    if stride is None or dilation is None:
        return None
    if isinstance(padding, str):
        if padding == "valid" or (padding == "same" and stride == (1, 1)):
            return stride, padding, dilation, _groups(groups)
        return None  # torch's error
    return stride, _pair(padding), dilation, _groups(groups)


def _groups(groups):
    """groups as an int, or None."""
    if isinstance(groups, bool):
        return None
    try:
        return operator.index(groups)
    except TypeError:
        return None


class _Conv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, params):
        ctx.params = params
        ctx.save_for_backward(x, weight, bias)
        return _tensor(_call(fastnn.conv2d, _np(x), _np(weight), _np(bias), *params))

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            return _torch_grads(lambda *a: F.conv2d(*a, *ctx.params), (x, weight, bias), needs, dy) + (None,)
        dx, dw, db = _call(fastnn.conv2d_backward, _np(dy), _np(x), _np(weight), *ctx.params,
                           input_grad=needs[0])
        return (_tensor(dx) if needs[0] else None, _tensor(dw) if needs[1] else None,
                _tensor(db) if needs[2] else None, None)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution, as ``torch.nn.functional.conv2d``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W) or unbatched (C, H, W); any strides (channels_last included).
    weight : torch.Tensor
        (F, C // groups, KH, KW).
    bias : torch.Tensor or None, default None
        (F,).
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int), "valid" or "same", default 0
        Zero padding on both sides; "same" (stride 1) with an odd total puts the extra row/column at
        the bottom/right, as torch does (fastnn's kernels either way).
    groups : int, default 1

    Returns
    -------
    torch.Tensor
        (N, F, Ho, Wo), or (F, Ho, Wo) for an unbatched input; contiguous.
    """
    params = _conv_params(weight, stride, padding, dilation, groups)
    if (params is None or None in params or input.dim() not in (3, 4) or weight.dim() != 4
            or not _fast(input, weight, bias)):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    try:  # fastnn takes an unbatched (C, H, W) input as such
        if _needs_graph(input, weight, bias):
            return _Conv2dFn.apply(input, weight, bias, params)
        return _tensor(_call(fastnn.conv2d, _np(input), _np(weight), _np(bias), *params))
    except _UNSUPPORTED:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


# --- linear --------------------------------------------------------------------------------------

def _rows(t, features):
    """t (..., features) as a 2-D (rows, features) array (a view when t's strides allow)."""
    return _np(t).reshape(-1, features)


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight, bias)
        return _linear_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _torch_grads(F.linear, (x, weight, bias), needs, dy)
        out_features, in_features = weight.shape
        dy2, x2, w = _rows(dy, out_features), _rows(x, in_features), _np(weight)
        if w.T.flags.c_contiguous:
            # weight stored as the transpose of a row-major (in, out) array: fastnn's own layout, and
            # dw.T has the weight's strides (autograd keeps such a gradient without a copy)
            dx, dw, db = _call(fastnn.linear_backward, dy2, x2, w.T, input_grad=needs[0])
            dw = dw.T
        else:
            # row-major (out, in), torch's default: dx = dy @ weight and dw = dy.T @ x are fastnn.linear
            # products of row-major operands (only dy.T, a small (out, N) matrix, is copied)
            dx = _call(fastnn.linear, dy2, w) if needs[0] else None
            dw = _call(fastnn.linear, dy2.T, x2) if needs[1] else None
            db = dy2.sum(axis=0) if needs[2] else None
        return (_tensor(dx.reshape(x.shape)) if needs[0] else None, _tensor(dw) if needs[1] else None,
                _tensor(db) if needs[2] else None)


def _linear_forward(x, weight, bias):
    out_features, in_features = weight.shape
    w = _np(weight).T
    if not w.flags.c_contiguous:  # torch's row-major weight: torch's blocked transpose is 5x NumPy's copy
        w = weight.detach().t().contiguous().numpy()
    y = _call(fastnn.linear, _rows(x, in_features), w, _np(bias))
    return _tensor(y.reshape(*x.shape[:-1], out_features))


def linear(input, weight, bias=None):
    """Fully connected layer, as ``torch.nn.functional.linear``, on fastnn's kernels.

    The weight is torch's (out_features, in_features); fastnn's own ``fastnn.linear(x, w)`` takes
    the transpose, w (in_features, out_features).

    Parameters
    ----------
    input : torch.Tensor
        (..., in_features): every leading dimension is a batch dimension, as in torch.
    weight : torch.Tensor
        (out_features, in_features), torch's layout (fastnn.linear's is the transpose).
    bias : torch.Tensor or None, default None
        (out_features,).

    Returns
    -------
    torch.Tensor
        (..., out_features): ``input @ weight.T + bias``.
    """
    if (input.dim() < 1 or weight.dim() != 2 or input.shape[-1] != weight.shape[1] or weight.numel() == 0
            or (bias is not None and bias.shape != weight.shape[:1]) or not _fast(input, weight, bias)):
        return F.linear(input, weight, bias)
    try:
        if _needs_graph(input, weight, bias):
            return _LinearFn.apply(input, weight, bias)
        return _linear_forward(input, weight, bias)
    except _UNSUPPORTED:
        return F.linear(input, weight, bias)


# --- batch normalization --------------------------------------------------------------------------

def _affine(weight, bias, channels, dtype):
    """(gamma, beta) for fastnn, which takes both or neither: the missing one is the identity."""
    if weight is None and bias is None:
        return None, None
    gamma = _np(weight) if weight is not None else np.ones(channels, dtype)
    beta = _np(bias) if bias is not None else np.zeros(channels, dtype)
    return gamma, beta


def _batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    a = _np(x)
    gamma, beta = _affine(weight, bias, x.shape[1], a.dtype)
    y, mean, invstd = _call(fastnn.batch_norm, a, gamma, beta, _np(running_mean), _np(running_var),
                            training, momentum, eps)
    if training and running_mean is not None:  # updated in place: versioned as torch's own update
        torch.autograd.graph.increment_version(running_mean)
        torch.autograd.graph.increment_version(running_var)
    return _tensor(y), gamma, mean, invstd


class _BatchNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stats, training, momentum, eps):
        y, gamma, mean, invstd = _batch_norm_forward(x, weight, bias, *stats, training, momentum, eps)
        ctx.save_for_backward(x, weight, bias)
        ctx.stats, ctx.training, ctx.eps = stats, training, eps
        ctx.gamma, ctx.mean, ctx.invstd = gamma, mean, invstd
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            # batch statistics again in training (the running ones must not be updated twice)
            stats = (None, None) if ctx.training else ctx.stats

            def forward(x, weight, bias):
                return F.batch_norm(x, *stats, weight, bias, ctx.training, 0.0, ctx.eps)
            return _torch_grads(forward, (x, weight, bias), needs, dy) + (None,) * 4
        dx, dgamma, dbeta = _call(fastnn.batch_norm_backward, _np(dy), _np(x), ctx.gamma, ctx.mean, ctx.invstd,
                                  ctx.training)
        return (_tensor(dx) if needs[0] else None, _tensor(dgamma) if needs[1] else None,
                _tensor(dbeta) if needs[2] else None) + (None,) * 4


def _batch_norm_supported(input, running_mean, running_var, weight, bias, training, momentum, eps):
    if input.dim() not in (2, 3, 4, 5) or not _fast(input, weight, bias, running_mean, running_var):
        return False
    if (running_mean is None) != (running_var is None):
        return False
    if running_mean is None:
        if not training:
            return False  # torch's error
    elif (running_mean.requires_grad or running_var.requires_grad  # torch has no gradient for them
          or not running_mean.is_contiguous() or not running_var.is_contiguous()  # updated in place
          or running_mean.is_inference() or running_var.is_inference()):
        return False
    if training and input.numel() // input.shape[1] <= 1:
        return False  # torch's "more than 1 value per channel" error
    try:
        return math.isfinite(float(momentum)) and float(eps) > 0
    except (TypeError, ValueError):
        return False


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization, as ``torch.nn.functional.batch_norm``, on fastnn's kernels.

    torch's argument order: the running statistics come before weight and bias. (fastnn's own
    ``fastnn.batch_norm(x, gamma, beta, running_mean, running_var, ...)`` takes the affine
    parameters first and returns ``(y, save_mean, save_invstd)``.)

    Parameters
    ----------
    input : torch.Tensor
        (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W): statistics per channel (dimension 1)
        over all the others. Other ranks run torch's own.
    running_mean, running_var : torch.Tensor or None
        (C,). Training updates them in place, ``r = (1 - momentum) * r + momentum * batch`` (unbiased
        variance), when given; eval normalizes with them (required).
    weight, bias : torch.Tensor or None, default None
        (C,) affine parameters.
    training : bool, default False
        Batch statistics (True) or the running ones (False).
    momentum : float, default 0.1
        In [0, 1] (torch's own function for other values, and for None, which torch refuses: the
        cumulative average of ``momentum=None`` is the modules', see :class:`BatchNorm2d`).
    eps : float, default 1e-5
        Added to the variance; > 0 (torch's own function for 0).

    Returns
    -------
    torch.Tensor
        The normalized input, its shape.
    """
    if not _batch_norm_supported(input, running_mean, running_var, weight, bias, training, momentum, eps):
        return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    training, momentum, eps = bool(training), float(momentum), float(eps)
    try:
        if _needs_graph(input, weight, bias):
            return _BatchNormFn.apply(input, weight, bias, (running_mean, running_var), training, momentum, eps)
        return _batch_norm_forward(input, weight, bias, running_mean, running_var, training, momentum, eps)[0]
    except _UNSUPPORTED:
        return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


# --- pooling -------------------------------------------------------------------------------------

class _PoolFn(torch.autograd.Function):
    """fastnn's pooling forward (with max_pool2d's indices as a second, non-differentiable output)
    and backward; torch_forward (x -> values) recomputes the forward for double backward."""

    @staticmethod
    def forward(ctx, x, op, options, torch_forward):
        ctx.op, ctx.options, ctx.torch_forward = op, options, torch_forward
        ctx.save_for_backward(x)
        result = _call(getattr(fastnn, op), _np(x), **options)
        if isinstance(result, tuple):  # (values, indices)
            values, indices = _tensor(result[0]), _tensor(result[1])
            ctx.mark_non_differentiable(indices)
            return values, indices
        return _tensor(result)

    @staticmethod
    def backward(ctx, dy, *_):
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _torch_grads(ctx.torch_forward, (x,), (True,), dy) + (None,) * 3
        options = {k: v for k, v in ctx.options.items() if k != "return_indices"}
        dx = _call(getattr(fastnn, ctx.op + "_backward"), _np(dy), _np(x), **options)
        return _tensor(dx), None, None, None


def _pool_params(kernel_size, stride, padding):
    kernel = _pair(kernel_size)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):  # torch: [] means kernel_size
        stride = kernel
    else:
        stride = _pair(stride)
    padding = _pair(padding)
    if kernel is None or stride is None or padding is None:
        return None
    return {"kernel_size": kernel, "stride": stride, "padding": padding}


def _pool(op, input, options, torch_forward, torch_values):
    """fastnn's pooling `op` with `options` (None: torch's own), on (N, C, H, W) or unbatched input;
    torch_forward is torch's whole call, torch_values its values only (for double backward)."""
    if options is None or input.dim() not in (3, 4) or not _fast(input):
        return torch_forward(input)
    try:
        if _needs_graph(input):
            return _PoolFn.apply(input, op, options, torch_values)
        result = _call(getattr(fastnn, op), _np(input), **options)
    except _UNSUPPORTED:
        return torch_forward(input)
    return (_tensor(result[0]), _tensor(result[1])) if isinstance(result, tuple) else _tensor(result)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W) or unbatched (C, H, W).
    kernel_size : int or (int, int)
    stride : int, (int, int) or None, default None
        None: kernel_size.
    padding : int or (int, int), default 0
        -inf padding, at most half the kernel (as torch).
    dilation : int or (int, int), default 1
    ceil_mode : bool, default False
        Round the output size up (torch's rule).
    return_indices : bool, default False
        Also return the winners' indices: an int64 tensor, flat in each (H, W) plane (what
        ``max_unpool2d`` takes), computed by fastnn.

    Returns
    -------
    torch.Tensor
        The pooled input, contiguous (and the indices, with `return_indices`).
    """
    def torch_forward(x):
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                            return_indices=return_indices)

    def torch_values(x):
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)

    options = _pool_params(kernel_size, stride, padding)
    dilation = _pair(dilation)
    if options is not None and dilation is not None:
        options.update(dilation=dilation, ceil_mode=bool(ceil_mode), return_indices=bool(return_indices))
    else:
        options = None
    return _pool("max_pool2d", input, options, torch_forward, torch_values)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``, on fastnn's kernels.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W) or unbatched (C, H, W).
    kernel_size : int or (int, int)
    stride : int, (int, int) or None, default None
        None: kernel_size.
    padding : int or (int, int), default 0
        Zero padding, at most half the kernel (as torch).
    ceil_mode : bool, default False
        Round the output size up (torch's rule).
    count_include_pad : bool, default True
        Whether the padded zeros count in each window's divisor (torch's divisors throughout).
    divisor_override : int or None, default None
        Nonzero: every window's divisor.

    Returns
    -------
    torch.Tensor
        The pooled input, contiguous.
    """
    def torch_forward(x):
        return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    options = _pool_params(kernel_size, stride, padding)
    if options is not None and (divisor_override is None or type(divisor_override) is int):
        options.update(ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                       divisor_override=divisor_override)
    else:
        options = None
    return _pool("avg_pool2d", input, options, torch_forward, torch_forward)


# --- loss ----------------------------------------------------------------------------------------

class _CrossEntropyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, weight, options):
        loss, dlogits = _call(fastnn.softmax_cross_entropy, _np(logits), _np(target), weight=_np(weight), **options)
        ctx.save_for_backward(logits)
        ctx.target, ctx.weight, ctx.options, ctx.dlogits = target, weight, options, _tensor(dlogits)
        return _tensor(loss) if options["reduction"] == "none" else torch.tensor(loss, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            (logits,) = ctx.saved_tensors
            return _torch_grads(lambda x: F.cross_entropy(x, ctx.target, ctx.weight, **ctx.options), (logits,),
                                (True,), grad) + (None, None, None)
        if ctx.options["reduction"] == "none" and grad.dim():  # per-sample upstream gradients: along the classes
            grad = grad.unsqueeze(1)
        return ctx.dlogits * grad, None, None, None


def _cross_entropy_options(input, target, weight, ignore_index, reduction, label_smoothing):
    """fastnn's keyword arguments for this call, or None when torch's own function runs it."""
    if (isinstance(label_smoothing, torch.Tensor) or not _fast(input, weight) or type(target) not in _PLAIN
            or not target.is_cpu or target.layout is not torch.strided or target.is_nested):
        return None
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        return None  # torch raises its own error (no derivative for weight)
    if target.dtype is input.dtype and target.shape == input.shape:  # class probabilities
        if target.requires_grad and torch.is_grad_enabled():
            return None  # torch differentiates the target too
    elif target.dtype is not torch.int64 or target.shape != (input.shape[:1] + input.shape[2:] if input.dim() > 1
                                                             else ()):
        return None  # e.g. uint8 targets, or torch's shape errors
    try:
        ignore_index = operator.index(ignore_index)
        if not 0.0 <= label_smoothing <= 1.0:
            return None  # torch: a negative one is no smoothing with class indices, else its error
    except TypeError:
        return None
    return {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": label_smoothing}


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy, as ``torch.nn.functional.cross_entropy``, on fastnn's kernels
    (``fastnn.softmax_cross_entropy``).

    Parameters
    ----------
    input : torch.Tensor
        (N, C), (N, C, d1, ...) or unbatched (C,) logits, float32 or float64.
    target : torch.Tensor
        int64 class indices of input's shape without the class axis ((N,), (N, d1, ...) or ()), in
        [0, C) or equal to `ignore_index`; or class probabilities of input's shape and dtype.
    weight : torch.Tensor, optional
        (C,) class weights, input's dtype.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to `reduction` as torch maps them (with its warning).
    ignore_index : int, default -100
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float, default 0.0
        As torch's. fastnn computes all of these; torch's own function runs other devices and
        dtypes, other target dtypes (uint8), a weight or probability target that requires grad,
        empty inputs, and every call fastnn rejects (torch then gives its own answer or error).

    Returns
    -------
    torch.Tensor
        A 0-d tensor of input's dtype ("mean", "sum"), or the per-sample losses ("none": target's
        shape for class indices, input's shape without the class axis for probabilities).
    """
    if size_average is not None or reduce is not None:  # torch's legacy arguments, mapped as torch maps them
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
    options = _cross_entropy_options(input, target, weight, ignore_index, reduction, label_smoothing)
    if options is None:
        return F.cross_entropy(input, target, weight, None, ignore_index, None, reduction, label_smoothing)
    try:
        if _needs_graph(input):
            return _CrossEntropyFn.apply(input, target, weight, options)
        loss, _ = _call(fastnn.softmax_cross_entropy, _np(input), _np(target), weight=_np(weight), **options)
        return _tensor(loss) if options["reduction"] == "none" else torch.tensor(loss, dtype=input.dtype)
    except _UNSUPPORTED:
        return F.cross_entropy(input, target, weight, None, ignore_index, None, reduction, label_smoothing)
