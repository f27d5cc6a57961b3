r"""Rollout planning: candidate sites, their costs, budgeted maximal covering, build order.

The objective is the number of people newly given outdoor mobile broadband in villages that
are ``unavailable``, per the same coverage model and thresholds as the classification (see
:mod:`coverage.plan.solvers` for the formulation). The stages:

1. :func:`demand_pairs` - people in need per (village, cell);
2. :func:`generate_candidates` and :func:`candidate_cells` - upgrades, planned, user, terrain
   high points, village centres (macro and small cell), and what each covers;
3. community satellite terminals per ``unavailable`` village, as one more option;
4. :func:`site_costs` - the documented cost model, broken down per site;
5. :func:`greedy_select` (the build order), :func:`milp_select` (exact, HiGHS),
   :func:`relaxation_select` (the LP by interior point and the MILP on the sites it leaves
   fractional, at any scale), and the LP, :func:`lagrangian_bound` and :func:`online_bound`
   certificates reported with every plan;
6. :func:`plan_table` and :func:`priority_villages` - the contract's outputs;

composed by :func:`plan_sites` (:mod:`coverage.plan.rollout`) from a :class:`PlanInputs` and
a :class:`PlanLimits`, or :func:`plan_rollout` with every one of them as a keyword.

Examples
--------
>>> from coverage.plan import CoverProblem, Limits, greedy_select
>>> from scipy import sparse
>>> import numpy as np
>>> cover = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]]))
>>> p = CoverProblem(cover, np.array([50.0, 20.0, 40.0]), np.array([2.0, 2.0, 1.0]),
...                  np.zeros(3, dtype=int))
>>> greedy_select(p, Limits(budget=3.0)).order
[2, 0]
"""

from __future__ import annotations

from .bounds import lagrangian_bound
from .candidates import candidate_cells, generate_candidates, high_points
from .costs import BREAKDOWN, site_costs
from .demand import Demand, build_problem, demand_pairs
from .rollout import (
    LP_BOUND_FACTOR,
    PlanInputs,
    PlanLimits,
    PlanResult,
    cost_curve,
    plan_model,
    plan_rollout,
    plan_sites,
)
from .solvers import (
    CoverProblem,
    Limits,
    Selection,
    _covered,
    drop_small_gains,
    greedy_cover,
    greedy_select,
    milp_cover,
    milp_select,
    online_bound,
    relaxation_select,
)
from .tables import plan_table, priority_villages, write_plan_table

_ = _covered  # re-exported for the tests' brute force

__all__ = [
    "BREAKDOWN",
    "LP_BOUND_FACTOR",
    "CoverProblem",
    "Demand",
    "Limits",
    "PlanInputs",
    "PlanLimits",
    "PlanResult",
    "Selection",
    "build_problem",
    "candidate_cells",
    "cost_curve",
    "demand_pairs",
    "drop_small_gains",
    "generate_candidates",
    "greedy_cover",
    "greedy_select",
    "high_points",
    "lagrangian_bound",
    "milp_cover",
    "milp_select",
    "online_bound",
    "plan_model",
    "plan_rollout",
    "plan_sites",
    "plan_table",
    "priority_villages",
    "relaxation_select",
    "site_costs",
    "write_plan_table",
]
