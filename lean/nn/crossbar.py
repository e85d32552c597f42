"""Conv and linear products computed the way a ReRAM crossbar computes them (issue 17: ``lean hw pim --simulate``).

``CrossbarProducts`` is an operand hook (``lean.nn.hooks.OperandHook``): installed on a model's ``Conv2d`` and
``Linear`` layers it replaces their products, at inference, by ``lean.kernels.crossbar_matmul`` on quantized
operands:

- weights: symmetric per layer, ``weight_bits`` codes (``max |w|`` maps to ``2^(weight_bits-1) - 1``);
- inputs: per layer and batch, ``input_bits`` unsigned codes of the magnitude (``max |x|`` maps to
  ``2^input_bits - 1``); a layer whose input has negative values (the network's first layer, on normalized
  images) runs twice, on the positive and the negative part, and subtracts (crossbar inputs are pulse counts);
- a convolution is the matrix product of its im2col view, group by group, laid out as the weight is
  (channels, then filter rows and columns);
- the bias is added digitally, after the dequantization ``sx * sw``.

Batch norm, activations, pooling and the shortcut additions stay digital, as in ISAAC and TIMELY's periphery.
"""

import numpy as np

from .. import kernels
from .hooks import OperandHook
from .layers import Conv2d, Linear


class CrossbarProducts(OperandHook):
    """A conv or linear layer's products on a crossbar model (see the module docstring); ``settings`` are
    ``lean.kernels.crossbar_matmul``'s keyword arguments (``xbar_rows``, ``cell_bits``, ``weight_bits``,
    ``input_bits``, ``dac_bits``, ``adc_bits``, ``signed``, ``read_noise``, ``variation``, ``seed``)."""

    def __init__(self, **settings):
        self.settings = dict(settings)
        self.weight_bits = int(settings.get("weight_bits", 8))
        self.input_bits = int(settings.get("input_bits", 8))

    def forward(self, layer, x, train=False):
        if train:
            raise ValueError("crossbar products model inference only; train the model digitally")
        w = layer.weight()
        if isinstance(layer, Linear):
            y = self._matmul(x, w.T)
        elif isinstance(layer, Conv2d):
            y = self._conv(layer, x, w)
        else:
            raise TypeError(f"crossbar products run Conv2d and Linear layers, not {type(layer).__name__}")
        bias = layer.params.get("bias")
        return (y + bias if bias is not None else y).astype(np.float32)

    def _conv(self, layer, x, w):
        n, h, wd, c = x.shape
        r, st, pad, g = layer.kernel_size, layer.stride, layer.padding, layer.groups
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
        windows = np.lib.stride_tricks.sliding_window_view(xp, (r, r), axis=(1, 2))[:, ::st, ::st]
        p, q = windows.shape[1], windows.shape[2]            # windows: (n, p, q, c, r, r)
        cg, kg = c // g, layer.out_channels // g
        out = np.empty((n * p * q, layer.out_channels), dtype=np.float64)
        for i in range(g):
            cols = windows[:, :, :, i * cg:(i + 1) * cg].reshape(n * p * q, cg * r * r)
            wg = w[i * kg:(i + 1) * kg].reshape(kg, cg * r * r).T
            out[:, i * kg:(i + 1) * kg] = self._matmul(cols, wg)
        return out.reshape(n, p, q, layer.out_channels)

    def _matmul(self, x, w):
        """``x @ w`` through the crossbar on quantized codes, dequantized."""
        wmax = 2 ** (self.weight_bits - 1) - 1
        imax = 2 ** self.input_bits - 1
        sw = float(np.abs(w).max()) / wmax
        sx = float(np.abs(x).max()) / imax
        if sw == 0.0 or sx == 0.0:
            return np.zeros((x.shape[0], w.shape[1]))
        wq = np.rint(w / sw).astype(np.int32)
        y = kernels.crossbar_matmul(np.rint(np.maximum(x, 0) / sx).astype(np.int32), wq, **self.settings)
        if (x < 0).any():
            y = y - kernels.crossbar_matmul(np.rint(np.maximum(-x, 0) / sx).astype(np.int32), wq, **self.settings)
        return y * (sx * sw)


def _weighted(model):
    net = getattr(model, "net", model)   # a lean.nn.Model, or a module tree
    return [m for m in net.modules() if isinstance(m, (Conv2d, Linear))]


def install(model, hook: OperandHook | None) -> list:
    """Set ``hook`` as the operand hook of every conv and linear layer of ``model`` (a ``Model`` or a module; None
    removes it); returns the layers' previous hooks, in module order, for ``restore``."""
    layers = _weighted(model)
    previous = [layer.operand_hook for layer in layers]
    for layer in layers:
        layer.operand_hook = hook
    return previous


def restore(model, previous: list) -> None:
    """Put back the hooks ``install`` returned."""
    layers = _weighted(model)
    for layer, hook in zip(layers, previous, strict=True):
        layer.operand_hook = hook
