"""Numba pooling kernels: parallel over the planes of (P, H, W) views (P = N * C, or C unbatched).

Max follows PyTorch's rule: scanning a window in row-major order, a value wins if it is greater
than the current maximum or is NaN (first maximum on ties, last NaN among NaNs); the meta function
guarantees every window holds at least one element of x, so padding never wins. A window element
(i, j) of output (oh, ow) is x[oh * sh - ph + i * dh, ow * sw - pw + j * dw]; windows are clipped
to x, so ceil_mode's last windows (hanging past the end) need nothing special in the generic loops.
Winners' indices are flat in the plane (ih * W + iw, torch's return_indices), found a row of windows
at a time; the max backward recomputes the winners from x, window by window.
2x2 stride 2 (unpadded, undilated) has its own loops for max and average, which vectorize, over the
windows wholly inside x; ceil_mode's hanging last row and column (one element of x across) follow
per plane, while it is in cache (a helper call: inside the row loop they slowed it 2x). Their
backwards write every dx element exactly once. Other backwards zero a plane while it is in cache and
add into it (the max one has the interior windows of 3x3 stride 2 unrolled; a 3x3 forward special
case measured slower here than the generic row-at-a-time loop, so there is none).
Average divisors are torch's CPU kernel's: the window clipped to the padded input
(count_include_pad) or to x, or divisor_override (divisor != 0).

Signatures follow the contract (fastnn/_ops.Plan and fastnn/pool.py): inputs, outputs, the
parameters, n_threads; the dispatcher sets Numba's thread count to n_threads, the prange loops over
planes use it.
"""
import numpy as np
from numba import njit, prange

from ._common import PARALLEL, SERIAL


def _planes(a):
    """(N, C, H, W) or (C, H, W) as (P, H, W): pooling works plane by plane."""
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def _is_2x2_s2(kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    return (kh, kw, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1)


@njit(**SERIAL)
def _columns(offset, sw, pw, width, out_w):
    """The outputs [lo, hi) whose window column at ow * sw - pw + offset is inside [0, width)."""
    lo = 0 if offset >= pw else (pw - offset + sw - 1) // sw
    top = width - 1 + pw - offset
    hi = 0 if top < 0 else min(top // sw + 1, out_w)
    return lo, hi


@njit(inline="always")  # Numba-level inlining: a call per row or window cost ~10%
def _taps(start, k, d, size):
    """The taps [lo, hi) of a window at `start` (k taps d apart) that lie inside [0, size)."""
    if d == 1:  # no integer divisions (tens of cycles each) on the undilated paths
        return max(-start, 0), max(min(k, size - start), 0)
    lo = 0 if start >= 0 else (d - 1 - start) // d
    last = size - 1 - start
    hi = 0 if last < 0 else min(k, last // d + 1)
    return lo, hi


@njit(inline="always")  # Numba-level inlining: a call per row or window cost ~10%
def _full_columns(kw, sw, pw, width, out_w, include_pad):
    """The outputs [lo, hi) whose window columns all count in the divisor (kw of them)."""
    lo = 0 if include_pad else (pw + sw - 1) // sw
    top = width + 2 * pw - kw if include_pad else width + pw - kw
    hi = min(top // sw + 1, out_w) if top >= 0 else 0
    return lo, max(hi, lo)


@njit(inline="always")  # Numba-level inlining: a call per row or window cost ~10%
def _count(start, k, size, pad, include_pad):
    """A window's positions inside the padded input (include_pad) or inside x: torch's divisor."""
    lo = -pad if include_pad else 0
    hi = size + pad if include_pad else size
    return min(start + k, hi) - max(start, lo)


# --- max ----------------------------------------------------------------------------------------

@njit(**PARALLEL)
def _max_pool2d(x, y, kh, kw, sh, sw, ph, pw, dh, dw):
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = y.shape[1], y.shape[2]
    for p in prange(x.shape[0]):
        for oh in range(out_h):
            # A row of outputs at once, one window offset at a time.
            row = y[p, oh]
            row[:] = -np.inf
            h0 = oh * sh - ph
            i_lo, i_hi = _taps(h0, kh, dh, height)
            for i in range(i_lo, i_hi):
                src = x[p, h0 + i * dh]
                for j in range(kw):
                    lo, hi = _columns(j * dw, sw, pw, width, out_w)
                    for ow in range(lo, hi):
                        v = src[ow * sw - pw + j * dw]
                        best = row[ow]
                        row[ow] = v if (v > best) | (v != v) else best


@njit(**SERIAL)
def _window_argmax(plane, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """(ih, iw) of one window's winner, scanning in row-major order with selects (no branches)."""
    height, width = plane.shape
    h0, w0 = oh * sh - ph, ow * sw - pw
    if dh == 1 and dw == 1:  # loops over x's rows and columns: no tap arithmetic (measured ~15% faster)
        h_lo, w_lo = max(h0, 0), max(w0, 0)
        best, best_h, best_w = plane[h_lo, w_lo], h_lo, w_lo
        for ih in range(h_lo, min(h0 + kh, height)):
            for iw in range(w_lo, min(w0 + kw, width)):
                v = plane[ih, iw]
                wins = (v > best) | (v != v)
                best = v if wins else best
                best_h = ih if wins else best_h
                best_w = iw if wins else best_w
        return best_h, best_w
    i_lo, i_hi = _taps(h0, kh, dh, height)
    j_lo, j_hi = _taps(w0, kw, dw, width)
    best_h, best_w = h0 + i_lo * dh, w0 + j_lo * dw
    best = plane[best_h, best_w]
    for i in range(i_lo, i_hi):
        for j in range(j_lo, j_hi):
            ih, iw = h0 + i * dh, w0 + j * dw
            v = plane[ih, iw]
            wins = (v > best) | (v != v)
            best = v if wins else best
            best_h = ih if wins else best_h
            best_w = iw if wins else best_w
    return best_h, best_w


@njit(**SERIAL)
def _argmax_row(plane, best, index, offset, oh, kh, kw, sh, sw, ph, pw, dh, dw, real_offsets):
    """Output row oh's maxima into best and their flat indices ih * width + iw into index (offset: a
    scratch row of out_w + 1 in x's dtype): PyTorch's rule applied to every window of the row at once,
    one window offset at a time (selects, so the loops vectorize). -inf starts, so an all -inf window
    keeps its first element of x. The winners' offsets from their window's corner are held in x's
    dtype when exact there (real_offsets: the selects share the data's lanes, several times faster
    than int64 ones beside float32), else as int64 indices."""
    height, width = plane.shape
    out_w = best.shape[0]
    h0 = oh * sh - ph
    i_lo, i_hi = _taps(h0, kh, dh, height)
    for ow in range(out_w):
        w0 = ow * sw - pw
        j_lo, _ = _taps(w0, kw, dw, width)
        best[ow] = -np.inf
        if real_offsets:
            offset[ow] = i_lo * dh * width + j_lo * dw
        else:
            index[ow] = (h0 + i_lo * dh) * width + w0 + j_lo * dw
    for i in range(i_lo, i_hi):
        ih = h0 + i * dh
        src = plane[ih]
        for j in range(kw):
            lo, hi = _columns(j * dw, sw, pw, width, out_w)
            if real_offsets and hi > lo:
                offset[out_w] = i * dh * width + j * dw  # the slot past the row: this offset in x's dtype
                this = offset[out_w]
                # 0-based views: Numba drops its negative-index checks and the loop vectorizes
                taps, maxima, offsets = src[lo * sw - pw + j * dw::sw], best[lo:hi], offset[lo:hi]
                for k in range(hi - lo):
                    v = taps[k]
                    b = maxima[k]
                    wins = (v > b) | (v != v)
                    maxima[k] = v if wins else b
                    offsets[k] = this if wins else offsets[k]
            elif not real_offsets:
                base = ih * width - pw + j * dw
                for ow in range(lo, hi):
                    v = src[ow * sw - pw + j * dw]
                    b = best[ow]
                    wins = (v > b) | (v != v)
                    best[ow] = v if wins else b
                    index[ow] = base + ow * sw if wins else index[ow]
    if real_offsets:
        for ow in range(out_w):
            index[ow] = h0 * width + ow * sw - pw + np.int64(offset[ow])


@njit(**PARALLEL)
def _max_pool2d_indices(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, real_offsets):
    for p in prange(x.shape[0]):
        offset = np.empty(y.shape[2] + 1, x.dtype)
        for oh in range(y.shape[1]):
            _argmax_row(x[p], y[p, oh], indices[p, oh], offset, oh, kh, kw, sh, sw, ph, pw, dh, dw, real_offsets)


def _offsets_exact(x, kh, kw, dh, dw):
    """Every window offset (i * dh) * width + j * dw is an exact integer in x's dtype."""
    return (dh * (kh - 1) + 1) * x.shape[-1] + dw * (kw - 1) <= (1 << 24 if x.dtype == np.float32 else 1 << 53)


@njit(**SERIAL)
def _max_2x2_hanging(plane, out, full_h, full_w):
    """ceil_mode's hanging 2x2 windows of one plane: x's odd last column and row (1 or 2 elements)."""
    last = 2 * full_w
    if out.shape[1] > full_w:
        for oh in range(full_h):
            a, b = plane[2 * oh, last], plane[2 * oh + 1, last]
            out[oh, full_w] = b if (b > a) | (b != b) else a
    if out.shape[0] > full_h:
        top, row = plane[2 * full_h], out[full_h]
        for ow in range(full_w):
            a, b = top[2 * ow], top[2 * ow + 1]
            row[ow] = b if (b > a) | (b != b) else a
        if out.shape[1] > full_w:
            row[full_w] = top[last]


@njit(**PARALLEL)
def _max_pool2d_2x2(x, y):
    full_h, full_w = x.shape[1] // 2, x.shape[2] // 2  # windows wholly inside x
    hangs = y.shape[1] > full_h or y.shape[2] > full_w  # ceil_mode's: after the plane's full windows
    for p in prange(x.shape[0]):
        for oh in range(full_h):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            row = y[p, oh]
            for ow in range(full_w):
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
        if hangs:
            _max_2x2_hanging(x[p], y[p], full_h, full_w)


def max_pool2d(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    if indices is not None:
        _max_pool2d_indices(_planes(x), _planes(y), _planes(indices), kh, kw, sh, sw, ph, pw, dh, dw,
                            _offsets_exact(x, kh, kw, dh, dw))
    elif _is_2x2_s2(kh, kw, sh, sw, ph, pw, dh, dw):
        _max_pool2d_2x2(_planes(x), _planes(y))
    else:
        _max_pool2d(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw, dh, dw)


@njit(**PARALLEL)
def _max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw):
    for p in prange(x.shape[0]):
        dx[p] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(dy.shape[1]):
            for ow in range(dy.shape[2]):  # window by window (measured faster here than _argmax_row's rows)
                ih, iw = _window_argmax(x[p], oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
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
            for ow in range(out_w):  # border windows (ceil_mode's hanging ones too), clipped to x
                if lo <= ow < hi:
                    continue
                ih, iw = _window_argmax(x[p], oh, ow, 3, 3, 2, 2, ph, pw, 1, 1)
                dx[p, ih, iw] += dy[p, oh, ow]


@njit(**SERIAL)
def _max_2x2_hanging_backward(grad, plane, dplane, full_h, full_w):
    """Adds ceil_mode's hanging 2x2 windows of one plane into dplane (zero there before)."""
    last = 2 * full_w
    if grad.shape[1] > full_w:
        for oh in range(full_h):
            a, b = plane[2 * oh, last], plane[2 * oh + 1, last]
            dplane[2 * oh + (1 if (b > a) | (b != b) else 0), last] += grad[oh, full_w]
    if grad.shape[0] > full_h:
        top, drow = plane[2 * full_h], dplane[2 * full_h]
        for ow in range(full_w):
            a, b = top[2 * ow], top[2 * ow + 1]
            drow[2 * ow + (1 if (b > a) | (b != b) else 0)] += grad[full_h, ow]
        if grad.shape[1] > full_w:
            drow[last] += grad[full_h, full_w]


@njit(**PARALLEL)
def _max_pool2d_backward_2x2(dy, x, dx, zero):
    height, width = x.shape[1], x.shape[2]
    full_h, full_w = height // 2, width // 2  # windows wholly inside x
    hangs = dy.shape[1] > full_h or dy.shape[2] > full_w  # ceil_mode's: added after the plane's full windows
    for p in prange(x.shape[0]):
        winner = np.empty(full_w, np.int32)
        for oh in range(full_h):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            grad = dy[p, oh]
            # Each window's winner offset (0..3) by selects, then the stores in separate loops:
            # with loads and stores apart, both loops vectorize (deinterleaving/interleaving).
            for ow in range(full_w):
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
                for ow in range(full_w):
                    k = winner[ow] - 2 * row
                    g = grad[ow]  # loaded unconditionally: the selects below need no branch
                    drow[2 * ow] = g if k == 0 else zero
                    drow[2 * ow + 1] = g if k == 1 else zero
                for iw in range(2 * full_w, width):  # an odd last column: in no window, or ceil_mode's
                    drow[iw] = zero
        for ih in range(2 * full_h, height):
            dx[p, ih, :] = zero
        if hangs:
            _max_2x2_hanging_backward(dy[p], x[p], dx[p], full_h, full_w)


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw, dh, dw):
        _max_pool2d_backward_2x2(_planes(dy), _planes(x), _planes(dx), x.dtype.type(0))
    elif (kh, kw, sh, sw, dh, dw) == (3, 3, 2, 2, 1, 1):
        _max_pool2d_backward_3x3(_planes(dy), _planes(x), _planes(dx), ph, pw)
    else:
        _max_pool2d_backward(_planes(dy), _planes(x), _planes(dx), kh, kw, sh, sw, ph, pw, dh, dw)


# --- average ------------------------------------------------------------------------------------

@njit(inline="always")  # Numba-level inlining: a call per row or window cost ~10%
def _divide_row(row, oh, kh, kw, sh, sw, ph, pw, height, width, include_pad, divisor, full_lo, full_hi):
    """row[ow] /= its window's divisor (torch's): the clipped windows outside [full_lo, full_hi) one
    by one, the full ones by one divisor (a loop that vectorizes)."""
    if divisor != 0:
        full_lo, full_hi = 0, row.shape[0]
    else:
        rows = _count(oh * sh - ph, kh, height, ph, include_pad)
        for ow in range(full_lo):
            row[ow] = row[ow] / (rows * _count(ow * sw - pw, kw, width, pw, include_pad))
        for ow in range(full_hi, row.shape[0]):
            row[ow] = row[ow] / (rows * _count(ow * sw - pw, kw, width, pw, include_pad))
        divisor = rows * kw
    full = row[full_lo:full_hi]  # indexed from 0: Numba drops its negative-index checks, the loop vectorizes
    for ow in range(full.shape[0]):
        full[ow] = full[ow] / divisor


@njit(**PARALLEL)
def _avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor):
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = y.shape[1], y.shape[2]
    full_lo, full_hi = _full_columns(kw, sw, pw, width, out_w, include_pad)
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
            _divide_row(row, oh, kh, kw, sh, sw, ph, pw, height, width, include_pad, divisor, full_lo, full_hi)


@njit(**SERIAL)
def _avg_2x2_hanging(plane, out, full_h, full_w, half):
    """ceil_mode's hanging 2x2 windows of one plane: 2 elements of x, or 1 (unpadded: both divisors
    count x's elements)."""
    last = 2 * full_w
    if out.shape[1] > full_w:
        for oh in range(full_h):
            out[oh, full_w] = (plane[2 * oh, last] + plane[2 * oh + 1, last]) * half
    if out.shape[0] > full_h:
        top, row = plane[2 * full_h], out[full_h]
        for ow in range(full_w):
            row[ow] = (top[2 * ow] + top[2 * ow + 1]) * half
        if out.shape[1] > full_w:
            row[full_w] = top[last]


@njit(**PARALLEL)
def _avg_pool2d_2x2(x, y, quarter):
    full_h, full_w = x.shape[1] // 2, x.shape[2] // 2  # windows wholly inside x
    hangs = y.shape[1] > full_h or y.shape[2] > full_w  # ceil_mode's: after the plane's full windows
    for p in prange(x.shape[0]):
        for oh in range(full_h):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            row = y[p, oh]
            for ow in range(full_w):
                row[ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) * quarter
        if hangs:
            _avg_2x2_hanging(x[p], y[p], full_h, full_w, quarter * 2)


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw) and divisor == 0:
        _avg_pool2d_2x2(_planes(x), _planes(y), x.dtype.type(0.25))
    else:
        _avg_pool2d(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw, include_pad, divisor)


@njit(**PARALLEL)
def _avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor):
    height, width = dx.shape[1], dx.shape[2]
    out_h, out_w = dy.shape[1], dy.shape[2]
    full_lo, full_hi = _full_columns(kw, sw, pw, width, out_w, include_pad)
    for p in prange(dx.shape[0]):
        share = np.empty(out_w, dx.dtype)  # each window's dy / divisor
        dx[p, :, :] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(out_h):
            share[:] = dy[p, oh]
            _divide_row(share, oh, kh, kw, sh, sw, ph, pw, height, width, include_pad, divisor, full_lo, full_hi)
            for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + kh, height)):
                dst = dx[p, ih]
                for j in range(kw):
                    lo, hi = _columns(j, sw, pw, width, out_w)
                    for ow in range(lo, hi):
                        dst[ow * sw - pw + j] += share[ow]


@njit(**SERIAL)
def _avg_2x2_hanging_backward(grad, dplane, full_h, full_w, half):
    """Writes ceil_mode's hanging 2x2 windows' shares into dplane (zero there before)."""
    last = 2 * full_w
    if grad.shape[1] > full_w:
        for oh in range(full_h):
            dplane[2 * oh, last] = grad[oh, full_w] * half
            dplane[2 * oh + 1, last] = grad[oh, full_w] * half
    if grad.shape[0] > full_h:
        drow = dplane[2 * full_h]
        for ow in range(full_w):
            drow[2 * ow] = grad[full_h, ow] * half
            drow[2 * ow + 1] = grad[full_h, ow] * half
        if grad.shape[1] > full_w:
            drow[last] = grad[full_h, full_w]


@njit(**PARALLEL)
def _avg_pool2d_backward_2x2(dy, dx, quarter):
    height, width = dx.shape[1], dx.shape[2]
    full_h, full_w = height // 2, width // 2  # windows wholly inside x
    hangs = dy.shape[1] > full_h or dy.shape[2] > full_w  # ceil_mode's: after the plane's full windows
    for p in prange(dx.shape[0]):  # every dx element written once
        for oh in range(full_h):
            grad = dy[p, oh]
            for row in range(2):
                drow = dx[p, 2 * oh + row]
                for ow in range(full_w):
                    g = grad[ow] * quarter
                    drow[2 * ow] = g
                    drow[2 * ow + 1] = g
                drow[2 * full_w:] = 0  # an odd last column: in no window, or ceil_mode's
        dx[p, 2 * full_h:] = 0
        if hangs:
            _avg_2x2_hanging_backward(dy[p], dx[p], full_h, full_w, quarter * 2)


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw) and divisor == 0:
        _avg_pool2d_backward_2x2(_planes(dy), _planes(dx), x.dtype.type(0.25))
    else:
        _avg_pool2d_backward(_planes(dy), _planes(dx), kh, kw, sh, sw, ph, pw, include_pad, divisor)
