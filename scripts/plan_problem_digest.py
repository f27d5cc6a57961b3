"""Digests of what ``covgap demo`` hands its plan's solvers, and of its classes.

    PYTHONPATH=<src> python scripts/plan_problem_digest.py OUT_DIR

Runs the demo's run file (``coverage.execute``) and prints, as JSON, SHA-256 digests of the
plan's problem (the candidates' cover matrix, the demand's weights, the costs), of the
villages' classes and covered shares, and the people the plan connects. Two source trees
with the same digests hand the solvers the same problem: a plan that still differs comes
from the heuristic's timed search (``greedy_select`` stops after a CPU and wall allowance),
which differs from run to run on a loaded machine.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    """Run the demo and print the digests."""
    warnings.simplefilter("ignore")
    from coverage.cli import options as opt
    from coverage.execute import execute
    from coverage.spec import DEMO_CONFIG

    out = Path(sys.argv[1])
    spec = opt.run_file_spec(DEMO_CONFIG, out_dir=out, map_path=out / "map.html", budget=None)
    result = execute(spec, overwrite=True)
    problem = result.plan.problem
    cover = problem.cover.tocsr()
    cover.sort_indices()
    classified = result.classified
    print(json.dumps({
        "cover": _digest(cover.data, cover.indices, cover.indptr),
        "shape": list(cover.shape),
        "weight": _digest(np.asarray(problem.weight, dtype=float)),
        "cost": _digest(np.asarray(problem.cost, dtype=float)),
        "classes": _digest(classified["class"].astype(str).to_numpy().astype("U")),
        "covered_share": _digest(classified["pop_covered_share"].to_numpy(dtype=float)),
        "people_connected": result.plan.summary.get("people_connected"),
    }))


if __name__ == "__main__":
    main()
