"""The covgap commands end to end on the tiny province, through click's runner."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from coverage.cli import main

CONTRACT_COLUMNS = ["village_id", "class", "reasons", "population", "pop_covered_share",
                    "pop_indoor_share", "best_tech", "operators", "n_tests",
                    "median_download_mbps", "confidence"]


def run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def classify_args(tiny, out):
    return ["classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
            tiny["tests"], "--population", tiny["population"], "--dem", tiny["dem"], "-o", out]


def test_classify_writes_one_row_per_village_with_contract_columns(tiny, tmp_path):
    out = tmp_path / "classified.gpkg"
    result = run(*classify_args(tiny, out))
    assert result.exit_code == 0, result.output
    got = gpd.read_file(out)
    villages = gpd.read_file(tiny["villages"])
    assert sorted(got["village_id"]) == sorted(villages["village_id"])
    assert got["village_id"].str.startswith("00").all()  # leading zeros survive
    for col in CONTRACT_COLUMNS:
        assert col in got.columns
    assert set(got["class"]) <= {"unavailable", "available_inaccessible", "served"}
    assert "unavailable" in set(got["class"])  # the 2G-only eastern valley
    # Western valley villages next to the 4G site are covered.
    west = got.set_index("village_id").loc["0005"]
    assert west["pop_covered_share"] > 0.9
    assert west["best_tech"] == "4G"
    east = got.set_index("village_id").loc["0008"]
    assert "2g_only" in east["reasons"].split(";")


def test_classify_csv_has_lon_lat_and_text_ids(tiny, tmp_path):
    out = tmp_path / "classified.csv"
    assert run(*classify_args(tiny, out)).exit_code == 0
    df = pd.read_csv(out, dtype={"village_id": str})
    assert {"lon", "lat"} <= set(df.columns)
    assert df["village_id"].iloc[0] == "0001"
    assert df["lat"].between(22, 23).all()


def test_existing_output_is_not_overwritten(tiny, tmp_path):
    out = tmp_path / "classified.csv"
    out.write_text("keep me")
    result = run(*classify_args(tiny, out))
    assert result.exit_code == 1
    assert "--overwrite" in result.output
    assert out.read_text() == "keep me"
    assert run(*classify_args(tiny, out), "--overwrite").exit_code == 0
    assert out.read_text() != "keep me"


def test_missing_file_is_one_readable_error_without_traceback(tmp_path):
    result = run("classify", tmp_path / "nope.gpkg", "--towers", tmp_path / "t.csv",
                 "-o", tmp_path / "o.gpkg")
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_plan_needs_budget_or_sites(tiny, tmp_path):
    result = CliRunner().invoke(main, ["plan", str(tiny["villages"]), "--towers",
                                       str(tiny["sites"]), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2
    assert "--budget" in result.output


def test_plan_after_classify(tiny, tmp_path):
    classified = tmp_path / "classified.gpkg"
    assert run(*classify_args(tiny, classified)).exit_code == 0
    plan, prio = tmp_path / "plan.csv", tmp_path / "priority.csv"
    result = run("plan", classified, "--towers", tiny["sites"], "--population",
                 tiny["population"], "--dem", tiny["dem"], "--sites", 2, "-o", plan,
                 "--villages-out", prio)
    assert result.exit_code == 0, result.output
    sites = pd.read_csv(plan)
    assert list(sites.columns[:11]) == ["rank", "site_id", "lon", "lat", "kind", "tech",
                                        "cost", "pop_gain", "cum_pop_gain", "cum_cost",
                                        "villages"]
    assert 1 <= len(sites) <= 2
    assert sites["pop_gain"].iloc[0] > 0
    assert (sites["cum_cost"].diff().dropna() > 0).all()
    pr = pd.read_csv(prio, dtype={"village_id": str})
    assert sorted(pr["village_id"]) == sorted(gpd.read_file(tiny["villages"])["village_id"])
    assert list(pr["priority"]) == list(range(1, len(pr) + 1))


@pytest.mark.parametrize("command", ["demo", "classify", "plan", "map", "validate"])
def test_every_command_explains_itself_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_validate_reports_and_exits_1_on_duplicate_ids(tiny, tmp_path):
    v = gpd.read_file(tiny["villages"])
    v.loc[1, "village_id"] = v.loc[0, "village_id"]
    bad = tmp_path / "dup.gpkg"
    v.to_file(bad)
    result = run("validate", bad, "--towers", tiny["sites"])
    assert result.exit_code == 1
    assert "duplicate" in result.output
    ok = run("validate", tiny["villages"], "--towers", tiny["sites"], "--population",
             tiny["population"])
    assert ok.exit_code == 0, ok.output
    assert "usable" in ok.output


def test_dem_tiles_side_by_side_give_the_single_dems_results(tiny, tmp_path):
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from conftest import write_tif

    # the tiny DEM cut in two tiles at x = 506 km, on the ridge
    with rasterio.open(tiny["dem"]) as src:
        dem, transform = src.read(1), src.transform
    half = dem.shape[1] // 2
    west, east = tmp_path / "west.tif", tmp_path / "east.tif"
    write_tif(west, dem[:, :half].copy(), transform, "EPSG:32648")
    write_tif(east, dem[:, half:].copy(),
              rasterio.windows.transform(Window(half, 0, half, dem.shape[0]), transform),
              "EPSG:32648")
    whole, tiled = tmp_path / "whole.csv", tmp_path / "tiled.csv"
    assert run(*classify_args(tiny, whole)).exit_code == 0
    args = classify_args(tiny, tiled)
    i = args.index("--dem")
    args[i + 1:i + 2] = [east, "--dem", west]  # in any order
    result = run(*args)
    assert result.exit_code == 0, result.output
    a, b = (pd.read_csv(p, dtype={"village_id": str}) for p in (whole, tiled))
    assert (a["class"] == b["class"]).all()
    np.testing.assert_allclose(a["pop_covered_share"], b["pop_covered_share"])
    # validate reads the tiles the same way
    result = run("validate", tiny["villages"], "--dem", west, "--dem", east)
    assert "DEM " + str(west) + ", " + str(east) in result.output
    assert "120 x 100 cells" in result.output


def test_the_dem_coverage_warning_is_shown_once_per_command() -> None:
    """Each prediction of a run (structures, grid, candidates) logs it; the CLI shows one.

    So too the count of the DEM's voids it filled.
    """
    import logging
    import sys

    import click
    import numpy as np

    from coverage.cli import _reported
    from coverage.model import Grid
    from coverage.model.terrain import _fill_dem_gaps

    grid = Grid.covering((495_000, 2_495_000, 525_000, 2_505_000), 100.0, 32648)
    heights = np.full(grid.shape, 50.0)
    heights[:, grid.shape[1] // 2:] = np.nan  # the DEM covers the west half
    log = logging.getLogger("coverage")

    @click.command()
    @click.pass_context
    def predict_thrice(ctx: click.Context) -> None:
        ctx.obj = {}
        log.handlers[:] = [logging.StreamHandler(sys.stderr)]  # as main() does
        with _reported(ctx):
            for _ in range(3):
                _fill_dem_gaps(heights, grid, grid)

    saved = log.handlers[:], log.level
    try:
        log.setLevel(logging.INFO)
        result = CliRunner().invoke(predict_thrice, [], catch_exceptions=False)
        assert result.output.count("the DEM does not cover") == 1, result.output
        assert result.output.count("void or nodata cell(s) filled") == 1, result.output
        assert not log.handlers[0].filters  # the command's filter is gone after it
        for _ in range(2):  # outside a command (the library alone) every call logs
            _fill_dem_gaps(heights, grid, grid)
    finally:
        log.handlers[:], level = saved
        log.setLevel(level)


def test_a_repair_warning_is_shown_once_per_command() -> None:
    # A stage run twice (the model for the sites, then for the candidates) warns twice.
    import warnings

    import click

    from coverage.cli import _reported
    from coverage.errors import RepairWarning

    @click.command()
    @click.pass_context
    def twice(ctx: click.Context) -> None:
        ctx.obj = {}
        with _reported(ctx):
            for text in ("1 site(s) lie far away", "1 site(s) lie far away", "another"):
                warnings.warn(text, RepairWarning, stacklevel=1)

    result = CliRunner().invoke(twice, [])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: 1 site(s) lie far away") == 1
    assert "warning: another" in result.output
