"""k-means kernels: nearest-centre assignment and centre update, parallel over samples.

Assignment: for scalars, a binary search among the midpoints of the sorted centres; for D-dim samples, the
squared distances to all K centres (centres stored transposed so the loop over centres vectorizes), then the
smallest. The update is count-then-sum:
each thread sums its own block of samples into its own (K, D) buffer, and the buffers are added afterwards.
"""

import numpy as np

from ._checks import int_array, int_scalar
from ._config import PARALLEL_JIT, get_threads, njit, prange

_BLOCK = 4096


@njit(**PARALLEL_JIT)
def _assign(x, centres_t, labels, dist):
    """D-dim samples: distances to all K centres along a contiguous row of ``centres_t`` (d, k), then argmin.

    Looping over centres innermost (not over the d coordinates) lets the distance loop vectorize.
    """
    n, d = x.shape
    k = centres_t.shape[1]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        acc = np.empty(k, dtype=x.dtype)
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            for j in range(k):
                diff = x[i, 0] - centres_t[0, j]
                acc[j] = diff * diff
            for q in range(1, d):
                v = x[i, q]
                for j in range(k):
                    diff = v - centres_t[q, j]
                    acc[j] += diff * diff
            best = acc[0]
            best_j = 0
            for j in range(1, k):
                if acc[j] < best:
                    best = acc[j]
                    best_j = j
            labels[i] = best_j
            dist[i] = best


@njit(**PARALLEL_JIT)
def _assign_1d(x, sorted_centres, order, midpoints, labels, dist):
    """Scalars: binary search among the midpoints of the sorted centres (log2 K compares, not K)."""
    n = x.shape[0]
    m = midpoints.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            v = x[i]
            lo = 0
            hi = m
            while lo < hi:
                mid = (lo + hi) >> 1
                if midpoints[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            diff = v - sorted_centres[lo]
            labels[i] = order[lo]
            dist[i] = diff * diff


@njit(**PARALLEL_JIT)
def _partial_sums(x, labels, sums, counts, n_parts):
    n, d = x.shape
    for p in prange(n_parts):
        lo = (n * p) // n_parts
        hi = (n * (p + 1)) // n_parts
        for i in range(lo, hi):
            j = labels[i]
            counts[p, j] += 1
            for q in range(d):
                sums[p, j, q] += x[i, q]


def _as_samples(x, name="samples"):
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n,) or (n, d); got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be floating point; got {x.dtype}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return np.ascontiguousarray(x, dtype=dtype)


def _as_labels(labels, n, k):
    """Cluster labels: integers in 0..k-1, shape (n,), as int64 (the kernel indexes (k, d) buffers with them)."""
    labels = int_array(labels, "labels", 0, k - 1, np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},), one per sample; got {labels.shape}")
    return labels


def kmeans_assign(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre for each sample, and the squared distance to it.

    x (n,) or (n, d); centres (k,) or (k, d). Returns ``(labels int64 (n,), sq_distance (n,))``.

    Parameters
    ----------
    x : np.ndarray
        Samples, (n,) or (n, d), floating point.
    centres : np.ndarray
        (k,) or (k, d), k >= 1, floating point, finite (refill an empty cluster's NaN centre first).

    Returns
    -------
    labels : np.ndarray
        (n,) int64 in 0..k-1.
    sq_distance : np.ndarray
        (n,), float32 (float64 for float64 samples).
    """
    x = _as_samples(x)
    centres = _as_samples(centres, "centres").astype(x.dtype)
    if centres.shape[1] != x.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} dims but centres have {centres.shape[1]}")
    if centres.shape[0] < 1:
        raise ValueError("need at least one centre")
    if not np.isfinite(centres).all():
        raise ValueError("centres must be finite (an empty cluster's NaN centre must be refilled first)")
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=x.dtype)
    if x.shape[1] == 1:
        # ties (a sample exactly on a midpoint) go to the lower centre, as a linear scan would
        order = np.argsort(centres[:, 0], kind="stable")
        sorted_centres = centres[order, 0]
        midpoints = (sorted_centres[:-1] + sorted_centres[1:]) / 2
        _assign_1d(np.ascontiguousarray(x[:, 0]), sorted_centres, order, midpoints, labels, dist)
    else:
        _assign(x, np.ascontiguousarray(centres.T), labels, dist)
    return labels, dist


def kmeans_update(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the samples of each cluster: returns ``(centres (k, d) float64, counts (k,) int64)``.

    Empty clusters get NaN centres (the caller decides how to refill them).

    Parameters
    ----------
    x : np.ndarray
        Samples, (n,) or (n, d), floating point.
    labels : np.ndarray
        (n,) integers in 0..k-1.
    k : int
        Number of clusters (>= 1).

    Returns
    -------
    centres : np.ndarray
        (k, d) float64; NaN rows for empty clusters.
    counts : np.ndarray
        (k,) int64.
    """
    x = _as_samples(x)
    k = int_scalar(k, "k (clusters)", lo=1)
    sums, total = _label_sums(x, _as_labels(labels, x.shape[0], k), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = sums / total[:, None]
    return centres, total


def segment_sum(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of ``x`` (n, d) with each label: (k, d) float64 (the gradient of shared weights).

    Parameters
    ----------
    x : np.ndarray
        (n,) or (n, d), floating point.
    labels : np.ndarray
        (n,) integers in 0..k-1.
    k : int
        Number of segments (>= 1).

    Returns
    -------
    np.ndarray
        (k, d) float64; zero rows for labels that never occur.
    """
    x = _as_samples(x)
    k = int_scalar(k, "k (segments)", lo=1)
    return _label_sums(x, _as_labels(labels, x.shape[0], k), k)[0]


def _label_sums(x, labels, k):
    """Per-label sums (k, d) float64 and counts (k,) of checked samples: one partial buffer per thread's block
    of samples, added afterwards."""
    n_parts = max(1, min(get_threads(), x.shape[0] // 1024 or 1))
    sums = np.zeros((n_parts, k, x.shape[1]), dtype=np.float64)
    counts = np.zeros((n_parts, k), dtype=np.int64)
    _partial_sums(x, labels, sums, counts, n_parts)
    return sums.sum(axis=0), counts.sum(axis=0)
