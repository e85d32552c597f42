"""DenseNet for CIFAR (the DDI paper's network family): the dense layer's gradient, the paper's parameter counts,
training and a checkpoint round trip."""

import numpy as np
import pytest
from gradcheck import check_module, to_float64

from lean.errors import ConfigError
from lean.nets import build
from lean.nn import BatchNorm, Conv2d, DenseLayer, Model, Sequential


def test_dense_layer_concatenates_and_its_gradients_match_central_differences():
    layer = DenseLayer(Sequential([("bn", BatchNorm(3, relu=True)), ("conv", Conv2d(3, 2, 3, padding=1))]))
    to_float64(layer)
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 3))
    y = layer.forward(x)
    assert y.shape == (2, 5, 5, 5)
    np.testing.assert_array_equal(y[..., :3], x)  # the input's channels pass through untouched
    check_module(layer, x, rtol=1e-4, atol=1e-6)


def test_densenets_have_the_papers_parameter_counts():
    # Huang et al., CVPR 2017, Table 2: DenseNet (L=40, k=12) 1.0 M, DenseNet-BC (L=100, k=12) 0.8 M
    assert build("densenet40", num_classes=10).num_parameters() == pytest.approx(1.0e6, rel=0.03)
    assert build("densenetbc100", num_classes=10).num_parameters() == pytest.approx(0.8e6, rel=0.05)
    with pytest.raises(ConfigError, match="3n \\+ 4"):
        build("densenet41")
    with pytest.raises(ConfigError, match="6n \\+ 4"):
        build("densenetbc20")


def test_a_small_densenet_trains_and_round_trips(tmp_path):
    from lean.data import load
    from lean.train import TrainConfig, Trainer

    digits = load("digits")
    model = build("densenetbc22", input_shape=digits.input_shape, num_classes=10, seed=0, width=0.5)
    history = Trainer(model, digits, TrainConfig(net="densenetbc22", data="digits", epochs=2, batch_size=64,
                                                 lr=0.1, width=0.5), out=tmp_path / "d.h5").run()
    assert history[-1]["test_accuracy"] > 0.5 and history[-1]["train_loss"] < history[0]["train_loss"]
    clone = Model.from_config(model.config())
    clone.load_state(model.state())
    x = digits.normalize(digits.x_test[:8], digits.mean, digits.std)
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
