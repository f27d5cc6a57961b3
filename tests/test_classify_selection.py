"""The tests' inclusion propensity (coverage.classify.selection)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from coverage.classify.selection import PROPENSITY_FLOOR, Propensity, fit_propensity
from coverage.classify.zonal import ZonalWeights


def test_weights_are_the_inverse_propensity_trimmed_at_the_floor():
    prop = Propensity(floor=0.1)
    w = prop.weights(np.array([-np.inf, 0.0, 40.0, np.nan]), np.array([0, 0, 0, 40.0]))
    assert w[0] == pytest.approx(1 / PROPENSITY_FLOOR)  # 1/0.1 trimmed to 1/0.25
    assert w[1] == pytest.approx(1 / 0.55)  # half way up where service is lost
    assert w[2] == pytest.approx(1.0, abs=1e-6)
    assert w[3] == pytest.approx(1.0, abs=1e-3)  # no level: the residents' mean at the spot
    assert np.all(Propensity().weights(np.array([-np.inf, 0.0]), np.zeros(2)) == 1.0)


def _province(floor: float, seed: int = 0):
    """Villages of cells with spread model margins, and tests drawn with a propensity.

    Residents' true margins spread 6 dB around the model's; a subscriber at true margin M
    tests with probability floor + (1 - floor) Phi(M / 4).
    """
    rng = np.random.default_rng(seed)
    n_vil, per = 120, 20
    cells = np.arange(n_vil * per)
    village = cells // per
    people = rng.uniform(20, 200, len(cells))
    mu = rng.normal(5, 12, len(cells))
    margin = mu.astype("float32")
    tv, tc = [], []
    for c in cells:
        m_true = mu[c] + rng.normal(0, 6.0, int(people[c]))
        p = floor + (1 - floor) * ndtr(m_true / 4.0)
        k = int((rng.uniform(size=len(p)) < 0.08 * p).sum())
        tv += [village[c]] * k
        tc += [c] * k
    weights = ZonalWeights(village, cells, people, n_vil)
    tests = {"village": np.array(tv), "cell": np.array(tc),
             "operator": np.zeros(len(tv), dtype=int), "operators": ["A"]}
    return weights, {"A": margin}, tests


@pytest.mark.parametrize("floor", [0.3, 1.0])
def test_the_fit_finds_how_much_less_the_unserved_test(floor):
    weights, margins, tests = _province(floor)
    prop = fit_propensity(weights, margins.__getitem__, {"A": 1.0}, tests, 6.0)
    assert prop.n_tests == len(tests["village"])
    assert prop.floor == pytest.approx(floor, abs=0.15)
    assert np.isfinite(prop.floor_se)


def test_too_few_tests_weigh_alike():
    weights, margins, tests = _province(0.3)
    few = {k: (v[:50] if isinstance(v, np.ndarray) else v) for k, v in tests.items()}
    prop = fit_propensity(weights, margins.__getitem__, {"A": 1.0}, few, 6.0)
    assert prop.floor == 1.0
    assert np.all(prop.weights(np.array([-np.inf]), np.zeros(1)) == 1.0)


def test_inverse_propensity_moves_weight_within_a_stratum_not_between():
    from coverage.classify.residents import location_weights

    # one village, two cells of equal people; two tests in each, one without service
    people = ZonalWeights(np.zeros(2, dtype=int), np.arange(2), np.array([100.0, 100.0]), 1)
    g = np.zeros(4, dtype=int)
    cell = np.array([0, 0, 1, 1])
    d = Propensity(floor=0.5).weights(np.array([-np.inf, 30.0, 30.0, 30.0]), np.zeros(4))
    w = location_weights(g, people.ranked.place(g, cell), d, np.ones(4, bool), people, 1)
    assert w[0] == pytest.approx(2 * w[1], rel=1e-3)  # the subscriber without service
    assert w[0] + w[1] == pytest.approx(w[2] + w[3])  # each stratum keeps its people
    assert w.sum() == pytest.approx(d.sum())
