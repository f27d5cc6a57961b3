"""``covgap plan CLASSIFIED``: sites to build under a budget, in build order."""

from __future__ import annotations

from pathlib import Path

import click

from . import _progress, _reported, main
from . import options as opt


def _amounts(text: str | None, what: str) -> tuple[list[str], list[float]]:
    """``10bn,15bn`` or ``2026=10bn,2027=15bn`` -> (labels, amounts).

    Semicolons separate the amounts instead when there are any (``1,5ty;2ty``: decimal
    commas).
    """
    if not text:
        return [], []
    labels, amounts = [], []
    parts = text.split(";" if ";" in text else ",")
    for k, part in enumerate(p.strip() for p in parts):
        label, _, value = part.rpartition("=")
        labels.append(label.strip() or str(k + 1))
        amounts.append(opt.Amount().convert(value, None, None))
    if not amounts:
        raise click.UsageError(f"{what}: give amounts separated by commas, e.g. 10bn,15bn")
    return labels, amounts


def _province_budgets(items: tuple[str, ...], ctx: click.Context
                      ) -> dict[str, float] | float | None:
    """``--budget-per-province`` values: one AMOUNT for all, or NAME=AMOUNT items."""
    provinces: dict[str, float] | float | None = None
    for item in items:
        name, _, value = item.rpartition("=")
        amount = opt.Amount().convert(value, None, ctx)
        if not name:
            if items[1:]:
                raise click.UsageError("--budget-per-province: give either one AMOUNT for "
                                       "every province or NAME=AMOUNT items, not both")
            provinces = amount
        else:
            provinces = {**(provinces if isinstance(provinces, dict) else {}),
                         name.strip(): amount}
    return provinces


@main.command()
@click.argument("classified", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=True, population=True, dem=True, fibre=True, roads=True, candidates=True,
            access=True, measurements=True)
@opt.column_option
@opt.budget()
@click.option("--coverage", "claims", type=opt.FileIn, multiple=True,
              help="Accepted so that plan takes the same inputs as classify, and not read: "
                   "operators' coverage maps are claims, compared by classify, never "
                   "used to plan.")
@click.option("--sites", "max_sites", type=click.IntRange(min=1),
              help="Number of sites to build (instead of, or with, --budget).")
@click.option("--phases", metavar="AMOUNTS",
              help="Budget per year, in order: 10bn,15bn,15bn or 2026=10bn,2027=15bn "
                   "(semicolons with decimal commas: 1,5ty;2ty). Sites are ordered within "
                   "and across years; unspent money carries over.")
@click.option("--budget-per-province", "province_budget", metavar="[NAME=]AMOUNT",
              multiple=True,
              help="Money a province may spend over the plan (repeatable); a bare AMOUNT "
                   "applies to every province. Needs a 'province' column.")
@click.option("--lock", "locked", metavar="SITE_ID", multiple=True,
              help="Build this planned or candidate site first, whatever it gains "
                   "(repeatable).")
@click.option("--sweep", metavar="AMOUNTS",
              help="Budgets for the cost curve (people against money), e.g. 5bn,10bn,20bn.")
@click.option("--sweep-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the cost curve [default: OUT's name + _curve.csv].")
@click.option("--weight-col", metavar="COLUMN",
              help="Numeric column of CLASSIFIED weighting each village's people (e.g. 2 for "
                   "villages with a school or on the border); 1 where empty.")
@click.option("--exact/--no-exact", default=None,
              help="Solve the exact MILP with HiGHS too [default: up to the config's "
                   "milp_max_candidates].")
@click.option("--lang", type=click.Choice(["en", "vi"]), default="en", show_default=True,
              help="Header language of XLSX outputs.")
@opt.profile_and_config
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=opt.table_out(),
              help="Ranked sites (.csv, .gpkg, .geojson, .parquet, .xlsx).")
@click.option("--villages-out", type=click.Path(dir_okay=False, path_type=Path),
              callback=opt.table_out(), help="Priority village list.")
@opt.manifest
@opt.engine
@opt.overwrite
@click.pass_context
def plan(ctx: click.Context, classified: Path, out: Path, villages_out: Path | None,
         budget: float | None, max_sites: int | None, phases: str | None,
         province_budget: tuple[str, ...], locked: tuple[str, ...], sweep: str | None,
         sweep_out: Path | None, weight_col: str | None, exact: bool | None, lang: str,
         claims: tuple[Path, ...],
         manifest: Path | None, no_manifest: bool, overwrite: bool,
         profile: str | None, config: Path | None, engine_kind: str | None,
         scheduler: str | None, **kw) -> None:
    """Rank sites to build under a budget (or a number of sites), in build order.

    CLASSIFIED is the output of `covgap classify` with its polygons (.gpkg, .geojson or
    .parquet). Every plan reports an upper bound on the people any plan within the limits
    could connect (LP relaxation or the greedy's online bound). Writes a manifest beside
    OUT.

    \b
    Examples:
      covgap plan classified.gpkg --towers sites.csv --dem srtm.tif --population pop.tif \\
          --fibre fibre.gpkg --roads roads.osm --budget 40e9 -o plan.csv \\
          --villages-out priority.xlsx
      covgap plan classified.gpkg --towers sites.csv --phases 2026=10bn,2027=15bn \\
          --budget-per-province 12bn --sweep 5bn,10bn,20bn,40bn -o plan.xlsx --lang vi
      covgap plan classified.gpkg --towers sites.csv --sites 500 --engine dask \\
          --scheduler tcp://10.0.0.5:8786 -o plan.csv
    """
    from ..execute import execute
    from ..spec import InputPaths, OutputSpec

    if claims and not ctx.find_root().obj.get("quiet"):
        click.echo(f"note: --coverage {', '.join(map(str, claims))} not read: the plan does "
                   "not use operators' coverage maps (claims); covgap classify compares them "
                   "with the classification (pop_claimed_share)", err=True)
    phase_labels, phase_amounts = _amounts(phases, "--phases")
    if budget is None and max_sites is None and not phase_amounts:
        raise click.UsageError("give --budget AMOUNT, --phases AMOUNTS or --sites N")
    provinces = _province_budgets(province_budget, ctx)
    _, sweep_amounts = _amounts(sweep, "--sweep")
    if sweep_amounts and sweep_out is None:
        sweep_out = out.with_name(out.stem + "_curve.csv")
    with _reported(ctx), _progress(ctx, ("modelling coverage", "modelling candidates")) as progress:
        limits = {"budget": budget, "max_sites": max_sites, "phases": phase_amounts,
                  "phase_labels": phase_labels if phase_amounts else None,
                  "province_budgets": provinces, "locked": list(locked),
                  "sweep": sweep_amounts, "weight_col": weight_col, "exact": exact}
        spec = opt.settings_spec(config, profile=profile, scenario=limits,
                                 file_limits=False).replace(
            inputs=InputPaths.of(classified, **kw), classified_input=True,
            outputs=OutputSpec.only(
                plan=out, priority=villages_out,
                sweep=sweep_out if sweep_amounts else None, lang=lang,
                manifest=opt.manifest_path(out, manifest, no_manifest)))
        with opt.engine_for(engine_kind, scheduler) as engine:
            result = execute(spec, engine=engine, progress=progress, overwrite=overwrite)
        if not ctx.obj["quiet"]:
            click.echo(opt.format_plan(result.plan))
            click.echo("Written: " + ", ".join(str(p) for p in result.outputs.values()))
