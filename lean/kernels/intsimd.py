"""Register tiles of int32 vectors for the integer convolutions (``vnni.py``, ``madd.py``): the int8 twin of
``simd.py``'s float tiles.

A tile is ``px * kb`` vectors of ``v`` int32 lanes (an LLVM ``[px*kb x <v x i32>]``): ``px`` output pixels x
``kb`` vectors of output channels, held in registers while the kernel runs over a patch. Each step takes one
4-byte group of every pixel's patch (``itile_dot``): the group is broadcast to all lanes and meets ``kb`` weight
vectors through the CPU's integer dot-product instruction, chosen by ``len(it)`` (``INSTRUCTIONS``):

- ``vpdpbusd`` (AVX-512 VNNI, 16 lanes): 4 unsigned x 4 signed bytes summed into each int32 lane;
- ``vpmaddwd`` + ``vpaddd`` (AVX2, 8 lanes): 2 x 2 int16 codes summed into each int32 lane.

``_conv`` is the convolution on these tiles (the layout of ``direct._forward``: a kernel row's patch is one run
of the padded input, so no im2col copy), and ``itile_store_rescaled`` turns the sums into float32 outputs
(``(acc - correction) * scale`` per channel) as they are stored.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ._config import JIT, njit
from .simd import count

INSTRUCTIONS = {"vnni": 1, "madd": 2}  # len(it) of the token that picks the instruction


class IntTile(types.Type):
    """``px * kb`` vectors of ``v`` int32 lanes, row-major (row i: vectors i*kb .. i*kb + kb - 1)."""

    def __init__(self, v, px, kb):
        self.v, self.px, self.kb = int(v), int(px), int(kb)
        super().__init__(name=f"tile_i32_{self.v}x{self.px}x{self.kb}")


@register_model(IntTile)
class _IntTileModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.ArrayType(ir.VectorType(ir.IntType(32), fe_type.v), fe_type.px * fe_type.kb))


def _byte_pointer(context, builder, array_type, array, byte_offset, pointee):
    data = context.make_array(array_type)(context, builder, array).data
    base = builder.bitcast(data, ir.IntType(8).as_pointer())
    return builder.bitcast(builder.gep(base, [byte_offset], inbounds=True), pointee.as_pointer())


@intrinsic
def itile_zero(typingctx, vt, pt, kt):
    if not all(isinstance(t, types.UniTuple) for t in (vt, pt, kt)):
        return None
    tile = IntTile(len(vt), len(pt), len(kt))

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.IntType(32), tile.v)
        return ir.Constant(ir.ArrayType(vec, tile.px * tile.kb), [ir.Constant(vec, [0] * tile.v)] * (tile.px * tile.kb))

    return tile(vt, pt, kt), codegen


@intrinsic
def itile_dot(typingctx, acc, w, w_off, w_step, x, x_off, x_stride, it):
    """``acc[i, j] += dot(the 4 bytes of x at x_off + i * x_stride, broadcast; the weight vector at w_off + j *
    w_step)`` (byte offsets), by the instruction ``len(it)`` names (``INSTRUCTIONS``)."""
    tile = acc
    kind = len(it)

    def codegen(context, builder, signature, args):
        value, w_arr, w_o, w_s, x_arr, x_o, x_s, _ = args
        vec = ir.VectorType(ir.IntType(32), tile.v)
        weights = [builder.load(_byte_pointer(context, builder, signature.args[1], w_arr,
                                              builder.add(w_o, builder.mul(w_s, ir.Constant(w_s.type, j))), vec),
                                align=1) for j in range(tile.kb)]
        if kind == INSTRUCTIONS["vnni"]:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                                f"llvm.x86.avx512.vpdpbusd.{32 * tile.v}")
        else:
            shorts = ir.VectorType(ir.IntType(16), 2 * tile.v)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [shorts, shorts]),
                                                "llvm.x86.avx2.pmadd.wd")
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), tile.v), [0] * tile.v)
        for i in range(tile.px):
            offset = builder.add(x_o, builder.mul(x_s, ir.Constant(x_s.type, i)))
            word = builder.load(_byte_pointer(context, builder, signature.args[4], x_arr, offset, ir.IntType(32)),
                                align=1)
            one = builder.insert_element(ir.Constant(vec, None), word, ir.Constant(ir.IntType(32), 0))
            group = builder.shuffle_vector(one, ir.Constant(vec, None), lanes)
            for j in range(tile.kb):
                k = i * tile.kb + j
                old = builder.extract_value(value, k)
                if kind == INSTRUCTIONS["vnni"]:
                    new = builder.call(fn, [old, group, weights[j]])
                else:
                    shorts = ir.VectorType(ir.IntType(16), 2 * tile.v)
                    new = builder.add(old, builder.call(fn, [builder.bitcast(group, shorts),
                                                             builder.bitcast(weights[j], shorts)]))
                value = builder.insert_value(value, new, k)
        return value

    return tile(acc, w, w_off, w_step, x, x_off, x_stride, it), codegen


@intrinsic
def itile_store_rescaled(typingctx, acc, out, out_off, out_stride, correction, scale, ch):
    """``out[out_off + i * out_stride + j * v + lane] = float(acc[i, j] - correction[ch + j * v + lane]) *
    scale[ch + j * v + lane]`` (float32 ``out``, element offsets)."""
    tile = acc

    def codegen(context, builder, signature, args):
        value, o_arr, o_off, o_s, c_arr, s_arr, ch_off = args
        vec = ir.VectorType(ir.IntType(32), tile.v)
        floats = ir.VectorType(ir.FloatType(), tile.v)
        corr, scales = [], []
        for j in range(tile.kb):
            at = builder.add(ch_off, ir.Constant(ch_off.type, j * tile.v))
            corr.append(builder.load(_byte_pointer(context, builder, signature.args[4], c_arr,
                                                   builder.mul(at, ir.Constant(at.type, 4)), vec), align=4))
            scales.append(builder.load(_byte_pointer(context, builder, signature.args[5], s_arr,
                                                     builder.mul(at, ir.Constant(at.type, 4)), floats), align=4))
        for i in range(tile.px):
            row = builder.add(o_off, builder.mul(o_s, ir.Constant(o_s.type, i)))
            for j in range(tile.kb):
                result = builder.fmul(builder.sitofp(builder.sub(builder.extract_value(value, i * tile.kb + j),
                                                                 corr[j]), floats), scales[j])
                at = builder.add(row, ir.Constant(row.type, j * tile.v))
                builder.store(result, _byte_pointer(context, builder, signature.args[1], o_arr,
                                                    builder.mul(at, ir.Constant(at.type, 4)), floats), align=4)
        return context.get_dummy_value()

    return types.void(acc, out, out_off, out_stride, correction, scale, ch), codegen


@njit(**JIT)
def _conv(x, w, correction, scale, out, ph, pw, oh, ow, k, r, s, row0, row1, ct, st, vt, pt, kt, one, it):
    """Output rows ``row0 .. row1`` (row = image * oh + y) into flat float32 ``out`` (n, oh, ow, k), k a multiple
    of ``v``.
    ``x``: the padded input as bytes (n, ph, pw, c bytes a pixel, c a multiple of 4); ``w``: packed weights
    (k / v tiles, r * s * c / 4 groups, v lanes, 4 bytes) as bytes. ``len(ct)``: c (bytes a pixel, a run-time
    value past 64, ``simd.count``), ``len(st)``: stride; tile ``len(pt)`` pixels x ``len(kt)`` vectors of
    ``len(vt)`` lanes; ``one``: the 1-pixel tile of row ends; ``it``: the instruction."""
    c, stride = count(ct), len(st)
    v, px = len(vt), len(pt)
    kstep = v * len(kt)
    groups = r * s * c // 4
    w_step = groups * v * 4  # bytes from one channel tile's weights to the next
    run = s * c  # bytes of a kernel row's patch: contiguous in x
    xstep = stride * c
    main = ow - ow % px
    for row in range(row0, row1):
        b, oy = row // oh, row % oh
        orow = (b * oh + oy) * ow
        xrow = (b * ph + oy * stride) * pw * c
        for kq in range(0, k, kstep):
            w_tile = (kq // v) * w_step
            for ox in range(0, main, px):
                acc = _patch_dots(itile_zero(vt, pt, kt), w, w_tile, w_step, x, xrow + ox * xstep, pw * c, r,
                                  run, v, xstep, it)
                itile_store_rescaled(acc, out, (orow + ox) * k + kq, k, correction, scale, kq)
            for ox in range(main, ow):  # row ends, one pixel a tile
                last = _patch_dots(itile_zero(vt, one, kt), w, w_tile, w_step, x, xrow + ox * xstep, pw * c, r,
                                   run, v, xstep, it)
                itile_store_rescaled(last, out, (orow + ox) * k + kq, k, correction, scale, kq)


@njit(inline="always")
def _patch_dots(acc, w, w_tile, w_step, x, x0, row, r, run, v, xstep, it):
    """``acc`` plus the dot products of the tile's patches (the first starting at byte ``x0``; kernel rows
    ``row`` bytes apart, each a contiguous run of ``run`` bytes) with the weights of its channel tile."""
    for i in range(r):
        wrow = w_tile + i * run * v
        for q in range(0, run, 4):
            acc = itile_dot(acc, w, wrow + q * v, w_step, x, x0 + i * row + q, xstep, it)
    return acc


def as_bytes(array):
    """A contiguous array's bytes, flat (uint8 view)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)

