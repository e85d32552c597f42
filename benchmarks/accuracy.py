"""Accuracy on real data: LeNet-5 and ResNet-20 on Fashion-MNIST, trained with `lean train`.

    python benchmarks/accuracy.py [--out-dir runs] [--nets lenet5,resnet20] [--epochs-lenet 15]
                                  [--epochs-resnet 15]

Each run is the plain command `lean train --net NET --data fashion-mnist --epochs N` (printed before it runs):
every other setting is the net's recipe (`lean nets`; lean/nets/recipes.py), so the figures are what a user
gets without options. The recipes hold the settings these figures were first measured with: LeNet-5 SGD lr
0.05, cosine, weight decay 5e-4, batch 128, no augmentation; ResNet-20 the same at lr 0.1 with random crop and
flip. Prints test accuracy, epochs and wall time next to the targets of issue 2 (LeNet-5 >= 90%, ResNet-20 >=
92.5%).
"""

import argparse
import json
from pathlib import Path

from _runs import lean_json

TARGETS = {"lenet5": 0.90, "resnet20": 0.925}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default="runs")
    ap.add_argument("--nets", default="lenet5,resnet20")
    ap.add_argument("--epochs-lenet", type=int, default=15)
    ap.add_argument("--epochs-resnet", type=int, default=15)
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for net in args.nets.split(","):
        epochs = args.epochs_lenet if net == "lenet5" else args.epochs_resnet
        out = out_dir / f"{net}-fashion-mnist.h5"
        summary, wall = lean_json("train", "--net", net, "--data", "fashion-mnist", "--epochs", epochs,
                                  "--out", out, "--force")
        rows.append((net, summary, wall))
        print(json.dumps({**summary, "wall_seconds": wall}), flush=True)
    print(f"\n{'net':<10} {'epochs':>6} {'test acc':>9} {'target':>7} {'wall':>8} {'train img/s':>12}")
    for net, s, wall in rows:
        print(f"{net:<10} {s['epochs']:>6} {100 * s['test_accuracy']:>8.2f}% {100 * TARGETS[net]:>6.1f}% "
              f"{wall / 60:>6.1f}m {s['train_images_per_second']:>12,.0f}")


if __name__ == "__main__":
    main()
