"""Convolution and batch-norm kernels on ResNet-20's layer shapes, method against method (issue 12).

    python benchmarks/conv_kernels.py [--threads 2] [--batch-size 128] [--reps 15]

For each stride-1 3x3 shape: forward, input gradient and weight gradient of Winograd F(4x4, 3x3), F(2x2, 3x3),
the register-tiled direct kernel and im2col + BLAS, medians of interleaved calls, ms, with the direct kernel's
time over each one's; and the batch norm (+ReLU) passes on tiles against the row kernels. Padding copies are
included where a method needs them (the tiled kernel's; Winograd loads the border masked). The first line says
which vector path ran.
"""

import argparse
import time

import numpy as np
from _runs import machine_line

import lean
from lean import kernels
from lean.kernels import batchnorm, direct, winograd


def race(functions, reps):
    """Median seconds of each function, calls interleaved."""
    for f in functions.values():
        f()
    times = {name: [] for name in functions}
    for _ in range(reps):
        for name, f in functions.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def conv_rows(n, reps):
    rng = np.random.default_rng(0)
    for c, hw in [(16, 32), (32, 16), (64, 8)]:
        conv_shape(rng, n, c, hw, reps)


def conv_shape(rng, n, c, hw, reps):
    x = rng.standard_normal((n, hw, hw, c)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32)
    dy = rng.standard_normal((n, hw, hw, c)).astype(np.float32)
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    passes = {
        "forward": {
            "winograd4": lambda: winograd.forward(x, w, None, 1, m=4),
            "winograd2": lambda: winograd.forward(x, w, None, 1, m=2),
            "tiled": lambda: kernels.conv2d_forward(x, w, None, 1, 1, method="tiled"),
            "im2col": lambda: kernels.conv2d_forward(x, w, None, 1, 1, method="im2col"),
        },
        "input grad": {
            "winograd4": lambda: winograd.forward(dy, flipped, None, 1, m=4),
            "winograd2": lambda: winograd.forward(dy, flipped, None, 1, m=2),
            "tiled": lambda: direct.forward_padded(direct.pad_images(dy, 1), direct.flip_weights(w), None, c,
                                                   3, 3, 1, hw, hw),
            "im2col": lambda: kernels.conv2d_backward(x, w, dy, 1, 1, method="im2col", need_db=False)[0],
        },
        "weight grad": {
            "winograd4": lambda: winograd.weight_grad(x, dy, 1, m=4),
            "winograd2": lambda: winograd.weight_grad(x, dy, 1, m=2),
            "tiled": lambda: direct.weight_grad_padded(direct.pad_images(x, 1), dy, 3, 3, 1),
            "im2col": lambda: kernels.conv2d_backward(x, w, dy, 1, 1, method="im2col", need_dx=False,
                                                      need_db=False)[1],
        },
    }
    for label, functions in passes.items():
        t = race(functions, reps)
        cells = "  ".join(f"{name} {1e3 * s:6.2f} ({t['tiled'] / s:4.2f}x)" for name, s in t.items())
        flops = 2 * n * hw * hw * c * c * 9
        print(f"{c:>2}ch {hw:>2}x{hw:<2} {label:<11} {cells}   tiled {flops / t['tiled'] / 1e9:5.0f} GFLOP/s")


def batchnorm_rows(n, reps):
    rng = np.random.default_rng(1)
    for c, hw in [(16, 32), (64, 8)]:
        batchnorm_shape(rng, n, c, hw, reps)


def batchnorm_shape(rng, n, c, hw, reps):
    x = rng.standard_normal((n * hw * hw, c)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    _, mean, inv_std, _ = kernels.batchnorm_forward_train(x, gamma, beta, relu=True)
    tiles = batchnorm._tiles_for
    rows = {}
    for label, use_tiles in (("tiled", True), ("rows", False)):
        batchnorm._tiles_for = tiles if use_tiles else (lambda *a: None)
        try:
            rows[label] = race({
                "forward": lambda: kernels.batchnorm_forward_train(x, gamma, beta, relu=True),
                "backward": lambda: kernels.batchnorm_backward(x, dy, mean, inv_std, gamma, beta, relu=True),
            }, reps)
        finally:
            batchnorm._tiles_for = tiles
    print(f"batch norm + ReLU {c}ch {hw}x{hw}: forward tiled {1e3 * rows['tiled']['forward']:.2f} ms, rows "
          f"{1e3 * rows['rows']['forward']:.2f}; backward tiled {1e3 * rows['tiled']['backward']:.2f}, rows "
          f"{1e3 * rows['rows']['backward']:.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    lean.configure(args.threads)
    print(machine_line())
    print(f"threads {args.threads}, batch {args.batch_size}; ms (tiled direct kernel's time / this one's)")
    conv_rows(args.batch_size, args.reps)
    batchnorm_rows(args.batch_size, args.reps)


if __name__ == "__main__":
    main()
