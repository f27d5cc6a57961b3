"""The confidence of the speed rule where a village has the rule's tests: its tests read
against the province's slow prior (empirical Bayes), as the villages under the minimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify import apply_profile
from coverage.classify.rules import _p_slow_from_tests
from coverage.params import get_profile

VN = get_profile("vn-2025")


def slow_villages(n_slow: float, **columns: float) -> pd.DataFrame:
    """Three covered villages with 10 speed tests each, ``n_slow`` of them under the
    threshold, their median under it (``slow_speed`` fires); ``columns`` added to all."""
    n = 3
    full = np.full(n, 0.9)
    frame = {"pop_covered_share": full, "pop_covered_share_strict": full - 0.02,
             "pop_covered_share_loose": full + 0.02, "pop_indoor_share": full,
             "pop_2g_share": np.zeros(n), "n_tests": np.full(n, 10.0),
             "n_service_tests": np.full(n, 10.0), "n_cov_tests": np.full(n, 10.0),
             "k_cov_tests": np.full(n, 10.0), "n_speed_tests": np.full(n, 10.0),
             "n_slow_tests": np.full(n, n_slow), "median_download_mbps": np.full(n, 3.0),
             "median_upload_mbps": np.full(n, np.nan), "no_service_share": np.zeros(n),
             "model_offset_sd_db": np.full(n, 1.0), "evidence": np.full(n, "measured")}
    return pd.DataFrame(frame | {k: np.full(n, v) for k, v in columns.items()})


def test_a_slow_verdict_against_a_confident_province_prior_is_less_sure():
    """6 of 10 tests slow: against a prior of 0.1 slow worth 20 tests the verdict is less
    sure than on the tests alone, and with a prior of 0.9 more; the class and reasons stay."""
    alone = apply_profile(slow_villages(6.0), VN)
    against = apply_profile(slow_villages(6.0, slow_prior=0.1, slow_prior_tests=20.0), VN)
    along = apply_profile(slow_villages(6.0, slow_prior=0.9, slow_prior_tests=20.0), VN)
    for out in (alone, against, along):
        assert (out["class"] == "available_inaccessible").all()
        assert (out["reasons"] == "slow_speed").all()
    assert against["confidence"].iloc[0] < alone["confidence"].iloc[0] - 0.2
    assert along["confidence"].iloc[0] > alone["confidence"].iloc[0] + 0.05


def test_a_weak_province_prior_leaves_the_tests_to_decide():
    """A prior worth almost nothing (0.01 tests) gives the tests' own posterior."""
    alone = apply_profile(slow_villages(6.0), VN)["confidence"]
    weak = apply_profile(slow_villages(6.0, slow_prior=0.1, slow_prior_tests=0.01),
                         VN)["confidence"]
    assert weak.to_numpy() == pytest.approx(alone.to_numpy(), abs=0.005)


def test_the_posterior_is_the_beta_of_prior_and_tests_and_the_tests_alone_without_one():
    """With the prior: P(share > 1/2) under Beta(k s + k_t + 1/2, k (1 - s) + n - k_t + 1/2);
    without ``slow_prior`` (metrics made by hand) the tests alone around 1/2."""
    from scipy.stats import beta

    frame = slow_villages(6.0, slow_prior=0.3, slow_prior_tests=8.0)
    k, n = np.full(3, 6.0), np.full(3, 10.0)
    got = _p_slow_from_tests(frame, k, n)
    assert got == pytest.approx(beta.sf(0.5, 8 * 0.3 + 6.5, 8 * 0.7 + 4.5))
    bare = _p_slow_from_tests(slow_villages(6.0), k, n)
    assert bare == pytest.approx(beta.sf(0.5, 6.5, 4.5))
