r"""Coverage surfaces: received power from every site on a metric grid.

For each transmitter (a sector or an omni antenna) the received level at a grid cell is

.. math:: P_{rx} = \mathrm{EIRP} + G(\theta) - L_{Hata}(d, f, h_b) - L_{diff}

with :math:`G` the 3GPP sector pattern, :math:`L_{Hata}` Okumura-Hata / COST-231 Hata
(:func:`coverage.radio.hata_loss_db`) with the effective antenna height above the receiver's
ground, and :math:`L_{diff}` the Bullington terrain diffraction over the DEM profile
(:func:`coverage.radio.bullington_loss_db`). Surfaces keep the best level per operator and
technology; the grid's CRS is metric (UTM), and levels are in dBm, NaN where no site reaches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from rasterio.transform import Affine, from_origin
from rasterio.warp import Resampling, reproject

from . import radio
from .io import Raster
from .params import BROADBAND_TECHS, ModelParams

__all__ = [
    "CoverageSurfaces",
    "Grid",
    "fuse_measurements",
    "points_xy",
    "predict_coverage",
    "prepare_transmitters",
    "to_grid",
]

log = logging.getLogger(__name__)

#: Levels below these are not kept (dBm): 15 dB under the lowest threshold of each technology.
FLOOR_DBM = {"2G": -117.0, "3G": -120.0, "4G": -125.0, "5G": -125.0}


@dataclass(frozen=True)
class Grid:
    """A north-up grid of square cells in a metric CRS.

    Attributes
    ----------
    transform : Affine
        Cell (col, row) to map coordinates; ``transform.a`` is the cell size in metres.
    shape : tuple of int
        (rows, cols).
    crs : pyproj.CRS
        The metric CRS.
    """

    transform: Affine
    shape: tuple[int, int]
    crs: CRS

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], resolution_m: float,
                 crs: CRS, *, pad_m: float = 0.0) -> Grid:
        """Grid covering ``bounds`` (left, bottom, right, top, in ``crs``) plus a margin."""
        left, bottom, right, top = bounds
        left = np.floor((left - pad_m) / resolution_m) * resolution_m
        top = np.ceil((top + pad_m) / resolution_m) * resolution_m
        cols = int(np.ceil((right + pad_m - left) / resolution_m))
        rows = int(np.ceil((top - bottom + pad_m) / resolution_m))
        return cls(from_origin(left, top, resolution_m, resolution_m), (rows, cols),
                   CRS.from_user_input(crs))

    @property
    def resolution_m(self) -> float:
        """Cell size in metres."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        return left, top - rows * self.resolution_m, left + cols * self.resolution_m, top

    def centres(self, rows: slice = slice(None), cols: slice = slice(None)
                ) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (x, y) of cell centres of a window, as 2-D arrays."""
        r = np.arange(self.shape[0])[rows] + 0.5
        c = np.arange(self.shape[1])[cols] + 0.5
        x = self.transform.c + c * self.transform.a
        y = self.transform.f + r * self.transform.e
        return np.meshgrid(x, y)

    def index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of map points."""
        col = np.floor((np.asarray(x) - self.transform.c) / self.transform.a).astype(int)
        row = np.floor((np.asarray(y) - self.transform.f) / self.transform.e).astype(int)
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        return row, col, inside


def to_grid(raster: Raster, grid: Grid, *, resampling: str = "bilinear") -> np.ndarray:
    """Reproject a raster onto ``grid`` (``"sum"`` keeps totals, for population)."""
    out = np.full(grid.shape, np.nan, dtype="float64")
    src = raster.array.astype("float64")
    if resampling == "sum":
        # Sum-preserving: spread each source cell's count over the target cells by area.
        src_area = abs(raster.transform.a * raster.transform.e)
        density = np.where(np.isnan(src), 0.0, src) / src_area
        reproject(density, out, src_transform=raster.transform, src_crs=raster.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs,
                  resampling=Resampling.average, src_nodata=np.nan, dst_nodata=np.nan)
        # Densities per square map unit of each CRS: convert with the local scale factor.
        out = np.nan_to_num(out) * _cell_area_in_src_units(raster, grid)
        return out
    reproject(src, out, src_transform=raster.transform, src_crs=raster.crs,
              dst_transform=grid.transform, dst_crs=grid.crs,
              resampling=Resampling[resampling], src_nodata=np.nan, dst_nodata=np.nan)
    return out


def _cell_area_in_src_units(raster: Raster, grid: Grid) -> np.ndarray | float:
    """Area of each grid cell measured in the source raster's CRS units (for densities)."""
    if raster.crs.equals(grid.crs):
        return grid.resolution_m**2
    from pyproj import Transformer

    x, y = grid.centres()
    h = grid.resolution_m / 2
    t = Transformer.from_crs(grid.crs, raster.crs, always_xy=True)
    x0, y0 = t.transform(x - h, y - h)
    x1, y1 = t.transform(x + h, y + h)
    return np.abs((x1 - x0) * (y1 - y0))


@dataclass
class CoverageSurfaces:
    """Best received level per (operator, technology) on a grid, dBm (NaN = none).

    Attributes
    ----------
    grid : Grid
        The grid of every layer.
    layers : dict
        ``(operator, tech) -> float32 array`` of shape ``grid.shape``.
    dem : ndarray or None
        Ground elevation on the grid (metres), when a DEM was given.
    """

    grid: Grid
    layers: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    dem: np.ndarray | None = None

    def best(self, *, techs: tuple[str, ...] | None = None, operator: str | None = None
             ) -> np.ndarray:
        """Best level over the layers of some technologies and/or one operator."""
        out = np.full(self.grid.shape, np.nan, dtype="float32")
        for (op, tech), arr in self.layers.items():
            if (techs is None or tech in techs) and (operator is None or op == operator):
                out = np.fmax(out, arr)
        return out

    def margin(self, thresholds_dbm: dict[str, float], *, operator: str | None = None
               ) -> np.ndarray:
        """Best margin over per-technology thresholds (dB; >= 0 means covered)."""
        out = np.full(self.grid.shape, -np.inf, dtype="float32")
        for (op, tech), arr in self.layers.items():
            if tech in thresholds_dbm and (operator is None or op == operator):
                np.fmax(out, arr - np.float32(thresholds_dbm[tech]), out=out)  # NaN: ignored
        return out

    @property
    def operators(self) -> list[str]:
        """Operators with at least one layer."""
        return sorted({op for op, _ in self.layers})

    def copy(self) -> CoverageSurfaces:
        """A copy whose layers can be changed without touching this one."""
        return CoverageSurfaces(self.grid, {k: v.copy() for k, v in self.layers.items()},
                                self.dem)


def prepare_transmitters(towers: gpd.GeoDataFrame, crs: CRS, params: ModelParams
                         ) -> pd.DataFrame:
    """Transmitters in the grid's CRS, with every link-budget field filled from defaults.

    Returns a DataFrame with ``x, y`` (metres), ``operator, tech, height_m, eirp_dbm,
    freq_mhz, azimuth_deg, beamwidth_deg`` and the input's ``site_id`` and ``status``.
    """
    pts = towers.geometry.to_crs(crs)
    df = pd.DataFrame(towers.drop(columns=towers.geometry.name)).copy()
    df["x"], df["y"] = pts.x.to_numpy(), pts.y.to_numpy()
    for col, attr in (("eirp_dbm", "eirp_dbm"), ("freq_mhz", "freq_mhz"),
                      ("height_m", "height_m")):
        default = df["tech"].map(lambda t, a=attr: getattr(params.techs[t], a))
        values = (pd.to_numeric(df[col], errors="coerce") if col in df.columns
                  else pd.Series(np.nan, index=df.index))
        df[col] = values.fillna(default).astype(float)
    for col, default in (("azimuth_deg", np.nan), ("beamwidth_deg", 65.0)):
        values = (pd.to_numeric(df[col], errors="coerce") if col in df.columns
                  else pd.Series(np.nan, index=df.index))
        df[col] = values.fillna(default).astype(float)
    df["operator"] = df.get("operator", "unknown")
    return df.reset_index(drop=True)


def _useful_radius_m(eirp_dbm: float, freq_mhz: float, height_m: float, floor_dbm: float,
                     params: ModelParams) -> float:
    """Distance where the terrain-free median level falls to ``floor_dbm``."""
    d = np.geomspace(100.0, params.max_range_km * 1000.0, 256)
    if params.path_loss == "hata":
        loss = radio.hata_loss_db(d, freq_mhz, height_m + 100.0, rx_height_m=params.rx_height_m,
                                  environment=params.environment)
    else:
        loss = radio.free_space_loss_db(d, freq_mhz)
    below = np.flatnonzero(eirp_dbm - loss < floor_dbm)
    return float(d[below[0]] if below.size else d[-1])


def _sample_buckets(distance_m: np.ndarray, resolution_m: float, max_samples: int
                    ) -> Iterator[tuple[np.ndarray, int]]:
    """Group cells by the profile sample count their distance needs (spacing ~3 cells)."""
    need = np.clip(np.ceil(distance_m / (3.0 * resolution_m)), 2, max_samples).astype(int)
    edges = sorted({2, 4, 8, 16, 32, 64, 128, 256, 512, max_samples})
    edges = [e for e in edges if e <= max_samples]
    lo = 0
    for k in edges:
        sel = np.flatnonzero((need > lo) & (need <= k))
        if sel.size:
            yield sel, k
        lo = k


def predict_coverage(
    towers: gpd.GeoDataFrame,
    grid: Grid,
    *,
    dem: Raster | None = None,
    params: ModelParams | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CoverageSurfaces:
    """Predict the best received level per operator and technology on ``grid``.

    Parameters
    ----------
    towers : GeoDataFrame
        Transmitters as read by :func:`coverage.io.read_towers` (any CRS).
    grid : Grid
        The metric grid to predict on.
    dem : Raster, optional
        Elevation in metres; enables effective antenna heights and terrain diffraction.
    params : ModelParams, optional
        Model parameters.
    progress : callable, optional
        Called as ``progress(done, total)`` after each site.

    Returns
    -------
    CoverageSurfaces
        Levels in dBm on ``grid``.
    """
    params = params or ModelParams()
    tx = prepare_transmitters(towers, grid.crs, params)
    ground = to_grid(dem, grid) if dem is not None else None
    if ground is not None:
        ground = np.where(np.isnan(ground), np.nanmean(ground), ground)
    surfaces = CoverageSurfaces(grid, dem=ground)
    inv = ~grid.transform
    inv_coeffs = (inv.a, inv.b, inv.c, inv.d, inv.e, inv.f)
    # One pass per site position: distances and terrain profiles are shared by its sectors.
    tx["pos"] = tx.groupby([tx.x.round(1), tx.y.round(1)], sort=False).ngroup()
    groups = list(tx.groupby("pos", sort=False))
    for i, (_, site) in enumerate(groups, start=1):
        _predict_site(site, grid, ground, inv_coeffs, params, surfaces)
        if progress is not None:
            progress(i, len(groups))
    log.info("predicted %d transmitters at %d positions on a %dx%d grid", len(tx),
             len(groups), *grid.shape)
    return surfaces


def _predict_site(site: pd.DataFrame, grid: Grid, ground: np.ndarray | None,
                  inv_coeffs: tuple[float, ...], params: ModelParams,
                  surfaces: CoverageSurfaces) -> None:
    x0, y0 = float(site.x.iloc[0]), float(site.y.iloc[0])
    radius = max(_useful_radius_m(r.eirp_dbm, r.freq_mhz, r.height_m, FLOOR_DBM[r.tech], params)
                 for r in site.itertuples())
    res = grid.resolution_m
    r0, c0, _ = grid.index(np.array([x0 - radius]), np.array([y0 + radius]))
    r1, c1, _ = grid.index(np.array([x0 + radius]), np.array([y0 - radius]))
    rows = slice(max(int(r0[0]), 0), min(int(r1[0]) + 1, grid.shape[0]))
    cols = slice(max(int(c0[0]), 0), min(int(c1[0]) + 1, grid.shape[1]))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    x, y = grid.centres(rows, cols)
    dx, dy = x - x0, y - y0
    dist = np.hypot(dx, dy)
    inside = dist <= radius
    xs, ys, d = x[inside], y[inside], np.maximum(dist[inside], grid.resolution_m / 2)
    bearing = np.degrees(np.arctan2(dx[inside], dy[inside])) % 360.0
    site_ground = 0.0
    cell_ground = np.zeros_like(d)
    if ground is not None:
        sr, sc, ok = grid.index(np.array([x0]), np.array([y0]))
        site_ground = float(ground[sr[0], sc[0]]) if ok[0] else float(np.nanmean(ground))
        cell_ground = ground[rows, cols][inside]
    profiles: list[tuple[np.ndarray, np.ndarray]] = []
    if ground is not None and params.terrain:
        for sel, k in _sample_buckets(d, res, params.profile_samples):
            profiles.append((sel, radio.sample_profiles(ground, inv_coeffs, x0, y0,
                                                        xs[sel], ys[sel], k)))
    nus: dict[float, list[np.ndarray]] = {}
    cache: dict[tuple[float, float], np.ndarray] = {}
    for (height, freq), _ in site.groupby(["height_m", "freq_mhz"], sort=False):
        tx_alt = site_ground + height
        h_eff = np.clip(tx_alt - cell_ground, height, 300.0)
        if params.path_loss == "hata":
            loss = radio.hata_loss_db(d, freq, h_eff, rx_height_m=params.rx_height_m,
                                      environment=params.environment)
        else:
            loss = radio.free_space_loss_db(d, freq)
        if height not in nus:  # the edge geometry is shared by every carrier of a mast
            nus[height] = [radio.bullington_nu_root_m(
                d[sel], terrain, tx_alt, cell_ground[sel] + params.rx_height_m,
                k_factor=params.k_factor) for sel, terrain in profiles]
        for (sel, _), nu in zip(profiles, nus[height], strict=True):
            loss[sel] += radio.bullington_loss_from_nu(nu, d[sel], freq)
        cache[(height, freq)] = loss
    for r in site.itertuples():
        level = r.eirp_dbm - cache[(r.height_m, r.freq_mhz)]
        if not np.isnan(r.azimuth_deg):
            level = level + radio.sector_gain_db(bearing, r.azimuth_deg, r.beamwidth_deg)
        level = np.where(level >= FLOOR_DBM[r.tech], level, np.nan).astype("float32")
        key = (str(r.operator), str(r.tech))
        layer = surfaces.layers.setdefault(key, np.full(grid.shape, np.nan, dtype="float32"))
        window = layer[rows, cols]
        window[inside] = np.fmax(window[inside], level)


def fuse_measurements(
    surfaces: CoverageSurfaces,
    measurements: gpd.GeoDataFrame,
    *,
    radius_m: float = 250.0,
    techs: tuple[str, ...] = (*BROADBAND_TECHS, "2G"),
    xy: tuple[np.ndarray, np.ndarray] | None = None,
) -> CoverageSurfaces:
    """Replace the model by measurements in the cells around them.

    Within ``radius_m`` of measured points, each (operator, technology) layer takes the median
    measured level of that operator and technology; where at least half of the tests of an
    operator (or of all operators, for tests without one) report no service (``tech`` =
    ``none``), that operator's layers are cleared. Returns a new object. ``xy`` may give the
    tests' coordinates in the grid's CRS (from :func:`points_xy`), to transform them once.
    """
    out = surfaces.copy()
    if measurements is None or measurements.empty:
        return out
    grid = out.grid
    x, y = xy if xy is not None else points_xy(measurements.geometry, grid.crs)
    row, col, inside = grid.index(x, y)
    # integer codes throughout: string group keys cost 10x on millions of tests
    cell = (row * grid.shape[1] + col)[inside]
    tech_code, tech_names = pd.factorize(measurements["tech"])  # missing: -1
    tech_code = tech_code[inside]
    op_code, op_names = pd.factorize(measurements["operator"])
    op_code = op_code[inside]
    rsrp = measurements["rsrp_dbm"].to_numpy(dtype=float)[inside]
    reach = max(int(np.ceil(radius_m / grid.resolution_m - 0.5)), 0)
    offsets = [(dr, dc) for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1)
               if (dr * dr + dc * dc) * grid.resolution_m**2 <= max(radius_m, 1.0) ** 2]
    rows, cols = grid.shape

    def targets(cells: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Flat cells within the radius of each cell, offset by offset (later ones win)."""
        r, c = np.divmod(cells, cols)
        out_ = []
        for dr, dc in offsets:
            ok = (r + dr >= 0) & (r + dr < rows) & (c + dc >= 0) & (c + dc < cols)
            out_.append((ok, cells[ok] + (dr * cols + dc)))
        return out_

    ucell, ccode = np.unique(cell, return_inverse=True)  # measured cells in (row, col) order
    k_cells = max(len(ucell), 1)
    wanted = np.r_[np.isin(np.asarray(tech_names, dtype=object), techs), False]
    measured = np.flatnonzero(wanted[tech_code] & np.isfinite(rsrp) & (op_code >= 0))
    if len(measured):
        # median level per (operator, technology, cell) from one sort of a combined key
        pair = op_code[measured].astype(np.int64) * len(tech_names) + tech_code[measured]
        value = rsrp[measured]
        rank = np.empty(len(value), dtype=np.int64)
        rank[np.argsort(value)] = np.arange(len(value))
        group = pair * k_cells + ccode[measured]
        order = np.argsort(group * len(value) + rank)
        group, value = group[order], value[order]
        start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        size = np.diff(np.r_[start, len(group)])
        median = 0.5 * (value[start + (size - 1) // 2] + value[start + size // 2])
        g_pair, g_cell = np.divmod(group[start], k_cells)
        for o, t in sorted(set(zip(*np.divmod(np.unique(g_pair), len(tech_names)),
                                   strict=True)),
                           key=lambda ot: (str(op_names[ot[0]]), str(tech_names[ot[1]]))):
            mine = g_pair == o * len(tech_names) + t
            layer = out.layers.setdefault((str(op_names[o]), str(tech_names[t])),
                                          np.full(grid.shape, np.nan, dtype="float32"))
            flat = layer.reshape(-1)
            vals = median[mine]
            for ok, tgt in targets(ucell[g_cell[mine]]):
                flat[tgt] = vals[ok]
    is_none = np.r_[np.asarray(tech_names, dtype=object) == "none", False][tech_code]
    groups = [("*", op_code < 0)] if (op_code < 0).any() else []
    groups = sorted(groups + [(str(name), op_code == k) for k, name in enumerate(op_names)])
    for op_name, sel in groups:
        n_all = np.bincount(ccode[sel], minlength=k_cells)
        n_none = np.bincount(ccode[sel & is_none], minlength=k_cells)
        cells = ucell[(n_all > 0) & (n_none >= 0.5 * n_all)] if len(ucell) else ucell
        if not len(cells):
            continue
        spots = np.concatenate([tgt for _, tgt in targets(cells)])
        for (lop, _tech), layer in out.layers.items():
            if op_name == "*" or lop == op_name:
                layer.reshape(-1)[spots] = np.nan
    return out


def points_xy(points: gpd.GeoSeries, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (x, y) of points in ``crs``, without building new geometries.

    Ten times faster than ``to_crs`` on millions of points (``to_crs`` rebuilds every
    geometry); the same numbers, by the same pyproj transformation.
    """
    arr = points.to_numpy()
    x, y = shapely.get_x(arr), shapely.get_y(arr)
    if points.crs is None or CRS.from_user_input(points.crs).equals(CRS.from_user_input(crs)):
        return x, y
    from pyproj import Transformer

    t = Transformer.from_crs(points.crs, crs, always_xy=True)
    return t.transform(x, y)


def sample_points(array: np.ndarray, grid: Grid, geoms: gpd.GeoSeries) -> np.ndarray:
    """Values of a grid array at points (NaN outside the grid)."""
    pts = geoms.to_crs(grid.crs)
    xy = shapely.get_coordinates(pts.to_numpy())
    row, col, inside = grid.index(xy[:, 0], xy[:, 1])
    out = np.full(len(xy), np.nan)
    out[inside] = array[row[inside], col[inside]]
    return out
