"""OpInfo entries: optimizer steps (param and state buffers updated in place)."""
import numpy as np

from opinfo import OpInfo, Sample, Terms, randn, register, special

SHAPES = [(3, 5, 7), (17,), (0, 4), (), (300, 301)]  # odd; empty; 0-d; above the parallel cut-off (65536)
# Elementwise updates: a few roundings per element, each relative to the magnitude of the values
# combined (the parameter and its step, not their difference).


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


def _abs(a):
    return np.abs(np.asarray(a, np.float64))


def _scaled(factor, a):
    """factor * |a|, and 0 for a factor of 0 (whatever a holds: an inf parameter adds no decay term)."""
    return factor * _abs(a) if factor else 0.0


def _sgd_terms(args, kwargs, exact):
    p, g, buf = args
    lr, m, wd = kwargs["lr"], kwargs.get("momentum", 0.0), kwargs.get("weight_decay", 0.0)
    grad = _abs(g) + _scaled(wd, p)
    if not m:
        return {"arg0": Terms(local=_abs(p) + lr * grad)}
    new_buf = _scaled(m, buf) + grad
    step = grad + _scaled(m, new_buf) if kwargs.get("nesterov") else new_buf
    return {"arg0": Terms(local=_abs(p) + lr * step), "arg2": Terms(local=new_buf)}


def _adagrad_terms(args, kwargs, exact):
    p, g, state = args
    new_state = _abs(state) + _abs(g) ** 2
    step = kwargs["lr"] * _abs(g) / (np.sqrt(new_state) + kwargs.get("eps", 1e-10))
    return {"arg0": Terms(local=_abs(p) + step), "arg2": Terms(local=new_state)}


def _rmsprop_terms(args, kwargs, exact):
    p, g, state = args
    alpha = kwargs.get("alpha", 0.99)
    new_state = alpha * _abs(state) + (1 - alpha) * _abs(g) ** 2
    step = kwargs["lr"] * _abs(g) / (np.sqrt(new_state) + kwargs.get("eps", 1e-8))
    return {"arg0": Terms(local=_abs(p) + step), "arg2": Terms(local=new_state)}


def _adam_terms(args, kwargs, exact):
    p, g, m, v, step = args
    lr, b1, b2 = kwargs["lr"], kwargs.get("beta1", 0.9), kwargs.get("beta2", 0.999)
    grad = _abs(g) + _scaled(kwargs.get("weight_decay", 0.0), p)
    new_m = _abs(m) + (1 - b1) * (grad + _abs(m))  # torch's lerp: m + (1 - b1) * (g - m)
    new_v = b2 * _abs(v) + (1 - b2) * grad ** 2
    denominator = np.sqrt(new_v) / np.sqrt(1 - b2 ** step) + kwargs.get("eps", 1e-8)
    update = lr / (1 - b1 ** step) * new_m / denominator
    return {"arg0": Terms(local=_abs(p) + update), "arg2": Terms(local=new_m), "arg3": Terms(local=new_v)}


for name, samples, in_place, terms in [
    ("sgd_step", _sgd_samples, (0, 2), _sgd_terms), ("adagrad_step", _adagrad_samples, (0, 2), _adagrad_terms),
    ("rmsprop_step", _rmsprop_samples, (0, 2), _rmsprop_terms), ("adam_step", _adam_samples, (0, 2, 3), _adam_terms),
]:
    register(OpInfo(name, samples, supports_out=False, special_values=True, in_place=in_place, ulps=8.0,
                    terms=lambda *a, terms=terms: {0: terms(*a)["arg0"], **terms(*a)}))  # returns param
