"""The measured villages' indoor share: their tests shrunk toward the model's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coverage.classify.metrics import (
    MIN_INDOOR_SHRINK_VILLAGES,
    _indoor_from_tests,
    indoor_shrinkage,
)
from coverage.params import get_profile


def _villages(rng: np.random.Generator, truth: np.ndarray, n: int, model: np.ndarray):
    """Each village's tests' indoor share from ``n`` tests, and two halves' difference."""
    hits = rng.uniform(size=(len(truth), n)) < truth[:, None]
    half = n // 2
    split = hits[:, :half].mean(axis=1) - hits[:, half:].mean(axis=1)
    return hits.mean(axis=1), np.full(len(truth), float(n)), split


def test_tests_that_only_scatter_around_the_model_are_shrunk_to_it():
    rng = np.random.default_rng(1)
    model = rng.uniform(0.2, 0.8, 200)
    tests, n, split = _villages(rng, model, 6, model)  # the model is each village's truth
    gamma = indoor_shrinkage(tests, model, n, split, np.ones(200, bool), np.zeros(200, int))
    assert np.all((gamma > 0) & (gamma < 0.5))
    shrunk = model + gamma * (tests - model)
    assert np.sqrt(np.mean((shrunk - model) ** 2)) < 0.5 * np.sqrt(np.mean((tests - model) ** 2))


def test_tests_of_villages_the_model_misses_keep_most_of_their_weight():
    rng = np.random.default_rng(2)
    model = np.full(200, 0.5)
    truth = rng.choice([0.05, 0.95], 200)  # the model knows nothing of them
    tests, n, split = _villages(rng, truth, 40, model)
    gamma = indoor_shrinkage(tests, model, n, split, np.ones(200, bool), np.zeros(200, int))
    assert np.all(gamma > 0.8)


def test_clustered_tests_weigh_less_than_independent_ones():
    rng = np.random.default_rng(3)
    model = np.full(300, 0.5)
    truth = np.clip(model + rng.normal(0, 0.15, 300), 0, 1)
    tests, n, split = _villages(rng, truth, 10, model)
    use, prov = np.ones(300, bool), np.zeros(300, int)
    alone = indoor_shrinkage(tests, model, n, split, use, prov)
    # halves that differ twice as much: the tests are worth fewer independent draws
    clustered = indoor_shrinkage(tests, model, n, 2 * split, use, prov)
    assert np.all(clustered < alone)


def test_each_province_its_own_spread_small_ones_pooled_and_too_few_left_alone():
    rng = np.random.default_rng(4)
    k = MIN_INDOOR_SHRINK_VILLAGES
    model = np.full(3 * k, 0.5)
    truth = np.r_[np.full(k, 0.5), rng.choice([0.05, 0.95], k), np.full(k, 0.5)]
    tests, n, split = _villages(rng, truth, 8, model)
    prov = np.repeat([0, 1, 2], k)
    gamma = indoor_shrinkage(tests, model, n, split, np.ones(3 * k, bool), prov)
    assert gamma[:k].max() < gamma[k:2 * k].min()  # province 1's model misses its villages
    # a province with too few villages takes the run's pooled fit
    few = prov.copy()
    few[-3:] = 3
    pooled = indoor_shrinkage(tests, model, n, split, np.ones(3 * k, bool), few)
    assert np.all(pooled[-3:] < 1) and np.all(np.isfinite(pooled))
    # fewer villages than a fit needs in the whole run: the tests alone
    some = np.zeros(3 * k, bool)
    some[:k - 1] = True
    assert np.all(indoor_shrinkage(tests, model, n, split, some, prov) == 1.0)


def test_the_measured_indoor_share_lies_between_its_tests_and_the_model():
    rng = np.random.default_rng(5)
    nv = 40
    model = rng.uniform(0.3, 0.7, nv)
    tests, n, split = _villages(rng, model, 6, model)
    ev = pd.DataFrame({"n_indoor_tests": n, "indoor_share_tests": tests,
                       "indoor_share_tests_strict": tests, "indoor_share_tests_loose": tests,
                       "split_half_indoor": split})
    shifts = {"": 0.0, "_strict": -4.0, "_loose": 4.0}
    out = {f"pop_{k}_share{s}": np.full(nv, v) for s in shifts
           for k, v in (("covered", 1.0), ("indoor", 0.0))}
    measured = np.ones(nv, bool)
    measured[0] = False
    prior = dict.fromkeys(shifts, model)
    _indoor_from_tests(out, ev, measured, get_profile("vn-2025"), shifts, prior,
                       np.zeros(nv, int))
    got = out["pop_indoor_share"]
    assert got[0] == 0.0  # not measured: untouched
    lo, hi = np.minimum(tests, model)[1:], np.maximum(tests, model)[1:]
    assert np.all((got[1:] >= lo - 1e-12) & (got[1:] <= hi + 1e-12))
    assert np.abs(got[1:] - model[1:]).mean() < np.abs(tests[1:] - model[1:]).mean()
    # without the model's share, the tests' own share as before
    out2 = {k: v.copy() * 0 + (1.0 if "covered" in k else 0.0) for k, v in out.items()}
    _indoor_from_tests(out2, ev, measured, get_profile("vn-2025"), shifts)
    assert out2["pop_indoor_share"][1:] == pytest.approx(tests[1:])
