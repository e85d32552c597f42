"""AutoDNNchip's design search (issue 18, in part): budgets, the models it ranks with, the same result on any
number of workers, and DESIGN.json for lean hw rtl."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw.accel import explore as ex
from lean.hw.accel import load_design, predict_resources

WORKLOAD = "net:resnet20"


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
