# distutils: extra_compile_args = -fno-math-errno
# Cython/OpenMP optimizer steps: one fused parallel pass over param, grad and state, in place.
# The loops live in optim_kernels.h (vectorized sqrt); here threads take contiguous runs of
# chunks. Hyperparameters are cast to the arrays' type so float32 math stays float32.
from cython.parallel cimport prange

import numpy as np

from fastnn._threads import openmp_threads as get_num_threads  # one thread in a forked child

from _common cimport real

cdef extern from "optim_kernels.h" nogil:
    void fnn_sgd_f32(float *p, const float *g, Py_ssize_t n, float lr, float wd)
    void fnn_sgd_f64(double *p, const double *g, Py_ssize_t n, double lr, double wd)
    void fnn_sgd_momentum_f32(float *p, const float *g, float *b, Py_ssize_t n, float lr, float mom,
                              int nesterov, float wd)
    void fnn_sgd_momentum_f64(double *p, const double *g, double *b, Py_ssize_t n, double lr, double mom,
                              int nesterov, double wd)
    void fnn_adagrad_f32(float *p, const float *g, float *s, Py_ssize_t n, float lr, float eps)
    void fnn_adagrad_f64(double *p, const double *g, double *s, Py_ssize_t n, double lr, double eps)
    void fnn_rmsprop_f32(float *p, const float *g, float *s, Py_ssize_t n, float lr, float alpha,
                         float one_minus_alpha, float eps)
    void fnn_rmsprop_f64(double *p, const double *g, double *s, Py_ssize_t n, double lr, double alpha,
                         double one_minus_alpha, double eps)
    void fnn_adam_f32(float *p, const float *g, float *m, float *v, Py_ssize_t n, float step_size,
                      float inv_bc2_sqrt, float w1, float beta2, float w2, float eps, float wd)
    void fnn_adam_f64(double *p, const double *g, double *m, double *v, Py_ssize_t n, double step_size,
                      double inv_bc2_sqrt, double w1, double beta2, double w2, double eps, double wd)

cdef enum:
    CHUNK = 8192  # elements per work item: whole cache lines, many items per thread
    PARALLEL_MIN = 1 << 16  # below this one thread finishes sooner than a team wakes up


def _threads_for(a):
    return get_num_threads() if a.size >= PARALLEL_MIN else 1


cdef inline Py_ssize_t _chunks(Py_ssize_t n) noexcept nogil:
    return (n + CHUNK - 1) // CHUNK


cdef inline Py_ssize_t _length(Py_ssize_t c, Py_ssize_t n) noexcept nogil:
    return min(CHUNK, n - c * CHUNK)


cdef void _sgd(real[::1] p, const real[::1] g, real lr, real wd, int n_threads) noexcept:
    cdef Py_ssize_t c, i, n = p.shape[0]
    with nogil:
        for c in prange(_chunks(n), schedule="static", num_threads=n_threads):
            i = c * CHUNK
            if real is float:
                fnn_sgd_f32(&p[i], &g[i], _length(c, n), lr, wd)
            else:
                fnn_sgd_f64(&p[i], &g[i], _length(c, n), lr, wd)


cdef void _sgd_momentum(real[::1] p, const real[::1] g, real[::1] b, real lr, real mom, int nesterov,
                        real wd, int n_threads) noexcept:
    cdef Py_ssize_t c, i, n = p.shape[0]
    with nogil:
        for c in prange(_chunks(n), schedule="static", num_threads=n_threads):
            i = c * CHUNK
            if real is float:
                fnn_sgd_momentum_f32(&p[i], &g[i], &b[i], _length(c, n), lr, mom, nesterov, wd)
            else:
                fnn_sgd_momentum_f64(&p[i], &g[i], &b[i], _length(c, n), lr, mom, nesterov, wd)


def sgd_step(param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay):
    n = _threads_for(param)
    p, g = param.reshape(-1), grad.reshape(-1)
    if momentum:
        b = momentum_buffer.reshape(-1)
        if param.dtype == np.float32:
            _sgd_momentum[float](p, g, b, lr, momentum, nesterov, weight_decay, n)
        else:
            _sgd_momentum[double](p, g, b, lr, momentum, nesterov, weight_decay, n)
    elif param.dtype == np.float32:
        _sgd[float](p, g, lr, weight_decay, n)
    else:
        _sgd[double](p, g, lr, weight_decay, n)
    return param


cdef void _adagrad(real[::1] p, const real[::1] g, real[::1] s, real lr, real eps, int n_threads) noexcept:
    cdef Py_ssize_t c, i, n = p.shape[0]
    with nogil:
        for c in prange(_chunks(n), schedule="static", num_threads=n_threads):
            i = c * CHUNK
            if real is float:
                fnn_adagrad_f32(&p[i], &g[i], &s[i], _length(c, n), lr, eps)
            else:
                fnn_adagrad_f64(&p[i], &g[i], &s[i], _length(c, n), lr, eps)


def adagrad_step(param, grad, sum_sq, lr, eps):
    n = _threads_for(param)
    p, g, s = param.reshape(-1), grad.reshape(-1), sum_sq.reshape(-1)
    if param.dtype == np.float32:
        _adagrad[float](p, g, s, lr, eps, n)
    else:
        _adagrad[double](p, g, s, lr, eps, n)
    return param


cdef void _rmsprop(real[::1] p, const real[::1] g, real[::1] s, real lr, real alpha, real one_minus_alpha,
                   real eps, int n_threads) noexcept:
    cdef Py_ssize_t c, i, n = p.shape[0]
    with nogil:
        for c in prange(_chunks(n), schedule="static", num_threads=n_threads):
            i = c * CHUNK
            if real is float:
                fnn_rmsprop_f32(&p[i], &g[i], &s[i], _length(c, n), lr, alpha, one_minus_alpha, eps)
            else:
                fnn_rmsprop_f64(&p[i], &g[i], &s[i], _length(c, n), lr, alpha, one_minus_alpha, eps)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps):
    n = _threads_for(param)
    p, g, s = param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1)
    if param.dtype == np.float32:
        _rmsprop[float](p, g, s, lr, alpha, 1 - alpha, eps, n)
    else:
        _rmsprop[double](p, g, s, lr, alpha, 1 - alpha, eps, n)
    return param


cdef void _adam(real[::1] p, const real[::1] g, real[::1] m, real[::1] v, real step_size, real inv_bc2_sqrt,
                real w1, real beta2, real w2, real eps, real wd, int n_threads) noexcept:
    cdef Py_ssize_t c, i, n = p.shape[0]
    with nogil:
        for c in prange(_chunks(n), schedule="static", num_threads=n_threads):
            i = c * CHUNK
            if real is float:
                fnn_adam_f32(&p[i], &g[i], &m[i], &v[i], _length(c, n), step_size, inv_bc2_sqrt, w1, beta2, w2, eps, wd)
            else:
                fnn_adam_f64(&p[i], &g[i], &m[i], &v[i], _length(c, n), step_size, inv_bc2_sqrt, w1, beta2, w2, eps, wd)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    n = _threads_for(param)
    step_size = lr / (1 - beta1 ** step)
    inv_bc2_sqrt = 1 / (1 - beta2 ** step) ** 0.5
    p, g, m, v = param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1)
    if param.dtype == np.float32:
        _adam[float](p, g, m, v, step_size, inv_bc2_sqrt, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, n)
    else:
        _adam[double](p, g, m, v, step_size, inv_bc2_sqrt, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, n)
    return param
