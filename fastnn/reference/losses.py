"""Plain-NumPy classification losses (mean over the batch).

Each function takes the inputs, then the gradient array to fill (shape from the meta functions in
fastnn/losses.py), then its parameters, and returns the loss as a Python float.
"""
import numpy as np


def softmax_cross_entropy(logits, labels, dlogits):
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable for huge logits
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    dlogits[...] = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(-log_probs[rows, labels].mean(dtype=np.float64))


def hinge_loss(scores, labels, dscores, margin):
    """cs231n's multiclass SVM loss: sum over j != y of max(0, s_j - s_y + margin). A NaN margin
    (NaN scores, inf - inf) is not a violation, as in torch's multi_margin_loss."""
    n = scores.shape[0]
    rows = np.arange(n)
    margins = scores - scores[rows, labels][:, None] + scores.dtype.type(margin)
    violated = margins > 0
    violated[rows, labels] = False
    dscores[...] = violated
    dscores[rows, labels] = -violated.sum(axis=1)
    dscores /= n
    return float(np.where(violated, margins, 0).sum(dtype=np.float64) / n)
