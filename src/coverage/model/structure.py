"""The model's structure chosen by the province's own tests (blocked cross-validation).

Where reality is unknown the literature offers several readings, and a province's tests
can tell which fits it best:

- the base-station height in the Hata law (the mast's height over its ground; its
  altitude over the receiver's ground, the older effective-height reading; or Okumura's
  effective height, its altitude over the mean ground 3-15 km out towards the receiver,
  as ITU-R P.1546-6 Annex 5 §3 takes it, which needs a DEM);
- the diffraction over the terrain (Bullington's single equivalent knife edge, scaled by
  :data:`DIFFRACTION_SCALES` towards a rounded edge or towards multiple-edge methods that
  lose more behind successive ridges; or line of sight only; the delta-Bullington method
  of ITU-R P.452-17 is a setting, not a candidate: :data:`DIFFRACTION_METHODS`);
- the handset's loss under tree canopy (none, the textbook 6 dB at 900 MHz, twice it);
- the ITU-R/NTIA Irregular Terrain Model when the installed version offers
  ``path_loss = "itm"``.

:func:`choose_structure` predicts the province once per candidate, on a grid
:data:`COARSE_FACTOR` times coarser than the analysis grid (the candidates are compared
with each other, on equal terms; the chosen one is then predicted on the analysis grid),
and scores each by the held-out Brier score of the tests' service under the same blocked
folds as the fusion (:func:`coverage.model.crossval.calibration_cv`, at the best calibration
weight for that structure). A candidate is predicted only where its score reads it
(``predict_coverage(only=...)``, the whole grid's levels there to the bit): the tests'
cells, and the cells of a lattice :func:`trend_stride` cells apart, from which each
layer's open-field level by distance is taken (:func:`coverage.model.calibration.open_trend`,
which splits the tests into open and shadowed; on the demo the lattice of every second
cell moves the candidates' scores by under 0.001 and predicting is three times cheaper).
The candidates are scored through the run's engine (forked workers with
``Engine(processes=2)``): those that differ only in the Hata height, the diffraction and
the foliage are predicted together from one sweep of the terrain
(:func:`coverage.model.variants.predict_variants`, each candidate's levels the same to the
bit) in one task, which also scores the second round; ITM is a task of its own.

The candidates come in two rounds. The first varies one setting at a time from the
textbook defaults (``ModelParams()``). The second combines the changes that helped: in each
of the three dimensions (Hata height, diffraction, foliage) the single change with the
lowest held-out error, where it is lower than the defaults' by 1%, and every pair and the
triple of those (:func:`combined_candidates`; at most four more candidates, none when fewer
than two dimensions gained). A province whose physics differs from the textbook in two ways
(the above-receiver height *and* a gentler diffraction, on a check world of
``docs/validation.md``) shows it only jointly: each change alone absorbs some of the
other's error.

The choice (:func:`pick_structure`): among the candidates that do no worse than the
defaults at the tests that found no service (:func:`unserved_tests`: no service, fallen
back to a lower technology, or a level under the threshold of service), the one with the
lowest held-out error, if it lowers the defaults' error beyond chance
(:meth:`coverage.model.crossval.HeldOut.better_than`: by 1% and two standard errors of the
paired differences summed per block); else the defaults. The guard is the model's side of
the classification's asymmetry (a village wrongly called served loses its tower): tests
gather where there is signal, so a structure that lifts the levels fits the served tests
better while it misses the unserved ones, and the tests cannot lower it back everywhere.
Without tests, or with ``select_structure = False``, the parameters are used as given.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from ..engine import Engine
from ..errors import ParameterError
from ..io import Raster
from ..params import BROADBAND_TECHS, HATA_HEIGHTS, ModelParams
from .calibration import TREND_SAMPLE, open_trend
from .clutter import clutter_map
from .crossval import (
    SERVICE_DBM,
    STAGE_TOLERANCE,
    HeldOut,
    block_folds,
    calibration_cv,
    cv_observations,
)
from .grid import CoverageSurfaces, Grid
from .observations import layer_observations, measurement_xy
from .predict import predict_coverage, warm_compiled_sweep
from .variants import predict_variants, shares_sweep

__all__ = ["COARSE_FACTOR", "StructureChoice", "choose_structure",
           "combined_candidates", "pick_structure", "structure_candidates", "trend_stride",
           "unserved_tests"]

log = logging.getLogger(__name__)

#: The candidates are predicted on a grid this many times coarser than the analysis grid.
COARSE_FACTOR = 2.0
#: Scales on the Bullington diffraction loss tried beside the textbook 1.
DIFFRACTION_SCALES = (0.5, 1.5)
#: Diffraction methods tried beside the one given (``ModelParams.diffraction``).
#: Delta-Bullington is not among them: over Hata, whose empirical slope already holds the
#: smooth earth's loss, its smooth-earth term counts that loss twice on flat ground, it
#: changed no village's class on the tuning worlds, and it doubles the model's CPU; a
#: province sets it with ``[model] diffraction = "delta_bullington"``.
DIFFRACTION_METHODS = ("bullington", "los")
#: Foliage losses at 900 MHz tried beside the one given, dB (with the default 6 dB: none and
#: 12 dB; with the option ``foliage_loss_db = 12``: none and 6 dB).
FOLIAGE_LOSSES_DB = (0.0, 6.0, 12.0)
#: The dimension each setting a candidate changes belongs to (the second round combines
#: the best change of each dimension; ITM replaces the whole law and is not combined).
DIMENSIONS = {"hata_height": "height", "diffraction": "diffraction",
              "diffraction_scale": "diffraction", "foliage_loss_db": "foliage",
              "foliage_db_per_decade": "foliage"}


@dataclass(frozen=True)
class StructureChoice:
    """The structure chosen, and every candidate's held-out Brier score of service."""

    name: str
    changes: dict
    cv_error: dict
    reason: str

    def as_dict(self) -> dict:
        """The choice as plain values (for a run's log and manifest)."""
        return {"name": self.name, "changes": dict(self.changes),
                "cv_error": dict(self.cv_error), "reason": self.reason}


def structure_candidates(params: ModelParams, *, dem: bool, landcover: bool
                         ) -> dict[str, dict]:
    """Named changes to ``params`` worth trying (the first, ``as given``, changes nothing).

    The Hata height readings other than the one given (:data:`coverage.params.HATA_HEIGHTS`;
    the effective height, like the diffraction candidates, needs a DEM and ``terrain``),
    foliage ones need a land-cover raster; ITM is tried when :class:`ModelParams` accepts
    ``path_loss = "itm"``.
    """
    terrain = dem and params.terrain
    out: dict[str, dict] = {"as given": {}}
    out |= _height_candidates(params, terrain=terrain)
    if terrain:
        out |= _diffraction_candidates(params)
    if landcover:
        out |= _foliage_candidates(params)
    if params.path_loss != "itm":
        try:
            dataclasses.replace(params, path_loss="itm")
        except ParameterError:
            pass  # not offered by this version
        else:
            out["path_loss=itm"] = {"path_loss": "itm"}
    return out


def _height_candidates(params: ModelParams, *, terrain: bool) -> dict[str, dict]:
    """The Hata height readings other than the one given.

    The effective height needs the terrain's profiles (the mast height without).
    """
    return {f"hata_height={height}": {"hata_height": height} for height in HATA_HEIGHTS
            if height != params.hata_height and (height != "effective" or terrain)}


def _diffraction_candidates(params: ModelParams) -> dict[str, dict]:
    """The diffraction scales, and the diffraction methods other than the one given."""
    out: dict[str, dict] = {f"diffraction_scale={scale:g}": {"diffraction_scale": scale}
                            for scale in DIFFRACTION_SCALES}
    out |= {f"diffraction={method}": {"diffraction": method}
            for method in DIFFRACTION_METHODS if method != params.diffraction}
    return out


def _foliage_candidates(params: ModelParams) -> dict[str, dict]:
    """The foliage losses other than the one given (none: no loss per decade either)."""
    return {f"foliage_loss_db={loss:g}": {
                "foliage_loss_db": loss,
                "foliage_db_per_decade": params.foliage_db_per_decade if loss else 0.0}
            for loss in FOLIAGE_LOSSES_DB if loss != params.foliage_loss_db}


def trend_stride(grid: Grid) -> int:
    """Spacing (cells) of the lattice the candidates' open-field levels are taken from.

    Every second cell, or wider on grids so large that the lattice would pass
    :data:`coverage.model.calibration.TREND_SAMPLE` cells (the sample the whole-grid trend
    takes at most).
    """
    return max(2, math.ceil(math.sqrt(grid.shape[0] * grid.shape[1] / TREND_SAMPLE)))


def _lattice(grid: Grid, stride: int) -> np.ndarray:
    """Flat indices of every ``stride``-th cell of every ``stride``-th row."""
    rows = np.arange(0, grid.shape[0], stride)
    cols = np.arange(0, grid.shape[1], stride)
    return (rows[:, None] * grid.shape[1] + cols[None, :]).ravel()


#: A candidate's held-out error at its best calibration weight, and its unserved tests
#: (None: too few tests).
Scored = tuple[HeldOut, np.ndarray] | None


def _score_group(item: tuple[dict[str, dict], bool], *, towers: gpd.GeoDataFrame,
                 grid: Grid, measurements: gpd.GeoDataFrame, params: ModelParams,
                 cells: np.ndarray, lattice: np.ndarray, dem: Raster | None,
                 population: Raster | None, landcover: Raster | None, seed: int,
                 service_dbm: Mapping[str, float] | None) -> dict[str, Scored]:
    """Candidates scored together (one engine task), and with ``item[1]`` the second round.

    ``item`` is (named changes, combine). Candidates that share a sweep
    (:func:`coverage.model.variants.shares_sweep`) are predicted from one
    (:func:`coverage.model.variants.predict_variants`), a lone one alone. With
    ``combine``, the group holds the defaults and every candidate of a dimension, so its
    errors are all :func:`combined_candidates` reads: the second round's candidates are
    scored here too, from a second sweep.

    ``grid`` is the coarse grid, ``params`` the parameters on it; the candidates are
    predicted at ``cells`` only (the tests' and the ``lattice``'s). Each score is the one
    the candidate gets alone, to the bit.
    """
    group, combine = item
    kw = dict(towers=towers, grid=grid, measurements=measurements, params=params,
              cells=cells, lattice=lattice, dem=dem, population=population,
              landcover=landcover, seed=seed, service_dbm=service_dbm)
    got = _score_together(group, **kw)
    if combine:
        more = combined_candidates(group, {k: v[0].mean for k, v in got.items()
                                           if v is not None})
        got.update(_score_together(more, **kw))
    return got


def _score_together(group: dict[str, dict], *, towers: gpd.GeoDataFrame, grid: Grid,
                    measurements: gpd.GeoDataFrame, params: ModelParams, cells: np.ndarray,
                    lattice: np.ndarray, dem: Raster | None, population: Raster | None,
                    landcover: Raster | None, seed: int,
                    service_dbm: Mapping[str, float] | None) -> dict[str, Scored]:
    """Each candidate's score, the candidates predicted from one sweep when there are several.

    The clutter map reads none of the settings the candidates of a shared sweep change
    (:data:`coverage.model.variants.LEVEL_FIELDS`): one serves them all.
    """
    if not group:
        return {}
    models = [dataclasses.replace(params, **changes) for changes in group.values()]
    clutter = clutter_map(grid, models[0], population=population, landcover=landcover)
    if len(models) > 1:
        surfaces = predict_variants(towers, grid, dem=dem, variants=models, only=cells,
                                    clutter=clutter)
    else:
        surfaces = [predict_coverage(towers, grid, dem=dem, params=models[0],
                                     clutter=clutter, only=cells)]
    return {name: _score(s, p, measurements=measurements, lattice=lattice, seed=seed,
                         service_dbm=service_dbm)
            for name, s, p in zip(group, surfaces, models, strict=True)}


def _score(surfaces: CoverageSurfaces, p: ModelParams, *, measurements: gpd.GeoDataFrame,
           lattice: np.ndarray, seed: int, service_dbm: Mapping[str, float] | None
           ) -> Scored:
    """One candidate's held-out error at its best calibration weight, and its unserved tests.

    The second item flags the held-out tests that found no service
    (:func:`unserved_tests`), in the errors' order. None: too few tests.

    ``surfaces`` is the candidate's model ``p`` at the tests' cells and the ``lattice``'s.
    """
    obs = layer_observations(surfaces, measurements, (*BROADBAND_TECHS, "2G"))
    if not len(obs):
        return None
    obs = cv_observations(obs, p, seed)
    keys = {(str(o), str(t)) for o, t in obs[["operator", "tech"]].drop_duplicates()
            .to_numpy()}
    trends = {k: open_trend(surfaces.layers[k].reshape(-1)[lattice],
                            surfaces.distance_m[k].reshape(-1)[lattice])
              for k in sorted(keys) if k in surfaces.layers and k in surfaces.distance_m}
    got = calibration_cv(obs, p, trends, seed=seed, service_dbm=service_dbm)
    if got is None:
        return None
    # the held-out errors come fold by fold (calibration_cv): the flags in that order
    order = np.argsort(block_folds(obs, p, seed), kind="stable")
    return (min(got.values(), key=lambda h: h.mean),
            unserved_tests(obs, service_dbm)[order])


def _groups(cands: dict[str, dict], params: ModelParams, *, share: bool,
            combine: bool = True) -> list[tuple[dict[str, dict], bool]]:
    """A round's engine tasks (:func:`_score_group`): (named changes, combine).

    With ``share`` (a DEM), the candidates that share a sweep with ``params``
    (:func:`coverage.model.variants.shares_sweep`) form one task, which also scores the
    second round when it holds the defaults and every candidate of a dimension (and
    ``combine``); every other candidate is a task of its own, ITM (three times the
    others' cost) first, so that the workers finish nearly together.
    """
    together = {k: c for k, c in cands.items()
                if share and shares_sweep(params, dataclasses.replace(params, **c))}
    if len(together) < 2:
        together = {}
    alone = sorted((k for k in cands if k not in together),
                   key=lambda k: cands[k].get("path_loss") != "itm")
    out = [({k: cands[k]}, False) for k in alone]
    if together:
        dims = [k for k, c in cands.items() if c and all(f in DIMENSIONS for f in c)]
        inside = combine and "as given" in together and all(k in together for k in dims)
        out.append((together, inside))
    return out


def unserved_tests(obs, service_dbm: Mapping[str, float] | None = None) -> np.ndarray:
    """Which observations found no service at the threshold of their technology.

    No service or fallen back under the layer's technology (``censored``), or a level
    under the threshold (:data:`coverage.model.crossval.SERVICE_DBM`, or ``service_dbm``):
    the complement of what :func:`coverage.model.crossval.held_out_error` scores as served.
    """
    thr = obs.tech.map({**SERVICE_DBM, **dict(service_dbm or {})}).to_numpy(float)
    return obs.censored.to_numpy(bool) | ~(obs.observed.to_numpy(float) >= thr)


def combined_candidates(cands: Mapping[str, dict], errors: Mapping[str, float]
                        ) -> dict[str, dict]:
    """The second round: pairs and the triple of each dimension's best single change.

    ``cands`` are the first round's candidates (:func:`structure_candidates`) and
    ``errors`` their held-out errors. In each dimension (:data:`DIMENSIONS`) the change
    with the lowest error is kept where it is lower than ``"as given"``'s by
    :data:`coverage.model.crossval.STAGE_TOLERANCE` (1%); every
    combination of two or three kept changes is a candidate, named by its parts joined
    with ``" + "``. Empty without ``"as given"``'s error or with fewer than two kept.
    """
    if "as given" not in errors:
        return {}
    best: dict[str, str] = {}
    for name, change in cands.items():
        dims = {DIMENSIONS.get(k) for k in change}
        if len(dims) != 1 or None in dims or name not in errors:
            continue
        (dim,) = dims
        if errors[name] < errors["as given"] * (1 - STAGE_TOLERANCE) and (
                dim not in best or errors[name] < errors[best[dim]]):
            best[dim] = name
    kept = [best[d] for d in ("height", "diffraction", "foliage") if d in best]
    out: dict[str, dict] = {}
    for r in range(2, len(kept) + 1):
        for combo in itertools.combinations(kept, r):
            out[" + ".join(combo)] = {k: v for name in combo for k, v in cands[name].items()}
    return out


def pick_structure(held: Mapping[str, HeldOut], unserved: np.ndarray) -> str:
    """The candidate the tests support: ``"as given"`` unless one does better.

    Among the candidates no worse than ``"as given"`` at the ``unserved`` tests (summed
    held-out error there; ``unserved`` flags the tests in ``held``'s order), the one with
    the lowest mean held-out error, taken if it is better than ``"as given"`` by
    :meth:`coverage.model.crossval.HeldOut.better_than`.
    """
    base = held["as given"]
    limit = float(np.sum(base.error[unserved]))

    def guarded(h: HeldOut) -> bool:
        return len(h.error) != len(base.error) or float(np.sum(h.error[unserved])) <= limit

    fair = [k for k, h in held.items() if k != "as given" and guarded(h)]
    if not fair:
        return "as given"
    best = min(fair, key=lambda k: held[k].mean)
    return best if held[best].better_than(base) else "as given"


def choose_structure(towers: gpd.GeoDataFrame, grid: Grid, measurements: gpd.GeoDataFrame,
                     params: ModelParams, *, dem: Raster | None = None,
                     population: Raster | None = None, landcover: Raster | None = None,
                     seed: int = 0, service_dbm: Mapping[str, float] | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     engine: Engine | None = None
                     ) -> tuple[ModelParams, StructureChoice]:
    """The model parameters whose structure the province's tests support best.

    Parameters
    ----------
    towers : GeoDataFrame
        Active transmitters (any CRS).
    grid : Grid
        The analysis grid; candidates are predicted on one :data:`COARSE_FACTOR` coarser.
    measurements : GeoDataFrame or DataFrame
        The tests (:func:`coverage.io.read_measurements`).
    params : ModelParams
        The parameters as given; candidates change one setting each, then two or three
        (:func:`combined_candidates`).
    dem, population, landcover : Raster, optional
        As for the prediction and its clutter.
    seed : int
        Seed of the folds.
    service_dbm : mapping, optional
        Thresholds of service per technology the held-out tests are scored at, dBm
        (:func:`coverage.model.crossval.held_out_error`; the contract's by default).
    progress : callable, optional
        ``progress(done, total)`` over the candidates (the total grows by the second
        round's).
    engine : Engine, optional
        Where the candidates are scored (in this process by default); the choice does
        not depend on it.

    Returns
    -------
    (ModelParams, StructureChoice)
        ``params`` with the chosen changes (:func:`pick_structure`), and the choice with
        every candidate's error.
    """
    cands = structure_candidates(params, dem=dem is not None, landcover=landcover is not None)
    coarse_res = params.resolution_m * COARSE_FACTOR
    coarse = Grid.covering(grid.bounds, coarse_res, grid.crs)
    row, col, inside = coarse.index(*measurement_xy(measurements, coarse.crs))
    lattice = _lattice(coarse, trend_stride(coarse))
    cells = np.union1d(row[inside] * coarse.shape[1] + col[inside], lattice)
    on_coarse = dataclasses.replace(params, resolution_m=coarse_res, terrain_resolution_m=None)
    shared = dict(towers=towers, grid=coarse, measurements=measurements, params=on_coarse,
                  cells=cells, lattice=lattice, dem=dem, population=population,
                  landcover=landcover, seed=seed, service_dbm=service_dbm)
    got: dict[str, Scored] = {}

    def score(groups: list[tuple[dict[str, dict], bool]], total: int) -> None:
        for part in (engine or Engine()).map(_score_group, groups, **shared):
            got.update(part)
        if progress is not None:
            progress(len(got), total)

    groups = _groups(cands, on_coarse, share=dem is not None)
    if dem is not None:
        warm_compiled_sweep()  # once, here: every later pool's workers inherit it
    score(groups, len(cands))
    more = combined_candidates(cands, {k: v[0].mean for k, v in got.items()
                                       if k in cands and v is not None})
    if more and not any(combine for _, combine in groups):
        score(_groups(more, on_coarse, share=dem is not None, combine=False),
              len(cands) + len(more))
    cands = {**cands, **more}
    scored = {k: got[k] for k in cands if got[k] is not None}
    held = {k: h for k, (h, _) in scored.items()}
    errors = {k: h.mean for k, h in held.items()}
    if "as given" not in held:
        choice = StructureChoice("as given", {}, errors, "too few tests to cross-validate")
        return params, choice
    best = pick_structure(held, scored["as given"][1])
    reason = (f"blocked {params.cv_folds}-fold CV at {coarse_res:g} m, Brier score of "
              "service: " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items())
              + "; no worse than as given at the tests without service")
    choice = StructureChoice(best, cands[best], errors, reason)
    log.info("model structure: %s (%s)", best, reason)
    return dataclasses.replace(params, **cands[best]), choice
