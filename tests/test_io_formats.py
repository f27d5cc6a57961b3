"""Every contract format in, any CRS (VN-2000 zones included), told by content and extension."""

from __future__ import annotations

import logging
import unicodedata

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS

from conftest import tiny_sites, tiny_villages
from coverage import io
from coverage.errors import RepairWarning

VILLAGE_FORMATS = [".gpkg", ".geojson", ".shp", ".fgb", ".parquet", ".kml", ".csv"]


def write_any(gdf: gpd.GeoDataFrame, path) -> None:
    """Write ``gdf`` as its extension says, the way other tools write these formats."""
    ext = path.suffix
    if ext == ".parquet":
        gdf.to_parquet(path)
    elif ext == ".kml":
        pyogrio.write_dataframe(gdf.to_crs(4326), path, driver="KML")
    elif ext == ".csv":  # WKT geometry in EPSG:4326, ids as text
        df = pd.DataFrame(gdf.drop(columns="geometry"))
        df["geometry"] = gdf.to_crs(4326).geometry.to_wkt()
        df.to_csv(path, index=False)
    else:
        gdf.to_file(path)


@pytest.mark.parametrize("ext", VILLAGE_FORMATS)
def test_villages_every_format_keeps_ids_names_and_place(tmp_path, ext):
    v = tiny_villages()
    path = tmp_path / f"villages{ext}"
    write_any(v, path)
    got = io.read_villages(path)
    assert len(got) == len(v)
    assert sorted(got["village_id"]) == sorted(v["village_id"])  # "0001" keeps its zeros
    row = got.set_index("village_id").loc["0001"]
    assert row["name"] == "Bản Nà Lốc"
    assert row["name_key"] == "ban na loc"
    assert float(row["population"]) == 400.0
    # the polygon is where it was, whatever CRS the format stored
    a = v.to_crs(4326).set_index("village_id").geometry.loc["0001"]
    b = got.to_crs(4326).set_index("village_id").geometry.loc["0001"]
    assert shapely.hausdorff_distance(a, b) < 1e-6
    assert not shapely.has_z(got.geometry.to_numpy()).any()


@pytest.mark.parametrize("ext", [".csv", ".gpkg", ".geojson", ".parquet", ".fgb"])
def test_site_table_every_format(tmp_path, ext):
    s = tiny_sites()
    path = tmp_path / f"sites{ext}"
    if ext == ".csv":
        s.to_csv(path, index=False)
    else:
        gdf = gpd.GeoDataFrame(s.drop(columns=["lon", "lat"]),
                               geometry=gpd.points_from_xy(s.lon, s.lat), crs=4326)
        write_any(gdf.to_crs(3405), path)  # VN-2000 / UTM 48N
    t = io.read_towers(path)
    assert sorted(t["site_id"]) == ["E1", "W1", "W1"]
    assert sorted(t["tech"]) == ["2G", "3G", "4G"]
    assert t.crs.to_epsg() == 4326
    w1 = t[t.site_id == "W1"].geometry.iloc[0]
    assert w1.x == pytest.approx(s.lon.iloc[0], abs=1e-6)
    assert w1.y == pytest.approx(s.lat.iloc[0], abs=1e-6)


@pytest.mark.parametrize("ext", [".csv", ".gpkg", ".geojson", ".parquet"])
def test_point_tests_every_format(tmp_path, ext):
    df = pd.DataFrame({"lon": [105.80, 105.81], "lat": [21.00, 21.01], "tech": ["LTE", "none"],
                       "rsrp_dbm": [-95.0, np.nan], "download_mbps": [12.5, np.nan],
                       "timestamp": ["2025-01-01T10:00:00+07:00", "2025-01-02T10:00:00Z"]})
    path = tmp_path / f"tests{ext}"
    if ext == ".csv":
        df.to_csv(path, index=False)
    else:
        write_any(gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.lon, df.lat), crs=4326),
                  path)
    m = io.read_measurements(path)
    assert list(m["tech"]) == ["4G", "none"]
    assert m["download_mbps"].iloc[0] == 12.5
    assert m["timestamp"].iloc[0] == pd.Timestamp("2025-01-01T03:00:00Z")
    assert m.geometry.x.iloc[1] == pytest.approx(105.81)


def quadkey(lon: float, lat: float, zoom: int = 16) -> str:
    """Bing quadkey of the tile holding a point (Microsoft's published arithmetic)."""
    n = 2 ** zoom
    x = int((lon + 180) / 360 * n)
    s = np.sin(np.radians(lat))
    y = int((0.5 - np.log((1 + s) / (1 - s)) / (4 * np.pi)) * n)
    return "".join(str(((x >> i) & 1) + 2 * ((y >> i) & 1)) for i in range(zoom - 1, -1, -1))


HANOI = [(105.8542, 21.0285), (105.8600, 21.0300)]


def ookla_frame(with_tile: bool = True) -> pd.DataFrame:
    # zoom-16 tiles in Hà Nội; the tile column is Ookla's WKT polygon
    keys = [quadkey(*p) for p in HANOI]
    df = pd.DataFrame({"quadkey": keys, "avg_d_kbps": [25_000, 3_000],
                       "avg_u_kbps": [8_000, 500], "avg_lat_ms": [30, 80], "tests": [12, 3],
                       "devices": [5, 2]})
    if with_tile:
        from coverage.io.measurements import _quadkey_tiles
        df.insert(1, "tile", shapely.to_wkt(_quadkey_tiles(df["quadkey"])))
    return df


@pytest.mark.parametrize("kind", ["parquet", "csv", "csv-quadkey-only"])
def test_ookla_tiles_parquet_csv_and_quadkey_only(tmp_path, kind):
    df = ookla_frame(with_tile=kind != "csv-quadkey-only")
    path = tmp_path / ("ookla.parquet" if kind == "parquet" else "ookla.csv")
    if kind == "parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    m = io.read_measurements(path)
    assert list(m["download_mbps"]) == [25.0, 3.0]
    assert list(m["weight"]) == [12.0, 3.0]
    assert (m["source"] == "ookla").all()
    # each tile centre is within half a zoom-16 tile (~600 m) of the point it was made from
    for (lon, lat), pt in zip(HANOI, m.geometry, strict=True):
        assert abs(pt.x - lon) < 0.0055 and abs(pt.y - lat) < 0.0052


def test_quadkey_tiles_match_web_mercator_arithmetic():
    from coverage.io.measurements import _quadkey_tiles

    (tile,) = _quadkey_tiles(pd.Series(["0"]))
    assert tile.bounds == pytest.approx((-180, 0, 0, 85.0511287798), abs=1e-6)
    (tile,) = _quadkey_tiles(pd.Series(["3"]))
    assert tile.bounds == pytest.approx((0, -85.0511287798, 180, 0), abs=1e-6)
    tiles = _quadkey_tiles(pd.Series([quadkey(*p) for p in HANOI]))
    assert all(t.contains(shapely.Point(p)) for t, p in zip(tiles, HANOI, strict=True))


def test_srtm_hgt_tile_built_in_code(tmp_path):
    import rasterio

    n = 1201
    arr = np.full((n, n), 120, dtype=">i2")
    arr[0, 0] = -32768  # a void
    arr[600, 600] = 1539
    path = tmp_path / "N21E105.hgt"
    path.write_bytes(arr.tobytes())
    r = io.read_raster(path, what="DEM")
    assert r.shape == (n, n)
    assert np.isnan(r.array[0, 0]) and r.array[600, 600] == 1539 and r.array[5, 5] == 120
    assert r.crs.to_epsg() == 4326
    assert r.bounds == pytest.approx((104.99958, 20.99958, 106.00042, 22.00042), abs=1e-4)
    with rasterio.open(path) as src:
        assert src.driver == "SRTMHGT"


HANOI_TM3 = (  # the Hà Nội provincial zone as offices hand it out: PROJ with 7 parameters
    "+proj=tmerc +lat_0=0 +lon_0=105.75 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 "
    "+towgs84=-191.90441429,-39.30318279,-111.45032835,-0.00928836,0.01975479,"
    "-0.00427372,0.252906278 +units=m +no_defs")


@pytest.mark.parametrize(("crs", "name"), [
    ("EPSG:3405", "VN-2000 / UTM zone 48N"),
    ("EPSG:3406", "VN-2000 / UTM zone 49N"),
    ("EPSG:5897", "VN-2000 / TM-3 zone 482"),
    ("EPSG:9210", "VN-2000 / TM-3 105-45"),
    (HANOI_TM3, None),
])
def test_vn2000_national_and_provincial_zones(tmp_path, crs, name, caplog):
    if name is not None:
        assert CRS.from_user_input(crs).name == name
    v = tiny_villages().to_crs(4326)
    v = v.assign(geometry=v.geometry.translate(0.4, -1.6))  # into Hà Nội (~105.5E, 21N)
    if name is None:  # a PROJ string comes with a file that has no .prj: --assume-crs
        path = tmp_path / "vn2000.shp"
        v.to_crs(crs).to_file(path)
        path.with_suffix(".prj").unlink()
        kwargs = {"assume_crs": crs}
    else:
        path = tmp_path / "vn2000.gpkg"
        v.to_crs(crs).to_file(path)
        kwargs = {}
    with caplog.at_level(logging.INFO, logger="coverage"):
        got = io.read_villages(path, **kwargs)
        metric = io.metric_crs(got)
    back = got.to_crs(4326).set_index("village_id").geometry
    want = v.set_index("village_id").geometry
    # through VN-2000 and its Helmert shift to WGS 84 and back: millimetres
    assert shapely.hausdorff_distance(back.loc["0001"], want.loc["0001"]) < 1e-7
    assert metric.to_epsg() == 32648
    assert "analysis CRS: EPSG:32648" in caplog.text


def test_vn2000_without_prj_is_refused_with_a_vn2000_hint_then_read_with_assume_crs(tmp_path):
    v = tiny_villages().to_crs(3405)
    path = tmp_path / "noprj.shp"
    v.to_file(path)
    path.with_suffix(".prj").unlink()
    from coverage.errors import CRSError
    with pytest.raises(CRSError, match="EPSG:3405"):
        io.read_villages(path)
    got = io.read_villages(path, assume_crs="EPSG:3405")
    assert got.crs.to_epsg() == 3405 and len(got) == 12


def test_format_is_told_by_content_not_only_by_extension(tmp_path):
    v = tiny_villages()
    real = tmp_path / "villages.geojson"
    v.to_file(real)
    misnamed = tmp_path / "villages.csv"
    misnamed.write_bytes(real.read_bytes())
    assert io.sniff_format(misnamed) == "GeoJSON"
    with pytest.warns(RepairWarning, match="content is GeoJSON"):
        got = io.read_villages(misnamed)
    assert sorted(got.village_id) == sorted(v.village_id)
    noext = tmp_path / "villages_export"
    v.to_file(tmp_path / "x.gpkg")
    noext.write_bytes((tmp_path / "x.gpkg").read_bytes())
    assert io.sniff_format(noext) == "GPKG"
    assert len(io.read_villages(noext)) == 12


def test_multi_layer_geopackage_layer_choice(tmp_path):
    path = tmp_path / "many.gpkg"
    v = tiny_villages()
    v.to_file(path, layer="communes")
    v.head(3).to_file(path, layer="villages")
    assert len(io.read_villages(path)) == 3  # the layer named like the input
    assert len(io.read_villages(f"{path}|layername=communes")) == 12
    other = tmp_path / "two.gpkg"
    v.to_file(other, layer="a")
    v.to_file(other, layer="b")
    from coverage.errors import InputError
    with pytest.raises(InputError, match=r"2 layers \(a, b\).*layername="):
        io.read_villages(other)


def test_csv_from_excel_semicolons_decimal_commas_and_cp1258(tmp_path):
    text = "village_id;name;lon;lat\n0007;Bản Nà Lốc;105,82;21,03\n"
    path = tmp_path / "excel.csv"
    path.write_bytes(io.encodings.encode(text, "cp1258") if hasattr(io, "encodings")
                     else text.encode("cp1258"))
    with pytest.warns(RepairWarning, match="Windows-1258"):
        got = io.read_vector(path, what="points")
    assert got["village_id"].iloc[0] == "0007"
    assert unicodedata.normalize("NFC", got["name"].iloc[0]) == "Bản Nà Lốc"
    assert got.geometry.x.iloc[0] == pytest.approx(105.82)


def test_write_table_promotes_mixed_polygons_and_round_trips(tmp_path):
    v = tiny_villages()
    v.loc[0, "geometry"] = shapely.MultiPolygon([v.geometry.iloc[0]])
    for ext in (".gpkg", ".shp", ".geojson", ".fgb", ".parquet"):
        out = tmp_path / f"o{ext}"
        io.write_table(v, out)
        back = io.read_villages(out)
        assert sorted(back.village_id) == sorted(v.village_id)
        assert np.allclose(sorted(back.area), sorted(v.area))
