"""Checking inputs without changing them: the report behind ``covgap validate``.

Each input is read with the same readers as a run; what they refuse becomes an error line,
what they repair a warning line, and cross-checks between inputs (towers far from the
villages or with swapped coordinates, measurements outside every village, rasters that miss
villages, access rows of unknown villages) add notes. Nothing is written.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from . import io
from .errors import CoverageGapError, CoverageGapWarning
from .params import ModelParams

__all__ = ["ValidationReport", "validate_inputs"]

PathLike = str | os.PathLike[str]
_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class ValidationReport:
    """Findings by input: ``(level, input, message)`` with level error, warning or info."""

    items: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no input is unusable (no error)."""
        return not any(level == "error" for level, _, _ in self.items)

    def add(self, level: str, what: str, message: str) -> None:
        """Record one finding."""
        if level not in _ORDER:
            raise ValueError(f"level must be one of {', '.join(_ORDER)}")
        self.items.append((level, what, message))

    def count(self, level: str) -> int:
        """Number of findings of ``level``."""
        return sum(1 for i in self.items if i[0] == level)

    def text(self) -> str:
        """The report as readable lines grouped by input, errors first within each."""
        lines = []
        inputs = list(dict.fromkeys(what for _, what, _ in self.items))
        for what in inputs:
            lines.append(what)
            mine = [i for i in self.items if i[1] == what]
            for level, _, message in sorted(mine, key=lambda i: _ORDER[i[0]]):
                lines.append(f"  [{level.upper():7}] {message}")
        verdict = ("Inputs are usable." if self.ok
                   else "Inputs are NOT usable: fix the errors above.")
        lines.append(f"{verdict} ({self.count('error')} error(s), "
                     f"{self.count('warning')} warning(s)); nothing was changed.")
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
        else:  # third-party warnings still go out, unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return value


def validate_inputs(
    villages: PathLike,
    *,
    towers: Sequence[PathLike] = (),
    measurements: Sequence[PathLike] = (),
    population: PathLike | None = None,
    dem: PathLike | Sequence[PathLike] | None = None,
    access: PathLike | None = None,
    fibre: PathLike | None = None,
    roads: PathLike | None = None,
    candidates: PathLike | None = None,
    landcover: PathLike | None = None,
    id_col: str = "village_id",
    name_col: str = "name",
    pop_col: str = "population",
    columns: Mapping[str, Mapping[str, str]] | None = None,
    assume_crs: str | None = None,
    max_range_km: float = ModelParams().max_range_km,
) -> ValidationReport:
    """Read and cross-check every input; return the report. Nothing is written.

    Parameters
    ----------
    villages, towers, measurements, population, dem, access, fibre, roads, candidates, landcover
        The inputs, as for ``covgap classify`` and ``covgap plan``.
    id_col, name_col, pop_col, columns, assume_crs
        Column mapping and CRS, as for the readers in :mod:`coverage.io`.
    max_range_km : float
        Towers farther than this from every village are reported as left out.

    Returns
    -------
    ValidationReport
        ``report.ok`` is False when any input is unusable.
    """
    columns = columns or {}
    r = ValidationReport()
    vlabel = f"villages {villages}"
    vil = _read(r, vlabel, io.read_villages, villages, id_col=id_col, name_col=name_col,
                pop_col=pop_col, columns=columns.get("villages"), assume_crs=assume_crs)
    metric = None
    if vil is not None:
        metric = io.metric_crs(vil)
        r.add("info", vlabel,
              f"{len(vil)} villages, {vil.geom_type.value_counts().to_dict()}, CRS "
              f"{vil.crs.to_string()} ({vil.crs.name}); analysis CRS would be "
              f"{metric.to_string()} ({metric.name})")
        if "population" in vil.columns:
            r.add("info", vlabel, f"population column: {vil['population'].sum():,.0f} people, "
                  f"{int(vil['population'].isna().sum())} empty")
        elif population is None:
            r.add("warning", vlabel, "no population column or raster: shares will be by area "
                  "and population empty")
    if towers:
        tw = _read(r, "towers", io.read_towers, list(towers), columns=columns.get("towers"),
                   assume_crs=assume_crs)
        if tw is not None:
            flagged = int((tw["flags"].fillna("") != "").sum())
            r.add("info", "towers", f"{len(tw)} transmitters at {tw.site_id.nunique()} sites; "
                  f"technologies {tw.tech.value_counts().sort_index().to_dict()}"
                  + (f"; {flagged} flagged (see warnings)" if flagged else ""))
            if vil is not None:
                _towers_in_area(r, tw, vil, metric, max_range_km)
    if measurements:
        ms = _read(r, "measurements", io.read_measurements, list(measurements),
                   columns=columns.get("measurements"), assume_crs=assume_crs)
        if ms is not None:
            msg = f"{len(ms)} observations ({ms.source.value_counts().to_dict()})"
            if vil is not None:
                tree = shapely.STRtree(vil.to_crs(4326).geometry.to_numpy())
                hit = tree.query(ms.geometry.to_numpy(), predicate="within")
                n_in = len(np.unique(hit[0])) if hit.size else 0
                msg += f", {n_in} inside a village"
                if n_in == 0:
                    r.add("warning", "measurements", "no observation falls inside any village: "
                          "wrong area, or swapped coordinates?")
            r.add("info", "measurements", msg)
    for what, path in (("population", population), ("DEM", dem), ("land cover", landcover)):
        if not path:
            continue
        source = path  # one file, or DEM tiles to mosaic
        if not isinstance(path, str | os.PathLike):
            source = list(path) if len(path) > 1 else path[0]
        label = (", ".join(str(q) for q in source) if isinstance(source, list)
                 else str(source))
        ras = _read(r, f"{what} {label}", io.read_raster, source, what=what,
                    assume_crs=assume_crs)
        if ras is not None:
            finite = np.isfinite(ras.array)
            lo, hi = ((np.nanmin(ras.array), np.nanmax(ras.array)) if finite.any()
                      else (0.0, 0.0))
            r.add("info", f"{what} {label}", f"{ras.shape[1]} x {ras.shape[0]} cells, CRS "
                  f"{ras.crs.to_string()}, values {lo:,.1f}..{hi:,.1f}, "
                  f"{int((~finite).sum())} no-data cells")
            if vil is not None:
                b = vil.to_crs(ras.crs).total_bounds
                rb = ras.bounds
                if b[0] < rb[0] or b[1] < rb[1] or b[2] > rb[2] or b[3] > rb[3]:
                    r.add("warning", f"{what} {label}", "the raster does not cover all "
                          f"villages (villages {np.round(b, 4).tolist()}, raster "
                          f"{np.round(rb, 4).tolist()} in {ras.crs.to_string()})")
    if access:
        acc = _read(r, f"access {access}", io.read_access, access,
                    columns=columns.get("access"))
        if acc is not None and vil is not None:
            unknown = sorted(set(acc.index) - set(vil.village_id))
            absent = len(set(vil.village_id) - set(acc.index))
            r.add("info", f"access {access}", f"{len(acc)} rows; {absent} village(s) without "
                  "a row (no constraint for them)")
            if unknown:
                r.add("warning", f"access {access}", f"{len(unknown)} row(s) name no village "
                      f"and are ignored: {unknown[:10]}")
    if fibre:
        fb = _read(r, f"fibre {fibre}", io.read_fibre, fibre, assume_crs=assume_crs)
        if fb is not None:
            r.add("info", f"fibre {fibre}", f"{len(fb)} features "
                  f"{fb.geom_type.value_counts().to_dict()}")
    if roads:
        g = _read(r, f"roads {roads}", io.read_roads, roads)
        if g is not None:
            r.add("info", f"roads {roads}", f"{len(g.nodes)} nodes, {len(g.edges)} edges")
    if candidates:
        cd = _read(r, f"candidates {candidates}", io.read_candidates, candidates,
                   columns=columns.get("candidates"), assume_crs=assume_crs)
        if cd is not None:
            r.add("info", f"candidates {candidates}", f"{len(cd)} candidate sites")
    return r


def _towers_in_area(r: ValidationReport, tw: gpd.GeoDataFrame, vil: gpd.GeoDataFrame,
                    metric, max_range_km: float) -> None:
    """Report towers beyond ``max_range_km`` of every village; say when lon/lat look swapped."""
    area = vil.to_crs(metric).geometry.union_all()
    dist_km = tw.geometry.to_crs(metric).distance(area).to_numpy() / 1000.0
    far = dist_km > max_range_km
    if not far.any():
        return
    ids = sorted(set(tw.site_id[far].astype(str)))
    r.add("warning", "towers", f"{len(ids)} site(s) lie more than {max_range_km:g} km from "
          f"every village and will be left out of the analysis: {ids[:10]}"
          f"{' ...' if len(ids) > 10 else ''}")
    pts = tw.geometry[far]
    swapped = gpd.GeoSeries(shapely.points(pts.y.to_numpy(), pts.x.to_numpy()), crs=4326)
    ok = (swapped.y.abs() <= 90).to_numpy()
    if ok.any():
        d_swap = np.full(len(pts), np.inf)
        d_swap[ok] = swapped[ok].to_crs(metric).distance(area).to_numpy() / 1000.0
        back = d_swap <= max_range_km
        if back.any():
            r.add("warning", "towers", f"{int(back.sum())} of them would lie among the "
                  "villages with longitude and latitude swapped: check the lon/lat columns of "
                  f"sites {sorted(set(tw.site_id[far][back].astype(str)))[:10]}")
