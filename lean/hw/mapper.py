"""The mapper: the best mapping of a layer on an accelerator under its dataflow, for an objective.

A dataflow is a set of constraints on mappings (Timeloop's view; ``CONSTRAINTS``): which dimensions may be unrolled
over the array's rows and over its columns, and which may be iterated inside a PE's register file. On a systolic
array the register file holds one word of the stationary operand (``predictor.holders``), and OS / WS / IS mean
what SCALE-Sim means by them: OS unrolls output pixels (N, P, Q) over rows and filters (K) over columns, WS the
filter's reduction (C, R, S) over rows and K over columns, IS the reduction over rows and output pixels over
columns.

The search (``search``), per layer:

1. **Spatial**: every unrolling allowed by the dataflow whose factors fit the rows and columns; a factor of a
   dimension is any ``ceil(D / j)`` (so 55 output rows on 14 columns is 4 passes of 14, the last one padded). The
   ``spatial_keep`` unrollings with the best utilization go on.
2. **Register file**: every tile over the dataflow's RF dims that fits each operand's scratchpad (same factor
   rule), keeping those no other tile contains (``rf_keep`` of them, the most useful work per pass first). When
   none of the mappings they lead to fits the global buffer, the search runs again with the smallest tile the
   dataflow allows (its whole dims, e.g. a filter row for row stationary; ``search["fallback"]``).
3. **Buffer**: what is left of each dimension splits between the global buffer and DRAM, over *all* divisors
   (the DRAM level takes the rest exactly). When the product of choices passes ``max_candidates``, the divisor
   lists are thinned evenly in log scale (the result says so: ``search["pruned"]``).
4. **Loop orders**, pruned by symmetry: for reuse, a loop matters only by which operands it indexes, and N, P, Q
   index inputs and outputs, C, R, S weights and inputs, K weights and outputs. Permuting loops within one of
   these three classes changes nothing (up to the sliding window, which the fixed inner order P, R keeps), so a
   level has 3! = 6 distinct orders, not 7! = 5040; the global buffer tries all 6, DRAM the 3 that differ in
   which class is innermost (the only thing its single parent-less tile sees). The register file's order does not
   change any count (the MAC reads its operands per use) and is fixed. Orders that differ only where loops of
   factor 1 sit (for every candidate) are one nest and are costed once.

Every candidate is costed by ``predictor.analyze`` (vectorized over candidates, once per pair of orders), and the
one with the smallest objective among those that fit is kept. ``search["evaluated"]`` counts the mappings costed;
``search["space"]`` the mappings the kept unrollings and RF tiles lead to before the buffer splits were thinned
(times the orders tried); ``search["pruned"]`` says whether unrollings, RF tiles or splits were left out.
"""

import functools
import itertools
import math

import numpy as np

from ..errors import HardwareModelError
from .accelerator import Accelerator
from .mapping import DIMS, PLACES, Mapping
from .predictor import OBJECTIVES, RELEVANT, analyze, check, footprint, holders, result, rf_words, view
from .workload import LayerShape

# dataflow -> dims that may go on rows, on columns, and inside a PE's register file
CONSTRAINTS = {
    # Eyeriss: each PE convolves one filter row (all of S, in its RF) with one input row; filter rows go down
    # the array (all of R), output rows across, and the rest of the rows and columns replicate over K and C
    "rs": {"rows": "RCK", "cols": "PK", "rf": "SCK", "whole": {"rows": "R", "rf": "S"}},
    "ws": {"rows": "CRS", "cols": "K", "rf": "KCRS"},
    "os": {"rows": "NPQ", "cols": "KQ", "rf": "NKPQ"},
    "is": {"rows": "CRS", "cols": "NPQ", "rf": "NCPQRS"},
    "nlr": {"rows": "C", "cols": "K", "rf": ""},          # DianNao: inputs into adder trees, one output a column
}
CLASSES = ("NQP", "CSR", "K")   # loops indexing the same operands, inner order P (then R) for sliding windows
SPATIAL_LIMIT = 32   # unrollings per side paired when the sides share no dim (the largest effort keeps 16)
RF_ORDER = "NPQKCRS"


@functools.lru_cache(maxsize=4096)
def _splits(size):
    """Factors worth trying for a dimension of ``size``: every ``ceil(size / j)`` (least padding per pass count)."""
    return tuple(sorted({-(-size // j) for j in range(1, size + 1)}))


def _divisors(n):
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _spatial_options(dims, acc, cons, keep):
    """The ``keep`` best (rows factors, cols factors, utilization) of the unrollings the dataflow allows (new dicts
    from the cached answer), and how many there are."""
    options = _spatial_cached(tuple(dims.items()), acc.array_rows, acc.array_cols, acc.dataflow)
    return [(dict(rows), dict(cols), util) for rows, cols, util in options[:keep]], len(options)


@functools.lru_cache(maxsize=4096)
def _spatial_cached(dims, array_rows, array_cols, dataflow):
    """``_spatial_options`` on hashable arguments (a sweep over accelerators asks the same question often)."""
    dims = dict(dims)
    cons = CONSTRAINTS[dataflow]
    whole = cons.get("whole", {})
    pes = array_rows * array_cols

    def side(letters, extent):
        out = [{}]
        for d in letters:
            nxt = []
            for partial in out:
                used = math.prod(partial.values())
                # a dim the dataflow unrolls whole takes its largest split that fits
                fits = [f for f in _splits(dims[d]) if used * f <= extent]
                for f in (fits[-1:] if d in whole.get("rows", "") + whole.get("cols", "") else fits):
                    nxt.append({**partial, d: f})
            out = nxt
        return out

    def share(factors, extent):
        """The share of ``extent`` PEs doing useful work along one side (padding of the last pass counted)."""
        return math.prod(dims[d] / -(-dims[d] // f) for d, f in factors.items()) / extent

    rows_all = list(enumerate(side(cons["rows"], array_rows)))
    cols_all = list(enumerate(side(cons["cols"], array_cols)))
    if not set(cons["rows"]) & set(cons["cols"]):
        # the sides share no dim: utilization is the product of the sides' shares, so the best unrollings pair
        # the best of each side (SPATIAL_LIMIT of them, more than any effort keeps)
        rows_all = sorted(rows_all, key=lambda o: -share(o[1], array_rows))[:SPATIAL_LIMIT]
        cols_all = sorted(cols_all, key=lambda o: -share(o[1], array_cols))[:SPATIAL_LIMIT]
    options = []
    for i, rows in rows_all:
        for j, cols in cols_all:
            both = {d: rows.get(d, 1) * cols.get(d, 1) for d in set(rows) | set(cols)}
            if any(f > dims[d] for d, f in both.items()):
                continue
            options.append((-share(both, pes), i, j, rows, cols))
    options.sort(key=lambda o: o[:3])   # ties in the order the sides were enumerated
    return tuple((tuple(rows.items()), tuple(cols.items()), -u) for u, _, _, rows, cols in options)


def _rf_options(dims, spatial, acc, cons, nest):
    """Register-file tiles over the dataflow's RF dims that fit every operand's scratchpad, the most useful first,
    with any tile contained in a kept one dropped; and the smallest tile the dataflow allows (None if none fits)."""
    hold = holders(acc)
    held = tuple(t for t in hold if "rf" in hold[t])
    words = rf_words(acc)
    residual = tuple((d, -(-dims[d] // spatial[d])) for d in DIMS)
    tiles, smallest = _rf_cached(residual, held, tuple(words[t] for t in held), acc.dataflow, nest.stride,
                                 nest.hw_in)
    return [dict(tile) for tile in tiles], (dict(smallest) if smallest is not None else None)


@functools.lru_cache(maxsize=16384)
def _rf_cached(residual, held, capacity, dataflow, stride, hw_in):
    """``_rf_options`` on hashable arguments; tiles as tuples of (dim, factor) (cached: never to be changed)."""
    cons = CONSTRAINTS[dataflow]
    words = dict(zip(held, capacity, strict=True))
    residual = dict(residual)
    if not held:
        return ((),), ()
    letters = [d for d in cons["rf"] if any(d in RELEVANT[t] for t in held)]
    tiles = [{}]
    for d in letters:
        nxt = []
        for partial in tiles:
            for f in ([residual[d]] if d in cons.get("whole", {}).get("rf", "") else _splits(residual[d])):
                cand = {**partial, d: f}
                ext = {x: cand.get(x, 1) for x in DIMS}
                if all(footprint(t, ext, stride, *hw_in) <= words[t] for t in held):
                    nxt.append(cand)
        tiles = nxt
    # the most useful work per tile first: a factor that does not divide its dim pads the last pass, so it counts
    # for the share of the dim it covers on average
    tiles.sort(key=lambda c: -math.prod(residual[d] / -(-residual[d] // f) for d, f in c.items()))
    kept = []
    for cand in tiles:
        if not any(all(cand.get(d, 1) <= k.get(d, 1) for d in DIMS) for k in kept):
            kept.append(cand)
    # and the smallest tile the dataflow allows (its whole dims, nothing else), for a buffer too small for the rest
    smallest = {d: residual[d] for d in cons.get("whole", {}).get("rf", "")}
    return tuple(tuple(sorted(k.items())) for k in kept), (tuple(sorted(smallest.items())) if tiles else None)


def _thin(values, keep):
    """At most ``keep`` of sorted ``values``, evenly spaced in log scale, first and last kept."""
    if len(values) <= keep:
        return values
    idx = np.unique(np.round(np.geomspace(1, len(values), keep)).astype(int) - 1)
    return [values[i] for i in idx]


def _orders(all_glb=True):
    innermost = ["".join(c for c in CLASSES if c != inner) + inner for inner in CLASSES]
    glb = ["".join(p) for p in itertools.permutations(CLASSES)] if all_glb else innermost
    return innermost, glb


# how hard the search looks: unrollings and RF tiles kept, buffer splits per pair before thinning, and whether the
# buffer level tries all 6 class orders or only the 3 that differ in the innermost class
EFFORTS = {
    "quick": {"spatial_keep": 2, "rf_keep": 2, "max_candidates": 500, "all_glb_orders": False},
    "default": {"spatial_keep": 4, "rf_keep": 4, "max_candidates": 4000, "all_glb_orders": True},
    "thorough": {"spatial_keep": 16, "rf_keep": 16, "max_candidates": 50000, "all_glb_orders": True},
}


def search(layer: LayerShape, acc: Accelerator, objective: str = "energy", *, effort: str = "default",
           spatial_keep: int | None = None, rf_keep: int | None = None, max_candidates: int | None = None):
    """The best mapping of ``layer`` on ``acc`` for ``objective``, and its cost.

    Parameters
    ----------
    layer : LayerShape
        A conv or fc layer.
    acc : Accelerator
        The accelerator (its ``dataflow`` picks the constraints).
    objective : str
        ``"energy"``, ``"latency"`` (cycles) or ``"edp"`` (their product).
    effort : str
        ``"quick"``, ``"default"`` or ``"thorough"`` (``EFFORTS``): the sizes below, unless given.
    spatial_keep, rf_keep : int, optional
        How many of the best spatial unrollings and register-file tiles go on to the buffer split.
    max_candidates : int, optional
        Buffer splits per (unrolling, RF tile) pair before the divisor lists are thinned.

    Returns
    -------
    predictor.LayerResult
        With ``mapping`` (file form) and ``search`` (``evaluated``, ``space``, ``pruned``).
    """
    if objective not in OBJECTIVES:
        raise HardwareModelError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    if layer.kind == "pool":
        raise HardwareModelError(f"layer {layer.name}: pooling layers are not costed")
    if effort not in EFFORTS:
        raise HardwareModelError(f"unknown search effort {effort!r}; choose one of: {', '.join(EFFORTS)}")
    sizes = EFFORTS[effort]
    spatial_keep = spatial_keep or sizes["spatial_keep"]
    rf_keep = rf_keep or sizes["rf_keep"]
    max_candidates = max_candidates or sizes["max_candidates"]
    check(acc)
    nest = view(layer, acc)
    dims = nest.dims
    cons = CONSTRAINTS[acc.dataflow]
    rows_cols, n_spatial = _spatial_options(dims, acc, cons, spatial_keep)
    if not rows_cols:
        raise HardwareModelError(f"layer {layer.name}: no unrolling fits a {acc.array_rows} x {acc.array_cols} array")
    tally = {}

    def rf_tiles(spatial, fallback):
        rf_all, smallest = _rf_options(dims, spatial, acc, cons, nest)
        tally["pruned"] = tally["pruned"] or len(rf_all) > rf_keep
        # the most useful tiles; when none of them leads to a mapping that fits, the smallest the dataflow allows
        if fallback:
            return [smallest] if smallest is not None and smallest not in rf_all[:rf_keep] else []
        return rf_all[:rf_keep]

    def candidates(fallback):
        tally.update(evaluated=0, space=0, pruned=n_spatial > spatial_keep, fallback=fallback)
        columns = {place: {d: [] for d in DIMS} for place in PLACES}
        for rows, cols, _ in rows_cols:
            spatial = {d: rows.get(d, 1) * cols.get(d, 1) for d in DIMS}
            for rf in rf_tiles(spatial, fallback):
                residual = {d: -(-dims[d] // (spatial[d] * rf.get(d, 1))) for d in DIMS}
                choices = {d: _divisors(residual[d]) for d in DIMS}
                tally["space"] += math.prod(len(v) for v in choices.values())
                keep = len(max(choices.values(), key=len))
                while math.prod(len(v) for v in choices.values()) > max_candidates and keep > 2:
                    keep -= 1
                    choices = {d: _thin(v, keep) for d, v in choices.items()}
                    tally["pruned"] = True
                grid = np.meshgrid(*[np.array(choices[d]) for d in DIMS], indexing="ij")
                count = grid[0].size
                for d, g in zip(DIMS, grid, strict=True):
                    g = g.reshape(-1)
                    columns["glb"][d].append(g)
                    columns["dram"][d].append(residual[d] // g)
                    columns["rows"][d].append(np.full(count, rows.get(d, 1)))
                    columns["cols"][d].append(np.full(count, cols.get(d, 1)))
                    columns["rf"][d].append(np.full(count, rf.get(d, 1)))
        if not columns["glb"]["N"]:
            return None   # no RF tile fits the register files under any kept unrolling
        return {place: {d: np.concatenate(columns[place][d]).astype(np.int64) for d in DIMS} for place in PLACES}

    dram_orders, glb_orders = _orders(sizes["all_glb_orders"])

    def cost(factors):
        # orders that differ only in where loops of factor 1 (for every candidate) sit are the same nest
        live = {lv: {d for d in DIMS if np.any(factors[lv][d] > 1)} for lv in ("dram", "glb", "rf")}
        distinct = {}
        for dram_order in dram_orders:
            for glb_order in glb_orders:
                key = ("".join(d for d in dram_order if d in live["dram"]),
                       "".join(d for d in glb_order if d in live["glb"]))
                distinct.setdefault(key, (dram_order, glb_order))
        best = None
        for dram_order, glb_order in distinct.values():
            orders = {"dram": dram_order, "glb": glb_order, "rf": RF_ORDER}
            ev = analyze(layer, acc, factors, orders, live)
            tally["evaluated"] += ev["energy"].size
            score = {"energy": ev["energy"], "latency": ev["cycles"], "edp": ev["energy"] * ev["cycles"]}[objective]
            score = np.where(ev["fits"], score, np.inf)
            i = int(np.argmin(score))
            if np.isfinite(score[i]) and (best is None or score[i] < best[0]):
                best = (score[i], i, orders, ev)
        return best

    best = None
    for fallback in (False, True):
        factors = candidates(fallback)
        best = cost(factors) if factors is not None else None
        if best is not None:
            break
    if best is None:
        raise HardwareModelError(f"layer {layer.name}: no mapping fits {acc.name} (its {acc.glb_bytes:,}-byte "
                                 "global buffer or register files are too small for any tile its "
                                 f"{acc.dataflow} dataflow allows)")
    _, i, orders, ev = best
    chosen = Mapping({place: {d: int(factors[place][d][i]) for d in DIMS} for place in PLACES}, orders)
    return result(layer, acc, ev, i, chosen, {"evaluated": int(tally["evaluated"]),
                                              "space": int(tally["space"] * len(dram_orders) * len(glb_orders)),
                                              "pruned": bool(tally["pruned"]), "fallback": tally["fallback"],
                                              "given": False})
