"""One HDF5 checkpoint format from training through compression to costing: reading, writing, describing.

Layout of ``run.h5`` (format 2)::

    attrs: format = "lean-checkpoint", format_version, lean_version, architecture (JSON) and its crc32,
           training (JSON: the run's settings and progress, owned by ``lean.train``), history (JSON list, one
           entry per epoch), epoch (completed epochs), step_in_epoch (steps done in the next epoch, for an
           interrupted run), status ("running", "complete", "interrupted"), normalization mean/std (per channel)
    params/<flat name>    parameters, e.g. params/stage1.0.body.conv1.weight
    buffers/<flat name>   running statistics
    forms/<layer>/<array> compressed weights stored as what they are (codes, masks, codebooks)
    optimizer/<slot>/<flat name>, optimizer attrs meta
    every array carries attr crc32: the CRC-32 of its bytes, checked on load

Format 1 (lean before 2026-11-27) had no checksums and kept the training settings flat; it still loads
(``Checkpoint.format_version`` tells ``lean.train`` to read its settings the old way). A file of a newer format
is refused with a message naming both versions.

Writing is safe: a file is written to a hidden temporary name in the same folder and renamed, so a crash or
Ctrl-C never leaves a half-written checkpoint where a good one was; temporaries left by a killed writer are
removed on the next write. ``claim_output`` checks an output path before any work starts (folder present and
writable, no file to overwrite without ``overwrite``) and holds a lock on it, so two runs cannot write one file.
"""

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, OutputError

FORMAT = "lean-checkpoint"
FORMAT_VERSION = 2


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds, in memory."""

    architecture: dict
    state: dict  # "params/<name>", "buffers/<name>", "forms/<layer>/<array>" -> array
    training: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    epoch: int = 0
    step_in_epoch: int = 0
    status: str = "complete"
    optimizer_state: dict = field(default_factory=dict)
    optimizer_meta: dict = field(default_factory=dict)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    lean_version: str = ""
    format_version: int = FORMAT_VERSION
    path: str | None = None  # where it was read from

    def model(self):
        """The stored model, rebuilt from its architecture and loaded with its parameters."""
        from .model import Model

        where = f"{self.path}: " if self.path else ""
        try:
            model = Model.from_config(self.architecture)
            model.load_state(self.state)
        except ValueError as exc:  # a malformed architecture, or arrays that do not fit it
            raise CheckpointError(f"{where}the stored model does not rebuild: {exc}") from exc
        return model

    @property
    def compressed(self):
        """The compression method that wrote this checkpoint ("smartexchange", ...) or None."""
        if any(k.startswith("forms/") for k in self.state):
            return self.training.get("compression", {}).get("method", "compressed")
        return None


def _crc32(arr):
    return zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)) if np.size(arr) else 0


# ------------------------------------------------------------------------------------------------ writing

def _remove_stale_temporaries(path):
    """Delete ``.NAME.tmp-PID`` files of ``path`` whose writer process no longer exists."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            tmp.unlink()
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def save(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` (format 2) through a temporary file and an atomic rename.

    Parameters
    ----------
    path : str or Path
        The checkpoint file; its folder must exist. Temporaries of ``path`` left by a writer that no longer runs
        are removed first.
    ckpt : Checkpoint
        What to write; every array gets its CRC-32 as attribute ``crc32``.

    Returns
    -------
    Path
        ``path``.
    """
    import h5py

    from .. import __version__

    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    architecture = json.dumps(ckpt.architecture)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["lean_version"] = __version__
            f.attrs["architecture"] = architecture
            f.attrs["architecture_crc32"] = zlib.crc32(architecture.encode())
            f.attrs["training"] = json.dumps(ckpt.training)
            f.attrs["history"] = json.dumps(ckpt.history)
            f.attrs["epoch"] = int(ckpt.epoch)
            f.attrs["step_in_epoch"] = int(ckpt.step_in_epoch)
            f.attrs["status"] = ckpt.status
            if ckpt.mean is not None:
                f.attrs["normalization_mean"] = np.asarray(ckpt.mean, np.float32)
                f.attrs["normalization_std"] = np.asarray(ckpt.std, np.float32)
            for key, arr in ckpt.state.items():
                f.create_dataset(key, data=arr).attrs["crc32"] = _crc32(np.asarray(arr))
            opt = f.create_group("optimizer")
            opt.attrs["meta"] = json.dumps(ckpt.optimizer_meta)
            for key, arr in ckpt.optimizer_state.items():
                opt.create_dataset(key, data=arr).attrs["crc32"] = _crc32(np.asarray(arr))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ------------------------------------------------------------------------------------------------ reading

def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint (format 1 or 2), checking every array against its stored checksum.

    Parameters
    ----------
    path : str or Path
        A file written by ``save`` (or by lean before checkpoint format 2).

    Returns
    -------
    Checkpoint
        With ``format_version`` (1 or 2) and ``path`` set; ``state`` holds the arrays as stored (compressed
        forms as their codes).

    Raises
    ------
    CheckpointError
        Missing, not HDF5, not a lean checkpoint, a newer format, damaged, or an array or the architecture that
        does not match its checksum.
    """
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
            return _read(f, path)
    except CheckpointError:
        raise
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise CheckpointError(f"{path} is damaged or incomplete: {exc}") from exc


def _read(f, path):
    import h5py

    if f.attrs.get("format") != FORMAT:
        raise CheckpointError(f"{path} is an HDF5 file but not a lean checkpoint")
    version = int(f.attrs.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer lean ({f.attrs.get('lean_version', '?')}, checkpoint "
                              f"format {version}); this lean reads formats 1 to {FORMAT_VERSION}: upgrade lean")
    if version < 1:
        raise CheckpointError(f"{path} has an unknown checkpoint format {version}")
    architecture = f.attrs["architecture"]
    if version >= 2 and zlib.crc32(architecture.encode()) != int(f.attrs["architecture_crc32"]):
        raise CheckpointError(f"{path} is damaged: its architecture does not match its checksum")
    state = {}

    def collect(group, prefix):
        for key, item in group.items():
            name = f"{prefix}/{key}"
            if isinstance(item, h5py.Dataset):
                value = item[()]
                if version >= 2 and _crc32(np.asarray(value)) != int(item.attrs["crc32"]):
                    raise CheckpointError(f"{path} is damaged: {name} does not match its checksum (the file was "
                                          "changed or corrupted after lean wrote it)")
                state[name] = value
            else:
                collect(item, name)

    for top in ("params", "buffers", "forms"):
        if top in f:
            collect(f[top], top)
    optimizer_state = {}
    if "optimizer" in f:
        collect(f["optimizer"], "optimizer")
        optimizer_state = {k[len("optimizer/"):]: state.pop(k) for k in list(state) if k.startswith("optimizer/")}
    return Checkpoint(
        architecture=json.loads(architecture),
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
        format_version=version,
        path=str(path),
    )


def load_model(path: str | Path):
    """The model stored in a checkpoint, ready for inference (``Model.predict`` on (n, h, w, c) images).

    Parameters
    ----------
    path : str or Path
        A checkpoint file.

    Returns
    -------
    lean.nn.Model
    """
    return load(path).model()


def describe(path: str | Path) -> dict:
    """What ``lean info`` shows: architecture, parameter and storage counts, settings, history, per-layer table.

    Parameters
    ----------
    path : str or Path
        A checkpoint file.

    Returns
    -------
    dict
        JSON-able: ``checkpoint, net, input_shape, num_classes, parameters, storage_bits, dense_bits, status,
        epoch, training, history, layers`` (each ``name, type, parameters, shapes`` and, for a compressed weight,
        ``form, storage_bits, dense_parameters``), ``lean_version``, ``format_version``, ``file_bytes``.
    """
    ckpt = load(path)
    model = ckpt.model()
    layers = []
    for name, module in model.net.named_modules():
        if not module.params:
            continue
        entry = {"name": name, "type": type(module).__name__,
                 "parameters": int(sum(p.size for p in module.params.values())),
                 "shapes": {k: list(v.shape) for k, v in module.params.items()}}
        form = getattr(module, "form", None)
        if form is not None:
            entry.update(form=type(form).__name__, storage_bits=form.storage_bits(),
                         dense_parameters=int(np.prod(form.shape)))
        layers.append(entry)
    return {"checkpoint": str(path), "net": model.name, "input_shape": list(model.input_shape),
            "storage_bits": model.storage_bits(), "dense_bits": model.dense_bits(),
            "num_classes": model.num_classes, "parameters": model.num_parameters(),
            "status": ckpt.status, "epoch": ckpt.epoch, "training": ckpt.training, "history": ckpt.history,
            "layers": layers, "lean_version": ckpt.lean_version, "format_version": ckpt.format_version,
            "file_bytes": Path(path).stat().st_size}


# ------------------------------------------------------------------------------------------ output files

class OutputClaim:
    """A checked output path with a lock held on it (``claim_output``); release it with ``release()`` or a
    ``with`` block. The lock is ``.NAME.lock`` beside the file, locked with ``flock``: the kernel drops it when
    the process ends, however it ends, so a killed run never leaves the file locked."""

    def __init__(self, path, handle):
        self.path, self._handle = path, handle
        self.key = None

    @property
    def lock_path(self):
        return _lock_path(self.path)

    def release(self):
        if self._handle is None:
            return
        _HELD.pop(self.key, None)
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self._handle)
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _lock_path(path):
    return path.with_name(f".{path.name}.lock")


_HELD = {}  # resolved path -> (thread id, depth) of the claims this process holds


class _NestedClaim:
    """A claim on a path this thread already holds (``lean demo`` claims its outputs, then trains into them)."""

    def __init__(self, key):
        self.key = key

    def release(self):
        if self.key is not None:
            thread, depth = _HELD[self.key]
            _HELD[self.key] = (thread, depth - 1)
            self.key = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def claim_output(path: str | Path, *, overwrite: bool = False,
                 exists_hint: str = "pass --force to overwrite it") -> "OutputClaim | _NestedClaim":
    """Check that ``path`` can be written and lock it for this process, before any work that would write it.

    Refuses an existing file unless ``overwrite``, a path whose folder is missing or not a folder, a folder
    where no file can be created (creating the lock file is the test), a path that is a folder, and a path
    another process (or thread) holds. Stale temporaries of ``path`` are removed. A thread that already holds
    ``path`` may claim it again (the inner claim checks nothing and releases nothing).

    Parameters
    ----------
    path : str or Path
        The output file.
    overwrite : bool
        Whether an existing file may be replaced (``--force``).
    exists_hint : str
        What the message about an existing file tells the user to do.

    Returns
    -------
    OutputClaim
        Use it in a ``with`` block (or call ``release()``): the lock file ``.NAME.lock`` goes with it.

    Raises
    ------
    OutputError
        With the reason, naming ``path``.
    """
    import threading

    path = Path(path)
    key = str(path.resolve())
    held = _HELD.get(key)
    if held is not None and held[1] > 0:
        if held[0] != threading.get_ident():
            raise OutputError(f"{path} is being written by another run in this process; choose another output")
        _HELD[key] = (held[0], held[1] + 1)
        return _NestedClaim(key)
    claim = _claim(path, overwrite, exists_hint)
    claim.key = key
    _HELD[key] = (threading.get_ident(), 1)
    return claim


def _claim(path, overwrite, exists_hint):
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if not path.parent.exists():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: {path.parent} is not a folder")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; {exists_hint}")
    lock = _lock_path(path)
    try:
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, the checks above still hold
        return OutputClaim(path, handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
        os.close(handle)
        raise OutputError(f"{path} is being written by another lean run (pid {holder}); wait for it to finish or "
                          "choose another output") from None
    try:
        same = os.fstat(handle).st_ino == os.stat(lock).st_ino  # the holder may have removed it meanwhile
    except OSError:
        same = False
    if not same:
        os.close(handle)
        return _claim(path, overwrite, exists_hint)
    os.ftruncate(handle, 0)
    os.pwrite(handle, str(os.getpid()).encode(), 0)
    _remove_stale_temporaries(path)
    return OutputClaim(path, handle)
