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

import collections
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..engine import Engine
from ..errors import ParameterError
from ..io import Raster
from ..model import CoverageSurfaces, fuse_measurements, measurement_xy
from ..params import BROADBAND_TECHS, Profile, get_profile
from .corrections import CORRECTION_COLUMNS, apply_corrections, read_corrections
from .evidence import measurement_evidence
from .explain import explain_frame, nearest_sites
from .naive import NAIVE_RADIUS_KM, classify_naive, naive_surfaces
from .noservice import (
    fit_prior_strength,
    market_shares,
    no_service_by_operator,
    survey_regression_share,
)
from .residents import posterior_above, slow_prior
from .rules import CLASSES, REASONS, apply_profile
from .zonal import PopulationCount, ZonalWeights, count_population, zonal_weights
from .zonal import raster_source as _source  # noqa: F401 (plan.py uses it)

__all__ = [
    "CLASSES",
    "NAIVE_RADIUS_KM",
    "REASONS",
    "apply_corrections",
    "apply_profile",
    "classify_naive",
    "classify_villages",
    "fuse_for",
    "naive_surfaces",
    "read_corrections",
    "village_metrics",
]

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("class", "reasons", "population", "pop_covered_share", "pop_indoor_share",
                  "best_tech", "operators", "n_tests", "median_download_mbps", "confidence")
EXTRA_COLUMNS = ("label_stable", "evidence", "model_offset_db", "nearest_site_km",
                 "behind_ridge")
#: Measured villages take their indoor share from their tests (own level over the indoor
#: threshold, or another operator's there) rather than from the fused surfaces.
INDOOR_FROM_TESTS = True
#: A technology or operator reaches a village when it covers more than this share of people.
REACH_SHARE = 0.01
#: Villages whose raster cells with data cover less than this share of their area are reported.
VALID_SHARE_WARN = 0.99
#: ``zonal="auto"`` rasterises village ids (the ``fast`` method) from this many villages up.
AUTO_FAST_VILLAGES = 20_000
#: Pieces (village x cell) per chunk of the covered-share sums, and threads taking chunks.
PIECE_CHUNK = 1 << 20
PIECE_THREADS = min(2, os.cpu_count() or 1)


def _zonal_method(zonal: str, n: int) -> str:
    if zonal not in ("auto", "exact", "fast"):
        raise ParameterError(f"zonal={zonal!r}: use 'auto', 'exact' or 'fast'")
    method = zonal if zonal != "auto" else ("fast" if n >= AUTO_FAST_VILLAGES else "exact")
    log.info("zonal statistics: %s method for %d villages", method, n)
    return method


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


def fuse_for(surfaces: CoverageSurfaces, measurements: pd.DataFrame | None,
             profile: Profile | None = None, *,
             xy: tuple[np.ndarray, np.ndarray] | None = None) -> CoverageSurfaces:
    """The surfaces fused with the tests as the classification under ``profile`` needs them.

    :func:`coverage.model.fuse_measurements` with the profile's measurement radius, keeping
    the estimate's margins over the profile's outdoor (``out``) and indoor (``in``)
    thresholds before the measured cells take over. Pass the result as ``fused=`` to
    :func:`classify_villages` and as ``existing=`` to :func:`coverage.plan.plan_rollout`
    to fuse the tests once for both.
    """
    profile = profile or get_profile("vn-2025")
    margins = {"out": {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS},
               "in": {t: profile.indoor_dbm(t) for t in BROADBAND_TECHS}}
    return fuse_measurements(surfaces, measurements, radius_m=profile.measurement_radius_m,
                             xy=xy, estimate_margins=margins)


def village_metrics(
    villages: gpd.GeoDataFrame,
    surfaces: CoverageSurfaces,
    *,
    measurements: gpd.GeoDataFrame | None = None,
    population: Raster | None = None,
    profile: Profile | None = None,
    fibre: gpd.GeoDataFrame | None = None,
    zonal: str = "auto",
    engine: Engine | None = None,
    fused: CoverageSurfaces | None = None,
) -> pd.DataFrame:
    """Per-village coverage and measurement metrics (no classes yet), in input order.

    Parameters
    ----------
    villages : GeoDataFrame
        Village polygons (any CRS), with the optional ``population``, ``commune``,
        ``district``, ``province`` columns.
    surfaces : CoverageSurfaces
        The modelled levels (dBm) on the metric grid.
    measurements : GeoDataFrame or DataFrame, optional
        Observations from :func:`coverage.io.read_measurements`, or the same columns with
        ``lon``/``lat`` (EPSG:4326) instead of points (:func:`coverage.model.measurement_xy`:
        10 million tests without shapely points save about 1 GB).
    population : Raster, optional
        People per cell, any CRS and resolution.
    profile : Profile, optional
        The rules profile (``vn-2025`` by default).
    fibre : GeoDataFrame, optional
        Fibre routes or nodes; adds ``pop_fibre_share``, the share of people within the
        profile's ``fibre_reach_m``.
    zonal : {"auto", "exact", "fast"}
        How villages meet the grid (:func:`coverage.classify.zonal.zonal_weights`): exact
        cell fractions, or village ids rasterised on the model grid; ``auto`` takes
        ``fast`` from :data:`AUTO_FAST_VILLAGES` villages up. Tests are located alike.
    engine : Engine, optional
        Runs the exact zonal statistics in chunks of villages (:mod:`coverage.engine`);
        the figures do not change.
    fused : CoverageSurfaces, optional
        ``surfaces`` already fused with these ``measurements`` by :func:`fuse_for`, when
        the caller has them: they are not fused again. A run that classifies and plans
        hands the same fused surfaces to :func:`coverage.plan.plan_rollout`
        (``existing=fused``, no ``measurements``).

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
    method = _zonal_method(zonal, len(villages))
    has_tests = measurements is not None and not measurements.empty
    xy = measurement_xy(measurements, surfaces.grid.crs) if has_tests else None
    outdoor = {t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS}
    indoor = {t: profile.indoor_dbm(t) for t in BROADBAND_TECHS}
    d = profile.stability_db
    # one after the other: fusion beside the weights in a thread saved a few seconds of a
    # national run and cost a gigabyte more at its peak (a fused copy of every layer and
    # the tests' tables at once)
    if fused is None:
        fused = (fuse_for(surfaces, measurements, profile, xy=xy) if has_tests else surfaces)
    # The model's estimate: calibrated and kriged, before the measured cells take over
    # (they decide the tested cells of villages with enough tests, below).
    estimate = {kind: fused.estimated_margin[kind] if kind in fused.estimated_margin
                else fused.margin(thresholds)
                for kind, thresholds in (("out", outdoor), ("in", indoor))}
    if has_tests and not fused.estimated_margin:
        log.info("fused surfaces without the classification's estimate "
                 "(coverage.classify.fuse_for): measured cells count in every village")
    weights = zonal_weights(villages, surfaces.grid, population, method=method,
                            engine=engine)
    # the model's error at the tests beyond the layer-wide calibration the fusion applied
    ev = measurement_evidence(villages, measurements, surfaces, profile, method=method,
                              ids=weights.ids, xy=xy, calibration=fused.calibration,
                              people=weights if population is not None else None)
    sigma = (profile.location_sigma_db if profile.location_sigma_db is not None
             else ev.attrs.get("residual_sigma_db", 0.0))
    if sigma > 0:
        log.info("model location variability %.1f dB", sigma)

    if has_tests:
        _resident_rules(ev, surfaces, fused, weights, measurements, profile,
                        sigma if sigma > 0 else 6.0)

    def covered(margin: np.ndarray) -> np.ndarray:
        """Probability that a modelled cell is above the threshold."""
        return ndtr(margin / sigma) if sigma > 0 else (margin >= 0).astype("float32")

    no_weight = weights.total() <= 0
    if no_weight.any():
        if population is not None:
            log.warning("%d village(s) hold no people on the population raster (outside it, "
                        "nodata or zero): their shares are by area", int(no_weight.sum()))
        area = zonal_weights(villages[no_weight], surfaces.grid, None, method=method,
                             engine=engine)
        weights = weights.replace_villages(no_weight, area)
    out = pd.DataFrame(index=villages.index)
    column_pop = (pd.to_numeric(villages["population"], errors="coerce").to_numpy(dtype=float)
                  if "population" in villages.columns else np.full(len(villages), np.nan))
    raster_pop = np.full(len(villages), np.nan)
    if population is not None:
        count = (PopulationCount(weights.people, weights.valid_share)
                 if weights.people is not None else count_population(villages, population))
        raster_pop = np.where(count.valid_share > 0, count.people, np.nan)
        _report_raster_gaps(villages, count.valid_share)
    out["population"] = np.where(np.isnan(column_pop), raster_pop, column_pop)
    if population is None and np.isnan(column_pop).all():
        log.warning("no population raster or column: shares are by area, population empty")

    def share(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return np.nan_to_num(weights.mean(values, mask=mask), nan=0.0)  # off-grid: nothing

    offset = ev["model_offset_db"].to_numpy(dtype=float)
    shifts = {"": 0.0, "_strict": -d, "_loose": d}
    measured = ev["sufficient"].to_numpy(dtype=bool) & has_tests
    fused_margin = ({"out": fused.margin(outdoor), "in": fused.margin(indoor)}
                    if measured.any() else None)
    sums = _piece_sums(
        weights, margins=estimate, fused=fused_margin,
        tested=(_measured_cells(surfaces, fused, fused_margin)
                if fused_margin is not None else None),
        offset=offset, shifts=shifts, measured=measured, covered=covered,
        model_share=bool(np.any(offset)))
    total = weights.total()

    def ratio(num: np.ndarray, tot: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(np.where(tot > 0, num / tot, np.nan), nan=0.0)

    prior: dict[str, np.ndarray] = {}
    prior_in: dict[str, np.ndarray] = {}
    for suffix in shifts:
        shares_ = []
        for kind, store in (("out", prior), ("in", prior_in)):
            store[suffix] = ratio(sums[f"model:{kind}{suffix}"], total)
            if measured.any():
                decided = ratio(sums[f"decided:{kind}{suffix}"], sums["decided_weight"])
                shares_.append(np.where(measured, decided, store[suffix]))
            else:
                shares_.append(store[suffix])
        cov = np.clip(shares_[0], 0, 1)
        out[f"pop_covered_share{suffix}"] = cov
        out[f"pop_indoor_share{suffix}"] = np.minimum(np.clip(shares_[1], 0, 1), cov)
    if INDOOR_FROM_TESTS and measured.any():
        # where the village has enough tests, its residents' tests say where the building
        # margin holds (coverage.classify.evidence: own level, or another operator's)
        n_in = ev["n_indoor_tests"].to_numpy(dtype=float)
        use = measured & (n_in >= profile.min_override_tests)
        for suffix in shifts:
            tests_in = ev[f"indoor_share_tests{suffix}"].to_numpy(dtype=float)
            cov = out[f"pop_covered_share{suffix}"].to_numpy()
            out[f"pop_indoor_share{suffix}"] = np.where(
                use & np.isfinite(tests_in), np.minimum(np.clip(tests_in, 0, 1), cov),
                out[f"pop_indoor_share{suffix}"].to_numpy())
    out["prior_share"] = np.clip(prior[""], 0, 1)
    out["prior_indoor_share"] = np.clip(prior_in[""], 0, 1)
    out["pop_covered_share_model"] = (prior[""] if not np.any(offset) else
                                      ratio(sums["model_only"], total))

    # each share: the weight where any of these layers reaches its threshold
    groups = {"2G": [(k, profile.gsm_dbm) for k in fused.layers if k[1] == "2G"]}
    groups.update({f"tech:{t}": [(k, outdoor[t]) for k in fused.layers if k[1] == t]
                   for t in BROADBAND_TECHS})
    groups.update({f"op:{op}": [(k, outdoor[k[1]]) for k in fused.layers
                                if k[0] == op and k[1] in outdoor]
                   for op in fused.operators})
    reach = _reach_shares(weights, fused.layers, groups)
    out["pop_2g_share"] = np.clip(reach["2G"], 0, 1)
    best = np.full(len(out), None, dtype=object)
    for tech in BROADBAND_TECHS:  # oldest first, so the newest reaching tech wins
        best[reach[f"tech:{tech}"] > REACH_SHARE] = tech
    out["best_tech"] = best
    out["operators"] = (np.sum([reach[f"op:{op}"] > REACH_SHARE for op in fused.operators],
                               axis=0).astype(int) if fused.operators else 0)
    if fibre is not None and not fibre.empty:
        layer = _fibre_layer(fibre, surfaces, profile.fibre_reach_m)
        out["pop_fibre_share"] = np.clip(share(weights.at(layer)), 0, 1)
    out = out.join(ev)
    n_cov = out["n_cov_tests"].to_numpy()
    any_test = (n_cov > 0) | (out["n_speed_tests"].to_numpy() > 0)
    out["evidence"] = np.where(measured, "measured",
                               np.where(any_test, "model+sparse_tests", "model"))
    out["prior_tests"] = _prior_strength(out, profile)
    return out


def _resident_rules(ev: pd.DataFrame, surfaces: CoverageSurfaces, fused: CoverageSurfaces,
                    weights: ZonalWeights, measurements: pd.DataFrame, profile: Profile,
                    sigma_db: float) -> None:
    """The residents' slow and no-service shares: the tests, and the model where they are few.

    Adds to ``ev`` (:mod:`coverage.classify.residents`): ``no_service_share_tests`` (the
    tests' weighted share), ``no_service_prior`` and ``no_service_prior_tests`` (the model's
    prior and its strength in tests), ``no_service_probability`` (posterior probability
    that the share is at least the profile's maximum); ``slow_prior``,
    ``slow_prior_tests`` and ``slow_probability`` (posterior probability that more than
    half of the residents are under the download threshold, i.e. their median is). With
    at least the rule's minimum of tests ``no_service_share`` is the survey regression
    estimate (:func:`coverage.classify.noservice.survey_regression_share`) and
    ``no_service_share_se`` its standard error; under it, the posterior mean (NaN without
    tests).
    """
    shares = market_shares(measurements, fused.operators)
    tests = ev.attrs.pop("service_tests", None)
    if profile.max_no_service_share is not None:
        if tests is None:
            tests = {"village": np.zeros(0, int), "cell": np.zeros(0, int),
                     "operator": np.zeros(0, int), "operators": [],
                     "none": np.zeros(0, bool), "weight": np.zeros(0)}
        # per operator, the model's share of its subscribers without service in each
        # village (their sum over the market shares is the prior) and its chance at each test
        per_op, at_test = no_service_by_operator(surfaces, weights, list(shares), sigma_db,
                                                 fused.calibration, tests)
        prior = np.zeros(len(ev))
        for op, share in shares.items():
            prior += share * per_op[op]
        prior = np.clip(prior, 0.0, 1.0)
        n = ev["n_service_tests"].to_numpy(dtype=float)
        raw = ev["no_service_share"].to_numpy(dtype=float)
        k = np.where(n > 0, np.nan_to_num(raw) * n, 0.0)
        kappa = fit_prior_strength(prior, k, n)
        log.info("no-service shares: model prior worth %.1f tests", kappa)
        ev["no_service_share_tests"] = raw
        ev["no_service_prior"] = prior
        ev["no_service_prior_tests"] = kappa
        mean = np.where(n > 0, (kappa * prior + k) / (kappa + n), np.nan)
        if len(tests["village"]):
            # with enough tests, the tests decide: per operator, the model carried from
            # the testers' spots to the subscribers' homes by the tests' departures from it
            raw, se = survey_regression_share(per_op, shares, tests, at_test, len(n))
            ev["no_service_share_se"] = se
        ev["no_service_share"] = np.where(n >= profile.min_no_service_tests, raw, mean)
        ev["no_service_probability"] = posterior_above(prior, kappa, k, n,
                                                       profile.max_no_service_share)
    if profile.min_download_mbps is not None and "slow_curve" in ev.attrs:
        prior = slow_prior(surfaces, weights, shares, sigma_db, fused.calibration,
                           ev.attrs["slow_curve"], profile)
        n = ev["n_speed_tests"].to_numpy(dtype=float)
        k = ev["n_slow_tests"].to_numpy(dtype=float)
        kappa = fit_prior_strength(prior, k, n)
        log.info("slow residents: model prior worth %.1f tests", kappa)
        ev["slow_prior"] = prior
        ev["slow_prior_tests"] = kappa
        ev["slow_probability"] = posterior_above(prior, kappa, k, n, 0.5)


def _piece_sums(weights: ZonalWeights, *, margins: dict[str, np.ndarray],
                fused: dict[str, np.ndarray] | None, tested: np.ndarray | None,
                offset: np.ndarray, shifts: dict[str, float], measured: np.ndarray,
                covered: Callable[[np.ndarray], np.ndarray], model_share: bool
                ) -> dict[str, np.ndarray]:
    """Weighted sums per village of the covered probabilities, over the pieces in chunks.

    For each margin grid (``out``, ``in``) and threshold shift: ``model:{kind}{suffix}``,
    the weight times the probability that the model, moved by the village's ``offset``
    (dB), is above the threshold; for the ``measured`` villages, ``decided:{kind}{suffix}``
    takes the fused surface's verdict on ``tested`` cells instead, over
    ``decided_weight``; ``model_only`` is the unshifted model without the offset. Chunks
    of :data:`PIECE_CHUNK` pieces go to :data:`PIECE_THREADS` threads (the gathers and the
    normal CDF release the GIL), and their partial sums are added: memory follows the
    chunk, not the 30 million pieces of a national run.
    """
    n = weights.n
    flat = {k: m.reshape(-1) for k, m in margins.items()}
    fflat = {k: m.reshape(-1) for k, m in fused.items()} if fused is not None else None
    tflat = tested.reshape(-1) if tested is not None else None
    off32 = offset.astype("float32")

    def gather(values: np.ndarray, cell: np.ndarray, fill) -> np.ndarray:
        inside = cell >= 0
        if inside.all():
            return values[cell]
        got = np.full(len(cell), fill, dtype=values.dtype)
        got[inside] = values[cell[inside]]
        return got

    def chunk(start: int) -> dict[str, np.ndarray]:
        sl = slice(start, start + PIECE_CHUNK)
        v, c, w = weights.village[sl], weights.cell[sl], weights.weight[sl]
        off = off32[v]
        res: dict[str, np.ndarray] = {}
        mine = measured[v] if fflat is not None else None
        if mine is not None:
            every = bool(mine.all())  # a national run: tests in every village, no copies

            def pick(a: np.ndarray) -> np.ndarray:
                return a if every else a[mine]

            vm, wm = pick(v), pick(w)
            res["decided_weight"] = np.bincount(vm, weights=wm, minlength=n)
            is_tested = gather(tflat, pick(c), False)
        for kind, grid_margin in flat.items():
            m = gather(grid_margin, c, -np.inf)
            if mine is not None:
                f = gather(fflat[kind], pick(c), -np.inf) >= 0
            for suffix, shift in shifts.items():
                p_cov = covered(m + (off + np.float32(shift)))  # per piece, the model's
                res[f"model:{kind}{suffix}"] = np.bincount(v, weights=w * p_cov, minlength=n)
                if mine is not None:
                    vals = np.where(is_tested, f, pick(p_cov))
                    res[f"decided:{kind}{suffix}"] = np.bincount(vm, weights=wm * vals,
                                                                 minlength=n)
            if kind == "out" and model_share:
                res["model_only"] = np.bincount(v, weights=w * covered(m), minlength=n)
        return res

    starts = range(0, len(weights.village), PIECE_CHUNK)
    if PIECE_THREADS > 1 and len(starts) > 1:
        with ThreadPoolExecutor(PIECE_THREADS) as pool:
            parts = list(pool.map(chunk, starts))
    else:
        parts = [chunk(i) for i in starts]
    if not parts:
        return collections.defaultdict(lambda: np.zeros(n))
    out = parts[0]
    for part in parts[1:]:
        for key, value in part.items():
            out[key] += value
    return out


def _reach_shares(weights: ZonalWeights, layers: dict[tuple[str, str], np.ndarray],
                  groups: dict[str, list[tuple[tuple[str, str], float]]]
                  ) -> dict[str, np.ndarray]:
    """Share of each village's weight where any layer of each group reaches its threshold.

    ``groups`` maps a name to (layer key, threshold dBm) pairs: a piece counts for the name
    where one of them is at or above its threshold (the group's best margin >= 0). Eight
    names per pass: their 0/1 values at a piece form the bits of a byte; one bincount over
    (village, byte) gives the weight of every combination, and each name's share sums the
    combinations with its bit set. Each layer is read at the pieces once, whatever the
    number of names it serves (a layer serves its technology and its operator).
    """
    names = list(groups)
    out: dict[str, np.ndarray] = {}
    total = weights.total()
    bits = np.arange(256)
    # half the memory and bandwidth of 64-bit codes while (village, byte) fits in 32 bits
    kind = np.int32 if weights.n * 256 < 2**31 else np.int64
    chunks = [names[start:start + 8] for start in range(0, len(names), 8)]
    uses: dict[tuple[tuple[str, str], float], list[tuple[int, int]]] = {}
    for c, chunk in enumerate(chunks):
        for k, name in enumerate(chunk):
            for key, threshold in groups[name]:
                uses.setdefault((key, threshold), []).append((c, k))
    codes = [weights.village.astype(kind) * kind(256) for _ in chunks]
    for (key, threshold), targets in uses.items():
        on = (weights.at(layers[key], fill=np.nan) >= np.float32(threshold)).astype(kind)
        for c, k in set(targets):
            codes[c] |= on << kind(k)
        del on
    for c, chunk in enumerate(chunks):
        table = np.bincount(codes[c], weights=weights.weight, minlength=weights.n * 256
                            ).reshape(weights.n, 256)
        codes[c] = None
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, name in enumerate(chunk):
                on = table[:, (bits >> k) & 1 == 1].sum(axis=1)
                out[name] = np.where(total > 0, on / total, 0.0)
    return out


def _measured_cells(model: CoverageSurfaces, fused: CoverageSurfaces,
                    margins: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Cells where measured cells replaced (or cleared) some layer of the estimate.

    With the estimate's margins kept (:func:`fuse_for`), the cells whose fused ``margins``
    (same names) differ from them: the measured cells and the 250 m around them that the
    measurements moved. Without them, the cells where any layer differs from the model;
    calibration then moves every cell, so every cell counts as measured (the behaviour
    of surfaces fused without :func:`fuse_for`, logged by :func:`village_metrics`).
    Comparing with the uncalibrated model in every case counted every cell of a measured
    village as measured: its share became the fused surface's hard verdict, the offset
    and the model's uncertainty unused (on the demo, 0.820 / 0.819 / 0.887 accuracy,
    macro-F1, unavailable recall against 0.830 / 0.829 / 0.896 when only the cells the
    measurements moved decide).
    """
    out = np.zeros(model.grid.shape, dtype=bool)
    if margins is not None and set(margins) <= set(fused.estimated_margin):
        for kind, margin in margins.items():
            base = fused.estimated_margin[kind]
            out |= ~((margin == base) | (np.isnan(margin) & np.isnan(base)))
        return out
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
    missing = 1.0 - valid_share[partial]
    span = (f" ({100 * missing.min():.0f}% to {100 * missing.max():.0f}% of their area)"
            if partial.any() else "")
    for mask, what in ((outside, "lie wholly outside the population raster (or on nodata): "
                        "population unknown unless the population column gives it"),
                       (partial, "lie partly outside the population raster (or on nodata"
                        f"{span}): their count covers only the part with data; WorldPop "
                        "marks lakes, wide rivers and the sea as nodata, so on a shore this is "
                        "expected, elsewhere check the raster's extent")):
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
    corrections: pd.DataFrame | None = None,
    zonal: str = "auto",
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
    corrections : DataFrame, optional
        Field-check corrections from :func:`read_corrections`: evidence replaces the
        village's metrics before the rules, a class overrides them (confidence 1). Adds the
        provenance columns ``corrected``, ``correction_kind``, ``correction_source``,
        ``correction_date``, ``correction_note``, ``class_original``, ``reasons_original``
        and ``confidence_original``.
    zonal : {"auto", "exact", "fast"}
        How villages meet the grids (see :func:`village_metrics`).
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
        extra ones listed in the module docstring.

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
    # the fast zonal method, the tests' location and the nearest sites all work on the
    # polygons in the grid's CRS: transformed once here, not three times (the exact method
    # transforms to the population raster's CRS itself, from the input's coordinates)
    fast = zonal == "fast" or (zonal == "auto" and len(villages) >= AUTO_FAST_VILLAGES)
    local = (villages.to_crs(surfaces.grid.crs) if fast and villages.crs is not None
             else villages)
    metrics = village_metrics(local, surfaces, measurements=measurements,
                              population=population, profile=profile, fibre=fibre,
                              zonal=zonal, engine=engine, fused=fused)
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
    if provenance is not None:
        for col in CORRECTION_COLUMNS:
            out[col] = provenance[col].to_numpy()
    rows = pd.concat([out.drop(columns=out.geometry.name).reset_index(drop=True),
                      metrics[["n_cov_tests", "k_cov_tests", "n_speed_tests",
                               "n_service_tests", "no_service_share"]
                              ].reset_index(drop=True),
                      sites[["nearest_site_tech"]].reset_index(drop=True)], axis=1)
    out["explanation"] = explain_frame(rows, "en")
    out["explanation_vi"] = explain_frame(rows, "vi")
    counts = out["class"].value_counts().to_dict()
    log.info("classified %d villages under %s: %s; %.1f%% of labels stable", len(out),
             profile.name, counts, 100 * float(out["label_stable"].mean()) if len(out) else 0)
    return out
