"""A dataflow-aware analytical predictor of energy and latency (after DNN-Chip Predictor, Zhao et al., ICASSP 2020).

For each layer (per group; a conv's dims are N, K, C, P, Q, R, S) the model is a three-level loop nest:

1. **DRAM loops** over tiles of (N, K, C, P, Q) that fit the global buffer (GLB), in a loop order. A tensor's
   tile is fetched again each time a loop at or outside its innermost *relevant* loop advances (inputs: N, C,
   P, Q; weights: K, C; outputs: N, K, P, Q). Outputs fetched more than once spill partial sums (a read back
   and a write each time). ``_dram_counts``.
2. **Array passes** inside one GLB tile, set by the dataflow: which dims are unrolled over the rows and columns
   of the PE array, which operand stays in the PE (the *stationary* one is read from the GLB once per tile; the
   others are re-read on every pass that uses them), and how many passes ("folds") the tile needs.
   ``_ARRAY_MODELS``: rs (Eyeriss), ws (systolic, TPU), os (ShiDianNao), is, nlr (DianNao).
3. **PE level**: register-file accesses per MAC (4 for rs: input, weight, partial sum read and write; 3 for
   ws/os/is: the stationary operand, the passing operand, the partial sum; none for nlr).

Energy = counts x per-access energies (``Accelerator.e_*_pj``) + MACs x MAC energy, returned per level and per
data type. Latency = the largest of compute cycles (with spatial utilization, systolic fill and drain, RF
reload stalls for rs), DRAM cycles (bytes / bandwidth) and GLB cycles: the slowest bounds.

The GLB tiling and the DRAM loop order are searched (``search_tiling``): every combination of tile sizes
from a candidate set per dim (powers of two and the full size) that fits the buffer, under each of a set of
loop orders, evaluated at once with NumPy; the best under the objective (energy, latency or EDP) is kept.

Pooling layers are not costed (no MACs; their data movement is small next to the convs around them).

Energies are in the accelerator's ``energy_unit`` (pJ, or multiples of a 16-bit MAC under ``eyeriss-normalized``),
although the result fields end in ``_pj``; ``Prediction.to_dict()`` says which under ``"energy_unit"``.
"""

import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HardwareModelError
from . import tech
from .accelerator import Accelerator
from .workload import LayerShape, Workload

DIMS = ("N", "K", "C", "P", "Q")
RELEVANT = {"input": ("N", "C", "P", "Q"), "weight": ("K", "C"), "output": ("N", "K", "P", "Q")}
# Loop orders tried at the DRAM level, outermost first (weight-, output- and input-stationary families).
ORDERS = ("KCNPQ", "CKNPQ", "NKPQC", "NPQKC", "NCPQK", "NPQCK", "KNPQC", "CNPQK")
OBJECTIVES = ("energy", "latency", "edp")
_H = tech.table("horowitz45")
# one rebuild shift-and-add against one MAC at the same width (Horowitz, ISSCC 2014: 8-bit add / (mult + add))
REBUILD_ADD_PER_MAC = _H["add_8b"].value / (_H["mult_8b"].value + _H["add_8b"].value)


@dataclass(frozen=True)
class LayerResult:
    """One layer's cost on one accelerator under its chosen tiling (energies in the accelerator's unit)."""

    name: str
    macs: int
    cycles: float
    compute_cycles: float
    dram_cycles: float
    latency_ms: float
    energy_pj: float
    energy_breakdown_pj: dict        # by level: mac, rf, noc, glb, dram
    energy_by_data_pj: dict          # by data type: input, weight, output (memory levels only)
    dram_bytes: float
    utilization: float
    tiling: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able)."""
        return {"name": self.name, "macs": self.macs, "cycles": self.cycles, "compute_cycles": self.compute_cycles,
                "dram_cycles": self.dram_cycles, "latency_ms": self.latency_ms, "energy_pj": self.energy_pj,
                "energy_breakdown_pj": self.energy_breakdown_pj, "energy_by_data_pj": self.energy_by_data_pj,
                "dram_bytes": self.dram_bytes, "utilization": self.utilization, "tiling": self.tiling}


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


# ------------------------------------------------------------------------------------------ array level

def _ceil(a, b):
    return -(-a // b)


def _array_ws(t, acc, R, S, st):
    """Weight stationary: C over rows, K over columns; inputs stream through, partial sums flow down."""
    fc, fk = _ceil(t["C"], acc.array_rows), _ceil(t["K"], acc.array_cols)
    npq = t["N"] * t["P"] * t["Q"]
    fill = (acc.array_rows + acc.array_cols) if acc.systolic else 0
    outputs = t["K"] * npq
    psum_w = outputs * fc * R * S
    return {
        "cycles": fc * fk * R * S * (npq + fill),
        "util": (t["C"] / (fc * acc.array_rows)) * (t["K"] / (fk * acc.array_cols)),
        "weight": t["K"] * t["C"] * R * S,
        "input": fk * R * S * t["N"] * t["C"] * t["P"] * t["Q"],
        "psum_write": psum_w, "psum_read": psum_w - outputs,
        "noc": fk * R * S * t["N"] * t["C"] * t["P"] * t["Q"] * np.minimum(t["K"], acc.array_cols)
        + t["K"] * t["C"] * R * S + psum_w,
        "rf_per_mac": 3,
    }


def _array_os(t, acc, R, S, st):
    """Output stationary: P over rows, Q over columns; weights broadcast, inputs shift between neighbours."""
    fp, fq = _ceil(t["P"], acc.array_rows), _ceil(t["Q"], acc.array_cols)
    rows_used, cols_used = np.minimum(t["P"], acc.array_rows), np.minimum(t["Q"], acc.array_cols)
    window = ((rows_used - 1) * st + R) * ((cols_used - 1) * st + S)
    folds = fp * fq * t["N"] * t["K"]
    fill = (acc.array_rows + acc.array_cols) if acc.systolic else 0
    outputs = t["K"] * t["N"] * t["P"] * t["Q"]
    weight = t["K"] * t["C"] * R * S * fp * fq * t["N"]
    return {
        "cycles": folds * (t["C"] * R * S + fill),
        "util": (t["P"] / (fp * acc.array_rows)) * (t["Q"] / (fq * acc.array_cols)),
        "weight": weight,
        "input": folds * t["C"] * window,
        "psum_write": outputs, "psum_read": outputs * 0,
        "noc": weight * rows_used * cols_used + folds * t["C"] * window,
        "rf_per_mac": 3,
    }


def _array_is(t, acc, R, S, st):
    """Input stationary: C over rows, input columns over columns; weights broadcast, partial sums leave."""
    wt = (t["Q"] - 1) * st + S
    ht = (t["P"] - 1) * st + R
    fc, fw = _ceil(t["C"], acc.array_rows), _ceil(wt, acc.array_cols)
    macs = t["N"] * t["K"] * t["C"] * t["P"] * t["Q"] * R * S
    util = (t["C"] / (fc * acc.array_rows)) * (wt / (fw * acc.array_cols))
    outputs = t["K"] * t["N"] * t["P"] * t["Q"]
    psum_w = np.maximum(macs // np.minimum(t["C"], acc.array_rows), outputs)
    weight = t["K"] * t["C"] * R * S * t["N"] * ht * fw
    fill = fc * fw * (acc.array_rows + acc.array_cols) if acc.systolic else 0
    return {
        "cycles": macs / (acc.pes * util) + fill,
        "util": util,
        "weight": weight,
        "input": t["N"] * t["C"] * ht * wt,
        "psum_write": psum_w, "psum_read": psum_w - outputs,
        "noc": t["N"] * t["C"] * ht * wt + weight * np.minimum(wt, acc.array_cols) + psum_w,
        "rf_per_mac": 3,
    }


def _array_rs(t, acc, R, S, st):
    """Row stationary (Eyeriss): filter rows over array rows (replicated in sets over K), output rows over columns.

    Each PE runs a 1-D convolution of one filter row over one input row, keeping ``k_rf`` filters x ``c_rf``
    channels of that row in its scratchpads; a PE reloads them (not overlapped with compute) once per pass, and
    the tile's images all pass through while a set of filter rows stays.
    """
    fr = _ceil(R, acc.array_rows)
    r_fold = _ceil(R, fr)
    sets = max(1, acc.array_rows // r_fold)
    c_rf = np.maximum(1, np.minimum(t["C"], max(1, acc.rf_input_words // S)))
    k_rf = np.maximum(1, np.minimum(np.minimum(t["K"], max(1, acc.rf_psum_words)),
                                    np.maximum(1, acc.rf_weight_words // (c_rf * S))))
    k_groups = _ceil(t["K"], k_rf)
    sets_used = np.minimum(sets, k_groups)
    fk = _ceil(k_groups, sets_used)
    fc = _ceil(t["C"], c_rf)
    fp = _ceil(t["P"], acc.array_cols)
    cols_used = t["P"] / fp
    macs = t["N"] * t["K"] * t["C"] * t["P"] * t["Q"] * R * S
    active = sets_used * r_fold * cols_used
    # the images of a tile share the filter rows held in a PE (Eyeriss's "n"): filters reload once per pass,
    # input rows once per image and pass
    passes = fp * fk * fc * fr
    reload = passes * (k_rf * c_rf * S + t["N"] * c_rf * S)
    outputs = t["K"] * t["N"] * t["P"] * t["Q"]
    psum_w = outputs * fc * fr
    ht = (t["P"] - 1) * st + R
    wt = (t["Q"] - 1) * st + S
    weight = t["K"] * t["C"] * R * S * fp
    inputs = fk * t["N"] * t["C"] * (ht + (fp - 1) * max(R - st, 0)) * wt
    return {
        "cycles": macs / active + reload,
        "util": active / acc.pes,
        "weight": weight,
        "input": inputs,
        "psum_write": psum_w, "psum_read": psum_w - outputs,
        "noc": weight * cols_used + inputs * r_fold + psum_w * r_fold,
        "rf_per_mac": 4,
    }


def _array_nlr(t, acc, R, S, st):
    """No local reuse (DianNao): C over rows into adder trees, K over columns; every weight read per use."""
    fc, fk = _ceil(t["C"], acc.array_rows), _ceil(t["K"], acc.array_cols)
    npq = t["N"] * t["P"] * t["Q"]
    macs = t["K"] * t["C"] * R * S * npq
    outputs = t["K"] * npq
    psum_w = outputs * fc * R * S
    inputs = fk * R * S * t["N"] * t["C"] * t["P"] * t["Q"]
    return {
        "cycles": fc * fk * R * S * npq,
        "util": (t["C"] / (fc * acc.array_rows)) * (t["K"] / (fk * acc.array_cols)),
        "weight": macs,
        "input": inputs,
        "psum_write": psum_w, "psum_read": psum_w - outputs,
        "noc": inputs * np.minimum(t["K"], acc.array_cols) + macs,
        "rf_per_mac": 0,
    }


_ARRAY_MODELS = {"ws": _array_ws, "os": _array_os, "is": _array_is, "rs": _array_rs, "nlr": _array_nlr}


# ----------------------------------------------------------------------------------------- DRAM level

def _candidates(size):
    """Tile sizes tried for a dim of ``size``: powers of two below it and the full size."""
    values = {size}
    v = 1
    while v < size:
        values.add(v)
        v *= 2
    return sorted(values)


def _fetches(trips, order, tensor):
    """How many times a tensor's tile is fetched: product of trip counts out to its innermost relevant loop."""
    relevant = RELEVANT[tensor]
    last = max(i for i, d in enumerate(order) if d in relevant)
    out = 1
    for d in order[:last + 1]:
        out = out * trips[d]
    return out


def _layer_dims(layer):
    if layer.kind == "fc":
        return {"N": layer.n, "K": layer.k, "C": layer.c, "P": 1, "Q": 1}, 1, 1, 1, 1
    return ({"N": layer.n, "K": layer.k // layer.groups, "C": layer.c_per_group, "P": layer.p, "Q": layer.q},
            layer.r, layer.s, layer.stride, layer.groups)


def _evaluate(layer, acc, tiles, order):
    """Counts, energy and latency for arrays of candidate tilings (dicts of int arrays) under one loop order."""
    dims, R, S, st, groups = _layer_dims(layer)
    trips = {d: _ceil(dims[d], tiles[d]) for d in DIMS}
    n_tiles = trips["N"] * trips["K"] * trips["C"] * trips["P"] * trips["Q"]
    arr = _ARRAY_MODELS[acc.dataflow](tiles, acc, R, S, st)
    macs = layer.macs // groups

    # an input tile's window, less the zero padding a full-size window would include
    ht = np.minimum((tiles["P"] - 1) * st + R, layer.h if layer.kind == "conv" else 1)
    wt = np.minimum((tiles["Q"] - 1) * st + S, layer.w if layer.kind == "conv" else 1)
    in_tile = tiles["N"] * tiles["C"] * ht * wt
    w_tile = tiles["K"] * tiles["C"] * R * S
    out_tile = tiles["K"] * tiles["N"] * tiles["P"] * tiles["Q"]
    f_in = _fetches(trips, order, "input")
    f_out = _fetches(trips, order, "output")
    distinct_out = trips["N"] * trips["K"] * trips["P"] * trips["Q"]
    a_scale = layer.a_bits / acc.word_bits
    w_scale = layer.w_bits / acc.word_bits  # the weights the PEs multiply by
    w_stored = layer.stored_bits_per_weight  # the weights in DRAM and the buffer (a compressed form's bits)
    ws_scale = w_stored / acc.word_bits
    a_dram = min(1.0, layer.a_density + acc.rlc_overhead) if acc.dram_compression else 1.0

    dram_in = in_tile * f_in * a_dram
    dram_out = out_tile * (2 * f_out - distinct_out) * a_dram
    if acc.weights_bypass_glb:
        dram_w = arr["weight"] * n_tiles
        glb_w = 0
    else:
        dram_w = w_tile * _fetches(trips, order, "weight")
        glb_w = arr["weight"] * n_tiles + dram_w
    dram_words_a = dram_in + dram_out
    dram_bytes = (dram_words_a * layer.a_bits + dram_w * w_stored) / 8.0

    glb_in = arr["input"] * n_tiles + dram_in
    glb_out = (arr["psum_write"] + arr["psum_read"]) * n_tiles + dram_out
    gate = layer.w_density * layer.a_density if acc.zero_gating else 1.0
    rf = macs * arr["rf_per_mac"] * gate
    noc = arr["noc"] * n_tiles

    e_mac = macs * acc.e_mac_pj * gate * w_scale * a_scale
    # a compressed layer's weights rebuilt by shift-and-add before use (SmartExchange's rebuild engine, between
    # the buffer and the PEs): once for every delivery of the weights to the array; an add costs
    # REBUILD_ADD_PER_MAC of a MAC at the same width (Horowitz: 8-bit add / 8-bit mult + add)
    deliveries = arr["weight"] * n_tiles / max(layer.weight_count // groups, 1)
    e_rebuild = layer.rebuild_adds / groups * deliveries * acc.e_mac_pj * REBUILD_ADD_PER_MAC * w_scale
    e_rf = rf * acc.e_rf_pj * a_scale
    e_noc = noc * acc.e_noc_pj * a_scale
    e_glb_in, e_glb_w, e_glb_out = (glb_in * acc.e_glb_pj * a_scale, glb_w * acc.e_glb_pj * ws_scale,
                                    glb_out * acc.e_glb_pj * a_scale)
    e_dram_in, e_dram_w, e_dram_out = (dram_in * acc.e_dram_pj * a_scale, dram_w * acc.e_dram_pj * ws_scale,
                                       dram_out * acc.e_dram_pj * a_scale)
    energy = e_mac + e_rebuild + e_rf + e_noc + e_glb_in + e_glb_w + e_glb_out + e_dram_in + e_dram_w + e_dram_out

    compute = arr["cycles"] * n_tiles
    if acc.zero_skipping:
        compute = compute * layer.w_density * layer.a_density
    dram_cycles = dram_bytes / acc.dram_bytes_per_cycle
    glb_bytes = (glb_in * layer.a_bits + glb_w * w_stored + glb_out * layer.a_bits) / 8.0
    glb_cycles = glb_bytes / acc.glb_bytes_per_cycle
    cycles = np.maximum(np.maximum(compute, dram_cycles), glb_cycles)

    glb_words_needed = in_tile * (layer.a_bits / 8.0) + out_tile * (layer.a_bits / 8.0)
    if not acc.weights_bypass_glb:
        glb_words_needed = glb_words_needed + w_tile * (w_stored / 8.0)
    fits = glb_words_needed <= acc.glb_bytes
    return {
        "fits": fits, "cycles": cycles * groups, "compute": compute * groups, "dram_cycles": dram_cycles * groups,
        "energy": energy * groups, "dram_bytes": dram_bytes * groups, "util": arr["util"] * np.ones_like(cycles),
        "breakdown": {"mac": e_mac, "rf": e_rf, "noc": e_noc, "glb": e_glb_in + e_glb_w + e_glb_out,
                      "dram": e_dram_in + e_dram_w + e_dram_out,
                      **({"rebuild": e_rebuild} if layer.rebuild_adds else {})},
        "by_data": {"input": e_glb_in + e_dram_in, "weight": e_glb_w + e_dram_w, "output": e_glb_out + e_dram_out},
        "groups": groups,
    }


def search_tiling(layer: LayerShape, acc: Accelerator, objective: str = "energy",
                  tiling: Mapping[str, Any] | None = None) -> LayerResult:
    """Best GLB tiling and DRAM loop order for ``layer`` on ``acc``.

    Parameters
    ----------
    layer : LayerShape
        A conv or fc layer.
    acc : Accelerator
        The accelerator.
    objective : str
        ``"energy"``, ``"latency"`` or ``"edp"`` (energy x cycles).
    tiling : mapping, optional
        Tile sizes for N, K, C, P, Q and an ``order`` (default ``ORDERS[0]``): fixes the choice instead of
        searching. Sizes are clipped to the layer's dims.

    Returns
    -------
    LayerResult
    """
    if objective not in OBJECTIVES:
        raise HardwareModelError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    dims, *_ = _layer_dims(layer)
    if tiling is not None:
        if not isinstance(tiling, Mapping):
            raise HardwareModelError(f"layer {layer.name}: a tiling maps N, K, C, P, Q (and order) to values; "
                                     f"got {tiling!r}")
        missing = [d for d in DIMS if d not in tiling]
        if missing:
            raise HardwareModelError(f"a fixed tiling needs tile sizes for {', '.join(DIMS)}; missing {missing}")
        bad = [d for d in DIMS if isinstance(tiling[d], bool) or not isinstance(tiling[d], numbers.Integral)
               or tiling[d] < 1]
        if bad:
            raise HardwareModelError(f"layer {layer.name}: tile sizes must be positive integers; got "
                                     + ", ".join(f"{d}={tiling[d]!r}" for d in bad))
        grids = {d: np.array([max(1, min(int(tiling[d]), dims[d]))]) for d in DIMS}
        order = tiling.get("order", ORDERS[0])
        if not isinstance(order, str) or sorted(order) != sorted(DIMS):
            raise HardwareModelError(f"a loop order is a permutation of {''.join(DIMS)}; got {order!r}")
        orders = (order,)
    else:
        mesh = np.meshgrid(*[np.array(_candidates(dims[d])) for d in DIMS], indexing="ij")
        grids = {d: m.reshape(-1) for d, m in zip(DIMS, mesh, strict=True)}
        orders = ORDERS
    best = None
    for order in orders:
        ev = _evaluate(layer, acc, grids, order)
        score = {"energy": ev["energy"], "latency": ev["cycles"], "edp": ev["energy"] * ev["cycles"]}[objective]
        score = np.where(ev["fits"], score, np.inf)
        i = int(np.argmin(score))
        if not np.isfinite(score[i]):
            continue
        if best is None or score[i] < best[0]:
            best = (score[i], order, i, ev)
    if best is None:
        what = "the given tiling does not fit" if tiling is not None else "no tiling fits"
        raise HardwareModelError(f"layer {layer.name}: {what} the {acc.glb_bytes}-byte global buffer")
    _, order, i, ev = best

    def pick(v):
        return float(np.asarray(v).reshape(-1)[i] if np.ndim(v) else v)

    groups = ev["groups"]
    breakdown = {k: pick(v) * groups for k, v in ev["breakdown"].items()}
    by_data = {k: pick(v) * groups for k, v in ev["by_data"].items()}
    cycles = pick(ev["cycles"])
    return LayerResult(
        name=layer.name, macs=layer.macs, cycles=cycles, compute_cycles=pick(ev["compute"]),
        dram_cycles=pick(ev["dram_cycles"]), latency_ms=cycles / (acc.clock_mhz * 1e3),
        energy_pj=pick(ev["energy"]), energy_breakdown_pj=breakdown, energy_by_data_pj=by_data,
        dram_bytes=pick(ev["dram_bytes"]), utilization=pick(ev["util"]),
        tiling={**{d: int(grids[d][i]) for d in DIMS}, "order": order})


def predict(workload: Workload, acc: Accelerator, objective: str = "energy",
            tilings: Mapping[str, Mapping[str, Any]] | None = None) -> Prediction:
    """Per-layer and total energy, latency and traffic of ``workload`` on ``acc``.

    Parameters
    ----------
    workload : Workload
        The layers to cost (pooling layers are skipped).
    acc : Accelerator
        The accelerator; energies come out in ``acc.energy_unit``.
    objective : str
        What the tiling search minimizes: ``"energy"``, ``"latency"`` or ``"edp"``.
    tilings : mapping, optional
        Fixed tilings by layer name (``{"conv1": {"N": 1, ..., "order": "KCNPQ"}}``); the key ``"*"`` applies to
        every layer not named. Other layers are searched (``load_tilings`` reads them from a file).

    Returns
    -------
    Prediction
    """
    if not isinstance(workload, Workload) or not isinstance(acc, Accelerator):
        raise TypeError("predict(workload: Workload, acc: Accelerator)")
    if objective not in OBJECTIVES:
        raise HardwareModelError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    tilings = dict(tilings or {})
    names = {layer.name for layer in workload.compute_layers()}
    unknown = sorted(set(tilings) - names - {"*"})
    if unknown:
        raise HardwareModelError(f"tilings name layers the workload does not have: {', '.join(unknown)}")
    cache = {}
    layers = []
    for layer in workload.compute_layers():
        given = tilings.get(layer.name, tilings.get("*"))
        if given is not None:
            result = search_tiling(replace(layer, fraction=1.0), acc, objective, tiling=given)
            layers.append(_share(replace(result, name=layer.name), layer.fraction))
            continue
        key = replace(layer, name="", fraction=1.0)  # repeated blocks have identical shapes: search each once
        if key not in cache:
            cache[key] = search_tiling(replace(layer, fraction=1.0), acc, objective)
        layers.append(_share(replace(cache[key], name=layer.name), layer.fraction))
    return Prediction(workload.name, acc.name, tuple(layers), acc.energy_unit)


def _share(result: LayerResult, fraction: float) -> LayerResult:
    """``result`` for a layer that runs for ``fraction`` of the images (an input-adaptive model's recorded share):
    every count, time and energy times the share. First order: the weights of a layer that runs for few images
    are fetched as often as its tiling fetches them per image, no more."""
    if fraction == 1.0:
        return result
    return replace(result, macs=int(round(result.macs * fraction)), cycles=result.cycles * fraction,
                   compute_cycles=result.compute_cycles * fraction, dram_cycles=result.dram_cycles * fraction,
                   latency_ms=result.latency_ms * fraction, energy_pj=result.energy_pj * fraction,
                   energy_breakdown_pj={k: v * fraction for k, v in result.energy_breakdown_pj.items()},
                   energy_by_data_pj={k: v * fraction for k, v in result.energy_by_data_pj.items()},
                   dram_bytes=result.dram_bytes * fraction)


def load_tilings(source: str | Path | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fixed tilings by layer name, from a JSON file (``lean hw predict --tiling``) or a mapping.

    Parameters
    ----------
    source : str, Path or mapping
        A JSON file (path) holding ``{"conv1": {"N": 1, "K": 16, "C": 3, "P": 55, "Q": 55, "order": "KCNPQ"},
        "*": ...}``, or that mapping itself.

    Returns
    -------
    dict
        Layer name (or ``"*"``) -> tiling; the tilings' contents are checked by ``search_tiling``.
    """
    if not isinstance(source, (str, Path)):
        tilings, what = source, "tilings"
    else:
        what = f"--tiling {source}"
        try:
            tilings = json.loads(Path(source).read_text())
        except (OSError, ValueError) as exc:
            raise HardwareModelError(f"{what}: {exc}") from exc
    if not isinstance(tilings, Mapping) or not all(isinstance(v, Mapping) for v in tilings.values()):
        raise HardwareModelError(f"{what} must map layer names to tilings")
    return {str(k): dict(v) for k, v in tilings.items()}
