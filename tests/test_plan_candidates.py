"""Candidates' coverage on provinces whose sites, terrain and villages are not where expected.

:func:`coverage.plan.candidate_cells` cuts each candidate's window to its site and the cells
in need it may reach. Sites off the analysis grid (towers beyond the villages, terrain high
points past the margin), sites on its last row or column, DEM voids and grids of any shape
must give what the model gives for that candidate alone, at the cells in need.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from coverage.io import Raster
from coverage.model import Grid, predict_coverage
from coverage.params import ModelParams, get_profile
from coverage.plan import candidate_cells

CRS_UTM = CRS.from_epsg(32648)
LEFT, TOP, RES = 500_000.0, 2_500_000.0, 100.0


def _grid(rows: int, cols: int) -> Grid:
    return Grid(from_origin(LEFT, TOP, RES, RES), (rows, cols), CRS_UTM)


def _sites(grid: Grid) -> gpd.GeoDataFrame:
    """On each edge and corner of the grid, just off it, and far beyond it."""
    left, bottom, right, top = grid.bounds
    pts = [Point(right - 10, bottom + 10), Point(right + 300, bottom - 300),
           Point(left - 4_000, top + 4_000), Point(right + 60_000, top),
           Point(0.5 * (left + right), bottom + 1), Point(right - 1, 0.5 * (top + bottom)),
           Point(left + 1, top - 1), Point(right + 2_500, 0.5 * (top + bottom))]
    return gpd.GeoDataFrame({"tech": ["4G"] * len(pts), "height_m": 30.0},
                            geometry=gpd.GeoSeries(pts, crs=CRS_UTM).to_crs(4326).to_numpy(),
                            crs=4326)


def _hilly_dem(grid: Grid, *, voids: bool) -> Raster:
    """Rolling hills over the grid and 5 km around it, optionally with a block of voids."""
    pad = 50
    rows, cols = grid.shape[0] + 2 * pad, grid.shape[1] + 2 * pad
    x = np.arange(cols) * RES
    y = np.arange(rows)[:, None] * RES
    z = (300.0 + 120.0 * np.sin(x / 1_700.0) * np.cos(y / 2_300.0)).astype("float32")
    if voids:
        z[pad + 3:pad + 9, pad + 5:pad + 14] = np.nan
    return Raster(z, from_origin(LEFT - pad * RES, TOP + pad * RES, RES, RES), CRS_UTM)


def _model_cells(cands: gpd.GeoDataFrame, i: int, grid: Grid, dem: Raster | None,
                 params: ModelParams) -> np.ndarray:
    """Flat cells the model alone says candidate ``i`` covers outdoors."""
    one = cands.iloc[[i]].assign(site_id="c", operator="c", status="active")
    layer = predict_coverage(one, grid, dem=dem, params=params).layers.get(("c", "4G"))
    if layer is None:
        return np.array([], dtype=np.int64)
    threshold = get_profile("vn-2025").outdoor_dbm("4G")
    return np.flatnonzero(np.nan_to_num(layer, nan=-999.0).ravel() >= threshold)


@pytest.mark.parametrize(("shape", "terrain", "hata_height"), [
    *((shape, terrain, "mast") for shape in [(30, 40), (41, 17), (1, 60), (60, 1)]
      for terrain in ["flat", "hills", "voids"]),
    ((30, 40), "hills", "effective"), ((41, 17), "voids", "effective")])
def test_cells_in_need_are_what_the_model_gives_wherever_the_sites_stand(shape, terrain,
                                                                         hata_height):
    grid = _grid(*shape)
    dem = None if terrain == "flat" else _hilly_dem(grid, voids=terrain == "voids")
    params = ModelParams(resolution_m=RES, terrain=dem is not None, hata_height=hata_height)
    cands = _sites(grid)
    n_cells = shape[0] * shape[1]
    # people in need along the last row and column, and a few inside
    rows, cols = np.indices(shape)
    edge = (rows == shape[0] - 1) | (cols == shape[1] - 1) | ((rows + cols) % 7 == 0)
    need = np.flatnonzero(edge.ravel())
    got = candidate_cells(cands, grid, dem=dem, profile=get_profile("vn-2025"),
                          params=params, need=need)
    assert got.shape == (len(cands), n_cells)
    reached = 0
    for i in range(len(cands)):
        want = np.intersect1d(_model_cells(cands, i, grid, dem, params), need)
        np.testing.assert_array_equal(np.intersect1d(got[i].indices, need), want,
                                      err_msg=f"candidate {i}")
        reached += want.size > 0
    assert reached >= 5  # most sites reach the grid; the one 60 km off does not


def test_cells_in_need_are_the_same_on_two_forked_processes():
    from coverage.engine import Engine

    grid = _grid(30, 40)
    dem = _hilly_dem(grid, voids=True)
    cands = _sites(grid)
    need = np.flatnonzero((np.add(*np.indices(grid.shape)) % 3 == 0).ravel())
    kw = {"dem": dem, "profile": get_profile("vn-2025"), "params": ModelParams(resolution_m=RES),
          "need": need, "batch_size": 2}
    here = candidate_cells(cands, grid, **kw)
    forked = candidate_cells(cands, grid, engine=Engine(processes=2), **kw)
    assert here.nnz > 100
    assert (forked != here).nnz == 0


@pytest.mark.parametrize("shape", [(30, 40), (1, 60)])
def test_every_cell_without_a_need_list_is_what_the_model_gives(shape):
    grid = _grid(*shape)
    params = ModelParams(resolution_m=RES, terrain=False)
    cands = _sites(grid)
    got = candidate_cells(cands, grid, profile=get_profile("vn-2025"), params=params)
    assert got.shape == (len(cands), shape[0] * shape[1])
    for i in range(len(cands)):
        np.testing.assert_array_equal(np.sort(got[i].indices),
                                      _model_cells(cands, i, grid, None, params),
                                      err_msg=f"candidate {i}")
    assert got[3].nnz == 0  # 60 km off: out of reach


@pytest.mark.parametrize("shape", [(30, 40), (1, 60)])
def test_sites_off_the_grid_over_terrain_with_voids_give_cells_of_the_grid(shape):
    grid = _grid(*shape)
    got = candidate_cells(_sites(grid), grid, dem=_hilly_dem(grid, voids=True),
                          profile=get_profile("vn-2025"), params=ModelParams(resolution_m=RES),
                          need=np.arange(shape[0] * shape[1]))
    assert got.shape == (8, shape[0] * shape[1])
    assert got[[0, 1, 4, 5, 6]].getnnz(axis=1).min() > 0


def _people(x0: float, x1: float, y0: float, y1: float, step: float = 500.0
            ) -> gpd.GeoDataFrame:
    x, y = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step))
    return gpd.GeoDataFrame({"people": np.full(x.size, 10.0)},
                            geometry=gpd.points_from_xy(x.ravel(), y.ravel()), crs=CRS_UTM)


def _dem(z: np.ndarray, left: float, top: float) -> Raster:
    return Raster(z.astype("float64"), from_origin(left, top, RES, RES), CRS_UTM)


def test_high_points_stay_in_the_analysis_area():
    from coverage.plan import high_points

    area = _grid(60, 60)  # 6 x 6 km
    left, bottom, right, top = area.bounds
    # people in the area; a lone 400 m hill 4 km east of it overlooks them all
    x = left - 5_000 + (np.arange(200) + 0.5) * RES
    y = top + 5_000 - (np.arange(160)[:, None] + 0.5) * RES
    z = 100.0 + 400.0 * np.exp(-((x - (right + 4_000)) ** 2 + (y - 2_497_000) ** 2) / 800.0**2)
    dem = _dem(z + 20.0 * np.sin(x / 700.0) * np.cos(y / 900.0), left - 5_000, top + 5_000)
    people = _people(left + 500, right - 500, bottom + 500, top - 500)
    free = high_points(people, dem, max_points=5)
    assert (free.x > right).any()  # the hill outside is the best point without the area
    kept = high_points(people, dem, max_points=5, area=area)
    assert len(kept) and kept.x.between(left, right).all() and kept.y.between(bottom, top).all()


def test_high_points_are_not_drawn_along_the_dem_edge_and_survive_voids():
    from coverage.plan import high_points

    area = _grid(80, 80)  # 8 x 8 km
    left, bottom, right, top = area.bounds
    people = _people(left + 500, right - 500, bottom + 500, top - 500)
    # ground rising east to 500 m, with one 150 m knoll; the DEM stops at x = left + 6 km
    x = left - 5_000 + (np.arange(110) + 0.5) * RES
    y = top + 5_000 - (np.arange(180)[:, None] + 0.5) * RES
    knoll = (left + 3_000, top - 4_000)
    z = (100.0 + 0.04 * (x - x[0]) + 0 * y
         + 150.0 * np.exp(-((x - knoll[0]) ** 2 + (y - knoll[1]) ** 2) / 400.0**2))
    z[y[:, 0].size // 2 - 2:y[:, 0].size // 2 + 3, 78:83] = np.nan  # a void at the crest
    edge = x[-1] + RES / 2
    pts = high_points(people, _dem(z, left - 5_000, top + 5_000), max_points=10, area=area)
    assert len(pts)
    assert (pts.x < edge - 1_000).all()  # none on the cliff the missing DEM would make
    nearest = np.hypot(pts.x - knoll[0], pts.y - knoll[1]).min()
    assert nearest < 300  # the knoll under the void is still found


def test_high_points_scored_on_two_forked_processes_are_the_same_points():
    from coverage.engine import Engine
    from coverage.plan import high_points

    area = _grid(60, 60)
    left, bottom, right, top = area.bounds
    # rolling hills over the people: many peaks, scored in slices by two workers
    x = left - 5_000 + (np.arange(160) + 0.5) * RES
    y = top + 5_000 - (np.arange(160)[:, None] + 0.5) * RES
    z = 200.0 + 60.0 * np.sin(x / 450.0) * np.cos(y / 650.0) + 0.01 * (x - x[0])
    dem = _dem(z, left - 5_000, top + 5_000)
    people = _people(left + 500, right - 500, bottom + 500, top - 500, step=300.0)
    here = high_points(people, dem, max_points=12, area=area)
    forked = high_points(people, dem, max_points=12, area=area, engine=Engine(processes=2))
    assert len(here) >= 5  # 1.5 km apart in 6 km
    np.testing.assert_array_equal(forked.x, here.x)
    np.testing.assert_array_equal(forked.y, here.y)


@pytest.mark.parametrize("hata_height", ["above_receiver", "mast", "effective"])
@pytest.mark.parametrize("with_clutter", [False, True])
@pytest.mark.parametrize("n_bands", [1, 8])
def test_cells_in_reach_are_those_each_site_alone_may_cover(hata_height, with_clutter,
                                                            n_bands):
    """The cells bounded within each site's radius (one per band of the cells' ground),
    all pairs at once, are the cells the terrain-free bound admits when every cell in need
    is tried for each site alone: no band's radius drops a cell the bound keeps."""
    from coverage.model import Clutter
    from coverage.plan.candidates import _cells_in_reach, _ground_bands, _may_cover, _reach_m

    rng = np.random.default_rng(3)
    grid = _grid(90, 130)
    params = ModelParams(hata_height=hata_height)
    need = np.sort(rng.choice(grid.shape[0] * grid.shape[1], 3_000, replace=False))
    nr, nc = np.divmod(need, grid.shape[1])
    nx_, ny_ = LEFT + (nc + 0.5) * RES, TOP - (nr + 0.5) * RES
    n_ground = rng.uniform(100.0, 600.0, need.size)
    clutter = (Clutter(rng.integers(0, 3, grid.shape).astype("uint8"),
                       rng.uniform(0, 1, grid.shape).astype("float32"), grid)
               if with_clutter else None)
    n = 40
    cx = LEFT + rng.uniform(-3_000, 16_000, n)
    cy = TOP - rng.uniform(-3_000, 12_000, n)
    site_ground = rng.uniform(50.0, 900.0, n)  # valleys and hill tops
    height = rng.choice([10.0, 30.0, 40.0], n)
    tech = rng.choice(["4G", "3G"], n)
    eirp = np.array([params.techs[t].eirp_dbm for t in tech]) - rng.choice([0.0, 20.0], n)
    freq = np.array([params.techs[t].freq_mhz for t in tech])
    threshold = np.full(n, -105.0)
    reach = np.array([_reach_m(e, f, th, params)
                      for e, f, th in zip(eirp, freq, threshold, strict=True)])
    rows = np.arange(n)
    got = _cells_in_reach(rows, need=need, nx_=nx_, ny_=ny_, n_ground=n_ground,
                          bands=_ground_bands(nx_, ny_, n_ground, n_bands), cx=cx, cy=cy,
                          reach=reach, site_ground=site_ground, height=height, eirp=eirp,
                          freq=freq, threshold=threshold, res=RES, params=params,
                          clutter=clutter, terrain_low_m=40.0)
    every = np.arange(need.size)
    sizes = []
    for i in rows:
        ok = _may_cover(every, cx[i], cy[i], nx_, ny_, n_ground, site_ground[i], height[i],
                        eirp[i], freq[i], threshold[i], RES, params, clutter, need, 40.0)
        np.testing.assert_array_equal(got[i], need[ok])
        sizes.append(ok.size)
    # sites reaching few cells in need and sites reaching most
    assert min(sizes) < 0.2 * need.size and max(sizes) > 0.5 * need.size
