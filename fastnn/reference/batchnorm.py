"""Plain-NumPy batch normalization: the oracle and the benchmark baseline.

x is (N, D) (statistics per column) or (N, C, H, W) (per channel over N, H, W). Statistics and the
normalization are computed in float64, the results rounded to x's dtype. Each function takes the
inputs, then the output arrays to fill (shapes from the meta functions in fastnn/batchnorm.py),
then the parameters, like the compiled kernels.
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


def _store(out, value):
    """out[...] = value rounded to out's dtype; a float64 beyond float32's range becomes inf quietly
    (a tiny eps makes 1 / sqrt(var + eps) that large), as the kernels' casts."""
    with np.errstate(over="ignore"):
        out[...] = value


def _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """(y, mean, invstd) in float64; updates the running stats in place in training."""
    if training:
        mean = x.mean(axis=_axes(x), dtype=np.float64)
        var = x.var(axis=_axes(x), dtype=np.float64)
        if running_mean is not None:
            n = _count(x)
            unbiased = var * n / (n - 1) if n > 1 else var  # one value per channel: no correction
            _store(running_mean, (1 - momentum) * running_mean + momentum * mean)
            _store(running_var, (1 - momentum) * running_var + momentum * unbiased)
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    invstd = 1 / np.sqrt(var + eps)
    y = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    if gamma is not None:
        y = y * _per_channel(gamma, x) + _per_channel(beta, x)
    return y, mean, invstd


def batch_norm(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps):
    out, mean, invstd = _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    _store(y, out)
    _store(save_mean, mean)
    _store(save_invstd, invstd)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training):
    """dgamma and dbeta are filled whether or not gamma is given (the public result drops them)."""
    axes = _axes(x)
    invstd = _per_channel(save_invstd, x)
    xhat = (x - _per_channel(save_mean, x)) * invstd
    dbeta64 = dy.sum(axis=axes, dtype=np.float64)
    dgamma64 = (dy * xhat).sum(axis=axes)
    scale = invstd if gamma is None else _per_channel(gamma, x) * invstd
    if training:
        n = _count(x)
        grad = scale * (dy - _per_channel(dbeta64, x) / n - xhat * _per_channel(dgamma64, x) / n)
    else:
        grad = scale * dy  # an affine map: dx does not depend on x
    _store(dx, grad)
    _store(dgamma, dgamma64)
    _store(dbeta, dbeta64)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps):
    out, mean, invstd = _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    _store(y, np.maximum(out, 0))
    _store(save_mean, mean)
    _store(save_invstd, invstd)


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training):
    dz = np.where(y <= 0, 0, dy).astype(dy.dtype, copy=False)  # relu'(0) = 0, as PyTorch
    batch_norm_backward(dz, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training)
