r"""Calibration of the model's layers to the tests: fits by distance, open and in shadow.

The first correction of :func:`coverage.model.fuse_measurements`: residuals of the tests
fitted as :math:`a + b \log_{10} d_{km}` per layer (:func:`fit_corrections`,
:class:`LayerFit`), apart in the open and in terrain shadow (:func:`open_trend`,
:func:`shadow_db`), and the layers corrected by them (:func:`calibrated_layer`,
:func:`calibrated_at`). :func:`hold_distances` keeps the server distances at a set of
cells, with the open-field trends made from the whole grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..calibrate import fit_intercept_slope, inverse_propensity
from .cells import CellValues, GridCells, HeldLayers, values_at
from .grid import CoverageSurfaces
from .observations import NO_SERVICE_DBM, Key
from .transmitters import FLOOR_DBM

__all__ = ["SHADOW_DB", "TREND_BINS", "TREND_SAMPLE", "LayerFit", "apply_calibration",
           "calibrated_at", "calibrated_layer", "corrections_at", "fit_corrections",
           "hold_distances", "inclusion_weights", "open_trend", "open_trends", "shadow_db"]


def _log_km(dist_m: np.ndarray) -> np.ndarray:
    # in the input's precision: float32 for the model's grids (the calibrated layers), so
    # the observations' float32 distances are read as float64 first (``to_numpy(float)``)
    return np.log10(np.maximum(dist_m, 50.0) / 1000.0)


class LayerFit(NamedTuple):
    r"""A layer's calibration: by distance, apart in the open and in terrain shadow.

    The correction at a cell of uncalibrated level :math:`P` (dBm) and server distance
    :math:`d` is ``weight`` times :math:`a + b x` in the open and
    :math:`a_s + b_s x` in shadow, :math:`x = \log_{10} d_{km}` held to the tested range
    (``log_km_range``: no extrapolation beyond the tests' distances). A cell is in shadow
    when it lies :data:`SHADOW_DB` or more under the layer's own open-field level at its
    distance (``trend``: the 90th percentile of the layer's levels per distance bin, what
    the model gives where nothing is in the way). Without tests enough in shadow
    (``a_shadow`` None), a shadowed cell takes the open correction only where it lowers:
    tests in towns near masts say nothing of the valleys behind the ridges.
    """

    a: float
    b: float
    n: int
    a_shadow: float | None = None
    b_shadow: float = 0.0
    log_km_range: tuple[float, float] = (-np.inf, np.inf)
    trend: tuple[np.ndarray, np.ndarray] | None = None
    weight: float = 1.0

    def at(self, level: np.ndarray, dist_m: np.ndarray) -> np.ndarray:
        """The correction (dB) at cells of uncalibrated ``level`` (dBm) and ``dist_m``."""
        raw = _log_km(np.nan_to_num(dist_m, nan=1000.0))
        x = np.clip(raw, *self.log_km_range)
        corr = self.a + self.b * x
        if self.trend is not None:
            shadow = shadow_db(self.trend, raw, level)
            under = (self.a_shadow + self.b_shadow * x if self.a_shadow is not None
                     else np.minimum(corr, 0.0))
            corr = np.where(shadow >= SHADOW_DB, under, corr)
        return self.weight * corr


#: A cell this far (dB) or more under its layer's open-field level at its distance is in
#: terrain (or clutter) shadow: about a knife edge with the first Fresnel zone half cut off
#: and more (ITU-R P.526: 6 dB at grazing incidence, 10-20 dB behind a ridge).
SHADOW_DB = 10.0
#: Distance bins of a layer's open-field level, and the cells sampled to find it.
TREND_BINS = 24
TREND_SAMPLE = 200_000


def open_trend(layer: np.ndarray, dist_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer's open-field level (dBm) by distance: log10 km bin centres and levels.

    The 90th percentile of the layer's levels in each of :data:`TREND_BINS` bins of log
    distance (a seeded sample of :data:`TREND_SAMPLE` cells at most), made non-increasing
    with distance: what the model gives where neither terrain nor clutter is in the way.
    """
    lv, dv = layer.reshape(-1), dist_m.reshape(-1)
    ok = _sample_finite(lv, dv, TREND_SAMPLE)
    x, y = _log_km(dv[ok]), lv[ok].astype(float)
    if len(x) < 10:
        return np.array([0.0]), np.array([np.nanmax(y) if len(y) else 0.0])
    edges = np.linspace(x.min(), x.max() + 1e-9, TREND_BINS + 1)
    which = np.clip(np.digitize(x, edges) - 1, 0, TREND_BINS - 1)
    centres, levels = [], []
    for k in range(TREND_BINS):
        sel = which == k
        if sel.sum() >= 5:
            centres.append(0.5 * (edges[k] + edges[k + 1]))
            levels.append(np.percentile(y[sel], 90))
    return np.asarray(centres), np.minimum.accumulate(np.asarray(levels))


def _sample_finite(a: np.ndarray, b: np.ndarray, size: int, *, chunk: int = 1 << 22
                   ) -> np.ndarray:
    """Flat positions where ``a`` and ``b`` are both finite (a seeded sample of ``size``).

    The same positions, in the same order, as ``default_rng(0).choice(ok, size,
    replace=False)`` of ``ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))``, without
    making ``ok``: the cells are counted and found ``chunk`` at a time (a national 100 m
    layer has over 100 million finite cells, ``ok`` alone 0.8 GB).
    """
    starts = range(0, a.size, chunk)

    def finite(s: int) -> np.ndarray:
        return np.flatnonzero(np.isfinite(a[s:s + chunk]) & np.isfinite(b[s:s + chunk])) + s

    counts = np.array([np.count_nonzero(np.isfinite(a[s:s + chunk])
                                        & np.isfinite(b[s:s + chunk])) for s in starts],
                      dtype=np.int64)
    total = int(counts.sum())
    if total <= size:
        return (np.concatenate([finite(s) for s in starts]) if len(counts)
                else np.zeros(0, np.int64))
    # positions among the finite cells, drawn as choice() over all of them draws them
    pick = np.random.default_rng(0).choice(total, size, replace=False)
    order = np.argsort(pick)
    ranked = pick[order]
    bounds = np.searchsorted(ranked, np.r_[0, np.cumsum(counts)])
    out = np.empty(size, dtype=np.int64)
    first = 0
    for k, s in enumerate(starts):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            out[order[lo:hi]] = finite(s)[ranked[lo:hi] - first]
        first += int(counts[k])
    return out


def shadow_db(trend: tuple[np.ndarray, np.ndarray], log_km: np.ndarray,
              level: np.ndarray) -> np.ndarray:
    """How far (dB) a level lies under the open-field level at its distance (NaN level: deep)."""
    expected = np.interp(log_km, trend[0], trend[1])
    return np.where(np.isfinite(level), expected - level, np.inf)


def fit_corrections(obs: pd.DataFrame, *, min_tests: int,
                    trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None = None,
                    propensity_floor: float | None = None) -> dict[Key, LayerFit]:
    """Calibration per layer by distance, apart in the open and in shadow, censored tests in.

    A layer with at least ``min_tests`` tests with a level gets its own fit; the others get
    the pooled fit of their technology when that has enough. Censored rows (no service, or
    fallen back under the layer's technology) enter as residuals of at most
    :data:`~coverage.model.observations.NO_SERVICE_DBM` minus the prediction
    (:func:`coverage.calibrate.fit_intercept_slope`'s ``upper_db``). With ``trends``
    (:func:`open_trend` per layer) the tests are split by terrain shadow
    (:class:`LayerFit`): the open cells' fit comes from the tests in the open, the
    shadowed cells' from the tests in shadow when they are ``min_tests`` or more (else
    the open fit, lowering only). With ``propensity_floor`` each test weighs by the inverse
    of its propensity to be taken (:func:`inclusion_weights`; a weighted likelihood).

    Per layer on purpose. A handset camps on 3G or 2G only where its operator's 4G is too
    weak, so a 3G layer is fitted on the places where 4G failed, where the model over-
    predicts 3G as well (the same ridge hides both): the demo's 3G fits come out 11 to 22 dB
    down, and the whole 3G layer sits 13 to 18 dB under the true field where people live.
    That is the error that matters, though: 3G decides a resident's broadband only where
    4G fails. One fit per operator shared by its technologies (each test once) brought the
    3G layers within 4 to 8 dB of the true field and lowered `unavailable` recall on two
    generated provinces (0.887 -> 0.821 and 0.821 -> 0.777), so it was not kept. Fitting a
    fallback layer only on the tests where the model, too, had the handset leave 4G gained
    two demo villages, none on seed 7, and cost the national run 30-40 s of kriging (longer
    fitted correlation lengths); not kept either.

    Parameters
    ----------
    obs : DataFrame
        The tests per layer (:func:`~coverage.model.observations.layer_observations`):
        ``operator``, ``tech``, ``pred`` and ``observed`` (dBm), ``dist_m`` (m, to the
        layer's best server) and ``censored``.
    min_tests : int
        Tests with a level a fit needs (a layer's own, its technology's pooled one, and
        the one in shadow).
    trends : mapping, optional
        ``(operator, tech) -> (log10 km, dBm)``: each layer's open-field level
        (:func:`open_trend`); without, one fit per layer, in the open and in shadow alike.
    propensity_floor : float, optional
        Floor of the inclusion propensity (:func:`inclusion_weights`); None: each test
        weighs the same.

    Returns
    -------
    dict
        ``(operator, tech) -> LayerFit`` for each layer with a fit of its own or of its
        technology (weight 1).
    """
    rows = _FitRows(obs, trends, propensity_floor)
    pooled = _pooled_fits(rows, trends or {}, min_tests)
    fits: dict[Key, LayerFit] = {}
    for key in {tuple(k) for k in obs[["operator", "tech"]].drop_duplicates().to_numpy()}:
        key = (str(key[0]), str(key[1]))
        got = rows.layer_fit(rows.of_layer(*key), (trends or {}).get(key), min_tests)
        if got is not None:
            fits[key] = got
        elif key[1] in pooled:
            fits[key] = pooled[key[1]]._replace(trend=(trends or {}).get(key,
                                                                          pooled[key[1]].trend))
    return fits


def _pooled_fits(rows: _FitRows, trends: Mapping[Key, tuple[np.ndarray, np.ndarray]],
                 min_tests: int) -> dict[str, LayerFit]:
    """Each technology's fit on the tests of all its operators, when they are enough.

    Parameters
    ----------
    rows : _FitRows
        The observations, as :func:`fit_corrections` reads them.
    trends : mapping
        Open-field trends per layer; a technology's pooled fit tells shadow by its first
        layer's trend (none: one fit, no shadow apart).
    min_tests : int
        Tests with a level a fit needs.

    Returns
    -------
    dict
        ``tech -> LayerFit`` for the technologies with ``min_tests`` tests or more.
    """
    pooled: dict[str, LayerFit] = {}
    for tech in rows.techs():
        trend = next((t for k, t in trends.items() if k[1] == tech), None)
        got = rows.layer_fit(rows.of_layer(None, tech), trend, min_tests)
        if got is not None:
            pooled[tech] = got
    return pooled


class _FitRows:
    """The observations of :func:`fit_corrections` as per-row arrays, and the fits of rows.

    Row numbers and per-row arrays, no frame subsets: a national run's observations are
    millions of rows, and copies of them were the classification's peak.

    Parameters
    ----------
    obs : DataFrame
        ``operator``, ``tech``, ``pred`` and ``observed`` (dBm), ``dist_m`` (m) and
        ``censored`` per observation.
    trends : mapping or None
        Open-field trends per layer: a row is in shadow when it lies :data:`SHADOW_DB` or
        more under its layer's trend (no trend: in the open).
    propensity_floor : float or None
        With a floor, each row weighs by its inverse inclusion propensity
        (:func:`inclusion_weights`).
    """

    def __init__(self, obs: pd.DataFrame,
                 trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None,
                 propensity_floor: float | None) -> None:
        pred, dist = obs.pred.to_numpy(float), obs.dist_m.to_numpy(float)
        good = np.isfinite(pred) & np.isfinite(dist)
        cens = obs.censored.to_numpy(bool)
        self.x = _log_km(dist)
        self.op_code, self.op_names = _label_codes(obs.operator)
        self.tech_code, self.tech_names = _label_codes(obs.tech)
        self.shadowed = np.zeros(len(obs), dtype=bool)
        for key, trend in (trends or {}).items():
            sel = self.of_layer(*key)
            if sel.any():
                self.shadowed[sel] = shadow_db(trend, self.x[sel], pred[sel]) >= SHADOW_DB
        self.resid = obs.observed.to_numpy(float) - pred
        # censored rows: residuals of at most the technology's no-service level
        self.upper = np.r_[[NO_SERVICE_DBM.get(t, np.nan) for t in self.tech_names],
                           np.nan][self.tech_code] - pred
        self.usable, self.bound = good & ~cens, good & cens
        self.ipw = (None if propensity_floor is None
                    else inclusion_weights(obs, propensity_floor))

    def techs(self) -> list[str]:
        """The technologies of the rows with a level, sorted."""
        return sorted({self.tech_names[c] for c in np.unique(self.tech_code[self.usable])
                       if c >= 0})

    def of_layer(self, op: str | None, tech: str) -> np.ndarray:
        """Whether each row is of layer (op, tech) (of technology ``tech``: op None)."""
        sel = self.tech_code == (self.tech_names.index(tech) if tech in self.tech_names
                                 else -2)
        if op is not None:
            sel &= self.op_code == (self.op_names.index(op) if op in self.op_names else -2)
        return sel

    def fit(self, g: np.ndarray, c: np.ndarray) -> tuple[float, float]:
        """Intercept and slope (dB, dB per decade) of rows ``g`` (levels), ``c`` (censored)."""
        ipw = self.ipw
        return fit_intercept_slope(self.resid[g], self.x[g], upper_db=self.upper[c],
                                   upper_log10_distance_km=self.x[c],
                                   weights=None if ipw is None else ipw[g],
                                   upper_weights=None if ipw is None else ipw[c])

    def layer_fit(self, sel: np.ndarray, trend: tuple[np.ndarray, np.ndarray] | None,
                  min_tests: int) -> LayerFit | None:
        """The fit of the rows ``sel`` marks, apart in shadow with a ``trend``.

        None under ``min_tests`` rows with a level; the shadow's own fit only with
        ``min_tests`` of them in shadow, the open one from all rows under that many in
        the open.
        """
        g, c = np.flatnonzero(self.usable & sel), np.flatnonzero(self.bound & sel)
        if len(g) < min_tests:
            return None
        span = tuple(float(v) for v in np.percentile(self.x[g], [2, 98]))
        if trend is None:
            a, b = self.fit(g, c)
            return LayerFit(a, b, len(g), log_km_range=span)
        go, co = g[~self.shadowed[g]], c[~self.shadowed[c]]
        gs, cs = g[self.shadowed[g]], c[self.shadowed[c]]
        a, b = self.fit(go, co) if len(go) >= min_tests else self.fit(g, c)
        a_s, b_s = self.fit(gs, cs) if len(gs) >= min_tests else (None, 0.0)
        return LayerFit(a, b, len(g), a_s, b_s, span, trend)


def _label_codes(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer code of each label (-1: missing) and the labels as text, in code order."""
    cat = labels.astype("category")  # no copy of a categorical column
    return cat.cat.codes.to_numpy(), [str(c) for c in cat.cat.categories]


def inclusion_weights(obs: pd.DataFrame, floor: float) -> np.ndarray:
    """Each observation's inverse inclusion propensity, at its own margin over losing service.

    :func:`coverage.calibrate.inverse_propensity` of the observed level over
    :data:`~coverage.model.observations.NO_SERVICE_DBM`; a censored row (no service, fallen
    back) takes the floor's.
    """
    lose = obs.tech.map(NO_SERVICE_DBM).to_numpy(float)
    margin = np.where(obs.censored.to_numpy(bool), -np.inf,
                      obs.observed.to_numpy(float) - lose)
    return inverse_propensity(margin, floor)


def corrections_at(fits: Mapping[Key, LayerFit], obs: pd.DataFrame) -> np.ndarray:
    """Each observation's calibration correction (dB; 0 where its layer has no fit)."""
    out = np.zeros(len(obs))
    for key, fit in fits.items():
        sel = ((obs.operator == key[0]) & (obs.tech == key[1])).to_numpy()
        if sel.any():
            out[sel] = fit.at(obs.pred.to_numpy(float)[sel], obs.dist_m.to_numpy(float)[sel])
    return np.nan_to_num(out)


def open_trends(surfaces: CoverageSurfaces, obs: pd.DataFrame
                 ) -> dict[Key, tuple[np.ndarray, np.ndarray]]:
    """:func:`open_trend` of every layer with observations and server distances.

    Distances held at cells (:func:`hold_distances`) bring the trends made from the whole
    grid when they were held.
    """
    keys = {(str(o), str(t)) for o, t in obs[["operator", "tech"]].drop_duplicates()
            .to_numpy()}
    held = surfaces.distance_m.trends if isinstance(surfaces.distance_m, HeldLayers) else None
    return {k: held[k] if held is not None else
            open_trend(surfaces.layers[k], surfaces.distance_m[k]) for k in sorted(keys)
            if k in surfaces.layers and k in surfaces.distance_m}


def hold_distances(surfaces: CoverageSurfaces, cells: GridCells) -> CoverageSurfaces:
    """``surfaces`` with their server distances kept at ``cells`` only.

    The classification reads the model's server distances at its villages' pieces and its
    tests' cells only (:func:`~coverage.model.fuse.fuse_measurements` with ``cells``,
    :func:`calibrated_at`), apart from the open-field trends (:func:`open_trend`), which
    sample the whole grid: those are made here, for every layer, and kept beside the distances
    (:class:`coverage.model.cells.HeldLayers`). A classification on a set of cells within
    ``cells`` then gives what it gives with the whole grids, value for value; a read
    elsewhere raises ``ValueError``. The layers and everything else are the same objects.

    Parameters
    ----------
    surfaces : CoverageSurfaces
        The model on its whole grid (``cells.grid``), distances included.
    cells : GridCells
        The cells to keep: those the classification reads or more
        (:func:`coverage.classify.metrics.classification_cells`).

    Returns
    -------
    CoverageSurfaces
        A new object; ``surfaces`` is not changed (drop it to free its distances: a
        national 100 m grid's are 0.5 GB a layer).
    """
    if cells.grid != surfaces.grid:
        raise ValueError("hold_distances: the cells are of another grid than the surfaces'")
    source = surfaces.distance_m
    if isinstance(source, HeldLayers):
        raise ValueError("hold_distances: the distances are held at cells already")
    trends = {k: open_trend(surfaces.layers[k], source[k]) for k in sorted(source)
              if k in surfaces.layers}
    return replace(surfaces, distance_m=HeldLayers.of(source, cells, trends))


def apply_calibration(out: CoverageSurfaces, fits: Mapping[Key, LayerFit]
                       ) -> None:
    """Correct each fitted layer by its ``a + b log10(d_km)`` (:func:`calibrated_layer`)."""
    for key in fits:
        if key in out.layers:
            out.layers[key] = calibrated_layer(out, key, fits)
    out.calibration = dict(fits)


def calibrated_layer(surfaces: CoverageSurfaces, key: Key,
                     fits: Mapping[Key, LayerFit]) -> np.ndarray:
    """One layer corrected by its calibration fit only (no kriging, no measured cells), dBm.

    ``fits`` as in ``fuse_measurements(...).calibration``; a new float32 array (the layer
    itself when there is no fit). The classification's estimates that weigh the model
    against the same tests (no-service shares) start from this, so the tests are not
    counted twice.
    """
    layer = surfaces.layers[key]
    fit, dist = fits.get(key), surfaces.distance_m.get(key)
    if fit is None or dist is None:
        return layer
    if isinstance(dist, CellValues):
        raise ValueError("calibrated_layer: the server distances are held at cells only "
                         "(hold_distances): calibrate at cells (calibrated_at)")
    return _corrected(layer, dist, fit, key[1])


def calibrated_at(surfaces: CoverageSurfaces, key: Key,
                  fits: Mapping[Key, LayerFit] | None,
                  cells: np.ndarray) -> np.ndarray:
    """One layer at some flat cells, corrected by its calibration fit, dBm (NaN: none).

    What :func:`calibrated_layer` gives at those cells, without making the whole layer:
    the classification weighs the calibrated model against tests at their cells only.
    """
    vals = surfaces.layers[key].reshape(-1)[cells].astype("float32")
    fit = fits.get(key) if fits else None
    dist = surfaces.distance_m.get(key)
    if fit is None or dist is None:
        return vals
    return _corrected(vals, values_at(dist, cells), fit, key[1])


def _corrected(level: np.ndarray, dist_m: np.ndarray, fit: LayerFit, tech: str
               ) -> np.ndarray:
    """``level`` + its correction (:meth:`LayerFit.at`), new float32; NaN under the floor."""
    shift = fit.at(level, dist_m)
    out = level + shift.astype("float32")
    out[out < FLOOR_DBM[tech]] = np.nan
    return out
