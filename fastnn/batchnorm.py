"""Batch normalization: public functions (validation, then the op table).

x (N, D) normalizes per column; x (N, C, H, W) per channel over (N, H, W). Training normalizes with
the batch mean and biased variance and, when running_mean/running_var are given, updates them in
place as PyTorch does (unbiased variance into running_var); eval normalizes with the running stats.
"""
import numpy as np

from ._ops import call
from ._validation import check_ndim, check_out, check_same_shape, flag, float_arrays, real


def _channel_vector(op, name, a, channels, required=True):
    if a is None:
        if required:
            raise ValueError(f"{op}: {name} is required, expected shape ({channels},)")
        return
    if a.shape != (channels,):
        raise ValueError(f"{op}: {name} has shape {a.shape}, expected ({channels},) (x.shape[1])")


def _check_count(op, x, training, minimum):
    """Training needs `minimum` values per channel: the forward's batch variance two (a single value
    would normalize to beta whatever it is: PyTorch raises too), the backward's mean one."""
    count = x.shape[0] * int(np.prod(x.shape[2:]))
    if training and count < minimum:
        if minimum == 2:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, x has shape {x.shape} "
                             f"({count} per channel)")
        raise ValueError(f"{op}: training needs at least one value per channel, x has shape {x.shape}")


def _running_stat(op, name, r, x):
    """A running statistic updated in place: the caller's own contiguous array of x's dtype."""
    if not isinstance(r, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray (it is updated in place), got {type(r).__name__}")
    if r.dtype != x.dtype:
        raise TypeError(f"{op}: {name} has dtype {r.dtype}, expected {x.dtype} (x's dtype)")
    _channel_vector(op, name, r, x.shape[1])
    if not r.flags.c_contiguous or not r.flags.writeable:
        raise ValueError(f"{op}: {name} must be a contiguous, writeable array (it is updated in place)")
    return r


def _forward_args(op, x, gamma, beta, running_mean, running_var, training, momentum, eps, out):
    x, gamma, beta = float_arrays(op, optional=("gamma", "beta"), x=x, gamma=gamma, beta=beta)
    check_ndim(op, "x", x, (2, 4))
    channels = x.shape[1]
    if (gamma is None) != (beta is None):
        raise ValueError(f"{op}: gamma and beta must both be given or both be None")
    _channel_vector(op, "gamma", gamma, channels, required=False)
    _channel_vector(op, "beta", beta, channels, required=False)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be given or both be None")
    training = flag(op, "training", training)
    _check_count(op, x, training, minimum=2)
    if training:
        if running_mean is not None:
            running_mean = _running_stat(op, "running_mean", running_mean, x)
            running_var = _running_stat(op, "running_var", running_var, x)
    else:
        if running_mean is None:
            raise ValueError(f"{op}: training=False normalizes with running_mean and running_var; both are required")
        _, running_mean, running_var = float_arrays(op, x=x, running_mean=running_mean, running_var=running_var)
        _channel_vector(op, "running_mean", running_mean, channels)
        _channel_vector(op, "running_var", running_var, channels)
    momentum = real(op, "momentum", momentum, minimum=0.0, maximum=1.0)
    eps = real(op, "eps", eps, minimum=0.0, strict_minimum=True)
    check_out(op, out, x.shape, x.dtype)
    return x, gamma, beta, running_mean, running_var, training, momentum, eps


def _backward_args(op, training, **arrays):
    """dy (and y) shaped like x; gamma (optional), save_mean and save_invstd of shape (C,)."""
    arrays = dict(zip(arrays, float_arrays(op, optional=("gamma",), **arrays)))
    x = arrays["x"]
    check_ndim(op, "x", x, (2, 4))
    check_same_shape(op, "dy", arrays["dy"], "x", x)
    if "y" in arrays:
        check_same_shape(op, "y", arrays["y"], "x", x)
    _channel_vector(op, "gamma", arrays["gamma"], x.shape[1], required=False)
    _channel_vector(op, "save_mean", arrays["save_mean"], x.shape[1])
    _channel_vector(op, "save_invstd", arrays["save_invstd"], x.shape[1])
    training = flag(op, "training", training)
    _check_count(op, x, training, minimum=1)  # one value per channel has a gradient (torch's backward takes it)
    return tuple(arrays.values()) + (training,)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5, *,
               out=None):
    """Returns (y, save_mean, save_invstd); save_invstd = 1 / sqrt(var + eps)."""
    args = _forward_args("batch_norm", x, gamma, beta, running_mean, running_var, training, momentum, eps, out)
    return call("batch_norm", *args, out=out)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, training=True):
    """Returns (dx, dgamma, dbeta); dgamma and dbeta are None when gamma is None."""
    args = _backward_args("batch_norm_backward", training, dy=dy, x=x, gamma=gamma, save_mean=save_mean,
                          save_invstd=save_invstd)
    return call("batch_norm_backward", *args)


def batch_norm_relu(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5,
                    *, out=None):
    """relu(batch_norm(...)) in one pass; returns (y, save_mean, save_invstd)."""
    args = _forward_args("batch_norm_relu", x, gamma, beta, running_mean, running_var, training, momentum, eps, out)
    return call("batch_norm_relu", *args, out=out)


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, training=True):
    """Gradient of batch_norm_relu from its output y; returns (dx, dgamma, dbeta)."""
    args = _backward_args("batch_norm_relu_backward", training, dy=dy, y=y, x=x, gamma=gamma,
                          save_mean=save_mean, save_invstd=save_invstd)
    return call("batch_norm_relu_backward", *args)
