"""Batch normalization over the rows of a channels-last activation, optionally fused with ReLU.

Any NHWC activation is viewed as ``(m, c)`` with ``m = n * h * w``; statistics are per channel over the rows.
Training forward keeps only the batch mean and inverse standard deviation: backward rebuilds the normalized
input from ``x`` instead of storing it (half the memory of keeping ``x_hat``), and rebuilds the ReLU mask
from the output sign of ``x_hat * gamma + beta``.

Row blocks are reduced in parallel into per-block float64 partial sums (one buffer row per block, so threads
never write one place) and merged in NumPy.
"""

import numpy as np

from ._checks import real_array, real_scalar, vector
from ._config import PARALLEL_JIT, float_dtype, njit, prange

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
def _scale_shift(x, scale, shift, y, relu):
    m, c = x.shape
    n_blocks = (m + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(m, lo + _BLOCK_ROWS)
        for row in range(lo, hi):
            for ch in range(c):
                v = x[row, ch] * scale[ch] + shift[ch]
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


def _as_rows(x, name, dtype=np.float32):
    x = real_array(x, name, dtype)
    if x.ndim < 2:
        raise ValueError(f"{name} must have a channel axis last, shape (..., c); got {x.shape}")
    return x.reshape(-1, x.shape[-1])


def _n_blocks(m):
    return (m + _BLOCK_ROWS - 1) // _BLOCK_ROWS


def batchnorm_forward_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5,
                            relu: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    partial = np.empty((_n_blocks(m), c), dtype=np.float64)
    zeros = np.zeros(c, dtype=dtype)
    _block_sums(x2, zeros, partial, False)
    mean = (partial.sum(axis=0) / m).astype(dtype)
    _block_sums(x2, mean, partial, True)
    var = partial.sum(axis=0) / m
    inv_std = (1.0 / np.sqrt(var + eps)).astype(dtype)
    scale = gamma * inv_std
    shift = beta - mean * scale
    y = np.empty_like(x2)
    _scale_shift(x2, scale, shift, y, bool(relu))
    return y.reshape(np.shape(x)), mean, inv_std, var.astype(dtype)


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
    y = np.empty_like(x2)
    _scale_shift(x2, scale, shift, y, bool(relu))
    return y.reshape(np.shape(x))


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
    pb = np.empty((_n_blocks(m), c), dtype=np.float64)
    pg = np.empty_like(pb)
    _backward_sums(x2, dy2, mean, inv_std, gamma, beta, relu, pb, pg)
    dbeta = pb.sum(axis=0)
    dgamma = pg.sum(axis=0)
    dx = np.empty_like(x2)
    _backward_dx(x2, dy2, mean, inv_std, gamma, beta, relu,
                 (dbeta / m).astype(dtype), (dgamma / m).astype(dtype), dx)
    return dx.reshape(np.shape(x)), dgamma.astype(dtype), dbeta.astype(dtype)
