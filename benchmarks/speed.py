"""Training and inference speed of lean against PyTorch (CPU, channels_last) on the same architecture.

    python benchmarks/speed.py [--nets resnet20,lenet5] [--threads 2] [--batch-size 128] [--rounds 5]

Runs lean and PyTorch in one process, interleaved round by round (this machine is noisy), and prints medians,
the lean/PyTorch ratio, and lean's GFLOP/s against the machine's float32 FMA peak, measured in the same run
(``lean.bench.fma_peak_gflops``: independent vector FMA chains on every thread) next to a 2048^3 BLAS matmul.

GFLOP/s are given twice. *Effective*: the multiply-adds of the direct convolution (what PyTorch's figure also
means), per second. *Executed*: the multiply-adds lean's kernels really run: a Winograd F(4x4, 3x3) layer does
36 per 16 outputs and channel pair instead of 144 (its transforms' adds are not counted), so its executed
figure is about a quarter of its effective one. Rows: ``train`` (forward, loss, backward, SGD), ``infer``
(evaluation forward with batch norm folded and ReLU / residual adds in the conv's store, ``lean.nn.fusion``),
``infer-unfused`` (the same forward layer by layer, to credit the fusion alone).

For the AVX2 stand-in (issue 12): ``NUMBA_CPU_NAME=haswell OPENBLAS_CORETYPE=Haswell LEAN_SIMD=avx2
ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/speed.py``; the first lines say which paths ran on each side.
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


def executed_macs(model, batch, train):
    """(effective, executed) multiply-adds of one step over ``batch`` images: conv and linear layers; a training
    step counts the forward, the weight gradient and (where computed) the input gradient. Winograd passes run
    (m + 2)^2 products per m x m tile of the output they compute (the input, for an input gradient)."""
    from lean.hw.workload import from_model
    from lean.kernels import winograd

    modules = dict(model.net.named_modules())
    effective = executed = 0
    m = winograd.WINOGRAD_TILE
    for layer in from_model(model, batch=batch).layers:
        module = modules[layer.name]
        passes = 1 if not train else 2 + (1 if getattr(module, "input_grad", True) else 0)
        macs = layer.macs
        effective += passes * macs
        if getattr(module, "last_method", None) != "winograd":
            executed += passes * macs
            continue
        per_pair = layer.n * layer.c * layer.k * (m + 2) ** 2
        out_tiles = -(-layer.p // m) * -(-layer.q // m)
        in_tiles = -(-layer.h // m) * -(-layer.w // m)
        executed += per_pair * out_tiles * (2 if train else 1) + (per_pair * in_tiles if passes == 3 else 0)
    return effective, executed


def measure(name, args, fma_peak, torch, torch_nets):
    """Interleaved lean and PyTorch timings of one net's training and inference steps."""
    from lean.nets import build
    from lean.nn import SGD, fusion, softmax_cross_entropy

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

    def lean_infer_unfused():
        with fusion.fusing(False):
            lmodel.forward(lx, train=False)

    for mode, lean_fn, torch_fn in (("train", lean_train, torch_train), ("infer", lean_infer, torch_infer),
                                    ("infer-unfused", lean_infer_unfused, torch_infer)):
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
        lean_fn()  # the layers' last_method now says which kernels ran in this mode
        effective, executed = executed_macs(lmodel, args.batch_size, mode == "train")
        results.append({
            "net": name, "mode": mode, "threads": args.threads, "batch_size": args.batch_size,
            "lean_images_per_second": lean_ips, "torch_images_per_second": torch_ips,
            "ratio": lean_ips / torch_ips,
            "lean_effective_gflops": 2 * effective / np.median(lean_t) / 1e9,
            "lean_executed_gflops": 2 * executed / np.median(lean_t) / 1e9,
            "torch_gflops": 2 * effective / np.median(torch_t) / 1e9,
            "fma_peak_gflops": fma_peak, "forward_macs_per_image": forward_macs(lmodel),
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
    from lean.bench import fma_peak_gflops

    fma_peak = fma_peak_gflops(args.threads)
    matmul = matmul_peak_gflops(args.threads)
    results = []
    for name in args.nets.split(","):
        results += measure(name, args, fma_peak, torch, torch_nets)
    for r in results:
        r["matmul_gflops"] = matmul
    if args.json:
        print(json.dumps(results))
        return
    print(machine_line())
    print(f"PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
          f" (ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')})")
    print(f"threads {args.threads}, batch {args.batch_size}, medians of {args.rounds}x{args.steps} interleaved "
          f"steps; FMA peak here {fma_peak:.0f} GFLOP/s, 2048^3 matmul {matmul:.0f} GFLOP/s")
    print(f"{'net':<9} {'mode':<13} {'lean img/s':>10} {'torch img/s':>11} {'ratio':>5}   "
          f"{'GFLOP/s (% of FMA peak): lean effective':<39} {'lean executed':<14} {'torch':<13}")

    def rate(gflops):
        return f"{gflops:6.1f} ({100 * gflops / fma_peak:3.0f}%)"

    for r in results:
        print(f"{r['net']:<9} {r['mode']:<13} {r['lean_images_per_second']:>10,.0f} "
              f"{r['torch_images_per_second']:>11,.0f} {r['ratio']:>5.2f}   {rate(r['lean_effective_gflops']):<39} "
              f"{rate(r['lean_executed_gflops']):<14} {rate(r['torch_gflops']):<13}")


if __name__ == "__main__":
    main()
