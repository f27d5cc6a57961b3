"""Model-assisted estimators of the residents' slow and no-service shares, against the truth.

With the rule's minimum of tests a village's slow share and no-service share are the survey
regression (difference) estimate (:func:`coverage.classify.noservice.survey_regression_share`):
per operator, the model's share over the residents plus the tests' weighted mean departure
from the model at their spots, a regression estimator whose slope is fixed at 1. This script
classifies each world with its tests as ``covgap classify`` does
(``benchmarks/worlds_check.py``), keeps what the two estimates are computed from, and
recomputes them with other model-assisted estimators on the same tests:

- ``difference``: the product's estimate (slope 1);
- ``direct``: the tests' weighted share per operator (slope 0, no model);
- ``greg_within``: the GREG / survey regression estimator with the slope fitted on the
  province's tests within villages (Särndal, Swensson and Wretman 1992, ch. 6-7; Battese,
  Harter and Fuller 1988), what calibrating the weights on the model's prediction gives with
  a common slope (Wu and Sitter 2001);
- ``greg_total``: the same with the slope fitted over the province's tests as a whole;
- ``pooled``: one departure per village over all its operators' tests (each around its
  operator's province-wide departure) instead of one per operator;
- ``untested_shift``: an operator without a test in the village moved by its tests'
  province-wide departure (the no-service share's rule) for the slow share too.

It prints, per rule and set, over the villages with the rule's minimum of tests whose class
can carry it (covered in the truth and in the output): found/true and right/said, by the
village's tests (5-9, 10 or more); the no-service share's root mean square error against the
true share; and how much of the spread of the tests' outcomes within a village the model
explains (the sampling variance that a model-assisted estimate can remove).

    PYTHONPATH=src python benchmarks/resident_estimators.py [--cache DIR] [--worlds NAME ...]

The tuning and check worlds only (``worlds_check.py``'s list); never the scored worlds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import worlds as W
import worlds_check as WC

import coverage.classify.residents as R
from coverage.classify.noservice import province_departures

Estimator = Callable[[dict, int], np.ndarray]


def _captured(folder: Path) -> tuple[pd.DataFrame, dict]:
    """The classification with tests, and the survey regression's inputs per rule."""
    calls: dict = {}
    original = R.survey_regression_share

    def keep(per_op, shares, tests, at_test, n, *, untested=None):
        kind = "slow" if "download" in tests else "none"
        calls[kind] = {"per_op": per_op, "shares": dict(shares), "tests": tests,
                       "at_test": at_test, "n": n, "untested": untested}
        return original(per_op, shares, tests, at_test, n, untested=untested)

    R.survey_regression_share = keep
    try:
        out, _, metrics = WC._classify(folder, None, True)
    finally:
        R.survey_regression_share = original
    out = out.reset_index(drop=True)
    for col in ("n_speed_tests", "n_service_tests"):
        out[col] = metrics[col].to_numpy()
    return out, calls


def _arrays(c: Mapping) -> tuple:
    t = c["tests"]
    code, w = np.asarray(t["operator"]), np.asarray(t["weight"], dtype=float)
    ok = np.isfinite(c["at_test"]) & (code >= 0) & (w > 0)
    return (np.asarray(t["village"]), code, w, np.asarray(t["none"], dtype=float),
            np.nan_to_num(c["at_test"]), ok, list(t["operators"]))


def slope(c: Mapping, within: bool = True) -> float:
    """Weighted least-squares slope of the outcome on the model at the tests."""
    v, code, w, y, x, ok, _ = _arrays(c)
    if within:  # around each village and operator's means
        _, inv = np.unique((v * 64 + code)[ok], return_inverse=True)
        s = np.bincount(inv, weights=w[ok])
        dx = x[ok] - (np.bincount(inv, weights=(w * x)[ok]) / s)[inv]
        dy = y[ok] - (np.bincount(inv, weights=(w * y)[ok]) / s)[inv]
    else:
        dx = x[ok] - np.average(x[ok], weights=w[ok])
        dy = y[ok] - np.average(y[ok], weights=w[ok])
    return float(np.sum(w[ok] * dx * dy) / np.sum(w[ok] * dx * dx))


def regression(c: Mapping, beta: float = 1.0, untested: Mapping | None = None) -> np.ndarray:
    """Per operator, the tests' weighted share plus ``beta`` times the model's gap to them."""
    v, code, w, y, x, ok, names = _arrays(c)
    n = c["n"]
    out = np.zeros(n)
    for op, share in c["shares"].items():
        prior = c["per_op"][op]
        if op not in names:
            out += share * prior
            continue
        mine = ok & (code == names.index(op))
        ws = np.bincount(v[mine], weights=w[mine], minlength=n)
        yb = np.bincount(v[mine], weights=(w * y)[mine], minlength=n)
        xb = np.bincount(v[mine], weights=(w * x)[mine], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            own = np.clip(yb / ws + beta * (prior - xb / ws), 0, 1)
        shift = (untested or {}).get(op, 0.0)
        out += share * np.where(ws > 0, own, np.clip(prior + shift, 0, 1))
    tested = np.bincount(v, minlength=n) > 0
    return np.where(tested, np.clip(out, 0, 1), np.nan)


def pooled(c: Mapping) -> np.ndarray:
    """One departure per village over its operators, each around its province departure."""
    v, code, w, y, x, ok, names = _arrays(c)
    n = c["n"]
    b = province_departures(c["tests"], c["at_test"], list(c["shares"]))
    b_at = np.array([b.get(names[k], 0.0) if k >= 0 else 0.0 for k in code])
    ws = np.bincount(v[ok], weights=w[ok], minlength=n)
    rs = np.bincount(v[ok], weights=(w * (y - x - b_at))[ok], minlength=n)
    base = sum(s * (c["per_op"][op] + b[op]) for op, s in c["shares"].items())
    with np.errstate(invalid="ignore", divide="ignore"):
        est = base + np.where(ws > 0, rs / ws, 0.0)
    tested = np.bincount(v, minlength=n) > 0
    return np.where(tested, np.clip(est, 0, 1), np.nan)


ESTIMATORS: dict[str, Callable[[Mapping], np.ndarray]] = {
    "difference": lambda c: regression(c, 1.0, c["untested"]),
    "direct": lambda c: regression(c, 0.0, c["untested"]),
    "greg_within": lambda c: regression(c, slope(c), c["untested"]),
    "greg_total": lambda c: regression(c, slope(c, within=False), c["untested"]),
    "pooled": pooled,
    "untested_shift": lambda c: regression(
        c, 1.0, province_departures(c["tests"], c["at_test"], list(c["shares"]))),
}


def spread(c: Mapping) -> tuple[float, float, float]:
    """Within-village variance of the outcome, of its departure from the model, and at the
    within-village slope (each village and operator's tests around their mean)."""
    v, code, w, y, x, ok, _ = _arrays(c)
    _, inv = np.unique((v * 64 + code)[ok], return_inverse=True)
    cnt = np.bincount(inv)
    many = cnt[inv] >= 2
    s = np.bincount(inv, weights=w[ok])

    def var(z: np.ndarray) -> float:
        r = z - (np.bincount(inv, weights=w[ok] * z) / s)[inv]
        scale = cnt[inv] / np.maximum(cnt[inv] - 1, 1)
        return float(np.sum((w[ok] * r * r * scale)[many]) / np.sum(w[ok][many]))

    return var(y[ok]), var(y[ok] - x[ok]), var(y[ok] - slope(c) * x[ok])


def world_rows(name: str, cache: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Per village and estimator, the estimates and the truth; per rule, the spread."""
    folder = WC.folder_of(name, cache)
    out, calls = _captured(folder)
    out["village_id"] = out["village_id"].astype(str)
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    m = out.merge(truth.rename(columns=lambda c: c if c == "village_id" else c + "_true"),
                  on="village_id")
    covered = (m["class"] != "unavailable") & (m["class_true"] != "unavailable")
    rows, spreads = [], []
    for kind, rule, count, cut in (("slow", "slow_speed", "n_speed_tests", 0.5),
                                   ("none", "measured_no_service", "n_service_tests", 0.3)):
        if kind not in calls:
            continue
        c = calls[kind]
        sel = covered.to_numpy() & (m[count].to_numpy() >= W.MIN_TESTS)
        for est, fn in ESTIMATORS.items():
            if est == "untested_shift" and kind == "none":
                continue  # the product's rule for the no-service share already
            s = fn(c)[sel]
            said = s > cut if kind == "slow" else s >= cut
            rows.append(pd.DataFrame({
                "world": name, "rule": kind, "estimator": est, "tests": m[count].to_numpy()[sel],
                "true": np.asarray(W._has(m["reasons_true"], rule))[sel], "said": said,
                "share": s, "true_share": m["no_service_share_true"].to_numpy()[sel]
                if kind == "none" else np.nan}))
        spreads.append(dict(zip(("rule", "var_y", "var_y_minus_x", "var_at_slope"),
                                (kind, *spread(c)), strict=True))
                       | {"world": name, "slope_within": slope(c),
                          "slope_total": slope(c, within=False)})
    return pd.concat(rows, ignore_index=True), spreads


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """found/true and right/said per rule, estimator, set and tests bin."""
    rows = rows.assign(set=rows["world"].str.split("-").str[0].replace({"tune": "tuning"}),
                       bin=np.where(rows["tests"] >= 10, "10+", "5-9"))
    out = []
    for (rule, est), g in rows.groupby(["rule", "estimator"], sort=False):
        line = {"rule": rule, "estimator": est}
        parts = {"all": g, **dict(list(g.groupby("set"))), **dict(list(g.groupby("bin")))}
        for key, p in parts.items():
            hit = int((p["true"] & p["said"]).sum())
            line[key] = f"{hit}/{int(p['true'].sum())} {hit}/{int(p['said'].sum())}"
        if rule == "none":
            err = g["share"] - g["true_share"]
            line["rmse"] = round(float(np.sqrt(np.nanmean(err**2))), 4)
        out.append(line)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "coverage-gap" / "worlds")
    parser.add_argument("--worlds", nargs="+", default=[*W.TUNING_WORLDS, *WC.CHECK_WORLDS])
    args = parser.parse_args(argv)
    rows, spreads = [], []
    for name in args.worlds:
        r, s = world_rows(name, args.cache)
        rows.append(r)
        spreads += s
    pd.set_option("display.width", 250)
    print("found/true right/said over the villages with 5+ tests whose class can carry "
          "the rule")
    print(summary(pd.concat(rows, ignore_index=True)).to_string(index=False))
    s = pd.DataFrame(spreads)
    print("within-village variance of the tests' outcomes (mean over worlds)")
    print(s.groupby("rule")[["var_y", "var_y_minus_x", "var_at_slope", "slope_within",
                             "slope_total"]].mean().round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
