"""National-scale benchmark: classify and plan end to end, time and peak memory per stage.

Reads what ``generate.py`` wrote and runs the library's stages the way ``covgap classify``
and ``covgap plan`` compose them, except that the 10 million tests are streamed in chunks
of plain lon/lat columns (:func:`coverage.io.iter_measurement_columns`) and compacted to
one observation per grid cell, operator and technology
(:func:`coverage.engine.compact_measurements`) so memory does not grow with their number.
The model runs by tiles on the chosen engine. ``--terrain`` runs the model users run:
terrain diffraction over ``dem.tif`` (a seeded relief like Vietnam's, ``generate.py
--dem``: there is no national DEM in ``../shared/data``), at ``--resolution-m 100``.
Without it, the quick screening mode: Hata without terrain on a 500 m grid (the default).
A 100 m grid of all Vietnam is 130 million cells per layer: the classification then fuses
the tests at its villages' and tests' cells only, and the plan runs on its own grid at the
screening resolution (``--plan-resolution-m``), modelling the existing sites there.
The tests are compacted before the model runs (the stages print in the order they run),
the population raster is read by the classify stage, and the classification keeps the
model's server distances at its villages' and tests' cells only: none of these holds
memory through the model's whole-grid layers.

Prints one line per stage: wall seconds, CPU seconds (this process and the model's forked
worker processes, ``--processes``), peak resident memory during the stage (this process,
sampled every 20 ms from /proc; the workers' own peak beside it as ``workers_mb``), the load
average at its start and end, and the stage's own figures; ``--json`` saves them. The tests
are fused with the model once, for the classification and the plan, as ``covgap run`` does
(people measured without service count as in need).

    PYTHONPATH=src python benchmarks/national/generate.py --scale 1 --out /tmp/national
    PYTHONPATH=src python benchmarks/national/bench.py /tmp/national
    PYTHONPATH=src python benchmarks/national/bench.py /tmp/national --engine dask
    PYTHONPATH=src python benchmarks/national/generate.py --scale 0.0625 --dem --out /tmp/n16
    PYTHONPATH=src python benchmarks/national/bench.py /tmp/n16 --terrain --resolution-m 100
    PYTHONPATH=src python benchmarks/national/bench.py /tmp/n16 --terrain --resolution-m 100 \
        --until model        # the model stage alone; tile_costs.py extrapolates its tiles
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import resource
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from coverage import io
from coverage.classify import classify_villages, fuse_for, place_for_classification
from coverage.engine import Engine, compact_measurements, predict_coverage_tiled
from coverage.model import measurement_xy
from coverage.model.fuse import hold_distances
from coverage.model.terrain import held_ground
from coverage.params import ModelParams, get_profile
from coverage.pipeline import analysis_grid, select_towers
from coverage.plan import plan_rollout

PAGE = os.sysconf("SC_PAGE_SIZE")
STAGES = ("read", "grid+towers", "model", "measurements", "classify", "plan")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def children_cpu_s() -> float:
    """CPU seconds of the worker processes that have ended (the model's forked workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _own_usage() -> tuple[float, int]:
    """CPU seconds and peak RSS (kB) of the calling process (run on each Dask worker)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss


def dask_usage(client) -> tuple[float, int]:
    """CPU seconds summed over the Dask workers, and the largest worker's peak RSS (kB)."""
    if client is None:
        return 0.0, 0
    usage = client.run(_own_usage).values()
    return sum(c for c, _ in usage), max((m for _, m in usage), default=0)


def library_frames(ident: int, depth: int = 4) -> str:
    """The innermost ``depth`` frames of thread ``ident`` in the library, as one line."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    stack = [f for f in traceback.extract_stack(frame) if "/coverage/" in f.filename]
    return " < ".join(f"{Path(f.filename).stem}.{f.name}:{f.lineno}"
                      for f in reversed(stack[-depth:]))


class Stages:
    """Wall time, CPU time and sampled peak RSS of named stages.

    With ``where_peak``, each stage also reports where its peak was reached: the main
    thread's innermost library frames when the sampled RSS last rose to its peak.
    """

    def __init__(self, client=None, *, where_peak: bool = False) -> None:
        self.client = client  # a Dask client: its workers' CPU counts as the stage's
        self.rows: list[dict] = []
        self._peak = 0
        self._where = ""
        self._main = threading.get_ident() if where_peak else None
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = rss_bytes()
            if rss > self._peak:
                self._peak = rss
                if self._main is not None:
                    self._where = library_frames(self._main)

    @contextmanager
    def stage(self, name: str, **figures):
        self._peak = rss_bytes()
        self._where = ""
        dask_cpu, dask_rss = dask_usage(self.client)
        wall, cpu = time.perf_counter(), time.process_time() + children_cpu_s() + dask_cpu
        workers = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dask_rss)
        row = {"stage": name, **figures}
        load0 = os.getloadavg()[0]
        yield row
        row["wall_s"] = round(time.perf_counter() - wall, 2)
        dask_cpu, dask_rss = dask_usage(self.client)
        row["cpu_s"] = round(time.process_time() + children_cpu_s() + dask_cpu - cpu, 2)
        after = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dask_rss)
        if after > workers:
            row["workers_mb"] = round(after / 1024)
        row["peak_rss_mb"] = round(max(self._peak, rss_bytes()) / 2**20)
        row["load"] = f"{load0:.1f}->{os.getloadavg()[0]:.1f}"
        if self._main is not None:
            row["peak_at"] = self._where
        self.rows.append(row)
        extra = ", ".join(f"{k}={v}" for k, v in row.items()
                          if k not in ("stage", "wall_s", "cpu_s", "peak_rss_mb"))
        print(f"{name:<13} {row['wall_s']:8.1f} s wall {row['cpu_s']:8.1f} s CPU "
              f"{row['peak_rss_mb']:7d} MB peak   {extra}", flush=True)


def cached_params(old) -> ModelParams:
    """A cached model's parameters with the fields added since it was saved at their defaults.

    (A pickled ``ModelParams`` of an older version lacks the newer fields.)
    """
    present = {f.name: getattr(old, f.name) for f in fields(ModelParams) if hasattr(old, f.name)}
    return ModelParams(**present)


def _bar(label: str):
    """A progress callback printing ``label: done/total`` in place on a terminal, else None."""
    if not sys.stderr.isatty():
        return None

    def update(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="\n" if done >= total else "",
              file=sys.stderr, flush=True)

    return update


def measurements_stage(s: Stages, d: Path, args, grid, engine):
    """The measurements stage: the tests compacted to one row per cell and label.

    Run before the model (it needs the grid only): its transient (the compaction's sums,
    about 3 GB for the country's ten million tests) then does not come on top of the
    model's whole-grid layers.
    """
    with s.stage("measurements") as row:
        chunks = io.iter_measurement_columns(d / "tests.parquet", chunk_rows=args.chunk_rows)
        # lon/lat columns, no shapely point per row (about 1 GB for ten million)
        tests = compact_measurements(chunks, grid, engine=engine, points=False)
        row.update(compacted_rows=len(tests), tests=int(tests["weight"].sum()),
                   table_mb=round(tests.memory_usage(deep=False).sum() / 2**20))
        tests = HeldTests.of(tests)
        row.update(held_mb=round((sum(v.nbytes for v in tests.values.values())
                                  + sum(c.nbytes for c, _ in tests.labels.values())) / 2**20))
    return tests


@dataclass(frozen=True)
class HeldTests:
    """The compacted tests as held through the model: text labels as integer codes.

    The compacted table's three text columns (``tech``, ``operator``, ``source``: Arrow
    strings, 10-14 bytes a row each) and its ``timestamp`` (NaT throughout, 8 bytes a row)
    are held as one-byte codes and not at all: the country's 9.2 million rows take about
    0.37 GB less through the model stage. :meth:`frame` gives the classification the same
    table back, column for column (checked when packed).
    """

    columns: tuple[str, ...]
    values: dict[str, object]
    labels: dict[str, tuple[np.ndarray, object]]
    timestamp: object  # the dtype of the NaT column, or None when it is kept in values
    rows: int

    LABELS = ("tech", "operator", "source")

    @classmethod
    def of(cls, tests: pd.DataFrame) -> HeldTests:
        if not tests.index.equals(pd.RangeIndex(len(tests))):
            raise ValueError("HeldTests: the compacted tests are indexed 0..n-1")
        values, labels, timestamp = {}, {}, None
        for name in tests.columns:
            col = tests[name]
            if name in cls.LABELS and isinstance(col.dtype, pd.StringDtype):
                codes, uniques = col.array.factorize()  # no label: -1
                kind = np.int8 if len(uniques) < 127 else np.int32
                labels[name] = (codes.astype(kind), uniques)
            elif name == "timestamp" and col.isna().all():
                timestamp = col.dtype
            else:
                values[name] = col.to_numpy() if col.dtype == np.float64 else col.array
        held = cls(tuple(tests.columns), values, labels, timestamp, len(tests))
        if not held.frame().equals(tests):
            raise ValueError("HeldTests: the compacted tests do not come back the same")
        return held

    def frame(self) -> pd.DataFrame:
        """The compacted tests as :func:`compact_measurements` gave them."""
        index = pd.RangeIndex(self.rows)
        cols = {}
        for name in self.columns:
            if name in self.labels:
                codes, uniques = self.labels[name]
                cols[name] = uniques.take(codes, allow_fill=True)  # -1: no label
            elif name == "timestamp" and self.timestamp is not None:
                cols[name] = pd.Series(pd.NaT, index=index, dtype=self.timestamp)
            else:
                cols[name] = self.values[name]
        return pd.DataFrame(cols, index=index, copy=False)


def classify_stage(s: Stages, d: Path, grid, villages, active, tests: HeldTests, surfaces,
                   engine, *, fuse_whole: bool):
    """The classify stage: (tests as a table, population raster, fused or None, classified).

    The population raster is read here, where it is first used (0.5 GB for the country,
    not held through the model).

    ``fuse_whole``: the tests fused with the whole grid once, for the classification and
    the plan on the same grid (as one run of both would); otherwise the classification
    fuses them at its villages' and tests' cells only (a plan on another grid fuses its
    own), and the model's server distances are kept there only once the villages and tests
    are placed (``place_for_classification``, ``hold_distances``): the whole grids' are
    freed (``surfaces``' ``distance_m`` is emptied; the plan on its own grid does not read
    them).
    """
    with s.stage("classify") as row:
        tests = tests.frame()
        population = io.read_raster(d / "population.tif", what="population")
        profile = get_profile("vn-2025")
        fused = (fuse_for(surfaces, tests, profile, xy=measurement_xy(tests, grid.crs))
                 if fuse_whole else None)
        zonal = "auto"
        if not fuse_whole:
            zonal = place_for_classification(villages, surfaces, measurements=tests,
                                             population=population, engine=engine)
            whole = surfaces.distance_m
            surfaces = hold_distances(surfaces, zonal.cells)
            whole.clear()  # the caller's surfaces hold them too: freed here
            row.update(distances_at=zonal.cells.size)
        classified = classify_villages(villages, surfaces, measurements=tests,
                                       population=population, towers=active, engine=engine,
                                       fused=fused, zonal=zonal)
        counts = classified["class"].value_counts().to_dict()
        row.update(**{k: int(v) for k, v in counts.items()})
    return tests, population, fused, classified


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--engine", choices=["local", "dask"], default="local")
    ap.add_argument("--scheduler", help="Dask scheduler address (default: a local cluster "
                    "of 2 worker processes)")
    ap.add_argument("--resolution-m", type=float, default=500.0)
    ap.add_argument("--plan-resolution-m", type=float, default=500.0,
                    help="grid of the plan stage (the existing sites' coverage and the "
                    "candidates'); coarser than --resolution-m, the plan models the existing "
                    "sites again on its own grid (with terrain under --terrain) and fuses the "
                    "tests there: the screening resolution for choosing sites, the model's "
                    "for classifying villages")
    ap.add_argument("--terrain", action="store_true",
                    help="the model users run: terrain diffraction over DATA/dem.tif "
                    "(generate.py --dem); without it, the quick screening mode (Hata "
                    "without terrain)")
    ap.add_argument("--workers", type=int, default=1, help="model threads per tile")
    ap.add_argument("--processes", type=int, default=2,
                    help="local engine: worker processes for the model's tiles")
    ap.add_argument("--tile-cells", type=int, default=256)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=200, help="sites the plan chooses")
    ap.add_argument("--skip-plan", action="store_true", help="as --until classify")
    ap.add_argument("--until", choices=STAGES, default="plan",
                    help="the last stage to run (model: the coverage model alone)")
    ap.add_argument("--json", type=Path, help="write the stage figures here")
    ap.add_argument("--model-cache", type=Path,
                    help="surfaces of the model stage: loaded from this file when it exists "
                    "(the model stage then only reads it), else saved to it (for measuring "
                    "the later stages again without modelling)")
    ap.add_argument("--classes", type=Path,
                    help="write the classified villages' figures here (CSV without the "
                    "geometry and sentences), to compare two revisions village by village")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="the library's log on stderr (INFO)")
    ap.add_argument("--where-peak", action="store_true",
                    help="report where each stage reached its peak memory (the library's "
                    "innermost frames at that moment)")
    args = ap.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    d = args.data
    info = json.loads((d / "info.json").read_text())
    print(f"input: {info['villages']:,} villages ({info['villages_from']}), "
          f"{info['cells']:,} cells, {info['tests']:,} tests, population raster "
          f"{info['population_raster']['rows']} x {info['population_raster']['cols']} "
          f"at 100 m; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          flush=True)
    client = None
    if args.engine == "dask":
        from distributed import Client, LocalCluster

        from coverage.engine import local_cluster_settings

        with local_cluster_settings():  # the workers keep glibc's malloc defaults
            client = (Client(args.scheduler) if args.scheduler else
                      Client(LocalCluster(n_workers=2, threads_per_worker=1,
                                          dashboard_address=None)))
    engine = Engine(args.engine, client=client, tile_cells=args.tile_cells,
                    village_chunk=10_000,
                    processes=args.processes if args.engine == "local" else 1)
    params = ModelParams(resolution_m=args.resolution_m, terrain=args.terrain,
                         workers=args.workers)
    s = Stages(client, where_peak=args.where_peak)
    last = STAGES.index("classify" if args.skip_plan else args.until)
    t0 = time.perf_counter()
    with s.stage("read") as row:
        villages = io.read_villages(d / "villages.parquet")
        towers = io.read_towers(d / "sites.csv")
        dem = io.read_raster(d / "dem.tif") if args.terrain else None
        row.update(villages=len(villages), cells=len(towers))
    with s.stage("grid+towers") as row:
        grid = analysis_grid(villages, params)
        active = select_towers(towers, villages, params)
        row.update(grid=f"{grid.shape[0]}x{grid.shape[1]}", towers=len(active))
    if last > STAGES.index("model"):
        tests = measurements_stage(s, d, args, grid, engine)
    cache = args.model_cache
    with s.stage("model") as row:
        if cache is not None and cache.exists():  # the surfaces of an earlier run
            surfaces = pickle.loads(cache.read_bytes())
            surfaces.dem = held_ground(surfaces.dem)  # as the model keeps it now (float32)
            surfaces.params = cached_params(surfaces.params)
            row.update(cached=str(cache))
        else:
            surfaces = predict_coverage_tiled(active, grid, dem=dem, params=params,
                                              engine=engine, progress=_bar("model tiles"))
        row.update(layers=len(surfaces.layers))
    if cache is not None and not cache.exists():
        cache.write_bytes(pickle.dumps(surfaces, protocol=5))
    own_plan_grid = args.plan_resolution_m != args.resolution_m
    if own_plan_grid:
        dem = None  # the DEM as read (1.1 GB for the country): read again by the plan
    if last > STAGES.index("model"):
        tests, population, fused, classified = classify_stage(
            s, d, grid, villages, active, tests, surfaces, engine,
            fuse_whole=not own_plan_grid)
        if args.classes is not None:
            classified.drop(columns=[classified.geometry.name, "explanation",
                                     "explanation_vi"]).to_csv(args.classes, index=False)
    if last > STAGES.index("classify"):
        with s.stage("plan") as row:
            if own_plan_grid:
                # the screening resolution: the existing sites modelled on the plan's grid
                # (terrain included) and fused with the tests there; the classes are the
                # fine model's
                del surfaces
                params = replace(params, resolution_m=args.plan_resolution_m)
                grid = analysis_grid(villages, params)
                dem = io.read_raster(d / "dem.tif") if args.terrain else None
                existing, measurements = None, tests
                row.update(grid=f"{grid.shape[0]}x{grid.shape[1]}")
            else:
                # the classification's fused surfaces, as `covgap plan --measurements`
                # would fuse them: people measured without service are in need
                existing, measurements = fused, None
            plan = plan_rollout(classified, active, grid, max_sites=args.sites,
                                population=population, existing=existing,
                                measurements=measurements, dem=dem, model_params=params,
                                engine=engine, progress=_bar("plan candidates"))
            row.update(sites=len(plan.sites), candidates=plan.summary["candidates"],
                       people=plan.summary["people_connected"],
                       bound=plan.summary["upper_bound_method"],
                       gap=plan.summary.get("gap_to_bound"))
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'end to end':<13} {total:8.1f} s wall, peak RSS {peak:.0f} MB "
          f"(load average now {os.getloadavg()[0]:.1f})")
    if args.json:
        args.json.write_text(json.dumps({"input": info, "engine": args.engine,
                                         "resolution_m": args.resolution_m,
                                         "terrain": args.terrain,
                                         "processes": args.processes,
                                         "workers": args.workers,
                                         "tile_cells": args.tile_cells,
                                         "stages": s.rows, "total_s": round(total, 1),
                                         "peak_rss_mb": round(peak)}, indent=1))
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
