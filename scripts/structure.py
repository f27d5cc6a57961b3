"""Print the structure of the package: module sizes, the longest functions, the import graph.

Usage::

    python scripts/structure.py [SRC] [--top N]
    python scripts/structure.py --rev COMMIT     # the same for a commit of this repository

SRC defaults to ``src/coverage``. Module sizes are lines; functions (and methods) are
measured from their ``def`` to their last line; the import graph counts, for each pair of
subpackages (or top-level modules) of ``coverage``, the modules of the first importing the
second (function-level imports included, ``if TYPE_CHECKING:`` ones not), and lists the pairs that
import each other.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def _unit(module: str) -> str:
    """``coverage.plan.solvers`` -> ``plan``; ``coverage.engine`` -> ``engine``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if node.module is None:  # from . import x, y: each name may be a module
        return [f"{base}.{a.name}" for a in node.names]
    return [base]


def analyse(src: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]], Counter]:
    """(module sizes, function lengths, import edges between units)."""
    sizes, functions, edges = [], [], Counter()
    units = {p.stem for p in src.glob("*.py")} | {p.name for p in src.iterdir() if p.is_dir()}
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        module = _module_name(path, src)
        sizes.append((len(text.splitlines()), str(path.relative_to(src.parent))))
        tree = ast.parse(text)
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING"
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((node.end_lineno - node.lineno + 1,
                                  f"{path.relative_to(src.parent)}:{node.lineno} {node.name}"))
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(node, module, path.name == "__init__.py")
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.split(".")[0] != src.name or target == src.name:
                    continue
                a, b = _unit(module), _unit(target)
                if a != b and module != src.name and b in units:
                    edges[(a, b)] += 1
    return sizes, functions, edges


def report(src: Path, top: int) -> str:
    """The three tables as text."""
    sizes, functions, edges = analyse(src)
    lines = [f"# {src}", "", f"## Modules ({len(sizes)}, {sum(n for n, _ in sizes)} lines), "
             f"the {top} largest"]
    lines += [f"{n:6d}  {name}" for n, name in sorted(sizes, reverse=True)[:top]]
    long = [f for f in functions if f[0] > 80]
    lines += ["", f"## Functions: {len(functions)}, {len(long)} longer than 80 lines; "
              f"the {top} longest"]
    lines += [f"{n:6d}  {name}" for n, name in sorted(functions, reverse=True)[:top]]
    lines += ["", "## Imports between subpackages (importer -> imported: import statements)"]
    units = sorted({u for pair in edges for u in pair})
    for a in units:
        outs = [f"{b} ({edges[(a, b)]})" for b in units if edges.get((a, b))]
        if outs:
            lines.append(f"{a:>10} -> {', '.join(outs)}")
    cycles = sorted({tuple(sorted(p)) for p in edges if (p[1], p[0]) in edges})
    lines += ["", "## Pairs importing each other: "
              + (", ".join(f"{a} <-> {b}" for a, b in cycles) or "none")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report of SRC, or of a commit's ``src/coverage``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default="src/coverage", type=Path)
    parser.add_argument("--rev", help="analyse this commit's src/coverage instead")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    if args.rev is None:
        print(report(args.src, args.top))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.rev, "src/coverage"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        print(report(Path(tmp) / "src" / "coverage", args.top).replace(tmp + "/", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
