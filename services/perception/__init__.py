"""The perception interface, its configuration and its registry.

Every perception model (captioner, tagger, speech recogniser, pose, action
recogniser, ...) is a class with one :meth:`PerceptionModel.describe` method
that turns a video's windows into a :class:`Perception`: the observations and
any notes the timeline must carry from that call (e.g. the language speech was
heard in). Models are chosen by name from :data:`PERCEPTION_MODELS` and built
from a :class:`PerceptionConfig`, the one typed object that holds what the
perception room needs; :meth:`PerceptionConfig.from_settings` builds it from
the product's settings, and no model reads those settings itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, runtime_checkable

from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.registry import resolve
from vidsense.services.timeline import Modality, Observation, Window

if TYPE_CHECKING:
    from vidsense.services.settings import Settings


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
        heavy: its runtime uses every core well (I3D, Whisper, torch models): it runs
            alone (:meth:`~vidsense.services.perception.turns.Turns.heavy`) while the
            light models, one thread each, share the cores around it.
    """

    name: str
    version: str
    modalities: tuple[Modality, ...]
    needs_video: bool = True
    needs_audio: bool = False
    note: str = ""
    cost: float = 1.0
    heavy: bool = False


@dataclass(frozen=True)
class Perception:
    """What one :meth:`PerceptionModel.describe` call found.

    Attributes:
        observations: the observations, in the model's order.
        notes: facts about this call the timeline must carry (e.g.
            ``"speech language: en (0.98)"``); cached with the observations.
    """

    observations: tuple[Observation, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept any iterable (a list is the natural thing to build) but store tuples.
        object.__setattr__(self, "observations", tuple(self.observations))
        object.__setattr__(self, "notes", tuple(self.notes))


@dataclass(frozen=True)
class PerceptionConfig:
    """Everything the perception room reads, typed.

    Attributes:
        env: where models are found (home, device, hub permission).
        models: registry names of the models to run, in order.
        window_s / window_count: how the video is cut (``window_count`` wins when set).
        frames_per_window: frames the frame-based taggers sample per window.
        frame_max_side: frames are scaled so their long side is at most this.
        perception_threads: models run side by side on this many threads (the light
            models' runtimes then share the cores: :attr:`light_threads`).
        max_duration_s: longer videos are refused with an :class:`~vidsense.services.errors.InputError`
            (None: no limit).
        cache: keep each model's observations in the perception cache.
        speech_model / speech_backend: the speech recogniser's weights and backend.
        caption_model: BLIP-2 folder or hub id (``blip2``).
        clip_model / clap_model: CLIP / CLAP folders or hub ids (the joint taggers).
        imagebind_model: ImageBind checkpoint (default: the one under ``env.home``).
    """

    env: ModelEnv
    models: tuple[str, ...] = ()
    window_s: float = 2.0
    window_count: int | None = None
    frames_per_window: int = 2
    frame_max_side: int = 640
    perception_threads: int = 1
    max_duration_s: float | None = None
    cache: bool = True
    speech_model: str | None = None
    speech_backend: str = "faster-whisper"
    caption_model: str | None = None
    clip_model: str | None = None
    clap_model: str | None = None
    imagebind_model: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))

    @property
    def light_threads(self) -> int | None:
        """Threads of each light model's runtime: the cores shared among the models side by side
        (None, the runtime's own choice, when models run one at a time)."""
        from vidsense.services.perception.turns import light_threads

        return light_threads(self.perception_threads)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PerceptionConfig":
        """The perception part of the product settings (profile defaults already applied)."""
        return cls(
            env=settings.model_env(),
            models=tuple(settings.perception or ()),
            window_s=settings.window_s,
            window_count=settings.window_count,
            frames_per_window=settings.frames_per_window,
            frame_max_side=settings.frame_max_side,
            perception_threads=settings.perception_threads,
            max_duration_s=settings.max_duration_s,
            cache=settings.cache,
            speech_model=settings.speech_model,
            speech_backend=settings.speech_backend,
            caption_model=settings.caption_model,
            clip_model=settings.clip_model,
            clap_model=settings.clap_model,
            imagebind_model=settings.imagebind_model,
        )


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

    # Optional: ``load()`` loads the weights now. A model may construct cheaply and load on its
    # first ``describe`` (a run answered from the perception cache then never loads it); the
    # Perceiver calls ``load()`` when asked to load everything up front (servers, batches), so a
    # model that cannot load says so at start.

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Observations (and notes) for the given windows of ``media``."""
        ...


# name -> "module:attr". The attribute is a class with a ``from_config``
# classmethod (and a ``card`` class attribute, so its card is known without
# loading it) or a factory function taking a PerceptionConfig. Strings keep the
# registry importable for free: a backend's heavy dependencies load only when
# it is picked.
PERCEPTION_MODELS: dict[str, str] = {
    "speech": "vidsense.services.perception.speech:make_speech",
    "audio-tags": "vidsense.services.perception.audio_tags:YamnetTagger",
    "visual-tags": "vidsense.services.perception.visual_tags:VisualTagger",
    "ocr": "vidsense.services.perception.ocr:ScreenText",
    "blip2": "vidsense.services.perception.captions:Blip2Captioner",
    "clip-tagger": "vidsense.services.perception.joint.tagger:make_clip_tagger",
    "clap-tagger": "vidsense.services.perception.joint.tagger:make_clap_tagger",
    "imagebind-tagger": "vidsense.services.perception.joint.tagger:make_imagebind_tagger",
    "pose": "vidsense.services.perception.motion.pose:PoseDescriber",
    "flow": "vidsense.services.perception.motion.flow:FlowDescriber",
    "action": "vidsense.services.perception.action.kinetics:KineticsActions",
}


def _target(name: str) -> Any:
    return resolve(PERCEPTION_MODELS, name, "perception model")


def _builder(target: Any) -> Callable[[PerceptionConfig], PerceptionModel]:
    return getattr(target, "from_config", target)


def card_of(name: str, config: PerceptionConfig) -> ModelCard:
    """The card of ``name``, without loading the model when its class declares the card.

    Raises:
        InputError: for a name that is not registered.
    """
    target = _target(name)
    card = getattr(target, "card", None)
    return card if isinstance(card, ModelCard) else create(name, config).card


def create(name: str, config: PerceptionConfig) -> PerceptionModel:
    """Instantiate the perception model registered as ``name``.

    Raises:
        InputError: for a name that is not registered.
    """
    return _builder(_target(name))(config)
