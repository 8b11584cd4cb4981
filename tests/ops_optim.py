"""OpInfo entries: optimizer steps (param and state buffers updated in place)."""
import numpy as np

from opinfo import OpInfo, Sample, randn, register, special

SHAPES = [(3, 5, 7), (17,), (0, 4), (), (300, 301)]  # odd; empty; 0-d; above the parallel cut-off (65536)
# A few roundings per element (reciprocal folded, fused multiply-adds) against the reference.
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}


def _array(rng, shape, dtype):
    return np.array(randn(rng, shape, dtype))  # 0-d arrays stay arrays (updated in place)


def _state(rng, shape, dtype, positive=False):
    s = _array(rng, shape, dtype)
    return np.abs(s, out=s) if positive else s


def _with_special_grad(rng, dtype, positive_states):
    """(param, grad with NaN/inf/huge values, states...): they must propagate as in the reference."""
    g = special(dtype)
    states = tuple(_state(rng, g.shape, dtype, positive=True) for _ in range(positive_states))
    return (_array(rng, g.shape, dtype), g) + states


# Each list ends with its special-values sample (the first sample serves the generic dtype checks).
def _sgd_samples(rng, dtype):
    out = []
    for shape in SHAPES:
        p, g = _array(rng, shape, dtype), _array(rng, shape, dtype)
        out.append(Sample((p, g, None), {"lr": 0.1}, "plain"))
        out.append(Sample((p, g, None), {"lr": 0.1, "weight_decay": 0.01}, "plain wd"))
        out.append(Sample((p, g, _state(rng, shape, dtype)), {"lr": 0.05, "momentum": 0.9}, "momentum"))
        out.append(Sample((p, g, _state(rng, shape, dtype)),
                          {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}, "nesterov wd"))
    special_args = _with_special_grad(rng, dtype, 1)
    return out + [Sample(special_args, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, "special")]


def _adagrad_samples(rng, dtype):
    out = [Sample((_array(rng, s, dtype), _array(rng, s, dtype), _state(rng, s, dtype, True)), {"lr": 0.1})
           for s in SHAPES]
    return out + [Sample(_with_special_grad(rng, dtype, 1), {"lr": 0.1}, "special")]


def _rmsprop_samples(rng, dtype):
    out = [Sample((_array(rng, s, dtype), _array(rng, s, dtype), _state(rng, s, dtype, True)),
                  {"lr": 0.01, "alpha": 0.9}) for s in SHAPES]
    return out + [Sample(_with_special_grad(rng, dtype, 1), {"lr": 0.01}, "special")]


def _adam_samples(rng, dtype):
    out = []
    for shape in SHAPES:
        args = (_array(rng, shape, dtype), _array(rng, shape, dtype), _state(rng, shape, dtype),
                _state(rng, shape, dtype, True))
        out.append(Sample(args + (1,), {"lr": 1e-2}, "first step"))
        out.append(Sample(args + (7,), {"lr": 1e-3, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1}, "step 7 wd"))
    p, g, v = _with_special_grad(rng, dtype, 1)
    return out + [Sample((p, g, _state(rng, g.shape, dtype), v, 3), {"lr": 1e-2, "weight_decay": 0.1}, "special")]


for name, samples, in_place in [("sgd_step", _sgd_samples, (0, 2)), ("adagrad_step", _adagrad_samples, (0, 2)),
                                ("rmsprop_step", _rmsprop_samples, (0, 2)), ("adam_step", _adam_samples, (0, 2, 3))]:
    register(OpInfo(name, samples, tol=TOL, supports_out=False, special_values=True, in_place=in_place))
