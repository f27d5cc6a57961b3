"""The plan predicts its candidates with the model the run chose for the existing network.

Where a province's tests choose the model's structure
(:func:`coverage.model.structure.choose_structure`), the existing sites are predicted with
it; the candidates of the plan must be judged by the same physics, through every door
(:class:`coverage.execute.Run`, the Scenario API, ``covgap plan`` on a classified input).
The choice is forced here (the tests pick it on real provinces, ``tests/test_structure.py``):
what is tested is that the plan follows it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coverage import execute as execute_module
from coverage.execute import Run, RunCache
from coverage.model import CoverageSurfaces, Grid
from coverage.model.structure import StructureChoice
from coverage.params import ModelParams
from coverage.plan import plan_model
from coverage.spec import InputPaths, RunSpec, ScenarioParams

#: A structure the tiny province's candidates feel: a gentler diffraction over its ridge
#: and the Hata height read over the receiver's ground.
CHOSEN = {"hata_height": "above_receiver", "diffraction_scale": 0.5}


def _force_choice(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the run's structure choice :data:`CHOSEN`; count the calls."""
    calls: list[int] = []

    def choose(towers, grid, tests, params, **kw):
        calls.append(1)
        choice = StructureChoice(" + ".join(f"{k}={v}" for k, v in CHOSEN.items()),
                                 dict(CHOSEN), {}, "forced by the test")
        return dataclasses.replace(params, **CHOSEN), choice

    monkeypatch.setattr(execute_module, "choose_structure", choose)
    return calls


def _spec(tiny, *, select: bool, model: dict | None = None, villages=None,
          classified_input: bool = False) -> RunSpec:
    inputs = InputPaths.of(villages or tiny["villages"], towers=[tiny["sites"]],
                           measurements=[tiny["tests"]], population=tiny["population"],
                           dem=tiny["dem"])
    params = ScenarioParams(max_sites=3).replace(
        model={"resolution_m": 200.0, "select_structure": select, **(model or {})})
    return RunSpec(inputs, params, classified_input=classified_input)


def _same_model(got: ModelParams, want: ModelParams) -> bool:
    """Equal parameters but for ``select_structure`` (how they were reached)."""
    return dataclasses.replace(got, select_structure=want.select_structure) == want


def _alone(run: Run) -> np.ndarray:
    """People each modelled candidate alone would connect, in candidate order."""
    cands = run.plan().candidates
    return cands.loc[cands["source"] != "satellite_terminals", "pop_alone"].to_numpy(float)


def test_plan_model_prefers_the_existing_sites_parameters():
    grid = Grid.covering((0.0, 0.0, 1000.0, 1000.0), 100.0, "EPSG:32648")
    chosen = ModelParams(foliage_loss_db=12.0)
    given = ModelParams()
    assert plan_model(CoverageSurfaces(grid, params=chosen), given) == chosen
    assert plan_model(CoverageSurfaces(grid), given) == given
    assert plan_model(None, given) == given
    assert plan_model(None) == ModelParams()


@pytest.mark.slow
def test_the_plan_uses_the_structure_the_tests_chose(tiny, monkeypatch):
    """Candidates predicted with the chosen structure, as if it had been given."""
    as_given = Run(_spec(tiny, select=False), cache=RunCache())
    as_chosen = Run(_spec(tiny, select=False, model=CHOSEN), cache=RunCache())
    calls = _force_choice(monkeypatch)
    chosen = Run(_spec(tiny, select=True), cache=RunCache())

    assert _same_model(chosen.model(), as_chosen.params.model)
    # the choice matters to this province's candidates (else the test could not fail)
    assert not np.array_equal(_alone(as_given), _alone(as_chosen))
    np.testing.assert_array_equal(_alone(chosen), _alone(as_chosen))
    assert chosen.plan().summary["people_connected"] == \
        as_chosen.plan().summary["people_connected"]
    assert calls  # the structure was chosen by the run
    manifest = chosen.manifest("plan")
    for key, value in CHOSEN.items():
        assert manifest["model_used"][key] == value
        assert manifest["parameters"]["model"][key] != value  # the parameters as given
    assert manifest["model_choices"]["structure"]["changes"] == CHOSEN


@pytest.mark.slow
def test_a_classified_input_plans_with_the_chosen_structure(tiny, monkeypatch, tmp_path):
    """``covgap plan`` on a classified file: its candidates too follow the choice."""
    _force_choice(monkeypatch)
    first = Run(_spec(tiny, select=True), cache=RunCache())
    path = tmp_path / "classified.gpkg"
    first.classified().to_file(path, layer="villages")
    again = Run(_spec(tiny, select=True, villages=path, classified_input=True),
                cache=RunCache())
    as_chosen = Run(_spec(tiny, select=False, model=CHOSEN, villages=path,
                          classified_input=True), cache=RunCache())
    assert _same_model(again.model(), as_chosen.params.model)
    np.testing.assert_array_equal(_alone(again), _alone(as_chosen))
    assert again.manifest("plan")["model_used"]["hata_height"] == "above_receiver"


@pytest.mark.slow
def test_the_scenario_plans_with_the_chosen_structure(tiny, monkeypatch):
    """The Scenario API runs the same steps: same candidates, same model in its manifest."""
    from coverage.scenario import Scenario

    _force_choice(monkeypatch)
    spec = _spec(tiny, select=True)
    scen = Scenario(spec.inputs, spec.params, cache=RunCache())
    result = scen.plan()
    direct = Run(spec, cache=RunCache())
    np.testing.assert_array_equal(
        result.plan.candidates["pop_alone"].to_numpy(float),
        direct.plan().candidates["pop_alone"].to_numpy(float))
    assert result.manifest["model_used"]["diffraction_scale"] == 0.5
