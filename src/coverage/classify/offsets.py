"""The model's error at the tests and the villages' offsets shrunk from it, dB.

:func:`model_error_at_tests` is each test's level less the model's estimate there (the
calibrated model, kriged), a test without broadband counted as censored;
:func:`village_offsets` shrinks those errors up the commune and province
(:mod:`coverage.classify.shrinkage`) into each village's ``model_offset_db``, bounded
(:data:`MAX_LIFT_DB`), with its held-out counterpart; :func:`weigh_decided_offsets`
weighs the residuals of the villages whose tests decide for who tests.
:func:`others_margin_at` is the other operators' indoor margin at each test.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..model import FLOOR_DBM, CoverageSurfaces
from ..model.calibration import calibrated_at
from ..params import BROADBAND_TECHS, Profile
from .locate import ByReference, TextCodes
from .selection import Propensity
from .shrinkage import held_out_offsets, shrink

__all__ = ["MAX_LIFT_DB", "MIN_CALIBRATION_TESTS", "NO_SERVICE_MARGIN_DB",
           "model_error_at_tests", "others_margin_at", "village_offsets",
           "weigh_decided_offsets"]

#: A no-service test counts as this far under the outdoor threshold (dB), censored.
NO_SERVICE_MARGIN_DB = -5.0

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
#: A village whose tests decide (``min_override_tests`` or more) and as many of them measured
#: a broadband level is lifted as it is lowered, as far as ``max_offset_db``: its offset is
#: then mostly its own tests', and a lowering-only offset is biased low (the mean of
#: min(offset, 0) of an unbiased estimate is under the truth; lowering only, the covered
#: share with the tests came out 0.030 under the truth on the nine tuning and check worlds,
#: ``docs/validation.md``). Its no-service tests
#: where the model gave its operator broadband enter the offset as residuals, so a lift is
#: paid for where the tests found nothing. A lift says how far over the model the level
#: is, which only a test that measured a level says: a village whose tests decide with
#: fewer than ``min_override_tests`` levels (the others without broadband, most where the
#: model agreed and say nothing of the size) is lowered only, as an undecided one. Its few
#: levels were taken where a handset found signal; lifted by them, truly `unavailable`
#: villages had been put over 1/2 by +1 to +12 dB from fewer than five levels among five
#: to eight tests (``docs/validation.md``, "A lift rests on five measured levels").
MAX_LIFT_DB = 0.0

#: Tests with a level (or no service) needed before the model is calibrated at all.
MIN_CALIBRATION_TESTS = 30


def village_offsets(out: pd.DataFrame, g: np.ndarray, errors: tuple[np.ndarray, np.ndarray],
                    lost: np.ndarray, own: np.ndarray, levels: list[np.ndarray],
                    profile: Profile) -> None:
    """The villages' shrunk model errors (dB) from the tests', into ``out`` and its attrs.

    ``out``: the villages' evidence so far, with ``sufficient`` (the villages whose tests
    decide, for the held-out offsets); ``g``: each test's village (its row in ``out``);
    ``levels``: the villages' unit codes, coarsest first (:func:`coverage.classify.
    shrinkage.shrink`).

    ``errors``: each test's model error against the estimate the offset moves (the
    calibrated model kriged) and against the calibrated model alone (the same array
    without kriging); ``lost``: the tests without broadband for their subscriber; ``own``:
    each test's margin over where its handset loses the network (dB), for
    :func:`weigh_decided_offsets`. With enough tests to calibrate, ``model_offset_db``
    (lifted as far as ``max_offset_db`` only where the tests decide with as many levels, see
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
        # the tests with a residual (no service among them) decide the village; it is lifted
        # as lowered where as many of them measured a broadband level (see MAX_LIFT_DB),
        # which implies that they decide
        decide = np.bincount(g[has | lost], minlength=n) >= profile.min_override_tests
        levels_seen = np.bincount(g[has & ~lost], minlength=n) >= profile.min_override_tests
        lift = np.where(levels_seen, profile.max_offset_db, cap)
        if alone is not resid:  # never lifted by what the kriging lowered
            lift = np.minimum(lift, np.maximum(_shrunk(g, alone, n, levels)[0], 0.0))
        out["model_offset_db"] = np.clip(offset, -profile.max_offset_db, lift)
        mine = has & decide[g]  # for weigh_decided_offsets, once the propensity is in
        out.attrs["decided_residuals"] = ByReference({
            "village": g[mine], "resid": resid[mine], "own_margin": own[mine],
            "sums": _residual_sums(g, resid, n), "levels": levels, "decide": decide,
            "bounds": (-profile.max_offset_db, np.broadcast_to(lift, (n,)).copy())})
        out["model_offset_sd_db"] = np.sqrt(offset_var)
        # held out: against the calibrated model alone, the estimate the confidence's
        # recalibration moves (the kriging has seen the held-out tests)
        fin = np.isfinite(alone)
        sums = [np.bincount(g[fin], weights=wt, minlength=n).astype(float)
                for wt in (None, alone[fin], alone[fin] ** 2)]
        held, held_var = held_out_offsets(*sums, levels,
                                           out["sufficient"].to_numpy(dtype=bool))
        out["heldout_offset_db"] = np.clip(held, -profile.max_offset_db, cap)
        out["heldout_offset_sd_db"] = np.sqrt(held_var)
    if has.sum() >= MIN_CALIBRATION_TESTS:  # spread of the error once the bias is out
        # away from the tests, where the kriging does not reach: the calibrated model's
        fin = np.isfinite(alone)
        out.attrs["residual_sigma_db"] = float(np.std(alone[fin] - out["model_offset_db"]
                                                      .to_numpy()[g[fin]]))


def model_error_at_tests(joined: pd.DataFrame, model: CoverageSurfaces, profile: Profile,
                         tech: TextCodes, rsrp: np.ndarray, bb: np.ndarray, lost: np.ndarray,
                         calibration: Mapping | None, kriged: Mapping | None = None
                         ) -> np.ndarray:
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
    ``ev.attrs["decided_residuals"]`` (:func:`coverage.classify.evidence.
    measurement_evidence`).
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


def _model_level_at(joined: pd.DataFrame, model: CoverageSurfaces, tech: TextCodes,
                    calibration: Mapping | None = None, kriged: Mapping | None = None
                    ) -> np.ndarray:
    """Modelled level (dBm) of each test's operator and technology at the test.

    With ``calibration`` (``fuse_measurements(...).calibration``), the calibrated model's;
    with ``kriged`` (``fuse_measurements(...).kriged_at_tests``), kriged too.
    """
    cell = joined["_cell"].to_numpy()
    inside = cell >= 0
    out = np.full(len(joined), np.nan)
    op = TextCodes(joined["operator"]) if "operator" in joined else None
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
    op = TextCodes(joined["operator"]) if "operator" in joined else None
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


def others_margin_at(joined: pd.DataFrame, model: CoverageSurfaces, profile: Profile,
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
    op = TextCodes(joined["operator"])
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
