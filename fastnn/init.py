"""Weight initialization (torch.nn.init's schemes) for fastnn's layouts.

Fans: linear weights (D_in, D_out) have fan_in = shape[0], fan_out = shape[1] (fastnn's
x @ w layout, the transpose of PyTorch's); conv weights (F, C, KH, KW) have fan_in = C*KH*KW and
fan_out = F*KH*KW. Every function takes `rng=` (a numpy Generator) or `seed=` (an int), and
`dtype=` (float32 by default).
"""
from __future__ import annotations

import math
from typing import Literal

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


def fans(shape: int | tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear or conv weight, in fastnn's layouts.

    Parameters
    ----------
    shape : tuple of int
        A linear weight (D_in, D_out) (fastnn's ``x @ w`` layout: the TRANSPOSE of torch's
        (out_features, in_features)), or a conv weight (F, C, KH, ...).

    Returns
    -------
    fan_in, fan_out : int
        (D_in, D_out) for a linear weight; (C * KH * KW, F * KH * KW) for a conv weight.

    Raises
    ------
    ValueError
        Fewer than 2 dimensions, or sizes that are not non-negative integers.

    Examples
    --------
    >>> from fastnn import init
    >>> init.fans((784, 100))          # linear: (in, out)
    (784, 100)
    >>> init.fans((16, 3, 5, 5))       # conv: (out channels, in channels, KH, KW)
    (75, 400)
    """
    shape = _shape("fans", shape)
    if len(shape) < 2:
        raise ValueError(f"fans: shape must have at least 2 dimensions (linear or conv weight), got {shape}")
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, negative_slope: float = 0.0) -> float:
    """The std multiplier that keeps activations' scale through `nonlinearity` (torch.nn.init.calculate_gain).

    Parameters
    ----------
    nonlinearity : {"linear", "identity", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"}
    negative_slope : float, default 0.0
        For "relu" and "leaky_relu": sqrt(2 / (1 + negative_slope**2)). Unlike torch, "leaky_relu"
        takes 0.0 by default (torch's 0.01 must be passed).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        An unknown nonlinearity, or a slope that is not finite.

    Examples
    --------
    >>> from fastnn import init
    >>> round(init.calculate_gain("relu"), 4)
    1.4142
    """
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


def normal(shape: int | tuple[int, ...], std: float = 0.01, *, rng: np.random.Generator | None = None,
           seed: int | None = None, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Draws from N(0, std^2) (cs231n's ``weight_scale * np.random.randn(...)`` init).

    Parameters
    ----------
    shape : int or tuple of int
    std : float, default 0.01
        >= 0.
    rng : numpy.random.Generator, optional
        The generator to draw from (advanced by the call).
    seed : int, optional
        Seeds a new generator (give `rng` or `seed`, not both; neither: fresh OS entropy).
    dtype : {float32, float64}, default float32

    Returns
    -------
    ndarray
        `shape`, `dtype`.

    Raises
    ------
    ValueError
        A shape with negative or non-integer sizes, a negative std, or both `rng` and `seed`.
    TypeError
        `rng` is not a numpy Generator, or `dtype` is not float32 or float64.

    Examples
    --------
    >>> from fastnn import init
    >>> w = init.normal((3, 4), std=0.1, seed=0)
    >>> w.shape, w.dtype
    ((3, 4), dtype('float32'))
    """
    std = real("normal", "std", std, minimum=0.0)
    return _normal(_shape("normal", shape), std, _generator("normal", rng, seed), _dtype("normal", dtype))


def xavier_uniform(shape: tuple[int, ...], gain: float = 1.0, *, rng: np.random.Generator | None = None,
                   seed: int | None = None, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Glorot & Bengio's uniform init: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of int
        A linear weight (D_in, D_out) or a conv weight (F, C, KH, KW); see `fans`.
    gain : float, default 1.0
        See `calculate_gain`.
    rng : numpy.random.Generator, optional
        The generator to draw from (advanced by the call).
    seed : int, optional
        Seeds a new generator (give `rng` or `seed`, not both; neither: fresh OS entropy).
    dtype : {float32, float64}, default float32

    Returns
    -------
    ndarray
        `shape`, `dtype`.

    Raises
    ------
    ValueError
        A shape with negative or non-integer sizes or fewer than 2 dimensions, or both `rng` and `seed`.
    TypeError
        `rng` is not a numpy Generator, or `dtype` is not float32 or float64.
    """
    fan_in, fan_out = fans(shape)
    bound = real("xavier_uniform", "gain", gain) * math.sqrt(6.0 / max(1, fan_in + fan_out))
    return _uniform(_shape("xavier_uniform", shape), bound, _generator("xavier_uniform", rng, seed),
                    _dtype("xavier_uniform", dtype))


def xavier_normal(shape: tuple[int, ...], gain: float = 1.0, *, rng: np.random.Generator | None = None,
                  seed: int | None = None, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Glorot & Bengio's normal init: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).

    Parameters
    ----------
    shape : tuple of int
        A linear weight (D_in, D_out) or a conv weight (F, C, KH, KW); see `fans`.
    gain : float, default 1.0
        See `calculate_gain`.
    rng : numpy.random.Generator, optional
        The generator to draw from (advanced by the call).
    seed : int, optional
        Seeds a new generator (give `rng` or `seed`, not both; neither: fresh OS entropy).
    dtype : {float32, float64}, default float32

    Returns
    -------
    ndarray
        `shape`, `dtype`.

    Raises
    ------
    ValueError
        A shape with negative or non-integer sizes or fewer than 2 dimensions, or both `rng` and `seed`.
    TypeError
        `rng` is not a numpy Generator, or `dtype` is not float32 or float64.
    """
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


def kaiming_uniform(shape: tuple[int, ...], nonlinearity: str = "relu", negative_slope: float = 0.0, *,
                    mode: Literal["fan_in", "fan_out"] = "fan_in", rng: np.random.Generator | None = None,
                    seed: int | None = None, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """He et al.'s uniform init: U(-b, b) with b = sqrt(3) * gain / sqrt(fan) (gain sqrt(2) for ReLU).

    Parameters
    ----------
    shape : tuple of int
        A linear weight (D_in, D_out) (the transpose of torch's layout: fan_in is shape[0]) or a
        conv weight (F, C, KH, KW); see `fans`.
    nonlinearity : str, default "relu"
        The activation after the layer; see `calculate_gain`.
    negative_slope : float, default 0.0
        The leaky ReLU's slope (torch.nn.init's default for kaiming_* is 0 as well).
    mode : {"fan_in", "fan_out"}, default "fan_in"
        "fan_in" keeps the forward's variance, "fan_out" the backward's.
    rng : numpy.random.Generator, optional
        The generator to draw from (advanced by the call).
    seed : int, optional
        Seeds a new generator (give `rng` or `seed`, not both; neither: fresh OS entropy).
    dtype : {float32, float64}, default float32

    Returns
    -------
    ndarray
        `shape`, `dtype`.

    Raises
    ------
    ValueError
        A shape with negative or non-integer sizes, fewer than 2 dimensions, an unknown mode or
        nonlinearity, or both `rng` and `seed`.
    TypeError
        `rng` is not a numpy Generator, or `dtype` is not float32 or float64.
    """
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform", shape, nonlinearity, negative_slope, mode)
    return _uniform(_shape("kaiming_uniform", shape), bound, _generator("kaiming_uniform", rng, seed),
                    _dtype("kaiming_uniform", dtype))


def kaiming_normal(shape: tuple[int, ...], nonlinearity: str = "relu", negative_slope: float = 0.0, *,
                   mode: Literal["fan_in", "fan_out"] = "fan_in", rng: np.random.Generator | None = None,
                   seed: int | None = None, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """He et al.'s normal init: N(0, std^2) with std = gain / sqrt(fan) (gain sqrt(2) for ReLU).

    The default of `fastnn.nn.Linear` and `fastnn.nn.Conv2d`.

    Parameters
    ----------
    shape : tuple of int
        A linear weight (D_in, D_out) (the transpose of torch's layout: fan_in is shape[0]) or a
        conv weight (F, C, KH, KW); see `fans`.
    nonlinearity : str, default "relu"
        The activation after the layer; see `calculate_gain`.
    negative_slope : float, default 0.0
        The leaky ReLU's slope.
    mode : {"fan_in", "fan_out"}, default "fan_in"
        "fan_in" keeps the forward's variance, "fan_out" the backward's.
    rng : numpy.random.Generator, optional
        The generator to draw from (advanced by the call).
    seed : int, optional
        Seeds a new generator (give `rng` or `seed`, not both; neither: fresh OS entropy).
    dtype : {float32, float64}, default float32

    Returns
    -------
    ndarray
        `shape`, `dtype`.

    Raises
    ------
    ValueError
        A shape with negative or non-integer sizes, fewer than 2 dimensions, an unknown mode or
        nonlinearity, or both `rng` and `seed`.
    TypeError
        `rng` is not a numpy Generator, or `dtype` is not float32 or float64.

    Examples
    --------
    >>> from fastnn import init
    >>> w = init.kaiming_normal((4096, 256), seed=0)    # a Linear(4096, 256) weight
    >>> round(float(w.std()) * 64, 1)                  # sqrt(2 / fan_in) = sqrt(2) / 64
    1.4
    """
    std = _kaiming_std("kaiming_normal", shape, nonlinearity, negative_slope, mode)
    return _normal(_shape("kaiming_normal", shape), std, _generator("kaiming_normal", rng, seed),
                   _dtype("kaiming_normal", dtype))
