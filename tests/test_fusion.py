"""Inference fusion (lean.nn.fusion) and the conv store epilogues it relies on: the same outputs as layer by
layer, and no fusion where it would change what a hook or observer sees."""

import numpy as np
import pytest
import reference

from lean import kernels
from lean.kernels import direct
from lean.nets import build
from lean.nn import SGD, BatchNorm, Conv2d, Observer, ReLU, Residual, Sequential, softmax_cross_entropy
from lean.nn.fusion import fold_batchnorm, fusing


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("method,c,k,r,stride,padding", [
    ("winograd", 16, 16, 3, 1, 1), ("winograd", 8, 24, 3, 1, 0), ("tiled", 16, 32, 3, 2, 1),
    ("tiled", 8, 16, 1, 1, 0), ("im2col", 6, 16, 5, 1, 2), ("direct", 3, 8, 3, 1, 1)])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_conv_store_adds_the_residual_and_applies_relu(method, c, k, r, stride, padding, with_residual, relu):
    if method in ("winograd", "tiled") and not direct.SIMD_WIDTH:
        pytest.skip("no vector unit: conv2d does not choose the tiled kernels here")
    rng = np.random.default_rng(c + k + r)
    x, w, b = _rand(rng, 2, 9, 7, c), _rand(rng, k, c, r, r), _rand(rng, k)
    ref = reference.conv2d(x, w, b, stride, padding)
    residual = _rand(rng, *ref.shape) if with_residual else None
    if with_residual:
        ref = ref + residual
    if relu:
        ref = np.maximum(ref, 0)
    saved = {}
    y = kernels.conv2d_forward(x, w, b, stride, padding, method=method, saved=saved, residual=residual, relu=relu)
    assert saved["method"] == method
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_a_float64_residual_makes_the_whole_convolution_float64():
    rng = np.random.default_rng(8)
    x, w = _rand(rng, 1, 5, 5, 8), _rand(rng, 8, 8, 3, 3)
    residual = rng.standard_normal((1, 5, 5, 8))
    y = kernels.conv2d_forward(x, w, None, 1, 1, residual=residual, relu=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.maximum(reference.conv2d(x, w, None, 1, 1) + residual, 0), rtol=1e-9)


def test_conv_store_refuses_a_residual_of_another_shape():
    x = np.zeros((1, 6, 6, 8), np.float32)
    with pytest.raises(ValueError, match="conv2d residual must have shape"):
        kernels.conv2d_forward(x, np.zeros((8, 8, 3, 3), np.float32), padding=1, residual=np.zeros((1, 5, 6, 8)))


def _trained(net, shape, steps=3):
    """A net whose batch norms have running statistics away from (0, 1), as after training."""
    model = build(net, input_shape=shape, num_classes=10, seed=1)
    rng = np.random.default_rng(1)
    opt = SGD(model.parameters(), model.gradients(), momentum=0.9)
    x = rng.standard_normal((8, *shape)).astype(np.float32)
    for _ in range(steps):
        model.zero_grad()
        _, d = softmax_cross_entropy(model.forward(x, train=True), rng.integers(0, 10, 8))
        model.backward(d)
        opt.step(0.05)
    return model, x


@pytest.mark.parametrize("net,shape", [("resnet20", (16, 16, 3)), ("lenet5", (28, 28, 1)),
                                       ("preresnet20", (16, 16, 3)), ("mobilenetv2", (16, 16, 3))])
def test_fused_inference_gives_the_layer_by_layer_outputs(net, shape):
    model, x = _trained(net, shape)
    fused = model.forward(x, train=False)
    if net == "resnet20":
        body = model.net["stage1"]["0"].body
        assert body["bn1"].last_method == body["bn2"].last_method == "fused"
    with fusing(False):
        unfused = model.forward(x, train=False)
    if net == "resnet20":
        assert body["bn1"].last_method in ("tiled", "rows")  # ran on its own this time
    np.testing.assert_allclose(fused, unfused, rtol=1e-4, atol=1e-5 * np.abs(unfused).max())


def test_batchnorm_folds_into_the_conv_weights():
    rng = np.random.default_rng(4)
    conv, bn = Conv2d(8, 16, 3, padding=1, bias=True), BatchNorm(16)
    conv.params["weight"][...] = _rand(rng, 16, 8, 3, 3)
    conv.params["bias"][...] = _rand(rng, 16)
    bn.params["weight"][...], bn.params["bias"][...] = _rand(rng, 16), _rand(rng, 16)
    bn.buffers["running_mean"][...], bn.buffers["running_var"][...] = _rand(rng, 16), rng.uniform(0.5, 2, 16)
    x = _rand(rng, 2, 6, 6, 8)
    w, b = fold_batchnorm(conv, bn)
    expected = bn.forward(conv.forward(x))
    np.testing.assert_allclose(reference.conv2d(x, w, b, 1, 1), expected, rtol=1e-4, atol=1e-4)


class _Seen(Observer):
    def __init__(self):
        self.calls = []

    def on_forward(self, module, x, y, train):
        self.calls.append(y.copy())


def test_layers_with_observers_run_unfused_and_see_their_own_outputs():
    rng = np.random.default_rng(2)
    conv, bn = Conv2d(8, 8, 3, padding=1), BatchNorm(8, relu=True)
    conv.params["weight"][...] = _rand(rng, 8, 8, 3, 3)
    seen = _Seen()
    conv.add_observer(seen)
    seq = Sequential([("conv", conv), ("bn", bn), ("relu", ReLU())])
    x = _rand(rng, 2, 5, 5, 8)
    y = seq.forward(x)
    assert len(seen.calls) == 1
    np.testing.assert_allclose(seen.calls[0], reference.conv2d(x, conv.params["weight"], None, 1, 1), rtol=1e-4,
                               atol=1e-4)  # the conv's own output, before the batch norm
    conv.remove_observer(seen)
    np.testing.assert_allclose(seq.forward(x), y, rtol=1e-4, atol=1e-4)  # now fused: rounding apart


def test_residual_blocks_with_disagreeing_branches_still_say_so():
    body = Sequential([("conv", Conv2d(8, 8, 3, stride=2, padding=1)), ("bn", BatchNorm(8))])
    block = Residual(body, None, relu_after=True)
    with pytest.raises(ValueError, match="residual branches disagree"):
        block.forward(np.zeros((1, 6, 6, 8), np.float32))


def _resnet8_step(seed):
    """A ResNet-8 training step on random data: (model, input, loss, gradients)."""
    model = build("resnet8", input_shape=(12, 12, 3), num_classes=10, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 12, 12, 3)).astype(np.float32)
    model.zero_grad()
    loss, d = softmax_cross_entropy(model.forward(x, train=True), rng.integers(0, 10, 6))
    model.backward(d)
    return model, x, loss, {name: g.copy() for name, g in model.gradients().items()}


def test_the_portable_paths_give_the_same_training_step_and_inference(monkeypatch):
    # an ARM board or an old x86 runs with no vector kernels (SIMD width 0): im2col + BLAS, row batch norm,
    # unfused epilogues; the results must be the vector paths' up to float32 rounding
    from lean.kernels import batchnorm

    def step():
        model, x, loss, grads = _resnet8_step(3)
        return loss, grads, model.forward(x, train=False)

    vector = step()
    monkeypatch.setattr(direct, "SIMD_WIDTH", 0)
    monkeypatch.setattr(batchnorm, "SIMD_WIDTH", 0)
    portable = step()
    assert abs(vector[0] - portable[0]) < 1e-4
    for name, g in vector[1].items():
        np.testing.assert_allclose(portable[1][name], g, rtol=2e-3, atol=2e-4 * (np.abs(g).max() + 1e-6))
    np.testing.assert_allclose(portable[2], vector[2], rtol=1e-3, atol=1e-4 * np.abs(vector[2]).max())


@pytest.mark.parametrize("simd", [None, 0])
def test_training_blocks_add_the_shortcut_in_the_last_batch_norm_with_the_same_results(monkeypatch, simd):
    # a post-activation block's add and ReLU run in its last batch norm's output pass when training; the step's
    # loss, gradients and running statistics equal those of the separate passes (same arithmetic, same order)
    from lean.kernels import batchnorm

    if simd is not None:
        monkeypatch.setattr(direct, "SIMD_WIDTH", simd)
        monkeypatch.setattr(batchnorm, "SIMD_WIDTH", simd)

    def step():
        model, _, loss, grads = _resnet8_step(4)
        return loss, grads, {name: a.copy() for name, a in model.state().items()}

    calls = []
    fused_method = BatchNorm.forward_train_residual
    monkeypatch.setattr(BatchNorm, "forward_train_residual",
                        lambda self, *a: calls.append(1) or fused_method(self, *a))
    fused = step()
    assert len(calls) == 3  # resnet8: three blocks
    monkeypatch.setattr(Sequential, "forward_train_residual", lambda self, x, residual, relu: None)
    separate = step()
    assert fused[0] == separate[0]
    for name, g in separate[1].items():
        np.testing.assert_array_equal(fused[1][name], g)
    for name, a in separate[2].items():
        np.testing.assert_array_equal(fused[2][name], a)
    body = Sequential([("conv", Conv2d(8, 8, 3, padding=1)), ("bn", BatchNorm(8, relu=True))])
    assert body.forward_train_residual(np.zeros((1, 4, 4, 8), np.float32), np.zeros((1, 4, 4, 8)), True) is None
