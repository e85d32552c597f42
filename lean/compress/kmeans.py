"""Deep k-means weight sharing (Wu et al., ICML 2018): cluster kernel rows, share one centre per cluster.

Paper: J. Wu, Y. Wang, Z. Wu, Z. Wang, A. Veeraraghavan, Y. Lin, "Deep k-Means: Re-Training and Parameter
Sharing with Harder Cluster Assignments for Compressing Deep Convolutions", ICML 2018 (PMLR 80:5363-5372,
arXiv:1806.09228); authors' code: VITA-Group/Deep-K-Means-pytorch. Steps are cited by name: the paper's section
and equation numbers could not be confirmed from the material at hand.

Where the steps are:

- ``kernel_rows``: a conv weight (m, c, s, s) as N = m*c*s samples of length s (each a kernel row; the paper's
  W of shape (s, N), transposed: its row-wise weight sharing). Linear layers: rows of 1 weight (scalar
  clustering).
- The re-training with the spectrally relaxed k-means regularizer is ``lean.compress.pipeline.KMeansRegularizer``.
- ``kmeans_plus_plus`` and ``lloyd``: k-means++ seeding (Arthur and Vassilvitskii, SODA 2007) and Lloyd's
  iterations (Lloyd, 1982), as the authors' code clusters (k-means++ start, then k-means), on the Numba kernels
  of ``lean.kernels`` (assignment and centre update). An emptied cluster is re-seeded with the sample farthest
  from its centre.
- ``cluster_rows``: the optional sparsity option, ``sparse_centre="mean"`` (the authors' code,
  ``util/kmeans.py``, ``k_means_gpu_sparsity``, and the default): the fraction ``sparsity`` of rows nearest the
  mean row share one centre, the mean of those rows (centre 0); the rest are clustered into K - 1 centres
  (k-means++, then Lloyd). ``sparse_centre="zero"`` is lean's earlier variant, kept as an option: the
  smallest-norm rows share a centre at zero (then whole kernel rows are zero: sparsity an accelerator can skip,
  which the mean form does not give). Either way centre 0 stays fixed in fine-tuning (``SharedWeight``'s
  ``fixed_centre``; METHODS.md): the authors released no fine-tuning code (their issue #2), so this follows the
  paper's description. Small departures from their ``k_means_gpu_sparsity``: lean shares
  ``round(sparsity * N)`` rows (theirs ``int()``, at most one row fewer), and K centres in all (theirs: for rows of
  one weight, as in linear layers, the rest get K centres besides the shared one, K + 1 in all, which looks like
  an oversight; lean keeps K so the storage count is what ``--clusters`` says).
- ``SharedWeights``: the result (centres, per-row assignment) with ``dense()`` and storage:
  K * s * 32 bits of codebook plus the assignments Huffman-coded (``huffman_bits``; ``entropy_bits`` gives the
  ideal -sum log2 p bound the paper quotes).
"""

from dataclasses import dataclass

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..nn.compressed import CENTRE_BITS, huffman_length

SPARSE_CENTRES = ("mean", "zero")  # the shared centre of the sparsity option: the authors' (mean), lean's (zero)


def kernel_rows(w: np.ndarray) -> np.ndarray:
    """The clustering samples of a weight: one per kernel row.

    Parameters
    ----------
    w : np.ndarray
        Conv weight (m, c, r, s) or linear weight (k, n).

    Returns
    -------
    np.ndarray
        (m*c*r, s) float32 kernel rows (the transpose of the paper's (s, N) matrix), or (k*n, 1) float32
        scalars for a linear weight. A view of ``w`` where ``w`` is already float32 and contiguous.

    Raises
    ------
    ValueError
        ``w`` is neither 2-D nor 4-D.

    Notes
    -----
    Wu et al., ICML 2018: weights shared row-wise, each kernel row a sample (section unconfirmed).
    """
    w = np.asarray(w, dtype=np.float32)
    if w.ndim == 4:
        return w.reshape(-1, w.shape[3])
    if w.ndim == 2:
        return w.reshape(-1, 1)
    raise ValueError(f"deep k-means takes conv (m, c, r, s) or linear (k, n) weights; got shape {w.shape}")


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds (Arthur and Vassilvitskii, 2007): each next centre drawn from the samples with
    probability proportional to its squared distance to the nearest centre so far.

    Parameters
    ----------
    x : np.ndarray
        (n, d) samples.
    k : int
        Number of seeds, 1 <= k <= n.
    rng : np.random.Generator
        Source of the draws.

    Returns
    -------
    np.ndarray
        (k, d) seeds, rows of ``x``, in ``x``'s dtype.
    """
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


def lloyd(x: np.ndarray, centres: np.ndarray, max_iter: int = 50,
          fixed: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's iterations from ``centres`` (assign to the nearest centre, move each centre to its mean) until the
    assignment stops changing or ``max_iter`` rounds.

    Parameters
    ----------
    x : np.ndarray
        (n, d) float32 samples.
    centres : np.ndarray
        (K, d) starting centres (not modified).
    max_iter : int
        Most rounds.
    fixed : tuple of int
        Indices of centres that do not move (and are not re-seeded when empty).

    Returns
    -------
    centres : np.ndarray
        (K, d) in ``x``'s dtype.
    labels : np.ndarray
        (n,) int64, the index of each sample's centre.
    """
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
    """A weight as K shared centres and one centre index per kernel row (or scalar).

    Attributes
    ----------
    shape : tuple of int
        The dense weight's shape, (m, c, r, s) or (k, n).
    centres : np.ndarray
        (K, s) float32 codebook (s = 1 for a linear weight).
    labels : np.ndarray
        (N,) int64, one centre index per row of ``kernel_rows(w)``.
    """

    shape: tuple[int, ...]
    centres: np.ndarray   # (K, s) float32
    labels: np.ndarray    # (N,) int, one per kernel row
    shared_centre: bool = False  # centre 0 is the sparsity option's shared centre (fixed in fine-tuning)

    def dense(self) -> np.ndarray:
        """The shared weight in ``shape``, float32 (each row replaced by its centre)."""
        return self.centres[self.labels].reshape(self.shape).astype(np.float32)

    def huffman_bits(self) -> int:
        """Bits of the assignments under a Huffman code of the label counts."""
        return int(huffman_length(np.bincount(self.labels, minlength=len(self.centres))))

    def entropy_bits(self) -> float:
        """The ideal code length of the assignments, -sum over rows of log2 p(label), in bits."""
        counts = np.bincount(self.labels, minlength=len(self.centres)).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(counts[counts > 0] * np.log2(p)).sum())

    def storage_bits(self) -> int:
        """Codebook (``CENTRE_BITS``-bit floats) plus Huffman-coded assignments."""
        return int(self.centres.size * CENTRE_BITS + self.huffman_bits())


def cluster_rows(w: np.ndarray, k: int, sparsity: float = 0.0, seed: int = 0, max_iter: int = 50,
                 sparse_centre: str = "mean") -> SharedWeights:
    """Share ``k`` centres among the kernel rows of ``w``; returns ``SharedWeights``.

    Parameters
    ----------
    w : np.ndarray
        Conv weight (m, c, r, s) or linear weight (k, n).
    k : int
        Number of centres, 1 <= k <= the number of kernel rows N.
    sparsity : float
        In [0, 1): the fraction of rows given the shared centre 0 (see ``sparse_centre``). Needs k >= 2 when > 0.
    seed : int
        Seed of the k-means++ draws.
    max_iter : int
        Most Lloyd rounds.
    sparse_centre : str
        ``"mean"`` (the authors'): the rows nearest the mean row, and centre 0 is their mean; ``"zero"``: the
        smallest-norm rows, and centre 0 is zero.

    Returns
    -------
    SharedWeights
        centres (k, s) float32 and labels (N,) int64, N = m*c*r (or k*n).

    Raises
    ------
    ConfigError
        ``k`` not a positive integer or more than N, ``sparsity`` outside [0, 1), ``sparsity`` > 0 with k < 2,
        an unknown ``sparse_centre``.

    Notes
    -----
    Wu et al., ICML 2018, the weight-sharing step after re-training (section unconfirmed): k-means++ seeds
    (Arthur and Vassilvitskii, 2007), then Lloyd's iterations, as the authors' code clusters.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"clusters must be a positive integer; got {k!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1); got {sparsity}")
    if sparse_centre not in SPARSE_CENTRES:
        raise ConfigError(f"sparse centre must be one of {', '.join(SPARSE_CENTRES)}; got {sparse_centre!r}")
    x = kernel_rows(w)
    if k > len(x):
        raise ConfigError(f"{k} clusters for only {len(x)} kernel rows")
    rng = np.random.default_rng(seed)
    n_shared = int(round(sparsity * len(x)))
    if n_shared > 0:
        if k < 2:
            raise ConfigError("the sparsity option needs at least 2 clusters (one is the shared centre 0)")
        if len(x) - n_shared < k - 1:
            raise ConfigError(f"sparsity {sparsity} leaves {len(x) - n_shared} kernel rows for {k - 1} clusters")
        if sparse_centre == "mean":  # the authors': distance to the mean row
            distance = np.linalg.norm(x - x.mean(axis=0, dtype=np.float64), axis=1)
        else:  # lean's: the row's norm, distance to zero
            distance = np.linalg.norm(x, axis=1)
        shared_rows = np.argsort(distance, kind="stable")[:n_shared]
        rest = np.setdiff1d(np.arange(len(x)), shared_rows)
        centres = np.zeros((k, x.shape[1]), np.float32)
        if sparse_centre == "mean":
            centres[0] = x[shared_rows].mean(axis=0, dtype=np.float64)
        centres[1:] = kmeans_plus_plus(x[rest], k - 1, rng)
        centres[1:], rest_labels = lloyd(x[rest], centres[1:], max_iter)
        labels = np.zeros(len(x), np.int64)
        labels[rest] = rest_labels + 1
        return SharedWeights(tuple(np.shape(w)), centres.astype(np.float32), labels, shared_centre=True)
    # no shared rows (sparsity 0, or too few rows to round to one): k-means++ start, then Lloyd (Arthur and
    # Vassilvitskii, 2007; the authors' clustering)
    centres, labels = lloyd(x, kmeans_plus_plus(x, k, rng), max_iter)
    return SharedWeights(tuple(np.shape(w)), centres.astype(np.float32), labels.astype(np.int64))
