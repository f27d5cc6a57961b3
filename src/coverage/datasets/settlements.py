"""Settlements and administrative units: towns, communes, villages, population.

Villages (thôn/bản) are Voronoi cells of seeds drawn where people settle in the mountains:
flat valley floors first, then gentle slopes and the high karst plateau. Communes group the
villages nearest (in terrain cost) to each commune seat; districts group the communes nearest
to each district town.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from ._grid import UTM_CRS, Grid, cost_graph, grid_paths
from .names import PROVINCE, unique_names
from .terrain import Terrain

__all__ = ["Settlements", "habitability", "make_settlements"]


@dataclass(frozen=True, slots=True)
class Settlements:
    """Towns, commune seats and villages of the demo province (metric CRS)."""

    towns: pd.DataFrame          # name, x, y, radius_m, district_idx, capital
    villages: gpd.GeoDataFrame   # ids, names, population, households, seed x/y, culture, town
    communes: gpd.GeoDataFrame
    districts: gpd.GeoDataFrame
    outline: shapely.Polygon


def habitability(terrain: Terrain) -> NDArray[np.float64]:
    """Relative attractiveness of each DEM cell for settlement (0..1)."""
    above = np.asarray(terrain.dem_m - terrain.floor_m, dtype=float)
    flat = np.exp(-np.asarray(terrain.slope, dtype=float) / 0.18)
    h = flat * (0.12 + np.exp(-np.clip(above, 0, None) / 220.0))
    return h / h.max()


def _greedy(rng, xy, weight, min_dist, n_max, existing=()):
    """Weighted random order, keep points at least ``min_dist`` from every kept point."""
    order = np.argsort(-np.log(rng.uniform(size=len(xy))) / np.maximum(weight, 1e-12))
    kept = [np.asarray(p, dtype=float) for p in existing]
    out = []
    for i in order:
        if len(out) >= n_max:
            break
        p = xy[i]
        if kept and np.min(np.hypot(*(np.asarray(kept) - p).T)) < min_dist:
            continue
        kept.append(p)
        out.append(i)
    return np.asarray(out, dtype=int)


def _town_sites(terrain: Terrain, outline: shapely.Polygon) -> list[tuple[float, float]]:
    inner = outline.buffer(-3000)
    picks = []
    for river, frac in zip(terrain.rivers[:3], (0.22, 0.45, 0.45), strict=True):
        pts = river.xy
        inside = np.flatnonzero(shapely.contains_xy(inner, pts[:, 0], pts[:, 1]))
        if len(inside) == 0:
            inside = np.arange(len(pts))
        k = inside[int(frac * (len(inside) - 1))]
        # settle on the floodplain a little off the river
        picks.append((float(pts[k, 0]) + 150.0, float(pts[k, 1]) + 100.0))
    return picks


def make_settlements(terrain: Terrain, outline: shapely.Polygon, rng: np.random.Generator, *,
                     n_villages: int = 300, n_communes: int = 25) -> Settlements:
    """Draw towns, commune seats and village seeds, and build the administrative polygons."""
    grid: Grid = terrain.grid
    hab = habitability(terrain)
    x, y = grid.centres()
    inside = shapely.contains_xy(outline.buffer(-600), x, y)
    cand = np.flatnonzero(inside.ravel())
    cxy = np.column_stack([x.ravel()[cand], y.ravel()[cand]])
    cw = hab.ravel()[cand]

    town_xy = _town_sites(terrain, outline)
    towns = pd.DataFrame({"x": [p[0] for p in town_xy], "y": [p[1] for p in town_xy],
                          "radius_m": [1400.0, 900.0, 900.0], "capital": [True, False, False]})
    area_km2 = outline.area / 1e6
    spacing = 0.8 * np.sqrt(area_km2 / n_communes) * 1000.0
    seats = _greedy(rng, cxy, cw ** 2, spacing, n_communes - len(towns), existing=town_xy)
    seat_xy = np.vstack([np.asarray(town_xy), cxy[seats]])

    # villages: town quarters, commune seats, then rural hamlets
    quarters = []
    for (tx, ty), r, n in zip(town_xy, towns["radius_m"], (10, 5, 5), strict=True):
        ang = np.linspace(0, 2 * np.pi, n - 1, endpoint=False) + rng.uniform(0, 1)
        quarters.append([tx, ty])
        quarters += [[tx + 0.6 * r * np.cos(a), ty + 0.6 * r * np.sin(a)] for a in ang]
    quarters = np.asarray(quarters)
    fixed = np.vstack([quarters, cxy[seats]])
    rural_min = 0.75 * np.sqrt(area_km2 / n_villages) * 1000.0
    rural = _greedy(rng, cxy, cw + 0.04, rural_min, n_villages - len(fixed), existing=fixed)
    seeds = np.vstack([fixed, cxy[rural]])
    n_town = len(quarters)

    region = shapely.box(*outline.bounds).buffer(20_000)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=region, ordered=True)
    polys = shapely.intersection(shapely.get_parts(cells), outline)
    polys = _one_part_each(polys, seeds)

    # communes and districts by terrain cost from their seats
    cost = 1.0 + 25.0 * terrain.slope.astype(float) ** 2
    graph = cost_graph(cost, grid.cell_m)
    seat_ids = np.ravel_multi_index(grid.index(seat_xy[:, 0], seat_xy[:, 1]), grid.shape)
    _, _, src = grid_paths(graph, seat_ids)
    vr, vc = grid.index(seeds[:, 0], seeds[:, 1])
    seat_of_node = {int(n): i for i, n in enumerate(seat_ids)}
    commune_of = np.array([seat_of_node[int(s)] for s in src[np.ravel_multi_index((vr, vc),
                                                                                   grid.shape)]])
    commune_of[:n_town] = np.repeat([0, 1, 2], [10, 5, 5])
    commune_of[n_town:n_town + len(seats)] = np.arange(len(towns), len(seat_xy))
    town_ids = seat_ids[: len(towns)]
    _, _, dsrc = grid_paths(graph, town_ids)
    town_of_node = {int(n): i for i, n in enumerate(town_ids)}
    district_of_seat = np.array([town_of_node[int(dsrc[s])] for s in seat_ids])
    district_of_seat[: len(towns)] = np.arange(len(towns))
    towns["district_idx"] = np.arange(len(towns))

    # ids: district (2) + commune within district (2) + village within commune (3)
    d_order = np.arange(len(towns))
    c_num = np.zeros(len(seat_xy), dtype=int)
    for d in d_order:
        members = np.flatnonzero(district_of_seat == d)
        members = members[np.lexsort((seat_xy[members, 0], -seat_xy[members, 1]))]
        members = np.concatenate([[d], members[members != d]])
        c_num[members] = np.arange(1, len(members) + 1)
    commune_id = np.array([f"{district_of_seat[c] + 1:02d}{c_num[c]:02d}"
                           for c in range(len(seat_xy))])

    elev = terrain.dem_m[vr, vc]
    culture = np.where(elev > 1000, "hmong", np.where(elev > 650, "dao", "tay"))
    culture = np.where(rng.uniform(size=len(seeds)) < 0.15, "tay", culture)
    culture[:n_town] = "kinh"

    # names
    district_names = unique_names(rng, ["tay"] * len(towns), ["Huyện"] * len(towns))
    commune_names = unique_names(
        rng, ["tay" if c < len(towns) else str(culture[n_town + c - len(towns)])
              for c in range(len(seat_xy))],
        ["Thị trấn" if c < len(towns) else "Xã" for c in range(len(seat_xy))])
    v_names = np.empty(len(seeds), dtype=object)
    for c in range(len(seat_xy)):
        members = np.flatnonzero(commune_of == c)
        rural_m = [m for m in members if m >= n_town]
        town_m = [m for m in members if m < n_town]
        for k, m in enumerate(town_m):
            v_names[m] = f"Tổ dân phố {k + 1}"
        prefixes = ["Bản" if culture[m] == "tay" and rng.uniform() < 0.5 else "Thôn"
                    for m in rural_m]
        names = unique_names(rng, [str(culture[m]) for m in rural_m], prefixes)
        for m, nm in zip(rural_m, names, strict=True):
            v_names[m] = nm
    # The same hamlet name in two communes, as happens for real.
    a = n_town + len(seats)
    b = next(i for i in range(len(seeds) - 1, a, -1) if commune_of[i] != commune_of[a])
    v_names[b] = v_names[a]

    # population and households
    valley = hab[vr, vc]
    pop = np.exp(rng.normal(np.log(330.0), 0.5, len(seeds))) * (0.7 + 1.2 * valley)
    pop[:n_town] = rng.uniform(900, 1950, n_town)
    pop = np.clip(np.round(pop), 100, 2000).astype(np.int64)
    size = np.where(culture == "hmong", 5.6, np.where(culture == "kinh", 3.7, 4.3))
    hh = np.maximum(np.round(pop / (size * np.exp(rng.normal(0, 0.08, len(seeds))))), 20)

    v_local = np.zeros(len(seeds), dtype=int)
    for c in range(len(seat_xy)):
        members = np.flatnonzero(commune_of == c)
        members = members[np.lexsort((seeds[members, 0], -seeds[members, 1]))]
        v_local[members] = np.arange(1, len(members) + 1)
    village_id = [f"{commune_id[c]}{k:03d}" for c, k in zip(commune_of, v_local, strict=True)]
    villages = gpd.GeoDataFrame({
        "village_id": pd.array(village_id, dtype="str"),
        "name": pd.array(list(v_names), dtype="str"),
        "commune": pd.array([commune_names[c] for c in commune_of], dtype="str"),
        "district": pd.array([district_names[district_of_seat[c]] for c in commune_of],
                             dtype="str"),
        "province": pd.array([PROVINCE] * len(seeds), dtype="str"),
        "population": pop,
        "households": hh.astype(np.int64),
        "commune_idx": commune_of,
        "district_idx": district_of_seat[commune_of],
        "culture": culture,
        "town": np.arange(len(seeds)) < n_town,
        "seat": np.isin(np.arange(len(seeds)), np.r_[0, 10, 15, n_town:n_town + len(seats)]),
        "seed_x": seeds[:, 0], "seed_y": seeds[:, 1],
    }, geometry=list(polys), crs=UTM_CRS)
    villages = villages.sort_values("village_id", ignore_index=True)

    communes = villages.dissolve("commune_idx", aggfunc={
        "commune": "first", "district": "first", "province": "first",
        "population": "sum", "households": "sum", "district_idx": "first"}).reset_index()
    communes.insert(0, "commune_id", pd.array(commune_id[communes["commune_idx"]], dtype="str"))
    communes["kind"] = np.where(communes["commune_idx"] < len(towns), "thị trấn", "xã")
    communes["seat_x"] = seat_xy[communes["commune_idx"], 0]
    communes["seat_y"] = seat_xy[communes["commune_idx"], 1]
    communes = communes.sort_values("commune_id", ignore_index=True)
    districts = communes.dissolve("district_idx", aggfunc={
        "district": "first", "province": "first", "population": "sum",
        "households": "sum"}).reset_index()
    districts.insert(0, "district_id", pd.array([f"{d + 1:02d}" for d in districts["district_idx"]],
                                                dtype="str"))
    towns["name"] = [commune_names[i] for i in range(len(towns))]
    return Settlements(towns, villages, communes, districts, outline)


def _one_part_each(polys, seeds):
    """Give each village one part: the one nearest its seed.

    Voronoi cells clipped by a concave outline may split; every other part goes to the
    neighbour it shares the longest border with, so the coverage keeps no gap.
    """
    kept, orphans = [], []
    for i, (geom, seed) in enumerate(zip(polys, seeds, strict=True)):
        parts = list(shapely.get_parts(geom))
        pt = shapely.Point(seed)
        parts.sort(key=lambda p: p.distance(pt))
        kept.append(parts[0])
        orphans += [(i, p) for p in parts[1:]]
    tree = shapely.STRtree(kept)
    for i, part in orphans:
        near = [j for j in tree.query(part, predicate="touches") if j != i]
        if not near:
            kept[i] = shapely.union(kept[i], part)
            continue
        j = max(near, key=lambda j: shapely.intersection(kept[j].boundary, part.boundary).length)
        kept[j] = shapely.union(kept[j], part)
    return kept
