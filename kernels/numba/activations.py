"""Numba activation kernels: parallel loops over the flattened (C-contiguous) arrays.

float32 exp, expm1, tanh and the normal CDF are vectorizable polynomial approximations (llvmlite
has no SVML, so math.exp & co. would run one element at a time); float64 uses libm through
`math`. Each dtype-neutral formula lives once in a small per-element helper; the helpers that
differ by dtype dispatch at compile time through `overload`.

No serial variant below a size cut-off: a parallel launch costs ~1 us more than a serial loop on
the OpenMP layer (float32 relu, 2 threads, 1e3 to 3e4 elements: 1.1-1.6 us parallel vs 0.2-1.2 us
serial; from 1e5 elements parallel wins), below the Python dispatch cost of a call.
"""
import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

_OPTS = dict(parallel=True, cache=True, nogil=True)
# No nnan/ninf (NaN and inf must propagate) and no reassoc (it could merge the two-step ln 2
# reduction in exp and reorder the polynomials whose error was measured); contract lets LLVM fuse
# multiply-adds.
_FAST = {"nsz", "contract"}
# Reductions: reassoc lets LLVM vectorize the running sums.
_FAST_SUM = _FAST | {"reassoc"}


def _output(x, out):
    return np.empty_like(x) if out is None else out


# --- dtype-dispatched scalar primitives -------------------------------------------------------

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


@njit(inline="always", nogil=True)
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


@njit(inline="always", nogil=True)
def _exp_f32(x):
    s, p = _exp_parts_f32(x)
    return s + s * p


@njit(inline="always", nogil=True)
def _expm1_f32(x):
    s, p = _exp_parts_f32(x)
    return (s - np.float32(1.0)) + s * p


@njit(inline="always", nogil=True)
def _tanh_f32(x):
    """tanh |x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): no cancellation near 0, 1 at infinity."""
    e = _expm1_f32(np.float32(-2.0) * abs(x))
    return math.copysign(-e / (np.float32(2.0) + e), x)


@njit(inline="always", nogil=True)
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


# --- per-element formulas (the reference's, branch for branch) --------------------------------

@njit(inline="always", nogil=True)
def _sigmoid_value(x):
    z = _exp(-abs(x))
    r = _as(x, 1.0) / (_as(x, 1.0) + z)
    return r if x >= 0 else z * r


@njit(inline="always", nogil=True)
def _elu_value(x, alpha):
    return x if x > 0 else alpha * _expm1(x)


@njit(inline="always", nogil=True)
def _elu_grad(dy, x, alpha):
    return dy * alpha * _exp(x) if x <= 0 else dy


@njit(inline="always", nogil=True)
def _gelu_grad(dy, x):
    cdf, pdf = _normal_cdf_pdf(x)
    return dy * (cdf + x * pdf)


@njit(inline="always", nogil=True)
def _silu_grad(dy, x):
    s = _sigmoid_value(x)
    return dy * s * (_as(x, 1.0) + x * (_as(x, 1.0) - s))


# --- elementwise loops ------------------------------------------------------------------------

@njit(**_OPTS)
def _relu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v


def relu(x, out=None):
    y = _output(x, out)
    _relu(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS)
def _relu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = 0 if x[i] <= 0 else dy[i]


def relu_backward(dy, x, out=None):
    dx = _output(x, out)
    _relu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx


@njit(**_OPTS)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


def leaky_relu(x, negative_slope=0.01, out=None):
    y = _output(x, out)
    _leaky_relu(x.reshape(-1), x.dtype.type(negative_slope), y.reshape(-1))
    return y


@njit(**_OPTS)
def _leaky_relu_backward(dy, x, slope, dx):
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0 else dy[i] * slope


def leaky_relu_backward(dy, x, negative_slope=0.01, out=None):
    dx = _output(x, out)
    _leaky_relu_backward(dy.reshape(-1), x.reshape(-1), x.dtype.type(negative_slope), dx.reshape(-1))
    return dx


@njit(**_OPTS, fastmath=_FAST)
def _elu(x, alpha, y):
    for i in prange(x.size):
        y[i] = _elu_value(x[i], alpha)


def elu(x, alpha=1.0, out=None):
    y = _output(x, out)
    _elu(x.reshape(-1), x.dtype.type(alpha), y.reshape(-1))
    return y


@njit(**_OPTS, fastmath=_FAST)
def _elu_backward(dy, x, alpha, dx):
    for i in prange(x.size):
        dx[i] = _elu_grad(dy[i], x[i], alpha)


def elu_backward(dy, x, alpha=1.0, out=None):
    dx = _output(x, out)
    _elu_backward(dy.reshape(-1), x.reshape(-1), x.dtype.type(alpha), dx.reshape(-1))
    return dx


@njit(**_OPTS, fastmath=_FAST)
def _sigmoid(x, y):
    for i in prange(x.size):
        y[i] = _sigmoid_value(x[i])


def sigmoid(x, out=None):
    y = _output(x, out)
    _sigmoid(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS, fastmath=_FAST)
def _sigmoid_backward(dy, y, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * y[i] * (_as(y[i], 1.0) - y[i])


def sigmoid_backward(dy, y, out=None):
    dx = _output(y, out)
    _sigmoid_backward(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


@njit(**_OPTS, fastmath=_FAST)
def _tanh_kernel(x, y):
    for i in prange(x.size):
        y[i] = _tanh(x[i])


def tanh(x, out=None):
    y = _output(x, out)
    _tanh_kernel(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS, fastmath=_FAST)
def _tanh_backward(dy, y, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * (_as(y[i], 1.0) - y[i] * y[i])


def tanh_backward(dy, y, out=None):
    dx = _output(y, out)
    _tanh_backward(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


@njit(**_OPTS, fastmath=_FAST)
def _gelu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _normal_cdf_pdf(v)[0]


def gelu(x, out=None):
    y = _output(x, out)
    _gelu(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS, fastmath=_FAST)
def _gelu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = _gelu_grad(dy[i], x[i])


def gelu_backward(dy, x, out=None):
    dx = _output(x, out)
    _gelu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx


@njit(**_OPTS, fastmath=_FAST)
def _silu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _sigmoid_value(v)


def silu(x, out=None):
    y = _output(x, out)
    _silu(x.reshape(-1), y.reshape(-1))
    return y


@njit(**_OPTS, fastmath=_FAST)
def _silu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = _silu_grad(dy[i], x[i])


def silu_backward(dy, x, out=None):
    dx = _output(x, out)
    _silu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))
    return dx


# --- prelu: a per channel (axis 1) or one scalar --------------------------------------------
# Inner loops run over slices from index 0: with an index LLVM cannot prove non-negative, Numba's
# negative-index wraparound turns the loads into gathers (float32 prelu, 1 thread: 1.5 ms with
# range(start, stop) vs 0.14 ms over slices).

def _channel_layout(x, a):
    """(channels, inner): x read as rows of `inner` elements, row r in channel r % channels."""
    if a.ndim == 0:
        return 1, max(x.size, 1)
    return x.shape[1], int(np.prod(x.shape[2:]))


def _num_chunks(n):
    """One static chunk per thread (numba.get_num_threads() inside a kernel defeats caching)."""
    return min(numba.get_num_threads(), n)


@njit(inline="always", nogil=True)
def _chunk(c, nchunks, n):
    return c * n // nchunks, (c + 1) * n // nchunks


@njit(**_OPTS)
def _prelu(x, a, y, channels, inner, nchunks):
    for c in prange(nchunks):  # static chunks of elements: balanced whatever rows and inner are
        i, stop = _chunk(c, nchunks, x.size)
        while i < stop:  # the chunk's pieces of consecutive rows
            row = i // inner
            end = min(stop, (row + 1) * inner)
            w = a[row % channels]
            xs, ys = x[i:end], y[i:end]
            for j in range(xs.size):
                v = xs[j]
                ys[j] = v if v > 0 else w * v
            i = end


def prelu(x, a, out=None):
    y = _output(x, out)
    channels, inner = _channel_layout(x, a)
    _prelu(x.reshape(-1), a.reshape(-1), y.reshape(-1), channels, inner, _num_chunks(x.size))
    return y


@njit(fastmath=_FAST_SUM, cache=True, nogil=True)
def _prelu_segment_backward(dy, x, w, dx):
    """dx of one channel segment; returns its share of da (float64 sum).

    A separate function: inlined into the prange body, the loop did not vectorize (float32,
    1 thread, (32, 64, 32, 32): 2.55 ms inlined vs 0.30 ms as a call per segment).
    """
    total = 0.0
    for j in range(x.size):
        v, g = x[j], dy[j]
        positive = v > 0
        dx[j] = g if positive else w * g
        total += 0.0 if positive else v * g
    return total


@njit(**_OPTS, fastmath=_FAST_SUM)
def _prelu_backward(dy, x, a, dx, channels, inner, nchunks):
    partial = np.zeros((nchunks, channels))  # float64 per-chunk sums of da: no shared writes
    for c in prange(nchunks):
        i, stop = _chunk(c, nchunks, x.size)
        while i < stop:
            row = i // inner
            end = min(stop, (row + 1) * inner)
            channel = row % channels
            w = a[channel]
            partial[c, channel] += _prelu_segment_backward(dy[i:end], x[i:end], w, dx[i:end])
            i = end
    da = np.zeros(channels, a.dtype)
    for c in range(nchunks):
        for channel in range(channels):
            da[channel] += partial[c, channel]
    return da


def prelu_backward(dy, x, a):
    dx = np.empty_like(x)
    channels, inner = _channel_layout(x, a)
    da = _prelu_backward(dy.reshape(-1), x.reshape(-1), a.reshape(-1), dx.reshape(-1), channels, inner,
                         _num_chunks(x.size))
    return dx, da.reshape(a.shape)


# --- maxout: pieces along `axis`, x read as (outer * units, pieces, inner) ----------------------

def _maxout_layout(x, pieces, axis):
    """(rows, inner): rows = outer * units groups of `pieces` slabs of `inner` elements."""
    inner = int(np.prod(x.shape[axis + 1:]))
    return x.size // (pieces * inner) if x.size else 0, inner


@njit(inline="always", nogil=True)
def _takes_over(v, best):
    """v replaces the running maximum: strictly greater, or the first NaN (np.max/argmax)."""
    return best == best and not v <= best


@njit(**_OPTS)
def _maxout(x, y, rows, pieces, inner):
    for r in prange(rows):
        ys = y[r * inner:(r + 1) * inner]
        ys[:] = x[r * pieces * inner:(r * pieces + 1) * inner]
        for j in range(1, pieces):
            xs = x[(r * pieces + j) * inner:(r * pieces + j + 1) * inner]
            for k in range(inner):
                if _takes_over(xs[k], ys[k]):
                    ys[k] = xs[k]


def maxout(x, pieces, axis=1, out=None):
    shape = x.shape[:axis] + (x.shape[axis] // pieces,) + x.shape[axis + 1:]
    y = np.empty(shape, x.dtype) if out is None else out
    rows, inner = _maxout_layout(x, pieces, axis)
    _maxout(x.reshape(-1), y.reshape(-1), rows, pieces, inner)
    return y


@njit(**_OPTS)
def _maxout_backward(dy, x, dx, rows, pieces, inner, nchunks):
    for c in prange(nchunks):
        best = np.empty(inner, x.dtype)  # per-chunk scratch, reused row after row
        winner = np.empty(inner, np.intp)
        first, last = _chunk(c, nchunks, rows)
        for r in range(first, last):
            best[:] = x[r * pieces * inner:(r * pieces + 1) * inner]
            winner[:] = 0
            for j in range(1, pieces):
                xs = x[(r * pieces + j) * inner:(r * pieces + j + 1) * inner]
                for k in range(inner):
                    if _takes_over(xs[k], best[k]):
                        best[k] = xs[k]
                        winner[k] = j
            gs = dy[r * inner:(r + 1) * inner]
            for j in range(pieces):
                dxs = dx[(r * pieces + j) * inner:(r * pieces + j + 1) * inner]
                for k in range(inner):
                    dxs[k] = gs[k] if winner[k] == j else _as(gs[k], 0.0)


def maxout_backward(dy, x, pieces, axis=1, out=None):
    dx = _output(x, out)
    rows, inner = _maxout_layout(x, pieces, axis)
    _maxout_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), rows, pieces, inner, _num_chunks(rows))
    return dx
