"""``lean bench kernel``, ``lean bench train``, ``lean bench infer``."""

import click

from ..errors import ConfigError
from . import _common as common


@click.group()
def bench():
    """Measure speed: whole training/inference steps, or single kernels against their references."""


class ShapeCHW(click.ParamType):
    """An image shape given as C,H,W (channels first, as people write it); converted to lean's (h, w, c)."""

    name = "C,H,W"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            c, h, w = (int(v) for v in value.split(","))
        except ValueError:
            raise ConfigError(f"--input must be C,H,W like 3,32,32; got {value!r}") from None
        if min(c, h, w) < 1:
            raise ConfigError(f"--input sizes must be >= 1; got {value!r}")
        return (h, w, c)


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
@click.option("--input", "input_shape", default="16,32,32", show_default=True, type=ShapeCHW(),
              help="C,H,W for int8-conv.")
@click.option("--out-channels", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", default=None, type=click.IntRange(min=1))
@common.json_option("the timings")
def kernel(name, threads, as_json, **shape):
    """Time a kernel and its references side by side in one run (median of 7)."""
    from ..bench import bench_kernel

    common.configure(threads)
    common.finish(bench_kernel(name, **shape), as_json, print_kernel)


def print_kernel(r):
    refs = ", ".join(f"{ref} {ms:.2f} ms ({ms / r['lean_ms']:.1f}x)" for ref, ms in r["reference_ms"].items())
    path = f" ({r['method']} path)" if "method" in r else ""
    click.echo(f"{r['kernel']}: lean {r['lean_ms']:.2f} ms{path} on {r['threads']} threads; {refs} "
               f"(ratio = reference time / lean time)")


def _step_options(f):
    return common.apply_options([
        click.option("--net", required=True, help="Network name (see `lean nets`)."),
        click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option("--input", "input_shape", default=None, type=ShapeCHW(), help="C,H,W (default per net)."),
        click.option("--classes", default=10, show_default=True, type=click.IntRange(min=2)),
        click.option("--threads", default=None, type=click.IntRange(min=1)),
        click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1)),
        click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0)),
        common.json_option("the timings"),
    ], f)


@bench.command("train")
@_step_options
@click.option("--layers", is_flag=True, help="Also time each layer's forward and backward.")
@click.option("--precision", type=click.Choice(["float32", "bf16"]), default="float32", show_default=True,
              help="Products of the convolutions, as `lean train --precision`.")
def train_step(**options):
    """Images/s of a full training step (forward, loss, backward, SGD update) on random data."""
    _bench_step("train", **options)


@bench.command("infer")
@_step_options
@click.option("--layers", is_flag=True, help="Also time each layer's forward (fused layers show as such).")
def infer_step(**options):
    """Images/s of inference on random data."""
    _bench_step("infer", **options)


def _bench_step(mode, net, batch_size, input_shape, classes, threads, steps, warmup, layers, as_json,
                precision="float32"):
    from ..bench import bench_model
    from ..nets import default_input

    result = bench_model(mode, net, batch_size=batch_size, input_shape=input_shape or default_input(net),
                         num_classes=classes, threads=threads, steps=steps, warmup=warmup, profile=layers,
                         precision=precision)
    common.finish(result, as_json, print_step)


def print_step(r):
    if r.get("layers"):
        backward = r["mode"] == "train"
        click.echo(f"{'layer':<36} {'type':<14} {'kernel':<10} {'forward ms':>10}"
                   + (f" {'backward ms':>11}" if backward else ""))
        for row in r["layers"]:
            click.echo(f"{row['name']:<36} {row['type']:<14} {row['kernel']:<10} {row['forward_ms']:>10.2f}"
                       + (f" {row['backward_ms']:>11.2f}" if backward else ""))
    h, w, c = r["input_shape"]
    precision = f", {r['precision']} products" if r.get("precision", "float32") != "float32" else ""
    click.echo(f"{r['net']} {r['mode']}{precision}, batch {r['batch_size']}, input {c},{h},{w}, "
               f"{r['threads']} threads: "
               f"{r['images_per_second']:,.0f} images/s (median of {r['steps']} steps, "
               f"{1e3 * r['step_seconds_median']:.1f} ms/step; first step {r['first_step_seconds']:.2f}s)")


COMMANDS = (bench,)
