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


def code_table(e_min):
    """Value of every int8 code: table[code + 127] = sign * 2^(|code| - 1 + e_min) (0 for code 0)."""
    codes = np.arange(-127, 128)
    mag = np.exp2(np.abs(codes) - 1.0 + e_min)
    return np.where(codes == 0, 0.0, np.sign(codes) * mag).astype(np.float32)


def encode_pow2(sign, exponent, e_min):
    """int8 codes from signs (-1, 0, 1) and exponents."""
    return (np.asarray(sign) * (np.asarray(exponent, np.int64) - e_min + 1)).astype(np.int8)


def _check_csr(indptr, indices, codes, k):
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.int8)
    if indptr.ndim != 1 or len(indptr) < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must start at 0 and never decrease")
    if len(indices) != indptr[-1] or len(codes) != indptr[-1]:
        raise ValueError(f"indices and codes must have indptr[-1] = {indptr[-1]} entries")
    if len(indices) and (indices.min() < 0 or indices.max() >= k):
        raise ValueError(f"column indices must lie in 0..{k - 1}")
    if np.any(codes == 0):
        raise ValueError("code 0 is not a non-zero; leave zeros out of the sparse matrix")
    return indptr, indices, codes


def pow2_csr_matmul(indptr, indices, codes, e_min, dense):
    """(m x k) power-of-two CSR @ (k x n) dense -> (m x n) float32."""
    dense = np.ascontiguousarray(dense, dtype=np.float32)
    if dense.ndim != 2:
        raise ValueError(f"dense operand must be (k, n); got shape {dense.shape}")
    indptr, indices, codes = _check_csr(indptr, indices, codes, dense.shape[0])
    out = np.empty((len(indptr) - 1, dense.shape[1]), dtype=np.float32)
    _pow2_csr_matmul(indptr, indices, codes, code_table(e_min), dense, out)
    return out


def pow2_csr_matmul_fixed(indptr, indices, codes, e_min, dense):
    """The same product on integer (fixed-point) ``dense`` by shifts; int64 result in the input's fixed point."""
    dense = np.ascontiguousarray(dense)
    if dense.ndim != 2 or not np.issubdtype(dense.dtype, np.integer):
        raise ValueError(f"fixed-point operand must be a 2-D integer array; got {dense.dtype} {dense.shape}")
    indptr, indices, codes = _check_csr(indptr, indices, codes, dense.shape[0])
    out = np.empty((len(indptr) - 1, dense.shape[1]), dtype=np.int64)
    _pow2_csr_matmul_fixed(indptr, indices, codes, int(e_min), dense.astype(np.int32), out)
    return out


def se_rebuild(codes, basis, e_min):
    """SmartExchange rows ``Ce @ B`` per (filter, block): codes (k, nb, bm, L) int8, basis (k, nb, L, L)."""
    codes = np.ascontiguousarray(codes, dtype=np.int8)
    basis = np.ascontiguousarray(basis, dtype=np.float32)
    if codes.ndim != 4 or basis.shape != codes.shape[:2] + (codes.shape[3], codes.shape[3]):
        raise ValueError(f"codes (k, nb, bm, L) and basis (k, nb, L, L) do not fit: {codes.shape}, {basis.shape}")
    out = np.empty(codes.shape, dtype=np.float32)
    _se_rebuild(codes, code_table(e_min), basis, out)
    return out
