"""`covgap run`, the embedded demo run file, and the CLI's manners: help, exit codes, -q/-v,
--debug, progress only on a terminal, no overwriting."""

from __future__ import annotations

import io as _io
import json
import tomllib

import click
import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from coverage import cli
from coverage.cli import main
from coverage.pipeline import DEMO_CONFIG
from coverage.scenario import Scenario, clear_cache, compare, read_run_config


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


@pytest.fixture
def run_file(tiny, tmp_path):
    """A run file for the tiny province; outputs go to tmp_path/out."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f"""
[inputs]
villages = "{tiny['villages']}"
towers = ["{tiny['sites']}"]
measurements = ["{tiny['tests']}"]
population = "{tiny['population']}"
dem = "{tiny['dem']}"

[scenario]
name = "tiny"
budget = 6e9

[model]
resolution_m = 200.0

[outputs]
dir = "{tmp_path / 'out'}"
classified = ["classified.gpkg", "classified.csv"]
plan = ["plan.csv"]
priority = ["priority.csv"]
map = "{tmp_path / 'maps' / 'tiny.html'}"
manifest = "manifest.json"
""", encoding="utf-8")
    return cfg


def test_run_writes_every_output_and_agrees_with_compare(run_file, tmp_path):
    clear_cache()
    result = invoke("run", run_file)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    for name in ("classified.gpkg", "classified.csv", "plan.csv", "priority.csv",
                 "manifest.json"):
        assert (out / name).is_file(), name
    assert (tmp_path / "maps" / "tiny.html").is_file()
    classified = gpd.read_file(out / "classified.gpkg")
    plan = pd.read_csv(out / "plan.csv")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["budget"] == 6e9
    assert len(manifest["inputs"]["files"]) == 5
    assert all(len(f["sha256"]) == 64 for f in manifest["inputs"]["files"].values())
    # what the tests chose: the model's structure and the fusion's stages
    assert manifest["model_choices"]["structure"]["name"] in manifest["model_choices"][
        "structure"]["cv_error"] or manifest["model_choices"]["structure"]["name"] == \
        "as given"
    assert set(manifest["model_choices"]["fusion"]) >= {"calibration_weight", "krige"}
    # and the slow curve: one, or one per broadband technology
    assert manifest["model_choices"]["slow_curve"]["curves"] in {"pooled", "by_tech"}
    # and the spread a test's download is read with (0: each as it is)
    assert manifest["model_choices"]["slow_bandwidth"]["bandwidth"] >= 0
    assert "unavailable" in result.output and "Written:" in result.output

    clear_cache()  # the Python API, from scratch, gives the same numbers
    row = compare([Scenario.from_config(run_file)]).table.iloc[0]
    assert row["villages_unavailable"] == (classified["class"] == "unavailable").sum()
    assert row["plan_cost"] == pytest.approx(plan["cost"].sum())
    assert row["people_connected"] == pytest.approx(plan["pop_gain"].sum(), abs=0.2)


def test_run_never_overwrites_without_the_flag(run_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.csv").write_text("keep me")
    result = invoke("run", run_file)
    assert result.exit_code == 1
    assert "--overwrite" in result.output and "plan.csv" in result.output
    assert (out / "plan.csv").read_text() == "keep me"
    assert not (out / "classified.gpkg").exists()  # refused before any work
    assert invoke("run", run_file, "--overwrite").exit_code == 0
    assert (out / "plan.csv").read_text() != "keep me"


def test_quiet_prints_nothing_and_overrides_apply(run_file, tmp_path):
    result = invoke("-q", "run", run_file, "-o", tmp_path / "q", "--budget", "1bn",
                    "--map", tmp_path / "q.html")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    plan = pd.read_csv(tmp_path / "q" / "plan.csv")
    assert plan["cost"].sum() <= 1e9
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["budget"] == 1e9


def test_verbose_logs_on_stderr(run_file, tmp_path):
    result = invoke("-v", "run", run_file, "-o", tmp_path / "v", "--map", tmp_path / "v.html")
    assert result.exit_code == 0
    assert "INFO coverage" in result.stderr
    assert "INFO" not in result.stdout


def test_bad_run_file_exits_1_with_one_paragraph_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[inputs]\nvillages = "v.gpkg"\n[outputz]\n', encoding="utf-8")
    result = invoke("run", bad)
    assert result.exit_code == 1
    assert "outputz" in result.output and "Traceback" not in result.output
    debug = invoke("--debug", "run", bad)
    assert debug.exit_code == 1 and "Traceback" in debug.output
    missing = tmp_path / "m.toml"
    missing.write_text('[inputs]\nvillages = "nowhere.gpkg"\n', encoding="utf-8")
    result = invoke("run", missing, "-o", tmp_path / "m")
    assert result.exit_code == 1 and "nowhere.gpkg" in result.output


def test_usage_errors_exit_2():
    assert invoke("run").exit_code == 2
    assert invoke("run", "--budget", "lots", "x.toml").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_example_run_file_is_the_documented_demo_file():
    result = invoke("run", "--example")
    assert result.exit_code == 0
    config = tomllib.loads(result.output)
    assert {"inputs", "outputs", "scenario", "profile", "model", "plan", "costs"} <= set(config)
    assert config["plan"]["small_cells"] and config["plan"]["satellite_terminals"]
    assert result.output == DEMO_CONFIG.read_text(encoding="utf-8")
    assert result.output.count("#") > 40  # commented
    inputs, params, spec, name = read_run_config(DEMO_CONFIG)
    assert name == "Mẫu Sơn demo"
    assert inputs.villages.name == "villages.gpkg" and len(inputs.towers) == 2
    assert params.budget == 40e9 and params.sharing
    assert str(spec.map) == "maps/demo.html" and spec.manifest == "manifest.json"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "covgap " + command in result.output


def test_main_help_documents_exit_codes_and_completion():
    text = invoke("--help").output
    assert "Exit status" in text and "_COVGAP_COMPLETE" in text


class _Tty(_io.StringIO):
    def isatty(self) -> bool:
        return True


def _ctx(quiet: bool) -> click.Context:
    ctx = click.Context(main)
    ctx.obj = {"quiet": quiet, "debug": False}
    return ctx


def test_progress_bar_only_on_a_terminal_and_not_when_quiet(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(cli.sys, "stderr", tty)
    with cli._progress(_ctx(False), "modelling coverage") as update:
        assert update is not None
        update(1, 4)
        update(4, 4)
    assert "modelling coverage" in tty.getvalue()
    with cli._progress(_ctx(True), "modelling coverage") as update:
        assert update is None
    monkeypatch.setattr(cli.sys, "stderr", _io.StringIO())
    with cli._progress(_ctx(False), "modelling coverage") as update:
        assert update is None


def test_progress_bars_follow_the_stages_sharing_one_callback(monkeypatch):
    """The model's masts, then the plan's candidates: two bars, each with its own label."""
    tty = _Tty()
    monkeypatch.setattr(cli.sys, "stderr", tty)
    with cli._progress(_ctx(False), ("modelling coverage", "modelling candidates")) as update:
        update(3, 12)
        update(12, 12)
        update(40, 639)  # the candidates' stage: another total
        update(639, 639)
    out = tty.getvalue()
    assert "modelling coverage" in out and "modelling candidates" in out
    assert out.index("modelling coverage") < out.index("modelling candidates")
    assert "100%" in out.split("modelling candidates")[-1]
