"""Workloads: the per-layer shapes, bit widths and densities that the hardware models cost.

A ``Workload`` is an ordered tuple of ``LayerShape`` (the field names of DESIGN.md). It is built

- from a lean model and an input shape (``from_model``: conv and linear layers traced in execution order),
- from a checkpoint (``from_checkpoint``: its real shapes and the real fraction of non-zero weights),
- from a TOML or JSON file listing layers by these field names (``from_file``), or
- from the built-in reference networks at ImageNet sizes (``BUILTIN``: AlexNet with its grouped convs, VGG-16,
  ResNet-18, ResNet-50, MobileNetV2) and lean's own CIFAR nets (``load("resnet20")``),

so the hardware rooms never need a trained model. Shapes here use the hardware convention: ``h, w`` are the
input height and width, ``p, q`` the output ones, ``c`` input channels, ``k`` output channels.
"""

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

KINDS = ("conv", "fc", "pool")


@dataclass(frozen=True)
class LayerShape:
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"layer {self.name!r}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        for f in ("n", "c", "k", "h", "w", "r", "s", "stride", "groups", "w_bits", "a_bits"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"layer {self.name!r}: {f} must be a positive integer; got {v!r}")
        if not isinstance(self.padding, int) or self.padding < 0:
            raise ValueError(f"layer {self.name!r}: padding must be a non-negative integer; got {self.padding!r}")
        if self.c % self.groups or self.k % self.groups:
            raise ValueError(f"layer {self.name!r}: groups={self.groups} must divide c={self.c} and k={self.k}")
        for f in ("w_density", "a_density"):
            v = getattr(self, f)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"layer {self.name!r}: {f} must lie in [0, 1]; got {v}")
        if self.p < 1 or self.q < 1:
            raise ValueError(f"layer {self.name!r}: a {self.r}x{self.s} window with stride {self.stride} and "
                             f"padding {self.padding} does not fit a {self.h}x{self.w} input")

    @property
    def p(self):
        return (self.h + 2 * self.padding - self.r) // self.stride + 1

    @property
    def q(self):
        return (self.w + 2 * self.padding - self.s) // self.stride + 1

    @property
    def c_per_group(self):
        return self.c // self.groups

    @property
    def macs(self):
        """Multiply-accumulates (dense); pooling layers have none."""
        if self.kind == "pool":
            return 0
        return self.n * self.k * self.p * self.q * self.c_per_group * self.r * self.s

    @property
    def weight_count(self):
        return 0 if self.kind == "pool" else self.k * self.c_per_group * self.r * self.s

    @property
    def input_count(self):
        return self.n * self.c * self.h * self.w

    @property
    def output_count(self):
        return self.n * self.k * self.p * self.q

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class Workload:
    name: str
    layers: tuple

    @property
    def macs(self):
        return sum(layer.macs for layer in self.layers)

    def with_batch(self, n):
        return Workload(self.name, tuple(replace(layer, n=int(n)) for layer in self.layers))

    def compute_layers(self):
        """The layers that do multiply-accumulates (conv and fc)."""
        return tuple(layer for layer in self.layers if layer.kind != "pool")

    def to_dict(self):
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

    def global_pool(self):
        self.h = self.w = 1

    def done(self):
        return Workload(self.name, tuple(self.layers))


def alexnet():
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


def vgg16():
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


def _resnet(name, blocks, bottleneck):
    net = _Net(name, 224, 224, 3)
    net.conv("conv1", 64, 7, stride=2, padding=3)
    net.pool("pool1", 3, 2, padding=1)
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        for b in range(count):
            stride = 2 if (b == 0 and stage > 1) else 1
            c_in, h_in, w_in = net.c, net.h, net.w
            out = width * 4 if bottleneck else width
            prefix = f"layer{stage}.{b}"
            if bottleneck:
                net.conv(f"{prefix}.conv1", width, 1)
                net.conv(f"{prefix}.conv2", width, 3, stride=stride, padding=1)
                net.conv(f"{prefix}.conv3", out, 1)
            else:
                net.conv(f"{prefix}.conv1", width, 3, stride=stride, padding=1)
                net.conv(f"{prefix}.conv2", width, 3, padding=1)
            if stride != 1 or c_in != out:
                h_out, w_out, c_out = net.h, net.w, net.c
                net.h, net.w, net.c = h_in, w_in, c_in
                net.conv(f"{prefix}.downsample", out, 1, stride=stride)
                net.h, net.w, net.c = h_out, w_out, c_out
    net.global_pool()
    net.fc("fc", 1000)
    return net.done()


def resnet18():
    """ResNet-18 (He et al., 2016) at 224x224 (1.8 G MACs)."""
    return _resnet("resnet18", (2, 2, 2, 2), bottleneck=False)


def resnet50():
    """ResNet-50 (He et al., 2016) at 224x224 (4.1 G MACs)."""
    return _resnet("resnet50", (3, 4, 6, 3), bottleneck=True)


def mobilenetv2():
    """MobileNetV2 (Sandler et al., 2018), width 1.0, at 224x224 (about 300 M MACs)."""
    net = _Net("mobilenetv2", 224, 224, 3)
    net.conv("conv1", 32, 3, stride=2, padding=1)
    i = 0
    for t, k, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for rep in range(n):
            hidden = net.c * t
            if t != 1:
                net.conv(f"block{i}.expand", hidden, 1)
            net.conv(f"block{i}.depthwise", hidden, 3, stride=s if rep == 0 else 1, padding=1, groups=hidden)
            net.conv(f"block{i}.project", k, 1)
            i += 1
    net.conv("conv_last", 1280, 1)
    net.global_pool()
    net.fc("classifier", 1000)
    return net.done()


BUILTIN = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "resnet50": resnet50,
           "mobilenetv2": mobilenetv2}


# --------------------------------------------------------------------------------- from lean models

def from_model(model, batch=1, name=None, w_bits=16, a_bits=16):
    """Trace a lean ``Model``: one LayerShape per conv and linear layer, in execution order.

    Weight densities are the model's real fraction of non-zero weights; compressed layers report their code
    widths (power-of-two codes, quantized weights) and input bit widths.
    """
    import numpy as np

    from ..nn import Conv2d, Linear

    traced = []
    originals = {}
    for layer_name, layer in model.net.named_modules():
        if isinstance(layer, (Conv2d, Linear)):
            originals[layer] = layer.forward

            def record(x, train=False, layer=layer, layer_name=layer_name):
                traced.append((layer_name, layer, x.shape))
                return originals[layer](x, train)

            layer.forward = record
    try:
        model.forward(np.zeros((1, *model.input_shape), np.float32))
    finally:
        for layer, fwd in originals.items():
            layer.forward = fwd
    shapes = []
    for layer_name, layer, x_shape in traced:
        weight = layer.weight()
        density = float(np.count_nonzero(weight)) / weight.size
        if layer.form is not None and layer.form.operand_density() is not None:
            density = layer.form.operand_density()
        # a compressed layer's operands: its form's weight code width and its input quantization
        lw_bits = layer.form.weight_bits() if layer.form is not None else w_bits
        la_bits = layer.input_bits if layer.input_bits is not None else a_bits
        if isinstance(layer, Conv2d):
            _, h, w, c = x_shape
            shapes.append(LayerShape(layer_name, "conv", batch, c, layer.out_channels, h, w, layer.kernel_size,
                                     layer.kernel_size, layer.stride, layer.padding, layer.groups, lw_bits, la_bits,
                                     density))
        else:
            shapes.append(LayerShape(layer_name, "fc", batch, layer.in_features, layer.out_features, 1, 1, 1, 1,
                                     w_bits=lw_bits, a_bits=la_bits, w_density=density))
    return Workload(name or model.name, tuple(shapes))


def from_checkpoint(path, batch=1):
    from ..train import load_model

    model = load_model(path)
    return from_model(model, batch, name=Path(path).stem)


def from_file(path):
    """A workload from a TOML or JSON file: a top-level ``name`` and a ``layers`` list of LayerShape fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"workload file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as exc:
        raise ValueError(f"{path} could not be parsed: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
        raise ValueError(f"{path} must hold a non-empty 'layers' list")
    known = {f.name for f in fields(LayerShape)}
    layers = []
    for i, entry in enumerate(data["layers"]):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: layer {i} is not a table of fields")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"{path}: layer {i} has unknown fields {unknown}; known: {', '.join(sorted(known))}")
        entry = {"name": f"layer{i}", **entry}
        layers.append(LayerShape(**entry))
    return Workload(data.get("name", path.stem), tuple(layers))


def load(spec, batch=None):
    """A workload from a built-in name, a lean net name (CIFAR sizes), a checkpoint, or a TOML/JSON file."""
    if spec in BUILTIN:
        workload = BUILTIN[spec]()
    elif str(spec).endswith((".h5", ".hdf5")):
        workload = from_checkpoint(spec)
    elif str(spec).endswith((".toml", ".json")):
        workload = from_file(spec)
    else:
        from ..nets import NETS, build

        try:
            shape = (28, 28, 1) if spec in ("mlp", "lenet5") else (32, 32, 3)
            workload = from_model(build(spec, input_shape=shape, num_classes=10))
        except ValueError:
            raise ValueError(f"unknown workload {spec!r}; built in: {', '.join(BUILTIN)}; lean nets: "
                             f"{', '.join(NETS)}; or a .h5 checkpoint or .toml/.json file") from None
    return workload.with_batch(batch) if batch is not None else workload
