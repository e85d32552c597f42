"""Softmax cross-entropy on logits, with optional label smoothing."""

import numpy as np


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean cross-entropy of ``logits`` (n, classes) against integer ``labels`` (n,).

    Returns ``(loss, dlogits)`` with dlogits the gradient of the mean loss. With smoothing ``eps`` the target is
    ``(1 - eps) * onehot + eps / classes``.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"need logits (n, classes) and labels (n,); got {logits.shape} and {labels.shape}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
    n, classes = logits.shape
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.full((n, classes), label_smoothing / classes)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    loss = -(target * log_probs).sum() / n
    dlogits = (np.exp(log_probs) - target) / n
    return float(loss), dlogits.astype(logits.dtype)
