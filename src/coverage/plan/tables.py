"""The plan's tables: ranked sites, the priority village list, and officials' XLSX files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from ..io import atomic, write_table
from ..params import Profile
from .costs import BREAKDOWN
from .solvers import CoverProblem

__all__ = ["HEADERS_VI", "plan_table", "priority_villages", "village_options",
           "write_plan_table"]

log = logging.getLogger(__name__)

#: Plain-language technology of each candidate kind, as the village list shows it.
TECHNOLOGY_LABEL = {"macro": "tower", "upgrade": "upgrade", "small_cell": "small_cell",
                    "satellite": "satellite"}

SITE_COLUMNS = ["rank", "site_id", "lon", "lat", "kind", "tech", "cost", "pop_gain",
                "cum_pop_gain", "cum_cost", "villages"]


def plan_table(order: list[int], phase: list[int], cands: gpd.GeoDataFrame,
               cost: pd.DataFrame, problem: CoverProblem, people: np.ndarray,
               classified: gpd.GeoDataFrame, profile: Profile,
               *, phase_labels: list[str] | None = None) -> gpd.GeoDataFrame:
    """Contract rows of the chosen sites in build order, with the cost breakdown.

    ``people`` holds the (unweighted) people of each pair that a site can newly connect.
    ``pop_gain`` counts them once, for the first site that reaches them; ``villages`` lists
    the ``unavailable`` villages whose covered share first reaches the profile's
    ``min_covered_share`` with this site.
    """
    remaining = np.asarray(people, dtype=float).copy()
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    share = pd.to_numeric(classified["pop_covered_share"], errors="coerce").fillna(0.0)
    covered_people = np.nan_to_num(pop) * share.to_numpy(dtype=float)
    lifted_already = np.zeros(len(classified), dtype=bool)
    unavailable = (classified["class"] == "unavailable").to_numpy()
    ids = classified["village_id"].astype(str).to_numpy()
    cover = problem.cover
    rows = []
    for rank, (i, t) in enumerate(zip(order, phase, strict=True), start=1):
        pairs = cover.indices[cover.indptr[i]:cover.indptr[i + 1]]
        gain_pairs = pairs[remaining[pairs] > 0]
        gain = float(remaining[gain_pairs].sum())
        covered_people += np.bincount(problem.pair_village[gain_pairs],
                                      weights=remaining[gain_pairs], minlength=len(classified))
        remaining[gain_pairs] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            now = np.where(pop > 0, covered_people / pop, 0.0)
        lifted = unavailable & ~lifted_already & (now >= profile.min_covered_share - 1e-9)
        lifted_already |= lifted
        c = cands.iloc[i]
        k = cost.iloc[i]
        rows.append({
            "rank": rank, "site_id": str(c.site_id),
            "lon": round(c.geometry.x, 6), "lat": round(c.geometry.y, 6),
            "kind": c.kind, "tech": c.tech, "cost": round(float(k["cost"])),
            "pop_gain": round(gain, 1), "villages": ";".join(ids[lifted]),
            "phase": t + 1,
            **({"year": phase_labels[t]} if phase_labels else {}),
            "technology": c.technology, "source": c.source,
            "province": c.get("province", None), "height_m": c.height_m,
            **{b: float(k[b]) for b in BREAKDOWN},
            "backhaul": k["backhaul"], "backhaul_km": k["backhaul_km"],
            "backhaul_hub": k["backhaul_hub"], "power": k["power"], "road_km": k["road_km"],
            "cost_per_person": round(float(k["cost"]) / gain) if gain > 0 else np.nan,
            "n_villages": int(lifted.sum()),
            "geometry": c.geometry,
        })
    # the same columns whether or not a site is planned
    extra = ["phase", *(["year"] if phase_labels else []), "technology", "source", "province",
             "height_m", *BREAKDOWN, "backhaul", "backhaul_km", "backhaul_hub", "power",
             "road_km", "cost_per_person", "n_villages"]
    if not rows:
        return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in SITE_COLUMNS + extra},
                                geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    table = gpd.GeoDataFrame(rows, crs=4326)
    table["cum_pop_gain"] = table["pop_gain"].cumsum().round(1)
    table["cum_cost"] = table["cost"].cumsum()
    rest = [c for c in table.columns if c not in SITE_COLUMNS + extra and c != "geometry"]
    return table[SITE_COLUMNS + extra + rest + ["geometry"]]


def village_options(problem: CoverProblem, people: np.ndarray, cands: gpd.GeoDataFrame,
                    classified: gpd.GeoDataFrame, profile: Profile
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest way to lift each village on its own: (technology, cost per person).

    For each ``unavailable`` village, among the candidates that alone would raise its
    covered share to the threshold (a satellite-terminal candidate always does), the one
    with the lowest cost per person it connects in all. Empty for other villages and for
    villages no candidate lifts.
    """
    n_v = len(classified)
    n_p = len(people)
    to_village = sparse.csr_matrix((np.asarray(people, dtype=float),
                                    (np.arange(n_p), problem.pair_village)), shape=(n_p, n_v))
    gain_cv = (problem.cover @ to_village).tocoo()  # people of village v that c connects
    total = problem.cover @ np.asarray(people, dtype=float)
    pop = pd.to_numeric(classified["population"], errors="coerce").to_numpy(dtype=float)
    share = pd.to_numeric(classified["pop_covered_share"], errors="coerce").fillna(0.0)
    have = np.nan_to_num(pop) * share.to_numpy(dtype=float)
    unavailable = (classified["class"] == "unavailable").to_numpy()
    c, v, g = gain_cv.row, gain_cv.col, gain_cv.data
    with np.errstate(invalid="ignore", divide="ignore"):
        lifts = unavailable[v] & (pop[v] > 0) & ((have[v] + g) / pop[v]
                                                 >= profile.min_covered_share - 1e-9)
        cpp = np.asarray(problem.cost, dtype=float)[c] / np.maximum(total[c], 1e-9)
    tech = np.full(n_v, None, dtype=object)
    best = np.full(n_v, np.nan)
    kinds = cands["technology"].to_numpy()
    for ci, vi, k in zip(c[lifts], v[lifts], cpp[lifts], strict=True):
        if not k >= best[vi]:  # NaN-safe: replaces NaN too
            best[vi] = k
            tech[vi] = TECHNOLOGY_LABEL.get(kinds[ci], kinds[ci])
    return tech, np.round(best, 0)


def priority_villages(classified: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *,
                      options: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """The contract's priority list: every village exactly once.

    Order: villages the plan lifts, by the rank of the site that lifts them; then the other
    ``unavailable`` villages, cheapest to connect first (then most populous); then
    ``available_inaccessible``, then ``served`` (most populous first). For lifted villages
    ``cost_per_person`` is the lifting site's cost over the people it connects and
    ``technology`` its kind (``tower``, ``upgrade``, ``small_cell``, ``satellite``); for the
    others, the same for the cheapest option that would lift the village alone (from
    ``options``, see :func:`village_options`), with ``site_rank`` empty.
    """
    site_rank: dict[str, int] = {}
    site_cpp: dict[str, float] = {}
    site_tech: dict[str, str] = {}
    site_phase: dict[str, int] = {}
    site_id: dict[str, str] = {}
    for r in sites.itertuples():
        for vid in filter(None, str(r.villages).split(";")):
            site_rank.setdefault(vid, int(r.rank))
            site_cpp.setdefault(vid, float(r.cost) / r.pop_gain if r.pop_gain > 0 else np.nan)
            tech = getattr(r, "technology", "macro")
            site_tech.setdefault(vid, TECHNOLOGY_LABEL.get(tech, tech))
            site_phase.setdefault(vid, int(getattr(r, "phase", 1)))
            site_id.setdefault(vid, str(r.site_id))
    ids = classified["village_id"].astype(str)
    opt_tech, opt_cpp = options if options is not None else (
        np.full(len(ids), None, dtype=object), np.full(len(ids), np.nan))
    rank = ids.map(site_rank)
    planned = rank.notna().to_numpy()
    cpp = np.where(planned, ids.map(site_cpp).to_numpy(dtype=float), opt_cpp)
    tech = np.where(planned, ids.map(site_tech).to_numpy(dtype=object), opt_tech)
    out = pd.DataFrame({
        "village_id": ids.to_numpy(),
        "name": classified.get("name", ids).to_numpy(),
        "class": classified["class"].to_numpy(),
        "population": classified["population"].to_numpy(),
        "site_rank": rank.astype("Int64").to_numpy(),
        "cost_per_person": np.round(cpp, 0),
        "technology": tech,
        "phase": ids.map(site_phase).astype("Int64").to_numpy(),
        "site_id": ids.map(site_id).to_numpy(dtype=object),
    })
    for col in ("commune", "district", "province"):
        if col in classified.columns:
            out[col] = classified[col].to_numpy()
    class_order = out["class"].map({"unavailable": 0, "available_inaccessible": 1,
                                    "served": 2}).fillna(3)
    out = out.assign(
        _r=out["site_rank"].astype("Float64").fillna(np.inf).to_numpy(dtype=float),
        _c=class_order.to_numpy(),
        _k=np.where(class_order == 0, out["cost_per_person"].fillna(np.inf), 0.0),
        _p=-pd.to_numeric(out["population"], errors="coerce").fillna(0).to_numpy())
    out = out.sort_values(["_r", "_c", "_k", "_p", "village_id"], kind="stable").drop(
        columns=["_r", "_c", "_k", "_p"])
    out.insert(0, "priority", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)


#: Vietnamese headers for officials' spreadsheets (``--lang vi``).
HEADERS_VI = {
    "rank": "Thứ tự xây dựng", "site_id": "Mã trạm", "lon": "Kinh độ", "lat": "Vĩ độ",
    "kind": "Loại", "tech": "Công nghệ", "cost": "Tổng chi phí", "pop_gain": "Số dân được phủ",
    "cum_pop_gain": "Số dân lũy kế", "cum_cost": "Chi phí lũy kế",
    "villages": "Thôn/bản được phủ sóng", "phase": "Giai đoạn", "year": "Năm",
    "technology": "Giải pháp", "source": "Nguồn đề xuất", "province": "Tỉnh",
    "height_m": "Chiều cao cột (m)", "cost_site": "Chi phí trạm/thiết bị",
    "cost_backhaul": "Chi phí truyền dẫn", "cost_power": "Chi phí điện",
    "cost_road": "Chi phí đường vào", "cost_opex": "Chi phí vận hành (hiện giá)",
    "backhaul": "Truyền dẫn", "backhaul_km": "Cự ly truyền dẫn (km)",
    "backhaul_hub": "Trạm chuyển tiếp viba", "power": "Nguồn điện",
    "road_km": "Đường vào (km)", "cost_per_person": "Chi phí/người",
    "n_villages": "Số thôn/bản", "priority": "Ưu tiên", "village_id": "Mã thôn/bản",
    "name": "Tên", "class": "Phân loại", "population": "Dân số", "site_rank": "Trạm phục vụ",
    "commune": "Xã", "district": "Huyện",
}


def _fill_sheet(ws, df: pd.DataFrame, *, title: str, lang: str) -> None:
    """Fill an openpyxl sheet with ``df`` for officials (see :func:`write_plan_table`).

    A bold, frozen header (Vietnamese with ``lang="vi"``) with an autofilter, the rows
    (missing values as empty cells, numpy scalars as numbers), thousands separators on
    counts and money, and column widths to fit the first 200 rows (8 to 60 characters).
    """
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws.title = title[:31]
    headers = [HEADERS_VI.get(c, c) if lang == "vi" else c for c in df.columns]
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for values in df.itertuples(index=False):
        ws.append([None if (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)))
                   else (v.item() if isinstance(v, np.generic) else v) for v in values])
    for j, col in enumerate(df.columns, start=1):
        letter = get_column_letter(j)
        numeric = pd.api.types.is_numeric_dtype(df[col])
        if numeric and col not in ("lon", "lat", "rank", "priority", "site_rank", "phase"):
            fmt = "#,##0" if col.startswith("cost") or col == "cum_cost" else "#,##0.0"
            for cell in ws[letter][1:]:
                cell.number_format = fmt
        width = max([len(str(headers[j - 1]))]
                    + [len(str(v)) for v in df[col].head(200).tolist()])
        ws.column_dimensions[letter].width = min(max(8, width + 2), 60)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions


def write_plan_table(table: pd.DataFrame, path: str | os.PathLike[str], *,
                     overwrite: bool = False, lang: str = "en") -> Path:
    """Write a plan table by extension; XLSX is formatted for officials.

    XLSX files get a frozen, bold header row (Vietnamese with ``lang="vi"``), an autofilter,
    column widths to fit, numbers stored as numbers with thousands separators, and
    ``lon``/``lat`` instead of geometry. Other formats go through
    :func:`coverage.io.write_table`. Writes are atomic.
    """
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        return write_table(table, path, overwrite=overwrite)
    from openpyxl import Workbook

    with atomic(path, overwrite=overwrite) as tmp:
        df = pd.DataFrame(table)
        if isinstance(table, gpd.GeoDataFrame):
            geom = table.geometry.name
            if "lon" not in df.columns:
                pts = table.geometry.representative_point().to_crs(4326)
                df["lon"], df["lat"] = pts.x.round(6).to_numpy(), pts.y.round(6).to_numpy()
            df = df.drop(columns=[geom])
        wb = Workbook()
        _fill_sheet(wb.active, df, title=path.stem, lang=lang)
        wb.save(tmp)
    log.info("wrote %s (%d rows)", path, len(df))
    return path
