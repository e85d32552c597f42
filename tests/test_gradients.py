"""Every layer's input and parameter gradients against central differences in float64."""

import numpy as np
import pytest
from gradcheck import check_module, to_float64

from lean import nn
from lean.nets import build


def _away_from_kinks(rng, shape, margin=0.05):
    v = rng.standard_normal(shape)
    return np.sign(v) * (np.abs(v) + margin)


def _init(module, seed=0):
    nn.kaiming_init(module, seed)
    rng = np.random.default_rng(seed + 1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm):  # non-trivial affine so its gradients are exercised
            m.params["weight"][...] = 1.0 + 0.3 * rng.standard_normal(m.num_features)
            m.params["bias"][...] = 0.3 * rng.standard_normal(m.num_features)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and "bias" in m.params:
            m.params["bias"][...] = 0.1 * rng.standard_normal(m.params["bias"].shape)
    return to_float64(module)


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=4, kernel_size=3, stride=1, padding=1, bias=True),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, padding=1, groups=4),
    dict(in_channels=5, out_channels=3, kernel_size=1),
    dict(in_channels=2, out_channels=3, kernel_size=5, padding=2, bias=True),
])
def test_conv2d(args):
    rng = np.random.default_rng(0)
    layer = _init(nn.Conv2d(**args))
    check_module(layer, rng.standard_normal((2, 6, 5, args["in_channels"])))


def test_linear():
    rng = np.random.default_rng(1)
    check_module(_init(nn.Linear(7, 4)), rng.standard_normal((3, 7)))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(4, 3, 3, 5), (6, 4)])
def test_batchnorm_train_mode(relu, shape):
    rng = np.random.default_rng(2)
    check_module(_init(nn.BatchNorm(shape[-1], relu=relu)), rng.standard_normal(shape) * 2 + 0.5)


def test_relu_relu6_and_pools():
    rng = np.random.default_rng(3)
    x = _away_from_kinks(rng, (2, 6, 6, 3)) * 4
    x[np.abs(x - 6) < 0.05] += 0.2
    check_module(nn.ReLU(), x)
    check_module(nn.ReLU6(), x)
    check_module(nn.MaxPool2d(2), rng.permutation(np.arange(2 * 6 * 6 * 3, dtype=np.float64)).reshape(2, 6, 6, 3))
    check_module(nn.MaxPool2d(3, 2, 1), rng.permutation(np.arange(2 * 7 * 7 * 2, dtype=np.float64)).reshape(2, 7, 7, 2))
    check_module(nn.AvgPool2d(2), x)
    check_module(nn.GlobalAvgPool(), x)
    check_module(nn.Flatten(), x)


def test_dropout_with_fixed_mask():
    rng = np.random.default_rng(4)
    layer = nn.Dropout(0.3)

    def same_mask():
        layer.rng = np.random.default_rng(7)

    check_module(layer, rng.standard_normal((4, 10)), before=same_mask)
    assert not np.array_equal(layer.forward(np.ones((4, 10)), train=True), np.ones((4, 10)))
    np.testing.assert_array_equal(layer.forward(np.ones((4, 10)), train=False), np.ones((4, 10)))


def test_residual_blocks():
    rng = np.random.default_rng(5)
    body = nn.Sequential([nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm(4, relu=True), nn.Conv2d(4, 4, 3, padding=1)])
    check_module(_init(nn.Residual(body, None, relu_after=True)), rng.standard_normal((2, 5, 5, 4)))
    body = nn.Sequential([nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm(8)])
    check_module(_init(nn.Residual(body, nn.ShortcutPadA(4, 8, 2), relu_after=True)), rng.standard_normal((2, 6, 6, 4)))
    body = nn.Sequential([nn.BatchNorm(4, relu=True), nn.Conv2d(4, 6, 3, stride=2, padding=1)])
    check_module(_init(nn.Residual(body, nn.Conv2d(4, 6, 1, stride=2))), rng.standard_normal((3, 6, 6, 4)))


@pytest.mark.parametrize("name,shape", [("resnet8", (8, 8, 3)), ("preresnet8", (8, 8, 3)),
                                        ("lenet5", (8, 8, 1)), ("mlp", (4, 4, 1))])
def test_whole_networks(name, shape):
    rng = np.random.default_rng(6)
    model = build(name, input_shape=shape, num_classes=3, seed=1)
    model.set_input_grad(True)
    _init(model.net, seed=1)
    check_module(model.net, rng.standard_normal((4, *shape)), samples=8)


def test_mobilenet_block_with_depthwise():
    rng = np.random.default_rng(7)
    body = nn.Sequential([nn.Conv2d(4, 8, 1), nn.BatchNorm(8), nn.ReLU6(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm(8), nn.ReLU6(),
                          nn.Conv2d(8, 4, 1), nn.BatchNorm(4)])
    check_module(_init(nn.Residual(body, None)), rng.standard_normal((3, 5, 5, 4)) * 0.5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(smoothing):
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    loss, d = nn.softmax_cross_entropy(logits, labels, smoothing)
    eps = 1e-6
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += eps
        down[idx] -= eps
        up_loss = nn.softmax_cross_entropy(up, labels, smoothing)[0]
        num = (up_loss - nn.softmax_cross_entropy(down, labels, smoothing)[0]) / (2 * eps)
        np.testing.assert_allclose(d[idx], num, rtol=1e-5, atol=1e-8)
    # a uniform prediction costs log(classes) whatever the smoothing
    assert nn.softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 1]), smoothing)[0] == pytest.approx(np.log(4))
