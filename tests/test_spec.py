"""One settings parser behind every way in: CLI options, config files, run files, the API.

Each way refuses an unknown profile, technology, engine, table or key, naming it and listing
the valid choices, and the ways agree on what a setting means.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from click.testing import CliRunner

from coverage.cli import main
from coverage.errors import ParameterError
from coverage.params import PROFILES, ModelParams, PlanParams, Profile
from coverage.pipeline import Settings
from coverage.scenario import Scenario, ScenarioParams
from coverage.settings import parse_tables, read_run_file, spec_from_config
from coverage.spec import DEMO_CONFIG, TABLES, RunSpec

KNOWN = ", ".join(sorted(PROFILES))
NO_PROFILE = f"unknown profile 'vn-2052' (did you mean 'vn-2025'?); known profiles: {KNOWN}"

#: (tables, what the message must name): each is wrong in one place.
BAD = [
    ({"profile": {"name": "vn-2052"}}, NO_PROFILE),
    ({"plan": {"tech": "6G"}}, "[plan] tech = '6G': use '3G', '4G' or '5G'"),
    ({"model": {"techs": {"6G": {"eirp_dbm": 40}}}}, "unknown technology '6G' in techs; "
     "known: 2G, 3G, 4G, 5G"),
    ({"engine": {"kind": "spark"}}, "engine must be one of local, dask, got 'spark'"),
    ({"engine": {"schedular": "tcp://x:1"}}, "unknown [engine] key(s) schedular "
     "(did you mean 'scheduler'?); known: kind"),
    ({"model": {"resolutin_m": 50}}, "unknown ModelParams setting(s) resolutin_m "
     "(did you mean 'resolution_m'?); known: "),
    ({"profile": {"min_dowload_mbps": 10}}, "unknown Profile setting(s) min_dowload_mbps"),
    ({"scenario": {"budjet": 1e9}}, "unknown scenario setting 'budjet' "
     "(did you mean 'budget'?); known: budget"),
    ({"costs": {"new_towr": 1e9}}, "unknown CostModel setting(s) new_towr"),
    ({"modle": {}}, "unknown table(s) modle (did you mean 'model'?); known: "
     + ", ".join(TABLES)),
    ({"scenario": {"budget": "lots"}}, "budget = 'lots': expected a number"),
    ({"model": {"resolution_m": "100"}}, "resolution_m = '100': expected a number"),
]


def _toml(tables: dict) -> str:
    """The tables as TOML text (flat values, one level of sub-tables)."""
    lines = []

    def value(v):
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v)

    for name, table in tables.items():
        subs = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items() if k not in subs]
        for sub, inner in subs.items():
            for k2, v2 in inner.items():
                lines.append(f"[{name}.{sub}.{k2}]" if isinstance(v2, dict)
                             else f"[{name}.{sub}]")
                items = v2.items() if isinstance(v2, dict) else [(k2, v2)]
                lines += [f"{k} = {value(v)}" for k, v in items]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("tables", "message"), BAD)
def test_the_parser_refuses_with_the_valid_choices(tables, message):
    with pytest.raises(ParameterError) as err:
        parse_tables(tables, where="f.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("f.toml: ")


@pytest.mark.parametrize(("tables", "message"), BAD)
def test_config_file_and_run_file_refuse_alike(tables, message, tmp_path):
    """``--config`` (classify, plan, validate), a run file and the pipeline's Settings."""
    config = tmp_path / "c.toml"
    config.write_text(_toml(tables), encoding="utf-8")
    with pytest.raises(ParameterError, match=r"c\.toml: ") as err:
        spec_from_config(config)
    assert message in str(err.value)
    with pytest.raises(ParameterError) as err:
        Settings.from_config(config)
    assert message in str(err.value)
    run = tmp_path / "run.toml"
    run.write_text('[inputs]\nvillages = "v.gpkg"\n' + _toml(tables), encoding="utf-8")
    with pytest.raises(ParameterError) as err:
        read_run_file(run)
    assert message in str(err.value)


def test_a_misspelt_profile_stops_every_command_with_the_choices(tiny, tmp_path):
    run = tmp_path / "run.toml"
    run.write_text(f'[inputs]\nvillages = "{tiny["villages"]}"\n[profile]\nname = "vn-2052"\n'
                   '[outputs]\ndir = "o"\nmap = ""\n', encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text('[profile]\nname = "vn-2052"\n', encoding="utf-8")
    out = tmp_path / "x.gpkg"
    ways = {
        "run file": ["run", str(run)],
        "classify --config": ["classify", str(tiny["villages"]), "--towers",
                              str(tiny["sites"]), "--config", str(config), "-o", str(out)],
        "plan --config": ["plan", str(tiny["villages"]), "--towers", str(tiny["sites"]),
                          "--budget", "1e9", "--config", str(config), "-o", str(out)],
        "validate --config": ["validate", str(tiny["villages"]), "--config", str(config)],
    }
    for way, args in ways.items():
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, (way, r.output)
        assert NO_PROFILE in r.output, way
        assert "Traceback" not in r.output and not out.exists(), way
    # the option itself: click's choice lists them (a usage error)
    r = CliRunner().invoke(main, ["classify", str(tiny["villages"]), "--towers",
                                  str(tiny["sites"]), "--profile", "vn-2052", "-o", str(out)])
    assert r.exit_code == 2 and "vn-2052" in r.output
    assert all(name in r.output for name in PROFILES)
    r = CliRunner().invoke(main, ["run", str(DEMO_CONFIG), "--engine", "spark"])
    assert r.exit_code == 2 and "'local', 'dask'" in r.output.replace('"', "'")


def test_the_api_refuses_an_unknown_profile_and_switches_a_known_one(tiny):
    with pytest.raises(ParameterError, match=re.escape(NO_PROFILE)):
        ScenarioParams.from_dict({"profile": {"name": "vn-2052", "min_download_mbps": 5}})
    base = Scenario.from_files(tiny["villages"], towers=[tiny["sites"]])
    with pytest.raises(ParameterError, match="unknown profile 'bead-25'"):
        base.replace(profile={"name": "bead-25"})
    bead = base.replace(profile={"name": "bead-25-3", "min_upload_mbps": 5})
    assert bead.params.profile == PROFILES["bead-25-3"].replace(min_upload_mbps=5.0)
    # a name alone keeps the thresholds changed earlier only when it is the same profile
    tight = base.replace(profile={"min_download_mbps": 10})
    assert tight.replace(profile={"name": "vn-2025"}).params.profile.min_download_mbps == 10
    # a Profile built in code is the caller's own, taken as it is
    mine = Profile(name="district-pilot", min_download_mbps=2.0)
    assert base.replace(profile=mine).params.profile is mine


def test_cli_options_and_files_mean_the_same(tmp_path):
    """--profile and a file's [profile] name give the same parameters; the option wins."""
    config = tmp_path / "c.toml"
    config.write_text('[profile]\nname = "gsma-gap"\nmin_covered_share = 0.6\n'
                      '[model]\nresolution_m = 200\n[plan]\ntech = "5G"\n'
                      '[costs]\nnew_tower = 2_000_000_000\n', encoding="utf-8")
    from_file = spec_from_config(config).params
    assert from_file.profile == PROFILES["gsma-gap"].replace(min_covered_share=0.6)
    assert from_file.model == ModelParams(resolution_m=200.0)
    assert from_file.plan.tech == "5G" and from_file.plan.costs.new_tower == 2e9
    by_option = spec_from_config(config, options={"profile": {"name": "bead-25-3"}}).params
    assert by_option.profile == PROFILES["bead-25-3"].replace(min_covered_share=0.6)
    settings = Settings.from_config(config, profile="bead-25-3")
    assert (settings.profile, settings.model, settings.plan) == (
        by_option.profile, by_option.model, by_option.plan)
    # a whole run file is a config file too: its settings are the same
    run = read_run_file(DEMO_CONFIG)
    assert spec_from_config(DEMO_CONFIG).params == run.params


def test_a_parameter_added_to_a_frozen_class_is_a_setting_without_parser_changes():
    """The accepted keys are the dataclasses' fields (ModelParams.path_loss, say)."""
    model_fields = {f.name for f in dataclasses.fields(ModelParams)}
    plan_fields = {f.name for f in dataclasses.fields(PlanParams)} - {"costs"}
    for name in model_fields - {"techs"}:
        value = getattr(ModelParams(), name)
        params, _, _ = parse_tables({"model": {name: value}})
        assert getattr(params.model, name) == value
    for name in plan_fields:
        params, _, _ = parse_tables({"plan": {name: getattr(PlanParams(), name)}})
        assert params.plan == PlanParams()


def test_the_model_options_are_run_file_settings_and_their_defaults():
    """3GPP's vertical pattern and kriging that only lowers by default; each settable."""
    table = {"downtilt_deg": 0.0, "vertical_beamwidth_deg": 12.0, "foliage_loss_db": 12.0,
             "krige_lifts": True}
    params, _, _ = parse_tables({"model": table})
    assert {k: getattr(params.model, k) for k in table} == table
    assert {k: getattr(ModelParams(), k) for k in table} == {
        "downtilt_deg": 4.0, "vertical_beamwidth_deg": 10.0, "foliage_loss_db": 6.0,
        "krige_lifts": False}


def test_every_plan_option_is_a_run_file_setting(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('[inputs]\nvillages = "v.gpkg"\ncorrections = "fixes.csv"\n'
                   '[columns.villages]\nname = "TEN"\n'
                   '[scenario]\nphases = [1e9, 2e9]\nphase_labels = ["2026", "2027"]\n'
                   'locked = ["S1"]\nsweep = [1e9, 5e9]\nweight_col = "weight"\n'
                   'exact = false\nprovince_budgets = { "Lạng Sơn" = 2e9 }\n'
                   '[outputs]\naggregate = "agg.csv"\nsweep = "curve.csv"\nlang = "vi"\n',
                   encoding="utf-8")
    spec = read_run_file(run)
    p = spec.params
    assert p.phases == (1e9, 2e9) and p.phase_labels == ("2026", "2027") and p.has_plan
    assert p.locked == ("S1",) and p.sweep == (1e9, 5e9) and p.weight_col == "weight"
    assert p.exact is False and p.province_budgets == {"Lạng Sơn": 2e9}
    assert spec.inputs.corrections == tmp_path / "fixes.csv"
    assert spec.inputs.columns == {"villages": {"name": "TEN"}}
    assert spec.outputs.lang == "vi" and spec.outputs.keyed()["sweep"].name == "curve.csv"
    assert ScenarioParams.from_dict(p.to_dict()) == p
    assert isinstance(spec, RunSpec)
    assert spec.replace(params={"budget": 3e9}).params.budget == 3e9
    run.write_text('[inputs]\nvillages = "v.gpkg"\n[scenario]\nphase_labels = ["2026"]\n'
                   'phases = [1e9, 2e9]\n', encoding="utf-8")
    with pytest.raises(ParameterError, match="1 phase_labels for 2 phases"):
        read_run_file(run)


def test_validate_uses_the_configs_max_range(tiny, tmp_path):
    import pandas as pd

    sites = pd.read_csv(tiny["sites"])
    far = sites.iloc[[0]].assign(site_id="FAR", lat=sites["lat"].iloc[0] + 0.2)  # ~22 km
    path = tmp_path / "sites_far.csv"
    pd.concat([sites, far]).to_csv(path, index=False)
    args = ["validate", str(tiny["villages"]), "--towers", str(path)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "FAR" not in r.output  # within the default 30 km
    config = tmp_path / "c.toml"
    config.write_text("[model]\nmax_range_km = 10\n", encoding="utf-8")
    r = CliRunner().invoke(main, [*args, "--config", str(config)])
    assert r.exit_code == 0, r.output
    assert "more than 10 km from every village" in r.output and "FAR" in r.output


def test_the_parsers_examples_run():
    import doctest

    import coverage.settings
    import coverage.spec

    for module in (coverage.settings, coverage.spec):
        result = doctest.testmod(module)
        assert result.attempted >= 2 and result.failed == 0, module.__name__


def test_classify_plans_nothing_whatever_the_config_says(tiny, tmp_path, monkeypatch):
    """A run file as --config: classify keeps its settings but not its budget."""
    import coverage.execute as execute

    calls = []
    monkeypatch.setattr(execute.Run, "plan", lambda self: calls.append(1))
    config = tmp_path / "run.toml"
    config.write_text('[scenario]\nbudget = 6e9\nphases = [1e9]\n[model]\nresolution_m = 200\n',
                      encoding="utf-8")
    out = tmp_path / "c.csv"
    r = CliRunner().invoke(main, ["-q", "classify", str(tiny["villages"]), "--towers",
                                  str(tiny["sites"]), "--config", str(config), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert calls == [] and out.exists()


def test_a_commands_own_limits_replace_the_files(tmp_path):
    """plan --phases with a run file as --config: the file's budget does not add to them."""
    from coverage.cli.options import settings_spec

    config = tmp_path / "run.toml"
    config.write_text('[scenario]\nbudget = 40e9\nmax_sites = 9\nsweep = [1e9]\n',
                      encoding="utf-8")
    spec = settings_spec(config, scenario={"phases": [1e9, 2e9]}, file_limits=False)
    p = spec.params
    assert (p.budget, p.max_sites, p.phases, p.sweep) == (None, None, (1e9, 2e9), (1e9,))
    assert settings_spec(config).params.budget == 40e9  # validate and run keep them
