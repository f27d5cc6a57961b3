"""Tests for coverage.maps: offline HTML, escaping, legend, search data, overlay, size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from coverage import maps
from coverage.errors import CRSError, OutputExistsError, ParameterError, SchemaError

XSS = '<img src=x onerror="window.__xss=1">'
NAMES = ["Nà Lốc", "Bản Phiệt", "Đồng Văn", "Khuổi Mạ", XSS]
CLASSES = ["unavailable", "available_inaccessible", "served", None]


def make_villages(n: int = 20, *, size_m: float = 1000.0, vertices: int = 4) -> gpd.GeoDataFrame:
    """n villages on a grid in UTM 48N (northern Vietnam), Vietnamese names, one malicious."""
    cols = int(np.ceil(np.sqrt(n)))
    x0, y0 = 500_000.0, 2_400_000.0
    geoms = []
    rng = np.random.default_rng(0)
    for i in range(n):
        cx = x0 + (i % cols) * size_m + size_m / 2
        cy = y0 + (i // cols) * size_m + size_m / 2
        if vertices == 4:
            geoms.append(
                shapely.box(cx - size_m / 2, cy - size_m / 2, cx + size_m / 2, cy + size_m / 2)
            )
        else:  # wiggly blobs: many vertices, so simplification has work to do
            ang = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
            r = size_m * 0.45 * (1 + 0.08 * rng.standard_normal(vertices))
            geoms.append(shapely.Polygon(np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)]))
    names = [NAMES[i] if i < len(NAMES) else f"Thôn Bản {i}" for i in range(n)]
    return gpd.GeoDataFrame(
        {
            "village_id": [f"{i:05d}" for i in range(n)],
            "name": names,
            "commune": ["Xã Tả Phìn"] * n,
            "class": [CLASSES[i % 4] for i in range(n)],
            "reasons": ["no_signal;2g_only" if i % 4 == 0 else "" for i in range(n)],
            "population": [float(100 + i) if i % 7 else np.nan for i in range(n)],
            "pop_covered_share": np.linspace(0, 1, n),
            "pop_indoor_share": np.linspace(0, 0.8, n),
            "best_tech": ["4G" if i % 2 else None for i in range(n)],
            "operators": [i % 3 for i in range(n)],
            "n_tests": [i % 6 for i in range(n)],
            "median_download_mbps": [np.nan if i % 2 else 3.5 for i in range(n)],
            "confidence": np.linspace(0.2, 0.9, n),
            "explanation": ["Sóng 4G yếu trong nhà <b>"] * n,
        },
        geometry=geoms,
        crs="EPSG:32648",
    )


def make_towers(n: int = 6) -> gpd.GeoDataFrame:
    xs = np.linspace(500_500, 504_500, n)
    return gpd.GeoDataFrame(
        {"operator": (["Viettel", "<b>evil</b>"] * n)[:n], "tech": (["LTE", "3G"] * n)[:n]},
        geometry=gpd.points_from_xy(xs, np.full(n, 2_401_000.0)),
        crs="EPSG:32648",
    )


def make_plan() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "rank": [2, 1],
            "site_id": ["S-02", "S-01"],
            "kind": ["upgrade", "new_site"],
            "tech": ["4G", "4G"],
            "cost": [20_000.0, 120_000.0],
            "pop_gain": [50, 300],
            "villages": ["", "00000;00004"],
        },
        geometry=gpd.points_from_xy([503_500, 501_500], [2_402_500, 2_401_500]),
        crs="EPSG:32648",
    )


def script_and_link_urls(page: str) -> list[str]:
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page, flags=re.IGNORECASE)
    return [u for t in tags for u in re.findall(r"(?:src|href)\s*=\s*[\"']?([^\"'\s>]+)", t)]


@pytest.fixture
def saved(tmp_path: Path) -> str:
    m = maps.village_map(
        make_villages(), plan=make_plan(), towers=make_towers(), title="Tỉnh Lào Cai"
    )
    return maps.save_map(m, tmp_path / "map.html").read_text(encoding="utf-8")


def test_no_external_scripts_or_stylesheets(saved: str) -> None:
    urls = script_and_link_urls(saved)
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls
    for cdn in ("cdn.jsdelivr.net", "code.jquery.com", "cdnjs.cloudflare.com", "bootstrapcdn"):
        assert cdn not in saved


def test_leaflet_inlined(saved: str) -> None:
    assert 't.version="1.9.4"' in saved  # Leaflet's own code, not a link
    assert ".leaflet-container" in saved  # its stylesheet
    assert "images/layers.png" not in saved  # control icons are data URIs
    assert "window.covgap" in saved
    assert "sourceMappingURL" not in saved


def test_default_base_layer_is_blank(saved: str) -> None:
    # OSM is offered in the layer control but not added to the map on load
    osm = re.search(r"var (tile_layer_\w+) = L\.tileLayer\(", saved)
    assert osm is not None
    assert f"{osm.group(1)}.addTo(" not in saved


def test_malicious_name_is_escaped(saved: str) -> None:
    assert "<img src=x onerror" not in saved
    assert "<b>evil</b>" not in saved and "<b>x" not in saved
    # appears only HTML-escaped (&lt;img ...) and, inside embedded JSON, with & as \u0026
    assert "\\u0026lt;img src=x onerror=\\u0026quot;window.__xss=1" in saved
    assert "</script" not in _data_blobs(saved)


def _data_blobs(page: str) -> str:
    return "".join(re.findall(r"covgap\.\w+\(\s*\w+, (.*?)\);\n", page, flags=re.DOTALL))


def _village_data(page: str) -> dict:
    match = re.search(r"covgap\.villages\(\s*\w+, (\{.*?\}), (\{.*?\})\);\n", page, re.DOTALL)
    assert match, "village layer not found"
    return json.loads(match.group(1)), json.loads(match.group(2))


def test_village_data_and_search_keys(saved: str) -> None:
    data, opts = _village_data(saved)
    feats = data["features"]
    assert len(feats) == 20
    props = {f["properties"]["k"]: f["properties"] for f in feats}
    assert "na loc" in props and props["na loc"]["n"] == "Nà Lốc"
    assert "dong van" in props  # đ folded to d
    assert props["na loc"]["c"] == "unavailable"
    # the runtime folds queries the same way
    assert 'normalize("NFD")' in saved and "\\u0111" in saved
    # coordinates rounded to 5 decimals
    coords = re.findall(r"\d+\.(\d+)", json.dumps(feats[0]["geometry"]))
    assert coords and max(len(c) for c in coords) <= 5
    # every village has its full row in the popup, NaN left out
    assert len(opts["fields"]) == len(feats[0]["properties"]["v"])


def test_legend_counts_and_labels_vi(saved: str) -> None:
    _, opts = _village_data(saved)
    legend = {row[0]: (row[1], row[2]) for row in opts["legend"]}
    assert legend["unavailable"] == ("Chưa có băng rộng di động", 5)
    assert legend["served"][1] == 5
    assert legend["unknown"][1] == 5
    assert opts["legendTitle"].startswith("Phân loại")
    assert "Tên" in opts["fields"] and "Dân số" in opts["fields"]
    assert json.dumps("Thôn/bản") in saved  # layer control name


def test_lang_en_changes_labels(tmp_path: Path) -> None:
    page = maps.save_map(
        maps.village_map(make_villages(), towers=make_towers(), lang="en"), tmp_path / "en.html"
    ).read_text(encoding="utf-8")
    _, opts = _village_data(page)
    assert opts["legendTitle"].startswith("Village class")
    assert opts["classes"]["served"] == "Served"
    assert "Name" in opts["fields"] and "Population" in opts["fields"]
    assert '"Villages"' in page and '"Blank (works offline)"' in page
    assert "Chưa có băng rộng" not in page


def test_bad_inputs() -> None:
    v = make_villages(4)
    with pytest.raises(ParameterError):
        maps.village_map(v, lang="fr")
    with pytest.raises(SchemaError):
        maps.village_map(v.drop(columns="class"))
    with pytest.raises(CRSError):
        maps.village_map(v.set_crs(None, allow_override=True))


def test_tolerates_missing_optional_columns_and_geometry(tmp_path: Path) -> None:
    v = make_villages(8)[["village_id", "name", "class", "geometry"]]
    v.loc[3, "geometry"] = None
    v.loc[4, "class"] = None
    v.loc[5, "name"] = None  # falls back to the id
    page = maps.save_map(maps.village_map(v, lang="en"), tmp_path / "m.html").read_text("utf-8")
    data, opts = _village_data(page)
    assert len(data["features"]) == 7
    assert "00005" in [f["properties"]["n"] for f in data["features"]]
    assert "not drawn" in opts["note"]
    assert sum(row[2] for row in opts["legend"]) == 8


def test_coverage_overlay_embedded_as_data_uri(tmp_path: Path) -> None:
    rsrp = np.linspace(-130, -60, 80 * 60).reshape(80, 60)
    rsrp[:10] = np.nan
    transform = Affine(50.0, 0.0, 500_000.0, 0.0, -50.0, 2_404_000.0)
    m = maps.village_map(make_villages())
    m = maps.add_coverage_overlay(m, rsrp, transform, "EPSG:32648", name="RSRP <4G>")
    page = maps.save_map(m, tmp_path / "cov.html").read_text(encoding="utf-8")
    assert re.search(r"L\.imageOverlay\(\s*\"data:image/png;base64,[A-Za-z0-9+/=]{100,}\"", page)
    assert "RSRP &lt;4G&gt;" in page or "RSRP \\u0026lt;4G\\u0026gt;" in page
    assert "<4G>" not in page
    # layer control is rebuilt last and lists the overlay
    assert page.count("L.control.layers(") == 1
    with pytest.raises(ParameterError):
        maps.add_coverage_overlay(m, rsrp[0], transform, "EPSG:32648")


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "map.html"
    m = maps.village_map(make_villages(4))
    maps.save_map(m, out)
    first = out.read_bytes()
    maps.save_map(m, out)  # replace in place, same result
    assert out.read_bytes() == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.html"]
    assert out.stat().st_mode & 0o777 == 0o644


def test_save_refuses_unembeddable_plugin(tmp_path: Path) -> None:
    from folium import plugins

    m = maps.village_map(make_villages(4))
    plugins.Fullscreen().add_to(m)  # loads its own script from a CDN
    with pytest.raises(ParameterError, match="Fullscreen"):
        maps.save_map(m, tmp_path / "x.html")
    assert not list(tmp_path.iterdir())


def test_many_towers_are_clustered_and_inlined(tmp_path: Path) -> None:
    towers = make_towers(600)
    towers["operator"] = "Viettel"
    page = maps.save_map(
        maps.village_map(make_villages(4), towers=towers), tmp_path / "t.html"
    ).read_text(encoding="utf-8")
    assert "/* leaflet.markercluster.js (vendored" in page and "MarkerClusterGroup=" in page
    assert "/* MarkerCluster.Default.css (vendored" in page
    assert '"cluster":true' in page
    assert not [u for u in script_and_link_urls(page) if "//" in u]


def test_composes_on_an_existing_map(tmp_path: Path) -> None:
    m = maps.village_map(make_villages(4))
    m2 = maps.village_map(make_villages(4), m=m, lang="en")
    assert m2 is m
    page = maps.save_map(m, tmp_path / "c.html").read_text(encoding="utf-8")
    assert page.count("L.control.layers(") == 1


def test_static_png(tmp_path: Path) -> None:
    out = maps.static_map_png(make_villages(), tmp_path / "m.png", plan=make_plan(), lang="en")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_fold() -> None:
    assert maps.fold("Nà  Lốc") == "na loc"
    assert maps.fold("ĐỒNG văn") == "dong van"
    assert maps.fold(None) == ""


@pytest.mark.slow
def test_5000_villages_under_15_mb(tmp_path: Path) -> None:
    v = make_villages(5000, size_m=800.0, vertices=60)
    m = maps.village_map(v, towers=make_towers(800), plan=make_plan())
    out = maps.save_map(m, tmp_path / "big.html")
    size = out.stat().st_size
    print(f"5,000 villages: {size / 1e6:.2f} MB")  # shown with -s; the report quotes it
    assert size < 15e6
    data, _ = _village_data(out.read_text(encoding="utf-8"))
    assert len(data["features"]) == 5000


def _layer_data(page: str, kind: str) -> list[tuple[dict, dict]]:
    """(data, options) of every covgap.<kind> layer in the page."""
    found = re.findall(rf"covgap\.{kind}\(\s*\w+, (.*?), (\{{[^\n]*?\}})\);\n", page, re.DOTALL)
    return [(json.loads(d), json.loads(o)) for d, o in found]


def test_commune_and_district_outlines_from_columns(tmp_path: Path) -> None:
    v = make_villages(16)  # 4 x 4 grid of 1 km squares
    v["commune"] = ["Xã A" if i % 4 < 2 else "Xã <B>" for i in range(16)]
    v["district"] = "Huyện Một"
    page = maps.save_map(maps.village_map(v, lang="en"), tmp_path / "b.html").read_text("utf-8")
    outlines = _layer_data(page, "outlines")
    assert len(outlines) == 2
    (communes, c_opts), (districts, d_opts) = outlines
    assert sorted(f["properties"]["n"] for f in communes["features"]) == ["Xã &lt;B&gt;", "Xã A"]
    assert len(districts["features"]) == 1 and d_opts["weight"] > c_opts["weight"]
    # each commune is the union of its 8 villages: a 2 x 4 km rectangle
    area = shapely.from_geojson(json.dumps(communes["features"][0]["geometry"]))
    assert len(shapely.get_coordinates(area)) == 5  # inner edges gone
    assert '"Commune boundaries"' in page and '"District boundaries"' in page
    # explicit boundaries replace the derived ones; {} draws none
    none = maps.save_map(maps.village_map(v, boundaries={}), tmp_path / "n.html")
    assert _layer_data(none.read_text("utf-8"), "outlines") == []


def test_coverage_below_floor_is_transparent(tmp_path: Path) -> None:
    import base64
    import io as _io

    from PIL import Image

    rsrp = np.full((40, 40), -80.0)
    rsrp[:, :20] = -130.0  # below vmin_dbm = -120: no usable signal
    m = maps.village_map(make_villages(4), coverage=(
        rsrp, Affine(50.0, 0.0, 500_000.0, 0.0, -50.0, 2_402_000.0), "EPSG:32648"))
    page = maps.save_map(m, tmp_path / "c.html").read_text("utf-8")
    uri = re.search(r'L\.imageOverlay\(\s*"data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    alpha = np.asarray(Image.open(_io.BytesIO(base64.b64decode(uri.group(1)))))[..., 3]
    w = alpha.shape[1]
    assert (alpha[:, : w // 2 - 2] == 0).all() and (alpha[:, w // 2 + 2 :] == 255).all()


def test_national_maps_index_and_pages(tmp_path: Path) -> None:
    v = make_villages(30)
    v["province"] = ["Lào Cai"] * 10 + ["Hà Giang"] * 10 + [XSS] * 9 + [None]
    out = maps.national_maps(v, tmp_path / "index.html", plan=make_plan(), towers=make_towers())
    assert set(out.pages) == {"Lào Cai", "Hà Giang", XSS, ""}
    assert out.pages["Lào Cai"].name == "lao-cai.html"
    assert out.pages["Hà Giang"].name == "ha-giang.html"
    assert out.pages[""].name == "unnamed.html"
    # every village on exactly one page
    counts = []
    for path in out.pages.values():
        data, _ = _village_data(path.read_text("utf-8"))
        counts.append(len(data["features"]))
    assert sorted(counts) == [1, 9, 10, 10]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out.pngs.values())
    index = out.index.read_text("utf-8")
    (regions, _), = _layer_data(index, "regions")
    props = {f["properties"]["n"]: f["properties"] for f in regions["features"]}
    assert props["Lào Cai"]["u"] == "lao-cai.html"
    assert html_escaped(XSS) in props
    assert "<img src=x" not in index
    # an index re-run refuses to overwrite, before writing anything
    before = out.index.stat().st_mtime_ns
    with pytest.raises(OutputExistsError):
        maps.national_maps(v, tmp_path / "index.html")
    assert out.index.stat().st_mtime_ns == before


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_group_figures_share_by_people() -> None:
    v = make_villages(8)
    v["province"] = ["P"] * 8
    v["population"] = 100.0
    f = maps.group_figures(v, "province")
    assert f.loc["P", "villages"] == 8
    assert f.loc["P", "unavailable_share"] == pytest.approx(2 / 8)
    with pytest.raises(SchemaError, match="district"):
        maps.group_figures(v, "district")


def test_cli_map_coverage_and_by_province(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conftest import write_tif
    from coverage.cli import main

    v = make_villages(12)
    v["province"] = ["Lào Cai"] * 6 + ["Yên Bái"] * 6
    v.to_file(tmp_path / "c.gpkg")
    rsrp = np.linspace(-125, -65, 60 * 60).reshape(60, 60).astype("float32")
    write_tif(tmp_path / "cov.tif", rsrp, Affine(100.0, 0, 499_000, 0, -100.0, 2_405_000),
              "EPSG:32648", nodata=-9999)
    res = CliRunner().invoke(main, ["map", str(tmp_path / "c.gpkg"), "--coverage",
                                    str(tmp_path / "cov.tif"), "-o", str(tmp_path / "m.html")])
    assert res.exit_code == 0, res.output
    assert "L.imageOverlay(" in (tmp_path / "m.html").read_text("utf-8")
    res = CliRunner().invoke(main, ["map", str(tmp_path / "c.gpkg"), "--by", "province",
                                    "--lang", "en", "-o", str(tmp_path / "nat" / "index.html")])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "nat").iterdir())
    assert names == ["index.html", "lao-cai.html", "lao-cai.png", "yen-bai.html", "yen-bai.png"]
    res = CliRunner().invoke(main, ["map", str(tmp_path / "c.gpkg"), "--by", "commune_x",
                                    "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1 and "commune_x" in res.output and "Traceback" not in res.output
