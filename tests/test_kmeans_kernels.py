"""k-means kernels against NumPy references."""

import numpy as np
import pytest
import reference

from lean import kernels


@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (7, 1, 3), (5000, 1, 256), (1, 3, 2), (999, 3, 16), (4097, 9, 64),
                                   (10, 2, 1)])
def test_assign_matches_reference(n, d, k):
    rng = np.random.default_rng(n + d + k)
    x = rng.standard_normal((n, d)).astype(np.float32)
    c = rng.standard_normal((k, d)).astype(np.float32)
    labels, dist = kernels.kmeans_assign(x if d > 1 else x[:, 0], c if d > 1 else c[:, 0])
    ref_labels, ref_dist = reference.kmeans_assign(x, c)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-6)
    # the chosen centre is a nearest one (ties may pick either)
    chosen = ((x.astype(np.float64) - c[labels].astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(chosen, ref_dist, rtol=1e-5, atol=1e-6)
    assert (labels == ref_labels).mean() > 0.999


def test_assign_ties_non_contiguous_and_errors():
    x = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    labels, _ = kernels.kmeans_assign(x, np.array([2.0, 0.0], np.float32))
    assert labels.tolist() == [1, 0, 0, 0] or labels.tolist() == [1, 1, 0, 0]  # 1.0 is a tie
    base = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    x = base[::2, ::2]
    c = base[:4, ::2]
    np.testing.assert_allclose(kernels.kmeans_assign(x, c)[1], reference.kmeans_assign(x, c)[1], rtol=1e-5)
    with pytest.raises(ValueError, match="dims"):
        kernels.kmeans_assign(np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="floating"):
        kernels.kmeans_assign(np.zeros((3, 2), np.int32), np.zeros((2, 2), np.float32))


def test_update_means_counts_and_empty_clusters():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10_000, 3)).astype(np.float32)
    labels = rng.integers(0, 5, 10_000)
    centres, counts = kernels.kmeans_update(x, labels, 6)
    for j in range(5):
        np.testing.assert_allclose(centres[j], x[labels == j].astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-9)
    assert counts.tolist()[:5] == np.bincount(labels, minlength=5).tolist() and counts[5] == 0
    assert np.isnan(centres[5]).all()
    with pytest.raises(ValueError, match="labels must lie"):
        kernels.kmeans_update(x, labels, 3)
