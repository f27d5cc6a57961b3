"""The main job on the embedded demo province, scored against its hidden truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from coverage.datasets import demo_paths, score_classification

ARTIFACTS = Path(__file__).parent / "artifacts"
CONTRACT = ["village_id", "class", "reasons", "population", "pop_covered_share",
            "pop_indoor_share", "best_tech", "operators", "n_tests", "median_download_mbps",
            "confidence"]
PLAN = ["rank", "site_id", "lon", "lat", "kind", "tech", "cost", "pop_gain", "cum_pop_gain",
        "cum_cost", "villages"]
PRIORITY = ["priority", "village_id", "name", "class", "population", "site_rank",
            "cost_per_person"]


@pytest.fixture(scope="module")
def demo_villages() -> gpd.GeoDataFrame:
    return gpd.read_file(demo_paths()["villages"])


def test_every_demo_village_once_with_contract_columns(demo_run, demo_villages):
    result, _ = demo_run
    out = gpd.read_file(result.outputs["classified"])
    assert sorted(out["village_id"]) == sorted(demo_villages["village_id"].astype(str))
    assert out["village_id"].is_unique
    assert [c for c in CONTRACT if c not in out.columns] == []
    assert out["confidence"].between(0, 1).all()
    assert out["pop_indoor_share"].le(out["pop_covered_share"] + 1e-9).all()
    # the flags read back as booleans, not as the text 'True'/'False'
    assert out["behind_ridge"].dtype == bool and out["label_stable"].dtype == bool
    csv = pd.read_csv(result.outputs["classified_csv"], dtype={"village_id": str})
    assert sorted(csv["village_id"]) == sorted(out["village_id"])


def test_demo_junk_towers_are_reported_and_left_out(demo_run):
    _, warned = demo_run
    assert any("left out" in w for w in warned), warned


def test_plan_and_priority_tables(demo_run, demo_villages):
    result, _ = demo_run
    plan = pd.read_csv(result.outputs["plan"])
    assert list(plan.columns[: len(PLAN)]) == PLAN
    assert len(plan) > 0
    assert list(plan["rank"]) == list(range(1, len(plan) + 1))
    assert plan["cum_cost"].iloc[-1] <= 40e9
    assert (plan["pop_gain"] > 0).all()
    prio = pd.read_csv(result.outputs["priority"], dtype={"village_id": str})
    assert list(prio.columns[: len(PRIORITY)]) == PRIORITY  # the plan adds technology...
    assert sorted(prio["village_id"]) == sorted(demo_villages["village_id"].astype(str))
    lifted = {v for vs in plan["villages"].dropna() for v in str(vs).split(";") if v}
    ranked = set(prio.loc[prio["site_rank"].notna(), "village_id"])
    assert lifted == ranked


def test_demo_map_is_self_contained(demo_run):
    result, _ = demo_run
    html = Path(result.outputs["map"]).read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", html)
    assert "L.map" in html or "L.Map" in html


def test_demo_classification_scores_against_hidden_truth(demo_run):
    result, _ = demo_run
    truth = pd.read_csv(demo_paths()["truth_villages"], dtype={"village_id": str})
    score = score_classification(result.classified, truth)
    majority = truth["class"].value_counts(normalize=True).max()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo_score.json").write_text(json.dumps(
        {k: score[k] for k in ("accuracy", "macro_f1")}, indent=2))
    print(f"\ndemo vs hidden truth: accuracy {score['accuracy']:.3f}, "
          f"macro-F1 {score['macro_f1']:.3f}, unavailable recall "
          f"{score['recall']['unavailable']:.3f}\n{score['confusion']}")
    assert score["n_missing"] == 0
    assert score["accuracy"] > majority  # better than always guessing the commonest class
    # Floors: the scored worlds' figures (`PYTHONPATH=src python benchmarks/worlds.py
    # --worlds scored --aggregate-only`; docs/validation.md): macro-F1 at their worst
    # world's, 0.734 with this commit's classifier (it was 0.711; a floor is never
    # lowered), `unavailable` recall 0.04 below their lowest world's 0.846. The demo is one
    # world of the same family, whose physics the model does not share (it scores 0.807 /
    # 0.894); the targets are 0.88 / 0.93.
    assert score["macro_f1"] > 0.734
    assert score["recall"]["unavailable"] > 0.806
