"""The measured villages' confidence from two halves of their tests (design effect)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify.evidence import split_half_difference
from coverage.classify.rules import _design_effects
from coverage.params import get_profile

VN = get_profile("vn-2025")


def province(n: int, slow_halves: np.ndarray | float) -> pd.DataFrame:
    """``n`` covered villages whose 20 tests each say slow 14 times (``slow_speed``), with
    the difference ``slow_halves`` between the slow shares of their two halves."""
    share = np.full(n, 0.9)
    frame = {"pop_covered_share": share, "pop_covered_share_strict": share - 0.02,
             "pop_covered_share_loose": share + 0.02, "pop_indoor_share": share,
             "pop_2g_share": np.zeros(n), "n_tests": np.full(n, 20.0),
             "n_service_tests": np.full(n, 20.0), "n_cov_tests": np.full(n, 20.0),
             "k_cov_tests": np.full(n, 20.0), "n_speed_tests": np.full(n, 20.0),
             "n_slow_tests": np.full(n, 14.0), "median_download_mbps": np.full(n, 3.0),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.zeros(n),
             "model_offset_sd_db": np.full(n, 1.0), "evidence": np.full(n, "measured"),
             "province_code": np.zeros(n, dtype=int),
             "split_half_slow": np.broadcast_to(slow_halves, (n,)).astype(float)}
    return pd.DataFrame(frame)


def test_a_village_whose_halves_disagree_is_less_sure_than_one_whose_halves_agree():
    """Same tests, same verdict (slow); the village whose northern and southern tests
    disagree (0.2 against 0.9 slow) gets less confidence than those whose halves agree."""
    diff = np.zeros(30)
    diff[0] = -0.7
    out = apply_profile(province(30, diff), VN)
    assert set(out["class"]) == {"available_inaccessible"}
    assert (out["reasons"] == "slow_speed").all()
    assert out["confidence"].iloc[0] < out["confidence"].iloc[1] - 0.05
    assert out["confidence"].iloc[1:].nunique() == 1


def test_a_province_whose_tests_cluster_is_less_sure_of_all_its_measured_villages():
    """Halves that differ as independent tests would (about 0.2 for 20 tests at 0.7) leave
    the confidence as without halves; halves 0.5 apart lower every village's; the classes
    never change."""
    plain = province(30, np.nan)
    rng = np.random.default_rng(1)
    sd = np.sqrt(0.7 * 0.3 * (1 / 10 + 1 / 10))
    iid = province(30, rng.choice([-1.0, 1.0], 30) * sd)
    clustered = province(30, np.resize([0.5, -0.5], 30))
    base = apply_profile(plain, VN)
    for frame in (iid, clustered):
        out = apply_profile(frame, VN)
        assert (out["class"] == base["class"]).all()
        assert (out["reasons"] == base["reasons"]).all()
    near = apply_profile(iid, VN)["confidence"].to_numpy()
    assert near == pytest.approx(base["confidence"].to_numpy(), abs=0.02)
    assert (apply_profile(clustered, VN)["confidence"] < base["confidence"] - 0.1).all()


def test_the_design_effect_needs_enough_villages_and_the_recalibration():
    """Under ``min_recalibration_villages`` measured villages, or with the recalibration
    off, every estimate counts its tests as they are (design effect 1)."""
    few = province(VN.min_recalibration_villages - 1, 0.6)
    assert (_design_effects(few, VN)[0]["slow"] == 1).all()
    many = province(30, 0.6)
    assert (_design_effects(many, VN)[0]["slow"] > 2).all()
    off = VN.replace(recalibrate_confidence=False)
    assert (_design_effects(many, off)[0]["slow"] == 1).all()
    model = many.assign(evidence="model")
    assert (_design_effects(model, VN)[0]["slow"] == 1).all()


def test_split_halves_cut_each_villages_tests_in_their_cells_order():
    """Village 0's four tests, by cell: the two first (cells 1, 2) found broadband, the two
    last not; village 1 has one test (NaN), village 2 three (one against two); weights
    weigh within each half."""
    g = np.array([0, 0, 0, 0, 1, 2, 2, 2])
    cell = np.array([9, 1, 7, 2, 0, 5, 4, 3])
    hit = np.array([False, True, False, True, True, True, False, False])
    d = split_half_difference(g, cell, hit, np.ones(8), np.ones(8, dtype=bool), 4)
    assert d[0] == pytest.approx(1.0)
    assert np.isnan(d[1]) and np.isnan(d[3])
    assert d[2] == pytest.approx(0.0 - 0.5)  # first half: cell 3 (no); second: 4 (no), 5
    weighted = split_half_difference(g, cell, hit, np.array([1, 1, 1, 3, 1, 1, 1, 1.0]),
                                     np.array([True] * 7 + [False]), 4)
    assert weighted[0] == pytest.approx(1.0)
    assert weighted[2] == pytest.approx(0.0 - 1.0)  # cell 3 masked: 4 (no) against 5


def test_the_halves_replace_the_fixed_discount_of_an_unstable_measured_label():
    """A median of 4.5 Mbps is slow but not under a threshold moved by ``stability_rel``:
    the label is unstable. Where the halves are read (agreeing: design effect 1), its
    confidence is its probability; without them, the fixed discount applies."""
    frame = province(30, 0.0).assign(median_download_mbps=4.5)
    on = apply_profile(frame, VN)
    off = apply_profile(frame, VN.replace(recalibrate_confidence=False))
    assert (~on["label_stable"]).all() and (on["reasons"] == "slow_speed").all()
    assert on["confidence"].to_numpy() == pytest.approx(
        off["confidence"].to_numpy() / VN.unstable_confidence_factor, abs=0.002)
