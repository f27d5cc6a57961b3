"""Errors and warnings raised by coverage-gap.

Every error derives from :class:`CoverageGapError` and from the builtin exception it
refines, so ``except ValueError`` keeps working for callers who do not know this package.
Messages say what is wrong, where, and how to fix it; the CLI prints them as they are.
"""

from __future__ import annotations

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
]


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
