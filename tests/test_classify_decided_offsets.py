"""The offsets of villages whose tests decide, their residuals weighed for who tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coverage.classify.offsets import _residual_sums, weigh_decided_offsets
from coverage.classify.selection import Propensity
from coverage.classify.shrinkage import shrink


def _evidence(resid, own, village, decide, n):
    levels = [np.zeros(n, dtype=int), np.zeros(n, dtype=int)]
    sums = _residual_sums(village, resid, n)
    ev = pd.DataFrame({"model_offset_db": np.clip(shrink(*sums, levels), -10, 10)})
    mine = decide[village]
    ev.attrs["decided_residuals"] = {
        "village": village[mine], "resid": resid[mine], "own_margin": own[mine],
        "sums": sums, "levels": levels, "decide": decide,
        "bounds": (-10.0, np.full(n, 10.0))}
    return ev


def _province(rng):
    """Village 0 decides: 10 tests, two without service; villages 1-5 have a few tests."""
    village = np.r_[np.zeros(10, int), np.repeat(np.arange(1, 6), 3)]
    resid = np.r_[np.full(8, 4.0), np.full(2, -6.0), rng.normal(0, 3, 15)]
    own = np.r_[np.full(8, 30.0), np.full(2, -np.inf), np.full(15, 30.0)]
    decide = np.zeros(6, dtype=bool)
    decide[0] = True
    return resid, own, village, decide


def test_tests_without_service_weigh_up_a_deciding_villages_offset():
    resid, own, village, decide = _province(np.random.default_rng(0))
    ev = _evidence(resid, own, village, decide, 6)
    before = ev["model_offset_db"].to_numpy().copy()
    weigh_decided_offsets(ev, Propensity(floor=0.5))
    after = ev["model_offset_db"].to_numpy()
    assert after[0] < before[0] - 0.5  # the two tests without service count twice
    np.testing.assert_array_equal(after[1:], before[1:])  # the others as they were
    assert "decided_residuals" not in ev.attrs


def test_without_a_fitted_propensity_nothing_moves():
    resid, own, village, decide = _province(np.random.default_rng(1))
    for prop in (None, Propensity(floor=1.0)):
        ev = _evidence(resid, own, village, decide, 6)
        before = ev["model_offset_db"].to_numpy().copy()
        weigh_decided_offsets(ev, prop)
        np.testing.assert_array_equal(ev["model_offset_db"].to_numpy(), before)


def test_weights_alike_give_the_offset_as_before():
    resid, own, village, decide = _province(np.random.default_rng(2))
    own[:] = 60.0  # every test far over losing service: propensity 1 for all
    ev = _evidence(resid, own, village, decide, 6)
    before = ev["model_offset_db"].to_numpy().copy()
    weigh_decided_offsets(ev, Propensity(floor=0.4))
    np.testing.assert_allclose(ev["model_offset_db"].to_numpy(), before, atol=1e-9)
