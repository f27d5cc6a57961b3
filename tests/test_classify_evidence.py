"""Measurement sufficiency, empirical-Bayes shrinkage, weighted medians and explanations."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from conftest import covered_village
from coverage.classify import classify_villages, fuse_for, village_metrics
from coverage.classify.explain import explain, explain_frame
from coverage.classify.shrinkage import shrink
from coverage.classify.survey import group_weighted_median
from coverage.model import CoverageSurfaces, Grid
from coverage.params import get_profile

CRS_UTM = CRS.from_epsg(32648)


def no_service_tests(n, *, devices=None, hours=6.0):
    """``n`` no-service tests spread over the village, over ``hours``."""
    xy = [(100 + 800 * (i % 3) / 2, 100 + 800 * (i // 3) / 3) for i in range(n)]
    pts = gpd.GeoSeries([Point(x, y) for x, y in xy], crs=CRS_UTM).to_crs(4326)
    t0 = pd.Timestamp("2025-03-01T08:00:00Z")
    cols = {"tech": ["none"] * n, "operator": ["A"] * n, "rsrp_dbm": np.nan,
            "download_mbps": np.nan, "upload_mbps": np.nan, "weight": 1.0,
            "timestamp": [t0 + pd.Timedelta(hours=hours * i / max(n - 1, 1)) for i in range(n)]}
    if devices is not None:
        cols["device_id"] = [f"d{i % devices}" for i in range(n)]
    return gpd.GeoDataFrame(cols, geometry=pts.to_numpy(), crs=4326)


def test_no_tests_never_means_no_coverage():
    villages, surfaces = covered_village()
    out = classify_villages(villages, surfaces)
    assert out["class"].iloc[0] == "served"
    assert out["evidence"].iloc[0] == "model"
    assert out["confidence"].iloc[0] <= 0.9  # the model alone is never sure


@pytest.mark.parametrize(("n", "devices", "hours", "flipped"), [
    (4, 4, 6.0, False),   # too few tests
    (5, 5, 6.0, True),    # enough tests, devices and spread
    (5, 1, 6.0, False),   # one phone
    (5, 5, 1.0, False),   # all within an hour
    (5, None, 6.0, True),  # devices unknown: that minimum cannot be checked
])
def test_measurements_flip_the_model_only_when_sufficient(n, devices, hours, flipped):
    villages, surfaces = covered_village()
    out = classify_villages(villages, surfaces,
                            measurements=no_service_tests(n, devices=devices, hours=hours))
    assert (out["class"].iloc[0] == "unavailable") is flipped
    assert out["evidence"].iloc[0] == ("measured" if flipped else "model+sparse_tests")
    assert out["n_tests"].iloc[0] == n


def test_sparse_village_borrows_its_communes_model_error():
    """Tests in two villages say the model is 8 dB too optimistic; a third, untested
    village of the same commune, modelled 4 dB above the threshold, is shifted below it."""
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 30), CRS_UTM)
    level = np.full(grid.shape, -90.0, "float32")
    level[:, 20:] = -106.0  # the untested village: 4 dB above -110
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    villages = gpd.GeoDataFrame(
        {"village_id": ["a", "b", "c"], "commune": ["X"] * 3, "population": [100] * 3},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(2000, 0, 3000, 1000)],
        crs=CRS_UTM)
    rng = np.random.default_rng(1)
    xs = np.r_[rng.uniform(50, 950, 30), rng.uniform(1050, 1950, 30)]
    ys = rng.uniform(50, 950, 60)
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=CRS_UTM)
    tests = gpd.GeoDataFrame({"tech": "4G", "operator": "A",
                              "rsrp_dbm": -98.0 + rng.normal(0, 2, 60),
                              "download_mbps": 20.0, "upload_mbps": 5.0, "weight": 1.0},
                             geometry=pts.to_crs(4326).to_numpy(), crs=4326)
    base = classify_villages(villages, surfaces)
    out = classify_villages(villages, surfaces, measurements=tests)
    assert base["class"].iloc[2] != "unavailable"
    assert out["model_offset_db"].iloc[2] == pytest.approx(-8.0, abs=0.7)
    assert out["class"].iloc[2] == "unavailable"
    assert out["class"].iloc[0] == "served"  # tested villages decide by their tests


def test_tests_lift_only_the_villages_they_decide():
    """The model is 8 dB too weak at every test: the villages with 30 tests and with the
    rule's five are lifted by their offsets; the one with four is not, though its
    commune's offset would lift it (a lowering-only offset would leave all three at 0)."""
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 30), CRS_UTM)
    surfaces = CoverageSurfaces(grid, {("A", "4G"): np.full(grid.shape, -90.0, "float32")})
    villages = gpd.GeoDataFrame(
        {"village_id": ["a", "b", "c"], "commune": ["X"] * 3, "population": [100] * 3},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000),
                  box(2000, 0, 3000, 1000)], crs=CRS_UTM)
    assert get_profile("vn-2025").min_override_tests == 5
    rng = np.random.default_rng(2)
    xs = np.r_[rng.uniform(50, 950, 30), rng.uniform(1050, 1950, 5),
               rng.uniform(2050, 2950, 4)]
    ys = rng.uniform(50, 950, 39)
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=CRS_UTM)
    tests = gpd.GeoDataFrame({"tech": "4G", "operator": "A",
                              "rsrp_dbm": -82.0 + rng.normal(0, 2, 39),
                              "download_mbps": 20.0, "upload_mbps": 5.0, "weight": 1.0},
                             geometry=pts.to_crs(4326).to_numpy(), crs=4326)
    out = classify_villages(villages, surfaces, measurements=tests)
    assert out["model_offset_db"].iloc[0] == pytest.approx(8.0, abs=1.0)
    assert out["model_offset_db"].iloc[1] == pytest.approx(8.0, abs=1.5)
    assert out["model_offset_db"].iloc[2] == 0.0


def test_a_lift_rests_on_five_measured_levels():
    """Village b's five tests decide, but only two measured a level (+15 dB over a model
    that gives no broadband there), the other three found no service where the model
    agreed: b is lowered only, not lifted by two spots where a handset found signal.
    Village c's five levels lift it as its commune's thirty do village a."""
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 30), CRS_UTM)
    level = np.full(grid.shape, -90.0, "float32")
    level[:, 10:20] = -130.0  # village b: far under broadband in the model
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    villages = gpd.GeoDataFrame(
        {"village_id": ["a", "b", "c"], "commune": ["X"] * 3, "population": [100] * 3},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000),
                  box(2000, 0, 3000, 1000)], crs=CRS_UTM)
    rng = np.random.default_rng(3)
    xs = np.r_[rng.uniform(50, 950, 30), rng.uniform(1050, 1950, 5),
               rng.uniform(2050, 2950, 5)]
    ys = rng.uniform(50, 950, 40)
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=CRS_UTM)
    tech = ["4G"] * 32 + ["none"] * 3 + ["4G"] * 5
    rsrp = np.r_[np.full(30, -82.0), np.full(2, -115.0), np.full(3, np.nan), np.full(5, -82.0)]
    tests = gpd.GeoDataFrame({"tech": tech, "operator": "A", "rsrp_dbm": rsrp,
                              "download_mbps": np.where(np.isnan(rsrp), 0.0, 20.0),
                              "upload_mbps": 5.0, "weight": 1.0},
                             geometry=pts.to_crs(4326).to_numpy(), crs=4326)
    out = classify_villages(villages, surfaces, measurements=tests)
    assert out["model_offset_db"].iloc[0] == pytest.approx(8.0, abs=1.0)
    assert out["model_offset_db"].iloc[1] <= 0.0
    assert out["model_offset_db"].iloc[2] > 4.0


def test_shrink_pulls_sparse_villages_to_their_parent():
    # 20 villages in one commune: 19 with 20 tests at about -6 dB, one with 1 test at +10
    n = np.r_[np.full(19, 20.0), 1.0, 0.0]
    rng = np.random.default_rng(0)
    means = np.r_[-6 + rng.normal(0, 0.5, 19), 10.0, 0.0]
    total = n * means
    sumsq = n * (means**2 + 4.0)  # within-village sd 2 dB
    out = shrink(n, total, sumsq, [np.zeros(21, int), np.zeros(21, int)])
    assert out[:19] == pytest.approx(means[:19], abs=1.0)
    assert out[19] < 0  # one test cannot overrule the commune
    assert out[20] == pytest.approx(np.average(means[:20], weights=n[:20]), abs=0.5)
    same, var = shrink(n, total, sumsq, [np.zeros(21, int), np.zeros(21, int)],
                       variance=True)
    assert same == pytest.approx(out)
    # 20 tests fix a village's error far better than one; none leaves the spread between
    # villages (at least) on top of the commune's own uncertainty
    assert var[:19].max() < var[19] < var[20]
    # never more doubt than the village's own 20 tests leave (sigma2 is at least 16 dB2)
    assert 0 < var[0] <= 16.0 / 20.0


def test_group_weighted_median_matches_numpy():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 5, 200)
    v = rng.normal(10, 3, 200)
    out = group_weighted_median(g, v, np.ones(200), 6)
    for k in range(5):
        assert out[k] == pytest.approx(np.median(v[g == k]))
    assert np.isnan(out[5])
    # weights count as repeated tests
    w = group_weighted_median(np.zeros(3, int), np.array([1.0, 2.0, 9.0]),
                              np.array([1.0, 1.0, 5.0]), 1)
    assert w[0] == 9.0


def test_explanations_in_english_and_vietnamese():
    row = pd.Series({"class": "unavailable", "reasons": "2g_only", "population": 1240.0,
                     "pop_covered_share": 0.38, "pop_indoor_share": 0.12, "best_tech": "4G",
                     "operators": 1, "nearest_site_km": 9.24, "nearest_site_tech": "4G",
                     "behind_ridge": True, "n_cov_tests": 6, "k_cov_tests": 0,
                     "median_download_mbps": np.nan, "n_tests": 6, "label_stable": True})
    en = explain(row, "en")
    vi = explain(row, "vi")
    assert en.startswith("No mobile broadband (2G only): 38% of 1,240 people have 4G outdoors")
    assert "nearest 4G site 9.2 km, behind a ridge" in en and "0 of 6 tests had service" in en
    assert vi.startswith("Chưa có băng rộng di động (chỉ có 2G): 38% trong 1.240 người")
    assert "9,2 km, bị núi che khuất" in vi and "0/6 lần đo có sóng" in vi


def test_explanation_reports_the_residents_no_service_share_and_its_tests():
    row = pd.DataFrame([{
        "class": "available_inaccessible", "reasons": "measured_no_service",
        "population": 400.0, "pop_covered_share": 0.8, "pop_indoor_share": 0.7,
        "best_tech": "4G", "operators": 2, "n_cov_tests": 7, "k_cov_tests": 6,
        "n_service_tests": 7, "no_service_share": 0.36, "n_speed_tests": 7,
        "median_download_mbps": 9.0, "label_stable": True}])
    # the tests had service six times in seven, the residents' estimate is 36% without
    en, vi = explain_frame(row, "en")[0], explain_frame(row, "vi")[0]
    assert "6 of 7 tests had service; residents without service 36% over 7 test(s)" in en
    assert "cư dân mất sóng 36% qua 7 lần đo" in vi
    assert en == explain(row.iloc[0], "en")


def test_explanations_of_a_table_are_the_sentences_of_each_row():
    from coverage.classify.explain import explain_frame

    rng = np.random.default_rng(11)
    n = 400
    rows = pd.DataFrame({
        "class": rng.choice(["unavailable", "available_inaccessible", "served"], n),
        "reasons": rng.choice(["", "2g_only", "partial_coverage;slow_speed", "no_signal"], n),
        "population": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 20_000, n)),
        "pop_covered_share": rng.random(n).round(4),
        "pop_indoor_share": rng.random(n).round(4),
        "best_tech": rng.choice(np.array(["4G", "3G", None], dtype=object), n),
        "operators": rng.integers(0, 4, n),
        "nearest_site_km": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 12, n)),
        "nearest_site_tech": rng.choice(np.array(["4G", "3G", None], dtype=object), n),
        "behind_ridge": pd.Series(rng.choice(np.array([True, False, None], dtype=object), n),
                                  dtype=object),
        "n_cov_tests": rng.choice([0.0, 1.0, 6.0, 2.5], n),
        "k_cov_tests": rng.choice([0.0, 1.0, 2.0], n),
        "median_download_mbps": np.where(rng.random(n) < 0.5, np.nan, rng.uniform(0, 60, n)),
        "n_speed_tests": rng.integers(0, 9, n),
        "label_stable": rng.random(n) < 0.7,
        "corrected": rng.random(n) < 0.05,
        "correction_kind": rng.choice(["evidence", "class"], n),
        "correction_source": "Sở TT&TT", "correction_date": "2025-06-01",
        "class_original": "served",
    })
    rows.loc[rows["best_tech"].isna(), "operators"] = 0
    records = rows.to_dict("records")
    for lang in ("en", "vi"):
        assert explain_frame(rows, lang) == [explain(r, lang) for r in records]
    # without the optional columns too
    bare = rows.drop(columns=["corrected", "n_cov_tests", "k_cov_tests", "n_speed_tests",
                              "behind_ridge", "label_stable"])
    assert explain_frame(bare, "en") == [explain(r, "en") for r in bare.to_dict("records")]


def test_only_the_cells_the_measurements_moved_count_as_measured():
    """Calibration moves every cell of a layer; only the measured cells and their disc
    replace the estimate, so only they decide a measured village's share."""
    from coverage.classify.shares import moved_cells

    _, model = covered_village()
    fused = model.copy()
    fused.layers["A", "4G"] -= np.float32(3.0)            # calibration: every cell
    thresholds = {"4G": -110.0}
    fused.estimated_margin["out"] = fused.margin(thresholds)
    fused.layers["A", "4G"][2, 3] = np.nan                 # a measured cell: no service
    fused.layers["A", "4G"][2, 4] = -112.0                 # its disc
    margins = {"out": fused.margin(thresholds)}
    moved = moved_cells(model, fused, margins)
    assert moved.sum() == 2 and moved[2, 3] and moved[2, 4]
    # surfaces fused without the estimate's margins: every cell the model differs at
    assert moved_cells(model, fused).all()


def test_handsets_fallen_back_to_2g_count_against_the_model_and_agreeing_bounds_do_not():
    """Village a: operator A's 4G modelled at -90 dBm, its 40 testers all on 2G (its
    broadband lost), so the model is too optimistic there. Village b: nothing of operator B
    is modelled and B's 40 testers find no service, which agrees with the model and says
    nothing of how wrong it is elsewhere."""
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 20), CRS_UTM)
    surfaces = CoverageSurfaces(grid, {("A", "4G"): np.full(grid.shape, -90.0, "float32"),
                                       ("A", "2G"): np.full(grid.shape, -70.0, "float32"),
                                       ("B", "4G"): np.full(grid.shape, np.nan, "float32")})
    villages = gpd.GeoDataFrame(
        {"village_id": ["a", "b"], "commune": ["X", "Y"], "population": [100, 100]},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], crs=CRS_UTM)
    rng = np.random.default_rng(2)
    xs = np.r_[rng.uniform(50, 950, 40), rng.uniform(1050, 1950, 40)]
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, rng.uniform(50, 950, 80),
                                                      strict=True)], crs=CRS_UTM)
    tests = gpd.GeoDataFrame({"tech": ["2G"] * 40 + ["none"] * 40,
                              "operator": ["A"] * 40 + ["B"] * 40,
                              "rsrp_dbm": [-80.0] * 40 + [np.nan] * 40,
                              "download_mbps": np.nan, "upload_mbps": np.nan, "weight": 1.0},
                             geometry=pts.to_crs(4326).to_numpy(), crs=4326)
    out = classify_villages(villages, surfaces, measurements=tests)
    assert out["model_offset_db"].iloc[0] < -10.0
    # village b's error is borrowed as if it had no tests (counted as exactly 0 they
    # held it at 0), and it is less sure than a's
    alone = classify_villages(villages, surfaces, measurements=tests.iloc[:40])
    assert out["model_offset_db"].iloc[1] == pytest.approx(alone["model_offset_db"].iloc[1])
    sd = village_metrics(villages, surfaces, measurements=tests)["model_offset_sd_db"]
    assert sd.iloc[1] > sd.iloc[0]


def test_a_test_under_the_model_is_not_counted_twice():
    """Thirty tests 8 dB under the model, in one corner of a 4 km village: kriged, they
    lower the cells around them; measured against the kriged estimate, the village's
    offset is what the kriging left (the tests' mean error against it), not the 8 dB
    again over the whole village (against the calibrated model alone)."""
    from coverage.params import ModelParams

    grid = Grid(from_origin(0, 1000, 100, 100), (10, 40), CRS_UTM)
    params = ModelParams(calibrate=False, krige=True, select_fusion=False)
    level = np.full(grid.shape, -90.0, "float32")
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level},
                                distance_m={("A", "4G"): np.full(grid.shape, 2000.0,
                                                                 "float32")},
                                params=params)
    villages = gpd.GeoDataFrame({"village_id": ["v"], "population": [500]},
                                geometry=[box(0, 0, 4000, 1000)], crs=CRS_UTM)
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(50, 450, 30), rng.uniform(50, 950, 30)
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=CRS_UTM)
    rsrp = -98.0 + rng.normal(0, 1, 30)
    tests = gpd.GeoDataFrame({"tech": "4G", "operator": "A", "rsrp_dbm": rsrp,
                              "download_mbps": 20.0, "upload_mbps": 5.0, "weight": 1.0},
                             geometry=pts.to_crs(4326).to_numpy(), crs=4326)
    fused = fuse_for(surfaces, tests)
    cells, shift = fused.kriged_at_tests[("A", "4G")]
    assert len(cells) and np.all(np.diff(cells) > 0) and shift.mean() < -4.0
    kriged = classify_villages(villages, surfaces, measurements=tests, fused=fused)
    # fused at the classification's cells only (no fused= given): the same offset
    at_cells = classify_villages(villages, surfaces, measurements=tests)
    assert at_cells["model_offset_db"].iloc[0] == pytest.approx(
        kriged["model_offset_db"].iloc[0], abs=0.01)
    # by hand: each test against the model kriged at its cell (100 m cells, 40 a row)
    cell = ((1000 - ys) // 100).astype(int) * 40 + (xs // 100).astype(int)
    at = np.searchsorted(cells, cell)
    assert np.array_equal(cells[at], cell)
    left = float(np.mean(rsrp - (level.flat[cell] + shift[at])))
    assert np.mean(rsrp - level.flat[cell]) == pytest.approx(-8.0, abs=0.5)
    assert kriged["model_offset_db"].iloc[0] == pytest.approx(left, abs=0.1)
    assert -4.0 < kriged["model_offset_db"].iloc[0] <= 0.0
