"""Fusion: calibration to measurements, dead zones kriged in, aggregation, GeoTIFF out."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import CRS
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage.io import Raster
from coverage.model import (
    Grid,
    aggregate_measurements,
    cross_validate,
    fuse_measurements,
    predict_coverage,
    predict_reference,
    sample_points,
)
from coverage.params import ModelParams

CRS_UTM = CRS.from_epsg(32648)


def site(x, y, *, tech="4G", operator="A"):
    return gpd.GeoDataFrame({"site_id": ["s"], "operator": [operator], "tech": [tech],
                             "height_m": [30.0], "status": ["active"]},
                            geometry=[Point(x, y)], crs=CRS_UTM)


def measurements_at(xy, **cols):
    pts = gpd.GeoSeries([Point(x, y) for x, y in xy], crs=CRS_UTM).to_crs(4326)
    n = len(xy)
    base = {"tech": ["4G"] * n, "operator": ["A"] * n, "rsrp_dbm": [np.nan] * n}
    base.update(cols)
    return gpd.GeoDataFrame(pd.DataFrame(base), geometry=pts.to_numpy(), crs=4326)


@pytest.fixture
def grid():
    return Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, CRS_UTM)


def at(surfaces, x, y, key=("A", "4G")):
    return sample_points(surfaces.layers[key], surfaces.grid,
                         gpd.GeoSeries([Point(x, y)], crs=CRS_UTM))[0]


def test_calibration_recovers_intercept_and_slope(grid):
    s = predict_coverage(site(X0 + 500, Y0 + 500), grid)
    rng = np.random.default_rng(0)
    # distances log-uniform over 0.3..9 km, bearings in the grid's quadrant
    d_km = 10 ** rng.uniform(-0.5, 0.95, 300)
    theta = rng.uniform(0.1, 1.4, 300)
    xy = np.column_stack([X0 + 500 + 1000 * d_km * np.sin(theta),
                          Y0 + 500 + 1000 * d_km * np.cos(theta) * 0.9])
    pred = sample_points(s.layers["A", "4G"], grid, gpd.GeoSeries(
        [Point(*p) for p in xy], crs=CRS_UTM))
    d_km = np.hypot(xy[:, 0] - X0 - 500, xy[:, 1] - Y0 - 500) / 1000
    truth = pred - 9.0 + 6.0 * np.log10(d_km) + rng.normal(0, 2.0, 300)
    m = measurements_at(xy, rsrp_dbm=truth)
    # the fit itself: every stage applied whole (their selection: test_fusion_stages_*)
    fused = fuse_measurements(s, m, radius_m=0.0,
                              params=ModelParams(krige=False, select_fusion=False))
    a, b, n = fused.calibration["A", "4G"][:3]
    assert n == 300
    assert a == pytest.approx(-9.0, abs=0.8)
    assert b == pytest.approx(6.0, abs=1.5)
    # the whole layer moves, far from any test too
    far = (X0 + 500 + 3000, Y0 + 500)
    assert at(fused, *far) - at(s, *far) == pytest.approx(-9.0 + 6.0 * np.log10(3.0), abs=1.0)
    cv = cross_validate(s, m, params=ModelParams(cv_block_m=1000.0)).set_index("stage")
    assert cv.loc["model", "rmse_db"] > 7.0
    assert cv.loc["calibrated", "rmse_db"] < 3.0
    assert abs(cv.loc["calibrated", "bias_db"]) < 1.0
    assert cv.loc["model", "n"] == 300


def test_measured_dead_zone_in_a_valley_is_dead_and_the_correction_fades(grid):
    s = predict_coverage(site(X0 + 3000, Y0 + 5000), grid)
    valley = (X0 + 7000, Y0 + 5000)
    assert at(s, *valley) > -105  # the model thinks the valley is covered
    rng = np.random.default_rng(2)
    dead = [(valley[0] + dx, valley[1] + dy) for dx, dy in rng.normal(0, 150, (25, 2))]
    # elsewhere, tests agree with the model
    ok_xy = [(X0 + 3000 + dx, Y0 + 2000 + dy) for dx, dy in rng.normal(0, 400, (40, 2))]
    ok_level = sample_points(s.layers["A", "4G"], grid,
                             gpd.GeoSeries([Point(*p) for p in ok_xy], crs=CRS_UTM))
    m = pd.concat([measurements_at(dead, tech=["none"] * 25),
                   measurements_at(ok_xy, rsrp_dbm=ok_level)], ignore_index=True)
    # kriging alone: no cell override, no calibration (which the 25 censored tests would
    # pull down everywhere: a layer-wide intercept cannot tell a valley from the layer)
    krige_only = dataclasses.replace(ModelParams(), calibrate=False)
    fused = fuse_measurements(s, m, radius_m=0.0, params=krige_only)
    after = at(fused, *valley)
    assert np.isnan(after) or after < -110  # dead on the map
    # 300 m away still much weakened, 7 km away untouched
    near = at(fused, valley[0] + 300, valley[1])
    assert np.isnan(near) or near < at(s, valley[0] + 300, valley[1]) - 8
    away = (X0 + 1000, Y0 + 9500)  # 7 km from the dead zone, 7.5 km from the other tests
    assert at(fused, *away) == pytest.approx(at(s, *away), abs=0.5)
    off = dataclasses.replace(ModelParams(), krige=False, calibrate=False)
    # without kriging only the cells holding the no-service tests are cleared
    plain = fuse_measurements(s, m, radius_m=0.0, params=off)
    assert np.isnan(at(plain, *valley))
    assert at(plain, valley[0] + 300, valley[1]) == at(s, valley[0] + 300, valley[1])


def test_aggregate_measurements_weights_tests_and_tiles(grid):
    x, y = X0 + 5050, Y0 + 5050
    m = measurements_at([(x, y)] * 4, tech=["4G", "4G", "none", None],
                        download_mbps=[10, 30, np.nan, 2.0], weight=[1, 1, 1, 8])
    agg = aggregate_measurements(m, grid)
    r, c, _ = grid.index(np.array([x]), np.array([y]))
    assert agg["tests"][r[0], c[0]] == 11
    assert agg["download_mbps"][r[0], c[0]] == pytest.approx((10 + 30 + 16) / 10)
    assert agg["no_service_share"][r[0], c[0]] == pytest.approx(1 / 3)  # tiles: tech unknown
    assert agg["tests"].sum() == 11 and np.isnan(agg["download_mbps"][0, 0])


def test_geotiff_out_keeps_crs_transform_and_bands(grid, tmp_path):
    s = predict_coverage(pd.concat([site(X0 + 3000, Y0 + 5000),
                                    site(X0 + 8000, Y0 + 5000, tech="2G", operator="B")]),
                         grid)
    fused = fuse_measurements(s, measurements_at([(X0 + 3100, Y0 + 5000)], rsrp_dbm=[-80.0]))
    path = fused.to_geotiff(tmp_path / "cov.tif")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32648
        assert src.transform == grid.transform
        assert src.descriptions[:3] == ("best_broadband_dbm", "A:4G_dbm", "B:2G_dbm")
        assert "measured:tests" in src.descriptions
        np.testing.assert_array_equal(src.read(2), fused.layers["A", "4G"])
    with pytest.raises(FileExistsError):
        fused.to_geotiff(path)


def _rough_valley() -> tuple[Raster, Grid, gpd.GeoDataFrame]:
    """The tiny valley with hills across its ridge, a grid over it and one site in it."""
    dem, transform = tiny_dem()
    xx = np.arange(dem.shape[1])[None, :]
    yy = np.arange(dem.shape[0])[:, None]
    dem = dem + 80.0 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    raster = Raster(dem.astype(float), transform, CRS_UTM)
    grid = Grid.covering((X0 + 1000, Y0 + 2000, X0 + 9000, Y0 + 8000), 100.0, CRS_UTM)
    return raster, grid, site(X0 + 3050, Y0 + 5050)


@pytest.mark.parametrize(("terrain_m", "diffraction"), [
    (None, "bullington"), (50.0, "bullington"), (None, "delta_bullington")])
def test_fast_model_agrees_with_the_plain_reference(terrain_m, diffraction):
    raster, grid, towers = _rough_valley()
    params = ModelParams(max_range_km=5.0, ray_spacing_cells=1.0,
                         terrain_resolution_m=terrain_m, diffraction=diffraction)
    fast = predict_coverage(towers, grid, dem=raster, params=params).layers["A", "4G"]
    ref = predict_reference(towers, grid, dem=raster, params=params).layers["A", "4G"]
    both = np.isfinite(fast) & np.isfinite(ref)
    assert both.sum() > 2000
    diff = fast[both] - ref[both]
    assert np.sqrt(np.mean(diff**2)) < 2.5
    assert np.percentile(np.abs(diff), 90) < 2.0
    assert (np.isfinite(fast) ^ np.isfinite(ref)).sum() < 0.05 * both.sum()


@pytest.mark.parametrize("terrain_m", [None, 50.0])
def test_the_effective_height_of_the_sweep_follows_the_reference(terrain_m):
    """Okumura's effective height, fast against plain: over a rough valley the gain of
    the effective height over the mast height (up to 10 dB) from the sweep's running sums
    along its rays is the reference's over each cell's straight profile."""
    raster, grid, towers = _rough_valley()
    term = {}
    for model in (predict_coverage, predict_reference):
        levels = [model(towers, grid, dem=raster, params=ModelParams(
            max_range_km=5.0, ray_spacing_cells=1.0, terrain_resolution_m=terrain_m,
            hata_height=height)).layers["A", "4G"] for height in ("effective", "mast")]
        term[model] = levels[0] - levels[1]
    both = np.isfinite(term[predict_coverage]) & np.isfinite(term[predict_reference])
    assert both.sum() > 2500
    fast, ref = term[predict_coverage][both], term[predict_reference][both]
    # never under the mast height (clipped), well over it on much of the valley
    assert fast.min() >= 0 and ref.max() > 8.0 and (ref > 1.0).mean() > 0.5
    assert np.sqrt(np.mean((fast - ref) ** 2)) < 0.25


def test_the_smooth_earth_term_of_the_sweep_follows_the_reference_over_gentle_hills():
    """Delta-Bullington's term over Bullington, fast against plain: over 12 m undulations
    the antennas stand low over the smooth earth and the term reaches several dB; the
    sweep's smooth-earth heights (running sums along its rays, the obstruction over
    bulge-corrected heights) give the reference's term on the straight profiles."""
    dem, transform = tiny_dem()
    xx = np.arange(dem.shape[1])[None, :]
    yy = np.arange(dem.shape[0])[:, None]
    dem = 200.0 + 12.0 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + 0.0 * dem
    raster = Raster(dem.astype(float), transform, CRS_UTM)
    grid = Grid.covering((X0 + 500, Y0 + 3000, X0 + 11_500, Y0 + 7000), 100.0, CRS_UTM)
    towers = site(X0 + 1050, Y0 + 5050)
    term = {}
    for model in (predict_coverage, predict_reference):
        levels = [model(towers, grid, dem=raster, params=ModelParams(
            max_range_km=12.0, ray_spacing_cells=1.0, diffraction=method)).layers["A", "4G"]
            for method in ("bullington", "delta_bullington")]
        term[model] = levels[0] - levels[1]
    both = np.isfinite(term[predict_coverage]) & np.isfinite(term[predict_reference])
    assert both.sum() > 3000
    fast, ref = term[predict_coverage][both], term[predict_reference][both]
    assert fast.min() >= 0 and ref.max() > 2.0 and (ref > 0.5).mean() > 0.1
    assert np.sqrt(np.mean((fast - ref) ** 2)) < 0.1


def test_line_of_sight_mode_and_sites_outside_the_grid(grid):
    dem, transform = tiny_dem()
    raster = Raster(dem.astype(float), transform, CRS_UTM)
    # a site west of the grid's east half, behind the ridge at x = 506 km
    east = Grid.covering((X0 + 7000, Y0 + 3000, X0 + 12_000, Y0 + 7000), 100.0, CRS_UTM)
    towers = site(X0 + 2500, Y0 + 5000)
    bull = predict_coverage(towers, east, dem=raster)
    flat = predict_coverage(towers, east, dem=Raster(np.full_like(dem, 200.0, dtype=float),
                                                     transform, CRS_UTM))
    behind = (X0 + 8000, Y0 + 5000)
    assert np.nan_to_num(at(bull, *behind), nan=-130) < at(flat, *behind) - 20
    los = predict_coverage(towers, grid, dem=raster, params=ModelParams(diffraction="los"))
    assert np.isnan(at(los, *behind))
    assert not np.isnan(at(los, X0 + 4000, Y0 + 5000))
    with pytest.raises(ValueError, match="diffraction"):
        ModelParams(diffraction="deygout")


def test_kriging_lowers_the_untested_cells_but_lifts_them_only_when_asked(grid):
    s = predict_coverage(site(X0 + 3000, Y0 + 5000), grid)
    rng = np.random.default_rng(3)
    strong = [(X0 + 6000 + dx, Y0 + 5000 + dy) for dx, dy in rng.normal(0, 150, (25, 2))]
    weak = [(X0 + 3000 + dx, Y0 + 8000 + dy) for dx, dy in rng.normal(0, 150, (25, 2))]

    def levels(xy, shift):
        return sample_points(s.layers["A", "4G"], grid, gpd.GeoSeries(
            [Point(*p) for p in xy], crs=CRS_UTM)) + shift

    m = pd.concat([measurements_at(strong, rsrp_dbm=levels(strong, 15.0)),
                   measurements_at(weak, rsrp_dbm=levels(weak, -15.0))], ignore_index=True)
    near_strong, near_weak = (X0 + 6400, Y0 + 5000), (X0 + 3000, Y0 + 8400)
    plain = ModelParams(calibrate=False, select_fusion=False)
    assert not plain.krige_lifts  # the default lowers only
    both = fuse_measurements(s, m, radius_m=0.0,
                             params=dataclasses.replace(plain, krige_lifts=True))
    lowered = fuse_measurements(s, m, radius_m=0.0, params=plain)
    # 400 m from the tests that measured 15 dB over the model: lifted only when asked
    assert at(lowered, *near_strong) == at(s, *near_strong)
    assert at(both, *near_strong) > at(s, *near_strong) + 5
    # 400 m from the tests 15 dB under it: lowered either way, by the same correction
    assert at(lowered, *near_weak) < at(s, *near_weak) - 5
    assert at(lowered, *near_weak) == pytest.approx(at(both, *near_weak), abs=0.01)


def test_local_chunked_kriging_equals_kriging_every_cell(grid):
    """Kriging only near the tests, in chunks and threads, gives every cell the correction
    a kriging of the whole grid in one piece gives; cells out of reach keep the model."""
    from coverage.calibrate import simple_krige
    from coverage.model import kriging, observations

    s = predict_coverage(site(X0 + 3000, Y0 + 5000), grid)
    layer = s.layers["A", "4G"]
    layer[:, :15] = np.nan  # a strip the model leaves empty, some of it within reach
    rng = np.random.default_rng(5)
    xy = np.column_stack([X0 + 2500 + rng.normal(0, 600, 60), Y0 + 5000 + rng.normal(0, 600, 60)])
    level = sample_points(layer, grid, gpd.GeoSeries([Point(*p) for p in xy], crs=CRS_UTM))
    m = measurements_at(xy, rsrp_dbm=np.nan_to_num(level, nan=-118.0) + rng.normal(-6, 5, 60))
    params = ModelParams(calibrate=False, workers=2, select_fusion=False, krige_lifts=True)
    fused = fuse_measurements(s, m, radius_m=0.0, params=params)

    # reference: every cell of the grid kriged in one chunk
    obs = observations.layer_observations(s, m, ("4G",))
    resid = kriging.kriging_residuals(obs, obs.pred.to_numpy(float))
    v = kriging.fit_variograms(obs, resid, grid)["4G"]
    cells = obs.assign(resid=resid).groupby(["row", "col"], as_index=False).agg(
        x=("x", "mean"), y=("y", "mean"), resid=("resid", "mean"), n=("resid", "size"))
    xs, ys = grid.centres()
    corr = simple_krige(cells.x, cells.y, cells.resid, xs.ravel(), ys.ravel(), v,
                        noise_db2=v.nugget_db2 / cells.n.to_numpy() + 1e-6,
                        reach=kriging.KRIGE_REACH, chunk=10**9).reshape(grid.shape)
    expected = np.where(np.isnan(layer), -125.0, layer) + corr  # 4G floor
    expected = np.where(expected < -125.0, np.nan, expected).astype("float32")
    expected = np.where(corr != 0, expected, layer)
    reached = corr != 0
    assert 0 < reached.mean() < 1  # some cells out of reach, some in
    assert (reached & np.isnan(layer)).any()  # the empty strip is partly within reach
    got = fused.layers["A", "4G"].copy()
    got[obs.row, obs.col] = expected[obs.row, obs.col]  # cells holding tests take their level
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # out of reach: the model's own value, and empty cells stay empty
    np.testing.assert_array_equal(fused.layers["A", "4G"][~reached], layer[~reached])


def test_simple_krige_chunks_and_threads_do_not_change_the_estimate():
    from coverage.calibrate import Variogram, simple_krige

    rng = np.random.default_rng(1)
    xo, yo = rng.uniform(0, 5000, (2, 200))
    ro = rng.normal(0, 6, 200)
    xq, yq = rng.uniform(-2000, 7000, (2, 5000))
    v = Variogram(4.0, 30.0, 400.0)
    whole = simple_krige(xo, yo, ro, xq, yq, v, chunk=10**9)
    assert (whole == 0).any() and (whole != 0).any()
    np.testing.assert_array_equal(simple_krige(xo, yo, ro, xq, yq, v, chunk=333), whole)
    np.testing.assert_array_equal(simple_krige(xo, yo, ro, xq, yq, v, chunk=64, workers=2),
                                  whole)



def test_krige_queries_sharing_neighbours_share_one_system_to_the_bit(monkeypatch):
    """Grid queries with the same neighbours solve one system: the estimates do not change.

    Nor do they when the systems are read from a table of the observations' covariances.
    """
    from coverage import calibrate
    from coverage.calibrate import Variogram, _shared_systems, krige_candidates

    rng = np.random.default_rng(5)
    xo, yo = rng.uniform(0, 4000, (2, 60))
    ro = rng.normal(0, 6, 60)
    xs, ys = np.meshgrid(np.arange(-500.0, 4500.0, 50.0), np.arange(-500.0, 4500.0, 50.0))
    xq, yq = xs.ravel(), ys.ravel()
    vs = [Variogram(3.0, 9.0, 320.0), Variogram(6.0, 6.0, 1000.0)]
    noise = [v.nugget_db2 / rng.integers(1, 4, 60) + 1e-6 for v in vs]
    shared = krige_candidates(xo, yo, ro, xq, yq, vs, noise_db2=noise)
    alone = krige_candidates(xo, yo, ro, xq, yq, vs, noise_db2=noise, chunk=1)  # one each
    monkeypatch.setattr(calibrate, "PAIR_TABLE_MAX_OBS", 0)  # each system made alone
    untabled = krige_candidates(xo, yo, ro, xq, yq, vs, noise_db2=noise)
    for a, b, c in zip(shared, alone, untabled, strict=True):
        assert (a != 0).sum() > 1000
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # the grid's queries do share: fewer systems than queries
    idx = np.argsort(np.hypot(xq[:, None] - xo, yq[:, None] - yo), axis=1)[:, :8]
    system, which = _shared_systems(vs[0], noise[0], xo, yo, idx, np.ones_like(idx, bool))
    assert len(system) < len(xq) / 2
    assert which.shape == (len(xq),) and which.max() == len(system) - 1


def _krige_by_loop(xo, yo, ro, xq, yq, v, noise, *, neighbours=8, reach=4.0):
    """Simple kriging query by query: the nearest within reach, one system each."""
    out = np.zeros(len(xq))
    for i, (x, y) in enumerate(zip(xq, yq, strict=True)):
        d = np.hypot(xo - x, yo - y)
        near = [j for j in np.argsort(d, kind="stable")[:neighbours] if d[j] < reach * v.range_m]
        if not near or v.psill_db2 <= 0:
            continue
        h = np.hypot(xo[near][:, None] - xo[near], yo[near][:, None] - yo[near])
        system = v.covariance(h) + np.diag(noise[near])
        out[i] = np.linalg.solve(system, v.covariance(d[near])) @ ro[near]
    return out


def test_krige_candidates_share_the_search_and_equal_one_kriging_each():
    """Sharing the neighbour search across variograms changes no estimate."""
    from coverage.calibrate import Variogram, krige_candidates, simple_krige

    rng = np.random.default_rng(3)
    xo, yo = rng.uniform(0, 5000, (2, 150))
    ro = rng.normal(0, 6, 150)
    xq, yq = rng.uniform(-3000, 8000, (2, 2000))
    n = rng.integers(1, 6, 150)
    vs = [Variogram(3.0, 9.0, 320.0), Variogram(6.0, 6.0, 250.0), Variogram(6.0, 6.0, 1000.0),
          Variogram(1.0, 0.0, 500.0)]
    noise = [v.nugget_db2 / n + 1e-6 for v in vs]
    shared = krige_candidates(xo, yo, ro, xq, yq, vs, noise_db2=noise, chunk=500, workers=2)
    for v, nz, est in zip(vs, noise, shared, strict=True):
        np.testing.assert_array_equal(est, simple_krige(xo, yo, ro, xq, yq, v, noise_db2=nz))
        pick = slice(0, 2000, 40)
        np.testing.assert_allclose(est[pick], _krige_by_loop(xo, yo, ro, xq[pick], yq[pick],
                                                             v, nz), rtol=1e-9, atol=1e-12)
    # the short range's reach ends where the long one's goes on: each keeps its own
    assert ((shared[1] == 0) & (shared[2] != 0)).any()
    assert not shared[3].any()  # no correlated part: nothing to krige


def test_fold_kriging_of_candidates_equals_kriging_each():
    """The cells averaged once and kriged under every variogram: as one call per variogram."""
    from coverage.calibrate import Variogram
    from coverage.model.kriging import krige_point_candidates, krige_points

    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 4000, (2, 400))
    obs = pd.DataFrame({"x": x, "y": y, "row": (y // 100).astype(int),
                        "col": (x // 100).astype(int)})
    resid = rng.normal(0, 6, 400)
    xq, yq = rng.uniform(-1000, 5000, (2, 800))
    vs = [Variogram(3.0, 9.0, 320.0), Variogram(6.0, 6.0, 250.0), Variogram(6.0, 6.0, 1000.0)]
    shared = krige_point_candidates(obs, resid, vs, xq, yq)
    for v, est in zip(vs, shared, strict=True):
        assert est.any()
        np.testing.assert_array_equal(est, krige_points(obs, resid, v, xq, yq))


def test_censored_calibration_does_not_lift_the_coverage_edge(grid):
    """Handsets report a level only where they camp: near the edge the lucky ones.

    The true field is the model minus 15 dB, with 8 dB of spread. Tests under -121 dBm fall
    back (tech "none" here). Fitted on the reported levels alone, the intercept comes out
    too high (the weak half is missing); with the censored tests it is recovered.
    """
    s = predict_coverage(site(X0 + 1000, Y0 + 5000), grid)
    rng = np.random.default_rng(5)
    xy = [(X0 + 1000 + d * np.cos(t), Y0 + 5000 + d * np.sin(t))
          for d, t in zip(rng.uniform(2000, 10500, 600), rng.uniform(-0.4, 0.4, 600),
                          strict=True)]
    model = sample_points(s.layers["A", "4G"], grid,
                          gpd.GeoSeries([Point(*p) for p in xy], crs=CRS_UTM))
    true = model - 15.0 + rng.normal(0, 8.0, len(model))
    camped = np.isfinite(true) & (true >= -121.0)
    assert 0.2 < 1 - camped.mean() < 0.8  # many tests near the edge
    m = measurements_at(xy, tech=np.where(camped, "4G", "none"),
                        rsrp_dbm=np.where(camped, true, np.nan))
    params = ModelParams(krige=False, select_fusion=False)
    fused = fuse_measurements(s, m, radius_m=0.0, params=params)
    a, b, _ = fused.calibration["A", "4G"][:3]
    naive = fuse_measurements(s, m[camped], radius_m=0.0, params=params)
    a0, b0, _ = naive.calibration["A", "4G"][:3]
    # the correction at the tests' median distance
    x = np.log10(np.median([np.hypot(p[0] - X0 - 1000, p[1] - Y0 - 5000) for p in xy]) / 1e3)
    assert a + b * x == pytest.approx(-15.0, abs=1.5)
    assert a0 + b0 * x > -15.0 + 2.0  # without the censored tests: lifted


def test_propensity_weighted_calibration_undoes_selected_tests(grid):
    """Subscribers with little or no signal test half as often: the calibration fitted on
    the tests as taken comes out high; weighed by their inverse propensity
    (``calibration_propensity_floor``) it is recovered."""
    s = predict_coverage(site(X0 + 1000, Y0 + 5000), grid)
    rng = np.random.default_rng(6)
    xy = [(X0 + 1000 + d * np.cos(t), Y0 + 5000 + d * np.sin(t))
          for d, t in zip(rng.uniform(2000, 10500, 2000), rng.uniform(-0.4, 0.4, 2000),
                          strict=True)]
    model = sample_points(s.layers["A", "4G"], grid,
                          gpd.GeoSeries([Point(*p) for p in xy], crs=CRS_UTM))
    true = model - 15.0 + rng.normal(0, 8.0, len(model))
    camped = np.isfinite(true) & (true >= -122.0)  # observations.NO_SERVICE_DBM["4G"]
    # the propensity of the selection model with floor 0.5 (coverage.calibrate)
    from coverage.calibrate import propensity_at_margin
    keep = rng.random(len(xy)) < propensity_at_margin(np.where(camped, true + 122.0,
                                                               -np.inf), 0.5)
    m = measurements_at(xy, tech=np.where(camped, "4G", "none"),
                        rsrp_dbm=np.where(camped, true, np.nan))[keep]
    x = np.log10(np.median([np.hypot(p[0] - X0 - 1000, p[1] - Y0 - 5000) for p in xy]) / 1e3)

    def at_median(**kw) -> float:
        params = ModelParams(krige=False, select_fusion=False, **kw)
        fit = fuse_measurements(s, m, radius_m=0.0, params=params).calibration["A", "4G"]
        return fit.a + fit.b * x

    plain, weighted = at_median(), at_median(calibration_propensity_floor=0.5)
    assert weighted == pytest.approx(-15.0, abs=1.0)
    assert plain > weighted + 0.5  # the tests as taken: lifted by the selection


def test_held_out_weights_and_significance():
    from coverage.model.crossval import HeldOut

    block = np.repeat(np.arange(10), 20)
    rng = np.random.default_rng(0)
    base = HeldOut(rng.uniform(0.1, 0.2, 200), block)
    # 0.012 lower, with a spread from block to block
    diff = 0.012 + rng.normal(0, 0.0025, 10)[block]
    cand = HeldOut(base.error - diff, block)
    se = np.std(diff.reshape(10, 20).sum(1), ddof=1) / np.sqrt(10)
    z = diff.reshape(10, 20).sum(1).mean() / se
    assert z > 1.0
    # taken at z standard errors and under, not over
    assert cand.better_than(base, z - 0.1) and not cand.better_than(base, z + 0.1)
    w = np.where(block < 5, 3.0, 1.0)
    weighted = HeldOut(base.error, block, w)
    assert weighted.mean == pytest.approx(np.average(base.error, weights=w))


def test_group_value_order_is_lexsort_order():
    """One sort of a 64-bit key orders rows as lexsort does, float32 ties included."""
    from coverage.model.measured import group_value_order

    rng = np.random.default_rng(3)
    group = rng.integers(0, 50, 5000)
    values = np.round(rng.normal(-95, 10, 5000), 1)
    values[::7] = -np.inf  # fallback tests sort first in their group
    order = group_value_order(group, values)
    ref = np.lexsort((values, group))
    assert np.array_equal(group[order], group[ref])
    assert np.array_equal(values[order], values[ref])
    # values equal in float32 but not in float64 must still come in float64 order
    tie = np.array([-100.0 + 1e-12, -100.0, -100.0 + 2e-12])
    out = group_value_order(np.zeros(3, dtype=int), tie)
    assert np.all(np.diff(tie[out]) > 0)
    # -0.0 equals 0.0: lexsort keeps them in their own order, and so must the key
    zeros = np.array([0.0, -0.0, 1.0, -0.0, 0.0])
    assert np.array_equal(group_value_order(np.zeros(5, dtype=int), zeros),
                          np.lexsort((zeros, np.zeros(5, dtype=int))))


def test_unique_cells_matches_numpy_unique():
    from coverage.model.observations import _unique_cells

    rng = np.random.default_rng(4)
    for size, n in ((1000, 5000), (10**6, 50)):  # marks per cell, then numpy's sort
        cell = rng.integers(0, size, n)
        ucell, code = _unique_cells(cell, size)
        ref_u, ref_c = np.unique(cell, return_inverse=True)
        assert np.array_equal(ucell, ref_u)
        assert np.array_equal(code, ref_c)


def test_fusion_on_two_forked_processes_gives_the_same_surfaces(grid):
    """The stages' cross-validation folds and the layers' kriging in forked workers give
    the choice and the surfaces of the fusion in this process, to the bit.

    Each layer's kriging is cut into one piece per process there: the corrections kept at
    the tests' cells are the same too."""
    from coverage.engine import Engine

    towers = pd.concat([site(X0 + 3000, Y0 + 5000), site(X0 + 8000, Y0 + 4000, operator="B"),
                        site(X0 + 6000, Y0 + 7000, tech="3G")], ignore_index=True)
    s = predict_coverage(towers, grid)
    rng = np.random.default_rng(11)
    frames = []
    for op, tech in (("A", "4G"), ("B", "4G"), ("A", "3G")):
        xy = np.column_stack([rng.uniform(X0 + 500, X0 + 11_500, 150),
                              rng.uniform(Y0 + 500, Y0 + 9_500, 150)])
        level = sample_points(s.layers[op, tech], grid,
                              gpd.GeoSeries([Point(*p) for p in xy], crs=CRS_UTM))
        rsrp = np.nan_to_num(level, nan=-120.0) - 8.0 + rng.normal(0, 6, len(xy))
        frames.append(measurements_at(xy, rsrp_dbm=rsrp, operator=[op] * len(xy),
                                      tech=[tech] * len(xy)))
    m = pd.concat(frames, ignore_index=True)
    fused = {}
    for name, params in (("chosen", ModelParams()), ("set", ModelParams(select_fusion=False))):
        here = fuse_measurements(s, m, params=params)
        forked = fuse_measurements(s, m, params=params, engine=Engine(processes=2))
        assert forked.choices == here.choices
        assert set(forked.layers) == set(here.layers) == set(s.layers)
        for key, layer in here.layers.items():
            np.testing.assert_array_equal(forked.layers[key], layer)
        assert set(forked.kriged_at_tests) == set(here.kriged_at_tests)
        assert name == "chosen" or set(here.kriged_at_tests) == set(s.layers)
        for key, (cells, shift) in here.kriged_at_tests.items():
            assert len(cells) > 50 and np.all(np.diff(cells) > 0)
            np.testing.assert_array_equal(forked.kriged_at_tests[key][0], cells)
            np.testing.assert_array_equal(forked.kriged_at_tests[key][1], shift)
        fused[name] = here
    # every stage was cross-validated, and the kriging changed each layer beyond its tests
    cv_error = fused["chosen"].choices["fusion"]["cv_error"]
    assert {"model", "cal=1.00", "krige:without"} <= set(cv_error)
    assert len([k for k in cv_error if k.startswith("krige:")]) > 2
    for key, layer in s.layers.items():
        assert (np.nan_to_num(fused["set"].layers[key]) != np.nan_to_num(layer)).sum() > 500


def test_kriging_variograms_are_candidates_of_the_cross_validation(grid):
    """The kriging's correlation length and nugget are chosen by the province's tests.

    Candidates keep the residuals' variance as the sill; the choice and the held-out error
    of every candidate are in the fusion's record, and the kriging applies the variogram
    chosen.
    """
    from coverage.calibrate import Variogram
    from coverage.model import kriging

    fitted = {"4G": Variogram(2.0, 8.0, 700.0)}
    assert kriging.with_variogram(fitted, (None, None)) == fitted
    assert kriging.with_variogram(fitted, (250.0, 0.5)) == {"4G": Variogram(5.0, 5.0, 250.0)}
    assert kriging.with_variogram(fitted, (1000.0, None)) == {"4G": Variogram(2.0, 8.0, 1000.0)}

    s = predict_coverage(site(X0 + 3000, Y0 + 5000), grid)
    rng = np.random.default_rng(4)
    # tests over the whole grid; a dead zone 15 dB under the model around one spot
    xy = np.column_stack([rng.uniform(X0 + 500, X0 + 11_500, 400),
                          rng.uniform(Y0 + 500, Y0 + 9_500, 400)])
    level = sample_points(s.layers["A", "4G"], grid,
                          gpd.GeoSeries([Point(*p) for p in xy], crs=CRS_UTM))
    hole = np.hypot(xy[:, 0] - X0 - 7000, xy[:, 1] - Y0 - 5000) < 1500
    true = np.nan_to_num(level, nan=-125.0) + rng.normal(0, 3, len(xy)) - 20.0 * hole
    m = measurements_at(xy, rsrp_dbm=true)
    fused = fuse_measurements(s, m, radius_m=0.0, params=ModelParams(calibrate=False))
    choice = fused.choices["fusion"]
    names = {f"krige:{kriging.variogram_name(c)}" for c in kriging.KRIGE_VARIOGRAMS}
    assert names <= set(choice["cv_error"])
    assert choice["krige"]  # the dead zone earns the kriging its place
    assert choice["variogram"] in {kriging.variogram_name(c) for c in kriging.KRIGE_VARIOGRAMS}
    assert at(fused, X0 + 7000, Y0 + 5000) < at(s, X0 + 7000, Y0 + 5000) - 8


def _fit_corrections_by_frames(obs, *, min_tests, trends=None):
    """The calibration fits as first written, on pandas frames: the reference of
    :func:`coverage.model.calibration.fit_corrections`, which selects rows by integer codes."""
    from coverage.calibrate import fit_intercept_slope
    from coverage.model.calibration import SHADOW_DB, LayerFit, _log_km, shadow_db
    from coverage.model.observations import NO_SERVICE_DBM

    good = np.isfinite(obs.pred.to_numpy(float)) & np.isfinite(obs.dist_m.to_numpy(float))
    cens = obs.censored.to_numpy(bool)
    x_all = _log_km(obs.dist_m.to_numpy(float))
    shadowed = np.zeros(len(obs), dtype=bool)
    for key, trend in (trends or {}).items():
        sel = ((obs.operator == key[0]) & (obs.tech == key[1])).to_numpy()
        if sel.any():
            shadowed[sel] = shadow_db(trend, x_all[sel], obs.pred.to_numpy(float)[sel]) >= SHADOW_DB
    frame = obs[["operator", "tech", "observed", "pred", "dist_m"]].assign(_shadow=shadowed)
    usable, bound = frame[good & ~cens], frame[good & cens].copy()
    bound["upper"] = bound.tech.map(NO_SERVICE_DBM).to_numpy(float) - bound.pred.to_numpy()

    def fit(g, c):
        return fit_intercept_slope(g.observed - g.pred, _log_km(g.dist_m.to_numpy()),
                                   upper_db=c.upper.to_numpy(),
                                   upper_log10_distance_km=_log_km(c.dist_m.to_numpy()))

    def layer_fit(g, c, trend):
        if len(g) < min_tests:
            return None
        xs = _log_km(g.dist_m.to_numpy())
        span = (float(np.percentile(xs, 2)), float(np.percentile(xs, 98)))
        if trend is None:
            return LayerFit(*fit(g, c), len(g), log_km_range=span)
        go, co, gs, cs = g[~g._shadow], c[~c._shadow], g[g._shadow], c[c._shadow]
        a, b = fit(go, co) if len(go) >= min_tests else fit(g, c)
        a_s, b_s = fit(gs, cs) if len(gs) >= min_tests else (None, 0.0)
        return LayerFit(a, b, len(g), a_s, b_s, span, trend)

    fits, pooled = {}, {}
    for tech, g in usable.groupby("tech"):
        trend = next((t for k, t in (trends or {}).items() if k[1] == tech), None)
        got = layer_fit(g, bound[bound.tech == tech], trend)
        if got is not None:
            pooled[str(tech)] = got
    for key in {tuple(k) for k in obs[["operator", "tech"]].drop_duplicates().to_numpy()}:
        key = (str(key[0]), str(key[1]))
        rows = (usable.operator == key[0]) & (usable.tech == key[1])
        got = layer_fit(usable[rows], bound[(bound.operator == key[0]) & (bound.tech == key[1])],
                        (trends or {}).get(key))
        if got is not None:
            fits[key] = got
        elif key[1] in pooled:
            fits[key] = pooled[key[1]]._replace(trend=(trends or {}).get(key,
                                                                          pooled[key[1]].trend))
    return fits


@pytest.mark.parametrize("min_tests", [5, 40])
@pytest.mark.parametrize("with_trends", [False, True])
def test_fit_corrections_equals_the_fits_on_frames(min_tests, with_trends):
    """Rows selected by integer codes give every layer's fit of the frames' selections, to
    the bit: pooled fits, shadow splits, censored rows, a missing operator, a technology
    without a no-service level, and layers too small for their own fit."""
    from coverage.model.calibration import fit_corrections, open_trend

    rng = np.random.default_rng(5)
    n = 900
    ops = rng.choice(["A", "B", "C"], n, p=[0.6, 0.35, 0.05]).astype(object)
    ops[::61] = None
    techs = rng.choice(["4G", "3G", "2G", "9G"], n, p=[0.5, 0.3, 0.15, 0.05])
    dist = rng.uniform(80.0, 12_000.0, n)
    pred = -60.0 - 30.0 * np.log10(dist / 100.0) - rng.exponential(8.0, n)
    pred[::37] = np.nan
    censored = rng.random(n) < 0.2
    observed = np.where(censored, np.minimum(pred, -117.0), pred + rng.normal(-4.0, 6.0, n))
    obs = pd.DataFrame({"operator": pd.array(ops, dtype="str"),
                        "tech": pd.array(techs, dtype="str"), "observed": observed,
                        "pred": pred, "dist_m": dist, "censored": censored})
    trends = None
    if with_trends:
        trends = {(o, t): open_trend(pred[(ops == o) & (techs == t)],
                                     dist[(ops == o) & (techs == t)])
                  for o in ("A", "B") for t in ("4G", "3G")}
    got = fit_corrections(obs, min_tests=min_tests, trends=trends)
    want = _fit_corrections_by_frames(obs, min_tests=min_tests, trends=trends)
    assert set(got) == set(want) and len(want) >= 6
    assert any(f.a_shadow is not None for f in want.values()) == with_trends
    for key, fit in want.items():
        for name, value in fit._asdict().items():
            if name == "trend":
                assert (value is None) == (got[key].trend is None)
            else:
                assert got[key]._asdict()[name] == value, (key, name)


@pytest.mark.parametrize(("old", "module", "name"), [
    ("NO_SERVICE_DBM", "observations", "NO_SERVICE_DBM"),
    ("TestCells", "observations", "TestCells"),
    ("measurement_xy", "observations", "measurement_xy"),
    ("aggregate_measurements", "observations", "aggregate_measurements"),
    ("LayerFit", "calibration", "LayerFit"),
    ("fit_corrections", "calibration", "fit_corrections"),
    ("hold_distances", "calibration", "hold_distances"),
    ("calibrated_at", "calibration", "calibrated_at"),
    ("KRIGE_REACH", "kriging", "KRIGE_REACH"),
    ("select_fusion", "crossval", "select_fusion"),
    ("cross_validate", "crossval", "cross_validate"),
    ("HeldOut", "crossval", "HeldOut"),
    ("group_value_order", "measured", "group_value_order"),
])
def test_fuse_keeps_the_names_of_its_stages(old, module, name):
    """Names imported from ``coverage.model.fuse`` before the split are the stages' own."""
    import importlib

    from coverage.model import fuse

    assert getattr(fuse, old) is getattr(importlib.import_module(f"coverage.model.{module}"), name)


def test_the_stages_import_only_earlier_stages():
    """Imports go downward: observations <- calibration <- kriging <- crossval <- fuse."""
    import ast
    from pathlib import Path

    import coverage.model

    order = ["observations", "measured", "calibration", "kriging", "crossval", "fuse"]
    here = Path(coverage.model.__file__).parent
    for k, m in enumerate(order):
        tree = ast.parse((here / f"{m}.py").read_text())
        used = {n.module for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module in order}
        assert used <= set(order[:k]), (m, used)
