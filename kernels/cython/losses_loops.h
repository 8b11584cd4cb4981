/* C loops for the Cython losses (float32 rows use simd_math.h's vectorizable exp). */
#ifndef FASTNN_LOSSES_LOOPS_H
#define FASTNN_LOSSES_LOOPS_H

#include <stddef.h>
#include "simd_math.h"

FNN_BEGIN_LOOPS

/* The maximum of a row over independent lanes (16 floats, 8 doubles: one AVX-512 register),
 * which vectorize (a serial chain of compares was half of softmax_cross_entropy's time). Its own
 * function: inlined into the row function, gcc kept the running max on the stack (a store-to-load
 * chain per element, 36% of the float64 loss). NaN is skipped here; it still reaches the loss
 * through the exp. -inf for an empty row. */
#define FNN_DEFINE_ROW_MAX(T, SFX, LANES)                                                          \
FNN_CLONES static T fnn_row_max_##SFX(const T *a, ptrdiff_t n) {                                   \
    T lanes[LANES], top;                                                                           \
    ptrdiff_t j, tail = n - n % LANES;                                                             \
    int l;                                                                                         \
    for (l = 0; l < LANES; l++)                                                                    \
        lanes[l] = -INFINITY;                                                                      \
    for (j = 0; j < tail; j += LANES)                                                              \
        for (l = 0; l < LANES; l++)                                                                \
            lanes[l] = a[j + l] > lanes[l] ? a[j + l] : lanes[l];                                  \
    top = lanes[0];                                                                                \
    for (l = 1; l < LANES; l++)                                                                    \
        top = lanes[l] > top ? lanes[l] : top;                                                     \
    for (j = tail; j < n; j++)                                                                     \
        top = a[j] > top ? a[j] : top;                                                             \
    return top;                                                                                    \
}
FNN_DEFINE_ROW_MAX(float, f, 16)
FNN_DEFINE_ROW_MAX(double, d, 8)

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
#define FNN_DEFINE_PLANE_SOFTMAX(T, SFX, EXP)                                                      \
FNN_CLONES static void fnn_plane_softmax_##SFX(const T *z, ptrdiff_t stride, ptrdiff_t classes,    \
                                               ptrdiff_t m, T *top, T *out, double *total) {       \
    ptrdiff_t c, k;                                                                                \
    for (k = 0; k < m; k++) {                                                                      \
        top[k] = z[k];                                                                             \
        total[k] = 0.0;                                                                            \
    }                                                                                              \
    for (c = 1; c < classes; c++)                                                                  \
        for (k = 0; k < m; k++)                                                                    \
            top[k] = z[c * stride + k] > top[k] ? z[c * stride + k] : top[k];                      \
    for (c = 0; c < classes; c++)                                                                  \
        for (k = 0; k < m; k++) {                                                                  \
            T e = EXP(z[c * stride + k] - top[k]);                                                 \
            out[c * stride + k] = e;                                                               \
            total[k] += e;                                                                         \
        }                                                                                          \
}
FNN_DEFINE_PLANE_SOFTMAX(float, f, fnn_exp_nonpos_f)
FNN_DEFINE_PLANE_SOFTMAX(double, d, exp)

FNN_END_LOOPS

#endif
