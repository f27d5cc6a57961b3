"""The tests located: each test's village and its cell on the model grid.

:func:`locate_tests` joins each test to the village that contains it (point in polygon, or
by the village ids rasterised on the model grid with exact checks next to village edges)
and to its cell on the model grid (metric CRS). :class:`TextCodes` and
:class:`ByReference` hold the located tests' per-test arrays: a text column as integer
codes, and per-test arrays kept in a frame's ``attrs`` without copies.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..model import CoverageSurfaces, measurement_xy
from .zonal import village_id_grid

__all__ = ["ByReference", "TextCodes", "locate_tests"]

log = logging.getLogger(__name__)


def locate_tests(villages: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame,
                 model: CoverageSurfaces, method: str, ids: np.ndarray | None = None,
                 xy: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Tests inside some village (one village each), and that village's row.

    ``method``: ``exact`` (point in polygon for every test) or ``fast`` (by the village
    ids rasterised on ``model``'s grid, ``ids``, made here when not given, checked exactly
    next to village edges: :func:`_locate_fast`); ``xy``: the tests' coordinates in the
    grid's CRS, when known. The table has the columns of the tests the evidence reads and
    ``_cell``, the flat index of the test's cell on the model grid (-1: off the grid).
    """
    grid = model.grid
    x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
    geoms = villages.geometry.to_crs(grid.crs).to_numpy()
    if method == "fast":
        where = _locate_fast(x, y, geoms, grid, ids)
    else:
        tree = shapely.STRtree(geoms)
        pi, vi = tree.query(shapely.points(x, y), predicate="within")
        where = np.full(len(x), -1, dtype=np.int64)
        where[pi[::-1]] = vi[::-1]  # a test on a shared edge counts once (first village)
    sel = np.flatnonzero(where >= 0)
    keep = [c for c in ("tech", "operator", "rsrp_dbm", "download_mbps", "upload_mbps",
                        "weight", "testers", "timestamp", "device_id", "devices")
            if c in measurements.columns]  # only what the evidence reads
    if len(sel) == len(measurements):  # every test in a village: columns without a copy
        joined = measurements[keep].reset_index(drop=True)
    else:
        joined = measurements[keep].take(sel).reset_index(drop=True)  # block by block
    row, col, inside = grid.index(x[sel], y[sel])
    joined["_cell"] = np.where(inside, row * grid.shape[1] + col, -1)
    return joined, where[sel]


def _locate_fast(x: np.ndarray, y: np.ndarray, geoms: np.ndarray, grid,
                 ids: np.ndarray | None = None) -> np.ndarray:
    """Village of each point by the id raster, checked exactly next to village edges.

    A point whose cell or one of its 4 neighbours belongs to another village (or none) is
    tested against the villages of those cells by point in polygon, and against every
    village (an R-tree) when none of them holds it; villages smaller than a cell, holding
    no cell centre, are looked up exactly too. Left approximate: a notch of one village,
    narrower than a cell, poking into a cell whose neighbours all belong to another.
    """
    if ids is None:
        ids = village_id_grid(geoms, grid)
    rows, cols = ids.shape
    edge = np.zeros(ids.shape, dtype=bool)  # cells whose 4-neighbourhood is not one village
    for diff, a, b in ((ids[:-1] != ids[1:], np.s_[:-1], np.s_[1:]),
                       (ids[:, :-1] != ids[:, 1:], np.s_[:, :-1], np.s_[:, 1:])):
        edge[a] |= diff
        edge[b] |= diff
    del diff
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    edge |= ids < 0
    row, col, inside = grid.index(x, y)
    where = np.full(len(x), -1, dtype=np.int64)
    idx = np.flatnonzero(inside)
    r, c = row[idx], col[idx]
    doubt = edge[r, c]
    where[idx[~doubt]] = ids[r[~doubt], c[~doubt]]
    todo, r, c = idx[doubt], r[doubt], c[doubt]
    exact = ~inside
    if len(todo):
        shapely.prepare(geoms)
        found = np.zeros(len(todo), dtype=bool)
        for dr, dc in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            v = ids[np.clip(r + dr, 0, rows - 1), np.clip(c + dc, 0, cols - 1)]
            test = ~found & (v >= 0)
            if not test.any():
                continue
            hit = np.zeros(len(todo), dtype=bool)
            hit[test] = shapely.contains_xy(geoms[v[test]], x[todo[test]], y[todo[test]])
            where[todo[hit]] = v[hit]
            found |= hit
        exact[todo[~found]] = True
    owner = np.bincount(ids[ids >= 0], minlength=len(geoms)) > 0
    if not owner.all():  # villages holding no cell centre: points in their boxes, exactly
        marked = np.zeros(ids.shape, dtype=bool)
        for left, bottom, right, top in shapely.bounds(geoms[~owner]):
            r0, c0, _ = grid.index(np.array([left]), np.array([top]))
            r1, c1, _ = grid.index(np.array([right]), np.array([bottom]))
            marked[max(r0[0], 0):max(r1[0] + 1, 0), max(c0[0], 0):max(c1[0] + 1, 0)] = True
        exact[idx[marked[row[idx], col[idx]]]] = True
    k = np.flatnonzero(exact)
    if len(k):
        tree = shapely.STRtree(geoms)
        pi, vi = tree.query(shapely.points(x[k], y[k]), predicate="within")
        where[k] = -1
        where[k[pi[::-1]]] = vi[::-1]
    log.debug("located %d tests: %d next to an edge, %d by R-tree", len(x), len(todo), len(k))
    return where


class ByReference(dict):
    """A dict that pandas' ``attrs`` hand on without copying.

    pandas deep-copies a frame's ``attrs`` into every column it returns: per-test arrays
    kept there would be copied at each column read (0.2 s and 80 MB for 10 million tests).
    """

    def __deepcopy__(self, memo: dict) -> ByReference:
        return self


class TextCodes:
    """A text column as integer codes (missing: -1), with per-value lookups.

    Factorising once beats comparing millions of strings (or converting arrow-backed text to
    Python objects) for every mask.
    """

    def __init__(self, values: pd.Series) -> None:
        self.codes, uniques = pd.factorize(values)
        self.values = [str(u) for u in uniques]

    def lookup(self, mapping: dict, default) -> np.ndarray:
        """``mapping[value]`` of every row (``default`` for other values and missing)."""
        table = np.array([mapping.get(v, default) for v in self.values] + [default])
        return table[self.codes]  # code -1 takes the last entry, the default
