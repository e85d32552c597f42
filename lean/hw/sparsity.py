"""Compressed formats of sparse operands and the cost of zeros: what a word of dense data takes when stored
compressed, and how many cycles zero skipping saves across a lock-stepped array.

Formats (``FORMATS``), each as bits per *dense* element at a density ``d`` of non-zeros and ``b`` bits a value:

- ``dense``: ``b``.
- ``bitmask``: one presence bit per element plus the non-zero values: ``d b + 1`` (SCNN-style masks, Cambricon-X's
  direct indexing).
- ``rlc``: Eyeriss's run-length coding (Chen et al., JSSC 2017, Sec. V-B): a 5-bit run of zeros and the 16-bit
  value that follows it make a pair, three pairs and a 1-bit terminator fill a 64-bit word (narrower values pack
  more pairs: four of 8 bits). A run longer than 31
  zeros takes an extra pair with a zero value. With zeros independent at rate ``z = 1 - d``, a pair covers
  ``(1 - z^32) / d`` elements on average, so a 16-bit element takes ``d / (1 - z^32) x 64 / 3`` bits
  (``_rlc_pairs``).
  Dense data grows (21.3 bits per 16-bit value): the chip pays that on dense layers too.
- ``csr``: the non-zeros with a column index each (``index_bits``, 8 by default), row pointers left out (one per
  row, small next to the row): ``d (b + index_bits)``.

``skip_factor`` is the share of compute cycles left under zero skipping on an array whose PEs step together: each
PE's share of non-zero work is binomial, and a step lasts as long as the busiest PE (load imbalance). Its
expected maximum over ``P`` PEs of ``n`` MACs each is taken in the normal approximation,
``d + sqrt(d (1 - d) / n) sqrt(2 ln P)`` (capped at 1); SCNN (Parashar et al., ISCA 2017) reports the same effect
as intra-PE fragmentation and inter-PE barrier idling.
"""

import functools

import numpy as np

from ..errors import HardwareModelError

FORMATS = ("dense", "bitmask", "rlc", "csr")
RLC_RUN_BITS = 5      # Eyeriss: 5-bit runs
RLC_WORD_BITS = 64    # three (5 + 16)-bit pairs and a terminator bit
CSR_INDEX_BITS = 8


def _rlc_pairs(density):
    """Expected pairs per element: a pair ends at a non-zero or after 32 elements (a full run and a zero value),
    so it covers E[min(G, 32)] = (1 - z^32) / d elements, G geometric with zero rate z = 1 - d."""
    zero = 1.0 - np.asarray(density, dtype=float)
    span = 2 ** RLC_RUN_BITS
    covered = np.where(zero < 1.0, (1.0 - zero ** span) / np.maximum(1.0 - zero, 1e-300), float(span))
    pairs = 1.0 / covered
    return float(pairs) if np.ndim(pairs) == 0 else pairs


@functools.lru_cache(maxsize=1024)
def stored_scalar(fmt: str, density: float, bits: float) -> float:
    """``stored_bits`` for one density (cached: the predictor asks for the same few many times)."""
    return float(stored_bits(fmt, density, bits))


def stored_bits(fmt: str, density, bits):
    """Bits one dense element takes, on average, in format ``fmt`` at ``density`` non-zeros of ``bits`` bits.

    Parameters
    ----------
    fmt : str
        One of ``FORMATS``.
    density : float or array
        Share of non-zero elements, in [0, 1].
    bits : float
        Bits of one value.

    Returns
    -------
    float or array
    """
    if fmt == "dense":
        return bits * np.ones_like(density, dtype=float) if np.ndim(density) else float(bits)
    if fmt == "bitmask":
        return density * bits + 1.0
    if fmt == "rlc":
        # as many (run, value) pairs as fit a 64-bit word beside its terminator bit: 3 of 16-bit values, 4 of 8-bit
        pairs_per_word = (RLC_WORD_BITS - 1) // (RLC_RUN_BITS + bits)
        if pairs_per_word < 1:
            raise HardwareModelError(f"the run-length code holds values of at most "
                                     f"{RLC_WORD_BITS - 1 - RLC_RUN_BITS} bits; got {bits}")
        return _rlc_pairs(density) * RLC_WORD_BITS / pairs_per_word
    if fmt == "csr":
        return density * (bits + CSR_INDEX_BITS)
    raise HardwareModelError(f"unknown sparse format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def skip_factor(density, macs_per_pe, pes):
    """Share of compute cycles left when zero work is skipped on ``pes`` lock-stepped PEs of ``macs_per_pe`` MACs.

    Parameters
    ----------
    density : float
        Share of MACs with both operands non-zero.
    macs_per_pe : float or array
        MACs each PE runs between synchronizations.
    pes : int or array
        PEs that wait for each other.

    Returns
    -------
    float or array
        In [density, 1].
    """
    if density >= 1.0:
        return np.ones_like(macs_per_pe, dtype=float)
    spread = np.sqrt(density * (1.0 - density) / np.maximum(macs_per_pe, 1.0))
    return np.minimum(1.0, density + spread * np.sqrt(2.0 * np.log(np.maximum(pes, 1))))


def check_format(name: str, fmt: str) -> None:
    """Raise a one-line error for an unknown format in field ``name``."""
    if fmt not in FORMATS:
        raise HardwareModelError(f"{name} must be one of {', '.join(FORMATS)}; got {fmt!r}")
