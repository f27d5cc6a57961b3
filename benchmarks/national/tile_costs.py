"""Per-tile cost of the national model: CPU seconds of a sample of tiles, and what they add to.

Runs the tiles of :func:`coverage.model.predict_coverage_tiled` one after the other in this
process (one model thread), every ``--every``-th tile of the grid (a systematic sample:
mountain and coast, dense and empty tiles alike), and prints the CPU seconds per tile, the
transmitters each one sweeps (those whose useful radius reaches it, the halo), and the
estimates the sample gives for the whole grid:

- **all tiles, CPU**: the sample's mean times the number of tiles, and (steadier: a tile's
  cost follows the transmitters it sweeps, so a ratio estimate) the sample's CPU per
  transmitter swept times the transmitters every tile of the grid sweeps;
- **2 cores**: that CPU over 2 worker processes, plus the serial parts measured here
  (terrain grid, the tiles' placement is in the tile time);
- **N-worker cluster**: ``max(CPU / N, largest tile)`` plus the serial parts and the
  terrain grid's transfer to each worker (not measured here: stated as an assumption).

    PYTHONPATH=src python benchmarks/national/tile_costs.py /tmp/n16 --every 1
    PYTHONPATH=src python benchmarks/national/tile_costs.py /tmp/national --every 16 \\
        --tile-cells 512 --json costs.json
    PYTHONPATH=src python benchmarks/national/tile_costs.py /tmp/national \\
        --estimate-from costs.json     # the estimates again, without timing

The input is ``generate.py --dem``'s. Results are those of the tiled run (the tests check
the tiles against the untiled model); only the time is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from coverage import io
from coverage.model import tiles
from coverage.model.terrain import terrain_grid
from coverage.model.transmitters import prepare_transmitters, within_reach
from coverage.params import ModelParams
from coverage.pipeline import analysis_grid, select_towers


def halo_counts(window, grid, reach) -> int:
    """Transmitters whose useful radius reaches the tile (what the tile sweeps)."""
    left, bottom, right, top = tiles._tile_grid(grid, window).bounds
    gap = np.hypot(np.maximum(np.maximum(left - reach.x, reach.x - right), 0.0),
                   np.maximum(np.maximum(bottom - reach.y, reach.y - top), 0.0))
    return int((gap <= reach.reach_m).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--resolution-m", type=float, default=100.0)
    ap.add_argument("--tile-cells", type=int, default=256)
    ap.add_argument("--every", type=int, default=1, help="time every k-th tile")
    ap.add_argument("--cluster-workers", type=int, default=32)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--estimate-from", type=Path,
                    help="a --json of an earlier run: its timed tiles, no new timing")
    args = ap.parse_args()
    d = args.data
    params = ModelParams(resolution_m=args.resolution_m, terrain=True, workers=1)
    villages = io.read_villages(d / "villages.parquet")
    towers = io.read_towers(d / "sites.csv")
    dem = io.read_raster(d / "dem.tif")
    grid = analysis_grid(villages, params)
    active = select_towers(towers, villages, params)
    cpu = time.process_time()
    all_tx = prepare_transmitters(active, grid.crs, params)
    tx = within_reach(all_tx, grid, params)
    terrain = terrain_grid(dem, grid, tx, params.terrain_step_m)
    reach = tiles._reach(all_tx, params)[["x", "y", "reach_m"]]
    serial = time.process_time() - cpu
    windows = tiles.tile_windows(grid, args.tile_cells)
    plain = active.reset_index(drop=True)
    from coverage import _compiled

    compiled = _compiled.kernels() is not None
    print(f"grid {grid.shape[0]} x {grid.shape[1]} at {args.resolution_m:g} m, terrain "
          f"{terrain[0].shape[0]} x {terrain[0].shape[1]}, {len(tx):,} transmitters, "
          f"{len(windows)} tiles of {args.tile_cells}, timing every {args.every}; compiled "
          f"sweep {compiled}; serial part {serial:.1f} s CPU; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    halo = np.array([halo_counts(w, grid, reach) for w in windows])
    rows = json.loads(args.estimate_from.read_text())["rows"] if args.estimate_from else []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for k, window in enumerate([] if rows else windows[::args.every]):
        t = time.process_time()
        tiles._predict_tile(window, towers=plain, reach=reach, grid=grid, terrain=terrain,
                            params=params)
        rows.append({"window": window, "transmitters": halo_counts(window, grid, reach),
                     "cpu_s": round(time.process_time() - t, 3)})
        if k % 20 == 0:
            print(f"  tile {k * args.every}/{len(windows)}: {rows[-1]}", flush=True)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cost = np.array([r["cpu_s"] for r in rows])
    total = float(cost.mean() * len(windows))
    swept = np.array([r["transmitters"] for r in rows])
    by_ratio = float(cost.sum() / max(swept.sum(), 1) * halo.sum())
    busy = cost[[r["transmitters"] > 0 for r in rows]]
    out = {"grid": list(grid.shape), "tile_cells": args.tile_cells, "tiles": len(windows),
           "timed": len(rows), "transmitters": len(tx), "compiled": compiled,
           "serial_cpu_s": round(serial, 1), "timed_cpu_s": round(float(cost.sum()), 1),
           # of which system time, and the page faults (glibc's malloc settings show here)
           "timed_system_s": round(after.ru_stime - before.ru_stime, 2),
           "timed_page_faults": after.ru_minflt - before.ru_minflt,
           "mean_tile_cpu_s": round(float(cost.mean()), 3),
           "mean_busy_tile_cpu_s": round(float(busy.mean()), 3) if busy.size else 0.0,
           "max_tile_cpu_s": round(float(cost.max()), 2),
           "all_tiles_cpu_s": round(total, 1),
           "all_tiles_cpu_s_standard_error": round(float(cost.std(ddof=1) / np.sqrt(cost.size)
                                                         * len(windows)), 1),
           "cpu_ms_per_transmitter_swept": round(1000 * cost.sum() / max(swept.sum(), 1), 3),
           "transmitters_swept_all_tiles": int(halo.sum()),
           "all_tiles_cpu_s_by_ratio": round(by_ratio, 1),
           "two_cores_wall_s": round(serial + by_ratio / 2, 1),
           "cluster_wall_s": round(serial + max(by_ratio / args.cluster_workers, cost.max()),
                                   1),
           "cluster_workers": args.cluster_workers,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "load": round(os.getloadavg()[0], 1)}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**out, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
