"""Where the covered share's error comes from, by the village's tests (tuning and check worlds).

The covered share decides ``unavailable`` against ``available_inaccessible`` (under or over
``min_covered_share``). For each world (the scored worlds are refused: their errors are
never examined) the classification is run with the tests and towers only, as
``benchmarks/worlds_check.py`` does, and read at the residents' cells against the world's
true field (``truth/signal_truth.tif``, band 4: the best broadband level, whose -110 dBm is
the outdoor threshold):

Printed per run, by the village's tests (0, 1-4, 5-9, 10+; towers only all 0):

- ``rms_prior``/``wrong_prior`` and ``rms_final``/``wrong_final``: the covered share's RMS
  error against the truth and the villages on the wrong side of 1/2, before the update of
  the villages with 1-4 tests (``prior_share``) and after (``pop_covered_share``);
- ``level_sd_db`` and ``rms_level_fixed``/``wrong_level_fixed``: the village's level error,
  the people-weighted mean of the true margin minus the margin the share reads (both held
  to +-40 dB), its spread, and the share with it removed (read with the same location
  variability): how much of the share's squared error one number per village carries;
- ``shadow_rms``: the spread of the share the world's own shadowing gives (its sigma and
  exponential correlation distance, simulated at the modelled margins): the part no model
  can know;
- ``rms_median``/``wrong_median``: the share read at its median under the shadowing
  correlated over the village (the margins over sigma x sqrt(1 - rho), rho the mean
  correlation between two of its residents at ``--corr-m``) rather than its mean;

then the correlation of the level error between neighbouring villages by distance and,
with the tests, with the mean model error of the village's own tests (``corr_own``) and of
its neighbours' within 2.5 km (``corr_neighbours``), each world's mean taken out.

Reads the classification's internals (the residents' margins, the location variability, the
tests' model errors) by wrapping private functions, as a diagnostic only.

    PYTHONPATH=src python benchmarks/share_error.py [--worlds NAME ...] [--cache DIR]
        [--corr-m 500] [--draws 300]
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
import rasterio
from scipy.spatial import cKDTree
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).parent))
import worlds as W
import worlds_check as WC

import coverage.classify.evidence as E
import coverage.classify.metrics as M

#: Outdoor threshold of the true field's band 4, dBm (``vn-2025``).
THRESHOLD_DBM = -110.0
#: Margins held to this many dB either way (nothing reaching: -inf in the model, -150 dBm
#: in the truth).
CLIP_DB = 40.0
#: Tests bins of the tables.
BINS = ((0, 0, "0"), (1, 4, "1-4"), (5, 9, "5-9"), (10, np.inf, "10+"))
#: Distance bins of the neighbour correlation, m.
DIST_BINS = (0.0, 1500.0, 2000.0, 2500.0, 3500.0)


@contextmanager
def _captured():
    """Wrap the classification's internals; yield the dict they fill."""
    cap: dict = {}
    covered, pieces, offsets = M._covered_shares, M._pieces_at, E.village_offsets

    def keep_shares(weights, surfaces, fused, ev, measured, profile, sigma, province=None):
        est = fused.estimated_margin.get("out")
        if est is None:
            est = fused.margin(M.margin_thresholds(profile)["out"])
        cap.update(piece_village=weights.village.copy(), piece_cell=weights.cell.copy(),
                   piece_weight=weights.weight.copy(), margin=np.asarray(est).reshape(-1),
                   sigma=sigma, offset=ev["model_offset_db"].to_numpy(dtype=float))
        return covered(weights, surfaces, fused, ev, measured, profile, sigma, province)

    def keep_pieces(weights, cells):
        cap.setdefault("flat", cells.flat.copy())
        cap.setdefault("grid", cells.grid)
        return pieces(weights, cells)

    def keep_offsets(out, g, errors, lost, own, levels, profile):
        cap.update(test_village=g.copy(), test_error=np.asarray(errors[1], dtype=float))
        return offsets(out, g, errors, lost, own, levels, profile)

    M._covered_shares, M._pieces_at, E.village_offsets = keep_shares, keep_pieces, keep_offsets
    try:
        yield cap
    finally:
        M._covered_shares, M._pieces_at, E.village_offsets = covered, pieces, offsets


def _physics(name: str):
    world = WC.CHECK_WORLDS.get(name) or W.WORLDS[name]
    return world.physics


def _shadow_spread(margin: np.ndarray, weight: np.ndarray, dist: np.ndarray, phys,
                   draws: int, rng: np.random.Generator) -> float:
    """SD of a village's covered share under the world's shadowing alone, simulated.

    ``margin``: its pieces' modelled margins (dB) taken as the median field; ``weight``:
    their people (summing to 1); ``dist``: their distances (m); one exponentially
    correlated field (the world's ``shadow_sigma_db`` and ``shadow_corr_m``) for all masts,
    where the worlds share half of it between masts: an upper figure.
    """
    cov = phys.shadow_sigma_db ** 2 * np.exp(-dist / phys.shadow_corr_m)
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(weight)))
    field = chol @ rng.standard_normal((len(weight), draws))
    return float((weight[:, None] * (margin[:, None] + field > 0)).sum(axis=0).std())


def _villages(name: str, folder: Path, tests: bool, corr_m: float, draws: int,
              rng: np.random.Generator) -> pd.DataFrame:
    """One row per village: shares, level error, shadow spread, median share, position."""
    with _captured() as cap:
        out, _, met = WC._classify(folder, None, tests)
    truth = pd.read_csv(folder / "truth" / "villages_truth.csv", dtype={"village_id": str})
    true_share = dict(zip(truth["village_id"], truth["pop_covered_share"], strict=True))
    v, w, sigma = cap["piece_village"], cap["piece_weight"], cap["sigma"]
    flat, grid = cap["flat"][cap["piece_cell"]], cap["grid"]
    cols = grid.shape[1]
    x = grid.transform.c + (flat % cols + 0.5) * grid.transform.a
    y = grid.transform.f + (flat // cols + 0.5) * grid.transform.e
    with rasterio.open(folder / "truth" / "signal_truth.tif") as src:
        true_level = np.array([s[3] for s in src.sample(zip(x, y, strict=True))], dtype=float)
    model = np.clip(cap["margin"][cap["piece_cell"]] + cap["offset"][v], -CLIP_DB, CLIP_DB)
    true = np.clip(true_level - THRESHOLD_DBM, -CLIP_DB, CLIP_DB)
    phys = _physics(name)
    met = met.reset_index(drop=True)
    ids = out["village_id"].astype(str).to_numpy()
    rows = []
    for i in range(len(ids)):
        s = v == i
        if not s.any():
            continue
        wi = w[s] / w[s].sum()
        mi, err = model[s], true[s] - model[s]
        level = float(np.sum(wi * err))
        dist = np.hypot(x[s][:, None] - x[s][None], y[s][:, None] - y[s][None])
        rho = float(wi @ np.exp(-dist / corr_m) @ wi)
        rows.append({
            "world": name, "village_id": ids[i], "x": float(np.sum(wi * x[s])),
            "y": float(np.sum(wi * y[s])), "tests": float(met["n_cov_tests"].iloc[i]),
            "truth": true_share[ids[i]], "prior": float(met["prior_share"].iloc[i]),
            "final": float(out["pop_covered_share"].iloc[i]), "level_db": level,
            "level_fixed": float(np.sum(wi * ndtr((mi + level) / sigma))),
            "median": float(np.sum(wi * ndtr(mi / (sigma * np.sqrt(max(1.0 - rho, 1e-4)))))),
            "shadow_sd": _shadow_spread(mi, wi, dist, phys, draws, rng)})
    df = pd.DataFrame(rows)
    if tests and "test_village" in cap:
        g, e = cap["test_village"], cap["test_error"]
        ok = np.isfinite(e)
        n = np.bincount(g[ok], minlength=len(ids))
        total = np.bincount(g[ok], weights=e[ok], minlength=len(ids))
        own = pd.Series(n, index=ids), pd.Series(total, index=ids)
        df["n_err"] = df["village_id"].map(own[0]).to_numpy(float)
        df["sum_err"] = df["village_id"].map(own[1]).to_numpy(float)
    return df


def _bin(tests: pd.Series) -> pd.Categorical:
    out = pd.Series("", index=tests.index)
    for lo, hi, name in BINS:
        out[(tests >= lo) & (tests <= hi)] = name
    return pd.Categorical(out, categories=[b[2] for b in BINS])


def _share_table(df: pd.DataFrame) -> pd.DataFrame:
    def stats(q: pd.DataFrame) -> pd.Series:
        row = {"villages": len(q)}
        for col in ("prior", "final", "level_fixed", "median"):
            e = q[col] - q["truth"]
            row[f"rms_{col}"] = np.sqrt(np.mean(e ** 2))
            row[f"wrong_{col}"] = int(((q[col] < 0.5) != (q["truth"] < 0.5)).sum())
        row["shadow_rms"] = np.sqrt(np.mean(q["shadow_sd"] ** 2))
        row["level_sd_db"] = q["level_db"].std()
        return pd.Series(row)

    return df.groupby("bin", observed=True).apply(stats, include_groups=False).round(4)


def _neighbours(df: pd.DataFrame) -> pd.DataFrame:
    """Correlation of the level error between neighbours (4 nearest) by distance."""
    pairs = []
    for _, q in df.groupby("world"):
        xy, lv = q[["x", "y"]].to_numpy(), q["level_db"].to_numpy()
        dist, idx = cKDTree(xy).query(xy, k=5)
        for k in range(1, 5):
            pairs.append(pd.DataFrame({"a": lv, "b": lv[idx[:, k]], "d": dist[:, k]}))
    p = pd.concat(pairs)
    p["bin"] = pd.cut(p["d"], [*DIST_BINS, np.inf])
    return p.groupby("bin", observed=True).apply(
        lambda q: pd.Series({"pairs": len(q), "corr": np.corrcoef(q["a"], q["b"])[0, 1]}),
        include_groups=False).round(3)


def _test_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Correlation of the level error with the own tests' and the neighbours' model error."""
    rows = []
    for _, q in df.groupby("world"):
        q = q.copy()
        tree = cKDTree(q[["x", "y"]].to_numpy())
        n, s = q["n_err"].to_numpy(), q["sum_err"].to_numpy()
        near = np.full(len(q), np.nan)
        for i, idx in enumerate(tree.query_ball_point(q[["x", "y"]].to_numpy(), 2500.0)):
            idx = [j for j in idx if j != i]
            if n[idx].sum() > 0:
                near[i] = s[idx].sum() / n[idx].sum()
        q["own"] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        q["near"] = near
        for col in ("level_db", "own", "near"):  # each world's mean out: its calibration's
            q[col] = q[col] - q[col].mean()
        rows.append(q)
    d = pd.concat(rows)

    def corr(q: pd.DataFrame, col: str) -> float:
        q = q.dropna(subset=[col])
        return np.corrcoef(q["level_db"], q[col])[0, 1] if len(q) > 3 else np.nan

    return d.groupby("bin", observed=True).apply(lambda q: pd.Series({
        "villages": len(q), "with_own_tests": int(q["own"].notna().sum()),
        "corr_own": corr(q, "own"), "corr_neighbours": corr(q, "near")}),
        include_groups=False).round(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "coverage-gap" / "worlds")
    parser.add_argument("--worlds", nargs="+", default=[
        *W.TUNING_WORLDS, *[n for n in WC.CHECK_WORLDS if n.startswith("check-")]])
    parser.add_argument("--corr-m", type=float, default=500.0,
                        help="shadowing correlation distance of the median share, m")
    parser.add_argument("--draws", type=int, default=300)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    runs = {"tests": [], "towers": []}
    c0 = time.process_time()
    for name in args.worlds:
        folder = WC.folder_of(name, args.cache)
        for run in runs:
            runs[run].append(_villages(name, folder, run == "tests", args.corr_m,
                                       args.draws, rng))
        print(f"{name}: done", flush=True)
    for run, frames in runs.items():
        df = pd.concat(frames, ignore_index=True)
        df["bin"] = _bin(df["tests"] if run == "tests" else 0 * df["tests"])
        print(f"\n== {run}: the covered share against the truth, by the village's tests")
        print(_share_table(df).to_string())
        print(f"\n== {run}: the level error's correlation between neighbouring villages")
        print(_neighbours(df).to_string())
        if run == "tests":
            print("\n== tests: the level error against the tests' mean model error")
            print(_test_errors(df).to_string())
    print(f"\nCPU {time.process_time() - c0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
