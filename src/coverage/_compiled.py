"""Optional compiled loops of the radial sweep (numba), with the numpy code as the fallback.

The radial sweep's two loops (:meth:`coverage.radio.RaySweep.build` over the samples of a
ray, and the walk along the upper-hull pointers of :func:`coverage.radio._hull_tangent`)
run in numpy as array operations over all rays at once, one Python step per sample; here
they are the same arithmetic, in the same order, compiled per ray and per receiver. The
results are equal to the numpy code's to the bit (IEEE double, no fast-math, the same
expressions), which ``tests/test_compiled.py`` checks on random terrain.

numba is optional (``pip install 'coverage-gap[fast]'``). Its import clashes with this
package's name: ``numba.misc.coverage_support`` does ``import coverage`` to find
coverage.py and then reads ``coverage.types``, which this package (also imported as
``coverage``) does not have, and numba fails to import. :func:`kernels` imports numba
once with ``sys.modules["coverage"]`` set to None for the duration, so numba's
``import coverage`` raises ImportError and numba carries on without its coverage.py
support (which measures test coverage of jitted code, not used here); the entry is put
back at once. Setting the environment variable ``COVERAGE_GAP_NUMBA=0`` uses the numpy
code even where numba is installed.
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
                _STATE["kernels"] = _compile(_import_numba())
            except Exception as exc:  # numba absent or unusable here: numpy it is
                log.debug("numba not used (%s: %s): the sweep runs in numpy",
                          type(exc).__name__, exc)
                _STATE["kernels"] = None
        return _STATE["kernels"]  # type: ignore[return-value]


def _compile(numba) -> SimpleNamespace:
    jit = numba.njit(cache=True, nogil=True)

    @jit
    def tangent(hs, hor, d, dist, h_obs, start):
        # _hull_tangent for one receiver: the walk while the slope does not fall
        cur = start
        s_cur = (hs[cur] - h_obs) / (dist - d[cur])
        while True:
            p = hor[cur]
            s_p = (hs[p] - h_obs) / (dist - d[p])
            if s_p >= s_cur:
                cur = p
                s_cur = s_p
            else:
                return cur, s_cur

    @jit
    def hull_tangent(hs, hor, d, dist, h_obs, start, cur, s_cur):
        for k in range(start.size):
            cur[k], s_cur[k] = tangent(hs, hor, d, dist[k], h_obs[k], start[k])

    @jit
    def build(hs, d_flat, d, tx, lengths, n, hor, s_tim, i_tim):
        # RaySweep.build: sample after sample, the rays still being swept (contiguous)
        rays = tx.size
        for j in range(1, n):
            for r in range(rays):
                if lengths[r] <= j:
                    continue
                flat = j * rays + r
                h_j = hs[flat]
                s = (h_j - tx[r]) / d[j]
                prev_s = s_tim[flat - rays]
                if s > prev_s:
                    s_tim[flat] = s
                    i_tim[flat] = flat
                else:
                    s_tim[flat] = prev_s
                    i_tim[flat] = i_tim[flat - rays]
                if j >= 2:
                    hor[flat] = tangent(hs, hor, d_flat, d[j], h_j, flat - rays)[0]

    return SimpleNamespace(hull_tangent=hull_tangent, build=build)
