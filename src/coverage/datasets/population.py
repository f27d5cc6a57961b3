"""WorldPop-style population raster (EPSG:4326, 3 arc-seconds) consistent with the villages.

Each village's residents are spread over the raster cells whose centres fall inside it, in
proportion to a settlement weight: flat valley floors near the village seed and near roads
attract houses; steep forest holds none. The raster therefore sums exactly to the village
populations (up to float32 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from scipy import ndimage

from ._grid import UTM_CRS
from .settlements import Settlements, habitability
from .terrain import Terrain

__all__ = ["ARCSEC3", "NODATA", "Population", "make_population"]

ARCSEC3 = 1.0 / 1200.0
NODATA = -99999.0


@dataclass(frozen=True, slots=True)
class Population:
    """People per cell on the WorldPop grid, with the village and DEM cell of each cell."""

    values: NDArray[np.float32]      # (rows, cols), NODATA outside the province
    transform: Affine                # EPSG:4326
    village: NDArray[np.int32]       # (rows, cols) index into villages, -1 outside
    dem_cell: NDArray[np.intp]       # (rows, cols) flat index of the DEM cell of the centre
    on_dem: NDArray[np.float64]      # people per DEM cell


def make_population(terrain: Terrain, st: Settlements, roads_mask: NDArray[np.bool_],
                    rng: np.random.Generator) -> Population:
    """Spread the village populations over a 3 arc-second grid."""
    grid = terrain.grid
    to_ll = Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)
    to_utm = Transformer.from_crs("EPSG:4326", UTM_CRS, always_xy=True)
    x0, y0, x1, y1 = st.outline.bounds
    lon, lat = to_ll.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
    w = np.floor(min(lon) / ARCSEC3) * ARCSEC3 - ARCSEC3
    n = np.ceil(max(lat) / ARCSEC3) * ARCSEC3 + ARCSEC3
    cols = int(np.ceil((max(lon) + ARCSEC3 - w) / ARCSEC3))
    rows = int(np.ceil((n - min(lat) + ARCSEC3) / ARCSEC3))
    transform = Affine(ARCSEC3, 0.0, w, 0.0, -ARCSEC3, n)
    lons = w + (np.arange(cols) + 0.5) * ARCSEC3
    lats = n - (np.arange(rows) + 0.5) * ARCSEC3
    glon, glat = np.meshgrid(lons, lats)
    gx, gy = to_utm.transform(glon.ravel(), glat.ravel())
    gx, gy = np.asarray(gx), np.asarray(gy)

    v = st.villages
    tree = shapely.STRtree(v.geometry.to_numpy())
    pi, vi = tree.query(shapely.points(gx, gy), predicate="within")
    village = np.full(gx.size, -1, np.int32)
    village[pi] = vi
    dr, dc = grid.index(gx, gy)
    dem_cell = np.ravel_multi_index((dr, dc), grid.shape)

    hab = habitability(terrain).ravel()[dem_cell]
    road_d = ndimage.distance_transform_edt(~roads_mask) * grid.cell_m
    near_road = np.exp(-road_d.ravel()[dem_cell] / 300.0)
    inside = village >= 0
    sx = v["seed_x"].to_numpy()[np.maximum(village, 0)]
    sy = v["seed_y"].to_numpy()[np.maximum(village, 0)]
    core = np.exp(-((gx - sx) ** 2 + (gy - sy) ** 2) / (700.0 ** 2))
    weight = hab * (0.15 + 3.0 * core + 1.0 * near_road) * np.exp(rng.normal(0, 0.6, gx.size))
    weight = np.where(inside, weight, 0.0)
    values = np.zeros(gx.size)
    pop = v["population"].to_numpy(dtype=float)
    for i in range(len(v)):
        idx = np.flatnonzero(village == i)
        if len(idx) == 0:
            continue
        wi = weight[idx]
        wi = np.where(wi >= np.quantile(wi, 0.55), wi, 0.0)   # houses cluster
        if wi.sum() <= 0:
            wi = np.ones_like(wi)
        values[idx] = pop[i] * wi / wi.sum()
    out = np.where(inside, values, NODATA).astype(np.float32)
    on_dem = np.bincount(dem_cell, weights=values, minlength=grid.rows * grid.cols)
    return Population(out.reshape(rows, cols), transform, village.reshape(rows, cols),
                      dem_cell.reshape(rows, cols), on_dem.reshape(grid.shape))
