"""E2-Train (Wang et al., NeurIPS 2019): cheaper training at the data, model and algorithm levels.

- **Stochastic mini-batch dropping (SMD)**: each step is skipped with probability ``smd`` (no forward, no
  backward) while the schedule keeps its number of steps: ``TrainConfig.smd``, applied in ``Trainer._run_epoch``.
- **Selective layer update (SLU)**: ``add_skip_gates`` turns every identity residual block into a
  ``lean.nn.gates.GatedResidual`` driven by one shared recurrent ``GateController``; a block skipped for an image
  costs nothing for it and gets no update from it. The gate, its straight-through surrogate and the computation
  cost term are in ``lean/nn/gates.py``.
- **Predictive sign gradient (PSG)**, conv layers (``PredictiveSignGradient``): the forward pass runs on 8-bit
  inputs and weights; the output gradient is rounded stochastically to 16 bits; a cheap predictor computes the
  weight gradient from the 4 most significant bits of the inputs; where the prediction's magnitude is at least
  ``tau`` its sign is used, elsewhere the sign of the accurate 8-bit x 16-bit gradient; the update is that sign
  through SGD with momentum. ``tau`` is fixed (authors: 5e-5) or adaptive (``tau_rel`` x max |prediction| per
  layer). Quantizers and the selector are Numba kernels (``lean.kernels.psg``).

  Two choices the paper leaves open, made here: the sign is scaled by the layer's mean |prediction| so SGD's
  learning rate and schedule keep their meaning (a bare sign of size 1 would need a new learning rate per net);
  and on this CPU the accurate gradient is computed for every weight, while the energy meter charges it only
  for the fallback fraction, as the accelerator the method targets would.

Every technique's effect is measured in the run's ``training_energy_j`` (``lean.train.energy``).
"""

import numpy as np

from .. import kernels
from ..nn import Conv2d, GateController, GatedResidual, Linear, Model, Residual, Sequential
from .energy import LayerPrecision

INT4, INT8, INT16 = ("int", 4), ("int", 8), ("int", 16)


# ------------------------------------------------------------------------------------------------ SLU

def _first_conv(module):
    return next((m for m in module.modules() if isinstance(m, Conv2d)), None)


def add_skip_gates(model, *, target=0.5, beta=1e-3, seed=0):
    """A copy of ``model`` whose identity residual blocks are skip-gated (weights copied, gates new).

    Blocks that change shape (a stride or a projection shortcut) cannot be skipped and stay as they are.
    """
    if any(isinstance(m, GateController) for m in model.net.modules()):
        raise ValueError(f"{model.name} already has skip gates")
    copy = Model.from_config(model.config())
    copy.load_state(model.state())
    model = copy
    count = 0

    def convert(module):
        nonlocal count
        if isinstance(module, Sequential):
            layers = []
            for name, layer in module.layers:
                if isinstance(layer, Residual) and layer.shortcut is None and _first_conv(layer.body) is not None:
                    conv = _first_conv(layer.body)
                    if conv.stride == 1:
                        layer = GatedResidual(layer, conv.in_channels, seed=seed * 1000 + count)
                        count += 1
                layers.append((name, convert(layer)))
            module.layers = layers
        return module

    net = convert(model.net)
    if count == 0:
        raise ValueError(f"{model.name} has no identity residual blocks to gate (SLU needs a ResNet)")
    if not isinstance(net, Sequential):
        raise ValueError(f"{model.name}: SLU needs a top-level Sequential")
    net.layers.insert(0, ("gate", GateController(target=target, beta=beta, seed=seed)))
    return Model(net, model.input_shape, model.num_classes, model.name)


def gate_summary(model):
    """Fraction of images each gated block ran on in the last forward pass (name -> fraction)."""
    return {name: m.last_kept for name, m in model.net.named_modules()
            if isinstance(m, GatedResidual) and m.last_kept is not None}


# ------------------------------------------------------------------------------------------------ PSG

class _OperandHook:
    """What PSG and low-precision training share: they swap the forward and backward of plain float layers of
    ``layer_types`` for quantized ones (``_wrap``), put them back on ``uninstall``, and take each batch's seed
    for their stochastic rounding."""

    label = ""
    layer_types = (Conv2d,)

    def __init__(self):
        self.seed = 0
        self._wrapped = []

    def on_batch(self, trainer, seed):
        self.seed = int(seed)

    def install(self, model):
        self.uninstall()
        layers = [(n, m) for n, m in model.net.named_modules() if isinstance(m, self.layer_types)]
        for index, (name, layer) in enumerate(layers):
            if layer.form is not None or layer.input_bits is not None:
                raise ValueError(f"{name}: {self.label} runs on plain float layers (not compressed or quantized)")
            self._wrapped.append((layer, layer.forward, layer.backward))
            self._wrap(name, index, layer)
        return self

    def uninstall(self):
        for layer, fwd, bwd in self._wrapped:
            layer.forward, layer.backward = fwd, bwd
            layer.energy_bits = layer.grad_weight_costs = None
        self._wrapped = []


class PredictiveSignGradient(_OperandHook):
    """A trainer hook that runs every conv layer of the model in PSG mode (see the module docstring)."""

    label = "PSG"

    def __init__(self, tau=5e-5, tau_rel=None, forward_bits=8, predictor_bits=4, gradient_bits=16):
        super().__init__()
        if tau is not None and tau < 0:
            raise ValueError(f"PSG tau must be >= 0; got {tau}")
        if tau_rel is not None and not 0 <= tau_rel <= 1:
            raise ValueError(f"PSG adaptive tau must be in [0, 1] (a fraction of max |prediction|); got {tau_rel}")
        if not 2 <= predictor_bits <= forward_bits <= 16:
            raise ValueError(f"need 2 <= predictor bits ({predictor_bits}) <= forward bits ({forward_bits}) <= 16")
        self.tau, self.tau_rel = tau, tau_rel
        self.forward_bits, self.predictor_bits, self.gradient_bits = forward_bits, predictor_bits, gradient_bits
        self.fallback = {}  # layer name -> fraction of weights that used the accurate gradient in the last step

    def _wrap(self, name, index, layer):
        fb, pb, gb = self.forward_bits, self.predictor_bits, self.gradient_bits
        act, grad = ("int", fb), ("int", gb)
        layer.energy_bits = LayerPrecision(forward=(act, act), grad_input=(grad, act), grad_weight=(grad, act))
        saved = {}

        def quantize(a):
            step = kernels.symmetric_step(a, fb)
            return kernels.fixed_point(a, step, fb), step

        def forward(x, train=False):
            if x.ndim != 4 or x.shape[3] != layer.in_channels:
                raise ValueError(f"Conv2d expects (n, h, w, {layer.in_channels}) input; got {x.shape}")
            xq, x_step = quantize(x)
            wq, _ = quantize(layer.params["weight"])
            if train:
                saved.update(x=x, xq=xq, x_step=x_step, wq=wq)
            return kernels.conv2d_forward(xq, wq, layer.params.get("bias"), layer.stride, layer.padding,
                                          layer.groups)

        def backward(dy):
            x, xq, x_step, wq = saved.pop("x"), saved.pop("xq"), saved.pop("x_step"), saved.pop("wq")
            g = kernels.stochastic_round(dy, kernels.symmetric_step(dy, gb), gb, self.seed * 1009 + index)
            conv_args = (layer.stride, layer.padding, layer.groups)
            dx, dw_accurate, db = kernels.conv2d_backward(xq, wq, g, *conv_args, need_dx=layer.input_grad,
                                                          need_db="bias" in layer.params)
            x_msb = kernels.msb_predictor(x, x_step, fb, pb)
            _, dw_predicted, _ = kernels.conv2d_backward(x_msb, wq, g, *conv_args, need_dx=False, need_db=False)
            tau = self.tau if self.tau_rel is None else self.tau_rel * float(np.abs(dw_predicted).max())
            signs, fell_back = kernels.sign_select(dw_predicted, dw_accurate, tau)
            fraction = fell_back / max(signs.size, 1)
            self.fallback[name] = fraction
            costs = [((grad, ("int", pb)), 1.0), ((grad, act), fraction)]  # predictor everywhere, then fallback
            layer.grad_weight_costs = lambda: costs
            layer.grads["weight"] += signs * np.float32(np.abs(dw_predicted).mean())
            if "bias" in layer.grads:
                layer.grads["bias"] += db
            return dx

        layer.forward, layer.backward = forward, backward


def predicted_sign_agreement(x, w, dy, stride=1, padding=0, forward_bits=8, predictor_bits=4, gradient_bits=16,
                             seed=0):
    """Fraction of weight-gradient entries whose PSG-predicted sign equals the full-precision sign (a check)."""
    x_step = kernels.symmetric_step(x, forward_bits)
    wq = kernels.fixed_point(w, kernels.symmetric_step(w, forward_bits), forward_bits)
    g = kernels.stochastic_round(dy, kernels.symmetric_step(dy, gradient_bits), gradient_bits, seed)
    _, exact, _ = kernels.conv2d_backward(x, w, dy, stride, padding, need_dx=False, need_db=False)
    x_msb = kernels.msb_predictor(x, x_step, forward_bits, predictor_bits)
    _, predicted, _ = kernels.conv2d_backward(x_msb, wq, g, stride, padding, need_dx=False, need_db=False)
    return float(np.mean(np.sign(predicted) == np.sign(exact))), predicted, exact


# ------------------------------------------------------------------------------------------------ low precision

class LowPrecisionTraining(_OperandHook):
    """A trainer hook running conv and linear layers on ``bits``-bit operands in both passes.

    Inputs and weights are rounded to nearest on a per-tensor ``bits``-bit grid (scale = max |value|), output
    gradients stochastically; the weight and input gradients are computed from those operands and applied to
    float master weights (straight-through for the rounding). The early-bird search phase uses it for the
    low-precision ticket (You et al., 2020, section 4.3).
    """

    label = "low-precision training"
    layer_types = (Conv2d, Linear)

    def __init__(self, bits=8):
        super().__init__()
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"low-precision training bits must be in 2..16; got {bits}")
        self.bits = int(bits)

    def _quantize(self, a, stochastic_seed=None):
        step = kernels.symmetric_step(a, self.bits)
        if stochastic_seed is None:
            return kernels.fixed_point(a, step, self.bits)
        return kernels.stochastic_round(a, step, self.bits, stochastic_seed)

    def _wrap(self, name, index, layer):
        word = ("int", self.bits)
        layer.energy_bits = LayerPrecision(forward=(word, word), grad_input=(word, word), grad_weight=(word, word))
        is_conv = isinstance(layer, Conv2d)
        saved = {}

        def forward(x, train=False):
            xq, wq = self._quantize(x), self._quantize(layer.params["weight"])
            if train:
                saved.update(xq=xq, wq=wq)
            if is_conv:
                return kernels.conv2d_forward(xq, wq, layer.params.get("bias"), layer.stride, layer.padding,
                                              layer.groups)
            y = xq @ wq.T
            return y + layer.params["bias"] if "bias" in layer.params else y

        def backward(dy):
            xq, wq = saved.pop("xq"), saved.pop("wq")
            g = self._quantize(dy, self.seed * 1013 + index)
            if is_conv:
                dx, dw, db = kernels.conv2d_backward(xq, wq, g, layer.stride, layer.padding, layer.groups,
                                                     need_dx=layer.input_grad, need_db="bias" in layer.params)
            else:
                dx, dw, db = g @ wq, g.T @ xq, g.sum(axis=0)
            layer.grads["weight"] += dw
            if "bias" in layer.grads:
                layer.grads["bias"] += db
            return dx

        layer.forward, layer.backward = forward, backward
