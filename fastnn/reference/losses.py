"""Plain-NumPy classification losses.

Each function takes the inputs, then the gradient array to fill (shape from the meta functions in
fastnn/losses.py), then its parameters, and returns the loss as a Python float.
"""
import numpy as np


NONE, MEAN, SUM = 0, 1, 2  # the reduction codes (fastnn/losses.py)


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable for huge logits
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _reduce(row_loss, dlogits, target, log_probs, denominator, losses, reduction):
    """dlogits = d(loss)/d(logits) for the per-row losses -sum_c T[r, c] * log_probs[r, c], `target`
    being T already scaled as the reduction (softmax * its row sum - it); returns the loss."""
    dlogits[...] = np.exp(log_probs) * target.sum(axis=1, keepdims=True) - target
    if reduction == NONE:
        losses[...] = row_loss
        return 0.0
    total = row_loss.sum(dtype=np.float64)
    return float(total / np.float64(denominator)) if reduction == MEAN else float(total)


def softmax_cross_entropy(logits, labels, weight, dlogits, losses, ignore_index, smoothing, reduction):
    """Rows (R, C) of logits (or (N, C, S) planes: labels (N * S,) or (N, C, S)); labels (R,) class
    indices, or (R, C) probabilities (a float array).
    torch's cross_entropy: per row (1 - eps) * w[y] * -log p[y] + eps / C * sum_c w[c] * -log p[c]
    (0 where y is ignore_index), the mean divided by the sum of w[y] over the rows kept;
    probabilities t: -sum_c w[c] * t'[c] * log p[c] with t' = (1 - eps) t + eps / C, the mean over R.
    NaN logits give NaN gradients in ignored rows too (0 * NaN), as torch's log_softmax backward."""
    if logits.ndim == 3:  # (N, C, S) with labels (N * S,) or probabilities (N, C, S): as rows, then back
        n, classes, positions = logits.shape
        rows = np.empty((n * positions, classes), dlogits.dtype)
        if labels.ndim == 3:  # probabilities
            labels = np.moveaxis(labels, 1, 2).reshape(-1, classes)
        loss = softmax_cross_entropy(np.moveaxis(logits, 1, 2).reshape(-1, classes), labels, weight, rows, losses,
                                     ignore_index, smoothing, reduction)
        dlogits[...] = np.moveaxis(rows.reshape(n, positions, classes), 2, 1)
        return loss
    n, classes = logits.shape
    w = np.ones(classes) if weight is None else weight
    log_probs = _log_softmax(logits)
    if labels.dtype.kind == "f":
        t = labels * (1 - smoothing) + smoothing / classes if smoothing > 0 else labels
        target = t * w
        scale = 1 / np.float64(n) if reduction == MEAN else 1.0
        return _reduce(-(log_probs * target).sum(axis=1), dlogits, target * scale, log_probs, n, losses, reduction)
    kept = labels != ignore_index
    safe = np.where(kept, labels, 0)
    rows = np.arange(n)
    w_label = np.where(kept, w[safe], 0)
    denominator = w_label.sum(dtype=np.float64)
    # the gradient's scale per row: 0 where ignored (torch's masked rows), 1 / denominator (inf when it is
    # 0) or 1 elsewhere
    row_scale = np.where(kept, 1 / denominator if reduction == MEAN else 1.0, 0.0)
    target = np.zeros((n, classes))
    target[rows, safe] = row_scale * (1 - smoothing) * w_label
    row_loss = (1 - smoothing) * w_label * -log_probs[rows, safe]
    if smoothing > 0:  # as torch, which computes the smoothing term only then (0 * inf would be NaN)
        target += row_scale[:, None] * (smoothing / classes) * w
        row_loss = row_loss + smoothing / classes * -(log_probs * w).sum(axis=1)
    row_loss = np.where(kept, row_loss, 0)
    return _reduce(row_loss, dlogits, target, log_probs, denominator, losses, reduction)


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
