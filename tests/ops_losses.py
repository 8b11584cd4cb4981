"""OpInfo entries: softmax cross-entropy and the multiclass SVM (hinge) loss."""
import numpy as np

from opinfo import OpInfo, Sample, Terms, randn, register

LABEL_DTYPES = (np.int64, np.int32, np.uint8, np.int16)


def _samples(**kwargs):
    def samples(rng, dtype):
        out = []
        for i, (n, classes, scale) in enumerate([(5, 7, 3.0), (1, 1, 1.0), (64, 1000, 2.0), (33, 10, 1e4)]):
            labels = rng.integers(0, classes, n).astype(LABEL_DTYPES[i % len(LABEL_DTYPES)])
            out.append(Sample((randn(rng, (n, classes), dtype, scale), labels), dict(kwargs), note=f"({n}, {classes}) x{scale}"))
        ties = np.zeros((4, 6), dtype)  # every margin exactly at the kink
        out.append(Sample((ties, np.array([0, 1, 2, 5])), dict(kwargs), note="ties"))
        return out
    return samples


def _grad_samples(**kwargs):
    def samples(rng):
        return [Sample((rng.standard_normal((6, 5)), rng.integers(0, 5, 6)), dict(kwargs))]
    return samples


def _rows(a, classes):
    """softmax_cross_entropy's layout: (N, C, d...) -> (N * d..., C) rows; (C,) -> (1, C)."""
    if a.ndim == 1:
        return a.reshape(1, classes)
    positions = int(np.prod(a.shape[2:]))
    return np.moveaxis(a.reshape(a.shape[0], classes, positions), 1, 2).reshape(-1, classes)


def _targets(z, labels, kwargs):
    """(T, denominator): T[r, c] = d(row r's loss)/d(-log p[r, c]) (torch's cross_entropy options)."""
    n, classes = z.shape
    w = kwargs.get("weight")
    w = np.ones(classes) if w is None else np.asarray(w, np.float64)
    eps = kwargs.get("label_smoothing", 0.0)
    if labels.dtype.kind == "f":
        t = _rows(labels, classes)
        return (t * (1 - eps) + eps / classes if eps else t) * w, n
    y = labels.reshape(-1)
    kept = y != kwargs.get("ignore_index", -100)
    safe = np.where(kept, y, 0)
    T = np.zeros((n, classes))
    T[np.arange(n), safe] = (1 - eps) * w[safe]
    T += eps / classes * w
    return T * kept[:, None], (kept * w[safe]).sum()


def _softmax_terms(args, kwargs, exact):
    """Row r's softmax divides exp(z - max) by a sum of C terms; exp turns the rounding of its
    argument into a relative error of |z - max| ulps. A row's loss sums C terms T[r, c] * -log p[r, c]
    (T: the weighted, smoothed target); the gradient is scale * (p * sum_c T - T); the loss reduces
    the rows (N of them)."""
    logits, labels = args
    classes = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
    z = _rows(logits, classes)
    n = z.shape[0]
    if n == 0:
        return {}
    T, denominator = _targets(z, labels, kwargs)
    reduction = kwargs.get("reduction", "mean")
    with np.errstate(all="ignore"):
        scale = 1 / np.float64(denominator) if reduction == "mean" else 1.0
        top = z.max(axis=1, keepdims=True)
        shifted = z - top
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        spread = 1 + np.sqrt(classes) + np.abs(shifted) + (p * np.abs(shifted)).sum(axis=1, keepdims=True)
        row_local = (np.abs(T) * (np.abs(z) + np.abs(top) + spread)).sum(axis=1)
        row_loss = (T * -np.log(p + 1e-300)).sum(axis=1)
        grad_local = (p * spread * np.abs(T).sum(axis=1, keepdims=True) + np.abs(T)) * abs(scale)
    if logits.ndim == 1:
        grad_local = grad_local.reshape(logits.shape)
    else:
        positions = int(np.prod(logits.shape[2:]))
        grad_local = np.moveaxis(grad_local.reshape(logits.shape[0], positions, classes), 2, 1).reshape(logits.shape)
    if reduction == "none":
        loss = Terms(local=row_local.reshape(np.shape(exact[0])))
    else:
        loss = Terms(n, np.abs(row_loss).sum() * abs(scale), row_local.sum() * abs(scale))
    return {0: loss, 1: Terms(local=grad_local)}


def _hinge_terms(args, kwargs, exact):
    """The loss sums the N * C margins max(0, s_j - s_y + margin) / N."""
    s, labels = args
    n = s.shape[0]
    if n == 0:
        return {}
    rows = np.arange(n)
    parts = np.abs(s) + np.abs(s[rows, labels])[:, None] + kwargs.get("margin", 1.0)
    return {0: Terms(s.size, np.maximum(0, s - s[rows, labels][:, None] + kwargs.get("margin", 1.0)).sum() / n,
                     parts.sum() / n)}


REDUCTIONS = ("mean", "sum", "none")


def _ce_option_samples(rng, dtype):
    """torch's cross_entropy options: every reduction x weight x label smoothing x ignored labels
    on class indices, ignore_index a class, all labels ignored, (N, C, d...) and (C,) logits,
    probabilities (with weight and smoothing, spatial, unbatched), 1000 classes."""
    out = []
    n, c = 7, 5
    clean = rng.integers(0, c, n)
    ignored = clean.copy()
    ignored[[1, 4]] = -100
    w = rng.uniform(0.5, 2.0, c).astype(dtype)
    for reduction in REDUCTIONS:
        for weight in (None, w):
            for smoothing in (0.0, 0.15):
                for y, what in ((clean, ""), (ignored, " 2 ignored")):
                    kwargs = dict(reduction=reduction, label_smoothing=smoothing, **({} if weight is None else {"weight": w}))
                    out.append(Sample((randn(rng, (n, c), dtype, 3.0), y), kwargs, note=f"(7, 5){what}"))
        # a class as ignore_index (uint8 labels), every label ignored (mean: NaN, as torch)
        out.append(Sample((randn(rng, (6, 4), dtype), np.array([2, 0, 2, 3, 1, 2], np.uint8)),
                          dict(reduction=reduction, ignore_index=2, weight=w[:4]), note="ignore_index=2"))
        out.append(Sample((randn(rng, (3, 4), dtype), np.full(3, -100)), dict(reduction=reduction, label_smoothing=0.1),
                          note="all ignored"))
        # spatial (N, C, d1, d2) / (N, C, d) and unbatched (C,)
        y = rng.integers(0, c, (3, 4, 3)).astype(np.uint8)
        y[0, 1, :2] = 255
        out.append(Sample((randn(rng, (3, c, 4, 3), dtype, 2.0), y),
                          dict(reduction=reduction, ignore_index=255, weight=w, label_smoothing=0.2), note="spatial"))
        out.append(Sample((randn(rng, (2, c, 7), dtype), rng.integers(0, c, (2, 7))), dict(reduction=reduction),
                          note="(N, C, d)"))
        out.append(Sample((randn(rng, (c,), dtype), np.int64(3)), dict(reduction=reduction, label_smoothing=0.05),
                          note="unbatched"))
        # probabilities
        for weight in (None, w):
            for smoothing in (0.0, 0.3):
                kwargs = dict(reduction=reduction, label_smoothing=smoothing, **({} if weight is None else {"weight": w}))
                probs = rng.dirichlet(np.ones(c), 6).astype(dtype)
                out.append(Sample((randn(rng, (6, c), dtype, 2.0), probs), kwargs, note="probabilities"))
        probs = np.moveaxis(rng.dirichlet(np.ones(c), (2, 3, 4)), -1, 1).astype(dtype)
        out.append(Sample((randn(rng, (2, c, 3, 4), dtype), probs), dict(reduction=reduction, weight=w),
                          note="spatial probabilities"))
        out.append(Sample((randn(rng, (c,), dtype), rng.dirichlet(np.ones(c)).astype(dtype)),
                          dict(reduction=reduction, label_smoothing=0.1), note="unbatched probabilities"))
    wide = rng.uniform(0.5, 2.0, 1000).astype(dtype)
    out.append(Sample((randn(rng, (64, 1000), dtype, 2.0), rng.integers(0, 1000, 64)),
                      dict(weight=wide, label_smoothing=0.1), note="(64, 1000) weight smoothing"))
    out.append(Sample((randn(rng, (33, 1000), dtype, 2.0), rng.dirichlet(np.ones(1000), 33).astype(dtype)),
                      dict(label_smoothing=0.1, reduction="sum"), note="(33, 1000) probabilities"))
    return out


def _ce_grad_samples(rng):
    """Every reduction and option, float64 (centred differences; "none": the gradient of the sum)."""
    out = _grad_samples()(rng)
    w = rng.uniform(0.5, 2.0, 5)
    y = rng.integers(0, 5, 6)
    y[2] = -100
    probs = rng.dirichlet(np.ones(5), 6)
    for reduction in REDUCTIONS:
        out += [Sample((rng.standard_normal((6, 5)), y), dict(reduction=reduction)),
                Sample((rng.standard_normal((6, 5)), y), dict(reduction=reduction, weight=w)),
                Sample((rng.standard_normal((6, 5)), y), dict(reduction=reduction, label_smoothing=0.2)),
                Sample((rng.standard_normal((6, 5)), y), dict(reduction=reduction, weight=w, label_smoothing=0.2)),
                Sample((rng.standard_normal((6, 5)), y % 5), dict(reduction=reduction, ignore_index=1, weight=w)),
                Sample((rng.standard_normal((2, 5, 2, 3)), rng.integers(0, 5, (2, 2, 3))),
                       dict(reduction=reduction, weight=w, label_smoothing=0.1)),
                Sample((rng.standard_normal(5), np.int64(2)), dict(reduction=reduction)),
                Sample((rng.standard_normal((6, 5)), probs), dict(reduction=reduction)),
                Sample((rng.standard_normal((6, 5)), probs), dict(reduction=reduction, weight=w, label_smoothing=0.3)),
                Sample((rng.standard_normal((2, 5, 3)), np.moveaxis(rng.dirichlet(np.ones(5), (2, 3)), -1, 1)),
                       dict(reduction=reduction))]
    return out


def _ce_samples(rng, dtype):
    return _samples()(rng, dtype) + _ce_option_samples(rng, dtype)


register(OpInfo("softmax_cross_entropy", _ce_samples, grad_samples=_ce_grad_samples, supports_out=False,
                terms=_softmax_terms, ulps=8.0))
register(OpInfo("hinge_loss", _samples(margin=0.7), grad_samples=_grad_samples(margin=0.7), supports_out=False,
                terms=_hinge_terms))
