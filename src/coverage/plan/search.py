r"""Greedy state, pair merging and local search for budgeted maximal covering.

The ratio greedy (people per unit cost) fills a budget badly when costs spread widely: it
takes many cheap sites whose people a few large ones would have covered together, and
leaves money unspent. Two standard remedies are combined here, both on the instance with its
pairs merged (:func:`merge_pairs`, exact):

- **partial enumeration** (Khuller, Moss and Naor 1999; Sviridenko 2004): the greedy is also
  started from each of the ``seeds`` candidates with the most people alone;
- **local search** (the swap and add/drop neighbourhoods of tabu and interchange heuristics
  for maximal covering, Teitz and Bart 1968; Galvão and ReVelle 1996), from the best start:

  - *drop and refill*: remove one site, spend its money and the leftover again greedily
    (the first pick by people, or every pick by people per cost);
  - *add and drop*: force in one of the ``pool`` most promising outside sites, drop the
    sites that lose least per unit cost until the limits hold, and refill;

  a move is kept when it connects more people; passes repeat until none does or the
  budget (:class:`Budget`) is spent.

Both run phase by phase within the same limits as the greedy (the phase's money, the whole
budget, province budgets, the number of sites); locked sites are never dropped.

The search's budget is counted in **work units** (:class:`Work`), not seconds: every
operation on a :class:`State` adds the array elements it touches plus :data:`STEP` for the
call itself, so the same instance gets the same search, and the same plan, on any machine
and under any load. A wall-clock limit remains as a safety net only; when it ends a search,
:attr:`Budget.stopped` says so.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from .solvers import CoverProblem, Limits

_EPS = 1e-9

#: Work units charged for each array operation or Python step besides the elements it
#: touches (a unit is about 5 ns of CPU: a numpy call or a Python step costs about 5 us).
STEP = 1000
#: Elements of a dense sweep (zeroing, adding or copying a whole vector) per work unit.
DENSE = 4


class Work:
    """Work done so far, in units (array elements touched plus :data:`STEP` per operation).

    A count, not a clock: the same calls on the same instance always add the same units.
    One counter is shared by a state and all its copies.
    """

    __slots__ = ("units",)

    def __init__(self) -> None:
        self.units = 0

    def add(self, elements: int = 0) -> None:
        """Count one operation touching ``elements`` array elements."""
        self.units += STEP + int(elements)


class Budget:
    """When the search stops: after some work units, or (a safety net) some wall seconds.

    Parameters
    ----------
    work : Work
        The counter the search charges.
    units : float, optional
        Work units allowed from now (``None``: no limit).
    wall_s : float, optional
        Wall seconds allowed from now (``None``: no limit).

    Attributes
    ----------
    stopped : str
        ``""`` while neither limit has passed, then ``"work_limit"`` (deterministic) or
        ``"time_limit"`` (the wall clock: the result may differ from run to run).
    """

    def __init__(self, work: Work, units: float | None = None,
                 wall_s: float | None = None) -> None:
        self.work = work
        self.limit = math.inf if units is None else work.units + float(units)
        self.wall = math.inf if wall_s is None else time.perf_counter() + float(wall_s)
        self.stopped = ""

    def passed(self) -> bool:
        """Whether either limit has passed (and which, in :attr:`stopped`)."""
        if self.work.units >= self.limit:
            self.stopped = self.stopped or "work_limit"
        elif time.perf_counter() >= self.wall:
            self.stopped = "time_limit"
        return bool(self.stopped)

    def wall_left(self) -> float:
        """Wall seconds left (``inf`` without a wall limit)."""
        return self.wall - time.perf_counter()

    def within(self, units: float) -> Budget:
        """A budget of at most ``units`` more work units, with the same wall limit."""
        other = Budget(self.work)
        other.limit = min(self.limit, self.work.units + float(units))
        other.wall = self.wall
        return other


def merge_pairs(cover: sparse.csr_matrix, weight: np.ndarray, *, columns: bool = False
                ) -> tuple:
    """Merge the pairs covered by the same candidates, and drop pairs nobody needs.

    Pairs are grouped by a random hash of their candidate sets (the sum of a random number
    per candidate, summed in candidate order, so equal sets hash equally), and each group is
    checked against a second independent hash; a pair that fails the check is kept apart.
    Two different sets pass both with a probability below 1e-25, so every selection covers
    the same people on the merged instance.

    Parameters
    ----------
    cover : csr_matrix, shape (candidates, pairs)
    weight : ndarray, shape (pairs,)
        People of each pair.
    columns : bool
        Also return the pairs kept and the merged column of each.

    Returns
    -------
    (csr_matrix, ndarray) or (csr_matrix, ndarray, ndarray, ndarray)
        Cover over the merged pairs (one column per set of candidates) and their people;
        with ``columns``, the pairs kept (with people and a candidate) and their columns.
    """
    weight = np.asarray(weight, dtype=float)
    n_c, n_p = cover.shape
    counts = np.bincount(cover.indices, minlength=n_p)
    useful = np.flatnonzero((weight > 0) & (counts > 0))
    rng = np.random.default_rng(20240607)
    unit = sparse.csr_matrix((np.ones(cover.nnz), cover.indices, cover.indptr),
                             shape=cover.shape)
    h = np.asarray(unit.T @ rng.random((n_c, 2))).reshape(n_p, 2)[useful]
    _, rep, col = np.unique(h[:, 0], return_index=True, return_inverse=True)
    col = col.ravel()
    bad = h[:, 1] != h[rep[col], 1]
    if bad.any():
        col[bad] = len(rep) + np.arange(int(bad.sum()))
        rep = np.concatenate([rep, np.flatnonzero(bad)])
    merged = unit[:, useful[rep]].tocsr()
    merged.sort_indices()
    w = np.bincount(col, weights=weight[useful], minlength=len(rep))
    return (merged, w, useful, col) if columns else (merged, w)


def ahead(new: float, old: float, min_gain: float, tol: float = 1e-9) -> bool:
    """Whether a plan connecting ``new`` people beats one connecting ``old``.

    It must be ahead by more than the rounding tolerance ``tol`` (people) and by
    ``min_gain`` people at least (``Limits.min_gain``): a plan ahead only by sites that add
    almost nobody is not worth their money, as such a site is not (:func:`fill`).
    """
    return new > old + tol and new >= old + min_gain


class State:
    """Coverage of a partial plan: how many chosen sites cover each pair, the money spent.

    ``gains[c]`` (people candidate ``c`` would add) is kept up to date as sites are taken
    and dropped, through the pairs-by-candidates transpose.
    """

    def __init__(self, problem: CoverProblem, limits: Limits, work: Work | None = None
                 ) -> None:
        self.problem = problem
        self.limits = limits
        self.cover = problem.cover
        self.by_pair = problem.cover.T.tocsr()
        self.w0 = np.asarray(problem.weight, dtype=float)
        self.cost = np.asarray(problem.cost, dtype=float)
        self.count = np.zeros(len(self.w0), dtype=np.int32)
        self.gains = np.asarray(self.cover @ self.w0).ravel()
        self.group = problem.groups()
        self.spent = 0.0
        self.phase_spent = 0.0
        self.group_spent: dict[int, float] = {}
        self.taken = np.zeros(problem.n_candidates, dtype=bool)
        self.order: list[int] = []
        self.phase: list[int] = []
        self.people = 0.0
        #: the fewest people a site must add to be taken (Limits.min_gain, > 0)
        self.floor = max(float(limits.min_gain), _EPS)
        #: work done on this state and its copies (shared)
        self.work = Work() if work is None else work
        self.work.add(2 * self.cover.nnz + len(self.w0) + len(self.gains))

    def copy(self) -> State:
        """An independent copy (arrays copied)."""
        other = State.__new__(State)
        other.__dict__.update(self.__dict__)
        for name in ("count", "gains", "taken"):
            setattr(other, name, getattr(self, name).copy())
        other.group_spent = dict(self.group_spent)
        other.order, other.phase = list(self.order), list(self.phase)
        self.work.add((len(self.count) + 2 * len(self.gains)) // DENSE + len(self.order))
        return other

    def rows(self, i: int) -> np.ndarray:
        """Pairs candidate ``i`` covers."""
        c = self.cover
        return c.indices[c.indptr[i]:c.indptr[i + 1]]

    def _shift(self, pairs: np.ndarray, sign: float) -> None:
        if len(pairs):
            # the candidates of each pair, row after row (``by_pair[pairs]`` without
            # scipy's fancy indexing, which costs more than the sum on small sets)
            indptr = self.by_pair.indptr
            start, size = indptr[pairs], indptr[pairs + 1] - indptr[pairs]
            at = np.repeat(start - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
            cands = self.by_pair.indices[at]
            self.work.add(2 * len(cands) + len(self.gains) // DENSE)
            self.gains += sign * np.bincount(
                cands, weights=np.repeat(self.w0[pairs], size), minlength=len(self.gains))

    def _money(self, i: int, sign: float, phase_counts: bool) -> None:
        k = sign * float(self.cost[i])
        self.spent += k
        if phase_counts:
            self.phase_spent += k
        g = int(self.group[i])
        self.group_spent[g] = self.group_spent.get(g, 0.0) + k

    def take(self, i: int, phase: int) -> None:
        """Build candidate ``i`` in ``phase`` (the current phase)."""
        r = self.rows(i)
        self.work.add(len(r))
        new = r[self.count[r] == 0]
        self.count[r] += 1
        self.people += float(self.w0[new].sum())
        self._shift(new, -1.0)
        self._money(i, 1.0, True)
        self.taken[i] = True
        self.order.append(int(i))
        self.phase.append(phase)

    def drop(self, i: int) -> None:
        """Remove a site taken in the current phase."""
        r = self.rows(i)
        self.work.add(len(r) + len(self.order))
        self.count[r] -= 1
        lost = r[self.count[r] == 0]
        self.people -= float(self.w0[lost].sum())
        self._shift(lost, 1.0)
        self._money(i, -1.0, True)
        self.taken[i] = False
        k = self.order.index(int(i))
        del self.order[k], self.phase[k]

    def losses(self) -> np.ndarray:
        """People each candidate alone covers among the chosen (what dropping it loses)."""
        self.work.add(self.cover.nnz + len(self.w0))
        return np.asarray(self.cover @ (self.w0 * (self.count == 1))).ravel()

    def fits(self, i: int, cap: float) -> bool:
        """Whether candidate ``i`` fits within every limit (phase money ``cap``)."""
        lim = self.limits
        self.work.add()
        k = float(self.cost[i])
        if self.taken[i] or self.phase_spent + k > cap * (1 + _EPS) + _EPS:
            return False
        if lim.budget is not None and self.spent + k > lim.budget * (1 + _EPS) + _EPS:
            return False
        if lim.max_sites is not None and len(self.order) >= lim.max_sites:
            return False
        g = int(self.group[i])
        if g in lim.group_budgets:
            return self.group_spent.get(g, 0.0) + k <= lim.group_budgets[g] * (1 + _EPS) + _EPS
        return True

    def fits_all(self, cap: float, which: np.ndarray | None = None) -> np.ndarray:
        """Mask of the candidates (all, or ``which``) that fit within every limit now."""
        lim = self.limits
        idx = np.arange(len(self.cost)) if which is None else np.asarray(which)
        self.work.add(len(idx) * (1 + len(lim.group_budgets)))
        k = self.cost[idx]
        ok = ~self.taken[idx] & (self.phase_spent + k <= cap * (1 + _EPS) + _EPS)
        if lim.budget is not None:
            ok &= self.spent + k <= lim.budget * (1 + _EPS) + _EPS
        if lim.max_sites is not None and len(self.order) >= lim.max_sites:
            ok[:] = False
        if lim.group_budgets:
            g = self.group[idx]
            for code, b in lim.group_budgets.items():
                ok &= ~((g == code) & (self.group_spent.get(code, 0.0) + k
                                       > b * (1 + _EPS) + _EPS))
        return ok

    def within(self, cap: float) -> bool:
        """Whether the spending respects every limit (after a forced take)."""
        lim = self.limits
        if self.phase_spent > cap * (1 + _EPS) + _EPS:
            return False
        if lim.budget is not None and self.spent > lim.budget * (1 + _EPS) + _EPS:
            return False
        if lim.max_sites is not None and len(self.order) > lim.max_sites:
            return False
        return all(self.group_spent.get(g, 0.0) <= b * (1 + _EPS) + _EPS
                   for g, b in lim.group_budgets.items())


def key(gain: float | np.ndarray, cost: float | np.ndarray, by_cost: bool):
    """The greedy's order: people per unit cost, or people alone."""
    return gain / np.maximum(cost, _EPS) if by_cost else gain


def fill(state: State, cap: float, phase: int, *, by_cost: bool | None = None,
         limit: int | None = None) -> None:
    """Lazy greedy within one phase, from ``state`` (changed in place; Minoux 1978).

    With ``limit``, only the ``limit`` best candidates at the start are considered (the
    local search's refills, where a few sites fit the money freed).
    """
    by_cost = state.limits.by_cost if by_cost is None else by_cost
    cost = state.cost
    gains = state.gains
    cand = np.flatnonzero((gains >= state.floor) & state.fits_all(cap))
    if limit is not None and len(cand) > limit:
        value = key(gains[cand], cost[cand], by_cost)
        cand = cand[np.argpartition(-value, limit)[:limit]]
    heap = [(-float(key(gains[i], cost[i], by_cost)), cost[i], int(i)) for i in cand]
    heapq.heapify(heap)
    state.work.add(4 * len(cand))
    while heap:
        if state.limits.max_sites is not None and len(state.order) >= state.limits.max_sites:
            break
        _, k, i = heapq.heappop(heap)
        if not state.fits(i, cap):
            continue  # spending only grows within a phase: it will not fit later either
        g = float(state.gains[i])
        if g < state.floor:
            continue
        value = float(key(g, k, by_cost))
        if heap and value < -heap[0][0] * (1 - 1e-12):
            heapq.heappush(heap, (-value, k, i))
            continue
        state.take(i, phase)


def _refill(state: State, cap: float, phase: int, first_by_people: bool, limit: int) -> None:
    """Spend what fits again: optionally the single best site by people first, then ratio."""
    if first_by_people:
        ok = state.fits_all(cap) & (state.gains >= state.floor)
        if ok.any():
            state.take(int(np.argmax(np.where(ok, state.gains, -1.0))), phase)
    fill(state, cap, phase, limit=limit)


class _Search:
    """Local search over one phase's sites (see the module docstring)."""

    def __init__(self, state: State, cap: float, phase: int, *, pool: int,
                 budget: Budget) -> None:
        self.state, self.cap, self.phase = state, cap, phase
        self.pool, self.budget = pool, budget
        self.locked = {int(i) for i in state.limits.locked}
        self.by_cost = state.limits.by_cost

    def worth(self, loss: np.ndarray, st: State):
        """Sort key of the sites to drop first: least people lost (per unit cost)."""
        if self.by_cost:
            return lambda i: loss[i] / max(st.cost[i], _EPS)
        return lambda i: loss[i]

    def movable(self) -> list[int]:
        s = self.state
        return [i for i, t in zip(s.order, s.phase, strict=True)
                if t == self.phase and i not in self.locked]

    def _try(self, move) -> bool:
        """Apply ``move`` to a copy; keep it when it connects more people."""
        trial = self.state.copy()
        move(trial)
        if ahead(trial.people, self.state.people, self.state.limits.min_gain,
                 tol=1e-7 * max(1.0, self.state.people)):
            self.state = trial
            return True
        return False

    def drop_refill(self) -> bool:
        s = self.state
        sites = self.movable()
        if not sites:
            return False
        loss = s.losses()
        sites.sort(key=self.worth(loss, s))
        improved = False
        for i in sites:
            if self.budget.passed():
                break
            if not self.state.taken[i]:
                continue
            for first in (True, False):
                def move(st: State, i=i, first=first) -> None:
                    st.drop(i)
                    _refill(st, self.cap, self.phase, first, self.pool)
                if self._try(move):
                    improved = True
                    break
        return improved

    def add_drop(self) -> bool:
        s = self.state
        out = np.flatnonzero(~s.taken & (s.gains >= s.floor) & (s.cost <= self.cap + _EPS))
        if not len(out):
            return False
        by_ratio = out[np.argsort(-s.gains[out] / np.maximum(s.cost[out], _EPS))[:self.pool]]
        by_people = out[np.argsort(-s.gains[out])[:self.pool]]
        if not self.by_cost:
            by_ratio = by_people
        improved = False
        for j in dict.fromkeys([*by_ratio.tolist(), *by_people.tolist()]):
            if self.budget.passed():
                break
            if self.state.taken[j] or self.state.gains[j] < self.state.floor:
                continue

            def move(st: State, j=j) -> None:
                st.take(j, self.phase)
                while not st.within(self.cap):
                    sites = [i for i, t in zip(st.order, st.phase, strict=True)
                             if t == self.phase and i != j and i not in self.locked]
                    if not sites:
                        st.drop(j)  # nothing else to drop: the move is void
                        break
                    loss = st.losses()
                    st.drop(min(sites, key=self.worth(loss, st)))
                fill(st, self.cap, self.phase, limit=self.pool)
            improved |= self._try(move)
        return improved

    def _room(self, st: State) -> float:
        """Money the phase and the whole budget still allow."""
        room = self.cap - st.phase_spent
        if st.limits.budget is not None:
            room = min(room, st.limits.budget - st.spent)
        return room

    def _swap_fits(self, st: State, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Mask of the exchanges ``i`` out, ``j`` in (arrays) within every limit."""
        k = st.cost
        ok = (k[j] - k[i] <= self._room(st) * (1 + _EPS) + _EPS) & ~st.taken[j]
        for code, b in st.limits.group_budgets.items():
            gi, gj = st.group[i] == code, st.group[j] == code
            spent = st.group_spent.get(code, 0.0) + np.where(gj, k[j], 0.0) \
                - np.where(gi, k[i], 0.0)
            ok &= ~gj | (spent <= b * (1 + _EPS) + _EPS)
        return ok

    def swaps(self) -> bool:
        """Exchanges of one site for one outside, by their exact change in people.

        Dropping ``i`` and taking ``j`` changes the people by ``gain[j] - loss[i] +
        M[i, j]``, where ``M[i, j]`` is the people only ``i`` covers among the chosen that
        ``j`` covers too (Teitz and Bart 1968; Whitaker 1983's fast interchange): ``M``
        is one sparse product. The best exchange of each site is applied, best first,
        while it still gains (checked on the state), and the money left is spent again.
        """
        st = self.state
        sites = np.asarray(self.movable(), dtype=int)
        if not len(sites):
            return False
        row, j, delta = self._exchanges(sites)
        if not len(delta):
            return False
        order = np.lexsort((-delta, row))
        first = np.r_[True, row[order][1:] != row[order][:-1]]
        best = order[first]
        improved = False
        for b in best[np.argsort(-delta[best], kind="stable")]:
            if self.budget.passed():
                break
            improved |= self._exchange(int(sites[row[b]]), int(j[b]))
        if improved:
            fill(st, self.cap, self.phase, limit=self.pool)
        return improved

    def _exchanges(self, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exchanges that gain and fit: chosen site (row of ``sites``), outside site, gain.

        Outside sites sharing people with a chosen one come from one sparse product; those
        sharing nothing are tried among the ``pool`` with the most people (and, with
        ``by_cost``, the most people per cost).
        """
        st = self.state
        sub = st.cover[sites]
        alone = np.where(st.count[sub.indices] == 1, st.w0[sub.indices], 0.0)
        only = sparse.csr_matrix((alone, sub.indices, sub.indptr), shape=sub.shape)
        loss = np.asarray(only.sum(axis=1)).ravel()
        m = (only @ st.by_pair).tocoo()
        row, j, shared = m.row, m.col, m.data
        flops = int(np.diff(st.by_pair.indptr)[sub.indices].sum())
        st.work.add(2 * sub.nnz + 2 * flops + 8 * m.nnz + len(st.gains) // DENSE)
        # outside sites sharing nothing with a chosen one: the most people (by cost) first
        out = np.flatnonzero(~st.taken & (st.gains >= st.floor))
        top = out[np.argsort(-st.gains[out], kind="stable")[:self.pool]]
        if self.by_cost:
            ratio = out[np.argsort(-st.gains[out] / np.maximum(st.cost[out], _EPS),
                                   kind="stable")[:self.pool]]
            top = np.union1d(top, ratio)
        r2 = np.repeat(np.arange(len(sites)), len(top))
        j2 = np.tile(top, len(sites))
        row = np.concatenate([row, r2])
        j = np.concatenate([j, j2])
        shared = np.concatenate([shared, np.zeros(len(j2))])
        st.work.add(8 * len(j))
        delta = st.gains[j] + shared - loss[row]
        keep = ((delta > 1e-9 * max(1.0, st.people)) & (delta >= st.limits.min_gain)
                & (st.gains[j] >= st.floor))
        row, j, delta = row[keep], j[keep], delta[keep]
        keep = self._swap_fits(st, sites[row], j)
        return row[keep], j[keep], delta[keep]

    def _exchange(self, i: int, jj: int) -> bool:
        """Drop ``i`` and take ``jj`` if both still stand, it fits and it gains; else undo."""
        st = self.state
        if not st.taken[i] or st.taken[jj]:
            return False
        before = st.people
        st.drop(i)
        if not st.fits(jj, self.cap):
            st.take(i, self.phase)
            return False
        st.take(jj, self.phase)
        if ahead(st.people, before, st.limits.min_gain, tol=1e-9 * max(1.0, before)):
            return True
        st.drop(jj)
        st.take(i, self.phase)
        return False

    def run(self) -> State:
        while not self.budget.passed():
            s = self.swaps()
            a = self.drop_refill()
            b = self.add_drop()
            if not (s or a or b):
                break
        return self.state


def improve_phase(start: State, state: State, cap: float, phase: int, *, seeds: int,
                  pool: int, budget: Budget) -> tuple[State, bool]:
    """Seeds and local search for one phase; returns the best state and whether it improved.

    ``start`` is the state before the phase was filled, ``state`` the greedy's fill.
    """
    # the exchanges first: one sparse product a pass, where the seeds' refills cost a
    # greedy each (on national instances the allowance ends before the seeds do)
    quick = _Search(state.copy(), cap, phase, pool=pool, budget=budget)
    while quick.swaps():
        pass
    need = state.limits.min_gain
    best = quick.state if ahead(quick.state.people, state.people, need) else state
    if seeds > 0:
        ok = start.fits_all(cap) & (start.gains >= start.floor)
        top = np.flatnonzero(ok)
        top = top[np.argsort(-start.gains[top], kind="stable")[:seeds]]
        for j in top:
            if budget.passed():
                break
            trial = start.copy()
            trial.take(int(j), phase)
            fill(trial, cap, phase)
            if ahead(trial.people, best.people, need):
                best = trial
    searched = _Search(best.copy(), cap, phase, pool=pool, budget=budget).run()
    if ahead(searched.people, best.people, need):
        best = searched
    return best, best is not state


def order_selected(state: State, locked: Sequence[int]) -> tuple[list[int], list[int]]:
    """Locked sites first, then each phase's sites in people-per-cost order."""
    problem, by_cost = state.problem, state.limits.by_cost
    redo = State(problem, state.limits)
    order, phase = [], []
    for i in locked:
        redo.take(int(i), 0)
    order += redo.order
    phase += redo.phase
    for t in sorted(set(state.phase)):
        left = [i for i, p in zip(state.order, state.phase, strict=True)
                if p == t and not redo.taken[i]]
        # lazy: a site's gain only falls as others are taken (ties to the cheaper site)
        heap = [(-float(key(redo.gains[i], redo.cost[i], by_cost)), float(redo.cost[i]), i)
                for i in left]
        heapq.heapify(heap)
        while heap:
            _, k, i = heapq.heappop(heap)
            value = float(key(redo.gains[i], k, by_cost))
            if heap and (-value, k) > heap[0][:2]:
                heapq.heappush(heap, (-value, k, i))
                continue
            redo.take(i, t)
            order.append(i)
            phase.append(t)
    return order, phase
