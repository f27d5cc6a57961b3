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
    assert 0.15 <= shares["available_inaccessible"] <= 0.45
    assert shares["served"] >= 0.25
    reasons = set(truth["reasons"].dropna().str.split(";").explode())
    assert {"2g_only", "partial_coverage", "weak_signal", "slow_speed", "no_power",
            "no_devices", "unaffordable", "measured_no_service"} <= reasons
    # the true no-service share decides measured_no_service among covered villages
    covered = truth[truth["class"] != "unavailable"]
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
