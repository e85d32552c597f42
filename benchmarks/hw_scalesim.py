"""Systolic compute cycles: lean's predictor against SCALE-Sim 3 (issue 16 target: OS, WS and IS within 10%).

    pip install scalesim                       # SCALE-Sim 3 (Samajdar et al.); benchmarks only
    python benchmarks/hw_scalesim.py --layer resnet-3x3      # one layer, the three dataflows; appends results
    python benchmarks/hw_scalesim.py --summary

Each call runs one layer on a 32 x 32 systolic array under OS, WS and IS (SCALE-Sim takes 5-30 s a run) and
appends a row per dataflow to benchmarks/results/hw_scalesim.jsonl:

- ``scalesim``: SCALE-Sim's compute cycles ("Total Cycles" of COMPUTE_REPORT, stall-free CALC bandwidth mode),
  plus 1 (SCALE-Sim reports the index of the last cycle);
- ``lean_given``: lean's cycles for SCALE-Sim's own mapping, written as a lean mapping (the im2col rows and
  columns of the array, the folds at DRAM, T in the buffer) — the same nest, costed by lean's model;
- ``lean_search``: lean's best mapping for latency under the same dataflow (its unrollings must split along
  dimensions, so it can fold differently from SCALE-Sim's flattened im2col rows).

lean's accelerator: the built-in tpu-like with 32 x 32 PEs, a buffer and bandwidths large enough never to stall
(SCALE-Sim's CALC mode), so both count compute alone. SCALE-Sim 3.0.0 calls ``int()`` on a one-element array,
which NumPy 2.4 refuses; ``_patch_numpy`` recompiles those two methods with ``np.max`` at run time.
"""

import argparse
import contextlib
import io
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "hw_scalesim.jsonl"
# name: (padded input H = W, R = S, C, K, stride); SCALE-Sim takes the padded size and rounds outputs up, so each
# stride divides H - R
LAYERS = {
    "alexnet-conv2": (31, 5, 48, 128, 1),
    "resnet-3x3": (58, 3, 64, 64, 1),
    "resnet-1x1": (14, 1, 256, 1024, 1),
    "resnet-3x3-s2": (57, 3, 64, 128, 2),
}
ROWS = COLS = 32
CONFIG = """[general]
run_name = run
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 1024
FilterSramSzkB: 1024
OfmapSramSzkB: 1024
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks: 1
ReadRequestBuffer: 512
WriteRequestBuffer: 512
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


_PATCHED = []


def _patch_numpy():
    if _PATCHED:
        return
    _PATCHED.append(True)
    import inspect
    import textwrap

    from scalesim.memory import double_buffered_scratchpad_mem as m1
    from scalesim.memory import read_buffer as m2
    for mod, cls, meth, old, new in (
            (m1, m1.double_buffered_scratchpad, "service_memory_requests", "int(max(ofmap_serviced_cycles))",
             "int(np.max(np.asarray(ofmap_serviced_cycles)))"),
            (m2, m2.read_buffer, "prefetch_active_buffer", "int(max(response_cycles_arr))",
             "int(np.max(np.asarray(response_cycles_arr)))")):
        src = textwrap.dedent(inspect.getsource(getattr(cls, meth)))
        if old not in src:
            continue  # a SCALE-Sim that no longer needs it
        namespace = dict(vars(mod))
        exec(compile(src.replace(old, new), mod.__file__, "exec"), namespace)
        setattr(cls, meth, namespace[meth])


def scalesim_cycles(h, r, c, k, stride, df):
    from scalesim.scale_sim import scalesim

    _patch_numpy()
    tmp = Path(tempfile.mkdtemp(prefix="scalesim_"))
    try:
        (tmp / "cfg.cfg").write_text(CONFIG.format(rows=ROWS, cols=COLS, df=df))
        (tmp / "topo.csv").write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                                      f"Channels, Num Filter, Strides,\nL0, {h}, {h}, {r}, {r}, {c}, {k}, {stride},\n")
        (tmp / "layout.csv").write_text("none,\n")
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(tmp / "cfg.cfg"),
                           topology=str(tmp / "topo.csv"), layout=str(tmp / "layout.csv"), input_type_gemm=False)
            sim.run_scale(top_path=str(tmp))
        report = sim.runner.single_layer_sim_object_list[0].get_compute_report_items()
        return int(report[1]) + 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def scalesim_mapping(h, r, c, k, stride, df):
    """SCALE-Sim's own mapping in lean's im2col nest: Sr on the rows, Sc on the columns, T in the buffer, the
    folds (Sr / rows, Sc / cols) at DRAM."""
    pixels, window = ((h - r) // stride + 1) ** 2, r * r * c
    sr, sc, t = {"os": ("N", "K", "C"), "ws": ("C", "K", "N"), "is": ("C", "N", "K")}[df]
    size = {"N": pixels, "C": window, "K": k}
    rows, cols = min(size[sr], ROWS), min(size[sc], COLS)
    return {"rows": {sr: rows}, "cols": {sc: cols}, "glb": {t: size[t]},
            "dram": {sr: math.ceil(size[sr] / rows), sc: math.ceil(size[sc] / cols)},
            "orders": {"dram": sc + sr, "glb": t}}


def run(name):
    from lean.hw import accelerator
    from lean.hw import workload as wl
    from lean.hw.mapper import search
    from lean.hw.predictor import evaluate

    h, r, c, k, stride = LAYERS[name]
    layer = wl.LayerShape(name, "conv", n=1, c=c, k=k, h=h, w=h, r=r, s=r, stride=stride)
    base = accelerator.tpu_like().with_overrides(array_rows=ROWS, array_cols=COLS, glb_bytes=1 << 30,
                                                 dram_bytes_per_cycle=1e9, glb_bytes_per_cycle=1e9)
    rows = []
    for df in ("os", "ws", "is"):
        acc = base.with_overrides(dataflow=df)
        t0 = time.perf_counter()
        sim = scalesim_cycles(h, r, c, k, stride, df)
        sim_s = time.perf_counter() - t0
        given = evaluate(layer, acc, scalesim_mapping(h, r, c, k, stride, df)).compute_cycles
        t0 = time.perf_counter()
        found = search(layer, acc, "latency")
        lean_s = time.perf_counter() - t0
        row = {"layer": name, "dataflow": df, "array": f"{ROWS}x{COLS}", "scalesim": sim, "lean_given": given,
               "lean_search": found.compute_cycles, "lean_search_mapping": found.mapping,
               "scalesim_s": round(sim_s, 2), "lean_search_s": round(lean_s, 4)}
        rows.append(row)
        print(f"{name} {df}: SCALE-Sim {sim:,} cycles, lean (its mapping) {given:,.0f} ({given / sim - 1:+.2%}), "
              f"lean search {found.compute_cycles:,.0f} ({found.compute_cycles / sim - 1:+.2%}); "
              f"{sim_s:.1f} s vs {lean_s * 1e3:.1f} ms", flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def summary():
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    latest = {(row["layer"], row["dataflow"]): row for row in rows}
    print(f"{'layer':<15} {'df':<3} {'SCALE-Sim':>10} {'lean, its map':>14} {'diff':>7} {'lean search':>12} "
          f"{'diff':>7}")
    for (name, df), row in latest.items():
        sim = row["scalesim"]
        print(f"{name:<15} {df:<3} {sim:>10,} {row['lean_given']:>14,.0f} {row['lean_given'] / sim - 1:>+7.2%} "
              f"{row['lean_search']:>12,.0f} {row['lean_search'] / sim - 1:>+7.2%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", choices=list(LAYERS))
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary or not args.layer:
        summary()
    else:
        run(args.layer)


if __name__ == "__main__":
    main()
