"""Covered-share sums over the villages' pieces, and the gather of grid values at pieces."""

import numpy as np
import pytest
from scipy.special import ndtr

from coverage.classify import shares
from coverage.classify.zonal import ZonalWeights, values_at_cells


def test_values_at_cells_fills_off_the_grid_and_keeps_the_dtype():
    flat = np.array([1.0, 2.0, 3.0], dtype="float32")
    got = values_at_cells(flat, np.array([2, -1, 0]), fill=-np.inf)
    np.testing.assert_array_equal(got, [3.0, -np.inf, 1.0])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(values_at_cells(flat, np.array([1, 1]), fill=0.0), [2, 2])
    flags = values_at_cells(np.array([True, False]), np.array([-1, 0, 1]), fill=False)
    assert flags.dtype == bool
    np.testing.assert_array_equal(flags, [False, True, False])


def test_zonal_weights_at_reads_the_grid_at_each_piece():
    w = ZonalWeights(village=np.array([0, 0, 1]), cell=np.array([3, -1, 0]),
                     weight=np.ones(3), n=2)
    grid = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(w.at(grid, fill=9.0), [3.0, 9.0, 0.0])


def _inputs(seed: int, measured: np.ndarray) -> dict:
    rng = np.random.default_rng(seed)
    n, pieces, shape = len(measured), 60, (3, 4)
    weights = ZonalWeights(village=np.sort(rng.integers(0, n, pieces)),
                           cell=rng.integers(-1, shape[0] * shape[1], pieces),
                           weight=rng.uniform(0.1, 2.0, pieces), n=n)
    grids = {k: rng.normal(0, 8, shape).astype("float32") for k in ("out", "in")}
    fused = {k: rng.normal(0, 8, shape).astype("float32") for k in ("out", "in")}
    return dict(weights=weights, margins=grids, fused=fused,
                tested=rng.uniform(size=shape) < 0.5, offset=rng.normal(0, 3, n),
                shifts={"": 0.0, "_strict": -2.0}, measured=measured,
                covered=lambda m: ndtr(m / 6.0), model_share=True)


def _reference(args: dict) -> dict[str, np.ndarray]:
    """The sums piece by piece, in plain loops."""
    w, n = args["weights"], args["weights"].n
    out: dict[str, np.ndarray] = {"decided_weight": np.zeros(n), "model_only": np.zeros(n)}
    for i in range(len(w.village)):
        v, c, wt = w.village[i], w.cell[i], w.weight[i]
        on_grid = c >= 0
        mine = args["measured"][v]
        if mine:
            out["decided_weight"][v] += wt
        for kind, grid in args["margins"].items():
            m = float(grid.reshape(-1)[c]) if on_grid else -np.inf
            f = on_grid and args["fused"][kind].reshape(-1)[c] >= 0
            tested = on_grid and args["tested"].reshape(-1)[c]
            for suffix, shift in args["shifts"].items():
                p = float(args["covered"](np.float32(m) + np.float32(args["offset"][v])
                                          + np.float32(shift)))
                out.setdefault(f"model:{kind}{suffix}", np.zeros(n))[v] += wt * p
                key = f"decided:{kind}{suffix}"
                out.setdefault(key, np.zeros(n))[v] += wt * (f if tested else p) if mine else 0
            if kind == "out":
                out["model_only"][v] += wt * float(args["covered"](m))
    return out


@pytest.mark.parametrize("measured", [[True, False, True, True, False], [True] * 5])
@pytest.mark.parametrize(("chunk", "threads"), [(1 << 20, 1), (7, 1), (7, 2)])
def test_piece_sums_in_chunks_equal_the_plain_sums(monkeypatch, measured, chunk, threads):
    """Some or every village measured; one chunk, many, and many taken by two threads."""
    monkeypatch.setattr(shares, "PIECE_CHUNK", chunk)
    monkeypatch.setattr(shares, "PIECE_THREADS", threads)
    args = _inputs(3, np.array(measured))
    got = shares.piece_sums(**args)
    want = _reference(args)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-9, err_msg=key)


def test_piece_sums_without_pieces_are_zero():
    args = _inputs(4, np.zeros(3, dtype=bool))
    args["weights"] = ZonalWeights(village=np.zeros(0, dtype=int), cell=np.zeros(0, dtype=int),
                                   weight=np.zeros(0), n=3)
    np.testing.assert_array_equal(shares.piece_sums(**args)["model:out"], np.zeros(3))
