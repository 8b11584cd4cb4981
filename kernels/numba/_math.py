"""Numeric helpers shared by the Numba kernels: dtype-dispatched scalar primitives and the
float32 polynomial approximations of exp, expm1, tanh and the normal CDF.

llvmlite has no SVML, so math.exp & co. would run one element at a time in float32; these
approximations vectorize. float64 uses libm through `math`. Helpers that differ by dtype dispatch at
compile time through `overload`.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

def _as(x, value):
    """`value` in x's float type (a Python float literal would promote float32 math to float64)."""


@overload(_as, inline="always")
def _as_impl(x, value):
    cast = np.float32 if x == types.float32 else np.float64
    return lambda x, value: cast(value)


@intrinsic
def _float32_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@intrinsic
def _bits_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


_EXP_MIN = np.float32(-87.33654)  # ln(2**-126): below it exp is flushed to 0 (no subnormals)
# 1.5 * 2**23 + 127: adding it rounds to an integer n and leaves n + 127 in the low mantissa bits
_ROUND_BIAS = np.float32(12583039.0)


@njit(inline="always")
def _exp_parts_f32(x):
    """(s, p) with exp(x) = s * (1 + p), s = 2**n, |p| < 0.42 (Cephes expf reduction), x <= 0.

    Accurate to ~1 ulp (exp) and ~1e-7 relative (expm1 = (s - 1) + s * p); 0 below ln(2**-126).
    Positive x give garbage (callers discard it). NaN propagates: the clamp keeps x when the
    comparison with NaN fails, and the NaN reaches p.
    """
    xc = _EXP_MIN if x < _EXP_MIN else x
    biased = xc * np.float32(1.4426950408889634) + _ROUND_BIAS  # needs fastmath without reassoc
    n = biased - _ROUND_BIAS
    r = xc - n * np.float32(0.693359375)  # ln 2 split in two: n * hi is exact
    r = r - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r
    # the shift moves n + 127 into the exponent field: no float->int conversion, NaN well defined
    s = _bits_float32(_float32_bits(biased) << 23)
    s = np.float32(0.0) if x < _EXP_MIN else s
    return s, p


@njit(inline="always")
def _exp_f32(x):
    s, p = _exp_parts_f32(x)
    return s + s * p


@njit(inline="always")
def _expm1_f32(x):
    s, p = _exp_parts_f32(x)
    return (s - np.float32(1.0)) + s * p


@njit(inline="always")
def _tanh_f32(x):
    """tanh |x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): no cancellation near 0, 1 at infinity."""
    e = _expm1_f32(np.float32(-2.0) * abs(x))
    return math.copysign(-e / (np.float32(2.0) + e), x)


@njit(inline="always")
def _normal_cdf_pdf_f32(x):
    """(Phi(x), phi(x)) to ~2e-7 relative.

    Phi(-|x|) = erfc(a) / 2 with a = |x| / sqrt 2 and erfc(a) = exp(-a*a) * t * Q(t),
    t = 1 / (1 + 0.45 a): a degree-9 fit of erfcx on a in [0, inf) (3.2e-8 relative in float64).
    Relative accuracy holds in both tails, unlike 1 + erf(x / sqrt 2).
    """
    a = abs(x) * np.float32(0.7071067811865476)
    e = _exp_f32(np.float32(-0.5) * (x * x))  # x * x rounds once: exp(-a * a) would twice
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.45) * a)
    q = np.float32(-0.04139101089787278)
    q = q * t + np.float32(0.1906874652014873)
    q = q * t + np.float32(-0.3005817256503461)
    q = q * t + np.float32(0.14240026213555795)
    q = q * t + np.float32(-0.02235756690042752)
    q = q * t + np.float32(0.11995032070808997)
    q = q * t + np.float32(0.17525214503163178)
    q = q * t + np.float32(0.2282716406963493)
    q = q * t + np.float32(0.25388316283155055)
    q = q * t + np.float32(0.2538853207515352)
    lower = np.float32(0.5) * e * (t * q)  # Phi(-|x|)
    cdf = lower if x < 0 else np.float32(1.0) - lower
    return cdf, np.float32(0.3989422804014327) * e


def _exp(x):
    """exp(x) for x <= 0 (the float32 version is wrong for x > 0: callers discard those)."""


def _expm1(x):
    """expm1(x) for x <= 0 (the float32 version is wrong for x > 0: callers discard those)."""


def _tanh(x):
    """tanh(x)."""


def _normal_cdf_pdf(x):
    """(Phi(x), phi(x)) of the standard normal."""


@overload(_exp, inline="always")
def _exp_impl(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@overload(_expm1, inline="always")
def _expm1_impl(x):
    if x == types.float32:
        return lambda x: _expm1_f32(x)
    return lambda x: math.expm1(x)


@overload(_tanh, inline="always")
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: math.tanh(x)


@overload(_normal_cdf_pdf, inline="always")
def _normal_cdf_pdf_impl(x):
    if x == types.float32:
        return lambda x: _normal_cdf_pdf_f32(x)

    def cdf_pdf(x):  # the reference's formula
        return (0.5 * (1.0 + math.erf(x * 0.7071067811865476)),
                0.3989422804014327 * math.exp(-0.5 * x * x))
    return cdf_pdf
