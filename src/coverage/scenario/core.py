"""Scenarios: inputs plus frozen parameters, run with caching, compared side by side.

A :class:`Scenario` pairs :class:`~coverage.spec.InputPaths` with
:class:`~coverage.spec.ScenarioParams`. Its steps are :class:`coverage.execute.Run`'s, the
same as ``covgap classify``, ``plan`` and ``run`` execute, so a scenario gives the same
numbers as the commands on the same inputs, with the same options (corrections, phases,
province budgets, locks, sweeps, sharing). Steps are remembered in a
:class:`~coverage.execute.RunCache` keyed by content, so a study of many scenarios is
cheap: inputs are read once per set of files (and again when a file changes), surfaces
modelled once per (inputs, model parameters), classifications once per (surfaces, profile,
sharing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..engine import Engine
from ..errors import ParameterError
from ..execute import DEFAULT_CACHE, Run, RunCache, summarize, write_manifest
from ..inputs import Inputs
from ..model import CoverageSurfaces
from ..plan import PlanResult
from ..spec import InputPaths, OutputSpec, RunSpec, ScenarioParams

__all__ = ["Comparison", "Result", "Scenario", "clear_cache", "compare", "file_sha256"]

Progress = Callable[[int, int], None]


def clear_cache() -> None:
    """Forget every input, surface, classification and plan the scenarios share."""
    DEFAULT_CACHE.clear()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (remembered by path, size and modification time)."""
    return DEFAULT_CACHE.sha256(path)


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
        return write_manifest(self.manifest, path, overwrite=overwrite)


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
    #: Where the parallel stages run (:class:`coverage.engine.Engine`); None: in this
    #: process. Results, and so the caches, do not depend on it.
    engine: Engine | None = field(default=None, compare=False, repr=False)
    #: Where the steps are remembered; scenarios share :data:`coverage.execute.DEFAULT_CACHE`
    #: unless given their own.
    cache: RunCache = field(default=DEFAULT_CACHE, compare=False, repr=False)

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
        from ..settings import read_run_file
        from ..spec import DEMO_CONFIG

        params = read_run_file(DEMO_CONFIG).params
        return cls(InputPaths.demo(paths), params.replace(**changes) if changes else params,
                   name)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Scenario:
        """The scenario of a whole-run TOML file (its ``[outputs]`` are ignored here)."""
        from ..settings import read_run_file

        spec = read_run_file(path)
        return cls(spec.inputs, spec.params, spec.name)

    def replace(self, *, name: str | None = None, **changes: Any) -> Scenario:
        """A new scenario with parameters changed (see :meth:`ScenarioParams.replace`)."""
        return Scenario(self.inputs, self.params.replace(**changes) if changes else self.params,
                        name if name is not None else self.name, self.engine, self.cache)

    # ------------------------------------------------------------------ steps
    @property
    def spec(self) -> RunSpec:
        """The run this scenario describes (no output files)."""
        return RunSpec(self.inputs, self.params, OutputSpec.only(), self.name)

    def _run(self, progress: Progress | None = None) -> Run:
        return Run(self.spec, engine=self.engine, cache=self.cache, progress=progress)

    def load(self) -> Inputs:
        """The inputs, read once per set of files and shared by every scenario on them."""
        return self._run().load()

    @property
    def settings(self):
        """The pipeline's settings of this scenario."""
        from ..settings import Settings  # the parameters as the older functions take them

        p = self.params
        return Settings(profile=p.profile, model=p.model, plan=p.plan)

    def surfaces(self, *, progress: Progress | None = None) -> CoverageSurfaces:
        """Modelled coverage of the active towers (cached per inputs and model parameters)."""
        return self._run(progress).surfaces()

    def fused(self, *, progress: Progress | None = None) -> CoverageSurfaces:
        """The surfaces fused with the tests, for the classification and the plan (cached)."""
        return self._run(progress).fused()

    def classify(self, *, progress: Progress | None = None) -> Result:
        """Classify every village; the result's ``plan`` is None."""
        run = self._run(progress)
        return Result(self.name, run.classified().copy(), None, run.manifest("classify"))

    def plan(self, budget: float | None = None, *, max_sites: int | None = None,
             progress: Progress | None = None) -> Result:
        """Classify, then plan under ``budget`` (default: the parameters' budget)."""
        scen = self
        if budget is not None or max_sites is not None:
            scen = self.replace(budget=budget if budget is not None else self.params.budget,
                                max_sites=max_sites if max_sites is not None
                                else self.params.max_sites)
        if not scen.params.has_plan:
            raise ParameterError(f"scenario {self.name!r} has no budget: pass plan(budget=...) "
                                 "or set budget (or max_sites) in its parameters")
        run = scen._run(progress)
        plan = run.plan()
        return Result(scen.name, run.classified().copy(), plan, run.manifest("plan"))

    def map(self, *, budget: float | None = None, lang: str = "vi", title: str | None = None):
        """A folium map of the classes (and the plan, when the scenario has a budget)."""
        from .. import maps

        has_plan = budget is not None or self.params.has_plan
        result = self.plan(budget) if has_plan else self.classify()
        inputs = self.load()
        sites = result.plan.sites if result.plan is not None else None
        return maps.village_map(result.classified, plan=sites, towers=inputs.towers,
                                measurements=inputs.measurements, lang=lang,
                                title=title or self.name)

    def manifest(self, step: str) -> dict[str, Any]:
        """What reproduces this scenario's figures: version, parameters, input hashes."""
        return self._run().manifest(step)


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
        plan = all(s.params.has_plan for s in scenarios)
    results = [s.plan(progress=progress) if plan else s.classify(progress=progress)
               for s in scenarios]
    return Comparison(pd.DataFrame([r.row() for r in results]), results)
