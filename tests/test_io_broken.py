"""A corpus of broken inputs built in code: each asserts what `covgap validate` says and exits.

Refusals exit 1 with a message naming the file and the fix; repairs exit 0 and are listed
as warnings. The same readers serve `covgap classify`, so the messages are the run's too.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from conftest import tiny_sites, tiny_villages
from coverage.cli import main
from coverage.io import OPENCELLID_COLUMNS, encodings


def villages_gpkg(d: Path, v: gpd.GeoDataFrame | None = None, name: str = "v.gpkg") -> Path:
    path = d / name
    (tiny_villages() if v is None else v).to_file(path)
    return path


def sites_csv(d: Path, df: pd.DataFrame | None = None) -> Path:
    path = d / "sites.csv"
    (tiny_sites() if df is None else df).to_csv(path, index=False)
    return path


def truncated(d: Path, ext: str) -> Path:
    full = d / f"full{ext}"
    v = tiny_villages()
    if ext == ".parquet":
        v.to_parquet(full)
    else:
        v.to_file(full)
    data = full.read_bytes()
    bad = d / f"cut{ext}"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def legacy_shapefile(d: Path, encoding: str) -> Path:
    """A Shapefile whose .dbf text is in a legacy encoding, and no .cpg (as offices send)."""
    v = tiny_villages()[["village_id", "name", "population", "geometry"]]
    encoded = [encodings.encode(n, encoding) for n in v["name"]]
    placeholders = [f"@{k:02d}".ljust(len(e), "x") for k, e in enumerate(encoded)]
    path = d / "legacy.shp"
    v.assign(name=placeholders).to_file(path, encoding="utf-8")
    dbf = path.with_suffix(".dbf")
    raw = dbf.read_bytes()
    for p, e in zip(placeholders, encoded, strict=True):
        assert raw.count(p.encode()) == 1
        raw = raw.replace(p.encode(), e)
    dbf.write_bytes(raw)
    path.with_suffix(".cpg").unlink()
    return path


def _no_crs(d: Path) -> list:
    path = d / "nocrs.shp"
    tiny_villages().to_file(path)
    path.with_suffix(".prj").unlink()
    return [path]


def _points_as_villages(d: Path) -> list:
    v = tiny_villages()
    v["geometry"] = v.geometry.centroid
    return [villages_gpkg(d, v)]


def _empty_layer(d: Path) -> list:
    return [villages_gpkg(d, tiny_villages().iloc[:0])]


def _dup(d: Path) -> list:
    v = tiny_villages()
    v.loc[5, "village_id"] = "0001"
    return [villages_gpkg(d, v)]


def _no_id(d: Path) -> list:
    return [villages_gpkg(d, tiny_villages().rename(columns={"village_id": "ma_thon"}))]


def _metres_as_degrees(d: Path) -> list:
    return [villages_gpkg(d, tiny_villages().set_crs(4326, allow_override=True))]


def _degrees_as_vn2000(d: Path) -> list:
    v = tiny_villages().to_crs(4326).set_crs(3405, allow_override=True)
    return [villages_gpkg(d, v)]


def _swapped_geojson(d: Path) -> list:
    v = tiny_villages().to_crs(4326)
    v["geometry"] = shapely.transform(v.geometry.to_numpy(), lambda xy: xy[:, ::-1])
    path = d / "swapped.geojson"
    v.to_file(path)
    return [path]


def _swapped_tests_csv(d: Path) -> list:
    s = tiny_sites()
    path = d / "tests.csv"
    pd.DataFrame({"lon": s.lat, "lat": s.lon, "tech": "4G"}).to_csv(path, index=False)
    return [villages_gpkg(d), "--measurements", path]


def _mapped_missing(d: Path) -> list:
    return [villages_gpkg(d), "--col", "name=TEN_THON"]


def _unknown_tech(d: Path) -> list:
    s = tiny_sites()
    s.loc[0, "tech"] = "6G"
    return [villages_gpkg(d), "--towers", sites_csv(d, s)]


def _sites_without_tech(d: Path) -> list:
    return [villages_gpkg(d), "--towers", sites_csv(d, tiny_sites().drop(columns="tech"))]


def _access_percent(d: Path) -> list:
    path = d / "access.csv"
    pd.DataFrame({"village_id": ["0001", "0002"], "electricity_share": [0.9, 85]}).to_csv(
        path, index=False)
    return [villages_gpkg(d), "--access", path]


def _truncated_tif(d: Path) -> list:
    import rasterio
    from rasterio.transform import from_origin

    full = d / "pop.tif"
    with rasterio.open(full, "w", driver="GTiff", width=256, height=256, count=1,
                       dtype="float32", crs="EPSG:32648",
                       transform=from_origin(500_000, 2_500_000, 50, 50)) as dst:
        dst.write(np.random.default_rng(0).random((1, 256, 256), dtype="float32"))
    data = full.read_bytes()
    cut = d / "cut.tif"
    cut.write_bytes(data[: len(data) // 3])
    return [villages_gpkg(d), "--population", cut]


def _truncated_vector(ext):
    return lambda d: [truncated(d, ext)]


def _zero_bytes(d: Path) -> list:
    path = d / "v.gpkg"
    path.write_bytes(b"")
    return [path]


def _ragged_csv(d: Path) -> list:
    path = d / "tests.csv"
    path.write_text("lon,lat,tech\n105.8,21.0,4G\n105.9,21.1,4G,extra,fields\n")
    return [villages_gpkg(d), "--measurements", path]


REFUSED = {
    "missing file": (lambda d: [d / "nope.gpkg"], r"does not exist"),
    "zero-byte file": (_zero_bytes, r"empty \(0 bytes\)"),
    "truncated GeoPackage": (_truncated_vector(".gpkg"), r"cannot be read.*truncated"),
    "truncated GeoJSON": (_truncated_vector(".geojson"), r"cannot be read.*truncated"),
    "truncated FlatGeobuf": (_truncated_vector(".fgb"), r"cannot be read|no features"),
    "truncated GeoParquet": (_truncated_vector(".parquet"), r"cannot be read as Parquet"),
    "truncated GeoTIFF": (_truncated_tif, r"cannot be read as a raster.*truncated"),
    "empty layer": (_empty_layer, r"holds no features"),
    "no CRS": (_no_crs, r"has no CRS.*--assume-crs.*EPSG:3405"),
    "duplicate village_id": (_dup, r"duplicate village_id values \['0001'\] in rows 0, 5"),
    "missing id column": (_no_id, r"lacks required column\(s\) village_id; found ma_thon, "
                                  r"name.*--id-col"),
    "mapped column absent": (_mapped_missing, r"lacks required column\(s\) TEN_THON"),
    "points as villages": (_points_as_villages, r"12 feature\(s\) have no polygon area "
                                                r"\(Point"),
    "metres labelled degrees": (_metres_as_degrees, r"cannot be degrees.*EPSG:3405"),
    "degrees labelled VN-2000": (_degrees_as_vn2000, r"outside the area where that CRS is "
                                                     r"used.*look like degrees"),
    "swapped lon/lat (GeoJSON)": (_swapped_geojson, r"longitude and latitude are swapped"),
    "swapped lon/lat (CSV)": (_swapped_tests_csv, r"columns look swapped"),
    "unknown tech": (_unknown_tech, r"unknown tech in row 0.*6G.*use 2G, 3G, 4G, 5G"),
    "site table without tech": (_sites_without_tech, r"lacks required column\(s\) tech"),
    "access share as percent": (_access_percent, r"electricity_share must be a share in "
                                                 r"0\.\.1; line 3 .*percentages"),
    "ragged CSV": (_ragged_csv, r"not a well-formed CSV"),
}


def run(*args) -> object:
    return CliRunner().invoke(main, ["validate", *map(str, args)], catch_exceptions=False)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_inputs_exit_1_with_a_message_naming_the_problem(tmp_path, case):
    build, pattern = REFUSED[case]
    args = build(tmp_path)
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "[ERROR  ]" in result.output
    assert "NOT usable" in result.output
    import re
    assert re.search(pattern, result.output.replace("\n", " "), flags=re.S), result.output
    assert "Traceback" not in result.output


def test_no_crs_is_usable_with_assume_crs(tmp_path):
    (path,) = _no_crs(tmp_path)
    result = run(path, "--assume-crs", "EPSG:32648")
    assert result.exit_code == 0, result.output


def _invalid_geometry(d: Path) -> list:
    v = tiny_villages()
    x, y = 500_000, 2_490_000
    v.loc[0, "geometry"] = shapely.Polygon([(x, y), (x + 3000, y + 3000), (x + 3000, y),
                                            (x, y + 3000)])  # a bow tie
    return [villages_gpkg(d, v)]


def _collection(d: Path) -> list:
    v = tiny_villages()
    g = v.geometry.iloc[2]
    v.loc[2, "geometry"] = shapely.GeometryCollection([g, shapely.Point(g.centroid),
                                                       shapely.LineString([(0, 0), (1, 1)])])
    v.loc[3, "geometry"] = shapely.MultiPolygon([v.geometry.iloc[3]])
    path = d / "mixed.geojson"
    v.to_file(path)
    return [path]


def _bad_measurements(d: Path) -> list:
    s = tiny_sites()
    lon, lat = s.lon.iloc[0], s.lat.iloc[0]
    path = d / "tests.csv"
    pd.DataFrame({
        "lon": [lon, lon, "nan", lon, 0, lon], "lat": [lat, lat, lat, "inf", 0, lat],
        "tech": ["4G"] * 6, "rsrp_dbm": [-90, 15, -95, -95, -95, "-inf"],
        "download_mbps": [10, -3, 5, 5, 5, 1e9],
    }).to_csv(path, index=False)
    return [villages_gpkg(d), "--measurements", path]


def _far_towers(d: Path) -> list:
    s = tiny_sites()
    far = s.iloc[[2]].assign(site_id="FAR", lon=s.lon.iloc[2] + 1.5)
    return [villages_gpkg(d), "--towers", sites_csv(d, pd.concat([s, far]))]


def _ocid(d: Path) -> list:
    s = tiny_sites()
    lon, lat = s.lon.iloc[0], s.lat.iloc[0]
    rows = [
        f"LTE,452,4,1,{256 * 7},0,{lon},{lat},800,20,1,0,0,0",
        f"LTE,452,4,1,{256 * 7 + 1},0,{lon + 0.001},{lat},800,20,1,0,0,0",
        f"LTE,452,4,1,{256 * 7 + 2},0,{lon + 0.5},{lat},800,20,1,0,0,0",  # 50 km off
        f"GSM,452,4,1,99,0,{lon},{lat},60000,2,1,0,0,0",  # range 60 km
        "UMTS,452,4,1,98,0,0,0,500,2,1,0,0,0",  # at 0,0
        f"UMTS,452,4,1,97,0,{lon - 40},{lat},500,2,1,0,0,0",  # MCC 452 in Africa
    ]
    path = d / "cells.csv"
    path.write_text(",".join(OPENCELLID_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return [villages_gpkg(d), "--towers", path]


def _case_insensitive_id(d: Path) -> list:
    return [villages_gpkg(d, tiny_villages().rename(columns={"village_id": "Village_ID"}))]


REPAIRED = {
    "invalid geometry": (_invalid_geometry, [r"1 invalid geometry repaired with make_valid "
                                             r"\(village_id 0001\)"]),
    "mixed geometry types": (_collection, [r"1 GeometryCollection\(s\) reduced to their "
                                           r"polygons \(village_id 0003\)",
                                           r"11 Polygon and 1 MultiPolygon"]),
    "impossible measurements": (_bad_measurements, [
        r"6 row\(s\) read, 5 dropped, 1 used",
        r"2 with no position \(coordinates empty, not numbers or infinite.*\(lines 4, 5\)",
        r"1 with at 0,0 .*\(line 6\)",
        r"2 with rsrp_dbm outside -160\.\.-20 dBm, or infinite \(lines 3, 7\)",
        r"the header being line 1"]),
    "towers outside the study area": (_far_towers, [r"1 site\(s\) lie more than 30 km from "
                                                    r"every village.*\['FAR'\]"]),
    "OpenCelliD implausible cells": (_ocid, [
        r"2 cell\(s\) with an implausible position \(at 0,0, or outside the country of "
        r"their MCC\) left out \(lines 6, 7\)",
        r"1 LTE cell\(s\) lie more than 10 km from the other cells of their eNodeB.*line 4\b",
        r"1 cell\(s\) with range beyond 35 km.*line 5\b.*range_implausible",
        r"1 flagged"]),
    "id column differing by case": (_case_insensitive_id, [r"using 'Village_ID'"]),
}


@pytest.mark.parametrize("case", sorted(REPAIRED))
def test_repaired_inputs_exit_0_and_list_the_repair(tmp_path, case):
    import re

    build, patterns = REPAIRED[case]
    result = run(*build(tmp_path))
    assert result.exit_code == 0, result.output
    assert "[WARNING]" in result.output
    text = result.output.replace("\n", " ")
    for pattern in patterns:
        assert re.search(pattern, text), (pattern, result.output)


@pytest.mark.parametrize(("encoding", "label"), [("cp1258", "Windows-1258"),
                                                  ("tcvn3", "TCVN3"), ("vni", "VNI-Windows")])
def test_shapefile_without_cpg_in_legacy_vietnamese_encodings(tmp_path, encoding, label):
    from coverage import io

    path = legacy_shapefile(tmp_path, encoding)
    with pytest.warns(UserWarning, match=f"no .cpg file.*decoded as {label}"):
        got = io.read_villages(path)
    assert list(got["name"]) == list(tiny_villages()["name"])
    assert got["name_key"].iloc[0] == "ban na loc"
    result = run(path)
    assert result.exit_code == 0 and label in result.output


def test_shapefile_without_cpg_in_utf8_reads_silently_right(tmp_path):
    import warnings

    from coverage import io

    path = tmp_path / "u.shp"
    tiny_villages().to_file(path, encoding="utf-8")
    path.with_suffix(".cpg").unlink()
    with pytest.warns(UserWarning, match="decoded as UTF-8"):
        got = io.read_villages(path)
    assert list(got["name"]) == list(tiny_villages()["name"])
    tiny_villages().to_file(tmp_path / "with_cpg.shp", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_villages(tmp_path / "with_cpg.shp")
