"""AutoDNNchip's last step: a design point as Verilog, simulated bit-exactly and synthesized (issue 18, in part)."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw import accel
from lean.hw.accel import graph

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog is not installed (apt-get install iverilog)")
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="Yosys is not installed (apt-get install yosys)")


def test_resource_and_cycle_models_by_hand():
    # a 1K x 8 bank fits one BRAM18 (as 2K x 9); a 4K x 32 buffer takes 8 (512 x 36 eight times deep)
    assert graph.bram18(8, 1024) == 1 and graph.bram18(32, 4096) == 8 and graph.bram18(18, 1025) == 2
    plain = accel.DesignPoint(rows=2, cols=2)
    packed = accel.DesignPoint(rows=2, cols=4, pack_dsp=True)
    assert accel.predict_resources(plain)["dsp"] == 4 and accel.predict_resources(packed)["dsp"] == 4
    # 2 x 2 banks of 1K words and a 4K x 32 output buffer: 4 + 8 BRAM18; packed: 2 + 4 banks
    assert accel.predict_resources(plain)["bram18"] == 12 and accel.predict_resources(packed)["bram18"] == 14
    # per tile: clear 1, feed k + rows + pe_cols + 2, drain rows x cols; one more to start
    assert accel.predict_cycles(plain, 16, 27, 4) == 8 * 2 * (1 + 27 + 2 + 2 + 2 + 4) + 1
    assert accel.predict_cycles(packed, 16, 27, 4) == 8 * 1 * (1 + 27 + 2 + 2 + 2 + 8) + 1
    # overlapped: a tile computes 1 + 27 + 2 + 2 + 2 = 34 cycles while the last one's 4 sums drain, so tiles
    # follow every 34 cycles; the last drain, hand-off and wait add 4 + 3. On 4 x 8 PEs the drain (32 + 1) and a
    # shorter compute (1 + 9 + 4 + 8 + 2 = 24) trade places
    overlap = accel.DesignPoint(rows=2, cols=2, template="os-systolic-overlap")
    assert accel.predict_cycles(overlap, 16, 27, 4) == 15 * 34 + 34 + 4 + 3
    wide = accel.DesignPoint(rows=4, cols=8, template="os-systolic-overlap")
    assert accel.predict_cycles(wide, 8, 9, 16) == 3 * 33 + 24 + 32 + 3
    # its shadow registers: a flip-flop per bit of every sum
    assert (accel.predict_resources(overlap)["ff"] - accel.predict_resources(plain)["ff"]
            >= 2 * 2 * 32)


@pytest.mark.parametrize("fields,message", [
    ({"rows": 2}, "lacks cols"), ({"rows": 2, "cols": 0}, "cols must be a positive integer"),
    ({"rows": 2, "cols": 3, "pack_dsp": True}, "even number of columns"),
    ({"rows": 2, "cols": 2, "colour": 1}, "unknown design fields: colour"),
    ({"rows": 2, "cols": 2, "template": "eyeriss"}, "unknown RTL template"),
])
def test_bad_designs_are_one_error(tmp_path, fields, message):
    path = tmp_path / "DESIGN.json"
    path.write_text(json.dumps({"design": fields}))
    with pytest.raises(HardwareModelError, match=message):
        accel.load_design(path)
    r = CliRunner().invoke(main, ["hw", "rtl", str(path), "-o", str(tmp_path / "b")])
    assert r.exit_code != 0 and message in r.output and len(r.output.strip().splitlines()) == 1


def test_a_missing_tool_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(HardwareModelError, match="iverilog is not installed: apt-get install iverilog"):
        accel.simulate(accel.DesignPoint(rows=2, cols=2), tmp_path)
    with pytest.raises(HardwareModelError, match="yosys is not installed: apt-get install yosys"):
        accel.synthesize(accel.DesignPoint(rows=2, cols=2), tmp_path)


@needs_iverilog
@pytest.mark.parametrize("design", [accel.DesignPoint(rows=2, cols=2),
                                    accel.DesignPoint(rows=3, cols=4, pack_dsp=True),
                                    accel.DesignPoint(rows=3, cols=4, pack_dsp=True, template="os-systolic-overlap")])
def test_generated_designs_simulate_bit_exactly(tmp_path, design):
    # a 3 -> 4 channel 3x3 conv on a 6x6 map: 16 x 27 by 27 x 4, ragged tiles on the 3-row array
    r = accel.simulate(design, tmp_path)
    assert r["outputs"] == 64 and r["mismatches"] == 0
    assert r["cycles"] == r["predicted_cycles"]
    # the products reach the sign extremes: -128 x -128 in the packed pair's low and high lanes
    a = np.full((2, 5), -128)
    b = np.full((5, 4), -128)
    b[:, 1] = 127
    extreme = accel.simulate(design, tmp_path / "extreme", a, b)
    assert extreme["mismatches"] == 0
    # an odd number of output columns: a packed PE's second column has no weights and must not spoil the first
    odd = accel.simulate(design, tmp_path / "odd", *accel.rtl.conv_as_matrices(c=1, k=3, h=4, w=4))
    assert odd["mismatches"] == 0 and odd["cycles"] == odd["predicted_cycles"]


@needs_yosys
@pytest.mark.parametrize("template", ["os-systolic", "os-systolic-overlap"])
def test_synthesized_counts_against_the_resource_model(tmp_path, template):
    r = accel.synthesize(accel.DesignPoint(rows=2, cols=4, pack_dsp=True, template=template), tmp_path)
    y, p = r["yosys"], r["predicted"]
    assert y["dsp"] == p["dsp"] == 4                       # two 8-bit MACs in each DSP48E2
    assert abs(y["bram18"] - p["bram18"]) <= 0.1 * p["bram18"]
    assert abs(y["lut"] - p["lut"]) <= 0.3 * p["lut"] and abs(y["ff"] - p["ff"]) <= 0.3 * p["ff"]


@needs_iverilog
@needs_yosys
def test_lean_hw_rtl_writes_simulates_and_synthesizes(tmp_path):
    path = tmp_path / "DESIGN.json"
    path.write_text(json.dumps({"design": {"rows": 2, "cols": 2}}))
    r = CliRunner().invoke(main, ["hw", "rtl", str(path), "-o", str(tmp_path / "build"), "--simulate",
                                  "--synthesize", "--family", "xc7", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert (tmp_path / "build" / "lean_accel.v").exists() and out["simulation"]["mismatches"] == 0
    assert out["synthesis"]["family"] == "xc7" and out["synthesis"]["yosys"]["dsp"] == 4
