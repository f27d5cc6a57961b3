"""The radial sweep's units and rays: one sweep per mast position and height.

:func:`prepare_units` groups the transmitters into sweep units (one per position and mast
height: rays spaced by the grid's cell size at the unit's radius, samples at the terrain's
step, in metres of the grid's metric CRS) and gives each its antenna's altitude;
:func:`sweep_batches` deals the units into batches of at most :data:`BATCH_RAYS` rays, and
:func:`sweep_rays` samples the terrain along a batch's rays and sweeps them together
(:class:`coverage.radio.RaySweep`; :class:`coverage.model.itm_grid.ItmRays` for ITM).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from .. import radio
from ..params import ModelParams
from .grid import Grid
from .itm_grid import ItmRays
from .terrain import ground_at
from .transmitters import TxRecord, tx_records

__all__ = ["BATCH_RAYS", "prepare_units", "sweep_batches", "sweep_rays"]

#: Rays swept together (bounds the memory of one batch: rays x samples x ~40 bytes; smaller
#: batches also keep the sweep's gathers in cache).
BATCH_RAYS = 6_000


def prepare_units(tx: pd.DataFrame, grid: Grid, heights: np.ndarray | None,
                   tgrid: Grid | None, params: ModelParams, *, lowest: bool = False
                   ) -> tuple[list[TxRecord], pd.DataFrame, float]:
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
    return tx_records(tx), units, step


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
    first, and more of the later units' cells are skipped
    (:func:`coverage.model.unit_terms.unit_cells`; the demo's tiles: 16% fewer cells
    evaluated). The order never changes a level.
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
