"""Ookla tiles counted by their independent testers (``devices``), not by their repeated tests.

A tile's ``tests`` are its ``devices``' runs: 40 tests from 2 handsets are two people's
experience. The reader keeps both (``weight`` the tests, ``testers`` the devices); the
village's ``n_tests`` counts the tests, and every estimate and rule weighs the testers.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from conftest import covered_village
from coverage import io
from coverage.classify import classify_villages, village_metrics
from coverage.engine import compact_measurements
from coverage.errors import RepairWarning
from coverage.model import Grid

CRS_UTM = CRS.from_epsg(32648)


def tiles(tests, devices=None) -> pd.DataFrame:
    """Zoom-16-sized tiles in Hà Nội, one per entry of ``tests`` (WKT ``tile`` column)."""
    n = len(tests)
    x0 = 105.80 + 0.01 * np.arange(n)
    wkt = [f"POLYGON (({x} 21.02, {x + 0.005} 21.02, {x + 0.005} 21.025, {x} 21.025, "
           f"{x} 21.02))" for x in x0]
    df = pd.DataFrame({"quadkey": [f"13223{i}" for i in range(n)], "tile": wkt,
                       "avg_d_kbps": 8000 + 1000 * np.arange(n), "avg_u_kbps": 2000,
                       "avg_lat_ms": 40, "tests": tests})
    if devices is not None:
        df["devices"] = devices
    return df


def read(path):
    """The observations, the file's report and the RepairWarnings' messages."""
    reports = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        got = io.read_measurements(path, on_report=reports.append)
    return got, reports[0], [str(w.message) for w in caught if w.category is RepairWarning]


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_a_tile_stands_for_its_devices_as_testers_and_its_tests_as_tests(tmp_path, ext):
    path = tmp_path / f"ookla.{ext}"
    df = tiles([40, 12, 5, 3, 6], devices=[2, 0, np.nan, 7, 6])
    df.to_parquet(path) if ext == "parquet" else df.to_csv(path, index=False)
    got, report, warned = read(path)
    np.testing.assert_array_equal(got["weight"], [40, 12, 5, 3, 6])
    # 0 and empty devices: as many testers as tests; never more testers than tests
    np.testing.assert_array_equal(got["testers"], [2, 12, 5, 3, 6])
    assert report.tiles_without_devices == 2
    assert len(warned) == 1 and "2 tile(s) whose devices is empty" in warned[0]


def test_devices_that_are_not_a_number_count_the_tests(tmp_path):
    path = tmp_path / "ookla.csv"
    tiles([10, 8, 6], devices=["3", "many", ""]).to_csv(path, index=False)
    got, report, warned = read(path)
    np.testing.assert_array_equal(got["testers"], [3, 8, 6])
    assert report.tiles_without_devices == 2 and len(warned) == 1


def test_a_tile_file_without_devices_reads_as_before_and_says_so_once(tmp_path):
    with_devices, without = tmp_path / "with.parquet", tmp_path / "without.parquet"
    tiles([40, 12, 3], devices=[40, 12, 3]).to_parquet(with_devices)
    tiles([40, 12, 3]).to_parquet(without)
    full, report_full, warned_full = read(with_devices)
    got, report, warned = read(without)
    assert warned_full == [] and report_full.tiles_without_devices == 0
    pd.testing.assert_frame_equal(got, full)  # every tile as many testers as tests
    np.testing.assert_array_equal(got["testers"], got["weight"])
    assert report.tiles_without_devices == 3
    assert len(warned) == 1 and "has no devices column" in warned[0]


def test_point_tests_carry_no_testers(tmp_path):
    path = tmp_path / "tests.csv"
    pd.DataFrame({"lon": [105.8, 105.81], "lat": [21.0, 21.01], "tech": ["4G", "4G"],
                  "download_mbps": [10.0, 20.0]}).to_csv(path, index=False)
    got, _, warned = read(path)
    assert "testers" not in got.columns and warned == []
    assert list(got["weight"]) == [1.0, 1.0]


def test_compaction_sums_the_testers_beside_the_tests(tmp_path):
    path = tmp_path / "ookla.parquet"
    tiles([40, 12, 3], devices=[2, 4, 3]).to_parquet(path)
    centres = io.read_measurements(path)
    x, y = gpd.GeoSeries(centres.geometry, crs=4326).to_crs(32648).total_bounds.reshape(2, 2)
    # one cell holding every tile
    grid = Grid(from_origin(x[0] - 5000, y[1] + 5000, 20_000, 20_000), (1, 1), CRS_UTM)
    got = compact_measurements(io.iter_measurements(path, chunk_rows=2), grid)
    assert len(got) == 1
    assert got["weight"].iloc[0] == 55 and got["testers"].iloc[0] == 9


def tile_and_tests(points: int, tile_tests: int, tile_testers: float) -> gpd.GeoDataFrame:
    """``points`` fast 4G tests of operator A and one slow Ookla tile, in the village."""
    xy = [(150 + 700 * (i % 2), 150 + 700 * (i // 2) / 2) for i in range(points)]
    xy.append((500, 500))
    pts = gpd.GeoSeries([Point(x, y) for x, y in xy], crs=CRS_UTM).to_crs(4326)
    t0 = pd.Timestamp("2025-03-01T08:00:00Z")
    return gpd.GeoDataFrame({
        "tech": ["4G"] * points + [None], "operator": ["A"] * points + [None],
        "rsrp_dbm": [-85.0] * points + [np.nan],
        "download_mbps": [20.0] * points + [1.0], "upload_mbps": [5.0] * points + [0.5],
        "timestamp": [t0 + pd.Timedelta(hours=2 * i) for i in range(points)] + [pd.NaT],
        "weight": [1.0] * points + [float(tile_tests)],
        "source": ["tests"] * points + ["ookla"],
        "testers": [np.nan] * points + [tile_testers]}, geometry=pts.to_numpy(), crs=4326)


@pytest.mark.parametrize(("testers", "slow"), [(1.0, False), (40.0, True)])
def test_a_tile_of_many_tests_from_one_device_weighs_as_one_person(testers, slow):
    """Four residents' fast tests and one slow tile of 40 tests: from one handset, the
    tile is a fifth of the village's testers (median fast, not slow); from 40, it outweighs
    the four (median slow, the speed rule fires)."""
    villages, surfaces = covered_village()
    meas = tile_and_tests(4, 40, testers)
    metrics = village_metrics(villages, surfaces, measurements=meas)
    out = classify_villages(villages, surfaces, measurements=meas)
    assert out["n_tests"].iloc[0] == 44  # n_tests counts the tests
    assert metrics["n_speed_tests"].iloc[0] == 4 + testers
    assert bool(out["median_download_mbps"].iloc[0] < 5) == slow
    assert ("slow_speed" in out["reasons"].iloc[0]) == slow


def test_a_tiles_repeated_tests_add_no_evidence():
    """A slow tile of 40 tests from 2 handsets is 2 of the speed rule's 5 tests, as a tile
    of 2 tests from 2 handsets: the model's estimate updated by them decides the rule, and
    the village is classed alike, with the same confidence; only ``n_tests`` differs.
    Counted as 40 tests, the tile decided the rule alone."""
    villages, surfaces = covered_village()
    got = {}
    for tests in (40, 2):
        meas = tile_and_tests(0, tests, 2.0)
        metrics = village_metrics(villages, surfaces, measurements=meas)
        out = classify_villages(villages, surfaces, measurements=meas)
        assert metrics["n_tests"].iloc[0] == out["n_tests"].iloc[0] == tests
        assert metrics["n_speed_tests"].iloc[0] == 2
        got[tests] = (metrics[["n_speed_tests", "slow_probability", "median_download_mbps"]],
                      out[["class", "reasons", "confidence", "evidence", "explanation"]])
    for a, b in zip(got[40], got[2], strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert got[40][1]["evidence"].iloc[0] == "model+sparse_tests"
