"""Towers: OpenCelliD cell exports grouped into sites, and site tables, as transmitters."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import CRSError, InputError, SchemaError
from ._common import (
    KNOWN_OPERATORS_TEXT,
    MCC_BOUNDS,
    OPENCELLID_COLUMNS,
    VN_OPERATORS,
    PathLike,
    apply_columns,
    as_numbers,
    as_text_id,
    check_path,
    coordinate_mapping,
    log,
    missing_columns_error,
    normalize_tech,
    open_bytes,
    rows_text,
    warn_repair,
)
from .vector import read_csv_table, read_vector, sniff_format

__all__ = ["read_towers"]

#: OpenCelliD ``range`` (the spread of a cell's sightings, metres) beyond which the position is
#: an average of unrelated places: the GSM timing-advance limit, larger than any macro cell.
MAX_PLAUSIBLE_RANGE_M = 35_000.0
#: Cells of one eNodeB farther than this from the eNodeB's median position are misplaced.
MAX_ENB_SPREAD_M = 10_000.0
EXTRA_COLUMNS = ("cells", "samples", "range_m", "flags")


def read_towers(
    paths: PathLike | Sequence[PathLike],
    *,
    columns: Mapping[str, str] | None = None,
    assume_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Read towers: OpenCelliD CSVs (with or without header) and site tables, concatenated.

    Parameters
    ----------
    paths : path-like or sequence of them
        OpenCelliD exports (told by their columns, or by 14 fields starting with a radio
        name when there is no header) and site tables (CSV with ``lon``/``lat`` or any point
        layer).
    columns : mapping, optional
        ``{contract name: source column}`` for site tables (``--col towers.site_id=...``).
    assume_crs : str, optional
        CRS of site tables that state none.

    Returns
    -------
    GeoDataFrame
        One row per transmitter (a sector, or an omni antenna) with the columns
        ``site_id, operator, tech, height_m, azimuth_deg, beamwidth_deg, eirp_dbm,
        freq_mhz, status, backhaul, source`` plus ``cells``, ``samples``, ``range_m``
        (OpenCelliD) and ``flags`` (``;``-separated: ``range_implausible``), point geometry
        in EPSG:4326. Empty link-budget cells are NaN; the model fills them from
        :class:`coverage.params.TechDefaults`.

    Notes
    -----
    OpenCelliD cells are grouped into sites as the contract says: LTE cells of one eNodeB
    (``cell // 256``) at their samples-weighted centroid; other cells of one operator within
    50 m of each other (single linkage). Cells whose position is implausible (at 0,0;
    outside the country of their MCC; more than 10 km from the rest of their eNodeB) are
    left out and reported; sites built from cells whose ``range`` exceeds 35 km keep the
    flag ``range_implausible``.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        p = check_path(p, "towers")
        is_ocid, header = _is_opencellid(p)
        frames.append(_read_opencellid(p, header=header) if is_ocid
                      else _read_site_table(p, columns=columns, assume_crs=assume_crs))
    towers = pd.concat(frames, ignore_index=True)
    dup = towers.duplicated(subset=["site_id", "tech", "azimuth_deg"], keep="first")
    if dup.any():
        warn_repair(f"towers: {int(dup.sum())} duplicate transmitter row(s) dropped (same "
                    f"site_id, tech and azimuth), e.g. {list(towers.site_id[dup][:5])}")
        towers = towers[~dup].reset_index(drop=True)
    return gpd.GeoDataFrame(towers, geometry="geometry", crs=4326)


def _is_opencellid(path: Path) -> tuple[bool, bool]:
    """(is OpenCelliD, has header) from the first line of a text file."""
    if sniff_format(path) != "CSV":
        return False, False
    try:
        with open_bytes(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError):  # a damaged .csv.gz: the table reader says so
        return False, False
    if b"\x00" in head or head[:15] == b"SQLite format 3":
        return False, False
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0].strip() if head else ""
    fields = [f.strip().strip('"') for f in first.split(",")]
    if [f.lower() for f in fields[:3]] == ["radio", "mcc", "net"]:
        return True, True
    if len(fields) == 14 and fields[0].upper() in ("GSM", "UMTS", "LTE", "NR", "CDMA"):
        return True, False
    return False, False


def _read_site_table(path: Path, *, columns: Mapping[str, str] | None,
                     assume_crs: str | None) -> gpd.GeoDataFrame:
    gdf = read_vector(path, what="towers", assume_crs=assume_crs,
                      xy=coordinate_mapping(columns)).to_crs(4326)
    gdf = apply_columns(gdf, {k: v for k, v in (columns or {}).items()
                              if k not in ("lon", "lat")}, what="towers", path=path)
    missing = [c for c in ("site_id", "tech") if c not in gdf.columns]
    if missing:
        raise missing_columns_error(
            gdf, missing, what="towers", path=path,
            hint="A site table needs site_id and tech (map other names with --col "
                 "towers.site_id=COLUMN); an OpenCelliD export needs its 14 columns")
    gdf = _drop_null_island(gdf, path, "towers")
    out = pd.DataFrame({"site_id": as_text_id(gdf["site_id"])})
    no_id = out["site_id"].isna().to_numpy()
    if no_id.any():
        raise SchemaError(f"towers file {path}: empty site_id in "
                          f"{rows_text(np.flatnonzero(no_id))} (0-based); every site needs "
                          "an id")
    out["operator"] = (site_operators(gdf["operator"], path) if "operator" in gdf.columns
                       else "unknown")
    tech = normalize_tech(gdf["tech"])
    bad = [i for i, t in enumerate(tech) if t is None]
    if bad:
        raise SchemaError(
            f"towers file {path}: unknown tech in {rows_text(bad)} (0-based; values "
            f"{sorted(set(map(str, gdf['tech'].iloc[bad])))[:5]}); use 2G, 3G, 4G, 5G or "
            "GSM, UMTS, LTE, NR"
        )
    out["tech"] = tech
    defaults = {"height_m": "the default 30 m", "azimuth_deg": "an omni antenna",
                "beamwidth_deg": "the default 65 degrees", "eirp_dbm": "the technology's "
                "default", "freq_mhz": "the technology's default"}
    for col, default in defaults.items():
        out[col] = (as_numbers(gdf[col], what="towers", path=path, column=col,
                               ids=out["site_id"], id_name="site_id", empty_means=default
                               ).to_numpy() if col in gdf.columns else np.nan)
    implausible = ((out["height_m"] <= 0) | (out["height_m"] > 500)
                   | (out["beamwidth_deg"] <= 0) | (out["beamwidth_deg"] > 360)
                   | (out["freq_mhz"] <= 0) | (out["freq_mhz"] > 100_000))
    if implausible.any():
        raise SchemaError(
            f"towers file {path}: impossible height_m (0..500), beamwidth_deg (0..360) or "
            f"freq_mhz in {rows_text(np.flatnonzero(implausible.to_numpy()))} (0-based, "
            f"site_id {list(out.site_id[implausible][:5])}); fix or empty those cells")
    out["azimuth_deg"] = out["azimuth_deg"] % 360.0
    out["height_m"] = out["height_m"].fillna(30.0)
    out["beamwidth_deg"] = out["beamwidth_deg"].fillna(65.0)
    status = (gdf["status"].astype(object).fillna("active").map(lambda s: str(s).strip().lower())
              if "status" in gdf.columns else "active")
    out["status"] = status
    bad_status = ~out["status"].isin(["active", "planned"])
    if bad_status.any():
        raise SchemaError(f"towers file {path}: status must be active or planned; found "
                          f"{sorted(set(out.loc[bad_status, 'status']))}")
    out["backhaul"] = (gdf["backhaul"].astype(object).where(gdf["backhaul"].notna(), None)
                       .to_numpy() if "backhaul" in gdf.columns else None)
    out["source"] = "site_table"
    out["cells"], out["samples"], out["range_m"], out["flags"] = np.nan, np.nan, np.nan, ""
    geom = gdf.geometry
    if not (geom.geom_type == "Point").all():  # site polygons or lines: a point inside
        geom = geom.representative_point()
    return gpd.GeoDataFrame(out, geometry=geom.to_numpy(), crs=4326)


def _drop_null_island(gdf: gpd.GeoDataFrame, path: Path, what: str) -> gpd.GeoDataFrame:
    pts = gdf.geometry.representative_point()
    zero = ((pts.x == 0) & (pts.y == 0)).to_numpy()
    if zero.any():
        warn_repair(f"{what} file {path}: {int(zero.sum())} row(s) at 0,0 (a missing "
                    f"position written as zeros) left out ({rows_text(np.flatnonzero(zero))}, "
                    "0-based)")
        gdf = gdf[~zero].reset_index(drop=True)
        if gdf.empty:
            raise InputError(f"{what} file {path}: every row is at 0,0; no usable position")
    return gdf


def _read_opencellid(path: Path, *, header: bool) -> gpd.GeoDataFrame:
    df = read_csv_table(path, what="OpenCelliD", header=header,
                        names=None if header else list(OPENCELLID_COLUMNS))
    if len(df.columns) != 14:
        raise SchemaError(f"OpenCelliD file {path} has {len(df.columns)} columns, expected 14: "
                          f"{','.join(OPENCELLID_COLUMNS)}")
    df.columns = list(OPENCELLID_COLUMNS)
    for col in ("mcc", "net", "area", "cell", "lon", "lat", "range", "samples"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    beyond = (df.lat.abs() > 90).to_numpy()
    if beyond.any():
        swapped = bool(((df.lat.abs() <= 180) & (df.lon.abs() <= 90))[beyond].all())
        raise CRSError(
            f"OpenCelliD file {path}: {int(beyond.sum())} row(s) with latitude beyond 90 "
            f"degrees ({rows_text(np.flatnonzero(beyond), first_line=1 + header)}); "
            "OpenCelliD positions are WGS84 lon,lat"
            + ("; lon and lat look swapped" if swapped else ""))
    bad = (df[["mcc", "net", "cell", "lon", "lat"]].isna().any(axis=1)
           | (df.lon.abs() > 180)).to_numpy()
    if bad.any():
        warn_repair(f"OpenCelliD file {path}: {int(bad.sum())} row(s) without numeric ids or "
                    "coordinates dropped "
                    f"({rows_text(np.flatnonzero(bad), first_line=1 + header)})")
    df["line"] = np.arange(len(df)) + 1 + header
    df = df[~bad]
    tech = normalize_tech(df["radio"])
    unknown = np.array([t is None for t in tech], dtype=bool)
    if unknown.any():
        warn_repair(f"OpenCelliD file {path}: {int(unknown.sum())} cell(s) of unknown radio "
                    f"{sorted(set(df.radio[unknown].astype(str)))[:5]} left out")
    df = df.assign(tech=tech)[~unknown].copy()
    df["samples"] = df["samples"].fillna(1).clip(lower=1)
    df["operator"] = [VN_OPERATORS.get(int(n), f"{int(m)}-{int(n)}") if int(m) == 452
                      else f"{int(m)}-{int(n)}" for m, n in zip(df.mcc, df.net, strict=True)]
    _report_unknown_codes(df, path)
    df = _drop_implausible_positions(df, path)
    df["group"] = ""
    lte = (df["tech"] == "4G").to_numpy()
    df.loc[lte, "group"] = [f"{int(m)}-{int(n)}-enb{int(c) // 256}"
                            for m, n, c in zip(df.mcc[lte], df.net[lte], df.cell[lte], strict=True)]
    df = _drop_enb_outliers(df, path)
    lte = (df["tech"] == "4G").to_numpy()
    if (~lte).any():
        df.loc[~lte, "group"] = _cluster_within(df[~lte], radius_m=50.0)
    far = (df["range"] > MAX_PLAUSIBLE_RANGE_M) | (df["range"] < 0)
    df["flag"] = np.where(far, "range_implausible", "")
    if far.any():
        warn_repair(
            f"OpenCelliD file {path}: {int(far.sum())} cell(s) with range beyond "
            f"{MAX_PLAUSIBLE_RANGE_M / 1000:g} km or negative ("
            f"{rows_text(df.line[far], first_line=0)}): their positions average sightings "
            "from far apart, so their sites carry the flag range_implausible")
    g = df.assign(wx=df.lon * df.samples, wy=df.lat * df.samples).groupby(
        ["group", "tech"], sort=True)
    sites = g.agg(operator=("operator", "first"), wx=("wx", "sum"), wy=("wy", "sum"),
                  samples=("samples", "sum"), range_m=("range", "median"),
                  cells=("cell", "size"), flags=("flag", "max")).reset_index()
    sites["lon"] = sites.wx / sites.samples
    sites["lat"] = sites.wy / sites.samples
    out = pd.DataFrame({
        "site_id": sites["group"], "operator": sites["operator"], "tech": sites["tech"],
        "height_m": 30.0, "azimuth_deg": np.nan, "beamwidth_deg": 65.0, "eirp_dbm": np.nan,
        "freq_mhz": np.nan, "status": "active", "backhaul": None, "source": "opencellid",
        "cells": sites["cells"].astype(float), "samples": sites["samples"].astype(float),
        "range_m": sites["range_m"].astype(float), "flags": sites["flags"],
    })
    log.info("OpenCelliD %s: %d cells grouped into %d transmitters", path, len(df), len(out))
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(sites.lon, sites.lat), crs=4326)


def _report_unknown_codes(cells: pd.DataFrame, path: Path) -> None:
    """Say which cells carry an operator code (MCC-MNC) of no known operator; they are kept."""
    known = (cells.mcc == 452) & cells.net.isin(list(VN_OPERATORS))
    if known.all():
        return
    codes = cells.loc[~known, "operator"].value_counts()
    listed = ", ".join(f"{code} ({n} cell{'s' if n > 1 else ''})"
                       for code, n in codes.head(10).items())
    warn_repair(
        f"OpenCelliD file {path}: {int((~known).sum())} cell(s) of operator codes (MCC-MNC) "
        f"of no known operator: {listed}{' ...' if len(codes) > 10 else ''}; kept, with the "
        f"code as their operator. Known: {KNOWN_OPERATORS_TEXT}. Another country's MCC is a "
        "cell across the border or a misread one; check the MNC if your operator is missing")


def site_operators(values: pd.Series, path: Path, *, what: str = "towers") -> pd.Series:
    """A site table's operators: names kept, codes (``4``, ``04``, ``452-04``) named.

    The contract lets a site table give the operator as its name or its MNC; OpenCelliD
    cells of MCC 452 are named (``Viettel``), so a code is named too, and the two sources
    agree. A code of no known operator is kept as ``452-NN`` and reported.
    """
    text = values.astype(object).where(values.notna(), "unknown").map(lambda v: str(v).strip())
    names, unknown = {}, []
    for value in text.unique():
        digits = value.replace(" ", "").replace("-", "")
        if not digits.isdigit() or len(digits) > 6:
            names[value] = value
            continue
        mcc, mnc = (int(digits[:3]), int(digits[3:])) if len(digits) >= 5 else (452, int(digits))
        names[value] = VN_OPERATORS.get(mnc, "") if mcc == 452 else ""
        if not names[value]:
            names[value] = f"{mcc}-{mnc}"  # as OpenCelliD cells of that code are named
            unknown.append(value)
    out = text.map(names)
    if unknown:
        warn_repair(f"{what} file {path}: operator code(s) {', '.join(sorted(unknown))} name "
                    f"no known operator; kept as {', '.join(sorted(names[u] for u in unknown))}."
                    f" Known: {KNOWN_OPERATORS_TEXT}")
    named = sorted({f"{k} as {v}" for k, v in names.items() if v != k and v in
                    VN_OPERATORS.values()})
    if named:
        log.info("%s file %s: operator codes read as names: %s", what, path, ", ".join(named))
    return out


def _drop_implausible_positions(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Leave out cells at 0,0 or outside the country of their MCC (padded by 0.5 degree)."""
    bad = ((df.lon == 0) & (df.lat == 0)).to_numpy().copy()
    for mcc, (w, s, e, n) in MCC_BOUNDS.items():
        of = (df.mcc == mcc).to_numpy()
        outside = ((df.lon < w - 0.5) | (df.lon > e + 0.5) | (df.lat < s - 0.5)
                   | (df.lat > n + 0.5)).to_numpy()
        bad |= of & outside
    if bad.any():
        warn_repair(
            f"OpenCelliD file {path}: {int(bad.sum())} cell(s) with an implausible position "
            f"(at 0,0, or outside the country of their MCC) left out "
            f"({rows_text(df.line[bad], first_line=0)})")
    return df[~bad]


def _drop_enb_outliers(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Leave out LTE cells far from the median position of the rest of their eNodeB."""
    lte = df[df["tech"] == "4G"]
    if lte.empty:
        return df
    med = lte.groupby("group")[["lon", "lat"]].transform("median")
    dx = (lte.lon - med.lon) * 111_320.0 * np.cos(np.radians(lte.lat))
    dy = (lte.lat - med.lat) * 110_540.0
    far = np.hypot(dx, dy) > MAX_ENB_SPREAD_M
    if far.any():
        warn_repair(
            f"OpenCelliD file {path}: {int(far.sum())} LTE cell(s) lie more than "
            f"{MAX_ENB_SPREAD_M / 1000:g} km from the other cells of their eNodeB and are left "
            f"out as misplaced ({rows_text(lte.line[far], first_line=0)})")
        df = df.drop(index=lte.index[far.to_numpy()])
    return df


def _cluster_within(cells: pd.DataFrame, *, radius_m: float) -> list[str]:
    """Single-linkage clusters of one operator's cells within ``radius_m`` of each other."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pts = gpd.GeoSeries(gpd.points_from_xy(cells.lon, cells.lat), crs=4326)
    xy = np.column_stack(pts.to_crs(pts.estimate_utm_crs()).pipe(lambda s: (s.x, s.y)))
    op = cells["mcc"].astype(int).astype(str) + "-" + cells["net"].astype(int).astype(str)
    labels = np.empty(len(cells), dtype=object)
    for key in op.unique():
        idx = np.flatnonzero((op == key).to_numpy())
        pairs = cKDTree(xy[idx]).query_pairs(radius_m, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(idx), len(idx)))
        _, comp = connected_components(graph, directed=False)
        labels[idx] = [f"{key}-s{c}" for c in comp]
    return list(labels)



