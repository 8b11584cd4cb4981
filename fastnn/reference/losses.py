"""Plain-NumPy classification losses (mean over the batch): loss as a Python float and its gradient."""
import numpy as np


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable for huge logits
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, labels].mean(dtype=np.float64)
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    return float(loss), (dlogits / n).astype(logits.dtype, copy=False)


def hinge_loss(scores, labels, margin=1.0):
    """cs231n's multiclass SVM loss: sum over j != y of max(0, s_j - s_y + margin)."""
    n = scores.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, scores - scores[rows, labels][:, None] + scores.dtype.type(margin))
    margins[rows, labels] = 0
    loss = margins.sum(dtype=np.float64) / n
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, labels] = -dscores.sum(axis=1)
    return float(loss), dscores / scores.dtype.type(n)
