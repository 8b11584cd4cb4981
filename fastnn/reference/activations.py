"""Plain-NumPy activations: the oracle and the benchmark baseline.

Each function takes the inputs, then the output arrays to fill (shapes from the op's meta function
in fastnn/activations.py), then its scalar parameters, like the compiled kernels.
Semantics follow PyTorch, NaN included: a backward passes dy unless the "x <= 0" branch applies,
so NaN inputs take the positive branch exactly as torch's kernels do. Branches are computed on
clipped inputs so no overflow warning is raised for large |x|.
"""
import numpy as np
from scipy.special import erf

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GELU_BETA = 0.7978845608028654  # sqrt(2 / pi)
_GELU_KAPPA = 0.044715
_GELU_X2_MAX = 1e30  # x**2 cap in the tanh form's derivative: 1 - tanh**2 is 0 long before


def relu(x, y):
    y[...] = np.maximum(x, 0)


def relu_backward(dy, x, dx):
    dx[...] = np.where(x <= 0, 0, dy)


def leaky_relu(x, y, negative_slope):
    y[...] = np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy, x, dx, negative_slope):
    dx[...] = np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def prelu(x, a, y, outer, channels, inner):
    """x as (outer, channels, inner): channel c scaled by a[c] where negative."""
    xs, a = x.reshape(outer, channels, inner), a.reshape(1, channels, 1)
    y.reshape(xs.shape)[...] = np.where(xs > 0, xs, a * xs)


def prelu_backward(dy, x, a, dx, da, outer, channels, inner):
    xs, a = x.reshape(outer, channels, inner), a.reshape(1, channels, 1)
    dys = dy.reshape(xs.shape)
    dx.reshape(xs.shape)[...] = np.where(xs > 0, dys, a * dys)
    da[...] = np.where(xs > 0, 0, xs * dys).sum(axis=(0, 2))


def elu(x, y, alpha):
    negative = x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))
    y[...] = np.where(x > 0, x, negative)


def elu_backward(dy, x, dx, alpha):
    negative = dy * x.dtype.type(alpha) * np.exp(np.minimum(x, 0))
    dx[...] = np.where(x <= 0, negative, dy)


def _sigmoid(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid(x, y):
    y[...] = _sigmoid(x)


def sigmoid_backward(dy, y, dx):
    dx[...] = dy * y * (1 - y)


def tanh(x, y):
    y[...] = np.tanh(x)


def tanh_backward(dy, y, dx):
    dx[...] = dy * (1 - y * y)


def gelu(x, y, tanh_form):
    if tanh_form:
        y[...] = 0.5 * x * (1 + _gelu_tanh(x, x * x))  # torch's formula; -inf * 0 is NaN, as there
        return
    y[...] = 0.5 * x * (1 + erf(x * _SQRT1_2))  # -inf * 0 is NaN, as in torch


def _gelu_tanh(x, x2):
    """tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)), x**3 as torch rounds it: x * x * x."""
    return np.tanh(_GELU_BETA * (x + _GELU_KAPPA * (x2 * x)))


def gelu_backward(dy, x, dx, tanh_form):
    if tanh_form:
        x2 = x * x
        t = _gelu_tanh(x, x2)
        # torch's derivative; x**2 capped where 1 - t**2 is 0 already, so a finite x whose square
        # overflows gets the limit instead of 0 * inf (NaN stays NaN: np.minimum propagates it)
        slope = _GELU_BETA * (1 + 3 * _GELU_KAPPA * np.minimum(x2, _GELU_X2_MAX))
        dx[...] = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * slope)
        return
    cdf = 0.5 * (1 + erf(x * _SQRT1_2))
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    dx[...] = dy * (cdf + x * pdf)


def silu(x, y):
    y[...] = x * _sigmoid(x)


def silu_backward(dy, x, dx):
    s = _sigmoid(x)
    dx[...] = dy * s * (1 + x * (1 - s))


def maxout(x, y, groups, pieces, inner):
    """x as (groups, pieces, inner): y = the maximum over the pieces."""
    y.reshape(groups, inner)[...] = x.reshape(groups, pieces, inner).max(axis=1)


def maxout_backward(dy, x, dx, groups, pieces, inner):
    """dx: each output's gradient to its first maximal piece."""
    grouped = x.reshape(groups, pieces, inner)
    dxs = dx.reshape(grouped.shape)
    dxs[...] = 0
    if grouped.size:
        np.put_along_axis(dxs, grouped.argmax(axis=1)[:, None, :], dy.reshape(groups, 1, inner), axis=1)
