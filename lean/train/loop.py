"""The training loop: seeded batches, optimizer and schedule, per-epoch evaluation, safe checkpoints, resume.

``Trainer(model, dataset, config).run()`` trains and returns the history. The training methods of
``config.methods`` (and any given as ``methods``) plug in through the protocol of ``lean.train.methods``; the
training-energy meter is one of them and runs in every run.

Reproducibility: the sample order of epoch ``e`` comes from ``default_rng([seed, e])`` and the augmentation and
dropout of step ``t`` from ``[seed, e, t]``, so a run resumed from a checkpoint written by Ctrl-C in the middle
of an epoch, or during its test pass, takes the steps the uninterrupted run would have taken, and its history
holds the same epochs (with the same --epochs: a longer run stretches the schedule; and a Ctrl-C that lands
inside an optimizer update can leave that one update half applied).

Safety: a checkpoint is written only while every weight is finite, and a run stops (``TrainingDiverged``) when
its loss turns NaN or infinite or explodes past ``EXPLODED_LOSS_FACTOR`` times the loss of a uniform guess; the
last good checkpoint stays as it was.
"""

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, TrainingDiverged, TrainingInterrupted
from ..kernels import ensure_configured
from ..nn import Model, Schedule, make_optimizer, softmax_cross_entropy
from ..nn import checkpoint as ckpt_io
from .config import TrainConfig
from .energy import EnergyMeter
from .methods import TrainingMethod

if TYPE_CHECKING:  # for annotations only: importing lean.data here would load it (and urllib) for nothing
    from ..data import Dataset

# A loss this many times ln(classes) (a uniform guess's cross-entropy) means the run has blown up: it would only
# wander at chance accuracy to the end of the schedule.
EXPLODED_LOSS_FACTOR = 100.0


def accuracy(model: Model, x: np.ndarray, y: np.ndarray, normalize: Callable[[np.ndarray], np.ndarray],
             batch_size: int = 500, on_batch: Callable[[int, int], None] | None = None) -> float:
    """Top-1 accuracy of ``model`` on raw images ``x`` (n, h, w, c) with labels ``y`` (n,), each batch normalized
    by ``normalize``; ``on_batch(done, total)`` is called after each batch (a progress bar).

    Parameters
    ----------
    model : Model
        The model, run in inference mode.
    x : np.ndarray
        (n, h, w, c) raw images, channels-last, as the dataset holds them.
    y : np.ndarray
        (n,) integer labels.
    normalize : callable
        Raw batch (b, h, w, c) -> normalized float32 batch of the same shape.
    batch_size : int
        Images per forward pass.
    on_batch : callable or None
        Called as ``on_batch(done, total)`` after each batch.

    Returns
    -------
    float
        The fraction of ``x`` classified correctly, in [0, 1] (0 for no images).
    """
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model.predict(normalize(x[i:i + batch_size]), batch_size)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
        if on_batch is not None:
            on_batch(min(i + batch_size, len(x)), len(x))
    return correct / max(len(x), 1)


def _fresh_epoch():
    return {"loss_sum": 0.0, "steps": 0, "correct": 0, "seen": 0, "train_seconds": 0.0, "wall_seconds": 0.0}


class Trainer:
    """Trains ``model`` on ``dataset`` with ``config``; ``run()`` returns the history.

    ``methods``: training methods to run besides those of ``config.methods`` (e.g. a compression method's
    regularizer). ``on_step(info)`` is called after every step with a dict (epoch, epochs, step, steps, loss,
    images_per_second, eta_seconds) and ``on_epoch(entry)`` after every epoch with its history entry (and the
    run's ``epochs``), so a command line or notebook can draw progress. ``extra_settings`` are stored with the
    run's settings in its checkpoint.

    Parameters
    ----------
    model : Model
        The model to train (each method's ``prepare`` may replace it, e.g. SLU's gates).
    dataset : lean.data.Dataset
        Images channels-last (n, h, w, c) and labels; limited to ``config.train_limit``.
    config : TrainConfig
        The run's settings and its training methods.
    out : str, Path or None
        Checkpoint file, written after every epoch and on Ctrl-C; None writes nothing.
    on_step, on_epoch : callable or None
        Progress callbacks, each given a dict (see above).
    methods : sequence of TrainingMethod
        Methods to run besides those of ``config.methods``.
    extra_settings : dict or None
        Stored with the run's settings.

    Raises
    ------
    ConfigError
        The model's input shape or number of classes does not match the dataset.
    """

    def __init__(self, model: Model, dataset: "Dataset", config: TrainConfig, *, out: str | Path | None = None,
                 on_step: Callable[[dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
                 methods: Sequence[TrainingMethod] = (), extra_settings: dict | None = None):
        ensure_configured()  # lean's threading, unless the program configured it itself
        self.config, self.out = config, out
        self.dataset = dataset.limit(config.train_limit)
        if config.augment is not None:
            self.dataset.augment = bool(config.augment)
        self.methods = [m.build() for m in config.methods] + list(methods)
        for method in self.methods:
            model = method.prepare(model, config)
        if tuple(model.input_shape) != self.dataset.input_shape:
            raise ConfigError(f"net {model.name} was built for inputs {model.input_shape} but {dataset.name} has "
                              f"{self.dataset.input_shape}")
        if model.num_classes != self.dataset.num_classes:
            raise ConfigError(f"net has {model.num_classes} outputs but {dataset.name} has "
                              f"{self.dataset.num_classes} classes")
        self.energy = EnergyMeter(model)
        self.methods.append(self.energy)
        self.model = model
        self.schedule = Schedule(config.schedule, config.lr, config.epochs, warmup_epochs=config.warmup_epochs)
        self.optimizer = self._make_optimizer(model)
        self.history = []
        self.batch_labels = None  # the labels of the step's batch (set before the methods' on_batch)
        self.epoch = 0          # completed epochs
        self.step_in_epoch = 0  # steps already taken in epoch self.epoch (non-zero after an interrupt)
        self.on_step, self.on_epoch = on_step, on_epoch
        self.extra_settings = dict(extra_settings or {})
        self.train_seconds = 0.0
        self.train_images = 0
        self.skipped_steps = 0
        self._epoch = _fresh_epoch()  # running totals of the epoch in progress (checkpointed)
        self._wrote = False  # whether the output file holds this run (a divergence message says it is kept)
        self.mean, self.std = self.dataset.mean, self.dataset.std
        self._install_methods()

    def lr_at(self, t: float) -> float:
        """The learning rate at ``t`` epochs: the run's schedule, as the training methods adjust it."""
        lr = self.schedule.lr_at(t)
        for method in self.methods:
            lr = method.learning_rate(self, t, lr)
        return lr

    def _make_optimizer(self, model):
        c = self.config
        return make_optimizer(c.optimizer, model.parameters(), model.gradients(), momentum=c.momentum,
                              nesterov=c.nesterov, weight_decay=c.weight_decay)

    def method(self, name: str) -> TrainingMethod | None:
        """The running training method called ``name`` (None if the run has none)."""
        return next((m for m in self.methods if m.name == name), None)

    def replace_model(self, model: Model) -> None:
        """Continue the run with another model (a pruned one): new optimizer, same schedule and counters."""
        self.model = model
        self.optimizer = self._make_optimizer(model)
        self._install_methods()

    def _install_methods(self):
        for method in self.methods:
            method.install(self.model)

    def optimizer_state_arrays(self) -> int:
        """Arrays the optimizer keeps per parameter (momentum: 1, Adam: 2), for the energy meter."""
        if self.config.optimizer == "adam":
            return 2
        return 1 if self.config.momentum else 0

    # -- resume
    def restore(self, ckpt: ckpt_io.Checkpoint) -> None:
        """Continue from a checkpoint of the same run (model already built from it)."""
        if ckpt.optimizer_state or ckpt.optimizer_meta:
            self.optimizer.load_state(ckpt.optimizer_state, ckpt.optimizer_meta)
        self.history = list(ckpt.history)
        self.epoch, self.step_in_epoch = ckpt.epoch, ckpt.step_in_epoch
        self._wrote = self.out is not None and ckpt.path is not None and \
            Path(ckpt.path).resolve() == Path(self.out).resolve()  # resumed in place: the file is this run's
        if ckpt.mean is not None:
            self.mean, self.std = np.asarray(ckpt.mean), np.asarray(ckpt.std)
        done = ckpt.training.get("progress", {})
        self.train_seconds = float(done.get("train_seconds", 0.0))
        self.train_images = int(done.get("train_images", 0))
        self.skipped_steps = int(done.get("skipped_steps", 0))
        if self.step_in_epoch and "epoch_partial" in done:
            self._epoch = {**_fresh_epoch(), **done["epoch_partial"]}
        states = method_states(done, ckpt.format_version)
        for method in self.methods:
            if method.name in states:
                method.load_state(states[method.name])
        self._install_methods()  # a restored method may install differently (a pruned early bird)

    def checkpoint(self, status: str) -> ckpt_io.Checkpoint:
        """The run as a ``lean.nn.checkpoint.Checkpoint`` (settings, progress, method states, model, optimizer)."""
        opt_state, opt_meta = self.optimizer.state()
        training = {**self.config.to_dict(), **self.extra_settings}
        training["progress"] = {"train_seconds": self.train_seconds, "train_images": self.train_images,
                                "skipped_steps": self.skipped_steps,
                                "epoch_partial": dict(self._epoch) if self.step_in_epoch else {},
                                "methods": {m.name: m.state() for m in self.methods if m.name}}
        return ckpt_io.Checkpoint(
            architecture=self.model.config(), state=self.model.state(), training=training,
            history=self.history, epoch=self.epoch, step_in_epoch=self.step_in_epoch, status=status,
            optimizer_state=opt_state, optimizer_meta=opt_meta, mean=self.mean, std=self.std)

    def save(self, status: str) -> None:
        """Write the checkpoint, unless a weight or optimizer value is not finite (then the run has diverged and
        the file keeps its last good state)."""
        if self.out is None:
            return
        arrays = list(self.model.parameters().values())
        arrays += [a for table in self.optimizer.slots.values() for a in table.values()]
        if not all(np.isfinite(a).all() for a in arrays):
            raise TrainingDiverged(f"weights became NaN or infinite by epoch {self.epoch + 1}; try a lower --lr"
                                   f"{self._kept()}")
        ckpt_io.save(self.out, self.checkpoint(status))
        self._wrote = True

    def _kept(self):
        """What a divergence message says of the output file: kept, if this run wrote it (or resumed from it)."""
        return f"; the last good checkpoint {self.out} is kept" if self._wrote else ""

    # -- the loop
    def steps_per_epoch(self) -> int:
        """Steps of one epoch: whole batches of the training set (at least 1; a last partial batch is dropped)."""
        n = len(self.dataset.x_train)
        return max(1, n // min(self.config.batch_size, n))

    def run(self) -> list[dict]:
        """Train to ``config.epochs`` (from where a restored run stopped); returns the history, one dict per epoch.

        Raises
        ------
        TrainingDiverged
            The loss or the weights stopped being finite, or the loss exploded (the checkpoint keeps its last
            good state).
        TrainingInterrupted
            Ctrl-C; the run was saved mid-epoch and can be resumed.
        """
        cfg = self.config
        self._install_methods()
        try:
            while self.epoch < cfg.epochs:
                self._run_epoch()
        except KeyboardInterrupt:
            self.save("interrupted")
            where = f"; resume with --resume {self.out}" if self.out else ""
            raise TrainingInterrupted(f"interrupted in epoch {self.epoch + 1} after step {self.step_in_epoch}"
                                      f"{where}") from None
        finally:
            for method in self.methods:  # the model leaves the run as it came: no hooks, no observers
                method.uninstall()
        self.save("complete")
        return self.history

    def _normalize(self, x):
        return self.dataset.normalize(x, self.mean, self.std)

    def _check_loss(self, loss, step, lr):
        limit = EXPLODED_LOSS_FACTOR * math.log(max(self.model.num_classes, 2))
        if math.isfinite(loss) and loss <= limit:
            return
        guess = limit / EXPLODED_LOSS_FACTOR
        what = f"became {loss}" if not math.isfinite(loss) else \
            f"exploded to {loss:.3g} (more than {EXPLODED_LOSS_FACTOR:g} x a uniform guess's {guess:.2f})"
        raise TrainingDiverged(f"loss {what} at epoch {self.epoch + 1}, step {step + 1} (learning rate {lr:.4g}); "
                               f"try a lower --lr{self._kept()}")

    def _run_epoch(self):
        cfg, ds, model = self.config, self.dataset, self.model
        n = len(ds.x_train)
        batch = min(cfg.batch_size, n)
        steps = self.steps_per_epoch()
        order = np.random.default_rng([cfg.seed, self.epoch]).permutation(n)
        for method in self.methods:
            method.on_epoch_start(self)
        totals = self._epoch
        recent = deque(maxlen=20)
        seen_now, seconds_now = 0, 0.0
        wall_start = time.perf_counter()
        try:
            for step in range(self.step_in_epoch, steps):
                t0 = time.perf_counter()
                lr = self.lr_at(self.epoch + step / steps)
                dropping = [method for method in self.methods if method.skip_step(self, step)]
                if dropping:
                    # the mini-batch is dropped (no forward, no backward); the step still counts, and may still
                    # move the weights by momentum and weight decay (the E2-Train authors' SMD)
                    if any(method.momentum_on_dropped for method in dropping):
                        model.zero_grad()
                        self.optimizer.step(lr)
                    self.step_in_epoch = step + 1
                    self.skipped_steps += 1
                    continue
                rng = np.random.default_rng([cfg.seed, self.epoch, step])
                idx = order[step * batch:(step + 1) * batch]
                x, y = ds.train_batch(idx, rng, self.mean, self.std)
                batch_seed = int(rng.integers(2**31))
                model.reseed(batch_seed)
                self.batch_labels = y  # for methods whose layers have losses of their own (DDI's exits)
                for method in self.methods:
                    method.on_batch(self, batch_seed)
                model.zero_grad()
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once
                    logits = model.forward(x, train=True)
                    loss, dlogits = softmax_cross_entropy(logits, y, cfg.label_smoothing)
                self._check_loss(loss, step, lr)
                model.backward(dlogits)
                for method in self.methods:
                    method.before_update(self)
                self.optimizer.step(lr)
                for method in self.methods:
                    method.after_update(self)
                self.step_in_epoch = step + 1
                dt = time.perf_counter() - t0
                self.train_seconds += dt
                self.train_images += len(idx)
                totals["loss_sum"] += loss
                totals["steps"] += 1
                totals["correct"] += int((logits.argmax(axis=1) == y).sum())
                totals["seen"] += len(idx)
                totals["train_seconds"] += dt
                recent.append(loss)
                seen_now += len(idx)
                seconds_now += dt
                if self.on_step is not None:
                    ips = seen_now / max(seconds_now, 1e-9)
                    remaining = (steps - step - 1) * batch + (cfg.epochs - self.epoch - 1) * steps * batch
                    self.on_step({"epoch": self.epoch + 1, "epochs": cfg.epochs, "step": step + 1, "steps": steps,
                                  "loss": float(np.mean(recent)), "images_per_second": ips,
                                  "eta_seconds": remaining / max(ips, 1e-9)})
        finally:  # an interrupted epoch keeps its time so far
            totals["wall_seconds"] += time.perf_counter() - wall_start
        # the test set costs about a third of a training epoch on 10,000 images: --eval-every N skips it
        # between evaluations (None in the history); the last epoch is always evaluated
        evaluate = (self.epoch + 1) % int(cfg.eval_every) == 0 or self.epoch + 1 == cfg.epochs
        eval_start = time.perf_counter()
        test_acc = accuracy(model, ds.x_test, ds.y_test, self._normalize) if evaluate else None
        self.history.append({
            "epoch": self.epoch + 1,
            "lr": self.lr_at(self.epoch),
            "train_loss": totals["loss_sum"] / totals["steps"] if totals["steps"] else None,
            "train_accuracy": totals["correct"] / totals["seen"] if totals["seen"] else None,
            "test_accuracy": test_acc,
            "seconds": totals["wall_seconds"] + time.perf_counter() - eval_start,
            "train_images_per_second": totals["seen"] / totals["train_seconds"] if totals["train_seconds"] else None,
            "training_energy_j": self.energy.report()["training_energy_j"],
        })
        self.epoch += 1
        self.step_in_epoch = 0
        self._epoch = _fresh_epoch()
        for method in self.methods:
            method.on_epoch_end(self)  # may replace the model (early-bird pruning)
        self.save("running" if self.epoch < cfg.epochs else "complete")
        if self.on_epoch is not None:
            self.on_epoch({**self.history[-1], "epochs": cfg.epochs})

    def summary(self) -> dict:
        """The run's results as ``lean train --json`` prints them."""
        last = self.history[-1] if self.history else {}
        out = {
            "net": self.model.name, "data": self.dataset.name, "epochs": self.epoch,
            "test_accuracy": last.get("test_accuracy"),
            "train_loss": last.get("train_loss"),
            "seconds": self.train_seconds,
            "train_images_per_second": self.train_images / self.train_seconds if self.train_seconds else None,
            "parameters": self.model.num_parameters(),
            "checkpoint": str(self.out) if self.out else None,
            "skipped_steps": self.skipped_steps,
        }
        for method in self.methods:
            out.update(method.summary())
        return out


def method_states(progress: dict, format_version: int = 2) -> dict[str, dict]:
    """The methods' saved states by name. Format 1 kept the energy meter's apart and the others under "hooks",
    and its early-bird hook held the slimming penalty (off once the net was pruned)."""
    if format_version >= 2:
        return dict(progress.get("methods", {}))
    states = dict(progress.get("hooks", {}))
    states["energy"] = progress.get("energy", {})
    if states.get("early_bird", {}).get("pruned"):
        states["slim"] = {"active": False}
    return states
