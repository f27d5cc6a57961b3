"""National runs: an index page of provinces coloured by their figures, one page per province.

A folium page freezes beyond about 10,000 polygons, so a national set of villages (Vietnam has
some 70,000 thôn/bản) is never drawn on one page. The index draws one outline per province
(the union of its villages), coloured by the share of its people in ``unavailable`` villages,
with a popup and a list linking to one village map and one PNG per province, written beside
the index.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np

from ..errors import OutputExistsError
from ._common import (
    _dissolve,
    _esc,
    _labels,
    _rounded_geojson,
    _script_json,
    _simplified,
    _to_wgs84,
    fold,
)
from ._elements import _CovgapControl, _CovgapLayer, _new_map, _refresh_layer_control
from ._figures import group_figures
from .save import save_map
from .static import static_map_png
from .villages import village_map

__all__ = ["NationalMaps", "index_map", "national_maps"]

logger = logging.getLogger(__name__)

#: Bins of the share of people in ``unavailable`` villages, and their colours (ColorBrewer
#: YlOrBr, sequential, safe for the common colour-vision deficiencies).
SHARE_BINS = (0.0, 0.05, 0.15, 0.30, 0.50, 1.0)
SHARE_COLORS = ("#ffffd4", "#fed98e", "#fe9929", "#d95f0e", "#993404")
#: Simplification of province outlines on the index page, metres.
INDEX_TOLERANCE_M = 250.0
#: Towers, sites and tests within this distance of a province's outline go on its page.
MARGIN_M = 5000.0


def _slug(name: str, taken: set[str]) -> str:
    """A file name from a province name: folded to ASCII, dashes, unique among ``taken``."""
    base = re.sub(r"[^a-z0-9]+", "-", fold(name)).strip("-")[:60] or "unnamed"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}-{k}", k + 1
    taken.add(slug)
    return slug


def _bin_color(share: float) -> str:
    if share is None or np.isnan(share):
        return "#cccccc"
    k = int(np.searchsorted(SHARE_BINS[1:-1], share, side="right"))
    return SHARE_COLORS[k]


def _pct(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.0f}%"


def index_map(
    classified: gpd.GeoDataFrame,
    *,
    by: str = "province",
    links: Mapping[str, str] | None = None,
    lang: str = "vi",
    title: str | None = None,
    tolerance_m: float = INDEX_TOLERANCE_M,
) -> folium.Map:
    """The index map: one outline per value of ``by``, coloured by its unavailable share.

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Classified villages (any CRS) with a ``by`` column.
    by : str, default "province"
        Column to group villages by (``"province"``, ``"district"``, ...).
    links : mapping of str to str, optional
        Relative URL of each group's page (for example ``{"Lào Cai": "lao-cai.html"}``).
    lang : {"vi", "en"}, default "vi"
        Language of the labels.
    title : str, optional
        Page title.
    tolerance_m : float, default 250
        Simplification of the outlines, in metres.

    Returns
    -------
    folium.Map
        The map; write it with :func:`coverage.maps.save_map`.
    """
    lab = _labels(lang)
    figures = group_figures(classified, by)
    villages = _to_wgs84(classified, "classified")
    simplified = _simplified(villages, tolerance_m=tolerance_m, coverage=True)
    keys = villages[by].astype(object).where(villages[by].notna(), "").map(
        lambda v: str(v).strip()
    )
    outlines = _dissolve(simplified, keys)
    # the dissolved outlines: simplify once more at the index scale, sharing edges
    outlines = gpd.GeoDataFrame(
        outlines[["name"]],
        geometry=_simplified(outlines, tolerance_m=tolerance_m, coverage=True).values,
        crs="EPSG:4326",
    )
    links = dict(links or {})
    props = []
    rows = []
    for name in outlines["name"]:
        f = figures.loc[name]
        share = float(f["unavailable_share"])
        figs = (
            f"{html.escape(lab['n_villages'])}: {int(f['villages']):,}<br>"
            f"{html.escape(lab['unavailable'])}: {int(f['villages_unavailable']):,} "
            f"({html.escape(lab['people'])}: {_pct(share)})"
        )
        href = links.get(name, "")
        props.append({"n": _esc(name), "f": _bin_color(share), "h": figs,
                      "u": html.escape(href, quote=True)})
        rows.append((share, name, href, int(f["villages_unavailable"]), int(f["villages"])))
    center = (16.0, 106.0)
    if len(outlines):
        x0, y0, x1, y1 = outlines.total_bounds
        center = ((y0 + y1) / 2, (x0 + x1) / 2)
    m = _new_map(center, lab)
    title = title if title is not None else lab["index_title"]
    m.get_root().title = html.escape(title)
    data = (
        '{"type":"FeatureCollection","features":['
        + ",".join(
            f'{{"type":"Feature","geometry":{g},"properties":{_script_json(p)}}}'
            for g, p in zip(_rounded_geojson(outlines.geometry), props, strict=True)
        )
        + "]}"
    )
    _CovgapLayer(
        "regions",
        data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        {"title": html.escape(title), "open": html.escape(lab["open_page"])},
        name=html.escape(lab.get(f"by_{by}", by)),
    ).add_to(m)
    # legend of the bins
    legend = [f'<div class="covgap-legend-title">{html.escape(lab["index_legend"])}</div>']
    for k, color in enumerate(SHARE_COLORS):
        lo, hi = SHARE_BINS[k], SHARE_BINS[k + 1]
        legend.append(
            f'<div class="covgap-legend-row"><i class="covgap-swatch" '
            f'style="background:{color}"></i>{100 * lo:.0f}–{100 * hi:.0f}%</div>'
        )
    _CovgapControl("".join(legend), position="bottomright").add_to(m)
    # the list of groups, worst first: works without clicking on the map
    items = []
    for share, name, href, n_un, n_all in sorted(rows, key=lambda r: (-np.nan_to_num(r[0]), r[1])):
        label = f"{html.escape(name) or '–'} <span class=\"covgap-count\">{_pct(share)} · " \
                f"{n_un:,}/{n_all:,}</span>"
        if href:
            label = f'<a href="{html.escape(href, quote=True)}">{label}</a>'
        items.append(f'<div class="covgap-index-row">{label}</div>')
    _CovgapControl(
        f'<div class="covgap-legend-title">{html.escape(lab["index_list"])}</div>'
        f'<div class="covgap-index-list">{"".join(items)}</div>',
        position="topright",
    ).add_to(m)
    _refresh_layer_control(m)
    return m


@dataclass(frozen=True)
class NationalMaps:
    """Files written by :func:`national_maps`.

    Attributes
    ----------
    index : pathlib.Path
        The index page.
    pages : dict of str to pathlib.Path
        Each group's village map, by group name.
    pngs : dict of str to pathlib.Path
        Each group's static PNG map, by group name.
    """

    index: Path
    pages: dict[str, Path] = field(default_factory=dict)
    pngs: dict[str, Path] = field(default_factory=dict)


def _near(points: gpd.GeoDataFrame | None, area_metric, metric_crs) -> gpd.GeoDataFrame | None:
    if points is None or not len(points):
        return None
    g = points.geometry.to_crs(metric_crs)
    keep = g.intersects(area_metric.buffer(MARGIN_M)).to_numpy()
    return points[keep] if keep.any() else None


def _crop(coverage: tuple[Any, Any, Any] | None, bounds_4326: tuple[float, ...], margin_deg=0.05):
    """The part of a (raster, transform, crs) coverage over ``bounds_4326``, or None."""
    if coverage is None:
        return None
    import rasterio.warp
    from rasterio.windows import Window, from_bounds

    raster, transform, crs = coverage
    x0, y0, x1, y1 = bounds_4326
    b = rasterio.warp.transform_bounds(
        "EPSG:4326", crs, x0 - margin_deg, y0 - margin_deg, x1 + margin_deg, y1 + margin_deg
    )
    win = from_bounds(*b, transform=transform).round_offsets().round_lengths()
    win = win.intersection(Window(0, 0, raster.shape[1], raster.shape[0]))
    if win.width < 1 or win.height < 1:
        return None
    r0, c0 = int(win.row_off), int(win.col_off)
    part = raster[r0 : r0 + int(win.height), c0 : c0 + int(win.width)]
    return part, rasterio.windows.transform(win, transform), crs


def national_maps(
    classified: gpd.GeoDataFrame,
    index_path: str | os.PathLike[str],
    *,
    by: str = "province",
    plan: gpd.GeoDataFrame | None = None,
    towers: gpd.GeoDataFrame | None = None,
    measurements: gpd.GeoDataFrame | None = None,
    coverage: tuple[Any, Any, Any] | None = None,
    lang: str = "vi",
    title: str | None = None,
    png: bool = True,
    overwrite: bool = False,
) -> NationalMaps:
    """Write the index page and, beside it, one village map (and PNG) per group.

    Each group's page is :func:`coverage.maps.village_map` on its villages, with the planned
    sites, towers and measurements within 5 km of it and the coverage raster cropped to it;
    pages are named after the group (folded to ASCII: ``Lào Cai`` -> ``lao-cai.html``).
    Villages with no ``by`` value form a group named ``""`` (file ``unnamed.html``), so every
    village is on exactly one page.

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Classified villages with a ``by`` column.
    index_path : str or os.PathLike
        The index ``.html``; group pages go into the same folder.
    by : str, default "province"
        Column to group by.
    plan, towers, measurements : geopandas.GeoDataFrame, optional
        As for :func:`coverage.maps.village_map`.
    coverage : tuple of (numpy.ndarray, affine.Affine, CRS), optional
        Received power in dBm, drawn on each page (cropped).
    lang : {"vi", "en"}, default "vi"
        Language of the pages.
    title : str, optional
        Title of the index page.
    png : bool, default True
        Also write ``<group>.png`` (:func:`coverage.maps.static_map_png`).
    overwrite : bool, default False
        Replace existing files; otherwise stop before writing anything if one exists.

    Returns
    -------
    NationalMaps
        The files written.
    """
    lab = _labels(lang)
    index_path = Path(index_path)
    folder = index_path.parent
    figures = group_figures(classified, by)
    keys = classified[by].astype(object).where(classified[by].notna(), "").map(
        lambda v: str(v).strip()
    )
    taken = {index_path.stem}
    slugs = {name: _slug(name, taken) for name in figures.index}
    targets = [index_path] + [folder / f"{s}.html" for s in slugs.values()]
    if png:
        targets += [folder / f"{s}.png" for s in slugs.values()]
    if not overwrite:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise OutputExistsError(
                f"{len(existing)} output(s) exist ({', '.join(existing[:3])}"
                f"{'...' if len(existing) > 3 else ''}); pass --overwrite to replace them."
            )
    out = NationalMaps(index=index_path)
    villages_all = _to_wgs84(classified, "classified")
    metric = villages_all.estimate_utm_crs() if len(villages_all) else "EPSG:3857"
    for name, slug in slugs.items():
        part = classified[(keys == name).to_numpy()]
        part_wgs = villages_all[keys.loc[villages_all.index] == name]
        area = part_wgs.geometry.to_crs(metric).union_all() if len(part_wgs) else None
        near = {}
        for what, gdf in (("plan", plan), ("towers", towers), ("measurements", measurements)):
            near[what] = _near(_to_wgs84(gdf, what), area, metric) if (
                gdf is not None and area is not None) else None
        cov = _crop(coverage, tuple(part_wgs.total_bounds)) if len(part_wgs) else None
        page_title = name or lab["unknown"]
        m = village_map(part, lang=lang, title=page_title, coverage=cov, **near)
        out.pages[name] = save_map(m, folder / f"{slug}.html")
        if png:
            out.pngs[name] = static_map_png(part, folder / f"{slug}.png", plan=near["plan"],
                                            title=page_title, lang=lang)
        logger.info("%s: %d villages -> %s", page_title, len(part), out.pages[name])
    links = {name: f"{slug}.html" for name, slug in slugs.items()}
    save_map(index_map(classified, by=by, links=links, lang=lang, title=title), index_path)
    return out
