"""The confidence's recalibration per province by the villages whose tests decide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify.evidence import held_out_offsets, shrink
from coverage.classify.rules import _temperature
from coverage.params import get_profile

VN = get_profile("vn-2025")


def province(n_measured: int, model_right: bool, code: int) -> pd.DataFrame:
    """``n_measured`` villages whose tests found them covered (``served``), and ten villages
    the model alone decides (covered 0.8 by the model, ``served``). Held out from their
    tests, the model gives the measured villages 0.8 where it is right and 0.2 (the tests
    then contradict it) where it is systematically wrong."""
    held = 0.8 if model_right else 0.2
    n = n_measured + 10
    measured = np.arange(n) < n_measured
    share = np.where(measured, 0.95, 0.8)
    frame = {"pop_covered_share": share, "pop_covered_share_strict": share - 0.1,
             "pop_covered_share_loose": share + 0.05, "pop_indoor_share": share,
             "pop_indoor_share_strict": share - 0.1, "pop_indoor_share_loose": share + 0.05,
             "pop_2g_share": np.ones(n), "n_tests": np.where(measured, 20.0, 0.0),
             "n_service_tests": np.where(measured, 20.0, 0.0),
             "n_cov_tests": np.where(measured, 20.0, 0.0),
             "k_cov_tests": np.where(measured, 19.0, 0.0),
             "n_speed_tests": np.zeros(n), "median_download_mbps": np.full(n, np.nan),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.full(n, np.nan),
             "model_offset_sd_db": np.where(measured, 1.0, 4.0),
             "evidence": np.where(measured, "measured", "model"),
             "province_code": np.full(n, code)}
    for suffix, step in (("", 0.0), ("_strict", -0.1), ("_loose", 0.05)):
        frame["heldout_covered_share" + suffix] = np.where(measured, held + step, np.nan)
        frame["heldout_indoor_share" + suffix] = np.where(measured, held + step, np.nan)
    frame["heldout_offset_sd_db"] = np.where(measured, 4.0, np.nan)
    return pd.DataFrame(frame)


def test_a_province_where_the_model_is_wrong_gets_less_confidence_than_one_where_it_is_right():
    """Two provinces in one run: where the model alone would have called the tested
    villages unavailable (its class not theirs), its untested villages' confidence falls;
    where it would have called them served, it stays as without the recalibration. The
    classes never change."""
    both = pd.concat([province(30, True, 0), province(30, False, 1)], ignore_index=True)
    on = apply_profile(both, VN)
    off = apply_profile(both, VN.replace(recalibrate_confidence=False))
    assert (on["class"] == off["class"]).all() and (on["reasons"] == off["reasons"]).all()
    model = both["evidence"].to_numpy() == "model"
    right, wrong = model & (both["province_code"] == 0), model & (both["province_code"] == 1)
    assert on["confidence"][right].to_numpy() == pytest.approx(off["confidence"][right])
    assert (on["confidence"][wrong] < off["confidence"][wrong] - 0.1).all()
    assert (on["confidence"][wrong] >= 0.5).all()  # towards 1/2, never past it
    measured = ~model
    assert on["confidence"][measured].to_numpy() == pytest.approx(off["confidence"][measured])


def test_too_few_villages_whose_tests_decide_leave_the_confidence_as_it_was():
    """Under ``min_recalibration_villages`` labelled villages the province is not tempered,
    however wrong its model; and a run without held-out shares (towers only) never is."""
    few = province(VN.min_recalibration_villages - 1, False, 0)
    on = apply_profile(few, VN)
    off = apply_profile(few, VN.replace(recalibrate_confidence=False))
    assert on["confidence"].to_numpy() == pytest.approx(off["confidence"].to_numpy())
    plain = province(30, False, 0).drop(columns=[c for c in province(30, False, 0).columns
                                                 if c.startswith("heldout_")])
    assert apply_profile(plain, VN)["confidence"].to_numpy() == pytest.approx(
        apply_profile(plain, VN.replace(recalibrate_confidence=False))["confidence"]
        .to_numpy())


def test_the_temperature_never_sharpens_and_counts_the_tests_own_doubt():
    """Agreement as often as the model says: T = 1. Less often: T > 1, the more so the
    surer the tests' classes (an unsure label explains disagreement by itself); more
    often (an under-confident model): still 1."""
    rng = np.random.default_rng(3)
    p = np.full(200, 0.85)
    agree_cal = rng.random(200) < 0.85 * 0.99 + 0.15 * 0.01 / 2
    assert _temperature(p, agree_cal, np.full(200, 0.99), VN) == 1.0
    agree_low = rng.random(200) < 0.6
    t_sure = _temperature(p, agree_low, np.full(200, 0.99), VN)
    t_unsure = _temperature(p, agree_low, np.full(200, 0.75), VN)
    assert t_sure > t_unsure >= 1.0 and t_sure > 1.5
    assert t_sure <= VN.max_confidence_temperature
    assert _temperature(p, np.ones(200, dtype=bool), np.full(200, 0.99), VN) == 1.0


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
