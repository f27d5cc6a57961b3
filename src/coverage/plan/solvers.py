r"""Budgeted maximal covering on arrays: lazy greedy, HiGHS MILP, LP and online bounds.

The instance (:class:`CoverProblem`) is a 0/1 matrix of candidates by demand *pairs* (a
village's people in one grid cell), the people of each pair still without broadband, and the
cost of each candidate. The model, with phases :math:`t` (years) and candidate groups
:math:`g` (provinces):

.. math::

    \max \sum_p w_p y_p \quad \text{s.t.} \quad
    y_p \le \sum_t \sum_{c \ni p} x_{ct}, \quad \sum_t x_{ct} \le 1, \quad
    \sum_{s \le t} \sum_c k_c x_{cs} \le \sum_{s \le t} B_s, \quad
    \sum_t \sum_{c \in g} k_c x_{ct} \le B_g, \quad \sum_{c,t} x_{ct} \le N,

with :math:`x_{ct} \in \{0, 1\}` (built in phase :math:`t`), :math:`0 \le y_p \le 1`, locked
candidates fixed to :math:`x_{c0} = 1`, and without carry-over the cumulative phase rows
replaced by one row per phase. This is the maximal covering location problem (Church and
ReVelle 1974) with a knapsack budget (Khuller, Moss and Naor 1999).

- :func:`greedy_select` takes candidates by marginal people per unit cost with lazy
  evaluation (Minoux 1978: coverage is submodular, so a stale gain is an upper bound), phase
  by phase, and compares each phase with the best single affordable site (with the rest of
  the phase filled greedily after it), the variant with the :math:`(1 - 1/e)/2` guarantee,
  and with the greedy on marginal people alone (CELF, Leskovec et al. 2007).
  With only a number of sites it takes marginal people (ties to the cheaper site). It then
  tries the best single sites as seeds and improves the best start by local search
  (:mod:`coverage.plan.search`).
- :func:`milp_select` solves the model with HiGHS (:mod:`highspy`), warm-started from the
  heuristic's plan, until it is proven within ``mip_rel_gap`` of the optimum or the time
  limit passes (or solves its LP relaxation, an upper bound), after merging pairs that the
  same candidates cover.
- :func:`online_bound` is the bound of Leskovec et al. (2007): the people covered plus the
  best fractional knapsack of the remaining marginal gains, valid for any plan within the
  budget, cheap enough for national instances where the LP is too slow.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy import sparse

from ..errors import ParameterError, SolverError
from .search import (
    Budget,
    State,
    Work,
    ahead,
    fill,
    improve_phase,
    merge_pairs,
    order_selected,
)
from .search import key as _key

__all__ = [
    "CoverProblem",
    "Limits",
    "Selection",
    "drop_small_gains",
    "greedy_cover",
    "greedy_select",
    "milp_cover",
    "milp_select",
    "online_bound",
    "order_by_ratio",
    "relaxation_select",
]

log = logging.getLogger(__name__)
_EPS = 1e-9

#: Work units (:class:`coverage.plan.search.Work`) the local search does in one CPU second,
#: about, on the demo province (a 2-core x86-64 machine, 2026): the rate at which the old
#: ``min_search_s`` is converted.
WORK_PER_CPU_S = 250_000_000


@dataclass(frozen=True)
class CoverProblem:
    """Arrays of a budgeted maximal-covering instance.

    Attributes
    ----------
    cover : scipy.sparse.csr_matrix, shape (candidates, pairs)
        1 where a candidate covers a (village, cell) pair.
    weight : ndarray, shape (pairs,)
        People of each pair not covered today (0 for covered ones), possibly weighted.
    cost : ndarray, shape (candidates,)
        Cost of each candidate, in the cost model's currency.
    pair_village : ndarray, shape (pairs,)
        Row of the village of each pair in the classified table.
    group : ndarray of int, shape (candidates,), optional
        Budget group (province) code of each candidate; -1 for none.
    """

    cover: sparse.csr_matrix
    weight: np.ndarray
    cost: np.ndarray
    pair_village: np.ndarray
    group: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_c, n_p = self.cover.shape
        if len(self.weight) != n_p or len(self.cost) != n_c or len(self.pair_village) != n_p:
            raise ParameterError(
                f"cover is {n_c} x {n_p} but weight has {len(self.weight)}, cost "
                f"{len(self.cost)} and pair_village {len(self.pair_village)} entries")
        if self.group is not None and len(self.group) != n_c:
            raise ParameterError(f"group has {len(self.group)} entries for {n_c} candidates")
        if np.any(np.asarray(self.cost) < 0) or np.any(np.asarray(self.weight) < 0):
            raise ParameterError("costs and weights must not be negative")

    @property
    def n_candidates(self) -> int:
        """Number of candidates."""
        return int(self.cover.shape[0])

    def groups(self) -> np.ndarray:
        """Group code of each candidate (-1 everywhere when there are no groups)."""
        return (np.full(self.n_candidates, -1) if self.group is None
                else np.asarray(self.group, dtype=int))


@dataclass(frozen=True)
class Limits:
    """What a plan may spend and must contain.

    Parameters
    ----------
    budget : float, optional
        Total money, cost-model currency.
    max_sites : int, optional
        Number of candidates to build at most.
    phases : sequence of float
        Budget of each phase (year), in build order; empty for one phase.
    group_budgets : mapping of int to float
        Total money per group code (province) over the whole plan.
    locked : sequence of int
        Candidates built first, in phase 1, whatever they gain (their cost counts).
    carry_over : bool
        Money a phase leaves unspent goes to the next phase.
    min_gain : float
        The fewest (weighted) people a site must add, in build order, to be built; a
        site adding fewer is left out and its money left unspent (:func:`drop_small_gains`).
        Locked sites are exempt. 0 builds every site that adds anyone.
    """

    budget: float | None = None
    max_sites: int | None = None
    phases: tuple[float, ...] = ()
    group_budgets: Mapping[int, float] = field(default_factory=dict)
    locked: tuple[int, ...] = ()
    carry_over: bool = True
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        if self.budget is None and self.max_sites is None and not self.phases:
            raise ParameterError("give a budget, phases or a number of sites")
        if self.budget is not None and not self.budget > 0:
            raise ParameterError(f"budget must be positive, got {self.budget}")
        if self.max_sites is not None and self.max_sites < 1:
            raise ParameterError(f"the number of sites must be at least 1, got {self.max_sites}")
        if any(not b >= 0 for b in self.phases):
            raise ParameterError(f"phase budgets must not be negative, got {list(self.phases)}")
        if any(not b >= 0 for b in self.group_budgets.values()):
            raise ParameterError("province budgets must not be negative")
        if not self.min_gain >= 0:
            raise ParameterError(f"min_gain must not be negative, got {self.min_gain}")

    @property
    def by_cost(self) -> bool:
        """Whether money limits the plan (else only the number of sites does)."""
        return self.budget is not None or bool(self.phases) or bool(self.group_budgets)

    @property
    def phase_budgets(self) -> tuple[float, ...]:
        """Budget of each phase (one infinite phase without phases or budget)."""
        if self.phases:
            return tuple(float(b) for b in self.phases)
        return (math.inf if self.budget is None else float(self.budget),)

    @property
    def total_budget(self) -> float:
        """The most money any feasible plan spends."""
        total = sum(self.phase_budgets)
        return min(total, self.budget) if self.budget is not None else total


@dataclass(frozen=True)
class Selection:
    """Chosen candidates in build order.

    Attributes
    ----------
    order : list of int
        Candidate rows, first to build first.
    phase : list of int
        Phase (0-based) of each entry of ``order``.
    people : float
        Weighted people the selection covers.
    method : str
        ``greedy`` (people per cost), ``people_greedy`` (people alone, when better),
        ``best_single+greedy`` (the best single site first), joined by ``+`` over phases;
        or ``milp``.
    dropped : int
        Sites the solver chose that :func:`drop_small_gains` left out (they added fewer
        than ``Limits.min_gain`` people in build order).
    status : str
        What ended the solver: ``complete`` (it ran to its end: a local optimum, a proven
        gap), ``work_limit`` (a deterministic budget of work, nodes or iterations: the
        same on every run) or ``time_limit`` (the wall-clock safety net: the plan may
        differ from run to run).
    """

    order: list[int]
    phase: list[int]
    people: float
    method: str
    dropped: int = 0
    status: str = "complete"


def greedy_select(problem: CoverProblem, limits: Limits, *, search: bool = True,
                  seeds: int = 8, pool: int = 40, effort: float = 1.0,
                  min_work: float = 250_000_000, time_limit_s: float | None = None,
                  prefer: Sequence[int] = (), kernel: int = 200,
                  kernel_nodes: int = 200, min_search_s: float | None = None) -> Selection:
    """Lazy cost-benefit greedy, phase by phase, with seeds and local search.

    Parameters
    ----------
    problem : CoverProblem
        The instance.
    limits : Limits
        Budget, phases, sites, province budgets and locked candidates.
    search : bool
        Also start from the ``seeds`` candidates with the most people alone and improve the
        best start by local search (:mod:`coverage.plan.search`); ``False`` gives the plain
        greedy with its safeguards.
    seeds, pool : int
        Seeds of the partial enumeration, and outside sites tried by each add-and-drop pass.
    effort, min_work : float
        Seeds and local search of a phase stop after ``effort`` times the work its greedy
        took (pair merging included), or ``min_work`` if more, in work units
        (:class:`coverage.plan.search.Work`: array elements touched, counted, so the same
        on any machine and under any load), keeping the best plan so far. ``effort=inf``
        runs the search to its local optimum.
    time_limit_s : float, optional
        Safety net: stop improving after this many wall seconds in all (the best plan so
        far is kept, and ``status`` says ``time_limit``). Meant never to bind: the work
        budgets above end the search first.
    prefer : sequence of int
        Candidates to try first, in order, in each phase, each taken when it fits and adds
        people (a relaxation's plan, :func:`relaxation_select`); one more start of the
        search beside the greedy's.
    kernel : int
        Candidates beyond the plan in the kernel MILP run after the search (HiGHS,
        warm-started; 0: none).
    kernel_nodes : int
        Branch-and-bound nodes the kernel MILP may explore (HiGHS ``mip_max_nodes``).
    min_search_s : float, optional
        Deprecated (the search's floor was CPU seconds): converted to ``min_work`` at
        :data:`WORK_PER_CPU_S` units per second.

    Returns
    -------
    Selection
        The build order (locked sites, then each phase by people per cost); never exceeds
        any limit. Its ``status``: ``complete`` (every search ended at a local optimum and
        the kernel was solved), ``work_limit`` (a work or node budget ended one; the same
        on every run) or ``time_limit`` (the wall-clock safety net did).

    Raises
    ------
    ParameterError
        When the locked candidates alone break a limit.
    """
    if min_search_s is not None:
        warnings.warn("min_search_s is deprecated: give min_work (work units)",
                      DeprecationWarning, stacklevel=2)
        min_work = float(min_search_s) * WORK_PER_CPU_S
    work = Work()
    safety = Budget(work, wall_s=time_limit_s)
    work.add(problem.cover.nnz)  # merging the pairs
    cover, w = merge_pairs(problem.cover, problem.weight)
    merged = CoverProblem(cover, w, problem.cost, np.zeros(len(w), dtype=int), problem.group)
    state = _with_locked(State(merged, limits, work), problem, limits)
    caps = limits.phase_budgets
    methods, stops = set(), set()
    carry, began = 0.0, 0
    for t, budget_t in enumerate(caps):
        cap = budget_t + carry
        if t > 0:
            state.phase_spent = 0.0
        start = state.copy()
        state, method = _greedy_phase(start, cap, t, prefer)
        if search:
            phase_budget = safety.within(max(effort * (work.units - began), min_work))
            state, better = improve_phase(start, state, cap, t, seeds=seeds, pool=pool,
                                          budget=phase_budget)
            stops.add(phase_budget.stopped)
            if better:
                method = "local_search"
        methods.add(method)
        began = work.units
        carry = cap - state.phase_spent if limits.carry_over else 0.0
    if search and kernel > 0 and safety.passed():
        stops.add(safety.stopped)
    elif search and kernel > 0:
        better, stop = _kernel(merged, limits, state, size=kernel, max_nodes=kernel_nodes,
                               time_limit_s=safety.wall_left())
        stops.add(stop)
        if better is not None:
            state = better
            methods = {"kernel_milp"}
    status = next((s for s in ("time_limit", "work_limit") if s in stops), "complete")
    if status == "time_limit":
        log.warning("the plan's local search stopped at its wall-clock limit (%g s): the "
                    "plan may differ from run to run; raise time_limit_s", time_limit_s)
    method = "+".join(sorted(methods))
    order, phase = order_selected(state, limits.locked)
    selection = Selection(order, phase, _covered(problem, order), method, status=status)
    return drop_small_gains(problem, selection, limits.min_gain, locked=limits.locked)


def _with_locked(state: State, problem: CoverProblem, limits: Limits) -> State:
    """``state`` with the locked sites taken in the first phase.

    Raises
    ------
    ParameterError
        When the locked sites alone break the first phase's or a province's budget.
    """
    for i in limits.locked:
        if not state.fits(int(i), limits.phase_budgets[0]):
            raise ParameterError(
                f"the locked sites cost more than the first phase's budget or a province's "
                f"budget ({problem.cost[list(limits.locked)].sum():,.0f}); raise the budget "
                "or lock fewer sites")
        state.take(int(i), 0)
    return state


def _greedy_phase(start: State, cap: float, t: int, prefer: Sequence[int]
                  ) -> tuple[State, str]:
    """One phase's greedy from ``start`` with its safeguards: the best state and its method.

    The cost-benefit greedy, the greedy on people alone (CELF, Leskovec et al. 2007), the
    preferred sites first, and the best single feasible site first (Khuller, Moss and Naor
    1999); the best of those.
    """
    limits = start.limits
    state = start.copy()
    fill(state, cap, t)
    method = "greedy"
    if limits.by_cost:
        alt = start.copy()
        fill(alt, cap, t, by_cost=False)
        if ahead(alt.people, state.people, limits.min_gain):
            state, method = alt, "people_greedy"
    if prefer:
        alt = start.copy()
        for i in prefer:
            if alt.gains[i] >= alt.floor and alt.fits(int(i), cap):
                alt.take(int(i), t)
        fill(alt, cap, t)
        if ahead(alt.people, state.people, limits.min_gain):
            state, method = alt, "relaxation+greedy"
    gains = np.where(start.fits_all(cap), start.gains, 0.0)
    best = int(np.argmax(gains)) if len(gains) else 0
    if (len(gains) and gains[best] >= start.floor
            and gains[best] > state.people - start.people + 1e-9):
        alt = start.copy()
        alt.take(best, t)
        fill(alt, cap, t)
        if ahead(alt.people, state.people, limits.min_gain, tol=0.0):
            state, method = alt, "best_single+greedy"
    return state, method


def _core(state: State, size: int) -> np.ndarray:
    """The kernel: the chosen sites, then the best outside ones by four measures in turn.

    The measures are people alone, people alone per unit cost, people added to the plan
    and people added per unit cost (without a money limit, the two without cost);
    candidates are taken from each list in turn until ``size`` (the most promising of
    every kind, as a kernel search's kernel, Angelelli, Mansini and Speranza 2010).
    """
    cost = np.maximum(state.cost, _EPS)
    alone = np.asarray(state.cover @ state.w0).ravel()
    useful = np.flatnonzero(alone > _EPS)
    measures = ((alone, alone / cost, state.gains, state.gains / cost)
                if state.limits.by_cost else (alone, state.gains))
    lists = [useful[np.argsort(-v[useful], kind="stable")] for v in measures]
    core = dict.fromkeys(int(i) for i in state.order)
    depth = 0
    while len(core) < size and depth < len(useful):
        for lst in lists:
            if depth < len(lst):
                core.setdefault(int(lst[depth]), None)
        depth += 1
    return np.asarray(sorted(core), dtype=int)


def _kernel(problem: CoverProblem, limits: Limits, state: State, *, size: int,
            max_nodes: int, time_limit_s: float) -> tuple[State | None, str]:
    """The MILP on the kernel (:func:`_core`), warm-started from ``state``'s plan.

    The kernel is the plan and ``size`` candidates more. Any plan of the kernel is a plan
    of the instance, so the result is kept when it connects more people. HiGHS stops at a
    gap of 0.01%, after ``max_nodes`` nodes (deterministic) or at ``time_limit_s`` wall
    seconds (the safety net). Skipped when the plan has more than ``2 * size`` sites
    (national instances, where :func:`relaxation_select` does this job). Returns the
    better state or ``None``, and what stopped HiGHS (``""`` when it proved its gap;
    ``work_limit`` for the node limit; ``time_limit``).
    """
    n_free = len(state.order) - len(limits.locked)
    if n_free > 2 * size:
        return None, ""
    core = _core(state, len(state.order) + size)
    at = {int(c): k for k, c in enumerate(core)}
    sub = CoverProblem(problem.cover[core], problem.weight, problem.cost[core],
                       problem.pair_village, None if problem.group is None
                       else problem.groups()[core])
    sub_limits = Limits(budget=limits.budget, max_sites=limits.max_sites,
                        phases=limits.phases, group_budgets=limits.group_budgets,
                        locked=tuple(at[int(i)] for i in limits.locked),
                        carry_over=limits.carry_over, min_gain=limits.min_gain)
    start = Selection([at[i] for i in state.order], list(state.phase), state.people, "start")
    try:
        found, info = milp_select(sub, sub_limits, time_limit_s=time_limit_s,
                                  mip_rel_gap=1e-4, start=start, max_nodes=max_nodes)
    except SolverError:
        return None, ""
    stop = _STOPS.get(info["status"], "")
    if not ahead(found.people, state.people, limits.min_gain,
                 tol=1e-7 * max(1.0, state.people)):
        return None, stop
    redo = State(problem, limits)
    for i in limits.locked:
        redo.take(int(i), 0)
    for t in range(len(limits.phase_budgets)):
        for k, p in zip(found.order, found.phase, strict=True):
            i = int(core[k])
            if p == t and not redo.taken[i]:
                redo.take(i, t)
    return redo, stop


#: A HiGHS status (:func:`milp_select`'s ``info["status"]``) as a :class:`Selection` status.
_STOPS = {"node_limit": "work_limit", "iteration_limit": "work_limit",
          "time_limit": "time_limit"}


def greedy_cover(problem: CoverProblem, *, budget: float | None = None,
                 max_sites: int | None = None, phases: Sequence[float] = (),
                 group_budgets: Mapping[int, float] | None = None,
                 locked: Sequence[int] = (), carry_over: bool = True) -> list[int]:
    """Lazy greedy build order (see :func:`greedy_select`); the candidate rows only."""
    limits = Limits(budget=budget, max_sites=max_sites, phases=tuple(phases),
                    group_budgets=dict(group_budgets or {}), locked=tuple(locked),
                    carry_over=carry_over)
    return greedy_select(problem, limits).order


def _covered(problem: CoverProblem, chosen: Sequence[int]) -> float:
    """Weighted people covered by a set of candidates."""
    if len(chosen) == 0:
        return 0.0
    hit = np.asarray(problem.cover[list(chosen)].sum(axis=0)).ravel() > 0
    return float(np.asarray(problem.weight)[hit].sum())


def online_bound(problem: CoverProblem, limits: Limits, chosen: Sequence[int]) -> float:
    r"""Upper bound on any feasible plan's people, from a selection (Leskovec et al. 2007).

    For any plan :math:`O`, :math:`f(O) \le f(S) + \sum_{c \in O} \Delta(c \mid S)`; the
    sum is at most the best fractional knapsack of the marginal gains within the total
    budget, and at most the ``max_sites`` largest gains. Province budgets and phases are
    relaxed, so the bound holds for them too.
    """
    covered = _covered(problem, chosen)
    weight = np.asarray(problem.weight, dtype=float).copy()
    if len(chosen):
        weight[np.asarray(problem.cover[list(chosen)].sum(axis=0)).ravel() > 0] = 0.0
    delta = problem.cover @ weight
    free = np.ones(problem.n_candidates, dtype=bool)
    free[list(limits.locked)] = False
    delta = np.where(free, delta, 0.0)
    bounds = []
    if limits.max_sites is not None:
        n = max(limits.max_sites - len(limits.locked), 0)
        bounds.append(float(np.sort(delta)[::-1][:n].sum()))
    total = limits.total_budget
    if math.isfinite(total):
        money = max(total - float(np.asarray(problem.cost)[list(limits.locked)].sum()), 0.0)
        cost = np.asarray(problem.cost, dtype=float)
        pos = np.flatnonzero(delta > 0)
        free_ones = pos[cost[pos] <= _EPS]
        paid = pos[cost[pos] > _EPS]
        extra = float(delta[free_ones].sum())
        ratio = delta[paid] / cost[paid]
        o = np.argsort(-ratio)
        cum = np.cumsum(cost[paid][o])
        full = cum <= money
        extra += float(delta[paid][o][full].sum())
        nxt = int(full.sum())
        if nxt < len(o):
            left = money - (cum[nxt - 1] if nxt else 0.0)
            extra += left * ratio[o][nxt]
        bounds.append(extra)
    return covered + (min(bounds) if bounds else float(delta.sum()))


def _reduced(problem: CoverProblem, locked: Sequence[int]
             ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cover over merged useful pairs, their weights, candidates kept, pairs and columns.

    The last two: the useful pairs and the merged column of each.

    Pairs without people or without any covering candidate are dropped; pairs covered by
    the same set of candidates are merged (their people added). Candidates covering no
    useful pair are dropped unless locked (they could only cost money).
    """
    weight = np.asarray(problem.weight, dtype=float)
    counts = np.diff(problem.cover.tocsc().indptr)
    useful = np.flatnonzero((weight > 0) & (counts > 0))
    csc = problem.cover[:, useful].tocsc()
    csc.sort_indices()
    keys: dict[bytes, int] = {}
    col_of = np.empty(len(useful), dtype=np.int64)
    for j in range(len(useful)):
        key = csc.indices[csc.indptr[j]:csc.indptr[j + 1]].tobytes()
        col_of[j] = keys.setdefault(key, len(keys))
    merge = sparse.csr_matrix((np.ones(len(useful)), (np.arange(len(useful)), col_of)),
                              shape=(len(useful), len(keys)))
    w = merge.T @ weight[useful]
    cover = (csc @ merge).tocsr()
    cover.data[:] = 1.0
    keep = np.flatnonzero(np.diff(cover.indptr) > 0)
    keep = np.union1d(keep, np.asarray(list(locked), dtype=int))
    return cover[keep], w, keep, useful, col_of


def milp_select(problem: CoverProblem, limits: Limits, *, time_limit_s: float = 60.0,
                relax: bool = False, mip_rel_gap: float = 1e-3,
                start: Selection | None = None, lp_method: str = "choose",
                max_nodes: int | None = None, max_iterations: int | None = None
                ) -> tuple[Selection, dict]:
    """Solve the model with HiGHS: exactly, or its LP relaxation (an upper bound).

    Parameters
    ----------
    problem : CoverProblem
        The instance.
    limits : Limits
        As for :func:`greedy_select`.
    time_limit_s : float
        HiGHS time limit, wall seconds; the best solution found by then is returned. A
        safety net: the result then depends on the machine and its load (``status``
        ``time_limit``); ``max_nodes`` and ``max_iterations`` are the deterministic limits.
    relax : bool
        Solve the LP relaxation; the selection is then empty and ``info["objective"]`` is
        an upper bound on every plan's people.
    mip_rel_gap : float
        Stop once the plan is proven within this share of the optimum (HiGHS
        ``mip_rel_gap``; 0.001 = 0.1%).
    start : Selection, optional
        A plan within the limits (the heuristic's) given to HiGHS as its first incumbent
        (``Highs.setSolution``), so the search starts from it and never returns worse.
    lp_method : str
        HiGHS's LP method for ``relax``: ``choose`` (dual simplex), or ``ipm`` (interior
        point without crossover, faster on national instances; its duals, even when
        stopped by the time limit, give a valid bound through
        :func:`coverage.plan.lagrangian_bound`'s ``multipliers``).
    max_nodes : int, optional
        Branch-and-bound nodes the MILP may explore (HiGHS ``mip_max_nodes``); no limit
        by default.
    max_iterations : int, optional
        Iterations the LP (``relax``) may take: interior point iterations with ``ipm``
        (HiGHS ``ipm_iteration_limit``), else simplex iterations; no limit by default.

    HiGHS runs on one thread with its random seed fixed (``threads=1``,
    ``random_seed=0``), so that the same model gives the same result on any machine
    as long as no wall-clock limit binds.

    Returns
    -------
    (Selection, dict)
        The chosen candidates (build order within each phase by row), and ``info`` with
        ``objective``, ``status`` (``optimal``: proven within ``mip_rel_gap``,
        ``time_limit``), ``mip_gap`` (relative, proven, for the MILP), ``bound`` (HiGHS's
        proven upper bound on every plan's people, ``inf`` when it has none), ``seconds``,
        and the reduced model's ``variables``; for ``relax``, ``multipliers``: the LP's
        duals of the coverage rows per pair of ``problem`` (people, each merged row's dual
        shared by its pairs' people), or ``None`` when HiGHS has none.

    Raises
    ------
    SolverError
        When HiGHS returns no solution (infeasible locked sites, or no solution in time).
    """
    cover, w, keep, useful, col_of = _reduced(problem, limits.locked)
    n_c, n_q = cover.shape
    n_t = len(limits.phase_budgets)
    nx = n_c * n_t
    matrix, lo, hi = _milp_rows(cover, np.asarray(problem.cost, dtype=float)[keep],
                                problem.groups()[keep], limits)
    lower = np.zeros(nx + n_q)
    position = {int(c): j for j, c in enumerate(keep)}
    for i in limits.locked:
        lower[position[int(i)]] = 1.0
    h = _highs(time_limit_s, mip_rel_gap)
    if relax and lp_method == "ipm":
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
    if max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(max_nodes))
    if max_iterations is not None:
        h.setOptionValue("ipm_iteration_limit" if lp_method == "ipm"
                         else "simplex_iteration_limit", int(max_iterations))
    h.passModel(_highs_lp(matrix, lo, hi, lower=lower,
                          col_cost=np.concatenate([np.zeros(nx), -w]),
                          n_integer=None if relax else nx))
    if start is not None and not relax and start.order:
        h.setSolution(_start_solution(start, position, cover, n_t))
    began = time.perf_counter()
    _run(h)
    seconds = time.perf_counter() - began
    kind = "LP" if relax else "MILP"
    status = h.getModelStatus()
    log.info("HiGHS %s (%d x %d) in %.2f s: %s", kind, nx, n_q, seconds,
             h.modelStatusToString(status))
    if relax:
        return _relaxed(h, status, (n_q, n_t, n_c), w, (keep, useful, col_of), problem,
                        seconds)
    if h.getInfo().primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        raise SolverError(f"HiGHS found no {kind} solution in {time_limit_s:g} s: "
                          f"{h.modelStatusToString(status)}")
    return _milp_plan(h, status, problem, keep, (n_q, n_t, n_c), seconds=seconds,
                      time_limit_s=time_limit_s)


def _milp_rows(cover: sparse.csr_matrix, cost: np.ndarray, group: np.ndarray, limits: Limits
               ) -> tuple[sparse.csc_matrix, np.ndarray, np.ndarray]:
    """The MILP's constraint rows over ``x`` (site per phase) then ``y`` (pair covered).

    Rows, in order: each pair covered only by a site built in some phase (``y <= sum x``);
    with several phases, a site built once; each finite phase budget (cumulative with
    ``carry_over``); the total budget over phases; each group's budget; the number of
    sites.

    Parameters
    ----------
    cover : sparse matrix, shape (candidates, pairs)
        The reduced coverage (:func:`_reduced`).
    cost : ndarray
        Each reduced candidate's cost.
    group : ndarray
        Each reduced candidate's budget group.
    limits : Limits
        The budgets and the number of sites.

    Returns
    -------
    matrix : scipy.sparse.csc_matrix
        The rows.
    lower, upper : ndarray
        Their bounds (lower: ``-inf``).
    """
    n_c, n_q = cover.shape
    n_t = len(limits.phase_budgets)
    blocks, lo, hi = [], [], []

    def add(rows: sparse.spmatrix, upper) -> None:
        rows = sparse.csr_matrix(rows)
        blocks.append(rows)
        lo.append(np.full(rows.shape[0], -np.inf))
        hi.append(np.broadcast_to(np.asarray(upper, dtype=float), (rows.shape[0],)))

    add(sparse.hstack([*([-cover.T] * n_t), sparse.identity(n_q)]), 0.0)
    if n_t > 1:
        add(sparse.hstack([*([sparse.identity(n_c)] * n_t), sparse.csr_matrix((n_c, n_q))]),
            1.0)

    for coef, limit in _budget_rows(cost, group, limits):
        add(sparse.hstack([sparse.csr_matrix(coef), sparse.csr_matrix((1, n_q))]), limit)
    return sparse.vstack(blocks).tocsc(), np.concatenate(lo), np.concatenate(hi)


def _budget_rows(cost: np.ndarray, group: np.ndarray, limits: Limits
                 ) -> list[tuple[np.ndarray, float]]:
    """Coefficients over ``x`` (site per phase) and limit of each budget row.

    In order: each finite phase budget (the phases so far with ``carry_over``), the total
    budget over phases, each group's budget (groups with a candidate), the number of sites.
    """
    n_c, n_t = len(cost), len(limits.phase_budgets)
    rows = []
    cum = 0.0
    for t, b in enumerate(limits.phase_budgets):
        if not math.isfinite(b):
            continue
        coef = np.zeros(n_c * n_t)
        if limits.carry_over:
            coef[: (t + 1) * n_c] = np.tile(cost, t + 1)
            cum += b
            limit = cum
        else:
            coef[t * n_c:(t + 1) * n_c] = cost
            limit = b
        rows.append((coef, limit))
    if limits.budget is not None and limits.phases:
        rows.append((np.tile(cost, n_t), limits.budget))
    for g, b in limits.group_budgets.items():
        coef = np.tile(np.where(group == g, cost, 0.0), n_t)
        if coef.any():
            rows.append((coef, b))
    if limits.max_sites is not None:
        rows.append((np.ones(n_c * n_t), limits.max_sites))
    return rows


def _highs_lp(matrix: sparse.csc_matrix, row_lower: np.ndarray, row_upper: np.ndarray, *,
              lower: np.ndarray, col_cost: np.ndarray, n_integer: int | None
              ) -> highspy.HighsLp:
    """HiGHS's model: minimise ``col_cost`` over columns in ``[lower, 1]`` under the rows.

    The first ``n_integer`` columns are integer and the others continuous (None: all
    continuous, the LP relaxation).
    """
    n_col = len(col_cost)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_col, matrix.shape[0]
    lp.col_cost_ = col_cost
    lp.col_lower_, lp.col_upper_ = lower, np.ones(n_col)
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(float)
    if n_integer is not None:
        lp.integrality_ = ([highspy.HighsVarType.kInteger] * n_integer
                           + [highspy.HighsVarType.kContinuous] * (n_col - n_integer))
    return lp


def _start_solution(start: Selection, position: dict[int, int], cover: sparse.csr_matrix,
                    n_t: int) -> highspy.HighsSolution:
    """A plan as HiGHS's first incumbent: its sites per phase and the pairs they cover.

    ``position`` maps a candidate to its reduced column; candidates the reduction dropped
    are left out.
    """
    n_c, n_q = cover.shape
    nx = n_c * n_t
    x0 = np.zeros(nx + n_q)
    for i, t in zip(start.order, start.phase, strict=True):
        if int(i) in position:
            x0[t * n_c + position[int(i)]] = 1.0
    built = x0[:nx].reshape(n_t, n_c).sum(axis=0)
    x0[nx:] = np.minimum(np.asarray(cover.T @ built).ravel(), 1.0)
    sol = highspy.HighsSolution()
    sol.col_value = x0.tolist()
    sol.value_valid = True
    return sol


def _milp_plan(h: highspy.Highs, status, problem: CoverProblem, keep: np.ndarray,
               shape: tuple[int, int, int], *, seconds: float, time_limit_s: float
               ) -> tuple[Selection, dict]:
    """The MILP's plan (sites by phase, by row within one) and its ``info``.

    ``shape`` is (pairs, phases, reduced candidates); ``keep`` the candidate of each
    reduced column.
    """
    n_q, n_t, n_c = shape
    nx = n_t * n_c
    hinfo = h.getInfo()
    objective = float(-hinfo.objective_function_value)
    info = {"objective": objective, "status": _status(h, status), "seconds": seconds,
            "variables": nx + n_q, "nodes": int(hinfo.mip_node_count)}
    if info["status"] == "time_limit":
        log.warning("HiGHS MILP stopped at its wall-clock limit (%g s): the plan may "
                    "differ from run to run; raise time_limit_s", time_limit_s)
    dual = float(-hinfo.mip_dual_bound)
    info["bound"] = dual if math.isfinite(dual) else math.inf
    info["mip_gap"] = float(hinfo.mip_gap)
    x = np.asarray(h.getSolution().col_value)[:nx].reshape(n_t, n_c)
    order, phase = [], []
    for t in range(n_t):
        for j in np.flatnonzero(x[t] > 0.5):
            order.append(int(keep[j]))
            phase.append(t)
    return Selection(order, phase, _covered(problem, order), "milp",
                     status=_STOPS.get(info["status"], "complete")), info


def _relaxed(h: highspy.Highs, status, shape: tuple[int, int, int], w: np.ndarray,
             index: tuple[np.ndarray, np.ndarray, np.ndarray], problem: CoverProblem,
             seconds: float) -> tuple[Selection, dict]:
    """The LP relaxation's result: objective when optimal, pairs' duals, candidates' values.

    The values ``x`` are summed over phases.
    """
    n_q, n_t, n_c = shape
    keep, useful, col_of = index
    hinfo = h.getInfo()
    optimal = status == highspy.HighsModelStatus.kOptimal
    objective = float(-hinfo.objective_function_value) if optimal else math.inf
    multipliers = None
    sol = h.getSolution()
    if sol.dual_valid and len(sol.row_dual) >= n_q:
        # rows -x + y <= 0 of a minimisation: their duals are <= 0
        u = np.clip(-np.asarray(sol.row_dual[:n_q]), 0.0, w)
        share = np.where(w[col_of] > 0, u[col_of] / np.maximum(w[col_of], _EPS), 0.0)
        multipliers = np.zeros(len(problem.weight))
        multipliers[useful] = share * np.asarray(problem.weight, dtype=float)[useful]
    elif not optimal:
        log.info("HiGHS LP stopped without duals: %s", h.modelStatusToString(status))
    x = None
    if sol.value_valid:
        x = np.zeros(problem.n_candidates)
        x[keep] = np.asarray(sol.col_value[:n_t * n_c]).reshape(n_t, n_c).sum(axis=0)
    # An LP stopped early has no valid objective (its duals still give a bound).
    info = {"objective": objective, "status": _status(h, status),
            "seconds": seconds, "variables": n_t * n_c + n_q, "bound": objective,
            "multipliers": multipliers, "x": x}
    return Selection([], [], objective, "lp"), info


def relaxation_select(problem: CoverProblem, limits: Limits, *, time_limit_s: float = 60.0,
                      mip_rel_gap: float = 1e-3, whole: float = 0.999,
                      max_nodes: int | None = None, max_iterations: int | None = None
                      ) -> tuple[Selection | None, dict]:
    """The LP relaxation, then the MILP on the sites it leaves fractional (any scale).

    The LP is solved by HiGHS's interior point method without crossover, which solves
    national instances in seconds where the simplex takes many minutes. Its optimum is
    an upper bound, its duals give one even when it stops early
    (:func:`coverage.plan.lagrangian_bound` with ``multipliers``), and its solution guides
    the plan: with one phase, the sites the LP builds wholly (``x >= whole``) are fixed and
    the MILP chooses among those it builds in part, with the money and people left
    (relaxation-induced fixing, as in the kernel search of Angelelli, Mansini and
    Speranza 2010; near the LP optimum when the integrality gap is small, as it is for
    maximal covering). With phases it chooses among all the sites the LP uses.

    Parameters
    ----------
    problem, limits
        As for :func:`greedy_select`.
    time_limit_s : float
        For the LP, and again for the MILP, wall seconds (a safety net).
    mip_rel_gap : float
        The MILP's stopping gap on the reduced problem.
    whole : float
        LP value at which a site counts as built.
    max_nodes, max_iterations : int, optional
        The MILP's branch-and-bound nodes and the LP's interior point iterations
        (deterministic limits, :func:`milp_select`).

    Returns
    -------
    (Selection or None, dict)
        The plan (``None`` when the LP or the MILP found none in time) in candidate rows,
        whose ``status`` is the MILP's (:class:`Selection`), and the LP's ``info``
        (:func:`milp_select` with ``relax``) with ``lp_seconds``, ``milp_seconds`` and
        ``milp_status``.
    """
    _, info = milp_select(problem, limits, relax=True, time_limit_s=time_limit_s,
                          lp_method="ipm", max_iterations=max_iterations)
    info["lp_seconds"] = info["seconds"]
    x = info["x"]
    if x is None:
        return None, info
    locked = {int(i) for i in limits.locked}
    used = np.flatnonzero(x > 1e-3)
    core = np.union1d(used, np.asarray(sorted(locked), dtype=int))
    at = {int(c): k for k, c in enumerate(core)}
    fixed = set(locked)
    if len(limits.phase_budgets) == 1:
        fixed |= {int(i) for i in core[x[core] >= whole]}
    sub = CoverProblem(problem.cover[core], problem.weight, problem.cost[core],
                       problem.pair_village, None if problem.group is None
                       else problem.groups()[core])
    try:
        sub_limits = Limits(budget=limits.budget, max_sites=limits.max_sites,
                            phases=limits.phases, group_budgets=limits.group_budgets,
                            locked=tuple(at[i] for i in sorted(fixed)),
                            carry_over=limits.carry_over)
        found, minfo = milp_select(sub, sub_limits, time_limit_s=time_limit_s,
                                   mip_rel_gap=mip_rel_gap, max_nodes=max_nodes)
    except (SolverError, ParameterError) as exc:  # the LP's tolerance broke a limit
        log.info("no plan from the LP's sites: %s", exc)
        return None, info
    info["milp_seconds"] = minfo["seconds"]
    info["milp_status"] = minfo["status"]
    order = [int(core[k]) for k in found.order]
    status = _STOPS.get(minfo["status"], "complete")
    return Selection(order, list(found.phase), _covered(problem, order), "relaxation",
                     status=status), info


def _highs(time_limit_s: float, mip_rel_gap: float) -> highspy.Highs:
    """A silent HiGHS instance on one thread with a fixed seed, a time limit and a gap."""
    # ``highspy._Highs`` is the solver without the Python callback layer, which prints
    # HiGHS's banner on stdout when first built (the library never prints).
    h = highspy._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    return h


def _run(h: highspy.Highs) -> None:
    """Run HiGHS; once more on a new scheduler if another caller started it on more threads.

    HiGHS's thread scheduler is global to the process and refuses a run whose ``threads``
    differs from the one it was started with (another library in the same process may
    have used HiGHS with its default).
    """
    if (h.run() == highspy.HighsStatus.kError
            and h.getModelStatus() == highspy.HighsModelStatus.kNotset):
        highspy._Highs.resetGlobalScheduler(True)
        h.run()


def _status(h: highspy.Highs, status) -> str:
    """HiGHS's model status as ``info["status"]``."""
    kinds = {highspy.HighsModelStatus.kOptimal: "optimal",
             highspy.HighsModelStatus.kTimeLimit: "time_limit",
             highspy.HighsModelStatus.kSolutionLimit: "node_limit",
             highspy.HighsModelStatus.kIterationLimit: "iteration_limit"}
    return kinds.get(status, h.modelStatusToString(status).lower())


def order_by_ratio(problem: CoverProblem, selection: Selection, *, by_cost: bool = True,
                   locked: Sequence[int] = ()) -> Selection:
    """Build order of a selection: locked sites, then phase by phase by people per cost."""
    weight = np.asarray(problem.weight, dtype=float).copy()
    cost = np.asarray(problem.cost, dtype=float)
    cover = problem.cover
    order, phase = [], []
    for i in locked:
        weight[cover.indices[cover.indptr[i]:cover.indptr[i + 1]]] = 0.0
        order.append(int(i))
        phase.append(0)
    for t in sorted(set(selection.phase)):
        left = [i for i, p in zip(selection.order, selection.phase, strict=True)
                if p == t and i not in order]
        while left:
            gains = [float(weight[cover.indices[cover.indptr[i]:cover.indptr[i + 1]]].sum())
                     for i in left]
            j = max(range(len(left)), key=lambda k: (_key(gains[k], cost[left[k]], by_cost),
                                                      -cost[left[k]]))
            i = left.pop(j)
            weight[cover.indices[cover.indptr[i]:cover.indptr[i + 1]]] = 0.0
            order.append(i)
            phase.append(t)
    return dataclasses.replace(selection, order=order, phase=phase)


def drop_small_gains(problem: CoverProblem, selection: Selection, min_gain: float, *,
                     locked: Sequence[int] = ()) -> Selection:
    """Leave out the sites that add fewer than ``min_gain`` people in build order.

    The sites are visited in ``selection``'s order (a build order: locked sites, then phase
    by phase); each one's gain is counted over the sites kept before it, and a site that is
    not locked is dropped when it adds fewer than ``min_gain`` (weighted) people. Its money
    is left unspent: the other sites keep their phases and order. Coverage is submodular,
    so dropping a site loses at most its gain in build order: the plan connects at most
    ``min_gain`` times the number of sites dropped fewer people (often none: a site a
    solver chose as a tie adds nobody). Every site kept adds ``min_gain`` at least in the
    returned order, as the later sites only gain when an earlier one is dropped.

    Parameters
    ----------
    problem : CoverProblem
        The instance.
    selection : Selection
        A plan in build order.
    min_gain : float
        People, weighted as ``problem.weight``; 0 keeps every site.
    locked : sequence of int
        Candidates kept whatever they add.

    Returns
    -------
    Selection
        The plan kept, in the same order, with its people; ``selection`` itself when
        nothing is dropped.
    """
    if not min_gain > 0 or not selection.order:
        return selection
    weight = np.asarray(problem.weight, dtype=float).copy()
    cover = problem.cover
    keep = {int(i) for i in locked}
    order, phase = [], []
    for i, t in zip(selection.order, selection.phase, strict=True):
        pairs = cover.indices[cover.indptr[i]:cover.indptr[i + 1]]
        if float(weight[pairs].sum()) >= min_gain or int(i) in keep:
            weight[pairs] = 0.0
            order.append(int(i))
            phase.append(int(t))
    if len(order) == len(selection.order):
        return selection
    log.info("%d site(s) adding fewer than %g people left out", len(selection.order)
             - len(order), min_gain)
    return dataclasses.replace(selection, order=order, phase=phase,
                               people=_covered(problem, order),
                               dropped=selection.dropped + len(selection.order) - len(order))


def milp_cover(problem: CoverProblem, *, budget: float | None = None,
               max_sites: int | None = None, time_limit_s: float = 60.0,
               relax: bool = False, limits: Limits | None = None
               ) -> tuple[list[int], float]:
    """Chosen candidates and the objective of the MILP (or the LP bound, ``relax=True``)."""
    limits = limits or Limits(budget=budget, max_sites=max_sites)
    selection, info = milp_select(problem, limits, time_limit_s=time_limit_s, relax=relax)
    return selection.order, info["objective"]
