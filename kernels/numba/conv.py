"""Numba conv2d kernels.

Signatures follow the contract (fastnn/conv.py): inputs, outputs, parameters, n_threads. Images
are split into min(n_threads, N) static chunks (`chunk`); BLAS (np.dot) runs on one thread inside
those loops (the dispatcher caps it: Plan.blas). Weight and bias gradients accumulate in
per-thread partials, merged after the loop by `_merge`.

- Generic path (any stride, padding, dilation, groups): per image, im2col into a per-thread
  workspace, then one GEMM per group; 1x1 stride-1 unpadded convolutions skip the im2col.
- Depthwise (groups == C, any kernel, stride, padding, dilation, channel multiplier): direct loops over
  zero-padded phase planes, parallel over planes (forward, input gradient) or filters (weight and bias
  gradients, no cross-thread reduction), where a thread's scratch fits DEPTHWISE_BYTES (`_depthwise_fits`).
  gdw / gdws2 (float32, 2 threads, bench/probes/numba_depthwise.py, machine shared): forward 3.3x / 2.4x,
  forward + backward 4.5x / 3.1x faster than the GEMM path (a K = KH * KW GEMM of one output row per
  channel), and about half / two thirds of PyTorch's time.
- Winograd F(4x4, 3x3) for 3x3 stride-1 layers with enough channels and tiles (`_winograd_fits`,
  measured there): 4x fewer multiplications, half the time of the generic path on c2/c3/c5.
  Non-finite values (the strategy of both compiled backends): Winograd's results are kept only
  when every one is finite (y; dx and dw); otherwise the call is recomputed on the generic path,
  so inf and NaN reach exactly the outputs whose window holds them, as with PyTorch's direct/GEMM
  algorithms (the transforms would spread them over whole tiles).
"""
import math

import numpy as np
from numba import njit, prange, uintp

from ._common import FASTMATH_SUMS, PARALLEL, SERIAL, chunk
from .pool import _split_phases



# --- im2col / col2im --------------------------------------------------------------------------
# Indices are cast to uintp: with signed indices Numba checks each one for negative wraparound,
# which keeps the copies scalar (the 3-channel 7x7 im2col of 50 images: 5.1 ms signed, 1.1 ms).

@njit(**SERIAL)
def _valid_range(size_out, size_in, offset, stride):
    """[lo, hi) of output positions o with 0 <= o * stride + offset < size_in."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if size_in - offset > 0:
        hi = (size_in - offset + stride - 1) // stride
    hi = min(hi, size_out)
    lo = min(lo, hi)
    return lo, hi


@njit(**SERIAL)
def _im2col_run(row, base, src, a, b, q_lo, q_hi, sw, off):
    """row[base + q] for the outputs q in [a, b) of one output row: src[q * sw + off] where q is in
    [q_lo, q_hi), else 0 (src None: a padding row)."""
    lo, hi = max(q_lo, a), min(q_hi, b)
    if src is None or lo >= hi:
        for q in range(a, b):  # explicit loops: slice assignments cost ~10 ns each
            row[uintp(base + q)] = 0
        return
    for q in range(a, lo):
        row[uintp(base + q)] = 0
    for q in range(hi, b):
        row[uintp(base + q)] = 0
    if sw == 1:  # contiguous: vectorized
        for q in range(lo, hi):
            row[uintp(base + q)] = src[uintp(q + off)]
    else:
        for q in range(lo, hi):
            row[uintp(base + q)] = src[uintp(q * sw + off)]


@njit(**SERIAL)
def _im2col(xn, cols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, p0):
    """cols[(c * kh + i) * kw + j, p - p0] = padded xn[c, oh * sh + i * dh, ow * sw + j * dw] for the
    output pixels p = oh * wo + ow in [p0, p0 + cols.shape[1]): a block of the image's columns.
    Whole output rows go through one loop with fixed bounds (a block's partial first and last rows
    apart): per-row bounds made the copies 1.6x slower."""
    c_in, h, wd = xn.shape
    p1 = p0 + cols.shape[1]
    first, last = p0 // wo, (p1 - 1) // wo  # the output rows the block touches
    full_lo, full_hi = -(-p0 // wo), p1 // wo  # ... and those it holds whole
    for c in range(c_in):
        for i in range(kh):
            p_lo, p_hi = _valid_range(ho, h, i * dh - ph, sh)  # output rows reading inside x
            for j in range(kw):
                row = cols[(c * kh + i) * kw + j]
                q_lo, q_hi = _valid_range(wo, wd, j * dw - pw, sw)
                off = j * dw - pw
                if first < full_lo or full_lo > full_hi:  # a partial first row
                    end = wo if full_lo <= full_hi else p1 - first * wo
                    src = xn[c, first * sh + i * dh - ph] if p_lo <= first < p_hi else None
                    _im2col_run(row, first * wo - p0, src, p0 - first * wo, end, q_lo, q_hi, sw, off)
                for p in range(full_lo, full_hi):
                    base = p * wo - p0
                    if p < p_lo or p >= p_hi:
                        for q in range(wo):
                            row[uintp(base + q)] = 0
                        continue
                    src = xn[c, p * sh + i * dh - ph]
                    for q in range(q_lo):
                        row[uintp(base + q)] = 0
                    for q in range(q_hi, wo):
                        row[uintp(base + q)] = 0
                    if sw == 1:
                        for q in range(q_lo, q_hi):
                            row[uintp(base + q)] = src[uintp(q + off)]
                    else:
                        for q in range(q_lo, q_hi):
                            row[uintp(base + q)] = src[uintp(q * sw + off)]
                if full_hi <= last and full_lo <= full_hi:  # a partial last row
                    src = xn[c, last * sh + i * dh - ph] if p_lo <= last < p_hi else None
                    _im2col_run(row, last * wo - p0, src, 0, p1 - last * wo, q_lo, q_hi, sw, off)


@njit(**SERIAL)
def _col2im_run(row, base, dst, lo, hi, sw, off):
    """dst[q * sw + off] += row[base + q] for q in [lo, hi)."""
    if sw == 1:
        for q in range(lo, hi):
            dst[uintp(q + off)] += row[uintp(base + q)]
    else:
        for q in range(lo, hi):
            dst[uintp(q * sw + off)] += row[uintp(base + q)]


@njit(**SERIAL)
def _col2im(dcols, dxn, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, p0):
    """The adjoint of _im2col for the same block: dxn accumulates every window element's gradient
    (whole output rows with fixed bounds, as there)."""
    c_in, h, wd = dxn.shape
    p1 = p0 + dcols.shape[1]
    first, last = p0 // wo, (p1 - 1) // wo
    full_lo, full_hi = -(-p0 // wo), p1 // wo
    for c in range(c_in):
        for i in range(kh):
            p_lo, p_hi = _valid_range(ho, h, i * dh - ph, sh)
            for j in range(kw):
                row = dcols[(c * kh + i) * kw + j]
                q_lo, q_hi = _valid_range(wo, wd, j * dw - pw, sw)
                off = j * dw - pw
                for p in range(max(p_lo, full_lo), min(p_hi, full_hi)):
                    dst = dxn[c, p * sh + i * dh - ph]
                    base = p * wo - p0
                    if sw == 1:
                        for q in range(q_lo, q_hi):
                            dst[uintp(q + off)] += row[uintp(base + q)]
                    else:
                        for q in range(q_lo, q_hi):
                            dst[uintp(q * sw + off)] += row[uintp(base + q)]
                for p in range(first, last + 1, max(1, last - first)):  # the block's partial rows
                    if (p * wo < p0 or p * wo + wo > p1) and p_lo <= p < p_hi:
                        _col2im_run(row, p * wo - p0, dxn[c, p * sh + i * dh - ph], max(q_lo, p0 - p * wo),
                                    min(q_hi, p1 - p * wo), sw, off)


@njit(**{**SERIAL, "fastmath": FASTMATH_SUMS})
def _row_sum(row):
    """The sum of a contiguous row in float64, vectorized (reassociated; NaN and inf propagate):
    a serial chain of float64 adds made the stem's bias gradient 0.8 ms of its backward."""
    s = 0.0
    for p in range(row.size):
        s += row[uintp(p)]
    return s


# --- generic GEMM path ------------------------------------------------------------------------

@njit(**SERIAL)
def _gemm_geometry(x, w, ho_wo, wo, kh, kw, sh, sw, ph, pw):
    """(cg, ho, wo, pointwise) of the generic path for w (G, Fg, Kg) and P = ho_wo output pixels
    in rows of wo; pointwise: 1x1, stride 1, no padding (the image is its own column matrix)."""
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    return x.shape[1] // w.shape[0], ho_wo // wo, wo, pointwise


@njit(**PARALLEL)
def _gemm_forward(x, w, b, y, kh, kw, sh, sw, ph, pw, dh, dw, wo, relu, block, cols, part):
    """x (N, C, H, W); w (G, Fg, Kg); b (F,); y (N, G, Fg, P). One chunk of images per thread; the
    columns in blocks of `block` output pixels (all P in one block unless it is huge). Scratch per
    thread (_gemm_scratch): cols (T, G*Kg*block), part (T, Fg*block) for a block's y_g."""
    n_img = x.shape[0]
    chunks = cols.shape[0]
    groups, fg, kg = w.shape
    ho_wo = y.shape[3]
    cg, ho, wo, pointwise = _gemm_geometry(x, w, ho_wo, wo, kh, kw, sh, sw, ph, pw)
    for t in prange(chunks):
        n_lo, n_hi = chunk(t, chunks, n_img)
        for n in range(n_lo, n_hi):
            if pointwise:
                xg = x[n].reshape(groups, cg, ho_wo)
                for g in range(groups):
                    np.dot(w[g], xg[g], y[n, g])
            else:
                for p0 in range(0, ho_wo, block):
                    nb = min(block, ho_wo - p0)
                    col = cols[t, :groups * kg * nb].reshape((groups, kg, nb))
                    _im2col(x[n], col.reshape((groups * kg, nb)), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, p0)
                    for g in range(groups):
                        if nb == ho_wo:
                            np.dot(w[g], col[g], y[n, g])
                        else:
                            yb = part[t, :fg * nb].reshape((fg, nb))
                            np.dot(w[g], col[g], yb)
                            y[n, g, :, p0:p0 + nb] = yb
            for g in range(groups):
                for f in range(fg):
                    bias = b[g * fg + f]
                    row = y[n, g, f]
                    if relu:
                        for p in range(ho_wo):
                            v = row[p] + bias
                            row[p] = 0 if v <= 0 else v  # NaN stays NaN, as torch's relu
                    else:
                        for p in range(ho_wo):
                            row[p] += bias


@njit(**PARALLEL)
def _gemm_backward(dy, x, w, dx, dw_part, db_part, kh, kw, sh, sw, ph, pw, dh, dw, wo, input_grad, block,
                   cols, dcols, part, tmp):
    """dy (N, G, Fg, P); w (G, Fg, Kg); dx (N, C, H, W), written if input_grad; dw_part (T, G, Fg, Kg);
    db_part (T, F). Columns in blocks of `block` output pixels, as _gemm_forward; scratch per thread
    (_gemm_scratch): cols and dcols (T, G*Kg*block), part (T, Fg*block), tmp (T, Fg, Kg)."""
    n_img = x.shape[0]
    chunks = dw_part.shape[0]
    groups, fg, kg = w.shape
    ho_wo = dy.shape[3]
    cg, ho, wo, pointwise = _gemm_geometry(x, w, ho_wo, wo, kh, kw, sh, sw, ph, pw)
    for t in prange(chunks):
        dw_part[t] = 0
        db_part[t] = 0
        n_lo, n_hi = chunk(t, chunks, n_img)
        for n in range(n_lo, n_hi):
            if pointwise:
                xg = x[n].reshape(groups, cg, ho_wo)
                dxg = dx[n].reshape(groups, cg, ho_wo)
                for g in range(groups):
                    np.dot(dy[n, g], xg[g].T, tmp[t])
                    dw_part[t, g] += tmp[t]
                    if input_grad:
                        np.dot(w[g].T, dy[n, g], dxg[g])
            else:
                if input_grad:
                    dx[n] = 0
                for p0 in range(0, ho_wo, block):
                    nb = min(block, ho_wo - p0)
                    col = cols[t, :groups * kg * nb].reshape((groups, kg, nb))
                    _im2col(x[n], col.reshape((groups * kg, nb)), kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, p0)
                    if input_grad:
                        dcol = dcols[t, :groups * kg * nb].reshape((groups, kg, nb))
                    for g in range(groups):
                        if nb == ho_wo:
                            dyb = dy[n, g]
                        else:
                            dyb = part[t, :fg * nb].reshape((fg, nb))
                            dyb[...] = dy[n, g, :, p0:p0 + nb]
                        np.dot(dyb, col[g].T, tmp[t])
                        dw_part[t, g] += tmp[t]
                        if input_grad:
                            np.dot(w[g].T, dyb, dcol[g])
                    if input_grad:
                        _col2im(dcol.reshape((groups * kg, nb)), dx[n], kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, p0)
            for g in range(groups):
                for f in range(fg):
                    db_part[t, g * fg + f] += _row_sum(dy[n, g, f])


# --- Winograd F(4x4, 3x3) for 3x3, stride 1, dilation 1, groups 1 ---------------------------------
# y_tile (4x4) = A^T [(G g G^T) * (B^T d B)] A over 6x6 input tiles d: 36 multiplications per
# channel pair and 16 outputs instead of 144. Each of the 36 positions is one GEMM over channels.
# The backward uses the adjoint maps: dM = A dy A^T, dU = sum_tiles dM V^T, dV = U^T dM,
# dx tile = B dV B^T (overlap-added), dw = G^T dU G. Constants are float32 so float32 data stays
# float32 (float64 data promotes them exactly).
_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@njit(**SERIAL)
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d: the input transform of a 6-vector."""
    return (_4 * d0 - _5 * d2 + d4, d3 + d4 - _4 * (d1 + d2), _4 * (d1 - d2) + d4 - d3,
            _2 * (d3 - d1) + d4 - d2, _2 * (d1 - d3) + d4 - d2, _4 * d1 - _5 * d3 + d5)


@njit(**SERIAL)
def _b(v0, v1, v2, v3, v4, v5):
    """B v: the adjoint of _bt."""
    return (_4 * v0, _4 * (v2 - v1 + v5) + _2 * (v4 - v3), -_5 * v0 - _4 * (v1 + v2) - v3 - v4,
            v1 - v2 + _2 * (v3 - v4) - _5 * v5, v0 + v1 + v2 + v3 + v4, v5)


@njit(**SERIAL)
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m: the output transform of a 6-vector (4 values)."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + _2 * (m3 - m4), m1 + m2 + _4 * (m3 + m4),
            m1 - m2 + _8 * (m3 - m4) + m5)


@njit(**SERIAL)
def _a(e0, e1, e2, e3):
    """A e: the adjoint of _at (6 values)."""
    return (e0, e0 + e1 + e2 + e3, e0 - e1 + e2 - e3, e0 + _2 * e1 + _4 * e2 + _8 * e3,
            e0 - _2 * e1 + _4 * e2 - _8 * e3, e3)


_SIXTH, _TWELFTH, _TWENTYFOURTH = 1 / 6, 1 / 12, 1 / 24  # multiplications: divisions made _g 3x slower


@njit(**SERIAL)
def _g(g0, g1, g2):
    """G g: the filter transform of a 3-vector (6 values)."""
    even, odd = (g0 + g2) * _SIXTH, g1 * _SIXTH
    quarter = g0 * _TWENTYFOURTH + g2 * _SIXTH
    return g0 * 0.25, -even - odd, odd - even, quarter + g1 * _TWELFTH, quarter - g1 * _TWELFTH, g2


@njit(**SERIAL)
def _gt(u0, u1, u2, u3, u4, u5):
    """G^T u: the adjoint of _g (3 values)."""
    s12, d12, s34, d34 = u1 + u2, u2 - u1, u3 + u4, u3 - u4
    return (u0 * 0.25 - s12 * _SIXTH + s34 * _TWENTYFOURTH, d12 * _SIXTH + d34 * _TWELFTH,
            (s34 - s12) * _SIXTH + u5)


@njit(**SERIAL)
def _store6(buf, k, c, q):
    buf[k, c] = q[0]
    buf[k + 1, c] = q[1]
    buf[k + 2, c] = q[2]
    buf[k + 3, c] = q[3]
    buf[k + 4, c] = q[4]
    buf[k + 5, c] = q[5]


# The filter transforms run one filter at a time, vectorized over channels, through a (36, C + 8)
# buffer copied row by row: storing into u (36 rows F*C apart, one L1 set) or computing channel by
# channel took 14 ms, then 5 ms, for c5's weights (1 thread); this takes under 1 ms.
@njit(**PARALLEL)
def _wino_weights(w, u):
    """u[a * 6 + b, f, c] = (G w[f, c] G^T)[a, b], computed in float64."""
    f_out, c_in = w.shape[:2]
    for f in prange(f_out):
        buf = np.empty((36, c_in + 8))
        g = w[f].reshape((c_in, 9))
        for c in range(c_in):
            r0 = _g(np.float64(g[c, 0]), np.float64(g[c, 3]), np.float64(g[c, 6]))  # G along the columns
            r1 = _g(np.float64(g[c, 1]), np.float64(g[c, 4]), np.float64(g[c, 7]))
            r2 = _g(np.float64(g[c, 2]), np.float64(g[c, 5]), np.float64(g[c, 8]))
            _store6(buf, 0, c, _g(r0[0], r1[0], r2[0]))  # then along the rows
            _store6(buf, 6, c, _g(r0[1], r1[1], r2[1]))
            _store6(buf, 12, c, _g(r0[2], r1[2], r2[2]))
            _store6(buf, 18, c, _g(r0[3], r1[3], r2[3]))
            _store6(buf, 24, c, _g(r0[4], r1[4], r2[4]))
            _store6(buf, 30, c, _g(r0[5], r1[5], r2[5]))
        for k in range(36):
            for c in range(c_in):
                u[k, f, c] = buf[k, c]


@njit(**PARALLEL)
def _wino_weight_grad(du, dw):
    """dw[f, c] = G^T du[:, f, c] G, computed in float64."""
    f_out, c_in = dw.shape[:2]
    for f in prange(f_out):
        buf = np.empty((36, c_in + 8))
        for k in range(36):
            for c in range(c_in):
                buf[k, c] = du[k, f, c]
        g = dw[f].reshape((c_in, 9))
        for c in range(c_in):
            h0 = _gt(buf[0, c], buf[1, c], buf[2, c], buf[3, c], buf[4, c], buf[5, c])  # G^T along the rows
            h1 = _gt(buf[6, c], buf[7, c], buf[8, c], buf[9, c], buf[10, c], buf[11, c])
            h2 = _gt(buf[12, c], buf[13, c], buf[14, c], buf[15, c], buf[16, c], buf[17, c])
            h3 = _gt(buf[18, c], buf[19, c], buf[20, c], buf[21, c], buf[22, c], buf[23, c])
            h4 = _gt(buf[24, c], buf[25, c], buf[26, c], buf[27, c], buf[28, c], buf[29, c])
            h5 = _gt(buf[30, c], buf[31, c], buf[32, c], buf[33, c], buf[34, c], buf[35, c])
            for j in range(3):  # then along the columns
                col = _gt(h0[j], h1[j], h2[j], h3[j], h4[j], h5[j])
                g[c, j] = col[0]
                g[c, 3 + j] = col[1]
                g[c, 6 + j] = col[2]


# Transformed blocks are stored flat, (36, channels * tiles + _PAD): with an unpadded row the 36
# rows sit a multiple of 4 KiB apart, every store of a tile hits one L1 set, and the input
# transform of c2 took 30 ms instead of 4 ms (/tmp/prof4.py-style stage timings, 1 thread).
_PAD = 16


@njit(**SERIAL)
def _input_tiles(x, v, strip, rows, s0, ns, th, tw, tb, ph, pw):
    """v[a * 6 + b, c * tb + si * tw + tj] = (B^T d B)[a, b] for the tiles of strips s0 .. s0 + ns."""
    c_in, h, wd = x.shape[1:]
    width = strip.shape[1]
    lo, hi = min(pw, width), min(pw + wd, width)
    for si in range(ns):
        n, ti = (s0 + si) // th, (s0 + si) % th
        top = 4 * ti - ph
        for c in range(c_in):
            if 0 <= top and top + 6 <= h:  # six rows inside x: transform them in place
                rows[:, :lo] = 0
                rows[:, hi:] = 0
                x0, x1, x2, x3, x4, x5 = x[n, c, top], x[n, c, top + 1], x[n, c, top + 2], \
                    x[n, c, top + 3], x[n, c, top + 4], x[n, c, top + 5]
                for col in range(lo, hi):  # B^T along the columns, vectorized over the strip
                    q = col - pw
                    r0, r1, r2, r3, r4, r5 = _bt(x0[q], x1[q], x2[q], x3[q], x4[q], x5[q])
                    rows[0, col] = r0
                    rows[1, col] = r1
                    rows[2, col] = r2
                    rows[3, col] = r3
                    rows[4, col] = r4
                    rows[5, col] = r5
            else:  # padding rows: through a zero-filled copy of the strip
                for r in range(6):
                    hr = top + r
                    dst = strip[r]
                    dst[:] = 0
                    if 0 <= hr < h:
                        src = x[n, c, hr]
                        for col in range(lo, hi):  # an explicit loop: slice assignment copies via a temporary
                            dst[col] = src[col - pw]
                for col in range(width):
                    r0, r1, r2, r3, r4, r5 = _bt(strip[0, col], strip[1, col], strip[2, col],
                                                 strip[3, col], strip[4, col], strip[5, col])
                    rows[0, col] = r0
                    rows[1, col] = r1
                    rows[2, col] = r2
                    rows[3, col] = r3
                    rows[4, col] = r4
                    rows[5, col] = r5
            base = c * tb + si * tw
            for a in range(6):  # then along the rows, tile by tile: six sequential store streams
                q = rows[a]
                for tj in range(tw):
                    o = 4 * tj
                    v0, v1, v2, v3, v4, v5 = _bt(q[o], q[o + 1], q[o + 2], q[o + 3], q[o + 4], q[o + 5])
                    v[a * 6, base + tj] = v0
                    v[a * 6 + 1, base + tj] = v1
                    v[a * 6 + 2, base + tj] = v2
                    v[a * 6 + 3, base + tj] = v3
                    v[a * 6 + 4, base + tj] = v4
                    v[a * 6 + 5, base + tj] = v5


@njit(**PARALLEL)
def _wino_forward(x, u, b, y, ph, pw, relu, strips_per_block, bad, v, m, strip, rows, out6, out4):
    """y = conv2d(x, w) + b (relu'd if asked) from u = the transformed w; bad[t] > 0 flags a
    non-finite output of thread t (the caller then recomputes on the GEMM path). Scratch per thread
    t: v[t], m[t], strip[t], rows[t], out6[t], out4[t] (shapes: _wino_scratch)."""
    n_img, c_in = x.shape[:2]
    f_out, ho, wo = y.shape[1:]
    chunks = v.shape[0]
    th, tw = (ho + 3) // 4, (wo + 3) // 4
    tb = strips_per_block * tw
    for t in prange(chunks):
        v[t] = 0  # a partial block's unused columns must stay finite
        check = 0.0
        n_lo, n_hi = chunk(t, chunks, n_img)
        s_lo, s_hi = n_lo * th, n_hi * th
        for s0 in range(s_lo, s_hi, strips_per_block):
            ns = min(strips_per_block, s_hi - s0)
            _input_tiles(x, v[t], strip[t], rows[t], s0, ns, th, tw, tb, ph, pw)
            for xi in range(36):
                np.dot(u[xi], v[t, xi, :c_in * tb].reshape((c_in, tb)), m[t, xi, :f_out * tb].reshape((f_out, tb)))
            for f in range(f_out):
                bias = b[f]
                for si in range(ns):
                    n, ti = (s0 + si) // th, (s0 + si) % th
                    base = f * tb + si * tw
                    for a in range(6):
                        q = m[t]
                        for tj in range(tw):
                            k = base + tj
                            o0, o1, o2, o3 = _at(q[a * 6, k], q[a * 6 + 1, k], q[a * 6 + 2, k],
                                                 q[a * 6 + 3, k], q[a * 6 + 4, k], q[a * 6 + 5, k])
                            out6[t, a, 4 * tj] = o0
                            out6[t, a, 4 * tj + 1] = o1
                            out6[t, a, 4 * tj + 2] = o2
                            out6[t, a, 4 * tj + 3] = o3
                    for col in range(4 * tw):  # A^T along the columns, vectorized over the strip
                        y0, y1, y2, y3 = _at(out6[t, 0, col], out6[t, 1, col], out6[t, 2, col],
                                             out6[t, 3, col], out6[t, 4, col], out6[t, 5, col])
                        out4[t, 0, col] = y0
                        out4[t, 1, col] = y1
                        out4[t, 2, col] = y2
                        out4[t, 3, col] = y3
                    for r in range(min(4, ho - 4 * ti)):
                        dst = y[n, f, 4 * ti + r]
                        src = out4[t, r]
                        for col in range(wo):
                            val = src[col] + bias
                            check += val * 0  # NaN once any output is inf or NaN
                            dst[col] = (0 if val <= 0 else val) if relu else val
        bad[t] = 0 if check == 0 else 1


@njit(**SERIAL)
def _grad_tiles(dy, m, grad4, grad6, db, s0, ns, th, tw, tb):
    """m[a * 6 + b, f * tb + si * tw + tj] = (A dy_tile A^T)[a, b] for the output-gradient tiles of
    strips s0 .. s0 + ns (4x4, zero past the edges); db[f] += their sum."""
    f_out, ho, wo = dy.shape[1:]
    for f in range(f_out):
        for si in range(ns):
            n, ti = (s0 + si) // th, (s0 + si) % th
            grad4[...] = 0
            s = 0.0
            for r in range(min(4, ho - 4 * ti)):
                src = dy[n, f, 4 * ti + r]
                for col in range(wo):
                    grad4[r, col] = src[col]
                    s += src[col]
            db[f] += s
            for col in range(4 * tw):  # A along the columns, vectorized over the strip
                e0, e1, e2, e3, e4, e5 = _a(grad4[0, col], grad4[1, col], grad4[2, col], grad4[3, col])
                grad6[0, col] = e0
                grad6[1, col] = e1
                grad6[2, col] = e2
                grad6[3, col] = e3
                grad6[4, col] = e4
                grad6[5, col] = e5
            base = f * tb + si * tw
            for a in range(6):
                q = grad6[a]
                for tj in range(tw):
                    o = 4 * tj
                    e0, e1, e2, e3, e4, e5 = _a(q[o], q[o + 1], q[o + 2], q[o + 3])
                    m[a * 6, base + tj] = e0
                    m[a * 6 + 1, base + tj] = e1
                    m[a * 6 + 2, base + tj] = e2
                    m[a * 6 + 3, base + tj] = e3
                    m[a * 6 + 4, base + tj] = e4
                    m[a * 6 + 5, base + tj] = e5


@njit(**SERIAL)
def _input_grad_tiles(dv, dx, rows, strip, s0, ns, th, tw, tb, ph, pw):
    """dx += B dV_tile B^T for the input tiles of strips s0 .. s0 + ns (6x6, overlap-added, clipped
    to dx); dv[a * 6 + b, c * tb + si * tw + tj] holds dV."""
    c_in, h, wd = dx.shape[1:]
    width = strip.shape[1]
    lo, hi = min(pw, width), min(pw + wd, width)
    for c in range(c_in):
        for si in range(ns):
            n, ti = (s0 + si) // th, (s0 + si) % th
            rows[...] = 0
            base = c * tb + si * tw
            for a in range(6):
                q = rows[a]
                for tj in range(tw):
                    k = base + tj
                    o = 4 * tj
                    d0, d1, d2, d3, d4, d5 = _b(dv[a * 6, k], dv[a * 6 + 1, k], dv[a * 6 + 2, k],
                                                dv[a * 6 + 3, k], dv[a * 6 + 4, k], dv[a * 6 + 5, k])
                    q[o] += d0
                    q[o + 1] += d1
                    q[o + 2] += d2
                    q[o + 3] += d3
                    q[o + 4] += d4
                    q[o + 5] += d5
            for col in range(lo, hi):  # B along the columns, vectorized over the strip
                d0, d1, d2, d3, d4, d5 = _b(rows[0, col], rows[1, col], rows[2, col],
                                            rows[3, col], rows[4, col], rows[5, col])
                strip[0, col] = d0
                strip[1, col] = d1
                strip[2, col] = d2
                strip[3, col] = d3
                strip[4, col] = d4
                strip[5, col] = d5
            for r in range(6):
                hr = 4 * ti - ph + r
                if 0 <= hr < h:
                    dst = dx[n, c, hr]
                    src = strip[r]
                    for col in range(lo, hi):
                        dst[col - pw] += src[col]


@njit(**SERIAL)
def _images_finite(a, n_lo, n_hi):
    """No inf or NaN in a[n_lo:n_hi] (a 4-D array)."""
    check = 0.0
    for n in range(n_lo, n_hi):
        for c in range(a.shape[1]):
            for r in range(a.shape[2]):
                for col in range(a.shape[3]):
                    check += a[n, c, r, col] * 0  # NaN once any value is inf or NaN
    return check == 0


@njit(**PARALLEL)
def _wino_backward(dy, x, u, dx, du_part, db_part, ph, pw, strips_per_block, bad, v, m, strip, rows, grad6,
                   grad4, tmp):
    """dx, per-thread partials of dU (36, F, C) and db; bad[t] > 0 flags a non-finite dx. Scratch
    per thread t as _wino_forward's (grad6, grad4 in place of out6, out4), and tmp[t] (F, C)."""
    n_img, c_in = x.shape[:2]
    f_out, ho, wo = dy.shape[1:]
    chunks = du_part.shape[0]
    th, tw = (ho + 3) // 4, (wo + 3) // 4
    tb = strips_per_block * tw
    for t in prange(chunks):
        v[t] = 0
        m[t] = 0
        du_part[t] = 0
        db_part[t] = 0
        n_lo, n_hi = chunk(t, chunks, n_img)
        dx[n_lo:n_hi] = 0
        for s0 in range(n_lo * th, n_hi * th, strips_per_block):
            ns = min(strips_per_block, n_hi * th - s0)
            if ns < strips_per_block:  # the unused columns of a partial block must not add to dU
                for xi in range(36):
                    for f in range(f_out):
                        m[t, xi, f * tb + ns * tw: (f + 1) * tb] = 0
            _input_tiles(x, v[t], strip[t], rows[t], s0, ns, th, tw, tb, ph, pw)
            _grad_tiles(dy, m[t], grad4[t], grad6[t], db_part[t], s0, ns, th, tw, tb)
            for xi in range(36):
                mx = m[t, xi, :f_out * tb].reshape((f_out, tb))
                vx = v[t, xi, :c_in * tb].reshape((c_in, tb))
                np.dot(mx, vx.T, tmp[t])
                du_part[t, xi] += tmp[t]
                np.dot(u[xi].T, mx, vx)  # v now holds dV
            _input_grad_tiles(v[t], dx, rows[t], strip[t], s0, ns, th, tw, tb, ph, pw)
        bad[t] = 0 if _images_finite(dx, n_lo, n_hi) else 1


# --- depthwise (groups == C): direct, a plane at a time -------------------------------------------
# Filter f reads input channel f // m (m = F // C, the channel multiplier). An input plane, zero-padded,
# is split into its sh * sw phase planes (hph, wph) (pool.py's _split_phases): padded element (r, c) at
# phase (r % sh, c % sw), position (r // sh, c // sw). Output (oh, ow), at q = oh * wph + ow, reads tap
# (i, j) at starts[i * kw + j] + q: each tap is one contiguous pass over all the plane's outputs (the
# columns past wo are scratch, dropped), a loop LLVM vectorizes (rows of 14-32 outputs alone would be
# mostly remainder). The backward, in one pass over x and dy: the weight gradient as one dot product per
# image and tap of dy (at pitch wph, zero in its scratch columns) with the tap's run; the input gradient
# as the transpose of the forward's passes, a gather: each phase plane of dx, padded, is the sum over
# its taps of w * dy shifted (zero around it), then x's part goes to dx. Those passes multiply w by the
# zeros around dy: a non-finite w takes the GEMM path for the backward (conv2d_backward). Per-thread
# scratch from the workspace (_dw_shapes), bounded by DEPTHWISE_BYTES (else the GEMM path).

@njit(inline="always")
def _dw_taps(acc, ao, src, starts, wf, f, k0, k1, n, add):
    """acc[ao + q] (+)= sum over taps k in [k0, k1) of wf[f, k] * src[starts[k] + q] for q < n (overwritten
    unless add): all 9 taps of a 3x3 kernel in one pass, else three per pass (each pass loads and stores
    acc)."""
    if k1 - k0 == 9:
        w0, w1, w2, w3, w4, w5, w6, w7, w8 = (wf[f, k0], wf[f, k0 + 1], wf[f, k0 + 2], wf[f, k0 + 3], wf[f, k0 + 4],
                                              wf[f, k0 + 5], wf[f, k0 + 6], wf[f, k0 + 7], wf[f, k0 + 8])
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = (starts[k0], starts[k0 + 1], starts[k0 + 2], starts[k0 + 3],
                                              starts[k0 + 4], starts[k0 + 5], starts[k0 + 6], starts[k0 + 7],
                                              starts[k0 + 8])
        for q in range(n):
            v = (w0 * src[uintp(s0 + q)] + w1 * src[uintp(s1 + q)] + w2 * src[uintp(s2 + q)]
                 + w3 * src[uintp(s3 + q)] + w4 * src[uintp(s4 + q)] + w5 * src[uintp(s5 + q)]
                 + w6 * src[uintp(s6 + q)] + w7 * src[uintp(s7 + q)] + w8 * src[uintp(s8 + q)])
            acc[uintp(ao + q)] = acc[uintp(ao + q)] + v if add else v
        return
    k = k0
    while k < k1:
        first = k == k0 and not add
        if k + 3 > k1:  # the last one or two taps: a pass each
            w0, s0 = wf[f, k], starts[k]
            for q in range(n):
                v = w0 * src[uintp(s0 + q)]
                acc[uintp(ao + q)] = v if first else acc[uintp(ao + q)] + v
            k += 1
            continue
        w0, w1, w2 = wf[f, k], wf[f, k + 1], wf[f, k + 2]
        s0, s1, s2 = starts[k], starts[k + 1], starts[k + 2]
        for q in range(n):
            v = w0 * src[uintp(s0 + q)] + w1 * src[uintp(s1 + q)] + w2 * src[uintp(s2 + q)]
            acc[uintp(ao + q)] = v if first else acc[uintp(ao + q)] + v
        k += 3


@njit(inline="always")
def _dw_pitched(src, dst, do, rows, pitch, width):
    """dst[do + r * pitch + k] = src[r * width + k] for r < rows, k < width (a plane of dy at pitch wph)."""
    for r in range(rows):
        for k in range(width):
            dst[uintp(do + r * pitch + k)] = src[uintp(r * width + k)]


@njit(**{**SERIAL, "fastmath": FASTMATH_SUMS})
def _dw_dot(a, ao, b, bo, n, zero):
    """zero + the sum of a[ao + q] * b[bo + q] for q < n, in zero's type (the data's), vectorized
    (reassociated)."""
    s = zero
    for q in range(n):
        s += a[uintp(ao + q)] * b[uintp(bo + q)]
    return s


@njit(**SERIAL)
def _dw_image_grads(dt, off, pt, starts, dwf, db, f, ho, wo, wph, zero):
    """dwf[f, k] += the dot product of dy (at dt[off:], pitch wph, zero in its scratch columns) with tap k's
    run of the phase planes, for every tap k; db[f] += dy's sum. A non-finite product (an inf of x in a
    scratch column times zero, or a true one) is recomputed row by row over the valid columns."""
    n = (ho - 1) * wph + wo
    for k in range(starts.size):
        d = _dw_dot(dt, off, pt, starts[k], n, zero)
        if d - d != 0:
            d = zero
            for oh in range(ho):
                d += _dw_dot(dt, off + oh * wph, pt, starts[k] + oh * wph, wo, zero)
        dwf[f, k] += d
    db[f] += _dw_sum(dt, off, n, zero)


@njit(**{**SERIAL, "fastmath": FASTMATH_SUMS})
def _dw_sum(a, ao, n, zero):
    s = zero
    for q in range(n):
        s += a[uintp(ao + q)]
    return s


@njit(**SERIAL)
def _merge_phases(phases, plane, hp, wp, sh, sw, ph, pw, hph, wph):
    """_split_phases undone: every element of x's plane from its place in the phase planes, zero where
    no window reaches (the rows and columns past the padded extent hp, wp)."""
    height, width = plane.shape
    flat = plane.reshape(height * width)
    rows, cols = min(height, hp - ph), max(0, min(width, wp - pw))
    size = hph * wph
    mi, ri = ph % sh, ph // sh
    for ih in range(height):
        do = ih * width
        if ih >= rows:
            for k in range(width):
                flat[uintp(do + k)] = 0
            continue
        row = mi * sw * size + ri * wph
        if sw == 1:
            for k in range(cols):
                flat[uintp(do + k)] = phases[uintp(row + pw + k)]
        elif sw == 2:  # x's even columns from phase pw % 2, its odd ones from the other: one interleaved store
            even, odd = row + (pw % 2) * size + pw // 2, row + ((pw + 1) % 2) * size + (pw + 1) // 2
            for k in range(cols // 2):
                flat[uintp(do + 2 * k)] = phases[uintp(even + k)]
                flat[uintp(do + 2 * k + 1)] = phases[uintp(odd + k)]
            if cols % 2:
                flat[uintp(do + cols - 1)] = phases[uintp(even + cols // 2)]
        else:
            mj, cj = pw % sw, pw // sw
            for iw in range(min(sw, cols)):
                so = row + mj * size + cj
                for k in range((cols - iw + sw - 1) // sw):
                    flat[uintp(do + iw + k * sw)] = phases[uintp(so + k)]
                mj += 1
                if mj == sw:
                    mj, cj = 0, cj + 1
        for k in range(cols, width):
            flat[uintp(do + k)] = 0
        mi += 1
        if mi == sh:
            mi, ri = 0, ri + 1


@njit(**PARALLEL)
def _dw_forward(x, wf, b, y, starts, wo, sh, sw, ph, pw, hp, wp, hph, wph, relu, phases, acc):
    """x (N, C, H, W); wf (F, KH * KW); y (N, F, Ho * Wo). A chunk of x's planes per thread, each split
    once for its m filters; scratch per thread: phases (sh * sw * hph * wph), acc (Ho * wph)."""
    n_img, c_in = x.shape[:2]
    m = wf.shape[0] // c_in
    ho = y.shape[2] // wo
    n = (ho - 1) * wph + wo
    slots = phases.shape[0]
    for t in prange(slots):
        pt, at = phases[t], acc[t]
        pt[:] = 0  # the padding: _split_phases writes x's part only
        lo, hi = chunk(t, slots, n_img * c_in)
        for p in range(lo, hi):
            img, c = p // c_in, p % c_in
            _split_phases(x[img, c], pt, hp, wp, sh, sw, ph, pw, hph, wph)
            for f in range(c * m, c * m + m):
                _dw_taps(at, 0, pt, starts, wf, f, 0, starts.size, n, False)
                out, bias = y[img, f], b[f]
                for oh in range(ho):
                    for ow in range(wo):
                        v = at[uintp(oh * wph + ow)] + bias
                        if relu:
                            v = 0 if v <= 0 else v  # NaN stays NaN, as torch's relu
                        out[uintp(oh * wo + ow)] = v


@njit(**PARALLEL)
def _dw_backward(dy, x, wf, dx, dw_part, db_part, starts, wg, gather, bounds, wo, sh, sw, ph, pw, hp, wp, hph, wph,
                 input_grad, phases, dyp, dxp):
    """dx (if input_grad) and per-thread partials of dw (T, F, KH * KW) and db (T, F) in one pass over x and dy
    in memory order: a chunk of (image, channel) planes per thread (walking each filter's images instead,
    a page apart, made the weight gradient 2x slower on 1 thread). Per plane: x split once; each of its
    m filters' dy copied once (at dyp[off:], pitch wph, zero around it) for its dot products and its
    gather into dx's phase planes (dxp): phase plane g of dxp from the taps bounds[g]:bounds[g + 1] of wg
    and gather (the taps reordered by phase; zero without any); then dx's plane written. Scratch per
    thread: phases, dyp (off + a phase plane's size), dxp."""
    n_img, c_in = x.shape[:2]
    m = wf.shape[0] // c_in
    ho = dy.shape[2] // wo
    size = hph * wph  # a phase plane's
    off = 0
    for k in range(gather.size):
        off = max(off, gather[k])
    slots = phases.shape[0]
    for t in prange(slots):
        pt, dt, qt = phases[t], dyp[t], dxp[t]
        pt[:] = 0
        dt[:] = 0
        zero = dt[0]  # 0 in the data's type: the sums accumulate in it, as the GEMM path's
        dw_part[t] = 0
        db_part[t] = 0
        lo, hi = chunk(t, slots, n_img * c_in)
        for p in range(lo, hi):
            img, c = p // c_in, p % c_in
            _split_phases(x[img, c], pt, hp, wp, sh, sw, ph, pw, hph, wph)
            for f in range(c * m, c * m + m):
                _dw_pitched(dy[img, f], dt, off, ho, wph, wo)
                _dw_image_grads(dt, off, pt, starts, dw_part[t], db_part[t], f, ho, wo, wph, zero)
                for g in range(sh * sw if input_grad else 0):
                    if bounds[g] < bounds[g + 1]:
                        _dw_taps(qt, g * size, dt, gather, wg, f, bounds[g], bounds[g + 1], size, f > c * m)
                    elif f == c * m:
                        qt[g * size:(g + 1) * size] = 0
            if input_grad:
                _merge_phases(qt, dx[img, c], hp, wp, sh, sw, ph, pw, hph, wph)


# Each thread's depthwise scratch (a padded plane's phases; in the backward twice more, and dy at their
# pitch) is bounded: past this, the GEMM path (huge paddings, strides or images).
DEPTHWISE_BYTES = 8 << 20


def _dw_geometry(w, ho, wo, sh, sw, dh, dw):
    """(hp, wp, hph, wph): the padded extent the windows span and the shape of its phase planes."""
    kh, kw = w.shape[2:]
    hp, wp = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    return hp, wp, -(-hp // sh), -(-wp // sw)


def _dw_starts(w, sh, sw, dh, dw, hph, wph):
    """Tap (i, j)'s offset in the phase planes, at i * KW + j: phase (i * dh % sh, j * dw % sw), position
    (i * dh // sh, j * dw // sw)."""
    i = np.arange(w.shape[2], dtype=np.int64)[:, None] * dh
    j = np.arange(w.shape[3], dtype=np.int64)[None, :] * dw
    return (((i % sh) * sw + j % sw) * (hph * wph) + (i // sh) * wph + j // sw).reshape(-1)


def _dw_shapes(x, w, y_shape, sh, sw, dh, dw, n_threads, backward, input_grad):
    """The depthwise path's scratch, slots for min(n_threads, N * C) chunks of planes: per slot, phases
    and acc (_dw_forward); the backward's phases, dyp (dy's offset + a phase plane's size),
    dxp (if input_grad) and the partials of dw and db (_dw_backward). The scratch rows fill whole cache
    lines (64 bytes): threads share none."""
    n, f, ho, wo = y_shape
    _, _, hph, wph = _dw_geometry(w, ho, wo, sh, sw, dh, dw)
    size, line = sh * sw * hph * wph, 64 // x.itemsize

    def lined(elements):
        return -(-elements // line) * line

    slots = max(1, min(n_threads, n * x.shape[1]))
    if not backward:
        return [(slots, lined(size)), (slots, lined(ho * wph))]
    # dy's offset in dyp, the largest offset of a tap inside its phase plane, is below a phase plane's size
    return [(slots, lined(size)), (slots, lined(2 * hph * wph)), (slots, lined(size) if input_grad else 0),
            (slots, f, w.shape[2] * w.shape[3]), (slots, f)]


def _dw_carve(workspace, shapes):
    """_carve from the workspace's first cache line boundary: the threads' rows then share no line."""
    return _carve(workspace[(-workspace.ctypes.data % 64) // workspace.itemsize:], shapes)


def _depthwise_fits(x, w, y_shape, sh, sw, dh, dw, groups):
    """Depthwise (one input channel per group), outputs to compute, a thread's scratch within DEPTHWISE_BYTES."""
    if groups != x.shape[1] or y_shape[0] == 0 or y_shape[2] == 0 or y_shape[3] == 0:
        return False
    per_thread = _elements([s[1:] for s in _dw_shapes(x, w, y_shape, sh, sw, dh, dw, 1, True, True)])
    return per_thread * x.itemsize <= DEPTHWISE_BYTES


def _dw_params(w, y_shape, sh, sw, dh, dw):
    """The loops' geometry parameters: starts, wo, (hp, wp, hph, wph)."""
    ho, wo = y_shape[2:]
    hp, wp, hph, wph = _dw_geometry(w, ho, wo, sh, sw, dh, dw)
    return _dw_starts(w, sh, sw, dh, dw, hph, wph), wo, hp, wp, hph, wph


def _depthwise_forward(x, w, bias, y, sh, sw, ph, pw, dh, dw, relu, n_threads, workspace):
    n, f, ho, wo = y.shape
    phases, acc = _dw_carve(workspace, _dw_shapes(x, w, y.shape, sh, sw, dh, dw, n_threads, False, False))
    starts, wo, hp, wp, hph, wph = _dw_params(w, y.shape, sh, sw, dh, dw)
    _dw_forward(x, w.reshape(f, -1), bias, y.reshape(n, f, ho * wo), starts, wo, sh, sw, ph, pw, hp, wp, hph, wph,
                relu, phases, acc)


def _depthwise_backward(dy, x, w, dx, dw_out, db, sh, sw, ph, pw, dh, dw, n_threads, workspace):
    """dx (None: not computed), dw_out, db by the depthwise loops (w finite: see the section's comment)."""
    n, f, ho, wo = dy.shape
    shapes = _dw_shapes(x, w, dy.shape, sh, sw, dh, dw, n_threads, True, dx is not None)
    phases, dyp, dxp, dw_part, db_part = _dw_carve(workspace, shapes)
    starts, wo, hp, wp, hph, wph = _dw_params(w, dy.shape, sh, sw, dh, dw)
    wf = w.reshape(f, -1)
    # the input gradient's taps by phase plane: dyp[gather[k] + z] is the dy that tap k adds to position z
    # of its phase plane (dy at dyp[max(inner):], inner the taps' offsets inside their phase plane)
    phase, inner = np.divmod(starts, hph * wph)
    order = np.argsort(phase, kind="stable")
    bounds = np.searchsorted(phase[order], np.arange(sh * sw + 1))
    gather = (inner.max() - inner)[order]
    _dw_backward(dy.reshape(n, f, ho * wo), x, wf, x if dx is None else dx, dw_part, db_part, starts,
                 np.ascontiguousarray(wf[:, order]), gather, bounds, wo, sh, sw, ph, pw, hp, wp, hph, wph,
                 dx is not None, phases, dyp, dxp)
    _merge(dw_part.reshape(dw_part.shape[0], -1), dw_out.reshape(-1))
    _merge(db_part, db)


# --- public kernels ---------------------------------------------------------------------------
# Signatures follow the contract (fastnn/conv.py): inputs, outputs, parameters, n_threads. Images
# are split into min(n_threads, N) static chunks; the dispatcher caps BLAS at one thread (Plan.blas).

@njit(**PARALLEL)
def _merge(parts, out):
    """out[i] = the sum over t of parts[t, i] (the per-thread partials of a reduction)."""
    for i in prange(out.size):
        s = parts[0, i]
        for t in range(1, parts.shape[0]):
            s += parts[t, i]
        out[i] = s


def _winograd_fits(x, w, y_shape, sh, sw, dh, dw, groups):
    """3x3, stride 1, dilation 1, ungrouped, with enough channels and output tiles.

    Measured (float32, 1 thread, CPU time of forward and backward, Winograd vs the GEMM path):
    Winograd is 2x faster on c2/c3/c5 and down to 8 channels (32x8x8x32: 1.4 vs 2.6 ms); with
    3 channels it loses (1.46 vs 1.24 ms), with 4 it wins (0.81 vs 1.24 ms). The weight transform
    is a fixed cost: 64 output tiles in all (4 x 16x16 images) break even, 128 win 1.6x, 16 lose.
    """
    c, f = x.shape[1], w.shape[0]
    tiles = y_shape[0] * ((y_shape[2] + 3) // 4) * ((y_shape[3] + 3) // 4)
    return (w.shape[2:] == (3, 3) and (sh, sw, dh, dw) == (1, 1, 1, 1) and groups == 1
            and c >= 4 and f >= 4 and tiles >= 96)


def _strips_per_block(x, tw):
    """Tile strips per GEMM block: the transformed input block (36 x C x tiles) near 1 MiB.

    Measured (float32, 1 thread, fwd/bwd CPU ms) for budgets 0.25/0.5/1/2/4 MiB: c2 16.5/14.7/
    14.5/16.2/17.4 and 33/30/28/30/30; c5 18.6/13.6/11.1/11.6/13.7 and 46/32/25/24/27."""
    tiles = max(tw, (1 << 20) // (36 * x.shape[1] * x.itemsize))
    return max(1, tiles // tw)


def _carve(workspace, shapes):
    """Consecutive C-contiguous arrays of these shapes, cut from the dispatcher's workspace."""
    arrays, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        arrays.append(workspace[start:start + size].reshape(shape))
        start += size
    return arrays


def _elements(shapes):
    return sum(math.prod(shape) for shape in shapes)


def _wino_shapes(x, f_out, wo, chunks, backward):
    """The Winograd path's scratch: u (36, F, C), then per thread v, m, strip, rows and the two
    output-transform rows (_wino_forward); the backward adds tmp and the partials of dU and db."""
    c_in, tw = x.shape[1], (wo + 3) // 4
    tb, width = _strips_per_block(x, tw) * tw, 4 * tw + 2
    shapes = [(36, f_out, c_in), (chunks, 36, c_in * tb + _PAD), (chunks, 36, f_out * tb + _PAD),
              (chunks, 6, width), (chunks, 6, width), (chunks, 6, 4 * tw), (chunks, 4, 4 * tw)]
    if backward:
        shapes += [(chunks, f_out, c_in), (chunks, 36, f_out, c_in), (chunks, f_out)]
    return shapes


def _gemm_shapes(x, w, ho_wo, kh_kw_s_p, groups, chunks, backward, input_grad):
    """The im2col path's scratch per thread (_gemm_forward / _gemm_backward: cols, [dcols,] part
    [, tmp, dw_part, db_part]); kh_kw_s_p = (kh, kw, sh, sw, ph, pw)."""
    f, fg, kg = w.shape[0], w.shape[0] // groups, w.shape[1] * w.shape[2] * w.shape[3]
    block = _block(x, w, ho_wo)
    width = 0 if kh_kw_s_p == (1, 1, 1, 1, 0, 0) else groups * kg * block
    part = (chunks, fg * block if block < ho_wo else 0)
    if not backward:
        return [(chunks, width), part]
    return [(chunks, width), (chunks, width if input_grad else 0), part, (chunks, fg, kg),
            (chunks, groups, fg, kg), (chunks, f)]


def _scratch_elements(x, w, y_shape, sh, sw, ph, pw, dh, dw, groups, n_threads, backward, input_grad):
    """Workspace elements of the call's path: depthwise's or Winograd's where it fits (the GEMM path after a
    non-finite Winograd result allocates its own: sizing every call for both paths doubled the
    peak memory of 3x3 layers), else the im2col path's."""
    n, f, ho, wo = y_shape
    chunks = max(1, min(n_threads, n))
    if _depthwise_fits(x, w, y_shape, sh, sw, dh, dw, groups):  # (+ a cache line: _dw_carve aligns the start)
        return _elements(_dw_shapes(x, w, y_shape, sh, sw, dh, dw, n_threads, backward, input_grad)) + 64 // x.itemsize
    if _winograd_fits(x, w, y_shape, sh, sw, dh, dw, groups):
        return _elements(_wino_shapes(x, f, wo, chunks, backward))
    return _elements(_gemm_shapes(x, w, ho * wo, tuple(w.shape[2:]) + (sh, sw, ph, pw), groups, chunks,
                                  backward, input_grad))


def _gemm_scratch(workspace, shapes, dtype):
    """The im2col path's arrays, from the workspace when it was sized for that path."""
    if workspace.size < _elements(shapes):
        workspace = np.empty(_elements(shapes), dtype)
    return _carve(workspace, shapes)


def _winograd_forward(x, w, bias, y, ph, pw, relu, chunks, workspace):
    """y by Winograd; False when an output is not finite (y is then to be recomputed)."""
    u, v, m, strip, rows, out6, out4 = _carve(workspace, _wino_shapes(x, w.shape[0], y.shape[3], chunks, False))
    _wino_weights(w, u)
    bad = np.zeros(chunks, np.int64)
    _wino_forward(x, u, bias, y, ph, pw, relu, _strips_per_block(x, (y.shape[3] + 3) // 4), bad,
                  v, m, strip, rows, out6, out4)
    return not bad.any()


def _winograd_backward(dy, x, w, dx, dw, db, ph, pw, chunks, workspace):
    """dx, dw, db by Winograd; False when one of them is not finite (to be recomputed)."""
    u, v, m, strip, rows, grad6, grad4, tmp, du_part, db_part = _carve(
        workspace, _wino_shapes(x, w.shape[0], dy.shape[3], chunks, True))
    _wino_weights(w, u)
    bad = np.zeros(chunks, np.int64)
    _wino_backward(dy, x, u, dx, du_part, db_part, ph, pw, _strips_per_block(x, (dy.shape[3] + 3) // 4), bad,
                   v, m, strip, rows, grad6, grad4, tmp)
    du = u  # u is no longer needed: it receives the merged dU
    _merge(du_part.reshape(chunks, -1), du.reshape(-1))
    _wino_weight_grad(du, dw)
    _merge(db_part, db)
    return not bad.any() and _images_finite(dw, 0, dw.shape[0])


# Each thread's im2col columns (and their gradient) cover blocks of at most this many bytes: huge
# outputs (e.g. from a huge padding) would otherwise need C * KH * KW * P values per thread
# (gigabytes). Every shape of bench/workloads.py fits in one block (c2, K * P * 4 = 2.3 MB, is the largest).
COL_BLOCK_BYTES = 4 << 20


_BLAS_MAX = 2 ** 31 - 1  # np.dot hands BLAS 32-bit sizes


def _check_blas_sizes(x, w, ho_wo):
    if max(x.shape[1] * w.shape[2] * w.shape[3], ho_wo, w.shape[0]) > _BLAS_MAX:
        raise ValueError(f"conv2d: sizes beyond BLAS's 32-bit limit (x {x.shape}, w {w.shape}, {ho_wo} output pixels)")


def _block(x, w, ho_wo):
    """Output pixels per im2col block: all of them unless their columns exceed COL_BLOCK_BYTES."""
    return max(1, min(ho_wo, COL_BLOCK_BYTES // (x.shape[1] * w.shape[2] * w.shape[3] * x.itemsize)))


def _forward(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, relu, workspace):
    n, f, ho, wo = y.shape
    if n == 0:
        return
    kh, kw = w.shape[2:]
    bias = np.zeros(f, x.dtype) if b is None else b
    if _depthwise_fits(x, w, y.shape, sh, sw, dh, dw, groups):
        return _depthwise_forward(x, w, bias, y, sh, sw, ph, pw, dh, dw, relu, n_threads, workspace)
    chunks = max(1, min(n_threads, n))
    if _winograd_fits(x, w, y.shape, sh, sw, dh, dw, groups) and _winograd_forward(x, w, bias, y, ph, pw, relu,
                                                                                 chunks, workspace):
        return
    _check_blas_sizes(x, w, ho * wo)
    cols, part = _gemm_scratch(workspace, _gemm_shapes(x, w, ho * wo, (kh, kw, sh, sw, ph, pw), groups, chunks, False,
                                                       False), x.dtype)
    _gemm_forward(x, w.reshape(groups, f // groups, -1), bias, y.reshape(n, groups, f // groups, ho * wo),
                  kh, kw, sh, sw, ph, pw, dh, dw, wo, relu, _block(x, w, ho * wo), cols, part)


def conv2d_workspace(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads):
    return _scratch_elements(x, w, y.shape, sh, sw, ph, pw, dh, dw, groups, n_threads, False, False)


conv2d_relu_workspace = conv2d_workspace


def conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, workspace):
    _forward(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, False, workspace)


def conv2d_relu(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, workspace):
    _forward(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, True, workspace)


def conv2d_backward_workspace(dy, x, w, dx, dw, db, sh, sw, ph, pw, dil_h, dil_w, groups, input_grad, n_threads):
    return _scratch_elements(x, w, dy.shape, sh, sw, ph, pw, dil_h, dil_w, groups, n_threads, True, input_grad)


def conv2d_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dil_h, dil_w, groups, input_grad, n_threads, workspace):
    """dx None (input_grad False) is skipped by the im2col and depthwise paths; Winograd computes it anyway.
    Depthwise with a non-finite weight takes the GEMM path (the depthwise scatter would multiply it by
    dy's scratch columns)."""
    n, f, ho, wo = dy.shape
    kh, kw = w.shape[2:]
    if _depthwise_fits(x, w, dy.shape, sh, sw, dil_h, dil_w, groups) and np.isfinite(w).all():
        return _depthwise_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dil_h, dil_w, n_threads, workspace)
    if dx is None:
        dx = np.empty_like(x)
    if n == 0:
        dx[...] = 0
        dw[...] = 0
        db[...] = 0
        return
    chunks = max(1, min(n_threads, n))
    if (_winograd_fits(x, w, dy.shape, sh, sw, dil_h, dil_w, groups)
            and _winograd_backward(dy, x, w, dx, dw, db, ph, pw, chunks, workspace)):
        return
    _check_blas_sizes(x, w, ho * wo)
    w3 = w.reshape(groups, f // groups, -1)
    cols, dcols, part, tmp, dw_part, db_part = _gemm_scratch(
        workspace, _gemm_shapes(x, w, ho * wo, (kh, kw, sh, sw, ph, pw), groups, chunks, True, input_grad), x.dtype)
    _gemm_backward(dy.reshape(n, groups, f // groups, ho * wo), x, w3, dx, dw_part, db_part,
                   kh, kw, sh, sw, ph, pw, dil_h, dil_w, wo, input_grad, _block(x, w, ho * wo), cols, dcols, part, tmp)
    _merge(dw_part.reshape(chunks, -1), dw.reshape(-1))
    _merge(db_part, db)
