"""Numba classification losses: rows in parallel (one row per helper call); the per-row losses are
summed serially in float64 afterwards, so the loss does not depend on the thread count.

Signatures follow the contract (fastnn/_ops.Plan): inputs, the gradient to fill, parameters,
n_threads (the dispatcher sets Numba's thread count to it); each returns the loss.
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH_SUMS, PARALLEL, SERIAL
from ._math import _exp


@njit(**dict(SERIAL, fastmath=FASTMATH_SUMS))  # reassoc lets the sum vectorize; kept apart from the exp
def _sum(a):
    total = 0.0
    for j in range(a.size):
        total += a[j]
    return total


@njit(**SERIAL)
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


@njit(**SERIAL)
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


@njit(**PARALLEL)
def _softmax_cross_entropy(logits, labels, dlogits):
    n = logits.shape[0]
    row_loss = np.empty(n)
    for i in prange(n):
        row_loss[i] = _softmax_cross_entropy_row(logits[i], labels[i], 1.0 / n, dlogits[i])
    return row_loss.sum() / n


def softmax_cross_entropy(logits, labels, dlogits, n_threads):
    return float(_softmax_cross_entropy(logits, labels, dlogits))


@njit(**SERIAL)
def _hinge_row(scores, label, margin, scale, dscores):
    """Writes scale * d(loss)/d(scores) of one row; returns its loss. A NaN margin is no violation
    (m > 0 is false), as in torch's multi_margin_loss."""
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


@njit(**PARALLEL)
def _hinge_loss(scores, labels, margin, dscores):
    n = scores.shape[0]
    row_loss = np.empty(n)
    for i in prange(n):
        row_loss[i] = _hinge_row(scores[i], labels[i], margin, 1.0 / n, dscores[i])
    return row_loss.sum() / n


def hinge_loss(scores, labels, dscores, margin, n_threads):
    return float(_hinge_loss(scores, labels, scores.dtype.type(margin), dscores))
