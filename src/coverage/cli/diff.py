"""``covgap diff OLD NEW``: villages whose class changed between two runs, and why."""

from __future__ import annotations

from pathlib import Path

import click

from . import _reported, main  # the package defines them before importing this module
from . import options as opt


@main.command()
@click.argument("old", type=opt.FileIn)
@click.argument("new", type=opt.FileIn)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The table of every village of either run (.csv, .xlsx, .parquet, .gpkg, "
              ".geojson) with change, causes, why and the old and new values.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Changed villages listed in the printed summary.")
@opt.overwrite
@click.pass_context
def diff(ctx: click.Context, old: Path, new: Path, out: Path | None, top: int,
         overwrite: bool) -> None:
    """Compare two outputs of `covgap classify`: which villages changed class, and why.

    Causes are read from the columns both runs carry: a field correction, a new (or lost)
    site, new measurements, a population change, a modelled coverage change, an access
    change, or - when none of these moved - a threshold or profile change. Every village of
    either run appears once in OUT; villages only in NEW are `added`, only in OLD `removed`.

    \b
    Example:
      covgap diff classified-2025q2.gpkg classified-2025q3.gpkg -o changes.xlsx
    """
    from .. import io
    from ..diff import diff_classified, diff_summary, read_classified

    with _reported(ctx):
        opt.refuse_existing([out], overwrite)
        table = diff_classified(read_classified(old, what="old classified"),
                                read_classified(new, what="new classified"))
        if out:
            io.write_table(table, out, overwrite=overwrite)
        if not ctx.obj["quiet"]:
            click.echo(diff_summary(table, top=top))
            if out:
                click.echo(f"Written: {out}")
