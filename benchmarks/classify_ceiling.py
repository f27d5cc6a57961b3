"""Ceiling of the classification: the demo's hidden true field as the coverage model.

The classification's errors on the demo province have two sources: the coverage model's
error where no test is near, and the classification's own steps (fusing the tests,
measured cells, the empirical-Bayes offset, the no-service and speed estimates, the
rules). This run takes the first away: it recomputes the hidden true level of every
operator and technology from the demo's seed (:func:`coverage.datasets.generate.true_layers`,
about two minutes), hands it to :func:`coverage.classify.classify_villages` as if it were
the model, and scores the classes against the hidden truth, with and without the tests.
What is left is what the classification itself gets wrong.

With ``--terrain`` it also runs the model on the hidden 50 m terrain the true field is
computed on (:func:`coverage.datasets.generate.hidden_terrain`; the published DEM is its 2 x 2
block mean), sampled at 50 m under the 100 m grid (``ModelParams.terrain_resolution_m``),
with and without the tests (a few minutes more): what the 100 m DEM costs, and what stays
of the model's error with the terrain known (the true field's log-normal shadowing,
foliage and antenna heights the site tables do not give).

    PYTHONPATH=src python benchmarks/classify_ceiling.py [--terrain] [DATA_DIR [SEED]]

DATA_DIR defaults to ``data`` and SEED to the demo's (20241437); for another province
generate it first (``python -m coverage.datasets.generate --out DIR --seed SEED``).
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.classify import classify_villages, village_metrics
from coverage.datasets import DEFAULT_SEED, score_classification
from coverage.datasets.generate import hidden_terrain, true_layers
from coverage.io import Raster
from coverage.model import FLOOR_DBM, CoverageSurfaces, to_grid
from coverage.pipeline import Settings, analysis_grid, load_inputs, run_classify


def main(data: Path, seed: int, *, terrain: bool = False) -> None:
    truth = pd.read_csv(data / "truth" / "villages_truth.csv", dtype={"village_id": str})
    settings = Settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = load_inputs(
            data / "boundaries" / "villages.gpkg",
            towers=[data / "towers" / "sites.csv", data / "towers" / "opencellid.csv"],
            measurements=[data / "measurements" / "tests.csv",
                          data / "measurements" / "ookla_tiles.parquet"],
            population=data / "rasters" / "population.tif", dem=data / "rasters" / "dem.tif",
            access=data / "access" / "access.csv",
            landcover=data / "rasters" / "landcover.tif")
    t0 = time.perf_counter()
    layers, transform, crs = true_layers(seed)
    print(f"true field of {len(layers)} layers recomputed in {time.perf_counter() - t0:.0f} s")
    grid = analysis_grid(inputs.villages, settings.model)
    oracle = CoverageSurfaces(grid, params=settings.model)
    for (op, tech), level in sorted(layers.items()):
        on_grid = to_grid(Raster(level.astype("float64"), transform, crs), grid,
                          resampling="nearest")
        on_grid[~(on_grid >= FLOOR_DBM[tech])] = np.nan  # under the floor: nothing
        oracle.layers[op, tech] = on_grid.astype("float32")
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs["model + tests"], model = run_classify(inputs, settings=settings)
        for label, tests in (("true field + tests", inputs.measurements),
                             ("true field alone", None)):
            runs[label] = classify_villages(
                inputs.villages, oracle, measurements=tests, population=inputs.population,
                access=inputs.access, profile=settings.profile)
        if terrain:
            heights, fine_transform, fine_crs = hidden_terrain(seed)
            fine = replace(settings, model=replace(settings.model,
                                                   terrain_resolution_m=abs(fine_transform.a)))
            known = replace(inputs, dem=Raster(heights.astype("float64"), fine_transform,
                                               fine_crs))
            runs["50 m terrain + tests"], _ = run_classify(known, settings=fine)
            runs["50 m terrain alone"], _ = run_classify(replace(known, measurements=None),
                                                         settings=fine)
    for label, classified in runs.items():
        s = score_classification(classified, truth)
        m = truth.merge(classified[["village_id", "class"]], on="village_id",
                        suffixes=("_true", ""))
        print(f"{label:>19}: accuracy {s['accuracy']:.3f}  macro-F1 {s['macro_f1']:.3f}  "
              f"unavailable recall {s['recall']['unavailable']:.3f}")
        print(pd.crosstab(m["class_true"], m["class"]).to_string(), "\n", flush=True)
    # the model (uncalibrated, as predicted) against the true field where people live
    profile = settings.profile
    shift = np.float32(profile.outdoor_rsrp_dbm - profile.outdoor_rscp_dbm)

    def broadband(s: CoverageSurfaces) -> np.ndarray:
        return np.fmax(s.best(techs=("4G", "5G")), s.best(techs=("3G",)) + shift)

    people = to_grid(inputs.population, grid, resampling="sum")
    pred, true = (np.maximum(np.nan_to_num(broadband(s), nan=-125.0), -125.0)
                  for s in (model, oracle))
    use = (people > 0) & ((pred > -125.0) | (true > -125.0))
    err = (pred - true)[use]
    print(f"model - true field, best broadband level on populated cells, people-weighted: "
          f"RMS {np.sqrt(np.average(err**2, weights=people[use])):.1f} dB, "
          f"bias {np.average(err, weights=people[use]):+.1f} dB (both floored at -125 dBm)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = village_metrics(inputs.villages, oracle, measurements=inputs.measurements,
                                  population=inputs.population, profile=profile)
    missed = (truth.set_index("village_id")["class"].eq("available_inaccessible")
              & runs["true field + tests"].set_index("village_id")["class"].eq("served"))
    few = metrics.set_index(inputs.villages["village_id"])["n_service_tests"] < (
        profile.min_no_service_tests)
    print(f"available_inaccessible villages the true field + tests call served: "
          f"{int(missed.sum())}, of which {int((missed & few).sum())} have fewer than "
          f"{profile.min_no_service_tests} tests with a known outcome (the no-service rule's "
          "minimum)\n")
    print("'true field alone' has no tests: the rules that need them (slow_speed,\n"
          "measured_no_service) cannot fire, so its available_inaccessible villages fall\n"
          "to served; its unavailable recall is the coverage shares' own ceiling.")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--terrain"]
    main(Path(args[0]) if args else Path("data"),
         int(args[1]) if len(args) > 1 else DEFAULT_SEED, terrain="--terrain" in sys.argv[1:])
