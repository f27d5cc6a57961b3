"""One BLAS thread for the small linear algebra of the fits (threadpoolctl, when installed).

The tool's linear algebra is small: two or three parameters in every calibration fit
(:func:`coverage.calibrate.fit_intercept_slope`, a thousand of them in a demo run's
cross-validations: Newton's steps on plain floats, SciPy's least squares, L-BFGS-B where
Newton's optimum would leave the bounds), 3x3 least squares, kriging systems of a few dozen
points.
SciPy's L-BFGS-B calls LAPACK (``dpotrf``, ``dtrtrs``) since SciPy 1.15, and the OpenBLAS
in the NumPy and SciPy wheels starts its threads for them: a fit that takes 1 ms of CPU
on one thread took 80 ms of CPU (150 ms wall) with OpenBLAS's threads on a loaded two-core
machine (SciPy issues 22438 and 23191 report the same). :func:`one_blas_thread` holds
every OpenBLAS (and other BLAS) library loaded in the process to one thread for the
duration and puts the previous counts back; the results are the same (these calls are
too small for OpenBLAS to split their arithmetic). Without threadpoolctl it does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["one_blas_thread"]

_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def _controller():
    """The controller of the loaded BLAS libraries (threadpoolctl; made once), or None."""
    with _LOCK:
        if "controller" not in _STATE:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _STATE["controller"] = None
            else:
                _STATE["controller"] = ThreadpoolController()
        return _STATE["controller"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with the BLAS libraries on one thread each (nestable, ~20 µs)."""
    controller = _controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
