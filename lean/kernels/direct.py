"""Direct convolution on register tiles (``lean.kernels.simd``): forward, input gradient and weight gradient.

Where the CPU has wide vectors (AVX-512 or AVX2, ``SIMD_WIDTH``), the convolutions of more than a few channels
run here instead of im2col + BLAS: on ResNet-20's layers the forward pass went from 64-94 GFLOP/s to 240-400
GFLOP/s on this project's 2-core machine (``benchmarks/conv_kernels.py``).

- **Forward** (``_forward``): activations channels-last and zero-padded once (``pad_images``), weights packed as
  (r, s, c, k) with k contiguous. An output tile is ``px`` neighbouring pixels of one row x ``kb`` vectors of
  ``v`` output channels, held in registers while the loop runs over (r, s, c): per step ``kb`` weight vectors are
  loaded once and meet ``px`` broadcast input values (``simd.tile_fma``). The bias is added as the tile is
  stored. Row ends that a tile does not fill go one pixel at a time.
- **Input gradient**, stride 1: the forward kernel on the output gradient padded by ``r - 1 - padding``, with the
  weights flipped in space and their two channel axes swapped (``flip_weights``). 3x3 stride-2 layers: four
  stride-1 phase convolutions that each write every other pixel (``input_grad_strided``); other strided layers
  take the im2col path for it.
- **Weight gradient** (``_weight_grad``): for each tap (r, s), dW[r, s] (c x k) is the sum over pixels of the
  outer product of the shifted input (c values) and the output gradient (k values); a tile holds ``cb`` input
  channels x ``kb`` vectors of output channels, and each worker thread sums its own images into its own buffer
  (added afterwards, in a fixed order: results depend on the thread count, not on timing).

Everything here is float32 (the vectors are float32): float64 operands (gradient checks) take the im2col path.
The tile shapes per layer come from ``tile_shape`` and ``grad_tile_shape``, measured on this machine.
"""

import numpy as np

from ._config import JIT, U, njit, run_split, run_split_sum
from .simd import (
    SIMD_WIDTH,
    count,
    size,
    tile_add,
    tile_add_rows,
    tile_fma,
    tile_load,
    tile_relu,
    tile_store,
    tile_zero,
    token,
)


@njit(**JIT)
def _pad_images(x, out, h, w, c, pad, bottom, right, b0, b1):
    """Images ``b0 .. b1`` of flat ``x`` (n, h, w, c) into flat ``out`` (n, pad + h + bottom, pad + w + right,
    c): a zero border of ``pad`` pixels above and left, ``bottom`` and ``right`` below and right. Unsigned
    indices let LLVM vectorize the copies (an element loop with signed ones ran 10x slower than memcpy)."""
    row, left, tail = w * c, pad * c, right * c
    prow = left + row + tail
    ph = pad + h + bottom
    for b in range(b0, b1):
        base = U(b * ph * prow)
        for q in range(pad * prow):
            out[base + U(q)] = 0.0
        for q in range(bottom * prow):
            out[base + U((pad + h) * prow + q)] = 0.0
        for iy in range(h):
            dst = base + U((iy + pad) * prow)
            src = U((b * h + iy) * row)
            for q in range(left):
                out[dst + U(q)] = 0.0
            for q in range(tail):
                out[dst + U(left + row + q)] = 0.0
            for q in range(row):
                out[dst + U(left + q)] = x[src + U(q)]


EPILOGUES = {"bias": 0, "relu": 1, "add_relu": 2, "add": 3}  # what a forward pass does after the bias


def epilogue_code(residual, relu):
    """The ``EPILOGUES`` code of adding ``residual`` (None: nothing) and then ``relu``."""
    if residual is None:
        return EPILOGUES["relu" if relu else "bias"]
    return EPILOGUES["add_relu" if relu else "add"]


@njit(inline="always")
def _epilogue(acc, res, at, stride, et):
    """``acc`` plus the tile of ``res`` at ``at`` and/or ReLU, as ``len(et)`` says (a compile-time branch)."""
    if len(et) == 2 or len(et) == 3:
        acc = tile_add(acc, tile_load(acc, res, at, stride))
    if len(et) == 1 or len(et) == 2:
        acc = tile_relu(acc)
    return acc


@njit(**JIT)
def _forward(xp, wp, bias, res, out, ph, pw, oh, ow, k, r, s, place, row0, row1, ct, st, vt, pt, kt, one, et):
    """Output rows ``row0 .. row1`` (row = image * oh + y; split by rows, so one image uses every thread):
    ``out`` (n, oh, ow, k) flat, from ``xp`` (n, ph, pw, c) flat and ``wp`` (r, s, c, k) flat. Tile:
    ``len(pt)`` pixels x ``len(kt)`` vectors of ``len(vt)`` lanes; c (``simd.count(ct)``) and ``len(st)`` =
    stride are compile-time constants (``one`` is the 1-pixel tile of row ends). ``len(et)``: the epilogue
    after the bias (``EPILOGUES``: ``res``, shaped like ``out``, added, and/or ReLU). ``place``: where output
    pixel (b, oy, ox) goes, ``place[0] + b * place[1] + oy * place[2] + ox * place[3]`` (values; a strided
    layer's input gradient writes every other pixel, ``input_grad_strided``)."""
    c, stride = count(ct), len(st)
    px = len(pt)
    kstep = len(vt) * len(kt)
    xstep = stride * c
    main = ow - ow % px
    o_base, o_image, o_row, o_pixel = place
    for row in range(row0, row1):
        b, oy = row // oh, row % oh
        orow = o_base + b * o_image + oy * o_row
        xrow = (b * ph + oy * stride) * pw * c
        for kq in range(0, k, kstep):
            for ox in range(0, main, px):
                acc = _patch_sum(tile_zero(vt, pt, kt), wp, xp, xrow + ox * xstep, pw * c, c, k, kq, r, s, xstep)
                at = orow + ox * o_pixel + kq
                tile_store(_epilogue(tile_add_rows(acc, bias, kq), res, at, o_pixel, et), out, at, o_pixel)
            for ox in range(main, ow):  # row ends, one pixel a tile
                last = _patch_sum(tile_zero(vt, one, kt), wp, xp, xrow + ox * xstep, pw * c, c, k, kq, r, s,
                                  xstep)
                at = orow + ox * o_pixel + kq
                tile_store(_epilogue(tile_add_rows(last, bias, kq), res, at, o_pixel, et), out, at, o_pixel)


@njit(inline="always")
def _patch_sum(acc, wp, xp, x0, row, c, k, kq, r, s, xstep):
    """``acc`` plus the patch products of the tile whose first pixel's patch starts at ``x0`` (input rows
    ``row`` values apart; neighbouring pixels ``xstep`` apart) with the packed weights of channels ``kq ..``."""
    for i in range(r):
        for j in range(s):
            wbase = (i * s + j) * c * k + kq
            xbase = x0 + i * row + j * c
            for ch in range(c):
                acc = tile_fma(acc, wp, wbase + ch * k, xp, xbase + ch, xstep)
    return acc


@njit(**JIT)
def _weight_grad(xp, dy, dw, ph, pw, oh, ow, k, r, s, b0, b1, ct, st, vt, cbt, kt):
    """Adds the weight gradient of images ``b0 .. b1`` into ``dw`` (r, s, c, k) flat: ``xp`` (n, ph, pw, c) and
    ``dy`` (n, oh, ow, k) flat. For a tap row i, the s * c weights (j, ch) meet s * c neighbouring values of an
    input row: a tile holds ``len(cbt)`` of them (which divides s * c, so few-channel layers fill a tile too)
    x ``len(kt)`` vectors of output channels."""
    c, stride = count(ct), len(st)
    cb = len(cbt)
    kstep = len(vt) * len(kt)
    xstep = stride * c
    row = s * c
    for b in range(b0, b1):
        for i in range(r):
            for q0 in range(0, row, cb):
                for kq in range(0, k, kstep):
                    at = (i * row + q0) * k + kq
                    acc = tile_load(tile_zero(vt, cbt, kt), dw, at, k)
                    for oy in range(oh):
                        xrow = (b * ph + oy * stride + i) * pw * c + q0
                        drow = (b * oh + oy) * ow * k + kq
                        for ox in range(ow):
                            acc = tile_fma(acc, dy, drow + ox * k, xp, xrow + ox * xstep, 1)
                    tile_store(acc, dw, at, k)


# ---------------------------------------------------------------------------------------------- wrappers

def applies(x_dtype, k, groups, width=None):
    """Whether the direct kernels take a convolution: vectors here, float32, no groups, k a multiple of 8."""
    width = SIMD_WIDTH if width is None else width
    return width > 0 and x_dtype == np.float32 and groups == 1 and k % 8 == 0


def vector_width(k, width=None):
    """Lanes used for ``k`` output channels: the machine's width if it divides ``k``, else 8 (k % 8 == 0; also
    where the machine has no vectors and the tiled method was asked for by name)."""
    width = SIMD_WIDTH if width is None else width
    return width if width > 0 and k % width == 0 else 8


def _accumulators(width):
    """Register budget of a tile: half the vector registers (32 on AVX-512, 16 on AVX2), whatever lanes a tile
    uses (an 8-lane tile on AVX-512 still has 32 registers)."""
    width = SIMD_WIDTH if width is None else width
    return 16 if width == 16 else 8


def tile_widths(vectors, ow, registers):
    """(px, kb) of a forward tile over ``vectors`` vectors of output channels and rows of ``ow`` pixels, with
    ``registers`` accumulators: kb the largest of 4, 2, 1 dividing ``vectors``; px the tile width that leaves the
    fewest tiles a row (row ends go one pixel a tile, as slow as a full tile), the widest of those. Also the int8
    tiles' (``intsimd``)."""
    kb = next(b for b in (4, 2, 1) if vectors % b == 0)
    widest = max(1, min(ow, registers // kb))
    return min(range(widest, 0, -1), key=lambda p: ow // p + ow % p), kb


def tile_shape(k, ow, width=None):
    """(v, px, kb) of the forward tile for ``k`` output channels and rows of ``ow`` pixels (``tile_widths``)."""
    v = vector_width(k, width)
    px, kb = tile_widths(k // v, ow, _accumulators(width))
    return v, px, kb


def grad_tile_shape(c, k, width=None, taps=1):
    """(v, cb, kb) of the weight-gradient tile for ``c`` input and ``k`` output channels: cb is the largest
    divisor of ``taps * c`` (the weights of a tap row, ``_weight_grad``) that the accumulator budget allows."""
    v = vector_width(k, width)
    vectors = k // v
    kb = next(b for b in (4, 2, 1) if vectors % b == 0)
    cb = next(b for b in range(_accumulators(width) // kb, 0, -1) if (taps * c) % b == 0)
    return v, cb, kb


def pad_images(x, pad, bottom=None, right=None):
    """``x`` (n, h, w, c) float32 with a zero border of ``pad`` pixels (``bottom`` and ``right``, if given, on
    those sides instead): (n, pad + h + bottom, pad + w + right, c); each worker thread copies its own images
    (``_pad_images``)."""
    n, h, w, c = x.shape
    bottom = pad if bottom is None else bottom
    right = pad if right is None else right
    out = np.empty((n, pad + h + bottom, pad + w + right, c), np.float32)
    xf, of = np.ascontiguousarray(x, np.float32).reshape(-1), out.reshape(-1)
    run_split(lambda b0, b1: _pad_images(xf, of, h, w, c, pad, bottom, right, b0, b1), n)
    return out


def pack_weights(w):
    """(k, c, r, s) -> (r, s, c, k), contiguous: a tap's input channel's k weights are one run."""
    return np.ascontiguousarray(np.asarray(w, np.float32).transpose(2, 3, 1, 0))


def flip_weights(w):
    """The packed weights of the input gradient's convolution: taps flipped, input and output channels swapped
    ((k, c, r, s) -> (r, s, k, c) of ``w[:, :, ::-1, ::-1]``)."""
    return np.ascontiguousarray(np.asarray(w, np.float32)[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))


def forward_padded(xp, packed, bias, k, r, s, stride, oh, ow, width=None, residual=None, relu=False):
    """The convolution of an already padded input ``xp`` (n, ph, pw, c) with ``packed`` weights (r, s, c, k):
    returns (n, oh, ow, k) float32. ``bias``: (k,) or None; ``residual`` (n, oh, ow, k), if given, is added and
    then ReLU applied if ``relu``, as the tiles are stored."""
    n, ph, pw, c = xp.shape
    v, px, kb = tile_shape(k, ow, width)
    out = np.empty((n, oh, ow, k), np.float32)
    bias_vec = np.zeros(k, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    xf, wf, of = xp.reshape(-1), packed.reshape(-1), out.reshape(-1)
    rf = of if residual is None else np.ascontiguousarray(residual, np.float32).reshape(-1)
    tokens = (size(c), token(stride), token(v), token(px), token(kb), token(1), token(epilogue_code(residual, relu)))
    place = (0, oh * ow * k, ow * k, k)
    run_split(lambda r0, r1: _forward(xf, wf, bias_vec, rf, of, ph, pw, oh, ow, k, r, s, place, r0, r1, *tokens),
              n * oh)
    return out


def input_grad_strided(dy, w, h, wd, width=None):
    """The input gradient (n, h, wd, c) of a 3x3, stride-2, padding-1 convolution with ``w`` (k, c, 3, 3) whose
    output gradient is ``dy`` (n, h / 2, wd / 2, k), h and wd even, on the tiled forward kernel.

    Input pixel (2a + py, 2b + px) gets dy[a + t, b + u] * w[:, :, i, j] only from taps of one parity: i = 1 for
    py = 0 (t = 0); i = 2 (t = 0) and i = 0 (t = 1) for py = 1; the same for columns. So the gradient is four
    stride-1 convolutions of dy (padded by one zero row and column at the end) with 1x1, 1x2, 2x1 and 2x2 taps,
    each writing every other pixel of dx (``place``): 9 taps in all, as many multiply-adds as the forward pass.
    """
    n, oh, ow, k = dy.shape
    c = w.shape[1]
    dyp = pad_images(dy, 0, bottom=1, right=1)
    dx = np.empty((n, h, wd, c), np.float32)
    taps = {0: [1], 1: [2, 0]}  # per output parity: kernel taps in the order of their offset t = 0, 1
    v, px, kb = tile_shape(c, ow, width)
    xf, of = dyp.reshape(-1), dx.reshape(-1)
    bias = np.zeros(c, np.float32)
    tokens = (size(k), token(1), token(v), token(px), token(kb), token(1), token(EPILOGUES["bias"]))
    for py in (0, 1):
        for px_ in (0, 1):
            rows, cols = taps[py], taps[px_]
            packed = np.ascontiguousarray(np.asarray(w, np.float32)[:, :, rows][:, :, :, cols].transpose(2, 3, 0, 1))
            place = (py * wd * c + px_ * c, h * wd * c, 2 * wd * c, 2 * c)
            wf = packed.reshape(-1)
            run_split(lambda r0, r1, wf=wf, place=place, rows=rows, cols=cols: _forward(
                xf, wf, bias, of, of, oh + 1, ow + 1, oh, ow, c, len(rows), len(cols), place, r0, r1, *tokens),
                n * oh)
    return dx


def weight_grad_padded(xp, dy, r, s, stride, width=None):
    """dW (k, c, r, s) float32 of the convolution of padded ``xp`` (n, ph, pw, c) giving ``dy`` (n, oh, ow, k)."""
    n, ph, pw, c = xp.shape
    _, oh, ow, k = dy.shape
    v, cb, kb = grad_tile_shape(c, k, width, taps=s)
    xf, df = xp.reshape(-1), np.ascontiguousarray(dy, np.float32).reshape(-1)
    tokens = (size(c), token(stride), token(v), token(cb), token(kb))

    def images(b0, b1):
        dw = np.zeros(r * s * c * k, np.float32)
        _weight_grad(xf, df, dw, ph, pw, oh, ow, k, r, s, b0, b1, *tokens)
        return dw

    total = run_split_sum(images, n)
    return np.ascontiguousarray(total.reshape(r, s, c, k).transpose(3, 2, 0, 1))
