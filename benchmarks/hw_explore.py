"""The design search's ranking rate (issue 18 target: at least 10,000 candidate designs ranked per minute on this
machine, growing with workers; report 1 and 2 workers and the projected scaling).

    python benchmarks/hw_explore.py [--workload resnet50] [--repeats 3] [--json]

Runs ``lean.hw.accel.explore.explore`` on the whole design space (614,400 points) for the workload in this
process, then on a local Dask cluster of 1 and of 2 worker processes (the cluster's start-up is not timed: the
rate is the ranking's), and prints candidates ranked per minute (median of the repeats), the speed-up of 2 workers
over 1, and the result's identity across engines. Figures to benchmarks/results/hw_explore.json.
"""

import argparse
import statistics
from pathlib import Path

from _runs import machine_line, write_figures

RESULTS = Path(__file__).parent / "results" / "hw_explore.json"


def main():
    from lean.hw.accel.explore import explore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    print(machine_line())
    runs = {}
    for name, kwargs in (("inline, 1 process", {"workers": 1}), ("dask, 1 worker", {"workers": 1, "engine": "dask"}),
                         ("dask, 2 workers", {"workers": 2, "engine": "dask"})):
        results = [explore(args.workload, "ultra96", **kwargs) for _ in range(args.repeats)]
        rates = [r["search"]["per_minute"] for r in results]
        runs[name] = {"per_minute": statistics.median(rates), "rates": rates,
                      "candidates": results[0]["search"]["candidates"], "design": results[0]["design"],
                      "ranked_s": statistics.median(r["search"]["ranked_s"] for r in results)}
        print(f"{name:<20} {runs[name]['candidates']:,} candidates in {runs[name]['ranked_s']:.2f} s: "
              f"{runs[name]['per_minute']:,.0f} a minute (median of {args.repeats})")
    speedup = runs["dask, 2 workers"]["per_minute"] / runs["dask, 1 worker"]["per_minute"]
    same = all(r["design"] == runs["inline, 1 process"]["design"] for r in runs.values())
    per_worker = runs["dask, 1 worker"]["per_minute"] / 1e6
    chunks = -(-runs["dask, 1 worker"]["candidates"] // 4096)
    print(f"2 Dask workers against 1: {speedup:.2f}x (ideal 2x; this machine has 2 cores). Projected for N workers "
          f"on N cores: at most N x {per_worker:.1f} million a minute (the per-worker rate), up to the "
          f"{chunks} chunks of 4,096 (one chunk per worker at most). Same chosen design on every engine: {same}")
    write_figures(RESULTS, {"workload": args.workload, "runs": runs, "speedup_2_over_1": speedup,
                            "same_design": same}, args.json)


if __name__ == "__main__":
    main()
