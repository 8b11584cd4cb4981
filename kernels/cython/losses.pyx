# Cython classification losses: rows in parallel (one row per helper call); the per-row losses are
# summed serially in double afterwards, so the loss does not depend on the thread count.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, the gradient to fill, parameters,
# n_threads; each returns the loss.
from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdlib cimport free, malloc

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


cdef enum:
    SOFTMAX = 0
    HINGE = 1


cdef double _loss_loop(int loss, const real[:, ::1] scores, const Py_ssize_t[::1] labels, real[:, ::1] grad,
                       real margin, double* row_loss, int n_threads) noexcept nogil:
    """The mean of the rows' losses; row_loss holds N doubles."""
    cdef Py_ssize_t n = scores.shape[0], classes = scores.shape[1], i
    cdef double total = 0
    for i in prange(n, schedule="static", num_threads=n_threads):
        if loss == SOFTMAX:
            row_loss[i] = _softmax_cross_entropy_row(&scores[i, 0], labels[i], classes, 1.0 / n, &grad[i, 0])
        else:
            row_loss[i] = _hinge_row(&scores[i, 0], labels[i], classes, margin, 1.0 / n, &grad[i, 0])
    for i in range(n):
        total += row_loss[i]
    return total / n


def _loss(int loss, const real[:, ::1] scores, const Py_ssize_t[::1] labels, real[:, ::1] grad, double margin,
          int n_threads):
    cdef double result
    cdef double* row_loss = <double*>malloc(max(scores.shape[0], 1) * sizeof(double))
    if row_loss == NULL:
        raise MemoryError()
    with nogil:
        result = _loss_loop(loss, scores, labels, grad, <real>margin, row_loss, n_threads)
        free(row_loss)
    return result


def softmax_cross_entropy(logits, labels, dlogits, n_threads):
    return _loss(SOFTMAX, logits, labels, dlogits, 0, n_threads)


def hinge_loss(scores, labels, dscores, margin, n_threads):
    return _loss(HINGE, scores, labels, dscores, margin, n_threads)
