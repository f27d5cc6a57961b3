"""The naive baseline: a fixed coverage radius per technology, no terrain, no measurements.

This is the shortcut the tool exists to replace (and the one many coverage-gap studies still
take): every active site covers a disc of a fixed radius, whatever the terrain, and a village
is judged from the share of its people inside some broadband disc. Inside a disc the signal
counts as outdoor and indoor coverage; outside it there is none. The rest of the rules
(access table, population weighting) are the same as the full classification, so the two
can be compared on the demo truth and timed on national-scale inputs.

Default radii, kilometres (typical rural planning radii of macro cells: 2G at 900 MHz
reaches furthest, 4G at 1800 MHz less, 5G at 3.5 GHz least): 2G 7, 3G 5, 4G 4, 5G 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.features import rasterize

from ..io import Raster
from ..model import CoverageSurfaces, Grid
from ..params import Profile, get_profile

__all__ = ["NAIVE_RADIUS_KM", "classify_naive", "naive_surfaces"]

log = logging.getLogger(__name__)

NAIVE_RADIUS_KM: Mapping[str, float] = {"2G": 7.0, "3G": 5.0, "4G": 4.0, "5G": 1.0}
#: Level given to every cell inside a disc (dBm): above every outdoor and indoor threshold.
INSIDE_DBM = -70.0


def naive_surfaces(towers: gpd.GeoDataFrame, grid: Grid, *,
                   radius_km: Mapping[str, float] = NAIVE_RADIUS_KM) -> CoverageSurfaces:
    """Discs of a fixed radius around each active site, per operator and technology.

    Parameters
    ----------
    towers : GeoDataFrame
        Sites with ``tech`` (and optionally ``operator``, ``status``), any CRS.
    grid : Grid
        The metric grid.
    radius_km : mapping
        Radius per technology, km.

    Returns
    -------
    CoverageSurfaces
        ``INSIDE_DBM`` inside the discs, NaN outside; no DEM.
    """
    surfaces = CoverageSurfaces(grid)
    if towers is None or towers.empty:
        return surfaces
    sel = towers["tech"].isin(list(radius_km))
    if "status" in towers.columns:
        sel &= towers["status"].fillna("active").eq("active")
    t = towers[sel]
    pts = t.geometry.to_crs(grid.crs).to_numpy()
    ops = (t["operator"].fillna("unknown").astype(str).to_numpy() if "operator" in t.columns
           else np.full(len(t), "unknown"))
    techs = t["tech"].astype(str).to_numpy()
    for key in sorted(set(zip(ops, techs, strict=True))):
        mine = (ops == key[0]) & (techs == key[1])
        discs = shapely.buffer(pts[mine], radius_km[key[1]] * 1000.0, quad_segs=16)
        inside = rasterize(((g, 1) for g in discs), out_shape=grid.shape,
                           transform=grid.transform, fill=0, dtype="uint8")
        surfaces.layers[key] = np.where(inside > 0, INSIDE_DBM, np.nan).astype("float32")
    log.info("naive discs for %d sites (%s)", len(t),
             ", ".join(f"{k} {v:g} km" for k, v in radius_km.items()))
    return surfaces


def classify_naive(villages: gpd.GeoDataFrame, towers: gpd.GeoDataFrame, grid: Grid, *,
                   population: Raster | None = None, access: pd.DataFrame | None = None,
                   profile: Profile | str = "vn-2025",
                   radius_km: Mapping[str, float] = NAIVE_RADIUS_KM) -> gpd.GeoDataFrame:
    """Classify villages by the naive discs (no terrain, no measurements, no calibration).

    Same output columns as :func:`coverage.classify.classify_villages`.
    """
    from . import classify_villages

    profile = get_profile(profile) if isinstance(profile, str) else profile
    profile = profile.replace(location_sigma_db=0.0, max_offset_db=0.0)
    return classify_villages(villages, naive_surfaces(towers, grid, radius_km=radius_km),
                             population=population, access=access, profile=profile,
                             towers=towers)
