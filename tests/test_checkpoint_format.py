"""The checkpoint format carries a version: files of format 1 (kept in tests/data/format1, written by lean before
issue 11) still load, evaluate and resume; a newer format is refused by name; every array has a checksum."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import CheckpointError
from lean.nn.checkpoint import FORMAT_VERSION
from lean.nn.checkpoint import load as load_checkpoint

FORMAT1 = Path(__file__).parent / "data" / "format1"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _json(r):
    assert r.exit_code == 0, r.output
    return json.loads(r.output.strip().splitlines()[-1])


# what `lean eval NAME --json` printed for each file with the lean that wrote them
EXPECTED = json.loads((FORMAT1 / "expected.json").read_text())["test_accuracy"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_format1_files_load_and_evaluate_as_they_did(name):
    ckpt = load_checkpoint(FORMAT1 / name)
    assert ckpt.format_version == 1
    result = _json(_run("eval", FORMAT1 / name, "--json"))
    assert result["test_accuracy"] == pytest.approx(EXPECTED[name])
    info = _json(_run("info", FORMAT1 / name, "--json"))
    assert info["format_version"] == 1 and info["net"] in ("mlp", "resnet8")


def test_format1_settings_become_method_configs():
    from lean.compress.config import EarlyBirdConfig, SlimmingConfig
    from lean.train import PSGConfig, SLUConfig, SMDConfig, TrainConfig

    e2 = load_checkpoint(FORMAT1 / "e2.h5")
    config = TrainConfig.from_dict(e2.training, e2.format_version)
    # a run stored before --psg-update resumes with the update it ran with (the scaled sign)
    assert config.methods == (SMDConfig(0.5), SLUConfig(0.5, 1e-3), PSGConfig(tau=None, adaptive=0.05, update="scaled"))
    eb = load_checkpoint(FORMAT1 / "eb.h5")
    config = TrainConfig.from_dict(eb.training, eb.format_version)
    assert config.methods == (SlimmingConfig(1e-4), EarlyBirdConfig(0.5, epsilon=0.3, window=3, precision=None,
                                                                    masks="prunable", protect=0.0))  # as it ran
    assert config.bn_init == 0.5 and config.width == 0.25
    assert config.weight_decay == 5e-4  # what it ran with, not the 1e-4 a new --slim run takes


def test_an_interrupted_format1_run_resumes_after_its_pruning(tmp_path):
    path = tmp_path / "eb.h5"
    shutil.copy(FORMAT1 / "eb.h5", path)
    before = load_checkpoint(path)
    assert before.status == "interrupted" and before.epoch == 4
    r = _run("train", "--resume", path, "--eb-epsilon", "0.1")
    assert r.exit_code == 1 and "--eb-epsilon 0.1 differs from" in r.output and "'s 0.3" in r.output
    # the run's own settings may be given again
    summary = _json(_run("train", "--resume", path, "--slim", "1e-4", "--early-bird", "0.5", "--json"))
    assert summary["epochs"] == 6 and summary["early_bird_epoch"] == 4
    after = load_checkpoint(path)
    assert after.format_version == FORMAT_VERSION and after.status == "complete"
    assert after.model().num_parameters() == before.model().num_parameters()  # stays pruned
    progress = after.training["progress"]["methods"]
    assert progress["slim"] == {"active": False}  # the pruned net re-trains without the penalty
    energy_before = before.training["progress"]["energy"]
    energy_after = after.training["progress"]["methods"]["energy"]
    assert energy_after["steps"] > energy_before["steps"] > 0  # the meter counts on from where it was


def test_a_newer_format_is_refused_by_name(tmp_path):
    path = tmp_path / "future.h5"
    shutil.copy(FORMAT1 / "mlp.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(CheckpointError, match=f"checkpoint format {FORMAT_VERSION + 1}.*upgrade lean"):
        load_checkpoint(path)


def test_every_array_has_a_checksum_that_is_checked(tmp_path):
    path = tmp_path / "m.h5"
    r = _run("train", "--net", "mlp", "--data", "digits", "--epochs", "1", "--out", path)
    assert r.exit_code == 0, r.output
    with h5py.File(path, "r") as f:
        arrays = []
        f.visititems(lambda name, item: arrays.append(item) if isinstance(item, h5py.Dataset) else None)
        assert arrays and all("crc32" in a.attrs for a in arrays)
    pristine = path.read_bytes()
    with h5py.File(path, "r+") as f:
        f["optimizer/momentum/fc1.weight"][0, 0] = np.float32(1.5)
    with pytest.raises(CheckpointError, match="optimizer/momentum/fc1.weight does not match its checksum"):
        load_checkpoint(path)
    path.write_bytes(pristine)
    with h5py.File(path, "r+") as f:
        f.attrs["architecture"] = f.attrs["architecture"].replace('"Sequential"', '"Sequential" ')
    with pytest.raises(CheckpointError, match="architecture does not match its checksum"):
        load_checkpoint(path)
