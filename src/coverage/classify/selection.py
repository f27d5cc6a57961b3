r"""Who runs a test: the tests' inclusion propensity, and inverse-probability weights.

Crowdsourced tests are a self-selected sample of the subscribers: a subscriber whose handset
barely holds the network, or has lost it, runs a test less often than one with a strong
signal. Weighting the tests to where people live (:func:`coverage.classify.residents.
location_weights`) and to the operators' subscribers (:func:`coverage.classify.survey.
poststratify`) cannot bring back the subscribers who do not test. This module estimates how
the chance of a test depends on the tester's own signal, from the province's own data, and
weighs each test by the inverse of its relative chance (Horvitz and Thompson 1952; the
propensity model in the spirit of Rosenbaum and Rubin 1983 and, for a non-probability
sample against a reference population, Elliott and Valliant 2017).

**The model.** A subscriber of operator :math:`o` living in grid cell :math:`c` runs a test
with a relative propensity :math:`\pi(M)` that depends on their own margin :math:`M` over
the level where handsets lose the operator's network
(:data:`coverage.model.observations.NO_SERVICE_DBM`, best over the operator's technologies): a
subscriber without service tests :math:`\rho` times as often as one with service,

.. math:: \pi(M) = \rho + (1 - \rho)\,\Phi\!\left(\frac{M}{\tau}\right),

the step smoothed by :math:`\tau` (:data:`HANDSET_SD_DB`, the spread of a handset's
reported level). The residents' true margin is the calibrated model's :math:`\mu_{oc}`
with the model's location variability :math:`\sigma`, :math:`M \sim N(\mu_{oc}, \sigma^2)`,
so the expected propensity of a resident is

.. math:: \bar\pi(\mu) = \rho + (1 - \rho)\,\Phi\!\left(\frac{\mu}
          {\sqrt{\sigma^2 + \tau^2}}\right).

(A knee fitted as well, :math:`\Phi((M - c)/\tau)`, was tried: on the tuning worlds the fit
put it anywhere from 5 dB to its 30 dB bound, and weighing up the served tests with weak
signal found one truly slow village fewer; the step at losing service found one more
village without service and as many slow ones.)

**The fit.** Tests are counted against residents: within each village, the chance that a
test falls in cell :math:`c` on operator :math:`o` is proportional to the residents there,
:math:`R_{oc}` (people times the operator's subscriber share), times
:math:`\bar\pi(\mu_{oc})\, e^{\beta z_c}`, with :math:`z_c` the log of the people per cell
(testers gather in towns whatever the signal: the density term keeps that out of
:math:`\pi`). Conditioning on each village's number of tests (a multinomial per village)
removes everything that differs between villages. :math:`\rho` and :math:`\beta` by maximum
likelihood; :math:`\rho`'s standard error from the observed information. The tests' spots
decide the fit, not their outcomes, so it does not repeat the calibration (which is fitted
on the outcomes).

**The weights.** A test with a level has its own margin :math:`M_i` (its level over its
technology's :data:`~coverage.model.observations.NO_SERVICE_DBM`); a test without service has
:math:`M_i < 0`, and its propensity is the floor's; a test with a technology but no level
takes :math:`\bar\pi` at its spot. Each test weighs :math:`1/\pi_i` relative to the others,
trimmed: no propensity counts below :data:`PROPENSITY_FLOOR` (no test weighs more than 4
times a test with full signal; Potter 1990's trimming of extreme weights). The location
and operator post-stratification then runs on these weights, so each village's strata keep
their people and its operators their shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr

from ..calibrate import HANDSET_SD_DB, PROPENSITY_FLOOR, propensity_at_margin
from .zonal import ZonalWeights

__all__ = ["HANDSET_SD_DB", "PROPENSITY_FLOOR", "Propensity", "fit_propensity",
           "test_margins"]

log = logging.getLogger(__name__)

# HANDSET_SD_DB (the propensity's rise, dB) and PROPENSITY_FLOOR (the trimming) are the
# propensity's core in coverage.calibrate, where the fusion can weigh its tests by it too.
#: Tests in tested villages' populated cells needed to fit the propensity; with fewer, every
#: test weighs alike (propensity 1).
MIN_SELECTION_TESTS = 200
#: Tested villages the fit reads at most (every k-th of them beyond): the propensity is one
#: figure for the province, and 2,000 villages fix it far better than its model does.
MAX_FIT_VILLAGES = 2000
#: Margins are binned to this (dB) and clipped to this range for the fit.
MARGIN_BIN_DB = 1.0
MARGIN_RANGE_DB = (-40.0, 60.0)


@dataclass(frozen=True)
class Propensity:
    r"""A fitted relative propensity to test against the tester's own margin.

    Attributes
    ----------
    floor : float
        :math:`\rho`, the relative propensity of a subscriber without service (1: none
        missing).
    density_slope : float
        :math:`\beta`, tests per resident against the log of people per cell.
    sigma_db : float
        The model's location variability the fit deconvolved (dB).
    floor_se : float
        Standard error of ``floor`` (NaN when not estimated).
    n_tests : int
        Tests the fit used.
    """

    floor: float = 1.0
    density_slope: float = 0.0
    sigma_db: float = 0.0
    floor_se: float = float("nan")
    n_tests: int = 0

    def at_margin(self, margin_db: np.ndarray) -> np.ndarray:
        """Relative propensity of a tester whose own margin is ``margin_db`` (dB)."""
        return propensity_at_margin(margin_db, self.floor)

    def expected(self, model_margin_db: np.ndarray) -> np.ndarray:
        """Mean relative propensity of residents where the model's margin is given (dB)."""
        m = np.asarray(model_margin_db, dtype=float)
        spread = np.hypot(self.sigma_db, HANDSET_SD_DB)
        return self.floor + (1.0 - self.floor) * ndtr(m / spread)

    def weights(self, own_margin_db: np.ndarray, model_margin_db: np.ndarray) -> np.ndarray:
        """Each test's inverse propensity, trimmed at :data:`PROPENSITY_FLOOR`.

        ``own_margin_db``: the test's own margin (``-inf`` without service, NaN when it
        has a technology but no level: then :meth:`expected` at ``model_margin_db``).
        """
        own = np.asarray(own_margin_db, dtype=float)
        p = np.where(np.isnan(own), self.expected(np.nan_to_num(model_margin_db,
                                                                nan=MARGIN_RANGE_DB[1])),
                     self.at_margin(own))
        return 1.0 / np.maximum(p, PROPENSITY_FLOOR)


def test_margins(tech: np.ndarray, level_dbm: np.ndarray,
                 lose_dbm: Mapping[str, float]) -> np.ndarray:
    """Each test's own margin over where its handset loses the network, dB.

    ``tech`` holds technology names (``none``: no service, margin ``-inf``); a test with a
    level is its level over ``lose_dbm`` of its technology; otherwise NaN.
    """
    tech = np.asarray(tech, dtype=object)
    out = np.full(len(tech), np.nan)
    lvl = np.asarray(level_dbm, dtype=float)
    for t, lose in lose_dbm.items():
        sel = (tech == t) & np.isfinite(lvl)
        out[sel] = lvl[sel] - lose
    out[tech == "none"] = -np.inf
    return out


def fit_propensity(weights: ZonalWeights, margin_of: Callable[[str], np.ndarray],
                   shares: Mapping[str, float], tests: Mapping[str, np.ndarray],
                   sigma_db: float) -> Propensity:
    """Fit the relative propensity to test from where the tests fall among the residents.

    Parameters
    ----------
    weights : ZonalWeights
        The villages' pieces on the model grid, weighted by people.
    margin_of : callable
        ``margin_of(operator)``: the calibrated model's margin over losing service on the
        grid (dB), asked for one operator at a time.
    shares : mapping of str to float
        The operators' subscriber shares.
    tests : mapping
        ``village``, ``cell``, ``operator`` (codes into ``operators``) of the tests.
    sigma_db : float
        The model's location variability (dB).

    Returns
    -------
    Propensity
        The fit, or the flat propensity (every test alike) with too few tests.
    """
    units = _units(weights, margin_of, shares, tests)
    if units is None:
        return Propensity(sigma_db=sigma_db)
    v, mu, z, people, count = units
    n_tests = int(count.sum())
    tested = np.bincount(v, weights=count)
    spread = np.hypot(sigma_db, HANDSET_SD_DB)

    served = ndtr(mu / spread)

    def nll(p: np.ndarray) -> float:
        rho, slope = p
        q = (rho + (1 - rho) * served) * np.exp(slope * z)
        den = np.bincount(v, weights=people * q, minlength=len(tested))
        has = tested > 0
        return -(float(np.sum(count * np.log(np.maximum(q, 1e-300))))
                 - float(np.sum(tested[has] * np.log(den[has]))))

    best = minimize(nll, np.array([0.7, 0.0]), method="L-BFGS-B",
                    bounds=[(0.05, 1.0), (-2.0, 2.0)])
    rho, slope = (float(x) for x in best.x)
    se = _floor_se(nll, best.x)
    out = Propensity(floor=rho, density_slope=slope, sigma_db=sigma_db, floor_se=se,
                     n_tests=n_tests)
    log.info("test propensity: a subscriber without service tests %.2f times as often "
             "(se %.2f), density slope %.2f, over %d tests", rho, se, slope, n_tests)
    return out


def _floor_se(nll, x: np.ndarray) -> float:
    """Standard error of the first parameter from the numerical Hessian of ``nll``."""
    h = np.full(len(x), 1e-3)
    k = len(x)
    hess = np.zeros((k, k))
    f0 = nll(x)
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            val = (nll(x + ei + ej) - nll(x + ei) - nll(x + ej) + f0) / (h[i] * h[j])
            hess[i, j] = hess[j, i] = val
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return float("nan")
    return float(np.sqrt(cov[0, 0])) if cov[0, 0] > 0 else float("nan")


def _units(weights: ZonalWeights, margin_of: Callable[[str], np.ndarray],
           shares: Mapping[str, float], tests: Mapping[str, np.ndarray]):
    """Residents and tests per (village, operator, margin bin, density bin) of tested villages.

    Parameters
    ----------
    weights, margin_of, shares, tests
        As :func:`fit_propensity` takes them.

    Returns
    -------
    tuple of ndarray or None
        The unit's village (0.. over the villages read), margin (dB), log people per cell,
        residents and tests; None with too few tests in populated cells.
    """
    names = list(tests["operators"])
    tested, tv, tc, top = _fit_villages(weights.n, tests["village"], tests["cell"],
                                        tests["operator"])
    inside = weights.cell >= 0
    sel = inside & tested[weights.village] & (weights.weight > 0)
    pv, pc, pw = weights.village[sel], weights.cell[sel], weights.weight[sel]
    n_cells = int(max(pc.max(initial=0), tc.max(initial=0))) + 1
    code = _UnitCode(n_operators=len(shares), per_cell=np.bincount(
        weights.cell[inside], weights=weights.weight[inside], minlength=n_cells))
    # aggregated one operator at a time: a national run's pieces are tens of millions
    keys, people, counts = [], [], []
    for k, (op, share) in enumerate(shares.items()):
        grid = margin_of(op)
        uniq, inv = np.unique(code.key(pv, k, pc, grid), return_inverse=True)
        keys.append(uniq)
        people.append(np.bincount(inv, weights=pw * share))
        counts.append(np.zeros(len(uniq)))
        if op not in names:
            continue
        mine = (top == names.index(op)) & (tc >= 0)
        cell = tc[mine]
        populated = code.per_cell[cell] > 0
        uniq, cnt = np.unique(code.key(tv[mine][populated], k, cell[populated], grid),
                              return_counts=True)
        keys.append(uniq)
        people.append(np.zeros(len(uniq)))
        counts.append(cnt.astype(float))
    return _merge_units(code, keys, people, counts)


def _fit_villages(n: int, tv: np.ndarray, tc: np.ndarray, top: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tested villages the fit reads, and their tests.

    Parameters
    ----------
    n : int
        Number of villages.
    tv, tc, top : ndarray of int
        Village, cell and operator code of each test.

    Returns
    -------
    tested : ndarray of bool
        Per village, whether the fit reads it: every tested village, or every k-th of them
        beyond :data:`MAX_FIT_VILLAGES` (the propensity is a province-wide figure).
    tv, tc, top : ndarray of int
        The tests of those villages.
    """
    tested = np.bincount(tv, minlength=n) > 0
    rows = np.flatnonzero(tested)
    if len(rows) > MAX_FIT_VILLAGES:
        tested[:] = False
        tested[rows[::-(-len(rows) // MAX_FIT_VILLAGES)]] = True
        keep = tested[tv]
        tv, tc, top = tv[keep], tc[keep], top[keep]
    return tested, tv, tc, top


@dataclass(frozen=True)
class _UnitCode:
    """One int64 key per (village, operator, margin bin, density bin) unit, and back.

    Margins (dB) are clipped to :data:`MARGIN_RANGE_DB` and binned by
    :data:`MARGIN_BIN_DB`; the log of people per cell in quarter steps from -50 to +50.

    Attributes
    ----------
    n_operators : int
        Number of operators.
    per_cell : ndarray of float
        People per model-grid cell (flat index).
    """

    n_operators: int
    per_cell: np.ndarray
    #: width of a density bin (log people per cell), and the key's room and offset for them
    z_step: ClassVar[float] = 0.25
    z_room: ClassVar[int] = 400
    z_offset: ClassVar[int] = 200

    @property
    def n_margin_bins(self) -> int:
        """Margin bins over :data:`MARGIN_RANGE_DB`."""
        lo, hi = MARGIN_RANGE_DB
        return int((hi - lo) / MARGIN_BIN_DB) + 1

    def key(self, village: np.ndarray, operator: int, cell: np.ndarray,
            grid: np.ndarray) -> np.ndarray:
        """Keys of the units of pieces or tests in ``village`` at ``cell`` (flat index).

        ``grid`` is the operator's margin grid (dB; NaN, -inf: the range's floor).
        """
        lo, hi = MARGIN_RANGE_DB
        m = np.clip(np.nan_to_num(grid.reshape(-1)[cell].astype(float), neginf=lo), lo, hi)
        mb = np.rint((m - lo) / MARGIN_BIN_DB).astype(np.int64)
        zb = np.floor(np.log(np.maximum(self.per_cell[cell], 1e-3)) / self.z_step
                      ).astype(np.int64)
        return (((village.astype(np.int64) * self.n_operators + operator)
                 * self.n_margin_bins + mb) * self.z_room + zb + self.z_offset)

    def decode(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Village, margin (dB) and log people per cell of each key.

        Villages are renumbered 0.. over those present; the margin is its bin's, the log
        people per cell its bin's middle.
        """
        zb = key % self.z_room - self.z_offset
        rest = key // self.z_room
        mb = rest % self.n_margin_bins
        v = rest // self.n_margin_bins // self.n_operators
        v = np.unique(v, return_inverse=True)[1]
        return v, MARGIN_RANGE_DB[0] + mb * MARGIN_BIN_DB, (zb + 0.5) * self.z_step


def _merge_units(code: _UnitCode, keys: list[np.ndarray], people: list[np.ndarray],
                 counts: list[np.ndarray]):
    """Residents and tests summed per unit, units without residents left out.

    Returns the :func:`_units` tuple, or None with fewer than :data:`MIN_SELECTION_TESTS`
    tests left.
    """
    uniq, inv = np.unique(np.concatenate(keys), return_inverse=True)
    r = np.bincount(inv, weights=np.concatenate(people))
    c = np.bincount(inv, weights=np.concatenate(counts))
    keep = r > 0  # a test in a cell without residents of its village stands for nobody
    if c[keep].sum() < MIN_SELECTION_TESTS:
        return None
    uniq, r, c = uniq[keep], r[keep], c[keep]
    return (*code.decode(uniq), r, c)
