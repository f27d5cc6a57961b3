"""Calibration kernels: robust intercept/slope, variogram fit, simple kriging."""

from __future__ import annotations

import numpy as np
import pytest

from coverage.calibrate import (
    PROPENSITY_FLOOR,
    Variogram,
    fit_intercept_slope,
    fit_variogram,
    inverse_propensity,
    propensity_at_margin,
    simple_krige,
)


def test_robust_fit_ignores_gross_outliers():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 1.2, 400)  # log10 of 0.3 .. 16 km
    r = -7.0 + 6.0 * x + rng.normal(0, 3.0, x.size)
    wild = rng.choice(x.size, 40, replace=False)
    r[wild] += 45.0  # a tenth of the tests badly wrong (indoor, a different operator...)
    a, b = fit_intercept_slope(r, x)
    assert a == pytest.approx(-7.0, abs=1.5)  # soft-L1 is convex, not redescending
    assert b == pytest.approx(6.0, abs=1.2)
    ols = np.polyfit(x, r, 1)
    assert abs(ols[1] - -7.0) > 3 * abs(a - -7.0)  # ordinary least squares is dragged


def test_weights_undo_a_selected_sample():
    """Tests kept with a chance that depends on their level: the weighted fit recovers the
    intercept of all of them, the unweighted one is lifted."""
    rng = np.random.default_rng(1)
    r = rng.normal(-3.0, 6.0, 4000)
    keep_p = np.where(r < -3.0, 0.4, 1.0)  # the weaker half kept 4 times in 10
    kept = rng.random(r.size) < keep_p
    x = np.zeros(kept.sum())
    a_raw, _ = fit_intercept_slope(r[kept], x)
    a_w, _ = fit_intercept_slope(r[kept], x, weights=1.0 / keep_p[kept])
    assert a_raw > -3.0 + 1.5
    assert a_w == pytest.approx(-3.0, abs=0.6)
    # unit weights change nothing, with or without censored tests
    xu, u = np.zeros(50), np.full(50, -12.0)
    assert fit_intercept_slope(r[kept], x, weights=np.ones(kept.sum()))[0] == (
        pytest.approx(a_raw, abs=0.3))  # the logistic likelihood, near the soft-L1 fit
    plain = fit_intercept_slope(r[kept], x, upper_db=u, upper_log10_distance_km=xu)
    ones = fit_intercept_slope(r[kept], x, upper_db=u, upper_log10_distance_km=xu,
                               weights=np.ones(kept.sum()), upper_weights=np.ones(50))
    assert ones[0] == pytest.approx(plain[0], abs=1e-4)
    # censored tests weighed up pull the fit down
    heavy = fit_intercept_slope(r[kept], x, upper_db=u, upper_log10_distance_km=xu,
                                weights=np.ones(kept.sum()), upper_weights=np.full(50, 4.0))
    assert heavy[0] < plain[0] - 0.2


def test_propensity_core():
    p = propensity_at_margin(np.array([-np.inf, 0.0, 60.0]), 0.3)
    assert p.tolist() == pytest.approx([0.3, 0.65, 1.0])
    w = inverse_propensity(np.array([-np.inf, 60.0]), 0.1)
    assert w.tolist() == pytest.approx([1 / PROPENSITY_FLOOR, 1.0])  # trimmed at 4


def test_slope_needs_spread_distances():
    x = np.full(50, 0.3)
    a, b = fit_intercept_slope(np.full(50, -4.0), x)
    assert (a, b) == (pytest.approx(-4.0), 0.0)
    assert fit_intercept_slope([], []) == (0.0, 0.0)


def test_variogram_recovers_correlation_length():
    rng = np.random.default_rng(1)
    n = 600
    x, y = rng.uniform(0, 8000, n), rng.uniform(0, 8000, n)
    h = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    cov = 36.0 * np.exp(-h / 700.0) + 4.0 * np.eye(n)
    r = np.linalg.cholesky(cov) @ rng.normal(size=n)
    v = fit_variogram(x, y, r, max_lag_m=4000.0)
    assert 350.0 < v.range_m < 1400.0
    assert v.nugget_db2 + v.psill_db2 == pytest.approx(40.0, rel=0.35)
    assert v.nugget_db2 < v.psill_db2


def test_kriging_honours_data_and_fades_with_distance():
    v = Variogram(nugget_db2=1.0, psill_db2=30.0, range_m=500.0)
    xo, yo = np.array([0.0, 100.0]), np.array([0.0, 0.0])
    ro = np.array([-25.0, -25.0])
    xq = np.array([50.0, 500.0, 1000.0, 5000.0])
    est = simple_krige(xo, yo, ro, xq, np.zeros(4), v)
    assert est[0] == pytest.approx(-25.0, abs=1.5)  # between two dead measurements: dead
    assert est[0] < est[1] < est[2] < 0  # fading...
    assert est[2] > -25 * np.exp(-1.5)
    assert est[3] == 0.0  # ... to nothing beyond reach
    # more noise (a single test instead of a cell's average) shrinks toward 0
    noisy = simple_krige(xo, yo, ro, xq[:1], np.zeros(1), v, noise_db2=30.0)
    assert -25.0 < noisy[0] < est[0] + 10 and noisy[0] > est[0]
