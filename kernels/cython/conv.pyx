# Cython/OpenMP 2-D convolution (cross-correlation, as PyTorch's conv2d), float32 and float64.
#
# Two algorithms, chosen per call by measured rules (_winograd_pays):
# - im2col + GEMM (any stride, padding, dilation, groups). Layout x (N, C, H, W), w (F, C//G, KH,
#   KW), y (N, F, Ho, Wo). Per image and group, with K = Cg*KH*KW and P = Ho*Wo, the column matrix
#   col (K, P) gives y_g (Fg, P) = w_g (Fg, K) @ col, dw_g += dy_g @ col^T, and dcol = w_g^T @ dy_g
#   scattered back by col2im into dx. A row-major (r, c) matrix is a column-major (c, r) one, so
#   each product is one Fortran GEMM (scipy.linalg.cython_blas), except float32's dcol, which
#   conv_gemm.h computes with w read in place (sgemm copied w^T once per image). Images run in
#   parallel, one BLAS thread each (the dispatcher caps BLAS: Plan.blas).
# - Winograd for 3x3, 5x5 and 7x7 stride-1 kernels (below). Non-finite values (the strategy of both
#   compiled backends): Winograd's results are kept only when every one is finite (y; dx and dw),
#   otherwise the call is recomputed by im2col + GEMM, so inf and NaN reach exactly the outputs
#   whose windows hold them (the transforms would spread them over whole tiles).
# - Direct float32 forwards per image and group, where each group's GEMM is too small for BLAS or
#   im2col's copy costs as much as the product: 16 filters in the vector lanes (conv_lanes.h) for
#   strided and grouped convolutions of 16k filters per group, else pixels in the lanes
#   (conv_direct.h) for few channels and 7x7-and-up kernels, and for grouped stride-1 convolutions
#   of few filters per group. A grouped stride-1 input gradient is the same forward run on dy, a
#   strided one the lanes kernel run phase by phase (each a stride-1 correlation of dy with the
#   kernel taps that reach it); the weight gradients of both kinds have direct kernels too (filters
#   in the lanes wherever the lanes forward runs).
# - Depthwise convolutions (groups == C), direct, any kernel, stride, padding and dilation
#   (conv_depthwise.h): im2col + GEMM ran a GEMM of depth KH * KW per plane.
# Signatures follow the contract (fastnn/conv.py): inputs, outputs, parameters, n_threads,
# workspace (conv2d_workspace / conv2d_backward_workspace size it for the path the call takes).
# Each thread owns its part of the workspace and its partial weight gradient; the partials are
# summed after the parallel loop (each element by one thread: no race). C helpers: conv_im2col.h,
# conv_gemm.h, conv_winograd.h, conv_winograd_general.h, conv_direct.h, conv_lanes.h, conv_depthwise.h.
from cython.parallel cimport prange, threadid
from libc.limits cimport INT_MAX
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

import numpy as np

from _common cimport chunk_start, real


cdef struct Geometry:
    # Py_ssize_t throughout: products such as K * P or C * H * W must not wrap at 2^31
    Py_ssize_t C, H, W       # input channels and size
    Py_ssize_t F, KH, KW     # filters and kernel size
    Py_ssize_t Ho, Wo        # output size
    Py_ssize_t sh, sw, ph, pw, dh, dw
    Py_ssize_t G, Cg, Fg     # groups, channels and filters per group
    Py_ssize_t K, P          # GEMM depth (Cg*KH*KW) and output pixels per image (Ho*Wo)
    Py_ssize_t B             # output pixels per im2col block (P, unless K * P exceeds the budget)
    bint direct              # 1x1, stride 1, no padding: col is the image itself


# Each thread's im2col columns (and their gradient) cover blocks of at most this many bytes: huge
# outputs (e.g. from a huge padding) would otherwise need K * P values per thread (gigabytes).
# Every shape of bench/workloads.py fits in one block (c2, K * P * 4 = 2.3 MB, is the largest).
COL_BLOCK_BYTES = 4 << 20


cdef Geometry _geometry(tuple x_shape, tuple w_shape, tuple y_shape, tuple params,
                        Py_ssize_t itemsize) except *:
    """The call's geometry; the output size comes from y (decided by the meta function)."""
    cdef Geometry g
    g.C, g.H, g.W = x_shape[1], x_shape[2], x_shape[3]
    g.F, g.KH, g.KW = w_shape[0], w_shape[2], w_shape[3]
    g.Ho, g.Wo = y_shape[2], y_shape[3]
    g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.G = params
    g.Cg = g.C // g.G
    g.Fg = g.F // g.G
    g.K = g.Cg * g.KH * g.KW
    g.P = g.Ho * g.Wo
    g.B = min(g.P, max(1, COL_BLOCK_BYTES // (g.K * itemsize)))
    g.direct = (g.KH == 1 and g.KW == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0 and g.pw == 0)
    # BLAS takes 32-bit sizes (only arrays of many GiB get here)
    if max(g.K, g.P, g.F) > INT_MAX:
        raise ValueError(f"conv2d: sizes beyond BLAS's 32-bit limit (x {x_shape}, w {w_shape}, "
                         f"output {g.Ho}x{g.Wo})")
    return g


cdef inline void _gemm(char ta, char tb, int m, int n, int k, real alpha, const real* a, int lda,
                       const real* b, int ldb, real beta, real* c, int ldc) noexcept nogil:
    """Column-major C (m, n) = alpha op(A) op(B) + beta C."""
    if real is float:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef extern from "conv_gemm.h" nogil:
    void conv_gemm_f(const float* U, Py_ssize_t su_row, Py_ssize_t su_red, const float* V, Py_ssize_t ldv,
                     float* M, Py_ssize_t ldm, Py_ssize_t rows, Py_ssize_t red, Py_ssize_t cols)


cdef extern from "conv_im2col.h" nogil:
    ctypedef struct im2col_geometry:
        Py_ssize_t Cg, H, W, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw
    void im2col_f(const float* x, float* col, const im2col_geometry* g, Py_ssize_t p0, Py_ssize_t count)
    void im2col_d(const double* x, double* col, const im2col_geometry* g, Py_ssize_t p0, Py_ssize_t count)
    void col2im_f(const float* col, float* dx, const im2col_geometry* g, Py_ssize_t p0, Py_ssize_t count)
    void col2im_d(const double* col, double* dx, const im2col_geometry* g, Py_ssize_t p0, Py_ssize_t count)


cdef inline im2col_geometry _im2col_geometry(const Geometry* g) noexcept nogil:
    cdef im2col_geometry c
    c.Cg, c.H, c.W, c.KH, c.KW, c.Ho, c.Wo = g.Cg, g.H, g.W, g.KH, g.KW, g.Ho, g.Wo
    c.sh, c.sw, c.ph, c.pw, c.dh, c.dw = g.sh, g.sw, g.ph, g.pw, g.dh, g.dw
    return c


cdef inline void _im2col(const real* x, real* col, const Geometry* g, Py_ssize_t p0,
                         Py_ssize_t count) noexcept nogil:
    """col (K, count): the columns of output pixels p0 .. p0 + count - 1 from one group's x (Cg, H, W)."""
    cdef im2col_geometry c = _im2col_geometry(g)
    if real is float:
        im2col_f(x, col, &c, p0, count)
    else:
        im2col_d(x, col, &c, p0, count)


cdef inline void _col2im(const real* col, real* dx, const Geometry* g, Py_ssize_t p0,
                         Py_ssize_t count) noexcept nogil:
    """dx (Cg, H, W) += the columns dcol (K, count) scattered back (the adjoint of _im2col)."""
    cdef im2col_geometry c = _im2col_geometry(g)
    if real is float:
        col2im_f(col, dx, &c, p0, count)
    else:
        col2im_d(col, dx, &c, p0, count)


cdef void _epilogue(real* y, const real* b, Py_ssize_t F, Py_ssize_t P, bint has_bias,
                    bint relu) noexcept nogil:
    """y (F, P) += b[f] per row if has_bias, then max(y, 0) if relu (NaN propagates)."""
    cdef Py_ssize_t f, p
    cdef real v, bf
    for f in range(F):
        bf = b[f] if has_bias else 0
        for p in range(P):
            v = y[f * P + p] + bf
            y[f * P + p] = 0 if relu and v < 0 else v


cdef void _forward(const real* x, const real* w, const real* b, real* y, Py_ssize_t N,
                   const Geometry* g, real* work, bint has_bias, bint relu, int n_threads) noexcept nogil:
    """Per image and group, y_g (Fg, P) = w_g (Fg, K) @ col, col in blocks of B pixels."""
    cdef Py_ssize_t n, grp, p0, nb
    cdef real* col
    cdef const real* xg
    cdef const real* wg
    cdef real* yg
    for n in prange(N, schedule="static", num_threads=n_threads):
        col = work + <Py_ssize_t>threadid() * g.K * g.B
        for grp in range(g.G):
            xg = x + (n * g.C + grp * g.Cg) * g.H * g.W
            wg = w + grp * g.Fg * g.K
            yg = y + (n * g.F + grp * g.Fg) * g.P
            if g.direct:
                _gemm(c"N", c"N", g.P, g.Fg, g.K, 1, xg, g.P, wg, g.K, 0, yg, g.P)
                continue
            p0 = 0
            while p0 < g.P:  # y_g[:, p0:p0 + nb] (row stride P) = w_g @ col (K, nb)
                nb = min(g.B, g.P - p0)
                _im2col(xg, col, g, p0, nb)
                _gemm(c"N", c"N", nb, g.Fg, g.K, 1, col, nb, wg, g.K, 0, yg + p0, g.P)
                p0 = p0 + nb
        if has_bias or relu:
            _epilogue(y + n * g.F * g.P, b, g.F, g.P, has_bias, relu)


# ---- Direct float32 forward for few input channels (conv_direct.h) -----------------------------

cdef extern from "conv_direct.h" nogil:
    int DIRECT_FB, DIRECT_MAX_TAPS, DIRECT_PAD_SLACK
    Py_ssize_t direct_phase_width(Py_ssize_t W, Py_ssize_t pw, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t Wo)
    void direct_pad_split(const float* x, float* xp, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t top, Py_ssize_t left, Py_ssize_t sw, Py_ssize_t Hq, Py_ssize_t Wq)
    void direct_forward_f(const float* xp, const float* w, const float* b, float* y, Py_ssize_t C,
                          Py_ssize_t H, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t ph,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t Wq, Py_ssize_t Ho, Py_ssize_t Wo,
                          int has_bias, int relu, int narrow)


cdef bint _direct_pays(const Geometry* g) noexcept nogil:
    """Few channels, kernels of 7x7 and up, rows of >= 32 outputs (the register block's width).
    Measured side by side (both paths of this module timed in one process; the probe script was not
    kept), float32 forward, 1 thread, CPU time, direct / im2col + GEMM (N, C->F, H, k, s):
    (32, 3->32, 32, 7, 1) 0.55, (16, 3->64, 64, 7, 2) 0.67; 3x3 is marginal: (32, 3->64, 32) 0.91,
    (32, 4->64, 32) 0.98, (32, 6->64, 32) 0.96, (32, 8->64, 32) 1.14; narrow rows lose: (32, 1->32,
    28, 5, 1) 1.35, (32, 3->64, 32, 5, 2) 1.23, (8, 3->64, 112, 3, 2) 1.10.
    Grouped convolutions (each group's GEMM only Fg rows deep), stride 1, rows of >= 8 outputs (up
    to 16 in the narrow kernel's blocks of 4 rows x 16), <= 32 filters per group; 2 threads, wall
    time, direct / im2col + GEMM (N, C->F, H, k, groups): (32, 64->64, 28, 3, 4) 2.0 / 4.1 ms,
    (32, 64->64, 28, 3, 2) 2.9 / 6.6, (16, 32->32, 56, 3, 2) 1.9 / 4.6, (8, 96->96, 17, 5, 3) 1.6 / 2.4;
    narrow rows: (32, 128->128, 14, 3, 8) 0.81 / 1.65, (32, 64->64, 16, 3, 4) 0.41 / 0.99, (32,
    128->128, 14, 3, 4) 1.37 / 2.93, (64, 64->64, 8, 3, 2) 0.73 / 0.92; stride 2 lost: (32, 64->64,
    28, 3, 4) 2.2 / 1.7 (/work/s15/groups_probe.py and narrow.py, not kept in the repository).
    Padding below the kernel size: the padded copy per thread stays the input's size (a huge padding
    with a huge stride would copy gigabytes of zeros for a small output)."""
    if not (g.dh == 1 and g.dw == 1 and g.Fg % DIRECT_FB == 0 and g.ph < g.KH and g.pw < g.KW
            and g.KH * g.KW <= DIRECT_MAX_TAPS):
        return False
    if g.G > 1:
        return g.sh == 1 and g.sw == 1 and g.Wo >= 8 and g.Fg <= 32
    return g.C <= 4 and g.KH >= 7 and g.KW >= 7 and g.Wo >= 32


cdef extern from "conv_lanes.h" nogil:
    int LANES_MAX_TAPS
    Py_ssize_t lanes_phase_width(Py_ssize_t W, Py_ssize_t pw, Py_ssize_t KW, Py_ssize_t sw, Py_ssize_t Wo)
    void lanes_pack_weights(const float* w, float* wt, Py_ssize_t fb0, Py_ssize_t fb1, Py_ssize_t ckk, int FV)
    void lanes_forward_f(const float* xp, const float* wt, const float* b, float* y, Py_ssize_t C,
                         Py_ssize_t Hp, Py_ssize_t Wq, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                         Py_ssize_t sw, Py_ssize_t Ho, Py_ssize_t Wo, int relu, int FV)
    void lanes_unpack_weights(const float* wt, float* w, Py_ssize_t F, Py_ssize_t ckk, int FV)
    void lanes_transpose_dy(const float* dy, float* dyt, Py_ssize_t F, Py_ssize_t P, int FV)
    void lanes_weight_grad_f(const float* xp, const float* dyt, float* parts, Py_ssize_t C, Py_ssize_t Hp,
                             Py_ssize_t Wq, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                             Py_ssize_t sw, Py_ssize_t Ho, Py_ssize_t Wo, int FV)
    ctypedef struct lanes_phase:
        Py_ssize_t k0, taps, lead, count
    lanes_phase lanes_phase_of(Py_ssize_t r, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t K, Py_ssize_t size)
    void lanes_phase_padding(Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t K, Py_ssize_t size, Py_ssize_t out,
                             Py_ssize_t* before, Py_ssize_t* padded)
    void lanes_pack_phase_weights(const float* w, float* wt, Py_ssize_t F, Py_ssize_t C, Py_ssize_t KH,
                                  Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw, lanes_phase rows,
                                  lanes_phase cols, int FV)
    void lanes_scatter_phase(const float* src, float* dx, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ry, Py_ssize_t rx, Py_ssize_t rows,
                             Py_ssize_t cols)
    void lanes_scatter_pair(const float* even, const float* odd, float* dx, Py_ssize_t C, Py_ssize_t H,
                            Py_ssize_t W, Py_ssize_t sh, Py_ssize_t ry, Py_ssize_t rows, Py_ssize_t cols0,
                            Py_ssize_t cols1)


cdef bint _lanes_pays(const Geometry* g) noexcept nogil:
    """Filters in the vector lanes (conv_lanes.h): strided or grouped, filters per group a multiple
    of 16, kernels of 2 to 121 taps; not the few-channel stems whose rows fill the pixel kernel's
    vectors (Wo a multiple of 32). Measured side by side, builds swapped in turn, 2 threads, wall
    time, forward, lanes / the path before (/work/s18/convrows.py, not kept in the repository):
    (16, 128->256, 16, 3x3 stride 2) 1.40-1.42 / 1.85-1.97 ms (im2col + GEMM), (32, 64->128, 32, 3x3
    stride 2) 2.9-3.2 / 4.2-4.3, (16, 24->48, 33, 5x5 stride 2) 0.79-0.84 / 1.43-1.57, (8, 3->64, 112,
    7x7 stride 2) 1.08-1.11 / 1.33-1.36 (pixels in the lanes), (32, 128->128, 14, 3x3, 8 groups)
    0.69-0.93 / 0.93-0.99, (32, 64->64, 28, 3x3, 4 groups) 1.32-1.37 / 1.42-1.56; lost: (16, 3->64,
    64, 7x7 stride 2, rows of 32) 0.90-0.94 / 0.75. 1x1 kernels stay with GEMM (their im2col is a
    copy)."""
    return (g.dh == 1 and g.dw == 1 and g.Fg % 16 == 0 and 1 < g.KH * g.KW <= LANES_MAX_TAPS
            and g.ph < g.KH and g.pw < g.KW and (g.G > 1 or g.sh > 1 or g.sw > 1)
            and not (g.G == 1 and _direct_pays(g) and g.Wo % 32 == 0))


cdef inline int _lanes_vectors_of(Py_ssize_t filters) noexcept nogil:
    """Filter vectors per register block: 2 where a group's filters come in 32s, 3 where they come in
    48s (one vector's weight load for every broadcast fed the FMAs no faster than the loads)."""
    return 2 if filters % 32 == 0 else (3 if filters % 48 == 0 else 1)


cdef inline int _lanes_vectors(const Geometry* g) noexcept nogil:
    return _lanes_vectors_of(g.Fg)


cdef bint _direct_forward_pays(const Geometry* g) noexcept nogil:
    """_direct_forward's shapes: filters in the lanes, else pixels in the lanes (conv_direct.h)."""
    return _lanes_pays(g) or _direct_pays(g)


cdef inline Py_ssize_t _padded_image(const Geometry* g, Py_ssize_t Wq) noexcept nogil:
    """Elements of a group's padded, phase-split image (direct_pad_split) with rows of Wq, and the
    slack its whole-vector writes may run into."""
    return g.Cg * (g.H + 2 * g.ph) * g.sw * Wq + DIRECT_PAD_SLACK


cdef inline Py_ssize_t _direct_phase_width(const Geometry* g) noexcept nogil:
    """The padded image's row width for _direct_forward's kernel."""
    if _lanes_pays(g):
        return lanes_phase_width(g.W, g.pw, g.KW, g.sw, g.Wo)
    return direct_phase_width(g.W, g.pw, g.KW, g.sw, g.Wo)


cdef Py_ssize_t _direct_forward_work(const Geometry* g, Py_ssize_t N, int n_threads) noexcept nogil:
    """Workspace elements of _direct_forward: the packed weights (filters in the lanes), then each
    thread's padded, phase-split image."""
    cdef Py_ssize_t packed = g.F * g.K if _lanes_pays(g) else 0
    return packed + _direct_threads(g, N, n_threads) * _padded_image(g, _direct_phase_width(g))


cdef void _direct_forward(const float[::1] x, const float[::1] w, const float[::1] b, float[::1] y,
                          Py_ssize_t N, const Geometry* g, float[::1] work, bint has_bias, bint relu,
                          int n_threads) noexcept:
    """Each (image, group) a task: its channels' padded copy, then its filters."""
    cdef bint lanes = _lanes_pays(g)
    cdef int FV = _lanes_vectors(g)
    cdef Py_ssize_t Wq = _direct_phase_width(g), packed = g.F * g.K if lanes else 0
    cdef Py_ssize_t task, n, grp, fb, xp_size = _padded_image(g, Wq)
    cdef const float* b_ptr = &b[0] if b.shape[0] else NULL
    cdef float* xp
    with nogil:
        if lanes:
            for fb in prange(g.F // (16 * FV), schedule="static", num_threads=n_threads):
                lanes_pack_weights(&w[0], &work[0], fb, fb + 1, g.K, FV)
        for task in prange(N * g.G, schedule="static", num_threads=n_threads):
            n = task // g.G
            grp = task - n * g.G
            xp = &work[0] + packed + threadid() * xp_size
            direct_pad_split(&x[(n * g.C + grp * g.Cg) * g.H * g.W], xp, g.Cg, g.H, g.W, g.ph, g.pw, g.sw,
                             g.H + 2 * g.ph, Wq)
            if lanes:
                lanes_forward_f(xp, &work[grp * g.Fg * g.K], b_ptr + grp * g.Fg if has_bias else NULL,
                                &y[(n * g.F + grp * g.Fg) * g.P], g.Cg, g.H + 2 * g.ph, Wq, g.Fg, g.KH, g.KW,
                                g.sh, g.sw, g.Ho, g.Wo, relu, FV)
            else:
                direct_forward_f(xp, &w[grp * g.Fg * g.K], b_ptr + grp * g.Fg if has_bias else NULL,
                                 &y[(n * g.F + grp * g.Fg) * g.P], g.Cg, g.H, g.Fg, g.KH, g.KW, g.ph,
                                 g.sh, g.sw, Wq, g.Ho, g.Wo, has_bias, relu, g.Wo <= 16)


cdef Geometry _input_grad_geometry(const Geometry* g) noexcept nogil:
    """The stride-1 input gradient as a forward: dy (N, F, Ho, Wo) through the flipped, transposed
    kernels (C, Fg, KH, KW) with padding K - 1 - p gives dx (N, C, H, W)."""
    cdef Geometry t = g[0]
    t.C, t.H, t.W, t.F, t.Ho, t.Wo = g.F, g.Ho, g.Wo, g.C, g.H, g.W
    t.Cg, t.Fg = g.Fg, g.Cg
    t.ph, t.pw = g.KH - 1 - g.ph, g.KW - 1 - g.pw
    t.K = t.Cg * g.KH * g.KW
    t.P = g.H * g.W
    return t


cdef bint _direct_input_grad_pays(const Geometry* g) noexcept nogil:
    """Grouped, stride 1: dx by the direct forward of dy (see _input_grad_geometry) where that forward
    pays. 2 threads, wall time, against the im2col backward's share for dx (col2im included):
    (32, 64->64, 28, 3x3, 4 groups) 1.3 / 2.8 ms, (16, 32->32, 56, 3x3, 2 groups) 1.4 / 2.7 ms
    (/work/s15/grp_bwd.py, not kept in the repository)."""
    cdef Geometry t
    if g.G == 1 or g.sh != 1 or g.sw != 1 or g.dh != 1 or g.dw != 1:
        return False
    t = _input_grad_geometry(g)
    return _direct_forward_pays(&t)


# ---- Strided float32 input gradient by phases (conv_lanes.h) ------------------------------------

cdef inline Py_ssize_t _phase_channels(const Geometry* g) noexcept nogil:
    """dx's channels per group, rounded up to whole vectors of 16 (the phases' filters in the lanes)."""
    return (g.Cg + 15) // 16 * 16


cdef bint _phase_input_grad_pays(const Geometry* g) noexcept nogil:
    """Strided, undilated, at most a third of the lanes idle (24 channels a group run in 32 lanes).
    2 threads, backward, phases / im2col + GEMM in one process, median of 7 (/work/s21/phase_ab.py,
    not kept in the repository), ms: (32, 64->128, 32, 3x3 stride 2) 6.0 / 7.0, (16, 24->48, 33, 5x5
    stride 2) 1.43 / 1.82, (32, 64->64, 28, 3x3 stride 2, 4 groups) 1.40 / 1.94, (32, 256->512, 14,
    1x1 stride 2) 2.72 / 2.93, (32, 64->128, 32, 2x2 stride 2) 3.31 / 3.50, (16, 128->256, 16, 3x3
    stride 2) 3.34 / 3.35."""
    return ((g.sh > 1 or g.sw > 1) and g.dh == 1 and g.dw == 1 and g.ph < g.KH and g.pw < g.KW
            and g.KH * g.KW <= LANES_MAX_TAPS and 2 * _phase_channels(g) <= 3 * g.Cg)


cdef void _phase_padding(const Geometry* g, Py_ssize_t* top, Py_ssize_t* Hq, Py_ssize_t* left,
                         Py_ssize_t* Wq) noexcept nogil:
    """The padded dy's zeros before its rows and columns, and its size: every phase's reads inside."""
    lanes_phase_padding(g.sh, g.ph, g.KH, g.H, g.Ho, top, Hq)
    lanes_phase_padding(g.sw, g.pw, g.KW, g.W, g.Wo, left, Wq)


cdef inline Py_ssize_t _phase_thread_work(const Geometry* g, Py_ssize_t Hq, Py_ssize_t Wq,
                                         Py_ssize_t channels) noexcept nogil:
    """One thread's part: its padded dy (and the slack of direct_pad_split's vector writes), then its
    phases' outputs."""
    return g.Fg * Hq * Wq + DIRECT_PAD_SLACK + channels * g.H * g.W


cdef Py_ssize_t _phase_input_grad_work(const Geometry* g, Py_ssize_t N, int n_threads) noexcept nogil:
    """Workspace elements of _phase_input_grad: the packed sub-kernels (K taps over the phases, for
    each group), then each thread's padded dy and its phases' outputs (together dx's pixels)."""
    cdef Py_ssize_t top, Hq, left, Wq, channels = _phase_channels(g)
    _phase_padding(g, &top, &Hq, &left, &Wq)
    return (g.G * channels * g.Fg * g.KH * g.KW
            + min(N * g.G, <Py_ssize_t>n_threads) * _phase_thread_work(g, Hq, Wq, channels))


cdef void _phase_input_grad(const float* dy, const float* w, float* dx, float* work, Py_ssize_t N,
                            const Geometry* g, int n_threads) noexcept nogil:
    """dx = the input gradient, each (image, group) a task: its dy's padded copy, every phase's
    correlation with its sub-kernel (lanes_forward_f), interleaved into dx. w must be finite: the
    copy's zeros times an inf would be NaN where the sum has no such product."""
    cdef Py_ssize_t top, Hq, left, Wq, channels = _phase_channels(g)
    cdef Py_ssize_t packed = g.G * channels * g.Fg * g.KH * g.KW, per_thread, task, n, grp, ry, rx, woff, ooff
    cdef Py_ssize_t first, even_cols = (g.W + 1) // 2
    cdef int FV = _lanes_vectors_of(channels)
    cdef lanes_phase rows, cols
    cdef float* dyp
    cdef float* out
    cdef float* dxg
    _phase_padding(g, &top, &Hq, &left, &Wq)
    per_thread = _phase_thread_work(g, Hq, Wq, channels)
    woff = 0
    for grp in range(g.G):
        for ry in range(g.sh):
            rows = lanes_phase_of(ry, g.sh, g.ph, g.KH, g.H)
            for rx in range(g.sw):
                cols = lanes_phase_of(rx, g.sw, g.pw, g.KW, g.W)
                lanes_pack_phase_weights(w + grp * g.Fg * g.K, work + woff, g.Fg, g.Cg, g.KH, g.KW, g.sh, g.sw,
                                         rows, cols, FV)
                woff = woff + channels * g.Fg * rows.taps * cols.taps
    for task in prange(N * g.G, schedule="static", num_threads=n_threads):
        n = task // g.G
        grp = task - n * g.G
        dyp = work + packed + threadid() * per_thread
        out = dyp + g.Fg * Hq * Wq + DIRECT_PAD_SLACK
        dxg = dx + (n * g.C + grp * g.Cg) * g.H * g.W
        direct_pad_split(dy + (n * g.F + grp * g.Fg) * g.P, dyp, g.Fg, g.Ho, g.Wo, top, left, 1, Hq, Wq)
        woff = grp * channels * g.Fg * g.KH * g.KW
        ooff = 0
        for ry in range(g.sh):
            rows = lanes_phase_of(ry, g.sh, g.ph, g.KH, g.H)
            first = ooff
            for rx in range(g.sw):
                cols = lanes_phase_of(rx, g.sw, g.pw, g.KW, g.W)
                if rows.taps > 0 and cols.taps > 0:
                    if rows.count > 0 and cols.count > 0:
                        lanes_forward_f(dyp + (top - rows.lead) * Wq + left - cols.lead, work + woff, NULL,
                                        out + ooff, g.Fg, Hq, Wq, channels, rows.taps, cols.taps, 1, 1,
                                        rows.count, cols.count, 0, FV)
                else:  # no tap reaches these pixels
                    memset(out + ooff, 0, channels * rows.count * cols.count * sizeof(float))
                if g.sw != 2:
                    lanes_scatter_phase(out + ooff, dxg, g.Cg, g.H, g.W, g.sh, g.sw, ry, rx, rows.count,
                                        cols.count)
                woff = woff + channels * g.Fg * rows.taps * cols.taps
                ooff = ooff + channels * rows.count * cols.count
            if g.sw == 2:
                lanes_scatter_pair(out + first, out + first + channels * rows.count * even_cols, dxg, g.Cg, g.H,
                                   g.W, g.sh, ry, rows.count, even_cols, g.W // 2)


def _flipped_transposed(w, Py_ssize_t G):
    """w (F, Cg, KH, KW) as the input gradient's kernels (C, Fg, KH, KW), each flipped in both axes."""
    F, Cg, KH, KW = w.shape
    return np.ascontiguousarray(np.asarray(w).reshape(G, F // G, Cg, KH, KW).transpose(0, 2, 1, 3, 4)
                                [..., ::-1, ::-1]).reshape(-1)


# ---- Depthwise (groups == C), direct (conv_depthwise.h) ------------------------------------------

cdef extern from "conv_depthwise.h" nogil:
    ctypedef struct dw_geometry "fnn_dw_geometry":
        Py_ssize_t C, H, W, m, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw
    Py_ssize_t fnn_dw_forward_scratch(const dw_geometry* g)
    Py_ssize_t fnn_dw_backward_scratch(const dw_geometry* g, int input_grad, Py_ssize_t itemsize)
    void fnn_dw_forward_f(const float* x, const float* w, const float* b, float* y, Py_ssize_t p0, Py_ssize_t p1,
                          const dw_geometry* g, int relu, float* scratch)
    void fnn_dw_forward_d(const double* x, const double* w, const double* b, double* y, Py_ssize_t p0,
                          Py_ssize_t p1, const dw_geometry* g, int relu, double* scratch)
    void fnn_dw_backward_f(const float* x, const float* dy, const float* w, float* dx, Py_ssize_t p0,
                           Py_ssize_t p1, const dw_geometry* g, int gather, float* scratch)
    void fnn_dw_backward_d(const double* x, const double* dy, const double* w, double* dx, Py_ssize_t p0,
                           Py_ssize_t p1, const dw_geometry* g, int gather, double* scratch)
    void fnn_dw_merge_f(const float* scratch, Py_ssize_t stride, int threads, Py_ssize_t i0, Py_ssize_t i1,
                        float* dw)
    void fnn_dw_merge_d(const double* scratch, Py_ssize_t stride, int threads, Py_ssize_t i0, Py_ssize_t i1,
                        double* dw)


# A thread's depthwise scratch (padded planes) at most this many bytes: a huge padding with a huge
# stride pads a plane far past its few outputs; such calls take im2col + GEMM.
cdef Py_ssize_t DEPTHWISE_SCRATCH_BYTES = 8 << 20


cdef bint _depthwise_pays(const Geometry* g) noexcept nogil:
    """groups == C (one input channel per group), at least 2 channels, at most 8 filters per channel
    (each plane's filters are computed one after another), scratch within DEPTHWISE_SCRATCH_BYTES."""
    cdef dw_geometry d
    if not (g.G == g.C and g.C >= 2 and g.Fg <= 8):
        return False
    d = _dw_geometry(g)
    return max(fnn_dw_backward_scratch(&d, 1, 4) * 4, fnn_dw_backward_scratch(&d, 1, 8) * 8) <= DEPTHWISE_SCRATCH_BYTES


cdef dw_geometry _dw_geometry(const Geometry* g) noexcept nogil:
    cdef dw_geometry d
    d.C, d.H, d.W, d.m, d.KH, d.KW, d.Ho, d.Wo = g.C, g.H, g.W, g.Fg, g.KH, g.KW, g.Ho, g.Wo
    d.sh, d.sw, d.ph, d.pw, d.dh, d.dw = g.sh, g.sw, g.ph, g.pw, g.dh, g.dw
    return d


cdef void _dw_forward(const real[::1] x, const real[::1] w, const real[::1] b, real[::1] y, real[::1] work,
                      Py_ssize_t N, const dw_geometry* d, bint has_bias, bint relu, int n_threads) noexcept:
    """A static range of (image, channel) planes per thread."""
    cdef Py_ssize_t t, planes = N * d.C, per_thread = fnn_dw_forward_scratch(d)
    cdef int threads = <int>min(planes, <Py_ssize_t>n_threads)
    cdef const real* b_ptr = &b[0] if has_bias else NULL
    with nogil:
        for t in prange(threads, schedule="static", num_threads=threads):
            if real is float:
                fnn_dw_forward_f(&x[0], &w[0], b_ptr, &y[0], chunk_start(planes, t, threads),
                                 chunk_start(planes, t + 1, threads), d, relu, &work[t * per_thread])
            else:
                fnn_dw_forward_d(&x[0], &w[0], b_ptr, &y[0], chunk_start(planes, t, threads),
                                 chunk_start(planes, t + 1, threads), d, relu, &work[t * per_thread])


cdef bint _dw_flipped_applies(const Geometry* g) noexcept nogil:
    """The input gradient as the forward of dy with the flipped kernel (dy padded by the kernel's reach
    less p): the gather of conv_depthwise.h for stride 1, with the forward's blocks of rows in
    registers (the transposed scatter's overlapping read-modify-writes stalled on store forwarding,
    2-3x slower). Stride 1, one filter per channel, p within the kernel's reach; and (checked by the
    caller) finite weights: the gather multiplies them by dy's zero padding."""
    return (g.sh == 1 and g.sw == 1 and g.Fg == 1 and g.ph <= (g.KH - 1) * g.dh
            and g.pw <= (g.KW - 1) * g.dw)


cdef dw_geometry _dw_transposed(const Geometry* g) noexcept nogil:
    """_dw_flipped_applies's forward: dy's planes in, dx's out."""
    cdef dw_geometry d = _dw_geometry(g)
    d.H, d.W, d.Ho, d.Wo = g.Ho, g.Wo, g.H, g.W
    d.ph, d.pw = (g.KH - 1) * g.dh - g.ph, (g.KW - 1) * g.dw - g.pw
    return d


cdef void _dw_backward(const real[::1] dy, const real[::1] x, const real[::1] w, real[::1] dx, real[::1] dw,
                       real[::1] work, Py_ssize_t N, const Geometry* g, bint input_grad, bint gather,
                       int n_threads) noexcept:
    """A static range of (image, channel) planes per thread, in memory order: each writes its planes'
    dx (gathered if `gather`: one filter per channel and finite weights) and sums its share of every
    filter's weight gradient; the shares are then added up, a range of weights per thread."""
    cdef dw_geometry d = _dw_geometry(g)
    cdef Py_ssize_t t, planes = N * g.C, weights = g.F * g.KH * g.KW
    cdef Py_ssize_t per_thread = fnn_dw_backward_scratch(&d, input_grad, sizeof(real))
    cdef int threads = <int>max(1, min(planes, <Py_ssize_t>n_threads))
    cdef real* dx_ptr = &dx[0] if input_grad else NULL
    with nogil:
        for t in prange(threads, schedule="static", num_threads=threads):
            if real is float:
                fnn_dw_backward_f(&x[0], &dy[0], &w[0], dx_ptr, chunk_start(planes, t, threads),
                                  chunk_start(planes, t + 1, threads), &d, gather, &work[t * per_thread])
            else:
                fnn_dw_backward_d(&x[0], &dy[0], &w[0], dx_ptr, chunk_start(planes, t, threads),
                                  chunk_start(planes, t + 1, threads), &d, gather, &work[t * per_thread])
        for t in prange(threads, schedule="static", num_threads=threads):
            if real is float:
                fnn_dw_merge_f(&work[0], per_thread, threads, chunk_start(weights, t, threads),
                               chunk_start(weights, t + 1, threads), &dw[0])
            else:
                fnn_dw_merge_d(&work[0], per_thread, threads, chunk_start(weights, t, threads),
                               chunk_start(weights, t + 1, threads), &dw[0])


# ---- Winograd F(m x m, r x r): kernels 3, 5, 7, stride 1, dilation 1, one group -----------------
# Each m x m output tile comes from an a x a input tile d (a = m + r - 1): y = A^T [(G g G^T) *
# (B^T d B)] A, so the a^2 transform positions are a^2 GEMMs, with r^2 m^2 / a^2 times fewer
# multiplies than im2col: F(2x2, 3x3) 2.25x (its transforms written out in conv_winograd.h), F(4x4,
# 3x3) 4x, F(4x4, 5x5) 6.25x, F(2x2, 7x7) 3.06x (conv_winograd_general.h; _wino_spec picks). The same
# trilinear identity gives the weight gradient of a tile, G^T [(A dy A^T) * (B^T d B)] G, summed
# over tiles in the transform domain (a^2 GEMMs reducing over tiles); the input gradient is the
# forward Winograd with the flipped, transposed kernel and padding r - 1 - p.
# Tiles are numbered over the whole batch (n, tile row, tile col); threads take blocks of TB tiles.

cdef struct Tiles:
    Py_ssize_t N, H, W, Ho, Wo, ph, pw
    Py_ssize_t th, tw, per_image   # tiles per column, per row, per image
    Py_ssize_t total
    const wino_spec* spec          # the transforms of conv_winograd_general.h, or NULL for F(2x2, 3x3)
    Py_ssize_t a2                  # transform positions (tile side squared)


cdef Tiles _tiles(Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t ph,
                  Py_ssize_t pw, const wino_spec* spec) noexcept nogil:
    cdef Tiles t
    cdef Py_ssize_t m = spec.m if spec != NULL else 2  # outputs per tile side
    t.N, t.H, t.W, t.Ho, t.Wo, t.ph, t.pw = N, H, W, Ho, Wo, ph, pw
    t.spec = spec
    t.a2 = spec.a * spec.a if spec != NULL else 16
    t.th = (Ho + m - 1) // m
    t.tw = (Wo + m - 1) // m
    t.per_image = t.th * t.tw
    t.total = N * t.per_image
    return t


cdef extern from "conv_winograd.h" nogil:
    void wino_input_run_f(const float* plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, float* v, Py_ssize_t vs)
    void wino_input_run_d(const double* plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, double* v, Py_ssize_t vs)
    void wino_grad_run_f(const float* plane, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t tw, Py_ssize_t r0,
                         Py_ssize_t cnt, float* v, Py_ssize_t vs)
    void wino_grad_run_d(const double* plane, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t tw, Py_ssize_t r0,
                         Py_ssize_t cnt, double* v, Py_ssize_t vs)
    int wino_output_run_f(const float* m, Py_ssize_t ms, float* plane, Py_ssize_t Ho, Py_ssize_t Wo,
                           Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, float bias, int relu)
    int wino_output_run_d(const double* m, Py_ssize_t ms, double* plane, Py_ssize_t Ho, Py_ssize_t Wo,
                           Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, double bias, int relu)
    int wino_all_finite_f(const float* x, Py_ssize_t n)
    void wino_f2_kernels_f(const float* g, Py_ssize_t gs, Py_ssize_t gi, Py_ssize_t gj, Py_ssize_t cnt, float* u,
                           Py_ssize_t us)
    void wino_f2_kernel_grads_f(const float* M, Py_ssize_t ms, Py_ssize_t cnt, float* dw, Py_ssize_t ds)
    int wino_all_finite_d(const double* x, Py_ssize_t n)


cdef extern from "conv_winograd_general.h" nogil:
    ctypedef struct wino_spec:
        int m, r, a
    const wino_spec* wino_spec_for(int m, int r)
    const wino_spec wino_f2r3_kernels
    void wg_input_channels_f(const wino_spec* s, const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, float* v,
                             Py_ssize_t vs, Py_ssize_t ldv)
    void wg_input_channels_d(const wino_spec* s, const double* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, double* v,
                             Py_ssize_t vs, Py_ssize_t ldv)
    void wg_grad_run_f(const wino_spec* s, const float* plane, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t tw,
                       Py_ssize_t r0, Py_ssize_t cnt, float* v, Py_ssize_t vs)
    void wg_grad_run_d(const wino_spec* s, const double* plane, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t tw,
                       Py_ssize_t r0, Py_ssize_t cnt, double* v, Py_ssize_t vs)
    int wg_output_run_f(const wino_spec* s, const float* m, Py_ssize_t ms, float* plane, Py_ssize_t Ho,
                        Py_ssize_t Wo, Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, float bias, int relu)
    int wg_output_run_d(const wino_spec* s, const double* m, Py_ssize_t ms, double* plane, Py_ssize_t Ho,
                        Py_ssize_t Wo, Py_ssize_t tw, Py_ssize_t r0, Py_ssize_t cnt, double bias, int relu)
    void wg_kernels_f(const wino_spec* s, const float* g, Py_ssize_t gs, Py_ssize_t gi, Py_ssize_t gj,
                      Py_ssize_t cnt, float* u, Py_ssize_t us)
    void wg_kernels_d(const wino_spec* s, const double* g, Py_ssize_t gs, Py_ssize_t gi, Py_ssize_t gj,
                      Py_ssize_t cnt, double* u, Py_ssize_t us)
    void wg_kernel_grads_f(const wino_spec* s, const float* M, Py_ssize_t ms, Py_ssize_t cnt, float* dw,
                           Py_ssize_t ds)
    void wg_kernel_grads_d(const wino_spec* s, const double* M, Py_ssize_t ms, Py_ssize_t cnt, double* dw,
                           Py_ssize_t ds)


cdef inline bint _all_finite(const real* a, Py_ssize_t n) noexcept nogil:
    if real is float:
        return wino_all_finite_f(a, n)
    else:
        return wino_all_finite_d(a, n)


# A block's transformed tiles are a2 matrices, one per transform position (V_k, M_k, X_k, D_k: TB tiles x
# some channels); each starts WINO_GAP values past the previous one's end. Without the gap, F(4x4, 3x3)'s
# 36 matrices of 64 channels x 48 tiles lie 12 KiB apart, all in one L1 set: the transforms' 36 stores (or
# loads) per tile evicted each other, and the input transform ran 2x slower (a C harness of
# wg_input_channels_f on 64 channels of 32x32, 1 thread: 54 -> 28 us per image; /work/s16/wino, not
# kept in the repository).
cdef enum:
    WINO_GAP = 16


cdef inline Py_ssize_t _position_stride(Py_ssize_t channels, int TB) noexcept nogil:
    """Values from one transform position's matrix of TB tiles x channels to the next's."""
    return channels * TB + WINO_GAP


cdef inline void _input_run(const real* plane, const Tiles* t, Py_ssize_t r0, Py_ssize_t cnt, real* v,
                            Py_ssize_t vs) noexcept nogil:
    """B^T d B of the input tiles r0 .. r0 + cnt - 1 of one plane into v[k * vs + j]."""
    if real is float:
        wino_input_run_f(plane, t.H, t.W, t.ph, t.pw, t.tw, r0, cnt, v, vs)
    else:
        wino_input_run_d(plane, t.H, t.W, t.ph, t.pw, t.tw, r0, cnt, v, vs)


cdef inline void _input_tiles(const real* image, Py_ssize_t C, const Tiles* t, Py_ssize_t r0, Py_ssize_t cnt,
                              real* V, Py_ssize_t vs, Py_ssize_t TB, Py_ssize_t j0) noexcept nogil:
    """B^T d B of the input tiles r0 .. r0 + cnt - 1 of an image's C planes, block tiles j0 ..: V[k * vs +
    c * TB + j] (F(2x2, 3x3), a plane at a time), or V[k * vs + j * C + c] (the general tiles, channels in
    the vector lanes: a plane at a time, vectors over a tile row's few tiles, F(4x4, 5x5)'s input
    transform took 2x its GEMMs' time on 16x16 images, against 0.7x this way; perf, 1 thread)."""
    cdef Py_ssize_t c, plane = t.H * t.W
    if t.spec == NULL:
        for c in range(C):
            _input_run(image + c * plane, t, r0, cnt, V + c * TB + j0, vs)
    elif real is float:
        wg_input_channels_f(t.spec, image, C, t.H, t.W, t.ph, t.pw, t.tw, r0, cnt, V + j0 * C, vs, C)
    else:
        wg_input_channels_d(t.spec, image, C, t.H, t.W, t.ph, t.pw, t.tw, r0, cnt, V + j0 * C, vs, C)


cdef inline void _grad_run(const real* plane, const Tiles* t, Py_ssize_t r0, Py_ssize_t cnt, real* v,
                           Py_ssize_t vs) noexcept nogil:
    """A dy A^T of the output-gradient tiles r0 .. r0 + cnt - 1 of one plane into v[k * vs + j]."""
    if t.spec != NULL:
        if real is float:
            wg_grad_run_f(t.spec, plane, t.Ho, t.Wo, t.tw, r0, cnt, v, vs)
        else:
            wg_grad_run_d(t.spec, plane, t.Ho, t.Wo, t.tw, r0, cnt, v, vs)
    elif real is float:
        wino_grad_run_f(plane, t.Ho, t.Wo, t.tw, r0, cnt, v, vs)
    else:
        wino_grad_run_d(plane, t.Ho, t.Wo, t.tw, r0, cnt, v, vs)


cdef inline int _output_run(const real* m, Py_ssize_t ms, real* plane, const Tiles* t, Py_ssize_t r0,
                            Py_ssize_t cnt, real bias, bint relu) noexcept nogil:
    """A^T m A (+ bias, relu) of the output tiles r0 .. r0 + cnt - 1 of one plane; 0 if one is
    not finite."""
    if t.spec != NULL:
        if real is float:
            return wg_output_run_f(t.spec, m, ms, plane, t.Ho, t.Wo, t.tw, r0, cnt, bias, relu)
        else:
            return wg_output_run_d(t.spec, m, ms, plane, t.Ho, t.Wo, t.tw, r0, cnt, bias, relu)
    elif real is float:
        return wino_output_run_f(m, ms, plane, t.Ho, t.Wo, t.tw, r0, cnt, bias, relu)
    else:
        return wino_output_run_d(m, ms, plane, t.Ho, t.Wo, t.tw, r0, cnt, bias, relu)


cdef struct Run:
    Py_ssize_t n, r, cnt   # image, its first tile, and how many of its tiles follow in the block


cdef inline Run _run_at(const Tiles* t, Py_ssize_t tt, Py_ssize_t end) noexcept nogil:
    """The run of tiles from global tile tt to the end of its image or to `end`. (Returned, not
    written through pointers: a variable assigned in a prange body is thread-private.)"""
    cdef Run run
    run.n = tt // t.per_image
    run.r = tt - run.n * t.per_image
    run.cnt = min(t.per_image - run.r, end - tt)
    return run


cdef void _wino_forward(const real* x, const real* U, const real* b, real* y, Py_ssize_t Cin,
                        Py_ssize_t Cout, const Tiles* t, int TB, real* work, bint has_bias, bint relu,
                        int* finite, int n_threads) noexcept nogil:
    """y (N, Cout, Ho, Wo) from x (N, Cin, H, W) and U (a2, Cout, Cin), the transformed kernels;
    finite[blk] = 0 when block blk of TB tiles has an output that is not finite."""
    cdef Py_ssize_t blk, n_blocks = (t.total + TB - 1) // TB
    cdef Py_ssize_t t0, t1, tt, c, f, plane = t.H * t.W, oplane = t.Ho * t.Wo
    cdef Py_ssize_t k, a2 = t.a2
    cdef Py_ssize_t vs = _position_stride(Cin, TB), ms = _position_stride(Cout, TB)
    cdef Run run
    cdef real* V
    cdef real* M
    for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
        V = work + <Py_ssize_t>threadid() * a2 * (vs + ms)
        M = V + a2 * vs
        t0 = blk * TB
        t1 = min(t0 + TB, t.total)
        tt = t0
        while tt < t1:
            run = _run_at(t, tt, t1)
            _input_tiles(x + run.n * Cin * plane, Cin, t, run.r, run.cnt, V, vs, TB, tt - t0)
            tt = tt + run.cnt
        for k in range(a2):  # M_k (Cout, nb) = U_k (Cout, Cin) @ V_k (Cin, nb)
            if real is float and t.spec == NULL and TB % 16 == 0:  # columns past nb: never read
                conv_gemm_f(U + <Py_ssize_t>k * Cout * Cin, Cin, 1, V + k * vs, TB, M + k * ms, TB, Cout, Cin,
                            (t1 - t0 + 15) // 16 * 16)
            else:
                _gemm(c"N" if t.spec == NULL else c"T", c"N", <int>(t1 - t0), Cout, Cin, 1,
                      V + k * vs, TB if t.spec == NULL else Cin,
                      U + <Py_ssize_t>k * Cout * Cin, Cin, 0, M + k * ms, TB)
        tt = t0
        while tt < t1:
            run = _run_at(t, tt, t1)
            for f in range(Cout):
                finite[blk] = finite[blk] & _output_run(M + f * TB + (tt - t0), ms,
                                                        y + (run.n * Cout + f) * oplane, t, run.r, run.cnt,
                                                        b[f] if has_bias else 0, relu)
            tt = tt + run.cnt


cdef void _wino_weight_grad(const real* dy, const real* x, real* Mparts, Py_ssize_t C, Py_ssize_t F,
                            const Tiles* t, int TB, real* work, int n_threads) noexcept nogil:
    """Mparts (threads, a2, F, C) += per-thread sums over tiles of (A dy A^T)_k (B^T d B)_k."""
    cdef Py_ssize_t blk, n_blocks = (t.total + TB - 1) // TB
    cdef Py_ssize_t t0, t1, tt, c, f, plane = t.H * t.W, oplane = t.Ho * t.Wo
    cdef Py_ssize_t k, a2 = t.a2
    cdef Py_ssize_t xs = _position_stride(C, TB), ds = _position_stride(F, TB)
    cdef int tid
    cdef Run run
    cdef real* X
    cdef real* D
    cdef real* Mt
    for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
        tid = threadid()
        X = work + <Py_ssize_t>tid * a2 * (xs + ds)
        D = X + a2 * xs
        Mt = Mparts + <Py_ssize_t>tid * a2 * F * C
        t0 = blk * TB
        t1 = min(t0 + TB, t.total)
        tt = t0
        while tt < t1:
            run = _run_at(t, tt, t1)
            _input_tiles(x + run.n * C * plane, C, t, run.r, run.cnt, X, xs, TB, tt - t0)
            for f in range(F):
                _grad_run(dy + (run.n * F + f) * oplane, t, run.r, run.cnt,
                          D + f * TB + (tt - t0), ds)
            tt = tt + run.cnt
        for k in range(a2):  # M_k (F, C) += D_k (F, nb) @ X_k (C, nb)^T
            _gemm(c"T" if t.spec == NULL else c"N", c"N", C, F, <int>(t1 - t0), 1, X + k * xs,
                  TB if t.spec == NULL else C, D + k * ds, TB, 1, Mt + <Py_ssize_t>k * F * C, C)


cdef int _wino_block(int channels, Py_ssize_t a2, Py_ssize_t total, int n_threads) noexcept nogil:
    """Tiles per block: a multiple of 16, 32 or 64 to 512, so that a block's transformed tiles, a2 *
    channels * TB values, stay near 1 MiB in float32 (L2 is 2 MiB). Where the blocks are few (at most
    8 a thread), their count is rounded up to a multiple of the threads' and TB shrunk to match, so the
    threads get equal shares (1x64->64 56x56 3x3: 196 tiles in 5 blocks of 48 ran 3:2 on 2 threads; in
    6 of 33, forward 0.47-0.62 -> 0.41 ms). Not where they are many: a TB off a multiple of 16 leaves
    the GEMMs' rows unaligned (32x64->64 32x32 in 44 blocks of 47, not 43 of 48: forward 3.3 -> 4.5
    ms, /work/s16/c2.py). Budgets measured side by side (a probe script not kept; before the floor of
    64 was set), 1 thread, ms fwd+bwd for budgets 2^14/2^15/2^16 values per transform position:
    64->64 on 32x32 34.1/35.9/39.3, 128->128 on 16x16 30.3/30.3/31.9, 256->256 on 8x8 31.2/29.6/30.2
    (there TB = 32 costs ~3% against 64-128)."""
    cdef int floor = 64 if a2 == 16 else 32  # the larger tiles' blocks are 2.25-4x larger per tile
    cdef Py_ssize_t tb = (1 << 18) // a2 // channels // 16 * 16
    tb = floor if tb < floor else (512 if tb > 512 else tb)
    cdef Py_ssize_t blocks = (total + tb - 1) // tb
    if blocks % n_threads == 0 or blocks > 8 * n_threads:  # many blocks: an uneven split costs little
        return <int>tb
    blocks = (blocks + n_threads - 1) // n_threads * n_threads
    tb = (total + blocks - 1) // blocks
    cdef Py_ssize_t tb16 = (tb + 15) // 16 * 16  # a multiple of 16 where it splits as evenly
    return <int>(tb16 if (total + tb16 - 1) // tb16 % n_threads == 0 else tb)


cdef void _kernel_transforms(const Tiles* t, const real* g, Py_ssize_t gs, Py_ssize_t gi, Py_ssize_t gj,
                             Py_ssize_t cnt, real* u, Py_ssize_t us) noexcept nogil:
    """u[k * us + i] = (G g_i G^T)[k] for the kernels g_i = g + i * gs (g_i[p, q] at p * gi + q * gj), i < cnt."""
    cdef const wino_spec* spec = t.spec if t.spec != NULL else &wino_f2r3_kernels
    if real is float and t.spec == NULL:
        wino_f2_kernels_f(g, gs, gi, gj, cnt, u, us)
    elif real is float:
        wg_kernels_f(spec, g, gs, gi, gj, cnt, u, us)
    else:
        wg_kernels_d(spec, g, gs, gi, gj, cnt, u, us)


cdef void _kernel_grad_transforms(const Tiles* t, const real* M, Py_ssize_t ms, Py_ssize_t cnt, real* dw,
                                  Py_ssize_t ds) noexcept nogil:
    """dw_i (at dw + i * ds) = G^T m_i G, m_i[k] = M[k * ms + i], i < cnt."""
    cdef const wino_spec* spec = t.spec if t.spec != NULL else &wino_f2r3_kernels
    if real is float and t.spec == NULL:
        wino_f2_kernel_grads_f(M, ms, cnt, dw, ds)
    elif real is float:
        wg_kernel_grads_f(spec, M, ms, cnt, dw, ds)
    else:
        wg_kernel_grads_d(spec, M, ms, cnt, dw, ds)


cdef Py_ssize_t _wino_threads(const Tiles* t, int TB, int n_threads) noexcept nogil:
    """Threads of a Winograd loop: one per block of TB tiles at most."""
    return min(<Py_ssize_t>n_threads, (t.total + TB - 1) // TB)


cdef Py_ssize_t _wino_forward_work(const Geometry* g, Py_ssize_t N, int n_threads) noexcept nogil:
    cdef Tiles t = _tiles(N, g.H, g.W, g.Ho, g.Wo, g.ph, g.pw, _wino_spec(g, False))
    cdef int TB = _wino_block(g.C + g.F, t.a2, t.total, n_threads)
    return _wino_threads(&t, TB, n_threads) * t.a2 * (_position_stride(g.C, TB) + _position_stride(g.F, TB))


cdef int _wino_forward_typed(const real[::1] x, const real[::1] w, const real[::1] b, real[::1] y,
                             const Geometry* g, Py_ssize_t N, bint has_bias, bint relu,
                             int n_threads, real* work) except -1:
    """y by Winograd; 1 if every output is finite, else 0 (the caller recomputes y)."""
    cdef Tiles t = _tiles(N, g.H, g.W, g.Ho, g.Wo, g.ph, g.pw, _wino_spec(g, False))
    cdef int TB = _wino_block(g.C + g.F, t.a2, t.total, n_threads)
    cdef Py_ssize_t nt = _wino_threads(&t, TB, n_threads)
    cdef real[::1] U = np.empty(t.a2 * g.F * g.C, np.float32 if real is float else np.float64)
    cdef Py_ssize_t f, r = g.KH
    cdef const real* b_ptr = &b[0] if b.shape[0] else NULL
    cdef int[::1] finite = np.ones((t.total + TB - 1) // TB, np.intc)
    with nogil:  # every parallel region of the call takes nt threads
        for f in prange(g.F, schedule="static", num_threads=nt):
            _kernel_transforms(&t, &w[f * g.C * r * r], r * r, r, 1, g.C, &U[f * g.C], g.F * g.C)
        _wino_forward(&x[0], &U[0], b_ptr, &y[0], g.C, g.F, &t, TB, work, has_bias, relu, &finite[0], <int>nt)
    return _min_flag(finite)


cdef int _min_flag(const int[::1] flags) noexcept:
    cdef Py_ssize_t i
    for i in range(flags.shape[0]):
        if not flags[i]:
            return 0
    return 1


cdef int _wino_backward_tiles(const Geometry* g, Py_ssize_t N, int n_threads, Tiles* td,
                              Tiles* tw) noexcept nogil:
    """The tiles of the input gradient (the forward of dy, padding r - 1 - p) and of the weight
    gradient; returns the tiles per block."""
    cdef const wino_spec* spec = _wino_spec(g, True)
    td[0] = _tiles(N, g.Ho, g.Wo, g.H, g.W, g.KH - 1 - g.ph, g.KW - 1 - g.pw, spec)
    tw[0] = _tiles(N, g.H, g.W, g.Ho, g.Wo, g.ph, g.pw, spec)
    return _wino_block(g.C + g.F, tw.a2, max(td.total, tw.total), n_threads)


cdef void _wino_backward_sizes(const Geometry* g, Py_ssize_t N, int n_threads, Py_ssize_t* ntd,
                               Py_ssize_t* ntw, Py_ssize_t* parts, Py_ssize_t* work) noexcept nogil:
    """Threads of the input and weight gradients' loops; workspace: the per-thread dU sums, then
    each thread's transformed tiles."""
    cdef Tiles td, tw
    cdef int TB = _wino_backward_tiles(g, N, n_threads, &td, &tw)
    ntd[0] = _wino_threads(&td, TB, n_threads)
    ntw[0] = _wino_threads(&tw, TB, n_threads)
    parts[0] = ntw[0] * tw.a2 * g.F * g.C
    work[0] = max(ntd[0], ntw[0]) * tw.a2 * (_position_stride(g.C, TB) + _position_stride(g.F, TB))


cdef int _wino_backward_typed(const real[::1] dy, const real[::1] x, const real[::1] w,
                              real[::1] dx, real[::1] dw, const Geometry* g, Py_ssize_t N, bint input_grad,
                              int n_threads, real* workspace) except -1:
    """dx (if input_grad) and dw by Winograd; 1 if all of them are finite, else 0 (to recompute)."""
    # dx = Winograd forward of dy with kernel w'[c, f, i, j] = w[f, c, r-1-i, r-1-j]
    cdef Py_ssize_t r = g.KH
    cdef Tiles td, tw
    cdef int TB = _wino_backward_tiles(g, N, n_threads, &td, &tw)
    cdef Py_ssize_t ntd, ntw, parts, work_size
    _wino_backward_sizes(g, N, n_threads, &ntd, &ntw, &parts, &work_size)
    cdef int nt = <int>max(ntd, ntw)  # for the call's small parallel loops
    cdef Py_ssize_t f, c, i, p, size = tw.a2 * g.F * g.C
    cdef real[::1] U = np.empty(size if input_grad else 1, np.float32 if real is float else np.float64)
    cdef real* Mparts = workspace
    cdef real* work = workspace + parts
    cdef int[::1] finite = np.ones((td.total + TB - 1) // TB, np.intc)
    cdef bint dw_finite
    with nogil:
        memset(Mparts, 0, parts * sizeof(real))
        if input_grad:
            for c in prange(g.C, schedule="static", num_threads=nt):  # w'[c, f] = w[f, c] flipped
                _kernel_transforms(&td, &w[c * r * r + r * r - 1], g.C * r * r, -r, -1, g.F, &U[c * g.F],
                                   g.F * g.C)
            _wino_forward(&dy[0], &U[0], NULL, &dx[0], g.F, g.C, &td, TB, work, False, False, &finite[0],
                          <int>ntd)
        _wino_weight_grad(&dy[0], &x[0], Mparts, g.C, g.F, &tw, TB, work, <int>ntw)
        if ntw > 1:  # merge the per-thread sums (each element on its own: no race)
            for p in prange(size, schedule="static", num_threads=nt):
                for i in range(1, ntw):
                    Mparts[p] += Mparts[i * size + p]
        for f in prange(g.F, schedule="static", num_threads=nt):
            _kernel_grad_transforms(&tw, &Mparts[f * g.C], g.F * g.C, g.C, &dw[f * g.C * r * r], r * r)
        dw_finite = _all_finite(&dw[0], dw.shape[0])
    return dw_finite and _min_flag(finite)


# Where Winograd pays (_winograd_pays): measured against the path the call took otherwise (im2col +
# GEMM, or the direct kernel), Winograd forced on, both in one process, 2 threads, wall time,
# Winograd / other, forward and backward (/work/s16/rules_force.py and rules_force2.py with a
# temporary hook, not kept in the repository). Since each transform position's block got its gap
# (WINO_GAP) Winograd wins far beyond the rules measured before it, which kept im2col for 3x3 backwards
# with F > 2C, F < 16 and images under 6x6, and for most 5x5 and 7x7 backwards:
#   3x3 (N = 32, 32x32 unless noted): 16->64 1.01 / 0.58, 32->128 on 16x16 1.02 / 0.42, 16->8 0.41 /
#   0.31, 16->4 0.88 / 0.46, 8->64 on 16x16 0.98 / 0.82, 6->32 0.90 / 0.65; 64->64 on 3x3 0.75 / 0.99,
#   on 4x4 (128->128) 0.62 / 0.60, 256->256 on 2x2 0.44 / 0.51 (under 4x4: not taken, see _winograd_pays);
#   5x5: 8->16 on 8x8 0.74 / 0.58, 16->16 on 4x4 0.44 / 0.43, 64->64 on 6x6 0.40 / 0.43, 32->64 on
#   8x8 - / 0.36, 8->32 on 16x16 0.51 / 0.46;
#   7x7 (N = 8): 32->64 on 14x14 - / 0.50, 32->32 on 20x20 - / 0.43, 16->16 on 7x7 1.00 / 0.57, 64->64
#   on 4x4 0.62 / 0.71 ("-": Winograd already; under 12x12: not taken, see _winograd_pays);
#   and where it loses: too few channels, 8->8 on 16x16 1.20 / 1.94, 4->16 1.67 / 1.54, 4->32 1.10 /
#   0.82, 5x5 4->32 on 16x16 1.17 / 0.84, 7x7 4->64 on 28x28 2.23 / 1.75 (the direct kernel).
cdef bint _winograd_applies(const Geometry* g) noexcept nogil:
    """3x3, 5x5 or 7x7, stride 1, dilation 1, one group, padding <= r - 1 (the input gradient pads by
    r - 1 - p)."""
    return (g.KH == g.KW and (g.KH == 3 or g.KH == 5 or g.KH == 7) and g.sh == 1 and g.sw == 1
            and g.dh == 1 and g.dw == 1 and g.G == 1 and g.ph < g.KH and g.pw < g.KW)


cdef const wino_spec* _wino_spec(const Geometry* g, bint backward) noexcept nogil:
    """The tile of a kernel that _winograd_applies to: F(4x4, 5x5) and F(2x2, 7x7) from the table, and
    for 3x3 F(4x4, 3x3), or F(2x2, 3x3) written out (NULL) on small images, where the larger tile lost.
    Measured side by side, before WINO_GAP (2 threads, wall time, F(4x4) / F(2x2), forward and
    backward; the script was not kept): 32x64->64 on 32x32 0.87 / 0.71, 32x128->128 on 16x16 0.68 /
    0.69, 16x256->256 on 14x14 0.81 / 0.89, 8x64->64 on 56x56 0.76 / 0.69, 32x48->64 on 27x27 1.02 /
    0.81; on 8x8, 32x256->256 0.77 / 1.12; on 7x7, 32x512->512 0.99 / 1.36 (the backward's a^2 F C
    per-thread sums grow with the tile). Again after it (/work/s16/spec_ab.py, a temporary hook): on
    8x8 32x256->256 0.83 / 1.02, 32x64->64 1.00 / 0.85; on 7x7 32x512->512 1.14 / 1.28; on 10x10
    32x128->128 1.26 / 1.07; 16x256->256 on 14x14 0.85 / 0.95: the rule stands (the 8x8 backward of
    few channels and the 10x10 forward would gain ~15-20%, left as they are)."""
    if g.KH == 3:
        if (g.Ho >= 12 and g.Wo >= 12) or (not backward and g.Ho >= 8 and g.Wo >= 8):
            return wino_spec_for(4, 3)
        return NULL
    if g.KH == 5:
        return wino_spec_for(4, 5)
    return wino_spec_for(2, 7)


cdef bint _winograd_pays(const Geometry* g) noexcept nogil:
    """Winograd for the forward and the backward: enough channels (see the measurements above), and
    outputs of at least 4x4 (3x3), 8x8 (5x5) or 12x12 (7x7). Smaller images ran faster still, but
    their weight gradient, a sum over few outputs, left the tests' tolerance rule (written for sums
    of that length), where Winograd's error does not shrink with the sum: a batch of one, 3x3 on 2x3
    outputs up to 16x the bound, 7x7 on 8x8 up to 1.4x; 4x4, 8x8 and 10x10 (7x7) stayed inside it over
    336 random shapes and weights (/work/s16/acc_probe*.py, not kept in the repository)."""
    cdef Py_ssize_t smallest = 4 if g.KH == 3 else (8 if g.KH == 5 else 12)
    return (_winograd_applies(g) and g.C >= 8 and g.C + g.F >= 24 and g.Ho >= smallest
            and g.Wo >= smallest)


# Benchmark hook: bench/probes/conv_stem_weight_grad.py clears it to time the im2col + GEMM path
# on the shapes where Winograd or the direct kernel runs.
_fast_paths_enabled = True


cdef Py_ssize_t _direct_threads(const Geometry* g, Py_ssize_t N, int n_threads) noexcept nogil:
    """Threads of _direct_forward: one per (image, group) task at most (a batch of one still splits
    its groups)."""
    return min(N * g.G, <Py_ssize_t>n_threads)


cdef Py_ssize_t _forward_work(const Geometry* g, Py_ssize_t N, int n_threads, bint is_float) except -1:
    """Workspace elements of the forward's path (Winograd also reserves the im2col fallback's)."""
    cdef Py_ssize_t loop_threads = min(N, <Py_ssize_t>n_threads)
    cdef Py_ssize_t gemm = 0 if g.direct else loop_threads * g.K * g.B
    cdef dw_geometry d = _dw_geometry(g)
    if _fast_paths_enabled and _depthwise_pays(g):
        return min(N * g.C, <Py_ssize_t>n_threads) * fnn_dw_forward_scratch(&d)
    if _fast_paths_enabled and _winograd_pays(g):
        return max(gemm, _wino_forward_work(g, N, n_threads))
    if _fast_paths_enabled and is_float and _direct_forward_pays(g):
        return _direct_forward_work(g, N, n_threads)
    return gemm


def _forward_entry(const real[::1] x, const real[::1] w, const real[::1] b, real[::1] y, real[::1] work,
                   tuple x_shape, tuple w_shape, tuple y_shape, tuple params, bint has_bias, bint relu,
                   int n_threads):
    """The forward's path: Winograd (kept when y is finite), the direct float32 kernel, or im2col + GEMM.
    Images in parallel, one BLAS thread each (the dispatcher caps BLAS): with fewer images than
    threads, handing the GEMMs BLAS's own threads instead was measured no faster forward and 12-22x
    slower backward (N = 1, 64->128 channels, 56x56, 3x3 stride 2, 2 threads: 0.71 vs 0.70 ms,
    18-31 vs 1.4 ms: OpenBLAS's workers and the OpenMP pool fight over the cores)."""
    cdef Geometry g = _geometry(x_shape, w_shape, y_shape, params, sizeof(real))
    cdef Py_ssize_t N = x_shape[0]
    cdef int loop_threads = <int>min(N, <Py_ssize_t>n_threads)
    if N == 0:
        return
    cdef dw_geometry d = _dw_geometry(&g)
    if _fast_paths_enabled and _depthwise_pays(&g):
        _dw_forward(x, w, b, y, work, N, &d, has_bias, relu, n_threads)
        return
    if _fast_paths_enabled and _winograd_pays(&g):
        if _wino_forward_typed(x, w, b, y, &g, N, has_bias, relu, n_threads, &work[0]):
            return
    if real is float:
        if _fast_paths_enabled and _direct_forward_pays(&g):
            _direct_forward(x, w, b, y, N, &g, work, has_bias, relu, <int>_direct_threads(&g, N, n_threads))
            return
    _forward_typed(x, w, b, y, N, &g, work, has_bias, relu, loop_threads)


cdef void _forward_typed(const real[::1] x, const real[::1] w, const real[::1] b, real[::1] y,
                         Py_ssize_t N, const Geometry* g, real[::1] work, bint has_bias, bint relu,
                         int n_threads) noexcept:
    cdef real* work_ptr = &work[0] if work.shape[0] else NULL
    cdef const real* b_ptr = &b[0] if b.shape[0] else NULL
    with nogil:
        _forward(&x[0], &w[0], b_ptr, &y[0], N, g, work_ptr, has_bias, relu, n_threads)


def _flat(a):
    return a.reshape(-1)


def _bias(b, x):
    return np.empty(0, x.dtype) if b is None else b


def _forward_work_entry(const real[::1] x, tuple x_shape, tuple w_shape, tuple y_shape, tuple params,
                        int n_threads):
    cdef Geometry g = _geometry(x_shape, w_shape, y_shape, params, sizeof(real))
    return _forward_work(&g, x_shape[0], n_threads, real is float)


def conv2d_workspace(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads):
    return _forward_work_entry(_flat(x), x.shape, w.shape, y.shape, (sh, sw, ph, pw, dh, dw, groups), n_threads)


def conv2d(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, workspace):
    _forward_entry(_flat(x), _flat(w), _bias(b, x), _flat(y), workspace, x.shape, w.shape, y.shape,
                   (sh, sw, ph, pw, dh, dw, groups), b is not None, False, n_threads)


conv2d_relu_workspace = conv2d_workspace


def conv2d_relu(x, w, b, y, sh, sw, ph, pw, dh, dw, groups, n_threads, workspace):
    _forward_entry(_flat(x), _flat(w), _bias(b, x), _flat(y), workspace, x.shape, w.shape, y.shape,
                   (sh, sw, ph, pw, dh, dw, groups), b is not None, True, n_threads)
cdef void _backward(const real* dy, const real* x, const real* w, real* dx, real* dw_parts,
                    real* work, Py_ssize_t N, const Geometry* g, bint weight_grad, bint input_grad,
                    int n_threads) noexcept nogil:
    """Per-thread partial weight gradients dw_parts (n_threads, F, K) if weight_grad; dx if input_grad.
    Pixels in blocks of B: each thread's workspace holds col (K, B) if weight_grad, then dcol (K, B)
    if input_grad."""
    cdef Py_ssize_t n, grp, tid, p0, nb
    cdef real* col
    cdef real* dcol
    cdef const real* xg
    cdef const real* wg
    cdef const real* dyg
    cdef real* dxg
    cdef real* dwt
    for n in prange(N, schedule="static", num_threads=n_threads):
        tid = threadid()
        col = work + tid * (weight_grad + input_grad) * g.K * g.B
        dcol = col + weight_grad * g.K * g.B
        dwt = dw_parts + tid * g.F * g.K
        for grp in range(g.G):
            dyg = dy + (n * g.F + grp * g.Fg) * g.P
            xg = x + (n * g.C + grp * g.Cg) * g.H * g.W
            wg = w + grp * g.Fg * g.K
            dxg = dx + (n * g.C + grp * g.Cg) * g.H * g.W if input_grad else NULL
            if g.direct:
                if weight_grad:  # dw_g (Fg, K) += dy_g (Fg, P) @ x_g^T
                    _gemm(c"T", c"N", g.K, g.Fg, g.P, 1, xg, g.P, dyg, g.P, 1, dwt + grp * g.Fg * g.K, g.K)
                if input_grad:  # dx_g (Cg, P) = w_g^T @ dy_g
                    _gemm(c"N", c"T", g.P, g.K, g.Fg, 1, dyg, g.P, wg, g.K, 0, dxg, g.P)
                continue
            if input_grad:
                memset(dxg, 0, g.Cg * g.H * g.W * sizeof(real))
            p0 = 0
            while p0 < g.P:  # the block of pixels p0 .. p0 + nb - 1: dy_g[:, p0:p0 + nb] has row stride P
                nb = min(g.B, g.P - p0)
                if weight_grad:  # dw_g (Fg, K) += dy_g block (Fg, nb) @ col^T
                    _im2col(xg, col, g, p0, nb)
                    _gemm(c"T", c"N", g.K, g.Fg, nb, 1, col, nb, dyg + p0, g.P, 1, dwt + grp * g.Fg * g.K, g.K)
                if input_grad:  # dcol (K, nb) = w_g^T @ dy_g block, scattered into dx_g
                    if real is float and nb % 16 == 0:
                        conv_gemm_f(wg, 1, g.K, dyg + p0, g.P, dcol, nb, g.K, g.Fg, nb)
                    else:
                        _gemm(c"N", c"T", nb, g.K, g.Fg, 1, dyg + p0, g.P, wg, g.K, 0, dcol, nb)
                    _col2im(dcol, dxg, g, p0, nb)
                p0 = p0 + nb


cdef extern from "conv_direct.h" nogil:
    int DIRECT_GRAD_FB
    Py_ssize_t direct_grad_phase_width(Py_ssize_t W, Py_ssize_t pw, Py_ssize_t KW, Py_ssize_t sw,
                                       Py_ssize_t Wo)
    void direct_weight_grad_f(const float* xp, const float* dy, float* lanes, Py_ssize_t C, Py_ssize_t H,
                              Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t ph, Py_ssize_t sh,
                              Py_ssize_t sw, Py_ssize_t Wq, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Wd,
                              int narrow)
    void direct_pad_rows(const float* dy, float* dst, Py_ssize_t rows, Py_ssize_t Wo, Py_ssize_t Wd)
    void direct_grad_lanes_sum(const float* lanes, float* dw, Py_ssize_t n)


cdef bint _direct_grad_pays(const Geometry* g) noexcept nogil:
    """The direct forward's ungrouped shapes (few channels, 7x7 and up), whole 16-lane rows (Wo % 16
    == 0). Measured on ThreeLayerConvNet's stem (50, 3->32, 32x32, 7x7, pad 3), float32 weight and bias
    gradients (input_grad=False), 2 threads, side by side (bench/probes/conv_stem_weight_grad.py):
    direct 1.43 / 2.12 ms against im2col + GEMM 3.08 / 3.36 ms in two runs an hour apart.
    Grouped: the direct forward's grouped shapes with kernels up to 3 wide (the narrow variant, 4
    filters x 3 columns a register block), rows of outputs at least 80% of whole vectors (dy's rows
    padded to them). 2 threads, wall time, dw only, direct / im2col + GEMM, best of 9, two runs
    (/work/s15/grp_dw.py, not kept): (32, 64->64, 28, 3x3, 4 groups) 1.71 / 4.16, 1.68 / 4.04;
    (16, 32->32, 56, 3x3, 2 groups) 1.54 / 3.79, 1.55 / 3.69; (32, 128->128, 14, 3x3, 8 groups)
    1.21 / 2.55. 5x5 lost with 8 filters x 3 columns: (8, 96->96, 17, 5x5, 3 groups)
    5.8 / 2.3 (an earlier build of the kernel).
    Padding below the kernel size, as _direct_pays."""
    if not (g.dh == 1 and g.dw == 1 and g.ph < g.KH and g.pw < g.KW):
        return False
    if g.G > 1:
        return (_direct_pays(g) and g.KW <= 3 and g.Fg % DIRECT_GRAD_FB == 0
                and _direct_grad_row(g) * 4 <= g.Wo * 5)
    return g.C <= 4 and g.KH >= 7 and g.KW >= 7 and g.Wo % 16 == 0 and g.F % DIRECT_GRAD_FB == 0


cdef inline Py_ssize_t _direct_grad_row(const Geometry* g) noexcept nogil:
    """dy's row width for the direct weight gradient: Wo rounded up to whole 16-lane vectors."""
    return (g.Wo + 15) // 16 * 16


cdef inline bint _direct_grad_copies_dy(const Geometry* g) noexcept nogil:
    """dy is copied into whole, aligned vectors per row where its rows are not whole vectors, and
    for groups, whose narrow kernel loads each dy vector once per FMA row (a load split across two
    cache lines costs two: the aligned copy took 32x64->64 28x28 g4's dw 3.1 -> 2.2 ms)."""
    return g.G > 1 or _direct_grad_row(g) != g.Wo


cdef Py_ssize_t _direct_grad_work(const Geometry* g) noexcept nogil:
    """Elements of one thread's workspace for _direct_weight_grad: its lanes, its image, then (see
    _direct_grad_copies_dy) its copy of dy, 64-byte aligned."""
    cdef Py_ssize_t Wd = _direct_grad_row(g)
    cdef Py_ssize_t Wq = direct_grad_phase_width(g.W, g.pw, g.KW, g.sw, Wd)
    return (16 * g.F * g.K + _padded_image(g, Wq)
            + (g.Fg * g.Ho * Wd + 16 if _direct_grad_copies_dy(g) else 0))


cdef void _direct_weight_grad(const float* x, const float* dy, float* dw_parts, float* work, Py_ssize_t N,
                              const Geometry* g, int n_threads) noexcept nogil:
    """dw_parts (n_threads, F, K) = each thread's share of the weight gradient (the direct kernels
    over a static block of images, group by group)."""
    cdef Py_ssize_t Wd = _direct_grad_row(g)
    cdef Py_ssize_t Wq = direct_grad_phase_width(g.W, g.pw, g.KW, g.sw, Wd)
    cdef Py_ssize_t t, n, grp, lanes_size = 16 * g.F * g.K, per_thread = _direct_grad_work(g)
    cdef float* lanes
    cdef float* xp
    cdef float* dyp
    cdef const float* dyg
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        lanes = work + t * per_thread
        xp = lanes + lanes_size
        dyp = <float*>((<size_t>(xp + _padded_image(g, Wq)) + 63) & ~(<size_t>63))
        memset(lanes, 0, lanes_size * sizeof(float))
        for n in range(chunk_start(N, t, n_threads), chunk_start(N, t + 1, n_threads)):
            for grp in range(g.G):
                direct_pad_split(x + (n * g.C + grp * g.Cg) * g.H * g.W, xp, g.Cg, g.H, g.W, g.ph, g.pw,
                                 g.sw, g.H + 2 * g.ph, Wq)
                dyg = dy + (n * g.F + grp * g.Fg) * g.P
                if _direct_grad_copies_dy(g):
                    direct_pad_rows(dyg, dyp, g.Fg * g.Ho, g.Wo, Wd)
                    dyg = dyp
                direct_weight_grad_f(xp, dyg, lanes + grp * g.Fg * g.K * 16, g.Cg, g.H, g.Fg, g.KH, g.KW,
                                     g.ph, g.sh, g.sw, Wq, g.Ho, g.Wo, Wd, g.G > 1)
        direct_grad_lanes_sum(lanes, dw_parts + t * g.F * g.K, g.F * g.K)


cdef bint _lanes_grad_pays(const Geometry* g) noexcept nogil:
    """The weight gradient with filters in the lanes: the lanes forward's shapes (_lanes_pays). Builds
    swapped in turn, 2 threads, wall time, forward + backward (/work/s18/convrows.py, not kept),
    against im2col + GEMM's weight gradient: (16, 128->256, 16, 3x3 stride 2) 5.35-5.80 / 6.13-6.33
    ms, (32, 64->128, 32, 3x3 stride 2) 11.2-11.6 / 12.4-12.5, (16, 24->48, 33, 5x5 stride 2)
    2.99-3.11 / 3.79-3.80, (8, 3->64, 112, 7x7 stride 2) 4.66-5.29 / 5.79. Grouped stride-1 rows of
    more than 16 outputs kept the pixel kernel (direct_weight_grad_f) or im2col + GEMM until one filter
    vector's 3x3 gradient took 4 pixels at a time; since, dw alone, 2 threads, median of 9 (min of 5
    each), other / lanes (/work/s22/wide.py, a temporary switch): (32, 64->64, 28, 3x3, 4 groups)
    1.67 / 1.36 ms, (16, 32->32, 56, 3x3, 2 groups) 1.45 / 1.32, (32, 64->64, 28, 3x3, 2 groups)
    2.99 / 2.22, (16, 48->48, 56, 3x3, 3 groups) 2.42 / 2.10, (32, 128->128, 28, 3x3, 8 groups) 3.69
    / 3.12; im2col + GEMM (32, 96->96, 20, 3x3, 6 groups) 4.96 / 1.11, (32, 64->64, 28, 5x5, 4
    groups) 15.2 / 3.80."""
    return _lanes_pays(g)


cdef Py_ssize_t _lanes_grad_work(const Geometry* g) noexcept nogil:
    """Elements of one thread's workspace for _lanes_weight_grad: its packed sums, its image, its
    transposed dy."""
    return g.F * g.K + _padded_image(g, lanes_phase_width(g.W, g.pw, g.KW, g.sw, g.Wo)) + g.Fg * g.P


cdef void _lanes_weight_grad(const float* x, const float* dy, float* dw_parts, float* work, Py_ssize_t N,
                             const Geometry* g, int n_threads) noexcept nogil:
    """dw_parts (n_threads, F, K) = each thread's share of the weight gradient (conv_lanes.h over a
    static block of images, group by group; its packed sums unpacked once at the end)."""
    cdef int FV = _lanes_vectors(g)
    cdef Py_ssize_t Wq = lanes_phase_width(g.W, g.pw, g.KW, g.sw, g.Wo), per_thread = _lanes_grad_work(g)
    cdef Py_ssize_t t, n, grp
    cdef float* sums
    cdef float* xp
    cdef float* dyt
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        sums = work + t * per_thread
        xp = sums + g.F * g.K
        dyt = xp + _padded_image(g, Wq)
        memset(sums, 0, g.F * g.K * sizeof(float))
        for n in range(chunk_start(N, t, n_threads), chunk_start(N, t + 1, n_threads)):
            for grp in range(g.G):
                direct_pad_split(x + (n * g.C + grp * g.Cg) * g.H * g.W, xp, g.Cg, g.H, g.W, g.ph, g.pw,
                                 g.sw, g.H + 2 * g.ph, Wq)
                lanes_transpose_dy(dy + (n * g.F + grp * g.Fg) * g.P, dyt, g.Fg, g.P, FV)
                lanes_weight_grad_f(xp, dyt, sums + grp * g.Fg * g.K, g.Cg, g.H + 2 * g.ph, Wq, g.Fg, g.KH,
                                    g.KW, g.sh, g.sw, g.Ho, g.Wo, FV)
        lanes_unpack_weights(sums, dw_parts + t * g.F * g.K, g.F, g.K, FV)


cdef void _backward_typed(const real[::1] dy, const real[::1] x, const real[::1] w, real[::1] dx,
                          real[::1] dw, real[::1] dw_parts, real[::1] work, Py_ssize_t N,
                          const Geometry* g, bint direct_grad, bint input_grad, int n_threads) noexcept:
    cdef Py_ssize_t i, t, size = dw.shape[0]
    cdef real acc
    cdef real* work_ptr = &work[0] if work.shape[0] else NULL
    with nogil:
        memset(&dw_parts[0], 0, dw_parts.shape[0] * sizeof(real))
        if N > 0 and direct_grad:
            if real is float and _lanes_grad_pays(g):
                _lanes_weight_grad(&x[0], &dy[0], &dw_parts[0], work_ptr, N, g, n_threads)
            elif real is float:
                _direct_weight_grad(&x[0], &dy[0], &dw_parts[0], work_ptr, N, g, n_threads)
        if N > 0 and (input_grad or not direct_grad):
            _backward(&dy[0], &x[0], &w[0], &dx[0] if input_grad else NULL, &dw_parts[0], work_ptr, N, g,
                      not direct_grad, input_grad, n_threads)
        for i in prange(size, schedule="static", num_threads=n_threads):
            acc = 0
            for t in range(dw_parts.shape[0] // size):
                acc = acc + dw_parts[t * size + i]
            dw[i] = acc


cdef extern from "conv_im2col.h" nogil:
    double sum_run_f(const float* x, Py_ssize_t n)


cdef void _bias_grad(const real[::1] dy, real[::1] db, Py_ssize_t N, Py_ssize_t F, Py_ssize_t P,
                     int n_threads) noexcept:
    """db[f] = sum of dy[:, f] (accumulated in double; float32 rows in vector runs of sum_run_f)."""
    cdef Py_ssize_t n, p, f
    cdef double s
    with nogil:
        for f in prange(F, schedule="static", num_threads=n_threads):
            s = 0
            for n in range(N):
                if real is float:
                    s = s + sum_run_f(&dy[(n * F + f) * P], P)
                else:
                    for p in range(P):
                        s = s + dy[(n * F + f) * P + p]
            db[f] = <real>s




cdef void _generic_backward_sizes(const Geometry* g, Py_ssize_t N, int n_threads, bint is_float,
                                  bint input_grad, Py_ssize_t* loop_threads, bint* direct_grad,
                                  Py_ssize_t* parts, Py_ssize_t* work) except *:
    """Threads of the im2col (or direct) backward; workspace: the per-thread dw, then per thread the
    direct gradient's image, or im2col's col (weight gradient) and dcol (dx)."""
    cdef Py_ssize_t cols, grad_work = 0
    loop_threads[0] = max(1, min(N, <Py_ssize_t>n_threads))
    direct_grad[0] = _fast_paths_enabled and is_float and (_direct_grad_pays(g) or _lanes_grad_pays(g))
    parts[0] = loop_threads[0] * g.F * g.K
    cols = 0 if g.direct else (0 if direct_grad[0] else 1) + (1 if input_grad else 0)
    if direct_grad[0]:
        grad_work = _lanes_grad_work(g) if _lanes_grad_pays(g) else _direct_grad_work(g)
    work[0] = loop_threads[0] * max(grad_work, cols * g.K * g.B)


cdef Py_ssize_t _backward_work(const Geometry* g, Py_ssize_t N, int n_threads, bint is_float,
                               bint input_grad) except -1:
    """Workspace elements of the backward's path (Winograd also reserves the fallback's)."""
    cdef Py_ssize_t loop_threads = 0, parts = 0, work = 0, ntd, ntw, wino_parts = 0, wino_work = 0
    cdef bint direct_grad
    cdef dw_geometry d = _dw_geometry(g)
    cdef dw_geometry dt = _dw_transposed(g)
    if _fast_paths_enabled and _depthwise_pays(g):
        # the backward's scratch, or (stride 1, dx as the flipped forward) that forward's if larger
        work = max(1, min(N * g.C, <Py_ssize_t>n_threads)) * fnn_dw_backward_scratch(&d, input_grad,
                                                                                     4 if is_float else 8)
        if input_grad and _dw_flipped_applies(g):
            work = max(work, min(N * g.C, <Py_ssize_t>n_threads) * fnn_dw_forward_scratch(&dt))
        return work
    cdef Geometry t
    cdef Py_ssize_t fallback
    if _fast_paths_enabled and is_float and input_grad and (_direct_input_grad_pays(g)
                                                           or _phase_input_grad_pays(g)):
        # dx by the direct kernels, then dw alone; or (w not finite) both by im2col + GEMM
        _generic_backward_sizes(g, N, n_threads, is_float, True, &loop_threads, &direct_grad, &parts, &work)
        fallback = parts + work
        _generic_backward_sizes(g, N, n_threads, is_float, False, &loop_threads, &direct_grad, &parts, &work)
        if _direct_input_grad_pays(g):
            t = _input_grad_geometry(g)
            return max(fallback, parts + work, _direct_forward_work(&t, N, n_threads))
        return max(fallback, parts + work, _phase_input_grad_work(g, N, n_threads))
    _generic_backward_sizes(g, N, n_threads, is_float, input_grad, &loop_threads, &direct_grad, &parts, &work)
    if N > 0 and _fast_paths_enabled and _winograd_pays(g):
        _wino_backward_sizes(g, N, n_threads, &ntd, &ntw, &wino_parts, &wino_work)
        return max(parts + work, wino_parts + wino_work)
    return parts + work


def _backward_entry(const real[::1] dy, const real[::1] x, const real[::1] w, real[::1] dx, real[::1] dw,
                    real[::1] db, real[::1] workspace, tuple x_shape, tuple w_shape, tuple y_shape, tuple params,
                    bint input_grad, int n_threads):
    """Depthwise, or Winograd (kept when dx and dw are finite), else im2col + GEMM (or the direct
    float32 weight gradient); then the bias gradient."""
    cdef Geometry g = _geometry(x_shape, w_shape, y_shape, params, sizeof(real))
    cdef Py_ssize_t N = x_shape[0], loop_threads, parts, work
    cdef bint direct_grad
    cdef dw_geometry dt = _dw_transposed(&g)
    cdef Geometry t
    cdef real[::1] flipped
    cdef bint gather
    if _fast_paths_enabled and _depthwise_pays(&g):
        gather = input_grad and g.Fg == 1 and _all_finite(&w[0], w.shape[0])
        if gather and _dw_flipped_applies(&g):
            flipped = np.ascontiguousarray(np.asarray(w).reshape(g.C, g.KH, g.KW)[:, ::-1, ::-1]).reshape(-1)
            _dw_forward(dy, flipped, db[:0], dx, workspace, N, &dt, False, False, n_threads)
            input_grad = False
        _dw_backward(dy, x, w, dx, dw, workspace, N, &g, input_grad, gather, n_threads)
    elif (real is float and N > 0 and input_grad and _fast_paths_enabled
          and (_direct_input_grad_pays(&g) or _phase_input_grad_pays(&g)) and _all_finite(&w[0], w.shape[0])):
        # correlations of zero-padded dy: with an inf in w, 0 * inf would be NaN where the sum has no
        # such product (im2col + GEMM's dcol has none)
        if _direct_input_grad_pays(&g):
            t = _input_grad_geometry(&g)
            _direct_forward(dy, _flipped_transposed(np.asarray(w).reshape(g.F, g.Cg, g.KH, g.KW), g.G), db[:0],
                            dx, N, &t, workspace, False, False, <int>_direct_threads(&t, N, n_threads))
        else:
            with nogil:
                _phase_input_grad(&dy[0], &w[0], &dx[0], &workspace[0], N, &g,
                                  <int>min(N * g.G, <Py_ssize_t>n_threads))
        _generic_backward_sizes(&g, N, n_threads, True, False, &loop_threads, &direct_grad, &parts, &work)
        _backward_typed(dy, x, w, dx, dw, workspace[:parts], workspace[parts:parts + work], N, &g, direct_grad,
                        False, <int>loop_threads)
    elif not (N > 0 and _fast_paths_enabled and _winograd_pays(&g)
            and _wino_backward_typed(dy, x, w, dx, dw, &g, N, input_grad, n_threads, &workspace[0])):
        _generic_backward_sizes(&g, N, n_threads, real is float, input_grad, &loop_threads, &direct_grad,
                                &parts, &work)
        _backward_typed(dy, x, w, dx, dw, workspace[:parts], workspace[parts:parts + work], N, &g, direct_grad,
                        input_grad, <int>loop_threads)
    # the bias gradient's team is the image loop's: an extra, larger OpenMP team for a small pass left
    # a spinning worker that slowed the next call ~10x on a loaded machine (N = 1, 128 x 28 x 28)
    _bias_grad(dy, db, N, g.F, g.P, <int>max(1, min(N, <Py_ssize_t>n_threads)))


def _backward_work_entry(const real[::1] x, tuple x_shape, tuple w_shape, tuple y_shape, tuple params,
                         bint input_grad, int n_threads):
    cdef Geometry g = _geometry(x_shape, w_shape, y_shape, params, sizeof(real))
    return _backward_work(&g, x_shape[0], n_threads, real is float, input_grad)


def conv2d_backward_workspace(dy, x, w, dx, dw, db, sh, sw, ph, pw, dh, dil_w, groups, input_grad, n_threads):
    return _backward_work_entry(_flat(x), x.shape, w.shape, dy.shape, (sh, sw, ph, pw, dh, dil_w, groups),
                                input_grad, n_threads)


def conv2d_backward(dy, x, w, dx, dw, db, sh, sw, ph, pw, dh, dil_w, groups, input_grad, n_threads, workspace):
    _backward_entry(_flat(dy), _flat(x), _flat(w), _flat(dx) if input_grad else np.empty(0, x.dtype), _flat(dw),
                    db, workspace, x.shape, w.shape, dy.shape, (sh, sw, ph, pw, dh, dil_w, groups), input_grad,
                    n_threads)
