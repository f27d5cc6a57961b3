"""Where the parallel stages run: the executor every stage goes through.

Like rasterio's ``Env``, an engine is a context, not an if/else: every stage takes one
(in this process by default) and runs its independent pieces through :meth:`Engine.map`
or :meth:`Engine.map_stream`, whose results combine exactly whatever runs them:

- **coverage modelling by tiles** (:func:`coverage.model.predict_coverage_tiled`);
- **measurement aggregation and compaction by chunks**
  (:func:`coverage.io.compact_measurements`, :func:`coverage.io.aggregate_measurement_chunks`);
- **zonal statistics by chunks of villages** (:func:`coverage.classify.zonal.zonal_shares`);
- **candidate coverage by batches** (:func:`coverage.plan.candidate_cells`).

:class:`Engine` ``("local")`` runs the pieces one after the other in this process, or in
``processes`` forked workers (the model's own threads still use ``ModelParams.workers``);
``Engine("dask", scheduler=ADDRESS)`` sends them to a ``dask.distributed`` scheduler
(``tcp://host:8786``), or to a local cluster started on demand when no address is given.
Large shared inputs (the terrain grid, the layers being summed per village) are scattered
to the workers once, not once per task. The client an engine opens is its own, closed by
:meth:`Engine.close`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ._optional import import_optional
from .errors import CoverageGapError, ParameterError, did_you_mean

__all__ = [
    "ENGINES",
    "ENGINE_KEYS",
    "Engine",
    "engine_from_config",
    "get_engine",
    "threads_for",
]

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
_DASK_FEATURE = "the dask engine (--engine dask, --scheduler, [engine] kind = \"dask\")"


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
    #: The client this engine opened (none until the first Dask task), closed by close().
    _opened: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.kind!r}"
                             f"{did_you_mean(self.kind, ENGINES)}")
        if self.scheduler is not None and self.kind != "dask":
            raise ValueError("a scheduler address needs the dask engine (kind=\"dask\")")
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
        distributed = import_optional("distributed", feature=_DASK_FEATURE)
        if self.scheduler is None:
            try:
                return distributed.get_client()
            except ValueError:
                pass
        if "client" not in self._opened:
            try:
                with local_cluster_settings():
                    self._opened["client"] = distributed.Client(self.scheduler, timeout="20s")
            except OSError as exc:
                raise CoverageGapError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); start one "
                    "with `dask scheduler` and `dask worker ADDRESS`, or check the address "
                    "and firewall") from None
            log.info("dask engine on %s", self._opened["client"])
        return self._opened["client"]

    def close(self) -> None:
        """Close the client this engine opened to its scheduler (not a client given to it)."""
        if self.is_local:
            return
        client = self._opened.pop("client", None)
        if client is not None:
            client.close()

    def map(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        """``[fn(item, **shared) for item in items]``, on this engine, in order.

        ``shared`` values are sent to each Dask worker once (scattered), not per task; a
        local engine with several ``processes`` forks its workers, which inherit them.
        """
        if self.is_local and self.processes > 1 and len(items) > 1:
            return list(forked_map(fn, items, self.processes, shared))
        if self.is_local or len(items) == 0:
            return [fn(item, **shared) for item in items]
        client = self.dask_client()
        futures = _scatter(client, shared)
        jobs = client.map(fn, list(items), pure=False, **futures)
        return client.gather(jobs)

    def imap(self, fn: Callable[..., Any], items: Sequence[Any], **shared: Any
             ) -> Iterator[Any]:
        """``fn(item, **shared)`` for each item, yielded as each is done (in any order).

        What :meth:`map` computes, but a caller can use (and drop) each result as it comes,
        so only the pieces not yet consumed are held and progress can be shown while the
        work runs. Local engines yield in order; a Dask engine yields in the order tasks
        finish (pair each result with what it is of when order matters).
        """
        if self.is_local and self.processes > 1 and len(items) > 1:
            yield from forked_map(fn, items, self.processes, shared)
            return
        if self.is_local or len(items) == 0:
            yield from (fn(item, **shared) for item in items)
            return
        client = self.dask_client()
        as_completed = import_optional("distributed", feature=_DASK_FEATURE).as_completed
        futures = _scatter(client, shared)
        jobs = client.map(fn, list(items), pure=False, **futures)
        for job in as_completed(jobs):
            yield job.result()
            job.release()

    def map_stream(self, fn: Callable[..., Any], items: Iterable[Any],
                   combine: Callable[[Any, Any], Any], *, in_flight: int = 4,
                   **shared: Any) -> Any:
        """Fold ``combine`` over ``fn(item)`` for a stream of items, few in memory at once.

        Items (chunks read on the client) are submitted as they come with at most
        ``in_flight`` outstanding, so memory does not grow with the stream's length. The
        parts are folded in the items' order whatever the engine, so a fold that is not
        commutative (the compacted rows' order, floating-point sums) gives the local
        engine's result. Returns None for an empty stream.
        """
        acc = None
        if self.is_local:
            for item in items:
                part = fn(item, **shared)
                acc = part if acc is None else combine(acc, part)
            return acc
        client = self.dask_client()
        futures = _scatter(client, shared)
        pending: deque[Any] = deque()
        for item in items:
            pending.append(client.submit(fn, item, pure=False, **futures))
            if len(pending) >= in_flight:  # the oldest part next: the fold keeps the order
                part = pending.popleft().result()
                acc = part if acc is None else combine(acc, part)
        for f in pending:
            part = f.result()
            acc = part if acc is None else combine(acc, part)
        return acc


def _scatter(client: Any, shared: Mapping[str, Any]) -> dict[str, Any]:
    """``shared`` sent to every worker of ``client`` once: a future per value.

    Under keys of their own (``hash=False``): values scattered under their content's hash
    share one key between calls, and a future of an earlier call released while a later
    call scatters the same value (the same float, say) took that value from the workers,
    cancelling the later tasks ("lost dependencies").
    """
    return {k: client.scatter(v, broadcast=True, hash=False) for k, v in shared.items()}


#: The Dask setting that slows the model's tiles down (see local_cluster_settings).
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def local_cluster_settings() -> Any:
    """Dask settings for the worker processes of a local cluster this package starts.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` in their workers by default, which fixes
    glibc's mmap threshold at 128 kB: every temporary array above it is then mapped and
    unmapped afresh. The model's per-cell arrays are of that size, and a tile took about
    twice the CPU (half of it system time in page faults); unset, the workers keep glibc's
    defaults, like this process. Workers started by ``dask worker`` take the same setting
    from the Dask config (``docs/national.md``).
    """
    import dask

    return dask.config.set({TRIM_KEY: None})


def get_engine(kind: str | Engine | None = None, *, scheduler: str | None = None,
               **knobs: Any) -> Engine:
    """An :class:`Engine` from the CLI's ``--engine`` and ``--scheduler`` values."""
    if isinstance(kind, Engine):
        return kind
    kind = kind or ("dask" if scheduler else "local")
    return Engine(kind, scheduler=scheduler, **knobs)


#: Keys of a config file's ``[engine]`` table: the settings of :class:`Engine`.
ENGINE_KEYS = tuple(f.name for f in fields(Engine) if f.name not in ("client", "_opened"))


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
        raise ParameterError(f"{where}: unknown [engine] key(s) "
                             f"{', '.join(k + did_you_mean(k, ENGINE_KEYS) for k in unknown)}; "
                             f"known: {', '.join(ENGINE_KEYS)}")
    knobs = {k: table[k] for k in ENGINE_KEYS if k not in ("kind", "scheduler") and k in table}
    scheduler = table.get("scheduler") or None
    try:
        return get_engine(table.get("kind"), scheduler=scheduler, **knobs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{where}: [engine] {exc}") from None


#: What forked workers run: (function, shared keyword arguments), set before the fork.
_FORKED: tuple[Callable[..., Any], dict[str, Any]] | None = None


def _forked_call(item: Any) -> Any:
    fn, shared = _FORKED
    return fn(item, **shared)


def forked_map(fn: Callable[..., Any], items: Sequence[Any], processes: int,
                shared: dict[str, Any], *, meanwhile: Callable[[], Any] | None = None
                ) -> Iterator[Any]:
    """``fn(item, **shared)`` for each item in ``processes`` forked workers, in order.

    The workers inherit ``shared`` from this process (copy on write), so only the items
    and the results are pickled. Where ``fork`` is unavailable or unsafe (Windows; macOS,
    whose system libraries do not survive it) the items run here, one after the other.
    ``meanwhile()``, when given, is called once in this process, after the workers have
    started and before the first result is yielded: work of its own that would otherwise
    wait for them (it must not start a map of its own; its threads start after the fork).
    """
    import multiprocessing as mp
    import sys

    if sys.platform == "darwin" or "fork" not in mp.get_all_start_methods():
        if meanwhile is not None:
            meanwhile()
        yield from (fn(item, **shared) for item in items)
        return
    global _FORKED
    _FORKED = (fn, shared)
    try:
        with mp.get_context("fork").Pool(min(processes, len(items)),
                                         initializer=_worker_start) as pool:
            results = pool.imap(_forked_call, items, chunksize=1)  # the workers start
            if meanwhile is not None:
                meanwhile()
            yield from results
    finally:
        _FORKED = None


#: glibc ``mallopt`` settings of a forked worker: (parameter, value) for M_MMAP_THRESHOLD
#: and M_TRIM_THRESHOLD, bytes.
WORKER_MALLOC = ((-3, 64 << 20), (-1, 256 << 20))
#: True in a worker process forked by :func:`forked_map`.
_IN_WORKER = False


def threads_for(requested: int) -> int:
    """Threads a stage should start for its own pieces: ``requested``, or 1 in a forked worker.

    The forked workers already fill the cores, one process each; a second thread in each
    only took CPU from its sibling (the model's candidates on the demo: 8% more CPU with
    two threads than with one, for the same levels). The number of threads never changes a
    result.
    """
    return 1 if _IN_WORKER else requested


def _worker_start() -> None:
    """What a forked worker sets before its first task: its threads and its allocator."""
    global _IN_WORKER
    _IN_WORKER = True
    _worker_malloc()


def _worker_malloc() -> None:
    """Keep a forked worker's freed memory for its next arrays (glibc; elsewhere nothing).

    A worker starts with its parent's heap shared copy-on-write, and glibc maps each array
    above its adaptive threshold afresh and unmaps it when freed, so every temporary of the
    model's size faulted its pages in again. With the thresholds fixed above those arrays
    (64 MB; the heap trimmed past 256 MB free) a worker reuses its pages: on ``covgap
    demo`` its workers' page faults fell from about 850,000 to 460,000 and their system
    time by half (``docs/performance.md``). Only the workers' allocator changes, never a
    result.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (OSError, AttributeError):  # no mallopt there
        return
    for param, value in WORKER_MALLOC:
        mallopt(param, value)


#: Names that moved beside what they run: the model's tiling and the readers' compaction.
_MOVED = {"predict_coverage_tiled": "coverage.model", "tile_windows": "coverage.model",
          "compact_measurements": "coverage.io", "aggregate_measurement_chunks": "coverage.io",
          "measurement_sums": "coverage.io"}


def __getattr__(name: str) -> Any:
    """The moved names, from their new modules (older imports keep working)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
