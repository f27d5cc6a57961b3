"""The model tile by tile: the grid cut into square tiles, each run through an engine.

Each tile is predicted from the transmitters whose useful radius reaches it (the halo: a
site up to its useful radius outside the tile still lights it), over the same terrain grid
an untiled run uses, and the tiles are put back in place. Tiles do not overlap, so "merge by
max" is a placement, and every cell gets the value an untiled
:func:`coverage.model.predict_coverage` gives it (the tests check equality). Where the tiles
run is the engine's business (:class:`coverage.engine.Engine`): one code path for this
process, forked workers or a Dask cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from .._compiled import kernels
from ..engine import Engine
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid
from .predict import predict_coverage, warm_compiled_sweep
from .terrain import ground_on_grid, held_ground, release_float32_terrain, terrain_grid
from .transmitters import prepare_transmitters, transmitter_radii_m, within_reach

__all__ = ["predict_coverage_tiled", "tile_windows"]

log = logging.getLogger(__name__)

def tile_windows(grid: Grid, tile_cells: int) -> list[tuple[int, int, int, int]]:
    """``(row0, row1, col0, col1)`` of square tiles covering ``grid`` (the last ones smaller)."""
    rows, cols = grid.shape
    return [(r, min(r + tile_cells, rows), c, min(c + tile_cells, cols))
            for r in range(0, rows, tile_cells) for c in range(0, cols, tile_cells)]


def _tile_grid(grid: Grid, window: tuple[int, int, int, int]) -> Grid:
    r0, r1, c0, c1 = window
    res = grid.resolution_m
    return Grid(from_origin(grid.transform.c + c0 * res, grid.transform.f - r0 * res, res,
                            res), (r1 - r0, c1 - c0), grid.crs)


def _reach(tx: pd.DataFrame, params: ModelParams, *, flat: bool = False) -> pd.DataFrame:
    """Radius per transmitter and the largest at its position (the halo it needs).

    ``flat`` (no DEM): the exact radius of :func:`coverage.model.transmitters.reach_radii_m`,
    as :func:`coverage.model.predict_coverage` uses without a DEM.
    """
    out = tx.assign(radius_m=transmitter_radii_m(tx, params, flat=flat))
    pos = out.groupby([out.x.round(1), out.y.round(1)], sort=False)["radius_m"]
    out["reach_m"] = pos.transform("max").to_numpy()
    return out


def _predict_tile(window: tuple[int, int, int, int], *, towers: gpd.GeoDataFrame,
                  reach: pd.DataFrame, grid: Grid, terrain: tuple[np.ndarray, Grid] | None,
                  params: ModelParams, clutter: Clutter | None = None
                  ) -> tuple[tuple[int, int, int, int], CoverageSurfaces]:
    if terrain is not None:
        # The compiled sweep's first import hides this package from sys.modules for a
        # moment (coverage._compiled): done before this worker's first result is sent, so
        # that no result is pickled while the package's modules cannot be imported.
        kernels()
    tile = _tile_grid(grid, window)
    left, bottom, right, top = tile.bounds
    gap = np.hypot(np.maximum(np.maximum(left - reach.x, reach.x - right), 0.0),
                   np.maximum(np.maximum(bottom - reach.y, reach.y - top), 0.0))
    near = (gap <= reach.reach_m).to_numpy()
    surfaces = predict_coverage(towers.iloc[np.flatnonzero(near)], tile, params=params,
                        terrain=terrain, clutter=clutter)
    surfaces.dem = None  # the caller has the whole grid's
    return window, surfaces


def predict_coverage_tiled(
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    dem: Raster | None = None,
    params: ModelParams | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    clutter: Clutter | None = None,
) -> CoverageSurfaces:
    """:func:`coverage.model.predict_coverage`, tile by tile on an engine.

    Each tile of ``engine.tile_cells`` cells is predicted from the transmitters whose
    useful radius reaches it (all the transmitters of a mast position go together, so a
    mast is swept with the same rays as in an untiled run), over the terrain grid of the
    whole run; results are equal to the untiled function's cell for cell (where two
    transmitters give the same level to the bit, the nearer one's distance is kept).

    Parameters
    ----------
    towers, grid, dem, params, progress, clutter
        As for :func:`coverage.model.predict_coverage` (``progress`` counts tiles).
    engine : Engine, optional
        Where the tiles run (local by default).

    Returns
    -------
    CoverageSurfaces
        The whole grid's layers and server distances.
    """
    params = params or ModelParams()
    engine = engine or Engine()
    windows = tile_windows(grid, engine.tile_cells)
    if engine.is_local and len(windows) == 1:  # one tile: the model itself, masts counted
        return predict_coverage(towers, grid, dem=dem, params=params, progress=progress,
                        clutter=clutter)
    flat = dem is None
    all_tx = prepare_transmitters(towers, grid.crs, params)
    tx = within_reach(all_tx, grid, params, flat=flat)
    terrain = terrain_grid(dem, grid, tx, params.terrain_step_m) if dem is not None else None
    out = CoverageSurfaces(grid, params=params)
    if tx.empty:
        out.dem = held_ground(ground_on_grid(*terrain, grid) if terrain is not None else None)
        return out
    # the rows of ``towers`` that are transmitters reaching the grid, with their reach
    reach = _reach(all_tx, params, flat=flat)
    log.info("modelling %d tiles of up to %d x %d cells on the %s engine", len(windows),
             engine.tile_cells, engine.tile_cells, engine.kind)
    plain = towers.reset_index(drop=True)
    shared = {"towers": plain, "reach": reach[["x", "y", "reach_m"]], "grid": grid,
              "terrain": terrain, "params": params, "clutter": clutter}
    if terrain is not None:
        warm_compiled_sweep()  # once in this process, not once in each forked worker
    # each tile is placed as it comes and dropped: only the whole grid's layers stay held
    results = engine.imap(_predict_tile, windows, **shared)
    for done, (window, part) in enumerate(results, start=1):
        r0, r1, c0, c1 = window
        for key, layer in part.layers.items():
            level, far = out.layer_arrays(key)
            level[r0:r1, c0:c1] = layer
            far[r0:r1, c0:c1] = part.distance_m[key]
        if progress is not None:
            progress(done, len(windows))
    if terrain is not None:  # the tiles run here kept a float32 copy for their rays
        release_float32_terrain(terrain[0])
        out.dem = held_ground(ground_on_grid(*terrain, grid))
    return out
