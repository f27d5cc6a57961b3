r"""NTIA/ITS Irregular Terrain Model (ITM, Longley-Rice), vectorised over many paths.

ITM predicts the basic transmission loss between two terminals from 20 MHz to 20 GHz over
irregular terrain: free space, two-ray line of sight, knife-edge and smooth-earth
diffraction and troposcatter, blended by the Longley-Rice method, then shifted by the
time, location and situation variability of the received level. This module implements
version 1.2.2 of the algorithm (the NTIA reference implementation, ``github.com/NTIA/itm``
v1.3 and later, is functionally identical) in numpy, every function working on arrays of
paths at once. It is written from the published algorithm; the equation numbers in the
comments refer to:

- [Alg] G.A. Hufford (1995). The ITS Irregular Terrain Model, version 1.2.2: the
  algorithm. NTIA/ITS.
- [TN101] P.L. Rice, A.G. Longley, K.A. Norton, A.P. Barsis (1967). Transmission loss
  predictions for tropospheric communication circuits. NBS Technical Note 101.
- [ERL] A.G. Longley, P.L. Rice (1968). Prediction of tropospheric radio transmission
  loss over irregular terrain: a computer method. ESSA Technical Report ERL 79-ITS 67.
- [TR82] G.A. Hufford, A.G. Longley, W.A. Kissick (1982). A guide to the use of the ITS
  Irregular Terrain Model in the area prediction mode. NTIA Report 82-100.
- [Vog] L.E. Vogler (1964). Calculation of groundwave attenuation in the far diffraction
  region. Radio Science 68D(7), 819-826.

Two entry points:

- :func:`itm_p2p`: point-to-point mode, over terrain profiles (heights every ``step_m``
  from transmitter to receiver, the terminals' ground included). The profile gives the
  horizons, the effective antenna heights and the terrain irregularity
  :math:`\Delta h` (:func:`profile_parameters`).
- :func:`itm_area`: area mode, from a path length, :math:`\Delta h` and siting criteria.

Both return an :class:`ItmResult` with the loss and the model's intermediate values, and
report ITM's warning flags (:class:`ItmFlag`) as an :class:`coverage.errors.ItmWarning`
naming the share of paths concerned. Inputs outside ITM's domain (heights outside
0.5-3000 m, frequency outside 20 MHz-20 GHz, an unknown climate, a profile of fewer than
three points ...) raise :class:`coverage.errors.ParameterError` naming the setting and its
valid range.

Conventions: heights and distances in metres, frequency in MHz, angles in radians,
losses in dB; the ground's relative permittivity and conductivity (S/m); the surface
refractivity :math:`N_0` in N-units (the minimum monthly mean, reduced to sea level);
percentages in (0, 100).
"""

from __future__ import annotations

import enum
import functools
import math
import warnings
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ItmWarning, ParameterError

__all__ = [
    "CLIMATES",
    "MDVAR_MODES",
    "ItmFlag",
    "ItmResult",
    "check_inputs",
    "free_space_loss_db",
    "horizons",
    "inverse_ccdf",
    "itm_area",
    "itm_p2p",
    "longley_rice",
    "loss_floor_db",
    "profile_parameters",
    "variability_db",
    "warn_flags",
]

#: Radio climates of ITM ([TN101] section 10), by code.
CLIMATES: dict[int, str] = {
    1: "equatorial",
    2: "continental subtropical",
    3: "maritime subtropical",
    4: "desert",
    5: "continental temperate",
    6: "maritime temperate over land",
    7: "maritime temperate over sea",
}
#: Modes of variability ([TR82] p. 11): the base mode, plus 10 to drop location
#: variability, plus 20 to drop direct situation variability.
MDVAR_MODES: dict[int, str] = {0: "single message", 1: "accidental", 2: "mobile",
                               3: "broadcast"}
#: Propagation modes reported in :attr:`ItmResult.mode`.
LINE_OF_SIGHT, DIFFRACTION, TROPOSCATTER = 1, 2, 3

_A0_M = 6_370e3  # earth radius of Vogler's reference, m
_A9000_M = 9_000e3  # earth radius of the effective distance of the variability, m
_GAMMA_A = 157e-9  # curvature of the actual earth, 1/m
_THIRD = 1.0 / 3.0


class ItmFlag(enum.IntFlag):
    """ITM's warning flags: a result was computed, but outside the model's validity."""

    TX_TERMINAL_HEIGHT = 0x0001  # transmitter height outside 1-1000 m
    RX_TERMINAL_HEIGHT = 0x0002  # receiver height outside 1-1000 m
    FREQUENCY = 0x0004  # frequency outside 40 MHz-10 GHz
    PATH_DISTANCE_TOO_BIG_1 = 0x0008  # path longer than 1000 km
    PATH_DISTANCE_TOO_BIG_2 = 0x0010  # path longer than 2000 km
    PATH_DISTANCE_TOO_SMALL_1 = 0x0020  # path shorter than |h_e1 - h_e2| / 0.2
    PATH_DISTANCE_TOO_SMALL_2 = 0x0040  # path shorter than 1 km
    TX_HORIZON_ANGLE = 0x0080  # transmitter horizon angle above 200 mrad
    RX_HORIZON_ANGLE = 0x0100  # receiver horizon angle above 200 mrad
    TX_HORIZON_DISTANCE_1 = 0x0200  # tx horizon nearer than 1/10 of the smooth-earth one
    RX_HORIZON_DISTANCE_1 = 0x0400  # rx horizon nearer than 1/10 of the smooth-earth one
    TX_HORIZON_DISTANCE_2 = 0x0800  # tx horizon beyond 3 times the smooth-earth one
    RX_HORIZON_DISTANCE_2 = 0x1000  # rx horizon beyond 3 times the smooth-earth one
    EXTREME_VARIABILITIES = 0x2000  # a percentage far in the tail (|z| > 3.1)
    SURFACE_REFRACTIVITY = 0x4000  # surface refractivity under 250 N-units


_FLAG_TEXT = {
    ItmFlag.TX_TERMINAL_HEIGHT: "transmitter height outside 1-1000 m",
    ItmFlag.RX_TERMINAL_HEIGHT: "receiver height outside 1-1000 m",
    ItmFlag.FREQUENCY: "frequency outside 40-10000 MHz",
    ItmFlag.PATH_DISTANCE_TOO_BIG_1: "path longer than 1000 km",
    ItmFlag.PATH_DISTANCE_TOO_BIG_2: "path longer than 2000 km",
    ItmFlag.PATH_DISTANCE_TOO_SMALL_1: "path shorter than the effective-height "
                                       "difference / 0.2",
    ItmFlag.PATH_DISTANCE_TOO_SMALL_2: "path shorter than 1 km",
    ItmFlag.TX_HORIZON_ANGLE: "transmitter horizon angle above 200 mrad",
    ItmFlag.RX_HORIZON_ANGLE: "receiver horizon angle above 200 mrad",
    ItmFlag.TX_HORIZON_DISTANCE_1: "transmitter horizon under 1/10 of the smooth-earth one",
    ItmFlag.RX_HORIZON_DISTANCE_1: "receiver horizon under 1/10 of the smooth-earth one",
    ItmFlag.TX_HORIZON_DISTANCE_2: "transmitter horizon beyond 3x the smooth-earth one",
    ItmFlag.RX_HORIZON_DISTANCE_2: "receiver horizon beyond 3x the smooth-earth one",
    ItmFlag.EXTREME_VARIABILITIES: "a time/location/situation percentage far in the tail",
    ItmFlag.SURFACE_REFRACTIVITY: "surface refractivity under 250 N-units",
}


class ItmResult(NamedTuple):
    """Loss and intermediate values of ITM for ``m`` paths (arrays of shape ``(m,)``).

    ``theta_hzn``, ``d_hzn_m`` and ``h_e_m`` have shape ``(2, m)``: transmitter, receiver.
    """

    loss_db: NDArray[np.float64]  # basic transmission loss
    a_ref_db: NDArray[np.float64]  # reference attenuation (median, before variability)
    free_space_db: NDArray[np.float64]  # free-space loss
    mode: NDArray[np.int8]  # 1 line of sight, 2 diffraction, 3 troposcatter
    flags: NDArray[np.int32]  # ItmFlag bits per path
    theta_hzn: NDArray[np.float64]  # horizon elevation angles, rad
    d_hzn_m: NDArray[np.float64]  # horizon distances, m
    h_e_m: NDArray[np.float64]  # effective antenna heights, m
    delta_h_m: NDArray[np.float64]  # terrain irregularity, m
    n_s: NDArray[np.float64]  # surface refractivity, N-units
    distance_m: NDArray[np.float64]  # path length, m


# ---------------------------------------------------------------------------------------
# Inputs


def _floats(values) -> np.ndarray:
    """An array of floats keeping a floating dtype (float32 in, float32 out)."""
    a = np.asarray(values)
    return a if a.dtype.kind == "f" else a.astype(float)


def _polarization_code(polarization: str | int) -> int:
    codes = {"horizontal": 0, "vertical": 1, 0: 0, 1: 1}
    if polarization not in codes:
        raise ParameterError(f"polarization={polarization!r}: use 'horizontal' or 'vertical'")
    return codes[polarization]


def _check_range(name: str, values, low: float, high: float, unit: str = "", *,
                 open_low: bool = False, open_high: bool = False) -> None:
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v) | (v <= low if open_low else v < low) | (
        v >= high if open_high else v > high)
    if bad.any():
        first = v[bad].ravel()[0] if v.ndim else float(v)
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise ParameterError(f"{name}={first:g}{unit} is outside ITM's range "
                             f"{lo}{low:g}, {high:g}{hi}{unit}")


def check_inputs(tx_height_m, rx_height_m, freq_mhz, climate, refractivity_n0, polarization,
              permittivity, conductivity_s_m, mdvar, time_pct, location_pct, situation_pct
              ) -> int:
    """ITM's input checks (its ValidateInputs): errors raised, warning flags returned."""
    _check_range("tx_height_m", tx_height_m, 0.5, 3000.0, " m")
    _check_range("rx_height_m", rx_height_m, 0.5, 3000.0, " m")
    if climate not in CLIMATES:
        raise ParameterError(f"climate={climate!r} is not an ITM radio climate: use "
                             + ", ".join(f"{k} ({v})" for k, v in CLIMATES.items()))
    _check_range("refractivity_n0", refractivity_n0, 250.0, 400.0, " N-units")
    _check_range("freq_mhz", freq_mhz, 20.0, 20_000.0, " MHz")
    _polarization_code(polarization)
    _check_range("permittivity", permittivity, 1.0, np.inf)
    _check_range("conductivity_s_m", conductivity_s_m, 0.0, np.inf, " S/m", open_low=True)
    if mdvar % 10 not in MDVAR_MODES or not 0 <= mdvar <= 33:
        raise ParameterError(f"mdvar={mdvar!r}: use 0 (single message), 1 (accidental), "
                             "2 (mobile) or 3 (broadcast), plus 10 to drop location "
                             "variability and/or 20 to drop situation variability")
    for name, value in (("time_pct", time_pct), ("location_pct", location_pct),
                        ("situation_pct", situation_pct)):
        _check_range(name, value, 0.0, 100.0, " %", open_low=True, open_high=True)
    flags = 0
    h_tx, h_rx = np.asarray(tx_height_m, float), np.asarray(rx_height_m, float)
    if ((h_tx < 1.0) | (h_tx > 1000.0)).any():
        flags |= ItmFlag.TX_TERMINAL_HEIGHT
    if ((h_rx < 1.0) | (h_rx > 1000.0)).any():
        flags |= ItmFlag.RX_TERMINAL_HEIGHT
    f = np.asarray(freq_mhz, float)
    if ((f < 40.0) | (f > 10_000.0)).any():
        flags |= ItmFlag.FREQUENCY
    return int(flags)


def ground_impedance(freq_mhz: ArrayLike, permittivity: float, conductivity_s_m: float,
                     polarization: str | int) -> NDArray[np.complex128]:
    r"""Surface transfer impedance of the ground, :math:`Z_g` ([Alg] eq. 2.1).

    :math:`\epsilon_r' = \epsilon_r + i\, 18000\, \sigma / f_{MHz}`,
    :math:`Z_g = \sqrt{\epsilon_r' - 1}` (horizontal), divided by :math:`\epsilon_r'`
    (vertical). ITM needs :math:`\Re Z_g > |\Im Z_g|`.
    """
    eps = permittivity + 1j * 18_000.0 * conductivity_s_m / np.asarray(freq_mhz, float)
    z = np.sqrt(eps - 1.0)
    if _polarization_code(polarization) == 1:
        z = z / eps
    bad = z.real <= np.abs(z.imag)
    if np.any(bad):
        raise ParameterError(
            f"permittivity={permittivity:g} and conductivity_s_m={conductivity_s_m:g} give "
            "a ground impedance whose imaginary part exceeds its real part at "
            f"{np.asarray(freq_mhz, float)[bad].ravel()[0] if np.ndim(freq_mhz) else freq_mhz:g}"
            " MHz, outside ITM's domain: use a larger permittivity or smaller conductivity "
            "(average ground: 15 and 0.005 S/m)")
    return z


def surface_refractivity(refractivity_n0: float, mean_height_m: ArrayLike
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Surface refractivity :math:`N_s` and effective earth curvature :math:`\gamma_e`.

    :math:`N_s = N_0 e^{-h_s / 9460}` ([TN101] eq. 4.3) with :math:`h_s` the mean ground
    height of the path (metres above sea level) and
    :math:`\gamma_e = \gamma_a (1 - 0.04665 e^{N_s / 179.3})` ([TN101] eq. 4.4), 1/m.
    """
    n_s = refractivity_n0 * np.exp(-np.asarray(mean_height_m, float) / 9460.0)
    return n_s, _GAMMA_A * (1.0 - 0.04665 * np.exp(n_s / 179.3))


def free_space_loss_db(distance_m: ArrayLike, freq_mhz: ArrayLike) -> NDArray[np.float64]:
    """Free-space basic transmission loss, dB (ITM's: 32.45 + 20 log f + 20 log d_km)."""
    d = _floats(distance_m)
    log_f = math.log10(freq_mhz) if np.ndim(freq_mhz) == 0 else np.log10(freq_mhz)
    return 32.45 + 20.0 * log_f + 20.0 * np.log10(d / 1000.0)


def inverse_ccdf(q: ArrayLike) -> NDArray[np.float64]:
    """Inverse of the complementary normal distribution (Abramowitz-Stegun 26.2.23).

    ITM's approximation (error under 4.5e-4), kept so that results match the reference.
    """
    q = np.asarray(q, dtype=float)
    x = np.where(q > 0.5, 1.0 - q, q)
    t = np.sqrt(-2.0 * np.log(x))
    zeta = ((0.010328 * t + 0.802853) * t + 2.515516) / (
        ((0.001308 * t + 0.189269) * t + 1.432788) * t + 1.0)
    return np.where(q > 0.5, zeta - t, t - zeta)


# ---------------------------------------------------------------------------------------
# Terrain profile (ITM's qlrpfl)


class _Profiles:
    """Terrain profiles as rows of a height matrix, with prefix sums along the rows.

    Path ``p`` reads row ``rows[p]`` of ``z``: heights ``z[rows[p], 0..n[p]]`` every
    ``xi[p]`` metres; ``last[p]``, when given, replaces its height at index ``n[p]`` (the
    receiver's own ground on a ray shared by many receivers). Prefix sums of ``z`` and
    ``k z`` serve least-squares lines over any index range in O(1).
    """

    def __init__(self, z: NDArray[np.float64], n: NDArray[np.int64], xi: NDArray[np.float64],
                 rows: NDArray[np.int64] | None = None, last: NDArray[np.float64] | None = None):
        self.z, self.n, self.xi, self.last = z, n, xi, last
        self.rows = np.arange(z.shape[0]) if rows is None else rows
        c0 = np.zeros((z.shape[0], z.shape[1] + 1))
        np.cumsum(z, axis=1, out=c0[:, 1:])
        c1 = np.zeros_like(c0)
        np.cumsum(z * np.arange(z.shape[1]), axis=1, out=c1[:, 1:])
        self.c0, self.c1 = c0, c1

    def view(self, rows, n, xi, last=None) -> _Profiles:
        """Other paths over the same rows (sharing the heights and their prefix sums)."""
        out = object.__new__(_Profiles)
        out.z, out.c0, out.c1 = self.z, self.c0, self.c1
        out.rows, out.n, out.xi, out.last = rows, n, xi, last
        return out

    def at(self, i):
        k = self.z.shape[1]
        value = self.z.ravel()[self.rows * k + np.minimum(i, k - 1)]
        if self.last is not None:
            value = np.where(i == self.n, self.last, value)
        return value

    def sums(self, lo, hi):
        """Sums of ``z[k]`` and ``k z[k]`` for ``lo <= k < hi`` (``hi <= n``)."""
        k = self.c0.shape[1]
        base = self.rows * k
        c0, c1 = self.c0.ravel(), self.c1.ravel()
        return c0[base + hi] - c0[base + lo], c1[base + hi] - c1[base + lo]

    def mean_height(self):
        """Mean height without the first and last tenth of the path ([Alg] 3.1), m."""
        n = self.n
        p10 = (0.1 * n).astype(np.int64)
        hi = n - p10 + 1
        total, _ = self.sums(p10, np.minimum(hi, n))
        total = total + self.at(np.minimum(hi - 1, n)) * (hi > n)
        return total / (n - 2 * p10 + 1)


def _least_squares_ends(prof: _Profiles, d_start_m, d_end_m):
    """Least-squares line through the profile between two distances, at both ends.

    ITM's zlsq1: indices ``i0 = floor(d_start / xi)`` to ``i1 = n - floor(n - d_end / xi)``
    (widened by one each way if empty), trapezoid weights (half weight at both ends);
    returns the line's heights at index 0 and at index ``n``.
    """
    n, xi = prof.n, prof.xi
    i0 = np.floor(np.maximum(d_start_m / xi, 0.0)).astype(np.int64)
    i1 = n - np.floor(np.maximum(n - d_end_m / xi, 0.0)).astype(np.int64)
    empty = i1 <= i0
    if empty.any():
        i0 = np.where(empty, np.maximum(i0 - 1, 0), i0)
        i1 = np.where(empty, n - np.maximum(n - (i1 + 1), 0), i1)
    length = (i1 - i0).astype(float)
    centre = (i0 + i1) / 2.0
    z0, z1 = prof.at(i0), prof.at(i1)
    s0, s1 = prof.sums(i0 + 1, i1)  # the interior points
    total = 0.5 * (z0 + z1) + s0
    moment = s1 - centre * s0 + 0.5 * (z1 - z0) * (length / 2.0)
    mean = total / length
    slope = moment * 12.0 / ((length * length + 2.0) * length)
    return mean - slope * centre, mean + slope * (n - centre)


def _delta_h(prof: _Profiles, d_start_m, d_end_m, *, many: bool = False
             ) -> NDArray[np.float64]:
    r"""Terrain irregularity :math:`\Delta h` between two distances of each profile, m.

    ITM's dlthx: the profile between ``d_start`` and ``d_end`` resampled (linear
    interpolation) at ``10 p - 5`` points, ``p = clip(int(0.1 (span + 8)), 4, 25)`` with the
    span in steps; a least-squares line removed; the interdecile range of the residuals
    (the ``p``-th largest minus the ``p``-th smallest), corrected to an infinite path by
    [ERL] eq. 3: :math:`\Delta h = \Delta h(d) / (1 - 0.8 e^{-d / 50\,km})`. ``many``
    resamples in float32 (for the many paths of a grid).
    """
    xi = prof.xi
    x_start = d_start_m / xi
    x_end = d_end_m / xi
    span = x_end - x_start
    out = np.zeros(span.shape)
    ok = span >= 2.0
    if not ok.any():
        return out
    p10 = np.clip((0.1 * (span + 8.0)).astype(np.int64), 4, 25)
    out_ok = np.empty(int(ok.sum()))
    # rows of equal sample count together (one array each; at most 22 counts)
    for p in np.unique(p10[ok]):
        rows = np.flatnonzero(ok & (p10 == p))
        m = 10 * int(p) - 5
        pos = x_start[rows, None] + np.arange(m) * (span[rows] / (m - 1))[:, None]
        n = prof.n[rows, None]
        i = np.minimum(np.maximum(np.floor(x_start[rows]).astype(np.int64)[:, None],
                                  np.ceil(pos).astype(np.int64) - 1), n - 1)
        r = prof.rows[rows, None]
        z_lo, z_hi = prof.z[r, i], prof.z[r, np.minimum(i + 1, prof.z.shape[1] - 1)]
        if prof.last is not None:  # the receiver's own ground at index n
            z_hi = np.where(i + 1 == n, prof.last[rows, None], z_hi)
        s = z_hi + (z_hi - z_lo) * (pos - i - 1)
        if many:
            s = s.astype(np.float32)  # heights to a tenth of a millimetre: the same deciles
        # least-squares line with trapezoid weights over the m samples (as zlsq1)
        k = np.arange(m, dtype=s.dtype)
        centre = (m - 1) / 2.0
        w = np.ones(m, dtype=s.dtype)
        w[0] = w[-1] = 0.5
        # row by row (numpy's pairwise sum), not a matrix product: BLAS may round a row
        # differently with the number of rows, and a path's level must not depend on the
        # other paths computed with it
        mean = (s * w).sum(axis=1) / (m - 1)
        slope = (s * (w * (k - centre))).sum(axis=1) * 12.0 / (((m - 1) ** 2 + 2.0) * (m - 1))
        resid = s - (mean[:, None] + slope[:, None] * (k - centre))
        part = np.partition(resid, (int(p) - 1, m - int(p)), axis=1)
        out_ok[np.searchsorted(np.flatnonzero(ok), rows)] = (
            part[:, m - int(p)] - part[:, int(p) - 1])
    out[ok] = out_ok / (1.0 - 0.8 * np.exp(-(d_end_m[ok] - d_start_m[ok]) / 50e3))
    return out


def horizons(z: NDArray[np.floating], n: ArrayLike, step_m: ArrayLike, tx_height_m: ArrayLike,
             rx_height_m: ArrayLike, a_e_m: ArrayLike
             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Horizon elevation angles and distances of both terminals over profiles ([Alg] 3.5).

    Each terminal's horizon is the profile point of greatest elevation angle
    :math:`\theta = (z_i - z_t)/d_i - d_i / (2 a_e)` among the points strictly between
    the terminals; a terminal that sees the other over all of them keeps the direct
    path's angle and the path length.

    Parameters
    ----------
    z : ndarray, shape (m, k)
        Ground heights, metres above sea level, padded beyond ``n``.
    n : array_like of int, shape (m,)
        Intervals of each profile (``n + 1`` heights, receiver's ground at ``z[:, n]``).
    step_m, tx_height_m, rx_height_m, a_e_m : array_like, shape (m,) or scalar
        Step of the profile, antenna heights above ground, effective earth radius, m.

    Returns
    -------
    theta_hzn, d_hzn_m : ndarray, shape (2, m)
    """
    z = np.asarray(z, float)
    m, k = z.shape
    n = np.broadcast_to(np.asarray(n, np.int64), (m,))
    xi, h_tx, h_rx, a_e = (np.broadcast_to(np.asarray(v, float), (m,))
                           for v in (step_m, tx_height_m, rx_height_m, a_e_m))
    rows = np.arange(m)
    d = n * xi
    z_tx = z[:, 0] + h_tx
    z_rx = z[rows, n] + h_rx
    theta = np.empty((2, m))
    d_hzn = np.empty((2, m))
    theta[0] = (z_rx - z_tx) / d - d / (2.0 * a_e)
    theta[1] = -(z_rx - z_tx) / d - d / (2.0 * a_e)
    d_hzn[:] = d
    idx = np.arange(k)
    inner = (idx[None, :] >= 1) & (idx[None, :] < n[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        d_tx = idx[None, :] * xi[:, None]
        d_rx = d[:, None] - d_tx
        th_tx = np.where(inner, (z - z_tx[:, None]) / d_tx - d_tx / (2.0 * a_e[:, None]),
                         -np.inf)
        th_rx = np.where(inner, (z - z_rx[:, None]) / d_rx - d_rx / (2.0 * a_e[:, None]),
                         -np.inf)
    # the first point of greatest angle, as a strict running comparison picks
    for j, th, dist in ((0, th_tx, d_tx), (1, th_rx, d_rx)):
        best = np.argmax(th, axis=1)
        value = th[rows, best]
        better = value > theta[j]
        theta[j] = np.where(better, value, theta[j])
        d_hzn[j] = np.where(better, dist[rows, best], d_hzn[j])
    return theta, d_hzn


def profile_parameters(z: NDArray[np.floating], n: ArrayLike, step_m: ArrayLike,
                       tx_height_m: ArrayLike, rx_height_m: ArrayLike, a_e_m: ArrayLike, *,
                       theta_hzn: NDArray[np.floating] | None = None,
                       d_hzn_m: NDArray[np.floating] | None = None):
    r"""ITM's path parameters from terrain profiles (its qlrpfl, [Alg] section 3).

    Horizons (:func:`horizons`, or given), then :math:`\Delta h` between
    :math:`\min(15 h, d_{L}/10)` from each end ([TR82] p. 25), then effective heights:
    the antenna height plus the ground's rise over a least-squares line through the
    terrain in front of the antenna (the whole path when the horizons lie well beyond it,
    :math:`d_{L1} + d_{L2} > 1.5 d`, which then sets the horizons as in area mode,
    [Alg] eq. 3.3-3.4; otherwise up to 90% of each horizon distance).

    Returns ``(theta_hzn, d_hzn_m, h_e_m, delta_h_m, distance_m)``, the first three of
    shape ``(2, m)``.
    """
    z = np.asarray(z, float)
    m = z.shape[0]
    n = np.broadcast_to(np.asarray(n, np.int64), (m,))
    xi, h_tx, h_rx, a_e = (np.broadcast_to(np.asarray(v, float), (m,))
                           for v in (step_m, tx_height_m, rx_height_m, a_e_m))
    if theta_hzn is None or d_hzn_m is None:
        theta_hzn, d_hzn_m = horizons(z, n, xi, h_tx, h_rx, a_e)
    prof = _Profiles(z, n, xi)
    d = n * xi
    theta_hzn, d_hzn = np.array(theta_hzn, float), np.array(d_hzn_m, float)
    d_start = np.minimum(15.0 * h_tx, 0.1 * d_hzn[0])
    d_end = d - np.minimum(15.0 * h_rx, 0.1 * d_hzn[1])
    delta_h = _delta_h(prof, d_start, d_end)
    h_e = effective_heights(prof, h_tx, h_rx, a_e, theta_hzn, d_hzn, delta_h)
    return theta_hzn, d_hzn, h_e, delta_h, d


def effective_heights(prof: _Profiles, h_tx, h_rx, a_e, theta_hzn, d_hzn, delta_h
                      ) -> NDArray[np.float64]:
    """Effective antenna heights (2, m), m; ``theta_hzn`` and ``d_hzn`` updated in place.

    See :func:`profile_parameters`.
    """
    n, xi = prof.n, prof.xi
    d = n * xi
    m = d.shape[0]
    d_start = np.minimum(15.0 * h_tx, 0.1 * d_hzn[0])
    d_end = d - np.minimum(15.0 * h_rx, 0.1 * d_hzn[1])
    z_tx, z_rx = prof.at(np.zeros(m, np.int64)), prof.at(n)
    h_e = np.empty((2, m))
    wide = d_hzn[0] + d_hzn[1] > 1.5 * d
    if wide.any():
        fit_tx, fit_rx = _least_squares_ends(prof, d_start, d_end)
        h_e[0] = np.where(wide, h_tx + np.maximum(z_tx - fit_tx, 0.0), 0.0)
        h_e[1] = np.where(wide, h_rx + np.maximum(z_rx - fit_rx, 0.0), 0.0)
    if (~wide).any():
        fit_tx, _ = _least_squares_ends(prof, d_start, 0.9 * d_hzn[0])
        _, fit_rx = _least_squares_ends(prof, d - 0.9 * d_hzn[1], d_end)
        h_e[0] = np.where(wide, h_e[0], h_tx + np.maximum(z_tx - fit_tx, 0.0))
        h_e[1] = np.where(wide, h_e[1], h_rx + np.maximum(z_rx - fit_rx, 0.0))
    if wide.any():
        # well within line of sight: horizons of a smooth earth roughened by delta_h
        w = np.flatnonzero(wide)
        he, dh, ae = h_e[:, w], delta_h[w], np.broadcast_to(a_e, (m,))[w]
        dl = np.sqrt(2.0 * he * ae) * np.exp(-0.07 * np.sqrt(dh / np.maximum(he, 5.0)))
        short = dl[0] + dl[1] <= d[w]
        if short.any():
            he = np.where(short, he * (d[w] / (dl[0] + dl[1])) ** 2, he)
            dl = np.sqrt(2.0 * he * ae) * np.exp(-0.07 * np.sqrt(dh / np.maximum(he, 5.0)))
        q = np.sqrt(2.0 * he * ae)
        h_e[:, w] = he
        d_hzn[:, w] = dl
        theta_hzn[:, w] = (0.65 * dh * (q / dl - 1.0) - 2.0 * he) / q
    return h_e


# ---------------------------------------------------------------------------------------
# Reference attenuation (ITM's lrprop)


def _terrain_roughness(d_m, delta_h_m):
    r""":math:`\Delta h(d) = \Delta h (1 - 0.8 e^{-d/50 km})`, [ERL] eq. 3."""
    return delta_h_m * (1.0 - 0.8 * np.exp(-d_m / 50e3))


def _sigma_h(delta_h_m):
    """RMS deviation of the terrain in the first Fresnel zone, [ERL] eq. 3.6a, m."""
    return 0.78 * delta_h_m * np.exp(-0.5 * delta_h_m ** 0.25)


def _fresnel_loss_db(v2):
    """Knife-edge loss from :math:`v^2` ([TN101] III.24b-c), dB."""
    with np.errstate(divide="ignore"):
        return np.where(v2 < 5.76, 6.02 + 9.11 * np.sqrt(np.maximum(v2, 0.0)) - 1.27 * v2,
                        12.953 + 10.0 * np.log10(np.maximum(v2, 5.76)))


def _height_gain_db(x_km, k):
    """Vogler's height-gain function :math:`F(x, K)` ([Alg] eq. 4.20, 6.2-6.5), dB."""
    w = -np.log(k)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        near = np.where((k < 1e-5) | (x_km * w ** 3 > 5495.0),
                        -117.0 + np.where(x_km > 1.0, 17.372 * np.log(np.maximum(x_km, 1.0)),
                                          0.0),
                        2.5e-5 * x_km ** 2 / k - 8.686 * w - 15.0)
        far = 0.05751 * x_km - 4.343 * np.log(x_km)
        ww = 0.0134 * x_km * np.exp(-0.005 * x_km)
        far = np.where(x_km < 2000.0,
                       (1.0 - ww) * far + ww * (17.372 * np.log(x_km) - 117.0), far)
    return np.where(x_km < 200.0, near, far)


def _diffraction_terms(f, z_abs, a_e, d_hzn, h_e, h, delta_h, theta_los, d_sml, p2p: bool):
    """The parts of the diffraction attenuation that do not depend on the distance."""
    f3 = f ** _THIRD
    x_km, ks = [], []
    for dl, he in ((d_hzn[0], h_e[0]), (d_hzn[1], h_e[1])):
        radius = 0.5 * dl ** 2 / he  # Vogler's radius of each horizon ([Alg] 4.15)
        c0 = ((4.0 / 3.0) * _A0_M / radius) ** _THIRD
        k = 0.017778 * c0 / f3 / z_abs
        ks.append(k)
        x_km.append((1.607 - k) * c0 ** 2 * f3 * dl / 1000.0)
    heights = _height_gain_db(x_km[0], ks[0]) + _height_gain_db(x_km[1], ks[1])
    # clutter factor ([ERL] 3.38c) and the first term of the weight ([ERL] 3.23)
    sigma_h_d = _sigma_h(_terrain_roughness(d_sml, delta_h))
    a_fo = np.minimum(15.0, 5.0 * np.log10(1.0 + 1e-5 * h[0] * h[1] * f * sigma_h_d))
    q = h[0] * h[1]
    qk = h_e[0] * h_e[1] - q
    if p2p:
        q = q + 10.0
    term1 = np.sqrt(1.0 + qk / q)
    return dict(f3=f3, x12=x_km[0] + x_km[1], heights=heights, a_fo=a_fo, term1=term1)


def _diffraction_loss_db(d, f, z_abs, a_e, d_hzn, theta_los, delta_h, terms):
    """Diffraction attenuation at distance ``d`` ([Alg] section 4.2), dB.

    A double knife edge ([TN101] I.7) and Vogler's three-radii smooth earth ([Alg]
    4.14-4.20), weighted by the terrain's roughness, plus a clutter factor.
    """
    d_ml = d_hzn[0] + d_hzn[1]
    theta_nlos = d / a_e - theta_los
    d_nlos = d - d_ml
    wn = f / 47.7
    common = 0.0795775 * wn * theta_nlos ** 2 * d_nlos
    a_k = (_fresnel_loss_db(common * d_hzn[0] / (d_nlos + d_hzn[0]))
           + _fresnel_loss_db(common * d_hzn[1] / (d_nlos + d_hzn[1])))
    # the diffraction path's radius and normalised distance (its arc is d - d_ML)
    radius = d_nlos / theta_nlos
    c0 = ((4.0 / 3.0) * _A0_M / radius) ** _THIRD
    k = 0.017778 * c0 / terms["f3"] / z_abs
    x0 = (1.607 - k) * c0 ** 2 * terms["f3"] * (radius * theta_nlos / 1000.0) + terms["x12"]
    a_se = 0.05751 * x0 - 10.0 * np.log10(x0) - terms["heights"] - 20.0
    q = (terms["term1"] + (-theta_los * a_e + d_ml) / d) * np.minimum(
        _terrain_roughness(d, delta_h) * wn, 6283.2)
    w = 25.1 / (25.1 + np.sqrt(q))
    return w * a_se + (1.0 - w) * a_k + terms["a_fo"]


def _los_loss_db(d, f, z_g, h_e, delta_h, m_d, a_d0, d_sml):
    r"""Line-of-sight attenuation, dB.

    Two rays over rough ground and the extended diffraction line, weighted ([Alg]
    4.43-4.51). The reflection coefficient :math:`(\sin\psi - Z_g)/(\sin\psi + Z_g)` is
    written out in real arithmetic.
    """
    sigma_h_d = _sigma_h(_terrain_roughness(d, delta_h))
    wn = f / 47.7
    h_sum = h_e[0] + h_e[1]
    sin_psi = h_sum / np.sqrt(d ** 2 + h_sum ** 2)
    zr, zi = z_g.real, z_g.imag
    den = (sin_psi + zr) ** 2 + zi ** 2
    damp = np.exp(-np.minimum(10.0, wn * sigma_h_d * sin_psi)) / den
    re = (sin_psi ** 2 - zr ** 2 - zi ** 2) * damp
    im = -2.0 * sin_psi * zi * damp
    q = re ** 2 + im ** 2
    scale = np.where((q < 0.25) | (q < sin_psi), np.sqrt(sin_psi / q), 1.0)
    re, im = re * scale, im * scale
    delta_phi = wn * 2.0 * h_e[0] * h_e[1] / d
    delta_phi = np.where(delta_phi > np.pi / 2.0, np.pi - (np.pi / 2.0) ** 2 / delta_phi,
                         delta_phi)
    a_t = -10.0 * np.log10((np.cos(delta_phi) + re) ** 2 + (im - np.sin(delta_phi)) ** 2)
    a_d = m_d * d + a_d0
    w = 1.0 / (1.0 + f * delta_h / np.maximum(10e3, d_sml))
    return w * a_t + (1.0 - w) * a_d


def _h0_curve(j, r):
    a = np.array([25.0, 80.0, 177.0, 395.0, 705.0], dtype=r.dtype)[j]
    b = np.array([24.0, 45.0, 68.0, 80.0, 105.0], dtype=r.dtype)[j]
    return 10.0 * np.log10(1.0 + a / r ** 4 + b / r ** 2)


def _h0(r, eta_s):
    r"""Troposcatter frequency-gain function :math:`H_0(r, \eta_s)` ([Alg] 6.13), dB."""
    eta = np.clip(eta_s, 1.0, 5.0)
    i = eta.astype(np.int64)
    q = eta - i
    lo = _h0_curve(i - 1, r)
    hi = _h0_curve(np.minimum(i, 4), r)
    return np.where(q != 0.0, (1.0 - q) * lo + q * hi, lo)


def _tropo_h0(d, f, theta_hzn, d_hzn, h_e, a_e, n_s):
    """Troposcatter :math:`H_0` at distance ``d`` ([TN101] 9.3-9.5, [Alg] 4.63-4.67), dB.

    NaN where ITM leaves troposcatter undefined (both :math:`r_j < 0.2`).
    """
    wn = f / 47.7
    ad = d_hzn[0] - d_hzn[1]
    rr = h_e[1] / h_e[0]
    flip = ad < 0.0
    ad = np.abs(ad)
    rr = np.where(flip, 1.0 / rr, rr)
    theta = theta_hzn[0] + theta_hzn[1] + d / a_e
    r1 = 2.0 * wn * theta * h_e[0]
    r2 = 2.0 * wn * theta * h_e[1]
    undefined = (r1 < 0.2) & (r2 < 0.2)
    s = (d - ad) / (d + ad)
    q = np.clip(rr / s, 0.1, 10.0)
    s = np.maximum(s, 0.1)
    h_0 = (d - ad) * (d + ad) * theta * 0.25 / d
    eta_s = (h_0 / 1.7556e3) * (1.0 + (0.031 - n_s * 2.32e-3 + n_s ** 2 * 5.67e-6)
                                * np.exp(-np.minimum(1.7, h_0 / 8.0e3) ** 6))
    with np.errstate(divide="ignore", invalid="ignore"):
        h00 = (_h0(r1, eta_s) + _h0(r2, eta_s)) / 2.0
        delta = np.minimum(h00, 6.0 * (0.6 - np.log10(np.maximum(eta_s, 1.0)))
                           * np.log10(s) * np.log10(q))
        out = np.maximum(h00 + delta, 0.0)
        sq2 = math.sqrt(2.0)
        small = eta_s * out + (1.0 - eta_s) * 10.0 * np.log10(
            ((1.0 + sq2 / r1) * (1.0 + sq2 / r2)) ** 2 * (r1 + r2) / (r1 + r2 + 2.0 * sq2))
    out = np.where(eta_s < 1.0, small, out)
    return np.where(undefined, np.nan, out)


def _tropo_loss_db(d, f, theta_los, a_e, n_s, h_0):
    """Troposcatter attenuation for a given :math:`H_0` ([Alg] 4.63, 6.8-6.9), dB."""
    wn = f / 47.7
    th = d / a_e - theta_los
    td = th * d
    f0 = np.where(td <= 10e3, 133.4 + 0.332e-3 * td - 10.0 * np.log10(td),
                  np.where(td <= 70e3, 104.6 + 0.212e-3 * td - 2.5 * np.log10(td),
                           71.8 + 0.157e-3 * td + 5.0 * np.log10(td)))
    return (f0 + 10.0 * np.log10(wn * 47.7 * th ** 4)
            - 0.1 * (n_s - 301.0) * np.exp(-td / 40e3) + h_0)


def longley_rice(theta_hzn, d_hzn_m, h_e_m, a_e_m, n_s, delta_h_m, h_m, distance_m,
                 freq_mhz, z_g, *, p2p: bool = True
                 ) -> tuple[NDArray[np.float64], NDArray[np.int8], NDArray[np.int32]]:
    r"""Reference attenuation relative to free space ([Alg] section 4; ITM's lrprop), dB.

    Line of sight (shorter than the smooth-earth horizon sum :math:`d_{sML}`):
    :math:`A_0 + k_1 d + k_2 \ln d` fitted through two-ray values at :math:`d_0, d_1` and
    the diffraction line at :math:`d_{sML}` ([ERL] 3.16-3.21); beyond: the diffraction line
    through two distances far in the diffraction region (double knife edge and Vogler's
    smooth earth, weighted by terrain roughness, plus a clutter factor), or troposcatter
    past the distance where its line crosses it. Never below 0 dB.

    Arrays have shape ``(m,)`` (``(2, m)`` for the terminal pairs); ``z_g`` is the complex
    ground impedance (:func:`ground_impedance`). Returns the attenuation (dB), the
    propagation mode and the warning flags of each path.
    """
    theta_hzn, d_hzn, h_e, h = (_floats(v) for v in (theta_hzn, d_hzn_m, h_e_m, h_m))
    a_e, n_s, delta_h, d = np.broadcast_arrays(*(_floats(v) for v in (
        a_e_m, n_s, delta_h_m, distance_m)))
    f = float(freq_mhz)
    m = d.shape[0]
    h = np.broadcast_to(h.reshape(2, -1), (2, m))
    z_g = complex(z_g)
    z_abs = abs(z_g)
    d_hzn_s = np.sqrt(2.0 * h_e * a_e)
    d_sml = d_hzn_s[0] + d_hzn_s[1]
    d_ml = d_hzn[0] + d_hzn[1]
    theta_los = -np.maximum(theta_hzn[0] + theta_hzn[1], -d_ml / a_e)
    flags = np.zeros(m, np.int32)
    for cond, flag in (
            (np.abs(theta_hzn[0]) > 200e-3, ItmFlag.TX_HORIZON_ANGLE),
            (np.abs(theta_hzn[1]) > 200e-3, ItmFlag.RX_HORIZON_ANGLE),
            (d_hzn[0] < 0.1 * d_hzn_s[0], ItmFlag.TX_HORIZON_DISTANCE_1),
            (d_hzn[1] < 0.1 * d_hzn_s[1], ItmFlag.RX_HORIZON_DISTANCE_1),
            (d_hzn[0] > 3.0 * d_hzn_s[0], ItmFlag.TX_HORIZON_DISTANCE_2),
            (d_hzn[1] > 3.0 * d_hzn_s[1], ItmFlag.RX_HORIZON_DISTANCE_2),
            (n_s < 250.0, ItmFlag.SURFACE_REFRACTIVITY),
            (d < np.abs(h_e[0] - h_e[1]) / 200e-3, ItmFlag.PATH_DISTANCE_TOO_SMALL_1),
            (d < 1e3, ItmFlag.PATH_DISTANCE_TOO_SMALL_2),
            (d > 1000e3, ItmFlag.PATH_DISTANCE_TOO_BIG_1),
            (d > 2000e3, ItmFlag.PATH_DISTANCE_TOO_BIG_2)):
        flags[cond] |= int(flag)
    scale = (a_e ** 2 / f) ** _THIRD
    d3 = np.maximum(d_sml, d_ml + 5.0 * scale)
    d4 = d3 + 10.0 * scale
    terms = _diffraction_terms(f, z_abs, a_e, d_hzn, h_e, h, delta_h, theta_los, d_sml, p2p)
    a3 = _diffraction_loss_db(d3, f, z_abs, a_e, d_hzn, theta_los, delta_h, terms)
    a4 = _diffraction_loss_db(d4, f, z_abs, a_e, d_hzn, theta_los, delta_h, terms)
    m_d = (a4 - a3) / (d4 - d3)
    a_d0 = a3 - m_d * d3
    a_ref = np.empty(m, dtype=d.dtype)
    mode = np.empty(m, np.int8)
    los = d < d_sml
    if los.any():
        i = np.flatnonzero(los)
        a_ref[i] = _los_fit_db(d[i], f, z_g, h_e[:, i], delta_h[i], m_d[i], a_d0[i],
                               d_sml[i], d_ml[i])
        mode[i] = LINE_OF_SIGHT
    if (~los).any():
        i = np.flatnonzero(~los)
        a_ref[i], mode[i] = _beyond_los_db(
            d[i], f, theta_hzn[:, i], d_hzn[:, i], h_e[:, i], a_e[i], n_s[i],
            theta_los[i], d_sml[i], d_ml[i], m_d[i], a_d0[i])
    return np.maximum(a_ref, 0.0), mode, flags


def _los_fit_db(d, f, z_g, h_e, delta_h, m_d, a_d0, d_sml, d_ml):
    """Line-of-sight attenuation ([ERL] 3.16-3.21, [Alg] 4.40-4.42), dB."""
    a_sml = d_sml * m_d + a_d0
    d0 = 0.04 * f * h_e[0] * h_e[1]
    pos = a_d0 >= 0.0
    d0 = np.where(pos, np.minimum(d0, 0.5 * d_ml), d0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.where(pos, d0 + 0.25 * (d_ml - d0), np.maximum(-a_d0 / m_d, 0.25 * d_ml))
    los_args = (f, z_g, h_e, delta_h, m_d, a_d0, d_sml)
    a1 = _los_loss_db(d1, *los_args)
    k1 = np.zeros(d.shape)
    k2 = np.zeros(d.shape)
    flag = np.zeros(d.shape, bool)
    two = d0 < d1
    if two.any():
        a0 = _los_loss_db(d0, *los_args)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.log(d_sml / d0)
            k2_t = np.maximum(0.0, ((d_sml - d0) * (a1 - a0) - (d1 - d0) * (a_sml - a0))
                              / ((d_sml - d0) * np.log(d1 / d0) - (d1 - d0) * q))
            flag = two & ((a_d0 > 0.0) | (k2_t > 0.0))
            k1_t = (a_sml - a0 - k2_t * q) / (d_sml - d0)
            neg = k1_t < 0.0
            k2_n = np.maximum(a_sml - a0, 0.0) / q
            k1_n = np.where(k2_n == 0.0, m_d, 0.0)
        k1 = np.where(flag, np.where(neg, k1_n, k1_t), 0.0)
        k2 = np.where(flag, np.where(neg, k2_n, k2_t), 0.0)
    k1_f = np.maximum(a_sml - a1, 0.0) / (d_sml - d1)
    k1_f = np.where(k1_f == 0.0, m_d, k1_f)
    k1 = np.where(flag, k1, k1_f)
    k2 = np.where(flag, k2, 0.0)
    a_o = a_sml - k1 * d_sml - k2 * np.log(d_sml)
    return a_o + k1 * d + k2 * np.log(d)


def _beyond_los_db(d, f, theta_hzn, d_hzn, h_e, a_e, n_s, theta_los, d_sml, d_ml, m_d,
                   a_d0):
    """Diffraction or troposcatter beyond the smooth-earth horizon ([Alg] 4.5-4.9), dB."""
    d5 = d_ml + 200e3
    d6 = d_ml + 400e3
    h0_6 = _tropo_h0(d6, f, theta_hzn, d_hzn, h_e, a_e, n_s)
    h0_5 = np.where(h0_6 > 15.0, h0_6, _tropo_h0(d5, f, theta_hzn, d_hzn, h_e, a_e, n_s))
    # [Alg] p. 12: an H_0 above 15 dB at d5 is replaced by its value at d6
    h0_5 = np.where((h0_5 > 15.0) & (h0_6 >= 0.0), h0_6, h0_5)
    defined = np.isfinite(h0_6)
    with np.errstate(invalid="ignore"):
        a6 = _tropo_loss_db(d6, f, theta_los, a_e, n_s, np.where(defined, h0_6, 0.0))
        a5 = _tropo_loss_db(d5, f, theta_los, a_e, n_s, np.where(defined, h0_5, 0.0))
    m_s = np.where(defined, (a6 - a5) / 200e3, m_d)
    scale = (a_e ** 2 / f) ** _THIRD
    with np.errstate(divide="ignore", invalid="ignore"):
        d_x = np.maximum(np.maximum(d_sml, d_ml + 1.088 * scale * math.log(f)),
                         (a5 - a_d0 - m_s * d5) / (m_d - m_s))
    d_x = np.where(defined, d_x, 10e6)
    a_s0 = np.where(defined, (m_d - m_s) * d_x + a_d0, a_d0)
    tropo = d > d_x
    a_ref = np.where(tropo, m_s * d + a_s0, m_d * d + a_d0)
    return a_ref, np.where(tropo, TROPOSCATTER, DIFFRACTION).astype(np.int8)


# ---------------------------------------------------------------------------------------
# Variability (ITM's avar)

# Climate curves, [Alg] section 5 and [TN101] fig. 10.13 (one column per climate 1-7).
_ALL_YEAR = np.array([
    [-9.67, -0.62, 1.26, -9.21, -0.62, -0.39, 3.15],
    [12.7, 9.19, 15.5, 9.05, 9.19, 2.86, 857.9],
    [144.9e3, 228.9e3, 262.6e3, 84.1e3, 228.9e3, 141.7e3, 2222.e3],
    [190.3e3, 205.2e3, 185.2e3, 101.1e3, 205.2e3, 315.9e3, 164.8e3],
    [133.8e3, 143.6e3, 99.8e3, 98.6e3, 143.6e3, 167.4e3, 116.3e3]])
_SIGMA_MINUS = np.array([
    [2.13, 2.66, 6.11, 1.98, 2.68, 6.86, 8.51],
    [159.5, 7.67, 6.65, 13.11, 7.16, 10.38, 169.8],
    [762.2e3, 100.4e3, 138.2e3, 139.1e3, 93.7e3, 187.8e3, 609.8e3],
    [123.6e3, 172.5e3, 242.2e3, 132.7e3, 186.8e3, 169.6e3, 119.9e3],
    [94.5e3, 136.4e3, 178.6e3, 193.5e3, 133.5e3, 108.9e3, 106.6e3]])
_SIGMA_PLUS = np.array([
    [2.11, 6.87, 10.08, 3.68, 4.75, 8.58, 8.43],
    [102.3, 15.53, 9.60, 159.3, 8.12, 13.97, 8.19],
    [636.9e3, 138.7e3, 165.3e3, 464.4e3, 93.2e3, 216.0e3, 136.2e3],
    [134.8e3, 143.7e3, 225.7e3, 93.1e3, 135.9e3, 152.0e3, 188.5e3],
    [95.6e3, 98.6e3, 129.7e3, 94.2e3, 113.4e3, 122.7e3, 122.9e3]])
_C_D = np.array([1.224, 0.801, 1.380, 1.000, 1.224, 1.518, 1.518])
_Z_D = np.array([1.282, 2.161, 1.282, 20.0, 1.282, 1.282, 1.282])
_G_MINUS = np.array([[1.0, 1.0, 1.0, 1.0, 0.92, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 0.0, 1.77, 0.0, 0.0]])
_G_PLUS = np.array([[1.0, 0.93, 1.0, 0.93, 0.93, 1.0, 1.0], [0.0, 0.31, 0.0, 0.19, 0.31, 0.0, 0.0],
                    [0.0, 2.00, 0.0, 1.79, 2.00, 0.0, 0.0]])


def _climate_curve(c, d_e):
    """:math:`(c_1 + c_2 / (1 + ((d_e - x_2)/x_3)^2)) (d_e/x_1)^2 / (1 + (d_e/x_1)^2)`."""
    c1, c2, x1, x2, x3 = c
    r = (d_e / x1) ** 2
    return (c1 + c2 / (1.0 + ((d_e - x2) / x3) ** 2)) * r / (1.0 + r)


def variability_db(a_ref_db, h_e_m, delta_h_m, freq_mhz, distance_m, *, climate: int,
                   mdvar: int, time_pct: float, location_pct: float, situation_pct: float
                   ) -> tuple[NDArray[np.float64], int]:
    r"""Attenuation at the given time, location and situation percentages ([Alg] sec. 5).

    The reference attenuation minus the climate's median adjustment :math:`V_{med}` and
    the time, location and situation deviations :math:`Y_T, Y_L, Y_S` at the standard
    normal deviates of the percentages, combined as the mode of variability ``mdvar``
    says ([TR82] p. 11: single message, accidental, mobile, broadcast; +10 without
    location variability, +20 without direct situation variability), all as functions of
    the effective distance :math:`d_e` ([Alg] eq. 5.3). A negative result is softened by
    :math:`A (29 - A) / (29 - 10 A)` ([Alg] eq. 5.12). Returns the attenuation relative to
    free space (dB) and the warning flags (``EXTREME_VARIABILITIES``).
    """
    ci = climate - 1
    wn = float(freq_mhz) / 47.7
    h_e = _floats(h_e_m)
    d = _floats(distance_m)
    z_t, z_l, z_s = (float(inverse_ccdf(p / 100.0)) for p in (time_pct, location_pct,
                                                                situation_pct))
    d_ex = (np.sqrt(2.0 * _A9000_M * h_e[0]) + np.sqrt(2.0 * _A9000_M * h_e[1])
            + (575.7e12 / wn) ** _THIRD)
    d_e = np.where(d < d_ex, 130e3 * d / d_ex, 130e3 + d - d_ex)
    base, plus10, plus20 = _variability_mode(mdvar)
    sigma_s = 0.0 if plus20 else 5.0 + 3.0 * np.exp(-d_e / 100e3)
    v_med = _climate_curve(_ALL_YEAR[:, ci].tolist(), d_e)
    if base == 0:
        z_t = z_l = z_s
    elif base == 1:
        z_l = z_s
    elif base == 2:
        z_l = z_t
    flags = int(ItmFlag.EXTREME_VARIABILITIES) if max(abs(z_t), abs(z_l), abs(z_s)) > 3.10 \
        else 0
    if plus10:
        sigma_l = 0.0
    else:
        dh_d = _terrain_roughness(d, _floats(delta_h_m))
        sigma_l = 10.0 * wn * dh_d / (wn * dh_d + 13.0)
    sigma_t = _time_sigma(d_e, ci, wn, z_t)
    y_r, y_s = _combined_deviations(base, sigma_t, sigma_l, sigma_s, z_t, z_l, z_s)
    out = _floats(a_ref_db) - v_med - y_r - y_s
    out = np.where(out < 0.0, out * (29.0 - out) / (29.0 - 10.0 * out), out)
    return out, flags


def _variability_mode(mdvar: int) -> tuple[int, bool, bool]:
    """``mdvar`` as (mode 0-3, +10: no location variability, +20: no situation's)."""
    base = mdvar
    plus20 = base >= 20
    base -= 20 if plus20 else 0
    plus10 = base >= 10
    base -= 10 if plus10 else 0
    return base, plus10, plus20


def _time_sigma(d_e, ci: int, wn: float, z_t: float):
    r"""Standard deviation of the time variability at the deviate ``z_t`` ([Alg] sec. 5).

    :math:`\sigma_{T-}` below the median, :math:`\sigma_{T+}` up to the climate's
    :math:`z_D`, then towards :math:`c_D \sigma_{T+}`; ``d_e`` the effective distance (m),
    ``ci`` the climate index (0-based), ``wn`` the wave number (MHz / 47.7).
    """
    q = math.log(0.133 * wn)
    gm, gp = _G_MINUS[:, ci].tolist(), _G_PLUS[:, ci].tolist()
    g_minus = gm[0] + gm[1] / ((gm[2] * q) ** 2 + 1.0)
    g_plus = gp[0] + gp[1] / ((gp[2] * q) ** 2 + 1.0)
    sigma_t_minus = _climate_curve(_SIGMA_MINUS[:, ci].tolist(), d_e) * g_minus
    sigma_t_plus = _climate_curve(_SIGMA_PLUS[:, ci].tolist(), d_e) * g_plus
    c_d, z_d = float(_C_D[ci]), float(_Z_D[ci])
    sigma_td = c_d * sigma_t_plus
    tgtd = (sigma_t_plus - sigma_td) * z_d
    if z_t < 0.0:
        return sigma_t_minus
    if z_t <= z_d:
        return sigma_t_plus
    return sigma_td + tgtd / z_t


def _combined_deviations(base: int, sigma_t, sigma_l, sigma_s, z_t: float, z_l: float,
                         z_s: float):
    """The time/location deviation :math:`Y_R` and the situation's :math:`Y_S` (dB).

    Combined as the mode of variability says ([TR82] p. 11): 0 single message, 1
    accidental, 2 mobile, 3 broadcast.
    """
    y_l = sigma_l * z_l
    y_t = sigma_t * z_t
    y_s_temp = sigma_s ** 2 + y_t ** 2 / (7.8 + z_s ** 2) + y_l ** 2 / (24.0 + z_s ** 2)
    if base == 0:
        return 0.0, np.sqrt(sigma_t ** 2 + sigma_l ** 2 + y_s_temp) * z_s
    if base == 1:
        return y_t, np.sqrt(sigma_l ** 2 + y_s_temp) * z_s
    if base == 2:
        return np.sqrt(sigma_t ** 2 + sigma_l ** 2) * z_t, np.sqrt(y_s_temp) * z_s
    return y_t + y_l, np.sqrt(y_s_temp) * z_s


def loss_floor_db(distance_m: ArrayLike, freq_mhz: float, *, climate: int, mdvar: int,
                  time_pct: float, location_pct: float, situation_pct: float, **_
                  ) -> NDArray[np.float64]:
    """A lower bound of ITM's loss over any terrain at these distances, dB.

    The reference attenuation is never negative, so the loss is at least free space plus
    the variability of a zero attenuation, whose least value is taken over path lengths of
    10 m to 2000 km, effective heights of 0.5 m to 3 km and terrain irregularities of 0 to
    1 km. Used to drop, before any profile, the cells no transmitter can reach.
    """
    return free_space_loss_db(distance_m, freq_mhz) + _least_variability_db(
        float(freq_mhz), climate, mdvar, time_pct, location_pct, situation_pct)


@functools.lru_cache(maxsize=256)
def _least_variability_db(freq_mhz, climate, mdvar, time_pct, location_pct, situation_pct
                          ) -> float:
    d = np.geomspace(10.0, 2e6, 256)
    worst = 0.0
    for h_tx in (0.5, 5.0, 50.0, 500.0, 3000.0):
        for h_rx in (0.5, 5.0, 50.0):
            for dh in (0.0, 10.0, 100.0, 1000.0):
                v, _ = variability_db(np.zeros(d.size), np.array([[h_tx], [h_rx]]), dh,
                                      freq_mhz, d, climate=climate, mdvar=mdvar,
                                      time_pct=time_pct, location_pct=location_pct,
                                      situation_pct=situation_pct)
                worst = min(worst, float(v.min()))
    return worst


# ---------------------------------------------------------------------------------------
# Entry points


def warn_flags(flags: NDArray[np.int32], stacklevel: int = 3) -> None:
    """One :class:`ItmWarning` naming each raised flag and the share of paths it marks."""
    raised = int(np.bitwise_or.reduce(flags)) if flags.size else 0
    if not raised:
        return
    parts = []
    for flag in ItmFlag:
        if raised & flag:
            share = float(np.mean((flags & int(flag)) != 0))
            parts.append(f"{_FLAG_TEXT[flag]} ({share:.1%} of paths)")
    warnings.warn(ItmWarning("ITM outside its validity limits, results extrapolated: "
                             + "; ".join(parts), flags=ItmFlag(raised)), stacklevel=stacklevel)


def itm_p2p(
    profiles_m: ArrayLike,
    step_m: ArrayLike,
    tx_height_m: ArrayLike,
    rx_height_m: ArrayLike,
    freq_mhz: float,
    *,
    intervals: ArrayLike | None = None,
    climate: int = 5,
    refractivity_n0: float = 301.0,
    polarization: str | int = "vertical",
    permittivity: float = 15.0,
    conductivity_s_m: float = 0.005,
    mdvar: int = 1,
    time_pct: float = 50.0,
    location_pct: float = 50.0,
    situation_pct: float = 50.0,
    warn: bool = True,
) -> ItmResult:
    r"""ITM point-to-point loss over terrain profiles, many paths at once.

    Parameters
    ----------
    profiles_m : array_like, shape (m, k) or (k,)
        Ground heights above sea level from the transmitter (column 0) to the receiver,
        every ``step_m``, metres. Profiles of different lengths are padded on the right and
        their interval counts given in ``intervals``.
    step_m : array_like, shape (m,) or scalar
        Distance between successive heights, metres.
    tx_height_m, rx_height_m : array_like, shape (m,) or scalar
        Antenna heights above the ground, metres (0.5-3000; warned outside 1-1000).
    freq_mhz : float
        Frequency, MHz (20-20000; warned outside 40-10000).
    intervals : array_like of int, shape (m,), optional
        Intervals of each profile (heights ``0..intervals``); default ``k - 1``.
    climate : int
        Radio climate, 1-7 (:data:`CLIMATES`).
    refractivity_n0 : float
        Minimum monthly mean surface refractivity at sea level, N-units (250-400).
    polarization : {"vertical", "horizontal"} or 1/0
    permittivity, conductivity_s_m : float
        Relative permittivity and conductivity (S/m) of the ground.
    mdvar : int
        Mode of variability (:data:`MDVAR_MODES`, +10, +20).
    time_pct, location_pct, situation_pct : float
        Percentages of time, locations and situations, in (0, 100). For ITM's
        confidence/reliability form pass ``time_pct=reliability, location_pct=50,
        situation_pct=confidence``.
    warn : bool
        Issue an :class:`~coverage.errors.ItmWarning` when a flag is raised.

    Returns
    -------
    ItmResult

    Examples
    --------
    A 10 km path over flat ground at sea level, 30 m and 1.5 m antennas, 900 MHz:

    >>> r = itm_p2p(np.zeros(101), 100.0, 30.0, 1.5, 900.0)
    >>> round(float(r.loss_db[0]), 1), int(r.mode[0])
    (127.4, 1)
    """
    z = np.atleast_2d(np.asarray(profiles_m, dtype=float))
    m, k = z.shape
    n = np.full(m, k - 1, np.int64) if intervals is None else np.broadcast_to(
        np.asarray(intervals), (m,)).astype(np.int64)
    if (n < 2).any() or (n > k - 1).any():
        raise ParameterError(f"a terrain profile needs at least 3 heights (2 intervals) and "
                             f"at most its {k} columns; got {int(n.min()) + 1} heights")
    if not np.isfinite(z[np.arange(k)[None, :] <= n[:, None]]).all():
        raise ParameterError("terrain profile heights must be finite (fill DEM voids first)")
    xi = np.broadcast_to(np.asarray(step_m, float), (m,))
    _check_range("step_m", xi, 0.0, np.inf, " m", open_low=True)
    h_tx = np.broadcast_to(np.asarray(tx_height_m, float), (m,))
    h_rx = np.broadcast_to(np.asarray(rx_height_m, float), (m,))
    flags0 = check_inputs(h_tx, h_rx, freq_mhz, climate, refractivity_n0, polarization,
                       permittivity, conductivity_s_m, mdvar, time_pct, location_pct,
                       situation_pct)
    z_g = ground_impedance(freq_mhz, permittivity, conductivity_s_m, polarization)
    n_s, gamma_e = surface_refractivity(refractivity_n0, _Profiles(z, n, xi).mean_height())
    a_e = 1.0 / gamma_e
    theta, d_hzn, h_e, delta_h, d = profile_parameters(z, n, xi, h_tx, h_rx, a_e)
    return _finish(theta, d_hzn, h_e, delta_h, d, a_e, n_s, np.stack([h_tx, h_rx]),
                   freq_mhz, z_g, flags0, climate, mdvar, time_pct, location_pct,
                   situation_pct, p2p=True, warn=warn)


def _finish(theta, d_hzn, h_e, delta_h, d, a_e, n_s, h, freq_mhz, z_g, flags0, climate,
            mdvar, time_pct, location_pct, situation_pct, *, p2p, warn) -> ItmResult:
    a_ref, mode, flags = longley_rice(theta, d_hzn, h_e, a_e, n_s, delta_h, h, d, freq_mhz,
                                      z_g, p2p=p2p)
    a_fs = free_space_loss_db(d, freq_mhz)
    att, vflags = variability_db(a_ref, h_e, delta_h, freq_mhz, d, climate=climate,
                                 mdvar=mdvar, time_pct=time_pct, location_pct=location_pct,
                                 situation_pct=situation_pct)
    flags |= flags0 | vflags
    if warn:
        warn_flags(flags, stacklevel=4)
    return ItmResult(att + a_fs, a_ref, a_fs, mode, flags, theta, d_hzn, h_e,
                     np.asarray(delta_h, float), np.broadcast_to(n_s, d.shape).astype(float), d)


#: Siting criteria of area mode ([TR82] p. 14): random, careful, very careful.
SITING = {"random": 0, "careful": 1, "very_careful": 2, 0: 0, 1: 1, 2: 2}


def itm_area(
    distance_m: ArrayLike,
    tx_height_m: float,
    rx_height_m: float,
    freq_mhz: float,
    delta_h_m: float,
    *,
    tx_siting: str | int = "random",
    rx_siting: str | int = "random",
    climate: int = 5,
    refractivity_n0: float = 301.0,
    polarization: str | int = "vertical",
    permittivity: float = 15.0,
    conductivity_s_m: float = 0.005,
    mdvar: int = 1,
    time_pct: float = 50.0,
    location_pct: float = 50.0,
    situation_pct: float = 50.0,
    warn: bool = True,
) -> ItmResult:
    r"""ITM area-mode loss at path lengths ``distance_m`` (metres, > 0).

    Without a profile, the horizons and effective heights follow from the terrain
    irregularity ``delta_h_m`` and the siting criteria ([Alg] eq. 3.2-3.4): a carefully
    (``"careful"``) or very carefully sited antenna stands on a rise worth
    :math:`(1 + B)\, e^{-2h/\Delta h}` more metres (:math:`B` 4 or 9). Other parameters as
    :func:`itm_p2p`; the surface refractivity is taken at sea level.

    Examples
    --------
    >>> r = itm_area([10_000.0], 15.0, 3.0, 3500.0, 20.0, climate=5, polarization=1)
    >>> round(float(r.loss_db[0]), 1), int(r.mode[0])
    (134.5, 1)
    """
    d = np.atleast_1d(np.asarray(distance_m, float))
    _check_range("distance_m", d, 0.0, np.inf, " m", open_low=True)
    _check_range("delta_h_m", delta_h_m, 0.0, np.inf, " m")
    for name, value in (("tx_siting", tx_siting), ("rx_siting", rx_siting)):
        if value not in SITING:
            raise ParameterError(f"{name}={value!r}: use 'random', 'careful' or "
                                 "'very_careful'")
    flags0 = check_inputs(tx_height_m, rx_height_m, freq_mhz, climate, refractivity_n0,
                       polarization, permittivity, conductivity_s_m, mdvar, time_pct,
                       location_pct, situation_pct)
    z_g = ground_impedance(freq_mhz, permittivity, conductivity_s_m, polarization)
    n_s, gamma_e = surface_refractivity(refractivity_n0, 0.0)
    h = np.array([tx_height_m, rx_height_m], float)
    h_e = h.copy()
    for i, siting in enumerate((SITING[tx_siting], SITING[rx_siting])):
        if siting:
            b = 4.0 if siting == 1 else 9.0
            if h[i] < 5.0:
                b *= np.sin(0.1 * np.pi * h[i])
            h_e[i] = h[i] + (1.0 + b) * np.exp(-min(20.0, 2.0 * h[i] / max(1e-3, delta_h_m)))
    d_ls = np.sqrt(2.0 * h_e / gamma_e)
    d_hzn = d_ls * np.exp(-0.07 * np.sqrt(delta_h_m / np.maximum(h_e, 5.0)))
    theta = (0.65 * delta_h_m * (d_ls / d_hzn - 1.0) - 2.0 * h_e) / d_ls
    m = d.size
    def col(v):
        return np.repeat(v[:, None], m, axis=1)

    return _finish(col(theta), col(d_hzn), col(h_e), np.full(m, float(delta_h_m)), d,
                   np.full(m, 1.0 / gamma_e), np.full(m, float(n_s)), col(h), freq_mhz, z_g,
                   flags0, climate, mdvar, time_pct, location_pct, situation_pct, p2p=False,
                   warn=warn)
