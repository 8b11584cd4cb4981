"""fastnn.compat.cs231n against cs231n's reference formulas (written out here in NumPy):
outputs, caches/backwards via numerical gradients, bn_param/dropout/config conventions, lists."""
import numpy as np
import pytest

import fastnn
from fastnn.compat import cs231n
from fastnn.gradcheck import numerical_gradient, rel_error


# Tiny layers: one thread avoids waking a thread pool for microsecond kernels (hundreds of calls).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def _grads_match(forward, inputs, backward, dout_shape_of=None, tol=1e-7):
    """Numerical gradient of sum(forward(*inputs)[0] * dout) vs backward(dout, cache), per input."""
    out, cache = forward(*inputs)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    analytic = backward(dout, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    for i, grad in enumerate(analytic):
        numeric = numerical_gradient(lambda _: forward(*inputs)[0].copy(), inputs[i], df=dout)
        assert rel_error(grad.reshape(numeric.shape), numeric) < tol, (forward.__name__, i)


def test_affine_relu_and_losses(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, _ = cs231n.affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(4, 6) @ w + b, rtol=1e-12)
    _grads_match(cs231n.affine_forward, [x, w, b], cs231n.affine_backward)
    _grads_match(cs231n.affine_relu_forward, [x, w, b], cs231n.affine_relu_backward)
    out, _ = cs231n.relu_forward([[-1, 2], [3, -4]])  # lists of ints: float64
    assert out.dtype == np.float64 and out.tolist() == [[0, 2], [3, 0]]
    scores, y = rng.standard_normal((10, 4)), rng.integers(0, 4, 10)
    loss, dx = cs231n.softmax_loss(scores, y)
    shifted = scores - scores.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    assert loss == pytest.approx(-log_probs[np.arange(10), y].mean(), rel=1e-12)
    margins = np.maximum(0, scores - scores[np.arange(10), y][:, None] + 1)
    margins[np.arange(10), y] = 0
    assert cs231n.svm_loss(scores, y)[0] == pytest.approx(margins.sum() / 10, rel=1e-12)


def test_batchnorm_running_stats_follow_cs231n(rng):
    x = rng.standard_normal((50, 3)) * 4 + 10
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    bn_param = {"mode": "train"}
    out, _ = cs231n.batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * gamma + beta, rtol=1e-10)
    # momentum 0.9 on zero-initialized running stats, biased batch variance
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(0), rtol=1e-10)
    bn_param["mode"] = "test"
    out, _ = cs231n.batchnorm_forward(x, gamma, beta, bn_param)
    expected = (x - bn_param["running_mean"]) / np.sqrt(bn_param["running_var"] + 1e-5) * gamma + beta
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    _grads_match(lambda *a: cs231n.batchnorm_forward(*a, {"mode": "train"}), [rng.standard_normal((8, 3)), gamma, beta],
                 cs231n.batchnorm_backward_alt)
    with pytest.raises(ValueError, match="mode"):
        cs231n.batchnorm_forward(x, gamma, beta, {"mode": "eval"})
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):  # as torch
        cs231n.batchnorm_forward(x[:1], gamma, beta, {"mode": "train"})
    cs231n.batchnorm_forward(x[:1], gamma, beta, bn_param)  # test mode takes one sample


def test_layernorm_and_groupnorm_of_one_value_give_beta(rng):
    """A single value per sample (layer norm) or per group normalizes to 0, as in cs231n and
    torch's layer_norm (batch_norm's training form refuses one value per channel; these do not)."""
    x, gamma, beta = rng.standard_normal((4, 1)), rng.standard_normal(1), rng.standard_normal(1)
    out, cache = cs231n.layernorm_forward(x, gamma, beta, {})
    np.testing.assert_array_equal(out, np.broadcast_to(beta, x.shape))
    dx, dgamma, dbeta = cs231n.layernorm_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, 0, atol=1e-12)  # up to the rounding of dy - mean(dy) scaled by 1/sqrt(eps)
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, [4.0])
    x = rng.standard_normal((2, 3, 1, 1))
    g, b = rng.standard_normal((1, 3, 1, 1)), rng.standard_normal((1, 3, 1, 1))
    out, cache = cs231n.spatial_groupnorm_forward(x, g, b, 3, {})
    np.testing.assert_array_equal(out, np.broadcast_to(b, x.shape))
    np.testing.assert_allclose(cs231n.spatial_groupnorm_backward(np.ones_like(x), cache)[0], 0, atol=1e-12)


def test_spatial_batchnorm_layernorm_and_groupnorm(rng):
    x = rng.standard_normal((3, 4, 2, 3)) * 2 + 1
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out, _ = cs231n.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5) * gamma[:, None, None] + beta[:, None, None],
                               rtol=1e-10)
    _grads_match(lambda *a: cs231n.spatial_batchnorm_forward(*a, {"mode": "train"}), [x, gamma, beta],
                 cs231n.spatial_batchnorm_backward)

    x2 = rng.standard_normal((5, 6)) * 3
    g2, b2 = rng.standard_normal(6), rng.standard_normal(6)
    out, _ = cs231n.layernorm_forward(x2, g2, b2, {})
    m2, v2 = x2.mean(1, keepdims=True), x2.var(1, keepdims=True)
    np.testing.assert_allclose(out, (x2 - m2) / np.sqrt(v2 + 1e-5) * g2 + b2, rtol=1e-10)
    _grads_match(lambda *a: cs231n.layernorm_forward(*a, {}), [x2, g2, b2], cs231n.layernorm_backward)

    g4, b4 = rng.standard_normal((1, 4, 1, 1)), rng.standard_normal((1, 4, 1, 1))
    out, _ = cs231n.spatial_groupnorm_forward(x, g4, b4, 2, {})
    grouped = x.reshape(3, 2, -1)
    normalized = ((grouped - grouped.mean(2, keepdims=True)) / np.sqrt(grouped.var(2, keepdims=True) + 1e-5))
    np.testing.assert_allclose(out, normalized.reshape(x.shape) * g4 + b4, rtol=1e-10)
    _grads_match(lambda *a: cs231n.spatial_groupnorm_forward(*a, 2, {}), [x, g4, b4],
                 cs231n.spatial_groupnorm_backward)


def test_conv_and_pool_naive_and_fast(rng):
    x, w, b = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    conv_param = {"stride": 2, "pad": 1}
    out, _ = cs231n.conv_forward_naive(x, w, b, conv_param)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 4, 3, 3))
    for i in range(3):
        for j in range(3):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(cs231n.conv_forward_fast(x, w, b, conv_param)[0], out)
    _grads_match(lambda *a: cs231n.conv_forward_fast(*a, conv_param), [x, w, b], cs231n.conv_backward_fast)
    pool_param = {"pool_height": 2, "pool_width": 3, "stride": 2}
    out, _ = cs231n.max_pool_forward_naive(x, pool_param)
    expected = np.stack([np.stack([x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 3].max((2, 3)) for j in range(2)], -1)
                         for i in range(2)], -2)
    np.testing.assert_array_equal(out, expected)
    _grads_match(lambda a: cs231n.max_pool_forward_fast(a, pool_param), [x], cs231n.max_pool_backward_fast)
    _grads_match(lambda *a: cs231n.conv_relu_pool_forward(*a, conv_param, {"pool_height": 1, "pool_width": 1,
                                                                            "stride": 1}),
                 [x, w, b], cs231n.conv_relu_pool_backward)


def test_dropout_keeps_with_probability_p_and_scales(rng):
    x = np.ones((500, 400))
    out, cache = cs231n.dropout_forward(x, {"p": 0.3, "mode": "train", "seed": 123})
    kept = out != 0
    assert abs(kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(out[kept], 1 / 0.3)
    again, _ = cs231n.dropout_forward(x, {"p": 0.3, "mode": "train", "seed": 123})
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(cs231n.dropout_backward(np.ones_like(x), cache), out)
    test_out, test_cache = cs231n.dropout_forward(x, {"p": 0.3, "mode": "test"})
    np.testing.assert_array_equal(test_out, x)
    np.testing.assert_array_equal(cs231n.dropout_backward(x, test_cache), x)


def _cs231n_reference_rules():
    """cs231n's optim.py update rules, verbatim in spirit."""
    def sgd_momentum(w, dw, c):
        v = c["momentum"] * c.get("velocity", np.zeros_like(w)) - c["learning_rate"] * dw
        c["velocity"] = v
        return w + v

    def rmsprop(w, dw, c):
        c["cache"] = c["decay_rate"] * c.get("cache", np.zeros_like(w)) + (1 - c["decay_rate"]) * dw ** 2
        return w - c["learning_rate"] * dw / (np.sqrt(c["cache"]) + c["epsilon"])

    def adam(w, dw, c):
        c["t"] = c.get("t", 0) + 1
        c["m"] = c["beta1"] * c.get("m", 0) + (1 - c["beta1"]) * dw
        c["v"] = c["beta2"] * c.get("v", 0) + (1 - c["beta2"]) * dw ** 2
        mt, vt = c["m"] / (1 - c["beta1"] ** c["t"]), c["v"] / (1 - c["beta2"] ** c["t"])
        return w - c["learning_rate"] * mt / (np.sqrt(vt) + c["epsilon"])

    return {"sgd_momentum": (sgd_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
            "rmsprop": (rmsprop, {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
            "adam": (adam, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8})}


@pytest.mark.parametrize("rule", ["sgd_momentum", "rmsprop", "adam"])
def test_update_rules_match_cs231n_over_steps(rule, rng):
    reference, defaults = _cs231n_reference_rules()[rule]
    w0 = rng.standard_normal((4, 5))
    ours_w, ref_w, config, ref_config = w0.copy(), w0.copy(), None, dict(defaults)
    for step in range(20):
        dw = rng.standard_normal((4, 5))
        ours_w, config = getattr(cs231n, rule)(ours_w, dw, config)
        ref_w = reference(ref_w, dw, ref_config)
        if step == 9:  # a learning-rate decay between steps, as cs231n's Solver does
            config["learning_rate"] *= 0.5
            ref_config["learning_rate"] *= 0.5
    np.testing.assert_allclose(ours_w, ref_w, rtol=1e-10)
    assert all(config[k] == v for k, v in defaults.items() if k != "learning_rate")
    if rule == "sgd_momentum":
        np.testing.assert_allclose(config["velocity"], ref_config["velocity"], rtol=1e-10)


def test_sgd_is_in_place_and_lists_are_accepted():
    w = np.ones(3)
    next_w, config = cs231n.sgd(w, np.full(3, 2.0))
    assert next_w is w and config["learning_rate"] == 1e-2
    np.testing.assert_allclose(w, 0.98)
    next_w, _ = cs231n.sgd([1, 2, 3], [1, 1, 1], {"learning_rate": 1})
    assert next_w.dtype == np.float64 and next_w.tolist() == [0, 1, 2]
