"""Settings the parser refuses: impossible values, and unknown names with a suggestion."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from coverage.cli import main
from coverage.errors import CoverageGapError, ParameterError
from coverage.params import (
    PROFILES,
    CostModel,
    ModelParams,
    PlanParams,
    Profile,
    get_profile,
)
from coverage.settings import parse_tables

IMPOSSIBLE = [
    ({"profile": {"min_download_mbps": -5}}, "[profile] min_download_mbps = -5.0",
     "0..10000 Mbps"),
    ({"profile": {"min_upload_mbps": 20_000}}, "[profile] min_upload_mbps = 20000.0",
     "0..10000 Mbps"),
    ({"profile": {"min_covered_share": 1.5}}, "[profile] min_covered_share = 1.5", "0..1"),
    ({"profile": {"max_no_service_share": -0.1}}, "[profile] max_no_service_share = -0.1",
     "0..1"),
    ({"profile": {"min_speed_tests": -1}}, "[profile] min_speed_tests = -1", "at least 1"),
    ({"profile": {"min_no_service_tests": 0}}, "[profile] min_no_service_tests = 0",
     "at least 1"),
    ({"profile": {"outdoor_rsrp_dbm": -200}}, "[profile] outdoor_rsrp_dbm = -200.0",
     "-160..-20 dBm"),
    ({"profile": {"outdoor_rscp_dbm": -5}}, "[profile] outdoor_rscp_dbm = -5.0",
     "-160..-20 dBm"),
    ({"profile": {"min_download_mbps": math.nan}}, "[profile] min_download_mbps = nan",
     "0..10000 Mbps"),
    ({"model": {"k_factor": 0}}, "[model] k_factor = 0.0", "0.25..1000"),
    ({"model": {"itm_time_pct": 100}}, "[model] itm_time_pct = 100.0", "0 and 100 excluded"),
    ({"model": {"techs": {"4G": {"eirp_dbm": 100}}}}, "[model.techs.4G] eirp_dbm = 100",
     "-30..90 dBm"),
    ({"plan": {"milp_max_candidates": -3}}, "[plan] milp_max_candidates = -3", "at least 0"),
    ({"plan": {"time_limit_s": 0}}, "[plan] time_limit_s = 0.0", "more than 0 s"),
    ({"costs": {"discount_rate": 1}}, "[costs] discount_rate = 1.0", "1 excluded"),
    ({"costs": {"new_tower": -1}}, "[costs] new_tower = -1.0", "at least 0"),
]


@pytest.mark.parametrize(("tables", "setting", "valid"), IMPOSSIBLE)
def test_impossible_value_is_refused_with_value_range_and_fix(tables, setting, valid):
    with pytest.raises(ParameterError) as info:
        parse_tables(tables, where="province.toml")
    text = str(info.value)
    assert text.startswith(f"province.toml: {setting} is out of range; use ")
    assert valid in text
    assert "or delete the line" in text


def test_fix_names_the_default_or_the_profile_value():
    with pytest.raises(ParameterError, match=r"delete the line for the default, 1.33333$"):
        ModelParams(k_factor=-1)
    with pytest.raises(ParameterError, match=r"delete the line for the default, 0.08$"):
        CostModel(discount_rate=2.0)
    with pytest.raises(ParameterError, match=r"to keep the profile's own value$"):
        get_profile("bead-25-3", min_download_mbps=-5)


def test_values_that_were_accepted_before_still_are():
    """The edges of each range, the rules turned off, and every built-in profile."""
    for name, profile in PROFILES.items():
        assert get_profile(name) is profile
        assert Profile(**{f: getattr(profile, f) for f in profile.__slots__}) == profile
    Profile(name="edges", min_download_mbps=0.0, min_upload_mbps=None, min_covered_share=1.0,
            outdoor_rsrp_dbm=-160.0, indoor_rsrp_dbm=-20.0, min_speed_tests=1,
            location_sigma_db=None)
    ModelParams(k_factor=0.25, calibration_propensity_floor=None, vertical_beamwidth_deg=0,
                itm_time_pct=0.1)
    PlanParams(milp_max_candidates=0, mip_rel_gap=0.0)
    CostModel(discount_rate=0.0, horizon_years=0)


def test_cli_prints_an_impossible_value_without_traceback(tmp_path, tiny):
    config = tmp_path / "bad.toml"
    config.write_text("[profile]\nmin_download_mbps = -5\n")
    result = CliRunner().invoke(main, ["classify", str(tiny["villages"]), "--towers",
                                       str(tiny["sites"]), "--config", str(config), "-o",
                                       str(tmp_path / "out.gpkg")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "[profile] min_download_mbps = -5.0 is out of range; use 0..10000 Mbps" in (
        result.output)
    assert not (tmp_path / "out.gpkg").exists()
    assert issubclass(ParameterError, CoverageGapError)


NEAR_MISSES = [
    ({"enigne": {}}, "unknown table(s) enigne (did you mean 'engine'?); known: "),
    ({"model": {"itm_climat": 3}},
     "unknown ModelParams setting(s) itm_climat (did you mean 'itm_climate'?); known: "),
    ({"profile": {"name": "vn-2052"}},
     "unknown profile 'vn-2052' (did you mean 'vn-2025'?); known profiles: "),
    ({"profile": {"name": "VN-2025"}}, "unknown profile 'VN-2025' (did you mean 'vn-2025'?)"),
    ({"scenario": {"budjet": 3e9}},
     "unknown scenario setting 'budjet' (did you mean 'budget'?); known: "),
    ({"engine": {"kin": "dask"}}, "unknown [engine] key(s) kin (did you mean 'kind'?)"),
    ({"engine": {"kind": "dsk"}}, "got 'dsk' (did you mean 'dask'?)"),
    ({"model": {"diffraction": "bulington"}},
     "[model] diffraction = 'bulington' (did you mean 'bullington'?): use 'bullington', "),
    ({"model": {"techs": {"4GG": {"eirp_dbm": 30}}}},
     "unknown technology '4GG' in techs (did you mean '4G'?); known: 2G, 3G, 4G, 5G"),
    ({"plan": {"tech": "4g"}}, "[plan] tech = '4g' (did you mean '4G'?): use '3G', "),
]


@pytest.mark.parametrize(("tables", "expected"), NEAR_MISSES)
def test_unknown_name_is_refused_with_a_suggestion(tables, expected):
    """The suggestion is only a hint: the near miss is still refused, never replaced."""
    with pytest.raises(ParameterError) as info:
        parse_tables(tables, where="province.toml")
    assert expected in str(info.value)


def test_no_suggestion_without_a_close_name():
    with pytest.raises(ParameterError) as info:
        parse_tables({"scenario": {"speed": 3}})
    assert "did you mean" not in str(info.value)
    assert "unknown scenario setting 'speed'; known: budget" in str(info.value)


def test_cli_choice_suggests_the_closest_profile(tiny, tmp_path):
    result = CliRunner().invoke(main, ["classify", str(tiny["villages"]), "--towers",
                                       str(tiny["sites"]), "--profile", "vn-2052", "-o",
                                       str(tmp_path / "out.gpkg")])
    assert result.exit_code == 2
    assert "'vn-2052' is not one of" in result.output
    assert "(did you mean 'vn-2025'?)" in result.output
