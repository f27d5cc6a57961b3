"""A test's download read with a spread, its width chosen by the villages' own tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from coverage.classify.survey import choose_bandwidth, share_below


def test_a_download_reads_as_under_the_threshold_with_a_spread():
    x = np.array([0.0, 0.1, 4.0, 5.0, 6.0, 50.0, np.nan])
    hard = share_below(x, 5.0, 0.0)
    np.testing.assert_array_equal(hard[:6], [1, 1, 1, 0, 0, 0])
    assert np.isnan(hard[6])
    soft = share_below(x, 5.0, 0.3)
    assert soft[0] == 1.0 and soft[3] == pytest.approx(0.5)
    assert soft[1] == 1.0 and soft[2] > soft[3] > soft[4] > soft[5]  # the faster, the less
    # 6 Mbps is 0.18 neper over 5: under it with the spread's tail beyond 0.61 sd
    assert soft[4] == pytest.approx(0.272, abs=1e-3)
    assert np.isnan(soft[6])


def _villages(rng: np.random.Generator, n: int = 400, day_sd: float = 0.5):
    """Villages whose residents' log speeds spread 0.4 around a median near 5 Mbps; each
    test one resident's spot read once, with a spread over the day of ``day_sd``."""
    median = np.log(5.0) + rng.normal(0.0, 0.5, n)
    truth = ndtr((np.log(5.0) - median) / 0.4)
    k = rng.integers(5, 11, n)
    g = np.repeat(np.arange(n), k)
    spot = median[g] + rng.normal(0.0, 0.4, len(g))
    speed = np.exp(spot + rng.normal(0.0, day_sd, len(g)))
    return g, speed, truth


def _village_share(g, x, h, n):
    return np.bincount(g, weights=share_below(x, 5.0, h), minlength=n) / np.bincount(g, minlength=n)


def test_the_tests_choose_a_spread_where_each_is_a_noisy_draw():
    g, speed, truth = _villages(np.random.default_rng(7))
    n = len(truth)
    chosen = choose_bandwidth(g, speed, np.ones(len(g)), 5.0)
    assert chosen.bandwidth > 0
    assert chosen.cv_error[chosen.bandwidth] < chosen.cv_error[0.0]
    raw = _village_share(g, speed, 0.0, n)
    smooth = _village_share(g, speed, chosen.bandwidth, n)
    # closer to the residents' true share under 5 Mbps than the tests' raw share
    assert np.mean((smooth - truth) ** 2) < 0.9 * np.mean((raw - truth) ** 2)
    assert chosen.as_dict()["bandwidth"] == chosen.bandwidth


def test_each_test_stays_as_it_is_where_a_spread_does_not_help():
    rng = np.random.default_rng(3)
    # every village's tests far from the threshold: 2G handsets or fast 4G
    g = np.repeat(np.arange(200), 6)
    speed = np.where(rng.random(len(g)) < 0.4, 0.1, 60.0)
    chosen = choose_bandwidth(g, speed, np.ones(len(g)), 5.0)
    assert chosen.bandwidth == 0.0
    assert "no bandwidth better" in chosen.reason
    # villages of one test say nothing held out
    one = choose_bandwidth(np.arange(50), np.full(50, 4.0), np.ones(50), 5.0)
    assert (one.bandwidth, one.reason) == (0.0, "no village with two tests")
    # tests that weigh nothing are left out
    none = choose_bandwidth(g, speed, np.zeros(len(g)), 5.0)
    assert none.bandwidth == 0.0


def test_the_survey_modules_examples_hold():
    import doctest

    from coverage.classify import survey

    result = doctest.testmod(survey)
    assert result.attempted >= 5 and result.failed == 0


def test_a_large_province_chooses_on_a_seeded_sample_of_whole_villages(monkeypatch):
    from coverage.classify import survey

    g, speed, _ = _villages(np.random.default_rng(11))
    monkeypatch.setattr(survey, "SELECT_MAX_OBS", 1000)
    first = choose_bandwidth(g, speed, np.ones(len(g)), 5.0)
    assert first == choose_bandwidth(g, speed, np.ones(len(g)), 5.0)  # seeded
    used, total = map(int, first.reason.split("a seeded sample of ")[1].split(" tests")[0]
                      .split(" of "))
    assert total == len(g) and 990 <= used <= 1000  # whole villages of 5-10 tests each
    # under the cap every test counts
    monkeypatch.setattr(survey, "SELECT_MAX_OBS", len(g))
    assert "sample" not in choose_bandwidth(g, speed, np.ones(len(g)), 5.0).reason
