"""numba's on-disk cache serves every compiled kernel to a new process (coverage._kernels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coverage import _compiled

# In a new process: the model's warm-up, then every kernel of the sweep on a small ridge;
# prints each kernel's cache hits and misses (numba's dispatcher statistics).
RUN_KERNELS = """
import json
import numpy as np
from coverage import _compiled
from coverage.model.predict import warm_compiled_sweep
from coverage.radio import RaySweep

warm_compiled_sweep()
rays, n = 4, 30
ground = 100.0 + 30.0 * np.sin(np.arange(n) / 4.0)[None, :] + np.arange(rays)[:, None]
sweep = RaySweep.build(ground, 100.0, np.full(rays, 140.0))
ray = np.repeat(np.arange(rays), n - 1)
dist = np.tile(np.arange(1, n) * 100.0 + 30.0, rays)
sweep.nu_root_m(ray, dist, np.full(dist.size, 101.5))
sweep.smooth_heights_m(ray, dist, np.full(dist.size, 101.5), np.full(dist.size, 100.0))
sweep.horizon_points(ray[dist > 300], np.full((dist > 300).sum(), 2), dist[dist > 300],
                     np.full((dist > 300).sum(), 101.5))
kern = _compiled.kernels()
print(json.dumps({name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
                  for name, d in sorted(vars(kern).items())}))
"""


def _run(cache: Path) -> dict[str, list[int]]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("COVERAGE_GAP_NUMBA", None)
    done = subprocess.run([sys.executable, "-c", RUN_KERNELS], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_second_process_loads_every_kernel_from_the_cache(tmp_path: Path) -> None:
    if _compiled.kernels() is None:
        pytest.skip("numba is not installed (or COVERAGE_GAP_NUMBA=0): no compiled kernels "
                    "to cache; pip install 'coverage-gap[fast]'")
    cache = tmp_path / "numba"
    first = _run(cache)
    assert set(first) == {"build", "hull_tangent", "nu_root", "sample_and_sweep",
                          "smooth_heights"}
    # the cache directory was empty: every kernel was compiled, and written
    assert all(misses > 0 and hits == 0 for hits, misses in first.values()), first
    written = _files(cache)
    assert written
    second = _run(cache)
    # each kernel the first process compiled is loaded, none compiled again ...
    assert {name: [misses, 0] for name, (_, misses) in first.items()} == second
    # ... and the cache holds the same files, not another copy of each kernel
    assert _files(cache) == written
