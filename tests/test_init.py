"""Weight init: fans, empirical spread of large draws, seeding, dtypes; He init keeps the
activation scale through a deep ReLU net where a 0.01 normal init collapses it."""
import math

import numpy as np
import pytest

from fastnn import init


def test_fans_of_linear_and_conv_weights():
    assert init.fans((300, 100)) == (300, 100)
    assert init.fans((16, 3, 5, 7)) == (3 * 35, 16 * 35)
    with pytest.raises(ValueError, match="shape"):
        init.fans((10,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empirical_std_of_large_draws(dtype):
    shape = (400, 600)  # fan_in 400, fan_out 600; 240k draws: std within ~0.3%
    expected = {
        "normal": 0.05,
        "xavier_uniform": 1.5 * math.sqrt(2.0 / 1000),  # U(-b, b) has std b / sqrt(3)
        "xavier_normal": 1.5 * math.sqrt(2.0 / 1000),
        "kaiming_uniform": math.sqrt(2.0 / 400),
        "kaiming_normal": math.sqrt(2.0 / 400),
    }
    draws = {
        "normal": init.normal(shape, 0.05, seed=0, dtype=dtype),
        "xavier_uniform": init.xavier_uniform(shape, gain=1.5, seed=1, dtype=dtype),
        "xavier_normal": init.xavier_normal(shape, gain=1.5, seed=2, dtype=dtype),
        "kaiming_uniform": init.kaiming_uniform(shape, seed=3, dtype=dtype),
        "kaiming_normal": init.kaiming_normal(shape, seed=4, dtype=dtype),
    }
    for name, w in draws.items():
        assert w.shape == shape and w.dtype == dtype, name
        assert abs(w.std() / expected[name] - 1) < 0.01, (name, w.std(), expected[name])
        assert abs(w.mean()) < 0.01 * expected[name] * 5, name
    bound = math.sqrt(3) * expected["kaiming_uniform"]
    assert np.abs(draws["kaiming_uniform"]).max() <= bound


def test_kaiming_conv_fan_mode_and_gains():
    w = init.kaiming_normal((64, 32, 3, 3), seed=0)
    assert abs(w.std() / math.sqrt(2.0 / (32 * 9)) - 1) < 0.02
    w = init.kaiming_normal((64, 32, 3, 3), mode="fan_out", seed=0)
    assert abs(w.std() / math.sqrt(2.0 / (64 * 9)) - 1) < 0.02
    w = init.kaiming_normal((1000, 500), nonlinearity="leaky_relu", negative_slope=0.2, seed=0)
    assert abs(w.std() / math.sqrt(2.0 / (1.04 * 1000)) - 1) < 0.01
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("linear") == 1.0


def test_seed_and_rng_reproduce():
    a = init.kaiming_normal((30, 20), seed=7)
    b = init.kaiming_normal((30, 20), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, init.kaiming_normal((30, 20), seed=8))
    rng = np.random.default_rng(0)
    assert not np.array_equal(init.normal(5, rng=rng), init.normal(5, rng=rng))  # the rng advances


def test_errors():
    with pytest.raises(ValueError, match="rng or seed"):
        init.normal((2, 2), rng=np.random.default_rng(0), seed=1)
    with pytest.raises(TypeError, match="dtype"):
        init.normal((2, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal((2, 2), nonlinearity="swishy")
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform((2, 2), mode="fan_avg")


def _activation_std_after_relu_layers(make_weight, depth=10, width=500):
    x = np.random.default_rng(0).standard_normal((200, width))
    for layer in range(depth):
        x = np.maximum(x @ make_weight((width, width), layer), 0)
    return x.std()


def test_he_init_keeps_relu_activation_scale_where_small_normal_collapses():
    he = _activation_std_after_relu_layers(lambda s, i: init.kaiming_normal(s, seed=i, dtype=np.float64))
    small = _activation_std_after_relu_layers(lambda s, i: init.normal(s, 0.01, seed=i, dtype=np.float64))
    # ReLU of a unit-variance input has std sqrt((1 - 1/pi) / 2) ~ 0.58; He keeps it O(1).
    assert 0.3 < he < 2.0
    # Each 0.01 layer scales the std by 0.01 * sqrt(width / 2) ~ 0.16: ~1e-8 after 10 layers.
    assert small < 1e-6
