"""Read speed of the ingest layer on large inputs built on the fly.

Prints seconds and rows per second for:
- 100,000 village polygons in a GeoPackage (read_villages: ids, names, keys, geometry checks);
- the same villages as a Shapefile without .cpg in Windows-1258 (encoding detection);
- 1,000,000 point tests as CSV and as Parquet (read_measurements: parsing, cleaning);
- 200,000 OpenCelliD cells (read_towers: grouping into sites).

Usage: PYTHONPATH=src python benchmarks/bench_io.py [--villages 100000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage import io
from coverage.errors import RepairWarning


def timed(label: str, n: int, func, repeat: int = 2):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RepairWarning)
            out = func()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<48}{n:>10,} rows {best:>8.2f} s {n / best:>12,.0f} rows/s")
    return out


def villages(n: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(1)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x = 300_000 + (i % side) * 500.0
    y = 2_000_000 + (i // side) * 500.0
    names = np.array(["Bản Nà Lốc", "Thôn Khuổi Luông", "Xóm Đồng Tâm", "Làng Mường Hoa"])
    return gpd.GeoDataFrame({
        "village_id": [f"{k:07d}" for k in i],
        "name": names[rng.integers(0, 4, n)],
        "population": rng.integers(50, 3000, n).astype(float),
    }, geometry=shapely.box(x, y, x + 480.0, y + 480.0), crs=32648)


def measurements(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    ts = pd.Timestamp("2025-01-01T00:00:00Z") + pd.to_timedelta(rng.integers(0, 3e7, n), "s")
    return pd.DataFrame({
        "lon": rng.uniform(103.5, 105.5, n).round(6), "lat": rng.uniform(21.0, 22.8, n).round(6),
        "tech": rng.choice(["4G", "3G", "LTE", "none", "5G"], n),
        "operator": rng.choice(["Viettel", "VinaPhone", "MobiFone"], n),
        "rsrp_dbm": rng.normal(-95, 12, n).round(1),
        "download_mbps": rng.gamma(2.0, 10.0, n).round(2),
        "upload_mbps": rng.gamma(2.0, 3.0, n).round(2),
        "latency_ms": rng.gamma(3.0, 15.0, n).round(0),
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def opencellid(n: int, path: Path) -> None:
    rng = np.random.default_rng(3)
    radio = rng.choice(["GSM", "UMTS", "LTE"], n, p=[0.3, 0.3, 0.4])
    cell = np.where(radio == "LTE", rng.integers(0, 4000, n) * 256 + rng.integers(0, 3, n),
                    rng.integers(0, 60000, n))
    df = pd.DataFrame({"radio": radio, "mcc": 452, "net": rng.choice([1, 2, 4], n),
                       "area": 10, "cell": cell, "unit": 0,
                       "lon": rng.uniform(103.5, 107.5, n).round(5),
                       "lat": rng.uniform(10.5, 22.8, n).round(5),
                       "range": rng.integers(100, 5000, n), "samples": rng.integers(1, 50, n),
                       "changeable": 1, "created": 0, "updated": 0, "averageSignal": 0})
    df.to_csv(path, index=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--villages", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cells", type=int, default=200_000)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        v = villages(args.villages)
        v.to_file(d / "v.gpkg")
        got = timed("read_villages GeoPackage", len(v), lambda: io.read_villages(d / "v.gpkg"))
        assert len(got) == len(v) and got["village_id"].iloc[0] == "0000000"
        v.to_file(d / "v.shp", encoding="cp1258")
        (d / "v.cpg").unlink()
        got = timed("read_villages Shapefile, no .cpg (cp1258)", len(v),
                    lambda: io.read_villages(d / "v.shp"))
        assert len(got) == len(v)
        m = measurements(args.rows)
        m.to_csv(d / "m.csv", index=False)
        m.to_parquet(d / "m.parquet")
        got = timed("read_measurements CSV", len(m), lambda: io.read_measurements(d / "m.csv"))
        assert len(got) == len(m)
        got = timed("read_measurements Parquet (lon/lat)", len(m),
                    lambda: io.read_measurements(d / "m.parquet"))
        assert len(got) == len(m)
        opencellid(args.cells, d / "cells.csv")
        got = timed("read_towers OpenCelliD", args.cells,
                    lambda: io.read_towers(d / "cells.csv"), repeat=1)
        print(f"  -> {len(got):,} transmitters")


if __name__ == "__main__":
    main()
