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
  (:func:`unit_cells`);
- the sweep is causal (a sample's state depends on the samples before it only), so each
  ray is swept only as far as the farthest cell that reads it.

With ``ModelParams.path_loss = "itm"`` the Irregular Terrain Model replaces both Hata and
Bullington (:mod:`coverage.model.itm_grid`: ITM point to point on each cell's nearest ray,
area mode without terrain); the link budget, clutter, sectors and pruning are the same.

:func:`coverage.model.reference.predict_reference` computes the same physics plainly, one
cell and one full profile at a time, for comparison (``benchmarks/bench_model.py``).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

from .. import itm, radio
from ..engine import threads_for
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid, to_grid
from .itm_grid import ItmRays, itm_flat_loss_db
from .itm_grid import loss_db as itm_loss_db

__all__ = ["FLOOR_DBM", "predict_coverage", "prepare_transmitters"]

log = logging.getLogger(__name__)

#: Levels below these are not kept (dBm): 15 dB under the lowest threshold of each technology.
FLOOR_DBM = {"2G": -117.0, "3G": -120.0, "4G": -125.0, "5G": -125.0}
#: Rays swept together (bounds the memory of one batch: rays x samples x ~40 bytes; smaller
#: batches also keep the sweep's gathers in cache).
BATCH_RAYS = 6_000
#: How far from the DEM's data a void or nodata cell is interpolated, metres; SRTM's voids
#: (steep slopes, radar shadow) are mostly under a kilometre across.
DEM_FILL_M = 3_000.0


def prepare_transmitters(towers: gpd.GeoDataFrame, crs: CRS, params: ModelParams
                         ) -> pd.DataFrame:
    """Transmitters in the grid's CRS, with every link-budget field filled from defaults.

    Returns a DataFrame with ``x, y`` (metres), ``operator, tech, height_m, eirp_dbm,
    freq_mhz, azimuth_deg, beamwidth_deg`` and the input's ``site_id`` and ``status``.
    """
    pts = towers.geometry.to_crs(crs)
    df = pd.DataFrame(towers.drop(columns=towers.geometry.name)).copy()
    df["x"], df["y"] = pts.x.to_numpy(), pts.y.to_numpy()
    for col, attr in (("eirp_dbm", "eirp_dbm"), ("freq_mhz", "freq_mhz"),
                      ("height_m", "height_m")):
        default = df["tech"].map(lambda t, a=attr: getattr(params.techs[t], a))
        values = (pd.to_numeric(df[col], errors="coerce") if col in df.columns
                  else pd.Series(np.nan, index=df.index))
        df[col] = values.fillna(default).astype(float)
    for col, default in (("azimuth_deg", np.nan), ("beamwidth_deg", 65.0)):
        values = (pd.to_numeric(df[col], errors="coerce") if col in df.columns
                  else pd.Series(np.nan, index=df.index))
        df[col] = values.fillna(default).astype(float)
    df["operator"] = df.get("operator", "unknown")
    return df.reset_index(drop=True)


def useful_radius_m(eirp_dbm: float, freq_mhz: float, height_m: float, floor_dbm: float,
                    params: ModelParams) -> float:
    """Distance where the terrain-free median level falls to ``floor_dbm``, metres.

    The antenna is taken 100 m above the receivers (a hill site), so the radius is generous.
    """
    return float(useful_radii_m(eirp_dbm, freq_mhz, height_m, floor_dbm, params)[0])


def terrain_free_loss_db(distance_m, freq_mhz, height_m, params: ModelParams) -> np.ndarray:
    """The least path loss the model can give at a distance, whatever the terrain, dB.

    Hata and free space: their law (terrain only adds diffraction loss). ITM, whose
    terrain terms can lower the loss too: free space plus the least variability of a zero
    reference attenuation (:func:`coverage.itm.loss_floor_db`). Broadcasts its arguments.
    """
    d, f, h = np.broadcast_arrays(*(np.asarray(v, float) for v in (distance_m, freq_mhz,
                                                                      height_m)))
    if params.path_loss == "hata":
        return radio.hata_loss_db(d, f, h, rx_height_m=params.rx_height_m,
                                  environment=params.hata_environment)
    if params.path_loss == "free_space":
        return radio.free_space_loss_db(d, f)
    out = np.empty(d.shape)
    for freq in np.unique(f):
        sel = f == freq
        out[sel] = itm.loss_floor_db(d[sel], float(freq), **params.itm_settings)
    return out


def useful_radii_m(eirp_dbm, freq_mhz, height_m, floor_dbm, params: ModelParams
                   ) -> np.ndarray:
    """:func:`useful_radius_m` of arrays of transmitters at once (the same values), metres.

    The radius is the first of 256 distances (geometric, 100 m to ``max_range_km``) where
    the level of an antenna 100 m above the receivers falls under ``floor_dbm``. With a
    DEM it sets the rays of each site's sweep as well as its reach, so it is kept as is
    (results depend on it); without one, :func:`reach_radii_m` is exact and tighter.
    """
    eirp, freq, height, floor = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float))
                                                      for v in (eirp_dbm, freq_mhz, height_m,
                                                                floor_dbm)))
    d = np.geomspace(100.0, params.max_range_km * 1000.0, 256)
    out = np.empty(eirp.shape)
    # one row per distinct transmitter kind (a national network has a handful)
    kinds, inverse = np.unique(np.stack([eirp, freq, height, floor]).reshape(4, -1), axis=1,
                               return_inverse=True)
    e, f, h, fl = (k[:, None] for k in kinds)
    loss = terrain_free_loss_db(d[None, :], f, h + 100.0, params)
    below = (e - loss) < fl
    first = np.where(below.any(axis=1), below.argmax(axis=1), d.size - 1)
    out.reshape(-1)[:] = d[first][inverse.reshape(-1)]
    return out


def reach_radii_m(eirp_dbm, freq_mhz, height_m, floor_dbm, params: ModelParams
                  ) -> np.ndarray:
    """Exact reach of transmitters without terrain: where their best level meets the floor.

    Without a DEM the Hata height is the mast height, the sector gain is at most 0 dB (EIRP
    is at boresight), receiver clutter only adds loss (:mod:`coverage.model.clutter`; the
    Hata law itself is ``params.hata_environment``) and the path loss grows with distance,
    so beyond the
    distance where ``eirp_dbm - L(d) = floor_dbm`` no cell is kept: inverting the path-loss
    model (bisection on log-distance, to a millimetre, plus 1 m) gives each transmitter
    the smallest window that changes nothing. At most ``max_range_km``; 0 for a
    transmitter under the floor everywhere. Metres.
    """
    eirp, freq, height, floor = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float))
                                                      for v in (eirp_dbm, freq_mhz, height_m,
                                                                floor_dbm)))
    kinds, inverse = np.unique(np.stack([eirp, freq, height, floor]).reshape(4, -1), axis=1,
                               return_inverse=True)
    e, f, h, fl = kinds
    h = params.hata_tx_height_m(h, np.zeros_like(h), h)  # the model's, on flat ground

    def level(d: np.ndarray) -> np.ndarray:
        return e - terrain_free_loss_db(d, f, h, params)

    far = params.max_range_km * 1000.0
    lo, hi = np.zeros(e.shape), np.full(e.shape, math.log(far))
    for _ in range(48):  # log-distance to 3e-14 of 10 decades: well under a millimetre
        mid = (lo + hi) / 2
        up = level(np.exp(mid)) >= fl
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    radius = np.minimum(np.exp(hi) + 1.0, far)
    radius = np.where(level(np.full(e.shape, far)) >= fl, far, radius)
    radius = np.where(level(np.ones(e.shape)) >= fl, radius, 0.0)
    return radius[inverse.reshape(-1)].reshape(eirp.shape)


def transmitter_radii_m(tx: pd.DataFrame, params: ModelParams, *, flat: bool = False
                        ) -> np.ndarray:
    """Radius each transmitter is modelled to (metres): exact without a DEM (``flat``).

    With a DEM, :func:`useful_radii_m` (it also sets the sweep's rays); without one,
    :func:`reach_radii_m`. Either way no cell the transmitter can keep lies beyond it.
    """
    floor = tx["tech"].map(FLOOR_DBM).to_numpy(float)
    fn = reach_radii_m if flat else useful_radii_m
    return fn(tx.eirp_dbm.to_numpy(float), tx.freq_mhz.to_numpy(float),
              tx.height_m.to_numpy(float), floor, params)


def within_reach(tx: pd.DataFrame, grid: Grid, params: ModelParams, *,
                 flat: bool = False) -> pd.DataFrame:
    """Transmitters with their radius (``radius_m``), those out of reach left out.

    A transmitter whose radius does not reach the grid cannot change it, and must not
    stretch the terrain grid. ``flat`` (no DEM): the exact radius of
    :func:`reach_radii_m`, else the generous :func:`useful_radius_m`.
    """
    tx = tx.assign(radius_m=transmitter_radii_m(tx, params, flat=flat))
    left, bottom, right, top = grid.bounds
    gap = np.hypot(np.maximum(np.maximum(left - tx.x, tx.x - right), 0.0),
                   np.maximum(np.maximum(bottom - tx.y, tx.y - top), 0.0))
    far = (gap > tx.radius_m).to_numpy() | (tx.radius_m <= 0).to_numpy()
    if far.any():
        log.info("%d transmitter(s) out of reach of the grid left out", int(far.sum()))
    return tx[~far].reset_index(drop=True)


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
        transmitter, as :func:`terrain_grid` returns (used instead of ``dem``). The tiled
        engine (:mod:`coverage.engine`) computes it once for the whole grid so that every
        tile sees the same terrain samples as an untiled run.
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
    >>> round(float(s.layers["A", "4G"][50, 60]), 1)  # 1.05 km east: 30 dBm - 105.0 dB
    -75.0
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

    def merge(r: _Tx, flat: np.ndarray, level: np.ndarray, d: np.ndarray) -> None:
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
        (:func:`terrain_grid`); without it, flat ground.
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

        def keep(r: _Tx, flat: np.ndarray, level: np.ndarray, d: np.ndarray) -> None:
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
    (x, y, m), when given, is where the units nearest are swept first (:func:`sweep_batches`).
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


def prepare_units(tx: pd.DataFrame, grid: Grid, heights: np.ndarray | None,
                   tgrid: Grid | None, params: ModelParams, *, lowest: bool = False
                   ) -> tuple[list[_Tx], pd.DataFrame, float]:
    """The transmitters' records, their sweep units (with ``tx_alt``) and the sample step.

    Numbers the transmitters' positions (``tx["pos"]``, in place). The step of the samples
    along the rays is the terrain grid's cell size (the grid's without terrain), metres.
    With ``lowest`` and terrain, each unit's ``low_ground`` is under every ground its
    cells' effective Hata heights average (:func:`_lowest_ground`; NaN otherwise): their
    bound before the sweep.
    """
    tx["pos"] = tx.groupby([tx.x.round(1), tx.y.round(1)], sort=False).ngroup()
    step = tgrid.resolution_m if tgrid is not None else grid.resolution_m
    units = _sweep_units(tx, grid.resolution_m, params, step_m=step)
    site_ground = (ground_at(heights, tgrid, units.x.to_numpy(), units.y.to_numpy())
                   if heights is not None else np.zeros(len(units)))
    units["tx_alt"] = site_ground + units.height_m.to_numpy()
    units["low_ground"] = (_lowest_ground(units, heights, tgrid, step)
                           if lowest and heights is not None else np.nan)
    return _records(tx), units, step


def _lowest_ground(units: pd.DataFrame, heights: np.ndarray, tgrid: Grid, step: float
                   ) -> np.ndarray:
    """Ground under every sample the effective heights of a unit's cells average, metres.

    1 m below the least ground that the rays' samples within 15 km of the site (no window
    reaches further: :func:`coverage.radio.effective_height_window_m`) and the cells
    nearer than that can take. The rays reach two steps past the unit's radius and sample
    bilinearly between cell centres (clamped at the grid's edge): the terrain cells within
    that distance and four cells more are the only ones they read.
    """
    res = tgrid.resolution_m
    out = np.empty(len(units))
    rows_n, cols_n = heights.shape
    far = radio.EFFECTIVE_HEIGHT_WINDOW_M[1]
    for i, (x, y, radius) in enumerate(zip(units.x, units.y, units.radius_m, strict=True)):
        reach = min(radius, far) + 4 * max(step, res)
        c0 = min(max(math.floor((x - reach - tgrid.transform.c) / res), 0), cols_n - 1)
        c1 = max(min(math.ceil((x + reach - tgrid.transform.c) / res), cols_n), c0 + 1)
        r0 = min(max(math.floor((tgrid.transform.f - y - reach) / res), 0), rows_n - 1)
        r1 = max(min(math.ceil((tgrid.transform.f - y + reach) / res), rows_n), r0 + 1)
        out[i] = float(heights[r0:r1, c0:c1].min()) - 1.0
    return out


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


def _check_itm_inputs(tx: pd.DataFrame, params: ModelParams) -> None:
    """ITM's checks of the transmitters' settings: errors raised, its flags warned."""
    flags = itm.check_inputs(tx.height_m.to_numpy(float), params.rx_height_m,
                             tx.freq_mhz.to_numpy(float), **params.itm_settings)
    if flags:
        itm.warn_flags(np.array([flags], np.int32), stacklevel=5)


class _Tx(NamedTuple):
    """One transmitter's link budget as plain Python values (the inner loops read these)."""

    operator: str
    tech: str
    eirp_dbm: float
    freq_mhz: float
    azimuth_deg: float
    beamwidth_deg: float
    floor_dbm: float
    index: int  # row position in the transmitters' table


def _records(tx: pd.DataFrame) -> list[_Tx]:
    """The transmitters as :class:`_Tx` records, in ``tx``'s row order."""
    cols = [[str(v) for v in tx["operator"].tolist()], [str(v) for v in tx["tech"].tolist()]]
    cols += [tx[c].to_numpy(float).tolist() for c in ("eirp_dbm", "freq_mhz", "azimuth_deg",
                                                         "beamwidth_deg")]
    cols.append([FLOOR_DBM[t] for t in cols[1]])
    cols.append(list(range(len(tx))))
    return [_Tx(*r) for r in zip(*cols, strict=True)]


def _sweep_units(tx: pd.DataFrame, res: float, params: ModelParams, *,
                 step_m: float | None = None) -> pd.DataFrame:
    """One sweep per (position, mast height): rays, samples and the transmitters served.

    Rays are spaced by the grid's cell size ``res``, samples by the terrain's ``step_m``
    (default ``res``). Units come in the order of their first transmitter; ``members`` are
    row positions of ``tx`` in its order.
    """
    step_m = step_m or res
    pos = tx["pos"].to_numpy(np.int64)
    _, hcode = np.unique(tx["height_m"].to_numpy(float), return_inverse=True)
    _, first, unit = np.unique(pos * (int(hcode.max()) + 1) + hcode, return_index=True,
                               return_inverse=True)
    order = np.argsort(first, kind="stable")  # units by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    unit = rank[unit]
    first = first[order]
    by_unit = np.argsort(unit, kind="stable")
    members = np.split(by_unit, np.cumsum(np.bincount(unit, minlength=order.size))[:-1])
    radius = np.zeros(order.size)
    np.maximum.at(radius, unit, tx["radius_m"].to_numpy(float))
    n = np.ceil(radius / step_m).astype(np.int64) + 2
    rays = np.maximum(16, np.ceil(2 * np.pi * radius / (params.ray_spacing_cells * res))
                      ).astype(np.int64)
    return pd.DataFrame({"pos": pos[first], "height_m": tx["height_m"].to_numpy(float)[first],
                         "x": tx["x"].to_numpy(float)[first],
                         "y": tx["y"].to_numpy(float)[first], "radius_m": radius,
                         "samples": n, "rays": rays,
                         "members": pd.Series(members, dtype=object)})


def sweep_batches(units: pd.DataFrame, *, near: tuple[float, float] | None = None
                  ) -> list[pd.DataFrame]:
    """Units grouped into batches of at most BATCH_RAYS rays, similar sample counts together.

    With ``near`` (x, y in the grid's CRS, m), the units nearest that point come first
    instead: on a grid (or a tile) centred there, the masts that serve it best are merged
    first, and more of the later units' cells are skipped (:func:`unit_cells`; the demo's
    tiles: 16% fewer cells evaluated). The order never changes a level.
    """
    if near is None:
        units = units.sort_values("samples", kind="stable").reset_index(drop=True)
    else:
        gap = np.hypot(units.x.to_numpy(float) - near[0], units.y.to_numpy(float) - near[1])
        units = units.iloc[np.argsort(gap, kind="stable")].reset_index(drop=True)
    out, start, rays = [], 0, 0
    for i, r in enumerate(units.rays):
        if rays and rays + r > BATCH_RAYS:
            out.append(units.iloc[start:i])
            start, rays = i, 0
        rays += r
    out.append(units.iloc[start:])
    return out


def sweep_rays(batch: pd.DataFrame, heights: np.ndarray, tgrid: Grid, res: float,
           params: ModelParams, *, lengths: np.ndarray | None = None) -> radio.RaySweep:
    """The rays of every unit of a batch, swept together (units' rays are consecutive).

    ``res`` is the step of the samples along a ray: the terrain grid's cell size.

    ``lengths`` (samples per ray, default the unit's) limits each ray's length: a sample's
    sweep state depends only on the samples before it, so shorter rays change nothing
    nearer the site (:meth:`coverage.radio.RaySweep.build`).
    """
    counts = batch.rays.to_numpy()
    if lengths is None:
        lengths = np.repeat(batch.samples.to_numpy(), counts)
    lengths = np.minimum(lengths, np.repeat(batch.samples.to_numpy(), counts))
    starts = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    if params.path_loss == "itm":
        lengths = ItmRays.table_lengths(lengths, starts,
                                        np.repeat(batch.samples.to_numpy(), counts))
    n = max(int(lengths.max()), 1)
    theta = np.concatenate([2 * np.pi * np.arange(r) / r for r in counts])
    alt = np.repeat(batch.tx_alt.to_numpy(), counts)
    # the same samples and sweep in one compiled pass, where numba is installed (not for
    # ITM, which keeps the ground along the rays)
    sweep = None if params.path_loss == "itm" else radio.RaySweep.sample_and_build(
        heights, (np.repeat(batch.x.to_numpy(), counts) - tgrid.transform.c).astype("float32"),
        (np.repeat(batch.y.to_numpy(), counts) - tgrid.transform.f).astype("float32"),
        np.sin(theta).astype("float32"), np.cos(theta).astype("float32"), res, alt,
        lengths, k_factor=params.k_factor)
    if sweep is not None:
        return sweep
    # only the samples some receiver needs: (ray, sample) pairs of the ragged rays
    need = np.arange(n)[None, :] < lengths[:, None]
    ray_i, j_i = np.nonzero(need)
    dist = (j_i * res).astype("float32")
    x0 = np.repeat(batch.x.to_numpy(), counts)[ray_i]
    y0 = np.repeat(batch.y.to_numpy(), counts)[ray_i]
    # positions relative to the terrain grid's corner, in float32 (exact to a millimetre)
    xs = (x0 - tgrid.transform.c).astype("float32")
    xs += np.sin(theta).astype("float32")[ray_i] * dist
    ys = (y0 - tgrid.transform.f).astype("float32")
    ys += np.cos(theta).astype("float32")[ray_i] * dist
    del x0, y0, dist
    origin = Grid(from_origin(0.0, 0.0, res, res), tgrid.shape, tgrid.crs)
    ground = np.zeros((counts.sum(), n), dtype="float32")
    ground[ray_i, j_i] = ground_at(heights, origin, xs, ys)
    del xs, ys, ray_i, j_i
    if params.path_loss == "itm":
        return ItmRays(ground, res, np.repeat(batch.height_m.to_numpy(), counts), starts,
                       lengths, params)
    return radio.RaySweep.build(ground, res, alt, k_factor=params.k_factor, lengths=lengths)


def vertical_gain(tx_alt: float, cell_ground: np.ndarray, d: np.ndarray,
                  params: ModelParams) -> np.ndarray | None:
    """The antennas' vertical gain toward cells (dB), or None without a vertical pattern.

    No pattern when ``params.downtilt_deg`` or ``params.vertical_beamwidth_deg`` is 0.

    :func:`coverage.radio.vertical_gain_db` at the angle under the horizontal from the
    antenna (altitude ``tx_alt``, m) to the handset (``cell_ground`` + ``rx_height_m``)
    at ground distance ``d`` (m); ``params.downtilt_deg`` and ``vertical_beamwidth_deg``.
    """
    if not (params.downtilt_deg and params.vertical_beamwidth_deg):
        return None
    rx_alt = np.asarray(cell_ground, dtype=float) + params.rx_height_m
    elevation = np.degrees(np.arctan2(tx_alt - rx_alt, np.asarray(d, dtype=float)))
    return radio.vertical_gain_db(elevation, params.downtilt_deg,
                                  params.vertical_beamwidth_deg)


def unit_geometry(unit, grid: Grid, ground_of: Callable | None,
                   only: np.ndarray | None = None) -> dict | None:
    """The cells of ``grid`` within one sweep unit's radius: where they lie, their ground.

    ``only`` (sorted flat indices), when given, are the only cells considered, instead of
    the unit's whole disc. None when no cell is left. Returns ``d`` (the distance the path
    loss takes: at least half a cell), ``dist``, ``dx``, ``dy`` (metres from the site),
    ``flat`` (indices) and ``ground`` (metres).
    """
    res = grid.resolution_m
    x0, y0, radius = unit.x, unit.y, unit.radius_m
    if only is None:
        col0 = max(math.floor((x0 - radius - grid.transform.c) / res), 0)
        col1 = min(math.ceil((x0 + radius - grid.transform.c) / res), grid.shape[1])
        row0 = max(math.floor((grid.transform.f - y0 - radius) / res), 0)
        row1 = min(math.ceil((grid.transform.f - y0 + radius) / res), grid.shape[0])
        if row0 >= row1 or col0 >= col1:
            return None
        rows, cols = slice(row0, row1), slice(col0, col1)
        x, y = grid.centres(rows, cols)
    else:
        # the same centres as Grid.centres, to the bit
        rr, cc = np.divmod(np.asarray(only, np.int64), grid.shape[1])
        x = grid.transform.c + (cc + 0.5) * grid.transform.a
        y = grid.transform.f + (rr + 0.5) * grid.transform.e
    dx, dy = x - x0, y - y0
    dist = np.hypot(dx, dy)
    inside = dist <= radius
    dx, dy, dist = dx[inside], dy[inside], dist[inside]
    d = np.maximum(dist, res / 2)
    if only is None:
        rr, cc = np.nonzero(inside)
        flat = (rr + row0) * grid.shape[1] + (cc + col0)
    else:
        flat = np.asarray(only, np.int64)[inside]
        if flat.size == 0:
            return None
    cell_ground = ground_of(flat) if ground_of is not None else np.zeros_like(d)
    return {"d": d, "dist": dist, "dx": dx, "dy": dy, "flat": flat, "ground": cell_ground}


class SweepTerms:
    """The terms of a sweep unit's cells that its levels are made of, computed on demand.

    ``geo`` is the unit's geometry (:func:`unit_geometry`). Every term is elementwise: a
    cell's value is the same whichever other cells it is computed with. ``keep=False``
    (one model): each term is computed at the cells asked for. ``keep=True`` (several
    models of the same transmitters that differ only in
    :data:`coverage.model.variants.LEVEL_FIELDS`): at every cell of the geometry, once per
    value of the fields it reads, and indexed.
    """

    def __init__(self, unit, geo: dict, clutter: Clutter | None, *, keep: bool = False):
        self.unit, self.geo, self.clutter, self.keep = unit, geo, clutter, keep
        self._kept: dict = {}

    def _once(self, key, make: Callable[[], object]):
        if not self.keep:
            return make()
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    def loss(self, freq: float, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
        """Terrain-free path loss plus clutter, and the clutter alone, at every cell, dB.

        With the effective Hata height, the path loss at its bound (the least the cell can
        have), for pruning.
        """
        geo = self.geo

        def path() -> np.ndarray:
            # the effective height's bound, over the unit's lowest ground (unit_levels
            # gives each cell its own from the sweep)
            low = getattr(self.unit, "low_ground", math.nan)
            h_eff = params.hata_tx_height_m(self.unit.tx_alt, geo["ground"], self.unit.height_m,
                                            None if math.isnan(low) else low)
            return terrain_free_loss_db(geo["d"], freq, h_eff, params)

        def extra() -> np.ndarray:
            return (self.clutter.extra_loss_db(float(freq), geo["flat"], params)
                    if self.clutter is not None else np.zeros(geo["d"].shape))

        def total() -> tuple[np.ndarray, np.ndarray]:
            plain = self._once(("path", freq, params.hata_height), path)
            clutter = self._once(("clutter", freq, params.foliage_loss_db,
                                  params.foliage_db_per_decade), extra)
            return plain + clutter, clutter

        return self._once(("loss", freq, params.hata_height, params.foliage_loss_db,
                           params.foliage_db_per_decade), total)

    def bearing(self, idx: np.ndarray) -> np.ndarray:
        """Bearing from the site to the cells ``idx`` of the geometry, radians from north."""
        if self.keep:
            whole = self._once("bearing", lambda: np.arctan2(self.geo["dx"], self.geo["dy"]))
            return whole[idx]
        return np.arctan2(self.geo["dx"][idx], self.geo["dy"][idx])

    def ray_reads(self, idx: np.ndarray, bearing: np.ndarray, params: ModelParams,
                  step_m: float) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
        """:func:`_ray_reads` of the cells ``idx``, and how far each ray must be swept.

        ``bearing`` is the cells'; the last item gives the samples each ray of the unit
        must be swept to for them.
        """
        if self.keep:
            pos, rays, reach = self._once("rays", lambda: _ray_reads(
                self.unit, self.bearing(slice(None)), self.geo["dist"], params, step_m))
            pos, rays, reach = pos[idx], tuple(r[idx] for r in rays), reach[idx]
        else:
            pos, rays, reach = _ray_reads(self.unit, bearing, self.geo["dist"][idx], params,
                                          step_m)
        lengths = np.zeros(self.unit.rays, np.int64)
        for ray in rays:
            np.maximum.at(lengths, ray, reach)
        return pos, rays, lengths

    def gains(self, groups: list, idx: np.ndarray, bearing: np.ndarray, params: ModelParams
              ) -> list[list]:
        """Each transmitter's antenna gain toward the cells ``idx`` (None: 0 dB), by group.

        ``bearing`` is :meth:`bearing` of ``idx``.
        """
        if self.keep:
            every = self._once("gains", lambda: self._gains(
                groups, slice(None), self.bearing(slice(None)), params))
            return [[None if g is None else g[idx] for g in gain] for gain in every]
        return self._gains(groups, idx, bearing, params)

    def _gains(self, groups: list, idx, bearing: np.ndarray, params: ModelParams
               ) -> list[list]:
        members = [r for _, group in groups for r in group]
        bearing_deg = (np.degrees(bearing)
                       if any(r.azimuth_deg == r.azimuth_deg for r in members) else None)
        vertical = vertical_gain(self.unit.tx_alt, self.geo["ground"][idx],
                                 self.geo["d"][idx], params)
        out = []
        for _, group in groups:
            gain = []
            for r in group:
                g = (None if math.isnan(r.azimuth_deg)
                     else radio.sector_gain_db(bearing_deg, r.azimuth_deg, r.beamwidth_deg))
                if vertical is not None:
                    g = radio.combined_gain_db(g, vertical)
                gain.append(g)
            out.append(gain)
        return out


def _can_win(upper: np.ndarray, floor: float, layer: np.ndarray | None, flat: np.ndarray
             ) -> np.ndarray:
    """Cells where a level at most ``upper`` reaches ``floor`` and may beat ``layer``'s."""
    live = upper >= floor
    if layer is not None:
        live &= ~(layer.reshape(-1)[flat] > upper.astype("float32"))
    return live


def unit_cells(unit, members: list[_Tx], grid: Grid, ground_of: Callable | None,
                params: ModelParams, layers: dict,
                clutter: Clutter | None = None, *, step_m: float | None = None,
                only: np.ndarray | None = None, terms: SweepTerms | None = None) -> dict | None:
    """The cells one sweep unit may still improve, with their terrain-free losses and gains.

    A cell is kept when some transmitter of the unit, at its antenna gain toward the cell
    and without terrain (diffraction only lowers a level), would reach its technology's
    floor and beat or equal the level its layer already holds there (levels in a layer
    only rise, so a value read while other threads write can only keep more cells than
    needed; equal levels are kept so that the nearer server wins a tie whatever the order
    of work). The result is the same as evaluating every cell; in a dense network most
    cells far from a mast are already better served, and are skipped before their
    profiles are computed.

    ``layers`` holds the best levels so far by (operator, tech); ``only`` (sorted flat
    indices), when given, are the only cells considered, instead of the unit's whole disc.
    ``terms`` (the unit's, kept for several models) replaces ``grid``, ``ground_of``,
    ``clutter`` and ``only``. ``idx`` in the result numbers the cells in the unit's geometry.
    """
    if terms is None:
        geo = unit_geometry(unit, grid, ground_of, only)
        if geo is None:
            return None
        terms = SweepTerms(unit, geo, clutter)
    geo = terms.geo
    flat = geo["flat"]
    by_freq: dict[float, list[_Tx]] = {}
    for r in members:
        by_freq.setdefault(r.freq_mhz, []).append(r)
    groups = list(by_freq.items())
    losses, clutter_db = [], []
    alive = np.zeros(flat.shape, bool)
    for freq, group in groups:
        loss, extra = terms.loss(freq, params)
        clutter_db.append(extra)
        losses.append(loss)
        # at full gain first (cheap), then at each transmitter's gain toward the cell
        upper = max(r.eirp_dbm for r in group) - loss
        floor = min(r.floor_dbm for r in group)
        for key in {(r.operator, r.tech) for r in group}:
            alive |= _can_win(upper, floor, layers.get(key), flat)
    idx = np.flatnonzero(alive)
    flat = flat[idx]
    losses = [loss[idx] for loss in losses]
    clutter_db = [c[idx] for c in clutter_db]
    bearing = terms.bearing(idx)
    gains = terms.gains(groups, idx, bearing, params)
    alive = np.zeros(idx.shape, bool)
    for (_, group), loss, gain in zip(groups, losses, gains, strict=True):
        for r, g in zip(group, gain, strict=True):
            upper = r.eirp_dbm - loss
            if g is not None:
                upper += g
            alive |= _can_win(upper, r.floor_dbm, layers.get((r.operator, r.tech)), flat)
    if not alive.all():
        sel = np.flatnonzero(alive)
        idx, flat, bearing = idx[sel], flat[sel], bearing[sel]
        losses = [loss[sel] for loss in losses]
        clutter_db = [c[sel] for c in clutter_db]
        gains = [[None if g is None else g[sel] for g in gain] for gain in gains]
    pos, rays, lengths = terms.ray_reads(idx, bearing, params, step_m or grid.resolution_m)
    return {"d": geo["d"][idx], "dist": geo["dist"][idx], "flat": flat,
            "ground": geo["ground"][idx], "pos": pos, "rays": rays, "lengths": lengths,
            "losses": losses, "gains": gains, "groups": groups, "clutter_db": clutter_db,
            "idx": idx}


def _ray_reads(unit, bearing: np.ndarray, dist: np.ndarray, params: ModelParams,
               step_m: float) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """The ray(s) each cell reads, and the samples of its ray it reads up to.

    Returns the cells' fractional ray positions, their ray indices (the two either side
    with ``interpolate_rays``, else the nearest) and their reach in samples.
    """
    pos = (bearing * (unit.rays / (2 * np.pi))) % unit.rays
    if params.interpolate_rays:
        left = np.floor(pos).astype(np.int64)
        rays = (left % unit.rays, (left + 1) % unit.rays)
    else:
        rays = (np.rint(pos).astype(np.int64) % unit.rays,)
    reach = np.rint(dist / step_m).astype(np.int64)
    if params.path_loss == "itm":
        # ITM reads each cell on its nearest ray, through at least 2 samples
        rays = (np.rint(pos).astype(np.int64) % unit.rays,)
        reach = np.maximum(reach, 2) + 1
    return pos, rays, reach


def _itm_losses(unit, cells: dict, sweep: ItmRays | None, ray0: int, params: ModelParams
                ) -> list[np.ndarray]:
    """ITM's loss (dB, without clutter) of a unit's cells, per frequency group.

    Over the DEM: point-to-point on each cell's nearest ray (:class:`ItmRays`); without
    one, or with ``terrain = False``: area mode over flat ground.
    """
    d = cells["d"]
    if sweep is None:
        return [itm_flat_loss_db(d, freq, unit.height_m, params)
                for freq, _ in cells["groups"]]
    path = sweep.path_parameters(ray0 + cells["rays"][0], d, cells["ground"])
    out = []
    for freq, _ in cells["groups"]:
        loss, flags = itm_loss_db(path, float(freq), params)
        sweep.flags |= int(np.bitwise_or.reduce(flags)) if flags.size else 0
        out.append(loss)
    return out


def _smooth_path_heights(unit, cells: dict, sweep: radio.RaySweep, ray0: int,
                         rx_alt: np.ndarray, params: ModelParams
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Antenna heights above each cell's smooth-earth path (delta-Bullington), metres.

    The transmitter's and the receiver's altitude less the smooth-earth surface under
    them (:meth:`coverage.radio.RaySweep.smooth_heights_m`, ITU-R P.1812-6 eq. 37), on
    the cell's ray or between the two rays either side of it as its edge parameter.
    """
    dist, ground = cells["dist"], cells["ground"]
    if params.interpolate_rays:
        left, right = cells["rays"]
        w = cells["pos"] - np.floor(cells["pos"])
        t_l, r_l = sweep.smooth_heights_m(ray0 + left, dist, rx_alt, ground)
        t_r, r_r = sweep.smooth_heights_m(ray0 + right, dist, rx_alt, ground)
        h_std, h_srd = t_l + (t_r - t_l) * w, r_l + (r_r - r_l) * w
    else:
        h_std, h_srd = sweep.smooth_heights_m(ray0 + cells["rays"][0], dist, rx_alt, ground)
    return unit.tx_alt - h_std, rx_alt - h_srd


def _effective_losses(unit, cells: dict, sweep: radio.RaySweep | None, ray0: int,
                      params: ModelParams) -> list[np.ndarray]:
    """The cells' path loss plus clutter at their effective Hata height, per frequency group.

    The antenna's altitude above the mean ground of each cell's window
    (:meth:`coverage.radio.RaySweep.mean_ground_m`) on its ray, or with
    ``interpolate_rays`` between the two rays either side of it as its edge parameter;
    the mast height without a sweep. dB, as ``cells["losses"]``.
    """
    mean = None
    if sweep is not None:
        dist, ground = cells["dist"], cells["ground"]
        if params.interpolate_rays:
            left, right = cells["rays"]
            w = cells["pos"] - np.floor(cells["pos"])
            m_l = sweep.mean_ground_m(ray0 + left, dist, ground)
            m_r = sweep.mean_ground_m(ray0 + right, dist, ground)
            mean = m_l + (m_r - m_l) * w
        else:
            mean = sweep.mean_ground_m(ray0 + cells["rays"][0], dist, ground)
    h_eff = params.hata_tx_height_m(unit.tx_alt, cells["ground"], unit.height_m, mean)
    return [terrain_free_loss_db(cells["d"], freq, h_eff, params) + extra
            for (freq, _), extra in zip(cells["groups"], cells["clutter_db"], strict=True)]


def unit_nu(cells: dict, sweep: radio.RaySweep, ray0: int, params: ModelParams
             ) -> np.ndarray:
    """Bullington's edge parameter of the cells (:meth:`coverage.radio.RaySweep.nu_root_m`).

    On each cell's nearest ray, or with ``interpolate_rays`` between the two rays either
    side of it, linear in angle. ``ray0`` is the unit's first ray in ``sweep``.
    """
    dist = cells["dist"]
    rx_alt = cells["ground"] + params.rx_height_m
    if not params.interpolate_rays:
        return sweep.nu_root_m(ray0 + cells["rays"][0], dist, rx_alt)
    left, right = cells["rays"]
    pos = cells["pos"]
    w = pos - np.floor(pos)
    nu_l = np.maximum(sweep.nu_root_m(ray0 + left, dist, rx_alt), -5.0)
    nu_r = np.maximum(sweep.nu_root_m(ray0 + right, dist, rx_alt), -5.0)
    return nu_l + (nu_r - nu_l) * w


def unit_levels(unit, cells: dict, sweep: radio.RaySweep | ItmRays | None, ray0: int,
                 params: ModelParams, sink: Callable, *,
                 edges: tuple[np.ndarray, Callable] | None = None) -> None:
    """Levels of the transmitters of one sweep unit, given to ``sink`` (see _run_units).

    ``edges`` (models that share a sweep, :mod:`coverage.model.variants`): the cells' edge
    parameter and ``bullington(freq)``, their Bullington loss, instead of computing them
    from ``sweep``.
    """
    if params.path_loss == "itm":
        losses = _itm_losses(unit, cells, sweep, ray0, params)
        cells = {**cells, "losses": [loss + extra for loss, extra
                                     in zip(losses, cells["clutter_db"], strict=True)]}
        sweep = None
    if params.hata_height == "effective" and params.path_loss != "itm":
        cells = {**cells, "losses": _effective_losses(unit, cells, sweep, ray0, params)}
    diffracted = (None if sweep is None
                  else _diffraction(unit, cells, sweep, ray0, params, edges=edges))
    g_d = cells["d"].astype("float32")
    for (freq, group), loss, gain in zip(cells["groups"], cells["losses"], cells["gains"],
                                         strict=True):
        if diffracted is not None:
            loss = diffracted(loss, freq)
        _give_levels(group, loss, gain, cells["flat"], g_d, sink)


def _diffraction(unit, cells: dict, sweep: radio.RaySweep, ray0: int, params: ModelParams,
                 *, edges: tuple[np.ndarray, Callable] | None) -> Callable:
    """``f(loss, freq)``: a path loss (dB) with the terrain's diffraction of the unit added.

    ``los``: infinite where the line of sight is blocked; else Bullington's knife edge (and
    the delta-Bullington smooth-earth excess), scaled by ``diffraction_scale``. ``edges``
    gives the edge parameter and Bullington loss when computed already (see
    :func:`unit_levels`).
    """
    d = cells["d"]
    if edges is None:
        nu = unit_nu(cells, sweep, ray0, params)

        def bullington(freq: float) -> np.ndarray:
            return radio.bullington_loss_from_nu(nu, d, freq)
    else:
        nu, bullington = edges
    blocked = nu > 0.0
    if params.diffraction == "delta_bullington":
        h_te, h_re = _smooth_path_heights(unit, cells, sweep, ray0,
                                          cells["ground"] + params.rx_height_m, params)

    def diffracted(loss: np.ndarray, freq: float) -> np.ndarray:
        if params.diffraction == "los":
            return np.where(blocked, np.inf, loss)
        diff = bullington(freq)
        if params.diffraction == "delta_bullington":
            diff += radio.delta_bullington_excess_db(d, h_te, h_re, freq,
                                                     k_factor=params.k_factor)
        return loss + (diff if params.diffraction_scale == 1.0
                       else np.float32(params.diffraction_scale) * diff)

    return diffracted


def _give_levels(group, loss: np.ndarray, gain, flat: np.ndarray, g_d: np.ndarray,
                 sink: Callable) -> None:
    """Each transmitter's level (EIRP - loss + antenna gain, float32) at or above its floor.

    Given to ``sink(tx, flat cells, levels, distances)``.
    """
    for r, g in zip(group, gain, strict=True):
        level = r.eirp_dbm - loss
        if g is not None:
            level += g
        level = level.astype("float32")
        keep = level >= r.floor_dbm
        sink(r, flat[keep], level[keep], g_d[keep])


_WARM: list[bool] = []


def warm_compiled_sweep() -> None:
    """Load the compiled sweep's kernels in this process, once, before workers are forked.

    numba loads a kernel from its cache at the kernel's first call in each process, about
    0.8 s of CPU (:mod:`coverage._compiled`). Forked workers inherit what their parent has
    loaded: called in the parent before a map, a tiny model over a synthetic 3 km ridge
    runs the sweep once here, and no worker of any later pool loads the kernels again.
    Without numba (or with ``COVERAGE_GAP_NUMBA=0``) it does nothing. Results never depend
    on it.
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
