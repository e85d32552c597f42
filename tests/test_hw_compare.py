"""The SmartExchange accelerator against its baselines (issue 18, in part): each design treats the workload's
sparsity, widths and SmartExchange forms as it would."""

import json

import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw.accel import compare as cmp
from lean.hw.workload import LayerShape, Workload


def _conv(**kw):
    return Workload("tiny", (LayerShape("c", "conv", 1, 16, 16, 8, 8, 3, 3, padding=1, **kw),))


def test_a_tiny_fc_layer_on_diannao_by_hand():
    # 16 x 16 weights, 16 inputs, 16 outputs, 16-bit: 576 bytes from DRAM at 16 bytes a cycle bound the 1 compute
    # cycle of the 16 x 16 NFU
    r = cmp.compare(Workload("tiny", (LayerShape("fc", "fc", 1, 16, 16),)), designs=("diannao",))
    d = r["designs"]["diannao"]
    assert d["macs"] == 256 and d["dram_bytes"] == (256 + 16 + 16) * 2 and d["cycles"] == 576 / 16


def test_each_design_treats_sparsity_as_it_does():
    dense, sparse = cmp.compare(_conv()), cmp.compare(_conv(w_density=0.5, a_density=0.5))
    cycles = {n: (dense["designs"][n]["cycles"], sparse["designs"][n]["cycles"]) for n in dense["designs"]}
    assert cycles["diannao"][0] == cycles["diannao"][1]                  # multiplies zeros too
    assert cycles["bit-pragmatic"][0] == cycles["bit-pragmatic"][1]
    assert cycles["cambricon-x"][1] < cycles["cambricon-x"][0]           # skips zero weights
    assert cycles["scnn"][1] < cycles["scnn"][0]                          # skips both
    weights_only = cmp.compare(_conv(w_density=0.5), designs=("cambricon-x", "scnn"), reference="scnn")
    both = cmp.compare(_conv(w_density=0.5, a_density=0.5), designs=("cambricon-x", "scnn"), reference="scnn")
    assert weights_only["designs"]["cambricon-x"]["cycles"] == both["designs"]["cambricon-x"]["cycles"]
    assert both["designs"]["scnn"]["cycles"] < weights_only["designs"]["scnn"]["cycles"]
    # Bit-pragmatic, on a layer the array (not DRAM) bounds: fewer one bits, fewer cycles a step and cheaper MACs
    big = Workload("big", (LayerShape("c", "conv", 1, 64, 64, 16, 16, 3, 3, padding=1),))
    few = cmp.compare(big, designs=("bit-pragmatic",), reference="bit-pragmatic", ones_per_activation=0.5)
    many = cmp.compare(big, designs=("bit-pragmatic",), reference="bit-pragmatic", ones_per_activation=4.0)
    few, many = few["designs"]["bit-pragmatic"], many["designs"]["bit-pragmatic"]
    assert few["cycles"] < many["cycles"]
    assert few["energy_breakdown_pj"]["mac"] < many["energy_breakdown_pj"]["mac"]
    assert cmp.lane_max_ones(0.0) == 1.0 and 1.0 < cmp.lane_max_ones(1.62) < 16


def test_smartexchange_zero_row_skipping_moves_cycles_and_the_control_does_not():
    full = cmp.compare(_conv(), designs=("smartexchange", "diannao"))
    half = cmp.compare(_conv(), designs=("smartexchange", "diannao"), ce_row_density=0.5)
    se_full, se_half = full["designs"]["smartexchange"], half["designs"]["smartexchange"]
    assert se_half["cycles"] < 0.7 * se_full["cycles"] and se_half["energy_pj"] < se_full["energy_pj"]
    assert full["designs"]["smartexchange-dense"]["cycles"] == half["designs"]["smartexchange-dense"]["cycles"]
    assert se_full["energy_breakdown_pj"]["rebuild"] > 0 and "rebuild" not in full["designs"]["diannao"][
        "energy_breakdown_pj"]
    # the zeros removed rows leave in the rebuilt weights are Cambricon-X's weight sparsity; DianNao ignores them
    full = cmp.compare(_conv(), designs=("cambricon-x", "diannao"))
    half = cmp.compare(_conv(), designs=("cambricon-x", "diannao"), ce_row_density=0.5)
    assert half["designs"]["cambricon-x"]["cycles"] < full["designs"]["cambricon-x"]["cycles"]
    assert half["designs"]["diannao"]["cycles"] == full["designs"]["diannao"]["cycles"]


def test_the_authors_per_layer_row_pruning_by_hand(monkeypatch):
    # a 3 x 3 conv over 2 channels has 6 rows a filter: 0.4 of them, rounded up, is 3 (half the rows, half the
    # weights); a 1 x 1 conv over 10 channels loses 4 channels, and a row of 3 channels is all zero with
    # probability 0.4^3; fc layers are not pruned
    tiny = Workload("tiny-net", (LayerShape("a", "conv", 1, 2, 4, 8, 8, 3, 3, padding=1),
                                 LayerShape("b", "conv", 1, 10, 4, 8, 8, 1, 1),
                                 LayerShape("c", "fc", 1, 16, 10)))
    monkeypatch.setitem(cmp.PRUNED_ROW_SHARES, "tiny-net", (0.4, 0.4, 0.4))
    assert cmp.layer_densities(tiny, "smartdeal") == [(0.5, 0.5), (0.6, pytest.approx(1 - 0.4 ** 3)), (1.0, 1.0)]
    assert cmp.layer_densities(tiny, 0.7) == [(0.7, 0.7)] * 3
    with pytest.raises(HardwareModelError, match="known for the built-in workloads"):
        cmp.layer_densities(Workload("other", tiny.layers), "smartdeal")


def test_the_sourced_profiles_line_up_with_the_built_in_models():
    # one share per weight layer, and the authors leave every depthwise conv unpruned: the order lines up
    from lean.hw import workload

    for name, shares in cmp.PRUNED_ROW_SHARES.items():
        layers = workload.load(name).compute_layers()
        assert len(layers) == len(shares)
        assert all(share == 0 for layer, share in zip(layers, shares, strict=True) if layer.groups > 1)
    r = cmp.compare("mobilenetv2-cifar", ce_row_density="smartdeal")
    assert 0.3 < r["assumptions"]["weights_kept"] < r["assumptions"]["ce_rows_kept"] < 1
    assert r["designs"]["smartexchange"]["cycles"] < r["designs"]["smartexchange-dense"]["cycles"]


def test_lean_hw_compare_from_the_command_line():
    r = CliRunner().invoke(main, ["hw", "compare", "--workload", "net:resnet20", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert set(out["designs"]) == set(cmp.DESIGNS) | {cmp.CONTROL}
    assert out["designs"]["diannao"]["speedup"] == 1.0 and out["designs"]["diannao"]["energy_efficiency"] == 1.0
    r = CliRunner().invoke(main, ["hw", "compare", "--workload", "net:resnet20", "--accels", "diannao,scnn"])
    assert r.exit_code == 0 and "scnn" in r.output and "assumed:" in r.output


@pytest.mark.parametrize("args,message", [
    (["--accels", "tpu"], "unknown design(s) tpu"), (["--accels", "scnn"], "the reference 'diannao' must be one"),
    (["--ce-row-density", "0"], "--ce-row-density"), (["--ce-row-density", "smartdeal"], "known for the built-in"),
])
def test_bad_comparisons_are_one_error_line(args, message):
    r = CliRunner().invoke(main, ["hw", "compare", "--workload", "net:resnet20", *args])
    assert r.exit_code != 0 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    with pytest.raises(HardwareModelError):
        cmp.compare("net:resnet20", designs=())


def test_a_tiny_fc_layer_on_each_design_by_hand():
    # 16 inputs, 16 x 16 weights, 16 outputs; every design here is bound by DRAM at 16 bytes a cycle
    def run(design, **layer):
        wl = Workload("tiny", (LayerShape("fc", "fc", 1, 16, 16, **layer),))
        return cmp.compare(wl, designs=(design,), reference=design)["designs"][design]

    # Cambricon-X at half the weights: each non-zero 16 bits and an 8-bit index; inputs and outputs dense
    cx = run("cambricon-x", w_density=0.5)
    assert cx["dram_bytes"] == 128 * 3 + 32 + 32 and cx["cycles"] == (128 * 3 + 64) / 16
    # SCNN, dense: every 16-bit value in a (5-bit run, value) pair, three pairs a 64-bit word: 64/3 bits each
    scnn = run("scnn")
    assert scnn["dram_bytes"] == pytest.approx((256 + 16 + 16) * 64 / 3 / 8)
    # SmartExchange, every Ce row kept: a filter's 16 weights in 6 rows of 3 (4-bit codes, an index bit each) and
    # one 8-bit 3 x 3 basis: 6 x 13 + 72 = 150 bits for 16 weights; 8-bit inputs and outputs
    se = run("smartexchange")
    assert se["dram_bytes"] == pytest.approx(16 * 150 / 8 + 16 + 16)
    # its rebuild: two adds a weight (three terms of a Ce row times a basis column)
    assert se["energy_breakdown_pj"]["rebuild"] > 0
    # Bit-pragmatic moves what DianNao moves
    assert run("bit-pragmatic")["dram_bytes"] == (256 + 16 + 16) * 2


def test_scnn_cycle_model_by_hand():
    from lean.hw.accel import scnn

    # DNNsim's accumulator hash: k = 5, w = 3, h = 2 -> (16 ^ 16 ^ 16) + 8 + 0 + 1
    assert scnn.bank_of(5, 3, 2) == 25
    # a 3x3 conv, 1 -> 4 channels on a 6x6 map: each of 36 PEs holds one input; the busiest multiplies it by 36
    # weights in 9 steps of 4, one output channel per bank: 9 cycles against 576 / 1,024 for ideal multipliers
    conv = LayerShape("c", "conv", 1, 1, 4, 6, 6, 3, 3)
    r = scnn.layer_cycles(conv, 1.0, 1.0)
    assert r["cycles"] == r["dense_cycles"] == 9 and r["cycles_per_step"] == 1.0
    # a fully connected layer as DNNsim maps it: 256 inputs as a 16 x 16 map (4 a PE), 4 outputs as 16 x 16
    # kernels: 1,024 weights in 256 steps, of whose 16 products only 4 count
    fc = LayerShape("f", "fc", 1, 256, 4)
    assert scnn.layer_cycles(fc, 1.0, 1.0)["cycles"] == 256
    # sparse operands: fewer cycles than dense, more than their products need, and bank conflicts
    big = LayerShape("b", "conv", 1, 32, 64, 16, 16, 3, 3, padding=1)
    sparse, dense = scnn.layer_cycles(big, 0.4, 0.5), scnn.layer_cycles(big, 1.0, 1.0)
    assert sparse["ideal_cycles"] < sparse["cycles"] < dense["cycles"] and sparse["cycles_per_step"] > 1.0
    assert scnn.layer_cycles(big, 0.4, 0.5) == sparse                       # seeded: the same every run
