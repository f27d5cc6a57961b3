"""Measurements read in chunks: tens of millions of rows without holding them all.

:func:`iter_measurements` yields the rows of one file as GeoDataFrames of at most
``chunk_rows`` rows each, in the schema of :func:`coverage.io.read_measurements` (which
still reads a whole file at once, and stays the reader for province-sized inputs). CSV is
read with pandas' chunked C parser, Parquet and GeoParquet by row batches with pyarrow; any
other format GDAL reads is read whole and yielded as one chunk (those formats are not used
for tens of millions of points). Consumers aggregate each chunk and drop it, see
:func:`coverage.engine.aggregate_measurement_chunks` and
:func:`coverage.engine.compact_measurements`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from ..errors import InputError
from ._common import PathLike, check_path
from .measurements import OOKLA_COLUMNS, _is_ookla, _ookla_tiles, _point_tests
from .measurements import read_measurements as _read_whole
from .vector import _NUMERIC, _sniff_csv, frame_to_gdf, sniff_format

__all__ = ["iter_measurements"]

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
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    p = check_path(path, "measurements")
    fmt = sniff_format(p)
    ookla = _is_ookla(p)
    if fmt == "CSV":
        frames = _csv_chunks(p, chunk_rows)
    elif fmt == "Parquet":
        frames = _parquet_chunks(p, chunk_rows)
    else:
        yield _read_whole(p, columns=columns, assume_crs=assume_crs)
        return
    rows = 0
    for first, df in frames:
        if ookla:
            chunk = _chunk_or_none(lambda d=df: _ookla_tiles(d, p))
        else:
            chunk = _chunk_or_none(lambda d=df, f=first: _points(d, p, f, columns, assume_crs))
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
        reader = pd.read_csv(path, dtype=dtype, chunksize=chunk_rows, **kwargs)
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


def _parquet_chunks(path: Path, chunk_rows: int
                    ) -> Iterator[tuple[int | None, pd.DataFrame | gpd.GeoDataFrame]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # ArrowInvalid on truncated files
        raise InputError(f"measurements file {path} cannot be read as Parquet ({exc}); is it "
                         "complete?") from None
    meta = pf.schema_arrow.metadata or {}
    geo = json.loads(meta[b"geo"]) if b"geo" in meta else None
    for batch in pf.iter_batches(batch_size=chunk_rows):
        df = batch.to_pandas()
        if geo is None or set(OOKLA_COLUMNS) & set(df.columns) == {"quadkey", "tile"}:
            yield None, df
            continue
        col = geo.get("primary_column", "geometry")
        crs = geo.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")
        crs = crs if crs is not None else "OGC:CRS84"
        geom = shapely.from_wkb(df.pop(col).to_numpy())
        yield None, gpd.GeoDataFrame(df, geometry=geom, crs=crs)
