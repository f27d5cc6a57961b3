"""``covgap validate VILLAGES``: every problem of the inputs; nothing changed."""

from __future__ import annotations

from pathlib import Path

import click

from . import _reported, main
from . import options as opt


@main.command()
@click.argument("villages", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=False, optional_towers=True, measurements=True, population=True, dem=True,
            access=True, fibre=True, roads=True, candidates=True, coverage=True)
@opt.village_columns
@opt.config_option
@click.pass_context
def validate(ctx: click.Context, villages: Path, config: Path | None, **kw) -> None:
    """Check inputs and report every problem; change nothing.

    Every input is read as a run would read it: refusals are listed as errors, repairs
    (invalid geometry, dropped rows, guessed encodings...) as warnings, with the file, the
    rows and the fix. A --config file is read as a run reads it (unknown settings are
    errors) and its [model] max_range_km decides which towers are too far. Exit status 0
    when the inputs are usable, 1 when they are not.

    \b
    Example:
      covgap validate villages.shp --towers opencellid.csv --measurements tests.csv \\
          --population worldpop.tif --col name=TEN_THON
    """
    from ..validate import validate_inputs

    with _reported(ctx):
        spec = opt.settings_spec(config)
        report = validate_inputs(villages, max_range_km=spec.params.model.max_range_km, **kw)
        click.echo(report.text())
        if not report.ok:
            ctx.exit(1)
