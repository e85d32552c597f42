"""Training settings: the core run (``TrainConfig``), one small config per training method, and the recipe table.

This module (and the recipes) import no NumPy: the ``lean`` command builds its ``train`` options from these
dataclasses (names, defaults, ranges and help come from the fields' metadata, ``option``), so there is one
source of defaults.

- ``TrainConfig``: what every run has (net, data, schedule, optimizer, ...) and ``methods``, a tuple of method
  configs. Settings not given (their default is ``RECIPE``) take the **recipe** of the net
  (``lean.nets.recipes``, shown by ``lean nets`` and ``lean train --help``): the settings the benchmarks
  measured, so a plain command reproduces their figures; a training method may carry its own recipe entries
  (``MethodConfig.recipe``, over the net's: network slimming and early-bird take their authors' weight decay).
- ``MethodConfig``: the base of a training method's settings. Each method (SMD, SLU and PSG here; network
  slimming and early-bird in ``lean.compress.config``; later DFS and DDI) registers its config class under its
  ``name`` (``register_method``); ``build()`` makes the ``lean.train.methods.TrainingMethod`` that runs it.
  A run's checkpoint stores each method's settings under its name, with the module that defines it, so a resumed
  run rebuilds the same methods.

Checks raise ``lean.errors.ConfigError`` naming the command-line option (``--lr``), so one message serves the
command and a notebook.
"""

import importlib
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from ..errors import ConfigError
from ..nets.recipes import recipe

SCHEDULES = ("constant", "step", "multistep", "cosine")
OPTIMIZERS = ("sgd", "adam")


# ---------------------------------------------------------------------------------------------- options

def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, kind: type | None = None,
           minimum: float | None = None, maximum: float | None = None, min_open: bool = False,
           max_open: bool = False, choices: tuple | None = None, switch: bool = False, on_resume: str = "keep",
           recipe: bool = False, metavar: str | None = None):
    """A dataclass field that is also a command-line option (the metadata the ``lean`` command reads).

    ``flag``: the option's name (default ``--`` + the field name with dashes); ``kind``: int, float, str or
    bool; ``minimum``/``maximum`` (open with ``min_open``/``max_open``) and ``choices``: the valid values, checked
    here and shown by ``--help``; ``switch``: giving this option turns its method on; ``on_resume``: "keep" (a
    resumed run refuses a different value) or "change" (a resumed run takes the new value); ``recipe``: None
    means "the net's recipe".
    """
    meta = {"help": help, "flag": flag, "kind": kind, "minimum": minimum, "maximum": maximum,
            "min_open": min_open, "max_open": max_open, "choices": choices, "switch": switch,
            "on_resume": on_resume, "recipe": recipe, "metavar": metavar}
    return field(default=default, metadata=meta)


def flag_of(f) -> str:
    """The command-line name of a config field: ``--batch-size`` for ``batch_size`` unless the field says."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def range_text(meta: Mapping) -> str:
    """The valid range of an option as ``--help`` shows it: ``x>=1``, ``0<x<1`` (empty if unbounded)."""
    lo, hi = meta.get("minimum"), meta.get("maximum")
    low = None if lo is None else f"{lo:g}{'<' if meta.get('min_open') else '<='}"
    high = None if hi is None else f"{'<' if meta.get('max_open') else '<='}{hi:g}"
    if low and high:
        return f"{low}x{high}"
    if low:
        return f"x{'>' if meta.get('min_open') else '>='}{lo:g}"
    return f"x{high}" if high else ""


def _check_field(f, value):
    meta = f.metadata
    if value is None or not meta:
        return
    kind = meta.get("kind")
    name = flag_of(f)
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{name} must be a number; got {value!r}")
    if kind is int and int(value) != value:
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be finite; got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{name} must be one of {', '.join(meta['choices'])}; got {value!r}")
    lo, hi = meta.get("minimum"), meta.get("maximum")
    low_bad = lo is not None and (value <= lo if meta.get("min_open") else value < lo)
    high_bad = hi is not None and (value >= hi if meta.get("max_open") else value > hi)
    if low_bad or high_bad:
        raise ConfigError(f"{name} must be {range_text(meta)}; got {value!r}")


def check_fields(config) -> None:
    """Check every field of ``config`` against its metadata (type, choices, range)."""
    for f in fields(config):
        _check_field(f, getattr(config, f.name))


# ---------------------------------------------------------------------------------------------- recipes

class _Recipe:
    """The default of a setting that comes from the net's recipe (distinct from None, which some settings use:
    ``augment=None`` is the dataset's own choice)."""

    def __repr__(self):
        return "RECIPE"


RECIPE = _Recipe()


# ---------------------------------------------------------------------------------------------- methods

METHODS = {}  # method name -> its config class, in registration order


def register_method(cls: type) -> type:
    """Class decorator: make a ``MethodConfig`` subclass known under its ``name`` (for options and resume)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    METHODS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class MethodConfig:
    """Settings of one training method. Subclasses are frozen dataclasses whose fields are ``option``s."""

    name: ClassVar[str] = ""
    requires: ClassVar[tuple] = ()  # names of methods this one needs in the same run
    requires_message: ClassVar[str] = ""
    # settings a checkpoint written before the setting existed ran with, where today's default differs
    stored_defaults: ClassVar[dict] = {}
    # the run's recipe settings (``TrainConfig`` fields) this method takes when they are not given, over the
    # net's recipe: what the method's authors trained with, where lean's general recipe would change its result
    recipe: ClassVar[dict] = {}

    def __post_init__(self):
        check_fields(self)

    def build(self):
        """The ``lean.train.methods.TrainingMethod`` that runs these settings."""
        raise NotImplementedError

    def changes_nothing(self):
        """True for settings that are the run's default (``--precision float32``): a run leaves such a method
        out, so its checkpoint and its resume rules are those of a run without the option."""
        return False

    def to_dict(self):
        return asdict(self)


def method_from_dict(name: str, values: Mapping[str, Any], module: str | None = None,
                     stored: bool = False) -> MethodConfig:
    """The config of method ``name`` from its stored settings.

    Parameters
    ----------
    name : str
        The method's registered name ("smd", "early_bird", ...).
    values : mapping
        Its settings, by field name.
    module : str, optional
        The module that defines it, as a checkpoint stores it. A method is looked up by name like a plug-in:
        when it is not registered yet and its module is part of lean, that module is imported (it registers
        the method); this is not a code dependency of ``lean.train`` on the rooms above it.
    stored : bool
        ``values`` come from a checkpoint: a setting it lacks takes the method's ``stored_defaults`` (what the
        run ran with before the setting existed), not today's default, so a resumed run keeps its arithmetic.

    Returns
    -------
    MethodConfig
    """
    if name not in METHODS and module and module.split(".")[0] == "lean":
        importlib.import_module(module)
    cls = METHODS.get(name)
    if cls is None:
        where = f" (defined in {module}: import it first)" if module else ""
        raise ConfigError(f"unknown training method {name!r}{where}; known: {', '.join(METHODS) or 'none'}")
    if stored:
        values = {**cls.stored_defaults, **values}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"method {name} has no setting {', '.join(unknown)}")
    return cls(**values)


def methods_from_settings(settings: Mapping[str, Mapping[str, Any]]) -> tuple[MethodConfig, ...]:
    """Method configs from settings given by name, ``{"early_bird": {"ratio": 0.5, "window": 3}, ...}`` (what the
    command's options give): a method's settings without its switch option (``--eb-window`` without
    ``--early-bird``) are refused. Returned in registration order."""
    methods = []
    for name, cls in METHODS.items():
        given = dict(settings.get(name) or {})
        if not given:
            continue
        switches = [f for f in fields(cls) if f.metadata.get("switch")]
        if not any(f.name in given for f in switches):
            named = ", ".join(flag_of(f) for f in fields(cls) if f.name in given)
            raise ConfigError(f"{named} is a setting of {' or '.join(flag_of(f) for f in switches)}: give that too")
        methods.append(method_from_dict(name, given))
    unknown = sorted(set(settings) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown training method {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return tuple(methods)


# ------------------------------------------------------------------------------------------------- core

@dataclass
class TrainConfig:
    """The settings of a training run. Settings not given (default ``RECIPE``) take the net's recipe on the data
    (``lean.nets.recipes``), resolved when the config is made: to change the net or data of a config, make a new
    ``TrainConfig`` (``dataclasses.replace`` would keep the first net's recipe values)."""

    net: str = option("lenet5", "Network name (see `lean nets`).", kind=str, metavar="NAME")
    data: str = option("digits", "Dataset name (see `lean data`) or a .npz/.h5 file.", kind=str, metavar="NAME",
                       on_resume="relocate")
    epochs: int = option(RECIPE, "Epochs in all (a resumed run may extend them).", kind=int, minimum=1,
                                on_resume="change", recipe=True)
    batch_size: int = option(RECIPE, "Images per step.", kind=int, minimum=1, recipe=True)
    lr: float = option(RECIPE, "Learning rate (peak, after any warm-up).", kind=float, minimum=0,
                              min_open=True, recipe=True)
    optimizer: str = option(RECIPE, "Optimizer.", kind=str, choices=OPTIMIZERS, recipe=True)
    momentum: float = option(RECIPE, "SGD momentum.", kind=float, minimum=0, maximum=1, max_open=True,
                                    recipe=True)
    nesterov: bool = option(False, "Nesterov momentum.", kind=bool)
    schedule: str = option(RECIPE, "Learning-rate schedule.", kind=str, choices=SCHEDULES, recipe=True)
    warmup_epochs: float = option(0.0, "Linear learning-rate warm-up, in epochs.", kind=float, minimum=0)
    weight_decay: float = option(RECIPE, "L2 weight decay.", kind=float, minimum=0, recipe=True)
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy target.", kind=float, minimum=0,
                                    maximum=1, max_open=True)
    seed: int = option(0, "Seed of initialization, sample order, augmentation and every method's draws.",
                       kind=int, minimum=0)
    train_limit: int | None = option(None, "Use only the first N training images.", kind=int, minimum=1,
                                     metavar="N")
    augment: bool | None = option(RECIPE, "Random crop (pad 4) and horizontal flip in training.", kind=bool,
                                  recipe=True)
    width: float = option(1.0, "Channel-width multiplier (vgg, resnet, preresnet, mobilenetv2).", kind=float,
                          minimum=0, min_open=True)
    bn_init: float | None = option(None, "Start every batch-norm scale at this value (network slimming's code: "
                                   "0.5).", kind=float, minimum=0, min_open=True, metavar="G")
    eval_every: int = option(1, "Evaluate the test set every N epochs (and after the last).", kind=int, minimum=1,
                             on_resume="change", metavar="N")
    init: str | None = option(None, "Start from the weights of this checkpoint of the same net (a new run: e.g. "
                              "DFS's gates on a trained base network, with --dfs-base-epochs 0).", kind=str,
                              metavar="CKPT")
    methods: tuple = field(default=(), metadata={})

    def __post_init__(self):
        settings = recipe(self.net, self.data)
        for m in self.methods:  # a method's own recipe (network slimming: the authors' weight decay)
            settings.update(getattr(m, "recipe", {}))
        for f in fields(self):
            if getattr(self, f.name) is RECIPE:
                setattr(self, f.name, settings[f.name])
        check_fields(self)
        self.methods = tuple(m for m in self.methods if not (isinstance(m, MethodConfig) and m.changes_nothing()))
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ConfigError(f"a training method is given twice: {', '.join(names)}")
        for m in self.methods:
            if not isinstance(m, MethodConfig):
                raise ConfigError(f"methods must be MethodConfig objects; got {m!r}")
            missing = [r for r in m.requires if r not in names]
            if missing:
                raise ConfigError(m.requires_message or f"{m.name} needs {', '.join(missing)} in the same run")

    def method(self, name):
        """The config of method ``name`` in this run, or None."""
        return next((m for m in self.methods if m.name == name), None)

    def without(self, *names):
        """A copy without the named methods."""
        return replace(self, methods=tuple(m for m in self.methods if m.name not in names))

    def to_dict(self):
        """JSON-able settings (format 2): core fields, and the methods by name with their defining modules."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "methods"}
        out["methods"] = {m.name: m.to_dict() for m in self.methods}
        out["method_modules"] = {m.name: type(m).__module__ for m in self.methods}
        return out

    @classmethod
    def from_dict(cls, settings, format_version=2):
        """Settings as a checkpoint stores them (``format_version`` 1: the flat settings of lean before 2026-11-27,
        where methods were fields of the one config)."""
        settings = dict(settings)
        if format_version < 2:
            methods = legacy_methods(settings)
        else:
            modules = settings.get("method_modules", {})
            methods = [method_from_dict(n, v, modules.get(n), stored=True)
                       for n, v in settings.get("methods", {}).items()]
        core = {f.name: settings[f.name] for f in fields(cls) if f.name != "methods" and f.name in settings}
        return cls(**core, methods=tuple(methods))


def core_fields():
    """The fields of ``TrainConfig`` that are options (every one but ``methods``)."""
    return [f for f in fields(TrainConfig) if f.name != "methods"]


# Format 1 kept every method's settings as flat fields of the one config: (method, its field) per old field.
LEGACY_FIELDS = {"smd": ("smd", "probability"), "slu": ("slu", "target"), "slu_beta": ("slu", "beta"),
                 "psg": ("psg", "tau"), "psg_adaptive": ("psg", "adaptive"), "slim": ("slim", "strength"),
                 "early_bird": ("early_bird", "ratio"), "eb_epsilon": ("early_bird", "epsilon"),
                 "eb_window": ("early_bird", "window"), "eb_precision": ("early_bird", "precision")}
LEGACY_SWITCHES = {"smd": "smd", "slu": "slu", "psg": ("psg", "psg_adaptive"), "slim": "slim",
                   "early_bird": "early_bird"}


def legacy_methods(flat):
    """Method configs from format-1 flat settings (a method is on when its switch field was set)."""
    on = []
    for method, switch in LEGACY_SWITCHES.items():
        keys = switch if isinstance(switch, tuple) else (switch,)
        if any(flat.get(k) not in (None, 0, 0.0) for k in keys):
            on.append(method)
    values = {m: {} for m in on}
    for old, (method, name) in LEGACY_FIELDS.items():
        if method in values and old in flat:
            values[method][name] = flat[old]
    return [method_from_dict(m, values[m], "lean.compress.config" if m in ("slim", "early_bird") else None,
                             stored=True)
            for m in on]


# ------------------------------------------------------------------------------------------- E2-Train

@register_method
@dataclass(frozen=True)
class SMDConfig(MethodConfig):
    """E2-Train's stochastic mini-batch dropping: skip each step with this probability."""

    name: ClassVar[str] = "smd"
    probability: float = option(0.5, "E2-Train: probability of dropping each mini-batch (authors: 0.5; lean's "
                                "recipe: 0.3). With --slu 0.8 --psg 5e-5 (ResNet-20 half width, 10,000 "
                                "Fashion-MNIST images) all three lost 4.2, 1.4, 1.3 and 0.9-1.1 points at 10, 20, 40 "
                                "and 80 epochs for 92% less energy; with 0.5, 7.3, 4.4, 1.9 and 1.2-1.6 for 94% "
                                "(benchmarks/README.md, issue 14).",
                                flag="--smd", kind=float, minimum=0, maximum=1, min_open=True, max_open=True,
                                switch=True, metavar="P")
    dropped: str = option("skip", "What a dropped step does: nothing (skip) or an optimizer step on zero "
                          "gradients, momentum and weight decay only (momentum, the authors' code).",
                          flag="--smd-dropped", kind=str, choices=("skip", "momentum"))
    stored_defaults: ClassVar[dict] = {"dropped": "skip"}  # runs from before --smd-dropped skipped dropped steps

    def build(self):
        from .e2train import StochasticMiniBatchDropping

        return StochasticMiniBatchDropping(self.probability, momentum_on_dropped=self.dropped == "momentum")


@register_method
@dataclass(frozen=True)
class SLUConfig(MethodConfig):
    """E2-Train's selective layer update: skip-gated residual blocks aiming to run ``target`` of them."""

    name: ClassVar[str] = "slu"
    target: float = option(0.5, "E2-Train: skip-gate residual blocks, aiming to run this fraction of them.",
                           flag="--slu", kind=float, minimum=0, maximum=1, min_open=True, switch=True,
                           metavar="TARGET")
    beta: float = option(1e-3, "Weight of SLU's computation cost (authors: 1e-5; see lean/nn/gates.py).",
                         flag="--slu-beta", kind=float, minimum=0)

    def build(self):
        from .e2train import SelectiveLayerUpdate

        return SelectiveLayerUpdate(self.target, self.beta)


@register_method
@dataclass(frozen=True)
class PSGConfig(MethodConfig):
    """E2-Train's predictive sign gradient, with a fixed ``tau`` or an adaptive one (a fraction of max |g|)."""

    name: ClassVar[str] = "psg"
    tau: float | None = option(None, "E2-Train: predictive sign gradients with this fixed tau (authors: 5e-5).",
                               flag="--psg", kind=float, minimum=0, switch=True, metavar="TAU")
    adaptive: float | None = option(None, "E2-Train: predictive sign gradients, tau = this x max |prediction| "
                                    "per layer.", flag="--psg-adaptive", kind=float, minimum=0, maximum=1,
                                    switch=True, metavar="FRACTION")
    update: str = option("sign", "PSG's weight update: the bare sign, as the authors' code (with the run's lr), "
                         "or the sign scaled by the layer's mean |prediction| (lean's earlier choice).",
                         flag="--psg-update", kind=str, choices=("sign", "scaled"))
    stored_defaults: ClassVar[dict] = {"update": "scaled"}  # runs from before --psg-update used the scaled sign

    def __post_init__(self):
        super().__post_init__()
        if (self.tau is None) == (self.adaptive is None):
            raise ConfigError("give PSG one tau: a fixed --psg TAU or --psg-adaptive FRACTION")

    def build(self):
        from .e2train import PredictiveSignGradient

        return PredictiveSignGradient(tau=self.tau, tau_rel=self.adaptive, update=self.update)


@register_method
@dataclass(frozen=True)
class LowPrecisionConfig(MethodConfig):
    """Fixed-point training on every operand (``lean.train.e2train.LowPrecisionTraining``); with 16-bit gradients
    on the conv layers, PSG's control."""

    name: ClassVar[str] = "low_precision"
    bits: int = option(8, "Fixed-point training: inputs and weights on this many bits (PSG's control: 8).",
                       flag="--low-precision", kind=int, minimum=2, maximum=16, switch=True, metavar="BITS")
    gradient_bits: int | None = option(None, "Bits of the output gradients in --low-precision training (default: "
                                       "the same; PSG's control: 16).", flag="--lp-gradient-bits", kind=int,
                                       minimum=2, maximum=16, metavar="BITS")
    convs_only: bool = option(False, "--low-precision on the conv layers only, as PSG.", flag="--lp-convs-only",
                              kind=bool)

    def build(self):
        from .e2train import LowPrecisionTraining

        return LowPrecisionTraining(self.bits, self.gradient_bits, self.convs_only)


@register_method
@dataclass(frozen=True)
class PrecisionConfig(MethodConfig):
    """The arithmetic of the convolutions' products: float32, or bf16 operands with float32 sums."""

    name: ClassVar[str] = "precision"
    format: str = option("float32", "Products of the convolutions: float32, or bf16 operands with float32 sums "
                         "(the 3x3 stride-1 layers; fast where the CPU has AVX512_BF16; lean/train/precision.py).",
                         flag="--precision", kind=str, choices=("float32", "bf16"), switch=True, metavar="FORMAT")

    def changes_nothing(self):
        return self.format == "float32"

    def build(self):
        from .precision import Bfloat16Training

        return Bfloat16Training()
