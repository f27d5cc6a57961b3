"""Reading the contract's inputs and writing its outputs.

Readers return GeoDataFrames (vector inputs) or :class:`Raster` objects, with the contract's
column names and types: ids as text, names NFC-normalised, technologies as ``2G``..``5G``.
Problems that can be repaired are repaired and reported with a :class:`RepairWarning`;
problems that cannot are raised as :class:`InputError` subclasses naming the file, the rows
and the fix. Writers are atomic: a temporary file beside the target, then ``os.replace``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from pyproj import CRS
from rasterio.transform import Affine

from .errors import (
    CRSError,
    InputError,
    InputFileNotFoundError,
    OutputExistsError,
    RepairWarning,
    SchemaError,
)

__all__ = [
    "OPENCELLID_COLUMNS",
    "Raster",
    "fold_name",
    "metric_crs",
    "normalize_tech",
    "read_access",
    "read_candidates",
    "read_fibre",
    "read_measurements",
    "read_raster",
    "read_roads",
    "read_towers",
    "read_vector",
    "read_villages",
    "write_raster",
    "write_table",
]

log = logging.getLogger(__name__)

OPENCELLID_COLUMNS = (
    "radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples",
    "changeable", "created", "updated", "averageSignal",
)
_TECH_ALIASES = {
    "2G": "2G", "GSM": "2G", "CDMA": "2G", "GPRS": "2G", "EDGE": "2G",
    "3G": "3G", "UMTS": "3G", "WCDMA": "3G", "HSPA": "3G", "HSPA+": "3G",
    "4G": "4G", "LTE": "4G", "LTE-A": "4G",
    "5G": "5G", "NR": "5G", "NSA": "5G", "SA": "5G",
}
#: Mobile network codes of Vietnam (MCC 452).
VN_OPERATORS = {1: "MobiFone", 2: "VinaPhone", 4: "Viettel", 5: "Vietnamobile", 7: "Gmobile"}
SITE_COLUMNS = (
    "site_id", "operator", "tech", "height_m", "azimuth_deg", "beamwidth_deg", "eirp_dbm",
    "freq_mhz", "status", "backhaul", "source",
)


# --------------------------------------------------------------------------- helpers
def _path(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(
            f"{what} file {path} does not exist; check the path (relative paths are taken "
            f"from {Path.cwd()})"
        )
    if path.is_dir() and path.suffix.lower() not in (".gdb",):
        raise InputError(f"{what} path {path} is a folder; give the file inside it")
    return path


def fold_name(name: object) -> str:
    """Accent-folded, lower-case matching key of a name ("Nà Lốc" -> "na loc").

    Examples
    --------
    >>> fold_name("Bản Nà Lốc") == fold_name("ban na loc")
    True
    """
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    text = unicodedata.normalize("NFD", str(name)).replace("đ", "d").replace("Đ", "D")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().split())


def _nfc(series: pd.Series) -> pd.Series:
    return series.map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)


def normalize_tech(values: Iterable[object]) -> list[str | None]:
    """Map technology labels (``LTE``, ``umts``, ``4g``...) to ``2G``..``5G``; unknown -> None."""
    out: list[str | None] = []
    for value in values:
        key = str(value).strip().upper() if value is not None else ""
        out.append(_TECH_ALIASES.get(key))
    return out


def _as_text_id(series: pd.Series) -> pd.Series:
    """Ids as text; floats that are whole numbers lose the spurious ``.0``."""
    def conv(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()
    return series.map(conv).astype(object)


def _plausible_lonlat(gdf: gpd.GeoDataFrame, path: Path, what: str) -> None:
    """Refuse coordinates that cannot be on Earth, and say if lon/lat look swapped."""
    if gdf.empty:
        return
    ll = gdf.to_crs(4326) if not gdf.crs.equals(CRS.from_epsg(4326)) else gdf
    b = ll.total_bounds
    if not np.all(np.isfinite(b)) or b[1] < -90 or b[3] > 90 or b[0] < -180 or b[2] > 180:
        raise CRSError(
            f"{what} file {path}: coordinates fall outside the Earth (bounds {np.round(b, 3)} "
            f"in EPSG:4326); the stated CRS {gdf.crs.to_string()} is probably wrong: set the "
            "right one, or use --assume-crs"
        )


def metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """Return the UTM CRS that suits the data, for measuring in metres (like osmnx)."""
    crs = gdf.estimate_utm_crs()
    log.info("analysis CRS: %s (%s)", crs.to_string(), crs.name)
    return crs


# --------------------------------------------------------------------------- vectors
def read_vector(
    path: str | os.PathLike[str],
    *,
    what: str = "input",
    assume_crs: str | None = None,
    layer: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read any vector file GDAL reads, or a CSV with ``lon``/``lat`` or a WKT ``geometry``.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file is, for messages ("villages", "towers"...).
    assume_crs : str, optional
        CRS to use when the file states none (CSV files are taken as EPSG:4326 when they have
        ``lon``/``lat`` columns).
    layer : str or int, optional
        Layer of a multi-layer source.

    Raises
    ------
    InputError
        When the file is missing, unreadable, empty, or has no CRS and none was assumed.
    """
    path = _path(path, what)
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        gdf = _read_csv_vector(path, what=what, assume_crs=assume_crs)
    elif path.suffix.lower() in (".parquet", ".geoparquet"):
        try:
            gdf = gpd.read_parquet(path)
        except Exception as exc:  # pyarrow: ArrowInvalid, OSError; geopandas: ValueError
            raise InputError(f"{what} file {path} cannot be read as GeoParquet "
                             f"({type(exc).__name__}: {exc})") from None
        if gdf.crs is None:
            if assume_crs is None:
                raise CRSError(f"{what} file {path} has no CRS; state it with --assume-crs")
            gdf = gdf.set_crs(assume_crs)
    else:
        try:
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
        except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
            raise InputError(
                f"{what} file {path} cannot be read ({type(exc).__name__}: {exc}); check that "
                "it is a complete GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GeoParquet or KML"
            ) from None
        if gdf.crs is None:
            if assume_crs is None:
                raise CRSError(
                    f"{what} file {path} has no CRS; state it with --assume-crs (for example "
                    "--assume-crs EPSG:4326 for longitude/latitude, EPSG:3405 for VN-2000 / "
                    "UTM 48N)"
                )
            gdf = gdf.set_crs(assume_crs)
    if gdf.empty:
        raise InputError(f"{what} file {path} holds no features; is it the right layer?")
    _plausible_lonlat(gdf, path, what)
    return gdf


def _read_csv_vector(path: Path, *, what: str, assume_crs: str | None) -> gpd.GeoDataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                         encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{what} file {path} is not a readable CSV: {exc}") from None
    cols = {c.lower().strip(): c for c in df.columns}
    lon = next((cols[c] for c in ("lon", "longitude", "lng", "x") if c in cols), None)
    lat = next((cols[c] for c in ("lat", "latitude", "y") if c in cols), None)
    crs = assume_crs or "EPSG:4326"
    if lon and lat:
        x = pd.to_numeric(df[lon], errors="coerce")
        y = pd.to_numeric(df[lat], errors="coerce")
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.all():
            raise InputError(f"{what} file {path}: no row has numeric {lon}/{lat}")
        if bad.any():
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad.to_numpy())[:10])
            warnings.warn(
                f"{what} file {path}: {int(bad.sum())} row(s) without numeric coordinates "
                f"dropped (lines {rows})", RepairWarning, stacklevel=3)
            df, x, y = df[~bad], x[~bad], y[~bad]
        if crs == "EPSG:4326" and (np.abs(y) > 90).any():
            n = int((np.abs(y) > 90).sum())
            swapped = bool(((np.abs(x) <= 90) & (np.abs(y) <= 180)).all())
            hint = (" The columns look swapped: lon holds latitudes and lat longitudes."
                    if swapped else "")
            raise CRSError(
                f"{what} file {path}: {n} row(s) have a latitude beyond 90 degrees, which "
                f"cannot be on Earth.{hint} Fix the columns, or give the CRS of projected "
                "coordinates with --assume-crs"
            )
        geom = gpd.points_from_xy(x, y)
        df = df.drop(columns=[lon, lat])
        return gpd.GeoDataFrame(df.reset_index(drop=True),
                                geometry=geom, crs=crs).assign(lon=x.to_numpy(), lat=y.to_numpy())
    wkt = cols.get("geometry") or cols.get("wkt") or cols.get("geom")
    if wkt:
        try:
            geom = shapely.from_wkt(df[wkt].to_numpy())
        except shapely.errors.GEOSException as exc:
            raise InputError(f"{what} file {path}: column {wkt} is not valid WKT: {exc}") from None
        return gpd.GeoDataFrame(df.drop(columns=[wkt]), geometry=geom, crs=crs)
    raise SchemaError(
        f"{what} file {path} is a CSV without coordinates: found columns "
        f"{', '.join(df.columns)}; add lon and lat columns, or a WKT 'geometry' column"
    )


def read_villages(
    path: str | os.PathLike[str],
    *,
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    assume_crs: str | None = None,
    layer: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read village polygons, with text ids, NFC names and valid (multi)polygons.

    The id column is copied to ``village_id`` (text), the name column to ``name`` and the
    population column to ``population`` when they are mapped from other names; every input
    column is kept. Invalid geometries are repaired with ``make_valid`` and counted;
    collections are reduced to their polygonal parts.

    Raises
    ------
    SchemaError
        When the id column is missing or holds empty or duplicate ids.
    InputError
        When a village has no polygonal area.
    """
    gdf = read_vector(path, what="villages", assume_crs=assume_crs, layer=layer)
    path = Path(path)
    if id_col not in gdf.columns:
        raise SchemaError(
            f"villages file {path} has no id column {id_col!r}; found "
            f"{', '.join(map(str, gdf.columns))}; name the id column with --id-col"
        )
    gdf["village_id"] = _as_text_id(gdf[id_col])
    empty = gdf["village_id"].isna() | (gdf["village_id"] == "")
    if empty.any():
        rows = np.flatnonzero(empty.to_numpy())[:10]
        raise SchemaError(f"villages file {path}: empty {id_col} in row(s) {list(rows)}")
    dup = gdf["village_id"].duplicated(keep=False)
    if dup.any():
        ids = sorted(set(gdf.loc[dup, "village_id"]))[:10]
        raise SchemaError(
            f"villages file {path}: duplicate {id_col} values {ids}; ids must be unique "
            "(merge the duplicated polygons or give them distinct ids)"
        )
    if name_col in gdf.columns:
        gdf["name"] = _nfc(gdf[name_col].astype(object))
    elif "name" not in gdf.columns:
        gdf["name"] = gdf["village_id"]
    if pop_col in gdf.columns:
        pop = pd.to_numeric(gdf[pop_col], errors="coerce")
        if (pop < 0).any():
            raise SchemaError(f"villages file {path}: negative {pop_col} for ids "
                              f"{list(gdf.loc[pop < 0, 'village_id'][:10])}")
        gdf["population"] = pop
    for col in ("commune", "district", "province"):
        if col in gdf.columns:
            gdf[col] = _nfc(gdf[col].astype(object))
    gdf["geometry"] = _polygonal(gdf.geometry, path)
    return gdf


def _polygonal(geoms: gpd.GeoSeries, path: Path) -> gpd.GeoSeries:
    arr = geoms.to_numpy()
    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    invalid = ~missing & ~shapely.is_valid(arr)
    if invalid.any():
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid])
        warnings.warn(f"villages file {path}: {int(invalid.sum())} invalid geometr"
                      f"{'y' if invalid.sum() == 1 else 'ies'} repaired with make_valid",
                      RepairWarning, stacklevel=3)
    types = shapely.get_type_id(arr)
    collection = types == 7
    if collection.any():
        arr[collection] = [shapely.union_all(shapely.get_parts(g)[
            np.isin(shapely.get_type_id(shapely.get_parts(g)), (3, 6))]) for g in arr[collection]]
    area = shapely.area(arr)
    bad = missing | ~np.isin(shapely.get_type_id(arr), (3, 6)) | (area <= 0)
    if bad.any():
        raise InputError(
            f"villages file {path}: {int(bad.sum())} feature(s) have no polygon area (rows "
            f"{list(np.flatnonzero(bad)[:10])}); villages must be polygons or multipolygons"
        )
    return gpd.GeoSeries(arr, index=geoms.index, crs=geoms.crs)


# --------------------------------------------------------------------------- towers
def _is_opencellid(path: Path) -> tuple[bool, bool]:
    """(is OpenCelliD, has header) from the first line of a CSV."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline().strip()
    fields = [f.strip().strip('"') for f in first.split(",")]
    if [f.lower() for f in fields[:3]] == ["radio", "mcc", "net"]:
        return True, True
    if len(fields) == 14 and fields[0].upper() in ("GSM", "UMTS", "LTE", "NR", "CDMA"):
        return True, False
    return False, False


def read_towers(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    assume_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Read towers: OpenCelliD CSVs (with or without header) and site tables, concatenated.

    Returns one row per transmitter (a sector, or an omni antenna) with the columns
    ``site_id, operator, tech, height_m, azimuth_deg, beamwidth_deg, eirp_dbm, freq_mhz,
    status, backhaul, source`` and point geometry in EPSG:4326. Empty link-budget cells are
    NaN; the model fills them from :class:`coverage.params.TechDefaults`.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        p = _path(p, "towers")
        is_ocid, header = _is_opencellid(p) if p.suffix.lower() in (".csv", ".txt") else (
            False, False)
        frames.append(_read_opencellid(p, header=header) if is_ocid
                      else _read_site_table(p, assume_crs=assume_crs))
    towers = pd.concat(frames, ignore_index=True)
    dup = towers.duplicated(subset=["site_id", "tech", "azimuth_deg"], keep="first")
    if dup.any():
        warnings.warn(f"towers: {int(dup.sum())} duplicate transmitter row(s) dropped "
                      f"(same site_id, tech and azimuth), e.g. {list(towers.site_id[dup][:5])}",
                      RepairWarning, stacklevel=2)
        towers = towers[~dup].reset_index(drop=True)
    return gpd.GeoDataFrame(towers, geometry="geometry", crs=4326)


def _read_site_table(path: Path, *, assume_crs: str | None) -> gpd.GeoDataFrame:
    gdf = read_vector(path, what="towers", assume_crs=assume_crs).to_crs(4326)
    missing = [c for c in ("site_id", "tech") if c not in gdf.columns]
    if missing:
        raise SchemaError(
            f"towers file {path} lacks required column(s) {', '.join(missing)}; found "
            f"{', '.join(map(str, gdf.columns))}. A site table needs site_id and tech "
            "(an OpenCelliD export needs its 14 columns)"
        )
    out = pd.DataFrame({"site_id": _as_text_id(gdf["site_id"])})
    out["operator"] = (gdf["operator"].astype(object).where(gdf["operator"].notna(), "unknown")
                       .map(str) if "operator" in gdf.columns else "unknown")
    tech = normalize_tech(gdf["tech"])
    bad = [i for i, t in enumerate(tech) if t is None]
    if bad:
        raise SchemaError(
            f"towers file {path}: unknown tech in row(s) {bad[:10]} (values "
            f"{sorted(set(map(str, gdf['tech'].iloc[bad])))[:5]}); use 2G, 3G, 4G, 5G or "
            "GSM, UMTS, LTE, NR"
        )
    out["tech"] = tech
    for col in ("height_m", "azimuth_deg", "beamwidth_deg", "eirp_dbm", "freq_mhz"):
        out[col] = (pd.to_numeric(gdf[col], errors="coerce").astype(float)
                    if col in gdf.columns else np.nan)
    out["height_m"] = out["height_m"].fillna(30.0)
    out["beamwidth_deg"] = out["beamwidth_deg"].fillna(65.0)
    status = (gdf["status"].astype(object).fillna("active").map(lambda s: str(s).strip().lower())
              if "status" in gdf.columns else "active")
    out["status"] = status
    bad_status = ~out["status"].isin(["active", "planned"])
    if bad_status.any():
        raise SchemaError(f"towers file {path}: status must be active or planned; found "
                          f"{sorted(set(out.loc[bad_status, 'status']))}")
    out["backhaul"] = (gdf["backhaul"].astype(object).where(gdf["backhaul"].notna(), None)
                       if "backhaul" in gdf.columns else None)
    out["source"] = "site_table"
    geom = gdf.geometry
    if not (geom.geom_type == "Point").all():  # site polygons or lines: a point inside
        geom = geom.representative_point()
    return gpd.GeoDataFrame(out, geometry=geom.to_numpy(), crs=4326)


def _read_opencellid(path: Path, *, header: bool) -> gpd.GeoDataFrame:
    df = pd.read_csv(path, header=0 if header else None,
                     names=None if header else list(OPENCELLID_COLUMNS))
    if len(df.columns) != 14:
        raise SchemaError(f"OpenCelliD file {path} has {len(df.columns)} columns, expected 14: "
                          f"{','.join(OPENCELLID_COLUMNS)}")
    df.columns = list(OPENCELLID_COLUMNS)
    for col in ("mcc", "net", "area", "cell", "lon", "lat", "range", "samples"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    bad = df[["mcc", "net", "cell", "lon", "lat"]].isna().any(axis=1) | (df.lat.abs() > 90) | (
        df.lon.abs() > 180)
    if (df.lat.abs() > 90).any():
        raise CRSError(f"OpenCelliD file {path}: {int((df.lat.abs() > 90).sum())} row(s) with "
                       "latitude beyond 90 degrees; OpenCelliD positions are WGS84 lon/lat")
    if bad.any():
        warnings.warn(f"OpenCelliD file {path}: {int(bad.sum())} row(s) without numeric ids or "
                      "coordinates dropped", RepairWarning, stacklevel=3)
        df = df[~bad]
    df["tech"] = normalize_tech(df["radio"])
    df = df[df["tech"].notna()].copy()
    df["samples"] = df["samples"].fillna(1).clip(lower=1)
    df["operator"] = [VN_OPERATORS.get(int(n), f"{int(m)}-{int(n)}") if int(m) == 452
                      else f"{int(m)}-{int(n)}" for m, n in zip(df.mcc, df.net, strict=True)]
    df["group"] = ""
    lte = df["tech"] == "4G"
    df.loc[lte, "group"] = [f"{int(m)}-{int(n)}-enb{int(c) // 256}"
                            for m, n, c in zip(df.mcc[lte], df.net[lte], df.cell[lte], strict=True)]
    if (~lte).any():
        df.loc[~lte, "group"] = _cluster_within(df[~lte], radius_m=50.0)
    g = df.assign(wx=df.lon * df.samples, wy=df.lat * df.samples).groupby(
        ["group", "tech"], sort=True)
    sites = g.agg(operator=("operator", "first"), wx=("wx", "sum"), wy=("wy", "sum"),
                  samples=("samples", "sum"), range_m=("range", "median")).reset_index()
    sites["lon"] = sites.wx / sites.samples
    sites["lat"] = sites.wy / sites.samples
    out = pd.DataFrame({
        "site_id": sites["group"], "operator": sites["operator"], "tech": sites["tech"],
        "height_m": 30.0, "azimuth_deg": np.nan, "beamwidth_deg": 65.0, "eirp_dbm": np.nan,
        "freq_mhz": np.nan, "status": "active", "backhaul": None, "source": "opencellid",
    })
    log.info("OpenCelliD %s: %d cells grouped into %d transmitters", path, len(df), len(out))
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(sites.lon, sites.lat), crs=4326)


def _cluster_within(cells: pd.DataFrame, *, radius_m: float) -> list[str]:
    """Single-linkage clusters of one operator's cells within ``radius_m`` of each other."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pts = gpd.GeoSeries(gpd.points_from_xy(cells.lon, cells.lat), crs=4326)
    xy = shapely.get_coordinates(pts.to_crs(pts.estimate_utm_crs()).to_numpy())
    op = cells["mcc"].astype(int).astype(str) + "-" + cells["net"].astype(int).astype(str)
    labels = np.empty(len(cells), dtype=object)
    for key in op.unique():
        idx = np.flatnonzero((op == key).to_numpy())
        pairs = cKDTree(xy[idx]).query_pairs(radius_m, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(idx), len(idx)))
        _, comp = connected_components(graph, directed=False)
        labels[idx] = [f"{key}-s{c}" for c in comp]
    return list(labels)


# --------------------------------------------------------------------------- measurements
def read_measurements(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    assume_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Read point tests and Ookla tiles into one table of observations.

    Columns: ``tech`` (``2G``..``5G``, ``none`` for no service, empty when unknown),
    ``operator``, ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``, ``latency_ms``,
    ``timestamp``, ``weight`` (tests the row stands for: 1 for a point test, ``tests`` for an
    Ookla tile, placed at the tile's centre) and ``source``. Rows with impossible values
    (NaN or infinite coordinates, negative speeds, RSRP outside -160..-20 dBm) lose those
    values or are dropped, and are counted in a :class:`RepairWarning`.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        p = _path(p, "measurements")
        frames.append(_read_ookla(p) if _is_ookla(p) else _read_point_tests(p, assume_crs))
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4326)


def _is_ookla(path: Path) -> bool:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        names = pq.read_schema(path).names
    elif path.suffix.lower() == ".csv":
        names = pd.read_csv(path, nrows=0).columns
    else:
        return False
    return "quadkey" in names and "avg_d_kbps" in names


def _read_ookla(path: Path) -> gpd.GeoDataFrame:
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("tile", "avg_d_kbps", "tests") if c not in df.columns]
    if missing:
        raise SchemaError(f"Ookla file {path} lacks {', '.join(missing)}")
    tiles = shapely.from_wkt(df["tile"].to_numpy())
    out = pd.DataFrame({
        "tech": None, "operator": None, "rsrp_dbm": np.nan,
        "download_mbps": pd.to_numeric(df["avg_d_kbps"], errors="coerce") / 1000.0,
        "upload_mbps": pd.to_numeric(df.get("avg_u_kbps"), errors="coerce") / 1000.0,
        "latency_ms": pd.to_numeric(df.get("avg_lat_ms"), errors="coerce"),
        "timestamp": None,
        "weight": pd.to_numeric(df["tests"], errors="coerce").fillna(1).clip(lower=1),
        "source": "ookla",
    })
    return _clean_measurements(
        gpd.GeoDataFrame(out, geometry=shapely.centroid(tiles), crs=4326), path)


def _read_point_tests(path: Path, assume_crs: str | None) -> gpd.GeoDataFrame:
    gdf = read_vector(path, what="measurements", assume_crs=assume_crs).to_crs(4326)
    out = pd.DataFrame(index=gdf.index)
    if "tech" in gdf.columns:
        raw = gdf["tech"].astype(object)
        tech = normalize_tech(raw)
        out["tech"] = ["none" if str(r).strip().lower() in ("none", "no_service", "0")
                       else t for r, t in zip(raw, tech, strict=True)]
    else:
        out["tech"] = None
    out["operator"] = gdf["operator"].astype(object) if "operator" in gdf.columns else None
    for col in ("rsrp_dbm", "download_mbps", "upload_mbps", "latency_ms"):
        out[col] = (pd.to_numeric(gdf[col], errors="coerce").astype(float)
                    if col in gdf.columns else np.nan)
    out["timestamp"] = (
        pd.to_datetime(gdf["timestamp"], errors="coerce", utc=True, format="ISO8601")
        if "timestamp" in gdf.columns else pd.NaT)
    out["weight"] = 1.0
    out["source"] = "tests"
    return _clean_measurements(gpd.GeoDataFrame(out, geometry=gdf.geometry, crs=4326), path)


def _clean_measurements(gdf: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    xy = shapely.get_coordinates(gdf.geometry.to_numpy())
    finite = np.isfinite(xy).all(axis=1) if len(xy) == len(gdf) else np.ones(len(gdf), bool)
    n_dropped = int((~finite).sum())
    gdf = gdf[finite].copy()
    n_blanked = 0
    limits = {"rsrp_dbm": (-160, -20), "download_mbps": (0, 10_000),
              "upload_mbps": (0, 10_000), "latency_ms": (0, 60_000)}
    for col, (lo, hi) in limits.items():
        v = gdf[col].to_numpy(dtype=float)
        bad = ~np.isnan(v) & ((v < lo) | (v > hi) | ~np.isfinite(v))
        n_blanked += int(bad.sum())
        gdf.loc[bad, col] = np.nan
    if n_dropped or n_blanked:
        warnings.warn(
            f"measurements file {path}: {n_dropped} row(s) without finite coordinates dropped; "
            f"{n_blanked} impossible value(s) (infinite, negative speed, RSRP outside -160..-20 "
            "dBm) cleared", RepairWarning, stacklevel=4)
    return gdf.reset_index(drop=True)


# --------------------------------------------------------------------------- tables
def read_access(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the access table keyed by ``village_id`` (text); shares are checked to be in 0..1."""
    path = _path(path, "access")
    df = pd.read_csv(path, dtype={"village_id": str}, encoding="utf-8-sig")
    if "village_id" not in df.columns:
        raise SchemaError(f"access file {path} has no village_id column; found "
                          f"{', '.join(df.columns)}")
    df["village_id"] = _as_text_id(df["village_id"])
    for col in ("electricity_share", "smartphone_share", "monthly_income", "data_price_1gb"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
    for col in ("electricity_share", "smartphone_share"):
        bad = (df[col] < 0) | (df[col] > 1)
        if bad.any():
            raise SchemaError(f"access file {path}: {col} must be a share in 0..1; rows "
                              f"{list(df.index[bad][:10] + 2)} are outside (percentages?)")
    if df["village_id"].duplicated().any():
        raise SchemaError(f"access file {path}: duplicate village_id "
                          f"{list(df.village_id[df.village_id.duplicated()][:10])}")
    return df.set_index("village_id")


def read_fibre(path: str | os.PathLike[str], *, assume_crs: str | None = None
               ) -> gpd.GeoDataFrame:
    """Read fibre routes (lines) or nodes (points)."""
    return read_vector(path, what="fibre", assume_crs=assume_crs)


def read_candidates(path: str | os.PathLike[str], *, assume_crs: str | None = None
                    ) -> gpd.GeoDataFrame:
    """Read candidate site points; ``site_id`` is made up from the row when absent."""
    gdf = read_vector(path, what="candidates", assume_crs=assume_crs).to_crs(4326)
    if "site_id" not in gdf.columns:
        gdf["site_id"] = [f"cand-{i + 1}" for i in range(len(gdf))]
    gdf["site_id"] = _as_text_id(gdf["site_id"])
    gdf["geometry"] = gdf.geometry.representative_point()
    return gdf


def read_roads(path: str | os.PathLike[str]):  # -> networkx.MultiDiGraph
    """Read a road graph from OSM XML (``.osm``) or GraphML with osmnx, offline."""
    import osmnx as ox

    path = _path(path, "roads")
    try:
        if path.suffix.lower() == ".graphml":
            return ox.load_graphml(path)
        return ox.graph_from_xml(path, simplify=True, retain_all=True)
    except Exception as exc:
        raise InputError(f"roads file {path} cannot be read by osmnx ({exc}); give an OSM XML "
                         "(.osm) or GraphML file") from None


# --------------------------------------------------------------------------- rasters
@dataclass(frozen=True)
class Raster:
    """A single-band raster in memory.

    Attributes
    ----------
    array : ndarray
        Values, with nodata as NaN (float).
    transform : Affine
        Maps (col, row) to map coordinates of ``crs``.
    crs : pyproj.CRS
        Coordinate reference system.
    """

    array: np.ndarray
    transform: Affine
    crs: CRS

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.array.shape  # type: ignore[return-value]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in ``crs`` units."""
        rows, cols = self.shape
        t = self.transform
        left, top = t.c, t.f
        right, bottom = t.c + cols * t.a + rows * t.b, t.f + cols * t.d + rows * t.e
        return min(left, right), min(bottom, top), max(left, right), max(bottom, top)


def read_raster(path: str | os.PathLike[str], *, what: str = "raster",
                assume_crs: str | None = None) -> Raster:
    """Read band 1 of a GeoTIFF or SRTM ``.hgt`` tile, nodata (and SRTM voids) as NaN."""
    path = _path(path, what)
    try:
        with rasterio.open(path) as src:
            arr = src.read(1, masked=True).astype("float64").filled(np.nan)
            crs = src.crs
            transform = src.transform
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{what} file {path} cannot be read as a raster: {exc}") from None
    if crs is None:
        if assume_crs is None:
            raise CRSError(f"{what} file {path} has no CRS; state it with --assume-crs")
        crs = assume_crs
    if path.suffix.lower() == ".hgt":
        arr[arr <= -32767] = np.nan
    return Raster(arr, transform, CRS.from_user_input(crs))


def write_raster(raster: Raster, path: str | os.PathLike[str], *, overwrite: bool = False,
                 band_names: Sequence[str] | None = None) -> Path:
    """Write a raster (2-D, or 3-D bands-first) as a deflate-compressed GeoTIFF, atomically."""
    arr = raster.array if raster.array.ndim == 3 else raster.array[None]
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1],
               "count": arr.shape[0], "dtype": "float32", "crs": raster.crs.to_wkt(),
               "transform": raster.transform, "nodata": np.nan, "compress": "deflate"}
    with _atomic(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr.astype("float32"))
        for i, name in enumerate(band_names or [], start=1):
            dst.set_band_description(i, name)
    return Path(path)


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _atomic(path: str | os.PathLike[str], *, overwrite: bool):
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # GDAL drivers refuse to create over an existing file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_table(gdf: gpd.GeoDataFrame | pd.DataFrame, path: str | os.PathLike[str], *,
                overwrite: bool = False, layer: str | None = None) -> Path:
    """Write a table by the extension of ``path``, atomically.

    ``.gpkg``, ``.geojson``, ``.fgb``, ``.shp`` and ``.parquet`` keep geometry; ``.csv`` and
    ``.xlsx`` replace it with ``lon``/``lat`` (WGS84) of a point inside each shape.
    """
    path = Path(path)
    ext = path.suffix.lower()
    table = gdf
    if ext in (".csv", ".xlsx") and isinstance(gdf, gpd.GeoDataFrame):
        pts = gdf.geometry.representative_point().to_crs(4326)
        table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if "lon" not in table.columns:
            table["lon"] = pts.x.round(6).to_numpy()
            table["lat"] = pts.y.round(6).to_numpy()
    with _atomic(path, overwrite=overwrite) as tmp:
        if ext == ".csv":
            table.to_csv(tmp, index=False, encoding="utf-8")
        elif ext == ".xlsx":
            table.to_excel(tmp, index=False, sheet_name=(layer or path.stem)[:31])
        elif ext == ".parquet":
            table.to_parquet(tmp, index=False)
        elif ext in (".gpkg", ".geojson", ".json", ".fgb", ".shp"):
            if not isinstance(table, gpd.GeoDataFrame):
                raise InputError(f"{path}: a {ext} output needs geometry")
            kwargs = {"layer": layer or path.stem} if ext == ".gpkg" else {}
            pyogrio.write_dataframe(table, tmp, **kwargs)
        else:
            raise InputError(f"{path}: unknown output format {ext!r}; use .gpkg, .geojson, "
                             ".parquet, .csv or .xlsx")
    log.info("wrote %s (%d rows)", path, len(gdf))
    return path
