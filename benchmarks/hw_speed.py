"""Speed of the hardware predictor (issue 3 targets).

    python benchmarks/hw_speed.py [--configs 1000] [--effort quick|default|thorough]

1. `lean hw predict --workload resnet50 --accel eyeriss` (mapping search on every layer) as a whole command,
   wall time median of 5 (target < 2 s), and the same search in-process (target < 1 s).
2. A sweep of N accelerator configurations over ResNet-18 in one process (array shape, buffer size, DRAM
   bandwidth and dataflow varied), total wall time (target: 1,000 configurations < 60 s).
"""

import argparse
import itertools
import subprocess
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--effort", default="quick", choices=["quick", "default", "thorough"],
                    help="the mapper's effort in the sweep (quick: what a sweep over many accelerators uses)")
    args = ap.parse_args()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(["lean", "hw", "predict", "--workload", "resnet50", "--accel", "eyeriss", "--json"],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    from lean.hw import accelerator, workload
    from lean.hw.predictor import predict

    resnet50 = workload.resnet50()
    inproc = []
    for _ in range(5):
        t0 = time.perf_counter()
        predict(resnet50, accelerator.eyeriss())
        inproc.append(time.perf_counter() - t0)
    # the first call fills the mapper's caches of unrollings and RF tiles; later ones in the process reuse them
    print(f"predict(resnet50, eyeriss) in-process: {inproc[0]:.2f} s wall the first time in a process (target "
          f"< 1 s), {np.median(inproc[1:]):.2f} s median of the 4 after it")
    print(f"lean hw predict resnet50 on eyeriss (search on all 54 layers): {np.median(times):.2f} s wall, "
          f"median of 5 (target < 2 s)")

    resnet18 = workload.resnet18()
    base = accelerator.eyeriss()
    grid = itertools.product([8, 12, 16, 24, 32], [8, 14, 16, 32], [32, 64, 108, 256, 512], [2.0, 8.0, 32.0],
                             ["rs", "ws", "os", "nlr"])
    configs = list(itertools.islice(grid, args.configs))
    t0 = time.perf_counter()
    best = None
    for rows, cols, kb, bw, df in configs:
        # only row stationary keeps weights in the PEs for the whole pass, so only it may stream them from DRAM
        acc = base.with_overrides(array_rows=rows, array_cols=cols, glb_bytes=kb * 1024, dram_bytes_per_cycle=bw,
                                  dataflow=df, weights_bypass_glb=df == "rs")
        total = predict(resnet18, acc, effort=args.effort).total
        edp = total["energy_pj"] * total["latency_ms"]
        if best is None or edp < best[0]:
            best = (edp, rows, cols, kb, bw, df, total)
    elapsed = time.perf_counter() - t0
    print(f"sweep of {len(configs)} configurations over ResNet-18 (search effort {args.effort}): {elapsed:.1f} s "
          f"({1e3 * elapsed / len(configs):.1f} ms each; target 1,000 in < 60 s)")
    _, rows, cols, kb, bw, df, total = best
    print(f"lowest energy-delay product: {rows}x{cols} PEs, {kb} kB, {bw} B/cycle, {df}: "
          f"{total['latency_ms']:.1f} ms, {total['energy_pj'] / 1e9:.2f} (x1e9 normalized units)")


if __name__ == "__main__":
    main()
