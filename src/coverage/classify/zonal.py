r"""Population-weighted zonal statistics of 0/1 grids over village polygons.

Weights are people per cell with exact cell fractions on village edges (exactextract):

.. math:: s_v = \frac{\sum_c f_{vc}\, p_c\, x_c}{\sum_c f_{vc}\, p_c}

with :math:`f_{vc}` the fraction of cell :math:`c` inside village :math:`v`, :math:`p_c` its
people and :math:`x_c` the indicator. The work happens on the finer of the two grids: a
population raster finer than (or as fine as) the model grid takes the indicators by nearest
cell; a coarser one (WorldPop 1 km over a 100 m model) is spread over the model grid keeping
its totals, so a 1 km cell half covered counts half its people as covered. Village totals
always come from the population raster itself, in its own CRS (geographic ones included).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.warp import Resampling, reproject

from ..engine import Engine
from ..io import Raster
from ..model import Grid, to_grid

__all__ = ["PopulationCount", "count_population", "raster_source", "weighted_means",
           "zonal_shares"]

log = logging.getLogger(__name__)

#: A raster this much coarser than the model grid is spread onto it rather than sampled.
COARSER = 1.5


def raster_source(array: np.ndarray, transform, name: str, crs) -> NumPyRasterSource:
    """Wrap a north-up array as an exactextract raster source."""
    rows, cols = array.shape
    left, top = transform.c, transform.f
    right = left + cols * transform.a
    bottom = top + rows * transform.e
    return NumPyRasterSource(array, xmin=min(left, right), ymin=min(bottom, top),
                             xmax=max(left, right), ymax=max(bottom, top), name=name,
                             srs_wkt=crs.to_wkt())


def _cell_size_m(raster: Raster) -> float:
    """Approximate cell size in metres (geographic rasters at their centre latitude)."""
    side = float(np.sqrt(abs(raster.transform.a * raster.transform.e)))
    if raster.crs.is_geographic:
        lat = 0.5 * (raster.bounds[1] + raster.bounds[3])
        return side * 111_320.0 * float(np.sqrt(np.cos(np.radians(lat))))
    return side * float(raster.crs.axis_info[0].unit_conversion_factor)


@dataclass(frozen=True)
class PopulationCount:
    """People per village from the raster, and how much of each village the raster sees.

    Attributes
    ----------
    people : ndarray
        Sum of people per cell times the cell's fraction inside the village.
    valid_share : ndarray
        Share (0..1) of the village's area on raster cells with data; below 1 where the
        village runs off the raster or over nodata, 0 where it lies wholly outside.
    """

    people: np.ndarray
    valid_share: np.ndarray


def count_population(villages: gpd.GeoDataFrame, population: Raster) -> PopulationCount:
    """People in each village by exact cell fractions, in the raster's own CRS."""
    arr = population.array.astype("float64")
    valid = np.isfinite(arr)
    people = np.where(valid & (arr > 0), arr, 0.0)
    vil = villages[[villages.geometry.name]].to_crs(population.crs).reset_index(drop=True)
    sources = [raster_source(people, population.transform, "people", population.crs),
               raster_source(valid.astype("float64"), population.transform, "valid",
                             population.crs)]
    table = exact_extract(sources, vil, ["sum"], output="pandas")
    cells = shapely.area(vil.geometry.to_numpy()) / abs(population.transform.a
                                                        * population.transform.e)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(cells > 0, table["valid_sum"].to_numpy() / cells, 0.0)
    return PopulationCount(table["people_sum"].to_numpy(dtype=float), np.clip(share, 0, 1))


def zonal_shares(villages: gpd.GeoDataFrame, layers: dict[str, np.ndarray], grid: Grid,
                 population: Raster | None, *, engine: Engine | None = None) -> pd.DataFrame:
    """Weighted mean of each layer per village; NaN where the village has no weight.

    Parameters
    ----------
    villages : GeoDataFrame
        Polygons in any CRS.
    layers : dict
        Name to float array on ``grid`` (0/1 indicators, or any value to average).
    grid : Grid
        The model grid.
    population : Raster, optional
        People per cell; without it every layer is averaged by area.
    engine : Engine, optional
        With one, villages are summed in chunks of ``engine.village_chunk`` on it (the
        layers go to each worker once); the figures are the same as in one pass.

    Returns
    -------
    DataFrame
        One column per layer, one row per village in order.
    """
    names = list(layers)
    if population is None:
        crs, transform = grid.crs, grid.transform
        arrays = dict(layers)
        weights = np.ones(grid.shape)
    elif _cell_size_m(population) > COARSER * grid.resolution_m:
        crs, transform = grid.crs, grid.transform
        spread = to_grid(population, grid, resampling="sum")
        arrays = dict(layers)
        weights = np.where(spread > 0, spread, 0.0)
    elif engine is not None:
        # a population raster finer than the grid: each chunk of villages takes the layers
        # onto its own window of the raster, so memory follows the chunk, not the country
        return _windowed_shares(villages, layers, grid, population, engine)
    else:
        crs, transform = population.crs, population.transform
        pop = population.array.astype("float64")
        arrays = {}
        for name, arr in layers.items():
            out = np.zeros(pop.shape, dtype="float32")
            reproject(arr.astype("float32"), out, src_transform=grid.transform,
                      src_crs=grid.crs, dst_transform=transform, dst_crs=crs,
                      resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)
            arrays[name] = out
        weights = np.where(np.isfinite(pop) & (pop > 0), pop, 0.0)
    vil = villages[[villages.geometry.name]].to_crs(crs).reset_index(drop=True)
    if engine is None:
        table = weighted_means(vil, arrays=arrays, weights=weights, transform=transform,
                               crs=crs)
    else:
        parts = [vil.iloc[i:i + engine.village_chunk]
                 for i in range(0, len(vil), engine.village_chunk)]
        tables = engine.map(weighted_means, parts, arrays=arrays, weights=weights,
                            transform=transform, crs=crs)
        table = (pd.concat(tables, ignore_index=True) if tables
                 else pd.DataFrame({n: pd.Series(dtype=float) for n in names}))
    table.columns = names
    return table.astype(float)


def weighted_means(villages: gpd.GeoDataFrame, *, arrays: dict[str, np.ndarray],
                   weights: np.ndarray, transform, crs) -> pd.DataFrame:
    """Weighted mean of each array per polygon (exact cell fractions), one column each.

    ``villages`` must be in ``crs``, the arrays' CRS. A task of the zonal stage: it takes
    only picklable inputs, so it runs on Dask workers too.
    """
    names = list(arrays)
    sources = [raster_source(a, transform, n, crs) for n, a in arrays.items()]
    w = raster_source(weights, transform, "w", crs)
    table = exact_extract(sources, villages.reset_index(drop=True), ["weighted_mean"],
                          weights=w, output="pandas")
    table.columns = names  # exactextract names them after the weights too
    return table


def _windowed_shares(villages: gpd.GeoDataFrame, layers: dict[str, np.ndarray], grid: Grid,
                     population: Raster, engine: Engine) -> pd.DataFrame:
    """Zonal shares on windows of a population raster finer than the grid, chunk by chunk.

    The same figures as one pass over the whole raster when the raster and the grid share
    a CRS (nearest-cell sampling is then exact); across CRSs GDAL's approximate transformer
    may pick the neighbouring cell for a few cells on window edges.
    """
    crs = population.crs
    vil = villages[[villages.geometry.name]].to_crs(crs).reset_index(drop=True)
    names = list(layers)
    parts = [vil.iloc[i:i + engine.village_chunk]
             for i in range(0, len(vil), engine.village_chunk)]
    if not parts:
        return pd.DataFrame({n: pd.Series(dtype=float) for n in names})
    tables = engine.map(_window_task, parts, layers=layers, grid=grid, population=population)
    table = pd.concat(tables, ignore_index=True)
    table.columns = names
    return table.astype(float)


def _window_task(villages: gpd.GeoDataFrame, *, layers: dict[str, np.ndarray], grid: Grid,
                 population: Raster) -> pd.DataFrame:
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform

    rows, cols = population.array.shape
    w = from_bounds(*villages.total_bounds, transform=population.transform)
    r0, c0 = max(int(np.floor(w.row_off)) - 1, 0), max(int(np.floor(w.col_off)) - 1, 0)
    r1 = min(int(np.ceil(w.row_off + w.height)) + 1, rows)
    c1 = min(int(np.ceil(w.col_off + w.width)) + 1, cols)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    transform = window_transform(window, population.transform)
    pop = population.array[r0:r1, c0:c1].astype("float64")
    arrays = {}
    for name, arr in layers.items():
        out = np.zeros(pop.shape, dtype="float32")
        reproject(arr.astype("float32"), out, src_transform=grid.transform, src_crs=grid.crs,
                  dst_transform=transform, dst_crs=population.crs,
                  resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)
        arrays[name] = out
    weights = np.where(np.isfinite(pop) & (pop > 0), pop, 0.0)
    return weighted_means(villages, arrays=arrays, weights=weights, transform=transform,
                          crs=population.crs)
