/* Batch-norm loops over one contiguous run, for float and double. batchnorm.pyx splits the data
 * into runs (a plane row of one channel, or a block of columns) and runs them in parallel.
 *   sums:  statistics in double (*_cols: in T over runs of rows, added up in double); u = a - ac,
 *          with a zeroed where masked and y <= 0 (relu'(0) = 0):
 *          *_run adds sum(u) and sum(u * (x - xc)) to two scalars (one channel),
 *          *_cols adds them per column over `rows` rows `stride` apart (one accumulator per column).
 *   apply: out = a * p + (x - k) * q + r (a zeroed as above; no a term when a is NULL, no x term
 *          when x is NULL: eval's backward), relu'd if asked (v <= 0 -> 0); in T, with k the mean
 *          rounded to T so that x - k stays exact near the mean (the caller folds the rounding of k
 *          into r).
 * "omp simd" lets the reductions vectorize (they would not without reassociation). ISA dispatch
 * is simd.h's FNN_CLONES. */
#ifndef FASTNN_BATCHNORM_LOOPS_H
#define FASTNN_BATCHNORM_LOOPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

/* Not inside FNN_BEGIN_LOOPS: without trapping math gcc compiled the masked passes (the fused
 * relu's backward and forward) 2.4x slower here (3.2 -> 7.7 ms, 32x64x32x32 float32, one thread):
 * the bit masks below already keep these loops branch-free. */

/* a, or +0 where masked and y <= 0 (NaN y keeps a, as relu_backward). With bit masks, not selects:
 * gcc (trapping math) keeps a select feeding double arithmetic as a branch, mispredicted half
 * the time, 10x slower. */
static inline float fnn_bn_keep_float(float a, float y, int masked)
{
    int32_t ab, yb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&yb, &y, sizeof yb);
    ab &= -(int32_t)(!masked || yb > 0 || (yb & 0x7fffffff) > 0x7f800000);
    memcpy(&a, &ab, sizeof a);
    return a;
}
static inline double fnn_bn_keep_double(double a, double y, int masked)
{
    int64_t ab, yb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&yb, &y, sizeof yb);
    ab &= -(int64_t)(!masked || yb > 0 || (yb & 0x7fffffffffffffff) > 0x7ff0000000000000);
    memcpy(&a, &ab, sizeof a);
    return a;
}
/* Without OpenMP (serial builds) the reductions stay scalar. */
#ifdef _OPENMP
#define FNN_BN_SIMD_SUMS _Pragma("omp simd reduction(+:t1, t2)")
#else
#define FNN_BN_SIMD_SUMS
#endif

/* Rows summed per column in T (float32 runs at full vector width) before adding into double: the
 * rounding error stays ~FNN_BN_RUN_ROWS ulps of the run's magnitude. */
#define FNN_BN_RUN_ROWS 32

#define FNN_DEFINE_BN_SUMS(T, SFX)                                                           \
FNN_CLONES static void fnn_bn_sums_run_##SFX(                                                \
    const T *restrict a, T ac, const T *restrict x, T xc, const T *restrict y,                    \
    int masked, ptrdiff_t n, double *s1, double *s2)                                               \
{                                                                                                  \
    double t1 = 0, t2 = 0;                                                                         \
    FNN_BN_SIMD_SUMS                                                                               \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        double u = (double)fnn_bn_keep_##T(a[i], y[i], masked) - (double)ac;                       \
        t1 += u;                                                                                   \
        t2 += u * ((double)x[i] - (double)xc);                                                     \
    }                                                                                              \
    *s1 += t1;                                                                                     \
    *s2 += t2;                                                                                     \
}                                                                                                  \
/* t1, t2: scratch for n values each; four rows per pass over them (two per pass ran 1.25x       \
 * slower: the accumulators are loaded and stored once per pass). */                              \
FNN_CLONES static void fnn_bn_sums_cols_##SFX(                                               \
    const T *restrict a, const T *restrict ac, const T *restrict x, const T *restrict xc,         \
    const T *restrict y, int masked, ptrdiff_t rows, ptrdiff_t stride, ptrdiff_t n,               \
    T *restrict t1, T *restrict t2, double *restrict s1, double *restrict s2)                      \
{                                                                                                  \
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += FNN_BN_RUN_ROWS) {                                     \
        ptrdiff_t r1 = rows - r0 < FNN_BN_RUN_ROWS ? rows : r0 + FNN_BN_RUN_ROWS, r = r0;          \
        memset(t1, 0, n * sizeof(T));                                                              \
        memset(t2, 0, n * sizeof(T));                                                              \
        for (; r + 3 < r1; r += 4) {  /* four rows per pass over the accumulators */                \
            const T *a0 = a + r * stride, *x0 = x + r * stride, *y0 = y + r * stride;              \
            for (ptrdiff_t i = 0; i < n; i++) {                                                    \
                T u0 = fnn_bn_keep_##T(a0[i], y0[i], masked) - ac[i];                              \
                T u1 = fnn_bn_keep_##T(a0[i + stride], y0[i + stride], masked) - ac[i];            \
                T u2 = fnn_bn_keep_##T(a0[i + 2 * stride], y0[i + 2 * stride], masked) - ac[i];    \
                T u3 = fnn_bn_keep_##T(a0[i + 3 * stride], y0[i + 3 * stride], masked) - ac[i];    \
                t1[i] += (u0 + u1) + (u2 + u3);                                                    \
                t2[i] += (u0 * (x0[i] - xc[i]) + u1 * (x0[i + stride] - xc[i]))                    \
                         + (u2 * (x0[i + 2 * stride] - xc[i]) + u3 * (x0[i + 3 * stride] - xc[i]));\
            }                                                                                      \
        }                                                                                          \
        for (; r < r1; r++) {                                                                      \
            const T *a0 = a + r * stride, *x0 = x + r * stride, *y0 = y + r * stride;              \
            for (ptrdiff_t i = 0; i < n; i++) {                                                    \
                T u = fnn_bn_keep_##T(a0[i], y0[i], masked) - ac[i];                               \
                t1[i] += u;                                                                        \
                t2[i] += u * (x0[i] - xc[i]);                                                      \
            }                                                                                      \
        }                                                                                          \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            s1[i] += t1[i];                                                                        \
            s2[i] += t2[i];                                                                        \
        }                                                                                          \
    }                                                                                              \
}

#define FNN_DEFINE_BN_APPLY(T, SFX)                                                                \
FNN_CLONES static void fnn_bn_apply_run_##SFX(                                               \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked, T p, T k, T q,     \
    T r, int relu, ptrdiff_t n, T *restrict out)                                                   \
{                                                                                                  \
    if (a == NULL) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T v = (x[i] - k) * q + r;                                                              \
            out[i] = fnn_bn_keep_##T(v, v, relu);                                                  \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    if (x == NULL) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++)                                                          \
            out[i] = fnn_bn_keep_##T(a[i], y[i], masked) * p + r;                                  \
        return;                                                                                    \
    }                                                                                              \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T v = fnn_bn_keep_##T(a[i], y[i], masked) * p + (x[i] - k) * q + r;                        \
        out[i] = fnn_bn_keep_##T(v, v, relu);                                                      \
    }                                                                                              \
}                                                                                                  \
FNN_CLONES static void fnn_bn_apply_cols_##SFX(                                              \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked,                    \
    const T *restrict p, const T *restrict k, const T *restrict q, const T *restrict r,           \
    int relu, ptrdiff_t n, T *restrict out)                                                        \
{                                                                                                  \
    if (a == NULL) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T v = (x[i] - k[i]) * q[i] + r[i];                                                     \
            out[i] = fnn_bn_keep_##T(v, v, relu);                                                  \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    if (x == NULL) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++)                                                          \
            out[i] = fnn_bn_keep_##T(a[i], y[i], masked) * p[i] + r[i];                            \
        return;                                                                                    \
    }                                                                                              \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T v = fnn_bn_keep_##T(a[i], y[i], masked) * p[i] + (x[i] - k[i]) * q[i] + r[i];            \
        out[i] = fnn_bn_keep_##T(v, v, relu);                                                      \
    }                                                                                              \
}

FNN_DEFINE_BN_SUMS(float, f)
FNN_DEFINE_BN_SUMS(double, d)
FNN_DEFINE_BN_APPLY(float, f)
FNN_DEFINE_BN_APPLY(double, d)

#endif
