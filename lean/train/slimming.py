"""Network slimming (Liu et al., ICCV 2017) and early-bird tickets (You et al., ICLR 2020): the training-side parts.

- ``SlimmingPenalty``: a trainer hook adding the L1 subgradient ``s * sign(gamma)`` to every batch-norm scale
  before each update (authors' s = 1e-4).
- ``channel_masks``: pool |gamma| over all batch-norm layers, threshold at the ``ratio`` quantile (one global
  threshold, not one per layer), keep the channels above it.
- ``mask_distance``: the fraction of mask bits that differ (normalized Hamming distance) between two draws.
- ``EarlyBird``: a trainer hook that draws masks every epoch, keeps the last ``window`` in a FIFO, and reports the
  ticket when every distance to the newest is at most ``epsilon`` (authors: window 5, epsilon 0.1).

Physical pruning (building the narrower network) and the re-training schedule are not here yet.
"""

from collections import deque

import numpy as np

from ..nn import BatchNorm


def _batchnorms(model):
    return [(name, m) for name, m in model.net.named_modules() if isinstance(m, BatchNorm)]


class SlimmingPenalty:
    def __init__(self, model, strength=1e-4):
        if strength < 0:
            raise ValueError(f"slimming strength must be >= 0; got {strength}")
        self.layers = [m for _, m in _batchnorms(model)]
        self.strength = float(strength)

    def before_update(self, trainer):
        for bn in self.layers:
            bn.grads["weight"] += self.strength * np.sign(bn.params["weight"])


def channel_masks(model, ratio):
    """Boolean keep-masks per batch-norm layer (by name) pruning the global ``ratio`` of smallest |gamma|."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio must be in [0, 1); got {ratio}")
    layers = _batchnorms(model)
    if not layers:
        raise ValueError(f"model {model.name} has no batch-norm layers to slim")
    scales = np.concatenate([np.abs(m.params["weight"]) for _, m in layers])
    threshold = np.quantile(scales, ratio) if ratio > 0 else -np.inf
    return {name: np.abs(m.params["weight"]) > threshold for name, m in layers}


def flatten_masks(masks):
    return np.concatenate([masks[k] for k in sorted(masks)])


def mask_distance(a, b):
    """Normalized Hamming distance between two mask sets (dicts of boolean arrays, or flat arrays)."""
    fa = flatten_masks(a) if isinstance(a, dict) else np.asarray(a, bool)
    fb = flatten_masks(b) if isinstance(b, dict) else np.asarray(b, bool)
    if fa.shape != fb.shape:
        raise ValueError(f"masks differ in size: {fa.shape} and {fb.shape}")
    return float(np.mean(fa != fb)) if fa.size else 0.0


class EarlyBird:
    """Detects the early-bird ticket from masks drawn at the end of each epoch."""

    def __init__(self, ratio=0.5, window=5, epsilon=0.1):
        if window < 2:
            raise ValueError(f"the early-bird window must be >= 2; got {window}")
        self.ratio, self.window, self.epsilon = float(ratio), int(window), float(epsilon)
        self.fifo = deque(maxlen=self.window)
        self.distances = []  # per epoch: the largest distance to the newest mask in the FIFO
        self.ticket_epoch = None

    def observe(self, masks, epoch):
        """Add the masks drawn at ``epoch``; returns True when the ticket has emerged (first time sets it)."""
        self.fifo.append(flatten_masks(masks) if isinstance(masks, dict) else np.asarray(masks, bool))
        newest = self.fifo[-1]
        worst = max((mask_distance(old, newest) for old in list(self.fifo)[:-1]), default=1.0)
        self.distances.append(worst)
        if self.ticket_epoch is None and len(self.fifo) == self.window and worst <= self.epsilon:
            self.ticket_epoch = epoch
        return self.ticket_epoch is not None


# --------------------------------------------------------------------------------- physical pruning

def prune_plain(model, masks):
    """A narrower copy of a plain conv -> BN stack (VGG-style ``Sequential``) keeping the masked channels.

    Each conv's output channels and its BN follow that BN's mask; the next conv's (or the classifier's) input
    channels follow the same mask; weights are copied. Residual nets need channel selection where the residual
    add forbids removal and are not handled here yet (ValueError).
    """
    from ..nn import Conv2d, GlobalAvgPool, Linear, MaxPool2d, Model, ReLU, Sequential
    from ..nn.module import module_from_config, module_to_config

    net = model.net
    if not isinstance(net, Sequential) or any(m.children() for _, m in net.layers):
        raise ValueError(f"{model.name}: physical pruning handles plain layer stacks (VGG-style) only so far")
    new_layers = []
    keep_in = None  # indices of the channels the next layer receives
    pending_conv = None
    for name, layer in net.layers:
        if isinstance(layer, Conv2d):
            if layer.groups != 1 or layer.form is not None:
                raise ValueError(f"{name}: grouped or compressed convs cannot be pruned")
            pending_conv = (name, layer)
            new_layers.append((name, None))  # filled in when its batch norm (and so its mask) is reached
            continue
        if isinstance(layer, BatchNorm):
            if pending_conv is None:
                raise ValueError(f"{name}: a batch norm without a conv before it")
            conv_name, conv = pending_conv
            keep = np.flatnonzero(masks[name]) if name in masks else np.arange(layer.num_features)
            if keep.size == 0:
                keep = np.array([int(np.argmax(np.abs(layer.params["weight"])))])  # never cut a layer to nothing
            w = conv.params["weight"]
            w = w if keep_in is None else w[:, keep_in]
            conv_clone = Conv2d(len(keep_in) if keep_in is not None else conv.in_channels, len(keep),
                                conv.kernel_size, conv.stride, conv.padding, 1, "bias" in conv.params)
            conv_clone.params["weight"][...] = w[keep]
            if "bias" in conv.params:
                conv_clone.params["bias"][...] = conv.params["bias"][keep]
            new_layers[-1] = (conv_name, conv_clone)
            bn = BatchNorm(len(keep), layer.eps, layer.momentum, layer.relu)
            for key in ("weight", "bias"):
                bn.params[key][...] = layer.params[key][keep]
            for key in ("running_mean", "running_var"):
                bn.buffers[key][...] = layer.buffers[key][keep]
            new_layers.append((name, bn))
            keep_in, pending_conv = keep, None
            continue
        if isinstance(layer, Linear) and keep_in is not None:
            lin = Linear(len(keep_in), layer.out_features, "bias" in layer.params)
            lin.params["weight"][...] = layer.params["weight"][:, keep_in]
            if "bias" in layer.params:
                lin.params["bias"][...] = layer.params["bias"]
            new_layers.append((name, lin))
            keep_in = None
            continue
        if not isinstance(layer, (MaxPool2d, GlobalAvgPool, ReLU)):
            raise ValueError(f"{name}: {type(layer).__name__} is not supported by plain pruning")
        new_layers.append((name, module_from_config(module_to_config(layer))))
    if pending_conv is not None:
        raise ValueError(f"{pending_conv[0]}: a conv without a batch norm after it cannot be slimmed")
    return Model(Sequential(new_layers), model.input_shape, model.num_classes, model.name)


def masked_copy(model, masks):
    """The same model with pruned channels silenced (BN scale and shift set to 0): what pruning must equal."""
    from ..nn import Model
    from ..nn.module import module_from_config, module_to_config

    clone = Model(module_from_config(module_to_config(model.net)), model.input_shape, model.num_classes, model.name)
    clone.load_state(model.state())
    for name, bn in _batchnorms(clone):
        if name in masks:
            off = ~masks[name]
            bn.params["weight"][off] = 0.0
            bn.params["bias"][off] = 0.0
    return clone
