"""Road network along the valleys, written as OSM XML, and the fibre routes along it.

Roads are least-cost paths over the terrain (cost grows with the square of the slope, so
they keep to valley floors and contour along slopes): national road through the capital,
provincial roads to the district towns, district roads to every commune seat, then village
roads and tracks as one shortest-path forest from the network to every village.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from pyproj import Transformer

from ._grid import UTM_CRS, cost_graph, grid_paths, trace
from .settlements import Settlements
from .terrain import Terrain

__all__ = ["Roads", "make_fibre", "make_roads", "write_osm"]

_RANK = {"track": 0, "unclassified": 1, "tertiary": 2, "secondary": 3, "primary": 4}


@dataclass(frozen=True, slots=True)
class Roads:
    """The road network as simplified ways (metric CRS)."""

    ways: gpd.GeoDataFrame   # highway, name, ref, geometry (LineString), node_cells
    mask: np.ndarray         # DEM cells on a road (bool)


class _Network:
    """Roads built so far on the DEM grid: each cell's best road rank, its label, the edges."""

    def __init__(self, n_cells: int):
        self.cls = np.full(n_cells, -1, dtype=int)
        self.label: dict[int, tuple[str, str]] = {}
        self.edges: dict[tuple[int, int], int] = {}

    def add(self, path, highway, name="", ref=""):
        """Lay a road of class ``highway`` along ``path`` (DEM cell indices)."""
        rank = _RANK[highway]
        for a, b in itertools.pairwise(path):
            key = (min(a, b), max(a, b))
            self.edges[key] = max(self.edges.get(key, -1), rank)
        for n in path:
            if rank > self.cls[n]:
                self.cls[n] = rank
                self.label[n] = (name, ref)

    def paths_from(self, cost: np.ndarray, grid):
        """Least-cost distances and predecessors from the network, built roads at 0.15."""
        cheap = np.where(self.cls.reshape(grid.shape) >= 0, 0.15, cost)
        dist, pred, _ = grid_paths(cost_graph(cheap, grid.cell_m),
                                   np.flatnonzero(self.cls >= 0))
        return dist, pred


def _trunk_roads(net: _Network, terrain: Terrain, tnode: np.ndarray, cost: np.ndarray):
    """National road along the main river through the capital; provincial roads to the towns.

    The national road runs from the south edge to the capital and from the capital to the
    north edge; the provincial roads from the capital to the two district towns.
    """
    grid = terrain.grid
    main = terrain.rivers[0].xy
    ends = []
    for frac in (0.0, 1.0):
        k = int(frac * (len(main) - 1))
        r, c = grid.index(main[k, 0], main[k, 1])
        ends.append(int(np.ravel_multi_index((r, c), grid.shape)))
    g = cost_graph(cost, grid.cell_m)
    for end in ends:
        _, pred, _ = grid_paths(g, [tnode[0]])
        net.add(trace(pred, end), "primary", "Quốc lộ 4K", "QL.4K")
    for i, ref in zip((1, 2), ("ĐT.176", "ĐT.178"), strict=True):
        _, pred, _ = grid_paths(g, [tnode[0]])
        net.add(trace(pred, int(tnode[i])), "secondary", f"Đường tỉnh {ref[3:]}", ref)


def _district_roads(net: _Network, grid, communes, cost: np.ndarray):
    """District roads to each commune seat, nearest first, reusing roads already built."""
    snode = np.ravel_multi_index(grid.index(communes["seat_x"].to_numpy(),
                                            communes["seat_y"].to_numpy()), grid.shape)
    todo = [int(s) for s in snode if net.cls[s] < 0]
    k = 1
    while todo:
        dist, pred = net.paths_from(cost, grid)
        nxt = min(todo, key=lambda s: dist[s])
        net.add(trace(pred, nxt), "tertiary", f"Đường huyện ĐH.{k:02d}", f"ĐH.{k:02d}")
        todo.remove(nxt)
        k += 1


def _village_roads(net: _Network, grid, villages, cost: np.ndarray):
    """Village roads and tracks: one shortest-path forest from the network."""
    vnode = np.ravel_multi_index(grid.index(villages["seed_x"].to_numpy(),
                                            villages["seed_y"].to_numpy()), grid.shape)
    dist, pred = net.paths_from(cost, grid)
    for node, name, pop in zip(vnode, villages["name"], villages["population"], strict=True):
        if net.cls[node] >= 0:
            continue
        path = trace(pred, int(node))
        highway = "unclassified" if (dist[node] < 4000 or pop >= 600) else "track"
        net.add(path, highway, f"Đường {name}" if highway == "unclassified" else "", "")


def make_roads(terrain: Terrain, settlements: Settlements) -> Roads:
    """Build the road network on the DEM grid (see the module docstring)."""
    grid = terrain.grid
    cost = 1.0 + 60.0 * terrain.slope.astype(float) ** 2
    towns = settlements.towns
    tnode = np.ravel_multi_index(grid.index(towns["x"].to_numpy(), towns["y"].to_numpy()),
                                 grid.shape)
    net = _Network(grid.shape[0] * grid.shape[1])
    _trunk_roads(net, terrain, tnode, cost)
    _district_roads(net, grid, settlements.communes, cost)
    _village_roads(net, grid, settlements.villages, cost)
    ways = _chains(net.edges, net.cls, net.label, grid)
    mask = (net.cls >= 0).reshape(grid.shape)
    return Roads(ways, mask)


def _chains(edges, cls, label, grid) -> gpd.GeoDataFrame:
    G = nx.Graph()
    for (a, b), rank in edges.items():
        G.add_edge(a, b, rank=rank)
    x, y = grid.centres()
    xs, ys = x.ravel(), y.ravel()
    breaks = {n for n in G if G.degree(n) != 2
              or len({G.edges[n, m]["rank"] for m in G[n]}) > 1}
    seen = set()
    rows = []
    for start in sorted(breaks):
        for nb in sorted(G[start]):
            if (start, nb) in seen:
                continue
            chain = [start, nb]
            while chain[-1] not in breaks:
                nxt = [m for m in G[chain[-1]] if m != chain[-2]]
                if not nxt:
                    break
                chain.append(nxt[0])
            seen.add((chain[-1], chain[-2]))
            seen.add((start, nb))
            rank = G.edges[chain[0], chain[1]]["rank"]
            line = shapely.LineString(np.column_stack([xs[chain], ys[chain]]))
            simple = shapely.simplify(line, 35.0)
            keep = set(map(tuple, np.round(shapely.get_coordinates(simple), 6)))
            nodes = [n for n in chain if (round(xs[n], 6), round(ys[n], 6)) in keep]
            highway = next(h for h, r in _RANK.items() if r == rank)
            mid = chain[len(chain) // 2]
            name, ref = label.get(mid, ("", ""))
            if _RANK[highway] != cls[mid]:
                name, ref = "", ""
            rows.append({"highway": highway, "name": name, "ref": ref, "node_cells": nodes,
                         "geometry": shapely.LineString(np.column_stack([xs[nodes],
                                                                         ys[nodes]]))})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=UTM_CRS)


def write_osm(roads: Roads, path: Path, *, timestamp: str = "2024-06-01T00:00:00Z") -> None:
    """Write the ways as OSM XML 0.6 that ``osmnx.graph_from_xml`` reads."""
    to_ll = Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)
    ways = roads.ways
    coords = {}
    for cells, geom in zip(ways["node_cells"], ways.geometry, strict=True):
        for cell, xy in zip(cells, shapely.get_coordinates(geom), strict=True):
            coords[int(cell)] = xy
    ids = sorted(coords)
    xy = np.array([coords[i] for i in ids])
    lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
    root = ET.Element("osm", version="0.6", generator="coverage-gap demo generator (synthetic)")
    ET.SubElement(root, "bounds", minlat=f"{lat.min():.7f}", minlon=f"{lon.min():.7f}",
                  maxlat=f"{lat.max():.7f}", maxlon=f"{lon.max():.7f}")
    for i, lo, la in zip(ids, lon, lat, strict=True):
        ET.SubElement(root, "node", id=str(i + 1), version="1", timestamp=timestamp,
                      lat=f"{la:.7f}", lon=f"{lo:.7f}")
    for w, (cells, highway, name, ref) in enumerate(zip(
            ways["node_cells"], ways["highway"], ways["name"], ways["ref"], strict=True)):
        way = ET.SubElement(root, "way", id=str(w + 1), version="1", timestamp=timestamp)
        for cell in cells:
            ET.SubElement(way, "nd", ref=str(int(cell) + 1))
        ET.SubElement(way, "tag", k="highway", v=highway)
        if name:
            ET.SubElement(way, "tag", k="name", v=name)
        if ref:
            ET.SubElement(way, "tag", k="ref", v=ref)
        if highway == "track":
            ET.SubElement(way, "tag", k="surface", v="dirt")
    ET.indent(root, space=" ")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def make_fibre(roads: Roads) -> gpd.GeoDataFrame:
    """Fibre routes along the national, provincial and district roads (EPSG:4326)."""
    ways = roads.ways
    rows = []
    for level, kinds, owner in (("backbone", ("primary", "secondary"), "VNPT"),
                                ("district", ("tertiary",), "Viettel")):
        sel = ways[ways["highway"].isin(kinds)]
        merged = shapely.line_merge(shapely.union_all(sel.geometry.to_numpy()))
        for part in shapely.get_parts(merged):
            if part.length < 500:
                continue
            rows.append({"level": level, "owner": owner, "geometry": part})
    fibre = gpd.GeoDataFrame(rows, geometry="geometry", crs=UTM_CRS)
    fibre["length_km"] = (fibre.length / 1000).round(2)
    fibre.insert(0, "route_id", [f"F{i + 1:03d}" for i in range(len(fibre))])
    return fibre.to_crs("EPSG:4326")
