"""Pooling: parameter errors, every dx element written, and agreement with PyTorch (if importable)."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from ops_pool import CONFIGS, _with_specials

FORWARDS = {"max_pool2d": fastnn.max_pool2d, "avg_pool2d": fastnn.avg_pool2d}
BACKWARDS = {"max_pool2d": fastnn.max_pool2d_backward, "avg_pool2d": fastnn.avg_pool2d_backward}
x4 = np.zeros((2, 3, 8, 8))


@pytest.mark.parametrize("op", sorted(FORWARDS))
@pytest.mark.parametrize("kwargs, error, match", [
    ({"kernel_size": 0}, ValueError, "kernel_size"),
    ({"kernel_size": (2, -1)}, ValueError, "kernel_size"),
    ({"kernel_size": (2, 2, 2)}, ValueError, "kernel_size"),
    ({"kernel_size": 2.0}, TypeError, "kernel_size"),
    ({"kernel_size": True}, TypeError, "kernel_size"),
    ({"kernel_size": 2, "stride": 0}, ValueError, "stride"),
    ({"kernel_size": 2, "stride": (1,)}, ValueError, "stride"),
    ({"kernel_size": 2, "padding": -1}, ValueError, "padding"),
    ({"kernel_size": 3, "padding": 2}, ValueError, "padding"),        # > kernel_size // 2
    ({"kernel_size": (3, 2), "padding": (1, 2)}, ValueError, "padding"),
    ({"kernel_size": 9}, ValueError, "output size"),                  # larger than the input
    ({"kernel_size": (2, 9), "padding": (0, 0)}, ValueError, "x width"),
])
def test_bad_parameters(op, kwargs, error, match):
    with pytest.raises(error, match=match):
        FORWARDS[op](x4, **kwargs)
    with pytest.raises(error, match=match):
        BACKWARDS[op](np.zeros((2, 3, 4, 4)), x4, **kwargs)


@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_bad_shapes(op):
    with pytest.raises(ValueError, match=rf"{op}: x must be 4-d"):
        FORWARDS[op](np.zeros((3, 8, 8)), 2)
    with pytest.raises(ValueError, match=rf"{op}: x must have a nonzero height"):
        FORWARDS[op](np.zeros((2, 3, 0, 4)), 1)
    with pytest.raises(ValueError, match=rf"{op}_backward: dy has shape \(2, 3, 4, 5\), expected \(2, 3, 4, 4\)"):
        BACKWARDS[op](np.zeros((2, 3, 4, 5)), x4, 2)


@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_parameter_forms(op):
    """An int means (int, int); stride None means kernel_size."""
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    with fastnn.use_backend("numpy"):
        expected = FORWARDS[op](x, (3, 3), (3, 3), (1, 1))
        np.testing.assert_array_equal(FORWARDS[op](x, 3, padding=1), expected)
        np.testing.assert_array_equal(FORWARDS[op](x, [3, 3], None, [1, 1]), expected)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_backward_writes_every_element(op, backend):
    """dx prefilled with NaN: each element, in a window or not, must be overwritten."""
    rng = np.random.default_rng(1)
    for shape, kernel, stride, padding in CONFIGS:
        x = rng.standard_normal(shape)
        with fastnn.use_backend("numpy"):
            dy = rng.standard_normal(FORWARDS[op](x, kernel, stride, padding).shape)
            expected = BACKWARDS[op](dy, x, kernel, stride, padding)
        with fastnn.use_backend(backend):
            dx = BACKWARDS[op](dy, x, kernel, stride, padding, out=np.full(shape, np.nan))
        np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-13, err_msg=f"{shape} {kernel} {stride} {padding}")


def _torch_cases(rng):
    for shape, kernel, stride, padding in CONFIGS:
        yield "normal", rng.standard_normal(shape), kernel, stride, padding
        yield "ties", np.round(rng.standard_normal(shape)), kernel, stride, padding
        nan_heavy = np.where(rng.random(shape) < 0.3, np.nan, rng.standard_normal(shape))
        yield "NaN/inf", _with_specials(rng, nan_heavy), kernel, stride, padding


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_matches_torch(op, backend, dtype):
    torch = pytest.importorskip("torch")
    torch_forward = getattr(torch.nn.functional, op)
    rng = np.random.default_rng(2)
    for kind, x, kernel, stride, padding in _torch_cases(rng):
        if op == "avg_pool2d" and kind == "NaN/inf":
            continue  # PyTorch's sum order is not ours: inf - inf cancellations may differ
        x = x.astype(dtype)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        yt = torch_forward(xt, kernel, stride, padding)
        dy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        with fastnn.use_backend(backend):
            y = FORWARDS[op](x, kernel, stride, padding)
            dx = BACKWARDS[op](dy, x, kernel, stride, padding)
        what = f"{op}[{backend}] {kind} {x.shape} k={kernel} s={stride} p={padding}"
        tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
        np.testing.assert_allclose(y, yt.detach().numpy(), **tol, err_msg=what)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **tol, err_msg=what)
