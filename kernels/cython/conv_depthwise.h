/* Depthwise convolution (groups == C: one input channel per group, m = F / C filters each; filter f
 * reads channel f / m), direct, for any kernel, stride, padding and dilation. conv.pyx runs it in
 * parallel over a thread's range of (image, channel) planes.
 * im2col + GEMM spent a GEMM of depth KH * KW on every plane: 2.5-4x slower than oneDNN.
 *   The channel's plane is copied into a zero-padded plane whose rows are polyphase (phase q holds
 *   padded columns q, q + sw, ...), so tap (i, j) of a row of outputs is one unit-stride run:
 *   padded row oh * sh + i * dh, phase (j * dw) % sw, from (j * dw) / sw. The padding is zeroed once
 *   per thread; each plane overwrites the same interior.
 *   forward: FNN_DW_ROWS output rows at once, in blocks of FNN_DW_LANES columns, all taps accumulated
 *     in registers (independent chains per row); the last block's extra lanes read the plane's zero
 *     or spare columns and are not stored.
 *   input gradient: into a padded dx plane, then its interior copied out (x positions in no window
 *     get 0): with one filter per channel and finite weights, each vector of it gathered from the
 *     taps that reach it (in registers; conv.pyx runs stride 1 as the forward of dy with the flipped
 *     kernel instead; stride 2 across gathers straight into x's plane, 3 x 3 and 5 x 5 with no tap
 *     lists); else each dy row's taps added in (the transposed scatter: its overlapping
 *     read-modify-writes stall on store forwarding, but it never multiplies a weight by padding).
 *   weight gradient: per tap, dy against the tap's runs in vector lanes over FNN_DW_ROWS rows (3 x 3,
 *     and 5 x 5 on rows of one vector: all taps at once, their sums in registers), the lanes added in
 *     double across planes.
 *   Short rows run in whole vectors too: spare lanes are zeroed before they are added (they could
 *   hold inf * 0), and dy is read past a row only inside its plane. 
 * No transforms: inf and NaN reach exactly the outputs whose windows hold them. */
#ifndef FASTNN_CONV_DEPTHWISE_H
#define FASTNN_CONV_DEPTHWISE_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

typedef struct {
    ptrdiff_t C, H, W, m, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw;
} fnn_dw_geometry;

#define FNN_DW_LANES 16

/* The body's helpers, inlined into the FNN_CLONES functions that call them: a plain static helper is
 * compiled once, for baseline x86-64 (its vector code ran as SSE, 2x slower). */
#define FNN_DW_INLINE static inline __attribute__((always_inline))
#define FNN_DW_ROWS 4

static inline ptrdiff_t fnn_dw_round(ptrdiff_t n)
{
    return (n + FNN_DW_LANES - 1) / FNN_DW_LANES * FNN_DW_LANES;
}

/* Padded rows the windows span. */
static inline ptrdiff_t fnn_dw_rows(const fnn_dw_geometry *g)
{
    return (g->Ho - 1) * g->sh + (g->KH - 1) * g->dh + 1;
}

/* Padded columns the windows span. */
static inline ptrdiff_t fnn_dw_cols(const fnn_dw_geometry *g)
{
    return (g->Wo - 1) * g->sw + (g->KW - 1) * g->dw + 1;
}

/* Elements of one phase of a padded row: every tap's run of whole blocks; for stride 2 also x's
 * columns and a pair of vectors' slack (fnn_dw_stride2_row writes whole pairs). */
static inline ptrdiff_t fnn_dw_phase(const fnn_dw_geometry *g)
{
    ptrdiff_t runs = (g->KW - 1) * g->dw / g->sw + fnn_dw_round(g->Wo);
    ptrdiff_t cols = (fnn_dw_cols(g) + g->sw - 1) / g->sw;
    if (g->sw == 2 && (g->pw + g->W) / 2 + 2 * FNN_DW_LANES > cols)
        cols = (g->pw + g->W) / 2 + 2 * FNN_DW_LANES;
    return runs > cols ? runs : cols;
}

/* Elements of the padded plane, and a vector's slack past its last row (fnn_dw_stride1_row). */
static inline ptrdiff_t fnn_dw_plane(const fnn_dw_geometry *g)
{
    return fnn_dw_rows(g) * g->sw * fnn_dw_phase(g) + FNN_DW_LANES;
}

/* Per-thread scratch, in elements of the data type (itemsize bytes): the forward's padded plane; the
 * backward's per-filter tap sums in double (all C * m * KH * KW, a vector's lanes each), its padded
 * x plane, for the input gradient its padded dx plane, and its padded dy plane. Even counts: the next
 * thread's doubles stay aligned. */
static inline ptrdiff_t fnn_dw_forward_scratch(const fnn_dw_geometry *g)
{
    return (fnn_dw_plane(g) + 1) / 2 * 2;
}

static inline ptrdiff_t fnn_dw_sums(const fnn_dw_geometry *g, ptrdiff_t itemsize)
{
    return g->C * g->m * g->KH * g->KW * (64 / itemsize) * (ptrdiff_t)sizeof(double) / itemsize;
}

/* dy's plane held with a margin of the widest tap offset on the left and zeros past its rows, so the
 * input gradient's gather reads whole vectors of any tap: the margin, then the phase's columns and a
 * vector; and a row of zeros after its Ho rows (fnn_dw_gather_s2's taps outside dy). */
static inline ptrdiff_t fnn_dw_dy_margin(const fnn_dw_geometry *g)
{
    return (g->KW - 1) * g->dw / g->sw;
}

static inline ptrdiff_t fnn_dw_dy_pitch(const fnn_dw_geometry *g)
{
    return fnn_dw_dy_margin(g) + fnn_dw_round(fnn_dw_phase(g)) + FNN_DW_LANES;
}

/* The dy rows that kernel rows reach, stepped down the padded rows without divisions (tens of cycles
 * each): for kernel row i at padded row r, r - i dh = quot[i] sh + rem[i] with 0 <= rem[i] < sh.
 * fnn_dw_dy_rows_at starts rows [0, KH) at padded row r0. */
FNN_DW_INLINE void fnn_dw_dy_rows_at(ptrdiff_t *quot, ptrdiff_t *rem, ptrdiff_t KH, ptrdiff_t r0,
                                     const fnn_dw_geometry *g)
{
    for (ptrdiff_t i = 0; i < KH; i++) {
        ptrdiff_t d = r0 - i * g->dh;
        quot[i] = d >= 0 ? d / g->sh : -((g->sh - 1 - d) / g->sh);
        rem[i] = d - quot[i] * g->sh;
    }
}

/* The dy row one kernel row reaches at the current padded row (-1: none, where sh does not divide or
 * past dy), then its state stepped to the next padded row. */
FNN_DW_INLINE ptrdiff_t fnn_dw_dy_row(ptrdiff_t *quot, ptrdiff_t *rem, const fnn_dw_geometry *g)
{
    ptrdiff_t reached = *rem == 0 && *quot >= 0 && *quot < g->Ho ? *quot : -1;
    if (++*rem == g->sh) {
        *rem = 0;
        ++*quot;
    }
    return reached;
}

static inline ptrdiff_t fnn_dw_backward_scratch(const fnn_dw_geometry *g, int input_grad, ptrdiff_t itemsize)
{
    return (fnn_dw_sums(g, itemsize) + (1 + (input_grad != 0)) * fnn_dw_plane(g) + (g->Ho + 1) * fnn_dw_dy_pitch(g)
            + 1) / 2 * 2;
}

FNN_BEGIN_LOOPS

/* Per element type: DW_T, its suffix DW_S, and the shuffle masks of one 64-byte vector (a pair's even
 * and odd elements, the two halves of two vectors interleaved, the lane numbers); the body undefines
 * them. */
#define DW_T float
#define DW_S f
typedef int fnn_dw_mask_f __attribute__((vector_size(64)));
#define DW_MASK fnn_dw_mask_f
#define DW_EVENS {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}
#define DW_ODDS {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}
#define DW_ZIP_LO {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23}
#define DW_ZIP_HI {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}
#define DW_LANE_INDEX {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
#include "conv_depthwise_impl.h"

#define DW_T double
#define DW_S d
typedef long long fnn_dw_mask_d __attribute__((vector_size(64)));
#define DW_MASK fnn_dw_mask_d
#define DW_EVENS {0, 2, 4, 6, 8, 10, 12, 14}
#define DW_ODDS {1, 3, 5, 7, 9, 11, 13, 15}
#define DW_ZIP_LO {0, 8, 1, 9, 2, 10, 3, 11}
#define DW_ZIP_HI {4, 12, 5, 13, 6, 14, 7, 15}
#define DW_LANE_INDEX {0, 1, 2, 3, 4, 5, 6, 7}
#include "conv_depthwise_impl.h"

FNN_END_LOOPS

#endif
