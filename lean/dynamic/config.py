"""Settings of the dynamic-inference training methods, registered with ``lean.train.config`` under their names
("dfs", "ddi"), so ``lean train --dfs TARGET`` and ``--ddi TARGET`` build them and a resumed run finds them; the
methods themselves are in ``lean.dynamic.dfs`` and ``lean.dynamic.ddi``.

Like ``lean.train.config``, this module imports no NumPy.
"""

from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError
from ..train.config import MethodConfig, option, register_method

DFS_BITS = "8,10,12,14,16"  # the authors' choices between skip and full precision


@register_method
@dataclass(frozen=True)
class DFSConfig(MethodConfig):
    """Dynamic fractional skipping (Shen et al., AAAI 2020): per image, each residual block skipped or run at a
    bit width its gate picks, aiming at ``target`` of the full network's computation."""

    name: ClassVar[str] = "dfs"
    target: float = option(0.5, "DFS: gate every residual block but the first to skip, or run at one of "
                           "--dfs-bits or full precision, per image, aiming at this computation (a fraction of "
                           "full precision; option cost (bits/32)^2, as the paper counts).", flag="--dfs",
                           kind=float, minimum=0, maximum=1, min_open=True, switch=True, metavar="TARGET")
    bits: str = option(DFS_BITS, "DFS: the bit widths offered between skip and full precision, comma-separated "
                       "(authors: 8,10,12,14,16).", flag="--dfs-bits", kind=str, metavar="BITS")
    beta: float = option(1e-3, "DFS: weight of the computation cost term (authors: 1e-5; see lean/dynamic/dfs.py).",
                         flag="--dfs-beta", kind=float, minimum=0)
    base_epochs: int | None = option(None, "DFS phase 1: epochs of the base network, gates off (default: half "
                                     "of --epochs).", flag="--dfs-base-epochs", kind=int, minimum=0, metavar="N")
    gate_epochs: int | None = option(None, "DFS phase 2: epochs of the gates alone, aiming at full computation "
                                     "(default: a twentieth of --epochs, at least 1); the rest is phase 3, jointly "
                                     "at the target.", flag="--dfs-gate-epochs", kind=int, minimum=0, metavar="N")

    def __post_init__(self):
        super().__post_init__()
        try:
            bits = tuple(int(part) for part in str(self.bits).split(",") if part.strip())
        except ValueError:
            raise ConfigError(f"--dfs-bits takes bit widths like 8,10,12,14,16; got {self.bits!r}") from None
        if not bits or any(not 2 <= b <= 16 for b in bits) or list(bits) != sorted(set(bits)):
            raise ConfigError(f"--dfs-bits must be increasing and each in 2..16; got {self.bits}")
        object.__setattr__(self, "bits", ",".join(str(b) for b in bits))

    @property
    def bit_widths(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.bits.split(","))

    def build(self):
        from .dfs import FractionalSkipping

        return FractionalSkipping(self.target, self.bit_widths, self.beta, self.base_epochs, self.gate_epochs)


@register_method
@dataclass(frozen=True)
class DDIConfig(MethodConfig):
    """Dual dynamic inference (Wang et al., IEEE JSTSP 2020): per image, channel-and-layer gates on every residual
    block or dense layer, aiming at ``target`` of the network's MACs, and early exits for budgeted inference."""

    name: ClassVar[str] = "ddi"
    target: float = option(0.5, "DDI: gate the channels of every residual block or dense layer per image (a block "
                           "whose channels are all dropped is skipped), aiming at this share of the network's "
                           "MACs, with early exits for `lean eval --budget`.", flag="--ddi", kind=float, minimum=0,
                           maximum=1, min_open=True, switch=True, metavar="TARGET")
    beta: float = option(20.0, "DDI: weight of the cost term (the executed share of MACs; see "
                         "lean/dynamic/ddi.py).", flag="--ddi-beta", kind=float, minimum=0)
    exits: int = option(4, "DDI: early exits before the net's own classifier, spaced by MACs (authors: 7 in "
                        "DenseNet-121).", flag="--ddi-exits", kind=int, minimum=0, metavar="N")
    gate_width: int = option(0, "DDI: channels of each gate's convs (authors: 64; 0: half the gated channels, rounded "
                             "up to a multiple of 8).", flag="--ddi-gate-width", kind=int, minimum=0, metavar="N")
    granularity: str = option("union", "DDI: how inference drops channels: union (a batch runs the channels any "
                              "image keeps), pattern (images grouped by mask), image (one image at a time).",
                              flag="--ddi-granularity", kind=str, metavar="HOW")

    def __post_init__(self):
        super().__post_init__()
        if self.granularity not in ("union", "pattern", "image"):
            raise ConfigError(f"--ddi-granularity must be union, pattern or image; got {self.granularity!r}")

    def build(self):
        from .ddi import DualDynamicInference

        return DualDynamicInference(self.target, self.beta, self.exits, self.gate_width, self.granularity)
