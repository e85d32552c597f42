"""Deep k-means clustering: samples, seeding, Lloyd, sparsity variant, storage."""

import numpy as np
import pytest

from lean.compress.kmeans import cluster_rows, huffman_length, kernel_rows, kmeans_plus_plus, lloyd
from lean.errors import ConfigError


def test_kernel_rows_are_the_papers_samples():
    w = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    rows = kernel_rows(w)
    assert rows.shape == (18, 3)                # N = s * c * m columns of length s
    np.testing.assert_array_equal(rows[4], w[0, 1, 1])


def test_lloyd_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    truth = np.array([[-5, 0, 5], [5, 5, 5], [0, -5, 0]], np.float32)
    x = np.concatenate([t + 0.1 * rng.standard_normal((200, 3)) for t in truth]).astype(np.float32)
    centres, labels = lloyd(x, kmeans_plus_plus(x, 3, rng))
    for t in truth:
        assert np.min(np.linalg.norm(centres - t, axis=1)) < 0.05
    assert len(np.unique(labels)) == 3


def test_clustering_error_falls_with_more_clusters_and_weights_are_shared():
    w = np.random.default_rng(1).standard_normal((16, 8, 3, 3)).astype(np.float32)
    errors = []
    for k in (4, 16, 64):
        shared = cluster_rows(w, k, seed=0)
        dense = shared.dense()
        assert len(np.unique(dense.reshape(-1, 3), axis=0)) <= k
        errors.append(np.linalg.norm(dense - w))
    assert errors[0] > errors[1] > errors[2]


def test_sparsity_zero_form_zeroes_the_smallest_rows():
    w = np.random.default_rng(2).standard_normal((8, 8, 3, 3)).astype(np.float32)
    shared = cluster_rows(w, 8, sparsity=0.5, sparse_centre="zero")
    rows = kernel_rows(w)
    zero = shared.labels == 0
    assert np.all(shared.centres[0] == 0) and zero.mean() == pytest.approx(0.5, abs=0.01)
    norms = np.linalg.norm(rows, axis=1)
    assert norms[zero].max() <= norms[~zero].min() + 1e-6


def test_sparsity_mean_form_shares_the_mean_of_the_rows_nearest_the_mean_row():
    # the authors' form (util/kmeans.py): distances to the mean row, not norms; centre 0 is those rows' mean
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((8, 8, 3, 3)) + np.array([2.0, -1.0, 0.5])).astype(np.float32)  # mean row far from 0
    shared = cluster_rows(w, 8, sparsity=0.4)
    rows = kernel_rows(w)
    first = shared.labels == 0
    assert first.mean() == pytest.approx(0.4, abs=0.01)
    distance = np.linalg.norm(rows - rows.mean(axis=0), axis=1)
    assert distance[first].max() <= distance[~first].min() + 1e-6
    np.testing.assert_allclose(shared.centres[0], rows[first].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(shared.centres[0], 0)
    zero_form = cluster_rows(w, 8, sparsity=0.4, sparse_centre="zero")  # the other form picks other rows here
    assert not np.array_equal(zero_form.labels == 0, first)
    with pytest.raises(ConfigError, match="sparse centre"):
        cluster_rows(w, 8, sparsity=0.4, sparse_centre="median")


@pytest.mark.parametrize("sparse_centre", ["mean", "zero"])
def test_the_shared_centre_survives_fine_tuning(sparse_centre):
    from lean.compress.pipeline import apply_kmeans
    from lean.nets import build
    from lean.nn import SGD, softmax_cross_entropy

    model = build("resnet8", input_shape=(8, 8, 1), num_classes=10, seed=0, width=0.5)
    apply_kmeans(model, clusters=8, sparsity=0.5, sparse_centre=sparse_centre)
    convs = [m for _, m in model.net.named_modules() if getattr(m, "form", None) is not None]
    before = [m.form.centres().copy() for m in convs]
    optimizer = SGD(model.parameters(), model.gradients(), momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        model.zero_grad()
        _, d = softmax_cross_entropy(model.forward(rng.standard_normal((16, 8, 8, 1)).astype(np.float32),
                                                   train=True), rng.integers(0, 10, 16))
        model.backward(d)
        optimizer.step(0.1)
    for layer, old in zip(convs, before, strict=True):
        now = layer.form.centres()
        np.testing.assert_array_equal(now[0], old[0])  # fixed, weight decay and momentum included
        assert not np.array_equal(now[1:], old[1:])  # the others train
        dense = layer.weight().reshape(-1, now.shape[1])
        np.testing.assert_array_equal(dense[layer.form.buffers["labels"] == 0], np.broadcast_to(old[0], (
            int((layer.form.buffers["labels"] == 0).sum()), now.shape[1])))
        if sparse_centre == "zero":
            assert not dense[layer.form.buffers["labels"] == 0].any()  # whole zero kernel rows, still


def test_storage_codebook_plus_huffman():
    assert huffman_length([5]) == 5
    assert huffman_length([1, 1]) == 2
    assert huffman_length([10, 5, 5]) == 10 * 1 + 5 * 2 + 5 * 2
    w = np.random.default_rng(3).standard_normal((16, 16, 3, 3)).astype(np.float32)
    shared = cluster_rows(w, 16)
    assert shared.entropy_bits() <= shared.huffman_bits() <= shared.entropy_bits() + len(shared.labels)
    assert shared.storage_bits() == 16 * 3 * 32 + shared.huffman_bits()
    assert w.size * 32 / shared.storage_bits() > 10


def test_bad_options():
    w = np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="clusters"):
        cluster_rows(w, 0)
    with pytest.raises(ValueError, match="only 12 kernel rows"):
        cluster_rows(w, 13)
    with pytest.raises(ValueError, match="sparsity"):
        cluster_rows(w, 4, sparsity=1.0)
    with pytest.raises(ValueError, match="deep k-means takes"):
        cluster_rows(np.zeros(5), 2)


@pytest.mark.parametrize("form", ["paper", "indicator"])
def test_the_kmeans_regularizer_gradient_matches_central_differences_and_pulls_rows_together(form):
    from lean.compress.pipeline import KMeansRegularizer
    from lean.nn import Conv2d, Model, Sequential

    rng = np.random.default_rng(3)
    conv = Conv2d(4, 6, 3, padding=1)
    conv.params["weight"][...] = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    model = Model(Sequential([("conv", conv)]), input_shape=(5, 5, 4), num_classes=6)
    lam = 0.1
    reg = KMeansRegularizer(model, clusters=4, lam=lam, form=form)
    reg._refresh()
    if form == "paper":  # its F spans W's rows at the refresh (the term and its gradient are zero there): drift
        conv.params["weight"] += 0.3 * rng.standard_normal((6, 4, 3, 3)).astype(np.float32)

    def penalty():  # (lambda / 2) [Tr(W^T W) - Tr(F^T W^T W F)] with F as last refreshed, W = rows^T
        rows = kernel_rows(conv.params["weight"]).astype(np.float64)
        if form == "paper":
            v = reg.projections["conv"]
            return lam / 2 * ((rows ** 2).sum() - ((rows.T @ v) ** 2).sum())
        labels = reg.projections["conv"]
        means = np.stack([rows[labels == j].mean(axis=0) if (labels == j).any() else np.zeros(3)
                          for j in range(labels.max() + 1)])
        return lam / 2 * ((rows - means[labels]) ** 2).sum()

    conv.grads["weight"][...] = 0
    reg.before_update(None)
    grad = conv.grads["weight"].copy()
    assert np.abs(grad).max() > 1e-3  # a zero gradient would match the differences of a flat penalty
    w = conv.params["weight"]
    for idx in [(0, 0, 0, 0), (2, 1, 1, 2), (5, 3, 2, 1), (3, 2, 0, 1)]:
        old = w[idx]
        w[idx] = old + 1e-2
        up = penalty()
        w[idx] = old - 1e-2
        down = penalty()
        w[idx] = old
        assert grad[idx] == pytest.approx((up - down) / 2e-2, rel=1e-3, abs=1e-6)
    # its effect: gradient steps on the term shrink the rows' spread around their centres (indicator) or the
    # drift away from the subspace of the last refresh (paper)
    before = penalty()
    for _ in range(5):
        conv.grads["weight"][...] = 0
        reg.before_update(None)
        w -= 2.0 * conv.grads["weight"]
    assert penalty() < 0.5 * before


def test_sparsity_that_rounds_to_no_row_clusters_plainly_and_too_much_is_refused():
    w = np.random.default_rng(4).standard_normal((2, 2, 3, 3)).astype(np.float32)  # 12 kernel rows
    few = cluster_rows(w, 4, sparsity=0.01)  # 0.12 of a row: no shared centre, all 4 centres clustered
    assert not few.shared_centre and len(np.unique(few.labels)) == 4
    assert cluster_rows(w, 4, sparsity=0.5).shared_centre
    with pytest.raises(ConfigError, match="leaves 1 kernel rows for 3 clusters"):
        cluster_rows(w, 4, sparsity=0.9)
