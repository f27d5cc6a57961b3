"""Scenario studies: what if the budget doubles, the threshold rises, or sites are shared.

A :class:`Scenario` is inputs plus a frozen, serialisable :class:`ScenarioParams`; its
:meth:`~Scenario.classify`, :meth:`~Scenario.plan` and :meth:`~Scenario.map` run the
pipeline with every step cached by content, and :func:`compare` tabulates and plots several.
Each :class:`Result` carries a manifest (tool version, parameters, SHA-256 of every input).
:func:`run_config` is ``covgap run``: a whole run from one TOML file.

Examples
--------
>>> from coverage.scenario import Scenario, compare                     # doctest: +SKIP
>>> base = Scenario.demo(budget=40e9)                                    # doctest: +SKIP
>>> table = compare([base, base.replace(name="80bn", budget=80e9)]).table  # doctest: +SKIP
"""

from .core import Comparison, Result, Scenario, clear_cache, compare, file_sha256
from .options import (
    InputPaths,
    OutputSpec,
    ScenarioParams,
    read_run_config,
)
from .run import RunResult, run_config

__all__ = [
    "Comparison",
    "InputPaths",
    "OutputSpec",
    "Result",
    "RunResult",
    "Scenario",
    "ScenarioParams",
    "clear_cache",
    "compare",
    "file_sha256",
    "read_run_config",
    "run_config",
]
