r"""Empirical-Bayes shrinkage of a per-village quantity up the commune and province.

:func:`shrink` gives each village's mean (e.g. the model's error at its tests, dB) shrunk
toward its commune's, the commune's toward the province's and the province's toward zero
(a normal hierarchy; James and Stein 1961; Efron and Morris 1975), with the between-unit
variance of each level by DerSimonian and Laird's moment estimate; :func:`held_out_offsets`
gives the same without a village's own tests; :func:`unit_codes` numbers the
villages' units (province, commune) for them.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = ["HELD_OUT_FOLDS", "PRIOR_TAU_DB", "held_out_offsets", "shrink", "unit_codes"]

#: Prior spread of a province's model error around zero (dB) when it cannot be estimated.
PRIOR_TAU_DB = 3.0

#: Blocks of villages whose tests decide, left out in turn for their held-out model error
#: (:func:`held_out_offsets`), as the fusion's blocked folds (``coverage.model.fuse``).
HELD_OUT_FOLDS = 5


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
           top_mean: float | None = 0.0, top_tau: float = PRIOR_TAU_DB,
           variance: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Empirical-Bayes means of a per-village quantity, shrunk up a hierarchy.

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
    variance : bool
        Also return the posterior variance of each village's mean: :math:`\sigma^2/(n_u + k)`
        at each level plus the parent's, weighed by :math:`(k/(n_u+k))^2` (normal
        hierarchy); a village without observations keeps :math:`\tau^2` plus its parent's.

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``variance``
        The shrunk mean of every village (villages without observations get their parent's),
        and its posterior variance.
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, 0.0)
        within = np.where(n > 0, sumsq / n - mean**2, 0.0)
    sigma2 = float(np.sum(within * n) / n.sum()) if n.sum() > 0 else 36.0
    sigma2 = max(sigma2, 16.0)  # never below a 4 dB measurement spread
    grand = float(total.sum() / n.sum()) if n.sum() > 0 else 0.0
    parent = np.full(len(n), grand if top_mean is None else top_mean)
    parent_var = np.zeros(len(n))
    for depth, codes in enumerate([*levels, np.arange(len(n))]):
        k_units = int(codes.max()) + 1 if len(codes) else 0
        nu = np.bincount(codes, weights=n, minlength=k_units)
        su = np.bincount(codes, weights=total, minlength=k_units)
        pu = np.bincount(codes, weights=parent, minlength=k_units) / np.maximum(
            np.bincount(codes, minlength=k_units), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(nu > 0, su / nu, pu)
        pv = np.bincount(codes, weights=parent_var, minlength=k_units) / np.maximum(
            np.bincount(codes, minlength=k_units), 1)
        if depth == 0 and top_mean is None:
            shrunk = mu if nu.sum() > 0 else pu
            var = np.where(nu > 0, sigma2 / np.maximum(nu, 1e-9), top_tau**2)
        else:
            tau2 = _moment_tau2(nu, mu, pu, sigma2)
            if tau2 is None:
                tau2 = top_tau**2
            k = sigma2 / tau2
            shrunk = (nu * mu + k * pu) / (nu + k)
            var = sigma2 / (nu + k) + (k / (nu + k)) ** 2 * pv
        parent = shrunk[codes]
        parent_var = var[codes]
    return (parent, parent_var) if variance else parent


def held_out_offsets(n: np.ndarray, total: np.ndarray, sumsq: np.ndarray,
                     levels: list[np.ndarray], held: np.ndarray, *,
                     folds: int = HELD_OUT_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Each ``held`` village's shrunk model error (dB) without its own tests, and its variance.

    The ``held`` villages are dealt into ``folds`` blocks (in a fixed pseudo-random order);
    each block's offsets are :func:`shrink`'s with that block's tests left out, so a
    village takes what its commune and province say without it, as a village without tests
    does. Other villages: NaN. The confidence's recalibration predicts the class of the
    villages whose tests decide from these (:mod:`coverage.classify.rules`).
    """
    mean = np.full(len(n), np.nan)
    var = np.full(len(n), np.nan)
    rows = np.flatnonzero(held)
    if not len(rows):
        return mean, var
    order = np.random.default_rng(0).permutation(len(rows))
    for fold in range(min(folds, len(rows))):
        out_rows = rows[order[fold::folds]]
        keep = np.ones(len(n))
        keep[out_rows] = 0.0
        m, v = shrink(n * keep, total * keep, sumsq * keep, levels, variance=True)
        mean[out_rows], var[out_rows] = m[out_rows], v[out_rows]
    return mean, var


def unit_codes(villages: gpd.GeoDataFrame, *columns: str) -> np.ndarray:
    """Unit codes of the villages by the nested columns that exist (all zero when none)."""
    present = [c for c in columns if c in villages.columns]
    if not present:
        return np.zeros(len(villages), dtype=int)
    codes = [pd.factorize(villages[c].astype(object).fillna("").astype(str).to_numpy())[0]
             for c in present]
    key = np.zeros(len(villages), dtype=np.int64)
    for c in codes:  # nested units: a combined key, renumbered 0..k-1 in first-seen order
        key = pd.factorize(key * (int(c.max()) + 1 if len(c) else 1) + c)[0]
    return key
