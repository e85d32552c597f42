"""Compressed weight forms: forward equals the re-densified model, gradients, exact checkpoint round trips."""

import numpy as np
import pytest

from lean.compress.kmeans import cluster_rows
from lean.compress.smartexchange import decompose_layer
from lean.nets import build
from lean.nn import Conv2d, Linear, Model
from lean.nn.checkpoint import Checkpoint, load, save
from lean.nn.compressed import QuantizedWeight, SharedWeight, SmartExchangeWeight


def _compress_all(model, kind, basis_bits=8):
    for _, layer in model.net.named_modules():
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        w = layer.weight()
        if kind == "se":
            d = decompose_layer(w, theta=0.02)
            form = SmartExchangeWeight(w.shape, basis_bits=basis_bits).set_blocks(d.blocks)
        elif kind == "km":
            shared = cluster_rows(w, min(8, w.size // w.shape[-1]))
            form = SharedWeight(w.shape, len(shared.centres)).set_clusters(shared.centres, shared.labels)
        else:
            form = QuantizedWeight(w.shape, bits=4, per_channel=True).set_weight(w)
        layer.set_form(form)
    return model


def _densified(model):
    """A plain model whose dense weights are the compressed model's dense weights."""
    plain = build(model.name, input_shape=model.input_shape, num_classes=model.num_classes)
    for (_, a), (_, b) in zip(model.net.named_modules(), plain.net.named_modules(), strict=True):
        if isinstance(a, (Conv2d, Linear)):
            b.params["weight"][...] = a.weight()
            if "bias" in a.params:
                b.params["bias"][...] = a.params["bias"]
        else:
            for k in a.params:
                b.params[k][...] = a.params[k]
        for k in b.buffers:
            b.buffers[k][...] = a.buffers[k]
    return plain


@pytest.mark.parametrize("kind", ["se", "km", "q4"])
def test_compressed_forward_equals_densified_and_checkpoint_round_trip(kind, tmp_path):
    model = _compress_all(build("resnet8", input_shape=(8, 8, 3), num_classes=4, seed=1), kind)
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), _densified(model).forward(x), rtol=1e-5, atol=1e-5)
    save(tmp_path / "c.h5", Checkpoint(model.config(), model.state()))
    again = load(tmp_path / "c.h5").model()
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert any(k.startswith("forms/") for k in load(tmp_path / "c.h5").state)
    assert model.storage_bits() < _densified(model).storage_bits()


def test_compressed_file_is_smaller(tmp_path):
    model = build("resnet20", seed=0)
    save(tmp_path / "dense.h5", Checkpoint(model.config(), model.state()))
    _compress_all(model, "q4")
    save(tmp_path / "q.h5", Checkpoint(model.config(), model.state()))
    assert (tmp_path / "q.h5").stat().st_size < 0.3 * (tmp_path / "dense.h5").stat().st_size


@pytest.mark.parametrize("kind", ["se", "km", "q4"])
def test_form_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(2)
    layer = Conv2d(4, 6, 3, padding=1)
    layer.params["weight"][...] = rng.standard_normal(layer.params["weight"].shape) * 0.3
    _compress_all(Model(layer, (5, 5, 4), 6), kind, basis_bits=16)
    x = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    y = layer.forward(x, train=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    layer.backward(g)
    form = layer.form
    name = {"se": "basis", "km": "centres", "q4": "latent"}[kind]
    p = form.params[name]
    for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(5)]:
        old = p[idx]
        eps = 1e-2 if kind != "q4" else 0.0
        if kind == "q4":
            continue  # straight-through: checked below instead
        p[idx] = old + eps
        up = float((layer.forward(x) * g).sum())
        p[idx] = old - eps
        down = float((layer.forward(x) * g).sum())
        p[idx] = old
        np.testing.assert_allclose(form.grads[name][idx], (up - down) / (2 * eps), rtol=2e-2, atol=2e-2)
    if kind == "q4":
        # straight-through: the latent gradient is the gradient of the dense weight
        dense_layer = Conv2d(4, 6, 3, padding=1)
        dense_layer.params["weight"][...] = form.dense()
        dense_layer.forward(x, train=True)
        dense_layer.backward(g)
        np.testing.assert_allclose(form.grads["latent"], dense_layer.grads["weight"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme,bits,per_channel", [("symmetric", 8, False), ("asymmetric", 8, True),
                                                      ("asymmetric", 4, False), ("pow2", 5, True), ("pow2", 3, False),
                                                      ("symmetric", 3, True)])
def test_quantized_weight_schemes_round_trip_and_grid(scheme, bits, per_channel, tmp_path):
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((6, 4, 3, 3)) * 0.1).astype(np.float32)
    form = QuantizedWeight(w.shape, bits, per_channel, scheme).set_weight(w)
    dense = form.dense()
    if scheme == "pow2":
        nz = dense[dense != 0]
        assert np.all(np.frexp(np.abs(nz))[0] == 0.5)
    else:
        levels = 2 ** bits - (1 if scheme == "symmetric" else 0)
        for row in (dense.reshape(6, -1) if per_channel else dense.reshape(1, -1)):
            assert len(np.unique(row)) <= levels
    assert np.abs(dense - w).max() < np.abs(w).max()
    again = QuantizedWeight(w.shape, bits, per_channel, scheme)
    again.load(form.export())
    np.testing.assert_allclose(again.dense(), dense, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="scheme"):
        QuantizedWeight(w.shape, 8, False, "log")


@pytest.mark.parametrize("signed,per_channel,bits", [(True, False, 8), (False, True, 8), (False, False, 4)])
def test_quantized_conv_inference_on_integer_codes_equals_fake_quantization(signed, per_channel, bits, monkeypatch):
    rng = np.random.default_rng(5)
    conv = Conv2d(12, 20, 3, stride=1, padding=1, bias=True)
    conv.params["weight"][...] = rng.standard_normal(conv.params["weight"].shape)
    conv.params["bias"][...] = rng.standard_normal(20)
    conv.set_form(QuantizedWeight(conv._weight_shape(), bits, per_channel).set_weight(conv.params["weight"]))
    conv.set_input_bits(bits)
    x = rng.standard_normal((3, 9, 10, 12)).astype(np.float32)
    if not signed:
        x = np.maximum(x, 0)  # a ReLU's output: unsigned codes, up to 2^bits - 1
    conv.forward(x, train=True)  # sets the input scale and sign
    assert conv._runs_on_integers()
    on_integers = conv.forward(x)
    monkeypatch.setattr(Conv2d, "_runs_on_integers", lambda self: False)
    fake_quantized = conv.forward(x)
    np.testing.assert_allclose(on_integers, fake_quantized, rtol=1e-5, atol=1e-5 * np.abs(fake_quantized).max())
