"""Plain-NumPy activations: the oracle and the benchmark baseline.

Semantics follow PyTorch, NaN included: a backward passes dy unless the "x <= 0" branch applies,
so NaN inputs take the positive branch exactly as torch's kernels do. Branches are computed on
clipped inputs so no overflow warning is raised for large |x|.
"""
import numpy as np
from scipy.special import erf

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def relu(x):
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_backward(dy, x):
    return np.where(x <= 0, 0, dy).astype(x.dtype, copy=False)


def leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.01):
    return np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def _channel_view(a, x):
    """a () or (C,) broadcast along axis 1 of x."""
    return a if a.ndim == 0 else a.reshape((1, -1) + (1,) * (x.ndim - 2))


def prelu(x, a):
    return np.where(x > 0, x, _channel_view(a, x) * x).astype(x.dtype, copy=False)


def prelu_backward(dy, x, a):
    dx = np.where(x > 0, dy, _channel_view(a, x) * dy).astype(x.dtype, copy=False)
    contribution = np.where(x > 0, 0, x * dy)
    if a.ndim == 0:
        da = np.asarray(contribution.sum(), dtype=x.dtype)
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        da = contribution.sum(axis=axes).astype(x.dtype)
    return dx, da


def elu(x, alpha=1.0):
    negative = x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))
    return np.where(x > 0, x, negative)


def elu_backward(dy, x, alpha=1.0):
    negative = dy * x.dtype.type(alpha) * np.exp(np.minimum(x, 0))
    return np.where(x <= 0, negative, dy)


def sigmoid(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


def sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def tanh(x):
    return np.tanh(x)


def tanh_backward(dy, y):
    return dy * (1 - y * y)


def gelu(x):
    with np.errstate(invalid="ignore"):  # -inf * 0 is NaN, as in torch
        return (0.5 * x * (1 + erf(x * _SQRT1_2))).astype(x.dtype, copy=False)


def gelu_backward(dy, x):
    cdf = 0.5 * (1 + erf(x * _SQRT1_2))
    with np.errstate(over="ignore", invalid="ignore"):  # x * x may overflow; +-inf * 0 is NaN, as in torch
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return (dy * (cdf + x * pdf)).astype(x.dtype, copy=False)


def silu(x):
    with np.errstate(invalid="ignore"):  # -inf * 0 is NaN, as in torch
        return x * sigmoid(x)


def silu_backward(dy, x):
    s = sigmoid(x)
    with np.errstate(invalid="ignore"):  # +-inf * 0 is NaN, as in torch
        return dy * s * (1 + x * (1 - s))


def _pieces_view(x, pieces, axis):
    """x with `axis` split into (units, pieces)."""
    shape = x.shape[:axis] + (x.shape[axis] // pieces, pieces) + x.shape[axis + 1:]
    return x.reshape(shape)


def maxout(x, pieces, axis=1):
    return _pieces_view(x, pieces, axis).max(axis=axis + 1)


def maxout_backward(dy, x, pieces, axis=1):
    grouped = _pieces_view(x, pieces, axis)
    winner = np.expand_dims(grouped.argmax(axis=axis + 1), axis + 1)
    dx = np.zeros_like(grouped)
    np.put_along_axis(dx, winner, np.expand_dims(dy, axis + 1), axis=axis + 1)
    return dx.reshape(x.shape)
