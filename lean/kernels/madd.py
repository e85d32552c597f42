"""int8 convolution on AVX2's 16-bit multiply-add (``vpmaddwd``), for CPUs without AVX-512 VNNI.

``vpmaddwd a, b`` multiplies 16 pairs of int16 and adds each pair into one of 8 int32 lanes: 16 multiply-adds
an instruction, against 8 for an AVX2 float32 FMA, and CPUs with two integer multiply ports run two a cycle.
The codes are widened to int16 once (activations while they are padded, weights when they are packed), and the
convolution is the VNNI path's (``intsimd._conv``, register tiles of up to 8 pixels x vectors of 8 channels:
AVX2 has 16 registers) with 8 lanes and 2 codes a group instead of 16 and 4:

1. ``_prepare_input``: the activation codes as int16, padded with zeros, channels rounded up to even (signed
   int16 holds int8 and uint8 codes alike: no offset, no correction).
2. ``_pack_weights``: (tiles of 8 output channels, pairs of patch codes, 8 lanes, 2 codes), one 32-byte vector
   per (tile, pair), the pairs ordered (kernel row, kernel column, channel) as the padded input lays them out,
   so a kernel row's patch is one contiguous run of the input (no im2col copy).
3. ``intsimd.itile_dot``: each weight vector meets every pixel's broadcast code pair (``vpmaddwd`` then
   ``vpaddd``).
4. ``intsimd.itile_store_rescaled``: int32 lanes -> float32 x (activation scale x weight scale), into the output.

Why not ``vpmaddubsw`` (unsigned x signed bytes, 32 products an instruction): it adds each pair of products
into int16 with saturation, and two products of a uint8 and an int8 code reach 2 x 255 x 128 > 32,767, so the
sums would not be exact, while lean's integer paths must give the fake-quantized model's results exactly.
Exact for the same patch lengths as the int32 kernel (``intconv._patch_limits``). Used where the CPU has AVX2
and Numba compiles for it (``MADD_AVAILABLE``: lean's vector kernels run at 8 or 16 lanes) and VNNI is absent.
"""

import numpy as np

from . import simd
from .intsimd import INSTRUCTIONS
from .vnni import run_tiles

_LANES = 8

MADD_AVAILABLE = simd.SIMD_WIDTH >= 8  # AVX2 (or AVX-512, which includes it) and Numba compiling for it


def _prepare_input(x_codes, padding, c_even):
    """The codes as int16 (n, h + 2p, w + 2p, c_even), zero-padded."""
    n, h, w, c = x_codes.shape
    x = np.zeros((n, h + 2 * padding, w + 2 * padding, c_even), dtype=np.int16)
    x[:, padding:padding + h, padding:padding + w, :c] = x_codes
    return x


def _pack_weights(w_codes, c_even):
    """int8 (k, c, r, s) -> int16 (tiles, r*s*c_even/2, 8, 2)."""
    k, c, r, s = w_codes.shape
    tiles = -(-k // _LANES)
    rows = np.zeros((tiles * _LANES, r, s, c_even), dtype=np.int16)
    rows[:k, :, :, :c] = w_codes.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(rows.reshape(tiles, _LANES, r * s * c_even // 2, 2).transpose(0, 2, 1, 3))


def madd_conv2d(x_codes, w_codes, scale, stride, padding, oh, ow):
    """Rescaled int8 convolution: float32 (n, oh, ow, k) = scale[k] * sum of integer products. Checked inputs.

    ``x_codes`` int8 or uint8 channels-last (n, h, w, c), ``w_codes`` int8 (k, c, r, s), ``scale`` float32
    (k,); the caller (``int8_conv2d``) has validated shapes, stride, padding and the patch length.
    """
    if not MADD_AVAILABLE:
        raise RuntimeError("this CPU (or Numba's target) has no AVX2")
    n = x_codes.shape[0]
    k, c, r, s = w_codes.shape
    c_even = c + c % 2
    x = _prepare_input(x_codes, padding, c_even)
    packed = _pack_weights(w_codes, c_even)
    k_padded = -(-k // _LANES) * _LANES
    scale_padded = np.zeros(k_padded, dtype=np.float32)
    scale_padded[:k] = scale
    return run_tiles(x, packed, np.zeros(k_padded, np.int32), scale_padded, n, oh, ow, k, r, s, stride,
                     2 * c_even, _LANES, 8, INSTRUCTIONS["madd"])
