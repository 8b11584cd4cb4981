# Cython fully connected layer: BLAS GEMMs (scipy's cython_blas; row-major arrays passed as their
# column-major transposes) on our OpenMP threads, each on its own block of the output. The
# dispatcher caps BLAS at one thread around these calls (Plan.blas): BLAS's own pool is never
# woken (on 2 cores its spinning workers and the OpenMP pool steal each other's core for a whole
# scheduler slice at every hand-off: a 2-thread ReLU right after a 2-thread GEMM took 7 ms on
# average instead of 0.02 ms, bench/probes/pool_handoff.py).
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, n_threads; b None means no
# bias, dx None no input gradient. Sizes fit BLAS's 32-bit ints (checked by the meta functions).
from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm, sgemm

from _common cimport chunk_start, real


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


cdef inline int _blocks(Py_ssize_t length, int n_threads) noexcept nogil:
    """How many blocks (one per thread) to cut a dimension of `length` into: blocks of >= 16."""
    return <int>max(1, min(<Py_ssize_t>n_threads, length // 16))


cdef inline Py_ssize_t _edge(Py_ssize_t length, int blocks, Py_ssize_t t) noexcept nogil:
    """Start of block t of `blocks`, rounded down to 16 elements (64-byte columns for float32)."""
    if t >= blocks:
        return length
    return chunk_start(length, t, blocks) // 16 * 16


cdef void _fill_rows(const real[::1] b, real[:, ::1] y, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t j0,
                     Py_ssize_t j1) noexcept nogil:
    """y[lo:hi, j0:j1] = b[j0:j1] (0 without a bias)."""
    cdef Py_ssize_t i, j
    for i in range(lo, hi):
        for j in range(j0, j1):
            y[i, j] = 0 if b is None else b[j]


cdef void _linear_loop(const real[:, ::1] x, const real[:, ::1] w, const real[::1] b, real[:, ::1] y,
                       int n_threads) noexcept nogil:
    """Threads take blocks of the larger of y's two sides (each reads its share of the larger operand)."""
    cdef Py_ssize_t n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1], t, lo, hi
    cdef bint by_columns = d_out >= n
    cdef real beta = 0 if b is None else 1
    cdef int blocks = _blocks(d_out if by_columns else n, n_threads)
    if n == 0 or d_out == 0:
        return
    if d_in == 0:  # an empty sum: BLAS may leave y untouched
        _fill_rows(b, y, 0, n, 0, d_out)
        return
    for t in prange(blocks, schedule="static", num_threads=blocks):
        lo = _edge(d_out if by_columns else n, blocks, t)
        hi = _edge(d_out if by_columns else n, blocks, t + 1)
        if by_columns:
            if b is not None:
                _fill_rows(b, y, 0, n, lo, hi)
            # y[:, lo:hi]^T = w[:, lo:hi]^T @ x^T [+ y^T]
            _gemm(c"N", c"N", <int>(hi - lo), <int>n, <int>d_in, &w[0, 0] + lo, <int>d_out, &x[0, 0],
                  <int>d_in, beta, &y[0, 0] + lo, <int>d_out)
        else:
            if b is not None:
                _fill_rows(b, y, lo, hi, 0, d_out)
            # y[lo:hi]^T = w^T @ x[lo:hi]^T [+ y^T]
            _gemm(c"N", c"N", <int>d_out, <int>(hi - lo), <int>d_in, &w[0, 0], <int>d_out, &x[0, 0] + lo * d_in,
                  <int>d_in, beta, &y[0, 0] + lo * d_out, <int>d_out)


def linear(const real[:, ::1] x, const real[:, ::1] w, const real[::1] b, real[:, ::1] y, int n_threads):
    with nogil:
        _linear_loop(x, w, b, y, n_threads)


cdef void _column_sums(const real[:, ::1] dy, real[::1] db) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(dy.shape[1]):
        db[j] = 0
    for i in range(dy.shape[0]):  # row after row: the inner loop runs along contiguous memory
        for j in range(dy.shape[1]):
            db[j] += dy[i, j]


cdef void _backward_of_empty_sums(real[:, ::1] dx, real[:, ::1] dw) noexcept nogil:
    """N = 0 or no weights: BLAS may leave its outputs untouched."""
    cdef Py_ssize_t i, j
    if dx is not None:
        for i in range(dx.shape[0]):
            for j in range(dx.shape[1]):
                dx[i, j] = 0
    for i in range(dw.shape[0]):
        for j in range(dw.shape[1]):
            dw[i, j] = 0


cdef void _linear_backward_loop(const real[:, ::1] dy, const real[:, ::1] x, const real[:, ::1] w,
                                real[:, ::1] dx, real[:, ::1] dw, real[::1] db, int n_threads) noexcept nogil:
    """Threads take blocks of the input features: rows of w and dw, columns of x and dx."""
    cdef Py_ssize_t n = x.shape[0], d_in = w.shape[0], d_out = w.shape[1], t, lo, hi
    cdef int blocks = _blocks(d_in, n_threads)
    _column_sums(dy, db)
    if n == 0 or d_in == 0 or d_out == 0:
        _backward_of_empty_sums(dx, dw)
        return
    for t in prange(blocks, schedule="static", num_threads=blocks):
        lo = _edge(d_in, blocks, t)
        hi = _edge(d_in, blocks, t + 1)
        if dx is not None:  # dx[:, lo:hi]^T = w[lo:hi] @ dy^T
            _gemm(c"T", c"N", <int>(hi - lo), <int>n, <int>d_out, &w[0, 0] + lo * d_out, <int>d_out, &dy[0, 0],
                  <int>d_out, 0, &dx[0, 0] + lo, <int>d_in)
        # dw[lo:hi]^T = dy^T @ x[:, lo:hi]
        _gemm(c"N", c"T", <int>d_out, <int>(hi - lo), <int>n, &dy[0, 0], <int>d_out, &x[0, 0] + lo, <int>d_in, 0,
              &dw[0, 0] + lo * d_out, <int>d_out)


def linear_backward(const real[:, ::1] dy, const real[:, ::1] x, const real[:, ::1] w, real[:, ::1] dx,
                    real[:, ::1] dw, real[::1] db, int n_threads):
    with nogil:
        _linear_backward_loop(dy, x, w, dx, dw, db, n_threads)
