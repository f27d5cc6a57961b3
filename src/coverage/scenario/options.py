"""What a scenario holds: where its inputs are, and its frozen, serialisable parameters.

:class:`InputPaths` names the input files (and the column mapping); :class:`ScenarioParams`
holds the rules profile, model, plan and cost parameters, the budget, the technology options
and the sharing rule. Both rebuild from the plain dicts they turn into (:meth:`to_dict`), and
from a whole-run TOML file (:func:`read_run_config`), so every figure can be reproduced.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..params import (
    PROFILES,
    CostModel,
    ModelParams,
    PlanParams,
    Profile,
    from_mapping,
    load_config,
)

__all__ = [
    "INPUT_KEYS",
    "InputPaths",
    "OutputSpec",
    "ScenarioParams",
    "read_run_config",
]

#: Input keys of a run, as in the contract's CLI options.
INPUT_KEYS = ("villages", "towers", "measurements", "population", "dem", "access", "fibre",
              "roads", "candidates", "landcover")
_MANY = ("towers", "measurements")
_COLUMNS = ("id_col", "name_col", "pop_col", "assume_crs")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ParameterError(message)


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """Every parameter of a scenario; frozen, and rebuilt from :meth:`to_dict`.

    Parameters
    ----------
    profile : Profile
        The rules profile (thresholds).
    model : ModelParams
        The coverage model.
    plan : PlanParams
        Planning parameters, with the cost model in ``plan.costs``. The technologies a plan
        may use are :mod:`coverage.plan`'s: 4G macro sites and 4G upgrades always,
        ``plan.small_cells`` and ``plan.satellite_terminals`` (community LEO terminals) when
        on; their costs and link budgets are ``plan.costs`` and ``plan.small_cell_*``.
    budget : float, optional
        Money to spend, in ``plan.costs.currency``.
    max_sites : int, optional
        Number of sites (or satellite villages) to build, instead of or with a budget.
    sharing : bool
        Infrastructure sharing. On (the default, and the classification's own rule), a
        resident covered by any operator counts as covered. Off, each operator's subscribers
        only count their own network: a village's covered (indoor, 2G) share is the sum over
        operators of the operator's market share times the share its network covers.
    market_share : dict, optional
        Operator -> share of subscribers (normalised to sum to 1); operators missing from it
        count 0. Default: equal shares among the operators with a network.
    """

    profile: Profile = field(default_factory=lambda: PROFILES["vn-2025"])
    model: ModelParams = field(default_factory=ModelParams)
    plan: PlanParams = field(default_factory=PlanParams)
    budget: float | None = None
    max_sites: int | None = None
    sharing: bool = True
    market_share: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        _check(self.budget is None or self.budget > 0, f"budget={self.budget} must be positive")
        _check(self.max_sites is None or self.max_sites >= 1, "max_sites must be at least 1")
        if self.market_share is not None:
            shares = dict(self.market_share)
            _check(all(v >= 0 for v in shares.values()) and sum(shares.values()) > 0,
                   f"market_share {shares} needs non-negative shares that add up to more than 0")

    def replace(self, **changes: Any) -> ScenarioParams:
        """A copy with some fields changed; nested parts accept dicts of their fields.

        Examples
        --------
        >>> p = ScenarioParams().replace(budget=20e9, profile={"min_download_mbps": 10})
        >>> p.profile.min_download_mbps, p.budget
        (10.0, 20000000000.0)
        """
        out = self
        for key, value in changes.items():  # in order, so costs= and plan= both apply
            if key == "costs":
                value = {"costs": value}
                key = "plan"
            if key not in ScenarioParams.__dataclass_fields__:
                raise ParameterError(f"unknown scenario setting {key!r}; known: "
                                     f"{', '.join(sorted(ScenarioParams.__dataclass_fields__))}"
                                     ", costs")
            current = getattr(out, key)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                value = from_mapping(type(current), _floats(type(current), value), base=current)
            elif key == "budget" and value is not None:
                value = float(value)
            out = dataclasses.replace(out, **{key: value})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (JSON- and TOML-ready)."""
        out = dataclasses.asdict(self)
        if self.market_share is not None:
            out["market_share"] = dict(self.market_share)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ScenarioParams:
        """Rebuild from :meth:`to_dict` (or a TOML run file's tables)."""
        values = dict(values)
        prof = dict(values.pop("profile", {}) or {})
        name = prof.get("name", "vn-2025")
        base = PROFILES.get(name) or Profile(name=name)
        params = cls(profile=from_mapping(Profile, prof, base=base))
        return params.replace(**values) if values else params

    @property
    def currency(self) -> str:
        """The cost model's currency."""
        return self.plan.costs.currency


def _floats(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """TOML integers for float fields become floats (so equal settings compare equal)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in values.items():
        f = fields.get(k)
        if f is not None and f.type in ("float", "float | None") and isinstance(v, int) \
                and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return out


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class InputPaths:
    """The input files of a run (absent ones None or empty) and how to read them."""

    villages: Path
    towers: tuple[Path, ...] = ()
    measurements: tuple[Path, ...] = ()
    population: Path | None = None
    dem: Path | tuple[Path, ...] | None = None  # several: DEM tiles, mosaicked
    landcover: Path | None = None
    access: Path | None = None
    fibre: Path | None = None
    roads: Path | None = None
    candidates: Path | None = None
    id_col: str = "village_id"
    name_col: str = "name"
    pop_col: str = "population"
    assume_crs: str | None = None

    @classmethod
    def of(cls, villages: str | os.PathLike[str], **kw: Any) -> InputPaths:
        """Normalise: paths become :class:`~pathlib.Path`, single towers become tuples."""
        out: dict[str, Any] = {"villages": Path(villages)}
        for key, value in kw.items():
            if key in _MANY:
                items = [value] if isinstance(value, str | os.PathLike) else list(value or ())
                out[key] = tuple(Path(v) for v in items)
            elif key == "dem" and isinstance(value, list | tuple):
                tiles = tuple(Path(v) for v in value)
                out[key] = tiles if len(tiles) > 1 else (tiles[0] if tiles else None)
            elif key in INPUT_KEYS:
                out[key] = Path(value) if value is not None else None
            elif key in _COLUMNS:
                out[key] = value
            else:
                raise ParameterError(f"unknown input {key!r}; known: "
                                     f"{', '.join(INPUT_KEYS + _COLUMNS)}")
        return cls(**out)

    @classmethod
    def demo(cls, paths: Mapping[str, str | os.PathLike[str]] | None = None) -> InputPaths:
        """Every file of the embedded demo province (or of one made by ``generate_demo``).

        Examples
        --------
        >>> from coverage.datasets import generate_demo              # doctest: +SKIP
        >>> small = InputPaths.demo(generate_demo("tmp/demo", scale=0.4))  # doctest: +SKIP
        """
        from ..datasets import demo_paths

        p = dict(paths) if paths is not None else demo_paths()
        return cls.of(p["villages"], towers=[p["sites"], p["opencellid"]],
                      measurements=[p["tests"], p["ookla"]], population=p["population"],
                      dem=p["dem"], access=p["access"], fibre=p["fibre"], roads=p["roads"],
                      landcover=p.get("landcover"))

    def files(self) -> dict[str, Path]:
        """Key -> path of every input given (``towers[0]``, ``towers[1]``... for lists)."""
        out: dict[str, Path] = {}
        for key in INPUT_KEYS:
            value = getattr(self, key)
            if key in _MANY or isinstance(value, tuple):
                out.update({f"{key}[{i}]": p for i, p in enumerate(value)})
            elif value is not None:
                out[key] = value
        return out

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coverage.pipeline.load_inputs`."""
        kw = {k: getattr(self, k) for k in INPUT_KEYS[1:] + _COLUMNS}
        return {"villages": self.villages, **kw}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as text)."""
        out: dict[str, Any] = {}
        for key in INPUT_KEYS + _COLUMNS:
            value = getattr(self, key)
            out[key] = ([str(v) for v in value] if key in _MANY or isinstance(value, tuple)
                        else str(value) if isinstance(value, Path) else value)
        return out


# --------------------------------------------------------------------------- run files
@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What a whole run writes: tables under ``dir``, the map and the manifest."""

    dir: Path = Path("out")
    classified: tuple[str, ...] = ("classified.gpkg", "classified.csv")
    plan: tuple[str, ...] = ("plan.csv", "plan.gpkg")
    priority: tuple[str, ...] = ("priority.csv", "priority.xlsx")
    coverage: str | None = None
    map: Path | None = Path("maps/map.html")
    manifest: str | None = "manifest.json"
    title: str | None = None

    def table_paths(self) -> dict[str, list[Path]]:
        """Kind -> output paths of the tables, the coverage raster and the manifest."""
        out = {k: [self.dir / n for n in getattr(self, k)]
               for k in ("classified", "plan", "priority")}
        out["coverage"] = [self.dir / self.coverage] if self.coverage else []
        out["manifest"] = [self.dir / self.manifest] if self.manifest else []
        out["map"] = [self.map] if self.map else []
        return out


def _resolve(value: str, base: Path) -> Path:
    """A path of a run file: ``demo:KEY`` names a demo file, relative paths follow the file."""
    if value.startswith("demo:"):
        from ..datasets import demo_paths

        key = value[5:]
        paths = demo_paths()
        if key not in paths:
            raise ParameterError(f"unknown demo file {value!r}; known: "
                                 f"{', '.join('demo:' + k for k in paths)}")
        return paths[key]
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def read_run_config(path: str | os.PathLike[str]
                    ) -> tuple[InputPaths, ScenarioParams, OutputSpec, str]:
    """Read a whole-run TOML file: inputs, parameters, outputs and the scenario's name.

    Tables: ``[inputs]`` (paths relative to the file, or ``demo:KEY``), ``[profile]``,
    ``[model]``, ``[plan]``, ``[costs]``, ``[scenario]`` (``name``, ``budget``,
    ``max_sites``, ``sharing``, ``market_share``) and ``[outputs]``
    (paths relative to the current folder); ``[engine]`` (where the work runs) is read by
    :func:`coverage.scenario.run_config`. See ``coverage/datasets/demo.toml`` for a
    commented example of every key.
    """
    path = Path(path)
    config = load_config(path)
    known = {"inputs", "profile", "model", "plan", "costs", "scenario", "outputs", "engine"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ParameterError(f"{path}: unknown table(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
    raw = dict(config.get("inputs", {}))
    if "villages" not in raw:
        raise ParameterError(f"{path}: [inputs] needs villages = \"FILE\"")
    base = path.parent
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _MANY or (key == "dem" and isinstance(value, list)):
            items = [value] if isinstance(value, str) else list(value)
            kw[key] = [_resolve(str(v), base) for v in items]
        elif key in INPUT_KEYS:
            kw[key] = _resolve(str(value), base)
        else:
            kw[key] = value
    inputs = InputPaths.of(kw.pop("villages"), **kw)
    scen = dict(config.get("scenario", {}))
    name = str(scen.pop("name", path.stem))
    values: dict[str, Any] = {"profile": config.get("profile", {})}
    for key in ("model", "plan"):
        if key in config:
            values[key] = config[key]
    if "costs" in config:
        values.setdefault("plan", {})
        values["plan"] = {**values["plan"], "costs": _floats(CostModel, config["costs"])}
    values.update(scen)
    params = ScenarioParams.from_dict(values)
    out_cfg = dict(config.get("outputs", {}))
    spec_kw: dict[str, Any] = {}
    for key, value in out_cfg.items():
        if key not in OutputSpec.__dataclass_fields__:
            raise ParameterError(f"{path}: unknown [outputs] key {key!r}; known: "
                                 f"{', '.join(OutputSpec.__dataclass_fields__)}")
        if key in ("classified", "plan", "priority"):
            value = (value,) if isinstance(value, str) else tuple(value)
        elif key in ("dir", "map"):
            value = Path(value) if value else None
        elif value == "":
            value = None
        spec_kw[key] = value
    return inputs, params, OutputSpec(**spec_kw), name
