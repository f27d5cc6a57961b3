"""Demand: the people of ``unavailable`` villages without broadband, cell by cell.

A *pair* is one village's share of one grid cell (exact fractions of the cell inside the
village polygon, by exactextract), weighing the people living there; pairs already covered
by the existing sites weigh 0, and pairs of villages that are not ``unavailable`` too, so the
plan lifts the villages of the list.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from exactextract import exact_extract
from scipy import sparse

from ..classify.zonal import raster_source
from ..io import Raster
from ..model import CoverageSurfaces, Grid, to_grid
from ..params import BROADBAND_TECHS, Profile
from .solvers import CoverProblem

__all__ = ["Demand", "build_problem", "demand_pairs"]


@dataclass(frozen=True)
class Demand:
    """Village-cell pairs and the people each still needs covered.

    Attributes
    ----------
    village : ndarray of int
        Row of each pair's village in the classified table.
    cell : ndarray of int
        Flat (row-major) cell index of each pair in ``grid``.
    people : ndarray of float
        Residents of each pair (the village's ``population`` spread by the raster).
    weight : ndarray of float
        People still without outdoor broadband in ``unavailable`` villages, times the
        village weight; 0 elsewhere.
    grid : Grid
        The analysis grid.
    """

    village: np.ndarray
    cell: np.ndarray
    people: np.ndarray
    weight: np.ndarray
    grid: Grid

    def unserved_points(self) -> gpd.GeoDataFrame:
        """People in need per cell, as points at cell centres in the grid's CRS."""
        need = self.weight > 0
        per_cell = pd.Series(self.weight[need]).groupby(self.cell[need]).sum()
        cells = per_cell.index.to_numpy()
        rows, cols = np.divmod(cells, self.grid.shape[1])
        t = self.grid.transform
        x = t.c + (cols + 0.5) * t.a
        y = t.f + (rows + 0.5) * t.e
        return gpd.GeoDataFrame({"people": per_cell.to_numpy()},
                                geometry=gpd.points_from_xy(x, y), crs=self.grid.crs)

    def need_cells(self) -> np.ndarray:
        """Flat indices of the cells holding people in need."""
        return np.unique(self.cell[self.weight > 0])

    def cover(self, cells: sparse.csr_matrix) -> sparse.csr_matrix:
        """Candidate x pair matrix from a candidate x cell matrix."""
        n_cells = self.grid.shape[0] * self.grid.shape[1]
        to_pair = sparse.csr_matrix(
            (np.ones(len(self.cell)), (self.cell, np.arange(len(self.cell)))),
            shape=(n_cells, len(self.cell)))
        out = (sparse.csr_matrix(cells, dtype=float) @ to_pair).tocsr()
        out.data[:] = 1.0
        return out


def _village_cells(villages: gpd.GeoDataFrame, grid: Grid, pop_grid: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(village row, flat cell index, people) of every village-cell overlap, exact fractions."""
    src = raster_source(pop_grid.astype("float64"), grid.transform, "pop", grid.crs)
    vil = villages[[villages.geometry.name]].to_crs(grid.crs).reset_index(drop=True)
    table = exact_extract(src, vil, ["cell_id", "coverage", "values"], output="pandas")
    vrow, cell, people = [], [], []
    for i, r in enumerate(table.itertuples(index=False)):
        ids, frac, vals = (np.asarray(r[0]), np.asarray(r[1]), np.asarray(r[2]))
        vrow.append(np.full(len(ids), i))
        cell.append(ids.astype(np.int64))
        people.append(frac * np.nan_to_num(vals))
    if not vrow:
        return np.array([], dtype=int), np.array([], dtype=np.int64), np.array([])
    return np.concatenate(vrow), np.concatenate(cell), np.concatenate(people)


def demand_pairs(
    classified: gpd.GeoDataFrame,
    existing: CoverageSurfaces,
    *,
    population: Raster | None,
    profile: Profile,
    village_weight: np.ndarray | None = None,
) -> Demand:
    """Pairs of the classified villages on the existing coverage's grid.

    Each village's pairs add up to its classified ``population`` (the raster, or an even
    spread without one, only shares it out).
    """
    grid = existing.grid
    pop_grid = (to_grid(population, grid, resampling="sum") if population is not None
                else np.ones(grid.shape))
    vrow, cell, people = _village_cells(classified, grid, pop_grid)
    totals = np.bincount(vrow, weights=people, minlength=len(classified))
    target = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    target = np.where(np.isnan(target), totals, target)
    # A village whose raster holds no people spreads its population evenly over its cells.
    area = np.bincount(vrow, weights=(people > -1).astype(float), minlength=len(classified))
    empty = (totals <= 0) & (target > 0)
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    people = np.where(empty[vrow], target[vrow] / np.maximum(area[vrow], 1),
                      people * scale[vrow])
    thresholds = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    covered_now = (existing.margin(thresholds) >= 0).ravel()[cell]
    in_need = (classified["class"] == "unavailable").to_numpy()[vrow]
    weight = np.where(in_need & ~covered_now, people, 0.0)
    if village_weight is not None:
        weight = weight * np.asarray(village_weight, dtype=float)[vrow]
    return Demand(vrow, cell, people, weight, grid)


def build_problem(
    classified: gpd.GeoDataFrame,
    existing: CoverageSurfaces,
    candidate_surfaces: list[np.ndarray] | sparse.spmatrix,
    costs: np.ndarray,
    *,
    population: Raster | None,
    profile: Profile,
    village_weight: np.ndarray | None = None,
) -> CoverProblem:
    """Turn coverage into the covering arrays.

    ``candidate_surfaces`` is either candidate i's level (dBm) on ``existing.grid`` for each
    i (covered where it reaches the 4G outdoor threshold), or the candidate x cell matrix of
    :func:`~coverage.plan.candidate_cells`.
    """
    demand = demand_pairs(classified, existing, population=population, profile=profile,
                          village_weight=village_weight)
    if sparse.issparse(candidate_surfaces):
        cells = sparse.csr_matrix(candidate_surfaces)
    else:
        n_cells = existing.grid.shape[0] * existing.grid.shape[1]
        rows, cols = [], []
        for i, level in enumerate(candidate_surfaces):
            flat = np.flatnonzero(np.nan_to_num(level, nan=-999).ravel()
                                  >= profile.outdoor_dbm("4G"))
            rows.append(np.full(flat.size, i))
            cols.append(flat)
        r = np.concatenate(rows) if rows else np.array([], dtype=int)
        c = np.concatenate(cols) if cols else np.array([], dtype=int)
        cells = sparse.csr_matrix((np.ones(r.size), (r, c)),
                                  shape=(len(candidate_surfaces), n_cells))
    return CoverProblem(demand.cover(cells), demand.weight, np.asarray(costs, dtype=float),
                        demand.village)
