"""Aggregates of classified villages per commune, district and province, against the targets.

One row per unit of each level, plus a ``total`` row: villages and people per class, the share
of villages and of households with mobile broadband, and households with fibre against the
national strategy's targets (Decision 411/QD-TTg, Decision 1437/QD-TTg): mobile broadband in
every village, fibre to 80% of households by 2025 and to all by 2030.

* A village "has mobile broadband" when its class is not ``unavailable``.
* Households with mobile broadband are the village's ``households`` times its
  ``pop_covered_share``; households with fibre, times its ``pop_fibre_share`` (people within
  ``fibre_reach_m`` of a fibre route or node, from ``covgap classify --fibre``).
* A village without ``households`` gets ``population / persons_per_household`` (3.6 by
  default, near the 2019 census mean), flagged in ``households_estimated``.

**Crosswalks.** Boundaries change: on 1 July 2025 Vietnam merged about 10,600 communes into
3,321. A crosswalk table (``from_id``, ``to_id``, optional ``weight`` = the share of the old
unit's people that went to the new one) re-aggregates villages keyed by an old unit onto the
new units, so lists stay comparable across the reform. :func:`build_crosswalk` makes one from
the two sets of polygons, weighting by people (a population raster) or by area.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from .errors import ParameterError, SchemaError
from .io import Raster
from .params import Profile, get_profile

__all__ = ["LEVELS", "aggregate", "build_crosswalk", "read_crosswalk"]

log = logging.getLogger(__name__)

LEVELS = ("commune", "district", "province")
CLASS_NAMES = ("unavailable", "available_inaccessible", "served")
UNMAPPED = "(unmapped)"


def _village_table(classified: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Numbers per village that add up: people, households, with broadband, with fibre."""
    missing = [c for c in ("class", "population", "pop_covered_share")
               if c not in classified.columns]
    if missing:
        raise SchemaError(f"classified villages lack {', '.join(missing)}: give the output of "
                          "covgap classify")
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    hh_in = (pd.to_numeric(classified["households"], errors="coerce").to_numpy(dtype=float)
             if "households" in classified.columns else np.full(len(classified), np.nan))
    estimated = np.isnan(hh_in) & ~np.isnan(pop)
    hh = np.where(np.isnan(hh_in), pop / profile.persons_per_household, hh_in)
    cov = pd.to_numeric(classified["pop_covered_share"], errors="coerce").to_numpy(dtype=float)
    t = pd.DataFrame({"villages": 1.0, "people": np.nan_to_num(pop),
                      "households": np.nan_to_num(hh),
                      "households_estimated": estimated.astype(float),
                      "households_mbb": np.nan_to_num(hh * cov)}, index=classified.index)
    klass = classified["class"].astype(str).to_numpy()
    for c in CLASS_NAMES:
        t[f"villages_{c}"] = (klass == c).astype(float)
        t[f"people_{c}"] = np.where(klass == c, t["people"], 0.0)
    t["villages_mbb"] = (klass != "unavailable").astype(float)
    if "pop_fibre_share" in classified.columns:
        fib = pd.to_numeric(classified["pop_fibre_share"], errors="coerce").to_numpy(float)
        t["households_fibre"] = np.nan_to_num(hh * fib)
    return t


def _finish(table: pd.DataFrame, profile: Profile, has_fibre: bool) -> pd.DataFrame:
    with np.errstate(invalid="ignore", divide="ignore"):
        table["share_villages_mbb"] = table["villages_mbb"] / table["villages"]
        table["share_households_mbb"] = table["households_mbb"] / table["households"]
        table["every_village_mbb"] = table["villages_unavailable"] == 0
        if has_fibre:
            share = table["households_fibre"] / table["households"]
            table["share_households_fibre"] = share
            for year, target in ((2025, profile.fibre_target_2025),
                                 (2030, profile.fibre_target_2030)):
                table[f"meets_fibre_{year}"] = share >= target - 1e-9
                table[f"households_to_fibre_{year}"] = np.maximum(
                    np.ceil(target * table["households"] - table["households_fibre"] - 1e-6),
                    0)
    for col in [c for c in table.columns if c.startswith(("villages", "people", "households"))
                and c != "households_estimated" and not c.startswith("share")]:
        table[col] = np.round(table[col].astype(float), 2)
    return table


def aggregate(
    classified: pd.DataFrame,
    *,
    levels: tuple[str, ...] = LEVELS,
    profile: Profile | str = "vn-2025",
    crosswalk: pd.DataFrame | None = None,
    crosswalk_on: str = "commune",
    crosswalk_level: str = "crosswalk",
) -> pd.DataFrame:
    """Villages, people and households per class and unit, with the strategy's targets.

    Parameters
    ----------
    classified : DataFrame
        The output of :func:`coverage.classify.classify_villages` (its geometry is ignored).
    levels : tuple of str
        Columns naming the nested units, finest first; absent columns are skipped. A unit is
        keyed by its own column and those of the coarser levels, so two communes of one name
        in different districts stay apart.
    profile : Profile or str
        Supplies ``persons_per_household``, the fibre targets.
    crosswalk : DataFrame, optional
        From :func:`read_crosswalk` or :func:`build_crosswalk`: ``from_id``, ``to_id``,
        ``weight``. Adds rows of level ``crosswalk_level`` for the new units.
    crosswalk_on : str
        Column of ``classified`` holding the old unit's id that ``from_id`` refers to.
    crosswalk_level : str
        Name of the crosswalked level in the output's ``level`` column.

    Returns
    -------
    DataFrame
        One row per unit: ``level``, ``unit``, the level columns, ``villages``,
        ``villages_<class>``, ``people``, ``people_<class>``, ``households``,
        ``households_estimated`` (villages whose households were estimated),
        ``villages_mbb``, ``share_villages_mbb``, ``households_mbb``,
        ``share_households_mbb``, ``every_village_mbb`` and, when ``pop_fibre_share``
        exists, ``households_fibre``, ``share_households_fibre``, ``meets_fibre_2025``,
        ``households_to_fibre_2025``, ``meets_fibre_2030``, ``households_to_fibre_2030``.
        Village counts are fractional only where a crosswalk splits an old unit.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    t = _village_table(classified, profile)
    has_fibre = "households_fibre" in t.columns
    present = [c for c in levels if c in classified.columns]
    skipped = [c for c in levels if c not in classified.columns]
    if skipped:
        log.info("no %s column: those aggregates are skipped", ", ".join(skipped))
    frames = []
    total = t.sum().to_frame().T
    total.insert(0, "unit", "total")
    total.insert(0, "level", "total")
    frames.append(total)
    for i, level in enumerate(present):
        keys = present[i:][::-1]  # coarsest first
        names = classified[keys].astype(object).where(classified[keys].notna(), "(none)"
                                                      ).astype(str)
        g = t.join(names).groupby(keys, sort=True, dropna=False).sum().reset_index()
        g.insert(0, "unit", g[level])
        g.insert(0, "level", level)
        frames.append(g)
    if crosswalk is not None:
        frames.append(_crosswalked(classified, t, crosswalk, crosswalk_on, crosswalk_level))
    out = pd.concat(frames, ignore_index=True)
    front = ["level", "unit", *[c for c in LEVELS[::-1] if c in out.columns]]
    out = out[front + [c for c in out.columns if c not in front]]
    return _finish(out, profile, has_fibre).reset_index(drop=True)


def _crosswalked(classified: pd.DataFrame, t: pd.DataFrame, crosswalk: pd.DataFrame, on: str,
                 level: str) -> pd.DataFrame:
    if on not in classified.columns:
        raise SchemaError(f"cannot crosswalk on {on!r}: the classified villages have no such "
                          f"column; name the column holding the old unit id")
    _check_crosswalk(crosswalk)
    key = classified[on].astype(object).where(classified[on].notna(), "").astype(str)
    cw = crosswalk.assign(from_id=crosswalk["from_id"].astype(str),
                          to_id=crosswalk["to_id"].astype(str))
    rows = t.assign(from_id=key.to_numpy(), _row=np.arange(len(t)))
    merged = rows.merge(cw[["from_id", "to_id", "weight"]], on="from_id", how="left")
    unmapped = merged["to_id"].isna()
    if unmapped.any():
        ids = sorted(set(merged.loc[unmapped, "from_id"]))
        log.warning("%d village(s) in %d %s unit(s) missing from the crosswalk are counted "
                    "under %r: %s", int(unmapped.sum()), len(ids), on, UNMAPPED,
                    ", ".join(ids[:10]))
        merged.loc[unmapped, "to_id"] = UNMAPPED
        merged.loc[unmapped, "weight"] = 1.0
    value_cols = [c for c in t.columns]
    merged[value_cols] = merged[value_cols].mul(merged["weight"], axis=0)
    g = merged.groupby("to_id", sort=True)[value_cols].sum().reset_index()
    g = g.rename(columns={"to_id": "unit"})
    g.insert(0, "level", level)
    return g


def _check_crosswalk(cw: pd.DataFrame) -> None:
    missing = [c for c in ("from_id", "to_id", "weight") if c not in cw.columns]
    if missing:
        raise SchemaError(f"crosswalk lacks {', '.join(missing)}; it needs from_id, to_id "
                          "and weight (read it with read_crosswalk)")
    w = pd.to_numeric(cw["weight"], errors="coerce")
    if w.isna().any() or (w < 0).any():
        raise SchemaError("crosswalk weights must be numbers >= 0; bad rows: "
                          f"{list(cw.index[w.isna() | (w < 0)][:10])}")
    sums = w.groupby(cw["from_id"].astype(str)).sum()
    bad = sums[(sums - 1).abs() > 0.01]
    if len(bad):
        raise SchemaError(
            f"crosswalk weights of each from_id must sum to 1 (shares of its people); "
            f"{len(bad)} do not, e.g. " + ", ".join(f"{k}: {v:.3f}" for k, v in
                                                   bad.head(5).items()))


def read_crosswalk(path: str | os.PathLike[str], *, from_col: str = "from_id",
                   to_col: str = "to_id", weight_col: str = "weight") -> pd.DataFrame:
    """Read a crosswalk CSV: old unit id, new unit id, optional weight (default 1).

    Ids are kept as text (leading zeros survive). Weights of each old unit must sum to 1.
    """
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"crosswalk file {path} does not exist")
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    missing = [c for c in (from_col, to_col) if c not in df.columns]
    if missing:
        raise SchemaError(f"crosswalk {path} lacks {', '.join(missing)}; found "
                          f"{', '.join(df.columns)}")
    out = pd.DataFrame({"from_id": df[from_col].str.strip(), "to_id": df[to_col].str.strip()})
    out["weight"] = (pd.to_numeric(df[weight_col], errors="coerce")
                     if weight_col in df.columns else 1.0)
    _check_crosswalk(out)
    return out


def build_crosswalk(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, *, old_id: str,
                    new_id: str, population: Raster | None = None) -> pd.DataFrame:
    """Crosswalk from one set of unit polygons to another, by shared people (or area).

    Each old unit's weight on a new unit is the share of its people (from the raster, by
    exact cell fractions) living in their intersection; without a raster, or for an old unit
    with nobody on the raster, the share of its area. Returns ``from_id``, ``to_id``,
    ``weight``, weights of each ``from_id`` summing to 1.
    """
    from .classify.zonal import count_population
    from .io import metric_crs

    crs = metric_crs(old)
    a = old[[old_id, old.geometry.name]].rename(columns={old_id: "from_id"}).to_crs(crs)
    b = new[[new_id, new.geometry.name]].rename(columns={new_id: "to_id"}).to_crs(crs)
    a["from_id"], b["to_id"] = a["from_id"].astype(str), b["to_id"].astype(str)
    inter = gpd.overlay(a, b, how="intersection", keep_geom_type=True)
    inter = inter[inter.area > 0].reset_index(drop=True)
    inter["area"] = inter.area
    inter["people"] = (count_population(inter, population).people if population is not None
                       else 0.0)
    by = inter.groupby("from_id")
    people_total = by["people"].transform("sum")
    area_total = by["area"].transform("sum")
    inter["weight"] = np.where(people_total > 0, inter["people"] / people_total,
                               inter["area"] / area_total)
    lost = sorted(set(a["from_id"]) - set(inter["from_id"]))
    if lost:
        log.warning("%d old unit(s) overlap no new unit: %s", len(lost), ", ".join(lost[:10]))
    return inter[["from_id", "to_id", "weight"]].sort_values(["from_id", "to_id"]
                                                             ).reset_index(drop=True)
