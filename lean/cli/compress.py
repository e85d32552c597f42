"""``lean compress smartexchange|kmeans|quantize`` and ``lean prune``."""

from pathlib import Path

import click

from ..compress.config import DEFAULTS
from ..errors import ConfigError
from . import _common as common

RETRAIN, SE, KMEANS, QUANTIZE = DEFAULTS["retrain"], DEFAULTS["smartexchange"], DEFAULTS["kmeans"], DEFAULTS["quantize"]


@click.group()
def compress():
    """Compress a trained checkpoint: SmartExchange, deep k-means weight sharing, quantization."""


def _compress_options(f):
    return common.apply_options([
        click.argument("checkpoint", type=click.Path(dir_okay=False)),
        click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Compressed checkpoint."),
        click.option("--data", default=None, help="Dataset (default: the one it was trained on)."),
        click.option("--lr", default=RETRAIN["lr"], show_default=True, type=click.FloatRange(min=0, min_open=True),
                     help="Re-training learning rate."),
        click.option("--batch-size", default=RETRAIN["batch_size"], show_default=True, type=click.IntRange(min=1)),
        click.option("--train-limit", default=None, type=click.IntRange(min=1),
                     help="Re-train on the first N training images."),
        click.option("--seed", default=RETRAIN["seed"], show_default=True, type=click.IntRange(min=0)),
        click.option("--force", is_flag=True, help="Overwrite an existing --out file."),
        click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels."),
        common.json_option("the report"),
    ], f)


def _run(method, checkpoint, out, force, threads, as_json, **options):
    from ..compress.pipeline import compress as run_compress

    common.configure(threads)
    echo = common.lines_to(as_json)

    def on_epoch(h):
        echo(f"  re-train epoch {h['epoch']}: loss {h['train_loss']:.4f}, test {100 * h['test_accuracy']:.2f}%")

    report = run_compress(method, checkpoint, out, force=force, on_epoch=on_epoch, **options)
    common.finish(report, as_json, print_report)


def print_report(report):
    rows = any("ce_row_density" in r for r in report["layers"])  # SmartExchange: Ce's rows with content
    click.echo(f"{'layer':<28} {'kind':<5} {'params':>9} {'storage bits':>13} {'ratio':>7} {'sparsity':>9}"
               + (f" {'Ce rows':>8}" if rows else ""))
    for r in report["layers"]:
        click.echo(f"{r['layer']:<28} {r['kind']:<5} {r['parameters']:>9,} {r['storage_bits']:>13,} "
                   f"{r['compression_ratio']:>6.1f}x {100 * r['sparsity']:>8.1f}%"
                   + (f" {100 * r['ce_row_density']:>7.1f}%" if "ce_row_density" in r else ""))
    click.echo(f"whole model (everything needed to run it): {report['dense_bits']:,} -> {report['storage_bits']:,} "
               f"bits, {report['compression_ratio']:.1f}x; conv weights {report['conv_compression_ratio']:.1f}x")
    line = f"test accuracy: before {100 * report['accuracy_before']:.2f}%"
    if "accuracy_after_regularizer" in report:
        line += f", after the regularizer {100 * report['accuracy_after_regularizer']:.2f}%"
    line += (f", compressed {100 * report['accuracy_compressed']:.2f}%, after {report['retrain_epochs']} re-train "
             f"epochs {100 * report['accuracy_after']:.2f}%")
    click.echo(line)
    click.echo(f"written to {report['out']} ({Path(report['out']).stat().st_size:,} bytes) in "
               f"{report['seconds']:.1f}s")


@compress.command("smartexchange")
@_compress_options
@click.option("--theta", default=SE["theta"], show_default=True, type=click.FloatRange(min=0),
              help="Coefficients of Ce below this are zeroed.")
@click.option("--max-exponent", default=SE["max_exponent"], show_default=True, type=click.IntRange(-30, 30),
              help="Largest power of two of a coefficient (|Ce| <= 2^this).")
@click.option("--exponent-bits", default=SE["exponent_bits"], show_default=True, type=click.IntRange(1, 7))
@click.option("--basis-bits", default=str(SE["basis_bits"]), show_default=True, type=click.Choice(["8", "16"]))
@click.option("--row-threshold", default=SE["row_threshold"], type=click.FloatRange(min=0), metavar="R",
              help="The authors' row thresholding: rows of Ce with L1 norm below R x theta become zero, 3x3 convs "
                   "only (their code: 5; default off, as their scripts).")
@click.option("--retrain-epochs", default=RETRAIN["retrain_epochs"], show_default=True, type=click.IntRange(min=0))
@click.option("--retrain", default="redecompose", show_default=True, type=click.Choice(["redecompose", "fixed-mask"]),
              help="Re-training: the authors' (SGD on the dense weights, decomposed anew after every epoch) or "
                   "lean's (Ce and B fine-tuned with the first decomposition's sparsity pattern).")
def compress_smartexchange(basis_bits, **options):
    """Sparse power-of-two coefficients x small bases (Zhao et al., ISCA 2020)."""
    _run("smartexchange", basis_bits=int(basis_bits), **options)


def _parse_clusters(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--clusters takes K or a comma-separated list of K per conv layer; got {text!r}") \
            from None
    if any(v < 1 for v in values):
        raise ConfigError("--clusters must be positive")
    return values[0] if len(values) == 1 else values


@compress.command("kmeans")
@_compress_options
@click.option("--clusters", default=str(KMEANS["clusters"]), show_default=True,
              help="K for every conv layer, or a list per layer.")
@click.option("--sparsity", default=KMEANS["sparsity"], show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Fraction of kernel rows that share one fixed centre (per layer).")
@click.option("--sparse-centre", default=KMEANS["sparse_centre"], show_default=True,
              type=click.Choice(["mean", "zero"]),
              help="That centre: the mean of the rows nearest the mean row (the authors'), or zero for the "
                   "smallest rows (lean's variant: whole zero kernel rows).")
@click.option("--regularize-epochs", default=KMEANS["regularize_epochs"], show_default=True,
              type=click.IntRange(min=0))
@click.option("--regularizer", default=KMEANS["regularizer"], show_default=True,
              type=click.Choice(["paper", "indicator"]))
@click.option("--reg-lambda", default=KMEANS["reg_lambda"], show_default=True, type=click.FloatRange(min=0))
@click.option("--retrain-epochs", default=RETRAIN["retrain_epochs"], show_default=True, type=click.IntRange(min=0))
def compress_kmeans(clusters, **options):
    """Deep k-means weight sharing of conv kernel rows (Wu et al., ICML 2018)."""
    _run("kmeans", clusters=_parse_clusters(clusters), **options)


@compress.command("quantize")
@_compress_options
@click.option("--weight-bits", default=QUANTIZE["weight_bits"], show_default=True, type=click.IntRange(2, 16))
@click.option("--activation-bits", default=QUANTIZE["activation_bits"], type=click.IntRange(2, 16),
              help="Also quantize every layer's input (default: float inputs).")
@click.option("--per-channel", is_flag=True, default=QUANTIZE["per_channel"],
              help="One weight scale per output channel.")
@click.option("--scheme", default=QUANTIZE["scheme"], show_default=True,
              type=click.Choice(["symmetric", "asymmetric", "pow2"]), help="Weight quantizer.")
@click.option("--qat-epochs", default=RETRAIN["retrain_epochs"], show_default=True, type=click.IntRange(min=0),
              help="Quantization-aware re-training epochs (straight-through).")
def compress_quantize(qat_epochs, **options):
    """Low-bit quantization, post-training or with quantization-aware training (straight-through)."""
    _run("quantize", retrain_epochs=qat_epochs, **options)


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--ratio", required=True, type=click.FloatRange(0, 1, max_open=True),
              help="Fraction of channels to remove (global batch-norm scale quantile).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("--data", default=None, help="Dataset (default: the one it was trained on).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@common.json_option("the result")
def prune(checkpoint, ratio, out, data, force, as_json):
    """Network slimming: remove the channels with the smallest batch-norm scales.

    Fine-tune the result with `lean train --resume OUT --epochs N`.
    """
    from ..compress.slimming import prune_checkpoint

    common.configure()
    result = prune_checkpoint(checkpoint, ratio, out, data=data, force=force)
    common.finish(result, as_json, print_prune)


def print_prune(r):
    click.echo(f"pruned {100 * r['ratio']:.0f}% of channels: {r['params_before']:,} -> {r['params_after']:,} "
               f"parameters, {r['macs_before'] / 1e6:.1f} -> {r['macs_after'] / 1e6:.1f} M MACs per image")
    click.echo(f"test accuracy {100 * r['accuracy_before']:.2f}% -> {100 * r['accuracy_after']:.2f}% "
               f"before fine-tuning; written to {r['out']} (fine-tune: lean train --resume {r['out']} --epochs N)")


COMMANDS = (compress, prune)
