"""Argument checks shared by the kernels' wrappers.

The compiled kernels run without bounds checks, so a wrapper checks what could make them read or write out of
bounds or compute a wrong result. A bad argument is a programming error of the calling code, not a user error:
these raise plain ``ValueError`` naming the argument, what was expected and what was given.
"""

import numpy as np

_REAL = "biuf"  # bool, signed and unsigned integers, floats: what converts to a number without surprises


def real_array(x, name: str, dtype) -> np.ndarray:
    """``x`` as a C-contiguous ``dtype`` array; refuses dtypes that are not real numbers (object, str, complex)."""
    a = np.asarray(x)
    if a.dtype.kind not in _REAL:
        raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def int_array(x, name: str, lo: int, hi: int, dtype) -> np.ndarray:
    """``x`` as a C-contiguous ``dtype`` array of integers in ``lo..hi``.

    Refuses non-integer dtypes (an empty array of any real dtype passes: ``[]`` is float64) and values outside
    the range: one min/max pass, skipped when the dtype cannot hold such values.
    """
    a = np.asarray(x)
    if a.size == 0 and a.dtype.kind in _REAL:
        return np.empty(a.shape, dtype)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array; got dtype {a.dtype}")
    info = np.iinfo(a.dtype)
    if info.min < lo or info.max > hi:
        a_min, a_max = int(a.min()), int(a.max())
        if a_min < lo or a_max > hi:
            raise ValueError(f"{name} must lie in {lo}..{hi}; got values in {a_min}..{a_max}")
    return np.ascontiguousarray(a, dtype=dtype)


def int_scalar(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int: an integer (or an integral float such as 2.0) in ``lo..hi`` (bounds optional)."""
    if isinstance(value, int) and not isinstance(value, bool):
        v = value  # any size: NumPy would hold a very large one as an object
    else:
        a = np.asarray(value)
        if a.ndim != 0 or a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not float(a).is_integer()):
            raise ValueError(f"{name} must be an integer; got {value!r}")
        v = int(a)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"in {lo}..{hi}" if lo is not None and hi is not None else (f">= {lo}" if hi is None else f"<= {hi}")
        raise ValueError(f"{name} must be {bounds}; got {v}")
    return v


def real_scalar(value, name: str, *, positive: bool = False, nonnegative: bool = False, finite: bool = True) -> float:
    """``value`` as a Python float: a real number, optionally > 0 or >= 0, finite unless ``finite=False``."""
    a = np.asarray(value)
    if a.ndim != 0 or a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real scalar; got {value!r}")
    v = float(a)
    if np.isnan(v) or (finite and not np.isfinite(v)):
        raise ValueError(f"{name} must be {'finite' if finite else 'a number'}; got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0; got {v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0; got {v}")
    return v


def shape_arg(shape, name: str, ndim: int) -> tuple:
    """``shape`` as a tuple of ``ndim`` non-negative ints (an array's shape given as an argument)."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{name} must be a shape of {ndim} ints; got {shape!r}") from None
    if len(dims) != ndim:
        raise ValueError(f"{name} must be a shape of {ndim} ints; got {shape!r}")
    return tuple(int_scalar(d, f"{name}[{i}]", lo=0) for i, d in enumerate(dims))


def vector(x, name: str, length: int, dtype) -> np.ndarray:
    """A per-channel vector: real numbers of shape ``(length,)``, as a C-contiguous ``dtype`` array."""
    a = real_array(x, name, dtype)
    if a.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},); got {a.shape}")
    return a
