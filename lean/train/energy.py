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
from ..nn import Conv2d, Linear, Model
from ..nn.hooks import FLOAT32, LayerPrecision, Observer
from .methods import TrainingMethod


def mac_energy_pj(a: tuple[str, int], b: tuple[str, int], tech: str = "horowitz45") -> float:
    """One multiply-accumulate of operands ``a`` and ``b`` (each ``(kind, bits)``), in pJ.

    Parameters
    ----------
    a, b : tuple of (str, int)
        ``("float", bits)``, ``("int", bits)`` or ``("bfloat", 16)``.
    tech : str
        A ``lean.hw.tech`` table (Horowitz, ISSCC 2014, 45 nm by default).

    Returns
    -------
    float
        pJ: a bf16 operand: a 16-bit FP multiply and a 32-bit FP add (Horowitz has no bf16 entry; a bf16
        multiplier is smaller than an FP16 one, so this is an upper bound); an FP multiply + add at 32 or 16 bits
        if either operand is float (the wider decides); else the
        8-bit multiply scaled by bits_a * bits_b / 64 plus a 32-bit add.
    """
    t = tech_mod.table(tech)
    if a[0] == "bfloat" or b[0] == "bfloat":  # bf16 products summed in float32 (``--precision bf16``)
        return t["fp_mult_16b"].value + t["fp_add_32b"].value
    if a[0] == "float" or b[0] == "float":
        bits = max(a[1], b[1])
        if bits > 16:
            return t["fp_mult_32b"].value + t["fp_add_32b"].value
        return t["fp_mult_16b"].value + t["fp_add_16b"].value
    return t["mult_8b"].value * a[1] * b[1] / 64.0 + t["add_32b"].value


def _bits_of(operand):
    return operand[1]


class EnergyMeter(TrainingMethod, Observer):
    """Counts the MACs and bits moved by every conv/linear call and skip gate of ``model`` while installed.

    Parameters
    ----------
    model : Model or None
        The model to watch (``install`` may give it later).
    tech : str
        The ``lean.hw.tech`` table that prices the counts.
    """

    name = "energy"

    def __init__(self, model: Model | None = None, tech: str = "horowitz45"):
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
    def install(self, model: Model | None = None) -> "EnergyMeter":
        """Observe ``model``'s (or the current model's) conv, linear and gated-block calls; returns self."""
        self.uninstall()
        if model is not None:
            self.model = model
        for _, module in self.model.net.named_modules():
            # a gated block's copies that run beside it (DFS's b-bit copies) are not in the tree: watch them too
            for watched in (module, *getattr(module, "shadow_modules", list)()):
                if isinstance(watched, (Conv2d, Linear)) or getattr(watched, "gated", False):
                    watched.add_observer(self)
                    self._watched.append(watched)
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
        if getattr(module, "gated", False):  # the gate's own small products, float32
            self._add_macs((FLOAT32, FLOAT32), module.macs_per_call(x.shape[0]))
        else:
            self._count_forward(module, x.shape, y.shape)

    def on_backward(self, module, dy, dx):
        x_shape = self._last_input.get(module, ())
        if getattr(module, "gated", False):
            self._add_macs((FLOAT32, FLOAT32), 2 * module.macs_per_call(x_shape[0] if x_shape else 0))
        else:
            self._count_backward(module, x_shape, dy.shape, dx is not None)

    # -- counting
    @staticmethod
    def layer_macs(layer: Conv2d | Linear, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> int:
        """MACs of one forward call: output elements x inputs per output.

        Parameters
        ----------
        layer : Conv2d or Linear
            The layer; a conv's inputs per output are (c / groups) * r * s.
        x_shape : tuple of int
            The input's shape (unused; kept for a uniform signature).
        y_shape : tuple of int
            The output's shape, (n, h_out, w_out, k) or (n, k).

        Returns
        -------
        int
            Multiply-accumulates of the call.
        """
        if isinstance(layer, Conv2d):
            per_output = (layer.in_channels // layer.groups) * layer.kernel_size ** 2
        else:
            per_output = layer.in_features
        return int(np.prod(y_shape)) * per_output

    @staticmethod
    def precision(layer: Conv2d | Linear) -> LayerPrecision:
        """The operand precisions ``layer`` runs at: its operand hook's, or float32 throughout."""
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

    def optimizer_step(self, parameter_count: int, state_per_parameter: int = 1) -> None:
        """One update: read weight, gradient and optimizer state, write weight and state, through DRAM.

        Parameters
        ----------
        parameter_count : int
            Trainable parameters of the model.
        state_per_parameter : int
            Arrays the optimizer keeps per parameter (SGD with momentum 1, Adam 2, plain SGD 0).
        """
        self.steps += 1
        self.dram_bits += parameter_count * 32 * (3 + 2 * state_per_parameter)

    def add_macs(self, pair: tuple[tuple[str, int], tuple[str, int]], macs: int, sram_bits: float = 0.0) -> None:
        """Work done outside the wrapped layers (e.g. a gate's recurrent cell).

        Parameters
        ----------
        pair : tuple of two (str, int)
            The operands' precisions, as ``mac_energy_pj`` takes them.
        macs : int
            Multiply-accumulates to add.
        sram_bits : float
            Bits moved through on-chip SRAM with them.
        """
        self._add_macs(pair, macs)
        self.sram_bits += sram_bits

    # -- results
    def report(self) -> dict:
        """The counts so far, priced.

        Returns
        -------
        dict
            ``training_energy_j`` (the total), ``arithmetic_j``, ``sram_j``, ``dram_j``; ``macs``;
            ``by_precision`` (label such as ``"float32xfloat32"`` or ``"int8xint8"`` -> ``macs``, ``joules``);
            ``optimizer_steps``; ``tech``.
        """
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
