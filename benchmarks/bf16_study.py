"""bf16 training (issue 12): what bf16 products cost in accuracy per convolution, and the speed against PyTorch.

    python benchmarks/bf16_study.py [--speed] [--rounds 6] [--trials 50]

1. Accuracy of one layer (NumPy, float64 reference): the relative rms error of one Winograd tile's output when
   the transform-domain operands V = B^T d B and U = G g G^T are rounded to bf16 (as lean's bf16 Winograd
   kernels multiply them, float32 sums), for F(2x2, 3x3), F(4x4, 3x3) with Lavin and Gray's points (0, +-1,
   +-2) and with (0, +-1/2, +-2), against bf16 operands in a direct convolution (d and g rounded: what
   PyTorch's autocast multiplies). 32 input channels, random normal data. The Toom-Cook matrices are built from
   the points (``winograd_matrices``) and checked exact in float64 first. Whether that error matters for
   training is measured on real data by ``benchmarks/bf16_accuracy.py`` (three seeds each way).
2. ``--speed``: ResNet-20 training steps (batch 128, 2 threads), PyTorch float32, PyTorch bf16 autocast, lean
   float32 and lean ``--precision bf16``, interleaved in one process; prints the ratios issue 12 asks for
   (lean bf16 / PyTorch bf16 autocast: target >= 1.0) and which bf16 instructions lean ran.
"""

import argparse
import os
import sys
import time

import numpy as np
from numpy.polynomial import polynomial


def winograd_matrices(points, m, r=3):
    """(B^T, G, A^T) of F(m, r) from the n - 1 = m + r - 2 finite interpolation points and infinity."""
    n = m + r - 1
    bt, g, at = np.zeros((n, n)), np.zeros((n, r)), np.zeros((m, n))
    for j, p in enumerate(points):
        others = [q for q in points if q != p]
        at[:, j] = [p ** i for i in range(m)]
        g[j] = [p ** i / np.prod([p - q for q in others]) for i in range(r)]
        coefficients = polynomial.polyfromroots(others)
        bt[j, :len(coefficients)] = coefficients
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1
    bt[n - 1] = polynomial.polyfromroots(points)
    return bt, g, at


def to_bf16(a):
    """float64 -> the nearest bf16 value (via float32, ties to even), as float64."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def tile_error(points, m, rng, trials, channels, round_what):
    """Mean relative rms error of an m x m output tile: ``round_what`` "transform" (V and U to bf16),
    "operands" (d and g to bf16, exact products) or None (float64: checks the matrices)."""
    bt, g_mat, at = winograd_matrices(points, m)
    n = m + 2
    errors = []
    for _ in range(trials):
        d = rng.standard_normal((channels, n, n))
        g = rng.standard_normal((channels, 3, 3)) * 0.2
        exact = np.zeros((m, m))
        for i in range(m):
            for j in range(m):
                exact[i, j] = (d[:, i:i + 3, j:j + 3] * g).sum()
        if round_what == "operands":
            y = np.zeros((m, m))
            dq, gq = to_bf16(d), to_bf16(g)
            for i in range(m):
                for j in range(m):
                    y[i, j] = (dq[:, i:i + 3, j:j + 3] * gq).sum()
        else:
            v = np.einsum("ab,cbd,ed->cae", bt, d, bt)
            u = np.einsum("ab,cbd,ed->cae", g_mat, g, g_mat)
            if round_what == "transform":
                v, u = to_bf16(v), to_bf16(u)
            y = at @ (v * u).sum(0) @ at.T
        errors.append(np.sqrt(((y - exact) ** 2).mean() / (exact ** 2).mean()))
    return float(np.mean(errors))


def accuracy(trials):
    rng = np.random.default_rng(0)
    cases = [("F(2x2), points 0 +-1", [0, 1, -1], 2), ("F(4x4), points 0 +-1 +-2", [0, 1, -1, 2, -2], 4),
             ("F(4x4), points 0 +-1/2 +-2", [0, 0.5, -0.5, 2, -2], 4)]
    for label, points, m in cases:
        assert tile_error(points, m, rng, 3, 32, None) < 1e-12, label  # the construction is exact
    print(f"relative rms error of an output tile, 32 channels, {trials} trials:")
    print(f"  bf16 operands, direct convolution: {tile_error([0, 1, -1], 2, rng, trials, 32, 'operands'):.1e}")
    for label, points, m in cases:
        print(f"  bf16 transform-domain products, {label}: {tile_error(points, m, rng, trials, 32, 'transform'):.1e}"
              f"   ({(m + 2) ** 2 / m ** 2:.2f} products an output, direct 9)")


def speed(rounds=6, steps=4):
    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    import torch_nets
    from _runs import machine_line

    import lean
    from lean.kernels.bf16 import BF16_AVAILABLE
    from lean.nets import build
    from lean.nn import SGD, softmax_cross_entropy
    from lean.train.precision import Bfloat16Training

    torch.set_num_threads(2)
    lean.configure(2)
    print(machine_line())
    tmodel, (c, h, w) = torch_nets.build("resnet20")
    tmodel = tmodel.to(memory_format=torch.channels_last)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    tx = torch.randn(128, c, h, w).to(memory_format=torch.channels_last)
    ty = torch.randint(0, 10, (128,))

    def torch_step(bf16):
        topt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        topt.step()

    lmodels = {}
    for precision in ("float32", "bf16"):  # two models with the same weights: one with bf16 products installed
        model = build("resnet20", input_shape=(h, w, c), num_classes=10)
        if precision == "bf16":
            Bfloat16Training().install(model)
        lmodels[precision] = (model, SGD(model.parameters(), model.gradients(), momentum=0.9, weight_decay=5e-4))
    rng = np.random.default_rng(0)
    lx = rng.standard_normal((128, h, w, c)).astype(np.float32)
    ly = rng.integers(0, 10, 128)

    def lean_step(precision):
        lmodel, lopt = lmodels[precision]
        lmodel.zero_grad()
        _, d = softmax_cross_entropy(lmodel.forward(lx, train=True), ly)
        lmodel.backward(d)
        lopt.step(0.01)

    steps_by_name = {"PyTorch float32": lambda: torch_step(False), "PyTorch bf16 autocast": lambda: torch_step(True),
                     "lean float32": lambda: lean_step("float32"), "lean bf16": lambda: lean_step("bf16")}
    times = {name: [] for name in steps_by_name}
    for f in steps_by_name.values():
        f()
        f()
    for _ in range(rounds):
        for name, f in steps_by_name.items():
            f()
            for _ in range(steps):
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    rates = {name: 128 / np.median(t) for name, t in times.items()}
    print(f"ResNet-20 training, batch 128, 2 threads, medians of {rounds}x{steps} interleaved steps:")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:7,.0f} images/s")
    print(f"lean's bf16 products: {'vdpbf16ps (AVX-512 BF16)' if BF16_AVAILABLE else 'emulated with FMAs'}")
    print(f"  lean float32 / PyTorch float32       = {rates['lean float32'] / rates['PyTorch float32']:.2f}")
    print(f"  lean float32 / PyTorch bf16 autocast = {rates['lean float32'] / rates['PyTorch bf16 autocast']:.2f}")
    print(f"  lean bf16 / lean float32             = {rates['lean bf16'] / rates['lean float32']:.2f}")
    print(f"  lean bf16 / PyTorch bf16 autocast    = {rates['lean bf16'] / rates['PyTorch bf16 autocast']:.2f}"
          "   (issue 12 target: >= 1.0)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds of the speed comparison")
    args = ap.parse_args()
    accuracy(args.trials)
    if args.speed:
        speed(args.rounds)


if __name__ == "__main__":
    main()
