"""The deep k-means / Sakr et al. energy metric on hand-computable layers."""

import pytest

from lean.errors import HardwareModelError
from lean.hw.bitcost import dot_product_fa, layer_cost, workload_cost
from lean.hw.workload import LayerShape, Workload


def test_dot_product_full_adders_by_hand():
    # D = 4, 8-bit x 8-bit: 4*64 + 3*(8 + 8 + 2 - 1) = 256 + 51
    assert dot_product_fa(4, 8, 8) == 307
    assert dot_product_fa(1, 4, 4) == 16


def test_layer_cost_by_hand_and_sharing():
    layer = LayerShape("fc", "fc", n=1, c=4, k=2, w_bits=8, a_bits=8)   # 2 dot products of length 4
    cost = layer_cost(layer)
    # by hand: a MAC here costs 307 / 4 = 76.75 FA, a buffer access 6 MACs = 460.5 FA a word, 57.5625 FA a bit;
    # 8 weights read once: 8 x 8 bits x 57.5625 = 3,684 FA; 4 inputs read twice: 4 x 2 x 8 x 57.5625 = 3,684 FA
    assert cost.compute_fa == pytest.approx(614.0)
    assert cost.weight_fa == pytest.approx(3684.0)
    assert cost.activation_fa == pytest.approx(3684.0)
    conv = LayerShape("c", "conv", n=1, c=16, k=16, h=8, w=8, r=3, s=3, padding=1, w_bits=16, a_bits=16)
    dense, shared = layer_cost(conv), layer_cost(conv, shared_clusters=16)
    assert shared.compute_fa == dense.compute_fa and shared.activation_fa == dense.activation_fa
    # by hand: D = 144, a dot product 144 x 256 + 143 x (16 + 16 + 8 - 1) = 42,441 FA; a buffer bit 6 x 42,441 /
    # 144 / 16 FA; each of the 2,304 16-bit weights read at 64 output positions: 64 x 2,304 x 16 bits =
    # 64 x 16 x 6 x 42,441 = 260,757,504 FA. Shared: 768 rows, each a 4-bit index from the buffer and 3 x 16 bits
    # from the register file at a sixth of the buffer's cost: 768 x 12 bits against 2,304 x 16, a quarter
    assert dense.weight_fa == pytest.approx(260_757_504)
    assert shared.weight_fa == pytest.approx(260_757_504 / 4)
    total = workload_cost(Workload("w", (conv,)), {"c": 16})
    assert total.total_fa == pytest.approx(shared.total_fa)


def test_shared_clusters_must_be_a_positive_integer():
    layer = LayerShape("c", "conv", n=1, c=4, k=4, h=4, w=4, r=3, s=3, padding=1)
    with pytest.raises(HardwareModelError, match="shared clusters must be a positive integer"):
        layer_cost(layer, shared_clusters=0)
