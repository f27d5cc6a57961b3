"""Villages: polygons with text ids, NFC names, an accent-folded key and repaired geometry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import InputError, SchemaError
from ._common import (
    PathLike,
    apply_columns,
    as_numbers,
    as_text_id,
    find_column,
    fold_name,
    missing_columns_error,
    nfc,
    rows_text,
    warn_repair,
)
from .vector import read_vector

__all__ = ["read_villages"]

_POLYGONAL = (3, 6)  # shapely type ids of Polygon, MultiPolygon
_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def read_villages(
    path: PathLike,
    *,
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
    layer: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read village polygons, with text ids, NFC names and valid (multi)polygons.

    Every input column is kept, in order. The id column is copied to ``village_id`` (text,
    leading zeros kept), the name column to ``name`` (NFC, trimmed) and the population
    column to ``population`` (numeric); ``name_key`` is added, the accent-folded name for
    matching ("Nà Lốc" = "Na Loc"). ``commune``, ``district`` and ``province`` are NFC.

    Parameters
    ----------
    path : path-like
        Any vector format :func:`coverage.io.read_vector` reads, in any CRS.
    id_col, name_col, pop_col : str
        Source columns of the id, name and population (``--id-col`` ...).
    columns : mapping, optional
        More mappings ``{contract name: source column}`` (``--col``, the config's
        ``[columns.villages]``); ``id_col`` etc. win when both are given.
    assume_crs : str, optional
        CRS when the file states none.
    layer : str or int, optional
        Layer of a multi-layer file.

    Returns
    -------
    GeoDataFrame
        One row per input feature, in the file's CRS.

    Raises
    ------
    SchemaError
        When the id column is missing (the columns found are listed), or holds empty or
        duplicate ids (the rows are listed).
    InputError
        When a feature has no polygonal area (points, lines, empty geometry).

    Warns
    -----
    RepairWarning
        Invalid geometries repaired with ``make_valid``; geometry collections reduced to
        their polygons; a case-insensitive column match; legacy text encodings.
    """
    mapping = dict(columns or {})
    for contract, given in (("village_id", id_col), ("name", name_col),
                            ("population", pop_col)):
        if given != contract or contract not in mapping:
            mapping[contract] = given
    gdf = read_vector(path, what="villages", assume_crs=assume_crs, layer=layer)
    path = Path(str(path).split("|layername=")[0])
    explicit = {c: c in (columns or {}) or given != c
                for c, given in (("name", name_col), ("population", pop_col))}
    mapping = _resolve_columns(gdf, mapping, explicit, path=path)
    id_source = mapping["village_id"]
    gdf = apply_columns(gdf, mapping, what="villages", path=path)
    gdf["village_id"] = as_text_id(gdf["village_id"])
    _check_ids(gdf["village_id"], id_source, path=path)
    gdf["name"] = nfc(gdf["name"]) if "name" in gdf.columns else gdf["village_id"]
    keys = {n: fold_name(n) for n in gdf["name"].dropna().unique()}  # names repeat
    gdf["name_key"] = gdf["name"].map(keys).fillna("").astype(object)
    if "population" in gdf.columns:
        gdf["population"] = _population(gdf, mapping["population"], path=path)
    for col in ("commune", "district", "province"):
        if col in gdf.columns:
            gdf[col] = nfc(gdf[col])
    _refuse_classified_points(gdf, path)
    gdf[gdf.geometry.name] = polygonal(gdf.geometry, path=path, ids=gdf["village_id"])
    return gdf


def _refuse_classified_points(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Refuse an output of ``covgap classify`` written as CSV or XLSX, naming the fix.

    Those formats carry a point inside each village (``lon``, ``lat``), not its polygon:
    a map or a plan needs the polygons.
    """
    if ("class" in gdf.columns and "reasons" in gdf.columns and len(gdf)
            and (shapely.get_type_id(gdf.geometry.to_numpy()) == 0).all()):
        raise InputError(
            f"villages file {path} is an output of covgap classify as a table, with a point "
            "(lon, lat) inside each village instead of its boundary; the villages' polygons "
            "are needed: give the classify output written as .gpkg, .geojson or .parquet "
            "(covgap classify ... -o classified.gpkg)")


def _resolve_columns(gdf: gpd.GeoDataFrame, mapping: dict[str, str],
                     explicit: dict[str, bool], *, path: Path) -> dict[str, str]:
    """The source column of the id, name and population, found by name (case-insensitive).

    The id column must exist; a name or population column that was asked for explicitly
    must too, one left at its default is dropped from the mapping when absent.
    """
    mapping = dict(mapping)
    id_source = find_column(gdf, mapping["village_id"], what="villages", path=path)
    if id_source is None:
        raise missing_columns_error(
            gdf, [mapping["village_id"]], what="villages", path=path,
            hint="Name the id column with --id-col (or [columns.villages] village_id = ... "
                 "in the config file)")
    if id_source != mapping["village_id"]:
        warn_repair(f"villages file {path}: no column {mapping['village_id']!r}; using "
                    f"{id_source!r}, which differs only by case or spacing")
    mapping["village_id"] = id_source
    for contract in ("name", "population"):
        found = find_column(gdf, mapping[contract], what="villages", path=path)
        if found is not None:
            mapping[contract] = found
        elif explicit[contract]:
            raise missing_columns_error(gdf, [mapping[contract]], what="villages", path=path,
                                        hint="Fix the column mapping")
        else:
            mapping.pop(contract)
    return mapping


def _check_ids(ids: pd.Series, id_source: str, *, path: Path) -> None:
    """Refuse empty or duplicate village ids, listing the rows (0-based)."""
    empty = ids.isna().to_numpy()
    if empty.any():
        raise SchemaError(f"villages file {path}: empty {id_source} in "
                          f"{rows_text(np.flatnonzero(empty))} (0-based); every village needs "
                          "an id")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        dup_ids = sorted(set(ids[dup]))
        raise SchemaError(
            f"villages file {path}: duplicate {id_source} values {dup_ids[:10]}"
            f"{' ...' if len(dup_ids) > 10 else ''} in {rows_text(np.flatnonzero(dup))} "
            "(0-based); ids must be unique: merge the duplicated polygons or give them "
            "distinct ids"
        )


def _population(gdf: gpd.GeoDataFrame, source: str, *, path: Path) -> pd.Series:
    """The population column as float, empty cells NaN; negative or infinite refused."""
    pop = as_numbers(gdf["population"], what="villages", path=path,
                     column=source, ids=gdf["village_id"],
                     id_name="village_id", empty_means="as not given (the population "
                     "raster or the area counts the village)")
    bad = (pop < 0) | ~np.isfinite(pop.fillna(0))
    if bad.any():
        raise SchemaError(
            f"villages file {path}: negative or infinite {source} for ids "
            f"{list(gdf.loc[bad, 'village_id'][:10])}; fix them or leave them empty")
    return pop.astype(float)


def polygonal(geoms: gpd.GeoSeries, *, path: Path, ids: pd.Series | None = None
              ) -> gpd.GeoSeries:
    """Valid 2-D polygons or multipolygons, repairing what can be repaired (and saying so).

    Invalid rings go through ``make_valid``; a GeometryCollection keeps its polygons;
    Z/M coordinates are dropped. Features left without polygon area are refused.
    """
    arr = shapely.force_2d(geoms.to_numpy())
    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    invalid = ~missing & ~shapely.is_valid(arr)
    notes = []
    if invalid.any():
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid])
        n = int(invalid.sum())
        notes.append(f"{n} invalid geometr{'y' if n == 1 else 'ies'} repaired with make_valid "
                     f"({_which(invalid, ids)})")
    types = shapely.get_type_id(arr)
    collection = (types == 7) & ~missing
    if collection.any():
        reduced = []
        for g in arr[collection]:
            parts = shapely.get_parts(g)
            polys = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
            reduced.append(shapely.union_all(polys) if len(polys) else shapely.Polygon())
        arr[collection] = reduced
        notes.append(f"{int(collection.sum())} GeometryCollection(s) reduced to their polygons "
                     f"({_which(collection, ids)})")
    types = shapely.get_type_id(arr)
    area = np.where(missing, 0.0, shapely.area(arr))
    bad = missing | ~np.isin(types, _POLYGONAL) | (area <= 0)
    if bad.any():
        kinds = sorted({"empty" if missing[i] else _TYPE_NAMES.get(int(types[i]), "?")
                        for i in np.flatnonzero(bad)})
        fix = ("draw their boundaries, or delete those features if they are not villages"
               if kinds == ["empty"] else
               "give village boundaries, not points or lines (a village point layer can be "
               "turned into areas with a buffer or Voronoi cells in QGIS)")
        raise InputError(
            f"villages file {path}: {int(bad.sum())} feature(s) have no polygon area "
            f"({', '.join(kinds)}; {_which(bad, ids)}); villages must be polygons or "
            f"multipolygons: {fix}"
        )
    single, multi = int((types == 3).sum()), int((types == 6).sum())
    if notes:
        if single and multi:
            notes.append(f"mixed types kept as {single} Polygon and {multi} MultiPolygon")
        warn_repair(f"villages file {path}: " + "; ".join(notes))
    return gpd.GeoSeries(arr, index=geoms.index, crs=geoms.crs)


def _which(mask: np.ndarray, ids: pd.Series | None) -> str:
    idx = np.flatnonzero(mask)
    if ids is None:
        return rows_text(idx)
    shown = [str(v) for v in ids.to_numpy()[idx[:10]]]
    return f"village_id {', '.join(shown)}{' ...' if len(idx) > 10 else ''}"
