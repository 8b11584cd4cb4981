"""Numba batch-norm kernels.

x is viewed as (N, C, S), S = H*W (1 for (N, D) inputs). Each direction makes two passes over the
data: per-channel sums (float64, per-task partials merged serially), then one elementwise pass.
  forward:  sums of (x - k) and (x - k)^2, k = x[0, c, 0] (shifted sums keep float32 exact), then
            y = (x - mean) * gamma * invstd + beta            (relu'd for batch_norm_relu)
  backward: sums of dz and dz * (x - k), k = mean rounded to x's dtype (corrected to x - mean in
            float64; dz = dy, zeroed where y <= 0 after a relu), then
            dx = dz * p + (x - mean) * q + r                  (p, q, r per channel)
The elementwise pass runs in x's dtype, about the mean rounded to it (x - k is exact near the mean).
Wide planes (S >= PLANE_MIN) are reduced per (sample chunk, channel) along the contiguous plane;
narrower inputs as an (N, C*S) matrix by column blocks, vectorized along the row, in x's dtype over
RUN rows at a time.

Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, training[, momentum, eps],
n_threads; the dispatcher sets Numba's thread count to n_threads, which also sizes the row split.
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH_SUMS, PARALLEL, SERIAL

_SUMS = dict(PARALLEL, fastmath=FASTMATH_SUMS)  # the statistics: reductions, reassociated
# The elementwise pass (PARALLEL: no reassoc) must not rewrite (x - k) * q as x * q - k * q: x - k
# is exact, the products not.

# Planes at least this long are reduced with scalar accumulators; below, columns of the (N, C*S)
# matrix with vector accumulators (a 7x7 plane would waste most of each vector).
PLANE_MIN = 64
# Columns per task of the statistics of the matrix path: their accumulator rows stay in L1.
COLUMN_BLOCK = 1024
# Rows summed per column in x's dtype (float32 runs at full vector width) before adding into float64:
# the rounding error stays ~RUN ulps of the run's magnitude.
RUN = 32
# Columns per task of the elementwise pass of the matrix path: the coefficient rows stay in L1.
APPLY_BLOCK = 1024


@njit(**SERIAL)
def _row_chunks(n_rows, n_tasks, threads):
    """Split the rows too when the other tasks cannot keep the threads busy (4 tasks per thread)."""
    wanted = 4 * threads
    if n_tasks >= wanted or n_tasks == 0:
        return 1
    return max(1, min(n_rows, (wanted + n_tasks - 1) // n_tasks))


@njit(**_SUMS)
def _plane_sums(threads, a, a_center, x, x_center, y, masked):
    """Per channel: sum of u and of u * (x - x_center), u = a - a_center (0 where masked and y <= 0)."""
    n, channels, size = x.shape
    chunks = _row_chunks(n, channels, threads)
    rows = (n + chunks - 1) // chunks
    partial1 = np.zeros((chunks, channels))
    partial2 = np.zeros((chunks, channels))
    for task in prange(chunks * channels):
        chunk = task // channels
        c = task % channels
        ac, xc = float(a_center[c]), float(x_center[c])  # scalar float64 sums vectorize; float32 runs did not
        s1 = 0.0
        s2 = 0.0
        for i in range(chunk * rows, min(n, chunk * rows + rows)):
            ai, xi, yi = a[i, c], x[i, c], y[i, c]  # plane slices: the loop vectorizes
            for s in range(size):
                u = ai[s] - ac
                if masked and yi[s] <= 0:
                    u = 0.0
                s1 += u
                s2 += u * (xi[s] - xc)
        partial1[chunk, c] = s1
        partial2[chunk, c] = s2
    return partial1.sum(axis=0), partial2.sum(axis=0)


@njit(**_SUMS)
def _column_sums(threads, a, a_center, x, x_center, y, masked):
    """_plane_sums for (N, M) matrices: one sum per column, in x's dtype over RUN rows at a time."""
    n, cols = x.shape
    blocks = (cols + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    chunks = _row_chunks(n, blocks, threads)
    rows = (n + chunks - 1) // chunks
    partial1 = np.zeros((chunks, cols))
    partial2 = np.zeros((chunks, cols))
    for task in prange(chunks * blocks):
        chunk = task // blocks
        block = task % blocks
        j0 = block * COLUMN_BLOCK
        j1 = min(cols, j0 + COLUMN_BLOCK)
        s1, s2 = partial1[chunk, j0:j1], partial2[chunk, j0:j1]
        ac, xc = a_center[j0:j1], x_center[j0:j1]
        t1, t2 = np.empty(j1 - j0, a_center.dtype), np.empty(j1 - j0, a_center.dtype)
        i0, i1 = chunk * rows, min(n, chunk * rows + rows)
        for r0 in range(i0, i1, RUN):
            r1 = min(i1, r0 + RUN)
            t1[:] = 0
            t2[:] = 0
            for i in range(r0, r1, 2):  # two rows per pass over the accumulators
                last = min(i + 1, r1 - 1)  # an odd last row pairs with itself, counted once
                paired = last > i
                ai, xi, yi = a[i, j0:j1], x[i, j0:j1], y[i, j0:j1]  # row slices: the loop vectorizes
                bi, wi, zi = a[last, j0:j1], x[last, j0:j1], y[last, j0:j1]
                for j in range(j1 - j0):
                    u = ai[j] - ac[j]
                    if masked and yi[j] <= 0:
                        u = ac[j] - ac[j]
                    v = bi[j] - ac[j]
                    w = wi[j] - xc[j]
                    if not paired:  # both factors 0: 0 * (x - xc) would be NaN for an infinite x
                        v = ac[j] - ac[j]
                        w = v
                    elif masked and zi[j] <= 0:
                        v = ac[j] - ac[j]
                    t1[j] += u + v
                    t2[j] += u * (xi[j] - xc[j]) + v * w
            for j in range(j1 - j0):
                s1[j] += t1[j]
                s2[j] += t2[j]
    return partial1.sum(axis=0), partial2.sum(axis=0)


@njit(**SERIAL)
def _channel_sums(threads, a, a_center, x, x_center, y, masked):
    n, channels, size = x.shape
    if size >= PLANE_MIN or n == 0:
        return _plane_sums(threads, a, a_center, x, x_center, y, masked)
    cols = channels * size
    s1, s2 = _column_sums(threads, a.reshape((n, cols)), np.repeat(a_center, size), x.reshape((n, cols)),
                          np.repeat(x_center, size), y.reshape((n, cols)), masked)
    return s1.reshape((channels, size)).sum(axis=1), s2.reshape((channels, size)).sum(axis=1)


@njit(**PARALLEL)
def _plane_apply(threads, a, x, y, masked, p, k, q, r, relu, with_x, out):
    """out = u * p + (x - k) * q + r per channel (u = a, 0 where masked and y <= 0; no u term when p
    is empty; no x term unless with_x: eval's backward is dz * p whatever x is, inf included),
    relu'd if asked. In x's dtype: k is x's mean rounded to it, so x - k stays exact."""
    n, channels, size = x.shape
    chunks = _row_chunks(n, channels, threads)
    rows = (n + chunks - 1) // chunks
    with_a = p.size > 0
    for task in prange(chunks * channels):
        chunk = task // channels
        c = task % channels
        kc, qc, rc = k[c], q[c], r[c]
        pc = p[c] if with_a else kc - kc
        zero = kc - kc
        for i in range(chunk * rows, min(n, chunk * rows + rows)):
            ai, xi, yi, oi = a[i, c], x[i, c], y[i, c], out[i, c]
            if not with_x:  # its own loop: a with_x branch inside the one below measured ~10% slower
                for s in range(size):
                    u = ai[s]
                    oi[s] = (zero if masked and yi[s] <= 0 else u) * pc + rc
                continue
            for s in range(size):
                v = (xi[s] - kc) * qc + rc
                if with_a:
                    u = ai[s]
                    if masked and yi[s] <= 0:
                        u = zero
                    v += u * pc
                if relu and v <= 0:
                    v = zero
                oi[s] = v


@njit(**PARALLEL)
def _column_apply(threads, a, x, y, masked, p, k, q, r, relu, with_x, out):
    """_plane_apply for (N, M) matrices, by blocks of APPLY_BLOCK columns (their coefficients stay in L1)."""
    n, cols = x.shape
    blocks = (cols + APPLY_BLOCK - 1) // APPLY_BLOCK
    chunks = _row_chunks(n, blocks, threads)
    rows = (n + chunks - 1) // chunks
    with_a = p.size > 0
    for task in prange(chunks * blocks):
        chunk = task // blocks
        block = task % blocks
        j0 = block * APPLY_BLOCK
        j1 = min(cols, j0 + APPLY_BLOCK)
        kb, qb, rb = k[j0:j1], q[j0:j1], r[j0:j1]
        pb = p[j0:j1] if with_a else kb
        for i in range(chunk * rows, min(n, chunk * rows + rows)):
            ai, xi, yi, oi = a[i, j0:j1], x[i, j0:j1], y[i, j0:j1], out[i, j0:j1]
            if not with_x:  # its own loop, as in _plane_apply
                for j in range(j1 - j0):
                    u = ai[j]
                    oi[j] = (kb[j] - kb[j] if masked and yi[j] <= 0 else u) * pb[j] + rb[j]
                continue
            for j in range(j1 - j0):
                v = (xi[j] - kb[j]) * qb[j] + rb[j]
                if with_a:
                    u = ai[j]
                    if masked and yi[j] <= 0:
                        u = kb[j] - kb[j]
                    v += u * pb[j]
                if relu and v <= 0:
                    v = kb[j] - kb[j]
                oi[j] = v


@njit(**SERIAL)
def _channel_apply(threads, a, x, y, masked, p, k, q, r, relu, with_x, out):
    """out = u * p + (x - k) * q + r, the float64 coefficients rounded to x's dtype (p empty: no u term).

    k is rounded, (k - round(k)) * q folded into r: x - round(k) is exact near the mean."""
    n, channels, size = x.shape
    dtype = x.dtype
    k_near = k.astype(dtype)
    r = (r - (k - k_near.astype(np.float64)) * q).astype(dtype)
    p, q = p.astype(dtype), q.astype(dtype)
    if size >= PLANE_MIN or n == 0:
        _plane_apply(threads, a, x, y, masked, p, k_near, q, r, relu, with_x, out)
        return
    cols = channels * size
    _column_apply(threads, a.reshape((n, cols)), x.reshape((n, cols)), y.reshape((n, cols)), masked,
                  np.repeat(p, size), np.repeat(k_near, size), np.repeat(q, size),
                  np.repeat(r, size), relu, with_x, out.reshape((n, cols)))


@njit(**SERIAL)
def _batch_norm(threads, x, weight, bias, mean, var, running_mean, running_var, training, momentum, eps, relu, out,
                save_mean, save_invstd):
    """Training fills mean/var (float64) from x and updates the running stats (when not empty)."""
    n, channels, size = x.shape
    if training:
        center = np.empty(channels, x.dtype)
        for c in range(channels):  # a non-finite first value would make every x - center NaN
            first = x[0, c, 0]
            center[c] = first if np.isfinite(first) else 0
        s1, s2 = _channel_sums(threads, x, center, x, center, x, False)
        count = n * size
        for c in range(channels):
            shift = s1[c] / count
            mean[c] = center[c] + shift
            var[c] = max(s2[c] / count - shift * shift, 0.0)
        if running_mean.size:
            unbiased = count / (count - 1) if count > 1 else 1.0
            for c in range(channels):
                running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c]
                running_var[c] = (1 - momentum) * running_var[c] + momentum * var[c] * unbiased
    invstd = 1 / np.sqrt(var + eps)
    _channel_apply(threads, x, x, x, False, np.empty(0), mean, weight * invstd, bias, relu, True, out)
    save_mean[:] = mean
    save_invstd[:] = invstd


@njit(**SERIAL)
def _batch_norm_backward(threads, dy, x, y, masked, weight, mean, invstd, training, dx, dweight, dbias):
    n, channels, size = x.shape
    center = mean.astype(x.dtype)
    s1, s2 = _channel_sums(threads, dy, np.zeros(channels, x.dtype), x, center, y, masked)
    s2 -= (mean - center.astype(np.float64)) * s1  # the sums of dz * (x - center) -> dz * (x - mean)
    scale = weight * invstd
    if training:
        count = n * size
        q = -scale * invstd * invstd * s2 / count
        r = -scale * s1 / count
    else:
        q = np.zeros(channels)
        r = np.zeros(channels)
    _channel_apply(threads, dy, x, y, masked, scale, mean, q, r, False, training, dx)
    dbias[:] = s1
    dweight[:] = s2 * invstd


def _planes(a):
    """a as (N, C, S), S = H*W (1 for (N, D))."""
    return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3] if a.ndim == 4 else 1)


def _affine(v, fill, channels):
    return np.full(channels, fill) if v is None else v.astype(np.float64)


def _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, relu,
             n_threads):
    channels = x.shape[1]
    if training:
        mean, var = np.empty(channels), np.empty(channels)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    if not training or running_mean is None:
        running_mean = running_var = np.empty(0, x.dtype)
    _batch_norm(n_threads, _planes(x), _affine(gamma, 1.0, channels), _affine(beta, 0.0, channels), mean, var,
                running_mean, running_var, training, momentum, eps, relu, _planes(y), save_mean, save_invstd)


def _backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    channels = x.shape[1]
    masked = y is not None
    _batch_norm_backward(n_threads, _planes(dy), _planes(x), _planes(y if masked else x), masked,
                         _affine(gamma, 1.0, channels), save_mean.astype(np.float64),
                         save_invstd.astype(np.float64), training, _planes(dx), dgamma, dbeta)


def batch_norm(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps,
               n_threads):
    _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, False,
             n_threads)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    _backward(dy, None, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps,
                    n_threads):
    _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, True,
             n_threads)


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    _backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads)
