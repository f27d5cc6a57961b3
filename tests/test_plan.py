"""Budgeted maximal covering: greedy, HiGHS MILP and LP bound, and the plan's tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

from coverage.errors import ParameterError
from coverage.plan import CoverProblem, _covered, greedy_cover, milp_cover


def problem(cover_rows, weight, cost):
    n_p = len(weight)
    rows, cols = [], []
    for i, pairs in enumerate(cover_rows):
        rows += [i] * len(pairs)
        cols += list(pairs)
    cover = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cover_rows), n_p))
    return CoverProblem(cover, np.asarray(weight, float), np.asarray(cost, float),
                        np.zeros(n_p, dtype=int))


def brute_force(p, budget):
    best = 0.0
    for k in range(len(p.cost) + 1):
        for combo in itertools.combinations(range(len(p.cost)), k):
            if p.cost[list(combo)].sum() <= budget:
                best = max(best, _covered(p, list(combo)))
    return best


@pytest.fixture
def random_problems():
    rng = np.random.default_rng(7)
    out = []
    for _ in range(15):
        n_c, n_p = 7, 25
        cover = [rng.choice(n_p, size=rng.integers(1, 8), replace=False) for _ in range(n_c)]
        out.append(problem(cover, rng.integers(0, 100, n_p), rng.uniform(1, 5, n_c)))
    return out


def test_milp_is_optimal_and_bounds_hold(random_problems):
    for p in random_problems:
        budget = 6.0
        chosen, value = milp_cover(p, budget=budget)
        assert value == pytest.approx(brute_force(p, budget))
        assert p.cost[chosen].sum() <= budget + 1e-9
        g = greedy_cover(p, budget=budget)
        assert p.cost[g].sum() <= budget + 1e-9
        greedy_value = _covered(p, g)
        _, bound = milp_cover(p, budget=budget, relax=True)
        assert greedy_value <= value + 1e-6 <= bound + 1e-6
        # the (1 - 1/e)/2 guarantee of the ratio greedy with the best single site
        assert greedy_value >= (1 - 1 / np.e) / 2 * value - 1e-6


def test_greedy_order_is_by_people_per_cost_and_counts_overlap_once():
    # site 0 covers pairs 0-2 (300 people, cost 3); site 1 covers pairs 2-3 (200, cost 1);
    # site 2 duplicates site 1's pairs
    p = problem([[0, 1, 2], [2, 3], [2, 3]], [100, 100, 100, 100], [3.0, 1.0, 1.0])
    order = greedy_cover(p, max_sites=3)
    assert order[0] in (1, 2)
    assert order[1] == 0
    assert len(order) == 2  # the twin site adds nobody


def test_best_single_site_beats_ratio_greedy_when_it_should():
    # a cheap site with few people, and one expensive site with many
    p = problem([[0], [1]], [10, 1000], [1.0, 10.0])
    assert greedy_cover(p, budget=10.0) == [1]


def test_sites_limit_and_missing_limit():
    p = problem([[0], [1], [2]], [5, 6, 7], [1.0, 1.0, 1.0])
    assert sorted(greedy_cover(p, max_sites=2)) == [1, 2]
    chosen, value = milp_cover(p, max_sites=2)
    assert value == 13
    with pytest.raises(ParameterError):
        greedy_cover(p)
