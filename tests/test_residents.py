"""The test rules measure residents: every test counts, where people live, sparse villages."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import box

from coverage.classify import apply_profile, classify_villages, residents
from coverage.classify.residents import (
    GSM_DOWNLOAD_MBPS,
    fit_slow_curve,
    location_weights,
    posterior_above,
    resident_download,
)
from coverage.classify.zonal import ZonalWeights
from coverage.io import Raster
from coverage.model import CoverageSurfaces, Grid
from coverage.model.measured import group_value_order
from coverage.params import ModelParams, get_profile

VN = get_profile("vn-2025")
UTM = CRS.from_epsg(32648)


def _metrics(**cols) -> pd.DataFrame:
    base = {"pop_covered_share": 0.9, "pop_indoor_share": 0.9, "pop_2g_share": 1.0,
            "n_tests": 0, "n_service_tests": 0, "n_speed_tests": 0,
            "median_download_mbps": np.nan, "median_upload_mbps": np.nan,
            "no_service_share": np.nan}
    base.update(cols)
    return pd.DataFrame({k: [v] for k, v in base.items()})


def test_no_service_is_zero_and_2g_without_a_speed_is_edge():
    dl = resident_download(np.array(["none", "2G", "2G", "4G", "4G", None], dtype=object),
                           np.array([np.nan, np.nan, 0.15, 30.0, np.nan, 12.0]))
    assert dl[0] == 0.0
    assert dl[1] == GSM_DOWNLOAD_MBPS
    assert dl[2] == 0.15
    assert dl[3] == 30.0 and np.isnan(dl[4]) and dl[5] == 12.0


def _pieces(people: list[float]) -> ZonalWeights:
    k = len(people)
    return ZonalWeights(np.zeros(k, dtype=int), np.arange(k), np.asarray(people, float), 1)


def test_tests_where_nobody_lives_stand_for_no_resident():
    # cell 0 empty (a road through the forest), cells 1-3 hold the people
    people = _pieces([0.0, 100.0, 100.0, 100.0])
    cell = np.array([0, 0, 1, 2, 3])
    g = np.zeros(5, dtype=int)
    w = location_weights(g, people.ranked.place(g, cell), np.ones(5), np.ones(5, bool), people, 1)
    assert w[:2].sum() == 0.0
    assert w.sum() == pytest.approx(5.0)  # the village's weight is kept


def test_crowded_town_tests_are_weighed_down_to_the_towns_people():
    # a town cell with 300 people and three rural cells with 100 each: half the people in
    # the town; 10 tests in the town and 2 in the countryside
    people = _pieces([300.0, 100.0, 100.0, 100.0])
    cell = np.array([0] * 10 + [1, 3])
    g = np.zeros(12, dtype=int)
    w = location_weights(g, people.ranked.place(g, cell), np.ones(12), np.ones(12, bool), people, 1)
    town, rural = w[:10].sum(), w[10:].sum()
    assert town / (town + rural) == pytest.approx(0.5)
    # all tests in the town: nothing to correct
    zeros = np.zeros(6, int)
    w2 = location_weights(zeros, people.ranked.place(zeros, zeros), np.ones(6),
                          np.ones(6, bool), people, 1)
    assert w2 == pytest.approx(np.ones(6))


def test_sparse_rules_fire_at_posterior_one_half():
    fired = apply_profile(_metrics(n_speed_tests=4, median_download_mbps=20.0,
                                   slow_probability=0.5), VN)
    assert fired["reasons"].iloc[0] == "slow_speed"
    held = apply_profile(_metrics(n_speed_tests=4, median_download_mbps=1.0,
                                  slow_probability=0.49), VN)
    assert held["class"].iloc[0] == "served"
    # from 5 tests, the tests' estimate decides whatever the prior says
    tests = apply_profile(_metrics(n_speed_tests=5, median_download_mbps=20.0,
                                   slow_probability=0.99), VN)
    assert tests["class"].iloc[0] == "served"
    none = apply_profile(_metrics(n_service_tests=3, no_service_share=0.1,
                                  no_service_probability=0.6), VN)
    assert none["reasons"].iloc[0] == "measured_no_service"
    # no tests never means no problem either: the prior alone decides, at the same 1/2
    untested = apply_profile(_metrics(slow_probability=0.9, no_service_probability=0.9), VN)
    assert untested["reasons"].iloc[0] == "slow_speed;measured_no_service"
    assert untested["confidence"].iloc[0] <= VN.max_model_confidence
    quiet = apply_profile(_metrics(slow_probability=0.49, no_service_probability=0.49), VN)
    assert quiet["class"].iloc[0] == "served"
    # metrics without a prior (made by hand) never fire a test rule without tests
    assert apply_profile(_metrics(), VN)["class"].iloc[0] == "served"


def test_posterior_moves_from_the_prior_to_the_tests():
    p0 = posterior_above(np.array([0.2]), 10.0, np.array([0.0]), np.array([0.0]), 0.5)
    p4 = posterior_above(np.array([0.2]), 10.0, np.array([4.0]), np.array([4.0]), 0.5)
    assert p0 < 0.1 < p4
    assert posterior_above(np.array([0.2]), 2.0, np.array([4.0]), np.array([4.0]), 0.5) > 0.5


def test_slow_curve_falls_with_the_margin():
    rng = np.random.default_rng(1)
    m = rng.uniform(-10, 40, 2000)
    slow = rng.uniform(size=2000) < 1 / (1 + np.exp(-(1.0 - 0.2 * m)))
    a, b = fit_slow_curve(m, slow)
    assert a == pytest.approx(1.0, abs=0.3)
    assert b == pytest.approx(-0.2, abs=0.04)


def test_slow_curve_of_many_tests_is_fitted_on_a_seeded_sample(monkeypatch):
    rng = np.random.default_rng(2)
    m = rng.uniform(-10, 40, 20_000)
    slow = rng.uniform(size=len(m)) < 1 / (1 + np.exp(-(1.0 - 0.2 * m)))
    m[::7] = np.nan  # tests without a level are never drawn
    whole = fit_slow_curve(m, slow)
    monkeypatch.setattr(residents, "CURVE_MAX_TESTS", 5_000)
    sample = fit_slow_curve(m, slow)
    assert sample != whole and sample == fit_slow_curve(m, slow)  # a sample, the same one
    assert sample == pytest.approx(whole, abs=0.1)


def _province():
    """Two villages under two operators' strong 4G (modelled), with a population raster."""
    grid = Grid(from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), (20, 40), UTM)
    s = CoverageSurfaces(grid, params=ModelParams(calibrate=False, krige=False))
    s.layers["A", "4G"] = np.full(grid.shape, -80.0, "float32")
    s.layers["A", "2G"] = np.full(grid.shape, -70.0, "float32")
    s.layers["B", "4G"] = np.full(grid.shape, -80.0, "float32")
    villages = gpd.GeoDataFrame({"village_id": ["1", "2"]},
                                geometry=[box(500_000, 2_500_000, 502_000, 2_502_000),
                                          box(502_000, 2_500_000, 504_000, 2_502_000)],
                                crs=UTM)
    pop = np.full((20, 40), 10.0, "float32")
    pop[:, :5] = 100.0
    raster = Raster(pop, from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), UTM)
    return s, villages, raster


def test_the_issue_village_of_28_tests_is_slow():
    # 18 residents on 2G, 2 without service and 8 on 4G at 27.7 Mbps: the residents'
    # median is a 2G speed, whatever the 4G tests say
    s, villages, raster = _province()
    rng = np.random.default_rng(0)
    n = 28
    tech = ["2G"] * 18 + ["none"] * 2 + ["4G"] * 8
    dl = list(rng.uniform(0.08, 0.2, 18)) + [np.nan] * 2 + [27.7] * 8
    x = rng.uniform(500_100, 501_900, n)
    y = rng.uniform(2_500_100, 2_501_900, n)
    # operator A's subscribers fell back to 2G or lost service; B's 4G covers everyone
    meas = gpd.GeoDataFrame({"tech": tech, "operator": ["A"] * 20 + ["B"] * 8,
                             "rsrp_dbm": [-90.0] * 18 + [np.nan] * 2 + [-80.0] * 8,
                             "download_mbps": dl},
                            geometry=gpd.points_from_xy(x, y), crs=UTM)
    out = classify_villages(villages, s, measurements=meas, population=raster)
    first = out.iloc[0]
    assert first["median_download_mbps"] < 1.0
    assert "over 28 test(s)" in first["explanation"]
    assert first["class"] == "available_inaccessible"
    assert "slow_speed" in first["reasons"]
    # the untested village gets no reason from tests
    assert out.iloc[1]["class"] == "served"
    assert out.iloc[1]["evidence"] == "model"


@pytest.mark.parametrize(("shift_db", "lowered"), [(10.0, False), (-10.0, True)])
def test_tests_that_decide_lower_or_lift_the_untested_cells(shift_db, lowered):
    """80 tests in the village: they decide, and move its untested cells both ways (a
    village with fewer tests is lowered only: ``test_classify_evidence.py``)."""
    from coverage.classify.evidence import measurement_evidence

    s, villages, _ = _province()
    rng = np.random.default_rng(2)
    n = 80  # enough tests to calibrate (at least 30), in the first village
    x, y = rng.uniform(500_100, 501_900, n), rng.uniform(2_500_100, 2_501_900, n)
    meas = gpd.GeoDataFrame({"tech": ["4G"] * n, "operator": ["A"] * n,
                             "rsrp_dbm": -80.0 + shift_db + rng.normal(0, 2, n)},
                            geometry=gpd.points_from_xy(x, y), crs=UTM)
    ev = measurement_evidence(villages, meas, s, VN)
    offset = ev["model_offset_db"].iloc[0]
    if lowered:
        assert offset < -5.0  # the model was too strong: lowered
    else:
        assert offset > 5.0  # too weak at the tests: lifted



def _two_villages_and_people() -> tuple[gpd.GeoDataFrame, Raster]:
    """Two 2 km villages side by side over the 20 x 40 grid, 10 people a cell."""
    villages = gpd.GeoDataFrame({"village_id": ["1", "2"]},
                                geometry=[box(500_000, 2_500_000, 502_000, 2_502_000),
                                          box(502_000, 2_500_000, 504_000, 2_502_000)],
                                crs=UTM)
    raster = Raster(np.full((20, 40), 10.0, "float32"),
                    from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), UTM)
    return villages, raster

def _shadowed_province():
    """One village whose town has both operators' 4G; behind it, operator A only has 2G.

    A quarter of the people live in the town (the first 5 of 20 columns), three quarters
    behind it; a second village lies wholly in A's shadow.
    """
    grid = Grid(from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), (20, 40), UTM)
    s = CoverageSurfaces(grid, params=ModelParams(calibrate=False, krige=False))
    a4 = np.full(grid.shape, -130.0, "float32")
    a4[:, :5] = -80.0
    s.layers["A", "4G"] = a4
    s.layers["A", "2G"] = np.full(grid.shape, -70.0, "float32")
    s.layers["B", "4G"] = np.full(grid.shape, -80.0, "float32")
    villages, raster = _two_villages_and_people()
    return s, villages, raster


def _towers(counts: dict[str, int]) -> gpd.GeoDataFrame:
    """One 4G sector (one cell) per row, ``counts`` per operator, and a 2G cell each."""
    rows = [(f"{op}{i}", op, tech, 500_050.0 + 300 * i, 2_500_050.0 + 100 * k)
            for k, (op, n) in enumerate(counts.items()) for i in range(n)
            for tech in ("4G", "2G")]
    df = pd.DataFrame(rows, columns=["site_id", "operator", "tech", "x", "y"])
    return gpd.GeoDataFrame(df.drop(columns=["x", "y"]),
                            geometry=gpd.points_from_xy(df["x"], df["y"]), crs=UTM)


def test_site_shares_count_each_operators_broadband_cells():
    from coverage.classify.noservice import site_shares

    towers = _towers({"A": 5, "B": 1})
    assert site_shares(towers, ["A", "B"])["A"] == pytest.approx(6 / 8)  # 2G not counted
    # an OpenCelliD site stands for its cells
    towers["cells"] = np.where(towers["operator"] == "B", 5.0, np.nan)
    assert site_shares(towers, ["A", "B"])["A"] == pytest.approx(0.5)
    assert site_shares(None, ["A", "B"]) == {"A": 0.5, "B": 0.5}


def test_a_towers_only_run_finds_residents_without_their_operators_broadband():
    # no test anywhere: operator A's subscribers behind the town fall back to 2G, so where
    # A has most of the sites (and subscribers) most residents are slow
    s, villages, raster = _shadowed_province()
    out = classify_villages(villages, s, population=raster, towers=_towers({"A": 6, "B": 1}))
    assert (out["class"] == "available_inaccessible").all()
    assert out["reasons"].str.contains("slow_speed").all()
    assert (out["evidence"] == "model").all()
    assert (out["confidence"] <= VN.max_model_confidence).all()
    assert "no tests, model only: " in out["explanation"].iloc[1]
    assert "of residents slow" in out["explanation"].iloc[1]
    assert out["median_download_mbps"].isna().all()  # no tests: no residents' median
    # where B, whose 4G covers everyone, has most subscribers, nobody is flagged
    quiet = classify_villages(villages, s, population=raster,
                              towers=_towers({"A": 1, "B": 6}))
    assert (quiet["class"] == "served").all()


def test_calibrated_weights_put_the_median_on_the_estimates_side():
    from coverage.classify.residents import calibrated_weights
    from coverage.classify.survey import group_weighted_median

    g = np.array([0] * 6 + [1] * 5 + [2] * 5)
    dl = np.array([0.1, 20, 20, 20, 20, 20] + [0.1] * 5 + [0.1, 0.1, 9, 9, 9])
    w = np.ones(len(g))
    slow = dl < 5.0
    target = np.array([0.6, 0.2, np.nan])
    cw = calibrated_weights(g, slow, w, target)
    share = np.bincount(g, weights=cw * slow) / np.bincount(g, weights=cw)
    assert share[0] == pytest.approx(0.6)
    assert np.bincount(g, weights=cw)[0] == pytest.approx(6.0)  # the village's weight kept
    # all tests slow: no scaling reaches 0.2; no target: as they were
    assert cw[6:] == pytest.approx(w[6:])
    med = group_weighted_median(g, dl, cw, 3)
    assert med[0] < 5.0 and med[2] > 5.0


def test_the_model_carries_the_tests_slow_share_from_the_town_to_the_homes():
    # six tests in the town, one of operator A's on 2G: the tests' median is fast, but three
    # quarters of the people live where A's subscribers have only 2G
    s, villages, raster = _shadowed_province()
    rng = np.random.default_rng(3)
    x, y = rng.uniform(500_050, 500_450, 6), rng.uniform(2_500_100, 2_501_900, 6)
    meas = gpd.GeoDataFrame({"tech": ["2G", "4G", "4G", "4G", "4G", "4G"],
                             "operator": ["A"] * 5 + ["B"],
                             "rsrp_dbm": [-70.0] + [-80.0] * 5,
                             "download_mbps": [0.1] + [20.0] * 5},
                            geometry=gpd.points_from_xy(x, y), crs=UTM)
    out = classify_villages(villages, s, measurements=meas, population=raster)
    first = out.iloc[0]
    assert first["evidence"] == "measured"
    assert "slow_speed" in first["reasons"]
    assert first["median_download_mbps"] < 5.0  # the median follows the rule that fired
    assert "over 6 test(s)" in first["explanation"]


def test_a_few_fast_tests_in_the_town_update_the_prior_by_the_models_error_there():
    """Three fast 4G tests of operator A in the town, where the model gives A broadband:
    they match the model there, so they do not say that A's subscribers behind the ridge
    (three quarters of the people, 2G only) are fast. Counted as they are (none slow of
    three), they would pull the village's slow probability down; as departures from the
    model, they leave it with the prior."""
    from coverage.classify.metrics import village_metrics

    s, villages, raster = _shadowed_province()
    rng = np.random.default_rng(5)
    x, y = rng.uniform(500_050, 500_450, 3), rng.uniform(2_500_100, 2_501_900, 3)
    meas = gpd.GeoDataFrame({"tech": ["4G"] * 3, "operator": ["A"] * 3,
                             "rsrp_dbm": [-80.0] * 3, "download_mbps": [20.0] * 3},
                            geometry=gpd.points_from_xy(x, y), crs=UTM)
    met = village_metrics(villages, s, measurements=meas, population=raster)
    first = met.iloc[0]
    assert first["evidence"] == "model+sparse_tests"
    assert (first["n_speed_tests"], first["n_slow_tests"]) == (3, 0)
    # the raw count's update, by hand: the prior's beta given none slow of three
    raw = posterior_above(np.array([first["slow_prior"]]), first["slow_prior_tests"],
                          np.zeros(1), np.full(1, 3.0), 0.5)[0]
    assert first["slow_probability"] > raw
    # the update by the tests' departures: as many tests, the prior's share where they stood
    prior = posterior_above(np.array([first["slow_prior"]]), first["slow_prior_tests"],
                            np.zeros(1), np.zeros(1), 0.5)[0]
    assert first["slow_probability"] >= prior - 0.05


def test_sparse_counts_are_the_difference_estimate_times_the_tests():
    from coverage.classify.residents import sparse_counts

    k = sparse_counts(np.array([0.4, np.nan, 1.3]), np.array([0.0, 2.0, 3.0]),
                      np.array([3.0, 4.0, 3.0]))
    assert k == pytest.approx([1.2, 2.0, 3.0])  # NaN: the raw count; clipped to n


def _one_operator_province(tech: str, level_dbm: float):
    """Operator A alone: ``tech`` at ``level_dbm`` over the whole village, 2G strong."""
    s, villages, raster = _shadowed_province()
    s.layers = {("A", tech): np.full(s.grid.shape, level_dbm, "float32"),
                ("A", "2G"): np.full(s.grid.shape, -70.0, "float32")}
    return s, villages.iloc[:1], raster


@pytest.mark.parametrize(("tech", "level", "slow"), [("3G", -100.0, True),
                                                      ("3G", -80.0, False),
                                                      ("4G", -100.0, False)])
def test_a_towers_only_run_takes_the_textbook_speed_at_the_modelled_level(tech, level, slow):
    # no tests: HSPA at -100 dBm of pilot gives about 2.7 Mbps at the textbook load, under
    # the 5 Mbps of the rule, though the village is covered; 4G at -100 dBm is fast
    s, villages, raster = _one_operator_province(tech, level)
    out = classify_villages(villages, s, population=raster, towers=_towers({"A": 1}))
    assert out["pop_covered_share"].iloc[0] > 0.5  # covered
    assert out["reasons"].str.contains("slow_speed").iloc[0] == slow
    assert (out["evidence"] == "model").all()


def test_the_provinces_speed_curve_replaces_the_textbook_one():
    # 3G at -100 dBm: fast in every broadband test of the province, so not slow
    from coverage.classify.residents import slow_by_operator

    s = _one_operator_province("3G", -100.0)[0]
    w = ZonalWeights(np.zeros(4, int), np.arange(4), np.ones(4), 1)
    fast = fit_slow_curve(np.linspace(-5, 20, 40), np.zeros(40, bool))
    got, _ = slow_by_operator(s, w, ["A"], 6.0, None, fast, VN)
    textbook, _ = slow_by_operator(s, w, ["A"], 6.0, None, fast, VN,
                                   slow_dbm={"3G": -93.3, "4G": -116.1})
    assert got["A"][0] < 0.1 < 0.8 < textbook["A"][0]


def _half_lost_province():
    """One village of 400 cells of equal people under operators A and B, 4G only.

    A covers every cell; B's subscribers in the right half of the village have no service.
    Tests: A in every other cell (200), B in every other cell of its served half (100) and,
    in its lost half, where a subscriber without service runs a test half as often (50).
    """
    grid = Grid(from_origin(500_000.0, 2_502_000.0, 100.0, 100.0), (20, 40), UTM)
    s = CoverageSurfaces(grid, params=ModelParams(calibrate=False, krige=False))
    s.layers["A", "4G"] = np.full(grid.shape, -80.0, "float32")
    b4 = np.full(grid.shape, -80.0, "float32")
    b4[:, 10:20] = -150.0
    s.layers["B", "4G"] = b4
    villages, raster = _two_villages_and_people()
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(20), np.arange(20), indexing="ij"))
    every_other = (rows + cols) % 2 == 0
    lost = (cols >= 10) & (rows % 2 == 0) & (cols % 2 == 0)
    parts = []
    for sel, op, tech in ((every_other, "A", "4G"), (every_other & (cols < 10), "B", "4G"),
                          (lost, "B", "none")):
        n = int(sel.sum())
        parts.append(gpd.GeoDataFrame(
            {"tech": [tech] * n, "operator": [op] * n,
             "rsrp_dbm": np.full(n, np.nan if tech == "none" else -80.0),
             "download_mbps": np.full(n, np.nan if tech == "none" else 30.0)},
            geometry=gpd.points_from_xy(500_050.0 + 100.0 * cols[sel],
                                        2_501_950.0 - 100.0 * rows[sel]), crs=UTM))
    return s, villages, raster, pd.concat(parts, ignore_index=True)


def test_an_operator_whose_subscribers_lose_service_is_not_taken_for_a_small_one():
    # A and B have as many subscribers, and half of B's have no service: a quarter of the
    # village. B has 150 tests to A's 200 because its subscribers without service test
    # half as often; counted as they are, the tests give B 43% of the subscribers and the
    # village 0.21. Each test counted by its inverse propensity gives B its half back.
    from coverage.classify.metrics import village_metrics

    s, villages, raster, meas = _half_lost_province()
    met = village_metrics(villages, s, measurements=meas, population=raster)
    assert met.iloc[0]["no_service_share"] == pytest.approx(0.25, abs=0.02)


def _two_technology_tests(n: int, rng: np.random.Generator, *, p3: float = 0.9,
                          p4: float = 0.1) -> tuple[np.ndarray, ...]:
    """Broadband tests at margins of 0-20 dB: 3G slow with ``p3``, 4G with ``p4``."""
    tech = np.where(rng.uniform(size=n) < 0.5, "3G", "4G")
    margin = rng.uniform(0, 20, n)
    slow = rng.uniform(size=n) < np.where(tech == "3G", p3, p4)
    fold = rng.integers(0, 5, n)
    return margin, slow, tech, fold


def test_a_curve_per_technology_where_held_out_tests_say_so():
    from coverage.classify.residents import choose_slow_curve

    curve = choose_slow_curve(*_two_technology_tests(400, np.random.default_rng(3)))
    assert set(curve.by_tech) == {"3G", "4G"}
    assert curve.cv_log_loss["by_tech"] < curve.cv_log_loss["pooled"]
    a3, b3 = curve.of("3G")
    a4, b4 = curve.of("4G")
    # at one margin, 3G slow and 4G fast
    assert a3 + 10 * b3 > 1.0 > -1.0 > a4 + 10 * b4
    assert curve.as_dict()["curves"] == "by_tech"


def test_one_curve_where_the_technologies_agree():
    from coverage.classify.residents import choose_slow_curve

    curve = choose_slow_curve(*_two_technology_tests(400, np.random.default_rng(4),
                                                     p3=0.3, p4=0.3))
    assert curve.by_tech == {}
    assert curve.of("3G") == curve.of("4G") == curve.pooled
    assert set(curve.cv_log_loss) == {"pooled", "by_tech"}


def test_a_technology_of_few_tests_takes_the_pooled_curve():
    from coverage.classify.residents import MIN_CURVE_TESTS, choose_slow_curve

    margin, slow, tech, fold = _two_technology_tests(400, np.random.default_rng(5))
    keep = (tech == "4G") | (np.cumsum(tech == "3G") < MIN_CURVE_TESTS)
    curve = choose_slow_curve(margin[keep], slow[keep], tech[keep], fold[keep])
    assert curve.by_tech == {}
    assert curve.pooled == fit_slow_curve(margin[keep], slow[keep])
    assert "one technology" in curve.reason


def _two_network_province():
    """10 x 4 km under A's 3G at -95 dBm and B's 4G at -100 dBm (10 dB over the outdoor
    thresholds of each), five villages of 2 x 4 km."""
    grid = Grid(from_origin(500_000.0, 2_504_000.0, 100.0, 100.0), (40, 100), UTM)
    s = CoverageSurfaces(grid, params=ModelParams(calibrate=False, krige=False))
    s.layers["A", "3G"] = np.full(grid.shape, -95.0, "float32")
    s.layers["B", "4G"] = np.full(grid.shape, -100.0, "float32")
    villages = gpd.GeoDataFrame(
        {"village_id": [str(i) for i in range(5)]},
        geometry=[box(500_000 + 2000 * i, 2_500_000, 502_000 + 2000 * i, 2_504_000)
                  for i in range(5)], crs=UTM)
    return s, villages


def test_the_fitted_prior_tells_3g_from_4g_at_one_margin():
    # the province's HSPA tests are slow and its LTE tests fast at the same margin over
    # their thresholds: the prior of each operator's subscribers follows its technology
    from coverage.classify.evidence import measurement_evidence
    from coverage.classify.residents import slow_by_operator

    s, villages = _two_network_province()
    rng = np.random.default_rng(6)
    n = 400
    op = np.where(rng.uniform(size=n) < 0.5, "A", "B")
    tech = np.where(op == "A", "3G", "4G")
    level = np.where(op == "A", -95.0, -100.0) + rng.normal(0, 3, n)
    slow = rng.uniform(size=n) < np.where(op == "A", 0.9, 0.1)
    meas = gpd.GeoDataFrame({"tech": tech, "operator": op, "rsrp_dbm": level,
                             "download_mbps": np.where(slow, 2.0, 20.0)},
                            geometry=gpd.points_from_xy(rng.uniform(500_050, 509_950, n),
                                                        rng.uniform(2_500_050, 2_503_950, n)),
                            crs=UTM)
    curve = measurement_evidence(villages, meas, s, VN).attrs["slow_curve"]
    assert set(curve.by_tech) == {"3G", "4G"}
    cells = np.arange(s.grid.shape[0] * s.grid.shape[1])
    w = ZonalWeights(np.zeros(len(cells), int), cells, np.ones(len(cells)), 1)
    per_op, _ = slow_by_operator(s, w, ["A", "B"], 6.0, None, curve, VN)
    assert per_op["A"][0] > 0.75 > 0.25 > per_op["B"][0]


def test_a_handset_camps_on_4g_where_it_reaches_and_takes_the_4g_curve():
    # 3G 25 dB over its threshold, 4G 5 dB over its own: the handset is on 4G (the
    # higher technology, over where handsets leave it), so the 4G curve applies
    from coverage.classify.residents import SlowCurve, slow_by_operator

    s = _one_operator_province("3G", -80.0)[0]
    s.layers["A", "4G"] = np.full(s.grid.shape, -105.0, "float32")
    w = ZonalWeights(np.zeros(4, int), np.arange(4), np.ones(4), 1)
    curve = SlowCurve((0.0, 0.0), {"3G": (5.0, 0.0), "4G": (-5.0, 0.0)})
    got, _ = slow_by_operator(s, w, ["A"], 6.0, None, curve, VN)
    assert got["A"][0] < 0.05
    # without 4G there, the 3G curve
    del s.layers["A", "4G"]
    got, _ = slow_by_operator(s, w, ["A"], 6.0, None, curve, VN)
    assert got["A"][0] > 0.95


def test_pieces_ranked_by_people_as_a_lexsort_ranks_them():
    rng = np.random.default_rng(5)
    m, n = 4000, 60
    village = rng.integers(0, n, m)
    cell = rng.permutation(50_000)[:m]
    weight = rng.choice([0.0, 1.0, 2.5, 7.0], m) * rng.choice([1.0, 1.0, rng.random()], m)
    for order in (np.arange(m), np.lexsort((cell, village))):  # as they come; by village, cell
        people = ZonalWeights(village[order], cell[order], weight[order], n)
        got = people.ranked
        v, c, w = village[order], cell[order], weight[order]
        by = np.lexsort((c, w, v))  # the reference: ties in weight by cell
        cum = np.cumsum(w[by])
        start = np.r_[0, np.flatnonzero(np.diff(v[by])) + 1]
        base = np.repeat(cum[start] - w[by][start], np.diff(np.r_[start, m]))
        total = np.bincount(v, weights=w, minlength=n)[v[by]]
        want = np.where(w[by] > 0, (cum - base - 0.5 * w[by]) / np.where(total > 0, total, 1),
                        np.nan)
        key = v[by].astype(np.int64) * (got.n_cells + 1) + c[by] + 1
        k = np.argsort(key)
        assert np.array_equal(got.key, key[k])
        np.testing.assert_allclose(got.rank, want[k], rtol=1e-12, atol=1e-15)
        assert np.array_equal(got.village, v[by][k]) and np.array_equal(got.weight, w[by][k])


def test_a_villages_pieces_in_one_cell_rank_as_one():
    # village 0: cell 7 holds two pieces (1 + 1 people), cell 9 one of 3; village 1: cell 7
    people = ZonalWeights(np.array([0, 0, 0, 1]), np.array([7, 9, 7, 7]),
                          np.array([1.0, 3.0, 1.0, 4.0]), 2)
    ranked = people.ranked
    assert ranked.weight.tolist() == [2.0, 3.0, 4.0]
    np.testing.assert_allclose(ranked.place(np.array([0, 0, 1, 0, 1]),
                                            np.array([7, 9, 7, 8, -1])),
                               [0.2, 0.7, 0.5, 0.5, 0.5])


def test_group_value_order_is_a_stable_lexsort():
    rng = np.random.default_rng(6)
    g, place = rng.integers(0, 30, 5000), rng.integers(0, 40, 5000)  # many ties
    assert np.array_equal(group_value_order(g, place), np.lexsort((place, g)))
    assert np.array_equal(group_value_order(g, place.astype(float)), np.lexsort((place, g)))
    # values equal in float32 but not in float64: the exact order still
    close = place + rng.random(5000) * 1e-9
    assert np.array_equal(group_value_order(g, close), np.lexsort((close, g)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_people_in_strata_sum_each_villages_cells_by_their_rank(k):
    rng = np.random.default_rng(7)
    m, n = 3000, 40
    people = ZonalWeights(rng.integers(0, n, m), rng.permutation(20_000)[:m],
                          rng.choice([0.0, 1.0, 4.0], m) * rng.random(m), n)
    ranked = people.ranked
    got = people.people_in_strata(k)
    assert got.shape == (n, k) and got is people.people_in_strata(k)  # once per k
    want = np.zeros((n, k))
    for v, r, w in zip(ranked.village, ranked.rank, ranked.weight, strict=True):
        if not np.isnan(r):
            want[v, min(int(np.floor(r * k)), k - 1)] += w
    np.testing.assert_allclose(got, want, rtol=1e-12)
    total = np.bincount(ranked.village, weights=ranked.weight, minlength=n)
    np.testing.assert_allclose(got.sum(axis=1), total, rtol=1e-12)


def test_a_villages_least_cell_ranks_at_zero_after_a_populous_village():
    # the running sum through village 0's two billion people rounds village 1's tiny cell
    # to a hair under 0, which put it under no stratum
    people = ZonalWeights(np.array([0, 0, 0, 1, 1, 1]), np.array([1, 2, 3, 4, 5, 6]),
                          np.array([1e9, 3e8, 7e8, 1e-9, 2.0, 5.0]), 2)
    ranked = people.ranked
    assert (ranked.rank >= 0).all() and (ranked.rank <= 1).all()
    assert people.people_in_strata(3)[1].sum() == pytest.approx(7.0 + 1e-9, rel=1e-15)
    w = location_weights(np.array([1, 1, 1, 1, 1, 1]),
                         ranked.place(np.ones(6, int), np.array([4, 4, 5, 5, 6, 6])),
                         np.ones(6), np.ones(6, bool), people, 2)
    # three strata: the tiny cell's two tests share stratum 0 (2 people) with cell 5's two
    # (2 x 0.5), cell 6's two share stratum 1 (5 people, 2 x 2.5); scaled back to 6 tests
    assert w[:2].sum() == pytest.approx(2 * 0.5 * 6 / 7)
