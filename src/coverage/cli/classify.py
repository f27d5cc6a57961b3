"""``covgap classify VILLAGES``: every village unavailable, available_inaccessible or served."""

from __future__ import annotations

from pathlib import Path

import click

from . import _progress, _reported, main
from . import options as opt


@main.command()
@click.argument("villages", type=click.Path(dir_okay=False, path_type=Path))
@opt.inputs(towers=True, measurements=True, population=True, dem=True, access=True,
            fibre=True, coverage=True)
@opt.village_columns
@opt.profile_and_config
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=opt.table_out(),
              help="Classified villages (.gpkg, .geojson, .parquet, .csv, .xlsx).")
@click.option("--coverage-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the best broadband level (dBm) as a GeoTIFF.")
@click.option("--aggregate-out", type=click.Path(dir_okay=False, path_type=Path),
              callback=opt.table_out((".csv", ".xlsx", ".parquet")),
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
@click.option("--sharing/--no-sharing", default=None,
              help="Infrastructure sharing: a resident covered by any operator counts as "
              "covered; with --no-sharing, each operator's subscribers count only its own "
              "network [default: on, or the config's [scenario] sharing].")
@click.option("--market-share", "market_share", metavar="OPERATOR=SHARE", multiple=True,
              help="Share of subscribers of an operator, for --no-sharing (repeatable; "
              "normalised) [default: equal shares].")
@opt.manifest
@opt.engine
@opt.overwrite
@click.pass_context
def classify(ctx: click.Context, villages: Path, out: Path, coverage_out: Path | None,
             aggregate_out: Path | None, crosswalk: Path | None, crosswalk_on: str,
             corrections: Path | None, sharing: bool | None,
             market_share: tuple[str, ...], manifest: Path | None, no_manifest: bool,
             overwrite: bool, profile: str | None, config: Path | None,
             engine_kind: str | None, scheduler: str | None, **kw) -> None:
    """Classify every village: unavailable, available_inaccessible or served.

    Writes a manifest (tool version, parameters, SHA-256 of every input) beside OUT.

    \b
    Example:
      covgap classify villages.gpkg --towers sites.csv --towers opencellid.csv \\
          --measurements tests.csv --population worldpop.tif --dem srtm.tif \\
          --profile vn-2025 -o classified.gpkg
      covgap classify villages.gpkg --towers sites.csv --engine dask \\
          --scheduler tcp://10.0.0.5:8786 -o classified.gpkg
    """
    from ..execute import execute
    from ..spec import InputPaths, OutputSpec

    if crosswalk and not aggregate_out:
        raise click.UsageError("--crosswalk needs --aggregate-out")
    with _reported(ctx), _progress(ctx, "modelling coverage") as progress:
        shares = opt.shares(market_share)
        spec = opt.settings_spec(config, profile=profile, scenario={
            "sharing": sharing, "market_share": shares}, file_limits=False).replace(
            inputs=InputPaths.of(villages, corrections=corrections, **kw),
            outputs=OutputSpec.only(
                classified=out, coverage=coverage_out, aggregate=aggregate_out,
                crosswalk=crosswalk, crosswalk_on=crosswalk_on,
                manifest=opt.manifest_path(out, manifest, no_manifest)))
        with opt.engine_for(engine_kind, scheduler) as engine:
            result = execute(spec, engine=engine, progress=progress, overwrite=overwrite)
        if not ctx.obj["quiet"]:
            classified = result.classified
            click.echo(opt.format_summary(result.summary))
            if corrections is not None:
                n_changed = int((classified["class"] != classified["class_original"]).sum())
                click.echo(f"Corrections applied to {int(classified['corrected'].sum())} "
                           f"village(s); {n_changed} changed class")
            profile_ = spec.params.profile
            if "label_stable" in classified.columns and len(classified):
                click.echo(f"Labels stable under +/-{profile_.stability_db:g} dB and "
                           f"+/-{profile_.stability_rel:.0%} thresholds: "
                           f"{classified['label_stable'].mean():.1%} of villages")
            click.echo("Written: " + ", ".join(str(p) for p in result.outputs.values()))
