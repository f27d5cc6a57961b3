"""Page weight and open time of the HTML maps in a real browser (Debian's Chromium).

Targets (issue 7): a province of 5,000 villages in a file under 15 MB that opens in under 3 s;
the national index page opens in under 3 s.

Measured:

1. a generated 5,000-village province (edge-matched Voronoi villages with wiggly, densified
   borders, about 160 vertices each; 250 communes, 10 districts; 800 towers, 3,000 tests,
   40 planned sites, an 800 x 800 coverage raster);
2. the demo map (``covgap demo``), when the demo data is present;
3. a national index of 40 provinces x 500 villages (20,000 villages).

"Open time" is the time from navigation start until the village (or province) layer is on
the map and two animation frames have been painted, from ``performance.now()`` in the page,
with the network cut off; the median of 3 cold loads in fresh pages.

Run::

    PYTHONPATH=src /work/venv/bin/python benchmarks/bench_maps.py [--villages 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine

from coverage import maps

CHROMIUM = os.environ.get("COVGAP_CHROMIUM", "/usr/bin/chromium")
CRS = "EPSG:32648"
CLASSES = ["unavailable", "available_inaccessible", "served"]
SYLLABLES = ["Nà", "Bản", "Khuổi", "Phìn", "Lũng", "Tả", "Sín", "Pác", "Đồng", "Thượng",
             "Mường", "Nậm", "Cốc", "Séo", "Hồ", "Chải", "Lốc", "Ngòi"]


def province(n: int, *, x0: float = 400_000.0, y0: float = 2_400_000.0, seed: int = 0,
             side_km: float | None = None, name: str = "Tỉnh Thử") -> gpd.GeoDataFrame:
    """``n`` edge-matched villages with wiggly borders, in UTM 48N."""
    rng = np.random.default_rng(seed)
    side = (side_km or np.sqrt(n) * 1.15) * 1000.0  # ~1.3 km2 per village
    seeds = shapely.points(rng.uniform(x0, x0 + side, (n, 2)) * [1, 1] + [0, y0 - x0])
    frame = shapely.box(x0, y0, x0 + side, y0 + side)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds),
                                                       extend_to=frame))
    cells = shapely.intersection(cells, frame)
    cells = shapely.segmentize(cells, 25.0)

    def warp(xy: np.ndarray) -> np.ndarray:  # a smooth field: shared vertices move together
        x, y = xy[:, 0], xy[:, 1]
        dx = 40 * np.sin(x / 170.0 + 2 * np.cos(y / 410.0)) + 12 * np.sin(y / 53.0)
        dy = 40 * np.cos(y / 190.0 + 2 * np.sin(x / 370.0)) + 12 * np.cos(x / 61.0)
        inside = (x > x0) & (x < x0 + side) & (y > y0) & (y < y0 + side)
        return np.c_[x + dx * inside, y + dy * inside]

    cells = shapely.transform(cells, warp)
    centres = shapely.get_coordinates(shapely.centroid(cells))
    commune_seeds = rng.uniform([x0, y0], [x0 + side, y0 + side], (max(n // 20, 1), 2))
    commune = np.argmin(((centres[:, None, :] - commune_seeds[None]) ** 2).sum(-1), axis=1)
    district = commune % 10
    names = [" ".join(rng.choice(SYLLABLES, 2)) + f" {i}" for i in range(n)]
    names[0] = '<img src=x onerror="window.__xss=1">'
    cls = rng.choice(CLASSES, n, p=[0.15, 0.25, 0.6])
    pop = rng.gamma(2.0, 250.0, n).round()
    return gpd.GeoDataFrame(
        {
            "village_id": [f"{seed:02d}{i:05d}" for i in range(n)],
            "name": names,
            "commune": [f"Xã {c}" for c in commune],
            "district": [f"Huyện {d}" for d in district],
            "province": name,
            "class": cls,
            "reasons": np.where(cls == "unavailable", "no_signal;2g_only", ""),
            "population": pop,
            "households": (pop / 4.2).round(),
            "pop_covered_share": rng.uniform(0, 1, n).round(3),
            "pop_indoor_share": rng.uniform(0, 1, n).round(3),
            "best_tech": rng.choice(["4G", "3G", ""], n),
            "operators": rng.integers(0, 4, n),
            "n_tests": rng.integers(0, 12, n),
            "median_download_mbps": rng.gamma(2, 6, n).round(1),
            "confidence": rng.uniform(0.3, 1, n).round(2),
            "explanation": "38% of 1,240 people have 4G outdoors; nearest 4G site 9.2 km",
        },
        geometry=cells,
        crs=CRS,
    )


def extras(villages: gpd.GeoDataFrame, seed: int = 1):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = villages.total_bounds
    towers = gpd.GeoDataFrame(
        {"operator": rng.choice(["Viettel", "VNPT", "MobiFone"], 800),
         "tech": rng.choice(["2G", "3G", "4G"], 800)},
        geometry=gpd.points_from_xy(rng.uniform(x0, x1, 800), rng.uniform(y0, y1, 800)),
        crs=CRS)
    tests = gpd.GeoDataFrame(
        {"tech": rng.choice(["4G", "3G", "none"], 3000),
         "download_mbps": rng.gamma(2, 6, 3000).round(1),
         "rsrp_dbm": rng.uniform(-125, -70, 3000).round(1)},
        geometry=gpd.points_from_xy(rng.uniform(x0, x1, 3000), rng.uniform(y0, y1, 3000)),
        crs=CRS)
    plan = gpd.GeoDataFrame(
        {"rank": np.arange(1, 41), "site_id": [f"S-{i}" for i in range(1, 41)],
         "kind": "new_site", "tech": "4G", "cost": 2.5e9, "pop_gain": 500.0, "villages": ""},
        geometry=gpd.points_from_xy(rng.uniform(x0, x1, 40), rng.uniform(y0, y1, 40)),
        crs=CRS)
    res = (x1 - x0) / 800
    yy, xx = np.mgrid[0:800, 0:800]
    rsrp = -70 - 60 * np.hypot((xx - 400) / 400, (yy - 400) / 400) + 8 * np.sin(xx / 23.0)
    coverage = (rsrp, Affine(res, 0, x0, 0, -res, y1), CRS)
    return towers, tests, plan, coverage


def open_times(path: Path, ready: str, runs: int = 3) -> list[float]:
    """Open time in ms (navigation start to layer drawn + 2 frames), ``runs`` cold loads."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 800})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="commit")
            page.wait_for_function(ready, timeout=60_000, polling=10)
            ms = page.evaluate("""() => new Promise(r => requestAnimationFrame(
                () => requestAnimationFrame(() => r(performance.now()))))""")
            if errors:
                raise RuntimeError(f"{path.name}: page errors {errors}")
            out.append(float(ms))
            context.close()
        browser.close()
    return out


def report(label: str, path: Path, build_s: float, ready: str, drawn_js: str | None = None
           ) -> None:
    times = open_times(path, ready)
    size = path.stat().st_size / 1e6
    print(f"{label:<44} {size:7.2f} MB  open {statistics.median(times):6.0f} ms "
          f"(runs {', '.join(f'{t:.0f}' for t in times)})  built in {build_s:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--villages", type=int, default=5000)
    ap.add_argument("--provinces", type=int, default=40)
    ap.add_argument("--per-province", type=int, default=500)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min); "
          f"{os.cpu_count()} CPUs")
    village_ready = "window.covgapVillageLayer !== undefined"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        v = province(args.villages)
        towers, tests, plan, coverage = extras(v)
        nverts = shapely.get_num_coordinates(v.geometry.values).sum()
        print(f"generated province: {len(v):,} villages, {nverts:,} vertices, "
              f"valid {shapely.is_valid(v.geometry.values).mean():.0%}, "
              f"{v['commune'].nunique()} communes, {v['district'].nunique()} districts")
        t = time.perf_counter()
        m = maps.village_map(v, plan=plan, towers=towers, measurements=tests,
                             coverage=coverage, title="Tỉnh Thử (5,000 thôn)")
        path = maps.save_map(m, tmp / "province.html")
        report(f"province, {len(v):,} villages, all layers", path, time.perf_counter() - t,
               village_ready)
        t = time.perf_counter()
        path = maps.save_map(maps.village_map(v), tmp / "villages.html")
        report(f"province, {len(v):,} villages only", path, time.perf_counter() - t,
               village_ready)

        demo = None
        try:
            from coverage.datasets import demo_paths
            from coverage.pipeline import run_demo

            demo_paths()
            t = time.perf_counter()
            demo = run_demo(tmp / "demo", map_path=tmp / "demo.html").outputs["map"]
            report("demo map (covgap demo, incl. the model run)", demo,
                   time.perf_counter() - t, village_ready)
        except (ImportError, FileNotFoundError, OSError) as exc:
            print(f"demo map: skipped, demo data not present ({exc})")

        parts = [province(args.per_province, x0=300_000.0 + (k % 8) * 40_000.0,
                          y0=2_300_000.0 + (k // 8) * 40_000.0, seed=k, side_km=40.0,
                          name=f"Tỉnh {k}")
                 for k in range(args.provinces)]
        national = gpd.GeoDataFrame(
            gpd.pd.concat(parts, ignore_index=True), crs=CRS)
        t = time.perf_counter()
        index = maps.save_map(maps.index_map(national, by="province"), tmp / "index.html")
        report(f"national index, {args.provinces} provinces / {len(national):,} villages",
               index, time.perf_counter() - t, "window.covgapRegionLayer !== undefined")


if __name__ == "__main__":
    main()
