"""The tests of a village as a survey: weighted medians, post-stratification, split halves.

:func:`group_weighted_median` is the weighted median of a value per village;
:func:`poststratify` weighs each village's tests to the operators' market shares;
:func:`split_half_difference` compares two halves of a village's tests, for the sampling
spread of its estimates; :func:`share_below` reads a test's value against a threshold with
a spread, whose width :func:`choose_bandwidth` takes from the villages' own tests. Arrays
are one entry a test, with its village's row ``g``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..model.crossval import SELECT_MAX_OBS, HeldOut
from ..model.measured import sort_key
from .noservice import market_shares

__all__ = ["BANDWIDTHS", "Bandwidth", "choose_bandwidth", "group_weighted_median",
           "poststratify", "share_below", "split_half_difference"]

#: Bandwidths :func:`choose_bandwidth` tries, in natural logarithm of the value (0.3: a
#: test at 6 Mbps counts as under 5 Mbps with a weight of 0.27), from a tenth of a neper
#: (a speed known to 10%) to one (a factor of 2.7); 0, each test as it is, is the one
#: they must beat.
BANDWIDTHS = (0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)


def group_weighted_median(group: np.ndarray, values: np.ndarray, weights: np.ndarray,
                          n_groups: int) -> np.ndarray:
    """Weighted median of ``values`` per group (NaN for groups without values).

    An even split takes the mid-point of the two middle values, like :func:`numpy.median`.
    """
    out = np.full(n_groups, np.nan)
    ok = np.isfinite(values) & (weights > 0) & (group >= 0)
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    del ok
    order = np.argsort(sort_key(group[rows], values[rows]))  # one sort: lexsort's speed x5
    rows = rows[order]
    del order
    # tens of millions of tests: temporaries freed as soon as done, 32-bit groups
    g = group[rows].astype(np.int32 if n_groups < 2**31 else np.int64)
    v, w = values[rows], weights[rows]
    del rows
    cum = np.cumsum(w)
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    ends = np.r_[starts[1:], len(g)]
    lens = ends - starts
    cum -= np.repeat(cum[starts] - w[starts], lens)  # running weight within the group
    del w
    total = np.repeat(cum[ends - 1], lens)
    half = 0.5 * total
    total *= 1e-9
    np.subtract(half, total, out=total)
    # the running weight grows within a group: the first index reaching half the weight
    # is the group's start plus the count of those that do not
    short = (cum < total).astype(np.int64)
    del total
    first = starts + np.add.reduceat(short, starts)
    del short
    val = v[first]
    tie = np.isclose(cum[first], half[first]) & (first + 1 < ends)
    val[tie] = 0.5 * (v[first[tie]] + v[first[tie] + 1])
    out[g[starts]] = val
    return out


def poststratify(g: np.ndarray, operators: pd.Series, w: np.ndarray, mask: np.ndarray,
                 n: int, *, codes: tuple[np.ndarray, pd.Index] | None = None) -> np.ndarray:
    """Weights of the ``mask`` rows post-stratified to the operators' market shares.

    A village's tests are a random handful of subscribers: six tests may hold five of an
    operator with a sixth of the market. Within each village the tests of each operator
    weigh in proportion to its market share (:func:`coverage.classify.noservice.
    market_shares`, read from all the tests) among the operators tested there, and the
    village's total weight is kept. Rows without an operator (Ookla tiles) keep theirs.
    ``codes`` may give ``pd.factorize(operators)``, when the caller has it.
    """
    out = np.where(mask, w, 0.0).astype(float)
    code, names = codes if codes is not None else pd.factorize(operators)
    sel = mask & (code >= 0)
    if not sel.any() or len(names) < 2:
        return out
    # the market shares count the selected tests' operators: as categories, a bincount
    # rather than hashing millions of names
    chosen = pd.Categorical.from_codes(code[sel], categories=pd.Index(names).astype(object))
    shares = market_shares(pd.DataFrame({"operator": chosen}), [str(x) for x in names])
    share = np.array([shares[str(x)] for x in names])
    k = len(names)
    cell = g[sel] * k + code[sel]
    w_cell = np.bincount(cell, weights=w[sel], minlength=n * k).reshape(n, k)
    present = w_cell > 0
    total = w_cell.sum(axis=1)
    s_present = (present * share[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = (share[None, :] / s_present[:, None]) * total[:, None] / w_cell
    # an operator whose tests all weigh 0 in a village (tests where nobody lives) keeps 0,
    # not 0 x inf
    factor = np.where(present, factor, 0.0)
    out[sel] = w[sel] * factor.reshape(-1)[cell]
    return out


def split_half_difference(g: np.ndarray, ranked: np.ndarray, hit: np.ndarray,
                          weight: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per village, the weighted share of ``hit`` in one half of its tests minus the other's.

    The ``mask`` tests of each village (with positive ``weight``) are put in order
    (``ranked``: every test's index by village, then by a place such as the flat index of
    its cell on the model grid, north to south, then west to east;
    :func:`coverage.model.measured.group_value_order`) and cut
    in two halves of as many tests (the middle one of an odd number goes to the second):
    two groups of the village's tests, each a survey of the village on its own (the random
    groups of Mahalanobis 1946; Wolter 2007, ch. 2), where tests taken next to each other
    fall in the same half. NaN for a village with fewer than two such tests.

    Examples
    --------
    >>> g = np.array([0, 0, 0, 0, 1])
    >>> hit = np.array([True, True, False, False, True])
    >>> from coverage.model.measured import group_value_order
    >>> ranked = group_value_order(g, np.arange(5))
    >>> split_half_difference(g, ranked, hit, np.ones(5), np.ones(5, bool), 2)
    array([ 1., nan])
    """
    out = np.full(n, np.nan)
    sel = ranked[(mask & (weight > 0) & (g >= 0))[ranked]]
    if not len(sel):
        return out
    gs = g[sel]
    counts = np.bincount(gs, minlength=n)
    rank = np.arange(len(sel)) - (np.cumsum(counts) - counts)[gs]
    first = 2 * rank < counts[gs] - (counts[gs] % 2)
    wv, hv = weight[sel], hit[sel].astype(float)
    means = []
    for part in (first, ~first):
        total = np.bincount(gs[part], weights=wv[part], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.bincount(gs[part], weights=(wv * hv)[part], minlength=n) / total)
    return np.where(counts >= 2, means[0] - means[1], np.nan)


def share_below(values: np.ndarray, threshold: float, bandwidth: float) -> np.ndarray:
    r"""Each value's share under ``threshold``, read on a log scale with a spread (0..1).

    With a bandwidth :math:`h > 0`, :math:`\Phi((\ln t - \ln x) / h)`: each value stands
    for a log-normal spread of values around it, and the weighted mean of these shares is
    the kernel estimate of the values' distribution function at :math:`t` (Azzalini 1981),
    which has a smaller mean squared error than the share of values under :math:`t` when
    :math:`h` is well chosen (:func:`choose_bandwidth`). A test's download is one draw of
    what its spot gives over the day: one at 6 Mbps says the spot may be under 5.
    With :math:`h \le 0`, 1 under the threshold and 0 at or over it. A value of 0 (no
    service) is under any positive threshold; NaN stays NaN.

    Examples
    --------
    >>> share_below(np.array([0.0, 5.0, 50.0]), 5.0, 0.3).round(3).tolist()
    [1.0, 0.5, 0.0]
    >>> share_below(np.array([4.9, 5.0]), 5.0, 0.0).tolist()
    [1.0, 0.0]
    """
    x = np.asarray(values, dtype=float)
    if bandwidth <= 0:
        return np.where(np.isfinite(x), (x < threshold).astype(float), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ndtr((np.log(threshold) - np.log(x)) / bandwidth)


@dataclass(frozen=True)
class Bandwidth:
    """The bandwidth of :func:`share_below` a province's tests chose (:func:`choose_bandwidth`).

    Attributes
    ----------
    bandwidth : float
        In natural logarithm of the value; 0: each test as it is.
    reason : str
        Why this choice.
    cv_error : Mapping
        Held-out squared error per test of each bandwidth tried.
    """

    bandwidth: float
    reason: str
    cv_error: Mapping[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The choice as plain values (for a run's manifest)."""
        return {"bandwidth": self.bandwidth, "reason": self.reason,
                "cv_error": {f"{h:g}": e for h, e in self.cv_error.items()}}


def choose_bandwidth(g: np.ndarray, values: np.ndarray, weights: np.ndarray,
                     threshold: float, candidates: tuple[float, ...] = BANDWIDTHS
                     ) -> Bandwidth:
    """The bandwidth of :func:`share_below` the villages' own tests support, or 0.

    Leave-one-out within the villages (Bowman, Hall and Prvan 1998's cross-validation of
    a smoothed distribution function, at the one threshold the rule reads): each test in
    turn is held out of its village, and the weighted mean of the other tests' smoothed
    shares predicts whether it is under ``threshold``; the error is the squared
    difference, over the tests of villages with two or more. The bandwidth of the lowest
    mean error is taken when it beats 0 (each test as it is) by
    :data:`coverage.model.crossval.STAGE_TOLERANCE` and
    :data:`coverage.model.crossval.SIGNIFICANCE_Z` standard errors of the paired
    differences summed per village (:meth:`coverage.model.crossval.HeldOut.better_than`,
    the rule a fusion stage earns its place by); else 0. Where the tests are more than
    :data:`coverage.model.crossval.SELECT_MAX_OBS` (the fusion's cap on its
    cross-validation), a seeded sample of whole villages holding at most that many decides.

    Parameters
    ----------
    g : ndarray of int
        Each test's village.
    values : ndarray
        Each test's value (a download, Mbps; NaN: none).
    weights : ndarray
        Each test's weight in its village (0: left out).
    threshold : float
        The rule's threshold, in the values' unit.
    candidates : tuple of float
        Bandwidths to try beside 0.

    Returns
    -------
    Bandwidth
    """
    ok = np.isfinite(values) & (weights > 0) & (g >= 0)
    g, x, w = np.asarray(g)[ok], np.asarray(values, float)[ok], np.asarray(weights, float)[ok]
    n = int(g.max()) + 1 if len(g) else 0
    sampled = ""
    if len(g) > SELECT_MAX_OBS:  # whole villages, seeded, up to the cap
        count = np.bincount(g, minlength=n)
        order = np.random.default_rng(0).permutation(np.flatnonzero(count))
        keep = np.zeros(n, dtype=bool)
        keep[order[np.cumsum(count[order]) <= SELECT_MAX_OBS]] = True
        sampled = f" (a seeded sample of {int(count[keep].sum())} of {len(g)} tests)"
        g, x, w = g[keep[g]], x[keep[g]], w[keep[g]]
    total = np.bincount(g, weights=w, minlength=n)
    rest = total[g] - w
    held = rest > 1e-9 * total[g]  # a village's only test (or all its weight) has no others
    if not held.any():
        return Bandwidth(0.0, "no village with two tests")
    under = share_below(x, threshold, 0.0)[held]

    def errors(h: float) -> HeldOut:
        s = share_below(x, threshold, h)
        others = (np.bincount(g, weights=w * s, minlength=n)[g] - w * s)[held] / rest[held]
        return HeldOut((under - others) ** 2, g[held])

    base = errors(0.0)
    tried = {h: errors(h) for h in candidates}
    cv = {0.0: base.mean} | {h: e.mean for h, e in tried.items()}
    best = min(tried, key=lambda h: cv[h])
    if not tried[best].better_than(base):
        return Bandwidth(0.0, f"each test as it is: no bandwidth better held out{sampled}",
                         cv)
    villages = np.count_nonzero(np.bincount(g[held], minlength=n))
    return Bandwidth(best, f"leave-one-out within {villages} villages"
                     f"{sampled}: lower held-out error than each test as it is", cv)
