"""The ``lean`` command: a thin layer that parses options, calls the package and prints.

Heavy modules (NumPy, Numba kernels) are imported inside commands so ``lean --help`` stays fast. Errors a user
can act on are printed as one line (``error: ...``) with a non-zero exit; no traceback.
"""

import json
import sys
import time
from pathlib import Path

import click

from . import __version__


class UserError(click.ClickException):
    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


def _user_error_types():
    from .data import DataError
    from .train import CheckpointError, TrainingDiverged, TrainingInterrupted

    return (DataError, CheckpointError, TrainingDiverged, TrainingInterrupted, ValueError, FileNotFoundError,
            PermissionError, IsADirectoryError)


class LeanGroup(click.Group):
    """Turns the package's own exceptions, and click's usage errors, into one-line errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            hint = f" (see 'lean {exc.ctx.command_path.split(' ', 1)[1]} --help')" \
                if isinstance(exc, click.UsageError) and exc.ctx and " " in exc.ctx.command_path else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            from .train import TrainingInterrupted

            if isinstance(exc, _user_error_types()):
                err = UserError(str(exc))
                err.exit_code = 130 if isinstance(exc, TrainingInterrupted) else 1
                raise err from None
            raise


def _emit_json(obj):
    click.echo(json.dumps(obj, default=_json_default))


def _json_default(v):
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


@click.group(cls=LeanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lean")
def main():
    """Train, compress and cost deep networks on a plain CPU."""


# ---------------------------------------------------------------------------------------------- progress

class Progress:
    """A one-line progress bar on stderr (redrawn at most 5 times a second when stderr is a terminal)."""

    def __init__(self):
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def step(self, info):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and info["step"] != info["steps"]:
            return
        self.last = now
        width = 24
        filled = int(width * info["step"] / info["steps"])
        eta = info["eta_seconds"]
        sys.stderr.write(f"\repoch {info['epoch']}/{info['epochs']} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{info['step']}/{info['steps']}  loss {info['loss']:.4f}  "
                         f"{info['images_per_second']:,.0f} img/s  ETA {_duration(eta)}   ")
        sys.stderr.flush()

    def clear(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _percent(value):
    return "   -  " if value is None else f"{100 * value:5.2f}%"  # None: not evaluated (--eval-every)


def _epoch_line(h, epochs):
    test = _percent(h.get("test_accuracy"))
    if h["train_loss"] is None:  # every step of the epoch was dropped (SMD)
        line = f"epoch {h['epoch']:>3}/{epochs}  (all steps dropped)  test {test}"
    else:
        line = (f"epoch {h['epoch']:>3}/{epochs}  loss {h['train_loss']:.4f}  train {100 * h['train_accuracy']:5.1f}%  "
                f"test {test}  {h['train_images_per_second']:,.0f} img/s  {h['seconds']:.1f}s")
    if "mask_distance" in h:
        line += f"  mask distance {h['mask_distance']:.3f}"
    if h.get("early_bird"):
        line += "  early-bird ticket: pruned"
    return line


def _run_training(trainer, as_json):
    progress = Progress()
    out_echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo

    def on_epoch(h):
        progress.clear()
        out_echo(_epoch_line(h, trainer.config.epochs))

    trainer.on_step, trainer.on_epoch = progress.step, on_epoch
    try:
        trainer.run()
    finally:
        progress.clear()
    return trainer.summary()


def _print_summary(summary):
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
    if "early_bird_epoch" in summary:
        if summary["early_bird_epoch"] is None:
            click.echo("early-bird ticket: did not appear (the net was not pruned)")
        else:
            click.echo(f"early-bird ticket at epoch {summary['early_bird_epoch']}: {summary['params_before']:,} -> "
                       f"{summary['params_after']:,} parameters, {summary['macs_before'] / 1e6:.2f} -> "
                       f"{summary['macs_after'] / 1e6:.2f} M MACs per image")
        click.echo("mask distances per epoch: " + " ".join(f"{d:.3f}" for d in summary["mask_distances"]))
    if summary.get("checkpoint"):
        click.echo(f"checkpoint: {summary['checkpoint']}")


# ------------------------------------------------------------------------------------------------- demo

@main.command()
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default="lean-demo.h5", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def demo(epochs, out, as_json):
    """Train LeNet-5 on the shipped digits, quantize it to 8 bits and cost it on Eyeriss (offline, seconds)."""
    from .compress.pipeline import compress as run_compress
    from .data import load
    from .hw import accelerator, workload
    from .hw.predictor import predict
    from .nets import build
    from .train import TrainConfig, Trainer

    data = load("digits")
    model = build("lenet5", input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    config = TrainConfig(net="lenet5", data="digits", epochs=epochs, batch_size=32, lr=0.05, schedule="cosine",
                         weight_decay=5e-4, seed=0)
    summary = _run_training(Trainer(model, data, config, out=out), as_json)
    quantized_out = str(Path(out).with_name(Path(out).stem + "-int8.h5"))
    q = run_compress("quantize", out, quantized_out, weight_bits=8, activation_bits=8, per_channel=True)
    cost = {}
    for name, path in (("float", out), ("int8", quantized_out)):
        total = predict(workload.from_checkpoint(path), accelerator.eyeriss()).total
        cost[name] = {"energy_pj_per_image": total["energy_pj"], "latency_ms": total["latency_ms"]}
    summary["quantized"] = {"checkpoint": quantized_out, "test_accuracy": q["accuracy_after"],
                            "compression_ratio": q["compression_ratio"]}
    summary["eyeriss"] = cost
    if as_json:
        _emit_json(summary)
        return
    _print_summary(summary)
    click.echo(f"8-bit post-training quantization: test accuracy {100 * q['accuracy_after']:.2f}%, "
               f"{q['compression_ratio']:.1f}x smaller ({quantized_out})")
    click.echo(f"on an Eyeriss model (lean hw predict): {cost['float']['energy_pj_per_image']:,.0f} -> "
               f"{cost['int8']['energy_pj_per_image']:,.0f} normalized energy units per image, "
               f"{cost['int8']['latency_ms']:.3f} ms")


# ------------------------------------------------------------------------------------------------ train

@main.command()
@click.option("--net", default=None, help="Network name (see `lean nets`).")
@click.option("--data", "data_name", default=None, help="Dataset name (see `lean data`) or a .npz/.h5 file.")
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=0.1, show_default=True, type=float)
@click.option("--optimizer", default="sgd", show_default=True, type=click.Choice(["sgd", "adam"]))
@click.option("--momentum", default=0.9, show_default=True, type=float)
@click.option("--nesterov", is_flag=True)
@click.option("--schedule", default="cosine", show_default=True,
              type=click.Choice(["constant", "step", "multistep", "cosine"]))
@click.option("--warmup-epochs", default=0.0, show_default=True, type=float)
@click.option("--weight-decay", default=5e-4, show_default=True, type=float)
@click.option("--label-smoothing", default=0.0, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--train-limit", default=None, type=int, help="Use only the first N training images.")
@click.option("--augment/--no-augment", default=None, help="Random crop + flip (default: per dataset).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Checkpoint (default NET-DATA.h5).")
@click.option("--resume", default=None, type=click.Path(dir_okay=False), help="Continue a run from its checkpoint.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@click.option("--threads", default=None, type=int, help="Threads for lean's kernels.")
@click.option("--width", default=1.0, show_default=True, type=float,
              help="Channel-width multiplier (vgg, resnet, preresnet, mobilenetv2).")
@click.option("--slim", default=None, type=float, help="Network slimming: L1 strength on batch-norm scales (1e-4).")
@click.option("--early-bird", default=None, type=float,
              help="Early-bird tickets: prune this fraction of channels when the ticket appears (needs --slim).")
@click.option("--eb-epsilon", default=0.1, show_default=True, type=float, help="Early-bird mask distance bound.")
@click.option("--eb-window", default=5, show_default=True, type=int, help="Early-bird FIFO length (epochs).")
@click.option("--eb-precision", default=None, type=int, help="Bits of the early-bird search phase (e.g. 8).")
@click.option("--smd", default=0.0, show_default=True, type=float,
              help="E2-Train: probability of dropping each mini-batch.")
@click.option("--slu", default=None, type=float,
              help="E2-Train: skip-gate residual blocks, aiming to run this fraction of them.")
@click.option("--slu-beta", default=1e-3, show_default=True, type=float,
              help="Weight of SLU's computation cost (authors: 1e-5; see lean/nn/gates.py).")
@click.option("--psg", default=None, type=float, help="E2-Train: predictive sign gradients with this fixed tau.")
@click.option("--psg-adaptive", default=None, type=float,
              help="E2-Train: predictive sign gradients, tau = this x max |prediction| per layer.")
@click.option("--bn-init", default=None, type=float,
              help="Start every batch-norm scale at this value (network slimming's code: 0.5).")
@click.option("--eval-every", default=1, show_default=True, type=click.IntRange(min=1),
              help="Evaluate the test set every N epochs (and after the last).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.pass_context
def train(ctx, net, data_name, epochs, batch_size, lr, optimizer, momentum, nesterov, schedule, warmup_epochs,
          weight_decay, label_smoothing, seed, train_limit, augment, out, resume, force, threads, width, slim,
          early_bird,
          eb_epsilon, eb_window, eb_precision, smd, slu, slu_beta, psg, psg_adaptive, bn_init, eval_every, as_json):
    """Train a network and write a checkpoint, optionally with early-bird tickets or E2-Train."""
    from dataclasses import fields

    from . import kernels
    from .data import load
    from .nets import build
    from .train import TrainConfig, Trainer
    from .train import load as load_checkpoint
    from .train.methods import prepare

    if threads is not None:
        kernels.set_threads(threads)
    given = {p: v for p, v in ctx.params.items()
             if ctx.get_parameter_source(p) != click.core.ParameterSource.DEFAULT}
    if resume:
        ckpt = load_checkpoint(resume)
        known = {f.name for f in fields(TrainConfig)}
        settings = {k: v for k, v in ckpt.training.items() if k in known}
        clash = [k for k in ("net", "data_name") if k in given and given[k] != settings.get(k.replace("_name", ""))]
        if clash:
            raise UserError(f"--resume continues {resume} as it was; drop {', '.join(clash)}")
        for key in ("epochs", "batch_size", "lr", "schedule", "weight_decay", "eval_every"):
            if key in given:
                settings[key] = given[key]
        config = TrainConfig(**settings)
        model, hooks = prepare(config, ckpt.model())
        out = out or resume
        data = load(config.data)
        trainer = Trainer(model, data, config, out=out, hooks=hooks)
        trainer.restore(ckpt)
        if trainer.epoch >= config.epochs:
            raise UserError(f"{resume} already finished {trainer.epoch} epochs; pass --epochs N with N > "
                                   f"{trainer.epoch} to train longer")
    else:
        if not net or not data_name:
            raise UserError("--net and --data are required (or --resume run.h5)")
        config = TrainConfig(net=net, data=data_name, epochs=epochs, batch_size=batch_size, lr=lr,
                             optimizer=optimizer, momentum=momentum, nesterov=nesterov, schedule=schedule,
                             warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                             label_smoothing=label_smoothing, seed=seed, train_limit=train_limit, augment=augment,
                             width=width, slim=slim, early_bird=early_bird, eb_epsilon=eb_epsilon, eb_window=eb_window,
                             eb_precision=eb_precision, smd=smd, slu=slu, slu_beta=slu_beta, psg=psg,
                             psg_adaptive=psg_adaptive, bn_init=bn_init,
                             eval_every=eval_every)
        data = load(data_name)
        model = build(net, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed,
                      **({} if width == 1.0 else {"width": width}))
        model, hooks = prepare(config, model, fresh=True)
        out = out or f"{net}-{Path(data_name).stem}.h5"
        if Path(out).exists() and not force:
            raise UserError(f"{out} exists; pass --force to overwrite it or --resume {out} to continue it")
        trainer = Trainer(model, data, config, out=out, hooks=hooks)
    summary = _run_training(trainer, as_json)
    if as_json:
        _emit_json(summary)
    else:
        _print_summary(summary)


# ------------------------------------------------------------------------------------------ eval / info

@main.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", "data_name", default=None, help="Dataset (default: the one it was trained on).")
@click.option("--json", "as_json", is_flag=True)
def eval_(checkpoint, data_name, as_json):
    """Test accuracy of a checkpoint."""
    from .data import load
    from .train import accuracy
    from .train import load as load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model()
    data_name = data_name or ckpt.training.get("data")
    if not data_name:
        raise UserError(f"{checkpoint} does not say which data it was trained on; pass --data")
    data = load(data_name)
    if data.input_shape != model.input_shape:
        raise UserError(f"{data_name} images are {data.input_shape}, the model expects {model.input_shape}")
    mean = ckpt.mean if ckpt.mean is not None else data.mean
    std = ckpt.std if ckpt.std is not None else data.std
    t0 = time.perf_counter()
    acc = accuracy(model, data.x_test, data.y_test, lambda x: data.normalize(x, mean, std))
    seconds = time.perf_counter() - t0
    result = {"checkpoint": checkpoint, "data": data_name, "test_accuracy": acc, "test_images": len(data.y_test),
              "seconds": seconds, "images_per_second": len(data.y_test) / seconds}
    if as_json:
        _emit_json(result)
    else:
        click.echo(f"{checkpoint}: test accuracy {100 * acc:.2f}% on {len(data.y_test):,} {data_name} images "
                   f"({result['images_per_second']:,.0f} images/s)")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Write loss/accuracy curves (PNG).")
def info(checkpoint, as_json, plot):
    """Architecture, parameter count, settings and history of a checkpoint."""
    import numpy as np

    from .train import load as load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model()
    layers = []
    for name, module in model.net.named_modules():
        if module.params:
            form = getattr(module, "form", None)
            entry = {"name": name, "type": type(module).__name__,
                     "parameters": int(sum(p.size for p in module.params.values())),
                     "shapes": {k: list(v.shape) for k, v in module.params.items()}}
            if form is not None:
                entry.update(form=type(form).__name__, storage_bits=form.storage_bits(),
                             dense_parameters=int(np.prod(form.shape)))
            layers.append(entry)
    from .compress.pipeline import dense_bits

    result = {"checkpoint": checkpoint, "net": model.name, "input_shape": list(model.input_shape),
              "storage_bits": model.storage_bits(), "dense_bits": dense_bits(model),
              "num_classes": model.num_classes, "parameters": model.num_parameters(),
              "status": ckpt.status, "epoch": ckpt.epoch, "training": ckpt.training, "history": ckpt.history,
              "layers": layers, "lean_version": ckpt.lean_version,
              "file_bytes": Path(checkpoint).stat().st_size}
    if plot:
        _plot_history(ckpt.history, plot)
    if as_json:
        _emit_json(result)
        return
    click.echo(f"{checkpoint}: {model.name}, input {tuple(model.input_shape)}, {model.num_classes} classes, "
               f"{model.num_parameters():,} parameters, {result['file_bytes']:,} bytes")
    if result["storage_bits"] != result["dense_bits"]:
        comp = ckpt.training.get("compression", {})
        click.echo(f"compressed ({comp.get('method', '?')}): {result['storage_bits']:,} bits to store against "
                   f"{result['dense_bits']:,} dense float32 ({result['dense_bits'] / result['storage_bits']:.1f}x)")
    t = ckpt.training
    if t:
        click.echo(f"trained on {t.get('data')} for {ckpt.epoch}/{t.get('epochs')} epochs ({ckpt.status}); "
                   f"{t.get('optimizer')} lr {t.get('lr')} {t.get('schedule')}, batch {t.get('batch_size')}, "
                   f"weight decay {t.get('weight_decay')}, seed {t.get('seed')}")
    click.echo(f"{'layer':<36} {'type':<10} {'params':>10}  shapes")
    for layer in layers:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in layer["shapes"].items())
        if "form" in layer:
            shapes += f"  [{layer['form']}, {layer['storage_bits']:,} bits for {layer['dense_parameters']:,} weights]"
        click.echo(f"{layer['name']:<36} {layer['type']:<10} {layer['parameters']:>10,}  {shapes}")
    if ckpt.history:
        click.echo("history:")
        for h in ckpt.history:
            click.echo("  " + _epoch_line(h, t.get("epochs", "?")))
    if plot:
        click.echo(f"curves written to {plot}")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'lean[plot]'") from None
    return plt


def _plot_history(history, path):
    plt = _pyplot()
    if not history:
        raise UserError("the checkpoint has no history to plot")
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    tested = [h for h in history if h.get("test_accuracy") is not None]
    ax2.plot([h["epoch"] for h in tested], [100 * h["test_accuracy"] for h in tested], "o-", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- nets / data

def _default_input(net):
    return (28, 28, 1) if net in ("mlp", "lenet5") else (32, 32, 3)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def nets(as_json):
    """Networks that can be built, with parameter counts (10 classes, default input)."""
    from .nets import NETS, build

    rows = []
    for name in NETS:
        shape = _default_input(name)
        rows.append({"name": name, "parameters": build(name, input_shape=shape, num_classes=10).num_parameters(),
                     "input_shape": list(shape)})
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<14} {r['parameters']:>12,} parameters  (input {tuple(r['input_shape'])})")
    click.echo("also: resnet<6n+2>, preresnet<6n+2 or 9n+2> for other depths")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def data(as_json):
    """Datasets and whether each is available without a download."""
    from .data import DATASETS, available

    rows = [{"name": n, "description": d, "available": available(n)} for n, d in DATASETS.items()]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<14} {'available' if r['available'] else 'download ':<10} {r['description']}")
    click.echo("also: a .npz or .h5 file with x_train, y_train, x_test, y_test")


# ------------------------------------------------------------------------------------------------ bench

@main.group(invoke_without_command=False)
def bench():
    """Measure speed: whole training/inference steps, or single kernels against their references."""


@bench.command("kernel")
@click.argument("name", type=click.Choice(["pow2-matmul", "kmeans-assign", "int8-conv"]))
@click.option("--m", default=2048, show_default=True, type=click.IntRange(min=1))
@click.option("--k", default=2048, show_default=True, type=click.IntRange(min=1))
@click.option("--n", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--density", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--samples", default=1_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--dims", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--clusters", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--input", "input_chw", default="16,32,32", show_default=True, help="C,H,W for int8-conv.")
@click.option("--out-channels", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", default=None, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def bench_kernel_cmd(name, m, k, n, density, samples, dims, clusters, batch_size, input_chw, out_channels, threads,
                     as_json):
    """Time a kernel and its references side by side in one run (median of 7)."""
    from . import kernels
    from .bench import bench_kernel

    if threads:
        kernels.set_threads(threads)
    c, h, w = _parse_chw(input_chw)
    result = bench_kernel(name, m=m, k=k, n=n, density=density, samples=samples, dims=dims, clusters=clusters,
                          batch_size=batch_size, input_shape=(h, w, c), out_channels=out_channels)
    if as_json:
        _emit_json(result)
        return
    refs = ", ".join(f"{ref} {ms:.2f} ms ({ms / result['lean_ms']:.1f}x)" for ref, ms in result["reference_ms"].items())
    click.echo(f"{name}: lean {result['lean_ms']:.2f} ms on {result['threads']} threads; {refs} "
               f"(ratio = reference time / lean time)")


def _parse_chw(text):
    try:
        c, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--input must be C,H,W like 3,32,32; got {text!r}") from None
    return c, h, w


def _bench_step_options(f):
    for option in reversed([
        click.option("--net", required=True),
        click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option("--input", "input_chw", default=None, help="C,H,W (default per net)."),
        click.option("--classes", default=10, show_default=True, type=click.IntRange(min=2)),
        click.option("--threads", default=None, type=click.IntRange(min=1)),
        click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1)),
        click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0)),
        click.option("--json", "as_json", is_flag=True),
    ]):
        f = option(f)
    return f


@bench.command("train")
@_bench_step_options
@click.option("--layers", is_flag=True, help="Also time each layer's forward and backward.")
def bench_train(**kwargs):
    """Images/s of a full training step (forward, loss, backward, SGD update) on random data."""
    _bench_step("train", **kwargs)


@bench.command("infer")
@_bench_step_options
def bench_infer(**kwargs):
    """Images/s of inference on random data."""
    _bench_step("infer", layers=False, **kwargs)


def _bench_step(mode, net, batch_size, input_chw, classes, threads, steps, warmup, layers, as_json):
    from .bench import bench_model

    if input_chw:
        c, h, w = _parse_chw(input_chw)
        shape = (h, w, c)
    else:
        shape = _default_input(net)
    result = bench_model(mode, net, batch_size=batch_size, input_shape=shape, num_classes=classes,
                         threads=threads, steps=steps, warmup=warmup, profile=layers)
    if as_json:
        _emit_json(result)
        return
    if result.get("layers"):
        click.echo(f"{'layer':<36} {'type':<14} {'forward ms':>10} {'backward ms':>11}")
        for row in result["layers"]:
            click.echo(f"{row['name']:<36} {row['type']:<14} {row['forward_ms']:>10.2f} "
                       f"{row['backward_ms']:>11.2f}")
    click.echo(f"{net} {mode}, batch {batch_size}, input {shape[2]},{shape[0]},{shape[1]}, "
               f"{result['threads']} threads: {result['images_per_second']:,.0f} images/s "
               f"(median of {steps} steps, {1e3 * result['step_seconds_median']:.1f} ms/step; "
               f"first step {result['first_step_seconds']:.2f}s)")


# ------------------------------------------------------------------------------------------------ prune

@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--ratio", required=True, type=click.FloatRange(0, 1, max_open=True),
              help="Fraction of channels to remove (global batch-norm scale quantile).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_name", default=None)
@click.option("--force", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def prune(checkpoint, ratio, out, data_name, force, as_json):
    """Network slimming: remove the channels with the smallest batch-norm scales.

    Fine-tune the result with `lean train --resume OUT --epochs N`.
    """
    from .compress.slimming import channel_masks, prune
    from .data import load
    from .hw.workload import from_model
    from .train import Checkpoint, accuracy
    from .train import load as load_checkpoint
    from .train import save as save_checkpoint

    if Path(out).exists() and not force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model()
    pruned = prune(model, channel_masks(model, ratio))
    data_name = data_name or ckpt.training.get("data")
    if not data_name:
        raise UserError(f"{checkpoint} does not say which data it was trained on; pass --data")
    data = load(data_name)

    def acc(m):
        return accuracy(m, data.x_test, data.y_test, lambda x: data.normalize(x, ckpt.mean, ckpt.std))

    training = {k: v for k, v in ckpt.training.items() if k != "progress"}
    training.update(slim=None, early_bird=None)  # fine-tuning the pruned net runs without the sparsity penalty
    training["pruned_from"] = {"checkpoint": checkpoint, "ratio": ratio}
    save_checkpoint(out, Checkpoint(pruned.config(), pruned.state(), training=training, mean=ckpt.mean,
                                    std=ckpt.std))
    result = {"checkpoint": checkpoint, "out": out, "ratio": ratio,
              "params_before": model.num_parameters(), "params_after": pruned.num_parameters(),
              "macs_before": from_model(model).macs, "macs_after": from_model(pruned).macs,
              "accuracy_before": acc(model), "accuracy_after": acc(pruned)}
    if as_json:
        _emit_json(result)
        return
    click.echo(f"pruned {100 * ratio:.0f}% of channels: {result['params_before']:,} -> {result['params_after']:,} "
               f"parameters, {result['macs_before'] / 1e6:.1f} -> {result['macs_after'] / 1e6:.1f} M MACs per image")
    click.echo(f"test accuracy {100 * result['accuracy_before']:.2f}% -> {100 * result['accuracy_after']:.2f}% "
               f"before fine-tuning; written to {out} (fine-tune: lean train --resume {out} --epochs N)")


# ---------------------------------------------------------------------------------------------- compress

@main.group()
def compress():
    """Compress a trained checkpoint: SmartExchange, deep k-means weight sharing, quantization."""


def _compress_options(f):
    for option in reversed([
        click.argument("checkpoint", type=click.Path(dir_okay=False)),
        click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Compressed checkpoint."),
        click.option("--data", "data_name", default=None, help="Dataset (default: the one it was trained on)."),
        click.option("--lr", default=0.01, show_default=True, type=float, help="Re-training learning rate."),
        click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option("--train-limit", default=None, type=click.IntRange(min=1)),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--force", is_flag=True, help="Overwrite an existing --out file."),
        click.option("--json", "as_json", is_flag=True),
    ]):
        f = option(f)
    return f


def _run_compress(method, checkpoint, out, force, as_json, **kwargs):
    from .compress.pipeline import compress as run

    if Path(out).exists() and not force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise UserError("--out must differ from the input checkpoint")
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo

    def on_epoch(h):
        echo(f"  re-train epoch {h['epoch']}: loss {h['train_loss']:.4f}, test {100 * h['test_accuracy']:.2f}%")

    report = run(method, checkpoint, out, on_epoch=on_epoch, **kwargs)
    if as_json:
        _emit_json(report)
        return
    click.echo(f"{'layer':<28} {'kind':<5} {'params':>9} {'storage bits':>13} {'ratio':>7} {'sparsity':>9}")
    for r in report["layers"]:
        click.echo(f"{r['layer']:<28} {r['kind']:<5} {r['parameters']:>9,} {r['storage_bits']:>13,} "
                   f"{r['compression_ratio']:>6.1f}x {100 * r['sparsity']:>8.1f}%")
    click.echo(f"whole model (everything needed to run it): {report['dense_bits']:,} -> {report['storage_bits']:,} "
               f"bits, {report['compression_ratio']:.1f}x; conv weights {report['conv_compression_ratio']:.1f}x")
    line = f"test accuracy: before {100 * report['accuracy_before']:.2f}%"
    if "accuracy_after_regularizer" in report:
        line += f", after the regularizer {100 * report['accuracy_after_regularizer']:.2f}%"
    line += (f", compressed {100 * report['accuracy_compressed']:.2f}%, after {report['retrain_epochs']} re-train "
             f"epochs {100 * report['accuracy_after']:.2f}%")
    click.echo(line)
    click.echo(f"written to {out} ({Path(out).stat().st_size:,} bytes) in {report['seconds']:.1f}s")


@compress.command("smartexchange")
@_compress_options
@click.option("--theta", default=5e-3, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-exponent", default=5, show_default=True, type=int)
@click.option("--exponent-bits", default=4, show_default=True, type=click.IntRange(1, 7))
@click.option("--basis-bits", default=8, show_default=True, type=click.Choice(["8", "16"]))
@click.option("--retrain-epochs", default=0, show_default=True, type=click.IntRange(min=0))
def compress_smartexchange(checkpoint, out, force, as_json, theta, max_exponent, exponent_bits, basis_bits,
                           retrain_epochs, **common):
    """Sparse power-of-two coefficients x small bases (Zhao et al., ISCA 2020)."""
    _run_compress("smartexchange", checkpoint, out, force, as_json, retrain_epochs=retrain_epochs,
                  theta=theta, max_exponent=max_exponent, exponent_bits=exponent_bits, basis_bits=int(basis_bits),
                  **_common(common))


def _common(common):
    return {"data": common["data_name"], "lr": common["lr"], "batch_size": common["batch_size"],
            "train_limit": common["train_limit"], "seed": common["seed"]}


def _parse_clusters(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--clusters takes K or a comma-separated list of K per conv layer; got {text!r}") \
            from None
    if any(v < 1 for v in values):
        raise UserError("--clusters must be positive")
    return values[0] if len(values) == 1 else values


@compress.command("kmeans")
@_compress_options
@click.option("--clusters", default="16", show_default=True, help="K for every conv layer, or a list per layer.")
@click.option("--sparsity", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--regularize-epochs", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--regularizer", default="paper", show_default=True, type=click.Choice(["paper", "indicator"]))
@click.option("--reg-lambda", default=1e-4, show_default=True, type=float)
@click.option("--retrain-epochs", default=0, show_default=True, type=click.IntRange(min=0))
def compress_kmeans(checkpoint, out, force, as_json, clusters, sparsity, regularize_epochs, regularizer, reg_lambda,
                    retrain_epochs, **common):
    """Deep k-means weight sharing of conv kernel rows (Wu et al., ICML 2018)."""
    _run_compress("kmeans", checkpoint, out, force, as_json, retrain_epochs=retrain_epochs,
                  regularize_epochs=regularize_epochs, regularizer=regularizer, reg_lambda=reg_lambda,
                  clusters=_parse_clusters(clusters), sparsity=sparsity, **_common(common))


@compress.command("quantize")
@_compress_options
@click.option("--weight-bits", default=8, show_default=True, type=click.IntRange(2, 16))
@click.option("--activation-bits", default=None, type=click.IntRange(2, 16))
@click.option("--per-channel", is_flag=True)
@click.option("--scheme", default="symmetric", show_default=True,
              type=click.Choice(["symmetric", "asymmetric", "pow2"]), help="Weight quantizer.")
@click.option("--qat-epochs", default=0, show_default=True, type=click.IntRange(min=0))
def compress_quantize(checkpoint, out, force, as_json, weight_bits, activation_bits, per_channel, scheme, qat_epochs,
                      **common):
    """Low-bit quantization, post-training or with quantization-aware training (straight-through)."""
    _run_compress("quantize", checkpoint, out, force, as_json, retrain_epochs=qat_epochs, weight_bits=weight_bits,
                  activation_bits=activation_bits, per_channel=per_channel, scheme=scheme, **_common(common))


# --------------------------------------------------------------------------------------------------- hw

@main.group()
def hw():
    """Cost a network on an accelerator model: energy, latency, traffic."""


def _parse_sets(items):
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set takes key=value; got {item!r}")
        values[key.strip()] = value.strip()
    return values


@hw.command("predict")
@click.option("--workload", "workload_spec", required=True,
              help="Built-in net, lean net name, checkpoint (.h5) or layer file (.toml/.json).")
@click.option("--accel", required=True, help="Built-in accelerator (see `lean hw accels`) or a .toml file.")
@click.option("--dataflow", default=None, type=click.Choice(["rs", "ws", "os", "is", "nlr"]))
@click.option("--batch", default=None, type=click.IntRange(min=1))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override an accelerator parameter.")
@click.option("--objective", default="energy", show_default=True, type=click.Choice(["energy", "latency", "edp"]))
@click.option("--json", "as_json", is_flag=True)
@click.option("--tiling", "tiling_file", default=None, type=click.Path(dir_okay=False),
              help='JSON of fixed tilings by layer name ("*" for all): {"conv1": {"N": 1, "K": 16, "C": 3, '
                   '"P": 55, "Q": 55, "order": "KCNPQ"}}; other layers are searched.')
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Energy breakdown per layer (PNG).")
def hw_predict(workload_spec, accel, dataflow, batch, sets, objective, tiling_file, as_json, plot):
    """Per-layer and total energy, latency and DRAM traffic of a workload on an accelerator."""
    from .hw import accelerator as accel_mod
    from .hw import workload as workload_mod
    from .hw.predictor import predict

    workload = workload_mod.load(workload_spec, batch=batch)
    acc = accel_mod.load(accel)
    overrides = _parse_sets(sets)
    if dataflow:
        overrides["dataflow"] = dataflow
    if overrides:
        acc = acc.with_overrides(**overrides)
    tilings = None
    if tiling_file:
        try:
            tilings = json.loads(Path(tiling_file).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"--tiling {tiling_file}: {exc}") from None
        if not isinstance(tilings, dict) or not all(isinstance(v, dict) for v in tilings.values()):
            raise UserError(f"--tiling {tiling_file} must map layer names to tilings")
    result = predict(workload, acc, objective, tilings).to_dict()
    result["accelerator_parameters"] = acc.to_dict()
    if plot:
        _plot_breakdown(result, plot)
    if as_json:
        _emit_json(result)
        return
    click.echo(f"{workload.name} on {acc.name} ({acc.dataflow}, {acc.array_rows}x{acc.array_cols} PEs, "
               f"{acc.glb_bytes // 1024} kB buffer, {acc.word_bits}-bit, {acc.clock_mhz:g} MHz), batch "
               f"{workload.layers[0].n}, tiling chosen for {objective}")
    levels = ("mac", "rf", "noc", "glb", "dram")
    click.echo(f"{'layer':<24} {'MMACs':>9} {'util':>5} {'cycles':>12} {'ms':>9} {'energy uJ':>10} "
               + " ".join(f"{lv:>7}" for lv in levels) + f" {'DRAM kB':>9}")
    for layer in result["layers"]:
        shares = [layer["energy_breakdown_pj"][lv] / layer["energy_pj"] * 100 if layer["energy_pj"] else 0
                  for lv in levels]
        click.echo(f"{layer['name'][:24]:<24} {layer['macs'] / 1e6:>9.2f} {layer['utilization']:>5.2f} "
                   f"{layer['cycles']:>12,.0f} {layer['latency_ms']:>9.3f} {layer['energy_pj'] / 1e6:>10.2f} "
                   + " ".join(f"{v:>6.1f}%" for v in shares) + f" {layer['dram_bytes'] / 1e3:>9.1f}")
    t = result["total"]
    click.echo(f"total: {t['macs'] / 1e6:,.1f} M MACs, {t['latency_ms']:.3f} ms "
               f"({1e3 / t['latency_ms'] * workload.layers[0].n if t['latency_ms'] else 0:,.1f} frames/s), "
               f"{t['energy_pj'] / 1e6:,.2f} uJ, {t['average_power_mw']:.1f} mW average, "
               f"{t['dram_bytes'] / 1e6:.2f} MB DRAM")
    click.echo("energy by level: " + ", ".join(f"{k} {v / t['energy_pj'] * 100:.1f}%"
                                              for k, v in t["energy_breakdown_pj"].items()))
    click.echo("memory energy by data: " + ", ".join(f"{k} {v / t['energy_pj'] * 100:.1f}%"
                                              for k, v in t["energy_by_data_pj"].items()))
    if acc.tech == "eyeriss-normalized":
        click.echo("(energies in eyeriss-normalized units: 1 = one 16-bit MAC, scaled by e_mac_pj)")
    if plot:
        click.echo(f"breakdown plot written to {plot}")


def _plot_breakdown(result, path):
    plt = _pyplot()
    layers = result["layers"]
    levels = ("mac", "rf", "noc", "glb", "dram")
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers)), 4))
    bottom = [0.0] * len(layers)
    for lv in levels:
        vals = [layer["energy_breakdown_pj"][lv] / 1e6 for layer in layers]
        ax.bar(range(len(layers)), vals, bottom=bottom, label=lv)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(layers)), [layer["name"] for layer in layers], rotation=90, fontsize=7)
    ax.set_ylabel("energy (uJ)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@hw.command("accels")
@click.option("--json", "as_json", is_flag=True)
def hw_accels(as_json):
    """Built-in accelerators and their parameters."""
    from .hw.accelerator import BUILTIN

    rows = [BUILTIN[name]().to_dict() for name in BUILTIN]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<16} {r['dataflow']:<4} {r['array_rows']}x{r['array_cols']} PEs, "
                   f"{r['glb_bytes'] // 1024} kB buffer, {r['word_bits']}-bit, {r['clock_mhz']:g} MHz, "
                   f"DRAM {r['dram_bytes_per_cycle']:.1f} B/cycle, energies ({r['tech']}) MAC {r['e_mac_pj']:.3g} "
                   f"RF {r['e_rf_pj']:.3g} NoC {r['e_noc_pj']:.3g} GLB {r['e_glb_pj']:.3g} DRAM {r['e_dram_pj']:.3g}")
    click.echo("any field can be changed with --set KEY=VALUE (see `lean hw accels --json` for the names)")


@hw.command("workloads")
@click.option("--json", "as_json", is_flag=True)
def hw_workloads(as_json):
    """Built-in reference networks (ImageNet sizes) with layer and MAC counts."""
    from .hw.workload import BUILTIN

    rows = []
    for name, make in BUILTIN.items():
        w = make()
        rows.append({"name": name, "layers": len(w.compute_layers()), "macs": w.macs,
                     "input": [w.layers[0].c, w.layers[0].h, w.layers[0].w]})
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<12} {r['layers']:>3} conv/fc layers, {r['macs'] / 1e6:>9,.1f} M MACs, "
                   f"input {'x'.join(map(str, r['input']))}")
    click.echo("also: any `lean nets` name (CIFAR sizes), a checkpoint (.h5), or a .toml/.json layer list")


if __name__ == "__main__":
    main()
