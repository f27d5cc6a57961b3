r"""The hidden true radio field of the demo: received level of every transmitter.

For each active transmitter and each cell of the DEM grid within reach,

.. math::

    P = \mathrm{EIRP} + G_{sector}(\theta) - L_{Hata}(d, f, h_b) - L_{Bullington}
        - \sigma X(x, y) - L_{forest}(x, y, f)

with the Okumura-Hata / COST-231 median loss (rural outside the towns, suburban inside), the
ITU-R P.526 Bullington diffraction loss over profiles of the hidden 50 m terrain (denser than
the published 100 m DEM), spatially correlated log-normal shadowing :math:`X` (unit Gaussian
field with exponential correlation, half shared between sites and half per site, σ = 6.5 dB),
and a frequency-dependent foliage loss where the receiver stands in forest.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from ..radio import bullington_loss_db, hata_loss_db, sector_gain_db
from ._grid import gaussian_field
from .terrain import Terrain

__all__ = ["Field", "compute_field"]

TECHS = ("2G", "3G", "4G")
RANGE_M = {"2G": 25_000.0, "3G": 15_000.0, "4G": 15_000.0}
FLOOR_DBM = -150.0
CEILING_DBM = -40.0   # below the mast the vertical pattern keeps handsets under ~-40 dBm
MIN_DISTANCE_M = 100.0
SHADOW_SIGMA_DB = 6.5
SHADOW_CORR_M = 700.0


@dataclass(frozen=True, slots=True)
class Field:
    """Per operator and technology: best level, best transmitter, total power (linear)."""

    best: dict[tuple[str, str], NDArray[np.float32]]
    server: dict[tuple[str, str], NDArray[np.int32]]
    total_mw: dict[tuple[str, str], NDArray[np.float64]]
    town: NDArray[np.bool_]


def _profiles(fine, fine_grid, x0, y0, xs, ys, k):
    t = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))[None, :]
    px = np.float32(x0) + (xs - np.float32(x0))[:, None] * t
    py = np.float32(y0) + (ys - np.float32(y0))[:, None] * t
    c = ((px - fine_grid.x0_m) / fine_grid.cell_m).astype(np.int32)
    r = ((fine_grid.y1_m - py) / fine_grid.cell_m).astype(np.int32)
    np.clip(c, 0, fine_grid.cols - 1, out=c)
    np.clip(r, 0, fine_grid.rows - 1, out=r)
    return fine[r, c]


def forest_loss_db(forest: NDArray, freq_mhz: float) -> NDArray:
    """Foliage loss for a receiver in forest: 6 dB at 900 MHz, +10 dB per decade."""
    return forest * (6.0 + 10.0 * np.log10(freq_mhz / 900.0))


def _mast_levels(group, own, ctx):
    """Levels of every transmitter of one mast over the cells within its reach."""
    terrain, xf, yf, rx_alt, town_f, common, forest, rx_height_m = ctx
    fine, fine_grid = terrain.fine_m, terrain.fine_grid
    first = group.iloc[0]
    x0, y0 = float(first["x"]), float(first["y"])
    reach = max(RANGE_M[t] for t in group["tech"])
    d_all = np.hypot(xf - np.float32(x0), yf - np.float32(y0))
    cells = np.flatnonzero(d_all <= reach)
    d = d_all[cells].astype(float)
    # denser profile samples near the mast, where the hidden terrain matters most
    bands = [(0.0, 2000.0, 20), (2000.0, 6000.0, 36), (6000.0, reach + 1, 48)]
    ground = _profiles(fine, fine_grid, x0, y0, np.array([x0], np.float32),
                       np.array([y0], np.float32), 1)[0, 0]
    tx_alt = float(ground) + float(first["true_height_m"])
    bearing = np.degrees(np.arctan2(xf[cells] - x0, yf[cells] - y0)) % 360
    shadow = SHADOW_SIGMA_DB * np.sqrt(0.5) * (common[cells] + own[cells])
    sub = town_f[cells]
    profiles = {}
    out = []
    for tech, tgroup in group.groupby("tech", sort=True):
        freq = float(tgroup["freq_mhz"].iloc[0])
        height = float(tgroup["true_height_m"].iloc[0])
        near = d <= RANGE_M[tech]
        diff = np.full(len(cells), np.inf)
        for lo, hi, k in bands:
            sel = np.flatnonzero(near & (d >= lo) & (d < hi))
            if len(sel) == 0:
                continue
            if (lo, tech == "2G") not in profiles:
                profiles[lo, tech == "2G"] = _profiles(fine, fine_grid, x0, y0,
                                                       xf[cells[sel]], yf[cells[sel]], k)
            diff[sel] = bullington_loss_db(d[sel], profiles[lo, tech == "2G"], tx_alt,
                                           rx_alt[cells[sel]], freq)
        # a 100 m cell is never closer than ~100 m to the antenna on average
        d_h = np.maximum(d, MIN_DISTANCE_M)
        hata = np.where(sub,
                        hata_loss_db(d_h, freq, height, rx_height_m=rx_height_m,
                                     environment="suburban"),
                        hata_loss_db(d_h, freq, height, rx_height_m=rx_height_m,
                                     environment="rural"))
        base = -hata - diff - shadow - forest_loss_db(forest[cells], freq)
        key = (str(first["operator"]), str(tech))
        for row in tgroup.itertuples():
            gain = sector_gain_db(bearing, row.true_azimuth_deg, 65.0)
            level = np.clip(row.true_eirp_dbm + gain + base, FLOOR_DBM, CEILING_DBM)
            level = level.astype(np.float32)
            out.append(((key, int(row.Index)), level))
    return cells, out


def compute_field(terrain: Terrain, tx: pd.DataFrame, towns: pd.DataFrame,
                  rng: np.random.Generator, *, rx_height_m: float = 1.5) -> Field:
    """Compute the true field of the active transmitters ``tx`` (see the module docstring)."""
    grid = terrain.grid
    x, y = grid.centres()
    xf = x.ravel().astype(np.float32)
    yf = y.ravel().astype(np.float32)
    rx_alt = terrain.dem_m.ravel().astype(float) + rx_height_m
    town = np.zeros(grid.shape, dtype=bool)
    for t in towns.itertuples():
        town |= np.hypot(x - t.x, y - t.y) <= t.radius_m
    town_f = town.ravel()
    common = gaussian_field(grid.shape, grid.cell_m, SHADOW_CORR_M, rng).ravel()
    forest = terrain.forest.ravel().astype(float)
    ops = sorted(tx["operator"].unique())
    n = grid.rows * grid.cols
    best = {(o, t): np.full(n, FLOOR_DBM, np.float32) for o in ops for t in TECHS}
    server = {(o, t): np.full(n, -1, np.int32) for o in ops for t in TECHS}
    total = {(o, t): np.zeros(n, np.float64) for o in ops for t in TECHS}
    active = tx[tx["status"] == "active"]
    groups = list(active.groupby("mast", sort=True))
    # one shadowing field per mast, drawn in order so the result does not depend on threads
    owns = [gaussian_field(grid.shape, grid.cell_m, SHADOW_CORR_M, rng).ravel()
            for _ in groups]
    ctx = (terrain, xf, yf, rx_alt, town_f, common, forest, rx_height_m)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(lambda a: _mast_levels(a[0][1], a[1], ctx),
                           zip(groups, owns, strict=True))
        for cells, levels in results:
            for (key, index), level in levels:
                b = best[key]
                better = level > b[cells]
                b[cells[better]] = level[better]
                server[key][cells[better]] = index
                total[key][cells] += 10.0 ** (level / 10.0)
    shape = grid.shape
    return Field({k: v.reshape(shape) for k, v in best.items()},
                 {k: v.reshape(shape) for k, v in server.items()},
                 {k: v.reshape(shape) for k, v in total.items()},
                 town)


def village_polygon_mask(villages, grid) -> NDArray[np.int32]:
    """Index of the village holding each DEM cell centre (-1 outside)."""
    x, y = grid.centres()
    pts = shapely.points(x.ravel(), y.ravel())
    tree = shapely.STRtree(villages.geometry.to_numpy())
    pi, vi = tree.query(pts, predicate="within")
    out = np.full(x.size, -1, np.int32)
    out[pi] = vi
    return out.reshape(grid.shape)
