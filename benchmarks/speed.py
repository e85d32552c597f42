"""Training and inference speed of lean against PyTorch (CPU, channels_last) on the same architecture.

    python benchmarks/speed.py [--nets resnet20,lenet5] [--threads 2] [--batch-size 128] [--rounds 5]

Runs lean and PyTorch in one process, interleaved round by round (this machine is noisy), and prints medians,
the lean/PyTorch ratio, and the fraction of the machine's peak FLOP/s that lean reaches. Peak is measured here
with a 2048x2048 float32 matmul in NumPy (BLAS), the best a dense kernel reaches on this machine, and quoted
next to PERFORMANCE.md's FMA-loop figure (~226 GFLOP/s on 2 threads).
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def forward_macs(model):
    """Multiply-accumulates of one image's forward pass (conv and linear layers, traced by lean.hw.workload)."""
    from lean.hw.workload import from_model

    return from_model(model, batch=1).macs


def matmul_peak_gflops(threads):
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    with threadpool_limits(threads, user_api="blas"):
        a @ a
        times = []
        for _ in range(5):
            t = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t)
    return 2 * 2048 ** 3 / np.median(times) / 1e9


def measure(name, args, peak, torch, torch_nets):
    """Interleaved lean and PyTorch timings of one net's training and inference steps."""
    from lean.nets import build
    from lean.nn import SGD, softmax_cross_entropy

    results = []
    tmodel, (c, h, w) = torch_nets.build(name)
    tmodel = tmodel.to(memory_format=torch.channels_last)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    tx = torch.randn(args.batch_size, c, h, w).to(memory_format=torch.channels_last)
    ty = torch.randint(0, 10, (args.batch_size,))
    lmodel = build(name, input_shape=(h, w, c), num_classes=10)
    lopt = SGD(lmodel.parameters(), lmodel.gradients(), momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    lx = rng.standard_normal((args.batch_size, h, w, c)).astype(np.float32)
    ly = rng.integers(0, 10, args.batch_size)

    def torch_train():
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        topt.step()

    def torch_infer():
        with torch.no_grad():
            tmodel.eval()
            tmodel(tx)
            tmodel.train()

    def lean_train():
        lmodel.zero_grad()
        _, d = softmax_cross_entropy(lmodel.forward(lx, train=True), ly)
        lmodel.backward(d)
        lopt.step(0.01)

    def lean_infer():
        lmodel.forward(lx, train=False)

    macs = forward_macs(lmodel)
    for mode, lean_fn, torch_fn in (("train", lean_train, torch_train), ("infer", lean_infer, torch_infer)):
        for _ in range(2):
            lean_fn()
            torch_fn()
        lean_t, torch_t = [], []
        for _ in range(args.rounds):
            for fn, sink in ((lean_fn, lean_t), (torch_fn, torch_t)):
                fn()  # untimed: the other side's threads may still be spinning from its last step
                for _ in range(args.steps):
                    t = time.perf_counter()
                    fn()
                    sink.append(time.perf_counter() - t)
        lean_ips = args.batch_size / np.median(lean_t)
        torch_ips = args.batch_size / np.median(torch_t)
        flops = 2 * macs * args.batch_size * (3 if mode == "train" else 1)
        results.append({
            "net": name, "mode": mode, "threads": args.threads, "batch_size": args.batch_size,
            "lean_images_per_second": lean_ips, "torch_images_per_second": torch_ips,
            "ratio": lean_ips / torch_ips, "lean_gflops": flops / np.median(lean_t) / 1e9,
            "matmul_peak_gflops": peak, "forward_macs_per_image": macs,
        })
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default="resnet20,lenet5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    import torch_nets
    from _runs import machine_line

    import lean

    torch.set_num_threads(args.threads)
    lean.configure(args.threads)  # as `lean train` does (its freed-memory reuse is process-wide: PyTorch gets it too)
    peak = matmul_peak_gflops(args.threads)
    results = []
    for name in args.nets.split(","):
        results += measure(name, args, peak, torch, torch_nets)
    if args.json:
        print(json.dumps(results))
        return
    print(machine_line())
    print(f"threads {args.threads}, batch {args.batch_size}, medians of {args.rounds}x{args.steps} interleaved "
          f"steps; 2048^3 matmul here: {peak:.0f} GFLOP/s")
    print(f"{'net':<10} {'mode':<6} {'lean img/s':>11} {'torch img/s':>12} {'ratio':>6} {'lean GFLOP/s':>13} "
          f"{'% of matmul peak':>17}")
    for r in results:
        print(f"{r['net']:<10} {r['mode']:<6} {r['lean_images_per_second']:>11,.0f} "
              f"{r['torch_images_per_second']:>12,.0f} {r['ratio']:>6.2f} {r['lean_gflops']:>13.1f} "
              f"{100 * r['lean_gflops'] / r['matmul_peak_gflops']:>16.0f}%")


if __name__ == "__main__":
    main()
