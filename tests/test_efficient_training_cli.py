"""`lean train` with early-bird tickets and E2-Train through click's CliRunner: results, resume, bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.compress.config import EarlyBirdConfig, SlimmingConfig
from lean.data import load as load_data
from lean.errors import LeanError, TrainingInterrupted
from lean.nets import build
from lean.nn.checkpoint import load as load_checkpoint
from lean.train import TrainConfig, Trainer

EB = ["--net", "resnet8", "--data", "digits", "--batch-size", "64", "--slim", "1e-4", "--early-bird", "0.5",
      "--eb-window", "3", "--eb-epsilon", "0.2"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def _last_json(output):
    return json.loads(output.strip().splitlines()[-1])


def test_early_bird_run_prunes_when_the_ticket_appears_and_resumes_exactly(run):
    r = run("train", *EB, "--epochs", "5", "--out", "eb.h5", "--json")
    assert r.exit_code == 0, r.output
    s = _last_json(r.output)
    assert s["early_bird_epoch"] is not None and 3 <= s["early_bird_epoch"] <= 5
    assert s["params_after"] < 0.8 * s["params_before"] and s["macs_after"] < s["macs_before"]
    assert len(s["mask_distances"]) == s["early_bird_epoch"]
    assert s["training_energy_j"] > 0 and s["test_accuracy"] > 0.8
    assert load_checkpoint("eb.h5").model().num_parameters() == s["params_after"]
    # the same run stopped by Ctrl-C after 2 epochs and resumed: same pruning, same energy, same final weights
    config = TrainConfig(net="resnet8", data="digits", epochs=5, batch_size=64,
                         methods=(SlimmingConfig(1e-4), EarlyBirdConfig(0.5, window=3, epsilon=0.2)))
    data = load_data("digits")
    model = build("resnet8", input_shape=data.input_shape, num_classes=10)

    def stop_after_two(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        Trainer(model, data, config, out="half.h5", on_epoch=stop_after_two).run()
    r = run("train", "--resume", "half.h5", "--json")
    assert r.exit_code == 0, r.output
    resumed = _last_json(r.output)
    assert resumed["early_bird_epoch"] == s["early_bird_epoch"]
    assert resumed["training_energy_j"] == pytest.approx(s["training_energy_j"], rel=1e-9)
    a, b = load_checkpoint("eb.h5").state, load_checkpoint("half.h5").state
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_early_bird_run_whose_masks_never_settle_says_so_with_the_closest_distance(run):
    args = [a for a in EB if a not in ("--eb-epsilon", "0.2")]
    r = run("train", *args, "--eb-epsilon", "0", "--epochs", "4", "--out", "never.h5", "--json")
    assert r.exit_code == 0, r.output
    s = _last_json(r.output)
    assert s["early_bird_epoch"] is None and "params_after" not in s
    tested = s["mask_distances"][2:]  # window 3: from the third epoch on
    assert s["early_bird_closest"]["distance"] == pytest.approx(min(tested)) and min(tested) > 0
    r = run("train", *args, "--eb-epsilon", "0", "--epochs", "4", "--out", "never.h5", "--force")
    assert "never settled" in r.output and f"{min(tested):.3f} at epoch {s['early_bird_closest']['epoch']}" in r.output
    assert "nothing was pruned" in r.output
    r = run("train", *args, "--eb-epsilon", "0", "--epochs", "2", "--out", "short.h5", "--json")  # window 3 never fills
    assert r.exit_code == 0 and "early_bird_closest" not in _last_json(r.output)
    assert "before the window of masks filled" in run("train", *args, "--epochs", "2", "--out", "short.h5",
                                                        "--force").output


def test_e2train_flags_run_together_and_cost_less_than_plain_training(run):
    common = ["--net", "resnet8", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--json"]
    plain = _last_json(run("train", *common, "--out", "plain.h5").output)
    r = run("train", *common, "--out", "e2.h5", "--smd", "0.5", "--slu", "0.5", "--psg-adaptive", "0.05")
    assert r.exit_code == 0, r.output
    e2 = _last_json(r.output)
    assert e2["skipped_steps"] > 0
    assert e2["training_energy_j"] < 0.5 * plain["training_energy_j"]
    assert {"int8xint8", "int16xint4"} <= set(e2["energy"]["by_precision"])
    # where the work went: each gated block's share of images in the last epoch, PSG's fallback share
    assert e2["slu_blocks_run"] and all(0 <= f <= 1 for f in e2["slu_blocks_run"].values())
    assert set(e2["slu_blocks_closed"]) == {b for b, f in e2["slu_blocks_run"].items() if f < 0.01}
    by_layer = e2["psg_fallback_by_layer"]
    assert 0 < e2["psg_fallback"] < 1 and min(by_layer.values()) <= e2["psg_fallback"] <= max(by_layer.values())
    r = run("eval", "e2.h5", "--json")  # the gated model evaluates like any other
    assert r.exit_code == 0 and 0 <= _last_json(r.output)["test_accuracy"] <= 1


@pytest.mark.parametrize("args,message", [
    (["--net", "resnet8", "--early-bird", "0.5"], "give --slim"),
    (["--net", "lenet5", "--slu", "0.5"], "no identity residual blocks"),
    (["--net", "resnet8", "--psg", "5e-5", "--psg-adaptive", "0.1"], "one tau"),
    (["--net", "resnet8", "--smd", "1.5"], "'--smd': 1.5 is not in the range 0<x<1"),
    (["--net", "resnet8", "--slim", "1e-4", "--early-bird", "1.2"], "--early-bird ratios must be distinct and in"),
    (["--net", "resnet8", "--slim", "1e-4", "--early-bird", "0.3,x"], "--early-bird takes prune ratios like"),
    (["--net", "resnet8", "--slim", "1e-4", "--early-bird", "0.3,0.7", "--eb-prune-ratio", "0.5"],
     "--eb-prune-ratio 0.5 is not one of the --early-bird ratios"),
    (["--net", "resnet8", "--slu", "0"], "'--slu': 0.0 is not in the range 0<x<=1"),
    (["--net", "resnet8", "--eb-window", "3"], "--eb-window is a setting of --early-bird: give that too"),
    (["--net", "mlp", "--slim", "1e-4"], "--slim penalizes batch-norm scales; mlp has no batch norm"),
    (["--net", "resnet8", "--slim", "1e-4", "--early-bird", "0.5", "--eb-precision", "8", "--psg", "5e-5"],
     "would both change how this layer multiplies (e.g. --psg with --eb-precision)"),
])
def test_bad_method_options_give_one_line_errors(run, args, message):
    r = run("train", "--data", "digits", "--epochs", "1", *args)
    assert r.exit_code != 0
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_prune_a_residual_net_then_fine_tune_without_the_penalty(run):
    assert run("train", "--net", "resnet8", "--data", "digits", "--epochs", "1", "--slim", "1e-4",
               "--out", "r.h5").exit_code == 0
    r = run("prune", "r.h5", "--ratio", "0.5", "-o", "slim.h5", "--json")
    assert r.exit_code == 0, r.output
    p = _last_json(r.output)
    assert p["params_after"] < p["params_before"] and p["macs_after"] < p["macs_before"]
    assert load_checkpoint("slim.h5").training["methods"] == {}  # the penalty is not part of the fine-tuning
    r = run("train", "--resume", "slim.h5", "--epochs", "1", "--json")
    assert r.exit_code == 0 and _last_json(r.output)["parameters"] == p["params_after"]


def test_width_option(run):
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "1", "--width", "0.5", "--json")
    assert r.exit_code == 0
    narrow = _last_json(r.output)["parameters"]
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "1", "--json", "--out", "wide.h5")
    assert narrow < 0.5 * _last_json(r.output)["parameters"]
    r = run("train", "--net", "lenet5", "--data", "digits", "--width", "2")
    assert r.exit_code != 0 and "no option width" in r.output


def test_low_precision_early_bird_search_then_float_retraining(run):
    r = run("train", *EB, "--epochs", "4", "--eb-precision", "8", "--json")
    assert r.exit_code == 0, r.output
    s = _last_json(r.output)
    assert s["early_bird_epoch"] is not None
    assert {"int8xint8", "float32xfloat32"} <= set(s["energy"]["by_precision"])  # 8-bit search, float re-training


def test_early_bird_draws_tickets_for_several_ratios_in_one_run_and_prunes_at_the_one_asked(run, capsys):
    # the authors' run: detectors for 0.3, 0.5 and 0.7 side by side, masks over every batch norm
    from lean.cli.train import print_summary

    args = ["--net", "resnet8", "--data", "digits", "--batch-size", "64", "--slim", "1e-4", "--early-bird",
            "0.3,0.5,0.7", "--eb-prune-ratio", "0.7", "--eb-window", "3", "--eb-epsilon", "0.2", "--epochs", "5"]
    r = run("train", *args, "--out", "eb3.h5", "--json")
    assert r.exit_code == 0, r.output
    s = _last_json(r.output)
    capsys.readouterr()
    print_summary(s)
    printed = capsys.readouterr().out
    assert "ratio 0.7: ticket at epoch" in printed and "(pruned at this ratio)" in printed
    tickets = s["early_bird_tickets"]
    assert set(tickets) == {"0.3", "0.5", "0.7"} and s["early_bird_prune_ratio"] == 0.7
    assert tickets["0.7"]["epoch"] == s["early_bird_epoch"] is not None
    lengths = {len(t["mask_distances"]) for t in tickets.values()}
    assert lengths == {s["early_bird_epoch"]}  # every detector ran until the run pruned
    assert tickets["0.7"]["mask_distances"] == s["mask_distances"]
    assert s["params_after"] < 0.6 * s["params_before"]  # 70% of the pooled channels


def test_early_bird_masks_pool_every_batch_norm_with_the_authors_threshold():
    from lean.compress.slimming import _batchnorms, channel_masks, prunable_batchnorms

    model = build("resnet8", input_shape=(8, 8, 1), num_classes=10, seed=0)
    rng = np.random.default_rng(0)
    for _, bn in _batchnorms(model):
        bn.params["weight"][...] = rng.standard_normal(bn.params["weight"].shape)
    masks = channel_masks(model, 0.3, every_batchnorm=True)
    everyone = [name for name, _ in _batchnorms(model)]
    assert sorted(masks) == sorted(everyone) and len(everyone) > len(prunable_batchnorms(model))
    scales = np.sort(np.concatenate([np.abs(bn.params["weight"]) for _, bn in _batchnorms(model)]))
    threshold = scales[int(len(scales) * 0.3)]
    for name, bn in _batchnorms(model):
        np.testing.assert_array_equal(masks[name], np.abs(bn.params["weight"]) > threshold)


def test_early_bird_settings_compare_as_numbers_on_resume_and_old_runs_keep_their_masks():
    from lean.train.config import method_from_dict
    from lean.train.run import _check_methods

    config = TrainConfig(net="resnet8", data="digits", methods=(SlimmingConfig(1e-4), EarlyBirdConfig("0.3,0.5")))
    _check_methods(config, {"early_bird": {"ratio": "0.30, 0.50"}}, "run.h5")  # the same ratios: accepted
    with pytest.raises(LeanError, match="differs"):
        _check_methods(config, {"early_bird": {"ratio": "0.3,0.7"}}, "run.h5")
    old = method_from_dict("early_bird", {"ratio": 0.5, "window": 5, "epsilon": 0.1, "precision": None},
                           "lean.compress.config", stored=True)
    assert old.masks == "prunable" and old.ratio == "0.5" and not old.build().every_batchnorm
    assert EarlyBirdConfig("0.5").build().every_batchnorm
