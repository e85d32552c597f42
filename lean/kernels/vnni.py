"""int8 convolution on the CPU's integer dot-product instruction (AVX-512 VNNI ``vpdpbusd``), without im2col.

``vpdpbusd acc, a, b`` adds, in each of 16 int32 lanes, the four products of four unsigned bytes of ``a`` with
four signed bytes of ``b``: 64 multiply-adds in one instruction, against 16 for a float32 FMA of the same width.
NumPy offers no integer matrix product that uses it and Numba has no vector types, so this module gives Numba
a 16 x int32 vector type (``_I32x16``, an LLVM ``<16 x i32>``) and six intrinsics that emit LLVM IR directly:
``_zero``, ``_load`` (64 bytes), ``_broadcast`` (4 bytes to all lanes), ``_dot_accumulate`` (the instruction),
``_store_rescaled`` (int32 lanes -> float32 output, see below) and ``_spill`` (lanes to an int32 buffer).

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
3. ``_conv_rows``: for each output row and 16-channel tile, eight output pixels at a time keep eight vector
   accumulators; each weight vector is loaded once and meets eight broadcast 4-byte groups of input.
4. ``_store_rescaled``: (acc - correction) -> float32 x (activation scale x weight scale) straight into the
   output; a tile narrower than 16 channels goes through a scalar loop instead.

Exactness: wrapping int32 arithmetic, so the result is exact whenever the true sum fits in int32 (patches of
at most 131,072 int8 or 65,793 uint8 codes, checked by ``int8_conv2d``). Only where the running machine has
AVX-512 VNNI (``VNNI_AVAILABLE``) and Numba compiles for it; ``lean.kernels.int8_conv2d`` falls back to its
other methods elsewhere.
"""

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ._config import JIT, njit, run_split

_LANES = 16
_VECTOR = ir.VectorType(ir.IntType(32), _LANES)
_FLOATS = ir.VectorType(ir.FloatType(), _LANES)


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


class _I32x16(numba.types.Type):
    """Sixteen int32 lanes: one AVX-512 register, as a Numba value."""

    def __init__(self):
        super().__init__(name="i32x16")


i32x16 = _I32x16()


@register_model(_I32x16)
class _I32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _address(context, builder, array_type, array, byte_offset, pointee):
    """Pointer to ``pointee`` at ``byte_offset`` bytes into a contiguous array's data."""
    data = context.make_array(array_type)(context, builder, array).data
    base = builder.bitcast(data, ir.IntType(8).as_pointer())
    return builder.bitcast(builder.gep(base, [byte_offset]), pointee.as_pointer())


@intrinsic
def _zero(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0] * _LANES)

    return i32x16(), codegen


@intrinsic
def _load(typingctx, array, byte_offset):
    """64 bytes of ``array`` from ``byte_offset`` (unaligned)."""
    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], args[0], args[1], _VECTOR), align=1)

    return i32x16(array, byte_offset), codegen


@intrinsic
def _broadcast(typingctx, array, byte_offset):
    """The 4 bytes of ``array`` at ``byte_offset``, repeated in all 16 lanes."""
    def codegen(context, builder, signature, args):
        word = builder.load(_address(context, builder, signature.args[0], args[0], args[1], ir.IntType(32)),
                            align=1)
        one = builder.insert_element(ir.Constant(_VECTOR, None), word, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(_VECTOR, None), ir.Constant(_VECTOR, [0] * _LANES))

    return i32x16(array, byte_offset), codegen


@intrinsic
def _dot_accumulate(typingctx, acc, unsigned_bytes, signed_bytes):
    """acc + per lane: the dot product of 4 unsigned bytes with 4 signed bytes (``vpdpbusd``)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_VECTOR, [_VECTOR] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, args)

    return i32x16(i32x16, i32x16, i32x16), codegen


@intrinsic
def _store_rescaled(typingctx, out, out_byte_offset, acc, correction, scale, channel_byte_offset):
    """out[16 floats at out_byte_offset] = float(acc - correction[ch:ch+16]) * scale[ch:ch+16]."""
    def codegen(context, builder, signature, args):
        out_t, _, _, corr_t, scale_t, _ = signature.args
        out_a, out_off, acc_v, corr_a, scale_a, ch_off = args
        corr = builder.load(_address(context, builder, corr_t, corr_a, ch_off, _VECTOR), align=1)
        scales = builder.load(_address(context, builder, scale_t, scale_a, ch_off, _FLOATS), align=1)
        value = builder.fmul(builder.sitofp(builder.sub(acc_v, corr), _FLOATS), scales)
        builder.store(value, _address(context, builder, out_t, out_a, out_off, _FLOATS), align=1)
        return context.get_dummy_value()

    return numba.types.void(out, out_byte_offset, acc, correction, scale, channel_byte_offset), codegen


@intrinsic
def _spill(typingctx, buffer, byte_offset, acc):
    """Write the 16 int32 lanes of ``acc`` into an int32 buffer (for tiles narrower than 16 channels)."""
    def codegen(context, builder, signature, args):
        builder.store(args[2], _address(context, builder, signature.args[0], args[0], args[1], _VECTOR), align=1)
        return context.get_dummy_value()

    return numba.types.void(buffer, byte_offset, acc), codegen


@njit(**JIT)
def _finish(acc, out, pixel, k, tile, correction, scale, spill):
    """Rescale one pixel's 16-lane tile into ``out`` (flat float32, ``k`` channels a pixel)."""
    ch = tile * _LANES
    if ch + _LANES <= k:
        _store_rescaled(out, 4 * (pixel * k + ch), acc, correction, scale, 4 * ch)
    else:
        _spill(spill, 0, acc)
        for lane in range(k - ch):
            exact = np.int32(spill[lane] - correction[ch + lane])  # back to int32: wrapping, like the lanes
            out[pixel * k + ch + lane] = np.float32(exact) * scale[ch + lane]


@njit(**JIT)
def _conv_rows(x, w, correction, scale, out, padded_h, padded_w, c, r, s, stride, oh, ow, k, row_lo, row_hi):
    """Output rows ``row_lo:row_hi`` (row = image * oh + output y) of the VNNI convolution; flat arrays.

    x: padded unsigned input (n, padded_h, padded_w, c); w: packed weights (tiles, r*s*c/4, 16, 4);
    out: float32 (n, oh, ow, k).
    """
    tiles = (k + _LANES - 1) // _LANES
    run = s * c  # bytes of one kernel row's patch: contiguous in x
    tile_bytes = r * run * _LANES  # = groups per tile x 64
    pixel_step = stride * c  # bytes between neighbouring output pixels' patches
    spill = np.empty(_LANES, np.int32)
    for row in range(row_lo, row_hi):
        image = row // oh
        y = row - image * oh
        for tile in range(tiles):
            w_tile = tile * tile_bytes
            x0 = 0
            while x0 + 8 <= ow:  # eight pixels, eight accumulators
                a0 = _zero()
                a1 = _zero()
                a2 = _zero()
                a3 = _zero()
                a4 = _zero()
                a5 = _zero()
                a6 = _zero()
                a7 = _zero()
                for i in range(r):
                    xr = ((image * padded_h + y * stride + i) * padded_w + x0 * stride) * c
                    wr = w_tile + i * run * _LANES
                    for q in range(0, run, 4):
                        b = _load(w, wr + q * _LANES)
                        a0 = _dot_accumulate(a0, _broadcast(x, xr + q), b)
                        a1 = _dot_accumulate(a1, _broadcast(x, xr + pixel_step + q), b)
                        a2 = _dot_accumulate(a2, _broadcast(x, xr + 2 * pixel_step + q), b)
                        a3 = _dot_accumulate(a3, _broadcast(x, xr + 3 * pixel_step + q), b)
                        a4 = _dot_accumulate(a4, _broadcast(x, xr + 4 * pixel_step + q), b)
                        a5 = _dot_accumulate(a5, _broadcast(x, xr + 5 * pixel_step + q), b)
                        a6 = _dot_accumulate(a6, _broadcast(x, xr + 6 * pixel_step + q), b)
                        a7 = _dot_accumulate(a7, _broadcast(x, xr + 7 * pixel_step + q), b)
                pixel = row * ow + x0
                _finish(a0, out, pixel, k, tile, correction, scale, spill)
                _finish(a1, out, pixel + 1, k, tile, correction, scale, spill)
                _finish(a2, out, pixel + 2, k, tile, correction, scale, spill)
                _finish(a3, out, pixel + 3, k, tile, correction, scale, spill)
                _finish(a4, out, pixel + 4, k, tile, correction, scale, spill)
                _finish(a5, out, pixel + 5, k, tile, correction, scale, spill)
                _finish(a6, out, pixel + 6, k, tile, correction, scale, spill)
                _finish(a7, out, pixel + 7, k, tile, correction, scale, spill)
                x0 += 8
            while x0 < ow:  # the last few pixels of the row, one at a time
                a0 = _zero()
                for i in range(r):
                    xr = ((image * padded_h + y * stride + i) * padded_w + x0 * stride) * c
                    wr = w_tile + i * run * _LANES
                    for q in range(0, run, 4):
                        a0 = _dot_accumulate(a0, _broadcast(x, xr + q), _load(w, wr + q * _LANES))
                _finish(a0, out, row * ow + x0, k, tile, correction, scale, spill)
                x0 += 1


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
    out = np.empty((n, oh, ow, k), dtype=np.float32)
    flat_x, flat_w, flat_out = x.reshape(-1), packed.reshape(-1), out.reshape(-1)
    run_split(lambda lo, hi: _conv_rows(flat_x, flat_w, correction, scale_padded, flat_out, x.shape[1],
                                        x.shape[2], c_padded, r, s, stride, oh, ow, k, lo, hi), n * oh)
    return out
