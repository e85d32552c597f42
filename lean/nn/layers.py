"""Layers with explicit forward and backward on channels-last activations ``(n, h, w, c)``.

Weights are stored as everyone writes them (conv ``(k, c // groups, r, s)``, linear ``(out, in)``); parameters
start at zero and are filled by ``lean.nn.init`` (so one seed decides a whole model).
"""

import numpy as np

from .. import kernels
from .compressed import WeightForm, form_from_config
from .hooks import OperandHook
from .module import Leaf


class WeightedLayer(Leaf):
    """Conv2d and Linear: a dense ``weight`` parameter, or a compressed form (``lean.nn.compressed``) in its place,
    and optional fake quantization of the layer input to ``input_bits`` (straight-through gradient).

    ``forward`` checks the input, then runs the layer's own product (``product_forward``) or, when a training
    method set one, its operand hook (``lean.nn.hooks.OperandHook``), and tells the observers; ``backward`` the
    same with ``product_backward``.
    """

    form: WeightForm | None = None
    input_bits: int | None = None
    operand_hook: OperandHook | None = None
    input_grad: bool = True  # False when the layer reads the network input: its input gradient would be thrown away

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The layer's output: its own product, or its operand hook's.

        Parameters
        ----------
        x : np.ndarray
            Conv2d: (n, h, w, in_channels); Linear: (n, in_features). float32.
        train : bool
            Training mode: update the input quantizer's running scale and keep what ``backward`` needs.

        Returns
        -------
        np.ndarray
            Conv2d: (n, oh, ow, out_channels), ``oh = (h + 2 * padding - kernel_size) // stride + 1`` (``ow``
            likewise); Linear: (n, out_features).
        """
        self._check_input(x)
        hook = self.operand_hook
        y = self.product_forward(x, train) if hook is None else hook.forward(self, x, train)
        if self.observers:
            self._notify_forward(x, y, train)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Gradient of the last training ``forward``: accumulates into ``grads`` (``weight`` or the form's
        ``weight.<name>`` arrays, and ``bias``).

        Parameters
        ----------
        dy : np.ndarray
            Gradient of the output, shaped like the output of ``forward``.

        Returns
        -------
        np.ndarray or None
            dx, shaped like ``x``; None for a conv layer whose ``input_grad`` is off. With input quantization,
            zero where the input was clipped (straight-through inside the clipping range).
        """
        hook = self.operand_hook
        dx = self.product_backward(dy) if hook is None else hook.backward(self, dy)
        if self.observers:
            self._notify_backward(dy, dx)
        return dx

    def set_operand_hook(self, hook: OperandHook | None) -> "WeightedLayer":
        """Run this layer's products through ``hook`` (``lean.nn.hooks.OperandHook``); None restores its own."""
        if hook is not None and self.operand_hook is not None and self.operand_hook is not hook:
            raise ValueError(f"{type(self).__name__} already has an operand hook ({type(self.operand_hook).__name__});"
                             " two training methods cannot both change how one layer multiplies")
        self.operand_hook = hook
        return self

    def weight(self) -> np.ndarray:
        """The dense weight the layer multiplies by: its parameter, or the form's rebuild (``form.dense()``)."""
        return self.params["weight"] if self.form is None else self.form.dense()

    def _weight_grad(self, dw):
        if self.form is None:
            self.grads["weight"] += dw
        else:
            self.form.backward(dw)

    def set_form(self, form: WeightForm) -> "WeightedLayer":
        """Replace the dense weight by ``form`` (its arrays appear as ``weight.<name>`` params and buffers)."""
        if form.shape != self._weight_shape():
            raise ValueError(f"form shape {form.shape} does not match the weight {self._weight_shape()}")
        for d in (self.params, self.grads, self.buffers):
            for key in [k for k in d if k == "weight" or k.startswith("weight.")]:
                del d[key]
        self.form = form
        for name in form.params:
            self.params[f"weight.{name}"] = form.params[name]
            self.grads[f"weight.{name}"] = form.grads[name]
        for name in form.buffers:
            self.buffers[f"weight.{name}"] = form.buffers[name]
        return self

    def set_input_bits(self, bits: int | None) -> "WeightedLayer":
        """Fake-quantize this layer's input to ``bits`` (None: off). The clipping scale is a buffer."""
        if bits is not None and not 2 <= int(bits) <= 16:
            raise ValueError(f"activation bits must be in 2..16; got {bits}")
        self.input_bits = None if bits is None else int(bits)
        if bits is None:
            self.buffers.pop("input_scale", None)
            self.buffers.pop("input_signed", None)
        else:
            self.buffers.setdefault("input_scale", np.zeros(1, np.float32))
            self.buffers.setdefault("input_signed", np.zeros(1, np.float32))
        return self

    def _quantize_input(self, x, train):
        """Uniform fake quantization of the input to the clipping range ``input_scale``.

        The range is the first batch's max|x|, then in training an exponential moving average of each batch's
        max|x| (decay 0.9), as in Jacob et al., CVPR 2018 (arXiv:1712.05877), section 3.1: a batch whose values
        exceed the average is clipped there, and the straight-through gradient is zero where it was clipped. In
        evaluation the range stays as it is; a layer with no range yet (post-training quantization) takes the
        first batch's max|x| and keeps it.
        """
        if self.input_bits is None:
            return x, None
        scale_buf, signed_buf = self.buffers["input_scale"], self.buffers["input_signed"]
        if train or scale_buf[0] == 0:
            top = float(np.abs(x).max())
            scale_buf[0] = scale_buf[0] * 0.9 + top * 0.1 if scale_buf[0] else top
            if x.min() < 0:
                signed_buf[0] = 1.0
        lo, levels, step = self._input_grid()
        mask = (x >= lo * step) & (x <= levels * step) if train else None
        return kernels.fake_quantize(x, step, lo, levels), mask  # clip(rint(x / step)) * step, one pass

    def _input_grid(self):
        """(lowest code, highest code, step) of the input quantizer: signed or unsigned ``input_bits`` codes."""
        scale, signed = self.buffers["input_scale"][0], bool(self.buffers["input_signed"][0])  # float32 scale
        levels = 2 ** (self.input_bits - 1) - 1 if signed else 2 ** self.input_bits - 1
        return (-levels if signed else 0), levels, (scale / levels if scale > 0 else 1.0)

    def _config_extra(self):
        out = {}
        if self.form is not None:
            out["weight_form"] = self.form.config()
        if self.input_bits is not None:
            out["input_bits"] = self.input_bits
        return out

    @classmethod
    def from_config(cls, args: dict) -> "WeightedLayer":
        """The layer built from ``config()`` output, with its weight form and input quantization (the form's
        arrays start at zero: ``Model.load_state`` fills them)."""
        args = dict(args)
        form_cfg = args.pop("weight_form", None)
        bits = args.pop("input_bits", None)
        layer = cls(**args)
        if form_cfg is not None:
            layer.set_form(form_from_config(form_cfg, layer._weight_shape()))
        if bits is not None:
            layer.set_input_bits(bits)
        return layer


class Conv2d(WeightedLayer):
    """2-D convolution of channels-last input; weight (out_channels, in_channels // groups, r, s).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output; both divisible by ``groups``.
    kernel_size : int
        Square kernel, r = s = ``kernel_size``.
    stride : int
        Step between output positions, in both directions.
    padding : int
        Zeros added on each side of h and w.
    groups : int
        Channel groups (``groups == in_channels == out_channels`` is a depthwise conv).
    bias : bool
        Add a learned (out_channels,) bias.

    ``forward`` maps (n, h, w, in_channels) to (n, oh, ow, out_channels), ``oh = (h + 2 * padding -
    kernel_size) // stride + 1`` (``ow`` likewise); ``backward`` the reverse (see ``WeightedLayer``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = False):
        super().__init__()
        for label, v in (("in_channels", in_channels), ("out_channels", out_channels),
                         ("kernel_size", kernel_size), ("stride", stride), ("groups", groups)):
            if int(v) < 1:
                raise ValueError(f"Conv2d {label} must be >= 1; got {v}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.groups = int(groups)
        self.add_param("weight", np.zeros((out_channels, in_channels // groups, kernel_size, kernel_size)))
        if bias:
            self.add_param("bias", np.zeros(out_channels))
        self._x = self._saved = None
        self._precision = "float32"
        self.last_method = None  # the kernel of the last forward call (lean.kernels.conv2d_method)

    def _weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, self.kernel_size, self.kernel_size)

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            raise ValueError(f"Conv2d expects (n, h, w, {self.in_channels}) input; got {x.shape}")

    def product_forward(self, x: np.ndarray, train: bool = False, precision: str = "float32") -> np.ndarray:
        """The convolution (float, or on integer codes at inference when the layer is quantized to 8 bits).

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, in_channels), already checked by ``forward``.
        train : bool
            Keep the (quantized) input and the weight for ``product_backward``.
        precision : str
            Of the products' operands: ``"float32"``, or ``"bf16"`` (float32 sums) where the kernel that runs
            has a bf16 path (``lean.kernels.conv.BF16_METHODS``); ``product_backward`` uses the same.

        Returns
        -------
        np.ndarray
            (n, oh, ow, out_channels).
        """
        if not train and self._runs_on_integers():
            return self._integer_forward(x)
        x, self._in_mask = self._quantize_input(x, train)
        w = self.weight()
        saved = {}
        if train:
            self._x, self._w, self._saved, self._precision = x, w, saved, precision
        y = kernels.conv2d_forward(x, w, self.params.get("bias"), self.stride, self.padding, self.groups,
                                   saved=saved, precision=precision)
        self.last_method = saved["method"]
        return y

    def _runs_on_integers(self):
        """Inference on integer codes: <= 8-bit symmetric weights, <= 8-bit inputs, and a fast integer kernel
        for this patch length on this CPU (VNNI, AVX2 vpmaddwd, or the exact-float path); otherwise the float
        path."""
        form = self.form
        if (self.input_bits is None or self.input_bits > 8 or self.groups != 1 or form is None
                or getattr(form, "scheme", None) != "symmetric" or form.bits > 8
                or not self.buffers["input_scale"][0] > 0):
            return False
        patch = self.in_channels * self.kernel_size ** 2
        return kernels.auto_int8_method(patch, unsigned=not self.buffers["input_signed"][0]) != "int"

    def _integer_forward(self, x):
        """The same result as fake quantization, from exact integer sums: input codes (int8, or uint8 when the
        input is never negative) x the weight's int8 codes, rescaled by the two steps, plus the bias."""
        lo, levels, step = self._input_grid()
        codes = np.clip(np.rint(x / step), lo, levels).astype(np.int8 if lo < 0 else np.uint8)
        w_codes, w_scale, _ = self.form._quantize()
        y = kernels.int8_conv2d(codes, step, w_codes.reshape(self._weight_shape()).astype(np.int8),
                                np.broadcast_to(w_scale, (self.out_channels,)), self.stride, self.padding)
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def product_backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Gradients of ``product_forward``: weight (or its form's) and bias accumulated into ``grads``.

        Parameters
        ----------
        dy : np.ndarray
            (n, oh, ow, out_channels).

        Returns
        -------
        np.ndarray or None
            dx (n, h, w, in_channels), zero where input quantization clipped; None when ``input_grad`` is off.
        """
        dx, dw, db = kernels.conv2d_backward(self._x, self._w, dy, self.stride, self.padding,
                                             self.groups, need_dx=self.input_grad,
                                             need_db="bias" in self.params, saved=self._saved,
                                             precision=self._precision)
        self._x = self._w = self._saved = None
        self._weight_grad(dw)
        if "bias" in self.grads:
            self.grads["bias"] += db
        if dx is not None and self._in_mask is not None:
            dx = dx * self._in_mask
        return dx

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "groups": self.groups, "bias": "bias" in self.params, **self._config_extra()}


class Linear(WeightedLayer):
    """Fully connected layer ``y = x @ weight.T + bias``; weight (out_features, in_features).

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output vectors.
    bias : bool
        Add a learned (out_features,) bias.

    ``forward`` maps (n, in_features) to (n, out_features); ``backward`` the reverse (see ``WeightedLayer``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(f"Linear sizes must be >= 1; got {in_features}, {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.add_param("weight", np.zeros((out_features, in_features)))
        if bias:
            self.add_param("bias", np.zeros(out_features))
        self._x = None

    def _weight_shape(self):
        return (self.out_features, self.in_features)

    def _check_input(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects (n, {self.in_features}) input; got {x.shape}")

    def product_forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x @ weight.T + bias``: x (n, in_features) -> (n, out_features); keeps x and the weight if ``train``."""
        x, self._in_mask = self._quantize_input(x, train)
        w = self.weight()
        if train:
            self._x, self._w = x, w
        y = x @ w.T
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def product_backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradients of ``product_forward``: dy (n, out_features) -> dx (n, in_features); weight and bias
        gradients accumulated into ``grads`` (the input gradient is always computed here)."""
        self._weight_grad(dy.T @ self._x)
        if "bias" in self.grads:
            self.grads["bias"] += dy.sum(axis=0)
        dx = dy @ self._w
        self._x = self._w = None
        if self._in_mask is not None:
            dx = dx * self._in_mask
        return dx

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": "bias" in self.params,
                **self._config_extra()}


class BatchNorm(Leaf):
    """Batch normalization over the last (channel) axis, so one class serves (n, c) and (n, h, w, c).

    ``relu=True`` fuses the ReLU that usually follows (one pass over memory instead of two). Running
    statistics use ``momentum`` like PyTorch (new = (1 - momentum) * old + momentum * batch), with the
    unbiased batch variance.

    Parameters
    ----------
    num_features : int
        Channels c (the last axis).
    eps : float
        Added to the variance before the square root.
    momentum : float
        Weight of the batch statistics in the running ones.
    relu : bool
        Apply ReLU to the output (fused).

    Notes
    -----
    Ioffe & Szegedy, ICML 2015: Algorithm 1 in training (batch mean and variance, then ``weight * x_hat +
    bias``); at evaluation the running statistics, with the unbiased variance as in their Algorithm 2.
    Parameters ``weight`` (gamma) and ``bias`` (beta) are (c,); buffers ``running_mean``, ``running_var`` (c,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, relu: bool = False):
        super().__init__()
        if int(num_features) < 1:
            raise ValueError(f"BatchNorm num_features must be >= 1; got {num_features}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.relu = bool(relu)
        self.add_param("weight", np.ones(num_features))
        self.add_param("bias", np.zeros(num_features))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=np.float32)
        self.buffers["running_var"] = np.ones(num_features, dtype=np.float32)
        self._saved = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Normalize by batch statistics (``train``, which also updates the running ones) or running statistics.

        Parameters
        ----------
        x : np.ndarray
            (n, c) or (n, h, w, c), c = ``num_features``.
        train : bool
            Use and update batch statistics; keep what ``backward`` needs.

        Returns
        -------
        np.ndarray
            Shaped like ``x``.
        """
        if x.shape[-1] != self.num_features:
            raise ValueError(f"BatchNorm expects {self.num_features} channels last; got shape {x.shape}")
        if not train:
            gamma, beta = self.params["weight"], self.params["bias"]
            self.last_method = kernels.batchnorm_method(self.num_features, x.dtype)
            return kernels.batchnorm_forward_eval(x, gamma, beta, self.buffers["running_mean"],
                                                  self.buffers["running_var"], self.eps, self.relu)
        return self._train_pass(x, self.relu)

    def forward_train_residual(self, x: np.ndarray, residual: np.ndarray, relu: bool) -> np.ndarray:
        """A training ``forward`` whose output pass also adds ``residual`` and applies ReLU if ``relu``: the
        residual block's add (``Residual``) without a pass of its own. Only for a batch norm without its own
        ReLU; ``backward`` is unchanged (its ``dy`` is the gradient of the normalized output, which the block
        passes through the add and the ReLU first)."""
        if x.shape[-1] != self.num_features or self.relu:
            raise ValueError("forward_train_residual needs a batch norm without ReLU and its channels last")
        return self._train_pass(x, relu, residual)

    def _train_pass(self, x, relu, residual=None):
        """Normalize by batch statistics (then add ``residual``, then ReLU if ``relu``), update the running
        statistics and keep what ``backward`` needs."""
        gamma, beta = self.params["weight"], self.params["bias"]
        self.last_method = kernels.batchnorm_method(self.num_features, x.dtype)
        y, mean, inv_std, var = kernels.batchnorm_forward_train(x, gamma, beta, self.eps, relu, residual)
        m = x.size // self.num_features
        unbiased = var * (m / max(m - 1, 1))
        self.buffers["running_mean"] *= 1.0 - self.momentum
        self.buffers["running_mean"] += self.momentum * mean
        self.buffers["running_var"] *= 1.0 - self.momentum
        self.buffers["running_var"] += self.momentum * unbiased
        self._saved = (x, mean, inv_std)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of a training ``forward`` (through the ReLU if fused); accumulates gamma's and beta's.

        Parameters
        ----------
        dy : np.ndarray
            Shaped like the input, (n, c) or (n, h, w, c).

        Returns
        -------
        np.ndarray
            dx, shaped like ``dy``.
        """
        x, mean, inv_std = self._saved
        self._saved = None
        dx, dgamma, dbeta = kernels.batchnorm_backward(x, dy, mean, inv_std, self.params["weight"],
                                                       self.params["bias"], self.relu)
        self.grads["weight"] += dgamma
        self.grads["bias"] += dbeta
        return dx

    def config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum, "relu": self.relu}


class ReLU(Leaf):
    """``max(x, 0)``, any shape."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``max(x, 0)``, shaped like ``x``; keeps the output for ``backward`` if ``train``."""
        self.last_method = None  # ran on its own (not fused into a conv)
        y = kernels.relu(x)
        if train:
            self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy`` where the output was positive, else 0; shaped like ``dy``."""
        dx = kernels.relu_backward(dy, self._y)
        self._y = None
        return dx


class ReLU6(Leaf):
    """``min(max(x, 0), 6)``, any shape (MobileNetV2's activation)."""

    def __init__(self):
        super().__init__()
        self._mask = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``x`` clipped to [0, 6], shaped like ``x``; keeps where 0 < x < 6 for ``backward`` if ``train``."""
        y = np.clip(x, 0.0, 6.0)
        if train:
            self._mask = (x > 0) & (x < 6)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy`` where 0 < x < 6, else 0; shaped like ``dy``."""
        dx = dy * self._mask
        self._mask = None
        return dx


class MaxPool2d(Leaf):
    """Maximum over k x k windows of each channel (padding never wins).

    Parameters
    ----------
    kernel_size : int
        Window size (k x k).
    stride : int or None
        Step between windows; None: ``kernel_size``.
    padding : int
        Padding on each side, at most ``kernel_size // 2``.

    ``forward`` maps (n, h, w, c) to (n, oh, ow, c), ``oh = (h + 2 * padding - kernel_size) // stride + 1``
    (``ow`` likewise); ``backward`` the reverse.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self._saved = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, c) -> (n, oh, ow, c); keeps where each maximum is if ``train``."""
        y, argmax = kernels.maxpool_forward(x, self.kernel_size, self.stride, self.padding)
        if train:
            self._saved = (argmax, x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, oh, ow, c) -> dx (n, h, w, c): each gradient added at its window's maximum."""
        argmax, shape = self._saved
        self._saved = None
        return kernels.maxpool_backward(dy, argmax, shape)

    def config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class AvgPool2d(Leaf):
    """Mean over k x k windows of each channel, padding counted as zeros.

    Parameters
    ----------
    kernel_size : int
        Window size (k x k).
    stride : int or None
        Step between windows; None: ``kernel_size``.
    padding : int
        Padding on each side, at most ``kernel_size // 2``.

    ``forward`` maps (n, h, w, c) to (n, oh, ow, c), ``oh = (h + 2 * padding - kernel_size) // stride + 1``
    (``ow`` likewise); ``backward`` the reverse.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self._shape = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, c) -> (n, oh, ow, c); keeps the input shape if ``train``."""
        if train:
            self._shape = x.shape
        return kernels.avgpool_forward(x, self.kernel_size, self.stride, self.padding)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, oh, ow, c) -> dx (n, h, w, c): each gradient spread evenly over its window."""
        shape, self._shape = self._shape, None
        return kernels.avgpool_backward(dy, shape, self.kernel_size, self.stride, self.padding)

    def config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class GlobalAvgPool(Leaf):
    """(n, h, w, c) -> (n, c): the mean over all positions."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, c) -> (n, c); keeps the input shape if ``train``."""
        if x.ndim != 4:
            raise ValueError(f"GlobalAvgPool expects (n, h, w, c); got {x.shape}")
        if train:
            self._shape = x.shape
        return x.mean(axis=(1, 2), dtype=x.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, c) -> dx (n, h, w, c): each gradient spread evenly over the h x w positions."""
        n, h, w, c = self._shape
        self._shape = None
        return np.broadcast_to((dy / (h * w))[:, None, None, :], (n, h, w, c)).copy()


class Flatten(Leaf):
    """(n, ...) -> (n, prod(...)), in channels-last order."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, c) -> (n, h * w * c), channels fastest; keeps the input shape if ``train``."""
        if train:
            self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, h * w * c) -> dx (n, h, w, c)."""
        shape, self._shape = self._shape, None
        return dy.reshape(shape)


class Dropout(Leaf):
    """Inverted dropout: in training zero each value with probability ``p`` and scale the rest by 1/(1-p).

    Its random stream is ``self.rng``, which the trainer reseeds every step so a resumed run draws the same masks.

    Parameters
    ----------
    p : float
        Probability of zeroing a value, in [0, 1).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p must be in [0, 1); got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(0)
        self._mask = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Any shape; in training ``x * mask / (1 - p)`` with a fresh mask, kept for ``backward``; else ``x``."""
        if not train or self.p == 0.0:
            self._mask = None
            return x
        self._mask = (self.rng.random(x.shape, dtype=np.float32) >= self.p).astype(np.float32) / (1.0 - self.p)
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy`` times the last training forward's scaled mask (``dy`` itself after an evaluation forward)."""
        if self._mask is None:
            return dy
        dx = dy * self._mask
        self._mask = None
        return dx

    def config(self) -> dict:
        return {"p": self.p}


class ShortcutPadA(Leaf):
    """ResNet's option-A shortcut (He et al., 2016, CIFAR): subsample by ``stride``, zero-pad new channels.

    It has no parameters, which is why ResNet-20 has 0.27 M of them.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out (out >= in); the input's channels land in the middle, zeros either side.
    stride : int
        Spatial subsampling step.

    Notes
    -----
    He et al., CVPR 2016: option A is defined in section 3.3 and used for CIFAR in section 4.2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = int(in_channels), int(out_channels), int(stride)
        self._shape = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, h, w, in_channels) -> (n, ceil(h / stride), ceil(w / stride), out_channels)."""
        sub = x[:, ::self.stride, ::self.stride, :]
        n, h, w, c = sub.shape
        y = np.zeros((n, h, w, self.out_channels), dtype=x.dtype)
        lo = (self.out_channels - c) // 2
        y[..., lo:lo + c] = sub
        if train:
            self._shape = x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, oh, ow, out_channels) -> dx (n, h, w, in_channels), zero at the positions not sampled."""
        dx = np.zeros(self._shape, dtype=dy.dtype)
        lo = (self.out_channels - self.in_channels) // 2
        dx[:, ::self.stride, ::self.stride, :] = dy[..., lo:lo + self.in_channels]
        self._shape = None
        return dx

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "stride": self.stride}


class ChannelSelect(Leaf):
    """Keeps the channels ``keep`` (indices) of an (n, ..., c) input: network slimming's channel selection.

    A pruned pre-activation block cannot remove channels of its input (the shortcut still needs them), so its
    first batch norm keeps every channel and this layer hands the next conv only the kept ones.

    Parameters
    ----------
    keep : list of int
        Indices of the kept channels, in 0..in_channels - 1, in output order.
    in_channels : int
        Channels of the input.
    """

    def __init__(self, keep: list[int], in_channels: int):
        super().__init__()
        self.keep = [int(k) for k in keep]
        self.in_channels = int(in_channels)
        if not self.keep or min(self.keep) < 0 or max(self.keep) >= self.in_channels:
            raise ValueError(f"channel selection needs indices in 0..{self.in_channels - 1}; got {self.keep[:8]}")
        self._index = np.asarray(self.keep, np.int64)
        self._shape = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """(n, ..., in_channels) -> (n, ..., len(keep)); keeps the input shape if ``train``."""
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"ChannelSelect expects {self.in_channels} channels; got {x.shape}")
        if train:
            self._shape = x.shape
        return np.ascontiguousarray(x[..., self._index])

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (n, ..., len(keep)) -> dx (n, ..., in_channels), zero in the channels not kept."""
        dx = np.zeros(self._shape, dtype=dy.dtype)
        dx[..., self._index] = dy
        self._shape = None
        return dx

    def config(self) -> dict:
        return {"keep": self.keep, "in_channels": self.in_channels}
