"""Fully connected layer and its backward: public functions and their meta functions.

cs231n layout: w is (D_in, D_out) and y = x2d @ w + b, where x (N, ...) is flattened to (N, D_in).
The kernels are BLAS GEMMs run on fastnn's threads (`blas=True`: BLAS capped at one thread); a
call's work is its multiply-adds (fastnn/_grain.py).
"""
import math

from ._ops import Plan, call, meta
from ._validation import check_ndim, flag, float_arrays

BLAS_MAX = 2 ** 31 - 1  # BLAS takes 32-bit sizes


def _flat_input(op, x, w):
    """x as (N, D_in), checked against w (D_in, D_out)."""
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, D_in) or (N, ...), got shape {x.shape}")
    check_ndim(op, "w", w, 2)
    features = math.prod(x.shape[1:])
    if features != w.shape[0]:
        raise ValueError(f"{op}: w has {w.shape[0]} input features (w.shape[0]), x has {features} "
                         f"(x.shape[1:] = {x.shape[1:]})")
    x2d = x.reshape(x.shape[0], features)
    if max(x2d.shape + w.shape) > BLAS_MAX:
        raise ValueError(f"{op}: x {x2d.shape} and w {w.shape} exceed BLAS's 32-bit sizes")
    return x2d


@meta("linear")
def _linear_meta(x, w, b=None):
    x, w, b = float_arrays("linear", optional=("b",), x=x, w=w, b=b)
    x2d = _flat_input("linear", x, w)
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"linear: b has shape {b.shape}, expected ({w.shape[1]},) (w.shape[1])")
    n, (d_in, d_out) = x2d.shape[0], w.shape
    return Plan((x2d, w, b), ((n, d_out),), x.dtype, work=n * d_in * d_out, blas=True)


@meta("linear_backward")
def _linear_backward_meta(dy, x, w, input_grad=True):
    dy, x, w = float_arrays("linear_backward", dy=dy, x=x, w=w)
    x2d = _flat_input("linear_backward", x, w)
    expected = (x.shape[0], w.shape[1])
    if dy.shape != expected:
        raise ValueError(f"linear_backward: dy has shape {dy.shape}, expected {expected} (x.shape[0], w.shape[1])")
    input_grad = flag("linear_backward", "input_grad", input_grad)
    n, (d_in, d_out) = x2d.shape[0], w.shape

    def result(outputs, _):
        dx, dw, db = outputs
        return (dx.reshape(x.shape) if input_grad else None), dw, db

    return Plan((dy, x2d, w), (x2d.shape if input_grad else None, w.shape, (d_out,)), x.dtype,
                work=n * d_in * d_out * (2 if input_grad else 1), result=result, blas=True)


def linear(x, w, b=None, *, out=None):
    """Fully connected layer: y = x2d @ w + b.

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, D_in) or (N, ...)
        Flattened to (N, D_in), D_in = prod(x.shape[1:]).
    w : array_like, shape (D_in, D_out)
        cs231n's layout; PyTorch's nn.Linear weight is its transpose (D_out, D_in).
    b : array_like, shape (D_out,), optional
    out : ndarray, optional
        Written with the result and returned.

    Returns
    -------
    ndarray of shape (N, D_out) and x's dtype.
    """
    return call("linear", x, w, b, out=out)


def linear_backward(dy, x, w, *, input_grad=True):
    """Gradients of y = x2d @ w + b.

    Parameters
    ----------
    dy : array_like, shape (N, D_out)
    x, w : the forward's input and weight (x of any shape (N, ...), w (D_in, D_out))
    input_grad : bool
        False skips dx (the first layer of a network needs none).

    Returns
    -------
    (dx, dw, db) : dx = dy @ w.T with x's shape (None when input_grad is False), dw = x2d.T @ dy
    (D_in, D_out), db = dy.sum(axis=0) (D_out,).
    """
    return call("linear_backward", dy, x, w, input_grad=input_grad)
