"""The figures the index page and the report show: villages and people per class, targets.

Pure pandas/shapely; nothing here draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import SchemaError
from ._common import CLASSES, _class_of

logger = logging.getLogger(__name__)

#: Decision 411/QD-TTg and the national digital infrastructure strategy: mobile broadband in
#: every village; fibre to 80% of households by 2025 and to every household by 2030.
FIBRE_TARGETS: dict[int, float] = {2025: 0.80, 2030: 1.00}
#: A village counts as reached by fibre when a fibre route or node lies this close to it: the
#: reach of an FTTH distribution cable from a splice point (a proxy for "households passed").
FIBRE_REACH_M = 500.0


def _people(classified: pd.DataFrame) -> pd.Series:
    if "population" not in classified.columns:
        return pd.Series(np.nan, index=classified.index)
    return pd.to_numeric(classified["population"], errors="coerce")


def class_table(classified: pd.DataFrame) -> pd.DataFrame:
    """Villages and people per class, with their shares of the total.

    Rows ``unavailable``, ``available_inaccessible``, ``served``, plus ``unknown`` when some
    village has no class. ``people`` sums ``population`` (missing counts as 0);
    ``people_share`` is NaN when no village has a population.
    """
    if "class" not in classified.columns:
        raise SchemaError("the villages have no 'class' column; give the output of classify.")
    cls = classified["class"].map(_class_of)
    pop = _people(classified)
    order = [*CLASSES, *(["unknown"] if (cls == "unknown").any() else [])]
    table = pd.DataFrame(
        {
            "villages": cls.value_counts().reindex(order, fill_value=0).astype(int),
            "people": pop.fillna(0).groupby(cls).sum().reindex(order, fill_value=0.0),
        }
    )
    n = max(int(table["villages"].sum()), 1)
    total_people = float(table["people"].sum())
    table["villages_share"] = table["villages"] / n
    table["people_share"] = table["people"] / total_people if total_people > 0 else np.nan
    return table


def group_figures(classified: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of column ``by``: villages, people, and per class villages and people.

    Adds ``unavailable_share``: the share of people in ``unavailable`` villages (of villages,
    when no population is known), the figure the index page colours by.
    """
    if by not in classified.columns:
        raise SchemaError(
            f"the villages have no {by!r} column to group by; columns seen: "
            f"{', '.join(map(str, classified.columns))}. Add it, or choose another --by."
        )
    key = classified[by].astype(object).where(classified[by].notna(), "")
    key = key.map(lambda v: str(v).strip())
    cls = classified["class"].map(_class_of)
    pop = _people(classified).fillna(0.0)
    frame = pd.DataFrame({"key": key, "cls": cls, "pop": pop})
    out = frame.groupby("key").agg(villages=("cls", "size"), people=("pop", "sum"))
    for c in CLASSES:
        sub = frame[frame["cls"] == c].groupby("key")
        out[f"villages_{c}"] = sub.size().reindex(out.index, fill_value=0).astype(int)
        out[f"people_{c}"] = sub["pop"].sum().reindex(out.index, fill_value=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_people = out["people_unavailable"] / out["people"]
        by_villages = out["villages_unavailable"] / out["villages"]
    out["unavailable_share"] = by_people.where(out["people"] > 0, by_villages)
    return out


@dataclass(frozen=True)
class Target:
    """Progress against one national target.

    Attributes
    ----------
    key : str
        ``"broadband_villages"``, ``"broadband_households"`` or ``"fibre_households"``.
    value : float or None
        Share reached, 0..1; None when it cannot be measured (see ``note``).
    goal : float
        Share the target asks for, 0..1.
    year : int or None
        Year the target is due, when it has one.
    done, total : float
        The counts behind ``value`` (villages or households).
    note : str
        Why the value is missing, or how it was measured (a code, translated by the report).
    """

    key: str
    value: float | None
    goal: float
    year: int | None
    done: float
    total: float
    note: str = ""


def fibre_reached(
    classified: gpd.GeoDataFrame, fibre: gpd.GeoDataFrame, *, reach_m: float = FIBRE_REACH_M
) -> np.ndarray:
    """Whether a fibre route or node lies within ``reach_m`` metres of each village (bool array).

    Distances are measured in the villages' UTM zone, never in degrees.
    """
    if fibre is None or not len(fibre) or not len(classified):
        return np.zeros(len(classified), dtype=bool)
    villages = classified.geometry
    metric = villages.crs if villages.crs.is_projected else villages.estimate_utm_crs()
    v = villages.to_crs(metric)
    f = fibre.geometry.to_crs(metric)
    f = f[f.notna() & ~f.is_empty]
    if not len(f):
        return np.zeros(len(classified), dtype=bool)
    hits = gpd.GeoSeries(f.values, crs=metric).sindex.query(
        v.values, predicate="dwithin", distance=reach_m
    )
    reached = np.zeros(len(classified), dtype=bool)
    reached[np.unique(hits[0])] = True
    return reached


def targets(
    classified: gpd.GeoDataFrame,
    *,
    fibre: gpd.GeoDataFrame | None = None,
    reach_m: float = FIBRE_REACH_M,
) -> list[Target]:
    """Progress against the national targets, measured from what the inputs hold.

    - Mobile broadband in every village: the share of villages not ``unavailable``; and the
      share of households in them, when ``households`` is given.
    - Fibre to 80% of households by 2025 and 100% by 2030: households in villages within
      ``reach_m`` of a fibre route or node over all households, when both ``households`` and
      ``fibre`` are given; a column ``fibre_households`` (households with a fibre connection,
      per village) is used instead when present, as it is the better measure. Otherwise the
      value is None and ``note`` says what is missing.
    """
    cls = classified["class"].map(_class_of)
    known = cls != "unknown"
    covered = (cls != "unavailable") & known
    out = [
        Target("broadband_villages", float(covered.sum() / known.sum()) if known.any() else None,
               1.0, None, float(covered.sum()), float(known.sum()),
               "" if known.any() else "no_class")
    ]
    if "households" in classified.columns:
        hh = pd.to_numeric(classified["households"], errors="coerce").fillna(0.0)
        total = float(hh[known].sum())
        done = float(hh[covered].sum())
        out.append(Target("broadband_households", done / total if total > 0 else None, 1.0,
                          None, done, total, "" if total > 0 else "no_households"))
        if "fibre_households" in classified.columns:
            fib = pd.to_numeric(classified["fibre_households"], errors="coerce").fillna(0.0)
            done_f, note = float(np.minimum(fib, hh).sum()), "fibre_column"
        elif fibre is not None:
            reached = fibre_reached(classified, fibre, reach_m=reach_m)
            done_f, note = float(hh[reached].sum()), "fibre_proximity"
        else:
            done_f, note = np.nan, "no_fibre"
        total_h = float(hh.sum())
        for year, goal in FIBRE_TARGETS.items():
            value = done_f / total_h if total_h > 0 and not np.isnan(done_f) else None
            out.append(Target("fibre_households", value, goal, year,
                              0.0 if np.isnan(done_f) else done_f, total_h,
                              note if total_h > 0 else "no_households"))
    else:
        for year, goal in FIBRE_TARGETS.items():
            out.append(Target("fibre_households", None, goal, year, 0.0, 0.0, "no_households"))
    return out
