"""Measurements read as plain columns and compacted with integer keys.

The columns reader (:func:`coverage.io.iter_measurement_columns`) must keep the rows,
values and warnings of the point reader (:func:`coverage.io.iter_measurements`), and the
integer-key compaction must give what a pandas group-by of the points gives (the path
it replaced, written out here as the oracle), rows in the same order.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import X0, Y0
from coverage import io
from coverage.engine import aggregate_measurement_chunks, compact_measurements
from coverage.errors import InputError, RepairWarning, SchemaError
from coverage.model import Grid, points_xy

GRID = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 500.0, "EPSG:32648")
VALUES = ("rsrp_dbm", "download_mbps", "upload_mbps", "latency_ms")


def messy_tests(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Point tests over the tiny province with the junk real files hold."""
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(-2000, 14_000, n)  # some outside the grid
    y = Y0 + rng.uniform(-1000, 11_000, n)
    lon, lat = points_xy(gpd.GeoSeries(gpd.points_from_xy(x, y), crs=32648), "EPSG:4326")
    df = pd.DataFrame({
        "lon": lon, "lat": lat,
        "tech": rng.choice(np.array(["LTE", "4g", "umts", "5G NR", "no service", "NONE", "6G",
                                     None], dtype=object), n),
        "operator": rng.choice(np.array(["Viettel", "VNPT", "", None], dtype=object), n),
        "rsrp_dbm": rng.uniform(-170, -10, n),
        "download_mbps": rng.choice([np.nan, 12.5, -3.0, 50.0, 20_000.0], n),
        "upload_mbps": rng.uniform(0, 20, n),
        "latency_ms": rng.choice([np.nan, 30.0, 90_000.0], n),
        "timestamp": "2025-03-01T10:00:00Z",
    })
    df.loc[[5, 17], "lon"] = np.nan  # no position
    df.loc[9, ["lon", "lat"]] = 0.0  # null island
    return df


def usable(df: pd.DataFrame) -> np.ndarray:
    """Rows of ``messy_tests`` the readers keep: a position on Earth, not 0,0, and every
    value empty or possible."""
    lon, lat = df["lon"].to_numpy(float), df["lat"].to_numpy(float)
    ok = np.isfinite(lon) & np.isfinite(lat) & ~((lon == 0) & (lat == 0))
    for name, (lo, hi) in io.MEASUREMENT_LIMITS.items():
        v = df[name].to_numpy(float)
        ok &= np.isnan(v) | ((v >= lo) & (v <= hi))
    return ok


def groupby_compaction(points: gpd.GeoDataFrame, grid: Grid) -> pd.DataFrame:
    """The former compaction: a pandas group-by of every test's cell and labels."""
    row, col, inside = grid.index(*points_xy(points.geometry, grid.crs))
    m = pd.DataFrame(points.drop(columns="geometry"))[inside]
    w = m["weight"].to_numpy(float)
    df = pd.DataFrame({"cell": (row[inside] * grid.shape[1] + col[inside]),
                       **{k: m[k].astype(object).fillna("").to_numpy()
                          for k in ("operator", "tech", "source")}, "weight": w})
    for name in VALUES:
        v = m[name].to_numpy(float)
        df[f"{name}:num"] = np.where(np.isfinite(v), v * w, 0.0)
        df[f"{name}:den"] = np.where(np.isfinite(v), w, 0.0)
    sums = df.groupby(["cell", "operator", "tech", "source"], sort=False,
                      as_index=False).sum()
    for name in VALUES:
        num, den = sums.pop(f"{name}:num"), sums.pop(f"{name}:den")
        sums[name] = np.where(den > 0, num / den.where(den > 0, 1.0), np.nan)
    return sums


def as_objects(columns: pd.DataFrame) -> pd.DataFrame:
    """Operators as objects, as the point reader gives them (the columns keep Arrow text)."""
    return columns.assign(operator=columns["operator"].astype(object))


def records(path, reader, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        chunks = list(reader(path, **kw))
    return chunks, [str(w.message) for w in caught if w.category is RepairWarning]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_columns_reader_keeps_the_point_readers_rows_values_and_warnings(tmp_path, fmt):
    path = tmp_path / f"tests.{fmt}"
    df = messy_tests()
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    points, warned_points = records(path, io.iter_measurements, chunk_rows=64)
    cols, warned_cols = records(path, io.iter_measurement_columns, chunk_rows=64)
    assert warned_cols == warned_points
    warned, unread = warned_cols  # rows dropped; labels kept as empty ("6G")
    assert "technology labels not known" in unread and "'6G'" in unread
    # no position at rows 5 and 17, 0,0 at row 9: the file's lines, or rows from 1
    assert (("lines 7, 19" in warned and "(line 11)" in warned) if fmt == "csv" else
            ("rows 6, 18" in warned and "(row 10)" in warned)), warned
    assert len(cols) == len(points) == 7
    for p, c in zip(points, cols, strict=True):
        assert "geometry" not in c.columns and "timestamp" not in c.columns
        np.testing.assert_array_equal(c["lon"], p.geometry.x)
        np.testing.assert_array_equal(c["lat"], p.geometry.y)
        expected = pd.DataFrame(p.drop(columns=["geometry", "timestamp"]))
        pd.testing.assert_frame_equal(as_objects(c.drop(columns=["lon", "lat"])), expected)
    joined = pd.concat(cols, ignore_index=True)
    assert set(joined["tech"].dropna()) == {"3G", "4G", "5G", "none"}
    assert len(joined) == usable(df).sum() > 100


def test_columns_reader_in_an_assumed_crs_and_for_ookla_and_geoparquet(tmp_path):
    df = messy_tests(60)
    x, y = points_xy(gpd.GeoSeries(gpd.points_from_xy(df["lon"], df["lat"]), crs=4326),
                     "EPSG:32648")
    projected = tmp_path / "utm.csv"
    df.assign(lon=x, lat=y).to_csv(projected, index=False)
    geo = tmp_path / "geo.parquet"
    gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), crs=4326,
                     geometry=gpd.points_from_xy(df["lon"], df["lat"])).to_parquet(geo)
    from test_io_formats import ookla_frame

    ookla = tmp_path / "ookla.parquet"
    ookla_frame().to_parquet(ookla)
    for path, kw in [(projected, {"assume_crs": "EPSG:32648"}), (geo, {}), (ookla, {})]:
        points, warned_points = records(path, io.iter_measurements, chunk_rows=25, **kw)
        cols, warned_cols = records(path, io.iter_measurement_columns, chunk_rows=25, **kw)
        assert warned_cols == warned_points, path
        joined = pd.concat(cols, ignore_index=True)
        whole = pd.concat(points, ignore_index=True)
        np.testing.assert_allclose(joined["lon"], whole.geometry.x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(joined["lat"], whole.geometry.y, rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(
            as_objects(joined.drop(columns=["lon", "lat"])),
            pd.DataFrame(whole.drop(columns=["geometry", "timestamp"])))
    assert set(joined["source"]) == {"ookla"} and list(joined["weight"]) == [12.0, 3.0]


def test_columns_reader_refuses_bad_files_as_clearly(tmp_path):
    no_xy = tmp_path / "no_xy.csv"
    pd.DataFrame({"a": [1.0], "b": [2.0], "rsrp_dbm": [-80.0]}).to_csv(no_xy, index=False)
    swapped = tmp_path / "swapped.csv"
    pd.DataFrame({"lon": [21.0], "lat": [105.8]}).to_csv(swapped, index=False)
    nowhere = tmp_path / "nowhere.parquet"
    pd.DataFrame({"lon": [np.nan, 0.0], "lat": [np.nan, 0.0]}).to_parquet(nowhere)
    for path, error, words in [(no_xy, SchemaError, "has no coordinates"),
                               (swapped, InputError, "look swapped"),
                               (nowhere, InputError, "no row has a usable position")]:
        messages = []
        for reader in (io.iter_measurements, io.iter_measurement_columns):
            with pytest.raises(error, match=words) as info, warnings.catch_warnings():
                warnings.simplefilter("ignore", RepairWarning)
                list(reader(path, chunk_rows=10))
            messages.append(str(info.value))
        assert messages[0] == messages[1]


@pytest.mark.parametrize("chunk_rows", [37, 1000])
def test_compaction_by_integer_keys_equals_the_group_by(tmp_path, chunk_rows):
    path = tmp_path / "tests.parquet"
    df = messy_tests(1500, seed=8)
    df.to_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        points = io.read_measurements(path)
        expected = groupby_compaction(points, GRID)
        from_points = compact_measurements(io.iter_measurements(path, chunk_rows=chunk_rows),
                                           GRID)
        from_columns = compact_measurements(
            io.iter_measurement_columns(path, chunk_rows=chunk_rows), GRID)
    assert len(expected) > 50  # several tests per cell, several labels per cell
    assert (expected["weight"] > 1).any()
    for got in (from_points, from_columns):
        assert list(got.columns) == ["tech", "operator", *VALUES, "timestamp", "weight",
                                     "source", "testers", "geometry"]
        # point tests: one tester a test
        np.testing.assert_array_equal(got["testers"], got["weight"])
        assert got.crs.to_epsg() == 4326
        # same rows in the same order: the first appearance of each cell and labels
        row, col, _ = GRID.index(*points_xy(got.geometry, GRID.crs))
        np.testing.assert_array_equal(row * GRID.shape[1] + col, expected["cell"])
        # each at its cell's centre, as the grid gives it, in degrees
        cx, cy = GRID.centres()
        cell = expected["cell"].to_numpy()
        centre = gpd.GeoSeries(gpd.points_from_xy(cx.ravel()[cell], cy.ravel()[cell]),
                               crs=GRID.crs).to_crs(4326)
        np.testing.assert_array_equal(got.geometry.x, centre.x)
        np.testing.assert_array_equal(got.geometry.y, centre.y)
        for name in ("operator", "tech"):
            assert list(got[name].fillna("")) == list(expected[name]), name
        assert got["tech"].isna().any() and got["operator"].isna().any()
        assert (got["source"] == "tests").all()
        np.testing.assert_array_equal(got["weight"], expected["weight"])
        for name in VALUES:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)
        assert got["timestamp"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        plain = compact_measurements(
            io.iter_measurement_columns(path, chunk_rows=chunk_rows), GRID, points=False)
    assert not isinstance(plain, gpd.GeoDataFrame)
    pd.testing.assert_frame_equal(plain.drop(columns=["lon", "lat"]),
                                  pd.DataFrame(from_columns.drop(columns="geometry")))
    np.testing.assert_array_equal(plain["lon"], from_columns.geometry.x)
    np.testing.assert_array_equal(plain["lat"], from_columns.geometry.y)


def test_aggregation_of_columns_equals_points(tmp_path):
    path = tmp_path / "tests.csv"
    messy_tests(300).to_csv(path, index=False)
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 250.0, "EPSG:32648")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        a = aggregate_measurement_chunks(io.iter_measurements(path, chunk_rows=50), grid)
        b = aggregate_measurement_chunks(io.iter_measurement_columns(path, chunk_rows=50),
                                         grid)
    assert float(a["tests"].sum()) > 50
    for name, arr in a.items():
        np.testing.assert_array_equal(b[name], arr, err_msg=name)


def test_compaction_of_nothing_inside_the_grid(tmp_path):
    path = tmp_path / "far.csv"
    pd.DataFrame({"lon": [100.0, 100.1], "lat": [10.0, 10.1], "tech": ["4G", "4G"],
                  "download_mbps": [5.0, 6.0]}).to_csv(path, index=False)
    got = compact_measurements(io.iter_measurement_columns(path), GRID)
    assert got.empty and got.crs.to_epsg() == 4326
    assert shapely.is_empty(got.geometry.to_numpy()).size == 0
