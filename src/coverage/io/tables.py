"""The optional inputs: access table, fibre, candidate sites, road graph; column mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import InputError, ParameterError, SchemaError, did_you_mean
from ._common import (
    MAPPABLE,
    PathLike,
    apply_columns,
    as_text_id,
    check_path,
    coordinate_mapping,
    missing_columns_error,
    rows_text,
)
from .vector import read_csv_table, read_vector, read_xlsx_table, sniff_format

__all__ = ["column_mapping", "read_access", "read_candidates", "read_fibre", "read_roads"]


def column_mapping(config: Mapping[str, Any] | PathLike | None = None,
                   options: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """Column mappings by input kind, from a config file's ``[columns]`` and ``--col`` options.

    Parameters
    ----------
    config : mapping or path, optional
        A parsed config, or the TOML file. Its ``[columns.villages]``, ``[columns.towers]``,
        ``[columns.measurements]``, ``[columns.access]``, ``[columns.candidates]`` and
        ``[columns.coverage]`` tables
        map contract names to the file's columns (``village_id = "MA_THON"``).
    options : iterable of str
        ``KIND.NAME=COLUMN`` or ``NAME=COLUMN`` (villages), e.g. ``towers.site_id=CELL``;
        these win over the config.

    Returns
    -------
    dict
        ``{kind: {contract name: source column}}``.

    Raises
    ------
    ParameterError
        For an unknown kind or contract name (the known ones are listed).

    Examples
    --------
    >>> column_mapping({"columns": {"villages": {"name": "TEN"}}}, ["towers.site_id=ID"])
    {'villages': {'name': 'TEN'}, 'towers': {'site_id': 'ID'}}
    """
    if config is not None and not isinstance(config, Mapping):
        from ..params import load_config

        config = load_config(config)
    out: dict[str, dict[str, str]] = {}
    table = (config or {}).get("columns", {})
    if not isinstance(table, Mapping):
        raise ParameterError("config [columns] must be a table of tables, e.g. "
                             "[columns.villages] village_id = \"MA_THON\"")
    for kind, mapping in table.items():
        if not isinstance(mapping, Mapping):
            raise ParameterError(f"config [columns.{kind}] must be a table of name = "
                                 "\"column\" pairs")
        for name, source in mapping.items():
            _add(out, kind, name, str(source), where=f"config [columns.{kind}]")
    for option in options:
        key, sep, source = option.partition("=")
        if not sep or not source.strip() or not key.strip():
            raise ParameterError(f"--col {option!r} must look like NAME=COLUMN or "
                                 "KIND.NAME=COLUMN, e.g. --col village_id=MA_THON")
        kind, dot, name = key.strip().rpartition(".")
        _add(out, kind if dot else "villages", name, source.strip(), where=f"--col {option}")
    return out


def _add(out: dict, kind: str, name: str, source: str, *, where: str) -> None:
    if kind not in MAPPABLE:
        raise ParameterError(f"{where}: unknown input kind {kind!r}"
                             f"{did_you_mean(kind, MAPPABLE)}; use one of "
                             f"{', '.join(MAPPABLE)}")
    if name not in MAPPABLE[kind]:
        raise ParameterError(f"{where}: {kind} have no column {name!r} to map"
                             f"{did_you_mean(name, MAPPABLE[kind])}; known: "
                             f"{', '.join(MAPPABLE[kind])}")
    out.setdefault(kind, {})[name] = source


def read_access(path: PathLike, *, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read the access table keyed by ``village_id`` (text); shares are checked to be in 0..1.

    A village missing from the table, or an empty cell, sets no constraint (NaN).

    Raises
    ------
    SchemaError
        When ``village_id`` is missing or duplicated, or a share lies outside 0..1 (the
        lines are listed; percentages are the usual cause).
    """
    path = check_path(path, "access")
    fmt = sniff_format(path)
    if fmt == "Parquet":
        df = pd.read_parquet(path).astype({c: object for c in ("village_id",)}, errors="ignore")
    elif fmt == "XLSX":
        df = read_xlsx_table(path, what="access")
    else:
        df = read_csv_table(path, what="access")
    df = apply_columns(df, columns, what="access", path=path)
    if "village_id" not in df.columns:
        raise missing_columns_error(df, ["village_id"], what="access", path=path,
                                    hint="Map the id with --col access.village_id=COLUMN")
    df["village_id"] = as_text_id(df["village_id"])
    for col in ("electricity_share", "smartphone_share", "monthly_income", "data_price_1gb"):
        df[col] = (pd.to_numeric(df[col], errors="coerce").astype(float)
                   if col in df.columns else np.nan)
    for col in ("electricity_share", "smartphone_share"):
        bad = ((df[col] < 0) | (df[col] > 1)).to_numpy()
        if bad.any():
            raise SchemaError(f"access file {path}: {col} must be a share in 0..1; "
                              f"{rows_text(np.flatnonzero(bad), first_line=2)} are outside "
                              "(percentages? divide by 100)")
    for col in ("monthly_income", "data_price_1gb"):
        bad = (df[col] < 0).to_numpy()
        if bad.any():
            raise SchemaError(f"access file {path}: negative {col} in "
                              f"{rows_text(np.flatnonzero(bad), first_line=2)}")
    dup = df["village_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        raise SchemaError(f"access file {path}: duplicate village_id "
                          f"{sorted(set(df.village_id[dup]))[:10]} "
                          f"({rows_text(np.flatnonzero(dup), first_line=2)}); keep one row "
                          "per village")
    return df.set_index("village_id")


def read_fibre(path: PathLike, *, assume_crs: str | None = None) -> gpd.GeoDataFrame:
    """Read fibre routes (lines) or nodes (points), in the file's CRS."""
    return read_vector(path, what="fibre", assume_crs=assume_crs)


def read_candidates(path: PathLike, *, columns: Mapping[str, str] | None = None,
                    assume_crs: str | None = None) -> gpd.GeoDataFrame:
    """Read candidate site points (EPSG:4326); ``site_id`` is ``cand-N`` when absent."""
    gdf = read_vector(path, what="candidates", assume_crs=assume_crs,
                      xy=coordinate_mapping(columns)).to_crs(4326)
    gdf = apply_columns(gdf, {k: v for k, v in (columns or {}).items()
                              if k not in ("lon", "lat")}, what="candidates", path=Path(path))
    if "site_id" not in gdf.columns:
        gdf["site_id"] = [f"cand-{i + 1}" for i in range(len(gdf))]
    gdf["site_id"] = as_text_id(gdf["site_id"])
    gdf["geometry"] = gdf.geometry.representative_point()
    return gdf


def read_roads(path: PathLike):  # -> networkx.MultiDiGraph
    """Read a road graph from OSM XML (``.osm``) or GraphML with osmnx, offline."""
    import osmnx as ox

    path = check_path(path, "roads")
    fmt = sniff_format(path)
    try:
        if fmt == "GraphML":
            return ox.load_graphml(path)
        if fmt != "OSM":
            raise InputError(f"roads file {path} is {fmt}, not OSM XML or GraphML")
        return ox.graph_from_xml(path, simplify=True, retain_all=True)
    except InputError:
        raise
    except Exception as exc:  # osmnx/networkx/lxml errors on broken or empty files
        if type(exc).__name__ == "InsufficientResponseError":  # osmnx: no element at all
            raise InputError(f"roads file {path} holds no OSM element (no node, no way): is "
                             "the export complete, and of the right area? Export the area's "
                             "highways again, or leave --roads out") from None
        raise InputError(f"roads file {path} cannot be read by osmnx ({exc}); give an OSM XML "
                         "(.osm) or GraphML file with highways") from None
