"""Register tiles of float32 vectors for Numba kernels: the building block of the direct convolutions.

Numba has no vector types, and LLVM keeps a hand-written loop's accumulators in registers only when it can prove
it may (naive direct convolutions in Numba ran at 7-15 GFLOP/s on this project's machine). This module gives
Numba one value type, a **tile** of ``px * kb`` vectors of ``v`` float32 lanes (an LLVM ``[px*kb x <v x
float>]``), and intrinsics that emit its LLVM IR directly, so the accumulators of a convolution are registers
by construction:

- ``tile_zero(vt, pt, kt)``: a tile of zeros. Its shape comes from the *lengths* of three tuples (``token(v)``,
  ``token(px)``, ``token(kb)``): Numba compiles one specialization per shape, chosen by the argument types, with
  no per-call cost;
- ``tile_load(acc, a, off, stride)`` / ``tile_store(acc, a, off, stride)``: row ``i`` of the tile is
  ``kb * v`` contiguous floats of the flat array ``a`` at ``off + i * stride``;
- ``tile_fma(acc, w, w_off, x, x_off, x_stride)``: ``acc[i, j] += x[x_off + i * x_stride] * w[w_off + j*v :
  w_off + (j+1)*v]`` for every row ``i`` and vector ``j``: ``kb`` vector loads, ``px`` scalar broadcasts (which
  AVX-512 folds into the multiply-add), ``px * kb`` fused multiply-adds. When ``x_stride`` is a constant to LLVM
  (the caller passes ``len(token)``) every broadcast is one addressing mode off one pointer.

The vectors are generic LLVM vectors (``llvm.fma.v{v}f32``): on AVX-512 a 16-lane vector is one zmm register,
on AVX2 an 8-lane one a ymm; LLVM lowers any width correctly on any target, so a wrong width is slow, never
wrong. ``SIMD_WIDTH`` says which width this machine runs (``simd_width``): 16 where the CPU has AVX-512 F, 8
where it has AVX2 and FMA, 0 (the direct kernels are not used) elsewhere or where Numba does not compile for
this CPU; ``LEAN_SIMD=avx512|avx2|off`` forces one (the AVX2 stand-in benchmark and the tests do).
"""

import os

import numba
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from ._config import JIT

_FORCED = {"avx512": 16, "avx2": 8, "off": 0}


def simd_width():
    """Lanes of the float32 vectors the direct kernels use here: 16 (AVX-512 F), 8 (AVX2 + FMA) or 0 (none).

    Chosen by the CPU's features, never its name; ``LEAN_SIMD`` (avx512, avx2, off) forces a width. Where Numba
    compiles for another CPU than this one (``NUMBA_CPU_NAME``, for a portable cache) the vector kernels are off
    unless ``LEAN_SIMD`` says otherwise (the AVX2 stand-in: ``NUMBA_CPU_NAME=haswell LEAN_SIMD=avx2``; the named
    CPU must have the instructions); without the JIT (``NUMBA_DISABLE_JIT``) they are always off.
    """
    forced = os.environ.get("LEAN_SIMD", "").strip().lower()
    if forced and forced not in _FORCED:
        raise ValueError(f"LEAN_SIMD must be one of {', '.join(_FORCED)}; got {forced!r}")
    if numba.config.DISABLE_JIT:  # the intrinsics exist only in compiled code
        return 0
    if forced:  # also for another NUMBA_CPU_NAME: then the named CPU must have the instructions
        return _FORCED[forced]
    if numba.config.CPU_NAME not in (None, "host"):
        return 0
    try:
        features = llvm_binding.get_host_cpu_features()
    except RuntimeError:
        return 0
    if features.get("avx512f", False):
        return 16
    if features.get("avx2", False) and features.get("fma", False):
        return 8
    return 0


SIMD_WIDTH = simd_width()

_TOKENS = {}


def token(n):
    """A tuple of ``n`` zeros: its length carries a compile-time constant into a kernel (see the module
    docstring)."""
    t = _TOKENS.get(n)
    if t is None:
        t = _TOKENS[n] = (0,) * n
    return t


def count(t):
    """In a kernel: ``len(t)`` of a token, or ``t`` itself if it is an integer (a size known only at run time)."""
    return len(t) if isinstance(t, tuple) else int(t)


@overload(count, inline="always")
def _count(t):
    if isinstance(t, types.BaseTuple):
        n = len(t)
        return lambda t: n
    if isinstance(t, types.Integer):
        return lambda t: t
    return None


STATIC_MAX = 64  # sizes up to this become compile-time constants (``size``); larger ones stay run-time values


def size(n):
    """``token(n)`` for small ``n`` (a constant the kernel is compiled for), else ``n`` itself (read with
    ``count``): one compiled kernel per small size, and no 1000-element tuples for wide layers."""
    return token(n) if n <= STATIC_MAX else int(n)


class Tile(types.Type):
    """``px * kb`` vectors of ``v`` float32 lanes, row-major: row ``i`` holds vectors ``i*kb .. i*kb + kb - 1``."""

    def __init__(self, v, px, kb):
        self.v, self.px, self.kb = int(v), int(px), int(kb)
        super().__init__(name=f"tile_f32_{self.v}x{self.px}x{self.kb}")


@register_model(Tile)
class _TileModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.ArrayType(ir.VectorType(ir.FloatType(), fe_type.v), fe_type.px * fe_type.kb))


def _vector(tile):
    return ir.VectorType(ir.FloatType(), tile.v)


def element_pointer(context, builder, array_type, array, index, vector=None):
    """A pointer to ``array[index]`` (a flat, contiguous array): to its element type, or to ``vector`` (an LLVM
    vector type) starting there. The building block of every intrinsic here and in ``winograd``."""
    data = context.make_array(array_type)(context, builder, array).data
    pointer = builder.gep(data, [index], inbounds=True)
    return pointer if vector is None else builder.bitcast(pointer, vector.as_pointer())


def row_offset(builder, base, step, i):
    return builder.add(base, builder.mul(step, ir.Constant(step.type, i)))


@intrinsic
def tile_zero(typingctx, vt, pt, kt):
    if not all(isinstance(t, types.UniTuple) for t in (vt, pt, kt)):
        return None
    tile = Tile(len(vt), len(pt), len(kt))

    def codegen(context, builder, signature, args):
        vec = _vector(tile)
        zero = ir.Constant(vec, [0.0] * tile.v)
        return ir.Constant(ir.ArrayType(vec, tile.px * tile.kb), [zero] * (tile.px * tile.kb))

    return tile(vt, pt, kt), codegen


def _vector_pointers(context, builder, tile, array_type, array, start, stride):
    """Pointers to the tile's vectors in a flat float32 array: row i at ``start + i * stride``, vector j of the
    row ``j * v`` further; in the tile's order."""
    vec = _vector(tile)
    pointers = []
    for i in range(tile.px):
        row = row_offset(builder, start, stride, i)
        for j in range(tile.kb):
            index = builder.add(row, ir.Constant(row.type, j * tile.v))
            pointers.append(element_pointer(context, builder, array_type, array, index, vec))
    return pointers


@intrinsic
def tile_load(typingctx, acc, array, offset, stride):
    tile = acc

    def codegen(context, builder, signature, args):
        value, arr, off, step = args
        for n, ptr in enumerate(_vector_pointers(context, builder, tile, signature.args[1], arr, off, step)):
            value = builder.insert_value(value, builder.load(ptr, align=4), n)
        return value

    return tile(acc, array, offset, stride), codegen


@intrinsic
def tile_store(typingctx, acc, array, offset, stride):
    tile = acc

    def codegen(context, builder, signature, args):
        value, arr, off, step = args
        for n, ptr in enumerate(_vector_pointers(context, builder, tile, signature.args[1], arr, off, step)):
            builder.store(builder.extract_value(value, n), ptr, align=4)
        return context.get_dummy_value()

    return types.void(acc, array, offset, stride), codegen


@intrinsic
def tile_fma(typingctx, acc, w, w_offset, x, x_offset, x_stride):
    tile = acc

    def codegen(context, builder, signature, args):
        value, w_arr, w_off, x_arr, x_off, x_step = args
        vec = _vector(tile)
        fma = fma_function(builder, vec)
        w_base = element_pointer(context, builder, signature.args[1], w_arr, w_off)
        x_base = element_pointer(context, builder, signature.args[3], x_arr, x_off)
        weights = []
        for j in range(tile.kb):
            ptr = builder.gep(w_base, [ir.Constant(ir.IntType(64), j * tile.v)], inbounds=True)
            weights.append(builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), tile.v), [0] * tile.v)
        for i in range(tile.px):
            step = builder.mul(x_step, ir.Constant(x_step.type, i))
            scalar = builder.load(builder.gep(x_base, [step], inbounds=True))
            one = builder.insert_element(ir.Constant(vec, None), scalar, ir.Constant(ir.IntType(32), 0))
            broadcast = builder.shuffle_vector(one, ir.Constant(vec, None), lanes)
            for j in range(tile.kb):
                k = i * tile.kb + j
                value = builder.insert_value(value, builder.call(fma, [broadcast, weights[j],
                                                                       builder.extract_value(value, k)]), k)
        return value

    return tile(acc, w, w_offset, x, x_offset, x_stride), codegen


@intrinsic
def tile_add_rows(typingctx, acc, array, offset):
    """``acc[i, j] += array[offset + j*v : offset + (j+1)*v]`` for every row: a per-channel vector (a bias)."""
    tile = acc

    def codegen(context, builder, signature, args):
        value, arr, off = args
        vec = _vector(tile)
        rows = []
        for j in range(tile.kb):
            index = builder.add(off, ir.Constant(off.type, j * tile.v))
            ptr = builder.bitcast(element_pointer(context, builder, signature.args[1], arr, index), vec.as_pointer())
            rows.append(builder.load(ptr, align=4))
        for i in range(tile.px):
            for j in range(tile.kb):
                k = i * tile.kb + j
                value = builder.insert_value(value, builder.fadd(builder.extract_value(value, k), rows[j]), k)
        return value

    return tile(acc, array, offset), codegen


# ------------------------------------------------------------------------------ element-wise tile arithmetic

def _apply_vectors(tile, build, builder, values):
    out = values[0]
    for k in range(tile.px * tile.kb):
        out = builder.insert_value(out, build(builder, *[builder.extract_value(v, k) for v in values]), k)
    return out


def _unary(build):
    """An intrinsic applying ``build(builder, a)`` to every vector of a tile."""
    def typer(typingctx, a):
        if not isinstance(a, Tile):
            return None
        return a(a), lambda context, builder, signature, args: _apply_vectors(a, build, builder, args)
    return intrinsic(typer)


def _binary(build):
    """An intrinsic applying ``build(builder, a, b)`` to the vectors of two tiles of one shape."""
    def typer(typingctx, a, b):
        if not isinstance(a, Tile) or b != a:
            return None
        return a(a, b), lambda context, builder, signature, args: _apply_vectors(a, build, builder, args)
    return intrinsic(typer)


def _ternary(build):
    """An intrinsic applying ``build(builder, a, b, c)`` to the vectors of three tiles of one shape."""
    def typer(typingctx, a, b, c):
        if not isinstance(a, Tile) or b != a or c != a:
            return None
        return a(a, b, c), lambda context, builder, signature, args: _apply_vectors(a, build, builder, args)
    return intrinsic(typer)


def fma_function(builder, vector):
    """``llvm.fma`` on float32 vectors of type ``vector``, declared in the current module."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                          f"llvm.fma.v{vector.count}f32")


def _fma_vectors(builder, a, b, c):
    return builder.call(fma_function(builder, a.type), [a, b, c])


def _zero_like(vector):
    return ir.Constant(vector.type, [0.0] * vector.type.count)


def relu_vector(builder, value):
    """max(value, 0) with NaN kept (a NaN fails "< 0" and passes through), as lean's ReLU kernels do."""
    return builder.select(builder.fcmp_ordered("<", value, _zero_like(value)), _zero_like(value), value)


tile_add = _binary(lambda b, x, y: b.fadd(x, y))
tile_sub = _binary(lambda b, x, y: b.fsub(x, y))
tile_mul = _binary(lambda b, x, y: b.fmul(x, y))
tile_fmadd = _ternary(_fma_vectors)  # a * b + c
# where a > 0: v, else 0 (a NaN in a counts as not > 0)
tile_where_positive = _binary(lambda b, a, v: b.select(b.fcmp_ordered(">", a, _zero_like(a)), v, _zero_like(v)))
tile_relu = _unary(relu_vector)


@intrinsic
def tile_sum_rows(typingctx, acc, pt1):
    """The ``px`` rows of ``acc`` added into one row: a tile of shape (v, 1, kb); ``pt1`` is ``token(1)``."""
    tile = acc
    if not isinstance(pt1, types.UniTuple) or len(pt1) != 1:
        return None
    row = Tile(tile.v, 1, tile.kb)

    def codegen(context, builder, signature, args):
        value = args[0]
        out = ir.Constant(ir.ArrayType(_vector(tile), tile.kb), None)
        for j in range(tile.kb):
            total = builder.extract_value(value, j)
            for i in range(1, tile.px):
                total = builder.fadd(total, builder.extract_value(value, i * tile.kb + j))
            out = builder.insert_value(out, total, j)
        return out

    return row(acc, pt1), codegen


@numba.njit(**JIT)
def fma_chains(values, steps, vt, pt, kt):
    """``steps`` rounds of ``acc = acc * 0.5 + 1`` on a tile of independent FMA chains loaded from ``values``
    (0.5s): the loop ``lean.bench.fma_peak_gflops`` times (values stay near 2: no overflow, no denormals)."""
    acc = tile_load(tile_zero(vt, pt, kt), values, 0, len(vt))
    scale = acc
    shift = tile_add(acc, acc)
    for _ in range(steps):
        acc = tile_fmadd(acc, scale, shift)
    tile_store(acc, values, 0, len(vt))
