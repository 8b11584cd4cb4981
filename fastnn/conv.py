"""2-D convolution (cross-correlation, as PyTorch's conv2d): public functions.

x (N, C, H, W); w (F, C // groups, KH, KW); b (F,) or None; y (N, F, Ho, Wo) with PyTorch's
output size. stride, padding and dilation are ints or (h, w) pairs.
"""
from ._ops import call
from ._validation import check_ndim, check_out, flag, float_arrays, integer, output_size_2d, pair


def _conv_params(op, x, w, b, stride, padding, dilation, groups):
    """Validate shapes and parameters; return (stride, padding, dilation, groups, y shape)."""
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
    return stride, padding, dilation, groups, (n, f, ho, wo)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    x, w, b = float_arrays("conv2d", optional=("b",), x=x, w=w, b=b)
    *params, y_shape = _conv_params("conv2d", x, w, b, stride, padding, dilation, groups)
    check_out("conv2d", out, y_shape, x.dtype)
    return call("conv2d", x, w, b, *params, out=out)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *, input_grad=True):
    """Returns (dx, dw, db); db = dy.sum((0, 2, 3)) is returned whether or not the forward had b.

    input_grad=False skips dx (returned as None): a network's first layer, whose input is data,
    needs only dw and db (PyTorch skips it the same way for inputs that do not require grad)."""
    dy, x, w = float_arrays("conv2d_backward", dy=dy, x=x, w=w)
    *params, y_shape = _conv_params("conv2d_backward", x, w, None, stride, padding, dilation, groups)
    if dy.shape != y_shape:
        stride, padding, dilation = params[:3]
        raise ValueError(f"conv2d_backward: dy has shape {dy.shape}, expected {y_shape} (the shape of y for x, w, "
                         f"stride {stride}, padding {padding}, dilation {dilation})")
    input_grad = flag("conv2d_backward", "input_grad", input_grad)
    return call("conv2d_backward", dy, x, w, *params, input_grad=input_grad)


def conv2d_relu(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """relu(conv2d(...)) in one pass (forward only)."""
    x, w, b = float_arrays("conv2d_relu", optional=("b",), x=x, w=w, b=b)
    *params, y_shape = _conv_params("conv2d_relu", x, w, b, stride, padding, dilation, groups)
    check_out("conv2d_relu", out, y_shape, x.dtype)
    return call("conv2d_relu", x, w, b, *params, out=out)
