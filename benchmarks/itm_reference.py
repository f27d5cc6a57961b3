"""coverage.itm on NTIA's reference cases: expected and computed loss, side by side.

Run from the repository root (reads ../shared/data/itm-reference, writes nothing)::

    PYTHONPATH=src python benchmarks/itm_reference.py

Prints every case of NTIA/itm's ``p2p.csv`` (with ``pfls.csv``) and ``area.csv``: the
inputs that vary, NTIA's basic transmission loss (to 0.01 dB and 0.1 dB), ours, the
difference and the propagation mode. ``tests/test_itm.py`` asserts the same within 0.1 dB.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from coverage import itm

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "itm-reference"
MODES = {1: "line of sight", 2: "diffraction", 3: "troposcatter"}


def settings(row: dict) -> dict:
    return dict(climate=int(row["climate"]), refractivity_n0=float(row["N_0"]),
                polarization=int(row["pol"]), permittivity=float(row["epsilon"]),
                conductivity_s_m=float(row["sigma"]), mdvar=int(row["mdvar"]),
                time_pct=float(row["time"]), location_pct=float(row["location"]),
                situation_pct=float(row["situation"]), warn=False)


def main() -> int:
    if not ROOT.exists():
        print(f"no NTIA reference cases at {ROOT} (skipped)")
        return 0
    print("point-to-point (p2p.csv):")
    rows = list(csv.DictReader((ROOT / "p2p.csv").read_text().splitlines()))
    pfls = [line for line in (ROOT / "pfls.csv").read_text().splitlines() if line.strip()]
    for row, pfl in zip(rows, pfls, strict=True):
        values = [float(v) for v in pfl.split(",")]
        r = itm.itm_p2p(values[2:], values[1], float(row["h_tx__meter"]),
                        float(row["h_rx__meter"]), float(row["f__mhz"]), **settings(row))
        want = float(row["A__db"])
        print(f"  {float(row['f__mhz']):6g} MHz, {r.distance_m[0] / 1000:6.1f} km, climate "
              f"{row['climate']}: NTIA {want:7.2f} dB, ours {r.loss_db[0]:7.2f} dB, "
              f"diff {r.loss_db[0] - want:+.3f} ({MODES[int(r.mode[0])]})")
    print("area (area.csv):")
    for row in csv.DictReader((ROOT / "area.csv").read_text().splitlines()):
        r = itm.itm_area(float(row["d__km"]) * 1000, float(row["h_tx__meter"]),
                         float(row["h_rx__meter"]), float(row["f__mhz"]),
                         float(row["delta_h__meter"]), tx_siting=int(row["tx_siting_criteria"]),
                         rx_siting=int(row["rx_siting_criteria"]), **settings(row))
        want = float(row["A__db"])
        print(f"  {float(row['f__mhz']):6g} MHz, {float(row['d__km']):5g} km, delta_h "
              f"{row['delta_h__meter']:>2} m: NTIA {want:6.1f} dB, ours {r.loss_db[0]:7.2f} dB, "
              f"diff {r.loss_db[0] - want:+.3f} ({MODES[int(r.mode[0])]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
