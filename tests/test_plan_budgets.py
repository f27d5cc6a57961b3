"""The plan does not depend on the clock: deterministic budgets, and a wall-clock stop told.

The solvers' clocks are replaced by ones running many times fast (a machine that many times
slower, or as loaded): the plan must not change. Budgets that bind must say so.
"""

from __future__ import annotations

import time
import types

import highspy
import numpy as np
import pytest
from scipy import sparse

from coverage.params import PlanParams, from_mapping
from coverage.plan import (
    CoverProblem,
    Limits,
    bounds,
    greedy_select,
    lagrangian_bound,
    milp_select,
    search,
    solvers,
)
from coverage.plan.rollout import _solve


def line_problem(seed: int = 3, n_c: int = 300, n_p: int = 4000) -> CoverProblem:
    """Sites along a line with the demo's cost spread (upgrades, new sites reaching further
    for more money, terminals for one pair), large enough for the search to take a while."""
    rng = np.random.default_rng(seed)
    x_p = np.sort(rng.uniform(0, 1000, n_p))
    weight = np.round(rng.lognormal(np.log(30), 0.8, n_p))
    rows, cols, cost = [], [], []
    for c, k in enumerate(rng.choice(3, size=n_c, p=[0.4, 0.4, 0.2])):
        if k == 2:
            hit = [int(rng.integers(n_p))]
            cost.append(0.007 * weight[hit[0]])
        else:
            centre, reach = rng.uniform(0, 1000), (4.0 if k == 0 else rng.uniform(5, 12))
            hit = np.flatnonzero(np.abs(x_p - centre) < reach)
            cost.append(0.55 if k == 0 else 1.0 + 2.6 * (reach - 5) / 7)
        rows += [c] * len(hit)
        cols += list(hit)
    cover = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_c, n_p))
    return CoverProblem(cover, weight, np.asarray(cost), np.arange(n_p))


def _slow_clocks(monkeypatch, factor: float) -> None:
    """The solvers' clocks run ``factor`` times fast, as on a machine that much slower."""
    fast = types.SimpleNamespace(perf_counter=lambda: time.perf_counter() * factor,
                                 process_time=lambda: time.process_time() * factor)
    for module in (search, solvers, bounds):
        monkeypatch.setattr(module, "time", fast)


LIMITS = [Limits(budget=40.0), Limits(phases=(15.0, 25.0)), Limits(max_sites=25)]


@pytest.mark.parametrize("lim", LIMITS, ids=lambda lim: repr(lim)[7:40])
def test_same_plan_on_a_machine_thirty_times_slower(monkeypatch, lim):
    p = line_problem()
    params = PlanParams()
    exact_plan, exact_summary = _solve(p, lim, params=params, exact=None)
    relaxed_plan, relaxed_summary = _solve(p, lim, params=params, exact=False)
    _slow_clocks(monkeypatch, 30.0)
    for plan, summary, exact in ((exact_plan, exact_summary, None),
                                 (relaxed_plan, relaxed_summary, False)):
        again, again_summary = _solve(p, lim, params=params, exact=exact)
        assert (again.order, again.phase) == (plan.order, plan.phase)
        assert again.people == plan.people
        assert again_summary["upper_bound_people"] == summary["upper_bound_people"]
        assert again_summary["time_limited"] == []


def test_search_budget_is_work_and_binds_the_same_way_every_time():
    p = line_problem()
    lim = Limits(budget=40.0)
    plain = greedy_select(p, lim, search=False)
    cut = [greedy_select(p, lim, effort=0.0, min_work=2e6, kernel=0) for _ in range(2)]
    assert cut[0].status == "work_limit"
    assert (cut[0].order, cut[0].people) == (cut[1].order, cut[1].people)
    assert cut[0].people >= plain.people - 1e-9
    full = greedy_select(p, lim, effort=np.inf, kernel=0)
    assert full.status == "complete"
    assert full.people >= cut[0].people - 1e-9


def test_a_wall_clock_stop_is_reported(monkeypatch):
    p = line_problem()
    lim = Limits(budget=40.0)
    # a machine so slow that the safety net passes at once
    _slow_clocks(monkeypatch, 1e9)
    sel = greedy_select(p, lim, time_limit_s=1.0)
    assert sel.status == "time_limit"
    _, info = lagrangian_bound(p, lim, sel.order, iterations=50, time_limit_s=1.0)
    assert info["status"] == "time_limit"
    plan, summary = _solve(p, lim, params=PlanParams(time_limit_s=1.0), exact=False)
    assert "greedy" in summary["time_limited"]
    assert plan.order  # the best plan so far is still given


def test_milp_node_limit_is_deterministic_and_reported():
    p = line_problem(n_c=200, n_p=3000)
    lim = Limits(budget=30.0)
    start = greedy_select(p, lim, search=False)
    runs = [milp_select(p, lim, mip_rel_gap=0.0, max_nodes=0, start=start) for _ in range(2)]
    (sel, info), (again, _) = runs
    assert info["status"] in ("node_limit", "optimal")
    if info["status"] == "node_limit":
        assert info["nodes"] == 0
    assert sel.order == again.order
    assert sel.people >= start.people - 1e-6
    _, info = milp_select(p, lim, mip_rel_gap=0.0, time_limit_s=1e-6, start=start)
    assert info["status"] == "time_limit"


def test_highs_runs_after_another_caller_started_it_on_more_threads():
    highspy._Highs.resetGlobalScheduler(True)
    other = highspy._Highs()
    other.setOptionValue("output_flag", False)
    other.setOptionValue("threads", 2)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 1, 0
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.array([1.0]), np.zeros(1), np.ones(1)
    other.passModel(lp)
    other.run()
    p = line_problem(n_c=50, n_p=500)
    sel, info = milp_select(p, Limits(budget=5.0))
    assert info["status"] == "optimal"
    assert sel.people > 0


def test_budgets_are_plan_settings_and_the_defaults_agree():
    params = PlanParams()
    assert params.time_limit_s >= 600
    from inspect import signature

    kw = signature(greedy_select).parameters
    assert kw["effort"].default == params.search_effort
    assert kw["min_work"].default == params.search_min_work
    assert kw["kernel_nodes"].default == params.kernel_max_nodes
    changed = from_mapping(PlanParams, {"time_limit_s": 60, "milp_max_nodes": 50,
                                        "search_min_work": 1e6, "kernel_max_nodes": 10,
                                        "lp_max_iterations": 100, "search_effort": 2})
    assert (changed.time_limit_s, changed.milp_max_nodes, changed.kernel_max_nodes) == (
        60, 50, 10)
    with pytest.raises(ValueError, match=r"milp_max_nodes = -1 is out of range; use at least 0"):
        PlanParams(milp_max_nodes=-1)


def test_min_search_s_still_works_as_work():
    p = line_problem(n_c=60, n_p=600)
    lim = Limits(budget=10.0)
    with pytest.warns(DeprecationWarning, match="min_work"):
        old = greedy_select(p, lim, min_search_s=1.0)
    new = greedy_select(p, lim, min_work=solvers.WORK_PER_CPU_S)
    assert (old.order, old.people) == (new.order, new.people)
