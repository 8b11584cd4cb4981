"""OpInfo entries: activations."""
import numpy as np
from scipy.special import erf

from opinfo import OpInfo, Sample, Terms, away_from_zero, randn, register, special

SHAPES = [(3, 5, 7, 9), (17,), (0, 4), (), (2, 3, 101, 131)]  # odd; empty; 0-d; above parallel cut-offs
# The polynomial approximations of exp, expm1, tanh and erf are held to a few ulps of the result
# (at most 6 seen in these samples); silu's derivative combines two of them (17 seen).
TRANSCENDENTAL_ULPS = 16.0


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


def _local(magnitude):
    """Terms for an elementwise backward dy * f'(x) whose f' is a sum that cancels: local = |dy| *
    magnitude(x), the size of f''s summands."""
    def terms(args, kwargs, exact):
        dy, t = args[:2]
        with np.errstate(all="ignore"):
            return {0: Terms(local=np.abs(dy) * magnitude(t))}
    return terms


def _sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _phi(x):
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


# gelu' = Phi(x) + x phi(x), silu' = s (1 + x (1 - s)) and tanh' = 1 - y^2 cancel (near x = -0.75,
# x = -1.28 and |y| = 1): their rounding scales with the summands, not with the result.
def _gelu_terms(args, kwargs, exact):
    """gelu = x/2 * (1 + erf(x/sqrt(2))): the sum cancels for x << 0, so its rounding scales with |x|."""
    return {0: Terms(local=np.abs(args[0]))}


def _gelu_tanh_magnitude(x):
    """The summands of the tanh form's derivative 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2): 1 - t^2
    cancels where |t| -> 1, so its rounding scales with 0.5 |x| (1 + t^2) k (1 + 3 c x^2)."""
    k, c = np.sqrt(2 / np.pi), 0.044715
    x2 = np.minimum(x * x, 1e30)
    t = np.tanh(k * (x + c * x2 * x))
    return 0.5 * (1 + np.abs(t)) + 0.5 * np.abs(x) * (1 + t * t) * k * (1 + 3 * c * x2)


BACKWARD_MAGNITUDE = {
    "gelu_backward": lambda x: 0.5 * (1 + np.abs(erf(x / np.sqrt(2)))) + np.abs(x) * _phi(x),
    "silu_backward": lambda x: _sigmoid64(x) * (1 + np.abs(x) * (1 - _sigmoid64(x))),
}


def _gelu_backward_terms(args, kwargs, exact):
    magnitude = _gelu_tanh_magnitude if kwargs.get("approximate") == "tanh" else BACKWARD_MAGNITUDE["gelu_backward"]
    return _local(magnitude)(args, kwargs, exact)


def _both_gelu_forms(factory):
    """gelu's samples: the erf form's, then the same inputs in the tanh form."""
    erf_form, tanh_form = factory(), factory(approximate="tanh")
    return lambda *a: erf_form(*a) + tanh_form(*a)


for name, kwargs, ulps in [
    ("relu", {}, 0.0),
    ("leaky_relu", {"negative_slope": 0.2}, 2.0),  # the slope's rounding and the product's
    ("elu", {"alpha": 1.3}, TRANSCENDENTAL_ULPS),
    ("silu", {}, TRANSCENDENTAL_ULPS),
]:
    backward = name + "_backward"
    terms = _local(BACKWARD_MAGNITUDE[backward]) if backward in BACKWARD_MAGNITUDE else None
    register(OpInfo(name, _unary_samples(**kwargs), grad_samples=_gradcheck(**kwargs), special_values=True,
                    ulps=ulps))
    register(OpInfo(backward, _grad_of_x_samples(**kwargs), special_values=True, terms=terms,
                    ulps=2 * ulps if name == "silu" else ulps))

# gelu in both forms (approximate="none" and "tanh"): the same inputs, special values included
register(OpInfo("gelu", _both_gelu_forms(_unary_samples), grad_samples=_both_gelu_forms(_gradcheck),
                special_values=True, ulps=TRANSCENDENTAL_ULPS, terms=_gelu_terms))
register(OpInfo("gelu_backward", _both_gelu_forms(_grad_of_x_samples), special_values=True,
                terms=_gelu_backward_terms, ulps=TRANSCENDENTAL_ULPS))


for name in ("sigmoid", "tanh"):
    register(OpInfo(name, _unary_samples(), grad_samples=_gradcheck(), ulps=TRANSCENDENTAL_ULPS, special_values=True))
register(OpInfo("sigmoid_backward", _grad_of_y_samples(_sigmoid), ulps=4.0))
register(OpInfo("tanh_backward", _grad_of_y_samples(np.tanh), ulps=4.0, terms=_local(lambda y: 1 + y * y)))


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


def _prelu_backward_terms(args, kwargs, exact):
    """da sums x * dy over the negative inputs of its channel (or of all, for a scalar a)."""
    dy, x, a = args
    contribution = np.abs(np.where(x > 0, 0, x * dy))
    if a.ndim == 0:
        return {1: Terms(x.size, contribution.sum())}
    axes = (0,) + tuple(range(2, x.ndim))
    return {1: Terms(x.size // max(1, x.shape[1]), contribution.sum(axis=axes))}


register(OpInfo("prelu", _prelu_samples, grad_samples=_prelu_grad, special_values=True))
register(OpInfo("prelu_backward", _prelu_backward_samples, supports_out=False, terms=_prelu_backward_terms))


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
    import fastnn

    with fastnn.use_backend("numpy"):
        return [Sample((randn(rng, fastnn.maxout(*s.args, **s.kwargs).shape, dtype),) + s.args, s.kwargs)
                for s in _maxout_samples(rng, dtype)]


def _maxout_grad(rng):
    x = rng.permutation(48).reshape(2, 12, 2).astype(np.float64) * 0.1  # distinct: no ties
    return [Sample((x, 3), {"axis": 1})]


register(OpInfo("maxout", _maxout_samples, grad_samples=_maxout_grad, ulps=0.0))
register(OpInfo("maxout_backward", _maxout_backward_samples, ulps=0.0))
