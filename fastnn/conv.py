"""2-D convolution (cross-correlation, as PyTorch's conv2d): public functions and meta functions.

x (N, C, H, W) or unbatched (C, H, W); w (F, C // groups, KH, KW); b (F,) or None; y (N, F, Ho, Wo)
(or (F, Ho, Wo)) with PyTorch's output size. stride and dilation are ints or (h, w) pairs; padding
too, or "valid" / "same" (torch's strings). The kernels see a batch and symmetric padding only: the
meta functions add the batch axis (a view) and pad x once for an odd "same" total.

Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan):
kernels of every backend are called as
    conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads[, workspace=])
    conv2d_relu(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads[, workspace=])
    conv2d_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dh, dw, groups, input_grad, n_threads[, workspace=])
(the reference without n_threads); b may be None, dx is None when input_grad is False. The work is
counted in multiply-adds (the grain table's unit for conv).
"""
import numpy as np

from ._ops import Plan, call, meta
from ._validation import check_ndim, flag, float_arrays, integer, output_size_2d, pair


def _padding(op, padding, stride, dilation, kernel):
    """((ph, pw), (eh, ew)): the symmetric zero padding, and the extra row/column at the bottom/right
    that an odd "same" total needs (torch's placement)."""
    if not isinstance(padding, str):
        return pair(op, "padding", padding, minimum=0), (0, 0)
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be an int, an (h, w) pair, 'same' or 'valid', got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
    totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
    return tuple(t // 2 for t in totals), tuple(t % 2 for t in totals)


def _geometry(op, x, w, b, stride, padding, dilation, groups):
    """Validate shapes and parameters; return (x as a batch, (sh, sw, ph, pw, dh, dw, groups), y shape
    of the batch, extra bottom/right padding). An unbatched (C, H, W) x is a batch of one (a view)."""
    check_ndim(op, "x", x, (3, 4))
    check_ndim(op, "w", w, 4)
    if x.ndim == 3:
        x = x[None]
    stride = pair(op, "stride", stride, minimum=1)
    dilation = pair(op, "dilation", dilation, minimum=1)
    padding, extra = _padding(op, padding, stride, dilation, w.shape[2:])
    groups = integer(op, "groups", groups, minimum=1)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    if c == 0:
        raise ValueError(f"{op}: x must have at least one channel, got shape {x.shape}")
    if f == 0 or kh == 0 or kw == 0:
        raise ValueError(f"{op}: w must have at least one filter and a non-empty kernel, got shape {w.shape}")
    if c % groups:
        raise ValueError(f"{op}: groups = {groups} does not divide the {c} channels of x")
    if f % groups:
        raise ValueError(f"{op}: groups = {groups} does not divide the {f} filters of w (w.shape[0])")
    if cg != c // groups:
        raise ValueError(f"{op}: w has {cg} input channels per group, x has {c // groups} ({c} channels, "
                         f"groups = {groups})")
    if b is not None and b.shape != (f,):
        raise ValueError(f"{op}: b has shape {b.shape}, expected ({f},)")
    ho, wo = output_size_2d(op, (h + extra[0], wd + extra[1]), (kh, kw), stride, padding, dilation)
    if extra != (0, 0):
        # An odd "same" total pads one more row/column at the bottom/right (torch's placement). The
        # kernels take symmetric padding only: padding the input once costs one copy of x, against
        # a per-side padding through every direct, im2col and Winograd path of both backends.
        x = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    return x, (*stride, *padding, *dilation, groups), (n, f, ho, wo), extra


def _multiply_adds(y_shape, w):
    """Multiply-adds of the forward: each output sums C/groups * KH * KW products."""
    n, f, ho, wo = y_shape
    return n * f * ho * wo * w.shape[1] * w.shape[2] * w.shape[3]


def _forward_meta(op, x, w, b, stride, padding, dilation, groups):
    x, w, b = float_arrays(op, optional=("b",), x=x, w=w, b=b)
    batch, params, y_shape, _ = _geometry(op, x, w, b, stride, padding, dilation, groups)
    # unbatched: the kernels write (1, F, Ho, Wo), the caller gets (F, Ho, Wo) (a view)
    return Plan((batch, w, b), (y_shape,), x.dtype, params, work=_multiply_adds(y_shape, w), blas=True,
                shape=y_shape[1:] if x.ndim == 3 else None)


@meta("conv2d")
def _conv2d_meta(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return _forward_meta("conv2d", x, w, b, stride, padding, dilation, groups)


def _input_gradient(x_shape, extra):
    """The public result of conv2d_backward: dx without the extra "same" row/column, unbatched as x."""
    h, wd = x_shape[-2:]

    def result(outputs, _):
        dx, dw, db = outputs
        if dx is not None:
            if extra != (0, 0):
                dx = np.ascontiguousarray(dx[:, :, :h, :wd])
            dx = dx.reshape(x_shape)
        return dx, dw, db
    return result


@meta("conv2d_backward")
def _conv2d_backward_meta(dy, x, w, stride=1, padding=0, dilation=1, groups=1, input_grad=True):
    dy, x, w = float_arrays("conv2d_backward", dy=dy, x=x, w=w)
    batch, params, y_shape, extra = _geometry("conv2d_backward", x, w, None, stride, padding, dilation, groups)
    expected = y_shape[1:] if x.ndim == 3 else y_shape
    if dy.shape != expected:
        raise ValueError(f"conv2d_backward: dy has shape {dy.shape}, expected {expected} (the shape of y for x, w, "
                         f"stride {params[0:2]}, padding {padding!r}, dilation {params[4:6]})")
    input_grad = flag("conv2d_backward", "input_grad", input_grad)
    outputs = (batch.shape if input_grad else None, w.shape, (w.shape[0],))
    # dw always, dx when asked: one forward's multiply-adds each
    work = _multiply_adds(y_shape, w) * (2 if input_grad else 1)
    result = _input_gradient(x.shape, extra) if x.ndim == 3 or extra != (0, 0) else None
    return Plan((dy.reshape(y_shape), batch, w), outputs, x.dtype, params + (input_grad,), work=work, blas=True,
                result=result)


@meta("conv2d_relu")
def _conv2d_relu_meta(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return _forward_meta("conv2d_relu", x, w, b, stride, padding, dilation, groups)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """2-D cross-correlation with PyTorch's conv2d semantics (no kernel flip).

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W) or unbatched (C, H, W)
    w : array_like, shape (F, C // groups, KH, KW), x's dtype
    b : array_like, shape (F,), optional
    stride, dilation : int or (h, w) pair
    padding : int, (h, w) pair, "valid" or "same"
        An int or pair is zeros on both sides of each spatial axis (PyTorch's symmetric padding).
        "valid" is 0. "same" (stride 1 only, as PyTorch) keeps H and W: ``dilation * (k - 1)``
        zeros per axis, half on each side; an odd total puts the extra row/column at the
        bottom/right, as PyTorch does (at the cost of one padded copy of x).
    groups : int
        Splits channels and filters into `groups` independent convolutions; C and F must be
        multiples (groups = C is depthwise).
    out : ndarray, optional
        Written with the result and returned (y's shape: unbatched when x is).

    Returns
    -------
    ndarray
        (N, F, Ho, Wo), Ho = (H + 2 ph - dh (KH - 1) - 1) // sh + 1 (likewise Wo); (F, Ho, Wo) for
        an unbatched x.

    Raises
    ------
    TypeError
        An array is not float32 or float64, the dtypes differ, or a parameter is not an integer.
    ValueError
        Shapes that do not match (the message names the argument), an output size < 1, a padding
        string other than "valid" and "same", or "same" with a stride other than 1.

    Notes
    -----
    As in PyTorch, the weights are correlated, not convolved: w is not flipped.

    Examples
    --------
    >>> import fastnn
    >>> x, w = np.ones((2, 6, 5)), np.ones((4, 2, 2, 2))
    >>> fastnn.conv2d(x, w, padding="same").shape   # unbatched; an even kernel: one more zero at the end
    (4, 6, 5)
    """
    return call("conv2d", x, w, b, stride, padding, dilation, groups, out=out)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *, input_grad=True):
    """The gradients of conv2d with respect to x, w and b.

    Parameters
    ----------
    dy : array_like, shape (N, F, Ho, Wo), or (F, Ho, Wo) for an unbatched x
        The gradient of the loss with respect to y.
    x, w : array_like
        The forward's inputs.
    stride, padding, dilation, groups
        The forward's parameters (padding "valid" and "same" included).
    input_grad : bool
        False skips dx (returned as None): a network's first layer, whose input is data, needs
        only dw and db (PyTorch skips it the same way for inputs that do not require grad).

    Returns
    -------
    (dx, dw, db) : dx of x's shape (or None), dw of w's, db (F,) = dy summed over all but the
    channel axis, returned whether or not the forward had b.
    """
    return call("conv2d_backward", dy, x, w, stride, padding, dilation, groups, input_grad=input_grad)


def conv2d_relu(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """relu(conv2d(...)) in one pass (forward only; NaN stays NaN).

    Parameters
    ----------
    x, w, b, stride, padding, dilation, groups, out
        As `conv2d` (padding "valid" and "same", unbatched x).

    Returns
    -------
    ndarray
        max(conv2d(x, w, b, ...), 0), (N, F, Ho, Wo), or (F, Ho, Wo) for an unbatched x.
    """
    return call("conv2d_relu", x, w, b, stride, padding, dilation, groups, out=out)
