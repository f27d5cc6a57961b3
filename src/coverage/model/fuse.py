r"""Fusion of the predicted surfaces with measurements.

:func:`fuse_measurements` does, per (operator, technology) layer:

1. **Calibration.** Residuals :math:`r = P_{measured} - P_{model}` of the point tests with
   an RSRP (RSCP, 2G level) are fitted as :math:`a + b \log_{10} d_{km}` by robust least
   squares (:func:`coverage.calibrate.fit_intercept_slope`), :math:`d` the distance to the
   layer's best server; an operator/technology with fewer than
   ``params.min_calibration_tests`` tests takes its technology's pooled fit (or none).
   The whole layer is corrected by :math:`a + b \log_{10} d_{km}`.
2. **Residual kriging.** The residuals left after calibration, averaged per grid cell, are
   kriged over the grid (:func:`coverage.calibrate.simple_krige`) with an exponential
   variogram fitted per technology (:func:`coverage.calibrate.fit_variogram`), or with the
   correlation length and nugget the province's tests chose among
   :data:`KRIGE_VARIOGRAMS` (:func:`select_fusion`): a measured
   dead zone pulls the surface down around it, and the correction fades to the calibrated
   model a few correlation lengths away. With ``params.krige_lifts`` False (the
   default) the correction only lowers: tests gather where the signal is
   good, and their lift spread over a village's untested houses can call unserved
   villages served. A no-service test
   (``tech`` = ``none``) stands for a level at most :data:`NO_SERVICE_DBM` on every layer
   of its operator (of every operator when it names none), a censored observation used by
   the kriging only.
3. **Measured cells.** A measured cell takes the median measured level of its operator
   and technology; where at least half of the tests of an operator there report no service
   (or fell back under a technology) that layer is cleared at the cell. Within ``radius_m``
   the correction the measurement made at its cell carries over to the cells around it, on
   top of the model's variation between them: the contract's "by measurement where there is
   one nearby". Copying the measured level itself over the disc would paint a tested road's
   level on the houses behind the ridge beside it (with the demo's hidden true field as the
   model, copying moved villages the true field classed right into the wrong class).

Ookla tiles and point tests are also aggregated to the grid (:func:`aggregate_measurements`)
and kept in ``surfaces.measured`` beside the signal. :func:`cross_validate` reports the error
of the model, the calibrated model and the fused model on held-out tests (spatial k-fold).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from scipy.special import ndtr

from ..calibrate import (
    Variogram,
    fit_intercept_slope,
    fit_variogram,
    inverse_propensity,
    krige_candidates,
)
from ..engine import Engine, threads_for
from ..errors import InputError
from ..params import BROADBAND_TECHS, ModelParams
from .cells import CellValues, GatheredLayers, GridCells, HeldLayers, values_at
from .grid import CoverageSurfaces, Grid, points_xy
from .predict import FLOOR_DBM

__all__ = ["NO_SERVICE_DBM", "FusionChoice", "LayerFit", "aggregate_measurements",
           "calibrated_at", "calibrated_layer", "cross_validate", "fuse_measurements",
           "hold_distances",
           "measurement_xy", "select_fusion"]

log = logging.getLogger(__name__)

#: Level a no-service test stands for (at most), dBm: about where handsets lose the network.
NO_SERVICE_DBM = {"2G": -108.0, "3G": -117.0, "4G": -122.0, "5G": -122.0}

#: Technologies a handset falls back to when its operator's higher one is too weak to camp
#: on: a test of an operator on 3G or 2G says that operator's 4G there is below where handsets
#: leave it (:data:`NO_SERVICE_DBM`), a censored observation like a no-service test. 5G is left
#: out: many handsets cannot use it, so a 4G test says nothing about 5G.
FALLBACK_BELOW = {"4G": ("3G", "2G"), "3G": ("2G",)}

Key = tuple[str, str]
#: Kriging reaches this many correlation lengths from an observation; farther, the
#: correction is 0 (the covariance has fallen under 2% of the sill).
KRIGE_REACH = 4.0


def measurement_xy(measurements: pd.DataFrame, crs) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (x, y) in ``crs`` of the tests of a GeoDataFrame or of a plain table.

    A GeoDataFrame (any CRS) gives its points' coordinates (:func:`points_xy`); a plain
    DataFrame gives its ``lon``/``lat`` columns (degrees, EPSG:4326), the form of the
    contract's CSV. Ten million tests as two coordinate columns take 160 MB; as shapely
    points, about 1 GB more.

    Raises
    ------
    InputError
        A plain table without ``lon`` and ``lat``.
    """
    if isinstance(measurements, gpd.GeoDataFrame):
        return points_xy(measurements.geometry, crs)
    if not {"lon", "lat"} <= set(measurements.columns):
        raise InputError("measurements: a table without geometry needs 'lon' and 'lat' "
                         "columns (degrees, EPSG:4326); got columns "
                         f"{list(measurements.columns)[:12]}; read the file with "
                         "coverage.io.read_measurements or add the two columns")
    from pyproj import Transformer

    lon = pd.to_numeric(measurements["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(measurements["lat"], errors="coerce").to_numpy(dtype=float)
    if CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        return lon, lat
    return Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)


def aggregate_measurements(measurements: gpd.GeoDataFrame | None, grid: Grid, *,
                           xy: tuple[np.ndarray, np.ndarray] | None = None
                           ) -> dict[str, np.ndarray]:
    """Point tests and Ookla tiles on the grid: tests, speeds, latency, no-service share.

    Each observation counts with its ``weight`` (1 for a point test, the tile's ``tests``
    for an Ookla tile, placed at the tile's centre). Returns float32 arrays of
    ``grid.shape``: ``tests`` (0 where none), and weighted means ``download_mbps``,
    ``upload_mbps``, ``latency_ms`` and ``no_service_share`` (NaN where no test says).
    """
    if measurements is None or measurements.empty:
        out = {"tests": np.zeros(grid.shape, "float32")}
        for name in ("download_mbps", "upload_mbps", "latency_ms", "no_service_share"):
            out[name] = np.full(grid.shape, np.nan, "float32")
        return out
    return _aggregate(measurements, grid, TestCells.locate(measurements, grid, xy=xy))


@dataclass(frozen=True)
class TestCells:
    """Tests placed on a grid once: their cells, and those cells numbered compactly.

    Attributes
    ----------
    inside : ndarray of bool
        Tests on the grid.
    cell : ndarray of int64
        Flat grid cell of each test on the grid (``inside`` rows, in order).
    ucell : ndarray of int64
        The distinct cells with tests, in (row, col) order.
    code : ndarray of int64
        Position in ``ucell`` of each test on the grid: sums per cell go to a compact
        :func:`numpy.bincount` of the cells with tests, not of the whole grid.
    """

    inside: np.ndarray
    cell: np.ndarray
    ucell: np.ndarray
    code: np.ndarray

    @classmethod
    def locate(cls, measurements: pd.DataFrame, grid: Grid, *,
               xy: tuple[np.ndarray, np.ndarray] | None = None) -> TestCells:
        """Place the tests (coordinates ``xy`` in the grid's CRS when given)."""
        x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
        row, col, inside = grid.index(x, y)
        cell = (row * grid.shape[1] + col)
        cell = cell if inside.all() else cell[inside]
        del row, col
        ucell, code = _unique_cells(cell.astype(np.int64, copy=False),
                                    grid.shape[0] * grid.shape[1])
        return cls(inside, cell, ucell, code)


def _aggregate(measurements: pd.DataFrame, grid: Grid, cells: TestCells
               ) -> dict[str, np.ndarray]:
    """:func:`aggregate_measurements` of tests already placed."""
    inside = cells.inside
    every = bool(inside.all())  # then no copy of the rows: 10 million of them are big

    def column(name: str, fill: float) -> np.ndarray:
        if name not in measurements.columns:
            return np.full(int(inside.sum()), fill)
        v = pd.to_numeric(measurements[name], errors="coerce").to_numpy(dtype=float)
        return v if every else v[inside]

    def on_grid(values: np.ndarray, fill: float) -> np.ndarray:
        """Per measured cell values onto the grid (float32, ``fill`` elsewhere)."""
        out = np.full(grid.shape, fill, "float32")
        out.reshape(-1)[cells.ucell] = values
        return out

    k = len(cells.ucell)
    code = cells.code
    weight = column("weight", 1.0)
    weight = np.where(np.isnan(weight), 1.0, weight)
    out = {"tests": on_grid(np.bincount(code, weights=weight, minlength=k), 0.0)}
    names = ("download_mbps", "upload_mbps", "latency_ms", "no_service_share")
    values = {name: column(name, np.nan) for name in names[:3]}
    if "tech" in measurements.columns:  # integer codes: no comparison of 10M strings
        tcode, uniques = pd.factorize(measurements["tech"])
        tcode = tcode if every else tcode[inside]
        none = np.r_[np.asarray(uniques, dtype=object) == "none", False][tcode]
        known = tcode >= 0  # Ookla tiles: tech unknown
    else:
        none = known = np.zeros(len(code), dtype=bool)
    values["no_service_share"] = np.where(known, none.astype(float), np.nan)
    for name, v in values.items():
        ok = np.isfinite(v)
        num = np.bincount(code[ok], weights=(v * weight)[ok], minlength=k)
        den = np.bincount(code[ok], weights=weight[ok], minlength=k)
        out[name] = on_grid(np.divide(num, den, out=np.full(k, np.nan), where=den > 0),
                            np.nan)
    return out


def _sample(array: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    return array[row, col].astype(float)


def _observations(surfaces: CoverageSurfaces, measurements: gpd.GeoDataFrame,
                  techs: tuple[str, ...], xy: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> pd.DataFrame:
    """One row per (test, layer) it informs: observed level, prediction, server distance.

    ``censored`` rows come from no-service tests: the level there is at most ``observed``.
    A lean table (a national run has millions of rows): ``operator`` and ``tech``
    categorical, ``row``/``col`` 32-bit, ``pred`` and ``dist_m`` float32 as the model holds
    them (read them with ``to_numpy(float)``: the same values as float64), ``x``, ``y`` and
    ``observed`` float64.
    """
    grid = surfaces.grid
    x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
    row, col, inside = grid.index(x, y)
    cols = grid.shape[1]
    # integer codes of the labels: one comparison of small integers per layer
    tcode, tnames = pd.factorize(measurements["tech"].astype(object))
    ocode, onames = pd.factorize(measurements["operator"].astype(object))
    tnames, onames = [str(t) for t in tnames], [str(o) for o in onames]

    def code_of(names: list[str], *wanted: str) -> list[int]:
        return [i for i, name in enumerate(names) if name in wanted]

    rsrp = pd.to_numeric(measurements["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)
    keys = [k for k in sorted(surfaces.layers) if k[1] in techs]
    ops, layer_techs = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _OBS_COLUMNS}
    for lop, ltech in keys:
        layer, dist = surfaces.layers[lop, ltech], surfaces.distance_m.get((lop, ltech))
        is_op = np.isin(ocode, code_of(onames, lop))
        measured = inside & np.isin(tcode, code_of(tnames, ltech)) & is_op & np.isfinite(rsrp)
        none = inside & ((np.isin(tcode, code_of(tnames, "none")) & (is_op | (ocode < 0)))
                         | (is_op & np.isin(tcode, code_of(tnames,
                                                           *FALLBACK_BELOW.get(ltech, ())))))
        for sel, censored in ((measured, False), (none, True)):
            idx = np.flatnonzero(sel)
            if not idx.size:
                continue
            r, c = row[idx], col[idx]
            pred = layer[r, c]
            observed = (np.minimum(pred.astype(float), NO_SERVICE_DBM[ltech]) if censored
                        else rsrp[idx])
            n = idx.size
            for name, values in (
                    ("operator", np.full(n, ops.index(lop), np.int8)),
                    ("tech", np.full(n, layer_techs.index(ltech), np.int8)),
                    ("x", x[idx]), ("y", y[idx]), ("row", r.astype(np.int32)),
                    ("col", c.astype(np.int32)), ("observed", observed),
                    ("pred", pred.astype(np.float32)),
                    ("dist_m", (values_at(dist, r * cols + c).astype(np.float32)
                                if dist is not None
                                else np.full(n, np.nan, np.float32))),
                    ("censored", np.full(n, censored))):
                parts[name].append(values)
    dtypes = {"operator": np.int8, "tech": np.int8, "x": float, "y": float,
              "row": np.int32, "col": np.int32, "observed": float, "pred": np.float32,
              "dist_m": np.float32, "censored": bool}
    columns = {}
    for name in _OBS_COLUMNS:  # one column at a time: the pieces go as it is made
        values = (np.concatenate(parts.pop(name)) if parts[name]
                  else np.zeros(0, dtypes[name]))
        if name in ("operator", "tech"):
            values = pd.Categorical.from_codes(
                values, categories=(ops if name == "operator" else layer_techs) or [""])
        columns[name] = values
    return pd.DataFrame(columns, copy=False)  # fresh arrays: no second copy of them


#: The columns of :func:`_observations`, in order.
_OBS_COLUMNS = ("operator", "tech", "x", "y", "row", "col", "observed", "pred", "dist_m",
                "censored")


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
    :data:`NO_SERVICE_DBM` minus the prediction
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
    """
    # row numbers and per-row arrays, no frame subsets: a national run's observations are
    # millions of rows, and copies of them were the classification's peak
    pred, dist = obs.pred.to_numpy(float), obs.dist_m.to_numpy(float)
    good = np.isfinite(pred) & np.isfinite(dist)
    cens = obs.censored.to_numpy(bool)
    x_all = _log_km(dist)
    op_code, op_names = _label_codes(obs.operator)
    tech_code, tech_names = _label_codes(obs.tech)

    def rows_of(op: str | None, tech: str) -> np.ndarray:
        """Whether each row is of layer (op, tech) (of technology ``tech``: op None)."""
        sel = tech_code == (tech_names.index(tech) if tech in tech_names else -2)
        if op is not None:
            sel &= op_code == (op_names.index(op) if op in op_names else -2)
        return sel

    shadowed = np.zeros(len(obs), dtype=bool)
    if trends:
        for key, trend in trends.items():
            sel = rows_of(*key)
            if sel.any():
                shadowed[sel] = shadow_db(trend, x_all[sel], pred[sel]) >= SHADOW_DB
    resid = obs.observed.to_numpy(float) - pred
    upper = np.r_[[NO_SERVICE_DBM.get(t, np.nan) for t in tech_names], np.nan][tech_code] - pred
    usable, bound = good & ~cens, good & cens
    ipw = None if propensity_floor is None else inclusion_weights(obs, propensity_floor)

    def fit(g: np.ndarray, c: np.ndarray) -> tuple[float, float]:
        return fit_intercept_slope(resid[g], x_all[g], upper_db=upper[c],
                                   upper_log10_distance_km=x_all[c],
                                   weights=None if ipw is None else ipw[g],
                                   upper_weights=None if ipw is None else ipw[c])

    def layer_fit(g: np.ndarray, c: np.ndarray, trend) -> LayerFit | None:
        """The fit of rows ``g`` (levels) and ``c`` (censored), row numbers in order."""
        if len(g) < min_tests:
            return None
        xs = x_all[g]
        span = (float(np.percentile(xs, 2)), float(np.percentile(xs, 98)))
        if trend is None:
            a, b = fit(g, c)
            return LayerFit(a, b, len(g), log_km_range=span)
        go, co = g[~shadowed[g]], c[~shadowed[c]]
        gs, cs = g[shadowed[g]], c[shadowed[c]]
        a, b = fit(go, co) if len(go) >= min_tests else fit(g, c)
        a_s, b_s = fit(gs, cs) if len(gs) >= min_tests else (None, 0.0)
        return LayerFit(a, b, len(g), a_s, b_s, span, trend)

    fits: dict[Key, LayerFit] = {}
    pooled: dict[str, LayerFit] = {}
    for tech in sorted({tech_names[c] for c in np.unique(tech_code[usable]) if c >= 0}):
        # the technology's pooled fit, with the shadow of its first layer's trend
        trend = next((t for k, t in (trends or {}).items() if k[1] == tech), None)
        sel = rows_of(None, tech)
        got = layer_fit(np.flatnonzero(usable & sel), np.flatnonzero(bound & sel), trend)
        if got is not None:
            pooled[tech] = got
    for key in {tuple(k) for k in obs[["operator", "tech"]].drop_duplicates().to_numpy()}:
        key = (str(key[0]), str(key[1]))
        sel = rows_of(*key)
        got = layer_fit(np.flatnonzero(usable & sel), np.flatnonzero(bound & sel),
                        (trends or {}).get(key))
        if got is not None:
            fits[key] = got
        elif key[1] in pooled:
            fits[key] = pooled[key[1]]._replace(trend=(trends or {}).get(key,
                                                                          pooled[key[1]].trend))
    return fits


def _label_codes(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer code of each label (-1: missing) and the labels as text, in code order."""
    cat = labels.astype("category")  # no copy of a categorical column
    return cat.cat.codes.to_numpy(), [str(c) for c in cat.cat.categories]


def _correction(fits: Mapping[Key, LayerFit], obs: pd.DataFrame) -> np.ndarray:
    out = np.zeros(len(obs))
    for key, fit in fits.items():
        sel = ((obs.operator == key[0]) & (obs.tech == key[1])).to_numpy()
        if sel.any():
            out[sel] = fit.at(obs.pred.to_numpy(float)[sel], obs.dist_m.to_numpy(float)[sel])
    return np.nan_to_num(out)


def _residuals(obs: pd.DataFrame, corrected: np.ndarray) -> np.ndarray:
    """Observed minus corrected prediction; censored rows only where they pull down."""
    pred = np.where(np.isfinite(corrected), corrected, obs.tech.map(FLOOR_DBM).to_numpy(float))
    observed = obs.observed.to_numpy(float)
    cens = obs.censored.to_numpy(bool)
    observed = np.where(cens, np.minimum(pred, np.fmin(observed, pred)), observed)
    return observed - pred


def _variograms(obs: pd.DataFrame, resid: np.ndarray, grid: Grid) -> dict[str, Variogram]:
    """Exponential variogram per technology, fitted on residuals averaged per grid cell."""
    out = {}
    cells = obs.assign(resid=resid).groupby(["tech", "row", "col"], as_index=False).agg(
        x=("x", "mean"), y=("y", "mean"), resid=("resid", "mean"))
    for tech, g in cells.groupby("tech"):
        out[str(tech)] = fit_variogram(g.x.to_numpy(), g.y.to_numpy(), g.resid.to_numpy(),
                                       max_lag_m=max(20 * grid.resolution_m, 3000.0))
    return out


def _with_variogram(fitted: Mapping[str, Variogram],
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


def _variogram_name(choice: tuple[float | None, float | None]) -> str:
    range_m, share = choice
    if range_m is None and share is None:
        return "fitted"
    return (f"range={'fitted' if range_m is None else f'{range_m:g}'},"
            f"nugget={'fitted' if share is None else f'{share:g}'}")


def _krige_points(obs: pd.DataFrame, resid: np.ndarray, variogram: Variogram,
                  xq: np.ndarray, yq: np.ndarray, *, workers: int = 1) -> np.ndarray:
    """Kriged residual at query points from the observations averaged per grid cell."""
    return _krige_candidates(obs, resid, [variogram], xq, yq, workers=workers)[0]


def _krige_candidates(obs: pd.DataFrame, resid: np.ndarray, variograms: Sequence[Variogram],
                      xq: np.ndarray, yq: np.ndarray, *, workers: int = 1
                      ) -> list[np.ndarray]:
    """:func:`_krige_points` under each of ``variograms``, the cells and neighbours shared."""
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


def fuse_measurements(
    surfaces: CoverageSurfaces,
    measurements: gpd.GeoDataFrame | None,
    *,
    radius_m: float = 250.0,
    techs: tuple[str, ...] = (*BROADBAND_TECHS, "2G"),
    params: ModelParams | None = None,
    xy: tuple[np.ndarray, np.ndarray] | None = None,
    estimate_margins: Mapping[str, Mapping[str, float]] | None = None,
    cells: GridCells | None = None,
    engine: Engine | None = None,
) -> CoverageSurfaces:
    """Calibrate the surfaces to measurements, krige the residuals, and use measured cells.

    See the module docstring for the three steps. Returns a new object; ``surfaces`` is not
    changed (the result's server distances are the same arrays: fusion does not change
    them). The fitted corrections are in ``.calibration``, the aggregated measurements in
    ``.measured``.

    Parameters
    ----------
    surfaces : CoverageSurfaces
        Predicted levels (:func:`coverage.model.predict_coverage`).
    measurements : GeoDataFrame or DataFrame or None
        Observations as read by :func:`coverage.io.read_measurements` (any CRS), or the
        same columns with ``lon``/``lat`` instead of points (:func:`measurement_xy`).
    radius_m : float
        Cells within this distance of measured points take the measured level.
    techs : tuple of str
        Technologies whose layers are fused.
    params : ModelParams, optional
        ``calibrate``, ``krige`` and ``min_calibration_tests``; by default those the
        surfaces were predicted with.
    xy : tuple of ndarray, optional
        The tests' coordinates in the grid's CRS (:func:`coverage.model.points_xy`), when
        the caller has them: transforming millions of points once is enough.
    estimate_margins : mapping, optional
        ``name -> {tech: threshold_dbm}``: margins kept in ``.estimated_margin`` from the
        calibrated and kriged layers, before the measured cells take over (the
        classification's model estimate; see :func:`coverage.classify.fuse_for`).
    engine : Engine, optional
        Where the cross-validation's folds and the layers' kriging run: a local engine's
        forked processes (the result is the same to the bit); a Dask engine is not used
        here (the pieces run in this process).
    cells : GridCells, optional
        Fuse at these cells only (:mod:`coverage.model.cells`): the result is on the grid
        ``cells.compact`` and holds, at each cell of the set, what the whole grid's fusion
        holds there (the fits, the variograms and the open-field trends come from the whole
        grid and the tests as before), except ``.measured``, left empty
        (:func:`aggregate_measurements` gives it on the whole grid). The set must hold
        every cell with a test. A national grid at 100 m fused whole is a copy of every
        layer (0.5 GB each) and five grids of measurements; the classification reads the
        layers only at its villages and tests.

    Raises
    ------
    ValueError
        ``cells`` misses a cell that holds a test.
    """
    params = params or surfaces.params or ModelParams()
    if engine is not None and not engine.is_local:
        # The fusion's pieces are small and its maps follow one another: on Dask, a value
        # shared by two maps in a row was at times lost from the workers between them
        # ("lost dependencies"); its pieces run here, as they always did on Dask.
        engine = None
    grid = surfaces.grid

    def keep_estimate() -> None:
        for name, thresholds in (estimate_margins or {}).items():
            out.estimated_margin[name] = out.margin(dict(thresholds))

    if measurements is None or measurements.empty:
        out = _fusion_start(surfaces, cells)
        if cells is None:
            out.measured = aggregate_measurements(measurements, grid)
        keep_estimate()
        return out
    if xy is None:
        xy = measurement_xy(measurements, grid.crs)
    tests = TestCells.locate(measurements, grid, xy=xy)
    if cells is not None and not cells.contains(tests.ucell):
        raise ValueError("fuse_measurements(cells=): the set of cells misses cells that "
                         "hold tests; build it with the tests' cells "
                         "(GridCells.of(grid, pieces, test_cells))")
    # the per-layer observations serve calibration and kriging only; they, the open-field
    # trends and the choice read the model on the whole grid, before the copy is made
    obs = (_observations(surfaces, measurements, techs, xy)
           if params.calibrate or params.krige else pd.DataFrame())
    trends = (_open_trends(surfaces, obs) if params.calibrate and len(obs) else {})
    choice = FusionChoice(1.0 if params.calibrate else 0.0, params.krige, "as set")
    if params.select_fusion and len(obs) and (params.calibrate or params.krige):
        choice = select_fusion(surfaces, obs, params, trends,
                               service_dbm=(estimate_margins or {}).get("out"), engine=engine)
    out = _fusion_start(surfaces, cells)
    if cells is None:  # at cells, the classification has no use for them: not kept
        out.measured = _aggregate(measurements, grid, tests)
    out.choices["fusion"] = choice.as_dict()
    log.info("fusion: calibration weight %.2f, kriging %s (%s)", choice.calibration_weight,
             "on" if choice.krige else "off", choice.reason)
    if choice.calibration_weight > 0 and len(obs):
        fits = {k: f._replace(weight=choice.calibration_weight) for k, f in
                fit_corrections(obs, min_tests=params.min_calibration_tests, trends=trends,
                                propensity_floor=params.calibration_propensity_floor
                                ).items()}
        _apply_calibration(out, fits)
        for key, f in fits.items():
            log.info("calibrated %s %s: %+.1f dB %+.1f dB/decade in the open, %s in shadow, "
                     "weight %.2f, from %d tests", *key, f.a, f.b,
                     "lowering only" if f.a_shadow is None else f"{f.a_shadow:+.1f} dB",
                     f.weight, f.n)
        obs["pred"] = obs["pred"] + _correction(fits, obs)
    if choice.krige and len(obs):
        _krige_layers(out, obs, grid=grid, at=cells, workers=params.workers,
                      lift=params.krige_lifts, engine=engine, variogram=choice.variogram,
                      keep=tests.ucell)
    keep_estimate()
    _measured_cells(out, measurements, radius_m=radius_m, techs=techs, cells=tests,
                    grid=grid, at=cells)
    return out


def _fusion_start(surfaces: CoverageSurfaces, cells: GridCells | None) -> CoverageSurfaces:
    """The model as fusion starts from: its layers copied (at ``cells`` only when given).

    The server distances are the model's own arrays, shared (read at ``cells`` when
    given): fusion does not change them, and a copy is as big as the layers.
    """
    if cells is None:
        distances = surfaces.distance_m
        return CoverageSurfaces(surfaces.grid, {k: v.copy() for k, v in surfaces.layers.items()},
                                surfaces.dem, distances if isinstance(distances, HeldLayers)
                                else dict(distances), {},
                                dict(surfaces.calibration), surfaces.params,
                                {k: v.copy() for k, v in surfaces.estimated_margin.items()},
                                dict(surfaces.choices))
    return CoverageSurfaces(cells.compact,
                            {k: cells.gather(v) for k, v in surfaces.layers.items()}, None,
                            GatheredLayers(surfaces.distance_m, cells), {},
                            dict(surfaces.calibration), surfaces.params,
                            {k: cells.gather(v) for k, v in surfaces.estimated_margin.items()},
                            dict(surfaces.choices))


def _apply_calibration(out: CoverageSurfaces, fits: Mapping[Key, LayerFit]
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


def _krige_shift(corr: np.ndarray, params: ModelParams) -> np.ndarray:
    """The kriged correction as applied: lowering only unless ``params.krige_lifts``."""
    return corr if params.krige_lifts else np.minimum(corr, 0.0)


def _krige_layers(out: CoverageSurfaces, obs: pd.DataFrame, *, grid: Grid | None = None,
                  at: GridCells | None = None, workers: int = 1, lift: bool = True,
                  engine: Engine | None = None,
                  variogram: tuple[float | None, float | None] = (None, None),
                  keep: np.ndarray | None = None) -> None:
    """Add the kriged residuals to every layer with observations, where they reach.

    ``lift`` False: only the residuals' negative part (the correction lowers a layer,
    never lifts it; ``ModelParams.krige_lifts``). ``variogram``: the correlation length
    and nugget share chosen (:data:`KRIGE_VARIOGRAMS`; None: the fitted one's). ``out`` on
    the whole ``grid``, or at its cells ``at`` (only those are kriged). ``keep``: flat
    cells of the whole grid (sorted; the cells with tests) whose correction is kept in
    ``out.kriged_at_tests``.

    Kriging is local: a cell farther than :data:`KRIGE_REACH` correlation lengths from every
    observation of its layer gets a correction of exactly 0 (the simple-kriging mean), so
    only the cells of a square of that half-width around the observed cells are queried,
    in chunks (:func:`coverage.calibrate.simple_krige`), and a layer changes only where
    the correction is not 0 (a cell the model leaves below the floor stays empty unless
    an observation within reach says otherwise). The layers are kriged through ``engine``
    (in this process by default) and each is changed here by its own kriging only, as it
    comes: the result does not depend on the engine.
    """
    grid = grid or out.grid
    resid = _residuals(obs, obs.pred.to_numpy(float))
    variograms = _with_variogram(_variograms(obs, resid, grid), variogram)
    # each task carries its layer's observations (nothing large is sent to every worker);
    # each layer is changed by its own kriging only, as the results come
    groups = [(key, g[["x", "y", "row", "col"]].assign(resid=resid[g.index.to_numpy()]))
              for key, g in obs.groupby(["operator", "tech"])]
    for (op, tech), n_obs, near, pos, corr in (engine or Engine()).imap(
            _krige_layer, groups, variograms=variograms, grid=grid, at=at, lift=lift,
            workers=workers):
        flat = out.layers[(str(op), str(tech))].reshape(-1)
        level = flat[pos]
        vals = np.where(np.isnan(level), FLOOR_DBM[str(tech)], level) + corr
        vals[vals < FLOOR_DBM[str(tech)]] = np.nan
        flat[pos] = vals.astype("float32")
        if keep is not None:
            # the sorted cells with tests looked up, not the (national: tens of millions
            # of) cells within reach sorted
            i = np.minimum(np.searchsorted(keep, near), max(len(keep) - 1, 0))
            at_tests = (np.flatnonzero(keep[i] == near) if len(keep)
                        else np.zeros(0, dtype=np.int64))
            at_tests = at_tests[np.argsort(near[at_tests], kind="stable")]
            out.kriged_at_tests[(str(op), str(tech))] = (
                near[at_tests].astype(np.int64), corr[at_tests].astype("float32"))
        v = variograms[str(tech)]
        log.info("kriged %s %s residuals: %d points, range %.0f m, sill %.1f dB2, %d cells "
                 "within reach", op, tech, n_obs, v.range_m, v.psill_db2 + v.nugget_db2,
                 len(near))


def _krige_layer(group: tuple[Key, pd.DataFrame], *, variograms: Mapping[str, Variogram],
                 grid: Grid, at: GridCells | None, lift: bool, workers: int
                 ) -> tuple[Key, int, np.ndarray, np.ndarray, np.ndarray]:
    """One layer's kriged residuals, for :func:`_krige_layers`.

    ``group`` is the layer's (operator, technology) and its observations (``x``, ``y``,
    ``row``, ``col`` and ``resid``, dB). Returns the layer's key, its observations'
    number, the flat grid cells the correction changes, their positions in the layer
    (the same on the whole grid; in the set ``at`` at its cells) and the correction (dB).
    """
    key, g = group
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
    nr, nc = np.divmod(near, grid.shape[1])
    x0, y0 = grid.transform.c, grid.transform.f
    corr = _krige_points(g, g["resid"].to_numpy(), v, x0 + (nc + 0.5) * grid.transform.a,
                         y0 + (nr + 0.5) * grid.transform.e, workers=threads_for(workers))
    if not lift:
        corr = np.minimum(corr, 0.0)
    hit = corr != 0.0
    return key, len(g), near[hit], pos[hit], corr[hit]


def sort_key(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A uint64 key ordering by group (under 2**32), then value, for one argsort.

    The group fills the upper 32 bits, the value's float32 bits (made monotone) the lower.
    Values equal to float32 precision (1e-7) may tie in any order
    (:func:`group_value_order` puts them right).
    """
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    bits = np.where(neg, ~bits, bits | np.uint32(0x80000000))
    return (np.asarray(group).astype(np.uint64) << np.uint64(32)) | bits.astype(np.uint64)


def group_value_order(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices ordering rows by ``group`` (integers >= 0), then by ``values`` (no NaN).

    The same order as ``np.lexsort((values, group))`` up to rows equal in both, from one
    argsort of a 64-bit key (:func:`sort_key`, several times lexsort's speed on millions of
    rows) when the groups fit in 32 bits; where two values in a group are equal in float32
    but not in float64 (rare) the exact lexsort is taken instead.
    """
    group = np.asarray(group)
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    if int(group.min()) < 0 or int(group.max()) >= 2**32:
        return np.lexsort((values, group))
    key = sort_key(group, values)
    order = np.argsort(key)
    key = key[order]
    v = np.asarray(values)[order]
    if np.any((key[1:] == key[:-1]) & (v[1:] < v[:-1])):
        return np.lexsort((values, group))
    return order


def _unique_cells(cell: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(cell, return_inverse=True)`` for flat cells of a grid of ``size`` cells.

    When the cells are many for the grid (a national run: 10 million tests on 30 million
    cells), a mark per grid cell and a running count replace the sort.
    """
    if size > 8 * len(cell) or size >= 2**31:
        return np.unique(cell, return_inverse=True)
    mark = np.zeros(size, dtype=bool)
    mark[cell] = True
    ucell = np.flatnonzero(mark)
    rank = np.cumsum(mark, dtype=np.int32)
    del mark
    return ucell, (rank[cell] - 1).astype(np.int64)


def _measured_cells(out: CoverageSurfaces, measurements: gpd.GeoDataFrame, *,
                    radius_m: float, techs: tuple[str, ...], cells: TestCells,
                    grid: Grid | None = None, at: GridCells | None = None) -> None:
    """Measured levels on their cells, and their corrections on the cells around them.

    A measured cell takes the median measured level (cleared where service is missing);
    the cells within ``radius_m`` around it, the model moved by the same correction.
    Integer codes and one sort throughout (string group keys cost 10x on millions of tests).
    ``out`` on the whole ``grid``, or at its cells ``at`` (cells around a measured one that
    are not in the set are skipped; the measured cells are in it).
    """
    grid = grid or out.grid

    def pos(flat_cells: np.ndarray) -> np.ndarray:
        """Position of whole-grid cells in ``out``'s layers (-1: not held)."""
        return flat_cells if at is None else at.codes(flat_cells)

    inside = cells.inside
    # integer codes throughout: string group keys cost 10x on millions of tests
    tech_code, tech_names = pd.factorize(measurements["tech"])  # missing: -1
    tech_code = tech_code[inside]
    op_code, op_names = pd.factorize(measurements["operator"])
    op_code = op_code[inside]
    rsrp = pd.to_numeric(measurements["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)[inside]
    reach = max(int(np.ceil(radius_m / grid.resolution_m - 0.5)), 0)
    # farthest first: where the discs of two measured cells overlap, the nearer one wins;
    # the measured cells themselves (offset 0) last
    offsets = sorted(((dr, dc) for dr in range(-reach, reach + 1)
                      for dc in range(-reach, reach + 1)
                      if (dr * dr + dc * dc) * grid.resolution_m**2 <= max(radius_m, 1.0) ** 2),
                     key=lambda o: (-(o[0] ** 2 + o[1] ** 2), o))[:-1]
    rows, cols = grid.shape

    def carry(layer: np.ndarray, cells: np.ndarray, vals: np.ndarray, shift: np.ndarray,
              floor: np.float32) -> None:
        """Measured ``cells`` take ``vals``; the cells around them, the layer moved.

        ``vals`` NaN: no service; around, the layer as it was moved by the measured cell's
        ``shift`` (dB), with no service where that falls under ``floor``.
        Offset by offset, farthest first (one offset sends distinct cells to distinct
        targets). Cells at least ``reach`` from the grid's edge take every offset without a
        bounds check, into one reused target array (fresh ones cost more in page faults
        than the adds); the few near the edge are checked.
        """
        flat = layer.reshape(-1)
        before = flat.copy()
        r, c = np.divmod(cells, cols)
        interior = (r >= reach) & (r < rows - reach) & (c >= reach) & (c < cols - reach)
        edge = np.flatnonzero(~interior)
        ci, si = cells[interior], shift[interior].astype("float32")
        re, ce, cells_e, se = r[edge], c[edge], cells[edge], shift[edge].astype("float32")
        del r, c, interior
        buf = np.empty_like(ci)
        moved = np.empty(len(ci), dtype="float32")

        def put(tgt: np.ndarray, sh: np.ndarray, out_: np.ndarray) -> None:
            if at is not None:  # the targets the set holds, at their positions in it
                tgt = at.codes(tgt)
                keep = tgt >= 0
                tgt, sh, out_ = tgt[keep], sh[keep], out_[:int(keep.sum())]
            np.fmax(before[tgt], floor, out=out_)
            out_ += sh
            out_[out_ < floor] = np.nan
            flat[tgt] = out_

        for dr, dc in offsets:
            np.add(ci, dr * cols + dc, out=buf)
            put(buf, si, moved)
            if len(edge):
                ok = (re + dr >= 0) & (re + dr < rows) & (ce + dc >= 0) & (ce + dc < cols)
                put(cells_e[ok] + (dr * cols + dc), se[ok],
                    np.empty(int(ok.sum()), dtype="float32"))
        flat[pos(cells)] = vals

    ucell, ccode = cells.ucell, cells.code  # measured cells in (row, col) order
    k_cells = max(len(ucell), 1)
    wanted = np.r_[np.isin(np.asarray(tech_names, dtype=object), techs), False]
    measured = np.flatnonzero(wanted[tech_code] & np.isfinite(rsrp) & (op_code >= 0))
    # A test that fell back below a technology (or found no service) is a level under the
    # floor of that technology for its operator: -inf in the median of that layer's cell.
    tech_names = list(pd.Index(tech_names).astype(str))
    fell_op, fell_tech = [], []
    for high, lower in FALLBACK_BELOW.items():
        if high not in techs:
            continue
        codes = [k for k, name in enumerate(tech_names) if name in (*lower, "none")]
        fell = np.flatnonzero(np.isin(tech_code, codes) & (op_code >= 0))
        has = np.array([(str(op_names[o]), high) in out.layers for o in range(len(op_names))],
                       dtype=bool)
        fell = fell[has[op_code[fell]]] if len(op_names) else fell[:0]
        if len(fell):
            if high not in tech_names:
                tech_names.append(high)
            fell_op.append(fell)
            fell_tech.append(np.full(len(fell), tech_names.index(high)))
    n_names = len(tech_names)
    if len(measured) or fell_op:
        # median level per (operator, technology, cell) from one sort of a combined key
        rows_ = np.concatenate([measured, *fell_op])
        pair = op_code[rows_].astype(np.int64) * n_names + np.concatenate(
            [tech_code[measured], *fell_tech])
        value = np.concatenate([rsrp[measured], np.full(len(rows_) - len(measured), -np.inf)])
        measured = rows_
        group = pair * k_cells + ccode[measured]
        del pair, rows_
        order = group_value_order(group, value)
        group, value = group[order], value[order]
        del order
        start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        size = np.diff(np.r_[start, len(group)])
        lower, upper = value[start + (size - 1) // 2], value[start + size // 2]
        # an even split between a fallback and a level keeps the level (upper middle)
        median = np.where(np.isfinite(lower), 0.5 * (lower + upper), upper)
        median[~np.isfinite(median)] = np.nan  # most tests fell back: no such service here
        g_pair, g_cell = np.divmod(group[start], k_cells)
        del group, value
        for o, t in sorted(set(zip(*np.divmod(np.unique(g_pair), n_names), strict=True)),
                           key=lambda ot: (str(op_names[ot[0]]), str(tech_names[ot[1]]))):
            mine = g_pair == o * n_names + t
            key = (str(op_names[o]), str(tech_names[t]))
            if key not in out.layers:
                out.layers[key] = np.full(out.grid.shape, np.nan, dtype="float32")
            src, vals = ucell[g_cell[mine]], median[mine]
            floor = np.float32(FLOOR_DBM.get(key[1], -125.0))
            before = np.fmax(out.layers[key].reshape(-1)[pos(src)], floor)
            # most tests fell back: the level is under where handsets leave this service
            shift = np.where(np.isfinite(vals), vals - before,
                             np.minimum(0.0, NO_SERVICE_DBM.get(key[1], floor) - before))
            carry(out.layers[key], src, vals, shift, floor)
    is_none = np.r_[np.asarray(tech_names, dtype=object) == "none", False][tech_code]
    groups = [("*", op_code < 0)] if (op_code < 0).any() else []
    groups = sorted(groups + [(str(name), op_code == k) for k, name in enumerate(op_names)])
    for op_name, sel in groups:
        n_all = np.bincount(ccode[sel], minlength=k_cells)
        n_none = np.bincount(ccode[sel & is_none], minlength=k_cells)
        cells = ucell[(n_all > 0) & (n_none >= 0.5 * n_all)] if len(ucell) else ucell
        if not len(cells):
            continue
        for (lop, tech), layer in out.layers.items():
            if op_name == "*" or lop == op_name:
                floor = np.float32(FLOOR_DBM.get(tech, -125.0))
                before = np.fmax(layer.reshape(-1)[pos(cells)], floor)
                carry(layer, cells, np.full(len(cells), np.nan, dtype="float32"),
                      np.minimum(0.0, NO_SERVICE_DBM.get(tech, floor) - before), floor)


@dataclass(frozen=True)
class FusionChoice:
    """How much of each fusion stage a province's tests earned (:func:`select_fusion`).

    ``calibration_weight`` scales the calibration's correction (0: none, 1: all of it);
    ``krige`` says whether the residuals are kriged, ``variogram`` with what correlation
    length and nugget share (:data:`KRIGE_VARIOGRAMS`; None: the fitted one's);
    ``cv_error`` the held-out Brier score of service of each candidate tried (``model``,
    ``cal=0.50``, ``krige:fitted`` ...).
    """

    calibration_weight: float
    krige: bool
    reason: str
    cv_error: Mapping[str, float] | None = None
    variogram: tuple[float | None, float | None] = (None, None)

    def as_dict(self) -> dict:
        """The choice as plain values (for a run's manifest)."""
        return {"calibration_weight": self.calibration_weight, "krige": self.krige,
                "variogram": _variogram_name(self.variogram), "reason": self.reason,
                "cv_error": dict(self.cv_error or {})}


#: Calibration weights tried, from none to all of it.
CALIBRATION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: A stage is taken only if it lowers the held-out error by this share;
#: among calibration weights within it of the best, the smallest (shrunk towards none).
STAGE_TOLERANCE = 0.01
#: Kriging is judged on blocks of this share of ``cv_block_m`` (2 km: 500 m blocks).
KRIGE_BLOCK_SHARE = 0.25
#: Variograms the kriging's cross-validation tries, as (correlation length m, nugget
#: share of the sill), None taking the fitted one's (:func:`coverage.calibrate.
#: fit_variogram`): the fitted variogram, and correlation lengths of shadowing as measured
#: (Gudmundson 1991: about 500 m at 900 MHz in suburbs, shorter in towns, longer in open
#: country; 250-1,000 m) with half the residuals' variance as nugget (a test's own
#: noise, its handset and moment, beside the shadowing). A province's residuals are
#: clustered (villages, roads), so the fitted range is poorly fixed; its tests choose.
KRIGE_VARIOGRAMS: tuple[tuple[float | None, float | None], ...] = (
    (None, None), (250.0, 0.5), (500.0, 0.5), (1000.0, 0.5))
#: Observations the selection's cross-validation uses at most (a seeded sample beyond).
SELECT_MAX_OBS = 20_000


def _open_trends(surfaces: CoverageSurfaces, obs: pd.DataFrame
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
    tests' cells only (:func:`fuse_measurements` with ``cells``, :func:`calibrated_at`),
    apart from the open-field trends (:func:`open_trend`), which sample the whole grid:
    those are made here, for every layer, and kept beside the distances
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


def _folds(obs: pd.DataFrame, params: ModelParams, seed: int) -> np.ndarray:
    """Fold of each observation: square blocks of ``cv_block_m`` dealt at random."""
    block = (np.floor(obs.x.to_numpy(float) / params.cv_block_m).astype(np.int64) * 1_000_003
             + np.floor(obs.y.to_numpy(float) / params.cv_block_m).astype(np.int64))
    blocks, inverse = np.unique(block, return_inverse=True)
    rng = np.random.default_rng(seed)
    return (rng.permutation(len(blocks)) % params.cv_folds)[inverse]


#: Thresholds of service a held-out test is scored at, dBm (the contract's outdoor
#: broadband thresholds and 2G's), when the caller gives none.
SERVICE_DBM = {"2G": -102.0, "3G": -105.0, "4G": -110.0, "5G": -110.0}
#: Spread of a prediction's error for the probability of service it gives, dB (the
#: lognormal shadowing of Okumura-Hata's medians, 6-8 dB; Hata 1980).
SERVICE_SIGMA_DB = 6.0


def _held_out_error(obs: pd.DataFrame, pred: np.ndarray,
                    service_dbm: Mapping[str, float] | None = None) -> np.ndarray:
    r"""Brier score of each held-out observation's service (0..1).

    The prediction gives a probability of service at the tech's threshold
    (:data:`SERVICE_DBM`, or ``service_dbm``), :math:`\Phi((P - t)/\sigma)` with
    :data:`SERVICE_SIGMA_DB`; the test had service when it reported a level at or over
    the threshold, none when it found no service or fell back (censored rows). Scoring
    service rather than the level in dB: handsets report levels only where they camp, so
    in shadow the tests with a level are the lucky ones, and a squared error in dB
    preferred the structures and calibrations that lift the valleys (on the demo the
    level error chose half the diffraction loss, and `unavailable` recall fell from 0.896
    to 0.821); the classification asks whether people have service.
    """
    thresholds = {**SERVICE_DBM, **dict(service_dbm or {})}
    thr = obs.tech.map(thresholds).to_numpy(float)
    cens = obs.censored.to_numpy(bool)
    served = ~cens & (obs.observed.to_numpy(float) >= thr)
    p = ndtr((np.nan_to_num(pred, nan=-200.0) - thr) / SERVICE_SIGMA_DB)
    return (p - served) ** 2


def _cv_observations(obs: pd.DataFrame, params: ModelParams, seed: int) -> pd.DataFrame:
    """The observations a cross-validation scores, sampled to :data:`SELECT_MAX_OBS`.

    Predictions under the floor are at the floor, unknown server distances at the range.
    """
    if len(obs) > SELECT_MAX_OBS:
        obs = obs.sample(SELECT_MAX_OBS, random_state=seed)
    obs = obs.reset_index(drop=True)
    floor = obs.tech.map(FLOOR_DBM).to_numpy(float)
    return obs.assign(pred=np.where(np.isfinite(obs.pred), obs.pred, floor),
                      dist_m=obs.dist_m.astype(float).fillna(params.max_range_km * 1000.0))


@dataclass(frozen=True)
class HeldOut:
    """Held-out errors of one candidate, test by test, with the block each test is in."""

    error: np.ndarray
    block: np.ndarray
    weight: np.ndarray | None = None

    @property
    def mean(self) -> float:
        """The candidate's mean held-out error (weighted by ``weight`` when given)."""
        if not len(self.error):
            return np.nan
        return float(np.average(self.error, weights=self.weight))

    def better_than(self, other: HeldOut, z: float | None = None) -> bool:
        """Lower error than ``other`` by :data:`STAGE_TOLERANCE` and beyond chance.

        Paired by test; the differences summed per block (tests of a block are not
        independent; each test by its ``weight`` when given) and the mean block difference
        at least ``z`` (by default :data:`SIGNIFICANCE_Z`) standard errors. Candidates of
        different tests are compared by their means only.
        """
        z = SIGNIFICANCE_Z if z is None else z
        if not (self.mean < other.mean * (1 - STAGE_TOLERANCE)):
            return False
        if len(self.error) != len(other.error) or not np.array_equal(self.block, other.block):
            return True
        _, code = np.unique(self.block, return_inverse=True)
        paired = other.error - self.error
        diff = np.bincount(code, weights=paired if self.weight is None
                           else paired * self.weight)
        if len(diff) < 2:
            return False
        se = float(np.std(diff, ddof=1)) / np.sqrt(len(diff))
        return float(np.mean(diff)) >= z * se


#: A stage (or structure) is taken when its held-out error is lower by this many standard
#: errors of the paired block differences (one-sided, about 97.7%).
SIGNIFICANCE_Z = 2.0


def inclusion_weights(obs: pd.DataFrame, floor: float) -> np.ndarray:
    """Each observation's inverse inclusion propensity, at its own margin over losing service.

    :func:`coverage.calibrate.inverse_propensity` of the observed level over
    :data:`NO_SERVICE_DBM`; a censored row (no service, fallen back) takes the floor's.
    """
    lose = obs.tech.map(NO_SERVICE_DBM).to_numpy(float)
    margin = np.where(obs.censored.to_numpy(bool), -np.inf,
                      obs.observed.to_numpy(float) - lose)
    return inverse_propensity(margin, floor)


def _blocks(obs: pd.DataFrame, block_m: float) -> np.ndarray:
    return (np.floor(obs.x.to_numpy(float) / block_m).astype(np.int64) * 1_000_003
            + np.floor(obs.y.to_numpy(float) / block_m).astype(np.int64))


def calibration_cv(obs: pd.DataFrame, params: ModelParams,
                   trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None = None, *,
                   seed: int = 0, service_dbm: Mapping[str, float] | None = None,
                   engine: Engine | None = None) -> dict[float, HeldOut] | None:
    """Held-out Brier score of service (:func:`_held_out_error`) at each calibration weight.

    Blocked folds (:func:`select_fusion`); the weights of :data:`CALIBRATION_WEIGHTS`
    when ``params.calibrate``, else 0 only. None under two folds with tests. The folds
    run through ``engine`` (in this process by default); the scores do not depend on it.
    """
    weights = CALIBRATION_WEIGHTS if params.calibrate else (0.0,)
    fold_of = _folds(obs, params, seed)
    parts = [p for p in (engine or Engine()).map(
        _calibration_fold, range(params.cv_folds), obs=obs, fold=fold_of,
        block=_blocks(obs, params.cv_block_m), params=params, trends=trends,
        weights=weights, service_dbm=service_dbm) if p is not None]
    if len(parts) < 2:
        return None
    where = np.concatenate([b for _, b in parts])
    ipw = None
    if params.calibration_propensity_floor is not None:  # the held-out tests, fold by fold
        each = inclusion_weights(obs, params.calibration_propensity_floor)
        ipw = np.concatenate([each[fold_of == k] for k in range(params.cv_folds)
                              if (fold_of == k).any() and (fold_of != k).any()])
    return {w: HeldOut(np.concatenate([sq[i] for sq, _ in parts]), where, ipw)
            for i, w in enumerate(weights)}


def _fold_fits(k: int, obs: pd.DataFrame, fold: np.ndarray, params: ModelParams,
               trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None, *, fit: bool
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[Key, LayerFit]] | None:
    """Fold ``k``'s training and held-out tests, and the calibration fitted on the former.

    No fits unless ``fit``; None when the fold has no test or no training observation.
    """
    test, train = fold == k, fold != k
    if not test.any() or not train.any():
        return None
    tr, te = obs[train].reset_index(drop=True), obs[test].reset_index(drop=True)
    fits = (fit_corrections(tr, min_tests=params.min_calibration_tests, trends=trends,
                            propensity_floor=params.calibration_propensity_floor)
            if fit else {})
    return tr, te, fits


def _calibration_fold(k: int, *, obs: pd.DataFrame, fold: np.ndarray, block: np.ndarray,
                      params: ModelParams,
                      trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None,
                      weights: tuple[float, ...], service_dbm: Mapping[str, float] | None
                      ) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Fold ``k`` of :func:`calibration_cv`: held-out errors per weight, and their blocks.

    None when the fold has no test or no training observation.
    """
    split = _fold_fits(k, obs, fold, params, trends, fit=params.calibrate)
    if split is None:
        return None
    _, te, fits = split
    full_te = _correction(fits, te)
    return ([_held_out_error(te, te.pred.to_numpy() + w * full_te, service_dbm)
             for w in weights], block[fold == k])


def select_fusion(surfaces: CoverageSurfaces, obs: pd.DataFrame, params: ModelParams,
                  trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None = None, *,
                  seed: int = 0, service_dbm: Mapping[str, float] | None = None,
                  engine: Engine | None = None) -> FusionChoice:
    """Each fusion stage by blocked cross-validation on the province's own tests.

    Tests are grouped in square blocks of ``params.cv_block_m`` dealt into
    ``params.cv_folds`` folds (held-out tests are not next to training ones). For every
    calibration weight of :data:`CALIBRATION_WEIGHTS` (when ``params.calibrate``), the
    correction fitted on the other folds, scaled, predicts the held-out tests; then, with
    the chosen weight, kriging the training residuals (when ``params.krige``). Error: the
    Brier score of each held-out test's service at its technology's threshold
    (``service_dbm``; :func:`_held_out_error`): a calibration that lifts a valley where
    handsets found nothing pays for it. The weight
    is the smallest that the best does not beat (:meth:`HeldOut.better_than`: by
    :data:`STAGE_TOLERANCE` and ``params.calibration_z`` standard errors of the paired
    block differences; shrunk towards none); with ``params.calibration_propensity_floor``
    the calibration's fits and held-out errors weigh each test by the inverse of its
    propensity to be taken (:func:`inclusion_weights`); then kriging with each variogram of
    :data:`KRIGE_VARIOGRAMS` (the fitted one, and literature's correlation lengths with
    half the variance as nugget), the best of them kept only if it beats the
    calibrated model so, judged on blocks of
    :data:`KRIGE_BLOCK_SHARE` times the side (kriging reaches a few correlation lengths,
    a village's size: on 2 km blocks it changes no held-out test and would never earn its
    place even where it marks a measured dead zone). Under two folds with tests,
    nothing is fitted. The folds run through ``engine`` (in this process by default);
    the choice does not depend on it.
    """
    obs = _cv_observations(obs, params, seed)
    mse = calibration_cv(obs, params, trends, seed=seed, service_dbm=service_dbm,
                         engine=engine)
    if mse is None:
        return FusionChoice(0.0, False, "too few tests to cross-validate")
    weights = tuple(mse)
    best = min(weights, key=lambda w: mse[w].mean)
    # shrunk towards none: the smallest weight the best does not beat beyond chance
    weight = min(w for w in weights if not mse[best].better_than(mse[w], params.calibration_z))
    errors = {("model" if w == 0 else f"cal={w:.2f}"): m.mean for w, m in mse.items()}
    krige, variogram = False, KRIGE_VARIOGRAMS[0]
    if params.krige:
        # kriging acts within a few correlation lengths of the tests: judged on blocks of
        # a village's size, where it acts, not on blocks it cannot reach
        small = _folds(obs, replace(params, cv_block_m=params.cv_block_m * KRIGE_BLOCK_SHARE),
                       seed)
        parts = [p for p in (engine or Engine()).map(
            _krige_fold, range(params.cv_folds), obs=obs, fold=small, params=params,
            weight=weight, trends=trends, grid=surfaces.grid, service_dbm=service_dbm)
            if p is not None]
        if parts:
            where = np.concatenate([blocks for *_, blocks in parts])
            without = HeldOut(np.concatenate([base for _, base, _ in parts]), where)
            held = {c: HeldOut(np.concatenate([kr[c] for kr, _, _ in parts]), where)
                    for c in KRIGE_VARIOGRAMS}
            for c, h in held.items():
                errors[f"krige:{_variogram_name(c)}"] = h.mean
            errors["krige:without"] = without.mean
            variogram = min(held, key=lambda c: held[c].mean)
            krige = held[variogram].better_than(without)
    reason = (f"blocked {params.cv_folds}-fold CV on {len(obs)} observations, Brier score "
              "of service: " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()))
    return FusionChoice(weight, krige, reason, errors, variogram)


def _krige_fold(k: int, *, obs: pd.DataFrame, fold: np.ndarray, params: ModelParams,
                weight: float, trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None,
                grid: Grid, service_dbm: Mapping[str, float] | None
                ) -> tuple[dict[tuple, np.ndarray], np.ndarray, np.ndarray] | None:
    """Fold ``k`` of the kriging's test in :func:`select_fusion`.

    Held-out errors with the training residuals kriged under each of
    :data:`KRIGE_VARIOGRAMS` (on top of the calibration at ``weight``), without kriging,
    and the held-out tests' blocks; None when the fold has no test or no training
    observation.
    """
    split = _fold_fits(k, obs, fold, params, trends, fit=weight > 0)
    if split is None:
        return None
    tr, te, fits = split
    tr_pred = tr.pred.to_numpy() + weight * _correction(fits, tr)
    no_krige = te.pred.to_numpy() + weight * _correction(fits, te)
    resid = _residuals(tr, tr_pred)
    fitted = _variograms(tr, resid, grid)
    candidates = [_with_variogram(fitted, cand) for cand in KRIGE_VARIOGRAMS]
    fused = [no_krige.copy() for _ in KRIGE_VARIOGRAMS]
    for key, g in te.groupby(["operator", "tech"]):
        src = tr[(tr.operator == key[0]) & (tr.tech == key[1])]
        if src.empty:
            continue
        # the cells and the neighbour search shared by the candidates (one call)
        shifts = _krige_candidates(src, resid[src.index.to_numpy()],
                                   [v[str(key[1])] for v in candidates],
                                   g.x.to_numpy(), g.y.to_numpy())
        for f, shift in zip(fused, shifts, strict=True):
            f[g.index.to_numpy()] += _krige_shift(shift, params)
    errors = {cand: _held_out_error(te, f, service_dbm)
              for cand, f in zip(KRIGE_VARIOGRAMS, fused, strict=True)}
    return (errors, _held_out_error(te, no_krige, service_dbm),
            _blocks(te, params.cv_block_m * KRIGE_BLOCK_SHARE))


def cross_validate(surfaces: CoverageSurfaces, measurements: gpd.GeoDataFrame, *,
                   techs: tuple[str, ...] = (*BROADBAND_TECHS, "2G"),
                   params: ModelParams | None = None, seed: int = 0) -> pd.DataFrame:
    """Error of the model before and after calibration and fusion on held-out tests, dB.

    Tests are grouped in square blocks of ``params.cv_block_m``; blocks are dealt at random
    into ``params.cv_folds`` folds; each fold is predicted from calibration and kriging
    fitted on the other folds. Only tests with a measured level are scored (no-service
    tests train the kriging). Tests where the model predicts nothing (below the floor) are
    scored at the floor level.

    Returns
    -------
    DataFrame
        One row per stage (``model``, ``calibrated``, ``fused``) with ``rmse_db``,
        ``bias_db`` (mean of predicted minus measured), ``mae_db`` and ``n``.
    """
    params = params or surfaces.params or ModelParams()
    obs = _observations(surfaces, measurements, techs)
    floor = obs.tech.map(FLOOR_DBM).to_numpy(float)
    obs["pred"] = np.where(np.isfinite(obs.pred), obs.pred, floor)
    obs["dist_m"] = obs.dist_m.astype(float).fillna(params.max_range_km * 1000.0)
    fold = _folds(obs, params, seed)
    errors: dict[str, list[np.ndarray]] = {"model": [], "calibrated": [], "fused": []}
    for k in range(params.cv_folds):
        test = (fold == k) & ~obs.censored.to_numpy(bool)
        train = fold != k
        if not test.any() or not train.any():
            continue
        tr, te = obs[train].copy(), obs[test].copy()
        fits = fit_corrections(tr, min_tests=params.min_calibration_tests,
                               trends=_open_trends(surfaces, obs))
        tr_pred = tr.pred.to_numpy() + _correction(fits, tr)
        te_pred = te.pred.to_numpy() + _correction(fits, te)
        errors["model"].append(te.pred.to_numpy() - te.observed.to_numpy())
        errors["calibrated"].append(te_pred - te.observed.to_numpy())
        resid = _residuals(tr, tr_pred)
        tr = tr.reset_index(drop=True)
        variograms = _variograms(tr, resid, surfaces.grid)
        fused = te_pred.copy()
        for key, g in te.reset_index(drop=True).groupby(["operator", "tech"]):
            src = tr[(tr.operator == key[0]) & (tr.tech == key[1])]
            if src.empty:
                continue
            corr = _krige_points(src, resid[src.index.to_numpy()], variograms[str(key[1])],
                                 g.x.to_numpy(), g.y.to_numpy())
            fused[g.index.to_numpy()] += corr
        errors["fused"].append(fused - te.observed.to_numpy())
    rows = []
    for stage, errs in errors.items():
        e = np.concatenate(errs) if errs else np.array([])
        rows.append({"stage": stage, "rmse_db": float(np.sqrt(np.mean(e**2))) if e.size
                     else np.nan, "bias_db": float(np.mean(e)) if e.size else np.nan,
                     "mae_db": float(np.mean(np.abs(e))) if e.size else np.nan, "n": e.size})
    return pd.DataFrame(rows)
