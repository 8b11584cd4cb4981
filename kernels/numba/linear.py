"""Numba fully connected layer: BLAS GEMMs (np.dot: scipy's cython_blas) on our own threads.

The dispatcher caps BLAS at one thread around these calls (Plan.blas) and sets Numba's thread
count to n_threads: BLAS's own pool is never woken (on 2 cores its spinning workers and the OpenMP
pool steal each other's core for a whole scheduler slice at every hand-off). The forward splits
the batch rows into n_threads blocks; the backward runs dx and dw as two parallel tasks (a block
of dw's rows would need a non-contiguous block of x's columns), so it uses at most 2 threads.
"""
import numpy as np
from numba import njit, prange

from ._common import PARALLEL, SERIAL, chunk


@njit(**SERIAL)
def _add_bias(b, y):
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += b[j]


@njit(**PARALLEL)
def _linear(x, w, b, y, blocks):
    n = x.shape[0]
    for t in prange(blocks):
        lo, hi = chunk(t, blocks, n)
        np.dot(x[lo:hi], w, y[lo:hi])
        if b is not None:
            _add_bias(b, y[lo:hi])


@njit(**SERIAL)
def _no_features(b, y):
    """y of an empty sum (D_in = 0: BLAS may leave y untouched): b, or zeros."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = 0 if b is None else b[j]


def linear(x, w, b, y, n_threads):
    if y.size == 0:
        return
    if x.shape[1] == 0:
        _no_features(b, y)
        return
    _linear(x, w, b, y, max(1, min(n_threads, x.shape[0])))


@njit(**SERIAL)
def _column_sums(dy, db):
    db[:] = 0
    for i in range(dy.shape[0]):  # row after row: the inner loop runs along contiguous memory
        for j in range(dy.shape[1]):
            db[j] += dy[i, j]


@njit(**PARALLEL)
def _linear_backward(dy, x, w, dx, dw, db):
    for task in prange(2):  # on one thread (n_threads = 1) the two run one after the other
        if task == 0:
            np.dot(x.T, dy, dw)
        elif dx is not None:
            np.dot(dy, w.T, dx)
    _column_sums(dy, db)


@njit(**SERIAL)
def _backward_of_empty_sums(dy, dx, dw, db):
    """N = 0 or no weights: BLAS may leave its outputs untouched."""
    if dx is not None:
        dx[...] = 0
    dw[...] = 0
    _column_sums(dy, db)


def linear_backward(dy, x, w, dx, dw, db, n_threads):
    if x.shape[0] == 0 or w.size == 0:
        _backward_of_empty_sums(dy, dx, dw, db)
        return
    _linear_backward(dy, x, w, dx, dw, db)
