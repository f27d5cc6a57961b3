"""The one settings parser: CLI options, config files and run files read alike.

Every way in is turned into the same TOML-like tables and read by :func:`parse_tables`, so
the three cannot disagree. The parser refuses an unknown table, key, profile, technology or
engine, naming it, suggesting the closest valid name (:func:`coverage.errors.did_you_mean`,
never put in its place) and listing the valid choices. The keys it accepts are the fields
of the frozen parameter classes of :mod:`coverage.params` (``[profile]``
:class:`~coverage.params.Profile`, ``[model]`` :class:`~coverage.params.ModelParams`,
``[plan]`` :class:`~coverage.params.PlanParams`, ``[costs]``
:class:`~coverage.params.CostModel`), of :class:`~coverage.spec.ScenarioParams`
(``[scenario]``), :class:`~coverage.spec.OutputSpec` (``[outputs]``) and
:class:`coverage.engine.Engine` (``[engine]``): a field added there is a setting here.

Examples
--------
>>> params, name, engine = parse_tables({"profile": {"name": "bead-25-3"},
...                                      "scenario": {"budget": 20e9}})
>>> params.profile.min_download_mbps, params.budget
(25.0, 20000000000.0)
>>> parse_tables({"profile": {"name": "vn-2052"}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
coverage.errors.ParameterError: settings: unknown profile 'vn-2052' (did you mean 'vn-2025'?); ...
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ParameterError, did_you_mean
from .params import CostModel, ModelParams, PlanParams, Profile, get_profile, load_config
from .spec import (
    INPUT_KEYS,
    MULTI_INPUTS,
    TABLES,
    InputPaths,
    OutputSpec,
    RunSpec,
    ScenarioParams,
    as_floats,
)

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["LIMITS", "Settings", "merge_tables", "parse_tables", "read_run_file",
           "spec_from_config"]


def _table(config: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ParameterError(f"{where}: [{name}] must be a table of settings, got {value!r}")
    return dict(value)


def _refuse_unknown_tables(config: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(config) - set(TABLES))
    if unknown:
        raise ParameterError(f"{where}: unknown table(s) "
                             f"{', '.join(t + did_you_mean(t, TABLES) for t in unknown)}; "
                             f"known: {', '.join(TABLES)}")


def parse_tables(config: Mapping[str, Any], *, where: str = "settings"
                 ) -> tuple[ScenarioParams, str | None, dict[str, Any] | None]:
    """The parameters, name and engine table of a config's tables: the one settings parser.

    Parameters
    ----------
    config : mapping
        Tables as in a TOML file: ``[scenario]``, ``[profile]``, ``[model]``, ``[plan]``,
        ``[costs]`` and ``[engine]`` are read here; ``[inputs]``, ``[columns]`` and
        ``[outputs]`` are checked for being tables (:func:`read_run_file` reads them).
    where : str
        Where the tables come from, for messages (a file name, "--profile"...).

    Returns
    -------
    (ScenarioParams, str or None, dict or None)
        The parameters, ``[scenario] name`` and the ``[engine]`` table (checked).

    Raises
    ------
    ParameterError
        For an unknown table, key, profile, technology or engine, or a value of the wrong
        kind; the message names it and lists the valid choices.
    """
    _refuse_unknown_tables(config, where)
    for name in TABLES:
        _table(config, name, where)
    scen = _table(config, "scenario", where)
    name = scen.pop("name", None)
    plan = _table(config, "plan", where)
    if "costs" in config:
        plan["costs"] = as_floats(CostModel, _table(config, "costs", where))
    values: dict[str, Any] = {"profile": _table(config, "profile", where)}
    if "model" in config:
        values["model"] = _table(config, "model", where)
    if plan:
        values["plan"] = plan
    values.update(scen)
    try:
        params = ScenarioParams.from_dict(values)
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    engine = _table(config, "engine", where) or None
    if engine is not None:
        from .engine import engine_from_config

        engine_from_config(engine, where=where)  # refuses unknown keys and kinds now
    return params, None if name is None else str(name), engine


def merge_tables(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Tables merged key by key, the later winning (CLI options over a config file)."""
    out: dict[str, Any] = {}
    for config in configs:
        for table, values in (config or {}).items():
            if isinstance(values, Mapping) and isinstance(out.get(table), Mapping):
                out[table] = {**out[table], **values}
            else:
                out[table] = values
    return out


#: A plan's limits in ``[scenario]``: a command that sets its own ignores the file's.
LIMITS = ("budget", "max_sites", "phases", "phase_labels")


def spec_from_config(path: str | os.PathLike[str] | None = None, *,
                     options: Mapping[str, Any] | None = None,
                     file_limits: bool = True) -> RunSpec:
    """The settings of a config file (or none) and the CLI's options, as a RunSpec.

    ``options`` are the CLI's options written as tables (``{"profile": {"name": NAME},
    "scenario": {"budget": AMOUNT}}``); they win over the file. A config file may be a
    whole run file: its ``[inputs]`` and ``[outputs]`` are checked and left to the
    commands, which name their own files. ``file_limits=False``: the file's budget,
    number of sites and phases (:data:`LIMITS`) are ignored, for a command whose own
    options set them (``covgap plan``) or that plans nothing (``covgap classify``).
    """
    config = load_config(path) if path is not None else {}
    where = str(path) if path is not None else "options"
    _refuse_unknown_tables(config, where)
    if not file_limits and isinstance(config.get("scenario"), Mapping):
        config = {**config, "scenario": {k: v for k, v in config["scenario"].items()
                                         if k not in LIMITS}}
    params, name, engine = parse_tables(merge_tables(config, options), where=where)
    return RunSpec(None, params, OutputSpec.only(), name or "base", engine)


def _resolve(value: str, base: Path) -> Path:
    """A path of a run file: ``demo:KEY`` names a demo file, relative paths follow the file."""
    if value.startswith("demo:"):
        from .datasets import demo_paths

        key = value[5:]
        paths = demo_paths()
        if key not in paths:
            raise ParameterError(f"unknown demo file {value!r}"
                                 f"{did_you_mean(key, paths)}; known: "
                                 f"{', '.join('demo:' + k for k in paths)}")
        return paths[key]
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _inputs(raw: dict[str, Any], columns: Mapping[str, Any], path: Path) -> InputPaths:
    if "villages" not in raw:
        raise ParameterError(f"{path}: [inputs] needs villages = \"FILE\"")
    base = path.parent
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key in MULTI_INPUTS or (key == "dem" and isinstance(value, list)):
            items = [value] if isinstance(value, str) else list(value)
            kw[key] = [_resolve(str(v), base) for v in items]
        elif key in INPUT_KEYS:
            kw[key] = _resolve(str(value), base)
        else:
            kw[key] = value
    if columns:
        from .io import column_mapping

        kw["columns"] = column_mapping({"columns": columns})
    try:
        return InputPaths.of(kw.pop("villages"), **kw)
    except ParameterError as exc:
        raise ParameterError(f"{path}: [inputs] {exc}") from None


def _outputs(raw: Mapping[str, Any], path: Path) -> OutputSpec:
    spec_kw: dict[str, Any] = {}
    known = [f.name for f in dataclasses.fields(OutputSpec)]
    for key, value in raw.items():
        if key not in known:
            raise ParameterError(f"{path}: unknown [outputs] key {key!r}"
                                 f"{did_you_mean(key, known)}; known: "
                                 f"{', '.join(known)}")
        if key in ("classified", "plan", "priority"):
            value = (value,) if isinstance(value, str) else tuple(value)
        elif key in ("dir", "map", "crosswalk"):
            value = Path(value) if value else None
        elif value == "":
            value = None
        spec_kw[key] = value
    try:
        return OutputSpec(**spec_kw)
    except ParameterError as exc:
        raise ParameterError(f"{path}: [outputs] {exc}") from None


def read_run_file(path: str | os.PathLike[str]) -> RunSpec:
    """Read a whole-run TOML file into a :class:`RunSpec`.

    Tables: ``[inputs]`` (paths relative to the file, or ``demo:KEY``), ``[columns]``,
    ``[profile]``, ``[model]``, ``[plan]``, ``[costs]``, ``[scenario]`` (``name``,
    ``budget``, ``max_sites``, ``phases``, ``locked``, ``sharing``, ``market_share``... the
    fields of :class:`ScenarioParams`), ``[outputs]`` (paths relative to the current
    folder) and ``[engine]``. See ``coverage/datasets/demo.toml`` for a commented example.
    """
    path = Path(path)
    config = load_config(path)
    params, name, engine = parse_tables(config, where=str(path))
    inputs = _inputs(_table(config, "inputs", str(path)),
                     _table(config, "columns", str(path)), path)
    outputs = _outputs(_table(config, "outputs", str(path)), path)
    return RunSpec(inputs, params, outputs, name or path.stem, engine)


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
    def from_config(cls, path: str | os.PathLike[str] | None = None, *, profile: str | None = None
                    ) -> Settings:
        """Settings from a TOML file, read by the one parser (:func:`spec_from_config`).

        ``profile`` (the CLI's ``--profile``) wins over the file's ``profile.name``.
        """
        options = {"profile": {"name": profile}} if profile else None
        spec = spec_from_config(path, options=options)
        p = spec.params
        from .engine import engine_from_config

        return cls(profile=p.profile, model=p.model, plan=p.plan,
                   engine=engine_from_config(spec.engine, where=str(path)))
