"""Plain-NumPy pooling: the oracle and the benchmark baseline.

Each function takes the inputs, then the outputs to fill (their shapes from the op's meta function
in fastnn/pool.py), then the parameters, like the compiled kernels. Arrays are (..., H, W): every
leading dimension is a batch of planes.
Windows come from sliding_window_view over the input padded with `ph`/`pw` and, on the bottom and
right, as far as ceil_mode's last windows hang; a mask of the same windows says which elements are
x's. Backwards loop over the kh * kw window offsets and add each window's gradient into the padded dx.
PyTorch's max rule: a value wins if it is greater than the current maximum or is NaN, scanning
the window in row-major order; so ties go to the first maximum and, among NaNs, to the last one.
Average divisors are torch's CPU kernel's: the number of the window's positions inside the padded
input (count_include_pad) or inside x, or divisor_override.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _planes(a):
    """(..., H, W) as (P, H, W): a view of a contiguous array."""
    return a.reshape((-1,) + a.shape[-2:])


def _windows(a, out_hw, kernel, stride, padding, dilation, fill):
    """(P, Ho, Wo, kh, kw) view of the windows of planes `a` padded with `fill`."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    (out_h, out_w), (h, w) = out_hw, a.shape[1:]
    bottom = max(ph, (out_h - 1) * sh + dh * (kh - 1) + 1 - h - ph)  # ceil_mode's windows hang past ph
    right = max(pw, (out_w - 1) * sw + dw * (kw - 1) + 1 - w - pw)
    padded = np.pad(a, ((0, 0), (ph, bottom), (pw, right)), constant_values=fill)
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    windows = sliding_window_view(padded, span, axis=(1, 2))[:, ::sh, ::sw, ::dh, ::dw]
    return windows[:, :out_h, :out_w]


def _scatter(window_grads, shape, kernel, stride, padding, dilation, dtype):
    """dx planes (P, H, W) from per-offset gradients window_grads[..., i * kw + j] (P, Ho, Wo, kh * kw)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    p, h, w = shape
    out_h, out_w = window_grads.shape[1:3]
    dx = np.zeros((p, ph + (out_h - 1) * sh + dh * (kh - 1) + 1 + h + ph,
                   pw + (out_w - 1) * sw + dw * (kw - 1) + 1 + w + pw), dtype)  # room for any window
    for i in range(kh):
        for j in range(kw):
            dx[:, i * dh:i * dh + sh * out_h:sh, j * dw:j * dw + sw * out_w:sw] += window_grads[..., i * kw + j]
    return dx[:, ph:ph + h, pw:pw + w]


def _max_winner(x, out_hw, kernel, stride, padding, dilation):
    """Flat in-window offset (i * kw + j) of each window's winner under PyTorch's rule, and the
    windows' flat indices h * W + w into the plane."""
    windows = _windows(x, out_hw, kernel, stride, padding, dilation, -np.inf)
    windows = windows.reshape(windows.shape[:3] + (kernel[0] * kernel[1],))
    plane = np.arange(x.shape[1] * x.shape[2]).reshape(1, *x.shape[1:])
    where = _windows(plane, out_hw, kernel, stride, padding, dilation, -1).reshape(windows.shape[1:])
    valid = where >= 0
    is_max = valid & (windows == windows.max(axis=-1, keepdims=True))  # padding never wins
    first_max = is_max.argmax(axis=-1)  # all -inf: the first element of x
    nan = np.isnan(windows)
    last_nan = windows.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
    return np.where(nan.any(axis=-1), last_nan, first_max), where


def max_pool2d(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw):
    geometry = ((kh, kw), (sh, sw), (ph, pw), (dh, dw))
    x, y = _planes(x), _planes(y)
    winner, where = _max_winner(x, y.shape[1:], *geometry)
    windows = _windows(x, y.shape[1:], *geometry, -np.inf).reshape(winner.shape + (kh * kw,))
    y[...] = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
    if indices is not None:
        where = np.broadcast_to(where, winner.shape + (kh * kw,))
        _planes(indices)[...] = np.take_along_axis(where, winner[..., None], axis=-1)[..., 0]


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw):
    geometry = ((kh, kw), (sh, sw), (ph, pw), (dh, dw))
    dy, x = _planes(dy), _planes(x)
    winner, _ = _max_winner(x, dy.shape[1:], *geometry)
    window_grads = np.where(winner[..., None] == np.arange(kh * kw), dy[..., None], 0).astype(x.dtype, copy=False)
    _planes(dx)[...] = _scatter(window_grads, x.shape, *geometry, x.dtype)


def _divisors(shape, out_hw, kernel, stride, padding, count_include_pad, divisor):
    """(Ho, Wo) divisors: the window's positions inside the padded input, or inside x."""
    if divisor:
        return divisor
    (h, w), (ph, pw) = shape, padding
    inside = np.zeros((1, h + 2 * ph, w + 2 * pw)) if count_include_pad else np.zeros((1, h, w))
    inside[...] = 1
    pad = (0, 0) if count_include_pad else padding  # the padded input's windows start at its corner
    counts = _windows(inside, out_hw, kernel, stride, pad, (1, 1), 0)
    return counts.sum(axis=(-2, -1))[0]


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    x, y = _planes(x), _planes(y)
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, quietly, as in PyTorch
        total = _windows(x, y.shape[1:], (kh, kw), (sh, sw), (ph, pw), (1, 1), 0).sum(axis=(-2, -1))
    y[...] = total / _divisors(x.shape[1:], y.shape[1:], (kh, kw), (sh, sw), (ph, pw), count_include_pad, divisor)


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    dy, x = _planes(dy), _planes(x)
    area = kh * kw
    share = dy / _divisors(x.shape[1:], dy.shape[1:], (kh, kw), (sh, sw), (ph, pw), count_include_pad, divisor)
    window_grads = np.broadcast_to(share[..., None], dy.shape + (area,))
    _planes(dx)[...] = _scatter(window_grads, x.shape, (kh, kw), (sh, sw), (ph, pw), (1, 1), x.dtype)
