/* Optimizer update loops over one contiguous range, for float and double (the parallel loop is in
 * optim.pyx); restrict pointers so they vectorize (the sqrt too: setup.py builds without errno
 * semantics). */
#ifndef FASTNN_OPTIM_KERNELS_H
#define FASTNN_OPTIM_KERNELS_H

#include <math.h>
#include <stddef.h>

#include "simd.h"  /* FNN_CLONES, FNN_BEGIN_LOOPS / FNN_END_LOOPS */

FNN_BEGIN_LOOPS

#define FNN_DEFINE_SGD(T, SFX)                                                                     \
FNN_CLONES static void fnn_sgd_##SFX(T *restrict p, const T *restrict g, ptrdiff_t n, T lr, T wd)  \
{                                                                                                  \
    ptrdiff_t i;                                                                                   \
    if (wd != 0) { for (i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]); }                      \
    else { for (i = 0; i < n; i++) p[i] -= lr * g[i]; }                                            \
}                                                                                                  \
FNN_CLONES static void fnn_sgd_momentum_##SFX(T *restrict p, const T *restrict g, T *restrict b,   \
                                              ptrdiff_t n, T lr, T mom, int nesterov, T wd)        \
{                                                                                                  \
    ptrdiff_t i;                                                                                   \
    if (nesterov) {                                                                                \
        for (i = 0; i < n; i++) {                                                                  \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                               \
            T v = mom * b[i] + d;                                                                  \
            b[i] = v;                                                                              \
            p[i] -= lr * (d + mom * v);                                                            \
        }                                                                                          \
    } else if (wd != 0) {                                                                          \
        for (i = 0; i < n; i++) {                                                                  \
            T v = mom * b[i] + (g[i] + wd * p[i]);                                                 \
            b[i] = v;                                                                              \
            p[i] -= lr * v;                                                                        \
        }                                                                                          \
    } else {                                                                                       \
        for (i = 0; i < n; i++) {                                                                  \
            T v = mom * b[i] + g[i];                                                               \
            b[i] = v;                                                                              \
            p[i] -= lr * v;                                                                        \
        }                                                                                          \
    }                                                                                              \
}

#define FNN_DEFINE_ADAPTIVE(T, SFX, SQRT)                                                          \
FNN_CLONES static void fnn_adagrad_##SFX(T *restrict p, const T *restrict g, T *restrict s,       \
                                         ptrdiff_t n, T lr, T eps)                                 \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T d = g[i];                                                                                \
        T v = s[i] + d * d;                                                                        \
        s[i] = v;                                                                                  \
        p[i] -= lr * (d / (SQRT(v) + eps));                                                        \
    }                                                                                              \
}                                                                                                  \
FNN_CLONES static void fnn_rmsprop_##SFX(T *restrict p, const T *restrict g, T *restrict s,       \
                                         ptrdiff_t n, T lr, T alpha, T one_minus_alpha, T eps)     \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T d = g[i];                                                                                \
        T v = alpha * s[i] + one_minus_alpha * (d * d);                                            \
        s[i] = v;                                                                                  \
        p[i] -= lr * (d / (SQRT(v) + eps));                                                        \
    }                                                                                              \
}                                                                                                  \
FNN_CLONES static void fnn_adam_##SFX(T *restrict p, const T *restrict g, T *restrict m,          \
                                      T *restrict v, ptrdiff_t n, T step_size, T inv_bc2_sqrt,     \
                                      T w1, T beta2, T w2, T eps, T wd)                            \
{                                                                                                  \
    for (ptrdiff_t i = 0; i < n; i++) {                                                            \
        T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                                   \
        T mi = m[i];                                                                               \
        mi = mi + w1 * (d - mi);                                                                   \
        T vi = beta2 * v[i] + w2 * (d * d);                                                        \
        m[i] = mi;                                                                                 \
        v[i] = vi;                                                                                 \
        p[i] -= step_size * (mi / (SQRT(vi) * inv_bc2_sqrt + eps));                                \
    }                                                                                              \
}

FNN_DEFINE_SGD(float, f)
FNN_DEFINE_SGD(double, d)
FNN_DEFINE_ADAPTIVE(float, f, sqrtf)
FNN_DEFINE_ADAPTIVE(double, d, sqrt)

FNN_END_LOOPS

#endif
