"""Readers and writers: contract formats, text ids, OpenCelliD grouping, refusals, atomicity."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon

from conftest import tiny_villages
from coverage import io
from coverage.errors import (
    CRSError,
    InputError,
    InputFileNotFoundError,
    OutputExistsError,
    RepairWarning,
    SchemaError,
)


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".shp", ".parquet", ".fgb"])
def test_villages_round_trip_every_format_keeps_text_ids(tmp_path, ext):
    v = tiny_villages()
    path = tmp_path / f"villages{ext}"
    if ext == ".parquet":
        v.to_parquet(path)
    else:
        v.to_file(path)
    got = io.read_villages(path)
    # FlatGeobuf stores features in spatial-index order; the others keep the input's
    assert sorted(got["village_id"]) == list(v["village_id"])
    first = got.set_index("village_id").loc["0001"]
    assert first["name"] == "Bản Nà Lốc"
    assert got.crs.to_epsg() == 32648


def test_numeric_ids_become_text_and_names_nfc(tmp_path):
    v = tiny_villages().assign(code=np.arange(12) + 100)
    import unicodedata
    v["name"] = [unicodedata.normalize("NFD", n) for n in v["name"]]
    path = tmp_path / "v.gpkg"
    v.to_file(path)
    got = io.read_villages(path, id_col="code")
    assert got["village_id"].iloc[0] == "100"
    assert got["name"].iloc[0] == unicodedata.normalize("NFC", "Bản Nà Lốc")


def test_fold_name_matches_without_accents():
    assert io.fold_name("Bản Nà Lốc") == "ban na loc"
    assert io.fold_name("Đồng Văn") == io.fold_name("dong van")


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        io.read_villages(tmp_path / "missing.gpkg")
    v = tiny_villages()
    v.loc[3, "village_id"] = v.loc[2, "village_id"]
    v.to_file(tmp_path / "dup.gpkg")
    with pytest.raises(SchemaError, match="duplicate"):
        io.read_villages(tmp_path / "dup.gpkg")
    tiny_villages().drop(columns="village_id").to_file(tmp_path / "noid.gpkg")
    with pytest.raises(SchemaError, match="--id-col"):
        io.read_villages(tmp_path / "noid.gpkg")
    (tmp_path / "broken.gpkg").write_bytes(b"SQLite format 3\x00 truncated")
    with pytest.raises(InputError, match="cannot be read"):
        io.read_villages(tmp_path / "broken.gpkg")


def test_file_without_crs_needs_assume_crs(tmp_path):
    shp = tmp_path / "nocrs.shp"
    tiny_villages().to_file(shp)
    (tmp_path / "nocrs.prj").unlink()
    with pytest.raises(CRSError, match="--assume-crs"):
        io.read_villages(shp)
    got = io.read_villages(shp, assume_crs="EPSG:32648")
    assert got.crs.to_epsg() == 32648


def test_wrong_crs_is_detected(tmp_path):
    v = tiny_villages()
    v = v.set_crs(4326, allow_override=True)  # metres declared as degrees
    v.to_file(tmp_path / "wrong.gpkg")
    with pytest.raises(CRSError, match="cannot be degrees"):
        io.read_villages(tmp_path / "wrong.gpkg")


def test_invalid_geometry_repaired_and_counted(tmp_path):
    v = tiny_villages()
    bowtie = Polygon([(500000, 2490000), (501000, 2491000), (501000, 2490000),
                      (500000, 2491000)])
    v.loc[0, "geometry"] = bowtie
    v.to_file(tmp_path / "bow.gpkg")
    with pytest.warns(RepairWarning, match="1 invalid geometry repaired"):
        got = io.read_villages(tmp_path / "bow.gpkg")
    assert shapely.is_valid(got.geometry.to_numpy()).all()
    assert got.geometry.iloc[0].area > 0


def test_csv_with_swapped_lon_lat_is_refused(tmp_path):
    path = tmp_path / "tests.csv"
    pd.DataFrame({"lon": [22.5, 22.6], "lat": [104.6, 104.7], "tech": ["4G", "4G"]}).to_csv(
        path, index=False)
    with pytest.raises(CRSError, match="swapped"):
        io.read_measurements(path)


OCID_ROWS = [
    # two LTE cells of eNodeB 1000 (cell // 256), one far LTE cell of another eNodeB,
    # two GSM cells 20 m apart (one site) and a UMTS cell 2 km away (another site)
    "LTE,452,1,10,256000,0,104.60000,22.60000,500,30,1,1600000000,1700000000,0",
    "LTE,452,1,10,256001,0,104.60100,22.60000,500,10,1,1600000000,1700000000,0",
    "LTE,452,1,10,300000,0,104.70000,22.70000,500,5,1,1600000000,1700000000,0",
    "GSM,452,4,20,11,0,104.65000,22.65000,1000,3,1,1600000000,1700000000,0",
    "GSM,452,4,20,12,0,104.65015,22.65010,1000,3,1,1600000000,1700000000,0",
    "UMTS,452,4,20,13,0,104.67000,22.65000,1000,3,1,1600000000,1700000000,0",
]


@pytest.mark.parametrize("header", [False, True])
def test_opencellid_with_or_without_header_groups_sites(tmp_path, header):
    path = tmp_path / "cells.csv"
    lines = ([",".join(io.OPENCELLID_COLUMNS)] if header else []) + OCID_ROWS
    path.write_text("\n".join(lines) + "\n")
    towers = io.read_towers(path)
    assert len(towers) == 4
    lte = towers[towers.site_id == "452-1-enb1000"].iloc[0]
    assert lte["tech"] == "4G"
    assert lte["operator"] == "MobiFone"
    # samples-weighted centroid: (30 * 104.600 + 10 * 104.601) / 40
    assert lte.geometry.x == pytest.approx(104.60025, abs=1e-6)
    gsm = towers[towers.tech == "2G"]
    assert len(gsm) == 1 and gsm["operator"].iloc[0] == "Viettel"
    assert (towers.tech == "3G").sum() == 1
    assert towers["source"].eq("opencellid").all()


def test_site_table_defaults_and_unknown_tech(tmp_path):
    path = tmp_path / "sites.csv"
    pd.DataFrame({"site_id": ["001", "002"], "tech": ["LTE", "umts"], "lon": [104.6, 104.7],
                  "lat": [22.6, 22.7], "height_m": ["", "45"]}).to_csv(path, index=False)
    towers = io.read_towers(path)
    assert list(towers["site_id"]) == ["001", "002"]
    assert list(towers["tech"]) == ["4G", "3G"]
    assert list(towers["height_m"]) == [30.0, 45.0]
    assert towers["status"].eq("active").all()
    pd.DataFrame({"site_id": ["1"], "tech": ["6G"], "lon": [104.6], "lat": [22.6]}).to_csv(
        path, index=False)
    with pytest.raises(SchemaError, match="unknown tech"):
        io.read_towers(path)


def test_measurements_unusable_rows_dropped_and_counted(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"lon": [104.6, 104.6, "inf", 104.7], "lat": [22.6, 22.6, 22.6, 22.7],
                  "tech": ["4G", "none", "LTE", "4G"], "rsrp_dbm": [-90, "", -80, 12],
                  "download_mbps": [12, "", -3, 5]}).to_csv(path, index=False)
    reports = []
    with pytest.warns(RepairWarning, match=r"4 row\(s\) read, 2 dropped, 2 used"):
        m = io.read_measurements(path, on_report=reports.append)
    assert len(m) == 2
    assert list(m["tech"]) == ["4G", "none"]  # empty values are values not measured
    (report,) = reports
    assert report.dropped == {"no_position": 1, "rsrp_dbm": 1}
    assert report.first_lines == {"no_position": (4,), "rsrp_dbm": (5,)}


def test_write_table_is_atomic_and_refuses_to_overwrite(tmp_path):
    v = tiny_villages()
    out = tmp_path / "o.gpkg"
    io.write_table(v, out)
    with pytest.raises(OutputExistsError):
        io.write_table(v, out)
    io.write_table(v, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["o.gpkg"]  # no temporary file left
    with pytest.raises(InputError, match="unknown output format"):
        io.write_table(v, tmp_path / "o.docx")
    assert not list(tmp_path.glob(".o-*"))


def test_xlsx_and_csv_carry_lon_lat(tmp_path):
    v = tiny_villages()
    io.write_table(v, tmp_path / "v.xlsx")
    x = pd.read_excel(tmp_path / "v.xlsx", dtype={"village_id": str})
    assert x["village_id"].iloc[0] == "0001"
    assert x["lon"].between(104, 106).all()
    assert "geometry" not in x.columns


def test_raster_reading_hgt_voids(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    arr = np.array([[100, -32768], [200, 300]], dtype="int16")
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="int16",
                       crs="EPSG:4326", transform=from_origin(104, 23, 0.5, 0.5),
                       nodata=-32768) as dst:
        dst.write(arr, 1)
    r = io.read_raster(path)
    assert np.isnan(r.array[0, 1]) and r.array[1, 1] == 300
    assert r.bounds == (104.0, 22.0, 105.0, 23.0)


def test_srtm_tiles_side_by_side_are_one_dem(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from coverage.errors import CRSError

    paths = []
    for lon in (105, 106):  # N21E105 and N21E106: they share their edge column
        a = np.full((1201, 1201), lon * 10, np.int16)
        a[10:20, 10:20] = -32768  # a void in each
        paths.append(tmp_path / f"N21E{lon}.hgt")
        with rasterio.open(paths[-1], "w", driver="SRTMHGT", width=1201, height=1201, count=1,
                           dtype="int16", crs="EPSG:4326", nodata=-32768,
                           transform=from_origin(lon - 1 / 2400, 22 + 1 / 2400, 1 / 1200,
                                                 1 / 1200)) as dst:
            dst.write(a, 1)
    r = io.read_raster(paths, what="DEM")
    assert r.shape == (1201, 2401)
    assert r.bounds == pytest.approx((105 - 1 / 2400, 21 - 1 / 2400, 107 + 1 / 2400,
                                      22 + 1 / 2400))
    assert int(np.isnan(r.array).sum()) == 200  # the voids stay voids
    assert r.array[600, 1200] == 1050 and r.array[600, 1201] == 1060  # the first tile's edge
    assert io.read_raster(paths[:1], what="DEM").shape == (1201, 1201)
    utm = io.Raster(np.zeros((2, 2)), from_origin(500_000, 2_400_000, 100, 100),
                    io.read_raster(paths[0]).crs.from_epsg(32648))
    with pytest.raises(CRSError, match="different CRS"):
        io.mosaic([io.read_raster(paths[0]), utm], names=["a.hgt", "b.tif"], what="DEM")


def test_no_warnings_on_clean_input(tmp_path):
    tiny_villages().to_file(tmp_path / "v.gpkg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_villages(tmp_path / "v.gpkg")


@pytest.mark.parametrize("module", ["_common", "encodings", "tables"])
def test_io_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"coverage.io.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_names_importable_from_coverage_io():
    for name in ("Raster", "read_villages", "read_towers", "read_measurements", "read_raster",
                 "read_access", "read_fibre", "read_roads", "read_candidates", "write_table",
                 "write_raster", "metric_crs", "fold_name", "normalize_tech",
                 "OPENCELLID_COLUMNS", "VN_OPERATORS", "read_vector", "column_mapping"):
        assert hasattr(io, name), name


def test_xlsx_text_that_looks_like_a_formula_stays_text(tmp_path):
    import openpyxl

    v = tiny_villages()
    v.loc[0, "name"] = '=HYPERLINK("http://evil.example","click")'
    v.loc[1, "name"] = "<script>alert(1)</script>"
    io.write_table(v, tmp_path / "v.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "v.xlsx").active
    header = [c.value for c in ws[1]]
    col = header.index("name") + 1
    cells = [ws.cell(row=r, column=col) for r in (2, 3)]
    assert [c.value for c in cells] == list(v["name"].iloc[:2])
    assert all(c.data_type == "s" for c in cells)  # never "f": no formula runs on opening


@pytest.mark.parametrize("crs", [4326, 32648, 3405])
def test_utm_crs_is_geopandas_estimate_and_is_remembered(crs):
    import geopandas as gpd

    from coverage.io._common import _utm_crs_of

    pts = gpd.GeoSeries(gpd.points_from_xy([104.2, 105.9, 107.1], [20.9, 21.6, 22.3]),
                        crs=4326).to_crs(crs)
    frame = gpd.GeoDataFrame({"k": [1, 2, 3]}, geometry=pts)
    assert io.utm_crs(frame) == frame.estimate_utm_crs()
    assert io.utm_crs(pts) == pts.estimate_utm_crs()
    hits = _utm_crs_of.cache_info().hits
    assert io.utm_crs(frame.copy()) == frame.estimate_utm_crs()
    assert _utm_crs_of.cache_info().hits == hits + 1
    # elsewhere, another zone
    west = gpd.GeoSeries(gpd.points_from_xy([101.0, 101.2], [21.0, 21.2]), crs=4326)
    assert io.utm_crs(west) == west.estimate_utm_crs() != io.utm_crs(frame)
