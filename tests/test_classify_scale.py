"""The national-scale path: rasterised village ids agree with exact cell fractions."""

from __future__ import annotations

import numpy as np
import pytest

from coverage.classify import classify_naive, classify_villages
from coverage.classify.zonal import zonal_weights
from coverage.datasets.national import national_input


@pytest.fixture(scope="module")
def small_nation():
    return national_input(120, 30_000, seed=7, village_km2=1.0)


def test_fast_zonal_matches_exact_totals_and_locates_every_test_alike(small_nation):
    d = small_nation
    exact = classify_villages(d.villages, d.surfaces, measurements=d.measurements,
                              population=d.population, zonal="exact")
    fast = classify_villages(d.villages, d.surfaces, measurements=d.measurements,
                             population=d.population, zonal="fast")
    assert list(fast["village_id"]) == list(exact["village_id"])
    # tests near edges are checked by point in polygon: the same villages
    assert (fast["n_tests"].to_numpy() == exact["n_tests"].to_numpy()).all()
    # the id raster gives edge cells wholly to one side: totals kept, villages close
    assert fast["population"].sum() == pytest.approx(exact["population"].sum(), rel=0.01)
    rel = np.abs(fast["population"] / exact["population"] - 1)
    assert np.median(rel) < 0.05
    assert np.abs(fast["pop_covered_share"] - exact["pop_covered_share"]).mean() < 0.02
    assert (fast["class"] == exact["class"]).mean() >= 0.95


def test_zonal_weights_keep_every_village(small_nation):
    d = small_nation
    for method in ("exact", "fast"):
        w = zonal_weights(d.villages, d.grid, d.population, method=method)
        assert w.n == len(d.villages)
        assert (w.total() > 0).all()  # every village holds people somewhere
        assert np.isfinite(w.weight).all() and (w.weight > 0).all()


def test_a_village_smaller_than_a_cell_still_gets_a_piece(small_nation):
    d = small_nation
    tiny = d.villages.iloc[[0]].copy()
    centre = tiny.geometry.to_crs(d.grid.crs).representative_point()
    tiny["geometry"] = centre.buffer(20).to_crs(4326)  # 20 m radius: smaller than a cell
    w = zonal_weights(tiny, d.grid, None, method="fast")
    assert len(w.village) == 1
    assert w.weight[0] == pytest.approx(np.pi * 20**2 / 100**2, rel=0.02)


def test_naive_discs_cover_by_radius_only(small_nation):
    d = small_nation
    out = classify_naive(d.villages, d.towers, d.grid, population=d.population,
                         radius_km={"2G": 0.1, "3G": 0.1, "4G": 0.1, "5G": 0.1})
    wide = classify_naive(d.villages, d.towers, d.grid, population=d.population,
                          radius_km={"2G": 50.0, "3G": 50.0, "4G": 50.0, "5G": 50.0})
    assert (wide["class"] == "served").all()  # discs everywhere, no access table
    assert (out["pop_covered_share"] <= wide["pop_covered_share"]).all()
    assert (out["class"] == "unavailable").mean() > 0.5


def test_tests_as_a_lon_lat_table_classify_like_points(small_nation):
    import geopandas as gpd
    import pandas as pd

    from coverage.errors import InputError

    d = small_nation
    table = d.measurements
    assert not isinstance(table, gpd.GeoDataFrame)  # the generator keeps no shapely points
    points = gpd.GeoDataFrame(table.drop(columns=["lon", "lat"]),
                              geometry=gpd.points_from_xy(table["lon"], table["lat"]),
                              crs=4326).to_crs(d.grid.crs)  # another CRS, on purpose
    a = classify_villages(d.villages, d.surfaces, measurements=table, population=d.population,
                          zonal="fast")
    b = classify_villages(d.villages, d.surfaces, measurements=points, population=d.population,
                          zonal="fast")
    assert (a["n_tests"] > 0).any()
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"),
                                  check_exact=False, atol=1e-6)
    with pytest.raises(InputError, match="'lon' and 'lat'"):
        classify_villages(d.villages, d.surfaces, measurements=table.drop(columns=["lat"]),
                          population=d.population)


def test_fused_surfaces_handed_over_give_the_same_classes_and_plan_demand(small_nation):
    import pandas as pd

    from coverage.classify import fuse_for
    from coverage.model import fuse_measurements, measurement_xy
    from coverage.params import get_profile
    from coverage.plan.demand import demand_pairs

    d = small_nation
    profile = get_profile("vn-2025")
    fused = fuse_for(d.surfaces, d.measurements, profile,
                     xy=measurement_xy(d.measurements, d.surfaces.grid.crs))
    a = classify_villages(d.villages, d.surfaces, measurements=d.measurements,
                          population=d.population, zonal="fast")
    b = classify_villages(d.villages, d.surfaces, measurements=d.measurements,
                          population=d.population, zonal="fast", fused=fused)
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    # the plan takes the same fused surfaces instead of fusing the tests again
    again = fuse_measurements(d.surfaces, d.measurements, radius_m=profile.measurement_radius_m)
    for key, layer in fused.layers.items():
        np.testing.assert_array_equal(layer, again.layers[key])
    assert demand_pairs(a, fused, population=d.population, profile=profile).need_cells().size


def _with_tiny_village(d):
    """The villages with the first one shrunk to a 20 m disc holding no cell centre."""
    villages = d.villages.copy()
    centre = villages.geometry.iloc[[0]].to_crs(d.grid.crs).representative_point()
    villages.loc[villages.index[0], "geometry"] = centre.buffer(20).to_crs(4326).iloc[0]
    return villages


@pytest.mark.parametrize("tiny_village", [False, True])
def test_fast_weights_in_chunks_equal_one_pass(small_nation, monkeypatch, tiny_village):
    """Pieces read a few at a time give the same pieces, people and valid shares."""
    from coverage.classify import zonal

    d = small_nation
    villages = _with_tiny_village(d) if tiny_village else d.villages
    whole = zonal_weights(villages, d.grid, d.population, method="fast")
    monkeypatch.setattr(zonal, "PIECE_CHUNK", 997)  # many chunks, none aligned to rows
    chunked = zonal_weights(villages, d.grid, d.population, method="fast")
    assert len(whole.cell) > 5 * 997
    for name in ("village", "cell", "weight", "people", "valid_share", "ids"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))


def test_the_benchmarks_held_tests_give_the_compacted_table_back(small_nation):
    """The national benchmark holds the compacted tests through the model as codes."""
    import importlib.util
    import sys
    from pathlib import Path

    import pandas as pd

    from coverage.engine import compact_measurements

    path = Path(__file__).parents[1] / "benchmarks" / "national" / "bench.py"
    spec = importlib.util.spec_from_file_location("national_bench", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    d = small_nation
    table = d.measurements.assign(source="tests")
    compacted = compact_measurements([table.iloc[:9000], table.iloc[9000:]], d.grid,
                                     points=False)
    compacted.loc[3, "operator"] = None  # a test without an operator stays without one
    held = bench.HeldTests.of(compacted)
    assert set(held.labels) == {"tech", "operator", "source"} and held.timestamp is not None
    back = held.frame()
    pd.testing.assert_frame_equal(back, compacted)
    assert pd.isna(back.loc[3, "operator"])
    kept = (sum(v.nbytes for v in held.values.values())
            + sum(c.nbytes for c, _ in held.labels.values()))
    assert kept < 0.75 * compacted.memory_usage(deep=True).sum()


import shapely  # noqa: E402  (the reference below)

from coverage.classify import zonal  # noqa: E402


def _fast_one_pass(villages, grid, population):
    """The fast weights as made before pieces were kept by chunks (all pieces at once)."""
    n = len(villages)
    geoms = villages.geometry.to_crs(grid.crs).to_numpy()
    id_grid = zonal.village_id_grid(geoms, grid)
    ids = id_grid.reshape(-1)
    # 32-bit indices where the grid allows (half the memory and bandwidth), found a chunk of
    # the grid at a time (no 64-bit index of every village cell at once)
    kind = np.int32 if ids.size < 2**31 else np.int64
    cell = np.concatenate([(np.flatnonzero(ids[s:s + zonal.PIECE_CHUNK] >= 0) + s).astype(kind)
                           for s in range(0, ids.size, zonal.PIECE_CHUNK)] or [np.zeros(0, kind)])
    village = ids[cell]
    cell_area = grid.resolution_m**2
    counts = np.bincount(village, minlength=n)
    missing = counts == 0
    if missing.any():  # villages holding no cell centre: the cell under a point inside them
        pts = shapely.point_on_surface(geoms[missing])
        r, c, inside = grid.index(shapely.get_x(pts), shapely.get_y(pts))
        rows = np.flatnonzero(missing)
        extra = np.where(inside, r * grid.shape[1] + c, -1)
        share = np.minimum(shapely.area(geoms[missing]) / cell_area, 1.0)
        village = np.concatenate([village, rows.astype(village.dtype)])
        cell = np.concatenate([cell, extra.astype(cell.dtype)])
        area = np.concatenate([np.ones(len(cell) - len(extra)), share])
    else:
        area = None  # every piece a whole cell: no array of ones
    if population is None:
        return zonal.ZonalWeights(village, cell, area if area is not None else np.ones(len(cell)),
                            n, ids=id_grid)
    shift = zonal.aligned_shift(population, grid)
    if shift is not None:
        # on the model grid's lattice: read at the pieces, no whole-grid float64 copies
        # (a national 100 m grid spread whole took five of them, 5 GB)
        same = shift == (0, 0) and population.array.shape == grid.shape
        src_area = abs(population.transform.a * population.transform.e)

        def raw_at(idx: np.ndarray) -> np.ndarray:
            return zonal._raster_at(population.array, idx, grid.shape[1], shift)

        def spread_at(idx: np.ndarray) -> np.ndarray:
            people = np.nan_to_num(raw_at(idx).astype("float64"))
            # the raster itself on the very same grid, as before; shifted, what spreading
            # it gives (:func:`to_grid`'s density times the cell's area), bit for bit
            return people if same else people / src_area * grid.resolution_m**2

        def valid_at(idx: np.ndarray) -> np.ndarray:
            return np.isfinite(raw_at(idx)).astype("float32")
    else:
        spread = zonal.to_grid(population, grid, resampling="sum").reshape(-1)
        valid = np.zeros(grid.shape, dtype="float32")
        zonal.reproject(np.isfinite(population.array).astype("float32"), valid,
                  src_transform=population.transform, src_crs=population.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs,
                  resampling=zonal.Resampling.nearest, src_nodata=None, dst_nodata=0)

        def spread_at(idx: np.ndarray) -> np.ndarray:
            return spread[idx]

        def valid_at(idx: np.ndarray) -> np.ndarray:
            return valid.reshape(-1)[idx]
    # people and valid area of every piece, zonal.PIECE_CHUNK pieces at a time (the reads' float64
    # temporaries stay small; the values are the same element by element)
    people = np.zeros(len(cell))
    ok = np.zeros(len(cell), dtype=float if area is not None else "float32")
    for s in range(0, len(cell), zonal.PIECE_CHUNK):
        part = slice(s, s + zonal.PIECE_CHUNK)
        c = cell[part]
        if area is not None:  # some pieces are parts of cells, some off the grid
            inside = c >= 0
            here = spread_at(c[inside])
            people[part][inside] = np.where(here > 0, here, 0.0) * area[part][inside]
            ok[part][inside] = valid_at(c[inside]) * area[part][inside]
        else:
            here = spread_at(c)
            here[~(here > 0)] = 0.0
            people[part] = here
            ok[part] = valid_at(c)
    area_sum = (np.bincount(village, weights=area, minlength=n) if area is not None
                else counts.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        valid_share = np.bincount(village, weights=ok, minlength=n) / area_sum
    keep = people > 0
    return zonal.ZonalWeights(village[keep], cell[keep], people[keep], n,
                        people=np.bincount(village, weights=people, minlength=n),
                        valid_share=np.nan_to_num(valid_share), ids=id_grid)


@pytest.mark.parametrize("tiny_village", [False, True])
@pytest.mark.parametrize("chunk", [997, 1 << 22])
def test_fast_weights_kept_by_chunks_equal_all_pieces_at_once(small_nation, monkeypatch,
                                                              tiny_village, chunk):
    """Only pieces with people kept, chunk by chunk: the same weights, bit for bit."""
    d = small_nation
    villages = _with_tiny_village(d) if tiny_village else d.villages
    monkeypatch.setattr(zonal, "PIECE_CHUNK", chunk)
    for population in (d.population, None):
        ref = _fast_one_pass(villages, d.grid, population)
        got = zonal_weights(villages, d.grid, population, method="fast")
        assert len(got.cell) > 100
        for name in ("village", "cell", "weight", "people", "valid_share", "ids"):
            a, b = getattr(got, name), getattr(ref, name)
            if a is None or b is None:
                assert a is b
            else:
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
