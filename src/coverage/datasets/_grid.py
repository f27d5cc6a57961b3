"""Grid geometry, random fields and cost-distance helpers of the demo generator.

Everything here is a pure function of its arguments and of the ``numpy.random.Generator``
it is given, so the whole demo is reproducible from one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["Grid", "cost_graph", "fractal_field", "gaussian_field", "grid_paths"]

#: CRS of every metric grid of the demo: WGS 84 / UTM zone 48N.
UTM_CRS = "EPSG:32648"


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up raster grid in the metric CRS.

    Parameters
    ----------
    x0_m, y1_m : float
        West and north edges, metres.
    cell_m : float
        Cell size, metres.
    rows, cols : int
        Shape.
    """

    x0_m: float
    y1_m: float
    cell_m: float
    rows: int
    cols: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return self.rows, self.cols

    @property
    def transform(self) -> Affine:
        """The affine transform of the grid (rasterio convention)."""
        return Affine(self.cell_m, 0.0, self.x0_m, 0.0, -self.cell_m, self.y1_m)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)``."""
        return (self.x0_m, self.y1_m - self.rows * self.cell_m,
                self.x0_m + self.cols * self.cell_m, self.y1_m)

    def centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Cell-centre coordinates as two ``(rows, cols)`` arrays."""
        xs = self.x0_m + (np.arange(self.cols) + 0.5) * self.cell_m
        ys = self.y1_m - (np.arange(self.rows) + 0.5) * self.cell_m
        return np.meshgrid(xs, ys)

    def index(self, x: NDArray, y: NDArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Row and column of the cells holding points (clipped to the grid)."""
        col = np.clip(((np.asarray(x) - self.x0_m) // self.cell_m).astype(np.intp), 0,
                      self.cols - 1)
        row = np.clip(((self.y1_m - np.asarray(y)) // self.cell_m).astype(np.intp), 0,
                      self.rows - 1)
        return row, col

    def refine(self, factor: int) -> Grid:
        """The same extent with cells ``factor`` times smaller."""
        return Grid(self.x0_m, self.y1_m, self.cell_m / factor, self.rows * factor,
                    self.cols * factor)


def _spectral(shape: tuple[int, int], cell_m: float, spectrum, rng: np.random.Generator):
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0], d=cell_m)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=cell_m)[None, :]
    k = np.hypot(kx, ky)
    field = np.fft.irfft2(np.fft.rfft2(noise) * spectrum(k), s=shape)
    field -= field.mean()
    return field / field.std()


def gaussian_field(shape: tuple[int, int], cell_m: float, corr_m: float,
                   rng: np.random.Generator) -> NDArray[np.float64]:
    r"""Zero-mean, unit-variance Gaussian random field with exponential correlation.

    The field is white noise filtered in the Fourier domain by the square root of the 2-D
    spectrum of an exponential covariance :math:`e^{-r/L}` (Gudmundson 1991 for shadowing),
    :math:`S(k) \propto (1 + (2\pi k L)^2)^{-3/2}`.
    """
    return _spectral(shape, cell_m,
                     lambda k: (1.0 + (2.0 * np.pi * k * corr_m) ** 2) ** -0.75, rng)


def fractal_field(shape: tuple[int, int], cell_m: float, *, beta: float, outer_m: float,
                  rng: np.random.Generator) -> NDArray[np.float64]:
    r"""Unit-variance fractal (power-law) noise, spectrum :math:`k^{-\beta}` below ``outer_m``."""
    k0 = 1.0 / outer_m
    return _spectral(shape, cell_m, lambda k: (k * k + k0 * k0) ** (-beta / 4.0), rng)


_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))


def cost_graph(cost: NDArray[np.floating], cell_m: float) -> sparse.csr_matrix:
    """8-connected undirected graph of a cost surface (cost per metre in each cell).

    The weight of an edge is its length times the mean cost of its two cells.
    """
    rows, cols = cost.shape
    ids = np.arange(rows * cols).reshape(rows, cols)
    src, dst, w = [], [], []
    for dr, dc in _STEPS:
        r0, r1 = max(0, -dr), rows - max(0, dr)
        c0, c1 = max(0, -dc), cols - max(0, dc)
        a = ids[r0:r1, c0:c1]
        b = ids[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        length = cell_m * np.hypot(dr, dc)
        src.append(a.ravel())
        dst.append(b.ravel())
        w.append((0.5 * length * (cost[r0:r1, c0:c1] + cost[r0 + dr:r1 + dr, c0 + dc:c1 + dc]))
                 .ravel())
    n = rows * cols
    g = sparse.coo_matrix((np.concatenate(w), (np.concatenate(src), np.concatenate(dst))),
                          shape=(n, n)).tocsr()
    return g


def grid_paths(graph: sparse.csr_matrix, sources: NDArray[np.intp]
               ) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.int32]]:
    """Multi-source Dijkstra: cost to the nearest source, predecessor, and that source."""
    dist, pred, src = csgraph.dijkstra(graph, directed=False, indices=np.asarray(sources),
                                       min_only=True, return_predecessors=True)
    return dist, pred, src


def trace(pred: NDArray[np.int32], node: int) -> list[int]:
    """The path from a source to ``node`` in a predecessor array (source first)."""
    path = [int(node)]
    while pred[path[-1]] >= 0:
        path.append(int(pred[path[-1]]))
    return path[::-1]
