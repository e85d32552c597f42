"""A functional model of an analog crossbar matrix product: what a ReRAM processing-in-memory array computes.

``crossbar_matmul(x, w)`` approximates the integer product ``x @ w`` the way ISAAC, PRIME and TIMELY compute it:

1. **Weights as conductances.** Each signed weight code is split into a sign and a magnitude (``signed =
   "differential"``: the positive and negative parts on two crossbars, subtracted after conversion) or shifted
   to be non-negative (``"offset"``: ``w + 2^(b-1)``, the offset times the row sums subtracted digitally, ISAAC's
   scheme). The magnitude is cut into ``cell_bits`` slices, one cell each (a 4-bit cell holds 16 levels).
   ``variation`` scales every cell's conductance by ``1 + variation x N(0, 1)`` (device-to-device spread, drawn
   once per call from ``seed``).
2. **Inputs as pulses.** Each input code is fed ``dac_bits`` at a time (bit-serial DACs; a time-coded input is the
   same sum, so TIMELY's DTCs are modelled by the same slices).
3. **Column sums.** Rows are cut into crossbars of ``xbar_rows``; for each crossbar, input slice and weight slice a
   column's current is the sum over its rows of input slice x conductance. The Numba kernel ``_column_sums``
   reads each input code once and adds its non-zero slices' conductance rows, for all slices at once (float32
   is exact here: a column sum is at most ``xbar_rows x (2^dac_bits - 1) x (2^cell_bits - 1)``).
4. **Conversion.** ``read_noise`` adds ``N(0, read_noise)`` of the full-scale current to each column read; an ADC
   of ``adc_bits`` clips to ``[0, full scale]`` and rounds to its ``2^adc_bits - 1`` steps, or to single units of
   current when it has more steps than that (``adc_bits=None``: an ideal converter). The full scale is
   ``adc_range`` times the largest column sum the crossbar can produce (1: ISAAC sizes its ADC so), or, with
   ``adc_range="auto"``, the largest sum the call's data produce on that crossbar (an ADC trimmed to the layer on
   the data, as lean's input codes are scaled per layer and batch).
5. **Shift and add.** Each converted value is weighted by ``2^(input slice offset + weight slice offset)`` and
   summed over slices and crossbars in the digital periphery (the Numba kernel ``_convert_accumulate``).

With ideal converters and no noise the result equals ``x @ w`` exactly; the tests check that against NumPy, and
check the converter model against a plain NumPy loop.
"""

import numpy as np

from ._config import PARALLEL_JIT, njit, prange

SIGNED_SCHEMES = ("differential", "offset")


@njit(**PARALLEL_JIT)
def _column_sums(codes, g, dac_bits, partial):
    """partial[j, i, c] = sum over rows r of (input slice j of codes[i, r]) * g[r, c]: every column's current for
    every input slice at once, from the integer codes (no plane of pulses is built; a zero slice adds nothing).
    Sums of small integers in float32 are exact (a column sums at most rows x (2^dac_bits - 1) x (2^cell_bits - 1)
    units, far below 2^24), whatever the order."""
    n_j, n, k = partial.shape
    rows = codes.shape[1]
    mask = (1 << dac_bits) - 1
    for i in prange(n):
        for j in range(n_j):
            for c in range(k):
                partial[j, i, c] = 0.0
        for r in range(rows):
            code = codes[i, r]
            if code == 0:
                continue
            for j in range(n_j):
                pulses = (code >> (j * dac_bits)) & mask
                if pulses != 0:
                    scale = np.float32(pulses)
                    for c in range(k):
                        partial[j, i, c] += scale * g[r, c]


@njit(cache=True, nogil=True, parallel=True)  # no fastmath: v / step must not become v * (1 / step) at the ADC
def _convert_accumulate(out, partial, noise, full_scale, levels, weights):
    """out[i, c] += sum over slices (j, s) of weights[j, s] * ADC(partial[j, i, s, c] + noise[j, i, s, c]).

    ``partial`` holds a crossbar's column sums for every input slice j, input i, cell slice s and column c; the
    ADC clips to [0, full_scale] and rounds to ``levels`` steps (0: ideal); ``noise`` may be empty (no noise)."""
    n_j, n, n_s, k = partial.shape
    noisy = noise.size > 0
    # an ADC with more steps than the column can sum resolves every unit of current: its step is one unit
    step = max(full_scale / levels, 1.0) if levels > 0 else 1.0
    for i in prange(n):
        for j in range(n_j):
            for t in range(n_s):
                wgt = weights[j, t]
                for c in range(k):
                    v = partial[j, i, t, c]
                    if noisy:
                        v += noise[j, i, t, c]
                    if levels > 0:
                        if v < 0.0:
                            v = 0.0
                        elif v > full_scale:
                            v = full_scale
                        v = np.floor(v / step + 0.5) * step
                    out[i, c] += wgt * v


def _check_codes(name, a, lo, hi):
    if not isinstance(a, np.ndarray) or a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"crossbar_matmul: {name} must be a 2-D integer array")
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"crossbar_matmul: {name} codes must lie in [{lo}, {hi}]; got [{a.min()}, {a.max()}]")


def crossbar_matmul(x: np.ndarray, w: np.ndarray, *, xbar_rows: int = 128, cell_bits: int = 4,
                    weight_bits: int = 8, input_bits: int = 8, dac_bits: int = 1, adc_bits: int | None = None,
                    adc_range: float | str = 1.0, signed: str = "differential", read_noise: float = 0.0,
                    variation: float = 0.0, seed: int = 0) -> np.ndarray:
    """``x @ w`` as a crossbar computes it (see the module docstring).

    Parameters
    ----------
    x : ndarray of int, shape (n, m)
        Input codes in [0, 2^input_bits).
    w : ndarray of int, shape (m, k)
        Signed weight codes in [-(2^(weight_bits-1) - 1), 2^(weight_bits-1) - 1].
    xbar_rows : int
        Rows of one crossbar (its columns are not a limit here: every column converts alike).
    cell_bits, weight_bits, input_bits, dac_bits : int
        Bits a cell holds, bits of a weight and of an input code, input bits a DAC applies at once.
    adc_bits : int, optional
        ADC resolution; None for an ideal converter.
    adc_range : float or "auto"
        The ADC's full scale as a share of the largest column sum the crossbar can produce (in (0, 1]): column
        sums of real data stay far below it, and a converter ranged to them spends its steps where they fall.
        ``"auto"``: each crossbar's full scale is the largest column sum of this call's data there.
    signed : str
        ``"differential"`` (positive and negative crossbars) or ``"offset"``.
    read_noise, variation : float
        Column read noise as a share of the full-scale current; cell conductance spread (relative).
    seed : int
        Seed of the noise and variation draws.

    Returns
    -------
    ndarray of float64, shape (n, k)
    """
    for name, v, lo in (("xbar_rows", xbar_rows, 1), ("cell_bits", cell_bits, 1), ("weight_bits", weight_bits, 2),
                        ("input_bits", input_bits, 1), ("dac_bits", dac_bits, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"crossbar_matmul: {name} must be an integer >= {lo}; got {v!r}")
    if adc_bits is not None and (isinstance(adc_bits, bool) or not isinstance(adc_bits, (int, np.integer))
                                 or not 1 <= adc_bits <= 24):
        raise ValueError(f"crossbar_matmul: adc_bits must be an integer in [1, 24] or None; got {adc_bits!r}")
    auto_range = isinstance(adc_range, str) and adc_range == "auto"
    if not auto_range and (isinstance(adc_range, (str, bool)) or not 0.0 < adc_range <= 1.0):
        raise ValueError(f"crossbar_matmul: adc_range must lie in (0, 1] or be 'auto'; got {adc_range!r}")
    if signed not in SIGNED_SCHEMES:
        raise ValueError(f"crossbar_matmul: signed must be one of {SIGNED_SCHEMES}; got {signed!r}")
    if not (read_noise >= 0 and variation >= 0):
        raise ValueError("crossbar_matmul: read_noise and variation must be >= 0")
    wmax = 2 ** (weight_bits - 1) - 1
    _check_codes("x", x, 0, 2 ** input_bits - 1)
    _check_codes("w", w, -wmax, wmax)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"crossbar_matmul: x is {x.shape} and w is {w.shape}; their inner sizes differ")

    n, m = x.shape
    k = w.shape[1]
    rng = np.random.default_rng(seed)
    # the stored magnitudes, one plane per crossbar polarity
    if signed == "differential":
        planes = [(np.maximum(w, 0), 1.0), (np.maximum(-w, 0), -1.0)]
        mag_bits = weight_bits - 1
    else:
        planes = [(w.astype(np.int64) + 2 ** (weight_bits - 1), 1.0)]
        mag_bits = weight_bits
    cell_slices = -(-mag_bits // cell_bits)
    input_slices = -(-input_bits // dac_bits)
    cell_mask, dac_mask = 2 ** cell_bits - 1, 2 ** dac_bits - 1
    xi = np.ascontiguousarray(x, dtype=np.int32)      # codes below 2^16: int32 holds them, half int64's traffic
    out = np.zeros((n, k), dtype=np.float64)
    largest_sum = float(xbar_rows * dac_mask * cell_mask)
    levels = 0 if adc_bits is None else 2 ** adc_bits - 1
    # the weight of each (input slice, cell slice) pair in the shift-and-add
    shifts = np.array([[2.0 ** (j * dac_bits + t * cell_bits) for t in range(cell_slices)]
                       for j in range(input_slices)])
    no_noise = np.zeros((0, 0, 0, 0))
    partial_buffer = np.empty(input_slices * n * cell_slices * k, dtype=np.float32)
    for start in range(0, m, xbar_rows):
        rows = slice(start, min(start + xbar_rows, m))
        codes = np.ascontiguousarray(xi[:, rows])
        for stored, polarity in planes:
            # every cell slice side by side: (rows, slices x k) conductances
            g = np.concatenate([((stored[rows] >> (t * cell_bits)) & cell_mask) for t in range(cell_slices)],
                               axis=1).astype(np.float32)
            if variation:
                g = g * (1.0 + variation * rng.standard_normal(g.shape)).astype(np.float32)
            partial = partial_buffer.reshape(input_slices, n, cell_slices * k)
            _column_sums(codes, g, dac_bits, partial)
            partial = partial.reshape(input_slices, n, cell_slices, k)
            full_scale = max(float(partial.max(initial=0.0)), 1.0) if auto_range else largest_sum * adc_range
            noise = (rng.standard_normal(partial.shape) * (read_noise * full_scale) if read_noise else no_noise)
            _convert_accumulate(out, partial, noise, full_scale, levels, polarity * shifts)
    if signed == "offset":   # the stored offset times each input, subtracted in the digital periphery
        out -= float(2 ** (weight_bits - 1)) * xi.sum(axis=1, keepdims=True)
    return out
