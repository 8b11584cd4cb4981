/* Activation loops over one chunk of flattened arrays (the parallel loop is in activations.pyx).
 *
 * Semantics follow fastnn/reference/activations.py (PyTorch's): comparisons are written so that
 * NaN takes the same branch as there, and NaN propagates. float32 loops are FNN_CLONES and
 * vectorize, using simd_math.h; float64 transcendental loops call libm (accuracy over speed).
 */
#ifndef FASTNN_ACTIVATION_LOOPS_H
#define FASTNN_ACTIVATION_LOOPS_H

#include "simd_math.h"

FNN_BEGIN_LOOPS

/* Element-wise ops, one code each, run by fnn_activation_f / fnn_activation_d. */
enum {
    FNN_RELU, FNN_RELU_BACKWARD,
    FNN_LEAKY_RELU, FNN_LEAKY_RELU_BACKWARD,
    FNN_ELU, FNN_ELU_BACKWARD,
    FNN_SIGMOID, FNN_SIGMOID_BACKWARD,
    FNN_TANH, FNN_TANH_BACKWARD,
    FNN_GELU, FNN_GELU_BACKWARD,
    FNN_SILU, FNN_SILU_BACKWARD,
    FNN_GELU_TANH, FNN_GELU_TANH_BACKWARD,
};

/* One signature for all: out[i] = f(a[i], b[i], p). Forwards read v = a[i] (b is unused);
 * backwards read g = dy = a[i] and v = b[i] (x, or the forward's output y). */
#define FNN_MAP(ATTR, NAME, T, EXPR)                                                               \
    static ATTR void NAME(const T *a, const T *b, T *out, ptrdiff_t n, T p) {                      \
        (void)b;                                                                                   \
        (void)p;                                                                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            const T v = a[i];                                                                      \
            out[i] = (EXPR);                                                                       \
        }                                                                                          \
    }
#define FNN_MAP_GRAD(ATTR, NAME, T, EXPR)                                                          \
    static ATTR void NAME(const T *a, const T *b, T *out, ptrdiff_t n, T p) {                      \
        (void)p;                                                                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                                        \
            const T g = a[i], v = b[i];                                                            \
            out[i] = (EXPR);                                                                       \
        }                                                                                          \
    }

/* Ops without transcendentals: the same expression for both dtypes. */
#define FNN_DEFINE_ALGEBRAIC(T, SFX)                                                               \
    FNN_MAP(FNN_CLONES, fnn_loop_relu_##SFX, T, v <= 0 ? (T)0 : v)                                 \
    FNN_MAP_GRAD(FNN_CLONES, fnn_loop_relu_backward_##SFX, T, v <= 0 ? (T)0 : g)                   \
    FNN_MAP(FNN_CLONES, fnn_loop_leaky_relu_##SFX, T, v > 0 ? v : v * p)                           \
    FNN_MAP_GRAD(FNN_CLONES, fnn_loop_leaky_relu_backward_##SFX, T, v > 0 ? g : g * p)             \
    FNN_MAP_GRAD(FNN_CLONES, fnn_loop_sigmoid_backward_##SFX, T, g * v * (1 - v))                  \
    FNN_MAP_GRAD(FNN_CLONES, fnn_loop_tanh_backward_##SFX, T, g * (1 - v * v))

FNN_DEFINE_ALGEBRAIC(float, f)
FNN_DEFINE_ALGEBRAIC(double, d)

/* Per-element float32 and float64 forms of the transcendental ops. The exp/expm1 arguments are
 * min(x, 0) as in the reference, which keeps them in the float32 functions' domain. */
static inline float fnn_elu_f(float x, float alpha) {
    return x > 0.0f ? x : alpha * fnn_expm1_nonpos_f(x > 0.0f ? 0.0f : x);
}
static inline double fnn_elu_d(double x, double alpha) { return x > 0 ? x : alpha * expm1(x); }

static inline float fnn_elu_grad_f(float g, float x, float alpha) {
    return x <= 0.0f ? g * alpha * fnn_exp_nonpos_f(x <= 0.0f ? x : 0.0f) : g;
}
static inline double fnn_elu_grad_d(double g, double x, double alpha) {
    return x <= 0 ? g * alpha * exp(x) : g;
}

static inline double fnn_sigmoid_d(double x) {
    const double z = exp(-fabs(x));
    return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}

/* GELU = x Phi(x); its derivative Phi(x) + x phi(x) is NaN at x = +-inf (inf * 0), as torch's. */
static inline double fnn_normal_cdf_d(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }

static inline float fnn_gelu_f(float x) {
    float pdf;
    return x * fnn_normal_cdf_pdf_f(x, &pdf);
}

static inline float fnn_gelu_grad_f(float g, float x) {
    float pdf;
    const float cdf = fnn_normal_cdf_pdf_f(x, &pdf);
    return g * (cdf + x * pdf);
}

/* float64 tail, x < FNN_GELU_TAIL: from erfc, gelu and gelu' are subnormal products of subnormals
 * (off by up to ~20 units of 2^-1074, 1e-9 relative), and dy * gelu' loses all but a few bits
 * where dy is huge. There phi(u), u = -x, is computed as 2^-k e^r with k = round(u^2 / 2 / ln 2)
 * (u^2 exact as hi + lo, k ln 2 in two parts, as libm's exp reduces), Phi(x) as phi(u) S(u) / u
 * with S(u) = sum (-1)^j (2j - 1)!! / u^(2j) (Mills ratio; the first omitted term is < 4e-21 at u = 36),
 * and each result is scaled by 2^-k once, at the end: one rounding. */
#define FNN_GELU_TAIL (-36.0)

/* e^(-u^2 / 2) / sqrt(2 pi) = m 2^-k, m in [0.28, 0.57]; and S(u). */
static inline double fnn_normal_tail_d(double u, int *k, double *series) {
    const double hi = u * u, lo = fma(u, u, -hi), z = 1 / hi;
    const double kd = nearbyint(0.5 * hi * 1.44269504088896340736);
    /* fdlibm's ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits: kd * LN2_HI is exact, and
     * so is its difference with 0.5 hi (Sterbenz) */
    const double r = (kd * 6.93147180369123816490e-01 - 0.5 * hi) + (kd * 1.90821492927058770002e-10 - 0.5 * lo);
    *k = (int)kd;
    *series = 1 + z * (-1 + z * (3 + z * (-15 + z * (105 + z * (-945 + z * (10395 + z * (-135135 + z * 2027025)))))));
    return exp(r) * 0.398942280401432677939946059934;
}

/* gelu(x) = x Phi(x) = -phi(u) S(u); -0 below -39 (|gelu| < 2^-1074) and NaN at -inf (-inf * 0). */
static inline double fnn_gelu_d(double x) {
    double series, m;
    int k;
    if (!(x < FNN_GELU_TAIL) || x == -INFINITY)
        return x * fnn_normal_cdf_d(x);
    if (x < -39.0)
        return x * 0.0;
    m = fnn_normal_tail_d(-x, &k, &series);
    return ldexp(-m * series, -k);
}

/* g gelu'(x) = g phi(u) (S(u) / u - u), the exponent of g taken apart (frexp) so that a huge g
 * does not overflow before the scaling. Non-finite g as g * (Phi + x phi): NaN where that is 0 (torch's). */
static inline double fnn_gelu_grad_d(double g, double x) {
    double series, m, gm;
    int k, ge;
    if (!(x < FNN_GELU_TAIL) || x == -INFINITY || !isfinite(g)) {
        const double pdf = 0.398942280401432678 * exp(-0.5 * x * x);
        return g * (fnn_normal_cdf_d(x) + x * pdf);
    }
    if (x < -55.0)  /* |g gelu'(x)| < 2^1024 * 2^-2100 */
        return g * -0.0;
    m = fnn_normal_tail_d(-x, &k, &series);
    m *= series / -x + x;
    gm = frexp(g, &ge);
    return ldexp(gm * m, ge - k);
}

/* torch's tanh GELU, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), formula for formula (x^3
 * rounded as x * x * x); float32 on simd_math.h's tanh, float64 on libm's. The derivative's x^2 is
 * capped at FNN_GELU_X2_MAX, where 1 - tanh^2 is 0 already: a finite x whose square overflows gets
 * the limit, not 0 * inf (NaN); at x = +-inf it stays NaN (inf * 0), as torch's. */
#define FNN_GELU_BETA 0.797884560802865355879892119869
#define FNN_GELU_KAPPA 0.044715
#define FNN_GELU_X2_MAX 1e30
#define FNN_DEFINE_GELU_TANH(T, SFX, TANH)                                                         \
    static inline T fnn_gelu_tanh_t_##SFX(T x, T x2) {                                             \
        return TANH((T)FNN_GELU_BETA * (x + (T)FNN_GELU_KAPPA * (x2 * x)));                        \
    }                                                                                              \
    static inline T fnn_gelu_tanh_##SFX(T x) {                                                     \
        return (T)0.5 * x * ((T)1 + fnn_gelu_tanh_t_##SFX(x, x * x));                              \
    }                                                                                              \
    static inline T fnn_gelu_tanh_grad_##SFX(T g, T x) {                                           \
        const T x2 = x * x;                                                                        \
        const T t = fnn_gelu_tanh_t_##SFX(x, x2);                                                  \
        const T capped = x2 > (T)FNN_GELU_X2_MAX ? (T)FNN_GELU_X2_MAX : x2; /* keeps NaN */        \
        const T slope = (T)FNN_GELU_BETA * ((T)1 + (T)(3 * FNN_GELU_KAPPA) * capped);              \
        return g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * slope);                   \
    }

FNN_DEFINE_GELU_TANH(float, f, fnn_tanh_f)
FNN_DEFINE_GELU_TANH(double, d, tanh)

static inline float fnn_silu_grad_f(float g, float x) {
    const float s = fnn_sigmoid_f(x);
    return g * s * (1.0f + x * (1.0f - s));
}
static inline double fnn_silu_grad_d(double g, double x) {
    const double s = fnn_sigmoid_d(x);
    return g * s * (1 + x * (1 - s));
}

#define FNN_DEFINE_TRANSCENDENTAL(ATTR, T, SFX)                                                    \
    FNN_MAP(ATTR, fnn_loop_elu_##SFX, T, fnn_elu_##SFX(v, p))                                      \
    FNN_MAP_GRAD(ATTR, fnn_loop_elu_backward_##SFX, T, fnn_elu_grad_##SFX(g, v, p))                \
    FNN_MAP(ATTR, fnn_loop_sigmoid_##SFX, T, fnn_sigmoid_##SFX(v))                                 \
    FNN_MAP(ATTR, fnn_loop_gelu_##SFX, T, fnn_gelu_##SFX(v))                                       \
    FNN_MAP_GRAD(ATTR, fnn_loop_gelu_backward_##SFX, T, fnn_gelu_grad_##SFX(g, v))                 \
    FNN_MAP(ATTR, fnn_loop_gelu_tanh_##SFX, T, fnn_gelu_tanh_##SFX(v))                             \
    FNN_MAP_GRAD(ATTR, fnn_loop_gelu_tanh_backward_##SFX, T, fnn_gelu_tanh_grad_##SFX(g, v))       \
    FNN_MAP(ATTR, fnn_loop_silu_##SFX, T, v * fnn_sigmoid_##SFX(v))                                \
    FNN_MAP_GRAD(ATTR, fnn_loop_silu_backward_##SFX, T, fnn_silu_grad_##SFX(g, v))

FNN_DEFINE_TRANSCENDENTAL(FNN_CLONES, float, f)
FNN_MAP(FNN_CLONES, fnn_loop_tanh_f, float, fnn_tanh_f(v))
FNN_DEFINE_TRANSCENDENTAL(, double, d) /* scalar libm calls: nothing to clone */
FNN_MAP(, fnn_loop_tanh_d, double, tanh(v))

#define FNN_DEFINE_DISPATCH(T, SFX)                                                                \
    static void fnn_activation_##SFX(int op, const T *a, const T *b, T *out, ptrdiff_t n,          \
                                     T p) {                                                        \
        switch (op) {                                                                              \
        case FNN_RELU: fnn_loop_relu_##SFX(a, b, out, n, p); break;                                \
        case FNN_RELU_BACKWARD: fnn_loop_relu_backward_##SFX(a, b, out, n, p); break;              \
        case FNN_LEAKY_RELU: fnn_loop_leaky_relu_##SFX(a, b, out, n, p); break;                    \
        case FNN_LEAKY_RELU_BACKWARD: fnn_loop_leaky_relu_backward_##SFX(a, b, out, n, p); break;  \
        case FNN_ELU: fnn_loop_elu_##SFX(a, b, out, n, p); break;                                  \
        case FNN_ELU_BACKWARD: fnn_loop_elu_backward_##SFX(a, b, out, n, p); break;                \
        case FNN_SIGMOID: fnn_loop_sigmoid_##SFX(a, b, out, n, p); break;                          \
        case FNN_SIGMOID_BACKWARD: fnn_loop_sigmoid_backward_##SFX(a, b, out, n, p); break;        \
        case FNN_TANH: fnn_loop_tanh_##SFX(a, b, out, n, p); break;                                \
        case FNN_TANH_BACKWARD: fnn_loop_tanh_backward_##SFX(a, b, out, n, p); break;              \
        case FNN_GELU: fnn_loop_gelu_##SFX(a, b, out, n, p); break;                                \
        case FNN_GELU_BACKWARD: fnn_loop_gelu_backward_##SFX(a, b, out, n, p); break;              \
        case FNN_SILU: fnn_loop_silu_##SFX(a, b, out, n, p); break;                                \
        case FNN_SILU_BACKWARD: fnn_loop_silu_backward_##SFX(a, b, out, n, p); break;              \
        case FNN_GELU_TANH: fnn_loop_gelu_tanh_##SFX(a, b, out, n, p); break;                      \
        case FNN_GELU_TANH_BACKWARD: fnn_loop_gelu_tanh_backward_##SFX(a, b, out, n, p); break;    \
        }                                                                                          \
    }

FNN_DEFINE_DISPATCH(float, f)
FNN_DEFINE_DISPATCH(double, d)

/* prelu's da sum: with OpenMP, `omp simd` vectorizes it as partial sums in x's dtype over
 * segments of at most FNN_SUM_SEGMENT elements (float32: 64 terms per lane), each then added
 * in double; without OpenMP it is a serial double sum. */
#define FNN_SUM_SEGMENT 1024
#ifdef _OPENMP
#define FNN_SEGMENT_SUM(T) T
#define FNN_SIMD_SUM _Pragma("omp simd reduction(+:sum)")
#else
#define FNN_SEGMENT_SUM(T) double
#define FNN_SIMD_SUM
#endif

/* PReLU over flat elements [lo, hi) of x seen as (rows, inner) with row r in channel
 * r % channels (scalar a: channels = 1, inner = x.size). */
#define FNN_DEFINE_PRELU(T, SFX)                                                                   \
    static FNN_CLONES void fnn_prelu_##SFX(const T *x, const T *a, T *y, ptrdiff_t channels,       \
                                           ptrdiff_t inner, ptrdiff_t lo, ptrdiff_t hi) {          \
        for (ptrdiff_t i = lo; i < hi;) {                                                          \
            const ptrdiff_t row = i / inner;                                                       \
            const ptrdiff_t end = (row + 1) * inner < hi ? (row + 1) * inner : hi;                 \
            const T slope = a[row % channels];                                                     \
            for (; i < end; i++) {                                                                 \
                const T v = x[i];                                                                  \
                y[i] = v > 0 ? v : slope * v;                                                      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* dx as leaky_relu_backward with slope a[c]; da[c] += sum of x dy where x <= 0 (or NaN).      \
     * da is this block's own buffer of `channels` doubles. */                                     \
    static FNN_CLONES void fnn_prelu_backward_##SFX(const T *dy, const T *x, const T *a,           \
                                                    T *dx, double *da, ptrdiff_t channels,         \
                                                    ptrdiff_t inner, ptrdiff_t lo,                 \
                                                    ptrdiff_t hi) {                                \
        for (ptrdiff_t i = lo; i < hi;) {                                                          \
            const ptrdiff_t row = i / inner;                                                       \
            ptrdiff_t end = (row + 1) * inner < hi ? (row + 1) * inner : hi;                       \
            end = end - i > FNN_SUM_SEGMENT ? i + FNN_SUM_SEGMENT : end;                           \
            const T slope = a[row % channels];                                                     \
            FNN_SEGMENT_SUM(T) sum = 0;                                                            \
            FNN_SIMD_SUM                                                                           \
            for (ptrdiff_t j = i; j < end; j++) {                                                  \
                const T g = dy[j], v = x[j];                                                       \
                dx[j] = v > 0 ? g : slope * g;                                                     \
                sum += v > 0 ? (T)0 : v * g;                                                       \
            }                                                                                      \
            da[row % channels] += sum;                                                             \
            i = end;                                                                               \
        }                                                                                          \
    }

FNN_DEFINE_PRELU(float, f)
FNN_DEFINE_PRELU(double, d)

/* Maxout over `groups` consecutive groups of x seen as (groups, pieces, inner): y (groups,
 * inner) is the max over pieces. NaN wins (propagates); among equal maxima the first piece. */
#define FNN_MAXOUT_BLOCK 64
#define FNN_DEFINE_MAXOUT(T, SFX)                                                                  \
    static FNN_CLONES void fnn_maxout_##SFX(const T *x, T *y, ptrdiff_t groups,                    \
                                            ptrdiff_t pieces, ptrdiff_t inner) {                   \
        for (ptrdiff_t g = 0; g < groups; g++, x += pieces * inner, y += inner) {                  \
            for (ptrdiff_t i = 0; i < inner; i++) y[i] = x[i];                                     \
            for (ptrdiff_t j = 1; j < pieces; j++) {                                               \
                const T *piece = x + j * inner;                                                    \
                for (ptrdiff_t i = 0; i < inner; i++) {                                            \
                    const T v = piece[i], best = y[i];                                             \
                    y[i] = (v > best) | (v != v) ? v : best;                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* dx gets dy at the first maximal piece (the first NaN if any: numpy's argmax), else 0. */    \
    static FNN_CLONES void fnn_maxout_backward_##SFX(const T *dy, const T *x, T *dx,               \
                                                     ptrdiff_t groups, ptrdiff_t pieces,           \
                                                     ptrdiff_t inner) {                            \
        T best[FNN_MAXOUT_BLOCK];                                                                  \
        ptrdiff_t winner[FNN_MAXOUT_BLOCK]; /* pieces may pass 2^31 */                             \
        for (ptrdiff_t g = 0; g < groups; g++, x += pieces * inner, dx += pieces * inner,          \
                       dy += inner) {                                                              \
            for (ptrdiff_t i0 = 0; i0 < inner; i0 += FNN_MAXOUT_BLOCK) {                           \
                const ptrdiff_t m = inner - i0 < FNN_MAXOUT_BLOCK ? inner - i0                     \
                                                                 : FNN_MAXOUT_BLOCK;               \
                for (ptrdiff_t i = 0; i < m; i++) {                                                \
                    best[i] = x[i0 + i];                                                           \
                    winner[i] = 0;                                                                 \
                }                                                                                  \
                for (ptrdiff_t j = 1; j < pieces; j++) {                                           \
                    const T *piece = x + j * inner + i0;                                           \
                    for (ptrdiff_t i = 0; i < m; i++) {                                            \
                        const T v = piece[i];                                                      \
                        const int take = (v > best[i]) | ((v != v) & (best[i] == best[i]));        \
                        best[i] = take ? v : best[i];                                              \
                        winner[i] = take ? j : winner[i];                                          \
                    }                                                                              \
                }                                                                                  \
                for (ptrdiff_t j = 0; j < pieces; j++) {                                           \
                    T *piece = dx + j * inner + i0;                                                \
                    for (ptrdiff_t i = 0; i < m; i++)                                              \
                        piece[i] = winner[i] == j ? dy[i0 + i] : (T)0;                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

FNN_DEFINE_MAXOUT(float, f)
FNN_DEFINE_MAXOUT(double, d)

FNN_END_LOOPS

#endif
