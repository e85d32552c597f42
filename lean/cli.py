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
    """Turns the package's own exceptions into one-line errors."""

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

    def __init__(self, enabled):
        self.enabled = enabled and sys.stderr.isatty()
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


def _epoch_line(h, epochs):
    return (f"epoch {h['epoch']:>3}/{epochs}  loss {h['train_loss']:.4f}  train {100 * h['train_accuracy']:5.1f}%  "
            f"test {100 * h['test_accuracy']:5.2f}%  {h['train_images_per_second']:,.0f} img/s  {h['seconds']:.1f}s")


def _run_training(trainer, as_json, quiet=False):
    progress = Progress(enabled=not quiet)
    out_echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo

    def on_epoch(h):
        progress.clear()
        if not quiet:
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
    click.echo(f"training time {summary['seconds']:.1f}s, {summary['train_images_per_second']:,.0f} images/s, "
               f"{summary['parameters']:,} parameters")
    if summary.get("checkpoint"):
        click.echo(f"checkpoint: {summary['checkpoint']}")


# ------------------------------------------------------------------------------------------------- demo

@main.command()
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default="lean-demo.h5", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def demo(epochs, out, as_json):
    """Train LeNet-5 on the shipped digits (offline, about half a minute) and summarize."""
    from .data import load
    from .nets import build
    from .train import TrainConfig, Trainer

    data = load("digits")
    model = build("lenet5", input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    config = TrainConfig(net="lenet5", data="digits", epochs=epochs, batch_size=32, lr=0.05, schedule="cosine",
                         weight_decay=5e-4, seed=0)
    summary = _run_training(Trainer(model, data, config, out=out), as_json)
    if as_json:
        _emit_json(summary)
    else:
        _print_summary(summary)


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.pass_context
def train(ctx, net, data_name, epochs, batch_size, lr, optimizer, momentum, nesterov, schedule, warmup_epochs,
          weight_decay, label_smoothing, seed, train_limit, augment, out, resume, force, threads, as_json):
    """Train a network and write a checkpoint."""
    from dataclasses import fields

    from . import kernels
    from .data import load
    from .nets import build
    from .train import TrainConfig, Trainer
    from .train import load as load_checkpoint

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
            raise click.UsageError(f"--resume continues {resume} as it was; drop {', '.join(clash)}")
        for key in ("epochs", "batch_size", "lr", "schedule", "weight_decay"):
            if key in given:
                settings[key] = given[key]
        config = TrainConfig(**settings)
        model = ckpt.model()
        out = out or resume
        data = load(config.data)
        trainer = Trainer(model, data, config, out=out)
        trainer.restore(ckpt)
        if trainer.epoch >= config.epochs:
            raise click.UsageError(f"{resume} already finished {trainer.epoch} epochs; pass --epochs N with N > "
                                   f"{trainer.epoch} to train longer")
    else:
        if not net or not data_name:
            raise click.UsageError("--net and --data are required (or --resume run.h5)")
        config = TrainConfig(net=net, data=data_name, epochs=epochs, batch_size=batch_size, lr=lr,
                             optimizer=optimizer, momentum=momentum, nesterov=nesterov, schedule=schedule,
                             warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                             label_smoothing=label_smoothing, seed=seed, train_limit=train_limit, augment=augment)
        data = load(data_name)
        model = build(net, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed)
        out = out or f"{net}-{Path(data_name).stem}.h5"
        if Path(out).exists() and not force:
            raise click.UsageError(f"{out} exists; pass --force to overwrite it or --resume {out} to continue it")
        trainer = Trainer(model, data, config, out=out)
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
        raise click.UsageError(f"{checkpoint} does not say which data it was trained on; pass --data")
    data = load(data_name)
    if data.input_shape != model.input_shape:
        raise click.UsageError(f"{data_name} images are {data.input_shape}, the model expects {model.input_shape}")
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


def _plot_history(history, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise click.UsageError("--plot needs matplotlib: pip install 'lean[plot]'") from None
    if not history:
        raise click.UsageError("the checkpoint has no history to plot")
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    ax2.plot(epochs, [100 * h["test_accuracy"] for h in history], label="test")
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
    try:
        c, h, w = (int(v) for v in input_chw.split(","))
    except ValueError:
        raise click.UsageError(f"--input must be C,H,W like 16,32,32; got {input_chw!r}") from None
    result = bench_kernel(name, m=m, k=k, n=n, density=density, samples=samples, dims=dims, clusters=clusters,
                          batch_size=batch_size, input_shape=(h, w, c), out_channels=out_channels)
    if as_json:
        _emit_json(result)
        return
    refs = ", ".join(f"{ref} {ms:.2f} ms ({ms / result['lean_ms']:.1f}x)" for ref, ms in result["reference_ms"].items())
    click.echo(f"{name}: lean {result['lean_ms']:.2f} ms on {result['threads']} threads; {refs} "
               f"(ratio = reference time / lean time)")


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
        try:
            c, h, w = (int(v) for v in input_chw.split(","))
        except ValueError:
            raise click.UsageError(f"--input must be C,H,W like 3,32,32; got {input_chw!r}") from None
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


if __name__ == "__main__":
    main()
