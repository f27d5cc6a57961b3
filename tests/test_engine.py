"""The engine: tiled model, chunked measurements and zonal statistics, local and on Dask.

Every figure the engine computes piecewise must equal the untiled, in-process function's.
The Dask tests start one in-process ``LocalCluster`` (threads, several workers).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import Point

from conftest import X0, Y0, tiny_sites
from coverage import io
from coverage.engine import (
    Engine,
    aggregate_measurement_chunks,
    compact_measurements,
    get_engine,
    predict_coverage_tiled,
    tile_windows,
)
from coverage.model import Grid, aggregate_measurements, predict_coverage
from coverage.params import ModelParams
from coverage.pipeline import Settings, analysis_grid, load_inputs, run_classify


def sector_sites() -> pd.DataFrame:
    """Three-sector 4G masts of two operators across and around the tiny province."""
    rows = []
    masts = [(X0 + 2500, Y0 + 5000, "Viettel"), (X0 + 9000, Y0 + 2000, "VNPT"),
             (X0 - 3000, Y0 + 8000, "VNPT"), (X0 + 14000, Y0 + 11000, "Viettel")]
    pts = gpd.GeoSeries([Point(x, y) for x, y, _ in masts], crs=32648).to_crs(4326)
    for k, ((_, _, op), p) in enumerate(zip(masts, pts, strict=True)):
        for az in (0, 120, 240):
            rows.append({"site_id": f"S{k}", "operator": op, "tech": "4G",
                         "height_m": 25 + 5 * k, "azimuth_deg": az, "beamwidth_deg": 65,
                         "eirp_dbm": "", "freq_mhz": 1800 if k % 2 else 900,
                         "status": "active", "backhaul": "", "lon": p.x, "lat": p.y})
    return pd.concat([tiny_sites(), pd.DataFrame(rows)], ignore_index=True)


@pytest.fixture
def province(tiny, tmp_path):
    sector_sites().to_csv(tiny["sites"], index=False)
    return load_inputs(tiny["villages"], towers=[tiny["sites"]],
                       measurements=[tiny["tests"]], population=tiny["population"],
                       dem=tiny["dem"])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        yield lc, c


def assert_same_surfaces(a, b) -> None:
    assert sorted(a.layers) == sorted(b.layers)
    for key in a.layers:
        np.testing.assert_array_equal(a.layers[key], b.layers[key], err_msg=str(key))
        np.testing.assert_array_equal(a.distance_m[key], b.distance_m[key], err_msg=str(key))


def test_tiles_cover_the_grid_once() -> None:
    grid = Grid.covering((0, 0, 10_000, 7_000), 100.0, "EPSG:32648")
    seen = np.zeros(grid.shape, int)
    for r0, r1, c0, c1 in tile_windows(grid, 32):
        seen[r0:r1, c0:c1] += 1
    assert (seen == 1).all()


def test_tiled_model_equals_untiled(province) -> None:
    params = ModelParams()
    grid = analysis_grid(province.villages, params)
    towers = province.towers
    whole = predict_coverage(towers, grid, dem=province.dem, params=params)
    tiled = predict_coverage_tiled(towers, grid, dem=province.dem, params=params,
                                   engine=Engine(tile_cells=40))
    assert len(tile_windows(grid, 40)) > 4
    assert len(whole.layers) >= 3  # two operators, 2G/3G/4G
    assert_same_surfaces(whole, tiled)
    np.testing.assert_array_equal(whole.dem, tiled.dem)


def test_engine_options_are_checked() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        Engine("spark")
    with pytest.raises(ValueError, match="needs the dask engine"):
        Engine("local", scheduler="tcp://x:8786")
    assert get_engine(None, scheduler="tcp://x:8786").kind == "dask"
    assert get_engine(None).is_local


def test_chunked_reading_keeps_every_row(tiny, tmp_path) -> None:
    whole = io.read_measurements(tiny["tests"])
    chunks = list(io.iter_measurements(tiny["tests"], chunk_rows=5))
    assert [len(c) for c in chunks] == [5, 5, 2]
    joined = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(pd.DataFrame(joined.drop(columns="geometry")),
                                  pd.DataFrame(whole.drop(columns="geometry")))
    assert joined.geometry.geom_equals_exact(whole.geometry, 1e-9).all()
    parquet = tmp_path / "tests.parquet"
    whole.to_parquet(parquet)
    again = pd.concat(io.iter_measurements(parquet, chunk_rows=4), ignore_index=True)
    assert len(again) == len(whole)
    np.testing.assert_array_equal(again["rsrp_dbm"], whole["rsrp_dbm"])
    assert (again["tech"].astype(object) == whole["tech"].astype(object)).all()


def test_chunked_aggregation_equals_whole(tiny) -> None:
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, "EPSG:32648")
    whole = aggregate_measurements(io.read_measurements(tiny["tests"]), grid)
    chunked = aggregate_measurement_chunks(io.iter_measurements(tiny["tests"], chunk_rows=3),
                                           grid)
    assert float(whole["tests"].sum()) == 12
    for name, arr in whole.items():
        np.testing.assert_array_equal(chunked[name], arr, err_msg=name)


def test_compacted_tests_keep_weights_and_means(tiny) -> None:
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, "EPSG:32648")
    rows = compact_measurements(io.iter_measurements(tiny["tests"], chunk_rows=4), grid)
    assert len(rows) == 2  # one cell of 4G tests, one of no-service tests
    four = rows[rows["tech"] == "4G"].iloc[0]
    assert four["weight"] == 6
    assert four["rsrp_dbm"] == pytest.approx(np.mean([-80 - k for k in range(6)]))
    assert four["download_mbps"] == pytest.approx(22.5)
    assert rows.crs.to_epsg() == 4326


def test_dask_engine_gives_the_local_results(province, cluster) -> None:
    _, client = cluster
    engine = Engine("dask", client=client, tile_cells=40, village_chunk=5)
    local, local_surfaces = run_classify(province, settings=Settings())
    remote, remote_surfaces = run_classify(province, settings=Settings(), engine=engine)
    assert_same_surfaces(local_surfaces, remote_surfaces)
    pd.testing.assert_frame_equal(pd.DataFrame(remote.drop(columns="geometry")),
                                  pd.DataFrame(local.drop(columns="geometry")))
    assert set(local["class"]) >= {"served"}
    # the work went to the workers
    assert sum(len(v) for v in client.processing().values()) == 0
    assert len(client.scheduler_info()["workers"]) == 3


def test_dask_measurement_aggregation(tiny, cluster) -> None:
    _, client = cluster
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, "EPSG:32648")
    engine = Engine("dask", client=client)
    whole = aggregate_measurements(io.read_measurements(tiny["tests"]), grid)
    chunked = aggregate_measurement_chunks(io.iter_measurements(tiny["tests"], chunk_rows=2),
                                           grid, engine=engine)
    for name, arr in whole.items():
        np.testing.assert_array_equal(chunked[name], arr, err_msg=name)


def test_cli_classify_on_a_scheduler(province, tiny, tmp_path, cluster) -> None:
    from coverage.cli import main

    lc, _ = cluster
    out_local, out_dask = tmp_path / "local.csv", tmp_path / "dask.csv"
    args = [str(tiny["villages"]), "--towers", str(tiny["sites"]), "--dem", str(tiny["dem"]),
            "--population", str(tiny["population"])]
    r1 = CliRunner().invoke(main, ["-q", "classify", *args, "-o", str(out_local)])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(main, ["-q", "classify", *args, "--scheduler",
                                   lc.scheduler_address, "-o", str(out_dask)])
    assert r2.exit_code == 0, r2.output
    assert out_dask.read_bytes() == out_local.read_bytes()
    r3 = CliRunner().invoke(main, ["classify", *args, "--engine", "local", "--scheduler",
                                   "tcp://nowhere:1", "-o", str(tmp_path / "x.csv")])
    assert r3.exit_code == 2
    assert "--scheduler needs --engine dask" in r3.output
