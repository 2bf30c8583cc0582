"""The perception interface and its registry.

Every perception model (captioner, tagger, speech recogniser, pose, action
recogniser, ...) is a class with one :meth:`PerceptionModel.describe` method
that turns a video's windows into :class:`Observation` s. Models are chosen by
name from :data:`PERCEPTION_MODELS`; :func:`register` adds one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

from vidsense.services.timeline import Modality, Observation, Window
from vidsense.services.video import Media


@dataclass(frozen=True)
class ModelCard:
    """What a perception model is, for cache keys and the timeline's metadata.

    Attributes:
        name: registry name.
        version: bump when the code's output changes, so cached results expire.
        modalities: the modalities it emits.
        needs_video / needs_audio: what it reads; skipped when the media lacks it.
        note: a fact the timeline must carry when this model contributes
            (e.g. "trained on Kinetics-400").
        cost: rough CPU seconds per 10 s of video; when models run side by
            side the costly ones start first so the cheap ones fill the gaps.
    """

    name: str
    version: str
    modalities: tuple[Modality, ...]
    needs_video: bool = True
    needs_audio: bool = False
    note: str = ""
    cost: float = 1.0


@runtime_checkable
class PerceptionModel(Protocol):
    """A model that describes a video's windows in words."""

    card: ClassVar[ModelCard] | ModelCard

    def params(self) -> dict[str, Any]:
        """Every setting that changes the output (model file hash, thresholds, ...).

        The cache key includes these, so two runs with different settings never
        share a cached result.
        """
        ...

    def describe(self, media: Media, windows: tuple[Window, ...]) -> list[Observation]:
        """Observations for the given windows of ``media``."""
        ...


# name -> "module:factory". A factory takes the Settings and returns a
# PerceptionModel. Strings keep the registry importable for free: a backend's
# heavy dependencies load only when it is picked.
PERCEPTION_MODELS: dict[str, str] = {
    "speech": "vidsense.services.speech:make_speech",
    "audio-tags": "vidsense.services.audio_tags:YamnetTagger",
    "visual-tags": "vidsense.services.visual_tags:VisualTagger",
    "ocr": "vidsense.services.ocr:ScreenText",
    "blip2": "vidsense.services.captions:Blip2Captioner",
    "clip-tagger": "vidsense.services.joint_tagger:make_clip_tagger",
    "clap-tagger": "vidsense.services.joint_tagger:make_clap_tagger",
    "imagebind-tagger": "vidsense.services.joint_tagger:make_imagebind_tagger",
    "pose": "vidsense.services.pose:PoseDescriber",
    "flow": "vidsense.services.flow:FlowDescriber",
    "action": "vidsense.services.action:KineticsActions",
}


def _factory(name: str) -> Callable[[Any], PerceptionModel]:
    from vidsense.services.errors import InputError

    try:
        target = PERCEPTION_MODELS[name]
    except KeyError:
        raise InputError(f"unknown perception model {name!r}; known: {', '.join(PERCEPTION_MODELS)}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def card_of(name: str, settings: Any) -> ModelCard:
    """The card of ``name``, without loading the model when its class declares the card."""
    card = getattr(_factory(name), "card", None)
    return card if isinstance(card, ModelCard) else create(name, settings).card


def create(name: str, settings: Any) -> PerceptionModel:
    """Instantiate the perception model registered as ``name``.

    Raises:
        InputError: for a name that is not registered.
    """
    return _factory(name)(settings)
