"""The ``covgap`` command line: thin commands over :mod:`coverage.pipeline`.

Library errors become one readable paragraph on stderr and exit status 1 (``--debug`` shows
the traceback); usage errors exit with 2 (click's convention). Repairs the library made are
listed on stderr as warnings. Nothing imports this package.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from .. import __version__
from ..errors import CoverageGapError, CoverageGapWarning
from . import options as opt

__all__ = ["main"]

log = logging.getLogger("coverage")


@contextlib.contextmanager
def _reported(ctx: click.Context) -> Iterator[None]:
    """Turn library errors into a one-paragraph message and exit 1; show repairs."""
    debug = ctx.find_root().obj.get("debug", False)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CoverageGapWarning):
            if ctx.find_root().obj.get("quiet"):
                return
            click.secho(f"warning: {message}", fg="yellow", err=True)
        else:
            log.debug("%s: %s", category.__name__, message)

    with warnings.catch_warnings():
        warnings.simplefilter("always", CoverageGapWarning)
        warnings.showwarning = show
        try:
            yield
        except CoverageGapError as exc:
            if debug:
                traceback.print_exc()
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug, or a library failure we did not foresee
            if debug:
                traceback.print_exc()
            click.secho(f"Error: {type(exc).__name__}: {exc}\nThis looks like a bug in "
                        "coverage-gap; run again with --debug and report the traceback.",
                        fg="red", err=True)
            ctx.exit(1)


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


def _progress(ctx: click.Context, label: str):
    """A progress callback drawing a bar on stderr when it is a terminal (and not -q)."""
    if not sys.stderr.isatty() or ctx.find_root().obj.get("quiet"):
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar() -> Iterator:
        state: dict = {}

        def update(done: int, total: int) -> None:
            if "bar" not in state:
                state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
                state["bar"].__enter__()
            state["bar"].update(done - state.get("done", 0))
            state["done"] = done

        try:
            yield update
        finally:
            if "bar" in state:
                state["bar"].__exit__(None, None, None)

    return bar()


def _echo_run(ctx: click.Context, result, outputs: dict) -> None:
    """The summary, the plan's head and the files written, unless --quiet."""
    from ..pipeline import summarize

    if ctx.obj["quiet"]:
        return
    click.echo(opt.format_summary(summarize(result.classified)))
    if result.plan is not None:
        click.echo(opt.format_plan(result.plan))
    click.echo("\nWritten:")
    for path in outputs.values():
        click.echo(f"  {path}")


@main.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out"), show_default=True, help="Folder for the tables.")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("maps/demo.html"), show_default=True, help="The HTML map.")
@opt.budget(default_help="40 billion VND")
@opt.overwrite
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, map_path: Path, budget: float | None,
         overwrite: bool) -> None:
    """Run the main job on the embedded synthetic province.

    Classifies every demo village, plans a rollout, writes the tables and a manifest under
    OUT and the interactive offline map, and prints a summary. This is `covgap run` on the
    embedded run file, which `covgap run --example` prints.

    \b
    Example:
      covgap demo -o out --map maps/demo.html
      covgap demo -o out --budget 80bn --overwrite
    """
    from ..pipeline import DEMO_CONFIG
    from ..scenario import run_config

    with _reported(ctx), _progress(ctx, "modelling coverage") as progress:
        run = run_config(DEMO_CONFIG, out_dir=out_dir, map_path=map_path, budget=budget,
                         overwrite=overwrite, progress=progress)
        _echo_run(ctx, run.result, run.outputs)


@main.command()
@click.argument("config", type=opt.FileIn, required=False)
@click.option("--example", is_flag=True,
              help="Print the commented demo run file (every key) and exit.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the tables [default: the file's [outputs] dir].")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML map [default: the file's [outputs] map].")
@opt.budget(default_help="the file's [scenario] budget")
@opt.engine
@opt.overwrite
@click.pass_context
def run(ctx: click.Context, config: Path | None, example: bool, out_dir: Path | None,
        map_path: Path | None, budget: float | None, overwrite: bool,
        engine_kind: str | None, scheduler: str | None) -> None:
    """Classify, plan, map and export in one go, as a TOML run file says.

    CONFIG names the inputs, profile, thresholds, model, costs, budget, technologies and
    outputs; every key is documented in the commented demo file
    (src/coverage/datasets/demo.toml, also written by `covgap run --example`). The run
    writes a manifest (tool version, parameters, SHA-256 of every input) beside the tables.

    \b
    Example:
      covgap run --example > lao-cai.toml      # then edit [inputs] and [outputs]
      covgap run lao-cai.toml
      covgap run lao-cai.toml -o out/80bn --budget 80bn --overwrite
      covgap run vietnam.toml --engine dask --scheduler tcp://10.0.0.5:8786
    """
    from ..pipeline import DEMO_CONFIG
    from ..scenario import run_config

    if example:
        click.echo(DEMO_CONFIG.read_text(encoding="utf-8"), nl=False)
        return
    if config is None:
        raise click.UsageError("give a run file (covgap run FILE.toml), or --example to "
                               "print a commented one")
    with _reported(ctx), _progress(ctx, "modelling coverage") as progress:
        engine = opt.make_engine(engine_kind, scheduler)
        if engine is None and engine_kind == "local":  # wins over the file's [engine]
            from ..engine import Engine

            engine = Engine("local")
        try:
            result = run_config(config, out_dir=out_dir, map_path=map_path, budget=budget,
                                overwrite=overwrite, progress=progress, engine=engine)
        finally:
            if engine is not None:
                engine.close()
        _echo_run(ctx, result.result, result.outputs)


@main.command()
@click.argument("villages", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=True, measurements=True, population=True, dem=True, access=True,
            fibre=True)
@opt.village_columns
@opt.profile_and_config
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Classified villages (.gpkg, .geojson, .parquet, .csv, .xlsx).")
@click.option("--coverage-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the best broadband level (dBm) as a GeoTIFF.")
@click.option("--aggregate-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write villages, people and households per class per commune, "
              "district and province, with the fibre targets (.csv, .xlsx, .parquet).")
@click.option("--crosswalk", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV from_id,to_id[,weight] mapping old units onto new ones (e.g. the "
              "1 July 2025 commune merger); adds those units to --aggregate-out.")
@click.option("--crosswalk-on", default="commune", show_default=True,
              help="Village column holding the old unit id that from_id refers to.")
@click.option("--corrections", type=opt.FileIn,
              help="Field-check corrections (CSV: village_id, source, date, and class or "
              "evidence such as pop_covered_share, n_tests, median_download_mbps); applied "
              "with provenance columns (corrected, correction_source, class_original...).")
@opt.engine
@opt.overwrite
@click.pass_context
def classify(ctx: click.Context, villages: Path, out: Path, coverage_out: Path | None,
             aggregate_out: Path | None, crosswalk: Path | None, crosswalk_on: str,
             corrections: Path | None, overwrite: bool, profile: str | None,
             config: Path | None, engine_kind: str | None, scheduler: str | None,
             **kw) -> None:
    """Classify every village: unavailable, available_inaccessible or served.

    \b
    Example:
      covgap classify villages.gpkg --towers sites.csv --towers opencellid.csv \\
          --measurements tests.csv --population worldpop.tif --dem srtm.tif \\
          --profile vn-2025 -o classified.gpkg
      covgap classify villages.gpkg --towers sites.csv --engine dask \\
          --scheduler tcp://10.0.0.5:8786 -o classified.gpkg
    """
    from .. import io
    from ..aggregate import aggregate, read_crosswalk
    from ..classify import read_corrections
    from ..params import BROADBAND_TECHS
    from ..pipeline import Settings, load_inputs, run_classify, summarize

    with _reported(ctx), _progress(ctx, "modelling coverage") as progress:
        opt.refuse_existing([out, coverage_out, aggregate_out], overwrite)
        if crosswalk and not aggregate_out:
            raise click.UsageError("--crosswalk needs --aggregate-out")
        settings = Settings.from_config(config, profile=profile)
        cw = read_crosswalk(crosswalk) if crosswalk else None
        fixes = read_corrections(corrections) if corrections else None
        engine = opt.make_engine(engine_kind, scheduler, settings.engine)
        inputs = load_inputs(villages, **kw)
        try:
            classified, surfaces = run_classify(inputs, settings=settings, progress=progress,
                                                corrections=fixes, engine=engine)
        finally:
            if engine is not None:
                engine.close()
        io.write_table(classified, out, overwrite=overwrite)
        if aggregate_out:
            table = aggregate(classified, profile=settings.profile, crosswalk=cw,
                              crosswalk_on=crosswalk_on)
            io.write_table(table, aggregate_out, overwrite=overwrite)
        if coverage_out:
            io.write_raster(io.Raster(surfaces.best(techs=BROADBAND_TECHS),
                                      surfaces.grid.transform, surfaces.grid.crs),
                            coverage_out, overwrite=overwrite,
                            band_names=["best_broadband_dbm"])
        if not ctx.obj["quiet"]:
            click.echo(opt.format_summary(summarize(classified)))
            if fixes is not None:
                n_changed = int((classified["class"] != classified["class_original"]).sum())
                click.echo(f"Corrections applied to {int(classified['corrected'].sum())} "
                           f"village(s); {n_changed} changed class")
            if "label_stable" in classified.columns and len(classified):
                click.echo(f"Labels stable under +/-{settings.profile.stability_db:g} dB and "
                           f"+/-{settings.profile.stability_rel:.0%} thresholds: "
                           f"{classified['label_stable'].mean():.1%} of villages")
            click.echo(f"Written: {out}" + (f", {aggregate_out}" if aggregate_out else ""))


def _amounts(text: str | None, what: str) -> tuple[list[str], list[float]]:
    """``10bn,15bn`` or ``2026=10bn,2027=15bn`` -> (labels, amounts)."""
    if not text:
        return [], []
    labels, amounts = [], []
    for k, part in enumerate(p.strip() for p in text.split(",")):
        label, _, value = part.rpartition("=")
        labels.append(label.strip() or str(k + 1))
        amounts.append(opt.Amount().convert(value, None, None))
    if not amounts:
        raise click.UsageError(f"{what}: give amounts separated by commas, e.g. 10bn,15bn")
    return labels, amounts


@main.command()
@click.argument("classified", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=True, population=True, dem=True, fibre=True, roads=True, candidates=True,
            access=True, measurements=True)
@opt.budget()
@click.option("--sites", "max_sites", type=click.IntRange(min=1),
              help="Number of sites to build (instead of, or with, --budget).")
@click.option("--phases", metavar="AMOUNTS",
              help="Budget per year, in order: 10bn,15bn,15bn or 2026=10bn,2027=15bn. "
                   "Sites are ordered within and across years; unspent money carries over.")
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
              help="Ranked sites (.csv, .gpkg, .geojson, .parquet, .xlsx).")
@click.option("--villages-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Priority village list.")
@opt.engine
@opt.overwrite
@click.pass_context
def plan(ctx: click.Context, classified: Path, out: Path, villages_out: Path | None,
         budget: float | None, max_sites: int | None, phases: str | None,
         province_budget: tuple[str, ...], locked: tuple[str, ...], sweep: str | None,
         sweep_out: Path | None, weight_col: str | None, exact: bool | None, lang: str,
         overwrite: bool,
         profile: str | None, config: Path | None, engine_kind: str | None,
         scheduler: str | None, **kw) -> None:
    """Rank sites to build under a budget (or a number of sites), in build order.

    CLASSIFIED is the output of `covgap classify` with its polygons (.gpkg, .geojson or
    .parquet). Every plan reports an upper bound on the people any plan within the limits
    could connect (LP relaxation or the greedy's online bound).

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
    import pandas as pd

    from ..pipeline import Settings, load_inputs, run_plan
    from ..plan import write_plan_table

    phase_labels, phase_amounts = _amounts(phases, "--phases")
    if budget is None and max_sites is None and not phase_amounts:
        raise click.UsageError("give --budget AMOUNT, --phases AMOUNTS or --sites N")
    provinces: dict[str, float] | float | None = None
    for item in province_budget:
        name, _, value = item.rpartition("=")
        amount = opt.Amount().convert(value, None, ctx)
        if not name:
            if province_budget[1:]:
                raise click.UsageError("--budget-per-province: give either one AMOUNT for "
                                       "every province or NAME=AMOUNT items, not both")
            provinces = amount
        else:
            provinces = {**(provinces if isinstance(provinces, dict) else {}),
                         name.strip(): amount}
    _, sweep_amounts = _amounts(sweep, "--sweep")
    if sweep_amounts and sweep_out is None:
        sweep_out = out.with_name(out.stem + "_curve.csv")
    with _reported(ctx), _progress(ctx, "modelling candidates") as progress:
        opt.refuse_existing([out, villages_out, sweep_out], overwrite)
        settings = Settings.from_config(config, profile=profile)
        inputs = load_inputs(classified, **kw)
        if "class" not in inputs.villages.columns:
            raise click.UsageError(f"{classified} has no 'class' column: give the output of "
                                   "covgap classify")
        weight = None
        if weight_col:
            if weight_col not in inputs.villages.columns:
                raise click.UsageError(f"--weight-col {weight_col}: no such column in "
                                       f"{classified}")
            weight = pd.to_numeric(inputs.villages[weight_col], errors="coerce").fillna(1.0)
            if (weight < 0).any():
                raise click.UsageError(f"--weight-col {weight_col} has negative weights")
            weight = weight.to_numpy(dtype=float)
        engine = opt.make_engine(engine_kind, scheduler, settings.engine)
        try:
            result = run_plan(inputs.villages, inputs, budget=budget, max_sites=max_sites,
                              settings=settings, phases=phase_amounts,
                              phase_labels=phase_labels if phase_amounts else None,
                              province_budgets=provinces, locked=locked,
                              sweep=sweep_amounts, village_weight=weight, exact=exact,
                              progress=progress, engine=engine)
        finally:
            if engine is not None:
                engine.close()
        write_plan_table(result.sites, out, overwrite=overwrite, lang=lang)
        if villages_out:
            write_plan_table(result.villages, villages_out, overwrite=overwrite, lang=lang)
        if sweep_out is not None and result.curve is not None:
            write_plan_table(result.curve, sweep_out, overwrite=overwrite, lang=lang)
        if not ctx.obj["quiet"]:
            click.echo(opt.format_plan(result))
            written = [p for p in (out, villages_out, sweep_out) if p is not None]
            click.echo("Written: " + ", ".join(str(p) for p in written))


@main.command(name="map")
@click.argument("classified", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Ranked sites from `covgap plan`.")
@opt.inputs(towers=False, measurements=True, optional_towers=True)
@click.option("--coverage", "coverage_path", type=opt.FileIn,
              help="Received power raster in dBm (GeoTIFF, e.g. from classify --coverage-out), "
                   "drawn as an overlay.")
@click.option("--communes", type=opt.FileIn,
              help="Commune boundaries (any vector format) [default: from the villages' "
                   "commune column].")
@click.option("--districts", type=opt.FileIn,
              help="District boundaries [default: from the villages' district column].")
@click.option("--by", "by", metavar="COLUMN",
              help="National run: write OUT as an index of COLUMN's values (e.g. province) and "
                   "one map and PNG per value beside it.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="Language of the map's labels.")
@click.option("--title", help="Title shown on the map.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML file, e.g. maps/province.html.")
@opt.overwrite
@click.pass_context
def map_(ctx: click.Context, classified: Path, plan_path: Path | None, out: Path, lang: str,
         title: str | None, overwrite: bool, towers, measurements, assume_crs,
         coverage_path: Path | None, communes: Path | None, districts: Path | None,
         by: str | None) -> None:
    """Draw classified villages as one offline HTML map (or an index and one per province).

    The page carries its scripts and styles, so it opens with no internet.

    \b
    Example:
      covgap map classified.gpkg --plan plan.csv --towers sites.csv \\
          --coverage best_dbm.tif -o maps/province.html
      covgap map national.gpkg --by province -o maps/index.html
    """
    from .. import io, maps

    with _reported(ctx):
        if by is None:
            opt.refuse_existing([out], overwrite)
        villages = io.read_villages(classified, assume_crs=assume_crs)
        plan_gdf = io.read_vector(plan_path, what="plan") if plan_path else None
        tw = io.read_towers(list(towers), assume_crs=assume_crs) if towers else None
        ms = (io.read_measurements(list(measurements), assume_crs=assume_crs)
              if measurements else None)
        cov = None
        if coverage_path:
            r = io.read_raster(coverage_path, what="coverage raster", assume_crs=assume_crs)
            cov = (r.array, r.transform, r.crs)
        if by is not None:
            result = maps.national_maps(villages, out, by=by, plan=plan_gdf, towers=tw,
                                        measurements=ms, coverage=cov, lang=lang, title=title,
                                        overwrite=overwrite)
            if not ctx.obj["quiet"]:
                click.echo(f"Written: {result.index} and {len(result.pages)} page(s) and "
                           f"PNG(s) beside it")
            return
        boundaries = None
        if communes or districts:
            boundaries = {}
            if communes:
                boundaries["commune"] = io.read_vector(communes, what="communes",
                                                       assume_crs=assume_crs)
            if districts:
                boundaries["district"] = io.read_vector(districts, what="districts",
                                                        assume_crs=assume_crs)
        m = maps.village_map(villages, plan=plan_gdf, towers=tw, measurements=ms, lang=lang,
                             title=title, boundaries=boundaries, coverage=cov)
        path = maps.save_map(m, out)
        if not ctx.obj["quiet"]:
            click.echo(f"Written: {path}")


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

    with _reported(ctx):
        opt.refuse_existing([out, png_path], overwrite)
        villages = io.read_villages(classified, assume_crs=assume_crs)
        plan_gdf = io.read_vector(plan_path, what="plan") if plan_path else None
        priority = None
        if priority_path:  # a plain table: CSV or XLSX of the plan's --villages-out
            suffix = priority_path.suffix.lower()
            priority = (pd.read_excel(priority_path, dtype={"village_id": str})
                        if suffix == ".xlsx" else
                        pd.read_csv(priority_path, dtype={"village_id": str}))
        sweep = pd.read_csv(sweep_path) if sweep_path else None
        fib = io.read_fibre(fibre, assume_crs=assume_crs) if fibre else None
        path = maps.write_report(villages, out, plan=plan_gdf, priority=priority, sweep=sweep,
                                 fibre=fib, lang=lang, title=title, currency=currency)
        if png_path:
            maps.static_map_png(villages, png_path, plan=plan_gdf, title=title, lang=lang)
        if not ctx.obj["quiet"]:
            click.echo(f"Written: {path}" + (f", {png_path}" if png_path else ""))


@main.command()
@click.argument("villages", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=False, optional_towers=True, measurements=True, population=True, dem=True,
            access=True, fibre=True, roads=True, candidates=True)
@opt.village_columns
@opt.config_option
@click.pass_context
def validate(ctx: click.Context, villages: Path, config: Path | None, **kw) -> None:
    """Check inputs and report every problem; change nothing.

    Every input is read as a run would read it: refusals are listed as errors, repairs
    (invalid geometry, dropped rows, guessed encodings...) as warnings, with the file, the
    rows and the fix. Exit status 0 when the inputs are usable, 1 when they are not.

    \b
    Example:
      covgap validate villages.shp --towers opencellid.csv --measurements tests.csv \\
          --population worldpop.tif --col name=TEN_THON
    """
    from ..validate import validate_inputs

    with _reported(ctx):
        report = validate_inputs(villages, **kw)
        click.echo(report.text())
        if not report.ok:
            ctx.exit(1)


from . import diff as _diff  # noqa: E402,F401  (registers `covgap diff`)
