"""Measurement rows that cannot be used: dropped, counted and reported; the run goes on.

Files of 4,000 tests over the tiny province with a few impossible rows, in every format a
measurement file comes in (point-test CSV, Parquet, GeoParquet and GeoPackage, Ookla tiles
as Parquet and CSV), read whole and in chunks whose boundaries fall between the bad rows.
A file with more than 5% of its rows off the Earth is refused as a whole, whatever the
chunking.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from conftest import X0, Y0, tiny_villages
from coverage import io
from coverage.errors import CRSError, RepairWarning
from coverage.model import points_xy

N = 4000
FORMATS = ["csv", "parquet", "geoparquet", "gpkg", "ookla-parquet", "ookla-csv"]
#: Chunk sizes: the whole file, and chunks whose boundaries fall between the bad rows (the
#: last chunk of 4 rows); one-row chunks are read in the line-number test.
CHUNKS = [None, 333]


def clean_tests(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Possible point tests spread over the tiny province (EPSG:4326)."""
    rng = np.random.default_rng(seed)
    x, y = X0 + rng.uniform(0, 12_000, n), Y0 + rng.uniform(0, 10_000, n)
    lon, lat = points_xy(gpd.GeoSeries(gpd.points_from_xy(x, y), crs=32648), "EPSG:4326")
    return pd.DataFrame({
        "lon": lon, "lat": lat, "tech": rng.choice(["4G", "3G", "none"], n),
        "rsrp_dbm": rng.uniform(-125, -60, n), "download_mbps": rng.uniform(0.5, 80, n),
        "upload_mbps": rng.uniform(0.1, 20, n), "latency_ms": rng.uniform(15, 200, n)})


#: Row position (0-based) -> (column, value) of the impossible rows planted.
BAD = {
    10: ("lat", 999.0),  # off the Earth
    11: ("lon", np.nan),  # no position
    500: ("rsrp_dbm", 5.0),  # a level next to no antenna
    501: ("download_mbps", -3.0),
    2000: ("download_mbps", 25_000.0),  # 25 Gbit/s from a handset
    2001: ("upload_mbps", np.inf),
    3999: ("latency_ms", -1.0),
}


def bad_tests(off_rows: int = 0) -> pd.DataFrame:
    """``clean_tests`` with the rows of ``BAD`` and ``off_rows`` more rows off the Earth."""
    df = clean_tests()
    for row, (col, value) in BAD.items():
        df.loc[row, col] = value
    df.loc[3000:3000 + off_rows - 1, "lat"] = 1234.5  # together: whole chunks off the Earth
    return df


def ookla(df: pd.DataFrame) -> pd.DataFrame:
    """The tests as Ookla tiles: a small square tile around each position, speeds in kbps."""
    d = 0.002
    wkt = [f"POLYGON (({x - d} {y - d}, {x + d} {y - d}, {x + d} {y + d}, {x - d} {y + d}, "
           f"{x - d} {y - d}))" if np.isfinite(x) else "" for x, y in zip(df.lon, df.lat,
                                                                           strict=True)]
    return pd.DataFrame({"quadkey": "1", "tile": wkt, "avg_d_kbps": df.download_mbps * 1000,
                         "avg_u_kbps": df.upload_mbps * 1000, "avg_lat_ms": df.latency_ms,
                         "tests": 3, "devices": 2})


def write(df: pd.DataFrame, fmt: str, d: Path) -> Path:
    if fmt.startswith("ookla"):
        df = ookla(df)
    ext = "csv" if fmt.endswith("csv") else "gpkg" if fmt == "gpkg" else "parquet"
    path = d / f"tests-{fmt}.{ext}"
    if fmt in ("geoparquet", "gpkg"):
        pts = [shapely.Point(x, y) if np.isfinite(x) else None
               for x, y in zip(df.lon, df.lat, strict=True)]
        gdf = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=pts, crs=4326)
        gdf.to_parquet(path) if fmt == "geoparquet" else gdf.to_file(path)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


def read(path: Path, chunk_rows: int | None, *, points: bool = True
         ) -> tuple[pd.DataFrame, io.MeasurementReport, list[str]]:
    """Observations, the report and the warnings of one file, whole or in chunks."""
    reports = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        if chunk_rows is None:
            got = io.read_measurements(path, on_report=reports.append)
        else:
            reader = io.iter_measurements if points else io.iter_measurement_columns
            got = pd.concat(list(reader(path, chunk_rows=chunk_rows,
                                        on_report=reports.append)), ignore_index=True)
    (report,) = reports
    return got, report, [str(w.message) for w in caught if w.category is RepairWarning]


def expected_dropped(fmt: str) -> dict[str, int]:
    out = {"no_position": 1, "off_earth": 1, "download_mbps": 2, "upload_mbps": 1,
           "latency_ms": 1, "rsrp_dbm": 1}
    if fmt.startswith("ookla"):  # Ookla tiles carry no level
        out.pop("rsrp_dbm")
    return out


@pytest.mark.parametrize("chunk_rows", CHUNKS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_few_unusable_rows_are_dropped_counted_and_the_file_is_used(tmp_path, fmt,
                                                                      chunk_rows):
    path = write(bad_tests(), fmt, tmp_path)
    got, report, warned = read(path, chunk_rows)
    dropped = expected_dropped(fmt)
    assert report.rows_read == N
    assert dict(report.dropped) == dropped
    assert len(got) == report.rows_kept == N - sum(dropped.values())
    # the numbers are the file's: line = row + 2 under a header, else row + 1
    offset = 2 if path.suffix == ".csv" else 1
    assert report.numbering == ("line" if path.suffix == ".csv" else "row")
    assert report.first_lines["off_earth"] == (10 + offset,)
    assert report.first_lines["no_position"] == (11 + offset,)
    assert report.first_lines["download_mbps"] == (501 + offset, 2000 + offset)
    assert report.first_lines["latency_ms"] == (3999 + offset,)
    # what is kept is possible, and the warning is the report, once
    for name, (lo, hi) in io.MEASUREMENT_LIMITS.items():
        assert got[name].dropna().between(lo, hi).all(), name
    assert warned == [report.text()]
    assert f"{N:,} row(s) read, {sum(dropped.values())} dropped" in warned[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_columns_reader_drops_the_same_rows(tmp_path, fmt):
    path = write(bad_tests(), fmt, tmp_path)
    points, report_points, _ = read(path, 333)
    cols, report_cols, _ = read(path, 333, points=False)
    assert report_cols == report_points
    np.testing.assert_array_equal(cols["lat"], points.geometry.y)


@pytest.mark.parametrize("chunk_rows", [None, 50])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "ookla-csv"])
def test_five_percent_off_the_earth_is_the_edge_over_the_whole_file(tmp_path, fmt,
                                                                    chunk_rows):
    # 1 row off the Earth among the BAD rows, plus 199 together: 200 of 4,000 = 5.0%,
    # all of them in 4 chunks of 50 (each of those chunks is 98-100% off the Earth)
    at_edge = write(bad_tests(off_rows=199), fmt, tmp_path)
    got, report, _ = read(at_edge, chunk_rows)
    assert report.dropped["off_earth"] == 200
    assert len(got) == report.rows_kept > 3700
    # one more: 201 of 4,000 is more than 5%, the file is refused whole
    beyond = write(bad_tests(off_rows=200), fmt, tmp_path)
    with pytest.raises(CRSError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        read(beyond, chunk_rows)
    message = str(info.value)
    assert str(beyond) in message
    assert "201 of 4,000 row(s) (5.0%) have coordinates that cannot be on Earth" in message
    assert "the file as a whole is suspect" in message
    first = 12 if fmt.endswith("csv") else 11
    assert re.search(rf"\((lines|rows) {first}, {first + 2990}, ", message), message


def test_swapped_columns_and_projected_metres_are_named(tmp_path):
    df = clean_tests(400)
    swapped = tmp_path / "swapped.csv"
    df.rename(columns={"lon": "lat", "lat": "lon"}).to_csv(swapped, index=False)
    with pytest.raises(CRSError, match="columns look swapped"):
        io.read_measurements(swapped)
    metres = tmp_path / "utm.csv"
    x, y = points_xy(gpd.GeoSeries(gpd.points_from_xy(df.lon, df.lat), crs=4326),
                     "EPSG:32648")
    df.assign(lon=x, lat=y).to_csv(metres, index=False)
    for reader in (io.read_measurements, lambda p: list(io.iter_measurements(p,
                                                                             chunk_rows=50))):
        with pytest.raises(CRSError, match=r"400 of 400 row\(s\).*projected metres, state "
                                           r"their CRS with --assume-crs.*EPSG:3405"):
            reader(metres)
    # with the CRS stated, every row is on the Earth
    assert len(io.read_measurements(metres, assume_crs="EPSG:32648")) == 400
    # degrees labelled by their file as VN-2000 metres land on the Earth, near 0N, far from
    # Vietnam: the file's CRS is wrong
    degrees = tmp_path / "degrees.gpkg"
    gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(
        df.lon, df.lat), crs=3405).to_file(degrees)
    with pytest.raises(CRSError, match=r"400 of 400 row\(s\) \(100\.0%\) land outside "
                                       r"the area where that CRS is used.*look like degrees"):
        io.read_measurements(degrees)
    # --assume-crs names the CRS of every input stating none (a Shapefile of villages
    # without .prj): a CSV's lon/lat in degrees stay degrees, and the run says so
    as_csv = tmp_path / "degrees.csv"
    df.to_csv(as_csv, index=False)
    for reader in (io.read_measurements, lambda p, **kw: pd.concat(io.iter_measurement_columns(
            p, chunk_rows=50, **kw))):
        with pytest.warns(RepairWarning, match="longitude/latitude degrees, read as EPSG:4326"):
            assert len(reader(as_csv, assume_crs="EPSG:3405")) == 400  # VN-2000 / UTM 48N


def test_line_numbers_survive_blank_lines_and_chunks(tmp_path):
    df = clean_tests(30)
    df.loc[20, "rsrp_dbm"] = -200.0
    text = df.to_csv(index=False).splitlines()
    # a blank line after line 6 (row 4): the row at index 20 is now on line 23
    text.insert(6, "")
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(text) + "\n")
    assert text[23 - 1] == df.iloc[[20]].to_csv(index=False, header=False).strip()
    for chunk_rows in (None, 4, 5, 1):
        got, report, _ = read(path, chunk_rows)
        assert report.rows_read == 30, chunk_rows  # a blank line is not a row
        assert report.first_lines == {"rsrp_dbm": (23,)}, chunk_rows
        assert len(got) == 29


def test_parquet_off_the_earth_is_refused_before_the_end(tmp_path):
    df = clean_tests()
    df.loc[:300, "lat"] = 999.0  # 301 of 4,000 in the first rows
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    yielded = []
    with pytest.raises(CRSError, match=r"at least 300 of 4,000 row\(s\) \(7\.5%\)"):
        for chunk in io.iter_measurements(path, chunk_rows=100):
            yielded.append(chunk)
    # the row count is known from the metadata: refused in the 3rd chunk of 40, when the
    # rows off the Earth passed 200 (5% of 4,000)
    assert len(yielded) == 0  # the first two chunks had no usable row


def test_ookla_bad_quadkeys_and_tiles_lose_their_rows_only(tmp_path):
    from test_io_formats import ookla_frame

    df = pd.concat([ookla_frame(with_tile=False)] * 30, ignore_index=True)
    df.loc[3, "quadkey"] = "13209X"
    df.loc[4, "avg_d_kbps"] = -5
    path = tmp_path / "ookla.csv"
    df.to_csv(path, index=False)
    got, report, _ = read(path, None)
    assert dict(report.dropped) == {"no_position": 1, "download_mbps": 1}
    assert report.first_lines == {"no_position": (5,), "download_mbps": (6,)}
    assert len(got) == 58
    tiles = ookla_frame()
    tiles.loc[1, "tile"] = "POLYGON ((105"
    tiles = pd.concat([tiles] * 30, ignore_index=True)
    tiles.to_parquet(path.with_suffix(".parquet"))
    got, report, _ = read(path.with_suffix(".parquet"), 7)
    assert dict(report.dropped) == {"no_position": 30}
    assert report.first_lines["no_position"] == (2, 4, 6, 8, 10)


def test_cli_classify_runs_reports_on_stderr_and_keeps_every_village(tiny, tmp_path):
    from coverage.cli import main

    tests = write(bad_tests(), "csv", tmp_path)
    out = tmp_path / "classified.csv"
    result = CliRunner().invoke(main, [
        "classify", str(tiny["villages"]), "--towers", str(tiny["sites"]),
        "--measurements", str(tests), "--population", str(tiny["population"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    paragraph = [line for line in result.stderr.splitlines() if str(tests) in line]
    assert len(paragraph) == 1, result.stderr  # one paragraph for the file
    assert "4,000 row(s) read, 7 dropped, 3,993 used" in paragraph[0]
    assert "(line 12)" in paragraph[0] and "latitude beyond ±90" in paragraph[0]
    assert str(tests) not in result.stdout
    got = pd.read_csv(out, dtype={"village_id": str})
    assert sorted(got["village_id"]) == sorted(tiny_villages()["village_id"])
    assert got["n_tests"].sum() > 3000  # the tests were used


def test_chunked_csv_with_text_in_number_columns_reads_as_whole(tmp_path):
    df = clean_tests(60).astype({"lat": object, "download_mbps": object})
    df.loc[25, "lat"] = "unknown"  # no position
    df.loc[40, "download_mbps"] = "12,5"  # a decimal comma: 12.5 Mbps
    df.loc[41, "download_mbps"] = "NA"  # not measured
    path = tmp_path / "text.csv"
    df.to_csv(path, index=False)
    whole, report, _ = read(path, None)
    assert dict(report.dropped) == {"no_position": 1}
    assert report.first_lines == {"no_position": (27,)}
    assert whole["download_mbps"].iloc[39] == 12.5  # row 40 is the 40th kept
    assert np.isnan(whole["download_mbps"].iloc[40])
    # chunks of 10: the first two by the C parser's numbers, the rest as text from row 20
    for points in (True, False):
        got, chunked, _ = read(path, 10, points=points)
        assert chunked == report
        np.testing.assert_array_equal(got["download_mbps"], whole["download_mbps"])
        np.testing.assert_array_equal(got["lat"] if not points else got.geometry.y,
                                      whole.geometry.y)
