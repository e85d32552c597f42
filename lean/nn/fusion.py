"""Inference fusion: batch norm folded into the convolution before it; ReLU and a residual block's add done as the
convolution stores its output.

At evaluation a batch norm is a fixed per-channel affine map, ``y = scale * x + shift`` with ``scale = gamma /
sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``. Folded into the convolution before it
(``w' = scale * w``, ``b' = scale * b + shift``: ``fold_batchnorm``) it costs nothing at all, and what follows
(the batch norm's own ReLU, a ``ReLU`` layer, or the add and ReLU that end a post-activation residual block)
goes into the convolution's store (``kernels.conv2d_forward(residual=, relu=)``): a ResNet-20 block runs as two
convolutions and no other pass over memory.

Where: ``Sequential.forward`` and ``Residual.forward`` call ``run_sequence`` when not training; it finds the
pairs and runs each through ``conv_forward``. A pair is fused
only when the result is the same computation: a plain ``Conv2d`` (its own product: no operand hook, not on
integer codes) and a ``BatchNorm`` or ``ReLU`` right after it, none of them with observers (they would see
outputs that were never made). Everything else runs layer by layer, as in training. ``fusing(False)`` turns it
off (the benchmarks measure both; tests compare both). Results differ from the unfused ones by float32 rounding
(the folded weights are rounded once).
"""

from contextlib import contextmanager

import numpy as np

from .. import kernels
from .layers import BatchNorm, Conv2d, ReLU

_state = {"enabled": True}


@contextmanager
def fusing(enabled: bool):
    """Turn inference fusion on or off inside a ``with`` block (it is on by default)."""
    before = _state["enabled"]
    _state["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _state["enabled"] = before


def fusion_enabled() -> bool:
    """Whether ``run_sequence`` fuses (``fusing``)."""
    return _state["enabled"]


def _plain_conv(layer) -> bool:
    return (type(layer) is Conv2d and layer.operand_hook is None and not layer.observers
            and not layer._runs_on_integers())


def fold_batchnorm(conv: Conv2d, bn: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of ``conv`` followed by ``bn`` at evaluation, as one convolution (float32)."""
    scale = np.asarray(bn.params["weight"], np.float64) / np.sqrt(
        np.asarray(bn.buffers["running_var"], np.float64) + bn.eps)
    shift = np.asarray(bn.params["bias"], np.float64) - np.asarray(bn.buffers["running_mean"], np.float64) * scale
    if "bias" in conv.params:
        shift = shift + scale * np.asarray(conv.params["bias"], np.float64)
    weight = conv.weight() * scale.astype(np.float32)[:, None, None, None]
    return weight.astype(np.float32, copy=False), shift.astype(np.float32)


def run_sequence(layers: list, x: np.ndarray, residual: np.ndarray | None = None,
                 relu: bool = False) -> tuple[np.ndarray, bool]:
    """Evaluation forward of ``layers`` (modules, in order), fusing where it may; returns (output, whether
    ``residual`` was added and ``relu`` applied).

    ``residual`` (and then ``relu``), if given, is what the caller adds to the sequence's output: the shortcut
    of a residual block. It goes into the last convolution's store when the sequence ends in a fusable
    convolution (and a batch norm without its own ReLU); otherwise the caller adds it.
    """
    if not _state["enabled"]:
        for layer in layers:
            x = layer.forward(x, False)
        return x, False
    i, count, merged = 0, len(layers), False
    while i < count:
        conv = layers[i]
        if not _plain_conv(conv):
            x = conv.forward(x, False)
            i += 1
            continue
        j = i + 1
        bn = layers[j] if j < count and type(layers[j]) is BatchNorm and not layers[j].observers else None
        if bn is not None and bn.num_features == conv.out_channels:
            j += 1
        else:
            bn = None
        conv._check_input(x)
        apply_relu = bn is not None and bn.relu
        if not apply_relu and j < count and type(layers[j]) is ReLU and not layers[j].observers:
            apply_relu = True
            j += 1
        add = None
        if j == count and residual is not None and not apply_relu and residual.shape == _output_shape(conv, x):
            add, apply_relu, merged = residual, relu, True
        x = conv_forward(conv, x, bn, residual=add, relu=apply_relu)
        for folded in layers[i + 1:j]:
            folded.last_method = "fused"
        i = j
    return x, merged


def _output_shape(conv, x):
    oh = kernels.conv_output_size(x.shape[1], conv.kernel_size, conv.stride, conv.padding)
    ow = kernels.conv_output_size(x.shape[2], conv.kernel_size, conv.stride, conv.padding)
    return x.shape[0], oh, ow, conv.out_channels


def conv_forward(conv: Conv2d, x: np.ndarray, bn: BatchNorm | None = None, residual: np.ndarray | None = None,
                 relu: bool = False) -> np.ndarray:
    """``conv`` at evaluation with ``bn`` (if given) folded in, then ``residual`` added and ReLU, all in the
    convolution's store; records the kernel in ``conv.last_method``."""
    conv._check_input(x)
    x, _ = conv._quantize_input(x, False)
    weight, bias = fold_batchnorm(conv, bn) if bn is not None else (conv.weight(), conv.params.get("bias"))
    saved = {}
    y = kernels.conv2d_forward(x, weight, bias, conv.stride, conv.padding, conv.groups, saved=saved,
                               residual=residual, relu=relu)
    conv.last_method = saved["method"]
    return y
