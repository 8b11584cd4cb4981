"""conv2d family: parameter errors, agreement with PyTorch, float32 accuracy, NaN propagation."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from ops_conv import CASES, out_shape
from opinfo import check_op

BACKENDS = ["numpy"] + COMPILED
FORWARDS = ["conv2d", "conv2d_relu"]


def _require_kernel(op, backend):
    assert backend == "numpy" or fastnn._ops.kernel(op, backend) is not None, f"{op} is missing from {backend}"


def _call(op, x, w, b=None, **params):
    """Forward ops take (x, w, b); the backward takes (dy, x, w): its parameters are checked before dy."""
    if op == "conv2d_backward":
        return fastnn.conv2d_backward(np.zeros((1, 1, 1, 1)), x, w, **params)
    return getattr(fastnn, op)(x, w, b, **params)


X = np.zeros((2, 4, 6, 6))
W = np.zeros((8, 4, 3, 3))

BAD = [
    # (x, w, b, params, exception, message pattern)
    (np.zeros((6, 6)), W, None, {}, ValueError, "x must be 3-d or 4-d"),
    (X, W, None, {"padding": "full"}, ValueError, "padding must be an int, an \\(h, w\\) pair, 'same' or 'valid'"),
    (X, W, None, {"padding": "same", "stride": (1, 2)}, ValueError,
     "padding='same' is not supported for strided convolutions"),
    (X, np.zeros((8, 4, 3)), None, {}, ValueError, "w must be 4-d"),
    (np.zeros((2, 3, 6, 6)), W, None, {}, ValueError, "w has 4 input channels per group, x has 3"),
    (X, np.zeros((8, 4, 3, 3)), None, {"groups": 2}, ValueError, "w has 4 input channels per group, x has 2"),
    (X, np.zeros((8, 1, 3, 3)), None, {"groups": 3}, ValueError, "groups = 3 does not divide the 4 channels"),
    (X, np.zeros((6, 1, 3, 3)), None, {"groups": 4}, ValueError, "groups = 4 does not divide the 6 filters"),
    (X, W, None, {"groups": 0}, ValueError, "groups must be >= 1"),
    (X, W, None, {"groups": 1.0}, TypeError, "groups must be an integer"),
    (X, W, None, {"stride": 0}, ValueError, "stride must be >= 1"),
    (X, W, None, {"stride": (1, 0)}, ValueError, "stride must be >= 1"),
    (X, W, None, {"stride": (1, 2, 3)}, ValueError, "stride must be an int or an"),
    (X, W, None, {"stride": 1.5}, TypeError, "stride must be an integer"),
    (X, W, None, {"padding": -1}, ValueError, "padding must be >= 0"),
    (X, W, None, {"dilation": 0}, ValueError, "dilation must be >= 1"),
    (X, W, None, {"dilation": True}, TypeError, "dilation must be an integer"),
    (X, np.zeros((8, 4, 7, 3)), None, {}, ValueError, r"output size would be 0 \(< 1\) for x height size 6, kernel 7"),
    (X, W, None, {"dilation": (1, 4)}, ValueError, "output size would be -2 .* x width"),
    (np.zeros((2, 0, 6, 6)), np.zeros((8, 0, 3, 3)), None, {}, ValueError, "x must have at least one channel"),
    (X, np.zeros((0, 4, 3, 3)), None, {}, ValueError, "w must have at least one filter"),
    (X, np.zeros((8, 4, 0, 3)), None, {}, ValueError, "w must have .* a non-empty kernel"),
]


@pytest.mark.parametrize("op", FORWARDS + ["conv2d_backward"])
@pytest.mark.parametrize("x, w, b, params, exc, message", BAD)
def test_bad_parameters(op, x, w, b, params, exc, message):
    with pytest.raises(exc, match=f"{op}: {message}"):
        _call(op, x, w, b, **params)


@pytest.mark.parametrize("op", FORWARDS)
def test_bad_bias(op):
    with pytest.raises(ValueError, match=rf"{op}: b has shape \(4,\), expected \(8,\)"):
        getattr(fastnn, op)(X, W, np.zeros(4))
    with pytest.raises(TypeError, match=f"{op}: b is float32 but x is float64"):
        getattr(fastnn, op)(X, W, np.zeros(8, np.float32))


def test_backward_rejects_dy_of_the_wrong_shape():
    for shape in [(2, 8, 4, 5), (2, 7, 4, 4), (1, 8, 4, 4), (2, 8, 4)]:
        with pytest.raises(ValueError, match=r"conv2d_backward: dy has shape .* expected \(2, 8, 4, 4\)"):
            fastnn.conv2d_backward(np.zeros(shape), X, W)


def test_pairs_and_ints_are_equivalent():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((8, 4, 3, 3))
    with fastnn.use_backend("numpy"):
        as_ints = fastnn.conv2d(x, w, None, 2, 1, 2)
        as_pairs = fastnn.conv2d(x, w, None, (2, 2), [1, 1], (2, 2))
    np.testing.assert_array_equal(as_ints, as_pairs)


def _torch_case(torch, x, w, b, params, dy):
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b if b is not None else np.zeros(w.shape[0], x.dtype), requires_grad=True)
    y = torch.nn.functional.conv2d(tx, tw, tb, **params)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's own
def test_matches_torch(backend, dtype):
    torch = pytest.importorskip("torch")
    for op in ("conv2d", "conv2d_backward", "conv2d_relu"):
        _require_kernel(op, backend)
    tol = 1e-4 if dtype == np.float32 else 1e-10  # relative to each output's largest entry
    rng = np.random.default_rng(5)
    for x_shape, w_shape, params, bias in CASES:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(dtype)
        b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
        dy = rng.standard_normal(out_shape(x_shape, w_shape, **params)).astype(dtype)
        expected = _torch_case(torch, x, w, b, params, dy)
        with fastnn.use_backend(backend):
            y = fastnn.conv2d(x, w, b, **params)
            grads = fastnn.conv2d_backward(dy, x, w, **params)
            y_relu = fastnn.conv2d_relu(x, w, b, **params)
        what = f"{backend} {x_shape} {w_shape} {params}"
        for name, actual, wanted in zip(["y", "dx", "dw", "db"], (y,) + grads, expected):
            assert actual.dtype == dtype, f"{what}: {name} is {actual.dtype}"
            scale = max(1.0, float(np.abs(wanted).max(initial=0)))
            np.testing.assert_allclose(actual, wanted, rtol=tol, atol=tol * scale, err_msg=f"{what}: {name}")
        np.testing.assert_allclose(y_relu, np.maximum(expected[0], 0), rtol=tol, atol=tol,
                                   err_msg=f"{what}: conv2d_relu")


# 3x3 stride-1 layers of the benchmark's shapes (reduced batch, still large enough for the numba
# backend to take its Winograd path), whose float32 rounding must stay small next to float64.
ACCURACY_CASES = [
    ((4, 64, 32, 32), (64, 64, 3, 3), {"padding": 1}),
    ((8, 128, 16, 16), (128, 128, 3, 3), {"padding": 1}),
    ((24, 256, 8, 8), (256, 256, 3, 3), {"padding": 1}),
    ((8, 64, 15, 17), (32, 64, 3, 3), {}),
    ((8, 64, 28, 28), (64, 64, 5, 5), {"padding": 2}),  # the Cython backend's F(4x4, 5x5)
    ((4, 64, 28, 28), (64, 64, 7, 7), {"padding": 3}),  # and F(2x2, 7x7)
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, w_shape, params", ACCURACY_CASES)
def test_float32_accuracy(backend, x_shape, w_shape, params):
    """Every float32 output element within the tolerance rule of the float64 result."""
    _require_kernel("conv2d", backend)
    _require_kernel("conv2d_backward", backend)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, **params)).astype(np.float32)
    what = f"{backend} {x_shape} {w_shape}"
    with fastnn.use_backend(backend):
        check_op("conv2d", fastnn.conv2d(x, w, b, **params), (x, w, b), params, np.float32, what)
        check_op("conv2d_backward", fastnn.conv2d_backward(dy, x, w, **params), (dy, x, w), params, np.float32, what)


NAN_CASES = [
    ((2, 3, 9, 10), (4, 3, 3, 3), {"padding": 1}),
    ((8, 64, 13, 12), (64, 64, 3, 3), {"padding": 1}),  # Winograd-sized
    ((2, 3, 19, 17), (8, 3, 7, 7), {"stride": 2, "padding": 3}),
    ((2, 16, 9, 9), (8, 16, 1, 1), {}),
    ((2, 6, 9, 10), (6, 1, 3, 3), {"padding": 1, "groups": 6}),  # depthwise
    ((2, 4, 11, 9), (8, 1, 3, 3), {"stride": 2, "padding": 1, "groups": 4}),  # depthwise, stride 2, 2 filters each
    ((2, 16, 9, 28), (16, 8, 3, 3), {"padding": 1, "groups": 2}),  # Cython's grouped direct kernels
    ((2, 16, 9, 14), (16, 8, 3, 3), {"padding": 1, "groups": 2}),  # ... the narrow one
    ((2, 3, 9, 21), (16, 3, 3, 3), {"stride": 2, "padding": 1}),  # Cython's filters in the lanes
    ((2, 32, 7, 9), (32, 16, 3, 3), {"padding": 1, "groups": 2}),  # ... grouped, dx on dy too
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, w_shape, params", NAN_CASES)
def test_nan_reaches_exactly_the_windows_that_contain_it(backend, x_shape, w_shape, params):
    """As PyTorch: a NaN in x makes NaN exactly the outputs whose window covers it (w has no zeros)."""
    _require_kernel("conv2d", backend)
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.uniform(0.5, 1.0, w_shape) * rng.choice([-1, 1], w_shape)).astype(np.float32)
    x[0, 1 % x_shape[1], x_shape[2] // 2, 3] = np.nan
    x[-1, 0, 0, x_shape[3] - 1] = np.nan
    with fastnn.use_backend("numpy"):
        expected = fastnn.conv2d(np.isnan(x).astype(np.float32), np.abs(w), **params) > 0
    finite_x = np.nan_to_num(x)
    with fastnn.use_backend(backend):
        y = fastnn.conv2d(x, w, **params)
        dy = np.ones_like(y)
        grads = fastnn.conv2d_backward(dy, finite_x, w, **params)
    np.testing.assert_array_equal(np.isnan(y), expected)
    check_op("conv2d", y, (x, w, None), params, np.float32, f"{backend} forward with NaN")
    check_op("conv2d_backward", grads, (dy, finite_x, w), params, np.float32, f"{backend} backward")


# Shapes of Cython's direct weight gradients: pixels in the lanes (float32, <= 4 channels, 7x7 and up,
# rows of 16k outputs), its register blocks of 7 kernel columns read past KW = 9 and drop those sums;
# grouped, rows of 28 and 14 outputs: the last vector's extra lanes read x up to the last column and
# must drop it. Then filters in the lanes.
DIRECT_GRAD_CASES = [
    ((2, 3, 9, 32), (8, 3, 7, 7), {"padding": 3}),
    ((2, 2, 11, 40), (4, 2, 7, 9), {"stride": 2, "padding": (2, 0)}),  # input column 39 in no window
    ((2, 16, 9, 28), (16, 8, 3, 3), {"padding": 1, "groups": 2}),
    ((2, 16, 9, 14), (16, 8, 3, 3), {"padding": 1, "groups": 2}),
    ((2, 3, 9, 23), (32, 3, 3, 3), {"stride": 2, "padding": 1}),  # filters in the lanes, strided
    ((2, 32, 6, 9), (32, 16, 3, 3), {"padding": 1, "groups": 2}),  # ... grouped, short rows
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, w_shape, params", DIRECT_GRAD_CASES)
def test_weight_gradient_infinities_as_the_reference(backend, x_shape, w_shape, params):
    """inf in x makes +-inf or NaN exactly the weight gradients the reference has them in; an inf in
    a column no window covers (but the dropped sums read) changes nothing."""
    _require_kernel("conv2d_backward", backend)
    rng = np.random.default_rng(13)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, **params)).astype(np.float32)
    x[0, 0, 4, 5] = np.inf
    x[-1, -1, 2, min(20, x_shape[3] - 2)] = -np.inf
    if x_shape[3] == 40:
        x[:, :, :, 39] = np.inf
    if params.get("groups", 1) > 1:
        x[-1, 0, 3, x_shape[3] - 1] = np.inf
    with fastnn.use_backend("numpy"):
        _, expected, _ = fastnn.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                                w.astype(np.float64), **params)
    with fastnn.use_backend(backend):
        for input_grad in (True, False):
            params_now = {**params, "input_grad": input_grad}
            grads = fastnn.conv2d_backward(dy, x, w, **params_now)
            finite = np.isfinite(expected)
            assert 0 < finite.sum() < finite.size
            check_op("conv2d_backward", grads, (dy, x, w), params_now, np.float32, backend)


# dx computed as correlations of a zero-padded dy (Cython: grouped stride 1 through the direct
# forward, strided through the phases)
PADDED_DY_CASES = [((2, 32, 14, 14), (64, 16, 3, 3), {"padding": 1, "groups": 2}),
                   ((2, 32, 13, 11), (16, 32, 3, 3), {"stride": 2, "padding": 1}),
                   ((1, 24, 11, 12), (8, 24, 5, 5), {"stride": 2, "padding": 2})]


@pytest.mark.parametrize("where", ["w", "dy"])
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("x_shape, w_shape, params", PADDED_DY_CASES)
def test_input_gradient_infinities_as_the_reference(backend, where, x_shape, w_shape, params):
    """inf and NaN in w or dy reach exactly the dx the reference has them in: an inf weight times a
    zero of dy's padding would be NaN where the sum has no such product (dx then takes im2col +
    GEMM)."""
    _require_kernel("conv2d_backward", backend)
    rng = np.random.default_rng(17)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, **params)).astype(np.float32)
    target = w if where == "w" else dy
    target[0, 0, 0, 0] = np.inf
    target[-1, -1, -1, -1] = np.nan
    with fastnn.use_backend("numpy"):
        expected, _, _ = fastnn.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                                w.astype(np.float64), **params)
    with fastnn.use_backend(backend):
        dx, _, _ = fastnn.conv2d_backward(dy, x, w, **params)
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(dx), test(expected), err_msg=test.__name__)
    assert np.isfinite(expected).any() and not np.isfinite(expected).all()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dx[finite], expected[finite], rtol=1e-4, atol=1e-4)


# Winograd shapes (x shape, filters, kernel side, padding): Numba's F(4x4, 3x3) and the Cython backend's
# F(2x2, 3x3), F(4x4, 3x3) (forward only, then both), F(4x4, 5x5) and F(2x2, 7x7).
WINOGRAD_NONFINITE_CASES = [((4, 16, 7, 9), 16, 3, 1), ((4, 16, 10, 9), 16, 3, 1), ((8, 32, 15, 13), 32, 3, 1),
                            ((4, 16, 16, 16), 16, 5, 2), ((3, 16, 26, 24), 16, 7, 3)]


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("x_shape, filters, k, padding", WINOGRAD_NONFINITE_CASES)
def test_winograd_nonfinite_strategy(backend, where, threads, x_shape, filters, k, padding):
    """Both compiled backends' one strategy for inf and NaN on their Winograd shapes: Winograd's
    results (y; dx and dw) are kept only when all finite, else the call is recomputed on im2col +
    GEMM, so inf and NaN reach exactly the outputs whose windows hold them: the float64 reference's
    NaN and +-inf, and no warning (Numba, 2 threads, printed NumPy's "invalid value encountered in
    reduce" when its per-thread dw were +inf and -inf)."""
    import warnings

    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w_shape = (filters, x_shape[1], k, k)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, padding=padding)).astype(np.float32)
    target = {"x": x, "w": w, "dy": dy}[where]
    last = target.shape[0] - 1
    target[0, 0, 1, 2] = np.inf  # the first and the last images (or filters): the threads' partial sums
    target[last, 1, 2, 1] = -np.inf
    target[last - 1, 2, 0, 0] = np.nan
    fastnn.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fastnn.use_backend(backend):
            actual = (fastnn.conv2d(x, w, b, padding=padding), fastnn.conv2d_relu(x, w, b, padding=padding),
                      *fastnn.conv2d_backward(dy, x, w, padding=padding))
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    with fastnn.use_backend("numpy"):
        y = fastnn.conv2d(x64, w64, b64, padding=padding)
        expected = (y, np.where(np.isnan(y), y, np.maximum(y, 0)),
                    *fastnn.conv2d_backward(dy64, x64, w64, padding=padding))
    for name, a, e in zip(("y", "relu(y)", "dx", "dw", "db"), actual, expected):
        for test in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(test(a), test(e)), f"{name}: {test.__name__} differs"
        finite = np.isfinite(e)
        np.testing.assert_allclose(a[finite], e[finite], rtol=1e-3, atol=1e-3 * np.abs(e[finite]).max(), err_msg=name)


# Depthwise convolutions (groups == C), which both compiled backends run directly: rows shorter than a
# vector (stored whole inside the plane), stride 2's split rows read past their end, a second partial
# block, channel multipliers, dilation, padding past the kernel's reach (the input gradient's scatter),
# strides 3, batch 1.
DEPTHWISE_CASES = [
    ((3, 5, 9, 7), (5, 1, 3, 3), {"padding": 1}),
    ((2, 4, 28, 28), (4, 1, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 3, 13, 35), (3, 1, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 6, 12, 17), (6, 1, 5, 5), {"padding": 2}),
    ((2, 3, 11, 10), (6, 1, 3, 3), {"padding": 1}),  # 2 filters each
    ((2, 4, 12, 13), (4, 1, 3, 3), {"padding": 2, "dilation": 2}),
    ((2, 4, 5, 6), (4, 1, 3, 3), {"padding": 3}),
    ((1, 4, 16, 19), (8, 1, 3, 2), {"stride": (3, 2), "padding": (1, 0)}),
    ((1, 2, 4, 5), (2, 1, 1, 1), {}),
    # 3 x 3, stride 2 across (Cython: dx straight into x's plane): even paddings, strides (1, 2), a
    # dilated height; rows of 16 outputs with no lanes to spare (the weight gradient's whole vectors)
    ((2, 4, 13, 12), (4, 1, 3, 3), {"stride": 2}),
    ((2, 3, 11, 14), (3, 1, 3, 3), {"stride": (1, 2), "padding": (1, 2), "dilation": (2, 1)}),
    ((1, 2, 9, 32), (2, 1, 3, 3), {"padding": 1}),
    # 5 x 5: stride 2 across with even and odd paddings; stride 1 on rows of one vector (the weight
    # gradient's 25 sums in registers)
    ((2, 4, 15, 21), (4, 1, 5, 5), {"stride": 2, "padding": 2}),
    ((1, 3, 12, 13), (3, 1, 5, 5), {"stride": 2, "padding": 1}),
    ((2, 3, 9, 11), (3, 1, 5, 5), {"padding": 2}),
]


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("where", ["none", "x", "w", "dy"])
@pytest.mark.parametrize("x_shape, w_shape, params", DEPTHWISE_CASES)
@pytest.mark.parametrize("backend", COMPILED)
def test_depthwise_as_the_reference(backend, x_shape, w_shape, params, where, threads):
    """Both dtypes within the tolerance rule of the float64 reference, and inf and NaN (in x, w or dy)
    in exactly the outputs where the reference has them."""
    rng = np.random.default_rng(17)
    groups = x_shape[1]
    fastnn.set_num_threads(threads)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(w_shape[0]).astype(dtype)
        dy = rng.standard_normal(out_shape(x_shape, w_shape, groups=groups, **params)).astype(dtype)
        if where != "none":
            target = {"x": x, "w": w, "dy": dy}[where]
            target.reshape(-1)[[1, target.size // 2]] = np.inf, np.nan
        with fastnn.use_backend(backend):
            actual = (fastnn.conv2d(x, w, b, groups=groups, **params),
                      fastnn.conv2d_relu(x, w, b, groups=groups, **params),
                      *fastnn.conv2d_backward(dy, x, w, groups=groups, **params))
        x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
        with fastnn.use_backend("numpy"):
            y = fastnn.conv2d(x64, w64, b64, groups=groups, **params)
            expected = (y, np.where(np.isnan(y), y, np.maximum(y, 0)),
                        *fastnn.conv2d_backward(dy64, x64, w64, groups=groups, **params))
        what = f"{backend} {np.dtype(dtype).name} {x_shape} {w_shape} {params} non-finite in {where}"
        for name, a, e in zip(("y", "relu(y)", "dx", "dw", "db"), actual, expected):
            for test in (np.isnan, np.isposinf, np.isneginf):
                assert np.array_equal(test(a), test(e)), f"{what}: {name}: {test.__name__} differs"
        if where == "none":
            check_op("conv2d", actual[0], (x, w, b), {"groups": groups, **params}, dtype, what)
            check_op("conv2d_backward", actual[2:], (dy, x, w), {"groups": groups, **params}, dtype, what)


# (x shape, w shape, padding): shapes the Cython backend's rules send to F(2x2, 3x3), F(4x4, 3x3),
# F(4x4, 5x5) and F(2x2, 7x7), forward and backward (tests/ops_conv.py has them as OpInfo samples).
CYTHON_WINOGRAD_CASES = [((4, 16, 7, 9), (16, 16, 3, 3), 1), ((2, 16, 16, 20), (16, 16, 3, 3), 1),
                         ((2, 16, 17, 19), (16, 16, 5, 5), 1), ((2, 8, 25, 30), (16, 8, 7, 7), 3),
                         # the rule's edges (a batch of one: the shortest weight-gradient sums): F < 16 on 4x5
                         # outputs, F > 2C, 5x5 on 8x9, 7x7 on 12x13
                         ((1, 16, 4, 5), (8, 16, 3, 3), 1), ((2, 8, 6, 6), (32, 8, 3, 3), 1),
                         ((2, 8, 8, 9), (16, 8, 5, 5), 2), ((1, 16, 12, 13), (8, 16, 7, 7), 3),
                         # F(2x2, 3x3)'s own product (conv_gemm.h): filter blocks of 7 with 2 (forward) and
                         # 1 (input gradient) left over, a 64-channel reduction
                         ((3, 64, 5, 6), (23, 64, 3, 3), 1)]


@pytest.mark.skipif("cython" not in COMPILED, reason="the Cython backend is not built")
@pytest.mark.parametrize("x_shape, w_shape, padding", CYTHON_WINOGRAD_CASES)
def test_cython_winograd_samples_take_the_winograd_path(monkeypatch, x_shape, w_shape, padding):
    """The rules route these shapes to Winograd: y, dx and dw differ in float32 rounding from the same
    call with the fast paths off (im2col + GEMM), and both are within the tolerance rule."""
    import importlib

    module = importlib.import_module("fastnn.kernels.cython.conv")
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, padding=padding)).astype(np.float32)
    results = []
    for fast in (True, False):
        monkeypatch.setattr(module, "_fast_paths_enabled", fast)
        with fastnn.use_backend("cython"):
            results.append((fastnn.conv2d(x, w, padding=padding), *fastnn.conv2d_backward(dy, x, w, padding=padding)))
        what = f"cython {'fast' if fast else 'im2col'} {x_shape} {w_shape}"
        check_op("conv2d", results[-1][0], (x, w, None), {"padding": padding}, np.float32, what)
        check_op("conv2d_backward", results[-1][1:], (dy, x, w), {"padding": padding}, np.float32, what)
    for name, winograd, gemm in zip(("y", "dx", "dw"), *results):
        assert not np.array_equal(winograd, gemm), f"{name}: the same bits as im2col + GEMM"


@pytest.mark.skipif("numba" not in COMPILED, reason="numba is not installed")
def test_numba_depthwise_samples_take_the_direct_path(monkeypatch):
    """Every depthwise sample of the OpInfo table (groups == C, one channel and groups 1 too), forward and
    backward, runs on Numba's direct loops (the GEMM path raises here) within the tolerance rule."""
    import importlib

    from opinfo import OPS

    module = importlib.import_module("fastnn.kernels.numba.conv")

    def gemm(*args):
        raise AssertionError("the GEMM path ran")

    monkeypatch.setattr(module, "_gemm_forward", gemm)
    monkeypatch.setattr(module, "_gemm_backward", gemm)
    ran = 0
    for op in ("conv2d", "conv2d_relu", "conv2d_backward"):
        for sample in OPS[op].samples(np.random.default_rng(0), np.float64):
            x, w = sample.args[1:3] if op == "conv2d_backward" else sample.args[:2]
            if w.shape[1] != 1 or x.shape[-3] != sample.kwargs.get("groups", 1) or x.size == 0:
                continue
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                with fastnn.use_backend("numba"):
                    actual = getattr(fastnn, op)(*sample.args, **sample.kwargs)
                check_op(op, actual, sample.args, sample.kwargs, np.float64, f"{op}[numba, direct] {sample!r}")
            ran += 1
    assert ran >= 3 * 12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", FORWARDS)
def test_unbatched_out_and_same_padding(op, backend):
    """An unbatched x gives an unbatched y, into `out=` too (contiguous: through a view; strided: a copy);
    "same" keeps H and W whatever the kernel's parity."""
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((3, 7, 6)), rng.standard_normal((5, 3, 4, 3)), rng.standard_normal(5)
    with fastnn.use_backend("numpy"):
        expected = getattr(fastnn, op)(x[None], w, b, padding="same")[0]
    with fastnn.use_backend(backend):
        assert getattr(fastnn, op)(x, w, b, padding="same").shape == (5, 7, 6)
        for out in (np.zeros((5, 7, 6)), np.zeros((5, 7, 12))[..., ::2]):
            assert getattr(fastnn, op)(x, w, b, padding="same", out=out) is out
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match=rf"{op}: out has shape \(1, 5, 7, 6\), expected \(5, 7, 6\)"):
            getattr(fastnn, op)(x, w, b, padding="same", out=np.zeros((1, 5, 7, 6)))
        dx, dw, db = fastnn.conv2d_backward(np.ones((5, 7, 6)), x, w, padding="same")
        assert dx.shape == x.shape and dx.flags.c_contiguous and dw.shape == w.shape and db.shape == (5,)
        with pytest.raises(ValueError, match=r"conv2d_backward: dy has shape \(1, 5, 7, 6\), expected \(5, 7, 6\)"):
            fastnn.conv2d_backward(np.ones((1, 5, 7, 6)), x, w, padding="same")


def test_symmetric_same_is_the_integer_padding():
    """padding="same" with an even total is the symmetric padding: the same kernels, bit for bit."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 4, 5, 3))
    for backend in BACKENDS:
        with fastnn.use_backend(backend):
            np.testing.assert_array_equal(fastnn.conv2d(x, w, padding="same", dilation=(1, 2)),
                                          fastnn.conv2d(x, w, padding=(2, 2), dilation=(1, 2)))
            np.testing.assert_array_equal(fastnn.conv2d(x, w, padding="valid"), fastnn.conv2d(x, w))
