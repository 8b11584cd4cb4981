# Cython/OpenMP activation kernels over flattened C-contiguous arrays.
#
# The per-chunk loops are C (activation_loops.h: vectorized, AVX-512/AVX2/baseline clones picked
# at load time); this module splits the arrays into chunks and runs them in parallel.
from cython.parallel cimport prange

import numpy as np

from fastnn._threads import get_num_threads

from _common cimport real


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
    # Below these sizes one thread is faster: starting the OpenMP team (~2 us here) costs more
    # than the second thread saves. Measured (1 vs 2 threads, min of 300, 1-D arrays): float32
    # relu and tanh_backward break even at 48K-64K elements, float64 relu at 32K-64K; float32
    # sigmoid at 12K-16K, gelu at ~7K; float64 sigmoid/gelu/tanh at 4K-6K.
    SERIAL_BELOW = 65536
    SERIAL_BELOW_TRANSCENDENTAL = 8192


cdef inline bint _algebraic(int op) noexcept nogil:
    """No exp/erf/tanh per element: memory-bound, so the larger serial cut-off applies."""
    return op in (FNN_RELU, FNN_RELU_BACKWARD, FNN_LEAKY_RELU, FNN_LEAKY_RELU_BACKWARD,
                  FNN_SIGMOID_BACKWARD, FNN_TANH_BACKWARD)


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


cdef void _elementwise_loop(int op, const real[::1] a, const real[::1] b, real[::1] out,
                            double param, int n_threads) noexcept:
    cdef Py_ssize_t n = out.shape[0], chunk_size, n_chunks, chunk, start
    with nogil:
        if n_threads == 1 or n < (SERIAL_BELOW if _algebraic(op) else SERIAL_BELOW_TRANSCENDENTAL):
            if n:
                _chunk(op, &a[0], &b[0], &out[0], n, param)
            return
        chunk_size = _chunk_size(n, n_threads)
        n_chunks = (n + chunk_size - 1) // chunk_size
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * chunk_size
            _chunk(op, &a[start], &b[start], &out[start], min(chunk_size, n - start), param)


def _elementwise(int op, a, b, out, double param):
    """out = op(a, b, param) elementwise; b is a again for forwards, x or y for backwards."""
    result = np.empty_like(b) if out is None else out
    if b.dtype == np.float32:
        _elementwise_loop[float](op, a.reshape(-1), b.reshape(-1), result.reshape(-1), param,
                                 get_num_threads())
    else:
        _elementwise_loop[double](op, a.reshape(-1), b.reshape(-1), result.reshape(-1), param,
                                  get_num_threads())
    return result


def relu(x, out=None):
    return _elementwise(FNN_RELU, x, x, out, 0)


def relu_backward(dy, x, out=None):
    return _elementwise(FNN_RELU_BACKWARD, dy, x, out, 0)


def leaky_relu(x, negative_slope=0.01, out=None):
    return _elementwise(FNN_LEAKY_RELU, x, x, out, negative_slope)


def leaky_relu_backward(dy, x, negative_slope=0.01, out=None):
    return _elementwise(FNN_LEAKY_RELU_BACKWARD, dy, x, out, negative_slope)


def elu(x, alpha=1.0, out=None):
    return _elementwise(FNN_ELU, x, x, out, alpha)


def elu_backward(dy, x, alpha=1.0, out=None):
    return _elementwise(FNN_ELU_BACKWARD, dy, x, out, alpha)


def sigmoid(x, out=None):
    return _elementwise(FNN_SIGMOID, x, x, out, 0)


def sigmoid_backward(dy, y, out=None):
    return _elementwise(FNN_SIGMOID_BACKWARD, dy, y, out, 0)


def tanh(x, out=None):
    return _elementwise(FNN_TANH, x, x, out, 0)


def tanh_backward(dy, y, out=None):
    return _elementwise(FNN_TANH_BACKWARD, dy, y, out, 0)


def gelu(x, out=None):
    return _elementwise(FNN_GELU, x, x, out, 0)


def gelu_backward(dy, x, out=None):
    return _elementwise(FNN_GELU_BACKWARD, dy, x, out, 0)


def silu(x, out=None):
    return _elementwise(FNN_SILU, x, x, out, 0)


def silu_backward(dy, x, out=None):
    return _elementwise(FNN_SILU_BACKWARD, dy, x, out, 0)


# --- PReLU: x seen as (rows, inner), row r in channel r % channels ---------------------------

def _prelu_layout(x, a):
    """(channels, inner): a scalar a makes the whole array one channel."""
    if a.ndim == 0:
        return 1, max(x.size, 1)
    return a.shape[0], int(np.prod(x.shape[2:]))


cdef inline Py_ssize_t _block_start(Py_ssize_t n, Py_ssize_t block, Py_ssize_t n_blocks) noexcept nogil:
    return n * block // n_blocks


cdef void _prelu_loop(const real[::1] x, const real[::1] a, real[::1] y, Py_ssize_t channels,
                      Py_ssize_t inner, int n_threads) noexcept:
    cdef Py_ssize_t n = x.shape[0], block, lo, hi
    cdef Py_ssize_t n_blocks = n_threads if n >= SERIAL_BELOW else 1
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=n_blocks):
            lo = _block_start(n, block, n_blocks)
            hi = _block_start(n, block + 1, n_blocks)
            if real is float:
                fnn_prelu_f(&x[0], &a[0], &y[0], channels, inner, lo, hi)
            else:
                fnn_prelu_d(&x[0], &a[0], &y[0], channels, inner, lo, hi)


cdef void _prelu_backward_loop(const real[::1] dy, const real[::1] x, const real[::1] a,
                               real[::1] dx, double[:, ::1] partial_da,
                               Py_ssize_t inner) noexcept:
    """Block b adds its share of da into partial_da[b] (no shared writes)."""
    cdef Py_ssize_t n = x.shape[0], n_blocks = partial_da.shape[0], block, lo, hi
    cdef Py_ssize_t channels = partial_da.shape[1]
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=n_blocks):
            lo = _block_start(n, block, n_blocks)
            hi = _block_start(n, block + 1, n_blocks)
            if real is float:
                fnn_prelu_backward_f(&dy[0], &x[0], &a[0], &dx[0], &partial_da[block, 0], channels,
                                     inner, lo, hi)
            else:
                fnn_prelu_backward_d(&dy[0], &x[0], &a[0], &dx[0], &partial_da[block, 0], channels,
                                     inner, lo, hi)


def prelu(x, a, out=None):
    y = np.empty_like(x) if out is None else out
    channels, inner = _prelu_layout(x, a)
    if x.size:
        if x.dtype == np.float32:
            _prelu_loop[float](x.reshape(-1), a.reshape(-1), y.reshape(-1), channels, inner,
                               get_num_threads())
        else:
            _prelu_loop[double](x.reshape(-1), a.reshape(-1), y.reshape(-1), channels, inner,
                                get_num_threads())
    return y


def prelu_backward(dy, x, a):
    dx = np.empty_like(x)
    channels, inner = _prelu_layout(x, a)
    n_threads = get_num_threads()
    partial_da = np.zeros((n_threads if x.size >= SERIAL_BELOW else 1, channels))
    if x.size:
        if x.dtype == np.float32:
            _prelu_backward_loop[float](dy.reshape(-1), x.reshape(-1), a.reshape(-1),
                                        dx.reshape(-1), partial_da, inner)
        else:
            _prelu_backward_loop[double](dy.reshape(-1), x.reshape(-1), a.reshape(-1),
                                         dx.reshape(-1), partial_da, inner)
    da = partial_da.sum(axis=0).astype(x.dtype)  # the serial merge
    return dx, da.reshape(a.shape)


# --- Maxout: x seen as (groups, pieces, inner), groups = outer * units ------------------------

def _maxout_layout(shape, pieces, axis):
    """(groups, inner, the output shape)."""
    units = shape[axis] // pieces
    groups = int(np.prod(shape[:axis])) * units
    return groups, int(np.prod(shape[axis + 1:])), shape[:axis] + (units,) + shape[axis + 1:]


cdef void _maxout_loop(const real[::1] dy, const real[::1] x, real[::1] out, Py_ssize_t groups,
                       Py_ssize_t pieces, Py_ssize_t inner, bint backward,
                       int n_threads) noexcept:
    """Forward (dy unused): out = y, else out = dx. Work items of about CHUNK elements of x."""
    cdef Py_ssize_t group_size = pieces * inner
    cdef Py_ssize_t per_item = max(1, CHUNK // group_size), n_items = (groups + per_item - 1) // per_item
    cdef Py_ssize_t item, g0, count
    with nogil:
        if groups * group_size < SERIAL_BELOW:
            n_threads = 1
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


def _maxout(dy, x, pieces, axis, out, bint backward):
    groups, inner, y_shape = _maxout_layout(x.shape, pieces, axis)
    result = np.empty(x.shape if backward else y_shape, x.dtype) if out is None else out
    if groups and inner:
        if x.dtype == np.float32:
            _maxout_loop[float](dy.reshape(-1), x.reshape(-1), result.reshape(-1), groups, pieces,
                                inner, backward, get_num_threads())
        else:
            _maxout_loop[double](dy.reshape(-1), x.reshape(-1), result.reshape(-1), groups, pieces,
                                 inner, backward, get_num_threads())
    return result


def maxout(x, pieces, axis=1, out=None):
    return _maxout(x, x, pieces, axis, out, False)


def maxout_backward(dy, x, pieces, axis=1, out=None):
    return _maxout(dy, x, pieces, axis, out, True)
