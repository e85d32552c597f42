"""Batch normalization over the rows of a channels-last activation, optionally fused with ReLU.

Any NHWC activation is viewed as ``(m, c)`` with ``m = n * h * w``; statistics are per channel over the rows.
Training forward keeps only the batch mean and inverse standard deviation: backward rebuilds the normalized
input from ``x`` instead of storing it (half the memory of keeping ``x_hat``), and rebuilds the ReLU mask
from the output sign of ``x_hat * gamma + beta``.

Where the CPU has wide vectors (``simd.SIMD_WIDTH``) and c is a multiple of 8, float32 statistics and passes run
on register tiles (``_tile_*``): each worker thread takes a range of rows, a tile holds a few rows of up to
four vectors of channels, and per-channel sums go into float64 totals every ``_TILE_BLOCK`` rows. The mean
and variance come from one pass over the data shifted by its first row (stable: the shifted values are
centred near 0). Measured here on a (128, 32, 32, 16) activation with ReLU, 2 threads: forward 1.31 -> 0.24 ms,
backward 1.82 -> 0.38 ms against the row kernels (``benchmarks/conv_kernels.py``). Elsewhere (float64, other
channel counts, no vectors) row blocks are reduced in parallel into per-block float64 partial sums (one buffer
row per block, so threads never write one place) and merged in NumPy.
"""

import numpy as np

from ._checks import real_array, real_scalar, vector
from ._config import JIT, PARALLEL_JIT, float_dtype, njit, prange, run_split
from .simd import (
    SIMD_WIDTH,
    tile_add,
    tile_fmadd,
    tile_load,
    tile_mul,
    tile_relu,
    tile_store,
    tile_sub,
    tile_sum_rows,
    tile_where_positive,
    tile_zero,
    token,
)

_BLOCK_ROWS = 512


@njit(**PARALLEL_JIT)
def _block_sums(x, mean, partial, use_mean):
    """partial[b, ch] = sum over rows of block b of (x - mean) (use_mean=False) or (x - mean)^2 (use_mean=True)."""
    m, c = x.shape
    n_blocks = partial.shape[0]
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(m, lo + _BLOCK_ROWS)
        acc = np.zeros(c, dtype=x.dtype)
        for row in range(lo, hi):
            for ch in range(c):
                d = x[row, ch] - mean[ch]
                if use_mean:
                    acc[ch] += d * d
                else:
                    acc[ch] += d
        for ch in range(c):
            partial[blk, ch] = acc[ch]


@njit(**PARALLEL_JIT)
def _scale_shift(x, scale, shift, y, relu, res, add):
    m, c = x.shape
    n_blocks = (m + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(m, lo + _BLOCK_ROWS)
        for row in range(lo, hi):
            for ch in range(c):
                v = x[row, ch] * scale[ch] + shift[ch]
                if add:
                    v = v + res[row, ch]
                if relu and v < 0.0:
                    v = 0.0
                y[row, ch] = v


@njit(**PARALLEL_JIT)
def _backward_sums(x, dy, mean, inv_std, gamma, beta, relu, partial_dbeta, partial_dgamma):
    m, c = x.shape
    n_blocks = partial_dbeta.shape[0]
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(m, lo + _BLOCK_ROWS)
        acc_b = np.zeros(c, dtype=x.dtype)
        acc_g = np.zeros(c, dtype=x.dtype)
        for row in range(lo, hi):
            for ch in range(c):
                xhat = (x[row, ch] - mean[ch]) * inv_std[ch]
                g = dy[row, ch]
                if relu and xhat * gamma[ch] + beta[ch] <= 0.0:
                    g = 0.0 * g
                acc_b[ch] += g
                acc_g[ch] += g * xhat
        for ch in range(c):
            partial_dbeta[blk, ch] = acc_b[ch]
            partial_dgamma[blk, ch] = acc_g[ch]


@njit(**PARALLEL_JIT)
def _backward_dx(x, dy, mean, inv_std, gamma, beta, relu, dbeta_mean, dgamma_mean, dx):
    m, c = x.shape
    n_blocks = (m + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(m, lo + _BLOCK_ROWS)
        for row in range(lo, hi):
            for ch in range(c):
                xhat = (x[row, ch] - mean[ch]) * inv_std[ch]
                g = dy[row, ch]
                if relu and xhat * gamma[ch] + beta[ch] <= 0.0:
                    g = 0.0 * g
                dx[row, ch] = gamma[ch] * inv_std[ch] * (g - dbeta_mean[ch] - xhat * dgamma_mean[ch])


# ------------------------------------------------------------------------------ register-tiled kernels

_TILE_BLOCK = 256  # rows summed in float32 before the totals (float64) take them


@njit(**JIT)
def _flush(row_tile, tmp, totals, c0):
    tile_store(row_tile, tmp, 0, 0)
    for j in range(tmp.shape[0]):
        totals[c0 + j] += tmp[j]


@njit(**JIT)
def _tile_moments(x, center, sums, squares, c, lo, hi, vt, pt, kt, one):
    """Adds, for rows ``lo .. hi`` of ``x`` (m, c) flat, sum(x - center) into ``sums`` and sum((x - center)^2)
    into ``squares`` (float64, per channel)."""
    step = len(vt) * len(kt)
    px = len(pt)
    tmp = np.empty(step, np.float32)
    for c0 in range(0, c, step):
        ctr = tile_load(tile_zero(vt, pt, kt), center, c0, 0)
        ctr1 = tile_load(tile_zero(vt, one, kt), center, c0, 0)
        for b0 in range(lo, hi, _TILE_BLOCK):
            b1 = min(hi, b0 + _TILE_BLOCK)
            main = b1 - (b1 - b0) % px
            s = tile_zero(vt, pt, kt)
            q = tile_zero(vt, pt, kt)
            for row in range(b0, main, px):
                d = tile_sub(tile_load(s, x, row * c + c0, c), ctr)
                s = tile_add(s, d)
                q = tile_fmadd(d, d, q)
            s1 = tile_sum_rows(s, one)
            q1 = tile_sum_rows(q, one)
            for row in range(main, b1):
                d = tile_sub(tile_load(s1, x, row * c + c0, c), ctr1)
                s1 = tile_add(s1, d)
                q1 = tile_fmadd(d, d, q1)
            _flush(s1, tmp, sums, c0)
            _flush(q1, tmp, squares, c0)


@njit(**JIT)
def _tile_scale_shift(x, scale, shift, y, relu, res, add, c, lo, hi, vt, pt, kt, one):
    """y = x * scale + shift (plus ``res`` if ``add``, then max(., 0) if ``relu``) for rows ``lo .. hi``; (m, c)
    flat."""
    step = len(vt) * len(kt)
    px = len(pt)
    main = hi - (hi - lo) % px
    for c0 in range(0, c, step):
        sc = tile_load(tile_zero(vt, pt, kt), scale, c0, 0)
        sh = tile_load(tile_zero(vt, pt, kt), shift, c0, 0)
        for row in range(lo, main, px):
            out = tile_fmadd(tile_load(sc, x, row * c + c0, c), sc, sh)
            if add:
                out = tile_add(out, tile_load(sc, res, row * c + c0, c))
            if relu:
                out = tile_relu(out)
            tile_store(out, y, row * c + c0, c)
        sc1 = tile_load(tile_zero(vt, one, kt), scale, c0, 0)
        sh1 = tile_load(tile_zero(vt, one, kt), shift, c0, 0)
        for row in range(main, hi):
            out = tile_fmadd(tile_load(sc1, x, row * c + c0, c), sc1, sh1)
            if add:
                out = tile_add(out, tile_load(sc1, res, row * c + c0, c))
            if relu:
                out = tile_relu(out)
            tile_store(out, y, row * c + c0, c)


@njit(**JIT)
def _tile_backward_sums(x, dy, mean, inv_std, gamma, beta, relu, dbeta, dgamma, c, lo, hi, vt, pt, kt, one):
    """Adds sum(g) into ``dbeta`` and sum(g * x_hat) into ``dgamma`` for rows ``lo .. hi``, where x_hat =
    (x - mean) * inv_std and g is dy, zeroed where the fused ReLU cut (x_hat * gamma + beta <= 0)."""
    step = len(vt) * len(kt)
    px = len(pt)
    tmp = np.empty(step, np.float32)
    for c0 in range(0, c, step):
        mu = tile_load(tile_zero(vt, pt, kt), mean, c0, 0)
        inv = tile_load(mu, inv_std, c0, 0)
        ga = tile_load(mu, gamma, c0, 0)
        be = tile_load(mu, beta, c0, 0)
        mu1 = tile_load(tile_zero(vt, one, kt), mean, c0, 0)
        inv1 = tile_load(mu1, inv_std, c0, 0)
        ga1 = tile_load(mu1, gamma, c0, 0)
        be1 = tile_load(mu1, beta, c0, 0)
        for b0 in range(lo, hi, _TILE_BLOCK):
            b1 = min(hi, b0 + _TILE_BLOCK)
            main = b1 - (b1 - b0) % px
            sg = tile_zero(vt, pt, kt)
            sgx = tile_zero(vt, pt, kt)
            for row in range(b0, main, px):
                at = row * c + c0
                xh = tile_mul(tile_sub(tile_load(mu, x, at, c), mu), inv)
                g = tile_load(mu, dy, at, c)
                if relu:
                    g = tile_where_positive(tile_fmadd(xh, ga, be), g)
                sg = tile_add(sg, g)
                sgx = tile_fmadd(g, xh, sgx)
            s1 = tile_sum_rows(sg, one)
            sx1 = tile_sum_rows(sgx, one)
            for row in range(main, b1):
                at = row * c + c0
                xh = tile_mul(tile_sub(tile_load(mu1, x, at, c), mu1), inv1)
                g = tile_load(mu1, dy, at, c)
                if relu:
                    g = tile_where_positive(tile_fmadd(xh, ga1, be1), g)
                s1 = tile_add(s1, g)
                sx1 = tile_fmadd(g, xh, sx1)
            _flush(s1, tmp, dbeta, c0)
            _flush(sx1, tmp, dgamma, c0)


@njit(**JIT)
def _tile_backward_dx(x, dy, mean, inv_std, gamma, beta, relu, coef, dbeta_mean, dgamma_mean, dx, c, lo, hi,
                      vt, pt, kt):
    """dx = coef * (g - dbeta_mean - x_hat * dgamma_mean) for rows ``lo .. hi`` (``coef`` = gamma * inv_std);
    rows are taken ``len(pt)`` at a time (the caller passes ``pt`` = ``token(1)`` for a range's tail)."""
    step = len(vt) * len(kt)
    px = len(pt)
    for c0 in range(0, c, step):
        mu = tile_load(tile_zero(vt, pt, kt), mean, c0, 0)
        inv = tile_load(mu, inv_std, c0, 0)
        ga = tile_load(mu, gamma, c0, 0)
        be = tile_load(mu, beta, c0, 0)
        co = tile_load(mu, coef, c0, 0)
        dbm = tile_load(mu, dbeta_mean, c0, 0)
        dgm = tile_load(mu, dgamma_mean, c0, 0)
        for row in range(lo, hi, px):
            at = row * c + c0
            xh = tile_mul(tile_sub(tile_load(mu, x, at, c), mu), inv)
            g = tile_load(mu, dy, at, c)
            if relu:
                g = tile_where_positive(tile_fmadd(xh, ga, be), g)
            tile_store(tile_mul(co, tile_sub(tile_sub(g, dbm), tile_mul(xh, dgm))), dx, at, c)


def _tiles_for(c, dtype):
    """(vt, pt, kt, one) tokens of the register-tiled kernels for ``c`` channels, or None where they do not
    apply (float64, c not a multiple of 8, no vectors here)."""
    if SIMD_WIDTH == 0 or dtype != np.float32 or c % 8:
        return None
    v = SIMD_WIDTH if c % SIMD_WIDTH == 0 else 8
    kb = next(b for b in (4, 2, 1) if (c // v) % b == 0)
    return token(v), token(max(1, 8 // kb)), token(kb), token(1)


def batchnorm_method(c: int, dtype=np.float32) -> str:
    """Which kernels normalize ``c`` channels here: ``tiled`` (register tiles) or ``rows`` (the portable ones)."""
    return "rows" if _tiles_for(c, np.dtype(dtype)) is None else "tiled"


def _as_rows(x, name, dtype=np.float32):
    x = real_array(x, name, dtype)
    if x.ndim < 2:
        raise ValueError(f"{name} must have a channel axis last, shape (..., c); got {x.shape}")
    return x.reshape(-1, x.shape[-1])


def _n_blocks(m):
    return (m + _BLOCK_ROWS - 1) // _BLOCK_ROWS


def batchnorm_forward_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5,
                            relu: bool = False, residual: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalize ``x`` (..., c) with batch statistics; returns ``(y, mean, inv_std, var)``.

    ``var`` is the biased batch variance (the running average uses it with the unbiased correction).

    Parameters
    ----------
    x : np.ndarray
        Activations with channels last, (..., c), e.g. (n, h, w, c) or (n, c); statistics over all other axes.
    gamma, beta : np.ndarray
        Scale and shift, (c,).
    eps : float
        Added to the variance (>= 0).
    relu : bool
        Apply a ReLU to the output (fused).
    residual : np.ndarray or None
        Shaped like ``x``: added to the normalized output before the ReLU, in the same pass (a residual block's
        shortcut; the output is then the block's, not the batch norm's).

    Returns
    -------
    y : np.ndarray
        Shaped like ``x``.
    mean, inv_std, var : np.ndarray
        (c,): batch mean, 1 / sqrt(var + eps), biased batch variance.
    """
    dtype = float_dtype(x, gamma)
    x2 = _as_rows(x, "batch-norm input x", dtype)
    m, c = x2.shape
    gamma = vector(gamma, "batch-norm gamma", c, dtype)
    beta = vector(beta, "batch-norm beta", c, dtype)
    eps = real_scalar(eps, "batch-norm eps", nonnegative=True)
    tiles = _tiles_for(c, dtype) if m else None  # no rows: the row kernels' (NaN) statistics
    if tiles is not None:
        center = x2[0].copy()
        flat = x2.reshape(-1)

        def moments(lo, hi):
            sums, squares = np.zeros(c), np.zeros(c)
            _tile_moments(flat, center, sums, squares, c, lo, hi, *tiles)
            return sums, squares

        parts = run_split(moments, m)
        shifted_mean = sum(p[0] for p in parts) / m
        var = np.maximum(sum(p[1] for p in parts) / m - shifted_mean * shifted_mean, 0.0)
        mean = (center + shifted_mean).astype(dtype)
    else:
        partial = np.empty((_n_blocks(m), c), dtype=np.float64)
        _block_sums(x2, np.zeros(c, dtype=dtype), partial, False)
        mean = (partial.sum(axis=0) / m).astype(dtype)
        _block_sums(x2, mean, partial, True)
        var = partial.sum(axis=0) / m
    inv_std = (1.0 / np.sqrt(var + eps)).astype(dtype)
    scale = gamma * inv_std
    shift = beta - mean * scale
    if residual is not None:
        residual = real_array(residual, "batch-norm residual", dtype)
        if residual.shape != np.shape(x):
            raise ValueError(f"batch-norm residual must have shape {np.shape(x)}; got {residual.shape}")
        residual = residual.reshape(m, c)
    y = _apply(x2, scale, shift, bool(relu), tiles, residual)
    return y.reshape(np.shape(x)), mean, inv_std, var.astype(dtype)


def _apply(x2, scale, shift, relu, tiles, residual=None):
    """x2 * scale + shift (plus ``residual``, then ReLU if ``relu``), on tiles where ``tiles`` are given."""
    y = np.empty_like(x2)
    add = residual is not None
    res = residual if add else y
    if tiles is None:
        _scale_shift(x2, scale, shift, y, relu, res, add)
        return y
    m, c = x2.shape
    xf, yf, rf = x2.reshape(-1), y.reshape(-1), res.reshape(-1)
    run_split(lambda lo, hi: _tile_scale_shift(xf, scale, shift, yf, relu, rf, add, c, lo, hi, *tiles), m)
    return y


def batchnorm_forward_eval(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                           running_var: np.ndarray, eps: float = 1e-5, relu: bool = False) -> np.ndarray:
    """Normalize with running statistics: y = (x - mean) / sqrt(var + eps) * gamma + beta.

    Parameters
    ----------
    x : np.ndarray
        Activations with channels last, (..., c).
    gamma, beta, running_mean, running_var : np.ndarray
        (c,) each.
    eps : float
        Added to the variance (>= 0).
    relu : bool
        Apply a ReLU to the output (fused).

    Returns
    -------
    np.ndarray
        Shaped like ``x``.
    """
    dtype = float_dtype(x, gamma)
    x2 = _as_rows(x, "batch-norm input x", dtype)
    c = x2.shape[1]
    # the per-channel vectors keep their own dtypes here: combined, then rounded once to ``dtype``
    gamma = vector(gamma, "batch-norm gamma", c, None)
    beta = vector(beta, "batch-norm beta", c, None)
    running_mean = vector(running_mean, "batch-norm running_mean", c, None)
    running_var = vector(running_var, "batch-norm running_var", c, None)
    real_scalar(eps, "batch-norm eps", nonnegative=True)
    scale = (gamma / np.sqrt(running_var + eps)).astype(dtype)
    shift = (beta - running_mean * scale).astype(dtype)
    return _apply(x2, scale, shift, bool(relu), _tiles_for(c, dtype)).reshape(np.shape(x))


def batchnorm_backward(x: np.ndarray, dy: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray,
                       beta: np.ndarray, relu: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the training forward: returns ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    x : np.ndarray
        The forward input, (..., c).
    dy : np.ndarray
        Gradient of the output, shaped like ``x``.
    mean, inv_std : np.ndarray
        (c,), as returned by ``batchnorm_forward_train``.
    gamma, beta : np.ndarray
        (c,), as given to the forward.
    relu : bool
        Whether the forward applied a ReLU.

    Returns
    -------
    dx : np.ndarray
        Shaped like ``x``.
    dgamma, dbeta : np.ndarray
        (c,).
    """
    dtype = float_dtype(x, dy, gamma)
    x2 = _as_rows(x, "batch-norm input x", dtype)
    dy2 = _as_rows(dy, "batch-norm output gradient dy", dtype)
    if dy2.shape != x2.shape or np.shape(dy) != np.shape(x):
        raise ValueError(f"batch-norm output gradient dy must have the input's shape {np.shape(x)}; "
                         f"got {np.shape(dy)}")
    m, c = x2.shape
    gamma = vector(gamma, "batch-norm gamma", c, dtype)
    beta = vector(beta, "batch-norm beta", c, dtype)
    mean = vector(mean, "batch-norm mean", c, dtype)
    inv_std = vector(inv_std, "batch-norm inv_std", c, dtype)
    relu = bool(relu)
    tiles = _tiles_for(c, dtype)
    if tiles is None:
        pb = np.empty((_n_blocks(m), c), dtype=np.float64)
        pg = np.empty_like(pb)
        _backward_sums(x2, dy2, mean, inv_std, gamma, beta, relu, pb, pg)
        dbeta = pb.sum(axis=0)
        dgamma = pg.sum(axis=0)
        dx = np.empty_like(x2)
        _backward_dx(x2, dy2, mean, inv_std, gamma, beta, relu,
                     (dbeta / m).astype(dtype), (dgamma / m).astype(dtype), dx)
        return dx.reshape(np.shape(x)), dgamma.astype(dtype), dbeta.astype(dtype)
    xf, df = x2.reshape(-1), dy2.reshape(-1)

    def sums(lo, hi):
        db, dg = np.zeros(c), np.zeros(c)
        _tile_backward_sums(xf, df, mean, inv_std, gamma, beta, relu, db, dg, c, lo, hi, *tiles)
        return db, dg

    parts = run_split(sums, m)
    dbeta = sum(p[0] for p in parts)
    dgamma = sum(p[1] for p in parts)
    coef = gamma * inv_std
    dbm, dgm = (dbeta / m).astype(dtype), (dgamma / m).astype(dtype)
    dx = np.empty_like(x2)
    vt, pt, kt, one = tiles
    dxf = dx.reshape(-1)

    def dx_rows(lo, hi):
        main = hi - (hi - lo) % len(pt)
        _tile_backward_dx(xf, df, mean, inv_std, gamma, beta, relu, coef, dbm, dgm, dxf, c, lo, main, vt, pt, kt)
        _tile_backward_dx(xf, df, mean, inv_std, gamma, beta, relu, coef, dbm, dgm, dxf, c, main, hi, vt, one, kt)

    run_split(dx_rows, m)
    return dx.reshape(np.shape(x)), dgamma.astype(dtype), dbeta.astype(dtype)
