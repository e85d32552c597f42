"""Learning-rate schedules as pure functions of training progress (epochs, fractional).

``Schedule.lr_at(t)`` with ``t`` in epochs (e.g. 3.25 = a quarter into the fourth epoch); a linear warm-up from
``base_lr * warmup_start`` over ``warmup_epochs`` comes before any of: constant, step (x gamma every
``step_size`` epochs), multistep (x gamma at each milestone), cosine (to 0 at ``epochs``).
"""

import math
from dataclasses import dataclass, field

SCHEDULES = ("constant", "step", "multistep", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A learning rate as a function of training progress.

    Parameters
    ----------
    kind : str
        One of ``SCHEDULES``: ``"constant"``, ``"step"``, ``"multistep"``, ``"cosine"``.
    base_lr : float
        The learning rate at the start (after warm-up), > 0.
    epochs : int
        Length of the run, >= 1 (cosine reaches 0 there; defaults of step and multistep derive from it).
    gamma : float
        Factor applied at each step (step, multistep).
    step_size : int
        Epochs between steps (step); 0: a third of ``epochs``.
    milestones : tuple of float
        Epochs at which multistep multiplies by ``gamma``; empty: 50% and 75% of ``epochs``.
    warmup_epochs : float
        Length of the linear warm-up (0: none).
    warmup_start : float
        Fraction of ``base_lr`` the warm-up starts from.
    """

    kind: str
    base_lr: float
    epochs: int
    gamma: float = 0.1
    step_size: int = 0
    milestones: tuple[float, ...] = field(default_factory=tuple)
    warmup_epochs: float = 0.0
    warmup_start: float = 0.1

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.base_lr <= 0:
            raise ValueError(f"learning rate must be > 0; got {self.base_lr}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1; got {self.epochs}")

    def lr_at(self, t: float) -> float:
        """The learning rate at ``t`` epochs into the run (fractional: 3.25 is a quarter into the fourth epoch).

        The cosine form is SGDR's without restarts (Loshchilov & Hutter, ICLR 2017), from the end of the warm-up
        to ``epochs``.
        """
        if self.warmup_epochs > 0 and t < self.warmup_epochs:
            frac = t / self.warmup_epochs
            return self.base_lr * (self.warmup_start + (1.0 - self.warmup_start) * frac)
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            size = self.step_size or max(1, self.epochs // 3)
            return self.base_lr * self.gamma ** int(t // size)
        if self.kind == "multistep":
            milestones = self.milestones or (int(self.epochs * 0.5), int(self.epochs * 0.75))
            return self.base_lr * self.gamma ** sum(1 for m in milestones if t >= m)
        progress = min(max(t - self.warmup_epochs, 0.0) / max(self.epochs - self.warmup_epochs, 1e-9), 1.0)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
