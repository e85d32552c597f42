"""AutoDNNchip's design search (issue 18): the graph of IPs and its two modes by hand, budgets, the same result on
any number of workers, and DESIGN.json for lean hw rtl."""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw.accel import explore as ex
from lean.hw.accel import graph, load_design, predict_resources

WORKLOAD = "net:resnet20"


TARGET = {"dram_gb_s": 0.4, "clock_mhz": 100.0}     # 4 bytes a cycle


def _design(**over):
    d = {"rows": 2, "cols": 2, "pack": 0, "a_bits": 8, "w_bits": 8, "acc_bits": 32, "input_words": 1024,
         "weight_words": 1024, "output_words": 4096}
    return {**d, **over}


def test_the_graph_of_ips_and_its_coarse_mode_by_hand():
    g = graph.OS_SYSTOLIC
    edges = {(e["from"], e["to"]): e["precision"] for e in g.describe()["edges"]}
    assert edges[("pe_array", "output_buffer")] == "acc_bits" and edges[("dram_reader", "input_banks")] == "a_bits"
    d = _design()
    # one (4 x 3) @ (3 x 4) product on 2 x 2 PEs: 4 tiles of 1 + 3 + 2 + 2 + 2 + 4 = 14 cycles; DRAM: 12 input
    # and 12 weight bytes in, 16 sums of 4 bytes out, at 4 bytes a cycle: 6 + 16 cycles on the shared port; the
    # array bounds the layer, and a port ten times slower does
    cost = graph.coarse(g, d, [(1, 4, 3, 4)], TARGET)
    assert (cost["by_ip"]["dram_reader"]["cycles"], cost["by_ip"]["dram_writer"]["cycles"]) == (6, 16)
    assert cost["by_ip"]["pe_array"]["cycles"] == 4 * 14 and cost["cycles"] == 56
    assert graph.coarse(g, d, [(1, 4, 3, 4)], {"dram_gb_s": 0.04, "clock_mhz": 100.0})["cycles"] == 220
    # energy: 48 MACs, operand reads 4 x 3 x 2 tiles each side at 8 bits, 16 sums written at 32, DRAM 192 + 512
    # bits
    mac, sram, dram = graph.tech.mac_energy_pj(8), graph.tech.sram_energy_pj(1), graph.tech.dram_energy_pj(1)
    expected = 48 * mac + (2 * 24 * 8 + 16 * 32) * sram + (192 + 512) * dram
    assert cost["energy_pj"] == pytest.approx(expected)
    # a layer twice as deep doubles the array's work but not the port's outputs
    assert graph.coarse(g, d, [(1, 4, 6, 4)], TARGET)["by_ip"]["pe_array"]["cycles"] == 4 * 17
    # the overlapped template: the same graph but for its array IP, whose drain (4 sums) hides behind the next
    # tile's 10 cycles of compute: 3 x 10 + 10 + 4 + 3
    overlap = graph.coarse(graph.OS_SYSTOLIC_OVERLAP, d, [(1, 4, 3, 4)], TARGET)
    assert overlap["by_ip"]["pe_array"]["cycles"] == 3 * 10 + 10 + 4 + 3
    assert overlap["energy_pj"] == cost["energy_pj"]
    assert graph.resources(graph.OS_SYSTOLIC_OVERLAP, d)["ff"] > graph.resources(g, d)["ff"]


def test_the_fine_mode_by_hand_and_against_the_coarse_bound():
    g = graph.OS_SYSTOLIC
    d = _design()
    # one pass: load, compute, store one after another: 6 + 56 + 16
    sim = graph.simulate(g, d, [(1, 4, 3, 4)], TARGET)
    assert sim["cycles"] == pytest.approx(6 + 56 + 16) and sim["busy"]["pe_array"] == 56
    # many passes (banks of 8 words): the pipeline overlaps loads with compute, so the simulation lies between
    # the coarse bound (the busiest IP) and no overlap at all; with single-buffered memories it is slower
    d = _design(input_words=8, weight_words=8)
    layer = [(1, 64, 8, 16)]
    coarse = graph.coarse(g, d, layer, TARGET)
    sim = graph.simulate(g, d, layer, TARGET)
    serial = sum(v["cycles"] for v in coarse["by_ip"].values())
    assert coarse["cycles"] <= sim["cycles"] < serial
    single = dataclasses.replace(g, ips=tuple(dataclasses.replace(ip, slots=1) if ip.slots else ip for ip in g.ips))
    assert graph.simulate(single, d, layer, TARGET)["cycles"] > sim["cycles"]
    # the overlapped array fills and drains once a layer, not once a pass: its simulation stays near the bound
    ov = graph.OS_SYSTOLIC_OVERLAP
    assert graph.coarse(ov, d, layer, TARGET)["cycles"] <= graph.simulate(ov, d, layer, TARGET)["cycles"] < 1.1 * \
        graph.coarse(ov, d, layer, TARGET)["cycles"]


def test_the_ranking_model_is_the_rtl_resource_model():
    rng = np.random.default_rng(0)
    index = rng.choice(ex.space_size(), 200, replace=False)
    fields = ex.decode(index)
    used = ex._resources(fields)
    for i, valid in zip(index, fields["valid"], strict=True):
        if not valid:
            continue
        model = predict_resources(ex.design_of(int(i), 200.0))
        j = int(np.flatnonzero(index == i)[0])
        assert (used["dsp"][j], used["bram18"][j], used["lut"][j]) == (model["dsp"], model["bram18"], model["lut"])
    # a sample mixes both templates: each candidate's coarse cost is its own template's
    assert 0 < (fields["template"] == 1).sum() < len(index)
    layers = [(1, 64, 27, 16)]
    mixed = ex.rank_chunk(0, 0, layers, ex.TARGETS["zc706"], {"dsp": 1e9}, "latency", 50, sample=np.sort(index))
    for row in mixed["best"][:10]:
        d = graph.fields(ex.design_of(row["index"], 200.0))
        alone = graph.coarse(ex.SEARCHED[int(ex.decode(np.array([row["index"]]))["template"][0])], d, layers,
                             ex.TARGETS["zc706"])
        assert row["latency_s"] == pytest.approx(float(alone["cycles"]) / 200e6)


@pytest.mark.parametrize("budget", [{"dsp": 64, "bram18": 100, "lut": 20000}, {"dsp": 360, "bram18": 432,
                                                                               "lut": 70560}])
def test_the_search_never_returns_a_design_over_budget(budget):
    r = ex.explore(WORKLOAD, "ultra96", budget, samples=20000, workers=1)
    chosen = predict_resources(load_design(r["design"]))
    assert all(chosen[k] <= v for k, v in budget.items())
    assert all(row[k] <= v for row in r["front"] + r["best"] for k, v in budget.items())
    shares = [row["budget_share"] for row in r["front"]]
    latencies = [row["latency_s"] for row in r["front"]]
    assert latencies == sorted(latencies) and shares == sorted(shares, reverse=True)   # a real trade-off curve
    assert r["search"]["candidates"] == 20000 and 0 < r["search"]["feasible"] < 20000
    asic = ex.explore(WORKLOAD, "asic", {"area_mm2": 1.0}, samples=5000, workers=1)
    assert asic["predicted"]["area_mm2"] <= 1.0
    # limits given replace the device's; the others stay
    ff_only = ex.explore(WORKLOAD, "ultra96", {"ff": 20000}, samples=5000, workers=1)
    assert ff_only["budget"]["dsp"] == 360 and ff_only["predicted"]["ff"] <= 20000


def test_the_same_search_on_one_and_on_three_workers():
    pytest.importorskip("dask.distributed", reason="Dask is not installed (pip install 'lean[cluster]')")
    one = ex.explore(WORKLOAD, "zc706", samples=30000, seed=3, workers=1, engine="dask")
    three = ex.explore(WORKLOAD, "zc706", samples=30000, seed=3, workers=3, engine="dask")
    inline = ex.explore(WORKLOAD, "zc706", samples=30000, seed=3, workers=1)
    assert (one["search"]["engine"], one["search"]["workers"]) == ("dask", 1)
    assert (three["search"]["engine"], three["search"]["workers"]) == ("dask", 3)
    for key in ("design", "front", "best", "predicted"):
        assert one[key] == three[key] == inline[key], key
    processes = ex.explore(WORKLOAD, "zc706", samples=30000, seed=3, workers=2, engine="processes")
    assert processes["search"]["engine"] == "processes" and processes["design"] == one["design"]


def test_without_dask_the_search_runs_in_local_processes_and_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)       # as if Dask were not installed
    r = ex.explore(WORKLOAD, "ultra96", samples=3000, workers=2)
    assert r["search"]["engine"] == "processes" and "pip install 'lean[cluster]'" in r["search"]["note"]
    assert r["design"] == ex.explore(WORKLOAD, "ultra96", samples=3000, workers=1)["design"]
    with pytest.raises(HardwareModelError, match="needs it"):
        ex.explore(WORKLOAD, "ultra96", samples=3000, scheduler="tcp://nowhere:8786")


def test_lean_hw_explore_writes_a_design_lean_hw_rtl_reads(tmp_path):
    out = tmp_path / "DESIGN.json"
    r = CliRunner().invoke(main, ["hw", "explore", "--workload", WORKLOAD, "--target", "ultra96", "--budget",
                                  "dsp=100,bram18=200,lut=30000", "--samples", "5000", "--workers", "1", "-o",
                                  str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])
    design = load_design(out)
    assert design.to_dict() == result["design"] and predict_resources(design)["dsp"] <= 100
    r = CliRunner().invoke(main, ["hw", "rtl", str(out), "-o", str(tmp_path / "build")])
    assert r.exit_code == 0 and (tmp_path / "build" / "lean_accel.v").exists()


@pytest.mark.parametrize("args,message", [
    (["--budget", "dsp=lots"], "is not a number"), (["--budget", "luts=5"], "--budget takes"),
    (["--budget", "dsp=1,bram18=1,lut=1"], "no design point fits"),
    (["--target", "asic", "--budget", "dsp=10"], "the asic budget limits area_mm2"),
])
def test_bad_budgets_are_one_error_line(tmp_path, args, message):
    r = CliRunner().invoke(main, ["hw", "explore", "--workload", WORKLOAD, "--samples", "2000", "--workers", "1",
                                  "-o", str(tmp_path / "D.json"), *args])
    assert r.exit_code != 0 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_unknown_targets_and_objectives_are_refused():
    with pytest.raises(HardwareModelError, match="unknown target"):
        ex.explore(WORKLOAD, "stratix")
    with pytest.raises(HardwareModelError, match="unknown objective"):
        ex.explore(WORKLOAD, "ultra96", objective="beauty")
