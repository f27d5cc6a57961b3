"""Checking inputs without changing them: the report behind ``covgap validate``.

Each input is read by the run's own loader (:func:`coverage.inputs.load_inputs`); what the
readers refuse becomes an error line, what they repair a warning line, and cross-checks
between inputs (towers far from the villages or with swapped coordinates, measurements
outside every village, rasters that miss villages, villages that overlap or lie far from
the others) add notes. Nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from . import io
from .inputs import far_towers, input_label, load_inputs
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


def validate_inputs(
    villages: PathLike,
    *,
    max_range_km: float = ModelParams().max_range_km,
    **inputs: Any,
) -> ValidationReport:
    """Read and cross-check every input; return the report. Nothing is written.

    The inputs are read by the run's own loader (:func:`coverage.inputs.load_inputs`),
    which here collects each input's refusal and repairs and goes on.

    Parameters
    ----------
    villages : path
        The villages file.
    max_range_km : float
        Towers farther than this from every village are reported as left out (a config
        file's ``[model] max_range_km``, as the run uses it).
    **inputs
        The other inputs, column mapping and CRS, as :func:`coverage.inputs.load_inputs`
        takes them (``towers=``, ``measurements=``, ``population=``, ``dem=``, ``access=``,
        ``fibre=``, ``roads=``, ``candidates=``, ``landcover=``, ``coverage=``, ``id_col=``,
        ``name_col=``, ``pop_col=``, ``columns=``, ``assume_crs=``).

    Returns
    -------
    ValidationReport
        ``report.ok`` is False when any input is unusable.
    """
    r = ValidationReport()
    got = load_inputs(villages, **inputs, report=r)
    towers, measurements = inputs.get("towers", ()), inputs.get("measurements", ())
    population, dem = inputs.get("population"), inputs.get("dem")
    vil = got.villages
    metric = None
    if vil is not None:
        metric = _village_notes(r, input_label("villages", villages), vil, population)
    tw = got.towers if towers else None
    if tw is not None:
        label = input_label("towers", towers)
        flagged = int((tw["flags"].fillna("") != "").sum())
        r.add("info", label, f"{len(tw)} transmitters at {tw.site_id.nunique()} sites; "
              f"technologies {tw.tech.value_counts().sort_index().to_dict()}"
              + (f"; {flagged} flagged (see warnings)" if flagged else ""))
        if vil is not None:
            _towers_in_area(r, label, tw, vil, metric, max_range_km)
    if got.measurements is not None:
        _measurement_notes(r, input_label("measurements", measurements), got.measurements,
                           vil)
    for what, path, ras in (("population", population, got.population),
                            ("DEM", dem, got.dem),
                            ("land cover", inputs.get("landcover"), got.landcover)):
        if ras is not None:
            _raster_notes(r, input_label(what, path), ras, vil)
    if got.access is not None and vil is not None:
        _access_notes(r, input_label("access", inputs.get("access")), got.access, vil)
    _other_notes(r, got, inputs)
    return r


def _village_notes(r: ValidationReport, label: str, vil: gpd.GeoDataFrame, population
                   ) -> CRS:
    """Count, geometry types, CRS and population of the villages; returns the metric CRS."""
    metric = io.metric_crs(vil)
    r.add("info", label,
          f"{len(vil)} villages, {vil.geom_type.value_counts().to_dict()}, CRS "
          f"{vil.crs.to_string()} ({vil.crs.name}); analysis CRS would be "
          f"{metric.to_string()} ({metric.name})")
    if "population" in vil.columns:
        r.add("info", label, f"population column: {vil['population'].sum():,.0f} people, "
              f"{int(vil['population'].isna().sum())} empty")
    elif population is None:
        r.add("warning", label, "no population column or raster: shares will be by area "
              "and population empty")
    _layout_notes(r, label, vil.to_crs(metric))
    return metric


#: Share of the smaller village's area two villages may share before they are reported
#: (digitised borders overlap by slivers).
OVERLAP_SHARE = 0.1
#: Distance (km) to every other village beyond which a village is reported as astray.
ASTRAY_KM = 50.0


def _layout_notes(r: ValidationReport, label: str, vil: gpd.GeoDataFrame) -> None:
    """Villages overlapping one another, and villages far from all the others (metric CRS).

    A test in two overlapping villages counts for one of them only, and their people for
    both; a village hundreds of kilometres from the rest (a misplaced polygon) stretches
    the analysis area, and the run's memory and time, across the gap.
    """
    geoms = vil.geometry.to_numpy()
    ids = vil["village_id"].to_numpy()
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    a, b = a[a < b], b[a < b]
    if len(a):
        shared = shapely.area(shapely.intersection(geoms[a], geoms[b]))
        smaller = np.minimum(shapely.area(geoms[a]), shapely.area(geoms[b]))
        big = shared > OVERLAP_SHARE * smaller
        if big.any():
            pairs = [f"{ids[i]}/{ids[j]}" for i, j in zip(a[big][:10], b[big][:10], strict=True)]
            r.add("warning", label, f"{int(big.sum())} pair(s) of villages overlap by more "
                  f"than {OVERLAP_SHARE:.0%} of the smaller one ({', '.join(pairs)}"
                  f"{' ...' if big.sum() > 10 else ''}): a test there counts for one of them "
                  "and the people for both; are two levels (villages and communes) or "
                  "duplicated polygons in one layer?")
    if len(geoms) < 3:
        return
    near, dist = tree.query_nearest(geoms, exclusive=True, return_distance=True,
                                    all_matches=False)
    gap = np.zeros(len(geoms))
    gap[near[0]] = dist / 1000.0
    astray = np.flatnonzero(gap > ASTRAY_KM)
    if len(astray):
        far = ", ".join(f"{ids[i]}: {gap[i]:,.0f} km" for i in astray[:10])
        r.add("warning", label, f"{len(astray)} village(s) lie more than {ASTRAY_KM:g} km "
              f"from every other village ({far}{' ...' if len(astray) > 10 else ''}"
              "): misplaced polygons (wrong CRS or coordinates in one feature)? An island "
              "may be so; a misplaced one stretches the analysis area, and the run's "
              "memory and time, across the gap")


def _access_notes(r: ValidationReport, label: str, acc: pd.DataFrame,
                  vil: gpd.GeoDataFrame) -> None:
    """Rows of the access table and villages without one.

    Rows that name no village are warned of as the table is read
    (:func:`coverage.inputs.warn_unknown_access`).
    """
    absent = len(set(vil.village_id) - set(acc.index))
    r.add("info", label, f"{len(acc)} rows; {absent} village(s) without "
          "a row (no constraint for them)")


def _other_notes(r: ValidationReport, got, inputs: dict[str, Any]) -> None:
    """What was read of the fibre, roads, candidates and operators' coverage maps."""
    if got.fibre is not None:
        r.add("info", input_label("fibre", inputs.get("fibre")), f"{len(got.fibre)} features "
              f"{got.fibre.geom_type.value_counts().to_dict()}")
    if got.roads is not None:
        r.add("info", input_label("roads", inputs.get("roads")),
              f"{len(got.roads.nodes)} nodes, {len(got.roads.edges)} edges")
    if got.candidates is not None:
        r.add("info", input_label("candidates", inputs.get("candidates")),
              f"{len(got.candidates)} candidate sites")
    if got.coverage is not None:
        maps = got.coverage
        r.add("info", input_label("coverage", inputs.get("coverage", ())),
              f"operators' claimed coverage: {len(maps.polygons)} polygon(s), "
              f"{len(maps.rasters)} raster(s) of dBm; operators {', '.join(maps.operators)}")


def _measurement_notes(r: ValidationReport, label: str, ms: gpd.GeoDataFrame,
                       vil: gpd.GeoDataFrame | None) -> None:
    """How many observations, from which sources, and how many fall inside a village."""
    msg = f"{len(ms)} observations ({ms.source.value_counts().to_dict()})"
    if vil is not None:
        tree = shapely.STRtree(vil.to_crs(4326).geometry.to_numpy())
        hit = tree.query(ms.geometry.to_numpy(), predicate="within")
        n_in = len(np.unique(hit[0])) if hit.size else 0
        msg += f", {n_in} inside a village"
        x0, y0, x1, y1 = vil.to_crs(4326).total_bounds  # wholly outside: warned as read
        if n_in == 0 and len(ms.cx[x0:x1, y0:y1]):
            r.add("warning", label, "no observation falls inside any village: "
                  "wrong area, or swapped coordinates?")
    r.add("info", label, msg)


def _raster_notes(r: ValidationReport, label: str, ras: io.Raster,
                  vil: gpd.GeoDataFrame | None) -> None:
    """Size, CRS and value range of a raster, and whether it covers the villages."""
    finite = np.isfinite(ras.array)
    lo, hi = ((np.nanmin(ras.array), np.nanmax(ras.array)) if finite.any() else (0.0, 0.0))
    r.add("info", label, f"{ras.shape[1]} x {ras.shape[0]} cells, CRS "
          f"{ras.crs.to_string()}, values {lo:,.1f}..{hi:,.1f}, "
          f"{int((~finite).sum())} no-data cells")
    if vil is not None:
        b = vil.to_crs(ras.crs).total_bounds
        rb = ras.bounds
        if b[0] < rb[0] or b[1] < rb[1] or b[2] > rb[2] or b[3] > rb[3]:
            r.add("warning", label, "the raster does not cover all "
                  f"villages (villages {np.round(b, 4).tolist()}, raster "
                  f"{np.round(rb, 4).tolist()} in {ras.crs.to_string()})")


def _towers_in_area(r: ValidationReport, label: str, tw: gpd.GeoDataFrame,
                    vil: gpd.GeoDataFrame, metric, max_range_km: float) -> None:
    """Report towers beyond ``max_range_km`` of every village; say when lon/lat look swapped.

    The run's own test (:func:`coverage.inputs.far_towers`, a tree of the villages).
    """
    far = far_towers(tw, vil, max_range_km)
    if not far.any():
        return
    ids = sorted(set(tw.site_id[far].astype(str)))
    r.add("warning", label, f"{len(ids)} site(s) lie more than {max_range_km:g} km from "
          f"every village and will be left out of the analysis: {ids[:10]}"
          f"{' ...' if len(ids) > 10 else ''}")
    pts = tw.geometry[far]
    swapped = gpd.GeoSeries(shapely.points(pts.y.to_numpy(), pts.x.to_numpy()), crs=4326)
    ok = (swapped.y.abs() <= 90).to_numpy()
    if ok.any():
        back = np.zeros(len(pts), dtype=bool)
        back[ok] = ~far_towers(gpd.GeoDataFrame(geometry=swapped[ok]), vil, max_range_km)
        if back.any():
            r.add("warning", label, f"{int(back.sum())} of them would lie among the "
                  "villages with longitude and latitude swapped: check the lon/lat columns of "
                  f"sites {sorted(set(tw.site_id[far][back].astype(str)))[:10]}")
