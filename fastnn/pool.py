"""Pooling: public functions and their meta functions. x is NCHW, or unbatched CHW.

Parameters follow torch.nn.functional: kernel_size/stride/padding/dilation are ints or (h, w)
pairs, stride None means kernel_size, padding <= kernel_size // 2 (torch's rule, dilated or not),
and the output size is torch's `pooling_output_shape` (ceil_mode rounds up, but a window never
starts in the right padding).
Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan); the
kernels of every backend work on the planes of x (any leading dimensions) and are called as
    max_pool2d(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads)   indices None or int64
    max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads)
    avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, n_threads)
    avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, n_threads)
(divisor 0: torch's per-window divisor; else divisor_override), and the work is counted in
elements of x.
"""
import numpy as np

from ._ops import Plan, call, meta
from ._validation import INDEX_MAX, check_ndim, flag, float_arrays, integer, pair


def _output_size(op, size, k, s, p, d, ceil_mode, axis):
    """torch's pooling_output_shape for one axis; ValueError below 1."""
    what = f"x {'height' if axis == 2 else 'width'} size {size}, kernel_size {k}"
    if d * (k - 1) + 1 > INDEX_MAX:
        raise ValueError(f"{op}: dilation {d} too large: the dilated kernel would span {d * (k - 1) + 1} "
                         f"(> {INDEX_MAX}) pixels for {what}")
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window would start in the right padding
        out -= 1
    if out < 1:
        raise ValueError(f"{op}: output size would be {out} (< 1) for {what}, stride {s}, padding {p}, "
                         f"dilation {d}, ceil_mode {ceil_mode}")
    return out


def _check_windows_hold_x(op, size, out, k, s, p, d, axis):
    """Every dilated window must reach an element of x (a window starting left of x has its first
    in-range tap at (start mod d), which may lie past a plane narrower than d): torch would give
    -inf and an index outside x. Only windows starting in the left padding can miss."""
    if d <= size:
        return
    for o in range(min(out, -(-p // s))):
        if (o * s - p) % d >= size:
            raise ValueError(f"{op}: dilation {d} with padding {p} leaves output {o} of x "
                             f"{'height' if axis == 2 else 'width'} size {size} without any element of x")


def _params(op, x, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """(kh, kw, sh, sw, ph, pw, dh, dw) and the pooled shape of x (N, C, H, W) or (C, H, W)."""
    check_ndim(op, "x", x, (3, 4))
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{op}: x must have a nonzero height and width, got shape {x.shape}")
    kernel = pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else pair(op, "stride", stride, minimum=1)
    padding = pair(op, "padding", padding, minimum=0)
    dilation = pair(op, "dilation", dilation, minimum=1)
    ceil_mode = flag(op, "ceil_mode", ceil_mode)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half of kernel_size (as PyTorch), got padding {padding} "
            f"for kernel_size {kernel}"
        )
    h, w = x.shape[-2:]
    if (h + 2 * padding[0]) * (w + 2 * padding[1]) > INDEX_MAX:
        culprit = f"padding {padding}" if padding != (0, 0) else "x"
        raise ValueError(f"{op}: {culprit} too large: the padded planes would be {h + 2 * padding[0]} x "
                         f"{w + 2 * padding[1]} (> {INDEX_MAX} elements) for x planes {h} x {w}")
    out_hw = []
    for axis, size, k, s, p, d in zip((2, 3), (h, w), kernel, stride, padding, dilation):
        out_hw.append(_output_size(op, size, k, s, p, d, ceil_mode, axis))
        _check_windows_hold_x(op, size, out_hw[-1], k, s, p, d, axis)
    return kernel + stride + padding + dilation, x.shape[:-2] + tuple(out_hw)


def _check_dy(op, dy, x, out_shape, params):
    if dy.shape != out_shape:
        raise ValueError(f"{op}: dy has shape {dy.shape}, expected {out_shape} (the pooled shape of x {x.shape} "
                         f"for kernel_size {params[:2]}, stride {params[2:4]}, padding {params[4:6]})")


def _avg_options(op, count_include_pad, divisor_override):
    """(count_include_pad, divisor): divisor 0 means torch's per-window divisor."""
    count_include_pad = flag(op, "count_include_pad", count_include_pad)
    if divisor_override is None:
        return count_include_pad, 0
    divisor = integer(op, "divisor_override", divisor_override, minimum=-INDEX_MAX)
    if divisor == 0:
        raise ValueError(f"{op}: divisor_override must be nonzero (or None), got 0")
    return count_include_pad, divisor


def _values_only(outputs, _):
    return outputs[0]


def _values_and_indices(outputs, _):
    return outputs[0], outputs[1]


@meta("max_pool2d")
def _max_pool2d_meta(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x = float_arrays("max_pool2d", x=x)
    params, out_shape = _params("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    if flag("max_pool2d", "return_indices", return_indices):
        return Plan((x,), (out_shape, out_shape), x.dtype, params, work=x.size, result=_values_and_indices,
                    dtypes=(x.dtype, np.dtype(np.int64)))
    return Plan((x,), (out_shape, None), x.dtype, params, work=x.size, result=_values_only)


@meta("max_pool2d_backward")
def _max_pool2d_backward_meta(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    op = "max_pool2d_backward"
    dy, x = float_arrays(op, dy=dy, x=x)
    params, out_shape = _params(op, x, kernel_size, stride, padding, dilation, ceil_mode)
    _check_dy(op, dy, x, out_shape, params)
    return Plan((dy, x), (x.shape,), x.dtype, params, work=x.size)


@meta("avg_pool2d")
def _avg_pool2d_meta(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None):
    x = float_arrays("avg_pool2d", x=x)
    params, out_shape = _params("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    options = _avg_options("avg_pool2d", count_include_pad, divisor_override)
    return Plan((x,), (out_shape,), x.dtype, params[:6] + options, work=x.size)


@meta("avg_pool2d_backward")
def _avg_pool2d_backward_meta(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                              divisor_override=None):
    op = "avg_pool2d_backward"
    dy, x = float_arrays(op, dy=dy, x=x)
    params, out_shape = _params(op, x, kernel_size, stride, padding, 1, ceil_mode)
    _check_dy(op, dy, x, out_shape, params)
    options = _avg_options(op, count_include_pad, divisor_override)
    return Plan((dy, x), (x.shape,), x.dtype, params[:6] + options, work=x.size)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               out=None):
    """Max over each window; padding counts as -inf; NaN in a window wins (as PyTorch).

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W) or unbatched (C, H, W)
    kernel_size, stride, padding : int or (h, w) pair
        stride None means kernel_size; padding is at most kernel_size // 2 (as PyTorch).
    dilation : int or (h, w) pair, default 1
        The spacing of a window's elements (torch's): window element (i, j) of output (oh, ow) is
        x[oh * sh - ph + i * dh, ow * sw - pw + j * dw].
    ceil_mode : bool, default False
        Round the output size up (torch's): the last windows may hang past the end of x; they pool
        what they hold.
    return_indices : bool, default False
        Also return each winner's index, as torch: flat in its (H, W) plane, h * W + w (what
        torch.nn.functional.max_unpool2d takes).
    out : ndarray, optional
        Written with the pooled values and returned.

    Returns
    -------
    y : ndarray of shape (N, C, Ho, Wo) (or (C, Ho, Wo)), x's dtype
        Ho = floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1 (likewise Wo); with ceil_mode the
        division rounds up, less one if the last window would start in the right padding
        (torch's pooling_output_shape).
    indices : ndarray of int64, y's shape
        Only with return_indices: the tuple (y, indices).

    Raises
    ------
    ValueError
        An invalid size or option, naming it (an output size < 1, padding > kernel_size // 2,
        a dilation that leaves a window with no element of x).

    Notes
    -----
    PyTorch's rule: scanning a window in row-major order, a value wins if it is greater than the
    current maximum or is NaN; so ties go to the first maximum and, among NaNs, to the last one.
    """
    return call("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out=out)


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, out=None):
    """dx: each window's dy goes to its first maximum in row-major order (as PyTorch).

    Parameters
    ----------
    dy : array_like, max_pool2d's output shape
    x : array_like, shape (N, C, H, W) or (C, H, W): the forward's input (the winners are
        recomputed from it, the ones max_pool2d's indices name)
    kernel_size, stride, padding, dilation, ceil_mode : as max_pool2d
    out : ndarray, optional

    Returns
    -------
    dx, ndarray of x's shape and dtype (0 where no window's winner lies).

    Notes
    -----
    PyTorch's rule: scanning a window in row-major order, a value wins if it is greater than the
    current maximum or is NaN; so ties go to the first maximum and, among NaNs, to the last one.
    """
    return call("max_pool2d_backward", dy, x, kernel_size, stride, padding, dilation, ceil_mode, out=out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """Mean over each window, with torch's divisors.

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, C, H, W) or unbatched (C, H, W)
    kernel_size, stride, padding, ceil_mode : as max_pool2d 
    count_include_pad : bool, default True
        True: a window's divisor counts its padded zeros (the window clipped to the padded input,
        so a ceil_mode window hanging past the padding divides by fewer); False: only its elements
        of x. torch's CPU kernel's rule.
    divisor_override : int, optional
        Nonzero: every window's sum is divided by it instead.
    out : ndarray, optional

    Returns
    -------
    ndarray of shape (N, C, Ho, Wo) (or (C, Ho, Wo)), x's dtype: each window's sum of x divided
    by its divisor (Ho, Wo as max_pool2d's without dilation).
    """
    return call("avg_pool2d", x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                out=out)


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None, *, out=None):
    """dx: each input gets dy / divisor from every window it is in.

    Parameters
    ----------
    dy : array_like, avg_pool2d's output shape
    x : array_like, shape (N, C, H, W) or (C, H, W) (only its shape and dtype are used)
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override : as avg_pool2d
    out : ndarray, optional

    Returns
    -------
    dx, ndarray of x's shape and dtype (0 where no window reaches).
    """
    return call("avg_pool2d_backward", dy, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override, out=out)
