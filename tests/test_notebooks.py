"""The notebooks run top to bottom in a kernel of this very interpreter, and are committed
with their outputs stripped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
REAL_DATA = "03_real_data_vinh_phuc.ipynb"


def _shared_data() -> Path | None:
    if os.environ.get("COVGAP_SHARED_DATA"):
        return Path(os.environ["COVGAP_SHARED_DATA"])
    for folder in [REPO, *REPO.parents]:
        if (folder / "shared" / "data" / "srtm").is_dir():
            return folder / "shared" / "data"
    return None


def _kernel_manager():
    """A kernel manager whose ``python3`` kernel is this interpreter (the venv's python)."""
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=NATIVE_KERNEL_NAME)
    argv = km.kernel_spec.argv
    if Path(argv[0]).resolve() != Path(sys.executable).resolve():
        # Another python3 kernelspec is installed: run ipykernel from this interpreter.
        km.kernel_spec.argv = [sys.executable, *argv[1:]]
    return km


def execute(path: Path, *, env: dict[str, str] | None = None, timeout: int = 600):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    client = NotebookClient(nb, timeout=timeout, km=_kernel_manager(),
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


def test_there_are_three_numbered_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    if path.name == REAL_DATA and _shared_data() is None:
        pytest.skip("real Vietnamese data (../shared/data or $COVGAP_SHARED_DATA) absent")
    nb = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_real_data_notebook_stops_in_one_line_without_the_data(tmp_path):
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError) as err:
        execute(REPO / "notebooks" / REAL_DATA, env={"COVGAP_SHARED_DATA": str(tmp_path)},
                timeout=120)
    assert "SkipNotebook" in str(err.value)
    assert "absent" in str(err.value)
