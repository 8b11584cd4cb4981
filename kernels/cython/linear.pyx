# Cython fully connected layer: BLAS GEMMs (scipy's cython_blas; row-major arrays passed as their
# column-major transposes) run on our OpenMP threads, each on its own block of the output with
# BLAS capped at one thread. BLAS's own pool is never woken: on 2 cores its spinning workers and
# the OpenMP pool steal each other's core for a whole scheduler slice at every hand-off (a 2-thread
# ReLU right after a 2-thread GEMM took 7 ms on average instead of 0.02 ms: bench/probes/pool_handoff.py).
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from scipy.linalg.cython_blas cimport dgemm, sgemm

import numpy as np

from fastnn._threads import blas_threads, openmp_threads as get_num_threads  # one thread in a forked child

from _common cimport real

cdef enum:
    PARALLEL_MIN_FMAS = 1 << 20  # below this many multiply-adds a GEMM runs on one thread


cdef inline void _gemm(char ta, char tb, int m, int n, int k, const real* a, int lda, const real* b, int ldb,
                       real beta, real* c, int ldc) noexcept nogil:
    """Column-major C (m x n) = op(A) @ op(B) + beta * C; leading dimensions >= 1, as BLAS requires."""
    cdef real alpha = 1
    if m == 0 or n == 0:
        return
    lda = max(lda, 1)
    ldb = max(ldb, 1)
    ldc = max(ldc, 1)
    if real is float:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef inline int _blocks(Py_ssize_t length, Py_ssize_t fmas, int n_threads) noexcept nogil:
    """How many blocks (one per thread) to cut a dimension of `length` into: blocks of >= 16."""
    if fmas < PARALLEL_MIN_FMAS:
        return 1
    return <int>max(1, min(<Py_ssize_t>n_threads, length // 16))


cdef inline Py_ssize_t _edge(Py_ssize_t length, int blocks, Py_ssize_t t) noexcept nogil:
    """Start of block t of `blocks`, rounded to 16 elements (64-byte columns for float32)."""
    if t >= blocks:
        return length
    return (length * t // blocks) // 16 * 16


cdef void _linear(const real[:, ::1] x, const real[:, ::1] w, const real[::1] b, bint has_bias,
                  real[:, ::1] y, int n_threads) noexcept:
    cdef Py_ssize_t n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1]
    cdef Py_ssize_t t, i, j, lo, hi
    cdef int blocks
    cdef bint by_columns = d_out >= n  # each thread reads its share of the larger operand
    with nogil:
        blocks = _blocks(d_out if by_columns else n, n * d_in * d_out, n_threads)
        for t in prange(blocks, schedule="static", num_threads=blocks):
            lo = _edge(d_out if by_columns else n, blocks, t)
            hi = _edge(d_out if by_columns else n, blocks, t + 1)
            if by_columns:
                if has_bias:
                    for i in range(n):
                        for j in range(lo, hi):
                            y[i, j] = b[j]
                # y[:, lo:hi]^T = w[:, lo:hi]^T @ x^T [+ y^T]
                _gemm(c"N", c"N", <int>(hi - lo), n, d_in, &w[0, 0] + lo, d_out, &x[0, 0], d_in,
                      1 if has_bias else 0, &y[0, 0] + lo, d_out)
            else:
                if has_bias:
                    for i in range(lo, hi):
                        for j in range(d_out):
                            y[i, j] = b[j]
                # y[lo:hi]^T = w^T @ x[lo:hi]^T [+ y^T]
                _gemm(c"N", c"N", d_out, <int>(hi - lo), d_in, &w[0, 0], d_out, &x[0, 0] + lo * d_in, d_in,
                      1 if has_bias else 0, &y[0, 0] + lo * d_out, d_out)


def _check_blas_sizes(op, x, w):
    """BLAS takes 32-bit sizes (only arrays of many GiB get past this)."""
    if max(x.shape + w.shape) > INT_MAX:
        raise ValueError(f"{op}: x {x.shape} and w {w.shape} exceed BLAS's 32-bit sizes")


def linear(x, w, b, out=None):
    y = np.empty((x.shape[0], w.shape[1]), x.dtype) if out is None else out
    if y.size == 0:
        return y
    if x.shape[1] == 0:  # an empty sum: BLAS may leave C untouched
        y[...] = 0 if b is None else b
        return y
    _check_blas_sizes("linear", x, w)
    bias = w[0] if b is None else b  # a stand-in, unread without a bias
    with blas_threads(1):
        if x.dtype == np.float32:
            _linear[float](x, w, bias, b is not None, y, get_num_threads())
        else:
            _linear[double](x, w, bias, b is not None, y, get_num_threads())
    return y


cdef void _linear_backward(const real[:, ::1] dy, const real[:, ::1] x, const real[:, ::1] w,
                           real[:, ::1] dx, real[:, ::1] dw, real[::1] db, bint input_grad,
                           int n_threads) noexcept:
    """Threads take blocks of the input features: rows of w and dw, columns of x and dx."""
    cdef Py_ssize_t n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1]
    cdef Py_ssize_t t, i, j, lo, hi
    cdef int blocks = _blocks(d_in, n * d_in * d_out * (2 if input_grad else 1), n_threads)
    with nogil:
        for t in prange(blocks, schedule="static", num_threads=blocks):
            lo = _edge(d_in, blocks, t)
            hi = _edge(d_in, blocks, t + 1)
            if input_grad:  # dx[:, lo:hi]^T = w[lo:hi] @ dy^T
                _gemm(c"T", c"N", <int>(hi - lo), n, d_out, &w[0, 0] + lo * d_out, d_out, &dy[0, 0], d_out, 0,
                      &dx[0, 0] + lo, d_in)
            # dw[lo:hi]^T = dy^T @ x[:, lo:hi]
            _gemm(c"N", c"T", d_out, <int>(hi - lo), n, &dy[0, 0], d_out, &x[0, 0] + lo, d_in, 0,
                  &dw[0, 0] + lo * d_out, d_out)
        for j in range(d_out):
            db[j] = 0
        for i in range(n):  # row after row: the inner loop runs along contiguous memory
            for j in range(d_out):
                db[j] += dy[i, j]


def linear_backward(dy, x, w, input_grad=True):
    dx = np.empty_like(x) if input_grad else None
    dw = np.empty_like(w)
    db = np.empty(w.shape[1], x.dtype)
    if x.shape[0] == 0 or w.size == 0:  # empty sums: BLAS may leave C untouched
        if input_grad:
            dx[...] = 0
        dw[...] = 0
        db[...] = dy.sum(axis=0)
        return dx, dw, db
    _check_blas_sizes("linear_backward", x, w)
    dx_view = dx if input_grad else np.empty((1, 1), x.dtype)
    with blas_threads(1):
        if x.dtype == np.float32:
            _linear_backward[float](dy, x, w, dx_view, dw, db, input_grad, get_num_threads())
        else:
            _linear_backward[double](dy, x, w, dx_view, dw, db, input_grad, get_num_threads())
    return dx, dw, db
