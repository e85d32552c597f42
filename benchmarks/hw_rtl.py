"""Generated RTL against lean's own models (issue 18 fidelity targets): simulated cycles within 10% of the
predicted, Yosys's DSP and BRAM counts within 10% of the predicted resources, LUTs within 30%.

    python benchmarks/hw_rtl.py [--family xcup|xc7] [--json]

For each design point below (both templates) it writes the Verilog (``lean.hw.accel.rtl``), simulates a 3 -> 4
channel 3x3 conv on a 6x6 map (and a 16 -> 8 channel one on 8x8, and a 4 -> 7 one: an odd number of output
columns) in Icarus Verilog, checks every output against NumPy, compares the cycles with ``predict_cycles`` and
with the design search's coarse mode (``graph.coarse``, the array IP's cycles), and synthesizes the design with
Yosys ``synth_xilinx``. Needs ``iverilog`` and ``yosys`` (Debian packages of the same
names). Figures to benchmarks/results/hw_rtl.json.
"""

import argparse
import tempfile
import time
from pathlib import Path

from _runs import write_figures

RESULTS = Path(__file__).parent / "results" / "hw_rtl.json"
OVERLAP = "os-systolic-overlap"
DESIGNS = ({"rows": 2, "cols": 2}, {"rows": 2, "cols": 4, "pack_dsp": True}, {"rows": 4, "cols": 4},
           {"rows": 4, "cols": 8, "pack_dsp": True}, {"rows": 8, "cols": 8}, {"rows": 8, "cols": 16, "pack_dsp": True},
           {"rows": 2, "cols": 4, "pack_dsp": True, "template": OVERLAP}, {"rows": 4, "cols": 4, "template": OVERLAP},
           {"rows": 8, "cols": 8, "template": OVERLAP})


def main():
    from lean.hw import accel
    from lean.hw.accel import graph
    from lean.hw.accel.rtl import conv_as_matrices

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="xcup", choices=("xcup", "xc7"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    layers = {"conv 3->4, 6x6": conv_as_matrices(), "conv 16->8, 8x8": conv_as_matrices(16, 8, 8, 8, seed=1),
              "conv 4->7, 6x6": conv_as_matrices(4, 7, 6, 6, seed=2)}
    rows = []
    print(f"{'design':<22} {'layer':<16} {'mismatches':>10} {'cycles':>8} {'predicted':>9} {'coarse':>7} | "
          f"{'LUT':>11} {'DSP':>9} {'BRAM18':>9} {'FF':>11} {'synth s':>7}")
    for fields in DESIGNS:
        design = accel.DesignPoint(**fields, input_words=4096, weight_words=4096)
        name = (f"{design.rows}x{design.cols}{' packed' if design.pack_dsp else ''}"
                f"{' overlap' if design.template == OVERLAP else ''}")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            synth = accel.synthesize(design, Path(tmp) / "synth", args.family)
            synth_s = time.perf_counter() - t0
            for layer, (a, b) in layers.items():
                sim = accel.simulate(design, Path(tmp) / "sim", a, b)
                coarse = graph.coarse(graph.template_of(design), graph.fields(design),
                                      [(1, a.shape[0], a.shape[1], b.shape[1])],
                                      {"dram_gb_s": 1e9, "clock_mhz": 200.0})["by_ip"]["pe_array"]["cycles"]
                y, p = synth["yosys"], synth["predicted"]
                rows.append({"design": fields, "layer": layer, **sim, "coarse_cycles": float(coarse),
                             "coarse_error": (float(coarse) - sim["cycles"]) / sim["cycles"], "yosys": y,
                             "predicted": p, "synth_s": synth_s, "family": args.family})
                res = " ".join(f"{y[k]:>5}/{p[k]:<5}" for k in ("lut", "dsp", "bram18", "ff"))
                print(f"{name:<22} {layer:<16} {sim['mismatches']:>10} {sim['cycles']:>8} {sim['predicted_cycles']:>9} "
                      f"{100 * rows[-1]['coarse_error']:>+6.1f}% | {res} {synth_s:>7.1f}")
    worst = {k: max(abs(r["yosys"][k] / r["predicted"][k] - 1) for r in rows) for k in ("lut", "dsp", "bram18", "ff")}
    print("(resources: Yosys / predicted)  largest differences: "
          + ", ".join(f"{k.upper()} {100 * v:.1f}%" for k, v in worst.items())
          + f"; largest cycle error {100 * max(abs(r['cycle_error']) for r in rows):.1f}% (predict_cycles), "
          f"{100 * max(abs(r['coarse_error']) for r in rows):.1f}% (the search's coarse mode); "
          f"mismatching outputs {sum(r['mismatches'] for r in rows)}")
    write_figures(RESULTS, {"rows": rows, "largest_difference": worst}, args.json)


if __name__ == "__main__":
    main()
