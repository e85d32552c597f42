"""Compression targets of issue 4 on a real trained model (ResNet-20 on Fashion-MNIST from benchmarks/accuracy.py).

    python benchmarks/compression.py --checkpoint runs/resnet20-fashion-mnist.h5 [--out-dir runs/compressed]
                                     [--only smartexchange,kmeans,quantize]

Re-training runs on all 60,000 training images (SmartExchange) or the first 30,000 (the others, to keep the
whole script near 40 minutes on 2 cores); the settings are in RUNS.

Every run is an ordinary `lean compress ... --json` command, printed before it runs. Prints, per run, the
compression ratio (everything needed to run the model, and conv weights alone), test accuracy before and after,
next to the targets: SmartExchange >= 10x at <= 1.0 point drop; deep k-means >= 20x conv-weight storage at
<= 1.0 point drop, with an ablation of the regularizer at equal K; 8-bit post-training <= 0.5 point drop;
4-bit with quantization-aware training <= 1.5 point drop.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNS = {
    "smartexchange": [
        ("se", ["smartexchange", "--theta", "0.07", "--retrain-epochs", "3", "--lr", "0.01"]),
    ],
    "kmeans": [
        ("km-none", ["kmeans", "--clusters", "16", "--retrain-epochs", "2", "--lr", "0.01",
                     "--train-limit", "30000"]),
        ("km-paper", ["kmeans", "--clusters", "16", "--regularize-epochs", "1", "--regularizer", "paper",
                      "--reg-lambda", "1e-4", "--retrain-epochs", "2", "--lr", "0.01", "--train-limit", "30000"]),
        ("km-indicator", ["kmeans", "--clusters", "16", "--regularize-epochs", "1", "--regularizer", "indicator",
                          "--reg-lambda", "1e-2", "--retrain-epochs", "2", "--lr", "0.01",
                          "--train-limit", "30000"]),
        # the sparsity variant: half the kernel rows of each layer share one centre, fixed through re-training
        ("km-sparse-mean", ["kmeans", "--clusters", "16", "--sparsity", "0.5", "--sparse-centre", "mean",
                            "--retrain-epochs", "2", "--lr", "0.01", "--train-limit", "30000"]),
        ("km-sparse-zero", ["kmeans", "--clusters", "16", "--sparsity", "0.5", "--sparse-centre", "zero",
                            "--retrain-epochs", "2", "--lr", "0.01", "--train-limit", "30000"]),
    ],
    "quantize": [
        ("q8-ptq", ["quantize", "--weight-bits", "8", "--activation-bits", "8", "--per-channel"]),
        ("q4-qat", ["quantize", "--weight-bits", "4", "--activation-bits", "4", "--per-channel",
                    "--qat-epochs", "2", "--lr", "0.005", "--train-limit", "30000"]),
        ("w4a8-qat", ["quantize", "--weight-bits", "4", "--activation-bits", "8", "--per-channel",
                      "--qat-epochs", "2", "--lr", "0.005", "--train-limit", "30000"]),
    ],
}
TARGETS = {"se": ("ratio", 10.0, 1.0), "km-none": ("conv", 20.0, 1.0), "km-paper": ("conv", 20.0, 1.0),
           "km-indicator": ("conv", 20.0, 1.0), "km-sparse-mean": ("conv", 20.0, 1.0),
           "km-sparse-zero": ("conv", 20.0, 1.0), "q8-ptq": ("ratio", 0.0, 0.5), "q4-qat": ("ratio", 0.0, 1.5),
           "w4a8-qat": ("ratio", 0.0, 1.5)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out-dir", default="runs/compressed")
    ap.add_argument("--only", default="smartexchange,kmeans,quantize")
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in args.only.split(","):
        for tag, options in RUNS[method]:
            cmd = ["lean", "compress", options[0], args.checkpoint, "-o", str(out_dir / f"{tag}.h5"), "--force",
                   *options[1:], "--json"]
            print("$", " ".join(cmd), flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            sys.stderr.write(proc.stderr)
            if proc.returncode:
                print(f"{tag}: failed", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((tag, r))
            print(json.dumps({k: v for k, v in r.items() if k != "layers"}), flush=True)
    print(f"\n{'run':<15} {'ratio':>7} {'conv ratio':>10} {'before':>7} {'compr.':>7} {'after':>7} {'drop':>6}  target")
    for tag, r in rows:
        kind, ratio_target, drop_target = TARGETS[tag]
        drop = 100 * (r["accuracy_before"] - r["accuracy_after"])
        ratio = r["conv_compression_ratio"] if kind == "conv" else r["compression_ratio"]
        met = ratio >= ratio_target and drop <= drop_target
        target = (f">= {ratio_target:g}x {'conv ' if kind == 'conv' else ''}at <= {drop_target} pt"
                  if ratio_target else f"<= {drop_target} pt drop")
        print(f"{tag:<15} {r['compression_ratio']:>6.1f}x {r['conv_compression_ratio']:>9.1f}x "
              f"{100 * r['accuracy_before']:>6.2f}% {100 * r['accuracy_compressed']:>6.2f}% "
              f"{100 * r['accuracy_after']:>6.2f}% {drop:>5.2f}  {target}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
