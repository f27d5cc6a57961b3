r"""Rollout planning: candidate sites, their costs, and budgeted maximal covering.

The objective is the number of people newly given outdoor mobile broadband in villages that
are ``unavailable``, per the same coverage model and thresholds as the classification:

.. math::

    \max \sum_{p} w_p y_p \quad \text{s.t.} \quad y_p \le \sum_{c \ni p} x_c, \quad
    \sum_c k_c x_c \le B, \quad x_c \in \{0, 1\}, \ 0 \le y_p \le 1

where :math:`p` runs over (village, grid cell) pairs not yet covered, :math:`w_p` their
people, :math:`x_c` the choice of candidate :math:`c` of cost :math:`k_c`, and :math:`B` the
budget (Church and ReVelle 1974, maximal covering; budgeted form of Khuller, Moss and Naor
1999). Two solvers share the arrays: a lazy greedy on people per dong that also tries the
best single site (a :math:`(1 - 1/e)/2` guarantee), which gives the build order, and the exact
MILP solved by HiGHS (through :func:`scipy.optimize.milp`), whose LP relaxation bounds the
greedy's gap.
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from exactextract import exact_extract
from scipy import optimize, sparse

from .classify import _source
from .errors import ParameterError, SolverError
from .io import Raster
from .model import CoverageSurfaces, Grid, predict_coverage, to_grid
from .params import BROADBAND_TECHS, ModelParams, PlanParams, Profile, get_profile

__all__ = [
    "CoverProblem",
    "PlanResult",
    "build_problem",
    "generate_candidates",
    "greedy_cover",
    "milp_cover",
    "plan_rollout",
    "site_costs",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- candidates
def generate_candidates(
    classified: gpd.GeoDataFrame,
    towers: gpd.GeoDataFrame,
    *,
    candidates: gpd.GeoDataFrame | None = None,
    dem: Raster | None = None,
    params: PlanParams | None = None,
) -> gpd.GeoDataFrame:
    """Candidate sites: 4G upgrades of 2G/3G sites, planned sites, user points, generated ones.

    Generated candidates are the centre of each ``unavailable`` village and, with a DEM, the
    highest ground within 3 km of it (a hill top that sees the valley). Returns points in
    EPSG:4326 with ``site_id``, ``kind`` (``new_site``/``upgrade``), ``tech``, ``height_m``,
    ``source`` and ``existing_site_id``.
    """
    params = params or PlanParams()
    rows: list[dict] = []
    t = towers.to_crs(4326)
    active = t[t["status"] == "active"]
    by_site = active.groupby("site_id")
    for site_id, g in by_site:
        techs = set(g["tech"])
        if not techs & {"4G", "5G"}:
            rows.append({"site_id": f"upg-{site_id}", "kind": "upgrade", "tech": params.tech,
                         "height_m": float(g["height_m"].max()), "source": "upgrade",
                         "existing_site_id": str(site_id), "geometry": g.geometry.iloc[0]})
    for site_id, g in t[t["status"] == "planned"].groupby("site_id"):
        rows.append({"site_id": str(site_id), "kind": "new_site", "tech": params.tech,
                     "height_m": float(g["height_m"].max()), "source": "planned",
                     "existing_site_id": None, "geometry": g.geometry.iloc[0]})
    if candidates is not None:
        for r in candidates.to_crs(4326).itertuples():
            h = getattr(r, "height_m", np.nan)
            rows.append({"site_id": str(r.site_id), "kind": "new_site", "tech": params.tech,
                         "height_m": float(h) if pd.notna(h) else params.new_site_height_m,
                         "source": "user", "existing_site_id": None, "geometry": r.geometry})
    unavailable = classified[classified["class"] == "unavailable"]
    if len(unavailable):
        metric = unavailable.to_crs(unavailable.estimate_utm_crs())
        if "population" in metric.columns:
            metric = metric.sort_values("population", ascending=False, na_position="last")
        metric = metric.head(params.max_candidates // 2)
        centres = metric.geometry.representative_point()
        for vid, pt in zip(metric["village_id"], centres.to_crs(4326), strict=True):
            rows.append({"site_id": f"vc-{vid}", "kind": "new_site", "tech": params.tech,
                         "height_m": params.new_site_height_m, "source": "village_centre",
                         "existing_site_id": None, "geometry": pt})
        if dem is not None:
            for vid, pt in zip(metric["village_id"], _high_points(centres, dem), strict=True):
                if pt is not None:
                    rows.append({"site_id": f"hp-{vid}", "kind": "new_site",
                                 "tech": params.tech, "height_m": params.new_site_height_m,
                                 "source": "high_point", "existing_site_id": None,
                                 "geometry": pt})
    if not rows:
        return gpd.GeoDataFrame(columns=["site_id", "kind", "tech", "height_m", "source",
                                         "existing_site_id", "geometry"], crs=4326)
    out = gpd.GeoDataFrame(rows, crs=4326).drop_duplicates("site_id").reset_index(drop=True)
    log.info("%d candidates: %s", len(out), out["source"].value_counts().to_dict())
    return out


def _high_points(centres: gpd.GeoSeries, dem: Raster, radius_m: float = 3000.0
                 ) -> list[shapely.Point | None]:
    """Highest DEM cell within ``radius_m`` of each point, in EPSG:4326."""
    grid = Grid.covering(tuple(centres.total_bounds), 100.0, centres.crs, pad_m=radius_m)
    ground = to_grid(dem, grid)
    x, y = grid.centres()
    out: list[shapely.Point | None] = []
    for pt in centres:
        near = np.hypot(x - pt.x, y - pt.y) <= radius_m
        values = np.where(near & np.isfinite(ground), ground, -np.inf)
        if not np.isfinite(values.max()):
            out.append(None)
            continue
        r, c = np.unravel_index(np.argmax(values), values.shape)
        out.append(shapely.Point(x[r, c], y[r, c]))
    series = gpd.GeoSeries(out, crs=centres.crs).to_crs(4326)
    return [None if g is None or g.is_empty else g for g in series]


# --------------------------------------------------------------------------- costs
def site_costs(
    candidates: gpd.GeoDataFrame,
    *,
    towers: gpd.GeoDataFrame | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    roads=None,
    params: PlanParams | None = None,
) -> pd.DataFrame:
    """Cost of each candidate, broken down, in the cost model's currency.

    - ``cost_site``: a new tower, or a 4G upgrade of an existing site;
    - ``cost_backhaul``: fibre along the straight-line distance to the nearest fibre (times
      1.3 for the route), or a microwave hop to an existing site within range, or satellite,
      whichever is cheapest (upgrades reuse their site's backhaul);
    - ``cost_power``: grid extension from the nearest road (lines follow roads) up to
      ``grid_max_km``, else solar (upgrades reuse their power);
    - ``cost_road``: a track from the nearest road node of the road graph;
    - ``cost_opex``: operating cost over the horizon, discounted.
    """
    params = params or PlanParams()
    costs = params.costs
    crs = candidates.estimate_utm_crs() if len(candidates) else "EPSG:3857"
    pts = candidates.geometry.to_crs(crs)
    n = len(candidates)
    upgrade = (candidates["kind"] == "upgrade").to_numpy()
    out = pd.DataFrame(index=candidates.index)
    out["cost_site"] = np.where(upgrade, costs.upgrade_4g, costs.new_tower)

    fibre_km = np.full(n, np.inf)
    if fibre is not None and len(fibre):
        f = fibre.to_crs(crs).geometry.union_all()
        fibre_km = shapely.distance(pts.to_numpy(), f) / 1000.0 * 1.3
    mw_km = np.full(n, np.inf)
    if towers is not None and len(towers):
        t = towers[towers["status"] == "active"].geometry.to_crs(crs)
        tree = shapely.STRtree(t.to_numpy())
        _, dist = tree.query_nearest(pts.to_numpy(), return_distance=True, all_matches=False)
        mw_km = dist / 1000.0
    options = np.vstack([
        fibre_km * costs.fibre_per_km,
        np.where(mw_km <= costs.microwave_max_km, costs.microwave_hop, np.inf),
        np.full(n, costs.satellite_backhaul),
    ])
    choice = np.argmin(options, axis=0)
    out["backhaul"] = np.array(["fibre", "microwave", "satellite"])[choice]
    out["cost_backhaul"] = np.where(upgrade, 0.0, options.min(axis=0))
    out.loc[upgrade, "backhaul"] = "existing"

    road_km = np.zeros(n)
    if roads is not None:
        road_km = _road_distance_km(pts, roads, crs)
    out["road_km"] = np.round(road_km, 3)
    out["cost_road"] = np.where(upgrade, 0.0, road_km * costs.road_per_km)
    grid_cost = road_km * costs.grid_power_per_km
    use_grid = (road_km <= costs.grid_max_km) & (grid_cost <= costs.solar_power)
    out["power"] = np.where(upgrade, "existing", np.where(use_grid, "grid", "solar"))
    out["cost_power"] = np.where(upgrade, 0.0, np.where(use_grid, grid_cost, costs.solar_power))
    out["cost_opex"] = costs.opex_present_value * np.where(upgrade, 0.25, 1.0)
    parts = ["cost_site", "cost_backhaul", "cost_power", "cost_road", "cost_opex"]
    out["cost"] = out[parts].sum(axis=1)
    return out


def _road_distance_km(pts: gpd.GeoSeries, roads, crs) -> np.ndarray:
    import osmnx as ox

    nodes = ox.graph_to_gdfs(roads, edges=False).to_crs(crs)
    tree = shapely.STRtree(nodes.geometry.to_numpy())
    _, dist = tree.query_nearest(pts.to_numpy(), return_distance=True, all_matches=False)
    return dist / 1000.0


# --------------------------------------------------------------------------- the problem
@dataclass(frozen=True)
class CoverProblem:
    """Arrays of a budgeted maximal-covering instance.

    Attributes
    ----------
    cover : scipy.sparse.csr_matrix, shape (candidates, pairs)
        1 where a candidate covers a (village, cell) pair.
    weight : ndarray, shape (pairs,)
        People of each pair not covered today (0 for covered ones).
    cost : ndarray, shape (candidates,)
        Cost of each candidate.
    pair_village : ndarray, shape (pairs,)
        Row of the village of each pair in the classified table.
    """

    cover: sparse.csr_matrix
    weight: np.ndarray
    cost: np.ndarray
    pair_village: np.ndarray


def _village_cells(villages: gpd.GeoDataFrame, grid: Grid, pop_grid: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(village row, flat cell index, people) of every village-cell overlap, exact fractions."""
    src = _source(pop_grid.astype("float64"), grid.transform, "pop", grid.crs)
    vil = villages[[villages.geometry.name]].to_crs(grid.crs).reset_index(drop=True)
    table = exact_extract(src, vil, ["cell_id", "coverage", "values"], output="pandas")
    vrow, cell, people = [], [], []
    for i, r in enumerate(table.itertuples(index=False)):
        ids, frac, vals = (np.asarray(r[0]), np.asarray(r[1]), np.asarray(r[2]))
        vrow.append(np.full(len(ids), i))
        cell.append(ids.astype(np.int64))
        people.append(frac * np.nan_to_num(vals))
    return np.concatenate(vrow), np.concatenate(cell), np.concatenate(people)


def build_problem(
    classified: gpd.GeoDataFrame,
    existing: CoverageSurfaces,
    candidate_surfaces: list[np.ndarray],
    costs: np.ndarray,
    *,
    population: Raster | None,
    profile: Profile,
    village_weight: np.ndarray | None = None,
) -> CoverProblem:
    """Turn coverage grids into the covering arrays.

    ``candidate_surfaces[i]`` is candidate i's level (dBm) on ``existing.grid``. Pairs of
    villages that are not ``unavailable`` weigh 0; people already covered weigh 0.
    """
    grid = existing.grid
    if population is not None:
        pop_grid = to_grid(population, grid, resampling="sum")
    else:
        pop_grid = np.ones(grid.shape)
    vrow, cell, people = _village_cells(classified, grid, pop_grid)
    # Scale so each village's pairs add up to its classified population.
    totals = np.bincount(vrow, weights=people, minlength=len(classified))
    target = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    target = np.where(np.isnan(target), totals, target)
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    people = people * scale[vrow]
    thresholds = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    covered_now = (existing.margin(thresholds) >= 0).ravel()[cell]
    in_need = (classified["class"] == "unavailable").to_numpy()[vrow]
    weight = np.where(in_need & ~covered_now, people, 0.0)
    if village_weight is not None:
        weight = weight * village_weight[vrow]
    # Candidate c covers pair p when its level in p's cell reaches the outdoor threshold.
    rows, cols = [], []
    by_cell = pd.Series(np.arange(len(cell))).groupby(cell).apply(np.asarray).to_dict()
    for i, level in enumerate(candidate_surfaces):
        flat = np.flatnonzero(np.nan_to_num(level, nan=-999).ravel() >= thresholds["4G"])
        pairs = [by_cell[c] for c in flat if c in by_cell]
        if pairs:
            p = np.concatenate(pairs)
            rows.append(np.full(len(p), i))
            cols.append(p)
    r = np.concatenate(rows) if rows else np.array([], dtype=int)
    c = np.concatenate(cols) if cols else np.array([], dtype=int)
    cover = sparse.csr_matrix((np.ones(len(r)), (r, c)),
                              shape=(len(candidate_surfaces), len(cell)))
    return CoverProblem(cover, weight, np.asarray(costs, dtype=float), vrow)


# --------------------------------------------------------------------------- solvers
def greedy_cover(problem: CoverProblem, *, budget: float | None = None,
                 max_sites: int | None = None) -> list[int]:
    """Lazy greedy on people per unit cost, in build order.

    Candidates are taken by marginal people per unit cost (lazy evaluation: a stale gain in
    the heap is only recomputed when it reaches the top, valid because coverage is
    submodular); the result is compared with the best single affordable site and the better
    of the two is returned (Khuller, Moss and Naor 1999).
    """
    if budget is None and max_sites is None:
        raise ParameterError("give a budget or a number of sites")
    cover = problem.cover
    weight = problem.weight.copy()
    cost = np.maximum(problem.cost, 1e-9)
    limit = np.inf if budget is None else budget
    k = np.inf if max_sites is None else max_sites
    gains = cover @ weight
    heap = [(-g / cost[i], i) for i, g in enumerate(gains) if g > 0 and cost[i] <= limit]
    heapq.heapify(heap)
    chosen: list[int] = []
    spent = 0.0
    while heap and len(chosen) < k:
        _neg_ratio, i = heapq.heappop(heap)
        if spent + cost[i] > limit:
            continue
        row = cover.indices[cover.indptr[i]:cover.indptr[i + 1]]
        g = weight[row].sum()
        if g <= 0:
            continue
        ratio = g / cost[i]
        if heap and ratio < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-ratio, i))
            continue
        chosen.append(i)
        spent += cost[i]
        weight[row] = 0.0
    affordable = [i for i in range(len(cost)) if cost[i] <= limit]
    if affordable and budget is not None:
        best = max(affordable, key=lambda i: gains[i])
        if gains[best] > _covered(problem, chosen):
            return [best]
    return chosen


def _covered(problem: CoverProblem, chosen: list[int]) -> float:
    if not chosen:
        return 0.0
    hit = np.asarray(problem.cover[chosen].sum(axis=0)).ravel() > 0
    return float(problem.weight[hit].sum())


def milp_cover(problem: CoverProblem, *, budget: float | None = None,
               max_sites: int | None = None, time_limit_s: float = 60.0,
               relax: bool = False) -> tuple[list[int], float]:
    """Solve the budgeted maximal covering MILP with HiGHS (or its LP relaxation).

    Returns the chosen candidates and the objective (people); with ``relax=True`` the
    objective of the LP relaxation, an upper bound on any plan's people.
    """
    useful = np.flatnonzero(problem.weight > 0)
    cover = problem.cover[:, useful].tocsc()
    n_c, n_p = cover.shape
    c = np.concatenate([np.zeros(n_c), -problem.weight[useful]])
    # y_p - sum_c a_cp x_c <= 0
    link = sparse.hstack([-cover.T, sparse.identity(n_p)]).tocsr()
    cons = [optimize.LinearConstraint(link, -np.inf, 0.0)]
    if budget is not None:
        cons.append(optimize.LinearConstraint(
            sparse.hstack([sparse.csr_matrix(problem.cost), sparse.csr_matrix((1, n_p))]),
            -np.inf, budget))
    if max_sites is not None:
        cons.append(optimize.LinearConstraint(
            sparse.hstack([sparse.csr_matrix(np.ones((1, n_c))), sparse.csr_matrix((1, n_p))]),
            -np.inf, max_sites))
    integrality = np.concatenate([np.zeros(n_c) if relax else np.ones(n_c), np.zeros(n_p)])
    start = time.perf_counter()
    res = optimize.milp(c, integrality=integrality, bounds=optimize.Bounds(0, 1),
                        constraints=cons,
                        options={"time_limit": time_limit_s, "disp": False})
    log.info("HiGHS %s in %.2f s: %s", "LP" if relax else "MILP", time.perf_counter() - start,
             res.message)
    if res.x is None:
        raise SolverError(f"HiGHS found no solution: {res.message}")
    x = res.x[:n_c]
    chosen = [] if relax else [int(i) for i in np.flatnonzero(x > 0.5)]
    return chosen, float(-res.fun)


# --------------------------------------------------------------------------- the plan
@dataclass
class PlanResult:
    """A rollout plan.

    Attributes
    ----------
    sites : GeoDataFrame
        The contract's plan rows in build order, with the cost breakdown.
    villages : DataFrame
        The priority village list of the contract.
    summary : dict
        People connected, cost, the greedy's objective, the MILP's and the LP bound.
    candidates : GeoDataFrame
        Every candidate with its cost and the people it alone would connect.
    """

    sites: gpd.GeoDataFrame
    villages: pd.DataFrame
    summary: dict
    candidates: gpd.GeoDataFrame


def plan_rollout(
    classified: gpd.GeoDataFrame,
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    budget: float | None = None,
    max_sites: int | None = None,
    candidates: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    dem: Raster | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    roads=None,
    existing: CoverageSurfaces | None = None,
    profile: Profile | str = "vn-2025",
    model_params: ModelParams | None = None,
    params: PlanParams | None = None,
    exact: bool | None = None,
) -> PlanResult:
    """Choose and order sites to connect the most people in ``unavailable`` villages.

    Parameters
    ----------
    classified : GeoDataFrame
        Output of :func:`coverage.classify.classify_villages`.
    towers : GeoDataFrame
        Existing and planned transmitters.
    grid : Grid
        The model grid (metric CRS).
    budget, max_sites
        The limit: money (cost-model currency) or a number of sites; at least one.
    exact : bool, optional
        Solve the MILP too (default: when it has at most 2,000 candidates); the plan is the
        better of greedy and MILP.
    """
    if budget is None and max_sites is None:
        raise ParameterError("plan needs --budget AMOUNT or --sites N")
    if budget is not None and budget <= 0:
        raise ParameterError(f"budget must be positive, got {budget}")
    profile = get_profile(profile) if isinstance(profile, str) else profile
    params = params or PlanParams()
    model_params = model_params or ModelParams()
    active = towers[towers["status"] == "active"]
    if existing is None:
        existing = predict_coverage(active, grid, dem=dem, params=model_params)
    cands = generate_candidates(classified, towers, candidates=candidates, dem=dem,
                                params=params)
    cost = site_costs(cands, towers=towers, fibre=fibre, roads=roads, params=params)
    surfaces = []
    for r in cands.itertuples():
        tx = gpd.GeoDataFrame({
            "site_id": [r.site_id], "operator": ["plan"], "tech": [r.tech],
            "height_m": [r.height_m], "azimuth_deg": [np.nan], "beamwidth_deg": [65.0],
            "eirp_dbm": [np.nan], "freq_mhz": [np.nan], "status": ["active"]},
            geometry=[r.geometry], crs=4326)
        s = predict_coverage(tx, grid, dem=dem, params=model_params)
        surfaces.append(s.best(techs=(r.tech,)))
    problem = build_problem(classified, existing, surfaces, cost["cost"].to_numpy(),
                            population=population, profile=profile)
    order = greedy_cover(problem, budget=budget, max_sites=max_sites)
    greedy_people = _covered(problem, order)
    summary = {"candidates": len(cands), "greedy_people": round(greedy_people, 1)}
    exact = len(cands) <= 2000 if exact is None else exact
    if exact and problem.weight.sum() > 0:
        chosen, milp_people = milp_cover(problem, budget=budget, max_sites=max_sites)
        summary["milp_people"] = round(milp_people, 1)
        if milp_people > greedy_people + 1e-6:
            # Build the MILP's sites, ordered by the greedy restricted to them.
            sub = CoverProblem(problem.cover[chosen], problem.weight, problem.cost[chosen],
                               problem.pair_village)
            order = [chosen[i] for i in greedy_cover(sub, max_sites=len(chosen))]
            order += [i for i in chosen if i not in order]
    if problem.weight.sum() > 0:
        _, bound = milp_cover(problem, budget=budget, max_sites=max_sites, relax=True)
        summary["lp_bound_people"] = round(bound, 1)
    sites = _plan_table(order, cands, cost, problem, classified, profile)
    summary.update({
        "sites": len(sites), "people_connected": round(float(sites["pop_gain"].sum()), 1),
        "cost": float(sites["cost"].sum()), "currency": params.costs.currency,
        "budget": budget, "max_sites": max_sites,
    })
    if "lp_bound_people" in summary and summary["lp_bound_people"] > 0:
        summary["gap_to_bound"] = round(
            1 - summary["people_connected"] / summary["lp_bound_people"], 4)
    alone = problem.cover @ problem.weight
    cand_out = cands.join(cost).assign(pop_alone=np.round(alone, 1))
    villages = priority_villages(classified, sites)
    return PlanResult(sites, villages, summary, cand_out)


def _plan_table(order: list[int], cands: gpd.GeoDataFrame, cost: pd.DataFrame,
                problem: CoverProblem, classified: gpd.GeoDataFrame, profile: Profile
                ) -> gpd.GeoDataFrame:
    weight = problem.weight.copy()
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    covered_people = pop * classified["pop_covered_share"].to_numpy(dtype=float)
    lifted_already = np.zeros(len(classified), dtype=bool)
    unavailable = (classified["class"] == "unavailable").to_numpy()
    ids = classified["village_id"].astype(str).to_numpy()
    rows = []
    for rank, i in enumerate(order, start=1):
        pairs = problem.cover.indices[problem.cover.indptr[i]:problem.cover.indptr[i + 1]]
        gain_pairs = pairs[weight[pairs] > 0]
        gain = float(weight[gain_pairs].sum())
        covered_people += np.bincount(problem.pair_village[gain_pairs],
                                      weights=weight[gain_pairs], minlength=len(classified))
        weight[gain_pairs] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(pop > 0, covered_people / pop, 0.0)
        lifted = unavailable & ~lifted_already & (share >= profile.min_covered_share)
        lifted_already |= lifted
        c = cands.iloc[i]
        rows.append({
            "rank": rank, "site_id": c.site_id,
            "lon": round(c.geometry.x, 6), "lat": round(c.geometry.y, 6),
            "kind": c.kind, "tech": c.tech, "cost": round(float(cost["cost"].iloc[i])),
            "pop_gain": round(gain, 1), "villages": ";".join(ids[lifted]),
            "source": c.source, "height_m": c.height_m,
            **{k: cost[k].iloc[i] for k in ("cost_site", "cost_backhaul", "cost_power",
                                            "cost_road", "cost_opex", "backhaul", "power",
                                            "road_km")},
            "geometry": c.geometry,
        })
    cols = ["rank", "site_id", "lon", "lat", "kind", "tech", "cost", "pop_gain",
            "cum_pop_gain", "cum_cost", "villages"]
    if not rows:
        return gpd.GeoDataFrame(columns=[*cols, "geometry"], geometry="geometry", crs=4326)
    table = gpd.GeoDataFrame(rows, crs=4326)
    table["cum_pop_gain"] = table["pop_gain"].cumsum().round(1)
    table["cum_cost"] = table["cost"].cumsum()
    rest = [c for c in table.columns if c not in cols]
    return table[cols + rest]


def priority_villages(classified: gpd.GeoDataFrame, sites: gpd.GeoDataFrame) -> pd.DataFrame:
    """The contract's priority list: every village once, the ones the plan lifts first.

    Order: villages lifted by the plan, by the rank of the site that lifts them; then the
    remaining ``unavailable`` villages by population, then ``available_inaccessible``, then
    ``served``. ``cost_per_person`` is the lifting site's cost over its people gained.
    """
    site_rank: dict[str, int] = {}
    site_cpp: dict[str, float] = {}
    for r in sites.itertuples():
        for vid in filter(None, str(r.villages).split(";")):
            site_rank.setdefault(vid, int(r.rank))
            site_cpp.setdefault(vid, float(r.cost) / r.pop_gain if r.pop_gain > 0 else np.nan)
    ids = classified["village_id"].astype(str)
    out = pd.DataFrame({
        "village_id": ids.to_numpy(),
        "name": classified.get("name", ids).to_numpy(),
        "class": classified["class"].to_numpy(),
        "population": classified["population"].to_numpy(),
        "site_rank": ids.map(site_rank).astype("Int64").to_numpy(),
        "cost_per_person": ids.map(site_cpp).round(0).to_numpy(),
    })
    class_order = out["class"].map({"unavailable": 0, "available_inaccessible": 1,
                                    "served": 2})
    out = out.assign(_r=out["site_rank"].fillna(10**9), _c=class_order,
                     _p=-pd.to_numeric(out["population"], errors="coerce").fillna(0))
    out = out.sort_values(["_r", "_c", "_p", "village_id"], kind="stable").drop(
        columns=["_r", "_c", "_p"])
    out.insert(0, "priority", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)
