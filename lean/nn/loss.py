"""Softmax cross-entropy on logits, with optional label smoothing."""

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` (n, classes); returns (n, classes) probabilities, ``logits``'s dtype."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                          label_smoothing: float = 0.0) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (n, classes) against integer ``labels`` (n,).

    Returns ``(loss, dlogits)`` with dlogits the gradient of the mean loss. With smoothing ``eps`` the target is
    ``(1 - eps) * onehot + eps / classes``.

    Parameters
    ----------
    logits : np.ndarray
        (n, classes), real; computed in float64.
    labels : np.ndarray
        (n,) integer classes in 0..classes - 1.
    label_smoothing : float
        eps in [0, 1) (Szegedy et al., CVPR 2016, section 7).

    Returns
    -------
    loss : float
        The mean over the n rows.
    dlogits : np.ndarray
        (n, classes), ``logits``'s dtype: ``(softmax(logits) - target) / n``.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"need logits (n, classes) and labels (n,); got {logits.shape} and {labels.shape}")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be integers in 0..{logits.shape[1] - 1}; got {labels.dtype} values in "
                         f"{labels.min()}..{labels.max()}")
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
