"""What the command modules share: JSON output, progress bars, epoch lines, options built from config fields.

Light on purpose (click and the import-light config modules only): ``lean --help`` imports every command
module, and the heavy rooms are imported inside the commands.
"""

import json
import sys
import time
from dataclasses import MISSING, fields

import click

from ..nets.recipes import recipe_help
from ..train.config import METHODS, flag_of

# ------------------------------------------------------------------------------------------------ output

def json_option(what="the result"):
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as one JSON object, the last line of stdout (progress goes to stderr).")


def emit_json(obj):
    click.echo(json.dumps(obj, default=_json_default))


def _json_default(v):
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def finish(result, as_json, show):
    """Print ``result`` as JSON, or through ``show(result)`` for a person."""
    if as_json:
        emit_json(result)
    else:
        show(result)


def lines_to(as_json):
    """Where lines for a person go: stdout, or stderr when stdout carries JSON."""
    return (lambda s: click.echo(s, err=True)) if as_json else click.echo


def configure(threads=None):
    """Threads for the commands that run lean's kernels (``lean.configure``)."""
    from .. import configure as lean_configure

    lean_configure(threads)


# ---------------------------------------------------------------------------------------------- progress

class Progress:
    """A one-line progress bar on stderr, redrawn at most 5 times a second, only when stderr is a terminal."""

    def __init__(self):
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def draw(self, text, done, total, tail=""):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and done != total:
            return
        self.last = now
        width = 24
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{text} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {tail}   ")
        sys.stderr.flush()

    def step(self, info):
        """``on_step`` of a training run."""
        self.draw(f"epoch {info['epoch']}/{info['epochs']}", info["step"], info["steps"],
                  f"loss {info['loss']:.4f}  {info['images_per_second']:,.0f} img/s  "
                  f"ETA {duration(info['eta_seconds'])}")

    def batches(self, done, total):
        """``on_batch`` of an evaluation."""
        self.draw("test", done, total)

    def clear(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()


def duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def percent(value):
    return "   -  " if value is None else f"{100 * value:5.2f}%"  # None: not evaluated (--eval-every)


def epoch_line(h, epochs):
    test = percent(h.get("test_accuracy"))
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


def training_callbacks(as_json):
    """``on_step`` and ``on_epoch`` for a training run: a progress bar and one line per epoch."""
    progress, echo = Progress(), lines_to(as_json)

    def on_epoch(h):
        progress.clear()
        echo(epoch_line(h, h.get("epochs", "?")))

    return {"on_step": progress.step, "on_epoch": on_epoch}


# ----------------------------------------------------------------------------- options from config fields

def _click_type(meta):
    kind = meta.get("kind")
    if meta.get("choices"):
        return click.Choice(list(meta["choices"]))
    bounds = {"min": meta.get("minimum"), "max": meta.get("maximum"), "min_open": meta.get("min_open", False),
              "max_open": meta.get("max_open", False)}
    if kind is int:
        return click.IntRange(**bounds)
    if kind is float:
        return click.FloatRange(**bounds)
    return str


def field_option(f, dest, *, required_unless=None):
    """A click option for a config field (``lean.train.config.option`` metadata); its value reaches the command
    under ``dest``. Recipe settings say their per-net defaults; others show theirs; ``required_unless`` names the
    option that makes this one optional."""
    meta = f.metadata
    flag = flag_of(f)
    help_text = meta["help"] + (f" [required unless {required_unless}]" if required_unless else "")
    if meta.get("recipe"):
        by_method = [f"with {flag_of(next(g for g in fields(cls) if g.metadata.get('switch')))}: {cls.recipe[f.name]}"
                     for cls in METHODS.values() if f.name in cls.recipe]
        help_text += f" [default: the net's recipe, {recipe_help(f.name)}{''.join('; ' + b for b in by_method)}]"
    if meta.get("kind") is bool:
        if meta.get("recipe"):
            name = flag[2:]
            return click.option(f"--{name}/--no-{name}", dest, default=None, help=help_text)
        return click.option(flag, dest, is_flag=True, default=bool(f.default), help=help_text)
    shown = f.default not in (None, MISSING) and not (meta.get("recipe") or meta.get("switch") or required_unless)
    return click.option(flag, dest, type=_click_type(meta), default=f.default if shown else None,
                        show_default=shown, metavar=meta.get("metavar"), help=help_text)


def apply_options(options, f):
    for option in reversed(options):
        f = option(f)
    return f


def given_params(ctx):
    """The command's parameters the user gave (not their defaults)."""
    from click.core import ParameterSource

    return {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k) != ParameterSource.DEFAULT}


__all__ = ["json_option", "emit_json", "finish", "lines_to", "configure", "Progress", "duration", "percent",
           "epoch_line", "training_callbacks", "field_option", "apply_options", "given_params"]
