# Cython classification losses: rows in parallel (one row per helper call); the per-row losses are
# summed serially in double afterwards, so the loss does not depend on the thread count.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, the gradient to fill, parameters,
# n_threads; each returns the loss.
from cython.parallel cimport prange, threadid
from libc.math cimport exp, log
from libc.stdlib cimport free, malloc

import numpy as np

from _common cimport real


cdef extern from "losses_loops.h" nogil:
    double fnn_softmax_exp_row_f(const float* logits, float top, float* out, Py_ssize_t n)
    float fnn_row_max_f(const float* a, Py_ssize_t n)
    double fnn_row_max_d(const double* a, Py_ssize_t n)
    void fnn_plane_softmax_f(const float* z, Py_ssize_t stride, Py_ssize_t classes, Py_ssize_t m, float* top,
                             float* out, double* total)
    void fnn_plane_softmax_d(const double* z, Py_ssize_t stride, Py_ssize_t classes, Py_ssize_t m, double* top,
                             double* out, double* total)


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


cdef inline void _plane_softmax(const real* z, Py_ssize_t stride, Py_ssize_t classes, Py_ssize_t m, real* top,
                                real* out, double* total) noexcept nogil:
    """A tile of m positions: top[k], out = e^(z - top) and total[k] (losses_loops.h's plane softmax)."""
    if real is float:
        fnn_plane_softmax_f(z, stride, classes, m, top, out, total)
    else:
        fnn_plane_softmax_d(z, stride, classes, m, top, out, total)


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


cdef double _class_scales(const Py_ssize_t* labels, Py_ssize_t n, const real* weight, Py_ssize_t classes,
                          long long ignore_index, int reduction, double* wsum) noexcept nogil:
    """The mean's denominator, the weights of the labels kept (1 for the other reductions); wsum
    receives sum_c w[c] / C (the smoothing's; 1 without weights)."""
    cdef double denominator = 0
    cdef Py_ssize_t i, c
    wsum[0] = 1
    if weight != NULL:
        wsum[0] = 0
        for c in range(classes):
            wsum[0] += weight[c]
        wsum[0] /= classes
    if reduction != MEAN:
        return 1
    for i in range(n):
        if labels[i] != ignore_index:
            denominator += 1 if weight == NULL else weight[labels[i]]
    return denominator


cdef double _class_loop(const real[:, ::1] logits, const Py_ssize_t[::1] labels, const real* weight,
                        long long ignore_index, double smoothing, int reduction, real[:, ::1] dlogits,
                        double* row_loss, int n_threads) noexcept nogil:
    """(R, C) rows: the reduced loss; row_loss (R,) receives each row's loss."""
    cdef Py_ssize_t n = logits.shape[0], classes = logits.shape[1], i, label
    cdef double wsum, denominator, scale, total = 0
    denominator = _class_scales(&labels[0], n, weight, classes, ignore_index, reduction, &wsum)
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


DEF PLANE_TILE = 256  # positions per task of the (N, C, S) kernel


cdef void _class_tile(const real* z, const Py_ssize_t* labels, Py_ssize_t classes, Py_ssize_t stride, Py_ssize_t m,
                      const real* weight, double wsum, long long ignore_index, double smoothing, double scale,
                      real* d, double* row_loss, real* top, double* scratch) noexcept nogil:
    """m positions of one (C, S) sample (z, d: its first position, class c at + c * stride; labels,
    row_loss: m each): the row code's steps as loops over the positions, which vectorize. scratch
    holds 5 * m doubles."""
    cdef double* total = scratch  # then each position's factor on softmax
    cdef double* log_total = scratch + m
    cdef double* target = scratch + 2 * m
    cdef double* row_scale = scratch + 3 * m
    cdef double* smooth = scratch + 4 * m
    cdef double keep = 1 - smoothing, spread = smoothing * wsum if smoothing > 0 else 0, w, bs
    cdef Py_ssize_t c, k, label
    cdef real* dc
    cdef const real* zc
    _plane_softmax(z, stride, classes, m, top, d, total)
    for k in range(m):
        label = labels[k]
        row_scale[k] = 0 if label == ignore_index else scale  # ignored: 0 * softmax, as the rows
        target[k] = 0 if label == ignore_index else keep * (1 if weight == NULL else weight[label])
        log_total[k] = log(total[k])
        total[k] = row_scale[k] * (target[k] + spread) / total[k]
        smooth[k] = 0
    for c in range(classes):
        dc, zc = d + c * stride, z + c * stride
        for k in range(m):
            dc[k] = <real>(dc[k] * total[k])
        if smoothing > 0:
            w = 1 if weight == NULL else weight[c]
            bs = smoothing / classes * w
            for k in range(m):
                smooth[k] += w * (log_total[k] - (zc[k] - top[k]))
                dc[k] = <real>(dc[k] - row_scale[k] * bs)
    for k in range(m):
        label = labels[k]
        if label == ignore_index:
            row_loss[k] = 0
        else:
            d[label * stride + k] = <real>(d[label * stride + k] - row_scale[k] * target[k])
            row_loss[k] = (smoothing / classes * smooth[k]
                           + target[k] * (log_total[k] - (z[label * stride + k] - top[k])))


cdef double _class_planes_loop(const real[:, :, ::1] logits, const Py_ssize_t[::1] labels, const real* weight,
                               long long ignore_index, double smoothing, int reduction, real[:, :, ::1] dlogits,
                               double[::1] row_loss, real* tops, double* scratch, int n_threads) noexcept nogil:
    """(N, C, S) logits and gradient, labels and row_loss (N * S,): tiles of positions in parallel;
    tops and scratch hold PLANE_TILE reals and 5 * PLANE_TILE doubles per thread."""
    cdef Py_ssize_t n = logits.shape[0], classes = logits.shape[1], positions = logits.shape[2]
    cdef Py_ssize_t tiles = (positions + PLANE_TILE - 1) // PLANE_TILE, task, i, s0, t, r
    cdef double wsum, denominator, scale, total = 0
    denominator = _class_scales(&labels[0], n * positions, weight, classes, ignore_index, reduction, &wsum)
    scale = 1.0 / denominator  # cdivision: inf when every label is ignored
    for task in prange(n * tiles, schedule="static", num_threads=n_threads):
        t = threadid()
        i = task // tiles
        s0 = task % tiles * PLANE_TILE
        r = i * positions + s0
        _class_tile(&logits[i, 0, s0], &labels[r], classes, positions, min(PLANE_TILE, positions - s0), weight,
                    wsum, ignore_index, smoothing, scale, &dlogits[i, 0, s0], &row_loss[r], tops + t * PLANE_TILE,
                    scratch + t * 5 * PLANE_TILE)
    for r in range(n * positions):
        total += row_loss[r]
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


cdef void _probability_tile(const real* z, const real* targets, Py_ssize_t classes, Py_ssize_t stride, Py_ssize_t m,
                            const real* weight, double smoothing, double scale, real* d, double* row_loss, real* top,
                            double* scratch) noexcept nogil:
    """m positions of one (C, S) sample of logits, probabilities and gradient (z, targets, d: its
    first position, class c at + c * stride; row_loss: m): _probability_row's steps as loops over the
    positions (see _class_tile). scratch holds 3 * m doubles."""
    cdef double* total = scratch  # then each position's factor on softmax
    cdef double* log_total = scratch + m
    cdef double* tsum = scratch + 2 * m
    cdef double keep = 1 - smoothing, s = smoothing / classes, w, t
    cdef Py_ssize_t c, k
    cdef real* dc
    cdef const real* zc
    cdef const real* tc
    _plane_softmax(z, stride, classes, m, top, d, total)
    for k in range(m):
        log_total[k] = log(total[k])
        tsum[k] = 0
        row_loss[k] = 0
    for c in range(classes):
        zc, tc = z + c * stride, targets + c * stride
        w = 1 if weight == NULL else weight[c]
        for k in range(m):
            t = (tc[k] * keep + s if smoothing > 0 else tc[k]) * w
            tsum[k] += t
            row_loss[k] += t * (log_total[k] - (zc[k] - top[k]))
    for k in range(m):
        total[k] = scale * tsum[k] / total[k]
    for c in range(classes):
        dc, tc = d + c * stride, targets + c * stride
        w = 1 if weight == NULL else weight[c]
        for k in range(m):
            dc[k] = <real>(dc[k] * total[k] - scale * (tc[k] * keep + s if smoothing > 0 else tc[k]) * w)


cdef double _probability_planes_loop(const real[:, :, ::1] logits, const real[:, :, ::1] targets, const real* weight,
                                     double smoothing, int reduction, real[:, :, ::1] dlogits, double[::1] row_loss,
                                     real* tops, double* scratch, int n_threads) noexcept nogil:
    """(N, C, S) logits, probabilities and gradient, row_loss (N * S,): tiles of positions in
    parallel; tops and scratch hold PLANE_TILE reals and 5 * PLANE_TILE doubles per thread."""
    cdef Py_ssize_t n = logits.shape[0], classes = logits.shape[1], positions = logits.shape[2]
    cdef Py_ssize_t tiles = (positions + PLANE_TILE - 1) // PLANE_TILE, task, i, s0, t, r
    cdef double scale = 1.0 / (n * positions) if reduction == MEAN else 1.0, total = 0  # torch's mean: over positions
    for task in prange(n * tiles, schedule="static", num_threads=n_threads):
        t = threadid()
        i = task // tiles
        s0 = task % tiles * PLANE_TILE
        r = i * positions + s0
        _probability_tile(&logits[i, 0, s0], &targets[i, 0, s0], classes, positions, min(PLANE_TILE, positions - s0),
                          weight, smoothing, scale, &dlogits[i, 0, s0], &row_loss[r], tops + t * PLANE_TILE,
                          scratch + t * 5 * PLANE_TILE)
    for r in range(n * positions):
        total += row_loss[r]
    return total / (n * positions) if reduction == MEAN else total


def _probability_loss_planes(const real[:, :, ::1] logits, const real[:, :, ::1] targets, const real[::1] weight,
                             double smoothing, int reduction, real[:, :, ::1] dlogits, double[::1] row_loss,
                             real[::1] tops, double[::1] scratch, int n_threads):
    cdef const real* w = NULL
    cdef double total
    if weight.shape[0]:
        w = &weight[0]
    with nogil:
        total = _probability_planes_loop(logits, targets, w, smoothing, reduction, dlogits, row_loss, &tops[0],
                                         &scratch[0], n_threads)
    return total


def _class_loss(const real[:, ::1] logits, const Py_ssize_t[::1] labels, const real[::1] weight, long long ignore_index,
                double smoothing, int reduction, real[:, ::1] dlogits, double[::1] row_loss, int n_threads):
    """weight and row_loss may be None (no weights; the row losses in a scratch buffer)."""
    cdef const real* w = NULL
    cdef double total
    cdef double* rows = <double*>malloc(max(logits.shape[0], 1) * sizeof(double)) if row_loss is None else &row_loss[0]
    if rows == NULL:
        raise MemoryError()
    if weight is not None and weight.shape[0]:
        w = &weight[0]
    with nogil:
        total = _class_loop(logits, labels, w, ignore_index, smoothing, reduction, dlogits, rows, n_threads)
        if row_loss is None:
            free(rows)
    return total


def _probability_loss(const real[:, ::1] logits, const real[:, ::1] targets, const real[::1] weight,
                      double smoothing, int reduction, real[:, ::1] dlogits, double[::1] row_loss, int n_threads):
    cdef const real* w = &weight[0] if weight.shape[0] else NULL
    cdef double total
    with nogil:
        total = _probability_loop(logits, targets, w, smoothing, reduction, dlogits, row_loss, n_threads)
    return total


def _class_loss_planes(const real[:, :, ::1] logits, const Py_ssize_t[::1] labels, const real[::1] weight,
                       long long ignore_index, double smoothing, int reduction, real[:, :, ::1] dlogits,
                       double[::1] row_loss, real[::1] tops, double[::1] scratch, int n_threads):
    cdef const real* w = &weight[0] if weight.shape[0] else NULL
    cdef double total
    with nogil:
        total = _class_planes_loop(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss,
                                   &tops[0], &scratch[0], n_threads)
    return total


_NO_WEIGHT = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def softmax_cross_entropy(logits, labels, weight, dlogits, losses, ignore_index, smoothing, reduction, n_threads):
    """logits (R, C) with labels (R,) class indices or (R, C) probabilities (floats), or (N, C, S) with
    labels (N * S,) or (N, C, S) probabilities. No weight is passed as None or an empty array (a NULL
    pointer below); the per-sample losses go to a double array, copied to `losses` for "none"."""
    if labels.dtype.kind != "f" and logits.ndim == 2:  # class indices: the common case, fewest steps
        row_loss = None if losses is None else np.empty(labels.shape[0])
        total = _class_loss(logits, labels, weight, ignore_index, smoothing, reduction, dlogits, row_loss, n_threads)
        if losses is not None:
            losses[...] = row_loss
        return total
    w = _NO_WEIGHT[logits.dtype] if weight is None else weight
    if logits.ndim == 3:  # (N, C, S): classes along axis 1; per-thread tiles' scratch
        row_loss = np.empty(logits.shape[0] * logits.shape[2])
        tops, scratch = np.empty(n_threads * PLANE_TILE, logits.dtype), np.empty(n_threads * 5 * PLANE_TILE)
        if labels.dtype.kind == "f":
            total = _probability_loss_planes(logits, labels, w, smoothing, reduction, dlogits, row_loss, tops, scratch,
                                             n_threads)
        else:
            total = _class_loss_planes(logits, labels, w, ignore_index, smoothing, reduction, dlogits, row_loss, tops,
                                       scratch, n_threads)
    else:
        row_loss = np.empty(logits.shape[0])
        total = _probability_loss(logits, labels, w, smoothing, reduction, dlogits, row_loss, n_threads)
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
