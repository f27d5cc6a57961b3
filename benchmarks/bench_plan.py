"""Rollout planning: greedy against the HiGHS MILP, the LP bound and PySAL spopt's MCLP.

Run from the repository root (takes minutes; not part of the tests)::

    PYTHONPATH=src python benchmarks/bench_plan.py                 # generated instances
    PYTHONPATH=src python benchmarks/bench_plan.py --demo data     # + the demo province
    PYTHONPATH=src python benchmarks/bench_plan.py --sizes 1000x10000 --milp-limit 60
    PYTHONPATH=src python benchmarks/bench_plan.py --demo data --candidates both \
        --candidates-only                                          # candidates per second

Generated instances: candidates and villages spread uniformly over a square sized so that a
candidate's 5 km service radius holds about 20 villages; people per village lognormal
(median 300); candidate costs 0.6-3.5 billion VND (budget runs, budget = 10% of all
candidates' cost) or all equal (site-count runs, p = 10% of the candidates, the only limit
spopt's MCLP knows). Targets (issue #6): greedy >= 99% of the MILP optimum; greedy >= 10x
faster than spopt's MCLP at equal or better coverage; the national instance (50,000 x
100,000) planned in under 60 s. spopt builds a dense villages x candidates matrix, so it
runs only where that fits in memory (<= 2e7 cells).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from coverage.errors import SolverError
from coverage.plan import CoverProblem, Limits, greedy_select, milp_select, online_bound

RADIUS_M = 5000.0


def generated(n_cand: int, n_vill: int, *, seed: int = 0, equal_costs: bool = False):
    """A synthetic instance: (problem, candidate xy, village xy)."""
    rng = np.random.default_rng(seed)
    side = np.sqrt(n_vill * np.pi * RADIUS_M**2 / 20.0)
    cxy = rng.uniform(0, side, (n_cand, 2))
    vxy = rng.uniform(0, side, (n_vill, 2))
    pairs = cKDTree(cxy).sparse_distance_matrix(cKDTree(vxy), RADIUS_M, output_type="coo_matrix")
    cover = sparse.csr_matrix((np.ones(pairs.nnz), (pairs.row, pairs.col)),
                              shape=(n_cand, n_vill))
    weight = np.round(rng.lognormal(np.log(300), 0.6, n_vill))
    cost = (np.full(n_cand, 1.5e9) if equal_costs
            else np.round(rng.uniform(0.6e9, 3.5e9, n_cand), -6))
    return CoverProblem(cover, weight, cost, np.arange(n_vill)), cxy, vxy


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def spopt_mclp(cxy, vxy, weight, p: int):
    """spopt's MCLP with HiGHS through PuLP: (people, seconds incl. building the model)."""
    import pulp
    from spopt.locate import MCLP

    t = time.perf_counter()
    dist = np.sqrt(((vxy[:, None, :] - cxy[None, :, :]) ** 2).sum(axis=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MCLP.from_cost_matrix(dist, weight, service_radius=RADIUS_M, p_facilities=p)
        model = model.solve(pulp.HiGHS(msg=False))
    seconds = time.perf_counter() - t
    chosen = [j for j, v in enumerate(model.fac_vars) if v.value() and v.value() > 0.5]
    covered = (dist[:, chosen] <= RADIUS_M).any(axis=1) if chosen else np.zeros(len(vxy), bool)
    return float(weight[covered].sum()), seconds


def compare(label: str, problem: CoverProblem, limits: Limits, *, milp_limit_s: float,
            lp: bool = True, milp: bool = True) -> dict:
    g, tg = timed(greedy_select, problem, limits)
    bound, tb = timed(online_bound, problem, limits, g.order)
    row = {"instance": label, "candidates": problem.n_candidates,
           "pairs": problem.cover.shape[1], "nnz": problem.cover.nnz,
           "greedy_people": g.people, "greedy_s": tg, "online_bound": bound, "bound_s": tb}
    if milp:
        try:
            (m, info), tm = timed(milp_select, problem, limits, time_limit_s=milp_limit_s)
            row.update(milp_people=m.people, milp_s=tm, milp_status=info["status"],
                       milp_gap=info.get("mip_gap"))
        except SolverError as exc:
            row.update(milp_status=f"failed: {exc}")
    if lp:
        try:
            (_, info), tl = timed(milp_select, problem, limits, time_limit_s=milp_limit_s,
                                  relax=True)
            row.update(lp_bound=info["objective"], lp_s=tl)
        except SolverError as exc:
            row.update(lp_bound=float("nan"), lp_status=f"failed: {exc}")
    return row


def show(row: dict) -> None:
    parts = [f"{row['instance']:<26} {row['candidates']:>6} cand x {row['pairs']:>7} pairs "
             f"(nnz {row['nnz']:,})"]
    parts.append(f"  greedy {row['greedy_people']:>13,.0f} people in {row['greedy_s']:7.3f} s")
    if "milp_people" in row:
        share = row["greedy_people"] / row["milp_people"] if row["milp_people"] else 1.0
        parts.append(f"  MILP   {row['milp_people']:>13,.0f} people in {row['milp_s']:7.2f} s "
                     f"[{row['milp_status']}] -> greedy = {share:.2%} of MILP")
    elif "milp_status" in row:
        parts.append(f"  MILP   {row['milp_status']}")
    if np.isfinite(row.get("lp_bound", np.nan)):
        parts.append(f"  LP bound {row['lp_bound']:>11,.0f} in {row['lp_s']:7.2f} s -> greedy "
                     f">= {row['greedy_people'] / row['lp_bound']:.2%} of optimum")
    parts.append(f"  online bound {row['online_bound']:>9,.0f} in {row['bound_s']:.3f} s -> "
                 f"greedy >= {row['greedy_people'] / row['online_bound']:.2%} of optimum")
    if "spopt_people" in row:
        parts.append(f"  spopt MCLP {row['spopt_people']:>11,.0f} people in "
                     f"{row['spopt_s']:7.2f} s -> greedy {row['spopt_s'] / row['greedy_s']:,.0f}x "
                     f"faster, {row['greedy_people'] / row['spopt_people']:.2%} of its people")
    print("\n".join(parts), flush=True)


def _demo_inputs(data: str):
    """The demo run file's settings and every input layer of the demo folder ``data``."""
    from pathlib import Path

    from coverage.pipeline import DEMO_CONFIG, Settings, load_inputs

    d = Path(data)
    settings = Settings.from_config(DEMO_CONFIG)
    inputs = load_inputs(
        d / "boundaries/villages.gpkg", towers=[d / "towers/sites.csv",
                                                d / "towers/opencellid.csv"],
        measurements=[d / "measurements/tests.csv", d / "measurements/ookla_tiles.parquet"],
        population=d / "rasters/population.tif", dem=d / "rasters/dem.tif",
        access=d / "access/access.csv", fibre=d / "fibre/fibre.gpkg",
        roads=d / "roads/roads.osm")
    return settings, inputs


def demo(data: str, milp_limit_s: float) -> None:
    from coverage.pipeline import run_classify, run_plan

    settings, inputs = _demo_inputs(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (classified, surfaces), tc = timed(run_classify, inputs, settings=settings)
        result, tp = timed(run_plan, classified, inputs, budget=40e9, settings=settings,
                           existing=surfaces)
    print(f"demo: classify {tc:.1f} s, plan_rollout {tp:.1f} s (candidates, costs, model, "
          f"greedy, MILP and LP): {result.summary['candidates']} candidates, "
          f"{result.summary['sites']} sites, {result.summary['people_connected']:,.0f} people")
    for budget in (5e9, 10e9, 20e9, 40e9):
        show(compare(f"demo, budget {budget / 1e9:g} bn", result.problem,
                     Limits(budget=budget), milp_limit_s=milp_limit_s))
    p = max(1, result.problem.n_candidates // 20)
    show(compare(f"demo, {p} sites", result.problem, Limits(max_sites=p),
                 milp_limit_s=milp_limit_s))


# --------------------------------------------------------------------------- candidates
def _candidate_instance_generated(seed: int = 4):
    """Hilly province: 60 x 60 km at 100 m, seeded relief, 400 candidates, people in need.

    The relief is fractal noise (spectrum k^-3.2, outer scale 20 km) scaled to 250-1,450 m;
    the candidates are 4G masts at 30 or 40 m anywhere; people in need live in 1,500
    clusters of 1-12 cells (a village's cells).
    """
    from pyproj import CRS
    from rasterio.transform import from_origin

    from coverage.datasets._grid import fractal_field
    from coverage.io import Raster
    from coverage.model import Grid

    rng = np.random.default_rng(seed)
    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(500_000.0, 2_400_000.0, 100.0, 100.0), (600, 600), crs)
    z = fractal_field((700, 700), 100.0, beta=3.2, outer_m=20_000.0, rng=rng)
    z = 250.0 + 1200.0 * (z - z.min()) / (z.max() - z.min())
    dem = Raster(z.astype("float32"), from_origin(495_000.0, 2_405_000.0, 100.0, 100.0), crs)
    n = 400
    x = rng.uniform(501_000, 559_000, n)
    y = rng.uniform(2_341_000, 2_399_000, n)
    import geopandas as gpd

    cands = gpd.GeoDataFrame({"tech": "4G", "height_m": rng.choice([30.0, 40.0], n),
                              "eirp_dbm": np.nan},
                             geometry=gpd.points_from_xy(x, y, crs=crs)).to_crs(4326)
    centre = rng.integers(0, 600, (1500, 2))
    offsets = rng.integers(-2, 3, (1500, 12, 2))
    keep = rng.uniform(size=(1500, 12)) < rng.uniform(0.1, 1.0, (1500, 1))
    cells = np.clip(centre[:, None, :] + offsets, 0, 599)[keep]
    need = np.unique(cells[:, 0] * 600 + cells[:, 1])
    return cands, grid, {"dem": dem, "need": need}


def _candidate_instance_demo(data: str):
    """The demo province's candidates, as ``covgap demo`` models them (plan_rollout's steps)."""
    from coverage.model import clutter_map
    from coverage.pipeline import (
        fused_surfaces,
        run_classify,
        select_towers,
    )
    from coverage.plan import generate_candidates
    from coverage.plan.demand import demand_pairs

    settings, inputs = _demo_inputs(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classified, surfaces = run_classify(inputs, settings=settings)
        existing = fused_surfaces(surfaces, inputs.measurements, profile=settings.profile)
        grid = existing.grid
        towers = select_towers(inputs.towers, classified, settings.model)
        clutter = clutter_map(grid, settings.model, population=inputs.population,
                              landcover=inputs.landcover)
        demand = demand_pairs(classified.reset_index(drop=True), existing,
                              population=inputs.population, profile=settings.profile)
        cands = generate_candidates(classified, towers, dem=inputs.dem,
                                    unserved=demand.unserved_points(), params=settings.plan)
    return cands, grid, {"dem": inputs.dem, "need": demand.need_cells(), "clutter": clutter,
                         "params": settings.model}


def candidate_speed(which: str, data: str | None) -> None:
    """Candidates modelled per second by :func:`coverage.plan.candidate_cells`.

    Wall and CPU seconds (this process, all threads) of the call alone, on the generated
    hilly province and on the demo's candidates, and a checksum of the covered
    (candidate, cell in need) pairs: the same checksum from two versions of the code
    means the same coverage.
    """
    from coverage.params import ModelParams, get_profile
    from coverage.plan import candidate_cells

    instances = []
    if which in ("generated", "both"):
        instances.append(("generated hills", _candidate_instance_generated))
    if which in ("demo", "both") and data:
        instances.append(("demo", lambda: _candidate_instance_demo(data)))
    for label, make in instances:
        cands, grid, kw = make()
        kw.setdefault("params", ModelParams())
        wall, cpu = time.perf_counter(), time.process_time()
        cells = candidate_cells(cands, grid, profile=get_profile("vn-2025"), **kw)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        pairs = cells[:, kw["need"]].tocoo()
        checksum = int(np.sum((pairs.row.astype(np.int64) * 1_000_003 + pairs.col)
                              % 1_000_000_007))
        print(f"candidates {label:<16} {len(cands):5d} candidates, {len(kw['need']):6d} "
              f"cells in need on {grid.shape[0]}x{grid.shape[1]}: {wall:6.1f} s wall "
              f"{cpu:6.1f} s CPU -> {len(cands) / wall:6.1f} cand/s wall, "
              f"{len(cands) / cpu:6.1f} cand/s CPU; {pairs.nnz:,} covered pairs in need "
              f"(checksum {checksum})", flush=True)


# ------------------------------------------------------------------------------ quality
def realistic(n_cand: int, n_vill: int, *, seed: int = 0):
    """An instance with the demo's cost spread (billion VND, as ``CostModel`` prices them).

    Villages are spread uniformly (20 per 5 km radius, as :func:`generated`), people
    lognormal (median 300). Candidates: 35% 4G upgrades of existing masts (0.55, 4 km),
    35% new macro sites (1-3.6, 5-9 km: the dearer the site, the higher and further it
    reaches, as high points do), 15% small cells (0.35, 1 km), 15% community satellite
    terminals for one village each (0.14 per 20 residents).
    """
    rng = np.random.default_rng(seed)
    side = np.sqrt(n_vill * np.pi * RADIUS_M**2 / 20.0)
    vxy = rng.uniform(0, side, (n_vill, 2))
    weight = np.round(rng.lognormal(np.log(300), 0.6, n_vill))
    kind = rng.choice(4, size=n_cand, p=[0.35, 0.35, 0.15, 0.15])
    cxy = rng.uniform(0, side, (n_cand, 2))
    macro_cost = rng.uniform(1.0, 3.6, n_cand)
    radius = np.select([kind == 0, kind == 1, kind == 2],
                       [4000.0, 5000.0 + 4000.0 * (macro_cost - 1.0) / 2.6, 1000.0], 0.0)
    cost = np.select([kind == 0, kind == 1, kind == 2], [0.55, macro_cost, 0.35], 0.0)
    village = rng.integers(0, n_vill, n_cand)
    cxy[kind == 3] = vxy[village[kind == 3]]
    cost[kind == 3] = 0.14 * np.ceil(weight[village[kind == 3]] / 20.0)
    tree = cKDTree(vxy)
    rows, cols = [], []
    for k, (xy, r) in enumerate(zip(cxy, radius, strict=True)):
        hit = [village[k]] if kind[k] == 3 else tree.query_ball_point(xy, r)
        rows += [k] * len(hit)
        cols += list(hit)
    cover = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_cand, n_vill))
    return CoverProblem(cover, weight, np.round(cost * 1e9, -6), np.arange(n_vill))


def demo_problem(data: str, cache: str | None) -> CoverProblem:
    """The demo province's covering instance (as ``covgap demo`` plans at 40 bn VND).

    Candidate coverage takes most of a minute, so ``cache`` (an .npz path) keeps the
    instance between runs.
    """
    from pathlib import Path

    if cache and Path(cache).exists():
        z = np.load(cache)
        cover = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=z["shape"])
        return CoverProblem(cover, z["weight"], z["cost"], z["pair_village"], z["group"])
    from coverage.pipeline import run_classify, run_plan

    settings, inputs = _demo_inputs(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classified, surfaces = run_classify(inputs, settings=settings)
        p = run_plan(classified, inputs, budget=40e9, settings=settings,
                     existing=surfaces).problem
    if cache:
        np.savez(cache, data=p.cover.data, indices=p.cover.indices, indptr=p.cover.indptr,
                 shape=p.cover.shape, weight=p.weight, cost=p.cost,
                 pair_village=p.pair_village, group=p.groups())
    return p


def cpu_timed(fn, *args, **kw):
    """``fn``'s result and the CPU seconds of this process (all threads) it took."""
    t = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - t


def quality_row(label: str, problem: CoverProblem, limits: Limits, *, milp_limit_s: float,
                milp: bool = True, bound_s: float = 60.0, gap: float = 1e-4,
                milp_nodes: int | None = None) -> dict:
    """Plain greedy, the heuristic, the relaxation's plan, the MILP and the bounds.

    Times are CPU seconds. *heuristic*: ``greedy_select`` (seeds, local search, kernel
    MILP); *+ relaxation*: the heuristic, then :func:`relaxation_select` (the LP by
    interior point, the MILP on its fractional sites) and the heuristic again from its
    plan, as ``covgap plan`` does where the MILP does not run; its bound is the Lagrangian
    at the LP's duals. The MILP (warm-started from the heuristic, stopping at ``gap``)
    gives the optimum. Every stage stops at the plan's deterministic budgets
    (:class:`coverage.params.PlanParams`), the reference MILP at ``milp_nodes``; the
    wall-clock limits are safety nets (a stage they stop is marked ``time_limit``).
    """
    from coverage.params import PlanParams
    from coverage.plan import lagrangian_bound, relaxation_select

    params = PlanParams()

    plain, t_plain = cpu_timed(greedy_select, problem, limits, search=False)
    heur, t_heur = cpu_timed(greedy_select, problem, limits)
    row = {"instance": label, "size": f"{problem.n_candidates}x{problem.cover.shape[1]}",
           "greedy": plain.people, "greedy_s": t_plain, "heuristic": heur.people,
           "heuristic_s": t_heur}
    (relaxed, lp), t_lp = cpu_timed(relaxation_select, problem, limits, time_limit_s=bound_s,
                                    max_nodes=params.milp_max_nodes,
                                    max_iterations=params.lp_max_iterations)
    best, t_guided = heur, 0.0
    if relaxed is not None:
        guided, t_guided = cpu_timed(greedy_select, problem, limits, prefer=relaxed.order)
        best = max([heur, relaxed, guided], key=lambda s: s.people)
    steps = 1 if lp["status"] == "optimal" and lp["multipliers"] is not None else 300
    lag_kind = "lp" if steps == 1 else "lagrangian"
    (lag, _), t_lag = cpu_timed(lagrangian_bound, problem, limits, best.order,
                                lower=best.people, iterations=steps, time_limit_s=bound_s,
                                multipliers=lp["multipliers"])
    row.update(relaxed=best.people, relaxed_s=t_heur + t_lp + t_guided + t_lag,
               lp=lp["objective"], lagrangian=lag, heuristic_status=heur.status,
               lp_status=lp["status"])
    bounds = {lag_kind: lag, "online": online_bound(problem, limits, best.order)}
    if milp:
        try:
            (m, info), t = cpu_timed(milp_select, problem, limits, time_limit_s=milp_limit_s,
                                     start=heur, mip_rel_gap=gap, max_nodes=milp_nodes)
            row.update(milp=m.people, milp_s=t, milp_status=info["status"],
                       milp_bound=info["bound"])
        except SolverError as exc:
            row.update(milp_status=f"failed: {exc}")
    kind = min(bounds, key=bounds.get)
    row.update(bound=bounds[kind], bound_kind=kind)
    if np.isfinite(row.get("milp_bound", np.inf)) and row["milp_bound"] < row["bound"]:
        row.update(best_bound=row["milp_bound"], best_kind="milp")
    else:
        row.update(best_bound=row["bound"], best_kind=kind)
    row["optimum"] = row.get("milp") if row.get("milp_status") == "optimal" else None
    return row


def show_quality(rows: list[dict]) -> None:
    """The table of ``docs/planning.md`` (markdown)."""
    print("\n| instance | size | optimum (MILP) or best bound | greedy people (CPU s) | "
          "heuristic people (CPU s) | heuristic / optimum | + relaxation people (CPU s, "
          "bound included) | MILP people (CPU s, stop) | certified gap without the MILP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = (f"{r['optimum']:,.0f}" if r["optimum"] is not None
               else f"<= {r['best_bound']:,.0f} ({r['best_kind']})")
        share = (f"{r['heuristic'] / r['optimum']:.2%}" if r["optimum"]
                 else f">= {r['heuristic'] / r['best_bound']:.2%}")
        milp = (f"{r['milp']:,.0f} ({r['milp_s']:.1f}, {r['milp_status']})" if "milp" in r
                else r.get("milp_status", "not run"))
        print(f"| {r['instance']} | {r['size']} | {ref} | {r['greedy']:,.0f} "
              f"({r['greedy_s']:.2f}) | {r['heuristic']:,.0f} ({r['heuristic_s']:.2f}"
              f"{'' if r['heuristic_status'] == 'complete' else ', ' + r['heuristic_status']}) | "
              f"{share} | {r['relaxed']:,.0f} ({r['relaxed_s']:.1f}) | {milp} | "
              f"{max(1 - r['relaxed'] / r['bound'], 0.0):.2%} ({r['bound_kind']}"
              f"{'' if r['lp_status'] == 'optimal' else '; LP ' + r['lp_status']}) |",
              flush=True)


def warm_vs_cold(args) -> None:
    """The demo's MILP at 40 bn VND without and with the heuristic's plan as a start."""
    p = demo_problem(args.demo, args.problem_cache)
    limits = Limits(budget=40e9)
    heur = greedy_select(p, limits)
    for start in (None, heur, None, heur):
        wall = time.perf_counter()
        (m, info), t = cpu_timed(milp_select, p, limits, time_limit_s=args.milp_limit,
                                 start=start)
        print(f"demo 40 bn VND MILP {'warm' if start else 'cold'}: {m.people:,.1f} people, "
              f"{info['status']}, proven gap {info['mip_gap']:.3%}, {t:.1f} s CPU, "
              f"{time.perf_counter() - wall:.1f} s wall (heuristic {heur.people:,.1f})",
              flush=True)


def quality(args) -> None:
    """Heuristic against the MILP and the bounds: the demo and generated instances."""
    rows = []
    if args.demo:
        p = demo_problem(args.demo, args.problem_cache)
        for b in (5e9, 10e9, 20e9, 40e9, 80e9):
            rows.append(quality_row(f"demo, {b / 1e9:g} bn VND", p, Limits(budget=b),
                                    milp_limit_s=args.milp_limit,
                                    bound_s=args.bound_limit, milp_nodes=args.milp_nodes))
            show_quality(rows[-1:])
        rows.append(quality_row("demo, 20 sites", p, Limits(max_sites=20),
                                milp_limit_s=args.milp_limit,
                                bound_s=args.bound_limit, milp_nodes=args.milp_nodes))
        show_quality(rows[-1:])
    for size in filter(None, args.quality_sizes.split(",")):
        n_c, n_v = (int(x) for x in size.split("x"))
        p = realistic(n_c, n_v, seed=5)
        for share in (0.02, 0.05, 0.1):
            budget = share * p.cost.sum()
            rows.append(quality_row(f"spread {size}, {share:.0%} of all", p,
                                    Limits(budget=budget), milp_limit_s=args.milp_limit,
                                    bound_s=args.bound_limit, milp_nodes=args.milp_nodes))
            show_quality(rows[-1:])
    if args.quality_national:
        n_c, n_v = (int(x) for x in args.quality_national.split("x"))
        p = realistic(n_c, n_v, seed=6)
        for limits, what in ((Limits(budget=0.05 * p.cost.sum()), "5% of all"),
                             (Limits(max_sites=200), "200 sites")):
            rows.append(quality_row(f"national {args.quality_national}, {what}", p, limits,
                                    milp_limit_s=args.milp_limit, milp=False,
                                    bound_s=args.bound_limit))
            show_quality(rows[-1:])
    print("\nAll rows:")
    show_quality(rows)
    print(f"load at the end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000x10000,5000x100000,20000x100000",
                    help="candidates x villages instances")
    ap.add_argument("--national", default="50000x100000", help="greedy-only instance")
    ap.add_argument("--milp-limit", type=float, default=300.0, help="HiGHS time limit, s")
    ap.add_argument("--milp-nodes", type=int, default=None,
                    help="--quality: branch-and-bound nodes of the reference MILP (a "
                    "deterministic limit; default none, the time limit only)")
    ap.add_argument("--bound-limit", type=float, default=600.0,
                    help="--quality: wall seconds for the LP, and again for the "
                    "relaxation's MILP (a safety net, as [plan] time_limit_s: their "
                    "iteration and node limits end them first)")
    ap.add_argument("--demo", metavar="DATA", help="also the demo province in DATA")
    ap.add_argument("--no-spopt", action="store_true")
    ap.add_argument("--candidates", choices=["generated", "demo", "both", "none"],
                    default="none", help="also time candidate coverage (candidate_cells) "
                    "on the generated hilly province and/or the demo (needs --demo DATA)")
    ap.add_argument("--candidates-only", action="store_true",
                    help="only the candidate coverage timing")
    ap.add_argument("--quality", action="store_true",
                    help="only the plan quality table: heuristic against the warm-started "
                    "MILP and the bounds (the demo with --demo, --quality-sizes, "
                    "--quality-national)")
    ap.add_argument("--quality-sizes", default="1000x10000,2000x20000",
                    help="generated instances with the demo's cost spread")
    ap.add_argument("--quality-national", default="50000x100000",
                    help="heuristic, relaxation and bounds only (no MILP)")
    ap.add_argument("--problem-cache", help="an .npz keeping the demo's instance")
    ap.add_argument("--warm-vs-cold", action="store_true",
                    help="only the demo's MILP at 40 bn VND, cold and warm-started, twice")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    if args.warm_vs_cold:
        warm_vs_cold(args)
        return
    if args.quality:
        quality(args)
        return
    if args.candidates != "none":
        candidate_speed(args.candidates, args.demo)
        if args.candidates_only:
            return
    if args.demo:
        demo(args.demo, args.milp_limit)
    for size in filter(None, args.sizes.split(",")):
        n_c, n_v = (int(x) for x in size.split("x"))
        prob, _, _ = generated(n_c, n_v, seed=1)
        budget = 0.1 * prob.cost.sum()
        show(compare(f"budget {n_c}x{n_v}", prob, Limits(budget=budget),
                     milp_limit_s=args.milp_limit))
        prob, cxy, vxy = generated(n_c, n_v, seed=2, equal_costs=True)
        p = n_c // 10
        row = compare(f"p={p} sites {n_c}x{n_v}", prob, Limits(max_sites=p),
                      milp_limit_s=args.milp_limit)
        if not args.no_spopt and n_c * n_v <= 2e7:
            try:
                row["spopt_people"], row["spopt_s"] = spopt_mclp(cxy, vxy, prob.weight, p)
            except ImportError:
                print("spopt is not installed: pip install 'coverage-gap[bench]'")
        show(row)
    if args.national:
        n_c, n_v = (int(x) for x in args.national.split("x"))
        (prob, _, _), tgen = timed(generated, n_c, n_v, seed=3)
        limits = Limits(budget=0.1 * prob.cost.sum())
        row = compare(f"national {n_c}x{n_v}", prob, limits, milp_limit_s=args.milp_limit,
                      milp=False, lp=True)
        show(row)
        print(f"  national plan (greedy + online bound): {row['greedy_s'] + row['bound_s']:.2f}"
              f" s (target < 60 s); instance built in {tgen:.1f} s")


if __name__ == "__main__":
    main()
