"""Corrections a province submits after field checks, applied with provenance.

Like the challenge process of national broadband maps (the FCC's Broadband Data Collection
challenges, Ofcom's and BEREC's verification of operator maps), a province that checks
villages in the field files a corrections table; the next run applies it and says so in
every corrected row. The table (CSV, UTF-8) has one row per corrected village:

============================  ==============================================================
column                        meaning
============================  ==============================================================
``village_id``                required; must name a village of the run (text, as in the
                              villages file: leading zeros matter)
``source``                    required; who checked (e.g. ``Sở TT&TT Lào Cai, đợt 2``)
``date``                      required; ISO 8601 date of the check (``2025-09-30``)
``class``                     the verified class: it overrides the rules, with confidence 1
``reasons``                   optional ``;``-separated contract reason codes for ``class``
``note``                      optional free text, kept in ``correction_note``
``pop_covered_share``,        field evidence (shares 0..1, counts, Mbps): it replaces the
``pop_indoor_share``,         village's metric and the rules are applied again, so the class
``pop_2g_share``,             follows the profile. Give ``n_tests`` with measured speeds or
``n_tests``,                  a no-service share so the minimum-test rules can count them.
``median_download_mbps``,
``median_upload_mbps``,
``no_service_share``
============================  ==============================================================

Each row needs ``class`` or at least one evidence value. A village corrected twice keeps the
latest correction (by ``date``); two on the same date are refused. An id that is not among
the villages is refused: a correction must never silently miss its village.

Decisions where a class correction names no reasons: ``unavailable`` takes the coverage
reason its metrics give (``no_signal``, ``2g_only`` or ``partial_coverage``);
``available_inaccessible`` the usability rules that hold once coverage is granted, and when
none holds the row is refused (give ``reasons``); ``served`` has none.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, InputFileNotFoundError, SchemaError
from ..params import Profile
from .rules import CLASSES, REASONS, apply_profile

__all__ = [
    "CORRECTION_COLUMNS",
    "EVIDENCE_COLUMNS",
    "apply_corrections",
    "match_corrections",
    "read_corrections",
]

log = logging.getLogger(__name__)

#: Evidence a correction may set, and the valid range of each.
EVIDENCE_COLUMNS = {
    "pop_covered_share": (0.0, 1.0),
    "pop_indoor_share": (0.0, 1.0),
    "pop_2g_share": (0.0, 1.0),
    "n_tests": (0.0, np.inf),
    "median_download_mbps": (0.0, np.inf),
    "median_upload_mbps": (0.0, np.inf),
    "no_service_share": (0.0, 1.0),
}
#: Columns a corrected run adds to the classified villages.
CORRECTION_COLUMNS = ("corrected", "correction_kind", "correction_source", "correction_date",
                      "correction_note", "class_original", "reasons_original",
                      "confidence_original")
_UNAVAILABLE_REASONS = set(REASONS[:3])


def _text(series: pd.Series) -> pd.Series:
    """Stripped text, None for blanks."""
    return series.map(lambda v: None if pd.isna(v) or not str(v).strip()
                      else str(v).strip()).astype(object)


def _blank(index: pd.Index) -> pd.Series:
    return pd.Series([None] * len(index), index=index, dtype=object)


def read_corrections(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a corrections table (see the module docstring for its columns).

    Returns
    -------
    DataFrame
        Indexed by ``village_id`` (text), one row per village (the latest correction), with
        ``source``, ``date`` (ISO text), ``class``, ``reasons``, ``note`` and the evidence
        columns (NaN where not corrected).

    Raises
    ------
    SchemaError
        A required column is missing, a value is out of range or unknown, a row corrects
        nothing, or a village has two corrections on one date.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"corrections file {path} does not exist; check the path")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"corrections file {path} cannot be read as CSV ({exc})") from None
    return check_corrections(df, where=f"corrections file {path}")


def check_corrections(df: pd.DataFrame, *, where: str = "corrections") -> pd.DataFrame:
    """Validate a corrections table already in memory (as :func:`read_corrections`)."""
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("village_id", "source", "date") if c not in df.columns]
    if missing:
        raise SchemaError(f"{where} lacks column(s) {', '.join(missing)}; found "
                          f"{', '.join(df.columns)}. A correction needs village_id, source "
                          "and date, and a class or evidence columns")
    line = pd.Series(np.arange(len(df)) + 2, index=df.index)  # CSV line numbers
    out = pd.DataFrame(index=df.index)
    for col in ("village_id", "source", "date", "class", "reasons", "note"):
        out[col] = _text(df[col]) if col in df.columns else _blank(df.index)

    def refuse(mask: pd.Series, what: str) -> None:
        if mask.any():
            raise SchemaError(f"{where}: {what} on line(s) "
                              f"{', '.join(map(str, line[mask].tolist()[:10]))}")

    for col in ("village_id", "source", "date"):
        refuse(out[col].isna(), f"empty {col} (every correction says which village, who "
                                "checked it and when)")
    dates = pd.to_datetime(out["date"], errors="coerce", format="ISO8601")
    refuse(dates.isna(), "a date that is not ISO 8601 (write e.g. 2025-09-30)")
    out["date"] = dates.dt.strftime("%Y-%m-%d")
    klass = out["class"].map(lambda v: v.lower() if isinstance(v, str) else None)
    refuse(klass.notna() & ~klass.isin(CLASSES),
           f"a class other than {', '.join(CLASSES)}")
    out["class"] = klass
    for col, (lo, hi) in EVIDENCE_COLUMNS.items():
        raw = _text(df[col]) if col in df.columns else _blank(df.index)
        values = pd.to_numeric(raw, errors="coerce")
        refuse(raw.notna() & values.isna(), f"a {col} that is not a number")
        refuse(values.notna() & ((values < lo) | (values > hi)),
               f"a {col} outside {lo:g}..{hi:g}" + (" (percentages? write shares 0..1)"
                                                    if hi == 1.0 else ""))
        out[col] = values.astype(float)
    refuse(out["n_tests"].notna() & (out["n_tests"] % 1 != 0), "an n_tests that is not whole")
    evidence = out[list(EVIDENCE_COLUMNS)].notna().any(axis=1)
    refuse(out["class"].isna() & ~evidence, "nothing to correct (give class or evidence)")
    bad_reason = out["reasons"].map(
        lambda r: isinstance(r, str) and not set(r.split(";")) <= set(REASONS))
    refuse(bad_reason, f"reason codes other than {', '.join(REASONS)}")
    refuse(out["reasons"].notna() & out["class"].isna(), "reasons without a class")
    mismatch = out.apply(lambda r: isinstance(r["reasons"], str) and not _reasons_fit(
        r["class"], set(r["reasons"].split(";"))), axis=1) if len(out) else out["reasons"]
    refuse(mismatch.astype(bool), "reasons that do not fit the class (unavailable takes "
           "no_signal, 2g_only or partial_coverage; available_inaccessible the others; "
           "served none)")
    out = out.assign(_date=dates, _line=line).sort_values(["village_id", "_date"], kind="stable")
    same = out.duplicated(["village_id", "_date"], keep=False)
    refuse(same.reindex(line.index), "two corrections of one village on one date")
    superseded = int(out.duplicated("village_id", keep="last").sum())
    if superseded:
        log.info("%s: %d earlier correction(s) superseded by later ones", where, superseded)
    out = out.drop_duplicates("village_id", keep="last").drop(columns=["_date", "_line"])
    return out.set_index("village_id")


def _reasons_fit(klass: str | None, reasons: set[str]) -> bool:
    if klass == "served":
        return not reasons
    if klass == "unavailable":
        return bool(reasons) and reasons <= _UNAVAILABLE_REASONS
    if klass == "available_inaccessible":
        return bool(reasons) and not (reasons & _UNAVAILABLE_REASONS)
    return False


def match_corrections(corrections: pd.DataFrame, village_ids: pd.Series) -> np.ndarray:
    """Row of ``corrections`` for each village (-1: none); unknown ids are refused.

    Raises
    ------
    InputError
        Some corrected ``village_id`` is not among the villages.
    """
    ids = pd.Index(village_ids.astype(str).to_numpy())
    unknown = corrections.index.difference(ids)
    if len(unknown):
        raise InputError(
            f"{len(unknown)} correction(s) name village_id(s) that are not among the "
            f"{len(ids)} villages: {', '.join(map(str, unknown[:10]))}"
            f"{'...' if len(unknown) > 10 else ''}. Check the ids against the villages file "
            "(ids are text: leading zeros matter) or remove those rows")
    return corrections.index.get_indexer(ids)


def _correct_evidence(metrics: pd.DataFrame, rows: np.ndarray, table: pd.DataFrame
                      ) -> pd.DataFrame:
    """Metrics with the corrected evidence in place (rules then apply to them).

    Parameters
    ----------
    metrics : DataFrame
        One row per village, as :func:`apply_corrections` takes them.
    rows : ndarray of int
        Row of ``table`` for each village, -1 where its evidence is not corrected.
    table : DataFrame
        The corrections, from :func:`read_corrections`.

    Returns
    -------
    DataFrame
        A copy of ``metrics``: the corrected shares (:func:`_put_shares`), test counts,
        speeds and no-service shares (:func:`_put_tests`), the model's priors of the test
        rules cleared where the coverage is field-measured (:func:`_clear_test_priors`), and
        ``n_tests`` whole.
    """
    m = metrics.copy()
    hit = np.flatnonzero(rows >= 0)
    corr = table.iloc[rows[hit]]
    n = corr["n_tests"].to_numpy(dtype=float)
    _put_shares(m, hit, corr, n)
    _put_tests(m, hit, corr, n)
    _clear_test_priors(m, hit, corr)
    if "n_tests" in m.columns:
        m["n_tests"] = m["n_tests"].round().astype(int)
    return m


def _put(m: pd.DataFrame, hit: np.ndarray, col: str, values: np.ndarray,
         where: np.ndarray) -> None:
    """Write ``values[where]`` into float column ``col`` of ``m`` at rows ``hit[where]``.

    ``values`` and ``where`` run over the corrected villages (``hit``, positions in ``m``);
    a column ``m`` lacks is added, NaN elsewhere.
    """
    if col not in m.columns:
        m[col] = np.nan
    m[col] = m[col].astype(float)
    m.iloc[hit[where], m.columns.get_loc(col)] = values[where]


def _put_shares(m: pd.DataFrame, hit: np.ndarray, corr: pd.DataFrame, n: np.ndarray) -> None:
    """Corrected population shares, their priors and the field's tests behind them.

    A field-measured share does not move with the model's dB thresholds: it replaces the
    share and its ``_strict`` and ``_loose`` twins alike. ``n`` (tests, NaN: not given)
    becomes the tests behind the covered share and its covered count, and the tests behind
    the indoor share (NaN there: the model's doubt).
    """
    has_n = np.isfinite(n)
    for col, twins in (("pop_covered_share", ("_strict", "_loose")),
                       ("pop_indoor_share", ("_strict", "_loose")),
                       ("pop_2g_share", ())):
        v = corr[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        for name in (col, *(col + t for t in twins)):
            _put(m, hit, name, v, ok)
        if col == "pop_covered_share":
            _put(m, hit, "prior_share", v, ok)
            _put(m, hit, "n_cov_tests", n, ok & has_n)
            _put(m, hit, "k_cov_tests", np.round(v * np.nan_to_num(n)), ok & has_n)
        elif col == "pop_indoor_share":
            _put(m, hit, "prior_indoor_share", v, ok)
            _put(m, hit, "n_indoor_tests", n, ok)


def _put_tests(m: pd.DataFrame, hit: np.ndarray, corr: pd.DataFrame, n: np.ndarray) -> None:
    """Corrected test count, median speeds (Mbps) and no-service share, with their counts.

    ``n`` (NaN: not given) becomes ``n_tests``, and the tests behind the speeds and the
    no-service share where those are corrected; a corrected speed is judged by the median's
    side alone (``n_slow_tests`` NaN).
    """
    has_n = np.isfinite(n)
    _put(m, hit, "n_tests", n, has_n)
    speed = (np.isfinite(corr["median_download_mbps"].to_numpy(dtype=float))
             | np.isfinite(corr["median_upload_mbps"].to_numpy(dtype=float)))
    for col in ("median_download_mbps", "median_upload_mbps", "no_service_share"):
        v = corr[col].to_numpy(dtype=float)
        _put(m, hit, col, v, np.isfinite(v))
    _put(m, hit, "n_speed_tests", n, speed & has_n)
    _put(m, hit, "n_slow_tests", np.full(len(hit), np.nan), speed)
    none = corr["no_service_share"].to_numpy(dtype=float)
    _put(m, hit, "n_service_tests", n, np.isfinite(none) & has_n)


def _clear_test_priors(m: pd.DataFrame, hit: np.ndarray, corr: pd.DataFrame) -> None:
    """The model's priors of the residents' test rules cleared where coverage is corrected.

    A field-measured coverage overrules the model in the village, and with it the model's
    priors of the residents' test rules (:mod:`coverage.classify.residents`): those rules
    then follow the file's speeds and no-service share only.
    """
    field = np.isfinite(corr["pop_covered_share"].to_numpy(dtype=float))
    for col in ("slow_probability", "no_service_probability"):
        if col in m.columns:
            _put(m, hit, col, np.full(len(hit), np.nan), field)


def _default_reasons(klass: np.ndarray, metrics: pd.DataFrame, profile: Profile,
                     access: pd.DataFrame | None, ids: pd.Series) -> np.ndarray:
    """Reasons a forced class takes from the village's own metrics (see module docstring)."""
    out = np.full(len(klass), "", dtype=object)
    shares = [c for c in metrics.columns if c.startswith("pop_covered_share")
              and not c.endswith("_model")]
    for target, value in (("unavailable", None), ("available_inaccessible", 1.0)):
        sel = klass == target
        if not sel.any():
            continue
        m = metrics[sel].copy()
        for col in shares:
            below = min(profile.min_covered_share * (1 - profile.stability_rel), 1.0) * 0.999
            m[col] = (np.minimum(m[col].to_numpy(dtype=float), below) if value is None
                      else value)
        verdict = apply_profile(m, profile, access=access,
                                village_ids=ids[sel].reset_index(drop=True).set_axis(m.index))
        out[sel] = verdict["reasons"].to_numpy()
    return out


def apply_corrections(metrics: pd.DataFrame, verdict: pd.DataFrame, corrections: pd.DataFrame,
                      profile: Profile, *, village_ids: pd.Series,
                      access: pd.DataFrame | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Apply corrections to a run's metrics and verdict.

    Parameters
    ----------
    metrics : DataFrame
        From :func:`coverage.classify.village_metrics`, one row per village.
    verdict : DataFrame
        :func:`coverage.classify.rules.apply_profile` of ``metrics`` (the uncorrected class).
    corrections : DataFrame
        From :func:`read_corrections`.
    profile : Profile
        The rules.
    village_ids : Series
        The id of each village, in the rows' order.
    access : DataFrame, optional
        The access table, for the rules applied again.

    Returns
    -------
    metrics, verdict, provenance : DataFrame
        The corrected metrics and verdict (class corrections: the class, the reasons, a
        stable label, confidence 1), and the columns of :data:`CORRECTION_COLUMNS`.

    Raises
    ------
    InputError
        An id is not among the villages, or a corrected ``available_inaccessible`` village
        has no reason in the file nor in its metrics.
    """
    rows = match_corrections(corrections, village_ids)
    hit = rows >= 0
    corr = corrections.iloc[np.where(hit, rows, 0)]
    evidence = hit & corr[list(EVIDENCE_COLUMNS)].notna().any(axis=1).to_numpy()
    forced = hit & corr["class"].notna().to_numpy()
    ids = village_ids.reset_index(drop=True).astype(str)
    if evidence.any():
        metrics = _correct_evidence(metrics, np.where(evidence, rows, -1), corrections)
        new = apply_profile(metrics, profile, access=access,
                            village_ids=ids.set_axis(metrics.index))
    else:
        new = verdict.copy()
    if forced.any():
        klass = corr["class"].to_numpy(dtype=object)
        given = corr["reasons"].to_numpy(dtype=object)
        derived = _default_reasons(np.where(forced, klass, ""), metrics, profile, access, ids)
        reasons = np.where(pd.isna(given), derived, given)
        empty = forced & (klass == "available_inaccessible") & (reasons == "")
        if empty.any():
            raise InputError(
                f"corrections set {', '.join(ids[empty][:10])} to available_inaccessible but "
                "neither the file nor the village's metrics give a reason; add a reasons "
                "column (e.g. weak_signal or measured_no_service) to those rows")
        idx = np.flatnonzero(forced)
        new.iloc[idx, new.columns.get_loc("class")] = klass[forced]
        new.iloc[idx, new.columns.get_loc("reasons")] = reasons[forced].astype(str)
        new.iloc[idx, new.columns.get_loc("confidence")] = 1.0
        new.iloc[idx, new.columns.get_loc("label_stable")] = True
    kind = np.where(forced & evidence, "class+evidence",
                    np.where(forced, "class", np.where(evidence, "evidence", "")))

    def column(name: str) -> np.ndarray:
        return np.where(hit, corr[name].to_numpy(dtype=object), None)

    provenance = pd.DataFrame({
        "corrected": hit,
        "correction_kind": kind,
        "correction_source": column("source"),
        "correction_date": column("date"),
        "correction_note": column("note"),
        "class_original": verdict["class"].to_numpy(),
        "reasons_original": verdict["reasons"].to_numpy(),
        "confidence_original": verdict["confidence"].to_numpy(),
    }, index=metrics.index)
    changed = int((provenance["class_original"].to_numpy() != new["class"].to_numpy()).sum())
    log.info("applied %d correction(s) (%d of class, %d of evidence); %d class(es) changed",
             int(hit.sum()), int(forced.sum()), int(evidence.sum()), changed)
    return metrics, new, provenance
