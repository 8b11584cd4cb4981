"""Numba pooling kernels: parallel over the N * C planes of (N * C, H, W) views.

Max follows PyTorch's rule: scanning a window in row-major order, a value wins if it is greater
than the current maximum or is NaN (first maximum on ties, last NaN among NaNs); every window
holds at least one unpadded element (padding <= kernel // 2), so padding never wins.
The max backward recomputes each window's winner from x. 2x2 stride 2 (unpadded) has its own
loops for max and average, which vectorize; their backwards write every dx element exactly once.
Other backwards zero a plane while it is in cache and add into it (the max one has the interior
windows of 3x3 stride 2 unrolled; a 3x3 forward special case measured slower here than the
generic row-at-a-time loop, so there is none).

Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, kh, kw, sh, sw, ph, pw,
n_threads; the dispatcher sets Numba's thread count to n_threads, the prange loops over planes
use it.
"""
import numpy as np
from numba import njit, prange

from ._common import PARALLEL, SERIAL


def _planes(a):
    """(N, C, H, W) as (N * C, H, W): pooling works plane by plane."""
    return a.reshape(-1, a.shape[2], a.shape[3])


def _is_2x2_s2(kh, kw, sh, sw, ph, pw):
    return (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0)


@njit(**SERIAL)
def _columns(j, sw, pw, width, out_w):
    """The outputs [lo, hi) whose window column j, at ow * sw - pw + j, is inside [0, width)."""
    lo = 0 if j >= pw else (pw - j + sw - 1) // sw
    top = width - 1 + pw - j
    hi = 0 if top < 0 else min(top // sw + 1, out_w)
    return lo, hi


@njit(**PARALLEL)
def _max_pool2d(x, y, kh, kw, sh, sw, ph, pw):
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = y.shape[1], y.shape[2]
    for p in prange(x.shape[0]):
        for oh in range(out_h):
            # A row of outputs at once, one window offset at a time.
            row = y[p, oh]
            row[:] = -np.inf
            for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)):
                src = x[p, ih]
                for j in range(kw):
                    lo, hi = _columns(j, sw, pw, width, out_w)
                    for ow in range(lo, hi):
                        v = src[ow * sw - pw + j]
                        best = row[ow]
                        row[ow] = v if (v > best) | (v != v) else best


@njit(**PARALLEL)
def _max_pool2d_2x2(x, y):
    out_w = y.shape[2]
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            row = y[p, oh]
            for ow in range(out_w):
                best = top[2 * ow]
                v = top[2 * ow + 1]
                if v > best or v != v:
                    best = v
                v = bottom[2 * ow]
                if v > best or v != v:
                    best = v
                v = bottom[2 * ow + 1]
                if v > best or v != v:
                    best = v
                row[ow] = best


def max_pool2d(x, y, kh, kw, sh, sw, ph, pw, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw):
        _max_pool2d_2x2(_planes(x), _planes(y))
    else:
        _max_pool2d(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw)


@njit(**SERIAL)
def _window_argmax(plane, oh, ow, kh, kw, sh, sw, ph, pw):
    """(ih, iw) of one window's winner, scanning in row-major order with selects (no branches)."""
    height, width = plane.shape
    h_lo, w_lo = max(oh * sh - ph, 0), max(ow * sw - pw, 0)
    best, best_h, best_w = plane[h_lo, w_lo], h_lo, w_lo
    for ih in range(h_lo, min(oh * sh - ph + kh, height)):
        for iw in range(w_lo, min(ow * sw - pw + kw, width)):
            v = plane[ih, iw]
            wins = (v > best) | (v != v)
            best = v if wins else best
            best_h = ih if wins else best_h
            best_w = iw if wins else best_w
    return best_h, best_w


@njit(**PARALLEL)
def _max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw):
    for p in prange(x.shape[0]):
        dx[p] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(dy.shape[1]):
            for ow in range(dy.shape[2]):
                ih, iw = _window_argmax(x[p], oh, ow, kh, kw, sh, sw, ph, pw)
                dx[p, ih, iw] += dy[p, oh, ow]


@njit(**SERIAL)
def _interior_3x3(oh, ph, pw, height, width, out_w):
    """The windows [lo, hi) of row oh wholly inside the input (3x3, stride 2); empty if none."""
    h0 = 2 * oh - ph
    last = width - 3 + pw
    lo = (pw + 1) // 2
    hi = min(last // 2 + 1, out_w) if last >= 0 else 0
    if h0 < 0 or h0 + 3 > height or hi < lo:
        hi = lo
    return lo, hi


@njit(**PARALLEL)
def _max_pool2d_backward_3x3(dy, x, dx, ph, pw):
    height, width = x.shape[1], x.shape[2]
    out_w = dy.shape[2]
    for p in prange(x.shape[0]):
        offset = np.empty(out_w, np.int32)
        dx[p] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(dy.shape[1]):
            lo, hi = _interior_3x3(oh, ph, pw, height, width, out_w)
            if hi > lo:
                h0 = 2 * oh - ph
                block = x[p, h0:h0 + 3, 2 * lo - pw:]
                # The winners' offsets 3 * i + j first (a loop that vectorizes), then the adds.
                for ow in range(hi - lo):
                    best = block[0, 2 * ow]
                    k = np.int32(0)
                    for i in range(3):
                        for j in range(3):
                            v = block[i, 2 * ow + j]
                            wins = (v > best) | (v != v)
                            best = v if wins else best
                            k = np.int32(3 * i + j) if wins else k
                    offset[ow] = k
                for ow in range(hi - lo):
                    i, j = divmod(offset[ow], 3)
                    dx[p, h0 + i, 2 * (lo + ow) - pw + j] += dy[p, oh, lo + ow]
            for ow in range(out_w):
                if lo <= ow < hi:
                    continue
                ih, iw = _window_argmax(x[p], oh, ow, 3, 3, 2, 2, ph, pw)
                dx[p, ih, iw] += dy[p, oh, ow]


@njit(**PARALLEL)
def _max_pool2d_backward_2x2(dy, x, dx, zero):
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for p in prange(x.shape[0]):
        winner = np.empty(out_w, np.int32)
        for oh in range(out_h):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            grad = dy[p, oh]
            # Each window's winner offset (0..3) by selects, then the stores in separate loops:
            # with loads and stores apart, both loops vectorize (deinterleaving/interleaving).
            for ow in range(out_w):
                a, b = top[2 * ow], top[2 * ow + 1]
                c, d = bottom[2 * ow], bottom[2 * ow + 1]
                wins = (b > a) | (b != b)
                best = b if wins else a
                k = np.int32(1) if wins else np.int32(0)
                wins = (c > best) | (c != c)
                best = c if wins else best
                k = np.int32(2) if wins else k
                wins = (d > best) | (d != d)
                winner[ow] = np.int32(3) if wins else k
            for row in range(2):
                drow = dx[p, 2 * oh + row]
                for ow in range(out_w):
                    k = winner[ow] - 2 * row
                    g = grad[ow]  # loaded unconditionally: the selects below need no branch
                    drow[2 * ow] = g if k == 0 else zero
                    drow[2 * ow + 1] = g if k == 1 else zero
                for iw in range(2 * out_w, width):  # an odd last column is in no window
                    drow[iw] = zero
        for ih in range(2 * out_h, height):
            dx[p, ih, :] = zero


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw):
        _max_pool2d_backward_2x2(_planes(dy), _planes(x), _planes(dx), x.dtype.type(0))
    elif (kh, kw, sh, sw) == (3, 3, 2, 2):
        _max_pool2d_backward_3x3(_planes(dy), _planes(x), _planes(dx), ph, pw)
    else:
        _max_pool2d_backward(_planes(dy), _planes(x), _planes(dx), kh, kw, sh, sw, ph, pw)


@njit(**PARALLEL)
def _avg_pool2d(x, y, kh, kw, sh, sw, ph, pw):
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = y.shape[1], y.shape[2]
    area = kh * kw
    for p in prange(x.shape[0]):
        for oh in range(out_h):
            row = y[p, oh]  # sums a row of windows, one offset at a time
            row[:] = 0
            for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)):
                src = x[p, ih]
                for j in range(kw):
                    lo, hi = _columns(j, sw, pw, width, out_w)
                    for ow in range(lo, hi):
                        row[ow] += src[ow * sw - pw + j]
            for ow in range(out_w):
                row[ow] = row[ow] / area


@njit(**PARALLEL)
def _avg_pool2d_2x2(x, y, quarter):
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            row = y[p, oh]
            for ow in range(y.shape[2]):
                row[ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) * quarter


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw):
        _avg_pool2d_2x2(_planes(x), _planes(y), x.dtype.type(0.25))
    else:
        _avg_pool2d(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw)


@njit(**PARALLEL)
def _avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw):
    height, width = dx.shape[1], dx.shape[2]
    out_h, out_w = dy.shape[1], dy.shape[2]
    area = kh * kw
    for p in prange(dx.shape[0]):
        dx[p, :, :] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(out_h):
            grad = dy[p, oh]
            for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)):
                dst = dx[p, ih]
                for j in range(kw):
                    lo, hi = _columns(j, sw, pw, width, out_w)
                    for ow in range(lo, hi):
                        dst[ow * sw - pw + j] += grad[ow] / area


@njit(**PARALLEL)
def _avg_pool2d_backward_2x2(dy, dx, quarter):
    height, width = dx.shape[1], dx.shape[2]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for p in prange(dx.shape[0]):  # every dx element written once
        for oh in range(out_h):
            grad = dy[p, oh]
            for row in range(2):
                drow = dx[p, 2 * oh + row]
                for ow in range(out_w):
                    g = grad[ow] * quarter
                    drow[2 * ow] = g
                    drow[2 * ow + 1] = g
                drow[2 * out_w:] = 0  # an odd last column is in no window
        dx[p, 2 * out_h:] = 0


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw):
        _avg_pool2d_backward_2x2(_planes(dy), _planes(dx), x.dtype.type(0.25))
    else:
        _avg_pool2d_backward(_planes(dy), _planes(dx), kh, kw, sh, sw, ph, pw)
