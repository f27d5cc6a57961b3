"""Terrain from a real elevation model: a window of an SRTM tile under the province's grid.

The synthetic worlds draw their relief (:func:`coverage.datasets.terrain.make_terrain`); this
module builds the same :class:`~coverage.datasets.terrain.Terrain` from a real DEM instead, so
that settlements, roads, masts, people and the true field are drawn over real relief. The
hidden 50 m terrain is the DEM, its voids filled (GDAL's inverse-distance fill), warped
bilinearly onto the province's fine grid (EPSG:32648), plus the same sub-100 m roughness the
synthetic terrain adds away from the valley floors; the published 100 m DEM is its 2 x 2 block
mean. The rivers are traced from a D8 flow accumulation of the published DEM (depressions
drained through their spill points by a priority flood, Barnes et al. 2014): every cell
draining more than :data:`CHANNEL_KM2` is a channel, and the channels are split into reaches
from the mouth upstream, each following its larger branch (Hack's main stream), the other
branches starting reaches of their own at the junction.

Examples
--------
>>> from coverage.datasets.generate import generate_demo      # doctest: +SKIP
>>> generate_demo("/tmp/tamdao", scale=0.55, dem="N21E105.hgt",
...               centre=(105.60, 21.50))                     # doctest: +SKIP
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.fill import fillnodata
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import from_bounds
from scipy import ndimage

from ..errors import ParameterError
from ._grid import UTM_CRS, Grid, fractal_field
from .terrain import _RIVER_NAMES, River, Terrain, published_terrain

__all__ = ["CHANNEL_KM2", "dem_bounds", "terrain_from_dem"]

#: Drainage area (km²) above which a cell is a channel (a river reach of order 3 or more).
CHANNEL_KM2 = 2.0
#: Drainage area (km²) at a reach's mouth for order 1 (main river) and order 2 (tributary).
ORDER_KM2 = (100.0, 20.0)
#: Reaches shorter than this (cells of the 100 m grid) are not rivers.
MIN_REACH_CELLS = 5
#: Valley half-width by river order, metres (where the roughness fades to the floor).
_WIDTHS = {1: 1500.0, 2: 700.0, 3: 380.0}


def dem_bounds(path: str | Path) -> tuple[float, float, float, float]:
    """The DEM's extent in longitude and latitude ``(west, south, east, north)``, degrees.

    Raises :class:`~coverage.errors.ParameterError` naming the file when it cannot be read.
    """
    with _open(path) as src:
        return tuple(transform_bounds(src.crs, "EPSG:4326", *src.bounds))


def _open(path: str | Path):
    try:
        src = rasterio.open(path)
    except (rasterio.RasterioIOError, OSError) as exc:
        raise ParameterError(f"DEM {path} cannot be read ({exc}); give a GDAL-readable "
                             "elevation raster such as an SRTM .hgt tile") from None
    if src.crs is None:
        src.close()
        raise ParameterError(f"DEM {path} has no CRS: its cells cannot be placed")
    return src


def _fine_dem(path: str | Path, fine: Grid) -> NDArray[np.float64]:
    """The DEM, voids filled, warped bilinearly onto ``fine`` (EPSG:32648), metres."""
    xmin, ymin, xmax, ymax = fine.bounds
    with _open(path) as src:
        need = transform_bounds(UTM_CRS, src.crs, xmin, ymin, xmax, ymax, densify_pts=51)
        have = src.bounds
        # one source cell of margin for the bilinear kernel
        rx, ry = abs(src.transform.a), abs(src.transform.e)
        if (need[0] - rx < have.left or need[2] + rx > have.right
                or need[1] - ry < have.bottom or need[3] + ry > have.top):
            raise ParameterError(
                f"the province window ({need[0]:.4f}..{need[2]:.4f} E, "
                f"{need[1]:.4f}..{need[3]:.4f} N) reaches beyond the DEM {path} "
                f"({have.left:.4f}..{have.right:.4f} E, {have.bottom:.4f}..{have.top:.4f} N): "
                "move the centre inwards or lower the scale")
        pad = 12 * max(rx, ry)   # room for the void fill to find valid cells
        win = from_bounds(max(need[0] - pad, have.left), max(need[1] - pad, have.bottom),
                          min(need[2] + pad, have.right), min(need[3] + pad, have.top),
                          src.transform).round_offsets().round_lengths()
        data = src.read(1, window=win, masked=True)
        src_transform, src_crs = src.window_transform(win), src.crs
    valid = ~np.ma.getmaskarray(data)
    if valid.mean() < 0.5:
        raise ParameterError(f"DEM {path} holds data on only {valid.mean():.0%} of the "
                             "province window: choose another centre")
    z = fillnodata(data.filled(0).astype(np.float32), mask=valid.astype(np.uint8),
                   max_search_distance=100.0)
    out = np.full(fine.shape, np.nan, np.float64)
    reproject(z.astype(np.float64), out, src_transform=src_transform, src_crs=src_crs,
              dst_transform=fine.transform, dst_crs=UTM_CRS, resampling=Resampling.bilinear,
              src_nodata=None, dst_nodata=np.nan)
    if not np.isfinite(out).all():
        raise ParameterError(f"DEM {path} leaves {int((~np.isfinite(out)).sum())} cells of the "
                             "province window without elevation")
    return out


_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def drainage(z: NDArray[np.floating]) -> tuple[NDArray[np.intp], NDArray[np.float64],
                                                NDArray[np.float64]]:
    """D8 receivers, flow accumulation (cells) and depression-filled elevation of a grid.

    A priority flood from the edges (Barnes, Lehman & Mulla 2014) visits the cells lowest
    first; each cell drains to the neighbour that first reached it (its lowest neighbour on
    slopes, the spill path out of depressions and across flats), and the edge cells drain out
    of the grid (receiver -1). Accumulation counts each cell and every cell upstream of it.
    """
    rows, cols = z.shape
    flat = np.asarray(z, dtype=float).ravel()
    filled = flat.copy()
    recv = np.full(flat.size, -1, dtype=np.intp)
    seen = np.zeros(flat.size, dtype=bool)
    edge = np.zeros(z.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    heap = [(flat[i], i, i) for i in np.flatnonzero(edge.ravel())]
    heapq.heapify(heap)
    seen[edge.ravel()] = True
    order = []
    count = flat.size
    while heap:
        h, _, i = heapq.heappop(heap)
        order.append(i)
        r, c = divmod(i, cols)
        for dr, dc in _NEIGHBOURS:
            rr, cc = r + dr, c + dc
            if 0 <= rr < rows and 0 <= cc < cols:
                n = rr * cols + cc
                if not seen[n]:
                    seen[n] = True
                    recv[n] = i
                    filled[n] = max(flat[n], h)
                    count += 1
                    heapq.heappush(heap, (filled[n], count, n))
    acc = np.ones(flat.size)
    for i in reversed(order):
        if recv[i] >= 0:
            acc[recv[i]] += acc[i]
    return recv, acc, filled


def _reaches(recv: NDArray[np.intp], acc: NDArray[np.float64], channel: NDArray[np.bool_]
             ) -> list[tuple[list[int], float]]:
    """Channel cells split into reaches from the mouth upstream (larger branch first).

    A reach that joins another starts with the junction cell, so the network stays connected.
    Returns each reach's cells and its own drainage at its mouth (cells).
    """
    donors: dict[int, list[int]] = {}
    for i in np.flatnonzero(channel):
        j = int(recv[i])
        if j >= 0 and channel[j]:
            donors.setdefault(j, []).append(int(i))
    mouths = [int(i) for i in np.flatnonzero(channel)
              if recv[i] < 0 or not channel[recv[i]]]
    todo = [(i, None) for i in sorted(mouths, key=lambda i: acc[i])]
    out = []
    while todo:
        cell, junction = todo.pop()
        path = ([] if junction is None else [junction]) + [cell]
        area = float(acc[cell])
        while cell in donors:
            up = sorted(donors[cell], key=lambda i: acc[i])
            todo += [(d, cell) for d in up[:-1]]
            cell = up[-1]
            path.append(cell)
        out.append((path, area))
    return out


def _rivers(grid: Grid, recv, acc, filled) -> list[River]:
    """The channels as :class:`River` reaches, the three largest well inside the window first.

    Settlements put the three towns on the first three rivers and the national road follows
    the first: those are the largest reaches with 3 km or more inside the grid shrunk by 4 km
    (less for small grids: at most 30 % of the side shrunk, and 30 % of the inner side
    inside); the rest follow by drainage area.
    """
    cell_km2 = (grid.cell_m / 1000.0) ** 2
    channel = acc * cell_km2 >= CHANNEL_KM2
    x, y = (a.ravel() for a in grid.centres())
    xmin, ymin, xmax, ymax = grid.bounds
    m = min(4000.0, 0.3 * min(xmax - xmin, ymax - ymin))
    inner = (x > xmin + m) & (x < xmax - m) & (y > ymin + m) & (y < ymax - m)
    need_m = min(3000.0, 0.3 * (min(xmax - xmin, ymax - ymin) - 2 * m))
    kept = [(p, a) for p, a in _reaches(recv, acc, channel) if len(p) >= MIN_REACH_CELLS]
    reaches = [p for p, _ in kept]
    area = [a * cell_km2 for _, a in kept]
    inside_m = [inner[p].sum() * grid.cell_m for p in reaches]
    rank = sorted(range(len(reaches)), key=lambda k: (inside_m[k] < need_m, -area[k]))
    if len(rank) < 3 or inside_m[rank[2]] < need_m:
        raise ParameterError(
            f"the DEM window holds fewer than three rivers with {need_m / 1000:.1f} km inside "
            "the province "
            f"(channels draining {CHANNEL_KM2:g} km² or more): settlements need valleys; "
            "centre the window on hill or mountain country")
    rivers = []
    names = iter(_RIVER_NAMES)
    for k in rank:
        p = np.asarray(reaches[k])
        order = 1 if area[k] >= ORDER_KM2[0] else 2 if area[k] >= ORDER_KM2[1] else 3
        rivers.append(River(np.column_stack([x[p], y[p]]), filled[p], order,
                            next(names, "")))
    return rivers


def _valley_floor(fine: Grid, f: int, rivers: list[River], z_of_cell: NDArray
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Valley-floor elevation and the roughness weight (0 on the floor, 1 away) on ``fine``.

    As :func:`~coverage.datasets.terrain.make_terrain`: each cell takes the floor of its
    nearest river cell, smoothed over 400 m; the weight rises as
    :math:`1 - e^{-(d/w)^{1.6}}` with the distance ``d`` to the river and the valley's
    half-width ``w`` by order.
    """
    coarse_shape = (fine.rows // f, fine.cols // f)
    floor_r = np.full(coarse_shape, np.nan)
    width_r = np.full(coarse_shape, np.nan)
    coarse = Grid(fine.x0_m, fine.y1_m, fine.cell_m * f, *coarse_shape)
    for river in sorted(rivers, key=lambda r: -r.order):
        r, c = coarse.index(river.xy[:, 0], river.xy[:, 1])
        floor_r[r, c] = river.z
        width_r[r, c] = _WIDTHS[river.order]
    floor_r = np.kron(floor_r, np.ones((f, f)))
    width_r = np.kron(width_r, np.ones((f, f)))
    dist, (ir, ic) = ndimage.distance_transform_edt(np.isnan(floor_r), return_indices=True)
    sigma = 400.0 / fine.cell_m
    floor = ndimage.gaussian_filter(floor_r[ir, ic], sigma)
    width = ndimage.gaussian_filter(width_r[ir, ic], sigma)
    # the smoothed floor never stands above the ground it is the floor of
    floor = np.minimum(floor, np.kron(z_of_cell, np.ones((f, f))))
    g = 1.0 - np.exp(-((dist * fine.cell_m / width) ** 1.6))
    return floor, g


def terrain_from_dem(path: str | Path, grid: Grid, rng: np.random.Generator, *,
                     fine_factor: int = 2) -> Terrain:
    """The terrain of a province over a real DEM: rivers, fine elevation, DEM, slope, forest.

    Parameters
    ----------
    path : str or Path
        A GDAL-readable elevation raster (metres) covering the grid, e.g. an SRTM ``.hgt``
        tile (EPSG:4326); voids (its nodata) are filled.
    grid : Grid
        The published DEM grid (100 m cells, EPSG:32648), placed where the window is wanted.
    rng : numpy.random.Generator
        Random source of the sub-100 m roughness and of the forest's patches.
    fine_factor : int
        The hidden terrain is ``fine_factor`` times finer than the published DEM.

    Returns
    -------
    Terrain
        As :func:`~coverage.datasets.terrain.make_terrain` returns it.

    Raises
    ------
    ParameterError
        When the file cannot be read, does not cover the grid, or the window holds fewer
        than three rivers (settlements need valleys).
    """
    fine = grid.refine(fine_factor)
    f = fine_factor
    base = _fine_dem(path, fine)
    base_c = base.reshape(grid.rows, f, grid.cols, f).mean(axis=(1, 3))
    recv, acc, filled = drainage(base_c)
    rivers = _rivers(grid, recv, acc, filled)
    floor, g = _valley_floor(fine, f, rivers, base_c)
    fine_m = base + 3.0 * g * rng.standard_normal(fine.shape)
    fine_m += 12.0 * g * fractal_field(fine.shape, fine.cell_m, beta=2.0, outer_m=600.0,
                                       rng=rng)
    return published_terrain(grid, fine, fine_m.astype(np.float32), floor, rivers, rng)
