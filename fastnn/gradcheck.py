"""Gradient checking with float64 centred differences (cs231n's gradient_check, generalized)."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from . import _ops


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """cs231n's relative error: ``max(|a - b| / max(1e-8, |a| + |b|))``, elementwise then the max.

    Below about 1e-7 in float64 a gradient is right; near a kink (ReLU at 0) it may be larger.

    Parameters
    ----------
    a, b : array_like
        Same shape (or broadcastable); compared in float64.

    Returns
    -------
    float
        0.0 for two empty arrays.

    Examples
    --------
    >>> from fastnn.gradcheck import rel_error
    >>> rel_error(np.array([1.0, 3.0]), np.array([1.0, 1.0]))   # |3 - 1| / (3 + 1)
    0.5
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 and b.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, df: np.ndarray | None = None,
                       h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of f at x: ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every i.

    cs231n's eval_numerical_gradient (scalar f) and eval_numerical_gradient_array (array f, with
    `df`) in one function. x is perturbed in place and restored; use float64 for meaningful digits.

    Parameters
    ----------
    f : callable
        ``f(x)``: a scalar, or an array (then `df` is required for a gradient of ``sum(f(x) * df)``).
    x : ndarray
        The point, C-contiguous and writable.
    df : ndarray, optional
        The upstream gradient, f(x)'s shape: the result is the vector-Jacobian product.
    h : float, default 1e-5
        The step.

    Returns
    -------
    ndarray
        float64, x's shape.

    Raises
    ------
    ValueError
        x is not contiguous (it is perturbed through a flat view).

    Examples
    --------
    >>> from fastnn.gradcheck import numerical_gradient
    >>> numerical_gradient(lambda v: np.sum(v ** 2), np.array([1.0, -3.0])).round(6)
    array([ 2., -6.])
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


def check_op(name: str, *inputs: Any, **params: Any) -> dict[str, float]:
    """Check an op's backward against float64 centred differences of its forward.

    Runs on the current backend (`fastnn.use_backend` to pick one), in float64: float inputs are
    converted, integer inputs (labels) pass unchanged. The upstream gradient is random (seeded).

    Parameters
    ----------
    name : str
        A forward op of fastnn that has a gradient, e.g. "conv2d", "elu", "softmax_cross_entropy".
    *inputs : array_like
        The forward's positional inputs, in order (None for an absent optional input, e.g. b).
    **params
        The forward's keyword parameters (also passed to the backward where it takes them).

    Returns
    -------
    dict
        ``{input name: rel_error(analytic, numerical)}`` for each gradient the backward returns
        (inputs given as None are left out). Below about 1e-7 is right.

    Raises
    ------
    ValueError
        `name` has no gradient (the message lists the ops that have one).

    Examples
    --------
    >>> import fastnn
    >>> errors = fastnn.gradcheck.check_op("elu", np.random.default_rng(0).standard_normal((3, 4)), alpha=1.0)
    >>> list(errors), errors["x"] < 1e-7
    (['x'], True)
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
    if backward_name is None:  # a loss returns its gradient: of the sum of per-sample losses (reduction "none")
        analytic = (outputs[1],)
        dy = None if np.ndim(outputs[0]) == 0 else np.ones(np.shape(outputs[0]))
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
