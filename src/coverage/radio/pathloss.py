"""Median path loss: free space and Okumura-Hata / COST-231 Hata, dB.

References
----------
- Hata, M. (1980). Empirical formula for propagation loss in land mobile radio services.
  IEEE Trans. Veh. Technol. 29(3), 317-325.
- COST Action 231 (1999). Digital mobile radio towards future generation systems, final
  report, ch. 4 (COST-231 Hata, 1500-2000 MHz).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EARTH_RADIUS_M",
    "EFFECTIVE_HEIGHT_WINDOW_M",
    "MIN_DISTANCE_M",
    "SPEED_OF_LIGHT_M_S",
    "effective_height_window_m",
    "free_space_loss_db",
    "hata_environment_offset_db",
    "hata_loss_db",
    "window_mean_ground_m",
]

#: Mean earth radius, m.
EARTH_RADIUS_M = 6_371_000.0
SPEED_OF_LIGHT_M_S = 299_792_458.0
#: Paths shorter than this are taken at this length, m (the median laws are singular at 0).
MIN_DISTANCE_M = 1.0


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
    d_km = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M) / 1000.0
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
    d_m = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
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


#: The stretch of a path whose mean ground Okumura's effective base-station height stands
#: over, metres from the mast: 3 to 15 km on paths of 15 km or longer (ITU-R P.1546-6
#: Annex 5 §3.2); on a shorter path of length d, 0.2 d to d (§3.1.2).
EFFECTIVE_HEIGHT_WINDOW_M: tuple[float, float] = (3000.0, 15000.0)


def effective_height_window_m(distance_m: ArrayLike
                              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Start and end of the ground the effective base-station height stands over, metres.

    Okumura's curves (and so Hata's law) take the base station's height above the mean
    ground between 3 and 15 km from it towards the receiver; ITU-R P.1546-6 Annex 5 §3
    defines its :math:`h_1` so over terrain: 3 to 15 km on a land path of :math:`d` >= 15
    km (§3.2), and :math:`0.2 d` to :math:`d` on a shorter one (§3.1.2), the window then
    ending at the receiver.

    Parameters
    ----------
    distance_m : array_like
        Path length, metres.

    Returns
    -------
    (ndarray, ndarray)
        The window's start and end, metres from the base station.

    Examples
    --------
    >>> [float(v) for v in np.concatenate(effective_height_window_m([5000.0, 20000.0]))]
    [1000.0, 3000.0, 5000.0, 15000.0]
    """
    d = np.asarray(distance_m, dtype=float)
    near, far = EFFECTIVE_HEIGHT_WINDOW_M
    long = d >= far
    return np.where(long, near, 0.2 * d), np.where(long, far, d)


def window_mean_ground_m(sample_d_m: ArrayLike, sample_ground_m: ArrayLike,
                         distance_m: float, rx_ground_m: float) -> float:
    """Mean ground of one path's effective-height window, metres.

    The mean of the path's inner ground samples (at ``sample_d_m`` metres from the base
    station, heights ``sample_ground_m``) that lie in the window of
    :func:`effective_height_window_m`, and of the receiver's own ground (``rx_ground_m``
    at ``distance_m``) where the window ends there (paths under 15 km). The receiver's
    ground where no sample lies in the window.

    Examples
    --------
    A 6 km path over a plain at 100 m with a 160 m hill at 4 km and a 400 m one at 1 km:
    the window is 1.2-6 km, its four samples (the hill at 4 km among them) and the
    receiver's ground are averaged, the hill at 1 km lies before it:

    >>> window_mean_ground_m([1000, 2000, 3000, 4000, 5000], [400, 100, 100, 160, 100],
    ...                      6000.0, 100.0)
    112.0
    """
    x = np.asarray(sample_d_m, dtype=float)
    g = np.asarray(sample_ground_m, dtype=float)
    start, end = (float(v) for v in effective_height_window_m(distance_m))
    inside = (x >= start - 1e-6) & (x <= end + 1e-6) & (x < distance_m)
    total, count = float(g[inside].sum()), int(inside.sum())
    if distance_m <= end:
        total, count = total + rx_ground_m, count + 1
    return total / count if count else float(rx_ground_m)

