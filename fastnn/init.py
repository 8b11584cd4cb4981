"""Weight initialization (torch.nn.init's schemes) for fastnn's layouts.

Fans: linear weights (D_in, D_out) have fan_in = shape[0], fan_out = shape[1] (fastnn's
x @ w layout, the transpose of PyTorch's); conv weights (F, C, KH, KW) have fan_in = C*KH*KW and
fan_out = F*KH*KW. Every function takes `rng=` (a numpy Generator) or `seed=` (an int), and
`dtype=` (float32 by default).
"""
import math

import numpy as np

from ._validation import FLOAT_DTYPES, real

__all__ = ["normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
           "calculate_gain", "fans"]


def _generator(op, rng, seed):
    if rng is not None and seed is not None:
        raise ValueError(f"{op}: give rng or seed, not both")
    if rng is None:
        return np.random.default_rng(seed)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _dtype(op, dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _shape(op, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(not isinstance(s, (int, np.integer)) or s < 0 for s in shape):
        raise ValueError(f"{op}: shape must be non-negative integers, got {shape}")
    return tuple(int(s) for s in shape)


def fans(shape):
    """(fan_in, fan_out) of a linear (D_in, D_out) or conv (F, C, KH, KW) weight."""
    shape = _shape("fans", shape)
    if len(shape) < 2:
        raise ValueError(f"fans: shape must have at least 2 dimensions (linear or conv weight), got {shape}")
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, negative_slope=0.0):
    """torch.nn.init.calculate_gain: the std multiplier that keeps activations' scale."""
    if nonlinearity in ("linear", "identity", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity in ("relu", "leaky_relu"):  # a nonzero slope makes relu leaky
        slope = real("calculate_gain", "negative_slope", negative_slope)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _normal(shape, std, rng, dtype):
    return (rng.standard_normal(shape, dtype=dtype) * dtype.type(std)).astype(dtype, copy=False)


def _uniform(shape, bound, rng, dtype):
    return ((rng.random(shape, dtype=dtype) * 2 - 1) * dtype.type(bound)).astype(dtype, copy=False)


def normal(shape, std=0.01, *, rng=None, seed=None, dtype=np.float32):
    """Draws from N(0, std^2) (cs231n's weight_scale init)."""
    std = real("normal", "std", std, minimum=0.0)
    return _normal(_shape("normal", shape), std, _generator("normal", rng, seed), _dtype("normal", dtype))


def xavier_uniform(shape, gain=1.0, *, rng=None, seed=None, dtype=np.float32):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = fans(shape)
    bound = real("xavier_uniform", "gain", gain) * math.sqrt(6.0 / max(1, fan_in + fan_out))
    return _uniform(_shape("xavier_uniform", shape), bound, _generator("xavier_uniform", rng, seed),
                    _dtype("xavier_uniform", dtype))


def xavier_normal(shape, gain=1.0, *, rng=None, seed=None, dtype=np.float32):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    std = real("xavier_normal", "gain", gain) * math.sqrt(2.0 / max(1, fan_in + fan_out))
    return _normal(_shape("xavier_normal", shape), std, _generator("xavier_normal", rng, seed),
                   _dtype("xavier_normal", dtype))


def _kaiming_std(op, shape, nonlinearity, negative_slope, mode):
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, negative_slope) / math.sqrt(max(1, fan))


def kaiming_uniform(shape, nonlinearity="relu", negative_slope=0.0, *, mode="fan_in", rng=None, seed=None,
                    dtype=np.float32):
    """U(-b, b) with b = sqrt(3) * gain / sqrt(fan) (He et al.; gain sqrt(2) for ReLU)."""
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform", shape, nonlinearity, negative_slope, mode)
    return _uniform(_shape("kaiming_uniform", shape), bound, _generator("kaiming_uniform", rng, seed),
                    _dtype("kaiming_uniform", dtype))


def kaiming_normal(shape, nonlinearity="relu", negative_slope=0.0, *, mode="fan_in", rng=None, seed=None,
                   dtype=np.float32):
    """N(0, std^2) with std = gain / sqrt(fan) (He et al.; gain sqrt(2) for ReLU)."""
    std = _kaiming_std("kaiming_normal", shape, nonlinearity, negative_slope, mode)
    return _normal(_shape("kaiming_normal", shape), std, _generator("kaiming_normal", rng, seed),
                   _dtype("kaiming_normal", dtype))
