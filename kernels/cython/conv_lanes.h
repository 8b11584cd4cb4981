/* Direct float32 convolution with 16 filters in the vector lanes, forward and weight gradient, for
 * kernels/cython/conv.pyx's strided and grouped convolutions. With pixels in the lanes
 * (conv_direct.h) a stride-2 row loads every other column and a group of 16 filters on 14-wide rows
 * idles lanes; here a vector holds 16 filters, each input value is broadcast to them, and neither
 * the stride nor the row width touches the lanes. A register block is FV filter vectors (1, 2, or 3
 * for groups of 48 filters) x R pixels of an output row: per (c, kh, kw), FV weight loads and R
 * broadcasts feed FV * R FMAs over the whole reduction; the block is transposed into y's (F, Ho, Wo)
 * rows once at its end. With one filter vector, the taps of a kernel row that read one phase row go
 * in groups (lanes_block_grouped): each input value is broadcast once for every tap it meets. The
 * weight gradient holds FV filter vectors x up to 14 taps (9 for 3 vectors) of a channel over the
 * image's pixels (dy transposed to pixel-major first). */
#ifndef FASTNN_CONV_LANES_H
#define FASTNN_CONV_LANES_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

FNN_BEGIN_LOOPS

#define LANES_BLOCK 14     /* pixels (forward) or taps (weight gradient) per register block: 2 x 14
                            * accumulators + 2 weight or dy vectors + 1 broadcast */
#define LANES_BLOCK3 9     /* the same for 3 filter vectors (48 filters): 3 x 9 + 3 + 1 */
#define LANES_WIDTH(FV) ((FV) == 3 ? LANES_BLOCK3 : LANES_BLOCK)
#define LANES_MAX_TAPS 121   /* KH * KW of the largest kernel (11 x 11) */

/* Row width of the phase-split padded image (direct_pad_split) for rows of Wo outputs. */
static inline ptrdiff_t lanes_phase_width(ptrdiff_t W, ptrdiff_t pw, ptrdiff_t KW, ptrdiff_t sw, ptrdiff_t Wo)
{
    ptrdiff_t need = Wo + (KW - 1) / sw, have = (W + 2 * pw + sw - 1) / sw;
    return need > have ? need : have;
}

/* tap_off[kh * KW + kw]: where tap (kh, kw) starts in a phase-split padded plane (direct_pad_split,
 * rows of sw phases of Wq): row kh, phase kw % sw, column kw / sw. */
static inline void lanes_tap_offsets(ptrdiff_t *tap_off, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sw, ptrdiff_t Wq)
{
    ptrdiff_t t;
    for (t = 0; t < KH * KW; t++)
        tap_off[t] = ((t / KW) * sw + (t % KW) % sw) * Wq + (t % KW) / sw;
}

/* Filter blocks fb0 .. fb1 - 1 of wt (F / (16 FV), ckk, 16 FV) from w (F, ckk), ckk = C * KH * KW. */
static void lanes_pack_weights(const float *w, float *wt, ptrdiff_t fb0, ptrdiff_t fb1, ptrdiff_t ckk, int FV)
{
    ptrdiff_t fb, k, width = 16 * FV;
    int l;
    for (fb = fb0; fb < fb1; fb++)
        for (k = 0; k < ckk; k++)
            for (l = 0; l < width; l++)
                wt[(fb * ckk + k) * width + l] = w[(fb * width + l) * ckk + k];
}

#define LANES_LOW(l, b) ((l) & (b) ? 16 + (l) - (b) : (l))
#define LANES_HIGH(l, b) ((l) & (b) ? 16 + (l) : (l) + (b))
#define LANES_MASK(S, b) {S(0, b), S(1, b), S(2, b), S(3, b), S(4, b), S(5, b), S(6, b), S(7, b), S(8, b), \
                          S(9, b), S(10, b), S(11, b), S(12, b), S(13, b), S(14, b), S(15, b)}

/* One stage of the transpose: for each row i without bit b, lanes with bit b trade places with row
 * i + b's lanes without it (two-source shuffles). */
static inline __attribute__((always_inline)) void lanes_transpose_stage(fnn_v16 *r, const int b)
{
    const fnn_i16 low = LANES_MASK(LANES_LOW, b), high = LANES_MASK(LANES_HIGH, b);
    int i;
    for (i = 0; i < 16; i++)
        if (!(i & b)) {
            fnn_v16 x = r[i], z = r[i + b];
            r[i] = __builtin_shuffle(x, z, low);
            r[i + b] = __builtin_shuffle(x, z, high);
        }
}

/* r[i][l] <- r[l][i]: a 16 x 16 transpose in 64 shuffles */
static inline __attribute__((always_inline)) void lanes_transpose(fnn_v16 *r)
{
    lanes_transpose_stage(r, 8);
    lanes_transpose_stage(r, 4);
    lanes_transpose_stage(r, 2);
    lanes_transpose_stage(r, 1);
}

/* y's 16 filters (planes fstride apart) at R pixels from acc[p] (pixel p's 16 filters), plus the
 * bias b (or none), then the relu. */
static inline __attribute__((always_inline)) void
lanes_store(const fnn_v16 *acc, const float *b, float *y, ptrdiff_t fstride, int relu, int spill, const int R)
{
    fnn_v16 r[16];
    int p, l;
    for (p = 0; p < 16; p++)
        r[p] = p < R ? acc[p] : (fnn_v16){0};
    lanes_transpose(r);  /* r[l]: filter l's R pixels */
    for (l = 0; l < 16; l++) {
        fnn_v16 val = r[l] + (b ? b[l] : 0.0f);
        if (relu)  /* clear the lanes below 0 (a NaN compares false and passes) */
            val = (fnn_v16)((fnn_i16)val & ~(fnn_i16)(val < 0.0f));
        if (spill)  /* a whole vector: a copy of R floats waited on val's spill (18% of the time) */
            memcpy(y + l * fstride, &val, sizeof(val));
        else
            memcpy(y + l * fstride, &val, R * sizeof(float));
    }
}

/* y's 16 * FV filters (planes `fstride` apart) at R consecutive pixels of a row, from the block's
 * weights wv (C, KH * KW, FV, 16) and the pixels' inputs: tap t of channel c of pixel p at
 * xrow[c * plane + tap_off[t] + p] (the phase-split copy makes any stride's run contiguous), plus
 * the bias b (or none), then the relu. */
static inline __attribute__((always_inline)) void
lanes_block(const float *xrow, const float *wv, const float *b, float *y, ptrdiff_t C, ptrdiff_t plane,
            ptrdiff_t kk, const ptrdiff_t *tap_off, ptrdiff_t fstride, int relu, int spill, const int FV,
            const int R)
{
    fnn_v16 acc[3][LANES_BLOCK];
    ptrdiff_t c, k;
    int p, v;
    for (v = 0; v < FV; v++)
        for (p = 0; p < R; p++)
            acc[v][p] = (fnn_v16){0};
    for (c = 0; c < C; c++, xrow += plane)
        for (k = 0; k < kk; k++, wv += 16 * FV) {
            const float *xr = xrow + tap_off[k];
            fnn_v16 wk[3];
            for (v = 0; v < FV; v++)
                memcpy(&wk[v], wv + 16 * v, sizeof(fnn_v16));
            for (p = 0; p < R; p++)
                for (v = 0; v < FV; v++)
                    acc[v][p] += wk[v] * xr[p];
        }
    for (v = 0; v < FV; v++)
        lanes_store(acc[v], b ? b + 16 * v : NULL, y + 16 * v * fstride, fstride, relu, spill, R);
}

/* ---- One filter vector: a broadcast for several taps ---------------------------------------------
 * With one filter vector (groups of 16 filters) lanes_block loads a broadcast for every FMA, and the
 * loads, not the FMAs, bound it (C harness, 16 -> 16 channels, 14 x 14, 3 x 3, one thread: 213
 * GFLOP/s where an FMA loop runs 271). The taps of a kernel row that read one phase row read
 * consecutive columns, so input value j serves tap t at pixel j - t: a group of m such taps takes
 * R + m - 1 broadcasts and m weight loads for R m FMAs (the same harness, the padded copy included:
 * 4.88 -> 4.24 us an image; 7x7 stride 2, 3 -> 16 channels, 88.7 -> 79.2 us). Two filter vectors
 * this way (runs of 12) ran no faster: their broadcasts already feed two FMAs. */
#define LANES_GROUP 3  /* taps a group at most: 14 accumulators, 3 weights and a broadcast fit */

typedef struct {
    ptrdiff_t off, k0, step;  /* the first tap's input offset, its weight's tap index, the next's step */
    int m;                    /* taps */
} lanes_tap_group;

/* The groups of a kernel (at most LANES_MAX_TAPS): per kernel row and phase, runs of at most
 * LANES_GROUP taps; its taps in the order tap t of row kh reads column kw / sw of phase kw % sw. */
static inline int lanes_tap_groups(lanes_tap_group *groups, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sw, ptrdiff_t Wq)
{
    ptrdiff_t kh, phase, kw, left;
    int n = 0;
    for (kh = 0; kh < KH; kh++)
        for (phase = 0; phase < sw && phase < KW; phase++)
            for (kw = phase; kw < KW; kw += LANES_GROUP * sw, n++) {
                left = (KW - kw + sw - 1) / sw;
                groups[n].off = (kh * sw + phase) * Wq + kw / sw;
                groups[n].k0 = kh * KW + kw;
                groups[n].step = sw;
                groups[n].m = left < LANES_GROUP ? (int)left : LANES_GROUP;
            }
    return n;
}

/* acc[p] += the group's M taps at the run's R pixels: input value j (at xr[j]) times tap t's
 * weights (at wc + t step 16) into pixel j - t. */
static inline __attribute__((always_inline)) void
lanes_group_fma(fnn_v16 *acc, const float *xr, const float *wc, ptrdiff_t step, const int R, const int M)
{
    fnn_v16 wk[LANES_GROUP];
    int j, t;
    for (t = 0; t < M; t++)
        memcpy(&wk[t], wc + t * step * 16, sizeof(fnn_v16));
#pragma GCC unroll 16
    for (j = 0; j < R + M - 1; j++) {
        const float xs = xr[j];
#pragma GCC unroll 3
        for (t = 0; t < M; t++)
            if (j - t >= 0 && j - t < R)
                acc[j - t] += wk[t] * xs;
    }
}

/* lanes_block for one filter vector, tap group by tap group. */
static inline __attribute__((always_inline)) void
lanes_block_grouped(const float *xrow, const float *wv, const float *b, float *y, ptrdiff_t C, ptrdiff_t plane,
                    ptrdiff_t kk, const lanes_tap_group *groups, int n_groups, ptrdiff_t fstride, int relu,
                    int spill, const int R)
{
    fnn_v16 acc[LANES_BLOCK];
    ptrdiff_t c;
    int p, g;
    for (p = 0; p < R; p++)
        acc[p] = (fnn_v16){0};
    for (c = 0; c < C; c++, xrow += plane, wv += kk * 16)
        for (g = 0; g < n_groups; g++) {
            const float *xr = xrow + groups[g].off, *wc = wv + groups[g].k0 * 16;
            if (groups[g].m == 3)
                lanes_group_fma(acc, xr, wc, groups[g].step, R, 3);
            else if (groups[g].m == 2)
                lanes_group_fma(acc, xr, wc, groups[g].step, R, 2);
            else
                lanes_group_fma(acc, xr, wc, groups[g].step, R, 1);
        }
    lanes_store(acc, b, y, fstride, relu, spill, R);
}

#define LANES_GROUPED_CASE(R) \
    case R:                                                                                             \
        lanes_block_grouped(xrow, wv, b, y, C, plane, kk, groups, n_groups, fstride, relu, spill, R);  \
        break;

static inline __attribute__((always_inline)) void
lanes_run_grouped(const float *xrow, const float *wv, const float *b, float *y, ptrdiff_t C, ptrdiff_t plane,
                  ptrdiff_t kk, const lanes_tap_group *groups, int n_groups, ptrdiff_t fstride, int relu,
                  int spill, int r)
{
    switch (r) {
        LANES_GROUPED_CASE(1) LANES_GROUPED_CASE(2) LANES_GROUPED_CASE(3) LANES_GROUPED_CASE(4)
        LANES_GROUPED_CASE(5) LANES_GROUPED_CASE(6) LANES_GROUPED_CASE(7) LANES_GROUPED_CASE(8)
        LANES_GROUPED_CASE(9) LANES_GROUPED_CASE(10) LANES_GROUPED_CASE(11) LANES_GROUPED_CASE(12)
        LANES_GROUPED_CASE(13) LANES_GROUPED_CASE(14)
    }
}

/* lanes_forward_blocks for one filter vector, where a kernel row reaches a phase row more than once
 * (KW > sw); where it does not, every group is one tap, as in lanes_block (harness, 2 x 2 stride 2:
 * 3% slower this way). */
static inline __attribute__((always_inline)) void
lanes_forward_grouped(const float *xp, const float *wt, const float *b, float *y, ptrdiff_t C, ptrdiff_t Hp,
                      ptrdiff_t Wq, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                      ptrdiff_t Ho, ptrdiff_t Wo, int relu)
{
    ptrdiff_t plane = Hp * sw * Wq, kk = KH * KW, ckk = C * kk, fstride = Ho * Wo;
    ptrdiff_t runs = (Wo + LANES_BLOCK - 1) / LANES_BLOCK, f0, oh, s;
    lanes_tap_group groups[LANES_MAX_TAPS];
    int n_groups = lanes_tap_groups(groups, KH, KW, sw, Wq);
    for (f0 = 0; f0 < F; f0 += 16)
        for (oh = 0; oh < Ho; oh++)
            for (s = 0; s < runs; s++) {
                ptrdiff_t ow0 = s * Wo / runs, ow1 = (s + 1) * Wo / runs;
                lanes_run_grouped(xp + oh * sh * sw * Wq + ow0, wt + f0 * ckk, b ? b + f0 : NULL,
                                  y + f0 * fstride + oh * Wo + ow0, C, plane, kk, groups, n_groups, fstride,
                                  relu, oh * Wo + ow0 + 16 <= fstride, (int)(ow1 - ow0));
            }
}

#define LANES_CASE(R) \
    case R:                                                                                             \
        if (R <= LANES_WIDTH(FV))                                                                       \
            lanes_block(xrow, wv, b, y, C, plane, kk, tap_off, fstride, relu, spill, FV, R);            \
        break;

/* lanes_block for a run of r <= LANES_WIDTH(FV) pixels: one unrolled copy per length */
static inline __attribute__((always_inline)) void
lanes_run(const float *xrow, const float *wv, const float *b, float *y, ptrdiff_t C, ptrdiff_t plane,
          ptrdiff_t kk, const ptrdiff_t *tap_off, ptrdiff_t fstride, int relu, int spill, int r, const int FV)
{
    switch (r) {
        LANES_CASE(1) LANES_CASE(2) LANES_CASE(3) LANES_CASE(4) LANES_CASE(5) LANES_CASE(6) LANES_CASE(7)
        LANES_CASE(8) LANES_CASE(9) LANES_CASE(10) LANES_CASE(11) LANES_CASE(12) LANES_CASE(13)
        LANES_CASE(14)
    }
}

/* y (F, Ho, Wo) of one image (or group) from its phase-split padded copy xp (direct_pad_split: C
 * planes of Hp rows of sw phases of Wq) and wt packed by lanes_pack_weights, FV vectors a block.
 * Each output row splits into ceil(Wo / LANES_WIDTH(FV)) runs of near-equal length (17 outputs:
 * 9 + 8, not 14 + 3). */
static inline __attribute__((always_inline)) void
lanes_forward_blocks(const float *xp, const float *wt, const float *b, float *y, ptrdiff_t C, ptrdiff_t Hp,
                     ptrdiff_t Wq, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                     ptrdiff_t Ho, ptrdiff_t Wo, int relu, const int FV)
{
    ptrdiff_t plane = Hp * sw * Wq, kk = KH * KW, ckk = C * kk, fstride = Ho * Wo;
    ptrdiff_t runs = (Wo + LANES_WIDTH(FV) - 1) / LANES_WIDTH(FV), f0, oh, s;
    ptrdiff_t tap_off[LANES_MAX_TAPS];
    lanes_tap_offsets(tap_off, KH, KW, sw, Wq);
    for (f0 = 0; f0 < F; f0 += 16 * FV)
        for (oh = 0; oh < Ho; oh++)
            for (s = 0; s < runs; s++) {
                ptrdiff_t ow0 = s * Wo / runs, ow1 = (s + 1) * Wo / runs;
                lanes_run(xp + oh * sh * sw * Wq + ow0, wt + f0 * ckk, b ? b + f0 : NULL,
                          y + f0 * fstride + oh * Wo + ow0, C, plane, kk, tap_off, fstride, relu,
                          oh * Wo + ow0 + 16 <= fstride, (int)(ow1 - ow0), FV);
            }
}

FNN_CLONES
static void lanes_forward_f(const float *xp, const float *wt, const float *b, float *y, ptrdiff_t C,
                            ptrdiff_t Hp, ptrdiff_t Wq, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,
                            ptrdiff_t sw, ptrdiff_t Ho, ptrdiff_t Wo, int relu, int FV)
{
    if (FV == 3)
        lanes_forward_blocks(xp, wt, b, y, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, relu, 3);
    else if (FV == 2)
        lanes_forward_blocks(xp, wt, b, y, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, relu, 2);
    else if (KW > sw)
        lanes_forward_grouped(xp, wt, b, y, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, relu);
    else
        lanes_forward_blocks(xp, wt, b, y, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, relu, 1);
}

/* w (F, ckk) from wt packed by lanes_pack_weights (the weight gradient's sums back in w's layout). */
static void lanes_unpack_weights(const float *wt, float *w, ptrdiff_t F, ptrdiff_t ckk, int FV)
{
    ptrdiff_t fb, k, width = 16 * FV;
    int l;
    for (fb = 0; fb < F / width; fb++)
        for (k = 0; k < ckk; k++)
            for (l = 0; l < width; l++)
                w[(fb * width + l) * ckk + k] = wt[(fb * ckk + k) * width + l];
}

/* dyt (F / (16 FV), P, 16 FV) from dy (F, P), F a multiple of 16 FV: 16 x 16 blocks transposed in
 * registers. */
FNN_CLONES
static void lanes_transpose_dy(const float *dy, float *dyt, ptrdiff_t F, ptrdiff_t P, int FV)
{
    ptrdiff_t f0, p0, width = 16 * FV;
    int i, n;
    for (f0 = 0; f0 < F; f0 += 16)
        for (p0 = 0; p0 < P; p0 += 16) {
            fnn_v16 r[16];
            n = P - p0 < 16 ? (int)(P - p0) : 16;
            for (i = 0; i < 16; i++) {
                r[i] = (fnn_v16){0};
                memcpy(&r[i], dy + (f0 + i) * P + p0, (size_t)n * sizeof(float));
            }
            lanes_transpose(r);  /* r[p]: pixel p0 + p's 16 filters */
            for (i = 0; i < n; i++)
                memcpy(dyt + ((f0 / width) * P + p0 + i) * width + f0 % width, &r[i], sizeof(fnn_v16));
        }
}

/* part[t * 16 FV ..] += the sums over the image's pixels of dy's 16 FV filters (dyt: each pixel's,
 * 16 FV apart) times tap t of one channel (its pixel at oh, ow: xc[oh * row_step + tap_off[t] + ow]),
 * for the TB taps t of the block: per pixel FV loads and TB broadcasts feed FV * TB FMAs. */
static inline __attribute__((always_inline)) void
lanes_grad_block(const float *xc, const float *dyt, float *part, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t row_step,
                 const ptrdiff_t *tap_off, const int FV, const int TB)
{
    fnn_v16 acc[3][LANES_BLOCK];
    ptrdiff_t oh, ow;
    int t, v;
    for (v = 0; v < FV; v++)
        for (t = 0; t < TB; t++)
            acc[v][t] = (fnn_v16){0};
    for (oh = 0; oh < Ho; oh++, xc += row_step)
        for (ow = 0; ow < Wo; ow++, dyt += 16 * FV) {
            fnn_v16 d[3];
            for (v = 0; v < FV; v++)
                memcpy(&d[v], dyt + 16 * v, sizeof(fnn_v16));
            for (t = 0; t < TB; t++) {
                float xs = xc[tap_off[t] + ow];
                for (v = 0; v < FV; v++)
                    acc[v][t] += d[v] * xs;
            }
        }
    for (t = 0; t < TB; t++)
        for (v = 0; v < FV; v++) {
            fnn_v16 sum;
            memcpy(&sum, part + (t * FV + v) * 16, sizeof(sum));
            sum += acc[v][t];
            memcpy(part + (t * FV + v) * 16, &sum, sizeof(sum));
        }
}

#define LANES_GRAD_CASE(TB) \
    case TB:                                                                                            \
        if (TB <= LANES_WIDTH(FV))                                                                      \
            lanes_grad_block(xc, dyt, part, Ho, Wo, row_step, tap_off, FV, TB);                         \
        break;

/* lanes_grad_block for a run of tb <= LANES_WIDTH(FV) taps: one unrolled copy per length */
static inline __attribute__((always_inline)) void
lanes_grad_run(const float *xc, const float *dyt, float *part, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t row_step,
               const ptrdiff_t *tap_off, int tb, const int FV)
{
    switch (tb) {
        LANES_GRAD_CASE(1) LANES_GRAD_CASE(2) LANES_GRAD_CASE(3) LANES_GRAD_CASE(4) LANES_GRAD_CASE(5)
        LANES_GRAD_CASE(6) LANES_GRAD_CASE(7) LANES_GRAD_CASE(8) LANES_GRAD_CASE(9) LANES_GRAD_CASE(10)
        LANES_GRAD_CASE(11) LANES_GRAD_CASE(12) LANES_GRAD_CASE(13) LANES_GRAD_CASE(14)
    }
}

/* lanes_grad_block for one filter vector and a 3 x 3 kernel at stride 1 across (tap 3 g + t at
 * xc[tap_off[3 g] + t]): 4 pixels at a time, x's value j of a kernel row's reach serves tap t at
 * pixel j - t, so 4 dy loads and 18 broadcasts feed 36 FMAs where a pixel at a time took 10 loads for
 * 9 (the loads bound it, as in the forward): 16 -> 16 channels on 14 x 14, one thread, 5.09 -> 4.54
 * us an image with the pad and dy's transpose (C harness). Each sum adds its pixels in the same
 * order. 2 x 3 and 4 x 3 kernels this way ran 4-8% slower. */
static inline __attribute__((always_inline)) void
lanes_grad_3x3(const float *xc, const float *dyt, float *part, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t row_step,
               const ptrdiff_t *tap_off)
{
    fnn_v16 acc[9], d[4], sum;
    ptrdiff_t oh, ow;
    int g, j, t;
    for (t = 0; t < 9; t++)
        acc[t] = (fnn_v16){0};
    for (oh = 0; oh < Ho; oh++, xc += row_step) {
        for (ow = 0; ow + 4 <= Wo; ow += 4, dyt += 64) {
            memcpy(d, dyt, sizeof(d));
            for (g = 0; g < 3; g++) {
                const float *xr = xc + tap_off[3 * g] + ow;
                for (j = 0; j < 6; j++) {
                    const float xs = xr[j];
                    for (t = 0; t < 3; t++)
                        if (j - t >= 0 && j - t < 4)
                            acc[3 * g + t] += d[j - t] * xs;
                }
            }
        }
        for (; ow < Wo; ow++, dyt += 16) {
            memcpy(&d[0], dyt, sizeof(d[0]));
            for (t = 0; t < 9; t++)
                acc[t] += d[0] * xc[tap_off[t] + ow];
        }
    }
    for (t = 0; t < 9; t++) {
        memcpy(&sum, part + t * 16, sizeof(sum));
        sum += acc[t];
        memcpy(part + t * 16, &sum, sizeof(sum));
    }
}

/* parts (F / (16 FV), C, KH * KW, 16 FV) += the weight gradient of one image (or group), from its
 * phase-split padded copy xp (as lanes_forward_f's) and dyt (lanes_transpose_dy). A channel's taps
 * split into runs of at most LANES_WIDTH(FV) of near-equal length. */
static inline __attribute__((always_inline)) void
lanes_weight_grad_blocks(const float *xp, const float *dyt, float *parts, ptrdiff_t C, ptrdiff_t Hp,
                         ptrdiff_t Wq, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                         ptrdiff_t Ho, ptrdiff_t Wo, const int FV)
{
    ptrdiff_t plane = Hp * sw * Wq, kk = KH * KW, P = Ho * Wo, fb, c, s;
    ptrdiff_t runs = (kk + LANES_WIDTH(FV) - 1) / LANES_WIDTH(FV), tap_off[LANES_MAX_TAPS];
    lanes_tap_offsets(tap_off, KH, KW, sw, Wq);
    if (FV == 1 && KH == 3 && KW == 3 && sw == 1) {
        for (fb = 0; fb < F / 16; fb++)
            for (c = 0; c < C; c++)
                lanes_grad_3x3(xp + c * plane, dyt + fb * P * 16, parts + (fb * C + c) * kk * 16, Ho, Wo,
                               sh * Wq, tap_off);
        return;
    }
    for (fb = 0; fb < F / (16 * FV); fb++)
        for (c = 0; c < C; c++)
            for (s = 0; s < runs; s++) {
                ptrdiff_t t0 = s * kk / runs, t1 = (s + 1) * kk / runs;
                lanes_grad_run(xp + c * plane, dyt + fb * P * 16 * FV, parts + ((fb * C + c) * kk + t0) * 16 * FV,
                               Ho, Wo, sh * sw * Wq, tap_off + t0, (int)(t1 - t0), FV);
            }
}

FNN_CLONES
static void lanes_weight_grad_f(const float *xp, const float *dyt, float *parts, ptrdiff_t C, ptrdiff_t Hp,
                                ptrdiff_t Wq, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                                ptrdiff_t Ho, ptrdiff_t Wo, int FV)
{
    if (FV == 3)
        lanes_weight_grad_blocks(xp, dyt, parts, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, 3);
    else if (FV == 2)
        lanes_weight_grad_blocks(xp, dyt, parts, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, 2);
    else
        lanes_weight_grad_blocks(xp, dyt, parts, C, Hp, Wq, F, KH, KW, sh, sw, Ho, Wo, 1);
}

/* ---- The input gradient of a strided convolution, by phases ---------------------------------------
 * dx's pixels (sh i + ry, sw j + rx) of phase (ry, rx) take only the kernel rows kh0 + sh m, kh0 =
 * (ry + ph) mod sh (and columns alike), row m from dy's row i + (ry + ph - kh0) / sh - m: a stride-1
 * correlation of dy with that sub-kernel, flipped. lanes_forward_f runs each phase on a zero-padded
 * copy of dy with dx's channels in the lanes, and the phases are interleaved into dx: the products
 * are the forward's, where im2col + GEMM's dcol scattered K values per pixel back (col2im). */

/* One axis of a phase: the first kernel index, the taps (0: the phase is zero), the dy rows the
 * correlation reads before its first output's (may be negative) and the phase's outputs. */
typedef struct {
    ptrdiff_t k0, taps, lead, count;
} lanes_phase;

static inline lanes_phase lanes_phase_of(ptrdiff_t r, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t K, ptrdiff_t size)
{
    lanes_phase p;
    p.k0 = (r + pad) % stride;
    p.taps = p.k0 < K ? (K - p.k0 + stride - 1) / stride : 0;
    p.lead = p.taps - 1 - (r + pad - p.k0) / stride;
    p.count = r < size ? (size - r + stride - 1) / stride : 0;
    return p;
}

/* The padded dy's leading zeros (*before) and its length (*padded) along one axis: every phase's
 * reads in range. */
static inline void lanes_phase_padding(ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t K, ptrdiff_t size,
                                       ptrdiff_t out, ptrdiff_t *before, ptrdiff_t *padded)
{
    ptrdiff_t r, end = out;
    *before = 0;
    for (r = 0; r < stride; r++) {
        lanes_phase p = lanes_phase_of(r, stride, pad, K, size);
        if (p.taps > 0 && p.lead > *before)
            *before = p.lead;
    }
    for (r = 0; r < stride; r++) {
        lanes_phase p = lanes_phase_of(r, stride, pad, K, size);
        if (p.taps > 0 && p.count > 0 && p.count + p.taps - 1 - p.lead > end)
            end = p.count + p.taps - 1 - p.lead;
    }
    *padded = *before + end;
}

/* wt as lanes_pack_weights packs C' x (F * rows.taps * cols.taps) kernels, C' = C rounded up to
 * 16 FV (zeros past C): phase (rows, cols)'s sub-kernel of w (F, C, KH, KW), flipped, dx's channels
 * as the filters. */
static void lanes_pack_phase_weights(const float *w, float *wt, ptrdiff_t F, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW,
                                     ptrdiff_t sh, ptrdiff_t sw, lanes_phase rows, lanes_phase cols, int FV)
{
    ptrdiff_t width = 16 * FV, ckk = F * rows.taps * cols.taps, blocks = (C + width - 1) / width;
    ptrdiff_t cb, f, m, n, k, c;
    for (cb = 0; cb < blocks; cb++)
        for (f = 0; f < F; f++)
            for (m = 0; m < rows.taps; m++)
                for (n = 0; n < cols.taps; n++) {
                    const float *tap = w + (f * C * KH + rows.k0 + sh * (rows.taps - 1 - m)) * KW
                                       + cols.k0 + sw * (cols.taps - 1 - n);
                    k = (f * rows.taps + m) * cols.taps + n;
                    for (c = cb * width; c < (cb + 1) * width; c++)
                        wt[(cb * ckk + k) * width + c - cb * width] = c < C ? tap[c * KH * KW] : 0.0f;
                }
}

/* dx (C, H, W) at (sh i + ry, sw j + rx) = src (C, rows, cols) (planes rows * cols apart). */
static void lanes_scatter_phase(const float *src, float *dx, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t sh,
                                ptrdiff_t sw, ptrdiff_t ry, ptrdiff_t rx, ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t c, i, j;
    for (c = 0; c < C; c++)
        for (i = 0; i < rows; i++) {
            float *d = dx + (c * H + sh * i + ry) * W + rx;
            const float *s = src + (c * rows + i) * cols;
            for (j = 0; j < cols; j++)
                d[sw * j] = s[j];
        }
}

/* Stride 2 across: dx's rows sh i + ry interleaved from the two column phases at once, even
 * columns from even (C, rows, cols0), odd from odd (C, rows, cols1), cols0 - cols1 = W mod 2: one
 * vectorized store stream where a phase at a time stored every other float (perf, 3x3 stride-2
 * backward: 4.3% of the samples a phase at a time, 2-3% the pair). */
FNN_CLONES
static void lanes_scatter_pair(const float *even, const float *odd, float *dx, ptrdiff_t C, ptrdiff_t H,
                               ptrdiff_t W, ptrdiff_t sh, ptrdiff_t ry, ptrdiff_t rows, ptrdiff_t cols0,
                               ptrdiff_t cols1)
{
    ptrdiff_t c, i, j;
    for (c = 0; c < C; c++)
        for (i = 0; i < rows; i++) {
            float *d = dx + (c * H + sh * i + ry) * W;
            const float *e = even + (c * rows + i) * cols0, *o = odd + (c * rows + i) * cols1;
            for (j = 0; j < cols1; j++) {
                d[2 * j] = e[j];
                d[2 * j + 1] = o[j];
            }
            if (cols0 > cols1)
                d[2 * cols1] = e[cols1];
        }
}

FNN_END_LOOPS

#endif
