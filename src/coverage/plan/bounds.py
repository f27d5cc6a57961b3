r"""An upper bound on every plan's people at any scale: Lagrangian relaxation of the coverage.

Relaxing the rows :math:`y_p \le \sum_{c \ni p} x_c` of the covering model with multipliers
:math:`0 \le u_p \le w_p` (people per pair) leaves

.. math::

    L(u) = \sum_p (w_p - u_p) + \max_{x \in X} \sum_c x_c \sum_{p \in c} u_p ,

where :math:`X` is the set of plans within the limits. For *any* such :math:`u`,
:math:`L(u)` is at least the people of the best plan (weak duality), so every iterate is a
certificate. The inner maximum is itself bounded from above by relaxing :math:`X` to the
fractional knapsack of the whole budget (phases summed), to the fractional knapsacks of the
province budgets, and to the ``max_sites`` largest values; the smallest of these is used.
With those relaxations the best :math:`L(u)` equals the LP relaxation's optimum, reached here
by projected subgradient steps (Held, Wolfe and Crowder 1974: the step factor starts at 2
and halves after 20 steps without a better bound; the Lagrangian relaxation of
maximal covering of Galvão and ReVelle 1996) with the Polyak step towards the heuristic's
value. Each step costs two sparse products and a sort, so the bound runs where the LP is too
large for HiGHS in the time allowed; it starts from the multipliers of the online bound
(:math:`u_p = w_p` on the pairs a plan leaves uncovered, else 0), so it is never worse.

Locked sites are fixed: their people count in full and their cost is taken off every limit.
The pairs are merged by covering set first (:func:`coverage.plan.search.merge_pairs`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .search import merge_pairs

if TYPE_CHECKING:
    from .solvers import CoverProblem, Limits

__all__ = ["lagrangian_bound"]

log = logging.getLogger(__name__)
_EPS = 1e-9


def _fractional_knapsack(value: np.ndarray, cost: np.ndarray, money: float
                         ) -> tuple[float, np.ndarray]:
    """Best fractional knapsack: (value, x) for items with positive value."""
    x = np.zeros(len(value))
    pos = np.flatnonzero(value > 0)
    if not len(pos):
        return 0.0, x
    if not math.isfinite(money):
        x[pos] = 1.0
        return float(value[pos].sum()), x
    free = pos[cost[pos] <= _EPS]
    x[free] = 1.0
    paid = pos[cost[pos] > _EPS]
    o = paid[np.argsort(-value[paid] / cost[paid], kind="stable")]
    cum = np.cumsum(cost[o])
    full = int(np.searchsorted(cum, max(money, 0.0), side="right"))
    x[o[:full]] = 1.0
    if full < len(o):
        left = max(money, 0.0) - (cum[full - 1] if full else 0.0)
        x[o[full]] = left / cost[o[full]]
    return float(value @ x), x


class _Inner:
    """Upper bound of the inner maximum over plans, with the maximiser (a subgradient)."""

    def __init__(self, cost: np.ndarray, group: np.ndarray, money: float,
                 sites: int | None, group_money: dict[int, float]) -> None:
        self.cost, self.group, self.money = cost, group, money
        self.sites = sites
        self.group_money = group_money
        self.members = {g: np.flatnonzero(group == g) for g in group_money}
        budgeted = np.zeros(len(cost), dtype=bool)
        for idx in self.members.values():
            budgeted[idx] = True
        self.rest = np.flatnonzero(~budgeted)

    def __call__(self, value: np.ndarray) -> tuple[float, np.ndarray]:
        options = []
        if math.isfinite(self.money) or (self.sites is None and not self.group_money):
            options.append(_fractional_knapsack(value, self.cost, self.money))
        if self.group_money:
            x = np.zeros(len(value))
            total = 0.0
            parts = [(idx, min(self.group_money[g], self.money))
                     for g, idx in self.members.items()] + [(self.rest, self.money)]
            for idx, money in parts:
                v, xi = _fractional_knapsack(value[idx], self.cost[idx], money)
                total += v
                x[idx] = xi
            options.append((total, x))
        if self.sites is not None:
            x = np.zeros(len(value))
            pos = np.flatnonzero(value > 0)
            top = pos[np.argsort(-value[pos], kind="stable")[:self.sites]]
            x[top] = 1.0
            options.append((float(value[top].sum()), x))
        return min(options, key=lambda o: o[0])


def lagrangian_bound(problem: CoverProblem, limits: Limits, chosen: Sequence[int] = (), *,
                     lower: float | None = None, iterations: int = 300,
                     time_limit_s: float = 30.0, multipliers: np.ndarray | None = None
                     ) -> tuple[float, dict]:
    """Upper bound on the people of any plan within ``limits`` (see the module docstring).

    Parameters
    ----------
    problem : CoverProblem
        The instance.
    limits : Limits
        Budget, phases (relaxed to their sum), province budgets, sites, locked sites.
    chosen : sequence of int
        A plan within the limits: its uncovered pairs give the starting multipliers.
    lower : float, optional
        People of the best plan known (the Polyak step's target); that of ``chosen`` by
        default.
    iterations : int
        Subgradient steps at most (the deterministic limit).
    time_limit_s : float
        Safety net: stop after this many wall seconds (the best bound so far is valid,
        but may differ from run to run: ``status`` says ``time_limit``).
    multipliers : ndarray, shape (pairs,), optional
        Starting multipliers per pair (people; e.g. an LP's duals,
        :func:`coverage.plan.milp_select` with ``relax``), clipped to ``[0, w_p]``; the
        bound at them is valid whatever their source, and the steps only improve it.
        The online bound's multipliers for ``chosen`` by default.

    Returns
    -------
    (float, dict)
        The bound (weighted people) and ``info`` with ``iterations``, ``seconds``,
        ``status`` (``complete``, or ``time_limit`` when the wall clock ended the steps) and
        ``preferred``: the candidates of the relaxation's best plan, in the order to try
        them (see :func:`coverage.plan.greedy_select`'s ``prefer``).
    """
    start_time = time.perf_counter()
    free = _FreeProblem.of(problem, limits)
    weight = np.asarray(problem.weight, dtype=float)
    # Starting multipliers: those of the online bound for ``chosen`` (0 on covered pairs).
    mark = np.zeros(problem.n_candidates)
    mark[[int(i) for i in chosen if free.free[int(i)]]] = 1.0
    covered0 = np.asarray(free.merged.T @ mark[free.rows]).ravel() > 0
    u = np.where(covered0, 0.0, free.w)
    if multipliers is not None:
        given = np.clip(np.asarray(multipliers, dtype=float), 0.0, weight)[free.kept]
        u = np.minimum(np.bincount(free.col, weights=given, minlength=len(free.w)), free.w)
    target = (float(free.w[covered0].sum()) if lower is None
              else max(float(lower) - free.fixed, 0.0))
    best, best_x, best_v, done, status = _subgradient(
        free, u, target, iterations=iterations, started=start_time, time_limit_s=time_limit_s)
    seconds = time.perf_counter() - start_time
    log.info("Lagrangian bound %.1f after %d steps in %.2f s", free.fixed + best, done,
             seconds)
    # The plan the relaxation prefers: its knapsack's sites, most wholly chosen and best
    # valued per unit cost first (a start for the heuristic, Galvão and ReVelle 1996).
    cost = np.asarray(problem.cost, dtype=float)
    pick = np.flatnonzero(best_x > 0)
    pick = pick[np.lexsort((-best_v[pick] / np.maximum(cost[free.rows][pick], _EPS),
                            -best_x[pick]))]
    return free.fixed + best, {"iterations": done, "seconds": seconds, "status": status,
                               "preferred": free.rows[pick].tolist()}


@dataclass(frozen=True)
class _FreeProblem:
    """The problem left once the locked sites are built, its pairs merged.

    Attributes
    ----------
    fixed : float
        People the locked sites cover.
    free : ndarray of bool
        Candidates not locked.
    rows : ndarray of int
        Their indices.
    merged : sparse matrix, shape (free candidates, merged pairs)
        Their coverage of the merged pairs (:func:`coverage.plan.search.merge_pairs`).
    by_pair : sparse matrix
        ``merged`` transposed, in rows.
    w : ndarray
        People of each merged pair not covered by the locked sites.
    kept, col : ndarray of int
        The pairs kept by the merge, and the merged pair of each.
    inner : _Inner
        The inner maximum over plans, the locked sites' cost taken off every limit.
    """

    fixed: float
    free: np.ndarray
    rows: np.ndarray
    merged: Any
    by_pair: Any
    w: np.ndarray
    kept: np.ndarray
    col: np.ndarray
    inner: _Inner

    @classmethod
    def of(cls, problem: CoverProblem, limits: Limits) -> _FreeProblem:
        """The free problem of ``problem`` under ``limits`` (its ``locked`` sites built)."""
        weight = np.asarray(problem.weight, dtype=float)
        cost = np.asarray(problem.cost, dtype=float)
        group = problem.groups()
        cover = problem.cover
        locked = np.asarray(sorted({int(i) for i in limits.locked}), dtype=int)
        hit = np.zeros(len(weight), dtype=bool)
        if len(locked):
            hit[np.unique(cover[locked].indices)] = True
        free = np.ones(problem.n_candidates, dtype=bool)
        free[locked] = False
        rows = np.flatnonzero(free)
        merged, w, kept, col = merge_pairs(cover[rows], np.where(hit, 0.0, weight),
                                           columns=True)
        money = limits.total_budget - float(cost[locked].sum())
        group_money = {g: b - float(cost[locked][group[locked] == g].sum())
                       for g, b in limits.group_budgets.items()}
        sites = None if limits.max_sites is None else max(limits.max_sites - len(locked), 0)
        return cls(fixed=float(weight[hit].sum()), free=free, rows=rows, merged=merged,
                   by_pair=merged.T.tocsr(), w=w, kept=kept, col=col,
                   inner=_Inner(cost[rows], group[rows], money, sites, group_money))


def _subgradient(free: _FreeProblem, u: np.ndarray, target: float, *, iterations: int,
                 started: float, time_limit_s: float
                 ) -> tuple[float, np.ndarray, np.ndarray, int, str]:
    """Projected subgradient steps on the multipliers ``u`` (people per merged pair).

    Polyak steps towards ``target`` (people of the best plan known, beyond the locked
    sites'), the step factor starting at 2 and halving after 20 steps without a better
    bound; at most ``iterations`` steps, stopping early once the bound meets the target,
    the factor is spent or ``time_limit_s`` wall seconds have passed since ``started``
    (:func:`time.perf_counter`).

    Returns
    -------
    (float, ndarray, ndarray, int, str)
        The best bound beyond the locked sites' people, the inner maximiser and the
        candidates' values there, the steps taken, and ``complete`` or ``time_limit``.
    """
    w = free.w
    best = math.inf
    best_x = best_v = np.zeros(len(free.rows))
    theta, stall, done = 2.0, 0, 0
    status = "complete"
    while done < iterations:
        done += 1
        value = np.asarray(free.merged @ u).ravel()
        inner_v, x = free.inner(value)
        bound = float((w - u).sum()) + inner_v
        if not math.isfinite(best) or bound < best - 1e-9 * max(best, 1.0):
            best, stall, best_x, best_v = bound, 0, x, value
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2, 0
        grad = np.asarray(free.by_pair @ x).ravel() - 1.0
        grad[(u <= 0) & (grad > 0)] = 0.0  # projected: u cannot go below 0
        grad[(u >= w) & (grad < 0)] = 0.0  # nor above the pair's people
        norm = float(grad @ grad)
        if norm <= 0 or best - target <= 1e-6 * max(best, 1.0) or theta < 1e-4:
            break
        if time.perf_counter() - started > time_limit_s:
            status = "time_limit"
            log.warning("Lagrangian bound stopped at its wall-clock limit (%g s) after %d "
                        "steps: the bound may differ from run to run", time_limit_s, done)
            break
        step = theta * (bound - target) / norm
        u = np.clip(u - step * grad, 0.0, w)
    return best, best_x, best_v, done, status
