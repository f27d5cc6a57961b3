"""The terrain the model's profiles sample: the DEM on a grid aligned with the analysis grid.

:func:`terrain_grid` puts the DEM (elevations in metres, any CRS) on a grid in the analysis
grid's metric CRS, at the terrain's step, extended to hold every transmitter; its voids are
filled from the terrain around them (up to :data:`DEM_FILL_M`) and the part of the area it
leaves uncovered is named. :func:`ground_on_grid`, :func:`ground_at_cells` and
:func:`ground_at` read ground heights (metres) from it, bilinear between cell centres;
:func:`float32_terrain` keeps one float32 copy per terrain grid for the rays' samples, and
:func:`held_ground` is the ground a :class:`coverage.model.CoverageSurfaces` keeps.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref

import numpy as np
import pandas as pd
from pyproj import Transformer
from rasterio.transform import from_origin

from ..io import Raster
from .grid import Grid, to_grid

__all__ = ["DEM_FILL_M", "float32_terrain", "ground_at", "ground_at_cells", "ground_on_grid",
           "held_ground", "release_float32_terrain", "terrain_grid"]

log = logging.getLogger(__name__)

#: How far from the DEM's data a void or nodata cell is interpolated, metres; SRTM's voids
#: (steep slopes, radar shadow) are mostly under a kilometre across.
DEM_FILL_M = 3_000.0


def terrain_grid(dem: Raster, grid: Grid, tx: pd.DataFrame,
                 resolution_m: float | None = None) -> tuple[np.ndarray, Grid]:
    """The DEM on a grid aligned with ``grid`` and extended to hold every transmitter.

    Profiles from sites outside the analysis grid need the terrain between them and the
    grid. ``resolution_m`` (default the grid's; ``ModelParams.terrain_step_m``) is a whole
    fraction of the grid's cell size, so every analysis cell holds whole terrain cells.
    Gaps are filled by :func:`_fill_dem_gaps`. Returns (heights, terrain grid).
    """
    res = grid.resolution_m
    step = resolution_m or res
    factor = round(res / step)
    left, bottom, right, top = grid.bounds
    if len(tx):
        left = min(left, float(tx.x.min()) - res)
        right = max(right, float(tx.x.max()) + res)
        bottom = min(bottom, float(tx.y.min()) - res)
        top = max(top, float(tx.y.max()) + res)
    # keep the cell edges of the analysis grid
    left = grid.transform.c - math.ceil((grid.transform.c - left) / res) * res
    top = grid.transform.f + math.ceil((top - grid.transform.f) / res) * res
    cols = math.ceil((right - left) / res) * factor
    rows = math.ceil((top - bottom) / res) * factor
    tgrid = Grid(from_origin(left, top, res / factor, res / factor), (rows, cols), grid.crs)
    native = dem.cell_size_m
    if native <= step / 2:
        log.info("the DEM's cells (about %.0f m) are finer than the terrain the profiles "
                 "sample (%.0f m): terrain_resolution_m = %g would keep the ridges the "
                 "averaging smooths away", native, step,
                 res / min(math.floor(res / native), 4))
    heights = to_grid(dem, tgrid)
    return _fill_dem_gaps(heights, tgrid, grid), tgrid


def _fill_dem_gaps(heights: np.ndarray, tgrid: Grid, grid: Grid) -> np.ndarray:
    """The terrain grid with its gaps filled, and a warning where the DEM leaves the area.

    Voids (SRTM's -32768 in steep terrain, nodata) are interpolated from the terrain around
    them (GDAL's inverse-distance fill, :func:`rasterio.fill.fillnodata`) up to
    :data:`DEM_FILL_M` from the data; a filled void keeps the ridge or valley it lies in,
    where the mean elevation of the whole DEM would put a pit or a plateau that cuts or
    opens every profile across it (inverse-distance weights: a void wider along a crest
    than the valleys are far on each side still loses part of the crest; void-filled
    products such as NASADEM or Copernicus GLO-30 avoid the question). Farther out
    (outside the DEM's tiles) the ground is flat at the DEM's mean elevation, with a warning
    naming the share of the analysis area concerned and the 1-degree tiles it lies in, so
    they can be added. A DEM of tiles that all lie elsewhere leaves the ground flat (at 0 m:
    only differences of height enter the model), with the same warning. A run predicts
    more than once (each candidate structure on the tests, then the grid, then the plan's
    candidates), each logging it and the voids it filled: the records carry ``once =
    "dem-coverage"`` and ``"dem-voids"``, by which the command line shows the first alone.
    """
    missing = np.isnan(heights)
    if not missing.any():
        return heights
    if missing.all():  # nothing to fill from, no mean to take
        out, far, ground = np.zeros_like(heights), missing, "flat (the DEM lies elsewhere)"
    else:
        from rasterio.fill import fillnodata  # GDAL's fill: imported only when needed

        # GDAL leaves the cells out of the search distance as they are: NaN
        out = fillnodata(heights.astype("float32"), mask=(~missing).astype("uint8"),
                         max_search_distance=max(DEM_FILL_M / tgrid.resolution_m, 1.0))
        out = np.where(missing, out.astype(heights.dtype), heights)
        far = np.isnan(out)
        log.info("DEM: %d void or nodata cell(s) filled from the terrain around them",
                 int((missing & ~far).sum()), extra={"once": "dem-voids"})
        mean = float(np.nanmean(heights))
        out[far] = mean
        ground = f"flat at the DEM's mean elevation, {mean:.0f} m,"
    if far.any():
        inside, window = _window(far, tgrid, grid)
        if inside.any():
            log.warning(
                "the DEM does not cover %.1f%% of the analysis area: there the ground is "
                "taken as %s and no hill shadows the signal; add the 1-degree tiles %s (SRTM "
                ".hgt or Copernicus GLO-30 names) to model its terrain (--dem is repeatable, a "
                "run file's dem takes a list: tiles side by side are mosaicked)",
                100.0 * inside.mean(), ground, ", ".join(_missing_tiles(inside, window)),
                extra={"once": "dem-coverage"})  # the CLI says it once per command
    return out


def _missing_tiles(missing: np.ndarray, grid: Grid, *, limit: int = 12) -> list[str]:
    """SRTM-style names (``N22E105``) of the 1-degree tiles holding ``missing`` cells."""
    rows, cols = np.nonzero(missing)
    step = max(1, len(rows) // 200_000)  # a sample is enough to name the tiles
    rows, cols = rows[::step], cols[::step]
    x = grid.transform.c + (cols + 0.5) * grid.resolution_m
    y = grid.transform.f - (rows + 0.5) * grid.resolution_m
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    tiles = sorted({(int(a), int(o)) for a, o in zip(np.floor(lat), np.floor(lon), strict=True)})
    names = [f"{'N' if a >= 0 else 'S'}{abs(a):02d}{'E' if o >= 0 else 'W'}{abs(o):03d}"
             for a, o in tiles]
    return names if len(names) <= limit else [*names[:limit], f"and {len(names) - limit} more"]


def _window(values: np.ndarray, tgrid: Grid, grid: Grid) -> tuple[np.ndarray, Grid]:
    """The part of a terrain-grid array that covers ``grid``, and that part's grid."""
    step = tgrid.resolution_m
    factor = round(grid.resolution_m / step)
    r0 = round((tgrid.transform.f - grid.transform.f) / step)
    c0 = round((grid.transform.c - tgrid.transform.c) / step)
    shape = (grid.shape[0] * factor, grid.shape[1] * factor)
    return (values[r0:r0 + shape[0], c0:c0 + shape[1]],
            Grid(from_origin(grid.transform.c, grid.transform.f, step, step), shape, grid.crs))


def held_ground(ground: np.ndarray | None) -> np.ndarray | None:
    """The ground heights a :class:`CoverageSurfaces` keeps (``.dem``), float32, metres.

    The model computes with the float64 heights; what it keeps is read only by the
    explanations' line-of-sight test (:func:`coverage.classify.explain.nearest_sites`),
    for which float32 (a tenth of a millimetre at 2,500 m) is plenty, and a national grid
    at 100 m holds 0.5 GB less.
    """
    return None if ground is None else ground.astype(np.float32)


def ground_on_grid(heights: np.ndarray, tgrid: Grid, grid: Grid) -> np.ndarray:
    """The ground height at each cell of ``grid``, metres.

    On a terrain grid of the same cell size, its cells; on a finer one, the terrain at
    each cell's centre (bilinear, as the profiles sample it: the receiver then stands on
    the ground its profile ends on), by blocks of rows to bound the memory.
    """
    if round(grid.resolution_m / tgrid.resolution_m) == 1:
        return _window(heights, tgrid, grid)[0]
    out = np.empty(grid.shape, dtype=heights.dtype)
    for start in range(0, grid.shape[0], 256):
        rows = slice(start, min(start + 256, grid.shape[0]))
        x, y = grid.centres(rows)
        out[rows] = ground_at(heights, tgrid, x.ravel(), y.ravel()).reshape(x.shape)
    return out


def ground_at_cells(heights: np.ndarray, tgrid: Grid, grid: Grid, flat: np.ndarray
                    ) -> np.ndarray:
    """``ground_on_grid(heights, tgrid, grid).ravel()[flat]`` without the whole grid, metres."""
    flat = np.asarray(flat, np.int64)
    rows, cols = np.divmod(flat, grid.shape[1])
    step = tgrid.resolution_m
    if round(grid.resolution_m / step) == 1:
        r0 = round((tgrid.transform.f - grid.transform.f) / step)
        c0 = round((grid.transform.c - tgrid.transform.c) / step)
        return heights[rows + r0, cols + c0]
    # the same centres as Grid.centres, to the bit
    x = grid.transform.c + (cols + 0.5) * grid.transform.a
    y = grid.transform.f + (rows + 0.5) * grid.transform.e
    return ground_at(heights, tgrid, x, y)


def ground_at(heights: np.ndarray, tgrid: Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Heights of the terrain grid at map points, bilinear between cell centres.

    Bilinear, not nearest-cell: on a steady slope a nearest-cell profile is a staircase
    whose steps, seen from a receiver on the slope, act as knife edges.
    """
    res = tgrid.resolution_m
    rows, cols = tgrid.shape
    fc = (x - tgrid.transform.c) / res - 0.5
    fr = (tgrid.transform.f - y) / res - 0.5
    np.clip(fc, 0.0, cols - 1.000001, out=fc)
    np.clip(fr, 0.0, rows - 1.000001, out=fr)
    c0 = fc.astype(np.int32)
    r0 = fr.astype(np.int32)
    fc -= c0
    fr -= r0
    wc, wr = fc, fr
    flat = heights.ravel()
    i = r0.astype(np.int64) * cols + c0
    del r0, c0
    top = flat[i]
    top += (flat[np.minimum(i + 1, flat.size - 1)] - top) * wc
    i += cols
    np.minimum(i, flat.size - 1, out=i)
    bottom = flat[i]
    bottom += (flat[np.minimum(i + 1, flat.size - 1)] - bottom) * wc
    top += (bottom - top) * wr
    return top


#: The last terrain grid's float32 copy: (weak reference to the grid, copy).
_TERRAIN32: list = []

_TERRAIN32_LOCK = threading.Lock()


def float32_terrain(heights: np.ndarray) -> np.ndarray:
    """``heights`` as float32 for the rays' samples, converted once per terrain grid.

    The tiles of one run share one terrain grid, often of the whole country (10^8 cells):
    each tile converting it again cost a copy of it per tile in time and memory. The copy
    is kept while the grid lives (a weak reference), for the next tile of the same grid.
    """
    if heights.dtype == np.float32:
        return heights
    with _TERRAIN32_LOCK:
        if _TERRAIN32 and _TERRAIN32[0]() is heights:
            return _TERRAIN32[1]
        out = heights.astype("float32")
        try:
            ref = weakref.ref(heights, lambda _: _TERRAIN32.clear())
        except TypeError:  # an array without weak references (a view of a buffer)
            return out
        _TERRAIN32[:] = [ref, out]
        return out


def release_float32_terrain(heights: np.ndarray | None) -> None:
    """Drop the float32 copy of ``heights`` kept by :func:`float32_terrain`, if it is kept.

    For the caller that made the terrain grid and is done with its rays, while the grid
    itself lives on (the surfaces' ground is a view of it).
    """
    with _TERRAIN32_LOCK:
        if heights is not None and _TERRAIN32 and _TERRAIN32[0]() is heights:
            _TERRAIN32.clear()
