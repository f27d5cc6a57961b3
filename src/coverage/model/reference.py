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

import geopandas as gpd
import numpy as np

from .. import itm, radio
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid
from .itm_grid import itm_flat_loss_db
from .predict import (
    FLOOR_DBM,
    ground_at,
    ground_on_grid,
    prepare_transmitters,
    terrain_grid,
    useful_radius_m,
    vertical_gain,
    within_reach,
)

__all__ = ["predict_reference"]


def predict_reference(towers: gpd.GeoDataFrame, grid: Grid, *, dem: Raster | None = None,
                      params: ModelParams | None = None, clutter: Clutter | None = None
                      ) -> CoverageSurfaces:
    """Best level per (operator, tech) by a loop over transmitters and cells (dBm, NaN = none).

    Parameters as :func:`coverage.model.predict_coverage`.
    """
    params = params or ModelParams()
    tx = within_reach(prepare_transmitters(towers, grid.crs, params), grid, params)
    clutter = clutter.on(grid) if clutter is not None else None
    heights, tgrid, ground = None, None, None
    if dem is not None:
        heights, tgrid = terrain_grid(dem, grid, tx, params.terrain_step_m)
        ground = ground_on_grid(heights, tgrid, grid)
    surfaces = CoverageSurfaces(grid, dem=ground)
    res = grid.resolution_m
    step = tgrid.resolution_m if tgrid is not None else res
    xs, ys = grid.centres()
    for r in tx.itertuples():
        radius = max(useful_radius_m(t.eirp_dbm, t.freq_mhz, t.height_m, FLOOR_DBM[t.tech],
                                     params)
                     for t in tx[(tx.x == r.x) & (tx.y == r.y)].itertuples())
        site_ground = (float(ground_at(heights, tgrid, np.array([r.x]), np.array([r.y]))[0])
                       if heights is not None else 0.0)
        tx_alt = site_ground + r.height_m
        key = (str(r.operator), str(r.tech))
        layer, _ = surfaces.layer_arrays(key)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                x, y = xs[i, j], ys[i, j]
                dist = math.hypot(x - r.x, y - r.y)
                if dist > radius:
                    continue
                d = max(dist, res / 2)
                cell_ground = float(ground[i, j]) if ground is not None else 0.0
                h_eff = float(params.hata_tx_height_m(tx_alt, cell_ground, r.height_m))
                if params.path_loss == "hata":
                    loss = float(radio.hata_loss_db(d, r.freq_mhz, h_eff,
                                                    rx_height_m=params.rx_height_m,
                                                    environment=params.hata_environment))
                    if clutter is not None:
                        loss += float(clutter.extra_loss_db(
                            r.freq_mhz, np.array([i * grid.shape[1] + j]), params)[0])
                else:
                    loss = float(radio.free_space_loss_db(d, r.freq_mhz))
                k = round(dist / step) - 1  # inner samples, one per terrain cell size
                if (heights is not None and params.terrain and k >= 1
                        and params.path_loss != "itm"):
                    t = np.arange(1, k + 1) / (k + 1)
                    profile = ground_at(heights, tgrid, r.x + (x - r.x) * t,
                                         r.y + (y - r.y) * t)[None, :]
                    rx_alt = cell_ground + params.rx_height_m
                    if params.diffraction == "los":
                        nu = radio.bullington_nu_root_m([d], profile, tx_alt, rx_alt,
                                                        k_factor=params.k_factor)[0]
                        loss = math.inf if nu > 0 else loss
                    elif params.diffraction == "delta_bullington":
                        loss += params.diffraction_scale * float(
                            radio.delta_bullington_loss_db(
                                [d], profile, tx_alt, rx_alt, r.freq_mhz,
                                tx_ground_m=site_ground, rx_ground_m=cell_ground,
                                k_factor=params.k_factor)[0])
                    else:
                        loss += params.diffraction_scale * float(radio.bullington_loss_db(
                            [d], profile, tx_alt, rx_alt, r.freq_mhz,
                            k_factor=params.k_factor)[0])
                if params.path_loss == "itm":
                    loss = _itm_loss_db(r, x, y, d, cell_ground, heights, tgrid, step, params)
                    if clutter is not None:
                        loss += float(clutter.extra_loss_db(
                            r.freq_mhz, np.array([i * grid.shape[1] + j]), params)[0])
                level = r.eirp_dbm - loss + _gain_db(r, x, y, tx_alt, cell_ground, d,
                                                     params)
                if level >= FLOOR_DBM[r.tech] and not level <= layer[i, j]:
                    layer[i, j] = level
    return surfaces


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
