"""Dual dynamic inference (DDI; Wang et al., IEEE JSTSP 2020): per image, channel-and-layer gates decide how much
of each block runs (the input-dependent part), and early-exit heads let inference stop where a budget ends (the
resource-dependent part).

The input-dependent part, multi-grained learning to skip (MGL2S), in ``ChannelGate`` and ``ChannelGatedBlock``:

    p = sigmoid(fc(avgpool(conv3x3_stride2(relu(bn(conv1x1_stride2(x)))))))   (n, C): a probability per channel
    m = (p > 0.5), straight-through: d p = d m                           (the authors' hard mask)
    the block's first conv computes only its kept output channels, the next conv reads only those
    (a block whose channels are all dropped for an image is skipped for it: the shortcut, or no new channels)

The gate reads the block's input (the authors' "mask of gate i multiplies the new channels of layer i + 1"). Which
channels a mask drops: the output channels of the body's first conv. In a plain DenseNet layer (BN-ReLU-conv3x3)
those are the layer's new channels, as in the authors' code; in a ResNet block and a DenseNet-BC layer they are
the channels between its first two convs, so both convs shrink (the paper says the gate is reused for ResNets
without details: this is lean's reading). The resource-dependent part: ``ExitHead`` (BN-ReLU, average pool,
linear) after a few blocks, spaced by the full network's MACs; the last exit is the network's own classifier.

Training (``DualDynamicInference``, the ``lean.train.methods`` protocol): loss = cross-entropy of the main head
+ the sum of the exits' cross-entropies + beta * reg * C, where C is the executed share of the network's MACs
(each kept channel costs its MACs per channel in the two convs it touches), reg = +1 while the batch's share is
above ``target``, else -1 (the authors' rule). Every image runs every channel in training (masked by
multiplication, as the authors do), so the gradients are those of the masked network; in evaluation dropped
work is not computed.

Where the dropped work goes (``ChannelGatedBlock.run``; ``granularity``, measured by ``benchmarks/ddi.py``):
``union`` runs a batch's images together on the channels any of them keeps (then multiplies by each image's
mask), ``pattern`` groups images by identical masks and runs each group on its own channels, ``image`` runs each
image alone. Each group's channels are rounded up to a multiple of 8 (``channel_step``: lean's vector kernels
want it; the fill is scaled by zero). On a half-width ResNet-38 trained to 44% of the MACs, union ran the test
set 1.59x faster than the plain network, pattern 0.75x and image 0.17x (per-image masks differ, so patterns are
small groups; ``benchmarks/README.md``): union is the default.

Budgeted halting (``budgeted_predict``; the authors' code has the exits but no halting routine): an image walks
the network step by step; before each step it checks that the cheapest way to its next exit (fixed layers,
gates, shortcuts, the exit head; a gated block at its least) still fits in what is left of the budget, and after
a gate decides, that the block's actual cost and the rest still fit. An image that cannot reach its next exit
stops and answers from the last exit it passed, so its MACs never exceed the budget. A budget below the worst
case of the first exit is refused (``HaltingPlan.smallest``): every image must get an answer.

Departures from the authors: the gate's width defaults to half the gated channels (rounded up to a multiple of 8,
the vector kernels' unit; the authors' 64 would cost more than a half-width CIFAR ResNet's block,
``--ddi-gate-width 64`` gives theirs), and its 3x3 conv has stride 2 too (the authors' stride is not stated: with
stride 1 lean's gates cost 9% of a half-width ResNet-38's MACs, with 2 about a quarter of that, for a decision
made from a pooled summary anyway); ``beta``'s default is lean's (the authors' 1e-5 belongs to their
unnormalized cost; here C is a share of the network).
"""

from contextlib import contextmanager

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..nn import BatchNorm, Conv2d, GlobalAvgPool, Linear, Model, Sequential
from ..nn.fusion import run_sequence
from ..nn.gates import wrap_residual_blocks
from ..nn.loss import softmax_cross_entropy
from ..nn.module import DenseLayer, Leaf, Module, Residual, module_from_config, module_to_config
from ..train.energy import EnergyMeter
from ..train.methods import TrainingMethod

GRANULARITIES = ("union", "pattern", "image")


def default_gate_width(channels: int) -> int:
    """Channels of a gate's convs unless given: half the gated channels, rounded up to a multiple of 8 (the
    vector kernels' unit; narrower convs run several times slower per MAC here)."""
    return max(8, -(-(channels // 2) // 8) * 8)


def channel_step() -> int:
    """Kept channels are rounded up to a multiple of this (channels scaled by zero fill the rest) so the narrowed
    convs take lean's vector kernels, which want multiples of 8 channels (``lean.kernels.direct``,
    ``winograd``); 1 on a machine without them (im2col + BLAS takes any count)."""
    return 8 if kernels.direct.SIMD_WIDTH > 0 else 1


GATE_BIAS = 1.0  # the gates start with every channel kept (p = 0.73)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-np.clip(a, -60.0, 60.0)))


def _mean_over_positions(h: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> (n, c): the average pool as one batched product (numpy's mean over two axes is several
    times slower here)."""
    n, hh, ww, c = h.shape
    return np.matmul(np.full(hh * ww, 1.0 / (hh * ww), h.dtype), h.reshape(n, hh * ww, c))


def conv_macs(conv: Conv2d, h: int, w: int) -> tuple[int, int, int]:
    """Products of ``conv`` for one (h, w) input, and its output size: (macs, oh, ow)."""
    oh = (h + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
    ow = (w + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
    per = conv.out_channels * (conv.in_channels // conv.groups) * conv.kernel_size ** 2
    return oh * ow * per, oh, ow


def _chain_macs(modules, h, w):
    """MACs of a chain of modules (convs counted, others free) for one (h, w) input, and the output size."""
    macs = 0
    for m in modules:
        if isinstance(m, Conv2d):
            add, h, w = conv_macs(m, h, w)
            macs += add
        elif isinstance(m, Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, Sequential):
            add, h, w = _chain_macs([x for _, x in m.layers], h, w)
            macs += add
        elif hasattr(m, "stride") and getattr(m, "stride", 1) > 1:  # a strided shortcut without products
            h, w = (h - 1) // m.stride + 1, (w - 1) // m.stride + 1
    return macs, h, w


# ------------------------------------------------------------------------------------------------- the gate

class ChannelGate(Module):
    """MGL2S's gate: (n, h, w, c_in) -> (n, channels) probabilities that each channel runs.

    Parameters
    ----------
    in_channels : int
        Channels of the gated block's input.
    channels : int
        Channels it decides (the block's gated channels).
    width : int
        Channels of its two convs (the authors: 64).
    seed : int
        Seed of its initial weights.
    """

    def __init__(self, in_channels: int, channels: int, width: int, seed: int = 0):
        super().__init__()
        self.in_channels, self.channels, self.width, self.seed = int(in_channels), int(channels), int(width), int(
            seed)
        self.net = Sequential([
            ("conv1", Conv2d(self.in_channels, self.width, 1, stride=2)), ("bn", BatchNorm(self.width, relu=True)),
            ("conv2", Conv2d(self.width, self.width, 3, stride=2, padding=1)), ("pool", GlobalAvgPool()),
            ("fc", Linear(self.width, self.channels)),
        ])
        rng = np.random.default_rng([self.seed, 23])
        for conv in (self.net["conv1"], self.net["conv2"]):
            fan_in = conv.in_channels * conv.kernel_size ** 2
            conv.params["weight"][...] = rng.standard_normal(conv.params["weight"].shape) * np.sqrt(2.0 / fan_in)
        fc = self.net["fc"]
        fc.params["weight"][...] = rng.standard_normal(fc.params["weight"].shape) * 0.01
        fc.params["bias"][...] = GATE_BIAS
        self._p = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, in_channels) -> (n, channels) probabilities."""
        if train:
            self._p = p = _sigmoid(self.net.forward(x, True).astype(np.float64))
            return p
        # evaluation: the convs fused with the batch norm, the average pool as one product
        layers = [m for _, m in self.net.layers]
        h, _ = run_sequence(layers[:3], x)
        return _sigmoid(self.net["fc"].forward(_mean_over_positions(h)).astype(np.float64))

    def backward(self, dp: np.ndarray) -> np.ndarray:
        """d loss / d input, given d loss / d p (n, channels)."""
        p, self._p = self._p, None
        return self.net.backward((dp * p * (1.0 - p)).astype(self.net["fc"].params["weight"].dtype))

    def macs(self, h: int, w: int) -> int:
        """The gate's products for one (h, w) image."""
        return _chain_macs([m for _, m in self.net.layers], h, w)[0]

    def children(self):
        return [("net", self.net)]

    def config(self):
        return {"in_channels": self.in_channels, "channels": self.channels, "width": self.width, "seed": self.seed}

    @classmethod
    def from_config(cls, args):
        return cls(**args)


# ------------------------------------------------------------------------------------------------- narrowing

def narrowed(module: Module, out_idx=None, in_idx=None) -> Module:
    """A copy of a conv or batch norm that keeps only output channels ``out_idx`` and/or input channels
    ``in_idx`` (a conv) or features ``out_idx`` (a batch norm); other modules are returned as they are."""
    if isinstance(module, Conv2d):
        weight = module.params["weight"]
        if out_idx is not None:
            weight = weight[out_idx]
        if in_idx is not None:
            weight = weight[:, in_idx]
        cfg = module.config()
        cfg.update(in_channels=weight.shape[1], out_channels=weight.shape[0])
        copy = Conv2d(**{k: cfg[k] for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                                             "bias")})
        copy.params["weight"] = np.ascontiguousarray(weight)
        if "bias" in module.params:
            bias = module.params["bias"]
            copy.params["bias"] = np.ascontiguousarray(bias if out_idx is None else bias[out_idx])
        return copy
    if isinstance(module, BatchNorm) and out_idx is not None:
        copy = BatchNorm(len(out_idx), module.eps, module.momentum, module.relu)
        for k in ("weight", "bias"):
            copy.params[k] = np.ascontiguousarray(module.params[k][out_idx])
        for k in ("running_mean", "running_var"):
            copy.buffers[k] = np.ascontiguousarray(module.buffers[k][out_idx])
        return copy
    if module.params:
        raise ConfigError(f"DDI cannot narrow a {type(module).__name__} between a block's first two convs")
    return module


def _split_body(body: Sequential):
    """The parts of a block's body around its gated channels: (pre, conv_a, mid, conv_b, post), conv_b None when
    the body has one conv (a plain DenseNet layer)."""
    layers = [m for _, m in body.layers]
    convs = [i for i, m in enumerate(layers) if isinstance(m, Conv2d)]
    if not convs:
        raise ConfigError("DDI gates blocks whose body has a conv")
    a = convs[0]
    if layers[a].groups != 1:
        raise ConfigError("DDI's channel gates need a dense (groups=1) first conv in each block")
    if any(isinstance(m, Conv2d) for m in layers[:a]) or any(m.children() for m in layers):
        raise ConfigError("DDI gates blocks whose body is a flat sequence of layers")
    b = convs[1] if len(convs) > 1 else None
    if b is not None and layers[b].groups != 1:
        raise ConfigError("DDI's channel gates need a dense (groups=1) second conv in each block")
    mid = layers[a + 1:b] if b is not None else layers[a + 1:]
    post = layers[b + 1:] if b is not None else []
    return layers[:a], layers[a], mid, (layers[b] if b is not None else None), post


# ------------------------------------------------------------------------------------------------- the block

class ChannelGatedBlock(Module):
    """A residual block or dense layer whose gated channels run per image as its ``ChannelGate`` decides.

    Parameters
    ----------
    block : Residual or DenseLayer
        With a ``Sequential`` body; its first conv's output channels are the gated ones.
    in_channels : int
        Channels of the block's input.
    gate_width : int
        Channels of the gate's convs.
    seed : int
        Seed of the gate's initial weights.

    Notes
    -----
    ``last_dmask`` holds the gradient the last backward gave the mask (the straight-through quantity, for
    tests). ``forced`` (an (n, channels) array, or None) is
    used instead of the gate's decision; values between 0 and 1 scale channels (a gradient check's soft mask).
    """

    gated = True

    def __init__(self, block: Module, in_channels: int, gate_width: int, seed: int = 0):
        super().__init__()
        if not isinstance(block, (Residual, DenseLayer)) or not isinstance(block.body, Sequential):
            raise ConfigError("DDI gates residual blocks and dense layers with a sequential body")
        self.block = block
        self.in_channels, self.gate_width, self.seed = int(in_channels), int(gate_width), int(seed)
        self.pre, self.conv_a, self.mid, self.conv_b, self.post = _split_body(block.body)
        self.channels = self.conv_a.out_channels
        self.gate = ChannelGate(self.in_channels, self.channels, self.gate_width, self.seed)
        self.controller = None
        self.forced = None
        self.last_dmask = None
        self._cache = None
        self._costs = {}
        self.input_hw = self.output_channels = None  # of the last input (set by a forward)

    def link(self, controller: "DDIController") -> None:
        if not isinstance(controller, DDIController):
            raise ValueError("a DDI block needs a DDIController")
        self.controller = controller

    def children(self):
        return [("block", self.block), ("gate", self.gate)]

    def config(self):
        return {"block": module_to_config(self.block), "in_channels": self.in_channels,
                "gate_width": self.gate_width, "seed": self.seed}

    @classmethod
    def from_config(cls, args):
        return cls(module_from_config(args["block"]), args["in_channels"], args["gate_width"], args.get("seed", 0))

    def macs_per_call(self, n: int) -> int:
        """Nothing beyond its layers' own products (the energy meter counts the gate's convs as layers)."""
        return 0

    # -- costs
    def costs(self, h: int, w: int) -> dict:
        """MACs per image for an (h, w) input: ``gate``, ``per_channel`` (one kept channel in the two convs it
        touches), ``fixed`` (the rest of the body, run when any channel is kept), ``shortcut`` (always run),
        ``full`` (the block with every channel)."""
        key = (h, w)
        if key not in self._costs:
            a, oh, ow = conv_macs(self.conv_a, h, w)
            per = a / self.channels
            fixed = 0
            if self.conv_b is not None:
                b, bh, bw = conv_macs(self.conv_b, oh, ow)
                per += b / self.channels
                fixed = _chain_macs(self.post, bh, bw)[0]
            shortcut = 0
            if isinstance(self.block, Residual) and self.block.shortcut is not None:
                shortcut = _chain_macs([self.block.shortcut], h, w)[0]
            self._costs[key] = {"gate": self.gate.macs(h, w), "per_channel": per, "fixed": fixed,
                                "shortcut": shortcut, "full": fixed + per * self.channels + shortcut}
        return self._costs[key]

    def image_costs(self, kept: np.ndarray, h: int, w: int) -> np.ndarray:
        """MACs of the block (not its gate) per image, given each image's kept channel count (or mask sum)."""
        c = self.costs(h, w)
        return c["shortcut"] + (kept > 0) * c["fixed"] + kept * c["per_channel"]

    # -- the decision
    def decide(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The (n, channels) mask for ``x``: the gate's hard decision, or ``forced``."""
        ctrl = self.controller
        if ctrl is not None and ctrl.mode == "full":  # a trace: the gate runs, every channel is kept
            self.gate.forward(x)
            return np.ones((x.shape[0], self.channels), np.float64)
        if self.forced is not None:
            return np.broadcast_to(np.asarray(self.forced, np.float64), (x.shape[0], self.channels)).copy()
        p = self.gate.forward(x, train)
        self._p_used = train
        return (p > 0.5).astype(np.float64)

    # -- forward
    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The block's output, its gated channels as each image's mask says (see the module docstring).

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, in_channels).
        train : bool
            Run every channel and multiply by the mask, keeping what ``backward`` needs.
        """
        self._p_used = False
        self.input_hw = x.shape[1:3]
        mask = self.decide(x, train)
        ctrl = self.controller
        if ctrl is not None:
            ctrl.account(self, mask, x.shape[1], x.shape[2], train)
        y = self._train_forward(x, mask) if train else self.run(x, mask)
        self.output_channels = y.shape[3]
        return y

    def _skip_output(self, x, train=False):
        if isinstance(self.block, DenseLayer):
            return None
        s = x if self.block.shortcut is None else self.block.shortcut.forward(x, train)
        return s

    def _train_forward(self, x, mask):
        active = (mask.sum(axis=1) > 0).astype(x.dtype)
        h = x
        for m in self.pre:
            h = m.forward(h, True)
        h = self.conv_a.forward(h, True)
        for m in self.mid:
            h = m.forward(h, True)
        w = h
        h = w * mask[:, None, None, :].astype(x.dtype)
        if self.conv_b is not None:
            h = self.conv_b.forward(h, True)
            for m in self.post:
                h = m.forward(h, True)
        r = h * active[:, None, None, None]
        if isinstance(self.block, DenseLayer):
            y = np.concatenate([x, r.astype(x.dtype, copy=False)], axis=3)
        else:
            s = self._skip_output(x, True)
            y = r + s
            if self.block.relu_after:
                y = np.maximum(y, 0)
        self._cache = (x.shape, w, mask, active, y)
        return y

    def _narrow_copy(self, keep: np.ndarray):
        """The first conv, the layers after it and the second conv cut to channels ``keep`` (copies, made per
        call: cheap beside the convs, and never stale after the weights change)."""
        conv_a = narrowed(self.conv_a, out_idx=keep)
        mid = [narrowed(m, out_idx=keep) for m in self.mid]
        conv_b = None if self.conv_b is None else narrowed(self.conv_b, in_idx=keep)
        return conv_a, mid, conv_b

    def _body_on(self, x, keep, scale, residual=None):
        """The body on kept channels ``keep`` only (channel indices), each image's kept channels scaled by
        ``scale`` ((n, len(keep)) or None for all ones), as the evaluation forward runs layers (a conv with the
        batch norm and ReLU after it as one, ``lean.nn.fusion``). A residual block adds ``residual`` and applies
        its ReLU (its output); a plain dense layer returns its ``len(keep)`` new channels."""
        conv_a, mid, conv_b = self._narrow_copy(keep)
        h, _ = run_sequence([*self.pre, conv_a, *mid], x)
        if scale is not None:
            h *= scale[:, None, None, :].astype(h.dtype)
        if conv_b is None:
            return h
        relu = residual is not None and self.block.relu_after
        y, merged = run_sequence([conv_b, *self.post], h, residual, relu)
        if residual is not None and not merged:
            y = kernels.add_relu(y, residual) if relu else y + residual
        return y

    def run(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Evaluation: the block's output computing only the kept channels of each image (``mask`` (n, channels);
        an image with none kept takes the skip path), grouped as the controller's ``granularity`` says."""
        n = x.shape[0]
        kept = mask.sum(axis=1)
        active = np.flatnonzero(kept > 0)
        binary = np.all((mask == 0) | (mask == 1))
        if active.size == n and binary and np.all(mask == 1):
            return self.block.forward(x)  # every channel of every image: the block as it is
        dense = isinstance(self.block, DenseLayer)
        granularity = self.controller.granularity if self.controller is not None else "union"
        if dense:
            new = self._out_channels()
            y = np.zeros((*x.shape[:3], x.shape[3] + new), x.dtype)
            y[..., :x.shape[3]] = x
        else:
            s = self._skip_output(x)
            if active.size == n and granularity == "union":  # one group of every image: its output is y
                return self._group_output(x, mask, active, None, s)
            y = np.maximum(s, 0) if self.block.relu_after else s.astype(x.dtype, copy=True)
        if not active.size:
            return y
        if granularity == "union" or not binary:
            groups = [active]
        elif granularity == "pattern":
            _, inverse = np.unique(mask[active] > 0, axis=0, return_inverse=True)
            groups = [active[inverse.reshape(-1) == g] for g in range(inverse.max() + 1)]
        else:
            groups = [active[i:i + 1] for i in range(active.size)]
        for rows in groups:
            self._group_output(x, mask, rows, y, None if dense else s)
        return y

    def _group_output(self, x, mask, rows, y, s):
        """Run the images ``rows`` on the channels any of them keeps (rounded up to ``channel_step``) and write
        their outputs into ``y`` (None: return them; only when ``rows`` is every image)."""
        m = mask[rows]
        used = m.max(axis=0) > 0
        keep = np.flatnonzero(used)
        step = channel_step()
        if len(keep) % step:  # round up to the fast kernels' multiple with channels scaled by zero
            extra = np.flatnonzero(~used)[:step - len(keep) % step]
            keep = np.sort(np.concatenate([keep, extra]))
        sub = m[:, keep]
        scale = None if np.all(sub == 1) else np.ascontiguousarray(sub)
        every = rows.size == x.shape[0]
        xr = x if every else np.ascontiguousarray(x[rows])
        if s is None:  # a dense layer: its new channels
            r = self._body_on(xr, keep, scale)
            c_in = x.shape[3]
            if self.conv_b is None:
                y[rows[:, None], :, :, c_in + keep] = np.moveaxis(r, 3, 1)
            else:
                y[rows, ..., c_in:] = r
            return y
        out = self._body_on(xr, keep, scale, residual=s if every else np.ascontiguousarray(s[rows]))
        if y is None:
            return out
        y[rows] = out
        return y

    def _out_channels(self):
        """Channels the body gives (a dense layer's new ones): its last conv's."""
        return [m for m in [self.conv_a, self.conv_b, *self.post] if isinstance(m, Conv2d)][-1].out_channels

    # -- backward
    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of a training ``forward``: the body's (masked), the shortcut's, and the gate's through the
        straight-through mask (d p = d m, plus the cost term)."""
        shape, w, mask, active, y = self._cache
        self._cache = None
        c_in = shape[3]
        if isinstance(self.block, DenseLayer):
            dr = dy[..., c_in:] * active[:, None, None, None]
            dx = np.array(dy[..., :c_in])
        else:
            if self.block.relu_after:
                dy = dy * (y > 0)
            dr = dy * active[:, None, None, None]
            dx = dy if self.block.shortcut is None else self.block.shortcut.backward(dy)
            dx = np.array(dx)
        dh = np.ascontiguousarray(dr, dtype=w.dtype)
        if self.conv_b is not None:
            for m in reversed(self.post):
                dh = m.backward(dh)
            dh = self.conv_b.backward(dh)
        dmask = (dh.astype(np.float64) * w).sum(axis=(1, 2))  # straight-through: d loss / d m
        if self.controller is not None:
            dmask = dmask + self.controller.cost_gradient(self.costs(shape[1], shape[2])["per_channel"], shape[0])
        self.last_dmask = dmask
        dh = dh * mask[:, None, None, :].astype(dh.dtype)
        for m in reversed(self.mid):
            dh = m.backward(dh)
        dh = self.conv_a.backward(dh)
        for m in reversed(self.pre):
            dh = m.backward(dh)
        dx = dx + dh
        if self._p_used:
            dx = dx + self.gate.backward(dmask)
        return dx


# ------------------------------------------------------------------------------------------------- exits

class ExitHead(Module):
    """An early exit: BN-ReLU, average pool, linear to the classes, on the features after a block. An identity
    on the data; in training it adds its cross-entropy with the batch's labels (the controller's) to the loss.

    Parameters
    ----------
    channels : int
        Channels of the features it reads.
    num_classes : int
        Its outputs.
    """

    gated = True  # linked to the controller (its labels), like the gated blocks

    def __init__(self, channels: int, num_classes: int, seed: int = 0):
        super().__init__()
        self.channels, self.num_classes, self.seed = int(channels), int(num_classes), int(seed)
        self.head = Sequential([("bn", BatchNorm(self.channels, relu=True)), ("pool", GlobalAvgPool()),
                                ("fc", Linear(self.channels, self.num_classes))])
        fc = self.head["fc"]  # initialized as lean.nn.init does a classifier (uniform +-1/sqrt(fan_in))
        bound = 1.0 / np.sqrt(self.channels)
        rng = np.random.default_rng([self.seed, 29])
        for key in ("weight", "bias"):
            fc.params[key][...] = rng.uniform(-bound, bound, fc.params[key].shape)
        self.controller = None
        self._dlogits = None

    def link(self, controller):
        self.controller = controller

    def children(self):
        return [("head", self.head)]

    def config(self):
        return {"channels": self.channels, "num_classes": self.num_classes, "seed": self.seed}

    @classmethod
    def from_config(cls, args):
        return cls(**args)

    def macs_per_call(self, n: int) -> int:
        return 0  # its linear layer reports its own products

    def macs(self) -> int:
        return self.channels * self.num_classes

    def logits(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, channels) -> (n, num_classes)."""
        if train:
            return self.head.forward(x, True)
        return self.head["fc"].forward(_mean_over_positions(self.head["bn"].forward(x)))

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x`` unchanged; in training (with labels) the exit's loss and its gradient are kept; under the
        controller's ``all_run`` the head runs (so a trace sees its layers)."""
        ctrl = self.controller
        self._dlogits = None
        if train and ctrl is not None and ctrl.labels is not None:
            logits = self.logits(x, True)
            loss, self._dlogits = softmax_cross_entropy(logits, ctrl.labels)
            ctrl.exit_losses.append(loss)
        elif ctrl is not None and ctrl.mode == "full" and not train:
            self.logits(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._dlogits is None:
            return dy
        dl, self._dlogits = self._dlogits, None
        return dy + self.head.backward(dl)


# ------------------------------------------------------------------------------------------------- controller

class DDIController(Leaf):
    """The settings and the per-pass counts shared by a DDI net's gated blocks and exits (first layer of the
    net, an identity on the data).

    Parameters
    ----------
    target : float
        Share of the network's MACs the gates aim at, in (0, 1].
    beta : float
        Weight of the cost term.
    granularity : str
        How evaluation groups images to drop channels: "union", "pattern" or "image".
    fixed_macs : int
        MACs per image of the layers outside gated blocks and exits (stem, transitions, classifier).
    record : dict or None
        Layer name -> share of its work run on a dataset (``lean eval --record``).

    Notes
    -----
    ``mode``: "free" (the gates decide) or "full" (every channel, every exit's head: a trace). ``labels``: the
    training batch's labels for the exits. Counts since ``reset_counts``: ``executed`` and ``offered`` MACs of the
    backbone, ``images``.
    """

    controls_gates = True

    def __init__(self, target: float = 0.5, beta: float = 20.0, granularity: str = "union", fixed_macs: int = 0,
                 record: dict | None = None):
        super().__init__()
        if not 0.0 < float(target) <= 1.0:
            raise ConfigError(f"--ddi (the target share of MACs) must be in (0, 1]; got {target}")
        if granularity not in GRANULARITIES:
            raise ConfigError(f"DDI granularity must be one of {', '.join(GRANULARITIES)}; got {granularity!r}")
        self.target, self.beta, self.granularity = float(target), float(beta), granularity
        self.fixed_macs = int(fixed_macs)
        self.record = dict(record) if record else None
        self.mode = "free"
        self.labels = None
        self.exit_losses = []
        self._pass = [0.0, 0.0]
        self.reset_counts()

    def config(self):
        return {"target": self.target, "beta": self.beta, "granularity": self.granularity,
                "fixed_macs": self.fixed_macs, "record": self.record}

    def forward(self, x, train=False):
        n = x.shape[0]
        self._pass = [float(self.fixed_macs * n), float(self.fixed_macs * n)]
        self.exit_losses = []
        if not train:
            self.images += n
        return x

    def backward(self, dy):
        return dy

    def reset_counts(self) -> None:
        """Start counting afresh: executed and offered backbone MACs, images, per-layer work (``tally``)."""
        self.executed = 0.0
        self.offered = 0.0
        self.images = 0
        self.tally = {}
        self._budgeted = False  # the counts come from budgeted halting (layers outside blocks counted too)

    def account(self, block: ChannelGatedBlock, mask: np.ndarray, h: int, w: int, train: bool) -> None:
        """A gated block's decision for a pass: its executed and full MACs (and, in evaluation, its layers'
        work per image)."""
        costs = block.costs(h, w)
        kept = mask.sum(axis=1)
        executed = float(block.image_costs(kept, h, w).sum())
        full = costs["full"] * mask.shape[0]
        self._pass[0] += executed
        self._pass[1] += full
        if not train:
            self.executed += executed
            self.offered += full
            self.add_block_tally(block, mask)

    def add_block_tally(self, block, mask, gate: bool = True):
        """Add the work of one gated block's evaluation pass to ``tally`` (layer -> images' worth of work); the
        gate's own unless ``gate`` is False."""
        n = mask.shape[0]
        share = mask.sum(axis=1) / block.channels
        if gate:
            _tally_layers(self, block.gate, n)
        for conv in (block.conv_a, block.conv_b):  # the convs the kept channels pass
            if conv is not None:
                _tally_layers(self, conv, float(share.sum()))
        for layer in block.post:  # run for every image that keeps a channel
            _tally_layers(self, layer, float((share > 0).sum()))
        if isinstance(block.block, Residual) and block.block.shortcut is not None:  # run for every image
            _tally_layers(self, block.block.shortcut, n)

    def pass_share(self) -> float:
        """Executed share of the backbone's MACs in the current pass."""
        return self._pass[0] / self._pass[1] if self._pass[1] else 1.0

    def computation(self) -> float:
        """Executed share of the backbone's MACs over the evaluation passes since ``reset_counts``."""
        total = self.offered + self.fixed_macs * self.images
        return (self.executed + self.fixed_macs * self.images) / total if total else 1.0

    def cost_gradient(self, per_channel: float, n: int) -> float:
        """d (beta * reg * C) / d m for one channel of a block, C the batch's mean executed share of the
        backbone, reg +1 while that share is above the target, else -1 (the authors' rule)."""
        reg = 1.0 if self.pass_share() > self.target else -1.0
        full = self._pass[1] / max(n, 1)
        return self.beta * reg * per_channel / (full * n) if full else 0.0

    @contextmanager
    def all_run(self):
        """Inside: every channel and every exit's head runs (a trace of the whole network, ``lean.hw.workload``)."""
        mode, self.mode = self.mode, "full"
        try:
            yield
        finally:
            self.mode = mode

    def record_counts(self, model: Model | None = None) -> None:
        """Keep the work counted since ``reset_counts`` as ``record`` (layer name -> share of the images' work)."""
        if model is None or not self.images:
            return
        heads = {id(layer) for _, e in exit_heads(model) for layer in e.modules()}
        record = {}
        for name, layer in model.net.named_modules():
            if not isinstance(layer, (Conv2d, Linear)):
                continue
            if id(layer) in self.tally:
                record[name] = min(1.0, float(self.tally[id(layer)] / self.images))
            else:  # not counted: a layer outside the gated blocks ran for every image, unless halting decided
                record[name] = 0.0 if (self._budgeted or id(layer) in heads) else 1.0
        self.record = record

    def recorded_fractions(self) -> dict | None:
        """Layer name -> share of its work that ran on the recorded dataset (``lean.hw.workload``)."""
        return self.record

    def budget_curve(self, model: Model, x: np.ndarray, y: np.ndarray, budgets, unit: str = "fraction") -> dict:
        """``evaluate_budgets`` with budgets as shares of the full network (``unit="fraction"``) or MACs
        (``lean.train.evaluate(budgets=...)``)."""
        plan = HaltingPlan(model)
        macs = [b * plan.full_macs for b in budgets] if unit == "fraction" else list(budgets)
        return evaluate_budgets(model, x, y, macs, plan=plan)

    def dynamic_report(self, model: Model) -> dict:
        blocks = ddi_blocks(model)
        return {"ddi": {"computation": self.computation(), "target": self.target, "images": self.images,
                        "granularity": self.granularity,
                        "blocks": {name: float(self.tally.get(id(b.conv_a), 0.0) / max(self.images, 1))
                                   for name, b in blocks}}}


# ------------------------------------------------------------------------------------------------- building

def ddi_blocks(model: Model) -> list[tuple[str, ChannelGatedBlock]]:
    """The gated blocks of a DDI model, in the order they run."""
    return [(name, m) for name, m in model.net.named_modules() if isinstance(m, ChannelGatedBlock)]


def exit_heads(model: Model) -> list[tuple[str, ExitHead]]:
    """The early exits of a DDI model, in the order they run (the net's own classifier comes after them)."""
    return [(name, m) for name, m in model.net.named_modules() if isinstance(m, ExitHead)]


def has_ddi_gates(model: Model) -> bool:
    return any(isinstance(m, DDIController) for m in model.net.modules())


def controller(model: Model) -> DDIController:
    """The ``DDIController`` of a DDI model."""
    found = [m for m in model.net.modules() if isinstance(m, DDIController)]
    if len(found) != 1:
        raise ConfigError(f"{model.name} is not a DDI model (no channel gates and exits)")
    return found[0]


class _MacTracer:
    """Observer: MACs per image of each conv and linear call (by layer id), for one traced image."""

    def __init__(self):
        self.macs = {}

    def on_forward(self, module, x, y, train):
        self.macs[id(module)] = EnergyMeter.layer_macs(module, x.shape, y.shape)

    def on_backward(self, module, dy, dx):
        pass


def trace_macs(model: Model) -> dict[int, int]:
    """Layer id -> MACs for one image, every channel and exit running; gated blocks remember their input size."""
    layers = [m for m in model.net.modules() if isinstance(m, (Conv2d, Linear))]
    tracer = _MacTracer()
    ctrl = next((m for m in model.net.modules() if isinstance(m, DDIController)), None)
    for layer in layers:
        layer.add_observer(tracer)
    try:
        if ctrl is None:
            model.forward(np.zeros((1, *model.input_shape), np.float32))
        else:
            with ctrl.all_run():
                model.forward(np.zeros((1, *model.input_shape), np.float32))
    finally:
        for layer in layers:
            layer.remove_observer(tracer)
    return tracer.macs


def add_ddi_gates(model: Model, *, target: float = 0.5, beta: float = 20.0, exits: int = 4, gate_width: int = 0,
                  granularity: str = "union", seed: int = 0) -> Model:
    """``model`` with a ``ChannelGate`` on every residual block or dense layer, ``exits`` early-exit heads spaced
    by the full network's MACs, and a ``DDIController`` first (a new ``Model`` sharing the layers).

    Parameters
    ----------
    model : Model
        A net with residual blocks or dense layers (``lean nets``: resnet, preresnet, densenet, ...).
    target, beta, granularity
        The controller's (see ``DDIController``).
    exits : int
        Early exits before the net's own classifier, >= 0.
    gate_width : int
        Channels of each gate's convs; 0: ``default_gate_width`` of the block's gated channels.
    seed : int
        Seed of the gates' initial weights.

    Raises
    ------
    ConfigError
        The net has no such blocks, or a block's convs are compressed or quantized.
    """
    if int(exits) < 0 or int(gate_width) < 0:
        raise ConfigError(f"DDI needs exits >= 0 and gate width >= 0; got {exits} and {gate_width}")
    net = model.net
    if not isinstance(net, Sequential):
        raise ConfigError(f"--ddi needs a sequential net; {model.name} is not one")
    if any(getattr(m, "controls_gates", False) or getattr(m, "gated", False) for m in net.modules()):
        raise ConfigError("--ddi gates blocks another method already gates (--slu, --dfs): use one of them")
    index = [0]  # blocks wrapped so far

    def wrap(block, conv):
        for layer in block.body.modules():
            if isinstance(layer, Conv2d) and (layer.form is not None or layer.input_bits is not None):
                raise ConfigError("DDI gates plain float convs (not compressed or quantized ones)")
        width = int(gate_width) or default_gate_width(conv.out_channels)
        index[0] += 1
        return ChannelGatedBlock(block, conv.in_channels, width, seed=seed * 1000 + index[0])

    wrap_residual_blocks(net, wrap, kinds=(Residual, DenseLayer))
    if not index[0]:
        raise ConfigError(f"--ddi gates residual blocks or dense layers; {model.name} has none")
    ctrl = DDIController(target, beta, granularity)
    net.layers = [("ddi", ctrl), *net.layers]
    gated = Model(net, model.input_shape, model.num_classes, model.name)
    macs = trace_macs(gated)
    blocks = ddi_blocks(gated)
    inside = {id(layer) for _, b in blocks for layer in b.modules()}
    ctrl.fixed_macs = sum(v for k, v in macs.items() if k not in inside)
    # exits after the blocks where the full network's cumulative MACs cross j / (exits + 1) of its total
    total = _full_network_macs(ctrl, blocks)
    before = {id(layer) for layer in _layers_before(net, blocks[0][1])}
    spent = sum(v for k, v in macs.items() if k in before)
    marks, j = [], 1
    for _, b in blocks[:-1]:
        spent += b.costs(*b.input_hw)["full"]
        if j <= int(exits) and spent >= j * total / (int(exits) + 1):
            marks.append(b)
            while j <= int(exits) and spent >= j * total / (int(exits) + 1):
                j += 1
    for k, b in enumerate(marks):
        _insert_after(net, b, f"exit{k + 1}", ExitHead(b.output_channels, model.num_classes, seed * 1000 + k))
    return Model(net, model.input_shape, model.num_classes, model.name)


def _full_network_macs(ctrl: DDIController, blocks) -> float:
    """MACs per image of the network with every channel and no gates or exits (what budget shares refer to)."""
    return float(ctrl.fixed_macs + sum(b.costs(*b.input_hw)["full"] for _, b in blocks))


def _layers_before(net: Sequential, block):
    """Conv and linear layers of top-level steps before the one holding ``block``."""
    out = []
    for _, layer in net.layers:
        if any(m is block for m in layer.modules()):
            break
        out += [m for m in layer.modules() if isinstance(m, (Conv2d, Linear))]
    return out


def _insert_after(module, target, name, new) -> bool:
    if isinstance(module, Sequential):
        for i, (_, layer) in enumerate(module.layers):
            if layer is target:
                module.layers.insert(i + 1, (name, new))
                return True
            if _insert_after(layer, target, name, new):
                return True
    return False


# ------------------------------------------------------------------------------------------------- halting

class HaltingPlan:
    """The steps an image takes through a DDI model and what each costs (MACs per image), for budgeted halting.

    ``steps``: (kind, module, least, most) with kind "fixed" (a list of consecutive layers outside gated
    blocks), "gated" or "exit"; ``least`` and ``most`` bound a step's cost (a gated block: its gate and shortcut
    at least, every channel at most). ``exits``: the step index of each exit, the net's classifier last
    (``len(steps) - 1``). ``full_macs``: the network with every channel and no gates or exits (what budget
    fractions refer to). ``smallest``: the worst-case cost of reaching the first exit, the smallest budget every
    image can keep.
    """

    def __init__(self, model: Model):
        macs = trace_macs(model)
        ctrl = controller(model)
        steps = []
        for _, top in model.net.layers:
            inner = top.layers if isinstance(top, Sequential) and any(
                isinstance(m, (ChannelGatedBlock, ExitHead)) for _, m in top.layers) else [("", top)]
            for _, m in inner:
                if isinstance(m, ChannelGatedBlock):
                    c = m.costs(*m.input_hw)
                    steps.append(("gated", m, c["gate"] + c["shortcut"], c["gate"] + c["full"]))
                elif isinstance(m, ExitHead):
                    steps.append(("exit", m, m.macs(), m.macs()))
                else:  # consecutive layers outside gated blocks run as one step (fused where they may)
                    cost = sum(macs.get(id(layer), 0) for layer in m.modules())
                    if steps and steps[-1][0] == "fixed":
                        _, before, least, _ = steps[-1]
                        steps[-1] = ("fixed", [*before, m], least + cost, least + cost)
                    else:
                        steps.append(("fixed", [m], cost, cost))
        self.steps = steps
        self.exits = [i for i, s in enumerate(steps) if s[0] == "exit"] + [len(steps) - 1]
        self.exit_names = [name for name, _ in exit_heads(model)] + ["classifier"]
        # the least cost from step s through its next exit, inclusive
        self.least_to_exit = np.zeros(len(steps))
        nxt = 0
        for s in range(len(steps)):
            while self.exits[nxt] < s:
                nxt += 1
            self.least_to_exit[s] = sum(steps[t][2] for t in range(s, self.exits[nxt] + 1))
        self.smallest = float(sum(steps[t][3] for t in range(self.exits[0] + 1)))
        self.full_macs = _full_network_macs(ctrl, ddi_blocks(model))
        self.most = [float(sum(steps[t][3] for t in range(e + 1))) for e in self.exits]

    def check(self, budget: float) -> None:
        """Raise ``ConfigError``, naming the smallest budget, for a budget below the first exit's worst case."""
        if not budget >= self.smallest:
            raise ConfigError(f"a budget of {budget:,.0f} MACs ({budget / self.full_macs:.3f} of the full network) "
                              f"is below the first exit's cost; the smallest budget is {self.smallest:,.0f} MACs "
                              f"({self.smallest / self.full_macs:.3f})")


def _tally_layers(ctrl, module, n):
    """Add ``n`` images' worth of work to every conv and linear layer of ``module`` in ``ctrl.tally``."""
    for layer in module.modules():
        if isinstance(layer, (Conv2d, Linear)):
            ctrl.tally[id(layer)] = ctrl.tally.get(id(layer), 0.0) + n


def budgeted_predict(model: Model, x: np.ndarray, budget: float, *, plan: HaltingPlan | None = None,
                     batch_size: int = 256) -> dict:
    """Inference that stops each image at the latest exit it can reach within ``budget`` MACs.

    Parameters
    ----------
    model : Model
        A DDI model.
    x : np.ndarray
        (n, h, w, c) normalized images.
    budget : float
        MACs per image, at least ``plan.smallest``.
    plan : HaltingPlan or None
        The model's plan (made when not given).
    batch_size : int
        Images per batch.

    Returns
    -------
    dict
        ``logits`` (n, classes) from each image's exit, ``exit`` (n,) the index of that exit in
        ``plan.exit_names``, ``macs`` (n,) the MACs each image used (gates, heads and wasted steps included).
    """
    plan = plan or HaltingPlan(model)
    plan.check(budget)
    ctrl = controller(model)
    ctrl.reset_counts()
    ctrl._budgeted = True
    n = len(x)
    logits = np.zeros((n, model.num_classes), np.float32)
    exit_of = np.full(n, -1, np.int64)
    used = np.zeros(n, np.float64)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        h = np.ascontiguousarray(x[rows], dtype=np.float32)
        for s, (kind, module, least, _) in enumerate(plan.steps):
            fits = used[rows] + plan.least_to_exit[s] <= budget
            if not fits.all():
                rows, h = rows[fits], h[fits]
            if not rows.size:
                break
            if kind == "fixed":
                h, _ = run_sequence(module, h)
                used[rows] += least
                for layer in module:
                    _tally_layers(ctrl, layer, rows.size)
            elif kind == "exit":
                logits[rows] = module.logits(h)
                exit_of[rows] = plan.exits.index(s)
                used[rows] += least
                _tally_layers(ctrl, module, rows.size)
            else:
                hh, ww = h.shape[1:3]
                mask = module.decide(h)
                c = module.costs(hh, ww)
                used[rows] += c["gate"]
                _tally_layers(ctrl, module.gate, rows.size)
                cost = module.image_costs(mask.sum(axis=1), hh, ww)
                fits = used[rows] + cost + (plan.least_to_exit[s] - least) <= budget
                if not fits.all():
                    rows, h, mask, cost = rows[fits], h[fits], mask[fits], cost[fits]
                    if not rows.size:
                        break
                ctrl.add_block_tally(module, mask, gate=False)
                h = module.run(h, mask)
                used[rows] += cost
        else:
            logits[rows] = h
            exit_of[rows] = len(plan.exits) - 1
    return {"logits": logits, "exit": exit_of, "macs": used}


def evaluate_budgets(model: Model, x: np.ndarray, y: np.ndarray, budgets, *, plan: HaltingPlan | None = None,
                     batch_size: int = 256) -> dict:
    """Accuracy and MACs used per image at each budget (MACs per image), and the plan's reference figures.

    Raises ``ConfigError`` (naming the smallest budget) when a budget is below the first exit's worst case."""
    plan = plan or HaltingPlan(model)
    plan.check(min(budgets))  # before any work
    rows = []
    for budget in budgets:
        out = budgeted_predict(model, x, float(budget), plan=plan, batch_size=batch_size)
        exits = np.bincount(out["exit"], minlength=len(plan.exit_names))
        rows.append({"budget_macs": float(budget), "budget": float(budget) / plan.full_macs,
                     "accuracy": float((out["logits"].argmax(axis=1) == y).mean()) if len(y) else 0.0,
                     "macs_mean": float(out["macs"].mean()) if len(y) else 0.0,
                     "macs_max": float(out["macs"].max()) if len(y) else 0.0,
                     "exits": {name: int(k) for name, k in zip(plan.exit_names, exits, strict=True)}})
    return {"full_macs": plan.full_macs, "smallest_budget_macs": plan.smallest,
            "exit_worst_macs": dict(zip(plan.exit_names, plan.most, strict=True)), "budgets": rows}


# ------------------------------------------------------------------------------------------------- training

class DualDynamicInference(TrainingMethod):
    """DDI as a training method (``lean.train.methods`` protocol): adds the gates and exits, gives the exits the
    batch's labels, keeps the executed share per epoch. One phase, jointly from the start (or from ``--init``'s
    plain net), as the authors' loss is written."""

    name = "ddi"

    def __init__(self, target: float = 0.5, beta: float = 20.0, exits: int = 4, gate_width: int = 0,
                 granularity: str = "union"):
        if not 0.0 < float(target) <= 1.0:
            raise ConfigError(f"--ddi (the target share of MACs) must be in (0, 1]; got {target}")
        self.target, self.beta, self.exits = float(target), float(beta), int(exits)
        self.gate_width, self.granularity = int(gate_width), granularity
        self.controller = None
        self.exit_count = int(exits)
        self._sums = [0.0, 0.0, 0]  # executed share, exit losses, steps
        self.last_epoch = {}

    def prepare(self, model, config):
        if has_ddi_gates(model):
            return model
        return add_ddi_gates(model, target=self.target, beta=self.beta, exits=self.exits,
                             gate_width=self.gate_width, granularity=self.granularity, seed=config.seed)

    def install(self, model):
        self.controller = controller(model)
        self.exit_count = len(exit_heads(model))  # fewer than asked where the net has too few blocks

    def on_epoch_start(self, trainer):
        self.controller.reset_counts()

    def on_batch(self, trainer, seed):
        self.controller.labels = trainer.batch_labels

    def before_update(self, trainer):
        ctrl = self.controller
        self._sums[0] += ctrl.pass_share()
        self._sums[1] += float(sum(ctrl.exit_losses))
        self._sums[2] += 1

    def on_epoch_end(self, trainer):
        steps = max(self._sums[2], 1)
        ctrl = self.controller
        record = {"train_computation": self._sums[0] / steps, "exit_loss": self._sums[1] / steps}
        if ctrl.images:
            record["test_computation"] = ctrl.computation()
        self.last_epoch = record
        trainer.history[-1]["ddi"] = record
        self._sums = [0.0, 0.0, 0]

    def state(self):
        return {"sums": list(self._sums), "last_epoch": self.last_epoch}

    def load_state(self, state):
        self._sums = list(state.get("sums", [0.0, 0.0, 0]))
        self.last_epoch = state.get("last_epoch", {})

    def summary(self):
        out = {"ddi_target": self.target, "ddi_exits": self.exit_count}
        if "test_computation" in self.last_epoch:
            out["ddi_computation"] = self.last_epoch["test_computation"]
        return out
