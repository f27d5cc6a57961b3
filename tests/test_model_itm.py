"""The coverage model with ``path_loss = "itm"``: the sweep against ITM on each profile."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from scipy.ndimage import gaussian_filter
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage import itm, radio
from coverage.errors import ItmWarning, ParameterError
from coverage.io import Raster
from coverage.model import Grid, itm_grid, predict_coverage, predict_reference, sample_points
from coverage.model.itm_grid import ItmRays, loss_db
from coverage.params import ModelParams, TechDefaults

CRS_UTM = CRS.from_epsg(32648)
ITM = ModelParams(path_loss="itm", environment="rural")


def one_site(x, y, *, tech="4G", height=30.0):
    return gpd.GeoDataFrame({"site_id": ["s"], "operator": ["A"], "tech": [tech],
                             "height_m": [height], "azimuth_deg": [np.nan],
                             "beamwidth_deg": [65.0], "eirp_dbm": [np.nan],
                             "freq_mhz": [np.nan], "status": ["active"]},
                            geometry=[Point(x, y)], crs=CRS_UTM)


def level_at(surfaces, x, y, key=("A", "4G")):
    return sample_points(surfaces.layers[key], surfaces.grid,
                         gpd.GeoSeries([Point(x, y)], crs=CRS_UTM))[0]


@pytest.fixture
def grid():
    return Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, CRS_UTM)


def hills(seed: int = 4, shape=(100, 120)) -> np.ndarray:
    z = gaussian_filter(np.random.default_rng(seed).normal(size=shape), 6.0)
    return 300.0 + 120.0 * z / z.std()


def test_unknown_settings_are_refused_with_the_valid_choices():
    with pytest.raises(ParameterError, match="use 'hata', 'free_space' or 'itm'"):
        ModelParams(path_loss="longley")
    with pytest.raises(ParameterError, match=r"itm_climate=8: use 1 \(equatorial\)"):
        ModelParams(path_loss="itm", itm_climate=8)
    with pytest.raises(ParameterError, match="itm_polarization = 'circular'"):
        ModelParams(itm_polarization="circular")
    with pytest.raises(ParameterError, match=r"itm_refractivity_n0 = 200.0 is out of range"):
        ModelParams(itm_refractivity_n0=200.0)


def test_without_a_dem_the_level_is_itm_area_mode_over_flat_ground(grid):
    s = predict_coverage(one_site(X0 + 1000, Y0 + 5000), grid, params=ITM)
    defaults = ITM.techs["4G"]
    for d in (1000.0, 3000.0, 6000.0):
        # the cell centre 50 m north and east of the point d east of the site
        dist = np.hypot(d + 50.0, 50.0)
        want = defaults.eirp_dbm - itm.itm_area(
            dist, 30.0, ITM.rx_height_m, defaults.freq_mhz, 0.0,
            warn=False, **ITM.itm_settings).loss_db[0]
        # and the antenna's vertical pattern, from 30 m over flat ground to the handset
        want += radio.vertical_gain_db(np.degrees(np.arctan2(30.0 - ITM.rx_height_m, dist)),
                                       ITM.downtilt_deg, ITM.vertical_beamwidth_deg)
        assert level_at(s, X0 + 1050 + d, Y0 + 5050) == pytest.approx(want, abs=0.01)


def test_itm_sees_the_ridge_shadow(grid):
    dem, transform = tiny_dem()
    site = one_site(X0 + 2500, Y0 + 5000)
    flat = predict_coverage(site, grid, dem=Raster(np.full_like(dem, 200.0, dtype=float),
                                                   transform, CRS_UTM), params=ITM)
    hilly = predict_coverage(site, grid, dem=Raster(dem.astype(float), transform, CRS_UTM),
                             params=ITM)
    behind = (X0 + 8000, Y0 + 5000)  # east of the 900 m ridge at x = 506 km
    shadow_db = level_at(flat, *behind) - np.nan_to_num(level_at(hilly, *behind), nan=-130)
    assert shadow_db > 20


def test_the_ray_machinery_is_itm_on_the_ray_profile(monkeypatch):
    """Receivers on ray samples: the sweep's path parameters are ITM's, to float32."""
    monkeypatch.setattr(itm_grid, "DELTA_H_RAY_STEP", 1)  # every ray its own table
    z = hills()
    rays, n, step = 40, 101, 100.0
    ground = z[:rays, :n]
    params = ITM
    r = ItmRays(ground, step, np.full(rays, 30.0), np.zeros(rays, int), np.full(rays, n),
                params)
    rng = np.random.default_rng(0)
    ray = rng.integers(0, rays, 200)
    j = rng.choice(itm_grid.DELTA_H_SAMPLES[n - 1 > itm_grid.DELTA_H_SAMPLES], 200)
    path = r.path_parameters(ray, j * step, ground[ray, j])
    fast, _ = loss_db(path, 1800.0, params)
    for k in range(ray.size):
        want = itm.itm_p2p(ground[ray[k], :j[k] + 1], step, 30.0, params.rx_height_m, 1800.0,
                           warn=False, **params.itm_settings)
        assert path["delta_h_m"][k] == pytest.approx(want.delta_h_m[0], rel=1e-5, abs=1e-3)
        np.testing.assert_allclose(path["h_e_m"][:, k], want.h_e_m[:, 0], rtol=1e-9)
        np.testing.assert_allclose(path["d_hzn_m"][:, k], want.d_hzn_m[:, 0], rtol=1e-5)
        assert fast[k] == pytest.approx(want.loss_db[0], abs=0.01)


def test_the_sweep_follows_itm_on_each_straight_profile():
    """predict_coverage against predict_reference (ITM on every cell's own straight line).

    ITM point-to-point is sensitive to the exact profile (a horizon moved, a branch of its
    preparation switched): the sweep reads each cell on its nearest ray, beside the line by
    up to half a ray spacing, so the two agree on most cells and differ by several dB on a
    tail that shrinks with the ray spacing.
    """
    z = hills(shape=(60, 60))
    grid = Grid.covering((X0, Y0, X0 + 6000, Y0 + 6000), 100.0, CRS_UTM)
    dem = Raster(z, grid.transform, CRS_UTM)
    site = one_site(X0 + 3050, Y0 + 3050)
    spread = {}
    for spacing in (2.0, 0.5):
        params = dataclasses.replace(ITM, max_range_km=2.0, ray_spacing_cells=spacing)
        fast = predict_coverage(site, grid, dem=dem, params=params).layers["A", "4G"]
        ref = predict_reference(site, grid, dem=dem, params=params).layers["A", "4G"]
        both = np.isfinite(fast) & np.isfinite(ref)
        assert both.sum() > 800
        diff = np.abs(fast - ref)[both]
        assert np.median(diff) < 0.5
        spread[spacing] = np.percentile(diff, 90)
    assert spread[0.5] < 4.0 and spread[0.5] < spread[2.0]


def test_out_of_range_frequency_is_an_error_and_out_of_validity_a_warning(grid):
    site = one_site(X0 + 1000, Y0 + 5000)
    techs = dict(ITM.techs)
    techs["4G"] = TechDefaults(eirp_dbm=30.0, freq_mhz=26_000.0)
    with pytest.raises(ParameterError, match="freq_mhz=26000 MHz is outside ITM's range"):
        predict_coverage(site, grid, params=dataclasses.replace(ITM, techs=techs))
    techs["4G"] = TechDefaults(eirp_dbm=30.0, freq_mhz=15_000.0)
    with pytest.warns(ItmWarning, match="frequency outside 40-10000 MHz"):
        predict_coverage(site, grid, params=dataclasses.replace(ITM, techs=techs))


def test_plan_candidates_cover_what_the_itm_model_says():
    """The plan's flat-ground shortcut gives the ITM model's cells, as it does Hata's."""
    from coverage.params import get_profile
    from coverage.plan import candidate_cells

    grid = Grid.covering((X0, Y0, X0 + 8_000, Y0 + 6_000), 200.0, CRS_UTM)
    pts = [Point(X0 + 1_000 + 2_000 * k, Y0 + 2_000 + 700 * k) for k in range(3)]
    cands = gpd.GeoDataFrame({"tech": ["4G"] * 3, "height_m": [30.0, 40.0, 15.0],
                              "eirp_dbm": [0.0, -3.0, 3.0]},
                             geometry=pts, crs=CRS_UTM)
    params = dataclasses.replace(ITM, resolution_m=200.0, terrain=False)
    profile = get_profile("vn-2025")
    got = candidate_cells(cands, grid, profile=profile, params=params)
    threshold = profile.outdoor_dbm("4G")
    for i in range(len(cands)):
        one = cands.iloc[[i]].assign(site_id="c", operator="c", status="active")
        layer = predict_coverage(one, grid, params=params).layers["c", "4G"]
        want = np.flatnonzero(np.nan_to_num(layer, nan=-999.0).ravel() >= threshold)
        assert 0 < want.size < grid.shape[0] * grid.shape[1]  # the edge lies in the grid
        np.testing.assert_array_equal(np.sort(got[i].indices), want)


def test_a_run_files_model_table_selects_itm_and_refuses_a_misspelt_setting():
    from coverage.settings import parse_tables

    params, _, _ = parse_tables({"model": {"path_loss": "itm", "itm_climate": 3,
                                           "itm_time_pct": 90.0}})
    model = params.model
    assert (model.path_loss, model.itm_climate, model.itm_settings["time_pct"]) == (
        "itm", 3, 90.0)
    with pytest.raises(ParameterError, match=r"unknown ModelParams setting.*itm_climat "
                       r"\(did you mean 'itm_climate'\?\);"):
        parse_tables({"model": {"itm_climat": 3}})


def test_levels_at_a_few_cells_are_the_whole_grids_levels_there():
    """predict_at_cells (the plan's candidates) equals predict_coverage under ITM too."""
    from coverage.model.predict import predict_at_cells
    from coverage.model.terrain import terrain_grid
    from coverage.model.transmitters import prepare_transmitters

    z = hills(shape=(60, 80))
    grid = Grid.covering((X0, Y0, X0 + 8000, Y0 + 6000), 100.0, CRS_UTM)
    dem = Raster(z, grid.transform, CRS_UTM)
    params = dataclasses.replace(ITM, max_range_km=4.0)
    site = one_site(X0 + 3050, Y0 + 2950)
    whole = predict_coverage(site, grid, dem=dem, params=params).layers["A", "4G"].ravel()
    cells = np.flatnonzero(np.isfinite(whole))
    few = np.sort(np.random.default_rng(1).choice(cells, 60, replace=False))
    tx = prepare_transmitters(site, grid.crs, params)
    terrain = terrain_grid(dem, grid, tx, params.terrain_step_m)
    (flat, level), = predict_at_cells(site, grid, [few], terrain=terrain, params=params)
    np.testing.assert_array_equal(flat, few)
    # float32 arithmetic in arrays of other lengths: equal to a few thousandths of a dB
    np.testing.assert_allclose(level, whole[few], atol=0.01)
