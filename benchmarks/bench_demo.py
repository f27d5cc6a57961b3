"""``covgap demo`` end to end: wall and CPU time, in all and by stage.

A fresh Python process runs the command, timed after the imports and the loading of the
compiled kernels (as a user's ``covgap demo`` after set-up). The library function that does
each stage is wrapped (every module's reference to it) by a timer of its outermost calls:
wall seconds, and CPU seconds of this process's threads and of the forked workers it
reaped meanwhile (a stage's figure includes what it calls; indented stages lie inside the
one above; a stage that runs in forked workers counts there only through its caller). The
timers cost nothing measurable, unlike a profiler. On a loaded machine wall time grows
and CPU time much less: the wall time on a quiet machine of ``C`` CPU seconds on two cores
is about the larger of ``C / 2`` and the stages that do not run in parallel. The load
average is printed beside. Each stage's CPU is also split into this process's (``here``) and
its forked workers' (``workers``); ``here + workers / 2`` estimates the wall time on a quiet
two-core machine when the wall time measured is inflated by other jobs.

    PYTHONPATH=src python benchmarks/bench_demo.py            # compiled sweep if installed
    PYTHONPATH=src python benchmarks/bench_demo.py --runs 3   # the median of three runs
    COVERAGE_GAP_NUMBA=0 PYTHONPATH=src python benchmarks/bench_demo.py   # numpy only
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (label, module, function name), in pipeline order; indented labels lie inside the stage
#: above them. A function called several times counts all its outermost calls.
STAGES = [
    ("read inputs", "coverage.inputs", "load_inputs"),
    ("model structure by CV", "coverage.model.structure", "choose_structure"),
    ("model on the analysis grid", "coverage.model.tiles", "predict_coverage_tiled"),
    ("fuse tests (all calls)", "coverage.model.fuse", "fuse_measurements"),
    ("classify villages", "coverage.classify", "classify_villages"),
    ("plan (all of it)", "coverage.plan.rollout", "plan_sites"),
    ("  candidates: generate", "coverage.plan.candidates", "generate_candidates"),
    ("  candidates: coverage", "coverage.plan.candidates", "candidate_cells"),
    ("  site costs", "coverage.plan.costs", "site_costs"),
    ("  greedy (and its search)", "coverage.plan.solvers", "greedy_select"),
    ("  MILP and LP bound (HiGHS)", "coverage.plan.solvers", "milp_select"),
    ("map (HTML): build", "coverage.maps.villages", "village_map"),
    ("map (HTML): save", "coverage.maps.save", "save_map"),
    ("tables (GPKG, CSV, XLSX)", "coverage.io.write", "write_table"),
]


def _cpu() -> float:
    """CPU seconds of this process's threads and of its reaped children (forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _own_cpu() -> float:
    """CPU seconds of this process's threads alone (not of its forked workers)."""
    t = os.times()
    return t.user + t.system


def _timed(label: str, fn, totals: dict[str, list[float]]):
    """``fn`` adding the wall and CPU time of its outermost calls to ``totals[label]``."""
    depth = [0]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        depth[0] += 1
        wall, cpu, own = time.perf_counter(), _cpu(), _own_cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                got = totals.setdefault(label, [0.0, 0.0, 0.0])
                got[0] += time.perf_counter() - wall
                got[1] += _cpu() - cpu
                got[2] += _own_cpu() - own

    return wrapper


def _wrap_stages(totals: dict[str, list[float]]) -> None:
    """Replace each stage's function by its timed wrapper wherever a module holds it."""
    for label, module, name in STAGES:
        fn = getattr(importlib.import_module(module), name)
        timed = _timed(label, fn, totals)
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("coverage"):
                for attr, value in list(vars(mod).items()):
                    if value is fn:
                        setattr(mod, attr, timed)


def _child() -> None:
    """One measured run in this (fresh) process; prints its figures as JSON."""
    import coverage.cli  # noqa: F401  (imports are set-up, not the demo's time)
    from coverage import _compiled
    from coverage.cli import main

    _compiled.kernels()  # numba and the cached compiled code loaded: set-up too
    totals: dict[str, list[float]] = {}
    _wrap_stages(totals)
    out = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    saved = sys.argv
    sys.argv = ["covgap", "-q", "demo", "-o", str(out), "--map", str(out / "map.html")]
    wall, cpu, own = time.perf_counter(), _cpu(), _own_cpu()
    try:
        main(standalone_mode=False)
    finally:
        sys.argv = saved
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": _cpu() - cpu,
                      "own": _own_cpu() - own, "stages": totals}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=1, help="runs; the median of each figure")
    args = ap.parse_args()
    if args.child:
        _child()
        return
    from coverage import _compiled

    kernels = _compiled.kernels()
    load0 = os.getloadavg()[0]
    print(f"load average {load0:.1f} on {os.cpu_count()} cores; compiled sweep: "
          f"{'numba' if kernels is not None else 'no (numpy)'}", flush=True)
    runs = []
    for _ in range(args.runs):  # each in a fresh process: a run remembers its results
        out = subprocess.run([sys.executable, __file__, "--child"], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))

    print(f"{'stage':<32} {'wall s':>8} {'CPU s':>8} {'here s':>8} {'workers s':>9}")
    for label, _, _ in STAGES:
        if all(label in r["stages"] for r in runs):
            wall, cpu, own = (statistics.median(r["stages"][label][i] for r in runs)
                              for i in range(3))
            print(f"{label:<32} {wall:8.1f} {cpu:8.1f} {own:8.1f} {cpu - own:9.1f}")
    wall, cpu, own = (statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "own"))
    print(f"{'covgap demo, all of it':<32} {wall:8.1f} {cpu:8.1f} {own:8.1f} {cpu - own:9.1f}")
    print(f"quiet 2-core estimate (here + workers / 2): {own + (cpu - own) / 2:.1f} s")
    print(f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
