r"""Population-weighted zonal statistics of 0/1 grids over village polygons.

Weights are people per cell with exact cell fractions on village edges (exactextract):

.. math:: s_v = \frac{\sum_c f_{vc}\, p_c\, x_c}{\sum_c f_{vc}\, p_c}

with :math:`f_{vc}` the fraction of cell :math:`c` inside village :math:`v`, :math:`p_c` its
people and :math:`x_c` the indicator. The work happens on the finer of the two grids: a
population raster finer than (or as fine as) the model grid takes the indicators by nearest
cell; a coarser one (WorldPop 1 km over a 100 m model) is spread over the model grid keeping
its totals, so a 1 km cell half covered counts half its people as covered. Village totals
always come from the population raster itself, in its own CRS (geographic ones included).

:func:`zonal_weights` computes the pieces :math:`(v, c, f_{vc} p_c)` once, so any number of
indicators (and indicators that depend on the village, like a calibrated model) are averaged
by a gather and :func:`numpy.bincount`. Two methods:

``exact``
    exactextract's cell fractions (``cell_id`` and ``coverage``), on the population raster's
    grid when it is as fine as the model grid (each of its cells takes the model cell under
    its centre), otherwise on the model grid with the population spread onto it.
``fast``
    village ids rasterised onto the model grid (a cell belongs to the village holding its
    centre; a village holding no centre takes the cell under a point inside it, weighted by
    its area), with the population spread onto the model grid keeping its totals. Edge
    cells go wholly to one side, so a village's count moves by roughly
    :math:`0.3\sqrt{\text{edge cells}}` cells' people, under 1% for a 3 km² village at
    100 m; shares (ratios) move less. It is linear in cells and villages, for national runs
    (exactextract's Python bindings take 1-3 ms per polygon).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.warp import Resampling, reproject

from ..engine import Engine
from ..io import Raster
from ..model import Grid, to_grid
from ..model.cells import sorted_search
from ..model.measured import group_value_order

__all__ = ["PopulationCount", "RankedPieces", "ZonalWeights", "count_population", "raster_source",
           "stratum_of", "values_at_cells", "village_id_grid", "weighted_means", "zonal_shares",
           "zonal_weights"]

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
    elif population.cell_size_m > COARSER * grid.resolution_m:
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


class RankedPieces(NamedTuple):
    """A village's cells ranked by their people (:attr:`ZonalWeights.ranked`).

    A village's pieces in one grid cell (a finer population raster gives several) are one
    cell here, weighing their sum: a test is located to a cell, not to a piece.

    Attributes
    ----------
    key : ndarray of int64
        ``village * (n_cells + 1) + cell + 1`` of each cell of a village (0 for its pieces
        off the grid, taken together), ascending and distinct.
    rank : ndarray
        The mid-point of the cell's weight in its village's cumulative weight, cells
        ranked by weight, ties in the order of ``key`` (0..1; NaN where the cell weighs
        nothing).
    weight : ndarray
        Each cell's weight, in ``key`` order.
    n_cells : int
        One more than the largest cell.
    """

    key: np.ndarray
    rank: np.ndarray
    weight: np.ndarray
    n_cells: int

    @property
    def village(self) -> np.ndarray:
        """Each cell's village, in ``key`` order.

        Read from the key: a national run's tens of millions of cells do not hold it.
        """
        return self.key // (self.n_cells + 1)

    def place(self, village: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """The ``rank`` of the cell of each item (a test) in its village, 0.5 on none.

        ``cell`` -1 (off the grid) or a cell where the village has no piece: 0.5, the
        middle of its people; NaN where the cell weighs nothing.
        """
        cell = np.asarray(cell)
        on = (cell >= 0) & (cell < self.n_cells)
        want = np.where(on, np.asarray(village, dtype=np.int64) * (self.n_cells + 1) + cell + 1,
                        -1)
        if not len(self.key):
            return np.full(len(want), 0.5)
        pos = np.clip(sorted_search(self.key, want), 0, len(self.key) - 1)
        return np.where(on & (self.key[pos] == want), self.rank[pos], 0.5)


@dataclass(frozen=True)
class ZonalWeights:
    """Pieces of villages on the model grid: village, grid cell and weight.

    Attributes
    ----------
    village : ndarray of int
        Village row (0..n-1) of each piece.
    cell : ndarray of int
        Flat index of the piece's model-grid cell (-1: outside the model grid).
    weight : ndarray of float
        People in the piece (cell fraction times people), or its area share without
        population.
    n : int
        Number of villages.
    people : ndarray or None
        ``fast`` method with a population raster: people per village from the spread raster.
    valid_share : ndarray or None
        ``fast`` method: share of each village's cells where the raster has data.
    ids : ndarray or None
        ``fast`` method: :func:`village_id_grid` on the model grid.
    """

    village: np.ndarray
    cell: np.ndarray
    weight: np.ndarray
    n: int
    people: np.ndarray | None = None
    valid_share: np.ndarray | None = None
    ids: np.ndarray | None = None

    @functools.cached_property
    def _total(self) -> np.ndarray:
        return np.bincount(self.village, weights=self.weight, minlength=self.n)

    def total(self) -> np.ndarray:
        """Weight of each village."""
        return self._total.copy()

    @functools.cached_property
    def ranked(self) -> RankedPieces:
        """The villages' cells, each with its place in its village's people.

        A village's pieces in one cell are summed (:class:`RankedPieces`). Computed once:
        every weighting of a run's tests by where people live reads it
        (:func:`coverage.classify.residents.location_weights`).
        """
        n_cells = int(max(self.cell.max(), 0)) + 1 if len(self.cell) else 1
        key = self.village.astype(np.int64) * (n_cells + 1) + (np.maximum(self.cell, -1) + 1)
        weight = self.weight
        if len(key) > 1 and (np.diff(key) < 0).any():  # pieces are often in order already
            order = np.argsort(key, kind="stable")
            key, weight = key[order], weight[order]
        start = np.flatnonzero(np.r_[True, np.diff(key) != 0]) if len(key) else np.zeros(0, int)
        key = key[start]
        weight = np.add.reduceat(weight, start) if len(start) else weight[:0]
        village = key // (n_cells + 1)
        order = group_value_order(village, weight)  # by weight within each village
        pv, pw = village[order], weight[order]
        total = np.bincount(pv, weights=pw, minlength=self.n)
        cum = np.cumsum(pw)
        first = np.r_[0, np.flatnonzero(np.diff(pv)) + 1]
        base = np.repeat(cum[first] - pw[first], np.diff(np.r_[first, len(pv)]))
        with np.errstate(invalid="ignore", divide="ignore"):
            rank = np.where(total[pv] > 0, (cum - base - 0.5 * pw) / total[pv], 0.5)
        # the running sum over every village's cells carries rounding of about 1e-16 of the
        # whole country's people: a village's least cell could rank a hair under 0
        np.clip(rank, 0.0, 1.0, out=rank)
        own = np.empty_like(rank)
        own[order] = np.where(pw > 0, rank, np.nan)  # nobody lives there
        return RankedPieces(key, own, weight, n_cells)

    def people_in_strata(self, k: int) -> np.ndarray:
        """The weight of each village's cells in each of ``k`` strata, shape ``(n, k)``.

        Stratum ``s`` holds the cells (:attr:`ranked`) of :func:`stratum_of` ``s``: ``k``
        strata of equal people when the cells are many. Computed once per ``k`` (a
        national run's villages have tens of millions of cells), the cells summed in their
        order by one bincount over all of them.
        """
        cache = self.__dict__.setdefault("_in_strata", {})
        if k not in cache:
            ranked = self.ranked
            stratum = stratum_of(ranked.rank, k)
            stratum[stratum < 0] = k  # nobody lives there: a column of their own, dropped
            stratum += ranked.village * (k + 1)
            size = self.n * (k + 1)
            sums = np.bincount(stratum, weights=ranked.weight, minlength=size)[:size]
            cache[k] = sums.reshape(self.n, k + 1)[:, :k]
        return cache[k]

    def at(self, grid_values: np.ndarray, *, fill: float = 0.0) -> np.ndarray:
        """Values of a model-grid array at every piece (``fill`` off the grid)."""
        return values_at_cells(grid_values.reshape(-1), self.cell, fill=fill)

    def mean(self, values: np.ndarray, *, mask: np.ndarray | None = None) -> np.ndarray:
        """Weighted mean per village of per-piece ``values`` (NaN: no weight).

        ``mask`` restricts the pieces used (villages with none get NaN); ``values`` may then
        hold all pieces or only the selected ones.
        """
        v, w = self.village, self.weight
        if mask is not None:
            v, w = v[mask], w[mask]
            values = values if len(values) == len(v) else values[mask]
            tot = np.bincount(v, weights=w, minlength=self.n)
        else:
            tot = self._total
        num = np.bincount(v, weights=w * values, minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, num / tot, np.nan)

    def replace_villages(self, which: np.ndarray, other: ZonalWeights) -> ZonalWeights:
        """These weights with the villages ``which`` (bool) taken from ``other``.

        ``other`` holds the selected villages only, numbered 0..k-1 in order.
        """
        keep = ~which[self.village]
        rows = np.flatnonzero(which)
        return ZonalWeights(np.concatenate([self.village[keep], rows[other.village]]),
                            np.concatenate([self.cell[keep], other.cell]),
                            np.concatenate([self.weight[keep], other.weight]), self.n,
                            self.people, self.valid_share, self.ids)


def stratum_of(rank: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Stratum (0..k-1) of each ``rank`` (0..1) cut in ``k`` equal parts; -1 where NaN.

    The number of ``j`` in 1..k-1 with ``rank * k >= j`` (``k`` one number, or one per
    rank): the tests' strata and the cells' are read alike (:meth:`ZonalWeights.
    people_in_strata`, :func:`coverage.classify.residents.location_weights`).
    """
    rk = np.asarray(rank) * k
    stratum = np.zeros(rk.shape, dtype=np.int64)
    for j in range(1, int(np.max(k))):
        stratum += (rk >= j) & (j < k)
    stratum[np.isnan(rk)] = -1
    return stratum


def values_at_cells(flat: np.ndarray, cell: np.ndarray, *, fill: float | bool) -> np.ndarray:
    """Values of a flattened grid at flat cell indices, ``fill`` where a cell is -1.

    Parameters
    ----------
    flat : ndarray
        A model-grid array, flattened (``reshape(-1)``).
    cell : ndarray of int
        Flat cell indices; -1 marks a piece off the grid.
    fill : float or bool
        The value off the grid, in ``flat``'s dtype.

    Returns
    -------
    ndarray
        ``flat[cell]`` with ``fill`` off the grid, in ``flat``'s dtype (no copy of the mask
        when every cell is on the grid).
    """
    inside = cell >= 0
    if inside.all():
        return flat[cell]
    out = np.full(len(cell), fill, dtype=flat.dtype)
    out[inside] = flat[cell[inside]]
    return out


def _pieces(villages: gpd.GeoDataFrame, values: np.ndarray, transform, crs,
            engine: Engine | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactextract's (village, cell, fraction) on a raster grid (chunks on ``engine``)."""
    vil = villages[[villages.geometry.name]].to_crs(crs).reset_index(drop=True)
    if engine is not None and len(vil) > engine.village_chunk:
        starts = range(0, len(vil), engine.village_chunk)
        parts = engine.map(_pieces_task, [vil.iloc[i:i + engine.village_chunk] for i in starts],
                           shape=values.shape[:2], transform=transform, crs=crs)
        return (np.concatenate([v + i for (v, _, _), i in zip(parts, starts, strict=True)]),
                np.concatenate([c for _, c, _ in parts]),
                np.concatenate([f for _, _, f in parts]))
    return _pieces_task(vil, shape=values.shape[:2], transform=transform, crs=crs)


def _pieces_task(vil: gpd.GeoDataFrame, *, shape: tuple[int, int], transform, crs
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces of polygons already in ``crs`` (a picklable task for the engine)."""
    src = raster_source(np.zeros(shape), transform, "g", crs)
    vil = vil.reset_index(drop=True)
    table = exact_extract(src, vil, ["cell_id", "coverage"], output="pandas")
    lens = np.fromiter((len(a) for a in table["cell_id"]), dtype=np.int64, count=len(table))
    if lens.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    cell = np.concatenate(table["cell_id"].to_numpy()).astype(np.int64)
    frac = np.concatenate(table["coverage"].to_numpy()).astype(float)
    return np.repeat(np.arange(len(table)), lens), cell, frac


def _exact(villages: gpd.GeoDataFrame, grid: Grid, population: Raster | None,
           engine: Engine | None = None) -> ZonalWeights:
    n = len(villages)
    if population is None or population.cell_size_m > COARSER * grid.resolution_m:
        v, cell, frac = _pieces(villages, np.zeros(grid.shape), grid.transform, grid.crs,
                                engine)
        if population is None:
            return ZonalWeights(v, cell, frac, n)
        spread = to_grid(population, grid, resampling="sum").reshape(-1)
        w = frac * np.where(spread[cell] > 0, spread[cell], 0.0)
        keep = w > 0
        return ZonalWeights(v[keep], cell[keep], w[keep], n)
    pop = population.array.astype("float64")
    v, pcell, frac = _pieces(villages, pop, population.transform, population.crs, engine)
    people = pop.reshape(-1)[pcell]
    w = frac * np.where(np.isfinite(people) & (people > 0), people, 0.0)
    keep = w > 0
    v, pcell, w = v[keep], pcell[keep], w[keep]
    # each population cell takes the model cell under its centre
    uniq, inv = np.unique(pcell, return_inverse=True)
    rows, cols = np.divmod(uniq, pop.shape[1])
    x, y = population.transform * (cols + 0.5, rows + 0.5)
    if not population.crs.equals(grid.crs):
        x, y = Transformer.from_crs(population.crs, grid.crs, always_xy=True).transform(x, y)
    r, c, inside = grid.index(np.asarray(x), np.asarray(y))
    mcell = np.where(inside, r * grid.shape[1] + c, -1)
    return ZonalWeights(v, mcell[inv], w, n)


def village_id_grid(geoms: np.ndarray, grid) -> np.ndarray:
    """Row of the village holding each cell centre of ``grid`` (-1: none), int32.

    ``geoms`` are in the grid's CRS. Coordinates go to GDAL as arrays, not through each
    geometry's ``__geo_interface__`` (which costs more than the rasterising itself).
    """
    ok = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    parts, owner = shapely.get_parts(geoms[ok], return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    ring_xy = np.split(coords, np.flatnonzero(np.diff(ring_idx)) + 1)
    starts = np.r_[0, np.flatnonzero(np.diff(ring_owner)) + 1]
    ends = np.r_[starts[1:], len(ring_owner)]
    shapes = [({"type": "Polygon", "coordinates": ring_xy[s:e]}, int(ok[owner[ring_owner[s]]]))
              for s, e in zip(starts, ends, strict=True)]
    if not shapes:
        return np.full(grid.shape, -1, dtype="int32")
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=-1,
                     dtype="int32")


#: Grid cells (and village pieces) the ``fast`` method handles at a time.
PIECE_CHUNK = 1 << 22


def _fast(villages: gpd.GeoDataFrame, grid: Grid, population: Raster | None) -> ZonalWeights:
    n = len(villages)
    geoms = villages.geometry.to_crs(grid.crs).to_numpy()
    id_grid = village_id_grid(geoms, grid)
    ids = id_grid.reshape(-1)
    # 32-bit indices where the grid allows (half the memory and bandwidth), found a chunk of
    # the grid at a time (no 64-bit index of every village cell at once)
    kind = np.int32 if ids.size < 2**31 else np.int64
    starts = range(0, ids.size, PIECE_CHUNK)

    def cells_of(s: int) -> np.ndarray:
        return (np.flatnonzero(ids[s:s + PIECE_CHUNK] >= 0) + s).astype(kind)

    counts = np.zeros(n, dtype=np.int64)
    for s in starts:
        part = ids[s:s + PIECE_CHUNK]
        counts += np.bincount(part[part >= 0], minlength=n)
    missing = counts == 0
    extra = None
    if missing.any():  # villages holding no cell centre: the cell under a point inside them
        pts = shapely.point_on_surface(geoms[missing])
        r, c, inside = grid.index(shapely.get_x(pts), shapely.get_y(pts))
        extra = (np.flatnonzero(missing).astype(ids.dtype),
                 np.where(inside, r * grid.shape[1] + c, -1).astype(kind),
                 np.minimum(shapely.area(geoms[missing]) / grid.resolution_m**2, 1.0))
    if population is None:  # every piece, weighed by area
        cell = np.concatenate([*(cells_of(s) for s in starts),
                               *(() if extra is None else (extra[1],)), np.zeros(0, kind)])
        village = ids[cell[:len(cell) - (0 if extra is None else len(extra[1]))]]
        area = np.ones(len(cell))
        if extra is not None:
            village = np.concatenate([village, extra[0]])
            area[len(cell) - len(extra[1]):] = extra[2]
        return ZonalWeights(village, cell, area, n, ids=id_grid)
    spread_at, valid_at = _population_at(population, grid)
    # the pieces a chunk of the grid at a time, and only those with people kept: a national
    # grid has tens of millions of village cells, a few million with people. The valid
    # shares add whole cells (0 or 1 each: exact sums in any grouping); the people of a
    # village add in the order of its pieces, as one pass over all of them would
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    valid = np.zeros(n)
    for s in starts:
        c = cells_of(s)
        v = ids[c]
        here = spread_at(c)
        here[~(here > 0)] = 0.0
        valid += np.bincount(v, weights=valid_at(c), minlength=n)
        keep = here > 0
        kept.append((v[keep], c[keep], here[keep]))
    area_sum = counts.astype(float)
    if extra is not None:  # parts of cells, some off the grid
        v, c, share = extra
        inside = c >= 0
        here, ok = np.zeros(len(c)), np.zeros(len(c))
        people_in = spread_at(c[inside])
        here[inside] = np.where(people_in > 0, people_in, 0.0) * share[inside]
        ok[inside] = valid_at(c[inside]) * share[inside]
        valid += np.bincount(v, weights=ok, minlength=n)
        area_sum[v] = share
        keep = here > 0
        kept.append((v[keep], c[keep], here[keep]))
    village, cell, people = (np.concatenate([k[i] for k in kept]) for i in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        valid_share = valid / area_sum
    return ZonalWeights(village, cell, people, n,
                        people=np.bincount(village, weights=people, minlength=n),
                        valid_share=np.nan_to_num(valid_share), ids=id_grid)


def _population_at(population: Raster, grid: Grid):
    """Functions of flat grid cells: the people spread on the grid, and the valid share."""
    shift = aligned_shift(population, grid)
    if shift is not None:
        # on the model grid's lattice: read at the pieces, no whole-grid float64 copies
        # (a national 100 m grid spread whole took five of them, 5 GB)
        same = shift == (0, 0) and population.array.shape == grid.shape
        src_area = abs(population.transform.a * population.transform.e)

        def raw_at(idx: np.ndarray) -> np.ndarray:
            return _raster_at(population.array, idx, grid.shape[1], shift)

        def spread_at(idx: np.ndarray) -> np.ndarray:
            people = np.nan_to_num(raw_at(idx).astype("float64"))
            # the raster itself on the very same grid, as before; shifted, what spreading
            # it gives (:func:`to_grid`'s density times the cell's area), bit for bit
            return people if same else people / src_area * grid.resolution_m**2

        def valid_at(idx: np.ndarray) -> np.ndarray:
            return np.isfinite(raw_at(idx)).astype("float32")
        return spread_at, valid_at
    spread = to_grid(population, grid, resampling="sum").reshape(-1)
    valid = np.zeros(grid.shape, dtype="float32")
    reproject(np.isfinite(population.array).astype("float32"), valid,
              src_transform=population.transform, src_crs=population.crs,
              dst_transform=grid.transform, dst_crs=grid.crs,
              resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)

    def spread_at(idx: np.ndarray) -> np.ndarray:
        return spread[idx]

    def valid_at(idx: np.ndarray) -> np.ndarray:
        return valid.reshape(-1)[idx]
    return spread_at, valid_at


def aligned_shift(raster: Raster, grid: Grid) -> tuple[int, int] | None:
    """(rows, cols) from a grid cell to the raster cell that is the same square, or None.

    Not None when the raster lies on the grid's lattice: same CRS, same north-up square
    cells, origins a whole number of cells apart (a population raster at the model's
    resolution in its CRS, cut to another extent): summing it onto the grid moves every
    cell's people as they are, so it can be read at the pieces instead.
    """
    t, g = raster.transform, grid.transform
    if not (raster.crs.equals(grid.crs) and t.b == 0 and t.d == 0 and g.b == 0 and g.d == 0
            and np.isclose(t.a, g.a, rtol=0, atol=1e-9 * abs(g.a))
            and np.isclose(t.e, g.e, rtol=0, atol=1e-9 * abs(g.e))):
        return None
    cols = (g.c - t.c) / t.a
    rows = (g.f - t.f) / t.e
    if abs(cols - round(cols)) > 1e-6 or abs(rows - round(rows)) > 1e-6:
        return None
    return round(rows), round(cols)


def _raster_at(array: np.ndarray, cells: np.ndarray, grid_cols: int,
               shift: tuple[int, int]) -> np.ndarray:
    """Raster values at flat grid cells, the raster shifted by ``shift`` (NaN: off it)."""
    r, c = np.divmod(cells, grid_cols)
    r += shift[0]
    c += shift[1]
    ok = (r >= 0) & (r < array.shape[0]) & (c >= 0) & (c < array.shape[1])
    if ok.all():
        return array[r, c]
    out = np.full(len(cells), np.nan, dtype=np.result_type(array.dtype, np.float32))
    out[ok] = array[r[ok], c[ok]]
    return out


def zonal_weights(villages: gpd.GeoDataFrame, grid: Grid, population: Raster | None, *,
                  method: str = "exact", engine: Engine | None = None) -> ZonalWeights:
    """Population (or area) weights of every village's pieces on the model grid.

    Parameters
    ----------
    villages : GeoDataFrame
        Polygons in any CRS.
    grid : Grid
        The model grid.
    population : Raster, optional
        People per cell; without it, pieces weigh by area.
    method : {"exact", "fast"}
        See the module docstring.
    engine : Engine, optional
        ``exact``: the cell fractions are found in chunks of ``engine.village_chunk``
        villages on it (:mod:`coverage.engine`); the pieces are the same.

    Returns
    -------
    ZonalWeights
        Villages without any weight (off the raster, all nodata or zero) have no pieces.
    """
    if method == "exact":
        return _exact(villages, grid, population, engine)
    if method == "fast":
        return _fast(villages, grid, population)
    raise ValueError(f"zonal method {method!r}: use 'exact' or 'fast'")
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
