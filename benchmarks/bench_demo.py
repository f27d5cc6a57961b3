"""``covgap demo`` end to end: wall and CPU time, and where they go, stage by stage.

Runs the command in a fresh Python process (timed after the imports and the loading of
the compiled kernels, as a user's ``covgap demo`` after set-up) under a profiler whose
clock is the wall clock, then in another under one whose clock is the process's CPU time
(all threads), and prints, for each stage, the time spent inside the library function
that does it (cumulative: a stage's figure includes what it calls; the stages below are
disjoint except where indented). The load average is printed beside: on a loaded machine
wall time grows and CPU time much less.

    PYTHONPATH=src python benchmarks/bench_demo.py            # compiled sweep if installed
    COVERAGE_GAP_NUMBA=0 PYTHONPATH=src python benchmarks/bench_demo.py   # numpy only
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (label, file suffix, function name), in pipeline order; indented labels lie inside the
#: stage above them.
STAGES = [
    ("read inputs", "coverage/pipeline.py", "load_inputs"),
    ("model: existing sites", "coverage/model/predict.py", "predict_coverage"),
    ("fuse tests (calibrate, krige)", "coverage/model/fuse.py", "fuse_measurements"),
    ("classify villages", "coverage/classify/__init__.py", "classify_villages"),
    ("plan (all of it)", "coverage/plan/__init__.py", "plan_rollout"),
    ("  candidates: generate", "coverage/plan/candidates.py", "generate_candidates"),
    ("  candidates: coverage", "coverage/plan/candidates.py", "candidate_cells"),
    ("  site costs", "coverage/plan/costs.py", "site_costs"),
    ("  greedy", "coverage/plan/solvers.py", "greedy_select"),
    ("  MILP and LP bound (HiGHS)", "coverage/plan/solvers.py", "milp_select"),
    ("map (HTML): build", "coverage/maps/villages.py", "village_map"),
    ("map (HTML): save", "coverage/maps/save.py", "save_map"),
    ("tables (GPKG, CSV, XLSX)", "coverage/io/write.py", "write_table"),
]


def _run(timer) -> tuple[float, float, pstats.Stats]:
    from coverage.cli import main

    out = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    argv = ["covgap", "-q", "demo", "-o", str(out), "--map", str(out / "map.html")]
    prof = cProfile.Profile(timer)
    saved, sys.argv = sys.argv, argv
    wall, cpu = time.perf_counter(), time.process_time()
    prof.enable()
    try:
        main(standalone_mode=False)
    finally:
        prof.disable()
        sys.argv = saved
    return time.perf_counter() - wall, time.process_time() - cpu, pstats.Stats(prof)


def _stage_times(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for label, suffix, fn in STAGES:
            if name == fn and path.replace(os.sep, "/").endswith(suffix):
                # the outermost call holds the cumulative time of nested ones
                found[label] = max(found.get(label, 0.0), cumulative)
    return found


def _child(clock: str) -> None:
    """One measured run in this (fresh) process; prints its figures as JSON."""
    import coverage  # noqa: F401  (imports are set-up, not the demo's time)
    from coverage import _compiled

    _compiled.kernels()  # numba and the cached compiled code loaded: set-up too
    wall, cpu, stats = _run(time.process_time if clock == "cpu" else time.perf_counter)
    print(json.dumps({"wall": wall, "cpu": cpu, "stages": _stage_times(stats)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["wall", "cpu"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    from coverage import _compiled

    kernels = _compiled.kernels()
    load0 = os.getloadavg()[0]
    print(f"load average {load0:.1f} on {os.cpu_count()} cores; compiled sweep: "
          f"{'numba' if kernels is not None else 'no (numpy)'}", flush=True)
    # each clock in a fresh process: the demo's scenario remembers its results in-process
    runs = {}
    for clock in ("wall", "cpu"):
        out = subprocess.run([sys.executable, __file__, "--child", clock], check=True,
                             capture_output=True, text=True).stdout
        runs[clock] = json.loads(out.strip().splitlines()[-1])
    print(f"{'stage':<32} {'wall s':>8} {'CPU s':>8}")
    for label, _, _ in STAGES:
        w, c = runs["wall"]["stages"].get(label), runs["cpu"]["stages"].get(label)
        if w is not None or c is not None:
            print(f"{label:<32} {w or 0.0:8.1f} {c or 0.0:8.1f}")
    print(f"{'covgap demo, total':<32} {runs['wall']['wall']:8.1f} {runs['cpu']['cpu']:8.1f}"
          f"   (CPU of the wall-clock run: {runs['wall']['cpu']:.1f} s; load average "
          f"{load0:.1f} -> {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
