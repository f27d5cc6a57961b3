"""The model's structure chosen by the province's tests (blocked cross-validation)."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage.io import Raster
from coverage.model import Grid, predict_coverage, sample_points
from coverage.model.structure import choose_structure, structure_candidates
from coverage.params import ModelParams

UTM = CRS.from_epsg(32648)


def _province(truth: ModelParams, n: int = 500, seed: int = 0, ridge_m: float = 30.0):
    # a low ridge at x = 506 km: the handsets behind it still hear the site, diffracted
    dem_arr, transform = tiny_dem()
    dem = Raster(200.0 + (dem_arr - 200.0) * (ridge_m / 700.0), transform, UTM)
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, UTM)
    towers = gpd.GeoDataFrame({"site_id": ["s"], "operator": ["A"], "tech": ["4G"],
                               "height_m": [30.0], "status": ["active"]},
                              geometry=[Point(X0 + 4500, Y0 + 5000)], crs=UTM)
    true = predict_coverage(towers, grid, dem=dem, params=truth)
    rng = np.random.default_rng(seed)
    # half the tests in the open, half behind the ridge (x = 506 km)
    xs = np.r_[rng.uniform(X0 + 200, X0 + 5500, n // 2), rng.uniform(X0 + 6500, X0 + 9000,
                                                                   n - n // 2)]
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs,
                                                     rng.uniform(Y0 + 200, Y0 + 9_800, n),
                                                     strict=True)], crs=UTM)
    level = sample_points(true.layers["A", "4G"], grid, pts) + rng.normal(0, 2.0, n)
    camped = np.isfinite(level) & (level >= -121.0)
    tests = gpd.GeoDataFrame(pd.DataFrame({"tech": np.where(camped, "4G", "none"),
                                           "operator": "A",
                                           "rsrp_dbm": np.where(camped, level, np.nan)}),
                             geometry=pts.to_numpy(), crs=UTM)
    return towers, grid, dem, tests


def test_the_tests_find_the_diffraction_the_province_has():
    truth = dataclasses.replace(ModelParams(), diffraction_scale=0.5)
    towers, grid, dem, tests = _province(truth)
    chosen, choice = choose_structure(towers, grid, tests, ModelParams(), dem=dem)
    assert choice.name == "diffraction_scale=0.5"
    assert chosen.diffraction_scale == 0.5
    assert choice.cv_error_db["diffraction_scale=0.5"] < choice.cv_error_db["as given"]


def test_the_textbook_defaults_stay_when_nothing_does_better():
    towers, grid, dem, tests = _province(ModelParams(), seed=1)
    chosen, choice = choose_structure(towers, grid, tests, ModelParams(), dem=dem)
    assert choice.name == "as given"
    assert chosen == ModelParams()


def test_candidates_follow_the_inputs():
    p = ModelParams()
    bare = structure_candidates(p, dem=False, landcover=False)
    assert not any("diffraction" in k or "foliage" in k for k in bare)
    full = structure_candidates(p, dem=True, landcover=True)
    assert {"diffraction_scale=0.5", "diffraction=los", "foliage_loss_db=0"} <= set(full)
    with pytest.raises(Exception, match="diffraction_scale"):
        ModelParams(diffraction_scale=-1.0)
