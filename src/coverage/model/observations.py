"""Measurements placed on the model's grid: the tests' cells and the per-layer observations.

The first stage of :func:`coverage.model.fuse_measurements`: the tests' coordinates in the
grid's CRS (:func:`measurement_xy`), their cells (:class:`TestCells`), their aggregates on
the grid (:func:`aggregate_measurements`), and one row per (test, layer) a test informs
(:func:`layer_observations`), which the calibration (:mod:`coverage.model.calibration`),
the kriging (:mod:`coverage.model.kriging`) and their cross-validation
(:mod:`coverage.model.crossval`) read.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from ..errors import InputError
from .cells import values_at
from .grid import CoverageSurfaces, Grid, points_xy

__all__ = ["FALLBACK_BELOW", "NO_SERVICE_DBM", "Key", "TestCells", "aggregate_measurements",
           "aggregate_tests", "layer_observations", "measurement_xy"]

#: Level a no-service test stands for (at most), dBm: about where handsets lose the network.
NO_SERVICE_DBM = {"2G": -108.0, "3G": -117.0, "4G": -122.0, "5G": -122.0}

#: Technologies a handset falls back to when its operator's higher one is too weak to camp
#: on: a test of an operator on 3G or 2G says that operator's 4G there is below where handsets
#: leave it (:data:`NO_SERVICE_DBM`), a censored observation like a no-service test. 5G is left
#: out: many handsets cannot use it, so a 4G test says nothing about 5G.
FALLBACK_BELOW = {"4G": ("3G", "2G"), "3G": ("2G",)}

Key = tuple[str, str]


def measurement_xy(measurements: pd.DataFrame, crs) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (x, y) in ``crs`` of the tests of a GeoDataFrame or of a plain table.

    A GeoDataFrame (any CRS) gives its points' coordinates (:func:`points_xy`); a plain
    DataFrame gives its ``lon``/``lat`` columns (degrees, EPSG:4326), the form of the
    contract's CSV. Ten million tests as two coordinate columns take 160 MB; as shapely
    points, about 1 GB more.

    Raises
    ------
    InputError
        A plain table without ``lon`` and ``lat``.
    """
    if isinstance(measurements, gpd.GeoDataFrame):
        return points_xy(measurements.geometry, crs)
    if not {"lon", "lat"} <= set(measurements.columns):
        raise InputError("measurements: a table without geometry needs 'lon' and 'lat' "
                         "columns (degrees, EPSG:4326); got columns "
                         f"{list(measurements.columns)[:12]}; read the file with "
                         "coverage.io.read_measurements or add the two columns")
    from pyproj import Transformer

    lon = pd.to_numeric(measurements["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(measurements["lat"], errors="coerce").to_numpy(dtype=float)
    if CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        return lon, lat
    return Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)


def aggregate_measurements(measurements: gpd.GeoDataFrame | None, grid: Grid, *,
                           xy: tuple[np.ndarray, np.ndarray] | None = None
                           ) -> dict[str, np.ndarray]:
    """Point tests and Ookla tiles on the grid: tests, speeds, latency, no-service share.

    Each observation counts with its ``weight`` (1 for a point test, the tile's ``tests``
    for an Ookla tile, placed at the tile's centre): the grids count tests and average
    over them, as Ookla's own averages do (the classification weighs a tile by its
    ``testers`` instead, :mod:`coverage.classify.evidence`). Returns float32 arrays of
    ``grid.shape``: ``tests`` (0 where none), and weighted means ``download_mbps``,
    ``upload_mbps``, ``latency_ms`` and ``no_service_share`` (NaN where no test says).
    """
    if measurements is None or measurements.empty:
        out = {"tests": np.zeros(grid.shape, "float32")}
        for name in ("download_mbps", "upload_mbps", "latency_ms", "no_service_share"):
            out[name] = np.full(grid.shape, np.nan, "float32")
        return out
    return aggregate_tests(measurements, grid, TestCells.locate(measurements, grid, xy=xy))


@dataclass(frozen=True)
class TestCells:
    """Tests placed on a grid once: their cells, and those cells numbered compactly.

    Attributes
    ----------
    inside : ndarray of bool
        Tests on the grid.
    cell : ndarray of int64
        Flat grid cell of each test on the grid (``inside`` rows, in order).
    ucell : ndarray of int64
        The distinct cells with tests, in (row, col) order.
    code : ndarray of int64
        Position in ``ucell`` of each test on the grid: sums per cell go to a compact
        :func:`numpy.bincount` of the cells with tests, not of the whole grid.
    """

    inside: np.ndarray
    cell: np.ndarray
    ucell: np.ndarray
    code: np.ndarray

    @classmethod
    def locate(cls, measurements: pd.DataFrame, grid: Grid, *,
               xy: tuple[np.ndarray, np.ndarray] | None = None) -> TestCells:
        """Place the tests (coordinates ``xy`` in the grid's CRS when given)."""
        x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
        row, col, inside = grid.index(x, y)
        cell = (row * grid.shape[1] + col)
        cell = cell if inside.all() else cell[inside]
        del row, col
        ucell, code = _unique_cells(cell.astype(np.int64, copy=False),
                                    grid.shape[0] * grid.shape[1])
        return cls(inside, cell, ucell, code)


def aggregate_tests(measurements: pd.DataFrame, grid: Grid, cells: TestCells
               ) -> dict[str, np.ndarray]:
    """:func:`aggregate_measurements` of tests already placed."""
    inside = cells.inside
    every = bool(inside.all())  # then no copy of the rows: 10 million of them are big

    def column(name: str, fill: float) -> np.ndarray:
        if name not in measurements.columns:
            return np.full(int(inside.sum()), fill)
        v = pd.to_numeric(measurements[name], errors="coerce").to_numpy(dtype=float)
        return v if every else v[inside]

    def on_grid(values: np.ndarray, fill: float) -> np.ndarray:
        """Per measured cell values onto the grid (float32, ``fill`` elsewhere)."""
        out = np.full(grid.shape, fill, "float32")
        out.reshape(-1)[cells.ucell] = values
        return out

    k = len(cells.ucell)
    code = cells.code
    weight = column("weight", 1.0)
    weight = np.where(np.isnan(weight), 1.0, weight)
    out = {"tests": on_grid(np.bincount(code, weights=weight, minlength=k), 0.0)}
    names = ("download_mbps", "upload_mbps", "latency_ms", "no_service_share")
    values = {name: column(name, np.nan) for name in names[:3]}
    if "tech" in measurements.columns:  # integer codes: no comparison of 10M strings
        tcode, uniques = pd.factorize(measurements["tech"])
        tcode = tcode if every else tcode[inside]
        none = np.r_[np.asarray(uniques, dtype=object) == "none", False][tcode]
        known = tcode >= 0  # Ookla tiles: tech unknown
    else:
        none = known = np.zeros(len(code), dtype=bool)
    values["no_service_share"] = np.where(known, none.astype(float), np.nan)
    for name, v in values.items():
        ok = np.isfinite(v)
        num = np.bincount(code[ok], weights=(v * weight)[ok], minlength=k)
        den = np.bincount(code[ok], weights=weight[ok], minlength=k)
        out[name] = on_grid(np.divide(num, den, out=np.full(k, np.nan), where=den > 0),
                            np.nan)
    return out


def layer_observations(surfaces: CoverageSurfaces, measurements: gpd.GeoDataFrame,
                  techs: tuple[str, ...], xy: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> pd.DataFrame:
    """One row per (test, layer) it informs: observed level, prediction, server distance.

    ``censored`` rows come from no-service tests: the level there is at most ``observed``.
    A lean table (a national run has millions of rows): ``operator`` and ``tech``
    categorical, ``row``/``col`` 32-bit, ``pred`` and ``dist_m`` float32 as the model holds
    them (read them with ``to_numpy(float)``: the same values as float64), ``x``, ``y`` and
    ``observed`` float64.
    """
    grid = surfaces.grid
    x, y = xy if xy is not None else measurement_xy(measurements, grid.crs)
    row, col, inside = grid.index(x, y)
    cols = grid.shape[1]
    # integer codes of the labels: one comparison of small integers per layer
    tcode, tnames = pd.factorize(measurements["tech"].astype(object))
    ocode, onames = pd.factorize(measurements["operator"].astype(object))
    tnames, onames = [str(t) for t in tnames], [str(o) for o in onames]

    def code_of(names: list[str], *wanted: str) -> list[int]:
        return [i for i, name in enumerate(names) if name in wanted]

    rsrp = pd.to_numeric(measurements["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)
    keys = [k for k in sorted(surfaces.layers) if k[1] in techs]
    ops, layer_techs = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _OBS_COLUMNS}
    for lop, ltech in keys:
        layer, dist = surfaces.layers[lop, ltech], surfaces.distance_m.get((lop, ltech))
        is_op = np.isin(ocode, code_of(onames, lop))
        measured = inside & np.isin(tcode, code_of(tnames, ltech)) & is_op & np.isfinite(rsrp)
        none = inside & ((np.isin(tcode, code_of(tnames, "none")) & (is_op | (ocode < 0)))
                         | (is_op & np.isin(tcode, code_of(tnames,
                                                           *FALLBACK_BELOW.get(ltech, ())))))
        for sel, censored in ((measured, False), (none, True)):
            idx = np.flatnonzero(sel)
            if not idx.size:
                continue
            r, c = row[idx], col[idx]
            pred = layer[r, c]
            observed = (np.minimum(pred.astype(float), NO_SERVICE_DBM[ltech]) if censored
                        else rsrp[idx])
            n = idx.size
            for name, values in (
                    ("operator", np.full(n, ops.index(lop), np.int8)),
                    ("tech", np.full(n, layer_techs.index(ltech), np.int8)),
                    ("x", x[idx]), ("y", y[idx]), ("row", r.astype(np.int32)),
                    ("col", c.astype(np.int32)), ("observed", observed),
                    ("pred", pred.astype(np.float32)),
                    ("dist_m", (values_at(dist, r * cols + c).astype(np.float32)
                                if dist is not None
                                else np.full(n, np.nan, np.float32))),
                    ("censored", np.full(n, censored))):
                parts[name].append(values)
    dtypes = {"operator": np.int8, "tech": np.int8, "x": float, "y": float,
              "row": np.int32, "col": np.int32, "observed": float, "pred": np.float32,
              "dist_m": np.float32, "censored": bool}
    columns = {}
    for name in _OBS_COLUMNS:  # one column at a time: the pieces go as it is made
        values = (np.concatenate(parts.pop(name)) if parts[name]
                  else np.zeros(0, dtypes[name]))
        if name in ("operator", "tech"):
            values = pd.Categorical.from_codes(
                values, categories=(ops if name == "operator" else layer_techs) or [""])
        columns[name] = values
    return pd.DataFrame(columns, copy=False)  # fresh arrays: no second copy of them


#: The columns of :func:`layer_observations`, in order.
_OBS_COLUMNS = ("operator", "tech", "x", "y", "row", "col", "observed", "pred", "dist_m",
                "censored")


def _unique_cells(cell: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(cell, return_inverse=True)`` for flat cells of a grid of ``size`` cells.

    When the cells are many for the grid (a national run: 10 million tests on 30 million
    cells), a mark per grid cell and a running count replace the sort.
    """
    if size > 8 * len(cell) or size >= 2**31:
        return np.unique(cell, return_inverse=True)
    mark = np.zeros(size, dtype=bool)
    mark[cell] = True
    ucell = np.flatnonzero(mark)
    rank = np.cumsum(mark, dtype=np.int32)
    del mark
    return ucell, (rank[cell] - 1).astype(np.int64)
