"""Optional compiled loops of the radial sweep (numba), with the numpy code as the fallback.

The radial sweep's two loops (:meth:`coverage.radio.RaySweep.build` over the samples of a
ray, and the walk along the upper-hull pointers of :func:`coverage.radio.sweep._hull_tangent`,
also taken by :meth:`coverage.radio.RaySweep.smooth_heights_m` for the delta-Bullington
method's smooth-earth heights) run in numpy as array operations over all rays at once, one
Python step per sample; in :mod:`coverage._kernels` they are the same arithmetic, in the
same order, compiled per ray and per receiver. The results are equal to the numpy code's to
the bit (IEEE double, no fast-math, the same expressions), which ``tests/test_compiled.py``
checks on random terrain.

numba is optional (``pip install 'coverage-gap[fast]'``). Its import clashes with this
package's name: ``numba.misc.coverage_support`` does ``import coverage`` to find
coverage.py and then reads ``coverage.types``, which this package (also imported as
``coverage``) does not have, and numba fails to import. :func:`_import_numba` imports
numba once with ``sys.modules["coverage"]`` set to None for the duration, so numba's
``import coverage`` raises ImportError and numba carries on without its coverage.py
support (which measures test coverage of jitted code, not used here); the entry is put
back at once. Setting the environment variable ``COVERAGE_GAP_NUMBA=0`` uses the numpy
code even where numba is installed.

:func:`kernels` imports :mod:`coverage._kernels` only after the checks above, so that
importing this package never imports numba. The kernels are module-level functions there,
not built in a closure here, so that numba's on-disk cache (``cache=True``) serves them to
every later process instead of compiling them again (that module's docstring says why).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import SimpleNamespace

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def _import_numba():
    """numba, imported without it seeing this package as coverage.py (see the module doc)."""
    if "numba" in sys.modules:
        return sys.modules["numba"]
    saved = sys.modules.get("coverage")
    sys.modules["coverage"] = None  # numba's `import coverage` then raises ImportError
    try:
        import numba
    finally:
        if saved is not None:
            sys.modules["coverage"] = saved
        else:
            sys.modules.pop("coverage", None)
    return numba


def kernels() -> SimpleNamespace | None:
    """The compiled kernels, or None (numba absent, failing, or ``COVERAGE_GAP_NUMBA=0``)."""
    if os.environ.get("COVERAGE_GAP_NUMBA", "1").strip() in ("0", "false", "no", "off"):
        return None
    with _LOCK:
        if "kernels" not in _STATE:
            try:
                _STATE["kernels"] = _load()
            except Exception as exc:  # numba absent or unusable here: numpy it is
                log.debug("numba not used (%s: %s): the sweep runs in numpy",
                          type(exc).__name__, exc)
                _STATE["kernels"] = None
        return _STATE["kernels"]  # type: ignore[return-value]


def _load() -> SimpleNamespace:
    # importing the kernels' module imports numba (through _import_numba) and compiles
    # nothing: each kernel is loaded from numba's cache, or compiled, at its first call
    from . import _kernels

    return SimpleNamespace(hull_tangent=_kernels.hull_tangent, build=_kernels.build,
                           sample_and_sweep=_kernels.sample_and_sweep,
                           nu_root=_kernels.nu_root, smooth_heights=_kernels.smooth_heights)
