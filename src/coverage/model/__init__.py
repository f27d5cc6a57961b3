"""Coverage surfaces: received power from every site on a metric grid, fused with measurements.

The package keeps the public names of the former ``coverage.model`` module:

- :mod:`.grid`: :class:`Grid`, :class:`CoverageSurfaces`, :func:`to_grid`, :func:`sample_points`;
- :mod:`.predict`: :func:`predict_coverage` (radial-sweep Hata + Bullington model); its
  stages, in the order they run: :mod:`.transmitters` (:func:`prepare_transmitters`, the
  link budgets and reach radii), :mod:`.terrain` (the DEM on the terrain grid),
  :mod:`.sweep` (the sweep units and their rays), :mod:`.unit_terms` (a unit's cells and
  their terrain-free terms) and :mod:`.levels` (the levels from the swept rays);
- :mod:`.fuse`: :func:`fuse_measurements` (calibration, residual kriging, measured cells),
  :func:`aggregate_measurements`, :func:`cross_validate`; its stages, in the order they run:
  :mod:`.observations` (the tests on the grid), :mod:`.calibration`, :mod:`.kriging`,
  :mod:`.crossval` (each stage chosen on held-out tests) and :mod:`.measured`;
- :mod:`.cells`: :class:`GridCells`, :func:`surfaces_at`: the surfaces at a set of cells
  (a country's villages and tests) without whole-grid copies;
- :mod:`.clutter`: :func:`clutter_map` (Hata environment per cell by the Degree of
  Urbanisation, foliage from land cover), :class:`Clutter`;
- :mod:`.tiles`: :func:`predict_coverage_tiled`, the model tile by tile through an engine;
- :mod:`.reference`: :func:`predict_reference`, the same physics one cell at a time;
- :mod:`.variants`: several readings of the model (Hata height, diffraction, foliage) from
  one sweep, for the structure's cross-validation;
- :mod:`.itm_grid`: the Irregular Terrain Model over the radial sweep (``path_loss = "itm"``).
"""

from __future__ import annotations

from .cells import GridCells, surfaces_at
from .clutter import Clutter, clutter_map, degree_of_urbanisation
from .fuse import aggregate_measurements, cross_validate, fuse_measurements, measurement_xy
from .grid import CoverageSurfaces, Grid, points_xy, sample_points, to_grid
from .predict import predict_coverage
from .reference import predict_reference
from .tiles import predict_coverage_tiled, tile_windows
from .transmitters import FLOOR_DBM, prepare_transmitters, useful_radius_m

__all__ = [
    "FLOOR_DBM",
    "Clutter",
    "CoverageSurfaces",
    "Grid",
    "GridCells",
    "aggregate_measurements",
    "clutter_map",
    "cross_validate",
    "degree_of_urbanisation",
    "fuse_measurements",
    "measurement_xy",
    "points_xy",
    "predict_coverage",
    "predict_coverage_tiled",
    "predict_reference",
    "prepare_transmitters",
    "sample_points",
    "surfaces_at",
    "tile_windows",
    "to_grid",
    "useful_radius_m",
]
