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

from ..errors import ConfigError
from ..train.config import MethodConfig, option, register_method

DEFAULTS = {
    "retrain": {"lr": 0.01, "batch_size": 128, "seed": 0, "retrain_epochs": 0},
    # theta 0.025: the SmartExchange curve's best with the default re-training (benchmarks/README.md, issue 13)
    "smartexchange": {"theta": 0.025, "max_exponent": 5, "exponent_bits": 4, "basis_bits": 8, "row_threshold": None},
    "kmeans": {"clusters": 16, "sparsity": 0.0, "sparse_centre": "mean", "regularize_epochs": 0, "regularizer": "paper",
               "reg_lambda": 1e-4},
    "quantize": {"weight_bits": 8, "activation_bits": None, "per_channel": False, "scheme": "symmetric"},
}


@register_method
@dataclass(frozen=True)
class SlimmingConfig(MethodConfig):
    """Network slimming's L1 penalty on batch-norm scales (Liu et al., ICCV 2017)."""

    name: ClassVar[str] = "slim"
    # the authors' weight decay (network slimming's and early-bird's code: 1e-4), not lean's general 5e-4, which
    # pulls every batch-norm scale toward 0 beside the L1 penalty and kept early-bird masks from settling
    # (benchmarks/README.md, issue 14)
    recipe: ClassVar[dict] = {"weight_decay": 1e-4}
    strength: float = option(1e-4, "Network slimming: L1 strength on batch-norm scales (authors: 1e-4); runs "
                             "with the authors' weight decay 1e-4 unless --weight-decay is given.",
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
    ratio: str = option("0.5", "Early-bird tickets at these prune ratios, comma-separated (authors: 0.3,0.5,0.7; "
                        "needs --slim); the run prunes at --eb-prune-ratio.", flag="--early-bird", kind=str,
                        switch=True, metavar="RATIOS")
    epsilon: float = option(0.1, "Early-bird mask distance bound (authors: 0.1).", flag="--eb-epsilon",
                            kind=float, minimum=0)
    window: int = option(5, "Early-bird FIFO length, in epochs (authors: 5).", flag="--eb-window", kind=int,
                         minimum=2)
    precision: int | None = option(None, "Bits of the early-bird search phase (e.g. 8; default float32).",
                                   flag="--eb-precision", kind=int, minimum=2, maximum=16, metavar="BITS")
    prune_ratio: float | None = option(None, "The early-bird ratio whose ticket the run prunes at (default 0.5 if "
                                       "drawn, else the first).", flag="--eb-prune-ratio", kind=float, minimum=0,
                                       maximum=1, max_open=True, metavar="RATIO")
    masks: str = option("all", "Early-bird masks over every batch norm (all, the authors') or only the prunable "
                        "ones (lean's earlier rule).", flag="--eb-masks", kind=str, choices=("all", "prunable"))
    protect: float = option(0.1, "Share of each layer's strongest channels the early-bird pruning keeps whatever "
                            "the global threshold (those above the layer's 1 - P quantile, as the authors' "
                            "protective pruning: 0.1; 0: none).",
                            flag="--eb-protect", kind=float, minimum=0, maximum=1, max_open=True)
    # runs from before --eb-masks drew prunable-only masks; runs from before --eb-protect pruned unprotected
    stored_defaults: ClassVar[dict] = {"masks": "prunable", "protect": 0.0}

    def __post_init__(self):
        super().__post_init__()
        text = self.ratio if isinstance(self.ratio, str) else f"{float(self.ratio):g}"  # a stored float (older)
        try:
            ratios = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ConfigError(f"--early-bird takes prune ratios like 0.3,0.5,0.7; got {self.ratio!r}") from None
        if not ratios or any(not 0.0 <= r < 1.0 for r in ratios) or len(set(ratios)) != len(ratios):
            raise ConfigError(f"--early-bird ratios must be distinct and in [0, 1); got {text}")
        object.__setattr__(self, "ratio", ",".join(repr(r) for r in ratios))
        if self.prune_ratio is not None and self.prune_ratio not in ratios:
            raise ConfigError(f"--eb-prune-ratio {self.prune_ratio:g} is not one of the --early-bird ratios "
                              f"({text})")

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.ratio.split(","))

    def build(self):
        from .slimming import EarlyBirdTraining

        return EarlyBirdTraining(self.ratios, self.window, self.epsilon, self.precision, self.prune_ratio,
                                 every_batchnorm=self.masks == "all", protect=self.protect)
