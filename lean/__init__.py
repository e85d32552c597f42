"""lean: train, compress and cost deep networks on a plain CPU with NumPy and Numba.

Importing ``lean`` is light on purpose (no Numba compile, no NumPy import) and changes nothing in the process:
no environment variable, thread pool or BLAS limit is set until ``lean.configure()`` is called (the ``lean``
command and ``lean.train.Trainer`` call it). Import the rooms you need: ``lean.nn``, ``lean.nets``, ``lean.data``,
``lean.train``, ``lean.compress``, ``lean.hw``; errors a user can act on are ``lean.LeanError`` (see
``lean.errors``). ``ARCHITECTURE.md`` maps the package.
"""

from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    HardwareModelError,
    LeanError,
    OutputError,
    TrainingDiverged,
    TrainingError,
    TrainingInterrupted,
)

__version__ = "0.1.0"


def configure(threads: int | None = None, *, blas_threads: int | None = 1, free_memory_reuse: bool = True) -> dict:
    """Set up threads the way lean's kernels are fastest (``lean.kernels.configure``, which says what it sets and
    what a program gets without it); returns the settings in effect."""
    from .kernels import configure as _configure

    return _configure(threads, blas_threads=blas_threads, free_memory_reuse=free_memory_reuse)


__all__ = ["__version__", "configure", "LeanError", "ConfigError", "DataError", "CheckpointError", "OutputError",
           "HardwareModelError", "TrainingError", "TrainingDiverged", "TrainingInterrupted"]
