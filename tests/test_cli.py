"""The lean command through click's CliRunner, including bad input."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lean.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def _last_json(output):
    return json.loads(output.strip().splitlines()[-1])


def test_train_eval_info_resume_round(run, tmp_path):
    r = run("train", "--net", "lenet5", "--data", "digits", "--epochs", "2", "--batch-size", "32", "--lr", "0.05",
            "--out", "run.h5", "--json")
    assert r.exit_code == 0, r.output
    summary = _last_json(r.output)
    for key in ("test_accuracy", "epochs", "seconds", "train_images_per_second"):
        assert key in summary
    assert summary["epochs"] == 2 and 0.0 <= summary["test_accuracy"] <= 1.0
    r = run("eval", "run.h5", "--json")
    assert r.exit_code == 0
    assert _last_json(r.output)["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    r = run("info", "run.h5", "--json")
    info = _last_json(r.output)
    assert info["net"] == "lenet5" and len(info["history"]) == 2 and info["parameters"] > 0
    r = run("info", "run.h5")
    assert "conv1" in r.output and "history" in r.output
    r = run("train", "--resume", "run.h5", "--epochs", "3", "--json")
    assert r.exit_code == 0, r.output
    assert _last_json(r.output)["epochs"] == 3
    r = run("train", "--resume", "run.h5")
    assert r.exit_code != 0 and "already finished 3 epochs" in r.output


def test_existing_output_is_not_overwritten(run, tmp_path):
    (tmp_path / "keep.h5").write_text("precious")
    r = run("train", "--net", "lenet5", "--data", "digits", "--epochs", "1", "--out", "keep.h5")
    assert r.exit_code != 0 and "exists" in r.output
    assert (tmp_path / "keep.h5").read_text() == "precious"


@pytest.mark.parametrize("args,message", [
    (("train", "--net", "nosuchnet", "--data", "digits"), "unknown net 'nosuchnet'; known: mlp, lenet5"),
    (("train", "--net", "lenet5", "--data", "nosuchdata"), "unknown dataset 'nosuchdata'; known: digits"),
    (("train", "--net", "lenet5", "--data", "digits", "--epochs", "-2"), "-2 is not in the range x>=1"),
    (("train", "--net", "lenet5"), "--net and --data are required"),
    (("eval", "missing.h5"), "missing.h5 does not exist"),
    (("eval", "junk.h5"), "not a readable HDF5 file"),
    (("info", "junk.h5"), "not a readable HDF5 file"),
    (("bench", "train", "--net", "lenet5", "--input", "1,28"), "--input must be C,H,W"),
    (("bench", "infer", "--net", "bogus"), "unknown net 'bogus'"),
    (("train", "--net", "lenet5", "--data", "digits", "--epochs", "abc"), "'abc' is not a valid integer"),
    (("nosuchcommand",), "No such command"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(run, tmp_path, args, message):
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    r = run(*args)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1  # one line, no usage dump


def test_train_with_wrong_data_shape_file(run, tmp_path):
    import numpy as np

    np.savez(tmp_path / "odd.npz", x_train=np.zeros((4, 5)), y_train=np.zeros(4), x_test=np.zeros((2, 5)),
             y_test=np.zeros(2))
    r = run("train", "--net", "lenet5", "--data", "odd.npz", "--epochs", "1")
    assert r.exit_code == 1 and "x_train must be (n, h, w)" in r.output


def test_nets_data_and_bench_json(run):
    nets = _last_json(run("nets", "--json").output)
    counts = {n["name"]: n["parameters"] for n in nets}
    assert counts["resnet20"] == 269_722 and counts["lenet5"] == 61_706
    data = {d["name"]: d for d in _last_json(run("data", "--json").output)}
    assert data["digits"]["available"] is True and "cifar10" in data
    r = run("bench", "train", "--net", "lenet5", "--batch-size", "16", "--steps", "2", "--json")
    b = _last_json(r.output)
    assert b["images_per_second"] > 0 and b["batch_size"] == 16 and b["mode"] == "train"
    r = run("bench", "infer", "--net", "resnet8", "--batch-size", "4", "--input", "3,16,16", "--steps", "2")
    assert r.exit_code == 0 and "images/s" in r.output
    r = run("bench", "train", "--net", "lenet5", "--batch-size", "8", "--steps", "2", "--layers", "--json")
    layers = _last_json(r.output)["layers"]
    assert [row["name"] for row in layers][:3] == ["conv1", "relu1", "pool1"]
    assert all(row["forward_ms"] >= 0 and row["backward_ms"] >= 0 for row in layers)
    r = run("bench", "infer", "--net", "resnet8", "--batch-size", "4", "--input", "3,16,16", "--steps", "2",
            "--layers")
    assert r.exit_code == 0 and "backward" not in r.output
    kernels = {line.split()[0]: line.split()[2] for line in r.output.splitlines()
               if line.split() and line.split()[1] in ("Conv2d", "BatchNorm")}
    assert kernels["bn1"] == "fused" and kernels["conv1"] in ("tiled", "direct", "im2col")  # folded at inference


def test_demo_json(run):
    r = run("demo", "--epochs", "3", "--json")
    assert r.exit_code == 0, r.output
    summary = _last_json(r.output)
    assert summary["net"] == "lenet5" and summary["checkpoint"] == "lean-demo.h5"
    assert summary["quantized"]["compression_ratio"] > 3
    assert summary["eyeriss"]["int8"]["energy_pj_per_image"] < summary["eyeriss"]["float"]["energy_pj_per_image"]


def test_help_does_not_import_numpy_or_numba():
    code = "import sys; from lean.cli import main; assert 'numpy' not in sys.modules and 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_every_skips_the_test_set_between_evaluations(run, tmp_path):
    r = run("train", "--net", "lenet5", "--data", "digits", "--epochs", "3", "--batch-size", "32", "--lr", "0.05",
            "--eval-every", "2", "--out", "e.h5", "--json")
    assert r.exit_code == 0, r.output
    history = _last_json(run("info", "e.h5", "--json").output)["history"]
    tested = [h["test_accuracy"] is not None for h in history]
    assert tested == [False, True, True]  # epoch 2, and the last one always
    assert _last_json(r.output)["test_accuracy"] == history[-1]["test_accuracy"]
    r = run("info", "e.h5")
    assert r.exit_code == 0 and "test    -" in r.output
    assert run("train", "--resume", "e.h5", "--epochs", "7").exit_code == 0  # the resumed run keeps N = 2
    history = _last_json(run("info", "e.h5", "--json").output)["history"]
    assert [h["test_accuracy"] is not None for h in history[3:]] == [True, False, True, True]  # epochs 4-7
    r = run("train", "--net", "lenet5", "--data", "digits", "--eval-every", "0")
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_info_plot_writes_curves(run, tmp_path):
    pytest.importorskip("matplotlib")
    assert run("train", "--net", "lenet5", "--data", "digits", "--epochs", "2", "--out", "p.h5").exit_code == 0
    r = run("info", "p.h5", "--plot", "curves.png")
    assert r.exit_code == 0 and (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_prune_plain_net_then_fine_tune(run, tmp_path):
    assert run("train", "--net", "vgg11", "--data", "digits", "--epochs", "1", "--batch-size", "64",
               "--out", "v.h5").exit_code == 0
    r = run("prune", "v.h5", "--ratio", "0.5", "-o", "s.h5", "--json")
    assert r.exit_code == 0, r.output
    out = _last_json(r.output)
    assert out["params_after"] < out["params_before"] and out["macs_after"] < out["macs_before"]
    r = run("train", "--resume", "s.h5", "--epochs", "1", "--json")
    assert r.exit_code == 0 and _last_json(r.output)["parameters"] == out["params_after"]
    r = run("prune", "v.h5", "--ratio", "1.5", "-o", "t.h5")
    assert r.exit_code != 0 and "1.5" in r.output
