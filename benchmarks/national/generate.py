"""Generate a national-scale input: villages, sites, point tests and a 100 m population raster.

At ``--scale 1``: about 100,000 villages, 100,000 cells (transmitter rows: three-sector masts
of three operators, 4G/3G/2G), 10 million point tests and a 100 m population raster over
the villages. Smaller or larger scales keep the density and grow the area, so the stages of
the benchmark see more of the same country (what a scaling measurement needs).

Villages: the real GADM 4.1 commune polygons of Vietnam from
``../shared/data/vn-communes-gadm41`` (non-commercial licence: read in place, never
copied into the project), each cut into about nine villages by a Voronoi split of random
points inside it; communes are taken province by province from north to south until the
scale's count is reached. Without that folder (or with ``--synthetic``) the villages are a
generated grid of 3 x 3 km squares in Vietnam's latitudes. Everything else is generated:
sites near the villages, tests near the sites (RSRP from a plain Hata-like decay with
shadowing, speeds from RSRP), people per 100 m cell around each village's centre.

    PYTHONPATH=src python benchmarks/national/generate.py --scale 1 --out /tmp/national
    PYTHONPATH=src python benchmarks/national/generate.py --scale 0.0625 --dem --out /tmp/n16

``--dem`` adds ``dem.tif``: a seeded relief like Vietnam's at 100 m over the villages and
30 km around (coastal plains, hills, mountain ranges, valleys; :func:`dem`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

log = logging.getLogger("national")
_REPO = Path(__file__).resolve().parents[2]
#: ``../shared/data`` beside the clone (or beside the folder of worktrees)
GADM = next((p / "shared" / "data" / "vn-communes-gadm41" for p in (_REPO.parent,
                                                                  _REPO.parent.parent)
             if (p / "shared" / "data").is_dir()), _REPO.parent / "shared" / "data" / "none")
VILLAGES, CELLS, TESTS = 100_000, 100_000, 10_000_000
VILLAGES_PER_COMMUNE = 9
UTM = "EPSG:32648"
OPERATORS = ("Viettel", "VNPT", "MobiFone")


def communes(n_villages: int) -> gpd.GeoDataFrame | None:
    """Real commune polygons, province by province, enough for ``n_villages``."""
    folder = GADM / "provinces"
    if not folder.is_dir():
        return None
    need = math.ceil(n_villages / VILLAGES_PER_COMMUNE)
    provinces = [gpd.read_file(p) for p in sorted(folder.glob("*.json")) if p.stem != "index"]
    # north to south, so that a part of the country is one contiguous area
    provinces.sort(key=lambda g: -float(g.geometry.union_all().centroid.y))
    frames, total = [], 0
    for gdf in provinces:
        frames.append(gdf)
        total += len(gdf)
        if total >= need:
            break
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4326).to_crs(UTM)


def split_communes(com: gpd.GeoDataFrame, n_villages: int, rng) -> gpd.GeoDataFrame:
    """Cut each commune into villages by a Voronoi split of random points inside it."""
    per = max(1, round(n_villages / len(com)))
    rows = []
    geoms = com.geometry.make_valid().to_numpy()
    for k, (poly, gid) in enumerate(zip(geoms, com["GID_3"], strict=True)):
        minx, miny, maxx, maxy = poly.bounds
        cand = shapely.points(rng.uniform(minx, maxx, 6 * per), rng.uniform(miny, maxy, 6 * per))
        inside = cand[shapely.contains(poly, cand)][:per]
        if len(inside) < 2:
            parts = [poly]
        else:
            cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(inside),
                                                               extend_to=poly))
            parts = [p for p in shapely.intersection(cells, poly) if not p.is_empty
                     and p.area > 1.0]
        for j, part in enumerate(parts):
            rows.append((f"{gid}.{j + 1}", f"Thôn {j + 1}", com["NAME_3"].iloc[k],
                         com["NAME_2"].iloc[k], com["NEW_PROVINCE"].iloc[k], part))
    ids, names, commune, district, province, geom = zip(*rows, strict=True)
    return gpd.GeoDataFrame({"village_id": ids, "name": names, "commune": commune,
                             "district": district, "province": province},
                            geometry=list(geom), crs=UTM)


def synthetic_villages(n: int) -> gpd.GeoDataFrame:
    """A grid of 3 x 3 km villages, 100 per commune, from 104 E 21 N (UTM 48N)."""
    side = 3000.0
    cols = max(1, math.ceil(math.sqrt(n / 2)))
    k = np.arange(n)
    x = 400_000.0 + (k % cols) * side
    y = 2_100_000.0 + (k // cols) * side
    return gpd.GeoDataFrame({
        "village_id": [f"V{i:07d}" for i in k], "name": [f"Thôn {i % 100 + 1}" for i in k],
        "commune": [f"C{i // 100:05d}" for i in k], "district": [f"D{i // 2000:04d}" for i in k],
        "province": [f"P{i // 20000:03d}" for i in k]},
        geometry=shapely.box(x, y, x + side, y + side), crs=UTM)


def sites(villages: gpd.GeoDataFrame, n_cells: int, rng) -> pd.DataFrame:
    """Three-sector masts near villages: each operator builds at ~1/3 of the mast spots."""
    masts = math.ceil(n_cells / 3)
    pick = rng.choice(len(villages), masts, replace=masts > len(villages))
    c = villages.geometry.centroid.to_numpy()[pick]
    x = shapely.get_x(c) + rng.normal(0, 800, masts)
    y = shapely.get_y(c) + rng.normal(0, 800, masts)
    op = np.array(OPERATORS)[rng.integers(0, 3, masts)]
    tech = rng.choice(["4G", "3G", "2G"], masts, p=[0.7, 0.2, 0.1])
    lon, lat = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=UTM).to_crs(4326).pipe(
        lambda s: (s.x.to_numpy(), s.y.to_numpy()))
    az = rng.uniform(0, 120, masts)
    df = pd.DataFrame({
        "site_id": np.repeat([f"M{i:06d}" for i in range(masts)], 3),
        "operator": np.repeat(op, 3), "tech": np.repeat(tech, 3),
        "height_m": np.repeat(rng.choice([25.0, 30.0, 40.0], masts), 3),
        "azimuth_deg": (np.repeat(az, 3) + np.tile([0.0, 120.0, 240.0], masts)) % 360,
        "beamwidth_deg": 65.0, "status": "active",
        "lon": np.repeat(lon, 3), "lat": np.repeat(lat, 3)})
    df["site_id"] = df["site_id"] + "-" + np.tile(["a", "b", "c"], masts)
    return df.iloc[:n_cells]


def tests(cells: pd.DataFrame, n: int, rng, chunk: int = 2_000_000):
    """Point tests around the masts, in chunks (DataFrames) of at most ``chunk`` rows."""
    xy = gpd.GeoSeries(gpd.points_from_xy(cells.lon, cells.lat), crs=4326).to_crs(UTM)
    sx, sy = xy.x.to_numpy(), xy.y.to_numpy()
    ops, techs = cells.operator.to_numpy(), cells.tech.to_numpy()
    t0 = np.datetime64("2025-01-01T00:00:00")
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        s = rng.integers(0, len(cells), m)
        d = rng.gamma(2.0, 1500.0, m) + 30.0
        a = rng.uniform(0, 2 * np.pi, m)
        x, y = sx[s] + d * np.sin(a), sy[s] + d * np.cos(a)
        rsrp = -60.0 - 35.0 * np.log10(d / 100.0) + rng.normal(0, 8, m)
        none = rsrp < -122.0
        tech = np.where(none, "none", techs[s]).astype(object)
        rsrp = np.where(none, np.nan, np.round(rsrp, 1))
        dl = np.where(none, np.nan, np.round(np.exp((rsrp + 125) / 12.0), 2))
        ll = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=UTM).to_crs(4326)
        yield pd.DataFrame({
            "lon": np.round(ll.x.to_numpy(), 6), "lat": np.round(ll.y.to_numpy(), 6),
            "tech": tech, "operator": ops[s], "rsrp_dbm": rsrp, "download_mbps": dl,
            "upload_mbps": np.round(dl / 4, 2), "latency_ms": np.round(rng.gamma(3, 15, m), 1),
            "timestamp": (t0 + rng.integers(0, 365 * 86400, m).astype("timedelta64[s]")
                          ).astype(str)})


def population(villages: gpd.GeoDataFrame, path: Path, rng, res: float = 100.0) -> dict:
    """People per 100 m cell (UTM 48N GeoTIFF): each village's people near its centre."""
    import rasterio
    from rasterio.transform import from_origin

    left, bottom, right, top = villages.total_bounds
    left, top = math.floor(left / res) * res, math.ceil(top / res) * res
    cols, rows = math.ceil((right - left) / res), math.ceil((top - bottom) / res)
    pop = np.full((rows, cols), -99999.0, dtype="float32")
    people = rng.lognormal(6.5, 0.6, len(villages))
    pts = villages.geometry.representative_point().to_numpy()
    cx, cy = shapely.get_x(pts), shapely.get_y(pts)
    # land = the villages' cells (nodata elsewhere), then people in clusters
    from rasterio.features import rasterize

    land = rasterize(((g, 1) for g in villages.geometry), out_shape=(rows, cols),
                     transform=from_origin(left, top, res, res), fill=0, dtype="uint8")
    pop[land == 1] = 0.0
    k = 25
    px = np.repeat(cx, k) + rng.normal(0, 250, len(cx) * k)
    py = np.repeat(cy, k) + rng.normal(0, 250, len(cy) * k)
    c = np.clip(((px - left) / res).astype(int), 0, cols - 1)
    r = np.clip(((top - py) / res).astype(int), 0, rows - 1)
    w = np.repeat(people / k, k)
    ok = pop[r, c] >= 0
    np.add.at(pop, (r[ok], c[ok]), w[ok].astype("float32"))
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs=UTM, transform=from_origin(left, top, res, res),
                       nodata=-99999.0, compress="deflate", tiled=True, predictor=3) as dst:
        dst.write(pop, 1)
    return {"rows": rows, "cols": cols, "people": float(w[ok].sum())}


def _octave(shape: tuple[int, int], cell_m: float, wavelength_m: float, rng) -> np.ndarray:
    """Smooth noise of one wavelength: a coarse random lattice, bilinear up to ``shape``."""
    from scipy import ndimage

    step = max(wavelength_m / cell_m, 1.0)
    coarse = rng.standard_normal((math.ceil(shape[0] / step) + 2,
                                  math.ceil(shape[1] / step) + 2)).astype("float32")
    rows = np.arange(shape[0], dtype="float32") / step
    cols = np.arange(shape[1], dtype="float32") / step
    out = np.empty(shape, dtype="float32")
    for start in range(0, shape[0], 2048):  # by blocks of rows: bounded memory
        r = rows[start:start + 2048]
        rr, cc = np.meshgrid(r, cols, indexing="ij")
        out[start:start + r.size] = ndimage.map_coordinates(coarse, [rr, cc], order=1)
    return out


def dem(villages: gpd.GeoDataFrame, path: Path, rng, res: float = 100.0,
        margin_m: float = 30_000.0) -> dict:
    """A seeded relief like Vietnam's at ``res`` (UTM 48N GeoTIFF, metres above sea level).

    Over the villages and ``margin_m`` around (the model's sites and their rays): coastal
    plains along the east and south edges (0-30 m), rising inland to hills and to mountain
    ranges (ridged noise of 7-60 km wavelengths, crests 1,000-2,500 m), cut by valleys
    (the troughs of a 25 km octave), with the finer octaves' roughness on the slopes.
    """
    import rasterio
    from rasterio.transform import from_origin

    left, bottom, right, top = villages.total_bounds
    left = math.floor((left - margin_m) / res) * res
    top = math.ceil((top + margin_m) / res) * res
    cols = math.ceil((right + margin_m - left) / res)
    rows = math.ceil((top - bottom + margin_m) / res)
    shape = (rows, cols)
    # inland-ness: 0 on the east and south edges (the coast), 1 far inland
    x = np.linspace(1.0, 0.0, cols, dtype="float32")[None, :]
    y = np.linspace(0.0, 1.0, rows, dtype="float32")[::-1, None]
    inland = np.clip(np.minimum(x * 4.0, 1.0) * np.minimum(y * 6.0 + 0.3, 1.0), 0, 1)
    z = 15.0 + 20.0 * _octave(shape, res, 8_000.0, rng)  # the plains' few metres
    # mountain ranges: ridged noise (crests where two octaves' sum crosses zero)
    ridged = np.zeros(shape, dtype="float32")
    for wavelength, weight in ((60_000.0, 1.0), (20_000.0, 0.5), (7_000.0, 0.25)):
        a = _octave(shape, res, wavelength, rng)
        b = _octave(shape, res, wavelength * 3.0, rng)
        ridged += weight * (1.0 - np.abs(0.6 * a + 0.4 * b))
    ridged = np.clip(ridged / 1.75, 0.0, 1.0) ** 2
    ranges = 2_300.0 * ridged * inland ** 1.5
    hills = 250.0 * (0.5 + 0.5 * _octave(shape, res, 12_000.0, rng)) * inland
    valleys = np.clip(_octave(shape, res, 25_000.0, rng), 0.0, None)  # troughs cut down
    rough = 25.0 * _octave(shape, res, 800.0, rng) * inland + 6.0 * _octave(shape, res,
                                                                              300.0, rng)
    z += (ranges + hills) * (1.0 - 0.6 * np.minimum(valleys, 1.0)) + rough
    z = np.maximum(z, 0.0).astype("float32")
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs=UTM, transform=from_origin(left, top, res, res),
                       compress="deflate", tiled=True, predictor=3) as dst:
        dst.write(z, 1)
    return {"rows": rows, "cols": cols, "resolution_m": res, "max_m": float(z.max()),
            "mean_m": float(z.mean()), "share_above_500_m": float((z > 500).mean())}


def generate(out: Path, *, scale: float = 1.0, synthetic: bool = False, seed: int = 9,
             with_dem: bool = False) -> dict:
    """Write villages.parquet, sites.csv, tests.parquet, population.tif (and dem.tif)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_v, n_c, n_t = (round(VILLAGES * scale), round(CELLS * scale), round(TESTS * scale))
    t = time.perf_counter()
    com = None if synthetic else communes(n_v)
    villages = synthetic_villages(n_v) if com is None else split_communes(com, n_v, rng)
    source = "synthetic grid" if com is None else "GADM 4.1 communes, Voronoi-split"
    villages.to_crs(4326).to_parquet(out / "villages.parquet")
    cells = sites(villages, n_c, rng)
    cells.to_csv(out / "sites.csv", index=False)
    writer = None
    for df in tests(cells, n_t, rng):
        table = pa.Table.from_pandas(df, preserve_index=False)
        writer = writer or pq.ParquetWriter(out / "tests.parquet", table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
    pop = population(villages, out / "population.tif", rng)
    relief = dem(villages, out / "dem.tif", np.random.default_rng(seed + 1)) if with_dem else None
    info = {"scale": scale, "villages": len(villages), "villages_from": source,
            "cells": len(cells), "masts": int(cells.site_id.str[:7].nunique()),
            "tests": n_t, "population_raster": pop, "dem": relief,
            "seconds": round(time.perf_counter() - t, 1)}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--synthetic", action="store_true",
                    help="generated villages even when the GADM communes are present")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--dem", action="store_true",
                    help="also a seeded relief like Vietnam's at 100 m (dem.tif)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(generate(args.out, scale=args.scale, synthetic=args.synthetic,
                              seed=args.seed, with_dem=args.dem), indent=1))


if __name__ == "__main__":
    main()
