"""Every province runs: a sweep over provinces the tool was not written for, through the CLI.

Each province goes through ``classify`` -> ``plan`` (a budget over two phases, and a number of
sites, each with a locked planned site where there is one) -> ``map`` -> ``report`` ->
``diff`` against itself, as a user types it, and every run is checked for what holds whatever
the province:

- exit status 0, no traceback, and the missing DEM tiles named;
- every village exactly once in every output (classified, both priority lists, the diff, the
  map's village layer, the report's count);
- the plans in build order (ranks 1..n, the locked site first, phases in order, running
  totals that add up), within their money (each phase within the phases' money so far) or
  number of sites; the villages a site lifts are ``unavailable`` input villages;
- every site the tool places inside the analysis area (the villages' extent and the model's
  2 km margin); sites of the input tables (upgrades, planned sites, user candidates) may
  stand beyond it, within the model's range;
- people connected no more than the bound the plan reports, nor than the people in need;
- the map opens in a headless browser, offline, with no console error.

Generated provinces (:class:`Province`) differ in seed, size and shape (see ``GENERATED``);
real ones are GADM communes with the 2019 census, WorldPop, the SRTM tile N21E105, OSM peaks
and towers as candidates, and cells made here from a fixed seed; they skip, with the reason,
when ``../shared/data`` is absent. docs/province-sweep.md lists the cases.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from conftest import write_tif
from coverage.cli import main
from test_io_real import need
from test_maps_browser import browser  # noqa: F401  (the headless Chromium, reused)

pytestmark = pytest.mark.slow

UTM = "EPSG:32648"
DEM_NODATA, POP_NODATA = -32768, -99999.0
MAX_CANDIDATES = 40  # generated candidates per plan


@dataclasses.dataclass(frozen=True)
class Province:
    """A generated province, in UTM 48N.

    Attributes
    ----------
    name : str
        Test id.
    seed : int
        Random seed of everything drawn.
    width_km, height_km : float
        Extent of the villages' outline.
    n_villages : int
        Voronoi villages tiling the outline (1: the outline is the village).
    outline : str
        ``rect``, ``island`` (a blob with sea all around) or ``coast`` (sea to the east).
    towers : str
        ``mixed`` (4G/3G and 2G-only sites inside), ``none`` (no active site), ``dense``
        (a 4G site in every village), ``far`` (active sites 8-40 km outside only).
    rasters : str
        ``full`` (DEM with voids, population), ``none`` (towers only), ``partial`` (a DEM
        stopping at a village's edge, in EPSG:4326), ``sea`` (sea cells of nodata),
        ``elsewhere`` (a DEM of another place, 60 km east).
    villages_crs : str
        CRS of the villages' file (VN-2000 and lon/lat as well as UTM).
    planned : bool
        One planned site, which the plans lock (without it, and nobody in need, the plans
        hold no site).
    """

    name: str
    seed: int
    width_km: float
    height_km: float
    n_villages: int
    outline: str = "rect"
    towers: str = "mixed"
    rasters: str = "full"
    villages_crs: str = UTM
    planned: bool = True

    @property
    def origin(self) -> tuple[float, float]:
        """South-west corner of the outline, UTM metres (a different place per seed)."""
        return 560_000.0 + 7_000.0 * (self.seed % 5), 2_380_000.0 + 9_000.0 * (self.seed % 7)


GENERATED = [
    Province("valley", 11, 18, 14, 30),
    Province("long-thin", 12, 30, 2.5, 14),
    Province("coastal", 13, 16, 20, 26, outline="coast", rasters="sea",
             villages_crs="EPSG:4326"),
    Province("island", 14, 12, 10, 18, outline="island", rasters="sea",
             villages_crs="EPSG:3405"),
    Province("all-unserved", 15, 14, 12, 20, towers="none"),
    Province("all-served", 16, 10, 10, 16, towers="dense", planned=False),
    Province("single-village", 17, 4, 3, 1),
    Province("towers-only", 18, 15, 15, 24, rasters="none"),
    Province("towers-far-outside", 19, 14, 12, 22, towers="far", rasters="partial"),
    Province("many-small", 20, 10, 10, 70),
    Province("dem-elsewhere", 21, 8, 8, 12, rasters="elsewhere"),
]


def _outline(p: Province, rng: np.random.Generator) -> shapely.Polygon:
    x0, y0 = p.origin
    w, h = p.width_km * 1000, p.height_km * 1000
    if p.outline == "island":
        t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
        r = 1 + 0.18 * np.sin(3 * t + rng.uniform(0, 6)) + 0.1 * np.cos(5 * t)
        return shapely.Polygon(np.column_stack([x0 + w / 2 * (1 + 0.8 * r * np.cos(t)),
                                                y0 + h / 2 * (1 + 0.8 * r * np.sin(t))]))
    if p.outline == "coast":  # a ragged coastline to the east
        ys = np.linspace(y0 + h, y0, 40)
        xs = x0 + w * (0.75 + 0.12 * np.sin(ys / 1500.0) + rng.uniform(-0.04, 0.04, 40))
        return shapely.Polygon([(x0, y0), (x0, y0 + h), *zip(xs, ys, strict=True)])
    return shapely.box(x0, y0, x0 + w, y0 + h)


def _villages(p: Province, shape: shapely.Polygon, rng: np.random.Generator
              ) -> gpd.GeoDataFrame:
    if p.n_villages == 1:
        cells = [shape]
    else:
        x0, y0, x1, y1 = shape.bounds
        pts = []
        while len(pts) < p.n_villages:
            pt = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
            if shape.contains(pt):
                pts.append(pt)
        cells = [c.intersection(shape) for c in
                 shapely.voronoi_polygons(shapely.MultiPoint(pts), extend_to=shape).geoms]
        cells = [c for c in cells if not c.is_empty]
    n = len(cells)
    population = rng.integers(80, 2500, n).astype(float)
    if p.rasters != "none":
        population[4::9] = np.nan  # counted from the population raster
    return gpd.GeoDataFrame({
        "village_id": [f"{p.seed:02d}{k:03d}" for k in range(n)],
        "name": [f"Thôn {p.name} {k}" for k in range(n)],
        "commune": [f"Xã {k % 3}" for k in range(n)],
        "district": "Huyện Thử",
        "population": population},
        geometry=cells, crs=UTM)


def _site_rows(points, techs, status: str, prefix: str) -> list[dict]:
    pts = gpd.GeoSeries(points, crs=UTM).to_crs(4326)
    rows = []
    for k, (pt, tech) in enumerate(zip(pts, techs, strict=True)):
        for t in tech.split("+"):
            rows.append({"site_id": f"{prefix}{k}", "operator": "Viettel", "tech": t,
                         "height_m": 30, "status": status, "lon": round(pt.x, 6),
                         "lat": round(pt.y, 6)})
    return rows


def _sites(p: Province, shape: shapely.Polygon, villages: gpd.GeoDataFrame,
           rng: np.random.Generator) -> pd.DataFrame:
    x0, y0, x1, y1 = shape.bounds
    inner = [pt for pt in shapely.points(rng.uniform(x0, x1, 60), rng.uniform(y0, y1, 60))
             if shape.contains(pt)]
    # one planned site: the plans lock it
    rows = (_site_rows([villages.geometry.iloc[0].representative_point()], ["4G"], "planned",
                       "P-") if p.planned else [])
    if p.towers == "mixed":
        n = max(2, len(inner) // 12)
        rows += _site_rows(inner[:n], rng.choice(["4G+3G", "2G", "3G"], n), "active", "A-")
    elif p.towers == "dense":
        centres = villages.geometry.representative_point()
        rows += _site_rows(list(centres), ["4G+3G"] * len(centres), "active", "A-")
    elif p.towers == "far":
        angle = rng.uniform(0, 2 * np.pi, 8)
        dist = np.linspace(8_000, 40_000, 8)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        far = shapely.points(cx + (dist + (x1 - x0) / 2) * np.cos(angle),
                             cy + (dist + (y1 - y0) / 2) * np.sin(angle))
        rows += _site_rows(list(far), rng.choice(["4G", "2G", "3G+2G"], 8), "active", "F-")
    return pd.DataFrame(rows)


def _terrain(p: Province, shape: shapely.Polygon, rng: np.random.Generator
             ) -> tuple[np.ndarray, object, np.ndarray]:
    """(elevation, transform, land mask) on 100 m cells over the outline and 3 km around."""
    res, pad = 100.0, 3_000.0
    x0, y0, x1, y1 = shape.bounds
    left, top = x0 - pad, y1 + pad
    cols, rows = int((x1 - x0 + 2 * pad) / res), int((y1 - y0 + 2 * pad) / res)
    x = left + (np.arange(cols) + 0.5) * res
    y = top - (np.arange(rows)[:, None] + 0.5) * res
    z = np.full((rows, cols), 150.0)
    for _ in range(12):  # hills of 100-700 m, 1-4 km wide
        hx, hy = rng.uniform(left, left + cols * res), rng.uniform(top - rows * res, top)
        z += rng.uniform(100, 700) * np.exp(-((x - hx) ** 2 + (y - hy) ** 2)
                                            / (2 * rng.uniform(1_000, 4_000) ** 2))
    land = np.ones(z.shape, bool)
    if p.rasters == "sea":
        xy = shapely.points(np.broadcast_to(x, z.shape), np.broadcast_to(y, z.shape))
        land = shapely.contains(shape.buffer(300.0), xy)
    return z.astype("float32"), from_origin(left, top, res, res), land


def _lonlat(values: np.ndarray, transform) -> tuple[np.ndarray, object]:
    """A UTM raster warped to EPSG:4326 at about its cell size (nodata kept)."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    rows, cols = values.shape
    bounds = rasterio.transform.array_bounds(rows, cols, transform)
    dst_transform, w, h = calculate_default_transform(UTM, "EPSG:4326", cols, rows, *bounds)
    out = np.full((h, w), DEM_NODATA, dtype="float32")
    reproject(values, out, src_transform=transform, src_crs=UTM, dst_transform=dst_transform,
              dst_crs="EPSG:4326", src_nodata=DEM_NODATA, dst_nodata=DEM_NODATA,
              resampling=Resampling.nearest)
    return out, dst_transform


def write_generated(p: Province, folder: Path) -> dict:
    """The province's files; returns the CLI arguments of its inputs and what it holds."""
    rng = np.random.default_rng(p.seed)
    shape = _outline(p, rng)
    villages = _villages(p, shape, rng)
    paths = {"villages": folder / "villages.gpkg", "sites": folder / "sites.csv"}
    villages.to_crs(p.villages_crs).to_file(paths["villages"])
    _sites(p, shape, villages, rng).to_csv(paths["sites"], index=False)
    inputs = ["--towers", paths["sites"]]
    if p.rasters != "none":
        z, transform, land = _terrain(p, shape, rng)
        dem = np.where(land, z, DEM_NODATA).astype("int16")
        voids = rng.integers(0, dem.size, 40)
        dem.ravel()[voids] = DEM_NODATA  # SRTM-like voids, one cell each
        dem[10:14, 20:26] = DEM_NODATA  # and a block
        dem_crs, dem_transform = UTM, transform
        if p.rasters == "elsewhere":  # a tile of another place, 60 km east
            dem_transform = transform * rasterio.Affine.translation(600, 0)
        if p.rasters == "partial":
            # the DEM stops at the edge of the first village: part of the area and of the
            # towers' paths lies beyond it
            edge = villages.geometry.iloc[0].bounds[2]
            keep = int((edge - transform.c) / transform.a)
            dem, dem_transform = _lonlat(dem[:, :keep].astype("float32"), transform)
            dem_crs = "EPSG:4326"
        write_tif(folder / "dem.tif", dem, dem_transform, dem_crs, nodata=DEM_NODATA)
        people = rng.lognormal(0.0, 1.0, z.shape).astype("float32")
        people = np.where(land, people, POP_NODATA).astype("float32")
        write_tif(folder / "pop.tif", people, transform, UTM, nodata=POP_NODATA)
        inputs += ["--dem", folder / "dem.tif", "--population", folder / "pop.tif"]
    return {"villages": paths["villages"], "inputs": inputs, "ids": list(villages["village_id"]),
            "lock": "P-0" if p.planned else None, "classify": [],
            # the partial DEM leaves part of the area: the run says so (the tile it lies in)
            "missing_tiles": [""] if p.rasters in ("partial", "elsewhere") else []}


REAL = {
    # GADM communes whose representative point lies in the box (lon0, lat0, lon1, lat1), and
    # the SRTM tiles the run must name as missing (only N21E105 is given)
    "tam-dao": ("thai-nguyen", (105.58, 21.50, 105.70, 21.62), []),  # inside N21E105
    "ba-vi": ("ha-noi", (105.45, 20.90, 105.62, 21.07), ["N20E105"]),  # across 21 N
    "bac-kan": ("thai-nguyen", (105.78, 22.05, 105.90, 22.17), ["N22E105"]),  # north of it
}
OSM = "osm-vn-2018"


def _osm_points(layer: str, keep, bbox) -> gpd.GeoDataFrame:
    path = need(f"{OSM}/{layer}")
    g = gpd.read_file(next(path.glob("*.shp")), bbox=bbox)
    return g[keep(g)]


def write_real(name: str, folder: Path) -> dict:
    """GADM communes as villages with the census, WorldPop, SRTM, OSM candidates, sites."""
    province, (lon0, lat0, lon1, lat1), missing_tiles = REAL[name]
    communes = need(f"vn-communes-gadm41/provinces/{province}.json")
    census = need("vn-census2019/VN_Population_ward.csv")
    worldpop = need("worldpop-vnm-1km/vnm_ppp_2020_1km_Aggregated_UNadj.tif")
    srtm = need("srtm/N21E105.hgt")
    g = gpd.read_file(communes)
    pt = g.geometry.representative_point()
    g = g[pt.x.between(lon0, lon1) & pt.y.between(lat0, lat1)].reset_index(drop=True)
    people = (pd.read_csv(census, dtype={"ward_id": str}).dropna(subset=["ward_id"])
              .drop_duplicates("ward_id").set_index("ward_id")["total"])
    g["population"] = people.reindex(g["GID_3"]).to_numpy()
    villages = folder / "communes.geojson"
    g.to_file(villages, driver="GeoJSON")
    # sites as OpenCelliD exports them, at a quarter of the communes, and 2G cells 10-25 km
    # beyond the area
    rng = np.random.default_rng(sum(map(ord, name)))
    centres = g.geometry.representative_point()
    lon = list(centres.x.iloc[::4] + rng.normal(0, 0.004, len(centres.iloc[::4])))
    lat = list(centres.y.iloc[::4] + rng.normal(0, 0.004, len(centres.iloc[::4])))
    radios = list(rng.choice(["LTE", "UMTS", "GSM"], len(lon)))
    for a in rng.uniform(0, 2 * np.pi, 4):
        d = rng.uniform(0.1, 0.25)
        lon.append((lon0 + lon1) / 2 + (d + (lon1 - lon0) / 2) * np.cos(a))
        lat.append((lat0 + lat1) / 2 + (d + (lat1 - lat0) / 2) * np.sin(a))
        radios.append("GSM")
    cells = pd.DataFrame({"radio": radios, "mcc": 452, "net": 4, "area": 100,
                          "cell": np.arange(len(lon)) * 10 + 1, "unit": 0,
                          "lon": np.round(lon, 6), "lat": np.round(lat, 6), "range": 2000,
                          "samples": 9, "changeable": 1, "created": 1_600_000_000,
                          "updated": 1_700_000_000, "averageSignal": 0})
    cells.to_csv(folder / "opencellid.csv", index=False)
    # one planned site (the plan locks it) in a site table
    first = centres.iloc[0]
    pd.DataFrame([{"site_id": "P-0", "operator": "Viettel", "tech": "4G", "status": "planned",
                   "lon": round(first.x, 6), "lat": round(first.y, 6)}]
                 ).to_csv(folder / "planned.csv", index=False)
    # user candidates: OSM peaks and communication towers in and around the area
    bbox = (lon0 - 0.05, lat0 - 0.05, lon1 + 0.05, lat1 + 0.05)
    osm = pd.concat([
        _osm_points("osm_natural_free", lambda d: d["fclass"] == "peak", bbox),
        _osm_points("osm_pois_free", lambda d: d["fclass"].isin(["comms_tower", "tower"]),
                    bbox)], ignore_index=True)
    cands = gpd.GeoDataFrame({"site_id": [f"osm-{i}" for i in osm["osm_id"]]},
                             geometry=osm.geometry.to_numpy(), crs=4326)
    inputs = ["--towers", folder / "opencellid.csv", "--towers", folder / "planned.csv",
              "--population", worldpop, "--dem", srtm]
    plan_only = []
    if len(cands):
        cands.to_file(folder / "candidates.gpkg")
        plan_only = ["--candidates", folder / "candidates.gpkg"]
    return {"villages": villages, "inputs": inputs, "ids": list(g["GID_3"]), "lock": "P-0",
            "classify": ["--id-col", "GID_3", "--name-col", "NAME_3"], "plan": plan_only,
            "missing_tiles": missing_tiles}


def _invoke(args: list) -> dict:
    """Run ``covgap ARGS`` as a user would; the exit status, stdout and stderr."""
    start, cpu = time.perf_counter(), time.process_time()
    result = CliRunner().invoke(main, [str(a) for a in args])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return {"args": [str(a) for a in args], "code": result.exit_code,
            "out": result.stdout, "err": result.stderr,
            "crash": repr(result.exception) if crashed else None, "seconds": seconds,
            "cpu_seconds": cpu}


def run_province(files: dict, folder: Path) -> dict:
    """classify -> plan (budget over phases; sites) -> map -> report -> diff, and outputs."""
    inputs = files["inputs"]
    cls = folder / "classified.gpkg"
    runs = {"classify": _invoke(["classify", files["villages"], *inputs, *files["classify"],
                                 "-o", cls, "--coverage-out", folder / "best_dbm.tif"])}
    # a few dozen candidates keep the exact solver and the LP bound to seconds
    config = folder / "covgap.toml"
    config.write_text(f"[plan]\nmax_candidates = {MAX_CANDIDATES}\n", encoding="utf-8")
    lock = ["--lock", files["lock"]] if files["lock"] else []
    plan_in = [*inputs, *files.get("plan", []), *lock, "--config", config]
    runs["plan_budget"] = _invoke([
        "plan", cls, *plan_in, "--budget", "12bn", "--phases", "2026=7bn,2027=7bn",
        "--sweep", "3bn,12bn", "-o", folder / "plan_budget.csv",
        "--villages-out", folder / "priority_budget.csv"])
    runs["plan_sites"] = _invoke([
        "plan", cls, *plan_in, "--sites", "4", "-o", folder / "plan_sites.gpkg",
        "--villages-out", folder / "priority_sites.xlsx"])
    runs["map"] = _invoke(["map", cls, "--plan", folder / "plan_budget.csv",
                           *inputs[:2], "--coverage", folder / "best_dbm.tif",
                           "-o", folder / "maps" / "province.html"])
    runs["report"] = _invoke(["report", cls, "--plan", folder / "plan_budget.csv",
                              "--priority", folder / "priority_budget.csv",
                              "--sweep", folder / "plan_budget_curve.csv",
                              "--lang", "en", "-o", folder / "report.html"])
    runs["diff"] = _invoke(["diff", cls, cls, "-o", folder / "diff.csv"])
    page = folder / "report.html"
    report = page.read_text(encoding="utf-8") if page.exists() else ""
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", re.sub(
        r"<(script|style)\b.*?</\1>", " ", report, flags=re.S))))
    out = {"files": files, "folder": folder, "runs": runs, "report_text": text}
    if cls.exists():
        classified = gpd.read_file(cls)
        unavailable = classified["class"] == "unavailable"
        out["need_ids"] = list(classified.loc[unavailable, "village_id"].astype(str))
        out["people_in_need"] = float(classified.loc[unavailable, "population"].sum())
    return out


CASES = [pytest.param(p, id=p.name) for p in GENERATED] + [
    pytest.param(name, id=f"real-{name}") for name in REAL]


@pytest.fixture(scope="module", params=CASES)
def province(request, tmp_path_factory) -> dict:
    case = request.param
    folder = tmp_path_factory.mktemp(case if isinstance(case, str) else case.name)
    files = write_real(case, folder) if isinstance(case, str) else write_generated(case, folder)
    return run_province(files, folder)


def _ids(path: Path) -> list[str]:
    if path.suffix == ".xlsx":
        table = pd.read_excel(path, dtype={"village_id": str})
    elif path.suffix == ".csv":
        table = pd.read_csv(path, dtype={"village_id": str})
    else:
        table = gpd.read_file(path)
    return sorted(table["village_id"].astype(str))


def test_every_command_runs_and_names_the_missing_dem_tiles(province):
    for step, run in province["runs"].items():
        assert run["crash"] is None, f"{step}: {run['crash']}\n{run['err']}"
        assert run["code"] == 0, f"{step}: exit {run['code']}\n{run['out']}\n{run['err']}"
        assert "Traceback" not in run["err"] + run["out"], step
        assert "looks like a bug" not in run["err"], step
    for tile in province["files"]["missing_tiles"]:
        for step in ("classify", "plan_budget", "plan_sites"):
            run = province["runs"][step]
            assert "does not cover" in run["err"] and tile in run["err"], (step, tile)


def _plan(province: dict, which: str) -> pd.DataFrame:
    folder = province["folder"]
    if which == "budget":
        return pd.read_csv(folder / "plan_budget.csv", dtype={"site_id": str, "villages": str})
    return gpd.read_file(folder / "plan_sites.gpkg")


def test_every_village_once_in_every_output(province):
    folder, ids = province["folder"], sorted(province["files"]["ids"])
    for name in ("classified.gpkg", "priority_budget.csv", "priority_sites.xlsx", "diff.csv"):
        assert _ids(folder / name) == ids, name
    diff = pd.read_csv(folder / "diff.csv", dtype={"village_id": str})
    assert (diff["change"] == "unchanged").all()
    assert f"{len(ids)} villages" in province["report_text"]


def test_plans_keep_their_limits_and_build_order(province):
    lock = province["files"]["lock"]
    for which in ("budget", "sites"):
        plan = _plan(province, which)
        if lock:
            assert len(plan) >= 1 and plan["site_id"].iloc[0] == lock, which
        elif not province["need_ids"]:
            assert plan.empty, which  # nobody in need, nothing locked: nothing to build
        assert plan["rank"].tolist() == list(range(1, len(plan) + 1)), which
        assert plan["site_id"].is_unique, which
        cost, gain = plan["cost"].astype(float), plan["pop_gain"].astype(float)
        np.testing.assert_allclose(plan["cum_cost"].astype(float), cost.cumsum(), rtol=1e-9)
        np.testing.assert_allclose(plan["cum_pop_gain"].astype(float), gain.cumsum(), atol=0.5)
        assert (gain >= 0).all() and (cost > 0).all(), which
        # the villages a site lifts are input villages in need
        lists = plan["villages"].astype("string").fillna("")
        lifted = {v for s in lists for v in s.split(";") if v}
        assert lifted <= set(province["need_ids"]), which
    sites = _plan(province, "sites")
    assert len(sites) <= 4
    budget = _plan(province, "budget")
    assert budget["cost"].sum() <= 12e9 * (1 + 1e-9)
    assert budget["phase"].is_monotonic_increasing and set(budget["year"]) <= {2026, 2027}
    # with money carried over, each phase spends no more than the phases so far hold
    spent = budget.groupby("phase")["cost"].sum().reindex([1, 2], fill_value=0.0).cumsum()
    assert (spent.to_numpy() <= np.array([7e9, 14e9]) * (1 + 1e-9)).all()
    curve = pd.read_csv(province["folder"] / "plan_budget_curve.csv")
    assert (curve["cost"] <= curve["budget"] * (1 + 1e-9)).all()
    assert (curve["people"] <= curve["upper_bound"] + 0.5).all()


def test_new_sites_inside_the_analysis_area(province):
    from coverage import io
    from coverage.params import ModelParams
    from coverage.pipeline import analysis_grid

    villages = io.read_villages(province["folder"] / "classified.gpkg")
    grid = analysis_grid(villages, ModelParams())
    left, bottom, right, top = grid.bounds
    for which in ("budget", "sites"):
        plan = _plan(province, which)
        pts = gpd.GeoSeries(gpd.points_from_xy(plan["lon"], plan["lat"]), crs=4326
                            ).to_crs(grid.crs)
        inside = (pts.x.between(left, right) & pts.y.between(bottom, top)).to_numpy()
        # the tool's own sites stand in the area; the input tables' may stand beyond it
        placed = plan["source"].isin(["village_centre", "high_point", "satellite_terminals"])
        assert inside[placed.to_numpy()].all(), plan.loc[placed & ~inside, "site_id"].tolist()
        given = ~placed.to_numpy()
        gap = np.hypot(np.maximum(np.maximum(left - pts.x, pts.x - right), 0),
                       np.maximum(np.maximum(bottom - pts.y, pts.y - top), 0)).to_numpy()
        assert (gap[given] <= ModelParams().max_range_km * 1000).all()


PLAN_LINE = re.compile(r"Plan: (\d+) site\(s\), ([\d,]+) people connected")
BOUND_LINE = re.compile(r"connects more than ([\d,]+) people, by the (\w+) bound")


def test_people_connected_within_the_reported_bound(province):
    for which in ("budget", "sites"):
        out = province["runs"][f"plan_{which}"]["out"]
        n_sites, people = PLAN_LINE.search(out).groups()
        bound, method = BOUND_LINE.search(out).groups()
        people, bound = float(people.replace(",", "")), float(bound.replace(",", ""))
        assert people <= bound + 1, (which, people, bound, method)
        plan = _plan(province, which)
        assert int(n_sites) == len(plan)
        assert abs(plan["pop_gain"].sum() - people) <= 1 + 1e-6 * people
        assert people <= province["people_in_need"] + 1


@pytest.mark.browser
def test_map_opens_offline_without_console_errors(province, browser):  # noqa: F811
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
               else r.abort())
    try:
        page.goto((province["folder"] / "maps" / "province.html").as_uri())
        page.wait_for_function("window.covgapVillageLayer !== undefined", timeout=15_000)
        n = page.evaluate("covgapVillageLayer.getLayers().length")
        n_sites = page.locator(".covgap-site").count()
    finally:
        page.close()
    assert errors == []
    assert n == len(province["files"]["ids"])
    assert n_sites == len(_plan(province, "budget"))
