r"""Radio propagation kernels: path loss, antenna pattern and terrain diffraction.

Pure numpy functions on arrays, in SI units with the unit in every name, and no knowledge of
GeoDataFrames or files: :mod:`coverage.model` builds the arrays and calls these. By stage:

- :mod:`coverage.radio.pathloss`: the median laws (free space, Okumura-Hata / COST-231)
  and the window of the effective base-station height;
- :mod:`coverage.radio.antenna`: the sector's horizontal and vertical pattern;
- :mod:`coverage.radio.diffraction`: knife edges, Bullington, the smooth earth and
  delta-Bullington over a profile;
- :mod:`coverage.radio.sweep`: profiles along rays and the radial sweep that gives every
  cell of a ray its Bullington parameter at once.

Every public name is importable from :mod:`coverage.radio` itself.
"""

from .antenna import combined_gain_db, sector_gain_db, vertical_gain_db
from .diffraction import (
    bullington_loss_db,
    bullington_loss_from_nu,
    bullington_nu_root_m,
    delta_bullington_excess_db,
    delta_bullington_loss_db,
    knife_edge_loss_db,
    smooth_bullington_loss_db,
    smooth_earth_heights_m,
    spherical_earth_loss_db,
)
from .pathloss import (
    EARTH_RADIUS_M,
    EFFECTIVE_HEIGHT_WINDOW_M,
    SPEED_OF_LIGHT_M_S,
    effective_height_window_m,
    free_space_loss_db,
    hata_environment_offset_db,
    hata_loss_db,
    window_mean_ground_m,
)
from .sweep import RaySweep, ray_sweep_nu_root_m, sample_profiles

__all__ = [
    "EARTH_RADIUS_M",
    "EFFECTIVE_HEIGHT_WINDOW_M",
    "SPEED_OF_LIGHT_M_S",
    "RaySweep",
    "bullington_loss_db",
    "bullington_loss_from_nu",
    "bullington_nu_root_m",
    "combined_gain_db",
    "delta_bullington_excess_db",
    "delta_bullington_loss_db",
    "effective_height_window_m",
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
    "window_mean_ground_m",
]
