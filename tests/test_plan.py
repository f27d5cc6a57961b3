"""Budgeted maximal covering: greedy, HiGHS MILP, bounds, phases, provinces, locked sites.

Optima are known by enumeration on small random instances.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

from coverage.errors import ParameterError
from coverage.plan import (
    CoverProblem,
    Limits,
    _covered,
    cost_curve,
    greedy_cover,
    greedy_select,
    milp_cover,
    milp_select,
    online_bound,
)


def problem(cover_rows, weight, cost, group=None):
    n_p = len(weight)
    rows, cols = [], []
    for i, pairs in enumerate(cover_rows):
        rows += [i] * len(pairs)
        cols += list(pairs)
    cover = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cover_rows), n_p))
    return CoverProblem(cover, np.asarray(weight, float), np.asarray(cost, float),
                        np.zeros(n_p, dtype=int),
                        None if group is None else np.asarray(group, dtype=int))


def feasible(p: CoverProblem, lim: Limits, assignment: dict[int, int]) -> bool:
    """Whether candidate -> phase assignment respects every limit (brute-force checker)."""
    cost = p.cost
    chosen = list(assignment)
    if not set(lim.locked) <= {i for i, t in assignment.items() if t == 0}:
        return False
    if lim.max_sites is not None and len(chosen) > lim.max_sites:
        return False
    if lim.budget is not None and cost[chosen].sum() > lim.budget + 1e-9:
        return False
    caps = lim.phase_budgets
    spent = [sum(cost[i] for i, t in assignment.items() if t == k) for k in range(len(caps))]
    if lim.carry_over:
        if any(np.cumsum(spent)[k] > np.cumsum(caps)[k] + 1e-9 for k in range(len(caps))):
            return False
    elif any(s > c + 1e-9 for s, c in zip(spent, caps, strict=True)):
        return False
    groups = p.groups()
    for g, b in lim.group_budgets.items():
        if sum(cost[i] for i in chosen if groups[i] == g) > b + 1e-9:
            return False
    return True


def brute_force(p: CoverProblem, lim: Limits) -> float:
    n_t = len(lim.phase_budgets)
    best = 0.0
    for labels in itertools.product(range(-1, n_t), repeat=p.n_candidates):
        assignment = {i: t for i, t in enumerate(labels) if t >= 0}
        if feasible(p, lim, assignment):
            best = max(best, _covered(p, list(assignment)))
    return best


def random_problem(rng, n_c=6, n_p=20, groups=False):
    cover = [rng.choice(n_p, size=rng.integers(1, 7), replace=False) for _ in range(n_c)]
    return problem(cover, rng.integers(0, 100, n_p), rng.uniform(1, 5, n_c),
                   rng.integers(0, 2, n_c) if groups else None)


LIMITS = [
    Limits(budget=6.0),
    Limits(max_sites=2),
    Limits(budget=7.0, max_sites=2),
    Limits(phases=(3.0, 4.0)),
    Limits(phases=(3.0, 4.0), carry_over=False),
    Limits(budget=8.0, group_budgets={0: 4.0}),
    Limits(budget=8.0, locked=(0,)),
]


@pytest.mark.parametrize("lim", LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_milp_matches_enumeration_and_no_plan_breaks_a_limit(lim):
    rng = np.random.default_rng(11)
    for _ in range(6):
        p = random_problem(rng, groups=bool(lim.group_budgets))
        if lim.locked and p.cost[list(lim.locked)].sum() > lim.phase_budgets[0]:
            continue
        optimum = brute_force(p, lim)
        milp, info = milp_select(p, lim)
        assert info["status"] == "optimal"
        assert milp.people == pytest.approx(optimum)
        assert feasible(p, lim, dict(zip(milp.order, milp.phase, strict=True)))
        greedy = greedy_select(p, lim)
        assert feasible(p, lim, dict(zip(greedy.order, greedy.phase, strict=True)))
        assert greedy.people == pytest.approx(_covered(p, greedy.order))
        assert greedy.people <= optimum + 1e-6
        _, lp = milp_select(p, lim, relax=True)
        assert optimum <= lp["objective"] + 1e-6
        assert optimum <= online_bound(p, lim, greedy.order) + 1e-6
        if lim.locked:
            assert greedy.order[: len(lim.locked)] == list(lim.locked)
            assert set(lim.locked) <= set(milp.order)


def test_greedy_guarantee_and_bounds_on_budgets():
    rng = np.random.default_rng(7)
    for _ in range(15):
        p = random_problem(rng, n_c=7, n_p=25)
        lim = Limits(budget=6.0)
        optimum = brute_force(p, lim)
        g = greedy_select(p, lim)
        assert p.cost[g.order].sum() <= 6.0 + 1e-9
        # the (1 - 1/e)/2 guarantee of the ratio greedy with the best single site
        assert g.people >= (1 - 1 / np.e) / 2 * optimum - 1e-6
        _, value = milp_cover(p, budget=6.0)
        _, bound = milp_cover(p, budget=6.0, relax=True)
        assert g.people <= value + 1e-6 <= bound + 1e-6


def test_budget_order_is_by_people_per_cost_and_counts_overlap_once():
    # site 0 covers pairs 0-2 (300 people, cost 3); site 1 covers pairs 2-3 (200, cost 1);
    # site 2 duplicates site 1's pairs
    p = problem([[0, 1, 2], [2, 3], [2, 3]], [100, 100, 100, 100], [3.0, 1.0, 1.0])
    order = greedy_cover(p, budget=10.0)
    assert order[0] in (1, 2)
    assert order[1] == 0
    assert len(order) == 2  # the twin site adds nobody


def test_sites_limit_takes_most_people_ties_to_the_cheaper_site():
    p = problem([[0, 1, 2], [3], [4], [0, 1, 2]], [10, 10, 10, 25, 5], [9.0, 1.0, 1.0, 4.0])
    assert greedy_cover(p, max_sites=1) == [3]  # 30 people; the cheaper of the twins
    assert greedy_cover(p, max_sites=2) == [3, 1]
    chosen, value = milp_cover(p, max_sites=2)
    assert value == 55
    assert sorted(chosen) in ([1, 3], [0, 1])


def test_best_single_site_beats_ratio_greedy_when_it_should():
    # a cheap site with few people but the best ratio, and one expensive site with many
    p = problem([[0], [1]], [10, 95], [1.0, 10.0])
    sel = greedy_select(p, Limits(budget=10.0))
    assert sel.order == [1]
    assert sel.method in ("people_greedy", "best_single+greedy")  # the ratio greedy: [0]


def test_phases_order_sites_within_and_across_years_with_carry_over():
    # three sites of cost 2; the year budgets 3 and 3: one site in year 1, and with the
    # unspent 1 carried over, two in year 2.
    p = problem([[0], [1], [2]], [30, 20, 10], [2.0, 2.0, 2.0])
    sel = greedy_select(p, Limits(phases=(3.0, 3.0)))
    assert sel.order == [0, 1, 2]
    assert sel.phase == [0, 1, 1]
    strict = greedy_select(p, Limits(phases=(3.0, 3.0), carry_over=False))
    assert strict.order == [0, 1]
    assert strict.phase == [0, 1]


def test_province_budgets_bind():
    # the two best sites lie in province 0, which may spend 3
    p = problem([[0], [1], [2]], [50, 40, 10], [2.0, 2.0, 2.0], group=[0, 0, 1])
    sel = greedy_select(p, Limits(budget=6.0, group_budgets={0: 3.0}))
    assert sorted(sel.order) == [0, 2]


def test_limits_are_checked():
    p = problem([[0], [1]], [5, 6], [1.0, 1.0])
    with pytest.raises(ParameterError, match="budget"):
        greedy_cover(p)
    with pytest.raises(ParameterError, match="positive"):
        Limits(budget=0.0)
    with pytest.raises(ParameterError, match="locked"):
        greedy_select(p, Limits(budget=0.5, locked=(0,)))
    with pytest.raises(ParameterError, match="cover is"):
        CoverProblem(p.cover, p.weight[:1], p.cost, p.pair_village)


def test_milp_merges_identical_pairs_without_changing_the_optimum():
    # pairs 0-2 are covered by the same candidates: one merged column of 60 people
    p = problem([[0, 1, 2, 3], [0, 1, 2], [3, 4]], [20, 20, 20, 5, 40], [3.0, 1.0, 1.0])
    sel, info = milp_select(p, Limits(budget=2.0))
    assert sel.people == pytest.approx(105)
    assert info["variables"] == 3 + 3  # three candidates, three distinct pair sets


def test_cost_curve_rises_with_money_and_stays_under_its_bound():
    rng = np.random.default_rng(3)
    p = random_problem(rng, n_c=12, n_p=60)
    curve = cost_curve(p, [2.0, 4.0, 8.0, 16.0, 64.0])
    assert list(curve["budget"]) == [2.0, 4.0, 8.0, 16.0, 64.0]
    assert (curve["cost"] <= curve["budget"] + 1e-9).all()
    assert (curve["people"] <= curve["upper_bound"] + 1e-6).all()
    assert curve["people"].iloc[-1] == pytest.approx(_covered(p, range(12)))


def spread_problem(rng, n_c=40, n_p=300):
    """Sites on a line with the demo's cost spread: upgrades (0.55), new sites (1-3.6) that
    reach further, and satellite terminals for one pair each (cost per person)."""
    x_p = np.sort(rng.uniform(0, 100, n_p))
    weight = np.round(rng.lognormal(np.log(30), 0.8, n_p))
    kind = rng.choice(3, size=n_c, p=[0.4, 0.4, 0.2])
    rows, cost = [], []
    for k in kind:
        if k == 2:  # a terminal for one pair
            j = int(rng.integers(n_p))
            rows.append([j])
            cost.append(0.007 * weight[j])
            continue
        centre, reach = rng.uniform(0, 100), (4.0 if k == 0 else rng.uniform(5, 12))
        rows.append(np.flatnonzero(np.abs(x_p - centre) < reach))
        cost.append(0.55 if k == 0 else 1.0 + 2.6 * (reach - 5) / 7)
    return problem(rows, weight, cost)


SPREAD_LIMITS = [Limits(budget=5.0), Limits(budget=12.0), Limits(max_sites=6),
                 Limits(phases=(4.0, 4.0)), Limits(phases=(4.0, 4.0), carry_over=False),
                 Limits(budget=10.0, locked=(0, 1))]


@pytest.mark.parametrize("lim", SPREAD_LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_search_improves_the_greedy_and_stays_under_every_bound(lim):
    from coverage.plan import lagrangian_bound

    rng = np.random.default_rng(5)
    for _ in range(3):
        p = spread_problem(rng)
        plain = greedy_select(p, lim, search=False)
        best = greedy_select(p, lim)
        assert feasible(p, lim, dict(zip(best.order, best.phase, strict=True)))
        assert best.people == pytest.approx(_covered(p, best.order))
        assert best.people >= plain.people - 1e-6
        if lim.locked:
            assert best.order[: len(lim.locked)] == list(lim.locked)
        milp, info = milp_select(p, lim, mip_rel_gap=0.0, start=best)
        assert info["status"] == "optimal"
        assert feasible(p, lim, dict(zip(milp.order, milp.phase, strict=True)))
        assert best.people <= milp.people + 1e-6  # warm start: never worse than the start
        assert milp.people <= info["bound"] + 1e-6
        bound, info = lagrangian_bound(p, lim, best.order)
        assert milp.people <= bound + 1e-6
        guided = greedy_select(p, lim, prefer=info["preferred"])
        assert feasible(p, lim, dict(zip(guided.order, guided.phase, strict=True)))
        assert guided.people <= milp.people + 1e-6
        assert bound <= online_bound(p, lim, best.order) + 1e-6
        _, lp = milp_select(p, lim, relax=True)
        # the Lagrangian converges to the LP bound from above
        assert bound >= lp["objective"] - 1e-6 * lp["objective"]


@pytest.mark.parametrize("lim", LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_lagrangian_bound_holds_against_enumeration(lim):
    from coverage.plan import lagrangian_bound

    rng = np.random.default_rng(12)
    for _ in range(5):
        p = random_problem(rng, groups=bool(lim.group_budgets))
        if lim.locked and p.cost[list(lim.locked)].sum() > lim.phase_budgets[0]:
            continue
        optimum = brute_force(p, lim)
        bound, info = lagrangian_bound(p, lim, greedy_select(p, lim).order)
        assert optimum <= bound + 1e-6
        assert info["iterations"] >= 1


def test_the_search_finds_what_the_ratio_greedy_misses():
    # site 0 covers 140 people for 3 (the best ratio, the most people, the best single
    # site); sites 3 and 1 cover 90 + 60 for 2 each. With 4 to spend every greedy takes
    # site 0 and has 1 left; dropping it and refilling takes sites 3 and 1.
    p = problem([[2, 4], [0], [0], [4]], [60, 90, 50, 60, 90], [3.0, 2.0, 2.0, 2.0])
    lim = Limits(budget=4.0)
    assert greedy_select(p, lim, search=False).people == pytest.approx(140)
    best = greedy_select(p, lim)
    assert best.people == pytest.approx(150)
    assert best.method == "local_search"
    assert sorted(best.order) in ([1, 3], [2, 3])


def test_merged_pairs_keep_every_plans_people():
    from coverage.plan.search import merge_pairs

    rng = np.random.default_rng(2)
    p = random_problem(rng, n_c=10, n_p=200)
    cover, w = merge_pairs(p.cover, p.weight)
    assert cover.shape[1] < 200
    assert w.sum() == pytest.approx(p.weight[np.asarray(p.cover.sum(axis=0)).ravel() > 0]
                                    .sum())
    merged = CoverProblem(cover, w, p.cost, np.zeros(len(w), dtype=int))
    for _ in range(20):
        chosen = list(rng.choice(10, size=rng.integers(1, 6), replace=False))
        assert _covered(merged, chosen) == pytest.approx(_covered(p, chosen))


def test_an_empty_plan_says_why():
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    p = problem([[0], [1]], [50, 40], [2.0, 3.0])
    sel, summary = _solve(p, Limits(budget=1.0), params=PlanParams(), exact=True)
    assert sel.order == []
    assert "below the cheapest site" in summary["empty_reason"]
    # the same without the MILP (the relaxation's path)
    sel, summary = _solve(p, Limits(budget=1.0), params=PlanParams(), exact=False)
    assert sel.order == []
    assert "below the cheapest site" in summary["empty_reason"]
    nobody = problem([[0], [1]], [0, 0], [2.0, 3.0])
    _, summary = _solve(nobody, Limits(budget=10.0), params=PlanParams(), exact=True)
    assert "nobody is in need" in summary["empty_reason"]
    unreached = problem([[0], [0]], [0, 40], [2.0, 3.0])
    _, summary = _solve(unreached, Limits(budget=10.0), params=PlanParams(), exact=True)
    assert "no candidate site reaches anyone" in summary["empty_reason"]


@pytest.mark.parametrize("lim", LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_relaxation_plan_and_lp_duals_against_enumeration(lim):
    from coverage.plan import lagrangian_bound, relaxation_select

    rng = np.random.default_rng(21)
    for _ in range(5):
        p = random_problem(rng, groups=bool(lim.group_budgets))
        if lim.locked and p.cost[list(lim.locked)].sum() > lim.phase_budgets[0]:
            continue
        optimum = brute_force(p, lim)
        sel, info = relaxation_select(p, lim)
        assert sel is not None
        assert feasible(p, lim, dict(zip(sel.order, sel.phase, strict=True)))
        assert sel.people == pytest.approx(_covered(p, sel.order))
        assert sel.people <= optimum + 1e-6
        assert set(lim.locked) <= set(sel.order)
        assert info["objective"] >= optimum * (1 - 1e-7)  # the interior point's tolerance
        # the bound at the LP's duals is valid; it equals the LP optimum under one limit
        # (with several, the inner maximum is relaxed to the tightest single one)
        bound, _ = lagrangian_bound(p, lim, multipliers=info["multipliers"], iterations=1)
        assert optimum <= bound + 1e-6
        assert bound >= info["objective"] * (1 - 1e-5)
        if lim in (Limits(budget=6.0), Limits(max_sites=2)):
            assert bound == pytest.approx(info["objective"], rel=1e-5)
        # and any multipliers give a valid bound
        for _ in range(3):
            u = rng.uniform(0, 1.5, len(p.weight)) * p.weight
            bound, _ = lagrangian_bound(p, lim, multipliers=u, iterations=1)
            assert optimum <= bound + 1e-6


@pytest.mark.parametrize("lim", SPREAD_LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_relaxation_plan_and_kernel_stay_within_limits_and_under_the_milp(lim):
    from coverage.plan import lagrangian_bound, relaxation_select

    rng = np.random.default_rng(8)
    for _ in range(3):
        p = spread_problem(rng)
        milp, _ = milp_select(p, lim, mip_rel_gap=0.0)
        sel, lp = relaxation_select(p, lim)
        assert sel is not None
        assert feasible(p, lim, dict(zip(sel.order, sel.phase, strict=True)))
        assert sel.people <= milp.people + 1e-6
        assert milp.people <= lp["objective"] * (1 + 1e-7)  # interior point tolerance
        bound, _ = lagrangian_bound(p, lim, multipliers=lp["multipliers"], iterations=1)
        assert milp.people <= bound + 1e-6
        guided = greedy_select(p, lim, prefer=sel.order)
        assert feasible(p, lim, dict(zip(guided.order, guided.phase, strict=True)))
        assert sel.people - 1e-6 <= guided.people <= milp.people + 1e-6
        no_kernel = greedy_select(p, lim, kernel=0)
        with_kernel = greedy_select(p, lim)
        assert no_kernel.people - 1e-6 <= with_kernel.people <= milp.people + 1e-6


def test_exchange_of_one_site_for_another():
    from coverage.plan.search import Budget, State, _Search, fill

    # sites 1 and 2 cover 3 people each; site 0 covers 4, two of each's: the greedy for
    # two sites takes 0, then 1 (5 people); exchanging 0 for 2 covers 6.
    p = problem([[1, 2, 3, 4], [1, 2, 5], [3, 4, 6]], [0, 1, 1, 1, 1, 1, 1], [1.0] * 3)
    lim = Limits(max_sites=2)
    state = State(p, lim)
    fill(state, np.inf, 0)
    assert state.people == 5
    search = _Search(state, np.inf, 0, pool=10, budget=Budget(state.work))
    assert search.swaps()
    assert search.state.people == 6
    assert sorted(search.state.order) == [1, 2]
    assert not search.swaps()  # a local optimum
    # under a budget the exchange must fit: site 2 dearer than the money freed
    dear = problem([[1, 2, 3, 4], [1, 2, 5], [3, 4, 6]], [0, 1, 1, 1, 1, 1, 1],
                   [1.0, 1.0, 1.5])
    lim = Limits(budget=2.0)
    state = State(dear, lim)
    fill(state, 2.0, 0)
    search = _Search(state, 2.0, 0, pool=10, budget=Budget(state.work))
    assert not search.swaps()
    assert state.spent <= 2.0


@pytest.mark.parametrize("lim", SPREAD_LIMITS, ids=lambda lim: repr(lim)[7:60])
def test_plan_without_the_milp_is_certified_by_a_valid_bound(lim):
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    rng = np.random.default_rng(9)
    p = spread_problem(rng)
    optimum = milp_select(p, lim, mip_rel_gap=0.0)[0].people
    sel, summary = _solve(p, lim, params=PlanParams(), exact=False)
    assert feasible(p, lim, dict(zip(sel.order, sel.phase, strict=True)))
    assert sel.people <= optimum + 1e-6
    assert summary["upper_bound_people"] >= optimum - 0.05  # rounded to 0.1
    assert summary["upper_bound_method"] in ("lp", "lagrangian", "online")
    assert "lp_bound_people" in summary
    assert sel.people >= 0.98 * summary["upper_bound_people"]  # certified within 2%


def test_without_the_lp_the_lagrangian_still_certifies():
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    rng = np.random.default_rng(10)
    p = spread_problem(rng)
    lim = Limits(budget=5.0)
    optimum = milp_select(p, lim, mip_rel_gap=0.0)[0].people
    sel, summary = _solve(p, lim, params=PlanParams(lp_relaxation=False), exact=False)
    assert "lp_bound_people" not in summary
    assert summary["upper_bound_method"] in ("lagrangian", "online")
    assert sel.people <= optimum + 1e-6 <= summary["upper_bound_people"] + 0.05


def _tiny_gain_problems():
    """A plan with money left after its useful sites, and a site adding 0.2 people."""
    # the greedy takes A (10 people for 6), then the tiny site T fits in the 4 left
    greedy_case = problem([[0], [1]], [10.0, 0.2], [6.0, 3.0])
    # the MILP builds B and C (14 people for 9) and T in the 1 left
    milp_case = problem([[0], [1], [2], [3]], [10.0, 7.0, 7.0, 0.2], [6.0, 4.5, 4.5, 1.0])
    return greedy_case, milp_case


def test_no_site_adding_almost_nobody_on_the_heuristic_path():
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    p, _ = _tiny_gain_problems()
    # without a minimum gain, the greedy spends the money left on the near-empty site
    assert greedy_select(p, Limits(budget=10.0)).order == [0, 1]
    sel = greedy_select(p, Limits(budget=10.0, min_gain=0.5))
    assert sel.order == [0] and sel.people == pytest.approx(10.0)
    for exact in (False, True):
        sel, summary = _solve(p, Limits(budget=10.0, min_gain=0.5),
                              params=PlanParams(), exact=exact)
        assert sel.order == [0], exact
        assert summary["min_site_people"] == 0.5


def test_no_site_adding_almost_nobody_on_the_milp_path():
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    _, p = _tiny_gain_problems()
    lim = Limits(budget=10.0, min_gain=0.5)
    raw, _ = milp_select(p, lim, mip_rel_gap=0.0)
    assert sorted(raw.order) == [1, 2, 3]  # the exact model takes the tiny site too
    sel, summary = _solve(p, lim, params=PlanParams(local_search=False, mip_rel_gap=0.0),
                          exact=True)
    assert summary["plan_method"] == "milp"
    assert sorted(sel.order) == [1, 2] and sel.people == pytest.approx(14.0)
    assert summary["sites_below_min_gain"] == 1
    # the relaxation's path: the LP builds A and T wholly, so its plan takes both
    from coverage.plan import relaxation_select

    p, _ = _tiny_gain_problems()
    relaxed, _ = relaxation_select(p, lim)
    assert sorted(relaxed.order) == [0, 1]
    sel, summary = _solve(p, lim, params=PlanParams(local_search=False), exact=False)
    assert summary["relaxation_people"] == pytest.approx(10.2)
    assert sel.order == [0] and sel.people == pytest.approx(10.0)


def test_dropping_small_gains_loses_at_most_the_threshold_per_site():
    from coverage.plan import drop_small_gains
    from coverage.plan.solvers import Selection

    rng = np.random.default_rng(5)
    for _ in range(30):
        p = random_problem(rng)
        weight = p.weight * rng.choice([0.01, 1.0], size=len(p.weight))
        p = CoverProblem(p.cover, weight, p.cost, p.pair_village)
        order = list(rng.permutation(p.n_candidates)[:rng.integers(1, p.n_candidates)])
        sel = Selection(order, [0] * len(order), _covered(p, order), "test")
        kept = drop_small_gains(p, sel, 1.0, locked=order[:1])
        dropped = len(order) - len(kept.order)
        assert kept.order[0] == order[0]  # locked: kept whatever it adds
        assert kept.people == pytest.approx(_covered(p, kept.order))
        assert sel.people - kept.people <= 1.0 * dropped + 1e-9
        # every site kept after the locked one adds the threshold in the order kept
        for k in range(1, len(kept.order)):
            gain = _covered(p, kept.order[:k + 1]) - _covered(p, kept.order[:k])
            assert gain >= 1.0 - 1e-9


def test_a_plan_ahead_only_by_almost_nobody_is_not_preferred():
    from coverage.params import PlanParams
    from coverage.plan.rollout import _solve

    # A connects 10 people for 1; B the same 10 and 0.2 more for 5
    p = problem([[0], [0, 1]], [10.0, 0.2], [1.0, 5.0])
    assert greedy_select(p, Limits(budget=5.0)).order == [1]  # by people alone, B
    lim = Limits(budget=5.0, min_gain=0.5)
    assert greedy_select(p, lim).order == [0]
    raw, _ = milp_select(p, lim, mip_rel_gap=0.0)
    assert raw.order == [1]
    for exact in (False, True):
        sel, summary = _solve(p, lim, params=PlanParams(), exact=exact)
        assert sel.order == [0], exact
        assert summary["milp_people" if exact else "relaxation_people"] == pytest.approx(10.2)
