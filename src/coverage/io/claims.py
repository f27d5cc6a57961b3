"""Operators' coverage maps: the coverage each operator claims, as polygons or dBm rasters.

A map is an operator's claim, not a measurement: :mod:`coverage.classify.claims` compares
it with the classification and the tests, and never lets it decide a class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from rasterio.transform import Affine

from ..errors import InputError, SchemaError
from ._common import PathLike, apply_columns, missing_columns_error, normalize_tech, rows_text
from .raster import Raster, read_raster
from .towers import site_operators
from .vector import read_vector

__all__ = ["CoverageMaps", "claimed_cells", "read_coverage_maps"]

_RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class CoverageMaps:
    """Operators' claimed coverage.

    Attributes
    ----------
    polygons : GeoDataFrame
        ``operator`` (named as :func:`coverage.io.read_towers` names operators), ``tech``
        (``2G``..``5G``) and the claimed area, in EPSG:4326; no row when none was given.
    rasters : tuple of (str, str, Raster)
        Operator, technology and the received power it claims (dBm, any CRS).
    paths : tuple of Path
        The files read, in order.
    """

    polygons: gpd.GeoDataFrame
    rasters: tuple[tuple[str, str, Raster], ...]
    paths: tuple[Path, ...]

    @property
    def operators(self) -> list[str]:
        """The operators with a map, sorted."""
        return sorted(set(self.polygons["operator"]) | {op for op, _, _ in self.rasters})


def read_coverage_maps(paths: PathLike | Sequence[PathLike], *,
                       columns: Mapping[str, str] | None = None,
                       assume_crs: str | None = None) -> CoverageMaps:
    """Read operators' coverage maps: vector files of polygons, or GeoTIFFs of dBm.

    A vector file (any format and CRS :func:`coverage.io.read_vector` reads) needs the
    columns ``operator`` (a name or an MNC, as in a site table) and ``tech`` (``2G``..``5G``
    or ``GSM``, ``UMTS``, ``LTE``, ``NR``). A GeoTIFF holds received power in dBm; its
    operator and technology are its file name, ``<operator>_<tech>.tif``
    (``Viettel_4G.tif``). ``columns`` maps ``operator`` and ``tech`` to the vector files'
    own columns (``{"operator": "NHA_MANG"}``: ``--col coverage.operator=NHA_MANG``, the
    config's ``[columns.coverage]``).

    Raises
    ------
    InputError
        A raster whose name does not say its operator and technology.
    SchemaError
        A vector file without ``operator`` or ``tech``, or with an unknown technology.
    """
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    frames, rasters = [], []
    for path in map(Path, paths):
        if path.suffix.lower() in _RASTER_SUFFIXES:
            operator, tech = _raster_name(path)
            rasters.append((operator, tech, read_raster(path, what="coverage raster",
                                                        assume_crs=assume_crs)))
        else:
            frames.append(_read_polygons(path, assume_crs, columns))
    polygons = (pd.concat(frames, ignore_index=True) if frames
                else gpd.GeoDataFrame({"operator": pd.Series(dtype=object),
                                       "tech": pd.Series(dtype=object)},
                                      geometry=gpd.GeoSeries([], crs=4326), crs=4326))
    return CoverageMaps(gpd.GeoDataFrame(polygons, geometry="geometry", crs=4326),
                        tuple(rasters), tuple(map(Path, paths)))


def _raster_name(path: Path) -> tuple[str, str]:
    """Operator and technology of a coverage raster, from its name ``<operator>_<tech>``."""
    operator, _, tech = path.stem.rpartition("_")
    normal = normalize_tech([tech])[0] if operator else None
    if normal is None or normal == "none":
        raise InputError(
            f"coverage raster {path}: its name must say whose map it is and of which "
            f"technology, as <operator>_<tech>.tif (e.g. Viettel_4G.tif, 452-04_LTE.tif); "
            f"rename the file")
    name = site_operators(pd.Series([operator]), path, what="coverage raster").iloc[0]
    return name, normal


def _read_polygons(path: Path, assume_crs: str | None,
                   columns: Mapping[str, str] | None = None) -> gpd.GeoDataFrame:
    """One vector file of claimed coverage, as ``operator``, ``tech``, geometry (EPSG:4326)."""
    gdf = apply_columns(read_vector(path, what="coverage", assume_crs=assume_crs), columns,
                        what="coverage", path=path)
    missing = [c for c in ("operator", "tech") if c not in gdf.columns]
    if missing:
        raise missing_columns_error(
            gdf, missing, what="coverage", path=path,
            hint="A coverage map needs operator (name or MNC) and tech (2G, 3G, 4G, 5G) "
                 "on each polygon; map the file's columns with --col coverage.operator="
                 "COLUMN (and coverage.tech=COLUMN), or give a raster of dBm named "
                 "<operator>_<tech>.tif")
    tech = normalize_tech(gdf["tech"])
    bad = [i for i, t in enumerate(tech) if t is None or t == "none"]
    if bad:
        raise SchemaError(
            f"coverage file {path}: unknown tech in {rows_text(bad)} (0-based; values "
            f"{sorted(set(map(str, gdf['tech'].iloc[bad])))[:5]}); use 2G, 3G, 4G, 5G or "
            "GSM, UMTS, LTE, NR")
    keep = gdf.geometry.notna().to_numpy() & ~gdf.geometry.is_empty.to_numpy()
    out = gpd.GeoDataFrame({"operator": site_operators(gdf["operator"], path,
                                                          what="coverage").to_numpy(),
                            "tech": np.asarray(tech, dtype=object)},
                           geometry=gdf.geometry.to_numpy(), crs=gdf.crs)
    return out[keep].to_crs(4326).reset_index(drop=True)


def claimed_cells(raster: Raster, threshold_dbm: float, *, transform: Affine,
                  shape: tuple[int, int], crs: CRS | str) -> np.ndarray:
    """Cells of a grid whose level in a dBm raster is at least ``threshold_dbm`` (uint8).

    What resampling the raster onto the grid by nearest cell and comparing there gives,
    in one byte a cell: the raster is compared with the threshold first, at its own
    cells, and the claimed mask (0/1) is resampled by nearest cell. Nearest resampling
    picks one source cell per grid cell, so the order does not change a cell. The
    comparison is made in float64 (NumPy's buffered casting, no copy): a float32 level
    and the threshold compare as numbers, not as their float32 roundings. Memory beyond
    the raster is one byte a raster cell and one byte a grid cell: no float64 copy of
    either (a national 100 m grid holds 130 million cells).

    Parameters
    ----------
    raster : Raster
        Received power, dBm (any CRS); nodata (NaN) claims nothing.
    threshold_dbm : float
        The level from which a cell is claimed, dBm.
    transform, shape, crs
        The grid: its affine transform, (rows, cols) and CRS (a metric one, usually).

    Returns
    -------
    ndarray of uint8
        1 on claimed cells, 0 elsewhere (outside the raster included), of ``shape``.
    """
    from rasterio.warp import Resampling, reproject

    with np.errstate(invalid="ignore"):  # NaN (nodata): not claimed
        mask = np.greater_equal(raster.array, np.float64(threshold_dbm)).view("uint8")
    out = np.zeros(shape, dtype="uint8")
    reproject(mask, out, src_transform=raster.transform, src_crs=raster.crs,
              dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest,
              src_nodata=None, dst_nodata=None)
    return out
