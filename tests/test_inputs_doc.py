"""``docs/inputs.md`` says what the readers read: its names are checked against the code's tables.

Each column table of the doc lists, in its first column, the contract names one input kind
can map (:data:`coverage.io.MAPPABLE`); each ``- **Label**: `a`, `b``` line lists one of the
readers' alias tables. A name added to the code and not to the doc (or the reverse) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coverage import io
from coverage.io._common import _TECH_ALIASES
from coverage.io._rows import MEASUREMENT_LIMITS
from coverage.io.measurements import _NO_SERVICE, OOKLA_COLUMNS
from coverage.io.vector import LAT_NAMES, LON_NAMES, WKT_NAMES
from coverage.spec import INPUT_KEYS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "inputs.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = DOC.index(heading + "\n") + len(heading)
    rest = DOC[start:]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


def table_names(text: str) -> list[str]:
    """The backticked names of the first column of the text's first column table."""
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def listed(label: str) -> list[str]:
    """The backticked names of the line ``- **label**: ...``."""
    line = next(line for line in DOC.splitlines() if line.startswith(f"- **{label}**: "))
    return re.findall(r"`([^`]+)`", line)


@pytest.mark.parametrize(("heading", "kind"), [
    ("## Villages (`VILLAGES`)", "villages"),
    ("### Site table", "towers"),
    ("### Point tests", "measurements"),
    ("## Access (`--access`)", "access"),
    ("## Fibre, roads, candidates", "candidates"),
    ("## Operators' coverage maps (`--coverage`)", "coverage"),
])
def test_each_column_table_lists_the_names_its_kind_maps(heading, kind):
    names = table_names(section(heading))
    assert len(names) == len(set(names))
    assert set(names) == set(io.MAPPABLE[kind])


def test_the_doc_names_every_kind_a_mapping_takes():
    text = section("## Formats, columns, CRS")
    paragraph = text[text.index("**Column mapping.**"):text.index("**CRS.**")]
    assert set(re.findall(r"`(\w+)`", paragraph)) >= set(io.MAPPABLE)


def test_the_col_option_help_names_every_kind():
    from click.testing import CliRunner

    from coverage.cli import main

    text = " ".join(CliRunner().invoke(main, ["classify", "--help"]).output.split())
    assert all(kind in text.split("KIND:")[1][:120] for kind in io.MAPPABLE)


@pytest.mark.parametrize(("label", "names"), [
    ("Longitude", LON_NAMES),
    ("Latitude", LAT_NAMES),
    ("Geometry", WKT_NAMES),
    ("No service", tuple(_NO_SERVICE)),
    ("Ookla columns", OOKLA_COLUMNS),
    *((tech, tuple(k for k, v in _TECH_ALIASES.items() if v == tech))
      for tech in ("2G", "3G", "4G", "5G")),
])
def test_each_alias_list_is_the_readers(label, names):
    got = listed(label)
    assert len(got) == len(set(got))
    assert set(got) == set(names)


def test_opencellid_columns_in_their_order():
    assert tuple(listed("OpenCelliD columns")) == io.OPENCELLID_COLUMNS


def test_operators_by_mnc():
    line = next(line for line in DOC.splitlines() if line.startswith("- **Operators of MCC"))
    pairs = re.findall(r"(\d+) `([^`]+)`", line)
    assert {int(mnc): name for mnc, name in pairs} == io.VN_OPERATORS


def test_bounds_of_measured_values():
    line = next(line for line in DOC.splitlines() if line.startswith("- **Bounds**"))
    bounds = {name: (float(lo), float(hi))
              for name, lo, hi in re.findall(r"`(\w+)` (-?\d+)\.\.(-?\d+)", line)}
    assert bounds == MEASUREMENT_LIMITS


def test_every_input_option_is_in_the_table_of_inputs():
    first = DOC[:DOC.index("## ")]
    options = set(re.findall(r"^\| `(--[a-z]+)`", first, re.M))
    assert options == {f"--{key}" for key in INPUT_KEYS if key != "villages"} | {"--crosswalk"}


def test_the_readme_points_to_the_doc_not_to_the_contract():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/inputs.md" in readme
    assert "../shared/CONTRACT.md" not in readme


def test_every_covgap_command_of_the_readme_parses():
    import shlex

    from coverage.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = [line.split("#")[0].split(">")[0] for line in text.splitlines()
             if line.startswith("covgap ")]
    inline = re.findall(r"`(covgap (?:run|demo|diff|map|report)[^`]*)`", readme)
    commands = [shlex.split(c)[1:] for c in lines + [c.split(">")[0] for c in inline]]
    assert {c[0] for c in commands} >= {"validate", "classify", "plan", "map", "report", "run"}
    parsed = []
    for args in commands:
        if "[" in " ".join(args) or args[-1] == "..." or len(args) == 1:
            continue  # a synopsis or a name, not a command
        parsed.append(args[0])
        main.commands[args[0]].make_context(args[0], args[1:])  # unknown options fail here
    assert len(parsed) >= 7, parsed
