"""Measurement rows that cannot be used: screened, counted by cause and reported per file.

A crowdsourced file of millions of tests always holds some rows no receiver could have
produced: a latitude of 999, an infinite level, a negative speed. Such rows are dropped and
the run goes on; the file's :class:`MeasurementReport` says how many rows were read, how
many were dropped for each cause and the first line numbers of each. When more than
:data:`SUSPECT_SHARE` of a file's rows have coordinates that cannot be on Earth, the file as
a whole is suspect (swapped columns, projected metres read as degrees) and reading it is
refused with a :class:`~coverage.errors.CRSError` that says so.

Files are screened chunk by chunk (:class:`RowScreen`): counts, line numbers and the share
off the Earth are kept over the whole file, so the result does not depend on the chunk size.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS

from ..errors import CRSError, InputError, did_you_mean
from ._common import crs_hint, warn_repair

__all__ = ["DROP_CAUSES", "MEASUREMENT_LIMITS", "SUSPECT_SHARE", "MeasurementReport",
           "RowScreen"]

log = logging.getLogger("coverage.io")

#: Physically possible ranges, inclusive; a row with a value outside is dropped (an empty
#: value is a value not measured, and the row stays for its others). Levels: a handset
#: reports RSRP from -156 to -44 dBm (3GPP TS 36.133's extended report mapping), so -160 dBm
#: is below any report and -20 dBm is next to the antenna. Speeds: 10,000 Mbps (10 Gbit/s) is
#: the peak rate of the fastest handset modems (5G NR, e.g. Snapdragon X65 and later) and the
#: IMT-2020 uplink peak requirement (ITU-R M.2410-0, 2017: 20 Gbit/s down, 10 Gbit/s up, for
#: a whole cell under ideal conditions); no handset test can exceed it. Latency: beyond a
#: minute a test has timed out (apps report such a timeout as a number).
MEASUREMENT_LIMITS = {
    "rsrp_dbm": (-160.0, -20.0),
    "download_mbps": (0.0, 10_000.0),
    "upload_mbps": (0.0, 10_000.0),
    "latency_ms": (0.0, 60_000.0),
}
#: A file with more than this share of its rows off the Earth is refused as a whole.
SUSPECT_SHARE = 0.05
#: Why a row is dropped, in the order they are tested: a row counts under the first that
#: holds, so the counts add up to the rows dropped.
DROP_CAUSES = {
    "no_position": "no position (coordinates empty, not numbers or infinite, or no "
                   "geometry)",
    "off_earth": "coordinates that cannot be on Earth (latitude beyond ±90 or longitude "
                 "beyond ±180 degrees)",
    "null_island": "at 0,0 (a receiver without a position fix)",
    "rsrp_dbm": "rsrp_dbm outside -160..-20 dBm, or infinite",
    "download_mbps": "download_mbps negative or above 10,000 Mbps, or infinite",
    "upload_mbps": "upload_mbps negative or above 10,000 Mbps, or infinite",
    "latency_ms": "latency_ms negative or above 60,000 ms, or infinite",
}
#: Margin around a CRS's area of use, degrees (as :func:`coverage.io.check_place`).
_AREA_MARGIN_DEG = 5.0
_CODES = {name: k + 1 for k, name in enumerate(DROP_CAUSES)}
#: First line (or row) numbers kept per cause, for the report.
FIRST_LINES = 5


@dataclass(frozen=True)
class MeasurementReport:
    """What reading one measurements file kept and dropped.

    Attributes
    ----------
    path : Path
        The file.
    rows_read : int
        Rows of data read (blank lines are not rows).
    dropped : mapping of str to int
        Rows dropped by cause (keys of :data:`DROP_CAUSES`; only causes that occurred).
    first_lines : mapping of str to tuple of int
        The first (at most 5) line numbers of the rows dropped, by cause.
    numbering : str
        ``"line"``: a text file's line numbers as an editor shows them, the header being
        line 1 (a line break inside a quoted field would shift them); ``"row"``: data rows
        counted from 1 (Parquet and other binary formats have no lines).
    tiles_without_devices : int
        Ookla tiles kept whose ``devices`` is missing, empty, under 1 or not a number:
        each stands for as many testers as its ``tests``.
    """

    path: Path
    rows_read: int
    dropped: Mapping[str, int] = field(default_factory=dict)
    first_lines: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    numbering: str = "line"
    tiles_without_devices: int = 0

    @property
    def rows_dropped(self) -> int:
        """Rows dropped, all causes."""
        return sum(self.dropped.values())

    @property
    def rows_kept(self) -> int:
        """Rows kept as observations."""
        return self.rows_read - self.rows_dropped

    def text(self) -> str:
        """The report as one readable paragraph."""
        return (f"measurements file {self.path}: {self.rows_read:,} row(s) read, "
                f"{self.rows_dropped:,} dropped, {self.rows_kept:,} used.{self._causes()}")

    def _causes(self) -> str:
        """`` Dropped: 3 with ... (lines 4, 9).``, or nothing when no row was dropped."""
        if not self.dropped:
            return ""
        parts = []
        for cause, n in self.dropped.items():
            numbers = list(self.first_lines.get(cause, ()))
            more = ", ..." if n > len(numbers) else ""
            word = self.numbering + ("s" if len(numbers) > 1 else "")
            parts.append(f"{n:,} with {DROP_CAUSES[cause]} ({word} "
                         f"{', '.join(map(str, numbers))}{more})")
        where = ("line numbers as an editor shows them, the header being line 1"
                 if self.numbering == "line" else "rows counted from 1, the first row of "
                 "data being row 1")
        return (f" Dropped: {'; '.join(parts)} ({where}). The run goes on without them; "
                "correct them in the file to use them.")


class RowScreen:
    """Screens the chunks of one measurements file and builds its :class:`MeasurementReport`.

    Parameters
    ----------
    path : Path
        The file, for messages.
    numbering : str
        ``"line"`` or ``"row"``, as in :class:`MeasurementReport`.
    total_rows : int, optional
        Rows in the file when known up front (Parquet metadata): a file off the Earth is
        then refused as soon as the share is certain, not at its end.
    operators : collection of str, optional
        The operators the towers name: tests naming another are counted and reported
        (they are kept; a test meets the model only through its operator's towers).
    """

    def __init__(self, path: Path, *, numbering: str = "line",
                 total_rows: int | None = None,
                 operators: Collection[str] | None = None) -> None:
        self.path = path
        self.operators = None if operators is None else frozenset(map(str, operators))
        #: tests by the operator they name, for operators no tower has
        self.other_operators: Counter = Counter()
        self.numbering = numbering
        self.total_rows = total_rows
        self.rows_read = 0
        self.rows_kept = 0
        self.dropped: dict[str, int] = {}
        self.first: dict[str, list[int]] = {}
        self._off_xy: list[np.ndarray] = []  # source coordinates of rows off the Earth
        self._crs: CRS | None = None  # a projected CRS stated for the file, and its rows
        self._outside_area = 0  # kept, on the Earth, far outside the CRS's area of use
        self._outside_xy: list[np.ndarray] = []
        #: values kept as empty, by what they were: ``{"tech": {"6G": 2}, "download_mbps":
        #: {"fast": 1}}``: technology labels not known, text in a number column
        self.unread: dict[str, Counter] = {}
        #: Ookla tiles kept without a usable ``devices`` (counted as their tests), and
        #: whether the file has the column at all
        self.tiles_without_devices = 0
        self.devices_column = True

    def note_unread(self, column: str, values: pd.Series) -> None:
        """Count values of ``column`` read as empty (an unknown label, text not a number)."""
        if len(values):
            self.unread.setdefault(column, Counter()).update(values.astype(str).tolist())

    def note_operators(self, labels: pd.Series, counts: np.ndarray) -> None:
        """Count the tests whose operator (``labels``, ``counts`` tests each) no tower has."""
        if self.operators is None or not self.operators:
            return
        for label, n in zip(labels.astype(str), counts, strict=True):
            if n and label.strip() and label not in self.operators:
                self.other_operators[label] += int(n)

    def note_devices(self, without: int, *, column: bool = True) -> None:
        """Count Ookla tiles kept without a usable ``devices`` (``column``: the file has one)."""
        self.tiles_without_devices += int(without)
        self.devices_column &= column

    def _devices_text(self) -> str:
        what = ("has no devices column" if not self.devices_column else
                f"has {self.tiles_without_devices:,} tile(s) whose devices is empty, under 1 "
                "or not a number")
        return (f"Ookla file {self.path} {what}: each such tile counts as many testers as "
                "its tests, as if every test were another person's (a tile's tests are often "
                "a few handsets' repeated runs, so its evidence is overstated). Ookla's open "
                "data give devices per tile; keep that column to count the tiles by their "
                "testers.")

    def _operators_text(self) -> str:
        counts = self.other_operators
        shown = ", ".join(f"{v!r} ({n}){did_you_mean(v, self.operators or ())}"
                          for v, n in counts.most_common(5))
        more = " ..." if len(counts) > 5 else ""
        return (f"measurements file {self.path}: {sum(counts.values()):,} test(s) name an "
                f"operator no tower has: {shown}{more}; the towers' operators: "
                f"{', '.join(sorted(self.operators or ()))}. The tests are kept, but a test "
                "meets the model only through its operator's towers (by name, exactly): "
                "correct the name in the file, or add that operator's towers.")

    def _unread_text(self) -> str:
        parts = []
        for column, counts in self.unread.items():
            shown = ", ".join(f"{v!r} ({n})" for v, n in counts.most_common(5))
            more = " ..." if len(counts) > 5 else ""
            what = ("technology labels not known (known: 2G, 3G, 4G, 5G, GSM, UMTS, LTE, NR "
                    "and their variants; none for no service)" if column == "tech" else
                    "timestamps that do not parse (ISO 8601 expected, e.g. "
                    "2024-05-01T10:00:00Z or 2024-05-01 17:00:00+07:00)"
                    if column == "timestamp" else f"text that is not a number in {column}")
            parts.append(f"{sum(counts.values()):,} with {what}: {shown}{more}")
        return (f"measurements file {self.path}: values read as empty, the rows kept for "
                f"their other values: {'; '.join(parts)}. Correct them in the file to use "
                "them.")

    def keep(self, values: pd.DataFrame, x: np.ndarray, y: np.ndarray, first: int, *,
             src_xy: tuple[np.ndarray, np.ndarray] | None = None,
             blank: np.ndarray | None = None, crs: Any = None) -> np.ndarray:
        """The rows of a chunk that can be used (a boolean mask); the others are counted.

        Parameters
        ----------
        values : DataFrame
            The chunk's measured values (columns of :data:`MEASUREMENT_LIMITS`, any
            missing).
        x, y : ndarray
            Positions, longitude and latitude in degrees (EPSG:4326); NaN where none.
        first : int
            Line (or row) number of the chunk's first row.
        src_xy : tuple of ndarray, optional
            The coordinates as the file gives them, for the hint of a suspect file.
        blank : ndarray of bool, optional
            Blank lines: not rows, neither kept nor counted.
        crs : CRS-like, optional
            The CRS the file states (or is assumed). When projected, rows kept that land
            more than 5 degrees outside its area of use are counted: more than 5% of them
            means the CRS is wrong (degrees labelled as metres), and the file is refused.
        """
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        sx, sy = (np.asarray(v, dtype=float) for v in (src_xy or (x, y)))
        cause = _drop_causes(values, x, y, sx, sy, blank)
        ok = cause == 0
        self._count(cause, first)
        if np.any(cause == _CODES["off_earth"]):
            at = cause == _CODES["off_earth"]
            self._off_xy.append(np.column_stack([sx[at], sy[at]])[:1000])
        if crs is not None and self._crs is None:
            self._crs = CRS.from_user_input(crs)
        if self._crs is not None and not self._crs.is_geographic:
            self._note_outside_area(ok, x, y, sx, sy)
        if self.total_rows and self.dropped.get("off_earth", 0) > SUSPECT_SHARE * \
                self.total_rows:
            raise self._suspect(self.total_rows, early=True)
        return ok

    def _count(self, cause: np.ndarray, first: int) -> None:
        """Add a chunk's rows read, kept and dropped by cause, and the first lines of each."""
        counts = np.bincount(cause + 1, minlength=len(_CODES) + 2)  # blank, kept, causes
        self.rows_read += int(len(cause) - counts[0])
        self.rows_kept += int(counts[1])
        for name, code in _CODES.items():
            if counts[code + 1]:
                self.dropped[name] = self.dropped.get(name, 0) + int(counts[code + 1])
                got = self.first.setdefault(name, [])
                if len(got) < FIRST_LINES:
                    where = np.flatnonzero(cause == code)[:FIRST_LINES - len(got)]
                    got.extend(int(first + i) for i in where)

    def _note_outside_area(self, ok: np.ndarray, x: np.ndarray, y: np.ndarray,
                           sx: np.ndarray, sy: np.ndarray) -> None:
        """Count the kept rows far outside the stated projected CRS's area of use."""
        area, m = self._crs.area_of_use, _AREA_MARGIN_DEG
        if area is not None:
            far = ok & ((x < area.west - m) | (x > area.east + m) | (y < area.south - m)
                        | (y > area.north + m))
            self._outside_area += int(far.sum())
            self._outside_xy.append(np.column_stack([sx[far], sy[far]])[:1000])

    def _suspect(self, rows: int, *, early: bool = False) -> CRSError:
        """The error for a file off the Earth (``early``: before the whole file was read)."""
        n = self.dropped["off_earth"]
        xy = np.concatenate(self._off_xy)  # finite, as the file gives them
        if ((np.abs(xy[:, 0]) <= 90) & (np.abs(xy[:, 1]) <= 180)).all():
            hint = ("The columns look swapped: lon holds latitudes and lat longitudes; swap "
                    "the column names (or the coordinates, x = longitude, y = latitude).")
        else:
            b = np.array([*xy.min(axis=0), *xy.max(axis=0)])
            hint = (f"Bounds of those rows {np.round(b, 1).tolist()}: if these are projected "
                    f"metres, state their CRS with --assume-crs ({crs_hint(b)}).")
        numbers = ", ".join(map(str, self.first["off_earth"]))
        word = self.numbering + "s"
        return CRSError(
            f"measurements file {self.path}: {'at least ' if early else ''}{n:,} of "
            f"{rows:,} row(s) ({n / rows:.1%}) have "
            f"coordinates that cannot be on Earth ({word} {numbers}"
            f"{', ...' if n > len(self.first['off_earth']) else ''}). More than "
            f"{SUSPECT_SHARE:.0%} of a file is not a few bad rows: the file as a whole is "
            f"suspect, and is not used. {hint}")

    def _outside_crs_area(self) -> CRSError:
        """The error for a file whose stated projected CRS is not where its rows are."""
        crs, area, n = self._crs, self._crs.area_of_use, self._outside_area
        xy = np.concatenate(self._outside_xy)
        b = np.array([*xy.min(axis=0), *xy.max(axis=0)])
        why = ("the coordinates look like degrees: do not state a CRS for lon/lat columns "
               "(they are EPSG:4326)" if np.abs(b).max() <= 360 else crs_hint(b, option=""))
        return CRSError(
            f"measurements file {self.path}: in the stated CRS {crs.to_string()} "
            f"({crs.name}) {n:,} of {self.rows_read:,} row(s) ({n / self.rows_read:.1%}) land "
            f"outside the area where that CRS is used ({area.name}: {area.west:.1f}.."
            f"{area.east:.1f}E, {area.south:.1f}..{area.north:.1f}N; bounds of those rows as "
            f"given {np.round(b, 3).tolist()}): the CRS is wrong; {why}.")

    def finish(self) -> MeasurementReport:
        """The file's report, issued as a warning when rows were dropped, and logged.

        Raises
        ------
        CRSError
            When more than :data:`SUSPECT_SHARE` of the rows lie off the Earth, or, in a
            stated projected CRS, far outside its area of use.
        InputError
            When rows were read and none can be used (a file of no rows, a header only,
            is reported and used as no tests).
        """
        if self.dropped.get("off_earth", 0) > SUSPECT_SHARE * self.rows_read:
            raise self._suspect(self.rows_read)
        if self._outside_area > SUSPECT_SHARE * self.rows_read:
            raise self._outside_crs_area()
        report = MeasurementReport(
            path=self.path, rows_read=self.rows_read,
            dropped={k: self.dropped[k] for k in DROP_CAUSES if k in self.dropped},
            first_lines={k: tuple(v) for k, v in self.first.items()},
            numbering=self.numbering, tiles_without_devices=self.tiles_without_devices)
        if self.rows_read == 0:  # a header only: an export that matched no test
            warn_repair(f"measurements file {self.path} holds no rows (a header only); the "
                        "run goes on without tests from it")
            return report
        if self.rows_kept == 0:
            raise InputError(
                f"measurements file {self.path}: no row has a usable position "
                f"({self.rows_read:,} row(s) read).{report._causes()} Are the coordinates "
                "in other columns (lon and lat, or a WKT geometry column)?")
        log.info("%s", report.text())
        if report.dropped:
            warn_repair(report.text())
        if self.unread:
            warn_repair(self._unread_text())
        if self.other_operators:
            warn_repair(self._operators_text())
        if self.tiles_without_devices:
            warn_repair(self._devices_text())
        return report


def _drop_causes(values: pd.DataFrame, x: np.ndarray, y: np.ndarray, sx: np.ndarray,
                 sy: np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """Why each row of a chunk is dropped, as a code per row (int8).

    0 kept, -1 blank, else 1 + the index in :data:`DROP_CAUSES` of the first cause that
    applies.

    ``x``, ``y`` are degrees (EPSG:4326); ``sx``, ``sy`` the coordinates as the file gives
    them: missing or infinite is no position; finite coordinates that land off the Earth
    (in EPSG:4326, or by the stated CRS) count for the 5%.
    """
    cause = np.zeros(len(x), dtype=np.int8)

    def mark(bad: np.ndarray, name: str) -> None:
        cause[bad & (cause == 0)] = _CODES[name]

    if blank is not None:
        cause[blank] = -1
    mark(~(np.isfinite(sx) & np.isfinite(sy)), "no_position")
    mark(~(np.isfinite(x) & np.isfinite(y)) | (np.abs(y) > 90) | (np.abs(x) > 180),
         "off_earth")
    mark((x == 0) & (y == 0), "null_island")
    for col, (lo, hi) in MEASUREMENT_LIMITS.items():
        if col in values.columns:
            v = values[col].to_numpy(dtype=float)
            mark(~np.isnan(v) & ((v < lo) | (v > hi)), col)
    return cause
