"""Antenna gains relative to boresight: the 3GPP sector pattern, horizontal and vertical, dB.

References
----------
- 3GPP TR 36.814 (2010), table A.2.1.1-2: the horizontal and vertical antenna pattern of a
  sector.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "combined_gain_db",
    "sector_gain_db",
    "vertical_gain_db",
]


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
