"""Reading every input of a run, once, the same way for every command and the API.

:func:`load_inputs` is the one loader: ``covgap classify``, ``plan``, ``run``, ``demo``,
``validate`` and :class:`coverage.scenario.Scenario` all read their files through it. With
a :class:`coverage.validate.ValidationReport` it collects each input's refusal or repairs
and goes on to the next input instead of stopping at the first problem.
:func:`analysis_grid` and :func:`select_towers` prepare what the model needs from them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import io
from .errors import CoverageGapError, CoverageGapWarning, InputError, RepairWarning
from .model import Grid
from .params import ModelParams

if TYPE_CHECKING:
    from .validate import ValidationReport

__all__ = ["Inputs", "analysis_grid", "empty_towers", "input_label", "load_inputs",
           "select_towers", "warn_tests_elsewhere", "warn_unknown_access",
           "warn_unknown_landcover"]

PathLike = str | os.PathLike[str]


@dataclass
class Inputs:
    """Everything read for a run; absent inputs are None."""

    villages: gpd.GeoDataFrame
    towers: gpd.GeoDataFrame
    measurements: gpd.GeoDataFrame | None = None
    population: io.Raster | None = None
    dem: io.Raster | None = None
    access: pd.DataFrame | None = None
    fibre: gpd.GeoDataFrame | None = None
    roads: Any = None
    candidates: gpd.GeoDataFrame | None = None
    landcover: io.Raster | None = None
    coverage: io.CoverageMaps | None = None


def input_label(kind: str, path: Any) -> str:
    """How a report names an input: its kind and its file(s)."""
    if path is None or (isinstance(path, Sequence) and not isinstance(path, str | bytes)
                        and len(path) == 0):
        return kind
    if isinstance(path, str | os.PathLike):
        return f"{kind} {path}"
    return f"{kind} {', '.join(str(p) for p in path)}"


def _collect(report: ValidationReport | None, label: str, read: Callable[[], Any]) -> Any:
    """``read()``; with a report, its refusal and repairs become findings (and None)."""
    if report is None:
        return read()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CoverageGapWarning)
        try:
            value = read()
        except CoverageGapError as exc:
            report.add("error", label, str(exc))
            value = None
    for w in caught:
        if issubclass(w.category, CoverageGapWarning):
            report.add("warning", label, str(w.message))
        else:  # third-party warnings still go out, unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return value


def _one_or_tiles(path: PathLike | Sequence[PathLike]) -> Any:
    """One raster path, or a list of tiles to mosaic."""
    if isinstance(path, str | os.PathLike):
        return path
    paths = list(path)
    return paths if len(paths) > 1 else paths[0]


def load_inputs(  # noqa: PLR0913 (one keyword per input kind, as the CLI options)
    villages: PathLike,
    *,
    towers: Sequence[PathLike] = (),
    measurements: Sequence[PathLike] = (),
    population: PathLike | None = None,
    dem: PathLike | Sequence[PathLike] | None = None,
    access: PathLike | None = None,
    fibre: PathLike | None = None,
    roads: PathLike | None = None,
    candidates: PathLike | None = None,
    landcover: PathLike | None = None,
    coverage: Sequence[PathLike] = (),
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    columns: Mapping[str, Mapping[str, str]] | None = None,
    assume_crs: str | None = None,
    report: ValidationReport | None = None,
) -> Inputs:
    """Read every input of a run (see :mod:`coverage.io` for each format).

    ``dem`` may name several files (DEM tiles side by side): they are mosaicked
    (:func:`coverage.io.mosaic`). ``coverage`` names operators' coverage maps
    (:func:`coverage.io.read_coverage_maps`), refused when none overlaps the villages.
    ``columns`` maps contract names to the files' columns by input kind, as
    :func:`coverage.io.column_mapping` returns.

    With ``report``, nothing is raised: each input's refusal is an error finding and its
    repairs warning findings of the report, and the unreadable input is None in the result
    (villages included, and towers then None too when unreadable).
    """
    columns = columns or {}
    crs = assume_crs

    def read(kind: str, path: Any, reader: Callable[[], Any]) -> Any:
        if not path:
            return None
        return _collect(report, input_label(kind, path), reader)

    got_villages = _collect(report, input_label("villages", villages), lambda: io.read_villages(
        villages, id_col=id_col, name_col=name_col, pop_col=pop_col,
        columns=columns.get("villages"), assume_crs=crs))
    got_towers = (read("towers", towers, lambda: io.read_towers(
        list(towers), columns=columns.get("towers"), assume_crs=crs))
        if towers else empty_towers())
    # a test names its operator: one no tower has is reported with the file's other values
    operators = (set(got_towers["operator"].dropna().astype(str))
                 if got_towers is not None and len(got_towers) else None)
    got = Inputs(
        villages=got_villages,
        towers=got_towers,
        measurements=read("measurements", measurements, lambda: io.read_measurements(
            list(measurements), columns=columns.get("measurements"), assume_crs=crs,
            operators=operators)),
        population=read("population", population, lambda: io.read_raster(
            population, what="population", assume_crs=crs)),
        dem=read("DEM", dem, lambda: io.read_raster(
            _one_or_tiles(dem), what="DEM", assume_crs=crs)),
        landcover=read("land cover", landcover, lambda: io.read_raster(
            landcover, what="land cover", assume_crs=crs)),
        access=read("access", access, lambda: io.read_access(
            access, columns=columns.get("access"))),
        fibre=read("fibre", fibre, lambda: io.read_fibre(fibre, assume_crs=crs)),
        roads=read("roads", roads, lambda: io.read_roads(roads)),
        candidates=read("candidates", candidates, lambda: io.read_candidates(
            candidates, columns=columns.get("candidates"), assume_crs=crs)),
        coverage=read("coverage", coverage, lambda: io.read_coverage_maps(
            list(coverage), columns=columns.get("coverage"), assume_crs=crs)),
    )
    if got.measurements is not None and got.measurements.empty:
        got.measurements = None  # files of a header only (the reader said so): no tests
    # a DEM that misses the villages is not refused: the model names the SRTM tiles to
    # fetch and runs on flat ground there (coverage.model.terrain.terrain_grid)
    for attr, what, path in (("population", "population", population),
                             ("landcover", "land cover", landcover)):
        raster = getattr(got, attr)
        if raster is not None and got.villages is not None:
            setattr(got, attr, _collect(report, input_label(what, path),
                                        lambda r=raster, a=attr, w=what, p=path:
                                        raster_over_villages(r, got.villages, what=w,
                                                             option=a, path=p)))
    if got.coverage is not None and got.villages is not None:
        got.coverage = _collect(report, input_label("coverage", coverage),
                                lambda: maps_over_villages(got.coverage, got.villages))
    if got.access is not None and got.villages is not None:
        _collect(report, input_label("access", access),
                 lambda: warn_unknown_access(got.access, got.villages, path=access))
    if got.measurements is not None and got.villages is not None:
        _collect(report, input_label("measurements", measurements),
                 lambda: warn_tests_elsewhere(got.measurements, got.villages,
                                              path=measurements))
    return got


def warn_tests_elsewhere(tests: gpd.GeoDataFrame, villages: gpd.GeoDataFrame, *,
                         path: Any) -> None:
    """Warn when no test lies within the villages' extent: they can say nothing of them.

    Tests of another province, or read with swapped or projected coordinates that still
    land on Earth, would be kept and silently unused. A box test (cheap for millions of
    rows); ``covgap validate`` also counts the tests inside a village.
    """
    if tests.empty:
        return
    x0, y0, x1, y1 = villages.to_crs(4326).total_bounds
    xy = shapely.get_coordinates(tests.geometry.to_numpy())
    inside = ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    if inside.any():
        return
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    warnings.warn(
        f"{input_label('measurements', path)}: none of the {len(tests)} test(s) lies within "
        f"the villages' extent (tests {np.round([*lo, *hi], 3).tolist()}, villages "
        f"{np.round([x0, y0, x1, y1], 3).tolist()}, lon/lat): they say nothing of these "
        "villages. Are they of another area, or are their coordinates swapped?",
        RepairWarning, stacklevel=2)


def warn_unknown_access(access: pd.DataFrame, villages: gpd.GeoDataFrame, *,
                        path: Any) -> None:
    """Warn of access rows whose ``village_id`` names no village: they set no constraint.

    The usual cause is a spreadsheet that read the ids as numbers and dropped their leading
    zeros ("0101001" became "101001"); the warning says so when that explains the ids.
    """
    ids = pd.Index(villages["village_id"].astype(str))
    unknown = access.index.difference(ids)
    if unknown.empty:
        return
    stripped = set(ids.str.lstrip("0")) - set(ids)
    zeros = sum(u.lstrip("0") in stripped for u in unknown)
    why = (f"; {zeros} of them are village ids without their leading zeros (a spreadsheet "
           "read them as numbers): format the id column as text and restore them"
           if zeros else ": is it the table of these villages, and the right id column "
           "(--col access.village_id=COLUMN)?")
    warnings.warn(
        f"{input_label('access', path)}: {len(unknown)} of {len(access)} row(s) name no "
        f"village and are ignored ({', '.join(map(repr, unknown[:5]))}"
        f"{' ...' if len(unknown) > 5 else ''}){why}", RepairWarning, stacklevel=2)


def maps_over_villages(maps: io.CoverageMaps, villages: gpd.GeoDataFrame) -> io.CoverageMaps:
    """The coverage maps, refused when none of them reaches the villages' extent.

    Maps of another province (or read in a wrong CRS) would claim nothing anywhere and
    say so silently through ``pop_claimed_share`` = 0.

    Raises
    ------
    InputError
        When no polygon and no raster overlaps the villages' bounds.
    """
    vb = np.asarray(villages.to_crs(4326).total_bounds)
    boxes = [np.asarray(maps.polygons.total_bounds)] if len(maps.polygons) else []
    for _, _, raster in maps.rasters:
        left, bottom, right, top = raster.bounds
        boxes.append(np.asarray(gpd.GeoSeries([shapely.box(left, bottom, right, top)],
                                              crs=raster.crs).to_crs(4326).total_bounds))
    if not any(b[0] <= vb[2] and b[2] >= vb[0] and b[1] <= vb[3] and b[3] >= vb[1]
               for b in boxes):
        extent = np.round(np.asarray(boxes), 4).tolist() if boxes else "nothing"
        raise InputError(
            f"{input_label('coverage', [str(p) for p in maps.paths])} does not overlap the "
            f"villages: maps' bounds {extent}, villages {np.round(vb, 4).tolist()} (both in "
            f"EPSG:4326). Are they the maps of another area, or is their CRS wrong (see "
            f"--assume-crs)? Give maps that cover the villages, or leave --coverage out")
    return maps


def raster_over_villages(raster: io.Raster, villages: gpd.GeoDataFrame, *, what: str,
                         option: str, path: Any) -> io.Raster:
    """The raster, refused when it holds no data or lies wholly away from the villages.

    A population or land-cover raster of another area (or read in a wrong CRS) would leave
    every village on no data: counted by area, or without clutter, with nothing to say why.
    A DEM is not checked here: where it misses the villages the run names the SRTM tiles to
    fetch and goes on over flat ground there, as for a DEM that covers part of them.

    Raises
    ------
    InputError
        When every cell is nodata, or the raster does not overlap the villages' extent.
    """
    name = input_label(what, path)
    if not np.isfinite(raster.array).any():
        raise InputError(f"{name}: every cell is nodata ({raster.shape[1]} x "
                         f"{raster.shape[0]} cells); is it the right file, and is its nodata "
                         f"value right? Give a raster with data, or leave --{option} out")
    vb = np.asarray(villages.to_crs(raster.crs).total_bounds)
    rb = np.asarray(raster.bounds)
    if vb[0] > rb[2] or vb[2] < rb[0] or vb[1] > rb[3] or vb[3] < rb[1]:
        raise InputError(
            f"{name} does not overlap the villages: raster bounds {np.round(rb, 4).tolist()}, "
            f"villages {np.round(vb, 4).tolist()} (both in {raster.crs.to_string()}). Is it "
            f"the raster of another area (another tile), or is its CRS wrong? Give one that "
            f"covers the villages, or leave --{option} out")
    return raster


def warn_unknown_landcover(raster: io.Raster, params: ModelParams, *, path: Any) -> None:
    """Warn when no cell of the land cover holds a class the model reads.

    The model reads the codes of ``params.tree_classes`` and ``built_up_classes`` (ESA
    WorldCover's by default). A raster of another scheme (CORINE, MODIS, a national map)
    holds none of them and would leave every cell without trees and without buildings, as
    if no land cover had been given.
    """
    known = [*params.tree_classes, *params.built_up_classes]
    if np.isin(raster.array, known).any():  # NaN (nodata) is no class
        return
    codes, counts = np.unique(raster.array[np.isfinite(raster.array)], return_counts=True)
    if codes.size == 0:
        return
    seen = ", ".join(f"{c:g}" for c in codes[np.argsort(-counts)][:8])
    warnings.warn(
        f"{input_label('land cover', path)} holds none of the classes the model reads (tree "
        f"canopy {list(params.tree_classes)}, built-up {list(params.built_up_classes)}, ESA "
        f"WorldCover's codes by default); its most frequent values are {seen}"
        f"{' ...' if len(codes) > 8 else ''}: it adds no foliage loss and no built-up land. "
        "Give an ESA WorldCover raster, or set [model] tree_classes and built_up_classes to "
        "its scheme's codes", RepairWarning, stacklevel=2)


def empty_towers() -> gpd.GeoDataFrame:
    """A towers table with the reader's columns and no row (a run without towers)."""
    cols = ["site_id", "operator", "tech", "height_m", "azimuth_deg", "beamwidth_deg",
            "eirp_dbm", "freq_mhz", "status", "backhaul", "source"]
    return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in cols},
                            geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def analysis_grid(villages: gpd.GeoDataFrame, params: ModelParams) -> Grid:
    """The model grid over the villages, in their UTM CRS, with a 2 km margin."""
    crs = io.metric_crs(villages)
    bounds = tuple(villages.to_crs(crs).total_bounds)
    return Grid.covering(bounds, params.resolution_m, crs, pad_m=2000.0)


def far_towers(towers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
               max_range_km: float) -> np.ndarray:
    """True for each tower farther than ``max_range_km`` from every village.

    A tree query of the villages' polygons, not a union of 100,000 polygons.
    """
    if towers.empty:
        return np.zeros(0, dtype=bool)
    crs = io.metric_crs(villages)
    tree = shapely.STRtree(villages.to_crs(crs).geometry.to_numpy())
    near = tree.query_nearest(towers.geometry.to_crs(crs).to_numpy(),
                              max_distance=max_range_km * 1000.0, all_matches=False)
    far = np.ones(len(towers), dtype=bool)
    far[near[0]] = False
    return far


def select_towers(towers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
                  params: ModelParams) -> gpd.GeoDataFrame:
    """Towers within ``max_range_km`` of some village; the others are reported and left out."""
    if towers.empty:
        return towers
    far = far_towers(towers, villages, params.max_range_km)
    if far.any():
        ids = sorted(set(towers.loc[far, "site_id"].astype(str)))
        warnings.warn(
            f"{len(ids)} site(s) lie more than {params.max_range_km:g} km from every village "
            f"and are left out: {', '.join(ids[:10])}{'...' if len(ids) > 10 else ''}",
            RepairWarning, stacklevel=2)
    return towers[~far].reset_index(drop=True)
