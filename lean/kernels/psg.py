"""Quantizers and the sign selector of predictive sign gradients (PSG, E2-Train; Wang et al., NeurIPS 2019).

- ``fixed_point(x, step, bits)``: round to nearest on a signed ``bits``-bit grid of spacing ``step`` (clipped;
  ``symmetric_step`` gives the per-tensor step that fits max |x|);
- ``msb_predictor(x, step, bits, keep_bits)``: the same codes with only their ``keep_bits`` most significant
  bits kept (the low bits truncated toward zero): the cheap operand of the gradient predictor;
- ``stochastic_round(x, step, bits, seed)``: round down or up with probability given by the remainder, so the
  rounding is unbiased; the random number of element ``i`` is a hash of ``(seed, i)``, so results do not depend
  on threads or call order;
- ``sign_select(predicted, accurate, tau)``: the PSG rule, the sign of the predicted gradient where its magnitude
  is at least ``tau``, else the sign of the accurate one; also returns how many entries fell back.

All are element-wise over flat arrays, in blocks run by ``prange``.
"""

import numpy as np

from ._checks import int_scalar, real_array, real_scalar
from ._config import JIT, PARALLEL_JIT, U, njit, prange

_BLOCK = 1 << 14


@njit(**JIT)
def _grid_code(v, inv_step, top):
    code = np.floor(v * inv_step + 0.5)
    return min(max(code, -top), top)


@njit(**PARALLEL_JIT)
def _fixed_point(x, out, step, top):
    n = x.size
    inv = 1.0 / step
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            out[k] = _grid_code(x[k], inv, top) * step


@njit(**PARALLEL_JIT)
def _msb_predictor(x, out, step, top, drop):
    n = x.size
    inv = 1.0 / step
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            code = _grid_code(x[k], inv, top)
            magnitude = np.floor(abs(code) / drop) * drop  # low bits truncated: toward zero
            out[k] = (magnitude if code >= 0 else -magnitude) * step


@njit(**JIT)
def _uniform(seed, i):
    """A uniform number in [0, 1) from (seed, i): SplitMix64's finalizer on their combination."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(i) + np.uint64(1)  # wraps modulo 2^64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**PARALLEL_JIT)
def _stochastic_round(x, out, step, top, seed):
    n = x.size
    inv = 1.0 / step
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            code = np.floor(x[k] * inv + _uniform(seed, i))
            out[k] = min(max(code, -top), top) * step


@njit(**PARALLEL_JIT)
def _sign_select(pred, acc, out, tau, fell_back):
    n = pred.size
    blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(blocks):
        count = 0
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            k = U(i)
            g = pred[k]
            if abs(g) < tau:
                g = acc[k]
                count += 1
            out[k] = 1.0 if g > 0 else (-1.0 if g < 0 else 0.0)
        fell_back[blk] = count


def _flat32(x, name):
    return real_array(x, name, np.float32).reshape(-1)


def _check_grid(step, bits):
    step = real_scalar(step, "quantization step", positive=True)
    bits = int_scalar(bits, "bits", 2, 24)
    return step, float(2 ** (bits - 1) - 1)


def symmetric_step(x: np.ndarray, bits: int) -> float:
    """The grid step that puts max |x| on the largest signed ``bits``-bit code (1.0 for an all-zero ``x``).

    Parameters
    ----------
    x : np.ndarray
        Any shape, real.
    bits : int
        Bits of the signed grid, >= 2.

    Returns
    -------
    float
        max |x| / (2^(bits - 1) - 1), or 1.0 when that is 0 (or ``x`` is empty).
    """
    bits = int_scalar(bits, "bits", lo=2)
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"symmetric_step input x must hold real numbers; got dtype {x.dtype}")
    top = float(np.abs(x).max()) if x.size else 0.0
    return top / (2 ** (bits - 1) - 1) if top > 0 else 1.0


def fixed_point(x: np.ndarray, step: float, bits: int) -> np.ndarray:
    """``x`` rounded to the nearest multiple of ``step`` within a signed ``bits``-bit range (float32 out).

    Parameters
    ----------
    x : np.ndarray
        Any shape, real; computed in float32.
    step : float
        Grid spacing, finite and > 0 (``symmetric_step``).
    bits : int
        Bits of the signed grid, 2..24: codes in -(2^(bits - 1) - 1) .. 2^(bits - 1) - 1.

    Returns
    -------
    np.ndarray
        Shaped like ``x``, float32.
    """
    step, top = _check_grid(step, bits)
    out = np.empty(np.shape(x), np.float32)
    _fixed_point(_flat32(x, "fixed_point input x"), out.reshape(-1), step, top)
    return out


def msb_predictor(x: np.ndarray, step: float, bits: int, keep_bits: int) -> np.ndarray:
    """``fixed_point`` codes keeping only their ``keep_bits`` most significant bits (magnitude truncated).

    Parameters
    ----------
    x : np.ndarray
        Any shape, real; computed in float32.
    step, bits
        As for ``fixed_point``.
    keep_bits : int
        Most significant bits kept, 1..bits.

    Returns
    -------
    np.ndarray
        Shaped like ``x``, float32.
    """
    step, top = _check_grid(step, bits)
    bits = int_scalar(bits, "bits")
    keep_bits = int_scalar(keep_bits, "keep_bits", 1, bits)
    out = np.empty(np.shape(x), np.float32)
    _msb_predictor(_flat32(x, "msb_predictor input x"), out.reshape(-1), step, top, float(2 ** (bits - keep_bits)))
    return out


def stochastic_round(x: np.ndarray, step: float, bits: int, seed: int) -> np.ndarray:
    """``x`` on the ``bits``-bit grid of ``step``, rounded up with probability equal to the remainder.

    Parameters
    ----------
    x : np.ndarray
        Any shape, real; computed in float32.
    step, bits
        As for ``fixed_point``.
    seed : int
        Any integer; element ``i``'s random number depends only on ``(seed, i)``.

    Returns
    -------
    np.ndarray
        Shaped like ``x``, float32.
    """
    step, top = _check_grid(step, bits)
    seed = int_scalar(seed, "seed")
    out = np.empty(np.shape(x), np.float32)
    _stochastic_round(_flat32(x, "stochastic_round input x"), out.reshape(-1), step, top, seed & 0x7FFFFFFFFFFFFFFF)
    return out


def sign_select(predicted: np.ndarray, accurate: np.ndarray, tau: float) -> tuple[np.ndarray, int]:
    """Returns ``(signs, fell_back)``: +-1/0 float32 signs by the PSG rule and the count of fallback entries.

    Parameters
    ----------
    predicted, accurate : np.ndarray
        The predicted and the accurate gradient, of one shape (any), real.
    tau : float
        Threshold, >= 0 (inf: every entry falls back).

    Returns
    -------
    signs : np.ndarray
        Shaped like ``predicted``, float32 in {-1, 0, 1}.
    fell_back : int
        How many entries took the accurate gradient's sign.
    """
    if np.shape(predicted) != np.shape(accurate):
        raise ValueError(f"predicted and accurate gradients differ in shape: {np.shape(predicted)} and "
                         f"{np.shape(accurate)}")
    tau = real_scalar(tau, "tau", nonnegative=True, finite=False)
    out = np.empty(np.shape(predicted), np.float32)
    pred, acc = _flat32(predicted, "predicted gradient"), _flat32(accurate, "accurate gradient")
    fell_back = np.zeros(max(1, (pred.size + _BLOCK - 1) // _BLOCK), np.int64)
    _sign_select(pred, acc, out.reshape(-1), tau, fell_back)
    return out, int(fell_back.sum())
