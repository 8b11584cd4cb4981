"""Batch normalization: public functions and their meta functions.

x (N, D) normalizes per column; x (N, C, L), (N, C, H, W) and (N, C, D, H, W) per channel over every
axis but 1 (the kernels see (N, C, L) and (N, C, D, H, W) as (N, C, L, 1) and (N, C, D*H*W, 1): views,
no copy). Training normalizes with
the batch mean and biased variance and, when running_mean/running_var are given, updates them in
place as PyTorch does (unbiased variance into running_var); eval normalizes with the running stats.
Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan); the
work is counted in elements of x.
"""
import math

import numpy as np

from ._ops import Plan, call, meta
from ._validation import check_ndim, check_same_shape, flag, float_arrays, real

_NDIMS = (2, 3, 4, 5)  # (N, D), (N, C, L), (N, C, H, W), (N, C, D, H, W)


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
    count = x.shape[0] * math.prod(x.shape[2:])  # math.prod: np.prod of a tuple cost ~3 us a call
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


def _spatial(x):
    """x as the kernels take it: (N, C) and (N, C, H, W) as they are, (N, C, L) and (N, C, D, H, W) as
    (N, C, L, 1) and (N, C, D * H * W, 1): per-channel statistics over all but axis 1 are those of the
    4-d view (a reshape of a C-contiguous array, no copy)."""
    if x.ndim in (2, 4):
        return x
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]), 1)


def _momentum(op, momentum):
    """Any finite momentum, as torch.nn.functional.batch_norm applies its formula to any float (its
    OpInfo samples use -1 and -1.2; [0, 1] is the usual range). None is a TypeError, as torch's: the
    cumulative average of torch's momentum=None is the layers' (1 / num_batches_tracked each step)."""
    if momentum is None:
        raise TypeError(f"{op}: momentum must be a real number, got None (torch's momentum=None, a "
                        "cumulative average, is a layer option: fastnn.nn's batch norms pass 1 / num_batches_tracked)")
    return real(op, "momentum", momentum)


def _forward_meta(op):
    """The meta function of a forward: kernel(x, gamma, beta, running_mean, running_var, y, save_mean,
    save_invstd, training, momentum, eps[, n_threads]); gamma/beta and the running stats may be None."""
    def plan(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5):
        x, gamma, beta = float_arrays(op, optional=("gamma", "beta"), x=x, gamma=gamma, beta=beta)
        check_ndim(op, "x", x, _NDIMS)
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
                raise ValueError(f"{op}: training=False normalizes with running_mean and running_var; both are "
                                 "required")
            _, running_mean, running_var = float_arrays(op, x=x, running_mean=running_mean, running_var=running_var)
            _channel_vector(op, "running_mean", running_mean, channels)
            _channel_vector(op, "running_var", running_var, channels)
        momentum = _momentum(op, momentum)
        eps = real(op, "eps", eps, minimum=0.0, strict_minimum=True)
        spatial = _spatial(x)
        return Plan((spatial, gamma, beta, running_mean, running_var), (spatial.shape, (channels,), (channels,)),
                    x.dtype, (bool(training), float(momentum), float(eps)), work=x.size,
                    shape=None if spatial is x else x.shape)
    return meta(op)(plan)


def _backward_meta(op, with_output):
    """The meta function of a backward: kernel(dy, [y,] x, gamma, save_mean, save_invstd, dx, dgamma,
    dbeta, training[, n_threads]); dy (and y) shaped like x; gamma (optional), save_mean and
    save_invstd of shape (C,). The kernels always fill dgamma and dbeta; the public result drops
    them when gamma is None."""
    def plan(dy, *args, training=True):
        if with_output:
            y, x, gamma, save_mean, save_invstd = args
            dy, y, x, gamma, save_mean, save_invstd = float_arrays(
                op, optional=("gamma",), dy=dy, y=y, x=x, gamma=gamma, save_mean=save_mean, save_invstd=save_invstd)
        else:
            y = None
            x, gamma, save_mean, save_invstd = args
            dy, x, gamma, save_mean, save_invstd = float_arrays(
                op, optional=("gamma",), dy=dy, x=x, gamma=gamma, save_mean=save_mean, save_invstd=save_invstd)
        check_ndim(op, "x", x, _NDIMS)
        check_same_shape(op, "dy", dy, "x", x)
        if with_output:
            check_same_shape(op, "y", y, "x", x)
        channels = x.shape[1]
        _channel_vector(op, "gamma", gamma, channels, required=False)
        _channel_vector(op, "save_mean", save_mean, channels)
        _channel_vector(op, "save_invstd", save_invstd, channels)
        training = flag(op, "training", training)
        _check_count(op, x, training, minimum=1)  # one value per channel has a gradient (torch's backward takes it)
        spatial = _spatial(x)  # dy and y alike: the kernels' 4-d views
        if spatial is not x:
            dy = _spatial(dy)
            y = None if y is None else _spatial(y)
        arrays = (dy, y, spatial, gamma, save_mean, save_invstd) if with_output else \
            (dy, spatial, gamma, save_mean, save_invstd)
        return Plan(arrays, (spatial.shape, (channels,), (channels,)), x.dtype, (training,), work=x.size,
                    result=_without_affine if gamma is None else None, shape=None if spatial is x else x.shape)
    return meta(op)(plan)


def _without_affine(outputs, _):
    return outputs[0], None, None


_forward_meta("batch_norm")
_backward_meta("batch_norm_backward", with_output=False)
_forward_meta("batch_norm_relu")
_backward_meta("batch_norm_relu_backward", with_output=True)

def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5, *,
               out=None):
    """Normalize x per channel (per column for (N, D)), then scale by gamma and shift by beta.

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, D), (N, C, L), (N, C, H, W) or (N, C, D, H, W)
        Statistics per column of (N, D), per channel (axis 1) over all the other axes otherwise,
        as torch's BatchNorm1d/2d/3d.
    gamma, beta : array_like of shape (C,), or both None (no affine transform)
    running_mean, running_var : ndarray of shape (C,) and x's dtype, or both None
        training: updated in place when given, r = (1 - momentum) * r + momentum * batch (the
        unbiased variance into running_var); eval (training=False): required, they normalize.
    training : bool
        Normalize with the batch's mean and biased variance (True) or the running stats (False).
    momentum : float
        Usually in [0, 1]; any finite value is applied as torch applies it. None is a TypeError, as torch.nn.functional.batch_norm's (torch's cumulative average,
        momentum=None, belongs to the layers: fastnn.nn.BatchNorm1d/2d/3d(momentum=None)).
    eps : float > 0
        Added to the variance: save_invstd = 1 / sqrt(var + eps).
    out : ndarray, optional
        Written with y and returned as it.

    Returns
    -------
    (y, save_mean, save_invstd) : y of x's shape; save_mean and save_invstd of shape (C,), the
        statistics used (the batch's in training, the running ones in eval), for the backward.

    Notes
    -----
    torch.nn.functional.batch_norm's conventions differ in two places: it takes running_mean and
    running_var before weight and bias (here they follow gamma and beta), and it returns y alone.
    momentum weighs the batch statistic, as torch's (not Keras' or cs231n's momentum * running).
    """
    return call("batch_norm", x, gamma, beta, running_mean, running_var, training, momentum, eps, out=out)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, training=True):
    """Gradients of batch_norm.

    Parameters
    ----------
    dy : array_like, x's shape
    x, gamma : the forward's input (any of batch_norm's shapes) and gamma (None if the forward had
        no affine transform)
    save_mean, save_invstd : array_like of shape (C,), the forward's second and third outputs
    training : bool, as in the forward
        Eval's backward is the one of an affine map: dx = gamma * save_invstd * dy, whatever x is.

    Returns
    -------
    (dx, dgamma, dbeta) : dx of x's shape; dgamma and dbeta of shape (C,), None when gamma is None.
    """
    return call("batch_norm_backward", dy, x, gamma, save_mean, save_invstd, training=training)


def batch_norm_relu(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5,
                    *, out=None):
    """relu(batch_norm(...)) in one pass: batch_norm's arguments, returns and notes, with y relu'd.

    Parameters
    ----------
    x, gamma, beta, running_mean, running_var, training, momentum, eps, out
        As `batch_norm` (fastnn's order: not torch.nn.functional.batch_norm's).

    Returns
    -------
    (y, save_mean, save_invstd), as batch_norm, with y = max(y, 0).
    """
    return call("batch_norm_relu", x, gamma, beta, running_mean, running_var, training, momentum, eps, out=out)


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, training=True):
    """Gradients of batch_norm_relu from its output y: batch_norm_backward of dy where y > 0 (0 where
    y <= 0: relu's derivative at 0 is 0, as PyTorch's).

    Parameters
    ----------
    dy : ndarray
        The gradient of the loss with respect to y.
    y : ndarray
        batch_norm_relu's output.
    x, gamma, save_mean, save_invstd, training
        As `batch_norm_backward`.

    Returns
    -------
    (dx, dgamma, dbeta), as batch_norm_backward.
    """
    return call("batch_norm_relu_backward", dy, y, x, gamma, save_mean, save_invstd, training=training)
