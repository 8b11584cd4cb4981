"""Training diagnostics (cs231n's babysitting checklist): dead units, activation statistics per
layer, update/weight ratios, the initial loss, and overfitting a tiny subset."""
import math

import numpy as np

from .losses import softmax_cross_entropy

__all__ = ["dead_fraction", "activation_stats", "format_stats", "update_ratios", "check_initial_loss",
           "overfit_small"]


def dead_fraction(a):
    """Fraction of units (columns of (N, D), channels of (N, C, ...)) that are <= 0 for every sample
    of the batch (and every position): units a ReLU after them never lets through."""
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


def activation_stats(model, x):
    """One forward pass; per layer a dict: name ("<index>.<Class>"), shape, mean, std, zero (fraction
    of exact zeros), saturated (|tanh| > 0.99, sigmoid < 0.01 or > 0.99; None for other layers),
    and dead (dead_fraction, for 2-d and 4-d outputs). BatchNorm running statistics are left as
    they were."""
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


def format_stats(stats):
    """activation_stats as a text table."""
    lines = [f"{'layer':<16}{'mean':>10}{'std':>10}{'zero':>8}{'dead':>8}{'satur.':>8}"]
    for s in stats:
        opt = [f"{s[k]:>8.2f}" if s[k] is not None else f"{'-':>8}" for k in ("dead", "saturated")]
        lines.append(f"{s['name']:<16}{s['mean']:>10.3g}{s['std']:>10.3g}{s['zero']:>8.2f}" + "".join(opt))
    return "\n".join(lines)


def update_ratios(params_before, params_after):
    """{key: ||after - before|| / ||before||} per parameter; ~1e-3 per step is healthy (much larger:
    lr too high; much smaller: too low). 0 before and after gives 0; 0 before only, inf."""
    if set(params_before) != set(params_after):
        raise ValueError("update_ratios: params_before and params_after must have the same keys")
    ratios = {}
    for key, before in params_before.items():
        before = np.asarray(before, np.float64)
        change = np.linalg.norm(np.asarray(params_after[key], np.float64) - before)
        norm = np.linalg.norm(before)
        ratios[key] = float(change / norm) if norm else (0.0 if change == 0 else math.inf)
    return ratios


def check_initial_loss(model, x, y, loss=softmax_cross_entropy):
    """The loss of the untrained model on (x, y) against log(num_classes), the softmax loss of
    uniform predictions (small weights should start close to it). Returns {"loss", "expected",
    "ratio"}."""
    scores = model.forward(x)
    value, _ = loss(scores, y)
    expected = math.log(scores.shape[1])
    return {"loss": value, "expected": expected, "ratio": value / expected if expected else math.nan}


def overfit_small(model, x, y, optimizer, steps, loss=softmax_cross_entropy):
    """Train on the small batch (x, y) for `steps` full-batch steps; returns the training accuracy
    afterwards (1.0 expected: a model that cannot overfit 20 samples has a bug)."""
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
