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

This module counts the tests and writes the evidence table; its parts, each a module below
it: :mod:`.locate` (each test's village and cell), :mod:`.survey` (weighted medians,
post-stratification to the operators' shares, split halves), :mod:`.shrinkage` (the
hierarchy) and :mod:`.offsets` (the model's error at the tests and the villages' offsets).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd

from ..model import CoverageSurfaces
from ..model.crossval import block_folds
from ..model.measured import group_value_order
from ..model.observations import NO_SERVICE_DBM
from ..params import BROADBAND_TECHS, ModelParams, Profile
from .locate import ByReference, TextCodes, locate_tests
from .offsets import model_error_at_tests, others_margin_at, village_offsets
from .residents import GSM_DOWNLOAD_MBPS, choose_slow_curve, location_weights
from .shrinkage import shrink, unit_codes
from .survey import group_weighted_median, poststratify, split_half_difference
from .zonal import ZonalWeights

__all__ = ["measurement_evidence"]

log = logging.getLogger(__name__)


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
    the village id rasterised on the model grid (``ids``, from
    :func:`coverage.classify.zonal.village_id_grid`, or made here), with point in polygon
    for tests next to a village edge (see :func:`coverage.classify.locate.locate_tests`).
    ``xy`` may give the tests' coordinates in the model grid's CRS.

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
    joined, g = locate_tests(villages, measurements, model, method, ids, xy)
    if not len(g):
        return _finish(out, villages, None, profile)
    t = _Tests.of(joined, g, n, profile, people)
    w_known = _service_evidence(out, t)
    dl, w_dl = _speed_evidence(out, t, joined, profile, model)
    indoor_ok, indoor_known, w_in = _indoor_evidence(out, t, joined, model, profile,
                                                     calibration)
    # each estimate from two halves of the village's tests, for its sampling spread
    # (coverage.classify.rules: the split-half design effect of the measured villages)
    _split_halves(out, g, t.cell, {"cov": (t.known & t.service, t.known, t.w),
                                   "none": (t.none, t.known, w_known),
                                   "indoor": (indoor_ok, indoor_known, w_in)},
                  profile, dl, w_dl)
    out["n_devices"] = _devices(joined, g, n)
    out["test_span_h"] = _span_h(joined, g, n)
    out["sufficient"] = _sufficient(out, profile)  # the villages the held-out offsets are for
    # model error at tests, dB: against the kriged estimate the offset moves, and (for the
    # lift's bound) against the calibrated model alone
    lost = t.none | t.gsm
    resid = model_error_at_tests(joined, model, profile, t.tech, t.rsrp, t.bb, lost,
                                 calibration, kriged)
    alone = (model_error_at_tests(joined, model, profile, t.tech, t.rsrp, t.bb, lost,
                                  calibration) if kriged else resid)
    levels = [unit_codes(villages, "province"),
              unit_codes(villages, "province", "district", "commune")]
    village_offsets(out, g, (resid, alone), lost, t.own, levels, profile)
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
    tech : TextCodes
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
    place : ndarray or None
        Its place among its village's people (:meth:`coverage.classify.zonal.RankedPieces.
        place`); None without a population raster.
    people : ZonalWeights or None
        The villages' pieces weighted by people (None without a population raster).
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
    tech: TextCodes
    known: np.ndarray
    none: np.ndarray
    bb: np.ndarray
    gsm: np.ndarray
    rsrp: np.ndarray
    thr: np.ndarray
    service: np.ndarray
    own: np.ndarray
    place: np.ndarray | None
    people: ZonalWeights | None
    ops: pd.Series
    op_codes: tuple[np.ndarray, pd.Index]

    @classmethod
    def of(cls, joined: pd.DataFrame, g: np.ndarray, n: int, profile: Profile,
           people: ZonalWeights | None) -> _Tests:
        """The tests of ``joined`` (:func:`locate_tests`) in villages ``g``, under ``profile``.

        Each is placed among the villages' ``people`` when given.
        """
        count = (joined["weight"].to_numpy(dtype=float) if "weight" in joined
                 else np.ones(len(joined)))
        w = joined["testers"].to_numpy(dtype=float) if "testers" in joined else count
        if w is not count and np.isnan(w).any():  # a point test: one tester a test
            w = np.where(np.isnan(w), count, w)
        tech = TextCodes(joined["tech"])
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
        cell = joined["_cell"].to_numpy()
        place = None if people is None else people.ranked.place(g, cell)
        return cls(g=g, n=n, cell=cell, w=w, count=count, tech=tech,
                   known=tech.codes >= 0, none=none, bb=bb, gsm=tech.lookup({"2G": True}, False),
                   rsrp=rsrp, thr=thr, service=service, own=own, place=place, people=people,
                   ops=ops, op_codes=pd.factorize(ops))

    def tally(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per village, the ``weights`` of its ``mask`` tests (by default their own, ``w``)."""
        weights = self.w if weights is None else weights
        return np.bincount(self.g[mask], weights=weights[mask], minlength=self.n)


def _service_evidence(out: pd.DataFrame, t: _Tests) -> np.ndarray:
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
    lived_known = _lived(t, known)
    w_known = poststratify(g, t.ops, lived_known, known, n, codes=t.op_codes)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["no_service_share"] = np.where(n_known > 0, t.tally(none, w_known) / n_known,
                                           np.nan)
    # the tests with a known outcome, for the residents' no-service share estimated per
    # operator against the model (coverage.classify.noservice.survey_regression_share)
    # each test's own margin over where its handset loses the network (dB; -inf without
    # service), for the tests' inclusion propensity (coverage.classify.selection)
    out.attrs["service_tests"] = ByReference({
        "village": g[known], "cell": t.cell[known],
        "operator": t.op_codes[0][known], "operators": [str(x) for x in t.op_codes[1]],
        "none": none[known], "own_margin": t.own[known], "raw_weight": w[known],
        "weight": lived_known[known], "by_people": t.people is not None,
        "place": None if t.place is None else t.place[known]})
    point = known  # tests that state their technology say whether there was service
    out["n_cov_tests"] = t.tally(point)
    out["k_cov_tests"] = t.tally(point & t.service)
    return w_known


def _speed_evidence(out: pd.DataFrame, t: _Tests, joined: pd.DataFrame,
                    profile: Profile, model: CoverageSurfaces
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
    lived_dl = _lived(t, fin)
    out.attrs["speed_tests"] = ByReference({
        "village": g[fin], "cell": cell[fin], "operator": t.op_codes[0][fin],
        "operators": [str(x) for x in t.op_codes[1]], "download": dl[fin],
        "own_margin": t.own[fin], "raw_weight": w[fin], "weight": lived_dl[fin],
        "place": None if t.place is None else t.place[fin]})
    w_dl = poststratify(g, t.ops, lived_dl, fin, n, codes=t.op_codes)
    w_ul = poststratify(g, t.ops, _lived(t, np.isfinite(ul)),
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
                     model: CoverageSurfaces, profile: Profile, calibration: Mapping | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indoor service where residents tested, in ``out``; per test, indoors, known, weight.

    A test's own level over the indoor threshold, or another operator's (calibrated model)
    there; a subscriber without broadband has none of their own. Thresholds moved by the
    stability step as the shares are. Writes ``n_indoor_tests`` and
    ``indoor_share_tests`` with its ``_strict`` and ``_loose`` variants; returns whether
    each test found indoor service (nominal thresholds), whether it says (a broadband
    level, or broadband lost), and its weight standing for the residents.
    """
    bb, rsrp = t.bb, t.rsrp
    lost_bb = t.none | t.gsm
    said = (bb & np.isfinite(rsrp)) | lost_bb
    w_in = _lived(t, said)
    n_in = t.tally(said, w_in)
    out["n_indoor_tests"] = t.tally(said)
    thr_in = t.tech.lookup({tech: profile.indoor_dbm(tech) for tech in BROADBAND_TECHS},
                           np.nan)
    others = others_margin_at(joined, model, profile, calibration)
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
    ranked = group_value_order(g, cell)  # once for every part: the same tests, one order
    for key, (hit, mask, weight) in parts.items():
        out[f"split_half_{key}"] = split_half_difference(g, ranked, hit, weight, mask,
                                                         len(out))


def _lived(t: _Tests, mask: np.ndarray) -> np.ndarray:
    """The ``mask`` tests' weights, standing for where the people live when placed."""
    if t.place is None:
        return np.where(mask, t.w, 0.0)
    return location_weights(t.g, t.place, t.w, mask, t.people, t.n)


def _sufficient(out: pd.DataFrame, profile: Profile) -> np.ndarray:
    """Villages whose tests replace the model: enough tests, devices and hours."""
    n_ok = out["n_cov_tests"].to_numpy() >= profile.min_override_tests
    dev = out["n_devices"].to_numpy(dtype=float)
    span = out["test_span_h"].to_numpy(dtype=float)
    dev_ok = np.isnan(dev) | (dev >= profile.min_override_devices)
    span_ok = np.isnan(span) | (span >= profile.min_override_span_h)
    return n_ok & dev_ok & span_ok


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
