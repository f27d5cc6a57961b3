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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .grid import CoverageSurfaces, Grid

__all__ = ["GatheredLayers", "GridCells", "cell_range", "surfaces_at"]


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

    def codes(self, cells: np.ndarray) -> np.ndarray:
        """Position in the set of each flat cell (-1: off the grid or not in the set).

        32-bit positions while the set allows (half the memory of a piece's index).
        """
        cells = np.asarray(cells)
        kind = np.int32 if self.size < 2**31 else np.int64
        if not self.size:
            return np.full(cells.shape, -1, dtype=kind)
        pos = np.searchsorted(self.flat, cells)
        np.minimum(pos, self.size - 1, out=pos)
        hit = (cells >= 0) & (self.flat[pos] == cells)
        return np.where(hit, pos, -1).astype(kind, copy=False)

    def gather(self, array: np.ndarray) -> np.ndarray:
        """A whole-grid array at the set's cells, as an array of shape ``(1, size)``."""
        return array.reshape(-1)[self.flat].reshape(1, -1)

    def contains(self, cells: np.ndarray) -> bool:
        """Whether every flat cell given (off-grid ones, negative, aside) is in the set."""
        cells = np.asarray(cells)
        cells = cells[cells >= 0]
        return bool((self.codes(cells) >= 0).all())


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
