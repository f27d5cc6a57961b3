"""The embedded demo data set: a synthetic mountain province, and its generator.

``Tỉnh Mẫu Sơn (tổng hợp)`` is a fictional province of ~300 villages around 22.6°N 104.6°E,
generated from a seed with terrain, settlements, roads, three operators' networks, speed
tests and a hidden true radio field (see ``data/README.md``). It is one world of a family
(:mod:`coverage.datasets.worlds`) whose radio physics (:mod:`coverage.datasets.physics`) is
written apart from the product's model, for scoring the classification on physics it does
not share (``benchmarks/worlds.py``, ``docs/validation.md``). :func:`demo_paths` returns the
committed files of the repository's ``data/`` folder when present, otherwise it generates them
once into the user cache.

Examples
--------
>>> from coverage.datasets import demo_paths          # doctest: +SKIP
>>> demo_paths()["villages"].name                     # doctest: +SKIP
'villages.gpkg'
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .generate import DEFAULT_SEED, FILES, generate_demo
from .scoring import CLASSES, score_classification
from .worlds import SCORED_WORLDS, TUNING_WORLDS, WORLDS, WorldPhysics, generate_world

__all__ = ["CLASSES", "DEFAULT_SEED", "FILES", "SCORED_WORLDS", "TUNING_WORLDS", "WORLDS",
           "WorldPhysics", "demo_paths", "generate_demo", "generate_world",
           "score_classification"]

log = logging.getLogger(__name__)

#: Bump when the generator's output changes, so stale caches are not reused.
DEMO_VERSION = "2"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{version('coverage-gap')}.{DEMO_VERSION}"
    except PackageNotFoundError:   # running from a source tree without metadata
        return f"dev.{DEMO_VERSION}"


def _repo_data() -> Path:
    # src/coverage/datasets/__init__.py -> <repo>/data
    return Path(__file__).resolve().parents[3] / "data"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coverage-gap" / f"demo-{_version()}"


def _generate(out: Path, *, seed: int) -> None:
    generate_demo(out, seed=seed)


def _complete(folder: Path) -> bool:
    return all((folder / rel).is_file() for rel in FILES.values())


def demo_paths() -> dict[str, Path]:
    """Paths of the demo files, by key (``villages``, ``sites``, ``dem``, ...).

    The repository's committed ``data/`` folder is used when it is complete (a source
    checkout); otherwise the demo is generated once into ``$XDG_CACHE_HOME/coverage-gap`` (or
    ``~/.cache/coverage-gap``) under ``demo-<version>``, which takes about half a minute.

    Returns
    -------
    dict
        Key -> absolute path; the keys are those of :data:`FILES`.
    """
    repo = _repo_data()
    if _complete(repo):
        return {k: repo / v for k, v in FILES.items()}
    cache = _cache_dir()
    if not _complete(cache):
        log.info("generating the demo data into %s (once)", cache)
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        _generate(tmp, seed=DEFAULT_SEED)
        cache.parent.mkdir(parents=True, exist_ok=True)
        if _complete(cache):        # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(cache, ignore_errors=True)
            tmp.rename(cache)
    return {k: cache / v for k, v in FILES.items()}
