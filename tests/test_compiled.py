"""The compiled sweep (numba, optional) equals the numpy sweep to the bit; the sparse model
equals the whole-grid model at its cells; numba imports beside this package's name."""

from __future__ import annotations

import sys

import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from coverage import _compiled, radio
from coverage.io import Raster
from coverage.model import Clutter, Grid, predict_coverage
from coverage.model.predict import predict_at_cells
from coverage.model.terrain import terrain_grid
from coverage.params import ModelParams

CRS_UTM = CRS.from_epsg(32648)
LEFT, TOP = 500_000.0, 2_500_000.0


def _numba_or_skip() -> None:
    if _compiled.kernels() is None:
        pytest.skip("numba is not installed (or COVERAGE_GAP_NUMBA=0): only the numpy "
                    "sweep runs here; pip install 'coverage-gap[fast]'")


def _rough_dem(seed: int, rows: int = 140, cols: int = 160, res: float = 100.0) -> Raster:
    """Random-walk ridges and valleys, 2 km of margin around the grids below."""
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.normal(0, 3, (rows, cols)), axis=1)
    z += np.cumsum(rng.normal(0, 3, (rows, cols)), axis=0)
    z += 60.0 * np.sin(np.arange(cols) / 9.0)[None, :]
    return Raster((z - z.min() + 50.0).astype("float32"),
                  from_origin(LEFT - 2_000, TOP + 2_000, res, res), CRS_UTM)


def _sites() -> gpd.GeoDataFrame:
    pts = [Point(LEFT + 3_100, TOP - 2_900), Point(LEFT + 7_400, TOP - 6_050),
           Point(LEFT + 7_400, TOP - 6_050), Point(LEFT + 11_000, TOP - 1_000)]
    return gpd.GeoDataFrame({
        "site_id": ["a", "b", "b", "c"], "operator": ["A", "A", "B", "B"],
        "tech": ["4G", "4G", "3G", "4G"], "height_m": [30.0, 40.0, 40.0, 25.0],
        "azimuth_deg": [np.nan, 120.0, np.nan, 300.0], "status": "active"},
        geometry=pts, crs=CRS_UTM)


def test_compiled_ray_sweep_equals_numpy(monkeypatch) -> None:
    _numba_or_skip()
    rng = np.random.default_rng(7)
    rays, n = 300, 200
    ground = (np.cumsum(rng.normal(0, 8, (rays, n)), axis=1) + 300).astype("float32")
    lengths = rng.integers(0, n + 1, rays)
    lengths[:5] = n
    tx = 300 + rng.uniform(10, 50, rays)
    ray = np.repeat(np.arange(rays), n)
    dist = np.tile(np.arange(n) * 100.0, rays) + rng.uniform(-45, 45, rays * n)
    live = dist / 100.0 < np.repeat(lengths, n) - 0.5
    rx = np.repeat(ground[:, 0].astype(float), n)[live] + 1.5

    def sweep():
        s = radio.RaySweep.build(ground, 100.0, tx, lengths=lengths)
        return s, s.nu_root_m(ray[live], dist[live], rx)

    fast, nu_fast = sweep()
    monkeypatch.setenv("COVERAGE_GAP_NUMBA", "0")
    slow, nu_slow = sweep()
    swept = (np.arange(n)[:, None] < lengths[None, :]).ravel()
    for name in ("hor", "s_tim", "i_tim"):
        np.testing.assert_array_equal(getattr(fast, name)[swept], getattr(slow, name)[swept],
                                      err_msg=name)
    assert np.isfinite(nu_slow).sum() > 10_000 and (nu_slow > 0).any() and (nu_slow < 0).any()
    np.testing.assert_array_equal(nu_fast, nu_slow)


def test_compiled_smooth_earth_heights_equal_numpy(monkeypatch) -> None:
    """The delta-Bullington method's smooth-earth heights per receiver, to the bit, on
    rough terrain (obstructed and clear paths, receivers above and below the ray)."""
    _numba_or_skip()
    rng = np.random.default_rng(11)
    rays, n = 200, 150
    ground = (np.cumsum(rng.normal(0, 8, (rays, n)), axis=1) + 300).astype("float32")
    lengths = rng.integers(0, n + 1, rays)
    lengths[:5] = n
    tx = ground[:, 0] + rng.uniform(10, 50, rays)
    ray = np.repeat(np.arange(rays), n)
    dist = np.tile(np.arange(n) * 100.0, rays) + rng.uniform(-45, 45, rays * n)
    live = dist / 100.0 < np.repeat(lengths, n) - 0.5
    rx_ground = np.repeat(ground[:, 0].astype(float), n)[live] + rng.uniform(-30, 30,
                                                                            live.sum())

    def heights():
        s = radio.RaySweep.build(ground, 100.0, tx, lengths=lengths)
        return s.smooth_heights_m(ray[live], dist[live], rx_ground + 1.5, rx_ground)

    fast = heights()
    monkeypatch.setenv("COVERAGE_GAP_NUMBA", "0")
    slow = heights()
    assert np.isfinite(slow[0]).all() and np.isfinite(slow[1]).all()
    # both ends lowered somewhere (an obstruction), and left at the ground elsewhere
    assert (slow[1] < rx_ground - 1).sum() > 1000 and (slow[1] == rx_ground).sum() > 100
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_compiled_nu_root_equals_numpy(monkeypatch) -> None:
    """The compiled per-receiver Bullington evaluation, on one sweep, to the bit: receivers
    in and out of sight, nearer than two steps (-inf), on an array or a scalar altitude."""
    _numba_or_skip()
    rng = np.random.default_rng(11)
    rays, n = 120, 150
    ground = (np.cumsum(rng.normal(0, 10, (rays, n)), axis=1) + 200).astype("float32")
    tx = 200 + rng.uniform(5, 60, rays)
    m = 40_000
    ray = rng.integers(0, rays, m)
    dist = np.concatenate([rng.uniform(0, 160, 500), rng.uniform(0, n * 100.0, m - 500)])
    rx = ground[ray, 0].astype(float) + rng.uniform(-60, 90, m)
    for sweep in (radio.RaySweep.build(ground, 100.0, tx),
                  radio.RaySweep.build(ground, 100.0, tx, k_factor=1.0)):
        fast = sweep.nu_root_m(ray, dist, rx), sweep.nu_root_m(ray, dist, 260.0)
        with monkeypatch.context() as mp:
            mp.setenv("COVERAGE_GAP_NUMBA", "0")
            slow = sweep.nu_root_m(ray, dist, rx), sweep.nu_root_m(ray, dist, 260.0)
        nu = slow[0]
        assert (nu == -np.inf).sum() >= 300 and (nu > 1.0).sum() > 1_000
        assert ((nu < 0) & np.isfinite(nu)).sum() > 1_000  # in sight: intrusion path
        for got, want in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("terrain_resolution_m", [None, 50.0])
def test_compiled_model_equals_numpy(monkeypatch, terrain_resolution_m) -> None:
    """Whole layers and server distances, sectors and terrain included, to the bit."""
    _numba_or_skip()
    grid = Grid(from_origin(LEFT, TOP, 100.0, 100.0), (90, 120), CRS_UTM)
    params = ModelParams(terrain_resolution_m=terrain_resolution_m)
    dem = _rough_dem(1)
    fast = predict_coverage(_sites(), grid, dem=dem, params=params)
    monkeypatch.setenv("COVERAGE_GAP_NUMBA", "0")
    slow = predict_coverage(_sites(), grid, dem=dem, params=params)
    assert set(fast.layers) == set(slow.layers) == {("A", "4G"), ("B", "3G"), ("B", "4G")}
    for key in slow.layers:
        assert np.isfinite(slow.layers[key]).sum() > 300
        np.testing.assert_array_equal(fast.layers[key], slow.layers[key], err_msg=str(key))
        np.testing.assert_array_equal(fast.distance_m[key], slow.distance_m[key])


@pytest.mark.parametrize("compiled", [True, False])
def test_levels_at_cells_are_the_whole_grid_models(monkeypatch, compiled) -> None:
    """predict_at_cells: each transmitter alone, at its cells, as predict_coverage says."""
    if compiled:
        _numba_or_skip()
    else:
        monkeypatch.setenv("COVERAGE_GAP_NUMBA", "0")
    grid = Grid(from_origin(LEFT, TOP, 100.0, 100.0), (90, 120), CRS_UTM)
    rng = np.random.default_rng(2)
    clutter = Clutter(rng.integers(0, 3, grid.shape).astype("uint8"),
                      rng.uniform(0, 1, grid.shape).astype("float32"), grid)
    params = ModelParams(terrain_resolution_m=50.0)
    dem = _rough_dem(3)
    sites = _sites()
    from coverage.model.transmitters import prepare_transmitters

    terrain = terrain_grid(dem, grid, prepare_transmitters(sites, grid.crs, params),
                           params.terrain_step_m)
    n_cells = grid.shape[0] * grid.shape[1]
    cells = [np.sort(rng.choice(n_cells, 1500, replace=False)) for _ in range(len(sites))]
    got = predict_at_cells(sites, grid, cells, terrain=terrain, params=params,
                           clutter=clutter)
    for i in range(len(sites)):
        one = sites.iloc[[i]].assign(operator="x")
        layer = predict_coverage(one, grid, params=params, terrain=terrain,
                                 clutter=clutter).layers["x", sites["tech"].iloc[i]]
        want = layer.ravel()[cells[i]]
        flat, level = got[i]
        assert flat.size > 20
        np.testing.assert_array_equal(flat, cells[i][np.isfinite(want)])
        np.testing.assert_array_equal(level, want[np.isfinite(want)])


def test_numba_imports_beside_this_package() -> None:
    """numba's coverage.py hook must not take this package for coverage.py."""
    pytest.importorskip("llvmlite", reason="numba is optional: pip install "
                        "'coverage-gap[fast]'")
    import coverage

    numba = _compiled._import_numba()
    assert sys.modules["coverage"] is coverage  # put back
    from numba.misc import coverage_support

    assert coverage_support.coverage_available is False
    assert numba.njit(lambda x: x + 1)(1) == 2


def test_warm_up_loads_the_kernels_a_forked_worker_inherits() -> None:
    """In a fresh process: no kernel loaded before the warm-up, the sweep's after it."""
    import subprocess

    _numba_or_skip()
    code = (
        "from coverage import _compiled\n"
        "from coverage.model.predict import warm_compiled_sweep\n"
        "k = _compiled.kernels()\n"
        "before = sum(len(f.signatures) for f in vars(k).values())\n"
        "warm_compiled_sweep()\n"
        "after = sum(len(f.signatures) for f in vars(k).values())\n"
        "print(before, after)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    before, after = map(int, out.stdout.split())
    assert before == 0 and after > 0
