"""Classification at national scale: time and peak memory, and the naive approach's time.

Generates (in memory, seeded) 100,000 villages, a 100 m population raster over their area,
three operators' coverage surfaces and 10 million tests
(:func:`coverage.datasets.national.national_input`), then classifies every village given the
coverage surfaces (measurement location, calibration, fusion, population weighting, rules,
confidence, explanations) and prints the time, the peak resident memory of the process
(``resource.getrusage``: an upper bound, since it includes the generator's own peak) and the
resident memory before classification. The naive approach (fixed radius per technology) is
timed on the same villages and population.

    PYTHONPATH=src python benchmarks/bench_classify.py [--villages 100000] [--tests 10000000]
        [--zonal auto|exact|fast] [--profile] [--where-peak]

``--where-peak`` samples the resident memory every 20 ms during the classification and
prints the library frames the main thread was in when it last rose to its peak.

Target (issue #5): under 60 s and 8 GB on two cores. Report with ``uptime`` (shared machine).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import resource
import sys
import threading
import time
import traceback

import numpy as np

from coverage.classify import classify_naive, classify_villages
from coverage.datasets.national import national_input


def rss_gb() -> float:
    """Current resident memory, GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def peak_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def reset_peak() -> bool:
    """Reset the peak to the current resident memory (Linux 4.0+), so the peak printed after
    the classification is the classification's and not the generator's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_s() -> float:
    """CPU time of this process so far (user + system), seconds: less sensitive to the load
    of a shared machine than the wall clock."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class PeakSampler:
    """Samples the resident memory every 20 ms; keeps the main thread's innermost library
    frames (``coverage`` modules) when it last rose to its peak."""

    def __init__(self) -> None:
        self.peak, self.where = 0.0, ""
        self._main = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = rss_gb() * 2**30
            if rss > self.peak:
                self.peak = rss
                frame = sys._current_frames().get(self._main)
                stack = [f for f in traceback.extract_stack(frame) if "/coverage/" in f.filename]
                self.where = " < ".join(f"{os.path.basename(f.filename)[:-3]}.{f.name}:"
                                        f"{f.lineno}" for f in reversed(stack[-5:]))

    def stop(self) -> float:
        """Stop sampling; the peak, bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--villages", type=int, default=100_000)
    ap.add_argument("--tests", type=int, default=10_000_000)
    ap.add_argument("--zonal", default="auto", choices=["auto", "exact", "fast"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="print the 25 costliest calls")
    ap.add_argument("--where-peak", action="store_true",
                    help="print where the classification's resident memory peaked")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs visible", flush=True)
    t0 = time.perf_counter()
    data = national_input(args.villages, args.tests, seed=args.seed)
    print(f"generated {len(data.villages):,} villages, {data.grid.shape[0]:,}x"
          f"{data.grid.shape[1]:,} cells of {data.grid.resolution_m:g} m, "
          f"{len(data.surfaces.layers)} coverage layers, {len(data.towers):,} transmitters, "
          f"{len(data.measurements):,} tests in {time.perf_counter() - t0:.1f} s; "
          f"resident {rss_gb():.2f} GB", flush=True)
    before = rss_gb()
    if not reset_peak():
        print("(could not reset the peak: it includes the generator's)")

    def full():
        return classify_villages(data.villages, data.surfaces, measurements=data.measurements,
                                 population=data.population, towers=data.towers,
                                 zonal=args.zonal)

    prof = cProfile.Profile() if args.profile else None
    sampler = PeakSampler() if args.where_peak else None
    c0 = cpu_s()
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    out = full()
    if prof:
        prof.disable()
    seconds = time.perf_counter() - t0
    if sampler:
        print(f"sampled peak {sampler.stop() / 2**30:.2f} GB at {sampler.where}", flush=True)
    cpu = cpu_s() - c0
    counts = out["class"].value_counts().to_dict()
    print(f"full classification: {seconds:.1f} s wall, {cpu:.1f} s CPU for {len(out):,} villages "
          f"({1e6 * seconds / len(out):.0f} us/village); peak resident {peak_gb():.2f} GB "
          f"(resident before {before:.2f} GB); classes {counts}; "
          f"{(out['evidence'] == 'measured').mean():.1%} decided by tests; "
          f"median {np.median(out['n_tests']):.0f} tests/village", flush=True)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    del out
    reset_peak()
    c0 = cpu_s()
    t0 = time.perf_counter()
    naive = classify_naive(data.villages, data.towers, data.grid, population=data.population)
    seconds = time.perf_counter() - t0
    print(f"naive (fixed radius) classification: {seconds:.1f} s wall, {cpu_s() - c0:.1f} s "
          "CPU; classes "
          f"{naive['class'].value_counts().to_dict()}; peak resident {peak_gb():.2f} GB",
          flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
