"""Deep k-means weight sharing (Wu et al., ICML 2018): cluster kernel rows, share one centre per cluster.

Where the steps are:

- ``kernel_rows``: a conv weight (m, c, s, s) as N = m*c*s samples of length s (each a kernel row; the paper's
  W of shape (s, N), transposed). Linear layers: rows of 1 weight (scalar clustering).
- ``kmeans_plus_plus`` and ``lloyd``: k-means++ seeding (Arthur and Vassilvitskii, 2007) and Lloyd's iterations
  on the Numba kernels of ``lean.kernels`` (assignment and centre update). An emptied cluster is re-seeded
  with the sample farthest from its centre.
- ``cluster_rows``: the optional sparsity variant: the fraction ``sparsity`` of rows with the smallest norm
  share a centre fixed at zero (centre 0); the rest are clustered into K - 1 centres.
- ``SharedWeights``: the result (centres, per-row assignment) with ``dense()`` and storage:
  K * s * 32 bits of codebook plus the assignments Huffman-coded (``huffman_bits``; ``entropy_bits`` gives the
  ideal -sum log2 p bound the paper quotes).
"""

from dataclasses import dataclass

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..nn.compressed import huffman_length


def kernel_rows(w):
    """(m, c, r, s) conv -> (m*c*r, s) kernel rows; (k, n) linear -> (k*n, 1) scalars."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim == 4:
        return w.reshape(-1, w.shape[3])
    if w.ndim == 2:
        return w.reshape(-1, 1)
    raise ValueError(f"deep k-means takes conv (m, c, r, s) or linear (k, n) weights; got shape {w.shape}")


def kmeans_plus_plus(x, k, rng):
    """k-means++ seeds: each next centre drawn with probability proportional to its squared distance."""
    n = x.shape[0]
    centres = np.empty((k, x.shape[1]), dtype=x.dtype)
    centres[0] = x[rng.integers(n)]
    best = ((x - centres[0]) ** 2).sum(axis=1).astype(np.float64)
    for j in range(1, k):
        total = best.sum()
        idx = rng.integers(n) if total <= 0 else int(np.searchsorted(np.cumsum(best), rng.random() * total))
        centres[j] = x[min(idx, n - 1)]
        best = np.minimum(best, ((x - centres[j]) ** 2).sum(axis=1))
    return centres


def lloyd(x, centres, max_iter=50, fixed=()):
    """Lloyd's iterations from ``centres``; centres listed in ``fixed`` do not move. Returns (centres, labels)."""
    centres = centres.copy()
    labels = None
    for _ in range(max_iter):
        new_labels, dist = kernels.kmeans_assign(x, centres)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        means, counts = kernels.kmeans_update(x, labels, len(centres))
        for j in np.flatnonzero(counts == 0):
            if j in fixed:
                continue
            far = int(np.argmax(dist))  # re-seed an empty cluster at the worst-served sample
            means[j] = x[far]
            dist[far] = 0.0
        keep = np.zeros(len(centres), bool)
        keep[list(fixed)] = True
        centres = np.where(keep[:, None], centres, means).astype(x.dtype)
    if labels is None:
        labels = kernels.kmeans_assign(x, centres)[0]
    return centres, labels


@dataclass(frozen=True)
class SharedWeights:
    shape: tuple
    centres: np.ndarray   # (K, s) float32
    labels: np.ndarray    # (N,) int, one per kernel row

    def dense(self):
        return self.centres[self.labels].reshape(self.shape).astype(np.float32)

    def huffman_bits(self):
        return int(huffman_length(np.bincount(self.labels, minlength=len(self.centres))))

    def entropy_bits(self):
        counts = np.bincount(self.labels, minlength=len(self.centres)).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(counts[counts > 0] * np.log2(p)).sum())

    def storage_bits(self):
        """Codebook (32-bit floats) plus Huffman-coded assignments."""
        return int(self.centres.size * 32 + self.huffman_bits())


def cluster_rows(w, k, sparsity=0.0, seed=0, max_iter=50):
    """Share ``k`` centres among the kernel rows of ``w``; returns ``SharedWeights``."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"clusters must be a positive integer; got {k!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1); got {sparsity}")
    x = kernel_rows(w)
    if k > len(x):
        raise ConfigError(f"{k} clusters for only {len(x)} kernel rows")
    rng = np.random.default_rng(seed)
    if sparsity > 0:
        if k < 2:
            raise ConfigError("the sparsity option needs at least 2 clusters (one is the zero centre)")
        norms = np.linalg.norm(x, axis=1)
        n_zero = int(round(sparsity * len(x)))
        zero_rows = np.argsort(norms, kind="stable")[:n_zero]
        rest = np.setdiff1d(np.arange(len(x)), zero_rows)
        centres = np.zeros((k, x.shape[1]), np.float32)
        centres[1:] = kmeans_plus_plus(x[rest], k - 1, rng)
        centres[1:], rest_labels = lloyd(x[rest], centres[1:], max_iter)
        labels = np.zeros(len(x), np.int64)
        labels[rest] = rest_labels + 1
    else:
        centres, labels = lloyd(x, kmeans_plus_plus(x, k, rng), max_iter)
    return SharedWeights(tuple(np.shape(w)), centres.astype(np.float32), labels.astype(np.int64))
