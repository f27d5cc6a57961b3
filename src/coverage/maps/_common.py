"""Shared helpers of :mod:`coverage.maps`: labels, escaping, geometry to GeoJSON, atomic writes."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import tempfile
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import CRSError, ParameterError
from ..io import utm_crs

logger = logging.getLogger(__name__)

#: Okabe-Ito colours (safe for the common colour-vision deficiencies), by class.
CLASS_COLORS: dict[str, str] = {
    "unavailable": "#D55E00",  # vermillion
    "available_inaccessible": "#F0E442",  # yellow
    "served": "#0072B2",  # blue
    "unknown": "#9E9E9E",  # neutral grey
}
CLASSES = ("unavailable", "available_inaccessible", "served")
TECH_COLORS = {"2G": "#999999", "3G": "#56B4E9", "4G": "#009E73", "5G": "#CC79A7"}
_TECH_ALIASES = {"GSM": "2G", "CDMA": "2G", "UMTS": "3G", "LTE": "4G", "NR": "5G"}
SIMPLIFY_TOLERANCE_M = 20.0
COORD_DECIMALS = 5  # about 1 m
CLUSTER_ABOVE = 500

# UI labels, popup field labels (in popup order) and reason names, per language
_TEXT: dict[str, Any] = json.loads(
    (resources.files("coverage") / "maps_assets" / "labels.json").read_text(encoding="utf-8")
)
_LABELS: dict[str, dict[str, str]] = {"vi": _TEXT["vi"], "en": _TEXT["en"]}
_FIELDS: dict[str, list[str]] = _TEXT["fields"]  # column: [vi, en]
_REASONS: dict[str, list[str]] = _TEXT["reasons"]  # code: [vi, en]
_SHARE_COLS = {"pop_covered_share", "pop_indoor_share"}

# folium resource names -> vendored files in maps_assets (None: not needed, dropped)
_JS_ASSETS: dict[str, str | None] = {
    "leaflet": "leaflet.js",
    "markerclusterjs": "leaflet.markercluster.js",
    "jquery": None,
    "bootstrap": None,
    "awesome_markers": None,
}
_CSS_ASSETS: dict[str, str | None] = {
    "leaflet_css": "leaflet.css",
    "markerclustercss": "MarkerCluster.css",
    "markerclusterdefaultcss": "MarkerCluster.Default.css",
    "bootstrap_css": None,
    "glyphicons_css": None,
    "awesome_markers_font_css": None,
    "awesome_markers_css": None,
    "awesome_rotate_css": None,
}
_MARKERCLUSTER_JS = [
    (
        "markerclusterjs",
        "https://unpkg.com/leaflet.markercluster@1.5.3/dist/leaflet.markercluster.js",
    )
]
_MARKERCLUSTER_CSS = [
    ("markerclustercss", "https://unpkg.com/leaflet.markercluster@1.5.3/dist/MarkerCluster.css"),
    (
        "markerclusterdefaultcss",
        "https://unpkg.com/leaflet.markercluster@1.5.3/dist/MarkerCluster.Default.css",
    ),
]
_EXTERNAL_TAG = re.compile(
    r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE
)


# --------------------------------------------------------------------------- helpers
def _labels(lang: str) -> dict[str, str]:
    if lang not in _LABELS:
        raise ParameterError(f"lang must be 'vi' or 'en', got {lang!r}.")
    return _LABELS[lang]


def _esc(value: Any) -> str:
    """HTML-escape a data value; missing values become the empty string."""
    if _missing(value):
        return ""
    return html.escape(str(value), quote=True)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays
        return False


def fold(text: Any) -> str:
    """Fold a name for accent-insensitive search: NFD, drop combining marks, đ -> d, lower.

    The page's search box folds the query with the same rule in JavaScript.

    Examples
    --------
    >>> fold("Nà Lốc")
    'na loc'
    >>> fold("Đồng Văn")
    'dong van'
    """
    if _missing(text):
        return ""
    s = unicodedata.normalize("NFD", str(text))
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = s.replace("đ", "d").replace("Đ", "D").lower()
    return " ".join(s.split())


def _script_json(obj: Any) -> str:
    """JSON safe to embed inside ``<script>``: no ``</script>``, no HTML-significant chars."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _script_safe(text)


def _script_safe(text: str) -> str:
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _asset(name: str) -> bytes:
    return (resources.files("coverage") / "maps_assets" / name).read_bytes()


def _asset_text(name: str) -> str:
    text = _asset(name).decode("utf-8")
    return re.sub(r"^\s*(//|/\*)# sourceMappingURL=.*$", "", text, flags=re.MULTILINE)


def _data_uri(name: str, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(_asset(name)).decode('ascii')}"


def _to_wgs84(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ParameterError(f"{what} must be a GeoDataFrame, got {type(gdf).__name__}.")
    if gdf.crs is None:
        raise CRSError(
            f"{what} has no CRS, so it cannot be placed on the map. Set one first, "
            "for example gdf.set_crs('EPSG:4326')."
        )
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    return gdf.to_crs("EPSG:4326") if not gdf.crs.equals("EPSG:4326") else gdf


def _simplified(gdf: gpd.GeoDataFrame, *, tolerance_m: float, coverage: bool) -> gpd.GeoSeries:
    """Simplify in a metric CRS (shared edges kept shared when ``coverage``), in EPSG:4326."""
    geoms = gdf.geometry
    if len(geoms) and tolerance_m > 0:
        metric = geoms.crs if geoms.crs.is_projected else utm_crs(geoms)
        projected = geoms.to_crs(metric)
        arr = projected.values
        simplified = None
        if coverage and hasattr(shapely, "coverage_simplify"):
            # shared edges stay shared; its result is undefined on overlapping polygons
            if shapely.coverage_is_valid(arr):
                simplified = shapely.coverage_simplify(arr, tolerance_m)
            else:
                logger.info("polygons overlap or are not edge-matched; simplifying one by one")
        if simplified is None:
            simplified = shapely.simplify(arr, tolerance_m, preserve_topology=True)
        geoms = gpd.GeoSeries(simplified, crs=metric, index=projected.index)
    return geoms.to_crs("EPSG:4326")


def _rounded_geojson(geoms: gpd.GeoSeries) -> list[str]:
    """GeoJSON strings of ``geoms`` with coordinates rounded to ``COORD_DECIMALS``."""
    rounded = shapely.transform(geoms.values, lambda c: np.round(c, COORD_DECIMALS))
    return list(shapely.to_geojson(rounded))


def _simplified_geojson(gdf: gpd.GeoDataFrame, *, tolerance_m: float, coverage: bool) -> list[str]:
    """Simplify in a metric CRS, reproject to EPSG:4326, round, and return GeoJSON strings."""
    return _rounded_geojson(_simplified(gdf, tolerance_m=tolerance_m, coverage=coverage))


def _dissolve(geoms: gpd.GeoSeries, keys: pd.Series) -> gpd.GeoDataFrame:
    """Union ``geoms`` by ``keys`` (missing keys left out): one row per key, in key order.

    Edge-matched polygons (a coverage) are merged with :func:`shapely.coverage_union_all`,
    which is fast and leaves no slivers; others with :func:`shapely.union_all`.
    """
    keys = keys.astype(object).where(keys.notna(), None)
    keep = keys.notna() & keys.astype(str).str.strip().ne("")
    names, parts = [], []
    for key, idx in keys[keep].groupby(keys[keep].astype(str), sort=True).groups.items():
        arr = geoms.loc[idx].values
        if len(arr) > 1 and shapely.coverage_is_valid(arr):
            union = shapely.coverage_union_all(arr)
        else:
            try:
                union = shapely.union_all(arr)
            except shapely.errors.GEOSException:  # invalid parts: repair, snap to ~1 cm
                union = shapely.union_all(shapely.make_valid(arr), grid_size=1e-7)
        names.append(key)
        parts.append(union)
    return gpd.GeoDataFrame({"name": names}, geometry=parts, crs=geoms.crs)


def _feature_collection(geometries: list[str], properties: list[dict[str, Any]]) -> str:
    features = ",".join(
        f'{{"type":"Feature","geometry":{g},"properties":{_script_json(p)}}}'
        for g, p in zip(geometries, properties, strict=True)
    )
    return _script_safe(f'{{"type":"FeatureCollection","features":[{features}]}}')


def _class_of(value: Any) -> str:
    return value if isinstance(value, str) and value in CLASSES else "unknown"


def _tech(value: Any) -> str:
    if _missing(value):
        return ""
    text = str(value).strip()
    return _TECH_ALIASES.get(text.upper(), text.upper() if text.upper() in TECH_COLORS else text)


def _format(col: str, value: Any, lang: str) -> str:
    """Format one popup value and HTML-escape it."""
    if _missing(value):
        return ""
    li = 0 if lang == "vi" else 1
    if col == "class":
        return _esc(_labels(lang)[_class_of(value)])
    if col == "reasons":
        codes = [c.strip() for c in str(value).split(";") if c.strip()]
        return _esc("; ".join(_REASONS[c][li] if c in _REASONS else c for c in codes))
    if isinstance(value, bool | np.bool_):
        return _esc(value)
    if isinstance(value, int | np.integer):
        return _esc(f"{int(value):,}".replace(",", "." if lang == "vi" else ","))
    if isinstance(value, float | np.floating):
        v = float(value)
        if col in _SHARE_COLS:
            return _esc(f"{v:.0%}")
        if col == "population":
            return _format(col, round(v), lang)
        return _esc(f"{v:.2f}" if abs(v) < 1000 else f"{v:,.0f}")
    return _esc(value)



def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # not mkstemp's 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_PLAN_NUMERIC = ("rank", "cost", "pop_gain", "cum_pop_gain", "cum_cost", "lon", "lat")


def _plan_table(plan: pd.DataFrame | None) -> pd.DataFrame | None:
    """The plan with its numeric columns as numbers (a CSV read as text gives strings)."""
    if plan is None:
        return None
    plan = plan.copy()
    for col in _PLAN_NUMERIC:
        if col in plan.columns:
            plan[col] = pd.to_numeric(plan[col], errors="coerce")
    if "villages" in plan.columns:
        plan["villages"] = plan["villages"].astype(object).where(plan["villages"].notna(), "")
    return plan
