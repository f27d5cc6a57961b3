"""``covgap demo`` end to end: wall and CPU time, and where the time goes, by stage.

Two fresh Python processes run the command, each timed after the imports and the loading of
the compiled kernels (as a user's ``covgap demo`` after set-up): one plain, for the total
wall and CPU time (CPU of all threads and of the forked workers), one under cProfile, for
the time spent inside the library function that does each stage (cumulative: a stage's
figure includes what it calls; indented stages lie inside the one above; the profiler adds
some overhead). The stages are timed in CPU seconds by default (this process's threads and
its forked workers, counted when they are reaped), which a loaded machine inflates much
less than wall time; ``--clock wall`` times them in wall seconds (on a quiet machine). The
load average is printed beside.

    PYTHONPATH=src python benchmarks/bench_demo.py            # compiled sweep if installed
    PYTHONPATH=src python benchmarks/bench_demo.py --clock wall
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


def _cpu() -> float:
    """CPU seconds of this process's threads and of its reaped children (forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _run(*, profile: bool, clock: str = "cpu") -> tuple[float, float, pstats.Stats | None]:
    from coverage.cli import main

    out = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    argv = ["covgap", "-q", "demo", "-o", str(out), "--map", str(out / "map.html")]
    timer = _cpu if clock == "cpu" else time.perf_counter
    prof = cProfile.Profile(timer) if profile else None
    saved, sys.argv = sys.argv, argv
    wall, cpu = time.perf_counter(), _cpu()
    if prof is not None:
        prof.enable()
    try:
        main(standalone_mode=False)
    finally:
        if prof is not None:
            prof.disable()
        sys.argv = saved
    return (time.perf_counter() - wall, _cpu() - cpu,
            pstats.Stats(prof) if prof is not None else None)


def _stage_times(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for label, suffix, fn in STAGES:
            if name == fn and path.replace(os.sep, "/").endswith(suffix):
                # the outermost call holds the cumulative time of nested ones
                found[label] = max(found.get(label, 0.0), cumulative)
    return found


def _child(mode: str, clock: str) -> None:
    """One measured run in this (fresh) process; prints its figures as JSON."""
    import coverage  # noqa: F401  (imports are set-up, not the demo's time)
    from coverage import _compiled

    _compiled.kernels()  # numba and the cached compiled code loaded: set-up too
    wall, cpu, stats = _run(profile=mode == "profile", clock=clock)
    print(json.dumps({"wall": wall, "cpu": cpu,
                      "stages": _stage_times(stats) if stats is not None else {}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["plain", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="what the stages are timed in (default: CPU seconds)")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.clock)
        return
    from coverage import _compiled

    kernels = _compiled.kernels()
    load0 = os.getloadavg()[0]
    print(f"load average {load0:.1f} on {os.cpu_count()} cores; compiled sweep: "
          f"{'numba' if kernels is not None else 'no (numpy)'}", flush=True)
    # each in a fresh process: the demo's run remembers its results in-process
    runs = {}
    for mode in ("plain", "profile"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--clock", args.clock],
                             check=True, capture_output=True, text=True).stdout
        runs[mode] = json.loads(out.strip().splitlines()[-1])
    print(f"{'stage (profiled run)':<32} {args.clock + ' s':>8}")
    for label, _, _ in STAGES:
        if label in runs["profile"]["stages"]:
            print(f"{label:<32} {runs['profile']['stages'][label]:8.1f}")
    total = runs["profile"]["cpu" if args.clock == "cpu" else "wall"]
    print(f"{'total, profiled run':<32} {total:8.1f}")
    print(f"covgap demo, plain run: {runs['plain']['wall']:.1f} s wall, "
          f"{runs['plain']['cpu']:.1f} s CPU (load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
