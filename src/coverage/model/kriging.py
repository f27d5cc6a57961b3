"""Kriging of the calibrated model's residuals over the grid, and its variograms.

The second correction of :func:`coverage.model.fuse_measurements`: the residuals left after
calibration (:func:`kriging_residuals`), averaged per grid cell, kriged with an exponential
variogram per technology (:func:`fit_variograms`), or with one of the correlation lengths
and nuggets of :data:`KRIGE_VARIOGRAMS` (:func:`with_variogram`, chosen by
:func:`coverage.model.crossval.select_fusion`), only where they reach
(:data:`KRIGE_REACH`; :func:`krige_layers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..calibrate import Variogram, fit_variogram, krige_candidates
from ..engine import Engine, threads_for
from ..params import ModelParams
from .cells import GridCells
from .grid import CoverageSurfaces, Grid
from .observations import Key
from .transmitters import FLOOR_DBM

__all__ = ["KRIGE_REACH", "KRIGE_VARIOGRAMS", "fit_variograms", "krige_layers",
           "krige_point_candidates", "krige_points", "krige_shift", "kriging_residuals",
           "variogram_name", "with_variogram"]

log = logging.getLogger(__name__)

#: Kriging reaches this many correlation lengths from an observation; farther, the
#: correction is 0 (the covariance has fallen under 2% of the sill).
KRIGE_REACH = 4.0


#: Variograms the kriging's cross-validation tries, as (correlation length m, nugget
#: share of the sill), None taking the fitted one's (:func:`coverage.calibrate.
#: fit_variogram`): the fitted variogram, and correlation lengths of shadowing as measured
#: (Gudmundson 1991: about 500 m at 900 MHz in suburbs, shorter in towns, longer in open
#: country; 250-1,000 m) with half the residuals' variance as nugget (a test's own
#: noise, its handset and moment, beside the shadowing). A province's residuals are
#: clustered (villages, roads), so the fitted range is poorly fixed; its tests choose.
KRIGE_VARIOGRAMS: tuple[tuple[float | None, float | None], ...] = (
    (None, None), (250.0, 0.5), (500.0, 0.5), (1000.0, 0.5))


def kriging_residuals(obs: pd.DataFrame, corrected: np.ndarray) -> np.ndarray:
    """Observed minus corrected prediction; censored rows only where they pull down."""
    pred = np.where(np.isfinite(corrected), corrected, obs.tech.map(FLOOR_DBM).to_numpy(float))
    observed = obs.observed.to_numpy(float)
    cens = obs.censored.to_numpy(bool)
    observed = np.where(cens, np.minimum(pred, np.fmin(observed, pred)), observed)
    return observed - pred


def fit_variograms(obs: pd.DataFrame, resid: np.ndarray, grid: Grid) -> dict[str, Variogram]:
    """Exponential variogram per technology, fitted on residuals averaged per grid cell."""
    out = {}
    cells = obs.assign(resid=resid).groupby(["tech", "row", "col"], as_index=False).agg(
        x=("x", "mean"), y=("y", "mean"), resid=("resid", "mean"))
    for tech, g in cells.groupby("tech"):
        out[str(tech)] = fit_variogram(g.x.to_numpy(), g.y.to_numpy(), g.resid.to_numpy(),
                                       max_lag_m=max(20 * grid.resolution_m, 3000.0))
    return out


def with_variogram(fitted: Mapping[str, Variogram],
                    choice: tuple[float | None, float | None]) -> dict[str, Variogram]:
    """The fitted variograms with the correlation length and nugget share of ``choice``.

    The sill stays the residuals' variance; None keeps the fitted value.
    """
    range_m, nugget_share = choice
    out = {}
    for tech, v in fitted.items():
        sill = v.nugget_db2 + v.psill_db2
        share = v.nugget_db2 / sill if nugget_share is None and sill > 0 else (
            nugget_share if nugget_share is not None else 0.5)
        out[tech] = Variogram(share * sill, (1.0 - share) * sill,
                              v.range_m if range_m is None else float(range_m))
    return out


def variogram_name(choice: tuple[float | None, float | None]) -> str:
    """A variogram choice as text: ``fitted``, or ``range=500,nugget=0.5`` (``fitted`` parts)."""
    range_m, share = choice
    if range_m is None and share is None:
        return "fitted"
    return (f"range={'fitted' if range_m is None else f'{range_m:g}'},"
            f"nugget={'fitted' if share is None else f'{share:g}'}")


def krige_points(obs: pd.DataFrame, resid: np.ndarray, variogram: Variogram,
                  xq: np.ndarray, yq: np.ndarray, *, workers: int = 1) -> np.ndarray:
    """Kriged residual at query points from the observations averaged per grid cell."""
    return krige_point_candidates(obs, resid, [variogram], xq, yq, workers=workers)[0]


def krige_point_candidates(obs: pd.DataFrame, resid: np.ndarray, variograms: Sequence[Variogram],
                      xq: np.ndarray, yq: np.ndarray, *, workers: int = 1
                      ) -> list[np.ndarray]:
    """:func:`krige_points` under each of ``variograms``, the cells and neighbours shared."""
    cells = obs.assign(resid=resid).groupby(["row", "col"], as_index=False).agg(
        x=("x", "mean"), y=("y", "mean"), resid=("resid", "mean"), n=("resid", "size"))
    n = cells.n.to_numpy()
    noise = [v.nugget_db2 / n + 1e-6 for v in variograms]
    return krige_candidates(cells.x.to_numpy(), cells.y.to_numpy(), cells.resid.to_numpy(),
                            xq, yq, variograms, noise_db2=noise, reach=KRIGE_REACH,
                            workers=workers)


def _reach_mask(shape: tuple[int, int], row: np.ndarray, col: np.ndarray, reach: int
                ) -> np.ndarray:
    """Cells within ``reach`` cells (a square) of any of the given cells.

    A separable running maximum: linear in cells whatever the reach or the number of
    observed cells (a slice per observed cell cost a Python loop over them).
    """
    from scipy.ndimage import maximum_filter1d

    seen = np.zeros(shape, dtype=np.uint8)
    seen[row, col] = 1
    size = 2 * reach + 1
    seen = maximum_filter1d(seen, size, axis=0, mode="constant")
    return maximum_filter1d(seen, size, axis=1, mode="constant").astype(bool)


def _reach_positions(shape: tuple[int, int], row: np.ndarray, col: np.ndarray, reach: int,
                     flat: np.ndarray) -> np.ndarray:
    """Positions in ``flat`` (sorted flat cells) of the cells :func:`_reach_mask` marks.

    The mask is made a band of rows at a time, each band with the ``reach`` rows on either
    side that can reach it: the same cells, without a whole-grid mask (four arrays of 130
    million cells for a national grid at 100 m, in each process kriging a layer).
    """
    rows, cols = shape
    band = max(512, 8 * reach)
    order = np.argsort(row, kind="stable")
    row, col = row[order], col[order]
    out = []
    for r0 in range(0, rows, band):
        r1 = min(r0 + band, rows)
        lo, hi = np.searchsorted(flat, [r0 * cols, r1 * cols])
        if lo == hi:
            continue
        a0, a1 = max(r0 - reach, 0), min(r1 + reach, rows)
        i0, i1 = np.searchsorted(row, [a0, a1])
        if i0 == i1:
            continue
        mask = _reach_mask((a1 - a0, cols), row[i0:i1] - a0, col[i0:i1], reach)
        here = mask.reshape(-1)[flat[lo:hi] - a0 * cols]
        out.append(lo + np.flatnonzero(here))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def krige_shift(corr: np.ndarray, params: ModelParams) -> np.ndarray:
    """The kriged correction as applied: lowering only unless ``params.krige_lifts``."""
    return corr if params.krige_lifts else np.minimum(corr, 0.0)


def krige_layers(out: CoverageSurfaces, obs: pd.DataFrame, *, grid: Grid | None = None,
                  at: GridCells | None = None, workers: int = 1, lift: bool = True,
                  engine: Engine | None = None,
                  variogram: tuple[float | None, float | None] = (None, None),
                  keep: np.ndarray | None = None) -> None:
    """Add the kriged residuals to every layer with observations, where they reach.

    Kriging is local: a cell farther than :data:`KRIGE_REACH` correlation lengths from every
    observation of its layer gets a correction of exactly 0 (the simple-kriging mean), so
    only the cells of a square of that half-width around the observed cells are queried,
    in chunks (:func:`coverage.calibrate.simple_krige`), and a layer changes only where
    the correction is not 0 (a cell the model leaves below the floor stays empty unless
    an observation within reach says otherwise). The layers are kriged through ``engine``
    (in this process by default) and each is changed here by its own kriging only, as it
    comes: the result does not depend on the engine.

    Parameters
    ----------
    out : CoverageSurfaces
        The calibrated surfaces, on the whole ``grid`` or at its cells ``at``; their layers
        are changed in place.
    obs : DataFrame
        The tests per layer (``operator``, ``tech``, ``x``, ``y``, ``row``, ``col``,
        ``observed``, ``censored``), ``pred`` calibrated (dBm).
    grid : Grid, optional
        The whole grid (by default ``out.grid``).
    at : GridCells, optional
        ``out`` holds these cells of ``grid`` only: only those are kriged.
    workers : int
        Threads of each kriging.
    lift : bool
        False: only the residuals' negative part (the correction lowers a layer, never
        lifts it; ``ModelParams.krige_lifts``).
    engine : Engine, optional
        Where the layers' pieces are kriged (by default in this process).
    variogram : tuple
        The correlation length (m) and nugget share chosen (:data:`KRIGE_VARIOGRAMS`;
        None: the fitted one's).
    keep : ndarray of int, optional
        Flat cells of the whole grid (sorted; the cells with tests) whose correction is
        kept in ``out.kriged_at_tests``.
    """
    grid = grid or out.grid
    resid = kriging_residuals(obs, obs.pred.to_numpy(float))
    variograms = with_variogram(fit_variograms(obs, resid, grid), variogram)
    engine = engine or Engine()
    # each task carries its layer's observations (nothing large is sent to every worker)
    # and kriges one of ``pieces`` runs of the layer's cells, so that the layers' work
    # spreads evenly over the engine's workers; each layer is changed by its own kriging
    # only, as the results come
    pieces = engine.processes if engine.is_local else 1
    tasks = [(key, g[["x", "y", "row", "col"]].assign(resid=resid[g.index.to_numpy()]),
              piece, pieces)
             for key, g in obs.groupby(["operator", "tech"]) for piece in range(pieces)]
    at_tests: dict[Key, list[tuple[np.ndarray, np.ndarray]]] = {}
    changed: dict[Key, list[int]] = {}
    for (op, tech), n_obs, near, pos, corr in engine.imap(
            _krige_layer, tasks, variograms=variograms, grid=grid, at=at, lift=lift,
            workers=workers):
        key = (str(op), str(tech))
        _add_correction(out.layers[key], pos, corr, key[1])
        if keep is not None:
            at_tests.setdefault(key, []).append(_at_cells(keep, near, corr))
        changed.setdefault(key, [n_obs, 0])[1] += len(near)
    for key, parts in at_tests.items():
        out.kriged_at_tests[key] = _sorted_cells(parts)
    for (op, tech), (n_obs, cells) in changed.items():
        v = variograms[tech]
        log.info("kriged %s %s residuals: %d points, range %.0f m, sill %.1f dB2, %d cells "
                 "within reach", op, tech, n_obs, v.range_m, v.psill_db2 + v.nugget_db2,
                 cells)


def _add_correction(layer: np.ndarray, pos: np.ndarray, corr: np.ndarray, tech: str) -> None:
    """Add the kriged correction to a layer at flat positions ``pos``, in place.

    Parameters
    ----------
    layer : ndarray of float32
        The layer's levels, dBm (NaN: under the floor); changed in place.
    pos : ndarray of int
        Flat positions in ``layer``.
    corr : ndarray of float
        The correction at each position, dB.
    tech : str
        The layer's technology: an empty cell starts from its floor
        (:data:`~coverage.model.transmitters.FLOOR_DBM`), and a level under it is emptied.
    """
    flat = layer.reshape(-1)
    level = flat[pos]
    vals = np.where(np.isnan(level), FLOOR_DBM[tech], level) + corr
    vals[vals < FLOOR_DBM[tech]] = np.nan
    flat[pos] = vals.astype("float32")


def _at_cells(keep: np.ndarray, near: np.ndarray, corr: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``near`` that ``keep`` (sorted flat cells) holds, and their ``corr``.

    The sorted cells with tests are looked up, not the (national: tens of millions of)
    cells within reach sorted.
    """
    i = np.minimum(np.searchsorted(keep, near), max(len(keep) - 1, 0))
    hit = np.flatnonzero(keep[i] == near) if len(keep) else np.zeros(0, dtype=np.int64)
    return near[hit], corr[hit]


def _sorted_cells(parts: Sequence[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of (flat cells, corrections) joined, in order of cell (int64, float32)."""
    near = np.concatenate([n for n, _ in parts])
    order = np.argsort(near, kind="stable")
    return (near[order].astype(np.int64),
            np.concatenate([c for _, c in parts])[order].astype("float32"))


def _krige_layer(task: tuple[Key, pd.DataFrame, int, int], *,
                 variograms: Mapping[str, Variogram], grid: Grid, at: GridCells | None,
                 lift: bool, workers: int
                 ) -> tuple[Key, int, np.ndarray, np.ndarray, np.ndarray]:
    """A piece of one layer's kriged residuals, for :func:`krige_layers`.

    ``task`` is the layer's (operator, technology), its observations (``x``, ``y``,
    ``row``, ``col`` and ``resid``, dB), and which of how many pieces: the layer's cells
    within reach cut into that many runs (in order), of which this kriges one. Returns
    the layer's key, its observations' number, the flat grid cells of the piece the
    correction changes, their positions in the layer (the same on the whole grid; in the
    set ``at`` at its cells) and the correction (dB).
    """
    key, g, piece, pieces = task
    v = variograms[str(key[1])]
    # only cells within reach of an observation can change
    reach = int(np.ceil(KRIGE_REACH * v.range_m / grid.resolution_m))
    if at is None:
        near = pos = np.flatnonzero(_reach_mask(grid.shape, g["row"].to_numpy(),
                                                g["col"].to_numpy(), reach))
    else:  # the set's cells within reach, and their positions in the set
        pos = _reach_positions(grid.shape, g["row"].to_numpy(), g["col"].to_numpy(), reach,
                               at.flat)
        near = at.flat[pos]
    # runs of neighbouring cells: their kriging systems are shared (calibrate._shared_systems)
    lo, hi = (len(near) * piece) // pieces, (len(near) * (piece + 1)) // pieces
    near, pos = near[lo:hi], pos[lo:hi]
    nr, nc = np.divmod(near, grid.shape[1])
    x0, y0 = grid.transform.c, grid.transform.f
    corr = krige_points(g, g["resid"].to_numpy(), v, x0 + (nc + 0.5) * grid.transform.a,
                         y0 + (nr + 0.5) * grid.transform.e, workers=threads_for(workers))
    if not lift:
        corr = np.minimum(corr, 0.0)
    hit = corr != 0.0
    return key, len(g), near[hit], pos[hit], corr[hit]
