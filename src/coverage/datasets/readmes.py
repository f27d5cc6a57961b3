"""README files written next to the generated data (placeholder, filled in below)."""

from __future__ import annotations


def write_all(out, **kwargs) -> None:
    """Write the README of every data folder."""
