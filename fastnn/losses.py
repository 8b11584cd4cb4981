"""Classification losses: public functions. Each returns (loss, gradient): the loss a Python float,
the mean over the batch; labels are integers (any integer dtype) in [0, num_classes)."""
from ._ops import call
from ._validation import check_ndim, float_arrays, labels as check_labels, real, within_dtype


def _scores_and_labels(op, name, scores, labels):
    scores = float_arrays(op, **{name: scores})
    check_ndim(op, name, scores, 2)
    if scores.shape[0] == 0:
        raise ValueError(f"{op}: {name} has no samples (shape {scores.shape}); the mean over the batch is undefined")
    return scores, check_labels(op, "labels", labels, scores.shape[0], scores.shape[1], scores=name)


def softmax_cross_entropy(logits, labels):
    """Returns (loss, dlogits): mean cross-entropy of softmax(logits) against labels."""
    logits, labels = _scores_and_labels("softmax_cross_entropy", "logits", logits, labels)
    return call("softmax_cross_entropy", logits, labels)


def hinge_loss(scores, labels, margin=1.0):
    """Returns (loss, dscores): cs231n's multiclass SVM loss, mean over the batch."""
    scores, labels = _scores_and_labels("hinge_loss", "scores", scores, labels)
    margin = within_dtype("hinge_loss", scores.dtype, margin=real("hinge_loss", "margin", margin))
    return call("hinge_loss", scores, labels, margin)
