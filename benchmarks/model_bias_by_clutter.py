"""Bias of the uncalibrated model against the demo's hidden truth, by receiver clutter.

Rebuilds the generator's hidden town and forest masks from the seed (they are not
published), predicts the demo's coverage with three model settings and prints the
population-weighted bias (model minus truth, dB, best broadband level RSRP-equivalent) on
populated cells in towns, in rural cells under forest (density >= 0.5) and in open rural
cells:

1. one Hata environment ("rural") and the antenna height above the receiver (the first model);
2. the same with the mast's own height in Hata;
3. mast height and the environment per cell (Degree of Urbanisation);
4. the default run on the demo: 3 with foliage from the land-cover raster.

    PYTHONPATH=src python benchmarks/model_bias_by_clutter.py
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import rasterio

from coverage.datasets import DEFAULT_SEED, demo_paths
from coverage.datasets import generate as gen
from coverage.datasets._grid import Grid as GenGrid
from coverage.model import clutter_map, predict_coverage
from coverage.pipeline import Settings, analysis_grid, load_inputs, select_towers


def hidden_masks(seed: int = DEFAULT_SEED):
    """Town mask, forest density and people on the DEM grid, as the generator made them."""
    streams = {name: np.random.default_rng([seed, k]) for k, name in enumerate(
        ("terrain", "outline", "settle", "masts", "tx", "field", "pop", "sites", "ocid",
         "access", "tests", "ookla", "publish"))}
    grid = GenGrid(round(458_900.0 - 22_500, -2), round(2_499_300.0 + 17_500, -2), 100.0,
                   350, 450)
    terrain = gen.make_terrain(grid, streams["terrain"])
    outline = gen.make_outline(grid, streams["outline"])
    st = gen.make_settlements(terrain, outline, streams["settle"], n_villages=300,
                              n_communes=25)
    roads = gen.make_roads(terrain, st)
    pop = gen.make_population(terrain, st, roads.mask, streams["pop"])
    x, y = grid.centres()
    town = np.zeros(grid.shape, bool)
    for t in st.towns.itertuples():
        town |= np.hypot(x - t.x, y - t.y) <= t.radius_m
    return town, terrain.forest, pop.on_dem


def main() -> None:
    paths = demo_paths()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = load_inputs(paths["villages"], towers=[paths["sites"], paths["opencellid"]],
                             population=paths["population"], dem=paths["dem"],
                             landcover=paths["landcover"])
    base = Settings().model
    grid = analysis_grid(inputs.villages, base)
    towers = select_towers(inputs.towers, inputs.villages, base)
    active = towers[towers["status"] == "active"]
    with rasterio.open(paths["truth_signal"]) as src:
        truth = src.read(4).astype(float)
        t = src.transform
    r0 = round((grid.transform.f - t.f) / grid.resolution_m)
    c0 = round((t.c - grid.transform.c) / grid.resolution_m)
    town, forest, people = hidden_masks()
    rural = dataclasses.replace(base, environment="rural")
    variants = {  # name: (model parameters, with the land cover)
        "rural, height above receiver": (
            dataclasses.replace(rural, hata_height="above_receiver"), False),
        "rural, mast height": (rural, False),
        "per-cell environment, mast height": (base, False),
        "+ foliage from land cover": (base, True),
    }
    print(f"{'variant':36} {'towns':>7} {'forest':>7} {'open':>7}  (bias dB, by population)")
    for name, (params, land) in variants.items():
        clutter = clutter_map(grid, params, population=inputs.population,
                              landcover=inputs.landcover if land else None)
        s = predict_coverage(active, grid, dem=inputs.dem, params=params, clutter=clutter)
        best = np.full(grid.shape, -200.0)
        for (_, tech), layer in s.layers.items():
            level = np.nan_to_num(layer.astype(float), nan=-200.0)
            if tech == "4G":
                best = np.maximum(best, level)
            elif tech == "3G":
                best = np.maximum(best, level - 5.0)
        best = best[r0:r0 + truth.shape[0], c0:c0 + truth.shape[1]]
        ok = (truth > -140) & (best > -140) & (people > 0)
        row = []
        for sel in (ok & town, ok & ~town & (forest >= 0.5), ok & ~town & (forest < 0.2)):
            row.append(np.average(best[sel] - truth[sel], weights=people[sel]))
        print(f"{name:36} {row[0]:+7.1f} {row[1]:+7.1f} {row[2]:+7.1f}")


if __name__ == "__main__":
    main()
