r"""What a village's residents live, estimated from its tests and the model together.

The contract's test rules are about residents, not about the tests that happen to be taken:

- **Every test counts.** A test is one subscriber's experience on their own operator at one
  spot: a broadband test at its measured download, a handset fallen back to 2G at its 2G
  download (:data:`GSM_DOWNLOAD_MBPS` when it measured none), a test without service
  (``tech`` = ``none``) at 0 Mbps. The residents' median download is the weighted median of
  these speeds (with the rule's minimum of tests, over weights calibrated to the estimated
  slow share, below); the no-service share is the weighted share of ``none`` tests.
- **Where they live.** Testers gather in towns near masts and along roads, where the signal
  is better than average. :func:`location_weights` post-stratifies each village's tests on
  the population raster: the village's pieces are ranked by their people and cut into
  strata of equal population (up to :data:`MAX_STRATA`, about one per
  :data:`TESTS_PER_STRATUM` tests); the tests of each stratum share that stratum's
  population, and a test where the raster puts nobody (a road through the forest) stands
  for no resident unless every test of the village is such. Without a population raster
  every test weighs alike.
- **Their operators.** Then each operator's tests weigh in proportion to its subscribers
  (:func:`coverage.classify.survey.poststratify`).
- **Who tests.** A subscriber without service runs a test less often than one with service:
  before the two steps above, each test weighs by the inverse of its relative propensity to
  be taken, fitted on where the province's tests fall among its residents
  (:mod:`coverage.classify.selection`); the residents' median download and the no-service
  estimate are taken over those weights, and the no-service estimate weighs the operators
  by their tests counted by the same inverse propensity
  (:func:`coverage.classify.noservice.inclusion_shares`): an operator whose subscribers
  lose service more often has fewer tests than subscribers.

**Sparse and untested villages.** Under the rule's minimum number of tests the village's
*fused* estimate decides: the model's prior for the share of its subscribers who are slow
(or without service), with its operator mix, updated by the few tests (none at all in a
village without tests) as a beta-binomial (:func:`posterior_above`). The few tests count as
what they measured, the model's error where they stood: ``n`` tests as ``n`` times the survey
regression estimate below, not their raw count (:func:`sparse_counts`): testers gather
where there is signal, and a subscriber without service rarely tests, so three tests with
service in a village whose residents are a third without it say less than "none of them"
(``docs/validation.md``). The residents' median download is under the threshold exactly
when more than half of them are under it, so ``slow_speed`` fires when
:math:`P(s_{slow} > 1/2) \ge 1/2` and ``measured_no_service`` when
:math:`P(s_{none} \ge 0.3) \ge 1/2`, under
:math:`\mathrm{Beta}(\kappa\mu + k,\ \kappa(1-\mu) + n - k)` with the prior's strength
:math:`\kappa` fitted by marginal likelihood over the villages with tests
(:func:`coverage.classify.noservice.fit_prior_strength`). Without tests the posterior is
the prior: ``slow_speed`` fires where the prior's mean is over 1/2 (a beta's median is over
1/2 exactly when its mean is), ``measured_no_service`` where the prior's median reaches 0.3.

**With the rule's minimum of tests** the slow share is a survey regression (difference)
estimate, as the no-service share (:func:`coverage.classify.noservice.survey_regression_share`):
per operator, the model's share of its subscribers under the threshold, corrected by the
weighted mean of the tests' departures from the model at their spots. A test counts as
under the threshold by :func:`coverage.classify.survey.share_below`: its download read with
a spread on a log scale (one reading at 6 Mbps of a spot whose speed varies over the day
says it may be under 5), whose width the province's tests choose by leave-one-out within
the villages, none unless it predicts the held-out tests better beyond chance
(:func:`coverage.classify.survey.choose_bandwidth`, in the run's manifest); the same
departures carry the sparse villages' update. The tests' weights are
then calibrated to it (:func:`calibrated_weights`: the slow tests scaled together, the others
together, Deville and Särndal 1992; for a quantile, Harms and Duchesne 2006), so the
residents' median download, taken over the calibrated weights, is under the threshold exactly
when the estimated share is over 1/2. Where a village's tests are all slow or all fast the
tests decide as they are. Five to ten tests give that share a standard error of 0.1-0.15,
near a threshold most truly slow villages sit next to; taking the share with its sampling
error, shrunk towards the model's prior (the Fay-Herriot posterior mean), found more of them
on the tuning and check worlds, but there the prior outweighs five to ten tests, against the
contract's "the estimate from the tests decides", and it is not done (measured in
``docs/validation.md``).

The model's prior of being slow (:func:`slow_prior`), per grid cell and operator: the
probability that the operator's broadband there is under the level where handsets leave it
(:data:`coverage.model.observations.NO_SERVICE_DBM`, the subscriber falls back to 2G or loses
service), plus, where it holds, the probability that the broadband test is slow at that
margin over the outdoor threshold, a logistic curve fitted on the province's broadband tests
(:func:`fit_slow_curve`). HSPA and LTE reach a given download at very different levels:
:func:`choose_slow_curve` fits one curve and one per technology, and blocked
cross-validation on the province's tests chooses between them (:class:`SlowCurve`, in the
run's manifest); per technology, the curve of the technology the handset camps on applies,
at that technology's own margin. Operators weigh by market share, cells by people.

**A run without tests** (towers only) has the same priors: the operators' shares from their
broadband cells (:func:`coverage.classify.noservice.site_shares`, given by the caller;
equal without them) and the prior's strength ``Profile.model_prior_tests``. In place of the
slow curve the tests would fit, a textbook download by signal level
(:mod:`coverage.classify.throughput`: TR 36.942's attenuated Shannon bound at a stated load
and bandwidth): a subscriber is slow where their operator's best broadband is under the
level at which that download reaches the threshold (about -116 dBm of 4G RSRP, -93 dBm of
3G RSCP at 5 Mbps), which counts the residents without broadband of their own and those on
a weak 3G pilot. No tests never means no problem.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import beta

from ..model import CoverageSurfaces
from ..model.cells import cell_range
from ..model.crossval import SELECT_MAX_OBS, STAGE_TOLERANCE
from ..model.observations import NO_SERVICE_DBM
from ..params import BROADBAND_TECHS, Profile
from .noservice import (
    fit_prior_strength,
    inclusion_shares,
    market_shares,
    no_service_by_operator,
    no_service_estimate,
    province_departures,
    service_counts,
    survey_regression_share,
)
from .prior import market_mix, operator_margins, people_mean, probability_below
from .selection import Propensity, fit_propensity
from .survey import choose_bandwidth, group_weighted_median, poststratify, share_below
from .throughput import slow_levels_dbm
from .zonal import ZonalWeights, stratum_of

__all__ = ["GSM_DOWNLOAD_MBPS", "NEUTRAL_SLOW_CURVE", "SlowCurve", "calibrated_weights",
           "choose_slow_curve", "fit_slow_curve", "location_weights", "posterior_above",
           "resident_download", "resident_rules", "slow_by_operator", "slow_prior",
           "sparse_counts"]

log = logging.getLogger(__name__)

#: Download of a handset on 2G that measured none, Mbps: EDGE's practical throughput
#: (0.1-0.2 Mbps; 3GPP TS 45.001 gives 59.2 kbit/s a timeslot, handsets use 2-4).
GSM_DOWNLOAD_MBPS = 0.1
#: Strata of equal population per village at most, and tests per stratum sought (two: on
#: the tuning worlds, strata cut on the modelled signal margin instead of the people, or
#: four tests a stratum, found fewer of the truly slow villages: 13 and 15 of 26 against 16).
MAX_STRATA = 3
TESTS_PER_STRATUM = 2
#: Broadband tests with a level and a speed needed to fit the slow curve; with fewer, the
#: share of slow tests whatever the margin.
MIN_CURVE_TESTS = 30
#: Tests a slow curve is fitted on at most: a seeded sample beyond. Two parameters from a
#: million tests have standard errors near a thousandth of their value; a national run's
#: ten million took a quarter of a minute to fit on every test.
CURVE_MAX_TESTS = 1_000_000
#: Cells of the model the priors read at once. Each cell's probabilities take about 60 bytes
#: of float64 temporaries; in chunks they follow the chunk, not the 35 million cells of a
#: national grid's villages at 100 m (2 GB at once).
PRIOR_CHUNK_CELLS = 1 << 22
#: The slow curve (:func:`fit_slow_curve`'s ``(a, b)``) of a run without broadband tests to
#: fit it: no broadband handset slow over the levels of the textbook download
#: (:func:`coverage.classify.throughput.slow_levels_dbm`, under which the subscriber is
#: slow), so the curve adds nothing to them.
NEUTRAL_SLOW_CURVE = (-30.0, 0.0)


def resident_download(tech: np.ndarray, download_mbps: np.ndarray) -> np.ndarray:
    """Each test's download as its subscriber lives it, Mbps (NaN: the test says nothing).

    ``tech`` holds the tests' technology names (``none`` for no service, empty or None when
    unknown, as Ookla tiles). No service is 0; a 2G test without a download is at
    :data:`GSM_DOWNLOAD_MBPS`; every other test is at its measured download (NaN if none).
    """
    tech = np.asarray(tech, dtype=object)
    dl = np.asarray(download_mbps, dtype=float).copy()
    dl[tech == "none"] = 0.0
    gsm = (tech == "2G") & ~np.isfinite(dl)
    dl[gsm] = GSM_DOWNLOAD_MBPS
    return dl


def location_weights(g: np.ndarray, place: np.ndarray, w: np.ndarray, mask: np.ndarray,
                     people: ZonalWeights, n: int) -> np.ndarray:
    """Weights of the ``mask`` tests post-stratified to where each village's people live.

    Parameters
    ----------
    g : ndarray of int
        Each test's village row (0..n-1).
    place : ndarray
        Each test's place among its village's people: the mid-point of its cell's people in
        the village's cumulative distribution, cells ranked by their people (0..1; 0.5 off
        the village's cells; NaN where nobody lives), ``people.ranked.place(g, cell)``
        (:meth:`coverage.classify.zonal.RankedPieces.place`).
    w : ndarray
        Each test's own weight (1 a point test, the testers of an Ookla tile).
    mask : ndarray of bool
        The tests this estimate uses; the others get weight 0.
    people : ZonalWeights
        The villages' pieces on the model grid, weighted by people.
    n : int
        Number of villages.

    Returns
    -------
    ndarray
        Per test; each village's total weight over ``mask`` is kept.
    """
    out = np.where(mask, w, 0.0).astype(float)
    sel = np.flatnonzero(mask)
    if not len(sel) or not len(people.village):
        return out
    gs, ws, q = g[sel], w[sel], place[sel]
    count = np.bincount(gs, weights=ws, minlength=n)
    k_v = np.clip(np.floor(count / TESTS_PER_STRATUM), 1, MAX_STRATA).astype(np.int64)
    empty = np.isnan(q)
    k_t = k_v[gs]
    stratum = stratum_of(q, k_t)
    code = gs.astype(np.int64) * (MAX_STRATA + 1) + stratum + 1
    # each stratum's people: the cells whose mid-point falls in it (once a run per k)
    lives = np.zeros(len(gs))
    for k in range(1, MAX_STRATA + 1):
        mine = (k_t == k) & ~empty
        lives[mine] = people.people_in_strata(k)[gs[mine], stratum[mine]]
    tested = np.bincount(code, weights=ws, minlength=n * (MAX_STRATA + 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        new = np.nan_to_num(np.where(empty, 0.0, ws * lives / tested[code]))
    vsum = np.bincount(gs, weights=new, minlength=n)
    lived = vsum > 0  # villages whose tests all stand where nobody lives: as they are
    scale = count / np.where(lived, vsum, 1.0)
    out[sel] = np.where(lived[gs], new * scale[gs], ws)
    return out


def fit_slow_curve(margin_db: np.ndarray, slow: np.ndarray) -> tuple[float, float]:
    """Logistic curve of a broadband test being slow against its margin (dB): (a, b).

    :math:`P(slow) = 1 / (1 + e^{-(a + b m)})`, maximum likelihood with a weak ridge on
    ``b``; under :data:`MIN_CURVE_TESTS` tests the share of slow tests (+1/2 smoothing)
    whatever the margin. Over :data:`CURVE_MAX_TESTS` tests, on a seeded sample of as many.
    """
    ok = np.flatnonzero(np.isfinite(margin_db))
    if len(ok) > CURVE_MAX_TESTS:
        ok = np.sort(np.random.default_rng(0).choice(ok, CURVE_MAX_TESTS, replace=False))
    m, y = np.clip(margin_db[ok], -30, 60), slow[ok].astype(float)
    share = (y.sum() + 0.5) / (len(y) + 1.0)
    a0 = float(np.log(share / (1 - share)))
    if len(y) < MIN_CURVE_TESTS:
        return a0, 0.0

    def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = p[0] + p[1] * m
        pr = expit(z)
        ll = np.sum(y * np.log(np.clip(pr, 1e-12, 1)) + (1 - y) * np.log(np.clip(1 - pr, 1e-12,
                                                                                 1)))
        grad = np.array([np.sum(pr - y), np.sum((pr - y) * m) + 2e-3 * p[1]])
        return -ll + 1e-3 * p[1] ** 2, grad

    res = minimize(nll, np.array([a0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


@dataclass(frozen=True)
class SlowCurve:
    """How often a province's broadband tests are slow at each margin (:func:`choose_slow_curve`).

    Attributes
    ----------
    pooled : tuple of float
        One curve for every technology, :func:`fit_slow_curve`'s ``(a, b)``.
    by_tech : Mapping
        Technology -> its own curve's ``(a, b)``; empty when one curve serves all. A
        technology missing from it takes ``pooled``.
    reason : str
        Why this choice.
    cv_log_loss : Mapping
        Held-out log-loss per test of each candidate tried (``pooled``, ``by_tech``).
    """

    pooled: tuple[float, float]
    by_tech: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    reason: str = "as given"
    cv_log_loss: Mapping[str, float] = field(default_factory=dict)

    def of(self, tech: str) -> tuple[float, float]:
        """The ``(a, b)`` of the curve a handset on ``tech`` follows."""
        return self.by_tech.get(tech, self.pooled)

    def as_dict(self) -> dict:
        """The choice as plain values (for a run's manifest)."""
        return {"curves": "by_tech" if self.by_tech else "pooled",
                "pooled": list(self.pooled),
                "by_tech": {t: list(c) for t, c in self.by_tech.items()},
                "reason": self.reason, "cv_log_loss": dict(self.cv_log_loss)}


def _curves_by_tech(margin_db: np.ndarray, slow: np.ndarray, tech: np.ndarray
                    ) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
    """The pooled curve and one per technology of at least :data:`MIN_CURVE_TESTS` tests."""
    pooled = fit_slow_curve(margin_db, slow)
    own = {}
    for t in BROADBAND_TECHS:
        sel = tech == t
        if np.count_nonzero(sel & np.isfinite(margin_db)) >= MIN_CURVE_TESTS:
            own[t] = fit_slow_curve(margin_db[sel], slow[sel])
    return pooled, own


def _log_loss(curve: SlowCurve, margin_db: np.ndarray, slow: np.ndarray,
              tech: np.ndarray) -> float:
    """Total log-loss of ``slow`` under ``curve`` at each test's margin and technology."""
    a, b = curve.pooled
    z = a + b * np.clip(margin_db, -30, 60)
    for t, (at, bt) in curve.by_tech.items():
        sel = tech == t
        z[sel] = at + bt * np.clip(margin_db[sel], -30, 60)
    p = np.clip(expit(z), 1e-12, 1 - 1e-12)
    return float(-np.sum(np.where(slow, np.log(p), np.log(1 - p))))


def choose_slow_curve(margin_db: np.ndarray, slow: np.ndarray, tech: np.ndarray,
                      fold: np.ndarray) -> SlowCurve:
    """One slow curve, or one per broadband technology, as blocked cross-validation says.

    HSPA and LTE reach a given download at very different levels, so a curve per
    technology can fit a province's tests much better than one curve over all; with few
    tests of a technology its own curve is noise. Each candidate is fitted on all folds
    but one and scored on the one held out (log-loss, every fold in turn); the curves per
    technology are taken only if they lower the held-out log-loss by
    :data:`coverage.model.crossval.STAGE_TOLERANCE` (the fusion's rule for a stage); the
    cross-validation scores a seeded sample of at most
    :data:`coverage.model.crossval.SELECT_MAX_OBS` tests, the curves kept are fitted on all.
    A technology of fewer than :data:`MIN_CURVE_TESTS` tests takes the pooled curve.

    Parameters
    ----------
    margin_db : ndarray
        Each broadband test's level over its technology's outdoor threshold, dB.
    slow : ndarray of bool
        Whether its download is under the rule's threshold.
    tech : ndarray of str
        Its technology (one of :data:`coverage.params.BROADBAND_TECHS`).
    fold : ndarray of int
        Its cross-validation fold (:func:`coverage.model.crossval.block_folds`).

    Returns
    -------
    SlowCurve
    """
    ok = np.isfinite(margin_db)
    m, y, tech, fold = margin_db[ok], np.asarray(slow, bool)[ok], np.asarray(tech)[ok], fold[ok]
    pooled, own = _curves_by_tech(m, y, tech)
    if len(own) < 2:
        return SlowCurve(pooled, reason="one technology with enough tests"
                         if own else "too few tests of any technology")
    if len(y) > SELECT_MAX_OBS:  # the fusion's cap on its cross-validation, seeded
        pick = np.sort(np.random.default_rng(0).choice(len(y), SELECT_MAX_OBS, replace=False))
        m, y, tech, fold = m[pick], y[pick], tech[pick], fold[pick]
    loss = {"pooled": 0.0, "by_tech": 0.0}
    for k in np.unique(fold):
        held = fold == k
        if held.all():
            continue
        p_k, own_k = _curves_by_tech(m[~held], y[~held], tech[~held])
        args = (m[held], y[held], tech[held])
        loss["pooled"] += _log_loss(SlowCurve(p_k), *args)
        loss["by_tech"] += _log_loss(SlowCurve(p_k, own_k), *args)
    loss = {k: v / len(y) for k, v in loss.items()}
    if loss["by_tech"] < (1 - STAGE_TOLERANCE) * loss["pooled"]:
        return SlowCurve(pooled, own, "a curve per technology: lower held-out log-loss", loss)
    return SlowCurve(pooled, {}, "one curve: a curve per technology no better held out", loss)


def slow_prior(model: CoverageSurfaces, weights: ZonalWeights, shares: Mapping[str, float],
               sigma_db: float, fits: Mapping | None,
               curve: SlowCurve | tuple[float, float], profile: Profile) -> np.ndarray:
    r"""Model's share of each village's subscribers whose download is under the threshold.

    Per operator and cell: :math:`p_{lost} + (1 - p_{lost})\,f(m)`, with
    :math:`p_{lost} = \Phi(-m_{camp}/\sigma)` the probability that the operator's best
    broadband is under :data:`NO_SERVICE_DBM` (the subscriber is on 2G or without service),
    :math:`m` its best margin over the outdoor threshold and :math:`f` the slow curve
    (:func:`fit_slow_curve`; with a curve per technology, :func:`choose_slow_curve`, that of
    the technology the handset camps on at its own margin, :func:`_slow_by_tech`);
    averaged over people and the operators' market ``shares``. ``curve`` is a
    :class:`SlowCurve` or one curve's ``(a, b)``.
    ``fits`` (``fused.calibration``) correct the layers as the fusion's calibration does.
    """
    per_op, _ = slow_by_operator(model, weights, list(shares), sigma_db, fits, curve, profile)
    return market_mix(per_op, shares, weights.n)


def slow_by_operator(model: CoverageSurfaces, weights: ZonalWeights, operators: list[str],
                     sigma_db: float, fits: Mapping | None,
                     curve: SlowCurve | tuple[float, float], profile: Profile,
                     tests: Mapping[str, np.ndarray] | None = None,
                     slow_dbm: Mapping[str, float] | None = None
                     ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """:func:`slow_prior`'s terms per operator, and the probability at each of ``tests``.

    With ``slow_dbm`` (per technology, dBm; a run without a fitted slow curve,
    :func:`coverage.classify.throughput.slow_levels_dbm`) a subscriber is slow where the
    operator's best broadband is under those levels rather than under
    :data:`NO_SERVICE_DBM`.

    Returns the people mean per village of each operator's probability that its subscriber
    is slow, and, with ``tests`` (``cell``, ``operator`` codes into ``operators`` names),
    that probability at each test for its own operator (NaN off the grid or for an
    operator without a layer).
    """
    if not isinstance(curve, SlowCurve):
        curve = SlowCurve(tuple(curve))
    lost = {t: NO_SERVICE_DBM[t] for t in BROADBAND_TECHS}
    outdoor = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    if slow_dbm is not None:
        lost = {t: slow_dbm.get(t, lost[t]) for t in BROADBAND_TECHS}

    def by_operator(part: CoverageSurfaces, w: ZonalWeights, t) -> tuple[dict, np.ndarray]:
        per_op = {}
        at = None if t is None else np.full(len(t["cell"]), np.nan)
        names = [] if t is None else list(t["operators"])
        for op in operators:
            if curve.by_tech:  # lost where handsets leave each technology (no slow_dbm)
                p_lost, f = _slow_by_tech(part, op, fits, curve, outdoor, sigma_db)
            else:
                camp, over = operator_margins(part, op, fits, lost, outdoor)
                p_lost = probability_below(camp, sigma_db)
                f = _on_curve(curve.pooled, over)
            p_slow = p_lost + (1 - p_lost) * f
            per_op[op] = people_mean(w, p_slow)
            if op in names:
                sel = (t["operator"] == names.index(op)) & (t["cell"] >= 0)
                at[sel] = p_slow.reshape(-1)[t["cell"][sel]]
        return per_op, at

    return _in_chunks(by_operator, model, weights, tests)


def _on_curve(curve: tuple[float, float], margin_db: np.ndarray) -> np.ndarray:
    """The slow curve ``(a, b)`` at margins in dB (``-inf``: the curve's low end), float64."""
    a, b = curve
    m = np.clip(np.nan_to_num(margin_db.astype("float64"), neginf=-30.0), -30, 60)
    return expit(a + b * m)


def _slow_by_tech(model: CoverageSurfaces, operator: str, fits: Mapping | None,
                  curve: SlowCurve, outdoor: Mapping[str, float], sigma_db: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    r"""Probability that the operator's subscriber has no broadband, and that it is slow.

    With a curve per technology, per cell: the probability that every broadband layer of the
    operator is under the level where handsets leave it (:data:`NO_SERVICE_DBM`), and the
    probability that its broadband is slow given it holds. A handset takes the highest
    technology over that level (3GPP TS 36.304's priority reselection, as the tests do),
    and the model's level there is uncertain (``sigma_db``): technology :math:`t` holds it
    with probability :math:`q_t \prod_{u > t} (1 - q_u)`, :math:`q_t = \Phi(m_{camp,t}/\sigma)`,
    and the curves are mixed in those proportions, each at its technology's margin over its
    own outdoor threshold (``outdoor``, dBm), given that one holds it. Where none may (every
    layer far under that level), the pooled curve at the best of those margins. The first
    probability is :math:`\Phi(-\max_t m_{camp,t}/\sigma) = \min_t (1 - q_t)`, read from
    the same terms.
    """
    lost = over = mixed = held = None
    for tech in reversed(BROADBAND_TECHS):  # the highest technology first
        camp, margin = operator_margins(model, operator, fits, {tech: NO_SERVICE_DBM[tech]},
                                        {tech: outdoor[tech]})
        below = probability_below(camp, sigma_db)
        if lost is None:
            lost, over = below, margin
            held, mixed = np.zeros(below.shape), np.zeros(below.shape)
        else:
            np.minimum(lost, below, out=lost)
            np.fmax(over, margin, out=over)
        on = (1.0 - held) * (1.0 - below)
        mixed += on * _on_curve(curve.of(tech), margin)
        held += on
    some = held > 1e-9
    f = np.empty(held.shape)
    f[some] = mixed[some] / held[some]
    f[~some] = _on_curve(curve.pooled, over[~some])
    return lost, f


def _in_chunks(fn, model: CoverageSurfaces, weights: ZonalWeights,
               tests: Mapping[str, np.ndarray] | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """``fn(model, weights, tests)`` over chunks of :data:`PRIOR_CHUNK_CELLS` cells, merged.

    ``fn`` returns per-village people means by name (:func:`.prior.people_mean`: 1 where
    a village has no weight) and optionally a value per test (NaN where it gives none).
    Each chunk sees the model at its cells (:func:`coverage.model.cells.cell_range`), the
    pieces on them and the tests in them; a village's means over the chunks are merged
    weighed by its weight in each (equal to one pass up to rounding, 1e-16 relative). A
    model of one chunk is passed as it is.
    """
    size = model.grid.shape[0] * model.grid.shape[1]
    if size <= PRIOR_CHUNK_CELLS:
        return fn(model, weights, tests)
    order = np.argsort(weights.cell, kind="stable")
    sorted_cells = weights.cell[order]
    num: dict[str, np.ndarray] = {}
    tot = np.zeros(weights.n)
    at_test = None
    for start in range(0, size, PRIOR_CHUNK_CELLS):
        stop = min(start + PRIOR_CHUNK_CELLS, size)
        # pieces off the grid (cell -1) go with the first chunk, as in one pass
        lo = 0 if start == 0 else np.searchsorted(sorted_cells, start)
        rows = np.sort(order[lo:np.searchsorted(sorted_cells, stop)])
        cell = weights.cell[rows]
        part = ZonalWeights(weights.village[rows], np.where(cell >= 0, cell - start, -1),
                            weights.weight[rows], weights.n)
        mine = None
        if tests is not None:
            mine = (tests["cell"] >= start) & (tests["cell"] < stop)
            tests_part = {**tests, "cell": np.where(mine, tests["cell"] - start, -1)}
        means, values = fn(cell_range(model, start, stop), part,
                           tests_part if tests is not None else None)
        weight = part.total()
        for name, mean in means.items():
            num[name] = num.get(name, 0.0) + np.where(weight > 0, mean * weight, 0.0)
        tot += weight
        if values is not None:
            at_test = np.where(mine, values, np.nan if at_test is None else at_test)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: np.where(tot > 0, s / tot, 1.0) for name, s in num.items()}, at_test


def posterior_above(prior: np.ndarray, kappa: float, k: np.ndarray, n: np.ndarray,
                    threshold: float) -> np.ndarray:
    """P(share >= threshold) under Beta(kappa*prior + k, kappa*(1-prior) + n - k)."""
    mu = np.clip(np.nan_to_num(prior, nan=0.5), 0.005, 0.995)
    a = kappa * mu + np.maximum(k, 0.0)
    b = kappa * (1 - mu) + np.maximum(n - k, 0.0)
    return beta.sf(threshold, a, b)


def resident_rules(ev: pd.DataFrame, surfaces: CoverageSurfaces, fused: CoverageSurfaces,
                   weights: ZonalWeights, measurements: pd.DataFrame | None, profile: Profile,
                   sigma_db: float, *, shares: Mapping[str, float] | None = None) -> None:
    """The residents' slow and no-service shares: the tests, and the model where they are few.

    Adds to ``ev`` (the table of :func:`coverage.classify.evidence.measurement_evidence`):
    ``no_service_share_tests`` (the tests' weighted share), ``no_service_prior`` and
    ``no_service_prior_tests`` (the model's prior and its strength in tests),
    ``no_service_probability`` (posterior probability that the share is at least the
    profile's maximum); ``slow_prior``, ``slow_prior_tests`` and ``slow_probability``
    (posterior probability that more than half of the residents are under the download
    threshold, i.e. their median is). With at least the rule's minimum of tests
    ``no_service_share`` is the survey regression estimate
    (:func:`coverage.classify.noservice.survey_regression_share`) and
    ``no_service_share_se`` its standard error; under it, the posterior mean (NaN without
    tests). With the speed rule's minimum, ``slow_share`` and ``slow_share_se`` are the
    survey regression estimate of the share of residents under the download threshold,
    ``median_download_mbps_tests`` the tests' weighted median before their weights are
    calibrated to it, and ``median_download_mbps`` and ``n_slow_tests`` follow the
    calibrated weights. ``sigma_db`` is the model's
    location variability (dB).

    Where the tests were weighted to where people live (a population raster), each test first
    weighs by the inverse of its inclusion propensity (:mod:`coverage.classify.selection`):
    the residents' median download (``median_download_mbps``, ``n_slow_tests``) and the
    no-service estimate are taken over those weights; ``ev.attrs["propensity"]`` holds the
    fit.

    Without ``measurements`` (a towers-only run) the priors decide alone: the operators
    weigh by ``shares`` (equal when None; :func:`coverage.classify.noservice.site_shares`
    reads them from the towers), the slow curve is :data:`NEUTRAL_SLOW_CURVE` and the
    priors' strength ``profile.model_prior_tests``. With them, the shares are the tests'
    (:func:`coverage.classify.noservice.market_shares`); once the propensity is fitted, the
    no-service columns' are the tests counted by their inverse propensity
    (:func:`coverage.classify.noservice.inclusion_shares`).
    """
    tested = measurements is not None and not measurements.empty
    if tested:
        shares = market_shares(measurements, fused.operators)
    elif not shares:
        shares = {op: 1.0 / len(fused.operators) for op in fused.operators}
    tests = ev.attrs.pop("service_tests", None)
    speeds = ev.attrs.pop("speed_tests", None)
    none_shares = shares
    if tests is not None and tests.get("by_people") and len(tests["village"]):
        groups = [tests] + ([speeds] if speeds is not None and len(speeds["village"]) else [])
        blind = [np.full(len(t["village"]), np.nan) for t in groups]

        def margin_of(op: str) -> np.ndarray:
            # one operator's grid at a time, also read at its tests without a level
            grid = _lose_margin(surfaces, op, fused)
            for t, at in zip(groups, blind, strict=True):
                _sample_blind(t, at, op, grid)
            return grid

        prop = fit_propensity(weights, margin_of, shares, tests, sigma_db)
        ev.attrs["propensity"] = prop
        if prop.floor < 1.0:
            tests = _reweighted(tests, blind[0], prop, weights)
            # who tests also decides how many tests each operator has
            none_shares = inclusion_shares(tests, list(shares))
            if len(groups) > 1:
                speeds = _reweighted(speeds, blind[1], prop, weights)
                _resident_median(ev, speeds, profile)
    if profile.max_no_service_share is not None:
        _no_service_rule(ev, surfaces, fused, weights, none_shares, tests, profile, sigma_db)
    if profile.min_download_mbps is not None:
        _slow_rule(ev, surfaces, fused, weights, shares,
                   speeds if speeds is not None and len(speeds["village"]) else None,
                   profile, sigma_db)


def _slow_rule(ev: pd.DataFrame, surfaces: CoverageSurfaces, fused: CoverageSurfaces,
               weights: ZonalWeights, shares: Mapping[str, float],
               speeds: Mapping[str, np.ndarray] | None, profile: Profile,
               sigma_db: float) -> None:
    """The slow columns of :func:`resident_rules`."""
    curve = ev.attrs.get("slow_curve")
    textbook = slow_levels_dbm(profile.min_download_mbps) if curve is None else None
    per_op, at_test = slow_by_operator(surfaces, weights, list(shares), sigma_db,
                                       fused.calibration, curve or NEUTRAL_SLOW_CURVE,
                                       profile, speeds, slow_dbm=textbook)
    prior = market_mix(per_op, shares, len(ev))
    n = ev["n_speed_tests"].to_numpy(dtype=float)
    k = ev["n_slow_tests"].to_numpy(dtype=float)
    kappa = (fit_prior_strength(prior, k, n) if (n > 0).any()
             else profile.model_prior_tests)
    log.info("slow residents: model prior worth %.1f tests", kappa)
    ev["slow_prior"] = prior
    ev["slow_prior_tests"] = kappa
    ev["slow_probability"] = posterior_above(prior, kappa, k, n, 0.5)
    if speeds is None or "weight" not in speeds:
        return
    # a test's download read with the spread the province's tests support
    bandwidth = choose_bandwidth(speeds["village"], speeds["download"], speeds["weight"],
                                 profile.min_download_mbps)
    ev.attrs["slow_bandwidth"] = bandwidth
    log.info("slow residents: tests read with a bandwidth of %g (%s)", bandwidth.bandwidth,
             bandwidth.reason)
    slow = share_below(speeds["download"], profile.min_download_mbps, bandwidth.bandwidth)
    share, se = survey_regression_share(per_op, shares, {**speeds, "none": slow}, at_test,
                                        len(ev))
    # the tests that name their operator carry the estimate (an Ookla tile names none)
    named = np.bincount(speeds["village"][speeds["operator"] >= 0], minlength=len(ev))
    enough = (n >= profile.min_speed_tests) & (named >= profile.min_speed_tests)
    # fewer: the prior updated by the tests' departures from the model at their spots
    sparse = ~enough & (named > 0)
    k_d = sparse_counts(np.where(named > 0, share, np.nan), k, n)
    ev["slow_probability"] = np.where(sparse, posterior_above(prior, kappa, k_d, n, 0.5),
                                      ev["slow_probability"].to_numpy())
    ev["slow_share_direct"] = np.where(enough, share, np.nan)
    ev["slow_share"] = np.where(enough, share, np.nan)
    ev["slow_share_se"] = np.where(enough, se, np.nan)
    ev["median_download_mbps_tests"] = ev["median_download_mbps"].to_numpy(dtype=float)
    _resident_median(ev, speeds, profile, np.where(enough, share, np.nan))


def calibrated_weights(g: np.ndarray, flag: np.ndarray, w: np.ndarray, target: np.ndarray
                       ) -> np.ndarray:
    """Weights ``w`` calibrated so that each village's weighted share of ``flag`` is ``target``.

    Per village ``g``, the flagged tests' weights are scaled together and the others
    together (a calibration estimator on one binary total, Deville and Särndal 1992): the
    weighted median of any value whose order the flag splits (a download under a threshold)
    then falls on the side the target says. Villages with a NaN target, or whose tests are
    all flagged or none (no scaling reaches the target), keep their weights.
    """
    n = len(target)
    total = np.bincount(g, weights=w, minlength=n)
    hit = np.bincount(g, weights=w * flag, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = hit / total
        up = np.where(flag, target[g] / share[g], (1 - target[g]) / (1 - share[g]))
    ok = np.isfinite(target[g]) & (share[g] > 0) & (share[g] < 1)
    return np.where(ok, w * np.clip(np.nan_to_num(up), 0.0, None), w)


def _lose_margin(model: CoverageSurfaces, operator: str, fused: CoverageSurfaces
                 ) -> np.ndarray:
    """The operator's calibrated margin over where handsets lose its network, dB (grid)."""
    (margin,) = operator_margins(model, operator, fused.calibration, NO_SERVICE_DBM)
    return margin


def _sample_blind(tests: Mapping[str, np.ndarray], at: np.ndarray, operator: str,
                  grid: np.ndarray) -> None:
    """``grid`` into ``at`` at the ``operator``'s tests that have no level of their own."""
    names = list(tests["operators"])
    if operator not in names:
        return
    sel = (np.isnan(tests["own_margin"]) & (tests["cell"] >= 0)
           & (tests["operator"] == names.index(operator)))
    at[sel] = grid.reshape(-1)[tests["cell"][sel]]


def _reweighted(tests: Mapping[str, np.ndarray], at_spot: np.ndarray, prop: Propensity,
                weights: ZonalWeights) -> dict:
    """``tests`` with ``weight`` by inverse propensity, then to where people live.

    A test without a level takes the mean propensity of the residents at its spot
    (``at_spot``: the calibrated model's margin for its operator there, dB).
    """
    out = dict(tests)
    d = prop.weights(np.asarray(tests["own_margin"], dtype=float), at_spot)
    ones = np.ones(len(d), dtype=bool)
    out["weight"] = location_weights(tests["village"], tests["place"],
                                     tests["raw_weight"] * d, ones, weights, weights.n)
    out["ipw"] = d
    return out


def _resident_median(ev: pd.DataFrame, speeds: Mapping[str, np.ndarray],
                     profile: Profile, slow_share: np.ndarray | None = None) -> None:
    """The residents' median download and slow count of ``ev`` over ``speeds``' weights.

    With ``slow_share`` (per village, NaN where none), the weights are first calibrated to
    it (:func:`calibrated_weights`).
    """
    g, dl, n = speeds["village"], speeds["download"], len(ev)
    ones = np.ones(len(g), dtype=bool)
    w = poststratify(g, pd.Series(dtype=object), speeds["weight"], ones, n,
                     codes=(speeds["operator"], pd.Index(speeds["operators"])))
    if slow_share is not None and profile.min_download_mbps is not None:
        w = calibrated_weights(g, dl < profile.min_download_mbps, w, slow_share)
    ev["median_download_mbps"] = group_weighted_median(g, dl, w, n)
    if profile.min_download_mbps is not None:
        total = np.bincount(g, weights=w, minlength=n)
        slow = np.bincount(g, weights=w * (dl < profile.min_download_mbps), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, slow / total, 0.0)
        ev["n_slow_tests"] = share * ev["n_speed_tests"].to_numpy(dtype=float)


def _no_service_rule(ev: pd.DataFrame, surfaces: CoverageSurfaces, fused: CoverageSurfaces,
                     weights: ZonalWeights, shares: dict[str, float],
                     tests: Mapping[str, np.ndarray] | None, profile: Profile,
                     sigma_db: float) -> None:
    """The no-service columns of :func:`resident_rules`."""
    if tests is None:
        tests = {"village": np.zeros(0, int), "cell": np.zeros(0, int),
                 "operator": np.zeros(0, int), "operators": [],
                 "none": np.zeros(0, bool), "weight": np.zeros(0)}
    # per operator, the model's share of its subscribers without service in each
    # village (their sum over the market shares is the prior) and its chance at each test
    per_op, at_test = _in_chunks(
        lambda part, w, t: no_service_by_operator(part, w, list(shares), sigma_db,
                                                  fused.calibration, t),
        surfaces, weights, tests)
    prior = market_mix(per_op, shares, len(ev))
    k, n = service_counts(ev)
    raw = ev["no_service_share"].to_numpy(dtype=float)
    mean, kappa = no_service_estimate(ev, prior)
    if not (n > 0).any():  # no village tested: the profile's strength of the model
        kappa = profile.model_prior_tests
    ev["no_service_share_tests"] = raw
    ev["no_service_prior"] = prior
    ev["no_service_prior_tests"] = kappa
    probability = posterior_above(prior, kappa, k, n, profile.max_no_service_share)
    if len(tests["village"]):
        # with enough tests, the tests decide: per operator, the model carried from
        # the testers' spots to the subscribers' homes by the tests' departures from it
        raw, se = survey_regression_share(
            per_op, shares, tests, at_test, len(n),
            untested=province_departures(tests, at_test, list(shares)))
        ev["no_service_share_se"] = se
        # fewer: the prior updated by those departures
        sparse = (n > 0) & (n < profile.min_no_service_tests) & np.isfinite(raw)
        k_d = sparse_counts(raw, k, n)
        mean = np.where(sparse, (kappa * np.clip(prior, 0.0, 1.0) + k_d) / (kappa + n),
                        mean)
        probability = np.where(sparse, posterior_above(prior, kappa, k_d, n,
                                                       profile.max_no_service_share),
                               probability)
    ev["no_service_share"] = np.where(n >= profile.min_no_service_tests, raw, mean)
    ev["no_service_probability"] = probability


def sparse_counts(share: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    r"""The few tests of a village as a count for the prior's update: :math:`n\,\hat s`.

    ``share`` is the survey regression estimate of the village's share
    (:func:`coverage.classify.noservice.survey_regression_share`: per operator, the model's
    share corrected by the tests' weighted departures from the model at their spots), ``k``
    the tests' weighted count of the event and ``n`` their weighted number. The beta prior
    :math:`\mathrm{Beta}(\kappa\mu, \kappa(1-\mu))` updated by :math:`n\hat s` events
    in :math:`n` has the mean :math:`(\kappa\mu + n\hat s)/(\kappa + n)`: the tests
    weigh as many as they are, and say what they measured, the model's error where they
    stood, rather than standing for the residents as they are (a tester in a town with
    signal says little of the hamlet behind the ridge). Where ``share`` is NaN (no test
    with an operator), ``k``. The prior's strength :math:`\kappa` stays the one fitted by
    marginal likelihood on the tests' raw counts: these counts are smoothed by the model
    (the estimate is the prior plus the tests' mean departure), so they vary less than
    binomial counts would and a strength fitted on them runs to its upper bound (200
    tests on ``tune-hata-mast``): the few tests would then say nothing.
    """
    return np.where(np.isfinite(share), np.clip(np.nan_to_num(share), 0.0, 1.0) * n, k)

