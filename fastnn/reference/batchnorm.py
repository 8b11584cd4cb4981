"""Plain-NumPy batch normalization: the oracle and the benchmark baseline.

x is (N, D) (statistics per column) or (N, C, H, W) (per channel over N, H, W). Statistics and the
normalization are computed in float64, the results rounded to x's dtype.
"""
import numpy as np


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    """A (C,) vector broadcast against x's channel axis."""
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def _count(x):
    """Values per channel."""
    return x.shape[0] * int(np.prod(x.shape[2:]))


def batch_norm(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    if training:
        mean = x.mean(axis=_axes(x), dtype=np.float64)
        var = x.var(axis=_axes(x), dtype=np.float64)
        if running_mean is not None:
            n = _count(x)
            unbiased = var * n / (n - 1) if n > 1 else var  # one value per channel: no correction
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * unbiased
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    invstd = 1 / np.sqrt(var + eps)
    y = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    if gamma is not None:
        y = y * _per_channel(gamma, x) + _per_channel(beta, x)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, training=True):
    axes = _axes(x)
    invstd = _per_channel(save_invstd, x)
    xhat = (x - _per_channel(save_mean, x)) * invstd
    dbeta = dy.sum(axis=axes, dtype=np.float64)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = invstd if gamma is None else _per_channel(gamma, x) * invstd
    if training:
        n = _count(x)
        dx = scale * (dy - _per_channel(dbeta, x) / n - xhat * _per_channel(dgamma, x) / n)
    else:
        dx = scale * dy
    if gamma is None:
        return dx.astype(x.dtype), None, None
    return dx.astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    y, mean, invstd = batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    return np.maximum(y, 0).astype(x.dtype, copy=False), mean, invstd


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, training=True):
    dz = np.where(y <= 0, 0, dy).astype(dy.dtype, copy=False)  # relu'(0) = 0, as PyTorch
    return batch_norm_backward(dz, x, gamma, save_mean, save_invstd, training)
