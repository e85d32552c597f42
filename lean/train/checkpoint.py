"""One HDF5 checkpoint format from training through compression to costing.

Layout of ``run.h5``::

    attrs: format = "lean-checkpoint", format_version, lean_version, architecture (JSON),
           training (JSON: the run's settings), history (JSON list, one entry per epoch),
           epoch (completed epochs), step_in_epoch (steps done in the next epoch, for an interrupted run),
           status ("running", "complete", "interrupted"), normalization mean/std (per channel)
    params/<flat name>    parameters, e.g. params/stage1.0.body.conv1.weight
    buffers/<flat name>   running statistics
    forms/<layer>/<array> compressed weights stored as what they are (codes, masks, codebooks)
    optimizer/<slot>/<flat name>, optimizer attrs steps

Files are written to a temporary name in the same folder and renamed, so a crash or Ctrl-C never leaves a
half-written checkpoint where a good one was.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "lean-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file is missing, unreadable, or not a lean checkpoint; the message names the file."""


@dataclass
class Checkpoint:
    architecture: dict
    state: dict  # "params/<name>", "buffers/<name>", "forms/<layer>/<array>" -> array
    training: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    epoch: int = 0
    step_in_epoch: int = 0
    status: str = "complete"
    optimizer_state: dict = field(default_factory=dict)
    optimizer_meta: dict = field(default_factory=dict)
    mean: np.ndarray = None
    std: np.ndarray = None
    lean_version: str = ""

    def model(self):
        from ..nn import Model

        model = Model.from_config(self.architecture)
        model.load_state(self.state)
        return model


def save(path, ckpt):
    import h5py

    from .. import __version__

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise CheckpointError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["lean_version"] = __version__
            f.attrs["architecture"] = json.dumps(ckpt.architecture)
            f.attrs["training"] = json.dumps(ckpt.training)
            f.attrs["history"] = json.dumps(ckpt.history)
            f.attrs["epoch"] = int(ckpt.epoch)
            f.attrs["step_in_epoch"] = int(ckpt.step_in_epoch)
            f.attrs["status"] = ckpt.status
            if ckpt.mean is not None:
                f.attrs["normalization_mean"] = np.asarray(ckpt.mean, np.float32)
                f.attrs["normalization_std"] = np.asarray(ckpt.std, np.float32)
            for key, arr in ckpt.state.items():
                f.create_dataset(key, data=arr)
            opt = f.create_group("optimizer")
            opt.attrs["meta"] = json.dumps(ckpt.optimizer_meta)
            for key, arr in ckpt.optimizer_state.items():
                opt.create_dataset(key, data=arr)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise CheckpointError(f"{path} is not a readable HDF5 file (truncated or not a checkpoint)") from None
    try:
        with f:
            if f.attrs.get("format") != FORMAT:
                raise CheckpointError(f"{path} is an HDF5 file but not a lean checkpoint")
            state = {}

            def collect(group, prefix):
                for key, item in group.items():
                    if isinstance(item, h5py.Dataset):
                        state[f"{prefix}/{key}"] = item[()]
                    else:
                        collect(item, f"{prefix}/{key}")

            for top in ("params", "buffers", "forms"):
                if top in f:
                    collect(f[top], top)
            optimizer_state = {}
            if "optimizer" in f:
                collect(f["optimizer"], "optimizer")
                optimizer_state = {k[len("optimizer/"):]: state.pop(k) for k in list(state)
                                   if k.startswith("optimizer/")}
            return Checkpoint(
                architecture=json.loads(f.attrs["architecture"]),
                state=state,
                training=json.loads(f.attrs.get("training", "{}")),
                history=json.loads(f.attrs.get("history", "[]")),
                epoch=int(f.attrs.get("epoch", 0)),
                step_in_epoch=int(f.attrs.get("step_in_epoch", 0)),
                status=str(f.attrs.get("status", "complete")),
                optimizer_state=optimizer_state,
                optimizer_meta=json.loads(f["optimizer"].attrs.get("meta", "{}")) if "optimizer" in f else {},
                mean=f.attrs.get("normalization_mean"),
                std=f.attrs.get("normalization_std"),
                lean_version=str(f.attrs.get("lean_version", "")),
            )
    except (KeyError, ValueError, OSError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path} is damaged or incomplete: {exc}") from None


def load_model(path):
    """The model stored in a checkpoint, ready for inference."""
    ckpt = load(path)
    try:
        return ckpt.model()
    except ValueError as exc:
        raise CheckpointError(f"{path}: stored model does not rebuild: {exc}") from None
