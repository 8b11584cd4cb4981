# Cython/OpenMP activation kernels over flattened C-contiguous arrays.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, parameters, n_threads (the
# dispatcher's count from the grain table: exactly that many threads run). The per-chunk loops are
# C (activation_loops.h: vectorized, AVX-512/AVX2/baseline clones picked at load time); this module
# splits the arrays into chunks and runs them in parallel, the GIL released throughout.
from cython.parallel cimport prange

cimport numpy as cnp
import numpy as np

from _common cimport chunk_start, real

cnp.import_array()


cdef extern from "activation_loops.h" nogil:
    enum:
        FNN_RELU
        FNN_RELU_BACKWARD
        FNN_LEAKY_RELU
        FNN_LEAKY_RELU_BACKWARD
        FNN_ELU
        FNN_ELU_BACKWARD
        FNN_SIGMOID
        FNN_SIGMOID_BACKWARD
        FNN_TANH
        FNN_TANH_BACKWARD
        FNN_GELU
        FNN_GELU_BACKWARD
        FNN_SILU
        FNN_SILU_BACKWARD
        FNN_GELU_TANH
        FNN_GELU_TANH_BACKWARD
    void fnn_activation_f(int op, const float* a, const float* b, float* out, Py_ssize_t n, float p)
    void fnn_activation_d(int op, const double* a, const double* b, double* out, Py_ssize_t n, double p)
    void fnn_prelu_f(const float* x, const float* a, float* y, Py_ssize_t channels,
                     Py_ssize_t inner, Py_ssize_t lo, Py_ssize_t hi)
    void fnn_prelu_d(const double* x, const double* a, double* y, Py_ssize_t channels,
                     Py_ssize_t inner, Py_ssize_t lo, Py_ssize_t hi)
    void fnn_prelu_backward_f(const float* dy, const float* x, const float* a, float* dx, double* da,
                              Py_ssize_t channels, Py_ssize_t inner, Py_ssize_t lo, Py_ssize_t hi)
    void fnn_prelu_backward_d(const double* dy, const double* x, const double* a, double* dx,
                              double* da, Py_ssize_t channels, Py_ssize_t inner, Py_ssize_t lo,
                              Py_ssize_t hi)
    void fnn_maxout_f(const float* x, float* y, Py_ssize_t groups, Py_ssize_t pieces, Py_ssize_t inner)
    void fnn_maxout_d(const double* x, double* y, Py_ssize_t groups, Py_ssize_t pieces,
                      Py_ssize_t inner)
    void fnn_maxout_backward_f(const float* dy, const float* x, float* dx, Py_ssize_t groups,
                               Py_ssize_t pieces, Py_ssize_t inner)
    void fnn_maxout_backward_d(const double* dy, const double* x, double* dx, Py_ssize_t groups,
                               Py_ssize_t pieces, Py_ssize_t inner)


cdef enum:
    # Elements per parallel work item at most: a float32 backward's three 64 KiB streams stay
    # in L2. Work items are multiples of 64 elements (whole cache lines, full vectors).
    CHUNK = 16384
    ALIGN = 64


cdef inline Py_ssize_t _chunk_size(Py_ssize_t n, int n_threads) noexcept nogil:
    """At most CHUNK, for a multiple of n_threads chunks: equal shares under a static schedule."""
    cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
    n_chunks = (n_chunks + n_threads - 1) // n_threads * n_threads
    return ((n + n_chunks - 1) // n_chunks + ALIGN - 1) // ALIGN * ALIGN


cdef inline void _chunk(int op, const real* a, const real* b, real* out, Py_ssize_t n,
                        double param) noexcept nogil:
    if real is float:
        fnn_activation_f(op, a, b, out, n, <float>param)
    else:
        fnn_activation_d(op, a, b, out, n, param)


cdef void _elementwise_loop(int op, const real* a, const real* b, real* out, Py_ssize_t n, double param,
                            int n_threads) noexcept nogil:
    cdef Py_ssize_t chunk_size, n_chunks, chunk, start
    if n == 0:
        return
    if n_threads == 1:
        _chunk(op, a, b, out, n, param)
        return
    chunk_size = _chunk_size(n, n_threads)
    n_chunks = (n + chunk_size - 1) // chunk_size
    for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
        start = chunk * chunk_size
        _chunk(op, a + start, b + start, out + start, min(chunk_size, n - start), param)


def _elementwise(int op, a, b, out, double param, int n_threads):
    """out = op(a, b, param) elementwise; b is a again for forwards, x or y for backwards. The arrays
    are the dispatcher's (C-contiguous, one float dtype: fastnn/_ops.py's contract), taken by their
    data pointers: typed memoryviews of three flattened views cost ~0.7 us a call, a tenth of a
    37000-element sigmoid."""
    cdef cnp.ndarray result = <cnp.ndarray>out
    cdef Py_ssize_t n = cnp.PyArray_SIZE(result)
    cdef void* pa = cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef void* pb = cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef void* po = cnp.PyArray_DATA(result)
    if cnp.PyArray_ITEMSIZE(result) == 4:
        with nogil:
            _elementwise_loop(op, <const float*>pa, <const float*>pb, <float*>po, n, param, n_threads)
    else:
        with nogil:
            _elementwise_loop(op, <const double*>pa, <const double*>pb, <double*>po, n, param, n_threads)


def _flat(a):
    return a.reshape(-1)


def relu(x, y, n_threads):
    _elementwise(FNN_RELU, x, x, y, 0, n_threads)


def relu_backward(dy, x, dx, n_threads):
    _elementwise(FNN_RELU_BACKWARD, dy, x, dx, 0, n_threads)


def leaky_relu(x, y, negative_slope, n_threads):
    _elementwise(FNN_LEAKY_RELU, x, x, y, negative_slope, n_threads)


def leaky_relu_backward(dy, x, dx, negative_slope, n_threads):
    _elementwise(FNN_LEAKY_RELU_BACKWARD, dy, x, dx, negative_slope, n_threads)


def elu(x, y, alpha, n_threads):
    _elementwise(FNN_ELU, x, x, y, alpha, n_threads)


def elu_backward(dy, x, dx, alpha, n_threads):
    _elementwise(FNN_ELU_BACKWARD, dy, x, dx, alpha, n_threads)


def sigmoid(x, y, n_threads):
    _elementwise(FNN_SIGMOID, x, x, y, 0, n_threads)


def sigmoid_backward(dy, y, dx, n_threads):
    _elementwise(FNN_SIGMOID_BACKWARD, dy, y, dx, 0, n_threads)


def tanh(x, y, n_threads):
    _elementwise(FNN_TANH, x, x, y, 0, n_threads)


def tanh_backward(dy, y, dx, n_threads):
    _elementwise(FNN_TANH_BACKWARD, dy, y, dx, 0, n_threads)


def gelu(x, y, tanh_form, n_threads):
    _elementwise(FNN_GELU_TANH if tanh_form else FNN_GELU, x, x, y, 0, n_threads)


def gelu_backward(dy, x, dx, tanh_form, n_threads):
    _elementwise(FNN_GELU_TANH_BACKWARD if tanh_form else FNN_GELU_BACKWARD, dy, x, dx, 0,
                 n_threads)


def silu(x, y, n_threads):
    _elementwise(FNN_SILU, x, x, y, 0, n_threads)


def silu_backward(dy, x, dx, n_threads):
    _elementwise(FNN_SILU_BACKWARD, dy, x, dx, 0, n_threads)


# --- PReLU: x seen as (outer, channels, inner); a scalar a is one channel ---------------------------

cdef void _prelu_loop(const real[::1] x, const real[::1] a, real[::1] y, Py_ssize_t channels,
                      Py_ssize_t inner, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = x.shape[0], block
    for block in prange(n_threads, schedule="static", num_threads=n_threads):
        if real is float:
            fnn_prelu_f(&x[0], &a[0], &y[0], channels, inner, chunk_start(n, block, n_threads),
                        chunk_start(n, block + 1, n_threads))
        else:
            fnn_prelu_d(&x[0], &a[0], &y[0], channels, inner, chunk_start(n, block, n_threads),
                        chunk_start(n, block + 1, n_threads))


cdef void _prelu_backward_loop(const real[::1] dy, const real[::1] x, const real[::1] a,
                               real[::1] dx, double[:, ::1] partial_da,
                               Py_ssize_t inner) noexcept nogil:
    """Block b adds its share of da into partial_da[b] (no shared writes)."""
    cdef Py_ssize_t n = x.shape[0], n_blocks = partial_da.shape[0], block, lo, hi
    cdef Py_ssize_t channels = partial_da.shape[1]
    for block in prange(n_blocks, schedule="static", num_threads=n_blocks):
        lo = chunk_start(n, block, n_blocks)
        hi = chunk_start(n, block + 1, n_blocks)
        if real is float:
            fnn_prelu_backward_f(&dy[0], &x[0], &a[0], &dx[0], &partial_da[block, 0], channels,
                                 inner, lo, hi)
        else:
            fnn_prelu_backward_d(&dy[0], &x[0], &a[0], &dx[0], &partial_da[block, 0], channels,
                                 inner, lo, hi)


def _prelu(const real[::1] x, const real[::1] a, real[::1] y, Py_ssize_t channels, Py_ssize_t inner,
           int n_threads):
    if x.shape[0]:
        with nogil:
            _prelu_loop(x, a, y, channels, inner, n_threads)


def _prelu_backward(const real[::1] dy, const real[::1] x, const real[::1] a, real[::1] dx,
                    double[:, ::1] partial_da, Py_ssize_t inner):
    if x.shape[0]:
        with nogil:
            _prelu_backward_loop(dy, x, a, dx, partial_da, inner)


def prelu(x, a, y, outer, channels, inner, n_threads):
    _prelu(_flat(x), a, _flat(y), channels, max(inner, 1), n_threads)


def prelu_backward(dy, x, a, dx, da, outer, channels, inner, n_threads):
    partial_da = np.zeros((n_threads, channels))  # float64 per-block sums, merged serially below
    _prelu_backward(_flat(dy), _flat(x), a, _flat(dx), partial_da, max(inner, 1))
    da[:] = partial_da.sum(axis=0)


# --- Maxout: x seen as (groups, pieces, inner) -------------------------------------------------------

cdef void _maxout_loop(const real[::1] dy, const real[::1] x, real[::1] out, Py_ssize_t groups,
                       Py_ssize_t pieces, Py_ssize_t inner, bint backward,
                       int n_threads) noexcept nogil:
    """Forward (dy unused): out = y, else out = dx. Work items of about CHUNK elements of x."""
    cdef Py_ssize_t group_size = pieces * inner
    cdef Py_ssize_t per_item = max(1, CHUNK // group_size), n_items = (groups + per_item - 1) // per_item
    cdef Py_ssize_t item, g0, count
    for item in prange(n_items, schedule="static", num_threads=n_threads):
        g0 = item * per_item
        count = min(per_item, groups - g0)
        if real is float:
            if backward:
                fnn_maxout_backward_f(&dy[g0 * inner], &x[g0 * group_size], &out[g0 * group_size],
                                      count, pieces, inner)
            else:
                fnn_maxout_f(&x[g0 * group_size], &out[g0 * inner], count, pieces, inner)
        else:
            if backward:
                fnn_maxout_backward_d(&dy[g0 * inner], &x[g0 * group_size], &out[g0 * group_size],
                                      count, pieces, inner)
            else:
                fnn_maxout_d(&x[g0 * group_size], &out[g0 * inner], count, pieces, inner)


def _maxout(const real[::1] dy, const real[::1] x, real[::1] out, Py_ssize_t groups, Py_ssize_t pieces,
            Py_ssize_t inner, bint backward, int n_threads):
    if groups and inner:
        with nogil:
            _maxout_loop(dy, x, out, groups, pieces, inner, backward, n_threads)


def maxout(x, y, groups, pieces, inner, n_threads):
    _maxout(_flat(x), _flat(x), _flat(y), groups, pieces, inner, False, n_threads)


def maxout_backward(dy, x, dx, groups, pieces, inner, n_threads):
    _maxout(_flat(dy), _flat(x), _flat(dx), groups, pieces, inner, True, n_threads)
