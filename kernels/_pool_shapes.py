"""Python-level helpers shared by the Numba and Cython pooling kernels."""
import numpy as np


def planes(a):
    """(N, C, H, W) as (N * C, H, W): pooling works plane by plane."""
    return a.reshape((-1,) + a.shape[2:])


def pooled_output(x, kernel, stride, padding, out):
    """`out`, or a new array of the pooled shape of x (PyTorch's floor((H + 2p - k) / s) + 1)."""
    if out is not None:
        return out
    shape = [x.shape[0], x.shape[1]]
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        shape.append((size + 2 * p - k) // s + 1)
    return np.empty(shape, x.dtype)
