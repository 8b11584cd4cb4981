"""Classification losses: public functions and their meta functions. Each returns (loss, gradient):
the loss a Python float, the mean over the batch; labels are integers (any integer dtype) in
[0, num_classes). The kernels fill the gradient and return the loss; a call's work is the number
of scores (fastnn/_grain.py).
"""
from ._ops import Plan, call, meta
from ._validation import check_ndim, float_arrays, labels as check_labels, real, within_dtype


def _scores_and_labels(op, name, scores, labels):
    scores = float_arrays(op, **{name: scores})
    check_ndim(op, name, scores, 2)
    if scores.shape[0] == 0:
        raise ValueError(f"{op}: {name} has no samples (shape {scores.shape}); the mean over the batch is undefined")
    return scores, check_labels(op, "labels", labels, scores.shape[0], scores.shape[1], scores=name)


def _loss_and_gradient(outputs, loss):
    return float(loss), outputs[0]


@meta("softmax_cross_entropy")
def _softmax_cross_entropy_meta(logits, labels):
    logits, labels = _scores_and_labels("softmax_cross_entropy", "logits", logits, labels)
    return Plan((logits, labels), (logits.shape,), logits.dtype, work=logits.size, result=_loss_and_gradient)


@meta("hinge_loss")
def _hinge_loss_meta(scores, labels, margin=1.0):
    scores, labels = _scores_and_labels("hinge_loss", "scores", scores, labels)
    margin = within_dtype("hinge_loss", scores.dtype, margin=real("hinge_loss", "margin", margin))
    return Plan((scores, labels), (scores.shape,), scores.dtype, (margin,), work=scores.size,
                result=_loss_and_gradient)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against labels, and its gradient.

    Parameters
    ----------
    logits : array_like of float32 or float64, shape (N, C), N >= 1
        Unnormalized scores (not probabilities; any magnitude: the max of each row is subtracted).
    labels : array_like of integers, shape (N,)
        Class indices in [0, C) (not one-hot).

    Returns
    -------
    (loss, dlogits) : loss a Python float, torch's `cross_entropy(logits, labels)` (reduction
    "mean"); dlogits (N, C) in logits' dtype, (softmax(logits) - onehot(labels)) / N.
    """
    return call("softmax_cross_entropy", logits, labels)


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
