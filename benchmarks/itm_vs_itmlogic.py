"""coverage.itm against itmlogic (an independent Python ITM) on random SRTM profiles.

Run from the repository root (reads ../shared/data/srtm/N21E105.hgt, writes nothing)::

    PYTHONPATH=src python benchmarks/itm_vs_itmlogic.py            # 300 profiles
    PYTHONPATH=src python benchmarks/itm_vs_itmlogic.py --paths 1000

Profiles of 2-40 km at the tile's 3" step (about 90 m) are cut along random bearings
from random points of the tile (north of Hanoi: delta, hills and the Tam Dao range),
with random antenna heights (10-60 m, 1.5-10 m) and carriers (450-3500 MHz), climate 5,
N0 301, vertical polarization, average ground, 50% time/location/situation. Both models
take the same profile and the same mean path height (itmlogic's ``qlrps`` is given it;
its example driver passes 0).

itmlogic departs from the algorithm in one place that matters: in the line-of-sight
branch of its ``qlrpfl`` (horizons beyond 1.5 times the path) it takes the receiver's
ground as ``pfl[np+1]``, the height one step before the receiver, where the algorithm
(and NTIA's reference code) take ``pfl[np+2]``, the receiver's own. The script prints the
difference on the profiles as cut (where that matters) and on the same profiles with the
last height repeated once (where it cannot), which isolates every other difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from coverage import itm

TILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "srtm" / "N21E105.hgt"
SETTINGS = dict(climate=5, refractivity_n0=301.0, polarization=1, permittivity=15.0,
                conductivity_s_m=0.005, mdvar=1, time_pct=50.0, location_pct=50.0,
                situation_pct=50.0)


def random_paths(tile: Path, count: int, seed: int = 0) -> list[tuple]:
    """``count`` (heights, step_m, tx_height_m, rx_height_m, freq_mhz) cut from an SRTM-3 tile."""
    side = 1201
    hgt = np.fromfile(tile, dtype=">i2").reshape(side, side).astype(float)
    hgt[hgt < -1000] = np.nan  # voids
    rng = np.random.default_rng(seed)
    cell_m = 3.0 / 3600.0 * 111_320.0 * np.array([1.0, np.cos(np.radians(21.5))])
    step = 90.0
    out = []
    while len(out) < count:
        r0, c0 = rng.uniform(50, side - 50, 2)
        bearing = rng.uniform(0, 2 * np.pi)
        n = int(rng.uniform(2, 40) * 1000 / step)
        t = np.arange(n + 1) * step
        rows = np.rint(r0 - np.cos(bearing) * t / cell_m[0]).astype(int)
        cols = np.rint(c0 + np.sin(bearing) * t / cell_m[1]).astype(int)
        if min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= side:
            continue
        z = hgt[rows, cols]
        if np.isnan(z).any():
            continue
        out.append((z, step, rng.uniform(10, 60), rng.uniform(1.5, 10),
                    float(rng.choice([450.0, 900.0, 1800.0, 2100.0, 3500.0]))))
    return out


def itmlogic_loss_db(z: np.ndarray, step_m: float, tx_height_m: float, rx_height_m: float,
                     freq_mhz: float) -> float:
    """Basic transmission loss by itmlogic's point-to-point routines, dB."""
    from itmlogic.misc.qerfi import qerfi
    from itmlogic.preparatory_subroutines.qlrpfl import qlrpfl
    from itmlogic.preparatory_subroutines.qlrps import qlrps
    from itmlogic.statistics.avar import avar

    s = SETTINGS
    n = z.size - 1
    p10 = int(0.1 * n)
    mean_height = float(z[p10:n - p10 + 1].mean())  # as ITM's point-to-point entry
    wn, gme, ens, zgnd = qlrps(freq_mhz, mean_height, s["refractivity_n0"],
                               s["polarization"], s["permittivity"], s["conductivity_s_m"])
    prop = dict(pfl=[n, step_m, *z.tolist()], hg=[tx_height_m, rx_height_m], wn=wn, gme=gme,
                ens=ens, zgnd=zgnd, fmhz=freq_mhz, kwx=0, lvar=5, klim=s["climate"],
                klimx=s["climate"], mdvarx=s["mdvar"], mdvar=s["mdvar"])
    prop = qlrpfl(prop)
    z_t, z_l, z_s = qerfi([s["time_pct"] / 100, s["location_pct"] / 100,
                           s["situation_pct"] / 100])
    attenuation, _ = avar(z_t, z_l, z_s, prop)
    return float(8.685890 * np.log(2 * prop["wn"] * prop["dist"]) + attenuation)


def compare(paths: list[tuple], *, repeat_last: bool) -> np.ndarray:
    """coverage.itm minus itmlogic, dB, per path."""
    diff = []
    for z, step, h_tx, h_rx, f in paths:
        if repeat_last:
            z = np.append(z, z[-1])
        ours = itm.itm_p2p(z, step, h_tx, h_rx, f, warn=False, **SETTINGS).loss_db[0]
        diff.append(ours - itmlogic_loss_db(z, step, h_tx, h_rx, f))
    return np.array(diff)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=300)
    ap.add_argument("--tile", type=Path, default=TILE)
    args = ap.parse_args()
    if not args.tile.exists():
        print(f"no SRTM tile at {args.tile} (skipped)")
        return 0
    paths = random_paths(args.tile, args.paths)
    t = time.perf_counter()
    for repeat_last, label in ((False, "profiles as cut"),
                               (True, "last height repeated (receiver ground agreed)")):
        d = np.abs(compare(paths, repeat_last=repeat_last))
        print(f"{label}: {len(d)} paths, |coverage.itm - itmlogic| median {np.median(d):.3f} "
              f"dB, 95th percentile {np.percentile(d, 95):.3f} dB, max {d.max():.2f} dB, "
              f"{(d > 0.5).sum()} over 0.5 dB")
    print(f"({time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
