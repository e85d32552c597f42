"""The energy metric of deep k-means (Wu et al., ICML 2018, after Sakr et al., ICML 2017), on ``LayerShape``s.

Costs are counted in 1-bit full-adder operations (FA):

- **computation** of a D-long dot product of Bw-bit weights and Bx-bit activations:
  ``D * Bw * Bx + (D - 1) * (Bx + Bw + ceil(log2 D) - 1)``; a layer computes n * k * p * q of them, with
  D = (c / groups) * r * s.
- **representation**: ``Nw * |W| * Bw`` for weights and ``Nx * |X| * Bx`` for activations, where N is how many
  times each value is used (Nw = n * p * q; Nx = the layer's MACs / |X|), scaled by ``alpha`` FA per bit so
  that reading one Bw-bit weight costs as much as 6 MACs (a global-buffer access against a MAC in Eyeriss's
  normalized costs).
- **weight sharing** with K centres over kernel rows of length s: each use of a row reads its ceil(log2 K)-bit
  index at the representational cost and its s centre weights from a K-entry codebook small enough for a
  register file, 1/6 of a representational access (Eyeriss's RF : buffer = 1 : 6). Activations cost the same;
  computation is not cut, since not all the weights an input meets are shared (the paper's caveat).
"""

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import HardwareModelError
from .workload import LayerShape, Workload

GLB_PER_MAC = 6.0  # one representational (global-buffer) access ~ 6 MACs
RF_PER_GLB = 1.0 / 6.0


def dot_product_fa(d: int, w_bits: int, a_bits: int) -> int:
    """Full-adder operations of one ``d``-long dot product of ``w_bits`` weights and ``a_bits`` activations.

    Parameters
    ----------
    d : int
        Length of the dot product.
    w_bits, a_bits : int
        Operand widths.

    Returns
    -------
    int
        ``d * w_bits * a_bits + (d - 1) * (a_bits + w_bits + ceil(log2 d) - 1)`` (Sakr et al., ICML 2017).
    """
    return d * w_bits * a_bits + (d - 1) * (a_bits + w_bits + math.ceil(math.log2(d)) - 1 if d > 1 else 0)


@dataclass(frozen=True)
class BitCost:
    """A layer's or workload's energy in full-adder operations: computation, weight and activation accesses."""

    compute_fa: float
    weight_fa: float
    activation_fa: float

    @property
    def total_fa(self) -> float:
        """Sum of the three parts."""
        return self.compute_fa + self.weight_fa + self.activation_fa

    def to_dict(self) -> dict[str, float]:
        """The three parts and ``total_fa``."""
        return {"compute_fa": self.compute_fa, "weight_fa": self.weight_fa, "activation_fa": self.activation_fa,
                "total_fa": self.total_fa}


def layer_cost(layer: LayerShape, shared_clusters: int | None = None) -> BitCost:
    """Energy of one conv or fc layer.

    Parameters
    ----------
    layer : LayerShape
        The layer (a pooling layer costs nothing).
    shared_clusters : int, optional
        K, the number of shared weight values, for a weight-shared layer; None for an unshared one.

    Returns
    -------
    BitCost
    """
    k = shared_clusters
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
        raise HardwareModelError(f"layer {layer.name!r}: shared clusters must be a positive integer; got {k!r}")
    if layer.kind == "pool":
        return BitCost(0.0, 0.0, 0.0)
    d = layer.c_per_group * layer.r * layer.s
    bw, bx = layer.w_bits, layer.a_bits
    dots = layer.n * layer.k * layer.p * layer.q
    fa_dot = dot_product_fa(d, bw, bx)
    alpha = GLB_PER_MAC * (fa_dot / d) / bw  # FA per bit of a representational access
    uses_w = layer.n * layer.p * layer.q
    uses_x = layer.macs / max(layer.input_count, 1)
    if shared_clusters is None:
        weight = uses_w * layer.weight_count * bw * alpha
    else:
        rows = layer.weight_count / layer.s
        index_bits = max(1, math.ceil(math.log2(shared_clusters)))
        weight = uses_w * rows * (index_bits * alpha + layer.s * bw * alpha * RF_PER_GLB)
    activation = uses_x * layer.input_count * bx * alpha
    return BitCost(dots * fa_dot, weight, activation)


def workload_cost(workload: Workload, shared_clusters: Mapping[str, int] | None = None) -> BitCost:
    """Energy of a workload's conv and fc layers, summed.

    Parameters
    ----------
    workload : Workload
        The layers.
    shared_clusters : mapping, optional
        Layer name -> K for weight-shared layers; layers not named are unshared.

    Returns
    -------
    BitCost
    """
    shared_clusters = shared_clusters or {}
    parts = [layer_cost(layer, shared_clusters.get(layer.name)) for layer in workload.compute_layers()]
    return BitCost(sum(p.compute_fa for p in parts), sum(p.weight_fa for p in parts),
                   sum(p.activation_fa for p in parts))
