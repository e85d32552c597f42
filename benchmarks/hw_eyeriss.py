"""Fidelity of the loop-nest predictor against Eyeriss's measured AlexNet conv layers (issue 16 targets).

    python benchmarks/hw_eyeriss.py [--objective latency|energy|edp]

Measured: Chen et al., "Eyeriss: an energy-efficient reconfigurable accelerator for deep convolutional neural
networks", JSSC 2017, Table V, and ISSCC 2016 Fig. 14.5.6 (AlexNet CONV1-5, batch 4, 200 MHz): latency, active PEs,
buffer and DRAM traffic per layer (DRAM with the chip's run-length coding of maps; 16-bit words). The workload is
``alexnet-eyeriss``: AlexNet's conv layers at batch 4 with the activation zeros Eyeriss measured. Printed: lean's
prediction next to each measured figure, and lean's energy split by level and by operand next to the Eyeriss
analysis (Chen, Emer, Sze, ISCA 2016, Fig. 10 and Fig. 12: CONV layers of AlexNet under RS, normalized costs).
"""

import argparse
import math

from lean.hw import accelerator, workload
from lean.hw.predictor import predict

MEASURED_MS = {"conv1": 20.9, "conv2": 41.9, "conv3": 23.6, "conv4": 18.4, "conv5": 10.5}
MEASURED_DRAM_MB = {"conv1": 5.0, "conv2": 4.0, "conv3": 3.0, "conv4": 2.1, "conv5": 1.3}
MEASURED_GLB_MB = {"conv1": 18.5, "conv2": 77.6, "conv3": 50.2, "conv4": 37.4, "conv5": 24.9}
MEASURED_PES = {"conv1": 154, "conv2": 135, "conv3": 156, "conv4": 156, "conv5": 156}
# ISCA 2016 Fig. 10 (CONV layers, RS, 256 PEs, batch 16): energy by level; Fig. 12(d) (1024 PEs): by data type
ISCA_BY_LEVEL = {"mac": 16.6, "dram": 13.8, "glb": 1.6, "noc": 3.2, "rf": 64.8}
ISCA_BY_DATA = {"input": 28.7, "weight": 26.5, "output": 44.8}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", default="energy", choices=["energy", "latency", "edp"],
                    help="what the mapper minimizes (energy: what Eyeriss's mappings were chosen for)")
    args = ap.parse_args()
    p = predict(workload.alexnet_eyeriss(), accelerator.eyeriss(), args.objective)
    print(f"Eyeriss, AlexNet CONV1-5, batch 4, mappings searched for {args.objective}")
    print(f"{'layer':<6} {'ms':>6} {'meas':>6} {'error':>7} {'DRAM MB':>8} {'meas':>5} {'error':>7} "
          f"{'buffer MB':>9} {'meas':>5} {'PEs':>4} {'meas':>4} {'bound':>13}")
    glb_total = 0.0
    for layer in p.layers:
        glb_mb = sum(layer.counts["glb"][t][k] for t in ("input", "output") for k in ("reads", "writes")) * 2 / 1e6
        glb_total += glb_mb
        dram_error = layer.dram_bytes / 1e6 / MEASURED_DRAM_MB[layer.name] - 1
        pes = math.prod(layer.mapping["rows"].values()) * math.prod(layer.mapping["cols"].values())
        print(f"{layer.name:<6} {layer.latency_ms:>6.1f} {MEASURED_MS[layer.name]:>6.1f} "
              f"{layer.latency_ms / MEASURED_MS[layer.name] - 1:>+7.1%} {layer.dram_bytes / 1e6:>8.2f} "
              f"{MEASURED_DRAM_MB[layer.name]:>5.1f} {dram_error:>+7.1%} "
              f"{glb_mb:>9.1f} {MEASURED_GLB_MB[layer.name]:>5.1f} {pes:>4} {MEASURED_PES[layer.name]:>4} "
              f"{layer.bound:>13}")
    t = p.total
    meas_ms, meas_mb = sum(MEASURED_MS.values()), sum(MEASURED_DRAM_MB.values())
    print(f"{'total':<6} {t['latency_ms']:>6.1f} {meas_ms:>6.1f} {t['latency_ms'] / meas_ms - 1:>+7.1%} "
          f"{t['dram_bytes'] / 1e6:>8.2f} {meas_mb:>5.1f} {t['dram_bytes'] / 1e6 / meas_mb - 1:>+7.1%} "
          f"{glb_total:>9.1f} {sum(MEASURED_GLB_MB.values()):>5.1f}")
    e = t["energy_pj"]
    print("energy by level, lean vs ISCA 2016 Fig. 10 (CONV): " + ", ".join(
        f"{k} {t['energy_breakdown_pj'].get(k, 0) / e:.1%} vs {v:.1f}%" for k, v in ISCA_BY_LEVEL.items()))
    mem = sum(t["energy_by_data_pj"].values())
    print("energy by operand (RF, NoC, buffer, DRAM), lean vs ISCA 2016 Fig. 12(d): " + ", ".join(
        f"{k} {t['energy_by_data_pj'][k] / mem:.1%} vs {v:.1f}%" for k, v in ISCA_BY_DATA.items()))
    print("(the ISCA analysis is a 256-PE Eyeriss at batch 16 by level and a 1024-PE one by operand, not the chip;"
          " lean runs the 168-PE chip at batch 4)")


if __name__ == "__main__":
    main()
