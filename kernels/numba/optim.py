"""Numba optimizer steps: one fused parallel pass over param, grad and state, all in place.

Signatures follow the contract (fastnn/_ops.Plan): param, grad, state buffers (updated in place),
hyperparameters, n_threads (the dispatcher sets Numba's thread count to it). Hyperparameters are
cast to the arrays' dtype, so float32 math stays float32 (and SIMD wide); Adam's bias corrections
are folded into two scalars once per step.

`<op>_many` steps a list of tensors (hyperparameter rows per tensor) by the single-tensor kernels,
one after another: a list of arrays reaches a Numba function only as a typed List or a tuple typed
per length, both slower to pass than the calls they would save.
"""
import math

import numpy as np
from numba import njit, prange

from ._common import PARALLEL


@njit(**PARALLEL)
def _sgd(p, g, lr, weight_decay):
    for i in prange(p.size):
        d = g[i]
        if weight_decay != 0:
            d += weight_decay * p[i]
        p[i] -= lr * d


@njit(**PARALLEL)
def _sgd_momentum(p, g, b, lr, momentum, nesterov, weight_decay):
    for i in prange(p.size):
        d = g[i]
        if weight_decay != 0:
            d += weight_decay * p[i]
        v = momentum * b[i] + d
        b[i] = v
        p[i] -= lr * (d + momentum * v if nesterov else v)


def sgd_step(param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay, n_threads):
    t = param.dtype.type
    if momentum:
        _sgd_momentum(param.reshape(-1), grad.reshape(-1), momentum_buffer.reshape(-1), t(lr), t(momentum),
                      nesterov, t(weight_decay))
    else:
        _sgd(param.reshape(-1), grad.reshape(-1), t(lr), t(weight_decay))


@njit(**PARALLEL)
def _adagrad(p, g, s, lr, eps):
    for i in prange(p.size):
        d = g[i]
        v = s[i] + d * d
        s[i] = v
        p[i] -= lr * (d / (np.sqrt(v) + eps))


def adagrad_step(param, grad, sum_sq, lr, eps, n_threads):
    t = param.dtype.type
    _adagrad(param.reshape(-1), grad.reshape(-1), sum_sq.reshape(-1), t(lr), t(eps))


@njit(**PARALLEL)
def _rmsprop(p, g, s, lr, alpha, one_minus_alpha, eps):
    for i in prange(p.size):
        d = g[i]
        v = alpha * s[i] + one_minus_alpha * (d * d)
        s[i] = v
        p[i] -= lr * (d / (np.sqrt(v) + eps))


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, n_threads):
    t = param.dtype.type
    _rmsprop(param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1), t(lr), t(alpha), t(1 - alpha), t(eps))


@njit(**PARALLEL)
def _adam(p, g, m, v, step_size, inv_bc2_sqrt, w1, beta2, w2, eps, weight_decay):
    for i in prange(p.size):
        d = g[i]
        if weight_decay != 0:
            d += weight_decay * p[i]
        mi = m[i] + w1 * (d - m[i])
        vi = beta2 * v[i] + w2 * (d * d)
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * (mi / (np.sqrt(vi) * inv_bc2_sqrt + eps))


_LARGEST = {np.float32: float(np.finfo(np.float32).max), np.float64: float(np.finfo(np.float64).max)}


def _cast(t, x):
    """x in dtype t, +-inf beyond its range (the reference's weak-scalar cast) without NumPy's
    "overflow encountered in cast" warning."""
    return t(x) if abs(x) <= _LARGEST[t] else t(math.copysign(math.inf, x))


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, n_threads):
    """The step size lr / (1 - beta1**step) may exceed param's dtype (a huge lr, beta1 near 1): it
    is then inf, as in the reference; every other hyperparameter fits (the meta function checks)."""
    t = param.dtype.type
    step_size = lr / (1 - beta1 ** step)
    inv_bc2_sqrt = 1 / (1 - beta2 ** step) ** 0.5
    _adam(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), _cast(t, step_size),
          t(inv_bc2_sqrt), t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(weight_decay))


def sgd_step_many(params, grads, momentum_buffers, hyper, n_threads):
    for p, g, b, (lr, momentum, nesterov, weight_decay) in zip(params, grads, momentum_buffers, hyper):
        sgd_step(p, g, b, lr, momentum, bool(nesterov), weight_decay, n_threads)


def adagrad_step_many(params, grads, sum_sqs, hyper, n_threads):
    for p, g, s, (lr, eps) in zip(params, grads, sum_sqs, hyper):
        adagrad_step(p, g, s, lr, eps, n_threads)


def rmsprop_step_many(params, grads, square_avgs, hyper, n_threads):
    for p, g, s, (lr, alpha, eps) in zip(params, grads, square_avgs, hyper):
        rmsprop_step(p, g, s, lr, alpha, eps, n_threads)


def adam_step_many(params, grads, exp_avgs, exp_avg_sqs, hyper, n_threads):
    for p, g, m, v, (step, lr, beta1, beta2, eps, weight_decay) in zip(params, grads, exp_avgs, exp_avg_sqs, hyper):
        adam_step(p, g, m, v, int(step), lr, beta1, beta2, eps, weight_decay, n_threads)
