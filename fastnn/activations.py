"""Activations: public functions (validation, then the op table). Any shape; forward then backward."""
from ._ops import call
from ._validation import check_out, check_same_shape, float_arrays, integer, real, within_dtype


def _unary(op, x, out):
    x = float_arrays(op, x=x)
    check_out(op, out, x.shape, x.dtype)
    return x


def _scalar(op, name, value, x):
    """A finite real parameter within x's dtype range (the kernels round it to that dtype)."""
    return within_dtype(op, x.dtype, **{name: real(op, name, value)})


def _grad_pair(op, dy, name, t, out):
    dy, t = float_arrays(op, dy=dy, **{name: t})
    check_same_shape(op, "dy", dy, name, t)
    check_out(op, out, t.shape, t.dtype)
    return dy, t


def relu(x, *, out=None):
    x = _unary("relu", x, out)
    return call("relu", x, out=out)


def relu_backward(dy, x, *, out=None):
    dy, x = _grad_pair("relu_backward", dy, "x", x, out)
    return call("relu_backward", dy, x, out=out)


def leaky_relu(x, negative_slope=0.01, *, out=None):
    x = _unary("leaky_relu", x, out)
    slope = _scalar("leaky_relu", "negative_slope", negative_slope, x)
    return call("leaky_relu", x, slope, out=out)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, out=None):
    dy, x = _grad_pair("leaky_relu_backward", dy, "x", x, out)
    slope = _scalar("leaky_relu_backward", "negative_slope", negative_slope, x)
    return call("leaky_relu_backward", dy, x, slope, out=out)


def _prelu_weight(op, x, a):
    if a.ndim == 0:
        return
    if a.ndim != 1:
        raise ValueError(f"{op}: a must have shape () or (C,), got {a.shape}")
    if x.ndim < 2 or x.shape[1] != a.shape[0]:
        channels = x.shape[1] if x.ndim >= 2 else "no channel axis"
        raise ValueError(f"{op}: a has shape {a.shape}, expected ({channels},) (x.shape[1]) or ()")


def prelu(x, a, *, out=None):
    x, a = float_arrays("prelu", x=x, a=a)
    _prelu_weight("prelu", x, a)
    check_out("prelu", out, x.shape, x.dtype)
    return call("prelu", x, a, out=out)


def prelu_backward(dy, x, a):
    """Returns (dx, da); da has a's shape."""
    dy, x, a = float_arrays("prelu_backward", dy=dy, x=x, a=a)
    check_same_shape("prelu_backward", "dy", dy, "x", x)
    _prelu_weight("prelu_backward", x, a)
    return call("prelu_backward", dy, x, a)


def elu(x, alpha=1.0, *, out=None):
    x = _unary("elu", x, out)
    alpha = _scalar("elu", "alpha", alpha, x)
    return call("elu", x, alpha, out=out)


def elu_backward(dy, x, alpha=1.0, *, out=None):
    dy, x = _grad_pair("elu_backward", dy, "x", x, out)
    alpha = _scalar("elu_backward", "alpha", alpha, x)
    return call("elu_backward", dy, x, alpha, out=out)


def sigmoid(x, *, out=None):
    x = _unary("sigmoid", x, out)
    return call("sigmoid", x, out=out)


def sigmoid_backward(dy, y, *, out=None):
    """Gradient from the forward's output y = sigmoid(x)."""
    dy, y = _grad_pair("sigmoid_backward", dy, "y", y, out)
    return call("sigmoid_backward", dy, y, out=out)


def tanh(x, *, out=None):
    x = _unary("tanh", x, out)
    return call("tanh", x, out=out)


def tanh_backward(dy, y, *, out=None):
    """Gradient from the forward's output y = tanh(x)."""
    dy, y = _grad_pair("tanh_backward", dy, "y", y, out)
    return call("tanh_backward", dy, y, out=out)


def gelu(x, *, out=None):
    """Exact GELU, x * Phi(x) with the erf form (PyTorch's default)."""
    x = _unary("gelu", x, out)
    return call("gelu", x, out=out)


def gelu_backward(dy, x, *, out=None):
    dy, x = _grad_pair("gelu_backward", dy, "x", x, out)
    return call("gelu_backward", dy, x, out=out)


def silu(x, *, out=None):
    x = _unary("silu", x, out)
    return call("silu", x, out=out)


def silu_backward(dy, x, *, out=None):
    dy, x = _grad_pair("silu_backward", dy, "x", x, out)
    return call("silu_backward", dy, x, out=out)


def _maxout_args(op, x, pieces, axis):
    pieces = integer(op, "pieces", pieces, minimum=1)
    axis = integer(op, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for x of shape {x.shape}")
    axis %= x.ndim
    if x.shape[axis] % pieces:
        raise ValueError(
            f"{op}: x.shape[{axis}] = {x.shape[axis]} is not a multiple of pieces = {pieces} (axis = {axis})"
        )
    out_shape = x.shape[:axis] + (x.shape[axis] // pieces,) + x.shape[axis + 1:]
    return pieces, axis, out_shape


def maxout(x, pieces, axis=1, *, out=None):
    """y.take(u, axis) = max_j x.take(u * pieces + j, axis)."""
    x = float_arrays("maxout", x=x)
    pieces, axis, out_shape = _maxout_args("maxout", x, pieces, axis)
    check_out("maxout", out, out_shape, x.dtype)
    return call("maxout", x, pieces, axis, out=out)


def maxout_backward(dy, x, pieces, axis=1, *, out=None):
    """The gradient goes to the first maximal piece."""
    dy, x = float_arrays("maxout_backward", dy=dy, x=x)
    pieces, axis, out_shape = _maxout_args("maxout_backward", x, pieces, axis)
    if dy.shape != out_shape:
        raise ValueError(f"maxout_backward: dy has shape {dy.shape}, expected {out_shape} (x's shape {x.shape} with "
                         f"axis {axis} divided by pieces = {pieces})")
    check_out("maxout_backward", out, x.shape, x.dtype)
    return call("maxout_backward", dy, x, pieces, axis, out=out)
