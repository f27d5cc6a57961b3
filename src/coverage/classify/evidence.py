r"""Measurement evidence per village: counts, sufficiency, and empirical-Bayes shrinkage.

Each test is joined to the village that contains it. Per village this module counts the tests
(``n_tests``, Ookla tiles by their number of tests), those with a known outcome, those with
broadband service, the devices and the time they span, the weighted median speeds, and the
model's error at the tests in dB. In every estimate and every count a rule reads, an Ookla
tile weighs as its independent testers (``testers``, its ``devices``: its tests are their
repeated runs), not as its tests.

**Sufficiency.** Tests replace the model in a village (the fused surfaces decide its shares)
only when there are at least ``min_override_tests`` of them with a known outcome, from at least
``min_override_devices`` devices and spread over at least ``min_override_span_h`` hours, in the
spirit of the FCC Broadband Data Collection mobile challenge (47 CFR 1.7006; 87 FR 21476,
2022). Devices count only where the tests name them (a ``device_id`` column, or Ookla's
``devices``), time only where they carry timestamps: a rule the data cannot check is not
applied, and the village's ``evidence`` column says which applied.

**Shrinkage.** Sparse villages borrow strength from their commune and province. The model's
error at a test with a level is :math:`r = P_{meas} - P_{model}` (dB); a test without
broadband from its operator (no service, or a handset fallen back to 2G) is a censored
observation, counted as 5 dB under the outdoor threshold where the model puts that
operator's signal above it, and not counted where the model agrees (a bound that says
nothing of the error's size; counted as 0 it held villages' errors at 0). Errors are shrunk
up a normal hierarchy, village to commune to province to zero (James and Stein 1961; Efron
and Morris 1975):

.. math:: \hat b_u = \frac{n_u \bar r_u + k\, \hat b_{parent(u)}}{n_u + k},
          \qquad k = \sigma^2 / \tau^2

with :math:`\sigma^2` the pooled within-village variance (at least (4 dB)²) and
:math:`\tau^2` the DerSimonian-Laird moment estimate of the variance between units of the
level. A village without tests takes its commune's error (or its province's): no tests never
means no coverage. Under 30 such tests in all, the model is not calibrated (offset 0), and
a village's few tests cannot move it alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..model import FLOOR_DBM, CoverageSurfaces, measurement_xy
from ..model.calibration import calibrated_at
from ..model.crossval import block_folds
from ..model.measured import sort_key
from ..model.observations import NO_SERVICE_DBM
from ..params import BROADBAND_TECHS, ModelParams, Profile
from .residents import GSM_DOWNLOAD_MBPS, choose_slow_curve, location_weights
from .selection import Propensity
from .zonal import ZonalWeights, village_id_grid

__all__ = ["group_weighted_median", "held_out_offsets", "measurement_evidence", "poststratify",
           "shrink", "sort_key", "split_half_difference", "weigh_decided_offsets"]

log = logging.getLogger(__name__)

#: A no-service test counts as this far under the outdoor threshold (dB), censored.
NO_SERVICE_MARGIN_DB = -5.0
#: Prior spread of a province's model error around zero (dB) when it cannot be estimated.
PRIOR_TAU_DB = 3.0
#: How far the tests of a village with fewer tests than decide (the profile's
#: ``min_override_tests``, the contract's five) may lift the model's level over its untested
#: cells, dB (capped by ``max_offset_db``). Lifting as far as lowering was measured: such a
#: village's offset is mostly its commune's and province's, measured where their testers
#: gather (a handset reports a level only where it camps; testers gather in towns and along
#: roads), so a lift carried over the village lifted the houses behind the ridge (on the
#: tuning world ``tune-tworay-receiver``, `unavailable` recall 0.786 with the tests against
#: 0.857 towers only; not lifting: 0.893; with the vertical pattern on, two villages of
#: one and four tests lifted by their communes' +7 dB cost 0.071). The tested cells
#: themselves keep their measurements (the fused surfaces), lifting or lowering.
#: A village whose tests decide (``min_override_tests`` or more) is lifted as it is lowered,
#: as far as ``max_offset_db``: its offset is then mostly its own tests', and a
#: lowering-only offset is biased low (the mean of min(offset, 0) of an unbiased estimate is
#: under the truth; lowering only, the covered share with the tests came out 0.030 under the
#: truth on the nine tuning and check worlds, ``docs/validation.md``). Its no-service tests
#: where the model gave its operator broadband enter the offset as residuals, so a lift is
#: paid for where the tests found nothing.
MAX_LIFT_DB = 0.0
#: Tests with a level (or no service) needed before the model is calibrated at all.
MIN_CALIBRATION_TESTS = 30
#: Blocks of villages whose tests decide, left out in turn for their held-out model error
#: (:func:`held_out_offsets`), as the fusion's blocked folds (``coverage.model.fuse``).
HELD_OUT_FOLDS = 5


def group_weighted_median(group: np.ndarray, values: np.ndarray, weights: np.ndarray,
                          n_groups: int) -> np.ndarray:
    """Weighted median of ``values`` per group (NaN for groups without values).

    An even split takes the mid-point of the two middle values, like :func:`numpy.median`.
    """
    out = np.full(n_groups, np.nan)
    ok = np.isfinite(values) & (weights > 0) & (group >= 0)
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    del ok
    order = np.argsort(sort_key(group[rows], values[rows]))  # one sort: lexsort's speed x5
    rows = rows[order]
    del order
    # tens of millions of tests: temporaries freed as soon as done, 32-bit groups
    g = group[rows].astype(np.int32 if n_groups < 2**31 else np.int64)
    v, w = values[rows], weights[rows]
    del rows
    cum = np.cumsum(w)
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    ends = np.r_[starts[1:], len(g)]
    lens = ends - starts
    cum -= np.repeat(cum[starts] - w[starts], lens)  # running weight within the group
    del w
    total = np.repeat(cum[ends - 1], lens)
    half = 0.5 * total
    total *= 1e-9
    np.subtract(half, total, out=total)
    # the running weight grows within a group: the first index reaching half the weight
    # is the group's start plus the count of those that do not
    short = (cum < total).astype(np.int64)
    del total
    first = starts + np.add.reduceat(short, starts)
    del short
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


def _codes(villages: gpd.GeoDataFrame, *columns: str) -> np.ndarray:
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


def measurement_evidence(villages: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame | None,
                         model: CoverageSurfaces, profile: Profile, *,
                         method: str = "exact", ids: np.ndarray | None = None,
                         xy: tuple[np.ndarray, np.ndarray] | None = None,
                         calibration: Mapping | None = None,
                         kriged: Mapping | None = None,
                         people: ZonalWeights | None = None) -> pd.DataFrame:
    """Per-village measurement counts, sufficiency and shrunk model error, in village order.

    ``people`` (the villages' pieces weighted by the population raster): each test stands
    for the people where it was taken (:func:`coverage.classify.residents.
    location_weights`); without it every test weighs alike before the operators' shares.

    ``calibration`` (``fuse_measurements(...).calibration``): the model's error is that of
    the calibrated model, whose layer-wide correction the fused surfaces already carry;
    ``kriged`` (``fuse_measurements(...).kriged_at_tests``): of the calibrated model
    kriged, the estimate the village's offset moves. Against the calibrated model alone, a
    test under the model counted twice: the kriging lowered the cells around it, and the
    offset it drew lowered the whole village again (``docs/validation.md``). A village is
    never lifted further than its error against the calibrated model alone: the kriging
    lowers only, so against its estimate the tests over the model stand out more, a lift
    the tests did not measure.

    ``method`` locates the tests: ``exact`` by point in polygon for every test, ``fast`` by
    the village id rasterised on the model grid (``ids``, from :func:`village_id_grid`, or
    made here), with point in polygon for tests next to a village edge (see
    :func:`_locate_fast`). ``xy`` may give the tests' coordinates in the model grid's CRS.

    Columns: ``n_tests``, ``n_service_tests``, ``n_speed_tests`` (the tests behind the
    residents' median: every test with a download, 2G and no-service tests included, an
    Ookla tile counted as its testers),
    ``no_service_share``, ``median_download_mbps`` and ``median_upload_mbps`` (the
    residents' medians), ``n_cov_tests``, ``k_cov_tests``, ``n_slow_tests`` (the weighted
    share of residents' tests under the profile's download threshold, times
    ``n_speed_tests``),
    ``n_devices`` (NaN when unknown), ``test_span_h`` (NaN when unknown), ``sufficient``,
    ``model_offset_db`` and ``download_mbps_eb`` (the shrunk median speed estimate); with
    enough tests to calibrate, ``model_offset_sd_db`` (its posterior spread) and, for the
    villages whose tests decide, ``heldout_offset_db`` and ``heldout_offset_sd_db`` (the
    same without their own tests, :func:`held_out_offsets`; NaN elsewhere).
    """
    n = len(villages)
    out = _without_tests(villages)
    if measurements is None or measurements.empty:
        return _finish(out, villages, None, profile)
    joined, g = _locate(villages, measurements, model, method, ids, xy)
    if not len(g):
        return _finish(out, villages, None, profile)
    t = _Tests.of(joined, g, n, profile)
    w_known = _service_evidence(out, t, people)
    dl, w_dl = _speed_evidence(out, t, joined, people, profile, model)
    indoor_ok, indoor_known, w_in = _indoor_evidence(out, t, joined, model, profile,
                                                     calibration, people)
    # each estimate from two halves of the village's tests, for its sampling spread
    # (coverage.classify.rules: the split-half design effect of the measured villages)
    _split_halves(out, g, t.cell, {"cov": (t.known & t.service, t.known, t.w),
                                   "none": (t.none, t.known, w_known),
                                   "indoor": (indoor_ok, indoor_known, w_in)},
                  profile, dl, w_dl)
    out["n_devices"] = _devices(joined, g, n)
    out["test_span_h"] = _span_h(joined, g, n)
    # model error at tests, dB: against the kriged estimate the offset moves, and (for the
    # lift's bound) against the calibrated model alone
    lost = t.none | t.gsm
    resid = _model_error(joined, model, profile, t.tech, t.rsrp, t.bb, lost, calibration,
                         kriged)
    alone = (_model_error(joined, model, profile, t.tech, t.rsrp, t.bb, lost, calibration)
             if kriged else resid)
    levels = [_codes(villages, "province"),
              _codes(villages, "province", "district", "commune")]
    _offsets(out, g, (resid, alone), lost, t.own, levels, profile)
    return _finish(out, villages, (g, dl, t.w, levels), profile)


def _without_tests(villages: gpd.GeoDataFrame) -> pd.DataFrame:
    """The evidence of villages without tests: no counts, no medians, no offset."""
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
    return out


@dataclasses.dataclass(frozen=True)
class _Tests:
    """The located tests as arrays, one entry a test (:func:`measurement_evidence`).

    Attributes
    ----------
    g : ndarray of int
        The test's village (its row in the villages).
    n : int
        Number of villages.
    cell : ndarray of int
        Flat index of the test's cell on the model grid (its metric CRS; -1: off the grid).
    w : ndarray
        The test's own weight: the independent testers it stands for (``testers``, an
        Ookla tile's devices; else ``weight``; 1 without).
    count : ndarray
        The tests it stands for (``weight``: an Ookla tile's tests; 1 without), for
        ``n_tests``.
    tech : _Codes
        Its technology.
    known, none, bb, gsm : ndarray of bool
        Technology stated (the test says whether there was service); no service;
        broadband; fallen back to 2G.
    rsrp : ndarray
        Its level, dBm (NaN without).
    thr : ndarray
        The profile's outdoor threshold of its technology, dBm (NaN: not broadband).
    service : ndarray of bool
        Broadband at or over that threshold, or broadband without a level.
    own : ndarray
        Its margin over where its handset loses the network, dB (-inf without service).
    ops : Series
        Its operator (None without).
    op_codes : tuple
        ``pd.factorize(ops)``.
    """

    g: np.ndarray
    n: int
    cell: np.ndarray
    w: np.ndarray
    count: np.ndarray
    tech: _Codes
    known: np.ndarray
    none: np.ndarray
    bb: np.ndarray
    gsm: np.ndarray
    rsrp: np.ndarray
    thr: np.ndarray
    service: np.ndarray
    own: np.ndarray
    ops: pd.Series
    op_codes: tuple[np.ndarray, pd.Index]

    @classmethod
    def of(cls, joined: pd.DataFrame, g: np.ndarray, n: int, profile: Profile) -> _Tests:
        """The tests of ``joined`` (:func:`_locate`) in villages ``g``, under ``profile``."""
        count = (joined["weight"].to_numpy(dtype=float) if "weight" in joined
                 else np.ones(len(joined)))
        w = joined["testers"].to_numpy(dtype=float) if "testers" in joined else count
        if w is not count and np.isnan(w).any():  # a point test: one tester a test
            w = np.where(np.isnan(w), count, w)
        tech = _Codes(joined["tech"])
        none = tech.lookup({"none": True}, False)
        bb = tech.lookup(dict.fromkeys(BROADBAND_TECHS, True), False)
        rsrp = joined["rsrp_dbm"].to_numpy(dtype=float)
        thr = tech.lookup({t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}, np.nan)
        with np.errstate(invalid="ignore"):
            service = bb & (np.isnan(rsrp) | (rsrp >= thr))
            own = rsrp - tech.lookup(NO_SERVICE_DBM, np.nan)
        own[none] = -np.inf
        ops = (joined["operator"] if "operator" in joined
               else pd.Series([None] * len(joined), dtype=object))
        return cls(g=g, n=n, cell=joined["_cell"].to_numpy(), w=w, count=count, tech=tech,
                   known=tech.codes >= 0, none=none, bb=bb, gsm=tech.lookup({"2G": True}, False),
                   rsrp=rsrp, thr=thr, service=service, own=own, ops=ops,
                   op_codes=pd.factorize(ops))

    def tally(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per village, the ``weights`` of its ``mask`` tests (by default their own, ``w``)."""
        weights = self.w if weights is None else weights
        return np.bincount(self.g[mask], weights=weights[mask], minlength=self.n)


def _service_evidence(out: pd.DataFrame, t: _Tests, people: ZonalWeights | None
                      ) -> np.ndarray:
    """The tests and their service, in ``out``; the weights of the tests with a known outcome.

    Writes ``n_tests``, ``n_service_tests``, ``no_service_share`` (the tests standing for
    the residents, :func:`_lived`, post-stratified to the operators' market shares,
    :func:`poststratify`), ``n_cov_tests``, ``k_cov_tests`` and
    ``attrs["service_tests"]``; returns those post-stratified weights, one a test.
    """
    g, n, w, known, none = t.g, t.n, t.w, t.known, t.none
    out["n_tests"] = np.rint(t.tally(np.ones(len(g), bool), t.count)).astype(int)
    n_known = t.tally(known)
    out["n_service_tests"] = np.rint(n_known).astype(int)
    lived_known = _lived(g, t.cell, w, known, people, n)
    w_known = poststratify(g, t.ops, lived_known, known, n, codes=t.op_codes)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["no_service_share"] = np.where(n_known > 0, t.tally(none, w_known) / n_known,
                                           np.nan)
    # the tests with a known outcome, for the residents' no-service share estimated per
    # operator against the model (coverage.classify.noservice.survey_regression_share)
    # each test's own margin over where its handset loses the network (dB; -inf without
    # service), for the tests' inclusion propensity (coverage.classify.selection)
    out.attrs["service_tests"] = _ByReference({
        "village": g[known], "cell": t.cell[known],
        "operator": t.op_codes[0][known], "operators": [str(x) for x in t.op_codes[1]],
        "none": none[known], "own_margin": t.own[known], "raw_weight": w[known],
        "weight": lived_known[known], "by_people": people is not None})
    point = known  # tests that state their technology say whether there was service
    out["n_cov_tests"] = t.tally(point)
    out["k_cov_tests"] = t.tally(point & t.service)
    return w_known


def _speed_evidence(out: pd.DataFrame, t: _Tests, joined: pd.DataFrame,
                    people: ZonalWeights | None, profile: Profile, model: CoverageSurfaces
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The residents' speeds, in ``out``; each test's download (Mbps) and its weight.

    The residents' speeds: every test at what its subscriber lives, a handset fallen back
    to 2G at its 2G download, one without service at 0 (:mod:`coverage.classify.
    residents`); tests without a technology (Ookla tiles) count as they are, each standing
    for the people where it was taken, then for its operator's subscribers
    (post-stratified to market shares). Writes ``median_download_mbps``,
    ``median_upload_mbps``, ``n_speed_tests``, ``attrs["speed_tests"]`` and, with the
    profile's ``min_download_mbps``, ``n_slow_tests`` and ``attrs["slow_curve"]``
    (its cross-validation folds on ``model``'s grid and parameters).
    """
    g, n, w, cell, none = t.g, t.n, t.w, t.cell, t.none
    dl = _measured(joined, "download_mbps")
    dl[none] = 0.0
    dl[t.gsm & ~np.isfinite(dl)] = GSM_DOWNLOAD_MBPS
    ul = _measured(joined, "upload_mbps")
    ul[none] = 0.0
    # the residents' speeds per test, for their weights with the tests' inclusion
    # propensity (coverage.classify.residents.resident_rules)
    fin = np.isfinite(dl)
    lived_dl = _lived(g, cell, w, fin, people, n)
    out.attrs["speed_tests"] = _ByReference({
        "village": g[fin], "cell": cell[fin], "operator": t.op_codes[0][fin],
        "operators": [str(x) for x in t.op_codes[1]], "download": dl[fin],
        "own_margin": t.own[fin], "raw_weight": w[fin], "weight": lived_dl[fin]})
    w_dl = poststratify(g, t.ops, lived_dl, fin, n, codes=t.op_codes)
    w_ul = poststratify(g, t.ops, _lived(g, cell, w, np.isfinite(ul), people, n),
                        np.isfinite(ul), n, codes=t.op_codes)
    # two sorts of millions of tests, which release the GIL: one on each core
    with ThreadPoolExecutor(2) as pool:
        medians = list(pool.map(lambda a: group_weighted_median(g, a[0], a[1], n),
                                ((dl, w_dl), (ul, w_ul))))
    out["median_download_mbps"], out["median_upload_mbps"] = medians
    n_speed = t.tally(np.isfinite(dl))
    out["n_speed_tests"] = np.rint(n_speed).astype(int)
    if profile.min_download_mbps is not None:
        _slow_evidence(out, t, joined, (dl, w_dl, n_speed), profile.min_download_mbps,
                       model)
    return dl, w_dl


def _slow_evidence(out: pd.DataFrame, t: _Tests, joined: pd.DataFrame,
                   speeds: tuple[np.ndarray, np.ndarray, np.ndarray],
                   min_download_mbps: float, model: CoverageSurfaces) -> None:
    """The residents' tests under ``min_download_mbps`` (Mbps), in ``out``.

    ``speeds``: each test's download as the residents' (Mbps) and its weight, and per
    village the tests' own weight with a download (before rounding to ``n_speed_tests``).
    Writes ``n_slow_tests``, the weighted share of those downloads under the threshold
    times that weight, and ``attrs["slow_curve"]``: how often the province's broadband
    tests are slow at each margin over their outdoor threshold, one curve or one per
    technology as cross-validation on ``model``'s blocked folds says
    (:func:`coverage.classify.residents.choose_slow_curve`, the sparse rule's prior).
    """
    dl, w_dl, n_speed = speeds
    with np.errstate(invalid="ignore", divide="ignore"):
        slow = np.isfinite(dl) & (dl < min_download_mbps)
        share = np.where(n_speed > 0, t.tally(slow, w_dl) / t.tally(np.isfinite(dl), w_dl),
                         0.0)
    out["n_slow_tests"] = share * n_speed
    # the province's broadband tests: how often slow at each margin (the sparse rule's
    # prior, coverage.classify.residents.slow_prior)
    raw_dl = _measured(joined, "download_mbps")
    fit = t.bb & np.isfinite(t.rsrp) & np.isfinite(raw_dl)
    curve = choose_slow_curve((t.rsrp - t.thr)[fit], (raw_dl < min_download_mbps)[fit],
                              t.tech.lookup({b: b for b in BROADBAND_TECHS}, "")[fit],
                              _cell_folds(t.cell[fit], model))
    log.info("slow curve: %s (held-out log-loss %s)", curve.reason,
             ", ".join(f"{k} {v:.3f}" for k, v in curve.cv_log_loss.items()) or "not scored")
    out.attrs["slow_curve"] = curve


def _cell_folds(cell: np.ndarray, model: CoverageSurfaces) -> np.ndarray:
    """Cross-validation fold of tests in flat ``cell`` of ``model``'s grid (-1: off it).

    The fusion's blocked folds (:func:`coverage.model.crossval.block_folds`, the model's
    ``cv_block_m`` and ``cv_folds``, seed 0) at the cells' centres; tests off the grid
    make one block.
    """
    grid, params = model.grid, model.params or ModelParams()
    row, col = np.divmod(np.maximum(cell, 0), grid.shape[1])
    tr = grid.transform
    on = cell >= 0
    xy = pd.DataFrame({"x": np.where(on, tr.c + (col + 0.5) * tr.a, -1e12),
                       "y": np.where(on, tr.f + (row + 0.5) * tr.e, -1e12)})
    return block_folds(xy, params, 0)


def _indoor_evidence(out: pd.DataFrame, t: _Tests, joined: pd.DataFrame,
                     model: CoverageSurfaces, profile: Profile, calibration: Mapping | None,
                     people: ZonalWeights | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indoor service where residents tested, in ``out``; per test, indoors, known, weight.

    A test's own level over the indoor threshold, or another operator's (calibrated model)
    there; a subscriber without broadband has none of their own. Thresholds moved by the
    stability step as the shares are. Writes ``n_indoor_tests`` and
    ``indoor_share_tests`` with its ``_strict`` and ``_loose`` variants; returns whether
    each test found indoor service (nominal thresholds), whether it says (a broadband
    level, or broadband lost), and its weight standing for the residents.
    """
    g, n, w, bb, rsrp = t.g, t.n, t.w, t.bb, t.rsrp
    lost_bb = t.none | t.gsm
    said = (bb & np.isfinite(rsrp)) | lost_bb
    w_in = _lived(g, t.cell, w, said, people, n)
    n_in = t.tally(said, w_in)
    out["n_indoor_tests"] = t.tally(said)
    thr_in = t.tech.lookup({tech: profile.indoor_dbm(tech) for tech in BROADBAND_TECHS},
                           np.nan)
    others = _others_margin_at(joined, model, profile, calibration)
    indoor_ok = None
    for suffix, shift in (("", 0.0), ("_strict", profile.stability_db),
                          ("_loose", -profile.stability_db)):
        with np.errstate(invalid="ignore"):
            ok = ((bb & (rsrp >= thr_in + shift)) | (others >= shift)) & said
            out[f"indoor_share_tests{suffix}"] = np.where(n_in > 0, t.tally(ok, w_in) / n_in,
                                                          np.nan)
        if not suffix:
            indoor_ok = ok
    return indoor_ok, said, w_in


def _measured(joined: pd.DataFrame, name: str) -> np.ndarray:
    """A copy of the tests' ``name`` column as floats (NaN throughout when it is missing)."""
    return (joined[name].to_numpy(dtype=float).copy() if name in joined
            else np.full(len(joined), np.nan))


def _offsets(out: pd.DataFrame, g: np.ndarray, errors: tuple[np.ndarray, np.ndarray],
             lost: np.ndarray, own: np.ndarray, levels: list[np.ndarray],
             profile: Profile) -> None:
    """The villages' shrunk model errors (dB) from the tests', into ``out`` and its attrs.

    ``errors``: each test's model error against the estimate the offset moves (the
    calibrated model kriged) and against the calibrated model alone (the same array
    without kriging); ``lost``: the tests without broadband for their subscriber; ``own``:
    each test's margin over where its handset loses the network (dB), for
    :func:`weigh_decided_offsets`. With enough tests to calibrate, ``model_offset_db``
    (lifted as far as ``max_offset_db`` only where the tests decide, see
    :data:`MAX_LIFT_DB`, and never further than the error against the calibrated model
    alone), ``model_offset_sd_db``, the held-out ``heldout_offset_db`` and
    ``heldout_offset_sd_db`` (:func:`held_out_offsets`), ``attrs["decided_residuals"]``
    and ``attrs["residual_sigma_db"]`` (the error's spread once the bias is out).
    """
    resid, alone = errors
    n = len(out)
    has = np.isfinite(resid)
    if profile.max_offset_db > 0 and has.sum() >= MIN_CALIBRATION_TESTS:
        offset, offset_var = _shrunk(g, resid, n, levels)
        cap = min(MAX_LIFT_DB, profile.max_offset_db)  # undecided villages: lowered only
        # lifted as lowered where the tests with a residual (no service among them) decide
        decide = np.bincount(g[has | lost], minlength=n) >= profile.min_override_tests
        lift = np.where(decide, profile.max_offset_db, cap)
        if alone is not resid:  # never lifted by what the kriging lowered
            lift = np.minimum(lift, np.maximum(_shrunk(g, alone, n, levels)[0], 0.0))
        out["model_offset_db"] = np.clip(offset, -profile.max_offset_db, lift)
        mine = has & decide[g]  # for weigh_decided_offsets, once the propensity is in
        out.attrs["decided_residuals"] = _ByReference({
            "village": g[mine], "resid": resid[mine], "own_margin": own[mine],
            "sums": _residual_sums(g, resid, n), "levels": levels, "decide": decide,
            "bounds": (-profile.max_offset_db, np.broadcast_to(lift, (n,)).copy())})
        out["model_offset_sd_db"] = np.sqrt(offset_var)
        # held out: against the calibrated model alone, the estimate the confidence's
        # recalibration moves (the kriging has seen the held-out tests)
        fin = np.isfinite(alone)
        sums = [np.bincount(g[fin], weights=wt, minlength=n).astype(float)
                for wt in (None, alone[fin], alone[fin] ** 2)]
        held, held_var = held_out_offsets(*sums, levels, _sufficient(out, profile))
        out["heldout_offset_db"] = np.clip(held, -profile.max_offset_db, cap)
        out["heldout_offset_sd_db"] = np.sqrt(held_var)
    if has.sum() >= MIN_CALIBRATION_TESTS:  # spread of the error once the bias is out
        # away from the tests, where the kriging does not reach: the calibrated model's
        fin = np.isfinite(alone)
        out.attrs["residual_sigma_db"] = float(np.std(alone[fin] - out["model_offset_db"]
                                                      .to_numpy()[g[fin]]))


def _model_error(joined: pd.DataFrame, model: CoverageSurfaces, profile: Profile,
                 tech: _Codes, rsrp: np.ndarray, bb: np.ndarray, lost: np.ndarray,
                 calibration: Mapping | None, kriged: Mapping | None = None) -> np.ndarray:
    """The model's error at each test, dB (NaN where the test says nothing of it).

    A test with a broadband level: its level minus the model's (:func:`_model_level_at`,
    at least the floor). A test without broadband for its subscriber (``lost``: no
    service, or fallen back to 2G): an error where the model gave its operator broadband;
    where the model agrees, a bound that says nothing of the error's size (counted as 0 it
    drew the village's error to none). Clipped to +-30 dB.
    """
    r_model = _model_level_at(joined, model, tech, calibration, kriged)
    floor = tech.lookup(FLOOR_DBM, -125.0)
    resid = np.where(bb & np.isfinite(rsrp), rsrp - np.fmax(r_model, floor), np.nan)
    best_margin = _best_margin_at(joined, model, profile, calibration, kriged)
    resid = np.where(lost, np.where(best_margin > NO_SERVICE_MARGIN_DB,
                                    NO_SERVICE_MARGIN_DB - best_margin, np.nan), resid)
    return np.clip(resid, -30.0, 30.0)


def _residual_sums(g: np.ndarray, resid: np.ndarray, n: int,
                   weights: np.ndarray | None = None) -> list[np.ndarray]:
    """Per village: the weight of its residuals, their weighted sum and sum of squares."""
    has = np.isfinite(resid)
    w = np.ones(int(has.sum())) if weights is None else weights[has]
    r = resid[has]
    return [np.bincount(g[has], weights=x, minlength=n).astype(float)
            for x in (w, w * r, w * r**2)]


def _shrunk(g: np.ndarray, resid: np.ndarray, n: int, levels: list[np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each village's error, shrunk up ``levels`` (:func:`shrink`), and its variance."""
    return shrink(*_residual_sums(g, resid, n), levels, variance=True)


def weigh_decided_offsets(ev: pd.DataFrame, propensity: Propensity | None) -> None:
    """The offsets of the villages whose tests decide, their residuals weighed for who tests.

    Each residual of such a village weighs by the inverse of its test's inclusion
    propensity at its own margin over losing service (:meth:`coverage.classify.selection.
    Propensity.weights`: a test without service by the floor's, a test near losing
    service up to it), normalised to the village's number of residuals (a ratio
    estimator: the village's weight in the shrinkage is its tests', Hajek 1971); the
    other villages' residuals as they are. ``model_offset_db`` of those villages is then
    the shrunk error again (:func:`shrink`), bounded as before. Without a fitted
    propensity (floor 1) nothing changes. Reads and drops
    ``ev.attrs["decided_residuals"]`` (:func:`measurement_evidence`).
    """
    kept = ev.attrs.pop("decided_residuals", None)
    if kept is None or propensity is None or propensity.floor >= 1.0:
        return
    n = len(ev)
    g = kept["village"]
    w = propensity.weights(kept["own_margin"], np.full(len(g), np.inf))
    count = np.bincount(g, minlength=n).astype(float)
    total = np.bincount(g, weights=w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = w * (count / total)[g]
    sums = [np.where(kept["decide"], mine, every) for mine, every in
            zip(_residual_sums(g, kept["resid"], n, w), kept["sums"], strict=True)]
    low, high = kept["bounds"]
    offset = np.clip(shrink(*sums, kept["levels"]), low, high)
    ev["model_offset_db"] = np.where(kept["decide"], offset,
                                     ev["model_offset_db"].to_numpy(dtype=float))


def _split_halves(out: pd.DataFrame, g: np.ndarray, cell: np.ndarray, parts: dict,
                  profile: Profile, dl: np.ndarray, w_dl: np.ndarray) -> None:
    """Write the ``split_half_<key>`` columns of :func:`split_half_difference` in ``out``.

    One per (hit, mask, weight) of ``parts``, and ``slow``: the residents' speeds under the
    profile's download threshold.
    """
    if profile.min_download_mbps is not None:
        with np.errstate(invalid="ignore"):
            parts = {**parts, "slow": (np.isfinite(dl) & (dl < profile.min_download_mbps),
                                       np.isfinite(dl), w_dl)}
    for key, (hit, mask, weight) in parts.items():
        out[f"split_half_{key}"] = split_half_difference(g, cell, hit, weight, mask, len(out))


def split_half_difference(g: np.ndarray, order: np.ndarray, hit: np.ndarray,
                          weight: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per village, the weighted share of ``hit`` in one half of its tests minus the other's.

    The ``mask`` tests of each village (with positive ``weight``) are put in ``order`` (the
    flat index of their cell on the model grid: north to south, then west to east) and cut
    in two halves of as many tests (the middle one of an odd number goes to the second):
    two groups of the village's tests, each a survey of the village on its own (the random
    groups of Mahalanobis 1946; Wolter 2007, ch. 2), where tests taken next to each other
    fall in the same half. NaN for a village with fewer than two such tests.

    Examples
    --------
    >>> g = np.array([0, 0, 0, 0, 1])
    >>> hit = np.array([True, True, False, False, True])
    >>> split_half_difference(g, np.arange(5), hit, np.ones(5), np.ones(5, bool), 2)
    array([ 1., nan])
    """
    out = np.full(n, np.nan)
    sel = np.flatnonzero(mask & (weight > 0) & (g >= 0))
    if not len(sel):
        return out
    sel = sel[np.lexsort((order[sel], g[sel]))]
    gs = g[sel]
    counts = np.bincount(gs, minlength=n)
    rank = np.arange(len(sel)) - (np.cumsum(counts) - counts)[gs]
    first = 2 * rank < counts[gs] - (counts[gs] % 2)
    wv, hv = weight[sel], hit[sel].astype(float)
    means = []
    for part in (first, ~first):
        total = np.bincount(gs[part], weights=wv[part], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.bincount(gs[part], weights=(wv * hv)[part], minlength=n) / total)
    return np.where(counts >= 2, means[0] - means[1], np.nan)


def _lived(g: np.ndarray, cell: np.ndarray, w: np.ndarray, mask: np.ndarray,
           people: ZonalWeights | None, n: int) -> np.ndarray:
    """The ``mask`` tests' weights, standing for where the people live when ``people``."""
    if people is None:
        return np.where(mask, w, 0.0)
    return location_weights(g, cell, w, mask, people, n)


def poststratify(g: np.ndarray, operators: pd.Series, w: np.ndarray, mask: np.ndarray,
                 n: int, *, codes: tuple[np.ndarray, pd.Index] | None = None) -> np.ndarray:
    """Weights of the ``mask`` rows post-stratified to the operators' market shares.

    A village's tests are a random handful of subscribers: six tests may hold five of an
    operator with a sixth of the market. Within each village the tests of each operator
    weigh in proportion to its market share (:func:`coverage.classify.noservice.
    market_shares`, read from all the tests) among the operators tested there, and the
    village's total weight is kept. Rows without an operator (Ookla tiles) keep theirs.
    ``codes`` may give ``pd.factorize(operators)``, when the caller has it.
    """
    from .noservice import market_shares

    out = np.where(mask, w, 0.0).astype(float)
    code, names = codes if codes is not None else pd.factorize(operators)
    sel = mask & (code >= 0)
    if not sel.any() or len(names) < 2:
        return out
    # the market shares count the selected tests' operators: as categories, a bincount
    # rather than hashing millions of names
    chosen = pd.Categorical.from_codes(code[sel], categories=pd.Index(names).astype(object))
    shares = market_shares(pd.DataFrame({"operator": chosen}), [str(x) for x in names])
    share = np.array([shares[str(x)] for x in names])
    k = len(names)
    cell = g[sel] * k + code[sel]
    w_cell = np.bincount(cell, weights=w[sel], minlength=n * k).reshape(n, k)
    present = w_cell > 0
    total = w_cell.sum(axis=1)
    s_present = (present * share[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = (share[None, :] / s_present[:, None]) * total[:, None] / w_cell
    # an operator whose tests all weigh 0 in a village (tests where nobody lives) keeps 0,
    # not 0 x inf
    factor = np.where(present, factor, 0.0)
    out[sel] = w[sel] * factor.reshape(-1)[cell]
    return out


def _sufficient(out: pd.DataFrame, profile: Profile) -> np.ndarray:
    """Villages whose tests replace the model: enough tests, devices and hours."""
    n_ok = out["n_cov_tests"].to_numpy() >= profile.min_override_tests
    dev = out["n_devices"].to_numpy(dtype=float)
    span = out["test_span_h"].to_numpy(dtype=float)
    dev_ok = np.isnan(dev) | (dev >= profile.min_override_devices)
    span_ok = np.isnan(span) | (span >= profile.min_override_span_h)
    return n_ok & dev_ok & span_ok


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


def _finish(out: pd.DataFrame, villages: gpd.GeoDataFrame, speeds, profile: Profile
            ) -> pd.DataFrame:
    out["sufficient"] = _sufficient(out, profile)
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


class _ByReference(dict):
    """A dict that pandas' ``attrs`` hand on without copying.

    pandas deep-copies a frame's ``attrs`` into every column it returns: per-test arrays
    kept there would be copied at each column read (0.2 s and 80 MB for 10 million tests).
    """

    def __deepcopy__(self, memo: dict) -> _ByReference:
        return self


class _Codes:
    """A text column as integer codes (missing: -1), with per-value lookups.

    Factorising once beats comparing millions of strings (or converting arrow-backed text to
    Python objects) for every mask.
    """

    def __init__(self, values: pd.Series) -> None:
        self.codes, uniques = pd.factorize(values)
        self.values = [str(u) for u in uniques]

    def lookup(self, mapping: dict, default) -> np.ndarray:
        """``mapping[value]`` of every row (``default`` for other values and missing)."""
        table = np.array([mapping.get(v, default) for v in self.values] + [default])
        return table[self.codes]  # code -1 takes the last entry, the default


def _locate(villages: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame,
            model: CoverageSurfaces, method: str, ids: np.ndarray | None = None,
            xy: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Tests inside some village (one village each), and that village's row.

    The table has the tests' columns and ``_cell``, the flat index of the test's cell on
    the model grid (-1: off the grid).
    """
    grid = model.grid
    x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
    geoms = villages.geometry.to_crs(grid.crs).to_numpy()
    if method == "fast":
        where = _locate_fast(x, y, geoms, grid, ids)
    else:
        tree = shapely.STRtree(geoms)
        pi, vi = tree.query(shapely.points(x, y), predicate="within")
        where = np.full(len(x), -1, dtype=np.int64)
        where[pi[::-1]] = vi[::-1]  # a test on a shared edge counts once (first village)
    sel = np.flatnonzero(where >= 0)
    keep = [c for c in ("tech", "operator", "rsrp_dbm", "download_mbps", "upload_mbps",
                        "weight", "testers", "timestamp", "device_id", "devices")
            if c in measurements.columns]  # only what the evidence reads
    if len(sel) == len(measurements):  # every test in a village: columns without a copy
        joined = measurements[keep].reset_index(drop=True)
    else:
        joined = measurements[keep].take(sel).reset_index(drop=True)  # block by block
    row, col, inside = grid.index(x[sel], y[sel])
    joined["_cell"] = np.where(inside, row * grid.shape[1] + col, -1)
    return joined, where[sel]


def _locate_fast(x: np.ndarray, y: np.ndarray, geoms: np.ndarray, grid,
                 ids: np.ndarray | None = None) -> np.ndarray:
    """Village of each point by the id raster, checked exactly next to village edges.

    A point whose cell or one of its 4 neighbours belongs to another village (or none) is
    tested against the villages of those cells by point in polygon, and against every
    village (an R-tree) when none of them holds it; villages smaller than a cell, holding
    no cell centre, are looked up exactly too. Left approximate: a notch of one village,
    narrower than a cell, poking into a cell whose neighbours all belong to another.
    """
    if ids is None:
        ids = village_id_grid(geoms, grid)
    rows, cols = ids.shape
    edge = np.zeros(ids.shape, dtype=bool)  # cells whose 4-neighbourhood is not one village
    for diff, a, b in ((ids[:-1] != ids[1:], np.s_[:-1], np.s_[1:]),
                       (ids[:, :-1] != ids[:, 1:], np.s_[:, :-1], np.s_[:, 1:])):
        edge[a] |= diff
        edge[b] |= diff
    del diff
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    edge |= ids < 0
    row, col, inside = grid.index(x, y)
    where = np.full(len(x), -1, dtype=np.int64)
    idx = np.flatnonzero(inside)
    r, c = row[idx], col[idx]
    doubt = edge[r, c]
    where[idx[~doubt]] = ids[r[~doubt], c[~doubt]]
    todo, r, c = idx[doubt], r[doubt], c[doubt]
    exact = ~inside
    if len(todo):
        shapely.prepare(geoms)
        found = np.zeros(len(todo), dtype=bool)
        for dr, dc in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            v = ids[np.clip(r + dr, 0, rows - 1), np.clip(c + dc, 0, cols - 1)]
            test = ~found & (v >= 0)
            if not test.any():
                continue
            hit = np.zeros(len(todo), dtype=bool)
            hit[test] = shapely.contains_xy(geoms[v[test]], x[todo[test]], y[todo[test]])
            where[todo[hit]] = v[hit]
            found |= hit
        exact[todo[~found]] = True
    owner = np.bincount(ids[ids >= 0], minlength=len(geoms)) > 0
    if not owner.all():  # villages holding no cell centre: points in their boxes, exactly
        marked = np.zeros(ids.shape, dtype=bool)
        for left, bottom, right, top in shapely.bounds(geoms[~owner]):
            r0, c0, _ = grid.index(np.array([left]), np.array([top]))
            r1, c1, _ = grid.index(np.array([right]), np.array([bottom]))
            marked[max(r0[0], 0):max(r1[0] + 1, 0), max(c0[0], 0):max(c1[0] + 1, 0)] = True
        exact[idx[marked[row[idx], col[idx]]]] = True
    k = np.flatnonzero(exact)
    if len(k):
        tree = shapely.STRtree(geoms)
        pi, vi = tree.query(shapely.points(x[k], y[k]), predicate="within")
        where[k] = -1
        where[k[pi[::-1]]] = vi[::-1]
    log.debug("located %d tests: %d next to an edge, %d by R-tree", len(x), len(todo), len(k))
    return where


def _kriged_at(kriged: Mapping | None, key: tuple[str, str], cells: np.ndarray
               ) -> np.ndarray | np.float32:
    """The kriging's correction (dB) of layer ``key`` at flat ``cells`` (0 where none).

    ``kriged``: ``fuse_measurements(...).kriged_at_tests`` (sorted cells, shifts).
    """
    if not kriged or key not in kriged or not len(kriged[key][0]):
        return np.float32(0.0)
    where, shift = kriged[key]
    i = np.clip(np.searchsorted(where, cells), 0, len(where) - 1)
    return np.where(where[i] == cells, shift[i], np.float32(0.0)).astype("float32")


def _estimate_at(model: CoverageSurfaces, key: tuple[str, str], calibration: Mapping | None,
                 kriged: Mapping | None, cells: np.ndarray) -> np.ndarray:
    """The model's estimate of one layer at flat ``cells``: calibrated, then kriged (dBm)."""
    return calibrated_at(model, key, calibration, cells) + _kriged_at(kriged, key, cells)


def _model_level_at(joined: pd.DataFrame, model: CoverageSurfaces, tech: _Codes,
                    calibration: Mapping | None = None, kriged: Mapping | None = None
                    ) -> np.ndarray:
    """Modelled level (dBm) of each test's operator and technology at the test.

    With ``calibration`` (``fuse_measurements(...).calibration``), the calibrated model's;
    with ``kriged`` (``fuse_measurements(...).kriged_at_tests``), kriged too.
    """
    cell = joined["_cell"].to_numpy()
    inside = cell >= 0
    out = np.full(len(joined), np.nan)
    op = _Codes(joined["operator"]) if "operator" in joined else None
    for t in BROADBAND_TECHS:
        if t not in tech.values:
            continue
        sel = inside & (tech.codes == tech.values.index(t))
        if not sel.any():
            continue
        rest = sel.copy()  # tests without a layer of their own operator: the best layer
        for (lop, lt) in model.layers:
            if op is None or lt != t or lop not in op.values:
                continue
            mine = sel & (op.codes == op.values.index(lop))
            if mine.any():
                out[mine] = _estimate_at(model, (lop, lt), calibration, kriged, cell[mine])
                rest &= ~mine
        if rest.any():  # sampled at the tests, not a best-of grid of the whole country
            best = np.full(int(rest.sum()), np.nan, dtype="float32")
            for key in model.layers:
                if key[1] == t:
                    best = np.fmax(best, _estimate_at(model, key, calibration, kriged,
                                                      cell[rest]))
            out[rest] = best
    return out


def _best_margin_at(joined: pd.DataFrame, model: CoverageSurfaces, profile: Profile,
                    calibration: Mapping | None = None, kriged: Mapping | None = None
                    ) -> np.ndarray:
    """Best broadband margin (dB) of each test's own operator at the test, at least -15.

    A subscriber without service says nothing about the other operators' signal there: a
    test that names a modelled operator is compared with that operator's layers only;
    tests without one (or of an operator the model lacks) with the best of all. Sampled at
    the tests, with ``calibration`` and ``kriged`` as in :func:`_model_level_at`.
    """
    cell = joined["_cell"].to_numpy()
    inside = cell >= 0
    thresholds = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    out = np.full(len(joined), -np.inf)
    own = np.zeros(len(joined), dtype=bool)
    op = _Codes(joined["operator"]) if "operator" in joined else None
    if op is not None:
        known = np.array([v in model.operators for v in op.values] + [False])
        own = inside & known[op.codes]
    for key in model.layers:
        if key[1] not in thresholds:
            continue
        mine = own & (op.codes == op.values.index(key[0])) if (
            op is not None and key[0] in op.values) else np.zeros(len(joined), dtype=bool)
        for sel in (mine, inside & ~own):
            if sel.any():
                level = _estimate_at(model, key, calibration, kriged, cell[sel])
                out[sel] = np.fmax(out[sel], level - np.float32(thresholds[key[1]]))
    return np.fmax(out, -15.0)


def _others_margin_at(joined: pd.DataFrame, model: CoverageSurfaces, profile: Profile,
                      calibration: Mapping | None = None) -> np.ndarray:
    """Best indoor margin (dB) at each test of the operators other than the test's own.

    The calibrated model's, sampled at the tests; -inf where no other operator's
    broadband layer reaches (or the test is off the grid). A test without an operator
    counts no other operator.
    """
    cell = joined["_cell"].to_numpy()
    inside = cell >= 0
    out = np.full(len(joined), -np.inf)
    if "operator" not in joined:
        return out
    op = _Codes(joined["operator"])
    for key in model.layers:
        if key[1] not in BROADBAND_TECHS:
            continue
        mine = (op.codes == op.values.index(key[0])) if key[0] in op.values else np.zeros(
            len(joined), dtype=bool)
        sel = inside & ~mine & (op.codes >= 0)
        if sel.any():
            level = calibrated_at(model, key, calibration, cell[sel])
            out[sel] = np.fmax(out[sel], level - np.float32(profile.indoor_dbm(key[1])))
    return out


def _devices(joined: pd.DataFrame, g: np.ndarray, n: int) -> np.ndarray:
    """Distinct devices per village (NaN where no test names its device)."""
    out = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    if "device_id" in joined.columns:
        ids = joined["device_id"]
        has = ids.notna().to_numpy()
        if has.any():
            raw = ids[has].to_numpy()
            if raw.dtype.kind in "iu" and (int(raw.max()) - int(raw.min()) + 1) * n < 2**62:
                code = raw.astype(np.int64) - int(raw.min())  # integer ids as they are
            else:
                code = pd.factorize(ids[has])[0].astype(np.int64)
            span = int(code.max()) + 1
            # distinct (village, device) pairs: one sort of a combined key, not a hash table
            pairs = np.sort(g[has].astype(np.int64) * span + code)
            first = np.r_[True, pairs[1:] != pairs[:-1]]
            counts = np.bincount(pairs[first] // span, minlength=n)
            out += counts
            seen |= counts > 0
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
    gh = g[has]
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, gh, hours)
    np.maximum.at(hi, gh, hours)
    present = np.bincount(gh, minlength=n) > 0
    out[present] = hi[present] - lo[present]
    return out
