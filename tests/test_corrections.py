"""Field-check corrections: reading, refusing bad rows, applying with provenance."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import box

from coverage.classify import classify_villages, read_corrections
from coverage.errors import InputError, SchemaError
from coverage.model import CoverageSurfaces, Grid

CRS_UTM = CRS.from_epsg(32648)


def three_villages():
    """Villages 001 (covered at -90 dBm), 002 (no signal) and 003 (covered, -90 dBm)."""
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 30), CRS_UTM)
    level = np.full(grid.shape, -90.0, "float32")
    level[:, 10:20] = np.nan
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    villages = gpd.GeoDataFrame(
        {"village_id": ["001", "002", "003"], "population": [100, 200, 300]},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(2000, 0, 3000, 1000)],
        crs=CRS_UTM)
    return villages, surfaces


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corrections.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_class_correction_overrides_with_provenance(tmp_path):
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,class,source,date,note\n"
        "001,unavailable,Sở TT&TT,2025-09-30,no signal at the school\n")))
    out = classify_villages(villages, surfaces, corrections=fixes)
    row = out.set_index("village_id").loc["001"]
    assert row["class"] == "unavailable"
    assert row["class_original"] == "served"
    assert row["confidence"] == 1.0 and row["confidence_original"] < 1.0
    assert row["corrected"] and row["correction_kind"] == "class"
    assert row["correction_source"] == "Sở TT&TT" and row["correction_date"] == "2025-09-30"
    assert row["correction_note"] == "no signal at the school"
    # the metrics say coverage is full, so the forced class takes the partial reason
    assert row["reasons"] == "partial_coverage"
    assert "corrected by Sở TT&TT on 2025-09-30" in row["explanation"]
    others = out.set_index("village_id").loc[["002", "003"]]
    assert not others["corrected"].any()
    assert (others["class"] == others["class_original"]).all()
    assert len(out) == 3 and list(out["village_id"]) == ["001", "002", "003"]


def test_class_correction_keeps_the_files_reasons(tmp_path):
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,class,reasons,source,date\n"
        "003,available_inaccessible,measured_no_service,field,2025-10-01\n")))
    row = classify_villages(villages, surfaces, corrections=fixes).iloc[2]
    assert row["class"] == "available_inaccessible"
    assert row["reasons"] == "measured_no_service"


def test_inaccessible_correction_without_any_reason_is_refused(tmp_path):
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,class,source,date\n003,available_inaccessible,field,2025-10-01\n")))
    with pytest.raises(InputError, match="reasons column"):
        classify_villages(villages, surfaces, corrections=fixes)


@pytest.mark.parametrize(("share", "klass"), [(0.499, "unavailable"), (0.501, "served")])
def test_evidence_correction_reapplies_the_rules(tmp_path, share, klass):
    """A field survey of the covered share decides the class at the threshold's edge."""
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,pop_covered_share,pop_indoor_share,n_tests,source,date\n"
        f"002,{share},{share},20,drive test,2025-10-02\n")))
    row = classify_villages(villages, surfaces, corrections=fixes).iloc[1]
    assert row["class_original"] == "unavailable"
    assert row["class"] == klass
    assert row["pop_covered_share"] == pytest.approx(share)
    assert row["n_tests"] == 20
    assert row["correction_kind"] == "evidence"
    assert row["confidence"] < 1.0  # the rules decided, with their usual doubt


@pytest.mark.parametrize(("n", "klass"), [(4, "served"), (5, "available_inaccessible")])
def test_corrected_speed_needs_the_minimum_tests(tmp_path, n, klass):
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,median_download_mbps,n_tests,source,date\n"
        f"003,2.0,{n},field,2025-10-02\n")))
    row = classify_villages(villages, surfaces, corrections=fixes).iloc[2]
    assert row["class"] == klass
    assert row["median_download_mbps"] == 2.0
    assert ("slow_speed" in row["reasons"]) is (klass != "served")


def test_unknown_village_is_refused_clearly(tmp_path):
    villages, surfaces = three_villages()
    fixes = read_corrections(write(tmp_path, (
        "village_id,class,source,date\n1,served,field,2025-10-02\n")))
    with pytest.raises(InputError, match=r"not among the 3 villages: 1\b.*leading zeros"):
        classify_villages(villages, surfaces, corrections=fixes)


@pytest.mark.parametrize(("body", "message"), [
    ("village_id,class,date\n001,served,2025-01-01\n", "lacks column"),
    ("village_id,class,source,date\n001,served,,2025-01-01\n", "empty source"),
    ("village_id,class,source,date\n001,served,x,30/09/2025\n", "ISO 8601"),
    ("village_id,class,source,date\n001,covered,x,2025-01-01\n", "a class other than"),
    ("village_id,pop_covered_share,source,date\n001,60,x,2025-01-01\n", "percentages"),
    ("village_id,source,date\n001,x,2025-01-01\n", "nothing to correct"),
    ("village_id,class,reasons,source,date\n001,served,no_signal,x,2025-01-01\n",
     "do not fit"),
    ("village_id,class,source,date\n001,served,x,2025-01-01\n001,unavailable,y,2025-01-01\n",
     "one date"),
])
def test_bad_corrections_are_refused_with_their_line(tmp_path, body, message):
    with pytest.raises(SchemaError, match=message):
        read_corrections(write(tmp_path, body))


def test_latest_correction_of_a_village_wins(tmp_path):
    fixes = read_corrections(write(tmp_path, (
        "village_id,class,source,date\n"
        "001,served,second round,2025-10-01\n001,unavailable,first round,2025-07-01\n")))
    assert len(fixes) == 1
    assert fixes.loc["001", "class"] == "served"
    assert fixes.loc["001", "source"] == "second round"


def test_no_corrections_leaves_the_output_unchanged():
    villages, surfaces = three_villages()
    out = classify_villages(villages, surfaces)
    assert "corrected" not in out.columns
    assert "class_original" not in out.columns


def test_cli_corrections_then_diff_names_the_correction(tiny, tmp_path):
    """classify, classify again with a field check, diff: the correction is the cause."""
    from click.testing import CliRunner

    from coverage.cli import main

    def classify(out, *extra):
        args = ["classify", tiny["villages"], "--towers", tiny["sites"], "--population",
                tiny["population"], "--dem", tiny["dem"], "-o", out, *extra]
        return CliRunner().invoke(main, [str(a) for a in args])

    before, after = tmp_path / "q2.csv", tmp_path / "q3.csv"
    assert classify(before).exit_code == 0
    fixes = write(tmp_path, "village_id,class,source,date\n0005,unavailable,Sở TT&TT,"
                            "2025-09-30\n")
    res = classify(after, "--corrections", fixes)
    assert res.exit_code == 0, res.output
    assert "Corrections applied to 1 village(s)" in res.output
    table = pd.read_csv(after, dtype={"village_id": str}).set_index("village_id")
    assert table.loc["0005", "class"] == "unavailable"
    assert table.loc["0005", "correction_source"] == "Sở TT&TT"
    res = CliRunner().invoke(main, ["diff", str(before), str(after)])
    assert res.exit_code == 0, res.output
    assert "correction: 1" in res.output
    assert "0005" in res.output and "field correction by Sở TT&TT" in res.output


def test_cli_refuses_an_unknown_village_before_modelling(tiny, tmp_path):
    from click.testing import CliRunner

    from coverage.cli import main

    fixes = write(tmp_path, "village_id,class,source,date\n5,served,x,2025-09-30\n")
    res = CliRunner().invoke(main, ["classify", str(tiny["villages"]), "--towers",
                                    str(tiny["sites"]), "--corrections", str(fixes), "-o",
                                    str(tmp_path / "o.csv")])
    assert res.exit_code == 1
    assert "not among the" in res.output and "leading zeros" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.csv").exists()
