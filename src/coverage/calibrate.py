r"""Calibration kernels: robust fit of the path-loss law and kriging of residuals.

Pure functions on arrays (metres, dB); :mod:`coverage.model.fuse` builds the arrays from
surfaces and measurements and calls these.

**Intercept and slope.** The Hata law is :math:`L = A + B \log_{10} d_{km}`; measurements
tell how far :math:`A` and :math:`B` are off for one operator's technology (their EIRP,
antenna heights, clutter). With residuals :math:`r_i = P_{measured} - P_{model}` at
distances :math:`d_i` from the serving site, :func:`fit_intercept_slope` finds

.. math:: \min_{a, b} \sum_i \rho\left(\left(r_i - a - b \log_{10} d_i\right) / s\right)

with the soft-L1 loss :math:`\rho(z) = 2(\sqrt{1 + z^2} - 1)` (Huber-like: quadratic
below :math:`s`, linear above), so that a few wild tests do not drag the fit; the corrected
model is :math:`P + a + b \log_{10} d_{km}`.

**Residual kriging.** After calibration, residuals are spatially correlated (shadowing by
hills, clutter, forests: Gudmundson 1991 found exponential correlation over tens to hundreds
of metres). :func:`fit_variogram` fits the exponential semivariogram

.. math:: \gamma(h) = c_0 + c_1 (1 - e^{-h / a})

(nugget :math:`c_0`, partial sill :math:`c_1`, correlation length :math:`a`) to the binned
empirical one; :func:`simple_krige` estimates the residual anywhere as a zero-mean simple
kriging from its nearest observations, so the correction is the measured one at a measured
place and fades to zero (the calibrated model) a few correlation lengths away.

References
----------
- Gudmundson, M. (1991). Correlation model for shadow fading in mobile radio systems.
  Electronics Letters 27(23), 2145-2146.
- Cressie, N. (1993). Statistics for Spatial Data, sections 2.4 and 3.2 (variogram fitting
  and simple kriging).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import curve_fit, least_squares, minimize
from scipy.spatial import cKDTree
from scipy.special import expit, ndtr

from ._threads import one_blas_thread

__all__ = ["HANDSET_SD_DB", "PROPENSITY_FLOOR", "Variogram", "fit_intercept_slope",
           "fit_variogram", "inverse_propensity", "krige_candidates", "propensity_at_margin",
           "simple_krige"]

#: Spread of a handset's reported level around the true one, dB: the width of the tests'
#: propensity's rise at losing service (3GPP TS 36.133 allows RSRP reports +-6 dB in
#: normal conditions).
HANDSET_SD_DB = 4.0
#: Trimming: no test's propensity counts below this (its weight at most 1/0.25 = 4 times a
#: test with full signal; Potter 1990's trimming of extreme weights).
PROPENSITY_FLOOR = 0.25


def propensity_at_margin(margin_db: ArrayLike, floor: float) -> NDArray[np.float64]:
    r"""Relative propensity to run a test against the tester's own margin over losing service.

    .. math:: \pi(M) = \rho + (1 - \rho)\,\Phi(M / \tau)

    :math:`\rho` = ``floor`` (a subscriber without service tests :math:`\rho` times as often
    as one with full signal), :math:`\tau` = :data:`HANDSET_SD_DB`; ``margin_db`` is the
    level over where handsets lose the network (``-inf``: no service). The model and its
    fit from where a province's tests fall among its residents:
    :mod:`coverage.classify.selection`.

    Examples
    --------
    >>> propensity_at_margin(np.array([-np.inf, 0.0, 40.0]), 0.5).round(3).tolist()
    [0.5, 0.75, 1.0]
    """
    m = np.asarray(margin_db, dtype=float)
    return floor + (1.0 - floor) * ndtr(m / HANDSET_SD_DB)


def inverse_propensity(margin_db: ArrayLike, floor: float) -> NDArray[np.float64]:
    """Each test's weight: the inverse of :func:`propensity_at_margin`, trimmed.

    No propensity counts below :data:`PROPENSITY_FLOOR`: a weight is at most 4.
    """
    return 1.0 / np.maximum(propensity_at_margin(margin_db, floor), PROPENSITY_FLOOR)


def fit_intercept_slope(residual_db: ArrayLike, log10_distance_km: ArrayLike, *,
                        f_scale_db: float = 6.0, min_spread_decades: float = 0.3,
                        slope_prior_db: float = 10.0, upper_db: ArrayLike | None = None,
                        upper_log10_distance_km: ArrayLike | None = None,
                        weights: ArrayLike | None = None,
                        upper_weights: ArrayLike | None = None) -> tuple[float, float]:
    r"""Robust fit of ``residual = a + b log10(d_km)`` (soft-L1 loss), dB and dB/decade.

    The slope is fitted only when the distances spread over at least
    ``min_spread_decades`` (interquartile range of :math:`\log_{10} d`); otherwise it is 0
    and only the intercept is fitted. The slope carries a Gaussian prior centred on 0 with
    a standard deviation of ``slope_prior_db`` dB/decade (one extra residual
    :math:`s\,b/\sigma_b`), so that a few tests at similar distances cannot turn Hata's
    distance law over; with hundreds of tests the data dominate.

    ``upper_db`` (at ``upper_log10_distance_km``) are censored residuals, known only to be
    at most these values: tests whose handset found no service, or fell back to a lower
    technology, say the level was under where handsets leave it. A handset reports a level
    only where it could camp, so near a coverage edge the reported levels are the lucky
    ones; fitted without the censored tests, the correction would lift the fringe (on the
    demo, +11 to +25 dB/decade slopes). With censored tests the fit is a censored
    (Tobit) maximum likelihood with logistic errors (linear tails like the soft-L1 loss;
    scale fitted) and the same Gaussian prior on the slope
    (Tobin 1958; Lange, Little and Taylor 1989).

    ``weights`` and ``upper_weights`` weigh each test's term of that logistic likelihood
    (with weights the fit is always the likelihood's, censored tests or not): inverse
    inclusion probabilities make the fit stand for the subscribers rather than for the
    tests as taken (a pseudo-likelihood; Horvitz and Thompson 1952, Skinner 1989). The
    slope's prior counts once whatever the weights' scale: they are scaled to a mean of 1.

    That likelihood's maximum is found by Newton's method with the exact Hessian, to the
    optimum itself (L-BFGS-B, stopped by its tolerances, takes twice the CPU to come within
    0.02 dB of it on the demo's fits); by L-BFGS-B where that optimum would leave the
    bounds or Newton's iterations do not converge. The fits without censored tests or
    weights are soft-L1 least squares (:func:`scipy.optimize.least_squares`).

    Examples
    --------
    >>> x = np.linspace(-0.5, 1.0, 50)
    >>> a, b = fit_intercept_slope(3.0 - 10.0 * x, x, slope_prior_db=np.inf)
    >>> round(a, 3), round(b, 3)
    (3.0, -10.0)
    >>> a, b = fit_intercept_slope(3.0 - 10.0 * x, x)  # 50 tests: the prior shrinks a little
    >>> round(a, 1), round(b, 1)
    (2.9, -9.7)
    """
    r = np.asarray(residual_db, dtype=float)
    x = np.asarray(log10_distance_km, dtype=float)
    weighted = weights is not None or upper_weights is not None
    w = np.ones(r.size) if weights is None else np.asarray(weights, dtype=float)
    ok = np.isfinite(r) & np.isfinite(x) & np.isfinite(w)
    r, x, w = r[ok], x[ok], w[ok]
    if r.size == 0:
        return 0.0, 0.0
    u = np.asarray(upper_db if upper_db is not None else [], dtype=float)
    xu = np.asarray(upper_log10_distance_km if upper_log10_distance_km is not None else [],
                    dtype=float)
    wu = np.ones(u.size) if upper_weights is None else np.asarray(upper_weights, dtype=float)
    ok = np.isfinite(u) & np.isfinite(xu) & np.isfinite(wu)
    u, xu, wu = u[ok], xu[ok], wu[ok]
    scale = float(np.mean(np.r_[w, wu]))
    w, wu = w / scale, wu / scale
    q75, q25 = np.percentile(np.r_[x, xu], [75, 25])
    slope = not (q75 - q25 < min_spread_decades or r.size < 4)
    if u.size or weighted:
        return _censored_fit(r, x, u, xu, slope=slope, f_scale_db=f_scale_db,
                             slope_prior_db=slope_prior_db, w=w if weighted else None,
                             wu=wu if weighted else None)
    if not slope:
        with one_blas_thread():
            fit = least_squares(lambda p: r - p[0], x0=[np.median(r)], loss="soft_l1",
                                f_scale=f_scale_db)
        return float(fit.x[0]), 0.0
    prior = f_scale_db / slope_prior_db

    def residuals(p):
        return np.append(r - p[0] - p[1] * x, prior * p[1])

    with one_blas_thread():
        fit = least_squares(residuals, x0=[np.median(r), 0.0], loss="soft_l1",
                            f_scale=f_scale_db)
    return float(fit.x[0]), float(fit.x[1])


#: Observations (with a level, and censored, each) the censored fit uses at most: a seeded
#: random sample beyond, which moves the intercept by about 0.1 dB (6 dB / sqrt(5,000))
#: while a national run's millions of tests would cost a minute of likelihood evaluations.
CENSORED_FIT_MAX_OBS = 5_000


def _censored_fit(r: NDArray, x: NDArray, u: NDArray, xu: NDArray, *, slope: bool,
                  f_scale_db: float, slope_prior_db: float, w: NDArray | None = None,
                  wu: NDArray | None = None) -> tuple[float, float]:
    r"""Tobit fit of ``r = a + b x + e`` (logistic ``e``) with censored rows ``r <= u``.

    Logistic errors have the soft-L1 loss's linear tails (a bounded influence
    :math:`\tanh(z/2)` per test) and a closed-form distribution function for the censored
    rows, each term weighed by ``w`` (``wu`` for the censored; default 1). Maximum
    likelihood by Newton's method with the analytic Hessian (:func:`_newton`; L-BFGS-B with
    the analytic gradient where Newton stops outside the bounds or does not converge);
    parameters ``a``, ``b`` and the log of the logistic scale.
    """
    rng = np.random.default_rng(0)
    if r.size > CENSORED_FIT_MAX_OBS:
        keep = np.sort(rng.choice(r.size, CENSORED_FIT_MAX_OBS, replace=False))
        r, x, w = r[keep], x[keep], (w[keep] if w is not None else None)
    if u.size > CENSORED_FIT_MAX_OBS:
        keep = np.sort(rng.choice(u.size, CENSORED_FIT_MAX_OBS, replace=False))
        u, xu, wu = u[keep], xu[keep], (wu[keep] if wu is not None else None)
    nll = _TobitLoss(r, x, u, xu, w, wu, slope=slope, slope_prior_db=slope_prior_db)
    a0 = float(np.median(r))
    s0 = np.log(f_scale_db * np.sqrt(3.0) / np.pi)  # the logistic scale of that spread
    p0 = [a0, 0.0, s0] if slope else [a0, s0]
    bounds = ([(-60.0, 60.0), (-60.0, 60.0), (np.log(0.3), np.log(25.0))] if slope
              else [(-60.0, 60.0), (np.log(0.3), np.log(25.0))])
    # Newton's linear algebra is on plain floats, and OpenBLAS splits a dot product only
    # past 10,000 elements (CENSORED_FIT_MAX_OBS rows at most): no BLAS threads to hold
    best = _newton(nll, p0, bounds)
    if best is None:
        with one_blas_thread():  # OpenBLAS's threads cost 80x the CPU of so small a fit
            best = minimize(nll, p0, jac=True, method="L-BFGS-B", bounds=bounds).x
    return float(best[0]), float(best[1]) if slope else 0.0


class _TobitLoss:
    """The censored fit's negative log-likelihood, with the slope's prior, and derivatives.

    Called with the parameters (``a``, ``b`` when ``slope``, log scale): the value and
    the gradient (:func:`scipy.optimize.minimize`'s ``jac=True``); :meth:`with_hessian`
    gives the Hessian too.
    """

    def __init__(self, r: NDArray, x: NDArray, u: NDArray, xu: NDArray,
                 w: NDArray | None, wu: NDArray | None, *, slope: bool,
                 slope_prior_db: float) -> None:
        self.r, self.x, self.u, self.xu, self.w, self.wu = r, x, u, xu, w, wu
        self.slope = slope
        self.inv_var_b = 0.0 if not np.isfinite(slope_prior_db) else 1.0 / slope_prior_db**2
        self.n_w = float(r.size if w is None else w.sum())

    @staticmethod
    def _total(weight: NDArray | None, v: NDArray) -> float:
        return v.sum() if weight is None else weight @ v

    def __call__(self, p: NDArray) -> tuple[float, NDArray]:
        r, x, u, xu, w, wu = self.r, self.x, self.u, self.xu, self.w, self.wu
        inv_var_b, n_w, total = self.inv_var_b, self.n_w, self._total
        a, b, log_s = p[0], (p[1] if self.slope else 0.0), p[-1]
        s = np.exp(log_s)
        z = (r - a - b * x) / s
        # log density -z - 2 log(1 + e^-z) - log s; log distribution -log(1 + e^-zu)
        ll = -total(w, z + 2.0 * np.logaddexp(0.0, -z)) - n_w * log_s
        zu = (u - a - b * xu) / s
        ll -= total(wu, np.logaddexp(0.0, -zu))
        psi = np.tanh(0.5 * z)                     # -d ll_i / d z_i, with a level
        lam = expit(-zu)                           # d ll_j / d zu_j, censored
        psi, lam = (psi if w is None else w * psi), (lam if wu is None else wu * lam)
        # d ll: dz/da = -1/s, dz/db = -x/s, dz/dlog s = -z (zu alike)
        g_a = (psi.sum() - lam.sum()) / s
        g_b = (psi @ x - lam @ xu) / s - b * inv_var_b
        g_s = (psi @ z - n_w) - lam @ zu
        value = float(-ll + 0.5 * b * b * inv_var_b)
        grad = [-g_a, -g_b, -g_s] if self.slope else [-g_a, -g_s]
        return value, np.array(grad)

    def with_hessian(self, p: Sequence[float]) -> tuple[float, list[float], list[list[float]]]:
        r"""The value, the gradient and the Hessian at ``p`` (lists: Newton's arithmetic).

        The same likelihood as a call, its terms written through :math:`e = e^{-|z|}`
        (one exponential and one logarithm a row): with a level the term is
        :math:`|z| + 2 \log(1 + e)`, its derivative :math:`\psi = \mathrm{sign}(z)
        (1 - e) / (1 + e)` and its curvature :math:`2 e / (1 + e)^2`; censored,
        :math:`\max(-z, 0) + \log(1 + e)`, :math:`-\lambda` and :math:`e / (1 + e)^2`.
        The chain rule through :math:`z = (r - a - b x) / s` gives the rest.
        """
        a, b, log_s = p[0], (p[1] if self.slope else 0.0), p[-1]
        s = math.exp(log_s)
        z = (self.r - a - b * self.x) / s
        zu = (self.u - a - b * self.xu) / s
        az, azu = np.abs(z), np.abs(zu)
        e, eu = np.exp(-az), np.exp(-azu)
        psi = np.copysign((1.0 - e) / (1.0 + e), z)
        lam = np.where(zu > 0, eu, 1.0) / (1.0 + eu)
        curv, curv_u = 2.0 * e / (1.0 + e) ** 2, eu / (1.0 + eu) ** 2
        term, term_u = az + 2.0 * np.log1p(e), np.maximum(-zu, 0.0) + np.log1p(eu)
        if self.w is not None:
            term, psi, curv = self.w * term, self.w * psi, self.w * curv
        if self.wu is not None:
            term_u, lam, curv_u = self.wu * term_u, self.wu * lam, self.wu * curv_u
        x, xu = self.x, self.xu
        value = (term.sum() + term_u.sum() + self.n_w * log_s
                 + 0.5 * b * b * self.inv_var_b)
        # first derivatives in z: psi (with a level), -lam (censored); dz/da = -1/s,
        # dz/db = -x/s, dz/dlog s = -z
        g = [(lam.sum() - psi.sum()) / s, (lam @ xu - psi @ x) / s + b * self.inv_var_b,
             self.n_w - psi @ z + lam @ zu]
        mix, mix_u = curv * z + psi, curv_u * zu - lam
        h_ab = (curv @ x + curv_u @ xu) / s**2
        h_at = (mix.sum() + mix_u.sum()) / s
        h_bt = (mix @ x + mix_u @ xu) / s
        h = [[(curv.sum() + curv_u.sum()) / s**2, h_ab, h_at],
             [h_ab, (curv @ (x * x) + curv_u @ (xu * xu)) / s**2 + self.inv_var_b, h_bt],
             [h_at, h_bt, mix @ z + mix_u @ zu]]
        if not self.slope:
            g, h = [g[0], g[2]], [[h[0][0], h[0][2]], [h[2][0], h[2][2]]]
        return float(value), [float(v) for v in g], [[float(v) for v in row] for row in h]


#: Newton's method stops when the squared Newton decrement (twice the likelihood it
#: expects to gain) falls under this, after one more full step: in Newton's quadratic
#: convergence that step takes the parameters from about 1e-5 of the optimum to the
#: rounding of the arithmetic (a smaller bound would ask the line search for gains under
#: the rounding of a likelihood in the thousands).
NEWTON_DECREMENT = 1e-10


def _newton(nll: _TobitLoss, p0: Sequence[float], bounds: Sequence[tuple[float, float]],
            *, max_iter: int = 50) -> list[float] | None:
    """The minimum of ``nll`` by Newton's method with a backtracking line search.

    A Hessian that is not positive definite (far from the optimum) is shifted by a
    multiple of the identity until it is (Levenberg). None when the iterations do not
    converge or end outside ``bounds`` (the caller then uses L-BFGS-B, which honours
    them).
    """
    p = [float(v) for v in p0]
    with np.errstate(all="ignore"):  # a trial step too long overflows: it is rejected
        return _newton_steps(nll, p, bounds, max_iter)


def _newton_steps(nll: _TobitLoss, p: list[float], bounds: Sequence[tuple[float, float]],
                  max_iter: int) -> list[float] | None:
    f, g, h = nll.with_hessian(p)
    for _ in range(max_iter):
        step = _descent(g, h)
        if step is None:
            return None
        dec = -sum(gi * si for gi, si in zip(g, step, strict=True))
        if dec < NEWTON_DECREMENT:
            p = [pi + si for pi, si in zip(p, step, strict=True)]
            break
        t = 1.0
        for _ in range(40):
            trial = [pi + t * si for pi, si in zip(p, step, strict=True)]
            f_new, g_new, h_new = nll.with_hessian(trial)
            if f_new <= f - 1e-4 * t * dec:
                break
            t *= 0.5
        else:
            return None
        p, f, g, h = trial, f_new, g_new, h_new
    else:
        return None
    inside = all(lo <= v <= hi for v, (lo, hi) in zip(p, bounds, strict=True))
    return p if inside else None


def _descent(g: list[float], h: list[list[float]]) -> list[float] | None:
    """The Newton step ``-h^-1 g`` by Cholesky, on plain floats (two or three parameters).

    ``h`` is shifted by a multiple of the identity until it is positive definite; None
    when it holds a non-finite value.
    """
    if not all(math.isfinite(v) for v in (*g, *h[0], *h[1], *h[-1])):
        return None
    two = len(g) == 2
    if two:  # no slope: the same with b's row and column those of the identity
        g = [g[0], 0.0, g[1]]
        h = [[h[0][0], 0.0, h[0][1]], [0.0, 1.0, 0.0], [h[1][0], 0.0, h[1][1]]]
    (h00, h01, h02), (_, h11, h12), (_, _, h22) = h
    shift, scale = 0.0, max(abs(h00), abs(h11), abs(h22), 1e-12)
    for _ in range(60):
        d0 = h00 + shift
        if d0 > 0.0:
            l00 = math.sqrt(d0)
            l10, l20 = h01 / l00, h02 / l00
            d1 = h11 + shift - l10 * l10
            if d1 > 0.0:
                l11 = math.sqrt(d1)
                l21 = (h12 - l20 * l10) / l11
                d2 = h22 + shift - l20 * l20 - l21 * l21
                if d2 > 0.0:
                    l22 = math.sqrt(d2)
                    y0 = -g[0] / l00  # l y = -g, then l^T step = y
                    y1 = (-g[1] - l10 * y0) / l11
                    y2 = (-g[2] - l20 * y0 - l21 * y1) / l22
                    s2 = y2 / l22
                    s1 = (y1 - l21 * s2) / l11
                    s0 = (y0 - l10 * s1 - l20 * s2) / l00
                    return [s0, s2] if two else [s0, s1, s2]
        shift = max(2.0 * shift, 1e-8 * scale)
    return None


@dataclass(frozen=True, slots=True)
class Variogram:
    """Exponential semivariogram: nugget and partial sill in dB², correlation length in m."""

    nugget_db2: float
    psill_db2: float
    range_m: float

    def covariance(self, h_m: NDArray[np.floating]) -> NDArray[np.float64]:
        """Covariance of the correlated part at lag ``h_m`` (the nugget excluded), dB²."""
        return self.psill_db2 * np.exp(-np.asarray(h_m, dtype=float) / self.range_m)


def _exponential(h, nugget, psill, range_m):
    return nugget + psill * (1.0 - np.exp(-h / range_m))


def fit_variogram(x_m: ArrayLike, y_m: ArrayLike, residual_db: ArrayLike, *,
                  max_lag_m: float = 5000.0, bins: int = 20, max_points: int = 3000,
                  default_range_m: float = 500.0, min_range_m: float = 50.0,
                  seed: int = 0) -> Variogram:
    """Fit an exponential semivariogram to residuals at points (metric CRS).

    The sill is the residuals' variance (the field is taken as stationary); the nugget's
    share of it and the correlation length are fitted, by weighted least squares, to the
    semivariance of pairs binned by distance up to ``max_lag_m``. The correlation length
    is kept within ``min_range_m .. max_lag_m / 2``: measurements come in clusters (a drive
    test, a village), and pairs inside clusters alone say little about long ranges. Above
    ``max_points`` points a random subset is used. With too few pairs the variance is split
    evenly between nugget and sill with ``default_range_m``.
    """
    x = np.asarray(x_m, dtype=float)
    y = np.asarray(y_m, dtype=float)
    r = np.asarray(residual_db, dtype=float)
    var = float(np.var(r)) if r.size > 1 else 25.0
    var = max(var, 1e-6)
    max_range = max(max_lag_m / 2.0, min_range_m * 2)
    fallback = Variogram(0.5 * var, 0.5 * var, float(np.clip(default_range_m, min_range_m,
                                                                max_range)))
    if r.size > max_points:
        pick = np.random.default_rng(seed).choice(r.size, max_points, replace=False)
        x, y, r = x[pick], y[pick], r[pick]
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(max_lag_m, output_type="ndarray")
    if len(pairs) < 30:
        return fallback
    h = np.hypot(x[pairs[:, 0]] - x[pairs[:, 1]], y[pairs[:, 0]] - y[pairs[:, 1]])
    g = 0.5 * (r[pairs[:, 0]] - r[pairs[:, 1]]) ** 2
    edges = np.linspace(0.0, max_lag_m, bins + 1)
    idx = np.digitize(h, edges) - 1
    count = np.bincount(idx, minlength=bins)[:bins]
    gsum = np.bincount(idx, weights=g, minlength=bins)[:bins]
    hsum = np.bincount(idx, weights=h, minlength=bins)[:bins]
    use = count >= 5
    if use.sum() < 3:
        return fallback
    hb, gb, wb = hsum[use] / count[use], gsum[use] / count[use], count[use]

    def model(h, nugget_share, range_m):
        return _exponential(h, nugget_share * var, (1.0 - nugget_share) * var, range_m)

    start = float(np.clip(default_range_m, min_range_m, max_range))
    try:
        with one_blas_thread():
            (share, rng_m), _ = curve_fit(model, hb, gb, p0=[0.3, start],
                                          sigma=1.0 / np.sqrt(wb),
                                          bounds=([0.0, min_range_m], [1.0, max_range]))
    except (RuntimeError, ValueError):
        return fallback
    return Variogram(float(share * var), float((1.0 - share) * var), float(rng_m))


#: Observations up to which :func:`krige_candidates` tabulates the covariances between
#: every two of them once (a table of 4 million floats, 32 MB, at most) instead of making
#: each system's from their distances.
PAIR_TABLE_MAX_OBS = 2048


def simple_krige(x_obs: ArrayLike, y_obs: ArrayLike, r_obs: ArrayLike, x_q: ArrayLike,
                 y_q: ArrayLike, variogram: Variogram, *, noise_db2: ArrayLike | None = None,
                 neighbours: int = 8, reach: float = 4.0, chunk: int = 32_768,
                 workers: int = 1) -> NDArray[np.float64]:
    r"""Zero-mean simple kriging of residuals at query points, from the nearest observations.

    .. math:: \hat r(x_0) = \mathbf{c}_0^T (C + N)^{-1} \mathbf{r}

    with :math:`C_{ij} = c_1 e^{-h_{ij}/a}`, :math:`\mathbf{c}_0` the covariances to the
    query point, and :math:`N` the diagonal noise of each observation (the nugget, divided
    by the tests an observation averages, given as ``noise_db2``). Queries farther than
    ``reach`` correlation lengths from every observation get 0.

    Queries are solved ``chunk`` at a time (each holds ``neighbours``² covariances, 1-5 kB
    with temporaries), so memory is bounded whatever their number; ``workers`` threads take
    chunks in turn (the neighbour search and the batched solves release the GIL). Every
    query is independent, so the chunking does not change the figures.

    Eight neighbours by default: the work per query grows with their square (distances and
    covariances between them) and the solve with their cube. Twelve cost the national run
    (10 million tests, tests in reach of every cell) 54 s more of its classification
    (181 s -> 127 s with eight, classes within 11 of 100,315 villages), and changed no demo
    class (seed 7: 0.757 / 0.750 / 0.830 -> 0.760 / 0.753 / 0.839).

    Examples
    --------
    >>> v = Variogram(1.0, 10.0, 300.0)
    >>> est = simple_krige([0.0], [0.0], [-20.0], [0.0, 300.0, 5000.0], [0.0, 0.0, 0.0], v)
    >>> [round(float(e), 1) for e in est]
    [-18.2, -6.7, 0.0]
    """
    noise = None if noise_db2 is None else [noise_db2]
    return krige_candidates(x_obs, y_obs, r_obs, x_q, y_q, [variogram], noise_db2=noise,
                            neighbours=neighbours, reach=reach, chunk=chunk,
                            workers=workers)[0]


def krige_candidates(x_obs: ArrayLike, y_obs: ArrayLike, r_obs: ArrayLike, x_q: ArrayLike,
                     y_q: ArrayLike, variograms: Sequence[Variogram], *,
                     noise_db2: Sequence[ArrayLike | None] | None = None,
                     neighbours: int = 8, reach: float = 4.0, chunk: int = 32_768,
                     workers: int = 1) -> list[NDArray[np.float64]]:
    """:func:`simple_krige` of the same points under several variograms, one per result.

    What does not depend on the variogram is done once: the tree of the observations, the
    neighbour search (out to the longest ``reach`` times correlation length; each
    variogram keeps the neighbours within its own), and the distances between neighbours.
    Each result equals :func:`simple_krige` with that variogram and its ``noise_db2``
    (a sequence, one per variogram; None or a None entry: the variogram's nugget).

    Examples
    --------
    >>> vs = [Variogram(1.0, 10.0, 300.0), Variogram(5.0, 5.0, 1000.0)]
    >>> both = krige_candidates([0.0], [0.0], [-20.0], [0.0, 2000.0], [0.0, 0.0], vs)
    >>> [[round(float(e), 1) for e in est] for est in both]
    [[-18.2, 0.0], [-10.0, -1.4]]
    """
    xo = np.asarray(x_obs, dtype=float)
    yo = np.asarray(y_obs, dtype=float)
    ro = np.asarray(r_obs, dtype=float)
    xq = np.asarray(x_q, dtype=float)
    yq = np.asarray(y_q, dtype=float)
    given = list(noise_db2) if noise_db2 is not None else [None] * len(variograms)
    if len(given) != len(variograms):
        raise ValueError(f"noise_db2 has {len(given)} entries for {len(variograms)} "
                         "variograms; give one per variogram (or None)")
    noises = [np.full(ro.size, v.nugget_db2) if n is None
              else np.broadcast_to(np.asarray(n, dtype=float), ro.shape)
              for v, n in zip(variograms, given, strict=True)]
    outs = [np.zeros(xq.size) for _ in variograms]
    active = [j for j, v in enumerate(variograms) if v.psill_db2 > 0]
    if ro.size == 0 or xq.size == 0 or not active:
        return outs
    k = min(neighbours, ro.size)
    tree = cKDTree(np.column_stack([xo, yo]))
    bounds = {j: reach * variograms[j].range_m for j in active}
    step = max(int(chunk), 1)
    tables = {}
    if ro.size <= PAIR_TABLE_MAX_OBS and ro.size**2 <= xq.size * k * k:
        # the covariances between every two observations, once: each system is read from
        # them (the same distances and covariances, elementwise, as made system by system)
        lag = np.hypot(xo[:, None] - xo[None, :], yo[:, None] - yo[None, :])
        tables = {j: variograms[j].covariance(lag) for j in active}

    def solve(start: int) -> None:
        rows = np.arange(start, min(start + step, xq.size))
        dist, idx = tree.query(np.column_stack([xq[rows], yq[rows]]), k=k,
                               distance_upper_bound=max(bounds.values()))
        dist, idx = dist.reshape(-1, k), idx.reshape(-1, k)
        found = np.isfinite(dist)
        near = found.any(axis=1)
        rows, dist, idx, found = rows[near], dist[near], idx[near], found[near]
        idx = np.where(found, idx, 0)
        for j in active:
            # the nearest within this variogram's reach: a prefix of those found (strictly
            # closer than the bound, as the tree's search)
            valid = found & (dist < bounds[j])
            use = valid.any(axis=1)
            outs[j][rows[use]] = _krige_solve(variograms[j], noises[j], ro, xo, yo,
                                              dist[use], idx[use], valid[use],
                                              table=tables.get(j))

    starts = range(0, xq.size, step)
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(solve, starts))
    else:
        for start in starts:
            solve(start)
    return outs


def _krige_solve(variogram: Variogram, noise: NDArray, ro: NDArray, xo: NDArray,
                 yo: NDArray, dist: NDArray, idx: NDArray, valid: NDArray, *,
                 table: NDArray | None = None) -> NDArray[np.float64]:
    """Simple-kriging estimates of queries from their neighbours (``valid`` of ``idx``).

    ``dist``: query to neighbour (m), one row a query; ``xo``, ``yo``: the observations'
    coordinates (m); ``table``, when given, the covariances between every two of them.
    Queries with the same neighbours in the same order share one system (on a grid, a
    third of the queries or fewer; :func:`_shared_systems`): its covariances are made
    once, and each query solves it with its own right-hand side.
    """
    system, which = _shared_systems(variogram, noise, xo, yo, idx, valid, table=table)
    c0 = np.where(valid, variogram.covariance(np.where(valid, dist, 0.0)), 0.0)
    weights = np.linalg.solve(system[which], c0[:, :, None])[:, :, 0]
    return np.sum(weights * np.where(valid, ro[idx], 0.0), axis=1)


def _shared_systems(variogram: Variogram, noise: NDArray, xo: NDArray, yo: NDArray,
                    idx: NDArray, valid: NDArray, *, table: NDArray | None = None
                    ) -> tuple[NDArray[np.float64], NDArray]:
    """The kriging systems of the distinct neighbour lists, and each query's among them.

    A system depends on the query's neighbours (``idx`` where ``valid``, in order) only:
    each is made once, by the same elementwise operations as one made per query (or read
    from ``table``, the covariances between every two observations, made by them), so
    every entry (and every solve of it) is the same to the bit. Missing neighbours are
    uncorrelated with an infinite-like noise, so their weight is 0.
    """
    k = idx.shape[1]
    key = np.ascontiguousarray(np.where(valid, idx, -1))
    _, first, which = np.unique(key.view(np.dtype((np.void, key.itemsize * k))).ravel(),
                                return_index=True, return_inverse=True)
    idx, valid = idx[first], valid[first]
    if table is not None:
        cov = table[idx[:, :, None], idx[:, None, :]]
    else:
        px, py = xo[idx], yo[idx]
        h = np.hypot(px[:, :, None] - px[:, None, :], py[:, :, None] - py[:, None, :])
        cov = variogram.covariance(h)
    both = valid[:, :, None] & valid[:, None, :]
    cov = np.where(both, cov, 0.0)
    diag = np.where(valid, noise[idx], 1e12)
    cov[:, np.arange(k), np.arange(k)] += diag
    return cov, which.reshape(-1)
