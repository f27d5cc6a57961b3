"""Measurements: point tests and Ookla open-data tiles, cleaned of impossible values."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import InputError
from ._common import (
    PathLike,
    apply_columns,
    check_path,
    missing_columns_error,
    normalize_tech,
    warn_repair,
)
from .vector import read_csv_table, read_vector, sniff_format

__all__ = ["MEASUREMENT_LIMITS", "read_measurements"]

#: Physically possible ranges; values outside are cleared (the row is kept).
MEASUREMENT_LIMITS = {
    "rsrp_dbm": (-160.0, -20.0),  # below the noise floor of any UE .. next to the antenna
    "download_mbps": (0.0, 10_000.0),
    "upload_mbps": (0.0, 10_000.0),
    "latency_ms": (0.0, 60_000.0),
}
_NO_SERVICE = {"none", "no_service", "no service", "noservice", "0", "nosignal", "no_signal"}
OOKLA_COLUMNS = ("quadkey", "tile", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms", "tests",
                 "devices")


def read_measurements(
    paths: PathLike | Sequence[PathLike],
    *,
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
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

    Returns
    -------
    GeoDataFrame
        Columns ``tech`` (``2G``..``5G``, ``none`` for no service, empty when unknown),
        ``operator``, ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``, ``latency_ms``,
        ``timestamp`` (UTC), ``weight`` (tests the row stands for: 1 for a point test,
        ``tests`` for an Ookla tile, placed at the tile's centre) and ``source``; EPSG:4326.

    Warns
    -----
    RepairWarning
        Rows without finite coordinates are dropped; impossible values (NaN text, infinite,
        negative speeds, RSRP outside -160..-20 dBm, latency beyond a minute) are cleared;
        both are counted per file.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        p = check_path(p, "measurements")
        frames.append(_read_ookla(p) if _is_ookla(p)
                      else _read_point_tests(p, columns=columns, assume_crs=assume_crs))
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4326)


def _is_ookla(path: Path) -> bool:
    fmt = sniff_format(path)
    if fmt == "Parquet":
        import pyarrow.parquet as pq
        try:
            names = pq.read_schema(path).names
        except Exception:  # truncated: the vector reader reports it
            return False
    elif fmt == "CSV":
        with path.open("rb") as fh:
            first = fh.readline().decode("utf-8-sig", errors="replace")
        names = [n.strip().strip('"') for n in first.replace(";", ",").split(",")]
    else:
        return False
    return "quadkey" in names and "avg_d_kbps" in names


def _quadkey_tiles(keys: pd.Series) -> np.ndarray:
    """Web-Mercator tile polygons (EPSG:4326) of Bing quadkeys."""
    def bounds(key: str) -> tuple[float, float, float, float]:
        x = y = 0
        for ch in key:
            d = int(ch)
            x, y = (x << 1) | (d & 1), (y << 1) | (d >> 1)
        n = 2 ** len(key)

        def lat(t: float) -> float:
            return float(np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * t / n)))))
        return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)
    return shapely.box(*np.array([bounds(str(k)) for k in keys]).T)


def _read_ookla(path: Path) -> gpd.GeoDataFrame:
    try:
        df = (pd.read_parquet(path) if sniff_format(path) == "Parquet"
              else read_csv_table(path, what="Ookla"))
    except InputError:
        raise
    except Exception as exc:  # pyarrow errors on truncated files
        raise InputError(f"Ookla file {path} cannot be read ({exc})") from None
    return _ookla_tiles(df, path)


def _ookla_tiles(df: pd.DataFrame, path: Path) -> gpd.GeoDataFrame:
    """Ookla rows as observations at their tiles' centres, cleaned."""
    missing = [c for c in ("avg_d_kbps", "tests") if c not in df.columns]
    if missing:
        raise missing_columns_error(df, missing, what="Ookla", path=path,
                                    hint=f"Ookla tiles have {', '.join(OOKLA_COLUMNS)}")
    if "tile" in df.columns:
        try:
            tiles = shapely.from_wkt(df["tile"].astype(object).to_numpy())
        except shapely.errors.GEOSException as exc:
            raise InputError(f"Ookla file {path}: column tile is not WKT ({exc})") from None
    else:
        tiles = _quadkey_tiles(df["quadkey"])
    out = pd.DataFrame({
        "tech": None, "operator": None, "rsrp_dbm": np.nan,
        "download_mbps": pd.to_numeric(df["avg_d_kbps"], errors="coerce").astype(float)
        / 1000.0,
        "upload_mbps": (pd.to_numeric(df["avg_u_kbps"], errors="coerce").astype(float) / 1000.0
                        if "avg_u_kbps" in df.columns else np.nan),
        "latency_ms": (pd.to_numeric(df["avg_lat_ms"], errors="coerce").astype(float)
                       if "avg_lat_ms" in df.columns else np.nan),
        "timestamp": pd.NaT,
        "weight": pd.to_numeric(df["tests"], errors="coerce").fillna(1).clip(lower=1)
        .astype(float),
        "source": "ookla",
    })
    return _clean(gpd.GeoDataFrame(out, geometry=shapely.centroid(tiles), crs=4326), path)


def _read_point_tests(path: Path, *, columns: Mapping[str, str] | None,
                      assume_crs: str | None) -> gpd.GeoDataFrame:
    gdf = read_vector(path, what="measurements", assume_crs=assume_crs).to_crs(4326)
    return _point_tests(gdf, path, columns=columns)


def _point_tests(gdf: gpd.GeoDataFrame, path: Path, *, columns: Mapping[str, str] | None
                 ) -> gpd.GeoDataFrame:
    """Point tests (EPSG:4326, source column names) in the contract's schema, cleaned."""
    out = _test_values(gdf, path, columns=columns)
    pts = gdf.geometry
    if not (pts.geom_type == "Point").all():
        pts = pts.representative_point()
    return _clean(gpd.GeoDataFrame(out, geometry=pts.to_numpy(), crs=4326), path)


def _test_values(df: pd.DataFrame, path: Path, *, columns: Mapping[str, str] | None,
                 columnar: bool = False) -> pd.DataFrame:
    """The contract's columns of point tests (source column names), not yet cleaned.

    Labels (technology, no service) are read once per distinct value, not per row: ten
    million tests hold a handful. ``columnar`` (for compaction) leaves timestamps out
    (compaction drops them, and parsing ten million ISO dates is the slowest part of a
    read) and operators in the file's text type (no Python object per row).
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
    else:
        out["tech"] = None
    if "operator" not in df.columns:
        out["operator"] = None
    else:
        out["operator"] = df["operator"] if columnar else df["operator"].astype(object)
    for col in MEASUREMENT_LIMITS:
        out[col] = (pd.to_numeric(df[col], errors="coerce").astype(float)
                    if col in df.columns else np.nan)
    if not columnar:
        out["timestamp"] = (
            pd.to_datetime(df["timestamp"], errors="coerce", utc=True, format="ISO8601")
            if "timestamp" in df.columns else pd.NaT)
    out["weight"] = 1.0
    out["source"] = "tests"
    return out


def _clean(gdf: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    x, y = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
    return _clean_values(gdf, x, y, path)[0]


def _clean_values(df: pd.DataFrame, x: np.ndarray, y: np.ndarray, path: Path
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``df`` and its positions ``x``/``y`` (EPSG:4326) without unusable rows, cleared.

    Rows without a finite position (or at 0,0) are dropped, impossible values cleared,
    both reported in one :class:`RepairWarning` per call.
    """
    keep = np.isfinite(x) & np.isfinite(y) & ~((x == 0) & (y == 0))
    n_dropped = int((~keep).sum())
    if n_dropped:
        df, x, y = df[keep].copy(), x[keep], y[keep]
    else:
        df = df.copy()
    cleared = {}
    for col, (lo, hi) in MEASUREMENT_LIMITS.items():
        v = df[col].to_numpy(dtype=float)
        bad = ~np.isnan(v) & ((v < lo) | (v > hi) | ~np.isfinite(v))
        if bad.any():
            cleared[col] = int(bad.sum())
            df[col] = np.where(bad, np.nan, v)
    if n_dropped or cleared:
        what = ", ".join(f"{n} {c}" for c, n in cleared.items()) or "none"
        warn_repair(
            f"measurements file {path}: {n_dropped} row(s) without a finite position (or at "
            f"0,0) dropped; impossible values cleared: {what} (allowed: RSRP -160..-20 dBm, "
            "speeds 0..10,000 Mbps, latency 0..60,000 ms)")
    if df.empty:
        raise InputError(f"measurements file {path}: no row has a usable position")
    return df.reset_index(drop=True), x, y
