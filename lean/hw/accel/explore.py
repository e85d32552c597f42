"""AutoDNNchip's design search: rank every design point of a template under a resource budget with a coarse
analytical model, then simulate the best few's inter-IP pipelines, and write the chosen one as DESIGN.json.

After Xu et al., "AutoDNNchip: An Automated DNN Chip Predictor and Builder for Both FPGAs and ASICs", FPGA 2020,
whose Chip Builder searches in two stages: a coarse, analytical ranking of architecture templates x IP
configurations, then a fine-grained simulation of the survivors. lean's steps (``explore``):

1. **The space** (``space_size``, ``decode``): the templates ``os-systolic`` and ``os-systolic-overlap``
   (``graph.TEMPLATES``: graphs of IPs that ``rtl.py`` writes as RTL, so every design the search picks can be
   built and checked in Verilog) x IP configurations: every ``rows`` x ``cols`` up to 32 x 32, 8- or 16-bit
   operands, with or without two 8-bit MACs per DSP, and 5 x 5 x 3 buffer depths: 614,400 design points,
   indexed 0..n-1 (a seeded sample with ``samples``).
2. **Coarse ranking** (``rank_chunk``, vectorized over candidates): the graph's coarse mode (``graph.coarse``):
   each IP's cycles and energy for a layer from the words on its edges at their precision (the reader's and
   writer's DRAM traffic at the target's bandwidth, the banks' operand reads, the array's tiles as the
   controller counts them, the output writes; Horowitz's 45 nm energies for every target: FPGA energies are not
   lean's); the slowest IP (the DRAM port's reader and writer together) bounds each layer. Resources are the IPs'
   own (``graph.resources``, the model ``rtl.predict_resources`` reports) or, for an ASIC, their 45 nm area.
   Candidates over the budget are dropped, and those whose banks cannot hold a tile's whole reduction for every
   layer (the controller accumulates it in one run); the rest ranked by the objective, ties by index.
3. **Fine simulation** (``graph.simulate``) of the top ``top`` candidates: per layer, buffer pass by buffer
   pass, the DRAM reader, the array and the DRAM writer fire when their inputs are ready, they (or the DRAM port
   they share) are free, and the double-buffered memory they fill has a slot (AutoDNNchip's rule). The best
   simulated candidate is the choice, reported with each IP's cycles, energy and resources.

The ranking runs on chunks of fixed size, so its result does not depend on how many workers ran them: on Dask
(``dask[distributed]``: a local cluster of one process per core, or a user's cluster by address) or, without
Dask, in local processes. Each chunk returns its best ``top`` and its Pareto front (latency against the share of
the budget a design takes: its largest resource over its limit); the union of those holds the global ones. In
this model a larger array and larger buffers also save energy (fewer operand re-reads, less DRAM traffic, no
static power), so energy is no trade-off against latency here: the front trades latency for resources.
"""

import dataclasses
import math
import os
import time

import numpy as np

from ...errors import HardwareModelError
from ..workload import load as load_workload
from . import graph
from .rtl import DesignPoint

# Platform budgets: the device's resources (Xilinx DS891, Zynq UltraScale+ ZU3EG, as on Ultra96: 360 DSP48E2,
# 216 BRAM36 = 432 BRAM18, 70,560 LUTs, 141,120 flip-flops; Xilinx DS190, Zynq-7000 Z-7045, as on ZC706: 900
# DSP48E1, 545 BRAM36 = 1,090 BRAM18, 218,600 LUTs, 437,200 flip-flops). DRAM bandwidth and clock are assumed
# (stated in the output): Ultra96's 32-bit LPDDR4 at 1,066 MT/s (4.3 GB/s), ZC706's 64-bit DDR3 at 1,066 MT/s
# (8.5 GB/s), an ASIC's 16 GB/s; a 200 MHz fabric clock, 1 GHz for the ASIC.
TARGETS = {
    "ultra96": {"budget": {"dsp": 360, "bram18": 432, "lut": 70560, "ff": 141120}, "clock_mhz": 200.0,
                "dram_gb_s": 4.3,
                "family": "xcup"},
    "zc706": {"budget": {"dsp": 900, "bram18": 1090, "lut": 218600, "ff": 437200}, "clock_mhz": 200.0,
              "dram_gb_s": 8.5,
              "family": "xc7"},
    "asic": {"budget": {"area_mm2": 4.0}, "clock_mhz": 1000.0, "dram_gb_s": 16.0, "family": None},
}
OBJECTIVES = ("latency", "energy", "edp")
FPGA_LIMITS = ("dsp", "bram18", "lut", "ff")
SEARCHED = (graph.OS_SYSTOLIC, graph.OS_SYSTOLIC_OVERLAP)   # the templates searched: those rtl.py writes
CHUNK = 4096                  # candidates per task (larger arrays ran 6x slower in Dask workers, measured)
ROWS = np.arange(1, 33)
COLS = np.arange(1, 33)
BITS = (8, 16)
INPUT_WORDS = (512, 1024, 2048, 4096, 8192)
WEIGHT_WORDS = (512, 1024, 2048, 4096, 8192)
OUTPUT_WORDS = (1024, 4096, 16384)


def space_size() -> int:
    """Design points before the packing rule removes some (they are skipped, not renumbered)."""
    return (len(ROWS) * len(COLS) * 2 * len(BITS) * len(INPUT_WORDS) * len(WEIGHT_WORDS) * len(OUTPUT_WORDS)
            * len(SEARCHED))


def decode(index: np.ndarray) -> dict:
    """Design-point fields of candidate indices (mixed-radix digits, rows fastest, the template slowest)."""
    index = np.asarray(index, dtype=np.int64)
    out = {}
    for name, values in (("rows", ROWS), ("cols", COLS), ("pack", (0, 1)), ("bits", BITS),
                         ("input_words", INPUT_WORDS), ("weight_words", WEIGHT_WORDS),
                         ("output_words", OUTPUT_WORDS), ("template", range(len(SEARCHED)))):
        values = np.asarray(values)
        out[name] = values[index % len(values)]
        index = index // len(values)
    out["valid"] = (out["pack"] == 0) | ((out["bits"] == 8) & (out["cols"] % 2 == 0))
    out["a_bits"] = out["w_bits"] = out["bits"]
    out["acc_bits"] = np.where(out["bits"] == 8, 32, 48)      # a product's bits and room for long sums
    return out


def design_of(index: int, clock_mhz: float) -> DesignPoint:
    f = {k: int(v[0]) for k, v in decode(np.array([index])).items() if k != "valid"}
    return DesignPoint(rows=f["rows"], cols=f["cols"], a_bits=f["bits"], w_bits=f["bits"],
                       acc_bits=f["acc_bits"], pack_dsp=bool(f["pack"]), input_words=f["input_words"],
                       weight_words=f["weight_words"], output_words=f["output_words"],
                       template=SEARCHED[f["template"]].name, clock_mhz=clock_mhz)


def _by_template(f, model):
    """``model(template, fields)`` (a dict of arrays) for candidates of mixed templates: each template's on its
    own candidates."""
    first = int(f["template"][0]) if len(f["template"]) else 0
    if (f["template"] == first).all():          # a chunk of the whole space holds one template
        return model(SEARCHED[first], f)
    out = None
    for t, template in enumerate(SEARCHED):
        mine = f["template"] == t
        if not mine.any():
            continue
        part = model(template, {k: v[mine] for k, v in f.items()})
        if out is None:
            out = {k: np.zeros(len(mine)) for k in part}
        for k, v in part.items():
            out[k][mine] = v
    return out


def _resources(f):
    """The templates' resource models (``rtl.predict_resources``'s) on arrays of candidates: the limits a budget
    can set."""
    return _by_template(f, lambda t, sub: {k: v for k, v in graph.resources(t, sub).items()
                                            if k in FPGA_LIMITS})


def _layers(workload):
    """Each conv/fc layer as (groups, m, k, n) of its im2col product."""
    # a fully connected layer is the 1x1 case (LayerShape folds its input into c, on a 1x1 map)
    out = [(layer.groups, layer.n * layer.p * layer.q, layer.c_per_group * layer.r * layer.s, layer.k // layer.groups)
           for layer in workload.compute_layers()]
    if not out:
        raise HardwareModelError(f"workload {workload.name} has no conv or fc layer to run")
    return out


def rank_chunk(start: int, stop: int, layers, target: dict, budget: dict, objective: str, top: int,
               sample=None) -> dict:
    """Coarse model of candidates ``start..stop`` (or of the indices ``sample``): the best ``top`` feasible by
    the objective (ties by index), the chunk's Pareto front on (latency, energy), and counts."""
    index = np.arange(start, stop, dtype=np.int64) if sample is None else np.asarray(sample)
    f = decode(index)
    # the controller accumulates a tile's whole reduction from its banks in one run: each layer's k must fit
    k_most = max(k for _, _, k, _ in layers)
    ok = f["valid"] & (f["input_words"] >= k_most) & (f["weight_words"] >= k_most)
    if "area_mm2" in budget:
        area = _by_template(f, lambda t, sub: {"area": graph.area_mm2(t, sub)})["area"]
        ok &= area <= budget["area_mm2"]
        used = {"area_mm2": area}
    else:
        used = _resources(f)
        for key, limit in budget.items():
            ok &= used[key] <= limit
    def coarse(template, sub):
        cost = graph.coarse(template, sub, layers, target)
        return {"cycles": cost["cycles"], "energy_pj": cost["energy_pj"]}

    cost = _by_template(f, coarse)
    energy = cost["energy_pj"]
    latency = cost["cycles"] / (target["clock_mhz"] * 1e6)
    score = {"latency": latency, "energy": energy, "edp": latency * energy}[objective]
    # the share of the budget a candidate takes: its largest resource over its limit
    share = np.max([used[k] / limit for k, limit in budget.items()], axis=0)
    keep = np.flatnonzero(ok)
    order = keep[np.lexsort((index[keep], score[keep]))][:top]
    front = _pareto(keep, latency, share, index)

    def rows_of(which):
        return [{"index": int(index[i]), "latency_s": float(latency[i]), "energy_pj": float(energy[i]),
                 "score": float(score[i]), "budget_share": float(share[i]),
                 **{k: float(v[i]) for k, v in used.items()}} for i in which]

    return {"evaluated": int(len(index)), "valid": int(f["valid"].sum()), "feasible": int(ok.sum()),
            "best": rows_of(order), "front": rows_of(front)}


def _pareto(candidates, latency, share, index):
    """Indices (into the arrays) of the candidates no other beats on both latency and budget share (ties: the
    lower index)."""
    if len(candidates) == 0:
        return candidates
    order = candidates[np.lexsort((index[candidates], share[candidates], latency[candidates]))]
    best_share = np.minimum.accumulate(share[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = share[order][1:] < best_share[:-1]
    return order[keep]


def _merge(parts, top):
    best = sorted((row for p in parts for row in p["best"]), key=lambda r: (r["score"], r["index"]))[:top]
    union = sorted((row for p in parts for row in p["front"]),
                   key=lambda r: (r["latency_s"], r["budget_share"], r["index"]))
    front, lowest = [], math.inf
    for row in union:
        if row["budget_share"] < lowest:
            front.append(row)
            lowest = row["budget_share"]
    return best, front


def _warm(*_):
    """A worker's first task: import what ranking needs (so start-up is not counted as search)."""
    return rank_chunk.__name__


def parse_budget(text: str | None) -> dict | None:
    """``"dsp=360,bram18=432,lut=70560"`` or ``"area=4mm2"`` as a budget dict (None: the target's own)."""
    if text is None:
        return None
    budget = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key == "area":
            key, value = "area_mm2", value.removesuffix("mm2")
        if not sep or key not in (*FPGA_LIMITS, "area_mm2"):
            raise HardwareModelError(f"--budget takes dsp=N,bram18=N,lut=N[,ff=N] or area=Nmm2; got {item!r}")
        try:
            budget[key] = float(value)
        except ValueError:
            raise HardwareModelError(f"--budget {key}: {value!r} is not a number") from None
        if not budget[key] > 0:
            raise HardwareModelError(f"--budget {key} must be positive; got {value}")
    return budget


def _engine(scheduler, workers, engine=None):
    """A Dask client (a user's cluster, or a local one) or, without Dask (or with ``engine="processes"``), a
    local process pool."""
    try:
        if engine == "processes":
            raise ImportError
        from dask.distributed import Client, LocalCluster
    except ImportError:
        if scheduler or engine == "dask":
            raise HardwareModelError("the search on Dask needs it: pip install 'lean[cluster]'") from None
        from concurrent.futures import ProcessPoolExecutor

        n = workers or os.cpu_count() or 1
        return "processes", ProcessPoolExecutor(n), n
    if scheduler:
        client = Client(scheduler)
        return "dask", client, len(client.scheduler_info().get("workers", {})) or 1
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return "dask", Client(cluster), n


def explore(workload, target: str = "ultra96", budget: dict | None = None, objective: str = "latency",
            batch: int | None = None, top: int = 20, samples: int | None = None, seed: int = 0,
            scheduler: str | None = None, workers: int | None = None, engine: str | None = None,
            progress=None) -> dict:
    """The two-stage search (module docstring) of ``workload`` on ``target`` under ``budget``.

    Parameters
    ----------
    workload : str or Workload
        What ``lean.hw.workload.load`` takes.
    target : str
        ``ultra96``, ``zc706`` or ``asic`` (``TARGETS``).
    budget : dict, optional
        Limits on ``dsp``, ``bram18``, ``lut``, ``ff`` (FPGA) or ``area_mm2`` (ASIC); those not given are the
        target device's own.
    objective : str
        ``latency``, ``energy`` or ``edp``.
    top : int
        Candidates the fine stage simulates.
    samples, seed : int, optional
        Rank a seeded random sample of this many design points instead of all of them.
    scheduler : str, optional
        A Dask scheduler's address; a local cluster (one process per core) by default.
    workers : int, optional
        Workers of the local cluster or process pool (default: one per core); 1 runs in this process.
    engine : str, optional
        ``dask``, ``processes`` or ``inline`` (this process); by default Dask if it is installed, else
        processes (inline for one worker).
    progress : callable, optional
        Called with (chunks done, chunks) as chunks finish.

    Returns
    -------
    dict
        ``design`` (the chosen DesignPoint's fields), ``predicted`` (coarse and simulated latency, energy,
        resources), ``front``, ``best``, ``search`` (candidates, feasible, seconds, rate, engine, workers) and the
        target's assumptions.
    """
    if target not in TARGETS:
        raise HardwareModelError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    if objective not in OBJECTIVES:
        raise HardwareModelError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    spec = TARGETS[target]
    allowed = ("area_mm2",) if target == "asic" else FPGA_LIMITS
    bad = [k for k in budget or {} if k not in allowed]
    if bad or budget == {}:
        raise HardwareModelError(f"the {target} budget limits {', '.join(allowed)}; got {', '.join(bad) or 'nothing'}")
    budget = {**spec["budget"], **(budget or {})}       # limits given replace the device's; the others stay
    wl = load_workload(workload, batch=batch)
    layers = _layers(wl)
    size = space_size()
    sample = None
    if samples is not None and samples < size:
        sample = np.sort(np.random.default_rng(seed).choice(size, samples, replace=False))
        size = samples
    chunks = [(s, min(s + CHUNK, size)) for s in range(0, size, CHUNK)]
    args = (layers, spec, budget, objective, top)
    if engine not in (None, "dask", "processes", "inline"):
        raise HardwareModelError(f"unknown engine {engine!r}; choose dask, processes or inline")
    inline = engine == "inline" or (engine is None and workers == 1 and not scheduler)
    asked = engine
    engine, pool, n_workers = ("inline", None, 1) if inline else _engine(scheduler, workers, engine)
    note = ("Dask is not installed (pip install 'lean[cluster]'): ranked in local processes"
            if engine == "processes" and asked != "processes" else None)
    if engine == "dask":
        pool.run(_warm)                       # every worker imports lean before the clock starts
    elif pool is not None:
        list(pool.map(_warm, range(n_workers)))
    t0 = time.perf_counter()                  # the ranking alone: a cluster's start-up is not the search's
    parts = []
    try:
        if pool is None:
            for i, (a, b) in enumerate(chunks):
                parts.append(rank_chunk(a, b, *args, None if sample is None else sample[a:b]))
                if progress:
                    progress(i + 1, len(chunks))
        else:
            futures = [pool.submit(rank_chunk, a, b, *args, None if sample is None else sample[a:b])
                       for a, b in chunks]
            for i, fut in enumerate(futures):
                parts.append(fut.result())
                if progress:
                    progress(i + 1, len(chunks))
    finally:
        if pool is not None:
            if engine == "dask":
                cluster = getattr(pool, "cluster", None)
                pool.close()
                if cluster is not None and not scheduler:
                    cluster.close()
            else:
                pool.shutdown()
    ranked_s = time.perf_counter() - t0
    best, front = _merge(parts, top)
    if not best:
        raise HardwareModelError(f"no design point fits the budget {budget} on {target}")
    fine = []
    for row in best:
        design = design_of(row["index"], spec["clock_mhz"])
        sim = graph.simulate(graph.template_of(design), graph.fields(design), layers, spec)
        score = {"latency": sim["seconds"], "energy": row["energy_pj"],
                 "edp": sim["seconds"] * row["energy_pj"]}[objective]
        fine.append((score, row["index"], row, sim, design))
    fine.sort(key=lambda t: (t[0], t[1]))
    _, _, row, sim, design = fine[0]
    chosen, template = graph.fields(design), graph.template_of(design)
    cost = graph.coarse(template, chosen, layers, spec)
    ips = [{"ip": ip.name, "kind": ip.kind, "coarse_cycles": float(cost["by_ip"][ip.name]["cycles"]),
            "simulated_busy_cycles": sim["busy"].get(ip.name, 0.0),
            "energy_pj": float(cost["by_ip"][ip.name]["energy_pj"]),
            **{k: int(v) for k, v in ip.resources(chosen).items()},
            **({"area_mm2": float(ip.area_um2(chosen)) * 1e-6} if target == "asic" else {})}
           for ip in template.ips]
    evaluated = sum(p["evaluated"] for p in parts)
    return {"workload": wl.name, "batch": wl.layers[0].n, "target": target, "objective": objective,
            "budget": budget, "design": design.to_dict(),
            "predicted": {"coarse_latency_s": row["latency_s"], "simulated_latency_s": sim["seconds"],
                          "energy_pj": row["energy_pj"], "array_busy": sim["array_busy"],
                          **{k: v for k, v in row.items() if k in (*FPGA_LIMITS, "area_mm2")}},
            "graph": template.describe(), "ips": ips,
            "front": [dict(r, design=dataclasses.asdict(design_of(r["index"], spec["clock_mhz"]))) for r in front],
            "best": best,
            "search": {"candidates": evaluated, "valid": sum(p["valid"] for p in parts),
                       "feasible": sum(p["feasible"] for p in parts), "ranked_s": ranked_s,
                       "per_minute": evaluated / ranked_s * 60 if ranked_s else 0.0, "engine": engine, "note": note,
                       "workers": n_workers, "chunks": len(chunks), "fine_simulated": len(fine),
                       "sampled": sample is not None, "seed": seed},
            "assumptions": {"clock_mhz": spec["clock_mhz"], "dram_gb_s": spec["dram_gb_s"],
                            "energies": "Horowitz 45 nm for every target"}}
