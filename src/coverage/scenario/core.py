"""Scenarios: inputs plus frozen parameters, run with caching, compared side by side.

A :class:`Scenario` pairs :class:`~.options.InputPaths` with :class:`~.options.ScenarioParams`.
Its steps are the pipeline's own functions (:mod:`coverage.pipeline`), so a scenario gives the
same numbers as ``covgap classify`` and ``covgap plan`` on the same inputs. Three caches, keyed
by content, make a study of many scenarios cheap: inputs are read once per set of files (and
re-read when a file changes), coverage surfaces are modelled once per (inputs, model
parameters), and classifications once per (surfaces, profile, sharing).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import platform
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..classify import apply_profile, classify_villages, village_metrics
from ..engine import Engine
from ..errors import ParameterError
from ..model import CoverageSurfaces
from ..pipeline import (
    Inputs,
    Settings,
    analysis_grid,
    fused_surfaces,
    load_inputs,
    model_coverage,
    run_plan,
    select_towers,
    summarize,
)
from ..plan import PlanResult
from .options import InputPaths, ScenarioParams

__all__ = ["Comparison", "Result", "Scenario", "clear_cache", "compare", "file_sha256"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

_CACHE_SIZE = 8
_inputs_cache: OrderedDict[str, Inputs] = OrderedDict()
_surfaces_cache: OrderedDict[str, CoverageSurfaces] = OrderedDict()
_fused_cache: OrderedDict[str, CoverageSurfaces] = OrderedDict()
_classified_cache: OrderedDict[str, gpd.GeoDataFrame] = OrderedDict()
_plan_cache: OrderedDict[str, PlanResult] = OrderedDict()
_hash_cache: dict[tuple[str, int, int], str] = {}


def _remember(cache: OrderedDict, key: str, make: Callable[[], Any]) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every cached input, surface, classification and plan."""
    for cache in (_inputs_cache, _surfaces_cache, _fused_cache, _classified_cache, _plan_cache,
                  _hash_cache):
        cache.clear()


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (cached by path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


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


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """One scenario's outputs and their manifest.

    Attributes
    ----------
    name : str
        The scenario's name.
    classified : GeoDataFrame
        One row per village with the contract's columns.
    plan : PlanResult or None
        The plan, when one was asked for.
    manifest : dict
        Tool version, parameters, a SHA-256 of every input file, and when it was made.
    """

    name: str
    classified: gpd.GeoDataFrame
    plan: PlanResult | None
    manifest: dict

    @property
    def summary(self) -> pd.DataFrame:
        """Villages and people per class."""
        return summarize(self.classified)

    def row(self) -> dict[str, Any]:
        """The scenario's line of :func:`compare`'s table."""
        table = summarize(self.classified)
        out: dict[str, Any] = {"scenario": self.name}
        for cls in table.index:
            out[f"villages_{cls}"] = int(table.loc[cls, "villages"])
        for cls in table.index:
            out[f"people_{cls}"] = int(table.loc[cls, "people"])
        p = self.manifest["parameters"]
        out["budget"] = p["budget"]
        if self.plan is not None:
            s = self.plan.summary
            sites = self.plan.sites
            col = "technology" if "technology" in sites.columns else "kind"
            kinds = sites[col].value_counts() if len(sites) else pd.Series(dtype=int)
            out["sites"] = len(sites)
            for kind in ("macro", "upgrade", "small_cell", "satellite"):
                out[f"n_{kind}"] = int(kinds.get(kind, 0))
            out["plan_cost"] = float(s["cost"])
            out["people_connected"] = float(s["people_connected"])
            out["cost_per_person"] = (float(s["cost"]) / float(s["people_connected"])
                                      if s["people_connected"] > 0 else np.nan)
            lifted = {v for vs in sites.get("villages", []) for v in str(vs).split(";") if v}
            out["villages_lifted"] = len(lifted)
        out["currency"] = p["plan"]["costs"]["currency"]
        return out

    def write_manifest(self, path: str | os.PathLike[str], *, overwrite: bool = False
                       ) -> Path:
        """Write the manifest as JSON, atomically."""
        from ..io import _atomic

        with _atomic(path, overwrite=overwrite) as tmp:
            Path(tmp).write_text(json.dumps(self.manifest, indent=2, ensure_ascii=False,
                                            default=str), encoding="utf-8")
        return Path(path)


# --------------------------------------------------------------------------- scenario
@dataclass(frozen=True)
class Scenario:
    """A what-if study: inputs, parameters and a name; every step cached by content.

    Parameters
    ----------
    inputs : InputPaths
        The input files.
    params : ScenarioParams
        Everything else (profile, model, costs, budget, technologies, sharing).
    name : str
        Label in comparisons.

    Examples
    --------
    >>> base = Scenario.demo(budget=40e9)                                  # doctest: +SKIP
    >>> study = [base, base.replace(name="2x budget", budget=80e9),        # doctest: +SKIP
    ...          base.replace(name="10 Mbps", profile={"min_download_mbps": 10}),
    ...          base.replace(name="no satellite", plan={"satellite_terminals": False})]
    >>> compare(study).table                                                # doctest: +SKIP
    """

    inputs: InputPaths
    params: ScenarioParams = field(default_factory=ScenarioParams)
    name: str = "base"
    #: Where the parallel stages run (:class:`coverage.engine.Engine`); None: whole, in
    #: this process. Results, and so the caches, do not depend on it.
    engine: Engine | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_files(cls, villages: str | os.PathLike[str], *, name: str = "base",
                   params: ScenarioParams | None = None, **inputs: Any) -> Scenario:
        """A scenario on files: ``towers=[...]``, ``population=...`` etc. as in the CLI."""
        return cls(InputPaths.of(villages, **inputs), params or ScenarioParams(), name)

    @classmethod
    def demo(cls, *, name: str = "demo", paths: dict[str, Path] | None = None,
             **changes: Any) -> Scenario:
        """The demo province with the demo run file's parameters, then ``changes``.

        ``paths`` are the files of another demo province (``generate_demo``'s result, e.g.
        a smaller one for a quick look); default, the embedded one.
        """
        from ..pipeline import DEMO_CONFIG
        from .options import read_run_config

        _, params, _, _ = read_run_config(DEMO_CONFIG)
        return cls(InputPaths.demo(paths), params.replace(**changes) if changes else params,
                   name)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Scenario:
        """The scenario of a whole-run TOML file (its ``[outputs]`` are ignored here)."""
        from .options import read_run_config

        inputs, params, _, name = read_run_config(path)
        return cls(inputs, params, name)

    def replace(self, *, name: str | None = None, **changes: Any) -> Scenario:
        """A new scenario with parameters changed (see :meth:`ScenarioParams.replace`)."""
        return Scenario(self.inputs, self.params.replace(**changes) if changes else self.params,
                        name if name is not None else self.name, self.engine)

    # ------------------------------------------------------------------ steps
    def load(self) -> Inputs:
        """The inputs, read once per set of files and shared by every scenario on them."""
        return _remember(_inputs_cache, _stamp(self.inputs),
                         lambda: load_inputs(**self.inputs.load_kwargs()))

    @property
    def settings(self) -> Settings:
        """The pipeline's settings of this scenario."""
        p = self.params
        return Settings(profile=p.profile, model=p.model, plan=p.plan)

    def surfaces(self, *, progress: Progress | None = None) -> CoverageSurfaces:
        """Modelled coverage of the active towers (cached per inputs and model parameters)."""
        inputs = self.load()
        model = self.params.model

        def make() -> CoverageSurfaces:
            grid = analysis_grid(inputs.villages, model)
            towers = select_towers(inputs.towers, inputs.villages, model)
            active = towers[towers["status"] == "active"]
            return model_coverage(active, grid, inputs, model, profile=self.params.profile,
                                  engine=self.engine, progress=progress)

        # the profile's thresholds score the tests that choose the model's structure
        profile = self.params.profile
        service = [profile.outdoor_dbm(t) for t in ("3G", "4G")] + [profile.gsm_dbm]
        return _remember(_surfaces_cache, _key(_stamp(self.inputs), dataclasses.asdict(model),
                                               service), make)

    def fused(self, *, progress: Progress | None = None) -> CoverageSurfaces:
        """The surfaces fused with the tests, for the classification and the plan (cached)."""
        inputs = self.load()
        model, profile = self.params.model, self.params.profile
        key = _key(_stamp(self.inputs), dataclasses.asdict(model), profile.measurement_radius_m)
        return _remember(_fused_cache, key, lambda: fused_surfaces(
            self.surfaces(progress=progress), inputs.measurements, profile=profile))

    def _classified(self, progress: Progress | None = None) -> gpd.GeoDataFrame:
        p = self.params
        key = _key(_stamp(self.inputs), dataclasses.asdict(p.model), dataclasses.asdict(
            p.profile), p.sharing, dict(p.market_share or {}) if not p.sharing else None)
        inputs = self.load()

        def make() -> gpd.GeoDataFrame:
            surfaces = self.surfaces(progress=progress)
            # As coverage.pipeline.run_classify (the CLI's path), on the cached surfaces.
            towers = select_towers(inputs.towers, inputs.villages, p.model)
            classified = classify_villages(
                inputs.villages, surfaces, measurements=inputs.measurements,
                population=inputs.population, access=inputs.access, profile=p.profile,
                towers=towers[towers["status"] == "active"], fibre=inputs.fibre,
                engine=self.engine, fused=self.fused(progress=progress))
            if not p.sharing:
                classified = _without_sharing(classified, surfaces, inputs, p)
            return classified

        return _remember(_classified_cache, key, make)

    def classify(self, *, progress: Progress | None = None) -> Result:
        """Classify every village; the result's ``plan`` is None."""
        classified = self._classified(progress)
        return Result(self.name, classified.copy(), None, self.manifest("classify"))

    def plan(self, budget: float | None = None, *, max_sites: int | None = None,
             progress: Progress | None = None) -> Result:
        """Classify, then plan under ``budget`` (default: the parameters' budget)."""
        scen = self
        if budget is not None or max_sites is not None:
            scen = self.replace(budget=budget if budget is not None else self.params.budget,
                                max_sites=max_sites if max_sites is not None
                                else self.params.max_sites)
        p = scen.params
        if p.budget is None and p.max_sites is None:
            raise ParameterError(f"scenario {self.name!r} has no budget: pass plan(budget=...) "
                                 "or set budget (or max_sites) in its parameters")
        classified = scen._classified(progress)
        inputs = scen.load()
        surfaces = scen.surfaces()
        plan_key = _plan_key(scen.inputs, p, classified)

        def make() -> PlanResult:
            return run_plan(classified, inputs, budget=p.budget, max_sites=p.max_sites,
                            settings=scen.settings, existing=surfaces, engine=scen.engine,
                            fused=scen.fused())

        result = _remember(_plan_cache, plan_key, make)
        return Result(scen.name, classified.copy(), result, scen.manifest("plan"))

    def map(self, *, budget: float | None = None, lang: str = "vi", title: str | None = None):
        """A folium map of the classes (and the plan, when the scenario has a budget)."""
        from .. import maps

        has_plan = budget is not None or self.params.budget is not None \
            or self.params.max_sites is not None
        result = self.plan(budget) if has_plan else self.classify()
        inputs = self.load()
        sites = result.plan.sites if result.plan is not None else None
        return maps.village_map(result.classified, plan=sites, towers=inputs.towers,
                                measurements=inputs.measurements, lang=lang,
                                title=title or self.name)

    def manifest(self, step: str) -> dict[str, Any]:
        """What reproduces this scenario's figures: version, parameters, input hashes."""
        from .. import __version__

        files = {key: {"path": str(p), "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
                 for key, p in self.inputs.files().items() if Path(p).is_file()}
        return {
            "tool": "coverage-gap", "version": __version__, "step": step,
            "scenario": self.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "parameters": self.params.to_dict(),
            # what the tests chose (cached surfaces): the model's structure, the fusion's
            # stages (coverage.model.structure, coverage.model.fuse.select_fusion)
            "model_choices": dict(self.fused().choices),
            "inputs": {**{k: v for k, v in self.inputs.to_dict().items()
                          if k in ("id_col", "name_col", "pop_col", "assume_crs")},
                       "files": files},
        }


def _plan_key(inputs: InputPaths, p: ScenarioParams, classified: gpd.GeoDataFrame) -> str:
    """Everything the plan depends on, so scenarios with equal plans share one.

    The plan reads the inputs, the villages' classes, people and covered shares, the
    profile's thresholds, the model, plan and cost parameters and the limits; scenarios that
    differ elsewhere (a rule that moves no village, the market shares of a sharing-on run)
    share one plan.
    """
    cols = ["village_id", "class", "population", "pop_covered_share"]
    digest = hashlib.sha256(pd.util.hash_pandas_object(
        pd.DataFrame(classified[cols]), index=False).to_numpy().tobytes()).hexdigest()
    return _key(_stamp(inputs), dataclasses.asdict(p.model), dataclasses.asdict(p.plan),
                dataclasses.asdict(p.profile), p.budget, p.max_sites, digest)


# --------------------------------------------------------------------------- sharing
def _market_shares(operators: Iterable[str], given) -> dict[str, float]:
    ops = list(operators)
    if not given:
        return {op: 1.0 / len(ops) for op in ops} if ops else {}
    total = float(sum(given.values()))
    return {op: float(given.get(op, 0.0)) / total for op in ops}


def _without_sharing(classified: gpd.GeoDataFrame, surfaces: CoverageSurfaces,
                     inputs: Inputs, params: ScenarioParams) -> gpd.GeoDataFrame:
    """Re-classify with each operator's subscribers counting only their own network."""
    shares = _market_shares(surfaces.operators, params.market_share)
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


# --------------------------------------------------------------------------- compare
@dataclass
class Comparison:
    """Scenarios side by side: :attr:`table` (one row per scenario) and :meth:`plot`."""

    table: pd.DataFrame
    results: list[Result]

    def plot(self, *, ax=None):
        """Bars of people per class per scenario, and people connected against plan cost.

        Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        t = self.table
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(t) + 2.5),
                                     layout="constrained")
        else:
            axes = list(np.atleast_1d(ax))
            fig = axes[0].figure
        colours = {"unavailable": "#d7191c", "available_inaccessible": "#fdae61",
                   "served": "#1a9641"}
        left = np.zeros(len(t))
        y = np.arange(len(t))
        for cls, colour in colours.items():
            v = t[f"people_{cls}"].to_numpy(float)
            axes[0].barh(y, v, left=left, color=colour, label=cls.replace("_", " "))
            left += v
        axes[0].set_yticks(y, t["scenario"])
        axes[0].invert_yaxis()
        axes[0].set_xlabel("people")
        axes[0].legend(loc="lower right", fontsize="small")
        axes[0].set_title("People per class")
        if len(axes) > 1 and "people_connected" in t:
            cur = t["currency"].iloc[0] if "currency" in t else ""
            axes[1].scatter(t["plan_cost"] / 1e9, t["people_connected"])
            for r in t.itertuples():
                axes[1].annotate(str(r.scenario), (r.plan_cost / 1e9, r.people_connected),
                                 fontsize="small", xytext=(4, 2), textcoords="offset points")
            axes[1].set_xlabel(f"plan cost (billion {cur})")
            axes[1].set_ylabel("people connected")
            axes[1].set_title("What the plan buys")
        return fig

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:,.0f}")


def compare(scenarios: Sequence[Scenario], *, plan: bool | None = None,
            progress: Progress | None = None) -> Comparison:
    """Run scenarios and tabulate them, one row each.

    Parameters
    ----------
    scenarios : sequence of Scenario
        Names should differ (they label the rows).
    plan : bool, optional
        Plan each scenario (default: when every scenario has a budget or ``max_sites``).

    Returns
    -------
    Comparison
        ``table`` columns: ``scenario``, ``villages_<class>`` and ``people_<class>`` for the
        three classes, ``budget``, and with plans ``sites``, ``n_macro``, ``n_upgrade``,
        ``n_small_cell``, ``n_satellite`` (the plan's ``technology`` of each row),
        ``plan_cost``, ``people_connected``, ``cost_per_person``, ``villages_lifted``; and
        ``currency``.
    """
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ParameterError(f"scenario names repeat ({', '.join(names)}); give each a name "
                             "with scenario.replace(name=...)")
    if plan is None:
        plan = all(s.params.budget is not None or s.params.max_sites is not None
                   for s in scenarios)
    results = [s.plan(progress=progress) if plan else s.classify(progress=progress)
               for s in scenarios]
    return Comparison(pd.DataFrame([r.row() for r in results]), results)
