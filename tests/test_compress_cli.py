"""`lean compress` end to end on a small digits model, and its bad-input cases."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.data import load
from lean.nets import build
from lean.nn.checkpoint import load as load_checkpoint
from lean.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "run.h5"
    data = load("digits")
    model = build("resnet8", input_shape=data.input_shape, num_classes=10, seed=0)
    Trainer(model, data, TrainConfig(net="resnet8", data="digits", epochs=4, batch_size=32, lr=0.05),
            out=path).run()
    return path


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("method,options", [
    ("smartexchange", ["--theta", "0.01", "--retrain-epochs", "1"]),
    ("smartexchange", ["--theta", "0.01", "--retrain-epochs", "1", "--retrain", "fixed-mask", "--row-threshold",
                       "5"]),
    ("kmeans", ["--clusters", "16", "--sparsity", "0.2", "--regularize-epochs", "1", "--retrain-epochs", "1"]),
    ("quantize", ["--weight-bits", "4", "--activation-bits", "8", "--per-channel", "--qat-epochs", "1"]),
])
def test_compress_report_eval_info_and_hw(trained, tmp_path, method, options):
    out = tmp_path / f"{method}.h5"
    r = _run("compress", method, str(trained), "-o", str(out), "--lr", "0.005", *options, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    for key in ("compression_ratio", "accuracy_before", "accuracy_after", "layers"):
        assert key in report
    assert report["compression_ratio"] > 1.5
    assert report["accuracy_after"] > 0.5  # far above chance (10%) after compression and one re-training epoch
    assert out.stat().st_size < trained.stat().st_size
    ev = json.loads(_run("eval", str(out), "--json").output)
    assert ev["test_accuracy"] == pytest.approx(report["accuracy_after"])
    info = json.loads(_run("info", str(out), "--json").output)
    assert info["storage_bits"] == report["storage_bits"]
    hw = json.loads(_run("hw", "predict", "--workload", str(out), "--accel", "eyeriss", "--json").output)
    first = hw["layers"][0]
    assert first["macs"] > 0
    if method == "quantize":
        assert hw["accelerator_parameters"]["name"] == "eyeriss"


def test_smartexchange_checkpoint_keeps_codes(trained, tmp_path):
    out = tmp_path / "se.h5"
    assert _run("compress", "smartexchange", str(trained), "-o", str(out)).exit_code == 0
    ckpt = load_checkpoint(out)
    codes = [v for k, v in ckpt.state.items() if k.endswith("/codes")]
    assert codes and all(c.dtype == np.int8 for c in codes)
    dense_conv = [k for k in ckpt.state if k.startswith("params/") and "conv" in k and k.endswith(".weight")]
    assert not dense_conv  # conv weights are stored only as codes and bases


@pytest.mark.parametrize("args,message", [
    (("compress", "kmeans", "RUN", "-o", "OUT", "--clusters", "0"), "--clusters must be positive"),
    (("compress", "kmeans", "RUN", "-o", "OUT", "--clusters", "4,4"), "lists 2 values but the model has"),
    (("compress", "quantize", "RUN", "-o", "OUT", "--weight-bits", "1"), "1 is not in the range"),
    (("compress", "smartexchange", "missing.h5", "-o", "OUT"), "does not exist"),
    (("compress", "quantize", "RUN", "-o", "RUN"), "--out must differ from the input checkpoint"),
])
def test_bad_compress_input(trained, tmp_path, args, message):
    args = [str(trained) if a == "RUN" else str(tmp_path / "o.h5") if a == "OUT" else a for a in args]
    r = _run(*args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_smartexchange_redecomposition_draws_a_new_pattern_each_epoch(trained, tmp_path, monkeypatch):
    # the authors' re-training: dense SGD, then every weight decomposed anew after each epoch (a new mask);
    # lean's fixed-mask schedule keeps the first decomposition's pattern
    from lean.compress import pipeline

    patterns = []
    decompose = pipeline.SmartExchangeRedecomposition.decompose

    def watched(self):
        decompose(self)
        first = next(iter(self.decompositions.values()))
        patterns.append(np.concatenate([b.sign.ravel() != 0 for filt in first.blocks for b in filt]))

    monkeypatch.setattr(pipeline.SmartExchangeRedecomposition, "decompose", watched)
    report = pipeline.compress("smartexchange", trained, tmp_path / "se.h5", theta=0.01, retrain_epochs=2,
                               lr=0.005)
    assert report["retrain"] == "redecompose" and report["retrain_epochs"] == 2
    assert len(patterns) == 3  # before re-training, after each of the two epochs
    assert any(not np.array_equal(patterns[0], p) for p in patterns[1:])
    assert all("ce_row_density" in r for r in report["layers"])
    with pytest.raises(pipeline.ConfigError, match="--retrain"):
        pipeline.compress("kmeans", trained, tmp_path / "k.h5", retrain="fixed-mask")
