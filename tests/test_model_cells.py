"""Surfaces at a set of cells: fusion there equals the whole grid's fusion read there."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from conftest import X0, Y0
from coverage.classify import (
    classify_villages,
    fuse_for,
    place_for_classification,
    village_metrics,
)
from coverage.classify.metrics import place_villages
from coverage.io import Raster
from coverage.model import (
    CoverageSurfaces,
    Grid,
    GridCells,
    calibration,
    fuse_measurements,
    observations,
    predict_coverage,
    sample_points,
    surfaces_at,
)
from coverage.model import cells as cells_mod
from coverage.model.cells import CellValues, values_at
from coverage.params import ModelParams

CRS_UTM = CRS.from_epsg(32648)


@pytest.fixture(scope="module")
def grid():
    return Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, CRS_UTM)


@pytest.fixture(scope="module")
def model(grid):
    rows = []
    for k, (x, y) in enumerate([(X0 + 2500, Y0 + 5000), (X0 + 9000, Y0 + 2500),
                                (X0 + 7000, Y0 + 8500)]):
        for op, techs in (("A", ("4G", "3G")), ("B", ("4G", "2G"))):
            for tech in techs:
                rows.append({"site_id": f"s{k}{op}", "operator": op, "tech": tech,
                             "height_m": 30.0, "status": "active", "geometry": Point(x, y)})
    towers = gpd.GeoDataFrame(rows, crs=CRS_UTM)
    return predict_coverage(towers, grid, params=ModelParams(max_range_km=8.0))


@pytest.fixture(scope="module")
def tests(grid, model):
    """Tests with levels, without service and fallen back to 3G, some on the grid's edge."""
    rng = np.random.default_rng(3)
    n = 900
    x = rng.uniform(X0, X0 + 12_000, n)
    y = rng.uniform(Y0, Y0 + 10_000, n)
    x[:40] = X0 + 50.0  # the first column of cells: carried cells fall off the grid
    op = rng.choice(["A", "B"], n)
    tech = np.where(rng.uniform(size=n) < 0.1, "none",
                    np.where((op == "A") & (rng.uniform(size=n) < 0.15), "3G", "4G"))
    pts = gpd.GeoSeries([Point(a, b) for a, b in zip(x, y, strict=True)], crs=CRS_UTM)
    level = np.array([sample_points(model.layers[(o, "4G")], grid, pts[i:i + 1])[0]
                      for i, o in enumerate(op)])
    rsrp = np.where(tech == "none", np.nan,
                    np.nan_to_num(level, nan=-125.0) - 6 + rng.normal(0, 6, n))
    lonlat = pts.to_crs(4326)
    return pd.DataFrame({"lon": lonlat.x, "lat": lonlat.y, "operator": op, "tech": tech,
                         "rsrp_dbm": rsrp, "download_mbps": rng.uniform(0.5, 40, n),
                         "upload_mbps": 5.0, "latency_ms": 40.0})


def some_cells(grid, tests, share, seed=0):
    """A random share of the grid's cells, with every cell holding a test."""
    rng = np.random.default_rng(seed)
    size = grid.shape[0] * grid.shape[1]
    picked = np.flatnonzero(rng.uniform(size=size) < share)
    return GridCells.of(grid, picked, observations.TestCells.locate(tests, grid).ucell)


def test_grid_cells_number_a_set_and_gather_at_it(grid):
    cells = GridCells.of(grid, np.array([5, 3, 3, -1]), np.array([9000, 5]))
    assert cells.flat.tolist() == [3, 5, 9000]
    assert cells.compact.shape == (1, 3)
    assert cells.codes(np.array([9000, 3, 4, -1, 5])).tolist() == [2, 0, -1, -1, 1]
    assert cells.contains(np.array([3, -1])) and not cells.contains(np.array([4]))
    layer = np.arange(grid.shape[0] * grid.shape[1], dtype="float32").reshape(grid.shape)
    assert cells.gather(layer).tolist() == [[3.0, 5.0, 9000.0]]


@pytest.mark.parametrize("params", [
    ModelParams(max_range_km=8.0, select_fusion=False),                 # every stage
    ModelParams(max_range_km=8.0, select_fusion=False, krige=False),
    ModelParams(max_range_km=8.0, select_fusion=False, krige_lifts=False),
])
def test_fusion_at_cells_equals_the_whole_grids_fusion_there(grid, model, tests, params):
    margins = {"out": {"4G": -110.0, "3G": -105.0}, "in": {"4G": -100.0, "3G": -95.0}}
    whole = fuse_measurements(model, tests, radius_m=250.0, params=params,
                              estimate_margins=margins)
    cells = some_cells(grid, tests, 0.4)
    part = fuse_measurements(model, tests, radius_m=250.0, params=params,
                             estimate_margins=margins, cells=cells)
    assert part.grid.shape == (1, cells.size)
    assert set(part.layers) == set(whole.layers)
    moved = 0
    for key, layer in whole.layers.items():
        np.testing.assert_array_equal(part.layers[key], cells.gather(layer))
        moved += int(np.sum(cells.gather(layer) != cells.gather(model.layers[key])))
    assert moved > 0  # the fusion did change the layers at the set's cells
    for kind in margins:
        np.testing.assert_array_equal(part.estimated_margin[kind],
                                      cells.gather(whole.estimated_margin[kind]))
    assert whole.measured["tests"].sum() == len(tests) and not part.measured
    assert part.calibration.keys() == whole.calibration.keys()
    # the server distances are the model's, shared, not copied
    assert whole.distance_m[("A", "4G")] is model.distance_m[("A", "4G")]
    np.testing.assert_array_equal(part.distance_m[("A", "4G")],
                                  cells.gather(model.distance_m[("A", "4G")]))


def test_fusion_at_cells_needs_the_tests_cells(grid, model, tests):
    with pytest.raises(ValueError, match="cells that hold tests"):
        fuse_measurements(model, tests, cells=GridCells.of(grid, np.array([0, 1])))


def test_surfaces_at_read_layers_when_looked_up(grid, model):
    cells = GridCells.of(grid, np.array([0, 17, 4000]))
    view = surfaces_at(model, cells)
    assert view.grid.shape == (1, 3)
    for key, layer in model.layers.items():
        np.testing.assert_array_equal(view.layers[key], cells.gather(layer))
    margin = view.margin({"4G": -110.0})
    np.testing.assert_array_equal(margin, cells.gather(model.margin({"4G": -110.0})))


def villages_and_people(grid):
    """Villages across the grid (some cut by the set's gaps), and a raster of people."""
    rows = []
    for j in range(4):
        for i in range(5):
            x, y = X0 + 300 + i * 2300.0, Y0 + 200 + j * 2400.0
            rows.append({"village_id": f"v{j}{i}", "commune": f"c{i // 2}",
                         "province": "P", "geometry": box(x, y, x + 2150.0, y + 2330.0)})
    villages = gpd.GeoDataFrame(rows, crs=CRS_UTM)
    rng = np.random.default_rng(1)
    people = rng.gamma(0.5, 4.0, grid.shape).astype("float32")
    return villages, Raster(people, from_origin(X0, Y0 + 10_000, 100.0, 100.0), CRS_UTM)


@pytest.mark.parametrize("zonal", ["exact", "fast"])
def test_metrics_from_cells_equal_metrics_from_the_whole_fused_grid(grid, model, tests,
                                                                   zonal):
    villages, population = villages_and_people(grid)
    dense = fuse_for(model, tests)  # whole grids, read at the villages' cells
    a = village_metrics(villages, model, measurements=tests, population=population,
                        zonal=zonal, fused=dense)
    b = village_metrics(villages, model, measurements=tests, population=population,
                        zonal=zonal)  # fused at the villages' and tests' cells only
    assert (a["n_tests"] > 0).sum() >= 15
    pd.testing.assert_frame_equal(a, b)


def test_fast_weights_read_an_aligned_raster_at_the_pieces(grid, monkeypatch):
    """A raster on the grid's lattice (wider, shifted by whole cells) is read at the pieces;
    the people and weights are those of spreading it onto the grid, bit for bit."""
    from coverage.classify import zonal

    villages, _ = villages_and_people(grid)
    rng = np.random.default_rng(5)
    wide = rng.gamma(0.5, 4.0, (grid.shape[0] + 7, grid.shape[1] + 4)).astype("float32")
    wide[10:14, 20:30] = np.nan  # nodata inside the grid
    raster = Raster(wide, from_origin(X0 - 300.0, Y0 + 10_000 + 200.0, 100.0, 100.0), CRS_UTM)
    assert zonal.aligned_shift(raster, grid) == (2, 3)
    cut = Raster(wide[5:, :], from_origin(X0 - 300.0, Y0 + 10_000 - 300.0, 100.0, 100.0),
                 CRS_UTM)  # a raster that stops inside the grid: cells off it
    for r in (raster, cut):
        read = zonal.zonal_weights(villages, grid, r, method="fast")
        monkeypatch.setattr(zonal, "aligned_shift", lambda *a: None)
        spread = zonal.zonal_weights(villages, grid, r, method="fast")
        monkeypatch.undo()
        np.testing.assert_array_equal(read.village, spread.village)
        np.testing.assert_array_equal(read.cell, spread.cell)
        np.testing.assert_array_equal(read.weight, spread.weight)  # bit for bit
        np.testing.assert_array_equal(read.people, spread.people)
        np.testing.assert_array_equal(read.valid_share, spread.valid_share)
    half = Raster(wide, from_origin(X0 - 250.0, Y0 + 10_200, 100.0, 100.0), CRS_UTM)
    assert zonal.aligned_shift(half, grid) is None


def test_priors_in_chunks_of_cells_equal_one_pass(grid, model, tests, monkeypatch):
    """The residents' priors read the model in chunks of cells (villages across chunk
    edges, tests in every chunk): the same figures as one pass, up to rounding (1e-16,
    which the prior strengths' optimiser carries to about 1e-11)."""
    from coverage.classify import residents

    villages, population = villages_and_people(grid)
    one = village_metrics(villages, model, measurements=tests, population=population,
                          zonal="fast")
    monkeypatch.setattr(residents, "PRIOR_CHUNK_CELLS", 700)  # about 12 chunks
    chunked = village_metrics(villages, model, measurements=tests, population=population,
                              zonal="fast")
    for col in ("no_service_prior", "slow_prior", "no_service_share",
                "no_service_probability", "slow_probability"):
        assert one[col].notna().any()
    pd.testing.assert_frame_equal(one, chunked, check_exact=False, rtol=1e-9, atol=1e-12)


def test_values_held_at_cells_read_as_the_whole_array_there(grid):
    whole = np.random.default_rng(5).normal(size=grid.shape).astype("float32")
    cells = GridCells.of(grid, np.array([7, 3, 9000, 11_999]))
    held = CellValues.of(whole, cells)
    for flat in (np.array([9000, 3, 3]), cells.flat, np.zeros(0, np.int64)):
        got = values_at(held, flat)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, values_at(whole, flat))
    np.testing.assert_array_equal(cells.gather(held), cells.gather(whole))
    with pytest.raises(ValueError, match="not among the 4 cells"):
        values_at(held, np.array([3, 4]))
    with pytest.raises(ValueError):  # read-only: nobody changes what others read
        held.values[0] = 1.0


def test_held_distances_bring_the_whole_grids_trends(grid, model, tests):
    cells = some_cells(grid, tests, 0.2)
    held = calibration.hold_distances(model, cells)
    assert held.layers is model.layers and isinstance(model.distance_m, dict)
    obs = observations.layer_observations(model, tests, ("4G", "3G", "2G"))
    whole_trends = calibration.open_trends(model, obs)
    held_trends = calibration.open_trends(held, obs)
    assert whole_trends.keys() == held_trends.keys() and len(whole_trends) >= 3
    for key, (centres, levels) in whole_trends.items():
        np.testing.assert_array_equal(held_trends[key][0], centres)
        np.testing.assert_array_equal(held_trends[key][1], levels)
    pd.testing.assert_frame_equal(
        observations.layer_observations(held, tests, ("4G", "3G", "2G")), obs)
    fits = calibration.fit_corrections(obs, min_tests=20, trends=whole_trends)
    flat = cells.flat[::7]
    for key in fits:
        np.testing.assert_array_equal(calibration.calibrated_at(held, key, fits, flat),
                                      calibration.calibrated_at(model, key, fits, flat))
    with pytest.raises(ValueError, match="held at cells only"):
        calibration.calibrated_layer(held, next(iter(fits)), fits)
    with pytest.raises(ValueError, match="held at cells already"):
        calibration.hold_distances(held, cells)
    assert held.copy().distance_m is held.distance_m  # read-only, shared


@pytest.mark.parametrize("zonal", ["exact", "fast"])
def test_metrics_with_distances_held_at_the_placement_equal_the_whole_grids(
        grid, model, tests, zonal):
    villages, population = villages_and_people(grid)
    whole = village_metrics(villages, model, measurements=tests, population=population,
                            zonal=zonal)
    placed = place_villages(villages, grid, measurements=tests, population=population,
                            zonal=zonal)
    assert placed.method == zonal and placed.cells.size < grid.shape[0] * grid.shape[1]
    held = calibration.hold_distances(model, placed.cells)
    pd.testing.assert_frame_equal(
        village_metrics(villages, held, measurements=tests, population=population,
                        zonal=placed), whole)
    # distances held at fewer cells than the classification reads: an error, not NaN
    few = calibration.hold_distances(model, GridCells(grid, placed.cells.flat[::2]))
    with pytest.raises(ValueError, match="not among"):
        village_metrics(villages, few, measurements=tests, population=population,
                        zonal=placed)
    with pytest.raises(ValueError, match="other villages"):
        village_metrics(villages.iloc[:3], held, measurements=tests, zonal=placed)


def test_classes_with_distances_held_at_the_placement_equal_the_whole_grids(grid, model,
                                                                           tests):
    villages, population = villages_and_people(grid)
    villages = villages.to_crs(4326)  # the fast method places them in the grid's CRS
    whole = classify_villages(villages, model, measurements=tests, population=population,
                              zonal="fast")
    placed = place_for_classification(villages, model, measurements=tests,
                                      population=population, zonal="fast")
    held = calibration.hold_distances(model, placed.cells)
    assert isinstance(held, CoverageSurfaces) and placed.method == "fast"
    got = classify_villages(villages, held, measurements=tests, population=population,
                            zonal=placed)
    pd.testing.assert_frame_equal(got, whole)


@pytest.mark.parametrize("share", [0.9, 0.01])  # a lookup of every grid cell; a search
def test_codes_are_the_positions_a_binary_search_finds(share, monkeypatch):
    g = Grid(from_origin(X0, Y0, 100.0, 100.0), (300, 400), CRS_UTM)
    rng = np.random.default_rng(3)
    flat = np.flatnonzero(rng.random(300 * 400) < share)
    cells = GridCells(g, flat)
    assert (cells._lookup is None) == (share < 1 / cells_mod.LOOKUP_MAX_SPARSITY)
    asked = rng.integers(-5, 300 * 400 + 5, 150_000)  # some off the grid on either side
    pos = np.searchsorted(flat, asked).clip(0, len(flat) - 1)
    want = np.where((asked >= 0) & (flat[pos] == asked), pos, -1)
    assert np.array_equal(cells.codes(asked), want)
    inside = asked[(asked >= 0) & (asked < 300 * 400)]
    assert np.array_equal(cells.codes(inside), want[(asked >= 0) & (asked < 300 * 400)])
    assert cells.codes(np.array([], dtype=np.int64)).shape == (0,)


def test_sorted_search_is_searchsorted():
    rng = np.random.default_rng(4)
    hay = np.sort(rng.integers(0, 10**9, 50_000))
    needles = rng.integers(-10, 10**9 + 10, cells_mod.SORT_MIN_NEEDLES + 7)
    assert np.array_equal(cells_mod.sorted_search(hay, needles), np.searchsorted(hay, needles))
    few = needles[:10]
    assert np.array_equal(cells_mod.sorted_search(hay, few), np.searchsorted(hay, few))
