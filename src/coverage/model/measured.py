"""Measured cells: the median measured level on its cell, its correction carried around it.

The last step of :func:`coverage.model.fuse_measurements` (:func:`measured_cells`), and the
one-argsort ordering by group and value it and the classification use
(:func:`group_value_order`, :func:`sort_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from .cells import GridCells
from .grid import CoverageSurfaces, Grid
from .observations import FALLBACK_BELOW, NO_SERVICE_DBM, TestCells
from .transmitters import FLOOR_DBM

__all__ = ["group_value_order", "measured_cells", "sort_key"]


def sort_key(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A uint64 key ordering by group (under 2**32), then value, for one argsort.

    The group fills the upper 32 bits, the value's float32 bits (made monotone) the lower.
    Values equal to float32 precision (1e-7) may tie in any order
    (:func:`group_value_order` puts them right).
    """
    # + 0 makes -0.0 the +0.0 it equals, whose bits differ
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0)).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    bits = np.where(neg, ~bits, bits | np.uint32(0x80000000))
    return (np.asarray(group).astype(np.uint64) << np.uint64(32)) | bits.astype(np.uint64)


def group_value_order(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices ordering rows by ``group`` (integers >= 0), then by ``values`` (no NaN).

    Exactly ``np.lexsort((values, group))``, rows equal in both kept in their order, several
    times faster on millions of rows: integer values join the group in one 64-bit key (a
    stable sort); other values take :func:`sort_key` (one stable sort), and the rows of a
    key that holds values equal in float32 but not in float64 are put in lexsort's order
    among themselves.
    """
    group, values = np.asarray(group), np.asarray(values)
    n = len(group)
    if not n:
        return np.zeros(0, dtype=np.int64)
    top = int(group.max()) + 1
    if int(group.min()) < 0:
        return np.lexsort((values, group))
    if values.dtype.kind in "iu" and int(values.min()) >= 0:
        span = int(values.max()) + 1
        if top * span < 2**62:
            return np.argsort(group.astype(np.int64) * span + values, kind="stable")
        return np.lexsort((values, group))
    if top < 2**32:
        key = sort_key(group, values)
        order = np.argsort(key, kind="stable")  # rows equal in both: in their own order
        key = key[order]
        tie = key[1:] == key[:-1]
        if tie.any():
            v = values[order]
            mixed = tie & (v[1:] != v[:-1])  # equal in float32, not in float64
            if mixed.any():  # those keys' rows by their float64 value: a sort of them alone
                run = np.cumsum(np.r_[True, ~tie])
                bad = np.zeros(int(run[-1]) + 1, dtype=bool)
                bad[run[1:][mixed]] = True
                at = np.flatnonzero(bad[run])
                rows = order[at]
                order[at] = rows[np.lexsort((rows, values[rows], key[at]))]
        return order
    if top * n >= 2**62:
        return np.lexsort((values, group))
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(n)
    return np.argsort(group.astype(np.int64) * n + rank)


def measured_cells(out: CoverageSurfaces, measurements: gpd.GeoDataFrame, *,
                   radius_m: float, techs: tuple[str, ...], cells: TestCells,
                   grid: Grid | None = None, at: GridCells | None = None) -> None:
    """Measured levels on their cells, and their corrections on the cells around them.

    A measured cell takes the median measured level of its layer (:func:`_layer_medians`;
    cleared where most tests found no such service); the cells within ``radius_m`` around
    it, the model moved by the same correction (:class:`_Carrier`). Then, for each
    operator, the cells where at least half the tests found no service at all are cleared
    in every layer of that operator (:func:`_carry_no_service`). Integer codes and one sort
    throughout (string group keys cost 10x on millions of tests).

    Parameters
    ----------
    out : CoverageSurfaces
        The fused surfaces, levels in dBm; changed in place (layers measured but not
        modelled are added).
    measurements : GeoDataFrame
        The tests: ``operator``, ``tech`` and ``rsrp_dbm`` (dBm; missing: no level).
    radius_m : float
        Metres around a measured cell that its correction reaches (at least the cell).
    techs : tuple of str
        The technologies whose measured levels are set.
    cells : TestCells
        The tests placed on ``grid``.
    grid : Grid, optional
        The whole grid in its metric CRS (default: ``out.grid``).
    at : GridCells, optional
        ``out`` holds only these cells of ``grid`` (:func:`coverage.model.cells.surfaces_at`):
        cells around a measured one that are not in the set are skipped; the measured cells
        are in it.
    """
    grid = grid or out.grid
    codes = _TestCodes.of(measurements, cells.inside)
    carrier = _Carrier.of(grid, radius_m, at)
    _carry_medians(out, carrier, codes, techs, cells)
    _carry_no_service(out, carrier, codes, cells)


@dataclass(frozen=True)
class _TestCodes:
    """The tests on the grid as integer codes: string group keys cost 10x on millions.

    Attributes
    ----------
    tech, op : ndarray of int
        Each test's technology and operator, positions in ``tech_names`` and ``op_names``
        (missing: -1), in the order of the tests on the grid.
    tech_names, op_names : Index
        The distinct technologies and operators, in order of first appearance.
    rsrp : ndarray of float64
        Each test's measured level, dBm (NaN: none).
    """

    tech: np.ndarray
    tech_names: pd.Index
    op: np.ndarray
    op_names: pd.Index
    rsrp: np.ndarray

    @classmethod
    def of(cls, measurements: pd.DataFrame, inside: np.ndarray) -> _TestCodes:
        """The codes of the ``inside`` rows of ``measurements`` (the tests on the grid)."""
        tech, tech_names = pd.factorize(measurements["tech"])  # missing: -1
        op, op_names = pd.factorize(measurements["operator"])
        rsrp = pd.to_numeric(measurements["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)
        return cls(tech[inside], tech_names, op[inside], op_names, rsrp[inside])


def _disc_offsets(radius_m: float, resolution_m: float) -> tuple[int, list[tuple[int, int]]]:
    """The cells within ``radius_m`` of a cell: its reach in cells, and their offsets.

    Offsets (rows, columns) of the cells whose centres lie within ``radius_m`` (metres,
    at least 1 m) of the centre cell's on a grid of ``resolution_m`` cells, the centre cell
    itself left out; farthest first (then by offset), so that where the discs of two
    measured cells overlap, the nearer one, written last, wins. The reach bounds every
    offset in both directions.
    """
    reach = max(int(np.ceil(radius_m / resolution_m - 0.5)), 0)
    offsets = sorted(((dr, dc) for dr in range(-reach, reach + 1)
                      for dc in range(-reach, reach + 1)
                      if (dr * dr + dc * dc) * resolution_m**2 <= max(radius_m, 1.0) ** 2),
                     key=lambda o: (-(o[0] ** 2 + o[1] ** 2), o))[:-1]
    return reach, offsets


@dataclass(frozen=True)
class _Carrier:
    """Writes measured cells and carries their corrections to the cells around them.

    Attributes
    ----------
    rows, cols : int
        The whole grid's shape.
    reach : int
        The largest offset, in cells (:func:`_disc_offsets`).
    offsets : list of (int, int)
        The offsets (rows, columns) around a measured cell, farthest first.
    at : GridCells or None
        The cells the layers hold (None: the whole grid).
    """

    rows: int
    cols: int
    reach: int
    offsets: list[tuple[int, int]]
    at: GridCells | None

    @classmethod
    def of(cls, grid: Grid, radius_m: float, at: GridCells | None) -> _Carrier:
        """The carrier of ``radius_m`` metres on ``grid`` (layers at ``at`` when given)."""
        reach, offsets = _disc_offsets(radius_m, grid.resolution_m)
        return cls(*grid.shape, reach, offsets, at)

    def pos(self, flat_cells: np.ndarray) -> np.ndarray:
        """Position of whole-grid cells in the layers (-1: not held)."""
        return flat_cells if self.at is None else self.at.codes(flat_cells)

    def carry(self, layer: np.ndarray, cells: np.ndarray, vals: np.ndarray,
              shift: np.ndarray, floor: np.float32) -> None:
        """Measured ``cells`` take ``vals``; the cells around them, the layer moved.

        ``cells`` are whole-grid flat cells, ``vals`` their levels (dBm; NaN: no service);
        around, the layer as it was, moved by the measured cell's ``shift`` (dB), with no
        service where that falls under ``floor`` (dBm). ``layer`` is changed in place.
        Offset by offset, farthest first (one offset sends distinct cells to distinct
        targets). Cells at least ``reach`` from the grid's edge take every offset without a
        bounds check, into one reused target array (fresh ones cost more in page faults
        than the adds); the few near the edge are checked.
        """
        rows, cols, reach = self.rows, self.cols, self.reach
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
        for dr, dc in self.offsets:
            np.add(ci, dr * cols + dc, out=buf)
            self._put(flat, before, buf, si, moved, floor)
            if len(edge):
                ok = (re + dr >= 0) & (re + dr < rows) & (ce + dc >= 0) & (ce + dc < cols)
                self._put(flat, before, cells_e[ok] + (dr * cols + dc), se[ok],
                          np.empty(int(ok.sum()), dtype="float32"), floor)
        flat[self.pos(cells)] = vals

    def _put(self, flat: np.ndarray, before: np.ndarray, tgt: np.ndarray, sh: np.ndarray,
             out_: np.ndarray, floor: np.float32) -> None:
        """Whole-grid cells ``tgt`` of ``flat`` take ``before`` there moved by ``sh``."""
        if self.at is not None:  # the targets the set holds, at their positions in it
            tgt = self.at.codes(tgt)
            keep = tgt >= 0
            tgt, sh, out_ = tgt[keep], sh[keep], out_[:int(keep.sum())]
        np.fmax(before[tgt], floor, out=out_)
        out_ += sh
        out_[out_ < floor] = np.nan
        flat[tgt] = out_


def _carry_medians(out: CoverageSurfaces, carrier: _Carrier, codes: _TestCodes,
                   techs: tuple[str, ...], cells: TestCells) -> None:
    """Each layer's measured cells take their median level, its correction carried around.

    The layers of ``techs`` (dBm) that have tests with a level, or tests that fell back
    below them (:func:`_fallback_rows`); a layer measured but not modelled is added (NaN
    where not measured). Where most tests fell back, the cell has no such service and the
    cells around it are lowered to where handsets leave it
    (:data:`~coverage.model.observations.NO_SERVICE_DBM`) if the model was above.
    """
    wanted = np.r_[np.isin(np.asarray(codes.tech_names, dtype=object), techs), False]
    measured = np.flatnonzero(wanted[codes.tech] & np.isfinite(codes.rsrp) & (codes.op >= 0))
    tech_names, fell_rows, fell_tech = _fallback_rows(codes, techs, out.layers)
    if not len(measured) and not fell_rows:
        return
    n_names = len(tech_names)
    g_pair, g_cell, median = _layer_medians(codes, measured, fell_rows, fell_tech,
                                            n_names=n_names, cells=cells)
    op_names = codes.op_names
    for o, t in sorted(set(zip(*np.divmod(np.unique(g_pair), n_names), strict=True)),
                       key=lambda ot: (str(op_names[ot[0]]), str(tech_names[ot[1]]))):
        mine = g_pair == o * n_names + t
        key = (str(op_names[o]), str(tech_names[t]))
        if key not in out.layers:
            out.layers[key] = np.full(out.grid.shape, np.nan, dtype="float32")
        src, vals = cells.ucell[g_cell[mine]], median[mine]
        floor = np.float32(FLOOR_DBM.get(key[1], -125.0))
        before = np.fmax(out.layers[key].reshape(-1)[carrier.pos(src)], floor)
        # most tests fell back: the level is under where handsets leave this service
        shift = np.where(np.isfinite(vals), vals - before,
                         np.minimum(0.0, NO_SERVICE_DBM.get(key[1], floor) - before))
        carrier.carry(out.layers[key], src, vals, shift, floor)


def _fallback_rows(codes: _TestCodes, techs: tuple[str, ...],
                   layers: Mapping[tuple[str, str], np.ndarray]
                   ) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """The tests that fell back below a technology, as levels under its floor.

    A test that fell back below a technology of ``techs`` (or found no service) is a level
    under the floor of that technology for its operator, where that operator's layer of
    it is modelled: -inf in the median of that layer's cell. Returns the technology names
    (those of ``codes``, and each such technology that the tests do not name), and per
    technology with such tests, their rows and the technology's position in those names.
    """
    tech_code, op_code, op_names = codes.tech, codes.op, codes.op_names
    tech_names = list(pd.Index(codes.tech_names).astype(str))
    fell_rows, fell_tech = [], []
    for high, lower in FALLBACK_BELOW.items():
        if high not in techs:
            continue
        names = [k for k, name in enumerate(tech_names) if name in (*lower, "none")]
        fell = np.flatnonzero(np.isin(tech_code, names) & (op_code >= 0))
        has = np.array([(str(op_names[o]), high) in layers for o in range(len(op_names))],
                       dtype=bool)
        fell = fell[has[op_code[fell]]] if len(op_names) else fell[:0]
        if len(fell):
            if high not in tech_names:
                tech_names.append(high)
            fell_rows.append(fell)
            fell_tech.append(np.full(len(fell), tech_names.index(high)))
    return tech_names, fell_rows, fell_tech


def _layer_medians(codes: _TestCodes, measured: np.ndarray, fell_rows: list[np.ndarray],
                   fell_tech: list[np.ndarray], *, n_names: int, cells: TestCells
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The median level per (operator, technology, cell), from one sort of a combined key.

    The levels of the ``measured`` rows (dBm), and -inf for the rows that fell back
    (:func:`_fallback_rows`: ``fell_rows``, their technology codes ``fell_tech`` among
    ``n_names``). Returns per group its pair (``operator * n_names + technology``), its
    cell (position in ``cells.ucell``) and its median, dBm: NaN where most tests fell
    back (no such service there); an even split between a fallback and a level keeps the
    level (the upper middle).
    """
    k_cells = max(len(cells.ucell), 1)
    rows = np.concatenate([measured, *fell_rows])
    pair = codes.op[rows].astype(np.int64) * n_names + np.concatenate(
        [codes.tech[measured], *fell_tech])
    value = np.concatenate([codes.rsrp[measured], np.full(len(rows) - len(measured), -np.inf)])
    group = pair * k_cells + cells.code[rows]
    del pair, rows
    order = group_value_order(group, value)
    group, value = group[order], value[order]
    del order
    start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    size = np.diff(np.r_[start, len(group)])
    lower, upper = value[start + (size - 1) // 2], value[start + size // 2]
    median = np.where(np.isfinite(lower), 0.5 * (lower + upper), upper)
    median[~np.isfinite(median)] = np.nan  # most tests fell back: no such service here
    g_pair, g_cell = np.divmod(group[start], k_cells)
    return g_pair, g_cell, median


def _carry_no_service(out: CoverageSurfaces, carrier: _Carrier, codes: _TestCodes,
                      cells: TestCells) -> None:
    """Cells where at least half of an operator's tests found no service: cleared.

    In every layer of that operator (of every operator for tests without one), the cells
    take no service, and the cells around them are lowered to where handsets leave the
    layer's technology (:data:`~coverage.model.observations.NO_SERVICE_DBM`, dBm) if the
    model was above.
    """
    op_code, op_names, ucell, ccode = codes.op, codes.op_names, cells.ucell, cells.code
    k_cells = max(len(ucell), 1)
    names = list(pd.Index(codes.tech_names).astype(str))
    is_none = np.r_[np.asarray(names, dtype=object) == "none", False][codes.tech]
    groups = [("*", op_code < 0)] if (op_code < 0).any() else []
    groups = sorted(groups + [(str(name), op_code == k) for k, name in enumerate(op_names)])
    for op_name, sel in groups:
        n_all = np.bincount(ccode[sel], minlength=k_cells)
        n_none = np.bincount(ccode[sel & is_none], minlength=k_cells)
        dead = ucell[(n_all > 0) & (n_none >= 0.5 * n_all)] if len(ucell) else ucell
        if not len(dead):
            continue
        for (lop, tech), layer in out.layers.items():
            if op_name == "*" or lop == op_name:
                floor = np.float32(FLOOR_DBM.get(tech, -125.0))
                before = np.fmax(layer.reshape(-1)[carrier.pos(dead)], floor)
                carrier.carry(layer, dead, np.full(len(dead), np.nan, dtype="float32"),
                              np.minimum(0.0, NO_SERVICE_DBM.get(tech, floor) - before), floor)
