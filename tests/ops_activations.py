"""OpInfo entries: activations."""
import numpy as np

from opinfo import OpInfo, Sample, away_from_zero, randn, register, special

SHAPES = [(3, 5, 7, 9), (17,), (0, 4), (), (2, 3, 101, 131)]  # odd; empty; 0-d; above parallel cut-offs
# float32 approximations of exp/tanh/erf are held to a few ulp; float64 to near machine precision.
TRANSCENDENTAL_TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}


def _inputs(rng, dtype, scale=3.0):
    xs = [randn(rng, shape, dtype, scale) for shape in SHAPES]
    sweep = np.linspace(-40, 40, 100_003).astype(dtype)  # every branch of the approximations
    special_tiled = np.resize(special(dtype), 70_001)  # special values at every SIMD lane, in parallel chunks
    return xs + [special(dtype), sweep, special_tiled]


def _unary_samples(**kwargs):
    return lambda rng, dtype: [Sample((x,), dict(kwargs)) for x in _inputs(rng, dtype)]


def _grad_of_x_samples(**kwargs):
    return lambda rng, dtype: [Sample((randn(rng, x.shape, dtype), x), dict(kwargs)) for x in _inputs(rng, dtype)]


def _grad_of_y_samples(forward):
    def samples(rng, dtype):
        return [Sample((randn(rng, x.shape, dtype), forward(x)), {}) for x in _inputs(rng, dtype)]
    return samples


def _gradcheck(**kwargs):
    return lambda rng: [Sample((away_from_zero(rng, (2, 3, 4), np.float64, 0.05),), dict(kwargs))]


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


for name, kwargs, tol in [
    ("relu", {}, None),
    ("leaky_relu", {"negative_slope": 0.2}, None),
    ("elu", {"alpha": 1.3}, TRANSCENDENTAL_TOL),
    ("gelu", {}, TRANSCENDENTAL_TOL),
    ("silu", {}, TRANSCENDENTAL_TOL),
]:
    extra = {"tol": tol} if tol else {}
    register(OpInfo(name, _unary_samples(**kwargs), grad_samples=_gradcheck(**kwargs), special_values=True, **extra))
    register(OpInfo(name + "_backward", _grad_of_x_samples(**kwargs), special_values=True, **extra))


for name in ("sigmoid", "tanh"):
    register(OpInfo(name, _unary_samples(), grad_samples=_gradcheck(), tol=TRANSCENDENTAL_TOL, special_values=True))
register(OpInfo("sigmoid_backward", _grad_of_y_samples(_sigmoid), tol=TRANSCENDENTAL_TOL))
register(OpInfo("tanh_backward", _grad_of_y_samples(np.tanh), tol=TRANSCENDENTAL_TOL))


def _prelu_samples(rng, dtype):
    out = []
    for shape in [(3, 5, 7, 9), (4, 6), (0, 3), (2, 3, 101, 131)]:
        x = randn(rng, shape, dtype, 3)
        out.append(Sample((x, randn(rng, (shape[1],), dtype))))
        out.append(Sample((x, randn(rng, (), dtype))))
    out.append(Sample((special(dtype), randn(rng, (), dtype))))
    return out


def _prelu_backward_samples(rng, dtype):
    return [Sample((randn(rng, s.args[0].shape, dtype),) + s.args) for s in _prelu_samples(rng, dtype)]


def _prelu_grad(rng):
    x = away_from_zero(rng, (2, 3, 4), np.float64, 0.05)
    return [Sample((x, rng.uniform(0.05, 0.5, 3))), Sample((x, np.array(0.25)))]


register(OpInfo("prelu", _prelu_samples, grad_samples=_prelu_grad, special_values=True))
register(OpInfo("prelu_backward", _prelu_backward_samples, supports_out=False,
                tol={np.float32: (1e-5, 1e-5), np.float64: (1e-11, 1e-12)}))


def _maxout_samples(rng, dtype):
    out = [
        Sample((randn(rng, (3, 12, 5, 7), dtype), 3), {"axis": 1}),
        Sample((randn(rng, (6, 10), dtype), 2), {"axis": 1}),
        Sample((randn(rng, (6, 10), dtype), 3), {"axis": 0}),
        Sample((randn(rng, (4, 5, 9), dtype), 3), {"axis": -1}),
        Sample((randn(rng, (0, 6), dtype), 2), {}),
        Sample((randn(rng, (5, 8), dtype), 1), {}),
        Sample((randn(rng, (32, 64, 17, 19), dtype), 4), {}),
    ]
    ties = np.round(randn(rng, (4, 12, 3), dtype))  # many equal pieces: first maximum wins
    out.append(Sample((ties, 4), {}))
    nan = randn(rng, (4, 6), dtype)
    nan[1, 2] = np.nan
    nan[2, 0] = np.inf
    out.append(Sample((nan, 3), {}))
    return out


def _maxout_backward_samples(rng, dtype):
    import fastnn.reference.activations as ref

    return [Sample((randn(rng, ref.maxout(s.args[0], s.args[1], s.kwargs.get("axis", 1) % s.args[0].ndim).shape, dtype),)
                   + s.args, s.kwargs) for s in _maxout_samples(rng, dtype)]


def _maxout_grad(rng):
    x = rng.permutation(48).reshape(2, 12, 2).astype(np.float64) * 0.1  # distinct: no ties
    return [Sample((x, 3), {"axis": 1})]


register(OpInfo("maxout", _maxout_samples, grad_samples=_maxout_grad))
register(OpInfo("maxout_backward", _maxout_backward_samples))
