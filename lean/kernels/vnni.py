"""int8 convolution on the CPU's integer dot-product instruction (AVX-512 VNNI ``vpdpbusd``), without im2col.

``vpdpbusd acc, a, b`` adds, in each of 16 int32 lanes, the four products of four unsigned bytes of ``a`` with
four signed bytes of ``b``: 64 multiply-adds in one instruction, against 16 for a float32 FMA of the same width.
NumPy offers no integer matrix product that uses it and Numba has no vector types: the kernel runs on the int32
register tiles of ``intsimd.py`` (LLVM IR emitted directly), shared with the AVX2 path (``madd.py``).

The convolution (``vnni_conv2d``), channels-last:
1. The activations' int8 codes become unsigned by adding 128 (``_prepare_input``; the instruction wants one
   unsigned operand; uint8 codes, such as a ReLU's output, are taken as they are); the input is padded once
   with code 128 (= zero) and channels rounded up to a multiple of four. Since
   sum((x + 128) w) = sum(x w) + 128 sum(w), the kernel subtracts ``128 * sum(w)`` per output channel
   (``correction``) at the end.
2. The weights are packed once (``_pack_weights``) as (tiles of 16 output channels, groups of 4 patch bytes,
   16 lanes, 4 bytes): one 64-byte vector per (tile, group), the patch bytes ordered (kernel row, kernel
   column, channel) as the padded input lays them out, so a kernel row's patch is one contiguous run of
   ``s * c`` bytes of the input and no im2col copy is made.
3. ``intsimd._conv``: a register tile of up to 16 output pixels x 1-4 vectors of 16 output channels
   (``direct.tile_widths``) runs over the patch, one 4-byte group a step: each weight vector is loaded once and
   meets every pixel's broadcast group (``itile_dot``). Before: one 8-pixel tile whose addresses were
   recomputed every step (45-139 GMAC/s a thread here, against ~530 for the bare instruction).
4. ``itile_store_rescaled``: (acc - correction) -> float32 x (activation scale x weight scale) straight into the
   output; output channels are padded to a multiple of 16 (zero weights) and the extra ones dropped.

Exactness: wrapping int32 arithmetic, so the result is exact whenever the true sum fits in int32 (patches of
at most 131,072 int8 or 65,793 uint8 codes, checked by ``int8_conv2d``). Only where the running machine has
AVX-512 VNNI (``VNNI_AVAILABLE``) and Numba compiles for it; ``lean.kernels.int8_conv2d`` falls back to its
other methods elsewhere.
"""

import numba
import numpy as np
from llvmlite import binding as llvm_binding

from ._config import run_split
from .direct import tile_widths
from .intsimd import INSTRUCTIONS, _conv, as_bytes
from .simd import size, token

_LANES = 16


def _host_has_vnni():
    """True when this CPU has AVX-512 VNNI (with F and BW) and Numba generates code for this CPU."""
    if numba.config.CPU_NAME not in (None, "host"):  # e.g. NUMBA_CPU_NAME=generic for portable caches
        return False
    if numba.config.DISABLE_JIT:  # the intrinsics exist only in compiled code
        return False
    try:
        features = llvm_binding.get_host_cpu_features()
    except RuntimeError:
        return False
    return all(features.get(name, False) for name in ("avx512f", "avx512bw", "avx512vnni"))


VNNI_AVAILABLE = _host_has_vnni()


def _prepare_input(x_codes, padding, c_padded, offset):
    """Codes + ``offset`` as uint8 (n, h + 2p, w + 2p, c_padded), padded with ``offset`` (code zero): int8 codes
    take offset 128, uint8 codes 0."""
    n, h, w, c = x_codes.shape
    x = np.full((n, h + 2 * padding, w + 2 * padding, c_padded), offset, dtype=np.uint8)
    inner = x[:, padding:padding + h, padding:padding + w, :c]
    if offset:
        np.bitwise_xor(x_codes.view(np.uint8), np.uint8(0x80), out=inner)  # int8 + 128, bit for bit
    else:
        inner[...] = x_codes
    return x


def _pack_weights(w_codes, c_padded, offset):
    """int8 (k, c, r, s) -> packed (tiles, r*s*c_padded/4, 16, 4) and ``offset * sum(w)`` per (padded) channel."""
    k, c, r, s = w_codes.shape
    tiles = -(-k // _LANES)
    rows = np.zeros((tiles * _LANES, r, s, c_padded), dtype=np.int8)
    rows[:k, :, :, :c] = w_codes.transpose(0, 2, 3, 1)
    packed = rows.reshape(tiles, _LANES, r * s * c_padded // 4, 4).transpose(0, 2, 1, 3)
    correction = offset * rows.reshape(tiles * _LANES, -1).sum(axis=1, dtype=np.int32)
    return np.ascontiguousarray(packed), correction


def vnni_conv2d(x_codes, w_codes, scale, stride, padding, oh, ow):
    """Rescaled int8 convolution: float32 (n, oh, ow, k) = scale[k] * sum of integer products. Checked inputs.

    ``x_codes`` int8 or uint8 (unsigned activations, e.g. after a ReLU: no offset needed) channels-last
    (n, h, w, c), ``w_codes`` int8 (k, c, r, s), ``scale`` float32 (k,); the caller (``int8_conv2d``) has
    validated shapes, stride, padding and the patch length.
    """
    if not VNNI_AVAILABLE:
        raise RuntimeError("this CPU (or Numba's target) has no AVX-512 VNNI")
    n = x_codes.shape[0]
    k, c, r, s = w_codes.shape
    c_padded = -(-c // 4) * 4
    offset = 128 if x_codes.dtype == np.int8 else 0  # the instruction multiplies unsigned bytes
    x = _prepare_input(x_codes, padding, c_padded, offset)
    packed, correction = _pack_weights(w_codes, c_padded, offset)
    scale_padded = np.zeros(correction.size, dtype=np.float32)
    scale_padded[:k] = scale
    return run_tiles(x, packed, correction, scale_padded, n, oh, ow, k, r, s, stride, c_padded, _LANES,
                     16, INSTRUCTIONS["vnni"])


def run_tiles(x, packed, correction, scale, n, oh, ow, k, r, s, stride, pixel_bytes, lanes, registers,
              instruction):
    """``intsimd._conv`` over the output rows, split by ``run_split``: float32 (n, oh, ow, k). ``x`` and ``packed``
    are the prepared input and weights (any integer dtype; read as bytes), ``pixel_bytes`` the bytes of one
    input pixel, ``lanes`` the int32 lanes of a vector, ``registers`` the accumulators a tile may hold."""
    k_padded = correction.size
    px, kb = tile_widths(k_padded // lanes, ow, registers)
    out = np.empty((n, oh, ow, k_padded), dtype=np.float32)
    flat_x, flat_w, flat_out = as_bytes(x), as_bytes(packed), out.reshape(-1)
    tokens = (size(pixel_bytes), token(stride), token(lanes), token(px), token(kb), token(1), token(instruction))
    run_split(lambda r0, r1: _conv(flat_x, flat_w, correction, scale, flat_out, x.shape[1], x.shape[2], oh, ow,
                                   k_padded, r, s, r0, r1, *tokens), n * oh)
    return out if k_padded == k else np.ascontiguousarray(out[..., :k])
