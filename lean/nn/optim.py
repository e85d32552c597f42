"""SGD (momentum, Nesterov, weight decay) and Adam, updating the model's parameter arrays in place.

Both follow PyTorch's update rules, so the same hyper-parameters mean the same thing:
SGD: ``g += wd * p; v = mu * v + g; p -= lr * (g + mu * v if nesterov else v)``.
Adam: ``g += wd * p``; bias-corrected first and second moments.
"""

import numpy as np


class Optimizer:
    def __init__(self, params, grads, weight_decay=0.0):
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

    def state(self):
        """Flat ``{"kind/param name": array}`` plus the step count, for checkpoints."""
        flat = {f"{kind}/{name}": arr for kind, table in self.slots.items() for name, arr in table.items()}
        return flat, {"steps": self.steps}

    def load_state(self, flat, meta):
        self.slots = {}
        for key, arr in flat.items():
            kind, name = key.split("/", 1)
            if name not in self.params or self.params[name].shape != arr.shape:
                raise ValueError(f"optimizer state {key!r} does not match the model's parameters")
            self.slots.setdefault(kind, {})[name] = np.array(arr, dtype=np.float32)
        self.steps = int(meta.get("steps", 0))


class SGD(Optimizer):
    def __init__(self, params, grads, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(params, grads, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def step(self, lr):
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
    def __init__(self, params, grads, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, grads, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def step(self, lr):
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


def make_optimizer(name, params, grads, *, momentum=0.9, nesterov=False, weight_decay=0.0):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        return SGD(params, grads, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return Adam(params, grads, weight_decay=weight_decay)
