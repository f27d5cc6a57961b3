"""The folium elements the maps are built from: covgap layers and controls, the base map."""

from __future__ import annotations

import html
from typing import Any

import folium
from branca.element import Element, Figure
from folium.elements import JSCSSMixin
from folium.map import Layer, LayerControl
from folium.template import Template

from ..errors import ParameterError
from ._common import (
    _MARKERCLUSTER_CSS,
    _MARKERCLUSTER_JS,
    _asset_text,
    _script_json,
)


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
