"""The Scenario API on the tiny province: parameters, caching, manifests, technology mix,
sharing, and agreement with the CLI."""

from __future__ import annotations

import dataclasses
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from coverage import pipeline
from coverage.cli import main
from coverage.errors import ParameterError
from coverage.scenario import (
    Scenario,
    ScenarioParams,
    clear_cache,
    compare,
    file_sha256,
    read_run_config,
)

BUDGET = 6e9
RES_M = 200.0  # a coarse grid keeps these tests fast; the CLI gets the same via --config


@pytest.fixture
def base(tiny) -> Scenario:
    clear_cache()
    return Scenario.from_files(tiny["villages"], towers=[tiny["sites"]],
                               measurements=[tiny["tests"]], population=tiny["population"],
                               dem=tiny["dem"], name="base",
                               params=ScenarioParams(budget=BUDGET).replace(
                                   model={"resolution_m": RES_M}))


# --------------------------------------------------------------------------- parameters
def test_params_round_trip_through_plain_dicts_and_json():
    p = ScenarioParams(budget=20e9, sharing=False, market_share={"Viettel": 0.6, "X": 0.4})
    p = p.replace(profile={"min_download_mbps": 10}, costs={"new_tower": 2e9,
                                                            "people_per_terminal": 40},
                  plan={"small_cells": False}, model={"resolution_m": 200})
    text = json.dumps(p.to_dict())
    back = ScenarioParams.from_dict(json.loads(text))
    assert back == p
    assert back.profile.min_download_mbps == 10
    assert back.plan.costs.new_tower == 2e9
    assert back.plan.costs.people_per_terminal == 40 and not back.plan.small_cells
    assert back.model.resolution_m == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.budget = 1.0  # type: ignore[misc]


def test_unknown_setting_is_a_clear_error():
    with pytest.raises(ParameterError, match="unknown scenario setting 'budjet'"):
        ScenarioParams().replace(budjet=1e9)
    with pytest.raises(ParameterError, match="min_dowload_mbps"):
        ScenarioParams().replace(profile={"min_dowload_mbps": 10})
    with pytest.raises(ParameterError, match="budget"):
        ScenarioParams(budget=-5.0)


# --------------------------------------------------------------------------- same as the CLI
def test_compare_gives_the_same_numbers_as_the_cli(base, tiny, tmp_path):
    runner = CliRunner()
    config = tmp_path / "model.toml"
    config.write_text(f"[model]\nresolution_m = {RES_M}\n", encoding="utf-8")
    classified = tmp_path / "classified.gpkg"
    args = ["classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
            tiny["tests"], "--population", tiny["population"], "--dem", tiny["dem"],
            "--config", config, "-o", classified]
    assert runner.invoke(main, [str(a) for a in args]).exit_code == 0
    plan_csv = tmp_path / "plan.csv"
    args = ["plan", classified, "--towers", tiny["sites"], "--population", tiny["population"],
            "--dem", tiny["dem"], "--budget", str(BUDGET), "--config", config, "-o", plan_csv]
    res = runner.invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    cli_classes = pipeline.summarize(gpd.read_file(classified))
    cli_plan = pd.read_csv(plan_csv)
    assert len(cli_plan) > 0  # the eastern 2G-only valley needs a site

    row = compare([base]).table.iloc[0]
    for cls in ("unavailable", "available_inaccessible", "served"):
        assert row[f"villages_{cls}"] == cli_classes.loc[cls, "villages"]
        assert row[f"people_{cls}"] == cli_classes.loc[cls, "people"]
    assert row["sites"] == len(cli_plan)
    assert row["plan_cost"] == pytest.approx(cli_plan["cost"].sum())
    assert row["people_connected"] == pytest.approx(cli_plan["pop_gain"].sum(), abs=0.2)
    assert row["cost_per_person"] == pytest.approx(
        cli_plan["cost"].sum() / cli_plan["pop_gain"].sum(), rel=1e-3)


# --------------------------------------------------------------------------- caching
def test_inputs_and_surfaces_are_cached_between_scenarios(base, monkeypatch):
    import coverage.execute as execute

    calls = {"load": 0, "predict": 0}
    real_load, real_predict = execute.load_inputs, execute.predict_coverage_tiled

    def load(*a, **k):
        calls["load"] += 1
        return real_load(*a, **k)

    def predict(*a, **k):
        calls["predict"] += 1
        return real_predict(*a, **k)

    monkeypatch.setattr(execute, "load_inputs", load)
    monkeypatch.setattr(execute, "predict_coverage_tiled", predict)
    base.classify()
    base.replace(name="strict", profile={"min_indoor_share": 0.9}).classify()
    assert calls == {"load": 1, "predict": 1}        # thresholds reuse the surfaces
    base.replace(name="fine", model={"resolution_m": 100}).classify()
    assert calls == {"load": 1, "predict": 2}        # a new model re-models, reads nothing
    # a cache the caller holds is the scenario's own: nothing is shared with the default
    own = dataclasses.replace(base, cache=execute.RunCache())
    own.classify()
    assert calls == {"load": 2, "predict": 3}
    own.replace(name="strict", profile={"min_indoor_share": 0.9}).classify()
    assert calls == {"load": 2, "predict": 3}


def test_scenarios_with_the_same_plan_inputs_share_one_plan(base, monkeypatch):
    import coverage.execute as execute

    calls = []
    real = execute.plan_sites
    monkeypatch.setattr(execute, "plan_sites",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    base.plan()
    base.replace(name="renamed").plan()
    base.replace(name="shares", market_share={"Viettel": 1.0}).plan()  # sharing on: unused
    assert len(calls) == 1
    base.replace(name="no sat", plan={"satellite_terminals": False}).plan()
    assert len(calls) == 2
    base.replace(name="more", budget=2 * BUDGET).plan()
    assert len(calls) == 3
    base.replace(name="phased", phases=[BUDGET / 2, BUDGET / 2]).plan()
    assert len(calls) == 4                           # phases are part of the plan's key


def test_a_changed_file_is_read_again(base, tiny):
    first = base.classify().manifest["inputs"]["files"]["villages"]["sha256"]
    v = gpd.read_file(tiny["villages"])
    v.loc[0, "population"] = 9999
    v.to_file(tiny["villages"], layer="villages")
    again = base.classify()
    assert again.manifest["inputs"]["files"]["villages"]["sha256"] != first
    assert again.classified.loc[0, "population"] == 9999


def test_manifest_names_version_parameters_and_input_hashes(base, tiny):
    from coverage import __version__

    m = base.plan().manifest
    assert m["version"] == __version__ and m["step"] == "plan"
    assert ScenarioParams.from_dict(m["parameters"]) == base.params
    files = m["inputs"]["files"]
    assert set(files) == {"villages", "towers[0]", "measurements[0]", "population", "dem"}
    assert files["dem"]["sha256"] == file_sha256(tiny["dem"])
    import hashlib
    assert files["towers[0]"]["sha256"] == hashlib.sha256(
        tiny["sites"].read_bytes()).hexdigest()


# --------------------------------------------------------------------------- what-ifs
def test_budget_and_thresholds_move_the_numbers_the_right_way(base):
    table = compare([
        base,
        base.replace(name="tiny budget", budget=1e9),
        base.replace(name="indoor 0.99", profile={"min_indoor_share": 0.99}),
    ]).table.set_index("scenario")
    assert table.loc["tiny budget", "plan_cost"] <= 1e9
    assert table.loc["tiny budget", "people_connected"] <= table.loc["base",
                                                                     "people_connected"]
    # A stricter indoor rule can only move served villages to inaccessible.
    assert table.loc["indoor 0.99", "villages_served"] <= table.loc["base", "villages_served"]
    assert (table.loc["indoor 0.99", "villages_unavailable"]
            == table.loc["base", "villages_unavailable"])


def test_technology_options_pass_through_to_the_plan(base):
    towers = base.replace(name="towers", plan={"small_cells": False,
                                               "satellite_terminals": False}).plan().plan
    assert set(towers.sites["kind"]) <= {"new_site", "upgrade"}
    only_sat = base.replace(name="cheap terminals", costs={"satellite_terminal": 1.0,
                                                           "satellite_terminal_per_year": 0.0}
                            ).plan().plan
    assert "satellite" in set(only_sat.sites["kind"])  # almost free: terminals win
    assert only_sat.summary["people_connected"] >= towers.summary["people_connected"] - 0.5
    assert only_sat.sites["cost"].sum() <= BUDGET


def test_without_sharing_each_operator_counts_its_market_share(base):
    shared = base.classify().classified
    alone = base.replace(name="no sharing", sharing=False,
                         market_share={"Viettel": 1.0}).classify().classified
    # Only Viettel has a network here: with all subscribers on Viettel nothing changes.
    np.testing.assert_allclose(alone["pop_covered_share"], shared["pop_covered_share"])
    half = base.replace(name="half", sharing=False,
                        market_share={"Viettel": 0.5, "Other": 0.5}).classify().classified
    np.testing.assert_allclose(half["pop_covered_share"], shared["pop_covered_share"] / 2,
                               atol=1e-3)
    assert (half["class"] == "served").sum() <= (shared["class"] == "served").sum()
    assert sorted(half["village_id"]) == sorted(shared["village_id"])


def test_names_must_differ_and_a_plan_needs_a_budget(base):
    with pytest.raises(ParameterError, match="names repeat"):
        compare([base, base.replace(budget=1e9)])
    with pytest.raises(ParameterError, match="no budget"):
        base.replace(budget=None).plan()


def test_comparison_plot_has_a_bar_per_class_and_scenario(base):
    import matplotlib

    matplotlib.use("Agg")
    comp = compare([base, base.replace(name="more", budget=2 * BUDGET)])
    fig = comp.plot()
    bars = fig.axes[0].patches
    assert len(bars) == 3 * 2
    assert "<table" in comp._repr_html_()


# --------------------------------------------------------------------------- run files
def test_run_file_reads_inputs_relative_to_itself(tiny, tmp_path):
    cfg = tiny["villages"].parent / "run.toml"
    cfg.write_text(
        '[inputs]\nvillages = "villages.gpkg"\ntowers = "sites.csv"\n'
        'population = "pop.tif"\n[scenario]\nname = "t"\nbudget = 6e9\n'
        '[profile]\nmin_download_mbps = 10\n[costs]\nnew_tower = 2_000_000_000\n'
        '[outputs]\ndir = "o"\nmap = ""\n', encoding="utf-8")
    inputs, params, spec, name = read_run_config(cfg)
    assert inputs.villages == tiny["villages"].parent / "villages.gpkg"
    assert inputs.towers == (tiny["sites"],)
    assert params.profile.min_download_mbps == 10.0
    assert params.plan.costs.new_tower == 2e9 and params.budget == 6e9
    assert spec.map is None and name == "t"
    cfg.write_text('[inputs]\nvillages = "v.gpkg"\n[outputz]\n', encoding="utf-8")
    with pytest.raises(ParameterError, match="outputz"):
        read_run_config(cfg)


def test_readme_scenario_study_is_ten_lines_that_run(base, monkeypatch):
    import re
    from pathlib import Path

    import matplotlib

    import coverage.scenario

    matplotlib.use("Agg")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
                if "compare(" in block)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    # Run it on the tiny province instead of the demo (same code path, seconds not minutes).
    monkeypatch.setattr(coverage.scenario.Scenario, "demo", classmethod(
        lambda cls, name="demo", **changes: base.replace(name=name, **changes)))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    table = namespace["study"].table
    assert list(table["scenario"]) == ["40 bn", "80 bn", "10 Mbps", "no sharing"]
    assert table["plan_cost"].le(table["budget"]).all()


def test_a_province_with_nobody_in_need_gets_an_empty_plan(base, tiny):
    # The eastern 2G-only site becomes 4G: both valleys have broadband, nobody is in need.
    sites = pd.read_csv(tiny["sites"])
    sites.loc[sites["site_id"] == "E1", "tech"] = "4G"
    path = tiny["sites"].with_name("all4g.csv")
    sites.to_csv(path, index=False)
    res = dataclasses.replace(base, inputs=dataclasses.replace(base.inputs, towers=(path,)))
    res = res.replace(profile={"outdoor_rsrp_dbm": -125.0, "min_covered_share": 0.0}).plan()
    assert not (res.classified["class"] == "unavailable").any()
    assert len(res.plan.sites) == 0
    assert res.plan.summary["people_connected"] == 0
    assert sorted(res.plan.villages["village_id"]) == sorted(res.classified["village_id"])


def test_a_scenario_fuses_its_tests_once_for_classification_and_plan(base, monkeypatch):
    import coverage.classify.metrics as classify_module
    import coverage.plan.rollout as plan_module
    from coverage import model

    calls = []
    real = model.fuse_measurements

    def fuse(*a, **k):
        calls.append(1)
        return real(*a, **k)

    for module in (classify_module, plan_module):
        monkeypatch.setattr(module, "fuse_measurements", fuse)
    result = base.plan()
    assert len(calls) == 1
    # the same plan as when the plan fuses the tests itself
    inputs = base.load()
    again = pipeline.run_plan(result.classified, inputs, budget=base.params.budget,
                              settings=base.settings, existing=base.surfaces())
    assert len(calls) == 2
    pd.testing.assert_frame_equal(pd.DataFrame(again.sites.drop(columns="geometry")),
                                  pd.DataFrame(result.plan.sites.drop(columns="geometry")))
    assert again.summary["people_in_need"] == result.plan.summary["people_in_need"] > 0


def test_run_file_dem_may_list_tiles(tmp_path):
    from pathlib import Path

    from coverage.scenario.options import InputPaths

    one = InputPaths.of("v.gpkg", dem="N21E105.hgt")
    assert one.dem == Path("N21E105.hgt") and one.files()["dem"] == Path("N21E105.hgt")
    tiles = InputPaths.of("v.gpkg", dem=["N21E105.hgt", "N22E105.hgt"])
    assert tiles.dem == (Path("N21E105.hgt"), Path("N22E105.hgt"))
    assert list(tiles.files()) == ["villages", "dem[0]", "dem[1]"]
    assert tiles.to_dict()["dem"] == ["N21E105.hgt", "N22E105.hgt"]
    assert tiles.load_kwargs()["dem"] == tiles.dem
    assert InputPaths.of("v.gpkg", dem=["N21E105.hgt"]).dem == Path("N21E105.hgt")
    # in a run file, a list of tiles relative to the file's folder
    from coverage.scenario.options import read_run_config

    run = tmp_path / "run.toml"
    run.write_text('[inputs]\nvillages = "v.gpkg"\ndem = ["N21E105.hgt", "N22E105.hgt"]\n')
    inputs = read_run_config(run)[0]
    assert inputs.dem == (tmp_path / "N21E105.hgt", tmp_path / "N22E105.hgt")


def test_the_fusion_is_kept_per_what_it_reads_of_the_profile(base, monkeypatch):
    import coverage.execute as execute

    calls = []
    real = execute.fuse_for
    monkeypatch.setattr(execute, "fuse_for", lambda *a, **k: calls.append(1) or real(*a, **k))
    base.classify()
    base.replace(name="speed", profile={"min_download_mbps": 10}).classify()
    assert len(calls) == 1                           # a speed rule: the same fusion
    base.replace(name="signal", profile={"outdoor_rsrp_dbm": -105}).classify()
    assert len(calls) == 2                           # a threshold the fusion's margins use
