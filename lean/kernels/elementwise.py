"""Element-wise kernels that fuse what NumPy would do in several passes over memory.

The ReLU backward reads the forward *output* (``dx = dy where y > 0``): the layer after keeps that array
anyway, so no separate mask is stored.
"""

import numpy as np

from ._checks import real_array
from ._config import JIT, U, float_dtype, njit, run_split

# Below this many elements one thread does the whole array: waking the other costs more than it saves (these
# passes are bound by memory bandwidth, which two cores here barely share out: 2M elements 180 -> 120 us).
_SPLIT_MIN = 1 << 18


@njit(**JIT)
def _add_relu(a, b, y, start, stop):
    zero = a.dtype.type(0)
    for i in range(start, stop):
        k = U(i)  # unsigned: no wraparound test, so the loop vectorizes
        v = a[k] + b[k]
        y[k] = zero if v < zero else v  # a NaN passes through, so a diverging run is seen


@njit(**JIT)
def _relu(x, y, start, stop):
    zero = x.dtype.type(0)
    for i in range(start, stop):
        k = U(i)
        v = x[k]
        y[k] = zero if v < zero else v


@njit(**JIT)
def _relu_backward(dy, y, dx, start, stop):
    zero = dy.dtype.type(0)
    for i in range(start, stop):
        k = U(i)
        dx[k] = dy[k] if y[k] > 0 else zero


@njit(cache=True, nogil=True)  # no fastmath: x / step must not become x * (1 / step), or codes move by one
def _fake_quantize(x, step, lo, hi, y, start, stop):
    for i in range(start, stop):
        k = U(i)
        q = np.rint(x[k] / step)
        q = lo if q < lo else hi if q > hi else q
        y[k] = q * step


def _run(kernel, size, *arrays):
    """``kernel(*arrays, start, stop)`` over ``range(size)``: in one call below ``_SPLIT_MIN`` elements, else
    one range per thread (``run_split``)."""
    if size < _SPLIT_MIN:
        kernel(*arrays, 0, size)
    else:
        run_split(lambda start, stop: kernel(*arrays, start, stop), size)


def _flat(x, name, dtype):
    return real_array(x, name, dtype).reshape(-1)


def add_relu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(a + b, 0) in one pass; ``a`` and ``b`` of one shape.

    Parameters
    ----------
    a, b : np.ndarray
        Operands of one shape (any), e.g. a residual block's two branches (n, h, w, c).

    Returns
    -------
    np.ndarray
        Shaped like ``a``; float32, or float64 if either operand is float64.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"add_relu operands differ in shape: {np.shape(a)} and {np.shape(b)}")
    dtype = float_dtype(a, b)
    y = np.empty(np.shape(a), dtype=dtype)
    _run(_add_relu, y.size, _flat(a, "add_relu operand a", dtype), _flat(b, "add_relu operand b", dtype),
         y.reshape(-1))
    return y


def relu(x: np.ndarray, in_place: bool = False) -> np.ndarray:
    """max(x, 0) on every element, NaN kept (NumPy's ``maximum`` runs on one thread).

    Parameters
    ----------
    x : np.ndarray
        Any shape.
    in_place : bool
        Write into ``x`` itself (a contiguous float32 or float64 array) and return it.

    Returns
    -------
    np.ndarray
        Shaped like ``x``; float32, or float64 if ``x`` is float64.
    """
    dtype = float_dtype(x)
    if in_place and not (isinstance(x, np.ndarray) and x.dtype == dtype and x.flags.c_contiguous):
        raise ValueError("relu in_place needs a contiguous float32 or float64 array")
    y = x if in_place else np.empty(np.shape(x), dtype=dtype)
    _run(_relu, y.size, _flat(x, "relu input x", dtype), y.reshape(-1))
    return y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy where y > 0, else 0: the ReLU gradient from its output ``y``.

    Parameters
    ----------
    dy : np.ndarray
        Gradient of the output, any shape.
    y : np.ndarray
        The forward output, shaped like ``dy``.

    Returns
    -------
    np.ndarray
        Shaped like ``dy``; float32, or float64 if ``dy`` is float64.
    """
    if np.shape(dy) != np.shape(y):
        raise ValueError(f"relu_backward shapes differ: {np.shape(dy)} and {np.shape(y)}")
    dtype = float_dtype(dy)
    y = np.asarray(y)
    dx = np.empty(np.shape(dy), dtype=dtype)
    _run(_relu_backward, dx.size, _flat(dy, "relu output gradient dy", dtype), _flat(y, "relu output y", y.dtype),
         dx.reshape(-1))
    return dx


def fake_quantize(x: np.ndarray, step: float, lo: float, hi: float) -> np.ndarray:
    """``clip(rint(x / step), lo, hi) * step`` as float32 in one pass (NumPy takes four): a layer input on a
    uniform grid of codes ``lo..hi`` (``lean.nn.layers.WeightedLayer``); the same values as the NumPy expression,
    computed in ``x``'s precision.

    Parameters
    ----------
    x : np.ndarray
        Any shape, float32 or float64.
    step : float
        The grid's step, > 0.
    lo, hi : float
        Lowest and highest code (whole numbers).

    Returns
    -------
    np.ndarray
        float32, shaped like ``x``.
    """
    dtype = float_dtype(x)
    flat = _flat(x, "fake_quantize input x", dtype)
    out = np.empty(flat.size, dtype=dtype)
    t = np.dtype(dtype).type
    _run(_fake_quantize, flat.size, flat, t(step), t(lo), t(hi), out)
    return out.reshape(np.shape(x)).astype(np.float32, copy=False)
