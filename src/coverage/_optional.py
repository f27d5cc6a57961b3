"""Optional dependencies: imported where a feature needs them, refused with the extra to install.

Like geopandas' ``explore`` (which names ``folium`` when it is missing), a feature that needs
an optional package imports it through :func:`import_optional`; when the package is absent the
user gets a :class:`~coverage.errors.MissingDependencyError` (also an ``ImportError``) naming
the feature, the package and the exact ``pip install`` line, which the CLI shows as a usage
problem (exit 1), not as a bug.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "import_optional"]

#: The extras of ``pyproject.toml`` by the modules they provide.
EXTRAS = {"dask": "dask", "distributed": "dask"}


def import_optional(module: str, *, feature: str) -> ModuleType:
    """Import ``module``, or say which extra of coverage-gap provides it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"distributed"``; its top-level package must be in
        :data:`EXTRAS`.
    feature : str
        What needs it, for the message, e.g. ``"the dask engine (--engine dask)"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the module (or one it needs) cannot be imported.
    """
    extra = EXTRAS[module.partition(".")[0]]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the optional package {module.partition('.')[0]!r}, which "
            f"cannot be imported ({exc}); install it with: pip install 'coverage-gap[{extra}]'",
            name=module,
        ) from None
