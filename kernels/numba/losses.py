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


NONE, MEAN, SUM = 0, 1, 2  # the reduction codes (fastnn/losses.py)


@njit(**SERIAL)
def _divide(a, b):
    """a / b with IEEE's division by zero (Numba's error model raises ZeroDivisionError)."""
    return a / b if b != 0 else a * np.inf  # 0 * inf is NaN, as 0 / 0


@njit(**SERIAL)
def _exp_row(logits, out):
    """out[j] = exp(logits[j] - max); returns (max, sum of out)."""
    top = _row_max(logits)  # shifted by the max: stable for huge logits
    for j in range(logits.size):
        out[j] = _exp(logits[j] - top)  # float32: the vectorizable exp (Numba's np.exp is scalar)
    return top, _sum(out)


@njit(**dict(SERIAL, fastmath=FASTMATH_SUMS))  # reassoc: the sums vectorize (a float64 add chain)
def _smoothing_sum(logits, weight, log_total, top):
    """sum_c w[c] * -log p[c] (weight.size 0: all 1)."""
    total = 0.0
    if weight.size:
        for c in range(logits.size):
            total += weight[c] * (log_total - (logits[c] - top))
    else:
        for c in range(logits.size):
            total += log_total - (logits[c] - top)
    return total


@njit(**dict(SERIAL, fastmath=FASTMATH_SUMS))  # reassoc: the sums vectorize (a float64 add chain)
def _target_sums(logits, target, weight, smoothing, log_total, top):
    """(sum_c t[c], sum_c t[c] * -log p[c]) of t = w * ((1 - eps) * target + eps / C)."""
    keep, s = 1.0 - smoothing, smoothing / logits.size
    tsum, loss = 0.0, 0.0
    for c in range(logits.size):
        t = target[c] * keep + s if smoothing > 0 else target[c] * 1.0
        if weight.size:
            t *= weight[c]
        tsum += t
        loss += t * (log_total - (logits[c] - top))
    return tsum, loss


@njit(**SERIAL)
def _softmax_row(logits, label, scale, dlogits):
    """Writes scale * d(loss)/d(logits) of one row, loss = -log p[label]; returns its loss. (The exp
    loop inline: through _exp_row this row ran 13 ns slower at C = 10.)"""
    top = _row_max(logits)  # shifted by the max: stable for huge logits
    for j in range(logits.size):
        dlogits[j] = _exp(logits[j] - top)  # float32: the vectorizable exp (Numba's np.exp is scalar)
    total = _sum(dlogits)
    factor = scale / total
    for j in range(logits.size):
        dlogits[j] *= factor
    dlogits[label] -= scale
    return np.log(total) - (logits[label] - top)


@njit(**SERIAL)
def _class_row(logits, label, weight, wsum, smoothing, scale, dlogits):
    """Writes scale * d(loss)/d(logits) of one row, loss = (1 - eps) * w[y] * -log p[y]
    + eps / C * sum_c w[c] * -log p[c] (weight.size 0: all 1; label < 0: an ignored row, passed with
    scale 0, whose gradient is 0 * softmax, and whose loss the caller drops); returns its loss."""
    top, total = _exp_row(logits, dlogits)
    w_label = 0.0 if label < 0 else (weight[label] if weight.size else 1.0)
    keep = 1.0 - smoothing
    a = scale * keep * w_label  # d(loss)/d(logits) = softmax * (this + the smoothing's sum) - target
    if smoothing > 0:
        a += scale * smoothing * wsum  # (eps / C) * sum_c w[c] * scale
    factor = a / total
    for j in range(logits.size):
        dlogits[j] *= factor
    log_total = np.log(total)
    loss = 0.0
    if smoothing > 0:
        bs = scale * smoothing / logits.size
        if weight.size:
            for j in range(logits.size):
                dlogits[j] -= bs * weight[j]
        else:
            for j in range(logits.size):
                dlogits[j] -= bs
        loss = smoothing / logits.size * _smoothing_sum(logits, weight, log_total, top)
    if label < 0:
        return 0.0
    dlogits[label] -= scale * keep * w_label
    return loss + keep * w_label * (log_total - (logits[label] - top))


@njit(**SERIAL)
def _class_denominator(labels, weight, ignore_index, reduction):
    """The mean's denominator, the weights of the labels kept (1 for the other reductions)."""
    if reduction != MEAN:
        return 1.0
    denominator = 0.0
    for i in range(labels.size):
        if labels[i] != ignore_index:
            denominator += weight[labels[i]] if weight.size else 1.0
    return denominator


@njit(**SERIAL)
def _mean_weight(weight, classes):
    """sum_c w[c] / C (the smoothing's): 1 without weights."""
    if weight.size == 0:
        return 1.0
    total = 0.0
    for c in range(weight.size):
        total += weight[c]
    return total / classes


@njit(**PARALLEL)
def _class_loss(logits, labels, weight, ignore_index, smoothing, reduction, dlogits, row_loss):
    """(R, C) rows: the reduced loss; row_loss (R,) float64 receives each row's loss."""
    wsum = _mean_weight(weight, logits.shape[1])
    denominator = _class_denominator(labels, weight, ignore_index, reduction)
    scale = _divide(1.0, denominator)
    for i in prange(logits.shape[0]):
        label = labels[i]
        if label == ignore_index:
            _class_row(logits[i], -1, weight, wsum, smoothing, 0.0, dlogits[i])
            row_loss[i] = 0.0
        else:
            row_loss[i] = _class_row(logits[i], label, weight, wsum, smoothing, scale, dlogits[i])
    return _divide(row_loss.sum(), denominator)


@njit(**PARALLEL)
def _plain_loss(logits, labels, ignore_index, reduction, dlogits, row_loss):
    """_class_loss without weights or smoothing, its own function: fewer steps per row (1.5 us at
    (100, 10)), and a prange under a branch scaled worse on 2 threads."""
    denominator = _class_denominator(labels, logits[0, :0], ignore_index, reduction)
    scale = _divide(1.0, denominator)
    for i in prange(logits.shape[0]):
        label = labels[i]
        if label == ignore_index:  # 0 * softmax: NaN where the row's softmax is, as torch
            _softmax_row(logits[i], 0, 0.0, dlogits[i])
            row_loss[i] = 0.0
        else:
            row_loss[i] = _softmax_row(logits[i], label, scale, dlogits[i])
    return _divide(row_loss.sum(), denominator)


PLANE_TILE = 256  # positions per task of the (N, C, S) kernel


@njit(**SERIAL)
def _tile_softmax(z, top, d, total):
    """One class of a tile: d = exp(z - top), total += d (1-D slices: this vectorizes)."""
    for k in range(z.size):
        e = _exp(z[k] - top[k])
        d[k] = e
        total[k] += e


@njit(**SERIAL)
def _tile_max(z, top):
    for k in range(z.size):
        top[k] = z[k] if z[k] > top[k] else top[k]  # NaN is skipped here; it reaches the loss through exp


@njit(**SERIAL)
def _tile_exp(logits, i, s0, m, dlogits):
    """dlogits[i, :, s0:s0 + m] = e^(logits - top), top the max over the classes per position:
    (top, the sums of the exponentials)."""
    classes = logits.shape[1]
    top = logits[i, 0, s0:s0 + m].copy()
    for c in range(1, classes):
        _tile_max(logits[i, c, s0:s0 + m], top)
    total = np.zeros(m)
    for c in range(classes):
        _tile_softmax(logits[i, c, s0:s0 + m], top, dlogits[i, c, s0:s0 + m], total)
    return top, total


@njit(**SERIAL)
def _class_tile(logits, i, s0, m, labels, weight, wsum, ignore_index, smoothing, scale, dlogits, row_loss):
    """Positions s0 .. s0 + m - 1 of sample i (logits and dlogits (N, C, S); labels and row_loss: the
    tile's m). The row code's steps, each a loop over the classes of one over the positions, which
    vectorizes (C = 21 rows of a segmentation cost 10x torch one row at a time); the slices are
    taken per class on the last axis, C-contiguous for Numba (a (C, m) slice did not vectorize: 4x)."""
    classes = logits.shape[1]
    top, total = _tile_exp(logits, i, s0, m, dlogits)
    keep = 1.0 - smoothing
    spread = smoothing * wsum if smoothing > 0 else 0.0  # the smoothing's share of softmax's coefficient
    log_total, target, row_scale = np.empty(m), np.empty(m), np.empty(m)
    for k in range(m):
        label = labels[k]
        row_scale[k] = 0.0 if label == ignore_index else scale  # ignored: 0 * softmax, as the rows
        target[k] = 0.0 if label == ignore_index else keep * (weight[label] if weight.size else 1.0)
        log_total[k] = np.log(total[k])
        total[k] = row_scale[k] * (target[k] + spread) / total[k]  # now the factor on the softmax
    smooth = np.zeros(m)
    for c in range(classes):
        dc, zc = dlogits[i, c, s0:s0 + m], logits[i, c, s0:s0 + m]
        for k in range(m):
            dc[k] *= total[k]
        if smoothing > 0:
            w = weight[c] if weight.size else 1.0
            for k in range(m):
                smooth[k] += w * (log_total[k] - (zc[k] - top[k]))
                dc[k] -= row_scale[k] * smoothing / classes * w
    for k in range(m):
        label = labels[k]
        if label == ignore_index:
            row_loss[k] = 0.0
        else:
            dlogits[i, label, s0 + k] -= row_scale[k] * target[k]
            row_loss[k] = (smoothing / classes * smooth[k]
                           + target[k] * (log_total[k] - (logits[i, label, s0 + k] - top[k])))


@njit(**PARALLEL)
def _class_loss_planes(logits, labels, weight, ignore_index, smoothing, reduction, dlogits, row_loss):
    """(N, C, S) logits and gradient, labels and row_loss (N * S,): tiles of positions in parallel."""
    n, positions = logits.shape[0], logits.shape[2]
    wsum = _mean_weight(weight, logits.shape[1])
    denominator = _class_denominator(labels, weight, ignore_index, reduction)
    scale = _divide(1.0, denominator)
    tiles = (positions + PLANE_TILE - 1) // PLANE_TILE
    for task in prange(n * tiles):
        i, s0 = task // tiles, task % tiles * PLANE_TILE
        s1, r = min(s0 + PLANE_TILE, positions), i * positions + s0
        _class_tile(logits, i, s0, s1 - s0, labels[r:r + s1 - s0], weight, wsum, ignore_index, smoothing, scale,
                    dlogits, row_loss[r:r + s1 - s0])
    return _divide(row_loss.sum(), denominator)


@njit(**SERIAL)
def _probability_row(logits, target, weight, smoothing, scale, dlogits):
    """Writes scale * d(loss)/d(logits) of one row, loss = -sum_c w[c] * t[c] * log p[c] with
    t = (1 - eps) * target + eps / C (weight.size 0: all 1); returns its loss."""
    top, total = _exp_row(logits, dlogits)
    log_total = np.log(total)
    keep, s = 1.0 - smoothing, smoothing / logits.size
    tsum, loss = _target_sums(logits, target, weight, smoothing, log_total, top)
    factor = scale * tsum / total
    for j in range(logits.size):
        t = target[j] * keep + s if smoothing > 0 else target[j] * 1.0
        if weight.size:
            t *= weight[j]
        dlogits[j] = dlogits[j] * factor - scale * t
    return loss


@njit(**PARALLEL)
def _probability_loss(logits, targets, weight, smoothing, reduction, dlogits, row_loss):
    n = logits.shape[0]
    scale = 1.0 / n if reduction == MEAN else 1.0  # torch's mean: over the rows, weighted or not
    for i in prange(n):
        row_loss[i] = _probability_row(logits[i], targets[i], weight, smoothing, scale, dlogits[i])
    total = row_loss.sum()
    return total / n if reduction == MEAN else total


@njit(**SERIAL)
def _probability_tile(logits, targets, i, s0, m, weight, smoothing, scale, dlogits, row_loss):
    """Positions s0 .. s0 + m - 1 of sample i of (N, C, S) logits, targets and dlogits (row_loss: the
    tile's m): _probability_row's steps as loops over the positions (see _class_tile)."""
    classes = logits.shape[1]
    top, total = _tile_exp(logits, i, s0, m, dlogits)
    keep, s = 1.0 - smoothing, smoothing / classes
    log_total = np.log(total)
    tsum, loss = np.zeros(m), np.zeros(m)
    for c in range(classes):
        zc, tc = logits[i, c, s0:s0 + m], targets[i, c, s0:s0 + m]
        w = weight[c] if weight.size else 1.0
        for k in range(m):
            t = (tc[k] * keep + s if smoothing > 0 else tc[k] * 1.0) * w
            tsum[k] += t
            loss[k] += t * (log_total[k] - (zc[k] - top[k]))
    for k in range(m):
        total[k] = scale * tsum[k] / total[k]  # now the factor on the softmax
        row_loss[k] = loss[k]
    for c in range(classes):
        dc, tc = dlogits[i, c, s0:s0 + m], targets[i, c, s0:s0 + m]
        w = weight[c] if weight.size else 1.0
        for k in range(m):
            dc[k] = dc[k] * total[k] - scale * (tc[k] * keep + s if smoothing > 0 else tc[k] * 1.0) * w


@njit(**PARALLEL)
def _probability_loss_planes(logits, targets, weight, smoothing, reduction, dlogits, row_loss):
    """(N, C, S) logits, targets and gradient, row_loss (N * S,): tiles of positions in parallel."""
    n, positions = logits.shape[0], logits.shape[2]
    scale = 1.0 / row_loss.size if reduction == MEAN else 1.0  # torch's mean: over the positions
    tiles = (positions + PLANE_TILE - 1) // PLANE_TILE
    for task in prange(n * tiles):
        i, s0 = task // tiles, task % tiles * PLANE_TILE
        s1, r = min(s0 + PLANE_TILE, positions), i * positions + s0
        _probability_tile(logits, targets, i, s0, s1 - s0, weight, smoothing, scale, dlogits, row_loss[r:r + s1 - s0])
    total = row_loss.sum()
    return total / row_loss.size if reduction == MEAN else total


_NO_WEIGHT = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def softmax_cross_entropy(logits, labels, weight, dlogits, losses, ignore_index, smoothing, reduction, n_threads):
    """logits (R, C) with labels (R,) class indices or (R, C) probabilities (floats), or (N, C, S)
    with labels (N * S,) or (N, C, S) probabilities. No weight is passed as an empty array, and the per-row losses always go to
    a float64 array: one compiled signature per dtype and layout."""
    w = _NO_WEIGHT[logits.dtype] if weight is None else weight
    row_loss = np.empty(logits.shape[0] * logits.shape[2] if logits.ndim == 3 else logits.shape[0])  # per sample
    if weight is None and smoothing == 0 and logits.ndim == 2 and labels.dtype.kind != "f":
        total = _plain_loss(logits, labels, ignore_index, reduction, dlogits, row_loss)
    elif labels.dtype.kind == "f" and logits.ndim == 3:
        total = _probability_loss_planes(logits, labels, w, smoothing, reduction, dlogits, row_loss)
    elif labels.dtype.kind == "f":
        total = _probability_loss(logits, labels, w, smoothing, reduction, dlogits, row_loss)
    elif logits.ndim == 3:  # (N, C, S): classes along axis 1
        total = _class_loss_planes(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss)
    else:
        total = _class_loss(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss)
    if losses is not None:
        losses[...] = row_loss
    return float(total)


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
