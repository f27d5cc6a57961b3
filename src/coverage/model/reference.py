"""The model's physics written plainly, one cell and one full profile at a time.

A yardstick for :func:`coverage.model.predict_coverage`: the same link budget, Hata loss
and base-station height, receiver clutter, sector pattern and Bullington diffraction
(ITU-R P.526-15 section 4.5.1, every profile sample scanned, line-of-sight case
included; or the delta-Bullington method of ITU-R P.452-17 §4.2.3, with the
smooth-earth heights taken flat as the recommendation takes them), but each cell's
profile is sampled afresh from the DEM at the grid resolution, in a Python loop. It is
slow on purpose (tens of microseconds per cell); use it on small grids to check the fast
model and to state the speed ratio (``benchmarks/bench_model.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from .. import itm, radio
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid
from .itm_grid import itm_flat_loss_db
from .terrain import ground_at, ground_on_grid, terrain_grid
from .transmitters import FLOOR_DBM, prepare_transmitters, useful_radius_m, within_reach
from .unit_terms import vertical_gain

__all__ = ["predict_reference"]


def predict_reference(towers: gpd.GeoDataFrame, grid: Grid, *, dem: Raster | None = None,
                      params: ModelParams | None = None, clutter: Clutter | None = None
                      ) -> CoverageSurfaces:
    """Best level per (operator, tech) by a loop over transmitters and cells (dBm, NaN = none).

    Parameters as :func:`coverage.model.predict_coverage`.
    """
    params = params or ModelParams()
    tx = within_reach(prepare_transmitters(towers, grid.crs, params), grid, params)
    scene = _Scene.of(grid, tx, dem=dem, params=params, clutter=clutter)
    surfaces = CoverageSurfaces(grid, dem=scene.ground)
    for r in tx.itertuples():
        radius = max(useful_radius_m(t.eirp_dbm, t.freq_mhz, t.height_m, FLOOR_DBM[t.tech],
                                     params)
                     for t in tx[(tx.x == r.x) & (tx.y == r.y)].itertuples())
        site_ground = (float(ground_at(scene.heights, scene.tgrid, np.array([r.x]),
                                       np.array([r.y]))[0])
                       if scene.heights is not None else 0.0)
        layer, _ = surfaces.layer_arrays((str(r.operator), str(r.tech)))
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                dist = math.hypot(scene.xs[i, j] - r.x, scene.ys[i, j] - r.y)
                if dist > radius:
                    continue
                level = _level_dbm(scene, r, i, j, dist=dist, site_ground=site_ground)
                if level >= FLOOR_DBM[r.tech] and not level <= layer[i, j]:
                    layer[i, j] = level
    return surfaces


@dataclass(frozen=True)
class _Scene:
    """What every cell's level reads: the grid, its terrain and clutter, the settings.

    Attributes
    ----------
    grid : Grid
        The analysis grid, in its metric CRS.
    params : ModelParams
        The model's settings.
    clutter : Clutter or None
        The receiver clutter on ``grid``.
    heights : ndarray or None
        The terrain grid's heights, metres (None: no DEM).
    tgrid : Grid or None
        The terrain grid (:func:`~coverage.model.terrain.terrain_grid`).
    ground : ndarray or None
        The ground height at each cell of ``grid``, metres.
    step : float
        The profiles' sample spacing, metres: the terrain grid's cell size, else the grid's.
    xs, ys : ndarray
        The cells' centres in the grid's CRS, metres.
    """

    grid: Grid
    params: ModelParams
    clutter: Clutter | None
    heights: np.ndarray | None
    tgrid: Grid | None
    ground: np.ndarray | None
    step: float
    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def of(cls, grid: Grid, tx, *, dem: Raster | None, params: ModelParams,
           clutter: Clutter | None) -> _Scene:
        """The scene of transmitters ``tx`` on ``grid`` (terrain from ``dem`` when given)."""
        clutter = clutter.on(grid) if clutter is not None else None
        heights, tgrid, ground = None, None, None
        if dem is not None:
            heights, tgrid = terrain_grid(dem, grid, tx, params.terrain_step_m)
            ground = ground_on_grid(heights, tgrid, grid)
        step = tgrid.resolution_m if tgrid is not None else grid.resolution_m
        return cls(grid, params, clutter, heights, tgrid, ground, step, *grid.centres())

    def clutter_db(self, freq_mhz: float, i: int, j: int) -> float:
        """The receiver clutter's loss at cell (``i``, ``j``), dB (0 without clutter)."""
        if self.clutter is None:
            return 0.0
        return float(self.clutter.extra_loss_db(
            freq_mhz, np.array([i * self.grid.shape[1] + j]), self.params)[0])


def _level_dbm(scene: _Scene, r, i: int, j: int, *, dist: float, site_ground: float
               ) -> float:
    """Transmitter ``r``'s level at cell (``i``, ``j``), ``dist`` metres away, dBm.

    The path loss (Hata with the clutter, or free space, and the diffraction over the
    profile; or ITM with the clutter) and the antenna's gain; ``site_ground`` is the
    ground under the site, metres.
    """
    params = scene.params
    x, y = scene.xs[i, j], scene.ys[i, j]
    d = max(dist, scene.grid.resolution_m / 2)
    cell_ground = float(scene.ground[i, j]) if scene.ground is not None else 0.0
    tx_alt = site_ground + r.height_m
    if params.path_loss == "itm":
        loss = _itm_loss_db(r, x, y, d, cell_ground, scene.heights, scene.tgrid, scene.step,
                            params)
        if scene.clutter is not None:
            loss += scene.clutter_db(r.freq_mhz, i, j)
        return r.eirp_dbm - loss + _gain_db(r, x, y, tx_alt, cell_ground, d, params)
    k = round(dist / scene.step) - 1  # inner samples, one per terrain cell size
    profile = None
    if scene.heights is not None and params.terrain and k >= 1:
        t = np.arange(1, k + 1) / (k + 1)
        profile = ground_at(scene.heights, scene.tgrid, r.x + (x - r.x) * t,
                            r.y + (y - r.y) * t)[None, :]
    if params.path_loss == "hata":
        mean = None
        if params.hata_height == "effective" and scene.heights is not None and params.terrain:
            # the effective height's window over the same profile (none: the cell's ground)
            inner = (np.arange(1, k + 1) / (k + 1) * dist, profile[0]) if k >= 1 else ([], [])
            mean = radio.window_mean_ground_m(*inner, dist, cell_ground)
        h_eff = float(params.hata_tx_height_m(tx_alt, cell_ground, r.height_m, mean))
        loss = float(radio.hata_loss_db(d, r.freq_mhz, h_eff, rx_height_m=params.rx_height_m,
                                        environment=params.hata_environment))
        if scene.clutter is not None:
            loss += scene.clutter_db(r.freq_mhz, i, j)
    else:
        loss = float(radio.free_space_loss_db(d, r.freq_mhz))
    if profile is not None:
        loss = _diffracted_db(loss, r, d, profile, tx_alt=tx_alt, site_ground=site_ground,
                              cell_ground=cell_ground, params=params)
    return r.eirp_dbm - loss + _gain_db(r, x, y, tx_alt, cell_ground, d, params)


def _diffracted_db(loss: float, r, d: float, profile: np.ndarray, *, tx_alt: float,
                   site_ground: float, cell_ground: float, params: ModelParams) -> float:
    """``loss`` (dB) with the diffraction over the terrain ``profile`` (metres) added.

    By ``params.diffraction``: line of sight only (no service behind an obstacle),
    delta-Bullington, or Bullington's single knife edge; scaled by
    ``params.diffraction_scale``. ``d`` is the distance, metres; altitudes in metres.
    """
    rx_alt = cell_ground + params.rx_height_m
    if params.diffraction == "los":
        nu = radio.bullington_nu_root_m([d], profile, tx_alt, rx_alt,
                                        k_factor=params.k_factor)[0]
        return math.inf if nu > 0 else loss
    if params.diffraction == "delta_bullington":
        return loss + params.diffraction_scale * float(radio.delta_bullington_loss_db(
            [d], profile, tx_alt, rx_alt, r.freq_mhz, tx_ground_m=site_ground,
            rx_ground_m=cell_ground, k_factor=params.k_factor)[0])
    return loss + params.diffraction_scale * float(radio.bullington_loss_db(
        [d], profile, tx_alt, rx_alt, r.freq_mhz, k_factor=params.k_factor)[0])


def _gain_db(r, x: float, y: float, tx_alt: float, cell_ground: float, d: float,
             params: ModelParams) -> float:
    """The antenna's gain toward a cell, horizontal and vertical patterns, dB."""
    gain = None
    if not math.isnan(r.azimuth_deg):
        bearing = math.degrees(math.atan2(x - r.x, y - r.y)) % 360.0
        gain = float(radio.sector_gain_db(bearing, r.azimuth_deg, r.beamwidth_deg))
    vertical = vertical_gain(tx_alt, cell_ground, d, params)
    if vertical is not None:
        gain = float(radio.combined_gain_db(gain, vertical))
    return 0.0 if gain is None else gain


def _itm_loss_db(r, x: float, y: float, d: float, cell_ground: float, heights, tgrid,
                 step: float, params: ModelParams) -> float:
    """ITM point-to-point over the straight profile from the site to one cell, dB.

    ``round(d / step)`` intervals (at least 2), the heights sampled afresh from the terrain
    grid along the line, the cell's own ground at the end; area mode on flat ground
    without terrain.
    """
    if heights is None or not params.terrain:
        return float(itm_flat_loss_db(np.array([d]), r.freq_mhz, r.height_m, params)[0])
    n = max(round(d / step), 2)
    t = np.arange(n + 1) / n
    dist = math.hypot(x - r.x, y - r.y)
    f = d / max(dist, 1e-9)  # d is at least half a cell: stretch the line as the model
    z = ground_at(heights, tgrid, r.x + (x - r.x) * f * t, r.y + (y - r.y) * f * t)
    z[-1] = cell_ground
    return float(itm.itm_p2p(z, d / n, r.height_m, params.rx_height_m, r.freq_mhz,
                             warn=False, **params.itm_settings).loss_db[0])
