r"""A plan that mixes towers, small cells and satellite terminals under one budget.

:func:`coverage.plan.plan_rollout` chooses 4G macro sites and 4G upgrades. This module adds
the village-level alternatives of a scenario's :class:`~.options.TechOptions` and re-solves
the budgeted maximal covering over the union, with the plan module's own kernels
(:func:`coverage.plan.build_problem`, :func:`coverage.plan.greedy_cover`,
:func:`coverage.plan.milp_cover`), so people are counted exactly as in the tower plan:

- towers: the sites of the tower plan under the same budget (a mix only shifts money away
  from towers, so the towers worth building are among them);
- a small cell at the centre of each ``unavailable`` village (its coverage from the same
  terrain model, with the :class:`~.options.SmallCell` link budget);
- satellite terminals for each ``unavailable`` village: one candidate covering every
  uncovered (village, cell) pair of the village, costing the terminals its uncovered
  residents need; offered only when the busy-hour service meets the profile's speed rules.

The greedy on people per unit cost orders the mix; the exact MILP (HiGHS) replaces its choice
when better, as in the tower plan, and the LP relaxation bounds the gap.

This is the minimal piece the scenario studies need; when :mod:`coverage.plan` offers
technology choice itself, this module should delegate to it.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from ..model import CoverageSurfaces, predict_coverage
from ..params import ModelParams, Profile
from ..plan import (
    CoverProblem,
    PlanResult,
    build_problem,
    greedy_cover,
    milp_cover,
    site_costs,
)
from ..plan import priority_villages as _priority
from .options import ScenarioParams

__all__ = ["mixed_plan"]

log = logging.getLogger(__name__)


def _transmitter(site_id: str, point, tech: str, height_m: float, eirp_dbm: float = np.nan,
                 freq_mhz: float = np.nan) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "site_id": [site_id], "operator": ["plan"], "tech": [tech], "height_m": [height_m],
        "azimuth_deg": [np.nan], "beamwidth_deg": [65.0], "eirp_dbm": [eirp_dbm],
        "freq_mhz": [freq_mhz], "status": ["active"]}, geometry=[point], crs=4326)


def _tower_options(tower_plan: PlanResult, existing: CoverageSurfaces, dem,
                   model: ModelParams) -> tuple[pd.DataFrame, list[np.ndarray]]:
    sites = tower_plan.sites
    rows, surfaces = [], []
    for r in sites.itertuples():
        tx = _transmitter(r.site_id, r.geometry, r.tech, float(r.height_m))
        surfaces.append(predict_coverage(tx, existing.grid, dem=dem, params=model)
                        .best(techs=(r.tech,)))
        rows.append({"site_id": r.site_id, "kind": r.kind, "tech": r.tech,
                     "cost": float(r.cost), "geometry": r.geometry, "village_row": -1,
                     "terminals": 0})
    return pd.DataFrame(rows), surfaces


def _small_cell_options(classified: gpd.GeoDataFrame, towers: gpd.GeoDataFrame,
                        existing: CoverageSurfaces, inputs, params: ScenarioParams
                        ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    sc = params.tech.small_cell
    costs = params.plan.costs
    need = np.flatnonzero((classified["class"] == "unavailable").to_numpy())
    if not len(need):
        return pd.DataFrame(), []
    sub = classified.iloc[need]
    metric = sub.to_crs(sub.estimate_utm_crs())
    points = metric.geometry.representative_point().to_crs(4326).to_numpy()
    cands = gpd.GeoDataFrame({"site_id": [f"sc-{v}" for v in sub["village_id"]],
                              "kind": "new_site"}, geometry=points, crs=4326)
    parts = site_costs(cands, towers=towers, fibre=inputs.fibre, roads=None, params=params.plan)
    cost = (costs.small_cell + parts["cost_backhaul"].to_numpy()
            + sc.power_share * costs.solar_power + sc.opex_share * costs.opex_present_value)
    rows, surfaces = [], []
    for i, (row, point) in enumerate(zip(need, points, strict=True)):
        tx = _transmitter(cands["site_id"].iloc[i], point, "4G", sc.height_m, sc.eirp_dbm,
                          sc.freq_mhz)
        surfaces.append(predict_coverage(tx, existing.grid, dem=inputs.dem, params=params.model)
                        .best(techs=("4G",)))
        rows.append({"site_id": cands["site_id"].iloc[i], "kind": "small_cell", "tech": "4G",
                     "cost": float(cost[i]), "geometry": point, "village_row": int(row),
                     "terminals": 0})
    return pd.DataFrame(rows), surfaces


def _satellite_rows(problem: CoverProblem, classified: gpd.GeoDataFrame,
                    params: ScenarioParams) -> tuple[pd.DataFrame, sparse.csr_matrix]:
    term = params.tech.terminal
    unit = term.cost(params.plan.costs)
    people = np.bincount(problem.pair_village, weights=problem.weight,
                         minlength=len(classified))
    need = np.flatnonzero(people > 0)
    if not len(need):
        return pd.DataFrame(), sparse.csr_matrix((0, len(problem.weight)))
    metric = classified.iloc[need].to_crs(classified.iloc[need].estimate_utm_crs())
    points = metric.geometry.representative_point().to_crs(4326).to_numpy()
    ids = classified["village_id"].astype(str).to_numpy()
    rows, r_idx, c_idx = [], [], []
    for k, (v, point) in enumerate(zip(need, points, strict=True)):
        n = term.terminals(people[v])
        rows.append({"site_id": f"sat-{ids[v]}", "kind": "satellite", "tech": "LEO",
                     "cost": n * unit, "geometry": point, "village_row": int(v),
                     "terminals": n})
        pairs = np.flatnonzero((problem.pair_village == v) & (problem.weight > 0))
        r_idx.append(np.full(len(pairs), k))
        c_idx.append(pairs)
    r = np.concatenate(r_idx)
    c = np.concatenate(c_idx)
    cover = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(need), len(problem.weight)))
    return pd.DataFrame(rows), cover


def mixed_plan(classified: gpd.GeoDataFrame, existing: CoverageSurfaces, inputs,
               tower_plan: PlanResult | None, *, params: ScenarioParams,
               towers: gpd.GeoDataFrame) -> PlanResult:
    """Choose towers, small cells and satellite villages under the scenario's budget.

    Parameters
    ----------
    classified : GeoDataFrame
        Classified villages.
    existing : CoverageSurfaces
        Today's coverage (the grid of the plan).
    inputs : coverage.pipeline.Inputs
        The run's inputs (population, DEM, fibre).
    tower_plan : PlanResult or None
        The tower plan under the same limits (None when towers are not allowed).
    params : ScenarioParams
        Budget, limits, technology options, profile and costs.
    towers : GeoDataFrame
        Existing transmitters (for microwave backhaul).

    Returns
    -------
    PlanResult
        Rows in build order with the contract's columns; ``kind`` is ``new_site``,
        ``upgrade``, ``small_cell`` or ``satellite`` and ``tech`` is ``LEO`` for satellite
        terminals, whose count is in ``terminals``.
    """
    profile: Profile = params.profile
    tech = params.tech
    frames, surfaces = [], []
    if tower_plan is not None and len(tower_plan.sites):
        f, s = _tower_options(tower_plan, existing, inputs.dem, params.model)
        frames.append(f)
        surfaces += s
    if tech.small_cells:
        f, s = _small_cell_options(classified, towers, existing, inputs, params)
        frames.append(f)
        surfaces += s
    frames = [f for f in frames if len(f)]
    options = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["site_id", "kind", "tech", "cost", "geometry", "village_row", "terminals"])
    problem = build_problem(classified, existing, surfaces, options["cost"].to_numpy(float),
                            population=inputs.population, profile=profile)
    if tech.satellite and tech.terminal.meets(profile):
        sat, cover = _satellite_rows(problem, classified, params)
        if len(sat):
            options = pd.concat([options, sat], ignore_index=True)
            problem = CoverProblem(sparse.vstack([problem.cover, cover]).tocsr(),
                                   problem.weight, options["cost"].to_numpy(float),
                                   problem.pair_village)
    elif tech.satellite:
        down, up = tech.terminal.per_user_mbps()
        log.warning("satellite terminals give %.1f/%.1f Mbps per resident at the busy hour, "
                    "below the %s profile's speed rules: not offered", down, up, profile.name)
    summary: dict = {"candidates": len(options)}
    order: list[int] = []
    if len(options) and problem.weight.sum() > 0:
        order = greedy_cover(problem, budget=params.budget, max_sites=params.max_sites)
        greedy_people = _covered(problem, order)
        _, bound = milp_cover(problem, budget=params.budget, max_sites=params.max_sites,
                              relax=True)
        summary.update(greedy_people=round(greedy_people, 1), lp_bound_people=round(bound, 1))
        # As coverage.plan: the exact MILP when it is small, here only when the LP bound
        # leaves room (> 0.5%) for a better choice than the greedy's.
        if len(options) <= 2000 and greedy_people < 0.995 * bound:
            chosen, milp_people = milp_cover(problem, budget=params.budget,
                                             max_sites=params.max_sites)
            summary["milp_people"] = round(milp_people, 1)
            if milp_people > greedy_people + 1e-6:
                sub = CoverProblem(problem.cover[chosen], problem.weight, problem.cost[chosen],
                                   problem.pair_village)
                order = [chosen[i] for i in greedy_cover(sub, max_sites=len(chosen))]
                order += [i for i in chosen if i not in order]
    sites = _table(order, options, problem, classified, profile)
    summary.update({
        "sites": len(sites), "people_connected": round(float(sites["pop_gain"].sum()), 1),
        "cost": float(sites["cost"].sum()), "currency": params.currency,
        "budget": params.budget, "max_sites": params.max_sites,
        "by_kind": sites["kind"].value_counts().to_dict() if len(sites) else {},
    })
    if summary.get("lp_bound_people"):
        summary["gap_to_bound"] = round(
            1 - summary["people_connected"] / summary["lp_bound_people"], 4)
    cand = gpd.GeoDataFrame(options.drop(columns="geometry"),
                            geometry=list(options["geometry"]), crs=4326) if len(options) \
        else gpd.GeoDataFrame(options, geometry=[], crs=4326)
    return PlanResult(sites, _priority(classified, sites), summary, cand)


def _covered(problem: CoverProblem, chosen: list[int]) -> float:
    if not chosen:
        return 0.0
    hit = np.asarray(problem.cover[chosen].sum(axis=0)).ravel() > 0
    return float(problem.weight[hit].sum())


def _table(order: list[int], options: pd.DataFrame, problem: CoverProblem,
           classified: gpd.GeoDataFrame, profile: Profile) -> gpd.GeoDataFrame:
    """The contract's plan rows in build order (as :mod:`coverage.plan` writes them)."""
    cols = ["rank", "site_id", "lon", "lat", "kind", "tech", "cost", "pop_gain",
            "cum_pop_gain", "cum_cost", "villages", "terminals"]
    if not order:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)
    weight = problem.weight.copy()
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    covered = pop * classified["pop_covered_share"].to_numpy(dtype=float)
    lifted_before = np.zeros(len(classified), dtype=bool)
    unavailable = (classified["class"] == "unavailable").to_numpy()
    ids = classified["village_id"].astype(str).to_numpy()
    rows = []
    for rank, i in enumerate(order, start=1):
        pairs = problem.cover.indices[problem.cover.indptr[i]:problem.cover.indptr[i + 1]]
        gain_pairs = pairs[weight[pairs] > 0]
        gain = float(weight[gain_pairs].sum())
        covered += np.bincount(problem.pair_village[gain_pairs], weights=weight[gain_pairs],
                               minlength=len(classified))
        weight[gain_pairs] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(pop > 0, covered / pop, 0.0)
        lifted = unavailable & ~lifted_before & (share >= profile.min_covered_share - 1e-9)
        lifted_before |= lifted
        o = options.iloc[i]
        rows.append({"rank": rank, "site_id": o.site_id, "lon": round(o.geometry.x, 6),
                     "lat": round(o.geometry.y, 6), "kind": o.kind, "tech": o.tech,
                     "cost": round(float(o.cost)), "pop_gain": round(gain, 1),
                     "villages": ";".join(ids[lifted]), "terminals": int(o.terminals),
                     "geometry": o.geometry})
    table = gpd.GeoDataFrame(rows, crs=4326)
    table["cum_pop_gain"] = table["pop_gain"].cumsum().round(1)
    table["cum_cost"] = table["cost"].cumsum()
    return table[[*cols, "geometry"]]
