"""Lean data layouts (fusion tables, rasters) give what the plain ones gave, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from coverage.model import calibration, kriging, observations


@pytest.mark.parametrize(("shape", "reach", "n_obs", "share"), [
    ((2000, 300), 7, 50, 0.3), ((1500, 97), 40, 5, 0.5), ((3000, 50), 200, 30, 0.2),
    ((100, 100), 3, 0, 0.5), ((5000, 20), 1, 400, 0.9)])
def test_reach_in_bands_of_rows_equals_the_whole_grid_mask(shape, reach, n_obs, share):
    rng = np.random.default_rng(reach)
    row, col = rng.integers(0, shape[0], n_obs), rng.integers(0, shape[1], n_obs)
    flat = np.flatnonzero(rng.random(shape[0] * shape[1]) < share)
    expected = np.flatnonzero(kriging._reach_mask(shape, row, col, reach).reshape(-1)[flat])
    got = kriging._reach_positions(shape, row, col, reach, flat)
    np.testing.assert_array_equal(got, expected)
    if n_obs:
        assert 0 < len(got) < len(flat)  # some cells within reach, some beyond


@pytest.mark.parametrize(("n", "share", "size", "chunk"), [
    (1000, 0.5, 100, 64), (1000, 0.05, 100, 64), (10**6, 0.7, 2000, 1 << 14),
    (0, 0.5, 10, 8), (777, 1.0, 600, 100)])
def test_sample_of_finite_cells_in_chunks_equals_choice_over_all(n, share, size, chunk):
    rng = np.random.default_rng(n)
    a = rng.random(n).astype("float32")
    a[rng.random(n) > share] = np.nan
    b = rng.random(n).astype("float32")
    b[rng.random(n) > 0.9] = np.nan
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    expected = (np.random.default_rng(0).choice(ok, size, replace=False) if len(ok) > size
                else ok)
    np.testing.assert_array_equal(calibration._sample_finite(a, b, size, chunk=chunk), expected)


def test_observations_are_lean_and_read_as_float64_alike():
    import pandas as pd

    from coverage.model import CoverageSurfaces, Grid

    grid = Grid.covering((0.0, 0.0, 1000.0, 800.0), 100.0, "EPSG:32648")
    rng = np.random.default_rng(3)
    layers = {(op, t): rng.uniform(-120, -60, grid.shape).astype("float32")
              for op in ("A", "B") for t in ("3G", "4G")}
    dist = {k: rng.uniform(10, 9000, grid.shape).astype("float32") for k in layers}
    s = CoverageSurfaces(grid, layers, None, dist)
    n = 200
    tests = pd.DataFrame({
        "tech": rng.choice(["4G", "3G", "2G", "none"], n), "operator": rng.choice(
            ["A", "B", None], n), "rsrp_dbm": rng.uniform(-125, -60, n)})
    xy = (rng.uniform(0, 1000, n), rng.uniform(0, 800, n))
    obs = observations.layer_observations(s, tests, ("3G", "4G"), xy)
    assert obs["operator"].dtype == "category" and obs["tech"].dtype == "category"
    assert obs["row"].dtype == np.int32 and obs["pred"].dtype == np.float32
    assert obs["censored"].any() and (~obs["censored"]).any()
    # every row is what the plain comparisons of the labels give
    *_, inside = grid.index(*xy)
    expected = 0
    for (op, t) in sorted(layers):
        mine = (tests.tech == t) & (tests.operator == op)
        fell = tests.operator.eq(op) & tests.tech.isin(observations.FALLBACK_BELOW.get(t, ()))
        none = (tests.tech == "none") & (tests.operator.eq(op) | tests.operator.isna())
        expected += int((inside & mine).sum()) + int((inside & (none | fell)).sum())
        got = obs[(obs.operator == op) & (obs.tech == t)]
        np.testing.assert_array_equal(got.pred.to_numpy(float),
                                      layers[op, t][got.row, got.col].astype(float))
        np.testing.assert_array_equal(got.dist_m.to_numpy(float),
                                      dist[op, t][got.row, got.col].astype(float))
    assert len(obs) == expected


@pytest.mark.parametrize(("dtype", "held"), [("float32", "float32"), ("int16", "float32"),
                                             ("uint8", "float32"), ("float64", "float64"),
                                             ("int32", "float64")])
def test_rasters_are_held_in_float32_only_when_exact(tmp_path, dtype, held):
    import rasterio
    from rasterio.transform import from_origin

    from coverage import io

    rng = np.random.default_rng(1)
    values = (rng.random((20, 30)) * 250).astype(dtype)
    values[0, 0] = 7  # nodata
    path = tmp_path / "r.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=1, dtype=dtype,
                       crs="EPSG:32648", transform=from_origin(0, 2000, 100, 100),
                       nodata=7) as dst:
        dst.write(values, 1)
    r = io.read_raster(path, what="population")
    assert r.array.dtype == held
    assert np.isnan(r.array[0, 0])
    np.testing.assert_array_equal(r.array[1:].astype("float64"), values[1:].astype("float64"))
