"""The loop-nest predictor and its mapper: hand-computed counts per dataflow (multicast, reduction, sliding
windows, systolic folds), given mappings, the search against them, Eyeriss's measured AlexNet."""

import dataclasses

import pytest

from lean.errors import HardwareModelError
from lean.hw import sparsity
from lean.hw import workload as wl
from lean.hw.accelerator import BUILTIN, Accelerator, eyeriss, tpu_like
from lean.hw.mapper import search
from lean.hw.predictor import _needs, evaluate, footprint, holders, predict, view


def _tiny(dataflow="ws", rf=(1, 0, 0), **changes):
    base = Accelerator("tiny", dataflow, 2, 2, *rf, 1 << 20, 16, 100.0, 4.0, 64.0,
                       e_mac_pj=1.0, e_rf_pj=1.0, e_noc_pj=2.0, e_glb_pj=6.0, e_dram_pj=200.0)
    return dataclasses.replace(base, **changes)


def _counts(r, level, operand):
    return r.counts[level][operand]


def test_pointwise_conv_on_a_2x2_weight_stationary_array_by_hand():
    # 1x1 conv, N=1, C=2 -> K=2 on a 2x2 map: 16 MACs. C over the 2 rows, K over the 2 columns, each PE keeping
    # its weight; the 4 output positions are the buffer's loop.
    layer = wl.LayerShape("pw", "conv", n=1, c=2, k=2, h=2, w=2, r=1, s=1)
    mapping = {"rows": {"C": 2}, "cols": {"K": 2}, "glb": {"P": 2, "Q": 2}, "orders": {"glb": "PQ"}}
    r = evaluate(layer, _tiny(), mapping)
    assert r.macs == 16
    # weights: 4 from DRAM into the buffer, 4 sent one to each PE (no multicast), read from the RF per MAC
    assert _counts(r, "dram", "weight") == {"reads": 4, "writes": 0}
    assert _counts(r, "glb", "weight") == {"reads": 4, "writes": 4}
    assert _counts(r, "rf", "weight") == {"reads": 16, "writes": 4}
    # inputs: the PEs keep none; each of the 4 steps the buffer sends the 2 channels, each multicast to 2 columns
    assert r.counts["noc"]["input"] == {"deliveries": 16, "sends": 8, "reductions": 0}
    assert _counts(r, "glb", "input") == {"reads": 8, "writes": 8}
    # outputs: each step 4 partial sums leave the PEs and are summed over the 2 rows into 2 buffer updates
    assert r.counts["noc"]["output"] == {"deliveries": 16, "sends": 8, "reductions": 8}
    assert _counts(r, "glb", "output") == {"reads": 8, "writes": 8}   # 8 first updates; 8 reads out to DRAM
    assert _counts(r, "dram", "output") == {"reads": 0, "writes": 8}
    assert r.energy_breakdown_pj == pytest.approx({
        "mac": 16.0, "rf": 20.0, "noc": (4 + 16 + 16) * 2.0, "glb": (8 + 16 + 16) * 6.0, "dram": 20 * 200.0})
    assert r.energy_pj == pytest.approx(4348.0)
    assert r.dram_bytes == pytest.approx(40.0)                  # 20 words of 16 bits
    assert r.compute_cycles == 4 and r.utilization == 1.0
    assert r.cycles == pytest.approx(10.0) and r.bound == "dram"  # 40 bytes at 4 bytes a cycle


def test_row_stationary_1d_convolutions_share_input_rows_diagonally():
    # Eyeriss's primitive: a 2x2 filter on a 3x4 input (2x3 outputs). Filter rows R over the 2 rows, output
    # rows P over the 2 columns, each PE sliding one filter row (S in its RF) along one input row (Q).
    layer = wl.LayerShape("rs", "conv", n=1, c=1, k=1, h=3, w=4, r=2, s=2)
    acc = _tiny("rs", rf=(2, 2, 1), weights_bypass_glb=True, rf_fill_stalls=True)
    r = evaluate(layer, acc, {"rows": {"R": 2}, "cols": {"P": 2}, "rf": {"S": 2}, "glb": {"Q": 3},
                              "orders": {"glb": "Q"}})
    # weights: 4 from DRAM straight to the array (bypassing the buffer), each filter row multicast to the 2
    # columns; they stay while Q slides
    assert _counts(r, "dram", "weight") == {"reads": 4, "writes": 0}
    assert _counts(r, "glb", "weight") == {"reads": 0, "writes": 0}
    assert r.counts["noc"]["weight"] == {"deliveries": 8, "sends": 4, "reductions": 0}
    assert _counts(r, "rf", "weight") == {"reads": 24, "writes": 8}
    # inputs: each PE loads its 4-pixel input row once as the window slides (2 + 1 + 1), and input row 1 serves
    # PE (r=1, p=0) and PE (r=0, p=1): the buffer sends the 3 distinct rows (12 pixels), the NoC delivers 16
    assert r.counts["noc"]["input"] == {"deliveries": 16, "sends": 12, "reductions": 0}
    assert _counts(r, "glb", "input")["reads"] == 12
    assert _counts(r, "rf", "input") == {"reads": 24, "writes": 16}
    # outputs: 24 MAC updates in the RFs (12 of them the first of a PE's partial sum), 12 partial sums sent up,
    # summed over the 2 filter rows into the 6 outputs
    assert _counts(r, "rf", "output") == {"reads": 12 + 12, "writes": 24}
    assert r.counts["noc"]["output"] == {"deliveries": 12, "sends": 6, "reductions": 6}
    assert _counts(r, "glb", "output") == {"reads": 6, "writes": 6}
    # 6 MACs a PE, its RF fills (24 words over 4 PEs), and the filters' DRAM time: they bypass the buffer, so the
    # PEs wait for them (8 bytes at 4 bytes a cycle)
    assert r.compute_cycles == 6 + (8 + 16) / 4 + 8 / 4
    assert evaluate(layer, dataclasses.replace(acc, rf_fill_stalls=False), r.mapping).compute_cycles == 6 + 2
    assert evaluate(layer, dataclasses.replace(acc, rf_fill_stalls=False, weights_bypass_glb=False),
                    r.mapping).compute_cycles == 6
    # the DNN-Chip Predictor's convention: the RFs count what enters and leaves them (no per-MAC reads or updates),
    # and a partial sum forwarded up the column is written into the next PE's RF
    fills = evaluate(layer, dataclasses.replace(acc, rf_counts="fills"), r.mapping)
    assert _counts(fills, "rf", "weight") == {"reads": 0, "writes": 8}
    assert _counts(fills, "rf", "output") == {"reads": 12, "writes": 6}
    assert fills.counts["noc"] == r.counts["noc"] and fills.counts["glb"] == r.counts["glb"]


def test_no_local_reuse_reads_every_weight_per_use():
    # DianNao-like: no RFs; inputs into adder trees down the rows (C), one output per column (K)
    layer = wl.LayerShape("fc", "fc", n=2, c=4, k=4)
    r = evaluate(layer, _tiny("nlr", rf=(0, 0, 0)), {"rows": {"C": 2}, "cols": {"K": 2},
                                                     "glb": {"N": 2, "C": 2, "K": 2}, "orders": {"glb": "KCN"}})
    assert r.macs == 32
    assert _counts(r, "glb", "weight")["reads"] == 32                       # per use, no multicast
    assert r.counts["noc"]["input"] == {"deliveries": 32, "sends": 16, "reductions": 0}   # over 2 columns
    assert r.counts["noc"]["output"]["reductions"] == 16                     # adder trees over 2 rows
    assert _counts(r, "glb", "output") == {"reads": 8 + 8, "writes": 16}    # 8 read back for C's 2nd half
    assert all(_counts(r, "rf", t) == {"reads": 0, "writes": 0} for t in ("weight", "input", "output"))


def test_systolic_folds_cost_what_scale_sim_charges():
    # SCALE-Sim (Samajdar et al.) runs a conv as its im2col matrix product: N = output pixels, C = window, K.
    # WS: ceil(Sr / rows) x ceil(Sc / cols) folds of T + 2 rows + cols - 2 cycles, with Sr = C R S = 4,
    # Sc = K = 4, T = P Q = 4 on a 2x2 array: 4 folds x 8 = 32
    layer = wl.LayerShape("pw", "conv", n=1, c=4, k=4, h=2, w=2, r=1, s=1)
    acc = _tiny("ws", systolic=True)
    r = evaluate(layer, acc, {"rows": {"C": 2}, "cols": {"K": 2}, "dram": {"C": 2, "K": 2},
                              "glb": {"N": 4}, "orders": {"dram": "CK", "glb": "N"}})
    assert r.compute_cycles == 4 * (4 + 2 * 2 + 2 - 2)
    # OS: Sr = P Q = 4 over rows, Sc = K = 4 over columns, T = C = 4: 4 folds of T + rows + cols - 2
    os_acc = _tiny("os", systolic=True)
    r = evaluate(layer, os_acc, {"rows": {"N": 2}, "cols": {"K": 2}, "dram": {"N": 2, "K": 2},
                                 "glb": {"C": 4}, "orders": {"dram": "NK", "glb": "C"}})
    assert r.compute_cycles == 4 * (4 + 2 + 2 - 2)
    assert search(layer, os_acc, "latency").compute_cycles <= r.compute_cycles
    # a 3x3 conv: its 3 x 3 x 2 window is one reduction dim of 18 (im2col); the map leaves DRAM once
    conv = wl.LayerShape("c", "conv", n=1, c=2, k=4, h=6, w=6, r=3, s=3)
    best = search(conv, _tiny("ws", systolic=True, array_rows=18, array_cols=4), "latency")
    assert best.mapping["rows"] == {"C": 18} and best.mapping["cols"] == {"K": 4}
    assert best.compute_cycles == 1 * (16 + 2 * 18 + 4 - 2)
    assert best.counts["dram"]["input"]["reads"] == 2 * 6 * 6                  # not the 18 x 16 im2col words
    assert best.counts["glb"]["input"]["reads"] == 18 * 16


def test_a_searched_mapping_given_back_costs_the_same_and_the_search_is_never_worse():
    layer = wl.LayerShape("c", "conv", n=2, c=24, k=40, h=14, w=14, r=3, s=3, padding=1)
    acc = eyeriss()
    best = search(layer, acc)
    again = evaluate(layer, acc, best.mapping)
    assert again.energy_pj == pytest.approx(best.energy_pj, rel=1e-12)
    assert again.counts == best.counts and again.cycles == best.cycles
    assert best.search["evaluated"] > 1 and best.search["space"] >= best.search["evaluated"] // 18
    # hand-written mappings (a plain RS one, and DRAM-heavy variants of it) cost at least as much
    plain = {"rows": {"R": 3}, "cols": {"P": 14}, "rf": {"S": 3, "K": 8}, "glb": {"Q": 14, "N": 2},
             "orders": {"glb": "NQ"}}
    variants = (plain, {**plain, "dram": {"K": 5, "C": 24}},
                {**plain, "glb": {"Q": 14}, "dram": {"N": 2, "K": 5, "C": 24}})
    for given in variants:
        for objective, key in (("energy", "energy_pj"), ("latency", "cycles")):
            found = getattr(search(layer, acc, objective), key)
            assert found <= getattr(evaluate(layer, acc, given), key) * (1 + 1e-12)


def test_given_mappings_are_checked():
    layer = wl.LayerShape("c", "conv", n=1, c=8, k=8, h=6, w=6, r=3, s=3)
    acc = eyeriss()
    with pytest.raises(HardwareModelError, match="do not cover the layer .K covers 4 of 8"):
        evaluate(layer, acc, {"dram": {"K": 4, "C": 8, "P": 4, "Q": 4, "R": 3, "S": 3}})
    with pytest.raises(HardwareModelError, match="unknown dimensions"):
        evaluate(layer, acc, {"glb": {"X": 2}})
    with pytest.raises(HardwareModelError, match="each at most once"):
        evaluate(layer, acc, {"orders": {"glb": "KK"}})
    with pytest.raises(HardwareModelError, match="must be a positive integer"):
        evaluate(layer, acc, {"glb": {"K": "many"}})
    with pytest.raises(HardwareModelError, match="unrolls 16 x 1 PEs on a 12 x 14 array"):
        evaluate(layer, acc, {"rows": {"K": 8, "C": 2}})
    with pytest.raises(HardwareModelError, match="its weight RF tile is 576 words, the RF holds 224"):
        evaluate(layer, acc, {"rf": {"K": 8, "C": 8, "R": 3, "S": 3}})
    with pytest.raises(HardwareModelError, match="weights bypass the global buffer"):
        evaluate(layer, acc.with_overrides(dataflow="nlr"), {})
    with pytest.raises(HardwareModelError, match="weights bypass the global buffer"):
        search(layer, acc.with_overrides(dataflow="nlr"))


def test_macs_do_not_depend_on_the_dataflow():
    workload = wl.load("resnet20", batch=2)
    totals = {df: predict(workload, BUILTIN["eyeriss"]().with_overrides(dataflow=df, weights_bypass_glb=False)
                          ).total["macs"]
              for df in ("rs", "ws", "os", "is", "nlr")}
    assert set(totals.values()) == {workload.macs}


@pytest.mark.parametrize("accel", list(BUILTIN))
def test_energy_and_latency_are_monotone_in_dram_cost_and_bandwidth(accel):
    workload = wl.alexnet()
    acc = BUILTIN[accel]()
    base = predict(workload, acc).total
    dearer = predict(workload, acc.with_overrides(e_dram_pj=acc.e_dram_pj * 2)).total
    slower = predict(workload, acc.with_overrides(dram_bytes_per_cycle=acc.dram_bytes_per_cycle / 4),
                     objective="energy").total
    assert dearer["energy_pj"] > base["energy_pj"]
    assert slower["latency_ms"] >= base["latency_ms"]


def test_a_layer_that_fits_on_chip_reads_each_weight_from_dram_once():
    layer = wl.LayerShape("c", "conv", n=1, c=64, k=64, h=16, w=16, r=3, s=3, padding=1)
    r = search(layer, tpu_like())
    weight_bytes = layer.weight_count * layer.w_bits / 8
    input_bytes = layer.input_count * layer.a_bits / 8
    output_bytes = layer.output_count * layer.a_bits / 8
    assert r.dram_bytes == pytest.approx(weight_bytes + input_bytes + output_bytes)


def test_eyeriss_alexnet_conv_layers_at_batch_4():
    """Eyeriss measured (Chen et al., JSSC 2017, Table V): 115.3 ms per batch of 4 over the 5 conv layers, 15.4 MB
    of DRAM traffic with the chip's run-length coding of maps, on activations with the zeros it measured.

    Tolerances (issue 16): total latency and DRAM traffic within 20%. (The per-layer figures are in
    benchmarks/hw_eyeriss.py.)
    """
    total = predict(wl.alexnet_eyeriss(), eyeriss()).total
    assert total["macs"] == 4 * 665_784_864
    assert total["latency_ms"] == pytest.approx(115.3, rel=0.20)
    assert total["dram_bytes"] == pytest.approx(15.4e6, rel=0.20)


def test_sparse_formats_and_zeros_use_the_workload_densities():
    layer = wl.LayerShape("c", "conv", n=1, c=32, k=32, h=8, w=8, r=3, s=3, padding=1, a_density=0.4,
                          o_density=0.5)
    acc = eyeriss()
    dense = search(dataclasses.replace(layer, a_density=1.0), acc)
    sparse = search(layer, acc)
    assert sparse.energy_breakdown_pj["mac"] == pytest.approx(0.4 * dense.energy_breakdown_pj["mac"])
    # the same mapping, maps stored dense, then run-length coded: the input and output words shrink as the
    # format says (Eyeriss: a 21.3-bit pair per non-zero, 0.4 and 0.5 of them)
    plain = acc.with_overrides(dram_format="dense")
    a = evaluate(layer, plain, sparse.mapping)
    b = evaluate(layer, acc, sparse.mapping)
    assert a.counts == b.counts
    d_in = a.counts["dram"]["input"]["reads"]
    d_out = a.counts["dram"]["output"]["writes"]
    saved_in = d_in * (16 - sparsity.stored_bits("rlc", 0.4, 16)) / 8
    saved_out = d_out * (16 - sparsity.stored_bits("rlc", 0.5, 16)) / 8
    assert a.dram_bytes - b.dram_bytes == pytest.approx(saved_in + saved_out)
    assert sparsity.stored_bits("rlc", 1.0, 16) == pytest.approx(64 / 3)     # dense data grows under RLC
    assert sparsity.stored_bits("rlc", 0.0, 16) == pytest.approx(64 / 3 / 32)  # one pair per 32 zeros
    assert sparsity.stored_bits("rlc", 1.0, 8) == pytest.approx(16.0)       # four 13-bit pairs in 64 bits
    assert sparsity.stored_bits("bitmask", 0.25, 16) == 5.0 and sparsity.stored_bits("csr", 0.25, 16) == 6.0
    # weights in a compressed format shrink DRAM and buffer traffic; a compressed form's own bits win
    sparse_w = dataclasses.replace(layer, w_density=0.2)
    base = evaluate(sparse_w, plain, sparse.mapping)
    masked = evaluate(sparse_w, plain.with_overrides(weight_format="bitmask"), sparse.mapping)
    assert masked.energy_by_data_pj["weight"] < base.energy_by_data_pj["weight"]
    own = evaluate(dataclasses.replace(sparse_w, w_stored_bits=4.0), plain.with_overrides(weight_format="bitmask"),
                   sparse.mapping)
    assert own.counts["dram"]["weight"]["reads"] * 4.0 / 8 < masked.dram_bytes
    with pytest.raises(HardwareModelError, match="dram_format must be one of dense, bitmask, rlc, csr"):
        acc.with_overrides(dram_format="zip")


def test_zero_skipping_saves_cycles_less_than_the_density_on_a_lockstepped_array():
    layer = wl.LayerShape("c", "conv", n=1, c=32, k=32, h=8, w=8, r=3, s=3, padding=1, a_density=0.3)
    acc = eyeriss().with_overrides(dram_overlap="true")
    mapping = search(layer, acc).mapping
    gated = evaluate(layer, acc, mapping)
    skipping = evaluate(layer, acc.with_overrides(zero_skipping="true"), mapping)
    ratio = skipping.compute_cycles / gated.compute_cycles
    assert 0.3 < ratio < 1.0          # fewer cycles, but the busiest PE sets the pace
    assert sparsity.skip_factor(0.3, 1e9, 168) == pytest.approx(0.3, abs=1e-3)   # many MACs a PE: no imbalance
    assert sparsity.skip_factor(1.0, 10, 168) == 1.0


def test_bad_inputs():
    with pytest.raises(HardwareModelError, match="unknown dataflow"):
        eyeriss().with_overrides(dataflow="xyz")
    with pytest.raises(HardwareModelError, match="unknown accelerator parameter 'rows'"):
        eyeriss().with_overrides(rows="3")
    with pytest.raises(HardwareModelError, match="is not a valid int"):
        eyeriss().with_overrides(array_rows="many")
    with pytest.raises(HardwareModelError, match="unknown objective"):
        search(wl.LayerShape("x"), eyeriss(), objective="area")
    big = wl.LayerShape("big", "fc", n=1, c=4096, k=4096)
    with pytest.raises(HardwareModelError, match="no mapping fits"):
        search(big, tpu_like().with_overrides(glb_bytes="4"))


def test_a_layer_run_for_a_share_of_the_images_costs_that_share():
    """An input-adaptive model's recorded layers (``fraction``): the same mapping, every count times the share."""
    layer = wl.LayerShape("c", "conv", 1, 16, 32, 8, 8, 3, 3, padding=1)
    whole = predict(wl.Workload("w", (layer,)), eyeriss())
    part = predict(wl.Workload("w", (dataclasses.replace(layer, fraction=0.25),)), eyeriss())
    assert part.layers[0].mapping == whole.layers[0].mapping
    assert part.total["energy_pj"] == pytest.approx(0.25 * whole.total["energy_pj"])
    assert part.total["latency_ms"] == pytest.approx(0.25 * whole.total["latency_ms"])
    assert part.total["dram_bytes"] == pytest.approx(0.25 * whole.total["dram_bytes"])
    with pytest.raises(HardwareModelError, match="fraction"):
        dataclasses.replace(layer, fraction=0.0)


def test_leakage_energy_is_leakage_power_over_the_layers_time():
    layer = wl.LayerShape("c", "conv", n=1, c=64, k=64, h=14, w=14, r=3, s=3, padding=1)
    acc = tpu_like().with_overrides(array_rows="32", array_cols="32")
    r = search(layer, acc)
    assert r.energy_breakdown_pj["leak"] == pytest.approx(acc.leakage_mw()["total"] * r.latency_ms * 1e6)
    assert r.energy_pj == pytest.approx(sum(r.energy_breakdown_pj.values()))
    assert "leak" not in search(layer, eyeriss()).energy_breakdown_pj     # normalized units: no leakage


def test_a_harder_search_never_finds_worse_on_a_layer_it_searches_whole():
    # a small layer: no thinning of the buffer splits, so each effort searches a superset of the one before
    layer = wl.LayerShape("c", "conv", n=2, c=16, k=24, h=10, w=10, r=3, s=3, padding=1)
    for acc in (eyeriss(), tpu_like().with_overrides(array_rows="16", array_cols="16")):
        found = [search(layer, acc, effort=effort) for effort in ("quick", "default", "thorough")]
        energies = [r.energy_pj for r in found]
        assert energies[0] >= energies[1] * (1 - 1e-12) and energies[1] >= energies[2] * (1 - 1e-12)
        assert found[0].search["evaluated"] < found[1].search["evaluated"] < found[2].search["evaluated"]
    with pytest.raises(HardwareModelError, match="unknown search effort 'hard'"):
        search(layer, eyeriss(), effort="hard")


def test_writes_cost_their_own_energy_where_given():
    layer = wl.LayerShape("pw", "conv", n=1, c=2, k=2, h=2, w=2, r=1, s=1)
    mapping = {"rows": {"C": 2}, "cols": {"K": 2}, "glb": {"P": 2, "Q": 2}, "orders": {"glb": "PQ"}}
    same = evaluate(layer, _tiny(), mapping)
    dearer = evaluate(layer, _tiny(e_glb_write_pj=10.0, e_dram_write_pj=300.0), mapping)
    glb_writes = sum(same.counts["glb"][t]["writes"] for t in ("weight", "input", "output"))   # 4 + 8 + 8
    assert dearer.energy_breakdown_pj["glb"] - same.energy_breakdown_pj["glb"] == pytest.approx(glb_writes * 4.0)
    assert dearer.energy_breakdown_pj["dram"] - same.energy_breakdown_pj["dram"] == pytest.approx(8 * 100.0)
    assert dearer.energy_breakdown_pj["rf"] == same.energy_breakdown_pj["rf"]


def test_a_small_buffer_still_gets_a_mapping():
    # 32 kB cannot hold a 32x32 array's worth of 224-word weight tiles: the search falls back to small RF tiles
    layer = wl.LayerShape("c", "conv", n=1, c=128, k=256, h=28, w=28, r=3, s=3, stride=2, padding=1)
    acc = eyeriss().with_overrides(array_rows="32", array_cols="32", glb_bytes="32768", dataflow="ws",
                                   weights_bypass_glb="false")
    for effort in ("quick", "default"):
        r = search(layer, acc, effort=effort)
        assert r.macs == layer.macs and r.cycles >= layer.macs / acc.pes
    assert search(layer, acc, effort="quick").search["fallback"]       # the quick search needed the second pass
    # an RF too small for anything the dataflow allows (row stationary keeps a whole filter row) is one error
    with pytest.raises(HardwareModelError, match="too small for any tile its rs dataflow allows"):
        search(layer, eyeriss().with_overrides(rf_input_words="2"))


def test_what_a_review_found():
    # a stride longer than the window skips rows nobody reads: a 1x1 stride-2 layer reads 28 x 28 of its 56 x 56
    ext = {"N": 1, "K": 1, "C": 4, "P": 28, "Q": 28, "R": 1, "S": 1}
    assert footprint("input", ext, 2, 56, 56) == 4 * 28 * 28
    assert footprint("input", {**ext, "R": 3, "S": 3}, 2, 57, 57) == 4 * 57 * 57     # overlapping windows
    # partial sums take their own width in the buffer
    layer = wl.LayerShape("c", "conv", n=1, c=8, k=8, h=6, w=6, r=3, s=3)
    acc = eyeriss()
    ext_glb = {"N": 1, "K": 8, "C": 8, "P": 4, "Q": 4, "R": 3, "S": 3}
    _, need16 = _needs(layer, acc, view(layer, acc), ext, ext_glb, holders(acc))
    _, need64 = _needs(layer, acc.with_overrides(psum_bits="64"), view(layer, acc), ext, ext_glb, holders(acc))
    assert need64 - need16 == pytest.approx(8 * 4 * 4 * (64 - 16) / 8)
    # zero skipping shortens the MAC steps, not the stalls (a systolic array's fill and drain)
    conv = wl.LayerShape("pw", "conv", n=1, c=4, k=4, h=2, w=2, r=1, s=1, a_density=0.5)
    sys_acc = _tiny("ws", systolic=True)
    mapping = {"rows": {"C": 2}, "cols": {"K": 2}, "dram": {"C": 2, "K": 2}, "glb": {"N": 4},
               "orders": {"dram": "CK", "glb": "N"}}
    gated = evaluate(conv, sys_acc, mapping).compute_cycles
    skipped = evaluate(conv, dataclasses.replace(sys_acc, zero_skipping=True), mapping).compute_cycles
    assert gated - skipped == pytest.approx(16 * (1 - sparsity.skip_factor(0.5, 4, 4)))
    # layers searched once and shared keep their own results
    p = predict(wl.resnet18(), eyeriss())
    assert p.layers[1].counts == p.layers[2].counts and p.layers[1].counts is not p.layers[2].counts
    # a factor larger than its dimension, a NaN energy: one error each
    with pytest.raises(HardwareModelError, match="a factor larger than its dimension"):
        evaluate(layer, acc, {"glb": {"K": 16}})
    with pytest.raises(HardwareModelError, match="e_dram_pj must be a finite number"):
        acc.with_overrides(e_dram_pj="nan")


def test_the_network_and_register_file_ports_bound_latency_when_given():
    # the 2x2 pointwise example: 4 compute steps; the network sends 4 weights, 8 inputs and 8 partial sums (20
    # words); each PE's RF serves 4 weight reads and 1 fill (5 accesses)
    layer = wl.LayerShape("pw", "conv", n=1, c=2, k=2, h=2, w=2, r=1, s=1)
    mapping = {"rows": {"C": 2}, "cols": {"K": 2}, "glb": {"P": 2, "Q": 2}, "orders": {"glb": "PQ"}}
    roomy = _tiny(dram_bytes_per_cycle=1e9)
    assert evaluate(layer, roomy, mapping).bound == "compute"
    narrow = evaluate(layer, _tiny(dram_bytes_per_cycle=1e9, noc_words_per_cycle=2.0), mapping)
    assert narrow.noc_cycles == 10.0 and narrow.cycles == 10.0 and narrow.bound == "noc"
    ported = evaluate(layer, _tiny(dram_bytes_per_cycle=1e9, rf_accesses_per_cycle=0.5), mapping)
    assert ported.rf_cycles == 10.0 and ported.bound == "rf"


def test_multicast_and_forwarding_have_their_own_network_costs():
    # the 2x2 pointwise example: inputs go to 8 of the network's 16 input deliveries as multicast extras, and 8 of
    # the 16 partial-sum moves are PE-to-PE forwards on the way to being summed
    layer = wl.LayerShape("pw", "conv", n=1, c=2, k=2, h=2, w=2, r=1, s=1)
    mapping = {"rows": {"C": 2}, "cols": {"K": 2}, "glb": {"P": 2, "Q": 2}, "orders": {"glb": "PQ"}}
    full = evaluate(layer, _tiny(), mapping).energy_breakdown_pj["noc"]
    assert full == (4 + 16 + 16) * 2.0
    one_send = evaluate(layer, _tiny(noc_multicast_share=0.0), mapping).energy_breakdown_pj["noc"]
    assert full - one_send == 8 * 2.0                        # a multicast costs one transmission
    free_hops = evaluate(layer, _tiny(noc_forward_share=0.0), mapping).energy_breakdown_pj["noc"]
    assert full - free_hops == 8 * 2.0
