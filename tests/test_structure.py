"""The model's structure chosen by the province's tests (blocked cross-validation)."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point

from conftest import X0, Y0, tiny_dem
from coverage.errors import ParameterError
from coverage.io import Raster
from coverage.model import Grid, predict_coverage, sample_points
from coverage.model.crossval import HeldOut
from coverage.model.structure import (
    choose_structure,
    combined_candidates,
    pick_structure,
    structure_candidates,
)
from coverage.params import ModelParams

UTM = CRS.from_epsg(32648)


def _tests_at(true, grid, pts: gpd.GeoSeries, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Operator A's 4G tests at ``pts``: the true level with 2 dB of noise, no service under
    -121 dBm (where a handset leaves the network)."""
    level = sample_points(true.layers["A", "4G"], grid, pts) + rng.normal(0, 2.0, len(pts))
    camped = np.isfinite(level) & (level >= -121.0)
    return gpd.GeoDataFrame(pd.DataFrame({"tech": np.where(camped, "4G", "none"),
                                          "operator": "A",
                                          "rsrp_dbm": np.where(camped, level, np.nan)}),
                            geometry=pts.to_numpy(), crs=UTM)


def _province(truth: ModelParams, n: int = 500, seed: int = 0, ridge_m: float = 30.0):
    # a low ridge at x = 506 km: the handsets behind it still hear the site, diffracted
    dem_arr, transform = tiny_dem()
    dem = Raster(200.0 + (dem_arr - 200.0) * (ridge_m / 700.0), transform, UTM)
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, UTM)
    towers = gpd.GeoDataFrame({"site_id": ["s"], "operator": ["A"], "tech": ["4G"],
                               "height_m": [30.0], "status": ["active"]},
                              geometry=[Point(X0 + 4500, Y0 + 5000)], crs=UTM)
    true = predict_coverage(towers, grid, dem=dem, params=truth)
    rng = np.random.default_rng(seed)
    # half the tests in the open, half behind the ridge (x = 506 km)
    xs = np.r_[rng.uniform(X0 + 200, X0 + 5500, n // 2), rng.uniform(X0 + 6500, X0 + 9000,
                                                                   n - n // 2)]
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs,
                                                     rng.uniform(Y0 + 200, Y0 + 9_800, n),
                                                     strict=True)], crs=UTM)
    return towers, grid, dem, _tests_at(true, grid, pts, rng)


def test_the_tests_find_the_diffraction_the_province_has():
    truth = dataclasses.replace(ModelParams(), diffraction_scale=1.5)
    towers, grid, dem, tests = _province(truth, n=1500, ridge_m=20.0)
    # without calibration (which, apart in shadow, absorbs much of a wrong diffraction
    # loss: then the structures' held-out errors are too close to tell apart)
    # and on 1 km blocks: the province behind the ridge is a few 2 km blocks only, too few
    # for the paired block differences to clear two standard errors
    given = ModelParams(calibrate=False, cv_block_m=1000.0)
    chosen, choice = choose_structure(towers, grid, tests, given, dem=dem)
    assert choice.name == "diffraction_scale=1.5"
    assert chosen.diffraction_scale == 1.5
    assert choice.cv_error["diffraction_scale=1.5"] < choice.cv_error["as given"]


def test_a_structure_that_lifts_the_tests_without_service_is_refused():
    # the textbook loses too much behind the ridge: half the diffraction fits the tests
    # better on the whole, but it is worse at the tests that found no service
    truth = dataclasses.replace(ModelParams(), diffraction_scale=0.5)
    towers, grid, dem, tests = _province(truth, n=1500)
    given = ModelParams(calibrate=False, cv_block_m=1000.0)
    chosen, choice = choose_structure(towers, grid, tests, given, dem=dem)
    assert choice.cv_error["diffraction_scale=0.5"] < 0.5 * choice.cv_error["as given"]
    assert choice.name == "as given"
    assert chosen == given


def _held(errors, block=None):
    errors = np.asarray(errors, float)
    return HeldOut(errors, np.arange(len(errors)) // 2 if block is None else block)


def test_the_pick_guards_the_tests_without_service():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 200)
    unserved = np.arange(200) < 50
    lifts = base - 0.1  # better everywhere but at the unserved tests
    lifts[unserved] = base[unserved] + 0.01
    lowers = base - 0.05  # better everywhere, less so
    held = {"as given": _held(base), "lifts": _held(lifts), "lowers": _held(lowers)}
    assert pick_structure(held, unserved) == "lowers"
    assert pick_structure({"as given": _held(base), "lifts": _held(lifts)},
                          unserved) == "as given"
    # no better beyond chance: the defaults stay
    noisy = base + rng.normal(0, 0.05, 200)
    noisy[unserved] = base[unserved]
    assert pick_structure({"as given": _held(base), "noisy": _held(noisy)},
                          unserved) == "as given"


def test_the_second_round_combines_each_dimensions_best_change():
    cands = structure_candidates(ModelParams(), dem=True, landcover=True)
    errors = {"as given": 0.20, "hata_height=above_receiver": 0.18,
              "diffraction_scale=0.5": 0.17, "diffraction_scale=1.5": 0.21,
              "diffraction=los": 0.175, "foliage_loss_db=0": 0.201,
              "foliage_loss_db=12": 0.19, "path_loss=itm": 0.10}
    more = combined_candidates(cands, errors)
    assert set(more) == {
        "hata_height=above_receiver + diffraction_scale=0.5",
        "hata_height=above_receiver + foliage_loss_db=12",
        "diffraction_scale=0.5 + foliage_loss_db=12",
        "hata_height=above_receiver + diffraction_scale=0.5 + foliage_loss_db=12"}
    assert more["hata_height=above_receiver + diffraction_scale=0.5 + foliage_loss_db=12"] == {
        "hata_height": "above_receiver", "diffraction_scale": 0.5, "foliage_loss_db": 12.0,
        "foliage_db_per_decade": 10.0}
    # a change within 1% of the defaults is not kept; one dimension alone combines nothing
    assert combined_candidates(cands, {**errors, "hata_height=above_receiver": 0.199,
                                       "foliage_loss_db=12": 0.21}) == {}
    assert combined_candidates(cands, {k: v for k, v in errors.items() if k != "as given"}) == {}


def _mesa_province(truth: ModelParams, n: int = 1200, seed: int = 0):
    """A mast on a 250 m hill over a plain; tests on a mesa 7-10 km out and far behind a
    900 m ridge (no service there whatever the height)."""
    res = 100.0
    xx, yy = np.meshgrid((np.arange(200) + 0.5) * res, (np.arange(100) + 0.5) * res)
    z = (200.0 + 250.0 * np.exp(-((xx - 2000.0) ** 2 + (yy - 5000.0) ** 2) / 1200.0**2)
         + 60.0 / (1 + np.exp(-(xx - 9000.0) / 150.0)) / (1 + np.exp((xx - 12_000.0) / 150.0))
         + 900.0 * np.exp(-(((xx - 14_000.0) / 500.0) ** 2)))
    dem = Raster(z.astype("float32"), from_origin(X0, Y0 + 10_000, res, res), UTM)
    grid = Grid.covering((X0, Y0, X0 + 20_000, Y0 + 10_000), res, UTM)
    towers = gpd.GeoDataFrame({"site_id": ["s"], "operator": ["A"], "tech": ["4G"],
                               "height_m": [30.0], "status": ["active"]},
                              geometry=[Point(X0 + 2000, Y0 + 5000)], crs=UTM)
    true = predict_coverage(towers, grid, dem=dem, params=truth)
    rng = np.random.default_rng(seed)
    xs = np.r_[rng.uniform(X0 + 9300, X0 + 11_700, n - n // 3),
               rng.uniform(X0 + 16_000, X0 + 19_800, n // 3)]
    pts = gpd.GeoSeries([Point(x, y) for x, y in zip(xs, rng.uniform(Y0 + 200, Y0 + 9_800, n),
                                                     strict=True)], crs=UTM)
    return towers, grid, dem, _tests_at(true, grid, pts, rng)


@pytest.mark.parametrize("truth", ["effective", "mast"])
def test_the_tests_find_the_effective_height_where_the_province_has_it(truth):
    """Where the truth takes Okumura's effective height (the mast 250 m over the plain's
    mean ground), the candidate is offered and chosen; where it takes the mast height,
    the textbook stays."""
    towers, grid, dem, tests = _mesa_province(ModelParams(hata_height=truth))
    given = ModelParams(calibrate=False, cv_block_m=1000.0)
    chosen, choice = choose_structure(towers, grid, tests, given, dem=dem)
    assert "hata_height=effective" in choice.cv_error
    if truth == "mast":
        assert choice.name == "as given" and chosen == given
    else:
        assert chosen.hata_height == "effective"
        assert choice.name.startswith("hata_height=effective")
        assert choice.cv_error["hata_height=effective"] < 0.1 * choice.cv_error["as given"]


def test_the_textbook_defaults_stay_when_nothing_does_better():
    towers, grid, dem, tests = _province(ModelParams(), seed=1, ridge_m=10.0)
    chosen, choice = choose_structure(towers, grid, tests, ModelParams(), dem=dem)
    assert choice.name == "as given"
    assert chosen == ModelParams()


def test_candidates_follow_the_inputs():
    p = ModelParams()
    bare = structure_candidates(p, dem=False, landcover=False)
    assert not any("diffraction" in k or "foliage" in k for k in bare)
    # the Hata height readings beside the one given; the effective height needs a DEM
    assert [k for k in bare if k.startswith("hata_height")] == ["hata_height=above_receiver"]
    full = structure_candidates(p, dem=True, landcover=True)
    assert [k for k in full if k.startswith("hata_height")] == [
        "hata_height=above_receiver", "hata_height=effective"]
    assert [k for k in structure_candidates(ModelParams(hata_height="effective"), dem=True,
                                            landcover=False)
            if k.startswith("hata_height")] == ["hata_height=mast", "hata_height=above_receiver"]
    with pytest.raises(ParameterError, match=r"hata_height = 'efective'.*did you mean "
                                             r"'effective'.*'mast', 'above_receiver' or "
                                             r"'effective'"):
        ModelParams(hata_height="efective")
    assert {"diffraction_scale=0.5", "diffraction=los", "foliage_loss_db=0"} <= set(full)
    # delta-Bullington is a setting, not a candidate (it double counts over Hata)
    assert "diffraction=delta_bullington" not in full
    # the diffraction methods beside the one given
    delta = structure_candidates(ModelParams(diffraction="delta_bullington"), dem=True,
                                 landcover=False)
    assert [k for k in delta if k.startswith("diffraction=")] == [
        "diffraction=bullington", "diffraction=los"]
    # foliage: none and twice the default 6 dB; with the 12 dB option, none and 6 dB
    assert [k for k in full if "foliage" in k] == ["foliage_loss_db=0", "foliage_loss_db=12"]
    opt = structure_candidates(ModelParams(foliage_loss_db=12.0), dem=True, landcover=True)
    assert [k for k in opt if "foliage" in k] == ["foliage_loss_db=0", "foliage_loss_db=6"]
    with pytest.raises(Exception, match="diffraction_scale"):
        ModelParams(diffraction_scale=-1.0)
    with pytest.raises(ParameterError, match="'bullington', 'delta_bullington' or 'los'"):
        ModelParams(diffraction="deygout")


def test_tests_in_the_open_do_not_lift_the_valley_behind_the_ridge():
    from coverage.model import fuse_measurements

    towers, grid, dem, _ = _province(ModelParams(), ridge_m=30.0)
    model = predict_coverage(towers, grid, dem=dem, params=ModelParams())
    rng = np.random.default_rng(4)
    # 300 tests in the open, where the model is 8 dB too pessimistic
    xy = np.column_stack([rng.uniform(X0 + 1000, X0 + 5500, 300),
                          rng.uniform(Y0 + 500, Y0 + 9500, 300)])
    pts = gpd.GeoSeries([Point(*p) for p in xy], crs=UTM)
    level = sample_points(model.layers["A", "4G"], grid, pts) + 8.0 + rng.normal(0, 3, 300)
    tests = gpd.GeoDataFrame(pd.DataFrame({"tech": "4G", "operator": "A", "rsrp_dbm": level}),
                             geometry=pts.to_numpy(), crs=UTM)
    fused = fuse_measurements(model, tests, radius_m=0.0)
    choice = fused.choices["fusion"]
    assert choice["calibration_weight"] > 0  # the open area's error is real: corrected
    open_cell = (X0 + 3000, Y0 + 9000)
    valley = (X0 + 7500, Y0 + 5000)  # behind the ridge, 2 km beyond the last test
    assert sample_points(model.layers["A", "4G"], grid, gpd.GeoSeries(
        [Point(*valley)], crs=UTM))[0] < -110  # the model says no service there

    def at(s, p):
        return sample_points(s.layers["A", "4G"], grid, gpd.GeoSeries([Point(*p)], crs=UTM))[0]

    assert at(fused, open_cell) > at(model, open_cell) + 4
    lifted = at(fused, valley)
    assert np.isnan(lifted) or lifted <= at(model, valley) + 0.5


@pytest.mark.parametrize("path_loss", ["hata", "itm"])
def test_predicting_only_some_cells_gives_the_whole_grids_levels_there(path_loss):
    towers, grid, dem, _ = _province(ModelParams(), n=10)
    params = ModelParams(resolution_m=200.0, path_loss=path_loss)
    coarse = Grid.covering(grid.bounds, 200.0, grid.crs)
    whole = predict_coverage(towers, coarse, dem=dem, params=params)
    rng = np.random.default_rng(4)
    # a few cells everywhere, and every cell near the mast (ITM's short paths)
    row, col, _ = coarse.index(np.array([X0 + 4500.0]), np.array([Y0 + 5000.0]))
    near = [(row[0] + dr) * coarse.shape[1] + col[0] + dc for dr in range(-6, 7)
            for dc in range(-6, 7)]
    cells = np.union1d(rng.choice(coarse.shape[0] * coarse.shape[1], 60, replace=False), near)
    some = predict_coverage(towers, coarse, dem=dem, params=params, only=cells)
    key = ("A", "4G")
    np.testing.assert_array_equal(some.layers[key].reshape(-1)[cells],
                                  whole.layers[key].reshape(-1)[cells])
    np.testing.assert_array_equal(some.distance_m[key].reshape(-1)[cells],
                                  whole.distance_m[key].reshape(-1)[cells])
    others = np.setdiff1d(np.arange(coarse.shape[0] * coarse.shape[1]), cells)
    assert np.isnan(some.layers[key].reshape(-1)[others]).all()
    assert np.isfinite(whole.layers[key].reshape(-1)[cells]).sum() > 100


def test_the_choice_is_the_same_in_forked_workers():
    from coverage.engine import Engine

    truth = dataclasses.replace(ModelParams(), diffraction_scale=0.5)
    towers, grid, dem, tests = _province(truth, n=600, seed=2)
    given = ModelParams(calibrate=False)
    _, here = choose_structure(towers, grid, tests, given, dem=dem)
    _, forked = choose_structure(towers, grid, tests, given, dem=dem,
                                 engine=Engine(processes=2))
    assert forked == here
    assert len(here.cv_error) >= 4


def test_candidates_scored_from_one_sweep_score_as_each_alone(monkeypatch):
    import coverage.model.structure as structure

    truth = dataclasses.replace(ModelParams(), diffraction_scale=1.5,
                                hata_height="above_receiver")
    towers, grid, dem, tests = _province(truth, n=1500, ridge_m=200.0)
    given = ModelParams(calibrate=False, cv_block_m=1000.0)
    _, shared = choose_structure(towers, grid, tests, given, dem=dem)
    monkeypatch.setattr(structure, "shares_sweep", lambda a, b: False)
    _, apart = choose_structure(towers, grid, tests, given, dem=dem)
    assert shared == apart  # the choice, and every candidate's error to the bit
    assert any(" + " in k for k in shared.cv_error)  # with a second round
    assert len(shared.cv_error) >= 6


def test_the_newton_scoring_fits_choose_as_lbfgs_fits(monkeypatch):
    """The candidates' calibration fits by Newton's method give the choice and, within
    L-BFGS-B's tolerance, the errors that L-BFGS-B's fits (Newton's fallback) give."""
    from coverage import calibrate

    truth = dataclasses.replace(ModelParams(), diffraction_scale=1.5)
    towers, grid, dem, tests = _province(truth, n=800, seed=3, ridge_m=20.0)
    given = ModelParams(cv_block_m=1000.0, min_calibration_tests=10)  # calibrated
    found = []
    real = calibrate._newton

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        found.append(got is not None)
        return got

    monkeypatch.setattr(calibrate, "_newton", spy)
    _, newton = choose_structure(towers, grid, tests, given, dem=dem)
    assert found and all(found)
    monkeypatch.setattr(calibrate, "_newton", lambda *args, **kwargs: None)  # L-BFGS-B only
    _, lbfgs = choose_structure(towers, grid, tests, given, dem=dem)
    assert newton.name == lbfgs.name
    assert newton.cv_error.keys() == lbfgs.cv_error.keys()
    for k, err in lbfgs.cv_error.items():
        assert newton.cv_error[k] == pytest.approx(err, rel=1e-4)
