"""SmartExchange (Zhao et al., ISCA 2020): store a weight as sparse power-of-two coefficients times a small basis.

Each output filter is cut into *rows* and the rows of a block are written ``A ~= Ce @ B``: ``Ce`` (m x L) is
sparse with signed power-of-two entries (a sign, a small exponent and a position each), ``B`` (L x L) is a dense
basis shared by the block. A multiply by ``Ce`` is a shift; the few bases are what stays in full precision.

Where the steps are:

- ``weight_rows`` / ``rows_to_weight``: the reshape. A 3x3 conv's filter ``W[k]`` (c, 3, 3) becomes a (3c) x 3
  matrix of kernel rows; blocks hold at most 192 rows (64 input channels). A 1x1 conv's or a fully connected
  layer's filter (a row vector of n weights) is zero-padded to a multiple of 3 and folded to (n/3) x 3.
  Other kernel widths s use rows of length s and an s x s basis (the paper only has 3x3, 1x1 and FC layers;
  this is our generalization).
- ``decompose_block``: the alternating fit, started from ``B = I``, ``Ce = A``, for at most ``max_rounds``:
  (1) round ``Ce``'s non-zeros to the nearest power of two (exponents within ``max_exponent`` and the
  ``exponent_bits`` range, so |Ce| <= 2^max_exponent = 32 by default); (2) stop when that rounding no longer
  changes (Frobenius change <= 1e-6); (3) least squares for ``B`` with the rounded ``Ce`` (rows of ``B`` then
  scaled to unit length, our choice: see ``_unit_rows``), then for ``Ce`` (unrounded) with that ``B``; (4) zero
  every |Ce| < ``theta``. If a row of ``Ce`` becomes all zero while its row of ``A`` has a weight of at least
  ``theta``, ``theta`` is halved and the block starts again (rows of ``A`` whose weights are all below ``theta``
  may become zero: that is the thresholding's purpose, and our reading of the rule; rows too small for the
  smallest power of two cannot be saved by any threshold). Finally
  ``Ce`` is rounded once more and ``B`` refit.
- ``decompose_layer``: every block of a layer, returning a ``SmartExchangeLayer`` that reconstructs the dense
  weight (``dense()``) and counts its storage (``storage_bits``).

Storage count (per layer): each non-zero coefficient 1 sign bit + ``exponent_bits``; positions as a bitmap of
m x L bits per block (cheaper than indices at the densities seen here); each basis L x L x ``basis_bits``.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..nn.compressed import se_rows, se_unrows
from .quantize import exponent_range, pow2_round, pow2_value

BLOCK_ROWS = 192


def weight_rows(w):
    """Per output filter, the (rows, L) matrix of rows of ``w`` ((k, c, r, s) conv or (k, n) linear).

    Returns an array (k, m, L). 1x1 convs and linear layers are zero-padded to a multiple of 3 (the same
    reshape the trainable ``SmartExchangeWeight`` uses).
    """
    return se_rows(np.asarray(w, dtype=np.float64))


def rows_to_weight(rows, shape):
    return se_unrows(rows, shape)


def _unit_rows(basis):
    """Scale each basis row to unit length (the scale moves into Ce's column): Ce then stays at the weights'
    own magnitude, so an absolute threshold ``theta`` keeps one meaning from round to round and layer to layer
    (without it the alternating fit drifts scale between Ce and B and theta loses its grip)."""
    norms = np.linalg.norm(basis, axis=1, keepdims=True)
    return basis / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class Block:
    sign: np.ndarray      # (m, L) int8 in {-1, 0, 1}
    exponent: np.ndarray  # (m, L) int8
    basis: np.ndarray     # (L, L) float32
    theta: float          # the threshold the block ended with

    def coefficients(self):
        return pow2_value(self.sign, self.exponent)

    def matrix(self):
        return self.coefficients().astype(np.float64) @ self.basis.astype(np.float64)


def decompose_block(a, theta=5e-3, max_exponent=5, exponent_bits=4, max_rounds=50):
    """Fit ``a`` (m x L) ~= Ce @ B with Ce sparse signed powers of two; returns a ``Block``."""
    a = np.asarray(a, dtype=np.float64)
    m, L = a.shape
    # the smallest magnitude a coefficient can keep: below it, rounding (not theta) zeroes a row, and lowering
    # theta cannot bring it back, so such rows and thresholds below it are not fought for
    floor = 0.5 * 2.0 ** exponent_range(max_exponent, exponent_bits)[0]
    # a row is "lost" only if it had a weight of at least theta: rows whose weights are all below the threshold
    # are what thresholding is meant to remove (our reading of the rule; taken literally, one tiny row among
    # 192 drags theta down for the whole block and the coefficients stay ~90% dense)
    live = np.any(np.abs(a) >= max(theta, floor), axis=1)
    if not live.any():
        zeros = np.zeros((m, L), np.int8)
        return Block(zeros, zeros.copy(), np.eye(L, dtype=np.float32), float(theta))

    def rounded(ce):
        sign, exponent = pow2_round(ce, max_exponent, exponent_bits)
        return sign, exponent, pow2_value(sign, exponent).astype(np.float64)

    def lost_a_row(ce_values):
        return bool(np.any(np.all(ce_values[live] == 0, axis=1)))

    while True:
        ce = a.copy()
        basis = np.eye(L)
        previous = None
        restart = False
        for _ in range(max_rounds):
            _, _, ce_q = rounded(ce)
            if previous is not None and np.linalg.norm(ce_q - previous) <= 1e-6:
                break
            previous = ce_q
            basis = _unit_rows(np.linalg.lstsq(ce_q, a, rcond=None)[0])
            ce = np.linalg.lstsq(basis.T, a.T, rcond=None)[0].T
            ce[np.abs(ce) < theta] = 0.0
            if lost_a_row(ce):
                restart = True
                break
        if not restart:
            sign, exponent, ce_q = rounded(ce)
            if not lost_a_row(ce_q):
                basis = np.linalg.lstsq(ce_q, a, rcond=None)[0]
                return Block(sign, exponent, basis.astype(np.float32), float(theta))
        if theta < floor:
            # only the exponent floor removes rows now: keep this fit
            sign, exponent, ce_q = rounded(ce)
            basis = np.linalg.lstsq(ce_q, a, rcond=None)[0]
            return Block(sign, exponent, basis.astype(np.float32), float(theta))
        theta *= 0.5


@dataclass(frozen=True)
class SmartExchangeLayer:
    shape: tuple
    blocks: tuple          # per output filter, a tuple of Blocks (each at most BLOCK_ROWS rows)
    max_exponent: int
    exponent_bits: int
    basis_bits: int

    def dense(self):
        """The weight the decomposition stands for, in the original shape (float32)."""
        rows = np.stack([np.concatenate([b.matrix() for b in filt]) for filt in self.blocks])
        return rows_to_weight(rows, self.shape).astype(np.float32)

    @property
    def nonzeros(self):
        return int(sum(np.count_nonzero(b.sign) for filt in self.blocks for b in filt))

    @property
    def coefficient_count(self):
        return int(sum(b.sign.size for filt in self.blocks for b in filt))

    def storage_bits(self):
        """Signs + exponents of non-zeros, bitmap positions, bases (see the module docstring)."""
        bits = 0
        for filt in self.blocks:
            for b in filt:
                bits += np.count_nonzero(b.sign) * (1 + self.exponent_bits)
                bits += b.sign.size  # position bitmap
                bits += b.basis.size * self.basis_bits
        return int(bits)


def decompose_layer(w, theta=5e-3, max_exponent=5, exponent_bits=4, basis_bits=8, max_rounds=50):
    """SmartExchange decomposition of one weight ((k, c, r, s) or (k, n)), block by block."""
    w = np.asarray(w)
    if w.ndim not in (2, 4):
        raise ValueError(f"SmartExchange takes conv (k, c, r, s) or linear (k, n) weights; got shape {w.shape}")
    if theta < 0:
        raise ConfigError(f"theta must be >= 0; got {theta}")
    if basis_bits not in (8, 16, 32):
        raise ConfigError(f"basis_bits must be 8, 16 or 32; got {basis_bits}")
    exponent_range(max_exponent, exponent_bits)
    rows = weight_rows(w)
    blocks = []
    for filt in rows:
        blocks.append(tuple(decompose_block(filt[i:i + BLOCK_ROWS], theta, max_exponent, exponent_bits, max_rounds)
                            for i in range(0, filt.shape[0], BLOCK_ROWS)))
    return SmartExchangeLayer(tuple(w.shape), tuple(blocks), max_exponent, exponent_bits, basis_bits)
