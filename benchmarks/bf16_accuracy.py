"""bf16 training against float32 on real data, across seeds (issue 12): one run per call, results appended.

    python benchmarks/bf16_accuracy.py --precision bf16 --seed 0     # one run (~10 min here), appended
    python benchmarks/bf16_accuracy.py --summary                     # the table from what is there

Each run is the accuracy benchmark's recipe (`benchmarks/accuracy.py`: the plain `lean train --net resnet20
--data fashion-mnist --epochs 15`, every other setting the net's recipe) with `--seed S` and `--precision P`,
printed before it runs. Results go to benchmarks/results/bf16_accuracy.jsonl (one JSON line per run, with the
machine line). `--summary` prints each run, then per precision the mean, the spread (min..max) and the standard
deviation over seeds, and where the bf16 mean lies against the float32 runs' spread (within, above or below;
issue 12's accuracy target: within).
"""

import argparse
import statistics
from pathlib import Path

from _runs import append_result, lean_json, machine_line, read_results

RESULTS = Path(__file__).parent / "results" / "bf16_accuracy.jsonl"


def run(precision, seed, epochs, out_dir):
    out = Path(out_dir) / f"resnet20-fashion-mnist-{precision}-seed{seed}.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary, wall = lean_json("train", "--net", "resnet20", "--data", "fashion-mnist", "--epochs", epochs,
                              "--seed", seed, "--precision", precision, "--out", out, "--force")
    row = {"precision": precision, "seed": seed, "epochs": epochs, "test_accuracy": summary["test_accuracy"],
           "wall_seconds": round(wall, 1), "train_images_per_second": summary.get("train_images_per_second"),
           "bf16_products": summary.get("bf16_products"), "bf16_layers": summary.get("bf16_layers"),
           "machine": machine_line()}
    append_result(RESULTS, row)


def summary():
    rows = read_results(RESULTS)
    print(f"{'precision':<9} {'seed':>4} {'epochs':>6} {'test acc':>9} {'wall':>7} {'img/s':>7}")
    for r in rows:
        print(f"{r['precision']:<9} {r['seed']:>4} {r['epochs']:>6} {100 * r['test_accuracy']:>8.2f}% "
              f"{r['wall_seconds'] / 60:>6.1f}m {r['train_images_per_second'] or 0:>7,.0f}")
    by = {}
    for r in rows:  # the last run of each (precision, seed, epochs) counts
        by.setdefault((r["precision"], r["epochs"]), {})[r["seed"]] = 100 * r["test_accuracy"]
    print()
    stats = {}
    for (precision, epochs), seeds in sorted(by.items()):
        acc = list(seeds.values())
        sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        stats[(precision, epochs)] = (statistics.mean(acc), min(acc), max(acc))
        print(f"{precision:<9} {epochs} epochs, seeds {sorted(seeds)}: mean {statistics.mean(acc):.2f}%, "
              f"spread {min(acc):.2f}..{max(acc):.2f}, sd {sd:.2f}")
    for (precision, epochs), (mean, _, _) in stats.items():
        base = stats.get(("float32", epochs))
        if precision == "bf16" and base:
            where = "within" if base[1] <= mean <= base[2] else "above" if mean > base[2] else "below"
            print(f"bf16 mean {mean:.2f}% is {where} the float32 runs' spread {base[1]:.2f}..{base[2]:.2f} "
                  f"({epochs} epochs; bf16 - float32 means = {mean - base[0]:+.2f} points)")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", choices=("float32", "bf16"))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--out-dir", default="runs")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary:
        summary()
        return
    if args.precision is None or args.seed is None:
        ap.error("give --precision and --seed (one run), or --summary")
    run(args.precision, args.seed, args.epochs, args.out_dir)


if __name__ == "__main__":
    main()
