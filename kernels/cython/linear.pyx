# Cython fully connected layer: all the work goes to BLAS (scipy's cython_blas; row-major arrays
# passed as their column-major transposes), with BLAS's own threads at fastnn's count. The bias
# is the GEMM's starting C (beta = 1) and its gradient a GEMV with ones. No OpenMP loop of ours
# runs beside BLAS: idle threads spinning next to BLAS's cost whole scheduler slices.
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

import numpy as np

from fastnn._threads import blas_threads, get_num_threads

from _common cimport real


cdef inline void _gemm(char ta, char tb, int m, int n, int k, const real* a, int lda, const real* b, int ldb,
                       real beta, real* c, int ldc) noexcept nogil:
    """Column-major C (m x n) = op(A) @ op(B) + beta * C; leading dimensions >= 1, as BLAS requires."""
    cdef real alpha = 1
    lda = max(lda, 1)
    ldb = max(ldb, 1)
    ldc = max(ldc, 1)
    if real is float:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef void _linear(const real[:, ::1] x, const real[:, ::1] w, const real[::1] b, bint has_bias,
                  real[:, ::1] y) noexcept nogil:
    cdef int n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1]
    cdef Py_ssize_t i, j
    if has_bias:
        for i in range(n):
            for j in range(d_out):
                y[i, j] = b[j]
    # y^T (d_out x n) = w^T (d_out x d_in) @ x^T (d_in x n) [+ y^T]
    _gemm(c"N", c"N", d_out, n, d_in, &w[0, 0], d_out, &x[0, 0], d_in, 1 if has_bias else 0, &y[0, 0], d_out)


def linear(x, w, b, out=None):
    y = np.empty((x.shape[0], w.shape[1]), x.dtype) if out is None else out
    bias = w[0] if b is None else b
    with blas_threads(get_num_threads()):
        if x.dtype == np.float32:
            _linear[float](x, w, bias, b is not None, y)
        else:
            _linear[double](x, w, bias, b is not None, y)
    return y


cdef void _linear_backward(const real[:, ::1] dy, const real[:, ::1] x, const real[:, ::1] w,
                           const real[::1] ones, real[:, ::1] dx, real[:, ::1] dw, real[::1] db) noexcept nogil:
    cdef int n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1], one = 1, ld = max(d_out, 1)
    cdef real alpha = 1, beta = 0
    cdef char no = b"N"
    # dx^T (d_in x n) = w (d_in x d_out) @ dy^T (d_out x n)
    _gemm(c"T", c"N", d_in, n, d_out, &w[0, 0], d_out, &dy[0, 0], d_out, 0, &dx[0, 0], d_in)
    # dw^T (d_out x d_in) = dy^T (d_out x n) @ x (n x d_in)
    _gemm(c"N", c"T", d_out, d_in, n, &dy[0, 0], d_out, &x[0, 0], d_in, 0, &dw[0, 0], d_out)
    # db (d_out) = dy^T (d_out x n) @ ones (n)
    if real is float:
        sgemv(&no, &d_out, &n, &alpha, <float*>&dy[0, 0], &ld, <float*>&ones[0], &one, &beta, &db[0], &one)
    else:
        dgemv(&no, &d_out, &n, &alpha, <double*>&dy[0, 0], &ld, <double*>&ones[0], &one, &beta, &db[0], &one)


def linear_backward(dy, x, w):
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.zeros(w.shape[1], x.dtype)  # GEMV returns early, untouched, for an empty batch
    ones = np.ones(x.shape[0] + 1, x.dtype)  # one spare: &ones[0] exists for an empty batch
    with blas_threads(get_num_threads()):
        if x.dtype == np.float32:
            _linear_backward[float](dy, x, w, ones, dx, dw, db)
        else:
            _linear_backward[double](dy, x, w, ones, dx, dw, db)
    return dx, dw, db
