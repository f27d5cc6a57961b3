"""No-service shares: model prior, beta-binomial shrinkage, fallback tests, broadband speeds."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
from rasterio.transform import from_origin
from shapely.geometry import Point

from coverage.classify.noservice import (
    fit_prior_strength,
    inclusion_shares,
    market_shares,
    no_service_estimate,
    province_departures,
    site_shares,
    smoothed_shares,
    survey_regression_share,
)
from coverage.model import CoverageSurfaces, Grid, fuse_measurements
from coverage.params import ModelParams

CRS = pyproj.CRS.from_epsg(32648)


def test_prior_strength_is_recovered_from_beta_binomial_data():
    rng = np.random.default_rng(3)
    for kappa in (4.0, 40.0):
        mu = rng.uniform(0.05, 0.6, 3000)
        p = rng.beta(kappa * mu, kappa * (1 - mu))
        n = rng.integers(3, 20, 3000)
        k = rng.binomial(n, p)
        fitted = fit_prior_strength(mu, k.astype(float), n.astype(float))
        assert kappa / 1.5 < fitted < kappa * 1.5


def test_estimate_moves_from_the_model_to_the_tests_with_their_number():
    prior = np.array([0.1, 0.1, 0.1, 0.1])
    ev = pd.DataFrame({"n_service_tests": [0, 5, 50, 5000],
                       "no_service_share": [np.nan, 0.4, 0.4, 0.4]})
    est, kappa = no_service_estimate(ev, prior)
    assert np.isnan(est[0])  # no tests never means no service
    assert 0.1 < est[1] < est[2] < est[3] <= 0.4
    assert est[3] == pytest.approx(0.4, abs=0.01)
    assert est[1] == pytest.approx((kappa * 0.1 + 2.0) / (kappa + 5.0))


def _service_tests(village, operator, none):
    return {"village": np.array(village), "cell": np.zeros(len(village), dtype=int),
            "operator": np.array(operator), "operators": ["A", "B"],
            "none": np.array(none, dtype=bool), "weight": np.ones(len(village))}


def test_survey_regression_carries_the_tests_departure_to_the_residents():
    # village 0: operator A's tests all have service where the model gave them a 10% chance
    # of none; the model puts 40% of A's subscribers there without service (they live
    # behind the ridge, where nobody tested): the tests lower that by their departure only
    per_op = {"A": np.array([0.4, 0.1, 0.2]), "B": np.array([0.5, 0.5, 0.2])}
    shares = {"A": 0.6, "B": 0.4}
    tests = _service_tests([0] * 5 + [1] * 6, [0] * 5 + [0, 0, 0, 1, 1, 1],
                           [False] * 5 + [True, True, False, False, False, False])
    at_test = np.array([0.1] * 5 + [0.1, 0.1, 0.1, 0.5, 0.5, 0.5])
    est, se = survey_regression_share(per_op, shares, tests, at_test, 3)
    # A: 0.4 + (0 - 0.1); B untested in village 0: its model share
    assert est[0] == pytest.approx(0.6 * 0.3 + 0.4 * 0.5)
    # village 1, A: two of three without service where the model said 10%: 0.1 + 0.567;
    # B: none of three where the model said 50%: 0.5 - 0.5
    assert est[1] == pytest.approx(0.6 * (0.1 + (2 / 3 - 0.1)) + 0.4 * 0.0)
    assert np.isnan(est[2])  # no tests: no estimate from them
    assert se[0] > 0 and se[1] > 0 and se[0] > se[1] * 0.5


def test_an_untested_operator_takes_its_tests_departure_over_the_province():
    # B's tests in village 1 found service lacking more often than the model said (+0.2
    # on average), A's in village 0 less (-0.1); each village's untested operator takes
    # that operator's departure, a tested one keeps its own
    per_op = {"A": np.array([0.4, 0.1]), "B": np.array([0.3, 0.5])}
    shares = {"A": 0.6, "B": 0.4}
    tests = _service_tests([0] * 5 + [1] * 5, [0] * 5 + [1] * 5,
                           [False] * 5 + [True, True, True, True, False])
    at_test = np.array([0.1] * 5 + [0.6] * 5)
    shift = province_departures(tests, at_test, ["A", "B", "C"])
    assert shift == pytest.approx({"A": -0.1, "B": 0.2, "C": 0.0})
    est, _ = survey_regression_share(per_op, shares, tests, at_test, 2, untested=shift)
    plain, _ = survey_regression_share(per_op, shares, tests, at_test, 2)
    assert est[0] == pytest.approx(0.6 * (0.4 - 0.1) + 0.4 * (0.3 + 0.2))
    assert plain[0] == pytest.approx(0.6 * (0.4 - 0.1) + 0.4 * 0.3)
    # village 1: B by its own tests' departure (+0.2), A untested there by A's (-0.1)
    assert est[1] == pytest.approx(0.6 * (0.1 - 0.1) + 0.4 * (0.5 + 0.2))
    assert est[1] - plain[1] == pytest.approx(0.6 * -0.1)


def test_raw_share_of_tests_is_low_where_no_service_keeps_testers_away():
    # the model is right: 40% of the residents lack service, 10% at the testers' spots;
    # the tests' raw share (10%) misses the rule, the estimate does not
    per_op = {"A": np.array([0.4]), "B": np.array([0.4])}
    tests = _service_tests([0] * 10, [0] * 5 + [1] * 5, [True] + [False] * 9)
    est, _ = survey_regression_share(per_op, {"A": 0.5, "B": 0.5}, tests, np.full(10, 0.1), 1)
    assert tests["none"].mean() < 0.3 <= est[0]


def test_with_a_model_blind_to_where_testers_stand_the_estimate_is_the_tests_share():
    # the model gives every spot of the village what it gives its residents: it says
    # nothing of where testers stand, and the estimate is the tests' weighted share
    # however wrong the model's level (design-consistent whatever the model's quality)
    per_op = {"A": np.array([0.05]), "B": np.array([0.6])}
    tests = _service_tests([0] * 8, [0] * 4 + [1] * 4,
                           [True, False, False, False, True, True, False, False])
    tests["weight"] = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 3.0, 1.0])
    at_test = np.array([0.05] * 4 + [0.6] * 4)
    est, _ = survey_regression_share(per_op, {"A": 0.5, "B": 0.5}, tests, at_test, 1)
    assert est[0] == pytest.approx(0.5 * 1 / 5 + 0.5 * 2 / 6)


def test_where_the_model_foresees_each_test_the_drawn_tests_do_not_matter():
    # each spot's probability is its outcome (0 or 1): the departures are all zero and
    # any draw of the village's tests gives the model's mean over its residents
    per_op = {"A": np.array([0.3]), "B": np.array([0.3])}
    outcome = np.array([True, False, False, True, False, False, False, True])
    at_test = outcome.astype(float)
    ests = set()
    for pick in ([0, 1, 2, 3, 4], [1, 2, 4, 5, 6], [0, 3, 5, 6, 7]):
        tests = _service_tests([0] * 5, [0, 1, 0, 1, 0], outcome[pick])
        est, _ = survey_regression_share(per_op, {"A": 0.5, "B": 0.5}, tests,
                                         at_test[pick], 1)
        ests.add(round(float(est[0]), 12))
    assert ests == {0.3}


def test_market_shares_follow_the_tests():
    tests = pd.DataFrame({"operator": ["A"] * 59 + ["B"] * 19})
    shares = market_shares(tests, ["A", "B", "C"])
    assert shares == pytest.approx({"A": 60 / 81, "B": 20 / 81, "C": 1 / 81})


def test_inclusion_shares_count_each_test_by_its_inverse_propensity():
    # A and B have as many subscribers; half of B's have no service and test half as often:
    # 100 tests of A, 50 of B with service and 25 without (weighed 2). An Ookla tile of 4
    # tests names no operator; C has no test.
    tests = {"operator": np.array([0] * 100 + [1] * 75 + [-1]), "operators": ["A", "B"],
             "raw_weight": np.array([1.0] * 175 + [4.0]),
             "ipw": np.array([1.0] * 150 + [2.0] * 25 + [1.0])}
    shares = inclusion_shares(tests, ["A", "B", "C"])
    assert shares == pytest.approx({"A": 101 / 203, "B": 101 / 203, "C": 1 / 203})
    counted = market_shares(pd.DataFrame({"operator": ["A"] * 100 + ["B"] * 75}),
                            ["A", "B", "C"])
    assert counted["B"] < shares["B"]  # the tests as they are take B for smaller


def _surfaces(level_4g: float, level_3g: float) -> CoverageSurfaces:
    grid = Grid(from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), (20, 20), CRS)
    s = CoverageSurfaces(grid, params=ModelParams(calibrate=False))
    s.layers["A", "4G"] = np.full(grid.shape, level_4g, "float32")
    s.layers["A", "3G"] = np.full(grid.shape, level_3g, "float32")
    return s


def _tests(techs: list[str], levels: list[float]) -> gpd.GeoDataFrame:
    n = len(techs)
    return gpd.GeoDataFrame({"tech": techs, "operator": ["A"] * n, "rsrp_dbm": levels},
                            geometry=[Point(501_000.0 + 10 * i, 2_501_000.0)
                                      for i in range(n)], crs=CRS)


def test_a_handset_fallen_back_to_3g_says_4g_is_weak_there():
    model = _surfaces(-95.0, -80.0)
    fused = fuse_measurements(model, _tests(["3G"] * 6, [-82.0] * 6),
                              params=ModelParams(calibrate=False), radius_m=0.0)
    four = fused.layers["A", "4G"]
    # at the tests the 4G level is pulled under the level where handsets leave 4G
    assert np.nan_to_num(four[10, 10], nan=-200.0) < -110.0
    # away from them the model comes back
    assert -100.0 < four[0, 19] <= -95.0
    # and the 3G layer is not lowered by its own tests
    assert fused.layers["A", "3G"][10, 10] > -85.0


def test_2g_tests_count_in_the_residents_speed_at_their_2g_speed(tiny):
    from coverage.classify import classify_villages
    from coverage.io import read_villages
    from coverage.pipeline import analysis_grid

    villages = read_villages(tiny["villages"])
    grid = analysis_grid(villages, ModelParams())
    surfaces = CoverageSurfaces(grid, params=ModelParams())
    surfaces.layers["Viettel", "4G"] = np.full(grid.shape, -80.0, "float32")
    centre = villages.geometry.iloc[0].centroid
    n = 8
    rows = pd.DataFrame({
        "lon": [centre.x] * n, "lat": [centre.y] * n,
        "tech": ["4G"] * 3 + ["2G"] * 5, "operator": ["Viettel"] * n,
        "rsrp_dbm": [-80.0] * 3 + [-95.0] * 5,
        "download_mbps": [20.0, 22.0, 24.0, 0.1, 0.1, 0.1, 0.1, np.nan],
        "upload_mbps": [5.0] * 3 + [0.05] * 5})
    meas = gpd.GeoDataFrame(rows, geometry=gpd.points_from_xy(rows.lon, rows.lat),
                            crs=villages.crs)
    out = classify_villages(villages, surfaces, measurements=meas)
    first = out.iloc[0]
    # five of eight residents live on 2G (one without a measured speed, at EDGE's): their
    # median is a 2G speed, not the 4G tests' 22 Mbps
    assert first["median_download_mbps"] == pytest.approx(0.1)
    assert first["n_tests"] == 8
    assert "over 8 test(s)" in first["explanation"]


def test_poststratify_weighs_operators_by_market_share():
    from coverage.classify.survey import poststratify

    # market: A 3 tests of 4 overall (+1 smoothing: A 4/6, B 2/6); village 0 holds 1 A, 1 B
    g = np.array([0, 0, 1, 1])
    ops = pd.Series(["A", "B", "A", "A"])
    w = poststratify(g, ops, np.ones(4), np.ones(4, bool), 2)
    assert w[0] / w[1] == pytest.approx(2.0)  # A's share is twice B's
    assert w[0] + w[1] == pytest.approx(2.0)  # the village's total weight is kept
    assert w[2] == w[3] == pytest.approx(1.0)  # one operator tested: nothing to reweigh
    tiles = poststratify(g, pd.Series([None] * 4), np.full(4, 3.0), np.ones(4, bool), 2)
    assert tiles == pytest.approx(np.full(4, 3.0))


def test_poststratify_keeps_zero_weights_zero():
    from coverage.classify.survey import poststratify

    # village 0: B's only test stands where nobody lives (weight 0); village 1: every test
    # weighs 0. Those weights stay 0 (they were 0 x inf = NaN) and the rest are finite.
    g = np.array([0, 0, 0, 1, 1])
    ops = pd.Series(["A", "A", "B", "A", "B"])
    w = poststratify(g, ops, np.array([1.0, 1.0, 0.0, 0.0, 0.0]), np.ones(5, bool), 2)
    assert np.isfinite(w).all()
    assert w[2] == 0.0 and w[3] == 0.0 and w[4] == 0.0
    assert w[0] + w[1] == pytest.approx(2.0)


def test_most_tests_fallen_back_clear_the_higher_layer_at_their_cell():
    model = _surfaces(-95.0, -80.0)
    tests = _tests(["3G", "3G", "4G"], [-82.0, -83.0, -90.0])
    fused = fuse_measurements(model, tests, params=ModelParams(calibrate=False, krige=False),
                              radius_m=0.0)
    assert np.isnan(fused.layers["A", "4G"][10, 10])  # two of three camped on 3G
    even = fuse_measurements(model, _tests(["3G", "4G"], [-82.0, -90.0]),
                             params=ModelParams(calibrate=False, krige=False), radius_m=0.0)
    assert even.layers["A", "4G"][10, 10] == pytest.approx(-90.0)  # a tie keeps the level
    assert fused.layers["A", "4G"][0, 0] == pytest.approx(-95.0)  # elsewhere the model


def test_smoothed_shares_add_one_to_every_count_and_sum_to_one():
    shares = smoothed_shares(pd.Series({"a": 3.0, "c": 10.0}), ["a", "b"])
    assert list(shares) == ["a", "b"]  # the operators asked for, in order; "c" left out
    assert shares["a"] == pytest.approx(4 / 5)
    assert shares["b"] == pytest.approx(1 / 5)
    assert smoothed_shares({}, ["x", "y", "z"]) == pytest.approx({"x": 1 / 3, "y": 1 / 3,
                                                                  "z": 1 / 3})


def test_the_three_share_estimators_smooth_alike():
    tests = pd.DataFrame({"operator": ["a", "a", "a", "b"]})
    assert market_shares(tests, ["a", "b", "c"]) == smoothed_shares({"a": 3, "b": 1},
                                                                     ["a", "b", "c"])
    coded = {"operators": ["a", "b"], "operator": np.array([0, 0, 1]),
             "raw_weight": np.ones(3), "ipw": np.array([1.0, 2.0, 4.0])}
    assert inclusion_shares(coded, ["a", "b", "c"]) == smoothed_shares(
        {"a": 3.0, "b": 4.0}, ["a", "b", "c"])
    towers = pd.DataFrame({"operator": ["a", "a", "b"], "tech": ["4G", "2G", "3G"]})
    assert site_shares(towers, ["a", "b"]) == smoothed_shares({"a": 1, "b": 1}, ["a", "b"])

