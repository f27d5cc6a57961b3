"""The confidence's recalibration per province by the villages whose tests decide."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from coverage.classify import apply_profile
from coverage.classify.rules import SHARE_SD_FLOOR, _share_floors
from coverage.classify.shrinkage import held_out_offsets, shrink
from coverage.model import CoverageSurfaces, Grid
from coverage.params import get_profile

VN = get_profile("vn-2025")


def province(n_measured: int, model_error: float, code: int) -> pd.DataFrame:
    """``n_measured`` villages whose tests found them covered at shares 0.7-0.95, and ten
    villages the model alone decides (covered 0.3 by the model: ``unavailable``). Held out
    from their tests, the model gives the measured villages their share plus
    ``model_error`` (alternately up and down)."""
    n = n_measured + 10
    measured = np.arange(n) < n_measured
    decided = 0.7 + 0.25 * (np.arange(n) % 5) / 4
    share = np.where(measured, decided, 0.3)
    frame = {"pop_covered_share": share, "pop_covered_share_strict": share - 0.02,
             "pop_covered_share_loose": share + 0.02, "pop_indoor_share": share,
             "pop_2g_share": np.zeros(n), "n_tests": np.where(measured, 20.0, 0.0),
             "n_service_tests": np.where(measured, 20.0, 0.0),
             "n_cov_tests": np.where(measured, 20.0, 0.0),
             "k_cov_tests": np.where(measured, 19.0, 0.0),
             "n_speed_tests": np.zeros(n), "median_download_mbps": np.full(n, np.nan),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.full(n, np.nan),
             "model_offset_sd_db": np.where(measured, 1.0, 4.0),
             "evidence": np.where(measured, "measured", "model"),
             "province_code": np.full(n, code)}
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    held = np.clip(share + sign * model_error, 0, 1)
    for suffix, step in (("", 0.0), ("_strict", -0.02), ("_loose", 0.02)):
        frame["heldout_covered_share" + suffix] = np.where(measured, held + step, np.nan)
    frame["heldout_offset_sd_db"] = np.where(measured, 4.0, np.nan)
    return pd.DataFrame(frame)


def test_a_province_where_the_model_strays_gets_less_confidence_than_one_where_it_does_not():
    """Two provinces in one run: where the model, without the tests, misses the tested
    villages' shares by 0.3, its own villages' verdicts are less sure; where it meets them,
    they stay as without the recalibration. The classes and the measured villages'
    confidence never change."""
    both = pd.concat([province(30, 0.0, 0), province(30, 0.3, 1)], ignore_index=True)
    on = apply_profile(both, VN)
    off = apply_profile(both, VN.replace(recalibrate_confidence=False))
    assert (on["class"] == off["class"]).all() and (on["reasons"] == off["reasons"]).all()
    model = both["evidence"].to_numpy() == "model"
    assert set(on["class"][model]) == {"unavailable"}
    right, wrong = model & (both["province_code"] == 0), model & (both["province_code"] == 1)
    assert on["confidence"][right].to_numpy() == pytest.approx(off["confidence"][right])
    assert (on["confidence"][wrong] < off["confidence"][wrong] - 0.1).all()
    assert (on["confidence"][wrong] > 0.5).all()  # the share 0.3 is still likelier under 0.5
    assert on["confidence"][~model].to_numpy() == pytest.approx(off["confidence"][~model])


def test_the_spread_the_signal_does_not_carry_is_the_held_out_error():
    """The fitted spread is the held-out share error's (less what the offset explains),
    never under the fixed floor, for the model's villages only."""
    frame = province(40, 0.2, 0)
    floors = _share_floors(frame, VN)
    assert floors[:40] == pytest.approx(SHARE_SD_FLOOR)
    err = (frame["heldout_covered_share"] - frame["pop_covered_share"])[:40]
    known = (0.04 / (2 * VN.stability_db) * 4.0) ** 2  # sensitivity x held-out spread
    assert floors[40:] == pytest.approx(np.sqrt(np.mean(err**2) - known), rel=0.01)
    assert floors[40] > 0.15
    assert _share_floors(province(40, 0.0, 0), VN) == pytest.approx(SHARE_SD_FLOOR,
                                                                         abs=1e-3)


def test_too_few_villages_whose_tests_decide_leave_the_confidence_as_it_was():
    """Under ``min_recalibration_villages`` labelled villages the province keeps the fixed
    floor, however wrong its model; and a run without held-out shares (towers only) too."""
    few = province(VN.min_recalibration_villages - 1, 0.3, 0)
    on = apply_profile(few, VN)
    off = apply_profile(few, VN.replace(recalibrate_confidence=False))
    assert on["confidence"].to_numpy() == pytest.approx(off["confidence"].to_numpy())
    full = province(30, 0.3, 0)
    plain = full.drop(columns=[c for c in full.columns if c.startswith("heldout_")])
    assert apply_profile(plain, VN)["confidence"].to_numpy() == pytest.approx(
        apply_profile(plain, VN.replace(recalibrate_confidence=False))["confidence"]
        .to_numpy())


def test_held_out_offsets_leave_each_villages_own_tests_out():
    """A village with a large own error gets, held out, what its neighbours say: the
    shrink of the others alone; villages not held out get NaN."""
    n = np.array([20.0, 20.0, 20.0, 20.0, 20.0, 20.0])
    mean = np.array([10.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    total, sumsq = n * mean, n * (mean**2 + 16.0)
    levels = [np.zeros(6, dtype=int)]
    held = np.array([True, False, False, False, False, False])
    off, var = held_out_offsets(n, total, sumsq, levels, held)
    keep = np.array([0.0, 1, 1, 1, 1, 1])
    alone = shrink(n * keep, total * keep, sumsq * keep, levels)
    assert off[0] == pytest.approx(alone[0])
    assert off[0] < 2.0 < shrink(n, total, sumsq, levels)[0]
    assert np.isnan(off[1:]).all() and np.isfinite(var[0]) and var[0] > 0


def test_village_metrics_give_the_measured_villages_shares_without_their_tests():
    """A 2 x 1 km grid covered at -90 dBm; the west village's 40 tests find -118 dBm. Its
    decided share follows its tests (uncovered); held out from them, the model (with no
    other tests to borrow from) says covered. The east village, untested, has none."""
    from coverage.classify import village_metrics

    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 20), crs)
    surfaces = CoverageSurfaces(grid, {("A", "4G"): np.full(grid.shape, -90.0, "float32")})
    villages = gpd.GeoDataFrame({"village_id": ["01", "02"]},
                                geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)],
                                crs=crs)
    xs = 50.0 + 100.0 * (np.arange(40) % 10)
    ys = 50.0 + 100.0 * (np.arange(40) // 10) * 2
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, ys, strict=True)],
                        crs=crs).to_crs(4326)
    tests = gpd.GeoDataFrame({"tech": "4G", "operator": "A", "rsrp_dbm": -118.0,
                              "download_mbps": 2.0, "upload_mbps": np.nan, "weight": 1.0},
                             index=range(40), geometry=pts.to_numpy(), crs=4326)
    m = village_metrics(villages, surfaces, measurements=tests, profile=VN)
    assert list(m["evidence"]) == ["measured", "model"]
    assert m["pop_covered_share"].iloc[0] < 0.5 < m["heldout_covered_share"].iloc[0]
    assert np.isnan(m["heldout_covered_share"].iloc[1])
    assert np.isfinite(m["heldout_offset_sd_db"].iloc[0])
    off = village_metrics(villages, surfaces, measurements=tests,
                          profile=VN.replace(recalibrate_confidence=False))
    assert "heldout_covered_share" not in off.columns
