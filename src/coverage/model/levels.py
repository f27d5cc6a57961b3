"""The levels of a sweep unit's cells, from their terrain-free terms and the unit's rays.

:func:`unit_levels` adds to the terms of :func:`coverage.model.unit_terms.unit_cells` the
terrain's diffraction (Bullington's edge parameter on the swept rays, :func:`unit_nu`, and
with ``delta_bullington`` the smooth-earth excess), or the loss at the effective Hata
height, or ITM's (:mod:`coverage.model.itm_grid`), and gives each transmitter's levels
(dBm, float32) at or above its floor to a sink. Distances in metres, losses in dB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import radio
from ..params import ModelParams
from .itm_grid import ItmRays, itm_flat_loss_db
from .itm_grid import loss_db as itm_loss_db
from .transmitters import terrain_free_loss_db

__all__ = ["unit_levels", "unit_nu"]


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
    """Levels of the transmitters of one sweep unit, given to ``sink(record, flat, level, d)``.

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
