/* Batch-norm loops over one contiguous run, for float and double. batchnorm.pyx splits the data
 * into runs (a plane row of one channel, or a block of columns) and runs them in parallel.
 *   sums:  in T over runs of FNN_BN_RUN_ROWS values per accumulator, added up in double; u = a - ac,
 *          with a zeroed where masked and y <= 0 (relu'(0) = 0):
 *          *_run adds sum(u) and sum(u * (x - xc)) to two scalars (one channel),
 *          *_cols adds them per column over `rows` rows `stride` apart (one accumulator per column).
 *   apply: out = a * p + (x - k) * q + r (a zeroed as above; no a term when a is NULL, no x term
 *          when x is NULL: eval's backward), relu'd if asked (v <= 0 -> 0); in T, with k the mean
 *          rounded to T so that x - k stays exact near the mean (the caller folds the rounding of k
 *          into r).
 * The reductions keep rows of accumulators (one per vector lane), so they vectorize without
 * reassociation. ISA dispatch is simd.h's FNN_CLONES. */
#ifndef FASTNN_BATCHNORM_LOOPS_H
#define FASTNN_BATCHNORM_LOOPS_H

#include <math.h>
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
/* Values summed per accumulator in T (float32 runs at full vector width) before adding into double:
 * the rounding error stays ~FNN_BN_RUN_ROWS ulps of the run's magnitude. */
#define FNN_BN_RUN_ROWS 32

#define FNN_DEFINE_BN_SUMS_RUN(T, SFX)                                                             \
/* Lanes of T accumulators, two vectors' worth, each summing FNN_BN_RUN_ROWS values before adding \
 * into double (as the columns' runs). One double per value ran at half the vector width, on one  \
 * accumulator chain per sum: 57% of a 32x64x32x32 float32 forward. MASKED and SELF (a is x about \
 * the same center) are constants in each inlined copy. */                                         \
static inline __attribute__((always_inline)) void fnn_bn_sums_run_body_##SFX(                      \
    const T *restrict a, T ac, const T *restrict x, T xc, const T *restrict y, const int masked,  \
    const int self, ptrdiff_t n, double *s1, double *s2)                                           \
{                                                                                                  \
    enum { LANES = 128 / sizeof(T) };                                                              \
    double d1 = 0, d2 = 0;                                                                         \
    ptrdiff_t i = 0;                                                                               \
    while (n - i >= LANES) {                                                                       \
        T t1[LANES] = {0}, t2[LANES] = {0};                                                        \
        ptrdiff_t runs = (n - i) / LANES;                                                          \
        ptrdiff_t end = i + (runs < FNN_BN_RUN_ROWS ? runs : FNN_BN_RUN_ROWS) * LANES;             \
        for (; i < end; i += LANES)                                                                \
            for (int l = 0; l < LANES; l++) {                                                      \
                T u = fnn_bn_keep_##T(a[i + l], y[i + l], masked) - ac;                            \
                t1[l] += u;                                                                        \
                t2[l] += self ? u * u : u * (x[i + l] - xc);                                       \
            }                                                                                      \
        for (int l = 0; l < LANES; l++) {                                                          \
            d1 += t1[l];                                                                           \
            d2 += t2[l];                                                                           \
        }                                                                                          \
    }                                                                                              \
    for (; i < n; i++) {                                                                           \
        T u = fnn_bn_keep_##T(a[i], y[i], masked) - ac;                                            \
        d1 += u;                                                                                   \
        d2 += self ? u * u : u * (x[i] - xc);                                                      \
    }                                                                                              \
    *s1 += d1;                                                                                     \
    *s2 += d2;                                                                                     \
}                                                                                                  \
FNN_CLONES static void fnn_bn_sums_run_##SFX(                                                      \
    const T *restrict a, T ac, const T *restrict x, T xc, const T *restrict y,                    \
    int masked, ptrdiff_t n, double *s1, double *s2)                                               \
{                                                                                                  \
    if (masked)                                                                                    \
        fnn_bn_sums_run_body_##SFX(a, ac, x, xc, y, 1, 0, n, s1, s2);                              \
    else if (a == x && ac == xc)                                                                   \
        fnn_bn_sums_run_body_##SFX(a, ac, x, xc, y, 0, 1, n, s1, s2);                              \
    else                                                                                           \
        fnn_bn_sums_run_body_##SFX(a, ac, x, xc, y, 0, 0, n, s1, s2);                              \
}

#define FNN_DEFINE_BN_SUMS_COLS(T, SFX)                                                            \
/* t1, t2: scratch for n values each; four rows per pass over them (two per pass ran 1.25x       \
 * slower: the accumulators are loaded and stored once per pass). MASKED and SELF are constants   \
 * in each inlined copy: SELF (the forward's statistics: a is x about the same center) loads one  \
 * stream, not three, and the unmasked copies skip the relu mask (128 x 1000 float32 sums ran     \
 * 2.4x faster, one thread). */                                                                    \
static inline __attribute__((always_inline)) void fnn_bn_sums_cols_body_##SFX(                    \
    const T *restrict a, const T *restrict ac, const T *restrict x, const T *restrict xc,         \
    const T *restrict y, const int masked, const int self, ptrdiff_t rows, ptrdiff_t stride,      \
    ptrdiff_t n, T *restrict t1, T *restrict t2, double *restrict s1, double *restrict s2)         \
{                                                                                                  \
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += FNN_BN_RUN_ROWS) {                                     \
        ptrdiff_t r1 = rows - r0 < FNN_BN_RUN_ROWS ? rows : r0 + FNN_BN_RUN_ROWS, r = r0;          \
        memset(t1, 0, n * sizeof(T));                                                              \
        memset(t2, 0, n * sizeof(T));                                                              \
        for (; r + 3 < r1; r += 4) {  /* four rows per pass over the accumulators */                \
            const T *a0 = a + r * stride, *x0 = self ? a0 : x + r * stride, *y0 = y + r * stride;  \
            for (ptrdiff_t i = 0; i < n; i++) {                                                    \
                T u0 = fnn_bn_keep_##T(a0[i], y0[i], masked) - ac[i];                              \
                T u1 = fnn_bn_keep_##T(a0[i + stride], y0[i + stride], masked) - ac[i];            \
                T u2 = fnn_bn_keep_##T(a0[i + 2 * stride], y0[i + 2 * stride], masked) - ac[i];    \
                T u3 = fnn_bn_keep_##T(a0[i + 3 * stride], y0[i + 3 * stride], masked) - ac[i];    \
                T c = self ? 0 : xc[i];                                                            \
                t1[i] += (u0 + u1) + (u2 + u3);                                                    \
                t2[i] += self ? (u0 * u0 + u1 * u1) + (u2 * u2 + u3 * u3)                          \
                              : (u0 * (x0[i] - c) + u1 * (x0[i + stride] - c))                     \
                                + (u2 * (x0[i + 2 * stride] - c) + u3 * (x0[i + 3 * stride] - c)); \
            }                                                                                      \
        }                                                                                          \
        for (; r < r1; r++) {                                                                      \
            const T *a0 = a + r * stride, *x0 = self ? a0 : x + r * stride, *y0 = y + r * stride;  \
            for (ptrdiff_t i = 0; i < n; i++) {                                                    \
                T u = fnn_bn_keep_##T(a0[i], y0[i], masked) - ac[i];                               \
                t1[i] += u;                                                                        \
                t2[i] += self ? u * u : u * (x0[i] - xc[i]);                                       \
            }                                                                                      \
        }                                                                                          \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            s1[i] += t1[i];                                                                        \
            s2[i] += t2[i];                                                                        \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
/* self: a and x are the same array about the same centers (ac == xc). */                          \
FNN_CLONES static void fnn_bn_sums_cols_##SFX(                                               \
    const T *restrict a, const T *restrict ac, const T *restrict x, const T *restrict xc,         \
    const T *restrict y, int masked, ptrdiff_t rows, ptrdiff_t stride, ptrdiff_t n,               \
    T *restrict t1, T *restrict t2, double *restrict s1, double *restrict s2)                      \
{                                                                                                  \
    if (masked)                                                                                    \
        fnn_bn_sums_cols_body_##SFX(a, ac, x, xc, y, 1, 0, rows, stride, n, t1, t2, s1, s2);       \
    else if (a == x && ac == xc)                                                                   \
        fnn_bn_sums_cols_body_##SFX(a, ac, x, xc, y, 0, 1, rows, stride, n, t1, t2, s1, s2);       \
    else                                                                                           \
        fnn_bn_sums_cols_body_##SFX(a, ac, x, xc, y, 0, 0, rows, stride, n, t1, t2, s1, s2);       \
}

/* The six copies of an apply body the callers use, its flags (HAS_A, HAS_X, MASKED, RELU) constant
 * in each: the forward (relu'd or not), eval's backward and training's (masked or not). */
#define FNN_BN_APPLY_COPIES(BODY, ...)                                                             \
    do {                                                                                           \
        if (a == NULL && relu)                                                                     \
            BODY(0, 1, 0, 1, __VA_ARGS__);                                                         \
        else if (a == NULL)                                                                        \
            BODY(0, 1, 0, 0, __VA_ARGS__);                                                         \
        else if (x == NULL && masked)                                                              \
            BODY(1, 0, 1, 0, __VA_ARGS__);                                                         \
        else if (x == NULL)                                                                        \
            BODY(1, 0, 0, 0, __VA_ARGS__);                                                         \
        else if (masked)                                                                           \
            BODY(1, 1, 1, 0, __VA_ARGS__);                                                         \
        else                                                                                       \
            BODY(1, 1, 0, 0, __VA_ARGS__);                                                         \
    } while (0)

#define FNN_DEFINE_BN_APPLY_RUN(T, SFX)                                                          \
/* One value: out[j] of a run; the flags are constants in each inlined copy (the unmasked,        \
 * unrelu'd copies skip the bit masks). */                                                         \
static inline __attribute__((always_inline)) T fnn_bn_apply_value_##SFX(                           \
    const int has_a, const int has_x, const int masked, const int relu, const T *restrict a,      \
    const T *restrict x, const T *restrict y, T p, T k, T q, T r, ptrdiff_t j)                     \
{                                                                                                  \
    T v = !has_a ? (x[j] - k) * q + r                                                              \
          : !has_x ? fnn_bn_keep_##T(a[j], y[j], masked) * p + r                                   \
          : fnn_bn_keep_##T(a[j], y[j], masked) * p + (x[j] - k) * q + r;                          \
    return fnn_bn_keep_##T(v, v, relu);                                                            \
}                                                                                                  \
static inline __attribute__((always_inline)) void fnn_bn_apply_run_body_##SFX(                     \
    const int has_a, const int has_x, const int masked, const int relu, const T *restrict a,      \
    const T *restrict x, const T *restrict y, T p, T k, T q, T r, ptrdiff_t n, T *restrict out)   \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++)                                                              \
        out[i] = fnn_bn_apply_value_##SFX(has_a, has_x, masked, relu, a, x, y, p, k, q, r, i);     \
}                                                                                                  \
/* One channel's run of n values (the plane path); relu: the forward's (a NULL). */                \
FNN_CLONES static void fnn_bn_apply_run_##SFX(                                                     \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked, T p, T k, T q,     \
    T r, int relu, ptrdiff_t n, T *restrict out)                                                   \
{                                                                                                  \
    FNN_BN_APPLY_COPIES(fnn_bn_apply_run_body_##SFX, a, x, y, p, k, q, r, n, out);                 \
}

#define FNN_DEFINE_BN_APPLY_COLS(T, SFX)                                                           \
/* Four rows per pass, as the sums: each column's coefficients are loaded once for the four (one  \
 * row at a time, the loads of p, k, q and r outnumbered those of the data 2:1 and bound the loop  \
 * on L1's load ports). */                                                                         \
static inline __attribute__((always_inline)) void fnn_bn_apply_cols_body_##SFX(                   \
    const int has_a, const int has_x, const int masked, const int relu, const T *restrict a,      \
    const T *restrict x, const T *restrict y, const T *restrict p, const T *restrict k,           \
    const T *restrict q, const T *restrict r, ptrdiff_t rows, ptrdiff_t stride, ptrdiff_t n,      \
    T *restrict out)                                                                               \
{                                                                                                  \
    ptrdiff_t row = 0;                                                                             \
    for (; row + 3 < rows; row += 4)                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            T pi = has_a ? p[i] : 0, ki = has_x ? k[i] : 0, qi = has_x ? q[i] : 0, ri = r[i];      \
            for (int t = 0; t < 4; t++) {                                                          \
                ptrdiff_t j = (row + t) * stride + i;                                              \
                out[j] = fnn_bn_apply_value_##SFX(has_a, has_x, masked, relu, a, x, y, pi, ki, qi, \
                                                  ri, j);                                          \
            }                                                                                      \
        }                                                                                          \
    for (; row < rows; row++)                                                                      \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            ptrdiff_t j = row * stride + i;                                                        \
            out[j] = fnn_bn_apply_value_##SFX(has_a, has_x, masked, relu, a, x, y,                 \
                                              has_a ? p[i] : 0, has_x ? k[i] : 0,                  \
                                              has_x ? q[i] : 0, r[i], j);                          \
        }                                                                                          \
}                                                                                                  \
/* rows runs of n columns, `stride` apart (a, x, y and out alike); relu: the forward's (a NULL). */\
FNN_CLONES static void fnn_bn_apply_cols_##SFX(                                                    \
    const T *restrict a, const T *restrict x, const T *restrict y, int masked,                    \
    const T *restrict p, const T *restrict k, const T *restrict q, const T *restrict r,           \
    int relu, ptrdiff_t rows, ptrdiff_t stride, ptrdiff_t n, T *restrict out)                      \
{                                                                                                  \
    FNN_BN_APPLY_COPIES(fnn_bn_apply_cols_body_##SFX, a, x, y, p, k, q, r, rows, stride, n, out);  \
}

/* Per-channel passes: vectorized here (Cython's loops build for the baseline ISA, with scalar
 * double divisions and square roots: 1000 channels took ~30% of a 128 x 1000 float32 forward). */

/* mean and biased variance from the sums about `center`; var clamps at 0 (rounding). */
FNN_CLONES static void fnn_bn_moments(ptrdiff_t channels, double count, const double *restrict center,
                                      const double *restrict s1, const double *restrict s2,
                                      double *restrict mean, double *restrict var)
{
    for (ptrdiff_t c = 0; c < channels; c++) {
        double shift = s1[c] / count, v = s2[c] / count - shift * shift;
        mean[c] = center[c] + shift;
        var[c] = v < 0 ? 0.0 : v;  /* NaN stays NaN */
    }
}

/* s1 = sum over the row chunks and each channel's `size` columns of the partial sums
 * (partial rows: chunk * cols for s1, (chunks + chunk) * cols for s2). */
FNN_CLONES static void fnn_bn_merge(ptrdiff_t channels, ptrdiff_t size, ptrdiff_t chunks,
                                    const double *restrict partial, double *restrict s1, double *restrict s2)
{
    ptrdiff_t cols = channels * size;
    if (size == 1) {
        for (ptrdiff_t c = 0; c < channels; c++) {
            s1[c] = partial[c];
            s2[c] = partial[chunks * cols + c];
        }
        for (ptrdiff_t chunk = 1; chunk < chunks; chunk++)
            for (ptrdiff_t c = 0; c < channels; c++) {
                s1[c] += partial[chunk * cols + c];
                s2[c] += partial[(chunks + chunk) * cols + c];
            }
        return;
    }
    for (ptrdiff_t c = 0; c < channels; c++) {
        double t1 = 0, t2 = 0;
        for (ptrdiff_t chunk = 0; chunk < chunks; chunk++)
            for (ptrdiff_t j = c * size; j < c * size + size; j++) {
                t1 += partial[chunk * cols + j];
                t2 += partial[(chunks + chunk) * cols + j];
            }
        s1[c] = t1;
        s2[c] = t2;
    }
}

#define FNN_DEFINE_BN_STATISTICS(T, SFX)                                                             \
/* v[c] rounded to T, repeated `size` times per channel. */                                        \
FNN_CLONES static void fnn_bn_repeat_##SFX(const double *restrict v, ptrdiff_t channels,           \
                                           ptrdiff_t size, T *restrict out)                        \
{                                                                                                  \
    if (size == 1) {                                                                               \
        for (ptrdiff_t c = 0; c < channels; c++)                                                   \
            out[c] = (T)v[c];                                                                      \
        return;                                                                                    \
    }                                                                                              \
    for (ptrdiff_t c = 0; c < channels; c++)                                                       \
        for (ptrdiff_t s = 0; s < size; s++)                                                       \
            out[c * size + s] = (T)v[c];                                                           \
}                                                                                                  \
/* The forward's normalization: invstd = 1 / sqrt(var + eps), scale = weight * invstd, and the   \
 * saved mean and invstd in T. */                                                                  \
FNN_CLONES static void fnn_bn_invstd_##SFX(ptrdiff_t channels, const double *restrict mean,        \
                                           const double *restrict var, const double *restrict weight, \
                                           double eps, double *restrict invstd,                    \
                                           double *restrict scale, T *restrict save_mean,          \
                                           T *restrict save_invstd)                                \
{                                                                                                  \
    for (ptrdiff_t c = 0; c < channels; c++) {                                                     \
        double i = 1 / sqrt(var[c] + eps);                                                         \
        invstd[c] = i;                                                                             \
        scale[c] = weight[c] * i;                                                                  \
        save_mean[c] = (T)mean[c];                                                                 \
        save_invstd[c] = (T)i;                                                                     \
    }                                                                                              \
}                                                                                                  \
/* PyTorch's running statistics: the unbiased variance into running_var. */                        \
FNN_CLONES static void fnn_bn_running_##SFX(ptrdiff_t channels, double momentum, double unbiased,  \
                                            const double *restrict mean, const double *restrict var, \
                                            T *restrict running_mean, T *restrict running_var)     \
{                                                                                                  \
    for (ptrdiff_t c = 0; c < channels; c++) {                                                     \
        running_mean[c] = (T)((1 - momentum) * running_mean[c] + momentum * mean[c]);              \
        running_var[c] = (T)((1 - momentum) * running_var[c] + momentum * var[c] * unbiased);      \
    }                                                                                              \
}

#define FNN_DEFINE_BN_COEFFICIENTS(T, SFX)                                                         \
/* The backward's coefficients dx = dz * p + (x - mean) * q + r from the sums s1 = sum dz,       \
 * s2 = sum dz * (x - mean): p = weight * invstd (written over weight); q, r zero in eval. */      \
FNN_CLONES static void fnn_bn_grad_coefficients_##SFX(                                             \
    ptrdiff_t channels, double count, int training, double *restrict weight,                      \
    const double *restrict invstd, const double *restrict s1, const double *restrict s2,          \
    double *restrict q, double *restrict r, T *restrict dweight, T *restrict dbias)                \
{                                                                                                  \
    for (ptrdiff_t c = 0; c < channels; c++) {                                                     \
        double i = invstd[c], p = weight[c] * i;                                                   \
        q[c] = training ? -p * i * i * s2[c] / count : 0.0;                                        \
        r[c] = training ? -p * s1[c] / count : 0.0;                                                \
        dbias[c] = (T)s1[c];                                                                       \
        dweight[c] = (T)(s2[c] * i);                                                               \
        weight[c] = p;                                                                             \
    }                                                                                              \
}                                                                                                  \
/* The elementwise pass's coefficient rows p, k, q, r in T, each repeated `size` times per        \
 * channel: k is the mean rounded to T, its rounding folded into r. */                             \
FNN_CLONES static void fnn_bn_apply_rows_##SFX(                                                    \
    ptrdiff_t channels, ptrdiff_t size, const double *restrict p, const double *restrict k,       \
    const double *restrict q, const double *restrict r, T *restrict rows)                          \
{                                                                                                  \
    ptrdiff_t cols = channels * size;                                                              \
    if (size == 1) {                                                                               \
        for (ptrdiff_t c = 0; c < channels; c++) {                                                 \
            T kc = (T)k[c];                                                                        \
            rows[c] = (T)p[c];                                                                     \
            rows[cols + c] = kc;                                                                   \
            rows[2 * cols + c] = (T)q[c];                                                          \
            rows[3 * cols + c] = (T)(r[c] - (k[c] - (double)kc) * q[c]);                           \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    for (ptrdiff_t c = 0; c < channels; c++) {                                                     \
        T kc = (T)k[c];                                                                            \
        T pc = (T)p[c], qc = (T)q[c], rc = (T)(r[c] - (k[c] - (double)kc) * q[c]);                 \
        for (ptrdiff_t s = 0; s < size; s++) {                                                     \
            rows[c * size + s] = pc;                                                               \
            rows[cols + c * size + s] = kc;                                                        \
            rows[2 * cols + c * size + s] = qc;                                                    \
            rows[3 * cols + c * size + s] = rc;                                                    \
        }                                                                                          \
    }                                                                                              \
}

FNN_DEFINE_BN_SUMS_RUN(float, f)
FNN_DEFINE_BN_SUMS_RUN(double, d)
FNN_DEFINE_BN_SUMS_COLS(float, f)
FNN_DEFINE_BN_SUMS_COLS(double, d)
FNN_DEFINE_BN_APPLY_RUN(float, f)
FNN_DEFINE_BN_APPLY_RUN(double, d)
FNN_DEFINE_BN_APPLY_COLS(float, f)
FNN_DEFINE_BN_APPLY_COLS(double, d)
FNN_DEFINE_BN_STATISTICS(float, f)
FNN_DEFINE_BN_STATISTICS(double, d)
FNN_DEFINE_BN_COEFFICIENTS(float, f)
FNN_DEFINE_BN_COEFFICIENTS(double, d)

#endif
