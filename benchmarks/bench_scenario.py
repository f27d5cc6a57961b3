"""What the scenario caches buy: a study of several scenarios against the same runs cold.

Run: ``PYTHONPATH=src python benchmarks/bench_scenario.py [--scale 0.4] [--resolution 200]``.
Prints the time of the first scenario (reads inputs, models coverage, classifies, plans),
of each further scenario of a study on the same inputs (cached inputs and surfaces), and of
the same further scenarios with the caches cleared before each one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from coverage.datasets import generate_demo
from coverage.scenario import Scenario, clear_cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=0.4)
    ap.add_argument("--resolution", type=float, default=200.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    paths = generate_demo(Path(tempfile.mkdtemp()) / "demo", scale=args.scale)
    base = Scenario.demo(name="base", paths=paths, budget=20e9,
                         model={"resolution_m": args.resolution})
    variants = [
        base.replace(name="10 Mbps", profile={"min_download_mbps": 10.0}),
        base.replace(name="towers only", plan={"small_cells": False,
                                               "satellite_terminals": False}),
        base.replace(name="no sharing", sharing=False),
        base.replace(name="40 bn", budget=40e9),
    ]
    print(f"demo scale {args.scale}, {len(base.load().villages)} villages, "
          f"{args.resolution:g} m grid; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    clear_cache()
    t = time.perf_counter()
    base.plan()
    print(f"{'first scenario (cold)':<28}{time.perf_counter() - t:8.1f} s")
    warm_total = cold_total = 0.0
    for s in variants:
        t = time.perf_counter()
        s.plan()
        warm = time.perf_counter() - t
        clear_cache()
        t = time.perf_counter()
        s.plan()
        cold = time.perf_counter() - t
        base.plan()  # warm the caches again for the next variant
        warm_total += warm
        cold_total += cold
        print(f"{s.name:<28}{warm:8.1f} s cached  {cold:8.1f} s cold")
    print(f"{'variants in total':<28}{warm_total:8.1f} s cached  {cold_total:8.1f} s cold")


if __name__ == "__main__":
    main()
