"""Checking inputs without changing them: the report behind ``covgap validate``.

Each input is read with the same readers as a run; what they refuse becomes an error line,
what they repair a warning line, and cross-checks between inputs (towers far from the
villages, measurements outside every village, rasters that miss villages, access rows of
unknown villages) add notes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from . import io
from .errors import CoverageGapError, CoverageGapWarning

__all__ = ["ValidationReport", "validate_inputs"]

PathLike = str | os.PathLike[str]


@dataclass
class ValidationReport:
    """Problems found, by input: ``(level, input, message)`` with level error/warning/info."""

    items: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no input is unusable."""
        return not any(level == "error" for level, _, _ in self.items)

    def add(self, level: str, what: str, message: str) -> None:
        """Record one finding."""
        self.items.append((level, what, message))

    def text(self) -> str:
        """The report as readable lines, errors first."""
        order = {"error": 0, "warning": 1, "info": 2}
        lines = []
        for level, what, message in sorted(self.items, key=lambda i: order[i[0]]):
            lines.append(f"[{level.upper():7}] {what}: {message}")
        verdict = ("Inputs are usable." if self.ok
                   else "Inputs are NOT usable: fix the errors above.")
        counts = {k: sum(1 for i in self.items if i[0] == k) for k in order}
        lines.append(f"{verdict} ({counts['error']} error(s), {counts['warning']} warning(s))")
        return "\n".join(lines)


def _read(report: ValidationReport, label: str, func, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CoverageGapWarning)
        try:
            value = func(*args, **kwargs)
        except CoverageGapError as exc:
            report.add("error", label, str(exc))
            value = None
    for w in caught:
        if issubclass(w.category, CoverageGapWarning):
            report.add("warning", label, str(w.message))
    return value


def validate_inputs(
    villages: PathLike,
    *,
    towers: Sequence[PathLike] = (),
    measurements: Sequence[PathLike] = (),
    population: PathLike | None = None,
    dem: PathLike | None = None,
    access: PathLike | None = None,
    fibre: PathLike | None = None,
    roads: PathLike | None = None,
    candidates: PathLike | None = None,
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    assume_crs: str | None = None,
) -> ValidationReport:
    """Read and cross-check every input; return the report (nothing is written)."""
    r = ValidationReport()
    vil = _read(r, f"villages {villages}", io.read_villages, villages, id_col=id_col,
                name_col=name_col, pop_col=pop_col, assume_crs=assume_crs)
    if vil is not None:
        r.add("info", f"villages {villages}",
              f"{len(vil)} villages, CRS {vil.crs.to_string()}; analysis CRS would be "
              f"{io.metric_crs(vil).to_string()}")
        if "population" not in vil.columns and population is None:
            r.add("warning", "population", "no population column or raster: shares will be "
                  "by area and population empty")
    tw = _read(r, "towers", io.read_towers, list(towers), assume_crs=assume_crs) \
        if towers else None
    if tw is not None:
        r.add("info", "towers", f"{len(tw)} transmitters at {tw.site_id.nunique()} sites; "
              f"technologies {tw.tech.value_counts().to_dict()}")
        if vil is not None:
            crs = io.metric_crs(vil)
            d = tw.geometry.to_crs(crs).distance(vil.to_crs(crs).geometry.union_all()) / 1000
            far = d > 30
            if far.any():
                r.add("warning", "towers", f"{int(far.sum())} transmitter(s) more than 30 km "
                      f"from every village will be left out: "
                      f"{sorted(set(tw.site_id[far].astype(str)))[:10]}")
    ms = _read(r, "measurements", io.read_measurements, list(measurements),
               assume_crs=assume_crs) if measurements else None
    if ms is not None and vil is not None:
        inside = shapely.STRtree(vil.to_crs(4326).geometry.to_numpy()).query(
            ms.geometry.to_numpy(), predicate="within")
        n_in = len(np.unique(inside[0])) if inside.size else 0
        r.add("info", "measurements", f"{len(ms)} observations, {n_in} inside a village")
    for what, path in (("population", population), ("DEM", dem)):
        if path is None:
            continue
        ras = _read(r, f"{what} {path}", io.read_raster, path, what=what)
        if ras is not None and vil is not None:
            b = vil.to_crs(ras.crs).total_bounds
            rb = ras.bounds
            if b[0] < rb[0] or b[1] < rb[1] or b[2] > rb[2] or b[3] > rb[3]:
                r.add("warning", f"{what} {path}", "the raster does not cover all villages "
                      f"(villages {np.round(b, 4)}, raster {np.round(rb, 4)})")
    if access:
        acc = _read(r, f"access {access}", io.read_access, access)
        if acc is not None and vil is not None:
            unknown = sorted(set(acc.index) - set(vil.village_id))
            if unknown:
                r.add("warning", f"access {access}", f"{len(unknown)} row(s) name no village: "
                      f"{unknown[:10]}")
    if fibre:
        _read(r, f"fibre {fibre}", io.read_fibre, fibre, assume_crs=assume_crs)
    if roads:
        g = _read(r, f"roads {roads}", io.read_roads, roads)
        if g is not None:
            r.add("info", f"roads {roads}", f"{len(g.nodes)} nodes, {len(g.edges)} edges")
    if candidates:
        _read(r, f"candidates {candidates}", io.read_candidates, candidates,
              assume_crs=assume_crs)
    return r
