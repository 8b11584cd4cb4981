"""2-D convolution (cross-correlation, as PyTorch's conv2d): public functions and meta functions.

x (N, C, H, W); w (F, C // groups, KH, KW); b (F,) or None; y (N, F, Ho, Wo) with PyTorch's
output size. stride, padding and dilation are ints or (h, w) pairs.

Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan):
kernels of every backend are called as
    conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads[, workspace=])
    conv2d_relu(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads[, workspace=])
    conv2d_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dh, dw, groups, input_grad, n_threads[, workspace=])
(the reference without n_threads); b may be None, dx is None when input_grad is False. The work is
counted in multiply-adds (the grain table's unit for conv).
"""
from ._ops import Plan, call, meta
from ._validation import check_ndim, flag, float_arrays, integer, output_size_2d, pair


def _conv_params(op, x, w, b, stride, padding, dilation, groups):
    """Validate shapes and parameters; return ((sh, sw, ph, pw, dh, dw, groups), y shape)."""
    check_ndim(op, "x", x, 4)
    check_ndim(op, "w", w, 4)
    stride = pair(op, "stride", stride, minimum=1)
    padding = pair(op, "padding", padding, minimum=0)
    dilation = pair(op, "dilation", dilation, minimum=1)
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
    ho, wo = output_size_2d(op, (h, wd), (kh, kw), stride, padding, dilation)
    return (*stride, *padding, *dilation, groups), (n, f, ho, wo)


def _multiply_adds(y_shape, w):
    """Multiply-adds of the forward: each output sums C/groups * KH * KW products."""
    n, f, ho, wo = y_shape
    return n * f * ho * wo * w.shape[1] * w.shape[2] * w.shape[3]


def _forward_meta(op, x, w, b, stride, padding, dilation, groups):
    x, w, b = float_arrays(op, optional=("b",), x=x, w=w, b=b)
    params, y_shape = _conv_params(op, x, w, b, stride, padding, dilation, groups)
    return Plan((x, w, b), (y_shape,), x.dtype, params, work=_multiply_adds(y_shape, w), blas=True)


@meta("conv2d")
def _conv2d_meta(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return _forward_meta("conv2d", x, w, b, stride, padding, dilation, groups)


@meta("conv2d_backward")
def _conv2d_backward_meta(dy, x, w, stride=1, padding=0, dilation=1, groups=1, input_grad=True):
    dy, x, w = float_arrays("conv2d_backward", dy=dy, x=x, w=w)
    params, y_shape = _conv_params("conv2d_backward", x, w, None, stride, padding, dilation, groups)
    if dy.shape != y_shape:
        raise ValueError(f"conv2d_backward: dy has shape {dy.shape}, expected {y_shape} (the shape of y for x, w, "
                         f"stride {params[0:2]}, padding {params[2:4]}, dilation {params[4:6]})")
    input_grad = flag("conv2d_backward", "input_grad", input_grad)
    outputs = (x.shape if input_grad else None, w.shape, (w.shape[0],))
    # dw always, dx when asked: one forward's multiply-adds each
    work = _multiply_adds(y_shape, w) * (2 if input_grad else 1)
    return Plan((dy, x, w), outputs, x.dtype, params + (input_grad,), work=work, blas=True)


@meta("conv2d_relu")
def _conv2d_relu_meta(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return _forward_meta("conv2d_relu", x, w, b, stride, padding, dilation, groups)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """2-D cross-correlation with PyTorch's conv2d semantics (no kernel flip).

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W)
    w : array_like, shape (F, C // groups, KH, KW), x's dtype
    b : array_like, shape (F,), optional
    stride, padding, dilation : int or (h, w) pair
        padding is zeros on both sides of each spatial axis (PyTorch's symmetric padding).
    groups : int
        Splits channels and filters into `groups` independent convolutions; C and F must be
        multiples (groups = C is depthwise).
    out : ndarray, optional
        Written with the result and returned.

    Returns
    -------
    ndarray (N, F, Ho, Wo), Ho = (H + 2 ph - dh (KH - 1) - 1) // sh + 1 (likewise Wo).

    Notes
    -----
    As in PyTorch, the weights are correlated, not convolved: w is not flipped.
    """
    return call("conv2d", x, w, b, stride, padding, dilation, groups, out=out)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *, input_grad=True):
    """The gradients of conv2d with respect to x, w and b.

    Parameters
    ----------
    dy : array_like, shape (N, F, Ho, Wo): the gradient of the loss with respect to y
    x, w : the forward's inputs
    stride, padding, dilation, groups : the forward's parameters
    input_grad : bool
        False skips dx (returned as None): a network's first layer, whose input is data, needs
        only dw and db (PyTorch skips it the same way for inputs that do not require grad).

    Returns
    -------
    (dx, dw, db) : dx of x's shape (or None), dw of w's, db (F,) = dy.sum((0, 2, 3)), returned
    whether or not the forward had b.
    """
    return call("conv2d_backward", dy, x, w, stride, padding, dilation, groups, input_grad=input_grad)


def conv2d_relu(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """relu(conv2d(...)) in one pass (forward only; NaN stays NaN).

    Parameters
    ----------
    x, w, b, stride, padding, dilation, groups, out
        As `conv2d`.

    Returns
    -------
    ndarray
        max(conv2d(x, w, b, ...), 0), (N, F, H_out, W_out).
    """
    return call("conv2d_relu", x, w, b, stride, padding, dilation, groups, out=out)
