"""A synthetic national-scale input for the classification benchmark.

Scaled like Vietnam's village list: 100,000 villages of about 3 km² (Voronoi cells of seeds,
in EPSG:4326 like a real boundary file), a 100 m population raster over the whole area
(people clustered around the village seeds over a thin rural background), three operators'
masts with 2G, 3G and 4G, their coverage as :class:`~coverage.model.CoverageSurfaces` built
directly (log-distance path loss from the nearest mast of each operator and technology plus
smooth shadowing, no terrain model; marked as already calibrated, so classification fuses the
tests into them without fitting the model again), and 10 million crowd-sourced tests drawn
where people live, reading the surfaces with noise (a table with ``lon``/``lat`` columns, as
the contract's CSV, rather than 10 million shapely points). Everything is vectorised; nothing is
written to disk.

Not a model of any real network: it exists to time the classification (see
``benchmarks/bench_classify.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from rasterio.transform import from_origin
from scipy import ndimage

from ..io import Raster
from ..model import FLOOR_DBM, CoverageSurfaces, Grid
from ..params import ModelParams

__all__ = ["NationalInput", "national_input"]

log = logging.getLogger(__name__)

OPERATORS = ("Viettel", "VinaPhone", "MobiFone")
#: (EIRP of the measured signal dBm, share of masts carrying the technology)
TECHS = {"2G": (40.0, 1.0), "3G": (33.0, 0.8), "4G": (28.0, 0.7)}
CRS_UTM = CRS.from_epsg(32648)


@dataclass
class NationalInput:
    """Everything :func:`coverage.classify.classify_villages` takes, national-sized."""

    villages: gpd.GeoDataFrame
    population: Raster
    surfaces: CoverageSurfaces
    measurements: pd.DataFrame  # lon/lat columns (EPSG:4326), no shapely points
    towers: gpd.GeoDataFrame
    grid: Grid


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int,
                  sigma_db: float) -> np.ndarray:
    """Zero-mean shadowing with ``sigma_db`` spread, correlated over ``cells`` cells."""
    coarse = rng.standard_normal((shape[0] // cells + 2, shape[1] // cells + 2))
    field = ndimage.zoom(coarse.astype("float32"), cells, order=1)[: shape[0], : shape[1]]
    return field * np.float32(sigma_db / max(float(field.std()), 1e-6))


def national_input(n_villages: int = 100_000, n_tests: int = 10_000_000, *, seed: int = 0,
                   resolution_m: float = 100.0, village_km2: float = 3.0,
                   km2_per_mast: float = 30.0) -> NationalInput:
    """Generate the national-scale input.

    Parameters
    ----------
    n_villages, n_tests : int
        Villages and point tests.
    seed : int
        Random seed (the same seed gives the same input).
    resolution_m : float
        Cell size of the population raster and the coverage grid, metres.
    village_km2 : float
        Mean village area, km²; the square area is ``n_villages * village_km2``.
    km2_per_mast : float
        Mean area per mast of each operator, km².
    """
    rng = np.random.default_rng(seed)
    side_m = np.sqrt(n_villages * village_km2) * 1000.0
    n = int(np.ceil(side_m / resolution_m))
    x0, y0 = 200_000.0, 2_000_000.0 + n * resolution_m
    grid = Grid(from_origin(x0, y0, resolution_m, resolution_m), (n, n), CRS_UTM)
    villages, sx, sy = _villages(rng, grid, n_villages)
    population, people = _population(rng, grid, sx, sy, resolution_m)
    n_masts = int(side_m**2 / 1e6 / km2_per_mast)
    surfaces, towers_gdf = _coverage(rng, grid, sx, sy, n_masts, resolution_m)
    measurements = _tests(rng, surfaces, sx, sy, people, n_tests)
    log.info("national input: %d villages, %dx%d grid, %d masts, %d tests", n_villages,
             n, n, len(towers_gdf), n_tests)
    return NationalInput(villages, population, surfaces, measurements, towers_gdf, grid)


def _villages(rng: np.random.Generator, grid: Grid, n_villages: int
              ) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """Villages as Voronoi cells of random seeds (EPSG:4326), admin units by blocks of seeds.

    Returns the villages and their seeds' x, y (EPSG:32648, m).
    """
    left, bottom, right, top = grid.bounds
    sx = rng.uniform(left, right, n_villages)
    sy = rng.uniform(bottom, top, n_villages)
    seeds = shapely.points(sx, sy)
    area = shapely.box(left, bottom, right, top)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds),
                                                       extend_to=area))
    # voronoi_polygons does not keep the seeds' order: match cells back to their seeds
    tree = shapely.STRtree(cells)
    si, ci = tree.query(seeds, predicate="within")
    order = np.empty(n_villages, dtype=np.int64)
    order[si] = ci
    polys = shapely.intersection(cells[order], area)
    block = lambda km: (((sx - left) // (km * 1000)).astype(int) * 10_000  # noqa: E731
                        + ((sy - bottom) // (km * 1000)).astype(int))
    province, district, commune = block(70), block(25), block(6)
    villages = gpd.GeoDataFrame({
        "village_id": [f"{i:06d}" for i in range(n_villages)],
        "name": [f"Thôn {i}" for i in range(n_villages)],
        "commune": pd.factorize(commune)[0].astype(str),
        "district": pd.factorize(district)[0].astype(str),
        "province": pd.factorize(province)[0].astype(str),
    }, geometry=polys, crs=CRS_UTM).to_crs(4326)
    return villages, sx, sy


def _population(rng: np.random.Generator, grid: Grid, sx: np.ndarray, sy: np.ndarray,
                resolution_m: float) -> tuple[Raster, np.ndarray]:
    """Population raster: clusters at the village seeds over a thin background.

    Returns the raster and each village's people (the clusters' sizes).
    """
    people = rng.lognormal(np.log(600), 0.7, len(sx))
    row, col, _ = grid.index(sx, sy)
    pop = np.zeros(grid.shape, dtype="float32")
    np.add.at(pop, (row, col), people.astype("float32"))
    pop = ndimage.gaussian_filter(pop, sigma=300.0 / resolution_m)
    pop += rng.gamma(0.1, 0.5, grid.shape).astype("float32")
    return Raster(pop, grid.transform, CRS_UTM), people


def _coverage(rng: np.random.Generator, grid: Grid, sx: np.ndarray, sy: np.ndarray,
              n_masts: int, resolution_m: float) -> tuple[CoverageSurfaces, gpd.GeoDataFrame]:
    """Each operator's masts and its coverage: log-distance loss from the nearest mast.

    Returns the surfaces (marked calibrated, so fusion only places the tests) and the towers
    (EPSG:4326 points).
    """
    left, bottom, right, top = grid.bounds
    to_ll = Transformer.from_crs(CRS_UTM, 4326, always_xy=True)
    layers: dict[tuple[str, str], np.ndarray] = {}
    towers = []
    for op in OPERATORS:
        # masts follow people: half near villages, half anywhere
        near = rng.integers(0, len(sx), n_masts // 2)
        mx = np.r_[sx[near] + rng.normal(0, 800, len(near)),
                   rng.uniform(left, right, n_masts - len(near))].clip(left, right - 1)
        my = np.r_[sy[near] + rng.normal(0, 800, len(near)),
                   rng.uniform(bottom, top, n_masts - len(near))].clip(bottom + 1, top)
        mr, mc, _ = grid.index(mx, my)
        for tech, (eirp, share) in TECHS.items():
            has = rng.random(n_masts) < share
            free = np.ones(grid.shape, dtype=bool)
            free[mr[has], mc[has]] = False
            d_km = ndimage.distance_transform_edt(free).astype("float32")
            d_km = np.maximum(d_km, 0.5) * np.float32(resolution_m / 1000.0)
            level = eirp - (120.0 + 35.0 * np.log10(d_km)) + _smooth_field(rng, grid.shape,
                                                                         20, 8.0)
            layers[(op, tech)] = np.where(level >= FLOOR_DBM[tech], level, np.nan
                                          ).astype("float32")
            lon, lat = to_ll.transform(mx[has], my[has])
            towers.append(pd.DataFrame({"site_id": [f"{op[:2]}-{tech}-{i}" for i in
                                                    np.flatnonzero(has)],
                                        "operator": op, "tech": tech, "status": "active",
                                        "lon": lon, "lat": lat}))
            del free, d_km, level
    # the surfaces stand for a finished (calibrated) model: fusion only places the tests
    surfaces = CoverageSurfaces(grid, layers,
                                params=ModelParams(calibrate=False, krige=False))
    t = pd.concat(towers, ignore_index=True)
    towers_gdf = gpd.GeoDataFrame(t.drop(columns=["lon", "lat"]),
                                  geometry=shapely.points(t["lon"], t["lat"]), crs=4326)
    return surfaces, towers_gdf


def _tests(rng: np.random.Generator, surfaces: CoverageSurfaces, sx: np.ndarray,
           sy: np.ndarray, people: np.ndarray, n_tests: int) -> pd.DataFrame:
    """Tests where people live, reading the operator's best technology with noise.

    A plain table with ``lon``/``lat`` (EPSG:4326) like the contract's CSV: as shapely points
    the 10 million tests would take about 1 GB more (the library reads either form).
    """
    grid, layers = surfaces.grid, surfaces.layers
    left, bottom, right, top = grid.bounds
    to_ll = Transformer.from_crs(CRS_UTM, 4326, always_xy=True)
    pick = rng.choice(len(sx), n_tests, p=people / people.sum())
    tx = (sx[pick] + rng.normal(0, 350, n_tests)).clip(left, right - 1)
    ty = (sy[pick] + rng.normal(0, 350, n_tests)).clip(bottom + 1, top)
    del pick
    tr, tc, _ = grid.index(tx, ty)
    op_idx = rng.integers(0, len(OPERATORS), n_tests)
    tech = np.full(n_tests, "none", dtype=object)
    rsrp = np.full(n_tests, np.nan)
    for k, op in enumerate(OPERATORS):
        mine = op_idx == k
        for name in ("2G", "3G", "4G"):  # newest last wins
            lv = layers[(op, name)][tr[mine], tc[mine]] + rng.normal(0, 4, int(mine.sum()))
            ok = np.isfinite(lv) & (lv >= FLOOR_DBM[name] + 5)
            idx = np.flatnonzero(mine)[ok]
            tech[idx], rsrp[idx] = name, lv[ok]
    speed = np.where(tech == "4G", 40.0, np.where(tech == "3G", 6.0, 0.2))
    margin = np.nan_to_num(rsrp + 110.0, nan=-20.0)
    dl = speed * np.exp(rng.normal(0, 0.6, n_tests)) * np.clip((margin + 20) / 40, 0.05, 1.5)
    dl = np.where(tech == "none", np.nan, np.round(dl, 2))
    lon, lat = to_ll.transform(tx, ty)
    del tx, ty, tr, tc
    start = np.datetime64("2025-01-01T00:00:00", "s").astype("int64")
    ts = pd.to_datetime(start + rng.integers(0, 90 * 86400, n_tests), unit="s", utc=True)
    return pd.DataFrame({
        # categories, as a Parquet reader gives dictionary-encoded text: 1 byte a test
        "tech": pd.Categorical(tech),
        "operator": pd.Categorical.from_codes(op_idx, categories=list(OPERATORS)),
        "rsrp_dbm": rsrp, "download_mbps": dl, "upload_mbps": np.round(dl / 4, 2),
        "latency_ms": rng.gamma(4, 12, n_tests), "timestamp": ts,
        "device_id": rng.integers(0, n_tests // 4, n_tests),
        "weight": 1.0, "source": "tests", "lon": lon, "lat": lat,
    })
