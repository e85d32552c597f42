"""Low-bit quantization: uniform (symmetric or asymmetric, per tensor or per output channel) and power-of-two.

A quantizer maps a float tensor to integer ``codes`` plus what is needed to read them back (``scale``,
``zero_point``, or for powers of two the sign and exponent); ``dequantize`` gives the float values the codes
stand for. ``fake_quantize`` returns quantize-then-dequantize in one step for quantization-aware training,
whose backward is the straight-through estimator (Y. Bengio, N. Leonard, A. Courville, "Estimating or
Propagating Gradients Through Stochastic Neurons for Conditional Computation", arXiv:1308.3432, 2013) in its
clipped form: the gradient passes unchanged where the input lies inside the representable range and is zero
where it was clipped.

- Symmetric, ``bits`` b: scale = limit / (2^(b-1) - 1) with limit = max|x| (nothing clipped; weights) or a given
  clipping range (``limit``: values beyond it take the extreme code and pass no gradient), codes in
  [-(2^(b-1) - 1), 2^(b-1) - 1], zero exact. (Layer inputs have their own quantizer in
  ``lean.nn.layers.WeightedLayer``, unsigned when the input is never negative, whose range in quantization-aware
  training is a moving average of each batch's max|x|, as in Jacob et al., CVPR 2018, arXiv:1712.05877,
  section 3.1: a batch beyond it is clipped, with the straight-through mask of clipped values.)
- Asymmetric: scale = (max - min) / (2^b - 1), zero_point = round(-min / scale), codes in [0, 2^b - 1].
- Power of two: each non-zero to the nearest signed power of two *in the linear domain* (the midpoint
  between 2^e and 2^(e+1) is 1.5 * 2^e), exponents clipped to [max_exponent - 2^exponent_bits + 2,
  max_exponent]; magnitudes below half the smallest power become zero. Codes: sign in {-1, 0, 1}, exponent.
  This is SmartExchange's coefficient quantization (Zhao et al., ISCA 2020, step 1 of its algorithm).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..nn.compressed import pow2_nearest


@dataclass(frozen=True)
class Quantized:
    """Integer codes and how to read them: value = (codes - zero_point) * scale (broadcast along ``axis``).

    Attributes
    ----------
    codes : np.ndarray
        Integer codes in the input's shape: int8 up to 8 bits (7 when asymmetric), else int16.
    scale : np.ndarray
        float32, () for one scale per tensor or (k,) for one per output channel.
    zero_point : np.ndarray
        float32 integers, shaped as ``scale`` (0 for symmetric quantization).
    bits : int
        Bits per code, 2..16.
    axis : int or None
        None: one scale for the tensor; 0: one per output channel (axis 0).
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    axis: int | None = None  # None: one scale for the tensor; 0: one per output channel

    def dequantize(self) -> np.ndarray:
        """The values the codes stand for: float32, in the shape of ``codes``."""
        shape = [1] * self.codes.ndim
        if self.axis is not None:
            shape[self.axis] = -1
        scale = np.asarray(self.scale, np.float32).reshape(shape)
        zero = np.asarray(self.zero_point, np.float32).reshape(shape)
        return ((self.codes.astype(np.float32) - zero) * scale).astype(np.float32)

    @property
    def storage_bits(self) -> int:
        """Bits to store the tensor: codes at ``bits`` each plus 32-bit scales and zero points."""
        per_channel = np.size(self.scale)
        return int(self.codes.size * self.bits + 32 * per_channel * 2)


def _code_dtype(bits):
    return np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32


def _check_bits(bits):
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in 2..16; got {bits!r}")


def _reduce(x, axis, fn):
    if axis is None:
        return np.asarray(fn(x))
    if axis != 0:
        raise ValueError(f"per-channel quantization is along axis 0 (output channels); got axis={axis}")
    return fn(x.reshape(x.shape[0], -1), axis=1)


def _broadcast(v, x, axis):
    return v if axis is None else v.reshape((-1,) + (1,) * (x.ndim - 1))


def quantize_uniform(x: np.ndarray, bits: int = 8, symmetric: bool = True, axis: int | None = None,
                     limit: float | np.ndarray | None = None) -> Quantized:
    """Uniform quantization of ``x``; ``axis=0`` gives one scale per output channel.

    Parameters
    ----------
    x : np.ndarray
        Any shape, e.g. a weight (k, c/groups, r, s) or (k, n), or activations (n, h, w, c); computed in float32.
    bits : int
        Bits per code, 2..16.
    symmetric : bool
        True: scale = max|x| / (2^(bits-1) - 1), zero point 0, signed codes. False: scale and zero point from
        min(x, 0) and max(x, 0), codes in [0, 2^bits - 1].
    axis : int or None
        None for one scale per tensor; 0 for one per output channel (per index of axis 0).
    limit : float or np.ndarray or None
        Symmetric only: the clipping range, a float or one per index of ``axis`` (> 0), so scale =
        limit / (2^(bits-1) - 1) and values beyond +-limit take the extreme code (as an activation quantizer
        with a calibrated range does); None: limit = max|x|, nothing clipped.

    Returns
    -------
    Quantized
        codes in ``x``'s shape; scale and zero_point () or (x.shape[0],).

    Raises
    ------
    ConfigError
        ``bits`` not an integer in 2..16.
    ValueError
        ``axis`` not None or 0; ``limit`` given for asymmetric quantization, or not > 0.
    """
    _check_bits(bits)
    x = np.asarray(x, dtype=np.float32)
    if limit is not None and (not symmetric or not np.all(np.asarray(limit) > 0)):
        raise ValueError(f"a clipping limit needs symmetric quantization and a value > 0; got {limit!r}")
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        if limit is None:
            top = _reduce(np.abs(x), axis, np.max)
        else:
            want = () if axis is None else (x.shape[0],)
            top = np.asarray(limit, np.float32)
            if top.size != 1 and top.shape != want:
                raise ValueError(f"limit must be one number{'' if axis is None else f' or {want[0]} numbers'}; "
                                 f"got shape {top.shape}")
            top = np.broadcast_to(top.reshape(()) if top.size == 1 else top, want)
        scale = top / qmax
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        zero = np.zeros_like(scale)
        codes = np.clip(np.rint(x / _broadcast(scale, x, axis)), -qmax, qmax)
        # unsigned codes need one more bit of range than signed; store signed in the narrowest type
        return Quantized(codes.astype(_code_dtype(bits)), scale, zero, bits, axis)
    qmax = 2 ** bits - 1
    lo = np.minimum(_reduce(x, axis, np.min), 0.0)
    hi = np.maximum(_reduce(x, axis, np.max), 0.0)
    scale = ((hi - lo) / qmax).astype(np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    zero = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.float32)
    codes = np.clip(np.rint(x / _broadcast(scale, x, axis)) + _broadcast(zero, x, axis), 0, qmax)
    return Quantized(codes.astype(np.int16 if bits > 7 else np.int8), scale, zero, bits, axis)


def exponent_range(max_exponent: int = 5, exponent_bits: int = 4) -> tuple[int, int]:
    """Exponents a ``exponent_bits``-bit code can name below ``max_exponent`` (one code is kept for zero).

    Parameters
    ----------
    max_exponent : int
        The largest exponent.
    exponent_bits : int
        Bits of an exponent code, >= 1.

    Returns
    -------
    tuple of int
        ``(e_min, e_max)`` = (max_exponent - 2^exponent_bits + 2, max_exponent), both inclusive.

    Raises
    ------
    ConfigError
        ``exponent_bits`` < 1.
    """
    if exponent_bits < 1:
        raise ConfigError(f"exponent_bits must be >= 1; got {exponent_bits}")
    return max_exponent - (2 ** exponent_bits - 2), max_exponent


def pow2_round(x: np.ndarray, max_exponent: int = 5, exponent_bits: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Nearest signed power of two in the linear domain; returns ``(sign, exponent)`` int8 arrays.

    ``sign`` is 0 where the value rounds to zero (magnitude below half the smallest power). The value is
    ``sign * 2.0 ** exponent``. The rounding itself is ``lean.nn.compressed.pow2_nearest``, shared with the
    compressed layers that train through it.

    Parameters
    ----------
    x : np.ndarray
        Any shape; computed in float64.
    max_exponent, exponent_bits : int
        The exponent range, as for ``exponent_range``.

    Returns
    -------
    sign : np.ndarray
        int8 in {-1, 0, 1}, ``x``'s shape.
    exponent : np.ndarray
        int8 in [e_min, e_max], ``x``'s shape (e_min where ``sign`` is 0).
    """
    x = np.asarray(x, dtype=np.float64)
    e_min, e_max = exponent_range(max_exponent, exponent_bits)
    values, e = pow2_nearest(x, e_min, e_max)
    sign = np.sign(values)
    return sign.astype(np.int8), np.where(sign != 0, e, e_min).astype(np.int8)


def pow2_value(sign: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``sign * 2**exponent`` as float32, in the broadcast shape of ``sign`` and ``exponent``."""
    return (sign.astype(np.float32) * np.exp2(exponent.astype(np.float32))).astype(np.float32)


def quantize_pow2(x: np.ndarray, max_exponent: int = 5, exponent_bits: int = 4) -> np.ndarray:
    """Power-of-two values of ``x`` as dequantized numbers: float32 in ``x``'s shape (``pow2_round`` then
    ``pow2_value``)."""
    return pow2_value(*pow2_round(x, max_exponent, exponent_bits))


def fake_quantize(x: np.ndarray, bits: int = 8, symmetric: bool = True,
                  axis: int | None = None,
                  limit: float | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quantize-dequantize, and the straight-through mask: 1 where ``x`` was inside the clipping range.

    The backward of the surrogate is ``dx = dy * mask`` (straight-through estimator).

    Parameters
    ----------
    x : np.ndarray
        Any shape (a weight (k, c/groups, r, s) or activations (n, h, w, c)).
    bits, symmetric, axis, limit
        As for ``quantize_uniform`` (with ``limit``, values beyond it are clipped and get mask 0).

    Returns
    -------
    xq : np.ndarray
        float32, ``x``'s shape: the values ``x`` is rounded to.
    mask : np.ndarray
        float32 0/1, ``x``'s shape: the straight-through gradient's pass mask.

    Notes
    -----
    The straight-through estimator of Bengio et al., 2013 (arXiv:1308.3432), clipped: no gradient where the
    forward pass saturated.
    """
    q = quantize_uniform(x, bits, symmetric, axis, limit)
    xq = q.dequantize()
    # straight-through (Bengio et al., 2013): d xq / d x taken as 1 inside the range, 0 where clipped
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        limit = _broadcast(np.asarray(q.scale) * qmax, xq, axis)
        mask = (np.abs(x) <= limit * (1 + 1e-6)).astype(np.float32)
    else:
        lo = _broadcast(-np.asarray(q.zero_point) * q.scale, xq, axis)
        hi = _broadcast((2 ** bits - 1 - np.asarray(q.zero_point)) * q.scale, xq, axis)
        mask = ((x >= lo - 1e-6) & (x <= hi + 1e-6)).astype(np.float32)
    return xq, mask
