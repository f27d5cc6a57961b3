"""coverage.itm against itmlogic, an independent Python ITM, on random SRTM profiles.

The harness (profiles cut from ../shared/data/srtm/N21E105.hgt, itmlogic's routines
driven with the same inputs) is ``benchmarks/itm_vs_itmlogic.py``, whose docstring says
where itmlogic departs from the algorithm. Skipped when itmlogic (the ``test`` extra) or
the tile is absent.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO

pytest.importorskip("itmlogic", reason="itmlogic (the test extra) is not installed")


def harness():
    spec = importlib.util.spec_from_file_location(
        "itm_vs_itmlogic", REPO / "benchmarks" / "itm_vs_itmlogic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.TILE.exists():
        pytest.skip(f"SRTM tile {module.TILE} absent (see ../shared/data/README.md)")
    return module


def test_three_hundred_random_srtm_profiles_within_half_a_db_of_itmlogic():
    h = harness()
    paths = h.random_paths(h.TILE, 300)
    lengths = np.array([z.size for z, *_ in paths]) * 90.0
    assert lengths.min() < 5_000 and lengths.max() > 30_000  # short and long paths
    # the receiver's ground agreed (see the harness): every path within 0.5 dB
    diff = h.compare(paths, repeat_last=True)
    assert np.abs(diff).max() <= 0.5, np.abs(diff).max()
    # as cut, the paths where itmlogic reads the height before the receiver differ,
    # and those alone: the comparison can fail
    raw = h.compare(paths[:60], repeat_last=False)
    same_ground = np.array([z[-1] == z[-2] for z, *_ in paths[:60]])
    assert (np.abs(raw[same_ground]) <= 0.5).all()
