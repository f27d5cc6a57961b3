"""Measurements reduced by chunks: per-cell sums and one row per cell and label.

A measurement file of tens of millions of rows is read in chunks
(:func:`coverage.io.iter_measurements`, :func:`coverage.io.iter_measurement_columns`) and
each chunk reduced to sums that add up, so memory grows with the cells that hold tests, not
with the tests: :func:`aggregate_measurement_chunks` (per-cell weighted means) and
:func:`compact_measurements` (one observation per cell, operator, technology and source).
The chunks run through an engine (:class:`coverage.engine.Engine`), here or on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from ..engine import Engine

if TYPE_CHECKING:
    from ..model import Grid

__all__ = ["MEASURED", "aggregate_measurement_chunks", "compact_measurements",
           "measurement_sums", "points_xy"]

#: Measured values summed per cell (weighted means), beside the weight ``tests``.
MEASURED = ("download_mbps", "upload_mbps", "latency_ms", "no_service_share")


def points_xy(points: gpd.GeoSeries, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (x, y) of points in ``crs``, without building new geometries.

    Ten times faster than ``to_crs`` on millions of points (``to_crs`` rebuilds every
    geometry); the same numbers, by the same pyproj transformation.
    """
    arr = points.to_numpy()
    x, y = shapely.get_x(arr), shapely.get_y(arr)
    if points.crs is None or CRS.from_user_input(points.crs).equals(CRS.from_user_input(crs)):
        return x, y
    t = Transformer.from_crs(points.crs, crs, always_xy=True)
    return t.transform(x, y)


def measurement_sums(chunk: gpd.GeoDataFrame, *, grid: Grid) -> dict[str, np.ndarray]:
    """Per-cell sums of one chunk of observations (flat float64 arrays of the grid's size).

    ``tests``: summed weights; ``{name}:num`` / ``{name}:den``: weighted sums of each
    measured value and of the weights of the rows that have it. Sums of chunks add up.
    """
    size = grid.shape[0] * grid.shape[1]
    row, col, inside = grid.index(*_chunk_xy(chunk, grid.crs))
    m = _values(chunk)[inside]
    flat = (row[inside] * grid.shape[1] + col[inside]).astype(np.int64)
    weight = (pd.to_numeric(m["weight"], errors="coerce").fillna(1.0).to_numpy()
              if "weight" in m.columns else np.ones(len(m)))
    out = {"tests": np.bincount(flat, weights=weight, minlength=size)}
    tech = m["tech"].astype(object).to_numpy() if "tech" in m.columns else np.full(len(m), None)
    values = {name: pd.to_numeric(m[name], errors="coerce").to_numpy(dtype=float)
              if name in m.columns else np.full(len(m), np.nan) for name in MEASURED[:3]}
    known = np.array([t is not None and t == t for t in tech], dtype=bool)
    values["no_service_share"] = np.where(known, (tech == "none").astype(float), np.nan)
    for name, v in values.items():
        ok = np.isfinite(v)
        out[f"{name}:num"] = np.bincount(flat[ok], weights=(v * weight)[ok], minlength=size)
        out[f"{name}:den"] = np.bincount(flat[ok], weights=weight[ok], minlength=size)
    return out


def _add_sums(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for k, v in b.items():
        a[k] += v
    return a


def aggregate_measurement_chunks(chunks: Iterable[gpd.GeoDataFrame], grid: Grid, *,
                                 engine: Engine | None = None) -> dict[str, np.ndarray]:
    """:func:`coverage.model.aggregate_measurements` over a stream of chunks.

    Memory holds a few chunks and the per-cell sums, whatever the number of rows. Returns
    the same float32 grids: ``tests`` and the weighted means ``download_mbps``,
    ``upload_mbps``, ``latency_ms``, ``no_service_share`` (NaN where no test says).
    """
    engine = engine or Engine()
    sums = engine.map_stream(measurement_sums, chunks, _add_sums, grid=grid)
    out = {"tests": np.zeros(grid.shape, "float32")}
    for name in MEASURED:
        out[name] = np.full(grid.shape, np.nan, "float32")
    if sums is None:
        return out
    out["tests"] = sums["tests"].reshape(grid.shape).astype("float32")
    for name in MEASURED:
        num, den = sums[f"{name}:num"], sums[f"{name}:den"]
        mean = np.divide(num, den, out=np.full(num.size, np.nan), where=den > 0)
        out[name] = mean.reshape(grid.shape).astype("float32")
    return out


_COMPACT_VALUES = ("rsrp_dbm", "download_mbps", "upload_mbps", "latency_ms")
_COMPACT_LABELS = ("operator", "tech", "source")
#: Columns of :class:`_Compacted` sums: the weight and the testers, then num and den of
#: each value.
_COMPACT_SUMS = ("weight", "testers",
                 *(f"{n}:{s}" for n in _COMPACT_VALUES for s in ("num", "den")))


def _chunk_xy(chunk: pd.DataFrame, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a chunk in ``crs``: its points, or its ``lon``/``lat`` columns."""
    if isinstance(chunk, gpd.GeoDataFrame):
        return points_xy(chunk.geometry, crs)
    t = Transformer.from_crs(4326, crs, always_xy=True)
    return t.transform(chunk["lon"].to_numpy(dtype=float), chunk["lat"].to_numpy(dtype=float))


def _values(chunk: pd.DataFrame) -> pd.DataFrame:
    """The chunk's attributes, without its geometry (a view where it has none)."""
    if isinstance(chunk, gpd.GeoDataFrame):
        return pd.DataFrame(chunk.drop(columns=chunk.geometry.name))
    return chunk


@dataclass(frozen=True)
class _Compacted:
    """Sums per (cell, label group) in order of first appearance.

    ``cell``: flat grid index per row; ``group``: row of ``labels`` (the distinct
    operator, technology and source triples, ``""`` for none); ``sums``: one row per
    name of ``_COMPACT_SUMS``, one column per entry of ``cell``. The first ``reduced``
    entries are distinct; entries after them (parts added since) may repeat a key until
    the next :meth:`reduce`.
    """

    cell: np.ndarray
    group: np.ndarray
    labels: pd.DataFrame
    sums: np.ndarray
    reduced: int = -1

    @property
    def done(self) -> bool:
        """True when every entry's key is distinct."""
        return self.reduced == len(self.cell)

    @staticmethod
    def reduce(cell: np.ndarray, group: np.ndarray, labels: pd.DataFrame,
               sums: np.ndarray) -> _Compacted:
        """One row per distinct (cell, group), in the order each first appears."""
        size = max(len(labels), 1)
        # factorize hashes: keys in the order of first appearance, as groupby(sort=False)
        codes, keys = pd.factorize(cell * size + group)
        n = len(keys)
        out = np.empty((sums.shape[0], n))
        for j, row in enumerate(sums):
            out[j] = np.bincount(codes, weights=row, minlength=n)
        return _Compacted(keys // size, keys % size, labels, out, n)


def _label_codes(values: pd.Series, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and labels of ``values[take]``, a missing label and ``""`` both as ``""``.

    Factorized in the column's own type (Arrow text, categories or objects), without a
    Python object per row.
    """
    codes, uniques = pd.factorize(values.iloc[take] if len(take) < len(values) else values)
    labels = np.asarray(uniques, dtype=object)
    missing = codes < 0
    if missing.any():
        empty = np.flatnonzero(labels == "")
        if not len(empty):
            labels, empty = np.append(labels, ""), [len(labels)]
        codes = np.where(missing, empty[0], codes)
    return codes, labels


def _compact_chunk(chunk: pd.DataFrame, *, grid: Grid) -> _Compacted:
    row, col, inside = grid.index(*_chunk_xy(chunk, grid.crs))
    take = np.flatnonzero(inside)
    m = _values(chunk)
    cell = (row[take] * grid.shape[1] + col[take]).astype(np.int64)
    # one integer per distinct (operator, tech, source) triple, none as ""
    codes = [_label_codes(m[name], take) for name in _COMPACT_LABELS]
    combo = np.zeros(len(take), dtype=np.int64)
    for c, u in codes:
        combo = combo * max(len(u), 1) + c
    group = pd.factorize(combo)[0].astype(np.int64)
    first = np.unique(group, return_index=True)[1]
    labels = pd.DataFrame({name: np.asarray(u, dtype=object)[c[first]]
                           for name, (c, u) in zip(_COMPACT_LABELS, codes, strict=True)})
    w = pd.to_numeric(m["weight"], errors="coerce").fillna(1.0).to_numpy()[take]
    sums = np.empty((len(_COMPACT_SUMS), len(take)))
    sums[0] = w
    # an Ookla tile's testers (its devices); a row without them, as many as its tests
    sums[1] = (pd.to_numeric(m["testers"], errors="coerce").to_numpy()[take]
               if "testers" in m.columns else w)
    np.copyto(sums[1], w, where=np.isnan(sums[1]))
    for k, name in enumerate(_COMPACT_VALUES):
        v = pd.to_numeric(m[name], errors="coerce").to_numpy(dtype=float)[take]
        ok = np.isfinite(v)
        sums[2 + 2 * k] = np.where(ok, v * w, 0.0)
        sums[3 + 2 * k] = np.where(ok, w, 0.0)
    return _Compacted.reduce(cell, group, labels, sums)


def _add_compact(a: _Compacted, b: _Compacted) -> _Compacted:
    # the union of both parts' label triples (a handful), then each part's groups in it
    union: dict[tuple, int] = {}
    renumber = []
    for part in (a, b):
        triples = zip(*(part.labels[n] for n in _COMPACT_LABELS), strict=True)
        renumber.append(np.array([union.setdefault(t, len(union)) for t in triples],
                                 dtype=np.int64))
    labels = pd.DataFrame(list(union), columns=list(_COMPACT_LABELS), dtype=object)
    group = np.concatenate([renumber[0][a.group], renumber[1][b.group]])
    cell, sums = np.concatenate([a.cell, b.cell]), np.hstack([a.sums, b.sums])
    # reduced again once the rows added since outnumber the distinct ones (each row is
    # reduced a few times, not once per chunk; memory stays within twice the result)
    if len(cell) > 2 * a.reduced:
        return _Compacted.reduce(cell, group, labels, sums)
    return _Compacted(cell, group, labels, sums, a.reduced)


def compact_measurements(chunks: Iterable[pd.DataFrame], grid: Grid, *,
                         engine: Engine | None = None,
                         points: bool = True) -> gpd.GeoDataFrame | pd.DataFrame:
    """One observation per (grid cell, operator, technology, source) from a stream of chunks.

    The row stands for all the tests of its cell: ``weight`` is their summed weight,
    ``testers`` their summed testers (:func:`coverage.io.read_measurements`; a row without
    them counts its weight) and ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``,
    ``latency_ms`` their weighted means;
    it sits at the cell's centre (EPSG:4326). Memory grows with the cells that hold tests,
    not with the tests, so tens of millions of rows feed
    :func:`coverage.classify.classify_villages` in the schema of
    :func:`coverage.io.read_measurements`. What is lost: a village's median speed becomes
    the weighted median of its cells' means, and devices and timestamps are dropped (so
    the evidence rules on devices and time spread are not applied); tests outside the grid
    are dropped.

    ``chunks`` are GeoDataFrames (:func:`coverage.io.iter_measurements`) or, faster (no
    point per row), frames with ``lon``/``lat`` columns in EPSG:4326
    (:func:`coverage.io.iter_measurement_columns`); the result is the same. Each chunk is
    reduced with integer keys (the flat cell index and a code per distinct operator,
    technology and source) and the parts are summed in turn; rows come in the order their
    cell and labels first appear in the stream.

    ``points`` False returns a plain DataFrame with ``lon``/``lat`` columns instead of
    point geometries (the classification and fusion take either,
    :func:`coverage.model.measurement_xy`): ten million shapely points take about 1 GB.
    """
    engine = engine or Engine()
    part = engine.map_stream(_compact_chunk, chunks, _add_compact, grid=grid)
    if part is None:
        part = _Compacted(np.zeros(0, np.int64), np.zeros(0, np.int64),
                          pd.DataFrame({n: pd.Series(dtype=object) for n in _COMPACT_LABELS}),
                          np.zeros((len(_COMPACT_SUMS), 0)), 0)
    if not part.done:
        part = _Compacted.reduce(part.cell, part.group, part.labels, part.sums)
    cell = part.cell
    sums = dict(zip(_COMPACT_SUMS, part.sums, strict=True))
    labels = {n: part.labels[n].to_numpy(dtype=object)[part.group] for n in _COMPACT_LABELS}
    out = pd.DataFrame({
        "tech": pd.Series(labels["tech"], dtype=object).replace("", None).to_numpy(),
        "operator": pd.Series(labels["operator"], dtype=object).replace("", None).to_numpy()})
    for name in _COMPACT_VALUES:
        num, den = sums[f"{name}:num"], sums[f"{name}:den"]
        out[name] = np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)
    out["timestamp"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["weight"] = sums["weight"]
    out["source"] = labels["source"]
    out["testers"] = sums["testers"]
    # the cell centres in EPSG:4326: one transform of coordinates, then the points (what
    # ``to_crs`` gives, without building every point twice); the centres of the cells
    # with tests only, as ``grid.centres()`` gives them (two float64 copies of a national
    # 100 m grid are 2 GB)
    row, col = np.divmod(cell, grid.shape[1])
    x = grid.transform.c + (col + 0.5) * grid.transform.a
    y = grid.transform.f + (row + 0.5) * grid.transform.e
    lon, lat = Transformer.from_crs(grid.crs, 4326, always_xy=True).transform(x, y)
    if not points:
        return out.assign(lon=lon, lat=lat)
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(lon, lat), crs=4326)
