"""Interactive and static maps of classified villages, sites, towers and coverage, and reports.

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
its layers and returns the map. Nothing else in the package imports this package.

Modules: :mod:`.villages` (the province map), :mod:`.overlay` (coverage surface),
:mod:`.save` (offline HTML), :mod:`.static` (PNG figures), :mod:`.national` (index page and
one page per province), :mod:`.report` (the printable summary).

Examples
--------
>>> m = village_map(classified, plan=sites, towers=towers, lang="en")  # doctest: +SKIP
>>> m = add_coverage_overlay(m, rsrp, transform, crs)  # doctest: +SKIP
>>> save_map(m, "maps/province.html")  # doctest: +SKIP
>>> national_maps(classified, "maps/index.html", by="province")  # doctest: +SKIP
>>> write_report(classified, "reports/province.html", plan=sites)  # doctest: +SKIP
"""

from __future__ import annotations

from ._common import CLASS_COLORS, CLASSES, TECH_COLORS, fold
from ._figures import class_table, group_figures, targets
from .national import NationalMaps, index_map, national_maps
from .overlay import add_coverage_overlay
from .report import summary_report, write_report
from .save import save_map
from .static import static_map_png
from .villages import village_map

__all__ = [
    "CLASSES",
    "CLASS_COLORS",
    "TECH_COLORS",
    "NationalMaps",
    "add_coverage_overlay",
    "class_table",
    "fold",
    "group_figures",
    "index_map",
    "national_maps",
    "save_map",
    "static_map_png",
    "summary_report",
    "targets",
    "village_map",
    "write_report",
]
