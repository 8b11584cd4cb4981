/* Batch-norm loops over one contiguous run, for float and double. batchnorm.pyx splits the data
 * into runs (a plane row of one channel, or a block of columns) and runs them in parallel.
 *   sums:  statistics in double; u = a - ac, with a zeroed where masked and y <= 0 (relu'(0) = 0):
 *          *_run adds sum(u) and sum(u * (x - xc)) to two scalars (one channel),
 *          *_cols adds them per column over `rows` rows `stride` apart (one accumulator per column).
 *   apply: out = a * p + (x - k) * q + r (a zeroed as above), relu'd if asked (v <= 0 -> 0); in T,
 *          with k = k_hi + k_lo split in two T so that x - k keeps float32 exact near the mean.
 * "omp simd" lets the reductions vectorize (they would not without reassociation). */
#ifndef FASTNN_BATCHNORM_LOOPS_H
#define FASTNN_BATCHNORM_LOOPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Wider vectors where the CPU has them (one binary for any x86-64); as simd_math.h. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) \
    && defined(__linux__) && defined(__GLIBC__)
#define FNN_BN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FNN_BN_CLONES
#endif

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

#define FNN_BN_U(T, i) ((double)fnn_bn_keep_##T(a[i], y[i], masked) - ac)

#define FASTNN_BATCHNORM_LOOPS(T, SUFFIX)                                                          \
FNN_BN_CLONES static void fnn_bn_sums_run_##SUFFIX(                                                \
    const T *restrict a, double ac, const T *restrict x, double xc, const T *restrict y,          \
    int masked, ptrdiff_t n, double *s1, double *s2)                                               \
{                                                                                                  \
    double t1 = 0, t2 = 0;                                                                         \
    FNN_BN_SIMD_SUMS                                                                               \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        double u = FNN_BN_U(T, i);                                                                 \
        t1 += u;                                                                                   \
        t2 += u * ((double)x[i] - xc);                                                             \
    }                                                                                              \
    *s1 += t1;                                                                                     \
    *s2 += t2;                                                                                     \
}                                                                                                  \
FNN_BN_CLONES static void fnn_bn_sums_cols_##SUFFIX(                                               \
    const T *restrict a, const double *restrict a_center, const T *restrict x,                    \
    const double *restrict x_center, const T *restrict y, int masked, ptrdiff_t rows,             \
    ptrdiff_t stride, ptrdiff_t n, double *restrict s1, double *restrict s2)                       \
{                                                                                                  \
    ptrdiff_t r = 0;                                                                               \
    for (; r + 1 < rows; r += 2) {  /* two rows per pass over the accumulators */                  \
        const T *a1 = a + stride, *x1 = x + stride, *y1 = y + stride;                              \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            double ac = a_center[i], xc = x_center[i];                                             \
            double u = FNN_BN_U(T, i);                                                             \
            double u1 = (double)fnn_bn_keep_##T(a1[i], y1[i], masked) - ac;                        \
            s1[i] += u + u1;                                                                       \
            s2[i] += u * ((double)x[i] - xc) + u1 * ((double)x1[i] - xc);                          \
        }                                                                                          \
        a += 2 * stride;                                                                           \
        x += 2 * stride;                                                                           \
        y += 2 * stride;                                                                           \
    }                                                                                              \
    if (r < rows) {                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            double ac = a_center[i];                                                               \
            double u = FNN_BN_U(T, i);                                                             \
            s1[i] += u;                                                                            \
            s2[i] += u * ((double)x[i] - x_center[i]);                                             \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
FNN_BN_CLONES static void fnn_bn_apply_run_##SUFFIX(                                               \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked, T p, T k_hi,       \
    T k_lo, T q, T r, int relu, ptrdiff_t n, T *restrict out)                                      \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T v = fnn_bn_keep_##T(a[i], y[i], masked) * p + ((x[i] - k_hi) - k_lo) * q + r;           \
        out[i] = fnn_bn_keep_##T(v, v, relu);                                                      \
    }                                                                                              \
}                                                                                                  \
FNN_BN_CLONES static void fnn_bn_apply_cols_##SUFFIX(                                              \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked,                    \
    const T *restrict p, const T *restrict k_hi, const T *restrict k_lo, const T *restrict q,     \
    const T *restrict r, int relu, ptrdiff_t n, T *restrict out)                                   \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T v = fnn_bn_keep_##T(a[i], y[i], masked) * p[i] + ((x[i] - k_hi[i]) - k_lo[i]) * q[i]     \
              + r[i];                                                                              \
        out[i] = fnn_bn_keep_##T(v, v, relu);                                                      \
    }                                                                                              \
}

FASTNN_BATCHNORM_LOOPS(float, f)
FASTNN_BATCHNORM_LOOPS(double, d)

#endif
