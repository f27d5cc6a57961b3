"""The vn-2025 rules, reasons, population weighting and measurement metrics."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from coverage.classify import apply_profile, classify_villages
from coverage.io import Raster
from coverage.model import CoverageSurfaces, Grid
from coverage.params import get_profile

VN = get_profile("vn-2025")


def metrics(**cols):
    base = {"pop_covered_share": 0.9, "pop_indoor_share": 0.9, "pop_2g_share": 1.0,
            "n_tests": 0, "n_service_tests": 0, "median_download_mbps": np.nan,
            "median_upload_mbps": np.nan, "no_service_share": np.nan}
    base.update(cols)
    return pd.DataFrame({k: [v] for k, v in base.items()})


@pytest.mark.parametrize(("cols", "klass", "reasons"), [
    ({}, "served", ""),
    ({"pop_covered_share": 0.0, "pop_2g_share": 0.0}, "unavailable", "no_signal"),
    ({"pop_covered_share": 0.0, "pop_2g_share": 0.8}, "unavailable", "no_signal;2g_only"),
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.8}, "unavailable", "2g_only"),
    ({"pop_covered_share": 0.3, "pop_2g_share": 0.2}, "unavailable", "partial_coverage"),
    ({"pop_covered_share": 0.5, "pop_indoor_share": 0.49}, "available_inaccessible",
     "weak_signal"),
    ({"n_tests": 5, "n_service_tests": 5, "median_download_mbps": 4.9,
      "no_service_share": 0.0}, "available_inaccessible", "slow_speed"),
    ({"n_tests": 4, "n_service_tests": 4, "median_download_mbps": 1.0,
      "no_service_share": 0.0}, "served", ""),  # too few tests to judge speed
    ({"n_tests": 10, "n_service_tests": 10, "median_download_mbps": 20.0,
      "no_service_share": 0.3}, "available_inaccessible", "measured_no_service"),
])
def test_rules_of_vn_2025(cols, klass, reasons):
    out = apply_profile(metrics(**cols), VN)
    assert out["class"].iloc[0] == klass
    assert out["reasons"].iloc[0] == reasons
    assert 0 <= out["confidence"].iloc[0] <= 1


def test_access_rules_and_missing_rows_set_no_constraint():
    m = pd.concat([metrics()] * 4, ignore_index=True)
    access = pd.DataFrame({
        "electricity_share": [0.4, 0.9, 0.9], "smartphone_share": [0.9, 0.2, 0.9],
        "monthly_income": [5e6, 5e6, 5e6], "data_price_1gb": [1e4, 1e4, 2e5],
    }, index=pd.Index(["a", "b", "c"], name="village_id"))
    out = apply_profile(m, VN, access=access, village_ids=pd.Series(["a", "b", "c", "d"]))
    assert list(out["reasons"]) == ["no_power", "no_devices", "unaffordable", ""]
    assert list(out["class"]) == ["available_inaccessible"] * 3 + ["served"]


def test_bead_profile_is_stricter_on_speed():
    m = metrics(n_tests=10, n_service_tests=10, median_download_mbps=20.0,
                median_upload_mbps=5.0, no_service_share=0.0)
    assert apply_profile(m, VN)["class"].iloc[0] == "served"
    assert apply_profile(m, get_profile("bead-25-3"))["reasons"].iloc[0] == "slow_speed"


def test_confidence_grows_with_margin_and_agreeing_tests():
    near = apply_profile(metrics(pop_covered_share=0.52), VN)["confidence"].iloc[0]
    far = apply_profile(metrics(pop_covered_share=0.95), VN)["confidence"].iloc[0]
    tested = apply_profile(metrics(pop_covered_share=0.52, n_tests=20, n_service_tests=20,
                                   no_service_share=0.0), VN)["confidence"].iloc[0]
    assert near < tested and near < far


def half_covered_case(pop_left: float, pop_right: float):
    """One 2 x 1 km village; the west half has 4G at -90 dBm, the east half nothing."""
    crs = CRS.from_epsg(32648)
    grid = Grid(from_origin(0, 1000, 100, 100), (10, 20), crs)
    level = np.full(grid.shape, np.nan, dtype="float32")
    level[:, :10] = -90.0
    surfaces = CoverageSurfaces(grid, {("A", "4G"): level})
    pop = np.zeros(grid.shape)
    pop[:, :10] = pop_left / 100
    pop[:, 10:] = pop_right / 100
    villages = gpd.GeoDataFrame({"village_id": ["01"], "name": ["Bản Nà"]},
                                geometry=[box(0, 0, 2000, 1000)], crs=crs)
    return villages, surfaces, Raster(pop, grid.transform, crs)


def test_shares_are_people_not_area():
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    out = classify_villages(villages, surfaces, population=pop)
    assert out["population"].iloc[0] == pytest.approx(1000.0)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.9)
    assert out["class"].iloc[0] == "served"
    villages, surfaces, pop = half_covered_case(100.0, 900.0)
    out = classify_villages(villages, surfaces, population=pop)
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.1)
    assert out["class"].iloc[0] == "unavailable"
    assert out["reasons"].iloc[0] == "partial_coverage"


def test_population_column_sets_total_and_area_weights_without_raster():
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    villages["population"] = 5000
    out = classify_villages(villages, surfaces, population=pop)
    assert out["population"].iloc[0] == 5000
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.9)
    out = classify_villages(villages.drop(columns="population"), surfaces)
    assert np.isnan(out["population"].iloc[0])
    assert out["pop_covered_share"].iloc[0] == pytest.approx(0.5)


def test_tests_are_counted_in_their_village_and_rows_stay_in_order():
    villages, surfaces, pop = half_covered_case(900.0, 100.0)
    villages = pd.concat([villages, villages.assign(village_id="02", geometry=[
        box(5000, 0, 6000, 1000)])], ignore_index=True)
    villages = gpd.GeoDataFrame(villages, crs=32648)
    pts = gpd.GeoSeries([Point(500, 500)] * 6 + [Point(9999, 9999)], crs=32648).to_crs(4326)
    m = gpd.GeoDataFrame({"tech": ["4G"] * 6 + ["4G"], "operator": ["A"] * 7,
                          "rsrp_dbm": [-95.0] * 7, "download_mbps": [1, 2, 3, 4, 5, 6, 50.0],
                          "upload_mbps": np.nan, "weight": 1.0},
                         geometry=pts.to_numpy(), crs=4326)
    out = classify_villages(villages, surfaces, measurements=m)
    assert list(out["village_id"]) == ["01", "02"]
    assert list(out["n_tests"]) == [6, 0]
    assert out["median_download_mbps"].iloc[0] == pytest.approx(3.5)
    assert "slow_speed" in out["reasons"].iloc[0]
