"""Small provinces built in code, shared by the tests.

``tiny`` is a 12 x 10 km valley in UTM 48N split by a 700 m ridge at x = 506 km: a 4G/3G site
sits in the western valley, a 2G-only site in the eastern one; twelve villages tile the area;
people live along the valley floors.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point, box

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
X0, Y0 = 500_000.0, 2_490_000.0  # south-west corner, EPSG:32648
WIDTH_M, HEIGHT_M = 12_000.0, 10_000.0


def covered_village():
    """A 1 x 1 km village (UTM 48N) the model covers everywhere at -90 dBm (4G, operator A)."""
    from pyproj import CRS

    from coverage.model import CoverageSurfaces, Grid

    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 10), crs)
    surfaces = CoverageSurfaces(grid, {("A", "4G"): np.full(grid.shape, -90.0, "float32")})
    villages = gpd.GeoDataFrame({"village_id": ["v"], "population": [500]},
                                geometry=[box(0, 0, 1000, 1000)], crs=crs)
    return villages, surfaces


def write_tif(path: Path, array: np.ndarray, transform, crs, nodata=None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype=array.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(array, 1)
    return path


def tiny_dem() -> tuple[np.ndarray, object]:
    """Valley floors at 200 m, a north-south ridge 700 m high at x = 506 km."""
    res = 100.0
    cols, rows = int(WIDTH_M / res), int(HEIGHT_M / res)
    x = X0 + (np.arange(cols) + 0.5) * res
    ridge = 200.0 + 700.0 * np.exp(-(((x - 506_000.0) / 600.0) ** 2))
    dem = np.tile(ridge, (rows, 1)).astype("float32")
    return dem, from_origin(X0, Y0 + HEIGHT_M, res, res)


def tiny_villages() -> gpd.GeoDataFrame:
    rows = []
    names = ["Bản Nà Lốc", "Thôn Khuổi Luông", "Bản Pác Ngòi", "Thôn Đông", "Bản Phìn Hồ",
             "Thôn Nà Hang", "Bản Lũng Cú", "Thôn Tả Van", "Bản Sín Chải", "Thôn Bó Củng",
             "Bản Nậm Đăm", "Thôn Thượng"]
    k = 0
    for j in range(3):
        for i in range(4):
            x, y = X0 + i * 3000.0, Y0 + j * 3333.3
            rows.append({"village_id": f"00{k + 1:02d}", "name": names[k],
                         "commune": "Xã Mẫu" if i < 2 else "Xã Sơn", "district": "Huyện Núi",
                         "population": 400 + 50 * k,
                         "geometry": box(x, y, x + 3000.0, y + 3333.3)})
            k += 1
    return gpd.GeoDataFrame(rows, crs=32648)


def tiny_sites() -> pd.DataFrame:
    pts = gpd.GeoSeries([Point(X0 + 2500, Y0 + 5000), Point(X0 + 10000, Y0 + 5000)],
                        crs=32648).to_crs(4326)
    rows = []
    for tech in ("4G", "3G"):
        rows.append({"site_id": "W1", "operator": "Viettel", "tech": tech, "height_m": 30,
                     "azimuth_deg": "", "beamwidth_deg": "", "eirp_dbm": "", "freq_mhz": "",
                     "status": "active", "backhaul": "fiber",
                     "lon": pts.iloc[0].x, "lat": pts.iloc[0].y})
    rows.append({"site_id": "E1", "operator": "Viettel", "tech": "2G", "height_m": 30,
                 "azimuth_deg": "", "beamwidth_deg": "", "eirp_dbm": "", "freq_mhz": "",
                 "status": "active", "backhaul": "microwave",
                 "lon": pts.iloc[1].x, "lat": pts.iloc[1].y})
    return pd.DataFrame(rows)


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    """Files of the tiny province: villages, sites, dem, population, tests."""
    return write_tiny(tmp_path)


def write_tiny(tmp_path: Path) -> dict[str, Path]:
    """Write the tiny province's files under ``tmp_path`` (for module-scoped fixtures)."""
    villages = tiny_villages()
    paths = {"villages": tmp_path / "villages.gpkg", "sites": tmp_path / "sites.csv",
             "dem": tmp_path / "dem.tif", "population": tmp_path / "pop.tif",
             "tests": tmp_path / "tests.csv"}
    villages.to_file(paths["villages"], layer="villages")
    tiny_sites().to_csv(paths["sites"], index=False)
    dem, transform = tiny_dem()
    write_tif(paths["dem"], dem, transform, "EPSG:32648")
    # People along two valley floors (x = 502.5 km and 510 km), WorldPop-like in EPSG:32648.
    res = 100.0
    cols, rows = int(WIDTH_M / res), int(HEIGHT_M / res)
    x = X0 + (np.arange(cols) + 0.5) * res
    density = (np.exp(-(((x - 502_500.0) / 800.0) ** 2))
               + np.exp(-(((x - 510_000.0) / 800.0) ** 2)))
    pop = np.tile(density, (rows, 1)).astype("float32")
    write_tif(paths["population"], pop, transform, "EPSG:32648", nodata=-99999)
    pts = gpd.GeoSeries([Point(X0 + 2600, Y0 + 5200), Point(X0 + 10100, Y0 + 5100)],
                        crs=32648).to_crs(4326)
    tests = []
    for k in range(6):
        tests.append({"lon": pts.iloc[0].x, "lat": pts.iloc[0].y, "tech": "4G",
                      "operator": "Viettel", "rsrp_dbm": -80 - k, "download_mbps": 20 + k,
                      "upload_mbps": 5, "latency_ms": 40,
                      "timestamp": f"2025-0{k + 1}-01T10:00:00Z"})
        tests.append({"lon": pts.iloc[1].x, "lat": pts.iloc[1].y, "tech": "none",
                      "operator": "Viettel", "rsrp_dbm": "", "download_mbps": "",
                      "upload_mbps": "", "latency_ms": "",
                      "timestamp": f"2025-0{k + 1}-02T10:00:00Z"})
    pd.DataFrame(tests).to_csv(paths["tests"], index=False)
    return paths


@pytest.fixture(scope="package")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """One run of the demo pipeline for the whole test run: (DemoResult, warnings).

    Package scope: the tests folder is one directory, so this is one run for all of them.

    The demo's inputs hold deliberate junk (OpenCelliD cells far away), so the run's repair
    warnings are recorded and returned for the tests to check, not raised.
    """
    import warnings

    from coverage.errors import CoverageGapWarning
    from coverage.pipeline import run_demo

    out = tmp_path_factory.mktemp("demo")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CoverageGapWarning)
        result = run_demo(out / "out", map_path=out / "maps" / "demo.html")
    return result, [str(w.message) for w in caught if issubclass(w.category, CoverageGapWarning)]
