"""The network families: MLP, LeNet-5, VGG (CIFAR, with BN), ResNet and PreResNet (CIFAR), DenseNet and
DenseNet-BC (CIFAR), MobileNetV2 (CIFAR).

Activations are channels-last. "BN + ReLU" is written ``BatchNorm(c, relu=True)``, one fused kernel. Every
builder takes keyword arguments only and returns an initialized ``lean.nn.Model``.
"""

from ..errors import ConfigError
from ..nn import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    DenseLayer,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool2d,
    Model,
    ReLU,
    ReLU6,
    Residual,
    Sequential,
    ShortcutPadA,
    kaiming_init,
)


def _check_input(input_shape, num_classes):
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be (h, w, c) with positive sizes; got {input_shape}")
    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be >= 2; got {num_classes}")


def _finish(net, input_shape, num_classes, name, seed):
    return Model(kaiming_init(net, seed), input_shape, num_classes, name)


def mlp(*, input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, seed: int = 0,
        hidden: tuple[int, ...] = (256, 256)) -> Model:
    """A multi-layer perceptron: flatten, then a Linear + ReLU per hidden width, then the classifier.

    Parameters
    ----------
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    hidden : tuple of int
        Widths of the hidden layers.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    layers, width = [("flatten", Flatten())], input_shape[0] * input_shape[1] * input_shape[2]
    for i, h in enumerate(hidden):
        layers += [(f"fc{i + 1}", Linear(width, h)), (f"relu{i + 1}", ReLU())]
        width = h
    layers.append(("classifier", Linear(width, num_classes)))
    return _finish(Sequential(layers), input_shape, num_classes, "mlp", seed)


def lenet5(*, input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, seed: int = 0) -> Model:
    """LeCun et al. (1998) with ReLU and max pooling: conv5x5(6) pool conv5x5(16) pool fc120 fc84 fc.

    At 28x28 the first conv pads by 2 (the classic 32x32 field), giving the standard 61,706 parameters. On inputs
    too small for an unpadded second conv (e.g. the 8x8 digits) it pads by 2 as well.

    Parameters
    ----------
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    h, w, c = input_shape
    h2, w2 = h // 2, w // 2
    pad2 = 0 if min(h2, w2) >= 10 else 2
    h3, w3 = (h2 + 2 * pad2 - 4) // 2, (w2 + 2 * pad2 - 4) // 2
    if min(h3, w3) < 1:
        raise ConfigError(f"lenet5 needs inputs of at least 4x4; got {h}x{w}")
    net = Sequential([
        ("conv1", Conv2d(c, 6, 5, padding=2, bias=True)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
        ("conv2", Conv2d(6, 16, 5, padding=pad2, bias=True)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
        ("flatten", Flatten()),
        ("fc1", Linear(16 * h3 * w3, 120)), ("relu3", ReLU()),
        ("fc2", Linear(120, 84)), ("relu4", ReLU()),
        ("classifier", Linear(84, num_classes)),
    ])
    return _finish(net, input_shape, num_classes, "lenet5", seed)


_VGG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg(*, depth: int = 16, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, seed: int = 0,
        width: float = 1.0) -> Model:
    """VGG for CIFAR with BN (as in network slimming): 3x3 convs, BN+ReLU, max pools, global pool, one FC.

    Pools that would shrink the map below 1x1 (small inputs such as 28x28) are left out.

    Parameters
    ----------
    depth : int
        11 or 16 (Simonyan & Zisserman, ICLR 2015, Table 1, configurations A and D).
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    width : float
        Multiplier of every conv's channels (at least 1 channel each).

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    if depth not in _VGG:
        raise ConfigError(f"vgg depth must be one of {sorted(_VGG)}; got {depth}")
    layers, c, size = [], input_shape[2], min(input_shape[:2])
    conv_i = 0
    for item in _VGG[depth]:
        if item == "M":
            if size >= 2:
                layers.append((f"pool{len(layers)}", MaxPool2d(2)))
                size //= 2
            continue
        k = max(1, int(round(item * width)))
        conv_i += 1
        layers += [(f"conv{conv_i}", Conv2d(c, k, 3, padding=1)), (f"bn{conv_i}", BatchNorm(k, relu=True))]
        c = k
    layers += [("pool", GlobalAvgPool()), ("classifier", Linear(c, num_classes))]
    return _finish(Sequential(layers), input_shape, num_classes, f"vgg{depth}", seed)


def _shortcut(c_in, c_out, stride, kind):
    if stride == 1 and c_in == c_out:
        return None
    if kind == "a":
        return ShortcutPadA(c_in, c_out, stride)
    return Sequential([("conv", Conv2d(c_in, c_out, 1, stride=stride)), ("bn", BatchNorm(c_out))])


def _scaled(widths, width):
    if not width > 0:
        raise ConfigError(f"width multiplier must be > 0; got {width}")
    return tuple(max(1, int(round(w * width))) for w in widths)


def resnet(*, depth: int = 20, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10,
           seed: int = 0, shortcut: str = "a", widths: tuple[int, int, int] = (16, 32, 64),
           width: float = 1.0) -> Model:
    """ResNet for CIFAR (He et al., 2016): depth = 6n + 2, three stages of n basic blocks.

    ``shortcut="a"`` (parameter-free, the paper's CIFAR choice) or ``"b"`` (1x1 conv + BN projection);
    ``width`` multiplies the stage widths.

    Parameters
    ----------
    depth : int
        6n + 2 (20, 32, 44, 56, 110, ...), He et al., CVPR 2016, section 4.2.
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    shortcut : str
        ``"a"`` or ``"b"``: the shortcut where a stage changes width and resolution (section 3.3's options).
    widths : tuple of int
        Channels of the three stages.
    width : float
        Multiplier of ``widths``.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    widths = _scaled(widths, width)
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"resnet depth must be 6n + 2 (20, 32, 44, 56, 74, 110, ...); got {depth}")
    if shortcut not in ("a", "b"):
        raise ConfigError(f"shortcut must be 'a' or 'b'; got {shortcut!r}")
    n = (depth - 2) // 6
    layers = [("conv1", Conv2d(input_shape[2], widths[0], 3, padding=1)), ("bn1", BatchNorm(widths[0], relu=True))]
    c = widths[0]
    for stage, k in enumerate(widths):
        blocks = []
        for b in range(n):
            stride = 2 if (b == 0 and stage > 0) else 1
            body = Sequential([
                ("conv1", Conv2d(c, k, 3, stride=stride, padding=1)), ("bn1", BatchNorm(k, relu=True)),
                ("conv2", Conv2d(k, k, 3, padding=1)), ("bn2", BatchNorm(k)),
            ])
            blocks.append((str(b), Residual(body, _shortcut(c, k, stride, shortcut), relu_after=True)))
            c = k
        layers.append((f"stage{stage + 1}", Sequential(blocks)))
    layers += [("pool", GlobalAvgPool()), ("classifier", Linear(c, num_classes))]
    return _finish(Sequential(layers), input_shape, num_classes, f"resnet{depth}", seed)


def preresnet(*, depth: int = 20, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10,
              seed: int = 0, widths: tuple[int, int, int] = (16, 32, 64), width: float = 1.0) -> Model:
    """Pre-activation ResNet (He et al., 2016b): BN-ReLU before each conv; identity paths stay clean.

    depth = 9n + 2 uses bottleneck blocks (4x expansion, as network slimming's PreResNet-164), otherwise
    depth = 6n + 2 uses basic blocks. Projection shortcuts (1x1 conv) act on the block input. ``width``
    multiplies the stage widths.

    Parameters
    ----------
    depth : int
        9n + 2 >= 29 (bottleneck blocks; a depth that is also 6n + 2, such as 56, 110 or 164, gets these),
        or 6n + 2 (basic blocks).
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    widths : tuple of int
        Channels of the three stages (with bottleneck blocks the inner ones: a block outputs 4x as many).
    width : float
        Multiplier of ``widths``.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    widths = _scaled(widths, width)
    if depth >= 11 and (depth - 2) % 9 == 0 and depth >= 29:
        n, bottleneck = (depth - 2) // 9, True
    elif depth >= 8 and (depth - 2) % 6 == 0:
        n, bottleneck = (depth - 2) // 6, False
    else:
        raise ConfigError(f"preresnet depth must be 6n + 2 (basic) or 9n + 2 >= 29 (bottleneck); got {depth}")
    expansion = 4 if bottleneck else 1
    layers = [("conv1", Conv2d(input_shape[2], widths[0], 3, padding=1))]
    c = widths[0]
    for stage, k in enumerate(widths):
        blocks = []
        for b in range(n):
            stride = 2 if (b == 0 and stage > 0) else 1
            out = k * expansion
            if bottleneck:
                body = Sequential([
                    ("bn1", BatchNorm(c, relu=True)), ("conv1", Conv2d(c, k, 1)),
                    ("bn2", BatchNorm(k, relu=True)), ("conv2", Conv2d(k, k, 3, stride=stride, padding=1)),
                    ("bn3", BatchNorm(k, relu=True)), ("conv3", Conv2d(k, out, 1)),
                ])
            else:
                body = Sequential([
                    ("bn1", BatchNorm(c, relu=True)), ("conv1", Conv2d(c, k, 3, stride=stride, padding=1)),
                    ("bn2", BatchNorm(k, relu=True)), ("conv2", Conv2d(k, k, 3, padding=1)),
                ])
            proj = None if (stride == 1 and c == out) else Conv2d(c, out, 1, stride=stride)
            blocks.append((str(b), Residual(body, proj)))
            c = out
        layers.append((f"stage{stage + 1}", Sequential(blocks)))
    layers += [("bn", BatchNorm(c, relu=True)), ("pool", GlobalAvgPool()), ("classifier", Linear(c, num_classes))]
    return _finish(Sequential(layers), input_shape, num_classes, f"preresnet{depth}", seed)


def densenet(*, depth: int = 40, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10,
             seed: int = 0, growth: int = 12, bottleneck: bool = False, compression: float = 1.0,
             width: float = 1.0) -> Model:
    """DenseNet for CIFAR (Huang et al., CVPR 2017, section 3 and Table 2): three dense blocks, each layer adding
    ``growth`` channels to all before it, with transitions (BN-ReLU, 1x1 conv, 2x2 average pool) between them.

    DenseNet (``bottleneck=False``): depth = 3n + 4, a layer is BN-ReLU-conv3x3, the stem has 16 channels.
    DenseNet-BC (``bottleneck=True``, ``compression=0.5``): depth = 6n + 4, a layer is BN-ReLU-conv1x1 (4 x
    growth)-BN-ReLU-conv3x3, the stem has 2 x growth channels and each transition keeps ``compression`` of the
    channels. DenseNet-40 (k=12) has 1.0 M parameters and DenseNet-BC-100 (k=12) 0.8 M at 10 classes, as in the
    paper's Table 2. Pools that would shrink the map below 1x1 are left out.

    Parameters
    ----------
    depth : int
        3n + 4 (plain) or 6n + 4 (bottleneck).
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    growth : int
        Channels each layer adds (k).
    bottleneck : bool
        BC's 1x1 bottleneck in each layer.
    compression : float
        In (0, 1]: share of the channels a transition keeps.
    width : float
        Multiplier of the growth rate.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)
    per = 6 if bottleneck else 3
    if depth < per + 4 or (depth - 4) % per:
        raise ConfigError(f"densenet{'-bc' if bottleneck else ''} depth must be {per}n + 4; got {depth}")
    if not 0.0 < compression <= 1.0:
        raise ConfigError(f"densenet compression must be in (0, 1]; got {compression}")
    k = _scaled((growth,), width)[0]
    n = (depth - 4) // per
    c = 2 * k if bottleneck else 16
    layers = [("conv1", Conv2d(input_shape[2], c, 3, padding=1))]
    h, w = input_shape[0], input_shape[1]
    for block in range(3):
        dense = []
        for i in range(n):
            body = [("bn1", BatchNorm(c, relu=True))]
            if bottleneck:
                body += [("conv1", Conv2d(c, 4 * k, 1)), ("bn2", BatchNorm(4 * k, relu=True)),
                         ("conv2", Conv2d(4 * k, k, 3, padding=1))]
            else:
                body += [("conv1", Conv2d(c, k, 3, padding=1))]
            dense.append((str(i), DenseLayer(Sequential(body))))
            c += k
        layers.append((f"dense{block + 1}", Sequential(dense)))
        if block < 2:
            out = max(1, int(c * compression))
            transition = [("bn", BatchNorm(c, relu=True)), ("conv", Conv2d(c, out, 1))]
            if min(h, w) >= 2:
                transition.append(("pool", AvgPool2d(2)))
                h, w = h // 2, w // 2
            layers.append((f"transition{block + 1}", Sequential(transition)))
            c = out
    layers += [("bn", BatchNorm(c, relu=True)), ("pool", GlobalAvgPool()), ("classifier", Linear(c, num_classes))]
    name = f"densenet{'bc' if bottleneck else ''}{depth}"
    return _finish(Sequential(layers), input_shape, num_classes, name, seed)


# (expansion t, channels c, repeats n, first stride s); CIFAR keeps stride 1 in the stem and the 24-channel stage
_MOBILENETV2 = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]


def mobilenetv2(*, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, seed: int = 0,
                width: float = 1.0) -> Model:
    """MobileNetV2 (Sandler et al., 2018) at CIFAR scale: inverted residuals, depthwise 3x3, linear bottlenecks.

    The stages are the paper's Table 2 (CVPR 2018), with stride 1 in the stem and in the 24-channel stage.

    Parameters
    ----------
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier, >= 2.
    seed : int
        Seed of ``kaiming_init``.
    width : float
        Multiplier of the channels (rounded to multiples of 8, at least 8); the last conv keeps 1,280 channels
        unless ``width`` > 1.

    Returns
    -------
    Model
        Initialized; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    _check_input(input_shape, num_classes)

    def ch(v):
        return max(8, int(round(v * width / 8)) * 8)

    c = ch(32)
    layers = [("conv1", Conv2d(input_shape[2], c, 3, padding=1)), ("bn1", BatchNorm(c)), ("relu1", ReLU6())]
    i = 0
    for t, k, n, s in _MOBILENETV2:
        k = ch(k)
        for rep in range(n):
            stride = s if rep == 0 else 1
            hidden = c * t
            body = []
            if t != 1:
                body += [("expand", Conv2d(c, hidden, 1)), ("bn1", BatchNorm(hidden)), ("relu1", ReLU6())]
            body += [("depthwise", Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)),
                     ("bn2", BatchNorm(hidden)), ("relu2", ReLU6()),
                     ("project", Conv2d(hidden, k, 1)), ("bn3", BatchNorm(k))]
            body = Sequential(body)
            block = Residual(body, None) if (stride == 1 and c == k) else body
            layers.append((f"block{i}", block))
            i += 1
            c = k
    last = max(1280, ch(1280)) if width > 1.0 else 1280
    layers += [("conv_last", Conv2d(c, last, 1)), ("bn_last", BatchNorm(last)), ("relu_last", ReLU6()),
               ("pool", GlobalAvgPool()), ("classifier", Linear(last, num_classes))]
    return _finish(Sequential(layers), input_shape, num_classes, "mobilenetv2", seed)


__all__ = ["ShortcutPadA", "densenet", "lenet5", "mlp", "mobilenetv2", "preresnet", "resnet", "vgg"]
