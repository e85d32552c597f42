"""Training on the shipped digits, checkpoints, resume, divergence and interruption."""

import h5py
import numpy as np
import pytest

from lean.data import load
from lean.errors import CheckpointError, TrainingDiverged, TrainingInterrupted
from lean.nets import build
from lean.nn import load_model
from lean.nn.checkpoint import load as load_checkpoint
from lean.train import TrainConfig, Trainer, accuracy


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _trainer(digits, out=None, epochs=3, net="lenet5", **kw):
    model = build(net, input_shape=digits.input_shape, num_classes=10, seed=0)
    cfg = TrainConfig(net=net, data="digits", epochs=epochs, batch_size=32, lr=0.05, **kw)
    return Trainer(model, digits, cfg, out=out)


def test_lenet_learns_the_digits_to_95_percent(digits, tmp_path):
    trainer = _trainer(digits, tmp_path / "run.h5", epochs=12)
    history = trainer.run()
    assert history[-1]["test_accuracy"] >= 0.95
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # the checkpoint holds the same model: same accuracy when reloaded
    model = load_model(tmp_path / "run.h5")
    ckpt = load_checkpoint(tmp_path / "run.h5")
    acc = accuracy(model, digits.x_test, digits.y_test, lambda x: digits.normalize(x, ckpt.mean, ckpt.std))
    assert acc == pytest.approx(history[-1]["test_accuracy"])
    assert ckpt.status == "complete" and ckpt.epoch == 12 and len(ckpt.history) == 12


def test_checkpoint_round_trip_is_exact(digits, tmp_path):
    trainer = _trainer(digits, tmp_path / "run.h5", epochs=1, net="resnet8")
    trainer.run()
    ckpt = load_checkpoint(tmp_path / "run.h5")
    for key, value in trainer.model.state().items():
        np.testing.assert_array_equal(ckpt.state[key], value)
    opt_state, _ = trainer.optimizer.state()
    for key, value in opt_state.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[key], value)
    assert ckpt.architecture == trainer.model.config()


def _params(model):
    return {k: v.copy() for k, v in model.parameters().items()}


def test_resume_continues_the_same_run(digits, tmp_path):
    # a constant rate, so that extending 2 epochs to 3 keeps the schedule of the straight run
    straight = _trainer(digits, None, epochs=3, augment=True, schedule="step")
    straight.run()
    first = _trainer(digits, tmp_path / "a.h5", epochs=2, augment=True, schedule="step")
    first.run()
    ckpt = load_checkpoint(tmp_path / "a.h5")
    cfg = TrainConfig.from_dict(ckpt.training)
    cfg.epochs = 3
    resumed = Trainer(ckpt.model(), digits, cfg, out=tmp_path / "a.h5")
    resumed.restore(ckpt)
    resumed.run()
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(resumed.model.parameters()[k], v, err_msg=k)
    assert [h["test_accuracy"] for h in resumed.history] == [h["test_accuracy"] for h in straight.history]


def test_interrupt_writes_a_resumable_checkpoint_mid_epoch(digits, tmp_path):
    straight = _trainer(digits, None, epochs=2)
    straight.run()
    out = tmp_path / "int.h5"
    trainer = _trainer(digits, out, epochs=2)
    calls = {"n": 0}

    def ctrl_c(info):
        calls["n"] += 1
        if calls["n"] == 50:  # after step 8 of the second epoch (42 steps per epoch)
            raise KeyboardInterrupt

    trainer.on_step = ctrl_c
    with pytest.raises(TrainingInterrupted, match="resume"):
        trainer.run()
    ckpt = load_checkpoint(out)
    assert ckpt.status == "interrupted" and ckpt.epoch == 1 and ckpt.step_in_epoch == 8
    resumed = Trainer(ckpt.model(), digits, TrainConfig.from_dict(ckpt.training), out=out)
    resumed.restore(ckpt)
    resumed.run()
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(resumed.model.parameters()[k], v, err_msg=k)


def test_divergence_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    out = tmp_path / "good.h5"
    _trainer(digits, out, epochs=1).run()
    before = out.read_bytes()
    ckpt = load_checkpoint(out)
    cfg = TrainConfig(net="lenet5", data="digits", epochs=3, batch_size=32, lr=1e4, schedule="constant")
    resumed = Trainer(ckpt.model(), digits, cfg, out=out)
    resumed.restore(ckpt)  # the file is this run's: the message says it is kept
    with pytest.raises(TrainingDiverged, match=f"the last good checkpoint {out} is kept"):
        resumed.run()
    assert out.read_bytes() == before
    other = Trainer(load_model(out), digits, cfg, out=out)  # a new run over another run's file: no such claim
    with pytest.raises(TrainingDiverged) as err:
        other.run()
    assert "is kept" not in str(err.value) and out.read_bytes() == before


def test_bad_checkpoints_give_clear_errors(tmp_path, digits):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable HDF5"):
        load_checkpoint(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CheckpointError, match="not a lean checkpoint"):
        load_checkpoint(tmp_path / "other.h5")
    out = tmp_path / "run.h5"
    _trainer(digits, out, epochs=1).run()
    data = out.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "cut.h5")


def test_trainer_rejects_mismatched_model_and_bad_settings(digits):
    model = build("lenet5", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(ValueError, match="built for inputs"):
        Trainer(model, digits, TrainConfig())
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match="--lr"):
        TrainConfig(lr=0)


def test_a_checkpoint_loads_in_a_fresh_process_without_the_net_builders(digits, tmp_path):
    import subprocess
    import sys

    _trainer(digits, tmp_path / "r.h5", epochs=1, net="resnet8").run()
    code = ("import sys; from lean.nn import load_model; m = load_model(sys.argv[1]); "
            "assert 'lean.nets' not in sys.modules; print(m.num_parameters())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.h5")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
