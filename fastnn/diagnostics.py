"""Training diagnostics (cs231n's babysitting checklist): dead units, activation statistics per
layer, update/weight ratios, the initial loss, and overfitting a tiny subset."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .losses import softmax_cross_entropy

__all__ = ["dead_fraction", "activation_stats", "format_stats", "update_ratios", "check_initial_loss",
           "overfit_small"]


def dead_fraction(a: np.ndarray) -> float:
    """Fraction of units that are <= 0 for every sample of the batch: units a ReLU after them never
    lets through ("dead ReLUs").

    Parameters
    ----------
    a : array_like
        Pre-activations (or activations) of a batch: (N, D), a unit per column, or (N, C, ...), a
        unit per channel (dead when <= 0 at every sample and position).

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        Fewer than 2 dimensions, or no samples or units.

    Examples
    --------
    >>> from fastnn.diagnostics import dead_fraction
    >>> dead_fraction(np.array([[1.0, -1.0], [2.0, 0.0]]))   # column 1 is never positive
    0.5
    """
    a = np.asarray(a)
    if a.ndim < 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"dead_fraction: a must be (N, D) or (N, C, ...) with N, D >= 1, got shape {a.shape}")
    per_unit = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
    return float(np.mean(np.all(per_unit <= 0, axis=1)))


def _layers(model):
    return list(model) if hasattr(model, "layers") else [model]


def _running_stats(layers):
    return [(layer, layer.running_mean.copy(), layer.running_var.copy())
            for layer in layers if hasattr(layer, "running_mean")]


def _saturated(layer, y):
    kind = type(layer).__name__
    if kind == "Tanh":
        return float(np.mean(np.abs(y) > 0.99))
    if kind == "Sigmoid":
        return float(np.mean((y < 0.01) | (y > 0.99)))
    return None


def activation_stats(model: Any, x: np.ndarray) -> list[dict]:
    """Statistics of each layer's output over one forward pass of x.

    BatchNorm running statistics are left as they were (the forward runs in the model's mode).

    Parameters
    ----------
    model : fastnn.nn.Module
        A Sequential (one entry per layer) or a single layer.
    x : ndarray
        An input batch.

    Returns
    -------
    list of dict
        Per layer: ``name`` ("<index>.<Class>"), ``shape``, ``mean``, ``std``, ``zero`` (fraction
        of exact zeros), ``saturated`` (fraction with |tanh| > 0.99, or sigmoid < 0.01 or > 0.99;
        None for other layers) and ``dead`` (`dead_fraction`, for 2-d and 4-d outputs, else None).
        `format_stats` prints them as a table.

    Examples
    --------
    >>> from fastnn import nn
    >>> from fastnn.diagnostics import activation_stats
    >>> model = nn.Sequential(nn.Linear(4, 3, seed=0), nn.Tanh())
    >>> [s["name"] for s in activation_stats(model, np.ones((2, 4), np.float32))]
    ['0.Linear', '1.Tanh']
    """
    layers = _layers(model)
    saved = _running_stats(layers)
    stats = []
    try:
        for i, layer in enumerate(layers):
            x = layer.forward(x)
            y = np.asarray(x, np.float64)
            stats.append({
                "name": f"{i}.{type(layer).__name__}",
                "shape": y.shape,
                "mean": float(y.mean()) if y.size else math.nan,
                "std": float(y.std()) if y.size else math.nan,
                "zero": float(np.mean(y == 0)) if y.size else math.nan,
                "saturated": _saturated(layer, y),
                "dead": dead_fraction(y) if y.ndim in (2, 4) and y.size else None,
            })
    finally:
        for layer, mean, var in saved:
            layer.running_mean[...] = mean
            layer.running_var[...] = var
    return stats


def format_stats(stats: list[dict]) -> str:
    """`activation_stats`' result as a text table: a row per layer (mean, std, zero, dead, saturated).

    Parameters
    ----------
    stats : list of dict
        What `activation_stats` returned.

    Returns
    -------
    str
        Lines joined by newlines; "-" where a statistic does not apply.
    """
    lines = [f"{'layer':<16}{'mean':>10}{'std':>10}{'zero':>8}{'dead':>8}{'satur.':>8}"]
    for s in stats:
        opt = [f"{s[k]:>8.2f}" if s[k] is not None else f"{'-':>8}" for k in ("dead", "saturated")]
        lines.append(f"{s['name']:<16}{s['mean']:>10.3g}{s['std']:>10.3g}{s['zero']:>8.2f}" + "".join(opt))
    return "\n".join(lines)


def update_ratios(params_before: dict[str, np.ndarray], params_after: dict[str, np.ndarray]) -> dict[str, float]:
    """The relative size of one update, per parameter: ``||after - before|| / ||before||``.

    About 1e-3 per step is healthy; much larger means the learning rate is too high, much
    smaller too low.

    Parameters
    ----------
    params_before, params_after : dict of ndarray
        The same keys (e.g. copies of ``model.params`` before a step, and ``model.params`` after).

    Returns
    -------
    dict
        ``{key: ratio}``; 0 when a parameter is 0 before and after, inf when only before.

    Raises
    ------
    ValueError
        The key sets differ.

    Examples
    --------
    >>> from fastnn.diagnostics import update_ratios
    >>> ratios = update_ratios({"w": np.ones(4)}, {"w": np.full(4, 1.001)})
    >>> round(ratios["w"], 6)
    0.001
    """
    if set(params_before) != set(params_after):
        raise ValueError("update_ratios: params_before and params_after must have the same keys")
    ratios = {}
    for key, before in params_before.items():
        before = np.asarray(before, np.float64)
        change = np.linalg.norm(np.asarray(params_after[key], np.float64) - before)
        norm = np.linalg.norm(before)
        ratios[key] = float(change / norm) if norm else (0.0 if change == 0 else math.inf)
    return ratios


def check_initial_loss(model: Any, x: np.ndarray, y: np.ndarray,
                       loss: Callable = softmax_cross_entropy) -> dict[str, float]:
    """The loss of the untrained model on (x, y) against log(num_classes).

    log(num_classes) is the softmax loss of uniform predictions: an untrained model with small
    weights should start close to it (a ratio far from 1 means too large an init or a bug).

    Parameters
    ----------
    model : fastnn.nn.Module
        Its forward gives scores (N, num_classes).
    x : ndarray
        Inputs.
    y : ndarray of int
        Labels (N,).
    loss : callable, default fastnn.softmax_cross_entropy
        ``loss(scores, y) -> (loss, dscores)``.

    Returns
    -------
    dict
        ``loss``, ``expected`` (log(num_classes)) and ``ratio`` (loss / expected).
    """
    scores = model.forward(x)
    value, _ = loss(scores, y)
    expected = math.log(scores.shape[1])
    return {"loss": value, "expected": expected, "ratio": value / expected if expected else math.nan}


def overfit_small(model: Any, x: np.ndarray, y: np.ndarray, optimizer: Any, steps: int,
                  loss: Callable = softmax_cross_entropy) -> float:
    """Train on a tiny batch until it is memorized: a model that cannot overfit 20 samples has a bug.

    The model is trained in place (use a fresh one for the real training) and left in train mode.

    Parameters
    ----------
    model : fastnn.nn.Module
    x : ndarray
        The small batch (e.g. 20 samples).
    y : ndarray of int
        Its labels.
    optimizer : fastnn.optim optimizer
        Anything with ``step(params, grads)``.
    steps : int
        Full-batch steps.
    loss : callable, default fastnn.softmax_cross_entropy
        ``loss(scores, y) -> (loss, dscores)``.

    Returns
    -------
    float
        The training accuracy afterwards, in eval mode (1.0 expected).
    """
    model.train()
    for _ in range(steps):
        _, dscores = loss(model.forward(x), y)
        model.backward(dscores, input_grad=False)
        optimizer.step(model.params, model.grads)
    model.eval()
    try:
        return float(np.mean(np.argmax(model.forward(x), axis=1) == np.asarray(y)))
    finally:
        model.train()
