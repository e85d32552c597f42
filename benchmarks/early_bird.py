"""Early-bird tickets against train-then-prune-then-retrain (network slimming) on Fashion-MNIST (issue 5).

    python benchmarks/early_bird.py [--net vgg11] [--width 0.5] [--epochs 90] [--train-limit 10000] [--lr 0.05]
                                    [--ratio 0.5] [--bn-init G] [--eval-every 10] [--out-dir runs/eb]

Defaults: VGG-11 at half width (the plain VGG family is the paper's main case; a net with spare channels, as
the paper's are: in ResNet-20 on this data every channel's scale sat in a narrow band and the masks kept
flipping), the first 10,000 training images, 90 epochs (a long schedule of short epochs, as the paper's 160
CIFAR epochs are long next to their ticket: 30 epochs of 30,000 images, the same number of steps, put the
ticket at epoch 10, a third of the way), lr 0.05 cosine, the authors' slimming strength 1e-4, window 5 and
epsilon 0.1, the test set every 10 epochs.

Three runs of the same net and schedule, each an ordinary `lean` command printed before it runs:
1. dense training with the slimming penalty (the unpruned baseline, and the first half of the pipeline);
2. `lean prune` of (1) at the ratio, then re-training of the pruned net for the same number of epochs (the
   length of the authors' baseline: GATECH-EIC/Early-Bird-Tickets, scripts/standard-train/retrain_scratch.sh,
   re-trains the pruned net for the whole 160-epoch schedule, from new weights where lean fine-tunes the kept
   ones; their early-bird re-training, retrain_continue.sh, continues the schedule from the ticket's epoch, as
   (3) does);
3. `lean train --slim --early-bird`: dense until the ticket appears, then pruned, to the end of the schedule.
Prints the ticket epoch, accuracies, and training energy (lean's estimate) and wall time of (1)+(2) against (3),
next to the issue's targets.
"""

import argparse
import time
from pathlib import Path

from _runs import lean_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="vgg11")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=90)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--ratio", type=float, default=0.5, help="the ratio pruned at (and by the pipeline)")
    ap.add_argument("--ratios", default="0.3,0.5,0.7", help="the tickets drawn in the early-bird run (authors')")
    ap.add_argument("--slim", type=float, default=1e-4)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eb-window", type=int, default=5)
    ap.add_argument("--eb-epsilon", type=float, default=0.1)
    ap.add_argument("--bn-init", type=float, default=None, help="batch-norm scales at the start (authors' code: 0.5)")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--out-dir", default="runs/eb")
    args = ap.parse_args()
    started = time.time()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--net", args.net, "--width", args.width, "--data", args.data, "--epochs", args.epochs,
              "--train-limit", args.train_limit, "--lr", args.lr, "--weight-decay", "1e-4", "--schedule", "cosine",
              "--slim", args.slim, "--eval-every", args.eval_every, "--force",
              *([] if args.bn_init is None else ["--bn-init", args.bn_init])]

    dense, dense_wall = lean_json("train", *common, "--out", out / "dense.h5")
    pruned, prune_wall = lean_json("prune", out / "dense.h5", "--ratio", args.ratio, "-o", out / "pruned.h5",
                                   "--force")
    retrained, retrain_wall = lean_json("train", "--resume", out / "pruned.h5", "--epochs", args.epochs,
                                        "--out", out / "retrained.h5", "--force")
    ratios = args.ratios if f"{args.ratio:g}" in args.ratios.split(",") else f"{args.ratios},{args.ratio:g}"
    eb, eb_wall = lean_json("train", *common, "--early-bird", ratios, "--eb-prune-ratio", args.ratio,
                            "--eb-window", args.eb_window, "--eb-epsilon", args.eb_epsilon,
                            "--out", out / "early-bird.h5")

    pipeline_energy = dense["training_energy_j"] + retrained["training_energy_j"]
    pipeline_wall = dense_wall + prune_wall + retrain_wall
    ticket = eb["early_bird_epoch"]
    print(f"\n{args.net} on {args.data} (first {args.train_limit} training images), {args.epochs} epochs, "
          f"prune ratio {args.ratio}, {(time.time() - started) / 60:.1f} min in all")
    print("mask distances per epoch: " + " ".join(f"{d:.3f}" for d in eb["mask_distances"]))
    for ratio, t in (eb.get("early_bird_tickets") or {}).items():  # every ratio drawn in the one run
        at = "no ticket" if t["epoch"] is None else f"ticket at epoch {t['epoch']}"
        print(f"  ratio {ratio}: {at}; distances " + " ".join(f"{d:.3f}" for d in t["mask_distances"]))
    print("(the pipeline's energy counts a re-training of the whole schedule after pruning, as lean prune + "
          "--resume runs it; the authors' baseline is as long: their scripts/standard-train/retrain_scratch.sh "
          "re-trains the pruned net for the full 160 epochs)")
    print(f"{'run':<34} {'test acc':>9} {'params':>9} {'energy J':>9} {'wall s':>8}")
    print(f"{'dense (unpruned baseline)':<34} {100 * dense['test_accuracy']:>8.2f}% {dense['parameters']:>9,} "
          f"{dense['training_energy_j']:>9.1f} {dense_wall:>8.0f}")
    print(f"{'train, prune, retrain (pipeline)':<34} {100 * retrained['test_accuracy']:>8.2f}% "
          f"{retrained['parameters']:>9,} {pipeline_energy:>9.1f} {pipeline_wall:>8.0f}")
    print(f"{'early-bird':<34} {100 * eb['test_accuracy']:>8.2f}% {eb['parameters']:>9,} "
          f"{eb['training_energy_j']:>9.1f} {eb_wall:>8.0f}")
    quarter = args.epochs / 4
    drop = 100 * (dense["test_accuracy"] - eb["test_accuracy"])
    energy_ratio = pipeline_energy / eb["training_energy_j"]
    wall_ratio = pipeline_wall / eb_wall
    print("\ntargets:")
    print(f"  ticket within the first quarter (epoch <= {quarter:g}): epoch {ticket} -> "
          f"{_verdict(ticket is not None and ticket <= quarter)}")
    print(f"  EB net within 1 point of the unpruned baseline: {drop:+.2f} points lower -> {_verdict(drop <= 1)}")
    print(f"  energy >= 1.5x lower than the pipeline: {energy_ratio:.2f}x -> {_verdict(energy_ratio >= 1.5)}")
    print(f"  wall time >= 1.5x lower than the pipeline: {wall_ratio:.2f}x -> {_verdict(wall_ratio >= 1.5)}")


def _verdict(ok):
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
