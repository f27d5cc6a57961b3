"""The model's transmitters: their link budgets and how far each can reach.

:func:`prepare_transmitters` puts the towers in the grid's metric CRS with every link-budget
field filled from their technology's defaults; :data:`FLOOR_DBM` is the level (dBm) under
which nothing is kept. Each transmitter's radius (metres) comes from the terrain-free path
loss (:func:`terrain_free_loss_db`, dB): :func:`useful_radii_m` with a DEM (it also sets the
rays of a site's sweep), :func:`reach_radii_m` without one (exact); :func:`within_reach`
leaves out those that cannot reach the grid. :class:`TxRecord` is one transmitter as plain
Python values, for the sweep's inner loops (:func:`tx_records`).
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from .. import itm, radio
from ..params import ModelParams
from .grid import Grid

__all__ = ["FLOOR_DBM", "TxRecord", "prepare_transmitters", "reach_radii_m",
           "terrain_free_loss_db", "transmitter_radii_m", "tx_records", "useful_radii_m",
           "useful_radius_m", "within_reach"]

log = logging.getLogger(__name__)

#: Levels below these are not kept (dBm): 15 dB under the lowest threshold of each technology.
FLOOR_DBM = {"2G": -117.0, "3G": -120.0, "4G": -125.0, "5G": -125.0}


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


class TxRecord(NamedTuple):
    """One transmitter's link budget as plain Python values (the inner loops read these)."""

    operator: str
    tech: str
    eirp_dbm: float
    freq_mhz: float
    azimuth_deg: float
    beamwidth_deg: float
    floor_dbm: float
    index: int  # row position in the transmitters' table


def tx_records(tx: pd.DataFrame) -> list[TxRecord]:
    """The transmitters as :class:`TxRecord` records, in ``tx``'s row order."""
    cols = [[str(v) for v in tx["operator"].tolist()], [str(v) for v in tx["tech"].tolist()]]
    cols += [tx[c].to_numpy(float).tolist() for c in ("eirp_dbm", "freq_mhz", "azimuth_deg",
                                                         "beamwidth_deg")]
    cols.append([FLOOR_DBM[t] for t in cols[1]])
    cols.append(list(range(len(tx))))
    return [TxRecord(*r) for r in zip(*cols, strict=True)]
