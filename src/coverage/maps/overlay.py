"""The coverage surface (received power in dBm) as an embedded image overlay."""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

import folium
import numpy as np

from ..errors import CRSError, ParameterError
from ._common import (
    _labels,
)
from ._elements import (
    _CovgapControl,
    _refresh_layer_control,
)

logger = logging.getLogger(__name__)


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
        2-D received power in dBm; NaN (no signal) and values below ``vmin_dbm`` (no usable
        signal) are transparent, so the overlay shows where coverage ends.
    transform : affine.Affine
        Raster transform (rasterio convention), in units of ``crs``.
    crs : rasterio.crs.CRS or str or int
        CRS of the raster, any form rasterio accepts.
    name : str, optional
        Layer name; a translated default when omitted.
    vmin_dbm, vmax_dbm : float, default -120, -70
        Power in dBm mapped to the two ends of the colour ramp (values above ``vmax_dbm``
        take its colour; below ``vmin_dbm`` are not drawn).
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
    with np.errstate(invalid="ignore"):
        drawn = ~np.isnan(out) & (out >= vmin_dbm)
    rgba[..., 3] = np.where(drawn, 255, 0).astype(np.uint8)
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
