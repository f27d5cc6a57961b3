"""covgap diff: every village once, class changes and their inferred causes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from coverage.cli import main
from coverage.diff import diff_classified, diff_summary
from coverage.errors import SchemaError


def run(**over) -> pd.DataFrame:
    """A classified table of villages a..f; keyword lists replace columns."""
    base = {
        "village_id": ["a", "b", "c", "d", "e", "f"],
        "name": ["Nà Lốc", "Khuổi Bon", "Pác Bó", "Lũng Cú", "Sín Chải", "Tả Van"],
        "class": ["unavailable"] * 3 + ["served", "available_inaccessible", "served"],
        "reasons": ["no_signal", "partial_coverage", "2g_only", "", "weak_signal", ""],
        "population": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
        "pop_covered_share": [0.0, 0.3, 0.2, 0.9, 0.8, 0.95],
        "pop_indoor_share": [0.0, 0.1, 0.1, 0.8, 0.3, 0.9],
        "best_tech": [None, "3G", "4G", "4G", "4G", "4G"],
        "operators": [0, 1, 1, 2, 1, 3],
        "nearest_site_km": [12.0, 6.0, 5.0, 1.0, 2.0, 0.5],
        "n_tests": [0, 0, 2, 10, 0, 4],
        "median_download_mbps": [np.nan, np.nan, 3.0, 20.0, np.nan, 30.0],
        "confidence": [0.8] * 6,
    }
    base.update(over)
    return pd.DataFrame(base)


def test_causes_are_inferred_from_the_columns():
    old = run()
    new = run(**{
        # a: new 4G site; b: 8 new tests; c: field correction; d: rules moved; e: model moved
        "class": ["served", "served", "served", "available_inaccessible",
                  "unavailable", "served"],
        "best_tech": ["4G", "3G", "4G", "4G", "4G", "4G"],
        "operators": [1, 1, 1, 2, 1, 3],
        "nearest_site_km": [1.5, 6.0, 5.0, 1.0, 2.0, 0.5],
        "n_tests": [0, 8, 2, 10, 0, 4],
        "pop_covered_share": [0.9, 0.7, 0.2, 0.9, 0.4, 0.95],
    })
    new["correction_source"] = [None, None, "Sở TT&TT", None, None, None]
    new["correction_date"] = [None, None, "2025-09-30", None, None, None]
    d = diff_classified(old, new).set_index("village_id")
    assert d.loc["a", "causes"] == "new_site"
    assert "operators 0→1" in d.loc["a", "why"] and "12.0 km→1.5 km" in d.loc["a", "why"]
    assert d.loc["b", "causes"] == "new_measurements"
    assert d.loc["c", "causes"] == "correction"
    assert "Sở TT&TT on 2025-09-30" in d.loc["c", "why"]
    assert d.loc["d", "causes"] == "rules_change"
    assert d.loc["e", "causes"] == "coverage_change"
    assert d.loc["f", "change"] == "unchanged" and d.loc["f", "causes"] == ""
    assert list(d["direction"]) == ["improved"] * 3 + ["worsened"] * 2 + [""]


def test_every_village_of_either_run_appears_once():
    old = run().iloc[[0, 1, 2, 3]]
    new = run().iloc[[2, 3, 4, 5]].assign(**{"class": ["served"] * 4})
    d = diff_classified(old, new)
    assert sorted(d["village_id"]) == list("abcdef")
    assert not d["village_id"].duplicated().any()
    by = d.set_index("village_id")["change"]
    assert by[["a", "b"]].eq("removed").all() and by[["e", "f"]].eq("added").all()
    assert by["c"] == "changed" and by["d"] == "unchanged"
    assert d.set_index("village_id").loc["a", "name"] == "Nà Lốc"  # from the old run


def test_summary_counts_and_lists():
    old = run()
    new = run(**{"class": ["served", *list(run()["class"][1:])],
                 "operators": [2, 1, 1, 2, 1, 3]})
    text = diff_summary(diff_classified(old, new))
    assert text.startswith("6 villages: 1 changed class (1 improved, 0 worsened), 5 unchanged")
    assert "unavailable → served: 1" in text
    assert "new_site: 1" in text
    assert "unavailable: 600 → 500" in text  # people


def test_duplicate_ids_are_refused():
    with pytest.raises(SchemaError, match="duplicate"):
        diff_classified(run(village_id=list("aabcde")), run())


def test_cli_diff_round_trip(tmp_path):
    geoms = [box(i, 0, i + 1, 1) for i in range(6)]
    old = gpd.GeoDataFrame(run(), geometry=geoms, crs=4326)
    new = old.assign(**{"class": ["served", *list(old["class"][1:])],
                        "n_tests": [6, 0, 2, 10, 0, 4]})
    old.to_file(tmp_path / "old.gpkg")
    new.drop(columns="geometry").assign(village_id=["a", "b", "c", "d", "e", "g"]).to_csv(
        tmp_path / "new.csv", index=False)
    out = tmp_path / "changes.csv"
    res = CliRunner().invoke(main, ["diff", str(tmp_path / "old.gpkg"),
                                    str(tmp_path / "new.csv"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 changed class" in res.output and "1 added" in res.output
    table = pd.read_csv(out, dtype={"village_id": str})
    assert sorted(table["village_id"]) == list("abcdefg")
    assert table.set_index("village_id").loc["a", "causes"] == "new_measurements"
    again = CliRunner().invoke(main, ["diff", str(tmp_path / "old.gpkg"),
                                      str(tmp_path / "new.csv"), "-o", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_cli_diff_refuses_a_table_without_classes(tmp_path):
    pd.DataFrame({"village_id": ["a"]}).to_csv(tmp_path / "x.csv", index=False)
    res = CliRunner().invoke(main, ["diff", str(tmp_path / "x.csv"), str(tmp_path / "x.csv")])
    assert res.exit_code == 1
    assert "lacks class" in res.output and "Traceback" not in res.output
