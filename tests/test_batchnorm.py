"""Batch normalization: errors, in-place running stats, out=, semantics, and PyTorch agreement."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED, F, needs_torch, torch
from opinfo import check_op


def _inputs(rng, shape, dtype=np.float64):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    return x, rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)


@pytest.mark.parametrize("op", ["batch_norm", "batch_norm_relu"])
def test_errors(op, rng):
    fn = getattr(fastnn, op)
    x, g, b = _inputs(rng, (4, 3, 2, 2))
    for bad in (x[0, 0, 0], x[None, None]):
        with pytest.raises(ValueError, match="x must be 2-d or 3-d or 4-d or 5-d"):
            fn(bad, g, b)
    with pytest.raises(TypeError, match=f"{op}: momentum must be a real number, got None"):
        fn(x, g, b, np.zeros(3), np.ones(3), momentum=None)
    with pytest.raises(ValueError, match=r"gamma has shape \(4,\), expected \(3,\)"):
        fn(x, np.ones(4), b)
    with pytest.raises(ValueError, match="gamma and beta"):
        fn(x, g, None)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        fn(x, g, b, np.zeros(3), None)
    with pytest.raises(ValueError, match="training=False .* required"):
        fn(x, g, b, training=False)
    with pytest.raises(TypeError, match="running_mean has dtype float32"):
        fn(x, g, b, np.zeros(3, np.float32), np.ones(3))
    with pytest.raises(TypeError, match="running_var must be a numpy.ndarray"):
        fn(x, g, b, np.zeros(3), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="running_mean must be a contiguous, writeable"):
        fn(x, g, b, np.zeros(6)[::2], np.ones(3))
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean must be a contiguous, writeable"):
        fn(x, g, b, frozen, np.ones(3))
    with pytest.raises(ValueError, match=r"running_var has shape \(2,\), expected \(3,\)"):
        fn(x, g, b, np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match="momentum must be finite"):
        fn(x, g, b, momentum=float("nan"))
    with pytest.raises(ValueError, match="eps must be > 0"):
        fn(x, g, b, eps=0)
    # as PyTorch: "Expected more than 1 value per channel when training"
    for few in (x[:0], x[:1, :, :1, :1], x[:1, :, 0, 0]):
        with pytest.raises(ValueError, match=rf"{op}: expected more than 1 value per channel when training, "
                                             rf"x has shape \({few.shape[0]}, 3"):
            fn(few, g, b)
    fn(x[:1, :, :1, :1], g, b, np.zeros(3), np.ones(3), training=False)  # eval takes a single value
    with pytest.raises(ValueError, match=op):
        fn(x, g, b, out=np.empty((4, 3, 2, 3)))
    with pytest.raises(TypeError, match=op):
        fn(x, g, b, out=np.empty(x.shape, np.float32))


@pytest.mark.parametrize("op", ["batch_norm_backward", "batch_norm_relu_backward"])
def test_backward_errors(op, rng):
    fn = getattr(fastnn, op)
    x, g, _ = _inputs(rng, (5, 4))
    head = (x, x) if op == "batch_norm_relu_backward" else (x,)
    with pytest.raises(ValueError, match="dy has shape"):
        fn(x[:3], *head, g, np.zeros(4), np.ones(4))
    with pytest.raises(TypeError, match=f"{op}: save_mean must be a float32 or float64 array, got None"):
        fn(x, *head, g, None, np.ones(4))
    with pytest.raises(ValueError, match=r"save_invstd has shape \(3,\), expected \(4,\)"):
        fn(x, *head, g, np.zeros(4), np.ones(3))
    with pytest.raises(TypeError, match="save_mean is float32"):
        fn(x, *head, g, np.zeros(4, np.float32), np.ones(4))


@pytest.mark.parametrize("backend_name", COMPILED)
@pytest.mark.parametrize("op", ["batch_norm", "batch_norm_relu"])
def test_out(op, backend_name, rng):
    x, g, b = _inputs(rng, (3, 4, 9, 8), np.float32)
    args, kwargs = (x, g, b, None, None), {"training": True}
    with fastnn.use_backend(backend_name):
        out = np.full(x.shape, 7, np.float32)
        result = getattr(fastnn, op)(*args, out=out)
        assert result[0] is out
        check_op(op, result, args, kwargs, np.float32, f"{op} out=")
        strided = np.zeros(x.shape[:-1] + (16,), np.float32)[..., ::2]
        result = getattr(fastnn, op)(*args, out=strided)
        assert result[0] is strided
        check_op(op, result, args, kwargs, np.float32, f"{op} strided out=")


@pytest.mark.parametrize("backend_name", COMPILED)
@pytest.mark.parametrize("shape", [(3, 4, 9), (2, 4, 3, 5, 6)])
def test_out_3d_and_5d(shape, backend_name, rng):
    """(N, C, L) and (N, C, D, H, W): out= written through the kernels' 4-d view, or copied into."""
    x, g, b = _inputs(rng, shape, np.float32)
    args, kwargs = (x, g, b, None, None), {"training": True}
    with fastnn.use_backend(backend_name):
        for out in (np.full(shape, 7, np.float32), np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]):
            result = fastnn.batch_norm(*args, out=out)
            assert result[0] is out
            check_op("batch_norm", result, args, kwargs, np.float32, f"batch_norm {shape} out=")
        with pytest.raises(ValueError, match=r"out has shape"):  # the kernels' 4-d view is not x's shape
            fastnn.batch_norm(*args, out=np.empty((shape[0], shape[1], int(np.prod(shape[2:])), 1), np.float32))


def test_running_stats_are_updated_in_place(backend, rng):
    x, g, b = _inputs(rng, (6, 3, 4, 5))
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    ids = id(rm), id(rv)
    fastnn.batch_norm(x, g, b, rm, rv, momentum=0.25)
    assert (id(rm), id(rv)) == ids
    n = 6 * 4 * 5
    np.testing.assert_allclose(rm, 0.75 * 0.5 + 0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 * 2.0 + 0.25 * x.var(axis=(0, 2, 3)) * n / (n - 1), rtol=1e-12)
    before = rm.copy(), rv.copy()
    fastnn.batch_norm(x, g, b, rm, rv, training=False)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_semantics(backend, rng):
    # eval normalizes with the running stats
    x, g, b = _inputs(rng, (7, 5))
    rm, rv = rng.standard_normal(5), rng.uniform(0.5, 2, 5)
    y, mean, invstd = fastnn.batch_norm(x, g, b, rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-3) * g + b, rtol=1e-12)
    np.testing.assert_array_equal(mean, rm)
    # training: zero mean and unit (biased) variance per channel, then the affine map
    x, g, b = _inputs(rng, (4, 3, 5, 6))
    y, mean, invstd = fastnn.batch_norm(x, None, None)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1 / (1 + 1e-5 / x.var(axis=(0, 2, 3))), rtol=1e-10)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-12)
    dx, dgamma, dbeta = fastnn.batch_norm_backward(np.ones_like(x), x, None, mean, invstd)
    assert dgamma is None and dbeta is None
    np.testing.assert_allclose(dx, 0, atol=1e-12)  # a constant dy does not change the normalized output
    # fused relu equals relu of batch_norm, and its backward the composition
    yr, _, _ = fastnn.batch_norm_relu(x, g, b)
    z, mean, invstd = fastnn.batch_norm(x, g, b)
    np.testing.assert_allclose(yr, np.maximum(z, 0), rtol=1e-12)
    dy = rng.standard_normal(x.shape)
    fused = fastnn.batch_norm_relu_backward(dy, yr, x, g, mean, invstd)
    composed = fastnn.batch_norm_backward(np.where(z > 0, dy, 0), x, g, mean, invstd)
    for a, e in zip(fused, composed):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_degenerate_channels(backend, rng):
    """Constant channels give beta and zero gradients, never NaN; one value per channel is refused
    in training (the batch variance needs two) but has a backward (dx = 0 at its own mean)."""
    x = np.full((1, 2, 1, 1), 3.0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fastnn.batch_norm(x, np.ones(2), np.array([0.5, -1.0]), np.zeros(2), np.ones(2))
    dx, dgamma, dbeta = fastnn.batch_norm_backward(np.array([2.0, -1.0]).reshape(x.shape), x, np.ones(2),
                                                   x.reshape(2), np.full(2, 1 / np.sqrt(1e-5)))
    np.testing.assert_allclose(dx, 0, atol=1e-12)  # up to the rounding of dy - mean(dy), scaled
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, [2.0, -1.0])
    x = np.ones((8, 3, 4, 4), np.float32) * np.float32(7.1)
    y, mean, invstd = fastnn.batch_norm(x, None, None)
    np.testing.assert_array_equal(y, 0)
    dx, _, _ = fastnn.batch_norm_backward(rng.standard_normal(x.shape).astype(np.float32), x, None, mean, invstd)
    assert np.isfinite(dx).all()


@pytest.mark.parametrize("shape", [(64, 3, 16, 16), (512, 37)])
def test_float32_statistics_keep_precision(backend, shape, rng):
    """A large offset (mean / std = 1e4) costs no float32 precision: the statistics are exact."""
    x = (rng.standard_normal(shape) * 0.1 + 1000).astype(np.float32)
    y, mean, invstd = fastnn.batch_norm(x, None, None)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=axes), rtol=1e-7)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x64.var(axis=axes) + 1e-5), rtol=1e-6)
    assert np.abs(y.astype(np.float64).mean(axis=axes)).max() < 1e-5


@needs_torch
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (9, 7), (5, 3, 7), (3, 4, 2, 3, 5)])
def test_matches_torch(backend, shape, training, relu, rng):
    x, g, b = _inputs(rng, shape)
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    dy = rng.standard_normal(shape)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = F.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=0.2, eps=1e-4)
    if relu:
        ty = torch.relu(ty)
    ty.backward(torch.tensor(dy))
    forward = fastnn.batch_norm_relu if relu else fastnn.batch_norm
    y, mean, invstd = forward(x, g, b, rm, rv, training=training, momentum=0.2, eps=1e-4)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)
    if relu:
        grads = fastnn.batch_norm_relu_backward(dy, y, x, g, mean, invstd, training=training)
    else:
        grads = fastnn.batch_norm_backward(dy, x, g, mean, invstd, training=training)
    for ours, theirs in zip(grads, (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(4, 3, 9, 9), (4, 3, 2, 3), (6, 5)])
def test_nonfinite_first_value(backend, shape, relu, rng):
    """A channel whose first value is +-inf has mean +-inf and variance NaN (the float64 reference's
    IEEE results, as torch's), not a NaN mean from sums shifted by that first value."""
    x = rng.standard_normal(shape)
    first = (0, slice(None)) + (0,) * (x.ndim - 2)
    x[first] = [np.inf, -np.inf, 1.0] + [1.0] * (shape[1] - 3)
    forward = fastnn.batch_norm_relu if relu else fastnn.batch_norm
    _, mean, invstd = forward(x, None, None)
    assert mean[0] == np.inf and mean[1] == -np.inf and np.isfinite(mean[2])
    assert np.isnan(invstd[:2]).all() and np.isfinite(invstd[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 9, 9), (4, 3, 2, 3), (6, 5)])
def test_eval_backward_does_not_read_x(backend, shape, dtype, rng):
    """Eval's batch norm is an affine map of x: dx = gamma * save_invstd * dy, finite where x is not."""
    x, g, _ = _inputs(rng, shape, dtype)
    x.flat[::7] = np.inf
    x.flat[3::7] = np.nan
    dy = rng.standard_normal(shape).astype(dtype)
    mean, invstd = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2, shape[1]).astype(dtype)
    channel = (1, -1) + (1,) * (x.ndim - 2)
    expected = g.reshape(channel) * invstd.reshape(channel) * dy
    y = rng.standard_normal(shape).astype(dtype)  # the fused backward's relu mask: y > 0
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    dx = fastnn.batch_norm_backward(dy, x, g, mean, invstd, training=False)[0]
    np.testing.assert_allclose(dx, expected, rtol=rtol)
    dx = fastnn.batch_norm_relu_backward(dy, y, x, g, mean, invstd, training=False)[0]
    np.testing.assert_allclose(dx, np.where(y > 0, expected, 0), rtol=rtol)


def test_reference_is_quiet_with_tiny_eps(rng):
    """A constant float32 channel with a tiny eps: save_invstd overflows float32 to inf, with no
    RuntimeWarning from the reference's casts (no warnings in normal use)."""
    import warnings

    x = np.full((4, 2, 3, 3), 2.0, np.float32)
    x[:, 1] = rng.standard_normal((4, 3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fastnn.use_backend("numpy"):
            _, _, invstd = fastnn.batch_norm(x, None, None, eps=1e-300)
    assert invstd[0] == np.inf


@pytest.mark.parametrize("backend", COMPILED)
def test_eval_backward_infinite_x_in_an_odd_last_row(backend):
    """(N, C) column sums pair rows; an odd last row pairs with itself and must add nothing: it
    added 0 * (inf - mean) = NaN to dgamma where the reference gives inf."""
    x = np.ones((3, 2), np.float32)
    x[2, 0] = np.inf
    dy = np.full((3, 2), 1.3, np.float32)
    args = (dy, x, np.array([0.6, 1.0], np.float32), np.zeros(2, np.float32), np.ones(2, np.float32))
    with fastnn.use_backend("numpy"):
        expected = fastnn.batch_norm_backward(*args, training=False)
    with fastnn.use_backend(backend):
        got = fastnn.batch_norm_backward(*args, training=False)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    assert np.isposinf(got[1][0])
