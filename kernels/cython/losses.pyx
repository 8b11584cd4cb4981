# Cython classification losses: rows in parallel (one row per helper call), per-row losses summed
# serially in double.
from cython.parallel cimport prange
from libc.math cimport exp, log

import numpy as np

from fastnn._threads import openmp_threads as get_num_threads  # one thread in a forked child

from _common cimport real


cdef extern from "losses_loops.h" nogil:
    double fnn_softmax_exp_row_f(const float* logits, float top, float* out, Py_ssize_t n)
    float fnn_row_max_f(const float* a, Py_ssize_t n)


cdef double _softmax_cross_entropy_row(const real* logits, Py_ssize_t label, Py_ssize_t classes, double scale,
                                       real* dlogits) noexcept nogil:
    """Writes scale * d(loss)/d(logits) of one row; returns its loss."""
    cdef double top = logits[0], total = 0, log_total
    cdef Py_ssize_t j
    if real is float:  # vectorized max and float32 exp (libm's expf does not vectorize here)
        top = fnn_row_max_f(logits, classes)  # shifted by the max: stable for huge logits
        total = fnn_softmax_exp_row_f(logits, <float>top, dlogits, classes)
        for j in range(classes):
            dlogits[j] = <real>(dlogits[j] * (scale / total))
        log_total = log(total)
    else:
        for j in range(1, classes):
            top = max(top, <double>logits[j])
        for j in range(classes):
            total += exp(logits[j] - top)
        log_total = log(total)
        for j in range(classes):
            dlogits[j] = <real>(exp(logits[j] - top - log_total) * scale)
    dlogits[label] = <real>(dlogits[label] - scale)
    return log_total - (logits[label] - top)


cdef double _softmax_cross_entropy(const real[:, ::1] logits, const Py_ssize_t[::1] labels, real[:, ::1] dlogits,
                                   double[::1] row_loss, int threads) noexcept:
    cdef Py_ssize_t n = logits.shape[0], i
    cdef double total = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads):
            row_loss[i] = _softmax_cross_entropy_row(&logits[i, 0], labels[i], logits.shape[1], 1.0 / n, &dlogits[i, 0])
        for i in range(n):
            total += row_loss[i]
        return total / n


def softmax_cross_entropy(logits, labels):
    dlogits = np.empty_like(logits)
    row_loss = np.empty(logits.shape[0])
    if logits.dtype == np.float32:
        loss = _softmax_cross_entropy[float](logits, labels, dlogits, row_loss, get_num_threads())
    else:
        loss = _softmax_cross_entropy[double](logits, labels, dlogits, row_loss, get_num_threads())
    return float(loss), dlogits


cdef double _hinge_row(const real* scores, Py_ssize_t label, Py_ssize_t classes, real margin, double scale,
                       real* dscores) noexcept nogil:
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


cdef double _hinge_loss(const real[:, ::1] scores, const Py_ssize_t[::1] labels, real margin, real[:, ::1] dscores,
                        double[::1] row_loss, int threads) noexcept:
    cdef Py_ssize_t n = scores.shape[0], i
    cdef double total = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads):
            row_loss[i] = _hinge_row(&scores[i, 0], labels[i], scores.shape[1], margin, 1.0 / n, &dscores[i, 0])
        for i in range(n):
            total += row_loss[i]
        return total / n


def hinge_loss(scores, labels, margin):
    dscores = np.empty_like(scores)
    row_loss = np.empty(scores.shape[0])
    if scores.dtype == np.float32:
        loss = _hinge_loss[float](scores, labels, margin, dscores, row_loss, get_num_threads())
    else:
        loss = _hinge_loss[double](scores, labels, margin, dscores, row_loss, get_num_threads())
    return float(loss), dscores
