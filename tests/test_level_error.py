"""The level-error decomposition of benchmarks/level_error.py on one tiny world."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from coverage.datasets import generate as G
from coverage.datasets.field import FLOOR_DBM, compute_field
from coverage.datasets.worlds import World, WorldPhysics, generate_world

BENCH = Path(__file__).parents[1] / "benchmarks"
#: Strong, wide shadowing: at the villages it is most of the level error.
TINY = World("tiny-hata-mast", 7, 0.3, WorldPhysics(
    propagation="hata", height_convention="mast", diffraction="single", shadow_sigma_db=12.0,
    shadow_corr_m=2000.0, eirp_bias_sd_db=3.0), "tuning")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("level_error", BENCH / "level_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def parts():
    return G._radio_world(TINY.seed, TINY.scale, TINY.physics)


def _field(parts, **kw):
    _, _, terrain, st, _, _, tx, pop, _ = parts
    bias = G.eirp_bias(sorted(tx["operator"].unique()), TINY.physics,
                       G._streams(TINY.seed)["bias"])
    return compute_field(terrain, tx, st.towns, pop.on_dem, G._streams(TINY.seed)["field"],
                         TINY.physics, bias, **kw)


@pytest.mark.slow
def test_the_field_at_some_cells_is_the_whole_fields_there(parts):
    whole = parts[-1]  # the generator's own, cells not given
    cells = np.random.default_rng(0).random(whole.town.shape) < 0.2
    part = _field(parts, cells=cells)
    same = _field(parts, cells=cells, profile_m=parts[2].fine_m)  # the hidden terrain's own
    for key, level in whole.best.items():
        assert np.array_equal(same.best[key], part.best[key])
        assert np.array_equal(part.best[key][cells], level[cells])
        assert (part.best[key][~cells] == np.float32(FLOOR_DBM)).all()
        assert np.array_equal(part.server[key][cells], whole.server[key][cells])
        assert np.array_equal(part.total_mw[key][cells], whole.total_mw[key][cells])
    # without its field, the world's parts are the same draws
    again = G._radio_world(TINY.seed, TINY.scale, TINY.physics, with_field=False)
    assert again[-1] is None
    assert again[6].equals(parts[6])
    assert np.array_equal(again[7].on_dem, parts[7].on_dem)


def test_scored_worlds_are_refused(bench):
    with pytest.raises(SystemExit, match="scored"):
        bench.world_of("score-hata-effective")
    assert bench.world_of("tune-hata-mast").role == "tuning"


def test_published_heights_are_the_dem_repeated(bench, parts):
    terrain = parts[2]
    flat = bench.published_heights(terrain)
    assert flat.shape == terrain.fine_m.shape
    assert np.array_equal(flat[::2, ::2], np.round(terrain.dem_m))
    assert np.array_equal(flat[1::2, 1::2], flat[::2, ::2])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::coverage.errors.RepairWarning")  # the worlds' junk rows
def test_shadowing_off_takes_most_of_the_level_error_away(bench, tmp_path):
    folder = tmp_path / TINY.name
    generate_world(TINY, folder)
    out = bench.world_figures(TINY.name, folder, TINY)  # checks "-" against the files
    shares = out["shares"]
    assert shares["-"]["f1"] == 1.0 and shares["-"]["rms"] == 0.0
    assert shares["shadow"]["rms"] > 0.02
    err = out["errors"]["towers"]
    assert len(err) > 20
    # 12 dB of shadowing correlated over 2 km is most of a village's level error
    sd = err.std()
    assert sd["shadow"] < 0.75 * sd["-"]
    assert sd["shadow+bias+terrain"] < 0.75 * sd["-"]
    # the bias is one number per operator: it moves the mean more than the spread
    assert abs(sd["bias"] - sd["-"]) < 0.25 * sd["-"]
    # what switching the shadowing off takes away: the villages' mean shadowing
    assert (err["-"] - err["shadow"]).std() > 0.3 * TINY.physics.shadow_sigma_db
