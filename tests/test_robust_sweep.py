"""Odd but real inputs and outputs, met through the CLI: each was a crash, a silent loss or an
unclear message, and each test fails on the code before its fix.

The files are built in code from the tiny province (``conftest``): as Excel and other tools
save them (UTF-16 "Unicode Text", workbooks, ids without their leading zeros), as exports
arrive (an Ookla file missing its download column, an empty OSM export, a land-cover map of
another scheme, a DEM in feet), and outputs asked for in ways a user types them (one path
twice, a name too long for the file system, a Shapefile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from conftest import tiny_dem, tiny_sites, tiny_villages, write_tif
from coverage import io
from coverage.cli import main
from coverage.cli.options import Amount
from coverage.cli.plan import _amounts
from coverage.errors import InputError, OutputError, RepairWarning, SchemaError


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, *fragments: str) -> None:
    """Exit 1, one readable message holding every fragment, no traceback, no 'bug'."""
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "bug" not in result.output, result.output
    for fragment in fragments:
        assert fragment in text, result.output


# --------------------------------------------------------------------------- encodings
def test_utf16_csvs_as_excel_saves_unicode_text_are_read_like_utf8(tmp_path):
    """Villages (WKT) and a site table in UTF-16 with BOM, tab-separated and comma-separated."""
    v = tiny_villages().to_crs(4326)
    table = pd.DataFrame(v.drop(columns="geometry")).assign(geometry=v.geometry.to_wkt())
    table.to_csv(tmp_path / "v16.csv", index=False, encoding="utf-16", sep="\t")
    got = io.read_villages(tmp_path / "v16.csv")
    assert list(got["village_id"]) == list(v["village_id"])  # leading zeros kept
    assert list(got["name"]) == list(v["name"])  # Vietnamese diacritics intact
    tiny_sites().to_csv(tmp_path / "s16.csv", index=False, encoding="utf-16")
    tiny_sites().to_csv(tmp_path / "s8.csv", index=False)
    a, b = io.read_towers(tmp_path / "s16.csv"), io.read_towers(tmp_path / "s8.csv")
    pd.testing.assert_frame_equal(a, b)


def test_utf16_tests_are_read_whole_and_in_chunks(tmp_path):
    s = tiny_sites()
    tests = pd.DataFrame({"lon": s.lon, "lat": s.lat, "tech": "4G", "operator": "Viettel",
                          "rsrp_dbm": [-90, -95, -100], "download_mbps": [12, 8, 3]})
    tests.to_csv(tmp_path / "t16.csv", index=False, encoding="utf-16")
    tests.to_csv(tmp_path / "t8.csv", index=False)
    whole = io.read_measurements(tmp_path / "t16.csv").drop(columns="source")
    pd.testing.assert_frame_equal(whole, io.read_measurements(tmp_path / "t8.csv")
                                  .drop(columns="source"))
    chunks = pd.concat(io.iter_measurements(tmp_path / "t16.csv", chunk_rows=2))
    assert list(chunks["rsrp_dbm"]) == [-90, -95, -100]


# --------------------------------------------------------------------------- workbooks
def test_workbooks_are_read_like_csvs_and_a_classify_table_is_named(tiny, tmp_path):
    tiny_sites().to_excel(tmp_path / "sites.xlsx", index=False)
    pd.DataFrame({"village_id": ["0001", "0002"], "electricity_share": [0.2, 0.9]}).to_excel(
        tmp_path / "access.xlsx", index=False)
    book, csv = io.read_towers(tmp_path / "sites.xlsx"), io.read_towers(tiny["sites"])
    pd.testing.assert_frame_equal(book.drop(columns="geometry"), csv.drop(columns="geometry"))
    assert book.geom_equals_exact(csv, tolerance=1e-9).all()  # Excel keeps 15 digits
    assert io.read_access(tmp_path / "access.xlsx").loc["0001", "electricity_share"] == 0.2
    table = tmp_path / "classified.xlsx"
    assert invoke("classify", tiny["villages"], "--towers", tmp_path / "sites.xlsx",
                  "-o", table).exit_code == 0
    result = invoke("map", table, "-o", tmp_path / "map.html")
    assert_clean_error(result, "is an output of covgap classify as a table",
                       "-o classified.gpkg")
    (tmp_path / "cut.xlsx").write_bytes(table.read_bytes()[:300])
    assert_clean_error(invoke("validate", tiny["villages"], "--towers", tmp_path / "cut.xlsx"),
                       "cannot be read as an Excel workbook")


def test_a_classify_csv_given_to_plan_is_named_not_called_points(tiny, tmp_path):
    table = tmp_path / "classified.csv"
    assert invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                  "-o", table).exit_code == 0
    result = invoke("plan", table, "--towers", tiny["sites"], "--sites", 1,
                    "-o", tmp_path / "plan.csv")
    assert_clean_error(result, "is an output of covgap classify as a table")
    assert "QGIS" not in result.output


# --------------------------------------------------------------------------- access ids
def test_access_ids_that_lost_their_leading_zeros_are_warned_of(tiny, tmp_path):
    access = tmp_path / "access.csv"
    pd.DataFrame({"village_id": ["1", "2", "0003"], "electricity_share": [0.1, 0.1, 0.9]}
                 ).to_csv(access, index=False)
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "--access", access, "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "2 of 3 row(s) name no village and are ignored ('1', '2')" in text
    assert "2 of them are village ids without their leading zeros" in text
    report = invoke("validate", tiny["villages"], "--access", access)
    assert " ".join(report.output.split()).count("name no village") == 1, report.output


# --------------------------------------------------------------------------- Ookla
def test_ookla_tiles_without_their_download_column_are_refused_not_read_as_points(tmp_path):
    tiles = pd.DataFrame({"quadkey": ["1320323203230330", "1320323203233131"],
                          "avg_u_kbps": [3000, 2000], "avg_lat_ms": [30, 40],
                          "tests": [12, 3], "devices": [4, 1]})
    tiles.to_parquet(tmp_path / "tiles.parquet")
    tiles.to_csv(tmp_path / "tiles.csv", index=False)
    for name in ("tiles.parquet", "tiles.csv"):
        with pytest.raises(SchemaError, match=r"quadkey column.*lacks avg_d_kbps"):
            io.read_measurements(tmp_path / name)


# --------------------------------------------------------------------------- rasters
def test_a_land_cover_of_another_scheme_is_warned_of(tiny, tmp_path):
    dem, transform = tiny_dem()
    corine = np.array([111, 112, 211, 231, 311, 312, 512], dtype="uint16")  # CORINE codes
    corine = corine[np.arange(dem.size).reshape(dem.shape) % len(corine)]
    write_tif(tmp_path / "lc.tif", corine, transform, "EPSG:32648", nodata=0)
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "--landcover", tmp_path / "lc.tif", "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    assert "holds none of the classes the model reads" in " ".join(result.output.split())
    worldcover = np.where(corine < 300, 50, 10).astype("uint8")
    write_tif(tmp_path / "wc.tif", worldcover, transform, "EPSG:32648", nodata=0)
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "--landcover", tmp_path / "wc.tif", "-o", tmp_path / "c2.csv")
    assert result.exit_code == 0 and "none of the classes" not in result.output


def test_a_dem_whose_unit_is_feet_is_read_in_metres(tmp_path):
    dem, transform = tiny_dem()
    path = write_tif(tmp_path / "ft.tif", dem / 0.3048, transform, "EPSG:32648")
    with rasterio.open(path, "r+") as dst:
        dst.units = ["ft"]
    with pytest.warns(RepairWarning, match="heights in feet"):
        got = io.read_raster(path, what="DEM")
    np.testing.assert_allclose(got.array, dem, rtol=1e-5)


# --------------------------------------------------------------------------- roads
def test_an_osm_export_of_nothing_is_named_as_such(tmp_path):
    osm = tmp_path / "roads.osm"
    osm.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6"></osm>\n')
    with pytest.raises(InputError, match="holds no OSM element") as err:
        io.read_roads(osm)
    assert "server response" not in str(err.value)


# --------------------------------------------------------------------------- outputs
def test_an_output_name_too_long_for_the_file_system_is_named_before_any_work(tiny, tmp_path):
    out = tmp_path / ("phân loại " * 30 + ".gpkg")
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"], "-o", out)
    assert_clean_error(result, "its name is too long for the file system",
                       "choose a shorter file name")
    fits = tmp_path / ("x" * 200 + ".gpkg")
    with pytest.raises(OutputError, match="too long"):  # its manifest's name would not fit
        io.check_writable(fits.with_name(fits.name + ".manifest.json" * 4))
    io.check_writable(fits)


def test_two_outputs_at_one_path_are_refused_before_any_work(tiny, tmp_path):
    classified = tmp_path / "c.gpkg"
    assert invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                  "-o", classified).exit_code == 0
    out = tmp_path / "out" / "plan.csv"
    result = invoke("plan", classified, "--towers", tiny["sites"], "--sites", 1, "-o", out,
                    "--villages-out", tmp_path / "out" / "." / "plan.csv", "--overwrite")
    assert_clean_error(result, "are the same file, given for two outputs")
    assert not out.exists()


def test_a_shapefile_output_warns_of_the_column_names_it_cuts(tiny, tmp_path):
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "-o", tmp_path / "c.shp")
    assert result.exit_code == 0, result.output
    assert "a Shapefile keeps column names cut to 10 characters (pop_covered_share" in \
        " ".join(result.output.split())
    with pytest.warns(RepairWarning, match="text cut to 254 bytes in note"):
        io.write_table(tiny_villages().assign(note="ừ" * 100), tmp_path / "v.shp")


# --------------------------------------------------------------------------- layout
def test_validate_names_overlapping_villages_and_one_far_from_the_others(tmp_path):
    v = tiny_villages()
    v.loc[1, "geometry"] = v.geometry.iloc[0].buffer(-10)  # the same place, two ids
    v.loc[7, "geometry"] = shapely.affinity.translate(v.geometry.iloc[7], 0, -600_000)
    v.to_file(tmp_path / "v.gpkg")
    text = " ".join(invoke("validate", tmp_path / "v.gpkg").output.split())
    assert "1 pair(s) of villages overlap by more than 10% of the smaller one (0001/0002)" \
        in text
    assert "1 village(s) lie more than 50 km from every other village (0008: 593 km)" in text
    tiny_villages().to_file(tmp_path / "tiled.gpkg")  # neighbours touch: nothing to say
    assert "WARNING" not in invoke("validate", tmp_path / "tiled.gpkg").output


# --------------------------------------------------------------------------- amounts
@pytest.mark.parametrize(("text", "amount"), [
    ("20.000.000.000", 20e9), ("20,000,000,000", 20e9), ("1,5 tỷ", 1.5e9), ("1.5bn", 1.5e9),
    ("20.000.000,5", 20_000_000.5), ("40,000", 40_000.0), ("40e9", 40e9), ("500M", 5e8),
    ("1.5", 1.5), ("1.50", 1.5), ("1.5000", 1.5)])
def test_amounts_written_the_vietnamese_or_the_english_way(text, amount):
    assert Amount().convert(text, None, None) == amount


@pytest.mark.parametrize(("text", "why"), [
    ("1,500ty", "',' before three digits and a unit could group thousands or mark decimals"),
    ("1.500", "'.' before three digits could group thousands or mark decimals"),
    ("1.000.00", "'.' groups thousands only in threes"), ("lots", "")])
def test_amounts_that_cannot_be_read_for_sure_are_usage_errors(tiny, text, why):
    result = invoke("plan", tiny["villages"], "--towers", tiny["sites"], "--budget", text,
                    "-o", "never.csv")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{text!r} is not an amount{f' ({why})' if why else ''}; write e.g." in \
        " ".join(result.output.split())


def test_phases_with_decimal_commas_are_separated_by_semicolons():
    assert _amounts("1,5ty;2ty", "--phases") == (["1", "2"], [1.5e9, 2e9])
    assert _amounts("2026=10bn,2027=15bn", "--phases") == (["2026", "2027"], [1e10, 1.5e10])


# --------------------------------------------------------------------------- tests elsewhere
def test_tests_of_another_area_are_warned_of_by_classify_and_validate_once(tiny, tmp_path):
    tests = pd.read_csv(tiny["tests"])
    tests["lon"] += 1.0  # the next province east
    tests.to_csv(tmp_path / "elsewhere.csv", index=False)
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
                    tmp_path / "elsewhere.csv", "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    assert "none of the 12 test(s) lies within the villages' extent" in \
        " ".join(result.output.split())
    report = " ".join(invoke("validate", tiny["villages"], "--measurements",
                             tmp_path / "elsewhere.csv").output.split())
    assert report.count("lies within the villages' extent") == 1, report
    assert "no observation falls inside any village" not in report
    clean = invoke("classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
                   tiny["tests"], "-o", tmp_path / "c2.csv")
    assert "villages' extent" not in clean.output


# --------------------------------------------------------------------------- columns
def test_input_columns_that_classify_writes_are_said_to_be_replaced(tiny, tmp_path):
    first = tmp_path / "c.gpkg"
    assert invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                  "-o", first).exit_code == 0
    again = invoke("classify", first, "--towers", tiny["sites"], "-o", tmp_path / "c2.gpkg")
    assert again.exit_code == 0, again.output
    assert "its column(s) class, reasons, pop_covered_share" in " ".join(again.output.split())
    assert "replaced" not in invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                                    "-o", tmp_path / "c3.gpkg").output
