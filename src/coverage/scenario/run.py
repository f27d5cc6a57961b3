"""A whole run from one TOML file: classify, plan, map and export (``covgap run``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..engine import Engine
from ..execute import execute
from ..settings import read_run_file
from .core import Progress, Result, Scenario

__all__ = ["RunResult", "run_config"]


@dataclass
class RunResult:
    """What a whole run produced: the scenario's result and every file written, by key."""

    scenario: Scenario
    result: Result
    outputs: dict[str, Path]


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
    """Run the scenario of a TOML file and write its outputs (:func:`coverage.execute.execute`).

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
    spec = read_run_file(path)
    changes = {}
    if out_dir is not None:
        changes["dir"] = Path(out_dir)
    if map_path is not None:
        changes["map"] = Path(map_path)
    spec = spec.replace(outputs=dataclasses.replace(spec.outputs, **changes))
    if budget is not None:
        spec = spec.replace(params={"budget": budget})
    done = execute(spec, engine=engine, progress=progress, overwrite=overwrite)
    scenario = Scenario(spec.inputs, spec.params, spec.name, engine)
    result = Result(spec.name, done.classified, done.plan, done.manifest)
    return RunResult(scenario, result, done.outputs)
