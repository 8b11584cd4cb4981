"""Plain-NumPy 2-D convolution (cross-correlation, as PyTorch): the oracle and the NumPy baseline.

Signatures follow the contract (fastnn/conv.py): inputs, outputs, parameters; the outputs are filled.
Windows come from `sliding_window_view` of the zero-padded input; each group is one BLAS-backed
`tensordot` over (channel, kh, kw). The input gradient adds each kernel tap's contribution back
through a strided slice (a loop over the KH*KW taps, never over pixels).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kernel, out_hw, sh, sw, ph, pw, dh, dw):
    """(N, C, Ho, Wo, KH, KW) view of the padded x: window (i, j) at output pixel (p, q)."""
    (kh, kw), (ho, wo) = kernel, out_hw
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    return sliding_window_view(xp, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]


def _group_slices(total, groups):
    size = total // groups
    return [slice(g * size, (g + 1) * size) for g in range(groups)]


def conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups):
    win = _windows(x, w.shape[2:], y.shape[2:], sh, sw, ph, pw, dh, dw)
    for cs, fs in zip(_group_slices(x.shape[1], groups), _group_slices(w.shape[0], groups)):
        # (N, Ho, Wo, Fg) -> (N, Fg, Ho, Wo)
        y[:, fs] = np.tensordot(win[:, cs], w[fs], axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)


def conv2d_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dh, dil_w, groups, input_grad):
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    ho, wo = dy.shape[2:]
    win = _windows(x, (kh, kw), (ho, wo), sh, sw, ph, pw, dh, dil_w)
    db[...] = dy.sum(axis=(0, 2, 3))
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype) if input_grad else None
    for cs, fs in zip(_group_slices(c, groups), _group_slices(w.shape[0], groups)):
        dw[fs] = np.tensordot(dy[:, fs], win[:, cs], axes=([0, 2, 3], [0, 2, 3]))
        if not input_grad:
            continue
        # (N, Ho, Wo, Cg, KH, KW): the gradient of each window element
        dwin = np.tensordot(dy[:, fs], w[fs], axes=([1], [0]))
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
                cols = slice(j * dil_w, j * dil_w + sw * (wo - 1) + 1, sw)
                dxp[:, cs, rows, cols] += dwin[..., i, j].transpose(0, 3, 1, 2)
    if input_grad:
        dx[...] = dxp[:, :, ph:ph + h, pw:pw + wd]


def conv2d_relu(x, w, b, y, sh, sw, ph, pw, dh, dw, groups):
    conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups)
    np.maximum(y, 0, out=y)
