"""Generate the synthetic demo province and write every file of ``data/``.

Run ``python -m coverage.datasets.generate --out data [--seed N]``. The same seed gives the
same arrays and tables; see ``data/README.md`` for what each file holds. With ``--dem PATH
--centre LON,LAT`` the province is drawn over a window of a real elevation model centred there
(:mod:`coverage.datasets.realterrain`) instead of the synthetic relief.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from ..errors import ParameterError
from . import readmes
from ._grid import UTM_CRS, Grid
from .field import compute_field
from .observe import make_tests, ookla_tiles
from .population import NODATA, make_population
from .realterrain import dem_bounds, terrain_from_dem
from .roads import make_fibre, make_roads, write_osm
from .rules import VN_2025
from .settlements import make_settlements
from .sites import make_masts, opencellid_table, site_table, transmitters
from .terrain import make_outline, make_terrain
from .truth import access_table, speed_fields, truth_bands, village_truth
from .worlds import WorldPhysics, world

__all__ = ["DEFAULT_SEED", "FILES", "generate_demo", "main"]

log = logging.getLogger(__name__)

DEFAULT_SEED = 20241437
#: The demo's physics: the registry's ``demo`` world.
DEMO_PHYSICS = world("demo").physics

#: Key -> path under the output folder.
FILES: dict[str, str] = {
    "villages": "boundaries/villages.gpkg",
    "communes": "boundaries/communes.gpkg",
    "districts": "boundaries/districts.gpkg",
    "sites": "towers/sites.csv",
    "opencellid": "towers/opencellid.csv",
    "tests": "measurements/tests.csv",
    "ookla": "measurements/ookla_tiles.parquet",
    "dem": "rasters/dem.tif",
    "population": "rasters/population.tif",
    "landcover": "rasters/landcover.tif",
    "access": "access/access.csv",
    "fibre": "fibre/fibre.gpkg",
    "roads": "roads/roads.osm",
    "truth_signal": "truth/signal_truth.tif",
    "truth_villages": "truth/villages_truth.csv",
}

_VILLAGE_COLUMNS = ["village_id", "name", "commune", "district", "province", "population",
                    "households"]


def generate_demo(out_dir: str | Path, *, seed: int = DEFAULT_SEED, scale: float = 1.0,
                  physics: WorldPhysics | None = None, dem: str | Path | None = None,
                  centre: tuple[float, float] | None = None) -> dict[str, Path]:
    """Generate the demo province and write all its files under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created). Existing files are replaced.
    seed : int
        Seed of every random draw: the same seed gives the same arrays and tables.
    scale : float
        Linear size relative to the full 45 x 35 km province (0.4..1); smaller provinces have
        proportionally fewer villages and are much faster, for tests.
    physics : WorldPhysics, optional
        The world's radio physics (:mod:`coverage.datasets.worlds`); default the demo's.
    dem : str or Path, optional
        A real elevation raster (e.g. an SRTM tile): the terrain is a window of it
        (:func:`~coverage.datasets.realterrain.terrain_from_dem`) instead of the synthetic
        relief. Needs ``centre``.
    centre : (float, float), optional
        Longitude and latitude (degrees, WGS 84) of the window's centre, inside ``dem``.

    Returns
    -------
    dict
        Key (see :data:`FILES`) -> path of each file written.
    """
    if not 0.3 <= scale <= 1.0:
        raise ParameterError(f"scale={scale} is outside 0.3..1: the province is 45 x 35 km at "
                             "scale 1, and below 0.3 it holds too few villages")
    physics = physics or DEMO_PHYSICS
    t0 = time.perf_counter()
    out = Path(out_dir)
    streams, grid, terrain, st, roads, masts, tx, pop, field = _radio_world(
        seed, scale, physics, dem, centre)
    profile = VN_2025
    bands = truth_bands(field, profile)
    speeds = speed_fields(field, tx, pop.on_dem, profile)
    covered = _covered_villages(pop, bands, profile, len(st.villages))
    access = access_table(st.villages, covered, streams["access"])
    truth = village_truth(st.villages, pop, bands, speeds, field, access, profile)
    fibre = make_fibre(roads)
    fibre_utm = shapely.union_all(fibre.to_crs(UTM_CRS).geometry.to_numpy())
    fibre_dist = shapely.distance(shapely.points(masts["x"], masts["y"]), fibre_utm)
    sites = site_table(tx, masts, np.asarray(fibre_dist), streams["sites"])
    ocid = opencellid_table(tx, masts, streams["ocid"])
    tests = make_tests(field, speeds, pop, grid, roads.mask, streams["tests"],
                       n=max(400, round(3000 * scale**2)), physics=physics)
    ookla = ookla_tiles(tests, streams["ookla"])
    published_access = _publish_access(access, streams["publish"])

    paths = {k: out / v for k, v in FILES.items()}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    v = st.villages
    gpd.GeoDataFrame(v[_VILLAGE_COLUMNS], geometry=v.geometry, crs=UTM_CRS).to_crs(
        "EPSG:3405").to_file(paths["villages"], layer="villages", driver="GPKG")
    st.communes[["commune_id", "commune", "kind", "district", "province", "population",
                 "households", "geometry"]].to_crs("EPSG:4326").to_file(
        paths["communes"], layer="communes", driver="GPKG")
    st.districts[["district_id", "district", "province", "population", "households",
                  "geometry"]].to_crs("EPSG:4326").to_file(
        paths["districts"], layer="districts", driver="GPKG")
    fibre.to_file(paths["fibre"], layer="fibre", driver="GPKG")
    write_osm(roads, paths["roads"])
    sites.to_csv(paths["sites"], index=False, lineterminator="\n")
    ocid.to_csv(paths["opencellid"], index=False, header=False, lineterminator="\n")
    tests.to_csv(paths["tests"], index=False, lineterminator="\n")
    ookla.to_parquet(paths["ookla"], index=False)
    published_access.to_csv(paths["access"], index=False, lineterminator="\n")
    truth.to_csv(paths["truth_villages"], index=False, lineterminator="\n")
    _write_raster(paths["dem"], np.round(terrain.dem_m).astype(np.int16)[None], grid.transform,
                  CRS.from_epsg(32648), nodata=None, descriptions=("elevation_m",))
    _write_raster(paths["population"], pop.values[None], pop.transform, CRS.from_epsg(4326),
                  nodata=NODATA, descriptions=("population",))
    _write_raster(paths["landcover"], land_cover(terrain, field.town, pop.on_dem)[None],
                  grid.transform, CRS.from_epsg(32648), nodata=0,
                  descriptions=("esa_worldcover_class",))
    keys = ("2G", "3G", "4G", "broadband")
    _write_raster(paths["truth_signal"], np.stack([bands[k] for k in keys]), grid.transform,
                  CRS.from_epsg(32648), nodata=None,
                  descriptions=("best_2g_dbm", "best_3g_rscp_dbm", "best_4g_rsrp_dbm",
                                "best_broadband_rsrp_equivalent_dbm"))
    readmes.write_all(out, seed=seed, scale=scale, truth=truth, sites=sites, tests=tests,
                      physics=physics, real_terrain=None if dem is None else (dem, centre))
    log.info("demo written to %s in %.1f s", out, time.perf_counter() - t0)
    return paths


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent random stream per part of the world, from the seed."""
    return {name: np.random.default_rng([seed, k]) for k, name in enumerate(
        ("terrain", "outline", "settle", "masts", "tx", "field", "pop", "sites", "ocid",
         "access", "tests", "ookla", "publish", "bias"))}


def _province_grid(scale: float, centre: tuple[float, float] | None = None) -> Grid:
    """The published 100 m grid of the province (EPSG:32648), 45 x 35 km at scale 1.

    Centred on ``centre`` (longitude, latitude) when given, else on the synthetic province.
    """
    width, height = 45_000 * scale, 35_000 * scale
    cx, cy = 458_900.0, 2_499_300.0
    if centre is not None:
        cx, cy = Transformer.from_crs("EPSG:4326", UTM_CRS, always_xy=True).transform(*centre)
    return Grid(round(cx - width / 2, -2), round(cy + height / 2, -2), 100.0,
                int(height // 100), int(width // 100))


def _terrain(scale: float, rng: np.random.Generator, dem: str | Path | None,
             centre: tuple[float, float] | None):
    """The province's terrain: synthetic, or over a window of ``dem`` centred on ``centre``."""
    if dem is None and centre is None:
        return make_terrain(_province_grid(scale), rng)
    if dem is None or centre is None:
        raise ParameterError("a real-terrain world needs both dem= (an elevation raster) and "
                             "centre= (longitude, latitude of the window's centre)")
    lon, lat = (float(v) for v in centre)
    w, s, e, n = dem_bounds(dem)
    if not (np.isfinite([lon, lat]).all() and w < lon < e and s < lat < n):
        raise ParameterError(f"centre ({lon:g}, {lat:g}) is outside the DEM {dem}, which "
                             f"covers {w:.4f}..{e:.4f} E, {s:.4f}..{n:.4f} N")
    return terrain_from_dem(dem, _province_grid(scale, (lon, lat)), rng)


def _radio_world(seed: int, scale: float, physics: WorldPhysics,
                 dem: str | Path | None = None, centre: tuple[float, float] | None = None,
                 *, with_field: bool = True):
    """Terrain, settlements, roads, masts, transmitters, people and the true field.

    Returns the random streams (the later draws continue from them) and the world's parts;
    with ``with_field=False`` the field is None and its stream left undrawn, for a caller
    that computes the field itself (:func:`~coverage.datasets.field.compute_field` on
    ``_streams(seed)["field"]`` and :func:`eirp_bias` on ``_streams(seed)["bias"]``).
    """
    t0 = time.perf_counter()
    streams = _streams(seed)
    terrain = _terrain(scale, streams["terrain"], dem, centre)
    grid = terrain.grid
    outline = make_outline(grid, streams["outline"])
    n_v = max(40, round(300 * scale**2))
    n_c = max(6, round(25 * scale**2))
    st = make_settlements(terrain, outline, streams["settle"], n_villages=n_v, n_communes=n_c)
    roads = make_roads(terrain, st)
    masts = make_masts(terrain, st, roads.mask, streams["masts"])
    tx = transmitters(masts, streams["tx"])
    log.info("terrain, settlements, roads and %d masts in %.1f s", len(masts),
             time.perf_counter() - t0)
    pop = make_population(terrain, st, roads.mask, streams["pop"])
    if not with_field:
        return streams, grid, terrain, st, roads, masts, tx, pop, None
    field = compute_field(terrain, tx, st.towns, pop.on_dem, streams["field"], physics,
                          eirp_bias(sorted(tx["operator"].unique()), physics,
                                    streams["bias"]))
    log.info("true radio field in %.1f s", time.perf_counter() - t0)
    return streams, grid, terrain, st, roads, masts, tx, pop, field


def eirp_bias(operators: list[str], physics: WorldPhysics, rng: np.random.Generator
              ) -> dict[str, float]:
    """Each operator's true EIRP minus its published one, dB: one normal draw each."""
    return {op: float(rng.normal(0.0, physics.eirp_bias_sd_db)) for op in operators}


def true_layers(seed: int = DEFAULT_SEED, *, scale: float = 1.0,
                physics: WorldPhysics | None = None, dem: str | Path | None = None,
                centre: tuple[float, float] | None = None
                ) -> tuple[dict[tuple[str, str], np.ndarray], Affine, CRS]:
    """The hidden true level of every (operator, technology), dBm, for a ceiling check.

    Recomputed from the seed as :func:`generate_demo` draws it (about two minutes for the
    full province): ``{(operator, tech): float32 array}`` on the published DEM's grid
    (EPSG:32648, 100 m), with its transform and CRS. Never an input of the tool: the
    benchmark ``classify_ceiling.py`` classifies with it as the model, to tell the
    classification's own errors from the model's. ``dem`` and ``centre`` as
    :func:`generate_demo`'s.
    """
    _, grid, *_, field = _radio_world(seed, scale, physics or DEMO_PHYSICS, dem, centre)
    return ({k: v.astype("float32") for k, v in field.best.items()}, grid.transform,
            CRS.from_epsg(32648))


def hidden_terrain(seed: int = DEFAULT_SEED, *, scale: float = 1.0,
                   dem: str | Path | None = None, centre: tuple[float, float] | None = None
                   ) -> tuple[np.ndarray, Affine, CRS]:
    """The hidden 50 m terrain the true field is computed on, metres, for a ceiling check.

    The published DEM is its 2 x 2 block mean. Drawn from the seed's terrain stream alone
    (a second or two). Never an input of the tool: ``classify_ceiling.py`` runs the model
    on it to tell the error the 100 m DEM costs from the rest of the model's error.
    Returns (float32 heights, transform, CRS). ``dem`` and ``centre`` as
    :func:`generate_demo`'s.
    """
    terrain = _terrain(scale, _streams(seed)["terrain"], dem, centre)
    return terrain.fine_m.astype("float32"), terrain.fine_grid.transform, CRS.from_epsg(32648)


def land_cover(terrain, town: np.ndarray, people: np.ndarray) -> np.ndarray:
    """The published land cover, ESA WorldCover codes (uint8) on the DEM grid.

    Tree cover (10) where the hidden forest density is at least one half (the true field
    loses foliage in proportion to it), built-up (50) in the towns, cropland (40) where
    people live, grassland (30) elsewhere. No random draw: the other files do not change.
    """
    out = np.full(town.shape, 30, np.uint8)
    out[np.nan_to_num(people) > 0] = 40
    out[terrain.forest >= 0.5] = 10
    out[town] = 50
    return out


def _covered_villages(pop, bands, profile, n):
    vil = pop.village.ravel()
    people = np.where(vil >= 0, np.maximum(pop.values.ravel(), 0), 0.0)
    ok = bands["broadband"].ravel()[pop.dem_cell.ravel()] >= profile.outdoor_rsrp_dbm
    sel = vil >= 0
    num = np.bincount(vil[sel], weights=(people * ok)[sel], minlength=n)
    den = np.bincount(vil[sel], weights=people[sel], minlength=n)
    return num >= profile.min_covered_share * np.maximum(den, 1e-9)


def _publish_access(access: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The published access table: a few villages missing and some cells empty."""
    keep = rng.uniform(size=len(access)) >= 0.04
    out = access[keep].copy().reset_index(drop=True)
    for col in ("electricity_share", "smartphone_share", "monthly_income", "data_price_1gb"):
        out.loc[rng.uniform(size=len(out)) < 0.03, col] = np.nan
    return out


def _write_raster(path, data, transform, crs, *, nodata, descriptions):
    profile = {
        "driver": "GTiff", "height": data.shape[1], "width": data.shape[2],
        "count": data.shape[0], "dtype": data.dtype.name, "crs": crs, "transform": transform,
        "compress": "deflate", "predictor": 2, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
        dst.update_tags(source="coverage-gap synthetic demo (not real data)", licence="CC0-1.0")


def _lon_lat(text: str) -> tuple[float, float]:
    """``"LON,LAT"`` -> (lon, lat) for ``--centre``."""
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LON,LAT (e.g. 105.60,21.50)") from None
    return lon, lat


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m coverage.datasets.generate --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m coverage.datasets.generate",
        description="Generate the synthetic demo province of coverage-gap.")
    parser.add_argument("--out", required=True, type=Path, help="output folder (e.g. data)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="linear size relative to the full province (0.3..1)")
    parser.add_argument("--dem", type=Path,
                        help="draw the province over this real elevation raster (e.g. SRTM)")
    parser.add_argument("--centre", type=_lon_lat, metavar="LON,LAT",
                        help="centre of the window of --dem, degrees (WGS 84)")
    args = parser.parse_args(argv)
    if (args.dem is None) != (args.centre is None):
        parser.error("--dem and --centre go together: the window of the DEM needs a centre")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    try:
        paths = generate_demo(args.out, seed=args.seed, scale=args.scale, dem=args.dem,
                              centre=args.centre)
    except ParameterError as exc:
        parser.error(str(exc))
    for key, path in paths.items():
        print(f"{key:15s} {path}  {path.stat().st_size / 1024:8.1f} KiB")
    truth = pd.read_csv(paths["truth_villages"], dtype={"village_id": str})
    print(truth["class"].value_counts(normalize=True).round(3).to_string())
    print(f"generated in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
