"""Several readings of the model for the same transmitters, from one sweep of the terrain.

Models that differ only in :data:`LEVEL_FIELDS` (the Hata height reading, the diffraction
method and its scale, the foliage loss) see the same terrain, rays, edge parameters,
distances and antenna gains: their levels differ by arithmetic on those terms. The
structure's cross-validation (:mod:`coverage.model.structure`) predicts eight such
candidates and their combinations at the tests' cells; :func:`predict_variants` sweeps the
terrain and computes the terms once per sweep unit (:class:`coverage.model.unit_terms.SweepTerms`,
at every cell of the unit within its radius), then each model's levels from them, with that
model's own pruning and best-server merge in the order :func:`predict_coverage` takes
(batch after batch). Each model's surfaces are those :func:`predict_coverage` gives it, to
the bit: the same elementwise operations on the same values, on more cells at once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from .. import radio
from ..io import Raster
from ..params import ModelParams
from .clutter import Clutter
from .grid import CoverageSurfaces, Grid
from .levels import unit_levels, unit_nu
from .predict import best_server_sink, predict_coverage
from .sweep import prepare_units, sweep_batches, sweep_rays
from .terrain import (
    float32_terrain,
    ground_on_grid,
    held_ground,
    release_float32_terrain,
    terrain_grid,
)
from .transmitters import prepare_transmitters, within_reach
from .unit_terms import SweepTerms, unit_cells, unit_geometry

__all__ = ["LEVEL_FIELDS", "predict_variants", "shares_sweep"]

#: The settings of :class:`ModelParams` that change a model's levels but not its sweep.
#: None of them enters the transmitters' radii over a DEM, their sweep units and rays, the
#: terrain grid, the receivers' clutter map or the antenna gains.
LEVEL_FIELDS = ("hata_height", "diffraction", "diffraction_scale", "foliage_loss_db",
                "foliage_db_per_decade")


def shares_sweep(params: ModelParams, other: ModelParams) -> bool:
    """Whether :func:`predict_variants` can predict both models from one sweep.

    They must differ in :data:`LEVEL_FIELDS` only, and neither be ITM (whose loss is
    computed along the rays, not from the terms).
    """
    if "itm" in (params.path_loss, other.path_loss):
        return False
    same = {f: getattr(params, f) for f in LEVEL_FIELDS}
    return dataclasses.replace(other, **same) == params


def predict_variants(towers: gpd.GeoDataFrame, grid: Grid, *, dem: Raster,
                     variants: Sequence[ModelParams], only: np.ndarray,
                     clutter: Clutter | None = None) -> list[CoverageSurfaces]:
    """Several models' levels at some cells, from one sweep of the terrain.

    The same, to the bit, as ``[predict_coverage(towers, grid, dem=dem, params=p,
    clutter=clutter, only=only) for p in variants]``.

    Parameters
    ----------
    towers : GeoDataFrame
        Transmitters as for :func:`predict_coverage` (any CRS).
    grid : Grid
        The metric grid to predict on.
    dem : Raster
        Elevation in metres (any CRS). Without one the models' reach differs with the
        Hata height (:func:`coverage.model.transmitters.reach_radii_m`): predict them apart.
    variants : sequence of ModelParams
        The models; each must share its sweep with the first (:func:`shares_sweep`).
    only : ndarray of int
        Flat (row-major) indices of the only cells to predict.
    clutter : Clutter, optional
        The receivers' clutter (:func:`coverage.model.clutter_map`), the same for every
        model (the clutter map reads none of :data:`LEVEL_FIELDS`).

    Returns
    -------
    list of CoverageSurfaces
        One per model, in order.
    """
    if not variants:
        return []
    base = variants[0]
    odd = [i for i, p in enumerate(variants) if not shares_sweep(base, p)]
    if odd:
        raise ValueError(f"the models at {odd} differ from the first in more than "
                         f"{', '.join(LEVEL_FIELDS)}, or are ITM: predict them apart")
    if len(variants) == 1:
        return [predict_coverage(towers, grid, dem=dem, params=base, clutter=clutter,
                                 only=only)]
    tx = within_reach(prepare_transmitters(towers, grid.crs, base), grid, base)
    heights, tgrid = terrain_grid(dem, grid, tx, base.terrain_step_m)
    ground = ground_on_grid(heights, tgrid, grid)
    out = [CoverageSurfaces(grid, dem=held_ground(ground), params=p) for p in variants]
    if tx.empty:
        return out
    clutter = clutter.on(grid) if clutter is not None else None
    records, units, step = prepare_units(
        tx, grid, heights, tgrid, base,
        lowest=any(p.hata_height == "effective" for p in variants))
    only = np.unique(np.asarray(only, np.int64))
    ground_of = ground.reshape(-1).__getitem__
    heights32 = float32_terrain(heights)
    sinks = [best_server_sink(s) for s in out]
    for batch in sweep_batches(units):
        terms = [_unit_terms(unit, grid, ground_of, clutter, only)
                 for unit in batch.itertuples()]
        # each model prunes the whole batch against its own layers, as predict_coverage
        cells = [[None if t is None else unit_cells(
                     t.unit, [records[i] for i in t.unit.members], grid, None, p,
                     s.layers, step_m=step, terms=t) for t in terms]
                 for p, s in zip(variants, out, strict=True)]
        sweep = None
        if base.terrain and any(t is not None for t in terms):
            sweep = sweep_rays(batch, heights32, tgrid, step, base,
                           lengths=_longest(batch, cells))
        first = np.concatenate([[0], np.cumsum(batch.rays.to_numpy())[:-1]])
        for u, (t, ray0) in enumerate(zip(terms, first, strict=True)):
            if t is None:
                continue
            got = [model[u] for model in cells]
            edges = (None if sweep is None
                     else _shared_edges(t, got, sweep, int(ray0), base, step))
            for p, sink, c in zip(variants, sinks, got, strict=True):
                unit_levels(t.unit, c, sweep, int(ray0), p, sink,
                             edges=None if edges is None else edges(c))
    release_float32_terrain(heights)
    return out


def _unit_terms(unit, grid: Grid, ground_of: Callable, clutter: Clutter | None,
                only: np.ndarray) -> SweepTerms | None:
    """The unit's terms, kept for every model (None: no cell within its radius)."""
    geo = unit_geometry(unit, grid, ground_of, only)
    return None if geo is None else SweepTerms(unit, geo, clutter, keep=True)


def _longest(batch: pd.DataFrame, cells: list[list[dict | None]]) -> np.ndarray:
    """Samples each ray of the batch must be swept to: the most any model reads.

    The sweep is causal (a sample depends on the samples before it only), so the rays
    swept for the longest reader give every shorter one its own values.
    """
    parts = []
    for u, rays in enumerate(batch.rays.to_numpy()):
        need = [model[u]["lengths"] for model in cells if model[u] is not None]
        parts.append(np.max(need, axis=0) if need else np.zeros(rays, np.int64))
    return np.concatenate(parts)


def _shared_edges(terms: SweepTerms, cells: list[dict], sweep: radio.RaySweep, ray0: int,
                  params: ModelParams, step: float
                  ) -> Callable[[dict], tuple[np.ndarray, Callable]]:
    """For one model's cells of a unit: their edge parameter and Bullington loss by frequency.

    Both are computed once, at the cells any model reads, and indexed per model (the
    ``edges`` of :func:`coverage.model.levels.unit_levels`).
    """
    geo = terms.geo
    read = np.zeros(geo["d"].size, bool)
    for c in cells:
        read[c["idx"]] = True
    union = np.flatnonzero(read)
    rank = np.cumsum(read) - 1  # a read cell's place in the union
    pos, rays, _ = terms.ray_reads(union, terms.bearing(union), params, step)
    nu = unit_nu({"dist": geo["dist"][union], "ground": geo["ground"][union], "pos": pos,
                   "rays": rays}, sweep, ray0, params)
    d = geo["d"][union]

    @functools.cache
    def loss_at(freq: float) -> np.ndarray:
        return radio.bullington_loss_from_nu(nu, d, freq)

    def edges(c: dict) -> tuple[np.ndarray, Callable]:
        at = rank[c["idx"]]
        return nu[at], lambda freq: loss_at(freq)[at]

    return edges
