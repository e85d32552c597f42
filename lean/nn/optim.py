"""SGD (momentum, Nesterov, weight decay) and Adam, updating the model's parameter arrays in place.

Both follow PyTorch's update rules, so the same hyper-parameters mean the same thing:
SGD: ``g += wd * p; v = mu * v + g; p -= lr * (g + mu * v if nesterov else v)``.
Adam: ``g += wd * p``; bias-corrected first and second moments (Kingma & Ba, ICLR 2015, Algorithm 1).
Weight decay is the L2 term added to the gradient in both, as PyTorch's ``weight_decay`` (not AdamW's).
"""

from collections.abc import Mapping

import numpy as np


class Optimizer:
    """Base of the optimizers: the parameter and gradient arrays by name, per-parameter state ("slots").

    Parameters
    ----------
    params, grads : dict of str to np.ndarray
        The model's own arrays by the same names (``Model.parameters()``, ``Model.gradients()``); ``step``
        updates ``params`` in place.
    weight_decay : float
        L2 coefficient added to each gradient, >= 0.
    """

    def __init__(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float = 0.0):
        if set(params) != set(grads):
            raise ValueError("params and grads must have the same names")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
        self.params, self.grads, self.weight_decay = params, grads, float(weight_decay)
        self.slots = {}  # name of state -> {param name -> array}
        self.steps = 0

    def _slot(self, kind, name):
        table = self.slots.setdefault(kind, {})
        if name not in table:
            table[name] = np.zeros_like(self.params[name])
        return table[name]

    def _grad_with_decay(self, name):
        g = self.grads[name]
        if self.weight_decay:
            g = g + self.weight_decay * self.params[name]
        return g

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Flat ``{"kind/param name": array}`` plus the step count, for checkpoints.

        Returns
        -------
        flat : dict of str to np.ndarray
            Each slot's array (shaped like its parameter) under ``"<kind>/<parameter name>"``, e.g.
            ``"momentum/conv1.weight"`` (SGD) or ``"m/..."`` and ``"v/..."`` (Adam). The arrays themselves, not
            copies.
        meta : dict
            ``{"steps": updates made so far}``.
        """
        flat = {f"{kind}/{name}": arr for kind, table in self.slots.items() for name, arr in table.items()}
        return flat, {"steps": self.steps}

    def load_state(self, flat: Mapping[str, np.ndarray], meta: Mapping) -> None:
        """Restore the slots (copied, float32) and step count from ``state()`` output; shapes are checked."""
        self.slots = {}
        for key, arr in flat.items():
            kind, name = key.split("/", 1)
            if name not in self.params or self.params[name].shape != arr.shape:
                raise ValueError(f"optimizer state {key!r} does not match the model's parameters")
            self.slots.setdefault(kind, {})[name] = np.array(arr, dtype=np.float32)
        self.steps = int(meta.get("steps", 0))


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, PyTorch's form (dampening 0).

    Parameters
    ----------
    params, grads : dict of str to np.ndarray
        As for ``Optimizer``.
    momentum : float
        mu, in [0, 1); 0 is plain SGD.
    nesterov : bool
        Nesterov momentum (needs momentum > 0), in PyTorch's form after Sutskever et al., ICML 2013.
    weight_decay : float
        L2 coefficient, >= 0.
    """

    def __init__(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, grads, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def step(self, lr: float) -> None:
        """One update of every parameter, in place, at learning rate ``lr``, from the current gradients."""
        self.steps += 1
        for name, p in self.params.items():
            g = self._grad_with_decay(name)
            if self.momentum:
                v = self._slot("momentum", name)
                v *= self.momentum
                v += g
                g = g + self.momentum * v if self.nesterov else v
            p -= np.float32(lr) * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, ICLR 2015, Algorithm 1) with L2 weight decay added to the gradient.

    Parameters
    ----------
    params, grads : dict of str to np.ndarray
        As for ``Optimizer``.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    eps : float
        Added to the root of the second moment.
    weight_decay : float
        L2 coefficient, >= 0.
    """

    def __init__(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, grads, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def step(self, lr: float) -> None:
        """One update of every parameter, in place, at learning rate ``lr``, from the current gradients."""
        self.steps += 1
        c1 = 1.0 - self.beta1 ** self.steps
        c2 = 1.0 - self.beta2 ** self.steps
        for name, p in self.params.items():
            g = self._grad_with_decay(name)
            m = self._slot("m", name)
            v = self._slot("v", name)
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p -= (np.float32(lr / c1) * m / (np.sqrt(v / c2) + self.eps)).astype(np.float32)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], *,
                   momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """The optimizer called ``name`` (``"sgd"`` or ``"adam"``; Adam ignores ``momentum`` and ``nesterov``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        return SGD(params, grads, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return Adam(params, grads, weight_decay=weight_decay)
