"""Speed and memory of the coverage model, side by side with the plain reference.

Run from the repository root (one command, prints figures, writes nothing)::

    PYTHONPATH=src python benchmarks/bench_model.py            # everything
    PYTHONPATH=src python benchmarks/bench_model.py --sites 200  # a quicker large run
    PYTHONPATH=src python benchmarks/bench_model.py --terrain-m 50  # profiles on 50 m terrain
    PYTHONPATH=src python benchmarks/bench_model.py --path-loss itm  # ITM instead of Hata

Three parts:

1. **Reference vs fast, same physics**: a 16 x 16 km hilly DEM at 100 m, a few masts, 6 km
   useful radius: :func:`coverage.model.predict_reference` (one cell and one full profile at
   a time) against :func:`coverage.model.predict_coverage` (radial sweep); time per million
   cell-profiles, the ratio, and how far the two surfaces differ (RMSE, 95th percentile, dB).
2. **Large**: ``--sites`` masts (default 1,000) of three 4G sectors each, at random over a
   ``--size-km`` square (default 100 km) DEM at 100 m, 30 km maximum range; wall time, time
   per site and per million cell-profiles, peak resident memory.
3. **Demo province** (when ``data/`` holds it): prediction time on the demo's grid.

``--path-loss`` selects the model's path loss in every part (``hata``, the default, is Hata +
Bullington; ``itm`` is the Irregular Terrain Model, whose reference is ITM point-to-point
on each cell's straight profile). Times are wall and CPU (all threads). Figures depend on
the machine's load: the script prints ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
from pyproj import CRS
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from coverage.io import Raster
from coverage.model import Grid, predict_coverage, predict_reference
from coverage.model.transmitters import FLOOR_DBM, prepare_transmitters, useful_radius_m
from coverage.params import ModelParams

CRS_UTM = CRS.from_epsg(32648)
X0, Y0 = 400_000.0, 2_400_000.0


def hilly_dem(size_km: float, res_m: float = 100.0, seed: int = 1) -> Raster:
    """Mountains of a few hundred metres with valleys: three octaves of smoothed noise."""
    n = round(size_km * 1000 / res_m)
    rng = np.random.default_rng(seed)
    z = np.zeros((n, n))
    for sigma_m, amp in ((8000.0, 600.0), (2000.0, 250.0), (500.0, 60.0)):
        f = gaussian_filter(rng.normal(size=(n, n)), sigma_m / res_m, mode="wrap")
        z += amp * f / f.std()
    z = np.maximum(z - z.min() + 50.0, 0.0)
    return Raster(z.astype("float64"), from_origin(X0, Y0 + n * res_m, res_m, res_m), CRS_UTM)


def random_sites(n: int, size_km: float, seed: int = 2, sectors: int = 3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(0, size_km * 1000, n)
    y = Y0 + rng.uniform(0, size_km * 1000, n)
    rows, pts = [], []
    for i in range(n):
        az0 = rng.uniform(0, 120)
        for s in range(sectors):
            rows.append({"site_id": f"S{i}", "operator": ("A", "B")[i % 2], "tech": "4G",
                         "height_m": 30.0,
                         "azimuth_deg": (az0 + 120 * s) % 360 if sectors > 1 else np.nan,
                         "beamwidth_deg": 65.0, "status": "active"})
            pts.append((x[i], y[i]))
    geom = gpd.points_from_xy([p[0] for p in pts], [p[1] for p in pts], crs=CRS_UTM)
    return gpd.GeoDataFrame(rows, geometry=geom, crs=CRS_UTM)


def cell_profiles(towers: gpd.GeoDataFrame, grid: Grid, params: ModelParams) -> int:
    """Cells within each mast's useful radius and inside the grid, summed over masts."""
    tx = prepare_transmitters(towers, grid.crs, params)
    xs, ys = grid.centres()
    xs, ys = xs[0], ys[:, 0]
    total = 0
    for (_, _), g in tx.groupby([tx.x.round(1), tx.y.round(1)]):
        radius = max(useful_radius_m(r.eirp_dbm, r.freq_mhz, r.height_m, FLOOR_DBM[r.tech],
                                     params) for r in g.itertuples())
        x0, y0 = g.x.iloc[0], g.y.iloc[0]
        cx = xs[np.abs(xs - x0) <= radius] - x0
        cy = ys[np.abs(ys - y0) <= radius] - y0
        total += int(np.count_nonzero(cx[None, :] ** 2 + cy[:, None] ** 2 <= radius**2))
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compare_reference(args) -> None:
    dem = hilly_dem(16.0)
    grid = Grid.covering(dem.bounds, 100.0, CRS_UTM)
    params = ModelParams(max_range_km=6.0, workers=args.workers,
                         ray_spacing_cells=args.ray_spacing, path_loss=args.path_loss)
    sites = random_sites(args.ref_sites, 16.0, seed=5, sectors=1)
    sites = sites.assign(geometry=gpd.points_from_xy(
        X0 + 4000 + (sites.geometry.x - X0) / 2, Y0 + 4000 + (sites.geometry.y - Y0) / 2,
        crs=CRS_UTM))
    n = cell_profiles(sites, grid, params)
    t = time.perf_counter()
    fast = predict_coverage(sites, grid, dem=dem, params=params)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    ref = predict_reference(sites, grid, dem=dem, params=params)
    t_ref = time.perf_counter() - t
    diffs = []
    for key, arr in ref.layers.items():
        both = np.isfinite(arr) & np.isfinite(fast.layers[key])
        diffs.append((fast.layers[key] - arr)[both])
        only = np.isfinite(arr) ^ np.isfinite(fast.layers[key])
        print(f"  layer {key}: {both.sum()} cells in both, {only.sum()} above the floor in "
              "one only")
    d = np.concatenate(diffs)
    print(f"reference vs fast ({args.path_loss}), {args.ref_sites} omni masts, 6 km radius, "
          f"16x16 km at 100 m, {n:,} cell-profiles")
    print(f"  reference (loop per cell): {t_ref:8.2f} s = {t_ref / n * 1e6:9.1f} s per "
          "million cell-profiles")
    print(f"  fast (radial sweep):       {t_fast:8.2f} s = {t_fast / n * 1e6:9.2f} s per "
          "million cell-profiles")
    print(f"  speed ratio: {t_ref / t_fast:.0f}x")
    print(f"  level difference fast - reference: RMSE {np.sqrt(np.mean(d**2)):.2f} dB, "
          f"bias {d.mean():+.2f} dB, |diff| 95th percentile "
          f"{np.percentile(np.abs(d), 95):.2f} dB, max {np.abs(d).max():.1f} dB")


def large(args) -> None:
    dem = hilly_dem(args.size_km, res_m=args.terrain_m or 100.0)
    grid = Grid.covering(dem.bounds, 100.0, CRS_UTM)
    params = ModelParams(workers=args.workers, ray_spacing_cells=args.ray_spacing,
                         terrain_resolution_m=args.terrain_m, path_loss=args.path_loss)
    sites = random_sites(args.sites, args.size_km)
    n = cell_profiles(sites, grid, params)
    before = peak_rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    s = predict_coverage(sites, grid, dem=dem, params=params)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    covered = np.isfinite(s.best()).mean()
    print(f"large ({args.path_loss}): {args.sites} masts x 3 sectors (4G), {args.size_km:g} x "
          f"{args.size_km:g} "
          f"km at 100 m ({grid.shape[0]}x{grid.shape[1]} cells), terrain at "
          f"{params.terrain_step_m:g} m, 30 km max range, {params.workers} threads")
    print(f"  {wall:.1f} s wall = {wall / args.sites * 1000:.1f} ms per site = "
          f"{wall / n * 1e6:.3f} s per million cell-profiles ({n / 1e6:.0f} M); "
          f"CPU {cpu:.1f} s = {cpu / args.sites * 1000:.1f} ms per site")
    print(f"  peak resident memory {peak_rss_mb():.0f} MB (before the run {before:.0f} MB); "
          f"{covered:.0%} of cells above the floor")


def demo(args) -> None:
    root = Path(__file__).resolve().parents[1] / "data"
    if not (root / "rasters").exists() or not any((root / "rasters").iterdir()):
        print("demo: no demo data under data/ (skipped)")
        return
    from coverage.datasets import demo_paths
    from coverage.pipeline import DEMO_CONFIG, Settings, analysis_grid, load_inputs

    paths = demo_paths()
    inputs = load_inputs(paths["villages"], towers=[paths["sites"], paths["opencellid"]],
                         dem=paths["dem"])
    settings = Settings.from_config(DEMO_CONFIG)
    params = dataclasses.replace(settings.model, path_loss=args.path_loss,
                                 workers=args.workers)
    grid = analysis_grid(inputs.villages, params)
    active = inputs.towers[inputs.towers["status"] == "active"]
    t, cpu = time.perf_counter(), time.process_time()
    predict_coverage(active, grid, dem=inputs.dem, params=params)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    n_pos = len(active.geometry.to_crs(grid.crs).apply(lambda p: (round(p.x), round(p.y))).unique())
    print(f"demo ({args.path_loss}): {len(active)} transmitters at {n_pos} masts on "
          f"{grid.shape[0]}x{grid.shape[1]} cells, {params.workers} threads: {wall:.1f} s wall "
          f"({wall / n_pos * 1000:.0f} ms per mast), {cpu:.1f} s CPU")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--size-km", type=float, default=100.0)
    ap.add_argument("--ref-sites", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray-spacing", type=float, default=ModelParams().ray_spacing_cells,
                    help="ray spacing at the useful radius, cells")
    ap.add_argument("--terrain-m", type=float, default=None,
                    help="large run: DEM and profiles at this step (terrain_resolution_m), "
                         "under the 100 m grid")
    ap.add_argument("--path-loss", choices=["hata", "free_space", "itm"], default="hata",
                    help="the model's path loss (ModelParams.path_loss)")
    ap.add_argument("--skip", choices=["reference", "large", "demo"], action="append",
                    default=[])
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if "reference" not in args.skip:
        compare_reference(args)
    if "demo" not in args.skip:
        demo(args)
    if "large" not in args.skip:
        large(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
