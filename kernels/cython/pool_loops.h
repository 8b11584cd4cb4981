/* C loops of the Cython pools for undilated windows of any size, stride and padding (ceil_mode's
 * hanging windows included); pool.pyx runs them in parallel, a plane per call (values, average
 * backward, 2x2 max) or a thread's range of planes (winners).
 * In C rather than Cython for simd.h's ISA dispatch (FNN_CLONES) and selects without trapping
 * math: Cython's own loops, built for baseline x86-64, kept the max's selects scalar and branchy.
 *   values (max, average): per output row, the window rows clipped to x reduced vertically into a
 *     padded row (-inf or 0 in the padding), then across it, kw taps sw apart; plain loops, whose
 *     scalar remainders stay branch-free (FNN_POOL_MAX). The max of values alone is NaN if any
 *     element is NaN, else the maximum, so the order of the reduction does not matter.
 *   winners (max indices, max backward): the plane copied once into a -inf padded plane whose rows
 *     are polyphase (fnn_pool_phase), then each window offset (i, j) in row-major order over whole
 *     blocks of windows, PyTorch's rule as selects (a value wins if greater than the current
 *     maximum or NaN: first maximum on ties, last NaN). A window of -inf only has no winner;
 *     PyTorch names its first element inside x. Winners are held as offsets i * W + j in the
 *     data's type (exact: pool.pyx checks kh * W < 2^24 for float), so the selects share lanes.
 *   2x2 stride 2 max (unpadded): its own forward, in whole blocks of windows.
 * The backwards zero a dx plane while it is in cache and add into it. Average divisors are
 * torch's CPU kernel's (as pool.pyx's). */
#ifndef FASTNN_POOL_LOOPS_H
#define FASTNN_POOL_LOOPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

typedef struct {
    ptrdiff_t height, width, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw;
    int include_pad;      /* average: divisors count the padding (count_include_pad) */
    ptrdiff_t divisor;    /* average: divisor_override, or 0 for torch's per-window divisor */
    ptrdiff_t full_lo, full_hi;  /* average: the outputs whose window columns all count (kw) */
    int real_offsets;     /* max: window offsets (i * dh) * width + j * dw are exact in T */
} fnn_pool_geometry;

/* The winners' and the 2x2 max's loops run over whole blocks of FNN_POOL_LANES windows (16 floats:
 * one AVX-512 vector), on buffers padded to match: no scalar remainders, which branched on the data
 * and dominated small planes. */
#define FNN_POOL_LANES 16

static inline ptrdiff_t fnn_pool_round(ptrdiff_t n)
{
    return (n + FNN_POOL_LANES - 1) / FNN_POOL_LANES * FNN_POOL_LANES;
}

/* A padded row is held in polyphase order: phase q (q < sw) holds its columns q, q + sw, q + 2 sw, ...,
 * so window tap j is phase j % sw shifted by j / sw, and every loop over a row of windows reads
 * unit-stride (strided loads of selects did not vectorize). Elements per phase: the blocks of windows
 * and the taps past them. */
static inline ptrdiff_t fnn_pool_phase(const fnn_pool_geometry *g)
{
    return fnn_pool_round(fnn_pool_round(g->out_w) + (g->kw - 1) / g->sw);
}

/* Elements of a padded row: sw phases. */
static inline ptrdiff_t fnn_pool_span(const fnn_pool_geometry *g)
{
    return g->sw * fnn_pool_phase(g);
}

/* Elements of a padded row in plain order (the values path): the windows' columns and x's row. */
static inline ptrdiff_t fnn_pool_width(const fnn_pool_geometry *g)
{
    ptrdiff_t windows = (g->out_w - 1) * g->sw + g->kw, row = g->pw + g->width;
    return windows > row ? windows : row;
}

/* Padded rows the windows span. */
static inline ptrdiff_t fnn_pool_rows(const fnn_pool_geometry *g)
{
    return (g->out_h - 1) * g->sh + g->kh;
}

/* Exact tilings: windows kh x kw stride (kh, kw), no padding, covering x (no hanging window). The
 * tiled paths (pool_loops_impl.h) reduce batches of rows of windows of consecutive planes at once. */
#define FNN_POOL_TILED_ELEMS 4096

static inline int fnn_pool_tiled(const fnn_pool_geometry *g)
{
    return g->dh == 1 && g->dw == 1 && g->sh == g->kh && g->sw == g->kw && g->ph == 0 && g->pw == 0
           && g->height == g->out_h * g->kh && g->width == g->out_w * g->kw;
}

/* Rows of windows per batch: their rows of x reduced vertically stay in FNN_POOL_TILED_ELEMS. */
static inline ptrdiff_t fnn_pool_tiled_batch(const fnn_pool_geometry *g)
{
    ptrdiff_t batch = FNN_POOL_TILED_ELEMS / g->width;
    return batch > 0 ? batch : 1;
}

/* Scratch of one plane's call (elements), per path: values, a padded row; winners, the padded plane,
 * and four blocked rows of windows; the average backward, the plane's shares, their spreads in
 * phases and in order. */
static inline ptrdiff_t fnn_pool_values_scratch(const fnn_pool_geometry *g)
{
    if (fnn_pool_tiled(g))
        return fnn_pool_tiled_batch(g) * g->width;
    return fnn_pool_width(g);
}

static inline ptrdiff_t fnn_pool_winners_scratch(const fnn_pool_geometry *g)
{
    return fnn_pool_rows(g) * fnn_pool_span(g) + 4 * g->out_h * fnn_pool_round(g->out_w);
}

/* The average backward's columns per phase: a padded row in sw phases. */
static inline ptrdiff_t fnn_pool_avg_phase(const fnn_pool_geometry *g)
{
    return (fnn_pool_width(g) + g->sw - 1) / g->sw;
}

static inline ptrdiff_t fnn_pool_avg_backward_scratch(const fnn_pool_geometry *g)
{
    if (fnn_pool_tiled(g))
        return fnn_pool_tiled_batch(g) * g->width;
    ptrdiff_t lead = (g->kw - 1) / g->sw, size = g->out_h * (lead + fnn_pool_avg_phase(g));
    return size + lead + 2 * g->sw * size;  /* shares, phases, spreads (pool_loops_impl.h) */
}

static inline ptrdiff_t fnn_pool_count(ptrdiff_t start, ptrdiff_t k, ptrdiff_t size, ptrdiff_t pad, int include_pad)
{
    ptrdiff_t lo = include_pad ? -pad : 0, hi = include_pad ? size + pad : size;
    return (start + k < hi ? start + k : hi) - (start > lo ? start : lo);
}

/* Output ow's window columns the average's divisor counts (torch's). */
static inline ptrdiff_t fnn_pool_columns(ptrdiff_t ow, const fnn_pool_geometry *g)
{
    return fnn_pool_count(ow * g->sw - g->pw, g->kw, g->width, g->pw, g->include_pad);
}

#define FNN_POOL_WINS(v, best) (((v) > (best)) | ((v) != (v)))
/* The same rule's value, max(v, m) with NaN propagated: in this form a scalar loop branches only on
 * the NaN test, which predicts well (a select on FNN_POOL_WINS branched on the data). */
#define FNN_POOL_MAX(v, m) ((v) != (v) ? (v) : (v) > (m) ? (v) : (m))

/* STMT with S the stride sw, a literal where it is 1, 2 or 3 (those loops vectorize; with a variable
 * stride, k3s3's polyphase copy ran scalar, half of a 27x27 plane's max backward). */
#define FNN_POOL_BY_STRIDE(SW, STMT)                                                               \
    if ((SW) == 1) { const ptrdiff_t S = 1; STMT }                                                 \
    else if ((SW) == 2) { const ptrdiff_t S = 2; STMT }                                            \
    else if ((SW) == 3) { const ptrdiff_t S = 3; STMT }                                            \
    else { const ptrdiff_t S = (SW); STMT }

/* STMT for IDX over [0, N), N a multiple of FNN_POOL_LANES: whole vectors, no remainder. */
#define FNN_POOL_BLOCKS(N, IDX, STMT)                                                              \
    FNN_IVDEP                                                                                      \
    for (ptrdiff_t block_ = 0; block_ < (N); block_ += FNN_POOL_LANES)                             \
        FNN_IVDEP                                                                                  \
        for (ptrdiff_t lane_ = 0; lane_ < FNN_POOL_LANES; lane_++) {                               \
            const ptrdiff_t IDX = block_ + lane_;                                                  \
            STMT                                                                                   \
        }

FNN_BEGIN_LOOPS

#define POOL_T float
#define POOL_S f
#include "pool_loops_impl.h"
#undef POOL_T
#undef POOL_S

#define POOL_T double
#define POOL_S d
#include "pool_loops_impl.h"
#undef POOL_T
#undef POOL_S

FNN_END_LOOPS

#endif
