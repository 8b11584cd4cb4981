"""Activations: public functions and their meta functions. Any shape; forward then backward.

Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan): the
kernel inputs, the output shapes, the scalar parameters and the work in elements. Kernels of every
backend are called as kernel(inputs..., outputs..., params..., n_threads).
"""
import math

from ._ops import Plan, call, meta
from ._validation import check_same_shape, float_arrays, integer, real, within_dtype


def _scalar(op, name, value, x):
    """A finite real parameter within x's dtype range (the kernels round it to that dtype)."""
    return within_dtype(op, x.dtype, **{name: real(op, name, value)})


def _unary(op, x, *params):
    x = float_arrays(op, x=x)
    return Plan((x,), (x.shape,), x.dtype, params, work=x.size)


def _gradient(op, dy, name, t, *params):
    """A backward from dy and the forward's input or output t (its shape is dy's)."""
    dy, t = float_arrays(op, dy=dy, **{name: t})
    check_same_shape(op, "dy", dy, name, t)
    return Plan((dy, t), (t.shape,), t.dtype, params, work=t.size)


# relu ------------------------------------------------------------------------------------------

meta("relu")(lambda x: _unary("relu", x))
meta("relu_backward")(lambda dy, x: _gradient("relu_backward", dy, "x", x))


def relu(x, *, out=None):
    """max(x, 0), elementwise.

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
    out : ndarray, optional
        Written with the result and returned (may be x itself: in place).

    Returns
    -------
    ndarray of x's shape and dtype.
    """
    return call("relu", x, out=out)


def relu_backward(dy, x, *, out=None):
    """dy where x > 0, else 0 (relu'(0) = 0, as PyTorch)."""
    return call("relu_backward", dy, x, out=out)


# leaky relu ------------------------------------------------------------------------------------

@meta("leaky_relu")
def _leaky_relu_meta(x, negative_slope=0.01):
    plan = _unary("leaky_relu", x)
    plan.params = (_scalar("leaky_relu", "negative_slope", negative_slope, plan.args[0]),)
    return plan


@meta("leaky_relu_backward")
def _leaky_relu_backward_meta(dy, x, negative_slope=0.01):
    plan = _gradient("leaky_relu_backward", dy, "x", x)
    plan.params = (_scalar("leaky_relu_backward", "negative_slope", negative_slope, plan.args[1]),)
    return plan


def leaky_relu(x, negative_slope=0.01, *, out=None):
    """x where x > 0, else negative_slope * x."""
    return call("leaky_relu", x, negative_slope, out=out)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, out=None):
    """dy where x > 0, else negative_slope * dy."""
    return call("leaky_relu_backward", dy, x, negative_slope, out=out)


# prelu: a per channel (axis 1) or one scalar -----------------------------------------------------

def _prelu_layout(op, x, a):
    """(outer, channels, inner): x read as (outer, channels, inner), channel c scaled by a[c]."""
    if a.ndim == 0:
        return 1, 1, x.size
    if a.ndim != 1:
        raise ValueError(f"{op}: a must have shape () or (C,), got {a.shape}")
    if x.ndim < 2 or x.shape[1] != a.shape[0]:
        channels = x.shape[1] if x.ndim >= 2 else "no channel axis"
        raise ValueError(f"{op}: a has shape {a.shape}, expected ({channels},) (x.shape[1]) or ()")
    return x.shape[0], a.shape[0], math.prod(x.shape[2:])


@meta("prelu")
def _prelu_meta(x, a):
    x, a = float_arrays("prelu", x=x, a=a)
    return Plan((x, a.reshape(-1)), (x.shape,), x.dtype, _prelu_layout("prelu", x, a), work=x.size)


@meta("prelu_backward")
def _prelu_backward_meta(dy, x, a):
    dy, x, a = float_arrays("prelu_backward", dy=dy, x=x, a=a)
    check_same_shape("prelu_backward", "dy", dy, "x", x)
    layout = _prelu_layout("prelu_backward", x, a)
    return Plan((dy, x, a.reshape(-1)), (x.shape, (layout[1],)), x.dtype, layout, work=x.size,
                result=lambda outputs, _: (outputs[0], outputs[1].reshape(a.shape)))


def prelu(x, a, *, out=None):
    """x where x > 0, else a * x; a has shape (C,) (per channel, axis 1) or () (one slope)."""
    return call("prelu", x, a, out=out)


def prelu_backward(dy, x, a):
    """Returns (dx, da); da has a's shape."""
    return call("prelu_backward", dy, x, a)


# elu -------------------------------------------------------------------------------------------

@meta("elu")
def _elu_meta(x, alpha=1.0):
    plan = _unary("elu", x)
    plan.params = (_scalar("elu", "alpha", alpha, plan.args[0]),)
    return plan


@meta("elu_backward")
def _elu_backward_meta(dy, x, alpha=1.0):
    plan = _gradient("elu_backward", dy, "x", x)
    plan.params = (_scalar("elu_backward", "alpha", alpha, plan.args[1]),)
    return plan


def elu(x, alpha=1.0, *, out=None):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return call("elu", x, alpha, out=out)


def elu_backward(dy, x, alpha=1.0, *, out=None):
    """dy where x > 0, else dy * alpha * exp(x) (elu'(0) = alpha, as PyTorch)."""
    return call("elu_backward", dy, x, alpha, out=out)


# sigmoid and tanh: backwards from the forward's output ---------------------------------------------

meta("sigmoid")(lambda x: _unary("sigmoid", x))
meta("sigmoid_backward")(lambda dy, y: _gradient("sigmoid_backward", dy, "y", y))
meta("tanh")(lambda x: _unary("tanh", x))
meta("tanh_backward")(lambda dy, y: _gradient("tanh_backward", dy, "y", y))


def sigmoid(x, *, out=None):
    """1 / (1 + exp(-x)); saturates quietly (sigmoid(-1000.0) is 0.0)."""
    return call("sigmoid", x, out=out)


def sigmoid_backward(dy, y, *, out=None):
    """Gradient from the forward's output y = sigmoid(x): dy * y * (1 - y)."""
    return call("sigmoid_backward", dy, y, out=out)


def tanh(x, *, out=None):
    """tanh(x), elementwise."""
    return call("tanh", x, out=out)


def tanh_backward(dy, y, *, out=None):
    """Gradient from the forward's output y = tanh(x): dy * (1 - y * y)."""
    return call("tanh_backward", dy, y, out=out)


# gelu and silu ---------------------------------------------------------------------------------

meta("gelu")(lambda x: _unary("gelu", x))
meta("gelu_backward")(lambda dy, x: _gradient("gelu_backward", dy, "x", x))
meta("silu")(lambda x: _unary("silu", x))
meta("silu_backward")(lambda dy, x: _gradient("silu_backward", dy, "x", x))


def gelu(x, *, out=None):
    """Exact GELU, x * Phi(x) with the erf form (PyTorch's default)."""
    return call("gelu", x, out=out)


def gelu_backward(dy, x, *, out=None):
    """dy * (Phi(x) + x * phi(x))."""
    return call("gelu_backward", dy, x, out=out)


def silu(x, *, out=None):
    """x * sigmoid(x)."""
    return call("silu", x, out=out)


def silu_backward(dy, x, *, out=None):
    """dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    return call("silu_backward", dy, x, out=out)


# maxout ----------------------------------------------------------------------------------------

def _maxout_layout(op, x, pieces, axis):
    """(y's shape, (groups, pieces, inner)): x read as (groups, pieces, inner), groups = outer * units."""
    pieces = integer(op, "pieces", pieces, minimum=1)
    axis = integer(op, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for x of shape {x.shape}")
    axis %= x.ndim
    if x.shape[axis] % pieces:
        raise ValueError(f"{op}: x.shape[{axis}] = {x.shape[axis]} is not a multiple of pieces = {pieces} (axis = {axis})")
    units = x.shape[axis] // pieces
    y_shape = x.shape[:axis] + (units,) + x.shape[axis + 1:]
    return y_shape, (math.prod(x.shape[:axis]) * units, pieces, math.prod(x.shape[axis + 1:]))


@meta("maxout")
def _maxout_meta(x, pieces, axis=1):
    x = float_arrays("maxout", x=x)
    y_shape, layout = _maxout_layout("maxout", x, pieces, axis)
    return Plan((x,), (y_shape,), x.dtype, layout, work=x.size)


@meta("maxout_backward")
def _maxout_backward_meta(dy, x, pieces, axis=1):
    dy, x = float_arrays("maxout_backward", dy=dy, x=x)
    y_shape, layout = _maxout_layout("maxout_backward", x, pieces, axis)
    if dy.shape != y_shape:
        raise ValueError(f"maxout_backward: dy has shape {dy.shape}, expected {y_shape} (x's shape {x.shape} with "
                         f"axis {axis} divided by pieces = {layout[1]})")
    return Plan((dy, x), (x.shape,), x.dtype, layout, work=x.size)


def maxout(x, pieces, axis=1, *, out=None):
    """y.take(u, axis) = max_j x.take(u * pieces + j, axis)."""
    return call("maxout", x, pieces, axis, out=out)


def maxout_backward(dy, x, pieces, axis=1, *, out=None):
    """The gradient goes to the first maximal piece."""
    return call("maxout_backward", dy, x, pieces, axis, out=out)
