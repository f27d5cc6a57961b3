"""Tests of the embedded demo data set and its generator (coverage.datasets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio

from coverage.datasets import FILES, demo_paths, generate_demo, score_classification
from coverage.datasets.generate import main
from coverage.datasets.observe import quadkey

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
CLASSES = {"unavailable", "available_inaccessible", "served"}
SITE_COLUMNS = ["site_id", "operator", "tech", "lon", "lat", "height_m", "azimuth_deg",
                "beamwidth_deg", "eirp_dbm", "freq_mhz", "status", "backhaul"]
TEST_COLUMNS = ["lon", "lat", "tech", "operator", "rsrp_dbm", "download_mbps", "upload_mbps",
                "latency_ms", "timestamp"]
OCID_COLUMNS = ["radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples",
                "changeable", "created", "updated", "averageSignal"]


# --- generated in code: a small province ------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    return generate_demo(out, seed=7, scale=0.4)


def _content(paths: dict[str, Path]) -> dict[str, object]:
    """Comparable content of every file: arrays, tables and XML text, not container bytes."""
    out: dict[str, object] = {}
    for key, path in paths.items():
        if path.suffix == ".tif":
            with rasterio.open(path) as src:
                out[key] = (src.read(), tuple(src.transform), src.crs.to_epsg())
        elif path.suffix == ".gpkg":
            df = gpd.read_file(path)
            out[key] = (df.drop(columns="geometry"), df.geometry.to_wkb().tolist(),
                        df.crs.to_epsg())
        elif path.suffix == ".parquet":
            out[key] = pd.read_parquet(path)
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    return a == b


@pytest.mark.slow
def test_generation_is_deterministic(small, tmp_path, capsys):
    assert set(small) == set(FILES)
    assert main(["--out", str(tmp_path / "b"), "--seed", "7", "--scale", "0.4"]) == 0
    assert "generated in" in capsys.readouterr().out
    again = {k: tmp_path / "b" / v for k, v in FILES.items()}
    first, second = _content(small), _content(again)
    different = [k for k in FILES if not _same(first[k], second[k])]
    assert different == []
    other = _content(generate_demo(tmp_path / "c", seed=8, scale=0.4))
    assert not _same(first["dem"], other["dem"])
    assert not _same(first["villages"], other["villages"])
    assert first["tests"] != other["tests"]


def test_small_variant_has_everything(small):
    v = gpd.read_file(small["villages"])
    assert 40 <= len(v) <= 80
    truth = pd.read_csv(small["truth_villages"], dtype={"village_id": str})
    assert set(truth["village_id"]) == set(v["village_id"])
    assert set(truth["class"]) <= CLASSES
    for key, path in small.items():
        assert path.stat().st_size > 0, key


def test_scale_is_checked(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate_demo(tmp_path, scale=2.0)


# --- the committed files ----------------------------------------------------------------------

needs_data = pytest.mark.skipif(not (REPO_DATA / FILES["villages"]).exists(),
                                reason="the committed data/ folder is absent")


@needs_data
def test_demo_paths_points_at_committed_data():
    paths = demo_paths()
    assert set(paths) == {"villages", "communes", "districts", "sites", "opencellid", "tests",
                          "ookla", "dem", "population", "landcover", "access", "fibre", "roads",
                          "truth_signal", "truth_villages"}
    for key, path in paths.items():
        assert path.is_file(), key
        assert path.parent.parent == REPO_DATA
    for folder in {p.parent for p in paths.values()} | {REPO_DATA}:
        text = (folder / "README.md").read_text(encoding="utf-8")
        assert "Synthetic" in text or "synthetic" in text
    total = sum(p.stat().st_size for p in REPO_DATA.rglob("*") if p.is_file())
    assert total < 4.5 * 1024 * 1024


@needs_data
def test_villages_follow_the_contract():
    info = pyogrio.read_info(REPO_DATA / FILES["villages"])
    assert info["crs"] == "EPSG:3405"
    v = gpd.read_file(REPO_DATA / FILES["villages"])
    assert list(v.columns) == ["village_id", "name", "commune", "district", "province",
                               "population", "households", "geometry"]
    ids = v["village_id"]
    assert ids.map(type).eq(str).all()
    assert ids.str.fullmatch(r"\d{7}").all() and ids.str.startswith("0").all()
    assert ids.is_unique
    assert 250 <= len(v) <= 350
    assert v["population"].between(100, 2000).all()
    assert 120_000 <= v["population"].sum() <= 180_000
    ratio = v["population"] / v["households"]
    assert ratio.between(3.0, 7.0).all()
    assert v["commune"].nunique() >= 20 and v["district"].nunique() == 3
    assert v["name"].str.contains("[ạảấầẩậắằẳặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỷỹđ]").any()
    dup = v[v.duplicated("name", keep=False)]
    assert dup.groupby("name")["commune"].nunique().max() >= 2
    # a coverage: no overlaps, no gaps
    utm = v.to_crs(32648)
    union = utm.union_all()
    assert abs(utm.area.sum() - union.area) < 1e-6 * union.area
    assert union.geom_type == "Polygon" and len(union.interiors) == 0
    for key, col in (("communes", "commune_id"), ("districts", "district_id")):
        g = gpd.read_file(REPO_DATA / FILES[key])
        assert g.crs.to_epsg() == 4326
        assert g[col].str.startswith("0").all() and g[col].is_unique
    communes = gpd.read_file(REPO_DATA / FILES["communes"])
    assert communes["population"].sum() == v["population"].sum()


@needs_data
def test_rasters_follow_the_brief():
    with rasterio.open(REPO_DATA / FILES["dem"]) as src:
        assert src.crs.to_epsg() == 32648 and src.res == (100.0, 100.0)
        assert src.compression is not None and src.compression.value == "DEFLATE"
        dem = src.read(1)
        assert dem.shape == (350, 450)
        assert 50 <= dem.min() < 300 and 1800 <= dem.max() <= 2600
    with rasterio.open(REPO_DATA / FILES["population"]) as src:
        assert src.crs.to_epsg() == 4326 and src.nodata == -99999
        assert src.dtypes[0] == "float32"
        assert np.allclose(src.res, (1 / 1200, 1 / 1200))
        pop = src.read(1, masked=True)
    v = gpd.read_file(REPO_DATA / FILES["villages"])
    assert float(pop.sum()) == pytest.approx(v["population"].sum(), rel=1e-3)
    with rasterio.open(REPO_DATA / FILES["truth_signal"]) as src:
        assert src.count == 4 and src.crs.to_epsg() == 32648
        assert src.descriptions == ("best_2g_dbm", "best_3g_rscp_dbm", "best_4g_rsrp_dbm",
                                    "best_broadband_rsrp_equivalent_dbm")
        bands = src.read()
    assert bands.min() >= -150 and bands.max() <= -40


@needs_data
def test_towers_follow_the_contract():
    sites = pd.read_csv(REPO_DATA / FILES["sites"])
    assert list(sites.columns) == SITE_COLUMNS
    assert sites["site_id"].is_unique
    assert set(sites["operator"]) == {"Viettel", "VinaPhone"}
    assert set(sites["tech"]) == {"2G", "3G", "4G"}
    assert set(sites["status"]) == {"active", "planned"}
    planned_masts = sites.loc[sites["status"] == "planned", "site_id"].str.split("-").str[0]
    assert 8 <= planned_masts.nunique() <= 15
    assert sites["azimuth_deg"].isna().any() and sites["azimuth_deg"].notna().any()
    assert sites["height_m"].dropna().between(20, 50).all()
    assert sites[["height_m", "eirp_dbm", "freq_mhz"]].isna().any().all()
    assert sites["lon"].between(104.3, 104.9).all() and sites["lat"].between(22.4, 22.8).all()

    first = (REPO_DATA / FILES["opencellid"]).read_text().splitlines()[0]
    assert not first.startswith("radio")
    cells = pd.read_csv(REPO_DATA / FILES["opencellid"], header=None, names=OCID_COLUMNS)
    assert cells.shape[1] == 14
    assert set(cells["radio"]) <= {"GSM", "UMTS", "LTE"} and (cells["radio"] == "LTE").any()
    assert (cells["mcc"] == 452).all() and (cells["net"] == 1).all()
    lte = cells[cells["radio"] == "LTE"]
    assert (lte.groupby(lte["cell"] // 256).size() > 1).any()
    outside = ~(cells["lon"].between(104.3, 104.9) & cells["lat"].between(22.4, 22.8))
    assert 1 <= outside.sum() <= 3
    assert (cells["updated"] >= cells["created"]).all()


@needs_data
def test_measurements_follow_the_contract():
    tests = pd.read_csv(REPO_DATA / FILES["tests"])
    assert list(tests.columns) == TEST_COLUMNS
    assert 2000 <= len(tests) <= 4000
    assert set(tests["tech"]) <= {"2G", "3G", "4G", "5G", "none"}
    assert (tests["tech"] == "none").sum() > 50
    assert tests["download_mbps"].isna().any()
    ts = pd.to_datetime(tests["timestamp"], format="ISO8601")
    assert (ts.max() - ts.min()).days > 300
    by = tests.groupby("tech")["download_mbps"].median()
    assert by["4G"] > 2 * by["3G"] > by["2G"]
    ookla = pd.read_parquet(REPO_DATA / FILES["ookla"])
    assert list(ookla.columns) == ["quadkey", "tile", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms",
                                   "tests", "devices"]
    assert ookla["quadkey"].str.len().eq(16).all()
    assert ookla["tile"].str.startswith("POLYGON").all()
    assert (ookla["devices"] <= ookla["tests"]).all()
    assert ookla["tests"].sum() == tests["download_mbps"].notna().sum()


def test_quadkey_matches_the_bing_scheme():
    keys, _, _ = quadkey(np.array([-122.1]), np.array([47.6]), zoom=3)
    assert keys == ["021"]


@needs_data
def test_access_and_fibre():
    access = pd.read_csv(REPO_DATA / FILES["access"], dtype={"village_id": str})
    assert list(access.columns) == ["village_id", "electricity_share", "smartphone_share",
                                    "monthly_income", "data_price_1gb"]
    v = gpd.read_file(REPO_DATA / FILES["villages"])
    assert set(access["village_id"]) < set(v["village_id"])
    assert access.isna().any().any()
    assert (access["electricity_share"] < 0.5).sum() >= 2
    assert (access["smartphone_share"] < 0.3).sum() >= 2
    assert (access["data_price_1gb"] > 0.02 * access["monthly_income"]).sum() >= 2
    fibre = gpd.read_file(REPO_DATA / FILES["fibre"])
    assert fibre.crs.to_epsg() == 4326
    assert set(fibre.geom_type) == {"LineString"}


@needs_data
def test_osmnx_reads_the_roads_offline():
    ox = pytest.importorskip("osmnx")
    import networkx as nx

    G = ox.graph_from_xml(REPO_DATA / FILES["roads"], simplify=True, retain_all=True)
    assert G.number_of_nodes() > 200
    largest = max(nx.weakly_connected_components(G), key=len)
    assert len(largest) >= 0.95 * G.number_of_nodes()
    kinds = set()
    for _, _, h in G.edges(data="highway"):
        kinds |= set(h) if isinstance(h, list) else {h}
    assert {"primary", "secondary", "tertiary", "unclassified", "track"} <= kinds


@needs_data
def test_truth_has_three_plausible_classes():
    truth = pd.read_csv(REPO_DATA / FILES["truth_villages"], dtype={"village_id": str})
    shares = truth["class"].value_counts(normalize=True)
    assert set(shares.index) == CLASSES
    assert 0.25 <= shares["unavailable"] <= 0.40
    # the residents' median (2G and no service counted) makes slow_speed common where an
    # operator's subscribers only get 2G or weak 3G
    assert 0.15 <= shares["available_inaccessible"] <= 0.55
    assert shares["served"] >= 0.18
    reasons = set(truth["reasons"].dropna().str.split(";").explode())
    assert {"2g_only", "partial_coverage", "weak_signal", "slow_speed", "no_power",
            "no_devices", "unaffordable", "measured_no_service"} <= reasons
    # the true no-service share decides measured_no_service among covered villages, and the
    # residents' median slow_speed
    covered = truth[truth["class"] != "unavailable"]
    slow = covered["reasons"].fillna("").str.contains("slow_speed")
    assert (covered.loc[slow, "median_download_mbps"] < 5.0).all()
    assert (covered.loc[~slow, "median_download_mbps"] >= 5.0).all()
    flagged = covered["reasons"].fillna("").str.contains("measured_no_service")
    assert (covered.loc[flagged, "no_service_share"] >= 0.3).all()
    assert (covered.loc[~flagged, "no_service_share"] < 0.3).all()
    served = truth[truth["class"] == "served"]
    assert served["reasons"].isna().all()
    assert (served["pop_covered_share"] >= 0.5).all()
    assert (truth.loc[truth["class"] == "unavailable", "pop_covered_share"] < 0.5).all()


# --- scoring ----------------------------------------------------------------------------------

def _truth_frame():
    rng = np.random.default_rng(0)
    ids = [f"{i:07d}" for i in range(1, 301)]
    cls = rng.choice(sorted(CLASSES), 300, p=[0.25, 0.4, 0.35])
    return pd.DataFrame({"village_id": ids, "class": cls})


def test_score_perfect_and_shuffled():
    truth = _truth_frame()
    perfect = score_classification(truth.sample(frac=1, random_state=1), truth)
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0
    assert perfect["confusion"].to_numpy().trace() == 300
    shuffled = truth.assign(cls=np.random.default_rng(3).permutation(truth["class"]))
    shuffled = shuffled.drop(columns="class").rename(columns={"cls": "class"})
    low = score_classification(shuffled, truth)
    assert low["accuracy"] < 0.5 and low["macro_f1"] < 0.5
    assert set(low["recall"]) == CLASSES


def test_score_joins_ids_as_text(tmp_path):
    truth = _truth_frame()
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    pred = truth.copy()
    pred["village_id"] = pred["village_id"].astype(int)   # leading zeros lost
    assert score_classification(pred, path)["n_missing"] == 300
    half = truth.iloc[:150]
    res = score_classification(half, path)
    assert res["n_missing"] == 150 and res["accuracy"] == pytest.approx(0.5)


@needs_data
def test_score_on_the_committed_truth():
    truth = pd.read_csv(REPO_DATA / FILES["truth_villages"], dtype={"village_id": str})
    assert score_classification(truth, REPO_DATA / FILES["truth_villages"])["accuracy"] == 1.0


def test_demo_paths_generates_into_the_cache_once(tmp_path, monkeypatch):
    import coverage.datasets as ds

    calls = []

    def small_generate(out, *, seed):
        calls.append(out)
        generate_demo(out, seed=seed, scale=0.3)

    monkeypatch.setattr(ds, "_repo_data", lambda: tmp_path / "no-repo" / "data")
    monkeypatch.setattr(ds, "_generate", small_generate)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    paths = ds.demo_paths()
    assert all(p.is_file() for p in paths.values())
    assert paths["villages"].is_relative_to(tmp_path / "cache" / "coverage-gap")
    assert paths["villages"].parent.parent.name.startswith("demo-")
    assert ds.demo_paths() == paths
    assert len(calls) == 1


@needs_data
def test_demo_land_cover_is_worldcover_on_the_dem_grid():
    with rasterio.open(REPO_DATA / FILES["landcover"]) as src, \
            rasterio.open(REPO_DATA / FILES["dem"]) as dem:
        cover = src.read(1)
        assert src.crs == dem.crs and src.transform == dem.transform
        assert src.shape == dem.shape and src.nodata == 0
    assert set(np.unique(cover)) <= {10, 30, 40, 50}
    assert (cover == 10).mean() > 0.2 and (cover == 50).sum() > 100  # forest, towns


@needs_data
def test_hidden_terrain_is_what_the_published_dem_averages():
    from coverage.datasets.generate import hidden_terrain

    fine, transform, crs = hidden_terrain()
    with rasterio.open(REPO_DATA / FILES["dem"]) as src:
        dem = src.read(1).astype(float)
        assert (transform.c, transform.f) == (src.transform.c, src.transform.f)
    assert transform.a == 50.0 and fine.shape == (2 * dem.shape[0], 2 * dem.shape[1])
    block = fine.reshape(dem.shape[0], 2, dem.shape[1], 2).mean(axis=(1, 3))
    assert np.abs(block - dem).max() <= 1.0  # the published DEM: whole metres
    assert crs.to_epsg() == 32648
    # the hidden terrain has the summits the average flattens
    assert fine.max() > dem.max()


# --- the worlds' physics, written apart from the product ----------------------------------------

DATASETS_DIR = Path(__file__).resolve().parents[1] / "src" / "coverage" / "datasets"
FORBIDDEN = ("coverage.radio", "coverage.model", "coverage.params", "coverage.classify")
#: national.py builds the product's CoverageSurfaces directly to time the classification; it
#: draws no world and no truth, and no world module imports it (checked below).
NOT_A_WORLD = {"coverage.datasets.national"}


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            stem = (f"{base}.{node.module}" if node.module else base) if node.level \
                else node.module
            found.add(stem)
            found |= {f"{stem}.{a.name}" for a in node.names}   # `from . import x` modules
    return found


def _module_path(name: str) -> Path | None:
    src = DATASETS_DIR.parents[1]
    for candidate in (src / (name.replace(".", "/") + ".py"),
                      src / name.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_world_generator_imports_nothing_of_the_product_model():
    modules = {f"coverage.datasets.{p.stem}" if p.stem != "__init__" else "coverage.datasets"
               for p in DATASETS_DIR.glob("*.py")} - NOT_A_WORLD
    assert "coverage.datasets.physics" in modules and "coverage.datasets.field" in modules
    seen, todo, offenders = set(), sorted(modules), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_path(name)
        if path is None:
            continue
        for imported in _imports(path, name):
            if not imported.startswith("coverage"):
                continue
            if imported in NOT_A_WORLD:
                offenders.append(f"{name} -> {imported}")
            if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{name} -> {imported}")
            elif _module_path(imported) is not None:
                todo.append(imported)   # follow coverage.errors and the like
    assert offenders == []
    assert "coverage.errors" in seen   # the walk does follow imports out of the package


def test_the_walk_would_catch_an_import_of_the_model(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..radio import hata_loss_db\nfrom . import field\n")
    assert {"coverage.radio", "coverage.radio.hata_loss_db", "coverage.datasets.field"} <= \
        _imports(bad, "coverage.datasets.bad")


def test_truth_rules_are_the_contracts_default_profile():
    from dataclasses import fields

    from coverage.datasets.rules import VN_2025
    from coverage.params import PROFILES

    product = PROFILES["vn-2025"]
    for f in fields(VN_2025):
        assert getattr(VN_2025, f.name) == getattr(product, f.name), f.name


def test_median_losses_follow_the_textbooks():
    from coverage.datasets.physics import median_loss_db
    from coverage.radio import hata_loss_db

    d_km = np.array([0.5, 2.0, 5.0, 12.0])
    # two implementations of Hata written apart agree
    for f, env in ((900.0, "rural"), (1800.0, "rural"), (2100.0, "suburban")):
        mine = median_loss_db("hata", d_km, f, 30.0, 1.5, suburban=env == "suburban")
        theirs = hata_loss_db(d_km * 1000, f, 30.0, environment=env)
        np.testing.assert_allclose(mine, theirs, atol=0.01)
    # Ericsson 9999 default: 30.2 + 0.1 log(hb) dB per decade
    e = median_loss_db("ericsson", np.array([1.0, 10.0]), 1800.0, 30.0, 1.5)
    assert e[1] - e[0] == pytest.approx(30.2 + 0.1 * np.log10(30.0))
    # two-ray: free space to the breakpoint (4 hb hm / lambda = 1,081 m at 1800 MHz), 40 dB/dec
    near = median_loss_db("two_ray", np.array([0.1, 1.0]), 1800.0, 30.0, 1.5)
    assert near[1] - near[0] == pytest.approx(20.0)
    far = median_loss_db("two_ray", np.array([2.0, 20.0]), 1800.0, 30.0, 1.5)
    assert far[1] - far[0] == pytest.approx(40.0)
    # the three families agree within 10 dB at 5 km, so no world is all dark or all lit
    at5 = [float(median_loss_db(fam, 5.0, 1800.0, 30.0, 1.5)) for fam in
           ("hata", "ericsson", "two_ray")]
    assert max(at5) - min(at5) < 10.0
    with pytest.raises(ValueError, match="hata, ericsson, two_ray"):
        median_loss_db("okumura", 5.0, 900.0, 30.0, 1.5)


def test_knife_edge_formulas():
    from coverage.datasets.physics import knife_edge_db

    nu = np.linspace(-0.7, 5.0, 60)
    p526, lee = knife_edge_db(nu, "p526"), knife_edge_db(nu, "lee")
    assert knife_edge_db(0.0, "p526") == pytest.approx(6.03, abs=0.01)
    assert knife_edge_db(0.0, "lee") == pytest.approx(6.02, abs=0.01)
    assert np.abs(p526 - lee).max() < 1.5
    assert (np.diff(p526) > 0).all()
    assert (np.diff(lee) > -0.5).all()   # Lee's pieces meet with a 0.3 dB step at nu = 1
    assert knife_edge_db(-2.0, "p526") == 0.0 and knife_edge_db(-2.0, "lee") == 0.0


def test_diffraction_methods_over_one_and_two_edges():
    from coverage.datasets.physics import diffraction_loss_db

    d = np.array([10_000.0])
    k = 99                                  # samples every 100 m
    flat = np.zeros((1, k))
    one = flat.copy()
    one[0, 49] = 80.0                       # a ridge at mid-path, 50 m above the ray
    two = flat.copy()
    two[0, 29] = two[0, 69] = 70.0
    loss = {m: [float(diffraction_loss_db(d, p, 30.0, np.array([31.5]), 900.0, method=m,
                                          earth_k=1e9)[0]) for p in (flat, one, two)]
            for m in ("single", "deygout", "epstein_peterson")}
    for m in loss:
        assert loss[m][0] == 0.0            # nothing near the ray
        assert loss[m][1] > 10.0            # a real obstacle
    assert loss["deygout"][1] == pytest.approx(loss["single"][1])
    assert loss["epstein_peterson"][1] == pytest.approx(loss["single"][1])
    # two edges cost more than the highest alone; the two constructions differ
    assert loss["deygout"][2] > loss["single"][2] + 3.0
    assert loss["epstein_peterson"][2] > loss["single"][2] + 3.0
    assert loss["deygout"][2] != pytest.approx(loss["epstein_peterson"][2], abs=0.1)
    # the earth's bulge (k = 1: 71 m at mid-path over 60 km) obstructs a path between
    # 60 m masts that flat ground leaves clear
    long_d = np.array([60_000.0])
    bare = diffraction_loss_db(long_d, flat, 60.0, np.array([60.0]), 900.0, earth_k=1e9)
    curved = diffraction_loss_db(long_d, flat, 60.0, np.array([60.0]), 900.0, earth_k=1.0)
    assert bare[0] == 0.0 and curved[0] > 6.0


def test_antenna_pattern_3gpp():
    from coverage.datasets.physics import antenna_gain_db

    main = antenna_gain_db(90.0, 4.0, azimuth_deg=90.0, tilt_deg=4.0)
    assert main == pytest.approx(0.0)
    assert antenna_gain_db(90.0 + 65.0 / 2, 4.0, azimuth_deg=90.0) == pytest.approx(-3.0)
    assert antenna_gain_db(270.0, 4.0, azimuth_deg=90.0) == pytest.approx(-25.0)
    assert antenna_gain_db(0.0, 4.0 + 5.0, azimuth_deg=None, tilt_deg=4.0) == \
        pytest.approx(-3.0)
    assert antenna_gain_db(0.0, 60.0, azimuth_deg=None) == pytest.approx(-20.0)


def test_world_registry_tunes_on_three_and_scores_three():
    from coverage.datasets.worlds import (
        DEMO_WORLD,
        SCORED_WORLDS,
        TUNING_WORLDS,
        WORLDS,
        WorldPhysics,
    )

    assert len(TUNING_WORLDS) == 3 and len(SCORED_WORLDS) == 3
    assert not set(TUNING_WORLDS) & set(SCORED_WORLDS)
    assert DEMO_WORLD in WORLDS and DEMO_WORLD not in TUNING_WORLDS + SCORED_WORLDS
    seeds = [WORLDS[n].seed for n in (*TUNING_WORLDS, *SCORED_WORLDS, DEMO_WORLD)]
    assert len(set(seeds)) == len(seeds)
    for group in (TUNING_WORLDS, SCORED_WORLDS):
        ph = [WORLDS[n].physics for n in group]
        # each group spans the three propagation families and height conventions
        assert {p.propagation for p in ph} == {"hata", "ericsson", "two_ray"}
        assert {p.height_convention for p in ph} == {"mast", "effective", "above_receiver"}
        assert all(5.0 <= p.shadow_sigma_db <= 9.0 for p in ph)
        assert all(200.0 <= p.shadow_corr_m <= 1000.0 for p in ph)
    assert len({WORLDS[n].physics for n in WORLDS}) == len(WORLDS)
    assert isinstance(WORLDS[DEMO_WORLD].physics, WorldPhysics)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shadow_sigma_db": 20.0}, r"shadow_sigma_db=20.0 is outside 0..12 \(measured"),
    ({"shadow_corr_m": 10.0}, r"shadow_corr_m=10.0 is outside .*100 m cells"),
    ({"propagation": "okumura"}, r"propagation='okumura' is unknown \(choose from hata, "),
    ({"diffraction": "bullington"}, r"choose from single, deygout, epstein_peterson"),
    ({"height_convention": "tip"}, r"choose from mast, effective, above_receiver"),
    ({"earth_k": 0.1}, r"earth_k=0.1 .*bulge"),
    ({"test_signal_bias": 1.0}, r"test_signal_bias=1.0 .*no-service test"),
    ({"foliage_db": -3.0}, r"foliage_db=-3.0 is outside 0..30"),
    ({"downtilt_deg": float("nan")}, r"downtilt_deg=nan"),
])
def test_impossible_world_settings_say_which_and_why(kwargs, match):
    from coverage.datasets.worlds import WorldPhysics
    from coverage.errors import ParameterError

    with pytest.raises(ParameterError, match=match):
        WorldPhysics(**kwargs)


def test_unknown_world_and_scale_are_refused(tmp_path):
    from coverage.datasets.worlds import World, WorldPhysics, generate_world, world
    from coverage.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown world 'nope'; choose from tune-hata"):
        world("nope")
    with pytest.raises(ParameterError, match=r"scale=0.1 is outside 0.3..1"):
        World("tiny", 1, 0.1, WorldPhysics(), "tuning")
    with pytest.raises(ParameterError, match="role='held-out' is unknown"):
        World("x", 1, 0.5, WorldPhysics(), "held-out")
    with pytest.raises(ParameterError, match="unknown world"):
        generate_world("nope", tmp_path)


def test_truth_measures_residents(small):
    truth = pd.read_csv(small["truth_villages"], dtype={"village_id": str})
    covered = truth[truth["class"] != "unavailable"]
    slow = covered["reasons"].fillna("").str.contains("slow_speed")
    assert (covered.loc[slow, "median_download_mbps"] < 5.0).all()
    assert (covered.loc[~slow, "median_download_mbps"] >= 5.0).all()
    # residents without service count at 0 Mbps: where half have none, the median is 0
    dark = truth["no_service_share"] > 0.5
    assert dark.any()
    assert (truth.loc[dark, "median_download_mbps"] == 0.0).all()
    # residents on 2G count at a 2G speed, under any broadband threshold
    assert ((truth["median_download_mbps"] > 0) & (truth["median_download_mbps"] < 0.5)).any()


@pytest.mark.slow
def test_testers_favour_places_with_signal(small, tmp_path):
    from dataclasses import replace

    from coverage.datasets.generate import DEMO_PHYSICS

    keen = generate_demo(tmp_path / "keen", seed=7, scale=0.4,
                         physics=replace(DEMO_PHYSICS, test_signal_bias=0.9))
    for key in ("truth_villages", "truth_signal", "villages"):   # the same world
        assert _same(_content({key: small[key]})[key], _content({key: keen[key]})[key])
    base = pd.read_csv(small["tests"])
    biased = pd.read_csv(keen["tests"])
    assert len(biased) == len(base)
    assert (biased["tech"] == "none").mean() < 0.6 * (base["tech"] == "none").mean()
    assert (biased["tech"] == "4G").mean() > (base["tech"] == "4G").mean()


def test_effective_height_is_over_the_mean_terrain_3_to_15_km_out():
    from coverage.datasets._grid import Grid
    from coverage.datasets.field import EFFECTIVE_SECTORS, effective_heights_m

    grid = Grid(0.0, 40_000.0, 100.0, 400, 400)
    x, y = grid.centres()
    dem = np.full(grid.shape, 100.0)
    dem[x > 20_000.0] = 500.0               # a plateau east of the mast
    dem[np.hypot(x - 20_000.0, y - 20_000.0) < 2_000.0] = 400.0   # the mast's knoll
    eff = effective_heights_m(dem, grid, 20_000.0, 20_000.0, 430.0)
    assert eff.shape == (EFFECTIVE_SECTORS,)
    east = EFFECTIVE_SECTORS // 4            # bearing 90°: the plateau
    west = 3 * EFFECTIVE_SECTORS // 4        # bearing 270°: the plain
    assert eff[east] == pytest.approx(430.0 - 500.0)
    assert eff[west] == pytest.approx(430.0 - 100.0)   # the knoll (< 3 km) does not count
