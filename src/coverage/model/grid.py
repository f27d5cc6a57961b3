"""The model's grid, raster resampling onto it, and the coverage surfaces it carries."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from rasterio.transform import Affine, from_origin
from rasterio.warp import Resampling, reproject

from ..io import Raster, points_xy, write_raster
from ..params import ModelParams

__all__ = ["CoverageSurfaces", "Grid", "points_xy", "sample_points", "to_grid"]


@dataclass(frozen=True)
class Grid:
    """A north-up grid of square cells in a metric CRS.

    Attributes
    ----------
    transform : Affine
        Cell (col, row) to map coordinates; ``transform.a`` is the cell size in metres.
    shape : tuple of int
        (rows, cols).
    crs : pyproj.CRS
        The metric CRS.
    """

    transform: Affine
    shape: tuple[int, int]
    crs: CRS

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], resolution_m: float,
                 crs: CRS, *, pad_m: float = 0.0) -> Grid:
        """Grid covering ``bounds`` (left, bottom, right, top, in ``crs``) plus a margin."""
        left, bottom, right, top = bounds
        left = np.floor((left - pad_m) / resolution_m) * resolution_m
        top = np.ceil((top + pad_m) / resolution_m) * resolution_m
        cols = int(np.ceil((right + pad_m - left) / resolution_m))
        rows = int(np.ceil((top - bottom + pad_m) / resolution_m))
        return cls(from_origin(left, top, resolution_m, resolution_m), (rows, cols),
                   CRS.from_user_input(crs))

    @property
    def resolution_m(self) -> float:
        """Cell size in metres."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        return left, top - rows * self.resolution_m, left + cols * self.resolution_m, top

    def centres(self, rows: slice = slice(None), cols: slice = slice(None)
                ) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (x, y) of cell centres of a window, as 2-D arrays."""
        r = np.arange(self.shape[0])[rows] + 0.5
        c = np.arange(self.shape[1])[cols] + 0.5
        x = self.transform.c + c * self.transform.a
        y = self.transform.f + r * self.transform.e
        return np.meshgrid(x, y)

    def index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of map points."""
        col = np.floor((np.asarray(x) - self.transform.c) / self.transform.a).astype(int)
        row = np.floor((np.asarray(y) - self.transform.f) / self.transform.e).astype(int)
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        return row, col, inside


def to_grid(raster: Raster, grid: Grid, *, resampling: str = "bilinear") -> np.ndarray:
    """Reproject a raster onto ``grid`` (``"sum"`` keeps totals, for population)."""
    out = np.full(grid.shape, np.nan, dtype="float64")
    src = raster.array.astype("float64")
    if resampling == "sum":
        # Sum-preserving: spread each source cell's count over the target cells by area.
        src_area = abs(raster.transform.a * raster.transform.e)
        density = np.where(np.isnan(src), 0.0, src) / src_area
        reproject(density, out, src_transform=raster.transform, src_crs=raster.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs,
                  resampling=Resampling.average, src_nodata=np.nan, dst_nodata=np.nan)
        # Densities per square map unit of each CRS: convert with the local scale factor.
        out = np.nan_to_num(out) * _cell_area_in_src_units(raster, grid)
        return out
    reproject(src, out, src_transform=raster.transform, src_crs=raster.crs,
              dst_transform=grid.transform, dst_crs=grid.crs,
              resampling=Resampling[resampling], src_nodata=np.nan, dst_nodata=np.nan)
    return out


def _cell_area_in_src_units(raster: Raster, grid: Grid) -> np.ndarray | float:
    """Area of each grid cell measured in the source raster's CRS units (for densities)."""
    if raster.crs.equals(grid.crs):
        return grid.resolution_m**2
    from pyproj import Transformer

    x, y = grid.centres()
    h = grid.resolution_m / 2
    t = Transformer.from_crs(grid.crs, raster.crs, always_xy=True)
    x0, y0 = t.transform(x - h, y - h)
    x1, y1 = t.transform(x + h, y + h)
    return np.abs((x1 - x0) * (y1 - y0))


@dataclass
class CoverageSurfaces:
    """Best received level per (operator, technology) on a grid, dBm (NaN = none).

    Attributes
    ----------
    grid : Grid
        The grid of every layer.
    layers : dict
        ``(operator, tech) -> float32 array`` of shape ``grid.shape``.
    dem : ndarray or None
        Ground elevation on the grid (metres, float32), when a DEM was given.
    distance_m : dict
        ``(operator, tech) -> float32 array``: distance from each cell to the transmitter
        that gives the layer's best level, metres (what calibration's slope multiplies).
        Or held at the cells a classification reads
        (:func:`coverage.model.calibration.hold_distances`).
    measured : dict
        Measurements aggregated to the grid by
        :func:`coverage.model.aggregate_measurements` (``tests``, ``download_mbps``,
        ``upload_mbps``, ``latency_ms``, ``no_service_share``), once fused.
    calibration : dict
        ``(operator, tech) -> (intercept_db, slope_db_per_decade, n_points)`` applied by
        :func:`coverage.model.fuse_measurements`.
    params : ModelParams or None
        The parameters of the prediction; fusion follows their ``calibrate`` and ``krige``
        switches unless given others.
    estimated_margin : dict
        ``name -> float32 array``: margins (dB) of the calibrated and kriged layers over
        named thresholds, before the measured cells took over
        (``fuse_measurements(..., estimate_margins=)``): the model's estimate, in which a
        few tests weigh as evidence rather than override it.
    choices : dict
        What the fusion chose from the tests, by name (``fusion``: the
        :class:`coverage.model.crossval.FusionChoice` as plain values), for the run's log and
        manifest.
    kriged_at_tests : dict
        ``(operator, tech) -> (cells, shift_db)``: the kriging's correction (dB, float32) at
        the flat cells of the whole grid that hold tests (sorted int64), per kriged layer,
        once fused (:func:`coverage.model.fuse_measurements`); the classification measures
        the model's error at the tests against the estimate it moves (the calibrated and
        kriged layers), so that a test is not counted twice.
    """

    grid: Grid
    layers: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    dem: np.ndarray | None = None
    distance_m: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    measured: dict[str, np.ndarray] = field(default_factory=dict)
    calibration: dict[tuple[str, str], Any] = field(default_factory=dict)
    params: ModelParams | None = None
    estimated_margin: dict[str, np.ndarray] = field(default_factory=dict)
    choices: dict[str, object] = field(default_factory=dict)
    kriged_at_tests: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict)

    def layer_arrays(self, key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
        """The level (dBm) and distance (m) arrays of a layer, made empty (NaN) if new.

        The whole-grid arrays are allocated once per layer (a ``setdefault`` with a fresh
        default would fill one per call: 0.5 GB each on a national 100 m grid).
        """
        if key not in self.layers:
            self.layers[key] = np.full(self.grid.shape, np.nan, dtype="float32")
        if key not in self.distance_m:
            self.distance_m[key] = np.full(self.grid.shape, np.nan, dtype="float32")
        return self.layers[key], self.distance_m[key]

    def best(self, *, techs: tuple[str, ...] | None = None, operator: str | None = None
             ) -> np.ndarray:
        """Best level over the layers of some technologies and/or one operator."""
        out = np.full(self.grid.shape, np.nan, dtype="float32")
        for (op, tech), arr in self.layers.items():
            if (techs is None or tech in techs) and (operator is None or op == operator):
                out = np.fmax(out, arr)
        return out

    def margin(self, thresholds_dbm: dict[str, float], *, operator: str | None = None
               ) -> np.ndarray:
        """Best margin over per-technology thresholds (dB; >= 0 means covered)."""
        out = np.full(self.grid.shape, -np.inf, dtype="float32")
        for (op, tech), arr in self.layers.items():
            if tech in thresholds_dbm and (operator is None or op == operator):
                np.fmax(out, arr - np.float32(thresholds_dbm[tech]), out=out)  # NaN: ignored
        return out

    @property
    def operators(self) -> list[str]:
        """Operators with at least one layer."""
        return sorted({op for op, _ in self.layers})

    def copy(self) -> CoverageSurfaces:
        """A copy whose layers can be changed without touching this one."""
        # distances held at cells (coverage.model.cells.HeldLayers) are read-only: shared
        held = getattr(self.distance_m, "trends", None) is not None
        return CoverageSurfaces(self.grid, {k: v.copy() for k, v in self.layers.items()},
                                self.dem, self.distance_m if held else
                                {k: v.copy() for k, v in self.distance_m.items()},
                                {k: v.copy() for k, v in self.measured.items()},
                                dict(self.calibration), self.params,
                                {k: v.copy() for k, v in self.estimated_margin.items()},
                                dict(self.choices), dict(self.kriged_at_tests))

    def to_geotiff(self, path: str | os.PathLike[str], *, overwrite: bool = False,
                   measured: bool = True) -> os.PathLike[str]:
        """Write every layer as one band of a GeoTIFF (float32 dBm, NaN nodata).

        Bands, named in their descriptions: ``best_broadband_dbm``, then
        ``{operator}:{tech}_dbm`` for each layer, then (with ``measured``) the aggregated
        measurement grids ``measured:{name}``. The grid's CRS and transform are kept.
        """
        from ..params import BROADBAND_TECHS

        names = ["best_broadband_dbm"]
        bands = [self.best(techs=BROADBAND_TECHS)]
        for (op, tech), arr in sorted(self.layers.items()):
            names.append(f"{op}:{tech}_dbm")
            bands.append(arr)
        if measured:
            for name, arr in sorted(self.measured.items()):
                names.append(f"measured:{name}")
                bands.append(arr)
        raster = Raster(np.stack(bands).astype("float32"), self.grid.transform, self.grid.crs)
        return write_raster(raster, path, overwrite=overwrite, band_names=names)




def sample_points(array: np.ndarray, grid: Grid, geoms: gpd.GeoSeries) -> np.ndarray:
    """Values of a grid array at points (NaN outside the grid)."""
    pts = geoms.to_crs(grid.crs)
    xy = shapely.get_coordinates(pts.to_numpy())
    row, col, inside = grid.index(xy[:, 0], xy[:, 1])
    out = np.full(len(xy), np.nan)
    out[inside] = array[row[inside], col[inside]]
    return out
