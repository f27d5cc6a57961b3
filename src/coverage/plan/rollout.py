"""A rollout plan from classified villages: the stages composed, under limits.

:func:`plan_sites` takes the classified villages, what the plan reads besides them
(:class:`PlanInputs`) and what it may spend (:class:`PlanLimits`), and composes the stages
of :mod:`coverage.plan`: demand, candidates and their coverage, costs, the covering problem,
the solvers and their bounds, and the contract's tables. :func:`plan_rollout` is the same
with every input and limit as a keyword.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from ..engine import Engine
from ..errors import ParameterError, SolverError
from ..io import Raster, utm_crs
from ..model import (
    CoverageSurfaces,
    Grid,
    clutter_map,
    fuse_measurements,
    predict_coverage_tiled,
)
from ..params import ModelParams, PlanParams, Profile, get_profile
from .bounds import lagrangian_bound
from .candidates import candidate_cells, generate_candidates
from .costs import satellite_terminal_cost, site_costs
from .demand import Demand, demand_pairs
from .search import ahead
from .solvers import (
    CoverProblem,
    Limits,
    Selection,
    drop_small_gains,
    greedy_select,
    milp_select,
    online_bound,
    order_by_ratio,
    relaxation_select,
)
from .tables import plan_table, priority_villages, village_options

__all__ = ["LP_BOUND_FACTOR", "PlanInputs", "PlanLimits", "PlanResult", "cost_curve",
           "plan_model", "plan_rollout", "plan_sites"]

log = logging.getLogger(__name__)
#: Kept for compatibility: the LP bound is now solved at every scale (interior point).
LP_BOUND_FACTOR = 4


@dataclass
class PlanResult:
    """A rollout plan.

    Attributes
    ----------
    sites : GeoDataFrame
        The contract's plan rows in build order, with phase and cost breakdown.
    villages : DataFrame
        The priority village list of the contract (every village once).
    summary : dict
        People connected, cost, the greedy's people, the MILP's, the LP and online bounds.
    candidates : GeoDataFrame
        Every candidate with its cost breakdown and the people it alone would connect.
    curve : DataFrame, optional
        The budget sweep: people connected against money, with the upper bound.
    problem : CoverProblem, optional
        The covering instance solved (rows are ``candidates``' rows), for analysis.
    limits : Limits, optional
        The limits it was solved under.
    """

    sites: gpd.GeoDataFrame
    villages: pd.DataFrame
    summary: dict
    candidates: gpd.GeoDataFrame
    curve: pd.DataFrame | None = field(default=None)
    problem: CoverProblem | None = field(default=None, repr=False)
    limits: Limits | None = field(default=None, repr=False)


def _satellite_rows(classified: gpd.GeoDataFrame, demand: Demand, params: PlanParams
                    ) -> tuple[gpd.GeoDataFrame, sparse.csr_matrix]:
    """One community-satellite option per village with people in need, and its pairs."""
    need = np.bincount(demand.village, weights=demand.weight, minlength=len(classified))
    rows = np.flatnonzero(need > 0)
    if not len(rows):  # nobody in need: no terminal to offer
        return gpd.GeoDataFrame(geometry=[], crs=4326), sparse.csr_matrix((0, len(demand.cell)))
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    terminals, _, _ = satellite_terminal_cost(np.where(np.isnan(pop), need, pop)[rows], params)
    pts = classified.geometry.iloc[rows].to_crs(utm_crs(classified))
    pts = pts.representative_point().to_crs(4326)
    ids = classified["village_id"].astype(str).to_numpy()[rows]
    cands = gpd.GeoDataFrame({
        "site_id": [f"sat-{v}" for v in ids], "kind": "satellite",
        "technology": "satellite", "tech": "satellite", "height_m": np.nan,
        "eirp_dbm": np.nan, "source": "satellite_terminals", "existing_site_id": None,
        "terminals": terminals}, geometry=pts.to_numpy(), crs=4326)
    pair_rows = np.searchsorted(rows, demand.village)
    mine = (pair_rows < len(rows)) & (rows[np.minimum(pair_rows, len(rows) - 1)]
                                      == demand.village) & (demand.weight > 0)
    p = np.flatnonzero(mine)
    cover = sparse.csr_matrix((np.ones(p.size), (pair_rows[p], p)),
                              shape=(len(rows), len(demand.cell)))
    return cands, cover


def _candidate_villages(cands: gpd.GeoDataFrame, classified: gpd.GeoDataFrame) -> np.ndarray:
    """Row of the village containing (or nearest to) each candidate."""
    crs = utm_crs(classified)
    vil = classified[[classified.geometry.name]].to_crs(crs).reset_index(drop=True)
    pts = gpd.GeoDataFrame(geometry=cands.geometry.to_crs(crs).to_numpy(), crs=crs)
    joined = gpd.sjoin_nearest(pts, vil, how="left")
    joined = joined[~joined.index.duplicated()]
    return joined["index_right"].to_numpy(dtype=int)


def _no_grid(village_row: np.ndarray, classified: gpd.GeoDataFrame,
             access: pd.DataFrame | None, profile: Profile) -> np.ndarray:
    """Candidates whose village lacks grid power (electricity share below the profile's)."""
    limit = profile.min_electricity_share if profile.min_electricity_share is not None else 0.5
    share = None
    if access is not None and "electricity_share" in access.columns:
        ids = classified["village_id"].astype(str).to_numpy()
        share = access["electricity_share"].reindex(ids).to_numpy(dtype=float)
    elif "electricity_share" in classified.columns:
        share = pd.to_numeric(classified["electricity_share"], errors="coerce").to_numpy(
            dtype=float)
    if share is None:
        return np.zeros(len(village_row), dtype=bool)
    with np.errstate(invalid="ignore"):
        return share[village_row] < limit


def _limits(cands: gpd.GeoDataFrame, plan_limits: PlanLimits, *, params: PlanParams
            ) -> tuple[Limits, np.ndarray, list[str]]:
    """Limits in candidate rows, and the province code of each candidate."""
    province_budgets, locked = plan_limits.province_budgets, plan_limits.locked
    names = cands["province"].fillna("").astype(str).to_numpy()
    provinces = sorted(set(names) - {""})
    code = {p: k for k, p in enumerate(provinces)}
    group = np.array([code.get(n, -1) for n in names], dtype=int)
    group_budgets: dict[int, float] = {}
    if province_budgets is not None:
        if not provinces:
            raise ParameterError("budgets per province need a 'province' column in the "
                                 "classified villages; add it or drop the province budgets")
        if isinstance(province_budgets, Mapping):
            unknown = sorted(set(province_budgets) - set(provinces))
            if unknown:
                raise ParameterError(
                    f"province budget(s) for {', '.join(unknown)}: no candidate lies in "
                    f"such a province; known provinces: {', '.join(provinces)}")
            group_budgets = {code[p]: float(b) for p, b in province_budgets.items()}
        else:
            group_budgets = {k: float(province_budgets) for k in range(len(provinces))}
    ids = cands["site_id"].astype(str).tolist()
    lock = [ids.index(s) for s in dict.fromkeys(str(s) for s in locked) if s in ids]
    missing = [str(s) for s in locked if str(s) not in ids]
    if missing:
        raise ParameterError(f"locked site(s) {', '.join(missing[:10])} are not candidates; "
                             "lock planned sites or user candidates by their site_id")
    if params.lock_planned:
        lock += [k for k in np.flatnonzero((cands["source"] == "planned").to_numpy())
                 if k not in lock]
    limits = Limits(budget=plan_limits.budget, max_sites=plan_limits.max_sites,
                    phases=tuple(plan_limits.phases),
                    group_budgets=group_budgets, locked=tuple(int(k) for k in lock),
                    carry_over=params.carry_over, min_gain=params.min_site_people)
    return limits, group, provinces


@dataclass(frozen=True)
class PlanLimits:
    """What a plan may spend, and in which order.

    Parameters
    ----------
    budget, max_sites
        Money (cost-model currency) and/or a number of sites.
    phases : sequence of float
        Budget per phase (year), in order; sites are ordered within and across phases.
        Unspent money carries over when ``PlanParams.carry_over``.
    phase_labels : sequence of str, optional
        A name per phase (e.g. years) for the ``year`` column.
    province_budgets : mapping or float, optional
        Money per province over the whole plan (a number: the same for each).
    locked : sequence of str
        ``site_id`` of candidates to build first whatever they gain (committed sites).
    sweep : sequence of float
        Budgets for the cost curve (``PlanResult.curve``).
    exact : bool, optional
        Solve the MILP (default: with at most ``PlanParams.milp_max_candidates``
        candidates); the plan is the better of greedy and MILP.
    """

    budget: float | None = None
    max_sites: int | None = None
    phases: Sequence[float] = ()
    phase_labels: Sequence[str] | None = None
    province_budgets: Mapping[str, float] | float | None = None
    locked: Sequence[str] = ()
    sweep: Sequence[float] = ()
    exact: bool | None = None

    def __post_init__(self) -> None:
        if self.budget is None and self.max_sites is None and not self.phases:
            raise ParameterError("a plan needs a budget, phases or max_sites (a number of "
                                 "sites)")
        if self.budget is not None and not self.budget > 0:
            raise ParameterError(f"budget must be positive, got {self.budget}")
        if self.phase_labels is not None and len(self.phase_labels) != len(self.phases):
            raise ParameterError(f"{len(self.phase_labels)} phase labels for "
                                 f"{len(self.phases)} phases")


@dataclass
class PlanInputs:
    """What a plan reads besides the classified villages.

    Parameters
    ----------
    towers : GeoDataFrame
        Existing (``active``) and ``planned`` transmitters; active ones are built already:
        people they cover are not counted again.
    grid : Grid
        The model grid (metric CRS).
    candidates, population, dem, fibre, roads, access, measurements
        Optional inputs (see the contract); ``access`` gives each village's
        ``electricity_share`` for the grid-or-solar choice; measurements replace the model
        around them, as in the classification, so people measured without service count as
        in need.
    landcover : Raster, optional
        Land cover (ESA WorldCover codes): foliage loss of the model (and the Hata
        environment when there is no population raster), :mod:`coverage.model.clutter`.
    village_weight : ndarray, optional
        Priority weight of each village's people (schools, border areas); 1 by default.
    existing : CoverageSurfaces, optional
        Coverage of the active sites on ``grid`` (modelled when absent).
    """

    towers: gpd.GeoDataFrame
    grid: Grid
    candidates: gpd.GeoDataFrame | None = None
    population: Raster | None = None
    dem: Raster | None = None
    landcover: Raster | None = None
    fibre: gpd.GeoDataFrame | None = None
    roads: object = None
    access: pd.DataFrame | None = None
    measurements: gpd.GeoDataFrame | None = None
    village_weight: np.ndarray | None = None
    existing: CoverageSurfaces | None = field(default=None, repr=False)


def plan_rollout(  # noqa: PLR0913 (every input and limit as a keyword, for scripts)
    classified: gpd.GeoDataFrame,
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    budget: float | None = None,
    max_sites: int | None = None,
    phases: Sequence[float] = (),
    phase_labels: Sequence[str] | None = None,
    province_budgets: Mapping[str, float] | float | None = None,
    locked: Sequence[str] = (),
    sweep: Sequence[float] = (),
    candidates: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    dem: Raster | None = None,
    landcover: Raster | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    roads=None,
    access: pd.DataFrame | None = None,
    measurements: gpd.GeoDataFrame | None = None,
    village_weight: np.ndarray | None = None,
    existing: CoverageSurfaces | None = None,
    profile: Profile | str = "vn-2025",
    model_params: ModelParams | None = None,
    params: PlanParams | None = None,
    exact: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> PlanResult:
    """Choose and order sites to connect the most people in ``unavailable`` villages.

    :func:`plan_sites` with the fields of :class:`PlanInputs` (``towers``, ``grid``,
    ``candidates``...) and :class:`PlanLimits` (``budget``, ``phases``, ``locked``...) as
    keywords; see them for each. ``profile``, ``model_params``, ``params``, ``progress``
    and ``engine`` as for :func:`plan_sites`.

    Returns
    -------
    PlanResult
    """
    limits = PlanLimits(budget=budget, max_sites=max_sites, phases=tuple(phases),
                        phase_labels=phase_labels, province_budgets=province_budgets,
                        locked=tuple(locked), sweep=tuple(sweep), exact=exact)
    inputs = PlanInputs(towers, grid, candidates=candidates, population=population, dem=dem,
                        landcover=landcover, fibre=fibre, roads=roads, access=access,
                        measurements=measurements, village_weight=village_weight,
                        existing=existing)
    return plan_sites(classified, inputs, limits, profile=profile, model_params=model_params,
                      params=params, progress=progress, engine=engine)


def plan_sites(
    classified: gpd.GeoDataFrame,
    inputs: PlanInputs,
    limits: PlanLimits,
    *,
    profile: Profile | str = "vn-2025",
    model_params: ModelParams | None = None,
    params: PlanParams | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> PlanResult:
    """Choose and order sites to connect the most people in ``unavailable`` villages.

    Parameters
    ----------
    classified : GeoDataFrame
        Output of :func:`coverage.classify.classify_villages` (with ``province`` for
        province budgets).
    inputs : PlanInputs
        Towers, grid and the optional inputs.
    limits : PlanLimits
        Budget, sites, phases, province budgets, locked sites, the sweep's budgets.
    profile, model_params, params
        Rules profile, coverage model and plan parameters. The candidates are predicted
        with the model the existing sites were (:func:`plan_model`): ``inputs.existing``'s
        own parameters when it has them (the structure a run's tests chose,
        :func:`coverage.model.structure.choose_structure`), else ``model_params``.
    progress : callable, optional
        ``progress(done, total)`` while modelling candidates.
    engine : Engine, optional
        Where the parallel stages run (:mod:`coverage.engine`): the existing sites' model
        by tiles (when ``inputs.existing`` is not given) and the candidates' coverage by
        batches. In this process by default; the plan does not depend on it.

    Returns
    -------
    PlanResult
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    params = params or PlanParams()
    model_params = plan_model(inputs.existing, model_params)
    classified = classified.reset_index(drop=True)
    grid = inputs.grid
    clutter = clutter_map(grid, model_params, population=inputs.population,
                          landcover=inputs.landcover)
    existing = _existing(inputs, model_params, profile, clutter=clutter, engine=engine)
    demand = demand_pairs(classified, existing, population=inputs.population, profile=profile,
                          village_weight=inputs.village_weight)
    cands, cover, cost = _candidates(classified, inputs, demand, profile=profile,
                                     model_params=model_params, params=params,
                                     clutter=clutter, progress=progress, engine=engine)
    solver_limits, group, provinces = _limits(cands, limits, params=params)
    problem = CoverProblem(cover, demand.weight, cost["cost"].to_numpy(dtype=float),
                           demand.village, group)
    people = np.where(demand.weight > 0, demand.people, 0.0)
    selection, summary = _solve(problem, solver_limits, params=params, exact=limits.exact)
    labels = list(limits.phase_labels) if limits.phase_labels else None
    sites = plan_table(selection.order, selection.phase, cands, cost, problem, people,
                       classified, profile, phase_labels=labels)
    options = village_options(problem, people, cands, classified, profile)
    villages = priority_villages(classified, sites, options=options)
    summary.update({
        "candidates": len(cands),
        "candidates_by_source": cands["source"].value_counts().to_dict(),
        "sites": len(sites), "people_connected": round(float(sites["pop_gain"].sum()), 1),
        "people_in_need": round(float(people.sum()), 1),
        "villages_lifted": int(villages["site_rank"].notna().sum()),
        "cost": float(sites["cost"].sum()) if len(sites) else 0.0,
        "currency": params.costs.currency, "budget": limits.budget,
        "unspent": _unspent(sites, solver_limits),
        "max_sites": limits.max_sites, "phases": list(limits.phases), "provinces": provinces,
    })
    bound = summary.get("upper_bound_people")
    if bound and bound > 0:
        summary["gap_to_bound"] = round(max(1 - selection.people / bound, 0.0), 4)
    alone = problem.cover @ people
    cand_out = cands.join(cost).assign(pop_alone=np.round(alone, 1))
    curve = (cost_curve(problem, limits.sweep, limits=solver_limits, params=params)
             if len(limits.sweep) else None)
    return PlanResult(sites, villages, summary, cand_out, curve, problem, solver_limits)


def plan_model(existing: CoverageSurfaces | None, model_params: ModelParams | None = None
               ) -> ModelParams:
    """The model a plan predicts its candidates with: the existing sites' own.

    A candidate joins the existing network and is judged by the same physics: the
    parameters ``existing`` was predicted with (``existing.params``: with a run's tests,
    the structure they chose), else ``model_params``, else the defaults. Where both are
    given and differ, the existing sites' win (logged).
    """
    own = existing.params if existing is not None else None
    if own is None:
        return model_params or ModelParams()
    if model_params is not None and model_params != own:
        changed = {f.name: getattr(own, f.name) for f in dataclasses.fields(own)
                   if getattr(own, f.name) != getattr(model_params, f.name)}
        log.info("candidates predicted with the existing sites' model (%s)", changed)
    return own


def _existing(inputs: PlanInputs, model_params: ModelParams, profile: Profile, *,
              clutter, engine: Engine | None) -> CoverageSurfaces:
    """The active sites' coverage (modelled when not given), fused with the tests."""
    existing = inputs.existing
    if existing is None:
        towers = inputs.towers
        active = towers[towers["status"] == "active"]
        existing = predict_coverage_tiled(active, inputs.grid, dem=inputs.dem,
                                          params=model_params, engine=engine, clutter=clutter)
    if inputs.measurements is not None and len(inputs.measurements):
        existing = fuse_measurements(existing, inputs.measurements,
                                     radius_m=profile.measurement_radius_m, engine=engine)
    return existing


def _candidates(classified: gpd.GeoDataFrame, inputs: PlanInputs, demand: Demand, *,
                profile: Profile, model_params: ModelParams, params: PlanParams, clutter,
                progress: Callable[[int, int], None] | None, engine: Engine | None
                ) -> tuple[gpd.GeoDataFrame, sparse.csr_matrix, pd.DataFrame]:
    """Every candidate (satellite terminals included), the demand pairs each covers, and costs.

    The candidates' costs (:func:`coverage.plan.costs.site_costs`) do not depend on their
    coverage: they are computed in this process while the engine's workers model it.
    """
    modelled = generate_candidates(classified, inputs.towers, candidates=inputs.candidates,
                                   dem=inputs.dem, unserved=demand.unserved_points(),
                                   params=params, area=inputs.grid, engine=engine)
    sat, sat_cover = (_satellite_rows(classified, demand, params)
                      if params.satellite_terminals else (None, None))
    cands = (pd.concat([modelled, sat], ignore_index=True) if sat is not None and len(sat)
             else modelled)
    cands = gpd.GeoDataFrame(cands, geometry="geometry", crs=4326)
    vrow = _candidate_villages(cands, classified) if len(cands) else np.array([], dtype=int)
    if "province" in classified.columns and len(cands):
        cands["province"] = classified["province"].to_numpy()[vrow]
    else:
        cands["province"] = None
    cost: list[pd.DataFrame] = []

    def price() -> None:
        cost.append(site_costs(
            cands, towers=inputs.towers, fibre=inputs.fibre, roads=inputs.roads,
            dem=inputs.dem, no_grid=_no_grid(vrow, classified, inputs.access, profile),
            params=params))

    cells = candidate_cells(modelled, inputs.grid, dem=inputs.dem, profile=profile,
                            params=model_params, need=demand.need_cells(), progress=progress,
                            clutter=clutter, engine=engine, meanwhile=price)
    cover = demand.cover(cells)
    if sat is not None and len(sat):
        cover = sparse.vstack([cover, sat_cover]).tocsr()
    return cands, cover, cost[0]


def _solve(problem: CoverProblem, limits: Limits, *, params: PlanParams, exact: bool | None
           ) -> tuple[Selection, dict]:
    """Heuristic, then the MILP where asked or small enough, else the relaxation; bounds.

    Every bound is valid for every plan within the limits; the smallest is reported with the
    gap of the plan to it. Every stage stops at a deterministic budget (work, nodes,
    iterations: ``params``); ``summary["time_limited"]`` names those the wall-clock safety
    net stopped instead (their results may differ from run to run).
    """
    heuristic = _heuristic(problem, limits, params)
    need = float(problem.weight.sum()) > 0
    exact = problem.n_candidates <= params.milp_max_candidates if exact is None else exact
    bounds = {}
    summary: dict = {"greedy_people": round(heuristic.people, 1),
                     "greedy_method": heuristic.method, "greedy_status": heuristic.status}
    best = heuristic
    if exact and need:
        try:
            milp, info = milp_select(problem, limits, time_limit_s=params.time_limit_s,
                                     mip_rel_gap=params.mip_rel_gap,
                                     start=heuristic if params.milp_warm_start else None,
                                     max_nodes=params.milp_max_nodes)
            summary.update({"milp_people": round(milp.people, 1),
                            "milp_status": info["status"],
                            "milp_gap": round(info["mip_gap"], 5),
                            "milp_nodes": info["nodes"],
                            "milp_seconds": round(info["seconds"], 2)})
            if np.isfinite(info["bound"]):
                bounds["milp"] = info["bound"]
            milp = _in_order(problem, milp, limits)
            if ahead(milp.people, heuristic.people, limits.min_gain, tol=1e-6):
                best = milp
        except SolverError as exc:
            log.warning("MILP not used: %s", exc)
            summary["milp_status"] = "failed"
    proven = summary.get("milp_status") == "optimal"
    if need and not proven:
        best = _relaxation(problem, limits, best, params, bounds, summary)
    bounds["online"] = float(online_bound(problem, limits, best.order))
    summary["online_bound_people"] = round(bounds["online"], 1)
    kind = min(bounds, key=bounds.get)
    # a bound cannot be below a plan within the limits (solver tolerances aside)
    summary["upper_bound_people"] = round(max(bounds[kind], best.people), 1)
    summary["upper_bound_method"] = kind
    summary["plan_method"] = best.method
    summary["plan_status"] = best.status
    # every path: no site adding fewer than min_gain people in the final build order
    best = drop_small_gains(problem, best, limits.min_gain, locked=limits.locked)
    summary["sites_below_min_gain"] = best.dropped
    summary["min_site_people"] = limits.min_gain
    if not best.order:
        summary["empty_reason"] = _why_empty(problem, limits)
    summary["time_limited"] = [k.removesuffix("_status") for k, v in summary.items()
                               if k.endswith("_status") and v == "time_limit"]
    return best, summary


def _heuristic(problem: CoverProblem, limits: Limits, params: PlanParams, *,
               prefer: Sequence[int] = ()) -> Selection:
    """:func:`greedy_select` with the plan parameters' search budgets."""
    return greedy_select(problem, limits, search=params.local_search,
                         effort=params.search_effort, min_work=params.search_min_work,
                         kernel_nodes=params.kernel_max_nodes,
                         time_limit_s=params.time_limit_s, prefer=prefer)


def _relaxation(problem: CoverProblem, limits: Limits, best: Selection, params: PlanParams,
                bounds: dict, summary: dict) -> Selection:
    """The LP (interior point) and its plan; the LP and Lagrangian bounds (in place).

    At any scale: the LP's optimum bounds every plan, its duals start the Lagrangian bound
    (valid even when the LP stops early), and its plan (:func:`relaxation_select`) is one
    more start of the heuristic. Returns the better plan.
    """
    relaxed, info = _lp_plan(problem, limits, params, summary)
    # from the LP's duals when optimal the steps cannot improve the bound: one evaluation
    steps = 1 if info["status"] == "optimal" and info["multipliers"] is not None else 300
    value, lag = lagrangian_bound(
        problem, limits, best.order, lower=best.people, iterations=steps,
        time_limit_s=params.time_limit_s, multipliers=info["multipliers"])
    # at the optimal LP's duals the bound is the LP's (evaluated exactly)
    bounds["lp" if steps == 1 else "lagrangian"] = value
    summary["lagrangian_bound_people"] = round(value, 1)
    summary["lagrangian_status"] = lag["status"]
    if relaxed is not None:
        summary["relaxation_people"] = round(relaxed.people, 1)
    prefer = relaxed.order if relaxed is not None else lag["preferred"]
    if params.local_search and prefer:
        guided = _heuristic(problem, limits, params, prefer=prefer)
        if guided.status == "time_limit":
            summary["guided_status"] = guided.status
        if ahead(guided.people, best.people, limits.min_gain):
            best = guided
    if relaxed is not None:
        relaxed = _in_order(problem, relaxed, limits)
        if ahead(relaxed.people, best.people, limits.min_gain, tol=1e-6):
            best = relaxed
    return best


def _lp_plan(problem: CoverProblem, limits: Limits, params: PlanParams, summary: dict
             ) -> tuple[Selection | None, dict]:
    """The LP relaxation's plan and ``info`` (:func:`relaxation_select`), when it is asked for.

    Its status and optimum go into ``summary``; without the LP, or when HiGHS fails (logged),
    the plan is None and ``info`` has no objective, duals nor values (status ``not run``).
    """
    relaxed, info = None, {"objective": np.inf, "multipliers": None, "x": None,
                           "status": "not run"}
    try:
        if params.lp_relaxation:
            relaxed, info = relaxation_select(problem, limits,
                                              time_limit_s=params.time_limit_s,
                                              mip_rel_gap=params.mip_rel_gap,
                                              max_nodes=params.milp_max_nodes,
                                              max_iterations=params.lp_max_iterations)
            summary["lp_status"] = info["status"]
            if "milp_status" in info:
                summary["relaxation_status"] = info["milp_status"]
    except SolverError as exc:
        log.warning("no LP bound: %s", exc)
    if np.isfinite(info["objective"]):
        # reported; the certificate is the Lagrangian at the LP's duals, evaluated exactly
        # (the interior point's objective is within its tolerance of the LP optimum)
        summary["lp_bound_people"] = round(info["objective"], 1)
    return relaxed, info


def _in_order(problem: CoverProblem, selection: Selection, limits: Limits) -> Selection:
    """A solver's plan in build order, without the sites adding fewer than ``min_gain``.

    Plans are compared after this: a plan ahead only by sites that add almost nobody (a
    MILP's ties) is not preferred.
    """
    ordered = order_by_ratio(problem, selection, by_cost=limits.by_cost, locked=limits.locked)
    return drop_small_gains(problem, ordered, limits.min_gain, locked=limits.locked)


def _unspent(sites: gpd.GeoDataFrame, limits: Limits) -> float | None:
    """Money of the whole budget the plan leaves unspent (``None`` without a money limit)."""
    money = limits.total_budget
    if not np.isfinite(money):
        return None
    spent = float(sites["cost"].sum()) if len(sites) else 0.0
    return max(money - spent, 0.0)


def _why_empty(problem: CoverProblem, limits: Limits) -> str:
    """A sentence saying why no site is worth building."""
    weight = np.asarray(problem.weight, dtype=float)
    if not weight.sum() > 0:
        return "nobody is in need: every village's people are served already"
    gains = np.asarray(problem.cover @ weight).ravel()
    useful = np.flatnonzero(gains > 0)
    if not len(useful):
        return ("no candidate site reaches anyone in need; add candidates (--candidates) "
                "nearer the unavailable villages")
    cheapest = float(np.min(np.asarray(problem.cost)[useful]))
    money = limits.total_budget
    if cheapest > money:
        return (f"the budget ({money:,.0f}) is below the cheapest site that reaches people "
                f"in need ({cheapest:,.0f}); raise the budget")
    return "no site fits within the province budgets and phases; raise them"


def cost_curve(problem: CoverProblem, budgets: Sequence[float], *,
               limits: Limits | None = None, params: PlanParams | None = None
               ) -> pd.DataFrame:
    """People connected against money: the heuristic's plan and its bound at each budget.

    Province budgets and locked sites of ``limits`` apply at every point; phases do not
    (each point is a single budget). The heuristic runs with ``params``' search budgets
    (the defaults of :class:`~coverage.params.PlanParams` when not given).

    Returns
    -------
    DataFrame
        ``budget``, ``sites``, ``cost``, ``people``, ``upper_bound`` (online bound),
        ``people_per_billion``.
    """
    rows = []
    params = params or PlanParams()
    base = limits or Limits(budget=1.0)
    for b in sorted(float(x) for x in budgets):
        lim = Limits(budget=b, max_sites=base.max_sites, group_budgets=base.group_budgets,
                     locked=base.locked, carry_over=base.carry_over, min_gain=base.min_gain)
        try:
            sel = _heuristic(problem, lim, params)
        except ParameterError:
            continue  # the locked sites alone cost more than this budget
        spent = float(np.asarray(problem.cost)[sel.order].sum())
        rows.append({"budget": b, "sites": len(sel.order), "cost": spent,
                     "people": round(sel.people, 1),
                     "upper_bound": round(online_bound(problem, lim, sel.order), 1),
                     "people_per_billion": round(sel.people / spent * 1e9, 1) if spent else 0.0})
    return pd.DataFrame(rows, columns=["budget", "sites", "cost", "people", "upper_bound",
                                       "people_per_billion"])
