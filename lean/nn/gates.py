"""Skip gates for residual blocks: the selective layer update (SLU) of E2-Train (Wang et al., NeurIPS 2019).

SLU is the paper's model-level technique (section number unconfirmed). A gated block decides per image whether
its residual block runs:

    p = mean over (h, w) of x          (global average pool, (n, c))
    z = p @ proj_weight.T + proj_bias  (a 1x1 conv on the pooled input, to 10 values; per block)
    h_t, c_t = LSTM(z, h_{t-1}, c_{t-1})  (one recurrent cell shared by every gated block, ``GateController``)
    prob = sigmoid(h_t @ w_out.T + b_out)
    m ~ Bernoulli(prob) in training, m = prob > 0.5 in evaluation
    y = block(x) where m = 1, y = x where m = 0   (the block runs on the kept images only)

Gradients are hand-written, through the blocks in reverse order (back-propagation through time over the
shared cell). The Bernoulli sample has no gradient; its surrogate is straight-through (d prob = d m), with
dL/dm_i = <dy_i, block(x)_i - x_i> for an image whose block ran and 0 for one whose block was skipped (its
block output was never computed: computing it would spend the energy SLU saves). The computation cost term
``beta * sign * sum(m)`` over the batch's images and gated blocks (sign +1 while more blocks run than
``target``, else -1) adds ``beta * sign`` to every dL/dm_i. Because a skipped block gets no task gradient, only
this term can bring it back: with a cost of 1e-5 / batch size every gate closed for good within a few epochs
here (ResNet-20, 10 epochs on 10,000 Fashion-MNIST images: 83.5% against 88.0%, all seven gated blocks skipped
for every test image). lean's default beta is 1e-3 (ResNet-20 on the digits, target 0.5: 53% of gated blocks
ran in training, against 75% with the authors' 1e-5).

``GateController`` is a layer of the network (first in its top-level ``Sequential``, an identity on the data) so
its parameters are saved, optimized and restored like any other; ``Model`` links each ``GatedResidual`` to it.
"""

from contextlib import contextmanager

import numpy as np

from .layers import Conv2d
from .module import Leaf, Module, Residual, Sequential, module_from_config, module_to_config

GATE_HIDDEN = 10


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class GateController(Leaf):
    """The recurrent cell (LSTM, ``hidden`` units) and output head shared by every gated block.

    Parameters
    ----------
    hidden : int
        Units of the cell; also the size of each block's projection ``z``.
    target : float
        Fraction of gated blocks meant to run, in (0, 1]: decides the sign of the cost term.
    beta : float
        Weight of the computation cost term, >= 0.
    seed : int
        Seed of the cell's initial weights.

    Notes
    -----
    E2-Train's selective layer update. Parameters: ``w_x``, ``w_h`` (4 * hidden, hidden) and ``b``
    (4 * hidden,), the LSTM's input, forget, output and candidate rows in that order; ``w_out`` (1, hidden) and
    ``b_out`` (1,), the head. ``executed`` and ``offered`` count the (image, gated block) pairs of the current
    pass that ran and that were offered.
    """

    controls_gates = True  # ``Model`` links the net's gated blocks to it

    def __init__(self, hidden: int = GATE_HIDDEN, target: float = 0.5, beta: float = 1e-3, seed: int = 0):
        super().__init__()
        if not 0.0 < target <= 1.0:
            raise ValueError(f"SLU target (fraction of blocks to run) must be in (0, 1]; got {target}")
        if beta < 0:
            raise ValueError(f"SLU cost weight beta must be >= 0; got {beta}")
        self.hidden, self.target, self.beta, self.seed = int(hidden), float(target), float(beta), int(seed)
        rng = np.random.default_rng([self.seed, 7])
        bound = 1.0 / np.sqrt(self.hidden)
        h = self.hidden
        self.add_param("w_x", rng.uniform(-bound, bound, (4 * h, h)))
        self.add_param("w_h", rng.uniform(-bound, bound, (4 * h, h)))
        self.add_param("b", np.zeros(4 * h))
        self.add_param("w_out", rng.uniform(-bound, bound, (1, h)))
        self.add_param("b_out", np.full(1, 2.0))  # start with blocks running (prob ~ 0.88)
        self._reset(0, False, np.float32)

    def _reset(self, n, train, dtype):
        self._h = np.zeros((n, self.hidden), dtype)
        self._c = np.zeros((n, self.hidden), dtype)
        self._train = train
        self._stack = []
        self._heads = []
        self._dh = self._dc = None
        self.executed = 0
        self.offered = 0

    # -- the layer (an identity on the data; starts and ends one pass of the cell)
    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x`` unchanged (any shape, n images first); resets the cell's state and counts for n images."""
        self._reset(x.shape[0], train, self.params["w_x"].dtype)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy`` unchanged; ends the back-propagation through time of this pass."""
        self._dh = self._dc = None
        return dy

    def config(self) -> dict:
        return {"hidden": self.hidden, "target": self.target, "beta": self.beta, "seed": self.seed}

    @contextmanager
    def all_run(self):
        """Inside: every gated block runs in full, for tracing the network's layers (``lean.hw.workload``).
        SLU's gates keep deciding as they do (a trace follows what the traced image runs); DFS's override it."""
        yield

    # -- the shared cell, one step per gated block (a head on top turns its output into the block's decision)
    def cell_step(self, z: np.ndarray) -> np.ndarray:
        """One step of the shared LSTM for the next gated block: (n, hidden) projection -> (n, hidden) output.

        Advances the cell's state; in training keeps what ``cell_backward`` needs (a stack: blocks undo their
        steps in reverse order).
        """
        p = self.params
        h_prev, c_prev = self._h, self._c
        a = z @ p["w_x"].T + h_prev @ p["w_h"].T + p["b"]
        hd = self.hidden
        i, f, o = _sigmoid(a[:, :hd]), _sigmoid(a[:, hd:2 * hd]), _sigmoid(a[:, 2 * hd:3 * hd])
        g = np.tanh(a[:, 3 * hd:])
        c = f * c_prev + i * g
        tc = np.tanh(c)
        h = o * tc
        if self._train:
            self._stack.append((z, h_prev, c_prev, i, f, o, g, tc, h))
        self._h, self._c = h, c
        return h

    def cell_backward(self, dh: np.ndarray) -> np.ndarray:
        """Gradient of the last ``cell_step`` not yet undone, given d loss / d its output ``dh`` (n, hidden):
        accumulates the cell's gradients, carries the state's gradient to the step before, returns d loss / d z.
        """
        p, gr = self.params, self.grads
        z, h_prev, c_prev, i, f, o, g, tc, h = self._stack.pop()
        if self._dh is not None:
            dh = dh + self._dh
        dc = dh * o * (1.0 - tc * tc)
        if self._dc is not None:
            dc = dc + self._dc
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * tc * o * (1 - o),
                             dc * i * (1 - g * g)], axis=1)
        gr["w_x"] += da.T @ z
        gr["w_h"] += da.T @ h_prev
        gr["b"] += da.sum(axis=0)
        self._dh = da @ p["w_h"]
        self._dc = dc * f
        return da @ p["w_x"]

    def step(self, z: np.ndarray) -> np.ndarray:
        """One step of the shared cell for the next gated block, then the head: SLU's gate.

        Parameters
        ----------
        z : np.ndarray
            (n, hidden), the block's projection of its pooled input.

        Returns
        -------
        np.ndarray
            (n,) probability that the block runs for each image.
        """
        p = self.params
        h = self.cell_step(z)
        prob = _sigmoid(h @ p["w_out"][0] + p["b_out"][0])
        if self._train:
            self._heads.append((h, prob))
        return prob

    def backward_step(self, dprob: np.ndarray) -> np.ndarray:
        """Gradient of one step (the last not yet undone); accumulates the cell's and the head's gradients.

        Parameters
        ----------
        dprob : np.ndarray
            (n,), d loss / d prob of that step.

        Returns
        -------
        np.ndarray
            (n, hidden), d loss / d z of that step.
        """
        p, gr = self.params, self.grads
        h, prob = self._heads.pop()
        dlogit = dprob * prob * (1.0 - prob)
        gr["w_out"] += (dlogit @ h)[None, :]
        gr["b_out"] += dlogit.sum()
        return self.cell_backward(dlogit[:, None] * p["w_out"][0][None, :])

    def cost_gradient(self) -> float:
        """d (beta * sign * sum m) / d m_i: sign +1 while more blocks ran than the target, else -1.

        SLU's computation cost term; the fraction that ran is ``executed / offered`` of this pass.
        """
        fraction = self.executed / self.offered if self.offered else 0.0
        return self.beta * (1.0 if fraction > self.target else -1.0)



class GatedResidual(Module):
    """A residual block that runs only on the images its gate keeps (see the module docstring).

    Parameters
    ----------
    block : Module
        The residual block, shape-preserving: (n, h, w, in_channels) -> (n, h, w, in_channels).
    in_channels : int
        Channels c of the block's input.
    hidden : int
        Size of the projection ``z``; the ``GateController``'s ``hidden``.
    seed : int
        Seed of the projection's initial weights and of the Bernoulli samples (until ``Model.reseed``).

    Notes
    -----
    E2-Train's selective layer update. Parameters: ``proj_weight`` (hidden, in_channels) and ``proj_bias``
    (hidden,), the 1x1 conv on the pooled input. ``last_kept`` is the fraction of images the block ran for in
    the last forward.
    """

    random = True  # Model.reseed gives it a stream for the Bernoulli samples
    gated = True  # Model links it to the net's GateController

    def __init__(self, block: Module, in_channels: int, hidden: int = GATE_HIDDEN, seed: int = 0):
        super().__init__()
        self.block = block
        self.in_channels, self.hidden, self.seed = int(in_channels), int(hidden), int(seed)
        rng = np.random.default_rng([self.seed, 11])
        bound = 1.0 / np.sqrt(self.in_channels)
        self.add_param("proj_weight", rng.uniform(-bound, bound, (self.hidden, self.in_channels)))
        self.add_param("proj_bias", np.zeros(self.hidden))
        self.controller = None
        self.rng = np.random.default_rng(self.seed)
        self._cache = None
        self.last_kept = None

    def link(self, controller: GateController) -> None:
        """Use ``controller``'s shared cell (``Model`` links every gated block of a net to its one controller)."""
        self.controller = controller

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The block's output for the images the gate keeps, ``x`` itself for the others.

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, in_channels).
        train : bool
            Sample the gate (Bernoulli) instead of thresholding it at 0.5; keep what ``backward`` needs.

        Returns
        -------
        np.ndarray
            (n, h, w, in_channels).
        """
        ctrl = self.controller
        if ctrl is None:
            raise ValueError("a GatedResidual needs its GateController: build the model with lean.nn.Model")
        n = x.shape[0]
        pooled = x.mean(axis=(1, 2))
        z = pooled @ self.params["proj_weight"].T + self.params["proj_bias"]
        prob = ctrl.step(z)
        keep = (self.rng.random(n) < prob) if train else (prob > 0.5)  # SLU: m ~ Bernoulli(prob)
        kept = np.flatnonzero(keep)
        ctrl.executed += kept.size
        ctrl.offered += n
        self.last_kept = kept.size / max(n, 1)
        if kept.size == n:
            y = self.block.forward(x, train)
            y_kept, x_kept = y, x
        else:
            y = x.copy()
            y_kept = x_kept = None
            if kept.size:
                x_kept = np.ascontiguousarray(x[kept])
                y_kept = self.block.forward(x_kept, train)
                y[kept] = y_kept
        if train:
            self._cache = (x.shape, pooled, z, kept, x_kept, y_kept)
        if self.observers:
            self._notify_forward(x, y, train)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of a training ``forward``: through the block for the kept images, the gate (straight-through,
        plus the cost term) and the projection.

        Parameters
        ----------
        dy : np.ndarray
            (n, h, w, in_channels).

        Returns
        -------
        np.ndarray
            dx (n, h, w, in_channels).
        """
        shape, pooled, z, kept, x_kept, y_kept = self._cache
        self._cache = None
        n = shape[0]
        ctrl = self.controller
        dm = np.zeros(n, np.float64)
        dx = dy.copy()
        if kept.size:
            dy_kept = np.ascontiguousarray(dy[kept])
            dm[kept] = ((y_kept - x_kept) * dy_kept).reshape(kept.size, -1).sum(axis=1)
            dx[kept] = self.block.backward(dy_kept)
        dm += ctrl.cost_gradient()  # SLU's computation cost term
        dz = ctrl.backward_step(dm)  # straight-through: d prob = d m
        self.grads["proj_weight"] += dz.T @ pooled
        self.grads["proj_bias"] += dz.sum(axis=0)
        dpooled = dz @ self.params["proj_weight"]
        dx += (dpooled / (shape[1] * shape[2]))[:, None, None, :].astype(dx.dtype)
        if self.observers:
            self._notify_backward(dy, dx)
        return dx

    def children(self) -> list[tuple[str, Module]]:
        return [("block", self.block)]

    def config(self) -> dict:
        return {"block": module_to_config(self.block), "in_channels": self.in_channels, "hidden": self.hidden,
                "seed": self.seed}

    @classmethod
    def from_config(cls, args: dict) -> "GatedResidual":
        return cls(module_from_config(args["block"]), args["in_channels"], args.get("hidden", GATE_HIDDEN),
                   args.get("seed", 0))

    def macs_per_call(self, n: int) -> int:
        """The gate's own products for ``n`` images: projection, one LSTM step, output head (the blocks it runs
        report their own)."""
        return n * (self.hidden * self.in_channels + 8 * self.hidden * self.hidden + self.hidden)


def wrap_residual_blocks(module: Module, wrap, kinds: tuple[type, ...] = (Residual,)) -> Module:
    """Give every residual block of ``module`` (every block of one of ``kinds``: DDI adds ``DenseLayer``) whose
    body has a conv to ``wrap(block, first_conv)`` and put what it returns in the block's place (the block itself
    keeps it), through every ``Sequential``, depth first; returns ``module``. How SLU's, DFS's and DDI's gates are
    added (``lean.train.e2train``, ``lean.dynamic.dfs``, ``lean.dynamic.ddi``)."""
    if isinstance(module, Sequential):
        layers = []
        for name, layer in module.layers:
            conv = next((m for m in layer.body.modules() if isinstance(m, Conv2d)), None) if isinstance(
                layer, kinds) else None
            layers.append((name, wrap_residual_blocks(layer if conv is None else wrap(layer, conv), wrap, kinds)))
        module.layers = layers
    return module
