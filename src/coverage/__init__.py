"""coverage-gap: villages without usable mobile broadband, and where to build next.

The import name is ``coverage``; do not install coverage.py in the same environment.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from . import io as io
from . import params as params
from .classify import classify_villages
from .errors import CoverageGapError
from .io import read_measurements, read_raster, read_towers, read_villages, write_table
from .model import Grid, predict_coverage
from .params import PROFILES, ModelParams, PlanParams, Profile, get_profile
from .plan import plan_rollout

try:
    __version__ = version("coverage-gap")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "PROFILES",
    "CoverageGapError",
    "Grid",
    "ModelParams",
    "PlanParams",
    "Profile",
    "__version__",
    "classify_villages",
    "get_profile",
    "io",
    "params",
    "plan_rollout",
    "predict_coverage",
    "read_measurements",
    "read_raster",
    "read_towers",
    "read_villages",
    "write_table",
]
