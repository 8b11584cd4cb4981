"""Pooling: public functions (validation, then the op table). x is NCHW.

Parameters follow PyTorch: kernel_size/stride/padding are ints or (h, w) pairs, stride None means
kernel_size, padding <= kernel_size // 2, output size floor((H + 2p - k) / s) + 1.
"""
from ._ops import call
from ._validation import check_ndim, check_out, float_arrays, output_size_2d, pair


def _params(op, x, kernel_size, stride, padding):
    """(kernel, stride, padding) as (h, w) tuples and the pooled shape of x."""
    check_ndim(op, "x", x, 4)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{op}: x must have a nonzero height and width, got shape {x.shape}")
    kernel = pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else pair(op, "stride", stride, minimum=1)
    padding = pair(op, "padding", padding, minimum=0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half of kernel_size (as PyTorch), got padding {padding} "
            f"for kernel_size {kernel}"
        )
    out_hw = output_size_2d(op, x.shape[2:], kernel, stride, padding, kernel_from_w=False)
    return kernel, stride, padding, x.shape[:2] + out_hw


def _forward(op, x, kernel_size, stride, padding, out):
    x = float_arrays(op, x=x)
    kernel, stride, padding, out_shape = _params(op, x, kernel_size, stride, padding)
    check_out(op, out, out_shape, x.dtype)
    return call(op, x, kernel, stride, padding, out=out)


def _backward(op, dy, x, kernel_size, stride, padding, out):
    dy, x = float_arrays(op, dy=dy, x=x)
    kernel, stride, padding, out_shape = _params(op, x, kernel_size, stride, padding)
    if dy.shape != out_shape:
        raise ValueError(f"{op}: dy has shape {dy.shape}, expected {out_shape} (the pooled shape of x {x.shape} for "
                         f"kernel_size {kernel}, stride {stride}, padding {padding})")
    check_out(op, out, x.shape, x.dtype)
    return call(op, dy, x, kernel, stride, padding, out=out)


def max_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Max over each window; padding counts as -inf; NaN in a window wins (as PyTorch)."""
    return _forward("max_pool2d", x, kernel_size, stride, padding, out)


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, *, out=None):
    """dx: each window's dy goes to its first maximum in row-major order (a NaN wins, as PyTorch)."""
    return _backward("max_pool2d_backward", dy, x, kernel_size, stride, padding, out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Mean over each window; padded zeros count (PyTorch's count_include_pad=True)."""
    return _forward("avg_pool2d", x, kernel_size, stride, padding, out)


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, *, out=None):
    return _backward("avg_pool2d_backward", dy, x, kernel_size, stride, padding, out)
