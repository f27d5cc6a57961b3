"""Operators' coverage maps (``--coverage``): reading, refusals, the claimed share, the clause
in the explanation and the claims' agreement with the tests, on the tiny province.

The tiny province's people live along two valley floors (x = 502.5 km and 510 km), evenly
in y; villages are 3 x 3.33 km boxes in four columns (x from 500, 503, 506, 509 km).
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import box

from conftest import HEIGHT_M, X0, Y0, write_tif
from coverage import io
from coverage.classify.claims import claim_clauses, claims_agreement
from coverage.cli import main
from coverage.cli.options import run_file_spec
from coverage.model import Grid
from coverage.params import get_profile
from coverage.settings import read_run_file

EAST = box(X0 + 9000, Y0, X0 + 12000, Y0 + HEIGHT_M)  # the eastern column (2G only)
WEST_SOUTH = box(X0, Y0, X0 + 3000, Y0 + 5000)  # village 0001 and half of 0005


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def classify_args(tiny, out, *extra):
    return ["classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
            tiny["tests"], "--population", tiny["population"], "--dem", tiny["dem"],
            *extra, "-o", out]


def claims_file(path, rows, crs=32648):
    gpd.GeoDataFrame([{"operator": op, "tech": tech, "geometry": geom}
                      for op, tech, geom in rows], crs=crs).to_file(path)
    return path


def east_raster(path):
    """-90 dBm over the eastern column, -120 dBm elsewhere (EPSG:32648, 100 m)."""
    cols, rows = int(12_000 / 100), int(HEIGHT_M / 100)
    level = np.full((rows, cols), -120.0, dtype="float32")
    level[:, 90:] = -90.0
    return write_tif(path, level, from_origin(X0, Y0 + HEIGHT_M, 100, 100), "EPSG:32648")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The tiny province classified without coverage maps: (files, table, manifest)."""
    from conftest import write_tiny

    tmp = tmp_path_factory.mktemp("plain")
    tiny = write_tiny(tmp)
    out = tmp / "plain.csv"
    assert run(*classify_args(tiny, out)).exit_code == 0
    return (tiny, pd.read_csv(out, dtype={"village_id": str}).set_index("village_id"),
            json.loads(out.with_name(out.name + ".manifest.json").read_text()))


@pytest.fixture(scope="module")
def claimed(plain, tmp_path_factory):
    """The same run with two operators' polygons (Viettel in the east, VinaPhone by MNC)."""
    tiny = plain[0]
    tmp = tmp_path_factory.mktemp("claimed")
    maps = claims_file(tmp / "claims.gpkg", [("Viettel", "LTE", EAST),
                                             ("2", "4G", WEST_SOUTH),
                                             ("Viettel", "2G", box(X0, Y0, X0 + 9000, Y0 + 9000))])
    out = tmp / "claimed.csv"
    result = run(*classify_args(tiny, out, "--coverage", maps))
    assert result.exit_code == 0, result.output
    return (pd.read_csv(out, dtype={"village_id": str}).set_index("village_id"),
            json.loads(out.with_name(out.name + ".manifest.json").read_text()))


def test_claimed_share_is_the_best_operator_share_of_people(claimed):
    got = claimed[0]["pop_claimed_share"]
    for vid in ("0004", "0008", "0012"):  # wholly inside Viettel's claim
        assert got[vid] == pytest.approx(1.0)
    assert got["0001"] == pytest.approx(1.0)  # VinaPhone (MNC 2)
    assert got["0005"] == pytest.approx(0.5, abs=0.04)  # y 3.33..6.67 km, claim to 5 km
    for vid in ("0002", "0003", "0009", "0010"):  # 2G claims claim no broadband
        assert got[vid] == pytest.approx(0.0)


def test_claims_never_change_a_class(plain, claimed):
    before, after = plain[1], claimed[0]
    for col in ("class", "reasons", "pop_covered_share", "confidence"):
        pd.testing.assert_series_equal(before[col], after[col])
    assert "pop_claimed_share" not in before.columns
    assert list(after.columns).index("pop_claimed_share") > list(after.columns).index(
        "confidence")  # after the contract's columns


def test_explanation_says_where_claim_and_class_disagree(plain, claimed):
    before, after = plain[1], claimed[0]
    east = after.loc["0008"]
    assert east["class"] == "unavailable"
    assert "operator maps claim broadband for 100% of the people" in east["explanation"]
    assert "bản đồ nhà mạng công bố có băng rộng cho 100% dân" in east["explanation_vi"]
    assert after.loc["0008", "explanation"].endswith(".")
    # a village without a claim keeps its sentence as without maps
    assert after.loc["0002", "explanation"] == before.loc["0002", "explanation"]


def test_manifest_records_how_claims_agree_with_tests(plain, claimed):
    assert "coverage_claims" not in plain[2]
    agree = claimed[1]["coverage_claims"]
    # six no-service tests inside Viettel's eastern claim; six 4G tests at -80..-85 dBm in
    # the west, outside any Viettel claim
    assert agree == {"tests_compared": 12, "tests_left_out": 0, "tests_inside_claims": 6,
                     "inside_found_broadband": 0.0, "tests_outside_claims": 6,
                     "outside_found_none": 0.0}
    assert any(k.startswith("coverage") for k in claimed[1]["inputs"]["files"])


def test_dbm_raster_claims_at_the_outdoor_threshold(plain, tmp_path):
    tiny = plain[0]
    raster = east_raster(tmp_path / "Viettel_4G.tif")
    out = tmp_path / "raster.csv"
    assert run(*classify_args(tiny, out, "--coverage", raster)).exit_code == 0
    got = pd.read_csv(out, dtype={"village_id": str}).set_index("village_id")
    assert got.loc[["0004", "0008", "0012"], "pop_claimed_share"].tolist() == [1.0] * 3
    assert (got.loc[["0001", "0002", "0003"], "pop_claimed_share"] == 0).all()
    # the option repeated: a raster and polygons together, the best operator per village
    maps = claims_file(tmp_path / "west.gpkg", [("MobiFone", "4G", WEST_SOUTH)])
    assert run(*classify_args(tiny, out, "--coverage", raster, "--coverage", maps,
                              "--overwrite")).exit_code == 0
    both = pd.read_csv(out, dtype={"village_id": str}).set_index("village_id")
    assert both.loc[["0001", "0004", "0002"], "pop_claimed_share"].tolist() == [1.0, 1.0, 0.0]


def test_reader_forms_and_names(tmp_path):
    vec = claims_file(tmp_path / "c.geojson", [("04", "umts", EAST)], crs=32648)
    maps = io.read_coverage_maps([vec, east_raster(tmp_path / "452-01_NR.tif")])
    assert maps.polygons[["operator", "tech"]].values.tolist() == [["Viettel", "3G"]]
    assert maps.polygons.crs.to_epsg() == 4326
    assert [(op, tech) for op, tech, _ in maps.rasters] == [("MobiFone", "5G")]
    assert maps.operators == ["MobiFone", "Viettel"]


def test_col_maps_the_columns_of_coverage_maps(tiny, tmp_path):
    path = tmp_path / "c.gpkg"
    gpd.GeoDataFrame([{"NHA_MANG": "Viettel", "CONG_NGHE": "LTE", "geometry": EAST}],
                     crs=32648).to_file(path)
    maps = io.read_coverage_maps(path, columns={"operator": "NHA_MANG", "tech": "CONG_NGHE"})
    assert maps.polygons[["operator", "tech"]].values.tolist() == [["Viettel", "4G"]]
    cols = ("--col", "coverage.operator=NHA_MANG", "--col", "coverage.tech=CONG_NGHE")
    checked = run("validate", tiny["villages"], "--coverage", path, *cols)
    assert checked.exit_code == 0, checked.output
    assert "1 polygon(s), 0 raster(s) of dBm; operators Viettel" in checked.output
    unmapped = run("validate", tiny["villages"], "--coverage", path)
    assert unmapped.exit_code == 1 and "--col coverage.operator=COLUMN" in unmapped.output
    config = tmp_path / "columns.toml"  # the config's [columns.coverage] table alike
    config.write_text('[columns.coverage]\noperator = "NHA_MANG"\ntech = "CONG_NGHE"\n',
                      encoding="utf-8")
    assert io.column_mapping(config)["coverage"] == {"operator": "NHA_MANG",
                                                     "tech": "CONG_NGHE"}


def test_plan_takes_coverage_maps_and_says_it_does_not_read_them(plain, tmp_path):
    tiny, _, _ = plain
    classified = tmp_path / "classified.gpkg"
    assert run(*classify_args(tiny, classified)).exit_code == 0
    maps = tmp_path / "not-a-map.gpkg"  # never read: a plan does not use claims
    args = ["plan", classified, "--towers", tiny["sites"], "--population", tiny["population"],
            "--dem", tiny["dem"], "--sites", 1, "--no-manifest"]
    with_maps = run(*args, "--coverage", maps, "-o", tmp_path / "a.csv")
    assert with_maps.exit_code == 0, with_maps.output
    assert "not read: the plan does not use operators' coverage maps" in with_maps.output
    assert "covgap classify compares them" in with_maps.output
    assert run(*args, "-o", tmp_path / "b.csv").exit_code == 0
    got = pd.read_csv(tmp_path / "a.csv")
    assert len(got) == 1
    pd.testing.assert_frame_equal(got, pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_dbm_raster_claims_what_nearest_resampling_then_the_threshold_claim(dtype):
    from pyproj import CRS

    from coverage.model.grid import to_grid

    rng = np.random.default_rng(5)
    level = rng.uniform(-125, -95, (240, 300)).astype(dtype)
    level[rng.random(level.shape) < 0.1] = np.nan  # nodata claims nothing
    level[0, :10] = np.float32(-100.3)  # its float32 rounding is below -100.3: unclaimed
    raster = io.Raster(level, from_origin(105.0, 21.3, 0.0008, 0.0008), CRS.from_epsg(4326))
    grid = Grid.covering((490_000, 2_335_000, 520_000, 2_365_000), 70.0,
                         CRS.from_epsg(32648), pad_m=2000)  # wider than the raster
    for threshold in (-110.0, -109.7, -100.3):
        got = io.claimed_cells(raster, threshold, transform=grid.transform,
                               shape=grid.shape, crs=grid.crs)
        level_on_grid = np.nan_to_num(to_grid(raster, grid, resampling="nearest"),
                                      nan=-np.inf)
        assert got.dtype == np.uint8 and got.shape == grid.shape
        np.testing.assert_array_equal(got, level_on_grid >= threshold)
        assert 0 < got.sum() < got.size


def test_a_dbm_raster_is_claimed_without_a_float64_copy_of_it_or_of_the_grid():
    import tracemalloc

    from pyproj import CRS

    level = np.full((2000, 1000), -100.0, dtype="float32")  # 8 MB; 16 MB in float64
    raster = io.Raster(level, from_origin(500_000, 2_400_000, 50, 50), CRS.from_epsg(32648))
    grid = Grid.covering((500_000, 2_300_000, 550_000, 2_400_000), 50.0,
                         CRS.from_epsg(32648))  # 2e6 cells: 16 MB a float64 layer
    tracemalloc.start()
    try:
        claimed = io.claimed_cells(raster, -110.0, transform=grid.transform,
                                   shape=grid.shape, crs=grid.crs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert claimed.all()
    # the mask and the result, a byte a cell each, and the warper's copy of one of them
    assert peak < 2 * (raster.array.size + claimed.size), peak


@pytest.mark.parametrize(("rows", "name", "said"), [
    ([{"operator": "Viettel", "geometry": EAST}], "c.gpkg", "lacks required column(s) tech"),
    ([{"operator": "Viettel", "tech": "6G", "geometry": EAST}], "c.gpkg", "unknown tech"),
    ([{"operator": "Viettel", "tech": "4G", "geometry": box(0, 0, 1000, 1000)}], "c.gpkg",
     "does not overlap the villages"),
    (None, "coverage.tif", "<operator>_<tech>.tif"),
])
def test_bad_maps_are_refused_clearly(tiny, tmp_path, rows, name, said):
    path = tmp_path / name
    if rows is None:
        east_raster(path)
    else:
        gpd.GeoDataFrame(rows, crs=32648).to_file(path)
    result = run(*classify_args(tiny, tmp_path / "o.csv", "--coverage", path))
    assert result.exit_code == 1
    assert said in result.output
    assert "Traceback" not in result.output
    checked = run("validate", tiny["villages"], "--towers", tiny["sites"], "--coverage", path)
    assert checked.exit_code == 1
    assert said in checked.output


def test_validate_describes_good_maps(tiny, tmp_path):
    maps = claims_file(tmp_path / "c.gpkg", [("Viettel", "4G", EAST)])
    result = run("validate", tiny["villages"], "--coverage", maps)
    assert result.exit_code == 0, result.output
    assert "1 polygon(s), 0 raster(s) of dBm; operators Viettel" in result.output


def test_run_file_reads_coverage(tiny, tmp_path):
    maps = claims_file(tmp_path / "c.gpkg", [("Viettel", "4G", EAST)])
    toml = tmp_path / "run.toml"
    toml.write_text(f'[inputs]\nvillages = "{tiny["villages"]}"\ntowers = "{tiny["sites"]}"\n'
                    f'coverage = ["{maps}"]\n', encoding="utf-8")
    assert read_run_file(toml).inputs.coverage == (maps,)
    more = tmp_path / "more.gpkg"
    spec = run_file_spec(toml, coverage=(more,))  # covgap run --coverage adds to the file's
    assert spec.inputs.coverage == (maps, more)


def test_clause_only_where_claimed_and_unavailable():
    classes = pd.Series(["unavailable", "unavailable", "served"])
    en, vi = claim_clauses(classes, pd.Series([0.5, 0.49, 0.9]))
    assert en.tolist()[1:] == ["", ""] and vi.tolist()[1:] == ["", ""]
    assert "50% of the people" in en[0] and "50% dân" in vi[0]


def test_agreement_compares_each_test_with_its_own_operator():
    grid = Grid(from_origin(0, 200, 100, 100), (2, 2), "EPSG:32648")
    layers = {"A": np.array([[1, 1], [0, 0]], "uint8"),
              "B": np.array([[0, 0], [0, 1]], "uint8")}
    tests = gpd.GeoDataFrame(
        {"operator": ["A", "A", "A", "B", None, "C", None],
         "tech": ["4G", "4G", "none", "2G", "4G", "4G", None],
         "rsrp_dbm": [-90.0, -115.0, np.nan, -70.0, -90.0, -90.0, np.nan]},
        geometry=gpd.points_from_xy([50, 150, 50, 150, 50, 50, 50],
                                    [150, 150, 50, 50, 50, 150, 150]),
        crs=32648)
    got = claims_agreement(tests, layers, grid, get_profile("vn-2025"))
    # A inside: found, below -110 (not found); A outside: none; B inside: 2G (not found);
    # unnamed at (50, 50): outside the union, found broadband; C has no map, and an Ookla
    # tile's average has no technology: left out
    assert got == {"tests_compared": 5, "tests_left_out": 2, "tests_inside_claims": 3,
                   "inside_found_broadband": pytest.approx(1 / 3, abs=1e-4),
                   "tests_outside_claims": 2, "outside_found_none": 0.5}
