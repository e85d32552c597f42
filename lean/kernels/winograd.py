"""Winograd convolution F(m x m, 3 x 3) (Lavin and Gray, CVPR 2016) for stride-1 3x3 layers: fewer multiplies.

An m x m block of outputs of a 3x3 convolution is ``Y = A^T [(G g G^T) * (B^T d B)] A`` for the a x a input
block ``d`` (a = m + 2) that covers it, the 3x3 filter ``g``, and ``*`` the element-wise product over the a*a
positions xi of the transform domain. Summed over input channels, each position is a matrix product,
``M[xi] (tiles x k) = V[xi] (tiles x c) @ U[xi] (c x k)``: a*a multiply-adds per m*m outputs and channel pair,
where the direct convolution spends 9 per output. F(2x2, 3x3) (a = 4) does 16 for 4 outputs (2.25x fewer),
F(4x4, 3x3) (a = 6) 36 for 16 (4x fewer), with larger transforms and larger rounding errors (below).
``TRANSFORMS`` holds the matrices (Lavin and Gray's, with points 0, +-1 for m = 2 and 0, +-1, +-2 for m = 4).

- **Forward** (``_forward``): tiles go in blocks of whole rows of the tile grid (at least ``BLOCK_TILES``
  tiles; consecutive images' rows follow each other). For a block: the input transform (``_input_transform``, one
  intrinsic per tile and vector of channels: a*a vectors loaded, combined with adds and multiply-adds, a*a
  stored) fills V; the a*a products run on register tiles (``simd.tile_fma``, the direct convolution's
  machinery: ``px`` tiles x ``kb`` vectors of output channels); the output transform (``_output_transform``)
  adds the bias and stores the m x m blocks, dropping rows and columns past the output's edge. A block's V and
  M stay in cache; each position's (c, k) block starts one cache line further than a multiple of c * k
  (``SKEW``): with c * k = 4096 floats the 16 or 36 blocks fell in the same cache sets, 7x slower.
- **Input gradient** (stride 1): the forward on the output gradient padded by 2 - padding, with the filters
  flipped in space and their channel axes swapped (``conv._winograd_backward``), as for the direct kernels.
- **Weight gradient** (``_weight_grad``): ``dU[xi] = sum over tiles of V[xi]^T dM[xi]`` with ``dM = A dY A^T``
  (``_gradient_transform``: the m x m output-gradient block to the a x a domain), then ``dg = G^T dU G``
  (``weight_grad_from_transformed``); each worker sums its own images into its own dU (added in a fixed order).

- **bf16 products** (``precision="bf16"``, ``lean train --precision bf16``): the transforms run in float32 and
  round their outputs to bf16 as they store them (``vcvtneps2bf16`` where the CPU has AVX-512 BF16); the
  products take pairs along the sum, one ``vdpbf16ps`` (32 multiply-adds, twice an FMA's) per pair, float32
  sums (``lean.kernels.bf16``). Forward and input gradient: pairs of input channels (neighbours in V; U stored
  as pairs of rows, ``_bf16_weights``). Weight gradient: the sum runs over tiles, so V and dM are packed as
  pairs of tiles after their transforms (``pack_pairs``). Rounding in the transform domain costs more accuracy
  than rounding the convolution's inputs (F(4x4): relative rms error of an output ~2.4e-2, against ~3e-3 for
  bf16 inputs; ``benchmarks/bf16_study.py``): the inverse transform's entries up to 8 amplify each operand's
  rounding.

The weight transforms run per call on BLAS (two small matrix products over all c * k filters). Numerics in
float32, relative to the largest output on ResNet-20's layer shapes: F(2x2) about 1e-6, F(4x4) about 1e-5
(its transform has entries up to 8 and 1/24); ``tests/test_tiled_kernels.py`` checks both against the direct
convolution. Which m runs where: ``WINOGRAD_TILE`` (measured in ``benchmarks/conv_kernels.py``).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import direct
from ._config import JIT, njit, run_split, run_split_sum
from .bf16 import instruction_token, pack_pairs, store_bf16, tile_dot_bf16
from .direct import grad_tile_shape, pack_weights, tile_shape, vector_width
from .simd import (
    count,
    element_pointer,
    fma_function,
    relu_vector,
    row_offset,
    size,
    tile_fma,
    tile_load,
    tile_store,
    tile_zero,
    token,
)

# (B^T, G, A^T) per output tile size m, float64; B^T is a x a, G a x 3, A^T m x a
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                  [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 np.float64)),
}

WINOGRAD_TILE = 4  # m of F(m x m, 3 x 3) that conv2d takes (F(4x4) beat F(2x2) on every ResNet-20 layer here)
BLOCK_TILES = 64  # tiles (at least) per block: V and M of a block stay in L2; dU is loaded and stored once a block
PRECISIONS = ("float32", "bf16")  # of the products' operands (``forward``, ``weight_grad``)
SKEW = 16  # floats between the (c, k) blocks of two transform positions, beyond c * k


# ------------------------------------------------------------------------------------ transform intrinsics

def _apply_1d(builder, rows, matrix):
    """``matrix`` (p x q) times ``rows`` (q vectors): p vectors; entries 0 cost nothing, +-1 an add or subtract,
    others a multiply-add."""
    out = []
    for coefficients in matrix:
        total = None
        for coefficient, value in zip(coefficients, rows, strict=True):
            if coefficient == 0:
                continue
            if coefficient in (1, -1) and total is not None:
                total = builder.fadd(total, value) if coefficient == 1 else builder.fsub(total, value)
                continue
            scale = ir.Constant(value.type, [float(coefficient)] * value.type.count)
            if total is None:
                total = value if coefficient == 1 else builder.fmul(value, scale)
            else:
                total = builder.call(fma_function(builder, value.type), [value, scale, total])
        out.append(total)
    return out


def _transform_2d(builder, block, left, right):
    """``left @ block @ right^T`` for a block of vectors (a list of rows)."""
    columns = list(zip(*block, strict=True))
    by_columns = [_apply_1d(builder, list(col), left) for col in columns]  # left applied down each column
    rows = [list(r) for r in zip(*by_columns, strict=True)]
    return [_apply_1d(builder, row, right) for row in rows]


def _store(context, builder, array_type, array, index, value, native):
    """Store a float32 vector at ``array[index]``: as float32, or rounded to bf16 if ``array`` holds uint16 (the
    transform-domain operands of a bf16 product; ``native``: with AVX-512 BF16's conversion)."""
    if array_type.dtype == types.uint16:
        store_bf16(context, builder, array_type, array, index, value, native)
    else:
        builder.store(value, element_pointer(context, builder, array_type, array, index, value.type), align=4)


def _inside(builder, rows, cols, a, b):
    return builder.and_(builder.icmp_signed(">", rows, ir.Constant(rows.type, a)),
                        builder.icmp_signed(">", cols, ir.Constant(cols.type, b)))


@intrinsic
def _input_transform(typingctx, x, x_off, row_step, col_step, out, out_off, out_step, vt, mt, bt):
    """Loads the a x a block of ``v``-channel vectors of ``x`` at ``x_off + i * row_step + j * col_step`` and
    stores ``B^T d B`` at ``out_off + (a i + j) * out_step`` (m = ``len(mt)``, a = m + 2)."""
    v, b_t = len(vt), TRANSFORMS[len(mt)][0]
    size = len(b_t)

    def codegen(context, builder, signature, args):
        xa, xo, rs, cs, oa, oo, os_, _, _, _ = args
        vec = ir.VectorType(ir.FloatType(), v)
        def at(i, j):
            return builder.add(row_offset(builder, xo, rs, i), builder.mul(cs, ir.Constant(cs.type, j)))

        block = [[builder.load(element_pointer(context, builder, signature.args[0], xa, at(i, j), vec), align=4)
                  for j in range(size)] for i in range(size)]
        result = _transform_2d(builder, block, b_t, b_t)
        for i in range(size):
            for j in range(size):
                _store(context, builder, signature.args[4], oa, row_offset(builder, oo, os_, size * i + j),
                       result[i][j], len(bt) == 2)
        return context.get_dummy_value()

    return types.void(x, x_off, row_step, col_step, out, out_off, out_step, vt, mt, bt), codegen


@intrinsic
def _input_transform_masked(typingctx, x, x_off, row_step, col_step, rlo, rhi, clo, chi, out, out_off, out_step,
                            vt, mt, bt):
    """``_input_transform`` of a block that crosses the image's border: only rows ``rlo <= i < rhi`` and columns
    ``clo <= j < chi`` of the block are loaded, the rest are zeros (the padding); ``x_off`` may point outside
    ``x``, which is never read there."""
    v, b_t = len(vt), TRANSFORMS[len(mt)][0]
    size = len(b_t)

    def codegen(context, builder, signature, args):
        xa, xo, rs, cs, r0, r1, c0, c1, oa, oo, os_, _, _, _ = args
        vec = ir.VectorType(ir.FloatType(), v)
        zero = ir.Constant(vec, [0.0] * v)
        data = context.make_array(signature.args[0])(context, builder, xa).data
        block = []
        for i in range(size):
            row = []
            for j in range(size):
                ci, cj = ir.Constant(r0.type, i), ir.Constant(c0.type, j)
                inside = builder.and_(builder.and_(builder.icmp_signed("<=", r0, ci), builder.icmp_signed(">", r1, ci)),
                                      builder.and_(builder.icmp_signed("<=", c0, cj), builder.icmp_signed(">", c1, cj)))
                slot = cgutils.alloca_once_value(builder, zero)
                with builder.if_then(inside):
                    index = builder.add(row_offset(builder, xo, rs, i), builder.mul(cs, cj))
                    ptr = builder.bitcast(builder.gep(data, [index]), vec.as_pointer())
                    builder.store(builder.load(ptr, align=4), slot)
                row.append(builder.load(slot))
            block.append(row)
        result = _transform_2d(builder, block, b_t, b_t)
        for i in range(size):
            for j in range(size):
                _store(context, builder, signature.args[8], oa, row_offset(builder, oo, os_, size * i + j),
                       result[i][j], len(bt) == 2)
        return context.get_dummy_value()

    return types.void(x, x_off, row_step, col_step, rlo, rhi, clo, chi, out, out_off, out_step, vt, mt,
                      bt), codegen


@intrinsic
def _output_transform(typingctx, m, m_off, m_step, y, y_off, row_step, col_step, bias, b_off, rows, cols, res, et,
                      vt, mt):
    """Loads the a*a transform-domain vectors ``m[m_off + xi * m_step]`` and stores ``A^T m A + bias`` (m x m)
    at ``y_off + i * row_step + j * col_step`` for ``i < rows``, ``j < cols`` (fewer than m at the edges).
    ``len(et)`` (``direct.EPILOGUES``): then add ``res`` at the same place, and/or apply ReLU, before the store."""
    v, a_t = len(vt), TRANSFORMS[len(mt)][2]
    size, out = a_t.shape[1], a_t.shape[0]
    epilogue = len(et)

    def codegen(context, builder, signature, args):
        ma, mo, ms, ya, yo, rs, cs, ba, bo, nr, nc, ra, _, _, _ = args
        vec = ir.VectorType(ir.FloatType(), v)
        block = [[builder.load(element_pointer(context, builder, signature.args[0], ma,
                                        row_offset(builder, mo, ms, size * i + j), vec), align=4) for j in range(size)]
                 for i in range(size)]
        result = _transform_2d(builder, block, a_t, a_t)
        bias_vec = builder.load(element_pointer(context, builder, signature.args[7], ba, bo, vec), align=4)
        for i in range(out):
            for j in range(out):
                with builder.if_then(_inside(builder, nr, nc, i, j), likely=True):
                    index = builder.add(row_offset(builder, yo, rs, i), builder.mul(cs, ir.Constant(cs.type, j)))
                    value = builder.fadd(result[i][j], bias_vec)
                    if epilogue in (direct.EPILOGUES["add_relu"], direct.EPILOGUES["add"]):
                        value = builder.fadd(value, builder.load(
                            element_pointer(context, builder, signature.args[11], ra, index, vec), align=4))
                    if epilogue in (direct.EPILOGUES["relu"], direct.EPILOGUES["add_relu"]):
                        value = relu_vector(builder, value)
                    builder.store(value, element_pointer(context, builder, signature.args[3], ya, index, vec), align=4)
        return context.get_dummy_value()

    return types.void(m, m_off, m_step, y, y_off, row_step, col_step, bias, b_off, rows, cols, res, et, vt,
                      mt), codegen


@intrinsic
def _gradient_transform(typingctx, dy, d_off, row_step, col_step, rows, cols, out, out_off, out_step, vt, mt):
    """Loads the m x m output-gradient block at ``d_off + i * row_step + j * col_step`` (zero past ``rows`` x
    ``cols``) and stores ``A dY A^T`` (a x a) at ``out_off + xi * out_step``."""
    v, a_t = len(vt), TRANSFORMS[len(mt)][2]
    size, m = a_t.shape[1], a_t.shape[0]

    def codegen(context, builder, signature, args):
        da, do, rs, cs, nr, nc, oa, oo, os_, _, _ = args
        vec = ir.VectorType(ir.FloatType(), v)
        zero = ir.Constant(vec, [0.0] * v)
        block = []
        for i in range(m):
            row = []
            for j in range(m):
                index = builder.add(row_offset(builder, do, rs, i), builder.mul(cs, ir.Constant(cs.type, j)))
                slot = cgutils.alloca_once_value(builder, zero)
                with builder.if_then(_inside(builder, nr, nc, i, j), likely=True):
                    builder.store(builder.load(element_pointer(context, builder, signature.args[0], da, index, vec),
                                               align=4), slot)
                row.append(builder.load(slot))
            block.append(row)
        result = _transform_2d(builder, block, a_t.T, a_t.T)
        for i in range(size):
            for j in range(size):
                builder.store(result[i][j], element_pointer(context, builder, signature.args[6], oa,
                                                     row_offset(builder, oo, os_, size * i + j), vec), align=4)
        return context.get_dummy_value()

    return types.void(dy, d_off, row_step, col_step, rows, cols, out, out_off, out_step, vt, mt), codegen


# ------------------------------------------------------------------------------------------------ kernels

@njit(**JIT)
def _transform_tile(x, b, iy0, ix0, h, w, v_block, v_off, vs, ct, vct, mt, bt):
    """The input transform of the a x a block of image ``b`` of flat ``x`` (n, h, w, c) whose top-left pixel is
    (``iy0``, ``ix0``), into ``v_block`` at ``v_off`` (position stride ``vs``). A block that crosses the border
    (the zero padding, and past an output that is not a multiple of m) loads only its pixels inside the image
    (``_input_transform_masked``): no padded copy of the input is made."""
    c = count(ct)
    vc = len(vct)
    a = len(mt) + 2
    base = ((b * h + iy0) * w + ix0) * c
    if iy0 >= 0 and ix0 >= 0 and iy0 + a <= h and ix0 + a <= w:
        for c0 in range(0, c, vc):
            _input_transform(x, base + c0, w * c, c, v_block, v_off + c0, vs, vct, mt, bt)
    else:
        rlo, rhi = max(0, -iy0), min(a, h - iy0)
        clo, chi = max(0, -ix0), min(a, w - ix0)
        for c0 in range(0, c, vc):
            _input_transform_masked(x, base + c0, w * c, c, rlo, rhi, clo, chi, v_block, v_off + c0, vs, vct, mt,
                                    bt)


@njit(**JIT)
def _forward(x, u, us, bias, res, out, h, w, pad, oh, ow, k, rb, g_lo, g_hi, ct, vct, vt, pt, kt, one, mt, et, bt):
    """Rows ``g_lo .. g_hi`` of the tile grid (row = image * th + tile row: split by rows, so one image uses every
    thread): ``x`` (n, h, w, c) flat, zero-padded by ``pad`` on the fly (``_transform_tile``);
    ``u`` the transformed weights, (c, k) per position ``xi`` at ``xi * us``; ``out`` (n, oh, ow, k) flat. Tiles
    go in blocks of ``rb`` rows of the grid. ``vct``: the input transform's vector width (divides c); ``vt``,
    ``pt``, ``kt``: the product's register tile (``px`` tiles x ``kb`` vectors over k); ``mt``: m; ``et``: the
    epilogue (``direct.EPILOGUES``; ``res``, shaped like ``out``, is the residual it adds)."""
    c = count(ct)
    px = len(pt)
    m = len(mt)
    positions = (m + 2) * (m + 2)
    kstep = len(vt) * len(kt)
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    tb = rb * tw
    vs, ms = tb * c + SKEW * 4 // u.itemsize, tb * k + SKEW  # the skew in bytes stays 64: a cache line
    v_block = np.empty(positions * vs, u.dtype)  # uint16 (bf16 bits) when U is
    m_block = np.empty(positions * ms, np.float32)
    for g0 in range(g_lo, g_hi, rb):
        g1 = min(g0 + rb, g_hi)
        nt = (g1 - g0) * tw
        main = nt - nt % px
        for g in range(g0, g1):
            b, ty = g // th, g % th
            for tx in range(tw):
                _transform_tile(x, b, m * ty - pad, m * tx - pad, h, w, v_block, ((g - g0) * tw + tx) * c, vs,
                                ct, vct, mt, bt)
        for xi in range(positions):
            for kq in range(0, k, kstep):
                for t0 in range(0, main, px):
                    acc = _products(tile_zero(vt, pt, kt), u, xi * us, kq, v_block, xi * vs + t0 * c, c, k, bt)
                    tile_store(acc, m_block, xi * ms + t0 * k + kq, k)
                for t0 in range(main, nt):  # the block's last tiles, one a register tile
                    last = _products(tile_zero(vt, one, kt), u, xi * us, kq, v_block, xi * vs + t0 * c, c, k, bt)
                    tile_store(last, m_block, xi * ms + t0 * k + kq, k)
        for g in range(g0, g1):
            b, ty = g // th, g % th
            rows = min(m, oh - m * ty)
            for tx in range(tw):
                t = (g - g0) * tw + tx
                cols = min(m, ow - m * tx)
                for kq in range(0, k, len(vt)):
                    _output_transform(m_block, t * k + kq, ms, out, ((b * oh + m * ty) * ow + m * tx) * k + kq,
                                      ow * k, k, bias, kq, rows, cols, res, et, vt, mt)


def _products(acc, u, u0, kq, v_block, v0, c, k, bt):
    """``acc`` plus V (tiles from ``v0``, ``c`` values each) @ U (``c`` rows of ``k`` from ``u0``; output channels
    from ``kq``). float32 operands: one FMA per channel. bf16 operands (uint16 arrays): one ``vdpbf16ps`` per pair
    of channels, U stored as pairs of rows (``_bf16_weights``)."""


@overload(_products)
def _products_typed(acc, u, u0, kq, v_block, v0, c, k, bt):
    if u.dtype == types.uint16:
        def pairs(acc, u, u0, kq, v_block, v0, c, k, bt):
            for ch in range(0, c, 2):  # row pair ch / 2 of U: 2 k uint16 from u0 + ch * k
                acc = tile_dot_bf16(acc, u, u0 + ch * k + 2 * kq, v_block, v0 + ch, c, bt)
            return acc
        return pairs

    def singles(acc, u, u0, kq, v_block, v0, c, k, bt):
        for ch in range(c):
            acc = tile_fma(acc, u, u0 + ch * k + kq, v_block, v0 + ch, c)
        return acc
    return singles


@njit(**JIT)
def _weight_grad(x, dy, du, us, h, w, pad, oh, ow, k, rb, g_lo, g_hi, ct, vct, vt, cbt, kt, mt, prt, bt):
    """Adds ``sum over tiles of V[xi]^T dM[xi]`` of tile-grid rows ``g_lo .. g_hi`` (row = image * th + tile row)
    into ``du`` ((c, k) per ``xi`` at ``xi * us``), in blocks of ``rb`` rows; ``dy`` (n, oh, ow, k) flat.
    ``len(prt)``: 1 float32 products; 2 bf16: V and dM rounded and packed as pairs of tiles (``pack_pairs``),
    one ``vdpbf16ps`` per pair of tiles."""
    c = count(ct)
    cb = len(cbt)
    m = len(mt)
    positions = (m + 2) * (m + 2)
    kstep = len(vt) * len(kt)
    th, tw = (oh + m - 1) // m, (ow + m - 1) // m
    tb = rb * tw
    vs, gs = tb * c + SKEW, tb * k + SKEW
    v_block = np.empty(positions * vs, np.float32)
    g_block = np.empty(positions * gs, np.float32)
    bf16 = len(prt) == 2
    v_pairs = np.empty((tb + 1) // 2 * 2 * c if bf16 else 0, np.uint16)  # one position's pairs of tiles
    g_pairs = np.empty((tb + 1) // 2 * 2 * k if bf16 else 0, np.uint16)
    for g0 in range(g_lo, g_hi, rb):
        g1 = min(g0 + rb, g_hi)
        nt = (g1 - g0) * tw
        for g in range(g0, g1):
            b, ty = g // th, g % th
            rows = min(m, oh - m * ty)
            for tx in range(tw):
                t = (g - g0) * tw + tx
                _transform_tile(x, b, m * ty - pad, m * tx - pad, h, w, v_block, t * c, vs, ct, vct, mt, bt)
                cols = min(m, ow - m * tx)
                for kq in range(0, k, len(vt)):
                    _gradient_transform(dy, ((b * oh + m * ty) * ow + m * tx) * k + kq, ow * k, k, rows, cols,
                                        g_block, t * k + kq, gs, vt, mt)
        pairs = (nt + 1) // 2
        for xi in range(positions):
            if bf16:  # pack this position's V and dM as pairs of tiles (they stay in L1 for its products)
                for p in range(pairs):
                    t = 2 * p
                    for c0 in range(0, c, len(vct)):
                        pack_pairs(v_block, xi * vs + t * c + c0, xi * vs + (t + 1) * c + c0, t + 1 < nt, v_pairs,
                                   2 * (p * c + c0), vct, bt)
                    for k0 in range(0, k, len(vt)):
                        pack_pairs(g_block, xi * gs + t * k + k0, xi * gs + (t + 1) * k + k0, t + 1 < nt, g_pairs,
                                   2 * (p * k + k0), vt, bt)
            for c0 in range(0, c, cb):
                for kq in range(0, k, kstep):
                    at = xi * us + c0 * k + kq
                    acc = tile_load(tile_zero(vt, cbt, kt), du, at, k)
                    if bf16:
                        for p in range(pairs):
                            acc = tile_dot_bf16(acc, g_pairs, 2 * (p * k + kq), v_pairs, 2 * (p * c + c0), 2, bt)
                    else:
                        for t in range(nt):
                            acc = tile_fma(acc, g_block, xi * gs + t * k + kq, v_block, xi * vs + t * c + c0, 1)
                    tile_store(acc, du, at, k)


# ---------------------------------------------------------------------------------------------- wrappers

def applies(c, k, r, s, stride, dtype, width=None):
    """Whether a Winograd kernel takes a convolution here: 3x3, stride 1, float32, c and k multiples of 8, and a
    CPU with vectors (``direct.SIMD_WIDTH``)."""
    width = direct.SIMD_WIDTH if width is None else width
    return (width > 0 and r == 3 and s == 3 and stride == 1 and np.dtype(dtype) == np.float32
            and c % 8 == 0 and k % 8 == 0)


def _skewed(c, k, itemsize=4):
    """Distance, in elements of ``itemsize`` bytes, between the (c, k) blocks of two transform positions: c * k
    and the 64 bytes of ``SKEW``."""
    return c * k + SKEW * 4 // itemsize


def _positions(flat, us, c, k, m):
    """The (a*a, c, k) view of a skewed transform-domain array."""
    return flat.reshape((m + 2) ** 2, us)[:, :c * k].reshape(-1, c, k)


def _transformed_weights(w, m):
    """(U flat, its position stride): U[xi] (c x k) = (G g G^T)[xi] at ``xi * stride``."""
    k, c = w.shape[:2]
    g = TRANSFORMS[m][1].astype(np.float32)
    us = _skewed(c, k)
    u = np.empty(((m + 2) ** 2, us), np.float32)
    gw = np.matmul(g, pack_weights(w).reshape(3, 3 * c * k)).reshape(m + 2, 3, c * k)  # G g down the columns
    u[:, :c * k] = np.matmul(g, gw).reshape(-1, c * k)  # then along the rows
    return u.reshape(-1), us


@njit(**JIT)
def _pair_rows(u, us, out, out_s, positions, c, k, vt, bt):
    """Rows 2p and 2p + 1 of each position's (c, k) block of ``u`` (at ``xi * us``) interleaved and rounded to
    bf16 into ``out``: pair p, output channel kk at ``xi * out_s + 2 (p k + kk)`` (+1 for the odd row)."""
    for xi in range(positions):
        for p in range(c // 2):
            for k0 in range(0, k, len(vt)):
                pack_pairs(u, xi * us + 2 * p * k + k0, xi * us + (2 * p + 1) * k + k0, True, out,
                           xi * out_s + 2 * (p * k + k0), vt, bt)


def _bf16_weights(u, us, c, k, m, width=None):
    """U (skewed float32, ``_transformed_weights``) for bf16 products: each position's rows in pairs, (c / 2, k,
    2) — row pair p, output channel kk holds U[2p, kk] and U[2p + 1, kk] next to each other — rounded to bf16
    (uint16; the skew between positions 64 bytes, as float32's). Returns (U, its position stride)."""
    out_s = _skewed(c, k, 2)
    out = np.zeros((m + 2) ** 2 * out_s, np.uint16)
    _pair_rows(u, us, out, out_s, (m + 2) ** 2, c, k, token(vector_width(k, width)), instruction_token())
    return out, out_s


def _precision_token(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return token(2 if precision == "bf16" else 1)


def transform_weights(w, m=WINOGRAD_TILE):
    """``U[xi]`` = (G g G^T)[xi] for every filter: (k, c, 3, 3) -> (a*a, c, k) float32 (a view)."""
    u, us = _transformed_weights(w, m)
    return _positions(u, us, w.shape[1], w.shape[0], m)


def weight_grad_from_transformed(du, c, k, m=WINOGRAD_TILE):
    """dg = G^T dU G for every filter: (a*a, c, k) -> (k, c, 3, 3) float32."""
    g = TRANSFORMS[m][1].astype(np.float32)
    d = np.asarray(du, np.float32).reshape(m + 2, m + 2, c * k)
    rows = np.matmul(g.T, d)  # (a, 3, c*k): G^T applied along each row
    dg = np.matmul(g.T, rows.transpose(1, 0, 2))  # (3, 3, c*k): then down the columns; [j, i] order
    return np.ascontiguousarray(dg.reshape(3, 3, c, k).transpose(3, 2, 1, 0))


def forward(x, w, bias, padding, m=WINOGRAD_TILE, width=None, rows=None, residual=None, relu=False,
            precision="float32"):
    """Stride-1 3x3 convolution of ``x`` (n, h, w, c) float32 with ``w`` (k, c, 3, 3), zero-padded by
    ``padding``: (n, oh, ow, k); plus ``residual`` (n, oh, ow, k) if given, then ReLU if ``relu``, in the same
    pass. ``rows``: rows of the tile grid per block (default: enough for ``BLOCK_TILES`` tiles). ``precision``
    "bf16": the products' operands, V and U, rounded to bf16 (float32 sums; ``lean.kernels.bf16``)."""
    n, h, wd, c = x.shape
    k = w.shape[0]
    prt = _precision_token(precision)
    oh, ow = h + 2 * padding - 2, wd + 2 * padding - 2
    tw = (ow + m - 1) // m
    v, px, kb = tile_shape(k, tw, width)
    vc = vector_width(c, width)
    out = np.empty((n, oh, ow, k), np.float32)
    bias_vec = np.zeros(k, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    u, us = _transformed_weights(w, m)
    if len(prt) == 2:
        u, us = _bf16_weights(u, us, c, k, m, width)
    xf, of = np.ascontiguousarray(x, np.float32).reshape(-1), out.reshape(-1)
    epilogue = direct.epilogue_code(residual, relu)
    rf = of if residual is None else np.ascontiguousarray(residual, np.float32).reshape(-1)
    tokens = (size(c), token(vc), token(v), token(px), token(kb), token(1), token(m), token(epilogue),
              instruction_token())
    rb = rows if rows is not None else -(-BLOCK_TILES // tw)
    th = (oh + m - 1) // m
    run_split(lambda g0, g1: _forward(xf, u, us, bias_vec, rf, of, h, wd, padding, oh, ow, k, rb, g0, g1, *tokens),
              n * th)
    return out


def weight_grad(x, dy, padding, m=WINOGRAD_TILE, width=None, rows=None, precision="float32"):
    """dW (k, c, 3, 3) of the stride-1 3x3 convolution of ``x`` (n, h, w, c) zero-padded by ``padding`` whose
    output gradient is ``dy`` (n, oh, ow, k); ``rows``: rows of the tile grid per block (default: enough for
    ``BLOCK_TILES`` tiles). ``precision`` "bf16": V and dM rounded to bf16, float32 sums."""
    n, h, wd, c = x.shape
    _, oh, ow, k = dy.shape
    prt = _precision_token(precision)
    v, cb, kb = grad_tile_shape(c, k, width)
    vc = vector_width(c, width)
    xf, df = np.ascontiguousarray(x, np.float32).reshape(-1), np.ascontiguousarray(dy, np.float32).reshape(-1)
    tokens = (size(c), token(vc), token(v), token(cb), token(kb), token(m), prt, instruction_token())
    tw = (ow + m - 1) // m
    rb = rows if rows is not None else -(-BLOCK_TILES // tw)
    us = _skewed(c, k)

    def grid_rows(g0, g1):
        du = np.zeros((m + 2) ** 2 * us, np.float32)
        _weight_grad(xf, df, du, us, h, wd, padding, oh, ow, k, rb, g0, g1, *tokens)
        return du

    total = run_split_sum(grid_rows, n * ((oh + m - 1) // m))
    return weight_grad_from_transformed(_positions(total, us, c, k, m), c, k, m)
