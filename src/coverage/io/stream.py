"""Measurements read in chunks: tens of millions of rows without holding them all.

:func:`iter_measurements` yields the rows of one file as GeoDataFrames of at most
``chunk_rows`` rows each, in the schema of :func:`coverage.io.read_measurements` (which
still reads a whole file at once, and stays the reader for province-sized inputs). CSV is
read with pandas' chunked C parser, Parquet and GeoParquet by row batches with pyarrow; any
other format GDAL reads is read whole and yielded as one chunk (those formats are not used
for tens of millions of points). Consumers aggregate each chunk and drop it, see
:func:`coverage.engine.aggregate_measurement_chunks` and
:func:`coverage.engine.compact_measurements`.

:func:`iter_measurement_columns` yields the same rows as plain columns (``lon``/``lat``
instead of a point per row, no timestamps): what compaction needs, three times faster on
ten million tests (no shapely object per row; labels normalised once per distinct value).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from ..errors import InputError
from ._common import PathLike, check_path
from .measurements import (
    OOKLA_COLUMNS,
    _clean_values,
    _is_ookla,
    _ookla_tiles,
    _point_tests,
    _test_values,
)
from .measurements import read_measurements as _read_whole
from .vector import _NUMERIC, _sniff_csv, frame_to_gdf, frame_xy, sniff_format

__all__ = ["iter_measurement_columns", "iter_measurements"]

#: Rows per chunk by default: about 100-200 MB of pandas objects for point tests.
CHUNK_ROWS = 500_000


def iter_measurements(
    path: PathLike,
    *,
    chunk_rows: int = CHUNK_ROWS,
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
) -> Iterator[gpd.GeoDataFrame]:
    """Yield the observations of one measurements file, ``chunk_rows`` rows at a time.

    Parameters
    ----------
    path : path-like
        Point tests (CSV with ``lon``/``lat`` or WKT, Parquet, GeoParquet, or any GDAL
        point layer) or Ookla tiles (CSV or Parquet).
    chunk_rows : int
        Rows read at a time (memory grows with it, not with the file).
    columns, assume_crs
        As for :func:`coverage.io.read_measurements`.

    Yields
    ------
    GeoDataFrame
        Cleaned observations in EPSG:4326 with the columns of
        :func:`coverage.io.read_measurements`; chunks left with no usable row are skipped.

    Raises
    ------
    InputError
        When the file cannot be read or has no usable row at all.
    """
    yield from _chunks(path, chunk_rows, columns, assume_crs, points=True)


def iter_measurement_columns(
    path: PathLike,
    *,
    chunk_rows: int = CHUNK_ROWS,
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the observations of one measurements file as plain columns, no geometry.

    :func:`iter_measurements` without building a point per row, for compaction
    (:func:`coverage.engine.compact_measurements`) and aggregation
    (:func:`coverage.engine.aggregate_measurement_chunks`) of tens of millions of tests:
    positions come as ``lon``/``lat`` columns (EPSG:4326 degrees), ``timestamp`` is left
    out (compaction drops it, and parsing ten million dates is the slowest part of a read)
    and ``operator`` keeps the file's text type (Arrow strings, no Python object per row).
    Rows, values, cleaning and warnings are those of :func:`iter_measurements`.

    Parameters
    ----------
    path, chunk_rows, columns, assume_crs
        As for :func:`iter_measurements`.

    Yields
    ------
    DataFrame
        ``tech``, ``operator``, ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``,
        ``latency_ms``, ``weight``, ``source``, ``lon``, ``lat``.

    Raises
    ------
    InputError
        When the file cannot be read or has no usable row at all.
    """
    yield from _chunks(path, chunk_rows, columns, assume_crs, points=False)


def _chunks(path: PathLike, chunk_rows: int, columns: Mapping[str, str] | None,
            assume_crs: str | None, *, points: bool
            ) -> Iterator[gpd.GeoDataFrame | pd.DataFrame]:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    p = check_path(path, "measurements")
    fmt = sniff_format(p)
    ookla = _is_ookla(p)
    if fmt == "CSV":
        frames = _csv_chunks(p, chunk_rows)
    elif fmt == "Parquet":
        # columns: the timestamps are not read (the text of ten million dates)
        skip = () if points else {"timestamp", *(v for k, v in (columns or {}).items()
                                               if k == "timestamp")}
        frames = _parquet_chunks(p, chunk_rows, skip=skip)
    else:
        whole = _read_whole(p, columns=columns, assume_crs=assume_crs)
        yield whole if points else _as_columns(whole)
        return
    rows = 0
    for first, df in frames:
        if ookla:
            chunk = _chunk_or_none(lambda d=df: _ookla_tiles(d, p))
            if chunk is not None and not points:
                chunk = _as_columns(chunk)
        elif points:
            chunk = _chunk_or_none(lambda d=df, f=first: _points(d, p, f, columns, assume_crs))
        else:
            chunk = _chunk_or_none(lambda d=df, f=first: _columns(d, p, f, columns,
                                                                   assume_crs))
        if chunk is not None:
            rows += len(chunk)
            yield chunk
    if rows == 0:
        raise InputError(f"measurements file {p}: no row has a usable position")


def _chunk_or_none(make) -> gpd.GeoDataFrame | None:
    """A chunk, or None when all its rows were dropped (reported by the cleaner)."""
    try:
        return make()
    except InputError as exc:
        if "no row has" in str(exc):
            return None
        raise


def _points(df: pd.DataFrame, path: Path, first_line: int | None,
            columns: Mapping[str, str] | None, assume_crs: str | None) -> gpd.GeoDataFrame:
    if isinstance(df, gpd.GeoDataFrame):
        gdf = df
    else:
        gdf = frame_to_gdf(df, path, what="measurements", assume_crs=assume_crs,
                           first_line=first_line)
    return _point_tests(gdf.to_crs(4326), path, columns=columns)


def _columns(df: pd.DataFrame, path: Path, first_line: int | None,
             columns: Mapping[str, str] | None, assume_crs: str | None) -> pd.DataFrame:
    """:func:`_points` as plain columns, without a point per row where the file has lon/lat."""
    xy = (None if isinstance(df, gpd.GeoDataFrame) else
          frame_xy(df, path, what="measurements", assume_crs=assume_crs,
                   first_line=first_line))
    if xy is None:  # geometries (GeoParquet, WKT): read as points
        return _as_columns(_points(df, path, first_line, columns, assume_crs))
    df, x, y = xy
    if assume_crs is not None:
        crs = CRS.from_user_input(assume_crs)
        if not crs.is_exact_same(CRS.from_epsg(4326)):  # as GeoDataFrame.to_crs(4326)
            x, y = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
    values = _test_values(df, path, columns=columns, columnar=True)
    out, x, y = _clean_values(values, np.asarray(x, float), np.asarray(y, float), path)
    out["lon"], out["lat"] = x, y
    return out


def _as_columns(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """Observations (EPSG:4326 points) as the columns of :func:`iter_measurement_columns`."""
    pts = gdf.geometry.to_numpy()
    out = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name, "timestamp"], errors="ignore"))
    out["lon"], out["lat"] = shapely.get_x(pts), shapely.get_y(pts)
    return out


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    encoding, delimiter = _sniff_csv(path)
    kwargs = {"keep_default_na": False, "na_values": [""], "encoding": encoding,
              "sep": delimiter, "skipinitialspace": True, "on_bad_lines": "error"}
    with path.open("rb") as fh:
        header = fh.readline().decode(encoding if encoding != "utf-8" else "utf-8-sig",
                                      errors="replace")
    names = [n.strip().strip('"') for n in header.rstrip("\r\n").split(delimiter)]
    numeric = set(_NUMERIC) | {"tests", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms"}
    dtype = defaultdict(lambda: str, {n: "float64" for n in names if n in numeric})
    try:
        # closed also when the consumer stops at a bad chunk (the generator is closed)
        with pd.read_csv(path, dtype=dtype, chunksize=chunk_rows, **kwargs) as reader:
            line = 2
            for df in reader:
                df.columns = [str(c).strip() for c in df.columns]
                yield line, df
                line += len(df)
    except (ValueError, TypeError) as exc:
        # a coordinate or measured value is not a plain number: read it whole, as text
        raise InputError(
            f"measurements file {path}: a numeric column holds text ({exc}); chunked reading "
            "needs plain numbers with a decimal point in lon, lat and the measured columns "
            "(read the file with coverage.io.read_measurements instead)") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"measurements file {path} is not a well-formed CSV ({exc}); rows "
                         "must all have the same number of fields") from None


def _parquet_chunks(path: Path, chunk_rows: int, *, skip: Iterable[str] = ()
                    ) -> Iterator[tuple[int | None, pd.DataFrame | gpd.GeoDataFrame]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # ArrowInvalid on truncated files
        raise InputError(f"measurements file {path} cannot be read as Parquet ({exc}); is it "
                         "complete?") from None
    meta = pf.schema_arrow.metadata or {}
    geo = json.loads(meta[b"geo"]) if b"geo" in meta else None
    names = [n for n in pf.schema_arrow.names if n not in set(skip)]
    read = names if len(names) < len(pf.schema_arrow.names) else None
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=read):
        df = batch.to_pandas()
        if geo is None or set(OOKLA_COLUMNS) & set(df.columns) == {"quadkey", "tile"}:
            yield None, df
            continue
        col = geo.get("primary_column", "geometry")
        crs = geo.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")
        crs = crs if crs is not None else "OGC:CRS84"
        geom = shapely.from_wkb(df.pop(col).to_numpy())
        yield None, gpd.GeoDataFrame(df, geometry=geom, crs=crs)
