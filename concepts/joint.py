"""Concept activations from joint image-text / audio-text models (CLIP, CLAP, ImageBind).

Each model in ``settings.concept_joint_models`` becomes one
:class:`EncoderScorer` per modality it reads (CLIP: ``sight``, CLAP: ``sound``,
ImageBind: both). A scorer embeds a window's frames (mean of the L2-normalised
frame embeddings, renormalised) or its audio, and takes the cosine with each
concept text; windows with nothing to read (no video stream, no audio, a sliver
of audio) get rows of zeros, as empty windows do in the text path.

Encoders load through :mod:`vidsense.services.joint_tagger`, the code the
CLIP / CLAP / ImageBind taggers use, once per process and only on a cache miss.
Matrices are cached like perception results: keyed on the video file's
SHA-256, the window bounds, the model and its weights' fingerprint, the frame
sampling and the bank.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from vidsense.concepts.activations import ActivationCache, JointEvidence, JointPart, JointScorer
from vidsense.concepts.bank import ConceptBank
from vidsense.services import joint_tagger
from vidsense.services.pretrained import Pretrained
from vidsense.services.timeline import Modality, Timeline, Window

if TYPE_CHECKING:
    from vidsense.services.settings import Settings
    from vidsense.services.video import Media

log = logging.getLogger(__name__)

# Bump when the key recipe or the scoring changes: old matrices then never match.
CACHE_VERSION = 1
# Windows decoded and scored at once: bounds the frames held in memory on long videos.
WINDOW_CHUNK = 16


@lru_cache(maxsize=4)
def _encoder(kind: str, ref: Pretrained) -> joint_tagger.JointEncoder:
    return joint_tagger.JOINT_KINDS[kind].encoder(ref)


_TEXT_EMB: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()


class EncoderScorer:
    """A :class:`~vidsense.concepts.activations.JointScorer` over one modality of a joint model.

    The model is loaded on the first :meth:`similarity` call and shared per
    process, so a run whose matrices are all cached never loads it.

    Args:
        kind: a key of :data:`~vidsense.services.joint_tagger.JOINT_KINDS`.
        ref: where the model is (from :func:`~vidsense.services.joint_tagger.locate_joint`).
        modality: what this scorer reads (one of the kind's modalities).
    """

    def __init__(self, kind: str, ref: Pretrained, modality: Modality) -> None:
        self.kind, self.ref, self.modality = kind, ref, modality
        self.name = f"{kind}:{ref.path}"
        self.version = ref.fingerprint

    @property
    def encoder(self) -> joint_tagger.JointEncoder:
        """The loaded joint model."""
        return _encoder(self.kind, self.ref)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), d]`` L2-normalised embeddings of ``texts`` (memoised per model and texts)."""
        key = (self.name, self.version, hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest())
        if key not in _TEXT_EMB:
            _TEXT_EMB[key] = joint_tagger.embed_texts(self.encoder, texts)
            while len(_TEXT_EMB) > 8:
                _TEXT_EMB.popitem(last=False)
        return _TEXT_EMB[key]

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


def joint_scorers(settings: "Settings") -> tuple[EncoderScorer, ...]:
    """One scorer per configured joint model and modality it reads (nothing is loaded).

    Raises:
        InputError: a reference is no local path (with hub access off) or not a CLIP / CLAP / ImageBind model.
        ModelError: a model folder has no readable config.
    """
    out = []
    for reference in settings.concept_joint_models:
        kind, ref = joint_tagger.locate_joint(reference, settings, role="concept joint", setting="concept_joint_models")
        out += [EncoderScorer(kind, ref, m) for m in joint_tagger.JOINT_KINDS[kind].modalities]
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


def joint_matrix(media: "Media", windows: Sequence[Window], bank: ConceptBank, scorer: JointScorer, frames_per_window: int = 2, max_side: int = 640) -> np.ndarray:
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
    settings: "Settings",
    timeline: Timeline,
    bank: ConceptBank,
    *,
    media: "Media | None" = None,
    cache: ActivationCache | None = None,
    scorers: Sequence[JointScorer] | None = None,
) -> JointEvidence | None:
    """Every configured joint model's matrix for the timeline's video, cached.

    Args:
        settings: reads ``concept_joint_models``, ``concept_joint_weight``,
            ``frames_per_window`` and ``frame_max_side``.
        timeline: the video's timeline (its windows and the file's hash).
        bank: the concept bank (columns).
        media: the opened video; default: opened from ``timeline.video.path`` on the first cache miss.
        cache: where matrices are looked up and stored.
        scorers: the scorers (default: :func:`joint_scorers` of ``settings``).

    Returns:
        ``None`` when no joint model is configured, the weight is 0, or a matrix
        is not cached and the video file is gone or changed since the timeline
        was made (the activations are then text only; a warning is logged).

    Raises:
        InputError: a configured joint model cannot be found.
    """
    if not settings.concept_joint_models or settings.concept_joint_weight <= 0:
        return None
    scorers = joint_scorers(settings) if scorers is None else scorers
    if not scorers:
        return None
    shape = (len(timeline.windows), len(bank))
    parts = []
    for s in scorers:
        key = joint_cache_key(timeline.video.sha256, timeline.windows, bank, s, settings.frames_per_window, settings.frame_max_side)
        matrix = cache.get(key) if cache is not None else None
        if matrix is None or matrix.shape != shape:
            if media is None:
                media = _open(timeline)
            if media is None:
                return None
            matrix = joint_matrix(media, timeline.windows, bank, s, settings.frames_per_window, settings.frame_max_side)
            if cache is not None:
                cache.put(key, matrix)
        parts.append(JointPart(s.name, s.modality, matrix))
    return JointEvidence(tuple(parts), settings.concept_joint_weight, bank.hash)


def _open(timeline: Timeline) -> "Media | None":
    """The timeline's video, if the file is still there with the same content."""
    from vidsense.services.video import Media

    path = Path(timeline.video.path)
    if not path.is_file():
        log.warning("%s: video file not found; concept activations are text only", path)
        return None
    media = Media.open(path)
    if media.info.sha256 != timeline.video.sha256:
        log.warning("%s: the file changed since its timeline was made; concept activations are text only", path)
        return None
    return media
