"""Candidate sites and the cells each one would cover.

Candidates, in the order they are listed:

- ``upgrade``: an active 2G/3G-only site raised to the plan's technology;
- ``planned``: sites of the tower tables with ``status = planned``;
- ``user``: points of ``--candidates``;
- ``high_point``: peaks and ridge points near unserved villages that *see* the most unserved
  people (line of sight over the DEM, :func:`coverage.radio.bullington_nu_root_m`), kept at
  least ``high_point_spacing_m`` apart;
- ``village_centre``: a macro tower at a point inside each ``unavailable`` village (the most
  populous first), and a ``small_cell`` there too (lower, weaker, cheaper).

Coverage comes from the model of the classification (:func:`coverage.model.predict_coverage`
for each candidate alone, over the same terrain), evaluated only where it matters: at the
cells of people in need that a candidate's terrain-free level (an upper bound) can reach
(:func:`coverage.model.predict.predict_at_cells` sweeps only the rays and samples those
cells read). So the plan and the village list agree, and a candidate costs in proportion
to the people it may serve, not to the area of its disc.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import chain
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from ..engine import Engine, forked_map
from ..io import Raster, utm_crs
from ..model import Clutter, Grid, to_grid
from ..model.predict import predict_at_cells, warm_compiled_sweep
from ..model.terrain import DEM_FILL_M, ground_at, ground_at_cells, terrain_grid
from ..model.transmitters import terrain_free_loss_db
from ..params import ModelParams, PlanParams, Profile
from ._sight import compiled, nu_from_point

__all__ = ["candidate_cells", "generate_candidates", "high_points"]

log = logging.getLogger(__name__)

COLUMNS = ["site_id", "kind", "technology", "tech", "height_m", "eirp_dbm", "source",
           "existing_site_id", "geometry"]


def _row(site_id: str, kind: str, technology: str, tech: str, height_m: float, source: str,
         geometry, *, eirp_dbm: float = np.nan, existing: str | None = None) -> dict:
    return {"site_id": site_id, "kind": kind, "technology": technology, "tech": tech,
            "height_m": float(height_m), "eirp_dbm": eirp_dbm, "source": source,
            "existing_site_id": existing, "geometry": geometry}


def generate_candidates(
    classified: gpd.GeoDataFrame,
    towers: gpd.GeoDataFrame,
    *,
    candidates: gpd.GeoDataFrame | None = None,
    dem: Raster | None = None,
    unserved: gpd.GeoDataFrame | None = None,
    params: PlanParams | None = None,
    area: Grid | None = None,
    engine: Engine | None = None,
) -> gpd.GeoDataFrame:
    """Candidate sites for the plan, in EPSG:4326.

    Parameters
    ----------
    classified : GeoDataFrame
        Classified villages (``class``, ``population``).
    towers : GeoDataFrame
        Sites as read by :func:`coverage.io.read_towers` (``status``, ``tech``).
    candidates : GeoDataFrame, optional
        User candidate points (``site_id``, optional ``height_m``).
    dem : Raster, optional
        Elevation; enables the terrain high points.
    unserved : GeoDataFrame, optional
        Points with a ``people`` column: where the people without broadband live (cells of
        the model grid). Without it, the centres of ``unavailable`` villages weighted by
        their population stand in.
    params : PlanParams, optional
        Heights, how many candidates to generate, small cells.
    area : Grid, optional
        The analysis grid: terrain high points are sought inside it only (the sites the
        tool places stand in the area analysed; those of the input tables may not).
    engine : Engine, optional
        Where the terrain high points are scored (:func:`high_points`); in this process by
        default. The candidates do not depend on it.

    Returns
    -------
    GeoDataFrame
        One row per candidate: ``site_id``, ``kind`` (``new_site``/``upgrade``),
        ``technology`` (``macro``, ``upgrade``, ``small_cell``), ``tech``, ``height_m``,
        ``eirp_dbm`` (NaN = the technology's default), ``source`` and ``existing_site_id``.
    """
    params = params or PlanParams()
    t = towers.to_crs(4326)
    rows = _upgrade_rows(t, params) + _planned_rows(t, params)
    if candidates is not None:
        rows += _user_rows(candidates, params)
    unavailable = classified[classified["class"] == "unavailable"]
    if len(unavailable):
        rows += _village_rows(unavailable, dem=dem, unserved=unserved, params=params,
                              area=area, engine=engine)
    if not rows:
        return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in COLUMNS[:-1]},
                                geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    out = gpd.GeoDataFrame(rows, columns=COLUMNS, crs=4326)
    dup = out["site_id"].duplicated()
    if dup.any():
        log.warning("%d candidate(s) share a site_id with an earlier one and are left out: %s",
                    int(dup.sum()), ", ".join(out.loc[dup, "site_id"].head(10)))
    out = out[~dup].reset_index(drop=True)
    log.info("%d candidates: %s", len(out), out["source"].value_counts().to_dict())
    return out


def _upgrade_rows(towers: gpd.GeoDataFrame, params: PlanParams) -> list[dict]:
    """One upgrade per active site without 4G/5G, at its highest stated height (else 30 m).

    One pass over the table, not one group at a time: a national table has 100,000 cells.
    """
    active = towers[towers["status"] == "active"]
    sites = pd.DataFrame({
        "site_id": active["site_id"].to_numpy(),
        "modern": active["tech"].isin(["4G", "5G"]).to_numpy(),
        "h": pd.to_numeric(active["height_m"], errors="coerce").to_numpy(dtype=float),
        "row": np.arange(len(active))}).groupby("site_id", sort=True).agg(
        modern=("modern", "any"), h=("h", "max"), row=("row", "first"))
    geoms = active.geometry.to_numpy()
    return [_row(f"upg-{site_id}", "upgrade", "upgrade", params.tech,
                 h if pd.notna(h) else 30.0, "upgrade", geoms[row], existing=str(site_id))
            for site_id, h, row in zip(sites.index[~sites["modern"]],
                                       sites["h"][~sites["modern"]],
                                       sites["row"][~sites["modern"]], strict=True)]


def _planned_rows(towers: gpd.GeoDataFrame, params: PlanParams) -> list[dict]:
    """One new macro site per planned site of the tower tables."""
    rows = []
    for site_id, g in towers[towers["status"] == "planned"].groupby("site_id", sort=True):
        h = pd.to_numeric(g["height_m"], errors="coerce").max()
        rows.append(_row(str(site_id), "new_site", "macro", params.tech,
                         h if pd.notna(h) else params.new_site_height_m, "planned",
                         g.geometry.iloc[0]))
    return rows


def _user_rows(candidates: gpd.GeoDataFrame, params: PlanParams) -> list[dict]:
    """One new macro site per user candidate point."""
    rows = []
    for r in candidates.to_crs(4326).itertuples():
        h = pd.to_numeric(getattr(r, "height_m", np.nan), errors="coerce")
        rows.append(_row(str(r.site_id), "new_site", "macro", params.tech,
                         h if pd.notna(h) else params.new_site_height_m, "user", r.geometry))
    return rows


def _village_rows(unavailable: gpd.GeoDataFrame, *, dem: Raster | None,
                  unserved: gpd.GeoDataFrame | None, params: PlanParams, area: Grid | None,
                  engine: Engine | None) -> list[dict]:
    """Village-centre sites of the most populous unavailable villages, and high points.

    A macro site (and a small cell) at a point inside each village; with a DEM, the terrain
    high points near the unserved people (:func:`high_points`), up to three per unavailable
    village and half the generated candidates.
    """
    rows = []
    crs = utm_crs(unavailable)
    metric = unavailable.to_crs(crs)
    pop = pd.to_numeric(metric["population"], errors="coerce").fillna(0.0)
    metric = metric.assign(_pop=pop).sort_values(["_pop", "village_id"],
                                                 ascending=[False, True])
    n_high = (min(params.max_candidates // 2, 3 * len(metric))
              if dem is not None else 0)
    metric = metric.head(params.max_candidates - n_high)
    centres = metric.geometry.representative_point()
    for vid, pt in zip(metric["village_id"], centres.to_crs(4326), strict=True):
        rows.append(_row(f"vc-{vid}", "new_site", "macro", params.tech,
                         params.new_site_height_m, "village_centre", pt))
        if params.small_cells:
            rows.append(_row(f"sc-{vid}", "new_site", "small_cell", params.tech,
                             params.small_cell_height_m, "village_centre", pt,
                             eirp_dbm=params.small_cell_eirp_dbm))
    if n_high:
        if unserved is None or unserved.empty:
            unserved = gpd.GeoDataFrame({"people": pop.loc[metric.index].to_numpy()},
                                        geometry=centres.to_numpy(), crs=crs)
        pts = high_points(unserved, dem, radius_m=params.high_point_radius_m,
                          spacing_m=params.high_point_spacing_m, max_points=n_high,
                          mast_height_m=params.new_site_height_m, area=area,
                          engine=engine)
        for k, pt in enumerate(pts.to_crs(4326), start=1):
            rows.append(_row(f"hp-{k}", "new_site", "macro", params.tech,
                             params.new_site_height_m, "high_point", pt))
    return rows


def high_points(
    unserved: gpd.GeoDataFrame,
    dem: Raster,
    *,
    radius_m: float = 5000.0,
    spacing_m: float = 1500.0,
    max_points: int = 200,
    mast_height_m: float = 40.0,
    rx_height_m: float = 1.5,
    resolution_m: float = 100.0,
    profile_samples: int = 24,
    area: Grid | None = None,
    engine: Engine | None = None,
) -> gpd.GeoSeries:
    """Peaks and ridge points that see the most unserved people, in ``unserved``'s CRS.

    Pre-candidates are DEM cells within ``radius_m`` of unserved people that are the highest
    within 250 m and stand above the mean ground within 1 km (peaks and the knolls along
    ridges). Each is scored by the people it sees: targets within ``radius_m`` whose path
    from a ``mast_height_m`` mast has line of sight (Bullington edge parameter <= 0, earth
    bulge included). The best are kept greedily, at least ``spacing_m`` apart. DEM voids
    are filled from the terrain around them (up to ``DEM_FILL_M``, as in the model); a cell
    within 1 km of the DEM's edge (or of a void too wide to fill) is no pre-candidate, since
    its relief is not known.

    Parameters
    ----------
    unserved : GeoDataFrame
        Points with ``people``, in a metric CRS.
    dem : Raster
        Elevation, metres.
    area : Grid, optional
        Pre-candidates only inside this grid (the analysis grid), any metric CRS.
    engine : Engine, optional
        Where the pre-candidates are scored, in :data:`HIGH_POINT_TASKS` slices
        (:mod:`coverage.engine`; in this process by default, and always where the sight
        lines run compiled, :mod:`coverage.plan._sight`). The points do not depend on it.

    Returns
    -------
    GeoSeries
        Up to ``max_points`` points, best first.
    """
    crs = unserved.crs
    if not crs.is_projected:
        unserved = unserved.to_crs(utm_crs(unserved))
        crs = unserved.crs
    xy = shapely.get_coordinates(unserved.geometry.to_numpy())
    w = pd.to_numeric(unserved["people"], errors="coerce").fillna(0.0).to_numpy()
    xy, w = xy[w > 0], w[w > 0]
    if len(xy) == 0 or max_points < 1:
        return gpd.GeoSeries([], crs=crs)
    bounds = (*xy.min(axis=0), *xy.max(axis=0))
    grid = Grid.covering(bounds, resolution_m, crs, pad_m=radius_m)
    ground = to_grid(dem, grid)
    if np.isnan(ground).all():
        return gpd.GeoSeries([], crs=crs)
    ground = _fill_voids(ground, dem, grid, resolution_m)
    known = ~np.isnan(ground)
    ground = np.where(known, ground, np.nanmin(ground))
    res = grid.resolution_m
    local = max(3, round(500.0 / res) | 1)
    wide = max(5, round(2000.0 / res) | 1)
    peak = ground >= ndimage.maximum_filter(ground, size=local)
    relief = ground - ndimage.uniform_filter(ground, size=wide)
    x, y = grid.centres()
    tree = cKDTree(xy)
    near = peak & (relief > 5.0)
    near &= ndimage.minimum_filter(known, size=wide, mode="constant", cval=False)
    if area is not None:
        outline = gpd.GeoSeries([shapely.box(*area.bounds)], crs=area.crs).to_crs(crs).iloc[0]
        near &= shapely.contains_xy(outline, x, y)
    # the distance to the people asked only of the peaks and ridge points left
    pre = np.flatnonzero(near.ravel())
    dist, _ = tree.query(np.column_stack([x.ravel()[pre], y.ravel()[pre]]),
                         distance_upper_bound=radius_m)
    pre = pre[np.isfinite(dist)]
    pre = pre[np.argsort(-relief.ravel()[pre])][:3000]
    if pre.size == 0:
        return gpd.GeoSeries([], crs=crs)
    px, py = x.ravel()[pre], y.ravel()[pre]
    inv = ~grid.transform
    inv_coeffs = (inv.a, inv.b, inv.c, inv.d, inv.e, inv.f)
    tr, tc, inside = grid.index(xy[:, 0], xy[:, 1])
    t_ground = np.where(inside, ground[np.clip(tr, 0, grid.shape[0] - 1),
                                       np.clip(tc, 0, grid.shape[1] - 1)], np.nanmean(ground))
    # the pre-candidates scored in slices (each point alone: the same scores however they
    # are cut), through the engine unless compiled: then forking workers costs more than
    # the scores
    slices = np.array_split(np.arange(pre.size), min(HIGH_POINT_TASKS, pre.size))
    score = np.concatenate((engine if engine is not None and compiled() is None
                            else Engine()).map(
        _people_seen, slices, px=px, py=py, tx_alt=ground.ravel()[pre] + mast_height_m,
        tree=tree, xy=xy, w=w, rx_alt=t_ground + rx_height_m, ground=ground,
        inv_coeffs=inv_coeffs, radius_m=radius_m, res=res, profile_samples=profile_samples))
    chosen: list[int] = []
    for k in np.argsort(-score, kind="stable"):
        if score[k] <= 0 or len(chosen) >= max_points:
            break
        if chosen and np.min(np.hypot(px[chosen] - px[k], py[chosen] - py[k])) < spacing_m:
            continue
        chosen.append(int(k))
    log.info("%d terrain high points from %d peaks and ridge points", len(chosen), pre.size)
    return gpd.GeoSeries(shapely.points(px[chosen], py[chosen]), crs=crs)


def _fill_voids(ground: np.ndarray, dem: Raster, grid: Grid, resolution_m: float
                ) -> np.ndarray:
    """Voids inside the DEM's extent filled from the terrain around, as in the model.

    Beyond the DEM's edge (and in voids wider than ``DEM_FILL_M``) the ground stays NaN.
    """
    extent = ~np.isnan(to_grid(Raster(np.ones(dem.shape), dem.transform, dem.crs), grid))
    voids = np.isnan(ground) & extent
    if voids.any():
        from rasterio.fill import fillnodata

        filled = fillnodata(ground.astype("float32"), mask=(~np.isnan(ground)).astype("uint8"),
                            max_search_distance=max(DEM_FILL_M / resolution_m, 1.0))
        ground = np.where(voids, filled.astype("float64"), ground)
    return ground


#: Slices the terrain high points' pre-candidates are scored in (tasks of the engine).
HIGH_POINT_TASKS = 8


def _people_seen(ks: np.ndarray, *, px: np.ndarray, py: np.ndarray, tx_alt: np.ndarray,
                 tree: cKDTree, xy: np.ndarray, w: np.ndarray, rx_alt: np.ndarray,
                 ground: np.ndarray, inv_coeffs: tuple[float, ...], radius_m: float,
                 res: float, profile_samples: int) -> np.ndarray:
    """People each pre-candidate ``ks`` sees, for :func:`high_points`.

    A pre-candidate at (``px``, ``py``) with its mast top at ``tx_alt`` (m) sees the
    targets ``xy`` (``w`` people, receivers at ``rx_alt``) within ``radius_m`` whose path
    over ``ground`` (``inv_coeffs``: metres to cells) has line of sight: Bullington's edge
    parameter at most 0.
    """
    score = np.zeros(ks.size)
    for j, k in enumerate(ks):
        x0, y0 = px[k], py[k]
        idx = np.asarray(tree.query_ball_point((x0, y0), radius_m), dtype=int)
        if idx.size == 0:
            continue
        d = np.maximum(np.hypot(xy[idx, 0] - x0, xy[idx, 1] - y0), res)
        nu = nu_from_point(ground, inv_coeffs, x0, y0, xy[idx, 0], xy[idx, 1],
                           profile_samples, d, tx_alt[k], rx_alt[idx])
        score[j] = w[idx][nu <= 0].sum()
    return score


def _reach_m(eirp_dbm: float, freq_mhz: float, threshold_dbm: float, params: ModelParams
             ) -> float:
    """Distance beyond which no site of this link budget reaches the threshold (any terrain).

    The model's Hata height is at most 300 m (the mast's height, or its altitude above the
    receiver clipped to 300 m), and clutter only adds loss, so the loss at 300 m without
    clutter is the least the model can give.
    """
    d = np.geomspace(50.0, params.max_range_km * 1000.0, 512)
    loss = terrain_free_loss_db(d, freq_mhz, 300.0, params)
    below = np.flatnonzero(eirp_dbm - loss < threshold_dbm)
    return float(d[below[0]] if below.size else d[-1]) + 2 * params.resolution_m


def _bound_radius_m(eirp_dbm: np.ndarray, freq_mhz: np.ndarray, threshold_dbm: np.ndarray,
                    h_max_m: np.ndarray, params: ModelParams) -> np.ndarray:
    """Distance beyond which :func:`_may_cover` admits no cell of each site, metres.

    ``h_max_m`` is the highest Hata antenna height the site has over the cells (its
    altitude above the lowest of them, clipped as the model clips it). The loss grows with
    distance and falls with that height (beyond a few metres) and clutter only adds loss,
    so past the first of 512 distances (geometric, 50 m to ``max_range_km``) after the last
    one whose terrain-free level at ``h_max_m`` reaches the threshold (less
    :func:`_may_cover`'s 0.01 dB), with two cells of margin, no cell is admitted.
    """
    d = np.geomspace(50.0, params.max_range_km * 1000.0, 512)
    loss = terrain_free_loss_db(d[None, :], freq_mhz[:, None], h_max_m[:, None], params)
    ok = eirp_dbm[:, None] - loss >= threshold_dbm[:, None] - 0.01
    after = np.where(ok.any(axis=1), d.size - np.argmax(ok[:, ::-1], axis=1), 0)
    return d[np.minimum(after, d.size - 1)] + 2 * params.resolution_m


def _clip_box(grid: Grid, x: float, y: float, radius: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the cells within ``radius`` of a point, clipped."""
    res, left, top = grid.resolution_m, grid.transform.c, grid.transform.f
    return (max(int(np.floor((top - y - radius) / res)), 0),
            min(int(np.ceil((top - y + radius) / res)), grid.shape[0]),
            max(int(np.floor((x - radius - left) / res)), 0),
            min(int(np.ceil((x + radius - left) / res)), grid.shape[1]))


def _may_cover(idx: np.ndarray, x0, y0, nx_: np.ndarray, ny_: np.ndarray,
               n_ground: np.ndarray, site_ground_m, height_m, eirp_dbm, freq_mhz: float,
               threshold_dbm, res: float, params: ModelParams,
               clutter: Clutter | None = None, flat: np.ndarray | None = None,
               terrain_low_m: float | None = None) -> np.ndarray:
    """Positions in ``idx`` of the cells the site could cover: terrain-free level >= threshold.

    The site's position ``x0``, ``y0`` (m), ground and mast (m), EIRP (dBm) and threshold
    (dBm) are scalars, or one per cell of ``idx`` (each cell then bounded for its own
    site); ``freq_mhz`` is one frequency (MHz).

    The terrain-free level is the model's own bound before the terrain's terms: the EIRP
    less :func:`coverage.model.transmitters.terrain_free_loss_db` at the model's distance and
    antenna height (``params.hata_tx_height_m``, from the same terrain: ``site_ground_m``
    under the site, ``n_ground`` under the cells, and with the effective height its
    altitude above ``terrain_low_m``, under all the terrain, metres, the highest the
    model can give; Hata's law, free space, or free space
    less ITM's least variability) and less the receiver's clutter (``clutter`` at the
    cells' flat indices ``flat``), as the model prunes its cells. Diffraction never adds
    level and an omni antenna has no pattern loss: so a cell under the threshold here is
    under it in the model (0.01 dB of slack for the rounding), and is not modelled.
    """
    if idx.size == 0:
        return idx
    d = np.maximum(np.hypot(nx_[idx] - x0, ny_[idx] - y0), res / 2)
    h_eff = params.hata_tx_height_m(site_ground_m + height_m, n_ground[idx], height_m,
                                    terrain_low_m)
    loss = terrain_free_loss_db(d, freq_mhz, h_eff, params)
    if clutter is not None:
        loss = loss + clutter.extra_loss_db(float(freq_mhz), flat[idx], params)
    return np.flatnonzero(eirp_dbm - loss >= threshold_dbm - 0.01)


#: Slices the candidates' cells in reach are found in (tasks of the engine).
WINDOW_TASKS = 8

#: Bands of ground height the cells in need are split into for the reach bound (with the
#: Hata height above the receiver, the higher a cell, the shorter a site's reach to it).
GROUND_BANDS = 8


def _ground_bands(nx_: np.ndarray, ny_: np.ndarray, n_ground: np.ndarray, n_bands: int
                  ) -> list[tuple[np.ndarray, cKDTree, float]]:
    """The cells in need in ``n_bands`` bands of ground height, for :func:`_cells_in_reach`.

    Each band: its cells' positions (ascending) among the cells in need (centres ``nx_``,
    ``ny_``, metres), a tree of their centres and their lowest ground (``n_ground``, m).
    """
    if n_ground.size == 0:
        return []
    by_height = np.argsort(n_ground, kind="stable")
    bands = []
    for part in np.array_split(by_height, min(n_bands, n_ground.size)):
        part = np.sort(part)
        bands.append((part, cKDTree(np.column_stack([nx_[part], ny_[part]])),
                      float(n_ground[part].min())))
    return bands


def _cells_in_reach(rows: np.ndarray, *, need: np.ndarray, nx_: np.ndarray, ny_: np.ndarray,
                    n_ground: np.ndarray, bands: list[tuple[np.ndarray, cKDTree, float]],
                    cx: np.ndarray,
                    cy: np.ndarray, reach: np.ndarray, site_ground: np.ndarray,
                    height: np.ndarray, eirp: np.ndarray, freq: np.ndarray,
                    threshold: np.ndarray, res: float, params: ModelParams,
                    clutter: Clutter | None, terrain_low_m: float | None = None
                    ) -> list[np.ndarray]:
    """Cells in ``need`` each candidate of ``rows`` may cover, for :func:`candidate_cells`.

    The cells in need (centres ``nx_``, ``ny_``, ground ``n_ground``; ``bands`` of them by
    ground height, :func:`_ground_bands`) within the candidate's reach whose terrain-free
    level reaches its threshold (:func:`_may_cover`), as flat indices in ascending order.
    Of each band, only the cells within :func:`_bound_radius_m` of the site (at its height
    over the band's lowest cell) are bounded, since none beyond passes; the pairs of all
    the candidates of one frequency at once (each pair's arithmetic is the one of its
    candidate alone, the frequency a scalar as there).
    """
    if not bands or rows.size == 0:
        return [np.array([], dtype=np.int64) for _ in rows]
    xy = np.column_stack([cx[rows], cy[rows]])
    idx_parts, pos_parts = [], []
    for part, tree, lowest in bands:
        h_max = params.hata_tx_height_m(site_ground[rows] + height[rows],
                                        np.full(rows.size, lowest), height[rows],
                                        terrain_low_m)
        radius = np.minimum(reach[rows], _bound_radius_m(eirp[rows], freq[rows],
                                                         threshold[rows], h_max, params))
        found = tree.query_ball_point(xy, radius)
        sizes = np.fromiter((len(f) for f in found), dtype=np.int64, count=rows.size)
        idx_parts.append(part[np.fromiter(chain.from_iterable(found), dtype=np.int64,
                                          count=int(sizes.sum()))])
        pos_parts.append(np.repeat(np.arange(rows.size), sizes))
    idx, pos = np.concatenate(idx_parts), np.concatenate(pos_parts)
    order = np.lexsort((idx, pos))  # by candidate, then cell
    idx, pos = idx[order], pos[order]  # pos: the candidate of each pair, in rows
    owner = rows[pos]
    ok = np.zeros(idx.size, dtype=bool)
    for f in np.unique(freq[rows]):
        pair = np.flatnonzero(freq[owner] == f)
        ok[pair[_may_cover(idx[pair], cx[owner[pair]], cy[owner[pair]], nx_, ny_, n_ground,
                           site_ground[owner[pair]], height[owner[pair]],
                           eirp[owner[pair]], f, threshold[owner[pair]], res, params,
                           clutter, need, terrain_low_m)]] = True
    kept = np.cumsum(np.bincount(pos[ok], minlength=rows.size))
    return np.split(need[idx[ok]], kept[:-1])


def _cells_of_task(idx: np.ndarray, *, grid: Grid, terrain: tuple[np.ndarray, Grid] | None,
                   cells: list[np.ndarray], cx: np.ndarray, cy: np.ndarray,
                   tech: np.ndarray, eirp: np.ndarray, height: np.ndarray,
                   threshold: np.ndarray, params: ModelParams,
                   clutter: Clutter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(candidate rows, flat cells) covered, for one task of candidates ``idx``.

    The model of the classification for each candidate alone
    (:func:`coverage.model.predict.predict_at_cells`), at the candidate's cells only, over
    the whole terrain grid: the sweep places its samples in float32 metres from that grid's
    corner, so a terrain cut to the task's area (another corner) would round them
    differently and move levels by a hair.
    """
    tx = gpd.GeoDataFrame({
        "site_id": [f"c{i}" for i in idx], "operator": [f"c{i}" for i in idx],
        "tech": tech[idx], "height_m": height[idx], "azimuth_deg": np.nan,
        "beamwidth_deg": 65.0, "eirp_dbm": eirp[idx], "freq_mhz": np.nan,
        "status": "active"}, geometry=shapely.points(cx[idx], cy[idx]), crs=grid.crs)
    found = predict_at_cells(tx, grid, [cells[i] for i in idx], terrain=terrain,
                             params=params, clutter=clutter)
    rows_out, cols_out = [np.array([], dtype=np.int64)], [np.array([], dtype=np.int64)]
    for i, (flat, level) in zip(idx, found, strict=True):
        hit = flat[level >= threshold[i]]
        rows_out.append(np.full(hit.size, i, dtype=np.int64))
        cols_out.append(hit)
    return np.concatenate(rows_out), np.concatenate(cols_out)


def candidate_cells(
    cands: gpd.GeoDataFrame,
    grid: Grid,
    *,
    dem: Raster | None = None,
    profile: Profile,
    params: ModelParams | None = None,
    need: np.ndarray | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
    clutter: Clutter | None = None,
    meanwhile: Callable[[], Any] | None = None,
) -> sparse.csr_matrix:
    """Cells of ``grid`` each candidate would cover outdoors, by the classification's model.

    Each candidate's level is the one :func:`coverage.model.predict_coverage` gives it
    alone over the whole grid and the classification's terrain, evaluated only at its
    cells that matter (:func:`coverage.model.predict.predict_at_cells`: only the rays and
    samples those cells read are swept).

    Parameters
    ----------
    cands : GeoDataFrame
        Candidates (``tech``, ``height_m``, optional ``eirp_dbm``), any CRS.
    grid : Grid
        The analysis grid.
    dem : Raster, optional
        Elevation for the terrain-aware model.
    profile : Profile
        Gives the outdoor threshold of each technology.
    params : ModelParams, optional
        Model parameters.
    need : ndarray of int, optional
        Flat indices of the only cells that matter (people in need). A candidate is
        evaluated at the cells in need whose terrain-free level (an upper bound of the
        model's) reaches the threshold; candidates reaching none are not modelled. Cells
        not in need are reported uncovered. Without it, every cell within reach.
    batch_size : int, optional
        Candidates per task (nearby ones together); by default from their number.
    progress : callable, optional
        ``progress(done, total)`` in candidates, as tasks are done.
    engine : Engine, optional
        Where the tasks run (:mod:`coverage.engine`; in this process by default, in forked
        processes with ``Engine(processes=N)``). The result does not depend on it.
    clutter : Clutter, optional
        Receiver clutter of ``grid`` (:func:`coverage.model.clutter_map`), as in the
        classification's model.
    meanwhile : callable, optional
        Called once in this process while forked workers model the candidates (before
        them elsewhere): the caller's own work that does not need their coverage (the
        plan's site costs). It must not run an engine map itself.

    Returns
    -------
    scipy.sparse.csr_matrix of bool, shape (candidates, grid cells)
        True where the candidate's level reaches the outdoor threshold; cells are numbered
        row-major over ``grid.shape``.
    """
    params = params or ModelParams()
    n = len(cands)
    n_cells = grid.shape[0] * grid.shape[1]
    if n == 0:
        if meanwhile is not None:
            meanwhile()
        return sparse.csr_matrix((0, n_cells), dtype=bool)
    pts = cands.geometry.to_crs(grid.crs)
    cx, cy = pts.x.to_numpy(), pts.y.to_numpy()
    b = _link_budgets(cands, params, profile)
    left, bottom, right, top = grid.bounds
    # a site farther from the grid than its reach covers none of it
    gap_m = np.hypot(np.maximum(np.maximum(left - cx, cx - right), 0.0),
                     np.maximum(np.maximum(bottom - cy, cy - top), 0.0))
    keep = gap_m <= b["reach"]
    terrain, site_ground = None, np.zeros(n)
    if dem is not None and keep.any():
        # the terrain the classification's model sees: the grid and every site that may
        # reach it (off the grid too), voids filled as there
        terrain = terrain_grid(dem, grid, pd.DataFrame({"x": cx[keep], "y": cy[keep]}),
                               params.terrain_step_m)
        site_ground = np.where(keep, ground_at(*terrain, cx, cy), np.nan)
    if need is None:
        cells = _box_cells(grid, cx, cy, b["reach"], keep)
    else:
        cells = _needed_cells(np.asarray(need, dtype=np.int64), grid, terrain, keep,
                              cx=cx, cy=cy, site_ground=site_ground, budgets=b,
                              params=params, clutter=clutter, engine=engine)
    keep &= np.array([c.size > 0 for c in cells])
    if need is not None and not keep.all():
        log.info("%d candidate(s) cannot reach anyone in need and are not modelled",
                 int((~keep).sum()))
    tasks = _model_tasks(cx, cy, keep, batch_size)
    n_model = sum(t.size for t in tasks)
    # the whole terrain, shared: forked workers see it without a copy, Dask scatters it once
    shared = {"grid": grid, "terrain": terrain, "cells": cells, "cx": cx, "cy": cy,
              "tech": b["tech"], "eirp": b["eirp"], "height": b["height"],
              "threshold": b["threshold"], "params": params, "clutter": clutter}
    parts = _run_tasks(tasks, shared, engine=engine or Engine(), meanwhile=meanwhile)
    rows_out, cols_out = [np.array([], dtype=np.int64)], [np.array([], dtype=np.int64)]
    done = 0
    for idx, (r_part, c_part) in zip(tasks, parts, strict=True):
        rows_out.append(r_part)
        cols_out.append(c_part)
        done += idx.size
        if progress is not None:
            progress(done, n_model)
    r, c = np.concatenate(rows_out), np.concatenate(cols_out)
    log.info("modelled %d candidates in %d tasks", n_model, len(tasks))
    return sparse.csr_matrix((np.ones(r.size, dtype=bool), (r, c)), shape=(n, n_cells))


def _link_budgets(cands: gpd.GeoDataFrame, params: ModelParams, profile: Profile
                  ) -> dict[str, np.ndarray]:
    """Each candidate's technology, EIRP, height, frequency, threshold and reach.

    ``eirp`` and ``height`` are as given (NaN = the technology's default), ``eirp_used`` and
    ``height_used`` with the defaults filled in; ``reach`` (m) is :func:`_reach_m`.
    """
    n = len(cands)
    tech = cands["tech"].astype(str).to_numpy()
    eirp = (pd.to_numeric(cands["eirp_dbm"], errors="coerce").to_numpy(dtype=float)
            if "eirp_dbm" in cands.columns else np.full(n, np.nan))
    eirp_used = np.where(np.isnan(eirp), [params.techs[t].eirp_dbm for t in tech], eirp)
    freq = np.array([params.techs[t].freq_mhz for t in tech])
    threshold = np.array([profile.outdoor_dbm(t) for t in tech])
    # one reach per link budget (a handful of kinds among hundreds of candidates)
    budgets = {b: _reach_m(*b, params) for b in zip(eirp_used, freq, threshold, strict=True)}
    reach = np.array([budgets[b] for b in zip(eirp_used, freq, threshold, strict=True)])
    height = cands["height_m"].to_numpy(dtype=float)
    height_used = np.where(np.isnan(height), [params.techs[t].height_m for t in tech], height)
    return {"tech": tech, "eirp": eirp, "eirp_used": eirp_used, "freq": freq,
            "threshold": threshold, "reach": reach, "height": height,
            "height_used": height_used}


def _box_cells(grid: Grid, cx: np.ndarray, cy: np.ndarray, reach: np.ndarray,
               keep: np.ndarray) -> list[np.ndarray]:
    """Every cell of ``grid`` in the box of each kept candidate's reach (flat indices)."""
    cells: list[np.ndarray] = [np.array([], dtype=np.int64)] * len(cx)
    for i in np.flatnonzero(keep):
        r0, r1, c0, c1 = _clip_box(grid, cx[i], cy[i], reach[i])
        rr, cc = np.mgrid[r0:max(r1, r0), c0:max(c1, c0)]
        cells[i] = (rr * grid.shape[1] + cc).ravel().astype(np.int64)
    return cells


def _needed_cells(need: np.ndarray, grid: Grid, terrain: tuple[np.ndarray, Grid] | None,
                  keep: np.ndarray, *, cx: np.ndarray, cy: np.ndarray,
                  site_ground: np.ndarray, budgets: dict[str, np.ndarray],
                  params: ModelParams, clutter: Clutter | None,
                  engine: Engine | None) -> list[np.ndarray]:
    """The cells in need each kept candidate's terrain-free level reaches (flat indices).

    Computed in slices: through the engine (its forked workers when local; with the Hata
    height above the receiver a site's terrain-free reach spans most of a small area,
    seconds of bounds on the demo).
    """
    cells: list[np.ndarray] = [np.array([], dtype=np.int64)] * len(cx)
    res = grid.resolution_m
    left, _, _, top = grid.bounds
    need = np.unique(need)
    nr, nc = np.divmod(need, grid.shape[1])
    nx_, ny_ = left + (nc + 0.5) * res, top - (nr + 0.5) * res
    n_ground = (ground_at_cells(*terrain, grid, need) if terrain is not None
                else np.zeros(need.size))
    bands = _ground_bands(nx_, ny_, n_ground,
                          GROUND_BANDS if params.hata_height == "above_receiver" else 1)
    rows = np.flatnonzero(keep)
    slices = np.array_split(rows, min(WINDOW_TASKS, rows.size)) if rows.size else []
    reach_kw = dict(need=need, nx_=nx_, ny_=ny_, n_ground=n_ground, bands=bands, cx=cx,
                    cy=cy, reach=budgets["reach"], site_ground=site_ground,
                    height=budgets["height_used"], eirp=budgets["eirp_used"],
                    freq=budgets["freq"], threshold=budgets["threshold"], res=res,
                    params=params, clutter=clutter.on(grid) if clutter is not None else None,
                    terrain_low_m=(float(np.min(terrain[0])) - 1.0
                                   if terrain is not None else None))
    if (engine is not None and engine.is_local and engine.processes > 1
            and len(slices) > 1):
        got = forked_map(_cells_in_reach, slices, engine.processes, reach_kw)
    else:
        got = (engine if engine is not None and not engine.is_local
               else Engine()).map(_cells_in_reach, slices, **reach_kw)
    for part, found in zip(slices, got, strict=True):
        for i, c in zip(part, found, strict=True):
            cells[i] = c
    return cells


def _model_tasks(cx: np.ndarray, cy: np.ndarray, keep: np.ndarray, batch_size: int | None
                 ) -> list[np.ndarray]:
    """Tasks of nearby kept candidates: sorted by 5 km tiles, then cut."""
    tile = np.floor(cx / 5_000.0) * 1e6 + np.floor(cy / 5_000.0)
    order = np.lexsort((cy, cx, tile))
    order = order[keep[order]]
    n_model = order.size
    per_task = batch_size or max(16, min(256, -(-n_model // 64)))
    return [order[k:k + per_task] for k in range(0, n_model, per_task)]


def _run_tasks(tasks: list[np.ndarray], shared: dict, *, engine: Engine,
               meanwhile: Callable[[], Any] | None):
    """The tasks' (rows, cells) covered, in forked workers, the engine or this process.

    ``meanwhile`` runs in this process while forked workers model, else before the tasks.
    """
    if engine.is_local and engine.processes > 1 and len(tasks) > 1:
        if shared["terrain"] is not None:
            warm_compiled_sweep()  # once in this process, not once in each worker
        return forked_map(_cells_of_task, tasks, engine.processes, shared,
                          meanwhile=meanwhile)
    if meanwhile is not None:
        meanwhile()
    return (engine.map(_cells_of_task, tasks, **shared) if not engine.is_local
            else (_cells_of_task(task, **shared) for task in tasks))
