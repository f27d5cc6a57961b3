"""Per-village coverage and measurement metrics, before any class: :func:`village_metrics`.

The steps, each a function below:

1. The surfaces fused with the tests as the classification needs them (:func:`fuse_for`),
   and the model's estimate: its margins before the measured cells take over. Everything
   from here on is computed at the cells the classification reads, the villages' pieces
   and the tests' cells (:class:`coverage.model.GridCells`), not on whole grids.
2. Population weights of the villages' pieces (:mod:`.zonal`) and the measurement evidence
   (:mod:`.evidence`), with the residents' slow and no-service shares (:mod:`.residents`).
3. The population (:func:`_population`): the column where it gives one, else the raster.
4. The covered and indoor shares (:func:`_covered_shares`): the model moved by the
   village's offset, or for villages with enough tests the fused surface on the cells the
   tests moved; at the thresholds and ``stability_db`` above and below them.
5. What reaches the village (:func:`_reach_columns`): 2G, the best technology, operators.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit, ndtr

from ..engine import Engine
from ..errors import ParameterError
from ..io import Raster
from ..model import (
    CoverageSurfaces,
    Grid,
    GridCells,
    fuse_measurements,
    measurement_xy,
    surfaces_at,
)
from ..model.calibration import calibrated_layer
from ..params import BROADBAND_TECHS, Profile, get_profile
from .evidence import measurement_evidence
from .offsets import weigh_decided_offsets
from .residents import resident_rules
from .rules import SHARE_CHUNK, SHARE_GRID, SHARE_SD_FLOOR, province_design_effects
from .shares import fibre_layer, moved_cells, piece_sums, reach_shares
from .shrinkage import PRIOR_TAU_DB
from .zonal import PopulationCount, ZonalWeights, count_population, zonal_weights

__all__ = ["AUTO_FAST_VILLAGES", "Placement", "fuse_for", "place_villages", "village_metrics"]

log = logging.getLogger(__name__)

#: A technology or operator reaches a village when it covers more than this share of people.
REACH_SHARE = 0.01
#: Villages whose raster cells with data cover less than this share of their area are reported.
VALID_SHARE_WARN = 0.99
#: ``zonal="auto"`` rasterises village ids (the ``fast`` method) from this many villages up.
AUTO_FAST_VILLAGES = 20_000
#: Location variability (dB) the residents' priors take when the profile and the tests give none.
RESIDENT_SIGMA_DB = 6.0
#: Location variability (dB) of the modelled level the covered and indoor shares take when
#: the profile and the tests give none (a run without tests, or with fewer than 30 tests
#: with a level): 8 dB, the log-normal shadowing of a rural macro cell out of line of sight
#: (3GPP TR 38.901 Table 7.4.1-1, RMa NLOS: shadow fading standard deviation 8 dB). Each
#: modelled cell then counts as covered with probability :math:`\Phi(m / \sigma)`, as with
#: the tests' own spread, not as covered outright whenever its median clears the threshold:
#: the shares are the expected shares of people above the thresholds, which a median model
#: read as hard thresholds overstates where many people sit a few dB over them
#: (``docs/validation.md``, "The shares without tests read the model with its textbook
#: spread"). ``Profile.location_sigma_db = 0`` restores the hard verdict.
MODEL_SIGMA_DB = 8.0
#: Tested villages a province needs before its tests say how often a test finds broadband
#: against its village's covered share (:func:`_served_odds`); with fewer, as often (1).
MIN_SERVED_ODDS_VILLAGES = 10
#: Tests of a village counted at most in that fit (a village's tests are correlated; as
#: ``coverage.classify.rules.MAX_EVIDENCE_TESTS``).
MAX_SERVED_ODDS_TESTS = 50.0


def margin_thresholds(profile: Profile) -> dict[str, dict[str, float]]:
    """The profile's outdoor (``out``) and indoor (``in``) thresholds per technology, dBm."""
    return {"out": {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS},
            "in": {t: profile.indoor_dbm(t) for t in BROADBAND_TECHS}}


def fuse_for(surfaces: CoverageSurfaces, measurements: pd.DataFrame | None,
             profile: Profile | None = None, *,
             xy: tuple[np.ndarray, np.ndarray] | None = None,
             cells: GridCells | None = None, engine: Engine | None = None
             ) -> CoverageSurfaces:
    """The surfaces fused with the tests as the classification under ``profile`` needs them.

    :func:`coverage.model.fuse_measurements` with the profile's measurement radius, keeping
    the estimate's margins over the profile's outdoor (``out``) and indoor (``in``)
    thresholds before the measured cells take over. Pass the result as ``fused=`` to
    :func:`coverage.classify.classify_villages` and as ``existing=`` to
    :func:`coverage.plan.plan_rollout` to fuse the tests once for both. With ``cells``,
    fused at those cells only (:func:`coverage.model.fuse_measurements`): what
    :func:`village_metrics` does when it is given no fused surfaces. ``engine`` runs the
    fusion's independent pieces (:mod:`coverage.engine`; the result does not depend on it).
    """
    profile = profile or get_profile("vn-2025")
    return fuse_measurements(surfaces, measurements, radius_m=profile.measurement_radius_m,
                             xy=xy, estimate_margins=margin_thresholds(profile),
                             cells=cells, engine=engine)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a classification's villages and tests lie on the grid (:func:`place_villages`).

    Attributes
    ----------
    grid : Grid
        The model's grid.
    method : str
        The zonal method, ``"exact"`` or ``"fast"``.
    villages : int
        Number of villages placed.
    xy : tuple of ndarray or None
        The tests' coordinates in the grid's CRS (None: no tests).
    weights : ZonalWeights
        The villages' pieces weighed by people (:func:`coverage.classify.zonal.zonal_weights`).
    nobody : ndarray of bool
        Villages that hold no weight.
    area : ZonalWeights
        Their pieces weighed by area.
    cells : GridCells
        The cells the classification reads: the pieces' and the tests'.
    """

    grid: Grid
    method: str
    villages: int
    xy: tuple[np.ndarray, np.ndarray] | None
    weights: ZonalWeights
    nobody: np.ndarray
    area: ZonalWeights
    cells: GridCells


def place_villages(villages: gpd.GeoDataFrame, grid: Grid, *,
                   measurements: pd.DataFrame | None = None,
                   population: Raster | None = None, zonal: str = "auto",
                   engine: Engine | None = None) -> Placement:
    """The villages' pieces and the tests' cells on ``grid``, as :func:`village_metrics` finds them.

    Made before the classification, its ``cells`` are where the model is read: a caller
    holding a national grid keeps the model's server distances there only
    (:func:`coverage.model.calibration.hold_distances`) and hands the placement to
    :func:`village_metrics` as ``zonal``, which then does not place the villages again.
    Parameters as in :func:`village_metrics`.
    """
    method = _zonal_method(zonal, len(villages))
    has_tests = measurements is not None and not measurements.empty
    xy = measurement_xy(measurements, grid.crs) if has_tests else None
    weights = zonal_weights(villages, grid, population, method=method, engine=engine)
    nobody, area = _area_weights(weights, villages, grid, population, method, engine)
    # The cells the classification reads: its villages' pieces and its tests. The fused
    # surfaces are made there only, and every grid below is read there only: a national
    # grid at 100 m is 130 million cells per layer, its people and tests a few percent.
    cells = GridCells.of(grid, weights.cell, area.cell, _test_cells(xy, grid))
    log.info("classification on %d of the grid's %d cells (villages and tests)", cells.size,
             grid.shape[0] * grid.shape[1])
    return Placement(grid, method, len(villages), xy, weights, nobody, area, cells)


def village_metrics(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    profile: Profile | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    zonal: str | Placement = "auto",
    engine: Engine | None = None,
    fused: CoverageSurfaces | None = None,
    market_shares: Mapping[str, float] | None = None,
    claims: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per-village coverage and measurement metrics (no classes yet), in input order.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons (any CRS), with the optional ``population``, ``commune``,
        ``district``, ``province`` columns.
    surfaces : CoverageSurfaces
        The modelled levels (dBm) on the metric grid.
    measurements : GeoDataFrame or DataFrame, optional
        Observations from :func:`coverage.io.read_measurements`, or the same columns with
        ``lon``/``lat`` (EPSG:4326) instead of points (:func:`coverage.model.measurement_xy`:
        10 million tests without shapely points save about 1 GB).
    population : Raster, optional
        People per cell, any CRS and resolution.
    profile : Profile, optional
        The rules profile (``vn-2025`` by default).
    fibre : GeoDataFrame, optional
        Fibre routes or nodes; adds ``pop_fibre_share``, the share of people within the
        profile's ``fibre_reach_m``.
    zonal : {"auto", "exact", "fast"} or Placement
        How villages meet the grid (:func:`coverage.classify.zonal.zonal_weights`): exact
        cell fractions, or village ids rasterised on the model grid; ``auto`` takes
        ``fast`` from :data:`AUTO_FAST_VILLAGES` villages up. Tests are located alike.
        Or a :class:`Placement` of these villages and tests on ``surfaces.grid`` made by
        :func:`place_villages` (same measurements and population): they are not placed
        again. Needed when ``surfaces`` hold their server distances at the placement's
        cells (:func:`coverage.model.calibration.hold_distances`).
    engine : Engine, optional
        Runs the exact zonal statistics in chunks of villages (:mod:`coverage.engine`);
        the figures do not change.
    fused : CoverageSurfaces, optional
        ``surfaces`` already fused with these ``measurements`` by :func:`fuse_for`, when
        the caller has them: they are not fused again. A run that classifies and plans
        hands the same fused surfaces to :func:`coverage.plan.plan_rollout`
        (``existing=fused``, no ``measurements``).
    market_shares : mapping, optional
        Operator -> share of subscribers, for the residents' priors of a run without
        ``measurements`` (:func:`coverage.classify.noservice.site_shares`); equal shares
        when None. With measurements the shares are read from the tests.
    claims : mapping, optional
        Operator -> its claimed broadband on ``surfaces.grid`` (uint8, 1 claimed), from
        :func:`coverage.classify.claims.claimed_layers`; adds ``pop_claimed_share``, the
        share of people inside one operator's claim, the best operator's.

    Returns
    -------
    DataFrame
        Indexed like ``villages``: ``population``, ``pop_covered_share``,
        ``pop_indoor_share``, ``pop_2g_share``, their ``*_strict``/``*_loose`` variants
        (thresholds ``stability_db`` up/down), ``prior_share``, ``prior_indoor_share``,
        ``prior_tests``, ``served_odds`` (:func:`_served_odds`), ``province_code``, the
        measured villages' ``heldout_covered_share`` with its variants
        (:func:`_held_out_shares`; with the profile's ``recalibrate_confidence``),
        ``pop_covered_share_model``, ``best_tech``, ``operators``, ``evidence`` and the
        measurement columns of
        :func:`coverage.classify.evidence.measurement_evidence`.
    """
    profile = profile or get_profile("vn-2025")
    has_tests = measurements is not None and not measurements.empty
    placement = _placement_of(zonal, villages, surfaces.grid, measurements=measurements,
                              population=population, engine=engine)
    method, xy, cells = placement.method, placement.xy, placement.cells
    weights, nobody, area = placement.weights, placement.nobody, placement.area
    del placement, zonal  # the caller's, if any, is its own to drop
    # one after the other: fusion beside the weights in a thread saved a few seconds of a
    # national run and cost a gigabyte more at its peak (a fused copy of every layer and
    # the tests' tables at once)
    if fused is None:
        fused = (fuse_for(surfaces, measurements, profile, xy=xy, cells=cells, engine=engine)
                 if has_tests else surfaces)
    fused = surfaces_at(fused, cells)
    if has_tests and not fused.estimated_margin:
        log.info("fused surfaces without the classification's estimate "
                 "(coverage.classify.fuse_for): measured cells count in every village")
    # the model's error at the tests beyond the layer-wide calibration the fusion applied
    ev = measurement_evidence(villages, measurements, surfaces, profile, method=method,
                              ids=weights.ids, xy=xy, calibration=fused.calibration,
                              kriged=fused.kriged_at_tests,
                              people=weights if population is not None else None)
    sigma, resident_sigma = _location_sigmas(profile, ev.attrs.get("residual_sigma_db"))
    # from here on, the pieces and the tests' cells are positions in ``cells``
    weights, model = _pieces_at(weights, cells), surfaces_at(surfaces, cells)
    _tests_at(ev, cells)
    ev["selection_gap"] = _selection_gap(weights, fused, ev.attrs.get("service_tests"),
                                         profile, sigma, len(ev))
    # the residents' test rules, from the model's priors alone where a village (or the
    # whole run) has no test: no tests never means no problem
    resident_rules(ev, model, fused, weights, measurements if has_tests else None, profile,
                   resident_sigma, shares=market_shares)
    weigh_decided_offsets(ev, ev.attrs.get("propensity"))
    if nobody.any():
        weights = weights.replace_villages(nobody, _pieces_at(area, cells))
    measured = ev["sufficient"].to_numpy(dtype=bool) & has_tests
    out = pd.DataFrame(index=villages.index)
    out["population"] = _population(villages, weights, population)
    for col, values in _share_columns(weights, model, fused, ev, measured, profile, sigma,
                                      _province_codes(villages)).items():
        out[col] = values
    if fibre is not None and not fibre.empty:
        layer = cells.gather(fibre_layer(fibre, surfaces, profile.fibre_reach_m))
        out["pop_fibre_share"] = np.clip(_share(weights, weights.at(layer)), 0, 1)
    if claims:
        shares = [_share(weights, weights.at(cells.gather(layer).astype("float32")))
                  for layer in claims.values()]
        out["pop_claimed_share"] = np.clip(np.max(shares, axis=0), 0, 1)
    out = out.join(ev)
    _evidence_columns(out, villages, measured, profile)
    # what the tests chose, for the run's manifest
    choices = {key: ev.attrs[key].as_dict() for key in ("slow_curve", "slow_bandwidth")
               if key in ev.attrs}
    if choices:
        out.attrs["choices"] = choices
    return out


def _placement_of(zonal: str | Placement, villages: gpd.GeoDataFrame, grid: Grid, *,
                  measurements: pd.DataFrame | None, population: Raster | None,
                  engine: Engine | None) -> Placement:
    """The caller's placement of the villages (checked against ``grid``), or one made here.

    Parameters as in :func:`village_metrics`; ``grid`` is the surfaces' (their metric CRS).

    Raises
    ------
    ValueError
        A :class:`Placement` made on another grid or for another number of villages.
    """
    if not isinstance(zonal, Placement):
        return place_villages(villages, grid, measurements=measurements,
                              population=population, zonal=zonal, engine=engine)
    if zonal.grid != grid or zonal.villages != len(villages):
        raise ValueError("village_metrics(zonal=): placed on another grid or for other "
                         "villages")
    return zonal


def _location_sigmas(profile: Profile, measured_sigma: float | None) -> tuple[float, float]:
    """The location variability of the modelled level (dB) for the shares and the residents.

    Parameters
    ----------
    profile : Profile
        Its ``location_sigma_db``, when set, is taken for both.
    measured_sigma : float or None
        The spread of the model's error at the tests once the bias is out, dB
        (``residual_sigma_db`` of :func:`coverage.classify.evidence.measurement_evidence`;
        None with fewer than 30 tests).

    Returns
    -------
    sigma : float
        For the covered and indoor shares, dB: the profile's, else the tests', else
        :data:`MODEL_SIGMA_DB`. 0 reads the model as hard thresholds.
    resident_sigma : float
        For the residents' priors, dB: as ``sigma`` where the profile or the tests give
        one above 0, else :data:`RESIDENT_SIGMA_DB`.
    """
    given = profile.location_sigma_db is not None
    sigma = (profile.location_sigma_db if given
             else measured_sigma if measured_sigma is not None else MODEL_SIGMA_DB)
    if sigma > 0:
        log.info("model location variability %.1f dB (%s)", sigma,
                 "the profile's" if given else
                 "the tests'" if measured_sigma is not None else "without tests: textbook")
    # the residents' priors keep their own default without a measured or given spread
    resident_sigma = sigma if given or measured_sigma is not None else RESIDENT_SIGMA_DB
    return sigma, (resident_sigma if resident_sigma > 0 else RESIDENT_SIGMA_DB)


def _tests_at(ev: pd.DataFrame, cells: GridCells) -> None:
    """The tests' cells of the evidence's per-test tables as positions in ``cells``."""
    for name in ("service_tests", "speed_tests"):
        tests = ev.attrs.get(name)
        if tests is not None:
            tests["cell"] = cells.codes(tests["cell"])


def _share_columns(weights: ZonalWeights, model: CoverageSurfaces, fused: CoverageSurfaces,
                   ev: pd.DataFrame, measured: np.ndarray, profile: Profile, sigma: float,
                   province: np.ndarray) -> dict[str, np.ndarray]:
    """The villages' covered and indoor shares, held out when asked, and what reaches them.

    Parameters
    ----------
    weights : ZonalWeights
        The villages' pieces, positions in the cells ``model`` and ``fused`` hold.
    model, fused : CoverageSurfaces
        The modelled levels (dBm) and those fused with the tests, at those cells.
    ev : DataFrame
        The measurement evidence (:func:`coverage.classify.evidence.measurement_evidence`).
    measured : ndarray of bool
        Villages whose tests decide.
    profile : Profile
        The rules profile.
    sigma : float
        Location variability of the modelled level, dB (:func:`_location_sigmas`).
    province : ndarray of int
        The villages' province codes (:func:`_province_codes`).

    Returns
    -------
    dict
        Column -> values in village order: :func:`_covered_shares`', then
        :func:`_held_out_shares`' (with the profile's ``recalibrate_confidence`` and
        ``heldout_offset_db`` in ``ev``), then :func:`_reach_columns`'.
    """
    columns = _covered_shares(weights, model, fused, ev, measured, profile, sigma, province)
    if profile.recalibrate_confidence and "heldout_offset_db" in ev.columns:
        columns.update(_held_out_shares(weights, model, ev, measured, profile, sigma,
                                        fused.calibration))
    columns.update(_reach_columns(weights, fused, profile))
    return columns


def _evidence_columns(out: pd.DataFrame, villages: gpd.GeoDataFrame, measured: np.ndarray,
                      profile: Profile) -> None:
    """Write ``evidence``, ``prior_tests``, ``province_code`` and ``served_odds`` in ``out``.

    Then the covered shares of the villages with 1-4 tests updated by them
    (:func:`_sparse_share_update`). ``measured``: the villages whose tests decide.
    """
    any_test = (out["n_cov_tests"].to_numpy() > 0) | (out["n_speed_tests"].to_numpy() > 0)
    out["evidence"] = np.where(measured, "measured",
                               np.where(any_test, "model+sparse_tests", "model"))
    out["prior_tests"] = _prior_strength(out, profile)
    out["province_code"] = _province_codes(villages)
    out["served_odds"] = _served_odds(out, villages)
    _sparse_share_update(out, profile)


def _sparse_share_update(out: pd.DataFrame, profile: Profile) -> None:
    r"""The covered shares of villages with 1-4 tests updated by those tests, in ``out``.

    A village with fewer tests than decide (``evidence = model+sparse_tests``) takes as its
    covered share the posterior median of the model's share updated by its few tests, each
    with broadband or without, as the contract's test rules read "the model's prior updated
    by the few tests" (``docs/classification.md``), not the model's share moved by the
    borrowed offset alone.

    Prior: the model's share :math:`\hat c` (moved by the borrowed offset), normal with the
    spread the village's model error gives it, :math:`s = \sqrt{(k_s \sigma_b)^2 + 0.05^2}`
    (sensitivity :math:`k_s` from the ``_strict``/``_loose`` shares, :math:`\sigma_b` the
    offset's posterior spread ``model_offset_sd_db``, :data:`PRIOR_TAU_DB` without one;
    0.05 what the signal does not carry, :data:`coverage.classify.rules.SHARE_SD_FLOOR`),
    on [0, 1]. Each test with a known outcome found broadband with probability
    :math:`c_t = b c' / (b c' + 1 - c')`: :math:`b` the province's odds of a test finding
    broadband against its village's share (``served_odds``, :func:`_served_odds`), and
    :math:`c' = c + g` the share at the tests' spots, where the model puts them ``g``
    (``selection_gap``, :func:`_selection_gap`) above or below the residents. The
    likelihood of :math:`k` of :math:`n` is :math:`c_t^{k/D} (1 - c_t)^{(n-k)/D}`, with
    :math:`D \ge 1` the design effect of the tests' covered share that the province's
    villages whose tests decide show between the two halves of their tests
    (:func:`coverage.classify.rules.province_design_effects`; tests taken next to each
    other share their signal; 1 where fewer than ``min_recalibration_villages`` show it);
    the posterior on a grid of :data:`coverage.classify.rules.SHARE_GRID` points. The
    covered share and its ``_strict``/``_loose`` variants move by the posterior median
    minus :math:`\hat c`, so the rule (``unavailable`` under ``min_covered_share``) fires
    at posterior probability 1/2, as the contract's estimated rules do. The indoor shares
    stay under the covered ones.
    """
    sparse = (out["evidence"].to_numpy() == "model+sparse_tests") & (
        out["n_cov_tests"].to_numpy(dtype=float) > 0)
    rows = np.flatnonzero(sparse)
    if not len(rows):
        return
    c = out["pop_covered_share"].to_numpy(dtype=float)
    step = profile.stability_db
    slope = (np.abs(out["pop_covered_share_loose"].to_numpy(dtype=float)
                    - out["pop_covered_share_strict"].to_numpy(dtype=float)) / (2.0 * step)
             if step > 0 else np.zeros(len(c)))
    sd_db = (out["model_offset_sd_db"].to_numpy(dtype=float)
             if "model_offset_sd_db" in out.columns else np.full(len(c), np.nan))
    sd = np.hypot(slope * np.where(np.isfinite(sd_db), sd_db, PRIOR_TAU_DB), SHARE_SD_FLOOR)
    # tests taken next to each other share their signal: each counts as many times less
    # as the province's measured villages' halves say (1 where they cannot say)
    deff = np.maximum(1.0, np.nan_to_num(province_design_effects(out, profile, "cov"),
                                         nan=1.0))
    n = out["n_cov_tests"].to_numpy(dtype=float) / deff
    k = out["k_cov_tests"].to_numpy(dtype=float) / deff
    odds = np.nan_to_num(out["served_odds"].to_numpy(dtype=float), nan=1.0, posinf=1.0)
    gap = np.nan_to_num(out["selection_gap"].to_numpy(dtype=float), nan=0.0)
    grid = (np.arange(SHARE_GRID) + 0.5) / SHARE_GRID
    median = c.copy()
    for start in range(0, len(rows), SHARE_CHUNK):
        r = rows[start:start + SHARE_CHUNK]
        at = np.clip(grid[None, :] + gap[r, None], 1e-3, 1.0 - 1e-3)  # the tests' spots
        found = odds[r, None] * at / (odds[r, None] * at + 1.0 - at)
        log_w = (-0.5 * ((grid[None, :] - c[r, None]) / sd[r, None]) ** 2
                 + k[r, None] * np.log(found) + (n[r, None] - k[r, None]) * np.log1p(-found))
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        cum = np.cumsum(w, axis=1)
        median[r] = grid[np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)]
    delta = np.where(sparse, median - c, 0.0)
    for suffix in ("", "_strict", "_loose"):
        cov = np.clip(out[f"pop_covered_share{suffix}"].to_numpy(dtype=float) + delta, 0, 1)
        out[f"pop_covered_share{suffix}"] = cov
        out[f"pop_indoor_share{suffix}"] = np.minimum(
            out[f"pop_indoor_share{suffix}"].to_numpy(dtype=float), cov)
    log.info("%d village(s) with fewer tests than decide: covered share moved by their "
             "tests, mean %+.3f", len(rows), float(delta[rows].mean()))


def _selection_gap(weights: ZonalWeights, fused: CoverageSurfaces,
                   tests: Mapping[str, np.ndarray] | None, profile: Profile, sigma: float,
                   n: int) -> np.ndarray:
    """Per village, the model's covered share at its tests' spots minus at its residents'.

    How far the tests sit where the model gives coverage beyond where people live, for the
    measured villages' confidence (:func:`coverage.classify.rules._selection_effects`).

    Parameters
    ----------
    weights : ZonalWeights
        The villages' pieces on the grid of ``fused``, weighted by people.
    fused : CoverageSurfaces
        The fused surfaces; their estimate's margin over the outdoor threshold (dB) before
        the measured cells take over is read.
    tests : mapping or None
        The service tests (``village``, ``cell``: positions on that grid, -1 off it).
    profile : Profile
        The rules (the outdoor thresholds).
    sigma : float
        The model's location variability (dB; 0: hard verdicts).
    n : int
        Number of villages.

    Returns
    -------
    ndarray
        Share of the tests' spots covered minus share of the residents covered, in the
        model (NaN without a test on the grid, or with pieces off it).
    """
    out = np.full(n, np.nan)
    if tests is None or not len(tests["village"]):
        return out
    levels = margin_thresholds(profile)["out"]
    est = fused.estimated_margin["out"] if "out" in fused.estimated_margin else fused.margin(
        levels)

    def covered(m: np.ndarray) -> np.ndarray:
        """Probability of coverage at margins ``m`` (dB), in place in a float64 copy."""
        if sigma <= 0:
            return (m >= 0).astype(float)
        m = m.astype(float)  # tens of millions of pieces: one array, not three
        m /= sigma
        return ndtr(m, out=m)

    residents = weights.mean(covered(weights.at(est, fill=np.nan)))
    ok = tests["cell"] >= 0
    v = tests["village"][ok]
    cnt = np.bincount(v, minlength=n)
    at_tests = np.asarray(est).reshape(-1)[tests["cell"][ok]]
    tot = np.bincount(v, weights=np.nan_to_num(covered(at_tests)), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(cnt > 0, tot / cnt, np.nan) - residents
    return out


def _zonal_method(zonal: str, n: int) -> str:
    if zonal not in ("auto", "exact", "fast"):
        raise ParameterError(f"zonal={zonal!r}: use 'auto', 'exact' or 'fast'")
    method = zonal if zonal != "auto" else ("fast" if n >= AUTO_FAST_VILLAGES else "exact")
    log.info("zonal statistics: %s method for %d villages", method, n)
    return method


def _share(weights: ZonalWeights, values: np.ndarray) -> np.ndarray:
    """Weighted mean of per-piece ``values`` per village (0 off the grid)."""
    return np.nan_to_num(weights.mean(values), nan=0.0)


def _ratio(num: np.ndarray, tot: np.ndarray) -> np.ndarray:
    """``num / tot`` where ``tot`` is positive, else 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.where(tot > 0, num / tot, np.nan), nan=0.0)


def _area_weights(weights: ZonalWeights, villages: gpd.GeoDataFrame, grid: Grid,
                  population: Raster | None, method: str, engine: Engine | None
                  ) -> tuple[np.ndarray, ZonalWeights]:
    """The villages that hold no weight (bool), and their pieces weighed by area.

    Their shares are by area (:meth:`ZonalWeights.replace_villages`).
    """
    no_weight = weights.total() <= 0
    if not no_weight.any():
        empty = np.zeros(0, dtype=np.int64)
        return no_weight, ZonalWeights(empty, empty, np.zeros(0), 0)
    if population is not None:
        log.warning("%d village(s) hold no people on the population raster (outside it, "
                    "nodata or zero): their shares are by area", int(no_weight.sum()))
    area = zonal_weights(villages[no_weight], grid, None, method=method, engine=engine)
    return no_weight, dataclasses.replace(area, ids=None)  # its id grid: not needed


def _test_cells(xy: tuple[np.ndarray, np.ndarray] | None, grid: Grid) -> np.ndarray:
    """Flat grid cells of the tests at ``xy`` (-1: off the grid)."""
    if xy is None:
        return np.zeros(0, dtype=np.int64)
    row, col, inside = grid.index(*xy)
    return np.where(inside, row.astype(np.int64) * grid.shape[1] + col, -1)


def _pieces_at(weights: ZonalWeights, cells: GridCells) -> ZonalWeights:
    """``weights`` with each piece's cell given by its position in ``cells``."""
    return dataclasses.replace(weights, cell=cells.codes(weights.cell), ids=None)


def _population(villages: gpd.GeoDataFrame, weights: ZonalWeights,
                population: Raster | None) -> np.ndarray:
    """People per village: the ``population`` column where it gives one, else the raster."""
    column_pop = (pd.to_numeric(villages["population"], errors="coerce").to_numpy(dtype=float)
                  if "population" in villages.columns else np.full(len(villages), np.nan))
    raster_pop = np.full(len(villages), np.nan)
    if population is not None:
        count = (PopulationCount(weights.people, weights.valid_share)
                 if weights.people is not None else count_population(villages, population))
        raster_pop = np.where(count.valid_share > 0, count.people, np.nan)
        _report_raster_gaps(villages, count.valid_share)
    if population is None and np.isnan(column_pop).all():
        log.warning("no population raster or column: shares are by area, population empty")
    return np.where(np.isnan(column_pop), raster_pop, column_pop)


def _report_raster_gaps(villages: gpd.GeoDataFrame, valid_share: np.ndarray) -> None:
    outside = valid_share <= 0
    partial = (valid_share > 0) & (valid_share < VALID_SHARE_WARN)
    ids = villages["village_id"].astype(str).to_numpy() if "village_id" in villages else None
    missing = 1.0 - valid_share[partial]
    span = (f" ({100 * missing.min():.0f}% to {100 * missing.max():.0f}% of their area)"
            if partial.any() else "")
    for mask, what in ((outside, "lie wholly outside the population raster (or on nodata): "
                        "population unknown unless the population column gives it"),
                       (partial, "lie partly outside the population raster (or on nodata"
                        f"{span}): their count covers only the part with data; WorldPop "
                        "marks lakes, wide rivers and the sea as nodata, so on a shore this is "
                        "expected, elsewhere check the raster's extent")):
        if mask.any():
            sample = ", ".join(ids[mask][:5]) if ids is not None else ""
            log.warning("%d village(s) %s; e.g. %s", int(mask.sum()), what, sample)


def _covered_shares(weights: ZonalWeights, surfaces: CoverageSurfaces,
                    fused: CoverageSurfaces, ev: pd.DataFrame, measured: np.ndarray,
                    profile: Profile, sigma: float, province: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
    """The covered and indoor shares, their ``_strict``/``_loose`` variants and the priors.

    The model's estimate (its margins before the measured cells take over), moved by each
    village's ``model_offset_db`` and read as a probability of coverage with the location
    variability ``sigma`` (dB; 0: a hard verdict); for the ``measured`` villages the fused
    surface on the cells the tests moved (:func:`.shares.moved_cells`) instead, and the
    indoor share of their tests (own level over the indoor threshold, or another operator's
    there) rather than the fused surfaces', shrunk toward the model's per ``province``
    (integer codes; None: one province) by :func:`_indoor_from_tests`.
    """
    thresholds = margin_thresholds(profile)
    # The model's estimate: calibrated and kriged, before the measured cells take over
    # (they decide the tested cells of villages with enough tests).
    estimate = {kind: fused.estimated_margin[kind] if kind in fused.estimated_margin
                else fused.margin(levels) for kind, levels in thresholds.items()}
    fused_margin = ({kind: fused.margin(levels) for kind, levels in thresholds.items()}
                    if measured.any() else None)

    def covered(margin: np.ndarray) -> np.ndarray:
        """Probability that a modelled cell is above the threshold."""
        return ndtr(margin / sigma) if sigma > 0 else (margin >= 0).astype("float32")

    d = profile.stability_db
    shifts = {"": 0.0, "_strict": -d, "_loose": d}
    offset = ev["model_offset_db"].to_numpy(dtype=float)
    sums = piece_sums(
        weights, margins=estimate, fused=fused_margin,
        tested=(moved_cells(surfaces, fused, fused_margin)
                if fused_margin is not None else None),
        offset=offset, shifts=shifts, measured=measured, covered=covered,
        model_share=bool(np.any(offset)))
    total = weights.total()
    out: dict[str, np.ndarray] = {}
    prior: dict[str, dict[str, np.ndarray]] = {"out": {}, "in": {}}
    for suffix in shifts:
        share = {}
        for kind in ("out", "in"):
            prior[kind][suffix] = _ratio(sums[f"model:{kind}{suffix}"], total)
            share[kind] = prior[kind][suffix]
            if measured.any():
                decided = _ratio(sums[f"decided:{kind}{suffix}"], sums["decided_weight"])
                share[kind] = np.where(measured, decided, share[kind])
        cov = np.clip(share["out"], 0, 1)
        out[f"pop_covered_share{suffix}"] = cov
        out[f"pop_indoor_share{suffix}"] = np.minimum(np.clip(share["in"], 0, 1), cov)
    if measured.any():
        _indoor_from_tests(out, ev, measured, profile, shifts, prior["in"], province)
    out["prior_share"] = np.clip(prior["out"][""], 0, 1)
    out["prior_indoor_share"] = np.clip(prior["in"][""], 0, 1)
    out["pop_covered_share_model"] = (prior["out"][""] if not np.any(offset) else
                                      _ratio(sums["model_only"], total))
    return out


def _held_out_shares(weights: ZonalWeights, model: CoverageSurfaces, ev: pd.DataFrame,
                     measured: np.ndarray, profile: Profile, sigma: float,
                     fits: Mapping | None) -> dict[str, np.ndarray]:
    """The measured villages' shares as the model would give them without their tests.

    The model with the fusion's layer-wide calibration (``fits``, a few coefficients a
    layer fitted on the whole province's tests) but not its kriging (local: it has seen
    these tests), moved by the village's held-out offset
    (:func:`coverage.classify.shrinkage.held_out_offsets`, capped as for a village whose
    tests do not decide), at the thresholds and ``stability_db`` above and below:
    ``heldout_covered_share`` and its ``_strict``/``_loose`` variants, NaN for the other
    villages. The confidence's recalibration reads them
    (:mod:`coverage.classify.rules`).
    """
    keep = measured[weights.village]
    part = dataclasses.replace(weights, village=weights.village[keep],
                               cell=weights.cell[keep], weight=weights.weight[keep])
    d = profile.stability_db
    shifts = {"": 0.0, "_strict": -d, "_loose": d}
    offset = np.nan_to_num(ev["heldout_offset_db"].to_numpy(dtype=float))
    outdoor = margin_thresholds(profile)["out"]
    margin = np.full(model.grid.shape, -np.inf, dtype="float32")
    for key in model.layers:
        if key[1] in outdoor:
            level = calibrated_layer(model, key, fits or {})
            np.fmax(margin, level - np.float32(outdoor[key[1]]), out=margin)

    def covered(margin: np.ndarray) -> np.ndarray:
        return ndtr(margin / sigma) if sigma > 0 else (margin >= 0).astype("float32")

    sums = piece_sums(part, margins={"out": margin}, fused=None, tested=None, offset=offset,
                      shifts=shifts, measured=np.zeros(weights.n, dtype=bool),
                      covered=covered, model_share=False)
    total = part.total()
    out = {}
    for suffix in shifts:
        cov = np.clip(_ratio(sums[f"model:out{suffix}"], total), 0, 1)
        out[f"heldout_covered_share{suffix}"] = np.where(measured, cov, np.nan)
    return out


def _province_codes(villages: gpd.GeoDataFrame) -> np.ndarray:
    """Each village's province as an integer code (all 0 without a ``province`` column)."""
    if "province" not in villages.columns:
        return np.zeros(len(villages), dtype=int)
    return pd.factorize(villages["province"].astype(object).fillna("").astype(str))[0]


def _indoor_from_tests(out: dict[str, np.ndarray], ev: pd.DataFrame, measured: np.ndarray,
                       profile: Profile, shifts: dict[str, float],
                       model: Mapping[str, np.ndarray] | None = None,
                       province: np.ndarray | None = None) -> None:
    """Indoor shares of the measured villages from their residents' tests, in ``out``.

    Where the village has enough indoor tests, they say where the building margin holds
    (:mod:`coverage.classify.evidence`: own level, or another operator's), shrunk toward
    ``model`` (per suffix, the model's indoor share moved by the village's offset) by
    :func:`indoor_shrinkage`; never above the covered share. Without ``model``, the tests'
    share as it is.
    """
    n_in = ev["n_indoor_tests"].to_numpy(dtype=float)
    use = measured & (n_in >= profile.min_override_tests)
    weight = np.ones(len(n_in))
    if model is not None:
        weight = indoor_shrinkage(ev["indoor_share_tests"].to_numpy(dtype=float), model[""],
                                  n_in, ev["split_half_indoor"].to_numpy(dtype=float), use,
                                  np.zeros(len(n_in), dtype=int) if province is None
                                  else province)
    for suffix in shifts:
        tests_in = ev[f"indoor_share_tests{suffix}"].to_numpy(dtype=float)
        if model is not None:
            tests_in = model[suffix] + weight * (tests_in - model[suffix])
        cov = out[f"pop_covered_share{suffix}"]
        out[f"pop_indoor_share{suffix}"] = np.where(
            use & np.isfinite(tests_in), np.minimum(np.clip(tests_in, 0, 1), cov),
            out[f"pop_indoor_share{suffix}"])


#: Villages whose tests decide a province needs before their indoor tests are shrunk
#: toward the model by its own spread (:func:`indoor_shrinkage`); with fewer, the whole
#: run's villages decide it.
MIN_INDOOR_SHRINK_VILLAGES = 10


def indoor_shrinkage(tests: np.ndarray, model: np.ndarray, n: np.ndarray, split_half: np.ndarray,
                     use: np.ndarray, province: np.ndarray) -> np.ndarray:
    r"""Per village, the weight of its indoor tests against the model's indoor share.

    The empirical-Bayes composite of small-area estimation (Fay and Herriot 1979; Rao and
    Molina 2015, ch. 6): a village's tests' share :math:`p_i` estimates its indoor share
    :math:`\theta_i` with sampling variance :math:`v_i`, the model's share :math:`c_i`
    with a spread :math:`\tau^2` between villages, and the best linear estimate is
    :math:`c_i + \gamma_i (p_i - c_i)`, :math:`\gamma_i = \tau^2 / (\tau^2 + v_i)`.
    :math:`v_i = d\, c_i (1 - c_i) / n_i` (:math:`n_i` the indoor tests, at most 50), with
    the design effect :math:`d` the mean squared split-half difference over 4
    (:func:`coverage.classify.survey.split_half_difference`: tests next to each other
    share their signal) against the mean binomial variance; :math:`\tau^2` the mean of
    :math:`(p_i - c_i)^2` less the mean :math:`v_i` (at least 1e-4), by moments over the
    ``use`` villages of each province with :data:`MIN_INDOOR_SHRINK_VILLAGES` of them;
    the smaller provinces' villages pooled (fitted over all ``use`` villages when even
    the pool is smaller); under that many in all, weight 1: the tests alone.

    Parameters
    ----------
    tests, model : ndarray
        The tests' indoor share and the model's (0..1), per village.
    n : ndarray
        Indoor tests per village.
    split_half : ndarray
        The tests' share in one half of the village's tests minus the other's (NaN: none).
    use : ndarray of bool
        The villages whose indoor share is their tests'.
    province : ndarray of int
        Province codes.

    Returns
    -------
    ndarray
        :math:`\gamma_i` in (0, 1] (1 outside ``use``).
    """
    out = np.ones(len(tests))
    ok = use & np.isfinite(tests) & np.isfinite(model)
    binom = np.clip(model * (1 - model), 0.01, None) / np.clip(n, 1.0, 50.0)

    def fit(on: np.ndarray, apply: np.ndarray) -> None:
        halves = on & np.isfinite(split_half)
        if not halves.any():
            return
        deff = max(float(np.mean(split_half[halves] ** 2) / 4 / np.mean(binom[halves])), 1.0)
        tau2 = max(float(np.mean((tests[on] - model[on]) ** 2 - deff * binom[on])), 1e-4)
        out[apply] = tau2 / (tau2 + deff * binom[apply])
        log.info("indoor tests of %d villages: design effect %.2f, spread of the indoor "
                 "share around the model's %.3f", int(on.sum()), deff, np.sqrt(tau2))

    small = np.zeros(len(tests), dtype=bool)
    for code in np.unique(province[ok]):
        sel = ok & (province == code)
        if sel.sum() >= MIN_INDOOR_SHRINK_VILLAGES:
            fit(sel, sel)
        else:
            small |= sel
    if small.any() and ok.sum() >= MIN_INDOOR_SHRINK_VILLAGES:
        fit(small if small.sum() >= MIN_INDOOR_SHRINK_VILLAGES else ok, small)
    return out


def _reach_columns(weights: ZonalWeights, fused: CoverageSurfaces, profile: Profile
                   ) -> dict[str, np.ndarray]:
    """``pop_2g_share``, ``best_tech`` and ``operators``: what reaches each village.

    Each share is the weight where any of the group's layers reaches its threshold; a
    technology or an operator reaches the village above :data:`REACH_SHARE`.
    """
    outdoor = margin_thresholds(profile)["out"]
    groups = {"2G": [(k, profile.gsm_dbm) for k in fused.layers if k[1] == "2G"]}
    groups.update({f"tech:{t}": [(k, outdoor[t]) for k in fused.layers if k[1] == t]
                   for t in BROADBAND_TECHS})
    groups.update({f"op:{op}": [(k, outdoor[k[1]]) for k in fused.layers
                                if k[0] == op and k[1] in outdoor]
                   for op in fused.operators})
    reach = reach_shares(weights, fused.layers, groups)
    best = np.full(weights.n, None, dtype=object)
    for tech in BROADBAND_TECHS:  # oldest first, so the newest reaching tech wins
        best[reach[f"tech:{tech}"] > REACH_SHARE] = tech
    operators = (np.sum([reach[f"op:{op}"] > REACH_SHARE for op in fused.operators],
                        axis=0).astype(int) if fused.operators else 0)
    return {"pop_2g_share": np.clip(reach["2G"], 0, 1), "best_tech": best,
            "operators": operators}


def _prior_strength(metrics: pd.DataFrame, profile: Profile) -> float:
    r"""Strength of the model as a prior, in tests: beta-binomial method of moments.

    Over villages with tests, the spread of the measured service rate around the model's
    share beyond binomial noise gives the prior variance :math:`\tau^2`, and
    :math:`\kappa = \bar c (1-\bar c)/\tau^2 - 1`. Fewer than 10 tested villages: the
    profile's ``model_prior_tests``.
    """
    n = metrics["n_cov_tests"].to_numpy(dtype=float)
    tested = n >= 1
    if tested.sum() < 10:
        return profile.model_prior_tests
    n = np.minimum(n[tested], 50.0)
    p = metrics["k_cov_tests"].to_numpy(dtype=float)[tested] / metrics["n_cov_tests"].to_numpy(
        dtype=float)[tested]
    c = metrics["prior_share"].to_numpy(dtype=float)[tested]
    noise = np.mean(np.clip(c * (1 - c), 0.01, None) / n)
    tau2 = max(float(np.mean((p - c) ** 2)) - noise, 1e-4)
    cbar = float(np.clip(np.mean(c), 0.05, 0.95))
    kappa = cbar * (1 - cbar) / tau2 - 1
    return float(np.clip(kappa, profile.min_prior_tests, profile.max_prior_tests))


def _served_odds(metrics: pd.DataFrame, villages: gpd.GeoDataFrame) -> np.ndarray:
    r"""How often a test finds broadband against its village's covered share, per province.

    The odds ratio :math:`b` of a test finding broadband on its own operator, against the
    share :math:`c` of its village's people with broadband from any operator:
    :math:`\mathrm{logit}\, P(\text{test served}) = \mathrm{logit}\, c + \log b`, fitted by
    maximum likelihood over the province's tested villages (at most
    :data:`MAX_SERVED_ODDS_TESTS` tests each). Under 1: a subscriber's own operator is not
    always the best, handsets fall back, so a test that found broadband says more about its
    spot than the share's rate. The confidence's covered side reads it
    (:func:`coverage.classify.rules._served_update`). A province with fewer than
    :data:`MIN_SERVED_ODDS_VILLAGES` tested villages takes 1. Per village (its province's).
    """
    n = metrics["n_cov_tests"].to_numpy(dtype=float)
    k = metrics["k_cov_tests"].to_numpy(dtype=float)
    c = logit(np.clip(metrics["pop_covered_share"].to_numpy(dtype=float), 0.01, 0.99))
    scale = np.minimum(1.0, MAX_SERVED_ODDS_TESTS / np.maximum(n, 1e-9))
    n, k = n * scale, k * scale
    province = _province_codes(villages)
    out = np.ones(len(n))
    for code in np.unique(province):
        tested = (province == code) & (n > 0)
        if tested.sum() < MIN_SERVED_ODDS_VILLAGES:
            continue
        ct, kt, nt = c[tested], k[tested], n[tested]

        def nll(a: float, ct=ct, kt=kt, nt=nt) -> float:
            p = np.clip(expit(ct + a), 1e-9, 1 - 1e-9)
            return -float(np.sum(kt * np.log(p) + (nt - kt) * np.log1p(-p)))

        log_b = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded").x
        out[province == code] = np.exp(log_b)
        log.info("tests find broadband at odds %.2f of their villages' covered share",
                 np.exp(log_b))
    return out
