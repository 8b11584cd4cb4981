"""Diagnostics on cases with known answers: units made dead on purpose, saturated tanh, the exact
log(C) initial loss of zero weights, update ratios, overfitting a tiny subset."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import diagnostics, nn, optim


# Tiny layers: one thread avoids waking a thread pool for microsecond kernels (hundreds of calls).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_dead_fraction_of_columns_and_channels():
    a = np.random.default_rng(0).standard_normal((20, 8))
    a[:, [1, 5, 6]] = -np.abs(a[:, [1, 5, 6]])
    assert diagnostics.dead_fraction(a) == 3 / 8
    a[3, 5] = 0.1  # alive for one sample
    assert diagnostics.dead_fraction(a) == 2 / 8
    images = np.ones((4, 5, 3, 3))
    images[:, 2] = 0.0
    assert diagnostics.dead_fraction(images) == 1 / 5
    with pytest.raises(ValueError, match="dead_fraction"):
        diagnostics.dead_fraction(np.ones(3))


def test_activation_stats_finds_the_layer_made_dead_and_the_saturated_tanh():
    first = nn.Linear(10, 6, seed=0, dtype=np.float64)
    first.params["bias"][:2] = -1e3  # two units that never fire
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(6, 4, init=1e4, seed=1, dtype=np.float64), nn.Tanh(),
                          nn.BatchNorm1d(4, dtype=np.float64))
    x = np.random.default_rng(0).standard_normal((50, 10))
    stats = diagnostics.activation_stats(model, x)
    assert [s["name"] for s in stats] == ["0.Linear", "1.ReLU", "2.Linear", "3.Tanh", "4.BatchNorm1d"]
    assert stats[1]["dead"] == 2 / 6 and stats[1]["zero"] >= 2 / 6
    hidden = np.maximum(x @ first.params["weight"] + first.params["bias"], 0)
    pre_tanh = hidden @ model[2].params["weight"] + model[2].params["bias"]
    assert stats[3]["saturated"] == np.mean(np.abs(np.tanh(pre_tanh)) > 0.99) > 0.5
    assert stats[1]["saturated"] is None
    assert abs(stats[4]["mean"]) < 1e-9  # batch-normalized
    np.testing.assert_array_equal(model[4].running_mean, 0)  # running stats left untouched
    assert "1.ReLU" in diagnostics.format_stats(stats)


def test_initial_loss_of_uniform_scores_is_exactly_log_num_classes():
    model = nn.Sequential(nn.Linear(7, 16, seed=0), nn.ReLU(), nn.Linear(16, 10, init=0.0))
    x = np.random.default_rng(0).standard_normal((32, 7)).astype(np.float32)
    y = np.arange(32) % 10
    result = diagnostics.check_initial_loss(model, x, y)
    assert result["expected"] == math.log(10)
    assert abs(result["loss"] - math.log(10)) < 1e-6
    assert abs(result["ratio"] - 1) < 1e-6


def test_update_ratios():
    before = {"w": np.full(4, 2.0), "b": np.zeros(3), "c": np.zeros(2)}
    after = {"w": np.full(4, 2.002), "b": np.zeros(3), "c": np.ones(2)}
    ratios = diagnostics.update_ratios(before, after)
    assert ratios["w"] == pytest.approx(1e-3) and ratios["b"] == 0.0 and ratios["c"] == math.inf


def test_overfit_small_reaches_full_train_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 12)).astype(np.float32)
    y = rng.integers(0, 5, 20)  # random labels: only memorization fits them
    model = nn.Sequential(nn.Linear(12, 64, seed=0), nn.ReLU(), nn.Linear(64, 5, seed=1))
    assert diagnostics.overfit_small(model, x, y, optim.Adam(lr=0.01), steps=200) == 1.0
    assert model.training
