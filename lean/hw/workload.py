"""Workloads: the per-layer shapes, bit widths and densities that the hardware models cost.

A ``Workload`` is an ordered tuple of ``LayerShape`` (the field names of DESIGN.md). It is built

- from a lean model and an input shape (``from_model``: conv and linear layers traced in execution order),
- from a checkpoint (``from_checkpoint``: its real shapes and the real fraction of non-zero weights),
- from a TOML or JSON file listing layers by these field names (``from_file``),
- from an ONNX model exported by PyTorch, Keras or any other framework (``from_onnx``; the ``onnx`` extra), or
- from the built-in reference networks (``BUILTIN``: at ImageNet sizes AlexNet with its grouped convs, VGG-16,
  ResNet-18, ResNet-50, MobileNetV2; at CIFAR-10's, the ResNet-18 and MobileNetV2 of the SmartExchange authors'
  code) and lean's own CIFAR nets (``load("net:vgg16")``, ``load("resnet20")``),

so the hardware rooms never need a trained model, and they read lean models only here. Shapes here use the
hardware convention: ``h, w`` are the input height and width, ``p, q`` the output ones, ``c`` input channels,
``k`` output channels.
"""

import json
import numbers
import tomllib
from contextlib import ExitStack
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, HardwareModelError

# lean.nn and lean.nets (NumPy layers, Numba kernels) are imported where a model is traced or built, not here:
# costing a built-in network or a layer file (`lean hw predict --workload resnet50`) needs neither, and the
# command starts in half the time without them.

NET_PREFIX = "net:"
KINDS = ("conv", "fc", "pool")


@dataclass(frozen=True)
class LayerShape:
    """One layer as the hardware models see it: ``n`` images of ``c`` x ``h`` x ``w`` in, ``k`` channels out, an
    ``r`` x ``s`` window (1 x 1 for fc), operand widths in bits and the fraction of non-zero weights and inputs."""

    name: str
    kind: str = "conv"
    n: int = 1
    c: int = 1
    k: int = 1
    h: int = 1
    w: int = 1
    r: int = 1
    s: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    w_bits: int = 16
    a_bits: int = 16
    w_density: float = 1.0
    a_density: float = 1.0
    o_density: float = 1.0   # non-zero share of the outputs (what a compressed format stores of them)
    rebuild_adds: int = 0  # shift-and-adds that rebuild all the weights once from a compressed form (each delivery)
    # bits per weight as stored in DRAM and the global buffer, when the weights travel in a compressed form (its
    # storage bits over the dense weight count; SmartExchange: Ce's codes and bitmap plus B); None: w_bits
    w_stored_bits: float | None = None
    # share of the n images this layer runs for: an input-adaptive model's recorded choices (DFS, ``lean eval
    # --record``); the predictor charges the layer's cost times this share
    fraction: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise HardwareModelError(f"layer {self.name!r}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        for f in ("n", "c", "k", "h", "w", "r", "s", "stride", "groups", "w_bits", "a_bits"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise HardwareModelError(f"layer {self.name!r}: {f} must be a positive integer; got {v!r}")
        if not isinstance(self.rebuild_adds, int) or isinstance(self.rebuild_adds, bool) or self.rebuild_adds < 0:
            raise HardwareModelError(f"layer {self.name!r}: rebuild_adds must be a non-negative integer; "
                                     f"got {self.rebuild_adds!r}")
        if self.w_stored_bits is not None and (isinstance(self.w_stored_bits, bool)
                                               or not isinstance(self.w_stored_bits, numbers.Real)
                                               or not self.w_stored_bits > 0):
            raise HardwareModelError(f"layer {self.name!r}: w_stored_bits must be a positive number (or absent); "
                                     f"got {self.w_stored_bits!r}")
        if not isinstance(self.padding, int) or isinstance(self.padding, bool) or self.padding < 0:
            raise HardwareModelError(f"layer {self.name!r}: padding must be a non-negative integer; "
                                     f"got {self.padding!r}")
        if self.c % self.groups or self.k % self.groups:
            raise HardwareModelError(f"layer {self.name!r}: groups={self.groups} must divide c={self.c} and "
                                     f"k={self.k}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, numbers.Real) or not (
                0.0 < self.fraction <= 1.0):
            raise HardwareModelError(f"layer {self.name!r}: fraction must lie in (0, 1]; got {self.fraction!r}")
        for f in ("w_density", "a_density", "o_density"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
                raise HardwareModelError(f"layer {self.name!r}: {f} must lie in [0, 1]; got {v!r}")
        if self.kind == "fc" and (self.h, self.w) != (1, 1):
            # a fully connected layer reads its whole input: c x h x w features, each with its own weights (not a
            # 1x1 conv repeated over h x w positions, which would cost c x k weights for c x h x w x k products)
            if (self.r, self.s, self.stride, self.padding, self.groups) != (1, 1, 1, 0, 1):
                raise HardwareModelError(f"layer {self.name!r}: a fully connected layer has no window, stride, "
                                         "padding or groups")
            object.__setattr__(self, "c", self.c * self.h * self.w)
            object.__setattr__(self, "h", 1)
            object.__setattr__(self, "w", 1)
        if self.p < 1 or self.q < 1:
            raise HardwareModelError(f"layer {self.name!r}: a {self.r}x{self.s} window with stride {self.stride} "
                                     f"and padding {self.padding} does not fit a {self.h}x{self.w} input")

    @property
    def p(self) -> int:
        """Output height."""
        return (self.h + 2 * self.padding - self.r) // self.stride + 1

    @property
    def q(self) -> int:
        """Output width."""
        return (self.w + 2 * self.padding - self.s) // self.stride + 1

    @property
    def c_per_group(self) -> int:
        """Input channels each output channel reads."""
        return self.c // self.groups

    @property
    def stored_bits_per_weight(self) -> float:
        """Bits a weight takes in DRAM and the global buffer: ``w_stored_bits`` for a compressed form, else
        ``w_bits``."""
        return self.w_bits if self.w_stored_bits is None else float(self.w_stored_bits)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (dense); pooling layers have none."""
        if self.kind == "pool":
            return 0
        return self.n * self.k * self.p * self.q * self.c_per_group * self.r * self.s

    @property
    def weight_count(self) -> int:
        """Weights (dense); pooling layers have none."""
        return 0 if self.kind == "pool" else self.k * self.c_per_group * self.r * self.s

    @property
    def input_count(self) -> int:
        """Input activations."""
        return self.n * self.c * self.h * self.w

    @property
    def output_count(self) -> int:
        """Output activations."""
        return self.n * self.k * self.p * self.q

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able)."""
        return asdict(self)


@dataclass(frozen=True)
class Workload:
    """A named, ordered tuple of ``LayerShape`` (pooling layers included; ``compute_layers`` leaves them out)."""

    name: str
    layers: tuple

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all layers (a layer run for a share of the images counts that share)."""
        return int(round(sum(layer.macs * layer.fraction for layer in self.layers)))

    def with_batch(self, n: int) -> "Workload":
        """The same layers at batch ``n`` (a positive integer).

        Parameters
        ----------
        n : int
            Images per batch.

        Returns
        -------
        Workload
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise HardwareModelError(f"batch must be a positive integer; got {n!r}")
        return Workload(self.name, tuple(replace(layer, n=int(n)) for layer in self.layers))

    def compute_layers(self) -> tuple:
        """The layers that do multiply-accumulates (conv and fc)."""
        return tuple(layer for layer in self.layers if layer.kind != "pool")

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "layers": [LayerShape.to_dict(), ...]}``."""
        return {"name": self.name, "layers": [layer.to_dict() for layer in self.layers]}


# ------------------------------------------------------------------------------------------ builders

class _Net:
    """Builds a layer list while tracking the current feature-map size and channels."""

    def __init__(self, name, h, w, c, n=1):
        self.name, self.h, self.w, self.c, self.n = name, h, w, c, n
        self.layers = []

    def conv(self, name, k, r, stride=1, padding=0, groups=1, s=None):
        layer = LayerShape(name, "conv", self.n, self.c, k, self.h, self.w, r, s or r, stride, padding, groups)
        self.layers.append(layer)
        self.h, self.w, self.c = layer.p, layer.q, k
        return layer

    def pool(self, name, r, stride, padding=0):
        layer = LayerShape(name, "pool", self.n, self.c, self.c, self.h, self.w, r, r, stride, padding, self.c)
        self.layers.append(layer)
        self.h, self.w = layer.p, layer.q

    def fc(self, name, k):
        features = self.c * self.h * self.w
        self.layers.append(LayerShape(name, "fc", self.n, features, k, 1, 1, 1, 1))
        self.h = self.w = 1
        self.c = k

    def shortcut(self, name, k, stride, block_input):
        """A 1x1 conv on a residual block's input (its shortcut), ``block_input`` = (c, h, w) where the block
        began; the main path's size stays as it is."""
        c, h, w = self.c, self.h, self.w
        self.c, self.h, self.w = block_input
        self.conv(name, k, 1, stride=stride)
        self.c, self.h, self.w = c, h, w

    def global_pool(self):
        self.h = self.w = 1

    def done(self):
        return Workload(self.name, tuple(self.layers))


def alexnet() -> Workload:
    """AlexNet (Krizhevsky et al., 2012) at 227x227 with its two-GPU grouped conv2, conv4, conv5 (666 M conv MACs)."""
    net = _Net("alexnet", 227, 227, 3)
    net.conv("conv1", 96, 11, stride=4)
    net.pool("pool1", 3, 2)
    net.conv("conv2", 256, 5, padding=2, groups=2)
    net.pool("pool2", 3, 2)
    net.conv("conv3", 384, 3, padding=1)
    net.conv("conv4", 384, 3, padding=1, groups=2)
    net.conv("conv5", 256, 3, padding=1, groups=2)
    net.pool("pool5", 3, 2)
    net.fc("fc6", 4096)
    net.fc("fc7", 4096)
    net.fc("fc8", 1000)
    return net.done()


def vgg16() -> Workload:
    """VGG-16 (Simonyan and Zisserman, 2015) at 224x224: 13 convs, 3 FC layers (15.5 G MACs)."""
    net = _Net("vgg16", 224, 224, 3)
    for block, (k, repeats) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, repeats + 1):
            net.conv(f"conv{block}_{i}", k, 3, padding=1)
        net.pool(f"pool{block}", 2, 2)
    net.fc("fc6", 4096)
    net.fc("fc7", 4096)
    net.fc("fc8", 1000)
    return net.done()


def _resnet(name, blocks, bottleneck, cifar=False):
    """ImageNet's ResNet, or (``cifar``) the CIFAR-10 variant: a 3x3 stem at stride 1 without pooling, 32x32
    inputs, 10 classes."""
    net = _Net(name, 32, 32, 3) if cifar else _Net(name, 224, 224, 3)
    if cifar:
        net.conv("conv1", 64, 3, padding=1)
    else:
        net.conv("conv1", 64, 7, stride=2, padding=3)
        net.pool("pool1", 3, 2, padding=1)
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        for b in range(count):
            stride = 2 if (b == 0 and stage > 1) else 1
            block_input = (net.c, net.h, net.w)
            out = width * 4 if bottleneck else width
            prefix = f"layer{stage}.{b}"
            if bottleneck:
                net.conv(f"{prefix}.conv1", width, 1)
                net.conv(f"{prefix}.conv2", width, 3, stride=stride, padding=1)
                net.conv(f"{prefix}.conv3", out, 1)
            else:
                net.conv(f"{prefix}.conv1", width, 3, stride=stride, padding=1)
                net.conv(f"{prefix}.conv2", width, 3, padding=1)
            if stride != 1 or block_input[0] != out:
                net.shortcut(f"{prefix}.downsample", out, stride, block_input)
    net.global_pool()
    net.fc("fc", 10 if cifar else 1000)
    return net.done()


def resnet18() -> Workload:
    """ResNet-18 (He et al., 2016) at 224x224 (1.8 G MACs)."""
    return _resnet("resnet18", (2, 2, 2, 2), bottleneck=False)


def resnet50() -> Workload:
    """ResNet-50 (He et al., 2016) at 224x224 (4.1 G MACs)."""
    return _resnet("resnet50", (3, 4, 6, 3), bottleneck=True)


def _mobilenetv2(name, cifar=False):
    """MobileNetV2 at 224x224, or (``cifar``) as the SmartExchange authors' code builds it for CIFAR-10: 32x32,
    stem and second stage at stride 1, every block with its 1x1 expansion (even at expansion 1), a 1x1 shortcut
    conv where a stride-1 block changes width, 10 classes."""
    net = _Net(name, 32, 32, 3) if cifar else _Net(name, 224, 224, 3)
    net.conv("conv1", 32, 3, stride=1 if cifar else 2, padding=1)
    i = 0
    for t, k, n, s in [(1, 16, 1, 1), (6, 24, 2, 1 if cifar else 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for rep in range(n):
            stride = s if rep == 0 else 1
            block_input, hidden = (net.c, net.h, net.w), net.c * t
            if cifar or t != 1:
                net.conv(f"block{i}.expand", hidden, 1)
            net.conv(f"block{i}.depthwise", hidden, 3, stride=stride, padding=1, groups=hidden)
            net.conv(f"block{i}.project", k, 1)
            if cifar and stride == 1 and block_input[0] != k:
                net.shortcut(f"block{i}.shortcut", k, 1, block_input)
            i += 1
    net.conv("conv2" if cifar else "conv_last", 1280, 1)
    net.global_pool()
    net.fc("linear" if cifar else "classifier", 10 if cifar else 1000)
    return net.done()


def mobilenetv2() -> Workload:
    """MobileNetV2 (Sandler et al., 2018), width 1.0, at 224x224 (about 300 M MACs)."""
    return _mobilenetv2("mobilenetv2")


# Shares of zeros in AlexNet's conv inputs and outputs as Eyeriss measured them (JSSC 2017, Table V: "almost 40%"
# of CONV2's ifmap values and "up to around 75%" at CONV5; the per-layer values as transcribed by an independent
# model of the chip, which match those statements)
EYERISS_ALEXNET_ZEROS = {"conv1": (0.0001, 0.5102), "conv2": (0.387, 0.8066), "conv3": (0.725, 0.7244),
                         "conv4": (0.793, 0.7018), "conv5": (0.776, 0.905)}


def alexnet_eyeriss() -> Workload:
    """AlexNet's five conv layers at batch 4 with the activation densities Eyeriss measured on them (input and
    output zero shares, ``EYERISS_ALEXNET_ZEROS``): the workload of Eyeriss's published measurements."""
    layers = tuple(replace(layer, n=4, a_density=1.0 - EYERISS_ALEXNET_ZEROS[layer.name][0],
                           o_density=1.0 - EYERISS_ALEXNET_ZEROS[layer.name][1])
                   for layer in alexnet().layers if layer.kind == "conv")
    return Workload("alexnet-eyeriss", layers)


def resnet18_cifar() -> Workload:
    """ResNet-18 for CIFAR-10 (32x32, 3x3 stem, 10 classes; 0.56 G MACs), layer for layer the model the
    SmartExchange authors' code trains (``resnet18-cifar`` in ``accel.compare.PRUNED_ROW_SHARES``)."""
    return _resnet("resnet18-cifar", (2, 2, 2, 2), bottleneck=False, cifar=True)


def mobilenetv2_cifar() -> Workload:
    """MobileNetV2 for CIFAR-10 as the SmartExchange authors' code builds it (``_mobilenetv2``), layer for layer
    (``mobilenetv2-cifar`` in ``accel.compare.PRUNED_ROW_SHARES``)."""
    return _mobilenetv2("mobilenetv2-cifar", cifar=True)


BUILTIN = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "resnet50": resnet50,
           "mobilenetv2": mobilenetv2, "alexnet-eyeriss": alexnet_eyeriss, "resnet18-cifar": resnet18_cifar,
           "mobilenetv2-cifar": mobilenetv2_cifar}


# --------------------------------------------------------------------------------- from lean models

class _ShapeTracer:
    """Records, in call order, each observed layer's name and input shape (a ``lean.nn.hooks.Observer``)."""

    def __init__(self, names):
        self.names = names  # id(layer) -> its name in the model
        self.calls = []

    def on_forward(self, module, x, y, train):
        self.calls.append((self.names[id(module)], module, x.shape))

    def on_backward(self, module, dy, dx):
        pass


def from_model(model, batch: int = 1, name: str | None = None, w_bits: int = 16, a_bits: int = 16) -> Workload:
    """Trace a lean ``Model``: one LayerShape per conv and linear layer, in execution order.

    The model runs one forward pass on a zero image with an observer on each conv and linear layer (removed
    afterwards, also on error). Weight densities are the model's real fraction of non-zero weights; compressed
    layers report the width of the weights the hardware multiplies by (quantized codes; a SmartExchange layer's
    rebuilt weights at its basis width), their density (a SmartExchange layer: Ce's row density, since only an
    all-zero row of Ce zeroes W), the shift-and-adds that rebuild the weights (``rebuild_adds``), the bits a
    weight takes in DRAM and the buffer (``w_stored_bits``, from the form's ``traffic_bits``: a SmartExchange
    layer's Ce and B travel and are rebuilt next to the PEs; other forms travel at ``w_bits``) and input bit
    widths.

    Parameters
    ----------
    model : lean.nn.Model
        The network; its ``input_shape`` is (h, w, c).
    batch : int
        Batch size the shapes are given at.
    name : str, optional
        Workload name; the model's name by default.
    w_bits, a_bits : int
        Weight and activation widths of layers that do not set their own (dense weights, unquantized inputs).

    Returns
    -------
    Workload
        conv and fc layers only (pooling and element-wise layers are not traced).
    """
    from ..nn import Conv2d, Linear

    layers = [(layer_name, layer) for layer_name, layer in model.net.named_modules()
              if isinstance(layer, (Conv2d, Linear))]
    tracer = _ShapeTracer({id(layer): layer_name for layer_name, layer in reversed(layers)})
    try:
        with ExitStack() as every_block:  # input-adaptive models trace every gated block (``all_run``)
            for module in model.net.modules():
                if getattr(module, "controls_gates", False):
                    every_block.enter_context(module.all_run())
            for _, layer in layers:
                layer.add_observer(tracer)
            model.forward(np.zeros((1, *model.input_shape), np.float32))
    finally:
        for _, layer in layers:
            layer.remove_observer(tracer)
    # a gated block with recorded choices (DFS: ``recorded_options``) runs each of its layers once per option that
    # was taken, for that option's share of the images and at its bit width
    recorded = {f"{name}.": module.recorded_options() for name, module in model.net.named_modules()
                if hasattr(module, "recorded_options")}
    recorded = {prefix: options for prefix, options in recorded.items() if options is not None}
    # a model that recorded the share of each layer's work that ran (DDI: kept channels, halted images)
    fractions = {}
    for module in model.net.modules():
        if hasattr(module, "recorded_fractions"):
            fractions.update(module.recorded_fractions() or {})
    shapes = []
    for layer_name, layer, x_shape in tracer.calls:
        weight = layer.weight()
        density = float(np.count_nonzero(weight)) / weight.size
        if layer.form is not None and layer.form.operand_density() is not None:
            density = layer.form.operand_density()
        # a compressed layer's operands: the width of the weights its form has the hardware multiply by, its input
        # quantization, and the operations that rebuild the weights first (SmartExchange: Ce x B by shift-and-add)
        lw_bits = layer.form.weight_bits() if layer.form is not None else w_bits
        la_bits = layer.input_bits if layer.input_bits is not None else a_bits
        rebuild = layer.form.rebuild_adds() if layer.form is not None else 0
        # and the bits a weight takes on its way from DRAM through the buffer (SmartExchange: Ce and B)
        stored = layer.form.traffic_bits() if layer.form is not None else None
        if isinstance(layer, Conv2d):
            _, h, w, c = x_shape
            shape = LayerShape(layer_name, "conv", batch, c, layer.out_channels, h, w, layer.kernel_size,
                               layer.kernel_size, layer.stride, layer.padding, layer.groups, lw_bits, la_bits,
                               density, rebuild_adds=rebuild, w_stored_bits=stored)
        else:
            shape = LayerShape(layer_name, "fc", batch, layer.in_features, layer.out_features, 1, 1, 1, 1,
                               w_bits=lw_bits, a_bits=la_bits, w_density=density, rebuild_adds=rebuild,
                               w_stored_bits=stored)
        if layer_name in fractions:
            if fractions[layer_name] > 0:  # a layer that never ran is not in the work
                shapes.append(replace(shape, fraction=fractions[layer_name]))
            continue
        options = next((opts for prefix, opts in recorded.items() if layer_name.startswith(prefix)), None)
        if options is None:
            shapes.append(shape)
            continue
        for option, share, bits in options:  # skipped images run nothing here (not listed)
            if bits is None:  # full precision: the layer as it is
                shapes.append(replace(shape, name=f"{layer_name}@{option}", fraction=share))
            else:
                shapes.append(replace(shape, name=f"{layer_name}@{option}", fraction=share, w_bits=bits,
                                      a_bits=bits, w_stored_bits=None))
    return Workload(name or model.name, tuple(shapes))


def from_checkpoint(path: str | Path, batch: int = 1) -> Workload:
    """The workload of the model stored in a lean checkpoint (read by ``lean.nn.checkpoint.load_model``).

    Parameters
    ----------
    path : str or Path
        A ``.h5`` checkpoint; a missing or damaged file raises ``lean.CheckpointError``.
    batch : int
        Batch size the shapes are given at.

    Returns
    -------
    Workload
        Named by the file's stem, with the model's real weight densities and bit widths.
    """
    from ..nn.checkpoint import load_model

    model = load_model(path)
    return from_model(model, batch, name=Path(path).stem)


def from_file(path: str | Path) -> Workload:
    """A workload from a TOML or JSON file of layers.

    TOML: an optional top-level ``name`` and a ``[[layers]]`` list. JSON: ``{"name": ..., "layers": [...]}`` or a
    bare list of layers. Each layer is a table of ``LayerShape`` fields; ``name`` defaults to ``layer<i>``.

    Parameters
    ----------
    path : str or Path
        A ``.toml`` or ``.json`` file (any other suffix is read as JSON).

    Returns
    -------
    Workload
        Named by the file's ``name``, else by its stem.
    """
    path = Path(path)
    if not path.is_file():
        raise HardwareModelError(f"workload file {path} does not exist")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, UnicodeDecodeError
        raise HardwareModelError(f"{path} could not be parsed: {exc}") from exc
    if isinstance(data, list):
        data = {"layers": data}
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
        raise HardwareModelError(f"{path} must hold a non-empty list of layers (a 'layers' list, or in JSON a bare "
                                 "list)")
    known = [f.name for f in fields(LayerShape)]
    layers = []
    for i, entry in enumerate(data["layers"]):
        if not isinstance(entry, dict):
            raise HardwareModelError(f"{path}: layer {i} is not a table of fields")
        unknown = sorted(set(entry) - set(known))
        if unknown:
            raise HardwareModelError(f"{path}: layer {i} has unknown fields {unknown}; known: "
                                     f"{', '.join(sorted(known))}")
        entry = {"name": f"layer{i}", **entry}
        try:
            layers.append(LayerShape(**entry))
        except HardwareModelError as exc:
            raise HardwareModelError(f"{path}: {exc}") from exc
    return Workload(str(data.get("name", path.stem)), tuple(layers))


def from_onnx(path: str | Path) -> Workload:
    """A workload from an ONNX model (``lean hw predict --workload model.onnx``): its Conv, Gemm and MatMul layers
    (with weights) and pooling layers, in graph order, at the shapes ONNX's shape inference gives, with each
    layer's real share of non-zero weights. Needs the ``onnx`` package (``pip install 'lean[onnx]'``).

    A conv's strides and pads must be the same along both axes and on every side (lean's ``LayerShape`` has one
    of each), its dilation 1, its map 2-D and its weights stored in the file; a graph input with a symbolic batch
    dimension is read at batch 1. Operators that do no
    multiply-accumulates with weights (activations, normalization, additions, reshapes) are left out, as for lean's
    own models.

    Parameters
    ----------
    path : str or Path
        A ``.onnx`` file.

    Returns
    -------
    Workload
        Named by the file's stem.
    """
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        raise HardwareModelError("reading an ONNX model needs the onnx package: pip install 'lean[onnx]'") from None
    path = Path(path)
    if not path.is_file():
        raise HardwareModelError(f"workload file {path} does not exist")
    try:
        model = shape_inference.infer_shapes(onnx.load(str(path)))
    except Exception as exc:  # onnx raises DecodeError, ValidationError, InferenceError...: all mean a bad file
        raise HardwareModelError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0]}") from exc
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    shapes = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def shape_of(node, name):
        if name not in shapes:
            raise HardwareModelError(f"{path}: layer {node.name or node.op_type}: the shape of its input {name!r} "
                                     "is unknown (ONNX shape inference could not find it)")
        return shapes[name]

    def one(values, what, node):
        values = list(values)
        if len(set(values)) > 1:
            raise HardwareModelError(f"{path}: layer {node.name or node.op_type}: {what} {values} are not the "
                                     "same on every side and axis; lean's layers take one value for all")
        return int(values[0]) if values else None

    def planar(node, name, shape):
        if len(shape) != 4:
            raise HardwareModelError(f"{path}: layer {node.name or node.op_type}: only 2-D maps (N, C, H, W) are "
                                     f"supported; its input {name!r} has shape {list(shape)}")
        return shape

    layers = []
    for i, node in enumerate(graph.node):
        name = node.name or f"{node.op_type.lower()}{i}"
        a = attrs(node)
        if node.op_type == "Conv":
            if node.input[1] not in weights:
                raise HardwareModelError(f"{path}: layer {name}: its weights are computed in the graph, not stored "
                                         "in it (export with constant folding, or dequantize the weights)")
            w = weights[node.input[1]]
            n, c, h, wd = planar(node, node.input[0], shape_of(node, node.input[0]))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise HardwareModelError(f"{path}: layer {name}: auto_pad is not supported; export explicit pads")
            if one(a.get("dilations", [1, 1]), "dilations", node) != 1:
                raise HardwareModelError(f"{path}: layer {name}: dilated convolutions are not supported")
            layers.append(LayerShape(name, "conv", n=n, c=c, k=int(w.shape[0]), h=h, w=wd, r=int(w.shape[2]),
                                     s=int(w.shape[3]), stride=one(a.get("strides", [1, 1]), "strides", node),
                                     padding=one(a.get("pads", [0, 0, 0, 0]), "pads", node),
                                     groups=int(a.get("group", 1)), w_density=float(np.count_nonzero(w) / w.size)))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            w = weights[node.input[1]]
            if w.ndim != 2:
                continue
            gemm = node.op_type == "Gemm"
            k = w.shape[0] if (gemm and a.get("transB", 0)) else w.shape[1]
            x = shape_of(node, node.input[0])
            if gemm and a.get("transA", 0):   # A given as (features, rows)
                x = tuple(reversed(x))
            layers.append(LayerShape(name, "fc", n=int(np.prod(x[:-1])) if len(x) > 1 else 1, c=int(x[-1]), k=int(k),
                                     w_density=float(np.count_nonzero(w) / w.size)))
        elif node.op_type in ("MaxPool", "AveragePool"):
            n, c, h, wd = planar(node, node.input[0], shape_of(node, node.input[0]))
            kernel = one(a["kernel_shape"], "kernel_shape", node)
            layers.append(LayerShape(name, "pool", n=n, c=c, k=c, h=h, w=wd, r=kernel, s=kernel,
                                     stride=one(a.get("strides", [1, 1]), "strides", node),
                                     padding=one(a.get("pads", [0, 0, 0, 0]), "pads", node), groups=c))
    if not any(layer.kind != "pool" for layer in layers):
        raise HardwareModelError(f"{path}: no Conv, Gemm or MatMul layer with weights in the graph")
    return Workload(path.stem, tuple(layers))


def _lean_net(name, spec):
    """The workload of lean's net ``name`` at its default input (``lean.nets.default_input``), 10 classes."""
    from ..nets.registry import build, default_input

    model = build(name, input_shape=default_input(name), num_classes=10)
    return from_model(model, name=spec)


def _unknown(spec):
    from ..nets.registry import NETS

    return HardwareModelError(
        f"unknown workload {spec!r}; built in (ImageNet sizes but the -cifar ones): {', '.join(BUILTIN)}; "
        f"lean nets (CIFAR and MNIST sizes) as {NET_PREFIX}NAME: {', '.join(NETS)} (also resnet<depth>, "
        f"preresnet<depth>; {NET_PREFIX} may be left out for names not built in, so {NET_PREFIX}vgg16 is lean's "
        "CIFAR VGG-16 and vgg16 the ImageNet one); or a .h5 checkpoint, a .toml/.json layer file, or an .onnx "
        "model")


def load(spec: "str | Path | Workload", batch: int | None = None) -> Workload:
    """A workload from a spec: a built-in name, a lean net, a checkpoint, a TOML/JSON layer file or an ONNX model.

    Names are looked up in this order: ``net:NAME`` is lean's net ``NAME`` (``lean.nets``) at its default input
    (28x28x1 for mlp and lenet5, else 32x32x3); a ``BUILTIN`` name is the ImageNet reference network (``vgg16``
    and ``mobilenetv2`` name both, and the built-in wins); ``.h5``/``.hdf5`` is a checkpoint; ``.toml``/``.json``
    a layer file; ``.onnx`` an ONNX model (``from_onnx``); any other lean net name (``resnet20``) is that net, as
    with ``net:``.

    Parameters
    ----------
    spec : str, Path or Workload
        What to load (a ``Workload`` is returned as it is, at ``batch`` if given).
    batch : int, optional
        Batch size; by default 1 (built-in and lean nets) or the file's.

    Returns
    -------
    Workload
        Named by the built-in or net name (``net:NAME`` keeps its prefix), the file's name, or its stem.
    """
    if isinstance(spec, Workload):
        workload = spec
    elif isinstance(spec, str) and spec.startswith(NET_PREFIX):
        net = spec[len(NET_PREFIX):]
        try:
            workload = _lean_net(net, spec)
        except ConfigError as exc:
            raise HardwareModelError(f"unknown workload {spec!r}: {exc}") from exc
    elif spec in BUILTIN:
        workload = BUILTIN[spec]()
    elif str(spec).endswith((".h5", ".hdf5")):
        workload = from_checkpoint(spec)
    elif str(spec).endswith((".toml", ".json")):
        workload = from_file(spec)
    elif str(spec).endswith(".onnx"):
        workload = from_onnx(spec)
    else:
        try:
            workload = _lean_net(str(spec), None)
        except ConfigError:
            raise _unknown(spec) from None
    return workload.with_batch(batch) if batch is not None else workload


def catalog() -> list[dict[str, Any]]:
    """The built-in reference networks (the rows of ``lean hw workloads --json``).

    Returns
    -------
    list of dict
        One per ``BUILTIN`` name: ``name``, ``layers`` (conv and fc layers), ``macs`` (at batch 1) and
        ``input`` ([c, h, w]).
    """
    rows = []
    for name, make in BUILTIN.items():
        w = make()
        rows.append({"name": name, "layers": len(w.compute_layers()), "macs": w.macs,
                     "input": [w.layers[0].c, w.layers[0].h, w.layers[0].w]})
    return rows
