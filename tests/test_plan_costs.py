"""The cost model: each site costs what CostModel says, part by part."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point

from conftest import X0, Y0, tiny_dem
from coverage.io import Raster
from coverage.params import CostModel, PlanParams
from coverage.plan import site_costs
from coverage.plan.costs import BREAKDOWN

UTM = "EPSG:32648"


def cands(*rows):
    """Candidates at (x_km, y_km) offsets from the tiny province's corner."""
    return gpd.GeoDataFrame(
        [{"site_id": f"c{i}", "kind": "upgrade" if tech == "upgrade" else "new_site",
          "technology": tech, "tech": "4G", "height_m": h, "terminals": terminals,
          "geometry": Point(X0 + x * 1000, Y0 + y * 1000)}
         for i, (x, y, tech, h, terminals) in enumerate(rows)], crs=UTM)


def fibre_at_x(x_km):
    return gpd.GeoDataFrame(geometry=[LineString([(X0 + x_km * 1000, Y0 - 5000),
                                                  (X0 + x_km * 1000, Y0 + 15000)])], crs=UTM)


def test_a_site_3_km_from_fibre_costs_what_the_model_says():
    c = CostModel()
    out = site_costs(cands((3.0, 5.0, "macro", 40.0, np.nan)), fibre=fibre_at_x(0.0),
                     params=PlanParams())
    row = out.iloc[0]
    fibre = 3.0 * c.fibre_route_factor * c.fibre_per_km
    assert fibre < c.satellite_backhaul + c.satellite_backhaul_per_year * c.annuity_factor
    assert row["backhaul"] == "fibre"
    assert row["backhaul_km"] == pytest.approx(3.0 * c.fibre_route_factor)
    assert row["cost_backhaul"] == pytest.approx(fibre, abs=1)
    assert row["cost_site"] == c.new_tower
    annuity = (1 - 1.08 ** -10) / 0.08
    assert row["cost_opex"] == pytest.approx(c.opex_per_year * annuity, abs=1)
    assert row["cost"] == pytest.approx(sum(row[k] for k in BREAKDOWN))
    assert row["cost"] == pytest.approx(c.new_tower + fibre + c.opex_per_year * annuity, abs=2)


def test_far_fibre_falls_back_to_satellite_with_its_fee():
    c = CostModel()
    out = site_costs(cands((3.0, 5.0, "macro", 40.0, np.nan)), fibre=fibre_at_x(-40.0),
                     params=PlanParams())
    row = out.iloc[0]
    assert row["backhaul"] == "satellite"
    assert row["cost_backhaul"] == c.satellite_backhaul
    fee = c.satellite_backhaul_per_year * c.annuity_factor
    assert row["cost_opex"] == pytest.approx(c.opex_per_year * c.annuity_factor + fee, abs=2)


def road_graph():
    """A (200 m from the site) -4 km- B -2.9 km- C (100 m from the fibre at x = 0)."""
    to_ll = Transformer.from_crs(UTM, 4326, always_xy=True)
    g = nx.MultiDiGraph(crs="EPSG:4326")
    for name, (x, y) in {"A": (3000, 4800), "B": (3000, 8800), "C": (100, 8800)}.items():
        lon, lat = to_ll.transform(X0 + x, Y0 + y)
        g.add_node(name, x=lon, y=lat)
    for u, v, length in (("A", "B", 4000.0), ("B", "C", 2900.0)):
        g.add_edge(u, v, key=0, length=length)
        g.add_edge(v, u, key=0, length=length)
    return g


def test_fibre_follows_the_road_graph_and_the_track_is_costed():
    c = CostModel(satellite_backhaul=1e12)
    params = PlanParams(costs=c)
    out = site_costs(cands((3.0, 5.0, "macro", 40.0, np.nan)), fibre=fibre_at_x(0.0),
                     roads=road_graph(), params=params)
    row = out.iloc[0]
    track_km = 0.2 * c.road_winding_factor
    route_km = track_km + (4000 + 2900 + 100) / 1000
    assert row["road_km"] == pytest.approx(track_km, abs=1e-3)
    assert row["cost_road"] == pytest.approx(track_km * c.road_per_km, abs=1)
    assert row["backhaul"] == "fibre"
    assert row["backhaul_km"] == pytest.approx(route_km, abs=1e-3)
    assert row["cost_backhaul"] == pytest.approx(route_km * c.fibre_per_km, rel=1e-6)
    assert row["power"] == "grid"
    assert row["cost_power"] == pytest.approx(track_km * c.grid_power_per_km, abs=1)


def hub(x_km, y_km, backhaul="fiber"):
    pt = gpd.GeoSeries([Point(X0 + x_km * 1000, Y0 + y_km * 1000)], crs=UTM).to_crs(4326)
    return gpd.GeoDataFrame({"site_id": ["H"], "tech": ["3G"], "height_m": [30.0],
                             "status": ["active"], "backhaul": [backhaul]},
                            geometry=pt.to_numpy(), crs=4326)


def test_microwave_needs_line_of_sight_over_the_dem():
    c = CostModel()
    site = cands((2.5, 5.0, "macro", 40.0, np.nan))
    flat = site_costs(site, towers=hub(10.0, 5.0), params=PlanParams()).iloc[0]
    assert flat["backhaul"] == "microwave"
    assert flat["backhaul_hub"] == "H"
    assert flat["backhaul_km"] == pytest.approx(7.5, abs=0.01)
    assert flat["cost_backhaul"] == c.microwave_hop
    dem, transform = tiny_dem()  # a 900 m ridge at x = 6 km between site and hub
    raster = Raster(dem.astype(float), transform, CRS.from_user_input(UTM))
    blocked = site_costs(site, towers=hub(10.0, 5.0), dem=raster, params=PlanParams()).iloc[0]
    assert blocked["backhaul"] == "satellite"
    same_side = site_costs(site, towers=hub(4.0, 8.0), dem=raster,
                           params=PlanParams()).iloc[0]
    assert same_side["backhaul"] == "microwave"
    sat_hub = site_costs(site, towers=hub(4.0, 8.0, backhaul="satellite"), dem=raster,
                         params=PlanParams()).iloc[0]
    assert sat_hub["backhaul"] == "satellite"  # a satellite-fed site cannot relay


def test_microwave_over_a_dem_lying_elsewhere_is_as_over_flat_ground():
    from rasterio.transform import from_origin

    site = cands((2.5, 5.0, "macro", 40.0, np.nan))
    elsewhere = Raster(np.full((40, 40), 500.0), from_origin(X0 + 80_000, Y0, 100, 100),
                       CRS.from_user_input(UTM))
    flat = site_costs(site, towers=hub(10.0, 5.0), params=PlanParams())
    got = site_costs(site, towers=hub(10.0, 5.0), dem=elsewhere, params=PlanParams())
    assert got.iloc[0]["backhaul"] == "microwave"
    assert got.equals(flat)


def test_power_upgrades_small_cells_and_satellite_terminals():
    c = CostModel()
    out = site_costs(cands((3.0, 5.0, "macro", 40.0, np.nan),
                           (3.0, 5.0, "small_cell", 15.0, np.nan),
                           (3.0, 5.0, "upgrade", 30.0, np.nan),
                           (3.0, 5.0, "satellite", np.nan, 13.0)),
                     fibre=fibre_at_x(0.0), no_grid=np.array([True, True, True, True]),
                     params=PlanParams())
    macro, small, upgrade, sat = (out.iloc[i] for i in range(4))
    assert macro["power"] == "solar" and macro["cost_power"] == c.solar_power
    assert small["cost_site"] == c.small_cell
    assert small["cost_power"] == pytest.approx(c.solar_power * c.small_cell_power_share)
    assert small["cost_opex"] == pytest.approx(
        c.opex_per_year * c.small_cell_opex_share * c.annuity_factor, abs=1)
    assert upgrade["cost_site"] == c.upgrade_4g
    assert upgrade["backhaul"] == "existing" and upgrade["cost_backhaul"] == 0
    assert upgrade["power"] == "existing" and upgrade["cost_power"] == 0
    assert sat["cost_site"] == 13 * c.satellite_terminal
    assert sat["cost_opex"] == pytest.approx(
        13 * c.satellite_terminal_per_year * c.annuity_factor, abs=1)
    assert sat["cost"] == pytest.approx(sat["cost_site"] + sat["cost_opex"])


def test_annuity_and_cost_model_validation():
    assert CostModel(discount_rate=0.0, horizon_years=7).annuity_factor == 7
    c = CostModel(discount_rate=0.1, horizon_years=3)
    assert c.annuity_factor == pytest.approx(1 / 1.1 + 1 / 1.1**2 + 1 / 1.1**3)
    assert math.isclose(c.opex_present_value, c.opex_per_year * c.annuity_factor)
    from coverage.errors import ParameterError

    with pytest.raises(ParameterError, match=r"fibre_route_factor = 0.5 is out of range; use at"):
        CostModel(fibre_route_factor=0.5)
    with pytest.raises(ParameterError, match=r"new_tower = -1 is out of range; use at least 0"):
        CostModel(new_tower=-1)
