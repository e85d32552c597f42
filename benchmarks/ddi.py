"""Dual dynamic inference on a CIFAR-style ResNet (or DenseNet) on Fashion-MNIST: MACs saved at the plain
network's accuracy, the accuracy-budget curve with the most any image used, and the measured speed-up of
inference next to the counted one; one (seed, schedule, target) per call (issue 15).

    python benchmarks/ddi.py --seed S --epochs E [--ddi-epochs N] [--target 0.5] [--net resnet38] [--width 0.5]
        [--train-limit 10000] [--exits 4] [--beta 20] [--ddi-lr 0.02] [--threads T] [--rerun-plain]
        [--evaluate-only] [--out-dir runs/ddi]
    python benchmarks/ddi.py --summary

A call trains, with the same net, data and seed:
- the plain network (`lean train ...`, E epochs): the reference (trained once per seed and schedule: a later call
  reuses its checkpoint and stored accuracy, unless --rerun-plain);
- the DDI network from it (`lean train ... --init plain.h5 --ddi T --epochs N --lr L`): gates and exits added to
  the trained network, then trained jointly with the authors' loss (main and exit cross-entropies, cost term);
- the control: the plain network trained the same N more epochs at the same lr (`--init plain.h5 --epochs N
  --lr L`, once per seed and schedule): DDI's extra epochs alone, so the accuracy DDI is credited with is against
  a network that had them too.
Then, in this process, on the test set (one thread unless --threads; each speed-up is the median of 3 pairs of
passes, the plain network's and the DDI one's in turn, since this machine's speed drifts between minutes):
- the plain network: accuracy, MACs per image, inference time (median of 3 passes);
- the DDI network without a budget (every image to the last exit, channels as its gates decide): accuracy, share
  of the network's MACs run, MACs per image with the gates' own, inference time with each way of dropping
  channels (union, pattern, image; median of 3);
- the same weights with every channel kept (a diagnostic only: the batch norms after the gated channels learned
  the statistics of the masked network, so this is not a network anyone would run);
- budgeted halting (`lean eval --budgets`) from the smallest budget to beyond the full network: accuracy, MACs
  used per image (mean and max, never above the budget), images per exit, inference time.
The row appended to benchmarks/results/ddi.jsonl holds every figure; `--summary` prints the table. The saving
credited to DDI is against the plain network (the control) at equal or better accuracy.
"""

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _runs import (
    append_result,
    last_row_where,
    latest_per_seed,
    lean_json,
    machine_line,
    one_configuration,
    read_results,
)

RESULTS = Path(__file__).resolve().parent / "results" / "ddi.jsonl"


def _median_time(fn, repeats=3):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _against_plain(plain_fn, fn, repeats=3):
    """The plain network and ``fn`` timed in turn, ``repeats`` pairs (the machine's speed drifts between
    minutes, so each ratio compares neighbours): (median seconds of fn, median of the pairs' speed-ups, fn's
    result)."""
    seconds, ratios, out = [], [], None
    for _ in range(repeats):
        plain_s, _ = _median_time(plain_fn, 1)
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
        ratios.append(plain_s / seconds[-1])
    return statistics.median(seconds), statistics.median(ratios), out


def run(args):
    import lean
    from lean.data import load
    from lean.dynamic.ddi import HaltingPlan, budgeted_predict, controller, ddi_blocks, trace_macs
    from lean.nn import load_model
    from lean.nn.checkpoint import load as load_checkpoint

    started = time.time()
    out = Path(args.out_dir) / f"{args.net}-w{args.width:g}-{args.train_limit}-{args.epochs}ep-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    common = ["--net", args.net, "--width", args.width, "--data", args.data, "--train-limit", args.train_limit,
              "--seed", args.seed, "--force"]
    files = {"plain": out / "plain.h5",
             "control": out / f"plain-plus{args.ddi_epochs}ep-lr{args.ddi_lr:g}.h5",
             "ddi": out / f"ddi-{args.target:g}-{args.ddi_epochs}ep-beta{args.beta:g}-x{args.exits}.h5"}
    threads = args.threads or 1
    same_plain = {k: getattr(args, k) for k in ("net", "width", "data", "train_limit", "epochs", "seed")}
    stored = None if args.rerun_plain or not files["plain"].exists() else last_row_where(RESULTS, same_plain)
    trained = {}
    if stored:
        print(f"plain network: this seed and schedule's run from {stored['date']} ({files['plain']})")
        trained["plain"] = stored["train_wall_s"]["plain"]
    elif not args.evaluate_only:
        trained["plain"] = lean_json("train", *common, "--epochs", args.epochs, "--eval-every", args.epochs,
                                     "--out", files["plain"], threads=threads)[1]
    else:
        sys.exit("--evaluate-only needs an earlier call's networks")
    if args.evaluate_only:
        again = last_row_where(RESULTS, {**same_plain, "target": args.target, "ddi_epochs": args.ddi_epochs,
                                         "beta": args.beta, "exits": args.exits})
        if again is None or not files["ddi"].exists():
            sys.exit("--evaluate-only needs an earlier call's networks for this seed, schedule and target")
        trained["ddi"] = again["train_wall_s"]["ddi"]
    else:
        trained["ddi"] = lean_json("train", *common, "--epochs", args.ddi_epochs, "--eval-every", args.ddi_epochs,
                                   "--init", files["plain"], "--ddi", args.target, "--ddi-beta", args.beta,
                                   "--ddi-exits", args.exits, "--lr", args.ddi_lr, "--out", files["ddi"],
                                   threads=threads)[1]
    if not files["control"].exists():
        trained["control"] = lean_json("train", *common, "--epochs", args.ddi_epochs, "--eval-every",
                                       args.ddi_epochs, "--init", files["plain"], "--lr", args.ddi_lr, "--out",
                                       files["control"], threads=threads)[1]

    lean.configure(threads=threads)
    dataset = load(args.data)
    ckpt = load_checkpoint(files["ddi"])
    x = dataset.normalize(dataset.x_test, ckpt.mean, ckpt.std)
    y = dataset.y_test
    plain_ckpt = load_checkpoint(files["plain"])
    x_plain = dataset.normalize(dataset.x_test, plain_ckpt.mean, plain_ckpt.std)
    plain = load_model(files["plain"])
    plain_macs = float(sum(trace_macs(plain).values()))
    plain_s, logits = _median_time(lambda: plain.predict(x_plain))
    plain_accuracy = float((logits.argmax(axis=1) == y).mean())
    control_ckpt = load_checkpoint(files["control"])
    control_x = dataset.normalize(dataset.x_test, control_ckpt.mean, control_ckpt.std)
    control_accuracy = float((load_model(files["control"]).predict(control_x).argmax(axis=1) == y).mean())

    model = load_model(files["ddi"])
    ctrl = controller(model)
    plan = HaltingPlan(model)
    walls, speedups = {}, {}
    for granularity in ("union", "pattern", "image"):
        ctrl.granularity = granularity
        ctrl.reset_counts()
        walls[granularity], speedups[granularity], logits = _against_plain(
            lambda: plain.predict(x_plain), lambda: model.predict(x), repeats=3 if granularity != "image" else 1)
    ctrl.granularity = "union"
    ctrl.reset_counts()
    logits = model.predict(x)
    dynamic_accuracy = float((logits.argmax(axis=1) == y).mean())
    computation = ctrl.computation()
    gate_macs = sum(b.costs(*b.input_hw)["gate"] for _, b in ddi_blocks(model))
    dynamic_macs = computation * plan.full_macs + gate_macs  # MACs per image with the gates' own
    with ctrl.all_run():
        full_accuracy = float((model.predict(x).argmax(axis=1) == y).mean())

    fractions = np.unique(np.round(np.concatenate([
        [plan.smallest / plan.full_macs], np.linspace(plan.smallest / plan.full_macs, 1.0, 8)[1:],
        [plan.most[-1] / plan.full_macs]]), 4))
    curve = []
    for f in fractions:
        budget = max(float(f) * plan.full_macs, plan.smallest)
        seconds, speedup, result = _against_plain(lambda: plain.predict(x_plain),
                                                  lambda budget=budget: budgeted_predict(model, x, budget, plan=plan))
        exits = np.bincount(result["exit"], minlength=len(plan.exit_names))
        curve.append({"budget": budget / plan.full_macs, "budget_macs": budget,
                      "accuracy": float((result["logits"].argmax(axis=1) == y).mean()),
                      "macs_mean": float(result["macs"].mean()), "macs_max": float(result["macs"].max()),
                      "over_budget": int((result["macs"] > budget).sum()),
                      "exits": dict(zip(plan.exit_names, exits.tolist(), strict=True)), "seconds": seconds,
                      "measured_speedup": speedup})
        print(f"budget {budget / plan.full_macs:.3f}: accuracy {100 * curve[-1]['accuracy']:.2f}%, MACs used "
              f"{curve[-1]['macs_mean'] / plan.full_macs:.3f} mean, {curve[-1]['macs_max'] / plan.full_macs:.3f} "
              f"max, {seconds:.2f} s", flush=True)

    row = {"net": args.net, "width": args.width, "data": args.data, "train_limit": args.train_limit,
           "epochs": args.epochs, "seed": args.seed, "target": args.target, "ddi_epochs": args.ddi_epochs,
           "beta": args.beta, "exits": args.exits, "ddi_lr": args.ddi_lr,
           "date": datetime.date.today().isoformat(), "minutes": (time.time() - started) / 60,
           "machine": machine_line(), "threads": threads,
           "plain_accuracy": plain_accuracy, "plain_macs": plain_macs, "plain_s": plain_s,
           "control_accuracy": control_accuracy,
           "full_macs": plan.full_macs, "smallest_budget_macs": plan.smallest, "exit_names": plan.exit_names,
           "exit_worst_macs": plan.most,
           "dynamic_accuracy": dynamic_accuracy, "dynamic_computation": computation, "dynamic_macs": dynamic_macs,
           "full_accuracy": full_accuracy, "dynamic_s": walls, "dynamic_speedup": speedups, "curve": curve,
           "train_wall_s": trained}
    append_result(RESULTS, row)
    print()
    summary([row])


def _at_accuracy(row, reference):
    """The cheapest budget of the curve whose accuracy reaches ``reference``: (row of the curve, MAC saving)."""
    fits = [c for c in row["curve"] if c["accuracy"] >= reference]
    if not fits:
        return None, None
    best = min(fits, key=lambda c: c["macs_mean"])
    return best, row["plain_macs"] / best["macs_mean"]


def summary(rows=None):
    keys = ("net", "width", "data", "train_limit", "epochs", "ddi_epochs", "target", "beta", "exits", "seed")
    rows = latest_per_seed(read_results(RESULTS), keys) if rows is None else rows
    for r in rows:
        full = r["full_macs"]
        print(f"{r['net']} (width {r['width']:g}) on {r['data']} (first {r['train_limit']} images), seed {r['seed']}: "
              f"plain {r['epochs']} epochs, then DDI {r['ddi_epochs']} epochs from it (target {r['target']:g}, beta "
              f"{r['beta']:g}, {len(r['exit_names']) - 1} exits, lr {r['ddi_lr']:g}); {r['threads']} thread")
        print(f"  plain network: {100 * r['plain_accuracy']:.2f}%, {r['plain_macs'] / 1e6:.2f} M MACs per image, "
              f"{r['plain_s']:.2f} s for the test set; trained {r['ddi_epochs']} epochs more (the control): "
              + ("-" if r.get("control_accuracy") is None else f"{100 * r['control_accuracy']:.2f}%"))
        print(f"  DDI, no budget: {100 * r['dynamic_accuracy']:.2f}%, {100 * r['dynamic_computation']:.1f}% of the "
              f"MACs run ({r['dynamic_macs'] / 1e6:.2f} M per image with the gates); the same weights with every "
              f"channel kept: {100 * r['full_accuracy']:.2f}%")
        walls = r["dynamic_s"]
        speedups = r.get("dynamic_speedup") or {g: r["plain_s"] / s for g, s in walls.items()}
        print("  inference time, no budget: " + ", ".join(f"{g} {s:.2f} s ({speedups[g]:.2f}x)"
                                                          for g, s in walls.items())
              + f"; counted {r['plain_macs'] / r['dynamic_macs']:.2f}x")
        print(f"  {'budget':>7} {'accuracy':>9} {'MACs mean':>10} {'max':>6} {'over':>5} {'counted':>8} "
              f"{'measured':>9}  images per exit ({', '.join(r['exit_names'])})")
        for c in r["curve"]:
            print(f"  {c['budget']:7.3f} {100 * c['accuracy']:8.2f}% {c['macs_mean'] / full:10.3f} "
                  f"{c['macs_max'] / full:6.3f} {c['over_budget']:5d} {r['plain_macs'] / c['macs_mean']:7.2f}x "
                  f"{c.get('measured_speedup', r['plain_s'] / c['seconds']):8.2f}x  "
                  + " ".join(str(v) for v in c["exits"].values()))
        references = [("the plain network", r["plain_accuracy"]), ("DDI without a budget", r["dynamic_accuracy"])]
        if r.get("control_accuracy") is not None:
            references.insert(1, ("the control", r["control_accuracy"]))
        for label, reference in references:
            best, saving = _at_accuracy(r, reference)
            print(f"  at the accuracy of {label} ({100 * reference:.2f}%): " + (
                "no budget reaches it" if best is None else
                f"budget {best['budget']:.3f}, {100 * best['accuracy']:.2f}%, {saving:.2f}x fewer MACs than the "
                f"plain network (measured {best.get('measured_speedup', r['plain_s'] / best['seconds']):.2f}x faster)"))
        print(f"  machine: {r['machine']}")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", action="store_true", help="print the table from benchmarks/results and exit")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--epochs", type=int, help="epochs of the plain network")
    ap.add_argument("--ddi-epochs", type=int, default=15, help="epochs of DDI training from the plain network")
    ap.add_argument("--target", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=20.0)
    ap.add_argument("--exits", type=int, default=4)
    ap.add_argument("--ddi-lr", type=float, default=0.02)
    ap.add_argument("--net", default="resnet38")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rerun-plain", action="store_true")
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument("--out-dir", default="runs/ddi")
    one_configuration(ap, ("seed", "epochs"), run, summary)


if __name__ == "__main__":
    main()
