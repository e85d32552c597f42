"""lean's mapper against ZigZag's (issue 16 targets: one layer at least 10x faster than ZigZag's search on the same
layer and array; ZigZag's best mapping, given to lean, costs no less in lean than lean's own best).

    python -m venv /tmp/zz && /tmp/zz/bin/pip install zigzag-dse six     # ZigZag (KU Leuven); benchmarks only
    python benchmarks/hw_zigzag.py --zigzag-python /tmp/zz/bin/python [--lpf 6]   # appends a row
    python benchmarks/hw_zigzag.py --summary

One layer, ResNet-50's 3x3 conv (K = C = 64, 56 x 56 outputs, the 58 x 58 padded input ZigZag reads), on one
accelerator described to both tools alike: 16 x 16 MACs with K on one side and C on the other (lean's ws
constraint: C over rows, K over columns), per-PE register files of 64 input, 64 weight and 16 partial-sum words,
a 128 KiB buffer for all three operands, DRAM; 8-bit weights and inputs, 16-bit partial sums; energies per access
as ZigZag's file gives them (RF 1.0 / 1.5 pJ per 8-bit read / write, buffer 40 / 50 pJ per 128-bit access,
DRAM 500 pJ per 64 bits, MAC 0.5 pJ; lean's per-word costs are these divided down to one 8-bit word, and its
16-bit partial sums cost twice an 8-bit word where ZigZag's file says 1.5 / 2.0). ZigZag runs in its own
environment (``--zigzag-python``: it pins packages lean does not), in a subprocess, timed inside it.

Printed: each tool's search time (ZigZag's LOMA at ``--lpf``, lean at each effort, median of 5), ZigZag's best
mapping and its energy in ZigZag, the same mapping costed by lean, and lean's own best. ZigZag's mappings may
keep an operand in a register file across loops where another operand has moved on (uneven levels); lean's levels
are even, so the mapping is given to lean with each level holding only the loops that sit inside it for every
operand (the rest move up a level): the nearest mapping lean can express. Energies leave out lean's leakage term
(ZigZag has none).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "hw_zigzag.jsonl"
LAYER = {"K": 64, "C": 64, "OY": 56, "OX": 56, "FY": 3, "FX": 3}
ZZ_TO_LEAN = {"B": "N", "K": "K", "C": "C", "OY": "P", "OX": "Q", "FY": "R", "FX": "S"}

ACCELERATOR_YAML = """name: simple16x16
memories:
  rf_I:
    size: 512
    r_cost: 1.0
    w_cost: 1.5
    area: 0
    latency: 1
    operands: [I1]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 8, bandwidth_max: 8, allocation: ["I1, tl"]}
      - {name: w_port_1, type: write, bandwidth_min: 8, bandwidth_max: 8, allocation: ["I1, fh"]}
    served_dimensions: []
  rf_W:
    size: 512
    r_cost: 1.0
    w_cost: 1.5
    area: 0
    latency: 1
    operands: [I2]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 8, bandwidth_max: 8, allocation: ["I2, tl"]}
      - {name: w_port_1, type: write, bandwidth_min: 8, bandwidth_max: 8, allocation: ["I2, fh"]}
    served_dimensions: []
  rf_O:
    size: 256
    r_cost: 1.5
    w_cost: 2.0
    area: 0
    latency: 1
    operands: [O]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 16, bandwidth_max: 16, allocation: ["O, tl", "O, th"]}
      - {name: w_port_1, type: write, bandwidth_min: 16, bandwidth_max: 16, allocation: ["O, fh", "O, fl"]}
    served_dimensions: []
  glb:
    size: 1048576
    r_cost: 40.0
    w_cost: 50.0
    area: 0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 8, bandwidth_max: 128,
         allocation: ["I1, tl", "I2, tl", "O, tl", "O, th"]}
      - {name: w_port_1, type: write, bandwidth_min: 8, bandwidth_max: 128,
         allocation: ["I1, fh", "I2, fh", "O, fh", "O, fl"]}
    served_dimensions: [D1, D2]
  dram:
    size: 10000000000
    r_cost: 500.0
    w_cost: 500.0
    area: 0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - {name: rw_port_1, type: read_write, bandwidth_min: 8, bandwidth_max: 64,
         allocation: ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"]}
    served_dimensions: [D1, D2]
operational_array:
  unit_energy: 0.5
  unit_area: 0
  dimensions: [D1, D2]
  sizes: [16, 16]
"""

# run inside ZigZag's environment: search one layer, print what was found as JSON
ZIGZAG_RUN = r"""
import json, logging, sys, time
logging.getLogger().setLevel(logging.WARNING)
from zigzag import api
arch, mapping, lpf, layer = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
workload = [{"id": 0, "name": "conv", "operator_type": "Conv",
             "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
             "dimension_relations": ["ix=1*ox+1*fx", "iy=1*oy+1*fy"],
             "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
             "loop_sizes": [1, layer["K"], layer["C"], layer["OY"], layer["OX"], layer["FY"], layer["FX"]],
             "operand_precision": {"W": 8, "I": 8, "O": 16, "O_final": 8},
             "operand_source": {"I": 0, "W": 0}}]
t0 = time.perf_counter()
energy, latency, cmes = api.get_hardware_performance_zigzag(
    workload=workload, accelerator=arch, mapping=mapping, opt="energy", temporal_mapping_search_engine="loma",
    lpf_limit=lpf, dump_folder=sys.argv[5], loma_show_progress_bar=False)
wall = time.perf_counter() - t0
best = cmes[0][1][0][0]
levels = {str(op): [[(str(d), int(round(n))) for d, n in lvl] for lvl in lvls]
          for op, lvls in best.temporal_mapping.mapping_dic_origin.items()}
import zigzag
print(json.dumps({"wall_s": wall, "energy_pj": float(energy), "latency_cycles": float(latency),
                  "levels": levels, "version": getattr(zigzag, "__version__", "?")}))
"""


def run_zigzag(python, lpf):
    with tempfile.TemporaryDirectory(prefix="zigzag_") as tmp:
        tmp = Path(tmp)
        (tmp / "arch.yaml").write_text(ACCELERATOR_YAML)
        (tmp / "mapping.yaml").write_text("- name: default\n  memory_operand_links: {O: O, W: I2, I: I1}\n"
                                          "  spatial_mapping:\n    D1: [\"K, 16\"]\n    D2: [\"C, 16\"]\n")
        (tmp / "run.py").write_text(ZIGZAG_RUN)
        out = subprocess.run([python, str(tmp / "run.py"), str(tmp / "arch.yaml"), str(tmp / "mapping.yaml"),
                              str(lpf), json.dumps(LAYER), str(tmp / "dump")], capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def to_lean(levels):
    """ZigZag's per-operand levels (RF, buffer, DRAM; innermost loop first) as an even lean mapping: a level holds
    the loops that sit inside it for every operand."""
    nest = [loop for lvl in levels["O"] for loop in lvl]          # the one loop nest, innermost first
    depth = {op: [sum(len(lvl) for lvl in lvls[:i + 1]) for i in range(len(lvls))] for op, lvls in levels.items()}
    rf_end = min(d[0] for d in depth.values())
    glb_end = min(d[1] for d in depth.values())
    places = {"rf": nest[:rf_end], "glb": nest[rf_end:glb_end], "dram": nest[glb_end:]}
    mapping = {"rows": {"C": 16}, "cols": {"K": 16}, "orders": {}}
    for place, loops in places.items():
        factors = {}
        for dim, f in loops:
            factors[ZZ_TO_LEAN[dim]] = factors.get(ZZ_TO_LEAN[dim], 1) * f
        mapping[place] = factors
        order = []
        for dim, _ in reversed(loops):                              # lean: outermost first
            if ZZ_TO_LEAN[dim] not in order:
                order.append(ZZ_TO_LEAN[dim])
        mapping["orders"][place] = "".join(order)
    return mapping


def lean_side():
    from lean.hw import accelerator
    from lean.hw import workload as wl

    acc = accelerator.tpu_like().with_overrides(
        dataflow="ws", systolic="false", array_rows=16, array_cols=16, rf_weight_words=64, rf_input_words=64,
        rf_psum_words=16, glb_bytes=131072, word_bits=8, psum_bits=16, e_mac_pj=0.5, e_rf_pj=1.0,
        e_rf_write_pj=1.5, e_glb_pj=40 / 16, e_glb_write_pj=50 / 16, e_dram_pj=500 / 8, e_dram_write_pj=500 / 8,
        e_noc_pj=0.0, dram_bytes_per_cycle=8.0, glb_bytes_per_cycle=16.0)
    layer = wl.LayerShape("resnet50-3x3", "conv", n=1, c=LAYER["C"], k=LAYER["K"], h=LAYER["OY"] + 2,
                          w=LAYER["OX"] + 2, r=LAYER["FY"], s=LAYER["FX"], w_bits=8, a_bits=8)
    return acc, layer


def no_leak(result):
    return result.energy_pj - result.energy_breakdown_pj.get("leak", 0.0)


def run(args):
    from lean.hw.mapper import search
    from lean.hw.predictor import evaluate

    acc, layer = lean_side()
    zz = run_zigzag(args.zigzag_python, args.lpf)
    given = evaluate(layer, acc, to_lean(zz["levels"]))
    row = {"layer": layer.name, "lpf": args.lpf, "zigzag_version": zz["version"], "zigzag_s": round(zz["wall_s"], 3),
           "zigzag_energy_pj": zz["energy_pj"], "zigzag_latency": zz["latency_cycles"],
           "zigzag_levels": zz["levels"], "zigzag_mapping_in_lean_pj": no_leak(given),
           "zigzag_mapping_in_lean": given.mapping}
    print(f"ZigZag {zz['version']} LOMA lpf {args.lpf}: {zz['wall_s']:.2f} s, {zz['energy_pj'] / 1e6:.1f} uJ, "
          f"{zz['latency_cycles']:,.0f} cycles; its mapping in lean: {no_leak(given) / 1e6:.1f} uJ")
    for effort in ("quick", "default", "thorough"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            best = search(layer, acc, effort=effort)
            times.append(time.perf_counter() - t0)
        s = float(np.median(times))
        row[f"lean_{effort}_s"] = round(s, 4)
        row[f"lean_{effort}_pj"] = no_leak(best)
        ratio = no_leak(given) / no_leak(best)
        print(f"lean {effort}: {s * 1e3:.1f} ms ({zz['wall_s'] / s:.0f}x faster than ZigZag), "
              f"{no_leak(best) / 1e6:.1f} uJ in lean (ZigZag's mapping costs {ratio:.3f}x it), "
              f"{best.search['evaluated']:,} mappings costed; {best.mapping}")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")


def summary():
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    print(f"{'ZigZag lpf':>10} {'ZigZag s':>9} {'lean s (quick/default/thorough)':>32} {'speed-up (default)':>19} "
          f"{'ZZ map in lean uJ':>18} {'lean best uJ':>13}")
    for r in rows:
        print(f"{r['lpf']:>10} {r['zigzag_s']:>9.2f} "
              f"{r['lean_quick_s']:>10.4f} / {r['lean_default_s']:.4f} / {r['lean_thorough_s']:.4f} "
              f"{r['zigzag_s'] / r['lean_default_s']:>18.0f}x {r['zigzag_mapping_in_lean_pj'] / 1e6:>18.1f} "
              f"{r['lean_default_pj'] / 1e6:>13.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zigzag-python", default=sys.executable, help="a Python with zigzag-dse installed")
    ap.add_argument("--lpf", type=int, default=6, help="ZigZag LOMA's loop prime factor limit (its default: 6)")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary:
        summary()
    else:
        run(args)


if __name__ == "__main__":
    main()
