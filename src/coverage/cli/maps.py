"""``covgap map CLASSIFIED``: one offline HTML map (or an index and one per province)."""

from __future__ import annotations

from pathlib import Path

import click

from . import _reported, main
from . import options as opt


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
    from ..inputs import load_inputs

    with _reported(ctx):
        if by is None:
            opt.refuse_existing([out], overwrite)
        got = load_inputs(classified, towers=towers, measurements=measurements,
                          assume_crs=assume_crs)
        villages, ms = got.villages, got.measurements
        tw = got.towers if towers else None
        plan_gdf = (io.read_vector(plan_path, what="plan", allow_empty=True)
                    if plan_path else None)
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
