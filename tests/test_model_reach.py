"""Each transmitter's window: radii inverted from the path loss, and surfaces that do not move.

The model keeps a level only where it reaches its technology's floor; without a DEM each
transmitter is evaluated only inside the radius where that can happen (the path-loss model
inverted). These tests pin that the windows change nothing: on the demo province, the
surfaces equal a brute-force evaluation of every transmitter on every cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coverage import io, radio
from coverage.engine import Engine, predict_coverage_tiled
from coverage.model import FLOOR_DBM, predict_coverage, prepare_transmitters, useful_radius_m
from coverage.model.transmitters import reach_radii_m, useful_radii_m
from coverage.params import ModelParams
from coverage.pipeline import analysis_grid, select_towers

DATA = Path(__file__).resolve().parents[1] / "data"


def kinds():
    rng = np.random.default_rng(7)
    n = 60
    return (rng.uniform(10, 62, n), rng.choice([900.0, 1800.0, 2100.0, 3500.0], n),
            rng.choice([10.0, 25.0, 30.0, 45.0], n), rng.choice([-117.0, -120.0, -125.0], n))


def test_radii_of_arrays_are_the_scalar_radii() -> None:
    params = ModelParams()
    eirp, freq, height, floor = kinds()
    expected = [useful_radius_m(*k, params) for k in zip(eirp, freq, height, floor,
                                                            strict=True)]
    assert useful_radii_m(eirp, freq, height, floor, params).tolist() == expected


@pytest.mark.parametrize("environment", ["rural", "urban"])
def test_reach_radius_is_where_the_level_meets_the_floor(environment: str) -> None:
    params = ModelParams(environment=environment)
    eirp, freq, height, floor = kinds()
    r = reach_radii_m(eirp, freq, height, floor, params)

    def level(d, k):
        return eirp[k] - radio.hata_loss_db(d, freq[k], height[k],
                                            rx_height_m=params.rx_height_m,
                                            environment=environment)

    inner = (r > 0) & (r < params.max_range_km * 1000)
    assert inner.sum() > 10  # the draw has radii inside the range
    assert np.all(level(r[inner] - 1.0, inner) >= floor[inner] - 1e-9)  # reached up to it
    assert np.all(level(r[inner] + 0.5, inner) < floor[inner])  # ...and not beyond
    capped = r == params.max_range_km * 1000
    assert np.all(level(r[capped], capped) >= floor[capped])
    assert np.all(r <= useful_radii_m(eirp, freq, height, floor, params))


def brute_force(towers, grid, params: ModelParams) -> dict:
    """Every transmitter on every cell, no window, no pruning (float64, then float32)."""
    tx = prepare_transmitters(towers, grid.crs, params)
    x, y = grid.centres()
    out: dict = {}
    for r in tx.itertuples():
        dist = np.hypot(x - r.x, y - r.y)
        d = np.maximum(dist, grid.resolution_m / 2)
        h = params.hata_tx_height_m(r.height_m, np.zeros(d.shape), r.height_m)
        level = r.eirp_dbm - radio.hata_loss_db(d, r.freq_mhz, h,
                                                rx_height_m=params.rx_height_m,
                                                environment=params.hata_environment)
        # flat ground at 0 m: the handset rx_height_m up, the antenna height_m
        under = np.degrees(np.arctan2(r.height_m - params.rx_height_m, d))
        gain = None
        if not np.isnan(r.azimuth_deg):
            bearing = np.degrees(np.arctan2(x - r.x, y - r.y))
            gain = radio.sector_gain_db(bearing, r.azimuth_deg, r.beamwidth_deg)
        if params.downtilt_deg and params.vertical_beamwidth_deg:
            vertical = radio.vertical_gain_db(under, params.downtilt_deg,
                                              params.vertical_beamwidth_deg)
            gain = vertical if gain is None else np.maximum(gain + vertical, -25.0)
        if gain is not None:
            level = level + gain
        level = level.astype("float32")
        level[(level < FLOOR_DBM[r.tech]) | (dist > params.max_range_km * 1000)] = np.nan
        key = (str(r.operator), str(r.tech))
        out[key] = np.fmax(out.get(key, np.full(grid.shape, np.nan, "float32")), level)
    return out


@pytest.mark.skipif(not (DATA / "towers" / "sites.csv").exists(), reason="no demo data")
@pytest.mark.parametrize("tiled", [False, True])
def test_demo_surfaces_equal_every_transmitter_on_every_cell(tiled: bool) -> None:
    params = ModelParams(resolution_m=800.0, terrain=False, workers=2)
    villages = io.read_villages(DATA / "boundaries" / "villages.gpkg")
    towers = select_towers(io.read_towers(DATA / "towers" / "sites.csv"), villages, params)
    grid = analysis_grid(villages, params)
    if tiled:
        got = predict_coverage_tiled(towers, grid, params=params,
                                     engine=Engine(tile_cells=16)).layers
    else:
        got = predict_coverage(towers, grid, params=params).layers
    expected = brute_force(towers, grid, params)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        np.testing.assert_array_equal(np.isnan(got[key]), np.isnan(want), err_msg=str(key))
        ok = ~np.isnan(want)
        assert ok.sum() > 100
        np.testing.assert_allclose(got[key][ok], want[ok], atol=0.01, rtol=0,
                                   err_msg=str(key))


@pytest.mark.parametrize("downtilt_deg", [0.0, 4.0])  # without / with the vertical pattern
def test_one_low_mast_is_kept_to_the_last_cell_above_the_floor(downtilt_deg: float) -> None:
    import geopandas as gpd
    from pyproj import CRS
    from shapely.geometry import Point

    from coverage.model import Grid

    crs = CRS.from_epsg(32648)
    pts = gpd.GeoSeries([Point(530_000, 2_330_000)] * 2, crs=crs).to_crs(4326)
    towers = gpd.GeoDataFrame({"site_id": ["a", "b"], "operator": ["A", "A"],
                               "tech": ["4G", "4G"], "height_m": [25.0, 25.0],
                               "azimuth_deg": [np.nan, 90.0], "beamwidth_deg": [65.0, 65.0],
                               "eirp_dbm": [27.0, 30.0], "freq_mhz": [1800.0, 1800.0],
                               "status": ["active", "active"]}, geometry=pts, crs=4326)
    params = ModelParams(resolution_m=400.0, terrain=False, downtilt_deg=downtilt_deg)
    grid = Grid.covering((500_000, 2_300_000, 560_000, 2_360_000), 400.0, crs)
    got = predict_coverage(towers, grid, params=params).layers["A", "4G"]
    want = brute_force(towers, grid, params)["A", "4G"]
    # the edge of coverage lies inside the grid, so the window is what is tested
    assert np.isnan(want).sum() > 1000 and (~np.isnan(want)).sum() > 1000
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], atol=0.01, rtol=0)


def test_flat_candidates_cover_what_the_model_says_with_clutter() -> None:
    """The plan's flat-ground shortcut equals the model, clutter included."""
    import geopandas as gpd
    from pyproj import CRS
    from shapely.geometry import Point

    from coverage.model import Clutter, Grid
    from coverage.params import get_profile
    from coverage.plan import candidate_cells

    crs = CRS.from_epsg(32648)
    grid = Grid.covering((500_000, 2_300_000, 508_000, 2_306_000), 200.0, crs)
    rng = np.random.default_rng(3)
    clutter = Clutter(rng.integers(0, 3, grid.shape).astype("uint8"),
                      rng.uniform(0, 1, grid.shape).astype("float32"), grid)
    pts = [Point(501_000 + 2_000 * k, 2_302_000 + 700 * k) for k in range(4)]
    cands = gpd.GeoDataFrame({"tech": ["4G"] * 4, "height_m": [30.0, 40.0, 15.0, 30.0],
                              "eirp_dbm": [np.nan, np.nan, 20.0, 24.0]},
                             geometry=gpd.GeoSeries(pts, crs=crs).to_crs(4326).to_numpy(),
                             crs=4326)
    params = ModelParams(resolution_m=200.0, terrain=False)
    profile = get_profile("vn-2025")
    got = candidate_cells(cands, grid, profile=profile, params=params, clutter=clutter)
    threshold = profile.outdoor_dbm("4G")
    for i in range(len(cands)):
        one = cands.iloc[[i]].assign(site_id="c", operator="c", status="active")
        layer = predict_coverage(one, grid, params=params, clutter=clutter).layers["c", "4G"]
        want = np.flatnonzero(np.nan_to_num(layer, nan=-999.0).ravel() >= threshold)
        assert 0 < want.size < grid.shape[0] * grid.shape[1]  # the edge lies in the grid
        np.testing.assert_array_equal(np.sort(got[i].indices), want)
