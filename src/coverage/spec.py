"""What a run is: its inputs, every parameter and its outputs, as one frozen :class:`RunSpec`.

:class:`InputPaths` names the input files, :class:`ScenarioParams` holds every parameter
(the rules profile, model, plan and costs, and the limits, phases, locks and sharing of a
plan), :class:`OutputSpec` what the run writes. One parser builds them from CLI options,
config files and run files alike (:mod:`coverage.settings`); :func:`coverage.execute.execute`
runs them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParameterError, did_you_mean
from .params import (
    PROFILES,
    ModelParams,
    PlanParams,
    Profile,
    check,
    from_mapping,
    get_profile,
)

__all__ = [
    "DEMO_CONFIG",
    "INPUT_KEYS",
    "MULTI_INPUTS",
    "TABLES",
    "InputPaths",
    "OutputSpec",
    "RunSpec",
    "ScenarioParams",
    "as_floats",
]

#: The demo's whole-run file, a commented example of every setting.
DEMO_CONFIG = Path(__file__).parent / "datasets" / "demo.toml"
#: Input keys of a run, as in the contract's CLI options.
INPUT_KEYS = ("villages", "towers", "measurements", "population", "dem", "access", "fibre",
              "roads", "candidates", "landcover", "coverage", "corrections")
#: Inputs that take several files.
MULTI_INPUTS = ("towers", "measurements", "coverage")
_COLUMNS = ("id_col", "name_col", "pop_col", "assume_crs")
#: Tables of a config or run file.
TABLES = ("inputs", "columns", "scenario", "profile", "model", "plan", "costs", "outputs",
          "engine")


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """Every parameter of a run; frozen, and rebuilt from :meth:`to_dict`.

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
    phases : tuple of float
        Budget per phase (year), in order; sites are ordered within and across phases.
    phase_labels : tuple of str, optional
        A name per phase (e.g. the years), for the plan's ``year`` column.
    province_budgets : dict or float, optional
        Money a province may spend over the plan (a number: the same for each province).
    locked : tuple of str
        ``site_id`` of planned or candidate sites to build first, whatever they gain.
    sweep : tuple of float
        Budgets of the cost curve (people connected against money).
    weight_col : str, optional
        Numeric village column weighting each village's people in the plan (1 where empty).
    exact : bool, optional
        Solve the exact MILP too (default: up to ``plan.milp_max_candidates``).
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
    phases: tuple[float, ...] = ()
    phase_labels: tuple[str, ...] | None = None
    province_budgets: Mapping[str, float] | float | None = None
    locked: tuple[str, ...] = ()
    sweep: tuple[float, ...] = ()
    weight_col: str | None = None
    exact: bool | None = None
    sharing: bool = True
    market_share: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        check(self.budget is None or self.budget > 0, f"budget={self.budget} must be positive")
        check(self.max_sites is None or self.max_sites >= 1, "max_sites must be at least 1")
        check(all(b > 0 for b in self.phases), f"phases={list(self.phases)}: every phase's "
               "budget must be positive")
        check(self.phase_labels is None or len(self.phase_labels) == len(self.phases),
               f"{len(self.phase_labels or ())} phase_labels for {len(self.phases)} phases")
        check(all(b > 0 for b in self.sweep), "sweep budgets must be positive")
        if self.market_share is not None:
            shares = dict(self.market_share)
            check(all(v >= 0 for v in shares.values()) and sum(shares.values()) > 0,
                   f"market_share {shares} needs non-negative shares that add up to more than 0")

    @property
    def has_plan(self) -> bool:
        """True when the parameters ask for a plan (a budget, phases or a number of sites)."""
        return self.budget is not None or self.max_sites is not None or bool(self.phases)

    def replace(self, **changes: Any) -> ScenarioParams:
        """A copy with some fields changed; nested parts accept dicts of their fields.

        A ``profile`` dict naming another profile (``{"name": "bead-25-3"}``) starts from
        that profile, then applies its other keys.

        Examples
        --------
        >>> p = ScenarioParams().replace(budget=20e9, profile={"min_download_mbps": 10})
        >>> p.profile.min_download_mbps, p.budget
        (10.0, 20000000000.0)
        """
        new: dict[str, Any] = {}
        for key, value in changes.items():  # in order, so costs= and plan= both apply
            if key == "costs":
                value = {"costs": value}
                key = "plan"
            if key not in _SCENARIO_FIELDS:
                raise ParameterError(f"unknown scenario setting {key!r}"
                                     f"{did_you_mean(key, [*_SCENARIO_FIELDS, 'costs'])}; "
                                     "known: "
                                     f"{', '.join(sorted(_SCENARIO_FIELDS))}, costs")
            current = new.get(key, getattr(self, key))
            if key == "profile" and isinstance(value, Mapping):
                value = _profile(value, base=current)
            elif dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                value = from_mapping(type(current), as_floats(type(current), value), base=current)
            else:
                value = _scenario_value(key, value)
            new[key] = value
        return dataclasses.replace(self, **new)  # checked once, with every change made

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (JSON- and TOML-ready)."""
        out = dataclasses.asdict(self)
        for key in ("market_share", "province_budgets"):
            if isinstance(getattr(self, key), Mapping):
                out[key] = dict(getattr(self, key))
        for key in ("phases", "phase_labels", "locked", "sweep"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ScenarioParams:
        """Rebuild from :meth:`to_dict` (or a run file's tables); unknown names are refused."""
        values = dict(values)
        params = cls(profile=_profile(values.pop("profile", {}) or {}))
        return params.replace(**values) if values else params

    @property
    def currency(self) -> str:
        """The cost model's currency."""
        return self.plan.costs.currency


_SCENARIO_FIELDS = {f.name: f for f in dataclasses.fields(ScenarioParams)}


def _profile(values: Mapping[str, Any], *, base: Profile | None = None) -> Profile:
    """A profile from a table: ``name`` picks a known profile, the other keys override it.

    Raises
    ------
    ParameterError
        For an unknown profile name (the known ones are listed) or threshold.
    """
    values = dict(values)
    if not isinstance(values.get("name", ""), str):
        raise ParameterError(f"profile name = {values['name']!r}: expected a text in quotes")
    name = values.pop("name", None)
    if name is not None or base is None:
        name = name if name is not None else "vn-2025"
        if base is None or name != base.name:
            base = get_profile(name)
    return from_mapping(Profile, as_floats(Profile, values), base=base) if values else base


def as_floats(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
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


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"scenario setting {key} = {value!r}: expected a number")
    return float(value)


def _whole(key: str, value: Any) -> int:
    number = _number(key, value)
    if not number.is_integer():
        raise ParameterError(f"scenario setting {key} = {value!r}: expected a whole number")
    return int(number)


def _numbers(key: str, value: Any) -> tuple[float, ...]:
    items = [value] if isinstance(value, int | float) else list(value)
    return tuple(_number(key, v) for v in items)


def _texts(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(v) for v in items)


def _number_or_table(key: str, value: Any) -> float | dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): _number(f"{key}.{k}", v) for k, v in value.items()}
    return _number(key, value)


def _share_table(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ParameterError(f"scenario setting {key} = {value!r}: expected a "
                             "table of operator = share")
    return {str(k): _number(f"{key}.{k}", v) for k, v in value.items()}


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"scenario setting {key} = {value!r}: expected true or false")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"scenario setting {key} = {value!r}: expected a text")
    return value


#: ``[scenario]`` key -> the check and conversion of its value (others are taken as given).
_SCENARIO_KINDS: dict[str, Callable[[str, Any], Any]] = {
    "budget": _number, "max_sites": _whole, "phases": _numbers, "sweep": _numbers,
    "phase_labels": _texts, "locked": _texts, "province_budgets": _number_or_table,
    "market_share": _share_table, "sharing": _flag, "exact": _flag, "weight_col": _text,
}


def _scenario_value(key: str, value: Any) -> Any:
    """A ``[scenario]`` value of the kind its field holds, or a clear error."""
    if value is None or key not in _SCENARIO_KINDS:
        return value
    return _SCENARIO_KINDS[key](key, value)


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class InputPaths:
    """The input files of a run (absent ones None or empty) and how to read them.

    ``columns`` maps contract names to the files' columns by input kind (a config's
    ``[columns]`` table and ``--col``, see :func:`coverage.io.column_mapping`).
    ``corrections`` are field-check corrections applied after the classification.
    """

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
    coverage: tuple[Path, ...] = ()  # operators' coverage maps (their claims)
    corrections: Path | None = None
    id_col: str = "village_id"
    name_col: str = "name"
    pop_col: str = "population"
    assume_crs: str | None = None
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, villages: str | os.PathLike[str], **kw: Any) -> InputPaths:
        """Normalise: paths become :class:`~pathlib.Path`, single towers become tuples."""
        out: dict[str, Any] = {"villages": Path(villages)}
        for key, value in kw.items():
            if key in MULTI_INPUTS:
                items = [value] if isinstance(value, str | os.PathLike) else list(value or ())
                out[key] = tuple(Path(v) for v in items)
            elif key == "dem" and isinstance(value, list | tuple):
                tiles = tuple(Path(v) for v in value)
                out[key] = tiles if len(tiles) > 1 else (tiles[0] if tiles else None)
            elif key in INPUT_KEYS:
                out[key] = Path(value) if value is not None else None
            elif key in _COLUMNS:
                out[key] = value
            elif key == "columns":
                out[key] = {str(k): dict(v) for k, v in (value or {}).items()}
            else:
                raise ParameterError(f"unknown input {key!r}"
                                     f"{did_you_mean(key, INPUT_KEYS + _COLUMNS)}; known: "
                                     f"{', '.join(INPUT_KEYS + _COLUMNS)}, columns")
        return cls(**out)

    @classmethod
    def demo(cls, paths: Mapping[str, str | os.PathLike[str]] | None = None) -> InputPaths:
        """Every file of the embedded demo province (or of one made by ``generate_demo``).

        Examples
        --------
        >>> from coverage.datasets import generate_demo              # doctest: +SKIP
        >>> small = InputPaths.demo(generate_demo("tmp/demo", scale=0.4))  # doctest: +SKIP
        """
        from .datasets import demo_paths

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
            if key in MULTI_INPUTS or isinstance(value, tuple):
                out.update({f"{key}[{i}]": p for i, p in enumerate(value)})
            elif value is not None:
                out[key] = value
        return out

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coverage.inputs.load_inputs` (corrections aside)."""
        kw = {k: getattr(self, k) for k in INPUT_KEYS[1:] + _COLUMNS if k != "corrections"}
        return {"villages": self.villages, **kw, "columns": dict(self.columns)}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as text)."""
        out: dict[str, Any] = {}
        for key in INPUT_KEYS + _COLUMNS:
            value = getattr(self, key)
            out[key] = ([str(v) for v in value] if key in MULTI_INPUTS or isinstance(value, tuple)
                        else str(value) if isinstance(value, Path) else value)
        if self.columns:
            out["columns"] = {k: dict(v) for k, v in self.columns.items()}
        return out


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What a run writes: tables under ``dir``, the map and the manifest.

    Table names are relative to ``dir`` (an absolute name stays as it is); ``map`` is
    relative to the current folder. ``aggregate`` (villages and people per class per
    commune, district and province) may use ``crosswalk`` (old units onto new ones,
    matched on the villages' ``crosswalk_on`` column); ``sweep`` is the budget sweep's
    cost curve; ``lang`` the header language of XLSX plan tables.
    """

    dir: Path = Path("out")
    classified: tuple[str, ...] = ("classified.gpkg", "classified.csv")
    plan: tuple[str, ...] = ("plan.csv", "plan.gpkg")
    priority: tuple[str, ...] = ("priority.csv", "priority.xlsx")
    coverage: str | None = None
    aggregate: str | None = None
    sweep: str | None = None
    map: Path | None = Path("maps/map.html")
    manifest: str | None = "manifest.json"
    title: str | None = None
    crosswalk: Path | None = None
    crosswalk_on: str = "commune"
    lang: str = "en"

    def __post_init__(self) -> None:
        check(self.lang in ("en", "vi"), f"outputs lang={self.lang!r}: use 'en' or 'vi'")
        check(self.crosswalk is None or self.aggregate is not None,
               "a crosswalk needs an aggregate output (--aggregate-out)")

    def table_paths(self) -> dict[str, list[Path]]:
        """Kind -> output paths of the tables, the rasters, the map and the manifest."""
        out = {k: [self.dir / n for n in getattr(self, k)]
               for k in ("classified", "plan", "priority")}
        for kind in ("coverage", "aggregate", "sweep", "manifest"):
            name = getattr(self, kind)
            out[kind] = [self.dir / name] if name else []
        out["map"] = [self.map] if self.map else []
        return out

    def keyed(self) -> dict[str, Path]:
        """Key -> path: a kind's first file is the kind, the next ones ``kind_suffix``."""
        out: dict[str, Path] = {}
        for kind, paths in self.table_paths().items():
            for i, p in enumerate(paths):
                out[kind if i == 0 else f"{kind}_{p.suffix.lstrip('.').lower()}"] = p
        return out

    @classmethod
    def only(cls, **files: Any) -> OutputSpec:
        """Exactly the files given (paths as they are), nothing else: the commands' outputs.

        ``classified=``, ``plan=``, ``priority=``, ``coverage=``, ``aggregate=``,
        ``sweep=``, ``manifest=`` name one path each (None: not written); ``map=`` the
        map; other keys (``crosswalk``, ``lang``, ``title``...) as the fields.
        """
        kw: dict[str, Any] = {"dir": Path(), "classified": (), "plan": (), "priority": (),
                              "map": None, "manifest": None}
        for key, value in files.items():
            if key in ("classified", "plan", "priority"):
                kw[key] = (str(value),) if value is not None else ()
            elif key in ("coverage", "aggregate", "sweep", "manifest"):
                kw[key] = str(value) if value is not None else None
            else:
                kw[key] = value
        return cls(**kw)


# --------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class RunSpec:
    """A whole run: inputs, every parameter, outputs, its name and where it runs.

    Attributes
    ----------
    inputs : InputPaths or None
        The input files (None: a config file's settings before the CLI names the files).
    params : ScenarioParams
        Every parameter (profile, model, plan and costs, budget, phases, locks, sharing).
    outputs : OutputSpec
        What the run writes (:meth:`OutputSpec.only` for exactly the files asked).
    name : str
        The run's (scenario's) name.
    engine : dict, optional
        The ``[engine]`` table (:func:`coverage.engine.engine_from_config`): where the
        parallel stages run, which never changes a result.
    classified_input : bool
        The villages file is already classified (``covgap plan``): the run plans on its
        classes instead of classifying again.
    """

    inputs: InputPaths | None = None
    params: ScenarioParams = field(default_factory=ScenarioParams)
    outputs: OutputSpec = field(default_factory=lambda: OutputSpec.only())
    name: str = "base"
    engine: Mapping[str, Any] | None = field(default=None, compare=False)
    classified_input: bool = False

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with fields changed; ``params`` may be a dict of parameter changes."""
        if isinstance(changes.get("params"), Mapping):
            changes["params"] = self.params.replace(**changes["params"])
        return dataclasses.replace(self, **changes)
