r"""The hidden true radio field of a world: received level of every transmitter.

For each active transmitter and each cell of the DEM grid within reach,

.. math::

    P = \mathrm{EIRP} + b_{op} + G(\phi, \theta) - L_{median}(d, f, h_b) - L_{diff}
        - \sigma X(x, y) - L_{clutter}(x, y, f)

with the world's median-loss family and base-station height convention, its diffraction
construction over profiles of the hidden 50 m terrain (denser than the published 100 m DEM)
with the earth's bulge, the 3GPP antenna pattern with the world's downtilt (:math:`\theta`
the receiver's angle below the antenna), an EIRP bias :math:`b_{op}` per operator that no
table states, spatially correlated log-normal shadowing :math:`X` (unit Gaussian field with
exponential correlation, half shared between sites and half per site) and the receiver's
clutter: foliage in proportion to the forest density, built-up land in the towns, houses and
fields where people live. Every formula is :mod:`coverage.datasets.physics`'s; the choices are
the :class:`~coverage.datasets.worlds.WorldPhysics`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._grid import gaussian_field
from .physics import antenna_gain_db, diffraction_loss_db, median_loss_db
from .terrain import Terrain
from .worlds import WorldPhysics

__all__ = ["Field", "compute_field", "effective_heights_m"]

TECHS = ("2G", "3G", "4G")
RANGE_M = {"2G": 25_000.0, "3G": 15_000.0, "4G": 15_000.0}
FLOOR_DBM = -150.0
CEILING_DBM = -40.0   # below the mast the vertical pattern keeps handsets under ~-40 dBm
MIN_DISTANCE_M = 100.0
MIN_HEIGHT_M, MAX_HEIGHT_M = 10.0, 200.0   # the base-station height the formulas are given
EFFECTIVE_ANNULUS_M = (3000.0, 15000.0)    # Okumura's mean terrain, 3-15 km out
EFFECTIVE_SECTORS = 16


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


def clutter_loss_db(forest: NDArray, town: NDArray, hamlet: NDArray, freq_mhz: float,
                    physics: WorldPhysics) -> NDArray:
    """Receiver clutter loss, dB: foliage (forest density x f^0.3), towns, hamlets."""
    foliage = physics.foliage_db * forest * (freq_mhz / 900.0) ** 0.3
    return foliage + np.where(town, physics.builtup_db, np.where(hamlet, physics.hamlet_db, 0.0))


def effective_heights_m(dem_m: NDArray, grid, x0: float, y0: float, antenna_alt_m: float
                        ) -> NDArray[np.float64]:
    """Antenna altitude above the mean terrain 3-15 km out, per 22.5-degree sector, metres.

    Okumura's effective base-station height, along the bearing of each of
    ``EFFECTIVE_SECTORS`` sectors (north first, clockwise); a sector that leaves the grid
    uses the terrain it has, or the mast's own ground when it has none.
    """
    x, y = grid.centres()
    d = np.hypot(x - x0, y - y0)
    lo, hi = EFFECTIVE_ANNULUS_M
    ring = (d >= lo) & (d <= hi)
    sector = (np.degrees(np.arctan2(x - x0, y - y0)) % 360 // (360 / EFFECTIVE_SECTORS))
    sums = np.bincount(sector[ring].astype(int), weights=dem_m[ring], minlength=EFFECTIVE_SECTORS)
    counts = np.bincount(sector[ring].astype(int), minlength=EFFECTIVE_SECTORS)
    r, c = grid.index(np.array([x0]), np.array([y0]))
    own = float(dem_m[r[0], c[0]])
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), own)
    return antenna_alt_m - mean


def _base_heights(physics, group_height, tx_alt, bearing, rx_ground, eff_sector):
    if physics.height_convention == "mast":
        h = np.full(len(bearing), group_height)
    elif physics.height_convention == "effective":
        h = eff_sector[(bearing // (360 / EFFECTIVE_SECTORS)).astype(int) % EFFECTIVE_SECTORS]
    else:
        h = tx_alt - rx_ground
    return np.clip(h, MIN_HEIGHT_M, MAX_HEIGHT_M)


def _mast_levels(group, own, ctx):
    """Levels of every transmitter of one mast over the cells within its reach."""
    (terrain, xf, yf, rx_ground, town_f, hamlet_f, common, forest, rx_height_m, physics,
     bias, only, edges) = ctx
    fine, fine_grid = terrain.fine_m, terrain.fine_grid
    edges = fine if edges is None else edges
    first = group.iloc[0]
    x0, y0 = float(first["x"]), float(first["y"])
    reach = max(RANGE_M[t] for t in group["tech"])
    d_all = np.hypot(xf - np.float32(x0), yf - np.float32(y0))
    cells = np.flatnonzero((d_all <= reach) if only is None else (d_all <= reach) & only)
    d = d_all[cells].astype(float)
    # denser profile samples near the mast, where the hidden terrain matters most
    bands = [(0.0, 2000.0, 20), (2000.0, 6000.0, 36), (6000.0, reach + 1, 48)]
    ground = float(_profiles(fine, fine_grid, x0, y0, np.array([x0], np.float32),
                             np.array([y0], np.float32), 1)[0, 0])
    bearing = np.degrees(np.arctan2(xf[cells] - x0, yf[cells] - y0)) % 360
    shadow = physics.shadow_sigma_db * np.sqrt(0.5) * (common[cells] + own[cells])
    rx_alt = rx_ground[cells] + rx_height_m
    d_h = np.maximum(d, MIN_DISTANCE_M)
    eff = (effective_heights_m(terrain.dem_m, terrain.grid, x0, y0,
                               ground + float(first["true_height_m"]))
           if physics.height_convention == "effective" else None)
    profiles = {}
    out = []
    for tech, tgroup in group.groupby("tech", sort=True):
        freq = float(tgroup["freq_mhz"].iloc[0])
        height = float(tgroup["true_height_m"].iloc[0])
        tx_alt = ground + height
        near = d <= RANGE_M[tech]
        diff = np.full(len(cells), np.inf)
        for lo, hi, k in bands:
            sel = np.flatnonzero(near & (d >= lo) & (d < hi))
            if len(sel) == 0:
                continue
            if (lo, tech == "2G") not in profiles:
                profiles[lo, tech == "2G"] = _profiles(edges, fine_grid, x0, y0,
                                                       xf[cells[sel]], yf[cells[sel]], k)
            diff[sel] = diffraction_loss_db(d[sel], profiles[lo, tech == "2G"], tx_alt,
                                            rx_alt[sel], freq, method=physics.diffraction,
                                            formula=physics.knife_edge,
                                            earth_k=physics.earth_k)
        hb = _base_heights(physics, height, tx_alt, bearing, rx_ground[cells], eff)
        median = median_loss_db(physics.propagation, d_h / 1000.0, freq, hb, rx_height_m,
                                suburban=town_f[cells])
        below = np.degrees(np.arctan2(tx_alt - rx_alt, d_h))
        base = (-median - diff - shadow
                - clutter_loss_db(forest[cells], town_f[cells], hamlet_f[cells], freq, physics))
        key = (str(first["operator"]), str(tech))
        for row in tgroup.itertuples():
            az = None if not np.isfinite(row.true_azimuth_deg) else float(row.true_azimuth_deg)
            gain = antenna_gain_db(bearing, below, azimuth_deg=az,
                                   tilt_deg=physics.downtilt_deg,
                                   v_beamwidth_deg=physics.vertical_beamwidth_deg)
            level = np.clip(row.true_eirp_dbm + bias[key[0]] + gain + base, FLOOR_DBM,
                            CEILING_DBM)
            out.append(((key, int(row.Index)), level.astype(np.float32)))
    return cells, out


def compute_field(terrain: Terrain, tx: pd.DataFrame, towns: pd.DataFrame,
                  people_on_dem: NDArray, rng: np.random.Generator,
                  physics: WorldPhysics, eirp_bias_db: dict[str, float], *,
                  rx_height_m: float = 1.5, cells: NDArray[np.bool_] | None = None,
                  profile_m: NDArray | None = None) -> Field:
    """Compute the true field of the active transmitters ``tx`` (see the module docstring).

    ``people_on_dem`` (residents per DEM cell) marks the hamlets' clutter;
    ``eirp_bias_db`` maps each operator to its unstated EIRP bias, dB. ``cells`` (a mask
    on the DEM grid), when given, limits the computation to those cells: the others stay
    at the floor with no server and no power. The random draws do not depend on it, so a
    computed cell holds the level the whole field gives it (a diagnostic of the levels
    where people live, ``benchmarks/level_error.py``, computes a few variants of a
    world's field in a third of the time). ``profile_m``, when given, holds the heights on
    the hidden terrain's grid (``terrain.fine_grid``, metres) that the diffraction's
    profiles are drawn from instead of the hidden terrain's (the masts' ground stays the
    hidden terrain's): the same diagnostic draws the truth's diffraction over the published
    DEM.
    """
    grid = terrain.grid
    x, y = grid.centres()
    xf = x.ravel().astype(np.float32)
    yf = y.ravel().astype(np.float32)
    rx_ground = terrain.dem_m.ravel().astype(float)
    town = np.zeros(grid.shape, dtype=bool)
    for t in towns.itertuples():
        town |= np.hypot(x - t.x, y - t.y) <= t.radius_m
    hamlet = (np.nan_to_num(people_on_dem) > 0).ravel()
    common = gaussian_field(grid.shape, grid.cell_m, physics.shadow_corr_m, rng).ravel()
    forest = terrain.forest.ravel().astype(float)
    ops = sorted(tx["operator"].unique())
    n = grid.rows * grid.cols
    best = {(o, t): np.full(n, FLOOR_DBM, np.float32) for o in ops for t in TECHS}
    server = {(o, t): np.full(n, -1, np.int32) for o in ops for t in TECHS}
    total = {(o, t): np.zeros(n, np.float64) for o in ops for t in TECHS}
    active = tx[tx["status"] == "active"]
    groups = list(active.groupby("mast", sort=True))
    # one shadowing field per mast, drawn in order so the result does not depend on threads
    owns = [gaussian_field(grid.shape, grid.cell_m, physics.shadow_corr_m, rng).ravel()
            for _ in groups]
    only = None if cells is None else np.asarray(cells, dtype=bool).ravel()
    ctx = (terrain, xf, yf, rx_ground, town.ravel(), hamlet, common, forest, rx_height_m,
           physics, eirp_bias_db, only, profile_m)
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
