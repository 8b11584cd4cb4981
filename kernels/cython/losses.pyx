# Cython classification losses: rows in parallel (one row per helper call); the per-row losses are
# summed serially in double afterwards, so the loss does not depend on the thread count.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, the gradient to fill, parameters,
# n_threads; each returns the loss.
from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdlib cimport free, malloc

import numpy as np

from _common cimport real


cdef extern from "losses_loops.h" nogil:
    double fnn_softmax_exp_row_f(const float* logits, float top, float* out, Py_ssize_t n)
    float fnn_row_max_f(const float* a, Py_ssize_t n)
    double fnn_row_max_d(const double* a, Py_ssize_t n)


cdef enum:  # the reduction codes (fastnn/losses.py)
    NONE = 0
    MEAN = 1
    SUM = 2


cdef double _row_max(const real* logits, Py_ssize_t classes) noexcept nogil:
    """The row's max, over vectorized lanes (NaN is skipped here; it still reaches the loss through
    the exp)."""
    if real is float:
        return fnn_row_max_f(logits, classes)
    else:
        return fnn_row_max_d(logits, classes)


cdef double _exp_sum(const real* logits, Py_ssize_t classes, double top, real* out) noexcept nogil:
    """The sum of exp(logits[j] - top) (top: the max, which makes it stable for huge logits); float32
    rows also keep each exp in out."""
    cdef double total = 0
    cdef Py_ssize_t j
    if real is float:  # float32 exp (libm's expf does not vectorize here)
        total = fnn_softmax_exp_row_f(logits, <float>top, out, classes)
    else:
        for j in range(classes):
            total += exp(logits[j] - top)
    return total


cdef void _scaled_softmax(const real* logits, Py_ssize_t classes, double top, double total, double a,
                          real* out) noexcept nogil:
    """out[j] = a * softmax(logits)[j], after _exp_sum(logits, classes, top, out) gave total."""
    cdef double factor = a / total, log_total = log(total)
    cdef Py_ssize_t j
    if real is float:
        for j in range(classes):
            out[j] = <real>(out[j] * factor)
    else:  # exp(z - top - log total): one rounding fewer than e / total
        for j in range(classes):
            out[j] = <real>(exp(logits[j] - top - log_total) * a)


cdef double _class_row(const real* logits, Py_ssize_t label, Py_ssize_t classes, const real* weight, double wsum,
                       double smoothing, double scale, real* dlogits) noexcept nogil:
    """Writes scale * d(loss)/d(logits) of one row, loss = (1 - eps) * w[y] * -log p[y]
    + eps / C * sum_c w[c] * -log p[c] (weight NULL: all 1; wsum = sum_c w[c] / C; label < 0: an
    ignored row, passed with scale 0, whose gradient is 0 * softmax); returns its loss."""
    cdef double top, total, log_total, w, smooth = 0, bs, loss = 0
    cdef double keep = 1 - smoothing
    cdef double w_label = 0 if label < 0 else (1 if weight == NULL else weight[label])
    cdef double a = scale * keep * w_label  # d(loss)/d(logits) = softmax * (this + the smoothing's) - target
    cdef Py_ssize_t j
    if smoothing > 0:
        a += scale * smoothing * (1 if weight == NULL else wsum)
    top = _row_max(logits, classes)
    total = _exp_sum(logits, classes, top, dlogits)
    _scaled_softmax(logits, classes, top, total, a, dlogits)
    log_total = log(total)
    if smoothing > 0:
        bs = scale * smoothing / classes
        for j in range(classes):
            w = 1 if weight == NULL else weight[j]
            smooth += w * (log_total - (logits[j] - top))
            dlogits[j] = <real>(dlogits[j] - bs * w)
        loss = smoothing / classes * smooth
    if label < 0:
        return 0
    dlogits[label] = <real>(dlogits[label] - scale * keep * w_label)
    return loss + keep * w_label * (log_total - (logits[label] - top))


cdef double _probability_row(const real* logits, const real* target, Py_ssize_t classes, const real* weight,
                             double smoothing, double scale, real* dlogits) noexcept nogil:
    """Writes scale * d(loss)/d(logits) of one row, loss = -sum_c w[c] * t[c] * log p[c] with
    t = (1 - eps) * target + eps / C (weight NULL: all 1); returns its loss."""
    cdef double top, total, log_total, t, tsum = 0, loss = 0
    cdef double keep = 1 - smoothing, s = smoothing / classes
    cdef Py_ssize_t j
    top = _row_max(logits, classes)
    total = _exp_sum(logits, classes, top, dlogits)
    log_total = log(total)
    for j in range(classes):
        t = target[j] * keep + s if smoothing > 0 else target[j]
        if weight != NULL:
            t = t * weight[j]
        tsum += t
        loss += t * (log_total - (logits[j] - top))
    _scaled_softmax(logits, classes, top, total, scale * tsum, dlogits)
    for j in range(classes):
        t = target[j] * keep + s if smoothing > 0 else target[j]
        if weight != NULL:
            t = t * weight[j]
        dlogits[j] = <real>(dlogits[j] - scale * t)
    return loss


cdef double _class_loop(const real[:, ::1] logits, const Py_ssize_t[::1] labels, const real* weight,
                        long long ignore_index, double smoothing, int reduction, real[:, ::1] dlogits,
                        double[::1] row_loss, int n_threads) noexcept nogil:
    """The reduced loss; row_loss (R,) receives each row's loss."""
    cdef Py_ssize_t n = logits.shape[0], classes = logits.shape[1], i, c, label
    cdef double wsum = 0, denominator = 1, scale, total = 0
    if weight != NULL:
        for c in range(classes):
            wsum += weight[c]
        wsum /= classes  # the smoothing's sum_c w[c] / C
    if reduction == MEAN:  # the weights of the labels kept
        denominator = 0
        for i in range(n):
            if labels[i] != ignore_index:
                denominator += 1 if weight == NULL else weight[labels[i]]
    scale = 1.0 / denominator  # cdivision: inf when every label is ignored
    for i in prange(n, schedule="static", num_threads=n_threads):
        label = labels[i]
        if label == ignore_index:
            _class_row(&logits[i, 0], -1, classes, weight, wsum, smoothing, 0.0, &dlogits[i, 0])
            row_loss[i] = 0
        else:
            row_loss[i] = _class_row(&logits[i, 0], label, classes, weight, wsum, smoothing, scale, &dlogits[i, 0])
    for i in range(n):
        total += row_loss[i]
    return total / denominator


cdef double _probability_loop(const real[:, ::1] logits, const real[:, ::1] targets, const real* weight,
                              double smoothing, int reduction, real[:, ::1] dlogits, double[::1] row_loss,
                              int n_threads) noexcept nogil:
    cdef Py_ssize_t n = logits.shape[0], classes = logits.shape[1], i
    cdef double scale = 1.0 / n if reduction == MEAN else 1.0, total = 0  # torch's mean: over the rows
    for i in prange(n, schedule="static", num_threads=n_threads):
        row_loss[i] = _probability_row(&logits[i, 0], &targets[i, 0], classes, weight, smoothing, scale,
                                       &dlogits[i, 0])
    for i in range(n):
        total += row_loss[i]
    return total / n if reduction == MEAN else total


def _class_loss(const real[:, ::1] logits, const Py_ssize_t[::1] labels, const real[::1] weight, long long ignore_index,
                double smoothing, int reduction, real[:, ::1] dlogits, double[::1] row_loss, int n_threads):
    cdef const real* w = &weight[0] if weight.shape[0] else NULL
    cdef double total
    with nogil:
        total = _class_loop(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss, n_threads)
    return total


def _probability_loss(const real[:, ::1] logits, const real[:, ::1] targets, const real[::1] weight,
                      double smoothing, int reduction, real[:, ::1] dlogits, double[::1] row_loss, int n_threads):
    cdef const real* w = &weight[0] if weight.shape[0] else NULL
    cdef double total
    with nogil:
        total = _probability_loop(logits, targets, w, smoothing, reduction, dlogits, row_loss, n_threads)
    return total


_NO_WEIGHT = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def softmax_cross_entropy(logits, labels, weight, dlogits, losses, ignore_index, smoothing, reduction, n_threads):
    """labels: (R,) class indices, or (R, C) probabilities (floats). No weight is passed as an empty
    array (a NULL pointer below); the per-row losses go to a double array, copied to `losses` for
    reduction "none"."""
    w = _NO_WEIGHT[logits.dtype] if weight is None else weight
    row_loss = np.empty(logits.shape[0])
    if labels.dtype.kind == "f":
        total = _probability_loss(logits, labels, w, smoothing, reduction, dlogits, row_loss, n_threads)
    else:
        total = _class_loss(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss, n_threads)
    if losses is not None:
        losses[...] = row_loss
    return total


cdef double _hinge_row(const real* scores, Py_ssize_t label, Py_ssize_t classes, real margin, double scale,
                       real* dscores) noexcept nogil:
    """Writes scale * d(loss)/d(scores) of one row; returns its loss. A NaN margin is no violation
    (m > 0 is false), as in torch's multi_margin_loss."""
    cdef real correct = scores[label], m
    cdef double total = 0
    cdef Py_ssize_t j, violated = 0
    for j in range(classes):
        m = scores[j] - correct + margin  # in the scores' dtype, as the reference
        if j != label and m > 0:
            total += m
            violated += 1
            dscores[j] = <real>scale
        else:
            dscores[j] = 0
    dscores[label] = <real>(-violated * scale)
    return total


cdef double _hinge_loop(const real[:, ::1] scores, const Py_ssize_t[::1] labels, real[:, ::1] grad, real margin,
                        double* row_loss, int n_threads) noexcept nogil:
    """The mean of the rows' losses; row_loss holds N doubles."""
    cdef Py_ssize_t n = scores.shape[0], classes = scores.shape[1], i
    cdef double total = 0
    for i in prange(n, schedule="static", num_threads=n_threads):
        row_loss[i] = _hinge_row(&scores[i, 0], labels[i], classes, margin, 1.0 / n, &grad[i, 0])
    for i in range(n):
        total += row_loss[i]
    return total / n


def _hinge(const real[:, ::1] scores, const Py_ssize_t[::1] labels, real[:, ::1] grad, double margin, int n_threads):
    cdef double result
    cdef double* row_loss = <double*>malloc(max(scores.shape[0], 1) * sizeof(double))
    if row_loss == NULL:
        raise MemoryError()
    with nogil:
        result = _hinge_loop(scores, labels, grad, <real>margin, row_loss, n_threads)
        free(row_loss)
    return result


def hinge_loss(scores, labels, dscores, margin, n_threads):
    return _hinge(scores, labels, dscores, margin, n_threads)
