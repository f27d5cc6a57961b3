"""Measured cells: the median measured level on its cell, its correction carried around it.

The last step of :func:`coverage.model.fuse_measurements` (:func:`measured_cells`), and the
one-argsort ordering by group and value it and the classification use
(:func:`group_value_order`, :func:`sort_key`).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from .cells import GridCells
from .grid import CoverageSurfaces, Grid
from .observations import FALLBACK_BELOW, NO_SERVICE_DBM, TestCells
from .predict import FLOOR_DBM

__all__ = ["group_value_order", "measured_cells", "sort_key"]

def sort_key(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A uint64 key ordering by group (under 2**32), then value, for one argsort.

    The group fills the upper 32 bits, the value's float32 bits (made monotone) the lower.
    Values equal to float32 precision (1e-7) may tie in any order
    (:func:`group_value_order` puts them right).
    """
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    bits = np.where(neg, ~bits, bits | np.uint32(0x80000000))
    return (np.asarray(group).astype(np.uint64) << np.uint64(32)) | bits.astype(np.uint64)


def group_value_order(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices ordering rows by ``group`` (integers >= 0), then by ``values`` (no NaN).

    The same order as ``np.lexsort((values, group))`` up to rows equal in both, from one
    argsort of a 64-bit key (:func:`sort_key`, several times lexsort's speed on millions of
    rows) when the groups fit in 32 bits; where two values in a group are equal in float32
    but not in float64 (rare) the exact lexsort is taken instead.
    """
    group = np.asarray(group)
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    if int(group.min()) < 0 or int(group.max()) >= 2**32:
        return np.lexsort((values, group))
    key = sort_key(group, values)
    order = np.argsort(key)
    key = key[order]
    v = np.asarray(values)[order]
    if np.any((key[1:] == key[:-1]) & (v[1:] < v[:-1])):
        return np.lexsort((values, group))
    return order


def measured_cells(out: CoverageSurfaces, measurements: gpd.GeoDataFrame, *,
                    radius_m: float, techs: tuple[str, ...], cells: TestCells,
                    grid: Grid | None = None, at: GridCells | None = None) -> None:
    """Measured levels on their cells, and their corrections on the cells around them.

    A measured cell takes the median measured level (cleared where service is missing);
    the cells within ``radius_m`` around it, the model moved by the same correction.
    Integer codes and one sort throughout (string group keys cost 10x on millions of tests).
    ``out`` on the whole ``grid``, or at its cells ``at`` (cells around a measured one that
    are not in the set are skipped; the measured cells are in it).
    """
    grid = grid or out.grid

    def pos(flat_cells: np.ndarray) -> np.ndarray:
        """Position of whole-grid cells in ``out``'s layers (-1: not held)."""
        return flat_cells if at is None else at.codes(flat_cells)

    inside = cells.inside
    # integer codes throughout: string group keys cost 10x on millions of tests
    tech_code, tech_names = pd.factorize(measurements["tech"])  # missing: -1
    tech_code = tech_code[inside]
    op_code, op_names = pd.factorize(measurements["operator"])
    op_code = op_code[inside]
    rsrp = pd.to_numeric(measurements["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)[inside]
    reach = max(int(np.ceil(radius_m / grid.resolution_m - 0.5)), 0)
    # farthest first: where the discs of two measured cells overlap, the nearer one wins;
    # the measured cells themselves (offset 0) last
    offsets = sorted(((dr, dc) for dr in range(-reach, reach + 1)
                      for dc in range(-reach, reach + 1)
                      if (dr * dr + dc * dc) * grid.resolution_m**2 <= max(radius_m, 1.0) ** 2),
                     key=lambda o: (-(o[0] ** 2 + o[1] ** 2), o))[:-1]
    rows, cols = grid.shape

    def carry(layer: np.ndarray, cells: np.ndarray, vals: np.ndarray, shift: np.ndarray,
              floor: np.float32) -> None:
        """Measured ``cells`` take ``vals``; the cells around them, the layer moved.

        ``vals`` NaN: no service; around, the layer as it was moved by the measured cell's
        ``shift`` (dB), with no service where that falls under ``floor``.
        Offset by offset, farthest first (one offset sends distinct cells to distinct
        targets). Cells at least ``reach`` from the grid's edge take every offset without a
        bounds check, into one reused target array (fresh ones cost more in page faults
        than the adds); the few near the edge are checked.
        """
        flat = layer.reshape(-1)
        before = flat.copy()
        r, c = np.divmod(cells, cols)
        interior = (r >= reach) & (r < rows - reach) & (c >= reach) & (c < cols - reach)
        edge = np.flatnonzero(~interior)
        ci, si = cells[interior], shift[interior].astype("float32")
        re, ce, cells_e, se = r[edge], c[edge], cells[edge], shift[edge].astype("float32")
        del r, c, interior
        buf = np.empty_like(ci)
        moved = np.empty(len(ci), dtype="float32")

        def put(tgt: np.ndarray, sh: np.ndarray, out_: np.ndarray) -> None:
            if at is not None:  # the targets the set holds, at their positions in it
                tgt = at.codes(tgt)
                keep = tgt >= 0
                tgt, sh, out_ = tgt[keep], sh[keep], out_[:int(keep.sum())]
            np.fmax(before[tgt], floor, out=out_)
            out_ += sh
            out_[out_ < floor] = np.nan
            flat[tgt] = out_

        for dr, dc in offsets:
            np.add(ci, dr * cols + dc, out=buf)
            put(buf, si, moved)
            if len(edge):
                ok = (re + dr >= 0) & (re + dr < rows) & (ce + dc >= 0) & (ce + dc < cols)
                put(cells_e[ok] + (dr * cols + dc), se[ok],
                    np.empty(int(ok.sum()), dtype="float32"))
        flat[pos(cells)] = vals

    ucell, ccode = cells.ucell, cells.code  # measured cells in (row, col) order
    k_cells = max(len(ucell), 1)
    wanted = np.r_[np.isin(np.asarray(tech_names, dtype=object), techs), False]
    measured = np.flatnonzero(wanted[tech_code] & np.isfinite(rsrp) & (op_code >= 0))
    # A test that fell back below a technology (or found no service) is a level under the
    # floor of that technology for its operator: -inf in the median of that layer's cell.
    tech_names = list(pd.Index(tech_names).astype(str))
    fell_op, fell_tech = [], []
    for high, lower in FALLBACK_BELOW.items():
        if high not in techs:
            continue
        codes = [k for k, name in enumerate(tech_names) if name in (*lower, "none")]
        fell = np.flatnonzero(np.isin(tech_code, codes) & (op_code >= 0))
        has = np.array([(str(op_names[o]), high) in out.layers for o in range(len(op_names))],
                       dtype=bool)
        fell = fell[has[op_code[fell]]] if len(op_names) else fell[:0]
        if len(fell):
            if high not in tech_names:
                tech_names.append(high)
            fell_op.append(fell)
            fell_tech.append(np.full(len(fell), tech_names.index(high)))
    n_names = len(tech_names)
    if len(measured) or fell_op:
        # median level per (operator, technology, cell) from one sort of a combined key
        rows_ = np.concatenate([measured, *fell_op])
        pair = op_code[rows_].astype(np.int64) * n_names + np.concatenate(
            [tech_code[measured], *fell_tech])
        value = np.concatenate([rsrp[measured], np.full(len(rows_) - len(measured), -np.inf)])
        measured = rows_
        group = pair * k_cells + ccode[measured]
        del pair, rows_
        order = group_value_order(group, value)
        group, value = group[order], value[order]
        del order
        start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        size = np.diff(np.r_[start, len(group)])
        lower, upper = value[start + (size - 1) // 2], value[start + size // 2]
        # an even split between a fallback and a level keeps the level (upper middle)
        median = np.where(np.isfinite(lower), 0.5 * (lower + upper), upper)
        median[~np.isfinite(median)] = np.nan  # most tests fell back: no such service here
        g_pair, g_cell = np.divmod(group[start], k_cells)
        del group, value
        for o, t in sorted(set(zip(*np.divmod(np.unique(g_pair), n_names), strict=True)),
                           key=lambda ot: (str(op_names[ot[0]]), str(tech_names[ot[1]]))):
            mine = g_pair == o * n_names + t
            key = (str(op_names[o]), str(tech_names[t]))
            if key not in out.layers:
                out.layers[key] = np.full(out.grid.shape, np.nan, dtype="float32")
            src, vals = ucell[g_cell[mine]], median[mine]
            floor = np.float32(FLOOR_DBM.get(key[1], -125.0))
            before = np.fmax(out.layers[key].reshape(-1)[pos(src)], floor)
            # most tests fell back: the level is under where handsets leave this service
            shift = np.where(np.isfinite(vals), vals - before,
                             np.minimum(0.0, NO_SERVICE_DBM.get(key[1], floor) - before))
            carry(out.layers[key], src, vals, shift, floor)
    is_none = np.r_[np.asarray(tech_names, dtype=object) == "none", False][tech_code]
    groups = [("*", op_code < 0)] if (op_code < 0).any() else []
    groups = sorted(groups + [(str(name), op_code == k) for k, name in enumerate(op_names)])
    for op_name, sel in groups:
        n_all = np.bincount(ccode[sel], minlength=k_cells)
        n_none = np.bincount(ccode[sel & is_none], minlength=k_cells)
        cells = ucell[(n_all > 0) & (n_none >= 0.5 * n_all)] if len(ucell) else ucell
        if not len(cells):
            continue
        for (lop, tech), layer in out.layers.items():
            if op_name == "*" or lop == op_name:
                floor = np.float32(FLOOR_DBM.get(tech, -125.0))
                before = np.fmax(layer.reshape(-1)[pos(cells)], floor)
                carry(layer, cells, np.full(len(cells), np.nan, dtype="float32"),
                      np.minimum(0.0, NO_SERVICE_DBM.get(tech, floor) - before), floor)
