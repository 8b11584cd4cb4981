"""Pooling: parameter errors, every dx element written, unbatched input, and agreement with PyTorch
(if importable) on every option: values, gradients and max_pool2d's indices."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from ops_pool import CONFIGS, OPTIONS, _with_specials

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


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kernel_size": 2, "dilation": 0}, ValueError, "dilation"),
    ({"kernel_size": 2, "dilation": (1, 2, 3)}, ValueError, "dilation"),
    ({"kernel_size": 2, "dilation": 1.5}, TypeError, "dilation"),
    ({"kernel_size": 3, "dilation": 4}, ValueError, "output size"),      # the dilated window spans 9 > 8
    ({"kernel_size": 3, "dilation": 2, "padding": 2}, ValueError, "padding"),  # > kernel_size // 2, as torch
    ({"kernel_size": 2, "ceil_mode": np.array([True, False])}, TypeError, "ceil_mode"),
    ({"kernel_size": 2, "return_indices": np.zeros((2, 2))}, TypeError, "return_indices"),
])
def test_bad_max_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastnn.max_pool2d(x4, **kwargs)
    if "return_indices" not in kwargs:  # the backward has no such option
        with pytest.raises(error, match=match):
            fastnn.max_pool2d_backward(np.zeros((2, 3, 4, 4)), x4, **kwargs)


def test_dilated_window_with_no_element_of_x():
    """A window starting in the padding whose taps all miss a plane narrower than the dilation
    (torch gives -inf there and an index outside x): a ValueError naming dilation."""
    x = np.zeros((1, 1, 1, 5))
    with pytest.raises(ValueError, match="max_pool2d: dilation 3 with padding 2 leaves output 0"):
        fastnn.max_pool2d(x, 4, 10, 2, dilation=3, ceil_mode=True)
    fastnn.max_pool2d(x, (1, 4), 10, (0, 2), dilation=3, ceil_mode=True)  # the width holds taps


@pytest.mark.parametrize("op", ["avg_pool2d", "avg_pool2d_backward"])
@pytest.mark.parametrize("kwargs, error, match", [
    ({"divisor_override": 0}, ValueError, "divisor_override must be nonzero"),
    ({"divisor_override": 1.5}, TypeError, "divisor_override"),
    ({"divisor_override": True}, TypeError, "divisor_override"),
    ({"divisor_override": 2 ** 40}, ValueError, "divisor_override"),
    ({"count_include_pad": np.ones(2)}, TypeError, "count_include_pad"),
    ({"ceil_mode": np.ones(2)}, TypeError, "ceil_mode"),
])
def test_bad_avg_options(op, kwargs, error, match):
    args = (x4,) if op == "avg_pool2d" else (np.zeros((2, 3, 4, 4)), x4)
    with pytest.raises(error, match=rf"{op}: .*{match}"):
        getattr(fastnn, op)(*args, 2, **kwargs)


def test_output_sizes_are_torchs():
    """ceil_mode rounds up, less one when the last window would start in the right padding."""
    shape = lambda h, **kw: fastnn.max_pool2d(np.zeros((1, 1, h, 1)), (kw.pop("k"), 1), **kw).shape[2]  # noqa: E731
    assert shape(56, k=3, stride=(2, 1)) == 27 and shape(56, k=3, stride=(2, 1), ceil_mode=True) == 28
    assert shape(11, k=3, stride=(3, 1), padding=(1, 0), ceil_mode=True) == 4  # 5 would start at 12 = 11 + 1
    assert shape(7, k=2, ceil_mode=True) == 4 and shape(7, k=2) == 3
    assert shape(9, k=3, stride=(2, 1), dilation=(2, 1)) == 3
    assert shape(9, k=3, stride=(2, 1), dilation=(2, 1), ceil_mode=True) == 3


@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_bad_shapes(op):
    for shape in ((8, 8), (1, 2, 3, 8, 8)):
        with pytest.raises(ValueError, match=rf"{op}: x must be 3-d or 4-d"):
            FORWARDS[op](np.zeros(shape), 2)
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


def _all_configs(op):
    """(x shape, kwargs) of every geometry and option the OpInfo samples hold for op."""
    configs = [(shape, dict(kernel_size=k, stride=s, padding=p)) for shape, k, s, p in CONFIGS]
    return configs + [(shape, dict(kernel_size=k, stride=s, padding=p, **options))
                      for shape, k, s, p, options in OPTIONS[op]]


def _backward_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if k != "return_indices"}


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_backward_writes_every_element(op, backend):
    """dx prefilled with NaN: each element, in a window or not, must be overwritten."""
    rng = np.random.default_rng(1)
    for shape, kwargs in _all_configs(op):
        kwargs = _backward_kwargs(kwargs)
        x = rng.standard_normal(shape)
        with fastnn.use_backend("numpy"):
            dy = rng.standard_normal(FORWARDS[op](x, **kwargs).shape)
            expected = BACKWARDS[op](dy, x, **kwargs)
        with fastnn.use_backend(backend):
            dx = BACKWARDS[op](dy, x, **kwargs, out=np.full(shape, np.nan))
        np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-13, err_msg=f"{shape} {kwargs}")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_row_width(backend, dtype):
    """Widths 2..70 of the fast paths' rows (whole vector blocks of windows, a last block overlapping
    the one before, rows under one block padded; ceil_mode's hanging column), NaN, inf and ties
    included: the NumPy reference's values, indices and dx."""
    rng = np.random.default_rng(7)
    for width in range(2, 71):
        x = rng.integers(-3, 4, (2, 1, 5, width)).astype(dtype)  # ties in most windows
        x[0, 0, 1, width // 2] = np.nan
        x[1, 0, 2, width - 1] = -np.inf
        for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
            for ceil_mode in (False, True):
                kwargs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode)
                if p and width < 2:
                    continue
                with fastnn.use_backend("numpy"):
                    y, indices = fastnn.max_pool2d(x, **kwargs, return_indices=True)
                    dy = rng.standard_normal(y.shape).astype(dtype)
                    expected = [fastnn.max_pool2d_backward(dy, x, **kwargs), fastnn.avg_pool2d(x, **kwargs),
                                fastnn.avg_pool2d_backward(dy, x, **kwargs)]
                with fastnn.use_backend(backend):
                    got = [fastnn.max_pool2d(x, **kwargs), *fastnn.max_pool2d(x, **kwargs, return_indices=True),
                           fastnn.max_pool2d_backward(dy, x, **kwargs), fastnn.avg_pool2d(x, **kwargs),
                           fastnn.avg_pool2d_backward(dy, x, **kwargs)]
                what = f"width {width} {kwargs}"
                np.testing.assert_array_equal(got[0], y, err_msg=what)
                np.testing.assert_array_equal(got[1], y, err_msg=what)
                np.testing.assert_array_equal(got[2], indices, err_msg=what)
                for ours, theirs in zip(got[3:], expected):
                    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_unbatched_is_a_batch_of_one(op, backend):
    rng = np.random.default_rng(4)
    for shape, kwargs in _all_configs(op):
        x = rng.standard_normal(shape[-3:])
        with fastnn.use_backend(backend):
            y = FORWARDS[op](x, **kwargs)
            batched = FORWARDS[op](x[None], **kwargs)
            y, batched = (y, batched) if isinstance(y, tuple) else ((y,), (batched,))
            for a, b in zip(y, batched):
                np.testing.assert_array_equal(a, b[0])
            dy = rng.standard_normal(y[0].shape)
            dx = BACKWARDS[op](dy, x, **_backward_kwargs(kwargs))
            np.testing.assert_array_equal(dx, BACKWARDS[op](dy[None], x[None], **_backward_kwargs(kwargs))[0])


def _torch_cases(rng, op):
    for shape, kwargs in _all_configs(op):
        yield "normal", rng.standard_normal(shape), kwargs
        yield "ties", np.round(rng.standard_normal(shape)), kwargs
        nan_heavy = np.where(rng.random(shape) < 0.3, np.nan, rng.standard_normal(shape))
        if len(shape) == 4:
            yield "NaN/inf", _with_specials(rng, nan_heavy), kwargs


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("op", sorted(FORWARDS))
def test_matches_torch(op, backend, dtype):
    """Every geometry and option of the OpInfo samples: values, dx, and (max) torch's indices exactly."""
    torch = pytest.importorskip("torch")
    torch_forward = getattr(torch.nn.functional, op)
    rng = np.random.default_rng(2)
    for kind, x, kwargs in _torch_cases(rng, op):
        if op == "avg_pool2d" and kind == "NaN/inf":
            continue  # PyTorch's sum order is not ours: inf - inf cancellations may differ
        if x.size == 0:
            continue  # torch refuses empty batches
        x = x.astype(dtype)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        torch_kwargs = {**kwargs, "return_indices": True} if op == "max_pool2d" else kwargs
        result = torch_forward(xt, **torch_kwargs)
        yt, it = result if op == "max_pool2d" else (result, None)
        dy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        with fastnn.use_backend(backend):
            y = FORWARDS[op](x, **{**kwargs, **({"return_indices": True} if op == "max_pool2d" else {})})
            dx = BACKWARDS[op](dy, x, **_backward_kwargs(kwargs))
        y, indices = y if op == "max_pool2d" else (y, None)
        what = f"{op}[{backend}] {kind} {x.shape} {kwargs}"
        tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
        np.testing.assert_allclose(y, yt.detach().numpy(), **tol, err_msg=what)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **tol, err_msg=what)
        if indices is not None:
            assert indices.dtype == np.int64, what
            np.testing.assert_array_equal(indices, it.numpy(), err_msg=what)


@pytest.mark.parametrize("backend", COMPILED)
def test_indices_feed_torch_max_unpool2d(backend):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 11))
    with fastnn.use_backend(backend):
        y, indices = fastnn.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
        dx = fastnn.max_pool2d_backward(np.ones_like(y), x, 3, 2, 1, ceil_mode=True)
    unpooled = torch.nn.functional.max_unpool2d(torch.from_numpy(y), torch.from_numpy(indices), 3, 2, 1,
                                                output_size=x.shape[2:])
    np.testing.assert_array_equal(unpooled.numpy() != 0, dx != 0)  # each winner once, where dx has it
