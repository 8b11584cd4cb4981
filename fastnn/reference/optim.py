"""Optimizer steps in plain NumPy, torch.optim's formulas written out (the oracle).

Each step updates `param` and its state buffers in place and returns `param`. NaN and inf in a
gradient propagate quietly (as in PyTorch), hence the errstate.
"""
import functools

import numpy as np


def _quiet(step):
    @functools.wraps(step)
    def wrapper(*args):
        with np.errstate(all="ignore"):
            return step(*args)
    return wrapper


def _with_weight_decay(grad, param, weight_decay):
    return grad + weight_decay * param if weight_decay else grad


@_quiet
def sgd_step(param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay):
    g = _with_weight_decay(grad, param, weight_decay)
    if momentum:
        momentum_buffer *= momentum
        momentum_buffer += g  # a zero buffer on the first step gives torch's b = g
        g = g + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * g
    return param


@_quiet
def adagrad_step(param, grad, sum_sq, lr, eps):
    sum_sq += grad * grad
    param -= lr * (grad / (np.sqrt(sum_sq) + eps))
    return param


@_quiet
def rmsprop_step(param, grad, square_avg, lr, alpha, eps):
    square_avg *= alpha
    square_avg += (1 - alpha) * (grad * grad)
    param -= lr * (grad / (np.sqrt(square_avg) + eps))
    return param


@_quiet
def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    g = _with_weight_decay(grad, param, weight_decay)
    exp_avg += (1 - beta1) * (g - exp_avg)  # torch's lerp
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * (g * g)
    step_size = lr / (1 - beta1 ** step)
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    param -= step_size * (exp_avg / (np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps))
    return param
