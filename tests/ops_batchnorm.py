"""OpInfo entries: batch normalization (plain and fused with relu), forward and backward."""
import numpy as np

import fastnn
from opinfo import OpInfo, Sample, Terms, randn, register

# (shape, training, affine, running stats): odd sizes; the plane path (H*W >= 64: by channel where
# there are 4 a thread) and the column path (N, D) / small planes; few channels (rows split across
# threads); a batch of one; one value per channel (eval: training refuses it); empty batches (eval)
# and no channels.
CASES = [
    ((3, 5, 7, 9), True, True, True),
    ((17, 6), True, True, True),
    ((2, 3, 101, 131), True, True, False),
    ((32, 64, 17, 19), True, True, True),
    ((4, 9, 8, 9), False, True, True),  # eval on the plane path, one channel a task (the Cython backend)
    ((300, 700), True, True, True),
    ((5, 4, 3, 3), True, False, True),
    ((1, 4, 9, 10), True, True, True),
    ((1, 3, 1, 1), False, True, True),
    ((6, 3, 2, 2), False, True, True),
    ((9, 5), False, False, True),
    ((0, 4), False, True, True),
    ((4, 0), True, True, True),
    # (N, C, L) and (N, C, D, H, W): statistics over all but axis 1 (BatchNorm1d's 3-d input, BatchNorm3d)
    ((4, 3, 17), True, True, True),
    ((8, 16, 70), True, True, False),  # L >= 64: the plane path
    ((5, 6, 1), True, False, True),
    ((2, 3, 4, 5, 6), True, True, True),
    ((3, 4, 2, 3, 11), False, True, True),
    ((1, 2, 3, 1, 5), True, False, True),
]


def _reference(op, *args, **kwargs):
    """The NumPy reference through the public function (it updates running stats in place)."""
    with fastnn.use_backend("numpy"), np.errstate(all="ignore"):
        return getattr(fastnn, op)(*args, **kwargs)


def _forward_samples(rng, dtype):
    out = []
    for shape, training, affine, running in CASES:
        channels = shape[1]
        x = randn(rng, shape, dtype, 2.0) + dtype(0.5)
        gamma, beta = (randn(rng, (channels,), dtype), randn(rng, (channels,), dtype)) if affine else (None, None)
        stats = (randn(rng, (channels,), dtype), rng.uniform(0.5, 2, channels).astype(dtype)) if running else (None, None)
        out.append(Sample((x, gamma, beta) + stats, {"training": training, "momentum": 0.3, "eps": 1e-3},
                          note=f"{shape} training={training} affine={affine} running={running}"))
    x = randn(rng, (5, 3), dtype)  # torch applies any momentum (its OpInfo samples: -1.2)
    stats = (randn(rng, (3,), dtype), rng.uniform(0.5, 2, 3).astype(dtype))
    out.append(Sample((x, None, None) + stats, {"training": True, "momentum": -1.2}, note="negative momentum"))
    # A constant channel normalizes to beta (no NaN); a large offset must not cost float32 precision.
    x = randn(rng, (8, 3, 9, 9), dtype)
    x[:, 1] = 5
    x[:, 2] += dtype(1000)
    c = x.shape[1]
    out.append(Sample((x, np.ones(c, dtype), np.zeros(c, dtype), np.zeros(c, dtype), np.ones(c, dtype)),
                      {"training": True}, note="constant channel and offset"))
    return out


def _backward_samples(forward, with_output):
    def samples(rng, dtype):
        out = []
        for s in _forward_samples(rng, dtype):
            x, gamma, beta, rm, rv = (a.copy() if isinstance(a, np.ndarray) else a for a in s.args)
            y, mean, invstd = _reference(forward, x, gamma, beta, rm, rv, **s.kwargs)
            dy = randn(rng, x.shape, dtype)
            head = (dy, y, x) if with_output else (dy, x)
            out.append(Sample(head + (gamma, mean, invstd), {"training": s.kwargs["training"]}, note=s.note))
        return out
    return samples


def _grad_samples(relu):
    def samples(rng):
        out = []
        for shape, training, affine in [((4, 3, 2, 3), True, True), ((5, 4), True, True),
                                        ((4, 3, 2, 3), False, True), ((6, 2), True, False),
                                        ((4, 3, 5), True, True), ((2, 3, 2, 2, 3), True, True),
                                        ((2, 3, 2, 2, 3), False, False)]:
            channels = shape[1]
            while True:  # keep relu's inputs off the kink
                x = rng.standard_normal(shape) * 2 + 1
                gamma, beta = (rng.uniform(0.5, 1.5, channels), rng.standard_normal(channels)) if affine else (None, None)
                stats = (rng.standard_normal(channels), rng.uniform(0.5, 2, channels))
                z = _reference("batch_norm", x, gamma, beta, *(v.copy() for v in stats), training=training)[0]
                if not relu or np.abs(z).min() > 0.05:
                    break
            out.append(Sample((x, gamma, beta) + stats, {"training": training}))
        return out
    return samples


# The error model. Statistics are sums over K = N*H*W values per channel: the mean errs by about
# u*sqrt(K)*mean|x| and the variance, a sum of squared deviations, by u*sqrt(K)*var (relative to
# var + eps: u*sqrt(K)*var/(var + eps)). Each reaches an output through its first-order sensitivity.

def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _channel(v, x):
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def _forward_terms(args, kwargs, exact):
    x, gamma, beta, running_mean, running_var = args
    training, momentum, eps = kwargs["training"], kwargs.get("momentum", 0.1), kwargs.get("eps", 1e-5)
    count = x.size // max(1, x.shape[1])
    g = 1.0 if gamma is None else _channel(np.abs(gamma), x)
    b = 0.0 if beta is None else _channel(np.abs(beta), x)
    if not training:
        invstd = _channel(1 / np.sqrt(running_var + eps), x)
        local = g * np.abs(x - _channel(running_mean, x)) * invstd + b
        return {0: Terms(local=local), 1: Terms(), 2: Terms()}
    mean, var = x.mean(axis=_axes(x)), x.var(axis=_axes(x))
    mean_abs = np.abs(x).mean(axis=_axes(x))
    invstd = 1 / np.sqrt(var + eps)
    relative_var = var / (var + eps)  # d(invstd)/invstd = relative_var / 2 per relative error of var
    deviation = np.abs(x - _channel(mean, x)) * _channel(invstd, x)
    y_total = g * (_channel(mean_abs * invstd, x) + deviation * _channel(relative_var / 2, x))
    terms = {0: Terms(count, y_total, g * deviation + b), 1: Terms(count, mean_abs),
             2: Terms(count, invstd * relative_var / 2)}
    if running_mean is not None:
        unbiased = var * count / (count - 1) if count > 1 else var
        m, keep = abs(momentum), abs(1 - momentum)  # torch's formula for any momentum (its OpInfo: -1.2)
        terms["arg3"] = Terms(count, m * mean_abs, keep * np.abs(running_mean) + m * mean_abs)
        terms["arg4"] = Terms(count, m * unbiased, keep * np.abs(running_var) + m * unbiased)
    return terms


def _backward_terms(relu):
    def terms(args, kwargs, exact):
        if relu:
            dy, y, x, gamma, mean, invstd = args
            dy = np.where(y <= 0, 0, dy)
        else:
            dy, x, gamma, mean, invstd = args
        count = x.size // max(1, x.shape[1])
        scale = _channel(np.abs(invstd) * (1.0 if gamma is None else np.abs(gamma)), x)
        xhat = np.abs((x - _channel(mean, x)) * _channel(invstd, x))
        if not kwargs["training"]:
            return {0: Terms(local=scale * np.abs(dy)), 1: Terms(count, np.abs(dy * xhat).sum(axis=_axes(x))),
                    2: Terms(count, np.abs(dy).sum(axis=_axes(x)))}
        sum_dy = np.abs(dy).sum(axis=_axes(x))
        sum_dy_xhat = np.abs(dy * xhat).sum(axis=_axes(x))
        dx_total = scale * (_channel(sum_dy, x) + xhat * _channel(sum_dy_xhat, x)) / max(1, count)
        dx_local = scale * (np.abs(dy) + dx_total)
        return {0: Terms(count, dx_total, dx_local), 1: Terms(count, sum_dy_xhat), 2: Terms(count, sum_dy)}
    return terms


register(OpInfo("batch_norm", _forward_samples, grad_samples=_grad_samples(False), supports_out=False,
                in_place=(3, 4), terms=_forward_terms, ulps=4.0))
register(OpInfo("batch_norm_backward", _backward_samples("batch_norm", False), supports_out=False,
                terms=_backward_terms(False), ulps=4.0))
register(OpInfo("batch_norm_relu", _forward_samples, grad_samples=_grad_samples(True), supports_out=False,
                in_place=(3, 4), terms=_forward_terms, ulps=4.0))
register(OpInfo("batch_norm_relu_backward", _backward_samples("batch_norm_relu", True), supports_out=False,
                terms=_backward_terms(True), ulps=4.0))
