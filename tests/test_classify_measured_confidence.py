"""The measured villages' confidence: the halves of their tests (design effect) and where
their tests sit against their residents (selection gap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify.rules import _design_effects, _selection_effects
from coverage.classify.survey import split_half_difference
from coverage.model.measured import group_value_order
from coverage.params import get_profile

VN = get_profile("vn-2025")


def measured_province(n: int, *, share: float, band: float, k_cov: float, n_slow: float,
                      median_mbps: float, **columns: np.ndarray | float) -> pd.DataFrame:
    """The metrics of ``n`` measured villages with 20 tests each: covered share ``share``
    (strict and loose readings ``band`` either side), ``k_cov`` of the tests with broadband,
    ``n_slow`` slow, median download ``median_mbps``; ``columns`` added as given
    (broadcast to ``n``)."""
    full = np.full(n, share)
    frame = {"pop_covered_share": full, "pop_covered_share_strict": full - band,
             "pop_covered_share_loose": full + band, "pop_indoor_share": full,
             "pop_2g_share": np.zeros(n), "n_tests": np.full(n, 20.0),
             "n_service_tests": np.full(n, 20.0), "n_cov_tests": np.full(n, 20.0),
             "k_cov_tests": np.full(n, k_cov), "n_speed_tests": np.full(n, 20.0),
             "n_slow_tests": np.full(n, n_slow), "median_download_mbps": np.full(n, median_mbps),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.zeros(n),
             "model_offset_sd_db": np.full(n, 1.0), "evidence": np.full(n, "measured"),
             "province_code": np.zeros(n, dtype=int)}
    frame |= {k: np.broadcast_to(v, (n,)).astype(float) for k, v in columns.items()}
    return pd.DataFrame(frame)


def slow_province(n: int, slow_halves: np.ndarray | float) -> pd.DataFrame:
    """``n`` covered villages whose 20 tests each say slow 14 times (``slow_speed``), with
    the difference ``slow_halves`` between the slow shares of their two halves."""
    return measured_province(n, share=0.9, band=0.02, k_cov=20.0, n_slow=14.0,
                             median_mbps=3.0, split_half_slow=slow_halves)


def gap_province(n: int, gap: np.ndarray | float) -> pd.DataFrame:
    """``n`` measured villages whose covered share (0.52) sits just over the threshold, 16
    of their 20 tests with broadband, halves agreeing; ``gap``: the model's covered share
    at the tests' spots minus at the residents'."""
    return measured_province(n, share=0.52, band=0.1, k_cov=16.0, n_slow=0.0,
                             median_mbps=30.0, split_half_cov=0.0, split_half_slow=0.0,
                             selection_gap=gap)


def test_a_village_whose_halves_disagree_is_less_sure_than_one_whose_halves_agree():
    """Same tests, same verdict (slow); the village whose northern and southern tests
    disagree (0.2 against 0.9 slow) gets less confidence than those whose halves agree."""
    diff = np.zeros(30)
    diff[0] = -0.7
    out = apply_profile(slow_province(30, diff), VN)
    assert set(out["class"]) == {"available_inaccessible"}
    assert (out["reasons"] == "slow_speed").all()
    assert out["confidence"].iloc[0] < out["confidence"].iloc[1] - 0.05
    assert out["confidence"].iloc[1:].nunique() == 1


def test_a_province_whose_tests_cluster_is_less_sure_of_all_its_measured_villages():
    """Halves that differ as independent tests would (about 0.2 for 20 tests at 0.7) leave
    the confidence as without halves; halves 0.5 apart lower every village's; the classes
    never change."""
    plain = slow_province(30, np.nan)
    rng = np.random.default_rng(1)
    sd = np.sqrt(0.7 * 0.3 * (1 / 10 + 1 / 10))
    iid = slow_province(30, rng.choice([-1.0, 1.0], 30) * sd)
    clustered = slow_province(30, np.resize([0.5, -0.5], 30))
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
    few = slow_province(VN.min_recalibration_villages - 1, 0.6)
    assert (_design_effects(few, VN)[0]["slow"] == 1).all()
    many = slow_province(30, 0.6)
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
    ranked = group_value_order(g, cell)
    d = split_half_difference(g, ranked, hit, np.ones(8), np.ones(8, dtype=bool), 4)
    assert d[0] == pytest.approx(1.0)
    assert np.isnan(d[1]) and np.isnan(d[3])
    assert d[2] == pytest.approx(0.0 - 0.5)  # first half: cell 3 (no); second: 4 (no), 5
    weighted = split_half_difference(g, ranked, hit, np.array([1, 1, 1, 3, 1, 1, 1, 1.0]),
                                     np.array([True] * 7 + [False]), 4)
    assert weighted[0] == pytest.approx(1.0)
    assert weighted[2] == pytest.approx(0.0 - 1.0)  # cell 3 masked: 4 (no) against 5


def test_the_halves_replace_the_fixed_discount_of_an_unstable_measured_label():
    """A median of 4.5 Mbps is slow but not under a threshold moved by ``stability_rel``:
    the label is unstable. Where the halves are read (agreeing: design effect 1), its
    confidence is its probability; without them, the fixed discount applies."""
    frame = slow_province(30, 0.0).assign(median_download_mbps=4.5)
    on = apply_profile(frame, VN)
    off = apply_profile(frame, VN.replace(recalibrate_confidence=False))
    assert (~on["label_stable"]).all() and (on["reasons"] == "slow_speed").all()
    assert on["confidence"].to_numpy() == pytest.approx(
        off["confidence"].to_numpy() / VN.unstable_confidence_factor, abs=0.002)


def test_tests_at_better_signal_than_the_residents_lower_the_confidence_not_the_class():
    """Village 0's tests sit where the model covers 0.3 more than where its people live:
    it is less sure than the others; tests spread like the residents (gap 0) or at worse
    signal (gap < 0) leave the confidence as without the gap; classes never change."""
    gap = np.zeros(30)
    gap[0], gap[1] = 0.3, -0.3
    out = apply_profile(gap_province(30, gap), VN)
    without = apply_profile(gap_province(30, np.nan), VN)
    assert (out["class"] == without["class"]).all()
    assert (out["reasons"] == without["reasons"]).all()
    assert out["confidence"].iloc[0] < without["confidence"].iloc[0] - 0.05
    assert out["confidence"].iloc[1:].to_numpy() == pytest.approx(
        without["confidence"].iloc[1:].to_numpy())


def test_the_gap_adds_in_quadrature_to_the_covered_share_only():
    """r' = r + n g^2 / (p~(1 - p~)) for the share of tests with broadband; the other
    estimates keep their design effects."""
    frame = gap_province(30, 0.2)
    deff, fitted = _design_effects(frame, VN)
    assert fitted.all()
    out = _selection_effects(frame, deff, fitted)
    pt = (16 + 0.5) / 21
    assert out["cov"] == pytest.approx(deff["cov"] + 20 * 0.2 ** 2 / (pt * (1 - pt)))
    for key in ("none", "indoor", "slow"):
        assert out[key] is deff[key]


def test_the_gap_counts_only_for_measured_villages_where_the_halves_are_read():
    """Too few measured villages in the province, or villages the model decides: the
    covered share's design effect stays 1."""
    few = gap_province(VN.min_recalibration_villages - 1, 0.3)
    deff, fitted = _design_effects(few, VN)
    assert not fitted.any()
    assert (_selection_effects(few, deff, fitted)["cov"] == 1).all()
    model = gap_province(30, 0.3).assign(evidence="model")
    deff, fitted = _design_effects(model, VN)
    assert (_selection_effects(model, deff, fitted)["cov"] == 1).all()


def test_the_gap_is_the_models_covered_share_at_the_tests_minus_at_the_residents():
    """Cells 0 and 1 covered (10 dB over the threshold), 2 and 3 not: village 0 lives half
    in each and tests twice in a covered cell (+0.5); village 1 tests in its uncovered cell
    (-0.5); village 2 has no test (NaN). With a location spread the shares are soft."""
    from types import SimpleNamespace

    from coverage.classify.metrics import _selection_gap
    from coverage.classify.zonal import ZonalWeights

    weights = ZonalWeights(village=np.array([0, 0, 1, 1, 2]), cell=np.array([0, 2, 1, 3, 0]),
                           weight=np.ones(5), n=3)
    fused = SimpleNamespace(estimated_margin={"out": np.array([10.0, 10.0, -10.0, -10.0])})
    tests = {"village": np.array([0, 0, 1, 1]), "cell": np.array([0, 0, 3, -1])}
    gap = _selection_gap(weights, fused, tests, VN, 0.0, 3)
    assert gap[:2] == pytest.approx([0.5, -0.5])
    assert np.isnan(gap[2])
    soft = _selection_gap(weights, fused, tests, VN, 8.0, 3)
    assert 0 < soft[0] < 0.5 and -0.5 < soft[1] < 0
