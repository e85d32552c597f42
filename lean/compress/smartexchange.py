"""SmartExchange (Zhao et al., ISCA 2020): store a weight as sparse power-of-two coefficients times a small basis.

Paper: Y. Zhao, X. Chen, Y. Wang, C. Li, H. You, Y. Fu, Y. Xie, Z. Wang, Y. Lin, "SmartExchange: Trading
Higher-cost Memory Storage/Access for Lower-cost Computation", ISCA 2020 (arXiv:2005.03403). Steps are cited
by name (the decomposition algorithm's steps 1-3 and final re-quantize/re-fit, its application to CONV and FC
layers, re-training, the accelerator's coefficient indexing) as a public summary of the paper lays them out;
the paper's section numbers could not be confirmed and are left out.

Each output filter is cut into *rows* and the rows of a block are written ``A ~= Ce @ B``: ``Ce`` (m x L) is
sparse with signed power-of-two entries (a sign, a small exponent and a position each), ``B`` (L x L) is a dense
basis shared by the block. A multiply by ``Ce`` is a shift; the few bases are what stays in full precision.

Where the steps are:

- ``weight_rows`` / ``rows_to_weight``: the reshape (the paper's application to CONV and FC layers). A 3x3
  conv's filter ``W[k]`` (c, 3, 3) becomes a (3c) x 3 matrix of kernel rows; blocks hold at most 192 rows (64
  input channels; the paper slices tall matrices along their rows). A 1x1 conv's or a fully connected layer's
  filter (a row vector of n weights) is zero-padded to a multiple of 3 and folded to (n/3) x 3. Other kernel
  widths s use rows of length s and an s x s basis (the paper only has 3x3, 1x1 and FC layers; this is our
  generalization).
- ``decompose_block``: the paper's alternating algorithm, started from ``B = I``, ``Ce = A``, for at most
  ``max_rounds``: (1) round ``Ce``'s non-zeros to the nearest power of two (algorithm step 1; exponents within
  ``max_exponent`` and the ``exponent_bits`` range, so |Ce| <= 2^max_exponent = 32 by default); (2) stop when
  that rounding no longer changes (Frobenius change <= 1e-6); (3) least squares for ``B`` with the rounded
  ``Ce`` (rows of ``B`` then scaled to unit length, our choice: see ``_unit_rows``), then for ``Ce`` (unrounded)
  with that ``B`` (algorithm step 2, fitting); (4) zero every |Ce| < ``theta`` (algorithm step 3,
  sparsification; with ``row_threshold``, first the authors' row thresholding: rows of ``Ce`` whose L1 norm is
  below ``row_threshold * theta`` become all zero, 3x3 convs only, off by default as in their scripts). If a
  whole column of ``Ce`` becomes empty (a basis vector no row uses), ``theta`` is halved and the block starts
  again (the authors' rule where their ``decompose_scale`` is on, as in their ImageNet script; their CIFAR
  script turns it off and never restarts; lean always applies it, and a block whose weights all lie below theta
  is taken down to the exponent floor; their ``decompose_decay`` 0.5); a row of ``Ce`` may become all zero: that row is
  what the accelerator skips (``SmartExchangeLayer.row_density``). Finally ``Ce`` is rounded once more and
  ``B`` refit (the algorithm's last line). Where lean still departs from the authors' code (GATECH-EIC's
  release as copied in ariusewy/SmartExchange; no official repository was at hand): ``B``'s rows are scaled to
  unit length between fits (``_unit_rows``; theirs are not, and they rescale ``Ce``'s columns by a per-column
  power-of-two factor instead when ``decompose_scale`` is on); exponents have a floor (``exponent_bits``; theirs
  are unbounded below); blocks hold at most 192 rows (theirs 96).
- ``decompose_layer``: every block of a layer, returning a ``SmartExchangeLayer`` that reconstructs the dense
  weight (``dense()``) and counts its storage (``storage_bits``).

Storage count (per layer; one count, ``lean.nn.compressed.se_storage_bits``, for the decomposition here and the
trained form): each non-zero coefficient 1 sign bit + ``exponent_bits``; positions as a bitmap of m x L bits per
block (1-bit direct indexing, as the paper's accelerator indexes coefficients; cheaper than indices at the
densities seen here); each basis L x L x ``basis_bits`` codes plus one 32-bit scale. ``dense()`` rebuilds with
the bases as stored (``basis_bits`` codes and the scale), as the trained form does.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..nn.compressed import quantize_basis, se_rows, se_storage_bits, se_unrows
from .quantize import exponent_range, pow2_round, pow2_value

BLOCK_ROWS = 192


def weight_rows(w: np.ndarray) -> np.ndarray:
    """Per output filter, the (rows, L) matrix of rows of ``w`` ((k, c, r, s) conv or (k, n) linear).

    1x1 convs and linear layers are zero-padded to a multiple of 3 (the same reshape the trainable
    ``SmartExchangeWeight`` uses).

    Parameters
    ----------
    w : np.ndarray
        Conv weight (k, c, r, s) or linear weight (k, n).

    Returns
    -------
    np.ndarray
        (k, m, L) float64: for s > 1, m = c*r kernel rows of length L = s; for s = 1 and linear layers,
        L = 3 and m = ceil(c*r*s / 3) (or ceil(n / 3)), the last row zero-padded.

    Notes
    -----
    Zhao et al., ISCA 2020, the reshape of CONV and FC weights before decomposition (section unconfirmed).
    """
    return se_rows(np.asarray(w, dtype=np.float64))


def rows_to_weight(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``weight_rows``: drop the zero padding and restore ``shape``.

    Parameters
    ----------
    rows : np.ndarray
        (k, m, L), as ``weight_rows`` returns it.
    shape : tuple of int
        The weight's shape, (k, c, r, s) or (k, n).

    Returns
    -------
    np.ndarray
        The weight in ``shape``, in the dtype of ``rows``.
    """
    return se_unrows(rows, shape)


def _unit_rows(basis):
    """Scale each basis row to unit length (the scale moves into Ce's column): Ce then stays at the weights'
    own magnitude, so an absolute threshold ``theta`` keeps one meaning from round to round and layer to layer
    (without it the alternating fit drifts scale between Ce and B and theta loses its grip)."""
    norms = np.linalg.norm(basis, axis=1, keepdims=True)
    return basis / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class Block:
    """One block ``A ~= Ce @ B`` of a filter: ``Ce`` as sign and exponent codes, ``B`` dense.

    Attributes
    ----------
    sign : np.ndarray
        (m, L) int8 in {-1, 0, 1}; 0 where the coefficient is zero.
    exponent : np.ndarray
        (m, L) int8; ``Ce = sign * 2**exponent`` (read only where ``sign`` is not 0).
    basis : np.ndarray
        (L, L) float32, the block's basis ``B``.
    theta : float
        The sparsification threshold the block ended with (lower than asked if it was restarted).
    """

    sign: np.ndarray      # (m, L) int8 in {-1, 0, 1}
    exponent: np.ndarray  # (m, L) int8
    basis: np.ndarray     # (L, L) float32
    theta: float          # the threshold the block ended with

    def coefficients(self) -> np.ndarray:
        """``Ce`` as numbers: (m, L) float32 signed powers of two (0 where ``sign`` is 0)."""
        return pow2_value(self.sign, self.exponent)

    def matrix(self) -> np.ndarray:
        """The rebuilt rows ``Ce @ B``: (m, L) float64 (the accelerator's rebuild, here in floating point)."""
        return self.coefficients().astype(np.float64) @ self.basis.astype(np.float64)


def decompose_block(a: np.ndarray, theta: float = 5e-3, max_exponent: int = 5, exponent_bits: int = 4,
                    max_rounds: int = 50, row_threshold: float | None = None) -> Block:
    """Fit ``a`` ~= Ce @ B with Ce sparse signed powers of two; returns a ``Block``.

    Parameters
    ----------
    a : np.ndarray
        (m, L) rows of one block (at most ``BLOCK_ROWS``); computed in float64.
    theta : float
        Sparsification threshold: coefficients with |Ce| < theta become 0. Halved and the block restarted while
        a whole column of Ce (a basis vector no row uses) becomes empty (the authors' rule).
    max_exponent : int
        Largest exponent of a coefficient (|Ce| <= 2**max_exponent).
    exponent_bits : int
        Bits of an exponent code; the smallest exponent is ``max_exponent - 2**exponent_bits + 2``.
    max_rounds : int
        Most rounds of the alternating fit.
    row_threshold : float or None
        The authors' row thresholding: before the element threshold, rows of Ce whose L1 norm is below
        ``row_threshold * theta`` become all zero (their code: 5, for 3x3 convs, off by default). None: off.

    Returns
    -------
    Block
        sign and exponent (m, L) int8, basis (L, L) float32, and the threshold used.

    Notes
    -----
    Zhao et al., ISCA 2020, the decomposition algorithm (steps 1-3 and the final re-quantize/re-fit; section
    number unconfirmed); the restart on an empty column and the row thresholding follow the authors' code.
    """
    a = np.asarray(a, dtype=np.float64)
    m, L = a.shape
    # the smallest magnitude a coefficient can keep: below it rounding, not theta, empties a column, and halving
    # theta further cannot bring it back
    floor = 0.5 * 2.0 ** exponent_range(max_exponent, exponent_bits)[0]
    if not np.any(np.abs(a) >= floor):
        zeros = np.zeros((m, L), np.int8)
        return Block(zeros, zeros.copy(), np.eye(L, dtype=np.float32), float(theta))

    def rounded(ce):
        sign, exponent = pow2_round(ce, max_exponent, exponent_bits)
        return sign, exponent, pow2_value(sign, exponent).astype(np.float64)

    def empty_column(ce_values):
        return bool(np.any(np.all(ce_values == 0, axis=0)))

    while True:
        # Zhao et al.: the algorithm starts from Ce = A and B = I
        ce = a.copy()
        basis = np.eye(L)
        previous = None
        restart = False
        for _ in range(max_rounds):
            # step 1: quantize Ce's non-zeros to signed powers of two
            _, _, ce_q = rounded(ce)
            # the loop's tolerance test, read as "the quantized Ce stopped moving" (METHODS.md)
            if previous is not None and np.linalg.norm(ce_q - previous) <= 1e-6:
                break
            previous = ce_q
            # step 2: fit B to the quantized Ce by least squares, then Ce (unquantized) to that B
            basis = _unit_rows(np.linalg.lstsq(ce_q, a, rcond=None)[0])
            ce = np.linalg.lstsq(basis.T, a.T, rcond=None)[0].T
            # step 3: sparsify Ce: whole rows below row_threshold * theta (the authors' option: vector-wise
            # sparsity, what their accelerator skips), then elements below theta
            if row_threshold is not None:
                ce[np.abs(ce).sum(axis=1) < row_threshold * theta] = 0.0
            ce[np.abs(ce) < theta] = 0.0
            if empty_column(ce):  # the authors' restart: a basis vector no row uses
                restart = True
                break
        if not restart:
            # the algorithm's last line: quantize Ce once more and re-fit B to it
            sign, exponent, ce_q = rounded(ce)
            if not empty_column(ce_q):
                basis = np.linalg.lstsq(ce_q, a, rcond=None)[0]
                return Block(sign, exponent, basis.astype(np.float32), float(theta))
        if theta < floor:
            # only the exponent floor empties the column now: keep this fit
            sign, exponent, ce_q = rounded(ce)
            basis = np.linalg.lstsq(ce_q, a, rcond=None)[0]
            return Block(sign, exponent, basis.astype(np.float32), float(theta))
        theta *= 0.5  # the authors' decay (decompose_decay = 0.5 in their scripts)


@dataclass(frozen=True)
class SmartExchangeLayer:
    """A layer's SmartExchange form: its blocks, and how its codes are counted.

    Attributes
    ----------
    shape : tuple of int
        The dense weight's shape, (k, c, r, s) or (k, n).
    blocks : tuple of tuple of Block
        Per output filter (k of them), its blocks in row order (each at most ``BLOCK_ROWS`` rows).
    max_exponent, exponent_bits : int
        The exponent range the coefficients were rounded to.
    basis_bits : int
        Bits per stored basis entry (8, 16 or 32).
    """

    shape: tuple[int, ...]
    blocks: tuple[tuple[Block, ...], ...]  # per output filter, a tuple of Blocks (each at most BLOCK_ROWS rows)
    max_exponent: int
    exponent_bits: int
    basis_bits: int

    def dense(self) -> np.ndarray:
        """The weight the decomposition stands for, in the original shape (float32): Ce times each basis as
        stored, ``basis_bits`` codes and a scale (``quantize_basis``), as ``SmartExchangeWeight`` rebuilds it."""
        rows = np.stack([np.concatenate([
            b.coefficients().astype(np.float64) @ quantize_basis(b.basis, self.basis_bits).astype(np.float64)
            for b in filt]) for filt in self.blocks])
        return rows_to_weight(rows, self.shape).astype(np.float32)

    @property
    def nonzeros(self) -> int:
        """Number of non-zero coefficients over all blocks."""
        return int(sum(np.count_nonzero(b.sign) for filt in self.blocks for b in filt))

    @property
    def row_density(self) -> float:
        """Fraction of Ce's rows (padding rows included) with a non-zero coefficient: the rows the SmartExchange
        accelerator rebuilds and multiplies; an all-zero row is skipped whole (vector-wise sparsity)."""
        rows = sum(b.sign.shape[0] for filt in self.blocks for b in filt)
        live = sum(int(np.any(b.sign != 0, axis=1).sum()) for filt in self.blocks for b in filt)
        return live / rows if rows else 0.0

    @property
    def coefficient_count(self) -> int:
        """Number of coefficient positions (zero or not) over all blocks, padding rows included."""
        return int(sum(b.sign.size for filt in self.blocks for b in filt))

    def storage_bits(self) -> int:
        """``lean.nn.compressed.se_storage_bits``, the count the trained form uses too: signs + exponents of
        non-zeros, the position bitmap, each basis's codes and scale."""
        blocks = [b for filt in self.blocks for b in filt]
        L = blocks[0].basis.shape[0] if blocks else 0
        return se_storage_bits(self.nonzeros, self.coefficient_count, len(blocks), L, self.exponent_bits,
                               self.basis_bits)


def decompose_layer(w: np.ndarray, theta: float = 5e-3, max_exponent: int = 5, exponent_bits: int = 4,
                    basis_bits: int = 8, max_rounds: int = 50, row_threshold: float | None = None
                    ) -> SmartExchangeLayer:
    """SmartExchange decomposition of one weight, block by block.

    Re-training is ``lean.compress.pipeline``'s: the authors' (dense SGD with a new decomposition after every
    epoch, the default) or lean's fixed-mask form (Ce and B trained straight-through).

    Parameters
    ----------
    w : np.ndarray
        Conv weight (k, c/groups, r, s) or linear weight (k, n).
    theta, max_exponent, exponent_bits, max_rounds
        As for ``decompose_block``.
    row_threshold : float or None
        As for ``decompose_block``; applied to 3x3 conv layers only, as the authors' code does.
    basis_bits : int
        Bits per stored basis entry: 8, 16 or 32 (counted by ``storage_bits``; the bases stay float32 here).

    Returns
    -------
    SmartExchangeLayer
        ``blocks`` per output filter; ``dense()`` gives back a (``w.shape``) float32 weight.

    Raises
    ------
    ValueError
        ``w`` is neither 2-D nor 4-D.
    ConfigError
        ``theta`` < 0, ``basis_bits`` not 8, 16 or 32, or an empty exponent range.

    Notes
    -----
    Zhao et al., ISCA 2020, the algorithm applied to CONV and FC layers, post-training (section unconfirmed).
    """
    w = np.asarray(w)
    if w.ndim not in (2, 4):
        raise ValueError(f"SmartExchange takes conv (k, c, r, s) or linear (k, n) weights; got shape {w.shape}")
    if theta < 0:
        raise ConfigError(f"theta must be >= 0; got {theta}")
    if basis_bits not in (8, 16, 32):
        raise ConfigError(f"basis_bits must be 8, 16 or 32; got {basis_bits}")
    exponent_range(max_exponent, exponent_bits)
    if row_threshold is not None and row_threshold < 0:
        raise ConfigError(f"row threshold must be >= 0; got {row_threshold}")
    rows = weight_rows(w)  # (k, m, L)
    by_rows = row_threshold if w.ndim == 4 and w.shape[2:] == (3, 3) else None
    blocks = []
    for filt in rows:  # blocks of at most BLOCK_ROWS rows (the paper's slicing of tall matrices)
        blocks.append(tuple(decompose_block(filt[i:i + BLOCK_ROWS], theta, max_exponent, exponent_bits, max_rounds,
                                            by_rows)
                            for i in range(0, filt.shape[0], BLOCK_ROWS)))
    return SmartExchangeLayer(tuple(w.shape), tuple(blocks), max_exponent, exponent_bits, basis_bits)
