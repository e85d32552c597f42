"""PRIME, ISAAC and TIMELY costs, TIMELY's ablations, and SOT-MRAM / FloatPIM training steps (issue 17)."""

import json

import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw import workload as wl
from lean.hw.pim import arch as pa
from lean.hw.pim import training as tr

# 2 -> 3 channels, 3x3, padding 1 on a 4x4 map: 16 input vectors of 18 rows, 32 distinct inputs, 48 outputs
TINY = wl.LayerShape("c", "conv", n=1, c=2, k=3, h=4, w=4, r=3, s=3, padding=1)


def test_counts_on_a_tiny_layer_by_hand_for_each_architecture():
    # on 8 x 8 crossbars: 18 rows make 3 crossbar rows everywhere
    timely = pa.get_arch("timely", overrides=["xbar=8"])
    c = pa.layer_counts(timely, TINY)
    # 8-bit offset weights in two 4-bit cells: 6 columns, one crossbar wide; one 8-bit time-coded read per vector
    assert c["crossbar_reads"] == 16 * 1 * 3 * 1
    assert c["input_reads"] == 32 and c["da"] == 32                 # O2IR: each input once, converted once
    assert c["row_drives"] == 16 * 18                               # every row of every crossbar, per vector
    assert c["ad"] == 16 * 6 * 1                                    # 3 crossbars add in analog: one TDC pass
    assert c["analog_psums"] == 16 * 6 * 3 and c["psum_accesses"] == 0 and c["outputs"] == 48
    prime = pa.get_arch("prime", overrides=["xbar=8"])
    c = pa.layer_counts(prime, TINY)
    # differential 8-bit: 7 magnitude bits in two 4-bit cells, twice: 12 columns, 2 crossbars wide; 3-bit slices
    assert c["crossbar_reads"] == 16 * 3 * 3 * 2
    assert c["input_reads"] == c["input_fetches"] == 16 * 18 * 2    # every window, every crossbar, from L2
    assert c["da"] == 16 * 3 * 18 * 2 and c["ad"] == 16 * 3 * 12 * 3
    assert c["psum_accesses"] == 2 * 48 * 2                         # 3 crossbar rows: 2 digital merges each
    isaac = pa.get_arch("isaac", overrides=["xbar=8"])
    c = pa.layer_counts(isaac, TINY)
    # 16-bit weights in eight 2-bit cells: 24 columns, 3 crossbars wide, one IMA; 16 one-bit slices
    assert c["crossbar_reads"] == 16 * 16 * 3 * 3
    assert c["input_reads"] == 16 * 18 and c["input_fetches"] == 32  # one eDRAM read feeds the IMA's crossbars
    assert c["da"] == 16 * 16 * 18 * 3 and c["ad"] == 16 * 16 * 24 * 3
    e = pa.energy_of(isaac, c)
    assert e["a/d"] == pytest.approx(c["ad"] * (isaac.e_ad + isaac.e_ad_extra))
    assert e["crossbar"] == pytest.approx(c["crossbar_reads"] * isaac.e_crossbar_read)


def test_isaac_peak_is_within_15_percent_of_its_corrected_table_iv():
    p = pa.peak(pa.get_arch("isaac"))
    assert p["tops_per_s"] == pytest.approx(16128 * 128 * 16 * 2 / 1.6e-6 / 1e12)
    assert abs(p["gops_per_s_mm2"] / 478.95 - 1) < 0.15
    assert abs(p["gops_per_w"] / 627.5 - 1) < 0.15


def test_each_timely_idea_moves_energy_the_way_the_paper_says():
    timely = pa.get_arch("timely")
    full = pa.evaluate(timely, "alexnet")
    for idea, grows in (("alb", ("inputs", "psums", "a/d")), ("tdi", ("d/a", "a/d")), ("o2ir", ("inputs", "d/a"))):
        without = pa.evaluate(pa.ablate(timely, idea), "alexnet")
        assert without["total_pj"] > full["total_pj"], idea
        for category in grows:
            assert without["energy_pj"][category] > full["energy_pj"][category], (idea, category)
    r = pa.ablation(timely, "alexnet")
    assert r["baseline_x"] > max(row["without_x"] for row in r["rows"])
    assert 0 < r["rows"][0]["share_of_saving"] <= 1


def test_replication_stays_on_the_chip_and_never_slows_a_stage():
    timely = pa.get_arch("timely")
    layers = wl.alexnet().compute_layers()
    replicas, fits = pa.replicate(timely, layers)
    assert fits and max(replicas) > 1
    # a copy takes whole input vectors: AlexNet's fc layers at batch 1 have one vector, so one copy each
    assert replicas[-3:] == (1, 1, 1) and all(r <= layer.n * layer.p * layer.q for r, layer in zip(replicas, layers,
                                                                                                 strict=True))
    need = [pa.layer_counts(timely, layer)["crossbars"] for layer in layers]
    assert sum(r * x for r, x in zip(replicas, need, strict=True)) <= timely.crossbars
    one = pa.evaluate(timely, "alexnet", replication=False)
    many = pa.evaluate(timely, "alexnet")
    assert many["stage_s"] < one["stage_s"] and many["total_pj"] == pytest.approx(one["total_pj"], rel=1e-9)


def test_training_step_counts_follow_the_published_and_derived_formulas():
    # FloatPIM, bfloat16 (Ne 8, Nm 7): 12*8 + 6.5*49 - 7.5*7 - 2 = 360; 3 + 128 + 133 + 49 = 313, 15 searches
    assert tr.floatpim_steps(8, 7) == {"mul": {"nor": 360, "search": 0}, "add": {"nor": 313, "search": 15}}
    # SOT-MRAM (the derivation in the module docstring, by hand for bfloat16, m1 = 8):
    # mul senses: sign 1, exponent 16, mantissa 2*64, normalize 1+8+8 = 162;
    #     writes: sign 1, exponent 16, mantissa 8*17, normalize 8+8 = 169
    # add senses: differences 16, sign 1, selected difference 8, sign and exponent 9, mantissas 16,
    #     alignment 9*(4+8), add 9, normalize 17 = 184; writes: 16+8+9+16+9*8+9+16 = 146
    assert tr.sot_steps(8, 7) == {"mul": {"sense": 162, "write": 169}, "add": {"sense": 184, "write": 146}}
    assert tr.sot_scratch_bits(8, 7) == 4 * 8 + 1 + 3 * 8 + 1
    one = tr.evaluate_training("sot-mram", "alexnet", batch=1)
    two = tr.evaluate_training("sot-mram", "alexnet", batch=2)
    first, second = two["layers"][0], two["layers"][1]
    assert first["ops"]["backward_input"] == 0 and second["ops"]["backward_input"] == second["ops"]["forward"]
    assert two["layers"][1]["energy_uj"]["forward"] == pytest.approx(2 * one["layers"][1]["energy_uj"]["forward"])
    assert two["layers"][1]["ops"]["update"] == one["layers"][1]["ops"]["update"]      # once per batch
    fp32 = tr.evaluate_training("floatpim", "alexnet", batch=1, bits=32)
    assert fp32["op"]["mul"]["fj"] > tr.evaluate_training("floatpim", "alexnet", batch=1)["op"]["mul"]["fj"]
    no_init = tr.evaluate_training("floatpim", "alexnet", batch=1, overrides=["floatpim_init_per_nor=false"])
    assert no_init["op"]["mul"]["fj"] == pytest.approx(360 * 0.29)


def _cli(*args):
    return CliRunner().invoke(main, ["hw", "pim", *args])


def test_lean_hw_pim_costs_ablates_and_trains_from_the_command_line():
    r = _cli("--arch", "timely", "--workload", "alexnet", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["arch"] == "timely" and out["bits"] == 8 and len(out["layers"]) == 8
    assert out["total_pj"] == pytest.approx(sum(out["energy_pj"].values()))
    assert out["peak"]["gops_per_w"] > 0 and "read_cycles" in out["derived"]
    r = _cli("--arch", "isaac", "--workload", "resnet18")
    assert r.exit_code == 0 and "peak:" in r.output and "derived" in r.output
    r = _cli("--arch", "timely", "--workload", "alexnet", "--ablate", "alb,o2ir")
    assert r.exit_code == 0 and "alb" in r.output and "share of saving" in r.output
    r = _cli("--arch", "floatpim", "--workload", "alexnet", "--train", "--bits", "32")
    assert r.exit_code == 0 and "FP32" in r.output and "3360 nor" in r.output, r.output
    r = _cli("--arch", "sot-mram", "--workload", "alexnet", "--train", "--json")
    assert r.exit_code == 0
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["format"] == "bfloat16" and out["op"]["mul"]["steps"] == {"sense": 162, "write": 169}


@pytest.mark.parametrize("args,message", [
    (["--arch", "tpu", "--workload", "alexnet"], "Invalid value for '--arch'"),
    (["--arch", "isaac", "--workload", "alexnet", "--train"], "--train costs a training step"),
    (["--arch", "floatpim", "--workload", "alexnet"], "add --train"),
    (["--arch", "isaac", "--workload", "alexnet", "--ablate", "alb"], "use it with --arch timely"),
    (["--arch", "timely", "--workload", "alexnet", "--ablate", "alb,speed"], "unknown TIMELY idea 'speed'"),
    (["--arch", "timely", "--workload", "alexnet", "--set", "xbar=0"], "xbar must be at least 1"),
    (["--arch", "timely", "--workload", "alexnet", "--set", "colour=red"], "unknown PIM parameter 'colour'"),
    (["--arch", "timely", "--workload", "alexnet", "--bits", "32"], "bits must be 8 or 16"),
    (["--arch", "sot-mram", "--workload", "alexnet", "--train", "--bits", "8"], "bfloat16 (--bits 16) or FP32"),
    (["--arch", "sot-mram", "--workload", "alexnet", "--train", "--set", "e_write_fj=-1"], "finite number >= 0"),
    (["--workload", "alexnet", "--sweep", "adc-bits=4..10"], "--sweep needs --simulate"),
    (["--arch", "timely", "--workload", "alexnet", "--xbar", "128"], "--xbar: the functional crossbar's options"),
    (["--workload", "alexnet", "--adc-bits", "6"], "--adc-bits: only with --simulate"),
    (["--workload", "alexnet", "--bits", "8"], "give --arch"),
    (["--arch", "sot-mram", "--workload", "alexnet", "--train", "--set", "e_nor_fj=1"], "unknown sot-mram parameter"),
])
def test_bad_pim_options_are_one_error_line(args, message):
    r = _cli(*args)
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_bad_designs_are_refused_in_the_api():
    with pytest.raises(HardwareModelError, match="unknown PIM architecture"):
        pa.get_arch("eyeriss")
    with pytest.raises(HardwareModelError, match="e_da must be a finite energy"):
        pa.get_arch("prime", overrides={"e_da": "nan"})
