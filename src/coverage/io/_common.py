"""Helpers every reader shares: paths, text ids, names, technologies, places and CRSs.

Nothing here reads a whole file; the readers in the sibling modules call these to turn what
they read into the contract's columns and to refuse what cannot be used, with messages that
name the file, the rows and the fix.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..errors import CRSError, InputError, InputFileNotFoundError, RepairWarning, SchemaError

log = logging.getLogger("coverage.io")

PathLike = str | os.PathLike[str]

OPENCELLID_COLUMNS = (
    "radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples",
    "changeable", "created", "updated", "averageSignal",
)
_TECH_ALIASES = {
    "2G": "2G", "GSM": "2G", "CDMA": "2G", "GPRS": "2G", "EDGE": "2G", "CDMA2000": "2G",
    "1X": "2G", "IS95": "2G",
    "3G": "3G", "UMTS": "3G", "WCDMA": "3G", "HSPA": "3G", "HSPA+": "3G", "HSDPA": "3G",
    "HSUPA": "3G", "TD-SCDMA": "3G", "TDSCDMA": "3G", "EVDO": "3G", "EV-DO": "3G",
    "4G": "4G", "LTE": "4G", "LTE-A": "4G", "LTE+": "4G", "LTEA": "4G", "4G+": "4G",
    "VOLTE": "4G", "4G LTE": "4G",
    "5G": "5G", "NR": "5G", "NSA": "5G", "SA": "5G", "5G NR": "5G", "NR-NSA": "5G",
    "NR-SA": "5G", "5G NSA": "5G", "5G SA": "5G",
    "2": "2G", "3": "3G", "4": "4G", "5": "5G",
}
#: Mobile network codes of Vietnam (MCC 452).
VN_OPERATORS = {1: "MobiFone", 2: "VinaPhone", 4: "Viettel", 5: "Vietnamobile", 7: "Gmobile"}
#: How a report lists the operators known by code.
KNOWN_OPERATORS_TEXT = "MCC 452 with MNC " + ", ".join(
    f"{n} {name}" for n, name in VN_OPERATORS.items())
#: Where a country's cells can be, (west, south, east, north) in degrees, by MCC; cells of
#: these MCCs outside the box (padded by 0.5 degree) are flagged ``position_implausible``.
MCC_BOUNDS = {452: (102.1, 8.2, 109.5, 23.4)}
SITE_COLUMNS = (
    "site_id", "operator", "tech", "height_m", "azimuth_deg", "beamwidth_deg", "eirp_dbm",
    "freq_mhz", "status", "backhaul", "source",
)
#: Contract names each input kind knows, for column mapping (``--col`` and ``[columns]``).
MAPPABLE = {
    "villages": ("village_id", "name", "population", "households", "commune", "district",
                 "province"),
    "towers": ("site_id", "operator", "tech", "height_m", "azimuth_deg", "beamwidth_deg",
               "eirp_dbm", "freq_mhz", "status", "backhaul", "lon", "lat"),
    "measurements": ("tech", "operator", "rsrp_dbm", "download_mbps", "upload_mbps",
                     "latency_ms", "timestamp", "lon", "lat"),
    "access": ("village_id", "electricity_share", "smartphone_share", "monthly_income",
               "data_price_1gb"),
    "candidates": ("site_id", "lon", "lat"),
    "coverage": ("operator", "tech"),
}


def warn_repair(message: str) -> None:
    """Issue a :class:`RepairWarning` (the CLI lists them; ``validate`` reports them)."""
    warnings.warn(message, RepairWarning, stacklevel=3)


def rows_text(index: Iterable[int], *, first_line: int | None = None, limit: int = 10) -> str:
    """Row numbers for a message: ``rows 3, 7, 9 (and 12 more)``.

    ``first_line`` turns 0-based positions into file lines (2 for a CSV with a header).
    """
    idx = [int(i) for i in index]
    shown = [i + first_line if first_line is not None else i for i in idx[:limit]]
    word = "line" if first_line is not None else "row"
    more = f" (and {len(idx) - limit} more)" if len(idx) > limit else ""
    return f"{word}{'s' if len(idx) != 1 else ''} {', '.join(map(str, shown))}{more}"


def check_path(path: PathLike, what: str) -> Path:
    """The input path, refused with a clear message when missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(
            f"{what} file {path} does not exist; check the path (relative paths are taken "
            f"from {Path.cwd()})"
        )
    if path.is_dir() and path.suffix.lower() not in (".gdb",):
        raise InputError(f"{what} path {path} is a folder; give the file inside it")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes); was the download or copy "
                         "interrupted?")
    return path


def is_gzip(path: Path) -> bool:
    """True when the file is gzip-compressed (OpenCelliD publishes ``452.csv.gz``)."""
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip-compressed."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def csv_compression(path: Path) -> str:
    """The ``compression`` pandas should read a CSV with: gzip by content, else by name."""
    return "gzip" if is_gzip(path) else "infer"


def fold_name(name: object) -> str:
    """Accent-folded, lower-case matching key of a name ("Nà Lốc" -> "na loc").

    Spaces are collapsed; ``đ`` folds to ``d``. Use it to join tables whose names differ
    only by diacritics, case, Unicode form (NFC/NFD) or spacing.

    Examples
    --------
    >>> fold_name("Bản Nà Lốc") == fold_name("ban  NA loc")
    True
    """
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    text = unicodedata.normalize("NFD", str(name)).replace("đ", "d").replace("Đ", "D")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().split())


def nfc(series: pd.Series) -> pd.Series:
    """Strings NFC-normalised with surrounding white space removed; other values kept."""
    return series.map(
        lambda v: unicodedata.normalize("NFC", v).strip() if isinstance(v, str) else v
    ).astype(object)


def normalize_tech(values: Iterable[object]) -> list[str | None]:
    """Map technology labels (``LTE``, ``umts``, ``4g``, ``5G NR``...) to ``2G``..``5G``.

    Unknown labels map to None.

    Examples
    --------
    >>> normalize_tech(["LTE", "umts", " 5g ", "GSM", "6G"])
    ['4G', '3G', '5G', '2G', None]
    """
    def one(value: object) -> str | None:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return None
        key = " ".join(str(value).strip().upper().replace("_", " ").split())
        if key.endswith(".0"):
            key = key[:-2]
        return _TECH_ALIASES.get(key)

    series = pd.Series(list(values) if not isinstance(values, pd.Series) else values,
                       dtype=object)
    uniques = series.drop_duplicates()  # a million tests hold a handful of labels
    lookup = {u: one(u) for u in uniques if u is not None and u == u}
    mapped = series.map(lookup, na_action="ignore")
    return [v if isinstance(v, str) else None for v in mapped.to_numpy()]


def as_text_id(series: pd.Series) -> pd.Series:
    """Ids as text; floats that are whole numbers lose the spurious ``.0``; blanks -> None."""
    def conv(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        text = unicodedata.normalize("NFC", str(v)).strip()
        return text or None
    return series.map(conv).astype(object)


def as_numbers(values: pd.Series, *, what: str, path: Path, column: str, ids: pd.Series,
               id_name: str, empty_means: str) -> pd.Series:
    """Floats of a number column; text that is not a number is read as empty and reported.

    ``empty_means`` says what an empty value stands for ("the default, 30 m"), for the
    message; ``ids`` name the rows (village or site ids).
    """
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return numbers
    text = values.astype(object).where(values.notna(), "").map(lambda v: str(v).strip())
    bad = (numbers.isna() & ~text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"])
           ).to_numpy()
    if bad.any():
        shown = ", ".join(f"{i} {v!r}" for i, v in zip(ids.to_numpy()[bad][:5],
                                                         text.to_numpy()[bad][:5], strict=True))
        warn_repair(f"{what} file {path}: {int(bad.sum())} {column} value(s) are not numbers "
                    f"({id_name} {shown}{' ...' if bad.sum() > 5 else ''}): read as empty, "
                    f"{empty_means}; write plain numbers (a decimal point, no thousands "
                    "separator)")
    return numbers


def apply_columns(df: pd.DataFrame, columns: Mapping[str, str] | None, *, what: str,
                  path: Path) -> pd.DataFrame:
    """Copy mapped source columns to their contract names (``{contract: source}``).

    The source columns are kept (they pass through to outputs). A mapping to a column the
    file lacks is refused, listing the columns found.
    """
    if not columns:
        return df
    df = df.copy()
    for contract, source in columns.items():
        if source == contract:
            continue
        if source not in df.columns:
            found = ", ".join(map(str, (c for c in df.columns if c != "geometry")))
            raise SchemaError(
                f"{what} file {path}: the column mapping asks for {source!r} as {contract}, "
                f"but the file has no such column; found {found}. Fix --col or the config's "
                f"[columns.{what}] table"
            )
        df[contract] = df[source]
    return df


def coordinate_mapping(columns: Mapping[str, str] | None) -> dict[str, str] | None:
    """The ``lon``/``lat`` entries of a column mapping (the reader finds those columns)."""
    xy = {k: v for k, v in (columns or {}).items() if k in ("lon", "lat")}
    return xy or None


def find_column(df: pd.DataFrame, name: str, *, what: str, path: Path) -> str | None:
    """The column called ``name``, or one that differs only by case/spacing (reported)."""
    if name in df.columns:
        return name
    key = fold_name(name).replace(" ", "_")
    for col in df.columns:
        if fold_name(col).replace(" ", "_") == key:
            log.info("%s file %s: using column %r as %r", what, path, col, name)
            return str(col)
    return None


def missing_columns_error(df: pd.DataFrame, missing: Iterable[str], *, what: str, path: Path,
                          hint: str) -> SchemaError:
    """A :class:`SchemaError` listing the missing and the found columns, with close matches."""
    import difflib

    found = [str(c) for c in df.columns if c != "geometry"]
    missing = list(missing)
    close = {m: difflib.get_close_matches(m, found, n=1, cutoff=0.6) for m in missing}
    guesses = "; ".join(f"{m} might be {c[0]!r}" for m, c in close.items() if c)
    return SchemaError(
        f"{what} file {path} lacks required column(s) {', '.join(missing)}; found "
        f"{', '.join(found) or 'no columns'}. {hint}" + (f" ({guesses})" if guesses else "")
    )


# --------------------------------------------------------------------------- CRS and places
def crs_hint(bounds: np.ndarray, *, option: str = "--assume-crs ") -> str:
    """A guess at the CRS of coordinates, from their magnitude (``option`` prefixes codes)."""
    x0, y0, x1, y1 = bounds
    if x0 >= -180 and x1 <= 180 and y0 >= -90 and y1 <= 90:
        return f"the coordinates look like longitude/latitude: {option}EPSG:4326"
    if x0 >= -90 and x1 <= 90 and y0 >= -180 and y1 <= 180:
        return (f"the coordinates look like latitude/longitude in swapped order: swap them, "
                f"then {option}EPSG:4326")
    if x0 >= 100_000 and x1 <= 900_000 and y0 >= 900_000 and y1 <= 2_700_000:
        return (f"the coordinates look like metres in a Vietnamese projection: VN-2000 / UTM "
                f"48N is {option}EPSG:3405, 49N EPSG:3406 (WGS 84 / UTM 48N: EPSG:32648); a "
                "provincial VN-2000 TM-3 zone is EPSG:9205..9218 (e.g. EPSG:9210 for central "
                "meridian 105°45')")
    return f"give the CRS the coordinates were made in, e.g. {option}EPSG:32648"


def require_crs(gdf: gpd.GeoDataFrame, assume_crs: str | None, *, what: str, path: Path
                ) -> gpd.GeoDataFrame:
    """Set ``assume_crs`` when the data state none; refuse when neither is known.

    A projected ``assume_crs`` is not set on data whose coordinates are all degrees: see
    :func:`assumed_crs`.
    """
    if gdf.crs is not None:
        return gdf
    if assume_crs is None:
        b = gdf.total_bounds
        raise CRSError(
            f"{what} file {path} has no CRS (no .prj, no crs member or metadata) and none was "
            f"given; state it with --assume-crs. Bounds {np.round(b, 4).tolist()}: "
            f"{crs_hint(b)}"
        )
    b = shapely.bounds(gdf.geometry.to_numpy())
    crs = assumed_crs(np.r_[b[:, 0], b[:, 2]], np.r_[b[:, 1], b[:, 3]], assume_crs,
                      what=what, path=path)
    log.info("%s file %s: no CRS stated, assuming %s", what, path, crs.to_string())
    return gdf.set_crs(crs)


def assumed_crs(x: np.ndarray, y: np.ndarray, assume_crs: str | None, *, what: str,
                path: Path) -> CRS:
    """The CRS of coordinates a file gives without one: ``assume_crs``, else EPSG:4326.

    ``--assume-crs`` names the CRS of every input that states none: the villages'
    Shapefile without ``.prj`` in VN-2000 metres, say. The same run's CSVs of towers and
    tests give ``lon``/``lat`` in degrees: when the finite coordinates of a file are
    within ±180/±90 and ``assume_crs`` is projected, the coordinates are degrees (a
    projected CRS puts them within 180 m of its false origin, where no data of its area of
    use lie); they are read as EPSG:4326 and the run says so. (All but 5%: a crowdsourced
    file's few rows off the Earth are dropped by the row screen, see ``_rows``.)

    Raises
    ------
    CRSError
        When ``assume_crs`` is not a CRS pyproj knows.
    """
    if assume_crs is None:
        return CRS.from_epsg(4326)
    try:
        crs = CRS.from_user_input(assume_crs)
    except Exception as exc:  # pyproj.exceptions.CRSError
        raise CRSError(f"--assume-crs {assume_crs!r} is not a CRS pyproj knows ({exc}); use "
                       "e.g. EPSG:4326 or a PROJ string") from None
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if crs.is_geographic or not ok.any():
        return crs
    degrees = (np.abs(x[ok]) <= 180) & (np.abs(y[ok]) <= 90)
    if degrees.mean() >= 0.95:  # a few rows off the Earth are the row screen's to drop
        warn_repair(f"{what} file {path}: --assume-crs {assume_crs} is projected, but the "
                    f"coordinates of the file are within ±180/±90 (x {np.nanmin(x):.4f}.."
                    f"{np.nanmax(x):.4f}, y {np.nanmin(y):.4f}..{np.nanmax(y):.4f}): they are "
                    "longitude/latitude degrees, read as EPSG:4326")
        return CRS.from_epsg(4326)
    return crs


def check_place(gdf: gpd.GeoDataFrame, path: Path, what: str) -> None:
    """Refuse coordinates that cannot be where their CRS says; say why when it is clear.

    Three cases are told apart: longitude/latitude swapped (a "latitude" beyond 90 whose
    longitude would fit), projected metres labelled as degrees, and degrees labelled as a
    projected CRS (which land far outside the CRS's area of use).
    """
    geoms = gdf.geometry
    ok = ~(geoms.is_empty | geoms.isna())
    if not ok.any():
        return
    crs = CRS.from_user_input(gdf.crs)
    b = geoms[ok].total_bounds
    if crs.is_geographic:
        if np.abs(b[[1, 3]]).max() <= 90 and np.abs(b[[0, 2]]).max() <= 180:
            return
        if np.abs(b[[0, 2]]).max() <= 90 and np.abs(b[[1, 3]]).max() <= 180:
            raise CRSError(
                f"{what} file {path}: latitudes reach {b[3]:.3f} degrees, beyond 90, while "
                f"longitudes stay within ±90 (bounds {np.round(b, 3).tolist()}): longitude and "
                "latitude are swapped; swap the columns or coordinates (x = longitude, y = "
                "latitude) and read again"
            )
        raise CRSError(
            f"{what} file {path}: coordinates (bounds {np.round(b, 1).tolist()}) cannot be "
            f"degrees, yet the CRS is {crs.to_string()} (geographic). They look like "
            f"projected metres: {crs_hint(b, option='')}. Set the file's real CRS (QGIS: "
            "Layer > Set CRS) and save it again"
        )
    ll = geoms[ok].to_crs(4326)
    lb = ll.total_bounds
    if not np.all(np.isfinite(lb)) or np.abs(lb[[1, 3]]).max() > 90:
        raise CRSError(
            f"{what} file {path}: coordinates in {crs.to_string()} do not land on Earth "
            f"(bounds {np.round(b, 3).tolist()}); the stated CRS is wrong: {crs_hint(b, option='')}"
        )
    area = crs.area_of_use
    if area is not None:
        margin = 5.0
        outside = (lb[0] > area.east + margin or lb[2] < area.west - margin
                   or lb[1] > area.north + margin or lb[3] < area.south - margin)
        if outside:
            looks_degrees = np.abs(b).max() <= 360
            why = (" The coordinates look like degrees: the file's CRS should be EPSG:4326."
                   if looks_degrees else " " + crs_hint(b, option=""))
            raise CRSError(
                f"{what} file {path}: in the stated CRS {crs.to_string()} ({crs.name}) the "
                f"data land at {np.round(lb, 2).tolist()} (lon/lat), outside the area where "
                f"that CRS is used ({area.name}: {area.west:.1f}..{area.east:.1f}E, "
                f"{area.south:.1f}..{area.north:.1f}N): the CRS is wrong.{why}"
            )


def utm_crs(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> CRS:
    """``gdf.estimate_utm_crs()``, remembered by the data's CRS and bounds.

    GeoPandas estimates the UTM zone from the data's CRS and total bounds only, by a query
    of PROJ's database (about 50 ms); a run asks it a dozen times, of the same villages
    several times, so the answers are kept: the same CRS as GeoPandas gives, always.
    """
    return _utm_crs_of(gdf.crs, tuple(float(v) for v in gdf.total_bounds))


@functools.lru_cache(maxsize=64)
def _utm_crs_of(crs: CRS, bounds: tuple[float, float, float, float]) -> CRS:
    return gpd.GeoSeries([shapely.box(*bounds)], crs=crs).estimate_utm_crs()


def metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """The UTM CRS that suits the data, for measuring in metres (like osmnx ``project_gdf``).

    Works from any input CRS (VN-2000 zones included); the choice is logged at INFO.
    """
    crs = utm_crs(gdf)
    log.info("analysis CRS: %s (%s)", crs.to_string(), crs.name)
    return crs
