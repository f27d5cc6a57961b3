"""Score a classification against the demo's hidden truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CLASSES", "score_classification"]

CLASSES = ("unavailable", "available_inaccessible", "served")


def _table(obj, name: str) -> pd.DataFrame:
    df = obj if isinstance(obj, pd.DataFrame) else pd.read_csv(obj, dtype={"village_id": str})
    missing = {"village_id", "class"} - set(df.columns)
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(sorted(missing))}; it needs "
                         "'village_id' and 'class'")
    out = pd.DataFrame({"village_id": df["village_id"].astype(str).to_numpy(),
                        "class": df["class"].astype(str).to_numpy()})
    return out


def score_classification(classified, truth) -> dict:
    """Compare village classes with the truth.

    Parameters
    ----------
    classified, truth : DataFrame or path
        Tables (or CSV paths) with ``village_id`` and ``class``; joined on ``village_id`` as
        text. Villages of the truth missing from ``classified`` count as wrong.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (mean F1 over the three classes), ``precision``,
        ``recall`` and ``f1`` (dicts by class), ``confusion`` (DataFrame, rows = truth,
        columns = predicted, with a ``missing`` column), ``n`` and ``n_missing``.

    Examples
    --------
    >>> t = pd.DataFrame({"village_id": ["01", "02", "03"],
    ...                   "class": ["served", "unavailable", "served"]})
    >>> score_classification(t, t)["accuracy"]
    1.0
    """
    pred = _table(classified, "classified")
    true = _table(truth, "truth")
    if pred["village_id"].duplicated().any():
        raise ValueError("classified has duplicate village_id values")
    merged = true.merge(pred, on="village_id", how="left", suffixes=("_true", "_pred"))
    merged["class_pred"] = merged["class_pred"].fillna("missing")
    cols = [*CLASSES, "missing"]
    conf = pd.crosstab(pd.Categorical(merged["class_true"], categories=CLASSES),
                       pd.Categorical(merged["class_pred"], categories=cols), dropna=False)
    conf.index.name, conf.columns.name = "truth", "predicted"
    m = conf.to_numpy(dtype=float)
    tp = np.diag(m[:, : len(CLASSES)])
    pred_tot = m[:, : len(CLASSES)].sum(axis=0)
    true_tot = m.sum(axis=1)
    precision = np.divide(tp, pred_tot, out=np.zeros_like(tp), where=pred_tot > 0)
    recall = np.divide(tp, true_tot, out=np.zeros_like(tp), where=true_tot > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    n = len(merged)
    return {
        "n": n,
        "n_missing": int((merged["class_pred"] == "missing").sum()),
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "macro_f1": float(f1.mean()),
        "precision": dict(zip(CLASSES, precision.tolist(), strict=True)),
        "recall": dict(zip(CLASSES, recall.tolist(), strict=True)),
        "f1": dict(zip(CLASSES, f1.tolist(), strict=True)),
        "confusion": conf,
    }
