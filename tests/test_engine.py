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


@pytest.mark.parametrize("terrain_m", [None, 50.0])
def test_tiled_model_equals_untiled(province, terrain_m) -> None:
    params = ModelParams(terrain_resolution_m=terrain_m)
    grid = analysis_grid(province.villages, params)
    towers = province.towers
    whole = predict_coverage(towers, grid, dem=province.dem, params=params)
    tiled = predict_coverage_tiled(towers, grid, dem=province.dem, params=params,
                                   engine=Engine(tile_cells=40))
    assert len(tile_windows(grid, 40)) > 4
    assert len(whole.layers) >= 3  # two operators, 2G/3G/4G
    assert_same_surfaces(whole, tiled)
    np.testing.assert_array_equal(whole.dem, tiled.dem)


def test_masts_nearest_each_tile_first_change_no_level(province, monkeypatch) -> None:
    """Each tile sweeps the masts nearest it first (more cells skipped); no level changes."""
    from coverage.model import predict

    params = ModelParams(workers=1)
    grid = analysis_grid(province.villages, params)
    nearest_first = predict_coverage_tiled(province.towers, grid, dem=province.dem,
                                           params=params, engine=Engine(tile_cells=40))
    plain, centres = predict.sweep_batches, []

    def by_samples(units, *, near=None):
        centres.append(near)
        return plain(units)

    monkeypatch.setattr(predict, "sweep_batches", by_samples)
    by_length = predict_coverage_tiled(province.towers, grid, dem=province.dem,
                                       params=params, engine=Engine(tile_cells=40))
    assert len(centres) == len(tile_windows(grid, 40)) and None not in centres
    assert_same_surfaces(nearest_first, by_length)
    units = pd.DataFrame({"x": [0.0, 10.0, 5.0], "y": [0.0, 0.0, 0.0], "samples": [1, 2, 3],
                          "rays": [16, 16, 16]})
    assert list(plain(units, near=(9.0, 0.0))[0].x) == [10.0, 5.0, 0.0]
    assert list(plain(units)[0].x) == [0.0, 10.0, 5.0]


def test_model_tiles_in_forked_processes_equal_untiled(province) -> None:
    import resource

    params = ModelParams()
    grid = analysis_grid(province.villages, params)
    whole = predict_coverage(province.towers, grid, dem=province.dem, params=params)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = []
    forked = predict_coverage_tiled(province.towers, grid, dem=province.dem, params=params,
                                    engine=Engine(tile_cells=40, processes=2),
                                    progress=lambda k, n: done.append((k, n)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert_same_surfaces(whole, forked)
    np.testing.assert_array_equal(whole.dem, forked.dem)
    n = len(tile_windows(grid, 40))
    assert done == [(k, n) for k in range(1, n + 1)]
    # the tiles ran in the worker processes
    assert after.ru_utime + after.ru_stime > before.ru_utime + before.ru_stime
    with pytest.raises(ValueError, match="processes must be at least 1"):
        Engine(processes=0)
    from coverage.engine import engine_from_config

    assert engine_from_config({"processes": 2}).processes == 2


def _square(x: int, *, calls: list | None = None, offset: int = 0) -> int:
    if calls is not None:
        calls.append(x)
    return x * x + offset


def test_imap_yields_each_result_before_the_next_is_computed() -> None:
    calls: list[int] = []
    results = Engine().imap(_square, [1, 2, 3], calls=calls, offset=1)
    assert next(results) == 2
    assert calls == [1]  # the caller holds one result while the rest wait
    assert list(results) == [5, 10]
    assert list(Engine(processes=2).imap(_square, [1, 2, 3], offset=1)) == [2, 5, 10]


def _threads_and_pid(requested: int) -> tuple[int, int]:
    import os

    from coverage.engine import threads_for

    return threads_for(requested), os.getpid()


def test_forked_workers_start_one_thread_each() -> None:
    """A stage asks for its threads through threads_for: as asked in this process, one in
    each forked worker (the workers already fill the cores)."""
    import os

    assert _threads_and_pid(3) == (3, os.getpid())
    got = Engine(processes=2).map(_threads_and_pid, [3, 3, 3, 3])
    assert [n for n, _ in got] == [1, 1, 1, 1]
    assert os.getpid() not in {pid for _, pid in got}
    assert _threads_and_pid(3)[0] == 3  # this process is not a worker after the map


def _mark(path: str) -> int:
    import os
    from pathlib import Path

    Path(path).touch()
    return os.getpid()


def test_work_meanwhile_runs_here_while_the_workers_run(tmp_path) -> None:
    """forked_map's ``meanwhile`` runs once, in this process, while the workers work."""
    import os
    import time

    from coverage.engine import forked_map

    marks = [str(tmp_path / "a"), str(tmp_path / "b")]
    calls = []

    def meanwhile() -> None:  # sees a worker's mark before any result is taken
        deadline = time.monotonic() + 60
        while not any(os.path.exists(m) for m in marks) and time.monotonic() < deadline:
            time.sleep(0.01)
        calls.append((os.getpid(), any(os.path.exists(m) for m in marks)))

    got = list(forked_map(_mark, marks, 2, {}, meanwhile=meanwhile))
    assert calls == [(os.getpid(), True)]
    assert os.getpid() not in got
    here = []
    assert list(forked_map(_square, [1, 2, 3], 1, {}, meanwhile=lambda: here.append(1))) == [
        1, 4, 9]
    assert here == [1]


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


def test_dask_imap_gives_every_result(cluster) -> None:
    _, client = cluster
    engine = Engine("dask", client=client)
    assert sorted(engine.imap(_square, list(range(6)), offset=1)) == [x * x + 1
                                                                      for x in range(6)]
    assert list(engine.imap(_square, [])) == []


def test_dask_measurement_aggregation(tiny, cluster) -> None:
    _, client = cluster
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, "EPSG:32648")
    engine = Engine("dask", client=client)
    whole = aggregate_measurements(io.read_measurements(tiny["tests"]), grid)
    chunked = aggregate_measurement_chunks(io.iter_measurements(tiny["tests"], chunk_rows=2),
                                           grid, engine=engine)
    for name, arr in whole.items():
        np.testing.assert_array_equal(chunked[name], arr, err_msg=name)


def _slow_first(item: int, *, delay_s: float) -> list[int]:
    import time

    time.sleep(delay_s if item == 0 else 0.0)  # the first item finishes last
    return [item]


def test_dask_stream_folds_in_the_items_order(cluster) -> None:
    # a fold that is not commutative (the compacted rows' order) must not depend on which
    # worker finishes first: the first item's part, finished last, still comes first
    _, client = cluster
    engine = Engine("dask", client=client)
    out = engine.map_stream(_slow_first, range(7), lambda a, b: a + b, in_flight=3,
                            delay_s=0.5)
    assert out == list(range(7))
    assert Engine().map_stream(_slow_first, range(7), lambda a, b: a + b,
                               delay_s=0.0) == list(range(7))


def test_dask_compaction_of_columns(tiny, cluster) -> None:
    _, client = cluster
    grid = Grid.covering((X0, Y0, X0 + 12_000, Y0 + 10_000), 100.0, "EPSG:32648")
    local = compact_measurements(io.iter_measurements(tiny["tests"], chunk_rows=3), grid)
    remote = compact_measurements(io.iter_measurement_columns(tiny["tests"], chunk_rows=3),
                                  grid, engine=Engine("dask", client=client))
    assert len(local) == 2
    pd.testing.assert_frame_equal(pd.DataFrame(remote.drop(columns="geometry")),
                                  pd.DataFrame(local.drop(columns="geometry")))
    assert remote.geometry.geom_equals_exact(local.geometry, 0).all()


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


# --------------------------------------------------------------------------- plan and run
def run_toml(tiny, tmp_path, *, engine: str = "", name: str = "run") -> object:
    """A run file for the tiny province (a plan of 2 sites), with an ``[engine]`` table."""
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f"""
[inputs]
villages = "{tiny['villages']}"
towers = ["{tiny['sites']}"]
population = "{tiny['population']}"
dem = "{tiny['dem']}"

[scenario]
name = "{name}"
max_sites = 2

[model]
resolution_m = 200.0

[outputs]
dir = "{tmp_path / name}"
classified = ["classified.csv"]
plan = ["plan.csv"]
priority = ["priority.csv"]
map = ""
{engine}
""", encoding="utf-8")
    return cfg


def task_names(client, fn) -> set[str]:
    """Names of the functions whose tasks ran on the cluster while ``fn()`` ran."""
    from distributed import get_task_stream

    with get_task_stream(client=client) as ts:
        fn()
    return {str(t["key"]).split("-")[0].strip("('\"") for t in ts.data}


def test_engine_from_a_config_table() -> None:
    from coverage.engine import engine_from_config
    from coverage.errors import ParameterError

    assert engine_from_config({}) is None
    e = engine_from_config({"scheduler": "tcp://10.0.0.5:8786", "tile_cells": 64})
    assert (e.kind, e.scheduler, e.tile_cells) == ("dask", "tcp://10.0.0.5:8786", 64)
    assert engine_from_config({"kind": "local"}).is_local
    with pytest.raises(ParameterError, match=r"unknown \[engine\] key.*schedular"):
        engine_from_config({"schedular": "tcp://x:1"}, where="f.toml")
    with pytest.raises(ParameterError, match=r"f.toml: \[engine\] engine must be one of"):
        engine_from_config({"kind": "spark"}, where="f.toml")


def test_cli_plan_and_run_on_a_scheduler(tiny, tmp_path, cluster) -> None:
    """--engine/--scheduler and a file's [engine] send the work to the cluster, same output."""
    from coverage.cli import main
    from coverage.scenario import clear_cache

    lc, client = cluster
    classified = tmp_path / "classified.gpkg"
    args = ["--towers", str(tiny["sites"]), "--population", str(tiny["population"]),
            "--dem", str(tiny["dem"])]
    r = CliRunner().invoke(main, ["-q", "classify", str(tiny["villages"]), *args, "-o",
                                  str(classified)])
    assert r.exit_code == 0, r.output
    plan = ["-q", "plan", str(classified), *args, "--sites", "2"]
    r = CliRunner().invoke(main, [*plan, "-o", str(tmp_path / "local.csv")])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "local.csv")) >= 1
    cfg = tmp_path / "engine.toml"
    cfg.write_text(f'[engine]\nscheduler = "{lc.scheduler_address}"\n', encoding="utf-8")

    def plan_with(*options: str, out: str):
        def go():
            r = CliRunner().invoke(main, [*plan, *options, "-o", str(tmp_path / out)])
            assert r.exit_code == 0, r.output
        names = task_names(client, go)
        assert (tmp_path / out).read_bytes() == (tmp_path / "local.csv").read_bytes()
        return names

    # the existing sites' model and the candidates' coverage ran on the workers
    both = {"_predict_tile", "_cells_of_task"}
    assert both <= plan_with("--engine", "dask", "--scheduler", lc.scheduler_address,
                             out="option.csv")
    assert both <= plan_with("--config", str(cfg), out="file.csv")
    assert not both & plan_with("--config", str(cfg), "--engine", "local", out="local2.csv")

    clear_cache()
    local = run_toml(tiny, tmp_path, name="local")
    r = CliRunner().invoke(main, ["-q", "run", str(local)])
    assert r.exit_code == 0, r.output
    remote = run_toml(tiny, tmp_path, name="remote",
                      engine=f'[engine]\nscheduler = "{lc.scheduler_address}"\ntile_cells = 32')

    def run_with(*options: str):
        def go():
            clear_cache()
            r = CliRunner().invoke(main, ["-q", "run", str(remote), "--overwrite", *options])
            assert r.exit_code == 0, r.output
        names = task_names(client, go)
        for table in ("classified.csv", "plan.csv", "priority.csv"):
            assert (tmp_path / "remote" / table).read_bytes() == \
                (tmp_path / "local" / table).read_bytes(), table
        return names

    assert "_predict_tile" in run_with()  # the file's [engine]
    assert "_predict_tile" not in run_with("--engine", "local")  # the option wins


def test_the_tiles_share_one_float32_copy_of_the_terrain() -> None:
    from coverage.model.terrain import float32_terrain

    heights = np.linspace(0.0, 1000.3, 12).reshape(3, 4)
    first = float32_terrain(heights)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, heights.astype("float32"))
    assert float32_terrain(heights) is first  # converted once for every tile
    other = heights + 1.0
    assert float32_terrain(other) is not first
    assert float32_terrain(first) is first
    from coverage.model.terrain import _TERRAIN32, release_float32_terrain

    release_float32_terrain(heights)  # not the grid kept: nothing dropped
    assert float32_terrain(other) is float32_terrain(other)
    release_float32_terrain(other)
    assert _TERRAIN32 == []


def test_local_clusters_keep_the_malloc_defaults() -> None:
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from coverage.engine import TRIM_KEY, local_cluster_settings

    environ = "distributed.nanny.pre-spawn-environ"
    assert dask.config.get(environ).get("MALLOC_TRIM_THRESHOLD_") is not None  # Dask's own
    with local_cluster_settings():
        # a None value is left out of the workers' environment by the nanny
        assert dask.config.get(TRIM_KEY) is None
        assert dask.config.get(environ)["OMP_NUM_THREADS"] == 1  # the rest kept
    assert dask.config.get(TRIM_KEY) is not None
