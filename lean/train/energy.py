"""Training energy: what a run actually executed, costed with ``lean.hw.tech``'s per-action energies.

Every efficient-training method in lean (skipped mini-batches, skipped residual blocks, low-precision arithmetic,
narrower networks) shows up in one number, ``training_energy_j``, measured the same way for every run:

- **Arithmetic.** Each conv and linear layer call that really runs is counted: its multiply-accumulates (MACs)
  in the forward pass, again for the weight gradient, and again for the input gradient where one is computed
  (not for the first layer). A MAC costs a multiply and an add at the precision the layer ran at: float32 is
  Horowitz's 32-bit FP multiply + add (3.7 + 0.9 pJ at 45 nm); a b1 x b2-bit integer MAC is the 8-bit multiplier
  scaled by b1 * b2 / 64 plus a 32-bit add (``lean.hw.tech``'s bits^2 / linear rules). A layer in a low-precision
  mode says so through its operand hook (``precision``, a ``lean.nn.hooks.LayerPrecision``); predictive sign
  gradients add their predictor and fallback MACs (``grad_weight_costs``).
- **Data movement.** Every tensor such a layer call reads or writes (input, weights, output in the forward
  pass; output gradient, saved input, weights, input and weight gradients in the backward pass) crosses an
  on-chip SRAM once, at its bit width (Horowitz's 8 kB SRAM read, 5 pJ per 32 bits, scaled linearly). Each
  optimizer step moves every parameter, its gradient and its momentum through DRAM once (640 pJ per 32 bits).
- **Not counted:** batch norm, ReLU, pooling and residual adds (a few per cent of the arithmetic of these nets),
  data loading, evaluation passes, and control. The numbers compare runs; they are not a chip's measured joules.

``EnergyMeter`` is a training method (``lean.train.methods``) that every ``Trainer`` runs: it observes the model's
conv and linear layers and skip gates (``lean.nn.hooks.Observer``) and keeps totals per precision; a layer's
operand hook (predictive sign gradients, low-precision training) says at what precision it ran. ``report()``
gives the breakdown in joules.
"""

import numpy as np

from ..hw import tech as tech_mod
from ..nn import Conv2d, GatedResidual, Linear
from ..nn.hooks import FLOAT32, LayerPrecision, Observer
from .methods import TrainingMethod


def mac_energy_pj(a, b, tech="horowitz45"):
    """One multiply-accumulate of operands ``a`` and ``b`` (each ``(kind, bits)``)."""
    t = tech_mod.table(tech)
    if a[0] == "float" or b[0] == "float":
        bits = max(a[1], b[1])
        if bits > 16:
            return t["fp_mult_32b"].value + t["fp_add_32b"].value
        return t["fp_mult_16b"].value + t["fp_add_16b"].value
    return t["mult_8b"].value * a[1] * b[1] / 64.0 + t["add_32b"].value


def _bits_of(operand):
    return operand[1]


class EnergyMeter(TrainingMethod, Observer):
    """Counts the MACs and bits moved by every conv/linear call and skip gate of ``model`` while installed."""

    name = "energy"

    def __init__(self, model=None, tech="horowitz45"):
        tech_mod.table(tech)  # unknown names fail here, listing the known ones
        self.tech = tech
        self.model = model
        self.mac_counts = {}   # (a, b) operand pair -> MACs
        self.sram_bits = 0.0
        self.dram_bits = 0.0
        self.steps = 0
        self._watched = []
        self._last_input = {}  # layer -> input shape of its last training forward
        self._parameters = 0

    # -- the training-method protocol (installed again after pruning swaps the model)
    def install(self, model=None):
        self.uninstall()
        if model is not None:
            self.model = model
        for _, module in self.model.net.named_modules():
            if isinstance(module, (Conv2d, Linear, GatedResidual)):
                module.add_observer(self)
                self._watched.append(module)
        return self

    def uninstall(self):
        for module in self._watched:
            module.remove_observer(self)
        self._watched = []
        self._last_input = {}

    def on_epoch_start(self, trainer):
        self._parameters = trainer.model.num_parameters()

    def before_update(self, trainer):
        self.optimizer_step(self._parameters, trainer.optimizer_state_arrays())

    def summary(self):
        report = self.report()
        return {"training_energy_j": report["training_energy_j"], "energy": report}

    # -- the observer
    def on_forward(self, module, x, y, train):
        if not train:
            return
        self._last_input[module] = x.shape
        if isinstance(module, GatedResidual):  # the gate's own small products, float32
            self._add_macs((FLOAT32, FLOAT32), module.macs_per_call(x.shape[0]))
        else:
            self._count_forward(module, x.shape, y.shape)

    def on_backward(self, module, dy, dx):
        x_shape = self._last_input.get(module, ())
        if isinstance(module, GatedResidual):
            self._add_macs((FLOAT32, FLOAT32), 2 * module.macs_per_call(x_shape[0] if x_shape else 0))
        else:
            self._count_backward(module, x_shape, dy.shape, dx is not None)

    # -- counting
    @staticmethod
    def layer_macs(layer, x_shape, y_shape):
        """MACs of one forward call: output elements x inputs per output."""
        if isinstance(layer, Conv2d):
            per_output = (layer.in_channels // layer.groups) * layer.kernel_size ** 2
        else:
            per_output = layer.in_features
        return int(np.prod(y_shape)) * per_output

    @staticmethod
    def precision(layer):
        hook = layer.operand_hook
        return LayerPrecision() if hook is None else hook.precision(layer)

    def _add_macs(self, pair, macs):
        self.mac_counts[pair] = self.mac_counts.get(pair, 0) + int(macs)

    def _count_forward(self, layer, x_shape, y_shape):
        prec = self.precision(layer)
        a, w = prec.forward
        macs = self.layer_macs(layer, x_shape, y_shape)
        self._add_macs((a, w), macs)
        weights = int(np.prod(layer._weight_shape()))  # not weight(): a compressed form would rebuild it
        self.sram_bits += np.prod(x_shape) * _bits_of(a) + weights * _bits_of(w) + np.prod(y_shape) * 32

    def _count_backward(self, layer, x_shape, dy_shape, computed_dx):
        prec = self.precision(layer)
        macs = self.layer_macs(layer, x_shape, dy_shape)
        weights = int(np.prod(layer._weight_shape()))  # not weight(): a compressed form would rebuild it
        hook = layer.operand_hook  # predictive sign gradients: [(pair, fraction), ...]
        for pair, fraction in (hook.grad_weight_costs(layer) if hook else [(prec.grad_weight, 1.0)]):
            self._add_macs(pair, macs * fraction)
        g, x = prec.grad_weight
        self.sram_bits += np.prod(dy_shape) * _bits_of(g) + np.prod(x_shape) * _bits_of(x) + weights * 32
        if computed_dx:
            self._add_macs(prec.grad_input, macs)
            self.sram_bits += weights * _bits_of(prec.grad_input[1]) + np.prod(x_shape) * 32

    def optimizer_step(self, parameter_count, state_per_parameter=1):
        """One update: read weight, gradient and optimizer state, write weight and state, through DRAM."""
        self.steps += 1
        self.dram_bits += parameter_count * 32 * (3 + 2 * state_per_parameter)

    def add_macs(self, pair, macs, sram_bits=0.0):
        """Work done outside the wrapped layers (e.g. a gate's recurrent cell)."""
        self._add_macs(pair, macs)
        self.sram_bits += sram_bits

    # -- results
    def report(self):
        t = tech_mod.table(self.tech)
        per_bit_sram = t["sram_8kb_read_32b"].value / 32.0
        per_bit_dram = t["dram_read_32b"].value / 32.0
        by_precision = {}
        arithmetic_pj = 0.0
        total_macs = 0
        for (a, b), macs in sorted(self.mac_counts.items()):
            pj = macs * mac_energy_pj(a, b, self.tech)
            label = f"{a[0]}{a[1]}x{b[0]}{b[1]}"
            by_precision[label] = {"macs": int(macs), "joules": pj * 1e-12}
            arithmetic_pj += pj
            total_macs += macs
        sram_pj = self.sram_bits * per_bit_sram
        dram_pj = self.dram_bits * per_bit_dram
        total = (arithmetic_pj + sram_pj + dram_pj) * 1e-12
        return {"training_energy_j": total, "arithmetic_j": arithmetic_pj * 1e-12, "sram_j": sram_pj * 1e-12,
                "dram_j": dram_pj * 1e-12, "macs": int(total_macs), "by_precision": by_precision,
                "optimizer_steps": self.steps, "tech": self.tech}

    # -- checkpointing (a resumed run continues the count)
    def state(self):
        return {"mac_counts": [[list(a), list(b), int(m)] for (a, b), m in self.mac_counts.items()],
                "sram_bits": float(self.sram_bits), "dram_bits": float(self.dram_bits), "steps": self.steps}

    def load_state(self, state):
        state = state or {}
        self.mac_counts = {(tuple(a), tuple(b)): int(m) for a, b, m in state.get("mac_counts", [])}
        self.sram_bits = float(state.get("sram_bits", 0.0))
        self.dram_bits = float(state.get("dram_bits", 0.0))
        self.steps = int(state.get("steps", 0))
