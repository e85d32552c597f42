"""lean's own exception types: errors a user can act on, as opposed to bugs.

Every error lean raises because of what it was given (an unknown name, a bad option value, a missing or damaged
file, a dataset in the wrong shape, a run that diverged) is a ``LeanError``; its message says what is wrong and,
where there is one, what to do. The ``lean`` command prints a ``LeanError`` (and a file-system ``OSError``) as one
``error:`` line and exits non-zero; any other exception is a bug and keeps its traceback (``--debug`` or
``LEAN_DEBUG=1`` shows the traceback of a ``LeanError`` too).

The subclasses that describe a bad value also derive from ``ValueError`` (and the training ones from
``RuntimeError``), so code that catches those keeps working. The kernels and layers raise plain ``ValueError``
for arguments of the wrong shape or dtype: for a program calling them that is a programming error, and for the
``lean`` command it is a bug in lean, shown with its traceback.

This module imports nothing, so ``import lean`` stays light.
"""


class LeanError(Exception):
    """Base of every error a user can act on; the message names the thing that is wrong."""


class ConfigError(LeanError, ValueError):
    """An unknown name, an option value out of range, or options that do not fit together."""


class DataError(LeanError, ValueError):
    """A dataset is unknown, missing, corrupt or malformed."""


class CheckpointError(LeanError, ValueError):
    """A checkpoint is missing, unreadable, damaged, not a lean checkpoint, or not usable as asked."""


class OutputError(LeanError, OSError):
    """An output file cannot be written: it exists (without ``force``), another run holds it, or its folder is
    missing or read-only. Raised before any work starts."""


class HardwareModelError(LeanError, ValueError):
    """An unknown workload or accelerator, a parameter out of range, or a mapping or layer file that does not fit."""


class TrainingError(LeanError, RuntimeError):
    """A training run stopped."""


class TrainingDiverged(TrainingError):
    """The loss became NaN, infinite or exploded; the last good (finite) checkpoint is kept as it was."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C: a resumable checkpoint was written (if the run has an output file)."""


__all__ = ["LeanError", "ConfigError", "DataError", "CheckpointError", "OutputError", "HardwareModelError",
           "TrainingError", "TrainingDiverged", "TrainingInterrupted"]
