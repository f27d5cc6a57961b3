"""plan_rollout end to end on the tiny province: candidates, limits, tables, the CLI."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from shapely.geometry import Point

from conftest import X0, Y0, write_tiny
from coverage import io
from coverage.cli import main
from coverage.errors import InputError
from coverage.params import PlanParams
from coverage.pipeline import Settings, load_inputs, run_classify, run_plan
from coverage.plan import generate_candidates, write_plan_table


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    paths = write_tiny(tmp_path_factory.mktemp("tiny"))
    inputs = load_inputs(paths["villages"], towers=[paths["sites"]],
                         population=paths["population"], dem=paths["dem"])
    classified, surfaces = run_classify(inputs, settings=Settings())
    x = classified.to_crs(32648).geometry.centroid.x
    classified["province"] = np.where(x < X0 + 6000, "Tây", "Đông")
    return paths, inputs, classified, surfaces


@pytest.fixture(scope="module")
def planned(tiny_run):
    _, inputs, classified, surfaces = tiny_run
    return run_plan(classified, inputs, budget=8e9, settings=Settings(), existing=surfaces,
                    sweep=[2e9, 4e9, 8e9])


def test_candidates_include_upgrade_of_the_2g_site_and_terrain_high_points(tiny_run):
    _, inputs, classified, _ = tiny_run
    cands = generate_candidates(classified, inputs.towers, dem=inputs.dem,
                                params=PlanParams(max_candidates=20))
    assert "upg-E1" in set(cands["site_id"])  # the 2G-only eastern site
    assert "upg-W1" not in set(cands["site_id"])  # already 4G
    sources = set(cands["source"])
    assert {"upgrade", "village_centre", "high_point"} <= sources
    assert {"macro", "small_cell", "upgrade"} <= set(cands["technology"])
    # high points stand on the ridge (x = 506 km), well above the valley floors
    hp = cands[cands["source"] == "high_point"].to_crs(32648)
    assert len(hp) >= 1
    assert (abs(hp.geometry.x - 506_000) < 1500).any()


def test_plan_keeps_the_budget_and_the_contract(planned, tiny_run):
    _, _, classified, _ = tiny_run
    sites = planned.sites
    assert len(sites) >= 1
    assert sites["cost"].sum() <= 8e9
    assert list(sites["rank"]) == list(range(1, len(sites) + 1))
    assert (sites["pop_gain"] > 0).all()
    breakdown = sites[["cost_site", "cost_backhaul", "cost_power", "cost_road", "cost_opex"]]
    assert np.allclose(breakdown.sum(axis=1), sites["cost"], atol=2)
    lifted = [v for s in sites["villages"] for v in str(s).split(";") if v]
    assert len(lifted) == len(set(lifted))
    assert set(lifted) <= set(classified.loc[classified["class"] == "unavailable",
                                             "village_id"])
    s = planned.summary
    assert s["people_connected"] <= s["upper_bound_people"] + 1e-6
    assert s["greedy_people"] <= s["milp_people"] + 1e-6
    assert s["cost"] <= 8e9


def test_priority_list_has_every_village_once(planned, tiny_run):
    _, _, classified, _ = tiny_run
    pr = planned.villages
    assert sorted(pr["village_id"]) == sorted(classified["village_id"])
    assert list(pr["priority"]) == list(range(1, len(pr) + 1))
    planned_rows = pr[pr["site_rank"].notna()]
    assert list(planned_rows.index) == list(range(len(planned_rows)))  # lifted ones first
    assert planned_rows["site_rank"].is_monotonic_increasing
    need = pr[(pr["class"] == "unavailable") & pr["site_rank"].isna()]
    assert need["technology"].notna().all() or len(need) == 0


def test_cost_curve_is_reported(planned):
    curve = planned.curve
    assert list(curve["budget"]) == [2e9, 4e9, 8e9]
    assert (curve["cost"] <= curve["budget"]).all()
    assert (curve["people"] <= curve["upper_bound"] + 1e-6).all()


def test_phases_and_locked_sites(tiny_run):
    _, inputs, classified, surfaces = tiny_run
    res = run_plan(classified, inputs, settings=Settings(), existing=surfaces,
                   phases=[2.5e9, 2.5e9], phase_labels=["2026", "2027"], locked=["upg-E1"])
    sites = res.sites
    assert sites["site_id"].iloc[0] == "upg-E1"
    assert set(sites["year"]) <= {"2026", "2027"}
    assert sites["phase"].is_monotonic_increasing
    year1 = sites.loc[sites["phase"] == 1, "cost"].sum()
    assert year1 <= 2.5e9
    assert sites["cost"].sum() <= 5e9


def test_province_budget_limits_each_province(tiny_run):
    _, inputs, classified, surfaces = tiny_run
    res = run_plan(classified, inputs, budget=20e9, settings=Settings(), existing=surfaces,
                   province_budgets={"Đông": 1e9})
    east = res.sites[res.sites["province"] == "Đông"]
    assert east["cost"].sum() <= 1e9
    with pytest.raises(Exception, match="known provinces"):
        run_plan(classified, inputs, budget=20e9, settings=Settings(), existing=surfaces,
                 province_budgets={"Bắc": 1e9})


def test_xlsx_for_officials(planned, tmp_path):
    path = write_plan_table(planned.sites, tmp_path / "plan.xlsx", lang="vi")
    ws = load_workbook(path).active
    assert ws.freeze_panes == "A2"
    assert ws["A1"].value == "Thứ tự xây dựng"
    headers = [c.value for c in ws[1]]
    cost_col = headers.index("Tổng chi phí") + 1
    assert isinstance(ws.cell(row=2, column=cost_col).value, int | float)
    assert ws.cell(row=2, column=cost_col).number_format == "#,##0"
    assert "Kinh độ" in headers  # lon/lat instead of geometry
    with pytest.raises(Exception, match="exists"):
        write_plan_table(planned.sites, path)


def test_user_candidates_are_planned(tiny_run, tmp_path):
    _, inputs, classified, surfaces = tiny_run
    pt = gpd.GeoSeries([Point(X0 + 10_000, Y0 + 5_000)], crs=32648).to_crs(4326)
    user = gpd.GeoDataFrame({"site_id": ["U1"]}, geometry=pt.to_numpy(), crs=4326)
    res = run_plan(classified, dataclasses.replace(inputs, candidates=user), max_sites=3,
                   settings=Settings(), existing=surfaces)
    assert "U1" in set(res.candidates["site_id"])
    assert res.candidates.set_index("site_id").loc["U1", "source"] == "user"


def test_cli_plan_with_phases_sweep_and_vietnamese_xlsx(tiny_run, tmp_path):
    paths, _, classified, _ = tiny_run
    cls = tmp_path / "classified.gpkg"
    classified.to_file(cls)
    out, prio = tmp_path / "plan.xlsx", tmp_path / "priority.csv"
    args = ["plan", cls, "--towers", paths["sites"], "--population", paths["population"],
            "--dem", paths["dem"], "--phases", "2026=3bn,2027=3bn", "--sweep", "2bn,6bn",
            "--budget-per-province", "5bn", "-o", out, "--villages-out", prio, "--lang", "vi"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "bound" in result.output
    curve = pd.read_csv(tmp_path / "plan_curve.csv")
    assert list(curve["budget"]) == [2e9, 6e9]
    pr = pd.read_csv(prio, dtype={"village_id": str})
    assert sorted(pr["village_id"]) == sorted(classified["village_id"])
    bad = CliRunner().invoke(main, [str(a) for a in ["plan", cls, "--towers", paths["sites"],
                                                     "--phases", "lots", "-o",
                                                     tmp_path / "x.csv"]])
    assert bad.exit_code == 2


def test_village_weights_steer_the_plan(tiny_run):
    _, inputs, classified, surfaces = tiny_run
    need = classified["class"] == "unavailable"
    assert need.sum() >= 2
    only = classified.index[need][0]
    weight = np.zeros(len(classified))
    weight[only] = 1.0
    res = run_plan(classified, inputs, budget=20e9, settings=Settings(), existing=surfaces,
                   village_weight=weight)
    lifted = {v for s in res.sites["villages"] for v in str(s).split(";") if v}
    assert lifted <= {classified.loc[only, "village_id"]}
    assert sorted(res.villages["village_id"]) == sorted(classified["village_id"])


def test_a_plan_with_nothing_to_build_is_drawn_and_reported(tiny_run, planned, tmp_path):
    """A budget below every site's cost plans nothing; map and report read that plan."""
    paths, _, classified, _ = tiny_run
    cls = tmp_path / "classified.gpkg"
    classified.to_file(cls)
    for ext in (".csv", ".gpkg"):
        plan = tmp_path / f"plan{ext}"
        steps = [["plan", cls, "--towers", paths["sites"], "--budget", "1000", "-o", plan],
                 ["map", cls, "--plan", plan, "-o", tmp_path / f"map{ext}.html"],
                 ["report", cls, "--plan", plan, "-o", tmp_path / f"report{ext}.html"]]
        for args in steps:
            result = CliRunner().invoke(main, [str(a) for a in args])
            assert result.exit_code == 0, (args[0], ext, result.output)
        assert "Plan: 0 site(s)" in CliRunner().invoke(main, [str(a) for a in [
            *steps[0], "--overwrite"]]).output
        with pytest.raises(InputError, match="holds no features"):
            io.read_vector(plan, what="plan")
    # the columns of a plan that builds something
    full = write_plan_table(planned.sites, tmp_path / "full.csv")
    assert list(pd.read_csv(tmp_path / "plan.csv").columns) == list(pd.read_csv(full).columns)


def test_cli_budget_below_the_cheapest_site_gives_an_empty_plan_that_says_why(tiny_run,
                                                                                tmp_path):
    paths, _, classified, _ = tiny_run
    cls = tmp_path / "classified.gpkg"
    classified.to_file(cls)
    out = tmp_path / "plan.csv"
    args = ["plan", cls, "--towers", paths["sites"], "--population", paths["population"],
            "--dem", paths["dem"], "--budget", "1000", "-o", out]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "No site is proposed: the budget (1,000) is below the cheapest site" in result.output
    assert len(pd.read_csv(out)) == 0
