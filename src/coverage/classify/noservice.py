r"""The share of subscribers without service, from the tests and the model together.

The ``measured_no_service`` rule asks whether at least 30% of a village's subscribers get no
service from their own operator. The tests are a sample of them (a tester uses their own
operator's network where they live and travel); ten tests at a true share of 35% give a
standard error of 15 points, so the raw share of no-service tests flips the rule on chance.
:func:`no_service_estimate` combines them with what the model says:

- **Prior from the model.** Per grid cell and operator, the probability that the operator's
  best level is under the level where handsets lose its network
  (:data:`coverage.model.observations.NO_SERVICE_DBM`, each technology), given the model's location
  variability :math:`\sigma`: :math:`\Phi(-m/\sigma)` with :math:`m` the best margin. The
  model is the *calibrated* one without kriging or measured cells, so the village's own
  tests are not counted twice. Operators weigh by their market share, read from the share
  of tests each operator has (subscribers test in proportion to their numbers), and cells
  by population: the village's prior mean :math:`\mu_v`.
- **Beta-binomial shrinkage.** With :math:`k_v` no-service tests out of :math:`n_v`, the
  estimate is :math:`(\kappa \mu_v + k_v) / (\kappa + n_v)`: the posterior mean under a
  Beta(:math:`\kappa\mu_v, \kappa(1-\mu_v)`) prior. The prior's strength :math:`\kappa` (in
  tests) is fitted by maximum marginal likelihood over all villages with tests (empirical
  Bayes): a model that predicts the tests well earns a strong prior, a poor one a weak one.

**With the rule's minimum of tests** the tests decide, by the survey regression estimator
per operator (:func:`survey_regression_share`): the model's share for the operator's
subscribers in the village, corrected by the mean departure of that operator's tests from
the model at the spots where they were taken. A subscriber without service rarely runs a
test, so the tests' raw share is low wherever service is patchy; the model carries the
tests' correction from the testers' spots to the subscribers' homes.

No tests never means no service, and never means no problem either: a village without
tests has no estimate from them, and its prior alone decides the rule
(:mod:`coverage.classify.residents`). A run without any test reads the operators' shares
from their sites (:func:`site_shares`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import betaln

from ..model import CoverageSurfaces
from ..model.observations import NO_SERVICE_DBM
from ..params import BROADBAND_TECHS
from .prior import market_mix, operator_margins, people_mean, probability_below
from .zonal import ZonalWeights

__all__ = ["fit_prior_strength", "inclusion_shares", "market_shares", "no_service_by_operator",
           "no_service_estimate", "no_service_prior", "province_departures", "service_counts",
           "site_shares", "smoothed_shares", "survey_regression_share"]

log = logging.getLogger(__name__)

#: Bounds of the prior strength, in tests.
KAPPA_RANGE = (0.5, 200.0)


def market_shares(measurements: pd.DataFrame, operators: list[str]) -> dict[str, float]:
    """Share of each operator's subscribers, from the share of tests it has (+1 smoothing)."""
    if not operators:
        return {}
    counts = (measurements["operator"].value_counts() if "operator" in measurements
              else pd.Series(dtype=float))
    return smoothed_shares(counts, operators)


def inclusion_shares(tests: Mapping[str, np.ndarray], operators: list[str]
                     ) -> dict[str, float]:
    r"""Share of each operator's subscribers from its tests weighed by their inverse propensity.

    The Horvitz-Thompson estimate of each operator's subscribers (Horvitz and Thompson 1952),
    as a share (Hájek): :math:`\hat N_o \propto \sum_{i \in o} d_i`, with :math:`d_i` the
    test's own weight (``raw_weight``: 1 a point test) times its inverse inclusion propensity
    (``ipw``, :mod:`coverage.classify.selection`); +1 smoothing as :func:`market_shares`.
    A subscriber without service tests less often than one with service, so an operator whose
    network leaves more of its subscribers without service has fewer tests than subscribers:
    :func:`market_shares`, which counts the tests as they are, takes it for smaller than it
    is, and the operator's share of residents without service weighs too little in a
    village's. ``tests`` are the service tests (``operator`` codes into ``operators`` of the
    tests; -1: none named); their operators missing from ``operators`` are left out.
    """
    if not operators:
        return {}
    names = list(tests["operators"])
    code = np.asarray(tests["operator"])
    d = np.asarray(tests["raw_weight"], dtype=float) * np.asarray(tests["ipw"], dtype=float)
    return smoothed_shares({op: float(d[code == names.index(op)].sum())
                            for op in operators if op in names}, operators)


def site_shares(towers: pd.DataFrame | None, operators: list[str]) -> dict[str, float]:
    """Share of each operator's subscribers from its broadband cells, for a run without tests.

    An operator's subscribers are taken in proportion to its 3G/4G/5G cells: a network's
    capacity is built to its traffic, where its masts follow the area to cover. A site
    table's row is one cell (a sector of one technology); an OpenCelliD site counts its
    ``cells``. +1 smoothing as :func:`market_shares`; equal shares without towers or without
    an ``operator`` column. The tests, where there are any, give the shares instead.
    """
    if not operators:
        return {}
    counts = pd.Series(dtype=float)
    if towers is not None and not towers.empty and "operator" in towers.columns:
        bb = (towers[towers["tech"].astype(str).isin(BROADBAND_TECHS)] if "tech" in towers
              else towers)
        cells = (pd.to_numeric(bb["cells"], errors="coerce").fillna(1.0) if "cells" in bb
                 else pd.Series(1.0, index=bb.index))
        counts = cells.groupby(bb["operator"].astype(str)).sum()
    return smoothed_shares(counts, operators)


def smoothed_shares(counts: Mapping[str, float] | pd.Series, operators: list[str]
                    ) -> dict[str, float]:
    """Each operator's share of ``counts`` after adding one to every count (+1 smoothing).

    Parameters
    ----------
    counts : mapping or Series
        Count (or weight) per operator name; operators absent from it count 0.
    operators : list of str
        The operators to share among, in the order of the result.

    Returns
    -------
    dict
        ``operator -> (count + 1) / sum(counts + 1)``: positive shares summing to 1.

    Examples
    --------
    >>> shares = smoothed_shares({"a": 3}, ["a", "b"])
    >>> float(shares["a"]), float(shares["b"])
    (0.8, 0.2)
    """
    raw = np.array([float(counts.get(op, 0)) + 1.0 for op in operators])
    return dict(zip(operators, raw / raw.sum(), strict=True))


def no_service_prior(model: CoverageSurfaces, weights: ZonalWeights,
                     shares: Mapping[str, float], sigma_db: float,
                     fits: Mapping[tuple[str, str], tuple[float, float, int]] | None = None
                     ) -> np.ndarray:
    """Model's population-weighted share of subscribers without service, per village.

    ``fits`` (``fused.calibration``) correct each layer as the fusion's calibration does,
    one layer at a time (no copy of the surfaces).
    """
    per_op = {op: people_mean(weights, _no_service_grid(model, op, sigma_db, fits))
              for op in shares}
    return market_mix(per_op, shares, weights.n)


def _no_service_grid(model: CoverageSurfaces, operator: str, sigma_db: float,
                     fits: Mapping | None) -> np.ndarray:
    """Probability per grid cell that the operator's subscriber there has no service."""
    (margin,) = operator_margins(model, operator, fits, NO_SERVICE_DBM)
    return probability_below(margin, sigma_db)


def no_service_by_operator(model: CoverageSurfaces, weights: ZonalWeights,
                           operators: list[str], sigma_db: float,
                           fits: Mapping[tuple[str, str], tuple[float, float, int]] | None,
                           tests: Mapping[str, np.ndarray]
                           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Model's no-service probability per village and operator, and at each test.

    Returns the population-weighted mean per village of each operator's probability
    (:func:`no_service_prior`'s terms before the market shares weigh them), and the
    probability at each of ``tests`` (``cell``, ``operator`` codes into ``operators``
    names) for the test's own operator (NaN off the grid or for an unmodelled operator).
    """
    per_op: dict[str, np.ndarray] = {}
    at_test = np.full(len(tests["cell"]), np.nan)
    cell, code = tests["cell"], tests["operator"]
    names = list(tests["operators"])
    for op in operators:
        p_none = _no_service_grid(model, op, sigma_db, fits)
        per_op[op] = people_mean(weights, p_none)
        if op in names:
            sel = (code == names.index(op)) & (cell >= 0)
            at_test[sel] = p_none.reshape(-1)[cell[sel]]
    return per_op, at_test


def survey_regression_share(per_op: Mapping[str, np.ndarray], shares: Mapping[str, float],
                            tests: Mapping[str, np.ndarray], at_test: np.ndarray, n: int,
                            *, untested: Mapping[str, float] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    r"""Residents' no-service share of each village from its tests, per operator.

    The survey regression estimator of a small domain (Särndal, Swensson and Wretman 1992,
    §6.5; Rao and Molina 2015, §2.5): for each operator :math:`o` with tests in village
    :math:`v`, the model's share of its subscribers there without service, :math:`X_{vo}`,
    corrected by the weighted mean of the tests' departures from the model at their own
    spots, :math:`\hat s_{vo} = X_{vo} + \sum_i w_i (y_i - x_i) / \sum_i w_i`
    (:math:`y_i` 1 for a test without service); the tests decide the correction, the model
    carries it from the spots where testers stood to the homes of the operator's
    subscribers. Testers gather where there is signal; a subscriber without service rarely
    runs a test, so the tests' raw share is low wherever service is patchy (on the tuning
    worlds the tests' weighted share was 0.06 under the residents' true share on average,
    this estimate 0.03). An operator without a test in the village is its model share
    (a Viettel test says nothing of a MobiFone subscriber), moved by ``untested[op]`` where
    given (:func:`province_departures`: the operator's tests' mean departure over the
    province, the synthetic estimator of a domain without a sample). The village's share weighs the
    operators by their subscribers' ``shares``. The tests' weights :math:`w_i`
    (``tests["weight"]``) stand for where the people live and, where the propensity to
    test was fitted (:mod:`coverage.classify.selection`), for who tests: with
    :math:`w_i` the inverse inclusion probabilities, the weighted departures are unbiased
    for the residents' even though those without service test less (Horvitz and Thompson
    1952).

    Returns the share (NaN without tests) and its standard error, from the pooled spread of
    the tests' departures over the number of tests of each operator.
    """
    names = list(tests["operators"])
    v, code, w = tests["village"], tests["operator"], tests["weight"]
    y = tests["none"].astype(float)
    ok = np.isfinite(at_test) & (code >= 0) & (w > 0)
    resid = np.where(ok, y - np.nan_to_num(at_test), 0.0)
    spread = float(np.mean(resid[ok] ** 2)) if ok.any() else 0.25
    tested = np.bincount(v, minlength=n) > 0
    est = np.zeros(n)
    var = np.zeros(n)
    for op, share in shares.items():
        prior = per_op[op]
        if op not in names:
            est += share * prior
            continue
        mine = ok & (code == names.index(op))
        wsum = np.bincount(v[mine], weights=w[mine], minlength=n)
        rsum = np.bincount(v[mine], weights=(w * resid)[mine], minlength=n)
        cnt = np.bincount(v[mine], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            corrected = np.clip(prior + rsum / wsum, 0.0, 1.0)
        has = wsum > 0
        shift = (untested or {}).get(op, 0.0)
        est += share * np.where(has, corrected, np.clip(prior + shift, 0.0, 1.0))
        var += share**2 * np.where(has, spread / np.maximum(cnt, 1), 0.0)
    return np.where(tested, np.clip(est, 0.0, 1.0), np.nan), np.sqrt(var)


def province_departures(tests: Mapping[str, np.ndarray], at_test: np.ndarray,
                        operators: list[str]) -> dict[str, float]:
    r"""Each operator's weighted mean departure of its tests from the model, province-wide.

    :math:`\hat b_o = \sum_i w_i (y_i - x_i) / \sum_i w_i` over all of operator
    :math:`o`'s tests (``tests["weight"]``, ``none``; ``at_test`` the model's probability
    of none at each), the survey regression's correction of the whole province: what an
    operator without a test in a village takes from the others (the synthetic regression
    estimator of a domain without a sample; Rao and Molina 2015, §3.2.1). The model is
    calibrated on levels, not on the chance of losing service: the operator whose network
    leaves the most subscribers without service is the one whose tests the model's
    probability falls short of, and the one least often tested in a village. Operators
    without a test: 0.
    """
    names = list(tests["operators"])
    code, w = tests["operator"], tests["weight"]
    ok = np.isfinite(at_test) & (code >= 0) & (w > 0)
    resid = np.asarray(tests["none"], dtype=float) - np.nan_to_num(at_test)
    out = {}
    for op in operators:
        mine = ok & (code == names.index(op)) if op in names else np.zeros(len(ok), bool)
        total = float(w[mine].sum())
        out[op] = float(np.sum(w[mine] * resid[mine]) / total) if total > 0 else 0.0
    return out


def fit_prior_strength(prior: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """Maximum marginal-likelihood strength of Beta priors with means ``prior`` (tests)."""
    ok = n > 0
    if ok.sum() < 5:
        return KAPPA_RANGE[0] * 10
    mu = np.clip(prior[ok], 0.01, 0.99)
    kk, nn = k[ok], n[ok]

    def nll(log_kappa: float) -> float:
        kappa = np.exp(log_kappa)
        a, b = kappa * mu, kappa * (1 - mu)
        return -float(np.sum(betaln(a + kk, b + nn - kk) - betaln(a, b)))

    res = minimize_scalar(nll, bounds=tuple(np.log(KAPPA_RANGE)), method="bounded")
    return float(np.exp(res.x))


def service_counts(ev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each village's no-service tests and service tests (``k``, ``n``; weighted counts)."""
    n = ev["n_service_tests"].to_numpy(dtype=float)
    raw = ev["no_service_share"].to_numpy(dtype=float)
    return np.where(n > 0, np.nan_to_num(raw) * n, 0.0), n


def no_service_estimate(ev: pd.DataFrame, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk no-service share per village (NaN without tests) and the fitted strength."""
    k, n = service_counts(ev)
    kappa = fit_prior_strength(prior, k, n)
    mu = np.clip(prior, 0.0, 1.0)
    est = np.where(n > 0, (kappa * mu + k) / (kappa + n), np.nan)
    log.info("no-service shares: model prior worth %.1f tests", kappa)
    return est, kappa
