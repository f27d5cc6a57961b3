"""The ``covgap`` command line: one small module per command, each a thin adapter.

``classify``, ``plan``, ``run`` and ``demo`` build a :class:`coverage.spec.RunSpec` from
their options (through the one settings parser of :mod:`coverage.spec`) and call
:func:`coverage.execute.execute`; ``map``, ``report``, ``validate`` and ``diff`` call one
library function each. Shared options live in :mod:`.options`. Library errors become one
readable paragraph on stderr and exit status 1 (``--debug`` shows the traceback); usage
errors exit with 2 (click's convention). Repairs the library made are listed on stderr as
warnings. Nothing imports this package.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator

import click

from .. import __version__
from ..errors import CoverageGapError, CoverageGapWarning
from . import options as opt

__all__ = ["main"]

log = logging.getLogger("coverage")


class _Once(logging.Filter):
    """Lets a log record marked ``extra={"once": KEY}`` through once (per command)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record whose ``once`` key was let through before."""
        key = getattr(record, "once", None)
        if key is None:
            return True
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _warning_printer(ctx: click.Context):
    """A ``warnings.showwarning`` that prints the library's repairs once each on stderr.

    A stage run twice (model, candidates) says a thing once; nothing under ``-q``; other
    warnings go to the debug log.
    """
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CoverageGapWarning):
            if ctx.find_root().obj.get("quiet") or str(message) in shown:
                return
            shown.add(str(message))
            click.secho(f"warning: {message}", fg="yellow", err=True)
        else:
            log.debug("%s: %s", category.__name__, message)

    return show


def _fail(ctx: click.Context, message: str, *, debug: bool) -> None:
    """Print ``message`` in red on stderr (after the traceback with ``--debug``); exit 1."""
    if debug:
        traceback.print_exc()
    click.secho(message, fg="red", err=True)
    ctx.exit(1)


@contextlib.contextmanager
def _reported(ctx: click.Context) -> Iterator[None]:
    """Turn library errors into a one-paragraph message and exit 1; show repairs."""
    debug = ctx.find_root().obj.get("debug", False)
    once = _Once()  # a message each prediction logs (the DEM's coverage) is said once
    handlers = list(log.handlers)
    for handler in handlers:
        handler.addFilter(once)
    with warnings.catch_warnings():
        warnings.simplefilter("always", CoverageGapWarning)
        warnings.showwarning = _warning_printer(ctx)
        try:
            yield
        except CoverageGapError as exc:
            _fail(ctx, f"Error: {exc}", debug=debug)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug, or a library failure we did not foresee
            _fail(ctx, f"Error: {type(exc).__name__}: {exc}\nThis looks like a bug in "
                  "coverage-gap; run again with --debug and report the traceback.",
                  debug=debug)
        finally:
            for handler in handlers:
                handler.removeFilter(once)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="covgap")
@click.option("-v", "--verbose", count=True, help="More log messages (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Find the villages mobile broadband does not reach, and plan where to build.

    \b
    Quick start on the embedded (synthetic) demo province:
      covgap demo -o out
    On your own data:
      covgap validate villages.gpkg --towers cells.csv
      covgap classify villages.gpkg --towers cells.csv --population pop.tif -o classified.gpkg
      covgap plan classified.gpkg --towers cells.csv --budget 20e9 -o plan.csv
      covgap map classified.gpkg --plan plan.csv -o maps/province.html
    Or the whole run from one commented TOML file:
      covgap run --example > province.toml
      covgap run province.toml

    \b
    Exit status: 0 success, 1 unusable input or failed run, 2 usage error.
    Shell completion (bash): eval "$(_COVGAP_COMPLETE=bash_source covgap)"
    """
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][
        min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    ctx.obj = {"debug": debug, "quiet": quiet}


def _progress(ctx: click.Context, label: str | tuple[str, ...]):
    """A progress callback drawing a bar on stderr when it is a terminal (and not -q).

    ``label`` may name successive stages that share the callback (the model's masts, then
    the plan's candidates): a call whose total differs, or whose count goes back, ends one
    bar and starts the next, under the next label.
    """
    if not sys.stderr.isatty() or ctx.find_root().obj.get("quiet"):
        return contextlib.nullcontext(None)
    labels = (label,) if isinstance(label, str) else tuple(label)

    @contextlib.contextmanager
    def bar() -> Iterator:
        state: dict = {"stage": -1}

        def update(done: int, total: int) -> None:
            if "bar" in state and (total != state["total"] or done < state["done"]):
                state.pop("bar").__exit__(None, None, None)
            if "bar" not in state:
                state["stage"] += 1
                name = labels[min(state["stage"], len(labels) - 1)]
                state["bar"] = click.progressbar(length=total, label=name, file=sys.stderr)
                state["bar"].__enter__()
                state.update(done=0, total=total)
            state["bar"].update(done - state["done"])
            state["done"] = done

        try:
            yield update
        finally:
            if "bar" in state:
                state["bar"].__exit__(None, None, None)

    return bar()


def _echo_run(ctx: click.Context, result, outputs: dict) -> None:
    """The summary, the plan's head and the files written, unless --quiet."""
    from ..execute import summarize

    if ctx.obj["quiet"]:
        return
    click.echo(opt.format_summary(summarize(result.classified)))
    if result.plan is not None:
        click.echo(opt.format_plan(result.plan))
    click.echo("\nWritten:")
    for path in outputs.values():
        click.echo(f"  {path}")


# the commands register themselves on ``main``
from . import (  # noqa: E402,F401
    classify,
    demo,
    diff,
    maps,
    plan,
    report,
    run,
    validate,
)
