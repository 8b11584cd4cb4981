"""Linear layer: errors, flattening, and PyTorch agreement."""
import numpy as np
import pytest

import fastnn
from conftest import F, needs_torch, torch


def test_errors(rng):
    x, w = rng.standard_normal((4, 6)), rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match=r"w has 5 input features \(w.shape\[0\]\), x has 6"):
        fastnn.linear(x, w[:5])
    with pytest.raises(ValueError, match="w must be 2-d"):
        fastnn.linear(x, w[:, 0])
    with pytest.raises(ValueError, match=r"x must be \(N, D_in\)"):
        fastnn.linear(x[0], w)
    with pytest.raises(ValueError, match=r"b has shape \(4,\), expected \(3,\)"):
        fastnn.linear(x, w, np.zeros(4))
    with pytest.raises(ValueError, match=r"dy has shape \(4, 2\), expected \(4, 3\)"):
        fastnn.linear_backward(np.zeros((4, 2)), x, w)
    with pytest.raises(TypeError, match="linear: b is float32"):
        fastnn.linear(x, w, np.zeros(3, np.float32))


def test_flattens_and_restores_shape(backend, rng):
    x = rng.standard_normal((3, 2, 4, 5))
    w, b = rng.standard_normal((40, 6)), rng.standard_normal(6)
    y = fastnn.linear(x, w, b)
    np.testing.assert_allclose(y, x.reshape(3, -1) @ w + b, rtol=1e-12)
    dy = rng.standard_normal((3, 6))
    dx, dw, db = fastnn.linear_backward(dy, x, w)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, (dy @ w.T).reshape(x.shape), rtol=1e-12)
    np.testing.assert_allclose(dw, x.reshape(3, -1).T @ dy, rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-12)


def test_one_thread_matches(backend, rng):
    x, w, b = rng.standard_normal((33, 70)).astype(np.float32), rng.standard_normal((70, 9)).astype(np.float32), None
    expected = fastnn.linear(x, w, b)
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        np.testing.assert_allclose(fastnn.linear(x, w, b), expected, rtol=1e-5, atol=1e-5)
    finally:
        fastnn.set_num_threads(previous)


@needs_torch
def test_matches_torch(backend, rng):
    x, w, b = rng.standard_normal((8, 2, 3, 3)), rng.standard_normal((18, 5)), rng.standard_normal(5)
    dy = rng.standard_normal((8, 5))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.linear(tx.reshape(8, -1), tw.T, tb)  # PyTorch's weight is (D_out, D_in)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(fastnn.linear(x, w, b), ty.detach().numpy(), rtol=1e-12)
    for ours, theirs in zip(fastnn.linear_backward(dy, x, w), (tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-14)
