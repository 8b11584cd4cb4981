"""Generic tests over the OpInfo table: every op x compiled backend x dtype x threads vs the
NumPy reference, on plain, non-contiguous, negative-stride and read-only inputs; gradient checks;
the errors API.md promises; inputs never modified."""
import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from opinfo import DTYPES, OPS, VARIANTS, Sample, as_tuple, assert_within, check_outputs, exact_and_bounds, snapshot

OP_NAMES = sorted(OPS)
GRAD_OPS = sorted(name for name, info in OPS.items() if info.grad_samples is not None)


def _require_kernel(op, backend):
    """A kernel missing from a compiled backend is a failure, never a skip (fastnn.missing_kernels())."""
    assert fastnn._ops.kernel(op, backend) is not None, f"{op} is missing from the {backend} backend"


def _with_special_values(sample, rng):
    """The sample with NaN, +inf and -inf at a few positions of each float input array."""
    args = []
    for a in sample.args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size:
            a = a.copy()
            flat = a.reshape(-1)
            for value in (np.nan, np.inf, -np.inf):
                flat[rng.integers(0, flat.size, max(1, flat.size // 50))] = value
        args.append(a)
    return Sample(tuple(args), sample.kwargs, f"{sample.note or 'sample'} with NaN/inf")


def _samples(info, dtype):
    rng = np.random.default_rng(0)
    samples = info.samples(rng, dtype)
    if info.special_values:
        samples = samples + [_with_special_values(s, rng) for s in samples[:3]]
    return samples


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", OP_NAMES)
def test_matches_reference(op, backend, dtype, threads):
    _require_kernel(op, backend)
    info = OPS[op]
    fn = getattr(fastnn, op)
    for sample in _samples(info, dtype):
        exact, exact_args, bounds = exact_and_bounds(op, sample.args, sample.kwargs, dtype)
        for variant, transform in VARIANTS.items():
            args = [transform(a) if i not in info.in_place else a.copy() if isinstance(a, np.ndarray) else a
                    for i, a in enumerate(sample.args)]
            before = snapshot(args)
            with fastnn.use_backend(backend), np.errstate(all="raise"):  # no floating-point warnings
                actual = fn(*args, **sample.kwargs)
            what = f"{op}[{backend}, {np.dtype(dtype).name}, {variant}] {sample!r}"
            check_outputs(actual, exact, bounds, dtype, what)
            for i, (a, b) in enumerate(zip(args, before)):
                if not isinstance(a, np.ndarray):
                    continue
                if i in info.in_place:
                    assert_within(a, exact_args[i], bounds[f"arg{i}"], f"{what}: in-place arg {i}")
                else:
                    assert np.array_equal(a, b, equal_nan=True), f"{what}: input {i} was modified"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op", [n for n in OP_NAMES if OPS[n].supports_out])
def test_out_argument(op, backend, dtype):
    _require_kernel(op, backend)
    info = OPS[op]
    fn = getattr(fastnn, op)
    sample = info.samples(np.random.default_rng(1), dtype)[0]
    exact, _, bounds = exact_and_bounds(op, sample.args, sample.kwargs, dtype)
    shape = exact[0].shape
    with fastnn.use_backend(backend):
        out = np.full(shape, 7, dtype)
        result = fn(*snapshot(sample.args), **sample.kwargs, out=out)
        assert result is out
        check_outputs(out, exact, bounds, dtype, f"{op} out=")
        if len(shape):  # a non-contiguous out is filled too
            wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
            strided = wide[..., ::2]
            assert fn(*snapshot(sample.args), **sample.kwargs, out=strided) is strided
            check_outputs(strided, exact, bounds, dtype, f"{op} strided out=")
        other = np.float64 if dtype == np.float32 else np.float32
        with pytest.raises(TypeError, match=op):
            fn(*snapshot(sample.args), **sample.kwargs, out=np.empty(shape, other))
        with pytest.raises(ValueError, match=op):
            fn(*snapshot(sample.args), **sample.kwargs, out=np.empty(shape + (2,), dtype))


@pytest.mark.parametrize("op", sorted(n for n in OP_NAMES if OPS[n].special_values))
def test_special_values_reach_the_samples(op):
    """An op flagged special_values is compared on inputs holding NaN and both infinities."""
    for dtype in DTYPES:
        values = np.concatenate([a.reshape(-1) for s in _samples(OPS[op], dtype) for a in s.args
                                 if isinstance(a, np.ndarray) and a.dtype.kind == "f"])
        assert np.isnan(values).any() and np.isposinf(values).any() and np.isneginf(values).any()


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
            _require_kernel(name, backend)
    info = OPS[op]
    with fastnn.use_backend(backend):
        for sample in info.grad_samples(np.random.default_rng(3)):
            errors = fastnn.gradcheck.check_op(op, *sample.args, **sample.kwargs)
            assert errors, f"{op}: no gradient was checked"
            for name, err in errors.items():
                assert err <= info.grad_tol, f"{op}[{backend}] d{name}: rel_error {err:.2e} {sample!r}"
