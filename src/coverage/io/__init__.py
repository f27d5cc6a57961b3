"""Reading the contract's inputs and writing its outputs.

Readers return GeoDataFrames (vector inputs) or :class:`Raster` objects, with the contract's
column names and types: ids as text, names NFC-normalised with an accent-folded key,
technologies as ``2G``..``5G``. Problems that can be repaired are repaired and reported with a
:class:`~coverage.errors.RepairWarning`; problems that cannot are raised as
:class:`~coverage.errors.InputError` subclasses naming the file, the rows and the fix. Writers
are atomic: a temporary file beside the target, then ``os.replace``.

Modules: ``vector`` (any format, any CRS, legacy encodings), ``villages``, ``towers``
(OpenCelliD grouping), ``measurements`` (point tests, Ookla tiles; ``_rows`` screens
their unusable rows), ``tables`` (access,
fibre, candidates, roads, column mapping), ``claims`` (operators' coverage maps),
``raster``, ``write``, ``encodings``.
"""

from __future__ import annotations

from ._common import (
    MAPPABLE,
    OPENCELLID_COLUMNS,
    SITE_COLUMNS,
    VN_OPERATORS,
    check_place,
    fold_name,
    metric_crs,
    normalize_tech,
    utm_crs,
)
from ._rows import MeasurementReport
from .claims import CoverageMaps, claimed_cells, read_coverage_maps
from .compact import (
    aggregate_measurement_chunks,
    compact_measurements,
    measurement_sums,
    points_xy,
)
from .measurements import MEASUREMENT_LIMITS, read_measurements
from .raster import Raster, mosaic, read_raster, write_raster
from .stream import iter_measurement_columns, iter_measurements
from .tables import column_mapping, read_access, read_candidates, read_fibre, read_roads
from .towers import read_towers
from .vector import read_vector, sniff_format
from .villages import read_villages
from .write import atomic, check_distinct, check_writable, write_table

_atomic = atomic  # the name before the split into a package

__all__ = [
    "MAPPABLE",
    "MEASUREMENT_LIMITS",
    "OPENCELLID_COLUMNS",
    "SITE_COLUMNS",
    "VN_OPERATORS",
    "CoverageMaps",
    "MeasurementReport",
    "Raster",
    "aggregate_measurement_chunks",
    "atomic",
    "check_distinct",
    "check_place",
    "check_writable",
    "claimed_cells",
    "column_mapping",
    "compact_measurements",
    "fold_name",
    "iter_measurement_columns",
    "iter_measurements",
    "measurement_sums",
    "metric_crs",
    "mosaic",
    "normalize_tech",
    "points_xy",
    "read_access",
    "read_candidates",
    "read_coverage_maps",
    "read_fibre",
    "read_measurements",
    "read_raster",
    "read_roads",
    "read_towers",
    "read_vector",
    "read_villages",
    "sniff_format",
    "utm_crs",
    "write_raster",
    "write_table",
]
