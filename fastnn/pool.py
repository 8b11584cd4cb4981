"""Pooling: public functions and their meta functions. x is NCHW.

Parameters follow PyTorch: kernel_size/stride/padding are ints or (h, w) pairs, stride None means
kernel_size, padding <= kernel_size // 2, output size floor((H + 2p - k) / s) + 1.
Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan); the
kernels of every backend are called as kernel(inputs..., outputs..., kh, kw, sh, sw, ph, pw,
n_threads), and the work is counted in elements of x.
"""
from ._ops import Plan, call, meta
from ._validation import check_ndim, float_arrays, output_size_2d, pair


def _params(op, x, kernel_size, stride, padding):
    """(kh, kw, sh, sw, ph, pw) and the pooled shape of x."""
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
    return kernel + stride + padding, x.shape[:2] + out_hw


def _forward_meta(op):
    def plan(x, kernel_size, stride=None, padding=0):
        x = float_arrays(op, x=x)
        params, out_shape = _params(op, x, kernel_size, stride, padding)
        return Plan((x,), (out_shape,), x.dtype, params, work=x.size)
    return meta(op)(plan)


def _backward_meta(op):
    def plan(dy, x, kernel_size, stride=None, padding=0):
        dy, x = float_arrays(op, dy=dy, x=x)
        params, out_shape = _params(op, x, kernel_size, stride, padding)
        if dy.shape != out_shape:
            kernel, stride, padding = params[:2], params[2:4], params[4:]
            raise ValueError(f"{op}: dy has shape {dy.shape}, expected {out_shape} (the pooled shape of x {x.shape} "
                             f"for kernel_size {kernel}, stride {stride}, padding {padding})")
        return Plan((dy, x), (x.shape,), x.dtype, params, work=x.size)
    return meta(op)(plan)


_forward_meta("max_pool2d")
_backward_meta("max_pool2d_backward")
_forward_meta("avg_pool2d")
_backward_meta("avg_pool2d_backward")


def max_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Max over each window; padding counts as -inf; NaN in a window wins (as PyTorch).

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W)
    kernel_size, stride, padding : int or (h, w) pair
        stride None means kernel_size; padding is at most kernel_size // 2 (as PyTorch), so every
        window holds at least one element of x.
    out : ndarray, optional
        Written with the result and returned.

    Returns
    -------
    ndarray of shape (N, C, Ho, Wo), Ho = (H + 2 * ph - kh) // sh + 1 (likewise Wo), x's dtype.
    """
    return call("max_pool2d", x, kernel_size, stride, padding, out=out)


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, *, out=None):
    """dx: each window's dy goes to its first maximum in row-major order (as PyTorch).

    Parameters
    ----------
    dy : array_like, shape (N, C, Ho, Wo) (max_pool2d's output shape)
    x : array_like, shape (N, C, H, W), the forward's input (the winners are recomputed from it)
    kernel_size, stride, padding : as max_pool2d
    out : ndarray, optional

    Returns
    -------
    dx, ndarray of x's shape and dtype (0 where no window's winner lies).

    Notes
    -----
    PyTorch's rule: scanning a window in row-major order, a value wins if it is greater than the
    current maximum or is NaN; so ties go to the first maximum and, among NaNs, to the last one.
    """
    return call("max_pool2d_backward", dy, x, kernel_size, stride, padding, out=out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Mean over each window; padded zeros count (PyTorch's count_include_pad=True).

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W)
    kernel_size, stride, padding : int or (h, w) pair, as max_pool2d
    out : ndarray, optional

    Returns
    -------
    ndarray of shape (N, C, Ho, Wo), x's dtype: each window's sum divided by kh * kw, padding
    included (a border window of a padded input averages in zeros).
    """
    return call("avg_pool2d", x, kernel_size, stride, padding, out=out)


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, *, out=None):
    """dx: each input gets dy / (kh * kw) from every window it is in.

    Parameters
    ----------
    dy : array_like, shape (N, C, Ho, Wo) (avg_pool2d's output shape)
    x : array_like, shape (N, C, H, W) (only its shape and dtype are used)
    kernel_size, stride, padding : as avg_pool2d
    out : ndarray, optional

    Returns
    -------
    dx, ndarray of x's shape and dtype (0 where no window reaches).
    """
    return call("avg_pool2d_backward", dy, x, kernel_size, stride, padding, out=out)
