"""Surfaces at a set of grid cells: what the classification reads, without whole grids.

A national grid at 100 m holds 130 million cells per layer; its villages cover about a
quarter of them and its tests a few million more. The classification reads the surfaces
only there: at its villages' pieces and at its tests. :class:`GridCells` numbers such a set
of cells once (a sorted index of flat cells, and the position of any grid cell in it), and
:func:`surfaces_at` shows a :class:`CoverageSurfaces` at those cells as surfaces on a grid of
shape ``(1, k)``: one row holding the set's cells in flat order. Its layers are gathered
from the whole grid when they are read and not kept, so the view costs nothing until used;
cell-wise work (margins, calibrated layers, probabilities, gathers by flat index) runs on
it unchanged and gives, at each cell, the figure it gives on the whole grid.

The view's grid keeps the whole grid's transform and CRS: only its shape is the set's. Use
it for cell-wise work, never to place points on it.

The model's server distances are read only there (and by the open-field trends, which
sample the whole grid): :class:`HeldLayers` keeps them at such a set of cells, as
:class:`CellValues`, once those trends are made (:func:`coverage.model.calibration.hold_distances`).
A national grid's nine distance layers are 4.7 GB whole, a tenth of that at its villages
and tests. :func:`values_at` reads a whole-grid array or one held at cells alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .grid import CoverageSurfaces, Grid

__all__ = ["CellValues", "GatheredLayers", "GridCells", "HeldLayers", "cell_range",
           "sorted_search", "surfaces_at", "values_at"]

#: A set of cells keeps a lookup of every grid cell's position (:meth:`GridCells.codes`)
#: while it holds at least one grid cell in this many.
LOOKUP_MAX_SPARSITY = 8

#: Below this many values to find, :func:`sorted_search` searches them as they come.
SORT_MIN_NEEDLES = 100_000


def sorted_search(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``np.searchsorted(haystack, needles)``, the needles searched in ascending order.

    The same positions. Millions of needles in random order make every step of the binary
    search a cache miss over a haystack of millions; in order, consecutive searches walk
    the same part of it (five times faster for 10 million needles in 21 million values,
    sort included).
    """
    needles = np.asarray(needles)
    if needles.ndim != 1 or len(needles) < SORT_MIN_NEEDLES:
        return np.searchsorted(haystack, needles)
    order = np.argsort(needles, kind="stable")
    out = np.empty(len(needles), dtype=np.intp)
    out[order] = np.searchsorted(haystack, needles[order])
    return out


@dataclass(frozen=True)
class GridCells:
    """A set of cells of a grid, in flat order, and the position of any cell in it.

    Attributes
    ----------
    grid : Grid
        The whole grid.
    flat : ndarray of int64
        The distinct flat cells of the set (``row * cols + col``), ascending.
    """

    grid: Grid
    flat: np.ndarray

    @classmethod
    def of(cls, grid: Grid, *cells: np.ndarray) -> GridCells:
        """The union of arrays of flat cells of ``grid`` (negative cells: off the grid)."""
        size = grid.shape[0] * grid.shape[1]
        mark = np.zeros(size, dtype=bool)  # one byte a cell, once: no sort of the pieces
        for c in cells:
            c = np.asarray(c)
            mark[c[c >= 0]] = True
        return cls(grid, np.flatnonzero(mark))

    @property
    def size(self) -> int:
        """Number of cells in the set."""
        return len(self.flat)

    @property
    def compact(self) -> Grid:
        """The grid of the set: shape ``(1, size)``, the whole grid's transform and CRS."""
        return Grid(self.grid.transform, (1, self.size), self.grid.crs)

    @functools.cached_property
    def _lookup(self) -> np.ndarray | None:
        """Position in the set of every cell of the grid (-1: not in it), int32, or None.

        None when the set holds fewer than one grid cell in :data:`LOOKUP_MAX_SPARSITY`.
        Four bytes a grid cell: at most 32 bytes a cell of the set, four times its own
        index. A lookup reads it once per cell asked for, where a binary search over
        millions of cells in random order waits on memory at every step (about a hundred
        times slower for 10 million cells asked of 21 million).
        """
        size = self.grid.shape[0] * self.grid.shape[1]
        if not self.size or size > LOOKUP_MAX_SPARSITY * self.size or self.size >= 2**31:
            return None
        lookup = np.full(size, -1, dtype=np.int32)
        lookup[self.flat] = np.arange(self.size, dtype=np.int32)
        return lookup

    def codes(self, cells: np.ndarray) -> np.ndarray:
        """Position in the set of each flat cell (-1: off the grid or not in the set).

        32-bit positions while the set allows (half the memory of a piece's index).
        """
        cells = np.asarray(cells)
        kind = np.int32 if self.size < 2**31 else np.int64
        if not self.size:
            return np.full(cells.shape, -1, dtype=kind)
        lookup = self._lookup if cells.dtype.kind in "iu" else None
        if lookup is not None:
            inside = (cells >= 0) & (cells < len(lookup))
            if inside.all():
                return lookup[cells]
            return np.where(inside, lookup[np.where(inside, cells, 0)], -1).astype(kind)
        pos = sorted_search(self.flat, cells)
        np.minimum(pos, self.size - 1, out=pos)
        hit = (cells >= 0) & (self.flat[pos] == cells)
        return np.where(hit, pos, -1).astype(kind, copy=False)

    def gather(self, array: np.ndarray | CellValues) -> np.ndarray:
        """A whole-grid array at the set's cells, as an array of shape ``(1, size)``.

        ``array`` may be held at cells (:class:`CellValues`) that include this set's.
        """
        return values_at(array, self.flat).reshape(1, -1)

    def contains(self, cells: np.ndarray) -> bool:
        """Whether every flat cell given (off-grid ones, negative, aside) is in the set."""
        cells = np.asarray(cells)
        cells = cells[cells >= 0]
        return bool((self.codes(cells) >= 0).all())


class _Positions:
    """Positions in a set of cells of the flat cells last asked for, kept for the next ask.

    The layers held at one set are read at the same cells one after the other (a
    classification reads every layer at its own cells): the positions are found once.
    The arrays of cells asked for are never changed in place (:class:`GridCells`).
    """

    def __init__(self, cells: GridCells) -> None:
        self.cells = cells
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def of(self, flat: np.ndarray) -> np.ndarray:
        if self._last is not None and self._last[0] is flat:
            return self._last[1]
        pos = self.cells.codes(flat)
        if (pos < 0).any():
            raise ValueError(f"{int((pos < 0).sum())} cells read that are not among the "
                             f"{self.cells.size} cells the array is held at")
        self._last = (flat, pos)
        return pos


@dataclass(frozen=True)
class CellValues:
    """A whole-grid array kept at a set of cells only: what :func:`values_at` reads.

    Attributes
    ----------
    cells : GridCells
        The cells kept.
    values : ndarray
        The array's values at ``cells.flat``, in that order (read-only).
    """

    cells: GridCells
    values: np.ndarray
    positions: _Positions

    @classmethod
    def of(cls, array: np.ndarray, cells: GridCells,
           positions: _Positions | None = None) -> CellValues:
        """``array`` (of shape ``cells.grid.shape``) at ``cells``.

        ``positions``: shared by the arrays held at the same ``cells``.
        """
        if array.shape != cells.grid.shape:
            raise ValueError(f"CellValues.of: array of shape {array.shape} on a grid of "
                             f"shape {cells.grid.shape}")
        values = array.reshape(-1)[cells.flat]
        values.flags.writeable = False
        return cls(cells, values, positions or _Positions(cells))

    @property
    def shape(self) -> tuple[int, int]:
        """The whole grid's shape."""
        return self.cells.grid.shape

    def at(self, flat: np.ndarray) -> np.ndarray:
        """The values at flat cells of the grid, each one of the cells kept.

        Raises
        ------
        ValueError
            A cell asked for is not kept.
        """
        flat = np.asarray(flat)
        if flat is self.cells.flat:
            return self.values
        return self.values[self.positions.of(flat)]


def values_at(array: np.ndarray | CellValues, flat: np.ndarray) -> np.ndarray:
    """A grid array's values at flat cells (``row * cols + col``, all on the grid).

    ``array`` is a whole-grid array, or one held at a set of cells (:class:`CellValues`)
    that includes ``flat``; the values are the same.
    """
    if isinstance(array, CellValues):
        return array.at(flat)
    return array.reshape(-1)[flat]


class HeldLayers(Mapping):
    """Layers by name held at a set of cells (:class:`CellValues`), with their open trends.

    What :func:`coverage.model.calibration.hold_distances` puts in ``CoverageSurfaces.distance_m``:
    the server distances at the cells a classification reads, and each layer's open-field
    trend (:func:`coverage.model.calibration.open_trend`) made from the whole grid before.

    Attributes
    ----------
    trends : dict
        ``(operator, tech) -> (log10 km bin centres, levels dBm)``.
    """

    def __init__(self, layers: Mapping[tuple[str, str], CellValues],
                 trends: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]) -> None:
        self._layers = dict(layers)
        self.trends = dict(trends)

    @classmethod
    def of(cls, arrays: Mapping[tuple[str, str], np.ndarray], cells: GridCells,
           trends: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]) -> HeldLayers:
        """Whole-grid ``arrays`` held at ``cells`` (positions found once for all of them)."""
        positions = _Positions(cells)
        return cls({k: CellValues.of(v, cells, positions) for k, v in arrays.items()},
                   trends)

    def __getitem__(self, key) -> CellValues:
        return self._layers[key]

    def __iter__(self) -> Iterator:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)


class GatheredLayers(Mapping):
    """Whole-grid arrays by name, each read at a set of cells when looked up.

    Nothing is copied until a layer is read, and nothing read is kept: a layer read twice is
    gathered twice.
    """

    def __init__(self, source: Mapping, cells: GridCells) -> None:
        self._source = source
        self._cells = cells

    def __getitem__(self, key) -> np.ndarray:
        return self._cells.gather(self._source[key])

    def part(self, start: int, stop: int) -> GatheredLayers:
        """The same layers at the set's cells ``start`` to ``stop`` (positions) only."""
        return GatheredLayers(self._source, GridCells(self._cells.grid,
                                                      self._cells.flat[start:stop]))

    def __iter__(self) -> Iterator:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)


def surfaces_at(surfaces: CoverageSurfaces, cells: GridCells) -> CoverageSurfaces:
    """``surfaces`` at the cells of ``cells``, on the grid ``cells.compact``.

    Layers, server distances, measured grids and estimated margins are read from the whole
    grid when looked up (:class:`GatheredLayers`); calibration, parameters and choices are
    the same objects. Surfaces already on ``cells.compact`` (fused at these cells) are
    returned as they are. The terrain (``dem``) is left out: it is read by position.
    """
    if surfaces.grid == cells.compact and cells.compact != cells.grid:
        return surfaces
    return replace(surfaces, grid=cells.compact, dem=None,
                   layers=GatheredLayers(surfaces.layers, cells),
                   distance_m=GatheredLayers(surfaces.distance_m, cells),
                   measured=GatheredLayers(surfaces.measured, cells),
                   estimated_margin=GatheredLayers(surfaces.estimated_margin, cells))


class _SlicedLayers(Mapping):
    """Whole-grid arrays by name, each read as a view of its flat cells ``start:stop``."""

    def __init__(self, source: Mapping, start: int, stop: int) -> None:
        self._source, self._start, self._stop = source, start, stop

    def __getitem__(self, key) -> np.ndarray:
        return self._source[key].reshape(-1)[self._start:self._stop].reshape(1, -1)

    def __iter__(self) -> Iterator:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)


def cell_range(surfaces: CoverageSurfaces, start: int, stop: int) -> CoverageSurfaces:
    """``surfaces`` at their flat cells ``start`` to ``stop``, on a grid ``(1, stop - start)``.

    For cell-wise work in chunks (their temporaries follow the chunk): layers of a whole
    grid are read as views, those of :func:`surfaces_at` gathered at the chunk's cells only.
    As with :func:`surfaces_at`, the grid's transform is the whole grid's: never place
    points on it.
    """
    def part(layers: Mapping) -> Mapping:
        if isinstance(layers, GatheredLayers):
            return layers.part(start, stop)
        return _SlicedLayers(layers, start, stop)

    grid = Grid(surfaces.grid.transform, (1, stop - start), surfaces.grid.crs)
    return replace(surfaces, grid=grid, dem=None, layers=part(surfaces.layers),
                   distance_m=part(surfaces.distance_m), measured=part(surfaces.measured),
                   estimated_margin=part(surfaces.estimated_margin))
