"""``lean train``, ``lean eval``, ``lean info``, ``lean demo``."""

from dataclasses import fields
from pathlib import Path

import click

from ..compress import config as _compress_methods  # noqa: F401  (registers slimming and early-bird: options)
from ..dynamic import config as _dynamic_methods  # noqa: F401  (registers DFS: options)
from ..train.config import METHODS, core_fields, methods_from_settings
from . import _common as common

_REQUIRED = {"net", "data"}


def _train_options(f):
    options = [common.field_option(fld, fld.name, required_unless="--resume" if fld.name in _REQUIRED else None)
               for fld in core_fields()]
    for cls in METHODS.values():
        options += [common.field_option(fld, f"{cls.name}__{fld.name}") for fld in fields(cls)]
    options += [
        click.option("--out", type=click.Path(dir_okay=False), help="Checkpoint to write (default NET-DATA.h5; "
                     "with --resume, the resumed file)."),
        click.option("--resume", type=click.Path(dir_okay=False), help="Continue a run from its checkpoint "
                     "(it may change --epochs, --eval-every, and --data to a moved file)."),
        click.option("--force", is_flag=True, help="Overwrite an existing --out file."),
        click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels."),
        common.json_option("the run's summary"),
    ]
    return common.apply_options(options, f)


def method_settings(given):
    """The given method options, grouped by method: ``{"early_bird": {"ratio": 0.5}, ...}`` (popped from
    ``given``)."""
    grouped = {}
    for key in [k for k in given if "__" in k]:
        name, setting = key.split("__", 1)
        grouped.setdefault(name, {})[setting] = given.pop(key)
    return grouped


@click.command()
@_train_options
@click.pass_context
def train(ctx, **_):
    """Train a network and write a checkpoint, optionally with early-bird tickets or E2-Train."""
    from .. import train as training

    given = common.given_params(ctx)
    run = {k: given.pop(k, None) for k in ("out", "resume", "force", "threads", "as_json")}
    common.configure(run["threads"])
    methods = method_settings(given)
    callbacks = common.training_callbacks(run["as_json"])
    if run["resume"]:
        changes = {**given, **({"methods": methods} if methods else {})}
        summary = training.resume(run["resume"], out=run["out"], force=bool(run["force"]),
                                  data=changes.pop("data", None), **callbacks, **changes)
    else:
        if not _REQUIRED <= set(given):
            raise click.UsageError("--net and --data are required (or --resume run.h5)")
        config = training.TrainConfig(**given, methods=methods_from_settings(methods))
        summary = training.start(config, out=run["out"], force=bool(run["force"]), **callbacks)
    common.finish(summary, run["as_json"], print_summary)


def print_summary(summary):
    click.echo(f"net {summary['net']} on {summary['data']}: test accuracy {100 * summary['test_accuracy']:.2f}% "
               f"after {summary['epochs']} epochs")
    ips = summary["train_images_per_second"]
    click.echo(f"training time {summary['seconds']:.1f}s, {ips or 0:,.0f} images/s, "
               f"{summary['parameters']:,} parameters")
    energy = summary.get("energy")
    if energy:
        parts = ", ".join(f"{k} {v['macs'] / 1e9:.2f} G MACs" for k, v in energy["by_precision"].items())
        click.echo(f"estimated training energy {summary['training_energy_j']:.3g} J (arithmetic "
                   f"{energy['arithmetic_j']:.3g}, SRAM {energy['sram_j']:.3g}, DRAM {energy['dram_j']:.3g}; "
                   f"{parts}; {summary.get('skipped_steps', 0)} steps dropped)")
    if summary.get("precision") == "bf16":
        click.echo(f"bf16 products ({summary['bf16_products']}) on {summary['bf16_layers']} of "
                   f"{summary['conv_layers']} conv layers")
    if summary.get("slu_blocks_run"):
        runs = " ".join(f"{f:.2f}" for f in summary["slu_blocks_run"].values())
        closed = summary.get("slu_blocks_closed") or []
        click.echo(f"SLU: fraction of images each gated block ran on in the last epoch: {runs}"
                   + (f"; closed (< 1%, no longer trained): {', '.join(closed)}" if closed else ""))
    if summary.get("dfs_phases"):
        base, gates, joint = summary["dfs_phases"]
        reached = summary.get("dfs_computation")
        click.echo(f"DFS: {base} epochs base network, {gates} gates alone, {joint} jointly at "
                   f"{100 * summary['dfs_target']:.0f}% computation"
                   + ("" if reached is None else f"; the last test pass ran at {100 * reached:.1f}%")
                   + " (`lean eval` gives the choices per block)")
    if "ddi_target" in summary:
        reached = summary.get("ddi_computation")
        click.echo(f"DDI: channel gates aiming at {100 * summary['ddi_target']:.0f}% of the network's MACs, "
                   f"{summary['ddi_exits']} early exits"
                   + ("" if reached is None else f"; the last test pass ran {100 * reached:.1f}%")
                   + " (`lean eval --budgets 0.2,0.4,...` gives the accuracy under budgets)")
    if summary.get("psg_fallback") is not None:
        click.echo(f"PSG: {100 * summary['psg_fallback']:.1f}% of the weight-gradient entries took the accurate "
                   "gradient's sign (|prediction| below tau)")
    if "early_bird_epoch" in summary:
        if summary["early_bird_epoch"] is None and summary.get("early_bird_closest") is None:
            click.echo("early-bird ticket: none. The run ended before the window of masks filled, so no distance "
                       "was tested and the net trained dense; give more epochs or a smaller --eb-window.")
        elif summary["early_bird_epoch"] is None:
            closest = summary.get("early_bird_closest")
            near = ("" if closest is None else f"; the closest they came: {closest['distance']:.3f} at epoch "
                    f"{closest['epoch']}")
            click.echo(f"early-bird ticket: none. The masks at ratio {summary['early_bird_prune_ratio']:g} never "
                       f"settled (a window's largest distance <= {summary['early_bird_epsilon']:g}){near}, so the net "
                       "trained dense to the end and nothing was pruned. A longer schedule, a larger --eb-epsilon "
                       "or `lean prune` of this checkpoint gives a pruned net.")
        else:
            click.echo(f"early-bird ticket at epoch {summary['early_bird_epoch']}: {summary['params_before']:,} -> "
                       f"{summary['params_after']:,} parameters, {summary['macs_before'] / 1e6:.2f} -> "
                       f"{summary['macs_after'] / 1e6:.2f} M MACs per image")
        click.echo("mask distances per epoch: " + " ".join(f"{d:.3f}" for d in summary["mask_distances"]))
        for ratio, ticket in (summary.get("early_bird_tickets") or {}).items():
            at = "no ticket" if ticket["epoch"] is None else f"ticket at epoch {ticket['epoch']}"
            pruned = " (pruned at this ratio)" if float(ratio) == summary.get("early_bird_prune_ratio") else ""
            click.echo(f"  ratio {ratio}: {at}{pruned}; distances " + " ".join(f"{d:.3f}"
                                                                              for d in ticket["mask_distances"]))
    if summary.get("checkpoint"):
        click.echo(f"checkpoint: {summary['checkpoint']}")


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", "data_name", default=None, help="Dataset (default: the one it was trained on).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels.")
@click.option("--record", is_flag=True, help="Store what an input-adaptive model (DFS, DDI) did on the test set in "
              "the checkpoint, for `lean hw predict --workload` to cost that work instead of the full network.")
@click.option("--budget", type=float, default=None, help="DDI: MACs each image may use, a share of the full "
              "network's; inference halts each image at the latest exit that fits.")
@click.option("--budget-mj", type=float, default=None, help="DDI: energy each image may use (mJ), converted to MACs "
              "with the full network's energy per MAC on --accel (lean hw predict).")
@click.option("--budgets", default=None, help="DDI: the accuracy-budget curve at these shares, comma-separated.")
@click.option("--accel", default="shidiannao-like", show_default=True, help="Accelerator whose energy per MAC "
              "converts --budget-mj (lean hw accels).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="DDI: draw the accuracy-budget curve "
              "(PNG; with --budgets).")
@common.json_option("the accuracy")
def eval_(checkpoint, data_name, threads, record, budget, budget_mj, budgets, accel, plot, as_json):
    """Test accuracy of a checkpoint (and what an input-adaptive model's gates chose, or a budget's)."""
    from ..train import evaluate

    values, unit, energy = _budgets(checkpoint, budget, budget_mj, budgets, accel, plot)
    common.configure(threads)
    progress = common.Progress()
    result = evaluate(checkpoint, data=data_name, on_batch=progress.batches, record=record, budgets=values,
                      budget_unit=unit)
    progress.clear()
    if energy is not None:
        result["energy_per_mac"] = energy
    if plot:
        from ..plot import budget_curve

        result["plot"] = budget_curve(result["ddi_budgets"], plot, f"{checkpoint}: accuracy under a MAC budget")
    common.finish(result, as_json, print_eval)


def _budgets(checkpoint, budget, budget_mj, budgets, accel, plot):
    """``lean eval``'s budget options as (budgets or None, their unit, the energy conversion or None)."""
    from ..errors import ConfigError

    given = [name for name, v in (("--budget", budget), ("--budget-mj", budget_mj), ("--budgets", budgets))
             if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of {' and '.join(given)}")
    if plot and budgets is None:
        raise ConfigError("--plot draws the accuracy-budget curve: give --budgets too")
    values, unit, energy = None, "fraction", None
    if budget is not None:
        values = [budget]
    elif budgets is not None:
        try:
            values = [float(v) for v in budgets.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--budgets takes shares like 0.2,0.4,0.6; got {budgets!r}") from None
    elif budget_mj is not None:
        if not budget_mj > 0:
            raise ConfigError(f"--budget-mj must be > 0; got {budget_mj:g}")
        energy = _energy_per_mac(checkpoint, accel)
        energy.update(budget_mj=budget_mj, budget_macs=budget_mj * 1e9 / energy["pj_per_mac"])
        values, unit = [energy["budget_macs"]], "macs"
    if values is not None and (not values or any(not v > 0 for v in values)):
        raise ConfigError(f"{given[0]} must be > 0; got {budget if budget is not None else budgets}")
    return values, unit, energy


def _energy_per_mac(checkpoint, accel):
    """The full network's energy per MAC on ``accel`` (lean.hw's predictor and tables): converts --budget-mj."""
    from ..errors import ConfigError
    from ..hw import from_checkpoint, predict

    prediction = predict(from_checkpoint(checkpoint), accel)  # its layers' mix of memory traffic and MACs
    if prediction.get("energy_unit") != "pJ":
        raise ConfigError(f"--accel {accel} counts energy in {prediction.get('energy_unit')}, not pJ: pick one "
                          "that lean hw accels shows in pJ (e.g. shidiannao-like)")
    total = prediction["total"]
    return {"accel": accel, "pj_per_mac": total["energy_pj"] / total["macs"]}


def print_eval(r):
    click.echo(f"{r['checkpoint']}: test accuracy {100 * r['test_accuracy']:.2f}% on {r['test_images']:,} "
               f"{r['data']} images ({r['images_per_second']:,.0f} images/s)")
    if "dfs" in r:
        d = r["dfs"]
        click.echo(f"fractional skipping: computation {100 * d['computation']:.1f}% of full precision (the "
                   f"paper's measure; {100 * d['computation_macs_weighted']:.1f}% weighted by each block's MACs)")
        names = list(next(iter(d["choices"].values())))
        click.echo("  block      " + " ".join(f"{n:>6}" for n in names))
        for block, counts in d["choices"].items():
            total = max(sum(counts.values()), 1)
            click.echo(f"  {block:<10} " + " ".join(f"{100 * counts[n] / total:5.1f}%" for n in names))
    if "ddi" in r:
        d = r["ddi"]
        click.echo(f"dual dynamic inference: {100 * d['computation']:.1f}% of the network's MACs ran (channel gates; "
                   f"no budget: every image to the last exit; target {100 * d['target']:.0f}%)")
    if "energy_per_mac" in r:
        e = r["energy_per_mac"]
        click.echo(f"{e['budget_mj']:g} mJ per image = {e['budget_macs']:,.0f} MACs at "
                   f"{e['pj_per_mac']:.3g} pJ per MAC (the full network on {e['accel']}, lean hw predict)")
    if "ddi_budgets" in r:
        c = r["ddi_budgets"]
        full = c["full_macs"]
        names = list(c["budgets"][0]["exits"])
        click.echo(f"full network {full:,.0f} MACs per image; the smallest budget {c['smallest_budget_macs']:,.0f} "
                   f"({c['smallest_budget_macs'] / full:.3f}); exits {', '.join(names)}")
        click.echo("  budget   accuracy   MACs used: mean    max     images per exit")
        for row in c["budgets"]:
            click.echo(f"  {row['budget']:6.3f}   {100 * row['accuracy']:6.2f}%   {row['macs_mean'] / full:14.3f}  "
                       f"{row['macs_max'] / full:6.3f}     " + " ".join(str(row['exits'][n]) for n in names))
    if "plot" in r:
        click.echo(f"curve written to {r['plot']}")
    if "recorded" in r:
        click.echo(f"recorded in {r['checkpoint']}: `lean hw predict --workload {r['checkpoint']}` costs this work"
                   if r["recorded"] else "nothing to record: the model has no input-adaptive gates")


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@common.json_option("the description")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Write loss/accuracy curves (PNG).")
def info(checkpoint, as_json, plot):
    """Architecture, parameter count, settings and history of a checkpoint."""
    from ..nn import describe

    result = describe(checkpoint)
    written = []
    if plot:
        from ..plot import dfs_choices, history_curves

        written.append(history_curves(result["history"], plot))
        last = next((h["dfs"] for h in reversed(result["history"]) if (h.get("dfs") or {}).get("test_choices")),
                    None)
        if last is not None:  # a DFS run: what each block's gate chose on the last test pass
            stem = Path(plot)
            written.append(dfs_choices(last["test_choices"], str(stem.with_name(f"{stem.stem}-choices{stem.suffix}")),
                                       f"DFS choices on the test set: computation "
                                       f"{100 * last['test_computation']:.1f}%"))
    common.finish(result, as_json, print_info)
    if written and not as_json:
        click.echo(f"curves written to {', '.join(written)}")


def print_info(r):
    click.echo(f"{r['checkpoint']}: {r['net']}, input {tuple(r['input_shape'])}, {r['num_classes']} classes, "
               f"{r['parameters']:,} parameters, {r['file_bytes']:,} bytes")
    t = r["training"]
    if r["storage_bits"] != r["dense_bits"]:
        comp = t.get("compression", {})
        click.echo(f"compressed ({comp.get('method', '?')}): {r['storage_bits']:,} bits to store against "
                   f"{r['dense_bits']:,} dense float32 ({r['dense_bits'] / r['storage_bits']:.1f}x)")
    if "pruned_from" in t:
        src = t["pruned_from"]
        click.echo(f"pruned by lean prune from {src['checkpoint']} ({100 * src['ratio']:.0f}% of channels); "
                   f"fine-tune with lean train --resume {r['checkpoint']} --epochs N")
    if t:
        methods = ", ".join(t.get("methods", {})) or "none"
        click.echo(f"trained on {t.get('data')} for {r['epoch']}/{t.get('epochs')} epochs ({r['status']}); "
                   f"{t.get('optimizer')} lr {t.get('lr')} {t.get('schedule')}, batch {t.get('batch_size')}, "
                   f"weight decay {t.get('weight_decay')}, seed {t.get('seed')}; methods: {methods}")
    click.echo(f"{'layer':<36} {'type':<10} {'params':>10}  shapes")
    for layer in r["layers"]:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in layer["shapes"].items())
        if "form" in layer:
            shapes += f"  [{layer['form']}, {layer['storage_bits']:,} bits for {layer['dense_parameters']:,} weights]"
        click.echo(f"{layer['name']:<36} {layer['type']:<10} {layer['parameters']:>10,}  {shapes}")
    if r["history"]:
        click.echo("history:")
        for h in r["history"]:
            click.echo("  " + common.epoch_line(h, t.get("epochs", "?")))


@click.command()
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default="lean-demo.h5", show_default=True, type=click.Path(dir_okay=False),
              help="The float checkpoint; the 8-bit one goes beside it as NAME-int8.h5.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels.")
@common.json_option("the summary")
def demo(epochs, out, force, threads, as_json):
    """Train LeNet-5 on the shipped digits, quantize it to 8 bits and cost it on Eyeriss (offline, seconds)."""
    from ..demo import run

    common.configure(threads)
    summary = run(epochs=epochs, out=out, force=force, **common.training_callbacks(as_json))
    common.finish(summary, as_json, print_demo)


def print_demo(summary):
    print_summary(summary)
    q, cost = summary["quantized"], summary["eyeriss"]
    click.echo(f"8-bit post-training quantization: test accuracy {100 * q['test_accuracy']:.2f}%, "
               f"{q['compression_ratio']:.1f}x smaller ({q['checkpoint']})")
    click.echo(f"on an Eyeriss model (lean hw predict): {cost['float']['energy_pj_per_image']:,.0f} -> "
               f"{cost['int8']['energy_pj_per_image']:,.0f} normalized energy units per image, "
               f"{cost['int8']['latency_ms']:.3f} ms")


COMMANDS = (train, eval_, info, demo)
