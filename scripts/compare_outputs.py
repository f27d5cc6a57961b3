"""Compare the tables two runs wrote: same rows, same values, or where they differ.

Usage::

    python scripts/compare_outputs.py BEFORE_DIR AFTER_DIR

Every ``.csv`` and ``.xlsx`` file under BEFORE_DIR is read with its namesake under AFTER_DIR
(ids as text) and compared column by column: numbers to 1e-9 relative, text exactly;
columns only one side has are listed. Prints one line per file and exits 1 when any file
differs in the values of the columns both have.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("village_id", "site_id", "priority", "rank", "budget", "province", "commune")


def _read(path: Path) -> pd.DataFrame:
    ids = {k: str for k in ("village_id", "site_id", "villages", "commune", "district")}
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=ids)
    return pd.read_csv(path, dtype=ids, keep_default_na=True)


def compare(before: Path, after: Path) -> tuple[bool, str]:
    """(same, one line) for two tables."""
    a, b = _read(before), _read(after)
    only = sorted(set(a.columns) ^ set(b.columns))
    if len(a) != len(b):
        return False, f"{len(a)} rows before, {len(b)} after"
    keys = [k for k in KEYS if k in a.columns and k in b.columns]
    if keys:
        a, b = (t.sort_values(keys, kind="stable").reset_index(drop=True) for t in (a, b))
    differ = []
    for col in [c for c in a.columns if c in b.columns]:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=1e-9,
                               equal_nan=True)
        else:
            same = x.fillna("").astype(str).equals(y.fillna("").astype(str))
        if not same:
            differ.append(col)
    line = f"{len(a)} rows, {len(a.columns)} columns"
    if only:
        line += f"; only on one side: {', '.join(only)}"
    if differ:
        line += f"; DIFFERENT values in {', '.join(differ)}"
    return not differ, line


def main(argv: list[str]) -> int:
    """Compare every table of two output folders."""
    before, after = Path(argv[0]), Path(argv[1])
    ok = True
    for path in sorted(p for p in before.rglob("*") if p.suffix in (".csv", ".xlsx")):
        other = after / path.relative_to(before)
        if not other.exists():
            print(f"{path.relative_to(before)}: missing after")
            ok = False
            continue
        same, line = compare(path, other)
        ok &= same
        print(f"{path.relative_to(before)}: {'same' if same else 'DIFFERENT'} ({line})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
