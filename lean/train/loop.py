"""The training loop: seeded batches, optimizer and schedule, per-epoch evaluation, safe checkpoints, resume.

Reproducibility: the sample order of epoch ``e`` comes from ``default_rng([seed, e])`` and the augmentation and
dropout of step ``t`` from ``[seed, e, t]``, so a run resumed from any checkpoint (even one written by Ctrl-C in
the middle of an epoch) takes exactly the steps the uninterrupted run would have taken.
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import kernels
from ..nn import Schedule, make_optimizer, softmax_cross_entropy
from . import checkpoint as ckpt_io
from .energy import EnergyMeter


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept as it was."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C: a resumable checkpoint was written (if the run has an output file)."""


@dataclass
class TrainConfig:
    net: str = "lenet5"
    data: str = "digits"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    seed: int = 0
    train_limit: int = None
    augment: bool = None  # None: the dataset's default
    width: float = 1.0  # channel-width multiplier for nets that have one (vgg, resnet, preresnet, mobilenetv2)
    smd: float = 0.0  # E2-Train stochastic mini-batch dropping: probability of skipping a step
    slu: float = None  # E2-Train selective layer update: target fraction of gated blocks to run
    slu_beta: float = 1e-3
    psg: float = None  # E2-Train predictive sign gradient: fixed tau ...
    psg_adaptive: float = None  # ... or adaptive: tau = this x max |predicted gradient| per layer
    slim: float = None  # network-slimming L1 strength on batch-norm scales
    early_bird: float = None  # early-bird prune ratio (needs slim)
    eb_epsilon: float = 0.1
    eb_window: int = 5
    eb_precision: int = None  # bits of the early-bird search phase (None: float32)
    eval_every: int = 1  # evaluate the test set every N epochs (and always after the last)
    bn_init: float = None  # every batch-norm scale at the start of a fresh run (None: the layers' 1.0)

    def __post_init__(self):
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1; got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch size must be >= 1; got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0; got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0; got {self.weight_decay}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train limit must be >= 1; got {self.train_limit}")
        if not 0.0 <= self.smd < 1.0:
            raise ValueError(f"mini-batch dropping probability must be in [0, 1); got {self.smd}")
        if self.early_bird is not None and self.slim is None:
            raise ValueError("--early-bird draws its ticket from slimmed batch norms: give --slim too (e.g. 1e-4)")
        if self.psg is not None and self.psg_adaptive is not None:
            raise ValueError("give PSG one tau: a fixed --psg TAU or --psg-adaptive FRACTION")
        if self.bn_init is not None and not self.bn_init > 0:
            raise ValueError(f"batch-norm scales must start > 0; got {self.bn_init}")
        if int(self.eval_every) < 1:
            raise ValueError(f"evaluate every N >= 1 epochs; got {self.eval_every}")
        if self.eb_window is not None and int(self.eb_window) < 2:
            raise ValueError(f"the early-bird window must be >= 2; got {self.eb_window}")

    def schedule_obj(self):
        return Schedule(self.schedule, self.lr, self.epochs, warmup_epochs=self.warmup_epochs)


def accuracy(model, x, y, normalize, batch_size=500):
    """Top-1 accuracy of ``model`` on raw images ``x`` normalized by ``normalize``."""
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model.predict(normalize(x[i:i + batch_size]), batch_size)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return correct / max(len(x), 1)


class Trainer:
    """Trains ``model`` on ``dataset`` with ``config``; ``run()`` returns the history.

    ``on_step(info)`` is called after every step with a dict (epoch, step, steps, loss, images_per_second,
    eta_seconds) so a command line or notebook can draw progress.
    """

    def __init__(self, model, dataset, config, *, out=None, on_step=None, on_epoch=None, hooks=()):
        kernels.keep_freed_memory()
        self.model, self.config, self.out = model, config, out
        self.dataset = dataset.limit(config.train_limit)
        if config.augment is not None:
            self.dataset.augment = bool(config.augment)
        if tuple(model.input_shape) != self.dataset.input_shape:
            raise ValueError(f"net {model.name} was built for inputs {model.input_shape} but {dataset.name} has "
                             f"{self.dataset.input_shape}")
        if model.num_classes != self.dataset.num_classes:
            raise ValueError(f"net has {model.num_classes} outputs but {dataset.name} has "
                             f"{self.dataset.num_classes} classes")
        self.schedule = config.schedule_obj()
        self.optimizer = make_optimizer(config.optimizer, model.parameters(), model.gradients(),
                                        momentum=config.momentum, nesterov=config.nesterov,
                                        weight_decay=config.weight_decay)
        self.history = []
        self.epoch = 0          # completed epochs
        self.step_in_epoch = 0  # steps already taken in epoch self.epoch (non-zero after an interrupt)
        self.on_step, self.on_epoch = on_step, on_epoch
        # training methods that change the loop: objects with optional install(model) (wraps layers; called
        # again on a replaced model), on_epoch_start(trainer), on_batch(trainer, seed) (before each forward),
        # before_update(trainer) (after backward, before the optimizer step; may add to gradients) and
        # on_epoch_end(trainer); with a ``name``, state() / load_state() ride in the checkpoint, summary() in
        # the run's summary
        self.hooks = list(hooks)
        self.train_seconds = 0.0
        self.train_images = 0
        self.skipped_steps = 0
        self.mean, self.std = self.dataset.mean, self.dataset.std
        self.energy = EnergyMeter(model)
        self._install_methods(model)

    def replace_model(self, model):
        """Continue the run with another model (a pruned one): new optimizer, same schedule and counters."""
        self.model = model
        self.optimizer = make_optimizer(self.config.optimizer, model.parameters(), model.gradients(),
                                        momentum=self.config.momentum, nesterov=self.config.nesterov,
                                        weight_decay=self.config.weight_decay)
        self._install_methods(model)

    def _install_methods(self, model):
        """Hooks that change how layers compute (PSG) wrap them first; the energy meter wraps the result."""
        for hook in self.hooks:
            if hasattr(hook, "install"):
                hook.install(model)
        self.energy.install(model)

    def _optimizer_state_arrays(self):
        if self.config.optimizer == "adam":
            return 2
        return 1 if self.config.momentum else 0

    # -- resume
    def restore(self, ckpt):
        """Continue from a checkpoint of the same run (model already built from it)."""
        if ckpt.optimizer_state or ckpt.optimizer_meta:
            self.optimizer.load_state(ckpt.optimizer_state, ckpt.optimizer_meta)
        self.history = list(ckpt.history)
        self.epoch, self.step_in_epoch = ckpt.epoch, ckpt.step_in_epoch
        if ckpt.mean is not None:
            self.mean, self.std = np.asarray(ckpt.mean), np.asarray(ckpt.std)
        done = ckpt.training.get("progress", {})
        self.train_seconds = float(done.get("train_seconds", 0.0))
        self.train_images = int(done.get("train_images", 0))
        self.skipped_steps = int(done.get("skipped_steps", 0))
        for hook in self.hooks:
            if hasattr(hook, "load_state") and hook.name in done.get("hooks", {}):
                hook.load_state(done["hooks"][hook.name])
        self._install_methods(self.model)  # a restored hook may install differently (a pruned early bird)
        self.energy.load_state(done.get("energy", {}))

    def checkpoint(self, status):
        opt_state, opt_meta = self.optimizer.state()
        training = asdict(self.config)
        training["progress"] = {"train_seconds": self.train_seconds, "train_images": self.train_images,
                                "skipped_steps": self.skipped_steps, "energy": self.energy.state(),
                                "hooks": {h.name: h.state() for h in self.hooks if hasattr(h, "state")}}
        return ckpt_io.Checkpoint(
            architecture=self.model.config(), state=self.model.state(), training=training,
            history=self.history, epoch=self.epoch, step_in_epoch=self.step_in_epoch, status=status,
            optimizer_state=opt_state, optimizer_meta=opt_meta, mean=self.mean, std=self.std)

    def save(self, status):
        if self.out is not None:
            ckpt_io.save(self.out, self.checkpoint(status))

    # -- the loop
    def steps_per_epoch(self):
        n = len(self.dataset.x_train)
        return max(1, n // min(self.config.batch_size, n))

    def run(self):
        cfg = self.config
        try:
            while self.epoch < cfg.epochs:
                self._run_epoch()
        except KeyboardInterrupt:
            self.save("interrupted")
            where = f"; resume with --resume {self.out}" if self.out else ""
            raise TrainingInterrupted(f"interrupted in epoch {self.epoch + 1} after step {self.step_in_epoch}"
                                      f"{where}") from None
        self.save("complete")
        return self.history

    def _normalize(self, x):
        return self.dataset.normalize(x, self.mean, self.std)

    def _run_epoch(self):
        cfg, ds, model = self.config, self.dataset, self.model
        n_params, n_state = model.num_parameters(), self._optimizer_state_arrays()
        n = len(ds.x_train)
        batch = min(cfg.batch_size, n)
        steps = self.steps_per_epoch()
        order = np.random.default_rng([cfg.seed, self.epoch]).permutation(n)
        for hook in self.hooks:
            if hasattr(hook, "on_epoch_start"):
                hook.on_epoch_start(self)
        losses, correct, seen = [], 0, 0
        epoch_start = time.perf_counter()
        epoch_seconds = 0.0
        for step in range(self.step_in_epoch, steps):
            t0 = time.perf_counter()
            if cfg.smd and np.random.default_rng([cfg.seed, self.epoch, step, 1]).random() < cfg.smd:
                # E2-Train SMD: this mini-batch is dropped (no forward, no backward); the step still counts
                self.step_in_epoch = step + 1
                self.skipped_steps += 1
                continue
            rng = np.random.default_rng([cfg.seed, self.epoch, step])
            idx = order[step * batch:(step + 1) * batch]
            x, y = ds.train_batch(idx, rng, self.mean, self.std)
            lr = self.schedule.lr_at(self.epoch + step / steps)
            batch_seed = int(rng.integers(2**31))
            model.reseed(batch_seed)
            for hook in self.hooks:
                if hasattr(hook, "on_batch"):
                    hook.on_batch(self, batch_seed)
            model.zero_grad()
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once
                logits = model.forward(x, train=True)
                loss, dlogits = softmax_cross_entropy(logits, y, cfg.label_smoothing)
            if not math.isfinite(loss):
                exists = self.out is not None and Path(self.out).exists()
                kept = f"; the last good checkpoint {self.out} is kept" if exists else ""
                raise TrainingDiverged(f"loss became {loss} at epoch {self.epoch + 1}, step {step + 1} "
                                       f"(learning rate {lr:.4g}); try a lower --lr{kept}")
            model.backward(dlogits)
            for hook in self.hooks:
                if hasattr(hook, "before_update"):
                    hook.before_update(self)
            self.optimizer.step(lr)
            self.energy.optimizer_step(n_params, n_state)
            self.step_in_epoch = step + 1
            dt = time.perf_counter() - t0
            epoch_seconds += dt
            self.train_seconds += dt
            self.train_images += len(idx)
            losses.append(loss)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(idx)
            if self.on_step is not None:
                ips = seen / max(epoch_seconds, 1e-9)
                remaining = (steps - step - 1) * batch + (cfg.epochs - self.epoch - 1) * steps * batch
                self.on_step({"epoch": self.epoch + 1, "epochs": cfg.epochs, "step": step + 1, "steps": steps,
                              "loss": float(np.mean(losses[-20:])), "images_per_second": ips,
                              "eta_seconds": remaining / max(ips, 1e-9)})
        # the test set costs about a third of a training epoch on 10,000 images: --eval-every N skips it
        # between evaluations (None in the history); the last epoch is always evaluated
        evaluate = (self.epoch + 1) % int(cfg.eval_every) == 0 or self.epoch + 1 == cfg.epochs
        test_acc = accuracy(model, ds.x_test, ds.y_test, self._normalize) if evaluate else None
        self.history.append({
            "epoch": self.epoch + 1,
            "lr": self.schedule.lr_at(self.epoch),
            "train_loss": float(np.mean(losses)) if losses else None,
            "train_accuracy": correct / seen if seen else None,
            "test_accuracy": test_acc,
            "seconds": time.perf_counter() - epoch_start,
            "train_images_per_second": seen / epoch_seconds if epoch_seconds else None,
            "training_energy_j": self.energy.report()["training_energy_j"],
        })
        self.epoch += 1
        self.step_in_epoch = 0
        for hook in self.hooks:
            if hasattr(hook, "on_epoch_end"):
                hook.on_epoch_end(self)  # may replace the model (early-bird pruning)
        self.save("running" if self.epoch < cfg.epochs else "complete")
        if self.on_epoch is not None:
            self.on_epoch(self.history[-1])

    def summary(self):
        last = self.history[-1] if self.history else {}
        energy = self.energy.report()
        return {
            "net": self.model.name, "data": self.dataset.name, "epochs": self.epoch,
            "test_accuracy": last.get("test_accuracy"),
            "train_loss": last.get("train_loss"),
            "seconds": self.train_seconds,
            "train_images_per_second": self.train_images / self.train_seconds if self.train_seconds else None,
            "parameters": self.model.num_parameters(),
            "checkpoint": str(self.out) if self.out else None,
            "skipped_steps": self.skipped_steps,
            "training_energy_j": energy["training_energy_j"],
            "energy": energy,
            **{k: v for h in self.hooks if hasattr(h, "summary") for k, v in h.summary().items()},
        }
