"""Synthetic mountain terrain: river network, elevation, forest and the province outline.

The landscape imitates the karst and schist mountains of Hà Giang: a main river flowing
south, a second river joining it from the north-east, tributaries of two orders carving
V-shaped valleys, ridged fractal relief between them, a few NW-SE ridge lines and a high
plateau to the north. Elevations run from ~100 m at the outlet to ~2,000 m on the ridges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import ndimage

from ._grid import Grid, fractal_field, gaussian_field

__all__ = ["River", "Terrain", "make_outline", "make_terrain", "published_terrain"]


@dataclass(frozen=True, slots=True)
class River:
    """One river reach, drawn from its mouth upstream.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Vertices from the mouth upstream, metres.
    z : ndarray, shape (n,)
        Valley-floor elevation at each vertex, metres.
    order : int
        1 main river, 2 tributary, 3 small stream.
    name : str
        Vietnamese name.
    """

    xy: NDArray[np.float64]
    z: NDArray[np.float64]
    order: int
    name: str


@dataclass(frozen=True, slots=True)
class Terrain:
    """The generated terrain on the fine grid and the published (coarse) grid."""

    fine_grid: Grid
    fine_m: NDArray[np.float32]
    grid: Grid
    dem_m: NDArray[np.float32]
    floor_m: NDArray[np.float32]
    slope: NDArray[np.float32]
    forest: NDArray[np.float32]
    rivers: tuple[River, ...]


_RIVER_NAMES = ("Sông Nậm Mẫu", "Sông Khuổi Lài", "Suối Nà Pục", "Suối Phìn Hồ", "Suối Cốc Xả",
                "Suối Nặm Dầu", "Suối Tả Chải", "Suối Bó Lình", "Suối Lũng Pảng", "Suối Khau Mạ")


def _walk(start, heading, length_m, step_m, rng, *, turn_sd, pull, bounds, occupied, own,
          occ_cell):
    xmin, ymin, xmax, ymax = bounds
    pts = [np.asarray(start, dtype=float)]
    h = heading
    for i in range(int(length_m / step_m)):
        h = h + rng.normal(0.0, turn_sd) + pull * np.sin(heading - h)
        p = pts[-1] + step_m * np.array([np.cos(h), np.sin(h)])
        if not (xmin <= p[0] <= xmax and ymin <= p[1] <= ymax):
            pts.append(p)
            break
        key = (int(p[0] // occ_cell), int(p[1] // occ_cell))
        if i * step_m > 1500 and any(
            occupied.get((key[0] + a, key[1] + b), own) != own
            for a in (-1, 0, 1) for b in (-1, 0, 1)
        ):
            break
        pts.append(p)
    xy = np.array(pts)
    for p in xy:
        occupied.setdefault((int(p[0] // occ_cell), int(p[1] // occ_cell)), own)
    return xy


def _rivers(grid: Grid, rng: np.random.Generator) -> list[River]:
    xmin, ymin, xmax, ymax = grid.bounds
    w, h = xmax - xmin, ymax - ymin
    pad = 2000.0
    bounds = (xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    occupied: dict[tuple[int, int], int] = {}
    occ = 600.0
    rivers: list[River] = []
    names = iter(_RIVER_NAMES)

    def add(xy, z0, slope, order, name=None):
        seg = np.hypot(*np.diff(xy, axis=0).T)
        z = z0 + slope * np.concatenate([[0.0], np.cumsum(seg)])
        rivers.append(River(xy, z, order, name or next(names, "")))
        return rivers[-1]

    main_xy = _walk((xmin + 0.56 * w, ymin - pad / 2), np.pi / 2, 3 * h, 200.0, rng,
                    turn_sd=0.12, pull=0.08, bounds=bounds, occupied=occupied, own=0,
                    occ_cell=occ)
    main = add(main_xy, 110.0, 0.0045, 1)
    j = int(0.28 * len(main.xy))
    east_xy = _walk(main.xy[j], np.pi / 9, 3 * w, 200.0, rng, turn_sd=0.12, pull=0.08,
                    bounds=bounds, occupied=occupied, own=1, occ_cell=occ)
    east = add(east_xy, main.z[j], 0.006, 1)
    j = int(0.12 * len(main.xy))
    west_xy = _walk(main.xy[j], 0.8 * np.pi, 3 * w, 200.0, rng, turn_sd=0.12, pull=0.08,
                    bounds=bounds, occupied=occupied, own=2, occ_cell=occ)
    west = add(west_xy, main.z[j] + 5, 0.007, 1)
    own = 3
    for trunk in (main, east, west):
        n = len(trunk.xy)
        spacing = int(rng.integers(12, 18))
        for i, k in enumerate(range(spacing // 2 + 3, n - 5, spacing)):
            d = trunk.xy[min(k + 1, n - 1)] - trunk.xy[k - 1]
            up = np.arctan2(d[1], d[0])
            side = 1 if i % 2 else -1
            head = up + side * rng.uniform(0.7, 1.3)
            xy = _walk(trunk.xy[k], head, rng.uniform(5000, 13000), 150.0, rng, turn_sd=0.15,
                       pull=0.1, bounds=grid.bounds, occupied=occupied, own=own,
                       occ_cell=occ)
            own += 1
            if len(xy) < 8:
                continue
            trib = add(xy, trunk.z[k] + 5, rng.uniform(0.02, 0.04), 2)
            m = len(trib.xy)
            for kk in range(int(rng.integers(5, 12)), m - 4, int(rng.integers(10, 16))):
                dd = trib.xy[min(kk + 1, m - 1)] - trib.xy[kk - 1]
                up2 = np.arctan2(dd[1], dd[0])
                head2 = up2 + rng.choice([-1, 1]) * rng.uniform(0.7, 1.3)
                xy2 = _walk(trib.xy[kk], head2, rng.uniform(2000, 5500), 120.0, rng,
                            turn_sd=0.2, pull=0.1, bounds=grid.bounds, occupied=occupied,
                            own=own, occ_cell=occ)
                own += 1
                if len(xy2) >= 6:
                    add(xy2, trib.z[kk] + 5, rng.uniform(0.05, 0.09), 3)
    return rivers


def _densify(river: River, step_m: float) -> tuple[NDArray, NDArray]:
    seg = np.hypot(*np.diff(river.xy, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1], step_m)
    return (np.column_stack([np.interp(t, s, river.xy[:, 0]), np.interp(t, s, river.xy[:, 1])]),
            np.interp(t, s, river.z))


def make_terrain(grid: Grid, rng: np.random.Generator, *, fine_factor: int = 2) -> Terrain:
    """Generate the terrain: rivers, fine elevation, published DEM, slope and forest.

    Parameters
    ----------
    grid : Grid
        The published DEM grid (100 m cells).
    rng : numpy.random.Generator
        Random source.
    fine_factor : int
        The hidden terrain is ``fine_factor`` times finer than the published DEM.
    """
    fine = grid.refine(fine_factor)
    rivers = _rivers(grid, rng)
    widths = {1: 1500.0, 2: 700.0, 3: 380.0}
    floor_r = np.full(fine.shape, np.nan)
    width_r = np.full(fine.shape, np.nan)
    for river in sorted(rivers, key=lambda r: -r.order):
        xy, z = _densify(river, fine.cell_m / 2)
        r, c = fine.index(xy[:, 0], xy[:, 1])
        inside = ((xy[:, 0] > fine.bounds[0]) & (xy[:, 0] < fine.bounds[2])
                  & (xy[:, 1] > fine.bounds[1]) & (xy[:, 1] < fine.bounds[3]))
        floor_r[r[inside], c[inside]] = z[inside]
        width_r[r[inside], c[inside]] = widths[river.order]
    dist, (ir, ic) = ndimage.distance_transform_edt(np.isnan(floor_r), return_indices=True)
    dist_m = dist * fine.cell_m
    sigma = 400.0 / fine.cell_m
    floor = ndimage.gaussian_filter(floor_r[ir, ic], sigma)
    width = ndimage.gaussian_filter(width_r[ir, ic], sigma)

    x, y = fine.centres()
    xmin, ymin, xmax, ymax = fine.bounds
    v = (y - ymin) / (ymax - ymin)
    ridged = 1.0 - np.abs(fractal_field(fine.shape, fine.cell_m, beta=3.0, outer_m=12000.0,
                                        rng=rng))
    ridged = np.clip(ridged, 0.0, None) ** 1.3
    smooth = fractal_field(fine.shape, fine.cell_m, beta=3.2, outer_m=20000.0, rng=rng)
    relief = 300.0 + 380.0 * ridged + 160.0 * smooth + 450.0 * v ** 1.5
    for _ in range(3):
        # NW-SE ridge lines, like the ranges of the Lô-Gâm interfluves.
        cx = rng.uniform(xmin + 5000, xmax - 5000)
        cy = rng.uniform(ymin + 5000, ymax - 5000)
        ang = np.deg2rad(rng.uniform(-45, -25))
        dl = np.abs(-(x - cx) * np.sin(ang) + (y - cy) * np.cos(ang))
        along = (x - cx) * np.cos(ang) + (y - cy) * np.sin(ang)
        taper = np.exp(-((along / rng.uniform(9000, 16000)) ** 2))
        relief += rng.uniform(250, 420) * np.exp(-((dl / 1800.0) ** 2)) * taper
    g = 1.0 - np.exp(-((dist_m / width) ** 1.6))
    fine_m = floor + relief * g
    # Metre-scale roughness that the published 100 m DEM averages away.
    fine_m += 3.0 * g * rng.standard_normal(fine.shape)
    fine_m += 12.0 * g * fractal_field(fine.shape, fine.cell_m, beta=2.0, outer_m=600.0, rng=rng)
    fine_m = np.clip(fine_m, 60.0, None).astype(np.float32)

    return published_terrain(grid, fine, fine_m, floor, rivers, rng)


def published_terrain(grid: Grid, fine: Grid, fine_m: NDArray[np.float32], floor: NDArray,
                      rivers, rng: np.random.Generator) -> Terrain:
    """The terrain from its hidden fine heights: the published DEM, slope and forest.

    The published DEM is the block mean of the hidden ``fine_m`` (metres) on ``grid``; the
    valley ``floor`` (on ``fine``) is averaged the same way; the forest grows on steep
    ground high over the valley floor, in patches about 800 m across.
    """
    f = fine.rows // grid.rows
    dem = fine_m.reshape(grid.rows, f, grid.cols, f).mean(axis=(1, 3)).astype(np.float32)
    floor_c = floor.reshape(grid.rows, f, grid.cols, f).mean(axis=(1, 3))
    gy, gx = np.gradient(dem.astype(float), grid.cell_m)
    slope = np.hypot(gx, gy).astype(np.float32)
    patches = gaussian_field(grid.shape, grid.cell_m, 800.0, rng)
    above = dem - floor_c
    forest = 1.0 / (1.0 + np.exp(-(5.0 * (slope - 0.35) + 0.005 * (above - 400) + 0.8 * patches)))
    return Terrain(fine, fine_m, grid, dem, floor_c.astype(np.float32), slope,
                   forest.astype(np.float32), tuple(rivers))


def make_outline(grid: Grid, rng: np.random.Generator) -> shapely.Polygon:
    """An irregular province outline inside the grid, with a margin of ~1 km."""
    xmin, ymin, xmax, ymax = grid.bounds
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    a, b = (xmax - xmin) / 2 - 900, (ymax - ymin) / 2 - 900
    theta = np.linspace(0, 2 * np.pi, 241)[:-1]
    r = np.ones_like(theta)
    for k in range(2, 9):
        r += rng.normal(0, 0.06 / k ** 0.7) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    # superellipse, so the outline fills most of the rectangle
    c, s = np.cos(theta), np.sin(theta)
    base = (np.abs(c) ** 3 + np.abs(s) ** 3) ** (-1 / 3)
    rr = np.minimum(r * base, 1.0)
    poly = shapely.Polygon(np.column_stack([cx + a * rr * c, cy + b * rr * s]))
    return shapely.make_valid(poly).buffer(0)
