"""Cross-validation of the fusion's stages on a province's own tests.

Blocked folds (:func:`block_folds`) score held-out tests by the Brier score of their
service (:func:`held_out_error`, :class:`HeldOut`): the calibration's weight
(:func:`calibration_cv`) and the kriging's variogram are chosen by them
(:func:`select_fusion`, :class:`FusionChoice`); :func:`cross_validate` reports the error of
the model, the calibrated model and the fused model in dB.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..calibrate import Variogram
from ..engine import Engine
from ..params import BROADBAND_TECHS, ModelParams
from .calibration import (
    LayerFit,
    corrections_at,
    fit_corrections,
    inclusion_weights,
    open_trends,
)
from .grid import CoverageSurfaces, Grid
from .kriging import (
    KRIGE_VARIOGRAMS,
    fit_variograms,
    krige_point_candidates,
    krige_shift,
    kriging_residuals,
    variogram_name,
    with_variogram,
)
from .observations import Key, layer_observations
from .transmitters import FLOOR_DBM

__all__ = ["CALIBRATION_WEIGHTS", "KRIGE_BLOCK_SHARE", "SELECT_MAX_OBS", "SERVICE_DBM",
           "SERVICE_SIGMA_DB", "SIGNIFICANCE_Z", "STAGE_TOLERANCE", "FusionChoice", "HeldOut",
           "block_folds", "calibration_cv", "cross_validate", "cv_observations",
           "held_out_error", "select_fusion"]


@dataclass(frozen=True)
class FusionChoice:
    """How much of each fusion stage a province's tests earned (:func:`select_fusion`).

    ``calibration_weight`` scales the calibration's correction (0: none, 1: all of it);
    ``krige`` says whether the residuals are kriged, ``variogram`` with what correlation
    length and nugget share (:data:`~coverage.model.kriging.KRIGE_VARIOGRAMS`; None: the
    fitted one's);
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
                "variogram": variogram_name(self.variogram), "reason": self.reason,
                "cv_error": dict(self.cv_error or {})}


#: Calibration weights tried, from none to all of it.
CALIBRATION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: A stage is taken only if it lowers the held-out error by this share;
#: among calibration weights within it of the best, the smallest (shrunk towards none).
STAGE_TOLERANCE = 0.01
#: Kriging is judged on blocks of this share of ``cv_block_m`` (2 km: 500 m blocks).
KRIGE_BLOCK_SHARE = 0.25


#: Observations the selection's cross-validation uses at most (a seeded sample beyond).
SELECT_MAX_OBS = 20_000


def block_folds(obs: pd.DataFrame, params: ModelParams, seed: int) -> np.ndarray:
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


def held_out_error(obs: pd.DataFrame, pred: np.ndarray,
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
    return _brier(pred, *_service(obs, service_dbm))


def _service(obs: pd.DataFrame, service_dbm: Mapping[str, float] | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Each observation's threshold of service (dBm) and whether it had service."""
    thresholds = {**SERVICE_DBM, **dict(service_dbm or {})}
    thr = obs.tech.map(thresholds).to_numpy(float)
    cens = obs.censored.to_numpy(bool)
    return thr, ~cens & (obs.observed.to_numpy(float) >= thr)


def _brier(pred: np.ndarray, thr: np.ndarray, served: np.ndarray) -> np.ndarray:
    """:func:`held_out_error` from the tests' thresholds and service (:func:`_service`)."""
    p = ndtr((np.nan_to_num(pred, nan=-200.0) - thr) / SERVICE_SIGMA_DB)
    return (p - served) ** 2


def cv_observations(obs: pd.DataFrame, params: ModelParams, seed: int) -> pd.DataFrame:
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


def _blocks(obs: pd.DataFrame, block_m: float) -> np.ndarray:
    return (np.floor(obs.x.to_numpy(float) / block_m).astype(np.int64) * 1_000_003
            + np.floor(obs.y.to_numpy(float) / block_m).astype(np.int64))


def calibration_cv(obs: pd.DataFrame, params: ModelParams,
                   trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None = None, *,
                   seed: int = 0, service_dbm: Mapping[str, float] | None = None,
                   engine: Engine | None = None) -> dict[float, HeldOut] | None:
    """Held-out Brier score of service (:func:`held_out_error`) at each calibration weight.

    Blocked folds (:func:`select_fusion`); the weights of :data:`CALIBRATION_WEIGHTS`
    when ``params.calibrate``, else 0 only. None under two folds with tests. The folds
    run through ``engine`` (in this process by default); the scores do not depend on it.
    """
    weights = CALIBRATION_WEIGHTS if params.calibrate else (0.0,)
    fold_of = block_folds(obs, params, seed)
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

    No fits unless ``fit`` (:func:`~coverage.model.calibration.fit_corrections`); None
    when the fold has no test or no training observation.
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
    full_te = corrections_at(fits, te)
    service = _service(te, service_dbm)  # the same at every weight
    return ([_brier(te.pred.to_numpy() + w * full_te, *service) for w in weights],
            block[fold == k])


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
    (``service_dbm``; :func:`held_out_error`): a calibration that lifts a valley where
    handsets found nothing pays for it. The weight
    is the smallest that the best does not beat (:meth:`HeldOut.better_than`: by
    :data:`STAGE_TOLERANCE` and ``params.calibration_z`` standard errors of the paired
    block differences; shrunk towards none); with ``params.calibration_propensity_floor``
    the calibration's fits and held-out errors weigh each test by the inverse of its
    propensity to be taken (:func:`~coverage.model.calibration.inclusion_weights`); then
    kriging with each variogram of :data:`~coverage.model.kriging.KRIGE_VARIOGRAMS` (the
    fitted one, and literature's correlation lengths with half the variance as nugget),
    the best of them kept only if it beats the calibrated model so, judged on blocks of
    :data:`KRIGE_BLOCK_SHARE` times the side (kriging reaches a few correlation lengths,
    a village's size: on 2 km blocks it changes no held-out test and would never earn its
    place even where it marks a measured dead zone). Under two folds with tests,
    nothing is fitted. The folds run through ``engine`` (in this process by default);
    the choice does not depend on it.
    """
    obs = cv_observations(obs, params, seed)
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
        krige, variogram, krige_errors = _select_variogram(
            obs, params, weight, trends, grid=surfaces.grid, seed=seed,
            service_dbm=service_dbm, engine=engine)
        errors.update(krige_errors)
    reason = (f"blocked {params.cv_folds}-fold CV on {len(obs)} observations, Brier score "
              "of service: " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()))
    return FusionChoice(weight, krige, reason, errors, variogram)


def _select_variogram(obs: pd.DataFrame, params: ModelParams, weight: float,
                      trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None, *,
                      grid: Grid, seed: int, service_dbm: Mapping[str, float] | None,
                      engine: Engine | None
                      ) -> tuple[bool, tuple[float | None, float | None], dict[str, float]]:
    """Whether to krige, and with which variogram, by blocked cross-validation.

    Kriging acts within a few correlation lengths of the tests: it is judged on blocks of
    :data:`KRIGE_BLOCK_SHARE` times ``params.cv_block_m``, a village's size, where it acts,
    not on blocks it cannot reach.

    Parameters
    ----------
    obs : DataFrame
        The observations scored (:func:`cv_observations`).
    params : ModelParams
        ``cv_block_m``, ``cv_folds`` and the calibration's settings.
    weight : float
        The calibration weight chosen; the kriging works on top of it.
    trends : mapping or None
        The layers' open-field trends, for the calibration's fits.
    grid : Grid
        The model's grid (its resolution sets the variograms' largest lag).
    seed : int
        Seed of the folds.
    service_dbm : mapping or None
        Thresholds of service per technology, dBm (:func:`held_out_error`).
    engine : Engine or None
        Where the folds run (None: in this process).

    Returns
    -------
    krige : bool
        Whether the best variogram beats no kriging (:meth:`HeldOut.better_than`).
    variogram : tuple
        The best of :data:`~coverage.model.kriging.KRIGE_VARIOGRAMS`.
    errors : dict
        Mean held-out error of each candidate (``krige:<variogram>``, ``krige:without``);
        empty, with no kriging, when no fold had tests.
    """
    small = block_folds(obs, replace(params, cv_block_m=params.cv_block_m * KRIGE_BLOCK_SHARE),
                        seed)
    parts = [p for p in (engine or Engine()).map(
        _krige_fold, range(params.cv_folds), obs=obs, fold=small, params=params,
        weight=weight, trends=trends, grid=grid, service_dbm=service_dbm)
        if p is not None]
    if not parts:
        return False, KRIGE_VARIOGRAMS[0], {}
    where = np.concatenate([blocks for *_, blocks in parts])
    without = HeldOut(np.concatenate([base for _, base, _ in parts]), where)
    held = {c: HeldOut(np.concatenate([kr[c] for kr, _, _ in parts]), where)
            for c in KRIGE_VARIOGRAMS}
    errors = {f"krige:{variogram_name(c)}": h.mean for c, h in held.items()}
    errors["krige:without"] = without.mean
    variogram = min(held, key=lambda c: held[c].mean)
    return held[variogram].better_than(without), variogram, errors


def _krige_fold(k: int, *, obs: pd.DataFrame, fold: np.ndarray, params: ModelParams,
                weight: float, trends: Mapping[Key, tuple[np.ndarray, np.ndarray]] | None,
                grid: Grid, service_dbm: Mapping[str, float] | None
                ) -> tuple[dict[tuple, np.ndarray], np.ndarray, np.ndarray] | None:
    """Fold ``k`` of the kriging's test in :func:`select_fusion`.

    Held-out errors with the training residuals kriged under each of
    :data:`~coverage.model.kriging.KRIGE_VARIOGRAMS` (on top of the calibration at
    ``weight``), without kriging, and the held-out tests' blocks; None when the fold has
    no test or no training observation.
    """
    split = _fold_fits(k, obs, fold, params, trends, fit=weight > 0)
    if split is None:
        return None
    tr, te, fits = split
    tr_pred = tr.pred.to_numpy() + weight * corrections_at(fits, tr)
    no_krige = te.pred.to_numpy() + weight * corrections_at(fits, te)
    resid = kriging_residuals(tr, tr_pred)
    fitted = fit_variograms(tr, resid, grid)
    candidates = [with_variogram(fitted, cand) for cand in KRIGE_VARIOGRAMS]
    fused = [no_krige.copy() for _ in KRIGE_VARIOGRAMS]
    for rows, shifts in _kriged_held_out(tr, resid, te, candidates):
        for f, shift in zip(fused, shifts, strict=True):
            f[rows] += krige_shift(shift, params)
    errors = {cand: held_out_error(te, f, service_dbm)
              for cand, f in zip(KRIGE_VARIOGRAMS, fused, strict=True)}
    return (errors, held_out_error(te, no_krige, service_dbm),
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
    obs = layer_observations(surfaces, measurements, techs)
    floor = obs.tech.map(FLOOR_DBM).to_numpy(float)
    obs["pred"] = np.where(np.isfinite(obs.pred), obs.pred, floor)
    obs["dist_m"] = obs.dist_m.astype(float).fillna(params.max_range_km * 1000.0)
    fold = block_folds(obs, params, seed)
    trends = open_trends(surfaces, obs)
    errors: dict[str, list[np.ndarray]] = {"model": [], "calibrated": [], "fused": []}
    for k in range(params.cv_folds):
        test = (fold == k) & ~obs.censored.to_numpy(bool)
        train = fold != k
        if not test.any() or not train.any():
            continue
        fold_errors = _stage_errors(obs[train].reset_index(drop=True),
                                    obs[test].reset_index(drop=True), params, trends,
                                    surfaces.grid)
        for stage, e in zip(errors, fold_errors, strict=True):
            errors[stage].append(e)
    rows = []
    for stage, errs in errors.items():
        e = np.concatenate(errs) if errs else np.array([])
        rows.append({"stage": stage, "rmse_db": float(np.sqrt(np.mean(e**2))) if e.size
                     else np.nan, "bias_db": float(np.mean(e)) if e.size else np.nan,
                     "mae_db": float(np.mean(np.abs(e))) if e.size else np.nan, "n": e.size})
    return pd.DataFrame(rows)


def _stage_errors(tr: pd.DataFrame, te: pd.DataFrame, params: ModelParams,
                  trends: Mapping[Key, tuple[np.ndarray, np.ndarray]], grid: Grid
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One fold of :func:`cross_validate`: the held-out tests' errors at each stage, dB.

    Parameters
    ----------
    tr, te : DataFrame
        The training and the held-out observations (``te`` with a measured level), each
        with a fresh index.
    params : ModelParams
        ``min_calibration_tests``.
    trends : mapping
        The layers' open-field trends (:func:`~coverage.model.calibration.open_trends`).
    grid : Grid
        The model's grid.

    Returns
    -------
    tuple of ndarray
        Predicted minus measured level of each held-out test by the model, the calibrated
        model and the fused one (calibrated, the training residuals kriged with the
        fitted variograms).
    """
    fits = fit_corrections(tr, min_tests=params.min_calibration_tests, trends=trends)
    tr_pred = tr.pred.to_numpy() + corrections_at(fits, tr)
    te_pred = te.pred.to_numpy() + corrections_at(fits, te)
    resid = kriging_residuals(tr, tr_pred)
    variograms = fit_variograms(tr, resid, grid)
    fused = te_pred.copy()
    for rows, (corr,) in _kriged_held_out(tr, resid, te, [variograms]):
        fused[rows] += corr
    observed = te.observed.to_numpy()
    return te.pred.to_numpy() - observed, te_pred - observed, fused - observed


def _kriged_held_out(tr: pd.DataFrame, resid: np.ndarray, te: pd.DataFrame,
                     candidates: Sequence[Mapping[str, Variogram]]
                     ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """The training residuals kriged at the held-out tests, layer by layer.

    Parameters
    ----------
    tr : DataFrame
        The training observations, with a fresh index (``resid``'s positions).
    resid : ndarray
        Their residuals, dB (:func:`~coverage.model.kriging.kriging_residuals`).
    te : DataFrame
        The held-out observations, with a fresh index.
    candidates : sequence of mapping
        Variograms per technology to krige with, each in turn; the cells and the
        neighbour search are shared by them (one call per layer).

    Yields
    ------
    rows : ndarray of int
        Positions in ``te`` of a layer's held-out tests (a layer with training tests).
    shifts : list of ndarray
        The kriged residual at those tests under each candidate, dB.
    """
    for key, g in te.groupby(["operator", "tech"]):
        src = tr[(tr.operator == key[0]) & (tr.tech == key[1])]
        if src.empty:
            continue
        yield g.index.to_numpy(), krige_point_candidates(
            src, resid[src.index.to_numpy()], [v[str(key[1])] for v in candidates],
            g.x.to_numpy(), g.y.to_numpy())
