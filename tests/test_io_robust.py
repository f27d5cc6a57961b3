"""Inputs as a new user meets them: real publishers' formats and bad files, built in code.

Each test names a variation of the input audit (``docs/measurements.md``, "Inputs as they
come") and asserts what the command or the reader now does with it: a clear error that
says what, where and how to fix it, or a repair that is reported while the run goes on.
"""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import tiny_sites, tiny_villages
from coverage import io
from coverage.cli import main
from coverage.errors import InputError, OutputError, RepairWarning


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def opencellid_rows() -> pd.DataFrame:
    """Cells of the tiny province's two sites as OpenCelliD publishes them (MCC 452)."""
    sites = tiny_sites().drop_duplicates("site_id").reset_index(drop=True)
    radios = ["GSM", "UMTS", "LTE", "NR"]
    rows = []
    for i, s in sites.iterrows():
        for k, radio in enumerate(radios):
            rows.append({"radio": radio, "mcc": 452, "net": 4, "area": 1100,
                         "cell": 256 * (100 + i) + k if radio == "LTE" else 20_000 + 10 * i + k,
                         "unit": "", "lon": round(s.lon, 6), "lat": round(s.lat, 6),
                         "range": 500, "samples": 12, "changeable": 1,
                         "created": 1584370346, "updated": 1693271046, "averageSignal": 0})
    return pd.DataFrame(rows, columns=list(io.OPENCELLID_COLUMNS))


# --------------------------------------------------------------------------- gzip
@pytest.mark.parametrize("header", [True, False])
def test_opencellid_gzipped_as_published_is_read_like_the_plain_csv(tmp_path, header):
    cells = opencellid_rows()
    plain, packed = tmp_path / "452.csv", tmp_path / "452.csv.gz"
    cells.to_csv(plain, index=False, header=header)
    with gzip.open(packed, "wt") as fh:
        cells.to_csv(fh, index=False, header=header)
    got, want = io.read_towers(packed), io.read_towers(plain)
    assert set(got["tech"]) == {"2G", "3G", "4G", "5G"}
    pd.testing.assert_frame_equal(got.drop(columns="geometry"), want.drop(columns="geometry"))


def test_gzipped_measurements_are_read(tmp_path):
    tests = pd.DataFrame({"lon": [105.80, 105.81], "lat": [21.0, 21.01], "tech": ["4G", "LTE"],
                          "download_mbps": [12.5, 3.0]})
    with gzip.open(tmp_path / "tests.csv.gz", "wt") as fh:
        tests.to_csv(fh, index=False)
    got = io.read_measurements(tmp_path / "tests.csv.gz")
    assert list(got["download_mbps"]) == [12.5, 3.0] and list(got["tech"]) == ["4G", "4G"]


def test_truncated_gzip_is_refused_as_an_incomplete_download(tmp_path):
    with gzip.open(tmp_path / "full.csv.gz", "wt") as fh:
        opencellid_rows().to_csv(fh, index=False)
    data = (tmp_path / "full.csv.gz").read_bytes()
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="complete"):
        io.read_towers(tmp_path / "cut.csv.gz")


# --------------------------------------------------------------------------- --assume-crs
def test_assume_crs_for_a_shapefile_without_prj_leaves_lon_lat_csvs_in_degrees(tmp_path):
    villages = tiny_villages()  # EPSG:32648 metres
    shp = tmp_path / "villages.shp"
    villages.to_file(shp)
    shp.with_suffix(".prj").unlink()
    sites = tmp_path / "sites_xy.csv"
    tiny_sites().to_csv(sites, index=False)
    result = invoke("validate", shp, "--towers", sites, "--assume-crs", "EPSG:32648")
    assert result.exit_code == 0, result.output
    assert "read as EPSG:4326" in result.output
    with pytest.warns(RepairWarning, match="longitude/latitude degrees"):
        towers = io.read_towers(sites, assume_crs="EPSG:32648")
    expected = tiny_sites()
    assert towers.geometry.x.round(6).tolist() == expected["lon"].round(6).tolist()


def test_assume_crs_still_places_projected_metres_in_a_csv(tmp_path):
    metres = gpd.GeoSeries.from_xy(tiny_sites()["lon"], tiny_sites()["lat"], crs=4326
                                   ).to_crs(32648)
    table = tiny_sites().assign(lon=metres.x.to_numpy(), lat=metres.y.to_numpy())
    table.to_csv(tmp_path / "sites_utm.csv", index=False)
    towers = io.read_towers(tmp_path / "sites_utm.csv", assume_crs="EPSG:32648")
    assert towers.geometry.x.round(5).tolist() == tiny_sites()["lon"].round(5).tolist()


# --------------------------------------------------------------------------- outputs
def test_output_in_a_folder_that_cannot_be_made_is_refused_before_any_work(tiny, tmp_path):
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file where the output folder should be")
    out = blocker / "classified.gpkg"
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"], "-o", out)
    assert result.exit_code == 1
    assert f"{blocker} is a file, not a folder" in result.output
    assert "bug" not in result.output and "Traceback" not in result.output
    with pytest.raises(OutputError, match="not a folder"):
        io.write_table(tiny_villages(), out)
    assert isinstance(OutputError("x"), OSError)


def test_check_writable_makes_the_folder_and_leaves_no_probe_behind(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        io.check_writable(blocker / "sub" / "map.html")
    io.check_writable(tmp_path / "new" / "deeper" / "out.csv")  # made, and writable
    assert (tmp_path / "new" / "deeper").is_dir()
    assert not list((tmp_path / "new" / "deeper").iterdir())  # the probe is gone


# --------------------------------------------------------------------------- settings
def test_config_that_is_not_toml_is_named_as_the_config_not_as_col(tiny, tmp_path):
    bad = tmp_path / "province.toml"
    bad.write_text("[model\nresolution_m = 100\n")
    result = invoke("validate", tiny["villages"], "--config", bad)
    assert result.exit_code == 1, result.output  # an unusable input, not a usage error
    assert f"config file {bad} is not valid TOML" in result.output
    assert "--col" not in result.output


# --------------------------------------------------------------------------- measurements
def test_measurements_of_a_header_only_are_reported_and_the_run_goes_on(tiny, tmp_path):
    header = tmp_path / "tests.csv"
    header.write_text("lon,lat,tech,operator,rsrp_dbm,download_mbps\n")
    with pytest.warns(RepairWarning, match="holds no rows"):
        got = io.read_measurements(header)
    assert got.empty and {"tech", "download_mbps", "weight"} <= set(got.columns)
    out, without = tmp_path / "c.csv", tmp_path / "c0.csv"
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "--measurements", header, "-o", out)
    assert result.exit_code == 0, result.output
    assert "holds no rows (a header only)" in result.output
    assert invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                  "-o", without).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(without))  # as no tests


def test_measurements_of_zero_bytes_are_still_refused_as_an_interrupted_copy(tmp_path):
    empty = tmp_path / "tests.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty \(0 bytes\).*interrupted"):
        io.read_measurements(empty)


# --------------------------------------------------------------------------- operators
def test_opencellid_cells_of_unknown_operator_codes_are_kept_and_reported(tmp_path):
    cells = opencellid_rows()
    cells.loc[:1, "net"] = 99  # a slip in the MNC
    cells.loc[2:2, "mcc"] = 450  # another country's code
    cells.to_csv(tmp_path / "452.csv", index=False)
    with pytest.warns(RepairWarning, match=r"452-99 \(2 cells\), 450-4 \(1 cell\).*Known: "
                                           r"MCC 452 with MNC 1 MobiFone"):
        towers = io.read_towers(tmp_path / "452.csv")
    assert {"452-99", "450-4", "Viettel"} <= set(towers["operator"])


def test_site_table_operators_given_as_mnc_codes_are_named_as_opencellid_names_them(tmp_path):
    codes = ["4", "04", "452-04", "45204", "452-99", "Viettel"]
    sites = pd.concat([tiny_sites().iloc[[0]]] * len(codes), ignore_index=True)
    sites["operator"] = codes
    sites["site_id"] = [f"S{i}" for i in range(len(sites))]
    sites.to_csv(tmp_path / "sites_xy.csv", index=False)
    with pytest.warns(RepairWarning, match="operator code.* 452-99 name no known operator"):
        towers = io.read_towers(tmp_path / "sites_xy.csv")
    expected = ["452-99" if c == "452-99" else "Viettel" for c in sites["operator"]]
    assert towers["operator"].tolist() == expected


def test_unknown_technology_labels_and_text_in_number_columns_are_reported(tmp_path):
    tests = pd.DataFrame({"lon": [105.80, 105.81, 105.82, 105.83, 105.84],
                          "lat": [21.0, 21.0, 21.0, 21.0, 21.0],
                          "tech": ["6G", "wifi", "LTE", "none", "6G"],
                          "download_mbps": ["fast", "12,5", "n/a", "3", ""]})
    tests.to_csv(tmp_path / "tests.csv", index=False)
    for reader in (io.read_measurements,
                   lambda p: pd.concat(io.iter_measurement_columns(p, chunk_rows=2))):
        with pytest.warns(RepairWarning) as caught:
            got = reader(tmp_path / "tests.csv")
        text = " ".join(str(w.message) for w in caught)
        assert "3 with technology labels not known" in text
        assert "'6G' (2), 'wifi' (1)" in text
        assert "1 with text that is not a number in download_mbps: 'fast' (1)" in text
        assert len(got) == 5  # the rows stay, for their other values
        speeds = got["download_mbps"].to_numpy(dtype=float)
        assert np.isnan(speeds[0]) and speeds[1] == 12.5 and np.isnan(speeds[2])


def test_timestamps_that_do_not_parse_are_reported_and_the_rows_kept(tmp_path):
    tests = pd.DataFrame({"lon": [105.80, 105.81, 105.82, 105.83],
                          "lat": [21.0, 21.0, 21.0, 21.0], "tech": "4G",
                          "timestamp": ["2024-03-01T07:17:02+07:00", "yesterday", "",
                                        "yesterday"]})
    tests.to_csv(tmp_path / "tests.csv", index=False)
    with pytest.warns(RepairWarning) as caught:
        got = io.read_measurements(tmp_path / "tests.csv")
    text = " ".join(str(w.message) for w in caught)
    assert "2 with timestamps that do not parse (ISO 8601 expected" in text
    assert "'yesterday' (2)" in text and "tests.csv" in text
    assert len(got) == 4 and got["timestamp"].isna().sum() == 3  # the empty one too
    assert got["timestamp"].iloc[0] == pd.Timestamp("2024-03-01T00:17:02Z")


def test_tests_naming_an_operator_no_tower_has_are_reported_per_file(tiny, tmp_path):
    tests = pd.read_csv(tiny["tests"])
    other = tests.copy()
    other.loc[:2, "operator"] = ["Foo Telecom", "Foo Telecom", "viettel"]
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.warns(RepairWarning) as caught:
        got = io.read_measurements([tiny["tests"], tmp_path / "other.csv"],
                                   operators={"Viettel", "VNPT"})
    text = [str(w.message) for w in caught]
    assert len(text) == 1 and "other.csv: 3 test(s) name an operator no tower has" in text[0]
    assert "'Foo Telecom' (2), 'viettel' (1) (did you mean 'Viettel'?)" in text[0]
    assert "the towers' operators: VNPT, Viettel" in text[0]
    assert len(got) == 2 * len(tests)  # kept, under the name they give
    assert (got["operator"] == "Foo Telecom").sum() == 2
    # through a run: reported, and the output is the one it was (the tests are kept)
    out = tmp_path / "c.csv"
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"],
                    "--measurements", tmp_path / "other.csv", "-o", out)
    assert result.exit_code == 0, result.output
    assert "3 test(s) name an operator no tower has" in result.output
    # no towers, no operator to compare with: nothing said
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepairWarning)
        io.read_measurements(tmp_path / "other.csv")


@pytest.mark.parametrize("reader", ["iter_measurements", "iter_measurement_columns"])
def test_streamed_tests_naming_an_operator_no_tower_has_are_reported_as_read_whole(
        tiny, tmp_path, reader):
    other = pd.read_csv(tiny["tests"])
    other.loc[:2, "operator"] = ["Foo Telecom", "Foo Telecom", "viettel"]
    other.to_csv(tmp_path / "other.csv", index=False)
    towers = {"Viettel", "VNPT"}
    with pytest.warns(RepairWarning) as whole:
        io.read_measurements(tmp_path / "other.csv", operators=towers)
    with pytest.warns(RepairWarning) as streamed:  # in chunks: counted over the whole file
        chunks = list(getattr(io, reader)(tmp_path / "other.csv", chunk_rows=2,
                                          operators=towers))
    assert [str(w.message) for w in streamed] == [str(w.message) for w in whole]
    assert "3 test(s) name an operator no tower has" in str(streamed[0].message)
    assert sum(len(c) for c in chunks) == len(other)  # kept


def test_col_names_the_coordinate_columns_of_towers_tests_and_candidates(tiny, tmp_path):
    sites = pd.read_csv(tiny["sites"]).rename(columns={"lon": "KINH_DO_X", "lat": "VI_DO_Y"})
    sites.to_csv(tmp_path / "sites_xy.csv", index=False)
    tests = pd.read_csv(tiny["tests"]).rename(columns={"lon": "E", "lat": "N"})
    tests.to_csv(tmp_path / "tests_xy.csv", index=False)
    towers = io.read_towers(tmp_path / "sites_xy.csv",
                            columns={"lon": "KINH_DO_X", "lat": "VI_DO_Y"})
    np.testing.assert_allclose(towers.geometry.x, io.read_towers(tiny["sites"]).geometry.x)
    mapped = {"lon": "E", "lat": "N"}
    assert len(io.read_measurements(tmp_path / "tests_xy.csv", columns=mapped)) == len(tests)
    streamed = io.iter_measurement_columns(tmp_path / "tests_xy.csv", columns=mapped)
    assert sum(len(c) for c in streamed) == len(tests)
    got = io.read_candidates(tmp_path / "sites_xy.csv",
                             columns={"lon": "KINH_DO_X", "lat": "VI_DO_Y"})
    assert len(got) == len(sites)
    result = invoke("validate", tiny["villages"], "--towers", tmp_path / "sites_xy.csv",
                    "--measurements", tmp_path / "tests_xy.csv",
                    "--col", "towers.lon=KINH_DO_X", "--col", "towers.lat=VI_DO_Y",
                    "--col", "measurements.lon=E", "--col", "measurements.lat=N")
    assert result.exit_code == 0, result.output
    wrong = invoke("validate", tiny["villages"], "--towers", tmp_path / "sites_xy.csv",
                   "--col", "towers.lon=LONGITUDE_X", "--col", "towers.lat=VI_DO_Y")
    assert wrong.exit_code == 1
    assert "asks for 'LONGITUDE_X' as lon, but the file has no such column" in wrong.output


def test_plan_maps_the_columns_of_its_towers_as_classify_does(tiny, tmp_path):
    sites = pd.read_csv(tiny["sites"]).rename(columns={"site_id": "MA_TRAM", "tech": "CN"})
    sites.to_csv(tmp_path / "renamed.csv", index=False)
    cols = ("--col", "towers.site_id=MA_TRAM", "--col", "towers.tech=CN")
    classified = tmp_path / "classified.gpkg"
    done = invoke("classify", tiny["villages"], "--towers", tmp_path / "renamed.csv", *cols,
                  "--population", tiny["population"], "--dem", tiny["dem"], "-o", classified)
    assert done.exit_code == 0, done.output
    common = ["--population", tiny["population"], "--dem", tiny["dem"], "--sites", 2,
              "--no-manifest"]
    mapped = invoke("plan", classified, "--towers", tmp_path / "renamed.csv", *cols, *common,
                    "-o", tmp_path / "mapped.csv")
    assert mapped.exit_code == 0, mapped.output
    plain = invoke("plan", classified, "--towers", tiny["sites"], *common,
                   "-o", tmp_path / "plain.csv")
    assert plain.exit_code == 0, plain.output
    got = pd.read_csv(tmp_path / "mapped.csv")
    assert len(got) >= 1
    pd.testing.assert_frame_equal(got, pd.read_csv(tmp_path / "plain.csv"))


# --------------------------------------------------------------------------- rasters
def shifted_or_blank(src: Path, dst: Path, *, shift_m: float = 0.0, blank: bool = False
                     ) -> Path:
    import rasterio

    with rasterio.open(src) as r:
        profile, array = r.profile.copy(), r.read(1)
    t = profile["transform"]
    profile["transform"] = rasterio.Affine(t.a, t.b, t.c + shift_m, t.d, t.e, t.f)
    if blank:
        array[:] = profile["nodata"]
    with rasterio.open(dst, "w", **profile) as w:
        w.write(array, 1)
    return dst


@pytest.mark.parametrize(("option", "kind"), [("--population", "population")])
def test_raster_of_another_area_is_refused_naming_both_extents(tiny, tmp_path, option, kind):
    # a DEM of another area is not refused: the run names the tiles to fetch
    # (tests/test_province_sweep.py, "dem-elsewhere")
    away = shifted_or_blank(tiny[kind], tmp_path / f"{kind}_away.tif", shift_m=300_000.0)
    result = invoke("classify", tiny["villages"], "--towers", tiny["sites"], option, away,
                    "-o", tmp_path / "c.gpkg")
    assert result.exit_code == 1, result.output
    assert "does not overlap the villages: raster bounds" in result.output
    assert f"or leave {option} out" in result.output and "Traceback" not in result.output


def test_population_raster_of_nodata_only_is_refused_and_validate_lists_it(tiny, tmp_path):
    blank = shifted_or_blank(tiny["population"], tmp_path / "blank.tif", blank=True)
    result = invoke("validate", tiny["villages"], "--population", blank)
    assert result.exit_code == 1, result.output
    assert "every cell is nodata" in result.output and "[ERROR" in result.output
    good = invoke("validate", tiny["villages"], "--population", tiny["population"])
    assert good.exit_code == 0, good.output


# --------------------------------------------------------------------------- wrong types
def test_text_in_a_villages_or_towers_number_column_is_reported(tmp_path):
    villages = tiny_villages()
    villages["population"] = villages["population"].astype(str)
    villages.loc[1, "population"], villages.loc[2, "population"] = "unknown", "1.234,5"
    villages.to_file(tmp_path / "v.gpkg")
    with pytest.warns(RepairWarning, match=r"2 population value\(s\) are not numbers "
                                           r"\(village_id 0002 'unknown', 0003 '1.234,5'\)"):
        got = io.read_villages(tmp_path / "v.gpkg")
    assert got["population"].isna().sum() == 2 and got["population"].notna().sum() > 2
    sites = tiny_sites().astype({"height_m": object})
    sites.loc[1, "height_m"] = "thirty"
    sites.to_csv(tmp_path / "sites_xy.csv", index=False)
    with pytest.warns(RepairWarning, match=r"height_m value\(s\) are not numbers \(site_id "
                                           r"W1 'thirty'\): read as empty, the default 30 m"):
        towers = io.read_towers(tmp_path / "sites_xy.csv")
    assert towers["height_m"].iloc[1] == 30.0


def test_villages_with_an_empty_geometry_are_told_to_draw_or_delete_it(tmp_path):
    import shapely

    villages = tiny_villages()
    villages.loc[2, "geometry"] = shapely.Polygon()
    villages.to_file(tmp_path / "v.gpkg")
    result = invoke("validate", tmp_path / "v.gpkg")
    assert result.exit_code == 1
    assert "no polygon area (empty; village_id 0003)" in result.output
    assert "draw their boundaries, or delete those features" in result.output


def test_an_output_of_unknown_format_is_refused_before_any_work_with_the_formats(tmp_path):
    result = invoke("classify", tmp_path / "absent.gpkg", "--towers", tmp_path / "absent.csv",
                    "-o", tmp_path / "classified.txt")
    assert result.exit_code == 2  # a usage error, found before reading any input
    assert "unknown table format '.txt'; use .csv, .xlsx, .parquet, .gpkg" in result.output
    result = invoke("classify", tmp_path / "absent.gpkg", "--towers", tmp_path / "absent.csv",
                    "-o", tmp_path / "c.gpkg", "--aggregate-out", tmp_path / "a.gpkg")
    assert result.exit_code == 2 and "use .csv, .xlsx, .parquet" in result.output
