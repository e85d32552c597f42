"""``Model``: a module tree plus what a checkpoint needs to know about it (input shape, classes, name).

Its flat views (``parameters()``, ``gradients()``, ``buffers()``) map dotted names such as
``stage1.0.body.conv1.weight`` to the very arrays the layers use, so an optimizer or a compression method edits
the model by writing into them.
"""

from collections.abc import Mapping

import numpy as np

from .layers import Dropout
from .module import Module, module_from_config, module_to_config


class Model:
    """A network with its input shape, number of classes and name.

    Parameters
    ----------
    net : Module
        The module tree, mapping (n, h, w, c) images to (n, num_classes) logits. A net with skip-gated blocks
        (``lean.nn.gates``) holds exactly one ``GateController``, which the model links to every block.
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Number of logits per image.
    name : str
        The net's name (``lean.nets`` name, or "custom").
    """

    def __init__(self, net: Module, input_shape: tuple[int, int, int], num_classes: int, name: str = "custom"):
        self.net = net
        self.input_shape = tuple(int(v) for v in input_shape)  # (h, w, c)
        self.num_classes = int(num_classes)
        self.name = name
        self.set_input_grad(False)
        self._link_gates()

    def _link_gates(self):
        """Point every gated block at the network's shared gate controller (``lean.nn.gates``; the dynamic
        inference blocks of ``lean.dynamic`` are gated blocks too: anything with ``gated = True`` and ``link``;
        a controller is any module with ``controls_gates = True``)."""
        controllers = [m for m in self.net.modules() if getattr(m, "controls_gates", False)]
        gated = [m for m in self.net.modules() if getattr(m, "gated", False)]
        if gated and len(controllers) != 1:
            raise ValueError(f"a net with gated blocks needs exactly one gate controller; found {len(controllers)}")
        for block in gated:
            block.link(controllers[0])

    def set_input_grad(self, wanted: bool) -> None:
        """Whether ``backward`` returns the gradient with respect to the input images.

        Off by default: training never needs it, and for a first conv layer it costs as much as its weight
        gradient. The first leaf module that runs is the one that sees the input.
        """
        from .layers import Conv2d

        first = next((m for m in self.net.modules() if not m.children()), None)
        if isinstance(first, Conv2d):
            first.input_grad = bool(wanted)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Logits for a batch of images.

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, c) with (h, w, c) = ``input_shape``, normalized float32.
        train : bool
            Training mode (batch statistics, dropout, sampled gates); keep what ``backward`` needs.

        Returns
        -------
        np.ndarray
            (n, num_classes) logits.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"model {self.name} expects input (n, {', '.join(map(str, self.input_shape))}); "
                             f"got {tuple(x.shape)}")
        return self.net.forward(x, train)

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Back-propagate through the net after a training ``forward``; gradients accumulate in ``gradients()``.

        Parameters
        ----------
        dlogits : np.ndarray
            (n, num_classes), gradient of the loss with respect to the logits.

        Returns
        -------
        np.ndarray or None
            Gradient with respect to the images, (n, h, w, c); None when the first layer is a conv and
            ``set_input_grad(True)`` was not called.
        """
        return self.net.backward(dlogits)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits for ``x`` in evaluation mode, computed in batches.

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, c) normalized images, any real dtype (each batch is converted to float32).
        batch_size : int
            Images per forward pass.

        Returns
        -------
        np.ndarray
            (n, num_classes) float32 logits.
        """
        outs = [self.forward(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32), train=False)
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)

    def _flat(self, attr):
        out = {}
        for prefix, module in self.net.named_modules():
            for key, arr in getattr(module, attr).items():
                out[f"{prefix}.{key}" if prefix else key] = arr
        return out

    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter by dotted name (``stage1.0.body.conv1.weight``): the layers' own arrays, not copies."""
        return self._flat("params")

    def gradients(self) -> dict[str, np.ndarray]:
        """Every gradient, by the same names as ``parameters()``: the layers' own arrays."""
        return self._flat("grads")

    def buffers(self) -> dict[str, np.ndarray]:
        """Every buffer (running statistics, masks, codes) by dotted name: the layers' own arrays."""
        return self._flat("buffers")

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        self.net.zero_grad()

    def num_parameters(self) -> int:
        """Number of parameter values (a compressed layer counts its form's trainable arrays)."""
        return int(sum(p.size for p in self.parameters().values()))

    def reseed(self, seed: int) -> None:
        """Give every random layer (dropout) a stream derived from ``seed``."""
        for i, module in enumerate(self.net.modules()):
            if isinstance(module, Dropout) or getattr(module, "random", False):
                module.rng = np.random.default_rng([int(seed), i])

    def config(self) -> dict:
        """The architecture as JSON-able values: name, input shape, classes and ``module_to_config(net)``."""
        return {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "net": module_to_config(self.net)}

    @classmethod
    def from_config(cls, cfg: dict) -> "Model":
        """A model of the architecture ``cfg`` (``config()`` output); its arrays are as the layers' constructors
        leave them (``load_state`` fills them)."""
        try:
            net = module_from_config(cfg["net"])
            return cls(net, cfg["input_shape"], cfg["num_classes"], cfg.get("name", "custom"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"architecture description is incomplete or malformed: {exc}") from exc

    def _stored_arrays(self):
        """What a checkpoint stores, by key: ``params/<name>`` and ``buffers/<name>`` arrays (a compressed layer's
        ``weight.*`` arrays excepted), and the compressed forms by layer name. One walk serves ``state`` and
        ``load_state``."""
        arrays, forms = {}, {}
        for prefix, module in self.net.named_modules():
            form = getattr(module, "form", None)
            if form is not None:
                forms[prefix] = form
            for kind, table in (("params", module.params), ("buffers", module.buffers)):
                for key, arr in table.items():
                    if form is None or not key.startswith("weight."):
                        arrays[f"{kind}/{prefix}.{key}" if prefix else f"{kind}/{key}"] = arr
        return arrays, forms

    def state(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer by flat name; compressed layers give their compact arrays.

        Keys: ``params/<name>``, ``buffers/<name>``, and ``forms/<layer>/<array>`` for a layer with a compressed
        weight form (its codes, masks, codebooks as their own dtypes, not the float training arrays; see each
        form's ``export`` in ``lean.nn.compressed``).
        """
        arrays, forms = self._stored_arrays()
        out = {key: arr.copy() for key, arr in arrays.items()}
        for prefix, form in forms.items():
            for name, arr in form.export().items():
                out[f"forms/{prefix}/{name}"] = arr
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Write arrays from ``state`` (as returned by ``state()``) into the model, in place, checking shapes."""
        targets, forms = self._stored_arrays()
        form_keys = {k for k in state if k.startswith("forms/")}
        missing = sorted(set(targets) - set(state))
        unknown = sorted(set(state) - set(targets) - form_keys)
        layers_in_state = {k.split("/")[1] for k in form_keys}
        if missing or unknown or layers_in_state != set(forms):
            raise ValueError(f"state does not fit the model: missing {missing[:3]}, unexpected {unknown[:3]}, "
                             f"compressed layers {sorted(layers_in_state ^ set(forms))[:3]}")
        for key, target in targets.items():
            src = np.asarray(state[key])
            if src.shape != target.shape:
                raise ValueError(f"{key}: state has shape {src.shape}, model has {target.shape}")
            target[...] = src
        for prefix, form in forms.items():
            form.load({k.split("/")[2]: np.asarray(state[k]) for k in form_keys if k.split("/")[1] == prefix})

    def storage_bits(self) -> int:
        """Bits to store everything the model needs to run: compressed forms as counted by each form, every
        other parameter and every float buffer at 32 bits (running statistics included, as inference needs them)."""
        bits = 0
        for _, module in self.net.named_modules():
            form = getattr(module, "form", None)
            if form is not None:
                bits += form.storage_bits()
            for key, arr in module.params.items():
                if form is None or not key.startswith("weight."):
                    bits += arr.size * 32
            for key, arr in module.buffers.items():
                if not key.startswith("weight.") and arr.dtype.kind == "f":
                    bits += arr.size * 32
        return int(bits)

    def dense_bits(self) -> int:
        """Bits of the same model uncompressed: every parameter (a compressed weight at its dense size) and every
        float buffer other than input-quantization scales at 32 bits."""
        bits = 0
        for _, module in self.net.named_modules():
            form = getattr(module, "form", None)
            if form is not None:
                bits += int(np.prod(form.shape)) * 32
            for key, arr in module.params.items():
                if not key.startswith("weight."):
                    bits += arr.size * 32
            for key, arr in module.buffers.items():
                if not key.startswith(("weight.", "input_")) and arr.dtype.kind == "f":
                    bits += arr.size * 32
        return int(bits)

    def copy(self) -> "Model":
        """An independent model of the same architecture and state (compressed forms included)."""
        clone = Model.from_config(self.config())
        clone.load_state(self.state())
        return clone
