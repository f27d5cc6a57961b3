"""Village classification: population-weighted coverage, the rules profile, reasons, confidence.

Every village gets exactly one row, in input order, with its input columns and the contract's:
``class``, ``reasons``, ``population``, ``pop_covered_share``, ``pop_indoor_share``,
``best_tech``, ``operators``, ``n_tests``, ``median_download_mbps``, ``confidence``; plus
``label_stable``, ``evidence`` (``measured``, ``model+sparse_tests`` or ``model``),
``model_offset_db``, ``nearest_site_km``, ``behind_ridge``, ``pop_fibre_share`` (with fibre)
and the sentences ``explanation`` (English) and ``explanation_vi`` (Vietnamese).

The pipeline of one village:

1. Population weights from the raster by exact cell fractions (:mod:`.zonal`), or spread
   evenly over the village when only a ``population`` column exists (the column sets the
   total when both exist); with neither, shares are by area and ``population`` is empty.
2. Measurement evidence (:mod:`.evidence`): where a village has enough tests (count, devices,
   time spread), the fused surfaces (tests replace the model around them) decide its shares;
   otherwise the model does, shifted by the empirical-Bayes estimate of its error in dB,
   borrowed from the commune and province when the village has few or no tests.
3. The rules profile, stability under moved thresholds and confidence (:mod:`.rules`).
4. A sentence per village (:mod:`.explain`).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..engine import Engine
from ..io import Raster
from ..model import CoverageSurfaces, fuse_measurements
from ..params import BROADBAND_TECHS, Profile, get_profile
from .evidence import measurement_evidence
from .explain import explain, nearest_sites
from .rules import CLASSES, REASONS, apply_profile
from .zonal import count_population, zonal_shares
from .zonal import raster_source as _source  # noqa: F401 (plan.py uses it)

__all__ = [
    "CLASSES",
    "REASONS",
    "apply_profile",
    "classify_villages",
    "village_metrics",
]

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("class", "reasons", "population", "pop_covered_share", "pop_indoor_share",
                  "best_tech", "operators", "n_tests", "median_download_mbps", "confidence")
EXTRA_COLUMNS = ("label_stable", "evidence", "model_offset_db", "nearest_site_km",
                 "behind_ridge")
#: A technology or operator reaches a village when it covers more than this share of people.
REACH_SHARE = 0.01
#: Villages whose raster cells with data cover less than this share of their area are reported.
VALID_SHARE_WARN = 0.99


def _offsets(profile: Profile) -> np.ndarray:
    """Offsets (dB) at which the model's shares are computed (calibration and stability)."""
    step = profile.stability_db if profile.stability_db > 0 else 3.0
    k = int(np.ceil((profile.max_offset_db + profile.stability_db) / step - 1e-9))
    return np.arange(-k, k + 1) * step


def _interp_rows(table: np.ndarray, xs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of ``table[i, :]`` (sampled at ``xs``) at ``x[i]``."""
    if len(xs) == 1:
        return table[:, 0]
    x = np.clip(x, xs[0], xs[-1])
    j = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
    t = (x - xs[j]) / (xs[j + 1] - xs[j])
    rows = np.arange(len(x))
    return table[rows, j] * (1 - t) + table[rows, j + 1] * t


def _fibre_layer(fibre: gpd.GeoDataFrame, surfaces: CoverageSurfaces, reach_m: float
                 ) -> np.ndarray:
    """1 on grid cells whose centre lies within ``reach_m`` of a fibre route or node."""
    from rasterio.features import rasterize

    grid = surfaces.grid
    geoms = fibre.geometry.to_crs(grid.crs)
    area = geoms[geoms.notna() & ~geoms.is_empty].buffer(max(reach_m, 0.01)).union_all()
    if area.is_empty:
        return np.zeros(grid.shape, dtype="float32")
    return rasterize([(area, 1)], out_shape=grid.shape, transform=grid.transform, fill=0,
                     dtype="uint8").astype("float32")


def village_metrics(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    profile: Profile | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Per-village coverage and measurement metrics (no classes yet), in input order.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons (any CRS), with the optional ``population``, ``commune``,
        ``district``, ``province`` columns.
    surfaces : CoverageSurfaces
        The modelled levels (dBm) on the metric grid.
    measurements : GeoDataFrame, optional
        Observations from :func:`coverage.io.read_measurements`.
    population : Raster, optional
        People per cell, any CRS and resolution.
    profile : Profile, optional
        The rules profile (``vn-2025`` by default).
    fibre : GeoDataFrame, optional
        Fibre routes or nodes; adds ``pop_fibre_share``, the share of people within the
        profile's ``fibre_reach_m``.
    engine : Engine, optional
        Runs the zonal statistics in chunks of villages (:mod:`coverage.engine`); the
        figures do not change.

    Returns
    -------
    DataFrame
        Indexed like ``villages``: ``population``, ``pop_covered_share``,
        ``pop_indoor_share``, ``pop_2g_share``, their ``*_strict``/``*_loose`` variants
        (thresholds ``stability_db`` up/down), ``prior_share``, ``prior_indoor_share``,
        ``prior_tests``, ``pop_covered_share_model``, ``best_tech``, ``operators``,
        ``evidence`` and the measurement columns of
        :func:`coverage.classify.evidence.measurement_evidence`.
    """
    profile = profile or get_profile("vn-2025")
    has_tests = measurements is not None and not measurements.empty
    fused = (fuse_measurements(surfaces, measurements, radius_m=profile.measurement_radius_m)
             if has_tests else surfaces)
    ev = measurement_evidence(villages, measurements, surfaces, profile)
    outdoor = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    indoor = {t: profile.indoor_dbm(t) for t in BROADBAND_TECHS}
    offsets = _offsets(profile)
    d = profile.stability_db
    layers: dict[str, np.ndarray] = {}
    m_out, m_in = surfaces.margin(outdoor), surfaces.margin(indoor)
    sigma = (profile.location_sigma_db if profile.location_sigma_db is not None
             else ev.attrs.get("residual_sigma_db", 0.0))
    if sigma > 0:
        log.info("model location variability %.1f dB", sigma)

    def covered(margin: np.ndarray) -> np.ndarray:
        """Probability that a modelled cell is above the threshold."""
        return ndtr(margin / sigma) if sigma > 0 else margin >= 0

    for k, off in enumerate(offsets):
        layers[f"m_out{k}"] = covered(m_out + off)
        layers[f"m_in{k}"] = covered(m_in + off)
    if has_tests:
        # measured cells keep their measured level; the model around them moves with the
        # village's calibration offset like the model-only shares
        tested = _measured_cells(surfaces, fused)
        f_out, f_in = fused.margin(outdoor), fused.margin(indoor)
        for k, off in enumerate(offsets):
            layers[f"f_out{k}"] = np.where(tested, f_out >= 0, covered(m_out + off))
            layers[f"f_in{k}"] = np.where(tested, f_in >= 0, covered(m_in + off))
    layers["g2"] = fused.margin({"2G": profile.gsm_dbm}) >= 0
    for tech in BROADBAND_TECHS:
        layers[f"tech:{tech}"] = fused.margin({tech: outdoor[tech]}) >= 0
    for op in fused.operators:
        layers[f"op:{op}"] = fused.margin(outdoor, operator=op) >= 0
    if fibre is not None and not fibre.empty:
        layers["fibre"] = _fibre_layer(fibre, surfaces, profile.fibre_reach_m)
    layers = {k: np.asarray(v, dtype="float32") for k, v in layers.items()}

    shares = zonal_shares(villages, layers, surfaces.grid, population, engine=engine)
    out = pd.DataFrame(index=villages.index)
    column_pop = (pd.to_numeric(villages["population"], errors="coerce").to_numpy(dtype=float)
                  if "population" in villages.columns else np.full(len(villages), np.nan))
    raster_pop = np.full(len(villages), np.nan)
    if population is not None:
        count = count_population(villages, population)
        raster_pop = np.where(count.valid_share > 0, count.people, np.nan)
        _report_raster_gaps(villages, count.valid_share)
    no_weight = shares.isna().any(axis=1).to_numpy()
    if no_weight.any():
        if population is not None:
            log.warning("%d village(s) hold no people on the population raster (outside it, "
                        "nodata or zero): their shares are by area", int(no_weight.sum()))
        area = zonal_shares(villages[no_weight], layers, surfaces.grid, None,
                            engine=engine)
        shares.loc[np.flatnonzero(no_weight)] = area.to_numpy()
    shares = shares.fillna(0.0)  # a village off the model grid: nothing reaches it
    out["population"] = np.where(np.isnan(column_pop), raster_pop, column_pop)
    if population is None and np.isnan(column_pop).all():
        log.warning("no population raster or column: shares are by area, population empty")

    def table(prefix: str) -> np.ndarray:
        return np.column_stack([shares[f"{prefix}{k}"].to_numpy() for k in range(len(offsets))])

    offset = ev["model_offset_db"].to_numpy(dtype=float)
    t_out, t_in = table("m_out"), table("m_in")
    prior = {"": _interp_rows(t_out, offsets, offset),
             "_strict": _interp_rows(t_out, offsets, offset - d),
             "_loose": _interp_rows(t_out, offsets, offset + d)}
    prior_in = {"": _interp_rows(t_in, offsets, offset),
                "_strict": _interp_rows(t_in, offsets, offset - d),
                "_loose": _interp_rows(t_in, offsets, offset + d)}
    measured = ev["sufficient"].to_numpy(dtype=bool) & has_tests
    if has_tests:
        f_tab_out, f_tab_in = table("f_out"), table("f_in")
    for suffix, shift in (("", 0.0), ("_strict", -d), ("_loose", d)):
        cov, ind = prior[suffix], prior_in[suffix]
        if has_tests:
            cov = np.where(measured, _interp_rows(f_tab_out, offsets, offset + shift), cov)
            ind = np.where(measured, _interp_rows(f_tab_in, offsets, offset + shift), ind)
        cov = np.clip(cov, 0, 1)
        out[f"pop_covered_share{suffix}"] = cov
        out[f"pop_indoor_share{suffix}"] = np.minimum(np.clip(ind, 0, 1), cov)
    out["prior_share"] = np.clip(prior[""], 0, 1)
    out["prior_indoor_share"] = np.clip(prior_in[""], 0, 1)
    out["pop_covered_share_model"] = shares[f"m_out{int(np.flatnonzero(offsets == 0)[0])}"
                                            ].to_numpy()
    out["pop_2g_share"] = shares["g2"].clip(0, 1).to_numpy()
    best = np.full(len(out), None, dtype=object)
    for tech in BROADBAND_TECHS:  # oldest first, so the newest reaching tech wins
        best[shares[f"tech:{tech}"].to_numpy() > REACH_SHARE] = tech
    out["best_tech"] = best
    op_cols = [c for c in shares.columns if c.startswith("op:")]
    out["operators"] = ((shares[op_cols].to_numpy() > REACH_SHARE).sum(axis=1)
                        if op_cols else 0)
    if "fibre" in shares.columns:
        out["pop_fibre_share"] = shares["fibre"].clip(0, 1).to_numpy()
    out = out.join(ev)
    n_cov = out["n_cov_tests"].to_numpy()
    out["evidence"] = np.where(measured, "measured",
                               np.where(n_cov > 0, "model+sparse_tests", "model"))
    out["prior_tests"] = _prior_strength(out, profile)
    return out


def _measured_cells(model: CoverageSurfaces, fused: CoverageSurfaces) -> np.ndarray:
    """Cells where measurements replaced (or cleared) some layer of the model."""
    out = np.zeros(model.grid.shape, dtype=bool)
    for key, layer in fused.layers.items():
        base = model.layers.get(key)
        if base is None:
            out |= ~np.isnan(layer)
        else:
            out |= ~((layer == base) | (np.isnan(layer) & np.isnan(base)))
    return out


def _report_raster_gaps(villages: gpd.GeoDataFrame, valid_share: np.ndarray) -> None:
    outside = valid_share <= 0
    partial = (valid_share > 0) & (valid_share < VALID_SHARE_WARN)
    ids = villages["village_id"].astype(str).to_numpy() if "village_id" in villages else None
    for mask, what in ((outside, "lie wholly outside the population raster (or on nodata): "
                        "population unknown unless the population column gives it"),
                       (partial, "lie partly outside the population raster (or on nodata): "
                        "their count covers only the part with data")):
        if mask.any():
            sample = ", ".join(ids[mask][:5]) if ids is not None else ""
            log.warning("%d village(s) %s; e.g. %s", int(mask.sum()), what, sample)


def _prior_strength(metrics: pd.DataFrame, profile: Profile) -> float:
    r"""Strength of the model as a prior, in tests: beta-binomial method of moments.

    Over villages with tests, the spread of the measured service rate around the model's
    share beyond binomial noise gives the prior variance :math:`\tau^2`, and
    :math:`\kappa = \bar c (1-\bar c)/\tau^2 - 1`. Fewer than 10 tested villages: the
    profile's ``model_prior_tests``.
    """
    n = metrics["n_cov_tests"].to_numpy(dtype=float)
    tested = n >= 1
    if tested.sum() < 10:
        return profile.model_prior_tests
    n = np.minimum(n[tested], 50.0)
    p = metrics["k_cov_tests"].to_numpy(dtype=float)[tested] / metrics["n_cov_tests"].to_numpy(
        dtype=float)[tested]
    c = metrics["prior_share"].to_numpy(dtype=float)[tested]
    noise = np.mean(np.clip(c * (1 - c), 0.01, None) / n)
    tau2 = max(float(np.mean((p - c) ** 2)) - noise, 1e-4)
    cbar = float(np.clip(np.mean(c), 0.05, 0.95))
    kappa = cbar * (1 - cbar) / tau2 - 1
    return float(np.clip(kappa, profile.min_prior_tests, profile.max_prior_tests))


def classify_villages(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    access: pd.DataFrame | None = None,
    profile: Profile | str = "vn-2025",
    towers: gpd.GeoDataFrame | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    engine: Engine | None = None,
) -> gpd.GeoDataFrame:
    """Classify every village under a rules profile.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons as read by :func:`coverage.io.read_villages` (any CRS).
    surfaces : CoverageSurfaces
        Modelled levels, from :func:`coverage.model.predict_coverage`.
    measurements : GeoDataFrame, optional
        Observations from :func:`coverage.io.read_measurements`; with enough of them in a
        village they replace the model around them, and they feed the speed and service
        rules, the model's calibration and the confidence.
    population : Raster, optional
        People per cell.
    access : DataFrame, optional
        The access table indexed by ``village_id``.
    profile : Profile or str
        The rules profile or its name.
    towers : GeoDataFrame, optional
        The sites, to name the nearest broadband site in the explanation.
    fibre : GeoDataFrame, optional
        Fibre routes or nodes, for ``pop_fibre_share``.
    engine : Engine, optional
        Where the zonal statistics run (:mod:`coverage.engine`); in this process by default.

    Returns
    -------
    GeoDataFrame
        The input rows and columns, in order, with the contract's output columns and the
        extra ones listed in the module docstring.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np
    >>> from shapely.geometry import box
    >>> from rasterio.transform import from_origin
    >>> from coverage.model import CoverageSurfaces, Grid
    >>> grid = Grid(from_origin(0, 1000, 100, 100), (10, 10), "EPSG:32648")
    >>> level = np.full((10, 10), -90.0, dtype="float32")
    >>> v = gpd.GeoDataFrame({"village_id": ["1"]}, geometry=[box(0, 0, 1000, 1000)],
    ...                      crs=32648)
    >>> classify_villages(v, CoverageSurfaces(grid, {("A", "4G"): level}))["class"].iloc[0]
    'served'
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    metrics = village_metrics(villages, surfaces, measurements=measurements,
                              population=population, profile=profile, fibre=fibre,
                              engine=engine)
    ids = (villages["village_id"] if "village_id" in villages.columns
           else pd.Series(villages.index.astype(str)))
    verdict = apply_profile(metrics, profile, access=access, village_ids=ids)
    sites = nearest_sites(villages, towers, surfaces)
    out = villages.copy()
    for col in OUTPUT_COLUMNS:
        source = verdict if col in verdict.columns else metrics
        out[col] = source[col].to_numpy()
    out["population"] = np.round(out["population"].astype(float), 1)
    for col in ("pop_covered_share", "pop_indoor_share"):
        out[col] = np.round(out[col].astype(float), 4)
    out["label_stable"] = verdict["label_stable"].to_numpy()
    out["evidence"] = metrics["evidence"].to_numpy()
    out["model_offset_db"] = np.round(metrics["model_offset_db"].to_numpy(dtype=float), 2)
    out["nearest_site_km"] = np.round(sites["nearest_site_km"].to_numpy(dtype=float), 2)
    out["behind_ridge"] = sites["behind_ridge"].to_numpy()
    if "pop_fibre_share" in metrics.columns:
        out["pop_fibre_share"] = np.round(metrics["pop_fibre_share"].to_numpy(), 4)
    rows = pd.concat([out.drop(columns=out.geometry.name).reset_index(drop=True),
                      metrics[["n_cov_tests", "k_cov_tests", "n_speed_tests"]
                              ].reset_index(drop=True),
                      sites[["nearest_site_tech"]].reset_index(drop=True)], axis=1)
    out["explanation"] = [explain(r, "en") for _, r in rows.iterrows()]
    out["explanation_vi"] = [explain(r, "vi") for _, r in rows.iterrows()]
    counts = out["class"].value_counts().to_dict()
    log.info("classified %d villages under %s: %s; %.1f%% of labels stable", len(out),
             profile.name, counts, 100 * float(out["label_stable"].mean()) if len(out) else 0)
    return out
