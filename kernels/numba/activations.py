"""Numba activation kernels: parallel loops over the flattened (C-contiguous) arrays.

Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, parameters, n_threads; the
dispatcher sets Numba's thread count to n_threads around the call, so the prange loops use it.
Each dtype-neutral formula lives once in a small per-element helper (kernels/numba/_math.py holds
the dtype-dispatched primitives and the float32 approximations of exp, expm1, tanh and Phi).
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH, FASTMATH_SUMS, PARALLEL, SERIAL, chunk
from ._math import _as, _exp, _expm1, _normal_cdf_pdf, _tanh

# --- per-element formulas (the reference's, branch for branch) --------------------------------

@njit(inline="always")
def _sigmoid_value(x):
    z = _exp(-abs(x))
    r = _as(x, 1.0) / (_as(x, 1.0) + z)
    return r if x >= 0 else z * r


@njit(inline="always")
def _elu_value(x, alpha):
    return x if x > 0 else alpha * _expm1(x)


@njit(inline="always")
def _elu_grad(dy, x, alpha):
    return dy * alpha * _exp(x) if x <= 0 else dy


@njit(inline="always")
def _gelu_grad(dy, x):
    cdf, pdf = _normal_cdf_pdf(x)
    return dy * (cdf + x * pdf)


# torch's tanh GELU: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), x^3 rounded as x * x * x
_GELU_BETA = 0.7978845608028654
_GELU_KAPPA = 0.044715
_GELU_X2_MAX = 1e30  # see the reference: x^2 capped where 1 - tanh^2 is 0 already


@njit(inline="always")
def _gelu_tanh_t(x, x2):
    return _tanh(_as(x, _GELU_BETA) * (x + _as(x, _GELU_KAPPA) * (x2 * x)))


@njit(inline="always")
def _gelu_tanh_value(x):
    return _as(x, 0.5) * x * (_as(x, 1.0) + _gelu_tanh_t(x, x * x))


@njit(inline="always")
def _gelu_tanh_grad(dy, x):
    x2 = x * x
    t = _gelu_tanh_t(x, x2)
    capped = _as(x, _GELU_X2_MAX) if x2 > _as(x, _GELU_X2_MAX) else x2  # NaN fails the test: kept
    slope = _as(x, _GELU_BETA) * (_as(x, 1.0) + _as(x, 3 * _GELU_KAPPA) * capped)
    return dy * (_as(x, 0.5) * (_as(x, 1.0) + t) + _as(x, 0.5) * x * (_as(x, 1.0) - t * t) * slope)


@njit(inline="always")
def _silu_grad(dy, x):
    s = _sigmoid_value(x)
    return dy * s * (_as(x, 1.0) + x * (_as(x, 1.0) - s))


# --- elementwise loops ------------------------------------------------------------------------

@njit(**PARALLEL)
def _relu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v


def relu(x, y, n_threads):
    _relu(x.reshape(-1), y.reshape(-1))


@njit(**PARALLEL)
def _relu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = 0 if x[i] <= 0 else dy[i]


def relu_backward(dy, x, dx, n_threads):
    _relu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))


@njit(**PARALLEL)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


def leaky_relu(x, y, negative_slope, n_threads):
    _leaky_relu(x.reshape(-1), x.dtype.type(negative_slope), y.reshape(-1))


@njit(**PARALLEL)
def _leaky_relu_backward(dy, x, slope, dx):
    for i in prange(x.size):
        dx[i] = dy[i] if x[i] > 0 else dy[i] * slope


def leaky_relu_backward(dy, x, dx, negative_slope, n_threads):
    _leaky_relu_backward(dy.reshape(-1), x.reshape(-1), x.dtype.type(negative_slope), dx.reshape(-1))


@njit(**PARALLEL)
def _elu(x, alpha, y):
    for i in prange(x.size):
        y[i] = _elu_value(x[i], alpha)


def elu(x, y, alpha, n_threads):
    _elu(x.reshape(-1), x.dtype.type(alpha), y.reshape(-1))


@njit(**PARALLEL)
def _elu_backward(dy, x, alpha, dx):
    for i in prange(x.size):
        dx[i] = _elu_grad(dy[i], x[i], alpha)


def elu_backward(dy, x, dx, alpha, n_threads):
    _elu_backward(dy.reshape(-1), x.reshape(-1), x.dtype.type(alpha), dx.reshape(-1))


@njit(**PARALLEL)
def _sigmoid(x, y):
    for i in prange(x.size):
        y[i] = _sigmoid_value(x[i])


def sigmoid(x, y, n_threads):
    _sigmoid(x.reshape(-1), y.reshape(-1))


@njit(**PARALLEL)
def _sigmoid_backward(dy, y, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * y[i] * (_as(y[i], 1.0) - y[i])


def sigmoid_backward(dy, y, dx, n_threads):
    _sigmoid_backward(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))


@njit(**PARALLEL)
def _tanh_kernel(x, y):
    for i in prange(x.size):
        y[i] = _tanh(x[i])


def tanh(x, y, n_threads):
    _tanh_kernel(x.reshape(-1), y.reshape(-1))


@njit(**PARALLEL)
def _tanh_backward(dy, y, dx):
    for i in prange(y.size):
        dx[i] = dy[i] * (_as(y[i], 1.0) - y[i] * y[i])


def tanh_backward(dy, y, dx, n_threads):
    _tanh_backward(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))


@njit(**PARALLEL)
def _gelu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _normal_cdf_pdf(v)[0]


@njit(**PARALLEL)
def _gelu_tanh(x, y):
    for i in prange(x.size):
        y[i] = _gelu_tanh_value(x[i])


def gelu(x, y, tanh_form, n_threads):
    (_gelu_tanh if tanh_form else _gelu)(x.reshape(-1), y.reshape(-1))


@njit(**PARALLEL)
def _gelu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = _gelu_grad(dy[i], x[i])


@njit(**PARALLEL)
def _gelu_tanh_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = _gelu_tanh_grad(dy[i], x[i])


def gelu_backward(dy, x, dx, tanh_form, n_threads):
    (_gelu_tanh_backward if tanh_form else _gelu_backward)(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))


@njit(**PARALLEL)
def _silu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _sigmoid_value(v)


def silu(x, y, n_threads):
    _silu(x.reshape(-1), y.reshape(-1))


@njit(**PARALLEL)
def _silu_backward(dy, x, dx):
    for i in prange(x.size):
        dx[i] = _silu_grad(dy[i], x[i])


def silu_backward(dy, x, dx, n_threads):
    _silu_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1))


# --- prelu: a per channel (axis 1) or one scalar --------------------------------------------
# Inner loops run over slices from index 0: with an index LLVM cannot prove non-negative, Numba's
# negative-index wraparound turns the loads into gathers (float32 prelu, 1 thread: 1.5 ms with
# range(start, stop) vs 0.14 ms over slices).

@njit(**PARALLEL)
def _prelu(x, a, y, channels, inner, nchunks):
    for c in prange(nchunks):  # static chunks of elements: balanced whatever rows and inner are
        i, stop = chunk(c, nchunks, x.size)
        while i < stop:  # the chunk's pieces of consecutive rows
            row = i // inner
            end = min(stop, (row + 1) * inner)
            w = a[row % channels]
            xs, ys = x[i:end], y[i:end]
            for j in range(xs.size):
                v = xs[j]
                ys[j] = v if v > 0 else w * v
            i = end


def _rows(channels, inner):
    """(channels, row length): x as rows of `inner` elements, row r in channel r % channels."""
    return channels, max(inner, 1)


def prelu(x, a, y, outer, channels, inner, n_threads):
    _prelu(x.reshape(-1), a, y.reshape(-1), *_rows(channels, inner), max(1, min(n_threads, x.size)))


@njit(**dict(SERIAL, fastmath=FASTMATH_SUMS))
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


@njit(**dict(PARALLEL, fastmath=FASTMATH_SUMS))
def _prelu_backward(dy, x, a, dx, channels, inner, nchunks):
    partial = np.zeros((nchunks, channels))  # float64 per-chunk sums of da: no shared writes
    for c in prange(nchunks):
        i, stop = chunk(c, nchunks, x.size)
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


def prelu_backward(dy, x, a, dx, da, outer, channels, inner, n_threads):
    da[:] = _prelu_backward(dy.reshape(-1), x.reshape(-1), a, dx.reshape(-1), *_rows(channels, inner),
                            max(1, min(n_threads, x.size)))


# --- maxout: x read as (groups, pieces, inner) -----------------------------------------------------

@njit(inline="always")
def _takes_over(v, best):
    """v replaces the running maximum: strictly greater, or the first NaN (np.max/argmax)."""
    return best == best and not v <= best


@njit(**PARALLEL)
def _maxout(x, y, rows, pieces, inner):
    for r in prange(rows):
        ys = y[r * inner:(r + 1) * inner]
        ys[:] = x[r * pieces * inner:(r * pieces + 1) * inner]
        for j in range(1, pieces):
            xs = x[(r * pieces + j) * inner:(r * pieces + j + 1) * inner]
            for k in range(inner):
                if _takes_over(xs[k], ys[k]):
                    ys[k] = xs[k]


def maxout(x, y, groups, pieces, inner, n_threads):
    _maxout(x.reshape(-1), y.reshape(-1), groups, pieces, inner)


@njit(**PARALLEL)
def _maxout_backward(dy, x, dx, rows, pieces, inner, nchunks):
    for c in prange(nchunks):
        best = np.empty(inner, x.dtype)  # per-chunk scratch, reused row after row
        winner = np.empty(inner, np.intp)
        first, last = chunk(c, nchunks, rows)
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


def maxout_backward(dy, x, dx, groups, pieces, inner, n_threads):
    _maxout_backward(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), groups, pieces, inner,
                     max(1, min(n_threads, groups)))
