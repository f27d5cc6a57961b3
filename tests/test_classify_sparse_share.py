"""The covered share of a village with 1-4 tests: the model's share updated by its tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify import metrics as M
from coverage.classify.rules import SHARE_GRID, province_design_effects
from coverage.params import get_profile

VN = get_profile("vn-2025")


def _villages(share, n, k, *, evidence="model+sparse_tests", gap=0.0, sd_db=4.0,
              slope=0.012, odds=0.3, indoor=None) -> pd.DataFrame:
    """Metrics of villages as :func:`coverage.classify.village_metrics` leaves them."""
    share = np.atleast_1d(np.asarray(share, dtype=float))
    size = len(share)

    def each(value):
        text = isinstance(value, str) or np.asarray(value).dtype.kind in "OU"
        return np.broadcast_to(np.asarray(value, dtype=object if text else float),
                               size).copy()

    move = each(slope) * VN.stability_db
    out = pd.DataFrame({
        "pop_covered_share": share, "pop_covered_share_strict": share - move,
        "pop_covered_share_loose": share + move,
        "n_cov_tests": each(n), "k_cov_tests": each(k), "evidence": each(evidence),
        "selection_gap": each(gap), "model_offset_sd_db": each(sd_db),
        "served_odds": each(odds)})
    indoor = share * 0.8 if indoor is None else each(indoor)
    for suffix in ("", "_strict", "_loose"):
        out[f"pop_indoor_share{suffix}"] = np.minimum(indoor, out[f"pop_covered_share{suffix}"])
    return out


def _updated(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    M._sparse_share_update(out, VN)
    return out


def test_tests_without_broadband_lower_the_share_and_tests_with_it_raise_it():
    before = _villages([0.5, 0.5, 0.5], n=[3, 3, 3], k=[0, 3, 1])
    after = _updated(before)["pop_covered_share"].to_numpy()
    assert after[0] < 0.5 < after[1]
    # one test of three found broadband, at the province's odds of 0.3: about as expected
    # of a share of one half (0.23 a test), so it barely moves
    assert abs(after[2] - 0.5) < abs(after[0] - 0.5)


def test_villages_without_tests_or_whose_tests_decide_keep_their_share():
    before = _villages([0.5, 0.5, 0.5], n=[0, 6, 3], k=[0, 0, 0],
                       evidence=np.array(["model", "measured", "model+sparse_tests"],
                                         dtype=object))
    after = _updated(before)["pop_covered_share"].to_numpy()
    assert after[:2] == pytest.approx([0.5, 0.5])
    assert after[2] < 0.5


def test_the_share_moves_as_far_as_the_models_doubt_allows():
    sure = _updated(_villages(0.5, n=4, k=0, sd_db=1.0))["pop_covered_share"].iloc[0]
    unsure = _updated(_villages(0.5, n=4, k=0, sd_db=8.0))["pop_covered_share"].iloc[0]
    flat = _updated(_villages(0.5, n=4, k=0, sd_db=8.0, slope=0.0))["pop_covered_share"].iloc[0]
    assert unsure < sure < 0.5
    # a share that does not move with the signal is as sure as the floor of 0.05 makes it
    assert sure <= flat < 0.5


def test_tests_taken_where_the_model_gives_better_signal_than_the_residents_count_less():
    lifted = [_updated(_villages(0.45, n=3, k=3, gap=g, sd_db=8.0))["pop_covered_share"]
              .iloc[0] for g in (0.0, 0.3)]
    lowered = [_updated(_villages(0.55, n=3, k=0, gap=g, sd_db=8.0))["pop_covered_share"]
               .iloc[0] for g in (0.0, 0.3)]
    assert 0.45 < lifted[1] < lifted[0]  # found broadband where it is easier to find
    assert lowered[1] < lowered[0] < 0.55  # found none even there


def test_the_variants_move_with_the_share_and_indoor_stays_under_it():
    before = _villages([0.3, 0.6], n=4, k=0, indoor=0.3)
    after = _updated(before)
    delta = after["pop_covered_share"] - before["pop_covered_share"]
    for suffix in ("_strict", "_loose"):
        moved = after[f"pop_covered_share{suffix}"] - before[f"pop_covered_share{suffix}"]
        assert moved.to_numpy() == pytest.approx(delta.to_numpy())
    for suffix in ("", "_strict", "_loose"):
        assert (after[f"pop_indoor_share{suffix}"]
                <= after[f"pop_covered_share{suffix}"] + 1e-12).all()
    assert after["pop_indoor_share"].iloc[1] == pytest.approx(0.3)  # under it already


def test_the_rule_fires_at_posterior_probability_one_half():
    # just over the threshold by the model, four tests without broadband: the posterior
    # median falls under 0.5, so the share's probability of reaching it is under 1/2
    before = _villages(0.52, n=4, k=0, sd_db=8.0)
    after = _updated(before)
    for frame, klass in ((before, "available_inaccessible"), (after, "unavailable")):
        metrics = frame.assign(pop_2g_share=1.0, n_tests=frame["n_cov_tests"],
                               n_service_tests=frame["n_cov_tests"],
                               median_download_mbps=np.nan, median_upload_mbps=np.nan,
                               no_service_share=np.nan, pop_indoor_share=0.1,
                               pop_indoor_share_strict=0.1, pop_indoor_share_loose=0.1)
        assert apply_profile(metrics, VN)["class"].iloc[0] == klass


def test_the_share_is_the_posterior_median_by_hand():
    # the model's share of one half with a spread of hypot(0.012 * 8, 0.05) = 0.108, and
    # four tests without broadband, each finding it with probability 0.3x / (0.3x + 1 - x)
    # at a share x: the posterior's median on a fine grid (the model's share moved by the
    # borrowed offset alone would stay at 0.5)
    x = np.linspace(0.0, 1.0, 200_001)
    found = 0.3 * x / (0.3 * x + 1.0 - x)
    density = np.exp(-0.5 * ((x - 0.5) / np.hypot(0.012 * 8.0, 0.05)) ** 2) * (1 - found) ** 4
    cum = np.cumsum(density)
    median = x[np.searchsorted(cum, 0.5 * cum[-1])]
    assert median < 0.47
    after = _updated(_villages(0.5, n=4, k=0, sd_db=8.0))["pop_covered_share"].iloc[0]
    assert after == pytest.approx(median, abs=1.0 / SHARE_GRID)


def _province(split_half: float, villages: int = 20) -> pd.DataFrame:
    """One village with 3 tests without broadband, and measured villages whose two halves
    of ten tests differ by ``split_half`` in their share with broadband."""
    sparse = _villages(0.55, n=3, k=0, sd_db=8.0)
    measured = _villages(np.full(villages, 0.5), n=10, k=5, evidence="measured")
    measured["split_half_cov"] = split_half
    frame = pd.concat([sparse, measured], ignore_index=True)
    frame["province_code"] = 0
    return frame


def test_a_province_whose_tests_cluster_lets_a_few_tests_move_the_share_less():
    apart = _updated(_province(0.0))["pop_covered_share"].iloc[0]
    clustered = _updated(_province(0.8))["pop_covered_share"].iloc[0]
    assert apart < clustered < 0.55
    # halves of ten tests at one half differ by 0.32 when the tests are independent: 0.8
    # is a design effect of about 6
    effect = province_design_effects(_province(0.8), VN, "cov")
    assert effect == pytest.approx(np.full(21, 0.8**2 / (0.5 * 0.5 * 0.4)))


def test_the_design_effect_needs_enough_villages_whose_tests_decide():
    few = _province(0.8, villages=VN.min_recalibration_villages - 1)
    assert np.isnan(province_design_effects(few, VN, "cov")).all()
    assert (_updated(few)["pop_covered_share"].iloc[0]
            == _updated(_province(0.0))["pop_covered_share"].iloc[0])
