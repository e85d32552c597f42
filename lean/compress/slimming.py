"""Network slimming (Liu et al., ICCV 2017) and early-bird tickets (You et al., ICLR 2020).

Papers: Z. Liu, J. Li, Z. Shen, G. Huang, S. Yan, C. Zhang, "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017 (its section 3 has no numbered subsections: its steps are cited by the section's
paragraph titles); H. You, C. Li, P. Xu, Y. Fu, Y. Wang, X. Chen, R. G. Baraniuk, Z. Wang, Y. Lin, "Drawing
Early-Bird Tickets: Towards More Efficient Training of Deep Networks", ICLR 2020 (section 4.3 for the
low-precision search is confirmed by the authors' README; the other section and algorithm numbers are not).

Both are training methods (``lean.train.methods``) configured by ``lean.compress.config``
(``lean train --slim S [--early-bird P[,P...] --eb-prune-ratio P --eb-window W --eb-epsilon E --eb-precision B]``).

- ``SlimmingPenalty`` (Liu et al., section 3, "Scaling Factors and Sparsity-induced Penalty": the L1 term
  g(gamma) = |gamma| of Eq. 1, optimized by subgradient descent): the subgradient ``s * sign(gamma)`` added to
  every batch-norm scale before each update (authors' s = 1e-4).
- ``channel_masks`` (Liu et al., section 3, "Channel Pruning and Fine-tuning"): pool |gamma| over the batch norms
  whose channels can be removed (``prunable_batchnorms``), threshold at the ``ratio`` quantile (one global
  threshold, not one per layer), keep the channels above it. With ``every_batchnorm`` (early-bird): the
  authors' ``EarlyBird`` masks, every batch norm pooled (also those before a residual add) and the threshold
  ``sorted[int(total * p)]``.
- ``mask_distance`` (You et al., the mask distance; section unconfirmed): the fraction of mask bits that differ
  (normalized Hamming distance) between two draws.
- ``EarlyBird`` (You et al., the search for the early-bird ticket, their Algorithm 1; number unconfirmed): masks
  drawn every epoch in a FIFO of the last ``window``; the ticket is drawn when every distance to the newest is at
  most ``epsilon`` (authors' code: window 5, epsilon 0.1, the same test).
- ``prune``: the narrower network with the kept channels' weights copied. Plain stacks (VGG) lose channels
  everywhere (``prune_plain``); in residual nets the channels that meet at a residual add stay, so a
  post-activation block loses the channels between its convs and a pre-activation block also selects the
  kept channels of its input after its first batch norm (``ChannelSelect``, ``prune_residual``; Liu et al.,
  section 3, "Handling Cross Layer Connections and Pre-activation Structure": a channel-selection layer).
- ``EarlyBirdTraining``: the early-bird method inside ``lean train``: one detector per ratio (the authors draw
  0.3, 0.5 and 0.7 in one run) during a dense search phase (the slimming penalty runs beside it; optionally in
  low precision, You et al., section 4.3, "EB Train LL"), physical pruning when the ticket of the prune ratio
  appears, then re-training of the pruned net, without the penalty, to the end of the schedule. Where lean
  departs from the authors' code (GATECH-EIC/Early-Bird-Tickets): masks are drawn at the end of each epoch
  (theirs at the start, the first from the untrained net); the pruned net keeps its weights and re-trains without
  the penalty in the same run (their ``main_c.py`` re-initializes the pruned architecture and keeps the
  penalty); batch norms start at gamma 1 unless ``--bn-init 0.5`` (theirs: 0.5); the schedule is lean's cosine
  (theirs: lr 0.1 divided by 10 at 50% and 75%, ``--schedule multistep``). What decides when the ticket appears
  (issue 14, ``benchmarks/early_bird_masks.py``, VGG-11 at half width on 10,000 Fashion-MNIST images, three
  seeds): the weight decay. With lean's general 5e-4 the masks at ratio 0.5 drifted apart through the first 16
  epochs (largest distance in the window rising to 0.17) and the ticket waited for the learning rate to fall
  (epoch 28 of 48 on seed 1); with the authors' 1e-4 the distance fell below 0.1 at epoch 10 on every seed.
  (With batch norm after every conv, weight decay sets how fast the weights' directions move at a given
  learning rate, so a larger one keeps reshuffling which channels sit near the threshold.) So ``--slim``
  runs take the authors' weight decay 1e-4 unless one is given (``SlimmingConfig.recipe``). Their step schedule
  with their gamma start 0.5 kept the distance at 0.12-0.15 through epoch 16 (no ticket on two seeds): lean
  keeps cosine and gamma 1.
- ``prune_checkpoint``: ``lean prune``, network slimming's one-shot pruning of a trained checkpoint (Liu et al.,
  section 3, "Channel Pruning and Fine-tuning"; the fine-tuning is a resumed ``lean train``). The early-bird
  authors' baseline to compare with (their ``scripts/standard-train/retrain_scratch.sh``) trains 160 epochs,
  prunes, and re-trains the pruned net for the whole 160 epochs again; ``benchmarks/early_bird.py`` re-trains
  for its whole schedule too, so the energy compared is of the same length. Their ``main_scratch.py`` starts the
  pruned architecture from new weights, where ``lean prune`` + ``--resume`` fine-tunes the kept weights (network
  slimming's fine-tuning), so the baseline's accuracy is not theirs to the letter.
"""

from collections import deque
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..hw.workload import from_model
from ..nn import BatchNorm, ChannelSelect, Conv2d, GlobalAvgPool, Linear, MaxPool2d, Model, ReLU, Residual, Sequential
from ..nn.checkpoint import Checkpoint, claim_output
from ..nn.checkpoint import load as load_checkpoint
from ..nn.checkpoint import save as save_checkpoint
from ..nn.module import module_from_config, module_to_config
from ..train.config import TrainConfig
from ..train.e2train import LowPrecisionTraining
from ..train.methods import TrainingMethod
from ..train.run import CheckpointData
from . import config as _configs  # noqa: F401  (the slim and early_bird configs a checkpoint's settings name)


def _batchnorms(model):
    return [(name, m) for name, m in model.net.named_modules() if isinstance(m, BatchNorm)]


class SlimmingPenalty(TrainingMethod):
    """The L1 subgradient on batch-norm scales, added before every update while ``active`` (early-bird turns it
    off once it has pruned the net).

    Parameters
    ----------
    model : Model or None
        The model whose batch norms are penalized; None to attach later with ``install``.
    strength : float
        s (lambda of Eq. 1), >= 0 (authors: 1e-4).

    Notes
    -----
    Liu et al., ICCV 2017, section 3, "Scaling Factors and Sparsity-induced Penalty", Eq. 1 with
    g(gamma) = |gamma|: its subgradient ``strength * sign(gamma)`` is added to each batch norm's scale gradient.
    """

    name = "slim"

    def __init__(self, model: Model | None = None, strength: float = 1e-4):
        if strength < 0:
            raise ConfigError(f"slimming strength must be >= 0; got {strength}")
        self.strength = float(strength)
        self.active = True
        self.layers = []
        if model is not None:
            self.install(model)

    def install(self, model: Model) -> None:
        """Penalize ``model``'s batch norms (a trainer calls this again when it swaps the model)."""
        self.layers = [m for _, m in _batchnorms(model)]
        if not self.layers:
            raise ConfigError(f"--slim penalizes batch-norm scales; {model.name} has no batch norm")

    def before_update(self, trainer):
        if not self.active:
            return
        for bn in self.layers:  # Liu et al., Eq. 1: subgradient of strength * |gamma|
            bn.grads["weight"] += self.strength * np.sign(bn.params["weight"])

    def state(self):
        return {"active": self.active}

    def load_state(self, state):
        self.active = bool(state.get("active", True))


def prunable_batchnorms(model: Model) -> list[str]:
    """Names of the batch norms whose channels ``prune`` can remove (or select), in network order.

    Plain stacks: every batch norm that follows a conv. Residual blocks: a batch norm between two convs of a
    block body, and a pre-activation block's first batch norm (via channel selection); not the one whose
    output meets the shortcut at the add, nor those outside blocks.

    Parameters
    ----------
    model : Model
        A plain stack or a residual net.

    Returns
    -------
    list of str
        Batch-norm names as ``model.net.named_modules()`` gives them.
    """
    names = []
    if isinstance(model.net, Sequential) and not any(isinstance(m, Residual) for m in model.net.modules()):
        return [name for name, _ in _batchnorms(model)]
    for prefix, module in model.net.named_modules():
        if not isinstance(module, Residual) or not isinstance(module.body, Sequential):
            continue
        layers = module.body.layers
        for i, (name, layer) in enumerate(layers):
            if not isinstance(layer, BatchNorm):
                continue
            later_conv = any(isinstance(m, Conv2d) for _, m in layers[i + 1:])
            after_conv = i > 0 and isinstance(layers[i - 1][1], Conv2d) and layers[i - 1][1].groups == 1
            if later_conv and (after_conv or i == 0):
                names.append(f"{prefix}.body.{name}")
    return names


def channel_masks(model: Model, ratio: float, every_batchnorm: bool = False,
                  protect: float = 0.0) -> dict[str, np.ndarray]:
    """Boolean keep-masks per prunable batch-norm layer (by name), pruning the global ``ratio`` of smallest
    |gamma| among them.

    Parameters
    ----------
    model : Model
        The model whose batch-norm scales are read.
    ratio : float
        In [0, 1): the fraction of the pooled channels to prune (0 keeps all).

    every_batchnorm : bool
        Pool every batch norm, also those whose channels cannot be removed (before a residual add), and take the
        threshold as ``sorted(scales)[int(total * ratio)]``: the early-bird authors' masks (their ``EarlyBird``
        class). ``prune`` uses only the prunable layers' masks; the others take part in the distances.
    protect : float
        In [0, 1): each layer of c channels keeps those strictly above its own ``sorted(|gamma|)[int(c * (1 -
        protect))]`` whatever the global threshold (about ``protect * c - 1`` channels: none in a layer of 10 or
        fewer at 0.1), and that threshold is taken over the other channels only, at the same index
        ``int(total * ratio)``: the early-bird authors' protective pruning (their ``vggprune_lp_protective.py``, 0.1,
        the same index and strict comparison), so an early ticket cannot cut a wide layer to a few channels.

    Returns
    -------
    dict of str to np.ndarray
        Batch-norm name -> bool (c,) keep mask, c that batch norm's channels, for every name of
        ``prunable_batchnorms(model)`` (every batch norm with ``every_batchnorm``). A layer's mask may be all
        False (``prune`` then keeps its strongest channel).

    Raises
    ------
    ConfigError
        ``ratio`` outside [0, 1), or no prunable batch norm.

    Notes
    -----
    Liu et al., ICCV 2017, section 3, "Channel Pruning and Fine-tuning": one threshold for all layers, a
    percentile of all the scaling factors (the authors' code likewise keeps |gamma| > threshold).
    """
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"prune ratio must be in [0, 1); got {ratio}")
    if not 0.0 <= protect < 1.0:
        raise ConfigError(f"the protected share of each layer must be in [0, 1); got {protect}")
    wanted = set(prunable_batchnorms(model))
    if not wanted:
        raise ConfigError(f"model {model.name} has no batch-norm channels that can be pruned")
    gammas = {name: np.abs(m.params["weight"]) for name, m in _batchnorms(model) if every_batchnorm or name in wanted}
    scales = np.concatenate(list(gammas.values()))
    if protect > 0:  # the early-bird authors' protective rule: each layer's top share is kept
        kept = {name: g > np.sort(g)[int(g.size * (1 - protect))] for name, g in gammas.items()}
        rest = np.sort(np.concatenate([g[~kept[name]] for name, g in gammas.items()]))
        threshold = rest[min(int(len(scales) * ratio), rest.size - 1)] if ratio > 0 and rest.size else -np.inf
        return {name: kept[name] | (g > threshold) for name, g in gammas.items()}
    if every_batchnorm:  # the early-bird authors' rule: every batch norm pooled, threshold sorted[int(total * p)]
        threshold = np.sort(scales)[int(len(scales) * ratio)] if ratio > 0 else -np.inf
    else:  # one global threshold over all prunable layers (Liu et al., "Channel Pruning and Fine-tuning")
        threshold = np.quantile(scales, ratio) if ratio > 0 else -np.inf
    return {name: g > threshold for name, g in gammas.items()}


def flatten_masks(masks: dict[str, np.ndarray]) -> np.ndarray:
    """The masks of ``channel_masks`` as one flat bool array, layers in sorted name order."""
    return np.concatenate([masks[k] for k in sorted(masks)])


def mask_distance(a: dict[str, np.ndarray] | np.ndarray, b: dict[str, np.ndarray] | np.ndarray) -> float:
    """Normalized Hamming distance between two mask sets (dicts of boolean arrays, or flat arrays).

    Parameters
    ----------
    a, b : dict of str to np.ndarray, or np.ndarray
        Masks as ``channel_masks`` returns them (name -> bool (c,)), or flat bool arrays (``flatten_masks``).

    Returns
    -------
    float
        The fraction of mask bits that differ, in [0, 1] (0 for empty masks).

    Raises
    ------
    ValueError
        The two hold different numbers of bits.

    Notes
    -----
    You et al., ICLR 2020, the mask distance between two tickets (section unconfirmed).
    """
    fa = flatten_masks(a) if isinstance(a, dict) else np.asarray(a, bool)
    fb = flatten_masks(b) if isinstance(b, dict) else np.asarray(b, bool)
    if fa.shape != fb.shape:
        raise ValueError(f"masks differ in size: {fa.shape} and {fb.shape}")
    return float(np.mean(fa != fb)) if fa.size else 0.0


class EarlyBird:
    """Detects the early-bird ticket from masks drawn at the end of each epoch.

    Parameters
    ----------
    ratio : float
        The prune ratio the masks are drawn at (kept for the caller; ``observe`` takes the masks).
    window : int
        FIFO length in epochs, >= 2 (authors: 5).
    epsilon : float
        Mask-distance bound (authors: 0.1).

    Notes
    -----
    You et al., ICLR 2020, the search for the early-bird ticket (their Algorithm 1; number unconfirmed), as the
    authors' code runs it: the last ``window`` masks in a FIFO, the ticket drawn once all ``window - 1``
    distances from the older masks to the newest are at most ``epsilon``.
    """

    def __init__(self, ratio: float = 0.5, window: int = 5, epsilon: float = 0.1):
        if window < 2:
            raise ConfigError(f"the early-bird window must be >= 2; got {window}")
        self.ratio, self.window, self.epsilon = float(ratio), int(window), float(epsilon)
        self.fifo = deque(maxlen=self.window)
        self.distances = []  # per epoch: the largest distance to the newest mask in the FIFO
        self.epochs = []  # the epoch each distance was drawn at
        self.ticket_epoch = None

    def observe(self, masks: dict[str, np.ndarray] | np.ndarray, epoch: int) -> bool:
        """Add the masks drawn at ``epoch``; returns True when the ticket has emerged (first time sets it).

        Parameters
        ----------
        masks : dict of str to np.ndarray, or np.ndarray
            This epoch's masks (``channel_masks``) or their flat form.
        epoch : int
            The epoch they were drawn at, recorded as ``ticket_epoch`` when the ticket emerges.

        Returns
        -------
        bool
            True from the epoch the ticket emerged on.
        """
        self.fifo.append(flatten_masks(masks) if isinstance(masks, dict) else np.asarray(masks, bool))
        newest = self.fifo[-1]
        worst = max((mask_distance(old, newest) for old in list(self.fifo)[:-1]), default=1.0)
        self.distances.append(worst)
        self.epochs.append(int(epoch))
        if self.ticket_epoch is None and len(self.fifo) == self.window and worst <= self.epsilon:
            self.ticket_epoch = epoch
        return self.ticket_epoch is not None

    def closest(self) -> tuple[float, int] | None:
        """The smallest of the distances tested against ``epsilon`` (those with a full FIFO) and the epoch it was
        drawn at, or None before the FIFO first filled: how near masks that never settled came."""
        tested = [(d, e) for i, (d, e) in enumerate(zip(self.distances, self.epochs, strict=True))
                  if i >= self.window - 1]
        return min(tested) if tested else None


# --------------------------------------------------------------------------------- physical pruning

def _narrow_conv(conv, keep_in=None, keep_out=None):
    if conv.groups != 1 or conv.form is not None or conv.input_bits is not None:
        raise ConfigError("grouped, compressed or quantized convs cannot be pruned")
    w = conv.params["weight"]
    keep_in = np.arange(conv.in_channels) if keep_in is None else keep_in
    keep_out = np.arange(conv.out_channels) if keep_out is None else keep_out
    clone = Conv2d(len(keep_in), len(keep_out), conv.kernel_size, conv.stride, conv.padding, 1,
                   "bias" in conv.params)
    clone.params["weight"][...] = w[keep_out][:, keep_in]
    if "bias" in conv.params:
        clone.params["bias"][...] = conv.params["bias"][keep_out]
    clone.input_grad = conv.input_grad
    return clone


def _narrow_batchnorm(bn, keep):
    narrow = BatchNorm(len(keep), bn.eps, bn.momentum, bn.relu)
    for key in ("weight", "bias"):
        narrow.params[key][...] = bn.params[key][keep]
    for key in ("running_mean", "running_var"):
        narrow.buffers[key][...] = bn.buffers[key][keep]
    return narrow


def _kept(mask, bn):
    keep = np.flatnonzero(mask)
    if keep.size == 0:  # never cut a layer to nothing: keep its strongest channel
        keep = np.array([int(np.argmax(np.abs(bn.params["weight"])))])
    return keep


def prune_plain(model: Model, masks: dict[str, np.ndarray]) -> Model:
    """A narrower copy of a plain conv -> BN stack (VGG-style ``Sequential``) keeping the masked channels.

    Each conv's output channels and its BN follow that BN's mask; the next conv's (or the classifier's) input
    channels follow the same mask; weights are copied.

    Parameters
    ----------
    model : Model
        A plain ``Sequential`` of convs, batch norms, ReLU, max-pool, global average pool and linear layers.
    masks : dict of str to np.ndarray
        Batch-norm name -> bool (c,) keep mask (``channel_masks``); batch norms not named keep every channel.

    Returns
    -------
    Model
        A new model: each conv weight (k', c', r, s) with the kept channels, each batch norm (k',), the first
        linear weight (n_out, c'); ``model`` is unchanged.

    Raises
    ------
    ConfigError
        ``model`` is not a plain stack, holds an unsupported, grouped, compressed or quantized layer, or has a
        conv without a batch norm after it.
    """
    net = model.net
    if not isinstance(net, Sequential) or any(m.children() for _, m in net.layers):
        raise ConfigError(f"{model.name}: physical pruning handles plain layer stacks (VGG-style) only so far")
    new_layers = []
    keep_in = None  # indices of the channels the next layer receives
    pending_conv = None
    for name, layer in net.layers:
        if isinstance(layer, Conv2d):
            pending_conv = (name, layer)
            new_layers.append((name, None))  # filled in when its batch norm (and so its mask) is reached
            continue
        if isinstance(layer, BatchNorm):
            if pending_conv is None:
                raise ConfigError(f"{name}: a batch norm without a conv before it")
            keep = _kept(masks[name], layer) if name in masks else np.arange(layer.num_features)
            new_layers[-1] = (pending_conv[0], _narrow_conv(pending_conv[1], keep_in, keep))
            new_layers.append((name, _narrow_batchnorm(layer, keep)))
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
            raise ConfigError(f"{name}: {type(layer).__name__} is not supported by plain pruning")
        new_layers.append((name, module_from_config(module_to_config(layer))))
    if pending_conv is not None:
        raise ConfigError(f"{pending_conv[0]}: a conv without a batch norm after it cannot be slimmed")
    return Model(Sequential(new_layers), model.input_shape, model.num_classes, model.name)


def prune_residual(model: Model, masks: dict[str, np.ndarray]) -> Model:
    """A narrower copy of a residual net (ResNet or PreResNet) keeping the masked channels of block bodies.

    For a batch norm between two convs of a body, the first conv's output channels, the batch norm and the
    second conv's input channels shrink together. For a pre-activation body's first batch norm (which normalizes
    the block input, shared with the shortcut) a ``ChannelSelect`` after it feeds the next conv only the kept
    channels (Liu et al., section 3, "Handling Cross Layer Connections and Pre-activation Structure"). Everything
    that meets at a residual add keeps its width.

    Parameters
    ----------
    model : Model
        A net with ``Residual`` blocks whose bodies are ``Sequential``.
    masks : dict of str to np.ndarray
        Names from ``prunable_batchnorms(model)`` -> bool (c,) keep masks.

    Returns
    -------
    Model
        A new, narrower model; ``model`` is unchanged.

    Raises
    ------
    ConfigError
        A mask names a batch norm that cannot be pruned, or a conv to narrow is grouped, compressed or quantized.
    """
    pruned = model.copy()
    wanted = set(prunable_batchnorms(pruned))
    unknown = sorted(set(masks) - wanted)
    if unknown:
        raise ConfigError(f"cannot prune these batch norms (not between two convs of a block): {unknown[:3]}")
    for prefix, module in pruned.net.named_modules():
        if not isinstance(module, Residual) or not isinstance(module.body, Sequential):
            continue
        layers = list(module.body.layers)
        i = -1
        while i + 1 < len(layers):
            i += 1
            name, layer = layers[i]
            full = f"{prefix}.body.{name}"
            if not isinstance(layer, BatchNorm) or full not in masks:
                continue
            keep = _kept(masks[full], layer)
            j = next(j for j in range(i + 1, len(layers)) if isinstance(layers[j][1], Conv2d))
            next_name, next_conv = layers[j]
            if i > 0 and isinstance(layers[i - 1][1], Conv2d):
                prev_name, prev_conv = layers[i - 1]
                layers[i - 1] = (prev_name, _narrow_conv(prev_conv, None, keep))
                layers[i] = (name, _narrow_batchnorm(layer, keep))
                layers[j] = (next_name, _narrow_conv(next_conv, keep, None))
            else:  # pre-activation: the input is shared with the shortcut, so select channels (Liu et al.)
                layers[j] = (next_name, _narrow_conv(next_conv, keep, None))
                layers.insert(i + 1, (f"{name}_select", ChannelSelect(keep, layer.num_features)))
        module.body.layers = layers
    return Model(pruned.net, model.input_shape, model.num_classes, model.name)


def prune(model: Model, masks: dict[str, np.ndarray]) -> Model:
    """The narrower network for ``masks`` (from ``channel_masks``): plain stacks or residual nets.

    Parameters
    ----------
    model : Model
        The model to prune (unchanged).
    masks : dict of str to np.ndarray
        Batch-norm name -> bool (c,) keep mask.

    Returns
    -------
    Model
        ``prune_residual`` if ``model`` has residual blocks, else ``prune_plain``.
    """
    if any(isinstance(m, Residual) for m in model.net.modules()):
        return prune_residual(model, masks)
    return prune_plain(model, masks)


def network_size(model: Model) -> tuple[int, int]:
    """(parameters, forward MACs per image) of a model, counted on its real layer shapes."""
    return model.num_parameters(), from_model(model).macs


def masked_copy(model: Model, masks: dict[str, np.ndarray]) -> Model:
    """The same model with pruned channels silenced (BN scale and shift set to 0): what pruning must equal.

    Parameters
    ----------
    model : Model
        The model (unchanged).
    masks : dict of str to np.ndarray
        Batch-norm name -> bool (c,) keep mask.

    Returns
    -------
    Model
        A copy of ``model`` at full width.
    """
    clone = model.copy()
    for name, bn in _batchnorms(clone):
        if name in masks:
            off = ~masks[name]
            bn.params["weight"][off] = 0.0
            bn.params["bias"][off] = 0.0
    return clone


# --------------------------------------------------------------------------------- the early-bird run

def _mask_bits(flat):
    return "".join("1" if v else "0" for v in flat)


class EarlyBirdTraining(TrainingMethod):
    """The early-bird method (``lean train --slim S --early-bird 0.3,0.5,0.7 [--eb-prune-ratio 0.5]``), beside
    the slimming penalty it needs.

    Search phase: the run's ``SlimmingPenalty`` on every batch-norm scale, optionally ``precision``-bit training
    (``lean.train.e2train.LowPrecisionTraining``; You et al., section 4.3, the low-precision search: the authors
    used SWALP, lean a per-tensor fixed-point grid). At the end of each epoch one detector per ratio draws its
    masks as the authors' code does (every batch norm pooled, one global threshold ``sorted[int(total * p)]``,
    ``channel_masks(every_batchnorm=True)``) and logs its largest distance to the newest mask. When the ticket of
    ``prune_ratio`` appears the network is pruned physically (``prune``; the batch norms before a residual add take
    part in the masks and keep their channels), the penalty is switched off, and the trainer continues with the
    narrower model, in full precision, to the end of the schedule (the re-training of the ticket). The other
    ratios' detectors stop there; their ticket epochs (if they came first) are reported.

    Parameters
    ----------
    ratios : sequence of float
        Each in [0, 1): the prune ratios to draw tickets for (authors: 0.3, 0.5, 0.7).
    window, epsilon
        As for ``EarlyBird``.
    precision : int or None
        Bits of the search phase's operands (e.g. 8), or None for float32.
    prune_ratio : float or None
        The ratio whose ticket the run prunes at; one of ``ratios`` (None: 0.5 if listed, else the first).
    every_batchnorm : bool
        The authors' masks (every batch norm pooled, ``channel_masks(every_batchnorm=True)``); False: only the
        prunable batch norms, lean's earlier rule, which runs stored before the option resume with.
    protect : float
        The share of each layer's strongest channels the pruning keeps whatever the global threshold
        (``channel_masks(protect=...)``, the authors' ``vggprune_lp_protective.py``: 0.1); 0 prunes with the
        detector's own masks. The detection is the same either way.
    """

    name = "early_bird"

    def __init__(self, ratios=(0.5,), window: int = 5, epsilon: float = 0.1, precision: int | None = None,
                 prune_ratio: float | None = None, every_batchnorm: bool = True, protect: float = 0.0):
        ratios = (float(ratios),) if isinstance(ratios, (int, float)) else tuple(float(r) for r in ratios)
        if not ratios or any(not 0.0 <= r < 1.0 for r in ratios):
            raise ConfigError(f"early-bird prune ratios must be in [0, 1); got {', '.join(map(str, ratios))}")
        if prune_ratio is None:
            prune_ratio = 0.5 if 0.5 in ratios else ratios[0]
        if float(prune_ratio) not in ratios:
            raise ConfigError(f"--eb-prune-ratio {prune_ratio} is not one of the ratios drawn "
                              f"({', '.join(f'{r:g}' for r in ratios)})")
        self.detectors = {r: EarlyBird(r, window, epsilon) for r in ratios}
        self.every_batchnorm = bool(every_batchnorm)
        if not 0.0 <= protect < 1.0:
            raise ConfigError(f"--eb-protect must be in [0, 1); got {protect}")
        self.protect = float(protect)
        self.prune_ratio = float(prune_ratio)
        self.detector = self.detectors[self.prune_ratio]
        self.precision = None if precision is None else int(precision)
        self.low_precision = LowPrecisionTraining(self.precision) if self.precision is not None else None
        self.pruned = False
        self.sizes = {}
        self.model = None

    def install(self, model):
        if not self.pruned and not prunable_batchnorms(model):  # found before the first step, not after an epoch
            raise ConfigError(f"--early-bird prunes channels after batch norms; {model.name} has none it can prune")
        self.model = model
        if self.low_precision is not None:
            self.low_precision.uninstall()
            if not self.pruned:
                self.low_precision.install(model)

    def uninstall(self):
        if self.low_precision is not None:
            self.low_precision.uninstall()

    def on_batch(self, trainer, seed):
        if self.low_precision is not None and not self.pruned:
            self.low_precision.on_batch(trainer, seed)

    def on_epoch_end(self, trainer):
        if self.pruned:
            return
        # You et al.: draw this epoch's masks for every ratio and test each FIFO's distances (the search)
        masks = {}
        for ratio, detector in self.detectors.items():
            masks[ratio] = channel_masks(self.model, ratio, every_batchnorm=self.every_batchnorm)
            detector.observe(masks[ratio], trainer.epoch)
        trainer.history[-1]["mask_distance"] = self.detector.distances[-1]
        if len(self.detectors) > 1:
            trainer.history[-1]["mask_distances_by_ratio"] = {repr(r): d.distances[-1]
                                                              for r, d in self.detectors.items()}
        if self.detector.ticket_epoch is None:
            return
        prunable = set(prunable_batchnorms(self.model))
        # the ticket's channels: the detector's masks, or with ``protect`` the authors' protective rule over the
        # same scales (each layer's top share kept, so no layer is cut to a few channels this early)
        drawn = (channel_masks(self.model, self.prune_ratio, every_batchnorm=self.every_batchnorm,
                               protect=self.protect) if self.protect > 0 else masks[self.prune_ratio])
        keep = {name: m for name, m in drawn.items() if name in prunable}
        params_before, macs_before = network_size(self.model)
        narrower = prune(self.model, keep)
        params_after, macs_after = network_size(narrower)
        self.sizes = {"params_before": params_before, "params_after": params_after,
                      "macs_before": macs_before, "macs_after": macs_after}
        self.pruned = True
        trainer.history[-1]["early_bird"] = True
        penalty = trainer.method("slim")
        if penalty is not None:
            penalty.active = False  # the pruned net re-trains without the penalty
        trainer.replace_model(narrower)

    def summary(self):
        out = {"early_bird_epoch": self.detector.ticket_epoch, "mask_distances": list(self.detector.distances),
               "early_bird_prune_ratio": self.prune_ratio, "early_bird_epsilon": self.detector.epsilon, **self.sizes}
        closest = self.detector.closest()
        if self.detector.ticket_epoch is None and closest is not None:  # the masks never settled: how near they came
            out["early_bird_closest"] = {"distance": closest[0], "epoch": closest[1]}
        if len(self.detectors) > 1:
            out["early_bird_tickets"] = {repr(r): {"epoch": d.ticket_epoch, "mask_distances": list(d.distances)}
                                         for r, d in self.detectors.items()}
        return out

    # -- resume
    def state(self):
        return {"pruned": self.pruned, "sizes": self.sizes,
                "detectors": {repr(r): {"fifo": [_mask_bits(m) for m in d.fifo], "distances": d.distances,
                                         "epochs": d.epochs, "ticket_epoch": d.ticket_epoch}
                              for r, d in self.detectors.items()}}

    def load_state(self, state):
        # a run from before several ratios kept its one detector's fifo, distances and ticket at the top level
        stored = state.get("detectors") or {repr(self.prune_ratio): state}
        for ratio, detector in self.detectors.items():
            part = stored.get(repr(ratio), {})
            detector.fifo.clear()
            for bits in part.get("fifo", []):
                detector.fifo.append(np.frombuffer(bits.encode(), np.uint8) == ord("1"))
            detector.distances = list(part.get("distances", []))
            # runs stored before the epochs were kept drew one mask per epoch from the first
            detector.epochs = list(part.get("epochs", range(1, len(detector.distances) + 1)))
            detector.ticket_epoch = part.get("ticket_epoch")
        self.pruned = bool(state.get("pruned", False))
        self.sizes = dict(state.get("sizes", {}))


# --------------------------------------------------------------------------------- lean prune

def prune_checkpoint(checkpoint: str | Path, ratio: float, out: str | Path, *, data: str | None = None,
                     force: bool = False) -> dict:
    """Network slimming's one-shot pruning (``lean prune``): remove the ``ratio`` of channels with the smallest
    batch-norm scales from a trained checkpoint and write the narrower net to ``out``.

    The result resumes as a fine-tuning run (``lean train --resume OUT --epochs N``), without the slimming
    penalty. Returns ``checkpoint, out, ratio, params_before, params_after, macs_before, macs_after,
    accuracy_before, accuracy_after`` (test accuracy before fine-tuning).

    Parameters
    ----------
    checkpoint : str or Path
        A dense (uncompressed) checkpoint.
    ratio : float
        In [0, 1): the fraction of prunable channels to remove (``channel_masks``).
    out : str or Path
        Where the pruned checkpoint goes.
    data : str or None
        The dataset to test on, if not the checkpoint's own.
    force : bool
        Overwrite an existing ``out``.

    Returns
    -------
    dict
        The keys above; accuracies are fractions in [0, 1], MACs per image.

    Raises
    ------
    ConfigError
        A compressed checkpoint, a ``ratio`` outside [0, 1), a net that cannot be pruned, or no dataset known.
    OutputError
        ``out`` exists (without ``force``), cannot be written or is held by another run.
    """
    with claim_output(out, overwrite=force):
        ckpt = load_checkpoint(checkpoint)
        if ckpt.compressed:
            raise ConfigError(f"{checkpoint} is compressed ({ckpt.compressed}); prune the dense checkpoint")
        model = ckpt.model()
        pruned = prune(model, channel_masks(model, ratio))
        test = CheckpointData(ckpt, checkpoint, data, model)

        config = TrainConfig.from_dict(ckpt.training, ckpt.format_version).without("slim", "early_bird")
        training = {**config.to_dict(), "pruned_from": {"checkpoint": str(checkpoint), "ratio": ratio},
                    **{k: ckpt.training[k] for k in ("data_sha256",) if k in ckpt.training}}
        save_checkpoint(out, Checkpoint(pruned.config(), pruned.state(), training=training, status="pruned",
                                        mean=test.mean, std=test.std))
        return {"checkpoint": str(checkpoint), "out": str(out), "ratio": ratio,
                "params_before": model.num_parameters(), "params_after": pruned.num_parameters(),
                "macs_before": from_model(model).macs, "macs_after": from_model(pruned).macs,
                "accuracy_before": test.accuracy(model), "accuracy_after": test.accuracy(pruned)}
