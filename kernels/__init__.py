"""fastnn's compiled kernels: `fastnn.kernels.numba` and `fastnn.kernels.cython`."""
