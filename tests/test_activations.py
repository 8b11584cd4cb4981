"""Activation semantics against PyTorch on special values (NaN, infinities, signed zeros, huge
inputs, kinks), forward and backward, every backend; skipped cleanly without torch."""
import numpy as np
import pytest

import fastnn
from opinfo import special

torch = pytest.importorskip("torch")
F = torch.nn.functional

# name, fastnn kwargs, torch forward, backward takes the output (y) instead of x
CASES = [
    ("relu", {}, F.relu, False),
    ("leaky_relu", {"negative_slope": 0.2}, lambda t: F.leaky_relu(t, 0.2), False),
    ("elu", {"alpha": 1.3}, lambda t: F.elu(t, 1.3), False),
    ("sigmoid", {}, torch.sigmoid, True),
    ("tanh", {}, torch.tanh, True),
    ("gelu", {}, F.gelu, False),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh"), False),
    ("silu", {}, F.silu, False),
]
IDS = [c[0] + "".join(f"-{v}" for v in c[1].values()) for c in CASES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", fastnn.available_backends())
@pytest.mark.parametrize("name, kwargs, torch_fn, from_output", CASES, ids=IDS)
def test_special_values_match_torch(name, kwargs, torch_fn, from_output, backend, dtype):
    x = special(dtype)
    t = torch.tensor(x, requires_grad=True)
    ty = torch_fn(t)
    dy = np.linspace(-2, 2, x.size).astype(dtype)
    (tdx,) = torch.autograd.grad(ty, t, torch.tensor(dy))
    ty, tdx = ty.detach().numpy(), tdx.numpy()
    if name == "gelu" and not kwargs:  # torch's vectorized erf path gives NaN at +inf; the limit is +inf
        ty[x == np.inf] = np.inf
    if name == "gelu" and kwargs:  # torch's tanh form: NaN (0 * inf) where a finite x's square overflows;
        huge = np.isfinite(x) & np.isnan(tdx)  # fastnn gives the limit, dy for x > 0 and 0 for x < 0
        tdx[huge] = np.where(x[huge] > 0, dy[huge], 0)
    if name == "elu":  # torch's elu_backward at NaN is dy in float32, NaN in float64: we pass dy
        tdx[np.isnan(x)] = dy[np.isnan(x)]
    with fastnn.use_backend(backend):
        y = getattr(fastnn, name)(x, **kwargs)
        dx = getattr(fastnn, name + "_backward")(dy, y if from_output else x, **kwargs)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty, **tol, err_msg=f"{name} forward")
    np.testing.assert_allclose(dx, tdx, **tol, err_msg=f"{name} backward")


def test_prelu_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5))
    x[0, 0, 0, :2] = 0.0  # the kink: x <= 0 branch
    a = rng.uniform(0.1, 0.5, 3)
    dy = rng.standard_normal(x.shape)
    tx, ta = torch.tensor(x, requires_grad=True), torch.tensor(a, requires_grad=True)
    ty = F.prelu(tx, ta)
    tdx, tda = torch.autograd.grad(ty, (tx, ta), torch.tensor(dy))
    for backend in fastnn.available_backends():
        with fastnn.use_backend(backend):
            np.testing.assert_allclose(fastnn.prelu(x, a), ty.detach().numpy(), rtol=1e-12)
            dx, da = fastnn.prelu_backward(dy, x, a)
            np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-12)
            np.testing.assert_allclose(da, tda.numpy(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", fastnn.available_backends())
def test_gelu_tanh_matches_torch_on_a_sweep(backend, dtype):
    """torch's tanh approximation, forward and backward, over [-12, 12] (both tails, the kink region)."""
    x = np.linspace(-12, 12, 20_001).astype(dtype)
    dy = np.cos(np.arange(x.size)).astype(dtype)
    t = torch.tensor(x, requires_grad=True)
    ty = F.gelu(t, approximate="tanh")
    (tdx,) = torch.autograd.grad(ty, t, torch.tensor(dy))
    with fastnn.use_backend(backend):
        y = fastnn.gelu(x, approximate="tanh")
        dx = fastnn.gelu_backward(dy, x, approximate="tanh")
    tol = dict(rtol=1e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tdx.numpy(), **tol)


@pytest.mark.parametrize("backend", [b for b in fastnn.available_backends() if b != "numpy"])
def test_gelu_float32_holds_its_relative_accuracy_into_both_tails(backend):
    """Phi and phi in float32 against float64 erfc and exp over [-13, 13] (phi normal there): gelu
    within 5e-7 relative, plus the rounding of x^2 (x^2 / 2 * 2^-24 relative in exp, 3.9e-6 at
    |x| = 11.4), gelu' within that much of its two summands."""
    import math
    x = np.linspace(-13, 13, 260_001).astype(np.float32)
    xd = x.astype(np.float64)
    cdf = 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in xd])
    pdf = np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
    bound = 5e-7 + 1.5 * 2.0 ** -24 * (0.5 * xd * xd)
    with fastnn.use_backend(backend):
        y = fastnn.gelu(x).astype(np.float64)
        dx = fastnn.gelu_backward(np.ones_like(x), x).astype(np.float64)
    exact = xd * cdf
    assert np.all(np.abs(y - exact) <= bound * np.abs(exact))
    assert np.all(np.abs(dx - (cdf + xd * pdf)) <= bound * (cdf + np.abs(xd) * pdf))


def test_gelu_rejects_unknown_forms():
    x = np.ones(3)
    for bad in ("erf", "TANH", None, 1):
        with pytest.raises(ValueError, match="gelu: approximate"):
            fastnn.gelu(x, approximate=bad)
        with pytest.raises(ValueError, match="gelu_backward: approximate"):
            fastnn.gelu_backward(x, x, approximate=bad)
    with pytest.raises(ValueError, match="GELU: approximate"):
        fastnn.nn.GELU(approximate="erf")
