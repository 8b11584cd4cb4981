# Cython/OpenMP pooling kernels: parallel over the planes of (P, H, W) views (P = N * C, or C
# for unbatched input).
#
# Signatures follow the contract (fastnn/_ops.Plan and fastnn/pool.py): inputs, outputs, the
# parameters, n_threads (exactly that many threads run, fewer only with fewer planes), and
# workspace= (per-thread scratch, sized by <op>_workspace).
# Max follows PyTorch's rule: scanning a window in row-major order, a value wins if it is greater
# than the current maximum or is NaN (first maximum on ties, last NaN among NaNs); the meta function
# guarantees every window holds at least one element of x, so padding never wins. Window element
# (i, j) of output (oh, ow) is x[oh * sh - ph + i * dh, ow * sw - pw + j * dw]; windows are clipped
# to x, so ceil_mode's last windows (hanging past the end) need nothing special in generic code.
# Undilated windows of any size, stride and padding run pool_loops.h's C loops (vectorized for the
# CPU at run time; see there); 2x2 stride 2 (unpadded) has its own loops (the max forward there,
# the max backward and the average here), which write each output and each dx element once
# (ceil_mode's hanging last column and row of x follow in the same pass). Dilated windows run the generic rows below: a row of outputs at once,
# one window offset at a time. Winners' indices are flat in the plane (ih * W + iw, torch's
# return_indices); the max backward recomputes them from x. The other backwards zero a plane while
# it is in cache and add into it. Average divisors are torch's CPU kernel's: the window clipped to
# the padded input (count_include_pad) or to x, or divisor_override.

from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

import numpy as np

from _common cimport chunk_start, real


cdef extern from "pool_loops.h" nogil:
    ctypedef struct Geometry "fnn_pool_geometry":
        Py_ssize_t height, width, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw
        bint include_pad
        Py_ssize_t divisor
        Py_ssize_t full_lo, full_hi
        bint real_offsets
    Py_ssize_t fnn_pool_values_scratch(const Geometry* g)
    Py_ssize_t fnn_pool_winners_scratch(const Geometry* g)
    Py_ssize_t fnn_pool_avg_backward_scratch(const Geometry* g)
    void fnn_pool_values_f(const float* x, float* y, const Geometry* g, int average, float* buf)
    void fnn_pool_values_d(const double* x, double* y, const Geometry* g, int average, double* buf)
    void fnn_pool_max_indices_f(const float* x, float* y, int64_t* indices, Py_ssize_t planes, const Geometry* g,
                                float* scratch)
    void fnn_pool_max_indices_d(const double* x, double* y, int64_t* indices, Py_ssize_t planes, const Geometry* g,
                                double* scratch)
    void fnn_pool_max_backward_f(const float* dy, const float* x, float* dx, Py_ssize_t planes, const Geometry* g,
                                 float* scratch)
    void fnn_pool_max_backward_d(const double* dy, const double* x, double* dx, Py_ssize_t planes,
                                 const Geometry* g, double* scratch)
    void fnn_pool_max_2x2_f(const float* x, float* y, const Geometry* g)
    void fnn_pool_max_2x2_d(const double* x, double* y, const Geometry* g)
    void fnn_pool_avg_backward_f(const float* dy, float* dx, const Geometry* g, float* scratch)
    void fnn_pool_avg_backward_d(const double* dy, double* dx, const Geometry* g, double* scratch)
    bint fnn_pool_tiled(const Geometry* g)
    void fnn_pool_tiled_values_f(const float* x, float* y, Py_ssize_t groups, const Geometry* g, int average,
                                 float* buf)
    void fnn_pool_tiled_values_d(const double* x, double* y, Py_ssize_t groups, const Geometry* g, int average,
                                 double* buf)
    void fnn_pool_tiled_avg_backward_f(const float* dy, float* dx, Py_ssize_t groups, const Geometry* g,
                                       float* buf)
    void fnn_pool_tiled_avg_backward_d(const double* dy, double* dx, Py_ssize_t groups, const Geometry* g,
                                       double* buf)


cdef Geometry _geometry(Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t kh,
                        Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                        Py_ssize_t dw, bint include_pad, Py_ssize_t divisor) noexcept nogil:
    cdef Geometry g
    cdef Py_ssize_t top
    g.height, g.width, g.out_h, g.out_w = height, width, out_h, out_w
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = kh, kw, sh, sw, ph, pw, dh, dw
    g.include_pad, g.divisor = include_pad, divisor
    g.full_lo = 0 if include_pad else (pw + sw - 1) // sw
    top = width + 2 * pw - kw if include_pad else width + pw - kw
    g.full_hi = max(min(top // sw + 1, out_w) if top >= 0 else 0, g.full_lo)
    g.real_offsets = False  # set by the max entry points, per dtype
    return g


cdef inline bint _is_2x2_s2(const Geometry* g) noexcept nogil:
    return (g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.ph == 0 and g.pw == 0 and g.dh == 1
            and g.dw == 1)


cdef inline bint _wins(real v, real best) noexcept nogil:
    return (v > best) | (v != v)  # not `or`: its short circuit is a branch on the data


cdef inline void _columns(Py_ssize_t offset, const Geometry* g, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """The outputs [lo, hi) whose window column at ow * sw - pw + offset is inside [0, width)."""
    cdef Py_ssize_t top = g.width - 1 + g.pw - offset
    lo[0] = 0 if offset >= g.pw else (g.pw - offset + g.sw - 1) // g.sw
    hi[0] = 0 if top < 0 else min(top // g.sw + 1, g.out_w)


cdef inline void _taps(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d, Py_ssize_t size, Py_ssize_t* lo,
                       Py_ssize_t* hi) noexcept nogil:
    """The taps [lo, hi) of a window at `start` (k taps d apart) that lie inside [0, size)."""
    cdef Py_ssize_t last = size - 1 - start
    if d == 1:  # no integer divisions (tens of cycles each) on the undilated paths
        lo[0] = max(-start, 0)
        hi[0] = max(min(k, size - start), 0)
        return
    lo[0] = 0 if start >= 0 else (d - 1 - start) // d
    hi[0] = 0 if last < 0 else min(k, last // d + 1)


cdef inline void _max_into(const real* src, Py_ssize_t stride, real* row, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t ow
    cdef real v, b
    for ow in range(n):
        v = src[ow * stride]
        b = row[ow]
        row[ow] = v if _wins(v, b) else b


cdef inline void _argoffset_into(const real* src, Py_ssize_t stride, real* best, real* offset, real this_offset,
                                 Py_ssize_t n) noexcept nogil:
    """Like _max_into, also recording this_offset where src wins: held as a real, the offsets share
    the data's lanes and the selects vectorize (Py_ssize_t ones beside float32 data ran ~5x slower)."""
    cdef Py_ssize_t ow
    cdef real v, b, o
    cdef bint wins
    for ow in range(n):
        v = src[ow * stride]
        b = best[ow]
        o = offset[ow]
        wins = _wins(v, b)
        best[ow] = v if wins else b
        offset[ow] = this_offset if wins else o


cdef inline void _argmax_into(const real* src, Py_ssize_t stride, real* best, Py_ssize_t* index,
                              Py_ssize_t first, Py_ssize_t n) noexcept nogil:
    """Like _max_into, also recording the winner's flat index first + ow * stride (selects)."""
    cdef Py_ssize_t ow, o
    cdef real v, b
    cdef bint wins
    for ow in range(n):
        v = src[ow * stride]
        b = best[ow]
        o = index[ow]
        wins = _wins(v, b)
        best[ow] = v if wins else b
        index[ow] = first + ow * stride if wins else o


# --- the C loops (pool_loops.h), for undilated windows ---------------------------------------------

cdef inline bint _undilated(const Geometry* g) noexcept nogil:
    return g.dh == 1 and g.dw == 1


cdef inline void _values(const real* x, real* y, const Geometry* g, bint average, real* buf) noexcept nogil:
    if real is float:
        fnn_pool_values_f(x, y, g, average, buf)
    else:
        fnn_pool_values_d(x, y, g, average, buf)


cdef inline void _max_indices(const real* x, real* y, Py_ssize_t* indices, Py_ssize_t planes, const Geometry* g,
                              real* scratch) noexcept nogil:
    if real is float:
        fnn_pool_max_indices_f(x, y, <int64_t*>indices, planes, g, scratch)
    else:
        fnn_pool_max_indices_d(x, y, <int64_t*>indices, planes, g, scratch)


cdef inline void _max_backward(const real* dy, const real* x, real* dx, Py_ssize_t planes, const Geometry* g,
                               real* scratch) noexcept nogil:
    if real is float:
        fnn_pool_max_backward_f(dy, x, dx, planes, g, scratch)
    else:
        fnn_pool_max_backward_d(dy, x, dx, planes, g, scratch)



cdef inline void _avg_backward(const real* dy, real* dx, const Geometry* g, real* scratch) noexcept nogil:
    if real is float:
        fnn_pool_avg_backward_f(dy, dx, g, scratch)
    else:
        fnn_pool_avg_backward_d(dy, dx, g, scratch)


cdef inline void _tiled_task(const real* a, real* out, Py_ssize_t groups, Py_ssize_t t, int n_threads,
                             const Geometry* g, int mode, real* buf) noexcept nogil:
    """Thread t's share of the rows of windows of an exact tiling (pool_loops.h's fnn_pool_tiled):
    mode 0 max, 1 average, 2 the average's backward (a is dy, out dx)."""
    cdef Py_ssize_t g0 = chunk_start(groups, t, n_threads), g1 = chunk_start(groups, t + 1, n_threads)
    cdef Py_ssize_t rows_in = g0 * g.kh * g.width, rows_out = g0 * g.out_w
    if g1 <= g0:
        return
    if mode == 2:
        if real is float:
            fnn_pool_tiled_avg_backward_f(a + rows_out, out + rows_in, g1 - g0, g, buf)
        else:
            fnn_pool_tiled_avg_backward_d(a + rows_out, out + rows_in, g1 - g0, g, buf)
    elif real is float:
        fnn_pool_tiled_values_f(a + rows_in, out + rows_out, g1 - g0, g, mode, buf)
    else:
        fnn_pool_tiled_values_d(a + rows_in, out + rows_out, g1 - g0, g, mode, buf)


cdef void _tiled_loop(const real* a, real* out, Py_ssize_t planes, real[:, ::1] scratch, const Geometry* g,
                      int mode, int n_threads) noexcept nogil:
    """An exact tiling's planes end to end, the rows of windows split among the threads."""
    cdef Py_ssize_t t, groups = planes * g.out_h
    if n_threads == 1:  # no OpenMP region: libgomp's team of one still ends in a futex syscall
        _tiled_task(a, out, groups, 0, 1, g, mode, &scratch[0, 0])
        return
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        _tiled_task(a, out, groups, t, n_threads, g, mode, &scratch[t, 0])


# --- max --------------------------------------------------------------------------------------------

cdef void _max_row(const real* x, real* row, Py_ssize_t oh, const Geometry* g) noexcept nogil:
    """Output row oh, one window offset at a time over the whole row."""
    cdef Py_ssize_t ow, i, j, lo, hi, i_lo, i_hi, h0 = oh * g.sh - g.ph
    cdef const real* src
    for ow in range(g.out_w):
        row[ow] = -INFINITY
    _taps(h0, g.kh, g.dh, g.height, &i_lo, &i_hi)
    for i in range(i_lo, i_hi):
        for j in range(g.kw):
            _columns(j * g.dw, g, &lo, &hi)
            if lo >= hi:
                continue
            src = x + (h0 + i * g.dh) * g.width + lo * g.sw - g.pw + j * g.dw
            if g.sw == 1:
                _max_into(src, 1, row + lo, hi - lo)
            elif g.sw == 2:
                _max_into(src, 2, row + lo, hi - lo)
            else:
                _max_into(src, g.sw, row + lo, hi - lo)


cdef void _argmax_row(const real* x, real* best, Py_ssize_t* index, real* offset, Py_ssize_t oh,
                      const Geometry* g) noexcept nogil:
    """Output row oh's maxima into best and their flat indices ih * width + iw into index; offset:
    a scratch row of out_w reals.

    Scanning offsets in row-major order applies PyTorch's rule to every window of the row at
    once; -inf starts, so an all -inf window keeps its first element of x. The winners' offsets
    from their window's corner are kept as reals when exact in the dtype (g.real_offsets), else as
    Py_ssize_t indices (a float32 offset rounds past 2^24: a wrong, even out-of-bounds, write).
    """
    cdef Py_ssize_t ow, i, j, lo, hi, i_lo, i_hi, j_lo, j_hi, w0, first, h0 = oh * g.sh - g.ph
    cdef const real* src
    _taps(h0, g.kh, g.dh, g.height, &i_lo, &i_hi)
    for ow in range(g.out_w):
        w0 = ow * g.sw - g.pw
        _taps(w0, g.kw, g.dw, g.width, &j_lo, &j_hi)
        best[ow] = -INFINITY
        if g.real_offsets:
            offset[ow] = i_lo * g.dh * g.width + j_lo * g.dw
        else:
            index[ow] = (h0 + i_lo * g.dh) * g.width + w0 + j_lo * g.dw
    for i in range(i_lo, i_hi):
        for j in range(g.kw):
            _columns(j * g.dw, g, &lo, &hi)
            if lo >= hi:
                continue
            first = (h0 + i * g.dh) * g.width + lo * g.sw - g.pw + j * g.dw
            src = x + first
            if g.real_offsets:
                if g.sw == 1:
                    _argoffset_into(src, 1, best + lo, offset + lo, i * g.dh * g.width + j * g.dw, hi - lo)
                elif g.sw == 2:
                    _argoffset_into(src, 2, best + lo, offset + lo, i * g.dh * g.width + j * g.dw, hi - lo)
                else:
                    _argoffset_into(src, g.sw, best + lo, offset + lo, i * g.dh * g.width + j * g.dw, hi - lo)
            elif g.sw == 1:
                _argmax_into(src, 1, best + lo, index + lo, first, hi - lo)
            elif g.sw == 2:
                _argmax_into(src, 2, best + lo, index + lo, first, hi - lo)
            else:
                _argmax_into(src, g.sw, best + lo, index + lo, first, hi - lo)
    if g.real_offsets:
        for ow in range(g.out_w):
            index[ow] = h0 * g.width + ow * g.sw - g.pw + <Py_ssize_t>offset[ow]


cdef void _max_plane(const real* x, real* y, const Geometry* g) noexcept nogil:
    cdef Py_ssize_t oh
    for oh in range(g.out_h):
        _max_row(x, y + oh * g.out_w, oh, g)


cdef void _max_plane_indices(const real* x, real* y, Py_ssize_t* indices, real* offset,
                             const Geometry* g) noexcept nogil:
    cdef Py_ssize_t oh
    for oh in range(g.out_h):
        _argmax_row(x, y + oh * g.out_w, indices + oh * g.out_w, offset, oh, g)


cdef void _max_backward_row(const real* grad, const real* x, real* dx, real* best, Py_ssize_t* index,
                            real* offset, Py_ssize_t oh, const Geometry* g) noexcept nogil:
    """Adds output row oh's gradient `grad` into dx at its winners."""
    cdef Py_ssize_t ow
    _argmax_row(x, best, index, offset, oh, g)
    for ow in range(g.out_w):
        dx[index[ow]] += grad[ow]


cdef inline void _max_plane_2x2(const real* x, real* y, const Geometry* g) noexcept nogil:
    if real is float:
        fnn_pool_max_2x2_f(x, y, g)
    else:
        fnn_pool_max_2x2_d(x, y, g)


cdef void _max_pool2d_loop(const real[:, :, ::1] x, real[:, :, ::1] y, real[:, ::1] scratch, const Geometry* g,
                           int n_threads) noexcept nogil:
    """scratch: per thread, a padded row (undilated windows), or a batch of rows (exact tilings)."""
    cdef Py_ssize_t p
    if x.shape[0] and not _is_2x2_s2(g) and fnn_pool_tiled(g):
        _tiled_loop(&x[0, 0, 0], &y[0, 0, 0], x.shape[0], scratch, g, 0, n_threads)
        return
    for p in prange(x.shape[0], schedule="static", num_threads=n_threads):
        if _is_2x2_s2(g):
            _max_plane_2x2(&x[p, 0, 0], &y[p, 0, 0], g)
        elif _undilated(g):
            _values(&x[p, 0, 0], &y[p, 0, 0], g, False, &scratch[threadid(), 0])
        else:
            _max_plane(&x[p, 0, 0], &y[p, 0, 0], g)


cdef void _max_pool2d_indices_loop(const real[:, :, ::1] x, real[:, :, ::1] y, Py_ssize_t[:, :, ::1] indices,
                                   real[:, ::1] scratch, const Geometry* g, int n_threads) noexcept nogil:
    """scratch: per thread, pool_loops.h's (undilated windows with offsets exact as reals), or a row
    of out_w (the winners' offsets as reals)."""
    cdef Py_ssize_t p, t, p0, p1, planes = x.shape[0]
    if _undilated(g) and g.real_offsets:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            p0 = chunk_start(planes, t, n_threads)
            p1 = chunk_start(planes, t + 1, n_threads)
            if p1 > p0:
                _max_indices(&x[p0, 0, 0], &y[p0, 0, 0], &indices[p0, 0, 0], p1 - p0, g, &scratch[t, 0])
        return
    for p in prange(planes, schedule="static", num_threads=n_threads):
        _max_plane_indices(&x[p, 0, 0], &y[p, 0, 0], &indices[p, 0, 0], &scratch[threadid(), 0], g)


cdef void _max_backward_plane(const real* dy, const real* x, real* dx, real* best, real* offset,
                              Py_ssize_t* index, const Geometry* g) noexcept nogil:
    cdef Py_ssize_t oh, i
    for i in range(g.height * g.width):  # this plane only: it stays in cache for the adds below
        dx[i] = 0
    for oh in range(g.out_h):
        _max_backward_row(dy + oh * g.out_w, x, dx, best, index, offset, oh, g)


cdef void _max_backward_plane_2x2(const real* dy, const real* x, real* dx, real* winner,
                                  const Geometry* g) noexcept nogil:
    cdef Py_ssize_t oh, ow, iw, row, width = g.width, full_h = g.height // 2, full_w = g.width // 2
    cdef Py_ssize_t last = 2 * (g.width // 2)  # ceil_mode's hanging windows: x's odd last column (and row)
    cdef const real* top
    cdef const real* bottom
    cdef const real* grad
    cdef real* drow
    cdef real a, b, c, d, best, k, grad_value
    cdef bint wins
    for oh in range(full_h):
        top = x + 2 * oh * width
        bottom = top + width
        grad = dy + oh * g.out_w
        # Each window's winner offset (0..3, held as a real: same lanes as the data) by selects,
        # then the stores in separate loops: with loads and stores apart, both loops vectorize.
        for ow in range(full_w):
            a = top[2 * ow]
            b = top[2 * ow + 1]
            c = bottom[2 * ow]
            d = bottom[2 * ow + 1]
            wins = _wins(b, a)
            best = b if wins else a
            k = 1 if wins else 0
            wins = _wins(c, best)
            best = c if wins else best
            k = 2 if wins else k
            winner[ow] = 3 if _wins(d, best) else k
        for row in range(2):
            drow = dx + (2 * oh + row) * width
            for ow in range(full_w):
                k = winner[ow] - 2 * row
                grad_value = grad[ow]  # loaded unconditionally: the selects below need no branch
                drow[2 * ow] = grad_value if k == 0 else 0
                drow[2 * ow + 1] = grad_value if k == 1 else 0
            for iw in range(last, width):  # an odd last column: in no window, or ceil_mode's
                drow[iw] = 0
        if g.out_w > full_w:
            dx[(2 * oh + _wins(bottom[last], top[last])) * width + last] += grad[full_w]
    for iw in range(2 * full_h * width, g.height * width):  # likewise an odd last row
        dx[iw] = 0
    if g.out_h > full_h:
        top = x + 2 * full_h * width
        drow = dx + 2 * full_h * width
        grad = dy + full_h * g.out_w
        for ow in range(full_w):
            drow[2 * ow + _wins(top[2 * ow + 1], top[2 * ow])] += grad[ow]
        if g.out_w > full_w:
            drow[last] += grad[full_w]


cdef void _max_pool2d_backward_loop(const real[:, :, ::1] dy, const real[:, :, ::1] x, real[:, :, ::1] dx,
                                    real[:, ::1] scratch, Py_ssize_t row, const Geometry* g,
                                    int n_threads) noexcept nogil:
    """scratch: per thread, pool_loops.h's (undilated windows with offsets exact as reals), or rows
    `row` apart: running maxima, winners' offsets, the winners (Py_ssize_t)."""
    cdef Py_ssize_t p, t, p0, p1, planes = x.shape[0]
    cdef real* mine
    if _undilated(g) and g.real_offsets and not _is_2x2_s2(g):
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            p0 = chunk_start(planes, t, n_threads)
            p1 = chunk_start(planes, t + 1, n_threads)
            if p1 > p0:
                _max_backward(&dy[p0, 0, 0], &x[p0, 0, 0], &dx[p0, 0, 0], p1 - p0, g, &scratch[t, 0])
        return
    for p in prange(planes, schedule="static", num_threads=n_threads):
        mine = &scratch[threadid(), 0]
        if _is_2x2_s2(g):
            _max_backward_plane_2x2(&dy[p, 0, 0], &x[p, 0, 0], &dx[p, 0, 0], mine, g)
        else:
            _max_backward_plane(&dy[p, 0, 0], &x[p, 0, 0], &dx[p, 0, 0], mine, mine + row,
                                <Py_ssize_t*>(mine + 2 * row), g)


# --- average ------------------------------------------------------------------------------------

cdef inline bint _is_avg_2x2_s2(const Geometry* g) noexcept nogil:
    return _is_2x2_s2(g) and g.divisor == 0


cdef void _avg_plane_2x2(const real* x, real* y, const Geometry* g) noexcept nogil:
    """ceil_mode's hanging windows hold 2 elements of x, or 1 (unpadded: both divisors count x)."""
    cdef Py_ssize_t oh, ow, full_h = g.height // 2, full_w = g.width // 2, last = 2 * (g.width // 2)
    cdef const real* top
    cdef const real* bottom
    cdef real* row
    for oh in range(full_h):
        top = x + 2 * oh * g.width
        bottom = top + g.width
        row = y + oh * g.out_w
        for ow in range(full_w):
            row[ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) * <real>0.25
        if g.out_w > full_w:
            row[full_w] = (top[last] + bottom[last]) * <real>0.5
    if g.out_h > full_h:
        top = x + 2 * full_h * g.width
        row = y + full_h * g.out_w
        for ow in range(full_w):
            row[ow] = (top[2 * ow] + top[2 * ow + 1]) * <real>0.5
        if g.out_w > full_w:
            row[full_w] = top[last]


cdef void _avg_pool2d_loop(const real[:, :, ::1] x, real[:, :, ::1] y, real[:, ::1] scratch, const Geometry* g,
                           int n_threads) noexcept nogil:
    """scratch: per thread, a padded row, or a batch of rows (exact tilings)."""
    cdef Py_ssize_t p
    if x.shape[0] and not _is_avg_2x2_s2(g) and fnn_pool_tiled(g):
        _tiled_loop(&x[0, 0, 0], &y[0, 0, 0], x.shape[0], scratch, g, 1, n_threads)
        return
    for p in prange(x.shape[0], schedule="static", num_threads=n_threads):
        if _is_avg_2x2_s2(g):
            _avg_plane_2x2(&x[p, 0, 0], &y[p, 0, 0], g)
        else:
            _values(&x[p, 0, 0], &y[p, 0, 0], g, True, &scratch[threadid(), 0])


cdef void _avg_backward_plane_2x2(const real* dy, real* dx, const Geometry* g) noexcept nogil:
    """Every dx element written once (ceil_mode's hanging windows: 2 elements of x, or 1)."""
    cdef Py_ssize_t oh, ow, iw, row, full_h = g.height // 2, full_w = g.width // 2, last = 2 * (g.width // 2)
    cdef const real* grad
    cdef real* drow
    cdef real d
    for oh in range(full_h):
        grad = dy + oh * g.out_w
        for row in range(2):
            drow = dx + (2 * oh + row) * g.width
            for ow in range(full_w):
                d = grad[ow] * <real>0.25
                drow[2 * ow] = d
                drow[2 * ow + 1] = d
            for iw in range(last, g.width):  # an odd last column: in no window, or ceil_mode's
                drow[iw] = 0
            if g.out_w > full_w:
                drow[last] = grad[full_w] * <real>0.5
    for iw in range(2 * full_h * g.width, g.height * g.width):  # likewise an odd last row
        dx[iw] = 0
    if g.out_h > full_h:
        grad = dy + full_h * g.out_w
        drow = dx + 2 * full_h * g.width
        for ow in range(full_w):
            d = grad[ow] * <real>0.5
            drow[2 * ow] = d
            drow[2 * ow + 1] = d
        if g.out_w > full_w:
            drow[last] = grad[full_w]


cdef void _avg_pool2d_backward_loop(const real[:, :, ::1] dy, real[:, :, ::1] dx, real[:, ::1] scratch,
                                    const Geometry* g, int n_threads) noexcept nogil:
    """scratch: per thread, pool_loops.h's (fnn_pool_avg_backward_scratch)."""
    cdef Py_ssize_t p
    if dx.shape[0] and not _is_avg_2x2_s2(g) and fnn_pool_tiled(g):
        _tiled_loop(&dy[0, 0, 0], &dx[0, 0, 0], dx.shape[0], scratch, g, 2, n_threads)
        return
    for p in prange(dx.shape[0], schedule="static", num_threads=n_threads):
        if _is_avg_2x2_s2(g):
            _avg_backward_plane_2x2(&dy[p, 0, 0], &dx[p, 0, 0], g)
        else:
            _avg_backward(&dy[p, 0, 0], &dx[p, 0, 0], g, &scratch[threadid(), 0])


# --- entry points: fused over the dtype, planes of (P, H, W) views -------------------------------

cdef inline bint _offsets_exact(const Geometry* g, Py_ssize_t exact) noexcept nogil:
    """Every window offset (i * dh) * width + j * dw is below `exact` (2^24 float32, 2^53 float64)."""
    return (g.dh * (g.kh - 1) + 1) * g.width + g.dw * (g.kw - 1) <= exact


def _max_pool2d(const real[:, :, ::1] x, real[:, :, ::1] y, real[:, ::1] scratch, Py_ssize_t kh, Py_ssize_t kw,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                int n_threads):
    cdef Geometry g
    with nogil:
        g = _geometry(x.shape[1], x.shape[2], y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, False, 0)
        _max_pool2d_loop(x, y, scratch, &g, n_threads)


def _max_pool2d_indices(const real[:, :, ::1] x, real[:, :, ::1] y, Py_ssize_t[:, :, ::1] indices,
                        real[:, ::1] scratch, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    cdef Geometry g
    cdef Py_ssize_t exact = (1 << 24) if real is float else (1 << 53)
    with nogil:
        g = _geometry(x.shape[1], x.shape[2], y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, False, 0)
        g.real_offsets = _offsets_exact(&g, exact)
        _max_pool2d_indices_loop(x, y, indices, scratch, &g, n_threads)


def _max_pool2d_backward(const real[:, :, ::1] dy, const real[:, :, ::1] x, real[:, :, ::1] dx,
                         real[:, ::1] scratch, Py_ssize_t row, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                         Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    cdef Geometry g
    cdef Py_ssize_t exact = (1 << 24) if real is float else (1 << 53)
    with nogil:
        g = _geometry(x.shape[1], x.shape[2], dy.shape[1], dy.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, False, 0)
        g.real_offsets = _offsets_exact(&g, exact)
        _max_pool2d_backward_loop(dy, x, dx, scratch, row, &g, n_threads)


def _avg_pool2d(const real[:, :, ::1] x, real[:, :, ::1] y, real[:, ::1] scratch, Py_ssize_t kh, Py_ssize_t kw,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint include_pad, Py_ssize_t divisor,
                int n_threads):
    cdef Geometry g
    with nogil:
        g = _geometry(x.shape[1], x.shape[2], y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw, 1, 1, include_pad,
                      divisor)
        _avg_pool2d_loop(x, y, scratch, &g, n_threads)


def _avg_pool2d_backward(const real[:, :, ::1] dy, real[:, :, ::1] dx, real[:, ::1] scratch, Py_ssize_t kh,
                         Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint include_pad,
                         Py_ssize_t divisor, int n_threads):
    cdef Geometry g
    with nogil:
        g = _geometry(dx.shape[1], dx.shape[2], dy.shape[1], dy.shape[2], kh, kw, sh, sw, ph, pw, 1, 1, include_pad,
                      divisor)
        _avg_pool2d_backward_loop(dy, dx, scratch, &g, n_threads)


def _planes(a):
    """(N, C, H, W) or (C, H, W) as (P, H, W): pooling works plane by plane."""
    return a.reshape(-1, a.shape[a.ndim - 2], a.shape[a.ndim - 1])  # no negative indices: wraparound=False


def _row_stride(n):
    """Elements from one thread's scratch to the next's: n and 16 more (64 bytes of float32), rounded
    up to 16, so no cache line holds two threads' scratch (adjacent rows shared lines and ran the
    average backward 2-3x slower on 2 threads: 32x64x32x32 k2 s1, 0.85 -> 2.6 ms)."""
    return (n + 31) // 16 * 16


def _plane_scratch(path, x, out, kh, kw, sh, sw, ph, pw):
    """Elements one plane's call needs on a path of pool_loops.h ('values', 'winners' or
    'avg_backward'), for undilated windows."""
    cdef Geometry g = _geometry(x.shape[x.ndim - 2], x.shape[x.ndim - 1], out.shape[out.ndim - 2],
                                out.shape[out.ndim - 1], kh, kw, sh, sw, ph, pw, 1, 1, False, 0)
    if path == "values":
        return fnn_pool_values_scratch(&g)
    if path == "winners":
        return fnn_pool_winners_scratch(&g)
    return fnn_pool_avg_backward_scratch(&g)


def _per_thread(workspace, n_threads):
    """The workspace (sized by <op>_workspace: n_threads equal parts) as one row per thread."""
    return workspace.reshape(n_threads, workspace.size // n_threads)


def max_pool2d_workspace(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    """Elements of x's dtype, per thread: pool_loops.h's scratch (undilated), or a row of out_w (the
    winners' offsets of dilated windows)."""
    path = "values" if indices is None else "winners"
    return n_threads * _row_stride(max(_plane_scratch(path, x, y, kh, kw, sh, sw, ph, pw), y.shape[y.ndim - 1]))


def max_pool2d(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, n_threads, workspace):
    scratch = _per_thread(workspace, n_threads)
    if indices is None:
        _max_pool2d(_planes(x), _planes(y), scratch, kh, kw, sh, sw, ph, pw, dh, dw, n_threads)
    else:  # int64: Py_ssize_t on the 64-bit platforms fastnn builds for
        _max_pool2d_indices(_planes(x), _planes(y), _planes(indices), scratch, kh, kw, sh, sw, ph, pw, dh, dw,
                            n_threads)


def max_pool2d_backward_workspace(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads):
    """Elements of x's dtype, per thread: pool_loops.h's scratch (undilated), or rows of out_w
    (dilated): values, offsets, the winners (Py_ssize_t, 8 bytes each)."""
    row = _row_stride(dy.shape[dy.ndim - 1])
    winners = _plane_scratch("winners", x, dy, kh, kw, sh, sw, ph, pw)
    return n_threads * _row_stride(max(winners, row * (2 + 8 // x.itemsize)))


def max_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, n_threads, workspace):
    scratch = _per_thread(workspace, n_threads)  # rows of a multiple of 16: the winners stay 8-byte aligned
    _max_pool2d_backward(_planes(dy), _planes(x), _planes(dx), scratch, _row_stride(dy.shape[dy.ndim - 1]),
                         kh, kw, sh, sw, ph, pw, dh, dw, n_threads)


def avg_pool2d_workspace(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    """Elements of x's dtype: per thread, pool_loops.h's scratch (a padded row)."""
    return n_threads * _row_stride(_plane_scratch("values", x, y, kh, kw, sh, sw, ph, pw))


def avg_pool2d(x, y, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads, workspace):
    _avg_pool2d(_planes(x), _planes(y), _per_thread(workspace, n_threads), kh, kw, sh, sw, ph, pw, include_pad,
                divisor, n_threads)


def avg_pool2d_backward_workspace(dy, x, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads):
    """Elements of x's dtype: per thread, pool_loops.h's scratch (a padded row and a row of windows)."""
    return n_threads * _row_stride(_plane_scratch("avg_backward", x, dy, kh, kw, sh, sw, ph, pw))


def avg_pool2d_backward(dy, x, dx, kh, kw, sh, sw, ph, pw, include_pad, divisor, n_threads, workspace):
    _avg_pool2d_backward(_planes(dy), _planes(dx), _per_thread(workspace, n_threads), kh, kw, sh, sw, ph, pw,
                         include_pad, divisor, n_threads)
