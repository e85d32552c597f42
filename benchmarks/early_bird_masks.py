"""Why an early-bird ticket appears when it does: the batch-norm scales of a slimmed run, epoch by epoch (issue 14).

    python benchmarks/early_bird_masks.py --seed S --epochs E [--stop-after K] [--lr LR] [--schedule S]
        [--bn-init G] [--slim 1e-4] [--batch-size B] [--weight-decay 1e-4] [--net vgg11 --width 0.5
        --train-limit 10000]                          # one dense slimmed run: its scales go to results/eb_scales/
    python benchmarks/early_bird_masks.py --summary   # every stored run under the early-bird rules

One call trains the dense slimmed net (what the early-bird search phase trains until its ticket) for the first
``--stop-after`` epochs of an ``--epochs`` schedule and stores every batch norm's scales before training and
after each epoch (a small .npz under benchmarks/results/eb_scales/, keyed by the recipe). ``--summary`` then runs
the early-bird detectors offline over every stored run: for each prune ratio the authors' rule (masks over every
batch norm, FIFO of 5, distance <= 0.1), the epoch of the ticket and the largest distance in the window at each
epoch; the same masks drawn from the scales averaged over the last epochs; and how many channels sit near the
threshold (the ones whose flips make the distance), so the table shows what the ticket's epoch depends on.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

STORE = Path(__file__).parent / "results" / "eb_scales"


def train(args):
    from lean.compress.config import SlimmingConfig
    from lean.data import load as load_data
    from lean.errors import TrainingInterrupted
    from lean.nets import build
    from lean.nn import BatchNorm
    from lean.train.config import TrainConfig
    from lean.train.loop import Trainer
    from lean.train.methods import TrainingMethod
    from lean.train.run import set_batchnorm_scales

    given = {k: v for k, v in (("lr", args.lr), ("schedule", args.schedule), ("batch_size", args.batch_size))
             if v is not None}
    config = TrainConfig(net=args.net, data=args.data, epochs=args.epochs, train_limit=args.train_limit,
                         seed=args.seed, width=args.width, weight_decay=args.weight_decay, bn_init=args.bn_init,
                         eval_every=max(1, args.stop_after), methods=(SlimmingConfig(strength=args.slim),), **given)
    recipe = {"net": args.net, "width": args.width, "data": args.data, "train_limit": args.train_limit,
              "epochs": args.epochs, "lr": config.lr, "schedule": config.schedule, "batch_size": config.batch_size,
              "weight_decay": config.weight_decay, "bn_init": args.bn_init or 1.0, "slim": args.slim}
    dataset = load_data(config.data)
    model = build(config.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes, seed=config.seed,
                  width=config.width)
    if args.bn_init is not None:
        set_batchnorm_scales(model, args.bn_init)
    scales = []

    def take(net):  # every batch norm's |gamma|, in network order
        bns = [m for _, m in net.named_modules() if isinstance(m, BatchNorm)]
        scales.append(np.concatenate([np.abs(bn.params["weight"]).ravel() for bn in bns]).astype(np.float32))

    class Recorder(TrainingMethod):
        name = "recorder"

        def install(self, model):
            if not scales:  # the untrained net (the authors' first mask)
                take(model.net)

        def on_epoch_end(self, trainer):
            take(trainer.model.net)
            if len(scales) > args.stop_after:
                raise KeyboardInterrupt

    trainer = Trainer(model, dataset, config, out=None, methods=[Recorder()])
    try:
        trainer.run()
    except TrainingInterrupted:  # the recorder's stop after --stop-after epochs
        pass
    STORE.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    path = STORE / f"{args.net}-{args.epochs}ep-seed{args.seed}-{tag}.npz"
    np.savez_compressed(path, scales=np.stack(scales), recipe=json.dumps(recipe), seed=args.seed)
    print(f"{len(scales) - 1} epochs of scales -> {path}")


def masks_of(scales, ratio):
    """The authors' masks: keep the scales above sorted(scales)[int(total * ratio)] (every batch norm pooled)."""
    threshold = np.sort(scales)[int(scales.size * ratio)]
    return scales > threshold


def ticket(masks, window=5, epsilon=0.1):
    """lean's detector (``lean.compress.slimming.EarlyBird``) over ``masks`` (masks[e] drawn after epoch e;
    masks[0] the untrained net): the ticket's epoch and each epoch's largest distance to the newest mask in the
    FIFO (None before the FIFO is full)."""
    from lean.compress.slimming import EarlyBird

    detector = EarlyBird(window=window, epsilon=epsilon)
    for epoch, m in enumerate(masks):
        detector.observe(m, epoch)
    largest = [d if i >= window - 1 else None for i, d in enumerate(detector.distances)]
    return detector.ticket_epoch, largest


def summary(window, epsilon):
    runs = sorted(STORE.glob("*.npz"))
    if not runs:
        print(f"nothing stored under {STORE}")
        return
    groups = {}
    for path in runs:
        data = np.load(path)
        recipe = json.loads(str(data["recipe"]))
        key = json.dumps(recipe, sort_keys=True)
        groups.setdefault(key, []).append((int(data["seed"]), data["scales"]))
    for key, seeds in groups.items():
        r = json.loads(key)
        print(f"{r['net']} width {r['width']:g}, {r['train_limit']} images, {r['epochs']}-epoch {r['schedule']} "
              f"lr {r['lr']:g}, batch {r['batch_size']}, wd {r['weight_decay']:g}, bn start {r['bn_init']:g}, "
              f"slim {r['slim']:g}")
        for seed, scales in sorted(seeds, key=lambda s: s[0]):
            print(f"  seed {seed}: {len(scales) - 1} epochs")
            for ratio in (0.3, 0.5, 0.7):
                masks = [masks_of(s, ratio) for s in scales]
                found, largest = ticket(masks, window, epsilon)
                # averaging the scales over the last 3 draws (a smoothed mask)
                smooth = [masks_of(np.mean(scales[max(0, e - 2):e + 1], axis=0), ratio) for e in range(len(scales))]
                found_s, _ = ticket(smooth, window, epsilon)
                near = [np.mean(np.abs(s - np.sort(s)[int(s.size * ratio)]) < 0.02 * np.median(s)) for s in scales]
                text = " ".join("  -  " if d is None else f"{d:.3f}" for d in largest)
                print(f"    {ratio:g}: ticket {found}, smoothed {found_s}; near threshold {near[-1]:.3f}; "
                      f"distances {text}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=48)
    ap.add_argument("--stop-after", type=int, default=24)
    ap.add_argument("--net", default="vgg11")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--schedule")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--bn-init", type=float)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--slim", type=float, default=1e-4)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--epsilon", type=float, default=0.1)
    args = ap.parse_args()
    if args.summary:
        summary(args.window, args.epsilon)
    else:
        train(args)


if __name__ == "__main__":
    main()
