"""What the model's level error at the villages' homes is made of (tuning and check worlds).

``benchmarks/share_error.py`` found that one number per village, the model's level error
where its people live, carries most of the covered share's error. This benchmark takes that
error apart. For each world (the scored worlds are refused: their errors are never
examined) it regenerates the world's true field through the generator's own functions
(:func:`coverage.datasets.field.compute_field`, on the world's own random streams) with
the hidden components that no input states switched off, one at a time and together:

- ``shadow``: the log-normal shadowing (``shadow_sigma_db`` 0, which the world's physics
  accepts as "off"; its random draws are made all the same, so nothing else moves);
- ``bias``: each operator's unstated EIRP bias (0 dB for all);
- ``terrain``: the diffraction's profiles drawn over the published 100 m DEM (its whole
  metres, each cell repeated 2 x 2) instead of the hidden 50 m terrain, as the tool sees
  them (``compute_field(profile_m=...)``);
- ``ground``: the masts' own ground altitude from the published DEM too (with ``terrain``:
  the published DEM in place of the hidden terrain everywhere);

nine variants (``off`` names what is switched off; ``-`` is the world itself, checked to
equal its ``truth/signal_truth.tif`` and ``truth/villages_truth.csv``). The fields are
computed at the residents' cells only (``compute_field(cells=...)``: the levels there are
the whole field's), and a variant that keeps a diffraction already computed takes its
losses again rather than computing them (the same inputs, the same losses).

Then, as ``share_error.py`` reads it, the tool's level (the model's estimate of the best
broadband margin, moved by the village's offset) at the product's population pieces of
each village, towers only and with the tests, against each variant's best broadband level:
the village's level error (variant margin minus the model's, both held to +-40 dB or
``--clip-db``, people-weighted over its pieces), its mean and its spread between villages
(``sd``), and the share of the spread's variance the components explain (``explained``:
one minus the variance with them off over the variance with everything on), the spread of
what they add to a village's level (``part_sd``) and its correlation with the error left
(``part_corr``).

And the covered share a perfect model of each variant would give: the contract's rules
(:mod:`coverage.datasets.rules`, :func:`coverage.datasets.truth.village_truth`, with the
complete access table) applied to the variant field, scored against the world's truth:
macro-F1, ``unavailable`` recall, the covered share's RMS error and the villages on the
wrong side of 1/2; and for the variants without shadowing, the share read with the world's
shadowing spread (each resident covered with probability Phi(margin / sigma), the
expectation a model that knows everything but the shadowing would give: ``sig_rms``,
``sig_wrong``, ``sig_unav``).

    PYTHONPATH=src python benchmarks/level_error.py [--worlds NAME ...] [--cache DIR]
        [--clip-db 40] [--json FILE] [--save DIR]

Prints per world its CPU seconds (variants and classifications), then per set (``tuning``,
``check``) the level error per variant and run, and the share per variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import rasterio
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).parent))
import share_error as SE
import worlds as W
import worlds_check as WC

import coverage.datasets.field as F
from coverage.datasets import generate as G
from coverage.datasets import score_classification
from coverage.datasets.rules import VN_2025
from coverage.datasets.truth import access_table, speed_fields, truth_bands, village_truth
from coverage.datasets.worlds import World

#: The hidden components that can be switched off.
COMPONENTS = ("shadow", "bias", "terrain", "ground")
#: The variants, by what is switched off ("-" nothing): each component alone, the ground
#: (the masts' own ground altitude) only with the terrain, and together.
VARIANTS: dict[str, frozenset[str]] = {"+".join(c) or "-": frozenset(c) for c in (
    (), ("shadow",), ("bias",), ("terrain",), ("shadow", "bias"), ("shadow", "terrain"),
    ("shadow", "bias", "terrain"), ("terrain", "ground"),
    ("shadow", "bias", "terrain", "ground"))}
#: Outdoor threshold of the best broadband level (RSRP equivalent), dBm.
THRESHOLD_DBM = VN_2025.outdoor_rsrp_dbm
#: Margins held to this many dB either way (share_error.py's).
CLIP_DB = SE.CLIP_DB


class Parts(NamedTuple):
    """A world's generated parts that its field is computed from."""

    world: World
    streams: dict
    terrain: object
    st: object
    tx: pd.DataFrame
    pop: object


def world_of(name: str) -> World:
    """A tuning or check world; a scored world (or an unknown one) is refused."""
    if name in WC.CHECK_WORLDS:
        return WC.CHECK_WORLDS[name]
    if name in WC.REAL_WORLDS:
        if WC.real_dem() is None:
            raise SystemExit(f"{name}: {WC.REAL_DEM} not found in ../shared/data nor in "
                             "$COVGAP_SHARED_DATA")
        return WC.REAL_WORLDS[name][0]
    if name in W.WORLDS and W.WORLDS[name].role == "tuning":
        return W.WORLDS[name]
    raise SystemExit(f"{name}: not a tuning or check world (the scored worlds are not "
                     "examined)")


def parts_of(world: World) -> Parts:
    """The world's terrain, settlements, transmitters and people, drawn from its seed."""
    dem, centre = ((WC.real_dem(), WC.REAL_WORLDS[world.name][1])
                   if world.name in WC.REAL_WORLDS else (None, None))
    streams, _, terrain, st, _, _, tx, pop, _ = G._radio_world(
        world.seed, world.scale, world.physics, dem, centre, with_field=False)
    return Parts(world, streams, terrain, st, tx, pop)


def published_heights(terrain) -> np.ndarray:
    """The published DEM (whole metres) on the hidden terrain's finer grid, metres."""
    f = terrain.fine_m.shape[0] // terrain.dem_m.shape[0]
    return np.kron(np.round(terrain.dem_m), np.ones((f, f))).astype(np.float32)


def variant_field(parts: Parts, off: frozenset[str], cells: np.ndarray):
    """The world's true field with the components ``off`` switched off, at ``cells``."""
    w = parts.world
    physics = (dataclasses.replace(w.physics, shadow_sigma_db=0.0) if "shadow" in off
               else w.physics)
    bias = G.eirp_bias(sorted(parts.tx["operator"].unique()), w.physics,
                       G._streams(w.seed)["bias"])
    if "bias" in off:
        bias = dict.fromkeys(bias, 0.0)
    hidden = parts.terrain
    terrain = (dataclasses.replace(hidden, fine_m=published_heights(hidden))
               if "ground" in off else hidden)
    edges = published_heights(hidden) if "terrain" in off else hidden.fine_m
    return F.compute_field(terrain, parts.tx, parts.st.towns, parts.pop.on_dem,
                           G._streams(w.seed)["field"], physics, bias, cells=cells,
                           profile_m=edges)


@contextmanager
def _diffraction_kept():
    """Keep the diffraction losses the field computes, by their inputs, while inside.

    :func:`coverage.datasets.physics.diffraction_loss_db` is a pure function of its
    arrays and settings: a variant with the same terrain gets the same losses again
    instead of computing them (three quarters of a field's time).
    """
    kept: dict[bytes, np.ndarray] = {}
    compute = F.diffraction_loss_db

    def keep(distance_m, ground_m, tx_alt_m, rx_alt_m, freq_mhz, **kw):
        h = hashlib.blake2b(repr((tx_alt_m, freq_mhz, sorted(kw.items()))).encode(),
                            digest_size=16)
        for a in (distance_m, ground_m, rx_alt_m):
            a = np.ascontiguousarray(a)
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(a)
        key = h.digest()
        if key not in kept:
            kept[key] = compute(distance_m, ground_m, tx_alt_m, rx_alt_m, freq_mhz, **kw)
        return kept[key].copy()

    F.diffraction_loss_db = keep
    try:
        yield
    finally:
        F.diffraction_loss_db = compute


def _residents(pop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Village index, DEM cell and people of each population cell (the truth's)."""
    vil = pop.village.ravel()
    return vil, pop.dem_cell.ravel(), np.where(vil >= 0, np.maximum(pop.values.ravel(), 0), 0)


def model_pieces(folder: Path, tests: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tool's margin at each population piece of each village (``share_error.py``'s).

    Returns the pieces (``village_id``, ``weight``, the cell centre ``x``/``y`` in the
    grid's CRS, EPSG:32648 on the worlds, and ``model``, the margin in dB) and the
    classified table.
    """
    with SE._captured() as cap:
        out, _, _ = WC._classify(folder, None, tests)
    v, cell = cap["piece_village"], cap["piece_cell"]
    grid = cap["grid"]
    flat = cap["flat"][cell]
    cols = grid.shape[1]
    ids = out["village_id"].astype(str).to_numpy()
    return pd.DataFrame({
        "village_id": ids[v], "weight": cap["piece_weight"],
        "x": grid.transform.c + (flat % cols + 0.5) * grid.transform.a,
        "y": grid.transform.f + (flat // cols + 0.5) * grid.transform.e,
        "model": cap["margin"][cell] + cap["offset"][v]}), out


def village_errors(pieces: pd.DataFrame, dem_cell: np.ndarray,
                   broadband: dict[str, np.ndarray], clip_db: float = CLIP_DB
                   ) -> pd.DataFrame:
    """Each village's level error against each variant: margin minus the model's, dB.

    ``dem_cell``: each piece's flat DEM cell; ``broadband``: variant -> best broadband
    level (dBm) on the DEM grid, flat; both margins held to ``clip_db`` either way.
    """
    model = np.clip(pieces["model"].to_numpy(float), -clip_db, clip_db)
    w = pieces["weight"].to_numpy(float)
    out = {}
    for name, level in broadband.items():
        true = np.clip(level[dem_cell].astype(float) - THRESHOLD_DBM, -clip_db, clip_db)
        err = pd.Series(w * (true - model)).groupby(pieces["village_id"].to_numpy()).sum()
        out[name] = err / pieces.groupby("village_id")["weight"].sum()
    return pd.DataFrame(out)


def _share_figures(variant: pd.DataFrame, truth: pd.DataFrame, sigma_share: np.ndarray | None
                   ) -> dict[str, float]:
    """The variant's classes and covered share against the truth."""
    s = score_classification(variant, truth)
    err = variant["pop_covered_share"].to_numpy() - truth["pop_covered_share"].to_numpy()
    true_unav = truth["pop_covered_share"].to_numpy() < VN_2025.min_covered_share
    row = {"f1": s["macro_f1"], "unav": s["recall"]["unavailable"],
           "rms": float(np.sqrt(np.mean(err ** 2))),
           "wrong": int(((variant["pop_covered_share"].to_numpy() < 0.5) != true_unav).sum())}
    if sigma_share is not None:
        e = sigma_share - truth["pop_covered_share"].to_numpy()
        said = sigma_share < VN_2025.min_covered_share
        row |= {"sig_rms": float(np.sqrt(np.mean(e ** 2))),
                "sig_wrong": int((said != true_unav).sum()),
                "sig_unav": float((said & true_unav).sum() / max(true_unav.sum(), 1))}
    return row


def _sigma_share(level: np.ndarray, pop, sigma_db: float) -> np.ndarray:
    """Per village: the residents' expected covered share under shadowing ``sigma_db``."""
    vil, cell, people = _residents(pop)
    p = ndtr((level[cell].astype(float) - THRESHOLD_DBM) / sigma_db)
    inside = vil >= 0
    n = int(vil.max()) + 1
    num = np.bincount(vil[inside], weights=(people * p)[inside], minlength=n)
    den = np.bincount(vil[inside], weights=people[inside], minlength=n)
    return np.divide(num, den, out=np.zeros(n), where=den > 0)


def _check_reproduced(folder: Path, broadband: np.ndarray, cells: np.ndarray,
                      truth: pd.DataFrame, again: pd.DataFrame) -> None:
    """The world's own field and truth, recomputed, must equal its files."""
    with rasterio.open(folder / "truth" / "signal_truth.tif") as src:
        written = src.read(4).ravel()
    if not np.array_equal(written[cells], broadband[cells]):
        raise SystemExit(f"{folder.name}: the recomputed field differs from signal_truth.tif")
    cols = ["village_id", "class", "reasons", "pop_covered_share"]
    a, b = (t[cols].fillna({"reasons": ""}).reset_index(drop=True) for t in (again, truth))
    if not a.equals(b):
        raise SystemExit(f"{folder.name}: the recomputed truth differs from "
                         "villages_truth.csv")


def world_figures(name: str, folder: Path, world: World | None = None,
                  clip_db: float = CLIP_DB) -> dict:
    """Per village level errors (both runs, every variant) and per variant share figures."""
    c0 = time.process_time()
    world = world or world_of(name)
    pieces = {run: model_pieces(folder, run == "tests") for run in ("towers", "tests")}
    product = pieces["towers"][1]
    c_classify = time.process_time() - c0
    parts = parts_of(world)
    grid = parts.terrain.grid
    dem_cell = {}
    for run, (p, _) in pieces.items():
        r, c = grid.index(p["x"].to_numpy(), p["y"].to_numpy())
        dem_cell[run] = r * grid.cols + c
    _, cell, people = _residents(parts.pop)
    cells = np.zeros(grid.rows * grid.cols, dtype=bool)
    cells[cell[people > 0]] = True
    for d in dem_cell.values():
        cells[d] = True
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    broadband, shares, access = {}, {}, None
    with _diffraction_kept():
        fields = {vname: variant_field(parts, off, cells) for vname, off in VARIANTS.items()}
    for vname, off in VARIANTS.items():
        field = fields.pop(vname)
        bands = truth_bands(field, VN_2025)
        broadband[vname] = bands["broadband"].ravel()
        if access is None:  # the world itself: its complete access table, drawn as it was
            access = access_table(parts.st.villages, G._covered_villages(
                parts.pop, bands, VN_2025, len(parts.st.villages)), parts.streams["access"])
        speeds = speed_fields(field, parts.tx, parts.pop.on_dem, VN_2025)
        vt = village_truth(parts.st.villages, parts.pop, bands, speeds, field, access, VN_2025)
        vt["village_id"] = vt["village_id"].astype(str)
        if vname == "-":
            _check_reproduced(folder, broadband[vname], cells, truth, vt)
        sigma = (_sigma_share(broadband[vname], parts.pop, world.physics.shadow_sigma_db)
                 if "shadow" in off else None)
        shares[vname] = _share_figures(vt, truth, sigma)
    errors = {run: village_errors(p, dem_cell[run], broadband, clip_db)
              for run, (p, _) in pieces.items()}
    s = score_classification(product, truth)
    m = truth.merge(product, on="village_id", suffixes=("_true", "_pred"))
    e = m["pop_covered_share_pred"] - m["pop_covered_share_true"]
    shares["product towers"] = {
        "f1": s["macro_f1"], "unav": s["recall"]["unavailable"],
        "rms": float(np.sqrt(np.mean(e ** 2))),
        "wrong": int(((m["pop_covered_share_pred"] < 0.5)
                      != (m["pop_covered_share_true"] < 0.5)).sum())}
    return {"world": name, "errors": errors, "shares": shares,
            "cpu_classify_s": c_classify, "cpu_s": time.process_time() - c0}


def _set_of(name: str) -> str:
    return "tuning" if name.startswith("tune-") else name.split("-")[0]


def level_table(results: list[dict], run: str) -> pd.DataFrame:
    """Per set and variant: the level error's mean and spread against it, dB.

    ``mean`` over the villages, ``rms_world_mean`` the RMS of the worlds' means, ``sd`` the
    spread around each world's mean (pooled), ``sd_all`` around the set's, ``explained``
    one minus the pooled variance over the world's own (``-``); ``part_sd`` the spread of
    what the components switched off add to a village's level (the world's error minus the
    variant's) and ``part_corr`` its correlation with the error left.
    """
    rows = []
    for s in sorted({_set_of(r["world"]) for r in results}):
        frames = [r["errors"][run].assign(world=r["world"]) for r in results
                  if _set_of(r["world"]) == s]
        df = pd.concat(frames)
        within = df.groupby("world")[list(VARIANTS)].transform(lambda c: c - c.mean())
        dof = len(df) - len(frames)
        var = (within ** 2).sum() / dof
        for v in VARIANTS:
            part = within["-"] - within[v]  # what the components off add to the truth
            rows.append({"set": s, "off": v, "villages": len(df), "mean": df[v].mean(),
                         "rms_world_mean": float(np.sqrt((df.groupby("world")[v].mean()
                                                          ** 2).mean())),
                         "sd": float(np.sqrt(var[v])), "sd_all": df[v].std(),
                         "explained": 1.0 - var[v] / var["-"],
                         "part_sd": float(np.sqrt((part ** 2).sum() / dof)),
                         "part_corr": float(np.corrcoef(part, within[v])[0, 1])
                         if v != "-" else np.nan})
    return pd.DataFrame(rows).set_index(["set", "off"]).round(3)


def world_table(results: list[dict], run: str) -> pd.DataFrame:
    """Per world: mean and SD of the level error for each variant."""
    rows = []
    for r in results:
        e = r["errors"][run]
        rows.append({"world": r["world"], **{f"{v} mean": e[v].mean() for v in VARIANTS},
                     **{f"{v} sd": e[v].std() for v in VARIANTS}})
    return pd.DataFrame(rows).set_index("world").round(2)


def share_table(results: list[dict]) -> pd.DataFrame:
    """Per set and variant: the share figures' means (wrong: summed)."""
    rows = [{"set": _set_of(r["world"]), "world": r["world"], "off": v, **f}
            for r in results for v, f in r["shares"].items()]
    df = pd.DataFrame(rows)
    agg = {c: ((lambda x: x.sum(min_count=1)) if "wrong" in c else "mean")
           for c in df.columns if c not in ("set", "world", "off")}
    order = {v: i for i, v in enumerate([*VARIANTS, "product towers"])}
    out = df.groupby(["set", "off"]).agg(agg).round(3).reset_index()
    out = out.sort_values(["set", "off"], key=lambda c: c.map(order) if c.name == "off" else c)
    return out.set_index(["set", "off"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "coverage-gap" / "worlds")
    parser.add_argument("--worlds", nargs="+", default=[
        *W.TUNING_WORLDS, *[n for n in WC.CHECK_WORLDS if n.startswith("check-")]])
    parser.add_argument("--clip-db", type=float, default=CLIP_DB,
                        help="margins held to this many dB either way (default %(default)s)")
    parser.add_argument("--json", type=Path, help="write the tables to this JSON file")
    parser.add_argument("--save", type=Path,
                        help="write each world's village errors, DIR/<world>_<run>.csv")
    args = parser.parse_args(argv)
    for name in args.worlds:
        world_of(name)
    warnings.simplefilter("ignore")
    c0 = time.process_time()
    results = []
    for name in args.worlds:
        results.append(world_figures(name, WC.folder_of(name, args.cache),
                                     clip_db=args.clip_db))
        r = results[-1]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for run, e in r["errors"].items():
                e.rename_axis("village_id").to_csv(args.save / f"{name}_{run}.csv")
        print(f"{name}: CPU {r['cpu_s']:.0f} s ({r['cpu_classify_s']:.0f} s classifying)",
              flush=True)
    tables = {}
    pd.set_option("display.width", 200)
    for run in ("towers", "tests"):
        print(f"\n== {run}: the village's level error against each variant, dB "
              "(variant margin minus the model's)")
        tables[f"level_{run}"] = level_table(results, run)
        print(tables[f"level_{run}"].to_string())
        tables[f"worlds_{run}"] = world_table(results, run)
    print("\n== towers: per world, the level error's mean and SD against each variant")
    print(tables["worlds_towers"].to_string())
    print("\n== the covered share a perfect model of each variant gives, against the truth")
    tables["shares"] = share_table(results)
    print(tables["shares"].to_string())
    print(f"\nCPU {time.process_time() - c0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            {k: t.reset_index().to_dict(orient="records") for k, t in tables.items()},
            indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
