"""A whole run from one TOML file: classify, plan, map and export (``covgap run``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..engine import Engine, engine_from_config
from ..errors import OutputExistsError
from ..params import load_config
from .core import Progress, Result, Scenario
from .options import OutputSpec, read_run_config

__all__ = ["RunResult", "run_config"]


@dataclass
class RunResult:
    """What a whole run produced: the scenario's result and every file written, by key."""

    scenario: Scenario
    result: Result
    outputs: dict[str, Path]


def _output_keys(spec: OutputSpec) -> dict[str, Path]:
    """Key -> path: the first table of a kind is the kind, the next ones ``kind_suffix``."""
    out: dict[str, Path] = {}
    for kind, paths in spec.table_paths().items():
        for i, p in enumerate(paths):
            key = kind if i == 0 else f"{kind}_{p.suffix.lstrip('.').lower()}"
            out[key] = p
    return out


def run_config(
    path: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    map_path: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Run the scenario of a TOML file and write its outputs.

    Parameters
    ----------
    path : path
        The run file (see ``coverage/datasets/demo.toml`` for every key).
    out_dir, map_path : path, optional
        Replace ``[outputs] dir`` and ``[outputs] map``.
    budget : float, optional
        Replace ``[scenario] budget``.
    overwrite : bool
        Replace outputs that exist; without it, any existing output stops the run before
        any work.
    engine : Engine, optional
        Where the parallel stages run; default, the file's ``[engine]`` table
        (:func:`coverage.engine.engine_from_config`), else in this process.

    Raises
    ------
    OutputExistsError
        When an output exists and ``overwrite`` is false.
    """
    from .. import io, maps
    from ..params import BROADBAND_TECHS

    inputs, params, spec, name = read_run_config(path)
    changes = {}
    if out_dir is not None:
        changes["dir"] = Path(out_dir)
    if map_path is not None:
        changes["map"] = Path(map_path)
    spec = dataclasses.replace(spec, **changes)
    if budget is not None:
        params = params.replace(budget=budget)
    targets = _output_keys(spec)
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise OutputExistsError(f"{', '.join(existing)} exist(s); pass --overwrite to "
                                    "replace, or choose another folder with -o")
    own = None
    if engine is None:
        engine = own = engine_from_config(load_config(path).get("engine"), where=str(path))
    scenario = Scenario(inputs, params, name, engine)
    has_plan = params.budget is not None or params.max_sites is not None
    try:
        result = (scenario.plan(progress=progress) if has_plan
                  else scenario.classify(progress=progress))
    finally:
        if own is not None:
            own.close()
    written: dict[str, Path] = {}
    for key, target in targets.items():
        kind = key.split("_")[0]
        if kind == "classified":
            written[key] = io.write_table(result.classified, target, overwrite=overwrite)
        elif kind in ("plan", "priority") and result.plan is not None:
            table = result.plan.sites if kind == "plan" else result.plan.villages
            written[key] = io.write_table(table, target, overwrite=overwrite)
        elif kind == "coverage":
            s = scenario.surfaces()
            written[key] = io.write_raster(
                io.Raster(s.best(techs=BROADBAND_TECHS), s.grid.transform, s.grid.crs),
                target, overwrite=overwrite, band_names=["best_broadband_dbm"])
    if "map" in targets:
        loaded = scenario.load()
        m = maps.village_map(result.classified,
                             plan=result.plan.sites if result.plan is not None else None,
                             towers=loaded.towers, measurements=loaded.measurements,
                             title=spec.title or name)
        written["map"] = maps.save_map(m, targets["map"])  # existence checked above
    if "manifest" in targets:
        result.manifest["outputs"] = {k: str(v) for k, v in written.items()}
        written["manifest"] = result.write_manifest(targets["manifest"], overwrite=overwrite)
    return RunResult(scenario, result, written)

