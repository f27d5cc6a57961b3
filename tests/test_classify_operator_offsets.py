"""Per-operator village offsets: each operator's model error, and the shares they move."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from coverage.classify import shares
from coverage.classify.evidence import _ByReference, operator_effects, operator_offsets
from coverage.classify.zonal import ZonalWeights


def _province(rng, n=40, per=6, op_sd=4.0):
    """Villages with tests of two operators, each village and operator off by its own part."""
    village = np.repeat(np.arange(n), 2 * per)
    op = np.tile(np.repeat([0, 1], per), n)
    common = rng.normal(0, 4, n)
    own = rng.normal(0, op_sd, (n, 2))
    own[0] = [6.0, -6.0]  # village 0: operator 0 over the model, 1 under it
    common[0] = 0.0
    resid = common[village] + own[village, op] + rng.normal(0, 3, len(village))
    return village, op, resid


def test_each_operator_keeps_its_own_error():
    village, op, resid = _province(np.random.default_rng(0))
    n = int(village.max()) + 1
    b, c = operator_effects(village, op, resid, np.zeros(n), 2)
    assert b.shape == (n,) and c.shape == (n, 2)
    assert c[0, 0] > 3.0 and c[0, 1] < -3.0  # the two operators apart
    raw = np.bincount(village * 2 + op, weights=resid) / np.bincount(village * 2 + op)
    both = b[:, None] + c
    assert np.corrcoef(both.ravel(), raw)[0, 1] > 0.95  # the parts sum to nearly the means


def test_without_an_operator_part_the_operators_share_the_villages_error():
    rng = np.random.default_rng(1)
    village, op, _ = _province(rng, op_sd=0.0)
    n = int(village.max()) + 1
    resid = rng.normal(0, 4, n)[village] + rng.normal(0, 3, len(village))
    b, c = operator_effects(village, op, resid, np.zeros(n), 2)
    assert np.abs(c).max() < 1.0
    assert np.corrcoef(b, np.bincount(village, weights=resid) / np.bincount(village)
                       )[0, 1] > 0.95


def test_one_operators_tests_move_another_only_through_the_village():
    """Village 40 has tests of operator 0 only: operator 1 takes the village part alone."""
    rng = np.random.default_rng(2)
    village, op, resid = _province(rng)
    village = np.r_[village, np.full(6, 40)]
    op = np.r_[op, np.zeros(6, dtype=int)]
    resid = np.r_[resid, np.full(6, -12.0)]
    b, c = operator_effects(village, op, resid, np.zeros(41), 2)
    assert c[40, 1] == 0.0
    assert -12.0 < b[40] + c[40, 0] < -8.0  # its own operator: most of what it measured
    assert -9.0 < b[40] < -2.0  # the other: part of it, as the components split it


def test_tests_without_a_modelled_operator_count_for_the_village_only():
    village = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    op = np.array([-1, -1, -1, 0, 0, 1, 1, 0, 0])
    resid = np.array([-9.0, -9.0, -9.0, 1.0, 2.0, 0.0, 1.0, 0.0, 1.0])
    b, c = operator_effects(village, op, resid, np.zeros(3), 2)
    np.testing.assert_array_equal(c[0], [0.0, 0.0])  # no operator's tests there
    assert b[0] < -1.0


def test_operator_offsets_are_bounded_as_the_villages():
    ev = pd.DataFrame({"model_offset_db": [-2.0, 3.0]})
    ev.attrs["operator_offsets"] = _ByReference({
        "operators": ["A", "B"], "offset": np.array([[-7.0, 2.0], [5.0, -6.0]]),
        "bounds": (-6.0, np.array([0.0, 6.0]))})
    got = operator_offsets(ev)
    np.testing.assert_array_equal(got["A"], [-6.0, 5.0])  # lowered no further than 6 dB
    np.testing.assert_array_equal(got["B"], [0.0, -6.0])  # lifted only where it may be
    assert operator_offsets(pd.DataFrame({"model_offset_db": [0.0]})) == {}


def test_a_lowered_operator_leaves_the_village_covered_by_the_other():
    """One piece, two operators: A's tests lower A under the threshold, B is not moved."""
    weights = ZonalWeights(village=np.array([0]), cell=np.array([0]), weight=np.ones(1), n=1)
    a = np.array([[6.0]], dtype="float32")  # operator A's margin, dB
    b = np.array([[2.0]], dtype="float32")  # operator B's
    kw = dict(fused=None, tested=None, shifts={"": 0.0}, measured=np.zeros(1, dtype=bool),
              covered=lambda m: (m >= 0).astype("float32"), model_share=True)
    both = shares.piece_sums(weights, margins={"out": (a, b)},
                             offset=np.array([[-10.0], [0.0]]), **kw)
    assert both["model:out"][0] == 1.0  # B still reaches
    assert both["model_only"][0] == 1.0
    one = shares.piece_sums(weights, margins={"out": np.fmax(a, b)},
                            offset=np.array([-10.0]), **kw)
    assert one["model:out"][0] == 0.0  # one offset for both lowers B too


def test_several_grids_read_as_the_best_of_each_moved_by_its_own():
    rng = np.random.default_rng(4)
    n, pieces = 4, 50
    weights = ZonalWeights(village=np.sort(rng.integers(0, n, pieces)),
                           cell=rng.integers(0, 12, pieces), weight=rng.uniform(0.1, 2, pieces),
                           n=n)
    grids = tuple(rng.normal(0, 8, (3, 4)).astype("float32") for _ in range(3))
    off = rng.normal(0, 3, (3, n))
    got = shares.piece_sums(weights, margins={"out": grids}, fused=None, tested=None,
                            offset=off, shifts={"": 0.0}, measured=np.zeros(n, dtype=bool),
                            covered=lambda m: ndtr(m / 6.0), model_share=True)
    want = np.zeros(n)
    for v, c, w in zip(weights.village, weights.cell, weights.weight, strict=True):
        best = max(float(g.reshape(-1)[c]) + off[e, v] for e, g in enumerate(grids))
        want[v] += w * ndtr(best / 6.0)
    np.testing.assert_allclose(got["model:out"], want, rtol=1e-5)
