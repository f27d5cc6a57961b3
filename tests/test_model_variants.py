"""Several readings of the model from one sweep: each the model alone, to the bit."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage.io import Raster
from coverage.model import Grid, clutter_map, predict_coverage
from coverage.model.variants import predict_variants, shares_sweep
from coverage.params import ModelParams

UTM = CRS.from_epsg(32648)


def _world():
    """Three sites around a ridge (sectors, two operators, 2G to 4G), hills, woods, a town."""
    dem_arr, transform = tiny_dem()
    rng = np.random.default_rng(7)
    bumps = rng.normal(0.0, 25.0, dem_arr.shape).astype("float32")
    dem = Raster(dem_arr + bumps, transform, UTM)
    rows = []
    for site, (x, y, op) in enumerate([(X0 + 3000, Y0 + 5000, "A"), (X0 + 8500, Y0 + 2500, "A"),
                                        (X0 + 5000, Y0 + 8000, "B")]):
        for tech in ("2G", "3G", "4G"):
            for az in (0.0, 120.0, 240.0):
                rows.append({"site_id": f"s{site}", "operator": op, "tech": tech,
                             "azimuth_deg": az + 10 * site, "status": "active",
                             "geometry": Point(x, y)})
    towers = gpd.GeoDataFrame(rows, crs=UTM)
    # land cover (ESA WorldCover codes): woods in the east, a built-up patch, grass
    cover = np.full((100, 120), 30, np.uint8)
    cover[:, 70:] = 10
    cover[40:60, 20:40] = 50
    landcover = Raster(cover, from_origin(X0, Y0 + 10_000, 100.0, 100.0), UTM)
    return towers, dem, landcover


CHANGES = [{}, {"hata_height": "above_receiver"}, {"hata_height": "effective"},
           {"diffraction_scale": 0.5},
           {"diffraction_scale": 1.5}, {"diffraction": "los"}, {"foliage_loss_db": 0.0},
           {"foliage_loss_db": 12.0},
           {"hata_height": "above_receiver", "diffraction_scale": 0.5},
           {"hata_height": "effective", "diffraction_scale": 0.5},
           {"diffraction": "los", "foliage_loss_db": 12.0, "hata_height": "above_receiver"}]


@pytest.mark.parametrize("base", [ModelParams(resolution_m=200.0),
                                  ModelParams(resolution_m=200.0, interpolate_rays=False),
                                  ModelParams(resolution_m=200.0,
                                              diffraction="delta_bullington")])
def test_each_variant_is_the_model_alone_to_the_bit(base):
    towers, dem, landcover = _world()
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 200.0, UTM)
    clutter = clutter_map(grid, base, landcover=landcover)
    assert clutter.tree_share.max() > 0.5 and clutter.environment.max() == 1
    rng = np.random.default_rng(3)
    cells = rng.choice(grid.shape[0] * grid.shape[1], 1500, replace=False)
    models = [dataclasses.replace(base, **c) for c in CHANGES]
    together = predict_variants(towers, grid, dem=dem, variants=models, only=cells,
                                clutter=clutter)
    levels = set()
    for p, got in zip(models, together, strict=True):
        alone = predict_coverage(towers, grid, dem=dem, params=p, clutter=clutter,
                                 only=cells)
        assert got.params == p
        assert set(got.layers) == set(alone.layers) == {
            (op, t) for op in "AB" for t in ("2G", "3G", "4G")}
        for key in alone.layers:
            np.testing.assert_array_equal(got.layers[key], alone.layers[key])
            np.testing.assert_array_equal(got.distance_m[key], alone.distance_m[key])
        np.testing.assert_array_equal(got.dem, alone.dem)
        levels.add(got.layers["A", "4G"].tobytes())
    # the readings differ from each other: the comparison is not between equal models
    assert len(levels) == len(models)


def test_only_level_settings_share_a_sweep():
    p = ModelParams()
    assert shares_sweep(p, dataclasses.replace(p, diffraction_scale=0.5, foliage_loss_db=0.0))
    assert not shares_sweep(p, dataclasses.replace(p, k_factor=1.0))
    assert not shares_sweep(p, dataclasses.replace(p, path_loss="itm"))
    towers, dem, _ = _world()
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 200.0, UTM)
    with pytest.raises(ValueError, match=r"models at \[1\]"):
        predict_variants(towers, grid, dem=dem, variants=[p, dataclasses.replace(
            p, ray_spacing_cells=3.0)], only=np.arange(10))
