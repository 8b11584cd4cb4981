"""Numba fully connected layer: BLAS GEMMs (np.dot: scipy's cython_blas) on our own threads, BLAS
capped at one thread. BLAS's own pool is never woken: on 2 cores its spinning workers and the
OpenMP pool steal each other's core for a whole scheduler slice at every hand-off.
The forward splits the batch rows; the backward runs dx and dw as two parallel tasks (a block of
dw's rows would need a non-contiguous block of x's columns)."""
import numpy as np
from numba import njit, prange

from fastnn._threads import blas_threads, get_num_threads, numba_threads

_OPTS = dict(parallel=True, cache=True, nogil=True)
_PARALLEL_MIN_FMAS = 1 << 20  # below this many multiply-adds a GEMM runs on one thread


def _threads_for(fmas):
    """One thread for small GEMMs (waking the other costs more), BLAS capped at one thread."""
    if fmas < _PARALLEL_MIN_FMAS:
        return numba_threads(1)
    return numba_threads()


@njit(**_OPTS)
def _linear(x, w, b, has_bias, y, blocks):
    n = x.shape[0]
    for t in prange(blocks):
        lo, hi = t * n // blocks, (t + 1) * n // blocks
        np.dot(x[lo:hi], w, y[lo:hi])
        if has_bias:
            for i in range(lo, hi):
                for j in range(y.shape[1]):
                    y[i, j] += b[j]


_BLAS_MAX = 2 ** 31 - 1  # np.dot hands BLAS 32-bit sizes


def _check_blas_sizes(op, x, w):
    if max(x.shape + w.shape) > _BLAS_MAX:
        raise ValueError(f"{op}: x {x.shape} and w {w.shape} exceed BLAS's 32-bit sizes")


def linear(x, w, b, out=None):
    n, d_in = x.shape
    y = np.empty((n, w.shape[1]), x.dtype) if out is None else out
    if y.size == 0:
        return y
    if d_in == 0:  # an empty sum: BLAS may leave y untouched
        y[...] = 0 if b is None else b
        return y
    _check_blas_sizes("linear", x, w)
    fmas = n * d_in * w.shape[1]
    blocks = max(1, min(get_num_threads(), n)) if fmas >= _PARALLEL_MIN_FMAS else 1
    with blas_threads(1), _threads_for(fmas):
        _linear(x, w, w[0] if b is None else b, b is not None, y, blocks)
    return y


@njit(**_OPTS)
def _linear_backward(dy, x, w, dx, dw, db, input_grad):
    for task in prange(2):
        if task == 0:
            if input_grad:
                np.dot(dy, w.T, dx)
        else:
            np.dot(x.T, dy, dw)
    db[:] = 0
    for i in range(dy.shape[0]):
        db += dy[i]


def linear_backward(dy, x, w, input_grad=True):
    dx = np.empty_like(x) if input_grad else None
    dw = np.empty_like(w)
    db = np.empty(w.shape[1], x.dtype)
    if x.shape[0] == 0 or w.size == 0:  # empty sums: BLAS may leave the outputs untouched
        if input_grad:
            dx[...] = 0
        dw[...] = 0
        db[...] = dy.sum(axis=0)
        return dx, dw, db
    _check_blas_sizes("linear_backward", x, w)
    with blas_threads(1), _threads_for(x.size * w.shape[1] * (2 if input_grad else 1)):
        _linear_backward(dy, x, w, dx if input_grad else x[:0], dw, db, input_grad)
    return dx, dw, db
