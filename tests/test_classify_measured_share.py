"""The covered share of a village whose tests decide: the model's share and the tests'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import metrics as M
from coverage.params import get_profile

VN = get_profile("vn-2025")


def _measured(prior, served, n, *, fused=None, sd_db=1.0, slope=0.02, odds=1.0,
              gap=0.0) -> pd.DataFrame:
    """Measured villages as :func:`coverage.classify.village_metrics` leaves them."""
    prior = np.atleast_1d(np.asarray(prior, dtype=float))
    size = len(prior)

    def each(value):
        return np.broadcast_to(np.asarray(value, dtype=float), size).copy()

    share = prior if fused is None else each(fused)
    move = each(slope) * VN.stability_db
    out = pd.DataFrame({
        "pop_covered_share": share, "pop_covered_share_strict": share - move,
        "pop_covered_share_loose": share + move, "prior_share": prior,
        "n_cov_tests": each(n), "k_cov_tests": np.round(each(served) * each(n)),
        "served_share_tests": each(served), "evidence": "measured",
        "selection_gap": each(gap), "model_offset_sd_db": each(sd_db),
        "served_odds": each(odds)})
    for suffix in ("", "_strict", "_loose"):
        out[f"pop_indoor_share{suffix}"] = 0.8 * out[f"pop_covered_share{suffix}"]
    return out


def _updated(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    M._sparse_share_update(out, VN)
    return out


def test_the_tests_served_rate_pulls_the_share_from_the_model_toward_it():
    after = _updated(_measured([0.6, 0.6, 0.6], served=[0.1, 0.6, 0.95], n=20))
    share = after["pop_covered_share"].to_numpy()
    assert share[0] < 0.6 - 0.02 and share[2] > 0.6 + 0.02
    assert share[1] == pytest.approx(0.6, abs=0.01)
    # combined by precisions: between the model's share and the tests' rate
    assert 0.1 < share[0] and share[2] < 0.95


def test_the_prior_is_the_models_share_not_the_fused_surface():
    # the fused surface read 0.45, the model with the offset 0.7, the tests 0.7:
    # the share follows the model and the tests
    after = _updated(_measured(0.7, served=0.7, n=20, fused=0.45))
    assert after["pop_covered_share"].iloc[0] == pytest.approx(0.7, abs=0.01)


def test_more_tests_move_the_share_further_and_are_counted_at_most_fifty():
    moved = [0.6 - _updated(_measured(0.6, served=0.2, n=n))["pop_covered_share"].iloc[0]
             for n in (6, 20, 50, 400)]
    assert 0 < moved[0] < moved[1] < moved[2]
    assert moved[3] == pytest.approx(moved[2])


def test_the_served_rate_is_read_at_the_provinces_odds():
    # tests find broadband half as often as the residents have it: a rate of 0.3 is a
    # share of about 0.46, so it barely moves a model's 0.5
    even = _updated(_measured(0.5, served=0.3, n=30))["pop_covered_share"].iloc[0]
    rare = _updated(_measured(0.5, served=0.3, n=30, odds=0.5))["pop_covered_share"].iloc[0]
    assert even < rare - 0.03
    assert abs(rare - 0.5) < 0.03


def test_the_variants_move_with_the_share_and_indoor_stays_under_it():
    before = _measured([0.55, 0.7], served=0.05, n=30)
    after = _updated(before)
    delta = (after["pop_covered_share"] - before["pop_covered_share"]).to_numpy()
    assert (delta < 0).all()
    for suffix in ("_strict", "_loose"):
        moved = after[f"pop_covered_share{suffix}"] - before[f"pop_covered_share{suffix}"]
        assert moved.to_numpy() == pytest.approx(delta)
        assert (after[f"pop_indoor_share{suffix}"]
                <= after[f"pop_covered_share{suffix}"] + 1e-12).all()


def test_without_a_served_rate_or_with_the_update_off_the_share_stays(monkeypatch):
    before = _measured(0.6, served=np.nan, n=20, fused=0.4)
    assert _updated(before)["pop_covered_share"].iloc[0] == pytest.approx(0.4)
    monkeypatch.setattr(M, "MEASURED_SHARE_UPDATE", False)
    before = _measured(0.6, served=0.0, n=20)
    assert _updated(before)["pop_covered_share"].iloc[0] == pytest.approx(0.6)
