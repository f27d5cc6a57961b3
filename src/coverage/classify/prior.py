r"""The model as a prior on a share of each village's subscribers.

The no-service prior (:mod:`coverage.classify.noservice`) and the slow prior
(:mod:`coverage.classify.residents`) share one shape: per operator and grid cell, the
operator's best margin (dB) over a level per technology, read from its *calibrated* layers
(no kriging, no measured cells: the village's tests are not counted twice); the probability
under that margin given the model's location variability :math:`\sigma`,
:math:`\Phi(-m/\sigma)`; its mean over the village's people; and the operators' means
weighed by their market shares. The Beta update of such a prior by the tests lives beside
each estimate (:func:`coverage.classify.noservice.fit_prior_strength`,
:func:`coverage.classify.residents.posterior_above`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import ndtr

from ..model import CoverageSurfaces
from ..model.calibration import calibrated_layer
from .zonal import ZonalWeights

__all__ = ["market_mix", "operator_margins", "people_mean", "probability_below"]


def operator_margins(model: CoverageSurfaces, operator: str,
                     fits: Mapping | None, *levels: Mapping[str, float]
                     ) -> list[np.ndarray]:
    """The operator's best margin over each of ``levels`` on every grid cell, dB (float32).

    Each of ``levels`` maps a technology to a level (dBm); its margin is the best, over the
    operator's layers of those technologies, of the layer minus the level (``-inf`` where
    none reaches the cell). ``fits`` (``fused.calibration``) correct each layer as the
    fusion's calibration does, one layer at a time and once for all ``levels`` (no copy of
    the surfaces).
    """
    out = [np.full(model.grid.shape, -np.inf, dtype="float32") for _ in levels]
    for op, tech in model.layers:
        if op != operator or not any(tech in lv for lv in levels):
            continue
        level = calibrated_layer(model, (op, tech), fits or {})
        for margin, lv in zip(out, levels, strict=True):
            if tech in lv:
                np.fmax(margin, level - np.float32(lv[tech]), out=margin)
    return out


def probability_below(margin: np.ndarray, sigma_db: float) -> np.ndarray:
    r"""Probability that the level is under its threshold, :math:`\Phi(-m/\sigma)` (float64).

    With ``sigma_db`` 0 the model is taken as exact: 1 where the margin is negative.
    """
    margin = margin.astype("float64")
    return ndtr(-margin / sigma_db) if sigma_db > 0 else (margin < 0).astype("float64")


def people_mean(weights: ZonalWeights, values: np.ndarray) -> np.ndarray:
    """Mean of a grid of probabilities over each village's people (1 off the grid)."""
    return np.nan_to_num(weights.mean(weights.at(values, fill=1.0)), nan=1.0)


def market_mix(per_operator: Mapping[str, np.ndarray], shares: Mapping[str, float],
               n: int) -> np.ndarray:
    """Villages' share over all subscribers: the operators' shares weighed by ``shares``."""
    total = np.zeros(n)
    for op, share in shares.items():
        total += share * per_operator[op]
    return np.clip(total, 0.0, 1.0)
