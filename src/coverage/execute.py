"""One run path: load -> model -> fuse -> classify -> plan -> outputs.

:func:`execute` runs a :class:`coverage.spec.RunSpec`. Every door goes through it:
``covgap classify``, ``plan``, ``run`` and ``demo`` build a spec from their options and
call it, and :class:`coverage.scenario.Scenario` runs its steps through :class:`Run`, so
a study and a command on the same inputs and parameters give the same numbers, with the
same features (corrections, phases, province budgets, locks, sweeps, sharing, manifests).

Each step of a :class:`Run` is remembered in a :class:`RunCache` the caller holds, keyed
by content (the input files' sizes and modification times, and the parameters the step
depends on), so a study of many scenarios reads its inputs once and models its surfaces
once per model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from . import io
from ._threads import one_blas_thread
from .classify import (
    EXTRA_COLUMNS,
    OUTPUT_COLUMNS,
    apply_profile,
    classify_villages,
    fuse_for,
    village_metrics,
)
from .classify.corrections import match_corrections, read_corrections
from .engine import Engine, engine_from_config
from .errors import OutputExistsError, ParameterError, RepairWarning, SchemaError
from .inputs import (
    Inputs,
    analysis_grid,
    load_inputs,
    select_towers,
    warn_unknown_landcover,
)
from .model import CoverageSurfaces, clutter_map, predict_coverage_tiled
from .model.structure import choose_structure
from .params import BROADBAND_TECHS, ModelParams, Profile, get_profile
from .plan import PlanInputs, PlanLimits, PlanResult, plan_sites
from .spec import InputPaths, OutputSpec, RunSpec, ScenarioParams

__all__ = [
    "Progress",
    "Run",
    "RunCache",
    "RunResult",
    "execute",
    "model_surfaces",
    "summarize",
    "village_weights",
    "write_outputs",
]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- cache
class RunCache:
    """The remembered steps of runs: inputs, surfaces, fusions, classifications, plans.

    Each kind keeps its ``size`` most recent entries. Hold one for a study and pass it to
    every run (:class:`coverage.scenario.Scenario` shares :data:`DEFAULT_CACHE` unless
    given its own); :meth:`clear` forgets everything.
    """

    KINDS = ("inputs", "surfaces", "fused", "classified", "plan")

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[str, OrderedDict[str, Any]] = {k: OrderedDict() for k in self.KINDS}
        self._hashes: dict[tuple[str, int, int], str] = {}

    def remember(self, kind: str, key: str, make: Callable[[], Any]) -> Any:
        """The entry of ``kind`` under ``key``, made (and kept) when absent."""
        cache = self._entries[kind]
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = make()
        cache[key] = value
        while len(cache) > self.size:
            cache.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry and file hash."""
        for cache in self._entries.values():
            cache.clear()
        self._hashes.clear()

    def sha256(self, path: str | os.PathLike[str]) -> str:
        """SHA-256 of a file's bytes (remembered by path, size and modification time)."""
        path = Path(path)
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            self._hashes[key] = h.hexdigest()
        return self._hashes[key]


#: The cache :class:`coverage.scenario.Scenario` objects share unless given their own.
DEFAULT_CACHE = RunCache()


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _stamp(paths: InputPaths) -> str:
    """Key of a set of inputs: paths, column mapping and each file's size and mtime."""
    stats = {}
    for key, p in paths.files().items():
        try:
            st = Path(p).stat()
            stats[key] = (str(Path(p).resolve()), st.st_size, st.st_mtime_ns)
        except OSError:
            stats[key] = (str(p), None, None)  # io reports the missing file when reading
    return _key(paths.to_dict(), stats)


# --------------------------------------------------------------------------- steps
def model_surfaces(inputs: Inputs, params, *, engine: Engine | None = None,
                   progress: Progress | None = None,
                   profile: Profile | None = None) -> CoverageSurfaces:
    """Modelled coverage of the active towers near the villages, on the analysis grid.

    The model runs through ``engine`` (in this process by default): one code path
    whatever the engine, with the same result. With tests and ``params.select_structure``,
    the model's structure is chosen by them first
    (:func:`coverage.model.structure.choose_structure`, their service scored at
    ``profile``'s thresholds); the choice is in ``surfaces.choices["structure"]``.
    """
    grid = analysis_grid(inputs.villages, params)
    towers = select_towers(inputs.towers, inputs.villages, params)
    active = towers[towers["status"] == "active"]
    structure = None
    tests = inputs.measurements
    if params.select_structure and tests is not None and not tests.empty:
        profile = profile or get_profile("vn-2025")
        service = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
        params, structure = choose_structure(
            active, grid, tests, params, dem=inputs.dem, population=inputs.population,
            landcover=inputs.landcover, service_dbm={**service, "2G": profile.gsm_dbm},
            engine=engine)
    clutter = clutter_map(grid, params, population=inputs.population,
                          landcover=inputs.landcover)
    surfaces = predict_coverage_tiled(active, grid, dem=inputs.dem, params=params,
                                      engine=engine, progress=progress, clutter=clutter)
    if structure is not None:
        surfaces.choices["structure"] = structure.as_dict()
    return surfaces


def village_weights(villages: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """Priority weight of each village's people from ``column`` (1 where empty), or None.

    Raises
    ------
    ParameterError
        When the column is missing or holds a negative weight.
    """
    if column is None:
        return None
    if column not in villages.columns:
        raise ParameterError(f"weight_col {column!r}: no such column in the villages; "
                             f"columns: {', '.join(map(str, villages.columns))}")
    weight = pd.to_numeric(villages[column], errors="coerce").fillna(1.0)
    if (weight < 0).any():
        raise ParameterError(f"weight_col {column!r} has negative weights")
    return weight.to_numpy(dtype=float)


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


def subscriber_weights(operators: Iterable[str], given: Any) -> dict[str, float]:
    """Weight of each operator's network without sharing: ``market_share`` normalised, or equal.

    Not :func:`coverage.classify.noservice.market_shares`, which estimates the shares from
    the tests for the no-service rule; here the user states them (or none, and each network
    counts alike).
    """
    ops = list(operators)
    if not given:
        return {op: 1.0 / len(ops) for op in ops} if ops else {}
    total = float(sum(given.values()))
    return {op: float(given.get(op, 0.0)) / total for op in ops}


def without_sharing(classified: gpd.GeoDataFrame, surfaces: CoverageSurfaces,
                    inputs: Inputs, params: ScenarioParams) -> gpd.GeoDataFrame:
    """Re-classify with each operator's subscribers counting only their own network."""
    shares = subscriber_weights(surfaces.operators, params.market_share)
    unknown = sorted(set(params.market_share or {}) - set(surfaces.operators))
    if unknown:
        log.warning("market_share names operator(s) without a network here: %s (known: %s)",
                    ", ".join(unknown), ", ".join(surfaces.operators))
    metrics = village_metrics(inputs.villages, surfaces, measurements=inputs.measurements,
                              population=inputs.population, profile=params.profile)
    cols = [c for c in metrics.columns
            if c.startswith(("pop_covered_share", "pop_indoor_share", "pop_2g_share"))]
    mixed = pd.DataFrame(0.0, index=metrics.index, columns=cols)
    tests = inputs.measurements
    for op, share in shares.items():
        if share <= 0:
            continue
        own = CoverageSurfaces(surfaces.grid, {k: v for k, v in surfaces.layers.items()
                                               if k[0] == op}, surfaces.dem)
        # The operator's own tests (and tests that name none) stand for its network.
        own_tests = (tests[tests["operator"].isna() | (tests["operator"] == op)]
                     if tests is not None else None)
        m = village_metrics(inputs.villages, own, measurements=own_tests,
                            population=inputs.population, profile=params.profile)
        mixed += share * m[cols].fillna(0.0).to_numpy()
    metrics[cols] = mixed.to_numpy()
    verdict = apply_profile(metrics, params.profile, access=inputs.access,
                            village_ids=inputs.villages["village_id"])
    out = classified.copy()
    for col in ("class", "reasons", "confidence", "label_stable"):
        if col in verdict.columns:
            out[col] = verdict[col].to_numpy()
    out["pop_covered_share"] = np.round(metrics["pop_covered_share"].to_numpy(float), 4)
    out["pop_indoor_share"] = np.round(np.minimum(metrics["pop_indoor_share"].to_numpy(float),
                                                  metrics["pop_covered_share"]), 4)
    out["explanation"] = (out["explanation"].astype(str).str.rstrip(".")
                          + "; shares weighted by operator market share (no sharing).")
    if "explanation_vi" in out.columns:
        out["explanation_vi"] = (out["explanation_vi"].astype(str).str.rstrip(".")
                                 + "; tỷ lệ tính theo thị phần từng nhà mạng (không dùng chung"
                                 " hạ tầng).")
    return out


# --------------------------------------------------------------------------- a run
class Run:
    """The steps of one :class:`~coverage.spec.RunSpec`, each remembered in a cache.

    Parameters
    ----------
    spec : RunSpec
        Inputs and parameters (its outputs are :func:`write_outputs`' business).
    engine : Engine, optional
        Where the parallel stages run (in this process by default); never changes a result.
    cache : RunCache, optional
        Where steps are remembered (default: a cache of this run alone).
    progress : callable, optional
        ``progress(done, total)`` while modelling.
    """

    def __init__(self, spec: RunSpec, *, engine: Engine | None = None,
                 cache: RunCache | None = None, progress: Progress | None = None) -> None:
        if spec.inputs is None:
            raise ParameterError("the run names no input files: give the villages (and "
                                 "towers...) in its inputs")
        self.spec = spec
        self.engine = engine
        self.cache = cache if cache is not None else RunCache()
        self.progress = progress
        self._stamp = _stamp(spec.inputs)
        # what the tests chose in the classification (the slow curve), once it ran
        self._classify_choices: dict[str, Any] = {}
        # how operators' coverage maps agree with the tests (coverage.classify.claims)
        self._claims: dict[str, Any] | None = None

    @property
    def params(self) -> ScenarioParams:
        """The run's parameters."""
        return self.spec.params

    def load(self) -> Inputs:
        """The inputs, read once per set of files."""
        return self.cache.remember("inputs", self._stamp, self._read_inputs)

    def _read_inputs(self) -> Inputs:
        inputs = load_inputs(**self.spec.inputs.load_kwargs())
        if inputs.landcover is not None:  # its classes are the model's to name
            warn_unknown_landcover(inputs.landcover, self.params.model,
                                   path=self.spec.inputs.landcover)
        return inputs

    def surfaces(self) -> CoverageSurfaces:
        """Modelled coverage of the active towers (per inputs and model parameters)."""
        model, profile = self.params.model, self.params.profile
        # the profile's thresholds score the tests that choose the model's structure
        service = [profile.outdoor_dbm(t) for t in ("3G", "4G")] + [profile.gsm_dbm]
        return self.cache.remember(
            "surfaces", _key(self._stamp, dataclasses.asdict(model), service),
            lambda: model_surfaces(self.load(), model, engine=self.engine,
                                   progress=self.progress, profile=profile))

    def model(self) -> ModelParams:
        """The model the run predicts with: the parameters with the structure the tests chose.

        The surfaces' own parameters (:func:`model_surfaces`: the choice of
        :func:`coverage.model.structure.choose_structure` applied, or the parameters as
        given without tests or with ``select_structure = False``): the existing network's
        coverage and the plan's candidates are predicted with this one model.
        """
        return self.surfaces().params or self.params.model

    def fused(self) -> CoverageSurfaces:
        """The surfaces fused with the tests, for the classification and the plan."""
        model, profile = self.params.model, self.params.profile
        # what the fusion reads of the profile: its radius and the signal thresholds
        reads = [profile.measurement_radius_m, *[(profile.outdoor_dbm(t), profile.indoor_dbm(t))
                                                 for t in BROADBAND_TECHS]]
        key = _key(self._stamp, dataclasses.asdict(model), reads)

        def make() -> CoverageSurfaces:
            tests = self.load().measurements
            surfaces = self.surfaces()
            return (surfaces if tests is None or tests.empty
                    else fuse_for(surfaces, tests, profile, engine=self.engine))

        return self.cache.remember("fused", key, make)

    def _corrections(self, villages: gpd.GeoDataFrame) -> pd.DataFrame | None:
        path = self.spec.inputs.corrections
        if path is None:
            return None
        if not self.params.sharing:
            raise ParameterError("corrections apply to the classification with sharing on; "
                                 "drop the corrections or set sharing = true")
        fixes = read_corrections(path)
        match_corrections(fixes, villages["village_id"])  # before any modelling
        return fixes

    def classified(self) -> gpd.GeoDataFrame:
        """Every village classified (or, for a classified input, its villages as read)."""
        if self.spec.classified_input:
            villages = self.load().villages
            if "class" not in villages.columns:
                raise SchemaError(f"{self.spec.inputs.villages} has no 'class' column: give "
                                  "the output of covgap classify")
            return villages
        p = self.params
        key = _key(self._stamp, dataclasses.asdict(p.model), dataclasses.asdict(p.profile),
                   p.sharing, dict(p.market_share or {}) if not p.sharing else None)

        def make() -> gpd.GeoDataFrame:
            inputs = self.load()
            warn_replaced_columns(inputs.villages, self.spec.inputs.villages)
            fixes = self._corrections(inputs.villages)
            surfaces = self.surfaces()
            towers = select_towers(inputs.towers, inputs.villages, p.model)
            classified = classify_villages(
                inputs.villages, surfaces, measurements=inputs.measurements,
                population=inputs.population, access=inputs.access, profile=p.profile,
                towers=towers[towers["status"] == "active"], fibre=inputs.fibre,
                coverage=inputs.coverage, corrections=fixes, engine=self.engine, fused=self.fused())
            if not p.sharing:
                classified = without_sharing(classified, surfaces, inputs, p)
            return classified

        classified = self.cache.remember("classified", key, make)
        self._classify_choices.update(classified.attrs.get("choices", {}))
        self._claims = classified.attrs.get("coverage_claims", self._claims)
        return classified

    def plan(self) -> PlanResult:
        """The rollout plan under the parameters' limits.

        Raises
        ------
        ParameterError
            When the parameters set no budget, phases or number of sites.
        """
        p = self.params
        if not p.has_plan:
            raise ParameterError(f"run {self.spec.name!r} has no budget: set budget, phases "
                                 "or max_sites in its parameters")
        classified = self.classified()
        key = self._plan_key(classified)
        return self.cache.remember("plan", key, lambda: self._make_plan(classified))

    def _make_plan(self, classified: gpd.GeoDataFrame) -> PlanResult:
        p = self.params
        inputs = self.load()
        if self.spec.classified_input:  # the plan fuses the tests itself, as it always did
            existing, measurements = self.surfaces(), inputs.measurements
        else:  # the classification's fusion, once for both
            existing, measurements = self.fused(), None
        plan_inputs = PlanInputs(
            select_towers(inputs.towers, classified, p.model), existing.grid,
            candidates=inputs.candidates, population=inputs.population, dem=inputs.dem,
            landcover=inputs.landcover, fibre=inputs.fibre, roads=inputs.roads,
            access=inputs.access, measurements=measurements,
            village_weight=village_weights(classified, p.weight_col), existing=existing)
        limits = PlanLimits(budget=p.budget, max_sites=p.max_sites, phases=p.phases,
                            phase_labels=p.phase_labels if p.phases else None,
                            province_budgets=p.province_budgets, locked=p.locked,
                            sweep=p.sweep, exact=p.exact)
        # the candidates are predicted with the model the existing network was (run.model)
        return plan_sites(classified, plan_inputs, limits, profile=p.profile,
                          model_params=self.model(), params=p.plan, progress=self.progress,
                          engine=self.engine)

    def _plan_key(self, classified: gpd.GeoDataFrame) -> str:
        """Everything the plan depends on, so runs with equal plans share one.

        The plan reads the inputs, the villages' classes, people and covered shares, the
        profile's thresholds, the model, plan and cost parameters and the limits; runs
        that differ elsewhere (a rule that moves no village, the market shares of a
        sharing-on run) share one plan.
        """
        p = self.params
        cols = ["village_id", "class", "population", "pop_covered_share"]
        if p.weight_col is not None and p.weight_col in classified.columns:
            cols.append(p.weight_col)
        digest = hashlib.sha256(pd.util.hash_pandas_object(
            pd.DataFrame(classified[cols]), index=False).to_numpy().tobytes()).hexdigest()
        limits = {k: getattr(p, k) for k in ("budget", "max_sites", "phases", "phase_labels",
                                              "province_budgets", "locked", "sweep",
                                              "weight_col", "exact")}
        return _key(self._stamp, dataclasses.asdict(p.model), dataclasses.asdict(p.plan),
                    dataclasses.asdict(p.profile), limits, self.spec.classified_input,
                    digest)

    def manifest(self, step: str) -> dict[str, Any]:
        """What reproduces this run's figures: version, parameters, input hashes."""
        from . import __version__

        files = {key: {"path": str(p), "sha256": self.cache.sha256(p),
                       "bytes": Path(p).stat().st_size}
                 for key, p in self.spec.inputs.files().items() if Path(p).is_file()}
        return {
            "tool": "coverage-gap", "version": __version__, "step": step,
            "scenario": self.spec.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "parameters": self.params.to_dict(),
            # what the tests chose: the model's structure, the fusion's stages
            # (coverage.model.structure, coverage.model.crossval.select_fusion) and, once
            # classified, the slow curve and the speeds' bandwidth
            # (coverage.classify.residents.choose_slow_curve, coverage.classify.survey.
            # choose_bandwidth)
            "model_choices": {**self.fused().choices, **self._classify_choices},
            # the model the existing network (and, for a plan, its candidates) was predicted
            # with: the parameters with the chosen structure applied
            "model_used": dataclasses.asdict(self.model()),
            "inputs": {**{k: v for k, v in self.spec.inputs.to_dict().items()
                          if k in ("id_col", "name_col", "pop_col", "assume_crs")},
                       "files": files},
            # operators' claims against the tests, when maps and tests were given
            **({"coverage_claims": self._claims} if self._claims is not None else {}),
        }


# --------------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    spec : RunSpec
        The run.
    classified : GeoDataFrame
        One row per village with the contract's columns.
    plan : PlanResult or None
        The plan, when the parameters ask for one.
    manifest : dict
        Tool version, parameters, a SHA-256 of every input file, when it was made and the
        files written.
    outputs : dict
        Key -> path of every file written.
    run : Run
        The steps (inputs, surfaces) behind the result.
    """

    spec: RunSpec
    classified: gpd.GeoDataFrame
    plan: PlanResult | None
    manifest: dict
    outputs: dict[str, Path] = field(default_factory=dict)
    run: Run | None = field(default=None, repr=False)

    @property
    def summary(self) -> pd.DataFrame:
        """Villages and people per class."""
        return summarize(self.classified)


#: Columns ``classify`` writes: a villages file holding them gets this run's values.
WRITTEN_COLUMNS = tuple(c for c in (*OUTPUT_COLUMNS, *EXTRA_COLUMNS, "explanation",
                                    "explanation_vi") if c != "population")


def warn_replaced_columns(villages: pd.DataFrame, path: Any) -> None:
    """Warn when input columns carry the names of the columns classify writes.

    Input columns pass through unchanged, except these: the classification's own values
    replace them (a classified file given again as villages, or a column of the user's
    named ``class``).
    """
    taken = [c for c in WRITTEN_COLUMNS if c in villages.columns]
    if taken:
        warnings.warn(
            f"villages file {path}: its column(s) {', '.join(taken)} are replaced by this "
            "run's values of the same names (is it an output of covgap classify?); rename "
            "them to keep them", RepairWarning, stacklevel=2)


def write_manifest(manifest: dict, path: str | os.PathLike[str], *,
                   overwrite: bool = False) -> Path:
    """Write a manifest as JSON, atomically."""
    with io.atomic(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
                             encoding="utf-8")
    return Path(path)


def refuse_existing(paths: Iterable[Path | None], overwrite: bool) -> None:
    """Stop before any work when an output exists and ``overwrite`` is false, or cannot be written.

    An output cannot be written when its folder cannot be made or written to
    (:func:`coverage.io.check_writable`), or when another output has its path
    (:func:`coverage.io.check_distinct`).
    """
    paths = [Path(p) for p in paths if p is not None]
    io.check_distinct(paths)
    for path in paths:  # first: a name too long for the file system cannot even be looked up
        io.check_writable(path)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(existing)} exist(s); pass overwrite (--overwrite) "
                                "to replace, or choose other output paths")


def write_outputs(result: RunResult, outputs: OutputSpec, *, overwrite: bool = False
                  ) -> dict[str, Path]:
    """Write what ``outputs`` asks of a run's result: the one writer of every command.

    Plan, priority and sweep tables go through :func:`coverage.plan.write_plan_table`
    (XLSX formatted for officials: frozen bold header, filter, widths), the classified
    villages and the aggregate through :func:`coverage.io.write_table`; the coverage raster,
    the map and the manifest last (the manifest lists every file written).
    """
    from .plan import write_plan_table

    written: dict[str, Path] = {}
    plan = result.plan
    for key, target in outputs.keyed().items():
        kind = key.split("_")[0]
        if kind == "classified":
            written[key] = io.write_table(result.classified, target, overwrite=overwrite)
        elif kind in ("plan", "priority", "sweep") and plan is not None:
            table = {"plan": plan.sites, "priority": plan.villages, "sweep": plan.curve}[kind]
            if table is not None:
                written[key] = write_plan_table(table, target, overwrite=overwrite,
                                                lang=outputs.lang)
        elif kind == "aggregate":
            from .aggregate import aggregate, read_crosswalk

            cw = read_crosswalk(outputs.crosswalk) if outputs.crosswalk else None
            table = aggregate(result.classified, profile=result.spec.params.profile,
                              crosswalk=cw, crosswalk_on=outputs.crosswalk_on)
            written[key] = io.write_table(table, target, overwrite=overwrite)
        elif kind == "coverage" and result.run is not None:
            s = result.run.surfaces()
            written[key] = io.write_raster(
                io.Raster(s.best(techs=BROADBAND_TECHS), s.grid.transform, s.grid.crs),
                target, overwrite=overwrite, band_names=["best_broadband_dbm"])
        elif kind == "map":
            from . import maps

            loaded = result.run.load() if result.run is not None else None
            m = maps.village_map(result.classified,
                                 plan=plan.sites if plan is not None else None,
                                 towers=loaded.towers if loaded is not None else None,
                                 measurements=loaded.measurements if loaded is not None
                                 else None, title=outputs.title or result.spec.name)
            written[key] = maps.save_map(m, target)  # existence checked before the run
    if "manifest" in outputs.keyed():
        result.manifest["outputs"] = {k: str(v) for k, v in written.items()}
        written["manifest"] = write_manifest(result.manifest, outputs.keyed()["manifest"],
                                             overwrite=overwrite)
    return written


def execute(spec: RunSpec, *, engine: Engine | None = None, cache: RunCache | None = None,
            progress: Progress | None = None, overwrite: bool = False) -> RunResult:
    """Run a spec: load, model, fuse, classify, plan (when asked), write its outputs.

    Parameters
    ----------
    spec : RunSpec
        Inputs, parameters and outputs (:func:`coverage.spec.read_run_file`, or built by
        a command from its options).
    engine : Engine, optional
        Where the parallel stages run. Default: the spec's ``[engine]`` table, else in
        this process. An engine made here from the table is closed at the end.
    cache : RunCache, optional
        Remembered steps, for runs that share inputs or surfaces (default: none shared).
    progress : callable, optional
        ``progress(done, total)`` while modelling.
    overwrite : bool
        Replace outputs that exist; without it, any existing output stops the run before
        any work.

    Returns
    -------
    RunResult

    Raises
    ------
    OutputExistsError
        When an output exists and ``overwrite`` is false.
    """
    refuse_existing(spec.outputs.keyed().values(), overwrite)
    own = None
    if engine is None and spec.engine:
        engine = own = engine_from_config(spec.engine, where=spec.name)
    try:
        run = Run(spec, engine=engine, cache=cache, progress=progress)
        with one_blas_thread():  # the run's linear algebra is small (coverage._threads)
            classified = run.classified()
            plan = run.plan() if spec.params.has_plan else None
        step = "plan" if plan is not None else "classify"
        result = RunResult(spec, classified.copy(), plan, run.manifest(step), run=run)
        if spec.outputs.keyed():
            result.outputs = write_outputs(result, spec.outputs, overwrite=overwrite)
    finally:
        if own is not None:
            own.close()
    return result
