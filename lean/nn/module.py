"""The layer contract and the containers that build plain, residual and inverted-residual topologies.

Every layer is a ``Module``:

- ``forward(x, train)`` returns ``y`` and keeps only what ``backward`` needs;
- ``backward(dy)`` returns ``dx`` and *accumulates* into ``grads``, which has the same keys as ``params``;
- ``params`` and ``buffers`` (running statistics) hold arrays that are only ever updated in place, so the flat
  name -> array views that optimizers and compression methods hold stay valid;
- ``config()`` returns the constructor arguments as JSON-able values: a checkpoint stores the architecture as
  ``module_to_config(model)``, and ``module_from_config`` rebuilds it (a pruned, narrower net included);
- ``observers`` (``lean.nn.hooks.Observer``) are told about the calls of modules that report them (conv, linear,
  skip-gated blocks): training methods watch layers through them instead of replacing their methods.
"""

import numpy as np

from .. import kernels

MODULE_TYPES = {}


class Module:
    observers = ()  # lean.nn.hooks.Observer objects told about this module's calls (where it reports them)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODULE_TYPES[cls.__name__] = cls

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}

    # -- the contract
    def forward(self, x, train=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def config(self):
        return {}

    def children(self):
        """Sub-modules as ``(name, module)`` pairs; leaves have none."""
        return []

    # -- observers
    def add_observer(self, observer):
        """Tell ``observer`` about this module's forward and backward calls (``lean.nn.hooks``)."""
        if not any(o is observer for o in self.observers):
            self.observers = (*self.observers, observer)

    def remove_observer(self, observer):
        self.observers = tuple(o for o in self.observers if o is not observer)

    def _notify_forward(self, x, y, train):
        for observer in self.observers:
            observer.on_forward(self, x, y, train)

    def _notify_backward(self, dy, dx):
        for observer in self.observers:
            observer.on_backward(self, dy, dx)

    # -- helpers shared by every module
    def add_param(self, name, value):
        value = np.ascontiguousarray(value, dtype=np.float32)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def zero_grad(self):
        for module in self.modules():
            for g in module.grads.values():
                g.fill(0.0)

    def modules(self, prefix=""):
        """Yield every module of the tree, depth first; see ``named_modules`` for names."""
        for _, module in self.named_modules(prefix):
            yield module

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({args})"


def module_to_config(module):
    """A JSON-able description of a module tree: ``{"type": ..., **constructor args}``."""
    cfg = {"type": type(module).__name__}
    cfg.update(module.config())
    return cfg


def module_from_config(cfg):
    """Rebuild a module tree from ``module_to_config`` output (parameters are freshly initialized)."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"an architecture entry must be a dict with a 'type'; got {cfg!r:.80}")
    kind = cfg["type"]
    concrete = sorted(k for k in MODULE_TYPES if k not in ("Leaf", "WeightedLayer"))
    if kind not in concrete:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(concrete)}")
    args = {k: v for k, v in cfg.items() if k != "type"}
    return MODULE_TYPES[kind].from_config(args)


class Leaf(Module):
    """A module rebuilt from its constructor arguments alone."""

    @classmethod
    def from_config(cls, args):
        return cls(**args)


class Identity(Leaf):
    def forward(self, x, train=False):
        return x

    def backward(self, dy):
        return dy


class Sequential(Module):
    """Layers applied in order; ``layers`` is a list of modules or of ``(name, module)`` pairs."""

    def __init__(self, layers):
        super().__init__()
        named = []
        for i, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(i), item)
            named.append((name, layer))
        names = [n for n, _ in named]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique; got {names}")
        self.layers = named

    def forward(self, x, train=False):
        for _, layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dy):
        for _, layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def children(self):
        return list(self.layers)

    def __getitem__(self, name):
        for n, layer in self.layers:
            if n == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers: {[n for n, _ in self.layers]}")

    def config(self):
        return {"layers": [[name, module_to_config(layer)] for name, layer in self.layers]}

    @classmethod
    def from_config(cls, args):
        return cls([(name, module_from_config(c)) for name, c in args["layers"]])


class Residual(Module):
    """``y = body(x) + shortcut(x)``, then ReLU if ``relu_after`` (the post-activation ResNet block).

    ``shortcut=None`` is the identity. Pre-activation blocks put their BN-ReLU inside ``body`` and use
    ``relu_after=False``; MobileNetV2's inverted residual also adds without an activation.
    """

    def __init__(self, body, shortcut=None, relu_after=False):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.relu_after = bool(relu_after)
        self._y = None

    def forward(self, x, train=False):
        y = self.body.forward(x, train)
        s = x if self.shortcut is None else self.shortcut.forward(x, train)
        if y.shape != s.shape:
            raise ValueError(f"residual branches disagree: body gives {y.shape}, shortcut {s.shape}")
        if self.relu_after:
            y = kernels.add_relu(y, s)
            if train:
                self._y = y
        else:
            y = y + s
        return y

    def backward(self, dy):
        if self.relu_after:
            dy = kernels.relu_backward(dy, self._y)
            self._y = None
        dx = self.body.backward(dy)
        dx += dy if self.shortcut is None else self.shortcut.backward(dy)
        return dx

    def children(self):
        kids = [("body", self.body)]
        if self.shortcut is not None:
            kids.append(("shortcut", self.shortcut))
        return kids

    def config(self):
        return {
            "body": module_to_config(self.body),
            "shortcut": None if self.shortcut is None else module_to_config(self.shortcut),
            "relu_after": self.relu_after,
        }

    @classmethod
    def from_config(cls, args):
        shortcut = args.get("shortcut")
        return cls(module_from_config(args["body"]), None if shortcut is None else module_from_config(shortcut),
                   args.get("relu_after", False))
