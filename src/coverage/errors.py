"""Errors and warnings raised by coverage-gap.

Every error derives from :class:`CoverageGapError` and from the builtin exception it
refines, so ``except ValueError`` keeps working for callers who do not know this package.
Messages say what is wrong, where, and how to fix it; the CLI prints them as they are.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CRSError",
    "CoverageGapError",
    "CoverageGapWarning",
    "InputError",
    "InputFileNotFoundError",
    "ItmWarning",
    "MissingDependencyError",
    "OutputError",
    "OutputExistsError",
    "ParameterError",
    "RepairWarning",
    "SchemaError",
    "SolverError",
    "did_you_mean",
]


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the choices closest to a name refused as unknown.

    At most two, by :func:`difflib.get_close_matches` ignoring case, with a cutoff of 0.75
    (one letter wrong, missing or swapped in a short name); no close choice gives ``""``.
    It only suggests: the name is never replaced.

    Examples
    --------
    >>> did_you_mean("vn-2052", ["vn-2025", "bead-25-3", "gsma-gap"])
    " (did you mean 'vn-2025'?)"
    >>> did_you_mean("speed", ["budget", "phases"])
    ''
    """
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=2, cutoff=0.75)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(by_lower[c]) for c in close)}?)"


class CoverageGapError(Exception):
    """Root of every error raised by coverage-gap."""


class InputError(CoverageGapError, ValueError):
    """Raised when an input file holds data the tool cannot use."""


class InputFileNotFoundError(CoverageGapError, FileNotFoundError):
    """Raised when an input file does not exist."""


class SchemaError(InputError):
    """Raised when an input lacks required columns or has wrong types or duplicate ids."""


class CRSError(InputError):
    """Raised when an input has no CRS, or coordinates that cannot be in the CRS it claims."""


class ParameterError(CoverageGapError, ValueError):
    """Raised when a parameter, profile name or config value is out of range or unknown."""


class MissingDependencyError(CoverageGapError, ImportError):
    """Raised when a feature needs an optional package that is not installed."""


class OutputExistsError(CoverageGapError, FileExistsError):
    """Raised when an output exists and overwriting was not asked for."""


class OutputError(CoverageGapError, OSError):
    """Raised when an output cannot be written (its folder cannot be made or written to)."""


class SolverError(CoverageGapError, RuntimeError):
    """Raised when the optimisation solver fails or returns no usable solution."""


class CoverageGapWarning(UserWarning):
    """Base of the warnings coverage-gap issues."""


class RepairWarning(CoverageGapWarning):
    """Issued when input data were repaired or rows dropped (invalid geometry, bad values)."""


class ItmWarning(CoverageGapWarning):
    """Issued when the Irregular Terrain Model ran outside its validity limits.

    ``flags`` holds ITM's warning bits (:class:`coverage.itm.ItmFlag`) raised by any path;
    the message names each and the share of paths it marks.
    """

    def __init__(self, message: str, flags: int = 0) -> None:
        super().__init__(message)
        self.flags = flags
