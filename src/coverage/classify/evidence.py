r"""Measurement evidence per village: counts, sufficiency, and empirical-Bayes shrinkage.

Each test is joined to the village that contains it. Per village this module counts the tests
(``n_tests``, Ookla tiles by their number of tests), those with a known outcome, those with
broadband service, the devices and the time they span, the weighted median speeds, and the
model's error at the tests in dB.

**Sufficiency.** Tests replace the model in a village (the fused surfaces decide its shares)
only when there are at least ``min_override_tests`` of them with a known outcome, from at least
``min_override_devices`` devices and spread over at least ``min_override_span_h`` hours, in the
spirit of the FCC Broadband Data Collection mobile challenge (47 CFR 1.7006; 87 FR 21476,
2022). Devices count only where the tests name them (a ``device_id`` column, or Ookla's
``devices``), time only where they carry timestamps: a rule the data cannot check is not
applied, and the village's ``evidence`` column says which applied.

**Shrinkage.** Sparse villages borrow strength from their commune and province. The model's
error at a test with a level is :math:`r = P_{meas} - P_{model}` (dB); a no-service test is a
censored observation, counted as 5 dB under the outdoor threshold where the model puts the
signal above it. Errors are shrunk up a normal hierarchy, village to commune to province to
zero (James and Stein 1961; Efron and Morris 1975):

.. math:: \hat b_u = \frac{n_u \bar r_u + k\, \hat b_{parent(u)}}{n_u + k},
          \qquad k = \sigma^2 / \tau^2

with :math:`\sigma^2` the pooled within-village variance (at least (4 dB)²) and
:math:`\tau^2` the DerSimonian-Laird moment estimate of the variance between units of the
level. A village without tests takes its commune's error (or its province's): no tests never
means no coverage. Under 30 such tests in all, the model is not calibrated (offset 0), and
a village's few tests cannot move it alone.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from ..model import FLOOR_DBM, CoverageSurfaces
from ..params import BROADBAND_TECHS, Profile

__all__ = ["group_weighted_median", "measurement_evidence", "shrink"]

log = logging.getLogger(__name__)

#: A no-service test counts as this far under the outdoor threshold (dB), censored.
NO_SERVICE_MARGIN_DB = -5.0
#: Prior spread of a province's model error around zero (dB) when it cannot be estimated.
PRIOR_TAU_DB = 3.0
#: Tests with a level (or no service) needed before the model is calibrated at all.
MIN_CALIBRATION_TESTS = 30


def group_weighted_median(group: np.ndarray, values: np.ndarray, weights: np.ndarray,
                          n_groups: int) -> np.ndarray:
    """Weighted median of ``values`` per group (NaN for groups without values).

    An even split takes the mid-point of the two middle values, like :func:`numpy.median`.
    """
    out = np.full(n_groups, np.nan)
    ok = np.isfinite(values) & (weights > 0) & (group >= 0)
    if not ok.any():
        return out
    g, v, w = group[ok], values[ok], weights[ok]
    order = np.lexsort((v, g))
    g, v, w = g[order], v[order], w[order]
    cw = np.cumsum(w)
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    ends = np.r_[starts[1:], len(g)]
    base = np.repeat(cw[starts] - w[starts], ends - starts)
    cum = cw - base
    total = np.repeat(cum[ends - 1], ends - starts)
    half = 0.5 * total
    reached = cum >= half - 1e-9 * total
    idx = np.where(reached, np.arange(len(g)), len(g))
    first = np.minimum.reduceat(idx, starts)
    val = v[first]
    tie = np.isclose(cum[first], half[first]) & (first + 1 < ends)
    val[tie] = 0.5 * (v[first[tie]] + v[first[tie] + 1])
    out[g[starts]] = val
    return out


def _moment_tau2(n: np.ndarray, mean: np.ndarray, parent: np.ndarray, sigma2: float
                 ) -> float | None:
    """Between-unit variance around the parents, DerSimonian-Laird (None: under 3 units).

    Units weigh by their number of observations, so one unit with a single wild test cannot
    inflate the variance and escape shrinkage.
    """
    has = n > 0
    if has.sum() < 3:
        return None
    w = n[has] / sigma2
    q = float(np.sum(w * (mean[has] - parent[has]) ** 2))
    denom = float(w.sum() - np.sum(w**2) / w.sum())
    if denom <= 0:
        return None
    return max((q - (has.sum() - 1)) / denom, 0.25)


def shrink(n: np.ndarray, total: np.ndarray, sumsq: np.ndarray, levels: list[np.ndarray], *,
           top_mean: float | None = 0.0, top_tau: float = PRIOR_TAU_DB) -> np.ndarray:
    """Empirical-Bayes means of a per-village quantity, shrunk up a hierarchy.

    Parameters
    ----------
    n, total, sumsq : ndarray
        Per village: weight of observations, their weighted sum and sum of squares.
    levels : list of ndarray
        Integer unit codes per village, coarsest first (e.g. province, commune).
    top_mean : float or None
        The coarsest units shrink toward this (None: toward the grand mean, unshrunk).
    top_tau : float
        Prior spread of the coarsest units around ``top_mean`` when too few to estimate.

    Returns
    -------
    ndarray
        The shrunk mean of every village (villages without observations get their parent's).
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, 0.0)
        within = np.where(n > 0, sumsq / n - mean**2, 0.0)
    sigma2 = float(np.sum(within * n) / n.sum()) if n.sum() > 0 else 36.0
    sigma2 = max(sigma2, 16.0)  # never below a 4 dB measurement spread
    grand = float(total.sum() / n.sum()) if n.sum() > 0 else 0.0
    parent = np.full(len(n), grand if top_mean is None else top_mean)
    for depth, codes in enumerate([*levels, np.arange(len(n))]):
        k_units = int(codes.max()) + 1 if len(codes) else 0
        nu = np.bincount(codes, weights=n, minlength=k_units)
        su = np.bincount(codes, weights=total, minlength=k_units)
        pu = np.bincount(codes, weights=parent, minlength=k_units) / np.maximum(
            np.bincount(codes, minlength=k_units), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(nu > 0, su / nu, pu)
        if depth == 0 and top_mean is None:
            shrunk = mu if nu.sum() > 0 else pu
        else:
            tau2 = _moment_tau2(nu, mu, pu, sigma2)
            if tau2 is None:
                tau2 = top_tau**2
            k = sigma2 / tau2
            shrunk = (nu * mu + k * pu) / (nu + k)
        parent = shrunk[codes]
    return parent


def _codes(villages: gpd.GeoDataFrame, *columns: str) -> np.ndarray:
    """Unit codes of the villages by the nested columns that exist (all zero when none)."""
    present = [c for c in columns if c in villages.columns]
    if not present:
        return np.zeros(len(villages), dtype=int)
    key = villages[present].astype(object).fillna("").astype(str).agg("\x1f".join, axis=1)
    return pd.factorize(key.to_numpy())[0]


def measurement_evidence(villages: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame | None,
                         model: CoverageSurfaces, profile: Profile) -> pd.DataFrame:
    """Per-village measurement counts, sufficiency and shrunk model error, in village order.

    Columns: ``n_tests``, ``n_service_tests``, ``n_speed_tests``, ``no_service_share``,
    ``median_download_mbps``, ``median_upload_mbps``, ``n_cov_tests``, ``k_cov_tests``,
    ``n_slow_tests``,
    ``n_devices`` (NaN when unknown), ``test_span_h`` (NaN when unknown), ``sufficient``,
    ``model_offset_db`` and ``download_mbps_eb`` (the shrunk median speed estimate).
    """
    n = len(villages)
    out = pd.DataFrame(index=villages.index)
    zeros = np.zeros(n)
    for col in ("n_tests", "n_service_tests", "n_speed_tests", "n_cov_tests", "k_cov_tests",
                "n_slow_tests"):
        out[col] = zeros
    for col in ("no_service_share", "median_download_mbps", "median_upload_mbps",
                "n_devices", "test_span_h", "download_mbps_eb"):
        out[col] = np.nan
    out["sufficient"] = False
    out["model_offset_db"] = 0.0
    if measurements is None or measurements.empty:
        out = _finish(out, villages, None, profile)
        return out
    m = measurements.to_crs(villages.crs).reset_index(drop=True)
    vil = villages[[villages.geometry.name]].reset_index(drop=True)
    joined = gpd.sjoin(m, vil, how="inner", predicate="within")
    joined = joined[~joined.index.duplicated()]  # a test on a shared edge counts once
    if joined.empty:
        return _finish(out, villages, None, profile)
    g = joined["index_right"].to_numpy()
    w = joined["weight"].to_numpy(dtype=float) if "weight" in joined else np.ones(len(joined))
    tech = joined["tech"].astype(object).to_numpy()
    known = pd.notna(tech)
    none = known & (tech == "none")
    bb = np.isin(tech, BROADBAND_TECHS)
    rsrp = joined["rsrp_dbm"].to_numpy(dtype=float)
    thr = np.array([profile.outdoor_dbm(t) if t in BROADBAND_TECHS else np.nan for t in tech])
    point = known  # tests that state their technology say whether there was service
    service = bb & (np.isnan(rsrp) | (rsrp >= thr))

    def tally(mask: np.ndarray, weights: np.ndarray = w) -> np.ndarray:
        return np.bincount(g[mask], weights=weights[mask], minlength=n)

    out["n_tests"] = np.rint(tally(np.ones(len(g), bool))).astype(int)
    n_known = tally(known)
    out["n_service_tests"] = np.rint(n_known).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["no_service_share"] = np.where(n_known > 0, tally(none) / n_known, np.nan)
    out["n_cov_tests"] = tally(point)
    out["k_cov_tests"] = tally(point & service)
    dl = joined["download_mbps"].to_numpy(dtype=float)
    ul = joined["upload_mbps"].to_numpy(dtype=float)
    out["median_download_mbps"] = group_weighted_median(g, dl, w, n)
    out["median_upload_mbps"] = group_weighted_median(g, ul, w, n)
    out["n_speed_tests"] = np.rint(tally(np.isfinite(dl))).astype(int)
    if profile.min_download_mbps is not None:
        out["n_slow_tests"] = tally(np.isfinite(dl) & (dl < profile.min_download_mbps))
    out["n_devices"] = _devices(joined, g, n)
    out["test_span_h"] = _span_h(joined, g, n)

    # model error at tests, dB
    r_model = _model_level_at(joined, model)
    resid = np.where(bb & np.isfinite(rsrp), rsrp - np.fmax(r_model, _floor(tech)), np.nan)
    best_margin = _best_margin_at(joined, model, profile)
    resid = np.where(none, np.minimum(0.0, NO_SERVICE_MARGIN_DB - best_margin), resid)
    resid = np.clip(resid, -30.0, 30.0)
    has = np.isfinite(resid)
    levels = [_codes(villages, "province"),
              _codes(villages, "province", "district", "commune")]
    if profile.max_offset_db > 0 and has.sum() >= MIN_CALIBRATION_TESTS:
        nr = np.bincount(g[has], minlength=n).astype(float)
        sr = np.bincount(g[has], weights=resid[has], minlength=n)
        qr = np.bincount(g[has], weights=resid[has] ** 2, minlength=n)
        offset = shrink(nr, sr, qr, levels)
        out["model_offset_db"] = np.clip(offset, -profile.max_offset_db, profile.max_offset_db)
    if has.sum() >= MIN_CALIBRATION_TESTS:  # spread of the error once the bias is out
        out.attrs["residual_sigma_db"] = float(np.std(resid[has] - out["model_offset_db"]
                                                      .to_numpy()[g[has]]))
    return _finish(out, villages, (g, dl, w, levels), profile)


def _finish(out: pd.DataFrame, villages: gpd.GeoDataFrame, speeds, profile: Profile
            ) -> pd.DataFrame:
    n_ok = out["n_cov_tests"].to_numpy() >= profile.min_override_tests
    dev = out["n_devices"].to_numpy(dtype=float)
    span = out["test_span_h"].to_numpy(dtype=float)
    dev_ok = np.isnan(dev) | (dev >= profile.min_override_devices)
    span_ok = np.isnan(span) | (span >= profile.min_override_span_h)
    out["sufficient"] = n_ok & dev_ok & span_ok
    if speeds is not None:
        g, dl, w, levels = speeds
        ok = np.isfinite(dl) & (dl > 0)
        if ok.any():
            n = len(out)
            logv = np.log(dl[ok])
            nv = np.bincount(g[ok], weights=w[ok], minlength=n)
            sv = np.bincount(g[ok], weights=w[ok] * logv, minlength=n)
            qv = np.bincount(g[ok], weights=w[ok] * logv**2, minlength=n)
            eb = shrink(nv, sv, qv, levels, top_mean=None)
            out["download_mbps_eb"] = np.exp(eb)
    return out


def _floor(tech: np.ndarray) -> np.ndarray:
    return np.array([FLOOR_DBM.get(t, -125.0) if isinstance(t, str) else -125.0 for t in tech])


def _points_rc(joined: gpd.GeoDataFrame, model: CoverageSurfaces
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = joined.geometry.to_crs(model.grid.crs)
    return model.grid.index(pts.x.to_numpy(), pts.y.to_numpy())


def _model_level_at(joined: gpd.GeoDataFrame, model: CoverageSurfaces) -> np.ndarray:
    """Modelled level (dBm) of each test's operator and technology at the test."""
    row, col, inside = _points_rc(joined, model)
    out = np.full(len(joined), np.nan)
    tech = joined["tech"].astype(object).to_numpy()
    op = joined["operator"].astype(object).to_numpy() if "operator" in joined else None
    r, c = np.where(inside, row, 0), np.where(inside, col, 0)
    for t in BROADBAND_TECHS:
        sel = inside & (tech == t)
        if not sel.any():
            continue
        best = model.best(techs=(t,))
        out[sel] = best[r[sel], c[sel]]
        if op is None:
            continue
        for (lop, lt), layer in model.layers.items():
            mine = sel & (op.astype(str) == lop) if lt == t else None
            if mine is not None and mine.any():
                out[mine] = layer[r[mine], c[mine]]
    return out


def _best_margin_at(joined: gpd.GeoDataFrame, model: CoverageSurfaces, profile: Profile
                    ) -> np.ndarray:
    row, col, inside = _points_rc(joined, model)
    margin = model.margin({t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS})
    out = np.full(len(joined), -15.0)
    out[inside] = np.fmax(margin[row[inside], col[inside]], -15.0)
    return out


def _devices(joined: pd.DataFrame, g: np.ndarray, n: int) -> np.ndarray:
    """Distinct devices per village (NaN where no test names its device)."""
    out = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    if "device_id" in joined.columns:
        ids = joined["device_id"]
        has = ids.notna().to_numpy()
        if has.any():
            counts = pd.Series(ids.to_numpy()[has]).groupby(g[has]).nunique()
            out[counts.index.to_numpy()] += counts.to_numpy()
            seen[counts.index.to_numpy()] = True
    if "devices" in joined.columns:
        dev = pd.to_numeric(joined["devices"], errors="coerce").to_numpy(dtype=float)
        has = np.isfinite(dev)
        if has.any():
            out += np.bincount(g[has], weights=dev[has], minlength=n)
            seen |= np.bincount(g[has], minlength=n) > 0
    return np.where(seen, out, np.nan)


def _span_h(joined: pd.DataFrame, g: np.ndarray, n: int) -> np.ndarray:
    """Hours between the first and last timestamped test of each village (NaN: none)."""
    if "timestamp" not in joined.columns:
        return np.full(n, np.nan)
    ts = pd.to_datetime(joined["timestamp"], errors="coerce", utc=True)
    has = ts.notna().to_numpy()
    out = np.full(n, np.nan)
    if not has.any():
        return out
    hours = (ts[has] - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy() / 3600
    s = pd.Series(hours).groupby(g[has]).agg(["min", "max"])
    out[s.index.to_numpy()] = (s["max"] - s["min"]).to_numpy()
    return out
