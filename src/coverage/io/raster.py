"""Rasters: population and elevation (GeoTIFF, SRTM ``.hgt``), read and written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.transform import Affine

from ..errors import CRSError, InputError
from ._common import PathLike, check_path, log
from .write import atomic

__all__ = ["Raster", "mosaic", "read_raster", "write_raster"]


@dataclass(frozen=True)
class Raster:
    """A single-band raster in memory.

    Attributes
    ----------
    array : ndarray
        Values, with nodata as NaN: float32 when the file's values are all exact in it
        (float32, 8- and 16-bit integers: a national population raster at 100 m is 0.5 GB
        instead of 1 GB), else float64. Readers compute in float64 from it.
    transform : Affine
        Maps (col, row) to map coordinates of ``crs``.
    crs : pyproj.CRS
        Coordinate reference system.
    """

    array: np.ndarray
    transform: Affine
    crs: CRS

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.array.shape  # type: ignore[return-value]

    @property
    def cell_size_m(self) -> float:
        """Approximate cell size in metres (geographic rasters at their centre latitude)."""
        side = float(np.sqrt(abs(self.transform.a * self.transform.e)))
        if self.crs.is_geographic:
            lat = 0.5 * (self.bounds[1] + self.bounds[3])
            return side * 111_320.0 * float(np.sqrt(np.cos(np.radians(lat))))
        return side * float(self.crs.axis_info[0].unit_conversion_factor)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in ``crs`` units."""
        rows, cols = self.shape
        t = self.transform
        left, top = t.c, t.f
        right, bottom = t.c + cols * t.a + rows * t.b, t.f + cols * t.d + rows * t.e
        return min(left, right), min(bottom, top), max(left, right), max(bottom, top)


def _held_dtype(file_dtype: np.dtype) -> str:
    """float32 for values it holds exactly (float32, 8- and 16-bit integers), else float64."""
    kind = np.dtype(file_dtype)
    exact = kind == np.float32 or (kind.kind in "iu" and kind.itemsize <= 2)
    return "float32" if exact else "float64"


def read_raster(path: PathLike | Sequence[PathLike], *, what: str = "raster",
                assume_crs: str | None = None) -> Raster:
    """Read band 1 of a GeoTIFF or SRTM ``.hgt`` tile (also zipped), nodata as NaN.

    SRTM voids (-32768) are NaN. A ``.hgt`` name must keep SRTM's form (``N21E105.hgt``),
    which is how GDAL knows the tile's place. Several files (DEM tiles side by side) are
    read each so and mosaicked (:func:`mosaic`).

    Raises
    ------
    InputError
        When the file is missing, not a raster, truncated (a block cannot be read), or has
        no CRS and none was assumed.
    """
    if not isinstance(path, str | os.PathLike):
        paths = list(path)
        if len(paths) != 1:
            if not paths:
                raise InputError(f"no {what} file given")
            return mosaic([read_raster(p, what=what, assume_crs=assume_crs) for p in paths],
                          names=[str(p) for p in paths], what=what)
        path = paths[0]
    path = check_path(path, what)
    arr, transform, crs, unit = _read_band(path, what)
    if crs is None:
        if assume_crs is None:
            raise CRSError(f"{what} file {path} has no CRS; state it with --assume-crs (e.g. "
                           "EPSG:4326 for a lon/lat grid)")
        crs = assume_crs
    if path.name.lower().endswith((".hgt", ".hgt.zip")):
        arr[arr <= -32767] = np.nan
    if what.lower() == "population":
        _drop_negative(arr, path)
    if what.lower() == "dem":
        arr = _in_metres(arr, unit, path)
    log.info("%s %s: %d x %d cells, CRS %s", what, path, arr.shape[1], arr.shape[0], crs)
    return Raster(arr, transform, CRS.from_user_input(crs))


def _read_band(path: Path, what: str):
    """Band 1 of a raster file (zipped too), nodata as NaN.

    Returns (array, transform, crs, unit): ``crs`` is None when the file states none,
    ``unit`` is the band's unit (GDAL's unit type, e.g. ``m`` or ``ft``) or None.
    """
    source = str(path)
    if path.suffix.lower() == ".zip" or path.name.lower().endswith(".hgt.zip"):
        source = f"/vsizip/{path}/{path.name[:-4]}" if path.name.lower().endswith(
            ".hgt.zip") else f"/vsizip/{path}"
    try:
        with rasterio.open(source) as src:
            arr = src.read(1, masked=True)
            arr = arr.astype(_held_dtype(arr.dtype)).filled(np.nan)
            return arr, src.transform, src.crs, src.units[0] or None
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{what} file {path} cannot be read as a raster ({exc}); give a "
                         "complete GeoTIFF or SRTM .hgt tile (a truncated file gives this "
                         "error)") from None


#: Band units (GDAL unit types, lower case) of heights in feet, and metres per foot.
_FEET = {"ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "international foot": 0.3048,
         "us survey foot": 1200 / 3937, "ftus": 1200 / 3937, "us-ft": 1200 / 3937}


def _in_metres(arr: np.ndarray, unit: str | None, path: Path) -> np.ndarray:
    """DEM heights in metres: a band whose unit says feet is converted, with a warning."""
    factor = _FEET.get((unit or "").strip().lower())
    if factor is None:
        return arr
    from ._common import warn_repair
    warn_repair(f"DEM file {path}: heights in feet (the band's unit is {unit!r}), converted "
                "to metres")
    return (arr * factor).astype(arr.dtype)


def _drop_negative(arr: np.ndarray, path: Path) -> None:
    """Negative population cells without a nodata value set to NaN in place, with a warning."""
    neg = np.isfinite(arr) & (arr < 0)
    if neg.any():
        from ._common import warn_repair
        warn_repair(f"population file {path}: {int(neg.sum())} negative cell(s) without "
                    "a nodata value read as no data")
        arr[neg] = np.nan


def mosaic(rasters: Sequence[Raster], *, names: Sequence[str] | None = None,
           what: str = "raster") -> Raster:
    """Rasters side by side (DEM tiles) as one, on the first one's grid and CRS.

    :func:`rasterio.merge.merge`: the first raster with data wins where they overlap (SRTM
    tiles share their edge row), cells no raster covers are NaN; a raster on another grid
    is resampled (nearest) onto the first one's.

    Raises
    ------
    CRSError
        When the rasters are in different CRS.
    """
    from contextlib import ExitStack

    from rasterio.io import MemoryFile
    from rasterio.merge import merge

    names = list(names or [f"#{i + 1}" for i in range(len(rasters))])
    first = rasters[0]
    for name, r in zip(names[1:], rasters[1:], strict=True):
        if r.crs != first.crs:
            raise CRSError(f"{what} files {names[0]} and {name} are in different CRS "
                           f"({first.crs.to_string()}, {r.crs.to_string()}); reproject them "
                           "to one (gdalwarp) or give one mosaic")
    with ExitStack() as stack:
        datasets = []
        for r in rasters:
            mem = stack.enter_context(MemoryFile())
            with mem.open(driver="GTiff", width=r.shape[1], height=r.shape[0], count=1,
                          dtype="float64", crs=r.crs.to_wkt(), transform=r.transform,
                          nodata=np.nan) as dst:
                dst.write(r.array, 1)
            datasets.append(stack.enter_context(mem.open()))
        arr, transform = merge(datasets, nodata=np.nan)
    log.info("%s: %d files mosaicked, %d x %d cells", what, len(rasters), arr.shape[2],
             arr.shape[1])
    return Raster(arr[0].astype("float64"), transform, first.crs)


def write_raster(raster: Raster, path: PathLike, *, overwrite: bool = False,
                 band_names: Sequence[str] | None = None):
    """Write a raster (2-D, or 3-D bands-first) as a deflate-compressed GeoTIFF, atomically."""
    from pathlib import Path

    arr = raster.array if raster.array.ndim == 3 else raster.array[None]
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1],
               "count": arr.shape[0], "dtype": "float32", "crs": raster.crs.to_wkt(),
               "transform": raster.transform, "nodata": np.nan, "compress": "deflate"}
    with atomic(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr.astype("float32"))
        for i, name in enumerate(band_names or [], start=1):
            dst.set_band_description(i, name)
    return Path(path)
