"""Fully connected layer and its backward: public functions (validation, then the op table).

cs231n layout: w is (D_in, D_out) and y = x2d @ w + b, where x (N, ...) is flattened to (N, D_in).
"""
import math

from ._ops import call
from ._validation import check_ndim, check_out, flag, float_arrays


def _flat_input(op, x, w):
    """x as (N, D_in), checked against w (D_in, D_out)."""
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, D_in) or (N, ...), got shape {x.shape}")
    check_ndim(op, "w", w, 2)
    features = math.prod(x.shape[1:])
    if features != w.shape[0]:
        raise ValueError(f"{op}: w has {w.shape[0]} input features (w.shape[0]), x has {features} "
                         f"(x.shape[1:] = {x.shape[1:]})")
    return x.reshape(x.shape[0], features)


def linear(x, w, b=None, *, out=None):
    x, w, b = float_arrays("linear", optional=("b",), x=x, w=w, b=b)
    x2d = _flat_input("linear", x, w)
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"linear: b has shape {b.shape}, expected ({w.shape[1]},) (w.shape[1])")
    check_out("linear", out, (x.shape[0], w.shape[1]), x.dtype)
    return call("linear", x2d, w, b, out=out)


def linear_backward(dy, x, w, *, input_grad=True):
    """Returns (dx, dw, db); dx has x's shape. input_grad=False skips dx (returned as None)."""
    dy, x, w = float_arrays("linear_backward", dy=dy, x=x, w=w)
    x2d = _flat_input("linear_backward", x, w)
    expected = (x.shape[0], w.shape[1])
    if dy.shape != expected:
        raise ValueError(f"linear_backward: dy has shape {dy.shape}, expected {expected} (x.shape[0], w.shape[1])")
    input_grad = flag("linear_backward", "input_grad", input_grad)
    dx, dw, db = call("linear_backward", dy, x2d, w, input_grad=input_grad)
    return (dx.reshape(x.shape) if input_grad else None), dw, db
