"""One BLAS thread around the small fits, and the counts put back after."""

import numpy as np
import pytest

from coverage import calibrate
from coverage._threads import one_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_one_blas_thread_inside_and_restored_after():
    before = _blas_threads()
    assert before, "numpy and scipy load a BLAS"
    with one_blas_thread():
        assert set(_blas_threads()) == {1}
        with one_blas_thread():  # nestable
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_calibration_fits_run_on_one_blas_thread(monkeypatch):
    """L-BFGS-B, where Newton's optimum would leave the bounds, runs on one BLAS thread."""
    seen = []
    real = calibrate.minimize

    def spy(*args, **kwargs):
        seen.append(set(_blas_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(calibrate, "minimize", spy)
    monkeypatch.setattr(calibrate, "_newton", lambda *args, **kwargs: None)  # the fallback
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, 300)
    r = 2.0 - 8.0 * x + rng.logistic(0.0, 3.0, 300)
    xu = rng.uniform(-1.0, 1.0, 80)
    a, b = calibrate.fit_intercept_slope(r, x, upper_db=5.0 - 8.0 * xu,
                                         upper_log10_distance_km=xu)
    assert seen == [{1}]
    assert -10.0 < b < -5.0 and 0.0 < a < 4.0  # the fit itself is unchanged in kind
