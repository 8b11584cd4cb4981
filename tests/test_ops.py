"""Generic tests over the OpInfo table: every op x compiled backend x dtype x threads vs the
NumPy reference, on plain, non-contiguous, negative-stride and read-only inputs; gradient checks;
the errors API.md promises; inputs never modified."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from opinfo import DTYPES, OPS, VARIANTS

OP_NAMES = sorted(OPS)
GRAD_OPS = sorted(name for name, info in OPS.items() if info.grad_samples is not None)


def _skip_missing(op, backend):
    if fastnn._ops.kernel(op, backend) is None:
        pytest.skip(f"{op} is missing from the {backend} backend (fastnn.missing_kernels())")


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _assert_close(actual, expected, tol, what):
    rtol, atol = tol
    actual, expected = _as_tuple(actual), _as_tuple(expected)
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        if e is None:
            assert a is None, f"{what}: output {i} should be None"
            continue
        if type(e) is float:
            assert type(a) is float, f"{what}: output {i} should be a Python float, got {type(a)}"
        else:
            assert isinstance(a, np.ndarray), f"{what}: output {i} is {type(a)}"
            assert a.dtype == e.dtype, f"{what}: output {i} dtype {a.dtype}, expected {e.dtype}"
            assert a.shape == e.shape, f"{what}: output {i} shape {a.shape}, expected {e.shape}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what}: output {i}")


def _snapshot(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _reference(op, sample):
    args = _snapshot(sample.args)  # in-place ops (running stats) get their own copies
    with fastnn.use_backend("numpy"):
        return getattr(fastnn, op)(*args, **sample.kwargs), args


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", OP_NAMES)
def test_matches_reference(op, backend, dtype, threads):
    _skip_missing(op, backend)
    info = OPS[op]
    fn = getattr(fastnn, op)
    rng = np.random.default_rng(0)
    for sample in info.samples(rng, dtype):
        expected, expected_args = _reference(op, sample)
        for variant, transform in VARIANTS.items():
            args = [transform(a) if i not in info.in_place else a.copy() if isinstance(a, np.ndarray) else a
                    for i, a in enumerate(sample.args)]
            before = _snapshot(args)
            with fastnn.use_backend(backend):
                actual = fn(*args, **sample.kwargs)
            what = f"{op}[{backend}, {np.dtype(dtype).name}, {variant}] {sample!r}"
            _assert_close(actual, expected, info.tol[dtype], what)
            for i, (a, b) in enumerate(zip(args, before)):
                if isinstance(a, np.ndarray):
                    if i in info.in_place:
                        np.testing.assert_allclose(a, expected_args[i], *info.tol[dtype], err_msg=f"{what}: in-place arg {i}")
                    else:
                        assert np.array_equal(a, b, equal_nan=True), f"{what}: input {i} was modified"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", [n for n in OP_NAMES if OPS[n].supports_out])
def test_out_argument(op, backend, dtype):
    _skip_missing(op, backend)
    info = OPS[op]
    fn = getattr(fastnn, op)
    sample = info.samples(np.random.default_rng(1), dtype)[0]
    expected, _ = _reference(op, sample)
    with fastnn.use_backend(backend):
        out = np.full(expected.shape, 7, dtype)
        result = fn(*_snapshot(sample.args), **sample.kwargs, out=out)
        assert result is out
        _assert_close(out, expected, info.tol[dtype], f"{op} out=")
        if expected.ndim:  # a non-contiguous out is filled too
            wide = np.zeros(expected.shape[:-1] + (2 * expected.shape[-1],), dtype)
            strided = wide[..., ::2]
            assert fn(*_snapshot(sample.args), **sample.kwargs, out=strided) is strided
            _assert_close(strided, expected, info.tol[dtype], f"{op} strided out=")
        other = np.float64 if dtype == np.float32 else np.float32
        with pytest.raises(TypeError, match=op):
            fn(*_snapshot(sample.args), **sample.kwargs, out=np.empty(expected.shape, other))
        with pytest.raises(ValueError, match=op):
            fn(*_snapshot(sample.args), **sample.kwargs, out=np.empty(expected.shape + (2,), dtype))


@pytest.mark.parametrize("op", OP_NAMES)
def test_rejects_bad_dtypes(op):
    info = OPS[op]
    fn = getattr(fastnn, op)
    sample = info.samples(np.random.default_rng(2), np.float64)[0]
    float_positions = [i for i, a in enumerate(sample.args)
                       if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    for bad in (np.int64, np.bool_, np.complex128, object):
        args = list(sample.args)
        args[float_positions[0]] = np.zeros(args[float_positions[0]].shape, bad)
        with pytest.raises(TypeError, match=op):
            fn(*args, **sample.kwargs)
    if len(float_positions) > 1:
        args = list(sample.args)
        args[float_positions[1]] = args[float_positions[1]].astype(np.float32)
        with pytest.raises(TypeError, match=op):
            fn(*args, **sample.kwargs)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("op", GRAD_OPS)
def test_gradient(op, backend):
    """Every backward against float64 centred differences (cs231n rel_error)."""
    fwd_and_bwd = [op] + ([fastnn._ops.DERIVATIVES[op][0]] if fastnn._ops.DERIVATIVES[op][0] else [])
    for name in fwd_and_bwd:
        if backend != "numpy":
            _skip_missing(name, backend)
    info = OPS[op]
    with fastnn.use_backend(backend):
        for sample in info.grad_samples(np.random.default_rng(3)):
            errors = fastnn.gradcheck.check_op(op, *sample.args, **sample.kwargs)
            assert errors, f"{op}: no gradient was checked"
            for name, err in errors.items():
                assert err <= info.grad_tol, f"{op}[{backend}] d{name}: rel_error {err:.2e} {sample!r}"
