"""Tests for the summary report, its figures and the `covgap report` command."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from coverage import maps
from coverage.cli import main
from coverage.errors import SchemaError
from test_maps import XSS, make_plan, make_villages


def _plan() -> gpd.GeoDataFrame:
    p = make_plan().sort_values("rank").reset_index(drop=True)
    p["cum_cost"] = p["cost"].cumsum()
    p["cum_pop_gain"] = p["pop_gain"].cumsum()
    return p


def _fibre_near_first_row() -> gpd.GeoDataFrame:
    # villages are 1 km squares from (500 km, 2400 km); this line runs 200 m south of row 0
    return gpd.GeoDataFrame(
        geometry=[shapely.LineString([(500_000, 2_399_800), (505_000, 2_399_800)])],
        crs="EPSG:32648",
    )


def test_class_table_counts_people_and_shares() -> None:
    v = make_villages(20)
    t = maps.class_table(v)
    assert list(t.index) == ["unavailable", "available_inaccessible", "served", "unknown"]
    assert t["villages"].tolist() == [5, 5, 5, 5]
    pop = v["population"].fillna(0)
    assert t.loc["served", "people"] == pytest.approx(pop[v["class"] == "served"].sum())
    assert t["people_share"].sum() == pytest.approx(1.0)
    with pytest.raises(SchemaError):
        maps.class_table(v.drop(columns="class"))


def test_targets_measure_broadband_and_fibre() -> None:
    v = make_villages(25)  # 5 x 5 grid
    v["households"] = 10.0
    t = {(x.key, x.year): x for x in maps.targets(v, fibre=_fibre_near_first_row())}
    known = v["class"].notna()
    reached = (v["class"] != "unavailable") & known
    assert t[("broadband_villages", None)].value == pytest.approx(reached.sum() / known.sum())
    # fibre reaches the first row of 5 villages only: 50 of 250 households
    f25 = t[("fibre_households", 2025)]
    assert f25.value == pytest.approx(50 / 250) and f25.goal == 0.8
    assert f25.note == "fibre_proximity"
    assert t[("fibre_households", 2030)].goal == 1.0
    # a fibre_households column wins over proximity, capped by households
    v["fibre_households"] = 20.0
    f = next(x for x in maps.targets(v, fibre=_fibre_near_first_row()) if x.year == 2025)
    assert f.value == pytest.approx(1.0) and f.note == "fibre_column"


def test_targets_say_what_is_missing() -> None:
    v = make_villages(8)
    notes = {(x.key, x.year): x for x in maps.targets(v)}
    assert notes[("fibre_households", 2025)].value is None
    assert notes[("fibre_households", 2025)].note == "no_households"
    v["households"] = 5
    no_fibre = [x for x in maps.targets(v) if x.key == "fibre_households"]
    assert all(x.value is None and x.note == "no_fibre" for x in no_fibre)


def test_report_content_vi(tmp_path: Path) -> None:
    v = make_villages(30)
    v["households"] = 10.0
    sweep = pd.DataFrame({"budget": [5e5, 1e5, 2e5], "people_connected": [420, 200, 380]})
    out = maps.write_report(
        v, tmp_path / "r.html", plan=_plan(), fibre=_fibre_near_first_row(), sweep=sweep,
        title="Tỉnh <Lào Cai>", date=dt.date(2025, 7, 1),
    )
    page = out.read_text(encoding="utf-8")
    assert "<h1>Tỉnh &lt;Lào Cai&gt;</h1>" in page
    assert "2025-07-01" in page
    # no script, no external resource, images embedded
    assert "<script" not in page
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 2  # map, cost curve
    # the malicious village name is text only
    assert XSS not in page and "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in page
    # class table: 8 unavailable villages of 30, in Vietnamese number format
    assert "Chưa có băng rộng di động</td><td class=\"n\">8</td>" in page
    assert "Cáp quang đến hộ gia đình (2025)" in page and "80,0%" in page
    assert "cách tuyến/điểm cáp quang dưới 500 m" in page
    # first sites in build order, with translated kinds
    assert page.index("S-01") < page.index("S-02")
    assert "Trạm mới" in page and "Nâng cấp" in page
    assert "Thôn/bản ưu tiên" in page and "Theo từng mức ngân sách" not in page  # in the PNG


def test_report_without_plan_or_households_says_so(tmp_path: Path) -> None:
    v = make_villages(12).drop(columns="population")
    page = maps.summary_report(v, lang="en")
    assert "No plan given (--plan)" in page
    assert "no households column: not measured" in page
    assert "No population: shares are of villages." in page
    assert page.count('<img src="data:image/png') == 1  # the map only, no curve
    # priority list from the classes: unavailable villages first
    first = re.search(r"Priority villages</h2><table>.*?<tbody><tr>(.*?)</tr>", page).group(1)
    assert "title=\"No mobile broadband\"" in first


def test_report_cost_curve_needs_columns() -> None:
    with pytest.raises(SchemaError, match="money column"):
        maps.summary_report(make_villages(4), sweep=pd.DataFrame({"x": [1], "y": [2]}))


def _classified_file(tmp_path: Path) -> Path:
    v = make_villages(24)
    v["province"] = np.where(np.arange(24) % 5 < 2, "Lào Cai", "Hà Giang")
    path = tmp_path / "classified.gpkg"
    v.to_file(path)
    return path


def test_cli_report(tmp_path: Path) -> None:
    classified = _classified_file(tmp_path)
    plan = tmp_path / "plan.csv"
    p = _plan()
    p.assign(lon=p.to_crs(4326).geometry.x, lat=p.to_crs(4326).geometry.y).drop(
        columns="geometry"
    ).to_csv(plan, index=False)
    out = tmp_path / "reports" / "r.html"
    args = ["report", str(classified), "--plan", str(plan), "--lang", "en", "--title", "Test",
            "-o", str(out), "--png", str(tmp_path / "r.png")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "First sites to build" in page and "S-01" in page
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(main, args)  # exists: refused, exit 1, one-line error
    assert res.exit_code == 1 and "--overwrite" in res.output
