"""Numba pooling kernels: parallel over the planes of (P, H, W) views (P = N * C, or C unbatched).

Max follows PyTorch's rule: scanning a window in row-major order, a value wins if it is greater
than the current maximum or is NaN (first maximum on ties, last NaN among NaNs); the meta function
guarantees every window holds at least one element of x, so padding never wins. A window element
(i, j) of output (oh, ow) is x[oh * sh - ph + i * dh, ow * sw - pw + j * dw]. Wp = (out_w - 1) * sw
+ kw is the padded width the windows span (ceil_mode's may hang past the padding), Hp likewise.

Undilated windows (every kernel size, stride, padding, ceil_mode) run on long unclipped loops, with
per-thread scratch from the dispatcher's workspace (`<op>_workspace`; a chunk of planes per thread,
each chunk's slots on cache lines of their own):
- max values: per output row, the rows of x it covers reduced vertically into a row buffer (x's
  columns at pw, -inf around them), then horizontally, y[oh, ow] = max_j buf[ow * sw + j] (stride 2:
  over the buffer's even and odd halves, contiguous). Exact for values: NaN if any element is NaN,
  else the maximum, whatever the order. Stride 1 unpadded windows (none hanging) do the same on a
  whole plane at once, at x's pitch.
- max winners (return_indices, and the backward, which recomputes them from x): the plane padded
  with -inf is split into its sh * sw phase planes (padded element (r, c) at phase (r % sh, c % sw),
  position (r // sh, c // sw)); there every window offset (i, j) is one contiguous pass over all the
  windows of the plane (outputs at a pitch of the phase width, the columns past out_w scratch):
  selects in (i, j) row-major order keep torch's winner and its offset i * W + j. Windows of -inf
  only get torch's index, their first element of x. Stride 1 unpadded windows read x in place. The
  backward zeroes a plane of dx while it is in cache and adds each window's dy at its winner.
- average: the max values' scheme with sums, then torch's divisors (the interior windows by one);
  the backward spreads each window's share (dy / divisor) over its columns in a row buffer (stride 2:
  over its halves, then interleaved) and adds its x part to each row of x the windows cover (stride
  1 unpadded: a whole plane at once).
Dilated windows keep loops clipped to x, a row of windows at a time one window offset at a time
(the backward window by window). 2x2 stride 2 (unpadded, undilated) has its own loops for max and
average values, which vectorize, over the windows wholly inside x; ceil_mode's hanging last row and
column (one element of x across) follow per plane, while it is in cache, element-indexed in the
plane's loop (inside the row loop they stopped its vectorization, 1.7x slower; a helper call with
views cost about twice their windows' share). Their backwards write every dx element exactly once.
Average divisors are torch's CPU kernel's: the window clipped to the padded input
(count_include_pad) or to x, or divisor_override (divisor != 0).

Signatures follow the contract (fastnn/_ops.Plan and fastnn/pool.py): inputs, outputs, the
parameters, n_threads (and workspace=, sized by `<op>_workspace`); the dispatcher sets Numba's
thread count to n_threads, the prange loops over planes (or chunks of planes) use it.
"""
import numpy as np
from numba import njit, prange

from ._common import PARALLEL, SERIAL, chunk


def _planes(a):
    """(N, C, H, W) or (C, H, W) as (P, H, W): pooling works plane by plane."""
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def _flat(a):
    """(N, C, H, W) or (C, H, W) as (P, H * W): the undilated loops index planes flat."""
    return a.reshape(-1, a.shape[-2] * a.shape[-1])


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


# --- per-thread scratch (undilated paths) -------------------------------------------------------

_LINE = 64  # bytes: each thread's scratch starts on a cache line of its own (sharing lines ran 2-3x slower)


def _span(out, s, k, size, p):
    """(the padded extent the windows span, (out - 1) * s + k; a row buffer's length, which also
    holds x's columns at p)."""
    spanned = (out - 1) * s + k
    return spanned, max(spanned, p + size)


def _line(elements, itemsize):
    per_line = _LINE // itemsize
    return -(-elements // per_line) * per_line


def _slots(x, n_threads):
    """Scratch slots: one per chunk of planes, min(n_threads, planes) chunks (at least one)."""
    return max(1, min(n_threads, x.size // (x.shape[-2] * x.shape[-1])))


def _scratch_elements(sizes, x, n_threads):
    """Workspace elements for a slot of each size per chunk, line-aligned (the slack aligns the start)."""
    per_slot = sum(_line(s, x.itemsize) for s in sizes)
    return _slots(x, n_threads) * per_slot + _LINE // x.itemsize if sizes else 0


def _carve(workspace, sizes, x, n_threads):
    """One (slots, >= size) array per size from the workspace, each row (a chunk's slot) on cache lines
    of its own."""
    slots, itemsize = _slots(x, n_threads), workspace.itemsize
    start = (-workspace.ctypes.data % _LINE) // itemsize
    arrays = []
    for size in sizes:
        width = _line(size, itemsize)
        arrays.append(workspace[start:start + slots * width].reshape(slots, width))
        start += slots * width
    return arrays


def _codes(scratch):
    """A float scratch array as integers of its width: window offsets i * W + j, exact there (below
    kh * W <= the padded plane's size <= 2^31 - 1), in the data's lanes (selects beside float32 ran
    several times faster on int32 than on int64)."""
    return scratch.view(np.int32 if scratch.itemsize == 4 else np.int64)


# --- row helpers (undilated paths): long contiguous loops, selects, no clipping ------------------

@njit(inline="always")
def _strided_copy(src, so, dst, do, n, s):
    """dst[do + k] = src[so + k * s] for k < n; s a literal at the call (LLVM vectorizes the strided
    loads). Unsigned indices: Numba drops its negative-index checks without a view per row (their
    reference counting cost ~10 ns a row)."""
    for k in range(n):
        dst[np.uint64(do + k)] = src[np.uint64(so + k * s)]


@njit(inline="always")
def _max_into(acc, ao, src, so, n):
    """acc[ao + i] = max(acc[ao + i], src[so + i]) for i < n, by torch's rule (NaN wins). Unsigned
    indices, here and below: no negative-index checks (the loops vectorize) and no view per row (a
    view's reference counting cost ~10 ns, several per row)."""
    for i in range(n):
        v = src[np.uint64(so + i)]
        b = acc[np.uint64(ao + i)]
        acc[np.uint64(ao + i)] = v if (v > b) | (v != v) else b


@njit(inline="always")
def _add_into(acc, ao, src, so, n):
    for i in range(n):
        acc[np.uint64(ao + i)] += src[np.uint64(so + i)]


@njit(inline="always")
def _max_taps(buf, out, oo, n, kw, s):
    """out[oo + ow] = max over j < kw of buf[ow * s + j] for ow < n (NaN wins); s a literal at the call:
    LLVM vectorizes its strided loads."""
    for ow in range(n):
        out[np.uint64(oo + ow)] = buf[np.uint64(ow * s)]
    for j in range(1, kw):
        for ow in range(n):
            v = buf[np.uint64(ow * s + j)]
            b = out[np.uint64(oo + ow)]
            out[np.uint64(oo + ow)] = v if (v > b) | (v != v) else b


@njit(inline="always")
def _sum_taps(buf, out, oo, n, kw, s):
    """out[oo + ow] = sum over j < kw of buf[ow * s + j] for ow < n."""
    for ow in range(n):
        out[np.uint64(oo + ow)] = buf[np.uint64(ow * s)]
    for j in range(1, kw):
        for ow in range(n):
            out[np.uint64(oo + ow)] += buf[np.uint64(ow * s + j)]


@njit(inline="always")
def _halves(buf, halves, wp):
    """buf[:wp]'s even columns into halves[:(wp + 1) // 2], its odd ones after them: stride 2's taps
    become contiguous (strided loads of 3 taps per row cost 2x the whole forward)."""
    _deinterleave(buf, 0, halves, 0, (wp + 1) // 2, wp)
    return (wp + 1) // 2


@njit(inline="always")
def _interleave(halves, odd, buf, wp):
    """_halves undone: buf[2k] = halves[k], buf[2k + 1] = halves[odd + k] for buf[:wp] (an interleaved
    store group)."""
    for k in range(wp // 2):
        buf[np.uint64(2 * k)] = halves[np.uint64(k)]
        buf[np.uint64(2 * k + 1)] = halves[np.uint64(odd + k)]
    if wp % 2:
        buf[wp - 1] = halves[wp // 2]


@njit(inline="always")
def _spread_taps(share, buf, kw, s):
    """buf[ow * s + j] += share[ow] for every j < kw (buf zero before)."""
    for j in range(kw):
        for ow in range(share.shape[0]):
            buf[np.uint64(ow * s + j)] += share[ow]


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


@njit(**PARALLEL)
def _max_pool2d_2x2(x, y):
    full_h, full_w = x.shape[1] // 2, x.shape[2] // 2  # windows wholly inside x
    last, last_h = 2 * full_w, 2 * full_h
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
        # ceil_mode's hanging windows, x's odd last column and row, while the plane is in cache.
        # Written out here, element-indexed: a helper call with its views cost ~2x their windows' share.
        if y.shape[2] > full_w:
            for oh in range(full_h):
                a, b = x[p, 2 * oh, last], x[p, 2 * oh + 1, last]
                y[p, oh, full_w] = b if (b > a) | (b != b) else a
        if y.shape[1] > full_h:
            for ow in range(full_w):
                a, b = x[p, last_h, 2 * ow], x[p, last_h, 2 * ow + 1]
                y[p, full_h, ow] = b if (b > a) | (b != b) else a
            if y.shape[2] > full_w:
                y[p, full_h, full_w] = x[p, last_h, last]


@njit(**PARALLEL)
def _pool2d_unit_stride(x, y, cols, wins, width, out_w, kh, kw, average, divisor):
    """Max or sum (divided by divisor) over stride 1 unpadded windows, none hanging, x as (P, H * W), y
    as (P, Ho * Wo): whole planes at once at x's pitch (long loops, 2x faster here than a row at a
    time): every window's rows reduced into cols, their columns into wins (the columns past out_w
    scratch), then each output row copied out."""
    out_h = y.shape[1] // out_w
    m, n = out_h * width, (out_h - 1) * width + out_w
    slots = cols.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        c, w = cols[t], wins[t]
        first, last = chunk(t, slots, x.shape[0])
        for p in range(first, last):
            xp, yp = x[p], y[p]
            _strided_copy(xp, 0, c, 0, m, 1)
            for i in range(1, kh):
                if average:
                    _add_into(c, 0, xp, i * width, m)
                else:
                    _max_into(c, 0, xp, i * width, m)
            _strided_copy(c, 0, w, 0, n, 1)
            for j in range(1, kw):
                if average:
                    _add_into(w, 0, c, j, n)
                else:
                    _max_into(w, 0, c, j, n)
            for oh in range(out_h):
                _strided_copy(w, oh * width, yp, oh * out_w, out_w, 1)
            if average:  # every window is whole: one divisor
                for q in range(yp.shape[0]):
                    yp[q] = yp[q] / divisor


@njit(**PARALLEL)
def _max_pool2d_rows(x, y, scratch, scratch_halves, height, out_w, kh, kw, sh, sw, ph, pw):
    """Values only, undilated, x as (P, H * W), y as (P, Ho * Wo): per output row, its rows of x reduced
    vertically into the thread's row buffer (x's columns at pw, -inf around them), then horizontally
    over each window's columns. Exact for values: NaN if any element is NaN, else the maximum."""
    width, out_h, wp = x.shape[1] // height, y.shape[1] // out_w, (out_w - 1) * sw + kw
    scratch[:, :] = -np.inf  # the padding around x's columns: never written below
    slots = scratch.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        buf, halves = scratch[t], scratch_halves[t]
        first, last = chunk(t, slots, x.shape[0])
        for p in range(first, last):
            xp, yp = x[p], y[p]
            for oh in range(out_h):
                h0 = oh * sh - ph
                lo, hi = max(h0, 0), min(h0 + kh, height)  # at least one row (the meta function's rule)
                _strided_copy(xp, lo * width, buf, pw, width, 1)
                for ih in range(lo + 1, hi):
                    _max_into(buf, pw, xp, ih * width, width)
                if sw == 1:  # a literal stride: contiguous loads
                    _max_taps(buf, yp, oh * out_w, out_w, kw, 1)
                elif sw == 2:  # tap j at halves[(j % 2) * odd + j // 2 + ow]
                    odd = _halves(buf, halves, wp)
                    _strided_copy(halves, 0, yp, oh * out_w, out_w, 1)
                    for j in range(1, kw):
                        _max_into(yp, oh * out_w, halves, (j % 2) * odd + j // 2, out_w)
                else:
                    _max_taps(buf, yp, oh * out_w, out_w, kw, sw)


@njit(inline="always")
def _argmax_taps(taps, best, code):
    """One window offset (i, j) for every window at once, the offset i * W + j in code[n]: torch's rule
    by selects (a value wins if greater or NaN)."""
    n = best.shape[0]
    this = code[n]
    for q in range(n):
        v = taps[q]
        b = best[q]
        wins = (v > b) | (v != v)
        best[q] = v if wins else b
        code[q] = this if wins else code[q]


@njit(inline="always")
def _deinterleave(src, so, dst, even, odd, cols):
    """dst[even + k] = src[so + 2k] and dst[odd + k] = src[so + 2k + 1] for cols elements of src, in one
    loop (an interleaved load group: measured 3x faster than a strided copy per phase)."""
    for k in range(cols // 2):
        dst[np.uint64(even + k)] = src[np.uint64(so + 2 * k)]
        dst[np.uint64(odd + k)] = src[np.uint64(so + 2 * k + 1)]
    if cols % 2:
        dst[np.uint64(even + cols // 2)] = src[np.uint64(so + cols - 1)]


@njit(**SERIAL)
def _split_phases(plane, phases, hp, wp, sh, sw, ph, pw, hph, wph):
    """x's plane written into the sh * sw phase planes (hph, wph) of x padded with -inf: padded element
    (r, c) at phase (r % sh, c % sw), position (r // sh, c // sw); the padding (-inf) is written once per
    call, and x is clipped to the part the windows reach. Phases and positions are counted, not divided
    (divisions per row and phase took most of the time)."""
    height, width = plane.shape
    flat = plane.reshape(height * width)
    rows, cols = min(height, hp - ph), min(width, wp - pw)
    count, longer = cols // sw, cols % sw  # x's columns per phase: the first `longer` phases have one more
    size = hph * wph
    mi, ri = ph % sh, ph // sh
    for ih in range(rows):
        so, row = ih * width, mi * sw * size + ri * wph
        if sw == 1:
            _strided_copy(flat, so, phases, row + pw, cols, 1)
        elif sw == 2:  # x's even columns go to phase pw % 2, its odd ones to the other
            _deinterleave(flat, so, phases, row + (pw % 2) * size + pw // 2, row + ((pw + 1) % 2) * size + (pw + 1) // 2,
                          cols)
        else:
            mj, cj = pw % sw, pw // sw
            for iw in range(min(sw, cols)):
                _strided_copy(flat, so + iw, phases, row + mj * size + cj, count + (1 if iw < longer else 0), sw)
                mj += 1
                if mj == sw:
                    mj, cj = 0, cj + 1
        mi += 1
        if mi == sh:
            mi, ri = 0, ri + 1


@njit(**SERIAL)
def _winners(plane, phases, best, code, kh, kw, sh, sw, ph, pw, hph, wph, out_h, out_w):
    """Every window's maximum and its offset i * W + j from the window's corner (W: x's width), scanning
    (i, j) in row-major order (torch's rule), into best[q] and code[q] for output (oh, ow) at
    q = oh * pitch + ow. Each (i, j) is one contiguous pass over all windows: in the phase planes
    (_split_phases) the taps of the windows at pitch apart are contiguous; the columns past out_w are
    scratch. hph 0: the windows lie inside x (stride 1, unpadded), read in place (pitch W). A window of
    -inf only keeps torch's index, its first element of x (padding never wins)."""
    height, width = plane.shape
    if hph:
        _split_phases(plane, phases, (out_h - 1) * sh + kh, (out_w - 1) * sw + kw, sh, sw, ph, pw, hph, wph)
        src, pitch, phase = phases, wph, hph * wph
    else:
        src, pitch, phase = plane.reshape(height * width), width, height * width
    n = (out_h - 1) * pitch + out_w
    for q in range(n):  # tap (0, 0): the first element wins (or stays -inf with code 0, as with -inf to start)
        best[q] = src[q]
        code[q] = 0
    mi, ri = 0, 0  # tap (i, j)'s phase (i % sh, j % sw) and offset (i // sh, j // sw), counted: divisions
    for i in range(kh):  # per tap cost ~10% of a small plane
        mj, cj = 0, 0
        for j in range(kw):
            if i or j:
                start = (mi * sw + mj) * phase + ri * pitch + cj
                code[n] = i * width + j  # the slot past the windows: the offset in code's dtype
                _argmax_taps(src[start:start + n], best[:n], code)
            mj += 1
            if mj == sw:
                mj, cj = 0, cj + 1
        mi += 1
        if mi == sh:
            mi, ri = 0, ri + 1
    top_rows, left_cols = min(-(-ph // sh), out_h), min(-(-pw // sw), out_w)
    for oh in range(out_h):  # only windows over the top or left padding have a first element of x past their corner
        top = max(ph - oh * sh, 0) * width
        for ow in range(out_w if oh < top_rows else left_cols):
            q = oh * pitch + ow
            code[q] = top + max(pw - ow * sw, 0) if best[q] == -np.inf else code[q]
    return pitch


@njit(**PARALLEL)
def _max_pool2d_argmax(x, y, indices, phases, best, code, out_w, kh, kw, sh, sw, ph, pw, hph, wph):
    """Values and indices, undilated, y and indices as (P, Ho * Wo): every window's winner (_winners),
    as a flat index in x's plane."""
    width, out_h = x.shape[2], y.shape[1] // out_w
    phases[:, :] = -np.inf  # the padding: _split_phases writes x's part only
    slots = phases.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        maxima, offsets = best[t], code[t]
        first, last = chunk(t, slots, x.shape[0])
        for p in range(first, last):
            pitch = _winners(x[p], phases[t], maxima, offsets, kh, kw, sh, sw, ph, pw, hph, wph, out_h, out_w)
            yp, index = y[p], indices[p]
            for oh in range(out_h):
                base, o, q = (oh * sh - ph) * width - pw, oh * out_w, oh * pitch
                for ow in range(out_w):
                    yp[np.uint64(o + ow)] = maxima[np.uint64(q + ow)]
                    index[np.uint64(o + ow)] = base + ow * sw + offsets[np.uint64(q + ow)]


@njit(**PARALLEL)
def _max_pool2d_backward_rows(dy, x, dx, phases, best, code, out_w, kh, kw, sh, sw, ph, pw, hph, wph):
    """Undilated, dy as (P, Ho * Wo), dx as (P, H * W): the forward's winners (_winners), then each
    window's dy added at its winner in the plane of dx (zeroed while in cache)."""
    width, out_h = x.shape[2], dy.shape[1] // out_w
    phases[:, :] = -np.inf
    slots = phases.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        maxima, offsets = best[t], code[t]
        first, last = chunk(t, slots, x.shape[0])
        for p in range(first, last):
            pitch = _winners(x[p], phases[t], maxima, offsets, kh, kw, sh, sw, ph, pw, hph, wph, out_h, out_w)
            flat, grad = dx[p], dy[p]
            flat[:] = 0
            for oh in range(out_h):
                base, o, q = (oh * sh - ph) * width - pw, oh * out_w, oh * pitch
                for ow in range(out_w):
                    flat[np.uint64(base + ow * sw + offsets[np.uint64(q + ow)])] += grad[np.uint64(o + ow)]


def _phase_shape(x, out_shape, kh, kw, sh, sw, ph, pw):
    """(hph, wph) of the sh * sw phase planes of x padded with -inf the argmax paths read; (0, 0) where
    the windows lie inside x (stride 1, unpadded, none hanging) and read x itself."""
    hp, _ = _span(out_shape[-2], sh, kh, x.shape[-2], ph)
    wp, _ = _span(out_shape[-1], sw, kw, x.shape[-1], pw)
    if (sh, sw, ph, pw) == (1, 1, 0, 0) and hp <= x.shape[-2] and wp <= x.shape[-1]:
        return 0, 0
    return -(-hp // sh), -(-wp // sw)


def _values_scratch(x, out_shape, kh, kw, sh, sw, ph, pw):
    """The max and average forwards' scratch: stride 1 unpadded (none hanging), a plane's rows reduced
    and its windows (_pool2d_unit_stride); else a row buffer and its halves (stride 2)."""
    if _phase_shape(x, out_shape, kh, kw, sh, sw, ph, pw) == (0, 0):
        return [out_shape[-2] * x.shape[-1], (out_shape[-2] - 1) * x.shape[-1] + out_shape[-1]]
    row = _span(out_shape[-1], sw, kw, x.shape[-1], pw)[1]
    return [row, row + 1 if sw == 2 else 0]


def _max_scratch(x, out_shape, params, indices, backward):
    """The undilated paths' per-thread scratch sizes (none for the others): values only, a row buffer;
    winners, the phase planes (0: x itself), the maxima and their offsets (a slot more), at pitch apart."""
    kh, kw, sh, sw, ph, pw, dh, dw = params
    if (dh, dw) != (1, 1) or (_is_2x2_s2(*params) and (backward or not indices)):
        return []
    if not (indices or backward):
        return _values_scratch(x, out_shape, kh, kw, sh, sw, ph, pw)
    hph, wph = _phase_shape(x, out_shape, kh, kw, sh, sw, ph, pw)
    windows = out_shape[-2] * (wph if hph else x.shape[-1])
    return [sh * sw * hph * wph, windows, windows + 1]


def max_pool2d_workspace(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    sizes = _max_scratch(x, y.shape, (kh, kw, sh, sw, ph, pw, dh, dw), indices is not None, False)
    return _scratch_elements(sizes, x, n_threads)


def max_pool2d(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads, workspace):
    params = (kh, kw, sh, sw, ph, pw, dh, dw)
    sizes = _max_scratch(x, y.shape, params, indices is not None, False)
    if indices is None and _is_2x2_s2(*params):
        _max_pool2d_2x2(_planes(x), _planes(y))
    elif not sizes:  # dilated
        if indices is None:
            _max_pool2d(_planes(x), _planes(y), *params)
        else:
            _max_pool2d_indices(_planes(x), _planes(y), _planes(indices), *params, _offsets_exact(x, kh, kw, dh, dw))
    elif indices is None and _phase_shape(x, y.shape, kh, kw, sh, sw, ph, pw) == (0, 0):
        _pool2d_unit_stride(_flat(x), _flat(y), *_carve(workspace, sizes, x, n_threads), x.shape[-1], y.shape[-1], kh,
                            kw, False, 1)
    elif indices is None:
        _max_pool2d_rows(_flat(x), _flat(y), *_carve(workspace, sizes, x, n_threads), x.shape[-2], y.shape[-1],
                         kh, kw, sh, sw, ph, pw)
    else:
        phases, best, code = _carve(workspace, sizes, x, n_threads)
        _max_pool2d_argmax(_planes(x), _flat(y), _flat(indices), phases, best, _codes(code), y.shape[-1], kh, kw, sh, sw,
                           ph, pw, *_phase_shape(x, y.shape, kh, kw, sh, sw, ph, pw))


@njit(**PARALLEL)
def _max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw):
    for p in prange(x.shape[0]):
        dx[p] = 0  # this plane only: it stays in cache for the adds below
        for oh in range(dy.shape[1]):
            for ow in range(dy.shape[2]):  # window by window (measured faster here than _argmax_row's rows)
                ih, iw = _window_argmax(x[p], oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
                dx[p, ih, iw] += dy[p, oh, ow]


@njit(**PARALLEL)
def _max_pool2d_backward_2x2(dy, x, dx, zero):
    height, width = x.shape[1], x.shape[2]
    full_h, full_w = height // 2, width // 2  # windows wholly inside x
    last, last_h = 2 * full_w, 2 * full_h
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
        # ceil_mode's hanging windows (dx zero there before), as in _max_pool2d_2x2
        if dy.shape[2] > full_w:
            for oh in range(full_h):
                a, b = x[p, 2 * oh, last], x[p, 2 * oh + 1, last]
                dx[p, 2 * oh + (1 if (b > a) | (b != b) else 0), last] += dy[p, oh, full_w]
        if dy.shape[1] > full_h:
            for ow in range(full_w):
                a, b = x[p, last_h, 2 * ow], x[p, last_h, 2 * ow + 1]
                dx[p, last_h, 2 * ow + (1 if (b > a) | (b != b) else 0)] += dy[p, full_h, ow]
            if dy.shape[2] > full_w:
                dx[p, last_h, last] += dy[p, full_h, full_w]


def max_pool2d_backward_workspace(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    sizes = _max_scratch(x, dy.shape, (kh, kw, sh, sw, ph, pw, dh, dw), False, True)
    return _scratch_elements(sizes, x, n_threads)


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads, workspace):
    params = (kh, kw, sh, sw, ph, pw, dh, dw)
    sizes = _max_scratch(x, dy.shape, params, False, True)
    if _is_2x2_s2(*params):
        _max_pool2d_backward_2x2(_planes(dy), _planes(x), _planes(dx), x.dtype.type(0))
    elif not sizes:  # dilated
        _max_pool2d_backward(_planes(dy), _planes(x), _planes(dx), *params)
    else:
        phases, best, code = _carve(workspace, sizes, x, n_threads)
        _max_pool2d_backward_rows(_flat(dy), _planes(x), _flat(dx), phases, best, _codes(code), dy.shape[-1], kh, kw, sh,
                                  sw, ph, pw, *_phase_shape(x, dy.shape, kh, kw, sh, sw, ph, pw))


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
def _avg_pool2d_rows(x, y, scratch, scratch_halves, height, kh, kw, sh, sw, ph, pw, include_pad, divisor):
    """x as (P, H * W): per output row, its rows of x summed vertically into the thread's row buffer
    (x's columns at pw, zeros around them), then horizontally over each window's columns, then torch's
    divisors."""
    width, out_w = x.shape[1] // height, y.shape[2]
    wp = (out_w - 1) * sw + kw
    full_lo, full_hi = _full_columns(kw, sw, pw, width, out_w, include_pad)
    scratch[:, :] = 0  # the padding around x's columns: never written below
    slots = scratch.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        buf, halves = scratch[t], scratch_halves[t]
        first, last = chunk(t, slots, x.shape[0])
        for p in range(first, last):
            xp = x[p]
            for oh in range(y.shape[1]):
                h0 = oh * sh - ph
                lo, hi = max(h0, 0), min(h0 + kh, height)
                _strided_copy(xp, lo * width, buf, pw, width, 1)
                for ih in range(lo + 1, hi):
                    _add_into(buf, pw, xp, ih * width, width)
                row = y[p, oh]
                if sw == 1:  # a literal stride: contiguous loads
                    _sum_taps(buf, row, 0, out_w, kw, 1)
                elif sw == 2:  # tap j at halves[(j % 2) * odd + j // 2 + ow]
                    odd = _halves(buf, halves, wp)
                    _strided_copy(halves, 0, row, 0, out_w, 1)
                    for j in range(1, kw):
                        _add_into(row, 0, halves, (j % 2) * odd + j // 2, out_w)
                else:
                    _sum_taps(buf, row, 0, out_w, kw, sw)
                _divide_row(row, oh, kh, kw, sh, sw, ph, pw, height, width, include_pad, divisor, full_lo, full_hi)


@njit(**PARALLEL)
def _avg_pool2d_2x2(x, y, quarter):
    full_h, full_w = x.shape[1] // 2, x.shape[2] // 2  # windows wholly inside x
    last, last_h = 2 * full_w, 2 * full_h
    half = quarter * 2  # a hanging window holds 2 elements of x, or 1 (unpadded: both divisors count x's)
    for p in prange(x.shape[0]):
        for oh in range(full_h):
            top = x[p, 2 * oh]
            bottom = x[p, 2 * oh + 1]
            row = y[p, oh]
            for ow in range(full_w):
                row[ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) * quarter
        # ceil_mode's hanging windows, as in _max_pool2d_2x2
        if y.shape[2] > full_w:
            for oh in range(full_h):
                y[p, oh, full_w] = (x[p, 2 * oh, last] + x[p, 2 * oh + 1, last]) * half
        if y.shape[1] > full_h:
            for ow in range(full_w):
                y[p, full_h, ow] = (x[p, last_h, 2 * ow] + x[p, last_h, 2 * ow + 1]) * half
            if y.shape[2] > full_w:
                y[p, full_h, full_w] = x[p, last_h, last]


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads, workspace):
    sizes = _avg_scratch(x, y.shape, kh, kw, sh, sw, ph, pw, divisor, False)
    if not sizes:
        _avg_pool2d_2x2(_planes(x), _planes(y), x.dtype.type(0.25))
    elif _phase_shape(x, y.shape, kh, kw, sh, sw, ph, pw) == (0, 0):
        _pool2d_unit_stride(_flat(x), _flat(y), *_carve(workspace, sizes, x, n_threads), x.shape[-1], y.shape[-1], kh,
                            kw, True, divisor or kh * kw)
    else:
        _avg_pool2d_rows(_flat(x), _planes(y), *_carve(workspace, sizes, x, n_threads), x.shape[-2], kh, kw, sh, sw,
                         ph, pw, include_pad, divisor)


@njit(**PARALLEL)
def _avg_pool2d_backward_rows(dy, dx, shares, spread, spread_halves, height, kh, kw, sh, sw, ph, pw, include_pad,
                              divisor):
    """dx as (P, H * W): per output row, each window's share (dy / its divisor) spread over its columns
    in the thread's row buffer (stride 2: over its even and odd halves, contiguous, then interleaved),
    whose x part is then added to each row of x the windows cover (dx's plane zeroed while in cache)."""
    width, out_w = dx.shape[1] // height, dy.shape[2]
    wp, odd = (out_w - 1) * sw + kw, ((out_w - 1) * sw + kw + 1) // 2
    full_lo, full_hi = _full_columns(kw, sw, pw, width, out_w, include_pad)
    slots = shares.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        share, buf, halves = shares[t, :out_w], spread[t], spread_halves[t]
        buf[:] = 0  # past the windows' columns (stride 2 rewrites only buf[:wp])
        first, last = chunk(t, slots, dx.shape[0])
        for p in range(first, last):
            dxp = dx[p]
            dxp[:] = 0
            for oh in range(dy.shape[1]):
                _strided_copy(dy[p, oh], 0, share, 0, out_w, 1)
                _divide_row(share, oh, kh, kw, sh, sw, ph, pw, height, width, include_pad, divisor, full_lo, full_hi)
                if sw == 2:
                    for i in range(wp + 1):
                        halves[i] = 0
                    for j in range(kw):
                        _add_into(halves, (j % 2) * odd + j // 2, share, 0, out_w)
                    _interleave(halves, odd, buf, wp)
                else:
                    for i in range(buf.shape[0]):
                        buf[i] = 0
                    if sw == 1:  # a literal stride: contiguous loads and stores
                        _spread_taps(share, buf, kw, 1)
                    else:
                        _spread_taps(share, buf, kw, sw)
                h0 = oh * sh - ph
                for ih in range(max(h0, 0), min(h0 + kh, height)):
                    _add_into(dxp, ih * width, buf, pw, width)


@njit(**PARALLEL)
def _avg_pool2d_backward_unit_stride(dy, dx, shares, spread, width, out_w, kh, kw, divisor):
    """Stride 1 unpadded windows, none hanging (dy as (P, Ho * Wo), dx as (P, H * W)): whole planes at
    once at x's pitch: the shares dy / divisor (zero past out_w), spread over each window's columns,
    then over its rows into dx."""
    out_h = dy.shape[1] // out_w
    m, n = out_h * width, (out_h - 1) * width + out_w
    slots = shares.shape[0]  # a chunk of planes per thread, each with its own scratch
    for t in prange(slots):
        s, h = shares[t], spread[t]
        for q in range(m):
            s[q] = 0  # past out_w: never written below
        first, last = chunk(t, slots, dx.shape[0])
        for p in range(first, last):
            g, d = dy[p], dx[p]
            for oh in range(out_h):
                for ow in range(out_w):
                    s[np.uint64(oh * width + ow)] = g[np.uint64(oh * out_w + ow)] / divisor
            _strided_copy(s, 0, h, 0, m, 1)
            for j in range(1, kw):
                _add_into(h, j, s, 0, n)
            _strided_copy(h, 0, d, 0, m, 1)
            for q in range(m, d.shape[0]):
                d[q] = 0
            for i in range(1, kh):
                _add_into(d, i * width, h, 0, m)


def _avg_scratch(x, out_shape, kh, kw, sh, sw, ph, pw, divisor, backward):
    """Per-thread scratch sizes: the forward's (_values_scratch); backward, stride 1 unpadded (none
    hanging) two planes, else the shares, a row buffer and its halves (stride 2); none for 2x2 stride 2."""
    if _is_2x2_s2(kh, kw, sh, sw, ph, pw) and divisor == 0:
        return []
    if not backward:
        return _values_scratch(x, out_shape, kh, kw, sh, sw, ph, pw)
    if _phase_shape(x, out_shape, kh, kw, sh, sw, ph, pw) == (0, 0):  # the shares and their spread, a plane
        return [out_shape[-2] * x.shape[-1]] * 2
    row = _span(out_shape[-1], sw, kw, x.shape[-1], pw)[1]
    return [out_shape[-1], row, row + 1 if sw == 2 else 0]


def avg_pool2d_workspace(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    return _scratch_elements(_avg_scratch(x, y.shape, kh, kw, sh, sw, ph, pw, divisor, False), x, n_threads)


@njit(**PARALLEL)
def _avg_pool2d_backward_2x2(dy, dx, quarter):
    height, width = dx.shape[1], dx.shape[2]
    full_h, full_w = height // 2, width // 2  # windows wholly inside x
    last, last_h = 2 * full_w, 2 * full_h
    half = quarter * 2
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
        # ceil_mode's hanging windows' shares (dx zero there before), as in _avg_pool2d_2x2
        if dy.shape[2] > full_w:
            for oh in range(full_h):
                g = dy[p, oh, full_w] * half
                dx[p, 2 * oh, last] = g
                dx[p, 2 * oh + 1, last] = g
        if dy.shape[1] > full_h:
            for ow in range(full_w):
                g = dy[p, full_h, ow] * half
                dx[p, last_h, 2 * ow] = g
                dx[p, last_h, 2 * ow + 1] = g
            if dy.shape[2] > full_w:
                dx[p, last_h, last] = dy[p, full_h, full_w]


def avg_pool2d_backward_workspace(dy, x, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    return _scratch_elements(_avg_scratch(x, dy.shape, kh, kw, sh, sw, ph, pw, divisor, True), x, n_threads)


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads, workspace):
    sizes = _avg_scratch(x, dy.shape, kh, kw, sh, sw, ph, pw, divisor, True)
    if not sizes:
        _avg_pool2d_backward_2x2(_planes(dy), _planes(dx), x.dtype.type(0.25))
    elif _phase_shape(x, dy.shape, kh, kw, sh, sw, ph, pw) == (0, 0):
        _avg_pool2d_backward_unit_stride(_flat(dy), _flat(dx), *_carve(workspace, sizes, x, n_threads), x.shape[-1],
                                         dy.shape[-1], kh, kw, divisor or kh * kw)
    else:
        _avg_pool2d_backward_rows(_planes(dy), _flat(dx), *_carve(workspace, sizes, x, n_threads), x.shape[-2], kh, kw,
                                  sh, sw, ph, pw, include_pad, divisor)
