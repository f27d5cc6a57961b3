"""Whole runs composed from the stages: classify, plan, and the demo.

Each function reads nothing it is not given and prints nothing; the CLI and notebooks call
these. Inputs are paths or already-read objects.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import io
from .classify import classify_villages, fuse_for
from .classify.corrections import match_corrections
from .engine import Engine, engine_from_config, predict_coverage_tiled
from .errors import RepairWarning
from .model import CoverageSurfaces, Grid, clutter_map, predict_coverage
from .model.structure import choose_structure
from .params import (
    BROADBAND_TECHS,
    CostModel,
    ModelParams,
    PlanParams,
    Profile,
    from_mapping,
    get_profile,
    load_config,
)
from .plan import PlanResult, plan_rollout

__all__ = [
    "Inputs",
    "Settings",
    "analysis_grid",
    "fused_surfaces",
    "load_inputs",
    "run_classify",
    "run_plan",
    "select_towers",
]

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
#: The demo's whole-run config, a commented example of every setting.
DEMO_CONFIG = Path(__file__).parent / "datasets" / "demo.toml"


@dataclass(frozen=True)
class Settings:
    """Profile and parameters of a run, as read from a config file.

    ``engine`` is the file's ``[engine]`` table (:func:`coverage.engine.engine_from_config`),
    None without one: where the parallel stages run, which never changes a result.
    """

    profile: Profile = field(default_factory=lambda: get_profile("vn-2025"))
    model: ModelParams = field(default_factory=ModelParams)
    plan: PlanParams = field(default_factory=PlanParams)
    engine: Engine | None = None

    @classmethod
    def from_config(cls, path: PathLike | None = None, *, profile: str | None = None
                    ) -> Settings:
        """Settings from a TOML file's profile, model, plan, costs and engine tables.

        ``profile`` (the CLI's ``--profile``) wins over the file's ``profile.name``.
        """
        config: dict[str, Any] = load_config(path) if path else {}
        prof = dict(config.get("profile", {}))
        name = profile or prof.pop("name", "vn-2025")
        prof.pop("name", None)
        plan_cfg = dict(config.get("plan", {}))
        if "costs" in config:
            plan_cfg["costs"] = from_mapping(CostModel, config["costs"])
        return cls(
            profile=get_profile(name, **prof),
            model=from_mapping(ModelParams, config.get("model", {})),
            plan=from_mapping(PlanParams, plan_cfg),
            engine=engine_from_config(config.get("engine"), where=str(path)),
        )


@dataclass
class Inputs:
    """Everything read for a run; absent inputs are None."""

    villages: gpd.GeoDataFrame
    towers: gpd.GeoDataFrame
    measurements: gpd.GeoDataFrame | None = None
    population: io.Raster | None = None
    dem: io.Raster | None = None
    access: pd.DataFrame | None = None
    fibre: gpd.GeoDataFrame | None = None
    roads: Any = None
    candidates: gpd.GeoDataFrame | None = None
    landcover: io.Raster | None = None


def load_inputs(
    villages: PathLike,
    *,
    towers: Sequence[PathLike] = (),
    measurements: Sequence[PathLike] = (),
    population: PathLike | None = None,
    dem: PathLike | Sequence[PathLike] | None = None,
    access: PathLike | None = None,
    fibre: PathLike | None = None,
    roads: PathLike | None = None,
    candidates: PathLike | None = None,
    landcover: PathLike | None = None,
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    columns: dict[str, dict[str, str]] | None = None,
    assume_crs: str | None = None,
) -> Inputs:
    """Read every input of a run (see :mod:`coverage.io` for each format).

    ``dem`` may name several files (DEM tiles side by side): they are mosaicked
    (:func:`coverage.io.mosaic`).

    ``columns`` maps contract names to the files' columns by input kind, as
    :func:`coverage.io.column_mapping` returns.
    """
    columns = columns or {}
    return Inputs(
        villages=io.read_villages(villages, id_col=id_col, name_col=name_col, pop_col=pop_col,
                                  columns=columns.get("villages"), assume_crs=assume_crs),
        towers=(io.read_towers(list(towers), columns=columns.get("towers"),
                               assume_crs=assume_crs) if towers else _no_towers()),
        measurements=(io.read_measurements(list(measurements),
                                           columns=columns.get("measurements"),
                                           assume_crs=assume_crs)
                      if measurements else None),
        population=io.read_raster(population, what="population") if population else None,
        dem=io.read_raster(dem, what="DEM") if dem else None,
        landcover=io.read_raster(landcover, what="land cover") if landcover else None,
        access=io.read_access(access, columns=columns.get("access")) if access else None,
        fibre=io.read_fibre(fibre, assume_crs=assume_crs) if fibre else None,
        roads=io.read_roads(roads) if roads else None,
        candidates=(io.read_candidates(candidates, columns=columns.get("candidates"),
                                       assume_crs=assume_crs) if candidates else None),
    )


def _no_towers() -> gpd.GeoDataFrame:
    cols = ["site_id", "operator", "tech", "height_m", "azimuth_deg", "beamwidth_deg",
            "eirp_dbm", "freq_mhz", "status", "backhaul", "source"]
    return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in cols},
                            geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def analysis_grid(villages: gpd.GeoDataFrame, params: ModelParams) -> Grid:
    """The model grid over the villages, in their UTM CRS, with a 2 km margin."""
    crs = io.metric_crs(villages)
    bounds = tuple(villages.to_crs(crs).total_bounds)
    return Grid.covering(bounds, params.resolution_m, crs, pad_m=2000.0)


def select_towers(towers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
                  params: ModelParams) -> gpd.GeoDataFrame:
    """Towers within ``max_range_km`` of some village; the others are reported and left out."""
    if towers.empty:
        return towers
    crs = io.metric_crs(villages)
    # within reach of some village: a tree query, not a union of 100,000 polygons
    tree = shapely.STRtree(villages.to_crs(crs).geometry.to_numpy())
    near = tree.query_nearest(towers.geometry.to_crs(crs).to_numpy(),
                              max_distance=params.max_range_km * 1000.0, all_matches=False)
    far = np.ones(len(towers), dtype=bool)
    far[near[0]] = False
    if far.any():
        ids = sorted(set(towers.loc[far, "site_id"].astype(str)))
        warnings.warn(
            f"{len(ids)} site(s) lie more than {params.max_range_km:g} km from every village "
            f"and are left out: {', '.join(ids[:10])}{'...' if len(ids) > 10 else ''}",
            RepairWarning, stacklevel=2)
    return towers[~far].reset_index(drop=True)


def run_classify(
    inputs: Inputs,
    *,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    corrections: pd.DataFrame | None = None,
    engine: Engine | None = None,
) -> tuple[gpd.GeoDataFrame, CoverageSurfaces]:
    """Model coverage from the active towers and classify every village.

    ``corrections`` (from :func:`coverage.classify.read_corrections`) are checked against
    the villages before any modelling, then applied with their provenance.
    ``engine`` (:mod:`coverage.engine`) runs the model by tiles and the zonal statistics by
    chunks of villages, on this machine or a Dask cluster; without one (the default) the
    stages run whole, in this process. The results are the same.
    """
    settings = settings or Settings()
    if corrections is not None:
        match_corrections(corrections, inputs.villages["village_id"])
    grid = analysis_grid(inputs.villages, settings.model)
    towers = select_towers(inputs.towers, inputs.villages, settings.model)
    active = towers[towers["status"] == "active"]
    surfaces = model_coverage(active, grid, inputs, settings.model, profile=settings.profile,
                              engine=engine, progress=progress)
    classified = classify_villages(
        inputs.villages, surfaces, measurements=inputs.measurements,
        population=inputs.population, access=inputs.access, profile=settings.profile,
        towers=active, fibre=inputs.fibre, corrections=corrections, engine=engine)
    return classified, surfaces


def model_coverage(active: gpd.GeoDataFrame, grid: Grid, inputs: Inputs, model: ModelParams,
                   *, profile: Profile | None = None, engine: Engine | None = None,
                   progress: Callable[[int, int], None] | None = None) -> CoverageSurfaces:
    """The active sites' coverage on ``grid``, the model's structure chosen by the tests.

    With tests and ``model.select_structure``, :func:`coverage.model.structure.
    choose_structure` picks the structure by blocked cross-validation first; the choice is
    in ``surfaces.choices["structure"]`` (and the log); the tests' service is scored at
    ``profile``'s outdoor thresholds. ``engine`` runs the model by tiles.
    """
    structure = None
    if model.select_structure and inputs.measurements is not None \
            and not inputs.measurements.empty:
        profile = profile or get_profile("vn-2025")
        service = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
        model, structure = choose_structure(active, grid, inputs.measurements, model,
                                            dem=inputs.dem, population=inputs.population,
                                            landcover=inputs.landcover,
                                            service_dbm={**service, "2G": profile.gsm_dbm})
    clutter = clutter_map(grid, model, population=inputs.population,
                          landcover=inputs.landcover)
    if engine is None:
        surfaces = predict_coverage(active, grid, dem=inputs.dem, params=model,
                                    progress=progress, clutter=clutter)
    else:
        surfaces = predict_coverage_tiled(active, grid, dem=inputs.dem, params=model,
                                          engine=engine, progress=progress, clutter=clutter)
    if structure is not None:
        surfaces.choices["structure"] = structure.as_dict()
    return surfaces


def fused_surfaces(surfaces: CoverageSurfaces, measurements: gpd.GeoDataFrame | None, *,
                   profile: Profile) -> CoverageSurfaces:
    """The modelled surfaces fused with the tests, once for a classification and its plan.

    :func:`coverage.classify.fuse_for` (the fusion within ``profile.measurement_radius_m``
    that :func:`coverage.classify.classify_villages` and :func:`coverage.plan.plan_rollout`
    each do when not given the result, ``fused=`` and ``existing=``); ``surfaces`` itself
    when there are no tests. Fusing once saves the plan a second fusion of every layer (a
    fifth of the plan's time on a national run) and the memory of a second fused copy.
    """
    if measurements is None or measurements.empty:
        return surfaces
    return fuse_for(surfaces, measurements, profile)


def run_plan(
    classified: gpd.GeoDataFrame,
    inputs: Inputs,
    *,
    budget: float | None = None,
    max_sites: int | None = None,
    settings: Settings | None = None,
    existing: CoverageSurfaces | None = None,
    engine: Engine | None = None,
    fused: CoverageSurfaces | None = None,
    **options: Any,
) -> PlanResult:
    """Plan rollout for classified villages (``inputs.villages`` is not used).

    ``options`` go to :func:`coverage.plan.plan_rollout` (``phases``, ``province_budgets``,
    ``locked``, ``sweep``, ``exact``, ``progress``...). ``engine`` (:mod:`coverage.engine`)
    runs the existing sites' model by tiles and the candidates' coverage by batches, here
    or on a Dask cluster; the plan is the same. ``fused``: the existing sites' coverage
    already fused with ``inputs.measurements`` (:func:`fused_surfaces`, as the
    classification used it); the plan takes it as is instead of modelling and fusing
    again, with the same result.
    """
    settings = settings or Settings()
    measurements = inputs.measurements
    if fused is not None:
        existing, measurements = fused, None
    grid = existing.grid if existing is not None else analysis_grid(classified, settings.model)
    towers = select_towers(inputs.towers, classified, settings.model)
    return plan_rollout(
        classified, towers, grid, budget=budget, max_sites=max_sites,
        candidates=inputs.candidates, population=inputs.population, dem=inputs.dem,
        landcover=inputs.landcover,
        fibre=inputs.fibre, roads=inputs.roads, access=inputs.access,
        measurements=measurements, existing=existing,
        profile=settings.profile, model_params=settings.model, params=settings.plan,
        engine=engine, **options)


def summarize(classified: gpd.GeoDataFrame) -> pd.DataFrame:
    """Villages and people per class, in the contract's class order."""
    pop = pd.to_numeric(classified["population"], errors="coerce")
    table = classified.assign(_pop=pop).groupby("class").agg(
        villages=("village_id", "size"), people=("_pop", "sum"))
    order = ["unavailable", "available_inaccessible", "served"]
    table = table.reindex(order).fillna(0)
    table["villages"] = table["villages"].astype(int)
    table["people"] = np.round(table["people"]).astype(int)
    return table


@dataclass
class DemoResult:
    """What ``covgap demo`` produced."""

    classified: gpd.GeoDataFrame
    plan: PlanResult
    outputs: dict[str, Path]
    summary: pd.DataFrame


def run_demo(
    out_dir: PathLike = "out",
    *,
    map_path: PathLike | None = None,
    budget: float | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Classify, plan, map and export the embedded demo province.

    This is :func:`coverage.scenario.run_config` on :data:`DEMO_CONFIG`: it writes
    ``classified.gpkg``, ``classified.csv``, ``plan.csv``, ``plan.gpkg``, ``priority.csv``,
    ``priority.xlsx`` and ``manifest.json`` under ``out_dir`` and the map to ``map_path``
    (default ``maps/demo.html``). The default budget is 40 billion VND.
    """
    from .scenario import run_config  # the scenario layer sits on top of this module

    run = run_config(DEMO_CONFIG, out_dir=out_dir, map_path=map_path or "maps/demo.html",
                     budget=budget, overwrite=overwrite, progress=progress)
    result = run.result
    return DemoResult(result.classified, result.plan, run.outputs, summarize(result.classified))
