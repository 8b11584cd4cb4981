"""Numba fully connected layer: all the work goes to BLAS (np.dot: scipy's cython_blas), with
BLAS's own threads at fastnn's count. No parallel loop of ours runs beside it: idle OpenMP
threads spinning next to BLAS's threads cost whole scheduler slices on a small machine."""
import numpy as np
from numba import njit

from fastnn._threads import blas_threads, get_num_threads

_OPTS = dict(cache=True, nogil=True)


@njit(**_OPTS)
def _linear(x, w, b, has_bias, y):
    np.dot(x, w, y)
    if has_bias:
        for i in range(y.shape[0]):
            for j in range(y.shape[1]):
                y[i, j] += b[j]


def linear(x, w, b, out=None):
    y = np.empty((x.shape[0], w.shape[1]), x.dtype) if out is None else out
    with blas_threads(get_num_threads()):
        _linear(x, w, w[0] if b is None else b, b is not None, y)
    return y


@njit(**_OPTS)
def _linear_backward(dy, x, w, dx, dw, db):
    np.dot(dy, w.T, dx)
    np.dot(x.T, dy, dw)
    np.dot(np.ones(dy.shape[0], dy.dtype), dy, db)  # column sums as a GEMV


def linear_backward(dy, x, w):
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.empty(w.shape[1], x.dtype)
    with blas_threads(get_num_threads()):
        _linear_backward(dy, x, w, dx, dw, db)
    return dx, dw, db
