"""Classification losses: public functions and their meta functions. Each returns (loss, gradient):
by default the loss a Python float, the mean over the batch; labels are integers (any integer
dtype) in [0, num_classes). softmax_cross_entropy also takes torch's cross_entropy options (class
weights, ignore_index, reduction, label smoothing, probability targets, (N, C, d1, ...) and (C,)
logits): the kernels take rows (R, C), or (N, C, S) logits (and probabilities) as they are, fill the
gradient (and the per-sample losses for reduction "none") and return the reduced loss; a call's
work is the number of scores (fastnn/_grain.py).
"""
import math

import numpy as np

from ._ops import Plan, call, meta
from ._validation import _as_array, check_ndim, float_arrays, integer, labels as check_labels, real, within_dtype


def _scores_and_labels(op, name, scores, labels):
    scores = float_arrays(op, **{name: scores})
    check_ndim(op, name, scores, 2)
    if scores.shape[0] == 0:
        raise ValueError(f"{op}: {name} has no samples (shape {scores.shape}); the mean over the batch is undefined")
    return scores, check_labels(op, "labels", labels, scores.shape[0], scores.shape[1], scores=name)


def _loss_and_gradient(outputs, loss):
    return float(loss), outputs[0]


# reduction -> the kernels' code (kernels/numba/losses.py and kernels/cython/losses.pyx: NONE, MEAN, SUM)
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_NONE, _MEAN = 0, 1
_INT64 = (-(1 << 63), (1 << 63) - 1)  # torch's ignore_index is an int64


def _class_labels(op, y, shape, classes, ignore_index, where):
    """Integer labels of `shape`, each in [0, classes) or equal to ignore_index, as a flat C-contiguous
    intp array (the kernels compare them with ignore_index)."""
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integers (class indices of shape {shape}) or floats of logits' "
                        f"shape (class probabilities), got {y.dtype} of shape {y.shape}")
    if y.shape != shape:
        raise ValueError(f"{op}: labels has shape {y.shape}, expected {shape} ({where})")
    if y.size:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= classes:  # only then can a label be ignore_index or out of range
            outside = (y < 0) | (y >= classes)
            info = np.iinfo(y.dtype)
            if info.min <= ignore_index <= info.max:
                outside &= y != ignore_index
            if outside.any():
                bad = y[outside]
                raise ValueError(f"{op}: labels must be in [0, {classes}), got values in [{lo}, {hi}] ({classes} "
                                 f"classes: logits' class axis), or equal ignore_index ({ignore_index}): "
                                 f"{bad.min() if bad.min() < 0 else bad.max()} is neither")
    y = np.asarray(y, dtype=np.intp, order="C")
    return y if y.ndim == 1 else y.reshape(-1)


def _check_options(op, classes, weight, ignore_index, reduction, label_smoothing, class_axis):
    """(ignore_index, reduction code, label_smoothing) checked: ValueError/TypeError naming the option."""
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{op}: weight has shape {weight.shape}, expected ({classes},) (one per class: "
                         f"logits.shape[{class_axis}])")
    code = _REDUCTIONS.get(reduction) if isinstance(reduction, str) else None
    if code is None:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if type(ignore_index) is not int or not _INT64[0] <= ignore_index <= _INT64[1]:
        ignore_index = integer(op, "ignore_index", ignore_index, minimum=_INT64[0], maximum=_INT64[1])
    if type(label_smoothing) is not float or label_smoothing != 0.0:
        label_smoothing = real(op, "label_smoothing", label_smoothing, 0.0, 1.0)
    return ignore_index, code, label_smoothing


def _shaped_result(shape, code, loss_shape):
    """How the kernel's outputs become the public return value: dlogits in logits' shape, the
    per-sample losses in loss_shape."""
    def result(outputs, returned):
        d = outputs[0].reshape(shape)
        if code == _NONE:
            return outputs[1].reshape(loss_shape), d
        return float(returned), d
    return result


@meta("softmax_cross_entropy")
def _softmax_cross_entropy_meta(logits, labels, weight=None, ignore_index=-100, reduction="mean",
                                label_smoothing=0.0):
    op = "softmax_cross_entropy"
    labels = _as_array(op, "labels", labels, kind="integer class indices or float class probabilities")
    probabilities = labels.dtype.kind == "f"
    if probabilities:
        logits, labels, weight = float_arrays(op, optional=("weight",), logits=logits, labels=labels, weight=weight)
    elif weight is None:
        logits = float_arrays(op, logits=logits)
    else:
        logits, weight = float_arrays(op, logits=logits, weight=weight)
    shape = logits.shape
    if not shape:
        raise ValueError(f"{op}: logits must be (C,), (N, C) or (N, C, d1, ...), got shape ()")
    class_axis = 1 if len(shape) > 1 else 0
    classes = shape[class_axis]
    if classes == 0:
        raise ValueError(f"{op}: logits has no classes (shape {shape})")
    ignore_index, code, smoothing = _check_options(op, classes, weight, ignore_index, reduction, label_smoothing,
                                                   class_axis)
    loss_shape = shape[:1] + shape[2:] if class_axis else ()
    if code == _MEAN and 0 in loss_shape:
        raise ValueError(f"{op}: logits has no samples (shape {shape}); the mean over the batch is undefined")
    if len(shape) < 3:
        rows = logits if len(shape) == 2 else logits.reshape(1, classes)
    else:  # the kernels take (N, C, S) as it is: a tile of positions at a time, the classes along axis 1
        rows = logits.reshape(shape[0], classes, math.prod(shape[2:]))
    if probabilities:
        if labels.shape != shape:
            raise TypeError(f"{op}: labels must be integers (class indices of shape {loss_shape}) or floats of "
                            f"logits' shape {shape} (class probabilities), got {labels.dtype} of shape {labels.shape}")
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index ({ignore_index}) is not supported with class probabilities "
                             "(float labels), as in torch; pass a negative ignore_index")
        targets = labels.reshape(rows.shape)
    else:
        where = "logits.shape[0]" if len(shape) == 2 else "a scalar for 1-d logits" if len(shape) == 1 else \
            "logits' shape without its class axis 1"
        targets = _class_labels(op, labels, loss_shape, classes, ignore_index, where)
    outputs = (rows.shape, (math.prod(loss_shape),) if code == _NONE else None)
    result = _loss_and_gradient if len(shape) == 2 and code != _NONE else _shaped_result(shape, code, loss_shape)
    return Plan((rows, targets, weight), outputs, rows.dtype, (ignore_index, smoothing, code), work=rows.size,
                result=result)


@meta("hinge_loss")
def _hinge_loss_meta(scores, labels, margin=1.0):
    scores, labels = _scores_and_labels("hinge_loss", "scores", scores, labels)
    margin = within_dtype("hinge_loss", scores.dtype, margin=real("hinge_loss", "margin", margin))
    return Plan((scores, labels), (scores.shape,), scores.dtype, (margin,), work=scores.size,
                result=_loss_and_gradient)


def softmax_cross_entropy(logits, labels, *, weight=None, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0):
    """Cross-entropy of softmax(logits) against labels, and its gradient: torch's
    ``torch.nn.functional.cross_entropy`` with the same options, names, defaults and semantics.

    Parameters
    ----------
    logits : array_like of float32 or float64, shape (N, C), (N, C, d1, d2, ...) or (C,)
        Unnormalized scores (not probabilities; any magnitude: the max of each row is subtracted);
        the classes are axis 1 ((N, C, d1, ...): one prediction per position, e.g. segmentation
        logits), or axis 0 of an unbatched (C,). C >= 1.
    labels : array_like of integers or of floats
        Integers: class indices (not one-hot) of logits' shape without the class axis ((N,),
        (N, d1, ...), or a scalar for (C,) logits), each in [0, C) or equal to `ignore_index`.
        Floats: class probabilities of logits' shape and dtype (soft targets; any non-negative
        values, not checked to sum to 1).
    weight : array_like of float, shape (C,), optional, keyword-only
        A rescaling weight per class, logits' dtype. None: all 1.
    ignore_index : int, default -100, keyword-only
        Class-index labels equal to it contribute nothing (loss 0, gradient 0) and are left out of
        the mean's denominator. With probabilities it must be negative (torch refuses the others).
    reduction : {"mean", "sum", "none"}, default "mean", keyword-only
        "mean": the sum of the per-sample losses divided by the sum of the weights of the
        non-ignored labels (their count without `weight`; N * d1 * ... for probabilities, weighted
        or not); "sum": their sum; "none": each one.
    label_smoothing : float in [0, 1], default 0.0, keyword-only
        eps: the target becomes (1 - eps) * onehot (or the probabilities) + eps / C. With class
        indices a sample's loss is (1 - eps) * w[y] * -log p[y] + eps / C * sum_c w[c] * -log p[c]
        (torch's formula; its mean divides by the same denominator).

    Returns
    -------
    loss : float or ndarray
        A Python float for "mean" and "sum" (NaN for a "mean" whose labels are all ignored, as in
        torch); for "none" an ndarray in logits' dtype of logits' shape without the class axis
        (labels' shape for class indices; 0-d for (C,) logits), 0 where a label is ignored.
    dlogits : ndarray
        logits' shape and dtype: the gradient of the returned loss (for "none": of ``loss.sum()``).
        A sample's loss depends only on its own logits, so with per-sample upstream gradients g (the
        loss' shape) the gradient is ``dlogits * np.expand_dims(g, 1)`` (``dlogits * g`` for (C,)
        logits). Without weight or smoothing, "mean" gives (softmax(logits) - onehot(labels)) / N.
        NaN and inf propagate as in torch: a row whose softmax is NaN (a NaN or +inf logit) has a
        NaN gradient even when its label is ignored.

    Raises
    ------
    TypeError
        logits (or weight, or probability labels) not float32/float64 or of mixed dtypes; labels
        neither integers nor floats of logits' shape; ignore_index not an integer; label_smoothing
        not a real number.
    ValueError
        A wrong shape (logits 0-d or without classes, labels, weight not (C,)); a label outside
        [0, C) that is not `ignore_index`; `ignore_index` >= 0 with probabilities; an unknown
        `reduction`; `label_smoothing` outside [0, 1]; no samples with reduction "mean" (torch
        returns NaN there).

    Examples
    --------
    >>> import fastnn
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> loss, dlogits = fastnn.softmax_cross_entropy(logits, np.array([0, -100]))   # 2nd label ignored
    >>> round(loss, 6), dlogits[1].tolist()
    (0.239545, [0.0, 0.0, 0.0])
    >>> losses, _ = fastnn.softmax_cross_entropy(logits, np.array([0, 1]), reduction="none",
    ...                                          label_smoothing=0.1, weight=np.array([1.0, 2.0, 1.0]))
    >>> losses.shape
    (2,)
    """
    return call("softmax_cross_entropy", logits, labels, weight, ignore_index, reduction, label_smoothing)


def hinge_loss(scores, labels, margin=1.0):
    """cs231n's multiclass SVM loss, mean over the batch, and its gradient.

    Parameters
    ----------
    scores : array_like of float32 or float64, shape (N, C), N >= 1
    labels : array_like of integers, shape (N,), in [0, C)
    margin : float
        Finite, within the scores' dtype.

    Returns
    -------
    (loss, dscores) : loss a Python float, sum over i and j != labels[i] of
    max(0, scores[i, j] - scores[i, labels[i]] + margin), divided by N (torch's
    `multi_margin_loss(scores, labels, margin=margin)` averages over the C classes too: this is C
    times it). A NaN margin (NaN scores, inf - inf) counts as not violated, as in torch.
    dscores (N, C) in scores' dtype.
    """
    return call("hinge_loss", scores, labels, margin)
