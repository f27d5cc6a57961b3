"""Changes between two classified runs: which villages changed class, and why.

A province tracks its list quarter by quarter: ``covgap diff OLD NEW`` joins two outputs of
``covgap classify`` on ``village_id`` and gives every village of either input exactly once,
with ``change`` = ``changed``, ``unchanged``, ``added`` (only in NEW) or ``removed`` (only in
OLD), the two classes, and the causes read from the columns both runs carry:

=========================  ===============================================================
cause                      when
=========================  ===============================================================
``correction``             NEW carries a field-check correction OLD did not (or another)
``correction_withdrawn``   OLD's correction is gone from NEW
``new_site``               more operators, a newer ``best_tech``, or the nearest broadband
                           site 100 m (and 5%) closer
``site_lost``              the reverse
``new_measurements``       more tests (``n_tests``)
``fewer_measurements``     fewer tests (tests aged out, or a narrower input)
``speed_change``           the same number of tests, another median download
``population_change``      population differs by more than 1% (new census or raster)
``coverage_change``        the covered or indoor share moved (0.5 point or more) with no
                           site or test change: model, terrain or calibration settings
``access_change``          the power, device or price reasons changed (the access table)
``rules_change``           the class changed while none of the above did: a threshold or
                           profile change
=========================  ===============================================================

Causes are given for unchanged villages too (a new site that did not yet lift a village is
worth knowing). The columns a cause needs may be missing from an older output; the cause
is then not inferred, never guessed. ``direction`` says whether a changed village
``improved`` (toward ``served``) or ``worsened``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import io
from .classify.rules import CLASSES
from .errors import InputError, SchemaError

__all__ = ["CAUSES", "diff_classified", "diff_summary", "read_classified"]

log = logging.getLogger(__name__)

CAUSES = ("correction", "correction_withdrawn", "new_site", "site_lost", "new_measurements",
          "fewer_measurements", "speed_change", "population_change", "coverage_change",
          "access_change", "rules_change")
#: Columns shown side by side (``_old``/``_new``) when either input has them.
COMPARED = ("class", "reasons", "population", "pop_covered_share", "pop_indoor_share",
            "best_tech", "operators", "nearest_site_km", "n_tests", "median_download_mbps",
            "confidence", "correction_source", "correction_date")
PASSED = ("name", "commune", "district", "province")
_TECH_RANK = {"3G": 1, "4G": 2, "5G": 3}
_ACCESS_REASONS = {"no_power", "no_devices", "unaffordable"}


def read_classified(path: str | os.PathLike[str], *, what: str = "classified") -> pd.DataFrame:
    """Read an output of ``covgap classify`` (any of its formats), ids as text.

    Returns a GeoDataFrame for vector formats, a DataFrame for ``.csv`` and ``.xlsx``.

    Raises
    ------
    SchemaError
        Without ``village_id`` and ``class``, or with duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; give an output of covgap "
                         "classify")
    ext = path.suffix.lower()
    if ext == ".csv":
        df = pd.read_csv(path, dtype={"village_id": str}, encoding="utf-8-sig")
    elif ext == ".xlsx":
        df = pd.read_excel(path, dtype={"village_id": str})
    else:
        df = io.read_vector(path, what=what)
    missing = [c for c in ("village_id", "class") if c not in df.columns]
    if missing:
        raise SchemaError(f"{what} file {path} lacks {', '.join(missing)}; give an output of "
                          "covgap classify")
    df["village_id"] = df["village_id"].astype(str).str.strip()
    dup = df["village_id"].duplicated()
    if dup.any():
        raise SchemaError(f"{what} file {path} has duplicate village_id "
                          f"{', '.join(df.loc[dup, 'village_id'].head(10))}")
    unknown = ~df["class"].isin(CLASSES)
    if unknown.any():
        raise SchemaError(f"{what} file {path}: class {df.loc[unknown, 'class'].iloc[0]!r} "
                          f"(village {df.loc[unknown, 'village_id'].iloc[0]}) is not one of "
                          f"{', '.join(CLASSES)}")
    return df


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)


def _text(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), "", dtype=object)
    return df[col].map(lambda v: "" if pd.isna(v) else str(v)).to_numpy(dtype=object)


def _moved(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """Both known and apart by more than ``tol``, or known on one side only."""
    both = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore"):
        return (both & (np.abs(a - b) > tol)) | (np.isfinite(a) ^ np.isfinite(b))


class _Causes:
    """Cause codes and readable words per village, added cause by cause in order."""

    def __init__(self, k: int) -> None:
        self.codes: list[list[str]] = [[] for _ in range(k)]
        self.words: list[list[str]] = [[] for _ in range(k)]

    def add(self, mask: np.ndarray, code: str, text: Callable[[int], str]) -> None:
        """Add ``code``, worded by ``text(i)``, to each village ``i`` in ``mask``."""
        for i in np.flatnonzero(mask):
            self.codes[i].append(code)
            self.words[i].append(text(i))

    def none(self) -> np.ndarray:
        """Villages without a cause so far."""
        return np.array([not c for c in self.codes])

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """The codes (``;``-separated) and words (``; ``-separated) of each village."""
        return (np.array([";".join(c) for c in self.codes], dtype=object),
                np.array(["; ".join(w) for w in self.words], dtype=object))


def _causes(o: pd.DataFrame, n: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Cause codes and a readable 'why' per village present in both (aligned rows).

    The causes of the module docstring, in its order: corrections
    (:func:`_correction_causes`), sites (:func:`_site_causes`), tests and speeds
    (:func:`_test_causes`), population, coverage, access, and the rules when nothing else
    changed a village's class.
    """
    out = _Causes(len(o))
    _correction_causes(o, n, out)
    site_gain, site_loss = _site_causes(o, n, out)
    tests_changed = _test_causes(o, n, out)
    if _both(o, n, "population"):
        a, b = _num(o, "population"), _num(n, "population")
        with np.errstate(invalid="ignore"):
            pop = _moved(a, b, 1.0) & ~(np.abs(b - a) <= 0.01 * np.fmax(np.abs(a), 1.0))
        out.add(pop, "population_change",
                lambda i: f"population {_people(a[i])}→{_people(b[i])}")
    cov_moved = np.zeros(len(o), bool)
    for col in ("pop_covered_share", "pop_indoor_share"):
        if _both(o, n, col):
            cov_moved |= _moved(_num(o, col), _num(n, col), 0.005)
    ca, cb = _num(o, "pop_covered_share"), _num(n, "pop_covered_share")
    out.add(cov_moved & ~site_gain & ~site_loss & ~tests_changed, "coverage_change",
            lambda i: f"modelled coverage {_pct(ca[i])}→{_pct(cb[i])} of people")
    if _both(o, n, "reasons"):
        ro = [set(r.split(";")) & _ACCESS_REASONS for r in _text(o, "reasons")]
        rn = [set(r.split(";")) & _ACCESS_REASONS for r in _text(n, "reasons")]
        acc = np.array([a != b for a, b in zip(ro, rn, strict=True)], dtype=bool)
        out.add(acc, "access_change",
                lambda i: ("access " + ", ".join(sorted(rn[i]))) if rn[i]
                else "access rules now met")
    changed = _text(o, "class") != _text(n, "class")
    out.add(changed & out.none(), "rules_change",
            lambda i: "same evidence, other class: thresholds or profile changed")
    return out.joined()


def _both(o: pd.DataFrame, n: pd.DataFrame, col: str) -> bool:
    """Whether both runs carry ``col``."""
    return col in o.columns and col in n.columns


def _correction_causes(o: pd.DataFrame, n: pd.DataFrame, out: _Causes) -> None:
    """``correction`` and ``correction_withdrawn``.

    A NEW-only column is enough: an old run may predate corrections.
    """
    src_o, src_n = _text(o, "correction_source"), _text(n, "correction_source")
    date_o, date_n = _text(o, "correction_date"), _text(n, "correction_date")
    tag_o = np.char.add(src_o.astype(str), date_o.astype(str))
    tag_n = np.char.add(src_n.astype(str), date_n.astype(str))
    out.add((src_n != "") & (tag_n != tag_o), "correction",
            lambda i: f"field correction by {src_n[i]} on {date_n[i]}")
    out.add((src_o != "") & (src_n == "") & ("correction_source" in n.columns),
            "correction_withdrawn", lambda i: f"correction by {src_o[i]} withdrawn")


def _site_causes(o: pd.DataFrame, n: pd.DataFrame, out: _Causes
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``new_site`` and ``site_lost``, from the operators, best technology and nearest site.

    Returns
    -------
    gain, loss : ndarray of bool
        Villages where some sign says a site came, and where some says one went (both:
        ``new_site``, worded "sites changed").
    """
    k = len(o)
    gain, loss = np.zeros(k, bool), np.zeros(k, bool)
    detail: list[list[str]] = [[] for _ in range(k)]

    def note(up: np.ndarray, down: np.ndarray, word: Callable[[int], str]) -> None:
        gain[:] |= up
        loss[:] |= down
        for i in np.flatnonzero(up | down):
            detail[i].append(word(i))

    if _both(o, n, "operators"):
        a, b = _num(o, "operators"), _num(n, "operators")
        note(b > a, b < a, lambda i: f"operators {a[i]:.0f}→{b[i]:.0f}")
    if _both(o, n, "best_tech"):
        to, tn = _text(o, "best_tech"), _text(n, "best_tech")
        ro = np.array([_TECH_RANK.get(t, 0) for t in to])
        rn = np.array([_TECH_RANK.get(t, 0) for t in tn])
        note(rn > ro, rn < ro, lambda i: f"best {to[i] or 'none'}→{tn[i] or 'none'}")
    if _both(o, n, "nearest_site_km"):
        da, db = _num(o, "nearest_site_km"), _num(n, "nearest_site_km")
        with np.errstate(invalid="ignore"):
            closer = (da - db > 0.1) & (db < 0.95 * da) | (np.isnan(da) & np.isfinite(db))
            farther = (db - da > 0.1) & (da < 0.95 * db) | (np.isfinite(da) & np.isnan(db))
        note(closer, farther, lambda i: f"nearest site {_km(da[i])}→{_km(db[i])}")
    out.add(gain & ~loss, "new_site", lambda i: "new site (" + ", ".join(detail[i]) + ")")
    out.add(loss & ~gain, "site_lost", lambda i: "site lost (" + ", ".join(detail[i]) + ")")
    out.add(loss & gain, "new_site", lambda i: "sites changed (" + ", ".join(detail[i]) + ")")
    return gain, loss


def _test_causes(o: pd.DataFrame, n: pd.DataFrame, out: _Causes) -> np.ndarray:
    """``new_measurements``, ``fewer_measurements`` and ``speed_change``.

    Returns the villages whose number of tests changed (none when a run lacks
    ``n_tests``); a speed change counts only where it did not.
    """
    if not _both(o, n, "n_tests"):
        return np.zeros(len(o), bool)
    a, b = np.nan_to_num(_num(o, "n_tests")), np.nan_to_num(_num(n, "n_tests"))
    changed = a != b
    out.add(b > a, "new_measurements", lambda i: f"{b[i] - a[i]:.0f} new test(s) "
            f"({a[i]:.0f}→{b[i]:.0f})")
    out.add(b < a, "fewer_measurements", lambda i: f"fewer tests ({a[i]:.0f}→{b[i]:.0f})")
    if _both(o, n, "median_download_mbps"):
        da, db = _num(o, "median_download_mbps"), _num(n, "median_download_mbps")
        out.add(~changed & _moved(da, db, 0.05), "speed_change",
                lambda i: f"median download {_mbps(da[i])}→{_mbps(db[i])}")
    return changed


def _km(x: float) -> str:
    return "none" if not np.isfinite(x) else f"{x:.1f} km"


def _mbps(x: float) -> str:
    return "none" if not np.isfinite(x) else f"{x:.1f} Mbps"


def _pct(x: float) -> str:
    return "?" if not np.isfinite(x) else f"{100 * x:.0f}%"


def _people(x: float) -> str:
    return "?" if not np.isfinite(x) else f"{x:,.0f}"


def diff_classified(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Every village of two classified runs once, with its class change and its causes.

    Parameters
    ----------
    old, new : DataFrame or GeoDataFrame
        Outputs of :func:`coverage.classify.classify_villages` (or read back with
        :func:`read_classified`), keyed by ``village_id``.

    Returns
    -------
    DataFrame or GeoDataFrame
        One row per village of either input, NEW's order first then villages only in OLD:
        ``village_id``, the passed-through ``name``/``commune``/``district``/``province``,
        ``change`` (``changed``, ``unchanged``, ``added``, ``removed``), ``direction``
        (``improved``, ``worsened`` or empty), ``causes`` (``;``-separated codes of
        :data:`CAUSES`), ``why`` (a sentence) and ``<column>_old``/``<column>_new`` for
        the compared columns either input has. A GeoDataFrame (NEW's geometry, OLD's for
        removed villages) when both inputs have geometry.

    Examples
    --------
    >>> old = pd.DataFrame({"village_id": ["1", "2"], "class": ["unavailable", "served"],
    ...                     "operators": [0, 2], "n_tests": [0, 3]})
    >>> new = pd.DataFrame({"village_id": ["1", "3"], "class": ["served", "served"],
    ...                     "operators": [1, 1], "n_tests": [0, 0]})
    >>> d = diff_classified(old, new)
    >>> d[["village_id", "change", "causes"]].to_dict("list")
    {'village_id': ['1', '3', '2'], 'change': ['changed', 'added', 'removed'], \
'causes': ['new_site', '', '']}
    """
    for name, df in (("old", old), ("new", new)):
        if "village_id" not in df.columns or "class" not in df.columns:
            raise SchemaError(f"the {name} table needs village_id and class columns")
        if df["village_id"].astype(str).duplicated().any():
            raise SchemaError(f"the {name} table has duplicate village_id values")
    o = pd.DataFrame(old).drop(columns=_geom(old), errors="ignore").copy()
    n = pd.DataFrame(new).drop(columns=_geom(new), errors="ignore").copy()
    o["village_id"] = o["village_id"].astype(str)
    n["village_id"] = n["village_id"].astype(str)
    ids = pd.Index(n["village_id"]).append(pd.Index(o["village_id"]).difference(
        pd.Index(n["village_id"]), sort=False))
    in_o = ids.isin(o["village_id"])
    in_n = ids.isin(n["village_id"])
    oa = o.set_index("village_id").reindex(ids)
    na = n.set_index("village_id").reindex(ids)
    out = pd.DataFrame({"village_id": ids.to_numpy()})
    for col in PASSED:
        if col in n.columns or col in o.columns:
            a = na[col] if col in na.columns else pd.Series(np.nan, index=ids)
            b = oa[col] if col in oa.columns else pd.Series(np.nan, index=ids)
            out[col] = a.where(a.notna(), b).to_numpy()
    co, cn = _text(oa, "class"), _text(na, "class")
    both = in_o & in_n
    out["change"] = np.select([~in_o, ~in_n, co != cn], ["added", "removed", "changed"],
                              "unchanged")
    rank = {c: i for i, c in enumerate(CLASSES)}
    ro = np.array([rank.get(c, -1) for c in co])
    rn = np.array([rank.get(c, -1) for c in cn])
    out["direction"] = np.where(both & (rn > ro), "improved",
                                np.where(both & (rn < ro), "worsened", ""))
    causes = np.full(len(ids), "", dtype=object)
    why = np.full(len(ids), "", dtype=object)
    idx = np.flatnonzero(both)
    if len(idx):
        causes[idx], why[idx] = _causes(oa.iloc[idx], na.iloc[idx])
    why[~in_o] = "not in the old run (new village or new boundary)"
    why[~in_n] = "not in the new run (village removed or merged)"
    out["causes"] = causes
    out["why"] = why
    for col in COMPARED:
        if col in o.columns or col in n.columns:
            out[f"{col}_old"] = oa[col].to_numpy() if col in oa.columns else None
            out[f"{col}_new"] = na[col].to_numpy() if col in na.columns else None
    log.info("diff: %s", out["change"].value_counts().to_dict())
    geo_o, geo_n = _geom(old), _geom(new)
    if geo_o and geo_n:
        g = gpd.GeoSeries(new.set_index(new["village_id"].astype(str)).geometry, crs=new.crs)
        g_old = gpd.GeoSeries(old.set_index(old["village_id"].astype(str)).geometry,
                              crs=old.crs).to_crs(new.crs)
        geom = g.reindex(ids)
        geom[~in_n] = g_old.reindex(ids[~in_n]).to_numpy()
        return gpd.GeoDataFrame(out, geometry=geom.to_numpy(), crs=new.crs)
    return out


def _geom(df: pd.DataFrame) -> list[str]:
    if isinstance(df, gpd.GeoDataFrame) and df.geometry.name in df.columns:
        return [df.geometry.name]
    return []


def diff_summary(table: pd.DataFrame, *, top: int = 10) -> str:
    """A readable summary of :func:`diff_classified`'s table (plain text, English)."""
    count = table["change"].value_counts()
    changed = table[table["change"] == "changed"]
    lines = [f"{len(table):,} villages: {count.get('changed', 0):,} changed class "
             f"({int((changed['direction'] == 'improved').sum()):,} improved, "
             f"{int((changed['direction'] == 'worsened').sum()):,} worsened), "
             f"{count.get('unchanged', 0):,} unchanged, {count.get('added', 0):,} added, "
             f"{count.get('removed', 0):,} removed"]
    if len(changed):
        lines.append("Class changes:")
        moves = changed.groupby(["class_old", "class_new"]).size().sort_values(ascending=False)
        for (a, b), k in moves.items():
            lines.append(f"  {a} → {b}: {k:,}")
        lines.append("Why (changed villages; one may have several causes):")
        codes = changed["causes"].str.split(";").explode()
        for code, k in codes[codes != ""].value_counts().items():
            lines.append(f"  {code}: {k:,}")
    if "population_old" in table.columns:
        lines.append("People per class (old → new):")
        for c in CLASSES:
            a = pd.to_numeric(table.loc[table["class_old"] == c, "population_old"],
                              errors="coerce").sum()
            b = pd.to_numeric(table.loc[table["class_new"] == c, "population_new"],
                              errors="coerce").sum()
            lines.append(f"  {c}: {a:,.0f} → {b:,.0f}")
    if len(changed):
        lines.append(f"First {min(top, len(changed))} changed village(s):")
        for r in changed.head(top).itertuples():
            name = f" {r.name}" if "name" in table.columns and isinstance(r.name, str) else ""
            lines.append(f"  {r.village_id}{name}: {r.class_old} → {r.class_new}; {r.why}")
    return "\n".join(lines)
