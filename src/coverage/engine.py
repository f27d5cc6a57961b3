"""Where the parallel stages run: on this machine (default) or on a Dask cluster.

Three stages split into independent pieces whose results combine exactly:

- **coverage modelling by tiles** (:func:`predict_coverage_tiled`): the grid is cut into
  square tiles; each tile is predicted from the transmitters whose useful radius reaches it
  (the halo: a site up to its useful radius outside the tile still lights it), over the
  same terrain grid an untiled run uses, and the tiles are put back in place. Tiles do not
  overlap, so "merge by max" is a placement, and every cell gets the value an untiled
  :func:`coverage.model.predict_coverage` gives it (the tests check equality);
- **measurement aggregation by chunks** (:func:`aggregate_measurement_chunks`,
  :func:`compact_measurements`): each chunk of rows (from :func:`coverage.io.iter_measurements`)
  becomes per-cell sums of weights and weighted values, and sums add up;
- **zonal statistics by chunks of villages** (:func:`coverage.classify.zonal.zonal_shares`
  with an engine): exact cell fractions are per polygon, so chunks of villages give the
  same figures as one pass.

:class:`Engine` ``("local")`` runs the pieces one after the other in this process (the
model's own threads still use ``ModelParams.workers``); ``Engine("dask", scheduler=ADDRESS)``
sends them to a ``dask.distributed`` scheduler (``tcp://host:8786``), or to a local cluster
started on demand when no address is given. Large shared inputs (the terrain grid, the
layers being summed per village) are scattered to the workers once, not once per task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer
from rasterio.transform import from_origin

from .errors import CoverageGapError, ParameterError
from .io import Raster
from .model import Clutter, CoverageSurfaces, Grid, points_xy
from .model.predict import (
    ground_on_grid,
    prepare_transmitters,
    terrain_grid,
    transmitter_radii_m,
    within_reach,
)
from .model.predict import predict_coverage as _predict
from .params import ModelParams

__all__ = [
    "ENGINES",
    "Engine",
    "aggregate_measurement_chunks",
    "compact_measurements",
    "engine_from_config",
    "get_engine",
    "measurement_sums",
    "predict_coverage_tiled",
    "tile_windows",
]

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
#: Measured values summed per cell (weighted means), beside the weight ``tests``.
MEASURED = ("download_mbps", "upload_mbps", "latency_ms", "no_service_share")
_CLIENTS: dict[str | None, Any] = {}


@dataclass(frozen=True)
class Engine:
    """How the parallel stages run.

    Attributes
    ----------
    kind : {"local", "dask"}
        ``local``: in this process, piece after piece (the default; results are the
        untiled functions' own). ``dask``: on a ``dask.distributed`` cluster.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://10.0.0.5:8786``); without one the
        ``dask`` engine uses the current client if there is one, else starts a local
        cluster.
    tile_cells : int
        Side of a model tile in grid cells.
    village_chunk : int
        Villages per zonal-statistics task.
    client : distributed.Client, optional
        A client to use as is (notebooks, tests); wins over ``scheduler``.
    processes : int
        Local engine: worker processes for the model's tiles (1: in this process). The
        tiles' per-mast work is Python that holds the GIL, so the model's threads
        (``ModelParams.workers``) do not fill a second core and processes do. Workers
        are forked (Linux and other POSIX systems; elsewhere the tiles run in this
        process) and see the shared inputs without a copy; results do not depend on the
        number.
    """

    kind: str = "local"
    scheduler: str | None = None
    tile_cells: int = 512
    village_chunk: int = 5000
    client: Any = field(default=None, compare=False, repr=False)
    processes: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.kind!r}")
        if self.scheduler is not None and self.kind != "dask":
            raise ValueError("a scheduler address needs the dask engine (--engine dask)")
        if self.tile_cells < 16:
            raise ValueError(f"tile_cells must be at least 16, got {self.tile_cells}")
        if self.village_chunk < 1:
            raise ValueError(f"village_chunk must be at least 1, got {self.village_chunk}")
        if self.processes < 1:
            raise ValueError(f"processes must be at least 1, got {self.processes}")

    @property
    def is_local(self) -> bool:
        """True for the in-process engine."""
        return self.kind == "local"

    def dask_client(self) -> Any:
        """The ``distributed.Client`` the dask engine submits to."""
        if self.client is not None:
            return self.client
        try:
            from distributed import Client, get_client
        except ImportError:
            raise ImportError("the dask engine needs dask and distributed: pip install "
                              "'coverage-gap[dask]'") from None
        if self.scheduler is None:
            try:
                return get_client()
            except ValueError:
                pass
        if self.scheduler not in _CLIENTS:
            try:
                _CLIENTS[self.scheduler] = Client(self.scheduler, timeout="20s")
            except OSError as exc:
                raise CoverageGapError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); start one "
                    "with `dask scheduler` and `dask worker ADDRESS`, or check the address "
                    "and firewall") from None
            log.info("dask engine on %s", _CLIENTS[self.scheduler])
        return _CLIENTS[self.scheduler]

    def close(self) -> None:
        """Close the client this engine opened to its scheduler (not a client given to it)."""
        if self.is_local:
            return
        client = _CLIENTS.pop(self.scheduler, None) if self.client is None else None
        if client is not None:
            client.close()

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        """``[fn(item, **shared) for item in items]``, on this engine, in order.

        ``shared`` values are sent to each Dask worker once (scattered), not per task.
        """
        if self.is_local or len(items) == 0:
            return [fn(item, **shared) for item in items]
        client = self.dask_client()
        futures = {k: client.scatter(v, broadcast=True) for k, v in shared.items()}
        jobs = client.map(fn, list(items), pure=False, **futures)
        return client.gather(jobs)

    def map_stream(self, fn: Callable[..., Any], items: Iterable[Any],
                   combine: Callable[[Any, Any], Any], *, in_flight: int = 4,
                   **shared: Any) -> Any:
        """Fold ``combine`` over ``fn(item)`` for a stream of items, few in memory at once.

        Items (chunks read on the client) are submitted as they come with at most
        ``in_flight`` outstanding, so memory does not grow with the stream's length.
        Returns None for an empty stream.
        """
        acc = None
        if self.is_local:
            for item in items:
                part = fn(item, **shared)
                acc = part if acc is None else combine(acc, part)
            return acc
        from distributed import wait

        client = self.dask_client()
        futures = {k: client.scatter(v, broadcast=True) for k, v in shared.items()}
        pending: list[Any] = []
        for item in items:
            pending.append(client.submit(fn, item, pure=False, **futures))
            if len(pending) >= in_flight:
                done, _ = wait(pending, return_when="FIRST_COMPLETED")
                for f in [f for f in pending if f in done]:
                    part = f.result()
                    acc = part if acc is None else combine(acc, part)
                    pending.remove(f)
        for f in pending:
            part = f.result()
            acc = part if acc is None else combine(acc, part)
        return acc


def get_engine(kind: str | Engine | None = None, *, scheduler: str | None = None,
               **knobs: Any) -> Engine:
    """An :class:`Engine` from the CLI's ``--engine`` and ``--scheduler`` values."""
    if isinstance(kind, Engine):
        return kind
    kind = kind or ("dask" if scheduler else "local")
    return Engine(kind, scheduler=scheduler, **knobs)


#: Keys of a config file's ``[engine]`` table: the settings of :class:`Engine`.
ENGINE_KEYS = tuple(f.name for f in fields(Engine) if f.name != "client")


def engine_from_config(table: Mapping[str, Any] | None, *, where: str = "config"
                       ) -> Engine | None:
    """The engine of a config file's ``[engine]`` table, or None when there is none.

    ``kind = "dask"`` and/or ``scheduler = "tcp://10.0.0.5:8786"`` (a scheduler alone means
    dask), and the ``tile_cells``, ``village_chunk`` and ``processes`` knobs of
    :class:`Engine`. The CLI's ``--engine`` and ``--scheduler`` win over the file.
    """
    if not table:
        return None
    unknown = sorted(set(table) - set(ENGINE_KEYS))
    if unknown:
        raise ParameterError(f"{where}: unknown [engine] key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(ENGINE_KEYS)}")
    knobs = {k: table[k] for k in ENGINE_KEYS if k in table and k not in ("kind", "scheduler")}
    scheduler = table.get("scheduler") or None
    try:
        return get_engine(table.get("kind"), scheduler=scheduler, **knobs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{where}: [engine] {exc}") from None


# --------------------------------------------------------------------------- model tiles
def tile_windows(grid: Grid, tile_cells: int) -> list[tuple[int, int, int, int]]:
    """``(row0, row1, col0, col1)`` of square tiles covering ``grid`` (the last ones smaller)."""
    rows, cols = grid.shape
    return [(r, min(r + tile_cells, rows), c, min(c + tile_cells, cols))
            for r in range(0, rows, tile_cells) for c in range(0, cols, tile_cells)]


def _tile_grid(grid: Grid, window: tuple[int, int, int, int]) -> Grid:
    r0, r1, c0, c1 = window
    res = grid.resolution_m
    return Grid(from_origin(grid.transform.c + c0 * res, grid.transform.f - r0 * res, res,
                            res), (r1 - r0, c1 - c0), grid.crs)


def _reach(tx: pd.DataFrame, params: ModelParams, *, flat: bool = False) -> pd.DataFrame:
    """Radius per transmitter and the largest at its position (the halo it needs).

    ``flat`` (no DEM): the exact radius of :func:`coverage.model.predict.reach_radii_m`,
    as :func:`coverage.model.predict_coverage` uses without a DEM.
    """
    out = tx.assign(radius_m=transmitter_radii_m(tx, params, flat=flat))
    pos = out.groupby([out.x.round(1), out.y.round(1)], sort=False)["radius_m"]
    out["reach_m"] = pos.transform("max").to_numpy()
    return out


def _predict_tile(window: tuple[int, int, int, int], *, towers: gpd.GeoDataFrame,
                  reach: pd.DataFrame, grid: Grid, terrain: tuple[np.ndarray, Grid] | None,
                  params: ModelParams, clutter: Clutter | None = None
                  ) -> tuple[tuple[int, int, int, int], CoverageSurfaces]:
    tile = _tile_grid(grid, window)
    left, bottom, right, top = tile.bounds
    gap = np.hypot(np.maximum(np.maximum(left - reach.x, reach.x - right), 0.0),
                   np.maximum(np.maximum(bottom - reach.y, reach.y - top), 0.0))
    near = (gap <= reach.reach_m).to_numpy()
    surfaces = _predict(towers.iloc[np.flatnonzero(near)], tile, params=params,
                        terrain=terrain, clutter=clutter)
    surfaces.dem = None  # the caller has the whole grid's
    return window, surfaces


def predict_coverage_tiled(
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    dem: Raster | None = None,
    params: ModelParams | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    clutter: Clutter | None = None,
) -> CoverageSurfaces:
    """:func:`coverage.model.predict_coverage`, tile by tile on an engine.

    Each tile of ``engine.tile_cells`` cells is predicted from the transmitters whose
    useful radius reaches it (all the transmitters of a mast position go together, so a
    mast is swept with the same rays as in an untiled run), over the terrain grid of the
    whole run; results are equal to the untiled function's cell for cell (where two
    transmitters give the same level to the bit, the nearer one's distance is kept).

    Parameters
    ----------
    towers, grid, dem, params, progress, clutter
        As for :func:`coverage.model.predict_coverage` (``progress`` counts tiles).
    engine : Engine, optional
        Where the tiles run (local by default).

    Returns
    -------
    CoverageSurfaces
        The whole grid's layers and server distances.
    """
    params = params or ModelParams()
    engine = engine or Engine()
    windows = tile_windows(grid, engine.tile_cells)
    if engine.is_local and len(windows) == 1:  # one tile: the model itself, masts counted
        return _predict(towers, grid, dem=dem, params=params, progress=progress,
                        clutter=clutter)
    flat = dem is None
    all_tx = prepare_transmitters(towers, grid.crs, params)
    tx = within_reach(all_tx, grid, params, flat=flat)
    terrain = terrain_grid(dem, grid, tx, params.terrain_step_m) if dem is not None else None
    out = CoverageSurfaces(grid, params=params)
    if terrain is not None:
        out.dem = ground_on_grid(*terrain, grid)
    if tx.empty:
        return out
    # the rows of ``towers`` that are transmitters reaching the grid, with their reach
    reach = _reach(all_tx, params, flat=flat)
    log.info("modelling %d tiles of up to %d x %d cells on the %s engine", len(windows),
             engine.tile_cells, engine.tile_cells, engine.kind)
    plain = towers.reset_index(drop=True)
    shared = {"towers": plain, "reach": reach[["x", "y", "reach_m"]], "grid": grid,
              "terrain": terrain, "params": params, "clutter": clutter}
    results = (_forked_map(_predict_tile, windows, engine.processes, shared)
               if engine.is_local and engine.processes > 1 and len(windows) > 1 else
               engine.map(_predict_tile, windows, **shared))
    for done, (window, part) in enumerate(results, start=1):
        r0, r1, c0, c1 = window
        for key, layer in part.layers.items():
            full = out.layers.setdefault(key, np.full(grid.shape, np.nan, dtype="float32"))
            full[r0:r1, c0:c1] = layer
            far = out.distance_m.setdefault(key, np.full(grid.shape, np.nan,
                                                         dtype="float32"))
            far[r0:r1, c0:c1] = part.distance_m[key]
        if progress is not None:
            progress(done, len(windows))
    return out


#: What forked workers run: (function, shared keyword arguments), set before the fork.
_FORKED: tuple[Callable[..., Any], dict[str, Any]] | None = None


def _forked_call(item: Any) -> Any:
    fn, shared = _FORKED
    return fn(item, **shared)


def _forked_map(fn: Callable[..., Any], items: Sequence[Any], processes: int,
                shared: dict[str, Any]) -> Iterator[Any]:
    """``fn(item, **shared)`` for each item in ``processes`` forked workers, in order.

    The workers inherit ``shared`` from this process (copy on write), so only the items
    and the results are pickled. Where ``fork`` is unavailable or unsafe (Windows; macOS,
    whose system libraries do not survive it) the items run here, one after the other.
    """
    import multiprocessing as mp
    import sys

    if sys.platform == "darwin" or "fork" not in mp.get_all_start_methods():
        yield from (fn(item, **shared) for item in items)
        return
    global _FORKED
    _FORKED = (fn, shared)
    try:
        with mp.get_context("fork").Pool(min(processes, len(items))) as pool:
            yield from pool.imap(_forked_call, items, chunksize=1)
    finally:
        _FORKED = None


# --------------------------------------------------------------------------- measurements
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
#: Columns of :class:`_Compacted` sums: the weight, then num and den of each value.
_COMPACT_SUMS = ("weight", *(f"{n}:{s}" for n in _COMPACT_VALUES for s in ("num", "den")))


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
    for k, name in enumerate(_COMPACT_VALUES):
        v = pd.to_numeric(m[name], errors="coerce").to_numpy(dtype=float)[take]
        ok = np.isfinite(v)
        sums[1 + 2 * k] = np.where(ok, v * w, 0.0)
        sums[2 + 2 * k] = np.where(ok, w, 0.0)
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
                         engine: Engine | None = None) -> gpd.GeoDataFrame:
    """One observation per (grid cell, operator, technology, source) from a stream of chunks.

    The row stands for all the tests of its cell: ``weight`` is their summed weight and
    ``rsrp_dbm``, ``download_mbps``, ``upload_mbps``, ``latency_ms`` their weighted means;
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
    x, y = grid.centres()
    out = pd.DataFrame({
        "tech": pd.Series(labels["tech"], dtype=object).replace("", None).to_numpy(),
        "operator": pd.Series(labels["operator"], dtype=object).replace("", None).to_numpy()})
    for name in _COMPACT_VALUES:
        num, den = sums[f"{name}:num"], sums[f"{name}:den"]
        out[name] = np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)
    out["timestamp"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["weight"] = sums["weight"]
    out["source"] = labels["source"]
    # the cell centres in EPSG:4326: one transform of coordinates, then the points (what
    # ``to_crs`` gives, without building every point twice)
    lon, lat = Transformer.from_crs(grid.crs, 4326, always_xy=True).transform(
        x.ravel()[cell], y.ravel()[cell])
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def with_workers(params: ModelParams, workers: int) -> ModelParams:
    """``params`` with another thread count (results do not depend on it)."""
    return replace(params, workers=max(1, int(workers)))


def chunks_of(n: int, size: int) -> list[slice]:
    """Slices of ``range(n)`` of at most ``size`` items."""
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))] or []

