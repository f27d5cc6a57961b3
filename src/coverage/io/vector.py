"""Reading any vector input: the format told by content and extension, any CRS, any encoding.

GDAL formats go through pyogrio (with Arrow when available); CSV through pandas with
``lon``/``lat`` or a WKT column; GeoParquet through geopandas, and plain Parquet like a CSV.
Shapefiles without a ``.cpg`` have their text decoded by :mod:`coverage.io.encodings`.
"""

from __future__ import annotations

import csv
import struct
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from ..errors import InputError, SchemaError
from . import encodings
from ._common import (
    PathLike,
    assumed_crs,
    check_path,
    check_place,
    csv_compression,
    is_gzip,
    log,
    open_bytes,
    require_crs,
    rows_text,
    warn_repair,
)

__all__ = ["read_vector", "sniff_format"]

_EXTENSIONS = {
    ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".geojsonl": "GeoJSONSeq",
    ".shp": "ESRI Shapefile", ".dbf": "ESRI Shapefile", ".zip": "zip", ".fgb": "FlatGeobuf",
    ".parquet": "Parquet", ".geoparquet": "Parquet", ".kml": "KML", ".kmz": "KML",
    ".csv": "CSV", ".txt": "CSV", ".tsv": "CSV", ".osm": "OSM", ".graphml": "GraphML",
    ".gml": "GML", ".xlsx": "XLSX", ".tif": "GTiff", ".tiff": "GTiff", ".hgt": "SRTMHGT",
}
#: Byte-order marks of UTF-16 text (little- and big-endian).
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: KML/LIBKML bookkeeping fields, dropped when empty.
_KML_FIELDS = ("id", "description", "timestamp", "begin", "end", "altitudeMode",
               "tessellate", "extrude", "visibility", "drawOrder", "icon", "snippet")
#: Names a CSV's (or plain Parquet's) longitude column is known by, in any case; the first
#: found is taken (``--col KIND.lon=COLUMN`` names another).
LON_NAMES = ("lon", "longitude", "lng", "long", "x", "kinh_do", "kinh do", "kinhdo")
#: Names of the latitude column, likewise.
LAT_NAMES = ("lat", "latitude", "y", "vi_do", "vi do", "vido")
#: Names of a WKT (or WKB) geometry column, in any case, when there are no coordinates.
WKT_NAMES = ("geometry", "wkt", "geom", "the_geom", "tile", "shape")
_LON, _LAT, _WKT = LON_NAMES, LAT_NAMES, WKT_NAMES


#: Leading bytes of the binary formats, and their format names.
_MAGIC = ((b"SQLite format 3", "GPKG"), (b"PAR1", "Parquet"), (b"fgb\x03", "FlatGeobuf"),
          (b"II*\x00", "GTiff"), (b"MM\x00*", "GTiff"), (b"II+\x00", "GTiff"),
          (b"MM\x00+", "GTiff"))


def sniff_format(path: PathLike) -> str:
    """The format of a file from its first bytes, falling back on its extension.

    Returns a GDAL driver name (``GPKG``, ``GeoJSON``, ``ESRI Shapefile``, ``FlatGeobuf``,
    ``KML``, ``GTiff``), or ``Parquet``, ``CSV``, ``OSM``, ``GraphML``, ``zip``.
    """
    path = Path(path)
    by_ext = _EXTENSIONS.get(path.suffix.lower())
    if path.is_dir():
        return "OpenFileGDB" if path.suffix.lower() == ".gdb" else "directory"
    if is_gzip(path):
        return _sniff_gzip(path)
    with path.open("rb") as fh:
        head = fh.read(512)
    binary = _sniff_binary(head, path.suffix.lower())
    if binary is not None:
        return binary
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"{", b"[")):
        return "GeoJSON"
    if text.startswith(b"<"):
        return _sniff_markup(head, by_ext)
    if by_ext in (None, "GeoJSON", "CSV", "KML", "GML") and head and _looks_text(head):
        return "CSV" if by_ext in (None, "CSV") or b"," in head or b";" in head else by_ext
    return by_ext or "unknown"


def _sniff_binary(head: bytes, suffix: str) -> str | None:
    """The binary format a file's first bytes announce, or None for none of them."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b"PK\x03\x04"):
        return {".kmz": "KML", ".xlsx": "XLSX"}.get(suffix, "zip")
    if len(head) >= 4 and struct.unpack(">i", head[:4])[0] == 9994:
        return "ESRI Shapefile"
    return None


def _sniff_markup(head: bytes, by_ext: str | None) -> str:
    """The XML format of a file starting with ``<``: KML, OSM, GraphML, else GML."""
    for tag, name in ((b"<kml", "KML"), (b"<osm", "OSM"), (b"<graphml", "GraphML")):
        if tag in head.lower():
            return name
    return by_ext if by_ext in ("KML", "OSM", "GraphML", "GML") else "GML"


def _sniff_gzip(path: Path) -> str:
    """``CSV`` for a gzipped CSV (OpenCelliD's ``452.csv.gz``), else ``gzip``.

    Only CSV is read compressed. A damaged archive named ``.csv.gz`` is ``CSV``: the CSV
    reader then refuses it, naming the file.
    """
    try:
        with open_bytes(path) as fh:
            head = fh.read(512)
    except (OSError, EOFError):
        return "CSV" if _EXTENSIONS.get(Path(path.stem).suffix.lower()) == "CSV" else "gzip"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    csv_text = head and _looks_text(head) and not text.startswith((b"{", b"[", b"<"))
    return "CSV" if csv_text else "gzip"


def _looks_text(head: bytes) -> bool:
    return head.startswith(_UTF16_BOMS) or b"\x00" not in head


def read_vector(
    path: PathLike,
    *,
    what: str = "input",
    assume_crs: str | None = None,
    layer: str | int | None = None,
    check_coordinates: bool = True,
    allow_empty: bool = False,
    xy: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Read any vector file GDAL reads, a CSV with ``lon``/``lat`` or WKT, or (Geo)Parquet.

    Parameters
    ----------
    path : path-like
        The file. ``file.gpkg|layername=NAME`` (QGIS's form) selects a layer.
    what : str
        What the file is, for messages ("villages", "towers"...).
    assume_crs : str, optional
        CRS to use when the file states none. CSV and plain Parquet coordinates are taken
        as EPSG:4326 unless this is given.
    layer : str or int, optional
        Layer of a multi-layer source. When omitted and there are several, a layer named
        ``what`` is taken, else the only one holding geometry; otherwise the read is refused
        with the list of layers.
    check_coordinates : bool
        Refuse coordinates that cannot be in the file's CRS (the default). False keeps every
        feature as read, for readers that screen rows one by one (measurements).
    allow_empty : bool
        Return a file without features (a plan with nothing to build) as an empty frame
        instead of refusing it.
    xy : mapping, optional
        ``{"lon": COLUMN, "lat": COLUMN}`` (either or both): the coordinate columns of a
        CSV or plain Parquet file when their names are not among the known ones
        (``--col towers.lon=KINH_DO_X``); see :func:`frame_xy`.

    Returns
    -------
    GeoDataFrame
        In the file's CRS (or ``assume_crs``), row order kept, every column kept.

    Raises
    ------
    InputError
        When the file is missing, unreadable or truncated, holds no features, has no CRS
        and none was assumed, or has coordinates that cannot be in its CRS.
    """
    text = str(path)
    if "|layername=" in text:
        text, layer = text.split("|layername=", 1)
    path = check_path(text, what)
    fmt = sniff_format(path)
    ext_fmt = _EXTENSIONS.get(path.suffix.lower())
    if ext_fmt and fmt not in (ext_fmt, "unknown") and not (ext_fmt == "zip" or
                                                             fmt == "zip"):
        warn_repair(f"{what} file {path}: the name says {ext_fmt} but the content is {fmt}; "
                    f"read as {fmt} (rename the file to avoid confusion)")
    if fmt == "CSV":
        gdf = _read_csv(path, what=what, assume_crs=assume_crs, strict=check_coordinates,
                        xy=xy)
    elif fmt == "Parquet":
        gdf = _read_parquet(path, what=what, assume_crs=assume_crs, strict=check_coordinates,
                            xy=xy)
    elif fmt == "XLSX":
        gdf = frame_to_gdf(read_xlsx_table(path, what=what), path, what=what,
                           assume_crs=assume_crs, strict=check_coordinates, xy=xy)
    elif fmt == "gzip":
        raise InputError(f"{what} file {path} is gzip-compressed and holds no CSV, or is "
                         "damaged (is the download complete?); only CSV is read compressed: "
                         "decompress it (gunzip) and give the file inside")
    elif fmt in ("GTiff", "OSM", "GraphML"):
        raise InputError(f"{what} file {path} is a {fmt} file, not a vector layer; give "
                         "GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GeoParquet, KML or CSV")
    else:
        gdf = _read_gdal(path, what=what, layer=layer, fmt=fmt)
        gdf = require_crs(gdf, assume_crs, what=what, path=path)
    if gdf.empty:
        if allow_empty:
            return gdf
        raise InputError(f"{what} file {path} holds no features (an empty layer); is it the "
                         "right file or layer?")
    if check_coordinates:
        check_place(gdf, path, what)
    return gdf


# --------------------------------------------------------------------------- GDAL formats
def _choose_layer(path: Path, what: str, layer: str | int | None) -> str | int | None:
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # DataSourceError for truncated or foreign files
        raise InputError(
            f"{what} file {path} cannot be read ({type(exc).__name__}: {exc}); check that it "
            "is a complete GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GeoParquet or KML file "
            "(a truncated download gives this error)"
        ) from None
    names = [str(n) for n in layers[:, 0]]
    if layer is not None:
        if isinstance(layer, str) and layer not in names:
            raise InputError(f"{what} file {path} has no layer {layer!r}; its layers are "
                             f"{', '.join(names)}")
        return layer
    if len(names) <= 1:
        return None
    if what in names:
        return what
    with_geometry = [n for n, g in zip(names, layers[:, 1], strict=True) if g]
    if len(with_geometry) == 1:
        return with_geometry[0]
    raise InputError(f"{what} file {path} has {len(names)} layers ({', '.join(names)}); "
                     f"name one as {path}|layername=NAME")


def _read_gdal(path: Path, *, what: str, layer: str | int | None, fmt: str
               ) -> gpd.GeoDataFrame:
    layer = _choose_layer(path, what, layer) if _EXTENSIONS.get(path.suffix.lower()) in (
        fmt, "zip") else layer
    kwargs: dict = {"layer": layer} if layer is not None else {}
    legacy = (fmt == "ESRI Shapefile" and path.suffix.lower() == ".shp"
              and not path.with_suffix(".cpg").exists()
              and not path.with_suffix(".CPG").exists())
    source: Path | bytes = path
    if _EXTENSIONS.get(path.suffix.lower()) not in (fmt, "zip"):
        source = path.read_bytes()  # GDAL picks drivers by extension; bytes go by content
    try:
        with warnings.catch_warnings():  # GDAL's remark on a GeoPackage named otherwise
            warnings.filterwarnings("ignore", "File .* non conformant file extension",
                                    RuntimeWarning)
            gdf = pyogrio.read_dataframe(source, use_arrow=True, **kwargs)
    except Exception as exc:  # pyogrio DataSourceError, DataLayerError, FieldError...
        raise InputError(
            f"{what} file {path} cannot be read ({type(exc).__name__}: {exc}); check that it "
            "is complete and in a vector format (a truncated file gives this error)"
        ) from None
    if legacy:
        gdf = _decode_legacy_text(gdf, path, what)
    if fmt == "KML":
        gdf = _tidy_kml(gdf)
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"{what} file {path} has no geometry column; a CSV needs lon and lat "
                         "columns or a WKT geometry column")
    return gdf


def _dbf_text(path: Path) -> tuple[list[bytes], dict[int, list[bytes | None]]]:
    """Raw bytes of a ``.dbf``: field names, and the values of its text (C) fields by field.

    Deleted records are skipped, as GDAL skips them, so values line up with its rows.
    """
    data = path.with_suffix(".dbf").read_bytes() if path.with_suffix(".dbf").exists() else (
        path.with_suffix(".DBF").read_bytes())
    n_records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    names, fields, offset = [], [], 1
    for pos in range(32, header_len - 1, 32):
        if data[pos] == 0x0D:
            break
        desc = data[pos:pos + 32]
        names.append(desc[:11].split(b"\x00")[0])
        fields.append((chr(desc[11]), offset, desc[16]))
        offset += desc[16]
    text: dict[int, list[bytes | None]] = {i: [] for i, f in enumerate(fields) if f[0] == "C"}
    for r in range(n_records):
        start = header_len + r * record_len
        record = data[start:start + record_len]
        if len(record) < record_len or record[:1] == b"*":
            continue
        for i in text:
            _, off, length = fields[i]
            value = record[off:off + length].rstrip(b" \x00")
            text[i].append(value or None)
    return names, text


def _decode_legacy_text(gdf: gpd.GeoDataFrame, path: Path, what: str) -> gpd.GeoDataFrame:
    """Decode the text of a Shapefile without ``.cpg`` from the raw ``.dbf`` bytes."""
    try:
        names, text = _dbf_text(path)
    except (OSError, struct.error):
        return gdf  # GDAL read it; nothing better to offer
    raw = [v for values in text.values() for v in values if v] + names
    if all(r.isascii() for r in raw):
        return gdf
    enc, score = encodings.detect(raw)
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    if len(columns) != len(names) or any(len(v) != len(gdf) for v in text.values()):
        return gdf  # not the layout we parsed: keep GDAL's reading
    out = gdf.copy()
    for i, values in text.items():
        out[columns[i]] = pd.Series(
            [encodings.decode(v, enc) if v is not None else None for v in values],
            index=gdf.index, dtype=object)
    out = out.rename(columns={columns[i]: encodings.decode(n, enc)
                              for i, n in enumerate(names) if not n.isascii()})
    labels = {"utf-8": "UTF-8", "cp1258": "Windows-1258 (cp1258)", "tcvn3": "TCVN3 (ABC)",
              "vni": "VNI-Windows"}
    warn_repair(
        f"{what} file {path} has no .cpg file stating its text encoding; text decoded as "
        f"{labels[enc]} ({score:.0%} of words read as Vietnamese syllables). If names look "
        f"wrong, add {path.with_suffix('.cpg').name} holding the right encoding, or re-save "
        "the file as UTF-8"
    )
    return out


def _tidy_kml(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    drop = [c for c in _KML_FIELDS if c in gdf.columns and gdf[c].isna().all()]
    gdf = gdf.drop(columns=drop)
    if "Name" in gdf.columns and "name" not in gdf.columns:
        gdf = gdf.rename(columns={"Name": "name"})
    return gdf


# --------------------------------------------------------------------------- CSV
def _sniff_csv(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV.

    UTF-16 with its byte-order mark (Excel's "Unicode Text"), UTF-8 (with or without BOM),
    else cp1258 (Excel's Vietnamese CSV).
    """
    try:
        with open_bytes(path) as fh:
            sample = fh.read(1 << 16)
    except (OSError, EOFError) as exc:  # a damaged .csv.gz
        raise InputError(f"{path} cannot be decompressed ({exc}); is the download complete? "
                         "Download it again, or decompress it (gunzip) to see what it "
                         "holds") from None
    if sample.startswith(_UTF16_BOMS):
        encoding = "utf-16"
        sample = sample[: len(sample) // 2 * 2]
    else:
        try:
            sample.decode("utf-8")
            encoding = "utf-8-sig"
        except UnicodeDecodeError as exc:
            encoding = "utf-8-sig" if exc.start > len(sample) - 4 else "cp1258"
    text = sample.decode(encoding, errors="replace")
    first = text.splitlines()[0] if text else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get) if max(counts.values()) else ","
    return encoding, delimiter


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV's first line, in its sniffed encoding and delimiter."""
    encoding, delimiter = _sniff_csv(path)
    with open_bytes(path) as fh:
        sample = fh.read(1 << 16)
    sample = sample[: len(sample) // 2 * 2] if encoding == "utf-16" else sample
    text = sample.decode(encoding, errors="replace")
    first = text.splitlines()[0] if text else ""
    return [n.strip().strip('"') for n in first.split(delimiter)]


def read_csv_table(path: Path, *, what: str, header: bool = True,
                   names: list[str] | None = None, numeric: Iterable[str] = (),
                   skip_blank_lines: bool = True) -> pd.DataFrame:
    """A CSV as text columns (ids keep leading zeros), encoding and delimiter sniffed.

    Columns named in ``numeric`` are parsed as floats by the C parser when every value is a
    plain number (fast for millions of rows); otherwise everything is read as text and the
    caller converts (decimal commas, stray text). ``skip_blank_lines=False`` keeps blank
    lines as empty rows, so that row ``i`` is the file's line ``i + 2``.
    """
    encoding, delimiter = _sniff_csv(path)
    kwargs = {"keep_default_na": False, "na_values": [""], "encoding": encoding,
              "sep": delimiter, "header": 0 if header else None, "names": names,
              "skipinitialspace": True, "on_bad_lines": "error",
              "skip_blank_lines": skip_blank_lines, "compression": csv_compression(path)}
    try:
        if numeric:
            try:
                return _tidy_header(pd.read_csv(
                    path, dtype=defaultdict(lambda: str, dict.fromkeys(numeric, "float64")),
                    **kwargs))
            except (ValueError, TypeError):
                pass  # a value is not a plain number: read as text below
        df = pd.read_csv(path, dtype=str, **kwargs)
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} file {path} is not UTF-8 nor Windows-1258 text ({exc}); "
                         "save it as CSV UTF-8") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise InputError(f"{what} file {path} is not a well-formed CSV ({exc}); rows must "
                         "all have the same number of fields") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} file {path} holds no rows (empty CSV)") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile, a truncated .csv.gz
        raise InputError(f"{what} file {path} cannot be decompressed ({exc}); is the "
                         "download complete? Download it again") from None
    if encoding == "cp1258":
        warn_repair(f"{what} file {path} is not UTF-8; read as Windows-1258 (Excel's "
                    "Vietnamese CSV); save as 'CSV UTF-8' to avoid this")
    return _tidy_header(df)


def _tidy_header(df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _number(series: pd.Series) -> pd.Series:
    """Numbers from text, accepting a decimal comma ("105,82")."""
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype(float)
    text = series.astype("str").str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype(float)


def _coordinate_columns(df: pd.DataFrame, xy: Mapping[str, str] | None, *, what: str,
                        path: Path) -> tuple[str | None, str | None]:
    """The longitude and latitude columns: mapped ones (``xy``), else known names."""
    cols = {str(c).lower().strip(): c for c in df.columns}
    found = [next((cols[c] for c in names if c in cols), None) for names in (_LON, _LAT)]
    for k, axis in enumerate(("lon", "lat")):
        given = (xy or {}).get(axis)
        if given is None:
            continue
        if given not in df.columns:
            raise SchemaError(
                f"{what} file {path}: the column mapping asks for {given!r} as {axis}, but the "
                f"file has no such column; found {', '.join(map(str, df.columns))}. Fix "
                f"--col or the config's [columns.{what}] table")
        found[k] = given
    return found[0], found[1]


def frame_to_gdf(df: pd.DataFrame, path: Path, *, what: str, assume_crs: str | None,
                 first_line: int | None = 2, strict: bool = True,
                 xy: Mapping[str, str] | None = None) -> gpd.GeoDataFrame:
    """A table with ``lon``/``lat`` or a WKT/WKB geometry column, as a GeoDataFrame.

    ``strict=False`` keeps every row as it is (see :func:`frame_xy`); a WKT value that
    cannot be parsed becomes a missing geometry. ``xy``: as :func:`frame_xy`.
    """
    coords = frame_xy(df, path, what=what, assume_crs=assume_crs, first_line=first_line,
                      strict=strict, xy=xy)
    if coords is not None:
        df, x, y = coords
        crs = assumed_crs(x, y, assume_crs, what=what, path=path)
        out = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=crs)
        out["lon"], out["lat"] = x, y
        return out
    cols = {str(c).lower().strip(): c for c in df.columns}
    geom_col = next((cols[c] for c in _WKT if c in cols), None)
    if geom_col is not None:
        values = df[geom_col]
        try:
            if values.map(lambda v: isinstance(v, bytes | bytearray)).any():
                geom = shapely.from_wkb(values.to_numpy())
            else:
                geom = shapely.from_wkt(values.astype(object).where(values.notna(), None)
                                        .to_numpy(), on_invalid="raise" if strict else "ignore")
        except shapely.errors.GEOSException as exc:
            raise InputError(f"{what} file {path}: column {geom_col} is not valid WKT/WKB "
                             f"({exc}); write geometries like 'POINT (105.8 21.0)'") from None
        b = shapely.bounds(geom)
        crs = assumed_crs(np.r_[b[:, 0], b[:, 2]], np.r_[b[:, 1], b[:, 3]], assume_crs,
                          what=what, path=path)
        return gpd.GeoDataFrame(df.drop(columns=[geom_col]).reset_index(drop=True),
                                geometry=geom, crs=crs)
    raise SchemaError(
        f"{what} file {path} has no coordinates: found columns "
        f"{', '.join(map(str, df.columns))}; add lon and lat columns (WGS84 degrees), or a "
        "WKT 'geometry' column"
    )


def frame_xy(df: pd.DataFrame, path: Path, *, what: str, assume_crs: str | None,
             first_line: int | None = 2, strict: bool = True,
             xy: Mapping[str, str] | None = None
             ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """``(df without its coordinates, x, y)`` of a table with ``lon``/``lat``, else None.

    Rows without numeric coordinates are dropped (reported); coordinates in ``assume_crs``
    (EPSG:4326 when None, then latitudes beyond 90 degrees are refused). What
    :func:`frame_to_gdf` does, without building a point per row. ``strict=False`` keeps
    every row, NaN where a coordinate is not a number, and refuses nothing: for readers
    that screen rows one by one (measurements, :mod:`coverage.io._rows`). The coordinate
    columns are those ``xy`` maps (``{"lon": COLUMN, "lat": COLUMN}``, either or both;
    refused when the file lacks them), else the first of the known names, in any case:
    :data:`LON_NAMES`, :data:`LAT_NAMES`.
    """
    lon, lat = _coordinate_columns(df, xy, what=what, path=path)
    if lon is None or lat is None:
        return None
    x, y = _number(df[lon]), _number(df[lat])
    if not strict:
        return (df.drop(columns=[lon, lat]).reset_index(drop=True), x.to_numpy(),
                y.to_numpy())
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.all() and len(df):  # a table of no rows is the caller's to refuse or keep
        raise InputError(f"{what} file {path}: no row has numeric {lon}/{lat}; are the "
                         "coordinates in other columns?")
    if bad.any():
        warn_repair(f"{what} file {path}: {int(bad.sum())} row(s) without numeric "
                    "coordinates dropped "
                    f"({rows_text(np.flatnonzero(bad), first_line=first_line)})")
        df, x, y = df[~bad.to_numpy()], x[~bad], y[~bad]
    df = df.drop(columns=[lon, lat]).reset_index(drop=True)
    x, y = x.to_numpy(), y.to_numpy()
    if assume_crs is None:
        _refuse_swapped(pd.DataFrame({"lon": x, "lat": y}), path, what, first_line)
    return df, x, y


def _refuse_swapped(gdf: gpd.GeoDataFrame, path: Path, what: str,
                    first_line: int | None) -> None:
    from ..errors import CRSError

    x, y = gdf["lon"].to_numpy(), gdf["lat"].to_numpy()
    beyond = np.abs(y) > 90
    if not beyond.any():
        return
    swapped = bool(((np.abs(x) <= 90) & (np.abs(y) <= 180)).all())
    hint = (" The columns look swapped: lon holds latitudes and lat longitudes; swap the "
            "column names." if swapped else
            " If these are projected metres, state their CRS with --assume-crs.")
    raise CRSError(
        f"{what} file {path}: {int(beyond.sum())} row(s) have a latitude beyond 90 degrees, "
        f"which cannot be on Earth ({rows_text(np.flatnonzero(beyond), first_line=first_line)})."
        f"{hint}"
    )


#: Columns parsed as numbers straight away when they hold only plain numbers.
_NUMERIC = (*_LON, *_LAT, *(c.upper() for c in _LON + _LAT), "rsrp_dbm", "download_mbps",
            "upload_mbps", "latency_ms")


def _read_csv(path: Path, *, what: str, assume_crs: str | None, strict: bool = True,
              xy: Mapping[str, str] | None = None) -> gpd.GeoDataFrame:
    return frame_to_gdf(read_csv_table(path, what=what, numeric=_NUMERIC), path, what=what,
                        assume_crs=assume_crs, strict=strict, xy=xy)


def read_xlsx_table(path: Path, *, what: str) -> pd.DataFrame:
    """The first sheet of a workbook as text columns, read like a CSV (row 2 = line 2)."""
    try:
        df = pd.read_excel(path, sheet_name=0, dtype=str, engine="openpyxl")
    except Exception as exc:  # zipfile.BadZipFile, openpyxl errors on damaged workbooks
        raise InputError(f"{what} file {path} cannot be read as an Excel workbook "
                         f"({type(exc).__name__}: {exc}); is it complete? Save it again, "
                         "or as CSV UTF-8") from None
    return _tidy_header(df)


# --------------------------------------------------------------------------- Parquet
def _read_parquet(path: Path, *, what: str, assume_crs: str | None, strict: bool = True,
                  xy: Mapping[str, str] | None = None) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # ArrowInvalid on truncated files
        raise InputError(f"{what} file {path} cannot be read as Parquet ({exc}); is it "
                         "complete?") from None
    try:
        if b"geo" in meta:
            gdf = gpd.read_parquet(path)
            return require_crs(gdf, assume_crs, what=what, path=path)
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow ArrowInvalid, OSError; geopandas ValueError
        raise InputError(f"{what} file {path} cannot be read as Parquet "
                         f"({type(exc).__name__}: {exc})") from None
    log.info("%s file %s: Parquet without GeoParquet metadata, reading lon/lat or WKT",
             what, path)
    return frame_to_gdf(df, path, what=what, assume_crs=assume_crs, first_line=None,
                        strict=strict, xy=xy)
