r"""Coverage prediction from sites: link budget, path loss, terrain diffraction, sectors.

For each transmitter (a sector or an omni antenna) the received level at a grid cell is

.. math::

    P_{rx} = \mathrm{EIRP} + G(\theta) - L_{Hata}(d, f, h_b) - L_{clutter} - L_{diff}

with :math:`G` the 3GPP sector pattern (:func:`coverage.radio.sector_gain_db`),
:math:`L_{Hata}` Okumura-Hata / COST-231 Hata (:func:`coverage.radio.hata_loss_db`, never
below free space) with :math:`h_b` the mast's height above its ground
(``ModelParams.hata_height = "mast"``; ``"above_receiver"`` takes
:math:`\mathrm{clip}(z_{site} + h_{mast} - z_{cell}, h_{mast}, 300)` instead, and
``"effective"`` Okumura's effective height, :math:`z_{site} + h_{mast}` above the mean
ground of the profile 3-15 km out, or from :math:`0.2 d` to :math:`d` under 15 km, ITU-R
P.1546-6 Annex 5 §3, clipped alike: a running sum along the sweep's rays,
:meth:`coverage.radio.RaySweep.mean_ground_m`),
:math:`L_{clutter}` the receiver's clutter (Hata environment per cell and foliage,
:mod:`coverage.model.clutter`), and :math:`L_{diff}` the Bullington diffraction loss
(ITU-R P.526-15 section 4.5.1) over the DEM profile from the antenna to the cell, with
earth curvature (effective radius factor :math:`k`); with ``ModelParams.diffraction =
"delta_bullington"`` plus the smooth-earth term of ITU-R P.452-17 §4.2.3
(:func:`coverage.radio.delta_bullington_excess_db`, from the smooth-earth heights the
sweep gives each cell, :meth:`coverage.radio.RaySweep.smooth_heights_m`).

How it is fast (the work is sites x cells x profile samples):

- each site is limited to its *useful radius*, where the terrain-free level of its
  strongest carrier falls 15 dB under the lowest threshold (:data:`FLOOR_DBM`);
- terrain is handled by a *radial sweep*: rays from the site, spaced ``ray_spacing_cells``
  cells apart at the useful radius, sampled once each at the terrain's step (the grid's
  cell size, or ``ModelParams.terrain_resolution_m`` for a finer DEM); every
  sample along a ray is the receiver of the profile made of the samples before it, so one
  profile serves all cells along the ray (:class:`coverage.radio.RaySweep`: running
  transmitter horizon and upper-hull pointers, O(1) amortised work per sample); each cell
  is then evaluated exactly, at its own distance and ground height, against the samples of
  its nearest ray that lie before it (the one approximation: that ray's profile instead of
  the straight line to the cell centre, at most half a ray spacing aside);
- the edge geometry does not depend on frequency, so one sweep per mast height serves
  every carrier and sector of a mast; sites are swept in batches of rays of bounded size
  (memory stays below a few hundred MB whatever the number of sites), on
  ``params.workers`` threads (numpy releases the GIL; one in a worker process forked by
  the engine, whose sibling processes fill the other cores: :func:`coverage.engine.threads_for`);
- before any profile, a cell is dropped when no transmitter of the mast could reach the
  floor or beat the level its layer already holds there, even at its antenna gain toward
  the cell and without terrain (diffraction only lowers a level): exact, and in a dense
  network most cells far from a mast are already better served by a nearer one
  (:func:`coverage.model.unit_terms.unit_cells`);
- the sweep is causal (a sample's state depends on the samples before it only), so each
  ray is swept only as far as the farthest cell that reads it.

With ``ModelParams.path_loss = "itm"`` the Irregular Terrain Model replaces both Hata and
Bullington (:mod:`coverage.model.itm_grid`: ITM point to point on each cell's nearest ray,
area mode without terrain); the link budget, clutter, sectors and pruning are the same.

:func:`coverage.model.reference.predict_reference` computes the same physics plainly, one
cell and one full profile at a time, for comparison (``benchmarks/bench_model.py``).

This module holds the entry points (:func:`predict_coverage`, :func:`predict_at_cells`),
the threads that sweep the units and the best-server merge; the stages they run, each a
module, in the order they run:

- :mod:`coverage.model.transmitters`: the link budgets, :data:`FLOOR_DBM` and each
  transmitter's radius;
- :mod:`coverage.model.terrain`: the DEM on the terrain grid, its gaps filled, and the
  ground heights read from it;
- :mod:`coverage.model.sweep`: the sweep units (one per mast position and height), their
  batches and their swept rays;
- :mod:`coverage.model.unit_terms`: a unit's cells, their terrain-free terms and the
  pruning;
- :mod:`coverage.model.levels`: the cells' levels from those terms and the swept rays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from rasterio.transform import from_origin

from .. import itm
from ..engine import threads_for
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid
from .itm_grid import ItmRays
from .levels import unit_levels
from .sweep import prepare_units, sweep_batches, sweep_rays
from .terrain import (
    float32_terrain,
    ground_at_cells,
    ground_on_grid,
    held_ground,
    release_float32_terrain,
    terrain_grid,
)
from .transmitters import FLOOR_DBM, TxRecord, prepare_transmitters, within_reach
from .unit_terms import unit_cells

# FLOOR_DBM and prepare_transmitters (coverage.model.transmitters) stay importable from here
__all__ = ["FLOOR_DBM", "best_server_sink", "predict_at_cells", "predict_coverage",
           "prepare_transmitters", "warm_compiled_sweep"]

log = logging.getLogger(__name__)


def predict_coverage(
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    dem: Raster | None = None,
    params: ModelParams | None = None,
    progress: Callable[[int, int], None] | None = None,
    terrain: tuple[np.ndarray, Grid] | None = None,
    clutter: Clutter | None = None,
    only: np.ndarray | None = None,
) -> CoverageSurfaces:
    """Predict the best received level per operator and technology on ``grid``.

    Parameters
    ----------
    towers : GeoDataFrame
        Transmitters as read by :func:`coverage.io.read_towers` (any CRS).
    grid : Grid
        The metric grid to predict on.
    dem : Raster, optional
        Elevation in metres (any CRS); enables terrain diffraction (and the antenna height
        above the receiver when ``params.hata_height = "above_receiver"``).
    params : ModelParams, optional
        Model parameters (path loss, environment, terrain, diffraction, rays, threads).
    progress : callable, optional
        Called as ``progress(done, total)`` as masts are done.
    terrain : (ndarray, Grid), optional
        The DEM already on a terrain grid aligned with ``grid`` and holding every
        transmitter, as :func:`coverage.model.terrain.terrain_grid` returns (used instead
        of ``dem``). The tiled engine (:mod:`coverage.engine`) computes it once for the
        whole grid so that every tile sees the same terrain samples as an untiled run.
    clutter : Clutter, optional
        The receivers' clutter (:func:`coverage.model.clutter_map`).
    only : ndarray of int, optional
        Flat (row-major) indices of the only cells to predict; the others stay NaN. Each
        level and distance is the one the whole grid gets at that cell, to the bit: a
        cell's level depends on its own distance, ground and clutter and on the samples of
        its rays before it (the sweep is causal), and a transmitter is skipped at a cell
        only where it cannot beat the level held there, so only the rays and samples those
        cells read are swept. For scoring the model at a few cells (the tests').

    Returns
    -------
    CoverageSurfaces
        Levels in dBm on ``grid``, with the best server's distance per layer.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import Point
    >>> from coverage.model import Grid
    >>> site = gpd.GeoDataFrame({"site_id": ["s"], "tech": ["4G"], "operator": ["A"]},
    ...                         geometry=[Point(500_000, 2_500_000)], crs=32648)
    >>> grid = Grid.covering((495_000, 2_495_000, 505_000, 2_505_000), 100.0, site.crs)
    >>> s = predict_coverage(site, grid)
    >>> round(float(s.layers["A", "4G"][50, 60]), 1)  # 1.05 km east: 30 dBm - 105.0 dB Hata
    -75.8

    (and 0.8 dB of the antennas' vertical pattern, 4 degrees of downtilt, 1.6 degrees under
    the horizon: ``ModelParams.downtilt_deg``).
    """
    params = params or ModelParams()
    tx = prepare_transmitters(towers, grid.crs, params)
    tx = within_reach(tx, grid, params, flat=dem is None and terrain is None)
    clutter = clutter.on(grid) if clutter is not None else None
    heights, tgrid, ground = None, None, None
    if terrain is not None:
        heights, tgrid = terrain
        ground = ground_on_grid(heights, tgrid, grid)
    elif dem is not None:
        heights, tgrid = terrain_grid(dem, grid, tx, params.terrain_step_m)
        ground = ground_on_grid(heights, tgrid, grid)
    surfaces = CoverageSurfaces(grid, dem=held_ground(ground), params=params)
    if tx.empty:
        return surfaces
    ground_of = ground.reshape(-1).__getitem__ if ground is not None else None
    cells_of = None
    if only is not None:
        only = np.unique(np.asarray(only, np.int64))

        def cells_of(members: np.ndarray) -> np.ndarray:
            return only

    left, bottom, right, top = grid.bounds
    _run_units(tx, grid, heights, tgrid, ground_of, params, clutter, best_server_sink(surfaces),
               layers=surfaces.layers, progress=progress, cells_of=cells_of,
               near=((left + right) / 2, (bottom + top) / 2))
    if terrain is None:  # this call's own terrain grid: its rays are done
        release_float32_terrain(heights)
    return surfaces


def best_server_sink(surfaces: CoverageSurfaces) -> Callable:
    """``sink(record, flat, level, distance)`` keeping each layer's best server at each cell.

    The higher level wins; at equal levels (to the bit) the nearer server, whatever the
    order of work. Safe to call from several threads.
    """
    lock = threading.Lock()

    def merge(r: TxRecord, flat: np.ndarray, level: np.ndarray, d: np.ndarray) -> None:
        key = (r.operator, r.tech)
        with lock:
            layer, far = (a.reshape(-1) for a in surfaces.layer_arrays(key))
            held = layer[flat]
            better = ~(held >= level)
            better |= (held == level) & (far[flat] > d)
            layer[flat[better]] = level[better]
            far[flat[better]] = d[better]

    return merge


def predict_at_cells(
    towers: gpd.GeoDataFrame,
    grid: Grid,
    cells: list[np.ndarray],
    *,
    terrain: tuple[np.ndarray, Grid] | None = None,
    params: ModelParams | None = None,
    clutter: Clutter | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each transmitter's own level at its own cells of ``grid``, as :func:`predict_coverage`.

    The model of :func:`predict_coverage` for every transmitter alone (no best-server
    merge), evaluated only at the cells asked for: a cell's level depends on its own
    distance, ground, clutter and the samples of its ray(s) before it, and the sweep is
    causal, so each level is the one the whole-grid model gives, to the bit, while only
    the rays and samples those cells read are swept. This is what the plan's candidates
    need (their levels where people lack service, a few per cent of the grid).

    Parameters
    ----------
    towers : GeoDataFrame
        Transmitters as for :func:`predict_coverage` (any CRS).
    grid : Grid
        The metric grid the cells are numbered on (row-major flat indices).
    cells : list of ndarray of int
        Flat indices of the cells wanted, one array per row of ``towers``.
    terrain : (ndarray, Grid), optional
        The DEM on a terrain grid holding ``grid`` and every transmitter
        (:func:`coverage.model.terrain.terrain_grid`); without it, flat ground.
    params, clutter, progress
        As for :func:`predict_coverage`.

    Returns
    -------
    list of (ndarray, ndarray)
        Per row of ``towers``: the flat indices of its cells where its level reaches its
        technology's floor (:data:`FLOOR_DBM`), and those levels (float32 dBm).
    """
    params = params or ModelParams()
    if len(cells) != len(towers):
        raise ValueError(f"{len(cells)} cell lists for {len(towers)} transmitters")
    tx = prepare_transmitters(towers, grid.crs, params).assign(row=np.arange(len(towers)))
    tx = within_reach(tx, grid, params, flat=terrain is None)
    clutter = clutter.on(grid) if clutter is not None else None
    heights, tgrid, ground_of = None, None, None
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(len(towers))]
    if not tx.empty:
        rows = tx["row"].to_numpy()
        wanted = np.unique(np.concatenate([np.asarray(cells[r], np.int64) for r in rows]))
        if terrain is not None:
            heights, tgrid = terrain
            values = ground_at_cells(heights, tgrid, grid, wanted)

            def ground_of(flat: np.ndarray) -> np.ndarray:
                return values[np.searchsorted(wanted, flat)]

        def want(members: np.ndarray) -> np.ndarray:
            if len(members) == 1:
                return np.unique(np.asarray(cells[rows[members[0]]], np.int64))
            return np.unique(np.concatenate([np.asarray(cells[rows[m]], np.int64)
                                             for m in members]))

        def keep(r: TxRecord, flat: np.ndarray, level: np.ndarray, d: np.ndarray) -> None:
            row = rows[r.index]
            own = np.isin(flat, cells[row])  # a unit evaluates its members' cells together
            found[row].append((flat[own], level[own]))  # one writer per transmitter

        _run_units(tx, grid, heights, tgrid, ground_of, params, clutter, keep, layers={},
                   progress=progress, cells_of=want)
    empty = (np.array([], np.int64), np.array([], np.float32))
    return [(np.concatenate([f for f, _ in parts]), np.concatenate([v for _, v in parts]))
            if parts else empty for parts in found]


def _run_units(tx: pd.DataFrame, grid: Grid, heights: np.ndarray | None, tgrid: Grid | None,
               ground_of: Callable | None, params: ModelParams, clutter: Clutter | None,
               sink: Callable, *, layers: dict,
               progress: Callable[[int, int], None] | None = None,
               cells_of: Callable[[np.ndarray], np.ndarray] | None = None,
               near: tuple[float, float] | None = None) -> None:
    """Sweep the transmitters ``tx`` (prepared, with ``radius_m``) by batches on threads.

    ``ground_of(flat)`` gives the ground height of cells of ``grid`` (None: flat ground).
    ``sink(record, flat, level, distance)`` receives each transmitter's float32 levels at
    or above its floor; ``layers`` (the best levels so far, by (operator, tech)) prunes
    cells no transmitter can improve; ``cells_of(members)`` (row positions of ``tx``), when
    given, lists the only cells evaluated for a unit instead of its whole disc; ``near``
    (x, y, m), when given, is where the units nearest are swept first
    (:func:`coverage.model.sweep.sweep_batches`).
    """
    if params.path_loss == "itm":
        _check_itm_inputs(tx, params)
    path_flags = [0]
    flags_lock = threading.Lock()
    records, units, step = prepare_units(tx, grid, heights, tgrid, params,
                                         lowest=params.hata_height == "effective")
    batches = sweep_batches(units, near=near)
    # float32 terrain for the ray sampling (halves its memory traffic)
    heights32 = float32_terrain(heights) if heights is not None else None
    n_pos = int(tx.pos.nunique())
    done: set[int] = set()

    def run(batch: pd.DataFrame) -> pd.DataFrame:
        plain = list(batch.itertuples())
        cells = [unit_cells(unit, [records[i] for i in unit.members], grid, ground_of, params,
                             layers, clutter, step_m=step,
                             only=None if cells_of is None else cells_of(unit.members))
                 for unit in plain]
        sweep = None
        if heights is not None and params.terrain and any(c is not None for c in cells):
            # the sweep is causal: each ray need only reach the farthest cell it serves
            lengths = np.concatenate([
                np.zeros(unit.rays, np.int64) if c is None else c["lengths"]
                for unit, c in zip(plain, cells, strict=True)])
            sweep = sweep_rays(batch, heights32, tgrid, step, params, lengths=lengths)
        first = np.concatenate([[0], np.cumsum(batch.rays.to_numpy())[:-1]])
        for unit, ray0, its_cells in zip(plain, first, cells, strict=True):
            if its_cells is not None:
                unit_levels(unit, its_cells, sweep, int(ray0), params, sink)
        if isinstance(sweep, ItmRays):
            with flags_lock:
                path_flags[0] |= sweep.flags
        return batch

    workers = max(1, min(threads_for(params.workers), len(batches)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in pool.map(run, batches):
            done.update(int(p) for p in batch.pos)
            if progress is not None:
                progress(len(done), n_pos)
    log.info("predicted %d transmitters at %d positions (%d sweeps) on a %dx%d grid",
             len(tx), n_pos, len(units), *grid.shape)
    if path_flags[0]:
        log.info("ITM flags raised by some cell paths (a grid has paths under 1 km and "
                 "steep horizons near its masts): %s",
                 ", ".join(f.name for f in itm.ItmFlag if path_flags[0] & f))


def _check_itm_inputs(tx: pd.DataFrame, params: ModelParams) -> None:
    """ITM's checks of the transmitters' settings: errors raised, its flags warned."""
    flags = itm.check_inputs(tx.height_m.to_numpy(float), params.rx_height_m,
                             tx.freq_mhz.to_numpy(float), **params.itm_settings)
    if flags:
        itm.warn_flags(np.array([flags], np.int32), stacklevel=5)


_WARM: list[bool] = []


def warm_compiled_sweep() -> None:
    """Load the compiled sweep's kernels in this process, once, before workers are forked.

    numba loads a kernel from its cache at the kernel's first call in each process (this
    warm-up about 0.2 s of CPU, :mod:`coverage._compiled`). Forked workers inherit what
    their parent has loaded: called in the parent before a map, a tiny model over a
    synthetic 3 km ridge runs the sweep once here, and no worker of any later pool loads
    the kernels again. Without numba (or with ``COVERAGE_GAP_NUMBA=0``) it does nothing.
    Results never depend on it.
    """
    from .._compiled import kernels

    if _WARM or kernels() is None:
        return
    _WARM.append(True)
    crs = CRS.from_epsg(32648)
    z = 50.0 + 40.0 * np.sin(np.arange(40) / 5.0)[None, :] + np.zeros((40, 1))
    dem = Raster(z.astype("float32"), from_origin(500_000.0, 2_000_000.0, 100.0, 100.0), crs)
    grid = Grid(from_origin(500_500.0, 1_999_500.0, 100.0, 100.0), (30, 30), crs)
    site = gpd.GeoDataFrame({"site_id": ["w"], "operator": ["w"], "tech": ["4G"],
                             "height_m": [30.0], "status": ["active"]},
                            geometry=gpd.points_from_xy([501_900.0], [1_998_100.0]), crs=crs)
    predict_coverage(site, grid, dem=dem)
