"""Sparse power-of-two products: a sparse matrix whose non-zeros are signed powers of two times a dense one.

A non-zero is stored as its column index and one int8 *code*: ``sign * (exponent - e_min + 1)`` (0 is never a
code, so the code alone gives sign and exponent). Multiplying by it is an exact scaling by 2^exponent: in
floating point a multiply by a power-of-two constant (exact, no rounding), in fixed point a shift.

- ``pow2_csr_matmul``: (m x k) sparse CSR with power-of-two values @ (k x n) dense float32, rows in parallel.
- ``pow2_csr_matmul_fixed``: the same on int32 fixed-point inputs with shifts and int64 accumulation (left
  shifts for non-negative exponents, arithmetic right shifts, which round toward minus infinity, for negative).
- ``se_rebuild``: SmartExchange's weight rebuild, ``rows = Ce @ B`` per (filter, block), skipping zero
  coefficients; ``SmartExchangeWeight`` uses it at inference.
"""

import numpy as np

from ._checks import int_array, int_scalar, real_array
from ._config import JIT, PARALLEL_JIT, U, njit, prange


@njit(**PARALLEL_JIT)
def _pow2_csr_matmul(indptr, indices, codes, table, dense, out):
    m = indptr.shape[0] - 1
    n = dense.shape[1]
    for i in prange(m):
        row = out[i]
        for q in range(n):
            row[q] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            scale = table[codes[p] + 127]
            src = dense[indices[p]]
            for q in range(n):
                row[U(q)] += scale * src[U(q)]


@njit(**PARALLEL_JIT)
def _pow2_csr_matmul_fixed(indptr, indices, codes, e_min, dense, out):
    m = indptr.shape[0] - 1
    n = dense.shape[1]
    for i in prange(m):
        for q in range(n):
            out[i, q] = 0
        for p in range(indptr[i], indptr[i + 1]):
            c = np.int64(codes[p])
            e = (c if c > 0 else -c) - 1 + e_min
            src = dense[indices[p]]
            for q in range(n):
                v = np.int64(src[q])
                v = (v << e) if e >= 0 else (v >> (-e))
                out[i, q] += v if c > 0 else -v


@njit(**JIT)
def _se_rebuild(codes, table, basis, out):
    k, nb, bm, L = codes.shape
    for f in range(k):
        for b in range(nb):
            for r in range(bm):
                for j in range(L):
                    out[f, b, r, j] = 0.0
                for l_ in range(L):
                    c = codes[f, b, r, l_]
                    if c == 0:
                        continue
                    scale = table[c + 127]
                    for j in range(L):
                        out[f, b, r, j] += scale * basis[f, b, l_, j]


def code_table(e_min: int) -> np.ndarray:
    """Value of every int8 code: table[code + 127] = sign * 2^(|code| - 1 + e_min) (0 for code 0).

    Parameters
    ----------
    e_min : int
        Exponent of code 1 (an integer: the values are powers of two).

    Returns
    -------
    np.ndarray
        (255,) float32, indexed by code + 127 for codes -127..127.
    """
    e_min = int_scalar(e_min, "e_min")
    codes = np.arange(-127, 128)
    mag = np.exp2(np.abs(codes) - 1.0 + e_min)
    return np.where(codes == 0, 0.0, np.sign(codes) * mag).astype(np.float32)


def encode_pow2(sign: np.ndarray, exponent: np.ndarray, e_min: int) -> np.ndarray:
    """int8 codes from signs (-1, 0, 1) and exponents.

    Parameters
    ----------
    sign : np.ndarray
        -1, 0 or 1 (any real dtype); 0 gives code 0 whatever the exponent.
    exponent : np.ndarray
        Integers (integral floats accepted), broadcast against ``sign``; where ``sign`` is not 0, in
        ``e_min .. e_min + 126`` so that the code's magnitude ``exponent - e_min + 1`` stays in 1..127.
    e_min : int
        Exponent of code 1.

    Returns
    -------
    np.ndarray
        int8 codes ``sign * (exponent - e_min + 1)``, of the broadcast shape.
    """
    e_min = int_scalar(e_min, "e_min")
    sign = np.asarray(sign)
    exponent = np.asarray(exponent)
    for name, a in (("sign", sign), ("exponent", exponent)):
        if a.dtype.kind not in "biuf":
            raise ValueError(f"encode_pow2 {name} must hold real numbers; got dtype {a.dtype}")
    if sign.size and not np.isin(sign, (-1, 0, 1)).all():
        raise ValueError("encode_pow2 sign must be -1, 0 or 1")
    sign, exponent = np.broadcast_arrays(sign, exponent)  # ValueError if the shapes do not broadcast
    used = exponent[sign != 0]
    if used.size:
        if used.dtype.kind == "f" and not np.all(np.isfinite(used) & (used == np.floor(used))):
            raise ValueError("encode_pow2 exponent must hold integers where sign is not 0")
        lo, hi = used.min(), used.max()
        if lo < e_min or hi > e_min + 126:
            raise ValueError(f"encode_pow2 exponent must lie in e_min..e_min + 126 = {e_min}..{e_min + 126} where "
                             f"sign is not 0 (codes of magnitude 1..127); got {lo}..{hi}")
    magnitude = np.zeros(sign.shape, np.int64)
    magnitude[sign != 0] = used.astype(np.int64) - e_min + 1  # an exponent where the sign is 0 is never read
    return (sign * magnitude).astype(np.int8)


def _check_csr(indptr, indices, codes, k):
    if np.ndim(indptr) != 1 or np.size(indptr) < 1:
        raise ValueError(f"indptr must be (m + 1,); got shape {np.shape(indptr)}")
    indptr = int_array(indptr, "indptr", -(2**63), 2**63 - 1, np.int64)
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must start at 0 and never decrease")
    nnz = int(indptr[-1])
    indices = int_array(indices, "column indices", 0, k - 1, np.int64)
    codes = int_array(codes, "codes", -127, 127, np.int8)
    if indices.shape != (nnz,) or codes.shape != (nnz,):
        raise ValueError(f"indices and codes must be ({nnz},), indptr[-1] entries; got {indices.shape} and "
                         f"{codes.shape}")
    if np.any(codes == 0):
        raise ValueError("code 0 is not a non-zero; leave zeros out of the sparse matrix")
    return indptr, indices, codes


def pow2_csr_matmul(indptr: np.ndarray, indices: np.ndarray, codes: np.ndarray, e_min: int,
                    dense: np.ndarray) -> np.ndarray:
    """(m x k) power-of-two CSR @ (k x n) dense -> (m x n) float32.

    Parameters
    ----------
    indptr : np.ndarray
        (m + 1,) integers from 0, never decreasing: row ``i``'s non-zeros are ``indptr[i]:indptr[i + 1]``.
    indices : np.ndarray
        (nnz,) column indices in 0..k-1.
    codes : np.ndarray
        (nnz,) integer codes in -127..127, none 0 (``encode_pow2``).
    e_min : int
        Exponent of code 1 (``code_table``).
    dense : np.ndarray
        (k, n) real; computed in float32.

    Returns
    -------
    np.ndarray
        (m, n) float32.
    """
    dense = real_array(dense, "dense operand", np.float32)
    if dense.ndim != 2:
        raise ValueError(f"dense operand must be (k, n); got shape {dense.shape}")
    indptr, indices, codes = _check_csr(indptr, indices, codes, dense.shape[0])
    table = code_table(e_min)
    out = np.empty((len(indptr) - 1, dense.shape[1]), dtype=np.float32)
    _pow2_csr_matmul(indptr, indices, codes, table, dense, out)
    return out


def pow2_csr_matmul_fixed(indptr: np.ndarray, indices: np.ndarray, codes: np.ndarray, e_min: int,
                          dense: np.ndarray) -> np.ndarray:
    """The same product on integer (fixed-point) ``dense`` by shifts; int64 result in the input's fixed point.

    Parameters
    ----------
    indptr, indices, codes, e_min
        As for ``pow2_csr_matmul``; every code's exponent ``|code| - 1 + e_min`` must lie in -63..63 (a shift
        by 64 or more is undefined). Sums are exact while they fit in int64; beyond, they wrap.
    dense : np.ndarray
        (k, n) integers within int32.

    Returns
    -------
    np.ndarray
        (m, n) int64.
    """
    dense = np.asarray(dense)
    if dense.ndim != 2 or dense.dtype.kind not in "iu":
        raise ValueError(f"fixed-point operand must be a 2-D integer array; got {dense.dtype} {dense.shape}")
    dense = int_array(dense, "fixed-point operand", -(2**31), 2**31 - 1, np.int32)
    indptr, indices, codes = _check_csr(indptr, indices, codes, dense.shape[0])
    e_min = int_scalar(e_min, "e_min")
    if codes.size:
        magnitude = np.abs(codes.astype(np.int16))
        e_lo, e_hi = int(magnitude.min()) - 1 + e_min, int(magnitude.max()) - 1 + e_min
        if e_lo < -63 or e_hi > 63:
            raise ValueError(f"code exponents |code| - 1 + e_min must lie in -63..63 (shifts by less than 64); "
                             f"got {e_lo}..{e_hi}")
    out = np.empty((len(indptr) - 1, dense.shape[1]), dtype=np.int64)
    _pow2_csr_matmul_fixed(indptr, indices, codes, e_min, dense, out)
    return out


def se_rebuild(codes: np.ndarray, basis: np.ndarray, e_min: int) -> np.ndarray:
    """SmartExchange rows ``Ce @ B`` per (filter, block): codes (k, nb, bm, L) int8, basis (k, nb, L, L).

    Parameters
    ----------
    codes : np.ndarray
        (k, nb, bm, L) integer codes in -127..127 (``encode_pow2``; 0 for a zero coefficient).
    basis : np.ndarray
        (k, nb, L, L) real; computed in float32.
    e_min : int
        Exponent of code 1 (``code_table``).

    Returns
    -------
    np.ndarray
        (k, nb, bm, L) float32.
    """
    codes = int_array(codes, "codes", -127, 127, np.int8)
    basis = real_array(basis, "basis", np.float32)
    if codes.ndim != 4 or basis.shape != codes.shape[:2] + (codes.shape[3], codes.shape[3]):
        raise ValueError(f"codes (k, nb, bm, L) and basis (k, nb, L, L) do not fit: {codes.shape}, {basis.shape}")
    table = code_table(e_min)
    out = np.empty(codes.shape, dtype=np.float32)
    _se_rebuild(codes, table, basis, out)
    return out
