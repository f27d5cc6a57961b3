"""Interactive and static maps of classified villages, sites, towers and coverage.

The HTML maps are made for provincial offices on weak or no internet:

- :func:`save_map` writes one self-contained HTML file. Leaflet and Leaflet.markercluster are
  vendored in ``coverage/maps_assets`` and inlined; folium's CDN links (jQuery, Bootstrap,
  Font Awesome, awesome-markers) are dropped, and the output is checked to hold no
  ``http(s)://`` script or stylesheet.
- The default base layer is blank, so no tile is requested; OpenStreetMap is offered as an
  optional base layer for when there is a network.
- Every text that comes from data is HTML-escaped in Python before it reaches the page, and JSON
  embedded in ``<script>`` escapes ``<``, ``>`` and ``&``.

Functions compose like :meth:`geopandas.GeoDataFrame.explore`: each takes an optional map, adds
its layers and returns the map. Nothing else in the package imports this module.

Examples
--------
>>> m = village_map(classified, plan=sites, towers=towers, lang="en")  # doctest: +SKIP
>>> m = add_coverage_overlay(m, rsrp, transform, crs)  # doctest: +SKIP
>>> save_map(m, "maps/province.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import CssLink, Element, Figure, JavascriptLink
from folium.elements import JSCSSMixin
from folium.map import Layer, LayerControl
from folium.template import Template

from .errors import CRSError, ParameterError, SchemaError

__all__ = [
    "CLASS_COLORS",
    "add_coverage_overlay",
    "fold",
    "save_map",
    "static_map_png",
    "village_map",
]

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


def _simplified_geojson(gdf: gpd.GeoDataFrame, *, tolerance_m: float, coverage: bool) -> list[str]:
    """Simplify in a metric CRS, reproject to EPSG:4326, round, and return GeoJSON strings."""
    geoms = gdf.geometry
    if len(geoms) and tolerance_m > 0:
        metric = geoms.crs if geoms.crs.is_projected else geoms.estimate_utm_crs()
        projected = geoms.to_crs(metric)
        arr = projected.values
        simplified = None
        if coverage and hasattr(shapely, "coverage_simplify"):
            # shared edges stay shared; its result is undefined on overlapping polygons
            if shapely.coverage_is_valid(arr):
                simplified = shapely.coverage_simplify(arr, tolerance_m)
            else:
                logger.info("villages overlap or are not edge-matched; simplifying one by one")
        if simplified is None:
            simplified = shapely.simplify(arr, tolerance_m, preserve_topology=True)
        geoms = gpd.GeoSeries(simplified, crs=metric, index=projected.index)
    geoms = geoms.to_crs("EPSG:4326")
    rounded = shapely.transform(geoms.values, lambda c: np.round(c, COORD_DECIMALS))
    return list(shapely.to_geojson(rounded))


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


# --------------------------------------------------------------------------- elements
class _Raw(Element):
    """Verbatim HTML (no Jinja processing of the content)."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def render(self, **kwargs: Any) -> str:
        return self._text


def _add_runtime(element: Element) -> None:
    """Put the covgap JS/CSS runtime once into the page header."""
    figure = element.get_root()
    if not isinstance(figure, Figure):
        raise ParameterError("add the map layer to a folium.Map before rendering it.")
    figure.header.add_child(_Raw(f"<style>{_asset_text('covgap.css')}</style>"), name="covgap_css")
    figure.header.add_child(_Raw(f"<script>{_asset_text('covgap.js')}</script>"), name="covgap_js")


class _CovgapLayer(JSCSSMixin, Layer):
    """A layer built in the page by ``covgap.<kind>(map, data, options)`` from embedded JSON."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = covgap.{{ this.kind }}(
            {{ this._parent.get_name() }}, {{ this.data_js }}, {{ this.opts_js }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        kind: str,
        data_js: str,
        opts: dict[str, Any],
        *,
        name: str,
        show: bool = True,
        cluster: bool = False,
    ):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "CovgapLayer"
        self.kind = kind
        self.data_js = data_js
        self.opts_js = _script_json(opts)
        self.default_js = list(_MARKERCLUSTER_JS) if cluster else []
        self.default_css = list(_MARKERCLUSTER_CSS) if cluster else []

    def render(self, **kwargs: Any) -> None:
        _add_runtime(self)
        super().render(**kwargs)


class _CovgapControl(folium.MacroElement):
    """A static HTML box (legend, colour ramp); the HTML must already be escaped."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        covgap.addControl({{ this._parent.get_name() }}, {{ this.position_js }},
            "covgap-box", {{ this.html_js }});
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, *, position: str = "bottomleft"):
        super().__init__()
        self._name = "CovgapControl"
        self.position_js = _script_json(position)
        self.html_js = _script_json(html_text)

    def render(self, **kwargs: Any) -> None:
        _add_runtime(self)
        super().render(**kwargs)


def _refresh_layer_control(m: folium.Map) -> None:
    """Keep exactly one layer control, added last so it lists every layer."""
    for key, child in list(m._children.items()):
        if isinstance(child, LayerControl):
            del m._children[key]
    LayerControl(position="topright", collapsed=False).add_to(m)


def _new_map(center: tuple[float, float], lab: dict[str, str]) -> folium.Map:
    m = folium.Map(
        location=list(center), zoom_start=10, tiles=None, prefer_canvas=True, control_scale=True
    )
    folium.FeatureGroup(name=html.escape(lab["blank"]), overlay=False, control=True).add_to(m)
    folium.TileLayer(
        "OpenStreetMap", name=html.escape(lab["osm"]), overlay=False, control=True, show=False
    ).add_to(m)
    return m


# --------------------------------------------------------------------------- public API
def village_map(
    classified: gpd.GeoDataFrame,
    *,
    plan: gpd.GeoDataFrame | None = None,
    towers: gpd.GeoDataFrame | None = None,
    measurements: gpd.GeoDataFrame | None = None,
    boundaries: Mapping[str, gpd.GeoDataFrame] | None = None,
    lang: str = "vi",
    m: folium.Map | None = None,
    title: str | None = None,
) -> folium.Map:
    """Draw classified villages, planned sites, towers and measurements on a folium map.

    Villages are filled by class with the Okabe-Ito palette (:data:`CLASS_COLORS`); hovering
    shows name, class and explanation, clicking shows the whole row. The map carries a legend
    with counts, a layer control and an accent-insensitive search box ("Na Loc" finds
    "Nà Lốc"), and fits the villages. Geometries are simplified to about
    ``SIMPLIFY_TOLERANCE_M`` (20 m) in a metric CRS (topology-preserving, with
    :func:`shapely.coverage_simplify` when available) and rounded to 5 decimals of a degree
    (about 1 m), so a province of 5,000 villages stays a few megabytes.

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Output of classification: polygons in any CRS (reprojected to EPSG:4326) with the
        contract's columns (``village_id``, ``name``, ``class``, ``reasons``, ``population``,
        ``pop_covered_share``, ...). Optional columns (``commune``, ``district``, ``province``,
        ``explanation``) and missing values are tolerated; other columns go into the popup.
    plan : geopandas.GeoDataFrame, optional
        Planned sites (points; ``rank``, ``site_id``, ``kind``, ``tech``, ``cost``,
        ``pop_gain``, ``villages``), drawn as numbered markers in their own layer.
    towers : geopandas.GeoDataFrame, optional
        Existing sites (points; ``operator``, ``tech``): one layer per operator, circle markers
        coloured by technology, clustered above 500 points.
    measurements : geopandas.GeoDataFrame, optional
        Point tests (``tech``, optional ``download_mbps``, ``rsrp_dbm``, ``operator``).
    boundaries : mapping of str to geopandas.GeoDataFrame, optional
        Outlines to draw (for example ``{"Xã": communes, "Huyện": districts}``), one layer each.
    lang : {"vi", "en"}, default "vi"
        Language of class names, legend, layer names and popup labels.
    m : folium.Map, optional
        Map to draw on; a new offline-friendly map (blank base layer, OpenStreetMap offered but
        off) is made when omitted.
    title : str, optional
        Title shown on the map and as the page title.

    Returns
    -------
    folium.Map
        The map; write it with :func:`save_map` to get a file that works offline.

    Raises
    ------
    coverage.errors.SchemaError
        If ``classified`` has no ``class`` column.
    coverage.errors.CRSError
        If an input has no CRS.
    coverage.errors.ParameterError
        If ``lang`` is not ``"vi"`` or ``"en"``.
    """
    lab = _labels(lang)
    li = 0 if lang == "vi" else 1
    if isinstance(classified, gpd.GeoDataFrame) and "class" not in classified.columns:
        raise SchemaError(
            "classified has no 'class' column; pass the output of classification "
            f"(columns seen: {', '.join(map(str, classified.columns))})."
        )
    n_rows = len(classified)
    villages = _to_wgs84(classified, "classified")
    n_missing = n_rows - len(villages)
    if n_missing:
        logger.warning("%d of %d villages have no geometry and are not drawn", n_missing, n_rows)
    classes = classified["class"].map(_class_of)

    if m is None:
        if len(villages):
            x0, y0, x1, y1 = villages.total_bounds
            center = ((y0 + y1) / 2, (x0 + x1) / 2)
        else:
            center = (16.0, 106.0)
        m = _new_map(center, lab)
    if title is None:
        title = lab["title"]
    m.get_root().title = html.escape(title)

    # villages ------------------------------------------------------------------------
    fields = [c for c in _FIELDS if c in villages.columns]
    extra = [c for c in villages.columns if c not in _FIELDS and c != villages.geometry.name]
    popup_cols = fields + extra
    labels = [
        html.escape(_FIELDS[c][li]) if c in _FIELDS else html.escape(str(c)) for c in popup_cols
    ]
    names = pd.Series(villages.index.astype(str), index=villages.index, dtype=object)
    for col in ("village_id", "name"):  # the name, else the id, else the row label
        if col in villages.columns:
            names = villages[col].astype(object).where(villages[col].notna(), names)
    geometries = _simplified_geojson(villages, tolerance_m=SIMPLIFY_TOLERANCE_M, coverage=True)
    props = []
    records = villages[popup_cols].to_dict("records") if popup_cols else [{}] * len(villages)
    for name, rec in zip(names.tolist(), records, strict=True):
        props.append(
            {
                "n": _esc(name),
                "k": fold(name),
                "c": _class_of(rec.get("class")),
                "e": _esc(rec.get("explanation")),
                "v": [_format(c, rec[c], lang) for c in popup_cols],
            }
        )
    counts = classes.value_counts()
    legend = [[c, html.escape(lab[c]), int(counts.get(c, 0))] for c in CLASSES]
    if counts.get("unknown", 0):
        legend.append(["unknown", html.escape(lab["unknown"]), int(counts["unknown"])])
    opts = {
        "colors": CLASS_COLORS,
        "outline": "#3a3a3a",
        "classes": {c: html.escape(lab[c]) for c in (*CLASSES, "unknown")},
        "fields": labels,
        "legend": legend,
        "legendTitle": html.escape(lab["legend_title"]),
        "note": html.escape(lab["no_geometry"].format(n=n_missing)) if n_missing else "",
        "title": html.escape(title),
        "search": True,
        "searchPlaceholder": html.escape(lab["search"]),
        "searchNone": html.escape(lab["search_none"]),
        "fit": True,
    }
    _CovgapLayer(
        "villages",
        _feature_collection(geometries, props),
        opts,
        name=html.escape(lab["villages"]),
    ).add_to(m)
    logger.info(
        "village map: %d villages drawn %s", len(villages), {k: int(v) for k, v in counts.items()}
    )

    # boundaries ------------------------------------------------------------------------
    for i, (bname, bgdf) in enumerate((boundaries or {}).items()):
        b = _to_wgs84(bgdf, f"boundaries[{bname!r}]")
        geoms = _simplified_geojson(b, tolerance_m=SIMPLIFY_TOLERANCE_M, coverage=False)
        style = {"color": "#333333" if i == 0 else "#000000", "weight": 1.2 + i, "dash": "4 3"}
        _CovgapLayer(
            "outlines",
            _feature_collection(geoms, [{}] * len(geoms)),
            style,
            name=html.escape(str(bname)),
        ).add_to(m)

    # towers: one layer per operator ----------------------------------------------------
    if towers is not None and len(towers):
        t = _to_wgs84(towers, "towers")
        ops = t["operator"] if "operator" in t.columns else pd.Series("unknown", index=t.index)
        ops = ops.map(lambda v: "unknown" if _missing(v) or str(v) == "" else str(v))
        techs = t["tech"].map(_tech) if "tech" in t.columns else pd.Series("", index=t.index)
        pts = t.geometry.representative_point()
        for op in sorted(ops.unique()):
            sel = ops == op
            data = [
                [
                    round(p.y, COORD_DECIMALS),
                    round(p.x, COORD_DECIMALS),
                    TECH_COLORS.get(tc, "#666666"),
                    f"{_esc(op)}{' · ' + _esc(tc) if tc else ''}",
                ]
                for p, tc in zip(pts[sel], techs[sel], strict=True)
            ]
            cluster = len(data) > CLUSTER_ABOVE
            _CovgapLayer(
                "points",
                _script_json(data),
                {"cluster": cluster, "radius": 5},
                name=html.escape(f"{lab['towers']}: {op}"),
                cluster=cluster,
            ).add_to(m)

    # measurements ------------------------------------------------------------------------
    if measurements is not None and len(measurements):
        ms = _to_wgs84(measurements, "measurements")
        pts = ms.geometry.representative_point()
        data = []
        for p, rec in zip(pts, ms.drop(columns=ms.geometry.name).to_dict("records"), strict=True):
            tc = _tech(rec.get("tech"))
            dl = rec.get("download_mbps")
            if tc.lower() == "none":
                color = "#000000"
            elif _missing(dl):
                color = "#BBBBBB"
            else:
                color = "#D55E00" if dl < 5 else "#E69F00" if dl < 25 else "#009E73"
            tip = [f"{html.escape(lab['tech'])}: {_esc(tc) or '–'}"]
            for col in ("download_mbps", "rsrp_dbm"):
                if not _missing(rec.get(col)):
                    tip.append(f"{html.escape(lab[col])}: {_format(col, float(rec[col]), lang)}")
            if not _missing(rec.get("operator")):
                tip.append(f"{html.escape(lab['operator'])}: {_esc(rec['operator'])}")
            data.append(
                [round(p.y, COORD_DECIMALS), round(p.x, COORD_DECIMALS), color, "<br>".join(tip)]
            )
        cluster = len(data) > CLUSTER_ABOVE
        _CovgapLayer(
            "points",
            _script_json(data),
            {"cluster": cluster, "radius": 3},
            name=html.escape(lab["measurements"]),
            cluster=cluster,
        ).add_to(m)

    # plan: numbered sites ------------------------------------------------------------------
    if plan is not None and len(plan):
        p = _to_wgs84(plan, "plan")
        if "rank" in p.columns:
            p = p.sort_values("rank", na_position="last")
        pts = p.geometry.representative_point()
        data = []
        for i, (pt, rec) in enumerate(
            zip(pts, p.drop(columns=p.geometry.name).to_dict("records"), strict=True), start=1
        ):
            rank = rec.get("rank", i)
            rank = i if _missing(rank) else rank
            tip = [f"<b>#{_format('rank', rank, lang)} {_esc(rec.get('site_id'))}</b>"]
            for col in ("kind", "tech", "cost", "pop_gain"):
                val = rec.get(col)
                if col == "kind" and val in ("new_site", "upgrade"):
                    val = lab[val]
                if not _missing(val):
                    tip.append(f"{html.escape(lab[col])}: {_format(col, val, lang)}")
            if not _missing(rec.get("villages")) and rec.get("villages"):
                tip.append(f"{html.escape(lab['villages'])}: {_esc(rec['villages'])}")
            data.append(
                [
                    round(pt.y, COORD_DECIMALS),
                    round(pt.x, COORD_DECIMALS),
                    _format("rank", rank, lang),
                    "<br>".join(tip),
                ]
            )
        _CovgapLayer("plan", _script_json(data), {}, name=html.escape(lab["plan"])).add_to(m)

    _refresh_layer_control(m)
    return m


def add_coverage_overlay(
    m: folium.Map,
    raster: np.ndarray,
    transform: Any,
    crs: Any,
    *,
    name: str | None = None,
    vmin_dbm: float = -120.0,
    vmax_dbm: float = -70.0,
    opacity: float = 0.6,
    cmap: str = "viridis",
    lang: str = "vi",
    max_size_px: int = 2048,
) -> folium.Map:
    """Draw a received-power raster as an embedded image overlay with a colour ramp.

    The raster is warped to Web Mercator (EPSG:3857), the plane Leaflet draws in, so the image
    stretches correctly between its EPSG:4326 corner coordinates; it is coloured, written as
    an RGBA PNG and embedded as a base64 ``data:`` URI (no external file). It is drawn under
    the village polygons, which stay readable; switch the villages layer off to see it whole.

    Parameters
    ----------
    m : folium.Map
        Map to draw on.
    raster : numpy.ndarray
        2-D received power in dBm; NaN means no signal and is transparent.
    transform : affine.Affine
        Raster transform (rasterio convention), in units of ``crs``.
    crs : rasterio.crs.CRS or str or int
        CRS of the raster, any form rasterio accepts.
    name : str, optional
        Layer name; a translated default when omitted.
    vmin_dbm, vmax_dbm : float, default -120, -70
        Power in dBm mapped to the two ends of the colour ramp (values beyond are clipped).
    opacity : float, default 0.6
        Image opacity, 0..1.
    cmap : str, default "viridis"
        Matplotlib colormap name.
    lang : {"vi", "en"}, default "vi"
        Language of the default name.
    max_size_px : int, default 2048
        Largest side of the embedded image in pixels; larger rasters are resampled.

    Returns
    -------
    folium.Map
        ``m``, with the overlay and its legend added.
    """
    import matplotlib as mpl
    import rasterio.warp
    from affine import Affine
    from PIL import Image
    from rasterio.crs import CRS
    from rasterio.transform import array_bounds

    lab = _labels(lang)
    arr = np.asarray(raster, dtype="float64")
    if arr.ndim != 2 or not arr.size:
        raise ParameterError(f"raster must be a non-empty 2-D array, got shape {arr.shape}.")
    if not vmax_dbm > vmin_dbm:
        raise ParameterError(f"vmax_dbm ({vmax_dbm}) must exceed vmin_dbm ({vmin_dbm}).")
    if crs is None:
        raise CRSError("the coverage raster has no CRS; pass the CRS it was computed in.")
    src_crs = CRS.from_user_input(crs)
    height, width = arr.shape
    dst_crs = CRS.from_epsg(3857)
    # the target grid: same pixel count as the source, at most max_size_px a side
    # (rasterio's calculate_default_transform is avoided: it trips affine's `*` deprecation)
    left, bottom, right, top = rasterio.warp.transform_bounds(
        src_crs, dst_crs, *array_bounds(height, width, transform), densify_pts=21
    )
    res = max(
        np.sqrt((right - left) * (top - bottom) / (height * width)),
        (right - left) / max_size_px,
        (top - bottom) / max_size_px,
    )
    dst_w = max(1, round((right - left) / res))
    dst_h = max(1, round((top - bottom) / res))
    dst_transform = Affine(res, 0.0, left, 0.0, -res, top)
    out = np.full((dst_h, dst_w), np.nan)
    rasterio.warp.reproject(
        arr,
        out,
        src_transform=transform,
        src_crs=src_crs,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        resampling=rasterio.warp.Resampling.nearest,
    )
    west, south, east, north = rasterio.warp.transform_bounds(
        dst_crs, "EPSG:4326", *array_bounds(dst_h, dst_w, dst_transform)
    )
    colormap = mpl.colormaps[cmap]
    norm = np.clip((out - vmin_dbm) / (vmax_dbm - vmin_dbm), 0.0, 1.0)
    rgba = colormap(np.nan_to_num(norm), bytes=True)
    rgba[..., 3] = np.where(np.isnan(out), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    folium.map.CustomPane("covgapCoverage", z_index=350, pointer_events=False).add_to(m)
    layer_name = html.escape(name if name is not None else lab["coverage"])
    folium.raster_layers.ImageOverlay(
        image=uri,
        bounds=[[south, west], [north, east]],
        opacity=opacity,
        name=layer_name,
        overlay=True,
        show=True,
        interactive=False,
        pixelated=True,
        pane="covgapCoverage",
    ).add_to(m)
    stops = ",".join(mpl.colors.to_hex(colormap(x)) for x in np.linspace(0, 1, 7))
    ramp = (
        f'<div class="covgap-legend-title">{layer_name}</div>'
        f'<div class="covgap-ramp" style="background:linear-gradient(to right,{stops})"></div>'
        f'<div class="covgap-ramp-labels"><span>{vmin_dbm:g}</span><span>{vmax_dbm:g}</span>'
        "</div>"
    )
    _CovgapControl(ramp, position="bottomleft").add_to(m)
    logger.info("coverage overlay: %dx%d px, %.0f kB", dst_w, dst_h, len(buf.getvalue()) / 1e3)
    _refresh_layer_control(m)
    return m


def _offline_html(m: folium.Map) -> str:
    """Render ``m`` with folium's CDN resources replaced by the vendored, inlined files.

    A deep copy is rendered, so ``m`` itself is left as it was (folium's render mutates the
    tree: rendering twice would reorder the page).
    """
    root = copy.deepcopy(m.get_root())
    elements = []
    stack = [root]
    while stack:
        el = stack.pop()
        elements.append(el)
        stack.extend(el._children.values())
    need_js: list[str] = []
    need_css: list[str] = []
    for el in elements:
        if not isinstance(el, JSCSSMixin):
            continue
        for attr, table, need in (
            ("default_js", _JS_ASSETS, need_js),
            ("default_css", _CSS_ASSETS, need_css),
        ):
            for rname, url in getattr(el, attr):
                if rname not in table:
                    raise ParameterError(
                        f"{type(el).__name__} loads {rname!r} from {url}, which save_map cannot "
                        "embed for offline use; remove that element or save with folium's "
                        "Map.save for an online-only page."
                    )
                if table[rname] and table[rname] not in need:
                    need.append(table[rname])
        el.default_js = []
        el.default_css = []
    if isinstance(root, Figure):  # links left in the header by an earlier render
        for key, child in list(root.header._children.items()):
            if isinstance(child, JavascriptLink | CssLink):
                del root.header._children[key]
    page = root.render()
    # Leaflet always, first; plugins after it
    need_js = ["leaflet.js"] + [f for f in need_js if f != "leaflet.js"]
    need_css = ["leaflet.css"] + [f for f in need_css if f != "leaflet.css"]

    parts = ['<meta charset="utf-8">']
    for css in need_css:
        text = _asset_text(css)
        if css == "leaflet.css":
            for img in ("layers.png", "layers-2x.png", "marker-icon.png"):
                text = text.replace(f"url(images/{img})", f"url({_data_uri(img)})")
        parts.append(f"<style>/* {css} (vendored, see coverage/maps_assets) */\n{text}</style>")
    for js in need_js:
        parts.append(
            f"<script>/* {js} (vendored, see coverage/maps_assets) */\n{_asset_text(js)}</script>"
        )
        if js == "leaflet.js":  # default marker icons as data URIs, never fetched
            parts.append(
                "<script>L.Icon.Default.imagePath='';"
                f"L.Icon.Default.mergeOptions({{iconUrl:'{_data_uri('marker-icon.png')}',"
                f"iconRetinaUrl:'{_data_uri('marker-icon-2x.png')}',"
                f"shadowUrl:'{_data_uri('marker-shadow.png')}'}});</script>"
            )
    head = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    at = head.end() if head else 0
    page = page[:at] + "\n" + "\n".join(parts) + "\n" + page[at:]
    bad = _EXTERNAL_TAG.search(page)
    if bad:
        start = max(0, bad.start())
        raise ParameterError(
            "the map still loads a script or stylesheet from the internet "
            f"({page[start : start + 160]!r}); save_map refuses to write a page that breaks "
            "offline. Remove the element that adds it."
        )
    return page


def save_map(m: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` as one self-contained HTML file that works with no network.

    Leaflet 1.9.4 and Leaflet.markercluster 1.5.3 (vendored in ``coverage/maps_assets``) and
    the map's own code are inlined; folium's CDN links are removed, and the page is checked to
    hold no ``http(s)://`` ``<script src>`` or ``<link href>``. The file is written to a
    temporary file in the same directory and moved into place, so readers never see half a
    page.

    Parameters
    ----------
    m : folium.Map
        The map, for example from :func:`village_map`.
    path : str or os.PathLike
        Output ``.html`` path; missing parent directories are created; an existing file is
        replaced.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    coverage.errors.ParameterError
        If the map holds an element whose resources cannot be embedded (for example a folium
        plugin with its own CDN scripts).
    """
    path = Path(path)
    page = _offline_html(m)
    _atomic_write(path, page.encode("utf-8"))
    logger.info("map written to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


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


def static_map_png(
    classified: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    plan: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    lang: str = "vi",
    dpi: int = 150,
) -> Path:
    """Draw the villages coloured by class, with a legend, to a PNG (matplotlib, Agg).

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Classified villages in any CRS; drawn in their local UTM zone (metres) so shapes keep
        their proportions.
    path : str or os.PathLike
        Output ``.png`` path, written atomically.
    plan : geopandas.GeoDataFrame, optional
        Planned sites (points with ``rank``), drawn as numbered black dots.
    title : str, optional
        Figure title; a translated default when omitted.
    lang : {"vi", "en"}, default "vi"
        Language of the legend and default title.
    dpi : int, default 150
        Resolution of the PNG.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.patches import Patch

    lab = _labels(lang)
    if "class" not in classified.columns:
        raise SchemaError("classified has no 'class' column; pass the output of classification.")
    counts = classified["class"].map(_class_of).value_counts()
    villages = _to_wgs84(classified, "classified")
    metric = villages.estimate_utm_crs() if len(villages) else "EPSG:3857"
    villages = villages.to_crs(metric)
    cls = villages["class"].map(_class_of)

    fig = MplFigure(figsize=(9, 9), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#f2f1ec")
    for c in (*CLASSES, "unknown"):
        part = villages[cls == c]
        if len(part):
            part.plot(ax=ax, color=CLASS_COLORS[c], edgecolor="#3a3a3a", linewidth=0.3)
    if plan is not None and len(plan):
        p = _to_wgs84(plan, "plan").to_crs(metric)
        pts = p.geometry.representative_point()
        ax.scatter(pts.x, pts.y, s=60, c="#111111", edgecolors="white", zorder=5)
        ranks = p["rank"] if "rank" in p.columns else pd.Series(range(1, len(p) + 1))
        for x, y, r in zip(pts.x, pts.y, ranks, strict=True):
            ax.annotate(
                _format("rank", r, lang) if not _missing(r) else "",
                (x, y),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
                weight="bold",
            )
    handles = [
        Patch(
            facecolor=CLASS_COLORS[c], edgecolor="#3a3a3a", label=f"{lab[c]} ({counts.get(c, 0)})"
        )
        for c in CLASSES
    ]
    if counts.get("unknown", 0):
        handles.append(
            Patch(
                facecolor=CLASS_COLORS["unknown"],
                edgecolor="#3a3a3a",
                label=f"{lab['unknown']} ({counts['unknown']})",
            )
        )
    ax.legend(handles=handles, title=lab["legend_title"], loc="best", fontsize=9)
    ax.set_title(title if title is not None else lab["title"])
    ax.set_aspect("equal")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    path = Path(path)
    _atomic_write(path, buf.getvalue())
    logger.info("static map written to %s", path)
    return path
