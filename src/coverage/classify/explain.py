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
EARTH_RADIUS_M = 6_371_000.0


def _num(x: float, lang: str, digits: int = 0) -> str:
    text = f"{x:,.{digits}f}"
    if lang == "vi":  # 1.240,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def nearest_sites(villages: gpd.GeoDataFrame, towers: gpd.GeoDataFrame | None,
                  surfaces: CoverageSurfaces, *, k_factor: float = 4.0 / 3.0) -> pd.DataFrame:
    """Nearest active broadband site of each village and whether terrain blocks it.

    Returns ``nearest_site_km``, ``nearest_site_tech`` and ``behind_ridge`` (True where the
    ground between the site's antenna and the village's representative point, with earth
    bulge for ``k_factor``, rises above the straight line; NaN without a DEM).
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
    return out


def explain(row: pd.Series | dict, lang: str = "en") -> str:
    """The sentence of one classified row, a Series or a dict (``lang`` ``"en"`` or ``"vi"``)."""
    li = 0 if lang == "en" else 1
    klass = row["class"]
    reasons = [REASON_TEXT[r][li] for r in str(row.get("reasons") or "").split(";") if r]
    text = CLASS_TEXT[klass][li] + (f" ({', '.join(reasons)})" if reasons else "") + ": "
    pop = row.get("population")
    tech = row.get("best_tech") if isinstance(row.get("best_tech"), str) else None
    cov, ind = _pct(row["pop_covered_share"]), _pct(row["pop_indoor_share"])
    if lang == "en":
        who = (f"{_num(pop, lang)} people" if pd.notna(pop) else "the area (no population data)")
        what = f"{tech or '3G/4G/5G'}"
        text += f"{cov} of {who} have {what} outdoors, {ind} indoors"
        if tech and row.get("operators"):
            text += f", from {int(row['operators'])} operator(s)"
    else:
        who = (f"{_num(pop, lang)} người" if pd.notna(pop) else "diện tích (không có số dân)")
        text += (f"{cov} trong {who} có sóng {tech or '3G/4G/5G'} ngoài trời, "
                 f"{ind} trong nhà")
        if tech and row.get("operators"):
            text += f", {int(row['operators'])} nhà mạng"
    km = row.get("nearest_site_km")
    if pd.notna(km) and (klass != "served" or km > 5):
        stech = row.get("nearest_site_tech") or ""
        ridge = row.get("behind_ridge")
        if lang == "en":
            text += f"; nearest {stech} site {_num(km, lang, 1)} km"
            text += ", behind a ridge" if ridge is True else ""
        else:
            text += f"; trạm {stech} gần nhất cách {_num(km, lang, 1)} km"
            text += ", bị núi che khuất" if ridge is True else ""
    n = row.get("n_cov_tests", 0) or 0
    k = row.get("k_cov_tests", 0) or 0
    if n >= 1:
        text += (f"; {k:.0f} of {n:.0f} tests had service" if lang == "en"
                 else f"; {k:.0f}/{n:.0f} lần đo có sóng")
    share = row.get("no_service_share")
    n_known = row.get("n_service_tests", 0) or 0
    if pd.notna(share) and n_known >= 1:
        text += (f"; residents without service {_pct(share)} over {n_known:.0f} test(s)"
                 if lang == "en"
                 else f"; cư dân mất sóng {_pct(share)} qua {n_known:.0f} lần đo")
    dl = row.get("median_download_mbps")
    if pd.notna(dl):
        ns = row.get("n_speed_tests", row.get("n_tests", 0))
        text += (f"; residents' median {_num(dl, lang, 1)} Mbps over {ns:.0f} test(s)"
                 if lang == "en"
                 else f"; tốc độ trung vị của cư dân {_num(dl, lang, 1)} Mbps qua {ns:.0f} lần đo")
    if n < 1 and not (pd.notna(dl)):
        text += "; no tests, model only" if lang == "en" else "; chưa có đo kiểm, theo mô phỏng"
        text += _model_rules(_reasons_of(row), row.get("slow_prior"),
                             row.get("no_service_prior"), lang)
    if row.get("label_stable") is False or row.get("label_stable") is np.False_:
        text += ("; near a threshold" if lang == "en" else "; sát ngưỡng")
    if row.get("corrected") is True or row.get("corrected") is np.True_:
        was = row.get("class_original")
        was_text = CLASS_TEXT[was][li].lower() if was in CLASS_TEXT else "?"
        what = ("field evidence" if row.get("correction_kind") == "evidence" else "class")
        if lang == "en":
            text += (f"; {what} corrected by {row.get('correction_source')} on "
                     f"{row.get('correction_date')} (rules alone: {was_text})")
        else:
            what = "số liệu đo thực địa" if what == "field evidence" else "phân loại"
            text += (f"; {what} được {row.get('correction_source')} hiệu chỉnh ngày "
                     f"{row.get('correction_date')} (theo quy tắc: {was_text})")
    return text + "."


def _reasons_of(row) -> list[str]:
    """The reason codes of a row."""
    return [r for r in str(row.get("reasons") or "").split(";") if r]


def _model_rules(reasons: list[str], slow, none, lang: str) -> str:
    """What the model's priors said where a test rule fired without any test."""
    parts = []
    if "slow_speed" in reasons and pd.notna(slow):
        parts.append(f"{_pct(slow)} of residents slow" if lang == "en"
                     else f"{_pct(slow)} cư dân tốc độ chậm")
    if "measured_no_service" in reasons and pd.notna(none):
        parts.append(f"{_pct(none)} without service" if lang == "en"
                     else f"{_pct(none)} mất sóng")
    return (": " + ", ".join(parts)) if parts else ""


def _is_true(x) -> bool:
    return x is True or x is np.True_


def explain_frame(rows: pd.DataFrame, lang: str = "en") -> list[str]:
    """:func:`explain` of every row of a table, column by column (the same sentences).

    Building a dict per row and testing each field costs ~60 µs a village; here each part
    of the sentence is made for the whole column at once and the parts are joined, about
    five times faster. Rows with a field correction take :func:`explain` itself (few).
    """
    n = len(rows)
    li = 0 if lang == "en" else 1
    en = lang == "en"

    def col(name: str, default=None) -> np.ndarray:
        if name not in rows.columns:
            return np.full(n, default, dtype=object)
        return rows[name].to_numpy(dtype=object)

    def num(name: str, default=np.nan) -> np.ndarray:
        if name not in rows.columns:
            return np.full(n, default, dtype=float)
        return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)

    heads: dict[tuple, str] = {}

    def head(klass: str, reasons) -> str:
        key = (klass, reasons)
        if key not in heads:
            names = [REASON_TEXT[r][li] for r in str(reasons or "").split(";") if r]
            heads[key] = (CLASS_TEXT[klass][li] + (f" ({', '.join(names)})" if names else "")
                          + ": ")
        return heads[key]

    klass = col("class")
    parts = [[head(k, r) for k, r in zip(klass, col("reasons"), strict=True)]]
    pop = num("population")
    tech = [t if isinstance(t, str) else None for t in col("best_tech")]
    cov = [_pct(x) for x in num("pop_covered_share")]
    ind = [_pct(x) for x in num("pop_indoor_share")]
    ops = col("operators")
    if en:
        who = [f"{_num(p, lang)} people" if p == p else "the area (no population data)"
               for p in pop]
        parts.append([f"{c} of {w} have {t or '3G/4G/5G'} outdoors, {i} indoors"
                      for c, w, t, i in zip(cov, who, tech, ind, strict=True)])
        parts.append([f", from {int(o)} operator(s)" if t and o else ""
                      for t, o in zip(tech, ops, strict=True)])
    else:
        who = [f"{_num(p, lang)} người" if p == p else "diện tích (không có số dân)"
               for p in pop]
        parts.append([f"{c} trong {w} có sóng {t or '3G/4G/5G'} ngoài trời, {i} trong nhà"
                      for c, w, t, i in zip(cov, who, tech, ind, strict=True)])
        parts.append([f", {int(o)} nhà mạng" if t and o else ""
                      for t, o in zip(tech, ops, strict=True)])
    km = num("nearest_site_km")
    site = [""] * n
    site_tech, ridges = col("nearest_site_tech"), col("behind_ridge")
    for i in np.flatnonzero(np.isfinite(km) & ((klass != "served") | (km > 5))):
        stech = site_tech[i] or ""
        ridge = _is_true(ridges[i])
        if en:
            site[i] = (f"; nearest {stech} site {_num(km[i], lang, 1)} km"
                       + (", behind a ridge" if ridge else ""))
        else:
            site[i] = (f"; trạm {stech} gần nhất cách {_num(km[i], lang, 1)} km"
                       + (", bị núi che khuất" if ridge else ""))
    parts.append(site)
    n_cov, k_cov = num("n_cov_tests", 0.0), num("k_cov_tests", 0.0)
    tests = [""] * n
    for i in np.flatnonzero(n_cov >= 1):
        tests[i] = (f"; {k_cov[i]:.0f} of {n_cov[i]:.0f} tests had service" if en
                    else f"; {k_cov[i]:.0f}/{n_cov[i]:.0f} lần đo có sóng")
    parts.append(tests)
    # the residents' no-service share the rule decided on, with the tests behind it
    none, n_known = num("no_service_share"), num("n_service_tests", 0.0)
    lacking = [""] * n
    for i in np.flatnonzero(np.isfinite(none) & (n_known >= 1)):
        lacking[i] = (f"; residents without service {_pct(none[i])} over {n_known[i]:.0f} "
                      "test(s)" if en
                      else f"; cư dân mất sóng {_pct(none[i])} qua {n_known[i]:.0f} lần đo")
    parts.append(lacking)
    dl = num("median_download_mbps")
    ns = num("n_speed_tests") if "n_speed_tests" in rows else num("n_tests", 0.0)
    speed = [""] * n
    for i in np.flatnonzero(np.isfinite(dl)):
        speed[i] = (f"; residents' median {_num(dl[i], lang, 1)} Mbps over {ns[i]:.0f} test(s)"
                    if en
                    else f"; tốc độ trung vị của cư dân {_num(dl[i], lang, 1)} Mbps qua "
                         f"{ns[i]:.0f} lần đo")
    parts.append(speed)
    model_only = "; no tests, model only" if en else "; chưa có đo kiểm, theo mô phỏng"
    untested = (n_cov < 1) & ~np.isfinite(dl)
    parts.append(np.where(untested, model_only, "").tolist())
    # a test rule that fired on the model's prior alone says what the prior was
    priors = [""] * n
    slow_p, none_p, reasons = num("slow_prior"), num("no_service_prior"), col("reasons")
    for i in np.flatnonzero(untested):
        priors[i] = _model_rules(_reasons_of({"reasons": reasons[i]}), slow_p[i], none_p[i],
                                 lang)
    parts.append(priors)
    near = "; near a threshold" if en else "; sát ngưỡng"
    parts.append([near if (s is False or s is np.False_) else "" for s in col("label_stable")])
    text = ["".join(p) + "." for p in zip(*parts, strict=True)]
    for i in np.flatnonzero([_is_true(c) for c in col("corrected")]):
        text[i] = explain(rows.iloc[[i]].to_dict("records")[0], lang)
    return text
