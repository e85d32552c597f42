"""Low-bit integer convolution and matmul: int8 (or 4-bit packed) operands, int32 accumulation, float rescale.

y[m, k] = x_scale * w_scale[k] * sum_p x_codes[m, p] * w_codes[k, p]. Four ways to form the exact integer sums:

- VNNI (``lean/kernels/vnni.py``): where the CPU has AVX-512 VNNI, its 4-byte integer dot-product instruction
  straight on the padded input, without im2col: the fastest (2.2-2.7x the float convolution here);
- madd (``lean/kernels/madd.py``): where it has AVX2 but no VNNI, the 16-bit multiply-add ``vpmaddwd`` on the
  same layout, codes widened to int16;

and, with patches built from int8 activations by the same im2col as the float path (``conv._im2col_rows``):

- the integer kernel: four output channels at a time so each loaded activation is used four times (a small
  register block), int32 sums (exact for patches below 2^31 / 128^2 = 131,072 codes);
- exact float: the int8 codes as float32 through BLAS; every partial sum is an integer below 2^24 when a patch
  has at most 1,024 codes, so float32 holds it exactly and the result is bit-identical to the integer kernel's,
  at the speed of the float convolution (measured here: the integer kernel is ~3x slower than BLAS).
4-bit weights are stored two a byte (low nibble first) and unpacked to int8 before the product.
"""

import numpy as np

from ._checks import int_array, int_scalar, real_array, real_scalar, shape_arg
from ._config import JIT, PARALLEL_JIT, njit, prange
from .conv import _check_conv_args, patch_product, weight_to_matrix
from .madd import MADD_AVAILABLE, madd_conv2d
from .vnni import VNNI_AVAILABLE, vnni_conv2d


@njit(**JIT)
def _int8_rows(a, b, out, lo, hi):
    """out[lo:hi] (int32) = a[lo:hi] (int8) @ b (k, p) int8 ^T, four output channels at a time."""
    p = a.shape[1]
    k = b.shape[0]
    k4 = k - k % 4
    for i in range(lo, hi):
        for j in range(0, k4, 4):
            acc0 = np.int32(0)
            acc1 = np.int32(0)
            acc2 = np.int32(0)
            acc3 = np.int32(0)
            for q in range(p):
                av = np.int32(a[i, q])
                acc0 += av * np.int32(b[j, q])
                acc1 += av * np.int32(b[j + 1, q])
                acc2 += av * np.int32(b[j + 2, q])
                acc3 += av * np.int32(b[j + 3, q])
            out[i, j] = acc0
            out[i, j + 1] = acc1
            out[i, j + 2] = acc2
            out[i, j + 3] = acc3
        for j in range(k4, k):
            acc = np.int32(0)
            for q in range(p):
                acc += np.int32(a[i, q]) * np.int32(b[j, q])
            out[i, j] = acc


@njit(**PARALLEL_JIT)
def _int8_matmul_parallel(a, b, out):
    m = a.shape[0]
    blocks = (m + 255) // 256
    for blk in prange(blocks):
        _int8_rows(a, b, out, blk * 256, min(m, (blk + 1) * 256))


def int8_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int8 (m, p) @ int8 (k, p)^T -> int32 (m, k).

    Parameters
    ----------
    a : np.ndarray
        (m, p) integer codes in -128..127 (int8, or a wider integer dtype holding such values).
    b : np.ndarray
        (k, p) integer codes in -128..127.

    Returns
    -------
    np.ndarray
        (m, k) int32: exact while every sum fits in int32 (it wraps beyond; p is not checked).
    """
    a = int_array(a, "int8_matmul operand a", -128, 127, np.int8)
    b = int_array(b, "int8_matmul operand b", -128, 127, np.int8)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"int8_matmul needs (m, p) and (k, p); got {a.shape} and {b.shape}")
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    _int8_matmul_parallel(a, b, out)
    return out


def pack_int4(codes: np.ndarray) -> np.ndarray:
    """Signed 4-bit codes (-8..7) two a byte, low nibble first.

    Parameters
    ----------
    codes : np.ndarray
        Integer codes in -8..7, any shape (flattened in C order).

    Returns
    -------
    np.ndarray
        ((codes.size + 1) // 2,) uint8; an odd count leaves the last high nibble 0.
    """
    c = int_array(codes, "4-bit codes", -8, 7, np.int16).reshape(-1)
    u = (c & 0xF).astype(np.uint8)
    if u.size % 2:
        u = np.append(u, np.uint8(0))
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8)


def _packed_bytes(packed, count):
    """``packed`` as a flat uint8 array of exactly (count + 1) // 2 bytes (int8 bytes are taken bit for bit)."""
    p = np.asarray(packed)
    if p.dtype == np.int8:
        p = p.view(np.uint8)
    p = int_array(p, "packed 4-bit codes", 0, 255, np.uint8).reshape(-1)
    need = (count + 1) // 2
    if p.size < need:
        raise ValueError(f"{p.size} bytes cannot hold {count} 4-bit weights (need {need})")
    if p.size > need:
        raise ValueError(f"{p.size} bytes hold more than {count} 4-bit codes (expected {need} bytes)")
    return p


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    """The codes of ``pack_int4``: int8 in -8..7.

    Parameters
    ----------
    packed : np.ndarray
        ((count + 1) // 2,) bytes (uint8; int8 taken bit for bit).
    count : int
        Number of codes packed (>= 0).

    Returns
    -------
    np.ndarray
        (count,) int8.
    """
    count = int_scalar(count, "count", lo=0)
    p = _packed_bytes(packed, count)
    u = np.empty(p.size * 2, dtype=np.int16)
    u[0::2], u[1::2] = p & 0xF, p >> 4
    return np.where(u >= 8, u - 16, u)[:count].astype(np.int8)


INT8_METHODS = ("auto", "vnni", "madd", "int", "exact-float")


def _patch_limits(unsigned):
    """Longest patches that are exact in float32 partial sums (< 2^24, where float32 holds every integer) and in
    int32 (< 2^31): products of int8 codes reach 128 * 128 (1,024 and 131,072 codes), of uint8 activations
    with int8 weights 255 * 128 (514 and 65,793)."""
    top = 255 * 128 if unsigned else 128 * 128
    return (1 << 24) // top, (1 << 31) // top


def auto_int8_method(patch_codes: int, unsigned: bool = False) -> str:
    """The method ``int8_conv2d(method="auto")`` runs for patches of ``patch_codes`` codes on this machine.

    Parameters
    ----------
    patch_codes : int
        Codes in one patch, r * s * c.
    unsigned : bool
        Whether the activation codes are uint8.

    Returns
    -------
    str
        ``"vnni"``, ``"madd"``, ``"exact-float"`` or ``"int"``.
    """
    exact_float, exact_int = _patch_limits(unsigned)
    if VNNI_AVAILABLE and patch_codes <= exact_int:
        return "vnni"
    if MADD_AVAILABLE and patch_codes <= exact_int:
        return "madd"
    return "exact-float" if patch_codes <= exact_float else "int"


def int8_conv2d(x_codes: np.ndarray, x_scale: float, w_codes: np.ndarray, w_scale: float | np.ndarray,
                stride: int = 1, padding: int = 0, method: str = "auto") -> np.ndarray:
    """Integer conv on channels-last int8 (or uint8: unsigned) activations (n, h, w, c) and int8 weights (k, c, r, s).

    Returns float32 (n, oh, ow, k) = rescaled exact integer sums. ``w_scale`` is a scalar or one per output
    channel. ``method``: ``vnni`` runs the AVX-512 VNNI kernel (only where the CPU has it); ``madd`` the AVX2
    ``vpmaddwd`` kernel (where lean's vector kernels run); ``int`` the portable
    int32-accumulating kernel; ``exact-float`` multiplies the int8 codes in float32 BLAS, which is exact (every
    partial sum is an integer below 2^24) for patches of at most 1,024 codes, and as fast as the float
    convolution; ``auto`` takes ``vnni`` where the CPU has it, else ``madd`` where it runs, else ``exact-float``
    where it is exact, else ``int``.

    Parameters
    ----------
    x_codes : np.ndarray
        (n, h, w, c) activation codes, dtype int8 (signed) or uint8 (unsigned, e.g. after a ReLU); the dtype
        says which, so no other dtype is taken.
    x_scale : float
        The activations' step, finite and > 0.
    w_codes : np.ndarray
        (k, c, r, s) weight codes in -128..127 (int8, or a wider integer dtype holding such values).
    w_scale : float or np.ndarray
        The weights' step: a scalar or (k,), finite.
    stride, padding : int
        As for ``conv2d_forward`` (groups=1 only).
    method : str
        ``"auto"``, ``"vnni"``, ``"madd"``, ``"int"`` or ``"exact-float"``.

    Returns
    -------
    np.ndarray
        (n, oh, ow, k) float32: ``x_scale * w_scale[k] *`` the exact integer sums.
    """
    if method not in INT8_METHODS:
        raise ValueError(f"unknown int8 conv method {method!r}; choose one of: {', '.join(INT8_METHODS)}")
    x_codes = np.asarray(x_codes)
    if x_codes.dtype not in (np.int8, np.uint8):
        raise ValueError(f"int8_conv2d x_codes must be int8 (signed) or uint8 (unsigned) codes; got dtype "
                         f"{x_codes.dtype}")
    unsigned = x_codes.dtype == np.uint8
    x_codes = np.ascontiguousarray(x_codes)
    w_codes = int_array(w_codes, "int8_conv2d w_codes", -128, 127, np.int8)
    oh, ow, stride, padding, _ = _check_conv_args(x_codes, w_codes, stride, padding, 1)
    n, _, _, c = x_codes.shape
    k, cg, r, s = w_codes.shape
    x_scale = real_scalar(x_scale, "int8_conv2d x_scale", positive=True)
    w_scale = real_array(w_scale, "int8_conv2d w_scale", np.float32)
    if w_scale.shape not in ((), (1,), (k,)):
        raise ValueError(f"int8_conv2d w_scale must be a scalar or ({k},), one per output channel; got shape "
                         f"{w_scale.shape}")
    if not np.all(np.isfinite(w_scale)):
        raise ValueError("int8_conv2d w_scale must be finite")
    scale = np.ascontiguousarray(np.float32(x_scale) * np.broadcast_to(w_scale, (k,)), dtype=np.float32)
    exact_float, exact_int = _patch_limits(unsigned)
    if r * s * cg > exact_int:
        raise ValueError(f"integer sums of {r * s * cg} codes a patch may overflow int32 (at most {exact_int})")
    if method == "auto":
        method = auto_int8_method(r * s * cg, unsigned)
    if method == "vnni":
        if not VNNI_AVAILABLE:
            raise ValueError("method 'vnni' needs a CPU with AVX-512 VNNI (and Numba compiling for it); this one "
                             "has none: use 'auto'")
        return vnni_conv2d(x_codes, w_codes, scale, stride, padding, oh, ow)
    if method == "madd":
        if not MADD_AVAILABLE:
            raise ValueError("method 'madd' needs a CPU with AVX2 (and Numba compiling for it); use 'auto'")
        return madd_conv2d(x_codes, w_codes, scale, stride, padding, oh, ow)
    if method == "exact-float":
        if r * s * cg > exact_float:
            raise ValueError(f"exact-float needs patches of at most {exact_float} codes; this one has "
                             f"{r * s * cg}")
        return _exact_float_conv(x_codes, w_codes, scale, stride, padding, oh, ow)
    wmat = np.ascontiguousarray(w_codes.transpose(0, 2, 3, 1).reshape(k, r * s * cg))  # rows follow (i, j, ch)
    out = np.empty((n * oh * ow, k), dtype=np.int32)
    patch_product(x_codes, out, r, s, stride, padding, oh, ow, 0, cg, x_codes.dtype,
                  lambda buf, block: _int8_rows(buf, wmat, block, 0, buf.shape[0]))
    return (out * scale).astype(np.float32).reshape(n, oh, ow, k)


@njit(**JIT)
def _scale_columns(block, scale):
    m, k = block.shape
    for i in range(m):
        for j in range(k):
            block[i, j] *= scale[j]


def _exact_float_conv(x_codes, w_codes, scale, stride, padding, oh, ow):
    """The int8 product through float32 BLAS: patches are converted while im2col copies them."""
    n = x_codes.shape[0]
    k, cg, r, s = w_codes.shape
    wmat = weight_to_matrix(w_codes.astype(np.float32))
    out = np.empty((n * oh * ow, k), dtype=np.float32)

    def product(buf, block):
        np.matmul(buf, wmat, out=block)
        _scale_columns(block, scale)  # while the block is in cache (NumPy's per-call cost was ~1 ms a conv)

    # 4x the float path's chunk: faster in an isolated A/B here (16-channel layer 9.4 vs 10.4 ms), though the
    # whole conv still lands at 0.93-1.02x the float32 conv from run to run (benchmarks/int8_conv.py)
    patch_product(x_codes, out, r, s, stride, padding, oh, ow, 0, cg, np.float32, product, chunk_scale=4)
    return out.reshape(n, oh, ow, k)


def int4_conv2d(x_codes: np.ndarray, x_scale: float, packed_weight: np.ndarray,
                weight_shape: tuple[int, int, int, int], w_scale: float | np.ndarray, stride: int = 1,
                padding: int = 0, method: str = "auto") -> np.ndarray:
    """``int8_conv2d`` with 4-bit weights stored two a byte (``pack_int4``): unpacked once, then the int8 path.

    Parameters
    ----------
    x_codes, x_scale, w_scale, stride, padding, method
        As for ``int8_conv2d``.
    packed_weight : np.ndarray
        ((k * c * r * s + 1) // 2,) uint8, the weight codes packed by ``pack_int4``.
    weight_shape : tuple of int
        (k, c, r, s).

    Returns
    -------
    np.ndarray
        (n, oh, ow, k) float32.
    """
    weight_shape = shape_arg(weight_shape, "int4_conv2d weight_shape", 4)
    count = int(np.prod(weight_shape))
    w_codes = unpack_int4(packed_weight, count).reshape(weight_shape)
    return int8_conv2d(x_codes, x_scale, w_codes, w_scale, stride, padding, method)
