"""Plain-NumPy pooling: the oracle and the benchmark baseline.

Each function takes the inputs, then the output array to fill (its shape from the op's meta
function in fastnn/pool.py), then kh, kw, sh, sw, ph, pw, like the compiled kernels.
Windows come from sliding_window_view over the padded input; backwards loop over the kh * kw
window offsets and add each window's gradient into the padded dx.
PyTorch's max rule: a value wins if it is greater than the current maximum or is NaN, scanning
the window in row-major order; so ties go to the first maximum and, among NaNs, to the last one.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kernel, stride, padding, fill):
    """(N, C, Ho, Wo, kh, kw) view of the windows of x padded with `fill`."""
    (sh, sw), (ph, pw) = stride, padding
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::sh, ::sw]


def _scatter(window_grads, x, kernel, stride, padding):
    """dx from per-offset gradients window_grads[..., i * kw + j] of shape (N, C, Ho, Wo, kh * kw)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    out_h, out_w = window_grads.shape[2:4]
    dx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw] += window_grads[..., i * kw + j]
    return dx[:, :, ph:ph + h, pw:pw + w].copy()


def max_pool2d(x, y, kh, kw, sh, sw, ph, pw):
    y[...] = _windows(x, (kh, kw), (sh, sw), (ph, pw), -np.inf).max(axis=(4, 5))


def _max_winner(x, kernel, stride, padding):
    """Flat in-window index of each window's winner under PyTorch's rule."""
    windows = _windows(x, kernel, stride, padding, -np.inf)
    windows = windows.reshape(windows.shape[:4] + (kernel[0] * kernel[1],))
    valid = _windows(np.ones(x.shape, bool), kernel, stride, padding, False).reshape(windows.shape)
    is_max = valid & (windows == windows.max(axis=-1, keepdims=True))  # padding never wins
    first_max = is_max.argmax(axis=-1)
    nan = np.isnan(windows)
    last_nan = windows.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
    return np.where(nan.any(axis=-1), last_nan, first_max)


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw):
    winner = _max_winner(x, (kh, kw), (sh, sw), (ph, pw))
    window_grads = np.where(winner[..., None] == np.arange(kh * kw), dy[..., None], 0).astype(x.dtype, copy=False)
    dx[...] = _scatter(window_grads, x, (kh, kw), (sh, sw), (ph, pw))


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw):
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, quietly, as in PyTorch
        total = _windows(x, (kh, kw), (sh, sw), (ph, pw), 0).sum(axis=(4, 5))
    y[...] = total / (kh * kw)


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw):
    area = kh * kw
    window_grads = np.broadcast_to((dy / area)[..., None], dy.shape + (area,))
    dx[...] = _scatter(window_grads, x, (kh, kw), (sh, sw), (ph, pw))
