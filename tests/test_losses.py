"""Losses: label validation, stability, and PyTorch agreement."""
import numpy as np
import pytest

import fastnn
from conftest import F, needs_torch, torch

LOSSES = ["softmax_cross_entropy", "hinge_loss"]


@pytest.mark.parametrize("op", LOSSES)
def test_errors(op, rng):
    fn = getattr(fastnn, op)
    scores = rng.standard_normal((4, 3))
    with pytest.raises(TypeError, match=f"{op}: labels must be integers, got float64"):
        fn(scores, np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[0, 3\]"):
        fn(scores, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        fn(scores, np.array([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"labels has shape \(3,\), expected \(4,\)"):
        fn(scores, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="must be 2-d"):
        fn(scores[0], np.array([0]))
    with pytest.raises(ValueError, match="no samples"):
        fn(scores[:0], np.array([], int))


def test_margin_errors(rng):
    with pytest.raises(ValueError, match="hinge_loss: margin must be finite"):
        fastnn.hinge_loss(rng.standard_normal((2, 3)), np.array([0, 1]), margin=np.inf)
    with pytest.raises(TypeError, match="hinge_loss: margin must be a real number"):
        fastnn.hinge_loss(rng.standard_normal((2, 3)), np.array([0, 1]), margin=None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_stable_for_huge_logits(backend, dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4]], dtype)
    loss, dlogits = fastnn.softmax_cross_entropy(logits, np.array([1, 1]))
    # row 0: the true class is 2e4 below the max; row 1: softmax of (0, 1, 0)
    row1 = np.log(2 + np.e) - 1
    np.testing.assert_allclose(loss, (2e4 + row1) / 2, rtol=1e-6)
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-6)


def test_loss_is_python_float(backend, rng):
    for op in LOSSES:
        loss, grad = getattr(fastnn, op)(rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 3, 1]))
        assert type(loss) is float and grad.dtype == np.float32


def test_hinge_matches_cs231n(backend, rng):
    scores, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    # cs231n's svm_loss_naive
    loss, dscores = 0.0, np.zeros_like(scores)
    for i in range(6):
        for j in range(5):
            margin = scores[i, j] - scores[i, y[i]] + 1
            if j != y[i] and margin > 0:
                loss += margin
                dscores[i, j] += 1
                dscores[i, y[i]] -= 1
    ours = fastnn.hinge_loss(scores, y)
    np.testing.assert_allclose(ours[0], loss / 6, rtol=1e-12)
    np.testing.assert_allclose(ours[1], dscores / 6, rtol=1e-12)


@needs_torch
def test_matches_torch(backend, rng):
    scores, y = rng.standard_normal((7, 6)) * 3, rng.integers(0, 6, 7)
    for op, reference in [
        ("softmax_cross_entropy", lambda s, t: F.cross_entropy(s, t)),
        # multi_margin_loss averages over classes too: cs231n's SVM loss is C times it
        ("hinge_loss", lambda s, t: F.multi_margin_loss(s, t, margin=0.5) * s.shape[1]),
    ]:
        ts = torch.tensor(scores, requires_grad=True)
        expected = reference(ts, torch.tensor(y))
        expected.backward()
        kwargs = {"margin": 0.5} if op == "hinge_loss" else {}
        loss, grad = getattr(fastnn, op)(scores, y, **kwargs)
        np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
        np.testing.assert_allclose(grad, ts.grad.numpy(), rtol=1e-10, atol=1e-14)


def _hinge_nonfinite_case(dtype):
    """Scores with NaN and infinities, its labels, and the expected (loss, dscores) at margin 1 by
    torch's multi_margin_loss rule: a margin s_j - s_y + 1 that is NaN (NaN score, inf - inf) or
    not > 0 is no violation; an infinite one makes the loss infinite."""
    nan, inf = np.nan, np.inf
    scores = np.array([[nan, 1.0, 2.0],     # label 1: j=0 NaN (skipped), j=2 margin 2
                       [nan, 1.0, 2.0],     # label 0: every margin NaN, loss 0
                       [inf, inf, 0.0],     # label 1: j=0 inf - inf = NaN, j=2 -inf
                       [0.0, -inf, 0.5],    # label 0: j=1 -inf, j=2 1.5
                       [0.0, 0.3, 0.1]], dtype)  # label 2: j=0 0.9, j=1 1.2
    labels = np.array([1, 0, 1, 0, 2])
    violated = np.array([[0, -1, 1], [0, 0, 0], [0, 0, 0], [-1, 0, 1], [1, 1, -2]], dtype)
    total = 2.0 + 1.5 + (np.float64(dtype(0.0) - dtype(0.1) + dtype(1)) + (dtype(0.3) - dtype(0.1) + dtype(1)))
    return scores, labels, total / 5, violated / dtype(5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hinge_skips_nan_margins_in_every_backend(backend, dtype):
    """Bug: the reference's loss was NaN (np.maximum propagates) where the compiled kernels skip a
    NaN margin, as torch's multi_margin_loss does; now all three skip it."""
    scores, labels, loss, dscores = _hinge_nonfinite_case(dtype)
    ours = fastnn.hinge_loss(scores, labels)
    np.testing.assert_allclose(ours[0], loss, rtol=1e-6)
    np.testing.assert_array_equal(ours[1], dscores)
    with np.errstate(invalid="ignore"):
        inf_loss = fastnn.hinge_loss(np.array([[np.inf, 0.0]], dtype), np.array([1]))
    assert inf_loss[0] == np.inf and np.array_equal(inf_loss[1], np.array([[1, -1]], dtype))


@needs_torch
def test_hinge_nonfinite_matches_torch(backend):
    scores, labels, _, _ = _hinge_nonfinite_case(np.float64)
    ts = torch.tensor(scores, requires_grad=True)
    expected = F.multi_margin_loss(ts, torch.tensor(labels)) * scores.shape[1]
    expected.backward()
    loss, grad = fastnn.hinge_loss(scores, labels)
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, ts.grad.numpy(), rtol=1e-12)
