"""A world drawn over real relief (an SRTM tile of ../shared/data); skipped when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from conftest import REPO, SHARED_DATA
from coverage.datasets.generate import generate_demo, hidden_terrain
from coverage.datasets.realterrain import drainage
from coverage.errors import ParameterError

ROOTS = [Path(p) for p in (os.environ.get("COVGAP_SHARED_DATA"),) if p] + [
    SHARED_DATA, REPO.parents[1] / "shared" / "data"]
SRTM = "srtm/N21E105.hgt"
#: The Tam Đảo range (up to ~1,540 m) with the plains on either side.
CENTRE = (105.60, 21.50)


def _srtm() -> Path:
    path = next((root / SRTM for root in ROOTS if (root / SRTM).exists()), SHARED_DATA / SRTM)
    if not path.exists():
        pytest.skip(f"real data {path} absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="module")
def tamdao(tmp_path_factory):
    dem = _srtm()
    return dem, generate_demo(tmp_path_factory.mktemp("tamdao"), seed=7, scale=0.3, dem=dem,
                              centre=CENTRE)


def test_published_dem_is_the_block_mean_of_the_hidden_terrain(tamdao):
    dem, paths = tamdao
    fine, fine_transform, _ = hidden_terrain(7, scale=0.3, dem=dem, centre=CENTRE)
    with rasterio.open(paths["dem"]) as src:
        published = src.read(1)
        assert src.transform.c == fine_transform.c and src.transform.f == fine_transform.f
    r, c = published.shape
    block = fine.astype(float).reshape(r, 2, c, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(published, np.round(block).astype(np.int16))
    # the block mean hides detail: the hidden terrain varies inside the 100 m cells
    assert np.abs(fine[::2, ::2] - block).mean() > 2.0


def test_relief_is_the_srtm_where_the_villages_are(tamdao):
    dem, paths = tamdao
    villages = gpd.read_file(paths["villages"]).to_crs("EPSG:32648")
    pts = villages.geometry.representative_point()
    with rasterio.open(paths["dem"]) as src:
        left, bottom, right, top = src.bounds
        ours = np.array([v[0] for v in src.sample(zip(pts.x, pts.y, strict=True))], float)
    # every village lies inside the window drawn from the tile
    assert (villages.total_bounds >= [left, bottom, left, bottom]).all()
    assert (villages.total_bounds <= [right, top, right, top]).all()
    ll = pts.to_crs("EPSG:4326")
    with rasterio.open(dem) as src:
        srtm = np.array([v[0] for v in src.sample(zip(ll.x, ll.y, strict=True))], float)
        window = src.read(1, window=rasterio.windows.from_bounds(
            *villages.to_crs("EPSG:4326").total_bounds, src.transform))
    # the published heights are the tile's heights at the same places (not shifted or flipped)
    assert np.median(np.abs(ours - srtm)) < 25.0
    assert np.corrcoef(ours, srtm)[0, 1] > 0.9
    # within the tile's range over the window, give or take the added roughness
    valid = window[window > -1000]
    assert valid.min() - 60 <= ours.min() and ours.max() <= valid.max() + 60
    assert ours.max() - ours.min() > 150.0   # hill country, not a plain


def test_drainage_leaves_no_pit_and_sends_every_cell_out():
    y, x = np.mgrid[0:30, 0:40]
    z = np.abs(x - 20.0) + 0.2 * y              # a valley falling north (row 0)
    z[15, 10] -= 30.0                           # a closed depression on its flank
    recv, acc, filled = drainage(z)
    edge = np.zeros(z.shape, bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    assert (recv.reshape(z.shape)[~edge] >= 0).all()       # only the edges drain out
    assert acc[recv < 0].sum() == z.size                   # every cell reaches an edge once
    assert filled[15 * 40 + 10] > z[15, 10] + 25.0         # the pit filled to its spill
    assert acc[20] == acc.max()                            # the valley's mouth drains most


@pytest.mark.parametrize(("centre", "match"), [
    ((104.5, 21.5), "outside the DEM"),
    ((105.03, 21.5), "reaches beyond the DEM"),
    ((105.6, 22.3), "outside the DEM"),
])
def test_impossible_windows_are_refused_with_why(tmp_path, centre, match):
    with pytest.raises(ParameterError, match=match):
        generate_demo(tmp_path, scale=0.55, dem=_srtm(), centre=centre)


def test_unreadable_dem_and_missing_centre_are_refused(tmp_path):
    junk = tmp_path / "junk.hgt"
    junk.write_bytes(b"not a raster")
    with pytest.raises(ParameterError, match="cannot be read"):
        generate_demo(tmp_path / "a", scale=0.5, dem=junk, centre=CENTRE)
    with pytest.raises(ParameterError, match="needs both"):
        generate_demo(tmp_path / "b", scale=0.5, dem=junk)
