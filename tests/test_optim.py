"""Optimizers: 100-step trajectories equal torch.optim's and textbook NumPy formulas; state per key;
in-place semantics; errors."""
import warnings

import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from fastnn import optim

BACKENDS = ["numpy"] + COMPILED
STEPS = 100
TRAJECTORY_TOL = {np.float64: 1e-9, np.float32: 1e-4}

CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.02, "momentum": 0.9}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("AdaGrad", {"lr": 0.1}),
    ("RMSProp", {"lr": 0.003, "alpha": 0.9}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.005, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
]
CONFIG_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]


def _problem(dtype):
    """A separable quadratic 0.5 * sum(c * (p - t)^2) started far from its minimum, so no
    gradient approaches zero within STEPS (where sign-like updates amplify rounding)."""
    rng = np.random.default_rng(0)
    curvature = {"w": rng.uniform(0.5, 2.0, (6, 3)), "b": rng.uniform(0.5, 2.0, 3)}
    target = {"w": rng.standard_normal((6, 3)), "b": rng.standard_normal(3)}
    params = {k: (target[k] + rng.choice([-1, 1], t.shape) * rng.uniform(2, 4, t.shape)).astype(dtype)
              for k, t in target.items()}

    def grads(params):
        return {k: (curvature[k] * (params[k].astype(np.float64) - target[k])).astype(dtype) for k in params}

    return params, grads


def _fastnn_trajectory(name, kwargs, dtype, backend):
    params, grads = _problem(dtype)
    opt = getattr(optim, name)(**kwargs)
    trajectory = []
    with fastnn.use_backend(backend):
        for _ in range(STEPS):
            opt.step(params, grads(params))
            trajectory.append(np.concatenate([params["w"].ravel(), params["b"]]).astype(np.float64))
    return np.array(trajectory)


def _numpy_trajectory(name, kwargs, dtype):
    """torch.optim's documented algorithms, written independently of fastnn (float64)."""
    params, grads = _problem(dtype)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    state = {k: {} for k in p}
    trajectory = []
    for t in range(1, STEPS + 1):
        g_all = grads(p)
        for k in p:
            g, s = g_all[k].astype(np.float64), state[k]
            if name == "SGD":
                g = g + kwargs.get("weight_decay", 0.0) * p[k]
                m = kwargs.get("momentum", 0.0)
                if m:
                    s["b"] = g.copy() if t == 1 else m * s["b"] + g
                    g = g + m * s["b"] if kwargs.get("nesterov") else s["b"]
                p[k] = p[k] - kwargs["lr"] * g
            elif name == "AdaGrad":
                s["sum"] = s.get("sum", 0.0) + g * g
                p[k] = p[k] - kwargs["lr"] * g / (np.sqrt(s["sum"]) + kwargs.get("eps", 1e-10))
            elif name == "RMSProp":
                a = kwargs.get("alpha", 0.99)
                s["v"] = a * s.get("v", 0.0) + (1 - a) * g * g
                p[k] = p[k] - kwargs["lr"] * g / (np.sqrt(s["v"]) + kwargs.get("eps", 1e-8))
            else:
                b1, b2 = kwargs.get("betas", (0.9, 0.999))
                g = g + kwargs.get("weight_decay", 0.0) * p[k]
                s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
                m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
                p[k] = p[k] - kwargs["lr"] * m_hat / (np.sqrt(v_hat) + kwargs.get("eps", 1e-8))
        trajectory.append(np.concatenate([p["w"].ravel(), p["b"]]))
    return np.array(trajectory)


def _torch_trajectory(torch, name, kwargs, dtype):
    params, grads = _problem(dtype)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    cls = {"SGD": torch.optim.SGD, "AdaGrad": torch.optim.Adagrad,
           "RMSProp": torch.optim.RMSprop, "Adam": torch.optim.Adam}[name]
    opt = cls(list(tensors.values()), foreach=False, **kwargs)
    trajectory = []
    for _ in range(STEPS):
        g = grads({k: t.detach().numpy() for k, t in tensors.items()})
        for k, t in tensors.items():
            t.grad = torch.from_numpy(g[k])
        opt.step()
        trajectory.append(np.concatenate([tensors["w"].detach().numpy().ravel(),
                                          tensors["b"].detach().numpy()]).astype(np.float64))
    return np.array(trajectory)


def _normwise(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_torch(name, kwargs, backend, dtype):
    torch = pytest.importorskip("torch")
    ours = _fastnn_trajectory(name, kwargs, dtype, backend)
    theirs = _torch_trajectory(torch, name, kwargs, dtype)
    assert _normwise(ours, theirs) <= TRAJECTORY_TOL[dtype]
    assert _normwise(theirs[-1], theirs[0]) > 1e-2  # the parameters really moved


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_numpy_formulas(name, kwargs, backend, dtype):
    ours = _fastnn_trajectory(name, kwargs, dtype, backend)
    expected = _numpy_trajectory(name, kwargs, dtype)
    assert _normwise(ours, expected) <= TRAJECTORY_TOL[dtype]
    assert _normwise(expected[-1], expected[0]) > 1e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_updates_params_in_place_and_keeps_state_per_key(backend):
    rng = np.random.default_rng(1)
    params = {"a": rng.standard_normal((4, 5)), "b": rng.standard_normal(7)}
    arrays, start = dict(params), {k: v.copy() for k, v in params.items()}
    grads = {"a": np.ones((4, 5)), "b": np.ones(7)}
    opt = optim.Adam(lr=0.1)
    with fastnn.use_backend(backend):
        opt.step(params, grads)
        opt.step({"a": params["a"]}, {"a": grads["a"]})  # a subset advances only its own state
    assert all(params[k] is arrays[k] for k in params)
    assert opt.state["a"]["step"] == 2 and opt.state["b"]["step"] == 1
    # With a constant gradient every bias-corrected Adam step moves each coordinate by lr.
    np.testing.assert_allclose(start["a"] - params["a"], 0.2, rtol=1e-6)
    np.testing.assert_allclose(start["b"] - params["b"], 0.1, rtol=1e-6)


STEP_FUNCTIONS = {  # class, its kwargs, the per-tensor step, the state keys in the step's order
    "SGD": (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), optim.sgd_step,
            ("momentum_buffer",), dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "AdaGrad": (optim.AdaGrad, dict(lr=0.1), optim.adagrad_step, ("sum",), dict(lr=0.1)),
    "RMSProp": (optim.RMSProp, dict(lr=0.01, alpha=0.9), optim.rmsprop_step, ("square_avg",),
                dict(lr=0.01, alpha=0.9)),
    "Adam": (optim.Adam, dict(lr=0.01, weight_decay=0.1), optim.adam_step, ("exp_avg", "exp_avg_sq"),
             dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", STEP_FUNCTIONS)
def test_step_of_many_tensors_is_the_per_tensor_step(name, backend, threads):
    """Optimizer.step checks the hyperparameters once per dtype and then runs the other plain
    tensors of each dtype in one call (`<op>_many`, end to end, thread ranges across tensors),
    without the per-tensor checks: the same bits as one call each; mixed dtypes, a non-contiguous
    param and a grad of another dtype take the checked path."""
    cls, kwargs, step_fn, state_keys, fn_kwargs = STEP_FUNCTIONS[name]
    rng = np.random.default_rng(3)
    fastnn.set_num_threads(threads)
    params = {f"p{i}": rng.standard_normal(s).astype(d) for i, (s, d) in enumerate(
        [((3, 4), np.float32), ((70000,), np.float32), ((5,), np.float64), ((2, 3), np.float64), ((9,), np.float32),
         ((0,), np.float32), ((100003,), np.float32), ((64,), np.float32), ((65, 3), np.float64), ((50001,), np.float64)])}
    params["strided"] = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]
    grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
    expected = {k: v.copy() for k, v in params.items()}
    states = {k: [np.zeros_like(v) for _ in state_keys] for k, v in params.items()}
    opt = cls(**kwargs)
    with fastnn.use_backend(backend):
        for step in (1, 2, 3):
            opt.step(params, grads)
            for k in expected:
                extra = (step,) if name == "Adam" else ()
                step_fn(expected[k], grads[k], *states[k], *extra, **fn_kwargs)
    for k in params:
        assert np.array_equal(params[k], expected[k]), k
        for key, state in zip(state_keys, states[k]):
            assert np.array_equal(opt.state[k][key], state), (k, key)
    opt.lr = -1.0  # a hyperparameter changed between steps is checked again
    with pytest.raises(ValueError, match="lr"):
        opt.step(params, grads)
    wrong = dict(grads, p1=grads["p1"].astype(np.float64))
    with pytest.raises(TypeError, match="grad"):
        cls(**kwargs).step(params, wrong)


@pytest.mark.parametrize("backend", BACKENDS)
def test_noncontiguous_param_and_state_are_updated(backend):
    rng = np.random.default_rng(2)
    p = rng.standard_normal((6, 8))
    g = rng.standard_normal((6, 8))
    m, v = np.zeros((8, 6)).T, np.zeros((6, 16))[:, ::2]  # transposed and strided views
    expected = p.copy()
    with fastnn.use_backend("numpy"):
        fastnn.adam_step(expected, g, np.zeros((6, 8)), np.zeros((6, 8)), 1, lr=0.1)
    view = np.zeros((6, 16))[:, ::2]
    view[...] = p
    with fastnn.use_backend(backend):
        result = fastnn.adam_step(view, g, m, v, 1, lr=0.1)
    assert result is view
    np.testing.assert_allclose(view, expected, rtol=1e-12)
    np.testing.assert_allclose(m, 0.1 * g, rtol=1e-12)
    np.testing.assert_allclose(v, 0.001 * g * g, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_step_size_beyond_the_dtype_is_quiet_inf(backend, dtype):
    """Bug: Numba's adam_step printed "overflow encountered in cast" when lr / (1 - beta1**step)
    exceeded param's dtype; every backend now takes the step size as inf, quietly (the reference)."""
    lr = float(np.finfo(dtype).max) / 2  # a valid lr; lr / (1 - 0.9) is beyond the dtype
    expected = None
    for name in ("numpy", backend):
        p, g = np.array([1.0, -1.0, 0.0], dtype), np.array([0.5, -0.5, 0.0], dtype)
        m, v = np.zeros(3, dtype), np.zeros(3, dtype)
        with fastnn.use_backend(name), warnings.catch_warnings():
            warnings.simplefilter("error")
            fastnn.adam_step(p, g, m, v, 1, lr=lr)
        expected = p if expected is None else expected
    np.testing.assert_array_equal(p, expected)
    assert p[0] == -np.inf and p[1] == np.inf and np.isnan(p[2])  # 0 * inf for a zero gradient


def test_errors_name_the_argument():
    p, g = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="sgd_step: grad has shape"):
        fastnn.sgd_step(p, np.zeros(4), lr=0.1)
    with pytest.raises(ValueError, match="momentum_buffer"):
        fastnn.sgd_step(p, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(-1.0)
    with pytest.raises(ValueError, match="step"):
        fastnn.adam_step(p, g, np.zeros(3), np.zeros(3), 0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="exp_avg_sq has shape"):
        fastnn.adam_step(p, g, np.zeros(3), np.zeros(2), 1)
    with pytest.raises(TypeError, match="sum_sq"):
        fastnn.adagrad_step(p, g, [0.0, 0.0, 0.0])
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="param is read-only"):
        fastnn.rmsprop_step(readonly, g, np.zeros(3))
    with pytest.raises(ValueError, match="same keys"):
        optim.SGD(0.1).step({"w": p}, {"v": g})
