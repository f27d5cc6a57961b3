"""``covgap demo`` end to end: wall and CPU time, and where the wall time goes, by stage.

Two fresh Python processes run the command, each timed after the imports and the loading of
the compiled kernels (as a user's ``covgap demo`` after set-up): one plain, for the total
wall and CPU time (CPU of all threads), one under cProfile, for the wall time spent inside
the library function that does each stage (cumulative: a stage's figure includes what it
calls; indented stages lie inside the one above; the profiler adds some overhead). The load
average is printed beside: on a loaded machine wall time grows and CPU time much less.

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
#: stage above them. A function called several times counts all its calls (the model runs
#: once per structure the cross-validation scores, then for the classification).
STAGES = [
    ("read inputs", "coverage/inputs.py", "load_inputs"),
    ("model structure by CV", "coverage/model/structure.py", "choose_structure"),
    ("model (all calls)", "coverage/model/predict.py", "predict_coverage"),
    ("fuse tests (all calls)", "coverage/model/fuse.py", "fuse_measurements"),
    ("classify villages", "coverage/classify/__init__.py", "classify_villages"),
    ("plan (all of it)", "coverage/plan/rollout.py", "plan_sites"),
    ("  candidates: generate", "coverage/plan/candidates.py", "generate_candidates"),
    ("  candidates: coverage", "coverage/plan/candidates.py", "candidate_cells"),
    ("  site costs", "coverage/plan/costs.py", "site_costs"),
    ("  greedy (and its search)", "coverage/plan/solvers.py", "greedy_select"),
    ("  MILP and LP bound (HiGHS)", "coverage/plan/solvers.py", "milp_select"),
    ("map (HTML): build", "coverage/maps/villages.py", "village_map"),
    ("map (HTML): save", "coverage/maps/save.py", "save_map"),
    ("tables (GPKG, CSV, XLSX)", "coverage/io/write.py", "write_table"),
]


def _run(*, profile: bool) -> tuple[float, float, pstats.Stats | None]:
    from coverage.cli import main

    out = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    argv = ["covgap", "-q", "demo", "-o", str(out), "--map", str(out / "map.html")]
    prof = cProfile.Profile() if profile else None
    saved, sys.argv = sys.argv, argv
    wall, cpu = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    try:
        main(standalone_mode=False)
    finally:
        if prof is not None:
            prof.disable()
        sys.argv = saved
    return (time.perf_counter() - wall, time.process_time() - cpu,
            pstats.Stats(prof) if prof is not None else None)


def _stage_times(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for label, suffix, fn in STAGES:
            if name == fn and path.replace(os.sep, "/").endswith(suffix):
                # the outermost call holds the cumulative time of nested ones
                found[label] = max(found.get(label, 0.0), cumulative)
    return found


def _child(mode: str) -> None:
    """One measured run in this (fresh) process; prints its figures as JSON."""
    import coverage  # noqa: F401  (imports are set-up, not the demo's time)
    from coverage import _compiled

    _compiled.kernels()  # numba and the cached compiled code loaded: set-up too
    wall, cpu, stats = _run(profile=mode == "profile")
    print(json.dumps({"wall": wall, "cpu": cpu,
                      "stages": _stage_times(stats) if stats is not None else {}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["plain", "profile"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    from coverage import _compiled

    kernels = _compiled.kernels()
    load0 = os.getloadavg()[0]
    print(f"load average {load0:.1f} on {os.cpu_count()} cores; compiled sweep: "
          f"{'numba' if kernels is not None else 'no (numpy)'}", flush=True)
    # each in a fresh process: the demo's run remembers its results in-process
    runs = {}
    for mode in ("plain", "profile"):
        out = subprocess.run([sys.executable, __file__, "--child", mode], check=True,
                             capture_output=True, text=True).stdout
        runs[mode] = json.loads(out.strip().splitlines()[-1])
    print(f"{'stage (profiled run)':<32} {'wall s':>8}")
    for label, _, _ in STAGES:
        if label in runs["profile"]["stages"]:
            print(f"{label:<32} {runs['profile']['stages'][label]:8.1f}")
    print(f"{'total, profiled run':<32} {runs['profile']['wall']:8.1f}")
    print(f"covgap demo, plain run: {runs['plain']['wall']:.1f} s wall, "
          f"{runs['plain']['cpu']:.1f} s CPU (load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
