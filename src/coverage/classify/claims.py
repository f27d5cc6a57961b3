"""Operators' coverage maps as evidence beside the model and the tests, never deciding.

An operator's map is its claim: the list of Decision 1437 exists to check such claims,
so a claim does not set a class. It is reported three ways:

- :func:`claimed_layers` puts each operator's claimed broadband (3G/4G/5G polygons, or
  rasters of dBm at or above the profile's outdoor threshold) on the model grid, from which
  :func:`coverage.classify.village_metrics` takes ``pop_claimed_share``: the share of a
  village's people inside one operator's claim, the best operator's;
- :func:`claim_clauses` adds a clause to the explanation where the claim and the class
  disagree (half the people or more claimed, yet ``unavailable``);
- :func:`claims_agreement` says, for the run's manifest, how the claims agree with the
  tests: the share of tests inside a claim that found broadband, and of tests outside
  every claim that found none.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..io import CoverageMaps, claimed_cells
from ..model import Grid
from ..model.observations import measurement_xy
from ..params import BROADBAND_TECHS, Profile

__all__ = ["CLAIM_DISAGREES", "claim_clauses", "claimed_layers", "claims_agreement"]

#: Share of a village's people claimed covered from which an ``unavailable`` class is
#: said to disagree with the claim (the contract's covered-share threshold).
CLAIM_DISAGREES = 0.5
_CLAUSE = ("; operator maps claim broadband for {pct} of the people, which this "
           "classification does not find (a claim to check on the ground)",
           "; bản đồ nhà mạng công bố có băng rộng cho {pct} dân, phân loại này không xác "
           "nhận (cần kiểm tra thực địa)")


def claimed_layers(maps: CoverageMaps, grid: Grid, profile: Profile) -> dict[str, np.ndarray]:
    """Each operator's claimed broadband on ``grid``: 1 on claimed cells, else 0 (uint8).

    A polygon claims the cells whose centre it holds; a raster of dBm (resampled to the
    grid by nearest cell) claims those at or above ``profile``'s outdoor threshold of its
    technology (:func:`coverage.io.claimed_cells`: compared at the raster's cells, then
    resampled, one byte a cell). 2G claims are not broadband and claim nothing. One byte a
    cell: a national grid at 100 m holds 130 million cells per operator.
    """
    from rasterio.features import rasterize

    layers: dict[str, np.ndarray] = {}

    def add(operator: str, claimed: np.ndarray) -> None:
        layers[operator] = np.maximum(layers.get(operator, 0), claimed.astype("uint8"))

    polygons = maps.polygons[maps.polygons["tech"].isin(BROADBAND_TECHS)]
    for operator, group in polygons.groupby("operator", sort=True):
        geoms = [g for g in group.geometry.to_crs(grid.crs) if g is not None and not g.is_empty]
        if geoms:
            add(str(operator), rasterize([(g, 1) for g in geoms], out_shape=grid.shape,
                                         transform=grid.transform, fill=0, dtype="uint8"))
    for operator, tech, raster in maps.rasters:
        if tech in BROADBAND_TECHS:
            add(operator, claimed_cells(raster, profile.outdoor_dbm(tech),
                                        transform=grid.transform, shape=grid.shape,
                                        crs=grid.crs))
    for operator in maps.operators:  # an operator with 2G claims only claims no broadband
        layers.setdefault(operator, np.zeros(grid.shape, dtype="uint8"))
    return dict(sorted(layers.items()))


def claim_clauses(classes: pd.Series, claimed: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The explanation's clause (English, Vietnamese) where the claim and the class disagree.

    Empty text elsewhere: a village claimed covered for at least :data:`CLAIM_DISAGREES`
    of its people and classed ``unavailable`` gets the clause.
    """
    share = pd.to_numeric(claimed, errors="coerce").to_numpy(dtype=float)
    disagree = (classes.astype(str).to_numpy() == "unavailable") & (share >= CLAIM_DISAGREES)
    en = np.full(len(share), "", dtype=object)
    vi = np.full(len(share), "", dtype=object)
    for i in np.flatnonzero(disagree):
        pct = f"{100 * share[i]:.0f}%"
        en[i], vi[i] = _CLAUSE[0].format(pct=pct), _CLAUSE[1].format(pct=pct)
    return pd.Series(en, index=classes.index), pd.Series(vi, index=classes.index)


def claims_agreement(tests: pd.DataFrame, layers: Mapping[str, np.ndarray], grid: Grid,
                     profile: Profile) -> dict[str, float | int | None]:
    """How operators' claims agree with the tests, for the run's manifest.

    A test is compared with its own operator's claim; a test that names no operator with
    the union of every operator's claim; a test of an operator without a map, off the grid,
    or of no technology (an Ookla tile's average: ``tech`` empty, not ``none``) is left out.
    A test *found broadband* when its ``tech`` is 3G/4G/5G and its level
    (``rsrp_dbm``, when given) is at or above the profile's outdoor threshold.

    Returns
    -------
    dict
        ``tests_compared``, ``tests_left_out``, ``tests_inside_claims``,
        ``inside_found_broadband`` (share of the tests inside a claim that found broadband),
        ``tests_outside_claims`` and ``outside_found_none`` (share of the tests outside
        the claims that found none); a share is None without a test to count.
    """
    x, y = measurement_xy(tests, grid.crs)
    row, col, on_grid = grid.index(x, y)
    row, col = np.where(on_grid, row, 0), np.where(on_grid, col, 0)
    on_grid &= tests["tech"].notna().to_numpy()
    operator = tests["operator"].astype(object).to_numpy()
    unnamed = pd.isna(operator) | (operator == "unknown")
    claimed = np.zeros(len(tests), dtype=bool)
    compared = np.zeros(len(tests), dtype=bool)
    union = np.zeros(grid.shape, dtype="uint8")
    for op, layer in layers.items():
        union = np.maximum(union, layer)
        own = on_grid & (operator == op)
        claimed[own], compared[own] = layer[row[own], col[own]] > 0, True
    anyone = on_grid & unnamed
    claimed[anyone], compared[anyone] = union[row[anyone], col[anyone]] > 0, True
    found = _found_broadband(tests, profile)
    inside, outside = compared & claimed, compared & ~claimed
    return {
        "tests_compared": int(compared.sum()),
        "tests_left_out": int((~compared).sum()),
        "tests_inside_claims": int(inside.sum()),
        "inside_found_broadband": (round(float(found[inside].mean()), 4)
                                   if inside.any() else None),
        "tests_outside_claims": int(outside.sum()),
        "outside_found_none": (round(float((~found[outside]).mean()), 4)
                               if outside.any() else None),
    }


def _found_broadband(tests: pd.DataFrame, profile: Profile) -> np.ndarray:
    """True for each test on 3G/4G/5G at or above the outdoor threshold (or of no level)."""
    tech = tests["tech"].astype(object).to_numpy()
    level = (pd.to_numeric(tests["rsrp_dbm"], errors="coerce").to_numpy(dtype=float)
             if "rsrp_dbm" in tests.columns else np.full(len(tests), np.nan))
    threshold = (pd.Series(tech).map({t: profile.outdoor_dbm(t) for t in BROADBAND_TECHS})
                 .fillna(np.inf).to_numpy(dtype=float))
    return np.isin(tech, list(BROADBAND_TECHS)) & (np.isnan(level) | (level >= threshold))
