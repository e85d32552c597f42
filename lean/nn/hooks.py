"""How training methods change or watch layers, without replacing their methods: operand hooks and observers.

Two documented doors, and the only ones a method uses:

- **Operand hook** (``OperandHook``), conv and linear layers only: ``layer.set_operand_hook(hook)`` makes the layer
  call ``hook.forward(layer, x, train)`` and ``hook.backward(layer, dy)`` in place of its own products. A hook
  changes *how* the layer multiplies (quantized operands, predicted gradients, per-input bit widths) and keeps the
  layer's contract: ``forward`` returns ``y`` and keeps what its ``backward`` needs; ``backward`` accumulates into
  ``layer.grads`` and returns ``dx`` (None when ``layer.input_grad`` is off). It also says at what precision the
  layer ran (``precision``, ``grad_weight_costs``), which is what the training-energy meter charges. A layer has
  at most one operand hook; the layer itself checks its input before calling it. Used by predictive sign
  gradients and low-precision training (``lean.train.e2train``), and by bf16 training (``Bfloat16Products``,
  installed by ``lean.train.precision``).
- **Observer** (``Observer``), any module that reports its calls (conv, linear, skip-gated blocks):
  ``module.add_observer(obs)`` makes the module call ``obs.on_forward(module, x, y, train)`` after each forward
  and ``obs.on_backward(module, dy, dx)`` after each backward. Observers watch and count; they change nothing.
  Used by the training-energy meter (``lean.train.energy``) and by ``lean.hw.workload.from_model`` to trace
  layer shapes.
"""

from dataclasses import dataclass

from ..kernels.conv import BF16_METHODS

FLOAT32 = ("float", 32)
BFLOAT16 = ("bfloat", 16)


@dataclass(frozen=True)
class LayerPrecision:
    """Operand precisions of a layer's three products, each a pair of ``("float", bits)``, ``("int", bits)`` or
    ``("bfloat", 16)``.

    ``forward``: (input, weight); ``grad_input``: (output gradient, weight); ``grad_weight``: (output gradient,
    input). Defaults are float32 throughout.
    """

    forward: tuple = (FLOAT32, FLOAT32)
    grad_input: tuple = (FLOAT32, FLOAT32)
    grad_weight: tuple = (FLOAT32, FLOAT32)


class OperandHook:
    """Replaces a conv or linear layer's products; the defaults run the layer's own, in float32."""

    def forward(self, layer, x, train=False):
        """The layer's output for its (already checked) input ``x``; keep what ``backward`` needs if ``train``."""
        return layer.product_forward(x, train)

    def backward(self, layer, dy):
        """Accumulate the parameter gradients into ``layer.grads``; return ``dx`` (None if not ``input_grad``)."""
        return layer.product_backward(dy)

    def precision(self, layer) -> LayerPrecision:
        """Operand precisions of the layer's products under this hook."""
        return LayerPrecision()

    def grad_weight_costs(self, layer):
        """``[(operand pair, fraction of the weight-gradient MACs), ...]`` of the last backward pass."""
        return [(self.precision(layer).grad_weight, 1.0)]


class Observer:
    """Told about every call of the modules it was added to; both methods are no-ops by default."""

    def on_forward(self, module, x, y, train):
        """After ``module.forward(x, train)`` returned ``y``."""

    def on_backward(self, module, dy, dx):
        """After ``module.backward(dy)`` returned ``dx`` (None when no input gradient was computed)."""


class Bfloat16Products(OperandHook):
    """A conv layer's products on bf16 operands with float32 sums, where the kernel that runs has a bf16 path
    (``lean.kernels.conv.BF16_METHODS``; the others stay float32 and say so in ``precision``)."""

    def forward(self, layer, x, train=False):
        return layer.product_forward(x, train, precision="bf16")

    def precision(self, layer):
        if layer.last_method in BF16_METHODS:
            pair = (BFLOAT16, BFLOAT16)
            return LayerPrecision(forward=pair, grad_input=pair, grad_weight=pair)
        return LayerPrecision()
