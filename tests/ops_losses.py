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


def _softmax_terms(args, kwargs, exact):
    """Row r's softmax divides exp(z - max) by a sum of C terms; exp turns the rounding of its
    argument into a relative error of |z - max| ulps. The loss averages N log-probabilities."""
    z, labels = args
    n, classes = z.shape
    if n == 0:
        return {}
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    spread = 1 + np.sqrt(classes) + np.abs(shifted) + (p * np.abs(shifted)).sum(axis=1, keepdims=True)
    onehot = np.zeros_like(z)
    onehot[rows, labels] = 1
    log_prob = np.abs(np.log(p[rows, labels] + 1e-300))
    loss_local = (np.abs(z.max(axis=1)) + np.abs(z[rows, labels]) + spread.max(axis=1)).mean()
    return {0: Terms(n, log_prob.mean(), loss_local), 1: Terms(local=(p * spread + onehot) / n)}


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


register(OpInfo("softmax_cross_entropy", _samples(), grad_samples=_grad_samples(), supports_out=False,
                terms=_softmax_terms, ulps=8.0))
register(OpInfo("hinge_loss", _samples(margin=0.7), grad_samples=_grad_samples(margin=0.7), supports_out=False,
                terms=_hinge_terms))
