"""Mobile network of the demo: true masts and their published descriptions.

Three operators: Viettel (MNC 04) and VinaPhone (MNC 02) publish a site table; MobiFone
(MNC 01) is only known through crowdsourced OpenCelliD cells. Masts are dense in the towns
and along the valley roads, sparse in the mountains. The published tables differ a little from
the truth, as real ones do: EIRP within ±2 dB, rounded heights, azimuths a few degrees off,
some cells left empty, and OpenCelliD positions scattered around the true mast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Transformer

from ._grid import UTM_CRS
from .settlements import Settlements
from .terrain import Terrain

__all__ = ["OPERATORS", "make_masts", "opencellid_table", "site_table", "transmitters"]

#: name -> (MNC, code, market share, LTE bandwidth MHz)
OPERATORS = {
    "Viettel": (4, "VTL", 0.55, 20.0),
    "VinaPhone": (2, "VNP", 0.27, 15.0),
    "MobiFone": (1, "MBF", 0.18, 10.0),
}
_FREQ = {"2G": 900.0, "3G": 2100.0, "4G": 1800.0}
#: Nominal EIRP of the measured signal of a sectored cell, dBm, about: the 2G BCCH carrier
#: (20 W), the 3G pilot (10% of 20 W) and the 4G reference signal per resource element
#: (40 W over 1,200 subcarriers), each with a 17 dBi panel and 2-3 dB of feeder loss.
NOMINAL_EIRP_DBM = {"2G": 57.0, "3G": 47.0, "4G": 30.0}


_FULL = ("2G", "3G", "4G")


def _mast(op, x, y, techs, sectors, height, status="active", kind="rural") -> dict:
    """One mast row: operator, position (UTM m), techs, sectorised, height (m), status, kind."""
    return {"operator": op, "x": x, "y": y, "techs": techs, "sectors": sectors,
            "height_m": height, "status": status, "kind": kind}


def _hill(terrain: Terrain, rng: np.random.Generator, x: float, y: float, radius: float
          ) -> tuple[float, float]:
    """Highest cell within ``radius`` (m) of a point, as masts are put on knolls.

    Returns the cell centre (UTM m) moved by up to 30 m at random.
    """
    grid = terrain.grid
    r, c = grid.index(np.array([x]), np.array([y]))
    k = int(radius // grid.cell_m)
    r0, r1 = max(r[0] - k, 0), min(r[0] + k + 1, grid.rows)
    c0, c1 = max(c[0] - k, 0), min(c[0] + k + 1, grid.cols)
    win = terrain.dem_m[r0:r1, c0:c1]
    i, j = np.unravel_index(np.argmax(win), win.shape)
    return (grid.x0_m + (c0 + j + 0.5) * grid.cell_m + rng.uniform(-30, 30),
            grid.y1_m - (r0 + i + 0.5) * grid.cell_m + rng.uniform(-30, 30))


def _town_masts(st: Settlements, rng: np.random.Generator) -> list[dict]:
    """Sectorised 2G/3G/4G masts of every operator inside the towns."""
    rows = []
    for _t, town in st.towns.iterrows():
        n = {"Viettel": 3, "VinaPhone": 2, "MobiFone": 2} if town["capital"] else \
            {"Viettel": 2, "VinaPhone": 1, "MobiFone": 1}
        for op, k in n.items():
            for _ in range(k):
                a, r = rng.uniform(0, 2 * np.pi), town["radius_m"] * rng.uniform(0.1, 0.8)
                rows.append(_mast(op, town["x"] + r * np.cos(a), town["y"] + r * np.sin(a),
                                  _FULL, True, float(rng.uniform(22, 36)), kind="town"))
    return rows


def _seat_masts(terrain: Terrain, st: Settlements, rng: np.random.Generator) -> list[dict]:
    """Masts on a knoll near each rural commune seat, and the second operators' beside them."""
    rows = []
    seats = st.communes[st.communes["kind"] == "xã"]
    order = rng.permutation(len(seats))
    for i, k in enumerate(order):
        seat = seats.iloc[k]
        x, y = _hill(terrain, rng, seat["seat_x"], seat["seat_y"], 500)
        u = rng.uniform()
        if i < int(0.76 * len(seats)):
            techs = ("2G", "4G") if u < 0.55 else (_FULL if u < 0.8 else ("2G", "3G"))
            rows.append(_mast("Viettel", x, y, techs, bool(rng.uniform() < 0.7),
                              float(rng.uniform(30, 45))))
        elif i < int(0.88 * len(seats)):
            rows.append(_mast("Viettel", x, y, ("2G",), False, float(rng.uniform(30, 42))))
            rows.append(_mast("Viettel", x + 60, y, ("4G",), False, float(rng.uniform(35, 45)),
                              status="planned"))
        else:
            rows.append(_mast("VinaPhone", x, y, ("2G", "4G"), False,
                              float(rng.uniform(35, 45)), status="planned"))
        if rng.uniform() < 0.35:
            x2, y2 = _hill(terrain, rng, seat["seat_x"] + 300, seat["seat_y"] - 200, 600)
            rows.append(_mast("VinaPhone", x2, y2,
                              ("2G", "3G") if rng.uniform() < 0.6 else ("2G", "3G", "4G"),
                              False, float(rng.uniform(25, 40))))
        if rng.uniform() < 0.25:
            x3, y3 = _hill(terrain, rng, seat["seat_x"] - 250, seat["seat_y"] + 250, 600)
            rows.append(_mast("MobiFone", x3, y3, ("2G", "3G"), False,
                              float(rng.uniform(25, 40))))
    return rows


def _road_masts(terrain: Terrain, roads_mask: np.ndarray, rows: list[dict],
                rng: np.random.Generator) -> list[dict]:
    """Seven masts along the national and provincial roads, 4 km or more from any other."""
    grid = terrain.grid
    rr, cc = np.nonzero(roads_mask & (terrain.dem_m < 600))
    xs = grid.x0_m + (cc + 0.5) * grid.cell_m
    ys = grid.y1_m - (rr + 0.5) * grid.cell_m
    masts_xy = np.array([[m["x"], m["y"]] for m in rows])
    new = []
    for i in rng.permutation(len(xs)):
        if len(new) >= 7:
            break
        d = np.min(np.hypot(masts_xy[:, 0] - xs[i], masts_xy[:, 1] - ys[i]))
        if d < 4000:
            continue
        op = ("Viettel", "MobiFone", "Viettel", "VinaPhone", "MobiFone", "Viettel",
              "Viettel")[len(new)]
        new.append(_mast(op, xs[i], ys[i], ("2G", "4G") if op != "VinaPhone" else ("2G", "3G"),
                         True, float(rng.uniform(30, 42)), kind="road"))
        masts_xy = np.vstack([masts_xy, [xs[i], ys[i]]])
    return new


def _uso_masts(terrain: Terrain, st: Settlements, rows: list[dict],
               rng: np.random.Generator) -> list[dict]:
    """Universal-service 4G masts near the biggest hamlets of many communes."""
    masts_xy = np.array([[m["x"], m["y"]] for m in rows])
    new = []
    v = st.villages[~st.villages["town"] & ~st.villages["seat"]]
    for c in rng.permutation(st.communes["commune_idx"].to_numpy()):
        members = v[v["commune_idx"] == c].sort_values("population", ascending=False)
        for k in range(min(4, len(members))):
            if rng.uniform() > (1.0, 0.9, 0.7, 0.45)[k]:
                continue
            vil = members.iloc[k]
            x, y = _hill(terrain, rng, vil["seed_x"], vil["seed_y"], 500)
            if np.min(np.hypot(masts_xy[:, 0] - x, masts_xy[:, 1] - y)) < 2200:
                continue
            op = "Viettel" if rng.uniform() < 0.8 else "VinaPhone"
            new.append(_mast(op, x, y, ("2G", "4G"), False, float(rng.uniform(35, 45)),
                             kind="uso"))
            masts_xy = np.vstack([masts_xy, [x, y]])
    return new


def _hilltop_and_planned_masts(terrain: Terrain, st: Settlements,
                               rng: np.random.Generator) -> list[dict]:
    """2G umbrella masts on high points, and planned 4G masts near big unserved villages."""
    grid, dem = terrain.grid, terrain.dem_m
    rows = []
    for _ in range(3):
        flat = np.argmax(np.where(rng.uniform(size=dem.shape) < 0.002, dem, 0))
        r, c = np.unravel_index(flat, dem.shape)
        rows.append(_mast("Viettel", grid.x0_m + (c + 0.5) * grid.cell_m,
                          grid.y1_m - (r + 0.5) * grid.cell_m, ("2G",), False, 40.0,
                          kind="hilltop"))
    v = st.villages[~st.villages["town"]].sort_values("population", ascending=False)
    for _, vil in v.head(40).sample(4, random_state=int(rng.integers(1 << 30))).iterrows():
        x, y = _hill(terrain, rng, vil["seed_x"], vil["seed_y"], 700)
        rows.append(_mast("VinaPhone" if rng.uniform() < 0.5 else "Viettel", x, y, ("4G",),
                          False, 40.0, status="planned"))
    return rows


def make_masts(terrain: Terrain, st: Settlements, roads_mask: np.ndarray,
               rng: np.random.Generator) -> pd.DataFrame:
    """One row per true mast: operator, position, height, techs, sectorised, status.

    Drawn in order: the towns' masts, the commune seats', along the roads, universal-service
    masts near big hamlets, 2G umbrellas on high points and planned 4G masts.
    """
    rows = _town_masts(st, rng)
    rows += _seat_masts(terrain, st, rng)
    rows += _road_masts(terrain, roads_mask, rows, rng)
    rows += _uso_masts(terrain, st, rows, rng)
    rows += _hilltop_and_planned_masts(terrain, st, rng)
    grid = terrain.grid
    masts = pd.DataFrame(rows)
    masts["mast"] = np.arange(len(masts))
    masts["ground_m"] = terrain.dem_m[grid.index(masts["x"].to_numpy(), masts["y"].to_numpy())]
    return masts


def transmitters(masts: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per (mast, tech, sector) with its TRUE parameters and its published ones."""
    rows = []
    for m in masts.itertuples():
        az0 = rng.uniform(0, 120)
        for tech in m.techs:
            base = NOMINAL_EIRP_DBM[tech]
            sectors = [az0 + 120 * s for s in range(3)] if m.sectors else [np.nan]
            for s, az in enumerate(sectors):
                nominal = base if m.sectors else base - 2.0   # omni antennas have less gain
                rows.append({
                    "mast": m.mast, "operator": m.operator, "tech": tech, "sector": s + 1,
                    "status": m.status,
                    "x": m.x, "y": m.y, "ground_m": m.ground_m,
                    "true_height_m": m.height_m,
                    "true_azimuth_deg": (az + rng.normal(0, 6)) % 360 if m.sectors else np.nan,
                    "true_eirp_dbm": nominal + float(np.clip(rng.normal(0, 1.1), -2, 2)),
                    "freq_mhz": _FREQ[tech],
                    "azimuth_deg": round(az % 360) if m.sectors else np.nan,
                    "eirp_dbm": nominal, "kind": m.kind,
                })
    return pd.DataFrame(rows)


def site_table(tx: pd.DataFrame, masts: pd.DataFrame, fibre_dist_m: np.ndarray,
               rng: np.random.Generator) -> pd.DataFrame:
    """The published site table of Viettel and VinaPhone (contract columns)."""
    to_ll = Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)
    sel = tx[tx["operator"] != "MobiFone"].copy()
    code = sel["operator"].map({k: v[1] for k, v in OPERATORS.items()})
    sectored = sel["azimuth_deg"].notna()
    sel["site_id"] = (code + sel["mast"].map("{:03d}".format) + "-" + sel["tech"]
                      + np.where(sectored, sel["sector"].astype(str), ""))
    lon, lat = to_ll.transform(sel["x"].to_numpy(), sel["y"].to_numpy())
    n = len(sel)
    height = (np.round(sel["true_height_m"] / 5) * 5).astype(float)
    height[rng.uniform(size=n) < 0.12] = np.nan
    eirp = sel["eirp_dbm"].astype(float).to_numpy().copy()
    eirp[rng.uniform(size=n) < 0.15] = np.nan
    beam = np.where(sectored, 65.0, np.nan)
    beam[sectored.to_numpy() & (rng.uniform(size=n) < 0.3)] = np.nan
    freq = sel["freq_mhz"].to_numpy().copy()
    freq[rng.uniform(size=n) < 0.2] = np.nan
    fd = fibre_dist_m[sel["mast"].to_numpy()]
    backhaul = np.where(fd < 800, "fiber", np.where(fd < 25000, "microwave", "satellite"))
    backhaul = np.where(rng.uniform(size=n) < 0.1, "", backhaul)
    out = pd.DataFrame({
        "site_id": sel["site_id"].to_numpy(),
        "operator": sel["operator"].to_numpy(),
        "tech": sel["tech"].to_numpy(),
        "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "height_m": height.to_numpy(),
        "azimuth_deg": sel["azimuth_deg"].to_numpy(),
        "beamwidth_deg": beam,
        "eirp_dbm": eirp,
        "freq_mhz": freq,
        "status": sel["status"].to_numpy(),
        "backhaul": backhaul,
    })
    return out


def opencellid_table(tx: pd.DataFrame, masts: pd.DataFrame, rng: np.random.Generator
                     ) -> pd.DataFrame:
    """MobiFone cells as OpenCelliD rows (14 columns), with two junk rows."""
    to_ll = Transformer.from_crs(UTM_CRS, "EPSG:4326", always_xy=True)
    sel = tx[(tx["operator"] == "MobiFone") & (tx["status"] == "active")]
    radio = sel["tech"].map({"2G": "GSM", "3G": "UMTS", "4G": "LTE"}).to_numpy()
    mast = sel["mast"].to_numpy()
    sector = sel["sector"].to_numpy()
    cell = np.where(radio == "LTE", (182_000 + mast) * 256 + sector,
                    np.where(radio == "UMTS", 311 * 65536 + mast * 10 + sector,
                             20_000 + mast * 10 + sector))
    unit = pd.array(np.where(radio == "LTE", (mast * 3 + sector) % 504,
                             (mast * 7 + sector * 3) % 512), dtype="Int64")
    unit[radio == "GSM"] = pd.NA   # no PSC/PCI for GSM
    n = len(sel)
    samples = np.maximum(1, np.round(np.exp(rng.normal(3.0, 1.0, n)))).astype(int)
    scatter = 250.0 / np.sqrt(samples) + 25.0
    ang = rng.uniform(0, 2 * np.pi, n)
    dist = np.abs(rng.normal(0, 1, n)) * scatter
    x = sel["x"].to_numpy() + dist * np.cos(ang)
    y = sel["y"].to_numpy() + dist * np.sin(ang)
    lon, lat = to_ll.transform(x, y)
    created = (1_450_000_000 + rng.integers(0, 250_000_000, n)).astype(np.int64)
    updated = created + (rng.uniform(size=n) * (1_733_000_000 - created)).astype(np.int64)
    signal = np.where(rng.uniform(size=n) < 0.85, 0, rng.integers(-110, -60, n))
    area = np.where(radio == "LTE", 11_000 + mast // 10, 1_100 + mast // 10)
    out = pd.DataFrame({
        "radio": radio, "mcc": 452, "net": 1, "area": area, "cell": cell.astype(np.int64),
        "unit": unit, "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "range": np.round(np.clip(scatter * rng.uniform(2, 6, n), 100, 8000)).astype(int),
        "samples": samples, "changeable": 1, "created": created, "updated": updated,
        "averageSignal": signal,
    })
    # junk, as found in the real file: a cell geolocated in Hanoi and one at (0, 0)
    junk = out.iloc[[0, 1]].copy()
    junk["cell"] = [20_999, 21_998]
    junk["radio"] = "GSM"
    junk["lon"], junk["lat"] = [105.834160, 0.0], [21.027764, 0.0]
    junk["samples"] = [2, 1]
    return pd.concat([out, junk], ignore_index=True)
