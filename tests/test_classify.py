"""The vn-2025 rules, reasons, population weighting and measurement metrics."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from coverage.classify import apply_profile, classify_villages
from coverage.io import Raster
from coverage.model import CoverageSurfaces, Grid
from coverage.params import get_profile

VN = get_profile("vn-2025")
#: The rules with the model read as exact (hard thresholds on the modelled level), for the
#: tests of geometry and weighting.
EXACT = dataclasses.replace(VN, location_sigma_db=0.0)


def metrics(**cols):
    base = {"pop_covered_share": 0.9, "pop_indoor_share": 0.9, "pop_2g_share": 1.0,
            "n_tests": 0, "n_service_tests": 0, "median_download_mbps": np.nan,
            "median_upload_mbps": np.nan, "no_service_share": np.nan}
    base.update(cols)
    return pd.DataFrame({k: [v] for k, v in base.items()})


@pytest.mark.parametrize(("cols", "klass", "reasons"), [
    ({}, "served", ""),
    ({"pop_covered_share": 0.0, "pop_2g_share": 0.0}, "unavailable", "no_signal"),
    ({"pop_covered_share": 0.0, "pop_2g_share": 0.8}, "unavailable", "no_signal;2g_only"),
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.8}, "unavailable", "2g_only"),
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.2}, "unavailable", "partial_coverage"),
    ({"pop_covered_share": 0.5, "pop_indoor_share": 0.49}, "available_inaccessible",
     "weak_signal"),
    ({"n_tests": 5, "n_service_tests": 5, "median_download_mbps": 4.9,
      "no_service_share": 0.0}, "available_inaccessible", "slow_speed"),
    ({"n_tests": 4, "n_service_tests": 4, "median_download_mbps": 1.0,
      "no_service_share": 0.0}, "served", ""),  # too few tests to judge speed
    ({"n_tests": 10, "n_service_tests": 10, "median_download_mbps": 20.0,
      "no_service_share": 0.3}, "available_inaccessible", "measured_no_service"),
])
def test_rules_of_vn_2025(cols, klass, reasons):
    out = apply_profile(metrics(**cols), VN)
    assert out["class"].iloc[0] == klass
    assert out["reasons"].iloc[0] == reasons
    assert 0 <= out["confidence"].iloc[0] <= 1


def test_access_rules_and_missing_rows_set_no_constraint():
    m = pd.concat([metrics()] * 4, ignore_index=True)
    access = pd.DataFrame({
        "electricity_share": [0.4, 0.9, 0.9], "smartphone_share": [0.9, 0.2, 0.9],
        "monthly_income": [5e6, 5e6, 5e6], "data_price_1gb": [1e4, 1e4, 2e5],
    }, index=pd.Index(["a", "b", "c"], name="village_id"))
    out = apply_profile(m, VN, access=access, village_ids=pd.Series(["a", "b", "c", "d"]))
    assert list(out["reasons"]) == ["no_power", "no_devices", "unaffordable", ""]
    assert list(out["class"]) == ["available_inaccessible"] * 3 + ["served"]


def test_bead_profile_is_stricter_on_speed():
    m = metrics(n_tests=10, n_service_tests=10, median_download_mbps=20.0,
                median_upload_mbps=5.0, no_service_share=0.0)
    assert apply_profile(m, VN)["class"].iloc[0] == "served"
    assert apply_profile(m, get_profile("bead-25-3"))["reasons"].iloc[0] == "slow_speed"


def test_confidence_grows_with_margin_and_agreeing_tests():
    near = apply_profile(metrics(pop_covered_share=0.52), VN)["confidence"].iloc[0]
    far = apply_profile(metrics(pop_covered_share=0.95), VN)["confidence"].iloc[0]
    tested = apply_profile(metrics(pop_covered_share=0.52, n_tests=20, n_service_tests=20,
                                   no_service_share=0.0), VN)["confidence"].iloc[0]
    assert near < tested and near < far


def half_covered_case(pop_left: float, pop_right: float):
    """One 2 x 1 km village; the west half has 4G at -90 dBm, the east half nothing."""
    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 20), crs)
    level = np.full(grid.shape, np.nan, dtype="float32")
    level[:, :10] = -90.0
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    pop = np.zeros(grid.shape)
    pop[:, :10] = pop_left / 100
    pop[:, 10:] = pop_right / 100
    villages = gpd.GeoDataFrame({"village_id": ["01"], "name": ["Bản Nà"]},
                                geometry=[box(0, 0, 2000, 1000)], crs=crs)
    return villages, surfaces, Raster(pop, grid.transform, crs)


def test_shares_are_people_not_area():
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    out = classify_villages(villages, surfaces, population=pop, profile=EXACT)
    assert out["population"].iloc[0] == pytest.approx(1000.0)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.9)
    assert out["class"].iloc[0] == "served"
    villages, surfaces, pop = half_covered_case(100.0, 900.0)
    out = classify_villages(villages, surfaces, population=pop, profile=EXACT)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.1)
    assert out["class"].iloc[0] == "unavailable"
    assert out["reasons"].iloc[0] == "partial_coverage"


def test_without_tests_the_shares_read_the_model_with_the_textbook_spread():
    """A median a few dB over the threshold covers part of the people, not all of them."""
    from scipy.special import ndtr

    from coverage.classify.metrics import MODEL_SIGMA_DB

    villages, surfaces, pop = half_covered_case(1000.0, 0.0)
    level = surfaces.layers[("A", "4G")]
    level[:, :10] = VN.outdoor_rsrp_dbm + 4.0  # 4 dB over outdoors, 6 dB under indoors
    out = classify_villages(villages, surfaces, population=pop)
    assert MODEL_SIGMA_DB == 8.0
    assert out["pop_covered_share"].iloc[0] == pytest.approx(ndtr(4.0 / 8.0), abs=1e-3)
    assert out["pop_indoor_share"].iloc[0] == pytest.approx(ndtr(-6.0 / 8.0), abs=1e-3)
    assert out["class"].iloc[0] == "available_inaccessible"
    assert "weak_signal" in out["reasons"].iloc[0]
    # read as exact, every person is covered outdoors and nobody indoors
    exact = classify_villages(villages, surfaces, population=pop, profile=EXACT)
    assert exact["pop_covered_share"].iloc[0] == pytest.approx(1.0)
    assert exact["pop_indoor_share"].iloc[0] == pytest.approx(0.0)
    # a profile's own spread is taken as given
    wide = classify_villages(villages, surfaces, population=pop,
                             profile=dataclasses.replace(VN, location_sigma_db=16.0))
    assert wide["pop_covered_share"].iloc[0] == pytest.approx(ndtr(4.0 / 16.0), abs=1e-3)


def test_population_column_sets_total_and_area_weights_without_raster():
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    villages["population"] = 5000
    out = classify_villages(villages, surfaces, population=pop, profile=EXACT)
    assert out["population"].iloc[0] == 5000
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.9)
    out = classify_villages(villages.drop(columns="population"), surfaces, profile=EXACT)
    assert np.isnan(out["population"].iloc[0])
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.5)


def test_tests_are_counted_in_their_village_and_rows_stay_in_order():
    villages, surfaces, _ = half_covered_case(900.0, 100.0)
    villages = pd.concat([villages, villages.assign(village_id="02", geometry=[
        box(5000, 0, 6000, 1000)])], ignore_index=True)
    villages = gpd.GeoDataFrame(villages, crs=32648)
    pts = gpd.GeoSeries([Point(500, 500)] * 6 + [Point(9999, 9999)], crs=32648).to_crs(4326)
    m = gpd.GeoDataFrame({"tech": ["4G"] * 6 + ["4G"], "operator": ["A"] * 7,
                          "rsrp_dbm": [-95.0] * 7, "download_mbps": [1, 2, 3, 4, 5, 6, 50.0],
                          "upload_mbps": np.nan, "weight": 1.0},
                         geometry=pts.to_numpy(), crs=4326)
    out = classify_villages(villages, surfaces, measurements=m, profile=EXACT)
    assert list(out["village_id"]) == ["01", "02"]
    assert list(out["n_tests"]) == [6, 0]
    # the tests' median is 3.5 Mbps; the residents' share under 5 Mbps, carried by the model
    # from the tests' covered spot to the village's uncovered half, is over the tests' 4 of
    # 6, and the median over the weights calibrated to it falls to a slow test's speed
    assert 3.0 <= out["median_download_mbps"].iloc[0] <= 3.5
    assert "slow_speed" in out["reasons"].iloc[0]


# --------------------------------------------------------------------------- rule edges
@pytest.mark.parametrize(("cols", "klass", "reasons"), [
    ({"pop_covered_share": 0.499}, "unavailable", "2g_only"),
    ({"pop_covered_share": 0.501}, "served", ""),
    ({"pop_covered_share": 0.5}, "served", ""),  # "< 0.5" is unavailable; 0.5 is not
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.5}, "unavailable", "2g_only"),
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.499}, "unavailable", "partial_coverage"),
    ({"pop_indoor_share": 0.499}, "available_inaccessible", "weak_signal"),
    ({"pop_indoor_share": 0.501}, "served", ""),
    ({"n_tests": 5, "median_download_mbps": 4.99}, "available_inaccessible", "slow_speed"),
    ({"n_tests": 4, "median_download_mbps": 4.99}, "served", ""),
    ({"n_tests": 5, "median_download_mbps": 5.0}, "served", ""),
    ({"n_service_tests": 5, "no_service_share": 0.3}, "available_inaccessible",
     "measured_no_service"),
    ({"n_service_tests": 5, "no_service_share": 0.29}, "served", ""),
    ({"n_service_tests": 4, "no_service_share": 1.0}, "served", ""),
])
def test_rules_at_each_threshold_edge(cols, klass, reasons):
    out = apply_profile(metrics(**cols), VN)
    assert (out["class"].iloc[0], out["reasons"].iloc[0]) == (klass, reasons)


def test_access_rules_at_their_edges():
    m = pd.concat([metrics()] * 6, ignore_index=True)
    access = pd.DataFrame({
        "electricity_share": [0.499, 0.5, 0.9, 0.9, 0.9, 0.9],
        "smartphone_share": [0.9, 0.9, 0.299, 0.3, 0.9, 0.9],
        "monthly_income": [1e6] * 6, "data_price_1gb": [1e4, 1e4, 1e4, 1e4, 20_100, 20_000],
    }, index=pd.Index(list("abcdef"), name="village_id"))
    out = apply_profile(m, VN, access=access, village_ids=pd.Series(list("abcdef")))
    assert list(out["reasons"]) == ["no_power", "", "no_devices", "", "unaffordable", ""]


def test_every_threshold_is_overridable_from_the_config(tmp_path):
    from coverage.errors import ParameterError
    from coverage.pipeline import Settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[profile]\nname = "bead-100-20"\nmin_covered_share = 0.6\n'
                   'min_override_tests = 8\nstability_db = 2.0\nfibre_target_2025 = 0.7\n')
    p = Settings.from_config(cfg).profile
    assert (p.name, p.min_covered_share, p.min_override_tests) == ("bead-100-20", 0.6, 8)
    assert (p.min_download_mbps, p.stability_db, p.fibre_target_2025) == (100.0, 2.0, 0.7)
    assert apply_profile(metrics(pop_covered_share=0.55), p)["class"].iloc[0] == "unavailable"
    cfg.write_text("[profile]\nmin_coverd_share = 0.6\n")
    with pytest.raises(ParameterError, match="min_coverd_share"):
        Settings.from_config(cfg)
    with pytest.raises(ParameterError, match="share"):
        get_profile("vn-2025", min_covered_share=50)
    # a setting of the wrong kind is named with what it should be
    for text, expected in (('[profile]\nmin_covered_share = "half"\n', "expected a number"),
                           ("[profile]\nmin_override_tests = 5.5\n", "a whole number"),
                           ('[model]\nterrain = "yes"\n', "true or false"),
                           ('[model]\nterrain_resolution_m = "fifty"\n', "a number"),
                           ("[model]\npath_loss = 1\n", "a text in quotes")):
        cfg.write_text(text)
        with pytest.raises(ParameterError, match=expected):
            Settings.from_config(cfg)
    cfg.write_text("[model]\nterrain_resolution_m = 50\n[profile]\nmin_override_tests = 6.0\n")
    s = Settings.from_config(cfg)
    assert s.model.terrain_step_m == 50 and s.profile.min_override_tests == 6
    assert isinstance(s.profile.min_override_tests, int)


def test_profiles_bead_tiers_and_gsma_gap():
    m = metrics(n_tests=10, median_download_mbps=60.0, median_upload_mbps=10.0,
                pop_indoor_share=0.2)
    assert apply_profile(m, get_profile("bead-25-3"))["reasons"].iloc[0] == "weak_signal"
    assert apply_profile(m, get_profile("bead-100-20"))["reasons"].iloc[0] == (
        "weak_signal;slow_speed")
    # GSMA: the coverage gap and the usage gap only; no indoor or speed rule
    assert apply_profile(m, get_profile("gsma-gap"))["class"].iloc[0] == "served"


# --------------------------------------------------------------------------- stability
def test_label_stability_under_moved_thresholds():
    m = pd.concat([metrics(pop_covered_share=0.52), metrics(pop_covered_share=0.9),
                   metrics(pop_covered_share=0.9, pop_covered_share_strict=0.45),
                   metrics(pop_covered_share=0.2, pop_2g_share=0.0)], ignore_index=True)
    out = apply_profile(m, VN)
    # 0.52 fails the 10% stricter 0.55; 0.9 holds; a -3 dB move losing coverage; 0.2 holds
    assert list(out["label_stable"]) == [False, True, False, True]
    base = apply_profile(metrics(pop_covered_share=0.52), VN.replace(stability_rel=0.0))
    assert bool(base["label_stable"].iloc[0])
    assert out["confidence"].iloc[0] < base["confidence"].iloc[0]


# --------------------------------------------------------------------------- confidence
def test_confidence_follows_the_evidence():
    def conf(**cols):
        return apply_profile(metrics(**cols), VN)["confidence"].iloc[0]

    near_model = conf(pop_covered_share=0.55, prior_share=0.55)
    assert near_model < 0.7
    far_model = conf(pop_covered_share=0.95, prior_share=0.95)
    agreeing = conf(pop_covered_share=0.95, prior_share=0.95, n_cov_tests=30, k_cov_tests=30)
    disagreeing = conf(pop_covered_share=0.95, prior_share=0.95, n_cov_tests=30,
                       k_cov_tests=3)
    assert near_model < far_model < agreeing
    assert disagreeing < 0.5 < far_model
    unavailable = conf(pop_covered_share=0.1, prior_share=0.1, pop_2g_share=0.0,
                       n_cov_tests=12, k_cov_tests=0)
    assert unavailable > 0.95


def test_confidence_in_a_share_follows_its_sensitivity_and_the_models_error():
    """With the village's model error known to +/- sd dB, a share that barely moves with the
    signal is sure, one on a coverage edge is not; more tests (a smaller sd) make it surer."""
    def conf(share, strict, loose, sd):
        return apply_profile(metrics(pop_covered_share=share, pop_covered_share_strict=strict,
                                     pop_covered_share_loose=loose, model_offset_sd_db=sd,
                                     n_cov_tests=10, k_cov_tests=0), VN)["confidence"].iloc[0]

    flat = conf(0.62, 0.60, 0.64, 8.0)       # 0.7 points per dB
    edge = conf(0.62, 0.40, 0.84, 8.0)       # 7 points per dB
    edge_tested = conf(0.62, 0.40, 0.84, 1.5)
    assert edge < 0.6 < flat
    assert edge < edge_tested
    # own-operator tests without service no longer pull a best-operator share down:
    # the same village without the error's spread falls back to the beta posterior
    assert conf(0.62, 0.60, 0.64, np.nan) < flat


def test_tests_that_found_broadband_make_an_uncovered_verdict_doubtful():
    """The village's error is capped so that tests never lift the model; its tests that
    found broadband still say that people have coverage there, and the confidence hears
    them. Tests without service are the offset's already: they change nothing here."""
    def verdict(n, k):
        return apply_profile(metrics(pop_covered_share=0.3, pop_covered_share_strict=0.15,
                                     pop_covered_share_loose=0.45, pop_indoor_share=0.2,
                                     pop_2g_share=0.9, model_offset_sd_db=4.0,
                                     n_cov_tests=n, k_cov_tests=k), VN)
    untested, silent, one, three = verdict(0, 0), verdict(4, 0), verdict(4, 1), verdict(4, 3)
    assert {v["class"].iloc[0] for v in (untested, silent, one, three)} == {"unavailable"}
    conf = [v["confidence"].iloc[0] for v in (untested, silent, one, three)]
    assert conf[0] == conf[1] > conf[2] > conf[3]
    assert conf[3] < 0.5


def test_a_province_whose_tests_seldom_find_broadband_hears_those_that_do():
    """Tests find broadband at odds b of the village's share (own operator, fallbacks):
    fitted per province; a province where they seldom do makes each one that does say
    more. Under ten tested villages, the odds are 1."""
    from coverage.classify.metrics import _served_odds

    m = pd.DataFrame({"n_cov_tests": [10.0] * 12 + [10.0] * 3 + [0.0],
                      "k_cov_tests": [4.0] * 12 + [8.0] * 3 + [0.0],
                      "pop_covered_share": [0.8] * 16})
    provinces = gpd.GeoDataFrame({"province": ["A"] * 12 + ["B"] * 3 + ["A"]})
    odds = _served_odds(m, provinces)
    assert odds[:12] == pytest.approx((0.4 / 0.6) / (0.8 / 0.2), rel=1e-3)
    assert odds[15] == odds[0]  # an untested village takes its province's
    assert list(odds[12:15]) == [1.0] * 3

    def conf(served_odds):
        return apply_profile(metrics(pop_covered_share=0.3, pop_covered_share_strict=0.15,
                                     pop_covered_share_loose=0.45, pop_indoor_share=0.2,
                                     pop_2g_share=0.9, model_offset_sd_db=4.0,
                                     n_cov_tests=4, k_cov_tests=1, served_odds=served_odds),
                             VN)["confidence"].iloc[0]
    assert conf(0.2) < conf(1.0)


def test_a_measured_indoor_share_is_as_sure_as_its_tests():
    """A measured village's indoor share is its tests' (6 of 10 with the building margin):
    the weak-signal side is doubtful by their sampling, however sure the model's error."""
    def served(n_indoor, evidence):
        return apply_profile(metrics(pop_covered_share=0.95, pop_covered_share_strict=0.94,
                                     pop_covered_share_loose=0.96, pop_indoor_share=0.6,
                                     pop_indoor_share_strict=0.59, pop_indoor_share_loose=0.61,
                                     model_offset_sd_db=1.0, n_cov_tests=n_indoor,
                                     k_cov_tests=n_indoor, n_indoor_tests=n_indoor,
                                     evidence=evidence), VN)
    model, few, many = served(10, "model+sparse_tests"), served(10, "measured"), served(
        200, "measured")
    assert {v["class"].iloc[0] for v in (model, few, many)} == {"served"}
    assert few["confidence"].iloc[0] < 0.85 < model["confidence"].iloc[0]
    assert few["confidence"].iloc[0] < many["confidence"].iloc[0]


def test_served_under_the_no_service_minimum_is_doubtful_when_the_model_says_so():
    """Three tests cannot fire the no-service rule, so the class is served; the model's
    prior that half the subscribers have no service makes that class doubtful."""
    def conf(prior):
        return apply_profile(metrics(pop_covered_share=0.95, pop_indoor_share=0.95,
                                     n_tests=3, n_service_tests=3, no_service_share=0.34,
                                     no_service_share_tests=0.34, no_service_prior=prior,
                                     no_service_prior_tests=17.0), VN)
    doubtful, sure = conf(0.5), conf(0.03)
    assert (doubtful["class"].iloc[0], sure["class"].iloc[0]) == ("served", "served")
    assert doubtful["confidence"].iloc[0] < 0.3 < 0.7 < sure["confidence"].iloc[0]


def test_no_service_rule_with_enough_tests_is_as_sure_as_its_estimate():
    """Eight tests: the survey regression estimate decides; its standard error says how
    sure the rule's side is."""
    def conf(share, se):
        return apply_profile(metrics(pop_covered_share=0.95, pop_indoor_share=0.95,
                                     n_tests=8, n_service_tests=8, no_service_share=share,
                                     no_service_share_se=se), VN)
    fired, near, far = conf(0.36, 0.04), conf(0.31, 0.04), conf(0.10, 0.04)
    assert fired["reasons"].iloc[0] == near["reasons"].iloc[0] == "measured_no_service"
    assert far["class"].iloc[0] == "served"
    assert near["confidence"].iloc[0] < 0.7 < fired["confidence"].iloc[0]
    assert far["confidence"].iloc[0] > 0.9


# --------------------------------------------------------------------------- population
def test_village_outside_the_raster_keeps_area_shares_and_unknown_population(caplog):
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    far = Raster(pop.array, from_origin(50_000, 60_000, 100, 100), pop.crs)
    out = classify_villages(villages, surfaces, population=far, profile=EXACT)
    assert np.isnan(out["population"].iloc[0])
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.5)  # not "no signal"
    assert "outside the population raster" in caplog.text


def test_exact_cell_fractions_and_nodata_cells(caplog):
    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(0, 2000, 100, 100), (20, 30), crs)
    level = np.full(grid.shape, -90.0, dtype="float32")
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    pop = np.array([[100.0, 100.0, np.nan]] * 2)  # 1 km cells, the east column nodata
    raster = Raster(pop, from_origin(0, 2000, 1000, 1000), crs)
    villages = gpd.GeoDataFrame({"village_id": ["a", "b"]}, geometry=[
        box(0, 1000, 1500, 2000),        # one cell and half of the next: 150 people
        box(1500, 0, 2500, 1000)], crs=crs)  # half on data (50 people), half on nodata
    with caplog.at_level("WARNING", logger="coverage.classify"):
        out = classify_villages(villages, surfaces, population=raster)
    assert out["population"].tolist() == pytest.approx([150.0, 50.0])
    # the half on nodata is reported, with its share and the shore's case
    assert "1 village(s) lie partly outside" in caplog.text
    assert "50% to 50% of their area" in caplog.text and "e.g. b" in caplog.text


def test_geographic_population_raster_counts_people_and_weights_shares():
    villages, surfaces, _ = half_covered_case(900.0, 100.0)
    # the same people on a fine EPSG:4326 grid over the village
    geo = villages.to_crs(4326).total_bounds
    cols, rows = 80, 40
    dx, dy = (geo[2] - geo[0]) / cols, (geo[3] - geo[1]) / rows
    arr = np.zeros((rows, cols))
    arr[:, : cols // 2] = 900.0 / (rows * cols / 2)
    arr[:, cols // 2:] = 100.0 / (rows * cols / 2)
    raster = Raster(arr, from_origin(geo[0], geo[3], dx, dy), CRS.from_epsg(4326))
    out = classify_villages(villages, surfaces, population=raster)
    assert out["population"].iloc[0] == pytest.approx(1000.0, rel=0.01)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.9, abs=0.02)


def test_coarse_raster_is_spread_over_the_fine_model_grid():
    villages, surfaces, _ = half_covered_case(0, 0)
    one_cell = Raster(np.array([[1000.0, 1000.0]]), from_origin(0, 1000, 1000, 1000),
                      surfaces.grid.crs)
    # a 1 km x 2 km village, 2 cells of 1 km; the west 1 km is covered exactly
    out = classify_villages(villages, surfaces, population=one_cell, profile=EXACT)
    assert out["population"].iloc[0] == pytest.approx(2000.0)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.5)
