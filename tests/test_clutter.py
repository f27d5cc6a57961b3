"""Receiver clutter: Hata environment per cell (Degree of Urbanisation), foliage, mast height."""

from __future__ import annotations

import dataclasses
import doctest

import geopandas as gpd
import numpy as np
import pyproj
import pytest
from rasterio.transform import from_origin
from shapely.geometry import Point

from coverage import radio
from coverage.engine import Engine, predict_coverage_tiled
from coverage.io import Raster
from coverage.model import Grid, clutter, clutter_map, degree_of_urbanisation, predict_coverage
from coverage.params import ModelParams

X0, Y0 = 500_000.0, 2_500_000.0
CRS = pyproj.CRS.from_epsg(32648)


def test_docstring_examples_run():
    result = doctest.testmod(clutter)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("freq", [900.0, 1800.0, 2100.0])
@pytest.mark.parametrize("env", ["suburban", "urban"])
def test_environment_offset_is_the_difference_of_the_hata_losses(freq, env):
    d = np.array([2_000.0, 8_000.0])
    diff = (radio.hata_loss_db(d, freq, 30.0, environment=env)
            - radio.hata_loss_db(d, freq, 30.0, environment="rural"))
    assert diff == pytest.approx(radio.hata_environment_offset_db(freq, env), abs=1e-9)
    assert radio.hata_environment_offset_db(freq, "rural") == 0.0


def _people(shape=(60, 60)):
    return np.zeros(shape)


def test_degurba_cluster_needs_density_and_total():
    town = _people()
    town[10:30, 10:30] = 13.0  # 1,300/km2 over 4 km2: 5,200 people
    small = _people()
    small[10:30, 10:30] = 12.0  # same density rule, 4,800 people: not a town
    assert degree_of_urbanisation(town, 100.0)[20, 20] == 1
    assert degree_of_urbanisation(small, 100.0)[20, 20] == 0
    sparse = _people()
    sparse[:, :] = 2.0  # 200/km2 everywhere, 7,200 people: never dense enough
    assert degree_of_urbanisation(sparse, 100.0).max() == 0


def test_degurba_centre_and_edge_of_density_threshold():
    city = np.zeros((80, 80))
    city[5:75, 5:75] = 16.0  # 1,600/km2 over 49 km2: 78,400 people
    assert degree_of_urbanisation(city, 100.0)[40, 40] == 2
    # at the 1 km window's density just above / below 300 per km2 (3.0 per 100 m cell)
    above, below = np.zeros((80, 80)), np.zeros((80, 80))
    above[5:75, 5:75] = 3.02
    below[5:75, 5:75] = 2.98
    assert degree_of_urbanisation(above, 100.0)[40, 40] == 1
    assert degree_of_urbanisation(below, 100.0)[40, 40] == 0


def _site(x=X0, y=Y0):
    return gpd.GeoDataFrame({"site_id": ["s"], "tech": ["4G"], "operator": ["A"],
                             "height_m": [30.0]}, geometry=[Point(x, y)], crs=32648)


def _population_raster(grid: Grid, town_cols: slice) -> Raster:
    people = np.zeros(grid.shape, "float32")
    people[:, town_cols] = 20.0  # 2,000/km2
    return Raster(people, grid.transform, grid.crs)


def test_town_cells_lose_the_suburban_correction():
    grid = Grid(from_origin(X0 - 5_000, Y0 + 5_000, 100.0, 100.0), (100, 100), CRS)
    pop = _population_raster(grid, slice(70, 100))  # a 3 x 10 km town east of the site
    params = ModelParams()
    cl = clutter_map(grid, params, population=pop)
    assert cl.environment[50, 85] == 1 and cl.environment[50, 20] == 0
    plain = predict_coverage(_site(), grid, params=params)
    withc = predict_coverage(_site(), grid, params=params, clutter=cl)
    a, b = plain.layers["A", "4G"], withc.layers["A", "4G"]
    offset = radio.hata_environment_offset_db(1800.0, "suburban")
    assert a[50, 85] - b[50, 85] == pytest.approx(offset, abs=0.01)
    assert a[50, 20] == pytest.approx(b[50, 20], abs=1e-4)
    # a fixed environment ignores the population
    assert clutter_map(grid, ModelParams(environment="rural"), population=pop) is None


def test_tiles_see_the_same_clutter_as_the_whole_grid():
    grid = Grid(from_origin(X0 - 5_000, Y0 + 5_000, 100.0, 100.0), (100, 100), CRS)
    params = ModelParams()
    cl = clutter_map(grid, params, population=_population_raster(grid, slice(60, 90)))
    whole = predict_coverage(_site(), grid, params=params, clutter=cl)
    tiled = predict_coverage_tiled(_site(), grid, params=params, clutter=cl,
                                   engine=Engine(tile_cells=32))
    np.testing.assert_allclose(tiled.layers["A", "4G"], whole.layers["A", "4G"], atol=1e-4)


def test_tree_cover_costs_foliage_loss():
    grid = Grid(from_origin(X0 - 5_000, Y0 + 5_000, 100.0, 100.0), (100, 100), CRS)
    cover = np.full(grid.shape, 30, "uint8")  # grassland
    cover[:, 60:] = 10  # tree cover
    land = Raster(cover.astype("float32"), grid.transform, grid.crs)
    params = ModelParams()
    cl = clutter_map(grid, params, landcover=land)
    assert cl.source == "landcover" and cl.tree_share[10, 70] == 1.0
    plain = predict_coverage(_site(), grid, params=params)
    withc = predict_coverage(_site(), grid, params=params, clutter=cl)
    loss = params.foliage_loss_db + params.foliage_db_per_decade * np.log10(1800 / 900)
    diff = plain.layers["A", "4G"][50, 70] - withc.layers["A", "4G"][50, 70]
    assert diff == pytest.approx(loss, abs=0.01)
    assert plain.layers["A", "4G"][50, 30] == pytest.approx(withc.layers["A", "4G"][50, 30])


def test_mast_height_does_not_count_the_terrain_twice():
    """A hilltop mast over a valley: the effective height above the receiver adds ~10 dB."""
    grid = Grid(from_origin(X0 - 5_000, Y0 + 5_000, 100.0, 100.0), (100, 100), CRS)
    x = X0 - 5_000 + (np.arange(100) + 0.5) * 100.0
    dem = np.tile(np.where(np.abs(x - X0) < 300, 500.0, 200.0), (100, 1)).astype("float32")
    raster = Raster(dem, grid.transform, grid.crs)
    # the Hata law alone: the antennas' vertical pattern, which does see the hill, off
    base = ModelParams(vertical_beamwidth_deg=0.0)
    mast = predict_coverage(_site(), grid, dem=raster, params=base)
    old = predict_coverage(_site(), grid, dem=raster,
                           params=dataclasses.replace(base, hata_height="above_receiver"))
    flat = predict_coverage(_site(), grid,
                            params=dataclasses.replace(base, terrain=False))
    # 3 km east, in the valley 300 m below the mast's ground, in line of sight
    gain = old.layers["A", "4G"][50, 80] - mast.layers["A", "4G"][50, 80]
    assert gain > 8.0
    assert mast.layers["A", "4G"][50, 80] == pytest.approx(flat.layers["A", "4G"][50, 80],
                                                           abs=0.5)
