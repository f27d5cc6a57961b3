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


@dataclass(frozen=True, slots=True)
class _Seeds:
    """Seed points (UTM m) of the settlements: town quarters, then commune seats, then hamlets."""

    towns: pd.DataFrame     # x, y, radius_m, capital
    seat_xy: NDArray        # (communes, 2): the towns, then the rural commune seats
    seeds: NDArray          # (villages, 2)
    n_town: int             # villages that are town quarters (the first rows of ``seeds``)
    n_seats: int            # rural commune seats (the rows after the town quarters)


def _draw_seeds(terrain: Terrain, outline: shapely.Polygon, hab: NDArray,
                rng: np.random.Generator, n_villages: int, n_communes: int) -> _Seeds:
    """Towns on the rivers, commune seats and hamlets drawn by habitability, spaced apart."""
    grid: Grid = terrain.grid
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
    return _Seeds(towns, seat_xy, seeds, len(quarters), len(seats))


def _assign_communes(terrain: Terrain, sd: _Seeds) -> tuple[NDArray, NDArray]:
    """Commune of each village and district of each commune, by terrain cost from the seats.

    Returns ``(commune_of, district_of_seat)``: indices into ``sd.seat_xy`` and ``sd.towns``.
    """
    grid = terrain.grid
    n_towns = len(sd.towns)
    cost = 1.0 + 25.0 * terrain.slope.astype(float) ** 2
    graph = cost_graph(cost, grid.cell_m)
    seat_ids = np.ravel_multi_index(grid.index(sd.seat_xy[:, 0], sd.seat_xy[:, 1]), grid.shape)
    _, _, src = grid_paths(graph, seat_ids)
    vr, vc = grid.index(sd.seeds[:, 0], sd.seeds[:, 1])
    seat_of_node = {int(n): i for i, n in enumerate(seat_ids)}
    commune_of = np.array([seat_of_node[int(s)] for s in src[np.ravel_multi_index((vr, vc),
                                                                                   grid.shape)]])
    commune_of[:sd.n_town] = np.repeat([0, 1, 2], [10, 5, 5])
    commune_of[sd.n_town:sd.n_town + sd.n_seats] = np.arange(n_towns, len(sd.seat_xy))
    town_ids = seat_ids[:n_towns]
    _, _, dsrc = grid_paths(graph, town_ids)
    town_of_node = {int(n): i for i, n in enumerate(town_ids)}
    district_of_seat = np.array([town_of_node[int(dsrc[s])] for s in seat_ids])
    district_of_seat[:n_towns] = np.arange(n_towns)
    return commune_of, district_of_seat


def _commune_ids(district_of_seat: NDArray, seat_xy: NDArray, n_towns: int) -> NDArray:
    """Commune ids: district (2 digits) + commune within the district, north to south (2)."""
    c_num = np.zeros(len(seat_xy), dtype=int)
    for d in np.arange(n_towns):
        members = np.flatnonzero(district_of_seat == d)
        members = members[np.lexsort((seat_xy[members, 0], -seat_xy[members, 1]))]
        members = np.concatenate([[d], members[members != d]])
        c_num[members] = np.arange(1, len(members) + 1)
    return np.array([f"{district_of_seat[c] + 1:02d}{c_num[c]:02d}"
                     for c in range(len(seat_xy))])


def _draw_names(rng: np.random.Generator, sd: _Seeds, culture: NDArray, commune_of: NDArray
                ) -> tuple[list[str], list[str], NDArray]:
    """Names of the districts, communes and villages, in each place's culture.

    One hamlet name is repeated in another commune, as happens for real.
    """
    n_towns, n_communes = len(sd.towns), len(sd.seat_xy)
    district_names = unique_names(rng, ["tay"] * n_towns, ["Huyện"] * n_towns)
    commune_names = unique_names(
        rng, ["tay" if c < n_towns else str(culture[sd.n_town + c - n_towns])
              for c in range(n_communes)],
        ["Thị trấn" if c < n_towns else "Xã" for c in range(n_communes)])
    v_names = np.empty(len(sd.seeds), dtype=object)
    for c in range(n_communes):
        members = np.flatnonzero(commune_of == c)
        rural_m = [m for m in members if m >= sd.n_town]
        town_m = [m for m in members if m < sd.n_town]
        for k, m in enumerate(town_m):
            v_names[m] = f"Tổ dân phố {k + 1}"
        prefixes = ["Bản" if culture[m] == "tay" and rng.uniform() < 0.5 else "Thôn"
                    for m in rural_m]
        names = unique_names(rng, [str(culture[m]) for m in rural_m], prefixes)
        for m, nm in zip(rural_m, names, strict=True):
            v_names[m] = nm
    a = sd.n_town + sd.n_seats
    b = next(i for i in range(len(sd.seeds) - 1, a, -1) if commune_of[i] != commune_of[a])
    v_names[b] = v_names[a]
    return district_names, commune_names, v_names


def _draw_population(rng: np.random.Generator, valley: NDArray, culture: NDArray,
                     n_town: int) -> tuple[NDArray, NDArray]:
    """Population (100-2,000, more in the valleys and towns) and households of each village."""
    n = len(valley)
    pop = np.exp(rng.normal(np.log(330.0), 0.5, n)) * (0.7 + 1.2 * valley)
    pop[:n_town] = rng.uniform(900, 1950, n_town)
    pop = np.clip(np.round(pop), 100, 2000).astype(np.int64)
    size = np.where(culture == "hmong", 5.6, np.where(culture == "kinh", 3.7, 4.3))
    hh = np.maximum(np.round(pop / (size * np.exp(rng.normal(0, 0.08, n)))), 20)
    return pop, hh


def _village_ids(commune_of: NDArray, seeds: NDArray, commune_id: NDArray) -> list[str]:
    """Village ids: commune id + village within the commune, north to south (3 digits)."""
    v_local = np.zeros(len(seeds), dtype=int)
    for c in range(len(commune_id)):
        members = np.flatnonzero(commune_of == c)
        members = members[np.lexsort((seeds[members, 0], -seeds[members, 1]))]
        v_local[members] = np.arange(1, len(members) + 1)
    return [f"{commune_id[c]}{k:03d}" for c, k in zip(commune_of, v_local, strict=True)]


def _admin_tables(villages: gpd.GeoDataFrame, commune_id: NDArray, seat_xy: NDArray,
                  n_towns: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Communes and districts dissolved from the villages, with ids, kinds and seats."""
    communes = villages.dissolve("commune_idx", aggfunc={
        "commune": "first", "district": "first", "province": "first",
        "population": "sum", "households": "sum", "district_idx": "first"}).reset_index()
    communes.insert(0, "commune_id", pd.array(commune_id[communes["commune_idx"]], dtype="str"))
    communes["kind"] = np.where(communes["commune_idx"] < n_towns, "thị trấn", "xã")
    communes["seat_x"] = seat_xy[communes["commune_idx"], 0]
    communes["seat_y"] = seat_xy[communes["commune_idx"], 1]
    communes = communes.sort_values("commune_id", ignore_index=True)
    districts = communes.dissolve("district_idx", aggfunc={
        "district": "first", "province": "first", "population": "sum",
        "households": "sum"}).reset_index()
    districts.insert(0, "district_id", pd.array([f"{d + 1:02d}" for d in districts["district_idx"]],
                                                dtype="str"))
    return communes, districts


def make_settlements(terrain: Terrain, outline: shapely.Polygon, rng: np.random.Generator, *,
                     n_villages: int = 300, n_communes: int = 25) -> Settlements:
    """Draw towns, commune seats and village seeds, and build the administrative polygons."""
    grid: Grid = terrain.grid
    hab = habitability(terrain)
    sd = _draw_seeds(terrain, outline, hab, rng, n_villages, n_communes)
    towns, seeds, n_town = sd.towns, sd.seeds, sd.n_town

    region = shapely.box(*outline.bounds).buffer(20_000)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=region, ordered=True)
    polys = shapely.intersection(shapely.get_parts(cells), outline)
    polys = _one_part_each(polys, seeds)

    commune_of, district_of_seat = _assign_communes(terrain, sd)
    towns["district_idx"] = np.arange(len(towns))
    commune_id = _commune_ids(district_of_seat, sd.seat_xy, len(towns))

    vr, vc = grid.index(seeds[:, 0], seeds[:, 1])
    elev = terrain.dem_m[vr, vc]
    culture = np.where(elev > 1000, "hmong", np.where(elev > 650, "dao", "tay"))
    culture = np.where(rng.uniform(size=len(seeds)) < 0.15, "tay", culture)
    culture[:n_town] = "kinh"
    district_names, commune_names, v_names = _draw_names(rng, sd, culture, commune_of)
    pop, hh = _draw_population(rng, hab[vr, vc], culture, n_town)

    villages = gpd.GeoDataFrame({
        "village_id": pd.array(_village_ids(commune_of, seeds, commune_id), dtype="str"),
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
        "seat": np.isin(np.arange(len(seeds)), np.r_[0, 10, 15, n_town:n_town + sd.n_seats]),
        "seed_x": seeds[:, 0], "seed_y": seeds[:, 1],
    }, geometry=list(polys), crs=UTM_CRS)
    villages = villages.sort_values("village_id", ignore_index=True)
    communes, districts = _admin_tables(villages, commune_id, sd.seat_xy, len(towns))
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
