"""Fidelity of the dataflow predictor against Eyeriss's measured AlexNet conv layers (issue 3).

    python benchmarks/hw_eyeriss.py

Measured: Chen et al., "Eyeriss: an energy-efficient reconfigurable accelerator for deep convolutional neural
networks", JSSC 2017, Table V (AlexNet CONV1-5, batch 4, 200 MHz): latency per layer and DRAM traffic (with
run-length compression of maps). Printed: predicted vs measured latency per layer, DRAM traffic, and the
predicted energy by level (normalized: 1 = one 16-bit MAC).
"""

from lean.hw import accelerator, workload
from lean.hw.predictor import predict

MEASURED_MS = {"conv1": 20.9, "conv2": 41.9, "conv3": 23.6, "conv4": 18.4, "conv5": 10.5}
MEASURED_DRAM_MB = {"conv1": 5.0, "conv2": 4.0, "conv3": 3.0, "conv4": 2.1, "conv5": 1.3}


def main():
    convs = workload.Workload("alexnet-conv", tuple(layer for layer in workload.alexnet().with_batch(4).layers
                                                    if layer.kind == "conv"))
    p = predict(convs, accelerator.eyeriss())
    levels = ("mac", "rf", "noc", "glb", "dram")
    print(f"{'layer':<6} {'pred ms':>8} {'meas ms':>8} {'error':>7} {'pred MB':>8} {'meas MB*':>9} {'util':>5}  "
          + " ".join(f"{lv:>6}" for lv in levels))
    for layer in p.layers:
        err = layer.latency_ms / MEASURED_MS[layer.name] - 1
        shares = [layer.energy_breakdown_pj[lv] / layer.energy_pj * 100 for lv in levels]
        print(f"{layer.name:<6} {layer.latency_ms:>8.1f} {MEASURED_MS[layer.name]:>8.1f} {100 * err:>6.1f}% "
              f"{layer.dram_bytes / 1e6:>8.2f} {MEASURED_DRAM_MB[layer.name]:>9.1f} {layer.utilization:>5.2f}  "
              + " ".join(f"{v:>5.1f}%" for v in shares))
    t = p.total
    meas_ms = sum(MEASURED_MS.values())
    print(f"{'total':<6} {t['latency_ms']:>8.1f} {meas_ms:>8.1f} {100 * (t['latency_ms'] / meas_ms - 1):>6.1f}% "
          f"{t['dram_bytes'] / 1e6:>8.2f} {sum(MEASURED_DRAM_MB.values()):>9.1f}")
    print("* measured DRAM traffic is with Eyeriss's run-length compression (1.2-1.9x less); predicted is without")
    print("energy by level (normalized): " + ", ".join(f"{k} {v / 1e9:.2f}e9 ({v / t['energy_pj'] * 100:.1f}%)"
                                                       for k, v in t["energy_breakdown_pj"].items()))


if __name__ == "__main__":
    main()
