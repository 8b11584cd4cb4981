"""Numba activation kernels: parallel loops over the flattened (C-contiguous) arrays."""
import numpy as np
from numba import njit, prange

_OPTS = dict(parallel=True, cache=True, nogil=True)


def _output(x, out):
    return np.empty_like(x) if out is None else out


@njit(**_OPTS)
def _relu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v


def relu(x, out=None):
    y = _output(x, out)
    _relu(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS)
def _relu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = 0 if x[i] <= 0 else dy[i]


def relu_backward(dy, x, out=None):
    dx = _output(x, out)
    _relu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx
