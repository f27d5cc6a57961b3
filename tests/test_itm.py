"""The Irregular Terrain Model against NTIA's own reference cases, and its input checks.

The reference cases are read from ../shared/data/itm-reference (NTIA/itm's p2p.csv,
pfls.csv, area.csv and cmd_examples/); those tests skip with the reason when it is absent.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA
from coverage import itm
from coverage.errors import ItmWarning, ParameterError

ROOTS = [Path(p) for p in (os.environ.get("COVGAP_SHARED_DATA"),) if p] + [
    SHARED_DATA, REPO.parents[1] / "shared" / "data"]


def reference(rel: str) -> Path:
    path = next((root / "itm-reference" / rel for root in ROOTS
                 if (root / "itm-reference" / rel).exists()), None)
    if path is None:
        pytest.skip(f"NTIA ITM reference file itm-reference/{rel} absent from ../shared/data "
                    "(see its SOURCE.txt)")
    return path


def read_pfl(text: str) -> tuple[np.ndarray, float]:
    """A PFL record: intervals, step (m), then the heights."""
    values = [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
    n = int(values[0])
    assert len(values) == n + 3, "a PFL record holds n + 1 heights"
    return np.array(values[2:]), values[1]


def p2p_cases():
    rows = list(csv.DictReader(reference("p2p.csv").read_text().splitlines()))
    pfls = [line for line in reference("pfls.csv").read_text().splitlines() if line.strip()]
    assert len(rows) == len(pfls) == 5
    return [(row, *read_pfl(pfl)) for row, pfl in zip(rows, pfls, strict=True)]


def common(row: dict) -> dict:
    return dict(climate=int(row["climate"]), refractivity_n0=float(row["N_0"]),
                polarization=int(row["pol"]), permittivity=float(row["epsilon"]),
                conductivity_s_m=float(row["sigma"]), mdvar=int(row["mdvar"]),
                time_pct=float(row["time"]), location_pct=float(row["location"]),
                situation_pct=float(row["situation"]))


def test_every_point_to_point_reference_case_within_a_tenth_of_a_db():
    for row, z, step in p2p_cases():
        r = itm.itm_p2p(z, step, float(row["h_tx__meter"]), float(row["h_rx__meter"]),
                        float(row["f__mhz"]), warn=False, **common(row))
        assert abs(r.loss_db[0] - float(row["A__db"])) <= 0.1, (row, r.loss_db[0])


def test_reference_profiles_of_different_lengths_in_one_padded_batch():
    cases = p2p_cases()
    k = max(z.size for _, z, _ in cases)
    batch = np.zeros((len(cases), k))
    for i, (_, z, _) in enumerate(cases):
        batch[i, :z.size] = z
    # one set of settings for all: each row must equal the profile alone
    row = cases[0][0]
    kw = common(row) | dict(warn=False)
    steps = np.array([s for _, _, s in cases])
    together = itm.itm_p2p(batch, steps, 10.0, 2.0, 900.0,
                           intervals=[z.size - 1 for _, z, _ in cases], **kw)
    for i, (_, z, step) in enumerate(cases):
        alone = itm.itm_p2p(z, step, 10.0, 2.0, 900.0, **kw)
        assert together.loss_db[i] == pytest.approx(alone.loss_db[0], abs=1e-9)
        assert together.delta_h_m[i] == pytest.approx(alone.delta_h_m[0], abs=1e-9)


def cmd_output(name: str) -> dict[str, str]:
    """The first number of each line of a command-line output, by the line's first word."""
    out = {}
    for line in reference(f"cmd_examples/{name}").read_text().splitlines():
        parts = line.split()
        nums = [p for p in parts[1:] if p[0].isdigit() or p[0] == "-"]
        if nums:
            out[parts[0]] = nums[0]
    return out


def test_intermediate_values_of_the_command_line_examples():
    z, step = read_pfl(reference("cmd_examples/pfl.txt").read_text())
    kw = dict(climate=5, refractivity_n0=301.0, polarization=1, permittivity=15.0,
              conductivity_s_m=0.005, mdvar=1)
    for name, pct in (("o_p2ptls.txt", (50.0, 50.0, 50.0)),
                      ("o_p2pcr.txt", (50.0, 50.0, 50.0))):  # CR 50/50 is TLS 50/50/50
        want = cmd_output(name)
        r = itm.itm_p2p(z, step, 15.0, 3.0, 3500.0, time_pct=pct[0], location_pct=pct[1],
                        situation_pct=pct[2], **kw)
        assert round(float(r.loss_db[0]), 1) == float(want["Basic"])
        assert round(float(r.free_space_db[0]), 1) == float(want["Free"])
        assert round(float(r.distance_m[0]) / 1000, 3) == float(want["d__km"])
        assert round(float(r.theta_hzn[0, 0]) * 1e3, 3) == float(want["theta_hzn_tx"])
        assert round(float(r.theta_hzn[1, 0]) * 1e3, 3) == float(want["theta_hzn_rx"])
        assert round(float(r.d_hzn_m[0, 0])) == float(want["d_hzn_tx__meter"])
        assert round(float(r.d_hzn_m[1, 0])) == float(want["d_hzn_rx__meter"])
        assert round(float(r.h_e_m[0, 0]), 1) == float(want["h_e_tx__meter"])
        assert round(float(r.h_e_m[1, 0]), 1) == float(want["h_e_rx__meter"])
        assert round(float(r.n_s[0]), 1) == float(want["N_s"])
        assert round(float(r.delta_h_m[0]), 1) == float(want["delta_h__meter"])
        assert round(float(r.a_ref_db[0]), 1) == float(want["A_ref__db"])
        assert int(r.mode[0]) == int(want["Mode"]) == itm.LINE_OF_SIGHT
        assert int(r.flags[0]) == 0


def test_confidence_reliability_table_of_the_command_line_example():
    z, step = read_pfl(reference("cmd_examples/pfl.txt").read_text())
    text = reference("cmd_examples/o_p2pcr_tbl.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("Reliability"))
    table = {int(line.split()[0]): [float(v) for v in line.split()[1:]]
             for line in text[start + 2:start + 5]}
    assert sorted(table) == [10, 65, 90]
    for reliability, row in table.items():
        got = [round(float(itm.itm_p2p(z, step, 15.0, 3.0, 3500.0, climate=5, polarization=1,
                                       permittivity=15.0, conductivity_s_m=0.005, mdvar=1,
                                       time_pct=reliability, location_pct=50.0,
                                       situation_pct=c).loss_db[0]), 1)
               for c in (10.0, 60.0, 90.0)]
        assert got == row


def test_every_area_reference_case_within_a_tenth_of_a_db():
    rows = list(csv.DictReader(reference("area.csv").read_text().splitlines()))
    assert len(rows) == 5
    for row in rows:
        r = itm.itm_area(float(row["d__km"]) * 1000, float(row["h_tx__meter"]),
                         float(row["h_rx__meter"]), float(row["f__mhz"]),
                         float(row["delta_h__meter"]), tx_siting=int(row["tx_siting_criteria"]),
                         rx_siting=int(row["rx_siting_criteria"]), warn=False, **common(row))
        assert abs(r.loss_db[0] - float(row["A__db"])) <= 0.1, (row, r.loss_db[0])


def test_area_command_line_examples_with_intermediate_values_and_the_distance_table():
    want = cmd_output("o_areatls.txt")
    r = itm.itm_area(10_000.0, 15.0, 3.0, 3500.0, 20.0, climate=5, polarization=1,
                     permittivity=15.0, conductivity_s_m=0.005, mdvar=1)
    assert round(float(r.loss_db[0]), 1) == float(want["Basic"])
    assert round(float(r.theta_hzn[0, 0]) * 1e3, 3) == float(want["theta_hzn_tx"])
    assert round(float(r.theta_hzn[1, 0]) * 1e3, 3) == float(want["theta_hzn_rx"])
    assert round(float(r.d_hzn_m[0, 0])) == float(want["d_hzn_tx__meter"])
    assert round(float(r.d_hzn_m[1, 0])) == float(want["d_hzn_rx__meter"])
    assert round(float(r.a_ref_db[0]), 1) == float(want["A_ref__db"])
    # the confidence table over distances (reliability 90%, broadcast mode)
    text = reference("cmd_examples/o_areacr_tbl.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("Distance"))
    rows = [[float(v) for v in line.split()] for line in text[start + 2:] if line.strip()]
    assert len(rows) == 19
    d = np.array([r[0] for r in rows]) * 1000
    for j, confidence in enumerate((50.0, 75.0, 90.0)):
        r = itm.itm_area(d, 3.0, 3.0, 10_000.0, 0.0, climate=5, polarization=1,
                         permittivity=15.0, conductivity_s_m=0.005, mdvar=3, time_pct=90.0,
                         location_pct=50.0, situation_pct=confidence)
        assert np.round(r.loss_db, 1).tolist() == [row[2 + j] for row in rows]
        assert np.round(r.free_space_db, 1).tolist() == [row[1] for row in rows]


# --- input checks and warnings (no reference data needed) ---------------------------------


FLAT = np.zeros(101)  # 10 km at 100 m


def test_bad_inputs_are_refused_naming_the_setting_and_its_range():
    cases = [
        (dict(freq_mhz=10.0), "freq_mhz=10 MHz is outside ITM's range [20, 20000] MHz"),
        (dict(freq_mhz=30_000.0), "freq_mhz=30000"),
        (dict(tx_height_m=0.2), "tx_height_m=0.2 m is outside ITM's range [0.5, 3000] m"),
        (dict(rx_height_m=4000.0), "rx_height_m=4000"),
        (dict(climate=8), "climate=8 is not an ITM radio climate: use 1 (equatorial)"),
        (dict(refractivity_n0=450.0), "refractivity_n0=450"),
        (dict(mdvar=4), "mdvar=4"),
        (dict(time_pct=100.0), "time_pct=100 % is outside ITM's range (0, 100) %"),
        (dict(polarization="circular"), "polarization='circular'"),
        (dict(conductivity_s_m=0.0), "conductivity_s_m=0"),
    ]
    base = dict(tx_height_m=30.0, rx_height_m=1.5, freq_mhz=900.0)
    for change, message in cases:
        kw = base | change
        args = (kw.pop("tx_height_m"), kw.pop("rx_height_m"), kw.pop("freq_mhz"))
        with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(
                ")", r"\)").replace("[", r"\[").replace("]", r"\]")):
            itm.itm_p2p(FLAT, 100.0, *args, **kw)


def test_a_profile_too_short_or_with_voids_is_refused():
    with pytest.raises(ParameterError, match="at least 3 heights"):
        itm.itm_p2p(np.zeros(2), 100.0, 30.0, 1.5, 900.0)
    z = FLAT.copy()
    z[40] = np.nan
    with pytest.raises(ParameterError, match="finite"):
        itm.itm_p2p(z, 100.0, 30.0, 1.5, 900.0)
    with pytest.raises(ParameterError, match="step_m=0"):
        itm.itm_p2p(FLAT, 0.0, 30.0, 1.5, 900.0)


def test_a_ground_impedance_outside_the_model_is_refused():
    # a permittivity of 1 (no ground): the impedance's imaginary part equals its real part
    with pytest.raises(ParameterError, match=r"permittivity=1 and conductivity_s_m=0\.005"):
        itm.itm_p2p(FLAT, 100.0, 30.0, 1.5, 900.0, permittivity=1.0,
                    polarization="horizontal")


def test_outside_the_validity_limits_a_warning_names_the_flag_and_the_share_of_paths():
    # a 200 m path (under 1 km) next to a 10 km one, at 15 GHz (outside 40 MHz-10 GHz)
    z = np.zeros((2, 101))
    with pytest.warns(ItmWarning) as record:
        r = itm.itm_p2p(z, np.array([2.0, 100.0]), 30.0, 1.5, 15_000.0)
    assert len(record) == 1
    message = str(record[0].message)
    assert "frequency outside 40-10000 MHz (100.0% of paths)" in message
    assert "path shorter than 1 km (50.0% of paths)" in message
    flags = record[0].message.flags
    assert flags & itm.ItmFlag.FREQUENCY and flags & itm.ItmFlag.PATH_DISTANCE_TOO_SMALL_2
    assert r.flags[0] & itm.ItmFlag.PATH_DISTANCE_TOO_SMALL_2
    assert not r.flags[1] & itm.ItmFlag.PATH_DISTANCE_TOO_SMALL_2
    assert np.isfinite(r.loss_db).all()
    # within the limits: no warning at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        itm.itm_p2p(np.zeros(101), 100.0, 30.0, 1.5, 900.0)


def test_loss_grows_with_distance_and_a_ridge_adds_diffraction_loss():
    d = np.linspace(1000.0, 50_000.0, 30)
    r = itm.itm_area(d, 30.0, 1.5, 900.0, 90.0, warn=False)
    assert (np.diff(r.loss_db) > 0).all()
    assert (r.loss_db >= r.free_space_db - 1e-9).all() or (r.a_ref_db >= 0).all()
    flat = np.zeros(201)
    ridge = flat.copy()
    ridge[90:110] = 150.0 * np.hanning(20)
    a, b = itm.itm_p2p(np.stack([flat, ridge]), 100.0, 30.0, 1.5, 900.0).loss_db
    assert b > a + 10.0


def test_equatorial_and_maritime_subtropical_medians_differ_little_within_30_km():
    """The default climate's choice (docs/itm.md): at 50%, only V_med differs."""
    d = np.geomspace(100.0, 30_000.0, 200)
    worst = 0.0
    for f in (700.0, 900.0, 1800.0, 2100.0, 3500.0):
        for h_e in ((10.0, 1.5), (30.0, 1.5), (100.0, 5.0), (300.0, 10.0)):
            v = [itm.variability_db(np.zeros(d.size), np.array(h_e)[:, None], 90.0, f, d,
                                    climate=c, mdvar=2, time_pct=50.0, location_pct=50.0,
                                    situation_pct=50.0)[0] for c in (1, 3)]
            worst = max(worst, float(np.abs(v[0] - v[1]).max()))
    assert 0.5 < worst < 1.3
