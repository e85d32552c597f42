"""Outputs are never lost and nothing fails silently: each case of issue 11, tried as a user would, through the
`lean` command (one `error:` line, non-zero exit, files kept as they were)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main

DIGITS = ["--data", "digits", "--batch-size", "64"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _last_json(output):
    return json.loads(output.strip().splitlines()[-1])


def _one_error_line(r, fragment):
    assert r.exit_code != 0, r.output
    assert fragment in r.output, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """A LeNet-5 trained for one epoch on the digits."""
    path = tmp_path_factory.mktemp("lenet") / "lenet.h5"
    r = CliRunner().invoke(main, ["train", "--net", "lenet5", *DIGITS, "--epochs", "1", "--out", str(path)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return path


# ------------------------------------------------------------------------------------------------ outputs

def test_demo_does_not_overwrite_either_output_without_force(run, tmp_path):
    (tmp_path / "mine.h5").write_text("precious")
    _one_error_line(run("demo", "--epochs", "1", "--out", "mine.h5"), "mine.h5 exists")
    assert (tmp_path / "mine.h5").read_text() == "precious"
    (tmp_path / "other-int8.h5").write_text("precious too")
    _one_error_line(run("demo", "--epochs", "1", "--out", "other.h5"), "other-int8.h5 exists")
    assert not (tmp_path / "other.h5").exists()  # refused before training
    assert (tmp_path / "other-int8.h5").read_text() == "precious too"
    r = run("demo", "--epochs", "1", "--out", "mine.h5", "--force", "--json")
    assert r.exit_code == 0, r.output
    assert _last_json(r.output)["quantized"]["checkpoint"] == "mine-int8.h5"


@pytest.mark.parametrize("where,reason", [("under-a-file/x.h5", "is not a folder"),
                                          ("/sys/x.h5", "cannot write"),
                                          ("missing-folder/x.h5", "does not exist")])
def test_an_unwritable_output_is_refused_before_any_work(run, tmp_path, lenet, where, reason):
    (tmp_path / "under-a-file").write_text("a regular file")
    started = time.perf_counter()
    # 50 epochs would take minutes: refusing in well under that shows no work was done first
    _one_error_line(run("train", "--net", "lenet5", *DIGITS, "--epochs", "50", "--out", where), reason)
    _one_error_line(run("compress", "quantize", lenet, "-o", where, "--qat-epochs", "50"), reason)
    _one_error_line(run("prune", lenet, "--ratio", "0.5", "-o", where), reason)
    _one_error_line(run("demo", "--epochs", "50", "--out", where), reason)
    assert time.perf_counter() - started < 20


def test_two_runs_cannot_write_one_output(run, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lean.nn.checkpoint import claim_output; "
                               "c = claim_output('run.h5'); print('held', flush=True); time.sleep(60)"],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run("train", "--net", "lenet5", *DIGITS, "--epochs", "1", "--out", "run.h5", "--force")
        _one_error_line(r, f"run.h5 is being written by another lean run (pid {holder.pid})")
    finally:
        holder.kill()
        holder.wait()
    assert run("train", "--net", "lenet5", *DIGITS, "--epochs", "1", "--out", "run.h5", "--force").exit_code == 0
    assert not (tmp_path / ".run.h5.lock").exists()  # released when the run ends


def test_a_killed_writer_leaves_no_temporary_behind(run, tmp_path):
    dead = tmp_path / ".run.h5.tmp-999999999"  # no such process
    dead.write_bytes(b"half a checkpoint")
    live = tmp_path / f".run.h5.tmp-{os.getppid()}"  # a process that exists: not ours to remove
    live.write_bytes(b"being written")
    assert run("train", "--net", "lenet5", *DIGITS, "--epochs", "1", "--out", "run.h5").exit_code == 0
    assert not dead.exists() and live.exists()


# ------------------------------------------------------------------------------------------------ resume

def test_resume_refuses_a_compressed_checkpoint_and_leaves_it_alone(run, tmp_path, lenet):
    assert run("compress", "quantize", lenet, "-o", "q.h5").exit_code == 0
    before = (tmp_path / "q.h5").read_bytes()
    r = run("train", "--resume", "q.h5", "--epochs", "3")
    _one_error_line(r, "q.h5 is a compressed checkpoint (quantize), not a training run")
    assert f"lean compress quantize {lenet} -o OUT.h5 --qat-epochs N" in r.output
    assert (tmp_path / "q.h5").read_bytes() == before


def test_resume_follows_one_rule_for_changed_options(run, tmp_path):
    assert run("train", "--net", "lenet5", *DIGITS, "--epochs", "1", "--lr", "0.05", "--out", "r.h5").exit_code == 0
    before = (tmp_path / "r.h5").read_bytes()
    _one_error_line(run("train", "--resume", "r.h5", "--epochs", "2", "--lr", "0.01"),
                    "--lr 0.01 differs from r.h5's 0.05")
    _one_error_line(run("train", "--resume", "r.h5", "--epochs", "2", "--net", "mlp"),
                    "--net mlp differs from r.h5's lenet5")
    _one_error_line(run("train", "--resume", "r.h5", "--epochs", "2", "--data", "mnist"),
                    "--data mnist differs from r.h5's digits")
    _one_error_line(run("train", "--resume", "r.h5", "--epochs", "2", "--smd", "0.5"),
                    "--smd: r.h5 was trained without it")
    _one_error_line(run("train", "--resume", "no-folder/r.h5", "--epochs", "2"),
                    "checkpoint no-folder/r.h5 does not exist")
    assert (tmp_path / "r.h5").read_bytes() == before
    # the same values, and the settings a resume may change, are taken
    r = run("train", "--resume", "r.h5", "--epochs", "2", "--lr", "0.05", "--net", "lenet5", "--eval-every", "2",
            "--json")
    assert r.exit_code == 0, r.output
    assert _last_json(r.output)["epochs"] == 2


def _user_npz(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.random((n, 8, 8)) * 60 + y[:, None, None] * 60).astype(np.uint8)
    np.savez(path, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])


def test_a_run_on_a_data_file_resumes_from_anywhere_and_its_file_can_move(run, tmp_path):
    (tmp_path / "project").mkdir()
    _user_npz(tmp_path / "project" / "mine.npz")
    os.chdir(tmp_path / "project")
    assert run("train", "--net", "mlp", "--data", "mine.npz", "--epochs", "1", "--out", "m.h5").exit_code == 0
    os.chdir(tmp_path)
    assert run("eval", "project/m.h5").exit_code == 0  # from another folder
    r = run("train", "--resume", "project/m.h5", "--epochs", "2", "--json")
    assert r.exit_code == 0, r.output
    (tmp_path / "project" / "mine.npz").rename(tmp_path / "moved.npz")
    _one_error_line(run("train", "--resume", "project/m.h5", "--epochs", "3"), "pass --data NEW_PATH")
    r = run("train", "--resume", "project/m.h5", "--epochs", "3", "--data", "moved.npz", "--json")
    assert r.exit_code == 0, r.output
    assert run("eval", "project/m.h5").exit_code == 0  # the checkpoint now points at the new place
    _user_npz(tmp_path / "other.npz", seed=1)
    _one_error_line(run("train", "--resume", "project/m.h5", "--epochs", "4", "--data", "other.npz"),
                    "is not the data project/m.h5 was trained on")


def test_a_resumed_run_is_the_run_it_was_and_ctrl_c_in_the_test_pass_keeps_the_epoch(tmp_path, monkeypatch):
    from lean.data import load
    from lean.nets import build
    from lean.nn.checkpoint import load as load_checkpoint
    from lean.train import TrainConfig, Trainer, loop, resume

    config = TrainConfig(net="lenet5", data="digits", epochs=2, batch_size=64)
    data = load("digits")
    straight = Trainer(build("lenet5", input_shape=data.input_shape, num_classes=10), data, config)
    straight.run()
    real_accuracy = loop.accuracy
    calls = {"n": 0}

    def ctrl_c_in_the_second_test_pass(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_accuracy(*args, **kw)

    monkeypatch.setattr(loop, "accuracy", ctrl_c_in_the_second_test_pass)
    with pytest.raises(Exception, match="interrupted in epoch 2"):
        Trainer(build("lenet5", input_shape=data.input_shape, num_classes=10), data, config,
                out=tmp_path / "c.h5").run()
    monkeypatch.setattr(loop, "accuracy", real_accuracy)
    resume(tmp_path / "c.h5")
    history = load_checkpoint(tmp_path / "c.h5").history
    assert [h["train_loss"] for h in history] == pytest.approx([h["train_loss"] for h in straight.history])
    assert [h["test_accuracy"] for h in history] == [h["test_accuracy"] for h in straight.history]


# -------------------------------------------------------------------------------------------- divergence

def test_a_run_whose_loss_explodes_stops_and_keeps_only_finite_checkpoints(run, tmp_path):
    # at this rate the loss stays finite but reaches 10^4 (lean before issue 11 ran on to chance accuracy)
    r = run("train", "--net", "lenet5", "--data", "digits", "--epochs", "3", "--lr", "3", "--schedule", "constant",
            "--out", "x.h5")
    _one_error_line(r, "try a lower --lr")
    assert "loss exploded to" in r.output and "uniform guess" in r.output
    if (tmp_path / "x.h5").exists():
        from lean.nn.checkpoint import load

        state = load(tmp_path / "x.h5").state
        assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_weights_that_turn_non_finite_are_never_saved(tmp_path):
    from lean.data import load
    from lean.errors import TrainingDiverged
    from lean.nets import build
    from lean.nn.checkpoint import load as load_checkpoint
    from lean.train import TrainConfig, Trainer, TrainingMethod

    class PoisonOnLastStep(TrainingMethod):
        """Makes one weight infinite on the second epoch's last step, after its (finite) loss was computed."""

        def before_update(self, trainer):
            if trainer.epoch == 1 and trainer.step_in_epoch == trainer.steps_per_epoch() - 1:
                next(iter(trainer.model.gradients().values())).flat[0] = np.inf

    data = load("digits")
    out = tmp_path / "p.h5"
    trainer = Trainer(build("mlp", input_shape=data.input_shape, num_classes=10), data,
                      TrainConfig(net="mlp", data="digits", epochs=3, batch_size=64), out=out,
                      methods=[PoisonOnLastStep()])
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        trainer.run()
    ckpt = load_checkpoint(out)
    assert ckpt.epoch == 1  # the last finite state
    assert all(np.isfinite(v).all() for v in ckpt.state.values() if v.dtype.kind == "f")


def test_a_checkpoint_whose_weights_were_overwritten_is_refused(run, tmp_path, lenet):
    path = tmp_path / "changed.h5"
    path.write_bytes(Path(lenet).read_bytes())
    with h5py.File(path, "r+") as f:
        f["params/conv1.weight"][0, 0, 0, 0] += 1.0
    _one_error_line(run("eval", path), "params/conv1.weight does not match its checksum")
