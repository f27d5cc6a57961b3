"""Open a saved map in a real headless Chromium with the network cut off.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` Python package (its
own bundled browsers are never downloaded: the system Chromium is launched by path). Skipped,
with the reason, when either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from coverage import maps

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("COVGAP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
XSS = '<img src=x onerror="window.__xss=1">'
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
N = 20


def _villages() -> gpd.GeoDataFrame:
    names = ["Nà Lốc", "Bản Phiệt", "Đồng Văn", "Khuổi Mạ", XSS] + [
        f"Thôn {i}" for i in range(5, N)
    ]
    classes = ["unavailable", "available_inaccessible", "served", None]
    geoms = [
        shapely.box(
            500_000 + (i % 5) * 1000,
            2_400_000 + (i // 5) * 1000,
            501_000 + (i % 5) * 1000,
            2_401_000 + (i // 5) * 1000,
        )
        for i in range(N)
    ]
    return gpd.GeoDataFrame(
        {
            "village_id": [f"{i:03d}" for i in range(N)],
            "name": names,
            "class": [classes[i % 4] for i in range(N)],
            "reasons": ["no_signal" if i % 4 == 0 else "" for i in range(N)],
            "population": np.arange(N) * 25.0,
            "pop_covered_share": np.linspace(0, 1, N),
            "pop_indoor_share": np.linspace(0, 0.7, N),
            "best_tech": ["4G"] * N,
            "operators": [1] * N,
            "n_tests": [0] * N,
            "median_download_mbps": [np.nan] * N,
            "confidence": [0.5] * N,
            "explanation": ["Chỉ có sóng 2G <script>window.__xss=2</script>"] * N,
        },
        geometry=geoms,
        crs="EPSG:32648",
    )


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    v = _villages()
    towers = gpd.GeoDataFrame(
        {"operator": ["Viettel", "<b>evil</b>", "VNPT"], "tech": ["LTE", "UMTS", "NR"]},
        geometry=gpd.points_from_xy([500_100, 502_100, 504_100], [2_400_100] * 3),
        crs="EPSG:32648",
    )
    plan = gpd.GeoDataFrame(
        {
            "rank": [1, 2],
            "site_id": ["S-1", "S-2"],
            "kind": ["new_site", "upgrade"],
            "tech": ["4G", "4G"],
            "cost": [1e5, 2e4],
            "pop_gain": [300, 40],
            "villages": ["000;004", ""],
        },
        geometry=gpd.points_from_xy([501_500, 503_500], [2_401_500, 2_403_500]),
        crs="EPSG:32648",
    )
    m = maps.village_map(v, plan=plan, towers=towers, title="Tỉnh thử nghiệm")
    rsrp = np.linspace(-125, -65, 40 * 50).reshape(40, 50)
    rsrp[:, :10] = np.nan
    m = maps.add_coverage_overlay(
        m, rsrp, Affine(100.0, 0.0, 500_000.0, 0.0, -100.0, 2_404_000.0), "EPSG:32648"
    )
    return maps.save_map(m, tmp_path_factory.mktemp("map") / "map.html")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    # COVGAP_REQUIRE_BROWSER=1 (for CI) turns a missing browser into a failure
    missing = pytest.fail if os.environ.get("COVGAP_REQUIRE_BROWSER") else pytest.skip
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) "
            "or set COVGAP_CHROMIUM to run the browser tests"
        )
    try:
        from playwright import sync_api
    except ImportError:
        missing("the 'playwright' package is not installed: pip install playwright")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 850},
            offline=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def loaded(browser, page_file: Path):
    """The map page, opened from file://, with every request and console error recorded."""
    requests: list[str] = []
    blocked: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        url = r.request.url
        if url.startswith(("file://", "data:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    page = browser.new_page()
    page.route("**/*", route)
    page.on("request", lambda req: requests.append(req.url))
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_file.as_uri())
    page.wait_for_function("window.covgapVillageLayer !== undefined", timeout=15_000)
    page.wait_for_timeout(300)
    yield (
        page,
        {
            "requests": requests,
            "blocked": blocked,
            "failed": failed,
            "errors": errors,
            "url": page_file.as_uri(),
        },
    )
    page.close()


def _village_point(page, name: str) -> dict[str, float]:
    """Page coordinates of the centre of the village called ``name`` (escaped in the data)."""
    return page.evaluate(
        """(name) => {
            const d = document.createElement('div'); d.textContent = name;
            const want = d.innerHTML.replace(/"/g, '&quot;');
            const l = covgapVillageLayer.getLayers().find(x => x.feature.properties.n === want);
            const p = covgapMap.latLngToContainerPoint(l.getBounds().getCenter());
            const r = covgapMap.getContainer().getBoundingClientRect();
            return {x: p.x + r.left, y: p.y + r.top};
        }""",
        name,
    )


def test_page_loads_offline_without_errors(loaded) -> None:
    page, rec = loaded
    assert rec["errors"] == []
    assert rec["blocked"] == []
    assert rec["failed"] == []
    assert set(rec["requests"]) == {rec["url"]}  # the page itself, nothing else
    assert page.evaluate("typeof L.markerClusterGroup") in ("function", "undefined")
    assert page.evaluate("L.version") == "1.9.4"


def test_all_villages_drawn_and_legend(loaded) -> None:
    page, _ = loaded
    assert page.evaluate("covgapVillageLayer.getLayers().length") == N
    assert page.evaluate("covgapMap.hasLayer(covgapVillageLayer)")
    legend = page.inner_text(".covgap-legend")
    assert "Chưa có băng rộng di động (5)" in legend
    assert "Đã được phục vụ (5)" in legend
    assert "Chưa rõ (5)" in legend
    assert page.locator(".leaflet-control-layers").count() == 1
    assert "<b>evil</b>" in page.inner_text(".leaflet-control-layers")  # shown as text
    assert page.evaluate("document.querySelectorAll('.leaflet-tile').length") == 0
    assert page.locator(".leaflet-image-layer").count() == 1  # coverage overlay
    assert page.locator(".covgap-site").count() == 2  # numbered plan sites


def test_hover_and_click_show_escaped_name(loaded) -> None:
    page, _ = loaded
    pt = _village_point(page, XSS)
    page.mouse.move(pt["x"] - 5, pt["y"] - 5)
    page.mouse.move(pt["x"], pt["y"])
    tip = page.locator(".leaflet-tooltip")
    tip.wait_for(timeout=5000)
    assert XSS in tip.inner_text()
    assert "<script>window.__xss=2</script>" in tip.inner_text()
    page.mouse.click(pt["x"], pt["y"])
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5000)
    text = popup.inner_text()
    assert XSS in text and "Mã thôn" in text and "004" in text
    assert popup.locator("img").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('.leaflet-container img[src=x]').length") == 0


def test_accent_insensitive_search(loaded) -> None:
    page, _ = loaded
    box = page.locator(".covgap-search-input")
    box.fill("Na Loc")
    hits = page.locator(".covgap-search-hit")
    assert hits.count() == 1 and hits.first.inner_text() == "Nà Lốc"
    box.fill("dong van")
    assert page.locator(".covgap-search-hit").first.inner_text() == "Đồng Văn"
    box.press("Enter")
    page.locator(".leaflet-popup-content").wait_for(timeout=5000)
    assert "Đồng Văn" in page.inner_text(".leaflet-popup-content")
    box.fill("")


def test_screenshot(browser, page_file: Path) -> None:
    """The map as a user first sees it; look at tests/artifacts/map.png."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_file.as_uri())
    page.wait_for_function("window.covgapVillageLayer !== undefined", timeout=15_000)
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map.png"))
    page.close()
    assert errors == []
    assert (ARTIFACTS / "map.png").stat().st_size > 20_000


def test_many_towers_cluster_offline(browser, tmp_path: Path) -> None:
    """Above 500 towers the vendored Leaflet.markercluster groups them, with no error."""
    rng = np.random.default_rng(1)
    towers = gpd.GeoDataFrame(
        {"operator": ["Viettel"] * 600, "tech": ["LTE"] * 600},
        geometry=gpd.points_from_xy(
            rng.uniform(500_000, 505_000, 600), rng.uniform(2_400_000, 2_404_000, 600)
        ),
        crs="EPSG:32648",
    )
    out = maps.save_map(maps.village_map(_villages(), towers=towers), tmp_path / "t.html")
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    page.goto(out.as_uri())
    page.wait_for_function("window.covgapVillageLayer !== undefined", timeout=15_000)
    page.wait_for_timeout(300)
    clusters = page.locator(".marker-cluster").count()
    page.close()
    assert errors == []
    assert requests == [out.as_uri()]
    assert clusters >= 1


def _open(browser, url: str, ready: str):
    """Open ``url`` recording console errors and every request; wait for ``ready`` (JS)."""
    rec: dict[str, list[str]] = {"errors": [], "requests": []}
    page = browser.new_page()
    page.on("pageerror", lambda exc: rec["errors"].append(str(exc)))
    page.on("console", lambda m: rec["errors"].append(m.text) if m.type == "error" else None)
    page.on("request", lambda req: rec["requests"].append(req.url))
    page.goto(url)
    page.wait_for_function(ready, timeout=15_000)
    page.wait_for_timeout(200)
    return page, rec


def test_boundaries_drawn(browser, tmp_path: Path) -> None:
    v = _villages()
    v["commune"] = ["Xã A" if i % 5 < 3 else "Xã B" for i in range(N)]
    v["district"] = "Huyện C"
    out = maps.save_map(maps.village_map(v, lang="en"), tmp_path / "b.html")
    page, rec = _open(browser, out.as_uri(), "window.covgapVillageLayer !== undefined")
    control = page.inner_text(".leaflet-control-layers")
    # 20 village fills + 2 commune + 1 district outlines, all as canvas-free SVG/canvas paths
    n_outlines = page.evaluate(
        """() => { let n = 0; covgapMap.eachLayer(l => {
            if (l.feature && l.feature.properties && !('c' in l.feature.properties)) n++; });
            return n; }"""
    )
    page.close()
    assert rec["errors"] == [] and rec["requests"] == [out.as_uri()]
    assert "Commune boundaries" in control and "District boundaries" in control
    assert n_outlines == 3


def test_national_index_links_to_province_pages(browser, tmp_path: Path) -> None:
    v = _villages()
    v["province"] = ["Lào Cai" if i % 5 < 2 else XSS for i in range(N)]
    result = maps.national_maps(v, tmp_path / "index.html", png=False)
    page, rec = _open(browser, result.index.as_uri(), "window.covgapRegionLayer !== undefined")
    assert page.evaluate("covgapRegionLayer.getLayers().length") == 2
    assert XSS in page.inner_text(".covgap-index-list")  # shown as text
    # a click on a province opens a popup linking to its page
    pt = page.evaluate(
        """() => { const l = covgapRegionLayer.getLayers().find(
                x => x.feature.properties.n === 'Lào Cai');
            const p = covgapMap.latLngToContainerPoint(l.getBounds().getCenter());
            const r = covgapMap.getContainer().getBoundingClientRect();
            return {x: p.x + r.left, y: p.y + r.top}; }"""
    )
    page.mouse.click(pt["x"], pt["y"])
    link = page.locator(".leaflet-popup-content a.covgap-open")
    link.wait_for(timeout=5000)
    assert link.get_attribute("href") == "lao-cai.html"
    link.click()
    page.wait_for_function("window.covgapVillageLayer !== undefined", timeout=15_000)
    drawn = page.evaluate("covgapVillageLayer.getLayers().length")
    assert page.evaluate("window.__xss") is None
    page.close()
    assert rec["errors"] == []
    assert rec["requests"] == [result.index.as_uri(), result.pages["Lào Cai"].as_uri()]
    assert drawn == 8


def test_report_prints_on_one_page(browser, tmp_path: Path) -> None:
    v = _villages()
    v["households"] = 10.0
    plan = gpd.GeoDataFrame(
        {"rank": [1, 2], "site_id": ["S-1", "S-2"], "kind": ["new_site", "upgrade"],
         "tech": ["4G", "4G"], "cost": [3.1e9, 0.9e9], "pop_gain": [300, 40],
         "villages": ["000;004", ""]},
        geometry=gpd.points_from_xy([501_500, 503_500], [2_401_500, 2_403_500]),
        crs="EPSG:32648",
    )
    out = maps.write_report(v, tmp_path / "report.html", plan=plan, title="Tỉnh thử nghiệm")
    page, rec = _open(browser, out.as_uri(), "document.readyState === 'complete'")
    images_ok = page.evaluate(
        "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    pdf = page.pdf(format="A4", print_background=True)
    page.close()
    assert rec["errors"] == [] and rec["requests"] == [out.as_uri()]
    assert images_ok
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 1, f"the report prints on {pages} A4 pages"


@pytest.fixture(scope="module")
def demo_map(demo_run) -> tuple[Path, int]:
    """The map `covgap demo` writes, and the number of villages classified."""
    result, _ = demo_run
    return result.outputs["map"], len(result.classified)


def test_demo_map(browser, demo_map: tuple[Path, int]) -> None:
    """The demo map opens offline, draws every village, has its legend and popups."""
    path, n_villages = demo_map
    page, rec = _open(browser, path.as_uri(), "window.covgapVillageLayer !== undefined")
    drawn = page.evaluate("covgapVillageLayer.getLayers().length")
    legend = page.locator(".covgap-legend").count()
    pt = page.evaluate(
        """() => { const l = covgapVillageLayer.getLayers()[0];
            const p = covgapMap.latLngToContainerPoint(l.getBounds().getCenter());
            const r = covgapMap.getContainer().getBoundingClientRect();
            return {x: p.x + r.left, y: p.y + r.top}; }"""
    )
    page.mouse.click(pt["x"], pt["y"])
    page.locator(".leaflet-popup-content").wait_for(timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"))
    page.close()
    assert rec["errors"] == [] and rec["requests"] == [path.as_uri()]
    assert legend == 1 and drawn == n_villages
