"""Numba classification losses: rows in parallel (one row per helper call), per-row losses summed
serially in float64."""
import numpy as np
from numba import njit, prange

from ._math import _exp

_OPTS = dict(parallel=True, cache=True, nogil=True)


# reassoc lets the sum vectorize (no nnan/ninf: NaN and inf still propagate). Kept apart from the
# exp, whose range reduction must not be reassociated.
@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _sum(a):
    total = 0.0
    for j in range(a.size):
        total += a[j]
    return total


@njit(cache=True, nogil=True)
def _row_max(a):
    """max(a) over 16 independent lanes, which vectorize (a.max() ran one compare at a time: half of
    softmax_cross_entropy's time). NaN is skipped here; it still reaches the loss through exp."""
    n = a.size
    tail = n - n % 16
    lanes = np.full(16, -np.inf, dtype=a.dtype)
    for j0 in range(0, tail, 16):
        for lane in range(16):
            v = a[j0 + lane]
            if v > lanes[lane]:
                lanes[lane] = v
    top = lanes.max()
    for j in range(tail, n):
        if a[j] > top:
            top = a[j]
    return top


@njit(cache=True, nogil=True)
def _softmax_cross_entropy_row(logits, label, scale, dlogits):
    """Writes scale * d(loss)/d(logits) of one row; returns its loss."""
    top = _row_max(logits)  # shifted by the max: stable for huge logits
    for j in range(logits.size):
        dlogits[j] = _exp(logits[j] - top)  # float32: the vectorizable exp (Numba's np.exp is scalar)
    total = _sum(dlogits)
    factor = scale / total
    for j in range(logits.size):
        dlogits[j] *= factor
    dlogits[label] -= scale
    return np.log(total) - (logits[label] - top)


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
