"""Element-wise kernels that fuse what NumPy would do in several passes over memory.

The ReLU backward reads the forward *output* (``dx = dy where y > 0``): the layer after keeps that array
anyway, so no separate mask is stored.
"""

import numpy as np

from ._checks import real_array
from ._config import JIT, PARALLEL_JIT, U, float_dtype, njit, prange

_BLOCK = 1 << 14
# below this many elements a parallel launch costs more than the loop (measured ~0.5 ms a call here on
# LeNet-5's small activations); a serial twin of each kernel runs instead
_PARALLEL_MIN = 1 << 17


def _add_relu_body(a, b, y):
    n = a.size
    zero = a.dtype.type(0)
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)  # unsigned: no wraparound test, so the loop vectorizes
            v = a[k] + b[k]
            y[k] = zero if v < zero else v  # a NaN passes through, so a diverging run is seen


def _relu_body(x, y):
    n = x.size
    zero = x.dtype.type(0)
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            v = x[k]
            y[k] = zero if v < zero else v


def _relu_backward_body(dy, y, dx):
    n = dy.size
    zero = dy.dtype.type(0)
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            dx[k] = dy[k] if y[k] > 0 else zero


_add_relu = njit(**PARALLEL_JIT)(_add_relu_body)
_add_relu_serial = njit(**JIT)(_add_relu_body)
_relu = njit(**PARALLEL_JIT)(_relu_body)
_relu_serial = njit(**JIT)(_relu_body)
_relu_backward = njit(**PARALLEL_JIT)(_relu_backward_body)
_relu_backward_serial = njit(**JIT)(_relu_backward_body)


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
    kernel = _add_relu if y.size >= _PARALLEL_MIN else _add_relu_serial
    kernel(_flat(a, "add_relu operand a", dtype), _flat(b, "add_relu operand b", dtype), y.reshape(-1))
    return y


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) on every element, NaN kept (NumPy's ``maximum`` runs on one thread).

    Parameters
    ----------
    x : np.ndarray
        Any shape.

    Returns
    -------
    np.ndarray
        Shaped like ``x``; float32, or float64 if ``x`` is float64.
    """
    dtype = float_dtype(x)
    y = np.empty(np.shape(x), dtype=dtype)
    kernel = _relu if y.size >= _PARALLEL_MIN else _relu_serial
    kernel(_flat(x, "relu input x", dtype), y.reshape(-1))
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
    kernel = _relu_backward if dx.size >= _PARALLEL_MIN else _relu_backward_serial
    kernel(_flat(dy, "relu output gradient dy", dtype), _flat(y, "relu output y", y.dtype), dx.reshape(-1))
    return dx
