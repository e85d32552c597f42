"""Network slimming penalty, global channel masks, mask distance and early-bird detection."""

import numpy as np
import pytest

from lean.compress.slimming import EarlyBird, SlimmingPenalty, channel_masks, mask_distance
from lean.errors import ConfigError
from lean.nets import build
from lean.nn import BatchNorm


def test_penalty_adds_l1_subgradient_to_bn_scales():
    model = build("resnet8", input_shape=(8, 8, 3))
    bns = [m for m in model.net.modules() if isinstance(m, BatchNorm)]
    bns[0].params["weight"][:2] = [-0.5, 0.0]
    SlimmingPenalty(model, 1e-4).before_update(None)
    assert bns[0].grads["weight"][0] == pytest.approx(-1e-4) and bns[0].grads["weight"][1] == 0.0
    assert bns[1].grads["weight"][0] == pytest.approx(1e-4)


def test_bn_init_sets_the_scales_of_a_fresh_run_only(tmp_path, monkeypatch):
    from lean.train import TrainConfig, resume, run, set_batchnorm_scales, start

    model = build("resnet8", input_shape=(8, 8, 3))
    set_batchnorm_scales(model, 0.5)
    scales = [m.params["weight"] for m in model.net.modules() if isinstance(m, BatchNorm)]
    assert len(scales) > 3 and all((s == 0.5).all() for s in scales)
    calls = []
    monkeypatch.setattr(run, "set_batchnorm_scales", lambda m, v: calls.append(v) or set_batchnorm_scales(m, v))
    start(TrainConfig(net="resnet8", data="digits", epochs=1, batch_size=64, bn_init=0.5), out=tmp_path / "r.h5")
    resume(tmp_path / "r.h5", epochs=2)  # a resume keeps its scales
    assert calls == [0.5]
    with pytest.raises(ValueError, match="--bn-init"):
        TrainConfig(bn_init=0.0)


def test_masks_use_one_global_threshold():
    model = build("vgg11", input_shape=(16, 16, 3), width=0.125)
    bns = [(n, m) for n, m in model.net.named_modules() if isinstance(m, BatchNorm)]
    rng = np.random.default_rng(0)
    for i, (_, m) in enumerate(bns):
        m.params["weight"][...] = rng.random(m.num_features) + (1.0 if i == 0 else 0.0)  # layer 0 all large
    masks = channel_masks(model, 0.5)
    total = sum(m.size for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == pytest.approx(total / 2, abs=1)
    assert masks[bns[0][0]].all()  # a global threshold keeps the whole strong layer
    with pytest.raises(ValueError, match="ratio"):
        channel_masks(model, 1.0)


def test_mask_distance_and_ticket_detection_on_constructed_sequences():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 1], bool)
    b = a.copy()
    b[:2] = ~b[:2]
    assert mask_distance(a, b) == pytest.approx(0.2)
    eb = EarlyBird(window=3, epsilon=0.1)
    rng = np.random.default_rng(1)
    drifting = [rng.random(100) < 0.5 for _ in range(3)]          # random masks: far apart
    settled = drifting[-1].copy()
    sequence = drifting + [settled, settled, settled]
    emerged = [eb.observe(m, epoch) for epoch, m in enumerate(sequence, start=1)]
    assert emerged == [False, False, False, False, True, True]
    assert eb.ticket_epoch == 5 and eb.distances[-1] == 0.0
    # masks that never settle: no ticket, and the closest approach counts only windows that were full
    never = EarlyBird(window=3, epsilon=0.01)
    for epoch, m in enumerate([a, a, b, a, b, b], start=1):  # the first two agree before the FIFO is full
        never.observe(m, epoch)
    assert never.ticket_epoch is None and never.distances[1] == 0.0
    assert never.closest() == (pytest.approx(0.2), 3)
    with pytest.raises(ValueError, match="differ in size"):
        mask_distance(a, a[:5])


def test_pruned_vgg_equals_the_masked_unpruned_vgg():
    from lean.compress.slimming import masked_copy, prune_plain

    model = build("vgg11", input_shape=(16, 16, 3), num_classes=5, seed=0, width=0.125)
    rng = np.random.default_rng(2)
    for m in model.net.modules():
        if isinstance(m, BatchNorm):
            m.params["weight"][...] = rng.random(m.num_features) + 0.1
            m.params["bias"][...] = rng.standard_normal(m.num_features) * 0.1
            m.buffers["running_mean"][...] = rng.standard_normal(m.num_features) * 0.1
    masks = channel_masks(model, 0.5)
    pruned = prune_plain(model, masks)
    assert pruned.num_parameters() < 0.6 * model.num_parameters()
    x = rng.standard_normal((3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(pruned.forward(x), masked_copy(model, masks).forward(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="plain layer stacks"):
        prune_plain(build("resnet8", input_shape=(8, 8, 3)), {})


@pytest.mark.parametrize("net", ["resnet14", "preresnet14", "preresnet29"])
def test_pruned_residual_nets_equal_the_masked_unpruned_nets(net):
    from lean.compress.slimming import masked_copy, prunable_batchnorms, prune

    model = build(net, input_shape=(8, 8, 3), num_classes=4, seed=1)
    rng = np.random.default_rng(3)
    for m in model.net.modules():
        if isinstance(m, BatchNorm):
            m.params["weight"][...] = rng.random(m.num_features) + 0.05
            m.params["bias"][...] = rng.standard_normal(m.num_features) * 0.1
            m.buffers["running_mean"][...] = rng.standard_normal(m.num_features) * 0.1
    masks = channel_masks(model, 0.5)
    assert set(masks) == set(prunable_batchnorms(model))
    pruned = prune(model, masks)
    assert pruned.num_parameters() < 0.8 * model.num_parameters()
    x = rng.standard_normal((3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(pruned.forward(x), masked_copy(model, masks).forward(x), rtol=1e-4, atol=1e-5)
    # the pruned net is an ordinary model: it trains (backward runs) and its architecture round-trips
    from lean.nn import Model, softmax_cross_entropy

    _, d = softmax_cross_entropy(pruned.forward(x, train=True), np.array([0, 1, 2]))
    pruned.backward(d)
    clone = Model.from_config(pruned.config())
    clone.load_state(pruned.state())
    np.testing.assert_allclose(clone.forward(x), pruned.forward(x), rtol=1e-6)
    if net.startswith("pre"):
        assert any(type(m).__name__ == "ChannelSelect" for m in pruned.net.modules())


def test_slimming_runs_take_the_authors_weight_decay_unless_one_is_given():
    from lean.compress.config import EarlyBirdConfig, SlimmingConfig
    from lean.train.config import TrainConfig

    plain = TrainConfig(net="vgg11", data="fashion-mnist")
    slim = TrainConfig(net="vgg11", data="fashion-mnist", methods=(SlimmingConfig(1e-4), EarlyBirdConfig("0.5")))
    given = TrainConfig(net="vgg11", data="fashion-mnist", weight_decay=5e-4, methods=(SlimmingConfig(1e-4),))
    assert plain.weight_decay == 5e-4 and slim.weight_decay == 1e-4 and given.weight_decay == 5e-4
    assert TrainConfig.from_dict(given.to_dict()).weight_decay == 5e-4  # a stored run keeps what it ran with


def test_protective_masks_keep_each_layers_top_share_and_prune_about_the_ratio():
    model = build("vgg11", input_shape=(16, 16, 3), num_classes=5, seed=0, width=0.25)
    rng = np.random.default_rng(3)
    bns = [m for m in model.net.modules() if isinstance(m, BatchNorm)]
    for i, bn in enumerate(bns):  # the last layer's scales all far below the others' (an early ticket's state)
        bn.params["weight"][...] = rng.random(bn.num_features) * (0.01 if i == len(bns) - 1 else 1.0) + 0.001
    plain = channel_masks(model, 0.5, every_batchnorm=True)
    protected = channel_masks(model, 0.5, every_batchnorm=True, protect=0.1)
    last = list(plain)[-1]
    assert plain[last].sum() == 0  # the global threshold alone empties that layer
    for name, keep in protected.items():
        c = keep.size
        top = np.argsort(-np.abs(dict(model.net.named_modules())[name].params["weight"]))[:c - int(c * 0.9) - 1]
        assert keep[top].all(), name  # each layer's top share survives
    assert protected[last].sum() >= 1
    total = sum(k.size for k in protected.values())
    assert abs(sum(int(k.sum()) for k in protected.values()) - total / 2) <= 0.05 * total
    with pytest.raises(ConfigError, match="protected share"):
        channel_masks(model, 0.5, protect=1.0)
