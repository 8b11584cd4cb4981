/* Direct float32 convolution for few input channels (the 3-channel stem convolutions) and per group
 * of a grouped one, forward and weight gradient, for kernels/cython/conv.pyx. im2col + GEMM there
 * spends as long copying columns (im2col, then BLAS packing them) as multiplying; here register
 * blocks of outputs (or of weight gradients) accumulate over the whole reduction, FMA-bound. GCC
 * vector extensions, compiled per target by FNN_CLONES (16 lanes = one AVX-512 register, two AVX2
 * ones).
 */
#ifndef FASTNN_CONV_DIRECT_H
#define FASTNN_CONV_DIRECT_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

FNN_BEGIN_LOOPS

#define DIRECT_FB 4    /* filters per register block (F must be a multiple) */
#define DIRECT_MAX_ROWS 4  /* output rows per register block, at most (the narrow one's) */
#define DIRECT_VW 32   /* output columns per register block, at most: two vectors of 16 */
#define DIRECT_MAX_TAPS 121  /* KH * KW of the largest kernel the direct forward takes (11 x 11) */

/* Row width of the phase-split padded image for a row of Wo outputs: every block of DIRECT_VW
 * outputs may read DIRECT_VW + (KW - 1) / sw values from its phase row. */
static inline ptrdiff_t direct_phase_width(ptrdiff_t W, ptrdiff_t pw, ptrdiff_t KW, ptrdiff_t sw,
                                           ptrdiff_t Wo)
{
    ptrdiff_t need = (Wo + DIRECT_VW - 1) / DIRECT_VW * DIRECT_VW + (KW - 1) / sw;
    ptrdiff_t have = (W + 2 * pw + sw - 1) / sw;
    return need > have ? need : have;
}

#define DIRECT_PAD_SLACK 16       /* floats past a padded image that direct_pad_split may write */
#define DIRECT_PAD_MAX_CHUNKS 32  /* vectors a padded row (Wq <= 512) for its vector copy */

/* One padded row of phase `phase` from x's row src, element by element. */
static inline void direct_pad_row(const float *src, float *dst, ptrdiff_t W, ptrdiff_t pw, ptrdiff_t sw,
                                  ptrdiff_t phase, ptrdiff_t Wq)
{
    ptrdiff_t j, col;
    for (j = 0; j < Wq; j++) {
        col = j * sw + phase - pw;
        dst[j] = col >= 0 && col < W ? src[col] : 0.0f;
    }
}

/* xp[((c * Hq + i) * sw + phase) * Wq + j] = x[c][i - top][j * sw + phase - left], zero outside
 * (the forward's copy: top = ph, Hq = H + 2 ph, left = pw; the strided input gradient's copy of dy,
 * stride 1, pads as its phases read).
 * Strides 1 and 2 build each padded row from whole vectors: x read at the row's columns (a stride-2
 * row deinterleaved from two), lanes outside the row cleared by a per-column mask; rows are written
 * in order, each vector past its row's end overwritten by the rows after, and past the last one by
 * at most DIRECT_PAD_SLACK floats. A row whose reads would leave x (the first or the last rows)
 * goes element by element. A call, one thread (C harness), the memset with a memcpy a row (stride
 * 1) or an element at a time (stride 2) / this: 16 channels of 14 x 14, stride 1, 0.68 / 0.43 us;
 * 64 channels of 28 x 28, 3 x 3 stride 2, 20-26 / 7.5 us. Stride 1 keeps the memcpy for rows over
 * 32 (56 x 56: 4.3 / 4.5 us). */
FNN_CLONES
static void direct_pad_split(const float *x, float *xp, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                             ptrdiff_t top, ptrdiff_t left, ptrdiff_t sw, ptrdiff_t Hq, ptrdiff_t Wq)
{
    const fnn_i16 even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    ptrdiff_t chunks = (Wq + 15) / 16, reach = 16 * sw * chunks + sw, c, i, p, k, l, col;
    ptrdiff_t size = C * H * W, at;  /* x's elements; a row's first read */
    const float *src;
    float *dst;
    fnn_i16 mask[2 * DIRECT_PAD_MAX_CHUNKS];  /* [phase * chunks + k]: lanes inside the row */
    if (sw > 2 || chunks > DIRECT_PAD_MAX_CHUNKS || (sw == 1 && Wq > 32)) {
        memset(xp, 0, (size_t)(C * Hq * sw * Wq) * sizeof(float));
        for (c = 0; c < C; c++)
            for (i = 0; i < H; i++) {
                src = x + (c * H + i) * W;
                if (sw == 1)  /* one phase: the row itself, shifted by the padding */
                    memcpy(xp + (c * Hq + i + top) * Wq + left, src, (size_t)W * sizeof(float));
                else
                    for (p = 0; p < sw; p++)
                        direct_pad_row(src, xp + ((c * Hq + i + top) * sw + p) * Wq, W, left, sw, p, Wq);
            }
        return;
    }
    for (p = 0; p < sw; p++)
        for (k = 0; k < chunks; k++)
            for (l = 0; l < 16; l++) {
                col = (16 * k + l) * sw + p - left;
                mask[p * chunks + k][l] = col >= 0 && col < W ? -1 : 0;
            }
    for (c = 0; c < C; c++)
        for (i = 0; i < Hq; i++) {
            dst = xp + (c * Hq + i) * sw * Wq;
            if (i < top || i >= H + top) {
                for (k = 0; k < (sw * Wq + 15) / 16; k++)  /* the row's sw phases at once */
                    memcpy(dst + 16 * k, &(fnn_v16){0}, sizeof(fnn_v16));
                continue;
            }
            src = x + (c * H + i - top) * W;
            at = (c * H + i - top) * W - left;
            if (at < 0 || at + reach > size) {
                for (p = 0; p < sw; p++)
                    direct_pad_row(src, dst + p * Wq, W, left, sw, p, Wq);
            } else {
                for (p = 0; p < sw; p++, dst += Wq)
                    for (k = 0; k < chunks; k++) {
                        fnn_v16 v, a, b;
                        if (sw == 1) {
                            memcpy(&v, src + 16 * k - left, sizeof(v));
                        } else {
                            memcpy(&a, src + 32 * k + p - left, sizeof(a));
                            memcpy(&b, src + 32 * k + p - left + 16, sizeof(b));
                            v = __builtin_shuffle(a, b, even);
                        }
                        v = (fnn_v16)((fnn_i16)v & mask[p * chunks + k]);
                        memcpy(dst + 16 * k, &v, sizeof(v));
                    }
            }
        }
}

/* y (F, Ho, Wo) of one image from its phase-split padded copy xp; w (F, C, KH, KW). A register
 * block is DIRECT_FB filters x ROWS output rows x VECS vectors of 16 columns: per (c, kh, kw),
 * ROWS * VECS vector loads and DIRECT_FB weight broadcasts feed DIRECT_FB * ROWS * VECS FMAs. */
static inline __attribute__((always_inline)) void
direct_forward_blocks(const float *xp, const float *w, const float *b, float *y, ptrdiff_t C, ptrdiff_t H,
                      ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t ph, ptrdiff_t sh, ptrdiff_t sw,
                      ptrdiff_t Wq, ptrdiff_t Ho, ptrdiff_t Wo, int has_bias, int relu, const int ROWS,
                      const int VECS)
{
    ptrdiff_t Hp = H + 2 * ph, kk = KH * KW, ckk = C * kk, f0, oh, ow0, c, t;
    ptrdiff_t row_step = sh * sw * Wq, tap_off[DIRECT_MAX_TAPS];
    int f, r, v;
    /* tap (kh, kw) reads row kh of phase kw % sw from column kw / sw: divisions kept out of the loop */
    for (t = 0; t < kk; t++)
        tap_off[t] = ((t / KW) * sw + (t % KW) % sw) * Wq + (t % KW) / sw;
    for (f0 = 0; f0 < F; f0 += DIRECT_FB)
        for (oh = 0; oh < Ho; oh += ROWS)
            for (ow0 = 0; ow0 < Wo; ow0 += 16 * VECS) {
                fnn_v16 acc[DIRECT_FB][DIRECT_MAX_ROWS][2];
                float out[DIRECT_VW];
                int width = Wo - ow0 < 16 * VECS ? (int)(Wo - ow0) : 16 * VECS;
                int rows = Ho - oh < ROWS ? (int)(Ho - oh) : ROWS;
                /* rows past Ho compute the last one again (kept in bounds, dropped) */
                ptrdiff_t row_off[DIRECT_MAX_ROWS];
                for (r = 0; r < ROWS; r++)
                    row_off[r] = (r < rows ? r : rows - 1) * row_step;
                for (f = 0; f < DIRECT_FB; f++)
                    for (r = 0; r < ROWS; r++)
                        for (v = 0; v < VECS; v++)
                            acc[f][r][v] = (fnn_v16){0};
                for (c = 0; c < C; c++) {
                    const float *plane = xp + (c * Hp + oh * sh) * sw * Wq + ow0;
                    const float *wc = w + f0 * ckk + c * kk;
                    for (t = 0; t < kk; t++) {
                        const float *row = plane + tap_off[t];
                        fnn_v16 xv[DIRECT_MAX_ROWS][2];
                        for (r = 0; r < ROWS; r++)
                            for (v = 0; v < VECS; v++)
                                memcpy(&xv[r][v], row + row_off[r] + 16 * v, sizeof(fnn_v16));
                        for (f = 0; f < DIRECT_FB; f++) {
                            float wv = wc[f * ckk + t];
                            for (r = 0; r < ROWS; r++)
                                for (v = 0; v < VECS; v++)
                                    acc[f][r][v] += wv * xv[r][v];
                        }
                    }
                }
                for (f = 0; f < DIRECT_FB; f++)
                    for (r = 0; r < rows; r++) {
                        float bias = has_bias ? b[f0 + f] : 0.0f;
                        float *dst = y + ((f0 + f) * Ho + oh + r) * Wo + ow0;
                        for (v = 0; v < VECS; v++) {
                            fnn_v16 val = acc[f][r][v] + bias;
                            if (relu)  /* clear the lanes below 0 (a NaN compares false and passes) */
                                val = (fnn_v16)((fnn_i16)val & ~(fnn_i16)(val < 0.0f));
                            memcpy(out + 16 * v, &val, sizeof(val));
                        }
                        memcpy(dst, out, (size_t)width * sizeof(float));
                    }
            }
}

/* Register blocks of 2 rows x 32 columns (8 filters x 1 row: 10 loads per 16 FMAs, 7% slower), or
 * if `narrow`, for rows of at most 16 outputs, 4 rows x 16 columns (half the wide block's lanes
 * would idle). */
FNN_CLONES
static void direct_forward_f(const float *xp, const float *w, const float *b, float *y, ptrdiff_t C,
                             ptrdiff_t H, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t ph,
                             ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t Wq, ptrdiff_t Ho, ptrdiff_t Wo,
                             int has_bias, int relu, int narrow)
{
    if (narrow)
        direct_forward_blocks(xp, w, b, y, C, H, F, KH, KW, ph, sh, sw, Wq, Ho, Wo, has_bias, relu, 4, 1);
    else
        direct_forward_blocks(xp, w, b, y, C, H, F, KH, KW, ph, sh, sw, Wq, Ho, Wo, has_bias, relu, 2, 2);
}

#define DIRECT_GRAD_FB 4  /* filters per register block of the weight gradient */
#define DIRECT_GRAD_KB 7  /* kernel columns per register block of the weight gradient, at most */

/* Row width of the phase-split image for direct_weight_grad_f: the blocks of DIRECT_GRAD_KB
 * kernel columns read past the last column when KW is not a multiple (those sums are dropped). */
static inline ptrdiff_t direct_grad_phase_width(ptrdiff_t W, ptrdiff_t pw, ptrdiff_t KW, ptrdiff_t sw,
                                                ptrdiff_t Wo)
{
    ptrdiff_t kw_span = (KW + DIRECT_GRAD_KB - 1) / DIRECT_GRAD_KB * DIRECT_GRAD_KB;
    ptrdiff_t need = Wo + (kw_span - 1) / sw + 1;
    ptrdiff_t have = direct_phase_width(W, pw, KW, sw, Wo);
    return need > have ? need : have;
}

/* lanes (F, C, KH, KW, 16) += the weight gradient of one image, lane l holding the sum over the
 * output columns ow = l (mod 16): dw[f][c][kh][kw] = sum over (oh, ow) of dy[f][oh][ow] *
 * x[c][oh*sh + kh - ph][ow*sw + kw - pw], from its phase-split padded copy xp (width Wq from
 * direct_grad_phase_width for rows of Wd) and dy with rows Wd apart, Wd a multiple of 16 >= Wo. The
 * lanes past Wo are cleared in the x values (so an inf or NaN there reaches no sum) and must be zero
 * in dy. Register blocks of FB filters x KB kernel columns (F a multiple of FB); the lanes are added
 * up once per thread (direct_grad_lanes_sum): reducing 16 lanes per block cost 12%. */
static inline __attribute__((always_inline)) void
direct_weight_grad_blocks(const float *xp, const float *dy, float *lanes, ptrdiff_t C, ptrdiff_t H,
                          ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t ph, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t Wq, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t Wd,
                          const int FB, const int KB)
{
    ptrdiff_t Hp = H + 2 * ph, P = Ho * Wd, c, kh, kw0, f0, oh, ow0;
    ptrdiff_t koff[DIRECT_GRAD_KB], row_step = sh * sw * Wq;
    fnn_i16 tail_mask;
    int kw, f, l;
    for (l = 0; l < 16; l++)
        tail_mask[l] = Wo % 16 == 0 || l < Wo % 16 ? -1 : 0;
    /* filters outermost: a block's dy rows (FB x Ho x Wd) stay in L1 over every (c, kh, kw0), its
     * FB loads per KB FMAs served there (c outermost streamed them from L2: 3x slower, 3x3 groups) */
    for (f0 = 0; f0 < F; f0 += FB)
        for (c = 0; c < C; c++)
            for (kh = 0; kh < KH; kh++)
                for (kw0 = 0; kw0 < KW; kw0 += KB) {
                    const float *xbase = xp + (c * Hp + kh) * sw * Wq;
                    for (kw = 0; kw < KB; kw++)  /* kernel column k reads phase k % sw at k / sw */
                        koff[kw] = ((kw0 + kw) % sw) * Wq + (kw0 + kw) / sw;
                    fnn_v16 acc[DIRECT_GRAD_FB][DIRECT_GRAD_KB];
                    const float *dyp = dy + f0 * P;
                    const float *xrow = xbase;
                    for (f = 0; f < FB; f++)
                        for (kw = 0; kw < KB; kw++)
                            acc[f][kw] = (fnn_v16){0};
                    for (oh = 0; oh < Ho; oh++, xrow += row_step, dyp += Wd)
                        for (ow0 = 0; ow0 < Wo; ow0 += 16) {
                            /* dy's FB vectors held, x's KB streamed: FB + KB loads for FB x KB FMAs */
                            fnn_v16 d[DIRECT_GRAD_FB];
                            for (f = 0; f < FB; f++)
                                memcpy(&d[f], dyp + f * P + ow0, sizeof(fnn_v16));
                            for (kw = 0; kw < KB; kw++) {
                                fnn_v16 xv;
                                memcpy(&xv, xrow + koff[kw] + ow0, sizeof(xv));
                                if (ow0 + 16 > Wo)
                                    xv = (fnn_v16)((fnn_i16)xv & tail_mask);
                                for (f = 0; f < FB; f++)
                                    acc[f][kw] += d[f] * xv;
                            }
                        }
                    for (f = 0; f < FB; f++)
                        for (kw = 0; kw < KB && kw0 + kw < KW; kw++) {
                            float *dst = lanes + ((((f0 + f) * C + c) * KH + kh) * KW + kw0 + kw) * 16;
                            fnn_v16 v;
                            memcpy(&v, dst, sizeof(v));
                            v += acc[f][kw];
                            memcpy(dst, &v, sizeof(v));
                        }
                }
}

/* Register blocks of 4 filters x 7 kernel columns (the 7x7 stems), or if `narrow`, 4 x 3 (kernels up
 * to 6 wide: direct_grad_phase_width's span of 7 covers their blocks). Holding 8 filters' dy there
 * left GCC folding each dy load into its 3 FMAs: 2.0 against 1.8 ms for 32x64->64 28x28 3x3 g4's dw
 * (/work/s15/grp_dw.py). */
FNN_CLONES
static void direct_weight_grad_f(const float *xp, const float *dy, float *lanes, ptrdiff_t C,
                                 ptrdiff_t H, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t ph,
                                 ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t Wq, ptrdiff_t Ho, ptrdiff_t Wo,
                                 ptrdiff_t Wd, int narrow)
{
    if (narrow)
        direct_weight_grad_blocks(xp, dy, lanes, C, H, F, KH, KW, ph, sh, sw, Wq, Ho, Wo, Wd, 4, 3);
    else
        direct_weight_grad_blocks(xp, dy, lanes, C, H, F, KH, KW, ph, sh, sw, Wq, Ho, Wo, Wd, 4, 7);
}

/* dy (F, Ho, Wo) into rows Wd >= Wo apart, zero past Wo (the weight gradient's whole vectors) */
static void direct_pad_rows(const float *dy, float *dst, ptrdiff_t rows, ptrdiff_t Wo, ptrdiff_t Wd)
{
    ptrdiff_t r;
    for (r = 0; r < rows; r++) {
        memcpy(dst + r * Wd, dy + r * Wo, (size_t)Wo * sizeof(float));
        memset(dst + r * Wd + Wo, 0, (size_t)(Wd - Wo) * sizeof(float));
    }
}


/* dw[i] = the sum of lanes[i][0..16), for i < n. */
static void direct_grad_lanes_sum(const float *lanes, float *dw, ptrdiff_t n)
{
    ptrdiff_t i;
    int l;
    for (i = 0; i < n; i++) {
        float s = 0.0f;
        for (l = 0; l < 16; l++)
            s += lanes[i * 16 + l];
        dw[i] = s;
    }
}

FNN_END_LOOPS

#endif
