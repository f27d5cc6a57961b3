r"""Radio propagation kernels: path loss, antenna pattern and terrain diffraction.

Pure numpy functions on arrays, in SI units with the unit in every name, and no knowledge of
GeoDataFrames or files: :mod:`coverage.model` builds the arrays and calls these.

References
----------
- Hata, M. (1980). Empirical formula for propagation loss in land mobile radio services.
  IEEE Trans. Veh. Technol. 29(3), 317-325.
- COST Action 231 (1999). Digital mobile radio towards future generation systems, final
  report, ch. 4 (COST-231 Hata, 1500-2000 MHz).
- ITU-R P.526-15 (2019). Propagation by diffraction, sections 4.1 (single knife edge) and
  4.5 (Bullington method for a general terrain profile).
- 3GPP TR 36.814 (2010), table A.2.1.1-2: horizontal antenna pattern of a sector.
- Dozier, J., Bruno, J., Downey, P. (1981). A faster solution to the horizon problem.
  Computers & Geosciences 7(2), 145-151 (horizons along a profile by hull pointers).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._compiled import kernels

__all__ = [
    "EARTH_RADIUS_M",
    "SPEED_OF_LIGHT_M_S",
    "RaySweep",
    "bullington_loss_db",
    "bullington_loss_from_nu",
    "bullington_nu_root_m",
    "combined_gain_db",
    "delta_bullington_excess_db",
    "delta_bullington_loss_db",
    "free_space_loss_db",
    "hata_environment_offset_db",
    "hata_loss_db",
    "knife_edge_loss_db",
    "ray_sweep_nu_root_m",
    "sample_profiles",
    "sector_gain_db",
    "smooth_bullington_loss_db",
    "smooth_earth_heights_m",
    "spherical_earth_loss_db",
    "vertical_gain_db",
]

EARTH_RADIUS_M = 6_371_000.0
SPEED_OF_LIGHT_M_S = 299_792_458.0
_MIN_DISTANCE_M = 1.0


def free_space_loss_db(distance_m: ArrayLike, freq_mhz: ArrayLike) -> NDArray[np.float64]:
    r"""Free-space basic transmission loss (Friis), dB.

    .. math:: L_{fs} = 32.45 + 20 \log_{10} f_{MHz} + 20 \log_{10} d_{km}

    Parameters
    ----------
    distance_m : array_like
        Path length in metres (clipped below at 1 m).
    freq_mhz : array_like
        Carrier frequency in MHz.

    Examples
    --------
    >>> round(float(free_space_loss_db(1000.0, 1800.0)), 2)
    97.56
    """
    d_km = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M) / 1000.0
    return 32.45 + 20.0 * np.log10(freq_mhz) + 20.0 * np.log10(d_km)


def hata_loss_db(
    distance_m: ArrayLike,
    freq_mhz: ArrayLike,
    tx_height_m: ArrayLike,
    *,
    rx_height_m: float = 1.5,
    environment: str = "rural",
) -> NDArray[np.float64]:
    r"""Median path loss by Okumura-Hata (below 1500 MHz) or COST-231 Hata (above), dB.

    .. math::

        L_u = A + (44.9 - 6.55 \log_{10} h_b) \log_{10} d_{km}, \qquad
        A = \begin{cases}
            69.55 + 26.16 \log_{10} f - 13.82 \log_{10} h_b - a(h_m) & f \le 1500 \\
            46.3 + 33.9 \log_{10} f - 13.82 \log_{10} h_b - a(h_m) & f > 1500
        \end{cases}

    with :math:`a(h_m) = (1.1 \log_{10} f - 0.7) h_m - (1.56 \log_{10} f - 0.8)` (small or
    medium city). Suburban subtracts :math:`2 \log_{10}^2(f/28) + 5.4`; rural (Hata's open
    area) subtracts :math:`4.78 \log_{10}^2 f - 18.33 \log_{10} f + 40.94`. The result is
    never less than free space, which governs the first few hundred metres. Hata is fitted
    for 150-2000 MHz, 1-20 km and base heights 30-200 m; outside that range it is
    extrapolated (3.5 GHz 5G included), which calibration against measurements corrects.

    Parameters
    ----------
    distance_m : array_like
        Horizontal distance in metres.
    freq_mhz : array_like
        Carrier frequency, MHz.
    tx_height_m : array_like
        Effective base-station antenna height, metres (clipped to 1..1000).
    rx_height_m : float
        Mobile antenna height, metres.
    environment : {"urban", "suburban", "rural"}
        Land-use correction.

    Examples
    --------
    >>> round(float(hata_loss_db(5000.0, 900.0, 30.0, environment="urban")), 1)
    151.0
    """
    d_m = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M)
    f = np.asarray(freq_mhz, dtype=float)
    hb = np.clip(np.asarray(tx_height_m, dtype=float), 1.0, 1000.0)
    log_f = np.log10(f)
    a_hm = (1.1 * log_f - 0.7) * rx_height_m - (1.56 * log_f - 0.8)
    base = np.where(
        f <= 1500.0,
        69.55 + 26.16 * log_f,
        46.3 + 33.9 * log_f,
    )
    loss = (
        base
        - 13.82 * np.log10(hb)
        - a_hm
        + (44.9 - 6.55 * np.log10(hb)) * np.log10(d_m / 1000.0)
    )
    if environment == "suburban":
        loss = loss - 2.0 * np.log10(f / 28.0) ** 2 - 5.4
    elif environment == "rural":
        loss = loss - 4.78 * log_f**2 + 18.33 * log_f - 40.94
    elif environment != "urban":
        raise ValueError(f"environment={environment!r}: use 'urban', 'suburban' or 'rural'")
    return np.maximum(loss, free_space_loss_db(d_m, f))


def hata_environment_offset_db(freq_mhz: float, environment: str) -> float:
    """Hata loss of ``environment`` minus that of the rural (open) area, dB (>= 0).

    The land-use corrections of :func:`hata_loss_db` are additive and do not depend on
    distance or heights, so a per-cell environment is the rural loss plus this offset.

    Examples
    --------
    >>> round(hata_environment_offset_db(1800.0, "suburban"), 1)
    20.0
    >>> hata_environment_offset_db(900.0, "rural")
    0.0
    """
    log_f = math.log10(freq_mhz)
    open_area = 4.78 * log_f**2 - 18.33 * log_f + 40.94
    if environment == "rural":
        return 0.0
    if environment == "suburban":
        return open_area - 2.0 * math.log10(freq_mhz / 28.0) ** 2 - 5.4
    if environment == "urban":
        return open_area
    raise ValueError(f"environment={environment!r}: use 'urban', 'suburban' or 'rural'")


def sector_gain_db(
    bearing_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    beamwidth_deg: ArrayLike = 65.0,
    *,
    front_to_back_db: float = 25.0,
) -> NDArray[np.float64]:
    r"""Relative horizontal gain of a sector antenna (3GPP TR 36.814), dB (<= 0).

    .. math:: A(\theta) = -\min\left(12 (\theta / \theta_{3dB})^2, A_m\right)

    A NaN azimuth means an omnidirectional antenna (gain 0 dB).

    Parameters
    ----------
    bearing_deg : array_like
        Bearing from the site to the point, degrees clockwise from north.
    azimuth_deg : array_like
        Boresight bearing, degrees clockwise from north; NaN for omni.
    beamwidth_deg : array_like
        Horizontal half-power beamwidth :math:`\theta_{3dB}`, degrees.
    front_to_back_db : float
        :math:`A_m`, the floor of the pattern, dB.

    Examples
    --------
    >>> float(sector_gain_db(32.5, 0.0, 65.0))
    -3.0
    """
    theta = np.array(np.subtract(bearing_deg, azimuth_deg, dtype=float), ndmin=0)
    theta -= 360.0 * np.rint(theta / 360.0)  # to -180..180 (cheaper than np.mod)
    theta /= np.asarray(beamwidth_deg, dtype=float)
    gain = np.square(theta, out=theta)
    gain *= -12.0
    np.maximum(gain, -front_to_back_db, out=gain)
    return np.where(np.isnan(gain), 0.0, gain)


def vertical_gain_db(
    elevation_deg: ArrayLike,
    downtilt_deg: float,
    beamwidth_deg: float = 10.0,
    *,
    side_lobe_db: float = 20.0,
) -> NDArray[np.float64]:
    r"""Relative vertical gain of a base-station antenna (3GPP TR 36.814), dB (<= 0).

    .. math:: A_V(\theta) = -\min\left(12 ((\theta - \theta_{tilt}) / \theta_{3dB})^2,
              SLA_V\right)

    3GPP TR 36.814 Table A.2.1.1-2 (and ITU-R M.2412's macro antenna): vertical half-power
    beamwidth 10°, side-lobe level 20 dB. Its sum with the horizontal pattern is capped at
    the front-to-back ratio (:func:`combined_gain_db`).

    Parameters
    ----------
    elevation_deg : array_like
        Angle of the point under the antenna's horizontal, degrees (positive: below).
    downtilt_deg : float
        Downtilt of the main beam under the horizontal, degrees.
    beamwidth_deg : float
        Vertical half-power beamwidth :math:`\theta_{3dB}`, degrees.
    side_lobe_db : float
        :math:`SLA_V`, the floor of the pattern, dB.

    Examples
    --------
    >>> float(vertical_gain_db(9.0, 4.0, 10.0))
    -3.0
    """
    theta = (np.asarray(elevation_deg, dtype=float) - downtilt_deg) / beamwidth_deg
    return np.maximum(-12.0 * theta * theta, -side_lobe_db)


def combined_gain_db(horizontal_db: ArrayLike | None, vertical_db: ArrayLike,
                     front_to_back_db: float = 25.0) -> NDArray[np.float64]:
    """Horizontal plus vertical gain, capped at the front-to-back ratio (TR 36.814), dB.

    ``horizontal_db`` None: an omnidirectional antenna, the vertical gain alone.
    """
    if horizontal_db is None:
        return np.asarray(vertical_db, dtype=float)
    return np.maximum(np.add(horizontal_db, vertical_db), -front_to_back_db)


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
    d = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M)
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
    d = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M)
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
    d = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M)
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
    d_km = np.maximum(np.asarray(distance_m, dtype=float), _MIN_DISTANCE_M) / 1000.0
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


def sample_profiles(
    dem: NDArray[np.floating],
    inv_transform: tuple[float, float, float, float, float, float],
    x0: float,
    y0: float,
    x1: NDArray[np.floating],
    y1: NDArray[np.floating],
    samples: int,
) -> NDArray[np.float64]:
    """Ground heights along straight paths from one point to many (nearest cell).

    Parameters
    ----------
    dem : ndarray, shape (rows, cols)
        Elevation grid in metres, without NaN.
    inv_transform : tuple
        The six coefficients ``(a, b, c, d, e, f)`` of the inverse affine transform, mapping
        map coordinates to fractional ``(col, row)``.
    x0, y0 : float
        Start of every path (the site), map units of the DEM's CRS (metres).
    x1, y1 : ndarray, shape (n,)
        Ends of the paths.
    samples : int
        Number of samples strictly inside each path.

    Returns
    -------
    ndarray, shape (n, samples)
        Heights at fractions ``1/(samples+1) .. samples/(samples+1)`` of each path.
    """
    a, b, c, d, e, f = inv_transform
    t = np.arange(1, samples + 1, dtype=float) / (samples + 1)
    xs = x0 + (np.asarray(x1, dtype=float)[:, None] - x0) * t[None, :]
    ys = y0 + (np.asarray(y1, dtype=float)[:, None] - y0) * t[None, :]
    rows_n, cols_n = dem.shape
    cols = np.clip((a * xs + b * ys + c).astype(np.int64), 0, cols_n - 1)
    rows = np.clip((d * xs + e * ys + f).astype(np.int64), 0, rows_n - 1)
    return np.take(dem, rows * cols_n + cols)


def ray_sweep_nu_root_m(
    ground_m: NDArray[np.floating],
    step_m: float,
    tx_altitude_m: ArrayLike,
    *,
    rx_height_m: float = 1.5,
    k_factor: float = 4.0 / 3.0,
) -> NDArray[np.float32]:
    r"""Bullington edge parameter :math:`\nu\sqrt{\lambda}` for every receiver along rays.

    A radial sweep: each ray from a site is sampled once, and every sample ``j`` is in turn
    the receiver of the path made of samples ``1 .. j-1``, so one profile serves all the
    cells along the ray (O(1) amortised work per receiver instead of O(k) samples per cell
    as in :func:`bullington_nu_root_m`).

    Heights are first taken relative to the site's tangent plane,
    :math:`h^* = h - d^2 / (2 k R_e)`; for a path of length :math:`D` this differs from the
    recommendation's bulge-corrected heights :math:`h + d(D-d)/(2kR_e)` by a term linear in
    :math:`d`, which leaves the equivalent edge's position and its height above the direct
    path (hence :math:`\nu`) unchanged. In that frame (ITU-R P.526-15 section 4.5.1):

    - :math:`S_{tim} = \max_i (h^*_i - h_{ts}) / d_i` is a running maximum along the ray;
    - :math:`S_{rim} = \max_i (h^*_i - h_{rs}) / (D - d_i)` is the slope to the tangent
      point of the upper convex hull of the samples before the receiver, found by walking
      the horizon pointers of Dozier et al. (1981): first from the ground under the
      receiver (which extends the hull), then on from there for the receiver's height
      (raising the observer only moves the tangent point further back along the hull);
    - obstructed paths (:math:`S_{tim} > (h_{rs} - h_{ts}) / D`) then get Bullington's
      equivalent edge exactly as :func:`bullington_nu_root_m` (eq. 49-52);
    - line-of-sight paths take the greater Fresnel-zone intrusion of the two tangent
      points (the transmitter's horizon and the receiver's), where
      :func:`bullington_nu_root_m` scans every sample (eq. 54): the one approximation of
      the sweep, which lowers :math:`\nu` only for paths that clear the terrain.

    Parameters
    ----------
    ground_m : ndarray, shape (rays, n)
        Ground height above sea level at distances ``0, step_m, 2 step_m, ...`` along each
        ray (column 0 under the site), metres, without NaN.
    step_m : float
        Distance between samples, metres.
    tx_altitude_m : array_like, shape (rays,) or scalar
        Antenna altitude above sea level of each ray's site (ground plus mast), metres.
    rx_height_m : float
        Receiver height above the ground, metres.
    k_factor : float
        Effective earth-radius factor.

    Returns
    -------
    ndarray, shape (rays, n), float32
        :math:`\nu\sqrt{\lambda}` in :math:`m^{1/2}` for a receiver at each sample; ``-inf``
        for samples 0 and 1 (no terrain between the terminals).

    Examples
    --------
    A 30 m ridge halfway along a 10 km ray, antennas 10 m above flat ground: the receiver
    at the ray's end sees the same edge as :func:`bullington_nu_root_m` on the three inner
    samples of that path:

    >>> ground = np.zeros((1, 5)); ground[0, 2] = 30.0
    >>> nu = ray_sweep_nu_root_m(ground, 2500.0, 10.0, rx_height_m=10.0)
    >>> per_path = bullington_nu_root_m([10_000.0], ground[:, 1:4], 10.0, 10.0)
    >>> round(float(nu[0, 4]), 4), round(float(per_path[0]), 4)
    (0.6073, 0.6073)
    """
    ground = np.asarray(ground_m, dtype=float)
    rays, n = ground.shape
    sweep = RaySweep.build(ground, step_m, tx_altitude_m, k_factor=k_factor)
    ray = np.repeat(np.arange(rays), n)
    dist = np.tile(np.arange(n) * step_m, rays)
    nu = sweep.nu_root_m(ray, dist, ground.ravel() + rx_height_m)
    return nu.reshape(rays, n).astype(np.float32)


class RaySweep:
    """Terrain state along the rays of a radial sweep, for Bullington at any receiver.

    Built once per batch of rays (:meth:`build`), sample-major (sample ``j`` of ray ``r`` at
    flat index ``j * rays + r``, one sentinel appended): heights in the site's tangent-plane
    frame ``hs``, their distances from the site ``d``, the flat index of the previous
    upper-hull vertex of every sample ``hor`` (Dozier et al. 1981; the sentinel, of height
    ``-inf``, where there is none, so that walks stop without a test), and the running
    maximum of the transmitter-side slope ``s_tim`` with the flat index of its sample
    ``i_tim``. :meth:`nu_root_m` then evaluates any receiver on a ray at its own distance
    and altitude (the cell's ground, not the ray sample's): the samples of the ray up to
    about one step before the receiver (``round(d / step) - 1`` of them, as a straight
    profile sampled at the step) form its profile.
    """

    __slots__ = ("d", "hor", "hs", "i_tim", "k_factor", "lsq", "rays", "s_tim", "samples",
                 "step_m", "tx")

    def __init__(self, hs, hor, s_tim, i_tim, tx, step_m, k_factor, d=None):
        self.hs, self.hor, self.s_tim, self.i_tim = hs, hor, s_tim, i_tim
        self.tx, self.step_m, self.k_factor = tx, step_m, k_factor
        self.rays = tx.size
        self.samples = (hs.size - 1) // self.rays
        if d is None:
            d = np.append(np.repeat(np.arange(self.samples) * step_m, self.rays), 0.0)
        self.d = d
        self.lsq = None

    @classmethod
    def build(cls, ground_m: NDArray[np.floating], step_m: float, tx_altitude_m: ArrayLike,
              *, k_factor: float = 4.0 / 3.0,
              lengths: NDArray[np.integer] | None = None) -> RaySweep:
        """Sweep rays of ground heights ``(rays, n)`` sampled every ``step_m`` from the site.

        ``lengths`` (samples per ray, default ``n``) sweeps each ray only that far: a
        sample's state depends on the samples before it alone, so receivers nearer than
        ``lengths * step_m`` get the same answer; the state beyond is left unset.
        """
        ground = np.asarray(ground_m)
        rays, n = ground.shape
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        # Sample-major layout: the samples at one distance are contiguous.
        hs = np.empty(size + 1)
        hs[:size].reshape(n, rays)[...] = ground.T
        hs[:size].reshape(n, rays)[...] -= (d**2 / (2.0 * k_factor * EARTH_RADIUS_M))[:, None]
        hs[size] = -np.inf
        return cls._swept(hs, rays, n, step_m, tx_altitude_m, k_factor, lengths)

    @classmethod
    def sample_and_build(cls, heights: NDArray[np.float32], x_m: NDArray[np.float32],
                         y_m: NDArray[np.float32], sin_theta: NDArray[np.float32],
                         cos_theta: NDArray[np.float32], step_m: float,
                         tx_altitude_m: ArrayLike, lengths: NDArray[np.integer], *,
                         k_factor: float = 4.0 / 3.0) -> RaySweep | None:
        """:meth:`build` on rays sampled from a terrain grid in one compiled pass, or None.

        The rays start at ``(x_m, y_m)`` (float32, metres from the terrain grid's top-left
        corner, x east and y north) in the directions ``(sin_theta, cos_theta)``; sample
        ``j`` lies ``j * step_m`` along, bilinear between the centres of the cells of
        ``heights`` (cells ``step_m`` wide), each ray sampled and swept up to its
        ``lengths``. The arithmetic is that of :func:`coverage.model.predict._sweep`
        (float32 positions and heights) and of :meth:`build`, to the bit. None when the
        compiled kernels are not available (:mod:`coverage._compiled`): then sample in
        numpy and call :meth:`build`.
        """
        compiled = kernels()
        if compiled is None:
            return None
        rays = x_m.size
        lengths = np.asarray(lengths, dtype=np.int64)
        n = max(int(lengths.max()), 1)
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        bulge = d**2 / (2.0 * k_factor * EARTH_RADIUS_M)
        tx = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (rays,)).copy()
        # entries past each ray's length are never read (as with build's lengths)
        hs, d_flat = np.empty(size + 1), np.empty(size + 1)
        hs[size], d_flat[size] = -np.inf, 0.0
        hor = np.empty(size, dtype=np.int32)
        s_tim, i_tim = np.empty(size), np.empty(size, dtype=np.int32)
        compiled.sample_and_sweep(np.ascontiguousarray(heights, dtype=np.float32), x_m, y_m,
                                  sin_theta, cos_theta, float(step_m), np.float32(step_m),
                                  lengths, d, bulge, tx, hs, d_flat, hor, s_tim, i_tim)
        return cls(hs, hor, s_tim, i_tim, tx, step_m, k_factor, d_flat)

    @classmethod
    def _swept(cls, hs, rays, n, step_m, tx_altitude_m, k_factor, lengths) -> RaySweep:
        """The sweep's state over the tangent-plane heights ``hs`` (see :meth:`build`)."""
        size = rays * n
        d = np.arange(n, dtype=float) * step_m
        d_flat = np.empty(size + 1)
        d_flat[:size].reshape(n, rays)[...] = d[:, None]
        d_flat[size] = 0.0
        tx = np.broadcast_to(np.asarray(tx_altitude_m, dtype=float), (rays,)).copy()
        hor = np.full(size, size, dtype=np.int32)
        s_tim = np.full((n, rays), -np.inf)
        i_tim = np.empty((n, rays), dtype=np.int32)
        ray = np.arange(rays, dtype=np.int32)
        i_tim[0] = ray + rays  # sample 1 until one is steeper
        lengths = None if lengths is None else np.asarray(lengths)
        compiled = kernels()
        if compiled is not None:  # the same loop, compiled (coverage._compiled)
            compiled.build(hs, d_flat, d, tx, np.full(rays, n, np.int64) if lengths is None
                           else lengths.astype(np.int64), n, hor, s_tim.reshape(-1),
                           i_tim.reshape(-1))
            return cls(hs, hor, s_tim.ravel(), i_tim.ravel(), tx, step_m, k_factor, d_flat)
        for j in range(1, n):
            # the rays still being swept at this sample (all of them by default)
            act = slice(None) if lengths is None else np.flatnonzero(lengths > j)
            r_act = ray[act]
            if r_act.size == 0:
                break
            h_j = hs[j * rays:(j + 1) * rays][act]
            s = (h_j - tx[act]) / d[j]
            prev_s, prev_i = s_tim[j - 1][act], i_tim[j - 1][act]
            better = s > prev_s
            s_tim[j][act] = np.where(better, s, prev_s)
            i_tim[j][act] = np.where(better, r_act + j * rays, prev_i)
            if j >= 2:
                hor[j * rays:(j + 1) * rays][act] = _hull_tangent(
                    hs, hor, d_flat, np.full(r_act.size, d[j]), h_j, r_act + (j - 1) * rays)[0]
        return cls(hs, hor, s_tim.ravel(), i_tim.ravel(), tx, step_m, k_factor, d_flat)

    def nu_root_m(self, ray: NDArray[np.integer], distance_m: NDArray[np.floating],
                  rx_altitude_m: NDArray[np.floating]) -> NDArray[np.float64]:
        r"""Bullington :math:`\nu\sqrt{\lambda}` of receivers on rays, :math:`m^{1/2}`.

        Parameters
        ----------
        ray : ndarray of int, shape (m,)
            Ray of each receiver.
        distance_m : ndarray, shape (m,)
            Distance of each receiver from the site, metres.
        rx_altitude_m : ndarray, shape (m,)
            Receiver antenna altitude above sea level, metres.

        Returns
        -------
        ndarray, shape (m,)
            ``-inf`` where no sample lies between the terminals.
        """
        ray = np.asarray(ray, dtype=np.int64)
        dist = np.asarray(distance_m, dtype=float)
        rays, n = self.rays, self.samples
        compiled = kernels()
        if compiled is not None:  # the same per receiver, compiled (coverage._compiled)
            out = np.empty(dist.shape)
            rx = np.broadcast_to(np.asarray(rx_altitude_m, dtype=float), dist.shape)
            compiled.nu_root(self.hs, self.hor, self.d, self.s_tim, self.i_tim, self.tx,
                             rays, n, float(self.step_m),
                             2.0 * self.k_factor * EARTH_RADIUS_M, np.ascontiguousarray(ray),
                             np.ascontiguousarray(dist), np.ascontiguousarray(rx), out)
            return out
        # Profile: the samples up to about one step before the receiver (never within half
        # a step, where a sample of the receiver's own slope would act as a knife edge).
        j = np.minimum(np.rint(dist / self.step_m).astype(np.int64) - 1, n - 1)
        out = np.full(dist.shape, -np.inf)
        ok = j >= 1
        if not ok.all():
            ray, dist, j = ray[ok], dist[ok], j[ok]
        tx = self.tx[ray]
        h_rx = np.asarray(rx_altitude_m, dtype=float)
        h_rx = (h_rx[ok] if h_rx.shape == ok.shape else np.broadcast_to(h_rx, dist.shape)) - (
            dist**2 / (2.0 * self.k_factor * EARTH_RADIUS_M))
        j *= rays
        j += ray
        flat = j
        s_tim = self.s_tim[flat]
        # sample j is the last vertex of the hull of 1..j: walk on from it
        cur, s_rim = _hull_tangent(self.hs, self.hor, self.d, dist, h_rx, flat)
        los = s_tim < (h_rx - tx) / dist
        # Obstructed: Bullington's equivalent edge (ITU-R P.526-15 eq. 49-52).
        denom = np.maximum(s_tim + s_rim, 1e-12)
        num = s_rim * dist
        num += h_rx
        num -= tx
        d_bp = np.clip(num / denom, 1e-3 * dist, 0.999 * dist)
        rest = dist - d_bp
        h_bp = tx * rest
        h_bp += h_rx * d_bp
        h_bp /= -dist
        h_bp += tx
        h_bp += s_tim * d_bp
        rest *= d_bp
        np.divide(2.0 * dist, rest, out=rest)
        np.sqrt(rest, out=rest)
        nu = h_bp
        nu *= rest
        if los.any():
            # Line of sight: greatest intrusion of the two tangent points (eq. 54).
            args = (self.hs, self.d, dist[los], tx[los], h_rx[los])
            i_tim = self.i_tim[flat[los]]
            nu[los] = np.maximum(_intrusion(*args, i_tim), _intrusion(*args, cur[los]))
        out[ok] = nu
        return out


    def smooth_heights_m(self, ray: NDArray[np.integer], distance_m: NDArray[np.floating],
                         rx_altitude_m: NDArray[np.floating], rx_ground_m: NDArray[np.floating]
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        r"""Smooth-earth heights at the terminals of receivers on rays, m above sea level.

        :func:`smooth_earth_heights_m` on each receiver's profile (the site's ground, the
        ray's samples up to about one step before the receiver as in :meth:`nu_root_m`,
        the receiver's ``rx_ground_m`` at ``distance_m``), in constant work per receiver:
        the least-squares sums :math:`v_1, v_2` are running sums along the ray (computed
        once per sweep) plus the last segment; the obstruction's height and the two
        horizon angles (P.1812-6 Attachment 1 eq. 90) come from the sweep's transmitter
        slope, the receiver's tangent to the upper hull and a walk back along the hull
        to its highest point above the antennas' line. Those three are taken over the
        bulge-corrected heights the sweep holds, where the recommendation takes them
        flat: the two differ by the bulge :math:`d_i (d - d_i) / (2 k R_e)`, at most
        1.5 m on a 10 km path. ``(site ground, rx_ground_m)`` where no sample lies
        between the terminals.
        """
        ray = np.ascontiguousarray(ray, dtype=np.int64)
        dist = np.ascontiguousarray(distance_m, dtype=float)
        rx = np.ascontiguousarray(np.broadcast_to(np.asarray(rx_altitude_m, float),
                                                  dist.shape))
        ground = np.ascontiguousarray(np.broadcast_to(np.asarray(rx_ground_m, float),
                                                      dist.shape))
        p1, p2 = self._lsq_sums()
        bulge_div = 2.0 * self.k_factor * EARTH_RADIUS_M
        h_std, h_srd = np.empty(dist.shape), np.empty(dist.shape)
        compiled = kernels()
        if compiled is not None:  # the same per receiver, compiled (coverage._compiled)
            compiled.smooth_heights(self.hs, self.hor, self.d, self.s_tim, self.tx, p1, p2,
                                    self.rays, self.samples, float(self.step_m), bulge_div,
                                    ray, dist, rx, ground, h_std, h_srd)
            return h_std, h_srd
        j = np.minimum(np.rint(dist / self.step_m).astype(np.int64) - 1, self.samples - 1)
        h_std[:] = self.hs[ray]
        h_srd[:] = ground
        ok = np.flatnonzero(j >= 1)
        x, r, gr = dist[ok], ray[ok], ground[ok]
        f = j[ok] * self.rays + r
        t = self.tx[r]
        dj = self.d[f]
        gj = self.hs[f] + dj * dj / bulge_div
        seg = x - dj
        v1 = p1[f] + seg * (gr + gj)
        v2 = p2[f] + seg * (gr * (2.0 * x + dj) + gj * (x + 2.0 * dj))
        xx = x * x
        h_st = (2.0 * v1 * x - v2) / xx
        h_sr = (v2 - v1 * x) / xx
        h = rx[ok] - xx / bulge_div
        m = (h - t) / x
        a_t = self.s_tim[f] - m
        o = np.flatnonzero(a_t > 0.0)  # the antennas' line cut by the profile
        if o.size:
            cur, s_rim = _hull_tangent(self.hs, self.hor, self.d, x[o], h[o], f[o])
            a_r = s_rim + m[o]
            h_obs = _hull_highest(self.hs, self.hor, self.d, m[o], cur) - t[o]
            h_st[o] = h_st[o] - h_obs * (a_t[o] / (a_t[o] + a_r))
            h_sr[o] = h_sr[o] - h_obs * (a_r / (a_t[o] + a_r))
        h_std[ok] = np.minimum(h_st, h_std[ok])
        h_srd[ok] = np.minimum(h_sr, gr)
        return h_std, h_srd

    def _lsq_sums(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Running least-squares sums :math:`v_1, v_2` along the rays, by flat index.

        P.1812-6 eq. 85-86 from the site to each sample, over the ground (the sweep's
        heights with the bulge given back).
        """
        if self.lsq is None:
            rays, n = self.rays, self.samples
            d = np.arange(n, dtype=float) * self.step_m
            p1 = np.zeros(rays * n)
            p2 = np.zeros(rays * n)
            if n > 1:
                with np.errstate(all="ignore"):  # samples past a ray's length: never read
                    g = self.hs[:rays * n].reshape(n, rays) + (
                        d**2 / (2.0 * self.k_factor * EARTH_RADIUS_M))[:, None]
                    step = self.step_m
                    s1 = step * (g[1:] + g[:-1])
                    s2 = step * (g[1:] * (2.0 * d[1:] + d[:-1])[:, None]
                                 + g[:-1] * (d[1:] + 2.0 * d[:-1])[:, None])
                    np.cumsum(s1, axis=0, out=p1.reshape(n, rays)[1:])
                    np.cumsum(s2, axis=0, out=p2.reshape(n, rays)[1:])
            self.lsq = (p1, p2)
        return self.lsq

    def horizon_points(self, ray: NDArray[np.integer], last: NDArray[np.integer],
                       distance_m: NDArray[np.floating], rx_altitude_m: NDArray[np.floating]
                       ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Samples of the transmitter's and the receiver's horizons among ``1..last``.

        The transmitter's: the sample of steepest slope from the antenna (the running
        maximum of the sweep); the receiver's: the tangent point, from the receiver at
        ``distance_m`` and ``rx_altitude_m``, of the upper hull of the samples up to
        ``last`` (the walk of :meth:`nu_root_m`). Both in the tangent-plane frame of the
        sweep's ``k_factor``; ``last >= 1``. Returns sample indices along the rays.
        """
        ray = np.asarray(ray, dtype=np.int64)
        flat = np.asarray(last, dtype=np.int64) * self.rays + ray
        dist = np.asarray(distance_m, dtype=float)
        h_rx = np.asarray(rx_altitude_m, dtype=float) - dist**2 / (
            2.0 * self.k_factor * EARTH_RADIUS_M)
        cur, _ = _hull_tangent(self.hs, self.hor, self.d, dist, h_rx, flat)
        return self.i_tim[flat] // self.rays, cur // self.rays


def _intrusion(hs, d, dist, tx, h_rx, i):
    di = d[i]
    above = hs[i] - (tx * (dist - di) + h_rx * di) / dist
    return above * np.sqrt(2.0 * dist / (di * (dist - di)))


def _hull_highest(hs, hor, d, slope, start):
    """Highest of ``hs - slope * d`` over the upper hull, walking back from ``start``.

    Along an upper hull the edges steepen going back, so the height above a line of slope
    ``slope`` rises while an edge is gentler than it, then falls; the walk stops there (or
    at the sentinel, of height ``-inf``). Returns that greatest height.
    """
    cur = np.array(start, dtype=np.int64)
    best = hs[cur] - slope * d[cur]
    idx = np.arange(cur.size)
    c, b, sl = cur, best, slope
    while idx.size:
        p = hor[c]
        h_p = hs[p] - sl * d[p]
        move = h_p > b
        if not move.all():
            idx, p, h_p, sl = idx[move], p[move], h_p[move], sl[move]
        c, b = p, h_p
        best[idx] = b
    return best


def _hull_tangent(hs, hor, d, dist, h_obs, start):
    """Tangent point (flat index) and slope from ``(dist, h_obs)`` to the hull before it.

    Walks the hull pointers from ``start`` (flat index of a hull vertex at or before the
    tangent): the slopes from an outside point along the upper hull rise then fall. A
    pointer to the sentinel (height ``-inf``) ends a walk.
    """
    compiled = kernels()
    if compiled is not None:  # the same walk, compiled (coverage._compiled)
        start = np.asarray(start, dtype=np.int64)
        cur, s_cur = np.empty(start.shape, np.int64), np.empty(start.shape)
        dist = np.broadcast_to(np.asarray(dist, dtype=float), start.shape)
        h_obs = np.broadcast_to(np.asarray(h_obs, dtype=float), start.shape)
        compiled.hull_tangent(hs, hor, d, np.ascontiguousarray(dist),
                              np.ascontiguousarray(h_obs), start, cur, s_cur)
        return cur, s_cur
    cur = np.array(start, dtype=np.int64)
    s_cur = (hs[cur] - h_obs) / (dist - d[cur])
    # the walkers still moving, with everything they need carried along (one filter a step)
    idx = np.arange(cur.size)
    c, s_a, h_a, dist_a = cur, s_cur, h_obs, dist
    while idx.size:
        p = hor[c]
        s_p = (hs[p] - h_a) / (dist_a - d[p])
        move = s_p >= s_a
        if not move.all():
            idx, p, s_p = idx[move], p[move], s_p[move]
            h_a, dist_a = h_a[move], dist_a[move]
        c, s_a = p, s_p
        cur[idx] = c
        s_cur[idx] = s_a
    return cur, s_cur
