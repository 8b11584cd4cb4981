# Cython/OpenMP activation kernels over flattened C-contiguous arrays.
from cython.parallel cimport prange

import numpy as np

from fastnn._threads import get_num_threads

from _common cimport real


cdef void _relu(const real[::1] x, real[::1] y, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    cdef real v
    for i in prange(x.shape[0], schedule="static", num_threads=n_threads):
        v = x[i]
        y[i] = 0 if v <= 0 else v


def relu(x, out=None):
    y = np.empty_like(x) if out is None else out
    if x.dtype == np.float32:
        _relu[float](x.reshape(-1), y.reshape(-1), get_num_threads())
    else:
        _relu[double](x.reshape(-1), y.reshape(-1), get_num_threads())
    return y
