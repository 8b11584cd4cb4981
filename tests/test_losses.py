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
    with pytest.raises(TypeError, match=f"{op}: labels must be integers"):
        fn(scores, np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[0, 3\]"):
        fn(scores, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        fn(scores, np.array([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"labels has shape \(3,\), expected \(4,\)"):
        fn(scores, np.array([0, 1, 2]))
    if op == "hinge_loss":
        with pytest.raises(ValueError, match="must be 2-d"):
            fn(scores[0], np.array([0]))
    else:  # (C,) logits are one unbatched sample, as in torch
        with pytest.raises(ValueError, match=r"must be \(C,\), \(N, C\) or \(N, C, d1, ...\), got shape \(\)"):
            fn(scores[0, 0], np.array(0))
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


# --- softmax_cross_entropy: torch's cross_entropy options -------------------------------------------

def _torch_cross_entropy_cases(rng):
    """(logits, labels, kwargs), float64: every reduction x weight x label smoothing on class indices
    (some ignored, ignore_index a class, all ignored), (N, C, d1, d2), (C,), and probabilities
    ((N, C), (N, C, d), (C,))."""
    cases = []
    w = rng.uniform(0.5, 2.0, 5)
    y = rng.integers(0, 5, 7)
    y[[1, 5]] = -100
    for reduction in ("mean", "sum", "none"):
        for weight in (None, w):
            for smoothing in (0.0, 0.2):
                kw = dict(reduction=reduction, label_smoothing=smoothing, weight=weight)
                cases += [(rng.standard_normal((7, 5)) * 3, y, kw),
                          (rng.standard_normal((7, 5)) * 3, y % 5, dict(kw, ignore_index=2)),
                          (rng.standard_normal((3, 5)), np.full(3, -100), kw),
                          (rng.standard_normal((2, 5, 3, 4)), rng.integers(0, 5, (2, 3, 4)), kw),
                          (rng.standard_normal(5), np.int64(4), kw),
                          (rng.standard_normal((6, 5)), rng.dirichlet(np.ones(5), 6), kw),
                          (rng.standard_normal((2, 5, 3)), np.moveaxis(rng.dirichlet(np.ones(5), (2, 3)), -1, 1), kw),
                          (rng.standard_normal(5), rng.dirichlet(np.ones(5)), kw)]
    return cases


def _torch_cross_entropy(logits, labels, kwargs, upstream=None):
    """torch's loss and gradient (of the loss, or of sum(loss * upstream) for reduction "none")."""
    x = torch.tensor(logits, requires_grad=True)
    weight = None if kwargs.get("weight") is None else torch.tensor(kwargs["weight"])
    options = {k: v for k, v in kwargs.items() if k != "weight"}
    loss = F.cross_entropy(x, torch.tensor(labels), weight, **options)
    loss.backward(None if upstream is None else torch.tensor(upstream))
    return loss.detach().numpy(), x.grad.numpy()


@needs_torch
def test_cross_entropy_options_match_torch(backend, rng):
    """Forward and backward of every option against torch.nn.functional.cross_entropy (float64);
    for "none", per-sample upstream gradients g multiply dlogits along the classes (the docstring)."""
    for logits, labels, kwargs in _torch_cross_entropy_cases(rng):
        loss, dlogits = fastnn.softmax_cross_entropy(logits, labels, **kwargs)
        what = f"{logits.shape} {np.asarray(labels).dtype} {kwargs}"
        if kwargs["reduction"] == "none":
            g = rng.standard_normal(np.shape(loss))
            expected, expected_grad = _torch_cross_entropy(logits, labels, kwargs, g)
            assert type(loss) is np.ndarray and loss.shape == expected.shape and loss.dtype == np.float64, what
            grad = dlogits * (np.expand_dims(g, 1) if logits.ndim > 1 else g)
        else:
            expected, expected_grad = _torch_cross_entropy(logits, labels, kwargs)
            assert type(loss) is float, what
            grad = dlogits
        assert dlogits.shape == logits.shape and dlogits.dtype == logits.dtype, what
        np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14, err_msg=what)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14, err_msg=what)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_nonfinite_logits_match_torch(backend, dtype):
    """NaN and +inf make a row's softmax NaN: NaN loss and gradient, and a NaN gradient (loss 0) where
    the label is ignored (torch's log_softmax backward: 0 * NaN); a -inf logit is a zero probability
    (an infinite loss on its label; with probabilities 0 * inf is NaN, as torch)."""
    nan, inf = np.nan, np.inf
    logits = np.array([[nan, 1.0, 2.0], [1.0, nan, 0.0], [inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0],
                       [0.5, -0.5, 2.0], [-inf, -inf, -inf]], dtype)
    labels = np.array([0, -100, 1, 1, 0, 2, 1])
    probs = np.full(logits.shape, 1 / 3, dtype)
    weight = np.array([0.5, 0.0, 2.0], dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for target in (labels, probs):
        for kwargs in (dict(reduction="none"), dict(reduction="none", label_smoothing=0.1),
                       dict(reduction="none", weight=weight), dict(reduction="sum", weight=weight),
                       dict(reduction="mean", label_smoothing=0.3)):
            loss, dlogits = fastnn.softmax_cross_entropy(logits, target, **kwargs)
            expected, expected_grad = _torch_cross_entropy(logits, target, kwargs,
                                                           np.ones(7) if kwargs["reduction"] == "none" else None)
            what = f"{target.dtype} {kwargs}"
            np.testing.assert_allclose(loss, expected, rtol=rtol, err_msg=what)
            np.testing.assert_allclose(dlogits, expected_grad, rtol=rtol, atol=1e-7, err_msg=what)


def test_cross_entropy_defaults_are_the_plain_mean(backend, rng):
    """The keyword defaults change nothing: (softmax - onehot) / N and the mean of -log p[y]."""
    z, y = rng.standard_normal((9, 4)).astype(np.float32), rng.integers(0, 4, 9)
    loss, dz = fastnn.softmax_cross_entropy(z, y)
    again = fastnn.softmax_cross_entropy(z, y, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0)
    assert loss == again[0] and np.array_equal(dz, again[1])
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(9), y]).mean(), rtol=1e-6)
    np.testing.assert_allclose(dz, (p - np.eye(4)[y]) / 9, rtol=1e-5, atol=1e-8)


def test_cross_entropy_weight_layouts(backend, rng):
    """weight (a keyword, so not in the OpInfo variants) non-contiguous, read-only, a list."""
    z, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    w = rng.uniform(0.5, 2, 5)
    expected = fastnn.softmax_cross_entropy(z, y, weight=w, label_smoothing=0.1)
    strided = np.repeat(w, 2)[::2]
    readonly = w.copy()
    readonly.flags.writeable = False
    for weight in (strided, readonly, list(w)):
        loss, dz = fastnn.softmax_cross_entropy(z, y, weight=weight, label_smoothing=0.1)
        assert loss == expected[0] and np.array_equal(dz, expected[1])


def test_cross_entropy_option_errors(rng):
    fn = fastnn.softmax_cross_entropy
    z, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    probs = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"ignore_index \(1\) is not supported with class probabilities"):
        fn(z, probs, ignore_index=1)
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        fn(z, y, weight=np.ones(4))
    with pytest.raises(TypeError, match="weight is float32 but logits is float64"):
        fn(z, y, weight=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="labels is float32 but logits is float64"):
        fn(z, probs.astype(np.float32))
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum', got 'avg'"):
        fn(z, y, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be <= 1.0"):
        fn(z, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be >= 0.0"):
        fn(z, probs, label_smoothing=-0.1)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        fn(z, y, ignore_index=1.5)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*or equal ignore_index \(-100\): 3 is neither"):
        fn(z, np.array([0, 1, 3, -100]))
    with pytest.raises(ValueError, match=r"or equal ignore_index \(2\): -100 is neither"):
        fn(z, np.array([0, 1, 2, -100]), ignore_index=2)
    with pytest.raises(ValueError, match=r"labels has shape \(2, 3\), expected \(2, 4\)"):
        fn(rng.standard_normal((2, 3, 4)), np.zeros((2, 3), int))
    with pytest.raises(TypeError, match="labels must be integers .* or floats of logits' shape"):
        fn(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="logits has no classes"):
        fn(np.zeros((2, 0)), np.zeros(2, int), reduction="sum")
    with pytest.raises(ValueError, match="no samples"):
        fn(rng.standard_normal((2, 3, 0)), np.zeros((2, 0), int))
    with pytest.raises(TypeError):  # the options are keyword-only
        fn(z, y, None)


def test_cross_entropy_empty_batch_sum_and_none(backend):
    z, y = np.zeros((0, 3), np.float32), np.zeros(0, int)
    loss, dz = fastnn.softmax_cross_entropy(z, y, reduction="sum")
    assert loss == 0.0 and dz.shape == (0, 3) and dz.dtype == np.float32
    losses, dz = fastnn.softmax_cross_entropy(np.zeros((2, 3, 0)), np.zeros((2, 0), int), reduction="none")
    assert losses.shape == (2, 0) and dz.shape == (2, 3, 0)


def test_cross_entropy_uint8_labels_ignore_255(backend, rng):
    """Segmentation labels: uint8 with 255 ignored (ignore_index beyond the classes)."""
    z = rng.standard_normal((2, 4, 3, 3))
    y = rng.integers(0, 4, (2, 3, 3)).astype(np.uint8)
    y[0, 0] = 255
    loss, dz = fastnn.softmax_cross_entropy(z, y, ignore_index=255)
    kept = y.astype(int)
    kept[kept == 255] = -100
    expected = fastnn.softmax_cross_entropy(z, kept)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-12)
    np.testing.assert_allclose(dz, expected[1], rtol=1e-12, atol=1e-15)
    assert not dz[0, :, 0].any()
