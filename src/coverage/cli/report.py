"""``covgap report CLASSIFIED``: a one-page printable summary report."""

from __future__ import annotations

from pathlib import Path

import click

from . import _reported, main
from . import options as opt


@main.command()
@click.argument("classified", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plan", "plan_path", type=opt.FileIn, help="Ranked sites from `covgap plan`.")
@click.option("--priority", "priority_path", type=opt.FileIn,
              help="Priority villages (plan --villages-out) [default: from the plan].")
@click.option("--sweep", "sweep_path", type=opt.FileIn,
              help="Budget sweep table (budget, people_connected) for the cost curve.")
@opt.inputs(fibre=True)
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="Language of the report.")
@click.option("--title", help="Heading, e.g. the province's name.")
@click.option("--currency", default="VND", show_default=True, help="Currency of the costs.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the map of classes as a PNG.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The report, e.g. reports/province.html.")
@opt.overwrite
@click.pass_context
def report(ctx: click.Context, classified: Path, plan_path: Path | None,
           priority_path: Path | None, sweep_path: Path | None, fibre: Path | None,
           assume_crs: str | None, lang: str, title: str | None, currency: str,
           png_path: Path | None, out: Path, overwrite: bool) -> None:
    """Write a one-page printable summary report (HTML).

    Counts and people per class, progress against the national targets (broadband in every
    village; fibre to 80% of households by 2025, 100% by 2030 - measured when the villages
    have `households` and --fibre is given), the top priority villages, the first sites to
    build and the cost curve. Print it from the browser (A4).

    \b
    Example:
      covgap report classified.gpkg --plan plan.csv --priority priority.csv \\
          --fibre fibre.gpkg --title "Tỉnh Lào Cai" -o reports/lao-cai.html --png lao-cai.png
    """
    import pandas as pd

    from .. import io, maps
    from ..inputs import load_inputs

    with _reported(ctx):
        opt.refuse_existing([out, png_path], overwrite)
        got = load_inputs(classified, fibre=fibre, assume_crs=assume_crs)
        villages, fib = got.villages, got.fibre
        plan_gdf = (io.read_vector(plan_path, what="plan", allow_empty=True)
                    if plan_path else None)
        priority = None
        if priority_path:  # a plain table: CSV or XLSX of the plan's --villages-out
            suffix = priority_path.suffix.lower()
            priority = (pd.read_excel(priority_path, dtype={"village_id": str})
                        if suffix == ".xlsx" else
                        pd.read_csv(priority_path, dtype={"village_id": str}))
        sweep = pd.read_csv(sweep_path) if sweep_path else None
        path = maps.write_report(villages, out, plan=plan_gdf, priority=priority, sweep=sweep,
                                 fibre=fib, lang=lang, title=title, currency=currency)
        if png_path:
            maps.static_map_png(villages, png_path, plan=plan_gdf, title=title, lang=lang)
        if not ctx.obj["quiet"]:
            click.echo(f"Written: {path}" + (f", {png_path}" if png_path else ""))
