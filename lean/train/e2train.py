"""E2-Train (Wang et al., NeurIPS 2019): cheaper training at the data, model and algorithm levels.

Paper: Y. Wang, Z. Jiang, X. Chen, P. Xu, Y. Zhao, Y. Lin, Z. Wang, "E2-Train: Training State-of-the-art CNNs
with Over 80% Energy Savings", NeurIPS 2019 (arXiv:1910.13349); authors' code: GATECH-EIC/E2Train. The three
techniques are cited by the paper's names for them (data level, model level, algorithm level); their section
numbers could not be confirmed from the material at hand and are marked so.

Each technique is a training method (``lean.train.methods``), configured by ``lean.train.config``'s ``SMDConfig``,
``SLUConfig`` and ``PSGConfig`` (``lean train --smd P --slu TARGET --psg TAU | --psg-adaptive FRACTION``).

- **Stochastic mini-batch dropping (SMD)**, the data level (section unconfirmed; ``StochasticMiniBatchDropping``):
  each step is skipped with probability ``p`` (no forward, no backward) while the schedule keeps its number of
  steps. The authors' code still calls the optimizer on zero gradients for a dropped batch (momentum and weight
  decay move the weights): ``--smd-dropped momentum``; lean's default skips the step (the two measured within
  run-to-run variation of each other, ``benchmarks/README.md``).
- **Selective layer update (SLU)**, the model level (section unconfirmed; ``SelectiveLayerUpdate``):
  ``add_skip_gates`` turns every identity residual block into a ``lean.nn.gates.GatedResidual`` driven by one
  shared recurrent ``GateController``; a block skipped for an image costs nothing for it and gets no update from
  it. The gate, its straight-through surrogate and the computation cost term are in ``lean/nn/gates.py``.
- **Predictive sign gradient (PSG)**, the algorithm level (section unconfirmed), conv layers
  (``PredictiveSignGradient``): the forward pass runs on 8-bit inputs and weights; the output gradient is
  rounded stochastically to 16 bits; a cheap predictor computes the weight gradient from the 4 most significant
  bits of the inputs; where the prediction's magnitude is at least ``tau`` its sign is used, elsewhere the sign
  of the accurate 8-bit x 16-bit gradient; the update is that sign through SGD with momentum. ``tau`` is fixed
  (authors: 5e-5) or adaptive (``tau_rel`` x max |prediction| per layer). Quantizers and the selector are Numba
  kernels (``lean.kernels.psg``); each conv layer gets an operand hook (``lean.nn.hooks``), ``_PSGLayer``.

  The update (``update``): ``"sign"``, the default, is the authors' (GATECH-EIC/E2Train,
  ``conv_efficient.PredictiveConv2d``): the bare sign, size 1, through SGD at the run's learning rate (they
  train ResNet-74 at their baseline's 0.1, momentum 0.9; batch norm after each conv makes the weights' scale
  immaterial), and the bias gradient's sign likewise (their convs have no bias; their ``new_conv.py`` takes the
  sign of the exact bias gradient). ``"scaled"``, lean's earlier choice, multiplies the sign by the layer's mean
  |prediction| so a step keeps a gradient's size, and keeps the exact bias gradient; runs stored before this
  option resume with it. Measured (``benchmarks/README.md``, issue 13; ResNet-20 at half width, 10,000
  Fashion-MNIST images, 80 epochs, all three techniques, adaptive tau 0.05): sign lost 1.52 points on seed 0
  against scaled's 1.85, so the scaled update does not help there. With the authors' fixed tau 5e-5 the same
  run lost 1.15 points (the accurate gradient then ran for ~97% of the entries: the threshold is small against
  these gradients). Against its 8-bit control (``LowPrecisionTraining`` with 16-bit gradients on the conv layers)
  PSG saved nothing in lean's energy table: at adaptive tau 0.05 half the weight-gradient entries fell back to
  the accurate gradient, and a 4-bit predictor MAC plus half an 8-bit one cost more than one 8-bit MAC. Where
  lean still departs from their code: the accurate weight gradient and the input
  gradient use the 16-bit stochastically rounded output gradient (theirs: float32, with only the predictor's
  copy rounded, to nearest); the quantizer scales are per tensor (theirs: inputs per sample, weights per output
  channel); the 4-bit predictor input truncates the 8-bit code (theirs rounds it). On this CPU the accurate
  gradient is computed for every weight, while the energy meter charges it only for the fallback fraction, as
  the accelerator the method targets would.

From what schedule length the methods pay off (issue 14, ``benchmarks/e2train.py``; ResNet-20 at half width, the
first 10,000 Fashion-MNIST images, SGD lr 0.1 cosine, SLU 0.8, PSG tau 5e-5, seed 0): with the authors' SMD 0.5 all
three lost 7.34, 4.38, 1.87 and 1.15 points against standard training of the same length at 10, 20, 40 and 80
epochs (93.8-94.0% less energy), and 1.15-1.56 at 80 epochs over three seeds. The short schedules lose to SMD and
SLU together: at 20 epochs SMD alone cost 1.59 points, SLU alone 0.79, the two together 3.41 (a gated block is then
trained by about 80% of the images of half the steps), PSG alone nothing (+0.46) and PSG beside SMD nothing more
(1.50). No gate closed for good (every gated block ran on 79-82% of the images in the last epoch); PSG at tau 5e-5
took the accurate sign for 97-99% of the entries at every length. So lean's recipe drops fewer batches, SMD 0.3:
4.24, 1.44, 1.30 points at 10, 20, 40 epochs and 0.93-1.06 at 80 over three seeds, for 91.5-91.7% less energy.
The authors train 64k steps; here the methods cost about a point from 20 epochs (1,560 steps of 128 images) on,
and several points on shorter runs.

``LowPrecisionTraining`` (8-bit operands in both passes) is the early-bird search phase's low-precision mode
(You et al., ICLR 2020, section 4.3). Every technique's effect is measured in the run's ``training_energy_j``
(``lean.train.energy``).
"""

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..nn import Conv2d, GateController, GatedResidual, Linear, Model, Sequential
from ..nn.gates import wrap_residual_blocks
from ..nn.hooks import LayerPrecision, OperandHook
from .methods import LayerOperandMethod, TrainingMethod

INT4, INT8, INT16 = ("int", 4), ("int", 8), ("int", 16)


# ------------------------------------------------------------------------------------------------ SLU


def has_skip_gates(model: Model) -> bool:
    """Whether ``model`` already holds SLU's ``GateController`` (from ``add_skip_gates``)."""
    return any(isinstance(m, GateController) for m in model.net.modules())


def add_skip_gates(model: Model, *, target: float = 0.5, beta: float = 1e-3, seed: int = 0) -> Model:
    """A copy of ``model`` whose identity residual blocks are skip-gated (weights copied, gates new).

    Blocks that change shape (a stride or a projection shortcut) cannot be skipped and stay as they are.

    Parameters
    ----------
    model : Model
        A residual net whose top level is a ``Sequential``; not already gated.
    target : float
        In (0, 1]: the fraction of gated blocks meant to run (sets the sign of the cost term).
    beta : float
        Weight of the computation cost term, >= 0 (authors: 1e-5).
    seed : int
        Seed of the gates' initial weights.

    Returns
    -------
    Model
        A new model with a ``GateController`` first and every identity block a ``GatedResidual``.

    Raises
    ------
    ConfigError
        ``model`` already has skip gates, has no identity residual block, or no top-level ``Sequential``.

    Notes
    -----
    Wang et al., NeurIPS 2019, selective layer update, the model level (section unconfirmed).
    """
    if has_skip_gates(model):
        raise ConfigError(f"{model.name} already has skip gates")
    model = model.copy()
    count = 0

    def gate(block, conv):
        nonlocal count
        if block.shortcut is not None or conv.stride != 1:  # only blocks that keep their shape can be skipped
            return block
        count += 1
        return GatedResidual(block, conv.in_channels, seed=seed * 1000 + count - 1)

    net = wrap_residual_blocks(model.net, gate)
    if count == 0:
        raise ConfigError(f"{model.name} has no identity residual blocks to gate (SLU needs a ResNet)")
    if not isinstance(net, Sequential):
        raise ConfigError(f"{model.name}: SLU needs a top-level Sequential")
    net.layers.insert(0, ("gate", GateController(target=target, beta=beta, seed=seed)))
    return Model(net, model.input_shape, model.num_classes, model.name)


def gate_summary(model: Model) -> dict[str, float]:
    """Fraction of images each gated block ran on in the last forward pass (name -> fraction)."""
    return {name: m.last_kept for name, m in model.net.named_modules()
            if isinstance(m, GatedResidual) and m.last_kept is not None}


class SelectiveLayerUpdate(TrainingMethod):
    """SLU as a training method: the model gets its skip gates before training (kept as they are on resume).

    Parameters
    ----------
    target, beta
        As for ``add_skip_gates``.
    """

    name = "slu"

    def __init__(self, target: float = 0.5, beta: float = 1e-3):
        self.target, self.beta = float(target), float(beta)
        self.blocks = []
        self.ran = {}  # block name -> [sum of the fractions of images it ran on, steps] in the epoch in progress
        self.last_epoch = {}  # block name -> fraction of the images it ran on in the last finished epoch

    def prepare(self, model, config):
        if has_skip_gates(model):
            return model
        return add_skip_gates(model, target=self.target, beta=self.beta, seed=config.seed)

    def install(self, model):
        self.blocks = [(name, m) for name, m in model.net.named_modules() if isinstance(m, GatedResidual)]

    def before_update(self, trainer):  # after this step's forward: which images each block ran on
        for name, block in self.blocks:
            if block.last_kept is not None:  # steps have equal batches (the last may be smaller: a small bias)
                count = self.ran.setdefault(name, [0.0, 0])
                count[0] += block.last_kept
                count[1] += 1

    def on_epoch_end(self, trainer):
        self.last_epoch = {name: ran / seen for name, (ran, seen) in self.ran.items() if seen}
        self.ran = {}
        trainer.history[-1]["slu_blocks_run"] = dict(self.last_epoch)

    def state(self):
        return {"ran": self.ran, "last_epoch": self.last_epoch}

    def load_state(self, state):
        self.ran = {k: list(v) for k, v in state.get("ran", {}).items()}
        self.last_epoch = dict(state.get("last_epoch", {}))

    def summary(self):
        """``slu_blocks_run``: each gated block's fraction of the training images it ran on in the last epoch;
        ``slu_blocks_closed``: the blocks that ran on fewer than 1% (a gate closed for good gets no update)."""
        return {"slu_blocks_run": dict(self.last_epoch),
                "slu_blocks_closed": sorted(n for n, f in self.last_epoch.items() if f < 0.01)}


# ------------------------------------------------------------------------------------------------ SMD

class StochasticMiniBatchDropping(TrainingMethod):
    """SMD: step ``t`` of epoch ``e`` is dropped when a draw from ``[seed, e, t, 1]`` is below ``probability``,
    so a resumed run drops the same steps.

    A dropped step runs no forward and no backward, and the schedule keeps its number of steps. With
    ``momentum_on_dropped`` it still runs the optimizer on zero gradients, so momentum and weight decay move the
    weights as in the authors' code (``main_all.py`` zeroes the gradients and calls ``optimizer.step()`` for a
    dropped batch).

    Parameters
    ----------
    probability : float
        In (0, 1): the chance of dropping each step (authors: 0.5).
    momentum_on_dropped : bool
        Run the optimizer on zero gradients at a dropped step (the authors'); False: the step does nothing.

    Notes
    -----
    Wang et al., NeurIPS 2019, stochastic mini-batch dropping, the data level (section unconfirmed).
    """

    name = "smd"

    def __init__(self, probability: float = 0.5, momentum_on_dropped: bool = False):
        if not 0.0 < probability < 1.0:
            raise ConfigError(f"mini-batch dropping probability must be in (0, 1); got {probability}")
        self.probability = float(probability)
        self.momentum_on_dropped = bool(momentum_on_dropped)

    def skip_step(self, trainer, step):
        # SMD: the whole mini-batch is skipped with probability p
        draw = np.random.default_rng([trainer.config.seed, trainer.epoch, step, 1]).random()
        return draw < self.probability


# ------------------------------------------------------------------------------------------------ PSG

class _PSGLayer(OperandHook):
    """PSG's products for one conv layer (see the module docstring)."""

    def __init__(self, method, name, index):
        self.method, self.name, self.index = method, name, index
        self.saved = {}
        self.costs = None
        fb, gb = method.forward_bits, method.gradient_bits
        self.act, self.grad = ("int", fb), ("int", gb)

    def _quantize(self, a):
        fb = self.method.forward_bits
        step = kernels.symmetric_step(a, fb)
        return kernels.fixed_point(a, step, fb), step

    def forward(self, layer, x, train=False):
        # PSG: the forward pass on forward_bits (8-bit) inputs and weights
        xq, x_step = self._quantize(x)
        wq, _ = self._quantize(layer.params["weight"])
        if train:
            self.saved.update(x=x, xq=xq, x_step=x_step, wq=wq)
        return kernels.conv2d_forward(xq, wq, layer.params.get("bias"), layer.stride, layer.padding, layer.groups)

    def backward(self, layer, dy):
        m = self.method
        fb, pb, gb = m.forward_bits, m.predictor_bits, m.gradient_bits
        saved, self.saved = self.saved, {}
        x, xq, x_step, wq = saved["x"], saved["xq"], saved["x_step"], saved["wq"]
        # PSG: the output gradient rounded stochastically to gradient_bits (16)
        g = kernels.stochastic_round(dy, kernels.symmetric_step(dy, gb), gb, m.seed * 1009 + self.index)
        conv_args = (layer.stride, layer.padding, layer.groups)
        dx, dw_accurate, db = kernels.conv2d_backward(xq, wq, g, *conv_args, need_dx=layer.input_grad,
                                                      need_db="bias" in layer.params)
        # PSG's predictor: the weight gradient from the predictor_bits (4) most significant bits of the inputs
        x_msb = kernels.msb_predictor(x, x_step, fb, pb)
        _, dw_predicted, _ = kernels.conv2d_backward(x_msb, wq, g, *conv_args, need_dx=False, need_db=False)
        # the predicted sign where |prediction| >= tau, the accurate sign elsewhere
        tau = m.tau if m.tau_rel is None else m.tau_rel * float(np.abs(dw_predicted).max())
        signs, fell_back = kernels.sign_select(dw_predicted, dw_accurate, tau)
        fraction = fell_back / max(signs.size, 1)
        m.fallback[self.name] = fraction
        total = m.fallback_counts.setdefault(self.name, [0, 0])
        total[0] += int(fell_back)
        total[1] += int(signs.size)
        self.costs = [((self.grad, ("int", pb)), 1.0), ((self.grad, self.act), fraction)]  # predictor, fallback
        if m.update == "sign":  # the authors' update: the bare sign (and the bias gradient's sign)
            layer.grads["weight"] += signs
            if "bias" in layer.grads:
                layer.grads["bias"] += np.sign(db).astype(np.float32)
        else:  # "scaled": the sign times the mean |prediction|, the exact bias gradient (lean's earlier choice)
            layer.grads["weight"] += signs * np.float32(np.abs(dw_predicted).mean())
            if "bias" in layer.grads:
                layer.grads["bias"] += db
        return dx

    def precision(self, layer):
        return LayerPrecision(forward=(self.act, self.act), grad_input=(self.grad, self.act),
                              grad_weight=(self.grad, self.act))

    def grad_weight_costs(self, layer):
        return self.costs or super().grad_weight_costs(layer)


class PredictiveSignGradient(LayerOperandMethod):
    """A training method that runs every conv layer of the model in PSG mode (see the module docstring).

    Parameters
    ----------
    tau : float or None
        Fixed threshold on |predicted gradient|, >= 0 (authors: 5e-5); used when ``tau_rel`` is None.
    tau_rel : float or None
        In [0, 1]: adaptive threshold, this fraction of the layer's max |predicted gradient| per step.
    forward_bits : int
        Bits of the forward pass's inputs and weights (8).
    predictor_bits : int
        Most significant bits of the inputs the predictor uses (4), 2 <= predictor_bits <= forward_bits.
    gradient_bits : int
        Bits of the stochastically rounded output gradient (16), at most 16.
    update : str
        ``"sign"`` (the authors': the bare sign) or ``"scaled"`` (the sign times the layer's mean |prediction|).

    Notes
    -----
    Wang et al., NeurIPS 2019, predictive sign gradient descent, the algorithm level (section unconfirmed).
    """

    name = "psg"
    label = "PSG"
    layer_types = (Conv2d,)

    def __init__(self, tau: float | None = 5e-5, tau_rel: float | None = None, forward_bits: int = 8,
                 predictor_bits: int = 4, gradient_bits: int = 16, update: str = "sign"):
        super().__init__()
        if update not in ("sign", "scaled"):
            raise ConfigError(f"PSG update must be 'sign' or 'scaled'; got {update!r}")
        self.update = update
        if tau is not None and tau < 0:
            raise ConfigError(f"PSG tau must be >= 0; got {tau}")
        if tau_rel is not None and not 0 <= tau_rel <= 1:
            raise ConfigError(f"PSG adaptive tau must be in [0, 1] (a fraction of max |prediction|); got {tau_rel}")
        if not 2 <= predictor_bits <= forward_bits <= 16:
            raise ConfigError(f"need 2 <= predictor bits ({predictor_bits}) <= forward bits ({forward_bits}) <= 16")
        self.tau, self.tau_rel = tau, tau_rel
        self.forward_bits, self.predictor_bits, self.gradient_bits = forward_bits, predictor_bits, gradient_bits
        self.fallback = {}  # layer name -> fraction of weights that used the accurate gradient in the last step
        self.fallback_counts = {}  # layer name -> [entries that fell back, entries] over the run

    def make_hook(self, name, index, layer):
        return _PSGLayer(self, name, index)

    def state(self):
        return {"fallback_counts": self.fallback_counts}

    def load_state(self, state):
        self.fallback_counts = {k: list(v) for k, v in state.get("fallback_counts", {}).items()}

    def summary(self):
        """``psg_fallback``: the share of weight-gradient entries, over the run and all conv layers, whose sign came
        from the accurate gradient (|prediction| < tau); ``psg_fallback_by_layer`` per layer."""
        fell, size = (sum(c[i] for c in self.fallback_counts.values()) for i in (0, 1))
        return {"psg_fallback": fell / size if size else None,
                "psg_fallback_by_layer": {k: f / n for k, (f, n) in self.fallback_counts.items() if n}}


def predicted_sign_agreement(x: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: int = 1, padding: int = 0,
                             forward_bits: int = 8, predictor_bits: int = 4, gradient_bits: int = 16,
                             seed: int = 0) -> tuple[float, np.ndarray, np.ndarray]:
    """Fraction of weight-gradient entries whose PSG-predicted sign equals the full-precision sign (a check).

    Parameters
    ----------
    x : np.ndarray
        (n, h, w, c) float32 layer input, channels-last.
    w : np.ndarray
        (k, c, r, s) float32 conv weight (groups = 1).
    dy : np.ndarray
        (n, h_out, w_out, k) float32 output gradient.
    stride, padding : int
        The conv's.
    forward_bits, predictor_bits, gradient_bits : int
        As for ``PredictiveSignGradient``.
    seed : int
        Seed of the stochastic rounding of ``dy``.

    Returns
    -------
    agreement : float
        Fraction of the (k, c, r, s) entries whose signs agree.
    predicted : np.ndarray
        (k, c, r, s) the predictor's weight gradient (MSB inputs, 8-bit weights, rounded ``dy``).
    exact : np.ndarray
        (k, c, r, s) the full-precision weight gradient.
    """
    x_step = kernels.symmetric_step(x, forward_bits)
    wq = kernels.fixed_point(w, kernels.symmetric_step(w, forward_bits), forward_bits)
    g = kernels.stochastic_round(dy, kernels.symmetric_step(dy, gradient_bits), gradient_bits, seed)
    _, exact, _ = kernels.conv2d_backward(x, w, dy, stride, padding, need_dx=False, need_db=False)
    x_msb = kernels.msb_predictor(x, x_step, forward_bits, predictor_bits)
    _, predicted, _ = kernels.conv2d_backward(x_msb, wq, g, stride, padding, need_dx=False, need_db=False)
    return float(np.mean(np.sign(predicted) == np.sign(exact))), predicted, exact


# ------------------------------------------------------------------------------------------------ low precision

class _LowPrecisionLayer(OperandHook):
    """One conv or linear layer on ``bits``-bit operands in both passes (see ``LowPrecisionTraining``)."""

    def __init__(self, method, index):
        self.method, self.index = method, index
        self.saved = {}
        word, grad = ("int", method.bits), ("int", method.gradient_bits)
        self.words = LayerPrecision(forward=(word, word), grad_input=(grad, word), grad_weight=(grad, word))

    def forward(self, layer, x, train=False):
        q = self.method.quantize
        xq, wq = q(x), q(layer.params["weight"])
        if train:
            self.saved.update(xq=xq, wq=wq)
        if isinstance(layer, Conv2d):
            return kernels.conv2d_forward(xq, wq, layer.params.get("bias"), layer.stride, layer.padding,
                                          layer.groups)
        y = xq @ wq.T
        return y + layer.params["bias"] if "bias" in layer.params else y

    def backward(self, layer, dy):
        saved, self.saved = self.saved, {}
        xq, wq = saved["xq"], saved["wq"]
        g = self.method.quantize(dy, self.method.seed * 1013 + self.index, self.method.gradient_bits)
        if isinstance(layer, Conv2d):
            dx, dw, db = kernels.conv2d_backward(xq, wq, g, layer.stride, layer.padding, layer.groups,
                                                 need_dx=layer.input_grad, need_db="bias" in layer.params)
        else:
            dx, dw, db = g @ wq, g.T @ xq, g.sum(axis=0)
        layer.grads["weight"] += dw
        if "bias" in layer.grads:
            layer.grads["bias"] += db
        return dx

    def precision(self, layer):
        return self.words


class LowPrecisionTraining(LayerOperandMethod):
    """A training method running conv and linear layers on ``bits``-bit operands in both passes.

    Inputs and weights are rounded to nearest on a per-tensor ``bits``-bit grid (scale = max |value|), output
    gradients stochastically; the weight and input gradients are computed from those operands and applied to
    float master weights (straight-through for the rounding). The early-bird search phase uses it for the
    low-precision ticket (You et al., 2020, section 4.3; the authors used SWALP, this is a simpler fixed-point
    grid).

    With ``gradient_bits=16`` and ``convs_only`` it is PSG's control (``lean train --low-precision 8
    --lp-gradient-bits 16 --lp-convs-only``): PSG's operands (8-bit inputs and weights, 16-bit stochastically
    rounded output gradients, on the conv layers) with the exact gradient instead of the predicted sign, so a
    benchmark can tell what the prediction saves from what the 8-bit arithmetic saves.

    Parameters
    ----------
    bits : int
        Bits of the inputs and weights, 2..16.
    gradient_bits : int or None
        Bits of the output gradients, 2..16 (None: ``bits``).
    convs_only : bool
        Only the conv layers (as PSG); else conv and linear layers.
    """

    name = "low_precision"
    label = "low-precision training"
    layer_types = (Conv2d, Linear)

    def __init__(self, bits: int = 8, gradient_bits: int | None = None, convs_only: bool = False):
        super().__init__()
        gradient_bits = bits if gradient_bits is None else gradient_bits
        for label, value in (("bits", bits), ("gradient bits", gradient_bits)):
            if not 2 <= int(value) <= 16:
                raise ConfigError(f"low-precision training {label} must be in 2..16; got {value}")
        self.bits, self.gradient_bits = int(bits), int(gradient_bits)
        if convs_only:
            self.layer_types = (Conv2d,)

    def quantize(self, a: np.ndarray, stochastic_seed: int | None = None, bits: int | None = None) -> np.ndarray:
        """``a`` on a per-tensor grid of ``bits`` (default: the method's) bits, scale max |a|: rounded to
        nearest, or stochastically with ``stochastic_seed``; float32, ``a``'s shape."""
        bits = self.bits if bits is None else bits
        step = kernels.symmetric_step(a, bits)
        if stochastic_seed is None:
            return kernels.fixed_point(a, step, bits)
        return kernels.stochastic_round(a, step, bits, stochastic_seed)

    def make_hook(self, name, index, layer):
        return _LowPrecisionLayer(self, index)
