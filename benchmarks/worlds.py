"""Score `covgap classify` on the independent worlds (coverage.datasets.worlds).

Each world is generated once into a cache folder (regenerated when the generator's code
changes), then classified twice with the `covgap` command, as a user would: with the point
tests (``measurements/tests.csv``) and with the towers only (no measurements). Both runs get
the villages, the towers (site table and OpenCelliD), the population raster, the DEM, the
land cover and the access table. Printed per world, against the world's hidden truth:

- ``F1 tests``: macro-F1 of the classes with the tests; ``unav tests``: recall of
  ``unavailable`` with the tests;
- ``F1 towers`` and ``unav towers``: the same with the towers only; ``unav gain``: the
  tests' change of ``unavailable`` recall (must never be negative);
- ``Brier``: Brier score of ``confidence`` against the class being right (with the tests);
- ``acc meas`` / ``acc model``: accuracy of the villages whose evidence is ``measured``
  and of the others (``model``, ``model+sparse_tests``), with their counts;
- ``slow rec`` / ``nosrv rec``: recall of the true ``slow_speed`` and
  ``measured_no_service`` reasons among villages holding 5 tests or more (hits/positives).

Then the aggregate over the worlds asked for (mean of each figure, pooled recalls of the
reasons) and the worst world (lowest macro-F1 with the tests), against the targets.

The project's rule: tune on the tuning worlds, score on the scored worlds, and never look at
the scored worlds' errors. ``--errors`` prints the per-village errors and is refused for a
scored world; ``--aggregate-only`` prints only the aggregate and the worst world's figures.

    PYTHONPATH=src python benchmarks/worlds.py [--worlds tuning|scored|all|NAME ...]
        [--cache DIR] [--aggregate-only] [--errors] [--json FILE]

Default: ``--worlds tuning``; cache ``$XDG_CACHE_HOME/coverage-gap/worlds``. The bracket after
each world gives the wall and CPU seconds of its generation (0 when cached) and of its two
classifications.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage.datasets import score_classification
from coverage.datasets.worlds import SCORED_WORLDS, TUNING_WORLDS, WORLDS, generate_world

TARGETS = {"f1_tests": 0.88, "worst_f1_tests": 0.85, "unav_tests": 0.93, "f1_towers": 0.80,
           "brier": 0.12, "slow_recall": 0.85, "nosrv_recall": 0.85}
MIN_TESTS = 5


def _generator_hash() -> str:
    import coverage.datasets as ds

    h = hashlib.sha256()
    for p in sorted(Path(ds.__file__).parent.glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def world_folder(name: str, cache: Path) -> Path:
    """The world's generated files, generating them when absent or stale."""
    w = WORLDS[name]
    key = hashlib.sha256(f"{w!r}{_generator_hash()}".encode()).hexdigest()[:10]
    folder = cache / f"{name}-{key}"
    if not (folder / "truth" / "villages_truth.csv").is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        generate_world(name, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def _covgap() -> list[str]:
    exe = Path(sys.executable).with_name("covgap")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "from coverage.cli import main; main()"]


def classify(folder: Path, out: Path, *, tests: bool) -> pd.DataFrame:
    """Run `covgap classify` on a world's files; the classified table."""
    args = [*_covgap(), "classify", str(folder / "boundaries" / "villages.gpkg"),
            "--towers", str(folder / "towers" / "sites.csv"),
            "--towers", str(folder / "towers" / "opencellid.csv"),
            "--population", str(folder / "rasters" / "population.tif"),
            "--dem", str(folder / "rasters" / "dem.tif"),
            "--landcover", str(folder / "rasters" / "landcover.tif"),
            "--access", str(folder / "access" / "access.csv"),
            "-o", str(out), "--overwrite"]
    if tests:
        args += ["--measurements", str(folder / "measurements" / "tests.csv")]
    run = subprocess.run(args, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"covgap classify failed on {folder}:\n{run.stderr}")
    return pd.read_csv(out, dtype={"village_id": str})


def tests_per_village(folder: Path) -> pd.Series:
    """Point tests inside each village (by polygon), indexed by village_id."""
    v = gpd.read_file(folder / "boundaries" / "villages.gpkg")
    t = pd.read_csv(folder / "measurements" / "tests.csv")
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326")
    joined = gpd.sjoin(pts.to_crs(v.crs), v[["village_id", "geometry"]], predicate="within")
    counts = joined.groupby("village_id").size()
    return counts.reindex(v["village_id"].astype(str), fill_value=0)


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _has(reasons: pd.Series, code: str) -> np.ndarray:
    return reasons.fillna("").str.split(";").apply(lambda r: code in r).to_numpy()


def score_world(name: str, cache: Path, work: Path) -> tuple[dict, pd.DataFrame]:
    """Figures of one world, and its per-village table (for the tuning worlds' errors)."""
    t0, c0 = time.perf_counter(), time.process_time()
    folder = world_folder(name, cache)
    gen_s, gen_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    t1, k1 = time.perf_counter(), _children_cpu_s()
    with_tests = classify(folder, work / f"{name}-tests.csv", tests=True)
    towers = classify(folder, work / f"{name}-towers.csv", tests=False)
    classify_s, classify_cpu_s = time.perf_counter() - t1, _children_cpu_s() - k1
    s_tests = score_classification(with_tests, truth)
    s_towers = score_classification(towers, truth)
    m = truth.merge(with_tests[["village_id", "class", "reasons", "confidence", "evidence"]],
                    on="village_id", suffixes=("_true", "_pred"))
    m["n_point_tests"] = tests_per_village(folder).reindex(m["village_id"]).to_numpy()
    ok = (m["class_true"] == m["class_pred"]).to_numpy()
    measured = (m["evidence"] == "measured").to_numpy()
    many = m["n_point_tests"].to_numpy() >= MIN_TESTS
    row = {"world": name, "role": WORLDS[name].role, "villages": len(truth),
           "f1_tests": s_tests["macro_f1"], "unav_tests": s_tests["recall"]["unavailable"],
           "f1_towers": s_towers["macro_f1"], "unav_towers": s_towers["recall"]["unavailable"],
           "brier": float(np.mean((m["confidence"].to_numpy() - ok) ** 2)),
           "acc_measured": float(ok[measured].mean()) if measured.any() else float("nan"),
           "n_measured": int(measured.sum()),
           "acc_model": float(ok[~measured].mean()) if (~measured).any() else float("nan"),
           "n_model": int((~measured).sum()),
           "generate_s": gen_s, "generate_cpu_s": gen_cpu_s, "classify_s": classify_s,
           "classify_cpu_s": classify_cpu_s}
    row["unav_gain"] = row["unav_tests"] - row["unav_towers"]
    for code, key in (("slow_speed", "slow"), ("measured_no_service", "nosrv")):
        pos = _has(m["reasons_true"], code) & many
        hit = pos & _has(m["reasons_pred"], code)
        row[f"{key}_pos"], row[f"{key}_hit"] = int(pos.sum()), int(hit.sum())
        row[f"{key}_recall"] = hit.sum() / pos.sum() if pos.any() else float("nan")
    return row, m.assign(ok=ok)


def _fmt(row: dict) -> str:
    def f(x):
        return "  -  " if not np.isfinite(x) else f"{x:.3f}"

    return (f"{row['world']:<26}{row['villages']:>4} {f(row['f1_tests'])}  "
            f"{f(row['unav_tests'])}  {f(row['f1_towers'])}  {f(row['unav_towers'])}  "
            f"{row['unav_gain']:+.3f}  {f(row['brier'])}  "
            f"{f(row['acc_measured'])} ({row['n_measured']:>3})  "
            f"{f(row['acc_model'])} ({row['n_model']:>3})  "
            f"{row['slow_hit']:>2}/{row['slow_pos']:<2}  "
            f"{row['nosrv_hit']:>2}/{row['nosrv_pos']:<2}")


HEADER = (f"{'world':<26}{'n':>4} F1 tests unav tests F1 towers unav towers unav gain Brier  "
          "acc meas (n)   acc model (n)  slow   nosrv")


def aggregate(rows: list[dict]) -> dict:
    """Mean of each figure over the worlds, pooled reason recalls, and the worst world."""
    df = pd.DataFrame(rows)
    out = {k: float(df[k].mean()) for k in ("f1_tests", "unav_tests", "f1_towers",
                                              "unav_towers", "brier", "acc_measured",
                                              "acc_model")}
    worst = df.loc[df["f1_tests"].idxmin()]
    out["worst_world"] = str(worst["world"])
    out["worst_f1_tests"] = float(worst["f1_tests"])
    out["min_unav_gain"] = float(df["unav_gain"].min())
    out["min_unav_tests"] = float(df["unav_tests"].min())
    for key in ("slow", "nosrv"):
        pos, hit = int(df[f"{key}_pos"].sum()), int(df[f"{key}_hit"].sum())
        out[f"{key}_recall"] = hit / pos if pos else float("nan")
        out[f"{key}_pos"], out[f"{key}_hit"] = pos, hit
    out["worlds"] = list(df["world"])
    return out


def print_aggregate(label: str, agg: dict) -> None:
    print(f"\n{label}: {', '.join(agg['worlds'])}")
    lines = [
        ("macro-F1 with tests (mean)", agg["f1_tests"], f">= {TARGETS['f1_tests']}"),
        (f"worst world ({agg['worst_world']}) macro-F1", agg["worst_f1_tests"],
         f">= {TARGETS['worst_f1_tests']}"),
        ("unavailable recall with tests", agg["unav_tests"], f">= {TARGETS['unav_tests']}"),
        ("unavailable recall with tests, lowest world", agg["min_unav_tests"], ""),
        ("macro-F1 towers only", agg["f1_towers"], f">= {TARGETS['f1_towers']}"),
        ("unavailable recall towers only", agg["unav_towers"], ""),
        ("least gain of unavailable recall from tests", agg["min_unav_gain"], ">= 0"),
        ("Brier score of confidence", agg["brier"], f"<= {TARGETS['brier']}"),
        ("accuracy, measured villages", agg["acc_measured"], "> model-only"),
        ("accuracy, model-only villages", agg["acc_model"], ""),
        (f"slow_speed recall, >= {MIN_TESTS} tests ({agg['slow_hit']}/{agg['slow_pos']})",
         agg["slow_recall"], f">= {TARGETS['slow_recall']}"),
        (f"measured_no_service recall, >= {MIN_TESTS} tests "
         f"({agg['nosrv_hit']}/{agg['nosrv_pos']})", agg["nosrv_recall"],
         f">= {TARGETS['nosrv_recall']}"),
    ]
    for what, value, target in lines:
        print(f"  {what:<58} {value:7.3f}   target {target}" if target else
              f"  {what:<58} {value:7.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=["tuning"],
                        help="tuning, scored, all, or world names")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    parser.add_argument("--cache", type=Path, default=Path(base) / "coverage-gap" / "worlds")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="print only the aggregate and the worst world")
    parser.add_argument("--errors", action="store_true",
                        help="print the per-village errors (tuning worlds only)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    names: list[str] = []
    for w in args.worlds:
        names += {"tuning": list(TUNING_WORLDS), "scored": list(SCORED_WORLDS),
                  "all": [*TUNING_WORLDS, *SCORED_WORLDS]}.get(w, [w])
    unknown = [n for n in names if n not in WORLDS]
    if unknown:
        parser.error(f"unknown world(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(WORLDS)}")
    if args.errors and any(WORLDS[n].role == "scored" for n in names):
        parser.error("--errors is refused for the scored worlds: score them, never examine "
                     "their errors")
    args.cache.mkdir(parents=True, exist_ok=True)
    work = args.cache / "runs"
    work.mkdir(exist_ok=True)
    rows = []
    if not args.aggregate_only:
        print(HEADER)
    for name in names:
        row, table = score_world(name, args.cache, work)
        rows.append(row)
        if not args.aggregate_only:
            print(_fmt(row) + f"   [wall {row['generate_s']:.0f} s + {row['classify_s']:.0f} s, "
                  f"CPU {row['generate_cpu_s']:.0f} s + {row['classify_cpu_s']:.0f} s]",
                  flush=True)
        if args.errors:
            wrong = table[~table["ok"]]
            print(wrong[["village_id", "class_true", "class_pred", "reasons_true",
                         "reasons_pred", "confidence", "evidence", "n_point_tests",
                         "pop_covered_share"]].to_string(index=False))
    result = {"worlds": rows}
    for label, role in (("tuning worlds", "tuning"), ("scored worlds", "scored")):
        chosen = [r for r in rows if r["role"] == role]
        if chosen:
            agg = aggregate(chosen)
            result[role] = agg
            print_aggregate(label, agg)
    others = [r for r in rows if r["role"] not in ("tuning", "scored")]
    if others and not args.aggregate_only:
        print_aggregate("other worlds", aggregate(others))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
