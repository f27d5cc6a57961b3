"""What a scenario holds: where its inputs are, and its frozen, serialisable parameters.

The classes live in :mod:`coverage.spec` (the one description of a run, and the one
settings parser); this module keeps their older import path and the tuple-returning
:func:`read_run_config`.
"""

from __future__ import annotations

import os

from ..settings import read_run_file
from ..spec import INPUT_KEYS, InputPaths, OutputSpec, ScenarioParams

__all__ = [
    "INPUT_KEYS",
    "InputPaths",
    "OutputSpec",
    "ScenarioParams",
    "read_run_config",
]


def read_run_config(path: str | os.PathLike[str]
                    ) -> tuple[InputPaths, ScenarioParams, OutputSpec, str]:
    """A whole-run TOML file as (inputs, parameters, outputs, name).

    :func:`coverage.spec.read_run_file` as a tuple; see it for the tables and keys.
    """
    spec = read_run_file(path)
    return spec.inputs, spec.params, spec.outputs, spec.name
