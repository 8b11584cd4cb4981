"""Gradient checking with float64 centred differences (cs231n's gradient_check, generalized)."""
import inspect

import numpy as np

from . import _ops


def rel_error(a, b):
    """cs231n's relative error: max |a - b| / max(1e-8, |a| + |b|), elementwise then max."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 and b.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(f, x, df=None, h=1e-5):
    """Centred-difference gradient of f at x (x is perturbed in place and restored).

    f returns a scalar, or an array whose vector-Jacobian product with `df` is taken (cs231n's
    eval_numerical_gradient / eval_numerical_gradient_array).
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)  # a view: x must be contiguous
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be a contiguous array")
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        plus = np.asarray(f(x), dtype=np.float64)
        flat[i] = saved - h
        minus = np.asarray(f(x), dtype=np.float64)
        flat[i] = saved
        diff = plus - minus if df is None else np.sum((plus - minus) * df)
        grad.reshape(-1)[i] = diff / (2 * h)
    return grad


def check_op(name, *inputs, **params):
    """{input name: rel_error(analytic, numerical)} for every gradient `name`'s backward returns.

    Runs on the current backend, in float64 (float inputs are converted). `name` is a forward op
    of fastnn (e.g. "conv2d"); integer inputs (labels) pass unchanged.
    """
    import fastnn

    if name not in _ops.DERIVATIVES:
        raise ValueError(f"check_op: {name!r} has no gradient; ops with one: {sorted(_ops.DERIVATIVES)}")
    backward_name, differentiable, backward_args = _ops.DERIVATIVES[name]
    forward = getattr(fastnn, name)
    names = list(inspect.signature(forward).parameters)[: len(inputs)]
    args = dict(zip(names, (
        np.array(v, dtype=np.float64) if v is not None and np.asarray(v).dtype.kind == "f" else v
        for v in inputs
    )))

    def first_output(**changed):
        result = forward(**{**args, **changed}, **params)
        return result[0] if isinstance(result, tuple) else result

    outputs = forward(**args, **params)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if backward_name is None:
        analytic = (outputs[1],)
        dy = None
    else:
        dy = np.random.default_rng(0).standard_normal(np.shape(outputs[0]))
        backward = getattr(fastnn, backward_name)
        accepted = inspect.signature(backward).parameters
        extra = [outputs[int(a[3:])] if a.startswith("out") else args[a] for a in backward_args]
        passed = {k: v for k, v in {**args, **params}.items() if k in accepted and k not in backward_args}
        analytic = backward(dy, *extra, **passed)
        analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    errors = {}
    for input_name, grad in zip(differentiable, analytic):
        if args.get(input_name) is None:
            continue
        x = args[input_name]
        numeric = numerical_gradient(lambda v: first_output(**{input_name: v}), x, df=dy)
        errors[input_name] = rel_error(grad, numeric)
    return errors
