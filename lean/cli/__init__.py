"""The ``lean`` command: a thin layer that parses options, calls one function of the package and prints.

One module per command group: ``train`` (train, eval, info, demo), ``compress`` (compress, prune), ``hw``,
``bench``, ``catalog`` (nets, data). Each command body parses, calls the function a notebook would call
(``lean.train.start``, ``lean.compress.pipeline.compress``, ``lean.hw.predict``, ...) and prints. The command
modules import only click and the import-light config modules; NumPy, Numba and the rooms are imported inside
the commands, so ``lean --help`` stays fast.

Errors: a ``lean.LeanError`` (a bad name, option, file or dataset; a diverged run) and a file-system
``OSError`` print as one ``error:`` line with a non-zero exit (130 for Ctrl-C); anything else is a bug and shows
its traceback. ``lean --debug ...`` or ``LEAN_DEBUG=1`` shows the traceback of every error. Warnings print as
one ``warning:`` line.
"""

import os
import sys
import traceback
import warnings

import click

from .. import __version__
from ..errors import LeanError, TrainingInterrupted
from . import bench, catalog, compress, hw, train


def _debug(ctx=None):
    flag = bool(ctx and ctx.find_root().params.get("debug"))
    return flag or os.environ.get("LEAN_DEBUG", "") not in ("", "0")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"warning: {message}", err=True)


def _os_message(exc):
    where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror}{where}" if exc.strerror else str(exc)


class LeanGroup(click.Group):
    """Turns lean's own errors, file-system errors and click's usage errors into one-line errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        warnings.showwarning = _show_warning
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
        except (LeanError, OSError) as exc:
            if _debug() or getattr(exc, "lean_debug", False):
                traceback.print_exc()
            message = str(exc) if isinstance(exc, LeanError) else _os_message(exc)
            click.echo(f"error: {message}", err=True)
            sys.exit(130 if isinstance(exc, TrainingInterrupted) else 1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (LeanError, OSError) as exc:
            exc.lean_debug = _debug(ctx)
            raise


@click.group(cls=LeanGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lean")
@click.option("--debug", is_flag=True, help="Show the traceback of any error (also LEAN_DEBUG=1).")
@click.pass_context
def main(ctx, debug):
    """Train, compress and cost deep networks on a plain CPU."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for module in (train, compress, hw, bench, catalog):
    for command in module.COMMANDS:
        main.add_command(command)


if __name__ == "__main__":
    main()
