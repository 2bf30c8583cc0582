"""Concept activations from joint image-text / audio-text models (CLIP, CLAP, ImageBind).

Each configured joint model (:attr:`JointConfig.models`) becomes one
:class:`EncoderScorer` per modality it reads (CLIP: ``sight``, CLAP: ``sound``,
ImageBind: both). A scorer embeds a window's frames (mean of the L2-normalised
frame embeddings, renormalised) or its audio, and takes the cosine with each
concept text; windows with nothing to read (no video stream, no audio, a sliver
of audio) get rows of zeros, as empty windows do in the text path.

Encoders load through :mod:`vidsense.services.perception.joint.tagger`, the code the
CLIP / CLAP / ImageBind taggers use, once per :class:`JointModel` (its
scorers share it) and only on a cache miss.
Matrices are cached like perception results: keyed on the video file's
SHA-256, the window bounds, the model and its weights' fingerprint, the frame
sampling and the bank.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from vidsense.concepts.activations import ActivationCache, JointEvidence, JointPart
from vidsense.concepts.bank import ConceptBank
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception.joint import tagger as joint_tagger
from vidsense.services.perception.pretrained import Pretrained
from vidsense.services.timeline import Modality, Timeline, Window

log = logging.getLogger(__name__)

# Bump when the key recipe or the scoring changes: old matrices then never match.
CACHE_VERSION = 1
# Windows decoded and scored at once: bounds the frames held in memory on long videos.
WINDOW_CHUNK = 16


# Concept-text matrices kept per model (one per bank in use).
TEXT_MEMO = 8


@dataclass(frozen=True)
class JointConfig:
    """The joint models the concept activations blend in, and how.

    Attributes:
        models: CLIP folders (sight), CLAP folders (sound), ``imagebind`` or an
            ImageBind ``.pth`` (both); local paths, or hub ids with ``allow_hub``.
        weight: 0 = text only, 1 = joint only, in between = the weighted mean.
        frames_per_window: frames a sight scorer reads per window.
        frame_max_side: their longest side in pixels.
        imagebind: the checkpoint the bare name ``imagebind`` stands for
            (``None``: the one under the model store).
    """

    models: tuple[str, ...] = ()
    weight: float = 0.5
    frames_per_window: int = 2
    frame_max_side: int = 640
    imagebind: str | None = None


class JointScorer(Protocol):
    """A joint embedding model (CLIP, CLAP, ImageBind) scoring raw media against concept texts.

    ``similarity`` receives one input per window (for ``sight`` an RGB uint8
    array ``[k, H, W, 3]`` of the window's frames, for ``sound`` the window's
    16 kHz mono float32 samples; ``None`` when the window has nothing to read)
    and returns ``[windows, len(texts)]`` cosine similarities, rows of zeros for
    ``None``; pooling several frames of a window is the scorer's choice.

    Attributes:
        name: the model (``clip:/models/clip-vit-b16``), for encoder names.
        version: changes whenever the weights change (cache keys).
        modality: what it reads.
    """

    name: str
    version: str
    modality: Literal["sight", "sound"]

    def similarity(self, inputs: Sequence[np.ndarray | None], texts: Sequence[str]) -> np.ndarray: ...


class JointModel:
    """One joint model, loaded on first use and shared by its scorers (ImageBind reads both modalities).

    Args:
        kind: a key of :data:`~vidsense.services.perception.joint.tagger.JOINT_KINDS`.
        ref: where the model is (from :func:`~vidsense.services.perception.joint.tagger.locate_joint`).
    """

    def __init__(self, kind: str, ref: Pretrained) -> None:
        self.kind, self.ref = kind, ref
        self.name = f"{kind}:{ref.path}"
        self._encoder: joint_tagger.JointEncoder | None = None
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def encoder(self) -> joint_tagger.JointEncoder:
        """The loaded joint model."""
        with self._lock:
            if self._encoder is None:
                self._encoder = joint_tagger.JOINT_KINDS[self.kind].encoder(self.ref)
            return self._encoder

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), d]`` L2-normalised embeddings of ``texts`` (memoised per text list)."""
        key = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
        if key not in self._texts:
            emb = joint_tagger.embed_texts(self.encoder, texts)
            with self._lock:
                self._texts[key] = emb
                while len(self._texts) > TEXT_MEMO:
                    self._texts.popitem(last=False)
        return self._texts[key]


class EncoderScorer:
    """A :class:`JointScorer` over one modality of a joint model.

    The model is loaded on the first :meth:`similarity` call, so a run whose
    matrices are all cached never loads it.

    Args:
        model: the joint model (shared with its other modality's scorer).
        modality: what this scorer reads (one of the kind's modalities).
    """

    def __init__(self, model: JointModel, modality: Modality) -> None:
        self.model, self.modality = model, modality
        self.kind, self.ref = model.kind, model.ref
        self.name = model.name
        self.version = model.ref.fingerprint

    @property
    def encoder(self) -> joint_tagger.JointEncoder:
        """The loaded joint model."""
        return self.model.encoder

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), d]`` L2-normalised embeddings of ``texts``."""
        return self.model.text_embeddings(texts)

    def similarity(self, inputs: Sequence[np.ndarray | None], texts: Sequence[str]) -> np.ndarray:
        """``[len(inputs), len(texts)]`` cosines of each window's pooled embedding with each text."""
        out = np.zeros((len(inputs), len(texts)), np.float32)
        filled = [i for i, x in enumerate(inputs) if x is not None and len(x)]
        if not filled or not texts:
            return out
        text = self.text_embeddings(texts)
        for i in filled:
            emb = joint_tagger.embed_window(self.encoder, self.modality, inputs[i])
            pooled = emb.mean(axis=0)
            out[i] = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)) @ text.T
        return out


def joint_scorers(models: Sequence[str], env: ModelEnv, imagebind: str | None = None) -> tuple[EncoderScorer, ...]:
    """One scorer per joint model in ``models`` and modality it reads (nothing is loaded).

    ``imagebind`` is the checkpoint the bare name ``imagebind`` stands for.

    Raises:
        InputError: a reference is no local path (with hub access off) or not a CLIP / CLAP / ImageBind model.
        ModelError: a model folder has no readable config.
    """
    out = []
    for reference in models:
        kind, ref = joint_tagger.locate_joint(reference, env, role="concept joint", setting="concept_joint_models", imagebind=imagebind)
        model = JointModel(kind, ref)
        out += [EncoderScorer(model, m) for m in joint_tagger.JOINT_KINDS[kind].modalities]
    return tuple(out)


def joint_cache_key(video_sha256: str, windows: Sequence[Window], bank: ConceptBank, scorer: JointScorer, frames_per_window: int, max_side: int) -> str:
    """The cache key of one scorer's matrix for one video (what the matrix depends on, hashed)."""
    recipe = {
        "version": CACHE_VERSION,
        "video": video_sha256,
        "windows": [[w.index, w.start_s, w.end_s] for w in windows],
        "model": [scorer.name, scorer.version, scorer.modality],
        "frames": [frames_per_window, max_side] if scorer.modality == "sight" else [],
        "bank": bank.hash,
    }
    return "joint-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()[:40]


def joint_matrix(media: Media, windows: Sequence[Window], bank: ConceptBank, scorer: JointScorer, frames_per_window: int = 2, max_side: int = 640) -> np.ndarray:
    """``[T, C]`` similarities of each window's frames or audio with each concept (no cache).

    Raises:
        ValueError: the scorer returned a matrix of the wrong shape.
    """
    rows = []
    for i in range(0, len(windows), WINDOW_CHUNK):
        chunk = windows[i : i + WINDOW_CHUNK]
        inputs = [joint_tagger.window_input(media, scorer.modality, w, frames_per_window, max_side) for w in chunk]
        rows.append(np.asarray(scorer.similarity(inputs, bank.texts), dtype=np.float32))
    matrix = np.concatenate(rows) if rows else np.zeros((0, len(bank)), np.float32)
    if matrix.shape != (len(windows), len(bank)):
        raise ValueError(f"{scorer.name}: similarity returned shape {matrix.shape}, expected {(len(windows), len(bank))}")
    return matrix


def joint_evidence(
    timeline: Timeline,
    bank: ConceptBank,
    scorers: Sequence[JointScorer],
    config: JointConfig,
    *,
    media: Media | None = None,
    cache: ActivationCache | None = None,
) -> JointEvidence | None:
    """Every scorer's matrix for the timeline's video, cached.

    Args:
        timeline: the video's timeline (its windows and the file's hash).
        bank: the concept bank (columns).
        scorers: the joint scorers (from :func:`joint_scorers`).
        config: the blend weight and the frame sampling.
        media: the opened video; default: opened from ``timeline.video.path`` on the first cache miss.
        cache: where matrices are looked up and stored.

    Returns:
        ``None`` when there is no scorer, the weight is 0, or a matrix is not
        cached and the video file is gone or changed since the timeline was
        made (the activations are then text only; a warning is logged).
    """
    if not scorers or config.weight <= 0:
        return None
    shape = (len(timeline.windows), len(bank))
    parts = []
    for s in scorers:
        key = joint_cache_key(timeline.video.sha256, timeline.windows, bank, s, config.frames_per_window, config.frame_max_side)
        matrix = cache.get(key) if cache is not None else None
        if matrix is None or matrix.shape != shape:
            if media is None:
                media = _open(timeline)
            if media is None:
                return None
            matrix = joint_matrix(media, timeline.windows, bank, s, config.frames_per_window, config.frame_max_side)
            if cache is not None:
                cache.put(key, matrix)
        parts.append(JointPart(s.name, s.modality, matrix))
    return JointEvidence(tuple(parts), config.weight, bank.hash)


def _open(timeline: Timeline) -> Media | None:
    """The timeline's video, if the file is still there with the same content."""
    path = Path(timeline.video.path)
    if not path.is_file():
        log.warning("%s: video file not found; concept activations are text only", path)
        return None
    media = Media.open(path)
    if media.info.sha256 != timeline.video.sha256:
        log.warning("%s: the file changed since its timeline was made; concept activations are text only", path)
        return None
    return media
