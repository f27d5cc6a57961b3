"""Real Vietnamese files from ../shared/data, read and joined; skipped when the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import REPO, SHARED_DATA
from coverage import io
from coverage.cli import main

#: ../shared/data beside the repository (or beside the worktrees' folder), or $COVGAP_SHARED_DATA
ROOTS = [Path(p) for p in (os.environ.get("COVGAP_SHARED_DATA"),) if p] + [
    SHARED_DATA, REPO.parents[1] / "shared" / "data"]


def need(rel: str):
    path = next((root / rel for root in ROOTS if (root / rel).exists()), SHARED_DATA / rel)
    if not path.exists():
        pytest.skip(f"real data {path} absent (see ../shared/data/README.md)")
    return path


def test_gadm_communes_read_with_mapping_and_joined_to_the_census_on_gid3():
    communes = need("vn-communes-gadm41/provinces/ha-noi.json")
    census = need("vn-census2019/VN_Population_ward.csv")
    v = io.read_villages(communes, id_col="GID_3", name_col="NAME_3")
    assert v["village_id"].is_unique and v["village_id"].str.startswith("VNM.27.").all()
    # GADM strips spaces from names ("CốngVị"); the folded key still matches the census's
    assert (v["name"] == v["NAME_3"]).all() and not v["name"].str.contains(" ").any()
    c = pd.read_csv(census, dtype={"ward_id": str}).dropna(subset=["ward_id"])
    joined = v.merge(c, left_on="village_id", right_on="ward_id", how="left",
                     validate="one_to_one")
    assert len(joined) == len(v)  # nothing lost, nothing doubled
    assert joined["total"].notna().mean() > 0.99
    assert 7.5e6 < joined["total"].sum() < 8.5e6  # Hà Nội, 2019 census: 8.05 million
    same_name = joined["name_key"] == joined["ward"].map(io.fold_name)
    assert same_name.mean() > 0.98


def test_gadm_communes_validate_with_column_options():
    communes = need("vn-communes-gadm41/provinces/lao-cai.json")
    result = CliRunner().invoke(main, ["validate", str(communes), "--col", "village_id=GID_3",
                                       "--col", "name=NAME_3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "analysis CRS would be EPSG:32648" in result.output


def test_worldpop_raster_keeps_its_total():
    import rasterio

    path = need("worldpop-vnm-1km/vnm_ppp_2020_1km_Aggregated_UNadj.tif")
    r = io.read_raster(path, what="population")
    with rasterio.open(path) as src:
        raw = src.read(1)
        nodata = src.nodata
    assert r.shape == raw.shape
    assert np.nansum(r.array) == pytest.approx(raw[raw != nodata].astype(float).sum())
    assert 9.0e7 < np.nansum(r.array) < 1.0e8  # Việt Nam, 2020
    assert r.crs.to_epsg() == 4326


def test_srtm_tile_voids_are_nan_and_place_is_from_the_name():
    import rasterio

    path = need("srtm/N21E105.hgt")
    r = io.read_raster(path, what="DEM")
    with rasterio.open(path) as src:
        raw = src.read(1)
    assert r.shape == (1201, 1201)
    assert int(np.isnan(r.array).sum()) == int((raw == -32768).sum()) > 0
    assert np.nanmax(r.array) == raw.max() > 1000  # Tam Đảo / Ba Vì
    assert r.bounds == pytest.approx((105 - 1 / 2400, 21 - 1 / 2400, 106 + 1 / 2400,
                                      22 + 1 / 2400))


def test_osm_places_shapefile_names_and_points():
    path = need("osm-vn-2018/osm_places_free/gis.osm_places_free_1.shp")
    places = io.read_vector(path, what="places")
    assert (places.geom_type == "Point").all()
    assert (places["fclass"] == "village").sum() > 3000
    hanoi = places[places["name"].map(io.fold_name) == "ha noi"]
    assert len(hanoi) >= 1
    pt = hanoi.geometry.iloc[0]
    assert 105.7 < pt.x < 106.0 and 20.9 < pt.y < 21.2


def test_real_province_classified_end_to_end_with_worldpop_and_srtm(tmp_path):
    """GADM communes of Thái Nguyên around Tam Đảo, WorldPop 1 km, the SRTM-3 tile N21E105
    (its north edge at 22 N cuts the area) and an OpenCelliD file made here."""
    import geopandas as gpd

    communes = need("vn-communes-gadm41/provinces/thai-nguyen.json")
    census = need("vn-census2019/VN_Population_ward.csv")
    worldpop = need("worldpop-vnm-1km/vnm_ppp_2020_1km_Aggregated_UNadj.tif")
    srtm = need("srtm/N21E105.hgt")
    g = gpd.read_file(communes)
    p = g.geometry.representative_point()
    g = g[p.x.between(105.6, 106.0) & p.y.between(21.55, 22.15)].reset_index(drop=True)
    assert 40 < len(g) < 150
    villages = tmp_path / "communes.geojson"
    g.to_file(villages, driver="GeoJSON")
    # three operators' cells at a third of the communes, as OpenCelliD exports them
    rng = np.random.default_rng(7)
    rows = []
    for i, pt in enumerate(p[p.index.isin(g.index)].iloc[::3]):
        for net, radio in ((4, "LTE"), (2, "UMTS"), (1, "GSM"), (4, "GSM")):
            rows.append({"radio": radio, "mcc": 452, "net": net, "area": 100 + i,
                         "cell": 1000 * i + net * 10 + len(radio), "unit": 0,
                         "lon": round(pt.x + rng.normal(0, 0.005), 6),
                         "lat": round(pt.y + rng.normal(0, 0.005), 6), "range": 3000,
                         "samples": 12, "changeable": 1, "created": 1_600_000_000,
                         "updated": 1_700_000_000, "averageSignal": 0})
    towers = tmp_path / "opencellid.csv"
    pd.DataFrame(rows).to_csv(towers, index=False)
    out = tmp_path / "classified.gpkg"
    result = CliRunner().invoke(main, [
        "classify", str(villages), "--id-col", "GID_3", "--name-col", "NAME_3",
        "--towers", str(towers), "--population", str(worldpop), "--dem", str(srtm),
        "-o", str(out), "--aggregate-out", str(tmp_path / "agg.csv")])
    assert result.exit_code == 0, result.output
    # the tile stops at 22 N: the run names the tile to add
    assert "does not cover" in result.output and "N22E105" in result.output
    c = gpd.read_file(out)
    assert sorted(c["village_id"]) == sorted(g["GID_3"])  # every commune, once
    assert set(c["class"]) <= {"unavailable", "available_inaccessible", "served"}
    assert (c["population"] > 0).all() and c["confidence"].between(0, 1).all()
    # people from the 1 km raster by exact cell fractions against the 2019 census
    counted = (pd.read_csv(census, dtype={"ward_id": str}).dropna(subset=["ward_id"])
               .drop_duplicates("ward_id").set_index("ward_id")["total"])
    ratio = c["population"].sum() / counted.reindex(c["village_id"]).sum()
    assert 0.9 < ratio < 1.12  # 1.01 (national totals: 97.3 M and 96.2 M)
