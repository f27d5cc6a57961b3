"""The plan's compiled Bullington parameter along straight paths equals the numpy one to the
bit, in line of sight and behind hills, and falls back to numpy without numba."""

from __future__ import annotations

import numpy as np
import pytest

from coverage import radio
from coverage.plan import _sight


def _terrain(seed: int, rows: int = 120, cols: int = 150) -> np.ndarray:
    """Random-walk ridges and valleys, metres."""
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.normal(0, 4, (rows, cols)), axis=1)
    z += np.cumsum(rng.normal(0, 4, (rows, cols)), axis=0)
    return z - z.min() + 20.0


def _numpy_nu(ground, inv, x0, y0, x1, y1, samples, d, tx_alt, rx_alt):
    terrain = radio.sample_profiles(ground, inv, x0, y0, x1, y1, samples)
    return radio.bullington_nu_root_m(d, terrain, tx_alt, rx_alt)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("samples", [8, 24, 61])
def test_compiled_paths_equal_numpy_to_the_bit(seed, samples) -> None:
    if _sight.compiled() is None:
        pytest.skip("numba is not installed (or COVERAGE_GAP_NUMBA=0): numpy only here")
    ground = _terrain(seed)
    # a 100 m grid whose corner is (500,000 E, 2,012,000 N): metres to (col, row)
    inv = (0.01, 0.0, -5000.0, 0.0, -0.01, 20120.0)
    rng = np.random.default_rng(seed + 10)
    x0, y0 = 500_000.0 + rng.uniform(2_000, 13_000), 2_000_000.0 + rng.uniform(2_000, 10_000)
    n = 2_000
    x1 = 500_000.0 + rng.uniform(-500, 15_500, n)  # some ends beyond the grid: clipped
    y1 = 2_000_000.0 + rng.uniform(-500, 12_500, n)
    d = np.hypot(x1 - x0, y1 - y0)
    d[:3] = 0.0  # paths shorter than a metre are taken as a metre
    x1[:3], y1[:3] = x0, y0
    tx_alt = float(np.percentile(ground, 90)) + 40.0  # above most of the terrain
    rx_alt = rng.uniform(0.0, 1.2, n) * float(ground.max())
    want = _numpy_nu(ground, inv, x0, y0, x1, y1, samples, d, tx_alt, rx_alt)
    got = _sight.nu_from_point(ground, inv, x0, y0, x1, y1, samples, d, tx_alt, rx_alt)
    # both branches of the parameter are exercised: clear paths and hills in the way
    assert (want <= 0).sum() > 50 and (want > 0).sum() > 50
    np.testing.assert_array_equal(got, want)


def test_without_numba_the_numpy_functions_run(monkeypatch) -> None:
    monkeypatch.setattr(_sight, "_STATE", {"kernels": None})
    ground = _terrain(3)
    inv = (0.01, 0.0, 0.0, 0.0, -0.01, 120.0)
    x1, y1 = np.array([3_000.0, 14_000.0]), np.array([500.0, 11_000.0])
    d = np.hypot(x1 - 7_000.0, y1 - 6_000.0)
    rx = np.array([30.0, 60.0])
    got = _sight.nu_from_point(ground, inv, 7_000.0, 6_000.0, x1, y1, 16, d, 200.0, rx)
    np.testing.assert_array_equal(
        got, _numpy_nu(ground, inv, 7_000.0, 6_000.0, x1, y1, 16, d, 200.0, rx))
