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

import importlib
from collections.abc import Iterator

import numpy as np

from .. import kernels
from .hooks import Observer

MODULE_TYPES = {}


class Module:
    """Base of every layer and container: ``params``, ``grads`` (same keys, float32) and ``buffers`` by name."""

    observers: tuple[Observer, ...] = ()  # told about this module's calls (where it reports them)
    last_method: str | None = None  # the kernel its last forward ran, where it reports one ("fused": folded away)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODULE_TYPES[cls.__name__] = cls

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    # -- the contract
    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The module's output for ``x``; with ``train``, keep what ``backward`` needs.

        Parameters
        ----------
        x : np.ndarray
            Activations, channels-last: (n, h, w, c) for image layers, (n, features) after flattening.
        train : bool
            Training mode (batch statistics, dropout, Bernoulli gates) and keep what ``backward`` needs.

        Returns
        -------
        np.ndarray
            The output, (n, ...) as the module defines it.
        """
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Gradient of the last ``forward(x, train=True)``: accumulates into ``grads`` and returns ``dx``.

        Parameters
        ----------
        dy : np.ndarray
            Gradient of the loss with respect to the output, shaped like the output.

        Returns
        -------
        np.ndarray or None
            ``dx``, shaped like ``x``; None from a first conv layer whose input gradient is off.
        """
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor arguments as JSON-able values (what ``module_to_config`` stores)."""
        return {}

    def children(self) -> list[tuple[str, "Module"]]:
        """Sub-modules as ``(name, module)`` pairs; leaves have none."""
        return []

    # -- observers
    def add_observer(self, observer: Observer) -> None:
        """Tell ``observer`` about this module's forward and backward calls (``lean.nn.hooks``)."""
        if not any(o is observer for o in self.observers):
            self.observers = (*self.observers, observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop telling ``observer`` about this module's calls (no error if it was not told)."""
        self.observers = tuple(o for o in self.observers if o is not observer)

    def _notify_forward(self, x, y, train):
        for observer in self.observers:
            observer.on_forward(self, x, y, train)

    def _notify_backward(self, dy, dx):
        for observer in self.observers:
            observer.on_backward(self, dy, dx)

    # -- helpers shared by every module
    def add_param(self, name: str, value: np.ndarray) -> None:
        """Register ``value`` (copied to contiguous float32) as parameter ``name``, with a zero gradient."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def zero_grad(self) -> None:
        """Set the gradients of this module and of every sub-module to zero, in place."""
        for module in self.modules():
            for g in module.grads.values():
                g.fill(0.0)

    def modules(self, prefix: str = "") -> Iterator["Module"]:
        """Yield every module of the tree, depth first; see ``named_modules`` for names."""
        for _, module in self.named_modules(prefix):
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Yield ``(dotted name, module)`` for this module (named ``prefix``) and its sub-modules, depth first."""
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({args})"


def module_to_config(module: Module) -> dict:
    """A JSON-able description of a module tree: ``{"type": ..., **constructor args}``; a layer defined outside
    ``lean.nn`` (DFS's blocks in ``lean.dynamic``) also names its module, so a checkpoint rebuilds it wherever
    it is read."""
    cfg = {"type": type(module).__name__}
    where = type(module).__module__
    if where.startswith("lean.") and not where.startswith("lean.nn."):
        cfg["module"] = where
    cfg.update(module.config())
    return cfg


def module_from_config(cfg: dict) -> Module:
    """Rebuild a module tree from ``module_to_config`` output (parameters are freshly initialized). A layer type
    not registered yet whose ``module`` is part of lean is looked up like a plug-in: that module is imported
    (it registers its layers), as a checkpoint's training methods are."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"an architecture entry must be a dict with a 'type'; got {cfg!r:.80}")
    kind, where = cfg["type"], cfg.get("module")
    if kind not in MODULE_TYPES and isinstance(where, str) and where.split(".")[0] == "lean":
        importlib.import_module(where)
    concrete = sorted(k for k in MODULE_TYPES if k not in ("Leaf", "WeightedLayer"))
    if kind not in concrete:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(concrete)}")
    args = {k: v for k, v in cfg.items() if k not in ("type", "module")}
    return MODULE_TYPES[kind].from_config(args)


class Leaf(Module):
    """A module rebuilt from its constructor arguments alone."""

    @classmethod
    def from_config(cls, args: dict) -> "Leaf":
        """The module built from ``config()`` output."""
        return cls(**args)


class Identity(Leaf):
    """``y = x``, any shape; ``backward`` passes ``dy`` through."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x`` itself (any shape)."""
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy`` itself."""
        return dy


class Sequential(Module):
    """Layers applied in order.

    Parameters
    ----------
    layers : list of Module or of (str, Module)
        The layers, first to last; unnamed ones are named by their position ("0", "1", ...). Names must be
        unique: they make the dotted parameter names (``stage1.0.body.conv1.weight``).
    """

    def __init__(self, layers: list[Module | tuple[str, Module]]):
        super().__init__()
        named = []
        for i, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(i), item)
            named.append((name, layer))
        names = [n for n, _ in named]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique; got {names}")
        self.layers = named

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Each layer's ``forward`` on the previous one's output; shapes are the layers' own. At evaluation,
        a convolution and the batch norm and ReLU after it run as one (``lean.nn.fusion``)."""
        if not train:
            return self.forward_eval(x)[0]
        for _, layer in self.layers:
            x = layer.forward(x, train)
        return x

    def forward_eval(self, x: np.ndarray, residual: np.ndarray | None = None,
                     relu: bool = False) -> tuple[np.ndarray, bool]:
        """Evaluation forward, fused (``lean.nn.fusion.run_sequence``): (output, whether ``residual`` was added
        and ``relu`` applied in the last convolution's store)."""
        from .fusion import run_sequence

        return run_sequence([layer for _, layer in self.layers], x, residual, relu)

    def forward_train_residual(self, x: np.ndarray, residual: np.ndarray, relu: bool) -> np.ndarray | None:
        """Training forward of a residual block's body whose last layer is a batch norm without ReLU (and
        without observers): that batch norm adds ``residual`` and applies ReLU if ``relu`` in its output pass
        (``BatchNorm.forward_train_residual``), and the block's output is returned; None (nothing run) for any
        other body."""
        from .layers import BatchNorm

        last = self.layers[-1][1] if self.layers else None
        if type(last) is not BatchNorm or last.relu or last.observers:
            return None
        for _, layer in self.layers[:-1]:
            x = layer.forward(x, True)
        if x.shape != residual.shape:
            raise ValueError(f"residual branches disagree: body gives {x.shape}, shortcut {residual.shape}")
        return last.forward_train_residual(x, residual, relu)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Each layer's ``backward``, last layer first; returns the first layer's ``dx``."""
        for _, layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def children(self) -> list[tuple[str, Module]]:
        return list(self.layers)

    def __getitem__(self, name: str) -> Module:
        for n, layer in self.layers:
            if n == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers: {[n for n, _ in self.layers]}")

    def config(self) -> dict:
        return {"layers": [[name, module_to_config(layer)] for name, layer in self.layers]}

    @classmethod
    def from_config(cls, args: dict) -> "Sequential":
        return cls([(name, module_from_config(c)) for name, c in args["layers"]])


class Residual(Module):
    """``y = body(x) + shortcut(x)``, then ReLU if ``relu_after`` (the post-activation ResNet block).

    ``shortcut=None`` is the identity. Pre-activation blocks put their BN-ReLU inside ``body`` and use
    ``relu_after=False``; MobileNetV2's inverted residual also adds without an activation.

    Parameters
    ----------
    body : Module
        The residual branch, (n, h, w, c_in) -> (n, oh, ow, c_out).
    shortcut : Module or None
        The shortcut branch, with the same output shape as ``body``; None is the identity (then
        ``c_out == c_in`` and ``oh, ow == h, w``).
    relu_after : bool
        Apply ReLU to the sum (He et al., CVPR 2016; off in pre-activation blocks, He et al., ECCV 2016).
    """

    def __init__(self, body: Module, shortcut: Module | None = None, relu_after: bool = False):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.relu_after = bool(relu_after)
        self._y = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The block's output.

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, c_in).
        train : bool
            Training mode; keep what ``backward`` needs (the ReLU's output).

        Returns
        -------
        np.ndarray
            (n, oh, ow, c_out), the shape both branches give.
        """
        s = x if self.shortcut is None else self.shortcut.forward(x, train)
        if not train and isinstance(self.body, Sequential):
            y, merged = self.body.forward_eval(x, s, self.relu_after)  # the add and ReLU in the last conv's store
            if merged:
                return y
        elif isinstance(self.body, Sequential) and self.relu_after and (
                y := self.body.forward_train_residual(x, s, True)) is not None:
            self._y = y  # the add and ReLU in the last batch norm's output pass
            return y
        else:
            y = self.body.forward(x, train)
        if y.shape != s.shape:
            raise ValueError(f"residual branches disagree: body gives {y.shape}, shortcut {s.shape}")
        if self.relu_after:
            y = kernels.add_relu(y, s)
            if train:
                self._y = y
        else:
            y = y + s
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of ``forward``: the sum of both branches' input gradients.

        Parameters
        ----------
        dy : np.ndarray
            (n, oh, ow, c_out).

        Returns
        -------
        np.ndarray
            dx (n, h, w, c_in).
        """
        if self.relu_after:
            dy = kernels.relu_backward(dy, self._y)
            self._y = None
        dx = self.body.backward(dy)
        dx += dy if self.shortcut is None else self.shortcut.backward(dy)
        return dx

    def children(self) -> list[tuple[str, Module]]:
        kids = [("body", self.body)]
        if self.shortcut is not None:
            kids.append(("shortcut", self.shortcut))
        return kids

    def config(self) -> dict:
        return {
            "body": module_to_config(self.body),
            "shortcut": None if self.shortcut is None else module_to_config(self.shortcut),
            "relu_after": self.relu_after,
        }

    @classmethod
    def from_config(cls, args: dict) -> "Residual":
        shortcut = args.get("shortcut")
        return cls(module_from_config(args["body"]), None if shortcut is None else module_from_config(shortcut),
                   args.get("relu_after", False))


class DenseLayer(Module):
    """``y = concat(x, body(x))`` along channels: a DenseNet layer (Huang et al., CVPR 2017), whose output keeps
    every earlier feature map and adds ``body``'s new ones (the growth rate).

    Parameters
    ----------
    body : Module
        (n, h, w, c_in) -> (n, h, w, growth): BN-ReLU-conv (with a 1x1 bottleneck first in DenseNet-BC).
    """

    def __init__(self, body: Module):
        super().__init__()
        self.body = body
        self._c = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, c_in) -> (n, h, w, c_in + growth): the input, then the body's new channels."""
        new = self.body.forward(x, train)
        if new.shape[:3] != x.shape[:3]:
            raise ValueError(f"a dense layer's body must keep the map size: {x.shape} -> {new.shape}")
        if train:
            self._c = x.shape[3]
        return np.concatenate([x, new.astype(x.dtype, copy=False)], axis=3)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """The input's gradient: its own channels of ``dy`` plus what flows back through the body."""
        c = self._c
        dx = self.body.backward(np.ascontiguousarray(dy[..., c:]))
        return dx + dy[..., :c]

    def children(self) -> list[tuple[str, Module]]:
        return [("body", self.body)]

    def config(self) -> dict:
        return {"body": module_to_config(self.body)}

    @classmethod
    def from_config(cls, args: dict) -> "DenseLayer":
        return cls(module_from_config(args["body"]))
