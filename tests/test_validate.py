"""`covgap validate` and `validate_inputs`: readable report, nothing changed, 1 if unusable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from conftest import tiny_sites, tiny_villages
from coverage.cli import main
from coverage.validate import ValidationReport, validate_inputs


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes' digest and modification time."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            data = Path(p).read_bytes()
            out[p] = (hashlib.sha256(data).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def run(*args) -> object:
    return CliRunner().invoke(main, ["validate", *map(str, args)], catch_exceptions=False)


def test_validate_changes_nothing_and_reports_every_input(tiny, tmp_path):
    before = snapshot(tmp_path)
    result = run(tiny["villages"], "--towers", tiny["sites"], "--measurements", tiny["tests"],
                 "--population", tiny["population"], "--dem", tiny["dem"])
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path) == before  # no file written, none touched
    out = result.output
    assert "12 villages" in out and "analysis CRS would be EPSG:32648" in out
    assert "3 transmitters at 2 sites" in out
    assert "12 observations" in out and "12 inside a village" in out
    assert "120 x 100 cells" in out
    assert out.strip().endswith("nothing was changed.")
    assert "Inputs are usable. (0 error(s), 0 warning(s))" in out


def test_validate_exit_1_names_each_unusable_input_and_keeps_checking(tiny, tmp_path):
    bad_sites = tmp_path / "bad_sites.csv"
    tiny_sites().drop(columns="site_id").to_csv(bad_sites, index=False)
    result = run(tiny["villages"], "--towers", bad_sites, "--dem", tmp_path / "no.tif")
    assert result.exit_code == 1
    assert "lacks required column(s) site_id" in result.output
    assert "no.tif does not exist" in result.output
    assert "2 error(s)" in result.output
    assert "12 villages" in result.output  # the usable input is still described


def test_column_mapping_from_config_and_options(tmp_path):
    v = tiny_villages().rename(columns={"village_id": "MA_THON", "name": "TEN_THON",
                                        "population": "DAN_SO"})
    vpath = tmp_path / "v.gpkg"
    v.to_file(vpath)
    s = tiny_sites().rename(columns={"site_id": "CELL_ID", "tech": "CONG_NGHE"})
    spath = tmp_path / "s.csv"
    s.to_csv(spath, index=False)
    config = tmp_path / "run.toml"
    config.write_text('[columns.villages]\nvillage_id = "MA_THON"\nname = "TEN_THON"\n'
                      'population = "DAN_SO"\n[columns.towers]\nsite_id = "WRONG"\n')
    # the option wins over the config's wrong towers mapping
    result = run(vpath, "--config", config, "--towers", spath, "--col",
                 "towers.site_id=CELL_ID", "--col", "towers.tech=CONG_NGHE")
    assert result.exit_code == 0, result.output
    assert "population column: 8,100 people" in result.output
    assert "3 transmitters at 2 sites" in result.output
    # without the option, the config's mapping is used and refused clearly
    result = run(vpath, "--config", config, "--towers", spath)
    assert result.exit_code == 1
    assert "asks for 'WRONG' as site_id" in result.output
    bad = run(vpath, "--col", "villages.colour=X")
    assert bad.exit_code == 2 and "villages have no column 'colour'" in bad.output


def test_classify_takes_the_column_mapping_too(tiny, tmp_path):
    v = gpd.read_file(tiny["villages"]).rename(columns={"village_id": "MA_THON"})
    vpath = tmp_path / "renamed.gpkg"
    v.to_file(vpath)
    out = tmp_path / "c.csv"
    result = CliRunner().invoke(main, ["classify", str(vpath), "--towers", str(tiny["sites"]),
                                       "--col", "village_id=MA_THON", "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out, dtype={"village_id": str, "MA_THON": str})
    assert list(got["village_id"]) == list(got["MA_THON"])
    assert sorted(got["village_id"]) == sorted(v["MA_THON"])


def test_towers_with_swapped_coordinates_are_found_where_lat_lon_both_fit(tmp_path):
    # villages near the equator in Kenya: a swapped lon/lat (1.0, 36.8) still parses
    v = gpd.GeoDataFrame({"village_id": ["K1", "K2"]},
                         geometry=[box(36.80, 1.00, 36.85, 1.05), box(36.85, 1.00, 36.90, 1.05)],
                         crs=4326)
    vpath = tmp_path / "k.geojson"
    v.to_file(vpath)
    sites = pd.DataFrame({"site_id": ["OK", "SWAP"], "tech": ["4G", "4G"],
                          "lon": [36.82, 1.02], "lat": [1.02, 36.87]})
    spath = tmp_path / "s.csv"
    sites.to_csv(spath, index=False)
    report = validate_inputs(vpath, towers=[spath])
    assert report.ok
    warnings_ = [m for level, _, m in report.items if level == "warning"]
    assert any("left out of the analysis: ['SWAP']" in m for m in warnings_)
    assert any("longitude and latitude swapped" in m and "SWAP" in m for m in warnings_)


def test_report_object_levels_and_text():
    r = ValidationReport()
    r.add("info", "villages a.gpkg", "12 villages")
    r.add("error", "villages a.gpkg", "duplicate ids")
    r.add("warning", "towers", "far")
    assert not r.ok and r.count("error") == 1
    lines = r.text().splitlines()
    assert lines[0] == "villages a.gpkg"
    assert lines[1].startswith("  [ERROR  ]") and lines[2].startswith("  [INFO   ]")
    with pytest.raises(ValueError, match="level"):
        r.add("fatal", "x", "y")
