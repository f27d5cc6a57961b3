"""Village classification: population-weighted coverage, the rules profile, reasons, confidence.

Every village gets exactly one row, in input order, with its input columns and the contract's:
``class``, ``reasons``, ``population``, ``pop_covered_share``, ``pop_indoor_share``,
``best_tech``, ``operators``, ``n_tests``, ``median_download_mbps``, ``confidence``, plus an
``explanation`` sentence. Population weights come from the population raster by exact cell
fractions (exactextract), or are spread evenly over the village when only a ``population``
column exists (the column sets the total when both exist); with neither, shares are by area.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.warp import Resampling, reproject

from .io import Raster
from .model import CoverageSurfaces, Grid, fuse_measurements
from .params import BROADBAND_TECHS, Profile, get_profile

__all__ = [
    "CLASSES",
    "REASONS",
    "apply_profile",
    "classify_villages",
    "village_metrics",
]

log = logging.getLogger(__name__)

CLASSES = ("unavailable", "available_inaccessible", "served")
REASONS = ("no_signal", "2g_only", "partial_coverage", "weak_signal", "slow_speed",
           "measured_no_service", "no_power", "no_devices", "unaffordable")
OUTPUT_COLUMNS = ("class", "reasons", "population", "pop_covered_share", "pop_indoor_share",
                  "best_tech", "operators", "n_tests", "median_download_mbps", "confidence")


def _indicators(surfaces: CoverageSurfaces, profile: Profile) -> dict[str, np.ndarray]:
    """0/1 grids: outdoor and indoor broadband, 2G, each broadband tech, each operator."""
    outdoor = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    indoor = {t: profile.indoor_dbm(t) for t in BROADBAND_TECHS}
    layers = {
        "outdoor": surfaces.margin(outdoor) >= 0,
        "indoor": surfaces.margin(indoor) >= 0,
        "g2": surfaces.margin({"2G": profile.gsm_dbm}) >= 0,
    }
    for tech in BROADBAND_TECHS:
        layers[f"tech:{tech}"] = surfaces.margin({tech: outdoor[tech]}) >= 0
    for op in surfaces.operators:
        layers[f"op:{op}"] = surfaces.margin(outdoor, operator=op) >= 0
    return {k: v.astype("float32") for k, v in layers.items()}


def _source(array: np.ndarray, transform, name: str, crs) -> NumPyRasterSource:
    rows, cols = array.shape
    left, top = transform.c, transform.f
    right = left + cols * transform.a
    bottom = top + rows * transform.e
    return NumPyRasterSource(array, xmin=min(left, right), ymin=min(bottom, top),
                             xmax=max(left, right), ymax=max(bottom, top), name=name,
                             srs_wkt=crs.to_wkt())


def _zonal_shares(villages: gpd.GeoDataFrame, indicators: dict[str, np.ndarray], grid: Grid,
                  population: Raster | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Weighted share of each indicator per village, and the raster population (or NaN)."""
    if population is not None:
        # Work on the population raster's own grid: indicators follow it (nearest cell),
        # so every person is counted once, with exact fractions of cells on village edges.
        pop = population.array.astype("float64")
        pop = np.where(np.isfinite(pop) & (pop > 0), pop, 0.0)
        target, transform, crs = pop, population.transform, population.crs
        rasters = []
        for name, arr in indicators.items():
            out = np.zeros(pop.shape, dtype="float32")
            reproject(arr, out, src_transform=grid.transform, src_crs=grid.crs,
                      dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest,
                      src_nodata=None, dst_nodata=0)
            rasters.append(_source(out, transform, name, crs))
        weights = _source(target, transform, "population", crs)
    else:
        crs, transform = grid.crs, grid.transform
        rasters = [_source(arr, transform, name, crs) for name, arr in indicators.items()]
        weights = _source(np.ones(grid.shape, dtype="float32"), transform, "area", crs)
    vil = villages[[villages.geometry.name]].to_crs(crs).reset_index(drop=True)
    table = exact_extract(rasters, vil, ["weighted_mean"], weights=weights, output="pandas")
    table.columns = list(indicators)  # exactextract names them after the weights too
    pop_sum = (exact_extract(weights, vil, ["sum"], output="pandas")["sum"].to_numpy()
               if population is not None else np.full(len(vil), np.nan))
    return table.fillna(0.0), pop_sum


def village_metrics(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    profile: Profile | None = None,
) -> pd.DataFrame:
    """Per-village coverage and measurement metrics (no classes yet), in input order.

    Returns a DataFrame indexed like ``villages`` with ``population``, ``pop_covered_share``,
    ``pop_indoor_share``, ``pop_2g_share``, ``best_tech``, ``operators``, ``n_tests``,
    ``median_download_mbps``, ``median_upload_mbps``, ``no_service_share`` and
    ``n_service_tests``.
    """
    profile = profile or get_profile("vn-2025")
    fused = fuse_measurements(surfaces, measurements, radius_m=profile.measurement_radius_m)
    indicators = _indicators(fused, profile)
    shares, pop_raster = _zonal_shares(villages, indicators, surfaces.grid, population)
    out = pd.DataFrame(index=villages.index)
    column_pop = (pd.to_numeric(villages["population"], errors="coerce").to_numpy(dtype=float)
                  if "population" in villages.columns else np.full(len(villages), np.nan))
    if population is not None:
        # The column sets the total where it exists; the raster spreads people inside.
        out["population"] = np.where(np.isnan(column_pop), pop_raster, column_pop)
        empty = (pop_raster <= 0) & ~np.isnan(column_pop)
        if empty.any():
            log.warning("%d village(s) hold no raster population; their shares are by area",
                        int(empty.sum()))
            area_shares, _ = _zonal_shares(villages[empty], indicators, surfaces.grid, None)
            shares.loc[np.flatnonzero(empty)] = area_shares.to_numpy()
    else:
        out["population"] = column_pop
        if np.isnan(column_pop).all():
            log.warning("no population raster or column: shares are by area, population empty")
    out["pop_covered_share"] = shares["outdoor"].clip(0, 1).to_numpy()
    out["pop_indoor_share"] = np.minimum(shares["indoor"].clip(0, 1).to_numpy(),
                                         out["pop_covered_share"].to_numpy())
    out["pop_2g_share"] = shares["g2"].clip(0, 1).to_numpy()
    best = np.full(len(out), None, dtype=object)
    for tech in BROADBAND_TECHS:  # oldest first, so the newest reaching tech wins
        best[shares[f"tech:{tech}"].to_numpy() > 0.01] = tech
    out["best_tech"] = best
    op_cols = [c for c in shares.columns if c.startswith("op:")]
    out["operators"] = (shares[op_cols].to_numpy() > 0.01).sum(axis=1) if op_cols else 0
    out = out.join(_measurement_metrics(villages, measurements))
    return out


def _measurement_metrics(villages: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame | None
                         ) -> pd.DataFrame:
    cols = ["n_tests", "n_service_tests", "no_service_share", "median_download_mbps",
            "median_upload_mbps"]
    out = pd.DataFrame(index=villages.index, columns=cols, dtype=float)
    out["n_tests"] = 0
    out["n_service_tests"] = 0
    if measurements is None or measurements.empty:
        return out
    m = measurements.to_crs(villages.crs)
    joined = gpd.sjoin(m, villages[[villages.geometry.name]], how="inner", predicate="within")
    if joined.empty:
        return out
    joined["is_none"] = (joined["tech"] == "none").astype(float)
    joined["known"] = joined["tech"].notna().astype(float)
    for idx, g in joined.groupby("index_right"):
        w = g["weight"].to_numpy(dtype=float)
        out.loc[idx, "n_tests"] = w.sum()
        known = g["known"].to_numpy() > 0
        out.loc[idx, "n_service_tests"] = w[known].sum()
        if known.any():
            out.loc[idx, "no_service_share"] = (g["is_none"].to_numpy()[known] * w[known]).sum(
            ) / w[known].sum()
        for col, name in (("download_mbps", "median_download_mbps"),
                          ("upload_mbps", "median_upload_mbps")):
            v = g[col].to_numpy(dtype=float)
            ok = ~np.isnan(v)
            if ok.any():
                out.loc[idx, name] = _weighted_median(v[ok], w[ok])
    out["n_tests"] = out["n_tests"].astype(int)
    out["n_service_tests"] = out["n_service_tests"].astype(int)
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    half = 0.5 * cum[-1]
    i = int(np.searchsorted(cum, half))
    if np.isclose(cum[i], half) and i + 1 < len(v):  # even split: the usual mid-point median
        return float((v[i] + v[i + 1]) / 2)
    return float(v[i])


def apply_profile(metrics: pd.DataFrame, profile: Profile, *,
                  access: pd.DataFrame | None = None,
                  village_ids: pd.Series | None = None) -> pd.DataFrame:
    """Class, reasons and confidence of each village from its metrics, under ``profile``.

    Returns a DataFrame with ``class``, ``reasons`` (``;``-separated) and ``confidence``.
    """
    n = len(metrics)
    covered = metrics["pop_covered_share"].to_numpy(dtype=float)
    indoor = metrics["pop_indoor_share"].to_numpy(dtype=float)
    g2 = metrics["pop_2g_share"].to_numpy(dtype=float)
    n_tests = metrics["n_service_tests"].to_numpy(dtype=float)
    dl = metrics["median_download_mbps"].to_numpy(dtype=float)
    ul = metrics["median_upload_mbps"].to_numpy(dtype=float)
    no_service = metrics["no_service_share"].to_numpy(dtype=float)
    n_speed = metrics["n_tests"].to_numpy(dtype=float)

    flags: dict[str, np.ndarray] = {}
    unavailable = covered < profile.min_covered_share
    flags["no_signal"] = unavailable & (covered <= 0)
    flags["2g_only"] = unavailable & (g2 >= profile.min_2g_share)
    flags["partial_coverage"] = unavailable & ~flags["no_signal"] & ~flags["2g_only"]
    avail = ~unavailable
    false = np.zeros(n, dtype=bool)
    flags["weak_signal"] = avail & (indoor < profile.min_indoor_share) if (
        profile.min_indoor_share is not None) else false
    slow = false.copy()
    if profile.min_download_mbps is not None:
        slow |= (n_speed >= profile.min_speed_tests) & (dl < profile.min_download_mbps)
    if profile.min_upload_mbps is not None:
        slow |= (n_speed >= profile.min_speed_tests) & (ul < profile.min_upload_mbps)
    flags["slow_speed"] = avail & slow
    flags["measured_no_service"] = avail & (n_tests >= profile.min_no_service_tests) & (
        no_service >= profile.max_no_service_share) if profile.max_no_service_share is not None \
        else false
    for name in ("no_power", "no_devices", "unaffordable"):
        flags[name] = false
    if access is not None and village_ids is not None:
        acc = access.reindex(village_ids.astype(str).to_numpy())
        elec = acc["electricity_share"].to_numpy(dtype=float)
        phone = acc["smartphone_share"].to_numpy(dtype=float)
        price_share = (acc["data_price_1gb"] / acc["monthly_income"]).to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            if profile.min_electricity_share is not None:
                flags["no_power"] = avail & (elec < profile.min_electricity_share)
            if profile.min_smartphone_share is not None:
                flags["no_devices"] = avail & (phone < profile.min_smartphone_share)
            if profile.max_price_income_share is not None:
                flags["unaffordable"] = avail & (price_share > profile.max_price_income_share)
    inaccessible = avail & np.any([flags[r] for r in REASONS[3:]], axis=0)
    klass = np.where(unavailable, "unavailable",
                     np.where(inaccessible, "available_inaccessible", "served"))
    reasons = [";".join(r for r in REASONS if flags[r][i]) for i in range(n)]
    out = pd.DataFrame({"class": klass, "reasons": reasons}, index=metrics.index)
    out["confidence"] = _confidence(metrics, profile, unavailable)
    return out


def _confidence(metrics: pd.DataFrame, profile: Profile, unavailable: np.ndarray
                ) -> np.ndarray:
    """0..1: distance of the deciding share from its threshold, and test evidence.

    The model's part grows with the margin between ``pop_covered_share`` and the threshold
    (full at 0.3 away); tests add evidence in proportion to their number (full at 20) and
    to how far they agree with the modelled class (share of tests with service).
    """
    covered = metrics["pop_covered_share"].to_numpy(dtype=float)
    margin = np.abs(covered - profile.min_covered_share)
    model_part = 0.5 + 0.5 * np.clip(margin / 0.3, 0, 1)
    n = metrics["n_service_tests"].to_numpy(dtype=float)
    no_service = np.nan_to_num(metrics["no_service_share"].to_numpy(dtype=float), nan=0.5)
    agree = np.where(unavailable, no_service, 1.0 - no_service)
    weight = np.clip(n / 20.0, 0, 1) * 0.5
    conf = (1 - weight) * model_part + weight * agree
    return np.round(np.clip(conf, 0.05, 0.99), 3)


def _explain(row: pd.Series) -> str:
    pop = row["population"]
    people = f"{round(pop):,} people" if pd.notna(pop) else "the area"
    text = (f"{row['pop_covered_share']:.0%} of {people} have mobile broadband outdoors "
            f"({row['pop_indoor_share']:.0%} indoors)")
    if isinstance(row["best_tech"], str):
        text += f"; best {row['best_tech']} from {int(row['operators'])} operator(s)"
    else:
        text += "; no 3G/4G/5G signal"
    n = int(row["n_tests"])
    if n:
        text += f"; {n} test(s)"
        if pd.notna(row["median_download_mbps"]):
            text += f", median {row['median_download_mbps']:.1f} Mbps"
        if pd.notna(row["no_service_share"]):
            text += f", {row['no_service_share']:.0%} without service"
    else:
        text += "; no tests"
    return text + "."


def classify_villages(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    access: pd.DataFrame | None = None,
    profile: Profile | str = "vn-2025",
) -> gpd.GeoDataFrame:
    """Classify every village under a rules profile.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons as read by :func:`coverage.io.read_villages` (any CRS).
    surfaces : CoverageSurfaces
        Modelled levels, from :func:`coverage.model.predict_coverage`.
    measurements : GeoDataFrame, optional
        Observations from :func:`coverage.io.read_measurements`; they replace the model
        around them and feed the speed and service rules.
    population : Raster, optional
        People per cell.
    access : DataFrame, optional
        The access table indexed by ``village_id``.
    profile : Profile or str
        The rules profile or its name.

    Returns
    -------
    GeoDataFrame
        The input rows and columns, in order, with the contract's output columns and an
        ``explanation``.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    metrics = village_metrics(villages, surfaces, measurements=measurements,
                              population=population, profile=profile)
    verdict = apply_profile(metrics, profile, access=access,
                            village_ids=villages["village_id"])
    out = villages.copy()
    for col in OUTPUT_COLUMNS:
        source = verdict if col in verdict.columns else metrics
        out[col] = source[col].to_numpy()
    out["explanation"] = metrics.apply(_explain, axis=1).to_numpy()
    out["population"] = np.round(out["population"].astype(float), 1)
    for col in ("pop_covered_share", "pop_indoor_share"):
        out[col] = np.round(out[col].astype(float), 4)
    counts = out["class"].value_counts().to_dict()
    log.info("classified %d villages under %s: %s", len(out), profile.name, counts)
    return out
