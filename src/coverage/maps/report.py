"""The one-page printable summary report (HTML) for a province, or any set of villages.

One self-contained HTML file sized for one A4 page: the map of classes (a PNG embedded as a
``data:`` URI), villages and people per class, progress against the national targets, the top
priority villages, the first sites to build and the cost curve. No script, no external file;
every text from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import SchemaError
from ._common import (
    CLASS_COLORS,
    _atomic_write,
    _class_of,
    _esc,
    _labels,
    _missing,
    _plan_table,
)
from ._figures import FIBRE_REACH_M, class_table, targets
from .static import cost_curve_png_bytes, map_png_bytes

__all__ = ["summary_report", "write_report"]

logger = logging.getLogger(__name__)

# cumulative columns first: a plan has both per-site and running totals
_MONEY_COLS = ("budget", "cum_cost", "spent", "cost")
_PEOPLE_COLS = ("people_connected", "cum_pop_gain", "people", "pop_gain")

_CSS = """
@page { size: A4; margin: 11mm; }
* { box-sizing: border-box; }
body { font: 9pt/1.25 system-ui, "Segoe UI", Roboto, Arial, sans-serif; color: #222;
  margin: 0 auto; max-width: 190mm; }
h1 { font-size: 15pt; margin: 0 0 1mm; }
h2 { font-size: 10.5pt; margin: 3mm 0 1.2mm; border-bottom: 1px solid #bbb; }
.meta { color: #555; font-size: 8.5pt; }
.row { display: flex; gap: 5mm; align-items: flex-start; }
.row > div { flex: 1 1 0; min-width: 0; }
.row > div.map { flex: 0 0 37%; }
.map img { width: 100%; max-height: 80mm; object-fit: contain; border: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 8pt; }
td.t { white-space: nowrap; }
th, td { padding: 0.6mm 1.2mm; border-bottom: 1px solid #e2e2e2; text-align: left;
  vertical-align: top; }
th { background: #f1f1f1; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n { white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 1px solid #999; }
.sw { display: inline-block; width: 3mm; height: 3mm; border: 1px solid #444;
  margin-right: 1.2mm; vertical-align: -0.3mm; }
.bar { position: relative; height: 3mm; background: #eee; border: 1px solid #bbb; min-width: 18mm; }
.bar i { position: absolute; left: 0; top: 0; bottom: 0; background: #0072B2; }
.bar b { position: absolute; top: -0.6mm; bottom: -0.6mm; width: 0.6mm; background: #D55E00; }
.note { color: #666; font-size: 8pt; }
.curve img { width: 100%; max-height: 50mm; object-fit: contain; }
@media print { a { color: inherit; text-decoration: none; } }
"""


def _num(value: Any, lang: str, decimals: int = 0) -> str:
    """A number with thousands separators (``.`` in Vietnamese, ``,`` in English)."""
    if _missing(value):
        return "–"
    text = f"{float(value):,.{decimals}f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _pct(value: Any, lang: str) -> str:
    if _missing(value):
        return "–"
    text = f"{100 * float(value):.1f}%"
    return text.replace(".", ",") if lang == "vi" else text


def _money(value: float, lang: str, currency: str) -> str:
    lab = _labels(lang)
    for factor, word in ((1e9, lab["billion"]), (1e6, lab["million"])):
        if abs(value) >= factor:
            return f"{_num(value / factor, lang, 1)} {word} {_esc(currency)}".strip()
    return f"{_num(value, lang)} {_esc(currency)}".strip()


def _png_img(data: bytes, alt: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _curve(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``cost`` and ``people`` (cumulative) from a plan or a sweep table."""
    money = next((c for c in _MONEY_COLS if c in frame.columns), None)
    people = next((c for c in _PEOPLE_COLS if c in frame.columns), None)
    if money is None or people is None:
        raise SchemaError(
            f"the {what} needs a money column ({', '.join(_MONEY_COLS)}) and a people column "
            f"({', '.join(_PEOPLE_COLS)}); columns seen: {', '.join(map(str, frame.columns))}."
        )
    out = pd.DataFrame(
        {
            "cost": pd.to_numeric(frame[money], errors="coerce"),
            "people": pd.to_numeric(frame[people], errors="coerce"),
        }
    ).dropna()
    if money == "cost" and people == "pop_gain":  # per-site rows of a plan: accumulate
        return out.cumsum().reset_index(drop=True)
    if money in ("budget", "spent"):  # a sweep: one row per budget, in any order
        out = out.sort_values("cost", kind="stable")
    return out.reset_index(drop=True)


def _priority_table(
    classified: pd.DataFrame, plan: pd.DataFrame | None, priority: pd.DataFrame | None
) -> pd.DataFrame:
    """The priority list: given, else from the plan, else unavailable villages by people."""
    if priority is not None:
        table = pd.DataFrame(priority)
        if "priority" in table.columns:
            table = table.sort_values("priority", kind="stable")
    elif plan is not None and "villages" in plan.columns:
        from ..plan import priority_villages

        table = priority_villages(classified, plan)
    else:
        pop = pd.to_numeric(classified.get("population"), errors="coerce")
        table = pd.DataFrame(
            {
                "village_id": classified["village_id"].astype(str)
                if "village_id" in classified.columns
                else classified.index.astype(str),
                "name": classified.get("name", pd.Series("", index=classified.index)),
                "class": classified["class"],
                "population": pop if pop is not None else np.nan,
            }
        )
        rank = table["class"].map({"unavailable": 0, "available_inaccessible": 1, "served": 2})
        table = table.assign(_c=rank.fillna(3), _p=-table["population"].fillna(0)).sort_values(
            ["_c", "_p"], kind="stable"
        )
        table = table.drop(columns=["_c", "_p"])
        table.insert(0, "priority", np.arange(1, len(table) + 1))
    # the list is about villages that need work
    if "class" in table.columns:
        need = table["class"].map(_class_of).isin(["unavailable", "available_inaccessible"])
        table = table[need]
    if "commune" not in table.columns and "commune" in classified.columns and (
        "village_id" in table.columns and "village_id" in classified.columns
    ):
        communes = dict(
            zip(classified["village_id"].astype(str), classified["commune"], strict=False)
        )
        table = table.assign(commune=table["village_id"].astype(str).map(communes))
    return table


def _table(head: list[tuple[str, str]], rows: list[list[str]], *, total: list[str] | None = None
           ) -> str:
    """An HTML table; cells are already escaped; ``head`` is (label, cell class).

    Cell classes: ``"n"`` numbers (right-aligned), ``"t"`` short text kept on one line, ``""``.
    """
    th = "".join(f'<th class="{n}">{h}</th>' if n else f"<th>{h}</th>" for h, n in head)
    body = []
    for r in [*rows, *([total] if total else [])]:
        tds = "".join(
            f'<td class="{n}">{c}</td>' if n else f"<td>{c}</td>"
            for c, (_, n) in zip(r, head, strict=True)
        )
        cls = ' class="total"' if total is not None and r is total else ""
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary_report(
    classified: gpd.GeoDataFrame,
    *,
    plan: pd.DataFrame | None = None,
    priority: pd.DataFrame | None = None,
    sweep: pd.DataFrame | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    lang: str = "vi",
    title: str | None = None,
    currency: str = "VND",
    top_n: int = 8,
    fibre_reach_m: float = FIBRE_REACH_M,
    date: dt.date | None = None,
) -> str:
    """Render the one-page summary report as a self-contained HTML string.

    Parameters
    ----------
    classified : geopandas.GeoDataFrame
        Classified villages (any CRS): ``class`` is required; ``population``, ``households``,
        ``name``, ``commune``, ``fibre_households`` are used when present.
    plan : pandas.DataFrame, optional
        Ranked sites of ``covgap plan`` (``rank``, ``site_id``, ``kind``, ``tech``, ``cost``,
        ``pop_gain``, ``cum_cost``, ``cum_pop_gain``, ``villages``): the first sites to build,
        and the cost curve in build order.
    priority : pandas.DataFrame, optional
        The priority village list (``--villages-out`` of ``covgap plan``); derived from the
        plan, or from class and population, when omitted.
    sweep : pandas.DataFrame, optional
        A budget sweep: one row per budget with a money column (``budget`` or ``cost``) and a
        people column (``people_connected`` or ``people``); drawn as a second cost curve.
    fibre : geopandas.GeoDataFrame, optional
        Fibre routes or nodes, for the fibre target (see
        :func:`coverage.maps._figures.targets`; proximity ``fibre_reach_m``, default 500 m).
    lang : {"vi", "en"}, default "vi"
        Language of the report.
    title : str, optional
        Heading (for example the province's name); a translated default when omitted.
    currency : str, default "VND"
        Currency of the plan's costs.
    top_n : int, default 8
        Rows of the priority villages and first sites tables (keeps the report on one page).
    date : datetime.date, optional
        Date printed on the report (default today).

    Returns
    -------
    str
        The HTML page.
    """
    lab = _labels(lang)
    plan = _plan_table(plan)
    title = title if title is not None else lab["report_title"]
    table = class_table(classified)
    has_pop = bool(table["people"].sum() > 0)
    parts: list[str] = []
    date = date or dt.date.today()
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append(
        f'<div class="meta">{html.escape(lab["generated"])} {date.isoformat()} · '
        f"{_num(len(classified), lang)} {html.escape(lab['villages_unit'])}"
        f"{'' if has_pop else ' · ' + html.escape(lab['no_population'])}</div>"
    )
    map_png = map_png_bytes(classified, plan=plan if _is_geo(plan) else None, title="",
                            lang=lang, dpi=120, figsize=(5.0, 5.0), legend=False)
    parts.append(
        '<div class="row">'
        f'<div class="map">{_png_img(map_png, lab["map"])}</div>'
        f'<div><h2>{html.escape(lab["by_class"])}</h2>{_class_html(table, has_pop, lang)}'
        f'<h2>{html.escape(lab["targets"])}</h2>'
        f"{_targets_html(classified, fibre, fibre_reach_m, lang)}</div>"
        "</div>"
    )
    left = _priority_html(_priority_table(classified, plan, priority).head(top_n), lang)
    right, curves = _sites_html(plan, top_n=top_n, currency=currency, lang=lang)
    if sweep is not None and len(sweep):
        curves.append((lab["budget_sweep"], _curve(pd.DataFrame(sweep), "budget sweep")))
    parts.append(f'<div class="row"><div>{left}</div><div>{right}</div></div>')
    if curves:
        png = cost_curve_png_bytes(curves, lang=lang, currency=currency, dpi=130,
                                   figsize=(7.5, 2.1))
        parts.append(
            f'<h2>{html.escape(lab["cost_curve"])}</h2>'
            f'<div class="curve">{_png_img(png, lab["cost_curve"])}</div>'
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f'<body class="covgap-report">{"".join(parts)}</body></html>\n'
    )
    return page


def _class_html(table: pd.DataFrame, has_pop: bool, lang: str) -> str:
    """The villages and people per class (:func:`class_table`), with a total row."""
    lab = _labels(lang)
    rows = []
    for cls, r in table.iterrows():
        rows.append(
            [
                f'<i class="sw" style="background:{CLASS_COLORS[cls]}"></i>'
                f"{html.escape(lab[cls])}",
                _num(r["villages"], lang),
                _pct(r["villages_share"], lang),
                _num(r["people"], lang) if has_pop else "–",
                _pct(r["people_share"], lang) if has_pop else "–",
            ]
        )
    total = [
        html.escape(lab["total"]),
        _num(table["villages"].sum(), lang),
        _pct(1.0, lang),
        _num(table["people"].sum(), lang) if has_pop else "–",
        _pct(1.0, lang) if has_pop else "–",
    ]
    head = [(lab["class"], ""), (lab["n_villages"], "n"), (lab["share"], "n"),
            (lab["people"], "n"), (lab["share"], "n")]
    return _table([(html.escape(h), n) for h, n in head], rows, total=total)


def _targets_html(classified: gpd.GeoDataFrame, fibre: gpd.GeoDataFrame | None,
                  fibre_reach_m: float, lang: str) -> str:
    """The national targets (:func:`targets`): goal, reached with a bar, and the gap.

    A target measured by proximity to fibre or by a fibre column is starred, with its note
    under the table.
    """
    lab = _labels(lang)
    trows = []
    notes: list[str] = []
    for t in targets(classified, fibre=fibre, reach_m=fibre_reach_m):
        name = lab[f"t_{t.key}"].format(year=t.year)
        unit = lab["villages_unit"] if t.key == "broadband_villages" else lab["households_unit"]
        if t.value is None:
            reached = "–"
            bar = ""
            gap = html.escape(lab[f"n_{t.note}"]) if f"n_{t.note}" in lab else ""
        else:
            reached = _pct(t.value, lang)
            bar = (
                f'<div class="bar" role="img" aria-label="{reached}">'
                f'<i style="width:{100 * min(t.value, 1):.1f}%"></i>'
                f'<b style="left:{100 * t.goal:.1f}%"></b></div>'
            )
            missing = max(t.goal * t.total - t.done, 0.0)
            gap = f"{_num(np.ceil(missing - 1e-9), lang)} {html.escape(unit)}"
            if t.note in ("fibre_proximity", "fibre_column"):
                how = lab["n_" + t.note].format(reach=f"{fibre_reach_m:g}")
                if how not in notes:
                    notes.append(how)
                name += "*" * (notes.index(how) + 1)
        trows.append([html.escape(name), _pct(t.goal, lang), reached, bar, gap])
    thead = [(lab["target"], ""), (lab["goal"], "n"), (lab["reached"], "n"), ("", ""),
             (lab["gap"], "")]
    return _table([(html.escape(h), n) for h, n in thead], trows) + "".join(
        f'<div class="note">{"*" * (i + 1)} {html.escape(n)}</div>' for i, n in enumerate(notes)
    )


def _priority_html(prio: pd.DataFrame, lang: str) -> str:
    """The first priority villages' table, under its heading (no commune column if none)."""
    lab = _labels(lang)
    prow = []
    for r in prio.to_dict("records"):
        prow.append(
            [
                _num(r.get("priority"), lang),
                _esc(r.get("name")) or _esc(r.get("village_id")),
                _esc(r.get("commune")),
                f'<i class="sw" title="{html.escape(lab[_class_of(r.get("class"))])}" '
                f'style="background:{CLASS_COLORS[_class_of(r.get("class"))]}"></i>',
                _num(r.get("population"), lang),
                _num(r.get("site_rank"), lang) if not _missing(r.get("site_rank")) else "",
            ]
        )
    phead = [(lab["priority"], "n"), (lab["name"], ""), (lab["commune"], "t"),
             (lab["class"], "t"), (lab["people"], "n"), (lab["site_rank"], "n")]
    if not prio.get("commune", pd.Series(dtype=object)).notna().any():
        phead.pop(2)
        prow = [r[:2] + r[3:] for r in prow]
    return (f"<h2>{html.escape(lab['priority_villages'])}</h2>"
            + _table([(html.escape(h), n) for h, n in phead], prow))


def _sites_html(plan: pd.DataFrame | None, *, top_n: int, currency: str, lang: str
                ) -> tuple[str, list[tuple[str, pd.DataFrame]]]:
    """The first sites' table with the plan's totals, and the plan's cost curve.

    Returns the HTML (a note without a plan) and the curves to draw (the build order's,
    none without a plan).
    """
    lab = _labels(lang)
    if plan is None or not len(plan):
        return (f'<h2>{html.escape(lab["first_sites"])}</h2><p class="note">'
                f'{html.escape(lab["no_plan"])}</p>'), []
    p = pd.DataFrame(plan)
    if "rank" in p.columns:
        p = p.sort_values("rank", kind="stable")
    srow = []
    for r in p.head(top_n).to_dict("records"):
        kind = r.get("kind")
        srow.append(
            [
                _num(r.get("rank"), lang),
                _esc(r.get("site_id")),
                html.escape(lab[kind]) if kind in ("new_site", "upgrade") else _esc(kind),
                _esc(r.get("tech")),
                _money(float(r["cost"]), lang, "") if not _missing(r.get("cost")) else "–",
                _num(r.get("pop_gain"), lang),
            ]
        )
    shead = [(lab["rank"], "n"), (lab["site_id"], ""), (lab["kind"], "t"),
             (lab["tech"], "t"), (f"{lab['cost']} ({currency})", "n"),
             (lab["pop_gain"], "n")]
    curve_plan = _curve(p, "plan")
    right = (
        f"<h2>{html.escape(lab['first_sites'])}</h2>"
        + _table([(html.escape(h), n) for h, n in shead], srow)
        + '<div class="note">'
        + html.escape(lab["sites_total"]).format(
            n=_num(len(p), lang),
            people=_num(curve_plan["people"].max() if len(curve_plan) else 0, lang),
            cost=_money(float(curve_plan["cost"].max()) if len(curve_plan) else 0.0, lang,
                        currency),
        )
        + "</div>"
    )
    return right, [(lab["build_order"], curve_plan)]


def _is_geo(frame: Any) -> bool:
    return isinstance(frame, gpd.GeoDataFrame) and frame.crs is not None and len(frame) > 0


def write_report(
    classified: gpd.GeoDataFrame, path: str | os.PathLike[str], **kwargs: Any
) -> Path:
    """Write :func:`summary_report` to ``path`` atomically; keywords as there.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    _atomic_write(path, summary_report(classified, **kwargs).encode("utf-8"))
    logger.info("report written to %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return path
