"""Optimizers, schedules, init, model container and architecture round trips."""

import json

import numpy as np
import pytest

from lean import nn
from lean.nets import NETS, build


def test_sgd_matches_hand_computed_momentum_nesterov_and_decay():
    p = {"w": np.array([1.0, -2.0], np.float32)}
    g = {"w": np.array([0.5, 0.5], np.float32)}
    opt = nn.SGD(p, g, momentum=0.9, nesterov=True, weight_decay=0.1)
    opt.step(0.1)
    grad = np.array([0.5, 0.5]) + 0.1 * np.array([1.0, -2.0])
    v = grad
    expected = np.array([1.0, -2.0]) - 0.1 * (grad + 0.9 * v)
    np.testing.assert_allclose(p["w"], expected, rtol=1e-6)
    w1 = p["w"].astype(np.float64).copy()
    opt.step(0.1)
    grad2 = np.array([0.5, 0.5]) + 0.1 * w1
    v2 = 0.9 * v + grad2
    np.testing.assert_allclose(p["w"], w1 - 0.1 * (grad2 + 0.9 * v2), rtol=1e-6)


def test_adam_first_step_moves_by_lr_in_sign_direction():
    p = {"w": np.array([1.0, -1.0, 3.0], np.float32)}
    g = {"w": np.array([0.2, -5.0, 1e-3], np.float32)}
    nn.Adam(p, g).step(0.01)
    np.testing.assert_allclose(p["w"], [0.99, -0.99, 2.99], rtol=1e-4)


def test_optimizer_state_round_trip_and_errors():
    p = {"a": np.ones(3, np.float32)}
    g = {"a": np.ones(3, np.float32)}
    opt = nn.SGD(p, g)
    opt.step(0.1)
    state, meta = opt.state()
    opt2 = nn.SGD({"a": p["a"].copy()}, {"a": g["a"].copy()})
    opt2.load_state(state, meta)
    assert opt2.steps == 1
    np.testing.assert_array_equal(opt2.slots["momentum"]["a"], opt.slots["momentum"]["a"])
    with pytest.raises(ValueError, match="unknown optimizer"):
        nn.make_optimizer("rmsprop", p, g)
    with pytest.raises(ValueError, match="momentum"):
        nn.SGD(p, g, momentum=1.5)


def test_schedules():
    s = nn.Schedule("step", 0.1, 30, step_size=10)
    assert [s.lr_at(t) for t in (0, 10, 25)] == pytest.approx([0.1, 0.01, 1e-3])
    m = nn.Schedule("multistep", 0.1, 160, milestones=(80, 120))
    assert [m.lr_at(t) for t in (79.9, 80, 120)] == pytest.approx([0.1, 0.01, 1e-3])
    c = nn.Schedule("cosine", 0.2, 10)
    assert c.lr_at(0) == pytest.approx(0.2) and c.lr_at(5) == pytest.approx(0.1) and c.lr_at(10) == pytest.approx(0.0)
    w = nn.Schedule("constant", 0.1, 10, warmup_epochs=2, warmup_start=0.0)
    assert w.lr_at(0) == 0.0 and w.lr_at(1) == pytest.approx(0.05) and w.lr_at(3) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        nn.Schedule("exp", 0.1, 10)


@pytest.mark.parametrize("name", list(NETS))
def test_architecture_json_round_trip_gives_same_outputs(name):
    shape = (28, 28, 1) if name in ("mlp", "lenet5") else (16, 16, 3)
    model = build(name, input_shape=shape, num_classes=7, seed=3)
    cfg = json.loads(json.dumps(model.config()))
    clone = nn.Model.from_config(cfg)
    clone.load_state(model.state())
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
    assert clone.num_parameters() == model.num_parameters()


def test_standard_parameter_counts():
    assert build("resnet20").num_parameters() == 269_722      # He et al. 2016: 0.27 M
    assert build("resnet56").num_parameters() == 853_018      # 0.85 M
    assert build("resnet110").num_parameters() == 1_727_962   # 1.7 M
    assert build("lenet5", input_shape=(28, 28, 1)).num_parameters() == 61_706
    assert build("mobilenetv2").num_parameters() == 2_236_682  # CIFAR MobileNetV2, 10 classes


def test_model_errors_and_flat_views_are_live():
    model = build("lenet5", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(ValueError, match="expects input"):
        model.forward(np.zeros((1, 9, 9, 1), np.float32))
    params = model.parameters()
    params["conv1.weight"][...] = 0.0
    assert not model.net["conv1"].params["weight"].any()
    with pytest.raises(ValueError, match="6n"):
        build("resnet21")
    with pytest.raises(ValueError, match="unknown net.*resnet20"):
        build("alexnet9")
    with pytest.raises(ValueError, match="unknown layer type"):
        nn.module_from_config({"type": "Conv3d"})
    with pytest.raises(ValueError, match="does not fit"):
        model.load_state({})


def test_batchnorm_running_statistics_follow_pytorch_convention():
    bn = nn.BatchNorm(2, momentum=0.1)
    x = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32) * 3 + 2
    bn.forward(x, train=True)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)


def test_cross_entropy_refuses_labels_outside_the_classes():
    logits = np.zeros((2, 3), np.float32)
    for labels in (np.array([0, 3]), np.array([-1, 0]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match="labels must be integers in 0..2"):
            nn.softmax_cross_entropy(logits, labels)
