"""int8 convolution against the float32 convolution on ResNet-20's layer shapes (issues 4 and 12).

    python benchmarks/int8_conv.py [--reps 31]

Same int8 codes on both sides (the float side gets them as float32); medians of interleaved calls. The int8
side is ``int8_conv2d(method="auto")``: the AVX-512 VNNI kernel where the CPU has it (``lean/kernels/vnni.py``),
else the AVX2 ``vpmaddwd`` kernel (``lean/kernels/madd.py``), else exact-float BLAS; the float side is
``conv2d_forward`` (Winograd F(4x4, 3x3) on the stride-1 layers, the tiled direct kernel on the strided one).
Each line says which ran. AVX2 stand-in: ``NUMBA_CACHE_DIR=/tmp/nbc_avx2 NUMBA_CPU_NAME=haswell
OPENBLAS_CORETYPE=Haswell LEAN_SIMD=avx2 python benchmarks/int8_conv.py``.
"""

import argparse
import time

import numpy as np
from _runs import machine_line

import lean
from lean import kernels
from lean.kernels.intconv import auto_int8_method


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=31)
    args = ap.parse_args()
    lean.configure()  # lean's threading, as `lean` commands set it up
    print(machine_line())
    rng = np.random.default_rng(0)
    for c, k, hw, stride in [(16, 16, 32, 1), (32, 32, 16, 1), (64, 64, 8, 1), (16, 32, 32, 2)]:
        xq = rng.integers(-127, 128, (128, hw, hw, c)).astype(np.int8)
        wq = rng.integers(-127, 128, (k, c, 3, 3)).astype(np.int8)
        xf, wf = xq.astype(np.float32), wq.astype(np.float32)

        def int8_conv(xq=xq, wq=wq, stride=stride):
            return kernels.int8_conv2d(xq, 0.01, wq, 0.01, stride, 1)

        def float_conv(xf=xf, wf=wf, stride=stride):
            return kernels.conv2d_forward(xf, wf, None, stride, 1)

        int8_conv()
        float_conv()
        a, b = [], []
        for _ in range(args.reps):
            for fn, sink in ((int8_conv, a), (float_conv, b)):
                t0 = time.perf_counter()
                fn()
                sink.append(time.perf_counter() - t0)
        float_method = kernels.conv2d_method(c, k, 1, stride, np.float32, 3)
        print(f"{c:>2} -> {k:>2} channels, {hw}x{hw}, stride {stride}, batch 128: int8 ({auto_int8_method(9 * c)}) "
              f"{1e3 * np.median(a):.2f} ms, float32 ({float_method}) "
              f"{1e3 * np.median(b):.2f} ms, float32 / int8 = {np.median(b) / np.median(a):.2f}")


if __name__ == "__main__":
    main()
