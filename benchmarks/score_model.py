"""Quality of the coverage model on the demo province's hidden truth.

Run from the repository root (one command; reads ``data/``, writes nothing)::

    PYTHONPATH=src python benchmarks/score_model.py

For the variants of the signal model it prints, against ``data/truth/signal_truth.tif``:

- **RMSE and bias of the predicted level**, dB, per technology (best over operators, on
  cells where the truth or the prediction is above -125 dBm, both clipped below at
  -125 dBm so "nothing" compares as the floor) and for the broadband RSRP-equivalent;
- **coverage-mask agreement**: the share of cells inside the villages where the predicted
  and the true outdoor broadband masks (-110 dBm RSRP equivalent) agree, and Cohen's kappa;
- **village classes** from :func:`coverage.classify.classify_villages` scored against
  ``data/truth/villages_truth.csv`` (accuracy and macro F1, :mod:`coverage.datasets.scoring`);
- the 5-fold spatial cross-validation of calibration and kriging on the point tests.

Variants: ``fixed radius`` (a planner's rule of thumb: every 2G site covers 10 km, every 3G
or 4G site 5 km, at -90 dBm inside the disc); ``no terrain`` (Hata only); ``terrain``
(Hata + Bullington over the DEM); ``ITM`` (the Irregular Terrain Model over the DEM,
``path_loss = "itm"``); each without and with fusion (robust calibration + residual
kriging). The demo's hidden truth is itself drawn from Hata + Bullington over a finer
terrain (``coverage.datasets.field``), which favours that model over ITM here. The
contract's override by nearby measurements (``measurement_radius_m``) applies in every
classification.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
import rasterio

from coverage.classify import classify_villages
from coverage.datasets import demo_paths
from coverage.datasets.scoring import score_classification
from coverage.io import Raster
from coverage.model import (
    CoverageSurfaces,
    clutter_map,
    cross_validate,
    fuse_measurements,
    predict_coverage,
    prepare_transmitters,
    to_grid,
)
from coverage.pipeline import DEMO_CONFIG, Settings, analysis_grid, load_inputs, select_towers

FIXED_RADIUS_M = {"2G": 10_000.0, "3G": 5_000.0, "4G": 5_000.0, "5G": 3_000.0}
CLIP_DBM = -125.0


def fixed_radius(towers, grid, params) -> CoverageSurfaces:
    tx = prepare_transmitters(towers, grid.crs, params)
    out = CoverageSurfaces(grid, params=dataclasses.replace(params, calibrate=False,
                                                            krige=False))
    x, y = grid.centres()
    for r in tx.itertuples():
        key = (str(r.operator), str(r.tech))
        layer, _ = out.layer_arrays(key)
        layer[np.hypot(x - r.x, y - r.y) <= FIXED_RADIUS_M[r.tech]] = -90.0
    return out


def truth_on(grid, path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as src:
        bands = src.read().astype("float64")
        transform, crs = src.transform, src.crs
    names = ("2G", "3G", "4G", "broadband")
    return {n: to_grid(Raster(b, transform, crs), grid, resampling="nearest")
            for n, b in zip(names, bands, strict=True)}


def broadband_equivalent(s: CoverageSurfaces, profile) -> np.ndarray:
    shift = profile.outdoor_rsrp_dbm - profile.outdoor_rscp_dbm
    b3 = s.best(techs=("3G",)) + np.float32(shift)
    return np.fmax(s.best(techs=("4G", "5G")), b3)


def signal_scores(s: CoverageSurfaces, truth, inside: np.ndarray, profile) -> dict:
    out = {}
    preds = {"2G": s.best(techs=("2G",)), "3G": s.best(techs=("3G",)),
             "4G": s.best(techs=("4G",)), "broadband": broadband_equivalent(s, profile)}
    for name, pred in preds.items():
        t = truth[name]
        ok = inside & np.isfinite(t)
        p = np.maximum(np.nan_to_num(pred, nan=CLIP_DBM), CLIP_DBM)[ok]
        tt = np.maximum(t[ok], CLIP_DBM)
        use = (p > CLIP_DBM) | (tt > CLIP_DBM)
        e = p[use] - tt[use]
        out[f"rmse_{name}"] = float(np.sqrt(np.mean(e**2)))
        out[f"bias_{name}"] = float(np.mean(e))
    t = truth["broadband"]
    ok = inside & np.isfinite(t)
    pm = (np.nan_to_num(preds["broadband"], nan=-999) >= profile.outdoor_rsrp_dbm)[ok]
    tm = (t >= profile.outdoor_rsrp_dbm)[ok]
    agree = float(np.mean(pm == tm))
    pe = pm.mean() * tm.mean() + (1 - pm.mean()) * (1 - tm.mean())
    out["mask_agreement"] = agree
    out["mask_kappa"] = (agree - pe) / (1 - pe)
    out["covered_pred"], out["covered_true"] = float(pm.mean()), float(tm.mean())
    return out


def main() -> int:
    paths = demo_paths()
    if not paths["truth_signal"].exists():
        print("no demo truth under data/truth (run the generator)")
        return 1
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    settings = Settings.from_config(DEMO_CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = load_inputs(
            paths["villages"], towers=[paths["sites"], paths["opencellid"]],
            measurements=[paths["tests"], paths["ookla"]], population=paths["population"],
            dem=paths["dem"], access=paths["access"], landcover=paths["landcover"])
        grid = analysis_grid(inputs.villages, settings.model)
        towers = select_towers(inputs.towers, inputs.villages, settings.model)
    active = towers[towers["status"] == "active"]
    truth = truth_on(grid, paths["truth_signal"])
    truth_classes = pd.read_csv(paths["truth_villages"], dtype={"village_id": str})
    inside = np.isfinite(truth["broadband"])
    profile = settings.profile
    base = settings.model
    rows = []
    variants = [
        ("fixed radius", None, False),
        ("no terrain, no fusion", dataclasses.replace(base, terrain=False), False),
        ("no terrain, fusion", dataclasses.replace(base, terrain=False), True),
        ("terrain, no fusion", base, False),
        ("terrain, calibration only", base, "calibrate"),
        ("terrain, fusion", base, True),
        ("ITM, no fusion", dataclasses.replace(base, path_loss="itm"), False),
        ("ITM, fusion", dataclasses.replace(base, path_loss="itm"), True),
    ]
    cache: dict[tuple, CoverageSurfaces] = {}
    for name, params, fuse in variants:
        t0 = time.perf_counter()
        if params is None:
            s = fixed_radius(active, grid, base)
        else:
            key = (params.terrain, params.path_loss)
            if key not in cache:
                clutter = clutter_map(grid, params, population=inputs.population,
                                      landcover=inputs.landcover)
                cache[key] = predict_coverage(active, grid, dem=inputs.dem, params=params,
                                              clutter=clutter)
            s = cache[key].copy()
            s.params = dataclasses.replace(params, calibrate=bool(fuse), krige=fuse is True)
        fused = fuse_measurements(s, inputs.measurements, radius_m=0.0)
        sig = signal_scores(fused, truth, inside, profile)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classified = classify_villages(inputs.villages, s,
                                           measurements=inputs.measurements,
                                           population=inputs.population,
                                           access=inputs.access, profile=profile)
        sc = score_classification(classified, truth_classes)
        rows.append({"variant": name, **{k: round(v, 3) for k, v in sig.items()},
                     "class_accuracy": round(sc["accuracy"], 3),
                     "class_macro_f1": round(sc["macro_f1"], 3),
                     "seconds": round(time.perf_counter() - t0, 1)})
        if name == "terrain, fusion":
            print("calibration (intercept dB, slope dB/decade, tests):")
            for key, (a, b, n) in sorted(fused.calibration.items()):
                print(f"  {key[0]:>10} {key[1]}: {a:+6.1f} {b:+6.1f} {n:5d}")
    table = pd.DataFrame(rows).set_index("variant")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print("signal vs truth (dB; masks on cells of the DEM) and classes vs truth:")
        print(table[["rmse_broadband", "bias_broadband", "rmse_2G", "rmse_3G", "rmse_4G",
                     "mask_agreement", "mask_kappa", "covered_pred", "covered_true",
                     "class_accuracy", "class_macro_f1", "seconds"]].to_string())
    for block_m in (base.cv_block_m, 200.0):
        cv = cross_validate(cache[True, base.path_loss], inputs.measurements,
                            params=dataclasses.replace(base, cv_block_m=block_m))
        print(f"5-fold spatial cross-validation on point tests ({block_m:g} m blocks), "
              "predicted - measured:")
        print(cv.round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
