"""Test-wide setup: an isolated VIDSENSE_HOME that still sees the installed models.

Caches and settings files written by tests land in a temporary home; its
``models`` folder links to the real model store (filled by ``make test``), so
real-model tests do not re-assemble a gigabyte of weights per session.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterator

import pytest

from vidsense.services.settings import default_home


def _real_home() -> Path:
    return Path(os.environ.get("VIDSENSE_HOME") or default_home())


@pytest.fixture(scope="session", autouse=True)
def vidsense_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary ``VIDSENSE_HOME`` for the session; the environment is restored afterwards."""
    real_models = _real_home() / "models"
    home = tmp_path_factory.mktemp("vidsense-home")
    if real_models.is_dir():
        (home / "models").symlink_to(real_models, target_is_directory=True)
    else:
        # No store yet (a fresh machine before `make models`): models assemble into the temporary
        # home from their carriers rather than into a folder the test run would leave behind.
        (home / "models").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDSENSE_HOME", str(home))
        # A vidsense.toml in the developer's working directory must not leak into tests.
        mp.setenv("VIDSENSE_CONFIG", str(home / "no-such-vidsense.toml"))
        yield home


@pytest.fixture(scope="session")
def example_video() -> Path:
    """The real example clip shipped in the package (a cyclist on a street, 10 s, no audio)."""
    return Path(str(resources.files("vidsense").joinpath("examples", "bikes.mp4")))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny randomly initialised CLIP saved as a transformers folder."""
    from visual_fixtures import tiny_clip

    return tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def clap_dir(tmp_path_factory):
    """A tiny randomly initialised CLAP saved as a transformers folder."""
    from visual_fixtures import tiny_clap

    return tiny_clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture
def cheap(monkeypatch):
    """Only the visual tagger perceives (a few seconds a clip): for tests of what comes after perception."""
    from batch_fixtures import CHEAP_ENV

    for k, v in CHEAP_ENV.items():
        monkeypatch.setenv(k, v)


# `make test-quick` sets this: the inner loop runs no real model. A test that loads one (through the
# model store, as every bundled model does) fails here with the fix: mark it slow, or give it a tiny
# model or a fake at the boundary (a slow test then covers the real path).
QUICK_ENV = "VIDSENSE_TEST_QUICK"


@pytest.fixture(scope="session", autouse=True)
def _no_real_models_in_the_quick_loop() -> Iterator[None]:
    # Session-wide, so module fixtures that build a model are caught too; with -m "not slow"
    # no test that may load one is collected.
    if not os.environ.get(QUICK_ENV):
        yield
        return
    from vidsense.services import model_store
    from vidsense.services.model_store import assemble, integrity

    real = dict(model_store.MODELS)
    ensure, install = integrity.ensure, assemble.install

    def guard(step):
        def guarded(name: str, *args: object, **kwargs: object) -> object:
            # The store's own tests swap in a registry of tiny fake models: those may load.
            if name in real and model_store.MODELS.get(name) is real[name]:
                raise AssertionError(f"the quick loop ({QUICK_ENV}=1) loaded the real model {name!r}: mark this test slow")
            return step(name, *args, **kwargs)

        return guarded

    with pytest.MonkeyPatch.context() as mp:
        # Callers reach the store through the package's names, and the store itself through its parts.
        for module, name, step in ((model_store, "ensure", ensure), (integrity, "ensure", ensure), (model_store, "install", install), (assemble, "install", install)):
            mp.setattr(module, name, guard(step))
        yield
