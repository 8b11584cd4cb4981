"""Linear layer: errors, flattening, and PyTorch agreement."""
import numpy as np
import pytest

import fastnn
from conftest import F, needs_torch, torch
from opinfo import check_op


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


@pytest.mark.parametrize("n, d_in, d_out", [(33, 70, 9), (512, 1024, 640), (2048, 700, 40), (40, 3000, 700)])
def test_float32_within_the_rule(backend, threads, n, d_in, d_out, rng):
    """Small and GEMM-sized layers (above the 2^20 multiply-add cut-off: split by output columns,
    by batch rows, and for the backward by input features), forward and backward, 1 and 2 threads."""
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.standard_normal(d_out).astype(np.float32)
    dy = rng.standard_normal((n, d_out)).astype(np.float32)
    what = f"{backend} t{threads} {(n, d_in, d_out)}"
    check_op("linear", fastnn.linear(x, w, b), (x, w, b), {}, np.float32, what)
    check_op("linear_backward", fastnn.linear_backward(dy, x, w), (dy, x, w), {}, np.float32, what)


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
