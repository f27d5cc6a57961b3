"""Write a folium map as one self-contained HTML file that works with no network."""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path

import folium
from branca.element import CssLink, Figure, JavascriptLink
from folium.elements import JSCSSMixin

from ..errors import ParameterError
from ._common import (
    _CSS_ASSETS,
    _EXTERNAL_TAG,
    _JS_ASSETS,
    _asset_text,
    _atomic_write,
    _data_uri,
)

logger = logging.getLogger(__name__)


def _offline_html(m: folium.Map) -> str:
    """Render ``m`` with folium's CDN resources replaced by the vendored, inlined files.

    A deep copy is rendered, so ``m`` itself is left as it was (folium's render mutates the
    tree: rendering twice would reorder the page). The copy's resources are taken off its
    elements (:func:`_take_resources`) and its header, the page rendered, the vendored files
    inlined at the top of its ``<head>`` (:func:`_inlined_assets`), and the page checked to
    load nothing from the internet.

    Raises
    ------
    ParameterError
        An element loads a resource that is not vendored, or the page still links one.
    """
    root = copy.deepcopy(m.get_root())
    need_js, need_css = _take_resources(root)
    if isinstance(root, Figure):  # links left in the header by an earlier render
        for key, child in list(root.header._children.items()):
            if isinstance(child, JavascriptLink | CssLink):
                del root.header._children[key]
    page = root.render()
    parts = _inlined_assets(need_js, need_css)
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


def _take_resources(root) -> tuple[list[str], list[str]]:
    """The vendored JavaScript and CSS files the tree's elements load, taken off them.

    Every element of ``root``'s tree that loads resources (:class:`folium.elements.
    JSCSSMixin`) has its ``default_js`` and ``default_css`` emptied; the vendored files
    they stand for are returned in the order first met (duplicates once).

    Raises
    ------
    ParameterError
        An element loads a resource that is not vendored.
    """
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
    return need_js, need_css


def _inlined_assets(need_js: list[str], need_css: list[str]) -> list[str]:
    """``<style>`` and ``<script>`` elements holding the vendored files, Leaflet first.

    Leaflet's images (layer control, default markers) are inlined as data URIs, never
    fetched.
    """
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
    return parts


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
