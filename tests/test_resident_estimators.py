"""The model-assisted estimators of benchmarks/resident_estimators.py against the product's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from coverage.classify.noservice import province_departures, survey_regression_share

PATH = Path(__file__).parents[1] / "benchmarks" / "resident_estimators.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("resident_estimators", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(seed: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    n_tests, n = 60, 6
    x = rng.uniform(0.05, 0.9, n_tests)
    tests = {"village": rng.integers(0, n - 1, n_tests), "cell": np.zeros(n_tests, int),
             "operator": rng.integers(-1, 2, n_tests), "operators": ["A", "B"],
             "none": rng.random(n_tests) < x, "weight": rng.uniform(0.5, 2.0, n_tests)}
    per_op = {"A": rng.uniform(0, 1, n), "B": rng.uniform(0, 1, n), "C": rng.uniform(0, 1, n)}
    shares = {"A": 0.5, "B": 0.3, "C": 0.2}
    return {"per_op": per_op, "shares": shares, "tests": tests, "at_test": x, "n": n,
            "untested": province_departures(tests, x, list(shares))}


def test_the_difference_row_is_the_products_estimate(bench):
    c = _call()
    product, _ = survey_regression_share(c["per_op"], c["shares"], c["tests"], c["at_test"],
                                         c["n"], untested=c["untested"])
    mine = bench.ESTIMATORS["difference"](c)
    np.testing.assert_allclose(mine, product, equal_nan=True)
    assert np.isnan(mine[-1])  # the untested village has no estimate from tests


def test_greg_slope_is_the_weighted_least_squares_slope(bench):
    # outcomes a line in the model at each village's spots, offset per village: the
    # within-village slope is the line's, the overall one is not
    c = _call()
    t = c["tests"]
    t["operator"] = np.zeros(len(t["village"]), int)
    t["none"] = 0.4 * c["at_test"] + 0.1 * t["village"]
    assert bench.slope(c) == pytest.approx(0.4)
    assert bench.slope(c, within=False) != pytest.approx(0.4)
