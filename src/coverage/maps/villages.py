"""The interactive village map: classes, boundaries, towers, measurements, planned sites."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
import pandas as pd

from ..errors import SchemaError
from ._common import (
    _FIELDS,
    CLASS_COLORS,
    CLASSES,
    CLUSTER_ABOVE,
    COORD_DECIMALS,
    SIMPLIFY_TOLERANCE_M,
    TECH_COLORS,
    _class_of,
    _dissolve,
    _esc,
    _feature_collection,
    _format,
    _labels,
    _missing,
    _plan_table,
    _rounded_geojson,
    _script_json,
    _simplified,
    _simplified_geojson,
    _tech,
    _to_wgs84,
    fold,
)
from ._elements import (
    _CovgapLayer,
    _new_map,
    _refresh_layer_control,
)
from .overlay import add_coverage_overlay

logger = logging.getLogger(__name__)

# boundary layer names (as given, lower-cased) -> level; styles by level
_BOUNDARY_LEVELS = {
    "commune": "communes", "communes": "communes", "xã": "communes",
    "district": "districts", "districts": "districts", "huyện": "districts",
}
_BOUNDARY_STYLE = {
    "communes": {"color": "#555555", "weight": 1.0, "dash": "4 3"},
    "districts": {"color": "#111111", "weight": 2.2, "dash": ""},
}


# --------------------------------------------------------------------------- public API
def village_map(
    classified: gpd.GeoDataFrame,
    *,
    plan: gpd.GeoDataFrame | None = None,
    towers: gpd.GeoDataFrame | None = None,
    measurements: gpd.GeoDataFrame | None = None,
    boundaries: Mapping[str, gpd.GeoDataFrame] | None = None,
    coverage: tuple[Any, Any, Any] | None = None,
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
        Outlines to draw, one switchable layer each, with their ``name`` column as data. Keys
        ``"commune"`` and ``"district"`` get translated layer names and their own style (thin
        dashed grey, thick black); other keys are used as layer names. When omitted, commune
        and district outlines are derived from the villages' ``commune`` and ``district``
        columns (the union of their villages); pass ``{}`` for none.
    coverage : tuple of (numpy.ndarray, affine.Affine, CRS), optional
        A received-power raster in dBm with its transform and CRS, drawn as an image overlay
        with :func:`add_coverage_overlay` (defaults there).
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

    title = lab["title"] if title is None else title
    m = _titled_map(m, villages, lab, title)
    simplified = _add_villages(m, villages, classes.value_counts(), lang=lang, title=title,
                               n_missing=n_missing)
    if boundaries is None:  # derived from the villages' own columns
        boundaries = {
            level: _dissolve(simplified, villages[level])
            for level in ("commune", "district")
            if level in villages.columns and villages[level].notna().any()
        }
    _add_boundaries(m, boundaries, lang)
    if towers is not None and len(towers):
        _add_towers(m, towers, lang)
    if measurements is not None and len(measurements):
        _add_measurements(m, measurements, lang)
    if plan is not None and len(plan):
        _add_plan(m, plan, lang)
    if coverage is not None:
        raster, transform, crs = coverage
        add_coverage_overlay(m, raster, transform, crs, lang=lang)
    _refresh_layer_control(m)
    return m


def _titled_map(m: folium.Map | None, villages: gpd.GeoDataFrame, lab: dict[str, str],
                title: str) -> folium.Map:
    """``m`` (a new map centred on the villages when None) with the page titled ``title``."""
    if m is None:
        if len(villages):
            x0, y0, x1, y1 = villages.total_bounds
            center = ((y0 + y1) / 2, (x0 + x1) / 2)
        else:
            center = (16.0, 106.0)
        m = _new_map(center, lab)
    m.get_root().title = html.escape(title)
    return m


def _add_villages(m: folium.Map, villages: gpd.GeoDataFrame, counts: pd.Series, *, lang: str,
                  title: str, n_missing: int) -> gpd.GeoDataFrame:
    """Add the villages' layer: polygons filled by class, legend, popups and search.

    Parameters
    ----------
    m : folium.Map
        The map to draw on.
    villages : geopandas.GeoDataFrame
        The villages with a geometry, in EPSG:4326.
    counts : Series
        Villages per class (every input row, those without geometry too), for the legend.
    lang : {"vi", "en"}
        Language of the labels.
    title : str
        The map's title.
    n_missing : int
        Villages without geometry, for the legend's note.

    Returns
    -------
    geopandas.GeoDataFrame
        The villages simplified (about ``SIMPLIFY_TOLERANCE_M``), for outlines derived from
        them.
    """
    lab = _labels(lang)
    li = 0 if lang == "vi" else 1
    fields = [c for c in _FIELDS if c in villages.columns]
    extra = [c for c in villages.columns if c not in _FIELDS and c != villages.geometry.name]
    popup_cols = fields + extra
    labels = [
        html.escape(_FIELDS[c][li]) if c in _FIELDS else html.escape(str(c)) for c in popup_cols
    ]
    simplified = _simplified(villages, tolerance_m=SIMPLIFY_TOLERANCE_M, coverage=True)
    geometries = _rounded_geojson(simplified)
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
        _feature_collection(geometries, _village_properties(villages, popup_cols, lang)),
        opts,
        name=html.escape(lab["villages"]),
    ).add_to(m)
    logger.info(
        "village map: %d villages drawn %s", len(villages), {k: int(v) for k, v in counts.items()}
    )
    return simplified


def _village_properties(villages: gpd.GeoDataFrame, popup_cols: list[str], lang: str
                        ) -> list[dict]:
    """Each village's feature properties: name, search key, class, explanation, popup.

    The name is the village's ``name``, else its ``village_id``, else its row label.
    """
    names = pd.Series(villages.index.astype(str), index=villages.index, dtype=object)
    for col in ("village_id", "name"):  # the name, else the id, else the row label
        if col in villages.columns:
            names = villages[col].astype(object).where(villages[col].notna(), names)
    records = villages[popup_cols].to_dict("records") if popup_cols else [{}] * len(villages)
    return [
        {
            "n": _esc(name),
            "k": fold(name),
            "c": _class_of(rec.get("class")),
            "e": _esc(rec.get("explanation")),
            "v": [_format(c, rec[c], lang) for c in popup_cols],
        }
        for name, rec in zip(names.tolist(), records, strict=True)
    ]


def _add_boundaries(m: folium.Map, boundaries: Mapping[str, gpd.GeoDataFrame],
                    lang: str) -> None:
    """Add one outline layer per boundary set (communes under districts), styled by level."""
    lab = _labels(lang)
    for i, (bname, bgdf) in enumerate(boundaries.items()):
        b = _to_wgs84(bgdf, f"boundaries[{bname!r}]")
        geoms = _simplified_geojson(b, tolerance_m=SIMPLIFY_TOLERANCE_M, coverage=True)
        level = _BOUNDARY_LEVELS.get(str(bname).lower())
        style = _BOUNDARY_STYLE.get(level, {"color": "#222222", "weight": 1.5 + i, "dash": ""})
        bnames = b["name"] if "name" in b.columns else pd.Series("", index=b.index)
        _CovgapLayer(
            "outlines",
            _feature_collection(geoms, [{"n": _esc(v)} for v in bnames]),
            style,
            name=html.escape(lab[level] if level else str(bname)),
        ).add_to(m)


def _add_towers(m: folium.Map, towers: gpd.GeoDataFrame, lang: str) -> None:
    """Add one layer of existing sites per operator, coloured by technology."""
    lab = _labels(lang)
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


def _add_measurements(m: folium.Map, measurements: gpd.GeoDataFrame, lang: str) -> None:
    """Add the point tests' layer, each coloured by its download speed (:func:`_test_point`)."""
    lab = _labels(lang)
    ms = _to_wgs84(measurements, "measurements")
    pts = ms.geometry.representative_point()
    data = [
        _test_point(p, rec, lang)
        for p, rec in zip(pts, ms.drop(columns=ms.geometry.name).to_dict("records"), strict=True)
    ]
    cluster = len(data) > CLUSTER_ABOVE
    _CovgapLayer(
        "points",
        _script_json(data),
        {"cluster": cluster, "radius": 3},
        name=html.escape(lab["measurements"]),
        cluster=cluster,
    ).add_to(m)


def _test_point(p, rec: dict, lang: str) -> list:
    """A test's marker: latitude, longitude, colour and tooltip.

    Black without service; grey without a download speed; otherwise vermilion under
    5 Mbps, orange under 25 Mbps and green from 25 Mbps (Okabe-Ito).
    """
    lab = _labels(lang)
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
    return [round(p.y, COORD_DECIMALS), round(p.x, COORD_DECIMALS), color, "<br>".join(tip)]


def _add_plan(m: folium.Map, plan: gpd.GeoDataFrame, lang: str) -> None:
    """Add the planned sites' layer: markers numbered by rank (:func:`_site_point`)."""
    lab = _labels(lang)
    p = _plan_table(_to_wgs84(plan, "plan"))
    if "rank" in p.columns:
        p = p.sort_values("rank", na_position="last")
    pts = p.geometry.representative_point()
    data = [
        _site_point(pt, rec, i, lang)
        for i, (pt, rec) in enumerate(
            zip(pts, p.drop(columns=p.geometry.name).to_dict("records"), strict=True), start=1
        )
    ]
    _CovgapLayer("plan", _script_json(data), {}, name=html.escape(lab["plan"])).add_to(m)


def _site_point(pt, rec: dict, i: int, lang: str) -> list:
    """A planned site's marker: latitude, longitude, rank label and tooltip.

    ``i`` (1 = first row) stands for a missing ``rank``.
    """
    lab = _labels(lang)
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
    return [
        round(pt.y, COORD_DECIMALS),
        round(pt.x, COORD_DECIMALS),
        _format("rank", rank, lang),
        "<br>".join(tip),
    ]
