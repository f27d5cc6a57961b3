"""Population-weighted shares of each village: sums over its pieces of the grids.

A village meets the model grid as pieces (:class:`coverage.classify.zonal.ZonalWeights`:
village, cell, weight). Its covered share under a threshold is the weighted sum over its
pieces of the probability that the cell is covered, over its weight
(:func:`piece_sums`); the share a technology or an operator reaches is the weight where any
of its layers does (:func:`reach_shares`). :func:`moved_cells` marks the cells where the
tests decide rather than the model, and :func:`fibre_layer` the cells near fibre.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from ..model import CoverageSurfaces
from .zonal import ZonalWeights, values_at_cells

__all__ = ["fibre_layer", "moved_cells", "piece_sums", "reach_shares"]

#: Pieces (village x cell) per chunk of the covered-share sums, and threads taking chunks.
PIECE_CHUNK = 1 << 20
PIECE_THREADS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class _FlatGrids:
    """The grids :func:`piece_sums` reads at the pieces, flattened, and the offsets.

    Attributes
    ----------
    margins : dict of str to ndarray
        The model's margin grids (dB) by kind (``out``, ``in``).
    fused : dict of str to ndarray or None
        The fused surface's margin grids by kind (None: no measured villages).
    tested : ndarray of bool or None
        Cells where tests decide.
    offset : ndarray of float32
        Each village's offset of the model (dB).
    """

    margins: dict[str, np.ndarray]
    fused: dict[str, np.ndarray] | None
    tested: np.ndarray | None
    offset: np.ndarray


@dataclass(frozen=True)
class _Decided:
    """A chunk's pieces in measured villages, where the fused surface decides tested cells.

    Attributes
    ----------
    keep : ndarray of bool or slice
        The chunk's pieces in measured villages (``slice(None)``: all of them, viewed
        without copies).
    village, weight : ndarray
        Village and weight of each kept piece.
    tested : ndarray of bool
        Whether each kept piece's cell is tested.
    """

    keep: np.ndarray | slice
    village: np.ndarray
    weight: np.ndarray
    tested: np.ndarray

    def pick(self, a: np.ndarray) -> np.ndarray:
        """The values of ``a`` (one per piece of the chunk) at the kept pieces."""
        return a[self.keep]


def piece_sums(weights: ZonalWeights, *, margins: dict[str, np.ndarray],
               fused: dict[str, np.ndarray] | None, tested: np.ndarray | None,
               offset: np.ndarray, shifts: dict[str, float], measured: np.ndarray,
               covered: Callable[[np.ndarray], np.ndarray], model_share: bool
               ) -> dict[str, np.ndarray]:
    """Weighted sums per village of the covered probabilities, over the pieces in chunks.

    For each margin grid (``out``, ``in``) and threshold shift: ``model:{kind}{suffix}``,
    the weight times the probability that the model, moved by the village's ``offset``
    (dB), is above the threshold; for the ``measured`` villages, ``decided:{kind}{suffix}``
    takes the fused surface's verdict on ``tested`` cells instead, over
    ``decided_weight``; ``model_only`` is the unshifted model without the offset. Chunks
    of :data:`PIECE_CHUNK` pieces (:func:`_chunk_sums`) go to :data:`PIECE_THREADS` threads
    (the gathers and the normal CDF release the GIL), and their partial sums are added
    (:func:`_add_parts`): memory follows the chunk, not the 30 million pieces of a national
    run.
    """
    grids = _FlatGrids(
        margins={k: m.reshape(-1) for k, m in margins.items()},
        fused={k: m.reshape(-1) for k, m in fused.items()} if fused is not None else None,
        tested=tested.reshape(-1) if tested is not None else None,
        offset=offset.astype("float32"))

    def chunk(start: int) -> dict[str, np.ndarray]:
        return _chunk_sums(weights, slice(start, start + PIECE_CHUNK), grids, shifts=shifts,
                           measured=measured, covered=covered, model_share=model_share)

    starts = range(0, len(weights.village), PIECE_CHUNK)
    if PIECE_THREADS > 1 and len(starts) > 1:
        with ThreadPoolExecutor(PIECE_THREADS) as pool:
            parts = list(pool.map(chunk, starts))
    else:
        parts = [chunk(i) for i in starts]
    return _add_parts(parts, weights.n)


def _decided_pieces(v: np.ndarray, c: np.ndarray, w: np.ndarray, mine: np.ndarray,
                    tested: np.ndarray) -> _Decided:
    """The chunk's pieces (village ``v``, cell ``c``, weight ``w``) in measured villages.

    ``mine`` marks the pieces of measured villages; ``tested`` is the flat grid of tested
    cells. Where every piece is in a measured village (a national run: tests in every
    village) no copies are made.
    """
    keep = slice(None) if bool(mine.all()) else mine
    return _Decided(keep=keep, village=v[keep], weight=w[keep],
                    tested=values_at_cells(tested, c[keep], fill=False))


def _chunk_sums(weights: ZonalWeights, sl: slice, grids: _FlatGrids, *,
                shifts: dict[str, float], measured: np.ndarray,
                covered: Callable[[np.ndarray], np.ndarray], model_share: bool
                ) -> dict[str, np.ndarray]:
    """The sums of :func:`piece_sums` over the pieces ``sl`` alone (one chunk).

    Parameters
    ----------
    weights : ZonalWeights
        The villages' pieces on the model grid.
    sl : slice
        The chunk's pieces.
    grids : _FlatGrids
        The flattened grids and the villages' offsets (dB).
    shifts, measured, covered, model_share
        As :func:`piece_sums` takes them.

    Returns
    -------
    dict of str to ndarray
        Per village, the chunk's part of each sum :func:`piece_sums` returns.
    """
    n = weights.n
    v, c, w = weights.village[sl], weights.cell[sl], weights.weight[sl]
    off = grids.offset[v]
    res: dict[str, np.ndarray] = {}
    dec = None
    if grids.fused is not None:
        dec = _decided_pieces(v, c, w, measured[v], grids.tested)
        res["decided_weight"] = np.bincount(dec.village, weights=dec.weight, minlength=n)
    for kind, grid_margin in grids.margins.items():
        m = values_at_cells(grid_margin, c, fill=-np.inf)
        if dec is not None:
            f = values_at_cells(grids.fused[kind], dec.pick(c), fill=-np.inf) >= 0
        for suffix, shift in shifts.items():
            p_cov = covered(m + (off + np.float32(shift)))  # per piece, the model's
            res[f"model:{kind}{suffix}"] = np.bincount(v, weights=w * p_cov, minlength=n)
            if dec is not None:
                vals = np.where(dec.tested, f, dec.pick(p_cov))
                res[f"decided:{kind}{suffix}"] = np.bincount(
                    dec.village, weights=dec.weight * vals, minlength=n)
        if kind == "out" and model_share:
            res["model_only"] = np.bincount(v, weights=w * covered(m), minlength=n)
    return res


def _add_parts(parts: list[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
    """The chunks' partial sums added, in chunk order (zeros for ``n`` villages: none)."""
    if not parts:
        return collections.defaultdict(lambda: np.zeros(n))
    out = parts[0]
    for part in parts[1:]:
        for key, value in part.items():
            out[key] += value
    return out


def reach_shares(weights: ZonalWeights, layers: dict[tuple[str, str], np.ndarray],
                 groups: dict[str, list[tuple[tuple[str, str], float]]]
                 ) -> dict[str, np.ndarray]:
    """Share of each village's weight where any layer of each group reaches its threshold.

    ``groups`` maps a name to (layer key, threshold dBm) pairs: a piece counts for the name
    where one of them is at or above its threshold (the group's best margin >= 0). Eight
    names per pass: their 0/1 values at a piece form the bits of a byte; one bincount over
    (village, byte) gives the weight of every combination, and each name's share sums the
    combinations with its bit set. Each layer is read at the pieces once, whatever the
    number of names it serves (a layer serves its technology and its operator).
    """
    names = list(groups)
    out: dict[str, np.ndarray] = {}
    total = weights.total()
    bits = np.arange(256)
    # half the memory and bandwidth of 64-bit codes while (village, byte) fits in 32 bits
    kind = np.int32 if weights.n * 256 < 2**31 else np.int64
    chunks = [names[start:start + 8] for start in range(0, len(names), 8)]
    uses: dict[tuple[tuple[str, str], float], list[tuple[int, int]]] = {}
    for c, chunk in enumerate(chunks):
        for k, name in enumerate(chunk):
            for key, threshold in groups[name]:
                uses.setdefault((key, threshold), []).append((c, k))
    codes = [weights.village.astype(kind) * kind(256) for _ in chunks]
    for (key, threshold), targets in uses.items():
        on = (weights.at(layers[key], fill=np.nan) >= np.float32(threshold)).astype(kind)
        for c, k in set(targets):
            codes[c] |= on << kind(k)
        del on
    for c, chunk in enumerate(chunks):
        table = np.bincount(codes[c], weights=weights.weight, minlength=weights.n * 256
                            ).reshape(weights.n, 256)
        codes[c] = None
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, name in enumerate(chunk):
                on = table[:, (bits >> k) & 1 == 1].sum(axis=1)
                out[name] = np.where(total > 0, on / total, 0.0)
    return out


def moved_cells(model: CoverageSurfaces, fused: CoverageSurfaces,
                margins: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Cells where measured cells replaced (or cleared) some layer of the estimate.

    With the estimate's margins kept (:func:`coverage.classify.fuse_for`), the cells whose
    fused ``margins`` (same names) differ from them: the measured cells and the 250 m around
    them that the measurements moved. Without them, the cells where any layer differs from
    the model; calibration then moves every cell, so every cell counts as measured (the
    behaviour of surfaces fused without :func:`coverage.classify.fuse_for`, logged by
    :func:`coverage.classify.village_metrics`). Comparing with the uncalibrated model in
    every case counted every cell of a measured village as measured: its share became the
    fused surface's hard verdict, the offset and the model's uncertainty unused (on the
    demo, 0.820 / 0.819 / 0.887 accuracy, macro-F1, unavailable recall against 0.830 /
    0.829 / 0.896 when only the cells the measurements moved decide).
    """
    out = np.zeros(model.grid.shape, dtype=bool)
    if margins is not None and set(margins) <= set(fused.estimated_margin):
        for kind, margin in margins.items():
            out |= _differs(margin, fused.estimated_margin[kind])
        return out
    for key, layer in fused.layers.items():
        base = model.layers.get(key)
        out |= ~np.isnan(layer) if base is None else _differs(layer, base)
    return out


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True where two grids differ, NaN equal to NaN."""
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def fibre_layer(fibre: gpd.GeoDataFrame, surfaces: CoverageSurfaces, reach_m: float
                ) -> np.ndarray:
    """1 on grid cells whose centre lies within ``reach_m`` of a fibre route or node."""
    from rasterio.features import rasterize

    grid = surfaces.grid
    geoms = fibre.geometry.to_crs(grid.crs)
    area = geoms[geoms.notna() & ~geoms.is_empty].buffer(max(reach_m, 0.01)).union_all()
    if area.is_empty:
        return np.zeros(grid.shape, dtype="float32")
    return rasterize([(area, 1)], out_shape=grid.shape, transform=grid.transform, fill=0,
                     dtype="uint8").astype("float32")
