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
    "MIN_DISTANCE_M",
    "SPEED_OF_LIGHT_M_S",
    "free_space_loss_db",
    "hata_environment_offset_db",
    "hata_loss_db",
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
