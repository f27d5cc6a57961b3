"""The test rules' estimates against the truth of the tuning worlds (coverage.datasets.worlds).

For each tuning world (the scored worlds are refused: their errors are never examined), the
world is classified with its tests as `covgap classify` does, and among the villages with 5
tests or more that the truth does not call ``unavailable`` it prints, for
``measured_no_service``: recall (hits/positives), false alarms, and the mean and RMS error of
the residents' no-service share; for ``slow_speed``: recall, false alarms, and the mean and
RMS error of the residents' median download as log10(Mbps + 0.1); and the fitted propensity
to test of a subscriber without service (:mod:`coverage.classify.selection`).

    PYTHONPATH=src python benchmarks/worlds_test_rules.py [--worlds tuning|NAME ...] [--cache DIR]
        [--no-selection]

``--no-selection`` weighs every test alike (the classification before the tests'
inclusion propensity), for the before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from worlds import MIN_TESTS, world_folder

from coverage.datasets.worlds import TUNING_WORLDS, WORLDS


def _classify(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    """The classified villages, their metrics and the propensity fit (`covgap classify`)."""
    import coverage.classify as C
    import coverage.classify.residents as residents
    from coverage.cli import options as opt
    from coverage.execute import Run
    from coverage.spec import InputPaths

    spec = opt.settings_spec(None, file_limits=False).replace(inputs=InputPaths.of(
        folder / "boundaries" / "villages.gpkg",
        towers=[folder / "towers" / "sites.csv", folder / "towers" / "opencellid.csv"],
        population=folder / "rasters" / "population.tif", dem=folder / "rasters" / "dem.tif",
        landcover=folder / "rasters" / "landcover.tif",
        access=folder / "access" / "access.csv",
        measurements=[folder / "measurements" / "tests.csv"]))
    captured = {}
    original, fit = C.village_metrics, residents.fit_propensity

    def keep(*args, **kw):
        captured["metrics"] = original(*args, **kw)
        return captured["metrics"]

    def keep_fit(*args, **kw):
        captured["propensity"] = fit(*args, **kw)
        return captured["propensity"]

    C.village_metrics, residents.fit_propensity = keep, keep_fit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = Run(spec).classified()
    finally:
        C.village_metrics, residents.fit_propensity = original, fit
    return out, captured["metrics"], captured.get("propensity")


def _has(reasons: pd.Series, code: str) -> np.ndarray:
    return reasons.fillna("").astype(str).str.split(";").apply(lambda r: code in r).to_numpy()


def score(name: str, cache: Path) -> dict:
    """The test rules' figures of one tuning world."""
    folder = world_folder(name, cache)
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    out, m, prop = _classify(folder)
    t = truth.set_index("village_id").loc[out["village_id"].astype(str)].reset_index()
    m = m.reset_index(drop=True)
    many = m["n_tests"].to_numpy() >= MIN_TESTS
    judged = many & (t["class"].to_numpy() != "unavailable")
    row = {"world": name}
    for code, key in (("measured_no_service", "nosrv"), ("slow_speed", "slow")):
        pos = _has(t["reasons"], code) & many
        pred = _has(out["reasons"], code)
        row[key] = f"{int((pos & pred).sum())}/{int(pos.sum())}"
        row[f"{key}_fa"] = int((pred & ~_has(t["reasons"], code) & judged).sum())
    err = (m["no_service_share"].to_numpy() - t["no_service_share"].to_numpy())[judged]
    row["nosrv_bias"], row["nosrv_rms"] = np.nanmean(err), np.sqrt(np.nanmean(err**2))
    lerr = (np.log10(m["median_download_mbps"].to_numpy() + 0.1)
            - np.log10(t["median_download_mbps"].to_numpy() + 0.1))[judged]
    row["dl_bias_log"], row["dl_rms_log"] = np.nanmean(lerr), np.sqrt(np.nanmean(lerr**2))
    row["propensity"] = (f"{prop.floor:.2f} (se {prop.floor_se:.2f})" if prop is not None
                         else "-")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=["tuning"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    parser.add_argument("--cache", type=Path, default=Path(base) / "coverage-gap" / "worlds")
    parser.add_argument("--no-selection", action="store_true",
                        help="weigh every test alike (no inclusion propensity)")
    args = parser.parse_args(argv)
    names: list[str] = []
    for w in args.worlds:
        names += list(TUNING_WORLDS) if w == "tuning" else [w]
    bad = [n for n in names if n not in WORLDS or WORLDS[n].role != "tuning"]
    if bad:
        parser.error(f"only tuning worlds: their errors may be examined ({', '.join(bad)})")
    if args.no_selection:
        import coverage.classify.residents as residents
        from coverage.classify.selection import Propensity

        residents.fit_propensity = lambda *a, **k: Propensity()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        c0 = time.process_time()
        rows.append(score(name, args.cache) | {"cpu_s": round(time.process_time() - c0)})
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(df.to_string(index=False, float_format=lambda x: f"{x:+.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
