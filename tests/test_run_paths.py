"""Every door into a run gives the same numbers and the same deliverables.

``covgap demo`` (the run file's path) and ``covgap classify`` on the same demo inputs and
settings classify every village the same; the demo's ``priority.xlsx`` is formatted as
``covgap plan --villages-out`` formats it (one writer); every command writes a manifest.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from coverage.cli import main
from coverage.datasets import demo_paths
from coverage.spec import DEMO_CONFIG

#: The classification's contract columns, compared value for value.
CLASSIFIED = ["village_id", "class", "reasons", "population", "pop_covered_share",
              "pop_indoor_share", "best_tech", "operators", "n_tests", "median_download_mbps",
              "confidence"]


@pytest.mark.slow
def test_classify_and_run_classify_the_demo_alike(demo_run, tmp_path):
    result, _ = demo_run
    p = demo_paths()
    out = tmp_path / "classified.gpkg"
    args = ["-q", "classify", p["villages"], "--towers", p["sites"], "--towers",
            p["opencellid"], "--measurements", p["tests"], "--measurements", p["ookla"],
            "--population", p["population"], "--dem", p["dem"], "--landcover",
            p["landcover"], "--access", p["access"], "--fibre", p["fibre"],
            "--config", DEMO_CONFIG, "-o", out]
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    by_classify = gpd.read_file(out).sort_values("village_id").reset_index(drop=True)
    by_run = gpd.read_file(result.outputs["classified"]).sort_values(
        "village_id").reset_index(drop=True)
    assert len(by_run) == len(by_classify) == len(result.classified)
    pd.testing.assert_frame_equal(pd.DataFrame(by_classify[CLASSIFIED]),
                                  pd.DataFrame(by_run[CLASSIFIED]))
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text("utf-8"))
    assert manifest["step"] == "classify"
    assert manifest["parameters"]["profile"] == json.loads(json.dumps(
        json.loads((result.outputs["manifest"]).read_text("utf-8"))["parameters"]["profile"]))
    assert manifest["outputs"] == {"classified": str(out)}


def _xlsx_format(path) -> dict:
    from openpyxl import load_workbook

    ws = load_workbook(path).active
    return {"frozen": ws.freeze_panes, "filter": bool(ws.auto_filter.ref),
            "bold": all(c.font.bold for c in ws[1]),
            "widths": any(d.width for d in ws.column_dimensions.values())}


def test_the_demos_priority_xlsx_is_formatted_as_plans(demo_run, tmp_path):
    result, _ = demo_run
    demo_xlsx = result.outputs["priority_xlsx"]
    from coverage.plan import write_plan_table

    plan_xlsx = write_plan_table(result.plan.villages, tmp_path / "priority.xlsx")
    fmt = _xlsx_format(demo_xlsx)
    assert fmt == _xlsx_format(plan_xlsx)
    assert fmt == {"frozen": "A2", "filter": True, "bold": True, "widths": True}
    table = pd.read_excel(demo_xlsx, dtype={"village_id": str})
    assert sorted(table["village_id"]) == sorted(result.classified["village_id"])


@pytest.mark.parametrize("sharing", [True, False])
def test_scenario_and_execute_are_one_path(tiny, sharing):
    """The API's steps are the run's: same classes with sharing on and off."""
    from coverage.execute import RunCache, execute
    from coverage.scenario import Scenario, ScenarioParams
    from coverage.spec import RunSpec

    params = ScenarioParams(sharing=sharing).replace(model={"resolution_m": 200.0})
    scen = Scenario.from_files(tiny["villages"], towers=[tiny["sites"]],
                               measurements=[tiny["tests"]], population=tiny["population"],
                               dem=tiny["dem"], params=params)
    by_api = scen.classify().classified
    by_run = execute(RunSpec(scen.inputs, params), cache=RunCache()).classified
    pd.testing.assert_frame_equal(pd.DataFrame(by_api.drop(columns="geometry")),
                                  pd.DataFrame(by_run.drop(columns="geometry")))


def test_classify_offers_what_the_api_does_no_sharing(tiny, tmp_path):
    """The reverse door: the CLI's --no-sharing and --market-share are the API's."""
    from coverage.execute import RunCache
    from coverage.scenario import Scenario, ScenarioParams

    shares = {"Viettel": 0.6, "Vinaphone": 0.4}
    config = tmp_path / "model.toml"
    config.write_text("[model]\nresolution_m = 200.0\n", encoding="utf-8")
    out = tmp_path / "classified.csv"
    args = ["-q", "classify", tiny["villages"], "--towers", tiny["sites"], "--measurements",
            tiny["tests"], "--population", tiny["population"], "--dem", tiny["dem"],
            "--config", config, "--no-sharing", *[a for op, v in shares.items()
                                                   for a in ("--market-share", f"{op}={v}")],
            "-o", out]
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    by_cli = pd.read_csv(out, dtype={"village_id": str})
    params = ScenarioParams(sharing=False, market_share=shares).replace(
        model={"resolution_m": 200.0})
    scen = Scenario.from_files(tiny["villages"], towers=[tiny["sites"]],
                               measurements=[tiny["tests"]], population=tiny["population"],
                               dem=tiny["dem"], params=params)
    by_api = Scenario(scen.inputs, params, cache=RunCache()).classify().classified
    assert list(by_cli["class"]) == list(by_api["class"])
    assert by_cli["pop_covered_share"].tolist() == pytest.approx(
        by_api["pop_covered_share"].tolist())
    assert by_cli["explanation"].str.contains("no sharing").all()
    manifest = json.loads(out.with_name("classified.csv.manifest.json").read_text("utf-8"))
    assert manifest["parameters"]["sharing"] is False
    assert manifest["parameters"]["market_share"] == shares
