"""bfloat16 operands with float32 accumulation: the products of ``--precision bf16`` training.

A bf16 number is the top 16 bits of a float32 (sign, 8-bit exponent, 7-bit mantissa): float32's range, about 3
decimal digits. NumPy has no bf16 type, so lean holds bf16 operands as uint16 bit patterns and rounds float32
to them to nearest, ties to even (``round_bits``; in kernels ``bf16_vector``): add 0x7FFF plus the lowest kept
bit, drop the low 16 bits. NaN stays a (quiet) NaN, inf stays inf. The product of two bf16 numbers is exact in
float32, so every sum is a float32 sum of exact products.

- ``tile_dot_bf16`` is the register-tile step (``simd.Tile``) of a bf16 matrix product: each tile row
  broadcasts a pair of bf16 operands (4 bytes) and meets ``kb`` vectors of bf16 pairs (``v`` lanes x 2), adding
  both products into each float32 lane. Where the CPU has AVX-512 BF16 (``BF16_AVAILABLE``) that is one
  ``vdpbf16ps`` (32 multiply-adds, twice a float32 FMA's); elsewhere the pairs are widened to float32 by shifts
  and added with two FMAs in the instruction's order (the same products and sums; ``vdpbf16ps`` also flushes
  denormals to zero, so the two paths agree to float32 rounding, not bit for bit). llvmlite has no bfloat type
  and Numba's JIT takes no inline assembly, so the instruction is reached through a small LLVM IR module,
  parsed once and linked into the kernels that use it (``_library``).
- ``store_bf16`` rounds a float32 vector and stores it as bf16 (a transform's output, ``winograd``);
  ``pack_pairs`` rounds two float32 rows and interleaves them, (a0, b0, a1, b1, ...): the layout in which
  ``vdpbf16ps`` sums over the rows (the weight gradient's sum over tiles, ``winograd._weight_grad``).

``LEAN_BF16=emulate`` (read at import) forces the FMA path on a CPU that has the instruction. Kernels take the
path as a compile-time token (``instruction_token``) read from ``BF16_AVAILABLE`` at each call, so the tests
switch paths by setting it.
"""

import os

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import JIT, U, njit, run_split
from .simd import SIMD_WIDTH, element_pointer, fma_function, row_offset, token


def _host_has_bf16():
    """AVX-512 BF16 here, Numba compiling for this CPU, lean's kernels on 16 lanes (``LEAN_SIMD`` may say
    otherwise), and ``LEAN_BF16`` not ``emulate``. Decided by the CPU's features, never its name."""
    if os.environ.get("LEAN_BF16", "").strip().lower() == "emulate" or SIMD_WIDTH != 16:
        return False
    if numba.config.DISABLE_JIT or numba.config.CPU_NAME not in (None, "host"):
        return False
    try:
        features = llvm_binding.get_host_cpu_features()
    except RuntimeError:
        return False
    return bool(features.get("avx512bf16", False) and features.get("avx512f", False))


BF16_AVAILABLE = _host_has_bf16()


def instruction_token():
    """The token that tells a kernel which bf16 instructions to emit: ``token(2)`` AVX-512 BF16, ``token(1)``
    the emulation. A kernel compiled for one is a different specialization from one compiled for the other (so
    a Numba cache never hands emulated code the native instructions or back); read at each call, so the tests
    can switch ``BF16_AVAILABLE`` off."""
    return token(2 if BF16_AVAILABLE else 1)

_IR = r"""
declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)
define <16 x float> @lean_dpbf16ps(<16 x float> %acc, <16 x i32> %a, <16 x i32> %b) alwaysinline {
  %x = bitcast <16 x i32> %a to <32 x bfloat>
  %y = bitcast <16 x i32> %b to <32 x bfloat>
  %r = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float> %acc, <32 x bfloat> %x, <32 x bfloat> %y)
  ret <16 x float> %r
}
declare <16 x bfloat> @llvm.x86.avx512bf16.cvtneps2bf16.512(<16 x float>)
define <16 x i16> @lean_cvtneps2bf16(<16 x float> %a) alwaysinline {
  %r = call <16 x bfloat> @llvm.x86.avx512bf16.cvtneps2bf16.512(<16 x float> %a)
  %i = bitcast <16 x bfloat> %r to <16 x i16>
  ret <16 x i16> %i
}
"""
_LIBRARY = []


def _library(context):
    """The IR module defining ``lean_dpbf16ps``, compiled once per process."""
    if not _LIBRARY:
        library = context.codegen().create_library("lean_bf16")
        library.add_llvm_module(llvm_binding.parse_assembly(_IR))
        library.finalize()
        _LIBRARY.append(library)
    return _LIBRARY[0]


def _splat(vector_type, value):
    return ir.Constant(vector_type, [value] * vector_type.count)


@intrinsic
def tile_dot_bf16(typingctx, acc, w, w_off, x, x_off, x_stride, bt):
    """``acc[i, j] += x[x_off + i*x_stride + 1] * w[p, 1] + x[x_off + i*x_stride] * w[p, 0]`` for the ``v``
    lanes p of vector j, which is ``2 v`` uint16 at ``w_off + j * 2 v`` (bf16 pairs, lane-major); ``x`` and
    ``w`` are uint16 arrays of bf16 bits, ``acc`` a float32 ``simd.Tile``; ``bt``: ``instruction_token()``."""
    tile = acc
    native = len(bt) == 2 and tile.v == 16

    def codegen(context, builder, signature, args):
        value, w_arr, w_o, x_arr, x_o, x_s, _ = args
        v = tile.v
        words = ir.VectorType(ir.IntType(32), v)
        floats = ir.VectorType(ir.FloatType(), v)
        weights = [builder.load(element_pointer(context, builder, signature.args[1], w_arr,
                                                builder.add(w_o, ir.Constant(w_o.type, 2 * v * j)), words), align=2)
                   for j in range(tile.kb)]
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), v), [0] * v)
        if native:
            context.active_code_library.add_linking_library(_library(context))
            dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(floats, [floats, words, words]),
                                                 "lean_dpbf16ps")
        else:
            fma = fma_function(builder, floats)
            high = _splat(words, -65536)  # 0xFFFF0000
            sixteen = _splat(words, 16)
            w_low = [builder.bitcast(builder.shl(wv, sixteen), floats) for wv in weights]
            w_high = [builder.bitcast(builder.and_(wv, high), floats) for wv in weights]
        for i in range(tile.px):
            word = builder.load(element_pointer(context, builder, signature.args[3], x_arr,
                                                row_offset(builder, x_o, x_s, i), ir.IntType(32)), align=2)
            one = builder.insert_element(ir.Constant(words, None), word, ir.Constant(ir.IntType(32), 0))
            pair = builder.shuffle_vector(one, ir.Constant(words, None), lanes)
            if not native:
                x_low = builder.bitcast(builder.shl(pair, sixteen), floats)
                x_high = builder.bitcast(builder.and_(pair, high), floats)
            for j in range(tile.kb):
                k = i * tile.kb + j
                old = builder.extract_value(value, k)
                if native:
                    new = builder.call(dot, [old, pair, weights[j]])
                else:  # the instruction's order: the odd (high) pair element first
                    new = builder.call(fma, [x_low, w_low[j], builder.call(fma, [x_high, w_high[j], old])])
                value = builder.insert_value(value, new, k)
        return value

    return tile(acc, w, w_off, x, x_off, x_stride, bt), codegen


def bf16_vector(context, builder, value, native):
    """A float32 vector rounded to bf16 (nearest, ties to even; NaN kept a quiet NaN): an i16 vector. One
    ``vcvtneps2bf16`` where the CPU has AVX-512 BF16 (which also flushes denormals to zero), else integer
    arithmetic on the bits (``native`` False, or not 16 lanes)."""
    v = value.type.count
    if native and v == 16:
        context.active_code_library.add_linking_library(_library(context))
        convert = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VectorType(ir.IntType(16), v), [value.type]), "lean_cvtneps2bf16")
        return builder.call(convert, [value])
    words = ir.VectorType(ir.IntType(32), v)
    bits = builder.bitcast(value, words)
    lowest_kept = builder.and_(builder.lshr(bits, _splat(words, 16)), _splat(words, 1))
    rounded = builder.lshr(builder.add(builder.add(bits, _splat(words, 0x7FFF)), lowest_kept), _splat(words, 16))
    quiet_nan = builder.or_(builder.lshr(bits, _splat(words, 16)), _splat(words, 0x40))
    rounded = builder.select(builder.fcmp_unordered("uno", value, value), quiet_nan, rounded)
    return builder.trunc(rounded, ir.VectorType(ir.IntType(16), v))


def store_bf16(context, builder, array_type, array, index, value, native):
    """Round the float32 vector ``value`` to bf16 and store it at ``array[index]`` (a uint16 array)."""
    halves = bf16_vector(context, builder, value, native)
    builder.store(halves, element_pointer(context, builder, array_type, array, index, halves.type), align=2)


@intrinsic
def pack_pairs(typingctx, src, a_off, b_off, has_b, dst, dst_off, vt, bt):
    """Rounds ``v`` floats of ``src`` at ``a_off`` and at ``b_off`` (zeros instead if not ``has_b``) to bf16 and
    stores them interleaved, ``a0 b0 a1 b1 ...`` (``2 v`` uint16), at ``dst[dst_off]``."""
    v = len(vt)
    native = len(bt) == 2

    def codegen(context, builder, signature, args):
        sa, ao, bo, hb, da, do, _, _ = args
        floats = ir.VectorType(ir.FloatType(), v)
        first = builder.load(element_pointer(context, builder, signature.args[0], sa, ao, floats), align=4)
        slot = cgutils.alloca_once_value(builder, ir.Constant(floats, [0.0] * v))
        with builder.if_then(builder.icmp_unsigned("!=", hb, ir.Constant(hb.type, 0)), likely=True):
            builder.store(builder.load(element_pointer(context, builder, signature.args[0], sa, bo, floats),
                                       align=4), slot)
        low = bf16_vector(context, builder, first, native)
        high = bf16_vector(context, builder, builder.load(slot), native)
        order = [i // 2 + (i % 2) * v for i in range(2 * v)]
        mixed = builder.shuffle_vector(low, high, ir.Constant(ir.VectorType(ir.IntType(32), 2 * v), order))
        builder.store(mixed, element_pointer(context, builder, signature.args[4], da, do, mixed.type), align=2)
        return context.get_dummy_value()

    return types.void(src, a_off, b_off, has_b, dst, dst_off, vt, bt), codegen


@njit(**JIT)
def _round_bits(bits, out, start, stop):
    for i in range(start, stop):
        k = U(i)
        word = bits[k]
        if (word & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN: keep it quiet, do not round
            out[k] = np.uint16((word >> np.uint32(16)) | np.uint32(0x40))
        else:
            out[k] = np.uint16((word + np.uint32(0x7FFF) + ((word >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


def round_bits(x: np.ndarray) -> np.ndarray:
    """float32 ``x`` rounded to bf16 (nearest, ties to even): its uint16 bits, shaped like ``x``."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint16)
    flat, bits = out.reshape(-1), x.reshape(-1).view(np.uint32)
    if flat.size < (1 << 18):
        _round_bits(bits, flat, 0, flat.size)
    else:
        run_split(lambda a, b: _round_bits(bits, flat, a, b), flat.size)
    return out


def values(bits: np.ndarray) -> np.ndarray:
    """The float32 values of bf16 ``bits`` (uint16)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 ``x`` rounded to the nearest bf16 value (ties to even), as float32."""
    return values(round_bits(x))
