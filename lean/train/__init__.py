"""Training: the loop, the training-method protocol, E2-Train, the training-energy meter, runs and evaluation.

- ``TrainConfig`` and the method configs (``lean.train.config``): what a run is;
- ``start(config, out=...)``, ``resume(path, ...)``, ``evaluate(path)`` (``lean.train.run``): what ``lean train``
  and ``lean eval`` do;
- ``Trainer`` (``lean.train.loop``), ``TrainingMethod`` (``lean.train.methods``), ``EnergyMeter``
  (``lean.train.energy``), E2-Train's methods (``lean.train.e2train``).

Names are imported on first use, so ``lean.train.config`` (which the command line reads for its options) loads
without NumPy.
"""

from importlib import import_module

_NAMES = {
    "TrainConfig": "config", "MethodConfig": "config", "SMDConfig": "config", "SLUConfig": "config",
    "PSGConfig": "config", "RECIPE": "config", "register_method": "config", "methods_from_settings": "config",
    "Trainer": "loop", "accuracy": "loop",
    "TrainingMethod": "methods", "LayerOperandMethod": "methods",
    "EnergyMeter": "energy",
    "start": "run", "resume": "run", "evaluate": "run", "CheckpointData": "run", "set_batchnorm_scales": "run",
    "run": None,
}
_ERRORS = ("TrainingDiverged", "TrainingInterrupted", "TrainingError")


def __getattr__(name):
    if name in _NAMES:
        module = import_module(f".{_NAMES[name] or name}", __name__)
        return module if _NAMES[name] is None else getattr(module, name)
    if name in _ERRORS:
        return getattr(import_module("lean.errors"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [*_NAMES, *_ERRORS]
