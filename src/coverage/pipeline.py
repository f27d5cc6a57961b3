"""Whole runs composed from the stages: the older functional entry points.

:func:`coverage.execute.execute` is the one run path; the functions here are its steps on
already-read inputs (:func:`run_classify`, :func:`run_plan`) and the demo
(:func:`run_demo`), kept for notebooks and scripts that call them. Each function reads
nothing it is not given and prints nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from .classify import classify_villages, fuse_for
from .classify.corrections import match_corrections
from .engine import Engine
from .execute import execute, model_surfaces, summarize
from .inputs import Inputs, analysis_grid, load_inputs, select_towers
from .model import CoverageSurfaces
from .params import Profile
from .plan import PlanResult, plan_rollout
from .settings import Settings, read_run_file
from .spec import DEMO_CONFIG

__all__ = [
    "DEMO_CONFIG",
    "DemoResult",
    "Inputs",
    "Settings",
    "analysis_grid",
    "fused_surfaces",
    "load_inputs",
    "run_classify",
    "run_demo",
    "run_plan",
    "select_towers",
    "summarize",
]

PathLike = str | os.PathLike[str]


def run_classify(
    inputs: Inputs,
    *,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    corrections: pd.DataFrame | None = None,
    engine: Engine | None = None,
) -> tuple[gpd.GeoDataFrame, CoverageSurfaces]:
    """Model coverage from the active towers and classify every village.

    The steps of :class:`coverage.execute.Run` on inputs already read.
    ``corrections`` (from :func:`coverage.classify.read_corrections`) are checked against
    the villages before any modelling, then applied with their provenance.
    """
    settings = settings or Settings()
    if corrections is not None:
        match_corrections(corrections, inputs.villages["village_id"])
    surfaces = model_surfaces(inputs, settings.model, engine=engine, progress=progress,
                              profile=settings.profile)
    towers = select_towers(inputs.towers, inputs.villages, settings.model)
    classified = classify_villages(
        inputs.villages, surfaces, measurements=inputs.measurements,
        population=inputs.population, access=inputs.access, profile=settings.profile,
        towers=towers[towers["status"] == "active"], fibre=inputs.fibre,
        coverage=inputs.coverage, corrections=corrections, engine=engine)
    return classified, surfaces


def fused_surfaces(surfaces: CoverageSurfaces, measurements: gpd.GeoDataFrame | None, *,
                   profile: Profile) -> CoverageSurfaces:
    """The modelled surfaces fused with the tests, once for a classification and its plan.

    :func:`coverage.classify.fuse_for`; ``surfaces`` itself when there are no tests.
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
    ``locked``, ``sweep``, ``exact``, ``progress``...). ``fused``: the existing sites'
    coverage already fused with ``inputs.measurements`` (:func:`fused_surfaces`); the plan
    takes it as is instead of modelling and fusing again, with the same result.
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

    :func:`coverage.execute.execute` on :data:`DEMO_CONFIG`: it writes ``classified.gpkg``,
    ``classified.csv``, ``plan.csv``, ``plan.gpkg``, ``priority.csv``, ``priority.xlsx``
    and ``manifest.json`` under ``out_dir`` and the map to ``map_path`` (default
    ``maps/demo.html``). The default budget is 40 billion VND.
    """
    import dataclasses

    spec = read_run_file(DEMO_CONFIG)
    spec = spec.replace(outputs=dataclasses.replace(
        spec.outputs, dir=Path(out_dir), map=Path(map_path or "maps/demo.html")))
    if budget is not None:
        spec = spec.replace(params={"budget": budget})
    done = execute(spec, progress=progress, overwrite=overwrite)
    return DemoResult(done.classified, done.plan, done.outputs, summarize(done.classified))
