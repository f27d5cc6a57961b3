"""Variance components of the tests' model errors: layer, village, village x operator.

A measured village's offset (``coverage.classify.evidence``, ``model_offset_db``) is one
number made from all its tests' model errors, whatever their operator, and it moves every
operator's layer in the village's shares. Whether one number per operator would carry more
is a question of how the errors split: for each world (the scored worlds are refused: their
errors are never examined) the classification is run with the tests as
``benchmarks/worlds_check.py`` does, the tests' model errors are read from its internals,
each layer's (province x operator x technology) mean is taken out, and the rest is split by
moments (unbalanced nested ANOVA, Searle, Casella and McCulloch 1992, ch. 5) into

- ``village``: the variance between villages of their error (over the operators);
- ``village_x_op``: the variance between a village's operators around its mean;
- ``within``: the variance of single tests around their village and operator's mean (the
  shadowing between test points, the measurement, what no offset can carry);

on the villages with errors from two operators or more (for ``village_x_op``; ``village``
over the villages with any). Two errors are read: against the calibrated model alone
(``alone``, the physical error) and against the kriged estimate the offset moves
(``kriged``); over the tests with a level (``level``) and with the censored no-service
residuals too (``all``).

Then, for the share: ``op_share`` is the village x operator part's share of the variance of
a village x operator mean of ``n`` tests' errors, ``village_x_op / (village + village_x_op
+ within / n)`` at n = 5.

    PYTHONPATH=src python benchmarks/offset_components.py [--worlds NAME ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import worlds as W
import worlds_check as WC

import coverage.classify.evidence as E

#: Tests per village and operator at which ``op_share`` is read.
N_READ = 5


@contextmanager
def _captured():
    """Wrap the evidence's internals; yield the dict they fill."""
    cap: dict = {}
    error, offsets = E.model_error_at_tests, E.village_offsets

    def keep_error(joined, model, profile, tech, rsrp, bb, lost, calibration, kriged=None):
        r = error(joined, model, profile, tech, rsrp, bb, lost, calibration, kriged)
        cap["kriged" if kriged else "alone"] = r.copy()
        cap["operator"] = joined["operator"].astype(str).to_numpy()
        cap["tech"] = joined["tech"].astype(str).to_numpy()
        cap["level"] = np.asarray(bb & np.isfinite(rsrp))
        return r

    def keep_offsets(out, g, errors, lost, own, levels, profile):
        cap["village"] = g.copy()
        return offsets(out, g, errors, lost, own, levels, profile)

    E.model_error_at_tests, E.village_offsets = keep_error, keep_offsets
    try:
        yield cap
    finally:
        E.model_error_at_tests, E.village_offsets = error, offsets


def components(df: pd.DataFrame) -> dict[str, float]:
    """Moment estimates of the village, village x operator and within variances (dB²).

    ``df``: one row a test with ``world``, ``village``, ``operator``, ``tech``, ``r``.
    """
    d = df.copy()
    d["r"] -= d.groupby(["world", "operator", "tech"])["r"].transform("mean")
    cell = d.groupby(["world", "village", "operator"])["r"].agg(["size", "mean", "var"])
    cell = cell.reset_index()
    many = cell["size"] > 1
    within = float(((cell["size"][many] - 1) * cell["var"][many]).sum()
                   / (cell["size"][many] - 1).sum())
    cell["inv_n"] = 1.0 / cell["size"]
    vil = cell.groupby(["world", "village"]).agg(J=("mean", "size"), m=("mean", "mean"),
                                                 inv=("inv_n", "sum"))
    cell = cell.join(vil, on=["world", "village"])
    two = cell[cell["J"] > 1]
    ss = float(((two["mean"] - two["m"]) ** 2).sum())
    v2 = vil[vil["J"] > 1]
    # E[sum_j (m_ij - mbar_i)^2] = (J_i - 1) s_c + (1 - 1/J_i) s_e sum_j 1/n_ij
    s_c = (ss - within * float(((1 - 1 / v2["J"]) * v2["inv"]).sum())) / float(
        (v2["J"] - 1).sum())
    # village means around their world's: s_b + s_c / J_i + s_e sum_j 1/n_ij / J_i^2
    dev = vil["m"] - vil.groupby("world")["m"].transform("mean")
    k = vil.groupby("world")["m"].transform("size")
    ss_b = float((dev ** 2 * k / (k - 1)).mean())
    s_b = ss_b - float((s_c / vil["J"] + within * vil["inv"] / vil["J"] ** 2).mean())
    return {"tests": len(d), "villages": len(vil), "villages_2op": len(v2),
            "village": s_b, "village_x_op": s_c, "within": within,
            "op_share": s_c / (s_b + s_c + within / N_READ)}


def _tests(name: str, folder: Path) -> pd.DataFrame:
    with _captured() as cap:
        WC._classify(folder, None, True)
    return pd.DataFrame({"world": name, "village": cap["village"],
                         "operator": cap["operator"], "tech": cap["tech"],
                         "level": cap["level"], "alone": cap["alone"],
                         "kriged": cap.get("kriged", cap["alone"])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "coverage-gap" / "worlds")
    parser.add_argument("--worlds", nargs="+", default=[
        *W.TUNING_WORLDS, *[n for n in WC.CHECK_WORLDS if n.startswith("check-")]])
    args = parser.parse_args(argv)
    if any(n.startswith("score") for n in args.worlds):
        parser.error("the scored worlds are not examined")
    warnings.simplefilter("ignore")
    c0 = time.process_time()
    frames = []
    for name in args.worlds:
        frames.append(_tests(name, WC.folder_of(name, args.cache)))
        print(f"{name}: done", flush=True)
    tests = pd.concat(frames, ignore_index=True)
    rows = {}
    for err in ("alone", "kriged"):
        for kind in ("level", "all"):
            d = tests[np.isfinite(tests[err]) & (tests["level"] | (kind == "all"))]
            rows[f"{err}/{kind}"] = components(d.rename(columns={err: "r"}))
    print("\n== variance components of the tests' model errors, dB² (layer means out)")
    print(pd.DataFrame(rows).T.round(3).to_string())
    print(f"\nCPU {time.process_time() - c0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
