"""Dynamic fractional skipping (DFS): per image, each residual block is skipped or run at a bit width its gate picks.

Paper: J. Shen, Y. Fu, Y. Wang, P. Xu, Z. Wang, Y. Lin, "Fractional Skipping: Towards Finer-Grained Dynamic CNN
Inference", AAAI 2020 (arXiv:2001.00705); authors' code: github.com/Torment123/DFS (built on SkipNet's CIFAR
code). A block's gate chooses among "skip" (the shortcut alone), the block with its conv weights and inputs at
b bits (the authors' 8, 10, 12, 14, 16) and the full-precision block. The steps, and where they are:

- **The gate** (``FractionalBlock.forward``, ``ChoiceController``): global average pool of the block's input, a
  1x1 conv to ``hidden`` = 10 values per block, one LSTM cell shared by every gated block (its state runs from
  block to block within an image: ``lean.nn.gates.GateController.cell_step``), a linear head to one logit per
  option and a softmax; the choice is the argmax.
- **Straight-through** (``FractionalBlock.backward``): the block's output is ``sum_k onehot_k * out_k``, with the
  one-hot's gradient taken as the softmax's (``onehot - p.detach() + p``), so d loss / d p_k = <dy, out_k>. As in
  the authors' code every option's output is computed for every image in training (the gate needs all of them
  for that gradient); the backbone learns only through the chosen option of each image.
- **Computation cost** (``ChoiceController.cost_gradient``): option k costs (b/32)^2 (skip 0, full precision 1);
  the loss adds ``beta * reg * sum(cost of the choices)`` over images and gated blocks, reg = -1 while the
  batch's computation percentage (mean cost per gated block and image) is at or below the target, else +1.
- **Quantization** (``quantized_copy``): a b-bit option is a copy of the block that shares its parameters,
  with every conv weight fake-quantized to b bits (``lean.nn.compressed.QuantizedWeight``, straight-through) and
  every conv input fake-quantized to b bits over a running range (``lean.nn.layers.WeightedLayer``).
- **Three phases** (``FractionalSkipping``, the training method): the base network (gates forced to full
  precision: exactly the plain net); the gates alone aiming at 100% computation (the output is the full
  precision block's, the backbone frozen); then everything jointly at the target.
- **Inference** (``FractionalBlock.forward`` without ``train``): images are grouped by their choice and each
  group runs its option only: a skipped image costs nothing in its block, and the 8-bit option runs on lean's
  integer conv kernel where the CPU has one (``Conv2d._runs_on_integers``); 10 to 16 bits have no faster kernel
  here, they run the float path on fake-quantized operands and are counted as the paper counts them.

Measured (``benchmarks/dfs.py``, ``benchmarks/README.md`` issue 15; ResNet-38 at half width, 10,000 Fashion-MNIST
images, one seed): from a trained base network (``lean train --init``, the authors' protocol) DFS kept the base's
accuracy at 10% and 51% computation, but the same weights with every gate at one width did as well, and the gates
never chose to skip: on this task any width from 6 bits loses nothing. Inference ran at 0.82-1.01x the full
network's speed on this CPU (only the 8-bit option has a faster kernel); the bit-operation count gives 1.8-6.5x.

Where lean departs from the authors' code, and why:

- Weights are quantized symmetrically per tensor (theirs: asymmetric min/max): lean's integer kernels take
  symmetric weights, and a conv weight's range is near-symmetric anyway. Inputs are unsigned over [0, running
  max] (the block's conv inputs follow a ReLU, so this is their min/max with min 0), one range per conv and bit
  width (theirs: one per conv shared by every width), rounded to nearest (their activation quantizer adds
  uniform noise before rounding, in evaluation too, through an argument passed in the wrong position).
- Every residual block but the first is gated, as theirs (the stem and the first block always run); a
  downsampling block's skip is its shortcut (theirs: the same, a 1x1 conv and BN; lean's CIFAR ResNets use
  option A, a parameter-free subsample and zero pad).
- ``beta``: lean's default is 1e-3 (theirs 1e-5; see ``lean.nn.gates`` for why SLU's cost weight was raised too).
"""

from contextlib import contextmanager

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..nn import Conv2d, GateController, Model, Residual, Schedule, Sequential, module_from_config, module_to_config
from ..nn.compressed import QuantizedWeight
from ..nn.gates import wrap_residual_blocks
from ..nn.module import Module
from ..train.methods import TrainingMethod

DEFAULT_BITS = (8, 10, 12, 14, 16)
SKIP, FULL = "skip", "full"
GATE_HIDDEN = 10


def option_names(bits) -> list[str]:
    """The options of a gate, in the order of its logits: "skip", one per bit width ("8", ...), "full"."""
    return [SKIP, *(str(int(b)) for b in bits), FULL]


def option_costs(bits) -> np.ndarray:
    """Cost of each option relative to full precision: skip 0, b bits (b/32)^2, full precision 1 (the paper's)."""
    return np.array([0.0, *((int(b) / 32.0) ** 2 for b in bits), 1.0])


def _mean_over_positions(x):
    """(n, h, w, c) -> (n, c), the gate's global average pool: a batched product with a constant vector, which
    BLAS runs 20x faster here than NumPy's mean over two middle axes (4.5 ms -> 0.23 ms for 500 x 28 x 28 x 8)."""
    n, h, w, c = x.shape
    return np.matmul(np.full(h * w, 1.0 / (h * w), x.dtype), x.reshape(n, h * w, c))


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class ChoiceController(GateController):
    """The LSTM shared by every DFS gate (``GateController``'s cell) with a softmax head over the options.

    Parameters
    ----------
    bits : tuple of int
        The bit widths offered between skip and full precision (each 2..16, increasing).
    target : float
        Computation percentage aimed at, as a fraction in (0, 1]: decides the sign of the cost term.
    beta : float
        Weight of the computation cost term, >= 0.
    hidden : int
        Units of the cell; also the size of each block's projection.
    seed : int
        Seed of the initial weights.

    Notes
    -----
    ``mode`` says how the gates act in this pass: ``"free"`` (the argmax of the softmax decides),
    ``"observe"`` (the gates choose and pay the cost term, but every block runs at full precision: the DFS
    paper's second phase), or an option name (every gate forced to it: ``"full"`` is the plain network, the
    first phase). ``cost_sum`` and ``offered`` count the cost of the choices and the (image, gated block) pairs
    of the current pass.
    """

    def __init__(self, bits=DEFAULT_BITS, target: float = 0.5, beta: float = 1e-3, hidden: int = GATE_HIDDEN,
                 seed: int = 0):
        super().__init__(hidden=hidden, target=target, beta=beta, seed=seed)
        bits = tuple(int(b) for b in bits)
        if not bits or any(not 2 <= b <= 16 for b in bits) or list(bits) != sorted(set(bits)):
            raise ConfigError(f"DFS bit widths must be increasing, each in 2..16; got {','.join(map(str, bits))}")
        self.bits = bits
        self.costs = option_costs(bits)
        self.names = option_names(bits)
        rng = np.random.default_rng([self.seed, 13])
        bound = 1.0 / np.sqrt(self.hidden)
        self.add_param("w_out", rng.uniform(-bound, bound, (len(self.names), self.hidden)))
        self.add_param("b_out", np.zeros(len(self.names)))
        self.mode = "free"

    def _reset(self, n, train, dtype):
        super()._reset(n, train, dtype)
        self.cost_sum = 0.0

    def config(self) -> dict:
        return {**super().config(), "bits": list(self.bits)}

    @property
    def forced(self) -> int | None:
        """Index of the option every gate is forced to, or None (``mode`` "free" or "observe")."""
        return self.names.index(self.mode) if self.mode in self.names else None

    def choose(self, z: np.ndarray) -> np.ndarray:
        """One step of the shared cell for the next gated block, then the head: (n, options) probabilities."""
        p = self.params
        h = self.cell_step(z)
        probs = _softmax(h @ p["w_out"].T + p["b_out"])
        if self._train:
            self._heads.append((h, probs))
        return probs

    def backward_choose(self, dprobs: np.ndarray) -> np.ndarray:
        """Gradient of the last ``choose`` not yet undone: d loss / d probs (n, options) -> d loss / d z."""
        p, gr = self.params, self.grads
        h, probs = self._heads.pop()
        dlogits = probs * (dprobs - (dprobs * probs).sum(axis=1, keepdims=True))
        gr["w_out"] += dlogits.T @ h
        gr["b_out"] += dlogits.sum(axis=0)
        return self.cell_backward(dlogits @ p["w_out"])

    def computation(self) -> float:
        """The current pass's computation percentage, as a fraction: mean cost per (image, gated block)."""
        return self.cost_sum / self.offered if self.offered else 0.0

    @contextmanager
    def all_run(self):
        """Inside: every gate forced to full precision (the whole network traced once, ``lean.hw.workload``)."""
        mode, self.mode = self.mode, FULL
        try:
            yield
        finally:
            self.mode = mode

    def reset_counts(self) -> None:
        """Start counting the gates' choices afresh (before an evaluation)."""
        self.cost_sum, self.offered = 0.0, 0

    def dynamic_report(self, model: Model) -> dict:
        """What the gates chose since the blocks' counts were reset (``lean eval``): the paper's computation
        percentage (every gated block weighing the same), the same weighted by each block's MACs, and each
        block's choices per option."""
        blocks = dfs_blocks(model)
        counts = [b.counts for _, b in blocks]
        images = int(counts[0].sum()) if counts else 0
        macs = np.array([b.macs or 0 for _, b in blocks], np.float64)
        spent = np.array([float(c @ self.costs) for c in counts])
        return {"dfs": {
            "computation": computation_of(counts, self.bits),
            "computation_macs_weighted": float((spent * macs).sum() / max((macs * images).sum(), 1.0)),
            "bits": list(self.bits),
            "images": images,
            "choices": choice_table(((name, b.counts) for name, b in blocks), self.bits),
        }}

    def cost_gradient(self) -> np.ndarray:
        """d (beta * reg * sum of the choices' costs) / d onehot: (options,), reg -1 while the computation is at
        or below the target, else +1 (the authors' rule)."""
        reg = -1.0 if self.computation() <= self.target else 1.0
        return self.beta * reg * self.costs


def _share_arrays(clone: Module, original: Module) -> None:
    """Make every module of ``clone`` use ``original``'s parameter, gradient and buffer arrays (same objects)."""
    for (_, c), (_, o) in zip(clone.named_modules(), original.named_modules(), strict=True):
        c.params = dict(o.params)
        c.grads = dict(o.grads)
        c.buffers = dict(o.buffers)


def shared_copy(module: Module) -> Module:
    """A copy of ``module`` sharing its arrays (its own forward and backward caches)."""
    clone = module_from_config(module_to_config(module))
    _share_arrays(clone, module)
    return clone


def quantized_copy(block: Module, bits: int) -> tuple[Module, list[tuple[str, Conv2d]]]:
    """A copy of ``block`` sharing its parameters, with every conv's weight and input fake-quantized to ``bits``.

    Returns the copy and its convs by dotted name (each has its own input range, ``input_scale`` and
    ``input_signed`` buffers, for the owner to store).
    """
    clone = shared_copy(block)
    convs = []
    for (name, layer), (_, original) in zip(clone.named_modules(), block.named_modules(), strict=True):
        if not isinstance(layer, Conv2d):
            continue
        if original.form is not None or original.input_bits is not None:
            raise ConfigError(f"{name}: DFS quantizes plain float convs (not compressed or quantized ones)")
        form = QuantizedWeight(original.params["weight"].shape, bits=bits)
        form.params["latent"], form.grads["latent"] = original.params["weight"], original.grads["weight"]
        layer.set_form(form)
        layer.set_input_bits(bits)
        convs.append((name, layer))
    return clone, convs


class FractionalBlock(Module):
    """A residual block run per image as its gate chooses: skipped, at one of ``bits``, or at full precision.

    Parameters
    ----------
    block : Residual
        The residual block (any shape change is done by its shortcut).
    in_channels : int
        Channels of the block's input.
    bits : tuple of int
        Bit widths offered (the controller's).
    hidden : int
        Size of the projection (the controller's ``hidden``).
    seed : int
        Seed of the projection's initial weights.

    Notes
    -----
    Parameters ``proj_weight`` (hidden, in_channels), ``proj_bias`` (hidden,); buffers: the input ranges of each
    b-bit copy's convs (``b<bits>.<conv>.input_scale``). ``counts`` holds how many images took each option since
    ``reset_counts`` (evaluation statistics); ``last_choice`` the choices of the last forward.
    """

    gated = True

    def __init__(self, block: Residual, in_channels: int, bits=DEFAULT_BITS, hidden: int = GATE_HIDDEN,
                 seed: int = 0):
        super().__init__()
        if not isinstance(block, Residual):
            raise ConfigError("DFS gates residual blocks")
        self.block = block
        self.in_channels, self.hidden, self.seed = int(in_channels), int(hidden), int(seed)
        self.bits = tuple(int(b) for b in bits)
        rng = np.random.default_rng([self.seed, 17])
        bound = 1.0 / np.sqrt(self.in_channels)
        self.add_param("proj_weight", rng.uniform(-bound, bound, (self.hidden, self.in_channels)))
        self.add_param("proj_bias", np.zeros(self.hidden))
        self.share_arrays()
        self.controller = None
        self._cache = None
        self.last_choice = None
        self.macs = None  # MACs of the full block for one image, once it has seen an input
        self.record = None  # option -> share of the images, recorded on a dataset (``record_counts``)
        self.reset_counts()

    def share_arrays(self) -> None:
        """(Re)make the b-bit copies and the skip path from the block's current arrays (after the block's arrays
        were replaced, e.g. by a float64 copy for a gradient check); the copies' input ranges are kept."""
        self.quantized = {}
        for b in self.bits:
            clone, convs = quantized_copy(self.block, b)
            for name, conv in convs:
                for buffer in ("input_scale", "input_signed"):
                    key = f"b{b}.{name}.{buffer}"
                    if key in self.buffers:  # keep the range it has (and the array a checkpoint loads into)
                        conv.buffers[buffer] = self.buffers[key]
                    else:
                        self.buffers[key] = conv.buffers[buffer]
            self.quantized[b] = clone
        self.skip_path = None if self.block.shortcut is None else shared_copy(self.block.shortcut)

    def reset_counts(self) -> None:
        """Start counting the options taken afresh (``counts``, one per option)."""
        self.counts = np.zeros(len(self.bits) + 2, np.int64)

    def link(self, controller: GateController) -> None:
        if not isinstance(controller, ChoiceController) or tuple(controller.bits) != self.bits:
            raise ValueError("a DFS block needs a ChoiceController with the same bit widths")
        self.controller = controller

    def _option(self, k):
        """The module that computes option ``k`` (None: skip through the shortcut)."""
        if k == 0:
            return None
        if k == len(self.bits) + 1:
            return self.block
        return self.quantized[self.bits[k - 1]]

    def _run(self, k, x, train):
        module = self._option(k)
        if module is not None:
            return module.forward(x, train)
        return x if self.skip_path is None else self.skip_path.forward(x, train)

    def _back(self, k, dy):
        module = self._option(k)
        if module is not None:
            return module.backward(dy)
        return dy if self.skip_path is None else self.skip_path.backward(dy)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The block's output for each image by its gate's choice (see the module docstring).

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, in_channels).
        train : bool
            Training: every option runs on every image (the gate's gradient needs them); otherwise each image
            runs its own option only.

        Returns
        -------
        np.ndarray
            The block's output shape.
        """
        ctrl = self.controller
        if ctrl is None:
            raise ValueError("a FractionalBlock needs its ChoiceController: build the model with lean.nn.Model")
        n = x.shape[0]
        if self.macs is None:
            self.macs = block_macs(self.block, x.shape[1], x.shape[2])
        forced = ctrl.forced
        if forced is None and ctrl.mode == "observe" and not train:  # phase 2 is tested at full precision
            forced = len(self.bits) + 1
        if forced is not None:  # no gate at all: every image takes the forced option
            choice = np.full(n, forced)
            self._cache = ("forced", forced) if train else None
            y = self._run(forced, x, train)
        else:
            pooled = _mean_over_positions(x)
            z = pooled @ self.params["proj_weight"].T + self.params["proj_bias"]
            probs = ctrl.choose(z)
            choice = probs.argmax(axis=1)
            full = len(self.bits) + 1
            if train and ctrl.mode == "observe":
                y = self._run(full, x, True)
                self._cache = ("observe", x.shape, pooled, choice)
            elif train:
                outs = [self._run(k, x, True) for k in range(full + 1)]
                y = outs[0].copy()
                for k in range(1, full + 1):
                    rows = choice == k
                    if rows.any():
                        y[rows] = outs[k][rows]
                self._cache = ("free", x.shape, pooled, choice, outs)
            else:
                y = None
                for k in np.unique(choice):
                    rows = np.flatnonzero(choice == k)
                    part = self._run(int(k), x if rows.size == n else np.ascontiguousarray(x[rows]), False)
                    if y is None:
                        y = part if rows.size == n else np.empty((n, *part.shape[1:]), part.dtype)
                    if rows.size != n:
                        y[rows] = part
        ctrl.cost_sum += float(ctrl.costs[choice].sum())
        ctrl.offered += n
        self.counts += np.bincount(choice, minlength=len(self.counts))
        self.last_choice = choice
        if self.observers and forced is None:  # the gate ran (its products are the block's own to report)
            self._notify_forward(x, y, train)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of a training ``forward``: through each option for the images that chose it, and (unless the
        gates were forced) the gate: straight-through with the cost term, the cell and the projection."""
        cache, self._cache = self._cache, None
        if cache[0] == "forced":
            return self._back(cache[1], dy)
        ctrl = self.controller
        shape, pooled, choice = cache[1], cache[2], cache[3]
        n = shape[0]
        full = len(self.bits) + 1
        if cache[0] == "observe":
            dx = self.block.backward(dy)
            dprobs = np.zeros((n, full + 1))
        else:
            outs = cache[4]
            dprobs = np.stack([(dy * o).reshape(n, -1).sum(axis=1) for o in outs], axis=1).astype(np.float64)
            dx = None
            for k in range(full + 1):
                rows = choice == k
                if not rows.any():
                    continue
                part = self._back(k, dy * rows[:, None, None, None])
                dx = part if dx is None else dx + part
        dprobs = dprobs + ctrl.cost_gradient()[None, :]
        dz = ctrl.backward_choose(dprobs)
        self.grads["proj_weight"] += dz.T @ pooled
        self.grads["proj_bias"] += dz.sum(axis=0)
        dpooled = dz @ self.params["proj_weight"]
        dx = dx + (dpooled / (shape[1] * shape[2]))[:, None, None, :].astype(dx.dtype)
        if self.observers:
            self._notify_backward(dy, dx)
        return dx

    def children(self) -> list[tuple[str, Module]]:
        return [("block", self.block)]

    def record_counts(self, model=None) -> None:
        """Keep the shares of the options counted since ``reset_counts`` as this block's record (stored in the
        checkpoint's architecture by ``lean eval --record``; the hardware models cost it)."""
        total = int(self.counts.sum())
        if total:
            self.record = {name: int(c) / total for name, c in zip(option_names(self.bits), self.counts,
                                                                   strict=True)}

    def recorded_options(self) -> list[tuple[str, float, int | None]] | None:
        """``[(option, share of the images, bits or None for full precision), ...]`` of the options recorded as
        taken (skip left out: it runs none of the block's layers), or None if nothing was recorded."""
        if self.record is None:
            return None
        widths = {str(b): b for b in self.bits}
        return [(name, share, widths.get(name)) for name, share in self.record.items() if name != SKIP and share > 0]

    def shadow_modules(self) -> list[Module]:
        """The modules that run beside the block without being part of the tree (the b-bit copies and the skip
        path): the training-energy meter watches them too."""
        extra = [m for copy in self.quantized.values() for m in copy.modules()]
        return extra + ([] if self.skip_path is None else list(self.skip_path.modules()))

    def macs_per_call(self, n: int) -> int:
        """The gate's own products for ``n`` images: projection, one LSTM step, the head over the options."""
        options = len(self.bits) + 2
        return n * (self.hidden * self.in_channels + 8 * self.hidden * self.hidden + options * self.hidden)

    def config(self) -> dict:
        out = {"block": module_to_config(self.block), "in_channels": self.in_channels, "bits": list(self.bits),
               "hidden": self.hidden, "seed": self.seed}
        if self.record is not None:
            out["record"] = dict(self.record)
        return out

    @classmethod
    def from_config(cls, args: dict) -> "FractionalBlock":
        block = cls(module_from_config(args["block"]), args["in_channels"], tuple(args["bits"]),
                    args.get("hidden", GATE_HIDDEN), args.get("seed", 0))
        block.record = dict(args["record"]) if args.get("record") is not None else None
        return block


def block_macs(block: Residual, h: int, w: int) -> int:
    """Multiply-accumulates of ``block``'s convs (and linear layers) for one (h, w) input image."""
    total = 0
    for path, (ph, pw) in ((block.body, (h, w)), (block.shortcut, (h, w))):
        if path is None:
            continue
        for layer in path.modules():
            if isinstance(layer, Conv2d):
                oh = kernels.conv_output_size(ph, layer.kernel_size, layer.stride, layer.padding)
                ow = kernels.conv_output_size(pw, layer.kernel_size, layer.stride, layer.padding)
                total += (oh * ow * layer.out_channels * layer.in_channels // layer.groups
                          * layer.kernel_size ** 2)
                ph, pw = oh, ow
    return int(total)



def has_dfs_gates(model: Model) -> bool:
    """Whether ``model`` holds DFS's ``ChoiceController`` (from ``add_dfs_gates``)."""
    return any(isinstance(m, ChoiceController) for m in model.net.modules())


def add_dfs_gates(model: Model, *, bits=DEFAULT_BITS, target: float = 0.5, beta: float = 1e-3,
                  seed: int = 0) -> Model:
    """A copy of ``model`` whose residual blocks, all but the first, are DFS blocks (weights copied, gates new).

    Parameters
    ----------
    model : Model
        A residual net whose top level is a ``Sequential``, without gates.
    bits : tuple of int
        Bit widths offered between skip and full precision.
    target : float
        Computation percentage aimed at, as a fraction in (0, 1].
    beta : float
        Weight of the computation cost term, >= 0 (authors: 1e-5).
    seed : int
        Seed of the gates' initial weights.

    Returns
    -------
    Model
        A new model with a ``ChoiceController`` first.

    Raises
    ------
    ConfigError
        ``model`` is gated already, has fewer than two residual blocks, or no top-level ``Sequential``.
    """
    if not 0.0 < float(target) <= 1.0:
        raise ConfigError(f"DFS target computation must be in (0, 1]; got {target}")
    if any(getattr(m, "gated", False) for m in model.net.modules()):
        raise ConfigError(f"{model.name} already has gates (--dfs cannot be combined with --slu)")
    if not isinstance(model.net, Sequential):
        raise ConfigError(f"{model.name}: DFS needs a top-level Sequential")
    model = model.copy()
    seen = 0

    def gate(block, conv):
        nonlocal seen
        seen += 1  # the first block always runs, as in the authors' code
        return block if seen == 1 else FractionalBlock(block, conv.in_channels, bits, seed=seed * 1000 + seen - 1)

    net = wrap_residual_blocks(model.net, gate)
    if seen < 2:
        raise ConfigError(f"{model.name} has no residual blocks to gate (DFS needs a ResNet)")
    net.layers.insert(0, ("gate", ChoiceController(bits, target=target, beta=beta, seed=seed)))
    return Model(net, model.input_shape, model.num_classes, model.name)


def computation_of(counts, bits) -> float:
    """The paper's computation percentage, as a fraction, of option counts per gated block (an iterable of
    arrays, one count per option): the mean cost per (image, gated block), every block weighing the same."""
    counts = [np.asarray(c) for c in counts]
    total = sum(int(c.sum()) for c in counts)
    return sum(float(c @ option_costs(bits)) for c in counts) / total if total else 0.0


def choice_table(named_counts, bits) -> dict[str, dict[str, int]]:
    """``{block name: {option: images}}`` from ``(name, counts)`` pairs (one count per option)."""
    names = option_names(bits)
    return {name: {opt: int(c) for opt, c in zip(names, counts, strict=True)} for name, counts in named_counts}


def dfs_blocks(model: Model) -> list[tuple[str, FractionalBlock]]:
    """The DFS blocks of ``model`` by dotted name, in network order."""
    return [(name, m) for name, m in model.net.named_modules() if isinstance(m, FractionalBlock)]


def controller(model: Model) -> ChoiceController:
    """The ``ChoiceController`` of a DFS model."""
    found = [m for m in model.net.modules() if isinstance(m, ChoiceController)]
    if len(found) != 1:
        raise ConfigError(f"{model.name} is not a DFS model (no fractional-skipping gates)")
    return found[0]


# ------------------------------------------------------------------------------------------- the training method

def phase_epochs(epochs: int, base_epochs: int | None = None, gate_epochs: int | None = None) -> tuple[int, int, int]:
    """Epochs of DFS's three phases in a run of ``epochs``: (base, gates alone, joint).

    Defaults: half the run for the base network, a twentieth (at least one epoch) for the gates alone, the rest
    jointly. Raises ``ConfigError`` when the joint phase would be empty.
    """
    epochs = int(epochs)
    base = epochs // 2 if base_epochs is None else int(base_epochs)
    gates = max(1, epochs // 20) if gate_epochs is None else int(gate_epochs)
    if base < 0 or gates < 0 or base + gates >= epochs:
        raise ConfigError(f"DFS phases of {base} (base) and {gates} (gates alone) epochs leave no joint phase in "
                          f"{epochs} epochs: give more --epochs or shorter --dfs-phases")
    return base, gates, epochs - base - gates


class FractionalSkipping(TrainingMethod):
    """DFS as a training method (``lean.train.methods`` protocol): the gates, the three phases and their
    learning rates, the statistics of the choices per epoch.

    Phase 1 (``base`` epochs): every gate forced to full precision (the gates' weights restored after each step),
    the run's schedule over these epochs. Phase 2 (``gates`` epochs): the gates choose and pay the cost term aiming
    at 100% computation, every block runs at full precision (also when tested), only the gates are updated (the
    backbone's weights and batch-norm statistics are copied before each forward and restored after the step); a
    constant learning rate of ``lr_factor`` x the run's. Phase 3 (the rest): jointly at the target, the run's
    schedule kind from ``lr_factor`` x its learning rate. Each phase starts with fresh optimizer state (the authors
    run each phase as its own training). The authors: 64k iterations at lr 0.1, 2,000 at 0.01, 64k at 0.01 (steps
    at half and three quarters).
    """

    name = "dfs"

    def __init__(self, target: float = 0.5, bits=DEFAULT_BITS, beta: float = 1e-3, base_epochs: int | None = None,
                 gate_epochs: int | None = None, lr_factor: float = 0.1):
        if not 0.0 < float(target) <= 1.0:
            raise ConfigError(f"--dfs (the target computation) must be in (0, 1]; got {target}")
        self.target, self.bits, self.beta = float(target), tuple(int(b) for b in bits), float(beta)
        self.base_epochs, self.gate_epochs, self.lr_factor = base_epochs, gate_epochs, float(lr_factor)
        self.phases = None
        self.phase = None  # the phase the last epoch ran in (1, 2, 3)
        self.controller = None
        self.blocks = []
        self._gate_arrays = set()
        self._frozen = None
        self._seen = {}  # block name -> options taken in training since the epoch (or the resumed run) started
        self._computation = [0.0, 0]  # sum of each step's computation in the epoch, steps
        self.last_epoch = {}

    # -- protocol
    def prepare(self, model, config):
        self.phases = phase_epochs(config.epochs, self.base_epochs, self.gate_epochs)
        if has_dfs_gates(model):
            return model
        return add_dfs_gates(model, bits=self.bits, target=self.target, beta=self.beta, seed=config.seed)

    def install(self, model):
        self.controller = controller(model)
        self.blocks = dfs_blocks(model)
        gate_modules = [self.controller] + [b for _, b in self.blocks]
        self._gate_arrays = {id(a) for m in gate_modules for a in m.params.values()}
        self._model = model

    def phase_at(self, epoch: int) -> int:
        """The phase (1, 2 or 3) epoch ``epoch`` (0-based) runs in."""
        base, gates, _ = self.phases
        return 1 if epoch < base else 2 if epoch < base + gates else 3

    def on_epoch_start(self, trainer):
        phase = self.phase_at(trainer.epoch)
        if self.phase is not None and phase != self.phase and trainer.step_in_epoch == 0:
            trainer.replace_model(trainer.model)  # a fresh optimizer: each phase is its own training
        self.phase = phase
        ctrl = self.controller
        ctrl.mode = {1: FULL, 2: "observe", 3: "free"}[phase]
        ctrl.target = 1.0 if phase == 2 else self.target
        for _, block in self.blocks:
            block.reset_counts()
        self._seen = {}

    def learning_rate(self, trainer, t, lr):
        base, gates, joint = self.phases
        cfg = trainer.config
        if t < base:
            return Schedule(cfg.schedule, cfg.lr, base, warmup_epochs=cfg.warmup_epochs).lr_at(t)
        if t < base + gates:
            return cfg.lr * self.lr_factor
        return Schedule(cfg.schedule, cfg.lr * self.lr_factor, joint).lr_at(t - base - gates)

    def before_update(self, trainer):
        ctrl = self.controller
        self._computation[0] += ctrl.computation()
        self._computation[1] += 1
        for name, block in self.blocks:
            counts = self._seen.setdefault(name, np.zeros(len(self.bits) + 2, np.int64))
            counts += np.bincount(block.last_choice, minlength=len(counts))

    def on_batch(self, trainer, seed):
        # what the phase keeps as it is, copied before the forward (which moves batch-norm statistics): phase 1
        # the unused gates (weight decay and momentum would move them), phase 2 the backbone, weights and statistics
        model = trainer.model
        if self.phase == 1:
            self._frozen = [(a, a.copy()) for a in model.parameters().values() if id(a) in self._gate_arrays]
        elif self.phase == 2:
            self._frozen = [(a, a.copy()) for a in model.parameters().values() if id(a) not in self._gate_arrays]
            self._frozen += [(a, a.copy()) for m in model.net.modules() for a in m.buffers.values()]

    def after_update(self, trainer):
        if self._frozen is not None:
            for array, kept in self._frozen:
                array[...] = kept
            self._frozen = None

    def on_epoch_end(self, trainer):
        steps = max(self._computation[1], 1)
        record = {"phase": self.phase, "train_computation": self._computation[0] / steps}
        # what the blocks counted beyond the training steps is the test pass (when this epoch had one)
        test = {name: block.counts - self._seen.get(name, 0) for name, block in self.blocks}
        if self.phase == 3 and sum(int(c.sum()) for c in test.values()):
            record["test_choices"] = choice_table(test.items(), self.bits)
            record["test_computation"] = computation_of(test.values(), self.bits)
        self.last_epoch = record
        trainer.history[-1]["dfs"] = record
        self._computation = [0.0, 0]

    def state(self):
        return {"phase": self.phase, "computation": list(self._computation), "last_epoch": self.last_epoch,
                "phases": list(self.phases)}

    def load_state(self, state):
        self.phase = state.get("phase")
        self._computation = list(state.get("computation", [0.0, 0]))
        self.last_epoch = state.get("last_epoch", {})
        if state.get("phases") and self.phases is not None:  # a resumed run keeps its phase boundaries: more
            base, gates = state["phases"][:2]  # --epochs lengthen the joint phase, never the base one
            total = sum(self.phases)
            if base + gates < total:
                self.phases = (base, gates, total - base - gates)

    def summary(self):
        base, gates, joint = self.phases
        out = {"dfs_phases": [base, gates, joint], "dfs_target": self.target, "dfs_bits": list(self.bits)}
        if "test_computation" in self.last_epoch:
            out["dfs_computation"] = self.last_epoch["test_computation"]
            out["dfs_choices"] = self.last_epoch["test_choices"]
        return out
