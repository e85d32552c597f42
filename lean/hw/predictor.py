"""A loop-nest predictor of energy, latency and traffic (after DNN-Chip Predictor, Zhao et al., ICASSP 2020, and
the nest analysis of Timeloop, Parashar et al., ISPASS 2019).

A layer's seven loops (N, K, C, P, Q, R, S) are tiled by a ``lean.hw.mapping.Mapping`` over the storage levels
DRAM -> global buffer (GLB) -> [array: rows x cols of PEs] -> register file (RF) -> MAC. ``analyze`` counts, for
every level and every operand (weights, inputs, outputs):

- **Fills and reads.** A level's tile of an operand is the operand's footprint over the loops at and below that
  level (an input's footprint is its sliding window: ``(P - 1) * stride + R`` rows). Walking the temporal loops
  above a level from the innermost out, loops that do not index the operand leave its tile in place (stationary
  reuse); the first loop that does is *absorbed* into the footprint (the level keeps what the next step shares,
  so a window sliding along P loads only its new rows), and every loop outside it refetches (``_walk``). The
  fills of the child are the reads of its parent; a level an operand bypasses is skipped.
- **Multicast and spatial reduction.** Over the array, PEs whose spatial coordinates do not index an operand
  hold the same data: the parent reads the union of their tiles once and the network delivers it to each
  (``noc`` deliveries / parent reads = the multicast factor). Outputs unrolled over a reduction dimension (C, R
  or S) are summed on the way up (``reductions``): the parent sees one update per union element.
- **Partial sums.** An output level's writes are the updates arriving from below; each update after an
  output's first is a read-modify-write (the partial sum is read back down first). The MAC reads its operands
  from the innermost level that holds them once per use, and updates the output there once per MAC (Timeloop's
  convention and lean's default, since those accesses cost energy; ``rf_counts = "fills"`` counts only what
  enters and leaves the register file, and a partial sum forwarded PE to PE as written into each RF on its way,
  as the DNN-Chip Predictor's code does).
- **Energy** = reads and writes x per-word energies (``Accelerator.e_*_pj`` for reads, ``e_*_write_pj`` for
  writes where they differ; scaled by the operand's bits over ``word_bits``) + MACs x MAC energy + network
  words x ``e_noc_pj`` (a multicast's further destinations and a partial sum's PE-to-PE hops at
  ``noc_multicast_share`` and ``noc_forward_share`` of it) + leakage power x time where the technology tables
  give leakage (``Accelerator.leakage_mw``; the 45 nm tables).
- **Latency.** Compute cycles are the product of the temporal factors (padding and unused PEs show as lost
  utilization); a systolic array adds its fill and drain once per change of the stationary tile (as SCALE-Sim counts
  them); an RF whose fills stall the PE (``rf_fill_stalls``, Eyeriss) adds the fills. Each level's traffic over its
  bandwidth (DRAM and buffer bytes; the network's words, ``noc_words_per_cycle``; a PE's RF accesses,
  ``rf_accesses_per_cycle``; 0: not a bound) overlaps compute (double buffering) and bounds it when slower: the
  layer takes the largest, and ``bound`` says which. Weights that bypass the buffer (``weights_bypass_glb``,
  Eyeriss) go from DRAM straight into the PEs, which wait for them: that DRAM time adds to compute. On an
  accelerator whose DRAM transfers do not overlap at all (``dram_overlap`` false) all of it adds (``bound`` =
  ``compute+dram``).

Sparsity (``lean.hw.sparsity``): maps in DRAM take ``dram_format`` (dense, bitmask, Eyeriss's run-length coding,
CSR) at the layer's input and output densities, weights ``weight_format`` in DRAM and the buffer (a compressed
form's own bits when the layer has them); zero gating scales MAC and RF energy by the densities; zero skipping
scales compute cycles by the busiest PE's share of non-zero work (load imbalance, ``sparsity.skip_factor``).

The search over mappings is ``lean.hw.mapper``; ``predict`` runs it per distinct layer shape, or evaluates the
mappings it is given. Energies are in the accelerator's ``energy_unit`` (pJ, or multiples of a 16-bit MAC under
``eyeriss-normalized``), although the result fields end in ``_pj``; ``Prediction.to_dict()`` says which.
"""

import math
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import HardwareModelError
from . import sparsity, tech
from .accelerator import Accelerator
from .mapping import DIMS, PLACES, TEMPORAL, Mapping, from_dict, layer_dims
from .workload import LayerShape, Workload

OPERANDS = ("weight", "input", "output")
RELEVANT = {"weight": frozenset("KCRS"), "input": frozenset("NCPQRS"), "output": frozenset("NKPQ")}
OBJECTIVES = ("energy", "latency", "edp")
_H = tech.table("horowitz45")
# one rebuild shift-and-add against one MAC at the same width (Horowitz, ISSCC 2014: 8-bit add / (mult + add))
REBUILD_ADD_PER_MAC = _H["add_8b"].value / (_H["mult_8b"].value + _H["add_8b"].value)


@dataclass(frozen=True)
class LayerResult:
    """One layer's cost on one accelerator under its mapping (energies in the accelerator's unit).

    ``counts[level][operand]`` holds ``reads`` and ``writes`` (words) for ``dram``, ``glb`` and ``rf``, and
    ``counts["noc"][operand]`` the words the array network delivers (``deliveries``, to every destination),
    ``sends`` (distinct words off the buffer) and, for outputs, ``reductions`` (partial sums added on the way up).
    ``bound`` is the level whose time sets ``cycles``: ``compute``, ``dram``, ``glb``, ``noc`` or ``rf`` (or
    ``compute+dram`` where DRAM time does not overlap). ``search`` says how many mappings were evaluated, how large
    the space they came from was, and whether it was pruned (``lean.hw.mapper``).
    """

    name: str
    macs: int
    cycles: float
    compute_cycles: float
    dram_cycles: float
    latency_ms: float
    energy_pj: float
    energy_breakdown_pj: dict        # by level: mac, rf, noc, glb, dram (and rebuild)
    energy_by_data_pj: dict          # by operand: input, weight, output (rf, noc, glb, dram)
    dram_bytes: float
    utilization: float
    mapping: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    bound: str = "compute"
    glb_cycles: float = 0.0
    search: dict = field(default_factory=dict)
    noc_cycles: float = 0.0
    rf_cycles: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able)."""
        return {"name": self.name, "macs": self.macs, "cycles": self.cycles, "compute_cycles": self.compute_cycles,
                "dram_cycles": self.dram_cycles, "glb_cycles": self.glb_cycles, "noc_cycles": self.noc_cycles,
                "rf_cycles": self.rf_cycles, "bound": self.bound,
                "latency_ms": self.latency_ms, "energy_pj": self.energy_pj,
                "energy_breakdown_pj": self.energy_breakdown_pj, "energy_by_data_pj": self.energy_by_data_pj,
                "dram_bytes": self.dram_bytes, "utilization": self.utilization, "mapping": self.mapping,
                "counts": self.counts, "search": self.search}


@dataclass(frozen=True)
class Prediction:
    """Per-layer results of a workload on an accelerator; ``energy_unit`` is the unit of every energy in them."""

    workload: str
    accelerator: str
    layers: tuple
    energy_unit: str = "pJ"

    @property
    def total(self) -> dict[str, Any]:
        """Sums over the layers: macs, cycles, latency_ms, energy_pj, energy_breakdown_pj, energy_by_data_pj,
        dram_bytes, and average_power_mw (meaningful in mW only when energies are in pJ)."""
        breakdown = {}
        by_data = {}
        for layer in self.layers:
            for k, v in layer.energy_breakdown_pj.items():
                breakdown[k] = breakdown.get(k, 0.0) + v
            for k, v in layer.energy_by_data_pj.items():
                by_data[k] = by_data.get(k, 0.0) + v
        latency_ms = sum(layer.latency_ms for layer in self.layers)
        energy = sum(layer.energy_pj for layer in self.layers)
        return {"macs": sum(layer.macs for layer in self.layers),
                "cycles": sum(layer.cycles for layer in self.layers),
                "latency_ms": latency_ms, "energy_pj": energy, "energy_breakdown_pj": breakdown,
                "energy_by_data_pj": by_data, "dram_bytes": sum(layer.dram_bytes for layer in self.layers),
                "average_power_mw": energy / (latency_ms * 1e9) * 1e3 if latency_ms else 0.0}

    def to_dict(self) -> dict[str, Any]:
        """``workload, accelerator, layers`` (each ``LayerResult.to_dict()``), ``total`` and ``energy_unit``."""
        return {"workload": self.workload, "accelerator": self.accelerator,
                "layers": [layer.to_dict() for layer in self.layers], "total": self.total,
                "energy_unit": self.energy_unit}


# ------------------------------------------------------------------------------------------ nest analysis

STATIONARY = {"ws": "weight", "os": "output", "is": "input"}   # on a systolic array (SCALE-Sim's meaning)
SYSTOLIC_FILL = {"os": (1, 1), "ws": (2, 1), "is": (2, 1)}     # fill + drain per fold: a x rows + b x cols - 2


def rf_words(acc: Accelerator) -> dict[str, int]:
    """Words of each operand a PE's register file holds (0: the operand passes it by). On a systolic array only
    the dataflow's stationary operand stays in a PE (at least one word); the others move on to the neighbour."""
    words = {"weight": acc.rf_weight_words, "input": acc.rf_input_words, "output": acc.rf_psum_words}
    if acc.systolic and acc.dataflow in STATIONARY:
        kept = STATIONARY[acc.dataflow]
        return {t: max(1, words[t]) if t == kept else 0 for t in OPERANDS}
    return words


def holders(acc: Accelerator) -> dict[str, tuple]:
    """The storage levels that keep each operand, outermost first (a level of capacity 0 is bypassed)."""
    rf = rf_words(acc)
    out = {}
    for t in OPERANDS:
        levels = ["dram"]
        if not (t == "weight" and acc.weights_bypass_glb):
            levels.append("glb")
        if rf[t] > 0:
            levels.append("rf")
        out[t] = tuple(levels)
    return out


@dataclass(frozen=True)
class NestView:
    """A layer as the loop nest of one accelerator sees it: loop bounds, stride, input size, and the share of the
    nest's input words that are distinct (1, or 1 / the im2col duplication)."""

    dims: dict
    stride: int
    hw_in: tuple
    input_dedup: float = 1.0


def view(layer: LayerShape, acc: Accelerator) -> NestView:
    """The nest ``acc`` runs for one group of ``layer``.

    A systolic array runs a conv as the matrix product of its im2col view (SCALE-Sim's model, and the TPU's):
    N = images x output pixels, C = channels x window, K filters, no window loops. Its buffer streams the im2col
    rows to the array, so on chip an input is counted once per window it falls in; DRAM and the buffer's fills
    hold the map itself, ``input_dedup`` = map words / im2col words of it.
    """
    dims = layer_dims(layer)
    hw_in = (layer.h, layer.w) if layer.kind == "conv" else (1, 1)
    if not acc.systolic or (dims["R"], dims["S"], dims["P"], dims["Q"]) == (1, 1, 1, 1):
        return NestView(dims, layer.stride, hw_in)
    gemm = {"N": dims["N"] * dims["P"] * dims["Q"], "K": dims["K"], "C": dims["C"] * dims["R"] * dims["S"],
            "P": 1, "Q": 1, "R": 1, "S": 1}
    im2col = gemm["N"] * gemm["C"]
    return NestView(gemm, 1, (1, 1), min(1.0, dims["N"] * dims["C"] * layer.h * layer.w / im2col))


def weight_stored_bits(layer: LayerShape, acc: Accelerator) -> float:
    """Bits a weight takes in DRAM and the buffer: a compressed form's own (``w_stored_bits``), else the
    accelerator's ``weight_format`` at the layer's weight density."""
    if layer.w_stored_bits is not None:
        return float(layer.w_stored_bits)
    return float(sparsity.stored_scalar(acc.weight_format, float(layer.w_density), layer.w_bits))


def _tile_dedup(nest: NestView, ext: dict):
    """Share of an im2col tile's input words that are distinct map words: a tile of n output pixels (N in the
    im2col nest) repeats a map word at most n times; the layer's whole duplication (``input_dedup``) bounds it."""
    if nest.input_dedup >= 1.0:
        return 1.0
    return 1.0 / np.minimum(ext["N"], 1.0 / nest.input_dedup)


def _needs(layer: LayerShape, acc: Accelerator, nest: NestView, ext_rf: dict, ext_glb: dict, hold: dict):
    """What a mapping's tiles take: words of each operand the RF keeps, and bytes of the buffer (activations at
    their width, partial sums at psum_bits, weights in their stored form, im2col inputs as map words); ``hold``
    is ``holders(acc)``."""
    rf_need = {t: footprint(t, ext_rf, nest.stride, *nest.hw_in) for t in OPERANDS if "rf" in hold[t]}
    bits = {"weight": weight_stored_bits(layer, acc), "input": layer.a_bits,
            "output": max(layer.a_bits, acc.psum_bits)}
    glb_need = 0.0
    for t in OPERANDS:
        if "glb" in hold[t]:
            words = footprint(t, ext_glb, nest.stride, *nest.hw_in)
            if t == "input":
                words = words * _tile_dedup(nest, ext_glb)
            glb_need = glb_need + words * bits[t] / 8.0
    return rf_need, glb_need


def check(acc: Accelerator) -> None:
    """Refuse an accelerator the nest cannot run: weights that skip the global buffer must stay in the PEs."""
    if acc.weights_bypass_glb and rf_words(acc)["weight"] == 0:
        raise HardwareModelError(
            f"{acc.name}: weights bypass the global buffer (weights_bypass_glb) but its {acc.dataflow} PEs keep no "
            "weights, so every use would read DRAM; set weights_bypass_glb=false or give the PEs rf_weight_words")


def footprint(t, ext, stride, h_in=None, w_in=None):
    """Words of operand ``t`` touched by loops of extents ``ext`` (an input's window is clipped to the map)."""
    if t == "weight":
        return ext["K"] * ext["C"] * ext["R"] * ext["S"]
    if t == "output":
        return ext["N"] * ext["K"] * ext["P"] * ext["Q"]
    # consecutive windows overlap by R - stride rows; a stride longer than the window skips rows nobody reads
    if stride == 1:
        rows, cols = ext["P"] - 1 + ext["R"], ext["Q"] - 1 + ext["S"]
    else:
        rows = (ext["P"] - 1) * np.minimum(stride, ext["R"]) + ext["R"]
        cols = (ext["Q"] - 1) * np.minimum(stride, ext["S"]) + ext["S"]
    if h_in is not None:
        rows, cols = np.minimum(rows, h_in), np.minimum(cols, w_in)
    return ext["N"] * ext["C"] * rows * cols


def _walk(t, loops, ext, stride, hw, reuse=True):
    """Words of ``t`` moved into a tile of extents ``ext`` over the temporal ``loops`` above it (innermost first).

    Loops not indexing ``t`` inside its innermost indexing loop keep the tile (stationary); that innermost loop is
    absorbed into the footprint (a sliding window loads only its new part); every loop outside it refetches.
    ``reuse=False`` (operands read by the MAC straight from a level) refetches on every iteration.
    """
    ext = dict(ext)
    if not reuse:
        trips = 1
        for _, f in loops:
            trips = trips * f
        return trips * footprint(t, ext, stride, *hw)
    relevant = RELEVANT[t]
    absorbed = None      # per candidate: has the innermost indexing loop been met (None: by none yet)
    changes = 1
    for d, f in loops:
        if absorbed is not None:
            changes = changes * np.where(absorbed, f, 1)
        if d in relevant:
            newly = (f > 1) if absorbed is None else (~absorbed & (f > 1))
            ext[d] = np.where(newly, ext[d] * f, ext[d])
            absorbed = newly if absorbed is None else (absorbed | newly)
    return changes * footprint(t, ext, stride, *hw)


def analyze(layer: LayerShape, acc: Accelerator, factors: dict, orders: dict,
            live: dict | None = None) -> dict[str, Any]:
    """Counts, energy and cycles of ``layer`` (one group) under candidate mappings, vectorized over them.

    Parameters
    ----------
    layer : LayerShape
        A conv or fc layer.
    acc : Accelerator
        The accelerator.
    factors : dict
        ``factors[place][dim]``: int arrays of one shape (one entry per candidate), for every place in
        ``mapping.PLACES`` and dim in ``mapping.DIMS``.
    orders : dict
        A loop order per temporal level (``mapping.TEMPORAL``), shared by all candidates.
    live : dict, optional
        Per temporal level, the dims with a factor above 1 for some candidate (computed when not given).

    Returns
    -------
    dict
        Arrays per candidate: ``energy``, ``cycles``, ``compute``, ``dram_cycles``, ``glb_cycles``, ``noc_cycles``,
        ``rf_cycles``,
        ``dram_bytes``, ``util``, ``fits``, ``breakdown`` (by level), ``by_data`` (by operand), ``counts``.
    """
    nest = view(layer, acc)
    st, hw_in = nest.stride, nest.hw_in
    one = np.ones_like(factors["rf"]["N"])
    F = factors
    # cumulative extents: what a level's tile spans (its own loops and everything below it)
    ext_rf = {d: F["rf"][d] * one for d in DIMS}
    spatial = {d: F["rows"][d] * F["cols"][d] for d in DIMS}
    ext_union = {d: ext_rf[d] * spatial[d] for d in DIMS}            # the array's tiles together
    ext_glb = {d: ext_union[d] * F["glb"][d] for d in DIMS}
    ext_dram = {d: ext_glb[d] * F["dram"][d] for d in DIMS}
    ones = {d: one for d in DIMS}
    pes_used = math.prod(spatial[d] for d in DIMS)
    # innermost first; loops of factor 1 for every candidate change nothing and are left out
    if live is None:
        live = {lv: {d for d in DIMS if np.any(F[lv][d] > 1)} for lv in TEMPORAL}
    temporal = {lv: [(d, F[lv][d]) for d in reversed(orders[lv]) if d in live[lv]] for lv in TEMPORAL}
    above = {"dram": [], "glb": temporal["dram"], "rf": temporal["glb"] + temporal["dram"],
             "mac": temporal["rf"] + temporal["glb"] + temporal["dram"]}
    tile = {"dram": ext_dram, "glb": ext_glb, "rf": ext_rf, "mac": ones}
    below_array = {"dram": False, "glb": False, "rf": True, "mac": True}
    reduction_spread = math.prod(spatial[d] for d in "CRS")          # PEs adding into one output
    distinct_out = math.prod(ext_dram[d] for d in "NKPQ")
    hold = holders(acc)

    counts = {lv: {t: {"reads": 0.0, "writes": 0.0} for t in OPERANDS} for lv in ("dram", "glb", "rf")}
    noc = {t: {"deliveries": 0.0, "sends": 0.0, "reductions": 0.0} for t in OPERANDS}
    for t in OPERANDS:
        chain = list(hold[t]) + ["mac"]
        for parent, child in zip(chain, chain[1:], strict=False):
            if (parent, child) == ("rf", "mac") and acc.rf_counts == "fills":
                continue   # the DNN-Chip Predictor's convention: the MAC's own RF reads and updates are not counted
            crosses = below_array[child] and not below_array[parent]
            reuse = child != "mac"
            per_instance = _walk(t, above[child], tile[child], st, hw_in, reuse)
            instances = pes_used if below_array[child] else one
            if crosses:   # the PEs' tiles together, as the level above the array sees them
                union = _walk(t, above[child], {d: tile[child][d] * spatial[d] for d in DIMS}, st, hw_in, reuse)
            else:
                union = per_instance
            to_parent = union * (pes_used if below_array[parent] else 1)   # words the parent level sees
            arriving = per_instance * instances                                # words the child level sees
            if t != "output":
                counts[parent][t]["reads"] += to_parent
                if child != "mac":
                    counts[child][t]["writes"] += arriving
                if crosses:
                    noc[t]["deliveries"] += arriving
                    noc[t]["sends"] += to_parent
                continue
            # outputs: partial sums go up as updates; all but an output's first update at a level read it back
            first_parent = distinct_out * (reduction_spread if below_array[parent] else 1)
            counts[parent][t]["writes"] += to_parent
            counts[parent][t]["reads"] += to_parent - first_parent
            if child != "mac":
                # drained partial sums leave the child; the ones read back come down to it (one PE per output
                # when a reduction spreads it over several: the others start again from zero)
                counts[child][t]["reads"] += arriving
                counts[child][t]["writes"] += to_parent - first_parent
                if acc.rf_counts == "fills" and child == "rf":
                    # DNN-Chip Predictor: a partial sum forwarded PE to PE is written into each RF on its way
                    counts[child][t]["writes"] += arriving - to_parent
            if crosses:
                noc[t]["deliveries"] += arriving + (to_parent - first_parent)    # up, and partial sums back down
                noc[t]["sends"] += to_parent
                noc[t]["reductions"] += arriving - to_parent
    # an im2col nest (systolic arrays): DRAM and the buffer's fills move the map itself, not its im2col view; a
    # buffer tile of n output pixels repeats a map word at most n times
    glb_dedup = _tile_dedup(nest, ext_glb)
    if "glb" in hold["input"]:
        counts["dram"]["input"]["reads"] = counts["dram"]["input"]["reads"] * glb_dedup
        counts["glb"]["input"]["writes"] = counts["glb"]["input"]["writes"] * glb_dedup

    # partial sums travel at the accumulator width (psum_bits; 0: the activations'), final outputs at a_bits
    bits = {"weight": layer.w_bits, "input": layer.a_bits, "output": acc.psum_bits or layer.a_bits}
    w_stored = weight_stored_bits(layer, acc)
    macs = layer.macs // layer.groups
    gate = layer.w_density * layer.a_density if acc.zero_gating else 1.0

    # bits per word moved at each level: the RF and the network carry values; the buffer keeps activations
    # decoded and weights in their stored form; DRAM holds maps in dram_format (partial-sum spills stay dense)
    width = {("rf", t): bits[t] for t in OPERANDS}
    width.update({("glb", "weight"): w_stored, ("glb", "input"): bits["input"], ("glb", "output"): bits["output"],
                  ("dram", "weight"): w_stored,
                  ("dram", "input"): sparsity.stored_scalar(acc.dram_format, float(layer.a_density), layer.a_bits)})
    final_out = sparsity.stored_scalar(acc.dram_format, float(layer.o_density), layer.a_bits)
    unit = {"rf": acc.e_rf_pj, "glb": acc.e_glb_pj, "dram": acc.e_dram_pj}
    write_unit = {"rf": acc.e_rf_write_pj, "glb": acc.e_glb_write_pj, "dram": acc.e_dram_write_pj}  # 0: as a read
    breakdown = {"mac": macs * acc.e_mac_pj * gate * (layer.w_bits / acc.word_bits) * (layer.a_bits / acc.word_bits)}
    by_data = {t: 0.0 for t in OPERANDS}
    for lv in ("rf", "noc", "glb", "dram"):
        breakdown[lv] = 0.0
    dram_bytes = 0.0
    glb_bytes = 0.0
    for t in OPERANDS:
        for lv in ("rf", "glb", "dram"):
            c = counts[lv][t]
            if (lv, t) == ("dram", "output"):   # the final outputs compressed, partial sums spilled dense
                written = distinct_out * final_out + (c["writes"] - distinct_out) * bits["output"]
                read = c["reads"] * bits["output"]
            else:
                written, read = c["writes"] * width[(lv, t)], c["reads"] * width[(lv, t)]
            moved = written + read
            e = (read * unit[lv] + written * (write_unit[lv] or unit[lv])) / acc.word_bits \
                * (gate if lv == "rf" else 1.0)
            breakdown[lv] = breakdown[lv] + e
            by_data[t] = by_data[t] + e
            if lv == "dram":
                dram_bytes = dram_bytes + moved / 8.0
            elif lv == "glb":
                glb_bytes = glb_bytes + moved / 8.0
        # a word sent to one PE costs e_noc_pj; each further PE a multicast reaches, noc_multicast_share of it; a
        # partial sum passed PE to PE on its way to being summed, noc_forward_share of it
        n = noc[t]
        if t == "output":
            words = (n["deliveries"] - n["reductions"]) + acc.noc_forward_share * n["reductions"]
        else:
            words = n["sends"] + acc.noc_multicast_share * (n["deliveries"] - n["sends"])
        e_noc = words * acc.e_noc_pj * (bits[t] / acc.word_bits)
        breakdown["noc"] = breakdown["noc"] + e_noc
        by_data[t] = by_data[t] + e_noc
    if layer.rebuild_adds:
        # a compressed layer's weights are rebuilt by shift-and-add on their way to the array (SmartExchange's
        # rebuild engine), once per delivery of the whole weight set; an add costs REBUILD_ADD_PER_MAC of a MAC
        deliveries = noc["weight"]["sends"] / max(layer.weight_count // layer.groups, 1)
        breakdown["rebuild"] = (layer.rebuild_adds / layer.groups * deliveries * acc.e_mac_pj * REBUILD_ADD_PER_MAC
                                * (layer.w_bits / acc.word_bits))
    energy = sum(breakdown.values())

    # ------------------------------------------------------------------ cycles
    steps = math.prod(F[lv][d] for lv in TEMPORAL for d in DIMS)
    compute = steps * one
    if acc.zero_skipping:
        # the busiest PE of a lock-stepped array sets the pace (sparsity.skip_factor): the PEs meet again when the
        # buffer's tile changes, so a PE's share of work is what it does on one tile; stalls are not skipped
        tiles = math.prod(F["dram"][d] for d in DIMS)
        compute = compute * sparsity.skip_factor(layer.w_density * layer.a_density, steps / tiles, pes_used)
    if acc.systolic and acc.dataflow in STATIONARY:
        # the array fills and drains once per change of the stationary tile held in the PEs (a SCALE-Sim fold,
        # charged at the full array as SCALE-Sim charges it)
        kept = STATIONARY[acc.dataflow]
        folds = _walk(kept, above["rf"], ext_rf, st, hw_in) / footprint(kept, ext_rf, st, *hw_in)
        a, b = SYSTOLIC_FILL[acc.dataflow]
        compute = compute + folds * (a * acc.array_rows + b * acc.array_cols - 2)
    if acc.rf_fill_stalls:
        compute = compute + sum(counts["rf"][t]["writes"] for t in ("weight", "input")) / pes_used
    dram_cycles = dram_bytes / acc.dram_bytes_per_cycle
    glb_cycles = glb_bytes / acc.glb_bytes_per_cycle
    # weights that bypass the buffer go from DRAM straight into the PEs, which wait for them: that part of the
    # DRAM time cannot hide behind compute, whatever the buffer does
    bypass_cycles = (counts["dram"]["weight"]["reads"] * w_stored / 8.0 / acc.dram_bytes_per_cycle
                     if acc.weights_bypass_glb else 0.0)
    # the array's network and the register files' ports, where the accelerator bounds them
    noc_cycles = (sum(noc[t]["sends"] for t in OPERANDS) / acc.noc_words_per_cycle
                  if acc.noc_words_per_cycle else 0.0 * one)
    rf_cycles = (sum(counts["rf"][t]["reads"] + counts["rf"][t]["writes"] for t in OPERANDS) / pes_used
                 / acc.rf_accesses_per_cycle if acc.rf_accesses_per_cycle else 0.0 * one)
    on_chip = np.maximum(np.maximum(glb_cycles, noc_cycles), rf_cycles)
    if acc.dram_overlap:
        compute = compute + bypass_cycles   # the array's own time, stalls included
        cycles = np.maximum(np.maximum(compute, dram_cycles), on_chip)
    else:
        cycles = np.maximum(compute + dram_cycles, on_chip)

    leak = acc.leakage_mw()
    if leak is not None:   # leakage power over the layer's time: mW x ms = 1e6 pJ (pJ tables only)
        breakdown["leak"] = leak["total"] * cycles / (acc.clock_mhz * 1e3) * 1e6
        energy = energy + breakdown["leak"]

    # ------------------------------------------------------------------ capacity
    rf_need, glb_need = _needs(layer, acc, nest, ext_rf, ext_glb, hold)
    rf_cap = rf_words(acc)
    fits = (pes_used <= acc.pes) & (math.prod(F["rows"][d] for d in DIMS) <= acc.array_rows) \
        & (math.prod(F["cols"][d] for d in DIMS) <= acc.array_cols) & (glb_need <= acc.glb_bytes)
    for t, need in rf_need.items():
        fits = fits & (need <= rf_cap[t])
    return {"energy": energy * one, "cycles": cycles, "compute": compute, "dram_cycles": dram_cycles * one,
            "glb_cycles": glb_cycles * one, "noc_cycles": noc_cycles * one, "rf_cycles": rf_cycles * one,
            "dram_bytes": dram_bytes * one, "util": macs / (steps * acc.pes) * one,
            "fits": fits, "breakdown": breakdown, "by_data": by_data,
            "counts": {**counts, "noc": noc}}


def _mapping_arrays(m: Mapping) -> dict:
    return {place: {d: np.array([m.factors[place][d]], dtype=np.int64) for d in DIMS} for place in PLACES}


def _pick(value, i):
    return float(np.asarray(value).reshape(-1)[i] if np.ndim(value) else value)


def result(layer: LayerShape, acc: Accelerator, ev: dict, i: int, mapping: Mapping,
           search: dict | None = None) -> LayerResult:
    """The ``LayerResult`` of candidate ``i`` of an ``analyze`` output (one group's counts times the groups)."""
    g = layer.groups
    cycles = _pick(ev["cycles"], i) * g
    compute, dram, glb = _pick(ev["compute"], i) * g, _pick(ev["dram_cycles"], i) * g, _pick(ev["glb_cycles"], i) * g
    levels = {"glb": glb, "noc": _pick(ev["noc_cycles"], i) * g, "rf": _pick(ev["rf_cycles"], i) * g}
    if acc.dram_overlap:
        bound = max((("compute", compute), ("dram", dram), *levels.items()), key=lambda kv: kv[1])[0]
    else:
        bound = max((("compute+dram", compute + dram), *levels.items()), key=lambda kv: kv[1])[0]
    counts = {lv: {t: {k: _pick(v, i) * g for k, v in per.items()} for t, per in by_t.items()}
              for lv, by_t in ev["counts"].items()}
    return LayerResult(
        name=layer.name, macs=layer.macs, cycles=cycles, compute_cycles=compute, dram_cycles=dram,
        glb_cycles=glb, noc_cycles=levels["noc"], rf_cycles=levels["rf"], bound=bound,
        latency_ms=cycles / (acc.clock_mhz * 1e3),
        energy_pj=_pick(ev["energy"], i) * g,
        energy_breakdown_pj={k: _pick(v, i) * g for k, v in ev["breakdown"].items()},
        energy_by_data_pj={k: _pick(v, i) * g for k, v in ev["by_data"].items()},
        dram_bytes=_pick(ev["dram_bytes"], i) * g, utilization=_pick(ev["util"], i),
        mapping=mapping.to_dict(), counts=counts, search=search or {})


def evaluate(layer: LayerShape, acc: Accelerator, mapping: Mapping | AbcMapping) -> LayerResult:
    """The cost of ``layer`` on ``acc`` under one given mapping (no search).

    Parameters
    ----------
    layer : LayerShape
        A conv or fc layer.
    acc : Accelerator
        The accelerator.
    mapping : Mapping or mapping
        A ``Mapping``, or its file form (``lean.hw.mapping.from_dict``).

    Returns
    -------
    LayerResult
    """
    if layer.kind == "pool":
        raise HardwareModelError(f"layer {layer.name}: pooling layers are not costed")
    check(acc)
    if not isinstance(mapping, Mapping):
        mapping = from_dict(mapping, view(layer, acc).dims, f"layer {layer.name}'s mapping")
    ev = analyze(layer, acc, _mapping_arrays(mapping), mapping.orders)
    if not ev["fits"][0]:
        raise HardwareModelError(f"layer {layer.name}: the given mapping does not fit {acc.name} "
                                 f"({_misfit(layer, acc, mapping)})")
    return result(layer, acc, ev, 0, mapping, {"evaluated": 1, "space": 1, "given": True})


def _misfit(layer, acc, m):
    """Which capacity a mapping overflows, in words or bytes."""
    rows = math.prod(m.factors["rows"].values())
    cols = math.prod(m.factors["cols"].values())
    if rows > acc.array_rows or cols > acc.array_cols:
        return f"it unrolls {rows} x {cols} PEs on a {acc.array_rows} x {acc.array_cols} array"
    ext_rf = {d: m.factors["rf"][d] for d in DIMS}
    ext_glb = {d: math.prod(m.factors[p][d] for p in PLACES[1:]) for d in DIMS}
    rf_need, glb_need = _needs(layer, acc, view(layer, acc), ext_rf, ext_glb, holders(acc))
    rf_cap = rf_words(acc)
    for t, need in rf_need.items():
        if need > rf_cap[t]:
            return f"its {t} RF tile is {need} words, the RF holds {rf_cap[t]}"
    return f"its global buffer tiles take {float(glb_need):,.0f} bytes of {acc.glb_bytes:,}"


def predict(workload: Workload, acc: Accelerator, objective: str = "energy",
            mappings: AbcMapping[str, Any] | None = None, effort: str = "default") -> Prediction:
    """Per-layer and total energy, latency and traffic of ``workload`` on ``acc``.

    Parameters
    ----------
    workload : Workload
        The layers to cost (pooling layers are skipped).
    acc : Accelerator
        The accelerator; energies come out in ``acc.energy_unit``.
    objective : str
        What the mapping search minimizes: ``"energy"``, ``"latency"`` or ``"edp"``.
    mappings : mapping, optional
        Given mappings by layer name, in the file form (``lean.hw.mapping``); the key ``"*"`` applies to every
        layer not named. Other layers are searched (``lean.hw.mapper.search``).
    effort : str
        How hard the search looks: ``"quick"`` (sweeps over many accelerators), ``"default"``, ``"thorough"``.

    Returns
    -------
    Prediction
    """
    from .mapper import search  # the mapper builds on this module's analysis

    if not isinstance(workload, Workload) or not isinstance(acc, Accelerator):
        raise TypeError("predict(workload: Workload, acc: Accelerator)")
    if objective not in OBJECTIVES:
        raise HardwareModelError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    mappings = dict(mappings or {})
    names = {layer.name for layer in workload.compute_layers()}
    unknown = sorted(set(mappings) - names - {"*"})
    if unknown:
        raise HardwareModelError(f"mappings name layers the workload does not have: {', '.join(unknown)}")
    cache = {}
    layers = []
    for layer in workload.compute_layers():
        given = mappings.get(layer.name, mappings.get("*"))
        whole = replace(layer, fraction=1.0)
        if given is not None:
            layers.append(_share(evaluate(whole, acc, given), layer.fraction))
            continue
        key = replace(whole, name="")  # repeated blocks have identical shapes: search each once
        if key not in cache:
            cache[key] = search(whole, acc, objective, effort=effort)
        layers.append(_share(replace(cache[key], name=layer.name), layer.fraction))
    return Prediction(workload.name, acc.name, tuple(layers), acc.energy_unit)


def _share(res: LayerResult, fraction: float) -> LayerResult:
    """``res`` for a layer that runs for ``fraction`` of the images (an input-adaptive model's recorded share):
    every count, time and energy times the share, in new containers (a shape searched once serves several
    layers). First order: the weights of a layer that runs for few images are fetched as often as its mapping
    fetches them per image, no more."""
    k = fraction
    counts = {lv: {t: {key: v * k for key, v in per.items()} for t, per in by_t.items()}
              for lv, by_t in res.counts.items()}
    return replace(res, macs=int(round(res.macs * k)), cycles=res.cycles * k,
                   compute_cycles=res.compute_cycles * k, dram_cycles=res.dram_cycles * k,
                   glb_cycles=res.glb_cycles * k, noc_cycles=res.noc_cycles * k, rf_cycles=res.rf_cycles * k,
                   latency_ms=res.latency_ms * k, energy_pj=res.energy_pj * k,
                   energy_breakdown_pj={key: v * k for key, v in res.energy_breakdown_pj.items()},
                   energy_by_data_pj={key: v * k for key, v in res.energy_by_data_pj.items()},
                   dram_bytes=res.dram_bytes * k, counts=counts,
                   mapping={key: dict(v) for key, v in res.mapping.items()}, search=dict(res.search))
