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

import numpy as np

from .. import kernels

FORMS = {}


def _register(cls):
    FORMS[cls.__name__] = cls
    return cls


def form_from_config(cfg, shape):
    kind = cfg.get("type")
    if kind not in FORMS:
        raise ValueError(f"unknown weight form {kind!r}; known: {', '.join(FORMS)}")
    return FORMS[kind].from_config(cfg, shape)


def huffman_length(counts):
    """Total bits of a Huffman code for symbols with these counts (one symbol: 1 bit each)."""
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


def pow2_nearest(ce, e_min, e_max):
    """Nearest signed power of two in the linear domain, exponents in [e_min, e_max]; magnitudes below half of
    2^e_min become 0. Returns ``(values, exponents)`` (the midpoint between 2^e and 2^(e+1) is 1.5 * 2^e)."""
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


class WeightForm:
    """Base: ``params``/``grads``/``buffers`` dicts (names without the ``weight.`` prefix)."""

    def __init__(self, shape):
        self.shape = tuple(int(v) for v in shape)
        self.params, self.grads, self.buffers = {}, {}, {}

    def _param(self, name, value):
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        self.grads[name] = np.zeros_like(self.params[name])

    def dense(self):
        raise NotImplementedError

    def backward(self, dw):
        raise NotImplementedError

    def export(self):
        """Compact arrays that store the form (what a checkpoint writes)."""
        raise NotImplementedError

    def load(self, arrays):
        raise NotImplementedError

    def storage_bits(self):
        raise NotImplementedError

    def weight_bits(self):
        """Bits of one weight operand for the hardware models."""
        raise NotImplementedError

    def operand_density(self):
        """Fraction of non-zero weight operands the hardware processes (None: those of the dense weight)."""
        return None

    def config(self):
        return {"type": type(self).__name__}


# --------------------------------------------------------------------------------------- SmartExchange

def se_row_length(shape):
    return shape[3] if len(shape) == 4 and shape[3] > 1 else 3


def se_rows(w):
    """Filter rows (k, m, L): kernel rows for s > 1, else each filter zero-padded to a multiple of 3."""
    w = np.asarray(w)
    k = w.shape[0]
    if w.ndim == 4 and w.shape[3] > 1:
        return w.reshape(k, -1, w.shape[3])
    flat = w.reshape(k, -1)
    return np.pad(flat, ((0, 0), (0, (-flat.shape[1]) % 3))).reshape(k, -1, 3)


def se_unrows(rows, shape):
    n = int(np.prod(shape[1:]))
    return rows.reshape(shape[0], -1)[:, :n].reshape(shape)


@_register
class SmartExchangeWeight(WeightForm):
    """Blocks of at most ``block_rows`` rows per filter; arrays are (k, n_blocks, block_rows, L) with padding."""

    def __init__(self, shape, block_rows=192, max_exponent=5, exponent_bits=4, basis_bits=8):
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

    def set_blocks(self, blocks_per_filter):
        """Fill from decomposition ``Block`` objects (sign, exponent, basis per block)."""
        for f, blocks in enumerate(blocks_per_filter):
            for b, block in enumerate(blocks):
                rows = block.sign.shape[0]
                values = block.sign.astype(np.float32) * np.exp2(block.exponent.astype(np.float32))
                self.params["ce"][f, b, :rows] = values
                self.buffers["mask"][f, b, :rows] = block.sign != 0
                self.params["basis"][f, b] = block.basis
        return self

    def _coefficients(self):
        """Masked power-of-two coefficients and their int8 codes (sign * (exponent - e_min + 1), 0 for zero)."""
        ce_q, e = pow2_nearest(self.params["ce"], self.e_min, self.max_exponent)
        ce_q = ce_q * self.buffers["mask"]
        codes = np.where(ce_q != 0, np.sign(ce_q) * (e - self.e_min + 1), 0).astype(np.int8)
        return ce_q, codes

    def dense(self):
        """Rebuild the weight: the power-of-two sparse product of the coefficients with the bases
        (``lean.kernels.se_rebuild``), from int8 codes as the hardware would hold them."""
        cq, codes = self._coefficients()
        bq, _, _ = _fake_quant_rows(self.params["basis"].reshape(-1, self.L, self.L), self.basis_bits)
        bq = bq.reshape(self.params["basis"].shape)
        self._cache = (cq, bq)
        rows = kernels.se_rebuild(codes, bq, self.e_min).reshape(self.shape[0], -1, self.L)[:, :self.m]
        return se_unrows(rows, self.shape).astype(np.float32)

    def backward(self, dw):
        cq, bq = self._cache if self._cache is not None else (self._coefficients()[0], self.params["basis"])
        rows = se_rows(dw)
        padded = np.zeros((self.shape[0], self.nb * self.bm, self.L), np.float32)
        padded[:, :self.m] = rows
        d_rows = padded.reshape(self.shape[0], self.nb, self.bm, self.L)
        # straight through the power-of-two rounding (masked) and the basis quantization
        self.grads["ce"] += np.einsum("kbmj,kblj->kbml", d_rows, bq) * self.buffers["mask"]
        self.grads["basis"] += np.einsum("kbml,kbmj->kblj", cq, d_rows)

    def export(self):
        mask = self.buffers["mask"] > 0
        codes = self._coefficients()[1][mask]  # code 0: a kept position whose coefficient rounded to zero
        _, bcodes, bscale = _fake_quant_rows(self.params["basis"].reshape(-1, self.L, self.L), self.basis_bits)
        return {"mask_bits": np.packbits(mask.reshape(-1)), "codes": codes,
                "basis_codes": bcodes.astype(np.int8 if self.basis_bits <= 8 else np.int16),
                "basis_scale": bscale}

    def load(self, arrays):
        mask = np.unpackbits(arrays["mask_bits"])[:self.buffers["mask"].size].reshape(self.buffers["mask"].shape)
        self.buffers["mask"][...] = mask
        codes = arrays["codes"].astype(np.float32)
        ce = np.zeros(self.params["ce"].shape, np.float32)
        ce[mask.astype(bool)] = np.sign(codes) * np.exp2(np.abs(codes) - 1 + self.e_min)
        self.params["ce"][...] = ce
        basis = arrays["basis_codes"].astype(np.float32).reshape(-1, self.L * self.L) * arrays["basis_scale"][:, None]
        self.params["basis"][...] = basis.reshape(self.params["basis"].shape)

    @property
    def nonzeros(self):
        return int(self.buffers["mask"].sum())

    def storage_bits(self):
        return int(self.nonzeros * (1 + self.exponent_bits) + self.buffers["mask"].size
                   + self.params["basis"].size * self.basis_bits + 32 * self.shape[0] * self.nb)

    def weight_bits(self):
        return 1 + self.exponent_bits

    def operand_density(self):
        """SmartExchange hardware multiplies by the sparse coefficients Ce, not by the rebuilt weight."""
        return self.nonzeros / self.buffers["mask"].size

    def config(self):
        return {"type": type(self).__name__, "block_rows": self.block_rows, "max_exponent": self.max_exponent,
                "exponent_bits": self.exponent_bits, "basis_bits": self.basis_bits}

    @classmethod
    def from_config(cls, cfg, shape):
        return cls(shape, cfg["block_rows"], cfg["max_exponent"], cfg["exponent_bits"], cfg["basis_bits"])


# ------------------------------------------------------------------------------------- shared weights

@_register
class SharedWeight(WeightForm):
    """Kernel rows (conv) or scalars (linear) drawn from ``clusters`` shared centres."""

    def __init__(self, shape, clusters):
        super().__init__(shape)
        self.clusters = int(clusters)
        self.row = self.shape[3] if len(self.shape) == 4 else 1
        n_rows = int(np.prod(self.shape)) // self.row
        self._param("centres", np.zeros((self.clusters, self.row)))
        self.buffers["labels"] = np.zeros(n_rows, dtype=np.int64)

    def set_clusters(self, centres, labels):
        self.params["centres"][...] = centres
        self.buffers["labels"][...] = labels
        return self

    def dense(self):
        return self.params["centres"][self.buffers["labels"]].reshape(self.shape)

    def backward(self, dw):
        self.grads["centres"] += kernels.segment_sum(dw.reshape(-1, self.row), self.buffers["labels"],
                                                     self.clusters).astype(np.float32)

    def export(self):
        dtype = np.uint8 if self.clusters <= 256 else np.uint16
        return {"centres": self.params["centres"].copy(), "labels": self.buffers["labels"].astype(dtype)}

    def load(self, arrays):
        self.params["centres"][...] = arrays["centres"]
        self.buffers["labels"][...] = arrays["labels"]

    def storage_bits(self):
        counts = np.bincount(self.buffers["labels"], minlength=self.clusters)
        return int(self.params["centres"].size * 32 + huffman_length(counts))

    def weight_bits(self):
        return 32

    def config(self):
        return {"type": type(self).__name__, "clusters": self.clusters}

    @classmethod
    def from_config(cls, cfg, shape):
        return cls(shape, cfg["clusters"])


# ------------------------------------------------------------------------------------- quantized weight

@_register
class QuantizedWeight(WeightForm):
    """Fake-quantized latent weight. ``scheme``: ``symmetric`` (codes in +-(2^(b-1) - 1), zero exact),
    ``asymmetric`` (codes 0..2^b - 1 with a zero point) or ``pow2`` (sign and a (b-1)-bit exponent below the
    largest power of two that covers max|w|; values are exact signed powers of two or zero)."""

    SCHEMES = ("symmetric", "asymmetric", "pow2")

    def __init__(self, shape, bits=8, per_channel=False, scheme="symmetric"):
        super().__init__(shape)
        if not 2 <= int(bits) <= 16:
            raise ValueError(f"weight bits must be in 2..16; got {bits}")
        if scheme not in self.SCHEMES:
            raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of: {', '.join(self.SCHEMES)}")
        self.bits, self.per_channel, self.scheme = int(bits), bool(per_channel), scheme
        self._param("latent", np.zeros(self.shape))

    def set_weight(self, w):
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

    def dense(self):
        codes, a, b = self._quantize()
        return self._dequantize(codes, a, b).reshape(self.shape).astype(np.float32)

    def backward(self, dw):
        # straight-through: the clipping range covers the latent's own extremes, so nothing is clipped
        self.grads["latent"] += dw

    def export(self):
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

    def load(self, arrays):
        count = int(np.prod(self.shape))
        if "codes4" in arrays:
            codes = kernels.unpack_int4(arrays["codes4"], count)
        else:
            codes = arrays["codes"]
        a, b = arrays["scale"], arrays["offset"]
        rows = self._dequantize(codes.reshape(len(a), -1).astype(np.float64), a.astype(np.float64),
                                b.astype(np.float64))
        self.params["latent"][...] = rows.reshape(self.shape)

    def storage_bits(self):
        per_row = 2 if self.scheme == "asymmetric" else 1
        rows = self.shape[0] if self.per_channel else 1
        return int(np.prod(self.shape)) * self.bits + 32 * per_row * rows

    def weight_bits(self):
        return self.bits

    def config(self):
        return {"type": type(self).__name__, "bits": self.bits, "per_channel": self.per_channel,
                "scheme": self.scheme}

    @classmethod
    def from_config(cls, cfg, shape):
        return cls(shape, cfg["bits"], cfg["per_channel"], cfg.get("scheme", "symmetric"))
