"""Peak memory of an operator's dBm coverage raster put on the model grid (claimed cells).

Builds a large synthetic dBm raster in memory (float32, EPSG:4326, 3 arc-seconds, as
operators and planning tools export them), a model grid over the same area (its UTM zone,
100 m cells), and runs :func:`coverage.classify.claims.claimed_layers` on it, as a
classification with ``--coverage OPERATOR_4G.tif`` does. Prints the raster's and the grid's
sizes, the CPU seconds, the peak of NumPy's allocations (``tracemalloc``) and the growth of
the process's peak resident memory (``ru_maxrss``) over what the raster itself holds.

The peak is what the comparison is about, not the time: run it on another revision with
``PYTHONPATH=OTHER/src`` to compare (``git archive REV src | tar -x -C OTHER``).

Usage: PYTHONPATH=src python benchmarks/bench_claims.py [--side 6000] [--resolution-m 100]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from rasterio.transform import from_origin

from coverage.classify.claims import claimed_layers
from coverage.io import CoverageMaps, Raster
from coverage.model import Grid
from coverage.params import get_profile

#: 3 arc-seconds, about 90 m: SRTM's and many planning tools' export grid.
CELL_DEG = 1 / 1200


def synthetic_raster(side: int, seed: int = 0) -> Raster:
    """A ``side`` x ``side`` float32 raster of levels, -130..-70 dBm, 5% nodata.

    Made by blocks of rows, so that making it does not raise the process's peak memory
    above the raster's own.
    """
    rng = np.random.default_rng(seed)
    level = np.empty((side, side), dtype="float32")
    trend = np.linspace(-130, -70, side, dtype="float32")
    for start in range(0, side, 256):
        block = level[start:start + 256]
        block[:] = trend[start:start + 256, None] + 6 * rng.standard_normal(
            block.shape, dtype=np.float32)
        block[rng.random(block.shape, dtype=np.float32) < 0.05] = np.nan
    return Raster(level, from_origin(104.0, 22.0, CELL_DEG, CELL_DEG), CRS.from_epsg(4326))


def model_grid(raster: Raster, resolution_m: float) -> Grid:
    """The grid over the raster's area, in its UTM zone (as the villages' grid would be)."""
    left, bottom, right, top = raster.bounds
    area = gpd.GeoSeries.from_xy([left, right], [bottom, top], crs=raster.crs)
    crs = area.estimate_utm_crs()
    return Grid.covering(tuple(area.to_crs(crs).total_bounds), resolution_m, crs)


def rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Print the figures of one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6000,
                        help="Raster cells per side (6000: 36 million cells, 144 MB).")
    parser.add_argument("--resolution-m", type=float, default=100.0)
    args = parser.parse_args()

    raster = synthetic_raster(args.side)
    grid = model_grid(raster, args.resolution_m)
    maps = CoverageMaps(gpd.GeoDataFrame({"operator": pd.Series(dtype=object),
                                          "tech": pd.Series(dtype=object)},
                                         geometry=gpd.GeoSeries([], crs=4326), crs=4326),
                        (("Viettel", "4G", raster),), ())
    profile = get_profile("vn-2025")
    base = rss_mb()
    tracemalloc.start()
    cpu = time.process_time()
    layers = claimed_layers(maps, grid, profile)
    cpu = time.process_time() - cpu
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    claimed = layers["Viettel"]
    print(f"raster: {raster.shape[0]:,} x {raster.shape[1]:,} float32 "
          f"({raster.array.nbytes / 2**20:,.0f} MB); grid: {grid.shape[0]:,} x "
          f"{grid.shape[1]:,} cells at {args.resolution_m:g} m ({grid.crs.to_string()})")
    print(f"claimed cells: {int(claimed.sum()):,} of {claimed.size:,} ({claimed.dtype})")
    print(f"CPU {cpu:.1f} s; peak of NumPy allocations {traced:,.0f} MB; peak resident "
          f"memory grew by {rss_mb() - base:,.0f} MB over the {base:,.0f} MB before")


if __name__ == "__main__":
    main()
