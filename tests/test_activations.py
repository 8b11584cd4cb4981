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
    ("silu", {}, F.silu, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", fastnn.available_backends())
@pytest.mark.parametrize("name, kwargs, torch_fn, from_output", CASES, ids=[c[0] for c in CASES])
def test_special_values_match_torch(name, kwargs, torch_fn, from_output, backend, dtype):
    x = special(dtype)
    t = torch.tensor(x, requires_grad=True)
    ty = torch_fn(t)
    dy = np.linspace(-2, 2, x.size).astype(dtype)
    (tdx,) = torch.autograd.grad(ty, t, torch.tensor(dy))
    ty, tdx = ty.detach().numpy(), tdx.numpy()
    if name == "gelu":  # torch's vectorized erf path gives NaN at +inf; the limit is +inf
        ty[x == np.inf] = np.inf
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
