"""Bullington's edge parameter along straight paths from one point, compiled when possible.

The plan asks one question of many straight paths from a site (the terrain high points'
people in sight, the microwave hops to hubs): :func:`coverage.radio.sample_profiles` then
:func:`coverage.radio.bullington_nu_root_m`. :func:`nu_from_point` returns the same
parameter. With numba (:mod:`coverage._compiled`) the two run as one compiled loop over
the paths, the same arithmetic in the same order without the arrays of samples between
them, so the values are equal to the bit (IEEE double, no fast-math; ``tests/
test_plan_sight.py`` checks it on random terrain); without numba the numpy functions run.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
from numpy.typing import NDArray

from .. import _compiled, radio
from ..radio.pathloss import EARTH_RADIUS_M, MIN_DISTANCE_M

__all__ = ["compiled", "nu_from_point"]

_LOCK = threading.Lock()
_STATE: dict[str, SimpleNamespace | None] = {}


def compiled() -> SimpleNamespace | None:
    """The compiled loop, or None where :func:`coverage._compiled.kernels` is None."""
    with _LOCK:
        if "kernels" not in _STATE:
            _STATE["kernels"] = (None if _compiled.kernels() is None
                                 else _compile(_compiled._import_numba()))
        return _STATE["kernels"]


def nu_from_point(
    ground: NDArray[np.floating],
    inv_coeffs: tuple[float, float, float, float, float, float],
    x0: float,
    y0: float,
    x1: NDArray[np.floating],
    y1: NDArray[np.floating],
    samples: int,
    distance_m: NDArray[np.floating],
    tx_altitude_m: float,
    rx_altitude_m: NDArray[np.floating],
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Bullington :math:`\nu\sqrt{\lambda}` (m^0.5) of the paths from (x0, y0) to each end.

    ``bullington_nu_root_m(distance_m, sample_profiles(ground, inv_coeffs, x0, y0, x1, y1,
    samples), tx_altitude_m, rx_altitude_m)``, to the bit, in one pass where numba is
    available.

    Parameters
    ----------
    ground : ndarray, shape (rows, cols)
        Elevation grid in metres, without NaN.
    inv_coeffs : tuple
        Inverse affine transform of ``ground`` (map metres to fractional col, row).
    x0, y0 : float
        Start of every path (metres, the grid's CRS).
    x1, y1 : ndarray, shape (n,)
        Ends of the paths.
    samples : int
        Samples strictly inside each path.
    distance_m : ndarray, shape (n,)
        Length of each path, metres.
    tx_altitude_m : float
        Altitude of the antenna at the start (m above the datum).
    rx_altitude_m : ndarray, shape (n,)
        Altitude of the antenna at each end.
    k_factor : float
        Effective earth-radius factor.

    Returns
    -------
    ndarray, shape (n,)
    """
    kern = compiled()
    if kern is None:
        terrain = radio.sample_profiles(ground, inv_coeffs, x0, y0, x1, y1, samples)
        return radio.bullington_nu_root_m(distance_m, terrain, tx_altitude_m, rx_altitude_m,
                                          k_factor=k_factor)
    n = np.asarray(x1).size
    frac = np.arange(1, samples + 1, dtype=float) / (samples + 1)
    d = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
    h_rs = np.broadcast_to(np.asarray(rx_altitude_m, dtype=float), (n,))
    out = np.empty(n)
    kern.nu_from_point(np.ascontiguousarray(ground, dtype=float),
                       np.array(inv_coeffs, dtype=float), float(x0), float(y0),
                       np.ascontiguousarray(x1, dtype=float),
                       np.ascontiguousarray(y1, dtype=float), frac, d, float(tx_altitude_m),
                       np.ascontiguousarray(h_rs), 2.0 * k_factor * EARTH_RADIUS_M, out)
    return out


def _compile(numba) -> SimpleNamespace:
    jit = numba.njit(cache=True, nogil=True)

    @jit
    def nu_from_point(ground, inv, x0, y0, x1, y1, frac, d, h_ts, h_rs, bulge, out):
        # sample_profiles (nearest cell) and bullington_nu_root_m, path by path, with the
        # numpy code's expressions in its order
        a, b, c, dd, e, f = inv[0], inv[1], inv[2], inv[3], inv[4], inv[5]
        rows_n, cols_n = ground.shape
        k = frac.size
        h = np.empty(k)
        d1 = np.empty(k)
        d2 = np.empty(k)
        for i in range(x1.size):
            di = d[i]
            hr = h_rs[i]
            s_tim = -np.inf
            s_rim = -np.inf
            for j in range(k):
                xs = x0 + (x1[i] - x0) * frac[j]
                ys = y0 + (y1[i] - y0) * frac[j]
                col = min(max(np.int64(a * xs + b * ys + c), 0), cols_n - 1)
                row = min(max(np.int64(dd * xs + e * ys + f), 0), rows_n - 1)
                d1[j] = frac[j] * di
                d2[j] = di - d1[j]
                h[j] = ground[row, col] + d1[j] * d2[j] / bulge
                s_tim = max(s_tim, (h[j] - h_ts) / d1[j])
                s_rim = max(s_rim, (h[j] - hr) / d2[j])
            if s_tim < (hr - h_ts) / di:
                nu = -np.inf
                for j in range(k):
                    above = h[j] - (h_ts * d2[j] + hr * d1[j]) / di
                    nu = max(nu, above * np.sqrt(2.0 * di / (d1[j] * d2[j])))
                out[i] = nu
            else:
                denom = max(s_tim + s_rim, 1e-12)
                d_bp = min(max((hr - h_ts + s_rim * di) / denom, 1e-3 * di), 0.999 * di)
                h_bp = h_ts + s_tim * d_bp - (h_ts * (di - d_bp) + hr * d_bp) / di
                out[i] = h_bp * np.sqrt(2.0 * di / (d_bp * (di - d_bp)))

    return SimpleNamespace(nu_from_point=nu_from_point)
