"""Measurements: point tests and Ookla open-data tiles, screened of rows that cannot be used.

Every file is read as a sequence of frames (one for a whole file, or chunks of a large one,
see :mod:`coverage.io.stream`); each frame's rows are screened by one
:class:`~coverage.io._rows.RowScreen` per file, so the rows dropped, their line numbers and
the share off the Earth are counted over the whole file, whatever the chunk size.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from ..errors import InputError, SchemaError
from ._common import (
    PathLike,
    apply_columns,
    assumed_crs,
    check_path,
    coordinate_mapping,
    csv_compression,
    missing_columns_error,
    normalize_tech,
)
from ._rows import MEASUREMENT_LIMITS, MeasurementReport, RowScreen
from .vector import (
    _NUMERIC,
    _number,
    _sniff_csv,
    csv_header,
    frame_to_gdf,
    frame_xy,
    read_csv_table,
    read_vector,
    sniff_format,
)

__all__ = ["MEASUREMENT_LIMITS", "MeasurementReport", "read_measurements"]

log = logging.getLogger(__name__)

_NO_SERVICE = {"none", "no_service", "no service", "noservice", "0", "nosignal", "no_signal"}
OOKLA_COLUMNS = ("quadkey", "tile", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms", "tests",
                 "devices")
#: Columns read as numbers by the C parser when they hold plain numbers only.
NUMERIC_COLUMNS = (*_NUMERIC, "tests", "devices", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms")
Frames = Iterator[tuple[int, pd.DataFrame]]


def read_measurements(
    paths: PathLike | Sequence[PathLike],
    *,
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
    on_report: Callable[[MeasurementReport], None] | None = None,
    operators: Collection[str] | None = None,
) -> gpd.GeoDataFrame:
    """Read point tests and Ookla tiles into one table of observations.

    Parameters
    ----------
    paths : path-like or sequence of them
        Point tests (CSV with ``lon``/``lat`` or any point layer) and Ookla open-data tiles
        (Parquet or CSV as Ookla publishes them; told apart by ``quadkey`` and
        ``avg_d_kbps``).
    columns : mapping, optional
        ``{contract name: source column}`` for point tests.
    assume_crs : str, optional
        CRS of point files that state none.
    on_report : callable, optional
        Called with each file's :class:`MeasurementReport` once the file is read, e.g.
        ``reports.append`` (the report is also logged, and issued as a
        :class:`~coverage.errors.RepairWarning` when rows were dropped).
    operators : collection of str, optional
        The operators the towers name (:func:`coverage.inputs.load_inputs` gives them): a
        file's tests naming another operator are reported, and kept.

    Returns
    -------
    GeoDataFrame
        Columns ``tech`` (``2G``..``5G``, ``none`` for no service, empty when unknown),
        ``operator``, ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``, ``latency_ms``,
        ``timestamp`` (UTC), ``weight`` (tests the row stands for: 1 for a point test,
        ``tests`` for an Ookla tile, placed at the tile's centre), ``source`` and, where
        Ookla tiles were read, ``testers`` (the independent testers a tile stands for:
        its ``devices``, at most its ``tests``, or its ``tests`` where it gives no
        devices; empty for a point test, one tester); EPSG:4326.

    Raises
    ------
    CRSError
        When more than 5% of a file's rows have coordinates that cannot be on Earth
        (swapped columns, projected metres): the file as a whole is suspect.
    InputError
        When a file cannot be read, or none of its rows has a usable position. A file of a
        header only is reported (a :class:`~coverage.errors.RepairWarning`) and gives no
        row.

    Warns
    -----
    RepairWarning
        One per file that had rows dropped (:data:`~coverage.io._rows.DROP_CAUSES`: no
        position, off the Earth, at 0,0, a value outside :data:`MEASUREMENT_LIMITS` or
        infinite): the file's report, with the first line numbers of each cause. An empty
        value is a value not measured; the row stays for its other values. One more per
        file with values read as empty (an unknown technology label, text in a number
        column, a timestamp that does not parse) and one with tests naming an operator
        not in ``operators``: counts and the most frequent values; the rows are kept.
        One per Ookla file with tiles that give no usable ``devices`` (the column
        missing, a value empty, under 1 or not a number): those tiles count as many
        testers as their tests.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        p = check_path(p, "measurements")
        frames.extend(observations(p, None, columns=columns, assume_crs=assume_crs,
                                   on_report=on_report, operators=operators))
    if not frames:  # files of a header only
        return gpd.GeoDataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY.items()},
                                geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                            crs=4326)


#: The observations' columns and types, for a read that found no row.
_EMPTY = {"tech": object, "operator": object, "rsrp_dbm": float, "download_mbps": float,
          "upload_mbps": float, "latency_ms": float, "timestamp": "datetime64[ns, UTC]",
          "weight": float, "source": object}


def observations(path: Path, chunk_rows: int | None, *, columns: Mapping[str, str] | None,
                 assume_crs: str | None, points: bool = True,
                 on_report: Callable[[MeasurementReport], None] | None = None,
                 operators: Collection[str] | None = None,
                 ) -> Iterator[gpd.GeoDataFrame | pd.DataFrame]:
    """The screened observations of one file, a whole file or ``chunk_rows`` rows at a time.

    ``points=False`` yields plain columns with ``lon``/``lat`` instead of points (see
    :func:`coverage.io.iter_measurement_columns`). ``chunk_rows`` None reads the file
    whole (a CSV then with text fallback: decimal commas, stray text). Chunks left with
    no usable row are skipped; the file's report goes to ``on_report`` after the last
    chunk. ``operators``: as :func:`read_measurements`.
    """
    fmt = sniff_format(path)
    ookla = _is_ookla(path)
    if fmt == "CSV":
        screen = RowScreen(path, numbering="line", operators=operators)
        if chunk_rows is None:
            frames: Iterator = iter([(2, read_csv_table(
                path, what="Ookla" if ookla else "measurements", numeric=NUMERIC_COLUMNS,
                skip_blank_lines=False))])
        else:
            frames = _csv_chunks(path, chunk_rows)
    elif fmt == "Parquet":
        frames, total = _parquet_chunks(path, chunk_rows, skip=() if points else {
            "timestamp", *(v for k, v in (columns or {}).items() if k == "timestamp")})
        screen = RowScreen(path, numbering="row", total_rows=total, operators=operators)
    else:
        gdf = read_vector(path, what="measurements", assume_crs=assume_crs,
                          check_coordinates=False)
        frames = iter([(1, gdf)])
        screen = RowScreen(path, numbering="row", operators=operators)
    for first, df in frames:
        blank = (df.isna().all(axis=1).to_numpy() if screen.numbering == "line"
                 and not isinstance(df, gpd.GeoDataFrame) else None)
        if ookla:
            chunk = _ookla_tiles(df, path, screen=screen, first=first, blank=blank)
            if not points:
                chunk = _as_columns(chunk)
        elif points:
            chunk = _points(df, path, first, columns, assume_crs, screen, blank)
        else:
            chunk = _columns(df, path, first, columns, assume_crs, screen, blank)
        if len(chunk):
            yield chunk
    report = screen.finish()
    if on_report is not None:
        on_report(report)


def _is_ookla(path: Path) -> bool:
    fmt = sniff_format(path)
    if fmt == "Parquet":
        import pyarrow.parquet as pq
        try:
            names = pq.read_schema(path).names
        except Exception:  # truncated: the reader reports it
            return False
    elif fmt == "CSV":
        names = csv_header(path)
    else:
        return False
    if "quadkey" in names and "avg_d_kbps" not in names:
        raise SchemaError(
            f"measurements file {path} has a quadkey column, so it is read as Ookla "
            f"open-data tiles, but it lacks avg_d_kbps (the tiles' average download, "
            f"kbit/s); found {', '.join(names)}. Give the file as Ookla publishes it, or "
            "name the column that holds the download avg_d_kbps")
    return "quadkey" in names and "avg_d_kbps" in names


def _parquet_chunks(path: Path, chunk_rows: int | None, *, skip: Iterable[str] = ()
                   ) -> tuple[Frames, int]:
    """``((first row, frame) for each batch, rows in the file)`` of a Parquet file.

    GeoParquet batches come as GeoDataFrames in the file's CRS; rows are counted from 1.
    ``chunk_rows`` None reads the file as one batch.
    """
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
    total = pf.metadata.num_rows

    def batches() -> Frames:
        first = 1
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows or max(total, 1), columns=read):
                df = batch.to_pandas()
                if geo is not None and set(OOKLA_COLUMNS) & set(df.columns) != {"quadkey",
                                                                                 "tile"}:
                    col = geo.get("primary_column", "geometry")
                    crs = geo.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")
                    geom = shapely.from_wkb(df.pop(col).to_numpy())
                    df = gpd.GeoDataFrame(df, geometry=geom,
                                          crs=crs if crs is not None else "OGC:CRS84")
                yield first, df
                first += len(df)
        except OSError as exc:  # pyarrow errors on a damaged file
            raise InputError(f"measurements file {path} cannot be read as Parquet ({exc}); "
                             "is it complete?") from None

    return batches(), total


#: Text a number column may hold for a value not given (what R, numpy and spreadsheets write).
_NA_TEXT = ("", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None", "#N/A")


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(line of the first row, frame)`` of a CSV, ``chunk_rows`` rows at a time.

    Coordinates and measured values are parsed as numbers by the C parser (fast for tens of
    millions of rows). When one holds text that is not a number (a decimal comma, a stray
    word), the rest of the file, from the chunk that failed, is read as text and converted
    as :func:`read_measurements` does, so the rows and their screening are the same. Blank
    lines are kept as empty rows, so line numbers stay the file's across chunks.
    """
    encoding, delimiter = _sniff_csv(path)
    names = csv_header(path)
    numeric = {n for n in names if n in set(NUMERIC_COLUMNS)}
    na_values = {n: list(_NA_TEXT) if n in numeric else [""] for n in names}
    kwargs = {"keep_default_na": False, "na_values": na_values, "encoding": encoding,
              "sep": delimiter, "skipinitialspace": True, "on_bad_lines": "error",
              "skip_blank_lines": False, "chunksize": chunk_rows,
              "compression": csv_compression(path)}
    done = 0  # rows yielded
    for as_text in (False, True):
        dtype = defaultdict(lambda: str, {} if as_text else dict.fromkeys(numeric, "float64"))
        try:
            # closed also when the consumer stops at a bad chunk (the generator is closed)
            with pd.read_csv(path, dtype=dtype, skiprows=range(1, done + 1),
                             **kwargs) as reader:
                for df in reader:
                    df.columns = [str(c).strip() for c in df.columns]
                    yield 2 + done, df
                    done += len(df)
            return
        except pd.errors.ParserError as exc:
            raise InputError(f"measurements file {path} is not a well-formed CSV ({exc}); "
                             "rows must all have the same number of fields") from None
        except (ValueError, TypeError) as exc:
            if as_text:
                raise InputError(f"measurements file {path} cannot be read ({exc})") from None
            log.info("measurements file %s: a number column holds text after line %d; "
                     "reading the rest as text", path, done + 1)


def _xy(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of points, NaN for a missing or empty one."""
    x, y = np.full(len(geoms), np.nan), np.full(len(geoms), np.nan)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    x[ok], y[ok] = shapely.get_x(geoms[ok]), shapely.get_y(geoms[ok])
    return x, y


def _quadkey_tiles(keys: pd.Series) -> np.ndarray:
    """Web-Mercator tile polygons (EPSG:4326) of Bing quadkeys; NaN boxes for bad keys."""
    def bounds(key: object) -> tuple[float, float, float, float]:
        text = str(key) if isinstance(key, str | int) else ""
        if not text or text.strip("0123"):
            return (np.nan,) * 4
        x = y = 0
        for ch in text:
            d = int(ch)
            x, y = (x << 1) | (d & 1), (y << 1) | (d >> 1)
        n = 2 ** len(text)

        def lat(t: float) -> float:
            return float(np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * t / n)))))
        return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)
    if len(keys) == 0:
        return np.array([], dtype=object)
    return shapely.box(*np.array([bounds(k) for k in keys]).T)


def _ookla_tiles(df: pd.DataFrame, path: Path, *, screen: RowScreen, first: int,
                 blank: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Ookla rows as observations at their tiles' centres, screened."""
    missing = [c for c in ("avg_d_kbps", "tests") if c not in df.columns]
    if missing:
        raise missing_columns_error(df, missing, what="Ookla", path=path,
                                    hint=f"Ookla tiles have {', '.join(OOKLA_COLUMNS)}")
    if "tile" in df.columns:  # a tile that is not WKT has no position
        tiles = shapely.from_wkt(df["tile"].astype(object).where(df["tile"].notna(), None)
                                 .to_numpy(), on_invalid="ignore")
    else:
        tiles = _quadkey_tiles(df["quadkey"])
    tests = _number(df["tests"]).fillna(1).clip(lower=1)
    testers, given = _testers(df, tests)
    out = pd.DataFrame({
        "tech": None, "operator": None, "rsrp_dbm": np.nan,
        "download_mbps": _number(df["avg_d_kbps"]) / 1000.0,
        "upload_mbps": (_number(df["avg_u_kbps"]) / 1000.0
                        if "avg_u_kbps" in df.columns else np.nan),
        "latency_ms": _number(df["avg_lat_ms"]) if "avg_lat_ms" in df.columns else np.nan,
        "timestamp": pd.NaT,
        "weight": tests,
        "source": "ookla",
        "testers": testers,
    }, index=df.index)
    centres = shapely.centroid(tiles)
    x, y = _xy(centres)
    keep = screen.keep(out, x, y, first, blank=blank)
    screen.note_devices(int((keep & ~given).sum()), column="devices" in df.columns)
    return gpd.GeoDataFrame(out[keep].reset_index(drop=True), geometry=centres[keep],
                            crs=4326)


def _testers(df: pd.DataFrame, tests: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The independent testers each Ookla tile stands for, and where ``devices`` gave them.

    A tile's ``tests`` are its ``devices``' runs, repeated: 40 tests from 2 handsets are
    two people's experience. Its ``devices`` (at most its ``tests``: a device counted
    without a test is not a tester) where given and at least 1; else its ``tests``, as
    if each test were another person's.
    """
    devices = (_number(df["devices"]) if "devices" in df.columns
               else pd.Series(np.nan, index=df.index))
    given = (devices >= 1).to_numpy()
    return devices.where(given, tests).clip(upper=tests), given


def _points(df: pd.DataFrame, path: Path, first: int, columns: Mapping[str, str] | None,
            assume_crs: str | None, screen: RowScreen, blank: np.ndarray | None
            ) -> gpd.GeoDataFrame:
    """Point tests of a frame (lon/lat, WKT or geometries) as screened observations."""
    if isinstance(df, gpd.GeoDataFrame):
        gdf = df
    else:
        gdf = frame_to_gdf(df, path, what="measurements", assume_crs=assume_crs,
                           first_line=first, strict=False, xy=coordinate_mapping(columns))
    src = gdf.geometry.to_numpy()
    types = shapely.get_type_id(src)  # 0 a point, -1 none
    if ((types != 0) & (types != -1)).any():  # polygons or lines: a point inside each
        src = shapely.point_on_surface(src)
    pts = gpd.GeoSeries(src, crs=gdf.crs).to_crs(4326).to_numpy()
    values = _test_values(gdf, path, columns=columns, screen=screen)
    x, y = _xy(pts)
    keep = screen.keep(values, x, y, first, src_xy=_xy(src), blank=blank, crs=gdf.crs)
    return gpd.GeoDataFrame(values[keep].reset_index(drop=True), geometry=pts[keep],
                            crs=4326)


def _columns(df: pd.DataFrame, path: Path, first: int, columns: Mapping[str, str] | None,
             assume_crs: str | None, screen: RowScreen, blank: np.ndarray | None
             ) -> pd.DataFrame:
    """:func:`_points` as plain columns, without a point per row where the file has lon/lat."""
    xy = (None if isinstance(df, gpd.GeoDataFrame) else
          frame_xy(df, path, what="measurements", assume_crs=assume_crs, first_line=first,
                   strict=False, xy=coordinate_mapping(columns)))
    if xy is None:  # geometries (GeoParquet, WKT): read as points
        return _as_columns(_points(df, path, first, columns, assume_crs, screen, blank))
    df, sx, sy = xy
    x, y = sx, sy
    crs = assumed_crs(sx, sy, assume_crs, what="measurements", path=path)
    if not crs.is_exact_same(CRS.from_epsg(4326)):  # as GeoDataFrame.to_crs(4326)
        x, y = Transformer.from_crs(crs, 4326, always_xy=True).transform(sx, sy)
    values = _test_values(df, path, columns=columns, columnar=True, screen=screen)
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = screen.keep(values, x, y, first, src_xy=(sx, sy), blank=blank,
                       crs=None if assume_crs is None else crs)
    out = values[keep].reset_index(drop=True)
    out["lon"], out["lat"] = x[keep], y[keep]
    return out


def _as_columns(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """Observations (EPSG:4326 points) as the columns of :func:`iter_measurement_columns`."""
    pts = gdf.geometry.to_numpy()
    out = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name, "timestamp"], errors="ignore"))
    out["lon"], out["lat"] = shapely.get_x(pts), shapely.get_y(pts)
    return out


def _test_values(df: pd.DataFrame, path: Path, *, columns: Mapping[str, str] | None,
                 columnar: bool = False, screen: RowScreen | None = None) -> pd.DataFrame:
    """The contract's columns of point tests (source column names), not yet screened.

    Labels (technology, no service) are read once per distinct value, not per row: ten
    million tests hold a handful. ``columnar`` (for compaction) leaves timestamps out
    (compaction drops them, and parsing ten million ISO dates is the slowest part of a
    read) and operators in the file's text type (no Python object per row). Measured
    values accept a decimal comma; text that is not a number is an empty value.
    """
    df = apply_columns(df, {k: v for k, v in (columns or {}).items()
                            if k not in ("lon", "lat")}, what="measurements", path=path)
    out = pd.DataFrame(index=df.index)
    if "tech" in df.columns:
        codes, labels = pd.factorize(df["tech"].astype(object))
        raw = pd.Series(labels, dtype=object)
        no_service = raw.astype("str").str.strip().str.lower().isin(_NO_SERVICE).to_numpy()
        mapped = np.array([*normalize_tech(raw), None], dtype=object)
        mapped[:-1][no_service] = "none"
        # code -1 (missing) takes the last entry, None
        out["tech"] = pd.Series(mapped[codes], index=df.index, dtype=object)
        unknown = (np.array([m is None for m in mapped[:-1]], dtype=bool)
                   & (raw.astype("str").str.strip() != "").to_numpy())
        if screen is not None and unknown.any():
            screen.note_unread("tech", raw[unknown].repeat(
                np.bincount(codes[codes >= 0], minlength=len(raw))[unknown]))
    else:
        out["tech"] = None
    if "operator" not in df.columns:
        out["operator"] = None
    else:
        out["operator"] = df["operator"] if columnar else df["operator"].astype(object)
        if screen is not None and screen.operators:
            codes, labels = pd.factorize(df["operator"].astype(object))
            screen.note_operators(pd.Series(labels, dtype=object),
                                  np.bincount(codes[codes >= 0], minlength=len(labels)))
    for col in MEASUREMENT_LIMITS:
        out[col] = _number(df[col]) if col in df.columns else np.nan
        if screen is not None and col in df.columns and not pd.api.types.is_numeric_dtype(
                df[col].dtype):
            given = df[col].notna() & ~df[col].astype("str").str.strip().isin(_NA_TEXT)
            screen.note_unread(col, df[col][given & out[col].isna()])
    if not columnar:
        out["timestamp"] = (
            pd.to_datetime(df["timestamp"], errors="coerce", utc=True, format="ISO8601")
            if "timestamp" in df.columns else pd.NaT)
        if screen is not None and "timestamp" in df.columns:
            stamp = df["timestamp"]  # only the rows read as NaT are looked at again
            odd = stamp[out["timestamp"].isna().to_numpy() & stamp.notna().to_numpy()]
            screen.note_unread("timestamp", odd[~odd.astype("str").str.strip().isin(_NA_TEXT)])
    out["weight"] = 1.0
    out["source"] = "tests"
    return out
