"""What each candidate costs, broken down by the cost model of :class:`coverage.params.CostModel`.

Distances are measured in the candidates' UTM zone (never in degrees). The road graph is the
osmnx graph of ``--roads``; shortest paths run over its edge ``length`` (metres) with
:func:`scipy.sparse.csgraph.dijkstra` from every fibre-connected node at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from .. import radio
from ..io import Raster, utm_crs
from ..model import Grid, to_grid
from ..params import PlanParams
from ._sight import nu_from_point

__all__ = ["BREAKDOWN", "microwave_hubs", "road_access", "satellite_terminal_cost",
           "site_costs"]

log = logging.getLogger(__name__)

#: Cost columns of the breakdown, summed into ``cost``.
BREAKDOWN = ["cost_site", "cost_backhaul", "cost_power", "cost_road", "cost_opex"]
#: Fibre within this distance of a road node is spliced there (metres).
FIBRE_SNAP_M = 300.0
_HUB_BACKHAUL = {"fiber", "fibre", "microwave", ""}
#: Hubs whose line of sight is tested together, nearest first.
_HUB_CHUNK = 16


def satellite_terminal_cost(people: np.ndarray, params: PlanParams) -> tuple[np.ndarray, ...]:
    """Community satellite terminals for villages: (terminals, capex, opex present value)."""
    c = params.costs
    n = np.maximum(np.ceil(np.nan_to_num(np.asarray(people, dtype=float))
                           / c.people_per_terminal), 1.0)
    return n, n * c.satellite_terminal, n * c.satellite_terminal_per_year * c.annuity_factor


def road_access(pts: gpd.GeoSeries, roads, fibre: gpd.GeoDataFrame | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) from each point to its nearest road node, and fibre route (m) from there.

    The fibre route is the shortest path over the road graph from the point's nearest road
    node to a node where fibre passes within :data:`FIBRE_SNAP_M` (or the node nearest to
    each fibre point), plus that splice distance; infinite where no fibre is reachable.
    """
    import osmnx as ox

    crs = pts.crs
    nodes = ox.graph_to_gdfs(roads, edges=False)
    if nodes.crs is None:
        nodes = nodes.set_crs(4326)
    nodes = nodes.to_crs(crs)
    node_ids = {nid: k for k, nid in enumerate(nodes.index)}
    tree = shapely.STRtree(nodes.geometry.to_numpy())
    near, dist = tree.query_nearest(pts.to_numpy(), return_distance=True, all_matches=False)
    nearest = np.empty(len(pts), dtype=int)
    nearest[near[0]] = near[1]
    track_m = np.empty(len(pts))
    track_m[near[0]] = dist
    route = np.full(len(pts), np.inf)
    if fibre is None or fibre.empty:
        return track_m, route
    n = len(nodes)
    u, v, length = [], [], []
    for a, b, data in roads.edges(data=True):
        u.append(node_ids[a])
        v.append(node_ids[b])
        length.append(float(data.get("length", 0.0)) or 1e-3)
    # A virtual source (index n) joined to every fibre splice node by the splice distance.
    f = fibre.to_crs(crs).geometry
    lines = f[f.geom_type.isin(["LineString", "MultiLineString"])]
    splice: dict[int, float] = {}
    if len(lines):
        d_line = shapely.distance(nodes.geometry.to_numpy(), lines.union_all())
        for k in np.flatnonzero(d_line <= FIBRE_SNAP_M):
            splice[int(k)] = float(d_line[k])
    points = f[~f.index.isin(lines.index)].representative_point()
    if len(points) or not splice:
        src = points if len(points) else lines.representative_point()
        hit, d_pt = tree.query_nearest(src.to_numpy(), return_distance=True, all_matches=False)
        for k, d in zip(hit[1], d_pt, strict=True):
            splice[int(k)] = min(splice.get(int(k), np.inf), float(d))
    u += [n] * len(splice)
    v += list(splice)
    length += [max(d, 1e-3) for d in splice.values()]
    graph = sparse.csr_matrix((length, (u, v)), shape=(n + 1, n + 1))
    to_fibre = dijkstra(graph, directed=False, indices=n)
    route = to_fibre[nearest]
    return track_m, route


def microwave_hubs(pts: gpd.GeoSeries, height_m: np.ndarray, towers: gpd.GeoDataFrame | None,
                   *, dem: Raster | None, params: PlanParams
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest site with backhaul in line of sight of each point: (hop km, hub site_id).

    Hubs are active sites whose ``backhaul`` is fibre, microwave or not stated (a working
    site has some); satellite-fed sites cannot relay. A hop is clear when the Bullington
    equivalent edge leaves ``microwave_clearance`` of the first Fresnel zone at
    ``microwave_freq_ghz`` free (:func:`coverage.radio.bullington_nu_root_m`, earth bulge
    included), between the candidate's antenna and the hub's mast. Without a DEM (or with
    one that covers none of the hops) the ground is flat. Infinite km where no hub qualifies
    within ``microwave_max_km``.
    """
    n = len(pts)
    hop_km = np.full(n, np.inf)
    hub_id = np.full(n, None, dtype=object)
    hubs = _hub_sites(towers) if towers is not None and not towers.empty and n else None
    if hubs is None:
        return hop_km, hub_id
    hub_pts = gpd.GeoSeries(hubs["geometry"], crs=towers.crs).to_crs(pts.crs)
    hops = _Hops.of(pts, height_m, hub_pts, hubs["_h"].to_numpy(), dem=dem)
    wavelength = radio.SPEED_OF_LIGHT_M_S / (params.costs.microwave_freq_ghz * 1e9)
    limit = -params.costs.microwave_clearance * math.sqrt(2.0) * math.sqrt(wavelength)
    tree = shapely.STRtree(shapely.points(hops.hx, hops.hy))
    near_pt, near_hub = tree.query(shapely.points(hops.px, hops.py), predicate="dwithin",
                                   distance=params.costs.microwave_max_km * 1000.0)
    starts = np.searchsorted(near_pt, np.arange(n + 1))
    for i in range(n):
        idx = near_hub[starts[i]:starts[i + 1]]
        if idx.size == 0:
            continue
        d = np.hypot(hops.hx[idx] - hops.px[i], hops.hy[idx] - hops.py[i])
        idx, d = idx[d > 1.0], d[d > 1.0]  # an upgrade's own mast is not a hop
        if idx.size == 0:
            continue
        j = hops.nearest_clear(i, idx, d, limit)
        if j is not None:
            hop_km[i] = d[j] / 1000.0
            hub_id[i] = str(hubs.index[idx[j]])
    return hop_km, hub_id


def _hub_sites(towers: gpd.GeoDataFrame) -> pd.DataFrame | None:
    """Sites that can relay a hop, one row per ``site_id``: mast height ``_h`` and geometry.

    Active sites whose ``backhaul`` is fibre, microwave or not stated; a site's mast is its
    tallest cell's (30 m when none is given). None when no site qualifies.
    """
    backhaul = towers.get("backhaul", pd.Series("", index=towers.index))
    ok = (towers["status"] == "active") & backhaul.fillna("").astype(str).str.lower().isin(
        _HUB_BACKHAUL)
    hubs = towers[ok]
    if hubs.empty:
        return None
    h_height = pd.to_numeric(hubs["height_m"], errors="coerce").fillna(30.0)
    return hubs.assign(_h=h_height).groupby("site_id", sort=False).agg(
        _h=("_h", "max"), geometry=("geometry", "first"))


@dataclass(frozen=True)
class _Hops:
    """Points, hubs and the ground under them, for the line of sight of microwave hops.

    Attributes
    ----------
    px, py, height : ndarray
        The points (metric CRS, m) and their antennas' heights above ground (m).
    hx, hy, mast : ndarray
        The hubs and their masts' heights (m).
    ground : ndarray or None
        Elevations (m) on a 100 m grid over points and hubs, voids at the mean; None: flat.
    inv_coeffs : tuple of float or None
        The grid's inverse transform's coefficients.
    p_ground, h_ground : ndarray or None
        The ground under each point and each hub (m).
    """

    px: np.ndarray
    py: np.ndarray
    height: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    mast: np.ndarray
    ground: np.ndarray | None = None
    inv_coeffs: tuple | None = None
    p_ground: np.ndarray | None = None
    h_ground: np.ndarray | None = None

    @classmethod
    def of(cls, pts: gpd.GeoSeries, height_m: np.ndarray, hub_pts: gpd.GeoSeries,
           mast_m: np.ndarray, *, dem: Raster | None) -> _Hops:
        """The hops' setting; the DEM (when given and covering any hop) read once."""
        hx, hy = hub_pts.x.to_numpy(), hub_pts.y.to_numpy()
        px, py = pts.x.to_numpy(), pts.y.to_numpy()
        flat = cls(px, py, height_m, hx, hy, mast_m)
        if dem is None:
            return flat
        allx, ally = np.concatenate([px, hx]), np.concatenate([py, hy])
        grid = Grid.covering((allx.min(), ally.min(), allx.max(), ally.max()), 100.0, pts.crs,
                             pad_m=200.0)
        ground = to_grid(dem, grid)
        if np.isnan(ground).all():
            return flat  # a DEM of tiles lying elsewhere: flat ground, as without one
        ground = np.where(np.isnan(ground), np.nanmean(ground), ground)
        inv = ~grid.transform

        def height_at(x, y):
            r, c, inside = grid.index(np.atleast_1d(x), np.atleast_1d(y))
            return np.where(inside, ground[np.clip(r, 0, grid.shape[0] - 1),
                                           np.clip(c, 0, grid.shape[1] - 1)], 0.0)

        # the ground under every point and hub, once
        return cls(px, py, height_m, hx, hy, mast_m, ground=ground,
                   inv_coeffs=(inv.a, inv.b, inv.c, inv.d, inv.e, inv.f),
                   p_ground=height_at(px, py), h_ground=height_at(hx, hy))

    def nearest_clear(self, i: int, idx: np.ndarray, d: np.ndarray, limit: float
                      ) -> int | None:
        """Position in ``idx`` of the nearest hub whose hop from point ``i`` is clear.

        ``idx``: hubs in reach, ``d`` their distances (m); a hop is clear where the
        Bullington parameter is at most ``limit`` (m^0.5). Hubs are tried nearest first, a
        few at a time: a national network has hundreds within reach, and the nearest is
        usually clear. None when no hop is clear.
        """
        samples = int(np.clip(np.ceil(d.max() / 100.0), 8, 256))
        by_d = np.argsort(d, kind="stable")
        for first in range(0, by_d.size, _HUB_CHUNK):
            k = by_d[first:first + _HUB_CHUNK]
            hub = idx[k]
            if self.ground is not None:
                tx_alt = float(self.p_ground[i]) + self.height[i]
                rx_alt = self.h_ground[hub] + self.mast[hub]
                nu = nu_from_point(self.ground, self.inv_coeffs, self.px[i], self.py[i],
                                   self.hx[hub], self.hy[hub], samples, d[k], tx_alt, rx_alt)
            else:
                nu = radio.bullington_nu_root_m(d[k], np.zeros((k.size, samples)),
                                                self.height[i], self.mast[hub])
            clear = nu <= limit
            if clear.any():
                return int(k[np.flatnonzero(clear)[0]])
        return None


def site_costs(
    candidates: gpd.GeoDataFrame,
    *,
    towers: gpd.GeoDataFrame | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    roads=None,
    dem: Raster | None = None,
    no_grid: np.ndarray | None = None,
    params: PlanParams | None = None,
) -> pd.DataFrame:
    """Cost of each candidate, broken down, in the cost model's currency.

    Parameters
    ----------
    candidates : GeoDataFrame
        From :func:`~coverage.plan.generate_candidates` (``kind``, ``technology``,
        ``height_m``); satellite-terminal rows (``technology = satellite``) need
        ``terminals``.
    towers : GeoDataFrame, optional
        Existing sites: microwave hubs.
    fibre : GeoDataFrame, optional
        Fibre routes (lines) or nodes (points). Without it, fibre is not an option.
    roads : networkx.MultiDiGraph, optional
        The osmnx road graph. Without it, sites are taken to stand by a road with grid power
        and fibre runs straight to the fibre times ``fibre_route_factor``.
    dem : Raster, optional
        Terrain for the microwave line of sight.
    no_grid : ndarray of bool, optional
        True for candidates in villages without grid power: they get solar.
    params : PlanParams, optional
        The cost model is ``params.costs``.

    Returns
    -------
    DataFrame
        Indexed like ``candidates``: the :data:`BREAKDOWN` columns and ``cost`` (their sum),
        ``backhaul`` (``fibre``/``microwave``/``satellite``/``existing``/``none``),
        ``backhaul_km`` (fibre route or hop length), ``backhaul_hub`` (microwave hub site),
        ``power`` (``grid``/``solar``/``existing``/``none``), ``road_km`` (access track).
    """
    params = params or PlanParams()
    c = params.costs
    n = len(candidates)
    crs = utm_crs(candidates) if n else "EPSG:3857"
    pts = candidates.geometry.to_crs(crs)
    tech = (candidates["technology"].astype(str).to_numpy() if "technology" in candidates
            else np.where(candidates["kind"] == "upgrade", "upgrade", "macro"))
    kinds = _Kinds(upgrade=tech == "upgrade", small=tech == "small_cell",
                   sat=tech == "satellite")
    radio_site = kinds.radio_site
    out = pd.DataFrame(index=candidates.index)
    height = pd.to_numeric(candidates["height_m"], errors="coerce").fillna(
        params.new_site_height_m).to_numpy(dtype=float)
    track_km, fibre_km = _routes_km(pts, roads=roads, fibre=fibre, params=params)
    # only new radio sites need a hop (upgrades keep theirs, terminals need none)
    hop_km, hub = np.full(n, np.inf), np.full(n, None, dtype=object)
    if radio_site.any():
        hop_km[radio_site], hub[radio_site] = microwave_hubs(
            pts[radio_site], height[radio_site], towers, dem=dem, params=params)
    sat_fee = _backhaul_columns(out, kinds, fibre_km=fibre_km, hop_km=hop_km, hub=hub,
                                params=params)
    _power_columns(out, kinds, track_km=track_km, no_grid=no_grid, params=params)
    out["road_km"] = np.where(radio_site, np.round(track_km, 3), 0.0)
    out["cost_road"] = np.where(radio_site, track_km * c.road_per_km, 0.0)
    out["cost_site"], out["cost_opex"] = _site_and_opex(candidates, kinds, sat_fee,
                                                        params=params)
    for col in BREAKDOWN:
        out[col] = out[col].astype(float).round(0)
    out["cost"] = out[BREAKDOWN].sum(axis=1)
    order = [*BREAKDOWN, "cost", "backhaul", "backhaul_km", "backhaul_hub", "power",
             "road_km"]
    return out[order]


@dataclass(frozen=True)
class _Kinds:
    """Which candidates are upgrades, small cells and satellite terminals (boolean arrays)."""

    upgrade: np.ndarray
    small: np.ndarray
    sat: np.ndarray

    @property
    def radio_site(self) -> np.ndarray:
        """New radio sites (macro or small cell): they need backhaul, power and a track."""
        return ~self.upgrade & ~self.sat


def _routes_km(pts: gpd.GeoSeries, *, roads, fibre: gpd.GeoDataFrame | None,
               params: PlanParams) -> tuple[np.ndarray, np.ndarray]:
    """Access track and fibre route of each point, km (fibre: infinite without a route).

    With roads, the track to the nearest road (times ``road_winding_factor``) and the
    fibre route along the roads (:func:`road_access`); with fibre but no route, the
    straight distance times ``fibre_route_factor``.
    """
    c = params.costs
    n = len(pts)
    if roads is not None and n:
        track_m, route_m = road_access(pts, roads, fibre)
        track_km = track_m / 1000.0 * c.road_winding_factor
        fibre_km = track_km + route_m / 1000.0
    else:
        track_km = np.zeros(n)
        fibre_km = np.full(n, np.inf)
    if fibre is not None and len(fibre) and n:
        straight = shapely.distance(pts.to_numpy(), fibre.to_crs(pts.crs).geometry.union_all())
        straight_km = straight / 1000.0 * c.fibre_route_factor
        fibre_km = np.where(np.isfinite(fibre_km), fibre_km, straight_km)
    return track_km, fibre_km


def _backhaul_columns(out: pd.DataFrame, kinds: _Kinds, *, fibre_km: np.ndarray,
                      hop_km: np.ndarray, hub: np.ndarray, params: PlanParams) -> np.ndarray:
    """Set ``backhaul``, ``cost_backhaul``, ``backhaul_km`` and ``backhaul_hub`` in ``out``.

    Each new radio site takes the cheapest backhaul in present value (satellite pays a
    yearly fee): fibre, a microwave hop within reach, or satellite. Returns the satellite
    backhaul's fees in present value (0 elsewhere), for the operating cost.
    """
    c = params.costs
    ann = c.annuity_factor
    n = len(out)
    radio_site = kinds.radio_site
    options = np.vstack([
        fibre_km * c.fibre_per_km,
        np.where(hop_km <= c.microwave_max_km, c.microwave_hop, np.inf),
        np.full(n, c.satellite_backhaul + c.satellite_backhaul_per_year * ann),
    ])
    choice = np.argmin(options, axis=0)
    names = np.array(["fibre", "microwave", "satellite"])[choice]
    out["backhaul"] = np.where(kinds.upgrade, "existing", np.where(kinds.sat, "none", names))
    capex = np.choose(choice, [options[0], np.full(n, c.microwave_hop),
                               np.full(n, c.satellite_backhaul)])
    out["cost_backhaul"] = np.where(radio_site, capex, 0.0)
    km = np.choose(choice, [fibre_km, hop_km, np.zeros(n)])
    out["backhaul_km"] = np.where(radio_site & (choice < 2), np.round(km, 3), np.nan)
    out["backhaul_hub"] = np.where(radio_site & (choice == 1), hub, None)
    return np.where(radio_site & (choice == 2), c.satellite_backhaul_per_year * ann, 0.0)


def _power_columns(out: pd.DataFrame, kinds: _Kinds, *, track_km: np.ndarray,
                   no_grid: np.ndarray | None, params: PlanParams) -> None:
    """Set ``power`` and ``cost_power`` in ``out``.

    The grid along the track where the village has it, it is within ``grid_max_km`` and
    it costs no more than solar (a small cell needs ``small_cell_power_share`` of a
    tower's); otherwise solar.
    """
    c = params.costs
    n = len(out)
    power_share = np.where(kinds.small, c.small_cell_power_share, 1.0)
    grid_cost = track_km * c.grid_power_per_km
    has_grid = np.ones(n, dtype=bool) if no_grid is None else ~np.asarray(no_grid, dtype=bool)
    use_grid = has_grid & (track_km <= c.grid_max_km) & (grid_cost <= c.solar_power
                                                          * power_share)
    out["power"] = np.where(kinds.upgrade, "existing", np.where(
        kinds.sat, "none", np.where(use_grid, "grid", "solar")))
    out["cost_power"] = np.where(kinds.radio_site, np.where(use_grid, grid_cost,
                                                            c.solar_power * power_share), 0.0)


def _site_and_opex(candidates: gpd.GeoDataFrame, kinds: _Kinds, sat_fee: np.ndarray, *,
                   params: PlanParams) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's site cost and operating cost in present value.

    A tower, a small cell or an upgrade, with their shares of a tower's operating cost
    and the satellite backhaul's fee; a satellite row its ``terminals`` and their fees.
    """
    c = params.costs
    ann = c.annuity_factor
    upgrade, small, sat = kinds.upgrade, kinds.small, kinds.sat
    site = np.where(upgrade, c.upgrade_4g, np.where(small, c.small_cell, c.new_tower))
    opex_share = np.where(upgrade, c.upgrade_opex_share,
                          np.where(small, c.small_cell_opex_share, 1.0))
    opex = c.opex_per_year * ann * opex_share + sat_fee
    if sat.any():
        terminals = pd.to_numeric(candidates["terminals"], errors="coerce").to_numpy(
            dtype=float)
        site = np.where(sat, np.nan_to_num(terminals) * c.satellite_terminal, site)
        opex = np.where(sat, np.nan_to_num(terminals) * c.satellite_terminal_per_year * ann,
                        opex)
    return site, opex
