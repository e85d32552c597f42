"""Start-up time, Numba compile cost and peak memory of a training step.

    python benchmarks/startup_memory.py [--net resnet20] [--batch-size 128]

- `lean --help`: wall time of the whole command (median of 5 runs).
- cold start: the first training step in a fresh process with an empty Numba cache (NUMBA_CACHE_DIR pointed at a
  new folder), i.e. compile time included; warm start: the same with the cache that run wrote.
- peak RSS of `lean bench train` at the given batch size (the largest resident set of the child process).
Targets (issue 2): --help < 1 s, warm first step < 1 s, ResNet-20 training at batch 128 < 2 GB.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def run(cmd, env=None):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="resnet20")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    help_times = sorted(run(["lean", "--help"])[1] for _ in range(5))
    print(f"lean --help: {help_times[2]:.2f} s median of 5 (target < 1 s)")

    bench = ["lean", "bench", "train", "--net", args.net, "--batch-size", str(args.batch_size), "--steps", "3",
             "--warmup", "1", "--json"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out, cold_wall = run(bench, env)
        cold = json.loads(out.strip().splitlines()[-1])
        out, warm_wall = run(bench, env)
        warm = json.loads(out.strip().splitlines()[-1])
    print(f"{args.net} first training step, batch {args.batch_size}: cold (compiling) "
          f"{cold['first_step_seconds']:.2f} s, warm cache {warm['first_step_seconds']:.2f} s (target < 1 s); "
          f"whole command {cold_wall:.1f} s cold, {warm_wall:.1f} s warm")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS of a `lean bench train` process: {peak_kb / 1024:.0f} MB (target < 2048 MB); "
          f"steady {warm['images_per_second']:.0f} images/s")


if __name__ == "__main__":
    main()
