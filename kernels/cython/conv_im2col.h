/* im2col / col2im for kernels/cython/conv.pyx, float and double, vectorized per output row by
 * FNN_CLONES (the wheel targets baseline x86-64; stride-2 rows need AVX-512/AVX2 permutes). */
#ifndef FASTNN_CONV_IM2COL_H
#define FASTNN_CONV_IM2COL_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

FNN_BEGIN_LOOPS

/* Geometry of one group: Cg channels (H, W) -> columns (Cg*KH*KW, Ho*Wo). ptrdiff_t: products
 * and offsets of huge paddings or outputs must not wrap. */
typedef struct {
    ptrdiff_t Cg, H, W, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw;
} im2col_geometry;

/* [lo, hi): the outputs o < n_out whose input start + o * step lies in [0, limit). */
static inline void im2col_valid(ptrdiff_t n_out, ptrdiff_t start, ptrdiff_t step, ptrdiff_t limit,
                                ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = start < 0 ? (-start + step - 1) / step : 0;
    ptrdiff_t b = start >= limit ? 0 : (limit - 1 - start) / step + 1;
    if (b > n_out) b = n_out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

#define IM2COL_T float
#define IM2COL_S f
#include "conv_im2col_impl.h"
#undef IM2COL_T
#undef IM2COL_S

#define IM2COL_T double
#define IM2COL_S d
#include "conv_im2col_impl.h"
#undef IM2COL_T
#undef IM2COL_S


/* The sum of x[0..n) in double, from float vector sums over runs of 4096 (the bias gradient of
 * conv2d_backward: a serial double chain ran at one add per 4 cycles). NaN and inf propagate. */
FNN_CLONES
static double sum_run_f(const float *x, ptrdiff_t n)
{
    double total = 0;
    ptrdiff_t start, i;
    int j;
    for (start = 0; start < n; start += 4096) {
        ptrdiff_t end = n - start < 4096 ? n : start + 4096;
        fnn_v16 acc = {0};
        float s = 0;
        for (i = start; i + 16 <= end; i += 16) {
            fnn_v16 v;
            memcpy(&v, x + i, sizeof v);
            acc += v;
        }
        for (; i < end; i++) s += x[i];
        for (j = 0; j < 16; j++) s += acc[j];
        total += s;
    }
    return total;
}

FNN_END_LOOPS

#endif
