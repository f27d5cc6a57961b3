"""Village classification: population-weighted coverage, the rules profile, reasons, confidence.

Every village gets exactly one row, in input order, with its input columns and the contract's:
``class``, ``reasons``, ``population``, ``pop_covered_share``, ``pop_indoor_share``,
``best_tech``, ``operators``, ``n_tests``, ``median_download_mbps``, ``confidence``; plus
``label_stable``, ``evidence`` (``measured``, ``model+sparse_tests`` or ``model``),
``model_offset_db``, ``nearest_site_km``, ``behind_ridge``, ``pop_fibre_share`` (with fibre),
``pop_claimed_share`` (with operators' coverage maps, :mod:`.claims`) and the sentences
``explanation`` (English) and ``explanation_vi`` (Vietnamese).

The pipeline of one village, a module a stage (imports go down the list):

1. Population weights from the raster by exact cell fractions (:mod:`.zonal`), or spread
   evenly over the village when only a ``population`` column exists (the column sets the
   total when both exist); with neither, shares are by area and ``population`` is empty.
2. Measurement evidence (:mod:`.evidence`): where a village has enough tests (count, devices,
   time spread), the fused surfaces (tests replace the model around them) decide its shares;
   otherwise the model does, shifted by the empirical-Bayes estimate of its error in dB,
   borrowed from the commune and province when the village has few or no tests (its parts:
   :mod:`.locate`, :mod:`.survey`, :mod:`.shrinkage`, :mod:`.offsets`). The
   residents' slow and no-service shares (:mod:`.residents`, :mod:`.noservice`) update the
   model's prior (:mod:`.prior`) by the tests.
3. The per-village metrics (:mod:`.metrics`, :func:`village_metrics`): population, covered
   and indoor shares summed over the village's pieces (:mod:`.shares`), what reaches it.
4. The rules profile, stability under moved thresholds and confidence (:mod:`.rules`);
   field-check corrections (:mod:`.corrections`).
5. A sentence per village (:mod:`.explain`), with the operators' claims where they
   disagree with the class (:mod:`.claims`: claims are compared, never deciding).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from ..engine import Engine
from ..io import CoverageMaps, Raster
from ..model import CoverageSurfaces
from ..params import Profile, get_profile
from .claims import claim_clauses, claimed_layers, claims_agreement
from .corrections import CORRECTION_COLUMNS, apply_corrections, read_corrections
from .explain import explain_frame, nearest_sites
from .metrics import AUTO_FAST_VILLAGES, Placement, fuse_for, place_villages, village_metrics
from .naive import NAIVE_RADIUS_KM, classify_naive, naive_surfaces
from .noservice import site_shares
from .rules import CLASSES, REASONS, apply_profile

__all__ = [
    "CLASSES",
    "NAIVE_RADIUS_KM",
    "REASONS",
    "Placement",
    "apply_corrections",
    "apply_profile",
    "classify_naive",
    "classify_villages",
    "fuse_for",
    "naive_surfaces",
    "place_for_classification",
    "read_corrections",
    "village_metrics",
]

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("class", "reasons", "population", "pop_covered_share", "pop_indoor_share",
                  "best_tech", "operators", "n_tests", "median_download_mbps", "confidence")
EXTRA_COLUMNS = ("label_stable", "evidence", "model_offset_db", "nearest_site_km",
                 "behind_ridge")


def _on_grid(villages: gpd.GeoDataFrame, grid_crs, zonal: str | Placement
             ) -> gpd.GeoDataFrame:
    """The villages as the classification reads them: in the grid's CRS for the fast method.

    The fast zonal method, the tests' location and the nearest sites all work on the
    polygons in the grid's CRS: transformed once, not three times (the exact method
    transforms to the population raster's CRS itself, from the input's coordinates).
    """
    if isinstance(zonal, Placement):
        zonal = zonal.method
    fast = zonal == "fast" or (zonal == "auto" and len(villages) >= AUTO_FAST_VILLAGES)
    return villages.to_crs(grid_crs) if fast and villages.crs is not None else villages


def place_for_classification(villages: gpd.GeoDataFrame, surfaces: CoverageSurfaces, *,
                             measurements: gpd.GeoDataFrame | None = None,
                             population: Raster | None = None, zonal: str = "auto",
                             engine: Engine | None = None) -> Placement:
    """The villages and tests placed on the model's grid, as :func:`classify_villages` will.

    Hand it to :func:`classify_villages` as ``zonal``, with the same other arguments. Its
    ``cells`` are where the classification reads the model: a national run keeps the
    model's server distances there only (:func:`coverage.model.calibration.hold_distances`) and
    frees the whole grids'.
    """
    return place_villages(_on_grid(villages, surfaces.grid.crs, zonal), surfaces.grid,
                          measurements=measurements, population=population, zonal=zonal,
                          engine=engine)


def classify_villages(  # noqa: PLR0913 (one keyword per input, as load_inputs)
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    access: pd.DataFrame | None = None,
    profile: Profile | str = "vn-2025",
    towers: gpd.GeoDataFrame | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    coverage: CoverageMaps | None = None,
    corrections: pd.DataFrame | None = None,
    zonal: str | Placement = "auto",
    engine: Engine | None = None,
    fused: CoverageSurfaces | None = None,
) -> gpd.GeoDataFrame:
    """Classify every village under a rules profile.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons as read by :func:`coverage.io.read_villages` (any CRS).
    surfaces : CoverageSurfaces
        Modelled levels, from :func:`coverage.model.predict_coverage`.
    measurements : GeoDataFrame or DataFrame, optional
        Observations from :func:`coverage.io.read_measurements` (or a table with
        ``lon``/``lat`` columns, see :func:`village_metrics`); with enough of them in a
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
    coverage : CoverageMaps, optional
        Operators' coverage maps (:func:`coverage.io.read_coverage_maps`), their claims:
        they add ``pop_claimed_share`` and a clause to the explanation where the claim and
        an ``unavailable`` class disagree, and with tests ``attrs["coverage_claims"]``
        (:func:`coverage.classify.claims.claims_agreement`); they never set a class.
    corrections : DataFrame, optional
        Field-check corrections from :func:`read_corrections`: evidence replaces the
        village's metrics before the rules, a class overrides them (confidence 1). Adds the
        provenance columns ``corrected``, ``correction_kind``, ``correction_source``,
        ``correction_date``, ``correction_note``, ``class_original``, ``reasons_original``
        and ``confidence_original``.
    zonal : {"auto", "exact", "fast"} or Placement
        How villages meet the grids (see :func:`village_metrics`), or where
        :func:`place_for_classification` placed them (with the same other arguments).
    engine : Engine, optional
        Where the zonal statistics run (:mod:`coverage.engine`); in this process by default.
    fused : CoverageSurfaces, optional
        ``surfaces`` already fused with these ``measurements`` by :func:`fuse_for`, when
        the caller has them: they are not fused again. A run that classifies and plans
        hands the same fused surfaces to :func:`coverage.plan.plan_rollout`
        (``existing=fused``, no ``measurements``).

    Returns
    -------
    GeoDataFrame
        The input rows and columns, in order, with the contract's output columns and the
        extra ones listed in the module docstring; with tests, ``attrs["choices"]`` holds
        what they chose (``slow_curve``: :meth:`coverage.classify.residents.SlowCurve.
        as_dict`; ``slow_bandwidth``: :meth:`coverage.classify.survey.Bandwidth.as_dict`).

    Raises
    ------
    InputError
        A correction names a village that is not among ``villages``.

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
    local = _on_grid(villages, surfaces.grid.crs, zonal)
    # without tests, the operators' subscribers in proportion to their broadband cells
    tested = measurements is not None and not measurements.empty
    claims = (claimed_layers(coverage, surfaces.grid, profile) if coverage is not None
              else None)
    metrics = village_metrics(local, surfaces, measurements=measurements,
                              population=population, profile=profile, fibre=fibre,
                              zonal=zonal, engine=engine, fused=fused, claims=claims,
                              market_shares=None if tested else site_shares(
                                  towers, surfaces.operators))
    # what the tests chose (the slow curve and bandwidth), for a run's manifest
    choices = dict(metrics.attrs.get("choices", {}))
    ids = (villages["village_id"] if "village_id" in villages.columns
           else pd.Series(villages.index.astype(str)))
    verdict = apply_profile(metrics, profile, access=access, village_ids=ids)
    provenance = None
    if corrections is not None:
        metrics, verdict, provenance = apply_corrections(metrics, verdict, corrections, profile,
                                                         village_ids=ids, access=access)
    sites = nearest_sites(local, towers, surfaces)
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
    if "pop_claimed_share" in metrics.columns:
        out["pop_claimed_share"] = np.round(metrics["pop_claimed_share"].to_numpy(), 4)
    if provenance is not None:
        for col in CORRECTION_COLUMNS:
            out[col] = provenance[col].to_numpy()
    said = ["n_cov_tests", "k_cov_tests", "n_speed_tests", "n_service_tests",
            "no_service_share", *(c for c in ("slow_prior", "no_service_prior")
                                  if c in metrics.columns)]
    rows = pd.concat([out.drop(columns=out.geometry.name).reset_index(drop=True),
                      metrics[said].reset_index(drop=True),
                      sites[["nearest_site_tech"]].reset_index(drop=True)], axis=1)
    out["explanation"] = explain_frame(rows, "en")
    out["explanation_vi"] = explain_frame(rows, "vi")
    if claims is not None:
        _add_claims(out, claims, measurements if tested else None, surfaces.grid, profile)
    if choices:
        out.attrs["choices"] = choices
    counts = out["class"].value_counts().to_dict()
    log.info("classified %d villages under %s: %s; %.1f%% of labels stable", len(out),
             profile.name, counts, 100 * float(out["label_stable"].mean()) if len(out) else 0)
    return out


def _add_claims(out: gpd.GeoDataFrame, claims: dict, measurements: pd.DataFrame | None,
                grid, profile: Profile) -> None:
    """The claims' clause in both explanations and, with tests, their agreement (attrs)."""
    en, vi = claim_clauses(out["class"], out["pop_claimed_share"])
    for col, clause in (("explanation", en), ("explanation_vi", vi)):
        said = clause.to_numpy() != ""
        text = out[col].astype(str)
        out.loc[said, col] = text[said].str.rstrip(".") + clause[said] + "."
    if measurements is not None:
        out.attrs["coverage_claims"] = claims_agreement(measurements, claims, grid, profile)
