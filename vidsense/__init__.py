"""vidsense: zero-shot video classification over timed text, with explanations.

The SDK is one verb per function, all backed by a :class:`Pipeline` that loads
models once::

    import vidsense
    result = vidsense.classify("clip.mp4", labels="ucf101")
    print(result.label, result.top_k[0].score)
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable

from vidsense import store
from vidsense.agents.labels import bundled_names, load_labels
from vidsense.batch import VIDEO_EXTENSIONS, BatchError, BatchInterrupted, collect_videos
from vidsense.engines import ENGINES, BatchEngine, LocalEngine, make_engine
from vidsense.frames import to_dataframe
from vidsense.pipeline import LabelsArg, Pipeline, example_video
from vidsense.ray_engine import RayEngine
from vidsense.results import ClassificationResult, ExplanationResult
from vidsense.services.errors import InputError, ModelError, ProcessingError, VidsenseError
from vidsense.services.schema import LabelScore, LabelSet, Prediction, read_manifest
from vidsense.services.settings import Settings, load_settings
from vidsense.services.timeline import Observation, Timeline, Window

__version__ = "0.1.0"

__all__ = [
    "VIDEO_EXTENSIONS",
    "ENGINES",
    "BatchEngine",
    "BatchError",
    "BatchInterrupted",
    "ClassificationResult",
    "Explanation",
    "ExplanationResult",
    "InterventionSpec",
    "InputError",
    "LabelScore",
    "LocalEngine",
    "LabelSet",
    "ModelError",
    "Observation",
    "Pipeline",
    "Prediction",
    "ProcessingError",
    "RayEngine",
    "Settings",
    "Timeline",
    "VidsenseError",
    "Window",
    "bundled_names",
    "classify",
    "close",
    "collect_videos",
    "default_pipeline",
    "describe",
    "example_video",
    "load_labels",
    "load_settings",
    "make_engine",
    "read_manifest",
    "store",
    "to_dataframe",
]


# Imported on first use: only explaining needs the explanation schema (pydantic models; it no longer pulls in torch).
_LAZY = {"Explanation": "vidsense.concepts.explanation", "InterventionSpec": "vidsense.concepts.explanation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidsense' has no attribute {name!r}")


# The Pipelines behind the module-level verbs, one per profile: built on first use, owned here,
# and closed by :func:`close` (models hold memory until then). Code that wants to own its models
# uses ``with vidsense.Pipeline() as pipe:`` instead.
_DEFAULTS: dict[str | None, Pipeline] = {}
_DEFAULTS_LOCK = threading.Lock()


def default_pipeline(profile: str | None = None) -> Pipeline:
    """The shared Pipeline behind :func:`classify` and :func:`describe` for ``profile``;
    :func:`close` closes it."""
    with _DEFAULTS_LOCK:
        if profile not in _DEFAULTS:
            _DEFAULTS[profile] = Pipeline(profile=profile)
        return _DEFAULTS[profile]


def close() -> None:
    """Close the shared Pipelines of the module-level verbs and free their models (the next call builds anew)."""
    with _DEFAULTS_LOCK:
        pipes = list(_DEFAULTS.values())
        _DEFAULTS.clear()
    for pipe in pipes:
        pipe.close()


def classify(video: str | os.PathLike[str], labels: LabelsArg, *, profile: str | None = None, **kwargs: Any) -> ClassificationResult:
    """Classify one video with the shared default :class:`Pipeline` (see :meth:`Pipeline.classify`)."""
    return default_pipeline(profile).classify(video, labels, **kwargs)


def describe(video: str | os.PathLike[str], modalities: Iterable[str] | None = None, *, profile: str | None = None) -> Timeline:
    """The timeline of one video with the shared default :class:`Pipeline`."""
    return default_pipeline(profile).describe(video, modalities)
