"""Coverage surfaces: distance, terrain shadow, sectors, fusion with measurements."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage import radio
from coverage.errors import ParameterError
from coverage.io import Raster
from coverage.model import Grid, fuse_measurements, predict_coverage, sample_points
from coverage.model.observations import NO_SERVICE_DBM
from coverage.model.terrain import terrain_grid
from coverage.params import ModelParams

CRS_UTM = CRS.from_epsg(32648)
#: 3GPP TR 36.814's vertical pattern (the default, set explicitly)
TR36814 = ModelParams(downtilt_deg=4.0, vertical_beamwidth_deg=10.0)
#: The horizontal pattern alone
FLAT_BEAM = ModelParams(vertical_beamwidth_deg=0.0)


def one_site(x, y, *, tech="4G", azimuth=np.nan, operator="A"):
    p = gpd.GeoSeries([Point(x, y)], crs=CRS_UTM).to_crs(4326)
    return gpd.GeoDataFrame({"site_id": ["s"], "operator": [operator], "tech": [tech],
                             "height_m": [30.0], "azimuth_deg": [azimuth],
                             "beamwidth_deg": [65.0], "eirp_dbm": [np.nan],
                             "freq_mhz": [np.nan], "status": ["active"]}, geometry=p, crs=4326)


@pytest.fixture
def grid():
    return Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, CRS_UTM)


def level_at(surfaces, x, y, key=("A", "4G")):
    pts = gpd.GeoSeries([Point(x, y)], crs=CRS_UTM)
    return sample_points(surfaces.layers[key], surfaces.grid, pts)[0]


def test_level_falls_with_distance(grid):
    s = predict_coverage(one_site(X0 + 1000, Y0 + 5000), grid)
    levels = [level_at(s, X0 + 1000 + d, Y0 + 5000) for d in (300, 1000, 3000, 6000)]
    assert np.all(np.diff(levels) < 0)
    assert -45 > levels[0] > -100


def test_ridge_casts_a_shadow(grid):
    dem, transform = tiny_dem()
    raster = Raster(dem.astype(float), transform, CRS_UTM)
    site = one_site(X0 + 2500, Y0 + 5000)
    flat = predict_coverage(site, grid, dem=Raster(np.full_like(dem, 200.0, dtype=float),
                                                   transform, CRS_UTM))
    hilly = predict_coverage(site, grid, dem=raster)
    behind = (X0 + 8000, Y0 + 5000)  # east of the 900 m ridge at x = 506 km
    front = (X0 + 4000, Y0 + 5000)
    shadow_db = level_at(flat, *behind) - np.nan_to_num(level_at(hilly, *behind), nan=-130)
    assert shadow_db > 20
    assert abs(level_at(flat, *front) - level_at(hilly, *front)) < 3
    no_terrain = predict_coverage(site, grid, dem=raster, params=ModelParams(terrain=False))
    assert level_at(no_terrain, *behind) > level_at(hilly, *behind) + 20 or np.isnan(
        level_at(hilly, *behind))


def test_delta_bullington_adds_the_smooth_earth_loss_over_flat_ground(grid):
    """Over flat ground the smooth-earth surface is the ground: each cell loses the
    smooth-earth term of a 30 m mast to a 1.5 m handset (ITU-R P.452-17 §4.2.3) beyond
    Bullington, several dB from 3 km out and nothing near the mast."""
    dem, transform = tiny_dem()
    flat = Raster(np.full_like(dem, 200.0, dtype=float), transform, CRS_UTM)
    site = one_site(X0 + 1050, Y0 + 5050)
    bull = predict_coverage(site, grid, dem=flat).layers["A", "4G"]
    delta = predict_coverage(site, grid, dem=flat, params=ModelParams(
        diffraction="delta_bullington")).layers["A", "4G"]
    x, y = grid.centres()
    xy = gpd.GeoSeries([Point(X0 + 1050, Y0 + 5050)], crs=CRS_UTM).to_crs(4326).to_crs(
        CRS_UTM)
    d = np.maximum(np.hypot(x - xy.x[0], y - xy.y[0]), 50.0)
    both = np.isfinite(bull) & np.isfinite(delta)
    assert both.sum() > 5000
    freq = ModelParams().techs["4G"].freq_mhz
    term = radio.delta_bullington_excess_db(d[both], 30.0, 1.5, freq)
    np.testing.assert_allclose(bull[both] - delta[both], term, atol=2e-3)
    assert term.max() > 5.0 and np.all(term[d[both] < 1000] == 0)


def test_sector_points_its_azimuth(grid):
    s = predict_coverage(one_site(X0 + 6050, Y0 + 5050, azimuth=90.0), grid, params=FLAT_BEAM)
    east = level_at(s, X0 + 8050, Y0 + 5050)  # cell centres at equal distance
    west = level_at(s, X0 + 4050, Y0 + 5050)
    assert east - west == pytest.approx(25.0, abs=0.5)
    # with the vertical pattern, the sum of the two stays capped at the front-to-back 25 dB
    s = predict_coverage(one_site(X0 + 6050, Y0 + 5050, azimuth=90.0), grid, params=TR36814)
    assert level_at(s, X0 + 4050, Y0 + 5050) == pytest.approx(west, abs=0.01)


def test_vertical_pattern_lowers_the_cells_under_a_high_mast(grid):
    site = one_site(X0 + 6050, Y0 + 5050).assign(height_m=150.0)
    on = predict_coverage(site, grid)  # the default: 3GPP's pattern, 4 degrees of tilt
    assert (ModelParams().downtilt_deg, ModelParams().vertical_beamwidth_deg) == (4.0, 10.0)
    off = predict_coverage(site, grid, params=FLAT_BEAM)
    # 300 m out the handset is 26 degrees under the horizon, 22 under the 4-degree beam:
    # the side-lobe floor, 20 dB
    near = (X0 + 6350, Y0 + 5050)
    assert level_at(off, *near) - level_at(on, *near) == pytest.approx(20.0, abs=0.5)
    # 5 km out, 1.7 degrees under the horizon: 12 (2.3 / 10)^2 = 0.6 dB
    far = (X0 + 11050, Y0 + 5050)
    assert level_at(off, *far) - level_at(on, *far) == pytest.approx(0.63, abs=0.1)


def test_free_space_is_an_upper_bound_of_hata(grid):
    site = one_site(X0 + 6000, Y0 + 5000)
    fs = predict_coverage(site, grid, params=ModelParams(path_loss="free_space"))
    hata = predict_coverage(site, grid)
    ok = ~np.isnan(hata.layers[("A", "4G")])
    assert np.all(fs.layers[("A", "4G")][ok] >= hata.layers[("A", "4G")][ok] - 1e-3)


def test_measurements_replace_model_and_no_service_clears(grid):
    s = predict_coverage(one_site(X0 + 6000, Y0 + 5000), grid)
    # tests at cell centres (cells are 100 m from the grid's corner)
    xa, xb, y = X0 + 6550, X0 + 9050, Y0 + 5050
    pts = gpd.GeoSeries([Point(xa, y), Point(xb, y)] * 3, crs=CRS_UTM).to_crs(4326)
    m = gpd.GeoDataFrame(pd.DataFrame({
        "tech": ["4G", "none"] * 3, "operator": ["A"] * 6,
        "rsrp_dbm": [-117.0, np.nan] * 3}), geometry=pts.to_numpy(), crs=4326)
    fused = fuse_measurements(s, m, radius_m=150, params=ModelParams(krige=False,
                                                                     calibrate=False))
    assert level_at(fused, xa, y) == pytest.approx(-117.0)
    # the neighbour 100 m farther from the site keeps the model's fall between the cells
    shift = -117.0 - level_at(s, xa, y)
    assert level_at(fused, xa + 100, y) == pytest.approx(level_at(s, xa + 100, y) + shift,
                                                         abs=1e-3)
    assert level_at(fused, xa + 100, y) < -117.0
    assert np.isnan(level_at(fused, xb, y))
    assert not np.isnan(level_at(s, xb, y))  # the input is untouched
    # no service moves the neighbours under where handsets leave 4G
    beside = level_at(fused, xb + 100, y)
    assert np.isnan(beside) or beside <= NO_SERVICE_DBM["4G"] + 1e-3


def test_dem_voids_keep_their_ridge_and_a_dem_short_of_the_area_is_named(grid, caplog):
    dem, transform = tiny_dem()  # the ridge's crest at 900 m, column 60; the valleys at 200 m
    voided = dem.astype(float)
    void = (slice(45, 56), slice(56, 65))  # an SRTM-like void, 1.1 x 0.9 km over the crest
    voided[void] = np.nan
    no_sites = pd.DataFrame({"x": [], "y": []})
    with caplog.at_level("INFO", logger="coverage.model.terrain"):
        heights, _ = terrain_grid(Raster(voided, transform, CRS_UTM), grid, no_sites)
    # from the ridge around it, not at the DEM's mean (about 330 m: a gap in the ridge)
    assert heights[void][:, 60 - 56].min() > 500
    rms = np.sqrt(np.mean((heights[void] - dem[void]) ** 2))
    rms_mean = np.sqrt(np.mean((np.nanmean(voided) - dem[void]) ** 2))
    assert rms < rms_mean / 2
    assert np.array_equal(heights[~np.isnan(voided)], dem[~np.isnan(voided)])
    assert "void or nodata cell(s) filled" in caplog.text
    assert "does not cover" not in caplog.text  # a void is not a missing tile
    caplog.clear()
    west = dem[:, :40].astype(float)  # the DEM ends at x = 504 km: 8 km of the area without
    site = one_site(X0 + 2500, Y0 + 5000)
    with caplog.at_level("WARNING", logger="coverage.model.terrain"):
        predict_coverage(site, grid, dem=Raster(west, transform, CRS_UTM))
    message = caplog.text
    share = float(message.split("does not cover ")[1].split("%")[0])
    assert 30 < share < 60  # beyond the 3 km fill from its edge: 504 + 3 to 512 km
    assert "N22E105" in message  # x = 500 km is the 105 E meridian, y = 2,490 km about 22.5 N


def test_a_dem_lying_elsewhere_leaves_the_ground_flat_and_names_the_tiles(grid, caplog):
    site = one_site(X0 + 2500, Y0 + 5000)
    elsewhere = Raster(np.full((50, 50), 300.0), from_origin(700_000, 2_700_000, 100, 100),
                       CRS_UTM)
    with caplog.at_level("WARNING", logger="coverage.model.terrain"):
        got = predict_coverage(site, grid, dem=elsewhere)
    assert "does not cover 100.0%" in caplog.text and "N22E105" in caplog.text
    flat = Raster(np.zeros((200, 200)), from_origin(X0 - 5000, Y0 + 15_000, 100, 100),
                  CRS_UTM)
    want = predict_coverage(site, grid, dem=flat)
    np.testing.assert_array_equal(got.layers["A", "4G"], want.layers["A", "4G"])


def test_a_finer_terrain_step_sees_a_narrow_ridge_a_coarse_one_smooths_away(grid, caplog):
    # a 25 m DEM: valley floor at 200 m, a ridge 25 m high and 25-50 m wide at x = 505 km
    res = 25.0
    cols, rows = int(12_000 / res), int(10_000 / res)
    x = X0 + (np.arange(cols) + 0.5) * res
    transform = from_origin(X0, Y0 + 10_000, res, res)
    ridge = np.tile(200.0 + 25.0 * (np.abs(x - 505_000.0) < 15.0), (rows, 1))
    site = one_site(X0 + 3000, Y0 + 5000)  # a 30 m mast 2 km west of the ridge
    behind = (X0 + 6000, Y0 + 5000)  # 1 km past it
    levels = {}
    for label, heights, step in (("flat", np.full_like(ridge, 200.0), None),
                                 ("coarse", ridge, None), ("fine", ridge, 25.0)):
        caplog.clear()
        with caplog.at_level("INFO", logger="coverage.model.terrain"):
            levels[label] = predict_coverage(
                site, grid, dem=Raster(heights, transform, CRS_UTM),
                params=ModelParams(terrain_resolution_m=step))
        # the DEM finer than the profiles' step: the run says which setting keeps it
        assert ("terrain_resolution_m = 25" in caplog.text) == (step is None)
    at = {k: np.nan_to_num(level_at(s, *behind), nan=-130.0) for k, s in levels.items()}
    # the 100 m terrain averages the ridge to a bump of a few metres: a dB or two; on the
    # 25 m terrain it is an edge 14 m over the line of sight: Bullington, about 28 dB
    assert at["flat"] - at["coarse"] < 5
    assert at["flat"] - at["fine"] > 20
    fine = levels["fine"]
    assert fine.layers["A", "4G"].shape == grid.shape
    # the grid's ground: the terrain at each cell's centre (the valley floor here)
    assert np.allclose(fine.dem[:, :10], 200.0)
    with pytest.raises(ParameterError, match="whole fraction"):
        ModelParams(terrain_resolution_m=30.0)
