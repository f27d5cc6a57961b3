"""The measured villages' confidence where their tests sit at better signal than people."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify.rules import _design_effects, _selection_effects
from coverage.params import get_profile

VN = get_profile("vn-2025")


def province(n: int, gap: np.ndarray | float) -> pd.DataFrame:
    """``n`` measured villages whose covered share (0.52) sits just over the threshold, 16
    of their 20 tests with broadband, halves agreeing; ``gap``: the model's covered share
    at the tests' spots minus at the residents'."""
    share = np.full(n, 0.52)
    frame = {"pop_covered_share": share, "pop_covered_share_strict": share - 0.1,
             "pop_covered_share_loose": share + 0.1, "pop_indoor_share": share,
             "pop_2g_share": np.zeros(n), "n_tests": np.full(n, 20.0),
             "n_service_tests": np.full(n, 20.0), "n_cov_tests": np.full(n, 20.0),
             "k_cov_tests": np.full(n, 16.0), "n_speed_tests": np.full(n, 20.0),
             "n_slow_tests": np.zeros(n), "median_download_mbps": np.full(n, 30.0),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.zeros(n),
             "model_offset_sd_db": np.full(n, 1.0), "evidence": np.full(n, "measured"),
             "province_code": np.zeros(n, dtype=int),
             "split_half_cov": np.zeros(n), "split_half_slow": np.zeros(n),
             "selection_gap": np.broadcast_to(gap, (n,)).astype(float)}
    return pd.DataFrame(frame)


def test_tests_at_better_signal_than_the_residents_lower_the_confidence_not_the_class():
    """Village 0's tests sit where the model covers 0.3 more than where its people live:
    it is less sure than the others; tests spread like the residents (gap 0) or at worse
    signal (gap < 0) leave the confidence as without the gap; classes never change."""
    gap = np.zeros(30)
    gap[0], gap[1] = 0.3, -0.3
    out = apply_profile(province(30, gap), VN)
    without = apply_profile(province(30, np.nan), VN)
    assert (out["class"] == without["class"]).all()
    assert (out["reasons"] == without["reasons"]).all()
    assert out["confidence"].iloc[0] < without["confidence"].iloc[0] - 0.05
    assert out["confidence"].iloc[1:].to_numpy() == pytest.approx(
        without["confidence"].iloc[1:].to_numpy())


def test_the_gap_adds_in_quadrature_to_the_covered_share_only():
    """r' = r + n g^2 / (p~(1 - p~)) for the share of tests with broadband; the other
    estimates keep their design effects."""
    frame = province(30, 0.2)
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
    few = province(VN.min_recalibration_villages - 1, 0.3)
    deff, fitted = _design_effects(few, VN)
    assert not fitted.any()
    assert (_selection_effects(few, deff, fitted)["cov"] == 1).all()
    model = province(30, 0.3).assign(evidence="model")
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
