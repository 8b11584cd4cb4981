/* C loops for the Cython losses (float32 rows use simd_math.h's vectorizable exp). */
#ifndef FASTNN_LOSSES_LOOPS_H
#define FASTNN_LOSSES_LOOPS_H

#include <stddef.h>
#include "simd_math.h"

FNN_BEGIN_LOOPS

/* The maximum of a row over 16 independent lanes, which vectorize (a serial chain of compares
 * was half of softmax_cross_entropy's time). NaN is skipped here; it still reaches the loss through
 * the exp. -inf for an empty row. */
FNN_CLONES static float fnn_row_max_f(const float *a, ptrdiff_t n) {
    float lanes[16], top;
    ptrdiff_t j, tail = n - n % 16;
    int l;
    for (l = 0; l < 16; l++)
        lanes[l] = -INFINITY;
    for (j = 0; j < tail; j += 16)
        for (l = 0; l < 16; l++)
            lanes[l] = a[j + l] > lanes[l] ? a[j + l] : lanes[l];
    top = lanes[0];
    for (l = 1; l < 16; l++)
        top = lanes[l] > top ? lanes[l] : top;
    for (j = tail; j < n; j++)
        top = a[j] > top ? a[j] : top;
    return top;
}

/* The same for double rows (8 lanes). Also keeps the running max in registers: inlined into the
 * row function, gcc kept it on the stack (a store-to-load chain per element, 36% of the float64 loss). */
FNN_CLONES static double fnn_row_max_d(const double *a, ptrdiff_t n) {
    double lanes[8], top;
    ptrdiff_t j, tail = n - n % 8;
    int l;
    for (l = 0; l < 8; l++)
        lanes[l] = -INFINITY;
    for (j = 0; j < tail; j += 8)
        for (l = 0; l < 8; l++)
            lanes[l] = a[j + l] > lanes[l] ? a[j + l] : lanes[l];
    top = lanes[0];
    for (l = 1; l < 8; l++)
        top = lanes[l] > top ? lanes[l] : top;
    for (j = tail; j < n; j++)
        top = a[j] > top ? a[j] : top;
    return top;
}

/* out[j] = e^(logits[j] - top) for a row whose maximum is top; returns the sum of out (float
 * sums over 16 lanes, then double: a serial double chain does not vectorize). */
FNN_CLONES static double fnn_softmax_exp_row_f(const float *logits, float top, float *out, ptrdiff_t n) {
    float lanes[16] = {0};
    ptrdiff_t j, tail = n - n % 16;
    int l;
    double total = 0.0;
    for (j = 0; j < n; j++)
        out[j] = fnn_exp_nonpos_f(logits[j] - top);
    for (j = 0; j < tail; j += 16)
        for (l = 0; l < 16; l++)
            lanes[l] += out[j + l];
    for (l = 0; l < 16; l++)
        total += lanes[l];
    for (j = tail; j < n; j++)
        total += out[j];
    return total;
}

/* A tile of m positions of one (C, S) sample of (N, C, S) logits (z: its first position, class c at
 * z + c * stride): top[k] = the max over the classes, then out[c * stride + k] = e^(z - top[k])
 * and total[k] their sum. Loops over the positions vectorize (one row of C = 21 classes at a time
 * ran 10x slower than torch). NaN is skipped by the max; it reaches total through the exp. */
FNN_CLONES static void fnn_plane_softmax_f(const float *z, ptrdiff_t stride, ptrdiff_t classes, ptrdiff_t m,
                                           float *top, float *out, double *total) {
    ptrdiff_t c, k;
    for (k = 0; k < m; k++) {
        top[k] = z[k];
        total[k] = 0.0;
    }
    for (c = 1; c < classes; c++)
        for (k = 0; k < m; k++)
            top[k] = z[c * stride + k] > top[k] ? z[c * stride + k] : top[k];
    for (c = 0; c < classes; c++)
        for (k = 0; k < m; k++) {
            float e = fnn_exp_nonpos_f(z[c * stride + k] - top[k]);
            out[c * stride + k] = e;
            total[k] += e;
        }
}

FNN_CLONES static void fnn_plane_softmax_d(const double *z, ptrdiff_t stride, ptrdiff_t classes, ptrdiff_t m,
                                           double *top, double *out, double *total) {
    ptrdiff_t c, k;
    for (k = 0; k < m; k++) {
        top[k] = z[k];
        total[k] = 0.0;
    }
    for (c = 1; c < classes; c++)
        for (k = 0; k < m; k++)
            top[k] = z[c * stride + k] > top[k] ? z[c * stride + k] : top[k];
    for (c = 0; c < classes; c++)
        for (k = 0; k < m; k++) {
            double e = exp(z[c * stride + k] - top[k]);
            out[c * stride + k] = e;
            total[k] += e;
        }
}

FNN_END_LOOPS

#endif
