"""The cells of one sweep unit and the terms of their levels that need no terrain profile.

:func:`unit_geometry` finds the cells of the grid within a unit's radius (distances in
metres, ground heights in metres); :class:`SweepTerms` gives their terrain-free path loss
plus clutter (dB), bearings, antenna gains (dB, with :func:`vertical_gain`) and the rays
they read, on demand (once for several models with ``keep``); :func:`unit_cells` keeps
the cells the unit may still improve (an exact pruning, before any profile) with those
terms, for :func:`coverage.model.levels.unit_levels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import radio
from ..params import ModelParams
from .clutter import Clutter
from .grid import Grid
from .transmitters import TxRecord, terrain_free_loss_db

__all__ = ["SweepTerms", "unit_cells", "unit_geometry", "vertical_gain"]


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


def unit_cells(unit, members: list[TxRecord], grid: Grid, ground_of: Callable | None,
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
    by_freq: dict[float, list[TxRecord]] = {}
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
