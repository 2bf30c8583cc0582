"""Joint-embedding taggers: score frames or audio against a text vocabulary.

A joint embedding model (CLIP for images, CLAP for audio, ImageBind for both)
maps media and text into one space. :class:`JointEmbeddingTagger` embeds a
vocabulary once (each term put into its modality's prompt template), then for
every window embeds the window's frames or audio and reports the best matching
terms as ``tags`` observations.

Scores: cosine similarities times the model's own logit scale, softmaxed over
the vocabulary (what these models were trained to produce), then averaged over
the window's frames. A term is reported when its probability is at least
``min_score``; at most ``top_k`` per window.

Vocabularies: :func:`visual_vocabulary` (package data, a few hundred everyday
objects, scenes and actions), :func:`audioset_vocabulary` (the 521 AudioSet
class names from the bundled YAMNet class map) or any supplied texts, such as
a label set's concepts (:func:`concept_vocabulary`).

Backends are picked by factory: :func:`make_clip_tagger`, :func:`make_clap_tagger`
and :func:`make_imagebind_tagger` (ImageBind's encoder, loading and preprocessing
live in :mod:`vidsense.services.perception.joint.imagebind`). The concept activations (:mod:`vidsense.concepts.joint`)
load the same encoders through :data:`JOINT_KINDS` / :func:`locate_joint` and read
windows through the same :func:`window_input` and :func:`embed_window`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from vidsense.services import model_store
from vidsense.services.errors import InputError, ModelError
from vidsense.services.media.video import SAMPLE_RATE, Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig, pretrained
from vidsense.services.perception.joint.imagebind import ImageBindEncoder
from vidsense.services.perception.joint.imagebind import locate as locate_imagebind
from vidsense.services.timeline import Modality, Observation, Window

TEXT_BATCH = 64


@dataclass(frozen=True)
class Vocabulary:
    """Terms to tag with, and the prompt each term is put into before embedding.

    Attributes:
        name: what the vocabulary is (``visual``, ``audioset``, ``concepts``), for cache keys.
        terms: the words or phrases reported as tags.
        template: a ``str.format`` pattern with one ``{}``; CLIP-style models match
            ``"a photo of a dog."`` better than a bare ``"dog"``.
    """

    name: str
    terms: tuple[str, ...]
    template: str = "{}"

    def prompts(self) -> list[str]:
        """Every term inside the template."""
        return [self.template.format(t) for t in self.terms]

    def digest(self) -> str:
        """Hash of the terms and template, for cache keys."""
        return hashlib.sha256("\n".join((self.template, *self.terms)).encode()).hexdigest()[:16]


def visual_vocabulary(template: str = "a photo of {}.") -> Vocabulary:
    """The default visual vocabulary shipped as ``data/visual_vocabulary.txt``."""
    text = resources.files("vidsense.services").joinpath("data/visual_vocabulary.txt").read_text(encoding="utf-8")
    terms = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return Vocabulary("visual", terms, template)


def audioset_vocabulary(home: Path, template: str = "the sound of {}") -> Vocabulary:
    """The 521 AudioSet class names, from the bundled YAMNet class map."""
    folder = Path(model_store.ensure("yamnet", home))
    with open(folder / "yamnet_class_map.csv", newline="", encoding="utf-8") as f:
        terms = tuple(row["display_name"] for row in csv.DictReader(f))
    return Vocabulary("audioset", terms, template)


def concept_vocabulary(texts: Sequence[str], template: str = "{}") -> Vocabulary:
    """A vocabulary from supplied texts (e.g. a label set's concepts), deduplicated in order.

    Raises:
        InputError: when no text is left after dropping blanks.
    """
    terms = tuple(dict.fromkeys(t.strip() for t in texts if t.strip()))
    if not terms:
        raise InputError("joint tagger: the concept vocabulary is empty")
    return Vocabulary("concepts", terms, template)


class JointEncoder(Protocol):
    """A joint embedding model; every ``embed_*`` returns L2-normalised rows."""

    name: str
    fingerprint: str
    logit_scale: float
    audio_rate: int

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def embed_images(self, frames: np.ndarray) -> np.ndarray: ...

    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class Channel:
    """One modality a tagger reads, with the vocabulary it scores against."""

    modality: Modality  # "sight" reads frames, "sound" reads audio
    vocabulary: Vocabulary


@dataclass(frozen=True)
class TagParams:
    """Thresholds of :class:`JointEmbeddingTagger` (all go in the cache key).

    Attributes:
        top_k: most tags per window and channel.
        min_score: smallest softmax probability reported.
        min_audio_s: windows with less audio than this get no sound tags.
    """

    top_k: int = 5
    min_score: float = 0.05
    min_audio_s: float = 0.25


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pooled(out: Any) -> Any:
    """The projected embedding: a tensor (transformers 4) or ``pooler_output`` (transformers 5)."""
    return out if hasattr(out, "detach") else out.pooler_output


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling of mono float32 audio from ``src`` Hz to ``dst`` Hz."""
    if src == dst:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(src, dst)
    return resample_poly(audio, dst // g, src // g).astype(np.float32)


def embed_texts(encoder: JointEncoder, texts: Sequence[str]) -> np.ndarray:
    """``[len(texts), d]`` L2-normalised text embeddings, in batches of :data:`TEXT_BATCH`."""
    texts = list(texts)
    rows = [encoder.embed_texts(texts[i : i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)]
    return np.concatenate(rows)


def window_input(media: Media, modality: Modality, window: Window, frames_per_window: int, max_side: int, min_audio_s: float = 0.25) -> np.ndarray | None:
    """What a joint model reads of one window: its frames (``sight``) or 16 kHz audio (``sound``).

    Returns:
        ``[k, H, W, 3]`` uint8 frames or float32 samples; ``None`` when the video
        has no video stream, or the window has less than ``min_audio_s`` of audio.
    """
    if modality == "sight":
        if not media.info.has_video:
            return None
        return media.sample(window.start_s, window.end_s, frames_per_window, max_side)
    clip = media.audio_between(window.start_s, window.end_s)
    if len(clip) == 0 or len(clip) < min_audio_s * SAMPLE_RATE:
        return None
    return clip


def embed_window(encoder: JointEncoder, modality: Modality, data: np.ndarray) -> np.ndarray:
    """L2-normalised embeddings of one :func:`window_input`: one row per frame, or one for the audio."""
    if modality == "sight":
        return encoder.embed_images(data)
    return encoder.embed_audio([resample(data, SAMPLE_RATE, encoder.audio_rate)])


class JointEmbeddingTagger:
    """Tags windows by matching their frames and/or audio to text vocabularies."""

    def __init__(
        self,
        card: ModelCard,
        encoder: JointEncoder,
        channels: Sequence[Channel],
        tuning: TagParams | None = None,
        *,
        frames_per_window: int = 2,
        frame_max_side: int = 640,
    ) -> None:
        """Embed every channel's vocabulary once.

        Args:
            card: the perception model's card (name, modalities).
            encoder: the joint embedding model.
            channels: what to read and which vocabulary to score it against.
            tuning: thresholds.
            frames_per_window: frames read per window (``sight`` channels).
            frame_max_side: frames are scaled so their long side is at most this.
        """
        self.card = card
        self.encoder = encoder
        self.channels = tuple(channels)
        self.tuning = tuning or TagParams()
        self.frames_per_window = frames_per_window
        self.frame_max_side = frame_max_side
        self._text = [self._embed_vocabulary(c.vocabulary) for c in self.channels]

    def _embed_vocabulary(self, vocab: Vocabulary) -> np.ndarray:
        return embed_texts(self.encoder, vocab.prompts())

    def params(self) -> dict[str, Any]:
        """Model identity, vocabularies, sampling and thresholds."""
        return {
            "encoder": self.encoder.name,
            "fingerprint": self.encoder.fingerprint,
            "vocabularies": {c.modality: f"{c.vocabulary.name}:{c.vocabulary.digest()}" for c in self.channels},
            "frames_per_window": self.frames_per_window,
            "frame_max_side": self.frame_max_side,
            **asdict(self.tuning),
        }

    def scores(self, channel: int, media: Media, window: Window) -> np.ndarray | None:
        """Probability of every vocabulary term for one window (``None`` when there is nothing to read)."""
        c = self.channels[channel]
        data = window_input(media, c.modality, window, self.frames_per_window, self.frame_max_side, self.tuning.min_audio_s)
        if data is None:
            return None
        emb = embed_window(self.encoder, c.modality, data)
        return _softmax(self.encoder.logit_scale * emb @ self._text[channel].T).mean(axis=0)

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Top vocabulary matches per window and channel."""
        out: list[Observation] = []
        for w in windows:
            for ci, c in enumerate(self.channels):
                probs = self.scores(ci, media, w)
                if probs is None:
                    continue
                for i in np.argsort(-probs)[: self.tuning.top_k]:
                    if probs[i] >= self.tuning.min_score:
                        out.append(Observation(w.index, w.start_s, w.end_s, c.modality, self.card.name, c.vocabulary.terms[i], round(float(probs[i]), 3), "tags"))
        return Perception(out)


class HfClipEncoder:
    """CLIP (``transformers`` CLIPModel + CLIPProcessor) from a local folder or an opt-in hub id."""

    audio_rate = 0

    def __init__(self, ref: pretrained.Pretrained) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.name = f"clip:{ref.path}"
        self.fingerprint = ref.fingerprint
        self._ref = ref
        self._processor, self._model = pretrained.load(ref, CLIPModel, CLIPProcessor)
        self.logit_scale = float(self._model.logit_scale.detach().exp())

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        inputs = self._processor(text=texts, padding=True, truncation=True, return_tensors="pt").to(self._ref.device)
        with torch.inference_mode():
            return _normalise(_pooled(self._model.get_text_features(**inputs)).float().cpu().numpy())

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        import torch

        inputs = self._processor(images=list(frames), return_tensors="pt").to(self._ref.device)
        with torch.inference_mode():
            pixels = inputs["pixel_values"].to(self._model.dtype)
            return _normalise(_pooled(self._model.get_image_features(pixel_values=pixels)).float().cpu().numpy())

    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError("CLIP has no audio tower")


class HfClapEncoder:
    """CLAP (``transformers`` ClapModel + ClapProcessor); audio goes in at 48 kHz."""

    audio_rate = 48_000

    def __init__(self, ref: pretrained.Pretrained) -> None:
        from transformers import ClapModel, ClapProcessor

        self.name = f"clap:{ref.path}"
        self.fingerprint = ref.fingerprint
        self._ref = ref
        self._processor, self._model = pretrained.load(ref, ClapModel, ClapProcessor)
        self.audio_rate = int(getattr(self._processor.feature_extractor, "sampling_rate", self.audio_rate))
        # Audio-to-text logits use the audio tower's scale.
        self.logit_scale = float(self._model.logit_scale_a.detach().exp())

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        inputs = self._processor(text=texts, padding=True, truncation=True, return_tensors="pt").to(self._ref.device)
        with torch.inference_mode():
            return _normalise(_pooled(self._model.get_text_features(**inputs)).float().cpu().numpy())

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError("CLAP has no image tower")

    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self._processor(audio=clips, sampling_rate=self.audio_rate, return_tensors="pt").to(self._ref.device)
        inputs["input_features"] = inputs["input_features"].to(self._model.dtype)
        with torch.inference_mode():
            return _normalise(_pooled(self._model.get_audio_features(**inputs)).float().cpu().numpy())


@dataclass(frozen=True)
class JointKind:
    """A family of joint models: the modalities its media towers read and its encoder class."""

    modalities: tuple[Modality, ...]
    encoder: Callable[[pretrained.Pretrained], JointEncoder]


JOINT_KINDS: dict[str, JointKind] = {
    "clip": JointKind(("sight",), HfClipEncoder),
    "clap": JointKind(("sound",), HfClapEncoder),
    "imagebind": JointKind(("sight", "sound"), ImageBindEncoder),
}


def locate_joint(
    reference: str,
    env: ModelEnv,
    *,
    role: str,
    setting: str,
    imagebind: str | Path | None = None,
) -> tuple[str, pretrained.Pretrained]:
    """Resolve a joint model reference to its kind (a key of :data:`JOINT_KINDS`) and location.

    ``imagebind`` or a ``.pth`` / ``.pt`` file is ImageBind; anything else is a
    ``transformers`` folder (or, with ``env.allow_hub``, a hub id) whose config names
    its model type.

    Args:
        reference: the model reference.
        env: where models are found and run.
        role / setting: what the model is for and the setting that named it, for messages.
        imagebind: the checkpoint the bare name ``imagebind`` stands for (the
            ``imagebind_model`` setting); ``None``: the one under ``env.home``.

    Raises:
        InputError: the reference names no local path (hub off) or a model of another type.
        ModelError: the folder has no readable config.
    """
    if reference == "imagebind" or reference.endswith((".pth", ".pt")):
        checkpoint = imagebind if reference == "imagebind" else reference
        return "imagebind", locate_imagebind(checkpoint, env, who=f"{role} model {reference}")
    ref = pretrained.locate(reference, env, role=role, setting=setting)
    kind = model_type(ref)
    if kind not in JOINT_KINDS:
        raise InputError(f"{role} model {reference}: a {kind!r} model; {setting} takes {', '.join(JOINT_KINDS)} models")
    return kind, ref


def model_type(ref: pretrained.Pretrained) -> str:
    """The ``model_type`` of a ``transformers`` folder or hub id (``clip``, ``clap``, ...).

    Raises:
        ModelError: there is no readable ``config.json``.
    """
    try:
        folder = Path(ref.path)
        if folder.is_dir():
            return str(json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"])
        from transformers import AutoConfig

        return str(AutoConfig.from_pretrained(ref.path, local_files_only=ref.local_only).model_type)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{ref.role} model {ref.path}: no readable config.json with a model_type ({type(exc).__name__}: {exc})") from exc


def _tagger_sampling(config: PerceptionConfig) -> dict[str, int]:
    return {"frames_per_window": config.frames_per_window, "frame_max_side": config.frame_max_side}


def make_clip_tagger(config: PerceptionConfig, vocabulary: Vocabulary | None = None, tuning: TagParams | None = None) -> JointEmbeddingTagger:
    """``clip-tagger``: frames against the visual vocabulary with ``config.clip_model``."""
    encoder = HfClipEncoder(pretrained.locate(config.clip_model, config.env, role="clip", setting="clip_model"))
    card = ModelCard(name="clip-tagger", version="1", modalities=("sight",), note="CLIP zero-shot tags", heavy=True)
    return JointEmbeddingTagger(card, encoder, [Channel("sight", vocabulary or visual_vocabulary())], tuning, **_tagger_sampling(config))


def make_clap_tagger(config: PerceptionConfig, vocabulary: Vocabulary | None = None, tuning: TagParams | None = None) -> JointEmbeddingTagger:
    """``clap-tagger``: audio against the AudioSet names with ``config.clap_model``."""
    encoder = HfClapEncoder(pretrained.locate(config.clap_model, config.env, role="clap", setting="clap_model"))
    card = ModelCard(name="clap-tagger", version="1", modalities=("sound",), needs_video=False, needs_audio=True, note="CLAP zero-shot audio tags", heavy=True)
    channels = [Channel("sound", vocabulary or audioset_vocabulary(config.env.home))]
    return JointEmbeddingTagger(card, encoder, channels, tuning, **_tagger_sampling(config))


def make_imagebind_tagger(
    config: PerceptionConfig,
    tuning: TagParams | None = None,
    *,
    sight: Vocabulary | None = None,
    sound: Vocabulary | None = None,
) -> JointEmbeddingTagger:
    """``imagebind-tagger``: frames and audio with ImageBind (:mod:`vidsense.services.perception.joint.imagebind`).

    The checkpoint is ``config.imagebind_model`` when set, else
    ``$VIDSENSE_HOME/models/imagebind-huge/imagebind_huge.pth``.

    Args:
        config: the perception settings.
        tuning: thresholds.
        sight / sound: the vocabularies; default the visual vocabulary and the AudioSet names.

    Raises:
        InputError: the ImageBind model code or the checkpoint is missing.
        ModelError: the checkpoint does not load.
    """
    encoder = ImageBindEncoder(locate_imagebind(config.imagebind_model, config.env))
    card = ModelCard(name="imagebind-tagger", version="2", modalities=("sight", "sound"), note="ImageBind zero-shot tags", heavy=True)
    channels = [Channel("sight", sight or visual_vocabulary()), Channel("sound", sound or audioset_vocabulary(config.env.home, template="{}"))]
    return JointEmbeddingTagger(card, encoder, channels, tuning, **_tagger_sampling(config))
