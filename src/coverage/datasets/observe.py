"""What the world lets us observe: crowdsourced speed tests and Ookla open-data tiles.

Tests are drawn where people are (towns weigh more than the country) and along the roads,
from a user of each operator in proportion to market share. The handset camps on the best
technology its operator offers at that spot; the reported level is the true field plus fast
fading and device error (σ = 3.5 dB); the speed follows the true throughput model with a
time-of-day spread. Testers favour places with signal: a share of the tests that would have
been taken where the handset barely camps, or not at all, is never taken
(``WorldPhysics.test_signal_bias``), so the tests see better signal than the residents do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from ._grid import UTM_CRS, Grid
from .field import Field
from .population import ARCSEC3, Population
from .sites import OPERATORS
from .worlds import WorldPhysics

__all__ = ["CAMP_DBM", "make_tests", "ookla_tiles", "quadkey"]

#: Level (dBm) at which a handset camps on each technology; below all three: no service.
CAMP_DBM = {"4G": -121.0, "3G": -114.0, "2G": -104.0}
#: Margin over the camping level (dB) at which half the testers would run a test anyway,
#: and the logistic width of that choice (dB).
TEST_MARGIN_DB, TEST_MARGIN_WIDTH_DB = 6.0, 3.0


def _test_places(pop: Population, grid: Grid, roads_mask: np.ndarray, w: np.ndarray,
                 n_cand: int, n_road: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate test places (UTM m): drawn by weighted population, and along the roads.

    ``n_cand - n_road`` places fall in population cells with weights ``w``, ``n_road`` on
    road cells; the two are shuffled together.
    """
    to_utm = Transformer.from_crs("EPSG:4326", UTM_CRS, always_xy=True)
    idx = rng.choice(w.size, n_cand - n_road, p=w / w.sum())
    rows, cols = np.unravel_index(idx, pop.values.shape)
    lon = pop.transform.c + (cols + rng.uniform(size=len(idx))) * ARCSEC3
    lat = pop.transform.f - (rows + rng.uniform(size=len(idx))) * ARCSEC3
    x, y = to_utm.transform(lon, lat)
    rr, rc = np.nonzero(roads_mask)
    pick = rng.choice(len(rr), n_road)
    rx = grid.x0_m + (rc[pick] + rng.uniform(size=n_road)) * grid.cell_m
    ry = grid.y1_m - (rr[pick] + rng.uniform(size=n_road)) * grid.cell_m
    order = rng.permutation(n_cand)
    return np.concatenate([x, rx])[order], np.concatenate([y, ry])[order]


def _camp(field: Field, speeds: dict, r: np.ndarray, c: np.ndarray, op: np.ndarray,
          fading: np.ndarray, rng: np.random.Generator):
    """The technology each tester's handset camps on, its level (dBm) and download (Mbps).

    Returns ``(tech, level, download, margin)``: ``"none"`` and NaN where no technology
    reaches :data:`CAMP_DBM`; ``margin`` is the best level over the camping level, dB.
    """
    names = list(OPERATORS)
    tech = np.full(len(op), "none", dtype=object)
    level = np.full(len(op), np.nan)
    margin = np.full(len(op), -np.inf)
    dl = np.full(len(op), np.nan)
    for k, name in enumerate(names):
        sel = op == k
        for t in ("4G", "3G", "2G"):
            true = field.best[name, t][r, c]
            margin[sel] = np.maximum(margin[sel], (true + fading - CAMP_DBM[t])[sel])
            ok = sel & (tech == "none") & (true + fading >= CAMP_DBM[t])
            tech[ok] = t
            level[ok] = true[ok] + fading[ok]
            if t != "2G":
                dl[ok] = speeds[name][t][r, c][ok]
            else:
                dl[ok] = rng.uniform(0.04, 0.2, ok.sum())
    return tech, level, dl, margin


def _test_results(tech: np.ndarray, level: np.ndarray, dl: np.ndarray,
                  rng: np.random.Generator):
    """Download spread, upload and latency by technology, and a few missing values.

    Returns ``(level, download, upload, latency_ms)``; NaN where the test had no service.
    """
    n = len(tech)
    dl = dl * np.exp(rng.normal(0, 0.35, n))
    none = tech == "none"
    ul = np.where(tech == "4G", np.minimum(dl * rng.uniform(0.2, 0.45, n), 40.0),
                  np.where(tech == "3G", np.minimum(dl * 0.3, 2.0) + 0.2,
                           rng.uniform(0.02, 0.08, n)))
    lat_ms = np.where(tech == "4G", rng.uniform(24, 65, n),
                      np.where(tech == "3G", rng.uniform(60, 160, n),
                               rng.uniform(280, 800, n)))
    dl[none] = np.nan
    ul[none] = np.nan
    lat_ms[none] = np.nan
    for arr in (level, dl, ul, lat_ms):
        arr[rng.uniform(size=n) < 0.02] = np.nan
    return level, dl, ul, lat_ms


def _timestamps(n: int, rng: np.random.Generator) -> np.ndarray:
    """Test times over a year from 2024-03-01, mostly in the afternoon (local time)."""
    start = np.datetime64("2024-03-01T00:00:00")
    days = rng.integers(0, 365, n)
    secs = (rng.normal(14.5, 3.5, n).clip(5.5, 23.5) * 3600).astype(np.int64)
    return start + days.astype("timedelta64[D]") + secs.astype("timedelta64[s]")


def make_tests(field: Field, speeds: dict, pop: Population, grid: Grid,
               roads_mask: np.ndarray, rng: np.random.Generator, *, n: int = 3000,
               physics: WorldPhysics | None = None) -> pd.DataFrame:
    """Point speed tests (contract columns); see the module docstring."""
    physics = physics or WorldPhysics()
    vals = np.where(pop.values > 0, pop.values, 0.0).ravel().astype(float)
    town = field.town.ravel()[pop.dem_cell.ravel()]
    w = vals * np.where(town, physics.test_town_weight, 1.0)
    # candidates: more than n, as the testers skip some places without signal
    n_cand = int(np.ceil(n / (1.0 - 0.9 * physics.test_signal_bias))) + 50
    n_road = int(physics.test_road_share * n_cand)
    x, y = _test_places(pop, grid, roads_mask, w, n_cand, n_road, rng)
    r, c = grid.index(x, y)
    names = list(OPERATORS)
    shares = np.array([OPERATORS[o][2] for o in names])
    op = rng.choice(len(names), len(x), p=shares / shares.sum())
    fading = rng.normal(0, 3.5, len(x))
    tech, level, dl, margin = _camp(field, speeds, r, c, op, fading, rng)
    likes = 1.0 / (1.0 + np.exp(-(margin - TEST_MARGIN_DB) / TEST_MARGIN_WIDTH_DB))
    taken = rng.uniform(size=len(x)) >= physics.test_signal_bias * (1.0 - likes)
    keep = np.flatnonzero(taken)[:n]
    x, y, op, tech, level, dl = (a[keep] for a in (x, y, op, tech, level, dl))
    to_ll = Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(x, y)
    level, dl, ul, lat_ms = _test_results(tech, level, dl, rng)
    ts = _timestamps(len(x), rng)
    order = np.argsort(ts, kind="stable")
    out = pd.DataFrame({
        "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "tech": tech.astype(str), "operator": np.array(names)[op],
        "rsrp_dbm": np.round(level), "download_mbps": np.round(dl, 2),
        "upload_mbps": np.round(ul, 2), "latency_ms": np.round(lat_ms),
        "timestamp": [f"{t}+07:00" for t in ts.astype("datetime64[s]")],
    }).iloc[order].reset_index(drop=True)
    return out


def quadkey(lon: np.ndarray, lat: np.ndarray, zoom: int = 16) -> tuple[list[str], np.ndarray,
                                                                       np.ndarray]:
    """Bing-tile quadkeys of points, and the tile x, y."""
    lat_r = np.radians(np.clip(lat, -85.05112878, 85.05112878))
    n = 2 ** zoom
    tx = np.floor((lon + 180.0) / 360.0 * n).astype(np.int64)
    ty = np.floor((1 - np.log(np.tan(lat_r) + 1 / np.cos(lat_r)) / np.pi) / 2 * n).astype(np.int64)
    keys = []
    for a, b in zip(tx, ty, strict=True):
        digits = []
        for i in range(zoom, 0, -1):
            mask = 1 << (i - 1)
            digits.append(str((1 if a & mask else 0) + (2 if b & mask else 0)))
        keys.append("".join(digits))
    return keys, tx, ty


def ookla_tiles(tests: pd.DataFrame, rng: np.random.Generator, zoom: int = 16) -> pd.DataFrame:
    """Ookla open-data style tiles of the tests that measured a download."""
    t = tests[tests["download_mbps"].notna()].copy()
    keys, tx, ty = quadkey(t["lon"].to_numpy(), t["lat"].to_numpy(), zoom)
    t["quadkey"], t["tx"], t["ty"] = keys, tx, ty
    g = t.groupby("quadkey", sort=True)
    agg = g.agg(avg_d=("download_mbps", "mean"), avg_u=("upload_mbps", "mean"),
                avg_lat=("latency_ms", "mean"), tests=("download_mbps", "size"),
                tx=("tx", "first"), ty=("ty", "first")).reset_index()
    n = 2 ** zoom

    def lon_of(x):
        return x / n * 360.0 - 180.0

    def lat_of(y):
        return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * y / n))))

    tiles = shapely.box(lon_of(agg["tx"]), lat_of(agg["ty"] + 1), lon_of(agg["tx"] + 1),
                        lat_of(agg["ty"]))
    devices = np.maximum(1, np.ceil(agg["tests"] * rng.uniform(0.5, 1.0, len(agg))))
    return pd.DataFrame({
        "quadkey": pd.array(agg["quadkey"], dtype="str"),
        "tile": pd.array(shapely.to_wkt(tiles, rounding_precision=8), dtype="str"),
        "avg_d_kbps": np.round(agg["avg_d"] * 1000).astype(np.int64),
        "avg_u_kbps": np.round(agg["avg_u"].fillna(0) * 1000).astype(np.int64),
        "avg_lat_ms": np.round(agg["avg_lat"].fillna(agg["avg_lat"].median())).astype(np.int64),
        "tests": agg["tests"].astype(np.int64),
        "devices": devices.astype(np.int64),
    })
