"""What ``lean train`` and ``lean eval`` do, as functions: start a run, resume one, evaluate a checkpoint.

- ``start(config, out=...)``: claims the output (checked and locked before any work), loads the data, builds the
  net, applies a fresh run's settings (``bn_init``), trains with the config's methods and returns the summary.
- ``resume(path, epochs=...)``: continues a run from its checkpoint with the settings it was trained with.
  **One rule** for what a resume may change: the number of epochs (``epochs``, to train longer), how often it
  tests (``eval_every``), and where its data file now is (``data``: a file moved elsewhere, checked against the
  digest stored at the start); any other setting given must equal the run's own, or the call is refused naming
  the option. A compressed checkpoint is not a training run and is refused (its re-training belongs to
  ``lean compress``); a pruned one (``lean prune``) resumes as the fine-tuning of the narrower net.
- ``evaluate(path, data=None)``: test accuracy of a checkpoint on its data (or another dataset of that shape).

Method configs are found by name in ``lean.train.config.METHODS``, where each method's module registers its
config class; the ``lean`` command imports them all. A notebook resuming a run whose methods live elsewhere
(network slimming and early-bird: ``lean.compress.config``) imports that module first, as the error says.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path

from ..data import is_data_file
from ..data import load as load_data
from ..errors import CheckpointError, ConfigError, DataError
from ..nets import build
from ..nn import BatchNorm, Model
from ..nn.checkpoint import claim_output
from ..nn.checkpoint import load as load_checkpoint
from ..nn.checkpoint import save as save_checkpoint
from .config import METHODS, TrainConfig, flag_of
from .loop import Trainer, accuracy


def default_out(config: TrainConfig) -> str:
    """``NET-DATA.h5`` in the current folder."""
    return f"{config.net}-{Path(config.data).stem}.h5"


def set_batchnorm_scales(model: Model, value: float) -> None:
    """Start every batch-norm scale of ``model`` at ``value`` (network slimming's and early-bird's code: 0.5).

    Parameters
    ----------
    model : Model
        Changed in place.
    value : float
        The starting gamma, > 0.

    Raises
    ------
    ConfigError
        ``value`` is not > 0.
    """
    if not value > 0:
        raise ConfigError(f"batch-norm scales must start > 0; got {value}")
    for bn in model.net.modules():
        if isinstance(bn, BatchNorm):
            bn.params["weight"][...] = value


def start(config: TrainConfig, *, out: str | Path | None = None, force: bool = False,
          on_step: Callable[[dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train a new run described by ``config`` and write its checkpoint to ``out`` (default ``NET-DATA.h5``).

    Returns the summary (``lean train --json``): test_accuracy, epochs, seconds, train_images_per_second,
    parameters, checkpoint, training_energy_j, energy and each method's own keys. Raises ``OutputError`` before
    any work if ``out`` exists (unless ``force``), cannot be written or is held by another run.

    Parameters
    ----------
    config : TrainConfig
        The run: net, data, schedule, training methods (not changed; a data-file path is stored resolved).
    out : str, Path or None
        The checkpoint file; None for ``NET-DATA.h5`` in the current folder.
    force : bool
        Overwrite an existing ``out``.
    on_step, on_epoch : callable or None
        Progress callbacks, each given a dict (``lean.train.loop.Trainer``).

    Returns
    -------
    dict
        The summary above (``Trainer.summary``).
    """
    out = Path(out or default_out(config))
    with claim_output(out, overwrite=force, exists_hint=f"pass --force to overwrite it or --resume {out} to "
                                                         "continue it"):
        dataset = load_data(config.data)
        extra = {}
        if is_data_file(config.data):  # stored resolvable, and with a digest so a moved file can be recognised
            config = replace(config, data=str(Path(config.data).resolve()))
            extra["data_sha256"] = dataset.fingerprint()
        model = build(config.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                      seed=config.seed, **({} if config.width == 1.0 else {"width": config.width}))
        if config.bn_init is not None:
            set_batchnorm_scales(model, config.bn_init)
        if config.init is not None:
            _load_initial_weights(model, config.init, out)
        trainer = Trainer(model, dataset, config, out=out, on_step=on_step, on_epoch=on_epoch,
                          extra_settings=extra)
        trainer.run()
        return trainer.summary()


def _load_initial_weights(model, path, out):
    """``--init``: ``model``'s parameters and statistics from checkpoint ``path`` of the same architecture."""
    if Path(path).resolve() == Path(out).resolve():
        raise ConfigError(f"--init {path} is the output file itself; write the new run elsewhere")
    ckpt = load_checkpoint(path)
    if ckpt.compressed:
        raise ConfigError(f"--init {path} is a compressed checkpoint; start from a dense one")
    try:
        model.load_state(ckpt.state)
    except ValueError:
        raise ConfigError(f"--init {path} holds a different network than --net {model.name} with these options "
                          "(width, data); give the net it was trained as") from None


def resume(path: str | Path, *, out: str | Path | None = None, force: bool = False, data: str | None = None,
           on_step: Callable[[dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
           **given) -> dict:
    """Continue the run of checkpoint ``path`` (written to ``out``, default ``path`` itself); returns the summary.

    ``given``: settings as ``TrainConfig`` names them (``epochs=40``, ``eval_every=5``, ``lr=0.05``, and
    ``methods``: method configs, compared whole, or ``{name: {setting: value}}``, compared setting by setting);
    see the module docstring for which may differ from the run's own. An ``out`` other than ``path`` that
    exists is overwritten only with ``force``.

    Parameters
    ----------
    path : str or Path
        A training run's checkpoint (not a compressed one).
    out : str, Path or None
        Where the continued run is written; None for ``path`` itself.
    force : bool
        Overwrite an existing ``out`` other than ``path``.
    data : str or None
        The new path of the run's data file, if it moved (checked against the stored digest).
    on_step, on_epoch : callable or None
        Progress callbacks, each given a dict (``lean.train.loop.Trainer``).
    **given
        Settings by ``TrainConfig`` field name.

    Returns
    -------
    dict
        The summary, as ``start`` returns it.

    Raises
    ------
    CheckpointError
        ``path`` is a compressed checkpoint.
    ConfigError
        A given setting differs from the run's and may not change, or the run already has its ``epochs``.
    DataError
        The data file is missing, or ``data`` is not the data the run was trained on.
    OutputError
        ``out`` cannot be written, is held by another run, or exists (without ``force``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    out = Path(out or path)
    same_file = out.resolve() == path.resolve()
    with claim_output(out, overwrite=same_file or force):
        ckpt = load_checkpoint(path)
        if ckpt.compressed:
            source = ckpt.training.get("compression", {}).get("checkpoint", "DENSE.h5")
            epochs = "--qat-epochs" if ckpt.compressed == "quantize" else "--retrain-epochs"
            raise CheckpointError(f"{path} is a compressed checkpoint ({ckpt.compressed}), not a training run: "
                                  f"re-train it with lean compress {ckpt.compressed} {source} -o OUT.h5 {epochs} N")
        config = _with_changes(TrainConfig.from_dict(ckpt.training, ckpt.format_version), given, path)
        if ckpt.epoch >= config.epochs:
            raise ConfigError(f"{path} already finished {ckpt.epoch} epochs; pass --epochs N with N > {ckpt.epoch} "
                              "to train longer")
        dataset = _run_data(config, ckpt, path, data)
        if data is not None and is_data_file(data):  # the run's data file moved: the checkpoint follows it
            config = replace(config, data=str(Path(data).resolve()))
        trainer = Trainer(ckpt.model(), dataset, config, out=out, on_step=on_step, on_epoch=on_epoch,
                          extra_settings={k: ckpt.training[k] for k in ("data_sha256", "pruned_from")
                                          if k in ckpt.training})
        trainer.restore(ckpt)
        trainer.run()
        return trainer.summary()


def _with_changes(config, given, path):
    """``config`` with the settings a resume may change; any other given setting must equal the run's."""
    changes = {}
    by_name = {f.name: f for f in fields(config)}
    for name, value in given.items():
        if name == "methods":
            _check_methods(config, value, path)
            continue
        if name not in by_name:
            raise ConfigError(f"unknown training setting {name!r}")
        f = by_name[name]
        current = getattr(config, name)
        if f.metadata.get("on_resume") == "change":
            changes[name] = value
        elif value != current:
            raise ConfigError(f"{flag_of(f)} {value} differs from {path}'s {current}: a resumed run keeps its "
                              "settings (it may change --epochs and --eval-every, and --data to a moved file)")
    if not changes:
        return config
    settings = config.to_dict()
    settings.update(changes)
    return TrainConfig.from_dict(settings)


def _changes_nothing(cls, settings):
    try:
        return cls is not None and cls(**settings).changes_nothing()
    except (ConfigError, TypeError):  # settings of a method that are not a whole config
        return False


def _check_methods(config, methods, path):
    """Methods given on resume must be the run's own: configs (compared whole) or ``{name: {setting: value}}``
    (only the settings given are compared, as the command passes them)."""
    given = methods.items() if isinstance(methods, Mapping) else [(m.name, asdict(m)) for m in methods]
    for name, settings in given:
        current = config.method(name)
        cls = METHODS.get(name) or type(current)
        if current is None and _changes_nothing(cls, settings):
            continue  # the default (--precision float32) on a run that never had the method: the same run
        if current is None:
            switch = next(flag_of(f) for f in fields(cls) if f.metadata.get("switch"))
            raise ConfigError(f"{switch}: {path} was trained without it; a resumed run keeps its training methods")
        by_name = {f.name: f for f in fields(cls)}
        try:  # compare as the config would hold it ("0.50" and "0.5" are the same ratio)
            given_config = cls(**{**asdict(current), **settings})
        except (ConfigError, TypeError):
            given_config = None
        for key, value in settings.items():
            if given_config is not None:
                value = getattr(given_config, key)
            if getattr(current, key) != value:
                raise ConfigError(f"{flag_of(by_name[key])} {value} differs from {path}'s {getattr(current, key)}: "
                                  "a resumed run keeps its training methods' settings")


def _run_data(config, ckpt, path, data):
    """The dataset a resumed run continues on: its own, or ``data`` when its data file has moved."""
    stored = config.data
    if data is None:
        return load_data(_existing_data_path(stored, path))
    if not is_data_file(stored):
        if data != stored:
            raise ConfigError(f"--data {data} differs from {path}'s {stored}: a run keeps its dataset (only a data "
                              "file that moved can be given again)")
        return load_data(data)
    if not is_data_file(data):
        raise ConfigError(f"--data {data}: {path} was trained on the data file {stored}; give that file's new path")
    dataset = load_data(data)
    digest = ckpt.training.get("data_sha256")
    if digest is not None and dataset.fingerprint() != digest:
        raise DataError(f"{data} is not the data {path} was trained on (its contents differ from {stored}'s)")
    return dataset


def _existing_data_path(stored, checkpoint_path):
    """A stored data-file path as it can be opened: as stored, else beside the checkpoint (format 1 stored it
    relative to where the run started)."""
    if not is_data_file(stored) or Path(stored).exists():
        return stored
    beside = Path(checkpoint_path).parent / stored
    if not Path(stored).is_absolute() and beside.exists():
        return str(beside)
    raise DataError(f"the data file {stored} of {checkpoint_path} does not exist; if it moved, pass --data NEW_PATH")


class CheckpointData:
    """The dataset a checkpoint is tested (or re-trained) on, with the checkpoint's own normalization: what
    ``lean eval``, ``lean prune`` and ``lean compress`` share.

    ``data`` (a dataset name or file) if given, else the one the checkpoint was trained on (a data file found
    where the run stored it, or beside the checkpoint); its images must have the model's input shape.
    Attributes: ``name``, ``dataset``, ``mean``, ``std``.
    """

    def __init__(self, ckpt, path, data=None, model=None):
        self.name = data or ckpt.training.get("data")
        if not self.name:
            raise ConfigError(f"{path} does not say which data it was trained on; pass --data")
        self.dataset = load_data(self.name if data else _existing_data_path(self.name, path))
        shape = tuple((model or ckpt.model()).input_shape)
        if self.dataset.input_shape != shape:
            raise DataError(f"{self.name} images are {self.dataset.input_shape}, the model expects {shape}")
        self.mean = ckpt.mean if ckpt.mean is not None else self.dataset.mean
        self.std = ckpt.std if ckpt.std is not None else self.dataset.std

    def normalize(self, x):
        return self.dataset.normalize(x, self.mean, self.std)

    def accuracy(self, model, on_batch=None):
        """Test accuracy of ``model`` on the dataset's test images."""
        return accuracy(model, self.dataset.x_test, self.dataset.y_test, self.normalize, on_batch=on_batch)


def evaluate(path: str | Path, *, data: str | None = None,
             on_batch: Callable[[int, int], None] | None = None, record: bool = False,
             budgets: Sequence[float] | None = None, budget_unit: str = "fraction") -> dict:
    """Test accuracy of checkpoint ``path`` on its dataset (or on ``data``, a dataset of the same image shape).

    Returns ``checkpoint, data, test_accuracy, test_images, seconds, images_per_second``; ``on_batch(done,
    total)`` is called as test batches finish.

    Parameters
    ----------
    path : str or Path
        Any checkpoint, dense or compressed.
    data : str or None
        A dataset name or file to test on instead of the checkpoint's own.
    on_batch : callable or None
        Called as ``on_batch(done, total)``.
    record : bool
        Store what an input-adaptive model did on this test set (DFS: each gated block's share of the images per
        option) in the checkpoint's architecture, rewritten in place; the hardware models then cost that work
        (``lean hw predict --workload`` this file). ``recorded`` in the result says whether there was any.
        With one budget, what ran under it is recorded.
    budgets : sequence of float or None
        A DDI model's budgets per image (``lean.dynamic.ddi.budgeted_predict``): ``ddi_budgets`` in the result
        has the accuracy and the MACs used at each, and ``test_accuracy`` is the last budget's.
    budget_unit : str
        "fraction" (of the full network's MACs) or "macs".

    Returns
    -------
    dict
        The keys above; ``test_accuracy`` is a fraction in [0, 1].

    Raises
    ------
    ConfigError
        The checkpoint does not name its data and ``data`` is not given.
    DataError
        The dataset's images are not the shape the model expects, or its data file is missing.
    """
    ckpt = load_checkpoint(path)
    model = ckpt.model()
    data = CheckpointData(ckpt, path, data, model)
    if budgets is not None:
        return _evaluate_budgets(ckpt, model, data, path, budgets, budget_unit, record)
    counting = [m for m in model.net.modules() if hasattr(m, "reset_counts")]  # gated blocks (lean.dynamic)
    for module in counting:
        module.reset_counts()
    t0 = time.perf_counter()
    acc = data.accuracy(model, on_batch=on_batch)
    seconds = time.perf_counter() - t0
    data_name, dataset = data.name, data.dataset
    result = {"checkpoint": str(path), "data": data_name, "test_accuracy": acc, "test_images": len(dataset.y_test),
              "seconds": seconds, "images_per_second": len(dataset.y_test) / seconds}
    for module in counting:  # what input-adaptive models did on the test set
        if hasattr(module, "dynamic_report"):
            result.update(module.dynamic_report(model))
    if record:
        recording = [m for m in model.net.modules() if hasattr(m, "record_counts")]
        for module in recording:
            module.record_counts(model)
        if recording:
            _store_architecture(path, ckpt, model)
        result["recorded"] = bool(recording)
    return result


def _store_architecture(path, ckpt, model):
    """Rewrite checkpoint ``path`` in place with ``model``'s architecture (what ``--record`` keeps in it)."""
    with claim_output(path, overwrite=True):
        ckpt.architecture = model.config()
        save_checkpoint(path, ckpt)


def _evaluate_budgets(ckpt, model, data, path, budgets, unit, record):
    # the model's exits answer under a budget (a DDI model's controller, lean.dynamic.ddi; found by what it can
    # do, since train does not import dynamic)
    ctrl = next((m for m in model.net.modules() if hasattr(m, "budget_curve")), None)
    if ctrl is None:
        raise ConfigError(f"{path} has no early exits: budgets need a DDI model (lean train --ddi)")
    if unit not in ("fraction", "macs"):
        raise ConfigError(f"budget unit must be fraction or macs; got {unit!r}")
    budgets = [float(b) for b in budgets]
    if not budgets or any(not b > 0 for b in budgets):
        raise ConfigError(f"budgets must be positive; got {', '.join(f'{b:g}' for b in budgets) or 'none'}")
    if record and len(budgets) != 1:
        raise ConfigError("--record stores one run: give one budget")
    dataset = data.dataset
    x = data.normalize(dataset.x_test)
    t0 = time.perf_counter()
    curve = ctrl.budget_curve(model, x, dataset.y_test, budgets, unit)
    seconds = time.perf_counter() - t0
    last = curve["budgets"][-1]
    result = {"checkpoint": str(path), "data": data.name, "test_accuracy": last["accuracy"],
              "test_images": len(dataset.y_test), "seconds": seconds,
              "images_per_second": len(budgets) * len(dataset.y_test) / seconds, "ddi_budgets": curve}
    if record:
        ctrl.record_counts(model)
        _store_architecture(path, ckpt, model)
        result["recorded"] = True
    return result
