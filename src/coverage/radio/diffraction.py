"""Diffraction over terrain: knife edges, Bullington, the smooth earth, delta-Bullington, dB.

References
----------
- ITU-R P.526-15 (2019). Propagation by diffraction, sections 3.2 (spherical earth),
  4.1 (single knife edge) and 4.5 (Bullington method for a general terrain profile).
- ITU-R P.452-17 (2023) section 4.2 and P.1812-6 (2021) section 4.3 and attachments 1 and
  4 (the delta-Bullington method and the smooth-earth profile).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .pathloss import EARTH_RADIUS_M, MIN_DISTANCE_M, SPEED_OF_LIGHT_M_S

__all__ = [
    "bullington_loss_db",
    "bullington_loss_from_nu",
    "bullington_nu_root_m",
    "delta_bullington_excess_db",
    "delta_bullington_loss_db",
    "knife_edge_loss_db",
    "smooth_bullington_loss_db",
    "smooth_earth_heights_m",
    "spherical_earth_loss_db",
]

def knife_edge_loss_db(v: ArrayLike) -> NDArray[np.float64]:
    r"""Diffraction loss of a single knife edge, ITU-R P.526-15 eq. 31, dB.

    .. math:: J(\nu) = 6.9 + 20 \log_{10}\left(\sqrt{(\nu - 0.1)^2 + 1} + \nu - 0.1\right)

    for :math:`\nu > -0.78`, and 0 otherwise.

    Examples
    --------
    >>> round(float(knife_edge_loss_db(0.0)), 1)
    6.0
    """
    v = np.asarray(v, dtype=float)
    vm = np.maximum(v, -0.78) - 0.1  # -inf (no obstacle at all) gives 0 dB too
    loss = 6.9 + 20.0 * np.log10(np.sqrt(vm * vm + 1.0) + vm)
    return np.where(v > -0.78, loss, 0.0)


def bullington_loss_db(
    distance_m: ArrayLike,
    terrain_m: NDArray[np.floating],
    tx_altitude_m: ArrayLike,
    rx_altitude_m: ArrayLike,
    freq_mhz: float,
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Terrain diffraction loss along path profiles by the Bullington method, dB.

    ITU-R P.526-15 section 4.5.1: the profile's obstacles are replaced by one equivalent knife
    edge at the intersection of the steepest rays from each terminal; with line of sight, the
    edge is the point of greatest Fresnel intrusion. Heights include the earth's bulge
    :math:`d_1 d_2 / (2 k R_e)`. The loss adds the spherical-earth term of the recommendation:

    .. math:: L_b = L_{uc} + (1 - e^{-L_{uc}/6})(10 + 0.02\,d_{km})

    Parameters
    ----------
    distance_m : array_like, shape (n,)
        Length of each path, metres.
    terrain_m : ndarray, shape (n, k)
        Ground heights above sea level at ``k`` equally spaced samples strictly inside each
        path (the terminals excluded), metres.
    tx_altitude_m, rx_altitude_m : array_like, shape (n,) or scalar
        Antenna altitudes above sea level (ground plus mast), metres.
    freq_mhz : float
        Carrier frequency, MHz.
    k_factor : float
        Effective earth-radius factor.

    Returns
    -------
    ndarray, shape (n,)
        Diffraction loss in dB (0 for a clear path).

    Examples
    --------
    A 30 m ridge halfway along a 10 km path between two 10 m antennas at 900 MHz:

    >>> terrain = np.array([[0.0, 30.0, 0.0]])
    >>> round(float(bullington_loss_db([10_000.0], terrain, 10.0, 10.0, 900.0)[0]), 1)
    23.5
    """
    d = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
    nu = bullington_nu_root_m(d, terrain_m, tx_altitude_m, rx_altitude_m, k_factor=k_factor)
    return bullington_loss_from_nu(nu, d, freq_mhz)


def bullington_loss_from_nu(nu_root_m: NDArray[np.floating], distance_m: ArrayLike,
                            freq_mhz: float) -> NDArray[np.float64]:
    r"""Bullington loss (dB) from the frequency-free edge parameter :math:`\nu\sqrt{\lambda}`.

    The geometry of :func:`bullington_nu_root_m` does not depend on frequency, so a site's
    profiles serve every carrier: only this cheap step is repeated per frequency.
    """
    wavelength_m = SPEED_OF_LIGHT_M_S / (freq_mhz * 1e6)
    l_uc = knife_edge_loss_db(np.asarray(nu_root_m, dtype=float) / np.sqrt(wavelength_m))
    d_km = np.asarray(distance_m, dtype=float) / 1000.0
    return l_uc + (1.0 - np.exp(-l_uc / 6.0)) * (10.0 + 0.02 * d_km)


def bullington_nu_root_m(
    distance_m: ArrayLike,
    terrain_m: NDArray[np.floating],
    tx_altitude_m: ArrayLike,
    rx_altitude_m: ArrayLike,
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Bullington equivalent-edge parameter times :math:`\sqrt{\lambda}`, in :math:`m^{1/2}`.

    :math:`\nu\sqrt{\lambda} = h \sqrt{2 d / (d_1 d_2)}` for the equivalent edge of height
    :math:`h` above the direct path (ITU-R P.526-15 eq. 49-52, 54-58); divide by
    :math:`\sqrt{\lambda}` for :math:`\nu`. Arguments as :func:`bullington_loss_db`.
    """
    d = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
    terrain = np.asarray(terrain_m, dtype=float)
    n, k = terrain.shape
    h_ts = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (n,))
    h_rs = np.broadcast_to(np.asarray(rx_altitude_m, dtype=float), (n,))
    frac = np.arange(1, k + 1, dtype=float) / (k + 1)
    d1 = frac[None, :] * d[:, None]
    d2 = d[:, None] - d1
    # Heights above the straight tx-rx line, with the earth's bulge.
    h = terrain + d1 * d2 / (2.0 * k_factor * EARTH_RADIUS_M)
    above = h - (h_ts[:, None] * d2 + h_rs[:, None] * d1) / d[:, None]
    geom = np.sqrt(2.0 * d[:, None] / (d1 * d2))
    s_tim = np.max((h - h_ts[:, None]) / d1, axis=1)
    s_rim = np.max((h - h_rs[:, None]) / d2, axis=1)
    los = s_tim < (h_rs - h_ts) / d
    # Line of sight: the sample of greatest Fresnel intrusion.
    nu_los = np.max(above * geom, axis=1)
    # Obstructed: the equivalent edge where the steepest rays from both ends meet.
    denom = np.maximum(s_tim + s_rim, 1e-12)
    d_bp = np.clip((h_rs - h_ts + s_rim * d) / denom, 1e-3 * d, 0.999 * d)
    h_bp = h_ts + s_tim * d_bp - (h_ts * (d - d_bp) + h_rs * d_bp) / d
    nu_b = h_bp * np.sqrt(2.0 * d / (d_bp * (d - d_bp)))
    return np.where(los, nu_los, nu_b)


# Ground constants of P.1812-6 / P.452-17 for a land path (relative permittivity,
# conductivity in S/m); vertical polarization, the handsets'.
_LAND_PERMITTIVITY = 22.0
_LAND_CONDUCTIVITY_S_M = 0.003


def smooth_earth_heights_m(
    distance_m: ArrayLike,
    terrain_m: NDArray[np.floating],
    tx_ground_m: ArrayLike,
    rx_ground_m: ArrayLike,
    tx_altitude_m: ArrayLike,
    rx_altitude_m: ArrayLike,
    *,
    sample_distance_m: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Heights of the smooth-earth surface at the terminals for the diffraction model, m.

    ITU-R P.1812-6 Attachment 1 to Annex 1 §5.6 (ITU-R P.452-17 Attachment 2 §5.1.6.2-3):
    the least-squares straight line through the profile (terminals included),

    .. math::

        v_1 = \sum_{i=1}^{n} (d_i - d_{i-1})(h_i + h_{i-1}), \quad
        v_2 = \sum_{i=1}^{n} (d_i - d_{i-1})\left[h_i (2 d_i + d_{i-1})
              + h_{i-1} (d_i + 2 d_{i-1})\right],

        h_{st} = (2 v_1 d - v_2) / d^2, \qquad h_{sr} = (v_2 - v_1 d) / d^2,

    lowered where the profile rises above the straight line between the antennas (flat
    geometry, eq. 90): with :math:`H_i = h_i - [h_{ts}(d - d_i) + h_{rs} d_i] / d`,
    :math:`h_{obs} = \max H_i`, :math:`\alpha_{obt} = \max H_i / d_i`,
    :math:`\alpha_{obr} = \max H_i / (d - d_i)`; if :math:`h_{obs} > 0`,
    :math:`h_{st} - h_{obs}\,\alpha_{obt} / (\alpha_{obt} + \alpha_{obr})` and likewise at
    the receiver; and never above the ground at the terminal (eq. 91).

    Parameters
    ----------
    distance_m : array_like, shape (n,)
        Length of each path, metres.
    terrain_m : ndarray, shape (n, k)
        Ground heights above sea level at ``k`` equally spaced samples strictly inside each
        path (as :func:`bullington_loss_db`), metres.
    tx_ground_m, rx_ground_m : array_like, shape (n,) or scalar
        Ground heights under the terminals, metres above sea level.
    tx_altitude_m, rx_altitude_m : array_like, shape (n,) or scalar
        Antenna altitudes above sea level, metres.
    sample_distance_m : array_like, shape (k,) or (n, k), optional
        Distances of the samples from the transmitter, metres, for a profile not equally
        spaced (by default ``1 .. k`` times ``distance_m / (k + 1)``).

    Returns
    -------
    (h_std, h_srd) : ndarrays, shape (n,)
        The smooth surface's heights at the transmitter and at the receiver, metres above
        sea level.

    Examples
    --------
    A 30 m ridge halfway along a 10 km path over flat ground, antennas at 10 m: the
    least-squares line lies at 7.5 m, lowered by half the 20 m obstruction at each end.

    >>> std, srd = smooth_earth_heights_m([10_000.0], np.array([[0.0, 30.0, 0.0]]),
    ...                                   0.0, 0.0, 10.0, 10.0)
    >>> float(std[0]), float(srd[0])
    (-2.5, -2.5)
    """
    d = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
    terrain = np.asarray(terrain_m, dtype=float)
    n, k = terrain.shape
    g_t = np.broadcast_to(np.asarray(tx_ground_m, dtype=float), (n,))
    g_r = np.broadcast_to(np.asarray(rx_ground_m, dtype=float), (n,))
    h_ts = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (n,))
    h_rs = np.broadcast_to(np.asarray(rx_altitude_m, dtype=float), (n,))
    if sample_distance_m is None:
        di = (np.arange(k + 2, dtype=float) / (k + 1))[None, :] * d[:, None]
    else:
        inner = np.broadcast_to(np.asarray(sample_distance_m, dtype=float), (n, k))
        di = np.concatenate([np.zeros((n, 1)), inner, d[:, None]], axis=1)
    hi = np.concatenate([g_t[:, None], terrain, g_r[:, None]], axis=1)
    step = di[:, 1:] - di[:, :-1]
    v1 = np.sum(step * (hi[:, 1:] + hi[:, :-1]), axis=1)
    v2 = np.sum(step * (hi[:, 1:] * (2.0 * di[:, 1:] + di[:, :-1])
                        + hi[:, :-1] * (di[:, 1:] + 2.0 * di[:, :-1])), axis=1)
    h_st = (2.0 * v1 * d - v2) / d**2
    h_sr = (v2 - v1 * d) / d**2
    if k:
        inner = di[:, 1:-1]
        big_h = terrain - (h_ts[:, None] * (d[:, None] - inner) + h_rs[:, None] * inner) / d[
            :, None]
        h_obs = big_h.max(axis=1)
        a_t = (big_h / inner).max(axis=1)
        a_r = (big_h / (d[:, None] - inner)).max(axis=1)
        lower = h_obs > 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(lower, a_t / (a_t + a_r), 0.0)
        h_st = np.where(lower, h_st - h_obs * g, h_st)
        h_sr = np.where(lower, h_sr - h_obs * (1.0 - g), h_sr)
    return np.minimum(h_st, g_t), np.minimum(h_sr, g_r)


def _first_term_loss_db(d_km, h_te_m, h_re_m, a_km, f_ghz):
    """First-term spherical-earth diffraction loss over land, vertical polarization, dB.

    ITU-R P.452-17 §4.2.2.1 eq. 29-36 (P.1812-6 §4.3.3); distances and the radius in km,
    heights in m, the frequency in GHz.
    """
    eps, sigma = _LAND_PERMITTIVITY, _LAND_CONDUCTIVITY_S_M
    k_h = 0.036 * (a_km * f_ghz) ** (-1.0 / 3.0) * (
        (eps - 1.0) ** 2 + (18.0 * sigma / f_ghz) ** 2) ** -0.25
    k_v = k_h * np.sqrt(eps**2 + (18.0 * sigma / f_ghz) ** 2)
    beta = (1.0 + 1.6 * k_v**2 + 0.67 * k_v**4) / (1.0 + 4.5 * k_v**2 + 1.53 * k_v**4)
    x = 21.88 * beta * np.cbrt(f_ghz / a_km**2) * d_km
    y_scale = 0.9575 * beta * np.cbrt(f_ghz**2 / a_km)
    f_x = np.where(x >= 1.6, 11.0 + 10.0 * np.log10(x) - 17.6 * x,
                   -20.0 * np.log10(x) - 5.6488 * x**1.425)
    floor = 2.0 + 20.0 * np.log10(k_v)

    def height_gain(h_m):
        b = beta * y_scale * h_m
        far = np.maximum(b - 1.1, 0.9)  # the branch B > 2 only
        g = np.where(b > 2.0, 17.6 * np.sqrt(far) - 5.0 * np.log10(far) - 8.0,
                     20.0 * np.log10(np.maximum(b + 0.1 * b**3, 1e-30)))
        return np.maximum(g, floor)

    return -f_x - height_gain(h_te_m) - height_gain(h_re_m)


def _smooth_clearance(d_km, h_te_m, h_re_m, a_km):
    """Point of least clearance of a line-of-sight smooth-earth path (P.452-17 eq. 23-24).

    Returns its distance from the transmitter (km) and the clearance there (m).
    """
    c = (h_te_m - h_re_m) / (h_te_m + h_re_m)
    m = 250.0 * d_km**2 / (a_km * (h_te_m + h_re_m))
    arg = np.clip(1.5 * c * np.sqrt(3.0 * m / (m + 1.0) ** 3), -1.0, 1.0)
    b = 2.0 * np.sqrt((m + 1.0) / (3.0 * m)) * np.cos(np.pi / 3.0 + np.arccos(arg) / 3.0)
    d_se1 = d_km / 2.0 * (1.0 + b)
    d_se2 = d_km - d_se1
    h_se = ((h_te_m - 500.0 * d_se1**2 / a_km) * d_se2
            + (h_re_m - 500.0 * d_se2**2 / a_km) * d_se1) / d_km
    return d_se1, h_se


def _smooth_earth_terms(distance_m, tx_height_m, rx_height_m, freq_mhz, k_factor):
    """:math:`L_{dsph}` and :math:`L_{bulls}` of smooth-earth paths, dB.

    The two share their geometry; the first-term series is evaluated only where needed.
    """
    d_km = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M) / 1000.0
    # heights under a millimetre (an antenna on the smooth surface) taken as one
    h_te = np.maximum(np.asarray(tx_height_m, dtype=float), 1e-3)
    h_re = np.maximum(np.asarray(rx_height_m, dtype=float), 1e-3)
    d_km, h_te, h_re = (np.array(v, dtype=float, ndmin=1)
                        for v in np.broadcast_arrays(d_km, h_te, h_re))
    shape = np.broadcast_shapes(np.shape(distance_m), np.shape(tx_height_m),
                                np.shape(rx_height_m))
    a_km = k_factor * EARTH_RADIUS_M / 1000.0
    f_ghz = float(freq_mhz) / 1000.0
    lam = SPEED_OF_LIGHT_M_S / (float(freq_mhz) * 1e6)
    d_los = np.sqrt(2.0 * a_km) * (np.sqrt(0.001 * h_te) + np.sqrt(0.001 * h_re))
    beyond = d_km >= d_los
    sph = np.zeros(d_km.shape)
    nu = np.empty(d_km.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        # beyond the horizon: the first term at the effective radius (eq. 22)
        i = np.flatnonzero(beyond)
        d, ht, hr = d_km[i], h_te[i], h_re[i]
        sph[i] = _first_term_loss_db(d, ht, hr, a_km, f_ghz)
        # ... and Bullington's point of the slopes to the curved earth (Att. 4, eq. 107-110)
        s_tm = 500.0 * d / a_km - 2.0 * np.sqrt(500.0 * ht / a_km)
        s_rm = 500.0 * d / a_km - 2.0 * np.sqrt(500.0 * hr / a_km)
        d_s = (hr - ht + s_rm * d) / (s_tm + s_rm)
        nu[i] = (ht + s_tm * d_s - (ht * (d - d_s) + hr * d_s) / d) * np.sqrt(
            0.002 * d / (lam * d_s * (d - d_s)))
        # line of sight: the least clearance, and the loss where it is short (eq. 23-27)
        i = np.flatnonzero(~beyond)
        d, ht, hr = d_km[i], h_te[i], h_re[i]
        d_se1, h_se = _smooth_clearance(d, ht, hr, a_km)
        root = np.sqrt(d_se1 * (d - d_se1) * lam / d)
        nu[i] = -h_se * np.sqrt(0.002) / root  # eq. 105
        h_req = 17.456 * root
        short = np.flatnonzero(h_se <= h_req)
        d, ht, hr = d[short], ht[short], hr[short]
        a_em = 500.0 * (d / (np.sqrt(ht) + np.sqrt(hr))) ** 2
        sph[i[short]] = (1.0 - h_se[short] / h_req[short]) * np.maximum(
            _first_term_loss_db(d, ht, hr, a_em, f_ghz), 0.0)
    l_us = knife_edge_loss_db(np.nan_to_num(nu, nan=-np.inf))
    bulls = l_us + (1.0 - np.exp(-l_us / 6.0)) * (10.0 + 0.02 * d_km)
    return sph.reshape(shape), bulls.reshape(shape)


def spherical_earth_loss_db(
    distance_m: ArrayLike,
    tx_height_m: ArrayLike,
    rx_height_m: ArrayLike,
    freq_mhz: float,
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Spherical-earth diffraction loss :math:`L_{dsph}` over land, dB (>= 0).

    ITU-R P.452-17 §4.2.2 (P.1812-6 §4.3.2), which follows ITU-R P.526-15 §3.2: beyond
    the marginal line-of-sight distance :math:`d_{los} = \sqrt{2a}(\sqrt{0.001 h_{te}} +
    \sqrt{0.001 h_{re}})` (km), the first-term residue series (eq. 29-36, land:
    :math:`\varepsilon_r = 22`, :math:`\sigma = 0.003` S/m, vertical polarization) at the
    effective radius :math:`a`; nearer, where the least clearance :math:`h_{se}` of the
    ray over the curved earth is under :math:`h_{req} = 17.456\sqrt{d_{se1} d_{se2}
    \lambda / d}`, that loss at the radius :math:`a_{em}` that makes the path marginal,
    times :math:`1 - h_{se}/h_{req}` (eq. 25-27); otherwise 0.

    Parameters
    ----------
    distance_m : array_like
        Path length, metres.
    tx_height_m, rx_height_m : array_like
        Antenna heights above the smooth earth surface, metres.
    freq_mhz : float
        Carrier frequency, MHz.
    k_factor : float
        Effective earth-radius factor.

    Examples
    --------
    Two antennas 30 m and 10 m over smooth earth, 60 km apart at 900 MHz (beyond the
    35.6 km horizon):

    >>> round(float(spherical_earth_loss_db(60_000.0, 30.0, 10.0, 900.0)), 1)
    41.0
    """
    return _smooth_earth_terms(distance_m, tx_height_m, rx_height_m, freq_mhz, k_factor)[0]


def smooth_bullington_loss_db(
    distance_m: ArrayLike,
    tx_height_m: ArrayLike,
    rx_height_m: ArrayLike,
    freq_mhz: float,
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Bullington loss :math:`L_{bulls}` of a smooth-earth path, without a profile, dB.

    ITU-R P.1812-6 Attachment 4 to Annex 1 (eq. 105-112): the Bullington method of
    §4.3.1 on a profile of zero heights, in closed form. With line of sight, the edge is
    the point of least clearance :math:`h_{se}` (eq. 23-24),
    :math:`\nu = -h_{se}\sqrt{0.002 d / (\lambda d_{se1} d_{se2})}`; beyond the horizon,
    the steepest slopes to the curved earth :math:`S_{tm} = 500 C_e d - 2\sqrt{500 C_e
    h_{te}}` (and :math:`S_{rm}` with :math:`h_{re}`) meet at the Bullington point. Then
    :math:`L_{bulls} = J(\nu) + (1 - e^{-J/6})(10 + 0.02 d)`. On a finely sampled
    profile of zero heights :func:`bullington_loss_db` gives the same.

    Arguments as :func:`spherical_earth_loss_db`.

    Examples
    --------
    Bullington's single edge loses less than the rounded earth beyond the horizon:

    >>> round(float(smooth_bullington_loss_db(60_000.0, 30.0, 10.0, 900.0)), 1)
    22.8
    """
    return _smooth_earth_terms(distance_m, tx_height_m, rx_height_m, freq_mhz, k_factor)[1]


def delta_bullington_excess_db(
    distance_m: ArrayLike,
    tx_height_m: ArrayLike,
    rx_height_m: ArrayLike,
    freq_mhz: float,
    *,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""The smooth-earth term of the delta-Bullington method, dB (>= 0).

    ITU-R P.452-17 §4.2.3 eq. 39 (P.1812-6 §4.3.4):
    :math:`\max(L_{dsph} - L_{bulls}, 0)`, with the antennas' heights above the smooth
    surface of the profile (:func:`smooth_earth_heights_m`), :math:`h_{ts} - h_{std}` and
    :math:`h_{rs} - h_{srd}` (eq. 37-38). Added to the Bullington loss of the actual
    profile, it is the loss of the delta-Bullington method
    (:func:`delta_bullington_loss_db`). Arguments as :func:`spherical_earth_loss_db`.
    """
    sph, bulls = _smooth_earth_terms(distance_m, tx_height_m, rx_height_m, freq_mhz,
                                     k_factor)
    return np.maximum(sph - bulls, 0.0)


def delta_bullington_loss_db(
    distance_m: ArrayLike,
    terrain_m: NDArray[np.floating],
    tx_altitude_m: ArrayLike,
    rx_altitude_m: ArrayLike,
    freq_mhz: float,
    *,
    tx_ground_m: ArrayLike,
    rx_ground_m: ArrayLike,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float64]:
    r"""Terrain diffraction loss by the delta-Bullington method, dB.

    ITU-R P.452-17 §4.2.3 and P.1812-6 §4.3.4:

    .. math:: L_d = L_{bulla} + \max(L_{dsph} - L_{bulls}, 0)

    :math:`L_{bulla}` is Bullington over the actual profile (:func:`bullington_loss_db`),
    :math:`L_{bulls}` Bullington over the smooth profile (heights zero, antennas at their
    heights above the profile's smooth-earth surface; :func:`smooth_bullington_loss_db`,
    P.1812-6 Attachment 4), :math:`L_{dsph}` the spherical-earth diffraction loss of the
    same smooth path (:func:`spherical_earth_loss_db`, ITU-R P.526-15 §3.2 as P.452 gives
    it). Over smooth earth it is the spherical-earth loss; over a ridge that dominates, it
    is Bullington's; the term in between adds what a rounded earth loses beyond a single
    knife edge.

    Parameters
    ----------
    distance_m, terrain_m, tx_altitude_m, rx_altitude_m, freq_mhz, k_factor
        As :func:`bullington_loss_db`.
    tx_ground_m, rx_ground_m : array_like
        Ground heights under the terminals, metres above sea level.

    Examples
    --------
    >>> terrain = np.array([[0.0, 30.0, 0.0]])
    >>> round(float(delta_bullington_loss_db([10_000.0], terrain, 10.0, 10.0, 900.0,
    ...                                      tx_ground_m=0.0, rx_ground_m=0.0)[0]), 1)
    25.2
    """
    bulla = bullington_loss_db(distance_m, terrain_m, tx_altitude_m, rx_altitude_m, freq_mhz,
                               k_factor=k_factor)
    h_std, h_srd = smooth_earth_heights_m(distance_m, terrain_m, tx_ground_m, rx_ground_m,
                                          tx_altitude_m, rx_altitude_m)
    return bulla + delta_bullington_excess_db(
        distance_m, np.asarray(tx_altitude_m, dtype=float) - h_std,
        np.asarray(rx_altitude_m, dtype=float) - h_srd, freq_mhz, k_factor=k_factor)
