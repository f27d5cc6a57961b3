r"""Fusion of the predicted surfaces with measurements.

:func:`fuse_measurements` does, per (operator, technology) layer:

1. **Calibration.** Residuals :math:`r = P_{measured} - P_{model}` of the point tests with
   an RSRP (RSCP, 2G level) are fitted as :math:`a + b \log_{10} d_{km}` by robust least
   squares (:func:`coverage.calibrate.fit_intercept_slope`), :math:`d` the distance to the
   layer's best server; an operator/technology with fewer than
   ``params.min_calibration_tests`` tests takes its technology's pooled fit (or none).
   The whole layer is corrected by :math:`a + b \log_{10} d_{km}`.
2. **Residual kriging.** The residuals left after calibration, averaged per grid cell, are
   kriged over the grid (:func:`coverage.calibrate.simple_krige`) with an exponential
   variogram fitted per technology (:func:`coverage.calibrate.fit_variogram`), or with the
   correlation length and nugget the province's tests chose among
   :data:`KRIGE_VARIOGRAMS` (:func:`select_fusion`): a measured
   dead zone pulls the surface down around it, and the correction fades to the calibrated
   model a few correlation lengths away. With ``params.krige_lifts`` False (the
   default) the correction only lowers: tests gather where the signal is
   good, and their lift spread over a village's untested houses can call unserved
   villages served. A no-service test
   (``tech`` = ``none``) stands for a level at most :data:`NO_SERVICE_DBM` on every layer
   of its operator (of every operator when it names none), a censored observation used by
   the kriging only.
3. **Measured cells.** A measured cell takes the median measured level of its operator
   and technology; where at least half of the tests of an operator there report no service
   (or fell back under a technology) that layer is cleared at the cell. Within ``radius_m``
   the correction the measurement made at its cell carries over to the cells around it, on
   top of the model's variation between them: the contract's "by measurement where there is
   one nearby". Copying the measured level itself over the disc would paint a tested road's
   level on the houses behind the ridge beside it (with the demo's hidden true field as the
   model, copying moved villages the true field classed right into the wrong class).

Ookla tiles and point tests are also aggregated to the grid (:func:`aggregate_measurements`)
and kept in ``surfaces.measured`` beside the signal. :func:`cross_validate` reports the error
of the model, the calibrated model and the fused model on held-out tests (spatial k-fold).

The stages live in their own modules, in the order they run: :mod:`.observations` (the
tests on the grid), :mod:`.calibration`, :mod:`.kriging`, :mod:`.crossval` (the choice of
each stage by cross-validation) and :mod:`.measured` (measured cells); this module
composes them. The names other code used from here stay importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from ..engine import Engine
from ..params import BROADBAND_TECHS, ModelParams
from .calibration import SHADOW_DB as SHADOW_DB
from .calibration import TREND_BINS as TREND_BINS
from .calibration import TREND_SAMPLE as TREND_SAMPLE
from .calibration import (
    LayerFit,
    apply_calibration,
    calibrated_at,
    calibrated_layer,
    corrections_at,
    fit_corrections,
    hold_distances,
    open_trends,
)
from .calibration import inclusion_weights as inclusion_weights
from .calibration import open_trend as open_trend
from .calibration import shadow_db as shadow_db
from .cells import GatheredLayers, GridCells, HeldLayers
from .crossval import CALIBRATION_WEIGHTS as CALIBRATION_WEIGHTS
from .crossval import KRIGE_BLOCK_SHARE as KRIGE_BLOCK_SHARE
from .crossval import SELECT_MAX_OBS as SELECT_MAX_OBS
from .crossval import SERVICE_DBM as SERVICE_DBM
from .crossval import SERVICE_SIGMA_DB as SERVICE_SIGMA_DB
from .crossval import SIGNIFICANCE_Z as SIGNIFICANCE_Z
from .crossval import STAGE_TOLERANCE as STAGE_TOLERANCE
from .crossval import (
    FusionChoice,
    cross_validate,
    select_fusion,
)
from .crossval import HeldOut as HeldOut
from .crossval import calibration_cv as calibration_cv
from .grid import CoverageSurfaces
from .kriging import KRIGE_REACH as KRIGE_REACH
from .kriging import KRIGE_VARIOGRAMS as KRIGE_VARIOGRAMS
from .kriging import (
    krige_layers,
)
from .measured import group_value_order as group_value_order
from .measured import measured_cells
from .measured import sort_key as sort_key
from .observations import FALLBACK_BELOW as FALLBACK_BELOW
from .observations import (
    NO_SERVICE_DBM,
    TestCells,
    aggregate_measurements,
    aggregate_tests,
    layer_observations,
    measurement_xy,
)
from .observations import Key as Key

__all__ = ["NO_SERVICE_DBM", "FusionChoice", "LayerFit", "aggregate_measurements",
           "calibrated_at", "calibrated_layer", "cross_validate", "fuse_measurements",
           "hold_distances",
           "measurement_xy", "select_fusion"]

log = logging.getLogger(__name__)


def fuse_measurements(
    surfaces: CoverageSurfaces,
    measurements: gpd.GeoDataFrame | None,
    *,
    radius_m: float = 250.0,
    techs: tuple[str, ...] = (*BROADBAND_TECHS, "2G"),
    params: ModelParams | None = None,
    xy: tuple[np.ndarray, np.ndarray] | None = None,
    estimate_margins: Mapping[str, Mapping[str, float]] | None = None,
    cells: GridCells | None = None,
    engine: Engine | None = None,
) -> CoverageSurfaces:
    """Calibrate the surfaces to measurements, krige the residuals, and use measured cells.

    See the module docstring for the three steps. Returns a new object; ``surfaces`` is not
    changed (the result's server distances are the same arrays: fusion does not change
    them). The fitted corrections are in ``.calibration``, the aggregated measurements in
    ``.measured``.

    Parameters
    ----------
    surfaces : CoverageSurfaces
        Predicted levels (:func:`coverage.model.predict_coverage`).
    measurements : GeoDataFrame or DataFrame or None
        Observations as read by :func:`coverage.io.read_measurements` (any CRS), or the
        same columns with ``lon``/``lat`` instead of points (:func:`measurement_xy`).
    radius_m : float
        Cells within this distance of measured points take the measured level.
    techs : tuple of str
        Technologies whose layers are fused.
    params : ModelParams, optional
        ``calibrate``, ``krige`` and ``min_calibration_tests``; by default those the
        surfaces were predicted with.
    xy : tuple of ndarray, optional
        The tests' coordinates in the grid's CRS (:func:`coverage.model.points_xy`), when
        the caller has them: transforming millions of points once is enough.
    estimate_margins : mapping, optional
        ``name -> {tech: threshold_dbm}``: margins kept in ``.estimated_margin`` from the
        calibrated and kriged layers, before the measured cells take over (the
        classification's model estimate; see :func:`coverage.classify.fuse_for`).
    engine : Engine, optional
        Where the cross-validation's folds and the layers' kriging run: a local engine's
        forked processes (the result is the same to the bit); a Dask engine is not used
        here (the pieces run in this process).
    cells : GridCells, optional
        Fuse at these cells only (:mod:`coverage.model.cells`): the result is on the grid
        ``cells.compact`` and holds, at each cell of the set, what the whole grid's fusion
        holds there (the fits, the variograms and the open-field trends come from the whole
        grid and the tests as before), except ``.measured``, left empty
        (:func:`aggregate_measurements` gives it on the whole grid). The set must hold
        every cell with a test. A national grid at 100 m fused whole is a copy of every
        layer (0.5 GB each) and five grids of measurements; the classification reads the
        layers only at its villages and tests.

    Raises
    ------
    ValueError
        ``cells`` misses a cell that holds a test.
    """
    params = params or surfaces.params or ModelParams()
    engine = _local_engine(engine)
    grid = surfaces.grid
    if measurements is None or measurements.empty:
        out = _fusion_start(surfaces, cells)
        if cells is None:
            out.measured = aggregate_measurements(measurements, grid)
        _keep_estimates(out, estimate_margins)
        return out
    if xy is None:
        xy = measurement_xy(measurements, grid.crs)
    tests = TestCells.locate(measurements, grid, xy=xy)
    if cells is not None and not cells.contains(tests.ucell):
        raise ValueError("fuse_measurements(cells=): the set of cells misses cells that "
                         "hold tests; build it with the tests' cells "
                         "(GridCells.of(grid, pieces, test_cells))")
    # the per-layer observations serve calibration and kriging only; they, the open-field
    # trends and the choice read the model on the whole grid, before the copy is made
    obs = (layer_observations(surfaces, measurements, techs, xy)
           if params.calibrate or params.krige else pd.DataFrame())
    trends = (open_trends(surfaces, obs) if params.calibrate and len(obs) else {})
    choice = _choose_stages(surfaces, obs, params, trends, estimate_margins, engine)
    out = _fusion_start(surfaces, cells)
    if cells is None:  # at cells, the classification has no use for them: not kept
        out.measured = aggregate_tests(measurements, grid, tests)
    out.choices["fusion"] = choice.as_dict()
    if choice.calibration_weight > 0 and len(obs):
        _calibrate(out, obs, choice.calibration_weight, params, trends)
    if choice.krige and len(obs):
        krige_layers(out, obs, grid=grid, at=cells, workers=params.workers,
                      lift=params.krige_lifts, engine=engine, variogram=choice.variogram,
                      keep=tests.ucell)
    _keep_estimates(out, estimate_margins)
    measured_cells(out, measurements, radius_m=radius_m, techs=techs, cells=tests,
                    grid=grid, at=cells)
    return out


def _local_engine(engine: Engine | None) -> Engine | None:
    """The engine the fusion's pieces run through: ``engine`` when local, else None (here).

    The fusion's pieces are small and its maps follow one another: on Dask, a value shared
    by two maps in a row was at times lost from the workers between them ("lost
    dependencies"); its pieces run in this process, as they always did on Dask.
    """
    return engine if engine is None or engine.is_local else None


def _keep_estimates(out: CoverageSurfaces,
                    estimate_margins: Mapping[str, Mapping[str, float]] | None) -> None:
    """Keep ``out``'s margins over each set of thresholds in ``out.estimated_margin``.

    Parameters
    ----------
    out : CoverageSurfaces
        The fused surfaces so far (calibrated and kriged, before the measured cells);
        changed in place.
    estimate_margins : mapping or None
        ``name -> {tech: threshold_dbm}`` (:func:`fuse_measurements`).
    """
    for name, thresholds in (estimate_margins or {}).items():
        out.estimated_margin[name] = out.margin(dict(thresholds))


def _choose_stages(surfaces: CoverageSurfaces, obs: pd.DataFrame, params: ModelParams,
                   trends: Mapping[Key, tuple[np.ndarray, np.ndarray]],
                   estimate_margins: Mapping[str, Mapping[str, float]] | None,
                   engine: Engine | None) -> FusionChoice:
    """The calibration weight and kriging to use: as set, or chosen by the tests.

    Parameters
    ----------
    surfaces : CoverageSurfaces
        The model on its whole grid.
    obs : DataFrame
        The tests per layer (:func:`~coverage.model.observations.layer_observations`);
        empty when neither stage is on.
    params : ModelParams
        ``calibrate`` and ``krige`` as set; with ``select_fusion`` the stages are chosen by
        blocked cross-validation (:func:`select_fusion`).
    trends : mapping
        The layers' open-field trends (:func:`~coverage.model.calibration.open_trends`).
    estimate_margins : mapping or None
        Its ``out`` thresholds (dBm per technology), when given, are the service the
        cross-validation scores.
    engine : Engine or None
        Where the cross-validation's folds run (None: in this process).

    Returns
    -------
    FusionChoice
        Full calibration when ``params.calibrate`` and kriging when ``params.krige``
        ("as set"), or the cross-validation's choice.
    """
    if params.select_fusion and len(obs) and (params.calibrate or params.krige):
        choice = select_fusion(surfaces, obs, params, trends,
                               service_dbm=(estimate_margins or {}).get("out"), engine=engine)
    else:
        choice = FusionChoice(1.0 if params.calibrate else 0.0, params.krige, "as set")
    log.info("fusion: calibration weight %.2f, kriging %s (%s)", choice.calibration_weight,
             "on" if choice.krige else "off", choice.reason)
    return choice


def _calibrate(out: CoverageSurfaces, obs: pd.DataFrame, weight: float, params: ModelParams,
               trends: Mapping[Key, tuple[np.ndarray, np.ndarray]]) -> None:
    """Correct ``out``'s layers by the calibration fitted on ``obs``, scaled by ``weight``.

    Parameters
    ----------
    out : CoverageSurfaces
        The surfaces to correct (:func:`~coverage.model.calibration.apply_calibration`);
        changed in place, the fits kept in ``out.calibration``.
    obs : DataFrame
        The tests per layer; changed in place: ``pred`` takes the correction, so that the
        kriging works on the residuals the calibration left.
    weight : float
        Share of each fit's correction applied, 0..1 (:class:`FusionChoice`).
    params : ModelParams
        ``min_calibration_tests`` and ``calibration_propensity_floor``
        (:func:`~coverage.model.calibration.fit_corrections`).
    trends : mapping
        The layers' open-field trends, for the fits apart in terrain shadow.
    """
    fits = {k: f._replace(weight=weight) for k, f in
            fit_corrections(obs, min_tests=params.min_calibration_tests, trends=trends,
                            propensity_floor=params.calibration_propensity_floor).items()}
    apply_calibration(out, fits)
    for key, f in fits.items():
        log.info("calibrated %s %s: %+.1f dB %+.1f dB/decade in the open, %s in shadow, "
                 "weight %.2f, from %d tests", *key, f.a, f.b,
                 "lowering only" if f.a_shadow is None else f"{f.a_shadow:+.1f} dB",
                 f.weight, f.n)
    obs["pred"] = obs["pred"] + corrections_at(fits, obs)


def _fusion_start(surfaces: CoverageSurfaces, cells: GridCells | None) -> CoverageSurfaces:
    """The model as fusion starts from: its layers copied (at ``cells`` only when given).

    The server distances are the model's own arrays, shared (read at ``cells`` when
    given): fusion does not change them, and a copy is as big as the layers.
    """
    if cells is None:
        distances = surfaces.distance_m
        return CoverageSurfaces(surfaces.grid, {k: v.copy() for k, v in surfaces.layers.items()},
                                surfaces.dem, distances if isinstance(distances, HeldLayers)
                                else dict(distances), {},
                                dict(surfaces.calibration), surfaces.params,
                                {k: v.copy() for k, v in surfaces.estimated_margin.items()},
                                dict(surfaces.choices))
    return CoverageSurfaces(cells.compact,
                            {k: cells.gather(v) for k, v in surfaces.layers.items()}, None,
                            GatheredLayers(surfaces.distance_m, cells), {},
                            dict(surfaces.calibration), surfaces.params,
                            {k: cells.gather(v) for k, v in surfaces.estimated_margin.items()},
                            dict(surfaces.choices))
