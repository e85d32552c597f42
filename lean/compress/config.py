"""Defaults of ``lean.compress``: the compression methods' settings, and the training methods that live here
(network slimming and early-bird tickets).

- ``DEFAULTS``: one table of the compression commands' defaults, read by the functions of
  ``lean.compress.pipeline`` and by ``lean compress``'s options (so they cannot drift apart). SmartExchange's
  theta and the other methods' defaults are re-measured by a later issue (13); today's are kept.
- ``SlimmingConfig`` and ``EarlyBirdConfig``, registered with ``lean.train.config`` under their names ("slim",
  "early_bird"), so ``lean train --slim S --early-bird P`` builds them and a resumed run finds them; the methods
  themselves are in ``lean.compress.slimming``.

Like ``lean.train.config``, this module imports no NumPy.
"""

from dataclasses import dataclass
from typing import ClassVar

from ..train.config import MethodConfig, option, register_method

DEFAULTS = {
    "retrain": {"lr": 0.01, "batch_size": 128, "seed": 0, "retrain_epochs": 0},
    "smartexchange": {"theta": 5e-3, "max_exponent": 5, "exponent_bits": 4, "basis_bits": 8, "row_threshold": None},
    "kmeans": {"clusters": 16, "sparsity": 0.0, "sparse_centre": "mean", "regularize_epochs": 0, "regularizer": "paper",
               "reg_lambda": 1e-4},
    "quantize": {"weight_bits": 8, "activation_bits": None, "per_channel": False, "scheme": "symmetric"},
}


@register_method
@dataclass(frozen=True)
class SlimmingConfig(MethodConfig):
    """Network slimming's L1 penalty on batch-norm scales (Liu et al., ICCV 2017)."""

    name: ClassVar[str] = "slim"
    strength: float = option(1e-4, "Network slimming: L1 strength on batch-norm scales (authors: 1e-4).",
                             flag="--slim", kind=float, minimum=0, switch=True, metavar="S")

    def build(self):
        from .slimming import SlimmingPenalty

        return SlimmingPenalty(strength=self.strength)


@register_method
@dataclass(frozen=True)
class EarlyBirdConfig(MethodConfig):
    """Early-bird tickets (You et al., ICLR 2020): prune ``ratio`` of the channels when the masks settle."""

    name: ClassVar[str] = "early_bird"
    requires: ClassVar[tuple] = ("slim",)
    requires_message: ClassVar[str] = ("--early-bird draws its ticket from slimmed batch norms: give --slim too "
                                       "(e.g. 1e-4)")
    ratio: float = option(0.5, "Early-bird tickets: prune this fraction of channels when the ticket appears "
                          "(needs --slim).", flag="--early-bird", kind=float, minimum=0, maximum=1, max_open=True,
                          switch=True, metavar="RATIO")
    epsilon: float = option(0.1, "Early-bird mask distance bound (authors: 0.1).", flag="--eb-epsilon",
                            kind=float, minimum=0)
    window: int = option(5, "Early-bird FIFO length, in epochs (authors: 5).", flag="--eb-window", kind=int,
                         minimum=2)
    precision: int | None = option(None, "Bits of the early-bird search phase (e.g. 8; default float32).",
                                   flag="--eb-precision", kind=int, minimum=2, maximum=16, metavar="BITS")

    def build(self):
        from .slimming import EarlyBirdTraining

        return EarlyBirdTraining(self.ratio, self.window, self.epsilon, self.precision)
