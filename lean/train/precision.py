"""bf16 training (``lean train --precision bf16``): convolutions multiply bf16 operands, sums and master weights
stay float32.

What runs in bf16: the products of every convolution that runs on the Winograd kernels (3x3 stride-1 layers: 16
of ResNet-20's 19 convolutions), in all three passes (forward, input gradient, weight gradient). Their operands
are the transform-domain values V and U (and dM for the weight gradient), rounded to bf16 as the transforms
store them and held as uint16; the products sum in float32 (``vdpbf16ps`` where the CPU has AVX-512 BF16,
``lean.kernels.bf16``; elsewhere the same arithmetic emulated with FMAs, slower than float32). Everything else
stays float32: activations between layers, batch norm, the other convolutions (the first one, the strided
ones: their kernels have no bf16 path), the classifier, the weights the optimizer updates.

How this differs from mixed precision as PyTorch runs it on a CPU (``torch.autocast("cpu", torch.bfloat16)``):
autocast rounds a convolution's inputs and weights to bf16 and stores its output in bf16, so activations travel
in bf16 between layers (half the memory traffic); lean rounds inside the Winograd domain and keeps float32
activations. Rounding in the transform domain loses more than rounding the inputs: the relative rms error of an
F(4x4) output is ~2.4e-2 against ~3e-3 for bf16 inputs (``benchmarks/bf16_study.py``), which is why the accuracy
check of issue 12 (three seeds against float32's spread) decides whether this mode is usable.

The method installs an operand hook (``lean.nn.hooks.Bfloat16Products``) on every conv layer that passes
``precision="bf16"`` to the layer's own products; the training-energy meter charges the layers that ran bf16
products a 16-bit float multiply and a 32-bit float add per MAC (``lean.train.energy.mac_energy_pj``) and their
operands' SRAM reads at 16 bits: the meter costs an accelerator that holds the operands in bf16, not lean's float32
activations.

The test accuracy a bf16 run reports is measured with bf16 products, as it trained; the checkpoint holds float32
weights, and ``lean eval`` of it runs float32 (``--precision`` is a training setting). ``--precision float32``
is the default and leaves no trace in the checkpoint.
"""

import warnings

from ..kernels import bf16
from ..kernels import conv as conv_kernels
from ..nn.hooks import Bfloat16Products
from ..nn.layers import Conv2d
from .methods import LayerOperandMethod


class Bfloat16Training(LayerOperandMethod):
    """Every conv layer's products on bf16 operands where its kernel has a bf16 path (see the module
    docstring)."""

    name = "precision"
    label = "bf16 training"
    layer_types = (Conv2d,)

    def __init__(self):
        super().__init__()
        self._layers = []

    def make_hook(self, name, index, layer):
        self._layers.append(layer)
        return Bfloat16Products()

    def install(self, model):
        self._layers = []
        super().install(model)
        will_run = [layer for layer in self._layers if conv_kernels.conv2d_method(
            layer.in_channels, layer.out_channels, layer.groups, layer.stride, kernel_size=layer.kernel_size,
            padding=layer.padding) in conv_kernels.BF16_METHODS]
        if not will_run:
            warnings.warn("--precision bf16: no conv layer of this net runs on a kernel with bf16 products here "
                          "(3x3 stride-1 layers, channels a multiple of 8, a CPU with AVX2 or AVX-512): it trains "
                          "in float32", stacklevel=2)
        elif not bf16.BF16_AVAILABLE:
            warnings.warn("--precision bf16: this CPU has no AVX-512 BF16; the bf16 products are emulated with "
                          "float32 FMAs (the same sums, slower than float32)", stacklevel=2)

    def summary(self):
        layers = self._layers
        ran = sum(1 for layer in layers if layer.last_method in conv_kernels.BF16_METHODS)
        return {"precision": "bf16", "bf16_products": "vdpbf16ps" if bf16.BF16_AVAILABLE else "emulated",
                "bf16_layers": ran, "conv_layers": len(layers)}

