"""Parameter initialization: Kaiming (He et al., 2015) for conv and linear weights, BN at (1, 0)."""

import numpy as np

from .layers import BatchNorm, Conv2d, Linear
from .module import Module


def kaiming_init(module: Module, seed: int = 0) -> Module:
    """Fill every parameter of ``module`` in place from one seed.

    Conv weights: normal with std sqrt(2 / fan_out), fan_out = k * r * s / groups (as torchvision's ResNets).
    Linear: uniform +-1/sqrt(fan_in) for weight and bias (PyTorch's default). BatchNorm: gamma 1, beta 0.

    Parameters
    ----------
    module : Module
        Any module tree; its conv, linear and batch-norm layers are filled, other parameters left as they are.
    seed : int
        Seed of the one random stream, drawn in the order of ``module.modules()``.

    Returns
    -------
    Module
        ``module`` itself.

    Notes
    -----
    He et al., ICCV 2015, section 2.2: std sqrt(2 / n) keeps the variance of the gradients (n = fan-out, their
    backward-propagation case) or of the activations (n = fan-in) constant through ReLU layers.
    """
    rng = np.random.default_rng(seed)
    for layer in module.modules():
        if isinstance(layer, Conv2d):
            w = layer.params["weight"]
            k, _, r, s = w.shape
            fan_out = k * r * s // layer.groups
            w[...] = rng.normal(0.0, np.sqrt(2.0 / fan_out), w.shape)
            if "bias" in layer.params:
                layer.params["bias"][...] = 0.0
        elif isinstance(layer, Linear):
            bound = 1.0 / np.sqrt(layer.in_features)
            layer.params["weight"][...] = rng.uniform(-bound, bound, layer.params["weight"].shape)
            if "bias" in layer.params:
                layer.params["bias"][...] = rng.uniform(-bound, bound, layer.out_features)
        elif isinstance(layer, BatchNorm):
            layer.params["weight"][...] = 1.0
            layer.params["bias"][...] = 0.0
    return module
