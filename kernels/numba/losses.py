"""Numba classification losses: rows in parallel (one row per helper call), per-row losses summed
serially in float64."""
import numpy as np
from numba import njit, prange

_OPTS = dict(parallel=True, cache=True, nogil=True)


@njit(cache=True, nogil=True)
def _softmax_cross_entropy_row(logits, label, scale, dlogits):
    """Writes scale * d(loss)/d(logits) of one row; returns its loss."""
    top = logits.max()  # shifted by the max: stable for huge logits
    total = 0.0
    for j in range(logits.size):
        total += np.exp(logits[j] - top)
    log_total = np.log(total)
    for j in range(logits.size):
        dlogits[j] = np.exp(logits[j] - top - log_total) * scale
    dlogits[label] -= scale
    return log_total - (logits[label] - top)


@njit(**_OPTS)
def _softmax_cross_entropy(logits, labels, dlogits):
    n = logits.shape[0]
    row_loss = np.empty(n)
    for i in prange(n):
        row_loss[i] = _softmax_cross_entropy_row(logits[i], labels[i], 1.0 / n, dlogits[i])
    return row_loss.sum() / n


def softmax_cross_entropy(logits, labels):
    dlogits = np.empty_like(logits)
    return float(_softmax_cross_entropy(logits, labels, dlogits)), dlogits


@njit(cache=True, nogil=True)
def _hinge_row(scores, label, margin, scale, dscores):
    correct = scores[label]
    total = 0.0
    violated = 0
    for j in range(scores.size):
        m = scores[j] - correct + margin  # in the scores' dtype, as the reference
        if j != label and m > 0:
            total += m
            violated += 1
            dscores[j] = scale
        else:
            dscores[j] = 0
    dscores[label] = -violated * scale
    return total


@njit(**_OPTS)
def _hinge_loss(scores, labels, margin, dscores):
    n = scores.shape[0]
    row_loss = np.empty(n)
    for i in prange(n):
        row_loss[i] = _hinge_row(scores[i], labels[i], margin, 1.0 / n, dscores[i])
    return row_loss.sum() / n


def hinge_loss(scores, labels, margin):
    dscores = np.empty_like(scores)
    return float(_hinge_loss(scores, labels, scores.dtype.type(margin), dscores)), dscores
