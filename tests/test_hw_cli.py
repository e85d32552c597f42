"""`lean hw` through click's CliRunner."""

import json

import pytest
from click.testing import CliRunner

from lean.cli import main


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_predict_json_has_the_documented_fields():
    r = _run("hw", "predict", "--workload", "alexnet", "--accel", "eyeriss", "--batch", "4", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    for key in ("macs", "cycles", "latency_ms", "energy_pj", "dram_bytes", "energy_breakdown_pj"):
        assert key in out["total"]
        assert all(key in layer for layer in out["layers"])
    assert [layer["name"] for layer in out["layers"]][:2] == ["conv1", "conv2"]
    assert out["total"]["macs"] == sum(layer["macs"] for layer in out["layers"])


def test_set_and_dataflow_change_the_prediction():
    base = json.loads(_run("hw", "predict", "--workload", "resnet20", "--accel", "eyeriss", "--json").output)
    bigger = json.loads(_run("hw", "predict", "--workload", "resnet20", "--accel", "eyeriss", "--set",
                             "array_rows=24", "--set", "array_cols=28", "--json").output)
    assert bigger["total"]["latency_ms"] < base["total"]["latency_ms"]
    assert bigger["accelerator_parameters"]["array_rows"] == 24
    ws = json.loads(_run("hw", "predict", "--workload", "resnet20", "--accel", "eyeriss", "--dataflow", "ws",
                         "--json").output)
    assert ws["accelerator_parameters"]["dataflow"] == "ws"
    assert ws["total"]["macs"] == base["total"]["macs"]


def test_table_output_and_listings():
    r = _run("hw", "predict", "--workload", "mobilenetv2", "--accel", "tpu-like")
    assert r.exit_code == 0 and "total:" in r.output and "frames/s" in r.output
    assert "eyeriss" in _run("hw", "accels").output
    assert "resnet50" in _run("hw", "workloads").output


def test_workload_and_accelerator_files(tmp_path):
    (tmp_path / "net.json").write_text(json.dumps({"name": "mine", "layers": [
        {"name": "c1", "c": 3, "k": 8, "h": 16, "w": 16, "r": 3, "s": 3, "padding": 1}]}))
    (tmp_path / "acc.toml").write_text('base = "eyeriss"\nname = "big-eyeriss"\narray_rows = 24\n')
    r = _run("hw", "predict", "--workload", str(tmp_path / "net.json"), "--accel", str(tmp_path / "acc.toml"),
             "--json")
    out = json.loads(r.output)
    assert out["accelerator"] == "big-eyeriss" and out["total"]["macs"] == 8 * 16 * 16 * 27


@pytest.mark.parametrize("args,message", [
    (("--workload", "googlenet", "--accel", "eyeriss"), "unknown workload 'googlenet'"),
    (("--workload", "alexnet", "--accel", "tpu9"), "unknown accelerator 'tpu9'"),
    (("--workload", "alexnet", "--accel", "eyeriss", "--set", "rows=3"), "unknown accelerator parameter 'rows'"),
    (("--workload", "alexnet", "--accel", "eyeriss", "--set", "array_rows"), "--set takes key=value"),
    (("--workload", "alexnet", "--accel", "eyeriss", "--set", "array_rows=0"), "array_rows must be >= 1"),
    (("--workload", "missing.json", "--accel", "eyeriss"), "does not exist"),
])
def test_bad_input_is_one_line(args, message):
    r = _run("hw", "predict", *args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_checkpoint_workload_sees_real_density(tmp_path):
    from lean.data import load
    from lean.nets import build
    from lean.train import TrainConfig, Trainer

    data = load("digits")
    model = build("lenet5", input_shape=data.input_shape, num_classes=10)
    Trainer(model, data, TrainConfig(epochs=1, batch_size=64), out=tmp_path / "run.h5").run()
    r = _run("hw", "predict", "--workload", str(tmp_path / "run.h5"), "--accel", "eyeriss", "--json")
    out = json.loads(r.output)
    assert out["workload"] == "run" and len(out["layers"]) == 5


def test_show_mapping_prints_a_file_that_mapping_reads_back(tmp_path):
    base = ("hw", "predict", "--workload", "alexnet", "--accel", "eyeriss")
    shown = _run(*base, "--show-mapping")
    assert shown.exit_code == 0 and shown.output.startswith('["conv1"]')
    (tmp_path / "m.toml").write_text(shown.output)
    searched = json.loads(_run(*base, "--json").output)
    given = json.loads(_run(*base, "--mapping", str(tmp_path / "m.toml"), "--json").output)
    assert given["total"]["energy_pj"] == pytest.approx(searched["total"]["energy_pj"], rel=1e-12)
    assert [x["mapping"] for x in given["layers"]] == [x["mapping"] for x in searched["layers"]]
    assert all(x["search"]["given"] for x in given["layers"])
    # JSON works too, and a mapping for one layer leaves the others to the search
    (tmp_path / "m.json").write_text(json.dumps({"conv1": searched["layers"][0]["mapping"]}))
    one = json.loads(_run(*base, "--mapping", str(tmp_path / "m.json"), "--json").output)
    assert [x["search"]["given"] for x in one["layers"]][:2] == [True, False]


@pytest.mark.parametrize("content,message", [
    ('{"conv9": {}}', "mappings name layers the workload does not have: conv9"),
    ('{"*": {"orders": {"glb": "KKN"}}}', "each at most once"),
    ('{"conv1": {"rows": {"R": 11}, "cols": {"P": 55}}}', "unrolls 11 x 55 PEs on a 12 x 14 array"),
    ('{"conv1": {"glb": {"K": 96, "C": 3, "P": 55, "Q": 55, "R": 11, "S": 11}}}', "global buffer tiles take"),
    ('{"conv1": {"dram": {"K": 2}}}', "do not cover the layer"),
    ("not json", "--mapping"),
])
def test_bad_mapping_files_are_one_error_line(tmp_path, content, message):
    (tmp_path / "m.json").write_text(content)
    r = _run("hw", "predict", "--workload", "alexnet", "--accel", "eyeriss", "--mapping", str(tmp_path / "m.json"))
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1



def test_breakdown_plot(tmp_path):
    pytest.importorskip("matplotlib")
    r = _run("hw", "predict", "--workload", "resnet20", "--accel", "eyeriss", "--plot", str(tmp_path / "b.png"))
    assert r.exit_code == 0 and (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
