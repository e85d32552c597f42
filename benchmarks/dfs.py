"""Dynamic fractional skipping on a CIFAR-style ResNet on Fashion-MNIST: accuracy at the target computation
against the full-precision network and static networks of the same cover, and the wall-clock speed-up of
inference next to the counted one; one (seed, schedule, target) per call (issue 15).

    python benchmarks/dfs.py --seed S --epochs E [--target 0.5] [--net resnet38] [--width 0.5]
        [--train-limit 10000] [--bits 8,10,12,14,16] [--on-plain EPOCHS] [--jobs 2] [--threads T] [--rerun-plain]
        [--evaluate-only] [--out-dir runs/dfs]
    python benchmarks/dfs.py --summary

A call trains, with the same net, data, seed and number of epochs, side by side on one thread each:
- the plain network (`lean train ...`): the full-precision reference (trained once per seed and schedule: a later
  call with another target reuses its checkpoint and stored accuracy, unless --rerun-plain);
- the DFS network (`lean train ... --dfs T`): its three phases inside the same epochs (half base, a twentieth
  gates alone, the rest jointly; `lean train --help`); with `--on-plain N`, the authors' protocol instead: the
  plain network is phase 1 (`--init plain.h5 --dfs-base-epochs 0`), then 1 epoch of gates alone and N - 1 jointly.
Then, in this process, on the test set: the DFS network as trained (accuracy, the paper's computation percentage,
the choices); the same network with every gate forced to full precision; and static networks made from the plain
one, with every gated block (all residual blocks but the first, DFS's cover) at one bit width b (weights and
inputs, post-training, input ranges from 500 training images), whose computation is (b/32)^2 on the paper's
measure; and the DFS network itself with every gate forced to one bit width (what the gates add over a static
choice on the same weights). Wall clock: the test set through the DFS network and through the same network forced
to full precision (median of 3 passes each, one thread unless --threads), next to the counted speed-ups: MACs
executed (what skipping saves on any CPU) and bit-operations (the paper's measure, what a bit-flexible accelerator
would save). Only the 8-bit option has a faster kernel here (the int8 conv path); wider options run as float.

The row appended to benchmarks/results/dfs.jsonl holds every figure; `--summary` prints the table.
"""

import argparse
import datetime
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from _runs import (
    append_result,
    last_row_where,
    latest_per_seed,
    lean_json,
    machine_line,
    one_configuration,
    read_results,
    side_by_side,
    spread,
)

RESULTS = Path(__file__).resolve().parent / "results" / "dfs.jsonl"
STATIC_BITS = (4, 6, 8, 16)


class _MacCounter:
    """An observer counting conv and linear MACs of evaluation passes, plain and weighted by (bits/32)^2."""

    def __init__(self):
        self.macs = 0
        self.bitops = 0.0

    def on_forward(self, module, x, y, train):
        from lean.train.energy import EnergyMeter

        macs = EnergyMeter.layer_macs(module, x.shape, y.shape)  # conv and linear layers only are watched
        bits = module.input_bits or 32
        self.macs += macs
        self.bitops += macs * (bits / 32.0) ** 2

    def on_backward(self, module, dy, dx):
        pass


def _watch(model, counter):
    from lean.nn import Conv2d, Linear

    watched = []
    for module in model.net.modules():
        for m in (module, *getattr(module, "shadow_modules", list)()):
            if isinstance(m, (Conv2d, Linear)):
                m.add_observer(counter)
                watched.append(m)
    return watched


def _evaluate(model, dataset, normalize):
    from lean.train import accuracy

    return accuracy(model, dataset.x_test, dataset.y_test, normalize)


def _timed(model, dataset, normalize, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _evaluate(model, dataset, normalize)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(args):
    import lean
    from lean.data import load
    from lean.dynamic import add_dfs_gates, controller, dfs_blocks
    from lean.dynamic.dfs import computation_of
    from lean.nn import load_model
    from lean.nn.checkpoint import load as load_checkpoint

    started = time.time()
    out = Path(args.out_dir) / f"{args.net}-w{args.width:g}-{args.train_limit}-{args.epochs}ep-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    common = ["--net", args.net, "--width", args.width, "--data", args.data, "--epochs", args.epochs,
              "--train-limit", args.train_limit, "--seed", args.seed, "--eval-every", args.epochs, "--force"]
    runs = {"plain": [], "dfs": ["--dfs", args.target, "--dfs-bits", args.bits]}
    stem = f"dfs-{args.target:g}" + (f"-on-plain{args.on_plain}" if args.on_plain else "")
    files = {"plain": out / "plain.h5", "dfs": out / f"{stem}.h5"}
    if args.on_plain:  # the authors' protocol: the gates on the trained base network, then jointly
        runs["dfs"] = [*runs["dfs"], "--init", files["plain"], "--dfs-base-epochs", 0, "--dfs-gate-epochs", 1]
    threads = args.threads if args.threads is not None else 1 if args.jobs > 1 else None
    stored = None if args.rerun_plain or not files["plain"].exists() else last_row_where(
        RESULTS, {k: getattr(args, k) for k in ("net", "width", "data", "train_limit", "epochs", "seed")})
    labels = ("dfs",) if stored else ("dfs", "plain")
    if stored:
        print(f"plain network: this seed and schedule's run from {stored['date']} ({files['plain']}; --rerun-plain "
              "to train it again)")
    again = None
    if args.evaluate_only:  # the trained networks of an earlier call: only the evaluation and the timing again
        again = last_row_where(RESULTS, {k: getattr(args, k) for k in ("net", "width", "data", "train_limit",
                                                                      "epochs", "seed", "target", "bits",
                                                                      "on_plain")})
        if again is None or stored is None or not files["dfs"].exists():
            sys.exit("--evaluate-only needs an earlier call's networks for this seed, schedule and target")
        labels = ()
    def train(label):
        settings = common if label == "plain" or not args.on_plain else [
            *common[:common.index("--epochs")], "--epochs", args.on_plain, *common[common.index("--epochs") + 2:]]
        if label == "dfs" and args.on_plain:
            settings = [*settings[:settings.index("--eval-every")], "--eval-every", args.on_plain,
                        *settings[settings.index("--eval-every") + 2:]]
        return label, lean_json("train", *settings, *runs[label], "--out", files[label], threads=threads)

    tasks = [lambda label=label: train(label) for label in labels]
    if args.on_plain and len(tasks) == 2:  # the DFS run starts from the plain one: one after the other
        trained = dict(side_by_side([lambda: [task() for task in reversed(tasks)]], jobs=1)[0])
    else:
        trained = dict(side_by_side(tasks, jobs=max(1, min(args.jobs, len(tasks)))))
    if stored:
        trained["plain"] = ({"test_accuracy": stored["plain_accuracy"]}, stored["train_wall_s"]["plain"])
    if again is not None:
        trained["dfs"] = ({"dfs_phases": again["phases"]}, again["train_wall_s"]["dfs"])

    lean.configure(threads=args.threads or 1)
    ckpt = load_checkpoint(files["dfs"])
    dataset = load(args.data)
    normalize = lambda x: dataset.normalize(x, ckpt.mean, ckpt.std)  # noqa: E731
    model = load_model(files["dfs"])
    ctrl = controller(model)
    counter = _MacCounter()
    _watch(model, counter)
    for _, block in dfs_blocks(model):
        block.reset_counts()
    ctrl.mode = "free"
    dfs_accuracy = _evaluate(model, dataset, normalize)
    counts = [b.counts.copy() for _, b in dfs_blocks(model)]
    computation = computation_of(counts, ctrl.bits)
    report = ctrl.dynamic_report(model)["dfs"]
    dfs_macs, dfs_bitops = counter.macs, counter.bitops
    counter.macs, counter.bitops = 0, 0.0
    ctrl.mode = "full"
    full_accuracy = _evaluate(model, dataset, normalize)
    full_macs, full_bitops = counter.macs, counter.bitops

    own_static = {}  # the DFS network itself with every gate forced to one bit width: what the gates add
    for b in ctrl.bits:
        ctrl.mode = str(b)
        own_static[str(b)] = _evaluate(model, dataset, normalize)

    ctrl.mode = "free"
    wall_dfs = _timed(model, dataset, normalize)
    ctrl.mode = "full"
    wall_full = _timed(model, dataset, normalize)

    plain = load_model(files["plain"])
    calibration = normalize(dataset.x_train[:500])
    static = {}
    for b in STATIC_BITS:
        fixed = add_dfs_gates(plain, bits=(b,))
        controller(fixed).mode = str(b)
        fixed.forward(calibration)  # post-training input ranges
        static[str(b)] = {"accuracy": _evaluate(fixed, dataset, normalize), "computation": (b / 32.0) ** 2}

    from lean.kernels import MADD_AVAILABLE, VNNI_AVAILABLE

    row = {"net": args.net, "width": args.width, "data": args.data, "train_limit": args.train_limit,
           "epochs": args.epochs, "seed": args.seed, "target": args.target, "bits": args.bits,
           "on_plain": args.on_plain,
           "date": datetime.date.today().isoformat(), "minutes": (time.time() - started) / 60,
           "machine": machine_line(),
           "int8_path": "AVX-512 VNNI" if VNNI_AVAILABLE else "AVX2 vpmaddwd" if MADD_AVAILABLE else "exact float",
           "plain_accuracy": trained["plain"][0]["test_accuracy"], "dfs_accuracy": dfs_accuracy,
           "dfs_full_accuracy": full_accuracy, "computation": computation,
           "computation_macs_weighted": report["computation_macs_weighted"], "choices": report["choices"],
           "phases": trained["dfs"][0]["dfs_phases"], "static": static, "dfs_forced": own_static,
           "train_wall_s": {label: wall for label, (_, wall) in trained.items()},
           "wall": {"threads": args.threads or 1, "full_s": wall_full, "dfs_s": wall_dfs,
                    "measured_speedup": wall_full / wall_dfs, "counted_mac_speedup": full_macs / dfs_macs,
                    "counted_bitop_speedup": full_bitops / dfs_bitops}}
    append_result(RESULTS, row)
    print()
    summary([row])


def summary(rows=None):
    keys = ("net", "width", "data", "train_limit", "bits", "epochs", "on_plain", "target", "seed")
    rows = latest_per_seed(read_results(RESULTS), keys) if rows is None else rows  # a rerun replaces its row
    groups = defaultdict(list)
    for r in rows:
        groups[(r["net"], r["width"], r["data"], r["train_limit"], r["bits"], r.get("on_plain"))].append(r)
    for (net, width, data, limit, bits, on_plain), group in sorted(groups.items(), key=str):
        how = ("its three phases inside the plain run's epochs" if not on_plain else
               f"from the plain network (--init), 1 epoch of gates alone and {on_plain - 1} jointly")
        print(f"{net} (width {width:g}) on {data} (first {limit} images); DFS options skip, {bits}, full; DFS: {how}")
        print(f"  {'epochs':>6} {'target':>6} {'seeds':>5} {'plain':>22} {'DFS':>22} {'DFS forced full':>22} "
              f"{'computation':>22} {'vs plain':>22}")
        by = defaultdict(list)
        for r in group:
            by[(r["epochs"], r["target"])].append(r)
        for (epochs, target), rs in sorted(by.items()):
            def pct(key, rs=rs):
                return spread([100 * r[key] for r in rs], "{:.2f}")

            print(f"  {epochs:>6} {target:>6g} {len(rs):>5} {pct('plain_accuracy'):>22} {pct('dfs_accuracy'):>22} "
                  f"{pct('dfs_full_accuracy'):>22} "
                  f"{spread([100 * r['computation'] for r in rs], '{:.1f}%'):>22} "
                  f"{spread([100 * (r['plain_accuracy'] - r['dfs_accuracy']) for r in rs], '{:+.2f}'):>22}")
            for b in STATIC_BITS:
                accs = [100 * r["static"][str(b)]["accuracy"] for r in rs if str(b) in r["static"]]
                print(f"         static {b:>2}-bit blocks (computation {100 * (b / 32) ** 2:.1f}%): "
                      f"{spread(accs, '{:.2f}')}")
            for r in rs:
                forced = r.get("dfs_forced") or {}
                if forced:
                    print(f"         seed {r['seed']}: the DFS network with every gate at one width: " + ", ".join(
                        f"{b} bits {100 * a:.2f}%" for b, a in forced.items()))
                w = r["wall"]
                print(f"         seed {r['seed']}: inference {w['full_s']:.2f} s full precision, {w['dfs_s']:.2f} s "
                      f"DFS ({w['threads']} thread): measured {w['measured_speedup']:.2f}x, counted "
                      f"{w['counted_mac_speedup']:.2f}x in MACs, {w['counted_bitop_speedup']:.2f}x in bit-"
                      f"operations; int8 path {r['int8_path']}")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", action="store_true", help="print the table from benchmarks/results and exit")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--target", type=float, default=0.5)
    ap.add_argument("--net", default="resnet38")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--bits", default="8,10,12,14,16")
    ap.add_argument("--jobs", type=int, choices=(1, 2), default=2)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--rerun-plain", action="store_true", help="train the plain network again even if stored")
    ap.add_argument("--on-plain", type=int, metavar="EPOCHS",
                    help="the authors' protocol: DFS starts from the plain network (its phase 1) and trains this many "
                         "epochs of gates alone (1) and jointly (the rest)")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="evaluate and time the networks of an earlier call again (on a quiet machine)")
    ap.add_argument("--out-dir", default="runs/dfs")
    one_configuration(ap, ("seed", "epochs"), run, summary)


if __name__ == "__main__":
    sys.exit(main())
