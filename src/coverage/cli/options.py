"""Options shared by several commands, and the text the commands print."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pandas as pd

from ..errors import did_you_mean
from ..params import PROFILES

FileIn = click.Path(dir_okay=False, path_type=Path)
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "mn": 1e6, "b": 1e9, "bn": 1e9, "ty": 1e9, "t": 1e12}


class _Separators(ValueError):
    """Raised when an amount's separators cannot be read for sure."""


def _plain_number(digits: str, suffix: str) -> str:
    """The number of an amount as Python reads it, its separators resolved.

    Vietnamese writes ``20.000.000.000`` and ``1,5 tỷ``, English ``20,000,000,000`` and
    ``1.5bn``: a separator used more than once groups thousands; with both, the last one is
    the decimal mark; a lone comma is a decimal mark unless three digits follow it
    (``40,000``); a lone separator before three digits and a unit (``1,500ty``,
    ``1.500ty``) could be either and is refused, as is a lone point before three digits
    (``1.500``: 1,500 written the Vietnamese way, or 1.5 with three decimals).

    Raises
    ------
    _Separators
        When the separators group no thousands, or could mean either.
    """
    marks = [c for c in digits if c in ".,"]
    if not marks:
        return digits
    if len(set(marks)) == 2:
        decimal = marks[-1]
    elif len(marks) == 1 and suffix and re.fullmatch(r"\d+[.,]\d{3}", digits):
        raise _Separators(f"'{marks[0]}' before three digits and a unit could group "
                          "thousands or mark decimals")
    elif re.fullmatch(r"\d+\.\d{3}", digits):
        raise _Separators("'.' before three digits could group thousands or mark decimals")
    elif len(marks) > 1 or (marks[0] == "," and re.fullmatch(r"\d+,\d{3}", digits)):
        decimal = None
    else:
        decimal = marks[0]
    mark = marks[0] if decimal is None else ({".", ","} - {decimal}).pop()  # grouping
    whole = digits.rsplit(decimal, 1)[0] if decimal else digits
    if mark in whole:
        if not re.fullmatch(rf"\d{{1,3}}(\{mark}\d{{3}})+", whole):
            raise _Separators(f"'{mark}' groups thousands only in threes")
        digits = digits.replace(mark, "")
    return digits.replace(",", ".") if decimal == "," else digits


class Amount(click.ParamType):
    """A money amount: ``40e9``, ``40_000_000_000``, ``40bn``, ``1.5ty`` (tỷ), ``500M``.

    Thousands may be grouped and decimals marked the Vietnamese way or the English way
    (``20.000.000.000``, ``1,5 tỷ``; ``20,000,000,000``, ``1.5bn``).
    """

    name = "AMOUNT"

    def convert(self, value: Any, param, ctx) -> float:
        """Parse the amount, failing with a usage error."""
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower().replace("_", "").replace(" ", "")
        text = text.replace("tỷ", "ty")
        match = re.fullmatch(r"([0-9.,]+(?:e[0-9]+)?)([a-z]*)", text)
        amount, why = None, ""
        if match and match.group(2) in _SUFFIX:
            try:
                number = _plain_number(match.group(1), match.group(2))
            except _Separators as exc:
                why = f" ({exc})"
            else:
                with contextlib.suppress(ValueError):  # "5e", "1..5"
                    amount = float(number) * _SUFFIX[match.group(2)]
        if amount is None:
            self.fail(f"{value!r} is not an amount{why}; write e.g. 40e9, 40000000000, "
                      "20.000.000.000, 1.5bn or 1,5ty", param, ctx)
        if amount <= 0:
            self.fail("the budget must be positive", param, ctx)
        return amount


def budget(default_help: str | None = None) -> Callable:
    """``--budget AMOUNT`` in the cost model's currency."""
    extra = f" [default: {default_help}]" if default_help else ""
    return click.option("--budget", type=Amount(),
                         help="Money to spend, in the cost model's currency (VND by default),"
                         f" e.g. 40e9 or 40bn.{extra}")


def table_out(formats: tuple[str, ...] | None = None) -> Callable:
    """A click callback refusing an output table's unknown extension before any work."""
    def check(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        from ..io.write import TABLE_FORMATS

        known = formats or TABLE_FORMATS
        if value is not None and value.suffix.lower() not in known:
            raise click.BadParameter(f"{value}: unknown table format {value.suffix!r}; use "
                                     f"{', '.join(known)}", ctx=ctx, param=param)
        return value
    return check


overwrite = click.option("--overwrite", is_flag=True,
                         help="Replace outputs that exist (never done without it).")

def _columns(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict:
    """``--col`` values merged over the config file's ``[columns]`` (``--config`` is eager)."""
    from ..errors import CoverageGapError
    from ..io import column_mapping

    try:  # the config file's own faults are an unusable input (exit 1), not --col's
        config = column_mapping(ctx.params.get("config"))
    except CoverageGapError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return column_mapping(ctx.params.get("config"), value) if value else config
    except CoverageGapError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


village_columns_opts = [
    click.option("--id-col", default="village_id", show_default=True,
                 help="Column holding the village id."),
    click.option("--name-col", default="name", show_default=True,
                 help="Column holding the village name."),
    click.option("--pop-col", default="population", show_default=True,
                 help="Column holding residents."),
    click.option("--col", "columns", multiple=True, metavar="[KIND.]NAME=COLUMN",
                 callback=_columns,
                 help="Map a contract column to the file's, e.g. --col name=TEN_THON or "
                      "--col towers.site_id=CELL_ID (KIND: villages, towers, measurements, "
                      "access, candidates, coverage); repeatable; wins over the config's "
                      "[columns]."),
]
#: ``--col`` alone (``plan``: its villages are the classified table, with ``village_id``).
column_option = village_columns_opts[-1]


def village_columns(f: Callable) -> Callable:
    """--id-col, --name-col, --pop-col and --col."""
    for o in reversed(village_columns_opts):
        f = o(f)
    return f


#: --config FILE.toml; eager, so that --col can merge the file's [columns] table.
config_option = click.option(
    "--config", type=FileIn, is_eager=True,
    help="TOML file with [profile], [model], [plan], [costs] and [columns] settings.")


class NameChoice(click.Choice):
    """click's Choice whose refusal also suggests the closest name, as the settings do."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        """The choice, or click's refusal with the closest choices suggested."""
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            hint = did_you_mean(value, self.choices)
            self.fail(f"{exc.message.rstrip('.')}{hint}." if hint else exc.message, param,
                      ctx)


def profile_and_config(f: Callable) -> Callable:
    """--profile NAME and --config FILE.toml."""
    f = config_option(f)
    return click.option("--profile", type=NameChoice(sorted(PROFILES)),
                        help="Rules profile [default: vn-2025, or the config's].")(f)


#: --coverage FILE, repeatable: operators' coverage maps (their claims, compared, never deciding).
coverage_option = click.option(
    "--coverage", type=FileIn, multiple=True,
    help="Operator coverage map: polygons with operator and tech columns, or a dBm GeoTIFF "
         "named <operator>_<tech>.tif; repeatable. Compared with the classification "
         "(pop_claimed_share), never deciding it.")


#: The optional input options, in the order they are applied to a command (click lists
#: them in the help the other way round).
_INPUT_OPTIONS = {
    "coverage": coverage_option,
    "candidates": click.option("--candidates", type=FileIn,
                               help="Candidate site points for the plan."),
    "roads": click.option("--roads", type=FileIn,
                          help="Road network, OSM XML (.osm) or GraphML."),
    "fibre": click.option("--fibre", type=FileIn,
                          help="Fibre routes (lines) or nodes (points)."),
    "access": click.option("--access", type=FileIn,
                           help="Access table (CSV keyed by village_id)."),
    "landcover": click.option("--landcover", type=FileIn,
                              help="Land-cover raster, ESA WorldCover classes "
                                   "(foliage loss; built-up land)."),
    "dem": click.option("--dem", type=FileIn, multiple=True,
                        help="Elevation raster, metres (GeoTIFF or SRTM .hgt); "
                             "repeatable: tiles side by side are mosaicked."),
    "population": click.option("--population", type=FileIn,
                               help="People per cell raster (WorldPop-style GeoTIFF)."),
    "measurements": click.option("--measurements", type=FileIn, multiple=True,
                                 help="Point tests or Ookla tiles; repeatable."),
}


def inputs(*, towers: bool = False, optional_towers: bool = False, measurements: bool = False,
           population: bool = False, dem: bool = False, access: bool = False,
           fibre: bool = False, roads: bool = False, candidates: bool = False,
           landcover: bool | None = None, coverage: bool = False) -> Callable:
    """The input options a command takes, named as in the contract.

    ``landcover`` (default: with ``dem``) adds ``--landcover``, an optional input beyond the
    contract's list (foliage loss and built-up land for the model).
    """
    wanted = {"coverage": coverage, "candidates": candidates, "roads": roads, "fibre": fibre,
              "access": access, "landcover": dem if landcover is None else landcover,
              "dem": dem, "population": population, "measurements": measurements}
    opts = [click.option("--assume-crs", metavar="CRS",
                         help="CRS of inputs that state none, e.g. EPSG:4326.")]
    opts += [option for name, option in _INPUT_OPTIONS.items() if wanted[name]]
    if towers or optional_towers:
        opts.append(click.option("--towers", type=FileIn, multiple=True, required=towers,
                                 help="OpenCelliD CSV or site table; repeatable."))

    def deco(f: Callable) -> Callable:
        for o in opts:
            f = o(f)
        return f
    return deco


def refuse_existing(paths: list[Path | None], overwrite: bool) -> None:
    """Stop before any work when an output exists without --overwrite, or cannot be written."""
    from ..errors import OutputExistsError
    from ..io import check_distinct, check_writable

    check_distinct(paths)
    for p in paths:  # first: a name too long for the file system cannot even be looked up
        if p is not None:
            check_writable(p)
    for p in paths:
        if p is not None and Path(p).exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass --overwrite to replace it")


def format_summary(table: pd.DataFrame) -> str:
    """Villages and people per class, as text."""
    total_v = int(table["villages"].sum())
    total_p = int(table["people"].sum())
    lines = ["", f"{'class':<24}{'villages':>10}{'people':>12}"]
    for cls, row in table.iterrows():
        lines.append(f"{cls:<24}{int(row['villages']):>10,}{int(row['people']):>12,}")
    lines.append(f"{'total':<24}{total_v:>10,}{total_p:>12,}")
    return "\n".join(lines)


def format_plan(result, n: int = 5) -> str:
    """The first sites to build and the plan's totals, as text."""
    s = result.summary
    sites = result.sites
    cur = s.get("currency", "")
    lines = ["", f"Plan: {s['sites']} site(s), {s['people_connected']:,.0f} people connected "
             f"for {s['cost']:,.0f} {cur}"]
    if "upper_bound_people" in s:
        lines.append(f"  (no plan within the limits connects more than "
                     f"{s['upper_bound_people']:,.0f} people, by the "
                     f"{s['upper_bound_method']} bound; gap {s.get('gap_to_bound', 0):.1%})")
    elif "lp_bound_people" in s:
        lines.append(f"  (LP upper bound {s['lp_bound_people']:,.0f} people; "
                     f"gap {s.get('gap_to_bound', 0):.1%})")
    hows = {"optimal": "proven within its gap", "node_limit": "stopped at its node limit",
            "time_limit": "stopped at its time limit"}
    if s.get("milp_status") in hows:
        lines.append(f"  (exact solver: {hows[s['milp_status']]}, {s.get('milp_gap', 0):.2%} "
                     "from its own bound)")
    if s.get("time_limited"):
        lines.append(f"  (stopped by the wall clock: {', '.join(s['time_limited'])}; the plan "
                     "may differ from run to run: raise [plan] time_limit_s)")
    if s.get("empty_reason"):
        lines.append(f"  No site is proposed: {s['empty_reason']}.")
    if s.get("unspent") and s.get("min_site_people"):
        lines.append(f"  ({s['unspent']:,.0f} {cur} of the budget left unspent; a site adding "
                     f"fewer than {s['min_site_people']:g} people is not built)")
    if len(sites):
        lines.append(f"First sites to build:\n{'rank':>4}  {'site':<18}{'kind':<10}"
                     f"{'people':>9}{'cost':>18}")
        for r in sites.head(n).itertuples():
            lines.append(f"{r.rank:>4}  {r.site_id:<18}{r.kind:<10}{r.pop_gain:>9,.0f}"
                         f"{r.cost:>18,.0f}")
    return "\n".join(lines)


def engine(f: Callable) -> Callable:
    """``--engine local|dask`` and ``--scheduler ADDRESS`` (see :mod:`coverage.engine`)."""
    f = click.option("--scheduler", metavar="ADDRESS",
                     help="Address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                     "(implies --engine dask) [default with --engine dask: a local "
                     "cluster].")(f)
    return click.option("--engine", "engine_kind", type=NameChoice(["local", "dask"]),
                        default=None,
                        help="Where the parallel stages (model tiles, zonal statistics) run: "
                        "in this process, or on Dask (needs the `dask` extra). Results are "
                        "the same.  [default: local]")(f)


#: ``--manifest PATH`` / ``--no-manifest``: what reproduces the command's figures.
def manifest(f: Callable) -> Callable:
    """``--manifest PATH`` and ``--no-manifest``."""
    f = click.option("--no-manifest", is_flag=True,
                     help="Write no manifest.")(f)
    return click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
                        help="The manifest (tool version, parameters, SHA-256 of every "
                        "input) [default: OUT + .manifest.json].")(f)


def manifest_path(out: Path, given: Path | None, off: bool) -> Path | None:
    """Where the manifest goes: ``given``, else beside ``out``; None with --no-manifest."""
    if off:
        return None
    return given if given is not None else out.with_name(out.name + ".manifest.json")


def shares(items: tuple[str, ...]) -> dict[str, float] | None:
    """``--market-share OPERATOR=SHARE`` values as a mapping (None when not given)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: write OPERATOR=SHARE, e.g. Viettel=0.55",
                                     param_hint="--market-share")
    return out or None


def settings_spec(config: Path | None, *, profile: str | None = None,
                  scenario: dict[str, Any] | None = None, file_limits: bool = True):
    """The run settings of ``--config`` and the options, through the one parser.

    The options are written as the tables they set (``--profile`` as ``[profile] name``,
    ``--budget`` as ``[scenario] budget``...) and win over the file; None values are
    options not given. ``file_limits=False`` (``classify``, ``plan``): the file's budget,
    phases and number of sites are ignored; the command's options set them, or none.
    """
    from ..settings import spec_from_config

    tables: dict[str, Any] = {}
    if profile:
        tables["profile"] = {"name": profile}
    given = {k: v for k, v in (scenario or {}).items() if v is not None and v != []}
    if given:
        tables["scenario"] = given
    return spec_from_config(config, options=tables, file_limits=file_limits)


def run_file_spec(path: Path, *, out_dir: Path | None = None, map_path: Path | None = None,
                  budget: float | None = None, coverage: tuple[Path, ...] = ()):
    """A run file's spec with ``-o``, ``--map`` and ``--budget`` over its own settings.

    ``coverage`` (``--coverage``) adds operators' coverage maps to the file's own.
    """
    import dataclasses

    from ..settings import read_run_file

    spec = read_run_file(path)
    changes: dict[str, Any] = {}
    if out_dir is not None:
        changes["dir"] = Path(out_dir)
    if map_path is not None:
        changes["map"] = Path(map_path)
    spec = spec.replace(outputs=dataclasses.replace(spec.outputs, **changes))
    if coverage:
        spec = spec.replace(inputs=dataclasses.replace(
            spec.inputs, coverage=spec.inputs.coverage + tuple(map(Path, coverage))))
    return spec.replace(params={"budget": budget}) if budget is not None else spec


@contextlib.contextmanager
def engine_for(kind: str | None, scheduler: str | None) -> Iterator[Any]:
    """The engine of ``--engine``/``--scheduler`` (None: the config's, else local), closed after.

    ``--engine local`` wins over a config's ``[engine]`` table.
    """
    if kind is None and scheduler is None:
        yield None
        return
    if kind == "local" and scheduler is not None:
        raise click.UsageError("--scheduler needs --engine dask (or no --engine)")
    from ..engine import get_engine

    engine = get_engine(kind or "dask", scheduler=scheduler)
    try:
        yield engine
    finally:
        engine.close()
