"""OpInfo table: one entry per public op (samples, tolerances, gradient samples).

The generic tests in test_ops.py run every entry x backend x dtype x threads against the NumPy
reference, on these samples and their non-contiguous, negative-stride and read-only variants.
Families append their entries with `register(...)`; gradient samples are float64 and avoid kinks.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DTYPES = (np.float32, np.float64)


@dataclass
class Sample:
    args: tuple
    kwargs: dict = field(default_factory=dict)
    note: str = ""

    def __repr__(self):
        shapes = [getattr(a, "shape", a) for a in self.args]
        return f"Sample({self.note or shapes}, {self.kwargs})"


@dataclass
class OpInfo:
    name: str
    samples: Callable  # (rng, dtype) -> list[Sample]
    grad_samples: Callable = None  # (rng) -> list[Sample], float64, for forwards with a backward
    tol: dict = field(default_factory=lambda: {np.float32: (2e-6, 2e-6), np.float64: (1e-12, 1e-13)})
    grad_tol: float = 1e-7
    supports_out: bool = True
    special_values: bool = False  # samples include NaN / inf / huge values
    in_place: tuple = ()  # argument positions an op may update in place (running stats)


OPS = {}


def register(info):
    assert info.name not in OPS, info.name
    OPS[info.name] = info
    return info


# --- input helpers -------------------------------------------------------------------------

def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def away_from_zero(rng, shape, dtype, margin=0.1):
    """Normal samples with |x| >= margin (gradient checks stay off the kinks)."""
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < margin, np.sign(x + 1e-300) * margin + x, x)
    return x.astype(dtype)


def special(dtype):
    """NaN, infinities, zeros, huge and tiny values."""
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 1000.0, -1000.0, 88.0, -88.0,
              20.0, -20.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0]
    if dtype == np.float64:
        values += [710.0, -710.0, 1e300, -1e300]
    return np.array(values, dtype=dtype)


# --- variants applied to every sample --------------------------------------------------------

def noncontiguous(a):
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def negative_strides(a):
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    return a[::-1].copy()[::-1]


def readonly(a):
    if not isinstance(a, np.ndarray):
        return a
    a = a.copy()
    a.flags.writeable = False
    return a


VARIANTS = {"plain": lambda a: a, "noncontiguous": noncontiguous,
            "negative": negative_strides, "readonly": readonly}
