# Cython/OpenMP optimizer steps: one fused parallel pass over param, grad and state, in place.
#
# Signatures follow the contract (fastnn/_ops.Plan): param, grad, state buffers (updated in place),
# hyperparameters, n_threads. `<op>_many` steps a list of tensors in one parallel pass over their
# concatenated elements (a model's many small tensors: one call and one OpenMP region instead of one
# each, which cost microseconds per tensor). The loops live in optim_kernels.h (vectorized, AVX-512/AVX2/baseline
# clones picked at load time); here each thread takes one contiguous range. Hyperparameters are
# cast to the arrays' type so float32 math stays float32.
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

cimport numpy as cnp
import numpy as np

from _common cimport chunk_start, real

cnp.import_array()

cdef extern from "optim_kernels.h" nogil:
    void fnn_sgd_f(float *p, const float *g, Py_ssize_t n, float lr, float wd)
    void fnn_sgd_d(double *p, const double *g, Py_ssize_t n, double lr, double wd)
    void fnn_sgd_momentum_f(float *p, const float *g, float *b, Py_ssize_t n, float lr, float mom, int nesterov,
                            float wd)
    void fnn_sgd_momentum_d(double *p, const double *g, double *b, Py_ssize_t n, double lr, double mom,
                            int nesterov, double wd)
    void fnn_adagrad_f(float *p, const float *g, float *s, Py_ssize_t n, float lr, float eps)
    void fnn_adagrad_d(double *p, const double *g, double *s, Py_ssize_t n, double lr, double eps)
    void fnn_rmsprop_f(float *p, const float *g, float *s, Py_ssize_t n, float lr, float alpha,
                       float one_minus_alpha, float eps)
    void fnn_rmsprop_d(double *p, const double *g, double *s, Py_ssize_t n, double lr, double alpha,
                       double one_minus_alpha, double eps)
    void fnn_adam_f(float *p, const float *g, float *m, float *v, Py_ssize_t n, float step_size,
                    float inv_bc2_sqrt, float w1, float beta2, float w2, float eps, float wd)
    void fnn_adam_d(double *p, const double *g, double *m, double *v, Py_ssize_t n, double step_size,
                    double inv_bc2_sqrt, double w1, double beta2, double w2, double eps, double wd)


cdef enum:
    SGD
    SGD_MOMENTUM
    ADAGRAD
    RMSPROP
    ADAM
    ALIGN = 64  # range edges on multiples of 64 elements: whole cache lines, full vectors


cdef inline Py_ssize_t _edge(Py_ssize_t n, Py_ssize_t t, int n_threads) noexcept nogil:
    """Start of thread t's range (n at t = n_threads)."""
    return n if t >= n_threads else chunk_start(n, t, n_threads) // ALIGN * ALIGN


cdef void _range(int op, real* p, const real* g, real* a, real* b, Py_ssize_t n, const double* h,
                 int nesterov) noexcept nogil:
    """One thread's update of n elements; a and b the state buffers, h the hyperparameters."""
    if real is float:
        if op == SGD:
            fnn_sgd_f(p, g, n, <float>h[0], <float>h[1])
        elif op == SGD_MOMENTUM:
            fnn_sgd_momentum_f(p, g, a, n, <float>h[0], <float>h[1], nesterov, <float>h[2])
        elif op == ADAGRAD:
            fnn_adagrad_f(p, g, a, n, <float>h[0], <float>h[1])
        elif op == RMSPROP:
            fnn_rmsprop_f(p, g, a, n, <float>h[0], <float>h[1], <float>h[2], <float>h[3])
        else:
            fnn_adam_f(p, g, a, b, n, <float>h[0], <float>h[1], <float>h[2], <float>h[3], <float>h[4],
                       <float>h[5], <float>h[6])
    else:
        if op == SGD:
            fnn_sgd_d(p, g, n, h[0], h[1])
        elif op == SGD_MOMENTUM:
            fnn_sgd_momentum_d(p, g, a, n, h[0], h[1], nesterov, h[2])
        elif op == ADAGRAD:
            fnn_adagrad_d(p, g, a, n, h[0], h[1])
        elif op == RMSPROP:
            fnn_rmsprop_d(p, g, a, n, h[0], h[1], h[2], h[3])
        else:
            fnn_adam_d(p, g, a, b, n, h[0], h[1], h[2], h[3], h[4], h[5], h[6])


cdef void _step_loop(int op, real[::1] p, const real[::1] g, real[::1] a, real[::1] b, const double* h,
                     int nesterov, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = p.shape[0], t, lo, hi
    if n == 0:
        return
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = _edge(n, t, n_threads)
        hi = _edge(n, t + 1, n_threads)
        if hi > lo:
            _range(op, &p[lo], &g[lo], &a[lo] if a is not None else NULL, &b[lo] if b is not None else NULL,
                   hi - lo, h, nesterov)


def _step(int op, real[::1] p, const real[::1] g, real[::1] a, real[::1] b, hyper, bint nesterov,
          int n_threads):
    """The update `op` of flat param p from flat grad g, state buffers a and b (None where the op
    has fewer), hyperparameters `hyper` (at most 7 floats, in the C loop's order)."""
    cdef double h[7]
    cdef Py_ssize_t i
    for i in range(len(hyper)):
        h[i] = hyper[i]
    with nogil:
        _step_loop(op, p, g, a, b, h, nesterov, n_threads)


def _flat(a):
    return None if a is None else a.reshape(-1)


def sgd_step(param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay, n_threads):
    if momentum:
        _step(SGD_MOMENTUM, _flat(param), _flat(grad), _flat(momentum_buffer), None, (lr, momentum, weight_decay),
              nesterov, n_threads)
    else:
        _step(SGD, _flat(param), _flat(grad), None, None, (lr, weight_decay), False, n_threads)


def adagrad_step(param, grad, sum_sq, lr, eps, n_threads):
    _step(ADAGRAD, _flat(param), _flat(grad), _flat(sum_sq), None, (lr, eps), False, n_threads)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, n_threads):
    _step(RMSPROP, _flat(param), _flat(grad), _flat(square_avg), None, (lr, alpha, 1 - alpha, eps), False,
          n_threads)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, n_threads):
    step_size = lr / (1 - beta1 ** step)  # may exceed float32: the C cast makes it inf, as the reference
    inv_bc2_sqrt = 1 / (1 - beta2 ** step) ** 0.5
    _step(ADAM, _flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq),
          (step_size, inv_bc2_sqrt, 1 - beta1, beta2, 1 - beta2, eps, weight_decay), False, n_threads)


# --- many tensors in one call -------------------------------------------------------------------

cdef void _many_loop(int op, real** p, real** g, real** a, real** b, const Py_ssize_t* start, Py_ssize_t count,
                     const double* h, Py_ssize_t width, int nesterov, int n_threads) noexcept nogil:
    """Thread t updates elements [edge t, edge t + 1) of the tensors laid end to end (start: each
    tensor's first element in that order, start[count] the total), h a row of width per tensor."""
    cdef Py_ssize_t total = start[count], t, lo, hi, i, s, e
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = _edge(total, t, n_threads)
        hi = _edge(total, t + 1, n_threads)
        i = 0
        while i < count and start[i + 1] <= lo:
            i = i + 1
        while i < count and start[i] < hi:
            s = max(lo, start[i]) - start[i]
            e = min(hi, start[i + 1]) - start[i]
            if e > s:
                _range(op, p[i] + s, g[i] + s, a[i] + s if a != NULL else NULL, b[i] + s if b != NULL else NULL,
                       e - s, h + i * width, nesterov)
            i = i + 1


cdef real** _pointers(list arrays, real* dtype) except? NULL:
    """The data pointers of a list of C-contiguous arrays of real (NULL for None: no such buffer)."""
    cdef Py_ssize_t i, n
    cdef real** out
    if arrays is None:
        return NULL
    n = len(arrays)
    out = <real**>malloc((n + 1) * sizeof(real*))
    if out == NULL:
        raise MemoryError()
    for i in range(n):
        out[i] = <real*>cnp.PyArray_DATA(<cnp.ndarray>arrays[i])
    return out


def _step_many(int op, list p, list g, list a, list b, double[:, ::1] hyper, bint nesterov, int n_threads,
               real[::1] dtype):
    """The update `op` of every tensor p[i] (C-contiguous, dtype's type, checked by the caller) from
    g[i] and state buffers a[i], b[i] (a or b None where the op has fewer), hyper[i] in the C loop's
    order."""
    cdef Py_ssize_t i, count = len(p)
    cdef Py_ssize_t* start = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
    cdef real** pp = NULL
    cdef real** gp = NULL
    cdef real** ap = NULL
    cdef real** bp = NULL
    if start == NULL:
        raise MemoryError()
    try:
        start[0] = 0
        for i in range(count):
            start[i + 1] = start[i] + cnp.PyArray_SIZE(<cnp.ndarray>p[i])
        pp = _pointers(p, &dtype[0])
        gp = _pointers(g, &dtype[0])
        ap = _pointers(a, &dtype[0])
        bp = _pointers(b, &dtype[0])
        if count and start[count]:
            with nogil:
                _many_loop(op, pp, gp, ap, bp, start, count, &hyper[0, 0], hyper.shape[1], nesterov, n_threads)
    finally:
        free(start)
        free(pp)
        free(gp)
        free(ap)
        free(bp)


def _type_of(params):
    return np.empty(1, params[0].dtype)


def sgd_step_many(params, grads, momentum_buffers, hyper, n_threads):
    """hyper rows (lr, momentum, nesterov, weight_decay) per tensor, one nesterov for all."""
    nesterov = bool(hyper[0, 2]) if len(params) else False
    if len(params) and hyper[0, 1]:
        _step_many(SGD_MOMENTUM, params, grads, momentum_buffers, None, np.ascontiguousarray(hyper[:, [0, 1, 3]]),
                   nesterov, n_threads, _type_of(params))
    elif len(params):
        _step_many(SGD, params, grads, None, None, np.ascontiguousarray(hyper[:, [0, 3]]), False, n_threads,
                   _type_of(params))


def adagrad_step_many(params, grads, sum_sqs, hyper, n_threads):
    """hyper rows (lr, eps) per tensor."""
    if len(params):
        _step_many(ADAGRAD, params, grads, sum_sqs, None, np.ascontiguousarray(hyper), False, n_threads,
                   _type_of(params))


def rmsprop_step_many(params, grads, square_avgs, hyper, n_threads):
    """hyper rows (lr, alpha, eps) per tensor."""
    if len(params):
        rows = np.stack([hyper[:, 0], hyper[:, 1], 1 - hyper[:, 1], hyper[:, 2]], axis=1)
        _step_many(RMSPROP, params, grads, square_avgs, None, rows, False, n_threads, _type_of(params))


def adam_step_many(params, grads, exp_avgs, exp_avg_sqs, hyper, n_threads):
    """hyper rows (step, lr, beta1, beta2, eps, weight_decay) per tensor, as adam_step's."""
    if len(params):
        step, lr, beta1, beta2, eps, wd = hyper.T
        with np.errstate(over="ignore", divide="ignore"):  # a huge step size is inf, as adam_step's
            rows = np.stack([lr / (1 - beta1 ** step), 1 / np.sqrt(1 - beta2 ** step), 1 - beta1, beta2, 1 - beta2,
                             eps, wd], axis=1)
        _step_many(ADAM, params, grads, exp_avgs, exp_avg_sqs, rows, False, n_threads, _type_of(params))
