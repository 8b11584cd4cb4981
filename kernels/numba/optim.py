"""Numba optimizer steps: one fused parallel pass over param, grad and state, all in place.

Hyperparameters arrive as scalars of the arrays' dtype, so float32 math stays float32 (and SIMD
wide); Adam's bias corrections are folded into two scalars once per step.
"""
import numba
import numpy as np
from numba import njit, prange

# Below this many elements one thread finishes the pass sooner than a thread pool wakes up.
PARALLEL_MIN = 1 << 16

_OPTS = dict(parallel=True, cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})


def _launch(kernel, *args):
    """Run kernel(*args) (first argument: the param array), on one thread when it is small."""
    if args[0].size >= PARALLEL_MIN or numba.get_num_threads() == 1:
        kernel(*args)
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(previous)


@njit(**_OPTS)
def _sgd(p, g, lr, weight_decay):
    for i in prange(p.size):
        d = g[i]
        if weight_decay != 0:
            d += weight_decay * p[i]
        p[i] -= lr * d


@njit(**_OPTS)
def _sgd_momentum(p, g, b, lr, momentum, nesterov, weight_decay):
    for i in prange(p.size):
        d = g[i]
        if weight_decay != 0:
            d += weight_decay * p[i]
        v = momentum * b[i] + d
        b[i] = v
        p[i] -= lr * (d + momentum * v if nesterov else v)


def sgd_step(param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay):
    t = param.dtype.type
    if momentum:
        _launch(_sgd_momentum, param.reshape(-1), grad.reshape(-1), momentum_buffer.reshape(-1),
                      t(lr), t(momentum), nesterov, t(weight_decay))
    else:
        _launch(_sgd, param.reshape(-1), grad.reshape(-1), t(lr), t(weight_decay))
    return param


@njit(**_OPTS)
def _adagrad(p, g, s, lr, eps):
    for i in prange(p.size):
        d = g[i]
        v = s[i] + d * d
        s[i] = v
        p[i] -= lr * (d / (np.sqrt(v) + eps))


def adagrad_step(param, grad, sum_sq, lr, eps):
    t = param.dtype.type
    _launch(_adagrad, param.reshape(-1), grad.reshape(-1), sum_sq.reshape(-1), t(lr), t(eps))
    return param


@njit(**_OPTS)
def _rmsprop(p, g, s, lr, alpha, one_minus_alpha, eps):
    for i in prange(p.size):
        d = g[i]
        v = alpha * s[i] + one_minus_alpha * (d * d)
        s[i] = v
        p[i] -= lr * (d / (np.sqrt(v) + eps))


def rmsprop_step(param, grad, square_avg, lr, alpha, eps):
    t = param.dtype.type
    _launch(_rmsprop, param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1),
            t(lr), t(alpha), t(1 - alpha), t(eps))
    return param


@njit(**_OPTS)
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


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    t = param.dtype.type
    step_size = lr / (1 - beta1 ** step)
    inv_bc2_sqrt = 1 / (1 - beta2 ** step) ** 0.5
    _launch(_adam, param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
          t(step_size), t(inv_bc2_sqrt), t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(weight_decay))
    return param
