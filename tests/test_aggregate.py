"""Aggregates per commune, district and province; fibre targets; crosswalks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from coverage.aggregate import aggregate, build_crosswalk, read_crosswalk
from coverage.errors import SchemaError


def classified() -> pd.DataFrame:
    return pd.DataFrame({
        "village_id": ["1", "2", "3", "4", "5"],
        "commune": ["A", "A", "B", "B", "A"],
        "district": ["D1", "D1", "D1", "D1", "D2"],  # a second commune "A" in district D2
        "province": ["P"] * 5,
        "class": ["unavailable", "served", "served", "available_inaccessible", "served"],
        "population": [360.0, 720.0, 1000.0, 500.0, 36.0],
        "households": [np.nan, 200.0, 250.0, 100.0, 10.0],
        "pop_covered_share": [0.1, 1.0, 0.9, 0.8, 1.0],
        "pop_fibre_share": [0.0, 1.0, 0.8, 0.5, 1.0],
    })


def test_units_add_up_and_same_names_stay_apart():
    out = aggregate(classified())
    total = out[out.level == "total"].iloc[0]
    communes = out[out.level == "commune"]
    assert len(communes) == 3  # A/D1, B/D1, A/D2
    for col in ("villages", "people", "villages_unavailable", "people_served", "households"):
        assert communes[col].sum() == pytest.approx(total[col])
        assert out[out.level == "district"][col].sum() == pytest.approx(total[col])
    a1 = communes[(communes.unit == "A") & (communes.district == "D1")].iloc[0]
    assert (a1.villages, a1.villages_unavailable, a1.people_unavailable) == (2, 1, 360)
    assert a1.share_villages_mbb == 0.5 and not a1.every_village_mbb
    # village 1 has no households: 360 people / 3.6 per household = 100, flagged
    assert a1.households == 300 and a1.households_estimated == 1
    assert a1.share_households_mbb == pytest.approx((100 * 0.1 + 200) / 300)


def test_fibre_targets_of_the_strategy():
    out = aggregate(classified()).set_index(["level", "unit", "district"])
    b = out.loc[("commune", "B", "D1")]
    # 250 * 0.8 + 100 * 0.5 = 250 of 350 households: 71% < 80%
    assert b.share_households_fibre == pytest.approx(250 / 350)
    assert not b.meets_fibre_2025 and b.households_to_fibre_2025 == 30
    a2 = out.loc[("commune", "A", "D2")]
    assert a2.meets_fibre_2025 and a2.meets_fibre_2030 and a2.households_to_fibre_2030 == 0
    edge = classified().assign(pop_fibre_share=0.8)
    t = aggregate(edge).query("level == 'total'").iloc[0]
    assert t.meets_fibre_2025 and not t.meets_fibre_2030


def test_crosswalk_moves_every_person_once():
    cw = pd.DataFrame({"from_id": ["A", "A", "B"], "to_id": ["N1", "N2", "N2"],
                       "weight": [0.25, 0.75, 1.0]})
    out = aggregate(classified(), crosswalk=cw, crosswalk_level="commune_2025")
    new = out[out.level == "commune_2025"].set_index("unit")
    total = out[out.level == "total"].iloc[0]
    assert new["people"].sum() == pytest.approx(total["people"])
    assert new["villages"].sum() == pytest.approx(5)
    assert new.loc["N1", "people"] == pytest.approx(0.25 * (360 + 720 + 36))
    with pytest.raises(SchemaError, match="sum to 1"):
        aggregate(classified(), crosswalk=cw.assign(weight=[0.5, 0.6, 1.0]))


def test_crosswalk_keeps_unmapped_villages(caplog):
    cw = pd.DataFrame({"from_id": ["A"], "to_id": ["N1"], "weight": [1.0]})
    out = aggregate(classified(), crosswalk=cw)
    new = out[out.level == "crosswalk"].set_index("unit")
    assert new.loc["(unmapped)", "villages"] == 2
    assert new["people"].sum() == pytest.approx(classified()["population"].sum())
    assert "missing from the crosswalk" in caplog.text


def test_read_crosswalk_keeps_ids_as_text(tmp_path):
    p = tmp_path / "cw.csv"
    p.write_text("old,new\n00123,09\n00124,09\n")
    cw = read_crosswalk(p, from_col="old", to_col="new")
    assert list(cw["from_id"]) == ["00123", "00124"] and list(cw["to_id"]) == ["09", "09"]
    assert list(cw["weight"]) == [1.0, 1.0]
    with pytest.raises(SchemaError, match="lacks"):
        read_crosswalk(p)


def test_build_crosswalk_by_area():
    old = gpd.GeoDataFrame({"old": ["a", "b"]}, geometry=[box(0, 0, 2, 1), box(2, 0, 3, 1)],
                           crs=32648)
    new = gpd.GeoDataFrame({"new": ["X", "Y"]}, geometry=[box(0, 0, 1.5, 1),
                                                          box(1.5, 0, 3, 1)], crs=32648)
    cw = build_crosswalk(old, new, old_id="old", new_id="new")
    got = {(r.from_id, r.to_id): r.weight for r in cw.itertuples()}
    assert got == pytest.approx({("a", "X"): 0.75, ("a", "Y"): 0.25, ("b", "Y"): 1.0})


def test_classify_cli_writes_aggregates(tiny, tmp_path):
    from click.testing import CliRunner

    from coverage.cli import main

    cw = tmp_path / "cw.csv"
    cw.write_text("from_id,to_id\nXã Mẫu,Xã Mẫu Sơn\nXã Sơn,Xã Mẫu Sơn\n")
    out, agg = tmp_path / "c.csv", tmp_path / "agg.csv"
    args = ["classify", str(tiny["villages"]), "--towers", str(tiny["sites"]),
            "--population", str(tiny["population"]), "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "--crosswalk", str(cw)])
    assert r.exit_code == 2 and "--aggregate-out" in r.output
    r = CliRunner().invoke(main, [*args, "--aggregate-out", str(agg), "--crosswalk", str(cw)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(agg)
    assert set(table["level"]) == {"total", "commune", "district", "crosswalk"}
    merged = table[table.level == "crosswalk"].iloc[0]
    assert merged["unit"] == "Xã Mẫu Sơn" and merged["villages"] == 12
    assert "Labels stable" in r.output
