"""Optional dependencies: a missing extra is the user's to install, not a bug.

Each import is made to fail by setting its entry in ``sys.modules`` to None (what Python
does for a module that is not installed: ``import`` raises ImportError).
"""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from coverage._optional import EXTRAS, import_optional
from coverage.cli import main
from coverage.errors import CoverageGapError, MissingDependencyError


def test_missing_module_names_the_feature_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError) as info:
        import_optional("distributed", feature="the dask engine")
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, CoverageGapError)
    assert err.name == "distributed"
    assert str(err).startswith("the dask engine needs the optional package 'distributed'")
    assert str(err).endswith("pip install 'coverage-gap[dask]'")


def test_installed_module_is_returned():
    assert import_optional("dask", feature="x").__name__ == "dask"


def test_every_extra_named_exists_in_pyproject():
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert any(req.startswith(module) for req in extras[extra]), (module, extra)


def test_cli_dask_engine_without_dask_exits_1_with_the_install_line(tiny, tmp_path,
                                                                    monkeypatch):
    for name in ("dask", "distributed"):  # neither installed
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "classified.csv"
    result = CliRunner().invoke(main, [
        "classify", str(tiny["villages"]), "--towers", str(tiny["sites"]),
        "--engine", "dask", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "pip install 'coverage-gap[dask]'" in result.output
    assert "the dask engine" in result.output
    assert "looks like a bug" not in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
