"""Plain-NumPy 2-D convolution (cross-correlation, as PyTorch): the oracle and the NumPy baseline.

Windows come from `sliding_window_view` of the zero-padded input; each group is one BLAS-backed
`tensordot` over (channel, kh, kw). The input gradient adds each kernel tap's contribution back
through a strided slice (a loop over the KH*KW taps, never over pixels).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kernel, stride, padding, dilation):
    """(N, C, Ho, Wo, KH, KW) view of the padded x: window (i, j) at output pixel (p, q)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    return sliding_window_view(xp, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]


def _group_slices(total, groups):
    size = total // groups
    return [slice(g * size, (g + 1) * size) for g in range(groups)]


def conv2d(x, w, b, stride, padding, dilation, groups):
    n, c = x.shape[:2]
    f, _, kh, kw = w.shape
    win = _windows(x, (kh, kw), stride, padding, dilation)
    ho, wo = win.shape[2:4]
    y = np.empty((n, f, ho, wo), dtype=x.dtype)
    for cs, fs in zip(_group_slices(c, groups), _group_slices(f, groups)):
        # (N, Ho, Wo, Fg) -> (N, Fg, Ho, Wo)
        y[:, fs] = np.tensordot(win[:, cs], w[fs], axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, input_grad=True):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw_) = stride, padding, dilation
    win = _windows(x, (kh, kw), stride, padding, dilation)
    ho, wo = dy.shape[2:]
    db = dy.sum(axis=(0, 2, 3))
    dw = np.empty_like(w)
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)
    for cs, fs in zip(_group_slices(c, groups), _group_slices(f, groups)):
        dw[fs] = np.tensordot(dy[:, fs], win[:, cs], axes=([0, 2, 3], [0, 2, 3]))
        if not input_grad:
            continue
        # (N, Ho, Wo, Cg, KH, KW): the gradient of each window element
        dwin = np.tensordot(dy[:, fs], w[fs], axes=([1], [0]))
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
                cols = slice(j * dw_, j * dw_ + sw * (wo - 1) + 1, sw)
                dxp[:, cs, rows, cols] += dwin[..., i, j].transpose(0, 3, 1, 2)
    dx = dxp[:, :, ph:ph + h, pw:pw + wd].copy() if input_grad else None
    return dx, dw, db


def conv2d_relu(x, w, b, stride, padding, dilation, groups):
    return np.maximum(conv2d(x, w, b, stride, padding, dilation, groups), 0)
