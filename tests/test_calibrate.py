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


def _censored_case(seed: int, *, n: int = 300, m: int = 120, weighted: bool = False):
    """Levels ``2 - 8 x`` with logistic errors, and censored rows under the same law."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, n)
    r = 2.0 - 8.0 * x + rng.logistic(0.0, 3.0, n)
    xu = rng.uniform(-1.0, 1.0, m)
    kw = dict(upper_db=2.0 - 8.0 * xu + rng.normal(-6.0, 4.0, m),
              upper_log10_distance_km=xu)
    if weighted:
        kw.update(weights=rng.uniform(1.0, 4.0, n), upper_weights=rng.uniform(1.0, 4.0, m))
    return r, x, kw


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("spread", [1.0, 0.1])  # 0.1: too little spread, no slope
def test_newton_fit_finds_the_lbfgs_optimum(seed, weighted, spread):
    """Newton's censored fit is at the optimum L-BFGS-B approaches: the same parameters as
    a tightly stopped L-BFGS-B, within its default tolerance of a default one's."""
    from scipy.optimize import minimize

    from coverage import calibrate

    r, x, kw = _censored_case(seed, weighted=weighted)
    x, kw["upper_log10_distance_km"] = x * spread, kw["upper_log10_distance_km"] * spread
    got = fit_intercept_slope(r, x, **kw)
    # the likelihood itself: Newton's optimum against L-BFGS-B stopped far tighter
    slope = spread == 1.0
    assert (got[1] != 0.0) is slope
    w, wu = kw.get("weights"), kw.get("upper_weights")
    scale = np.mean(np.r_[w, wu]) if weighted else 1.0
    nll = calibrate._TobitLoss(r, x, kw["upper_db"], kw["upper_log10_distance_km"],
                               None if w is None else w / scale,
                               None if wu is None else wu / scale, slope=slope,
                               slope_prior_db=10.0)
    s0 = np.log(6.0 * np.sqrt(3.0) / np.pi)
    p0 = [np.median(r), 0.0, s0] if slope else [np.median(r), s0]
    tight = minimize(nll, p0, jac=True, method="L-BFGS-B",
                     options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000}).x
    default = minimize(nll, p0, jac=True, method="L-BFGS-B").x
    assert got[0] == pytest.approx(default[0], abs=0.05)
    assert got[0] == pytest.approx(tight[0], abs=1e-4)
    assert got[1] == pytest.approx(tight[1] if slope else 0.0, abs=1e-4)
    newton = calibrate._newton(nll, p0, [(-60.0, 60.0)] * (len(p0) - 1) + [(-1.3, 3.3)])
    assert nll(np.array(newton))[0] <= nll(tight)[0] + 1e-9
    assert np.abs(nll(np.array(newton))[1]).max() < 1e-6  # the gradient vanishes there


def test_newton_hessian_is_the_gradients_derivative():
    from coverage import calibrate

    r, x, kw = _censored_case(4, n=80, m=40, weighted=True)
    nll = calibrate._TobitLoss(r, x, kw["upper_db"], kw["upper_log10_distance_km"],
                               kw["weights"], kw["upper_weights"], slope=True,
                               slope_prior_db=10.0)
    p = np.array([1.0, -5.0, 1.2])
    value, grad, hess = nll.with_hessian(p)
    assert value == pytest.approx(nll(p)[0], rel=1e-12)
    assert grad == pytest.approx(nll(p)[1].tolist(), rel=1e-9)
    step = 1e-6
    numeric = [(nll(p + step * e)[1] - nll(p - step * e)[1]) / (2 * step) for e in np.eye(3)]
    assert np.array(hess) == pytest.approx(np.array(numeric), rel=1e-5, abs=1e-6)


def test_newton_fit_leaves_an_optimum_on_a_bound_to_lbfgs(monkeypatch):
    """Identical levels pull the scale to its lower bound: Newton would leave the bounds, the
    fit is then L-BFGS-B's, which honours them."""
    from coverage import calibrate

    newton, lbfgs = [], []
    real_newton, real_minimize = calibrate._newton, calibrate.minimize

    def newton_spy(*args, **kwargs):
        newton.append(real_newton(*args, **kwargs))
        return newton[-1]

    def minimize_spy(*args, **kwargs):
        lbfgs.append(kwargs["method"])
        return real_minimize(*args, **kwargs)

    monkeypatch.setattr(calibrate, "_newton", newton_spy)
    monkeypatch.setattr(calibrate, "minimize", minimize_spy)
    x = np.linspace(-0.5, 1.0, 40)
    kw = dict(upper_db=np.full(5, 50.0), upper_log10_distance_km=np.zeros(5))
    got = fit_intercept_slope(np.full(40, 3.0), x, **kw)
    assert newton == [None] and lbfgs == ["L-BFGS-B"]
    assert got[0] == pytest.approx(3.0, abs=0.1)
