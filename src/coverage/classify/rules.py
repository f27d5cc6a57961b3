r"""The rules profile applied to village metrics: class, reasons, stability and confidence.

**Rules** are the contract's (``vn-2025`` by default; every threshold in :class:`Profile`).

**Stability.** The class is recomputed with every threshold made stricter at once (signal
thresholds ``stability_db`` higher, share, speed and access thresholds ``stability_rel``
tighter) and looser at once. Each rule is monotone in its threshold and the classes are
ordered (``unavailable`` < ``available_inaccessible`` < ``served``), so the class holds under
every mix of such moves exactly when the strict and loose classes equal it: ``label_stable``.

**Confidence** is the probability that the deciding quantities lie on the side of their
thresholds the class says.

*Covered and indoor shares.* When the metrics carry the village's model error and its
uncertainty (``model_offset_sd_db``, the posterior spread of the empirical-Bayes offset of
:func:`coverage.classify.shrinkage.shrink`: small where many tests fix it, the spread between
villages where none do), the share moves with that error along its own sensitivity, read
from the shares with thresholds ``stability_db`` up and down:

.. math:: P(c \ge t) = \Phi\left(\frac{c - t}{\sqrt{(s\,\sigma_b)^2 + 0.05^2}}\right),
          \qquad s = \frac{|c_{loose} - c_{strict}|}{2\,\Delta}

with 0.05 (:data:`SHARE_SD_FLOOR`) for what the signal does not carry (population, outline),
so a village on a coverage edge with an uncertain model is uncertain, and one whose share
barely moves with the signal is sure whatever the error. Without them (metrics made by
hand), a beta posterior: the model's share with the strength of :math:`\kappa` tests,
updated by the village's :math:`k` of :math:`n` tests with broadband service,
:math:`\mathrm{Beta}(\kappa c + k + \tfrac12,\ \kappa (1-c) + n - k + \tfrac12)`. The
tests' service is their own operator's, not the best operator's that the share counts, so
this posterior is pulled under the share (on the demo the least confident fifth of the
villages were right 69% of the time at 0.22 said); it is kept only as the fallback.

*How far the model strays in this province* (:func:`_share_floors`). The floor of 0.05 is
what the signal does not carry where the model's structure fits; where it does not (terrain,
clutter or antennas the model has wrong), a village's share misses by more than its error
in dB explains, and only the province's tests can say so. The villages whose tests decide
(``evidence == measured``) are the labels: their offsets are recomputed with their own
tests held out, in five blocks of villages
(:func:`coverage.classify.shrinkage.held_out_offsets`), their shares from the model as the
towers give it (before the fusion, whose calibration and kriging saw these tests) moved
by those offsets (:func:`coverage.classify.metrics._held_out_shares`), and their decided
shares are read against these as normal with variance :math:`(s\,\sigma_b)^2 + f^2`:
:math:`f` by maximum likelihood, within [0.05, :data:`MAX_SHARE_SD`], replaces the floor
for the province's villages the model decides (``model``, ``model+sparse_tests``). The
measured keep 0.05 (their shares are their tests'). Under ``min_recalibration_villages``
such villages (20), without tests, or with ``recalibrate_confidence`` false: 0.05. On the
tuning and check worlds f is 0.05-0.15 (0.05 on four of nine); with a model made wrong on
purpose (no diffraction, no foliage, the other Hata height; structure selection off) up to
0.19 (``docs/validation.md``, "The confidence learns how far the model strays").

*The village's own tests that found broadband* then update the covered side
(:func:`_served_update`): each is a resident's spot where some operator gives broadband
(its own does, so the best does), likelihood :math:`c_t^k` over the share's normal spread,
with :math:`c_t` the chance that a test finds broadband where a share :math:`c` of the
people have it: the odds ratio of the two is the province's, fitted on its tested villages
(``served_odds``, :func:`coverage.classify.metrics._served_odds`; 0.18-0.50 on the tuning
and check worlds: a subscriber's own operator is not always the best, handsets fall back).
The village's error in dB is capped so that its tests never lift the model over its
untested cells (:data:`coverage.classify.offsets.MAX_LIFT_DB`): the class keeps that
caution, but a verdict of no coverage in a village whose tests found broadband is not
sure. The tests without service are not counted again: the capped offset has them
already (censored), and a subscriber's own operator may lack what another gives. On the
tuning and check worlds, of the villages with 1 to 4 tests called ``unavailable``, those
with a test that found broadband were wrong 20 times in 60, the others 11 times in 112,
at a mean confidence of 0.85 and 0.91 before this step. A village with 1 to 4 tests has
its covered share already moved by its tests (the posterior median of
:func:`coverage.classify.metrics._sparse_share_update`), so this step counts its tests that
found broadband a second time. Reading that update's own posterior instead (its spread
around the moved share, or its probability over the threshold, with the province's floor
or without, or this step from the unmoved share) was measured and not kept: the Brier
score of these villages fell on the harsh and wide worlds and rose on the tuning and check
ones (the second count keeps the ``unavailable`` verdicts of villages whose tests found
broadband less sure, which they need; ``docs/validation.md``, same section).

*How many tests a measured village's tests are worth* (:func:`_design_effects`). Its
estimates from the tests (the shares of its tests with broadband, without service, with
indoor signal, under the speed threshold) are read below as if the tests were independent
draws. Tests taken next to each other share their signal, and the weights that make them
stand for the residents add variance: the village's tests cut in two halves, northern
against southern (:func:`coverage.classify.survey.split_half_difference`), say by how
much (random groups; Wolter 2007): the squared difference of the halves' estimates over
its binomial expectation is the village's design effect, pooled half and half with the
province's over its villages whose tests decide (at least ``min_recalibration_villages``),
at least 1. Each estimate's tests then count that many times less (the covered share's
error spread grows by its square root). A village whose halves disagree is less sure than
one whose halves agree.
The halves cannot see a bias both share, tests drawn to good signal over the whole village
(:func:`_selection_effects`): where the model's covered share at the village's tests' spots
exceeds that at its residents' (``selection_gap``), the square of the excess adds to the
variance of the share of its tests with broadband.

*A measured village's indoor share* is its tests' shrunk toward the model's
(:func:`coverage.classify.metrics.indoor_shrinkage`, Fay-Herriot): the weak-signal rule's
doubt is read as the tests' sampling, the Jeffreys posterior of that share over its indoor
tests (:func:`_p_weak_from_tests`), not the model's error in dB. The shrinkage's own
posterior spread (:math:`\gamma_i v_i`, narrower where the model dominates) was measured in
its place and not kept: on the eighteen worlds of ``benchmarks/worlds_check.py`` it lowered
the Brier score of the tuning worlds and raised that of the check and harsh ones (the
villages the weak-signal rule called ``available_inaccessible`` became surer than they
were right; ``docs/validation.md``, "The confidence after the shrunk indoor share and the
few tests' update").

*Rules on tests.* The speed rule by the beta posterior of the share of residents below the
threshold: with the rule's minimum of tests, the village's tests (counting less by their
design effect) update the model's slow share worth as many tests as the province's tested
villages say (``slow_prior_tests``, empirical Bayes; :func:`_p_slow_from_tests`), as under
the minimum, rather than the tests alone (on the eighteen worlds of
``benchmarks/worlds_check.py`` the measured villages' Brier score 0.085-0.096 -> 0.069-0.092
per set, ``docs/validation.md``, "The speed rule's tests against the province's prior");
the no-service rule, with the rule's minimum of tests, by the normal sampling
distribution of the survey regression estimate (``no_service_share_se``,
:func:`coverage.classify.noservice.survey_regression_share`), under it by the beta
posterior around the model's prior (:mod:`coverage.classify.noservice`). A ``served``
village is right only if no such problem hides behind too few tests: where the model gives
a no-service prior, the probability that the share is over the rule's threshold counts even
under the rule's minimum number of tests (the rule cannot fire there, the subscribers may
still lack service). Access rules rest on
the table and carry no sampling doubt. ``served`` needs coverage and every rule to fail,
``available_inaccessible`` coverage and one reason, ``unavailable`` no coverage. A village
without tests is capped at ``max_model_confidence``; an unstable label has its confidence
multiplied by ``unstable_confidence_factor``, except a measured village's where the halves
of the province's tests were read: its probability already says how near the threshold it
lies, and the halves measure the tests' doubt the fixed factor stood for.

Measured on the two generated provinces (``benchmarks/classify_quality.py``; Brier score of
the confidence against being right, lower is better): 0.232 -> 0.126 on the demo and
0.221 -> 0.170 on seed 7 (with the other changes of that round). The top bin stays over-confident
by a few points: the share's spread counts the village's common model error, not its
cell-to-cell part (adding that part, each cell's own doubt over the village's effective
number of measurement discs, calibrated the top bin but made the middle ones
under-confident: Brier 0.132 and 0.166; not kept).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import ndtr
from scipy.stats import beta

from ..params import Profile

__all__ = ["CLASSES", "REASONS", "apply_profile", "province_design_effects"]

CLASSES = ("unavailable", "available_inaccessible", "served")
REASONS = ("no_signal", "2g_only", "partial_coverage", "weak_signal", "slow_speed",
           "measured_no_service", "no_power", "no_devices", "unaffordable")
#: Tests beyond this many add no more certainty (tests of one village are correlated).
MAX_EVIDENCE_TESTS = 50.0
#: Spread of a village's share that the signal does not explain (population, outline).
SHARE_SD_FLOOR = 0.05
#: At most this spread of a share the signal does not carry, fitted per province
#: (:func:`_share_floors`).
MAX_SHARE_SD = 0.5
#: Points on [0, 1] and villages per chunk of the covered share's posterior given its
#: tests that found broadband (:func:`_served_update`).
SHARE_GRID = 200
SHARE_CHUNK = 4096
#: Under a test rule's minimum of tests, it fires at this posterior probability (contract).
SPARSE_FIRE_PROBABILITY = 0.5

log = logging.getLogger(__name__)


def _col(metrics: pd.DataFrame, name: str, default) -> np.ndarray:
    if name in metrics.columns:
        return metrics[name].to_numpy(dtype=float)
    if isinstance(default, str):
        return metrics[default].to_numpy(dtype=float)
    return np.full(len(metrics), float(default))


def _scaled(value: float | None, factor: float, *, upper: float | None = 1.0) -> float | None:
    if value is None:
        return None
    out = value * factor
    return min(out, upper) if upper is not None else out


def _flags(m: dict[str, np.ndarray], acc: dict[str, np.ndarray] | None, profile: Profile,
           shift: int) -> dict[str, np.ndarray]:
    """Reason flags with every threshold moved: shift -1 loose, 0 nominal, +1 strict."""
    rel = 1.0 + shift * profile.stability_rel
    inv = 1.0 - shift * profile.stability_rel
    suffix = {-1: "_loose", 0: "", 1: "_strict"}[shift]
    covered = m["covered" + suffix]
    indoor = np.minimum(m["indoor" + suffix], covered)
    n = len(covered)
    false = np.zeros(n, dtype=bool)
    flags: dict[str, np.ndarray] = {}
    unavailable = covered < _scaled(profile.min_covered_share, rel)
    flags["no_signal"] = unavailable & (covered <= 0)
    flags["2g_only"] = unavailable & (m["g2"] >= profile.min_2g_share)
    flags["partial_coverage"] = unavailable & ~flags["no_signal"] & ~flags["2g_only"]
    avail = ~unavailable
    min_indoor = _scaled(profile.min_indoor_share, rel)
    flags["weak_signal"] = avail & (indoor < min_indoor) if min_indoor is not None else false
    slow = false.copy()
    enough_speed = m["n_speed"] >= profile.min_speed_tests
    with np.errstate(invalid="ignore"):
        if profile.min_download_mbps is not None:
            slow |= enough_speed & (m["dl"] < _scaled(profile.min_download_mbps, rel,
                                                      upper=None))
        if profile.min_upload_mbps is not None:
            slow |= enough_speed & (m["ul"] < _scaled(profile.min_upload_mbps, rel,
                                                      upper=None))
    # under the minimum, the fused estimate decides: the model's prior updated by the few
    # tests, or alone without any, firing at posterior probability >= 1/2
    # (coverage.classify.residents; NaN where the metrics carry no prior: never fires)
    if profile.min_download_mbps is not None:
        with np.errstate(invalid="ignore"):
            slow |= ~enough_speed & (m["p_slow"] >= SPARSE_FIRE_PROBABILITY)
    flags["slow_speed"] = avail & slow
    max_none = _scaled(profile.max_no_service_share, inv)
    enough_none = m["n_known"] >= profile.min_no_service_tests
    with np.errstate(invalid="ignore"):
        flags["measured_no_service"] = (
            avail & ((enough_none & (m["none"] >= max_none))
                     | (~enough_none & (m["p_none"] >= SPARSE_FIRE_PROBABILITY)))
            if max_none is not None else false)
    for name in ("no_power", "no_devices", "unaffordable"):
        flags[name] = false
    if acc is not None:
        with np.errstate(invalid="ignore"):
            if profile.min_electricity_share is not None:
                flags["no_power"] = avail & (acc["elec"] < _scaled(
                    profile.min_electricity_share, rel))
            if profile.min_smartphone_share is not None:
                flags["no_devices"] = avail & (acc["phone"] < _scaled(
                    profile.min_smartphone_share, rel))
            if profile.max_price_income_share is not None:
                flags["unaffordable"] = avail & (acc["price"] > _scaled(
                    profile.max_price_income_share, inv))
    return flags


def _klass(flags: dict[str, np.ndarray]) -> np.ndarray:
    unavailable = flags["no_signal"] | flags["2g_only"] | flags["partial_coverage"]
    inaccessible = ~unavailable & np.any([flags[r] for r in REASONS[3:]], axis=0)
    return np.where(unavailable, CLASSES[0], np.where(inaccessible, CLASSES[1], CLASSES[2]))


def _p_above(mean: np.ndarray, strength: np.ndarray, k: np.ndarray, n: np.ndarray,
             threshold: float) -> np.ndarray:
    """P(share >= threshold) under Beta(s*mean + k + 1/2, s*(1-mean) + n - k + 1/2)."""
    scale = np.minimum(1.0, MAX_EVIDENCE_TESTS / np.maximum(n, 1e-9))
    k, n = k * scale, n * scale
    a = strength * np.clip(mean, 0, 1) + k + 0.5
    b = strength * (1 - np.clip(mean, 0, 1)) + (n - k) + 0.5
    return beta.sf(threshold, a, b)


def _p_share_above(m: dict[str, np.ndarray], key: str, offset_sd_db: np.ndarray,
                   threshold: float, step_db: float,
                   served_tests: np.ndarray | None = None,
                   served_odds: np.ndarray | None = None,
                   floor: np.ndarray | float = SHARE_SD_FLOOR) -> np.ndarray:
    """P(share >= threshold) when the village's model error is uncertain by ``offset_sd_db``.

    The share moves with the village's error along its own sensitivity, read from the
    shares with the thresholds ``step_db`` up and down (``*_strict``, ``*_loose``): a share
    that barely moves with the signal is sure whatever the error; a village on a coverage
    edge is not. :data:`SHARE_SD_FLOOR` stands for what the signal does not carry (the
    population raster, the village outline). ``served_tests``: the village's tests that
    found broadband, each a spot with coverage, found at ``served_odds`` of the share
    (:func:`_served_update`; 1 when not given).
    """
    slope = np.abs(m[key + "_loose"] - m[key + "_strict"]) / (2.0 * step_db)
    sd = np.hypot(slope * offset_sd_db, floor)
    if served_tests is None:
        return ndtr((m[key] - threshold) / sd)
    odds = (np.ones(len(sd)) if served_odds is None
            else np.nan_to_num(served_odds, nan=1.0, posinf=1.0))
    return _served_update(m[key], sd, served_tests, threshold, odds)


def _served_update(share: np.ndarray, sd: np.ndarray, k: np.ndarray, threshold: float,
                   odds: np.ndarray) -> np.ndarray:
    r"""P(share >= threshold): a normal share updated by ``k`` tests that found broadband.

    Prior :math:`c \sim N(\hat c, s^2)` on [0, 1]; each test with broadband is a
    resident's spot with coverage, found at the province's odds :math:`b` (``odds``,
    :func:`coverage.classify.metrics._served_odds`) of the share:
    :math:`c_t = b c / (b c + 1 - c)`, likelihood :math:`c_t^k`; the posterior on a grid of
    :data:`SHARE_GRID` points, :data:`SHARE_CHUNK` villages at a time. Villages without
    such a test keep the prior's :math:`\Phi((\hat c - t)/s)`.
    """
    out = ndtr((share - threshold) / sd)
    k = np.nan_to_num(k, nan=0.0)
    rows = np.flatnonzero((k > 0) & np.isfinite(share) & (sd > 0))
    grid = (np.arange(SHARE_GRID) + 0.5) / SHARE_GRID
    above = grid >= threshold
    for start in range(0, len(rows), SHARE_CHUNK):
        r = rows[start:start + SHARE_CHUNK]
        b = odds[r, None]
        log_w = (-0.5 * ((grid[None, :] - share[r, None]) / sd[r, None]) ** 2
                 + k[r, None] * np.log(b * grid / (b * grid + 1.0 - grid)))
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        out[r] = w[:, above].sum(axis=1) / w.sum(axis=1)
    return out


def _share_floors(metrics: pd.DataFrame, profile: Profile) -> np.ndarray:
    r"""Per village, the spread of its covered share that the signal does not carry.

    :data:`SHARE_SD_FLOOR` unless its province's villages whose tests decide say more: their
    decided shares against the model's with their tests held out
    (``heldout_covered_share``, :func:`coverage.classify.metrics._held_out_shares`) are
    normal around it with the variance :math:`(s\,\sigma_b)^2 + f^2` (sensitivity and
    held-out offset spread as in :func:`_p_share_above`); :math:`f` by maximum likelihood,
    at least the floor and at most :data:`MAX_SHARE_SD`, for the villages the model decides
    in that province (with at least ``min_recalibration_villages`` such villages; the
    measured keep the floor).
    """
    out = np.full(len(metrics), SHARE_SD_FLOOR)
    if (not profile.recalibrate_confidence or "heldout_covered_share" not in metrics.columns
            or "evidence" not in metrics.columns):
        return out
    measured = metrics["evidence"].to_numpy() == "measured"
    group = _col(metrics, "province_code", 0.0)
    held = _col(metrics, "heldout_covered_share", np.nan)
    slope = (np.abs(_col(metrics, "heldout_covered_share_loose", np.nan)
                    - _col(metrics, "heldout_covered_share_strict", np.nan))
             / (2.0 * profile.stability_db) if profile.stability_db > 0 else 0 * held)
    err = _col(metrics, "pop_covered_share", 0) - held
    known = np.nan_to_num((slope * _col(metrics, "heldout_offset_sd_db", np.nan)) ** 2)
    for code in np.unique(group):
        lab = measured & (group == code) & np.isfinite(err)
        if lab.sum() < profile.min_recalibration_villages:
            continue
        e2, k2 = err[lab] ** 2, known[lab]

        def nll(f: float, e2=e2, k2=k2) -> float:
            v = k2 + f * f
            return 0.5 * float(np.sum(np.log(v) + e2 / v))

        f = minimize_scalar(nll, bounds=(SHARE_SD_FLOOR, MAX_SHARE_SD), method="bounded").x
        log.info("province %d: the covered share's spread the signal does not carry, from "
                 "%d villages whose tests decide: %.3f", int(code), int(lab.sum()), f)
        out[(group == code) & ~measured] = f
    return out


#: The tests' estimates whose halves the design effect compares: the split-half
#: column of :func:`coverage.classify.survey.split_half_difference`, the number of tests
#: behind the estimate and the estimate (a column, or the ratio of two).
SPLIT_HALF_ESTIMATES = {
    "cov": ("n_cov_tests", ("k_cov_tests", "n_cov_tests")),
    "none": ("n_service_tests", "no_service_share_tests"),
    "indoor": ("n_indoor_tests", "indoor_share_tests"),
    "slow": ("n_speed_tests", ("n_slow_tests", "n_speed_tests")),
}


def _design_effects(metrics: pd.DataFrame, profile: Profile
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r"""Per estimate from the tests, how many times its sampling variance the binomial's.

    A measured village's estimates (the share of its tests with broadband, without
    service, with indoor signal, under the speed threshold) are read as if its tests were
    independent draws. They are not: tests taken next to each other share their signal,
    and the weights that make them stand for the residents add variance (Kish 1965). Two
    halves of the village's tests (:func:`coverage.classify.survey.
    split_half_difference`, a village's northern tests against its southern) say how much:
    with :math:`n` tests, the halves' difference :math:`d` has the variance
    :math:`E_0 = \tilde p (1 - \tilde p)(1/n_a + 1/n_b)` if the tests were independent
    (:math:`\tilde p = (np + \tfrac12)/(n + 1)`), and :math:`d^2 / E_0` estimates the
    design effect with one degree of freedom. The province's, :math:`D = \sum d^2 / \sum
    E_0` over its villages whose tests decide, is the prior of each village's, worth as much
    as its own:

    .. math:: r = \max\left(1, \tfrac12 \left(D + d^2 / E_0\right)\right)

    so a village whose halves disagree is less sure than one whose halves agree, and a
    province whose tests cluster is less sure of all its measured villages. The
    estimate's tests then count :math:`n / r` (:func:`_confidence`). 1 for the villages
    whose tests do not decide, without two tests in each half's estimate, in a province
    with fewer than ``min_recalibration_villages`` such villages or with
    ``recalibrate_confidence`` false.

    Returns
    -------
    dict of ndarray, ndarray of bool
        :math:`r` per estimate (the keys of :data:`SPLIT_HALF_ESTIMATES`) and village, and
        the measured villages of the provinces where some :math:`D` was estimated.
    """
    n_rows = len(metrics)
    out = {key: np.ones(n_rows) for key in SPLIT_HALF_ESTIMATES}
    fitted = np.zeros(n_rows, dtype=bool)
    if not profile.recalibrate_confidence or "evidence" not in metrics.columns:
        return out, fitted
    measured = metrics["evidence"].to_numpy() == "measured"
    for key in SPLIT_HALF_ESTIMATES:
        d, e0, use = _split_halves(metrics, key)
        province = province_design_effects(metrics, profile, key)
        lab = use & np.isfinite(province)
        out[key][lab] = np.maximum(1.0, 0.5 * (province[lab] + d[lab] ** 2 / e0[lab]))
        fitted |= measured & np.isfinite(province)
    return out, fitted


def _split_halves(metrics: pd.DataFrame, key: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per village, its halves' difference, its binomial variance and whether it is read.

    The estimate ``key`` of :data:`SPLIT_HALF_ESTIMATES`: :math:`d`, :math:`E_0` (as in
    :func:`_design_effects`) and the measured villages with two tests or more in each half.
    """
    count, share = SPLIT_HALF_ESTIMATES[key]
    d = _col(metrics, f"split_half_{key}", np.nan)
    n = _col(metrics, count, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (_col(metrics, share[0], np.nan) / n if isinstance(share, tuple)
             else _col(metrics, share, np.nan))
        p = (np.clip(np.nan_to_num(p), 0, 1) * n + 0.5) / (n + 1)
        half = np.floor(n / 2)
        e0 = p * (1 - p) * (1 / half + 1 / (n - half))
    measured = (metrics["evidence"].to_numpy() == "measured" if "evidence" in metrics.columns
                else np.zeros(len(metrics), dtype=bool))
    return d, e0, measured & np.isfinite(d) & (half >= 2) & np.isfinite(e0)


def province_design_effects(metrics: pd.DataFrame, profile: Profile, key: str
                            ) -> np.ndarray:
    r"""Per village, its province's design effect :math:`D` of the tests' ``key`` estimate.

    :math:`D = \sum d^2 / \sum E_0` over the province's villages whose tests decide
    (:func:`_design_effects`); NaN in a province with fewer than
    ``min_recalibration_villages`` such villages, and everywhere with
    ``recalibrate_confidence`` false. The covered share of a village with fewer tests reads
    its tests as that many times fewer (:mod:`coverage.classify.metrics`).
    """
    out = np.full(len(metrics), np.nan)
    if not profile.recalibrate_confidence:
        return out
    d, e0, use = _split_halves(metrics, key)
    group = _col(metrics, "province_code", 0.0)
    for code in np.unique(group[use]):
        lab = use & (group == code)
        if lab.sum() < profile.min_recalibration_villages:
            continue
        deff = float(np.sum(d[lab] ** 2) / np.sum(e0[lab]))
        log.info("province %d: design effect of the tests' %s share, from %d villages "
                 "whose tests decide: %.2f", int(code), key, int(lab.sum()), deff)
        out[group == code] = deff
    return out


def _selection_effects(metrics: pd.DataFrame, deff: dict[str, np.ndarray],
                       fitted: np.ndarray) -> dict[str, np.ndarray]:
    r"""The design effects with the doubt the tests' spots leave added, per estimate.

    Testers are drawn to good signal: a village's tests may sit where the model gives more
    coverage than where its residents live. ``selection_gap`` (:func:`coverage.classify.
    metrics._selection_gap`) is how much more: the model's covered share at the tests'
    spots minus at the residents'. The share of the tests with broadband may overstate the
    residents' by as much, and both halves of the village's tests share that bias, so the
    halves (:func:`_design_effects`) cannot see it. Its positive part :math:`g` adds in
    quadrature to the share's sampling variance, as tests counting

    .. math:: r' = r + n\,g^2 / (\tilde p (1 - \tilde p))

    times less (:math:`n` at most :data:`MAX_EVIDENCE_TESTS`, :math:`\tilde p` as in
    :func:`_design_effects`). Only for the covered share (the gap is the covered share's)
    and the villages of ``fitted`` (measured, in a province whose halves were read); tests
    spread like the residents, or sitting where the model gives less, add nothing.
    """
    gap = np.maximum(np.nan_to_num(_col(metrics, "selection_gap", np.nan)), 0.0)
    count, (k_col, n_col) = SPLIT_HALF_ESTIMATES["cov"]
    n = _col(metrics, count, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.clip(np.nan_to_num(_col(metrics, k_col, np.nan) / _col(metrics, n_col, 0)),
                    0, 1)
    pt = (p * n + 0.5) / (n + 1)
    extra = np.minimum(n, MAX_EVIDENCE_TESTS) * gap ** 2 / (pt * (1 - pt))
    return {**deff, "cov": deff["cov"] + np.where(fitted & (n > 0), extra, 0.0)}


def _p_weak_from_tests(metrics: pd.DataFrame, indoor: np.ndarray, profile: Profile,
                       p_weak: np.ndarray, deff: np.ndarray | float = 1.0) -> np.ndarray:
    """P(indoor share < threshold) where the share comes from the tests (measured villages).

    A measured village's indoor share is the weighted share of its residents' tests where
    the building margin holds (:mod:`coverage.classify.metrics`, ``_indoor_from_tests``),
    shrunk toward the model's (:func:`coverage.classify.metrics.indoor_shrinkage`): its
    doubt is read as the tests', the Jeffreys posterior of that share over the indoor tests
    (at most :data:`MAX_EVIDENCE_TESTS`), not the model's error, with the tests counting
    ``1 / deff`` each (:func:`_design_effects`). Elsewhere ``p_weak``.
    """
    if "evidence" not in metrics.columns or "n_indoor_tests" not in metrics.columns:
        return p_weak
    n = _col(metrics, "n_indoor_tests", 0) / deff
    from_tests = ((metrics["evidence"].to_numpy() == "measured")
                  & (_col(metrics, "n_indoor_tests", 0) >= profile.min_override_tests)
                  & np.isfinite(indoor))
    zero = np.zeros(len(n))
    p_tests = 1 - _p_above(zero, zero, np.nan_to_num(indoor) * n, n,
                           profile.min_indoor_share)
    return np.where(from_tests, p_tests, p_weak)


def _p_slow_from_tests(metrics: pd.DataFrame, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    r"""P(more than half of the residents are slow) for a village with the speed rule's tests.

    Its ``k`` of ``n`` tests under the download threshold (``n_slow_tests``,
    ``n_speed_tests``, already divided by the design effect) update the model's slow share
    (``slow_prior``) worth as many tests as the province's tested villages say
    (``slow_prior_tests``, the beta-binomial strength fitted over them by maximum marginal
    likelihood, :func:`coverage.classify.noservice.fit_prior_strength`): the
    empirical-Bayes posterior :math:`\mathrm{Beta}(\kappa s + k + \tfrac12,\
    \kappa (1-s) + n - k + \tfrac12)` above 1/2, as the villages under the minimum are
    read (:func:`coverage.classify.residents.resident_rules`). A province whose villages
    differ from its model by little beyond their tests' sampling (large :math:`\kappa`)
    trusts the model against a village's few tests; one where they differ much, the tests.
    Without the prior (metrics made by hand): the tests alone around 1/2.
    """
    given = _col(metrics, "slow_prior", np.nan)
    known = np.isfinite(given)
    strength = np.where(known, np.nan_to_num(_col(metrics, "slow_prior_tests", 0.0)), 0.0)
    return _p_above(np.where(known, given, 0.5), strength, k, n, 0.5)


def apply_profile(metrics: pd.DataFrame, profile: Profile, *,
                  access: pd.DataFrame | None = None,
                  village_ids: pd.Series | None = None) -> pd.DataFrame:
    """Class, reasons, stability and confidence of each village from its metrics.

    Parameters
    ----------
    metrics : DataFrame
        From :func:`coverage.classify.village_metrics`: at least ``pop_covered_share``,
        ``pop_indoor_share``, ``pop_2g_share``, ``n_tests``, ``n_service_tests``,
        ``median_download_mbps``, ``median_upload_mbps`` and ``no_service_share``. The
        optional ``*_strict``/``*_loose`` shares (thresholds ``stability_db`` up and down),
        ``prior_share``, ``prior_tests``, ``n_cov_tests``, ``k_cov_tests``,
        ``n_speed_tests`` and ``n_slow_tests`` refine stability and confidence.
    profile : Profile
        The rules.
    access : DataFrame, optional
        The access table indexed by ``village_id``; missing villages and empty cells set no
        constraint.
    village_ids : Series, optional
        The id of each row of ``metrics``, to look the access table up.

    Returns
    -------
    DataFrame
        ``class``, ``reasons`` (``;``-separated, contract order), ``label_stable`` (bool) and
        ``confidence`` (0..1), indexed like ``metrics``.
    """
    n = len(metrics)
    m = {
        "covered": _col(metrics, "pop_covered_share", 0),
        "indoor": _col(metrics, "pop_indoor_share", 0),
        "g2": _col(metrics, "pop_2g_share", 0),
        "n_known": _col(metrics, "n_service_tests", 0),
        "none": _col(metrics, "no_service_share", np.nan),
        "dl": _col(metrics, "median_download_mbps", np.nan),
        "ul": _col(metrics, "median_upload_mbps", np.nan),
        "n_speed": _col(metrics, "n_speed_tests", "n_tests"),
        "p_slow": _col(metrics, "slow_probability", np.nan),
        "p_none": _col(metrics, "no_service_probability", np.nan),
    }
    for base, key in (("pop_covered_share", "covered"), ("pop_indoor_share", "indoor")):
        for suffix in ("_strict", "_loose"):
            moved = _col(metrics, base + suffix, base)
            m[key + suffix] = np.where(np.isnan(moved), m[key], moved)
    acc = None
    if access is not None and village_ids is not None:
        table = access.reindex(pd.Index(village_ids.astype(str).to_numpy()))

        def get(col: str) -> np.ndarray:
            return (pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
                    if col in table.columns else np.full(n, np.nan))

        with np.errstate(invalid="ignore", divide="ignore"):
            acc = {"elec": get("electricity_share"), "phone": get("smartphone_share"),
                   "price": get("data_price_1gb") / get("monthly_income")}
    flags = _flags(m, acc, profile, 0)
    klass = _klass(flags)
    stable = (_klass(_flags(m, acc, profile, 1)) == klass) & (
        _klass(_flags(m, acc, profile, -1)) == klass)
    reasons = np.full(n, "", dtype=object)
    for r in REASONS:
        hit = flags[r]
        reasons[hit] = np.where(reasons[hit] == "", r, reasons[hit] + ";" + r)
    out = pd.DataFrame({"class": klass, "reasons": reasons.astype(str)}, index=metrics.index)
    out["label_stable"] = stable
    conf = _confidence(metrics, m, flags, klass, stable, profile)
    out["confidence"] = np.round(np.clip(conf, 0.01, 0.99), 3)
    return out


def _confidence(metrics: pd.DataFrame, m: dict[str, np.ndarray], flags: dict[str, np.ndarray],
                klass: np.ndarray, stable: np.ndarray, profile: Profile) -> np.ndarray:
    """Probability that each village's class is right, before the clip to [0.01, 0.99].

    Parameters
    ----------
    metrics : DataFrame
        The villages' metrics (:func:`coverage.classify.metrics.village_metrics`).
    m : dict
        The rules' inputs read from them (:func:`apply_profile`).
    flags : dict
        Reason -> the villages where it fires (:func:`_flags`, nominal thresholds).
    klass : ndarray of str
        The villages' classes.
    stable : ndarray of bool
        Villages whose class holds with the thresholds moved both ways.
    profile : Profile
        The rules profile.

    Returns
    -------
    ndarray
        ``unavailable``: the probability that the covered share is under the minimum;
        ``available_inaccessible``: that it is over and the likeliest reason that fired
        holds; ``served``: that it is over and no rule holds. Capped at
        ``max_model_confidence`` without tests; an unstable label's multiplied by
        ``unstable_confidence_factor`` unless the halves of its tests were read.
    """
    n_cov, k_cov = _coverage_tests(metrics, m)
    # a measured village's tests count less where its two halves disagree
    deff, by_halves = _design_effects(metrics, profile)
    # and less again where its tests sit at better signal than its residents, a bias
    # both halves share
    deff = _selection_effects(metrics, deff, by_halves)
    p_cov = _p_covered(metrics, m, n_cov, k_cov, deff["cov"], profile)
    p_weak = _p_weak(metrics, m, n_cov, deff["indoor"], profile)
    p_slow = _p_slow(metrics, m, deff["slow"], profile)
    p_none = _p_no_service(metrics, m, deff["none"], profile)
    conf = _class_probability(klass, flags, p_cov, {"weak_signal": p_weak,
                                                    "slow_speed": p_slow,
                                                    "measured_no_service": p_none})
    untested = (n_cov <= 0) & (m["n_speed"] <= 0)
    conf = np.where(untested, np.minimum(conf, profile.max_model_confidence), conf)
    # an unstable label is near a threshold, which its probability already says; the
    # fixed discount stands for the doubt the probability leaves out, which for a village
    # whose tests decide the halves of its tests measure instead (_design_effects)
    return np.where(stable | by_halves, conf, conf * profile.unstable_confidence_factor)


def _coverage_tests(metrics: pd.DataFrame, m: dict[str, np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per village, its tests with a known outcome and those of them that found broadband.

    Metrics without per-test outcomes: the tests with a known technology and service, of
    which those the no-service share leaves.
    """
    if "n_cov_tests" in metrics.columns:
        return _col(metrics, "n_cov_tests", 0), _col(metrics, "k_cov_tests", 0)
    n_cov = m["n_known"]
    return n_cov, n_cov * (1 - np.nan_to_num(m["none"], nan=0.0))


def _p_covered(metrics: pd.DataFrame, m: dict[str, np.ndarray], n_cov: np.ndarray,
               k_cov: np.ndarray, deff: np.ndarray, profile: Profile) -> np.ndarray:
    """Probability that each village's covered share is at least ``min_covered_share``.

    The beta posterior of the share (:func:`_p_above`) around the decided share where the
    tests were sufficient, around the model's otherwise, updated by the ``k_cov`` of
    ``n_cov`` tests that found broadband, each counting ``1 / deff`` (the design effect).
    Where the model's offset has a posterior spread (``model_offset_sd_db``, dB), the
    share moved by that spread instead (:func:`_p_share_above`).
    """
    prior = _col(metrics, "prior_share", "pop_covered_share")
    kappa = _col(metrics, "prior_tests", profile.model_prior_tests)
    # the decided share may differ from the model (tests decided): centre on the decision
    # where the tests were sufficient, on the model otherwise; the tests update either.
    centre = np.where(n_cov >= profile.min_override_tests, m["covered"], prior)
    p_cov = _p_above(centre, kappa, k_cov / deff, n_cov / deff, profile.min_covered_share)
    offset_sd = _col(metrics, "model_offset_sd_db", np.nan)
    if not (np.isfinite(offset_sd).any() and profile.stability_db > 0):
        return p_cov
    # the tests that found broadband: the offset is capped so that tests never lift
    # the model (coverage.classify.offsets.MAX_LIFT_DB), which drops what they say
    served = k_cov * np.minimum(1.0, MAX_EVIDENCE_TESTS / np.maximum(n_cov, 1e-9)) / deff
    return np.where(np.isfinite(offset_sd),
                    _p_share_above(m, "covered", offset_sd * np.sqrt(deff),
                                   profile.min_covered_share, profile.stability_db,
                                   served_tests=served,
                                   served_odds=_col(metrics, "served_odds", 1.0),
                                   floor=_share_floors(metrics, profile)), p_cov)


def _p_weak(metrics: pd.DataFrame, m: dict[str, np.ndarray], n_cov: np.ndarray,
            deff: np.ndarray, profile: Profile) -> np.ndarray:
    """Probability that each village's indoor share is under ``min_indoor_share`` (0: no rule).

    The model's indoor share (the decided one where the ``n_cov`` tests were sufficient)
    as a beta posterior worth ``prior_tests``, or moved by the offset's spread
    (``model_offset_sd_db``, dB) where it has one; for the measured villages, their tests'
    indoor share (:func:`_p_weak_from_tests`, each test counting ``1 / deff``).
    """
    if profile.min_indoor_share is None:
        return np.zeros(len(n_cov))
    kappa = _col(metrics, "prior_tests", profile.model_prior_tests)
    prior_in = _col(metrics, "prior_indoor_share", "pop_indoor_share")
    centre_in = np.where(n_cov >= profile.min_override_tests, m["indoor"], prior_in)
    p_weak = 1 - _p_above(centre_in, kappa, np.zeros_like(n_cov), np.zeros_like(n_cov),
                          profile.min_indoor_share)
    offset_sd = _col(metrics, "model_offset_sd_db", np.nan)
    if np.isfinite(offset_sd).any() and profile.stability_db > 0:
        p_weak = np.where(np.isfinite(offset_sd),
                          1 - _p_share_above(m, "indoor", offset_sd, profile.min_indoor_share,
                                             profile.stability_db), p_weak)
    return _p_weak_from_tests(metrics, m["indoor"], profile, p_weak, deff=deff)


def _p_slow(metrics: pd.DataFrame, m: dict[str, np.ndarray], deff: np.ndarray,
            profile: Profile) -> np.ndarray:
    """Probability that each village's residents are slow (the speed rule holds).

    With the rule's minimum of speed tests, the beta posterior of the slow share
    (:func:`_p_slow_from_tests`, each test counting ``1 / deff``); under it the fused
    estimate's probability (``slow_probability``; the model's prior alone without tests,
    0 where the metrics carry none). This is also what a ``served`` village's confidence
    reads: it is right only if its residents are not slow.
    """
    n_speed = m["n_speed"]
    n_slow = _col(metrics, "n_slow_tests", np.nan)
    # without counts below the threshold, use the median's side as the only evidence
    n_slow = np.where(np.isnan(n_slow), np.where(m["dl"] < (profile.min_download_mbps or 0),
                                                 n_speed, 0), n_slow)
    return np.where(n_speed >= profile.min_speed_tests,
                    _p_slow_from_tests(metrics, n_slow / deff, n_speed / deff),
                    np.nan_to_num(m["p_slow"], nan=0.0))


def _p_no_service(metrics: pd.DataFrame, m: dict[str, np.ndarray], deff: np.ndarray,
                  profile: Profile) -> np.ndarray:
    """Probability that each village's no-service share is over ``max_no_service_share``.

    0 without that rule. The beta posterior of the share around the model's prior with the
    strength fitted for it (:mod:`coverage.classify.noservice`), else from the tests alone
    where they meet the rule's minimum; with that minimum and a standard error, the survey
    regression estimate's normal sampling distribution (each test counting ``1 / deff``).
    Under the minimum, with or without tests, the fused estimate: a ``served`` village is
    right only if no subscriber problem hides behind too few tests.
    """
    if profile.max_no_service_share is None:
        return np.zeros(len(m["n_known"]))
    n_known = m["n_known"]
    # the posterior of the no-service share: around the model's prediction with the
    # strength fitted for it when the evidence has them (coverage.classify.noservice),
    # else the tests alone
    ns_given = _col(metrics, "no_service_prior", np.nan)
    ns_prior = np.where(np.isnan(ns_given), 0.5, ns_given)
    ns_strength = _col(metrics, "no_service_prior_tests", 0.0)
    raw = _col(metrics, "no_service_share_tests", np.nan)
    raw = np.where(np.isnan(raw), m["none"], raw)
    none_k = np.nan_to_num(raw) * n_known
    # where the model gives a prior, it speaks for a village's subscribers under the
    # rule's minimum too; without one, only the tests that meet it
    modelled = np.isfinite(ns_given) & (ns_strength > 0)
    p_none = np.where(modelled | (n_known >= profile.min_no_service_tests),
                      _p_above(ns_prior, ns_strength, none_k / deff, n_known / deff,
                               profile.max_no_service_share), 0.0)
    # with enough tests the survey regression estimate decides (coverage.classify.
    # noservice.survey_regression_share): its sampling distribution, normal with its
    # standard error, says how sure the rule's side is
    se = _col(metrics, "no_service_share_se", np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_est = ndtr((m["none"] - profile.max_no_service_share)
                     / (np.maximum(se, 0.02) * np.sqrt(deff)))
    use = (n_known >= profile.min_no_service_tests) & np.isfinite(se) & np.isfinite(m["none"])
    return np.where(use, p_est, p_none)


def _class_probability(klass: np.ndarray, flags: dict[str, np.ndarray], p_cov: np.ndarray,
                       p_rules: dict[str, np.ndarray]) -> np.ndarray:
    """Probability that each village's class is right, from its parts.

    ``p_cov``: that the covered share is over the minimum; ``p_rules``: reason -> that the
    rule on tests holds (``weak_signal``, ``slow_speed``, ``measured_no_service``). The
    access rules rest on the table: sure when they fire. ``available_inaccessible`` is right
    when covered and the likeliest reason that fired holds, ``served`` when covered and no
    rule holds.
    """
    access_fired = flags["no_power"] | flags["no_devices"] | flags["unaffordable"]
    # a served village is right only if no subscriber problem hides behind too few tests:
    # the no-service rule cannot fire under its minimum, the share may still be over it
    p_served_rules = np.prod([1 - p for p in p_rules.values()], axis=0)
    p_served_rules = np.where(access_fired, 0.0, p_served_rules)
    p_fired = np.zeros(len(klass))
    for name, p in p_rules.items():
        p_fired = np.maximum(p_fired, np.where(flags[name], p, 0.0))
    p_fired = np.where(access_fired, 1.0, p_fired)
    return np.select([klass == CLASSES[0], klass == CLASSES[1]],
                     [1 - p_cov, p_cov * p_fired], p_cov * p_served_rules)
