"""One short sentence per village, in English and Vietnamese, saying why it has its class.

Example: "Unavailable (2G only): 38% of 1,240 people have 4G outdoors, 12% indoors; nearest
4G site 9.2 km, behind a ridge; 0 of 6 tests had service." Numbers follow each language's
conventions (Vietnamese: 1.240 người, 9,2 km).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from ..model import CoverageSurfaces
from ..params import BROADBAND_TECHS

__all__ = ["explain", "explain_frame", "nearest_sites"]

CLASS_TEXT = {
    "unavailable": ("No mobile broadband", "Chưa có băng rộng di động"),
    "available_inaccessible": ("Available but not usable", "Có sóng nhưng khó sử dụng"),
    "served": ("Served", "Đã được phục vụ"),
}
REASON_TEXT = {
    "no_signal": ("no signal", "không có sóng"),
    "2g_only": ("2G only", "chỉ có 2G"),
    "partial_coverage": ("partial coverage", "phủ sóng một phần"),
    "weak_signal": ("weak indoor signal", "sóng yếu trong nhà"),
    "slow_speed": ("slow speed", "tốc độ chậm"),
    "measured_no_service": ("tests found no service", "đo thấy mất sóng"),
    "no_power": ("no electricity", "thiếu điện"),
    "no_devices": ("few smartphones", "thiếu điện thoại thông minh"),
    "unaffordable": ("data unaffordable", "cước quá đắt"),
}
#: Phrases without figures, English then Vietnamese (as :data:`CLASS_TEXT`).
_MODEL_ONLY_TEXT = ("; no tests, model only", "; chưa có đo kiểm, theo mô phỏng")
_NEAR_THRESHOLD_TEXT = ("; near a threshold", "; sát ngưỡng")
EARTH_RADIUS_M = 6_371_000.0


def _num(x: float, lang: str, digits: int = 0) -> str:
    text = f"{x:,.{digits}f}"
    if lang == "vi":  # 1.240,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _is_true(x) -> bool:
    return x is True or x is np.True_


def _is_false(x) -> bool:
    return x is False or x is np.False_


def _reason_codes(reasons) -> list[str]:
    """The codes of a row's ``reasons`` (``;``-separated; None or "": none)."""
    return [r for r in str(reasons or "").split(";") if r]


def nearest_sites(villages: gpd.GeoDataFrame, towers: gpd.GeoDataFrame | None,
                  surfaces: CoverageSurfaces, *, k_factor: float = 4.0 / 3.0) -> pd.DataFrame:
    """Nearest active broadband site of each village and whether terrain blocks it.

    Returns ``nearest_site_km``, ``nearest_site_tech`` and ``behind_ridge`` (True where the
    ground between the site's antenna and the village's representative point, with earth
    bulge for ``k_factor``, rises above the straight line; None without a DEM). Where
    every village is known ``behind_ridge`` is of dtype bool, so that the written tables
    keep it a boolean (an object column of True/False is written to a GeoPackage as text).
    """
    n = len(villages)
    out = pd.DataFrame({"nearest_site_km": np.full(n, np.nan),
                        "nearest_site_tech": pd.Series([None] * n, dtype=object),
                        "behind_ridge": pd.Series([None] * n, dtype=object)},
                       index=villages.index)
    if towers is None or towers.empty or "tech" not in towers.columns:
        return out
    sel = towers["tech"].isin(BROADBAND_TECHS)
    if "status" in towers.columns:
        sel &= towers["status"].fillna("active").eq("active")
    bb = towers[sel]
    if bb.empty:
        return out
    crs = surfaces.grid.crs
    pts = villages.geometry.to_crs(crs).representative_point().to_numpy()
    sites = bb.geometry.to_crs(crs).to_numpy()
    import shapely

    tree = shapely.STRtree(sites)
    idx, dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
    vi, si = idx
    out.iloc[vi, 0] = dist / 1000.0
    tech = bb["tech"].to_numpy()
    out.iloc[vi, 1] = tech[si]
    if surfaces.dem is None:
        return out
    heights = (pd.to_numeric(bb["height_m"], errors="coerce").fillna(30.0).to_numpy()
               if "height_m" in bb.columns else np.full(len(bb), 30.0))
    x0, y0 = shapely.get_x(sites[si]), shapely.get_y(sites[si])
    x1, y1 = shapely.get_x(pts[vi]), shapely.get_y(pts[vi])
    t = np.linspace(0.0, 1.0, 33)[None, 1:-1]
    xs = x0[:, None] + (x1 - x0)[:, None] * t
    ys = y0[:, None] + (y1 - y0)[:, None] * t
    grid = surfaces.grid
    row, col, inside = grid.index(xs.ravel(), ys.ravel())
    ground = np.full(xs.size, np.nan)
    ground[inside] = surfaces.dem[row[inside], col[inside]]
    ground = ground.reshape(xs.shape)

    def at(x, y):
        r, c, ok = grid.index(x, y)
        g = np.full(len(x), np.nan)
        g[ok] = surfaces.dem[r[ok], c[ok]]
        return g

    h0 = at(x0, y0) + heights[si]
    h1 = at(x1, y1) + 1.5
    d = dist[:, None]
    line = h0[:, None] + (h1 - h0)[:, None] * t
    bulge = (t * d) * ((1 - t) * d) / (2 * k_factor * EARTH_RADIUS_M)
    # fmax skips NaN (profile points off the grid) without warning on all-NaN rows
    blocked = np.fmax.reduce(ground + bulge - line, axis=1) > 0
    known = np.isfinite(h0) & np.isfinite(h1)
    out.iloc[vi[known], 2] = blocked[known]
    if out["behind_ridge"].notna().all():  # a boolean column where every village is known
        out["behind_ridge"] = out["behind_ridge"].astype(bool)
    return out


def explain(row: pd.Series | dict, lang: str = "en") -> str:
    """The sentence of one classified row, a Series or a dict (``lang`` ``"en"`` or ``"vi"``)."""
    li = 0 if lang == "en" else 1
    klass = row["class"]
    tech = row.get("best_tech") if isinstance(row.get("best_tech"), str) else None
    text = (_head_text(klass, row.get("reasons"), li)
            + _coverage_text(row["pop_covered_share"], row["pop_indoor_share"],
                             row.get("population"), tech, row.get("operators"), lang))
    km = row.get("nearest_site_km")
    if pd.notna(km) and (klass != "served" or km > 5):
        text += _site_text(km, row.get("nearest_site_tech"), row.get("behind_ridge"), lang)
    text += _tests_text_of(row, lang)
    if _is_false(row.get("label_stable")):
        text += _NEAR_THRESHOLD_TEXT[li]
    if _is_true(row.get("corrected")):
        text += _correction_text(row, li)
    return text + "."


def _tests_text_of(row: pd.Series | dict, lang: str) -> str:
    """What a row's tests found (:func:`explain`), or what the model alone said."""
    text = ""
    n = row.get("n_cov_tests", 0) or 0
    if n >= 1:
        text += _tests_text(row.get("k_cov_tests", 0) or 0, n, lang)
    share = row.get("no_service_share")
    n_known = row.get("n_service_tests", 0) or 0
    if pd.notna(share) and n_known >= 1:
        text += _no_service_text(share, n_known, lang)
    dl = row.get("median_download_mbps")
    if pd.notna(dl):
        text += _speed_text(dl, row.get("n_speed_tests", row.get("n_tests", 0)), lang)
    if n < 1 and not pd.notna(dl):
        text += _model_only_text(row.get("reasons"), row.get("slow_prior"),
                                 row.get("no_service_prior"), lang)
    return text


def explain_frame(rows: pd.DataFrame, lang: str = "en") -> list[str]:
    """:func:`explain` of every row of a table, column by column (the same sentences).

    Building a dict per row and testing each field costs ~60 µs a village; here each part
    of the sentence is made for the whole column at once and the parts are joined, about
    five times faster. Rows with a field correction take :func:`explain` itself (few).
    """
    li = 0 if lang == "en" else 1
    klass = _objects(rows, "class")
    parts = [_head_column(klass, _objects(rows, "reasons"), li), _coverage_column(rows, lang)]
    km = _numbers(rows, "nearest_site_km")
    parts.append(_where(np.isfinite(km) & ((klass != "served") | (km > 5)), _site_text,
                        km, _objects(rows, "nearest_site_tech"),
                        _objects(rows, "behind_ridge"), lang=lang))
    parts += _tests_columns(rows, lang)
    parts.append([_NEAR_THRESHOLD_TEXT[li] if _is_false(s) else ""
                  for s in _objects(rows, "label_stable")])
    text = ["".join(p) + "." for p in zip(*parts, strict=True)]
    for i in np.flatnonzero([_is_true(c) for c in _objects(rows, "corrected")]):
        text[i] = explain(rows.iloc[[i]].to_dict("records")[0], lang)
    return text


def _tests_columns(rows: pd.DataFrame, lang: str) -> list[list[str]]:
    """What each row's tests found (:func:`explain_frame`), or what the model alone said."""
    n_cov, k_cov = _numbers(rows, "n_cov_tests", 0.0), _numbers(rows, "k_cov_tests", 0.0)
    # the residents' no-service share the rule decided on, with the tests behind it
    none, n_known = _numbers(rows, "no_service_share"), _numbers(rows, "n_service_tests", 0.0)
    dl = _numbers(rows, "median_download_mbps")
    ns = (_numbers(rows, "n_speed_tests") if "n_speed_tests" in rows
          else _numbers(rows, "n_tests", 0.0))
    untested = (n_cov < 1) & ~np.isfinite(dl)
    return [_where(n_cov >= 1, _tests_text, k_cov, n_cov, lang=lang),
            _where(np.isfinite(none) & (n_known >= 1), _no_service_text, none, n_known,
                   lang=lang),
            _where(np.isfinite(dl), _speed_text, dl, ns, lang=lang),
            _where(untested, _model_only_text, _objects(rows, "reasons"),
                   _numbers(rows, "slow_prior"), _numbers(rows, "no_service_prior"),
                   lang=lang)]


def _head_column(klass: np.ndarray, reasons: np.ndarray, li: int) -> list[str]:
    """:func:`_head_text` of every row, made once for each (class, reasons) pair."""
    heads: dict[tuple, str] = {}
    out = []
    for key in zip(klass, reasons, strict=True):
        if key not in heads:
            heads[key] = _head_text(*key, li)
        out.append(heads[key])
    return out


def _coverage_column(rows: pd.DataFrame, lang: str) -> list[str]:
    """:func:`_coverage_text` of every row."""
    return [_coverage_text(c, i, p, t if isinstance(t, str) else None, o, lang)
            for c, i, p, t, o in zip(_numbers(rows, "pop_covered_share"),
                                     _numbers(rows, "pop_indoor_share"),
                                     _numbers(rows, "population"), _objects(rows, "best_tech"),
                                     _objects(rows, "operators"), strict=True)]


def _objects(rows: pd.DataFrame, name: str, default=None) -> np.ndarray:
    """A column's values as objects (``default`` throughout when it is missing)."""
    if name not in rows.columns:
        return np.full(len(rows), default, dtype=object)
    return rows[name].to_numpy(dtype=object)


def _numbers(rows: pd.DataFrame, name: str, default: float = np.nan) -> np.ndarray:
    """A column's values as floats (not numbers: NaN; ``default`` when it is missing)."""
    if name not in rows.columns:
        return np.full(len(rows), default, dtype=float)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)


def _where(mask: np.ndarray, phrase, *columns: np.ndarray, lang: str) -> list[str]:
    """``phrase`` of each ``mask`` row's values of ``columns``; "" on the other rows."""
    out = [""] * len(mask)
    for i in np.flatnonzero(mask):
        out[i] = phrase(*(c[i] for c in columns), lang)
    return out


def _head_text(klass: str, reasons, li: int) -> str:
    """The class and its reasons: ``"No mobile broadband (2G only): "``."""
    names = [REASON_TEXT[r][li] for r in _reason_codes(reasons)]
    return CLASS_TEXT[klass][li] + (f" ({', '.join(names)})" if names else "") + ": "


def _coverage_text(covered: float, indoor: float, population, tech: str | None, operators,
                   lang: str) -> str:
    """Who has broadband outdoors and indoors, and from how many operators.

    Parameters
    ----------
    covered, indoor : float
        The shares of people (0-1) with broadband outdoors and indoors.
    population : float or None
        People in the village (None or NaN: no population data, the area's shares).
    tech : str or None
        The best technology that reaches the village (None: broadband of any generation).
    operators : int
        Operators that reach it (said only with ``tech``).
    lang : {"en", "vi"}
        The sentence's language.
    """
    cov, ind = _pct(covered), _pct(indoor)
    known = pd.notna(population)
    if lang == "en":
        who = f"{_num(population, lang)} people" if known else "the area (no population data)"
        return (f"{cov} of {who} have {tech or '3G/4G/5G'} outdoors, {ind} indoors"
                + (f", from {int(operators)} operator(s)" if tech and operators else ""))
    who = f"{_num(population, lang)} người" if known else "diện tích (không có số dân)"
    return (f"{cov} trong {who} có sóng {tech or '3G/4G/5G'} ngoài trời, {ind} trong nhà"
            + (f", {int(operators)} nhà mạng" if tech and operators else ""))


def _site_text(km: float, tech, ridge, lang: str) -> str:
    """The nearest broadband site's distance, and the ridge in the way if any.

    Parameters
    ----------
    km : float
        Distance to the site, km (in the grid's metric CRS, :func:`nearest_sites`).
    tech : str or None
        The site's technology.
    ridge : bool or None
        True (Python's or numpy's) where terrain blocks the line to the site.
    lang : {"en", "vi"}
        The sentence's language.
    """
    tech = tech or ""
    if lang == "en":
        return (f"; nearest {tech} site {_num(km, lang, 1)} km"
                + (", behind a ridge" if _is_true(ridge) else ""))
    return (f"; trạm {tech} gần nhất cách {_num(km, lang, 1)} km"
            + (", bị núi che khuất" if _is_true(ridge) else ""))


def _tests_text(k: float, n: float, lang: str) -> str:
    """How many of the tests with a known outcome (``n``) found broadband (``k``)."""
    return (f"; {k:.0f} of {n:.0f} tests had service" if lang == "en"
            else f"; {k:.0f}/{n:.0f} lần đo có sóng")


def _no_service_text(share: float, n_known: float, lang: str) -> str:
    """The residents' no-service ``share`` (0-1) the rule decided on, over ``n_known`` tests."""
    return (f"; residents without service {_pct(share)} over {n_known:.0f} test(s)"
            if lang == "en"
            else f"; cư dân mất sóng {_pct(share)} qua {n_known:.0f} lần đo")


def _speed_text(dl: float, n: float, lang: str) -> str:
    """The residents' median download ``dl`` (Mbps) over its ``n`` tests."""
    return (f"; residents' median {_num(dl, lang, 1)} Mbps over {n:.0f} test(s)"
            if lang == "en"
            else f"; tốc độ trung vị của cư dân {_num(dl, lang, 1)} Mbps qua {n:.0f} lần đo")


def _model_only_text(reasons, slow, none, lang: str) -> str:
    """No tests: the model alone, and what its priors said where a test rule fired.

    ``slow`` and ``none`` are the priors' shares of residents (0-1) slow and without
    service, said where ``reasons`` holds ``slow_speed`` or ``measured_no_service``.
    """
    codes = _reason_codes(reasons)
    parts = []
    if "slow_speed" in codes and pd.notna(slow):
        parts.append(f"{_pct(slow)} of residents slow" if lang == "en"
                     else f"{_pct(slow)} cư dân tốc độ chậm")
    if "measured_no_service" in codes and pd.notna(none):
        parts.append(f"{_pct(none)} without service" if lang == "en"
                     else f"{_pct(none)} mất sóng")
    return (_MODEL_ONLY_TEXT[0 if lang == "en" else 1]
            + ((": " + ", ".join(parts)) if parts else ""))


def _correction_text(row: pd.Series | dict, li: int) -> str:
    """Who corrected the row's class or field evidence, when, and what the rules said."""
    was = row.get("class_original")
    was_text = CLASS_TEXT[was][li].lower() if was in CLASS_TEXT else "?"
    evidence = row.get("correction_kind") == "evidence"
    source, date = row.get("correction_source"), row.get("correction_date")
    if li == 0:
        what = "field evidence" if evidence else "class"
        return f"; {what} corrected by {source} on {date} (rules alone: {was_text})"
    what = "số liệu đo thực địa" if evidence else "phân loại"
    return f"; {what} được {source} hiệu chỉnh ngày {date} (theo quy tắc: {was_text})"
