"""The SmartExchange accelerator against DianNao, SCNN, Cambricon-X and Bit-pragmatic (issue 18 target: the
direction and size of the paper's claims, up to 6.7x energy efficiency and up to 19.2x speed-up).

    python benchmarks/hw_compare.py [--checkpoint runs/pim/resnet20-fmnist-se.h5] [--json]

For each workload: SmartExchange's speed-up and energy efficiency over each baseline (``lean.hw.accel.compare``),
and what its method alone saves (against the same accelerator on dense 8-bit weights). The ImageNet built-in nets
have no SmartExchange layers and the paper's per-layer Ce row sparsity was not at hand: they run with every Ce row
kept (``ce_row_density`` 1) and with half of them (0.5), to show the range. The CIFAR-10 ResNet-18 and MobileNetV2
of the authors' code run with the per-layer row pruning their code applies (``ce_row_density="smartdeal"``,
``compare.PRUNED_ROW_SHARES``). The checkpoint (a lean SmartExchange
model, e.g. ``lean compress smartexchange r20.h5 -o se.h5 --retrain-epochs 2``) brings its real Ce, B and row
density. Analytical: one run prints it all; figures to benchmarks/results/hw_compare.json.
"""

import argparse
from pathlib import Path

from _runs import write_figures

RESULTS = Path(__file__).parent / "results" / "hw_compare.json"
BASELINES = ("diannao", "scnn", "cambricon-x", "bit-pragmatic")


def main():
    from lean.hw.accel.compare import CONTROL, compare

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/pim/resnet20-fmnist-se.h5")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = [(name, density) for name in ("alexnet", "vgg16", "resnet18", "resnet50", "mobilenetv2")
             for density in (1.0, 0.5)]
    cases += [(name, "smartdeal") for name in ("resnet18-cifar", "mobilenetv2-cifar")]
    if Path(args.checkpoint).exists():
        cases.append((args.checkpoint, None))
    rows = []
    print(f"{'workload':<34} {'Ce rows':>9} | SmartExchange speed-up / energy efficiency over "
          + " | ".join(f"{b:>13}" for b in BASELINES) + " | method alone")
    for workload, density in cases:
        r = compare(workload, ce_row_density=density or 1.0)
        se = r["designs"]["smartexchange"]
        over = {b: (r["designs"][b]["latency_ms"] / se["latency_ms"], r["designs"][b]["energy_pj"] / se["energy_pj"])
                for b in BASELINES}
        control = r["designs"][CONTROL]
        alone = (control["latency_ms"] / se["latency_ms"], control["energy_pj"] / se["energy_pj"])
        rows.append({"workload": r["workload"], "ce_row_density": density, "over": over, "method_alone": alone,
                     "ce_rows_kept": r["assumptions"].get("ce_rows_kept"),
                     "weights_kept": r["assumptions"].get("weights_kept")})
        label = "real" if density is None else density if isinstance(density, str) else f"{density:g}"
        print(f"{r['workload'][:34]:<34} {label:>9} | "
              + " | ".join(f"{s:5.2f}x {e:5.2f}x" for s, e in over.values())
              + f" | {alone[0]:.2f}x {alone[1]:.2f}x")
    speed = max(((s, row["workload"], row["ce_row_density"], b) for row in rows for b, (s, _) in row["over"].items()),
                key=lambda t: t[0])
    energy = max(((e, row["workload"], row["ce_row_density"], b) for row in rows for b, (_, e) in row["over"].items()),
                 key=lambda t: t[0])
    best_speed, best_energy = speed[0], energy[0]
    print(f"largest: speed-up {best_speed:.2f}x over {speed[3]} on {speed[1]} (Ce rows {speed[2] or 'real'}; paper: "
          f"up to 19.2x), energy efficiency {best_energy:.2f}x over {energy[3]} on {energy[1]} (Ce rows "
          f"{energy[2] or 'real'}; paper: up to 6.7x)")
    write_figures(RESULTS, {"rows": rows, "largest_speedup": best_speed, "largest_energy_efficiency": best_energy},
                  args.json)


if __name__ == "__main__":
    main()
