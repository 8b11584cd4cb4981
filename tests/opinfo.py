"""OpInfo table: one entry per public op (samples, error model, gradient samples), and the one
tolerance rule every comparison of a result with the reference uses.

The generic tests in test_ops.py run every entry x backend x dtype x threads against the NumPy
reference, on these samples and their non-contiguous, negative-stride and read-only variants.
Families append their entries with `register(...)`; gradient samples are float64 and avoid kinks.

The tolerance rule
------------------
A result is compared with the *exact* one: the NumPy reference run in float64 on the same inputs
(float32 inputs promoted), so the oracle's own rounding, and with it the BLAS kernel or summation
order the machine happens to use, never enters the comparison. An element passes when

    |actual - exact| <= u * (c * sqrt(K) * terms + ulps * local) + tiny / u

- u: the unit roundoff of the op's dtype (2**-24 for float32, 2**-53 for float64);
- K, terms: the length of the reduction that produced the element and the sum of the absolute
  values of its terms (conv forward K = C/groups*KH*KW, conv dw K = N*Ho*Wo, linear D_in or N,
  batch norm N*H*W). A length-K sum in any order errs by at most K*u*sum|terms| (Higham,
  Accuracy and Stability of Numerical Algorithms, sec. 3.1) and typically by sqrt(K)*u*sum|terms|
  (rounding errors of random sign); test_tolerance.py shows two summation orders inside the rule
  with 4x to spare;
- c = 8: the worst element of an unblocked sum of same-sign terms (variances, sums of squares)
  errs by about 2*u*sqrt(K)*sum|terms| (the largest of many random walks of that size), so c = 8
  keeps even such kernels 4x inside the rule (test_tolerance.py);
- local: the magnitude of the elementwise steps that produce the element (|exact| unless
  cancellation makes it larger), and ulps their rounding count (a few for the polynomial
  approximations of exp, tanh, erf);
- tiny: results below tiny/u (2**-102 in float32) may lose every digit to an intermediate that
  underflows past the smallest normal number (flushed subnormals).
Non-finite exact values must be matched exactly (NaN where NaN, the same infinity).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DTYPES = (np.float32, np.float64)
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}


@dataclass(frozen=True)
class Terms:
    """The error model of one output: the reduction behind each element (length K, sum of |terms|)
    and the magnitude of its elementwise steps (None: |exact|). Arrays broadcast to the output."""
    K: int = 0
    total: object = 0.0
    local: object = None


def allowed_error(dtype, exact, terms=None, ulps=2.0, c=8.0):
    """The rule (module docstring): the largest |actual - exact| allowed, elementwise."""
    terms = terms or Terms()
    exact = np.abs(np.asarray(exact, dtype=np.float64))
    local = exact if terms.local is None else np.abs(np.asarray(terms.local, dtype=np.float64))
    total = np.abs(np.asarray(terms.total, dtype=np.float64))
    # Magnitudes are sums of non-negative values, so a NaN in them is 0 * inf: a term that is 0.
    local, total = (np.where(np.isnan(a), 0.0, a) for a in (local, total))
    with np.errstate(invalid="ignore", over="ignore"):
        bound = ulps * local + c * np.sqrt(terms.K) * total
    u = UNIT_ROUNDOFF[np.dtype(dtype)]
    return u * bound + np.finfo(dtype).tiny / u


def assert_within(actual, exact, bound, what):
    """actual within bound of exact (the rule); non-finite exact values matched exactly."""
    actual = np.asarray(actual, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    assert actual.shape == exact.shape, f"{what}: shape {actual.shape}, expected {exact.shape}"
    finite = np.isfinite(exact)
    if not finite.all():
        np.testing.assert_array_equal(actual[~finite], exact[~finite], err_msg=f"{what}: non-finite values")
    bound = np.broadcast_to(bound, exact.shape)[finite]
    with np.errstate(invalid="ignore"):
        error = np.abs(actual[finite] - exact[finite])
    bad = ~(error <= bound)  # NaN where a finite value is expected fails too
    if bad.any():
        i = np.flatnonzero(bad)[0]
        worst = np.nanmax(error / bound) if np.isfinite(error).all() else np.inf
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements outside the tolerance rule (worst at "
            f"{worst:.3g}x the bound); first: actual {actual[finite][i]!r}, exact {exact[finite][i]!r}, "
            f"allowed error {bound[i]:.3g}")


def error_ratio(actual, exact, bound):
    """max |actual - exact| / bound over the finite exact elements (<= 1 passes the rule)."""
    exact = np.asarray(exact, dtype=np.float64)
    finite = np.isfinite(exact)
    if not finite.any():
        return 0.0
    error = np.abs(np.asarray(actual, dtype=np.float64)[finite] - exact[finite])
    return float(np.max(error / np.broadcast_to(bound, exact.shape)[finite]))


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
    # The error model (the rule in the module docstring): terms(args, kwargs, exact) -> {output index
    # or "arg<i>" of an in-place argument: Terms}, on the float64 inputs before the call and the exact
    # outputs; outputs not named get Terms() (elementwise, |exact|). ulps and c as in the rule.
    terms: Callable = None
    ulps: float = 2.0
    c: float = 8.0
    grad_tol: float = 1e-7
    supports_out: bool = True
    special_values: bool = False  # NaN/inf injected into the first samples' float inputs (test_ops)
    in_place: tuple = ()  # argument positions an op may update in place (running stats)


OPS = {}


def register(info):
    assert info.name not in OPS, info.name
    OPS[info.name] = info
    return info


# --- comparing with the exact result -------------------------------------------------------

def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def check_op(op, actual, args, kwargs, dtype, what):
    """The outputs `actual` of op(*args, **kwargs) within the rule of the exact ones."""
    exact, _, bounds = exact_and_bounds(op, args, kwargs, dtype)
    check_outputs(actual, exact, bounds, dtype, what)


def snapshot(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def promoted(args):
    """The same inputs in float64 (copies: the reference updates running stats in place)."""
    return [a.astype(np.float64) if isinstance(a, (np.ndarray, np.floating)) and a.dtype.kind == "f" else
            a.copy() if isinstance(a, np.ndarray) else a for a in args]


def exact_and_bounds(op, args, kwargs, dtype):
    """(exact outputs, float64 in-place arguments after the call, {output index or "arg<i>": allowed
    error}): the reference in float64 on the promoted inputs, and the rule's bounds for `dtype`."""
    import fastnn

    info = OPS[op]
    args = promoted(args)
    kwargs = dict(zip(kwargs, promoted(kwargs.values())))  # array options too (softmax_cross_entropy's weight)
    before = snapshot(args)
    with fastnn.use_backend("numpy"), np.errstate(all="ignore"):
        exact = as_tuple(getattr(fastnn, op)(*args, **kwargs))
    with np.errstate(all="ignore"):  # the error model of NaN/inf samples may hold NaN (unused)
        terms = info.terms(before, kwargs, exact) if info.terms else {}
    bounds = {}
    for i, e in enumerate(exact):
        if e is not None:
            bounds[i] = allowed_error(dtype, e, terms.get(i), info.ulps, info.c)
    for i in info.in_place:
        if isinstance(args[i], np.ndarray):
            bounds[f"arg{i}"] = allowed_error(dtype, args[i], terms.get(f"arg{i}"), info.ulps, info.c)
    return exact, args, bounds


def check_outputs(actual, exact, bounds, dtype, what):
    """Every output of a call within the rule of the exact one (None where None, floats as floats)."""
    actual = as_tuple(actual)
    assert len(actual) == len(exact), what
    for i, (a, e) in enumerate(zip(actual, exact)):
        if e is None:
            assert a is None, f"{what}: output {i} should be None"
            continue
        if type(e) is float:
            assert type(a) is float, f"{what}: output {i} should be a Python float, got {type(a)}"
        elif e.dtype.kind in "iu":  # indices (max pooling's): exactly the reference's, its dtype
            assert isinstance(a, np.ndarray) and a.dtype == e.dtype, f"{what}: output {i} is {a!r:.60}"
            np.testing.assert_array_equal(a, e, err_msg=f"{what}: output {i}")
            continue
        else:
            assert isinstance(a, np.ndarray), f"{what}: output {i} is {type(a)}"
            assert a.dtype == dtype, f"{what}: output {i} dtype {a.dtype}, expected {np.dtype(dtype)}"
        assert_within(a, e, bounds[i], f"{what}: output {i}")


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
