"""Compressed weight forms: how a conv or linear layer's weight is *stored* and *trained* when compressed.

A layer with a form has no dense ``weight`` parameter: it holds the form's trainable arrays (as parameters
named ``weight.<name>``) and fixed arrays (as buffers), builds the dense weight from them for each forward,
and turns the weight gradient into gradients of its own arrays. The methods that *produce* forms
(decomposition, clustering, calibration) live in ``lean.compress``; this module only knows how to run, train
and store them, so a checkpoint of a compressed model loads without the compression code.

- ``SmartExchangeWeight`` (Zhao et al., ISCA 2020): rows = (pow2(Ce) * mask) @ B per block. Ce is a latent
  float trained through the power-of-two rounding by the straight-through estimator; the mask (the
  decomposition's non-zeros) is fixed; B is trained through ``basis_bits`` fake quantization, also
  straight-through. Stored as: position bitmap, one int8 code per non-zero (sign * (exponent - e_min + 1)),
  8/16-bit basis codes with one scale per basis.
- ``SharedWeight`` (deep k-means, Wu et al., ICML 2018): each kernel row is one of K centres; centres are
  trained (the gradient of a centre is the sum of its rows' gradients), assignments fixed. Stored as float32
  centres and uint8/uint16 assignments.
- ``QuantizedWeight``: uniform symmetric fake quantization of a latent float weight (per tensor or per output
  channel), straight-through gradient inside the clipping range. Stored as int8 codes (two 4-bit codes per
  byte at 4 bits or fewer) and float32 scales.
"""

from collections.abc import Iterable, Mapping

import numpy as np

from .. import kernels

FORMS = {}


def _register(cls):
    FORMS[cls.__name__] = cls
    return cls


def form_from_config(cfg: dict, shape: tuple[int, ...]) -> "WeightForm":
    """The form described by ``cfg`` (a form's ``config()``) for a weight of ``shape``; its arrays start at zero."""
    kind = cfg.get("type")
    if kind not in FORMS:
        raise ValueError(f"unknown weight form {kind!r}; known: {', '.join(FORMS)}")
    return FORMS[kind].from_config(cfg, shape)


def huffman_length(counts: Iterable[int]) -> int:
    """Total bits of a Huffman code for symbols with these counts (one symbol: 1 bit each).

    Parameters
    ----------
    counts : iterable of int
        Occurrences of each symbol; zeros are ignored.

    Returns
    -------
    int
        Sum over symbols of count x code length: the ideal entropy-coded size that deep k-means (Wu et al.,
        ICML 2018) charges for the cluster assignments.
    """
    import heapq

    counts = [int(c) for c in counts if c > 0]
    if len(counts) <= 1:
        return counts[0] if counts else 0
    heapq.heapify(counts)
    total = 0
    while len(counts) > 1:
        a, b = heapq.heappop(counts), heapq.heappop(counts)
        total += a + b  # each merge adds one bit to every symbol below it
        heapq.heappush(counts, a + b)
    return total


def pow2_nearest(ce: np.ndarray, e_min: float | np.ndarray,
                 e_max: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest signed power of two in the linear domain, exponents in [e_min, e_max]; magnitudes below half of
    2^e_min become 0. Returns ``(values, exponents)`` (the midpoint between 2^e and 2^(e+1) is 1.5 * 2^e).

    Parameters
    ----------
    ce : np.ndarray
        Any shape, real.
    e_min, e_max : float or np.ndarray
        Exponent range; arrays broadcast against ``ce`` (per-row ranges).

    Returns
    -------
    values : np.ndarray
        Shaped like ``ce``, its dtype: ``sign(ce) * 2^e``, or 0.
    exponents : np.ndarray
        Shaped like ``ce`` (float): the clipped exponent e of each entry (meaningless where the value is 0).
    """
    mag = np.abs(ce)
    e = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    e = e + (mag >= 1.5 * np.exp2(e))
    e = np.clip(e, e_min, e_max)
    return np.where(mag < 0.5 * np.exp2(e_min), 0.0, np.sign(ce) * np.exp2(e)).astype(ce.dtype), e


def _fake_quant_rows(b, bits):
    """Symmetric fake quantization with one scale per leading index (a basis); returns (values, codes, scale)."""
    qmax = 2 ** (bits - 1) - 1
    flat = b.reshape(b.shape[0], -1) if b.ndim > 1 else b.reshape(1, -1)
    scale = np.abs(flat).max(axis=1) / qmax
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    codes = np.clip(np.rint(flat / scale[:, None]), -qmax, qmax)
    return (codes * scale[:, None]).reshape(b.shape).astype(np.float32), codes, scale


def quantize_basis(basis: np.ndarray, bits: int) -> np.ndarray:
    """SmartExchange bases (..., L, L) as stored: ``bits``-bit symmetric codes with one float32 scale per basis,
    back as float32 values (what the accelerator rebuilds with, and what ``SmartExchangeWeight`` trains)."""
    basis = np.asarray(basis, np.float32)
    flat = basis.reshape(-1, *basis.shape[-2:])
    return _fake_quant_rows(flat, bits)[0].reshape(basis.shape)


def se_storage_bits(nonzeros: int, positions: int, bases: int, row_length: int, exponent_bits: int,
                    basis_bits: int) -> int:
    """The one storage count of a SmartExchange weight (the decomposition's and the trained form's): per kept
    coefficient a sign and an exponent code, a 1-bit position bitmap over the real rows' ``positions`` (padding
    rows of a last, shorter block are not stored), and per basis L x L codes of ``basis_bits`` plus one 32-bit
    scale."""
    return int(nonzeros * (1 + exponent_bits) + positions + bases * (row_length * row_length * basis_bits + 32))


class WeightForm:
    """Base: ``params``/``grads``/``buffers`` dicts (names without the ``weight.`` prefix).

    Parameters
    ----------
    shape : tuple of int
        Shape of the dense weight the form stands for: conv (k, c / groups, r, s), linear (out, in).
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(int(v) for v in shape)
        self.params, self.grads, self.buffers = {}, {}, {}

    def _param(self, name, value):
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        self.grads[name] = np.zeros_like(self.params[name])

    def dense(self) -> np.ndarray:
        """The dense weight the layer multiplies by, ``shape``, float32 (rebuilt from the form's arrays)."""
        raise NotImplementedError

    def backward(self, dw: np.ndarray) -> None:
        """Turn the dense weight's gradient into gradients of the form's trainable arrays (accumulated in
        ``grads``).

        Parameters
        ----------
        dw : np.ndarray
            ``shape``, the gradient of the loss with respect to the last ``dense()``.
        """
        raise NotImplementedError

    def export(self) -> dict[str, np.ndarray]:
        """Compact arrays that store the form (what a checkpoint writes), by name; each form lists its own."""
        raise NotImplementedError

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set the form's arrays, in place, from ``export()`` output."""
        raise NotImplementedError

    def storage_bits(self) -> int:
        """Bits to store the weight in this form (the count each compression method reports)."""
        raise NotImplementedError

    def weight_bits(self) -> int:
        """Bits of one weight operand for the hardware models."""
        raise NotImplementedError

    def operand_density(self) -> float | None:
        """Fraction of non-zero weight operands the hardware processes (None: those of the dense weight)."""
        return None

    def rebuild_adds(self) -> int:
        """Operations (shift-and-adds) the hardware spends rebuilding all the weights from this form once."""
        return 0

    def traffic_bits(self) -> float | None:
        """Bits per weight in DRAM and the on-chip buffer when the hardware moves the weights in this form and
        decodes them next to the PEs (None: they move decoded, at ``weight_bits``)."""
        return None

    def config(self) -> dict:
        """The form's type and settings as JSON-able values (``form_from_config`` rebuilds it)."""
        return {"type": type(self).__name__}


# --------------------------------------------------------------------------------------- SmartExchange

def se_row_length(shape: tuple[int, ...]) -> int:
    """SmartExchange row length L for a weight of ``shape``: the kernel width s of a conv with s > 1, else 3."""
    return shape[3] if len(shape) == 4 and shape[3] > 1 else 3


def se_rows(w: np.ndarray) -> np.ndarray:
    """Filter rows (k, m, L): kernel rows for s > 1, else each filter zero-padded to a multiple of 3.

    Parameters
    ----------
    w : np.ndarray
        A conv weight (k, c / groups, r, s) or a linear weight (k, n).

    Returns
    -------
    np.ndarray
        (k, m, L): L = s and m = (c / groups) * r for a conv with s > 1; otherwise L = 3 and each filter's
        flattened weights, zero-padded to a multiple of 3, folded into m rows (SmartExchange's reshape of 1x1
        convs and fully connected layers).
    """
    w = np.asarray(w)
    k = w.shape[0]
    if w.ndim == 4 and w.shape[3] > 1:
        return w.reshape(k, -1, w.shape[3])
    flat = w.reshape(k, -1)
    return np.pad(flat, ((0, 0), (0, (-flat.shape[1]) % 3))).reshape(k, -1, 3)


def se_unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``se_rows``: rows (k, m, L) back to a weight of ``shape``, the padding dropped."""
    n = int(np.prod(shape[1:]))
    return rows.reshape(shape[0], -1)[:, :n].reshape(shape)


@_register
class SmartExchangeWeight(WeightForm):
    """Blocks of at most ``block_rows`` rows per filter; arrays are (k, n_blocks, block_rows, L) with padding.

    Each block's rows are ``pow2(Ce) * mask @ B`` (Zhao et al., ISCA 2020: W ~= Ce B with Ce sparse and
    power-of-two, B a small dense basis per block).

    Parameters
    ----------
    shape : tuple of int
        The dense weight's shape (see ``se_rows`` for how it becomes rows of length L).
    block_rows : int
        Rows per block at most (192: 64 input channels of a 3x3 conv, the paper's blocking).
    max_exponent : int
        Largest exponent of a coefficient (|Ce| <= 2^max_exponent).
    exponent_bits : int
        Bits of a coefficient's code magnitude: exponents run over 2^exponent_bits - 1 values up to
        ``max_exponent``.
    basis_bits : int
        Bits of the basis codes (8 or 16), one scale per basis.

    Notes
    -----
    With m rows per filter, bm = min(m, block_rows) rows per block and nb = ceil(m / bm) blocks, the arrays are:
    parameter ``ce`` (k, nb, bm, L), the latent float coefficients (rounded to powers of two on use); parameter
    ``basis`` (k, nb, L, L); buffer ``mask`` (k, nb, bm, L), 1.0 where a coefficient may be non-zero. Rows past m
    are padding. ``export()`` gives ``mask_bits`` (uint8, the mask packed 8 to a byte), ``codes`` (int8, one per
    mask position, ``sign * (exponent - e_min + 1)``, 0 for one that rounded to zero), ``basis_codes``
    (k * nb, L * L) int8 (int16 above 8 bits) and ``basis_scale`` (k * nb,) float32.
    """

    def __init__(self, shape: tuple[int, ...], block_rows: int = 192, max_exponent: int = 5, exponent_bits: int = 4,
                 basis_bits: int = 8):
        super().__init__(shape)
        self.block_rows, self.max_exponent, self.exponent_bits = int(block_rows), int(max_exponent), int(exponent_bits)
        self.basis_bits = int(basis_bits)
        self.e_min = self.max_exponent - (2 ** self.exponent_bits - 2)
        k = self.shape[0]
        self.L = se_row_length(self.shape)
        self.m = se_rows(np.zeros(self.shape, np.float32)).shape[1]
        self.bm = min(self.m, self.block_rows)
        self.nb = -(-self.m // self.bm)
        self._param("ce", np.zeros((k, self.nb, self.bm, self.L)))
        self._param("basis", np.broadcast_to(np.eye(self.L), (k, self.nb, self.L, self.L)))
        self.buffers["mask"] = np.zeros((k, self.nb, self.bm, self.L), dtype=np.float32)
        self._cache = None

    def set_blocks(self, blocks_per_filter: list[list]) -> "SmartExchangeWeight":
        """Fill from decomposition ``Block`` objects (sign, exponent, basis per block).

        Parameters
        ----------
        blocks_per_filter : list of list of lean.compress.smartexchange.Block
            Per output filter, its blocks in order: ``sign`` (rows, L) in {-1, 0, 1}, ``exponent`` (rows, L)
            and ``basis`` (L, L).
        """
        for f, blocks in enumerate(blocks_per_filter):
            for b, block in enumerate(blocks):
                rows = block.sign.shape[0]
                values = block.sign.astype(np.float32) * np.exp2(block.exponent.astype(np.float32))
                self.params["ce"][f, b, :rows] = values
                self.buffers["mask"][f, b, :rows] = block.sign != 0
                self.params["basis"][f, b] = block.basis
        return self

    def row_density(self) -> float:
        """Fraction of Ce's rows (of the m real rows per filter, padding left out) with a non-zero coefficient:
        the rows the SmartExchange accelerator rebuilds; an all-zero row is skipped whole."""
        live = np.any(self._coefficients()[1] != 0, axis=-1).reshape(self.shape[0], -1)[:, :self.m]
        return float(live.mean())

    def _coefficients(self):
        """Masked power-of-two coefficients and their int8 codes (sign * (exponent - e_min + 1), 0 for zero)."""
        ce_q, e = pow2_nearest(self.params["ce"], self.e_min, self.max_exponent)
        ce_q = ce_q * self.buffers["mask"]
        codes = np.where(ce_q != 0, np.sign(ce_q) * (e - self.e_min + 1), 0).astype(np.int8)
        return ce_q, codes

    def dense(self) -> np.ndarray:
        """Rebuild the weight: the power-of-two sparse product of the coefficients with the bases
        (``lean.kernels.se_rebuild``), from int8 codes as the hardware would hold them."""
        cq, codes = self._coefficients()
        bq, _, _ = _fake_quant_rows(self.params["basis"].reshape(-1, self.L, self.L), self.basis_bits)
        bq = bq.reshape(self.params["basis"].shape)
        self._cache = (cq, bq)
        rows = kernels.se_rebuild(codes, bq, self.e_min).reshape(self.shape[0], -1, self.L)[:, :self.m]
        return se_unrows(rows, self.shape).astype(np.float32)

    def backward(self, dw: np.ndarray) -> None:
        """dCe = dW B^T (masked) and dB = Ce^T dW per block, straight through both roundings."""
        cq, bq = self._cache if self._cache is not None else (self._coefficients()[0], self.params["basis"])
        rows = se_rows(dw)
        padded = np.zeros((self.shape[0], self.nb * self.bm, self.L), np.float32)
        padded[:, :self.m] = rows
        d_rows = padded.reshape(self.shape[0], self.nb, self.bm, self.L)
        # straight through the power-of-two rounding (masked) and the basis quantization
        self.grads["ce"] += np.einsum("kbmj,kblj->kbml", d_rows, bq) * self.buffers["mask"]
        self.grads["basis"] += np.einsum("kbml,kbmj->kblj", cq, d_rows)

    def export(self) -> dict[str, np.ndarray]:
        mask = self.buffers["mask"] > 0
        codes = self._coefficients()[1][mask]  # code 0: a kept position whose coefficient rounded to zero
        _, bcodes, bscale = _fake_quant_rows(self.params["basis"].reshape(-1, self.L, self.L), self.basis_bits)
        return {"mask_bits": np.packbits(mask.reshape(-1)), "codes": codes,
                "basis_codes": bcodes.astype(np.int8 if self.basis_bits <= 8 else np.int16),
                "basis_scale": bscale}

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        mask = np.unpackbits(arrays["mask_bits"])[:self.buffers["mask"].size].reshape(self.buffers["mask"].shape)
        self.buffers["mask"][...] = mask
        codes = arrays["codes"].astype(np.float32)
        ce = np.zeros(self.params["ce"].shape, np.float32)
        ce[mask.astype(bool)] = np.sign(codes) * np.exp2(np.abs(codes) - 1 + self.e_min)
        self.params["ce"][...] = ce
        basis = arrays["basis_codes"].astype(np.float32).reshape(-1, self.L * self.L) * arrays["basis_scale"][:, None]
        self.params["basis"][...] = basis.reshape(self.params["basis"].shape)

    @property
    def nonzeros(self) -> int:
        """Positions the mask keeps (coefficients that may be non-zero)."""
        return int(self.buffers["mask"].sum())

    def storage_bits(self) -> int:
        """``se_storage_bits``: sign and exponent bits per kept coefficient, the position bitmap of the real
        rows, the basis codes and one 32-bit scale per basis."""
        return se_storage_bits(self.nonzeros, self.shape[0] * self.m * self.L, self.shape[0] * self.nb, self.L,
                               self.exponent_bits, self.basis_bits)

    def weight_bits(self) -> int:
        """The SmartExchange accelerator rebuilds W = Ce x B and multiplies activations by the rebuilt weights,
        at the basis's width (``basis_bits``), not by Ce's ``1 + exponent_bits``-bit codes."""
        return self.basis_bits

    def operand_density(self) -> float:
        """The rebuilt weights the accelerator multiplies by: a zero element of Ce does not zero W, only an
        all-zero row of Ce does (its row of W is skipped), so the density is Ce's row density."""
        return self.row_density()

    def rebuild_adds(self) -> int:
        """Rebuilding a row of W is a shift of each of the row's non-zero coefficients applied to a basis row
        (L values) and an add: L shift-and-adds per non-zero coefficient."""
        return int(self.nonzeros * self.L)

    def traffic_bits(self) -> float:
        """The SmartExchange accelerator keeps Ce and B in DRAM and its buffers and rebuilds W in its rebuild
        engine beside the PE lines: the weights travel at ``storage_bits`` over the weight count."""
        return self.storage_bits() / int(np.prod(self.shape))

    def config(self) -> dict:
        return {"type": type(self).__name__, "block_rows": self.block_rows, "max_exponent": self.max_exponent,
                "exponent_bits": self.exponent_bits, "basis_bits": self.basis_bits}

    @classmethod
    def from_config(cls, cfg: dict, shape: tuple[int, ...]) -> "SmartExchangeWeight":
        return cls(shape, cfg["block_rows"], cfg["max_exponent"], cfg["exponent_bits"], cfg["basis_bits"])


# ------------------------------------------------------------------------------------- shared weights

CENTRE_BITS = 32  # width of a shared centre's weights: in storage, in the energy metric, everywhere


@_register
class SharedWeight(WeightForm):
    """Kernel rows (conv) or scalars (linear) drawn from ``clusters`` shared centres.

    Deep k-means' weight sharing (Wu et al., ICML 2018): a conv's samples are its kernel rows of length s.

    Parameters
    ----------
    shape : tuple of int
        The dense weight's shape.
    clusters : int
        Number of centres K.
    fixed_centre : bool
        Centre 0 is the sparsity option's shared centre (``lean.compress.kmeans.cluster_rows``) and stays as
        clustered in fine-tuning: it gets no gradient.

    Notes
    -----
    Parameter ``centres`` (K, row), row = s for a conv and 1 for a linear layer; buffer ``labels``
    (prod(shape) / row,) int64, the centre of each row in the dense weight's C order. ``export()`` gives
    ``centres`` float32 and ``labels`` uint8 (uint16 for K > 256).
    """

    def __init__(self, shape: tuple[int, ...], clusters: int, fixed_centre: bool = False):
        super().__init__(shape)
        self.clusters = int(clusters)
        self.fixed_centre = bool(fixed_centre)
        self.row = self.shape[3] if len(self.shape) == 4 else 1
        n_rows = int(np.prod(self.shape)) // self.row
        self._param("centres", np.zeros((self.clusters, self.row)))
        self.buffers["labels"] = np.zeros(n_rows, dtype=np.int64)
        if self.fixed_centre:  # centre 0 as clustered: a buffer, so no optimizer (nor its weight decay) moves it
            self.buffers["fixed_centre"] = np.zeros((1, self.row), dtype=np.float32)

    def set_clusters(self, centres: np.ndarray, labels: np.ndarray) -> "SharedWeight":
        """Set the centres (K, row) and each row's label (prod(shape) / row,) from a clustering."""
        self.params["centres"][...] = centres
        self.buffers["labels"][...] = labels
        if self.fixed_centre:
            self.buffers["fixed_centre"][...] = centres[:1]
        return self

    def centres(self) -> np.ndarray:
        """The centres in use (K, row): the trained ones, with centre 0 as clustered when it is fixed."""
        if not self.fixed_centre:
            return self.params["centres"]
        return np.concatenate([self.buffers["fixed_centre"], self.params["centres"][1:]])

    def dense(self) -> np.ndarray:
        return self.centres()[self.buffers["labels"]].reshape(self.shape)

    def backward(self, dw: np.ndarray) -> None:
        """A centre's gradient is the sum of its rows' gradients (assignments stay fixed); centre 0 gets none when
        it is ``fixed_centre`` (the sparsity option's shared centre)."""
        grads = kernels.segment_sum(dw.reshape(-1, self.row), self.buffers["labels"], self.clusters)
        if self.fixed_centre:
            grads[0] = 0.0
        self.grads["centres"] += grads.astype(np.float32)

    def export(self) -> dict[str, np.ndarray]:
        dtype = np.uint8 if self.clusters <= 256 else np.uint16
        return {"centres": self.centres().astype(np.float32), "labels": self.buffers["labels"].astype(dtype)}

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.set_clusters(arrays["centres"], arrays["labels"])

    def storage_bits(self) -> int:
        """``CENTRE_BITS``-bit centres plus the Huffman-coded length of the labels (``huffman_length``)."""
        counts = np.bincount(self.buffers["labels"], minlength=self.clusters)
        return int(self.params["centres"].size * CENTRE_BITS + huffman_length(counts))

    def weight_bits(self) -> int:
        return CENTRE_BITS

    def config(self) -> dict:
        return {"type": type(self).__name__, "clusters": self.clusters,
                **({"fixed_centre": True} if self.fixed_centre else {})}

    @classmethod
    def from_config(cls, cfg: dict, shape: tuple[int, ...]) -> "SharedWeight":
        return cls(shape, cfg["clusters"], cfg.get("fixed_centre", False))


# ------------------------------------------------------------------------------------- quantized weight

@_register
class QuantizedWeight(WeightForm):
    """Fake-quantized latent weight. ``scheme``: ``symmetric`` (codes in +-(2^(b-1) - 1), zero exact),
    ``asymmetric`` (codes 0..2^b - 1 with a zero point) or ``pow2`` (sign and a (b-1)-bit exponent below the
    largest power of two that covers max|w|; values are exact signed powers of two or zero).

    Parameters
    ----------
    shape : tuple of int
        The dense weight's shape.
    bits : int
        Bits per code b, 2..16.
    per_channel : bool
        One scale per output channel (row of the weight) instead of one per tensor.
    scheme : str
        ``"symmetric"``, ``"asymmetric"`` or ``"pow2"``.

    Notes
    -----
    Parameter ``latent`` (``shape``), the float weight that training updates (straight-through). ``export()``
    gives, with rows = k if ``per_channel`` else 1: ``scale`` (rows,) float32 (the step; for pow2 the top
    exponent), ``offset`` (rows,) float32 (the zero point; 0 for symmetric; for pow2 the exponent of code 1), and
    the codes in C order: ``codes4`` (two signed 4-bit codes a byte, ``lean.kernels.pack_int4``) when b <= 4 and
    the scheme is not asymmetric, else ``codes`` int8/int16 (uint8/uint16 for asymmetric).
    """

    SCHEMES = ("symmetric", "asymmetric", "pow2")

    def __init__(self, shape: tuple[int, ...], bits: int = 8, per_channel: bool = False, scheme: str = "symmetric"):
        super().__init__(shape)
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"weight bits must be in 2..16; got {bits}")
        if scheme not in self.SCHEMES:
            raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of: {', '.join(self.SCHEMES)}")
        self.bits, self.per_channel, self.scheme = int(bits), bool(per_channel), scheme
        self._param("latent", np.zeros(self.shape))

    def set_weight(self, w: np.ndarray) -> "QuantizedWeight":
        """Set the latent weight (``shape``) from a dense one."""
        self.params["latent"][...] = w
        return self

    def _rows(self):
        w = self.params["latent"]
        return w.reshape(w.shape[0], -1) if self.per_channel else w.reshape(1, -1)

    def _quantize(self):
        """Codes (rows, n) and per-row (scale, zero point) or, for pow2, (top exponent, 0)."""
        rows = self._rows()
        if self.scheme == "symmetric":
            qmax = 2 ** (self.bits - 1) - 1
            scale = np.abs(rows).max(axis=1) / qmax
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            return np.clip(np.rint(rows / scale[:, None]), -qmax, qmax), scale, np.zeros_like(scale)
        if self.scheme == "asymmetric":
            qmax = 2 ** self.bits - 1
            lo, hi = np.minimum(rows.min(axis=1), 0), np.maximum(rows.max(axis=1), 0)
            scale = ((hi - lo) / qmax).astype(np.float32)
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            zero = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.float32)
            return np.clip(np.rint(rows / scale[:, None]) + zero[:, None], 0, qmax), scale, zero
        top = np.ceil(np.log2(np.maximum(np.abs(rows).max(axis=1), 1e-30))).astype(np.float32)
        e_min = top - (2 ** (self.bits - 1) - 2)
        values, e = pow2_nearest(rows.astype(np.float64), e_min[:, None], top[:, None])
        codes = np.where(values != 0, np.sign(values) * (e - e_min[:, None] + 1), 0)
        return codes, top, e_min

    def _dequantize(self, codes, a, b):
        if self.scheme == "symmetric":
            return codes * a[:, None]
        if self.scheme == "asymmetric":
            return (codes - b[:, None]) * a[:, None]
        return np.where(codes != 0, np.sign(codes) * np.exp2(np.abs(codes) - 1 + b[:, None]), 0.0)

    def dense(self) -> np.ndarray:
        """The latent weight quantized and dequantized, float32 (``shape``)."""
        codes, a, b = self._quantize()
        return self._dequantize(codes, a, b).reshape(self.shape).astype(np.float32)

    def backward(self, dw: np.ndarray) -> None:
        # straight-through: the clipping range covers the latent's own extremes, so nothing is clipped
        self.grads["latent"] += dw

    def export(self) -> dict[str, np.ndarray]:
        codes, a, b = self._quantize()
        if self.scheme == "asymmetric":
            codes = codes.astype(np.uint8 if self.bits <= 8 else np.uint16).reshape(-1)
        else:
            codes = codes.astype(np.int8 if self.bits <= 8 else np.int16).reshape(-1)
        out = {"scale": np.asarray(a, np.float32), "offset": np.asarray(b, np.float32)}
        if self.bits <= 4 and self.scheme != "asymmetric":  # two signed codes a byte
            out["codes4"] = kernels.pack_int4(codes)
        else:
            out["codes"] = codes
        return out

    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        count = int(np.prod(self.shape))
        if "codes4" in arrays:
            codes = kernels.unpack_int4(arrays["codes4"], count)
        else:
            codes = arrays["codes"]
        a, b = arrays["scale"], arrays["offset"]
        rows = self._dequantize(codes.reshape(len(a), -1).astype(np.float64), a.astype(np.float64),
                                b.astype(np.float64))
        self.params["latent"][...] = rows.reshape(self.shape)

    def storage_bits(self) -> int:
        """b bits per weight plus the 32-bit scales (and zero points for asymmetric)."""
        per_row = 2 if self.scheme == "asymmetric" else 1
        rows = self.shape[0] if self.per_channel else 1
        return int(np.prod(self.shape)) * self.bits + 32 * per_row * rows

    def weight_bits(self) -> int:
        return self.bits

    def config(self) -> dict:
        return {"type": type(self).__name__, "bits": self.bits, "per_channel": self.per_channel,
                "scheme": self.scheme}

    @classmethod
    def from_config(cls, cfg: dict, shape: tuple[int, ...]) -> "QuantizedWeight":
        return cls(shape, cfg["bits"], cfg["per_channel"], cfg.get("scheme", "symmetric"))
