"""Concept activations: how strongly each window shows each concept.

The default is text-to-text: each window's timeline text (the same rendering
the LLM reads, minus the time stamp and the confidence numbers, which only add
noise to a sentence embedding) and each concept text are embedded with the
bundled MiniLM, and the activation is their cosine similarity. A window with no
observations gets a row of zeros, so "no evidence" and "window removed" look the
same to the concept model.

When joint image-text or audio-text models are configured (CLIP, CLAP,
ImageBind), each scores the window's frames or audio against the concept texts
(:mod:`vidsense.concepts.joint`); the per-model matrices make a
:class:`JointEvidence`, whose mean is blended with the text activations.
:meth:`vidsense.concepts.explainer.ConceptExplainer.activations` is the one
entry point that applies the configuration.

Results are cached in memory and as ``.npz`` under
``<home>/cache/concepts/``: text matrices keyed on the timeline's content hash,
the bank hash, the encoder and the modality restriction; joint matrices on the
video file's hash, the windows, the model and the frame sampling.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from vidsense.agents.embeddings import TextEncoder
from vidsense.concepts.bank import ConceptBank
from vidsense.concepts.evidence_concepts import evidence_matrix
from vidsense.services.timeline import MODALITIES, Timeline, Window, render_window

_STAMP = re.compile(r"^\[[^\]]*\]\s*")
_SCORE = re.compile(r"\s\d(?:\.\d+)?(?=,|;|$)")


@dataclass(frozen=True, eq=False)
class Activations:
    """A ``[windows x concepts]`` activation matrix and what it was computed from.

    Attributes:
        matrix: float32 ``[T, C]`` similarities (rows of zeros for empty windows).
        windows: the timeline's windows (row order).
        concepts: concept texts (column order).
        bank_hash: :attr:`ConceptBank.hash` of the bank.
        encoder: name of the model that produced the similarities.
        modalities: the modalities the timeline was restricted to (``None``: all).
        texts: the per-window text that was embedded ('' for empty windows).
        evidence: boolean ``[C]``, True for evidence concepts (perception scores, not
            cosines; a joint model's blend leaves them as they are). ``None``: none.
    """

    matrix: np.ndarray
    windows: tuple[Window, ...]
    concepts: tuple[str, ...]
    bank_hash: str
    encoder: str
    modalities: tuple[str, ...] | None = None
    texts: tuple[str, ...] = ()
    evidence: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))


def window_texts(timeline: Timeline, modalities: Iterable[str] | None = None) -> list[str]:
    """One text per window: its rendered observations without time stamp and scores ('' when empty)."""
    tl = timeline.only(modalities)
    out = []
    for w in timeline.windows:
        line = render_window(w, tl.for_window(w.index))
        out.append(_SCORE.sub("", _STAMP.sub("", line)).strip())
    return out


class ActivationCache:
    """Memory + disk cache of activation matrices.

    Args:
        root: folder for ``.npz`` files (``None``: memory only).
        memory: how many matrices to keep in memory.
    """

    def __init__(self, root: Path | None, memory: int = 64) -> None:
        self.root = Path(root) if root is not None else None
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = memory

    def get(self, key: str) -> np.ndarray | None:
        if key in self._mem:
            self._mem.move_to_end(key)
            return self._mem[key]
        if self.root is not None:
            path = self.root / f"{key}.npz"
            if path.is_file():
                try:
                    with np.load(path) as data:
                        matrix = data["matrix"].astype(np.float32)
                except (OSError, ValueError, KeyError):
                    return None  # a damaged entry is recomputed and overwritten
                self._remember(key, matrix)
                return matrix
        return None

    def put(self, key: str, matrix: np.ndarray, *, disk: bool = True) -> None:
        """Keep ``matrix`` in memory and, with ``disk`` and a root, as ``<root>/<key>.npz``."""
        self._remember(key, matrix)
        if disk and self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f"{key}.tmp.npz"
            np.savez_compressed(tmp, matrix=matrix)
            tmp.replace(self.root / f"{key}.npz")

    def _remember(self, key: str, matrix: np.ndarray) -> None:
        self._mem[key] = matrix
        self._mem.move_to_end(key)
        while len(self._mem) > self._size:
            self._mem.popitem(last=False)


def timeline_sha(timeline: Timeline) -> str:
    """SHA-256 of the timeline's JSON (any change of observations changes it)."""
    return hashlib.sha256(timeline.to_json(sort_keys=True).encode("utf-8")).hexdigest()


def cache_key(timeline: Timeline, bank: ConceptBank, encoder: str, modalities: Iterable[str] | None) -> str:
    """The cache key of one activation matrix."""
    mods = "all" if modalities is None else ",".join(sorted(modalities))
    raw = f"{timeline_sha(timeline)}|{bank.hash}|{encoder}|{mods}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def concept_activations(
    timeline: Timeline,
    bank: ConceptBank,
    encoder: TextEncoder,
    modalities: Iterable[str] | None = None,
    cache: ActivationCache | None = None,
) -> Activations:
    """Cosine similarity of every window's text with every concept.

    Args:
        timeline: the video's timeline.
        bank: the concept bank (columns).
        encoder: sentence encoder.
        modalities: restrict the window texts to these modalities (``None``: all).
        cache: where to look up / store the matrix.
    """
    mods = None if modalities is None else tuple(sorted(set(modalities)))
    texts = window_texts(timeline, mods)
    key = cache_key(timeline, bank, encoder.name, mods)
    matrix = cache.get(key) if cache is not None else None
    if matrix is None or matrix.shape != (len(texts), len(bank)):
        text_cols = np.flatnonzero(~bank.evidence_columns)
        # Evidence concepts read the perception scores of the same restricted timeline.
        matrix = evidence_matrix(timeline.only(mods), bank)
        filled = [i for i, t in enumerate(texts) if t]
        if filled and len(text_cols):
            matrix[np.ix_(filled, text_cols)] = encoder.encode([texts[i] for i in filled]) @ concept_embeddings(bank, encoder, cache).T
        if cache is not None:
            cache.put(key, matrix)
    return Activations(matrix, timeline.windows, tuple(bank.texts), bank.hash, encoder.name, mods, tuple(texts), bank.evidence_columns)


def concept_embeddings(bank: ConceptBank, encoder: TextEncoder, cache: ActivationCache | None = None) -> np.ndarray:
    """``[C_text, d]`` embeddings of the bank's text concepts, in column order (kept in ``cache``, per encoder and bank).

    Evidence concepts are not embedded: their activation is a perception score.
    """
    texts = [c.text for c in bank.concepts if not c.evidence]
    key = "concepts-" + hashlib.sha256(f"{encoder.name}|{bank.hash}".encode("utf-8")).hexdigest()[:40]
    emb = cache.get(key) if cache is not None else None
    if emb is None or emb.shape[0] != len(texts):
        emb = encoder.encode(texts)
        if cache is not None:
            # Memory only: the encoder is at hand whenever this is needed, and re-embedding a bank takes a second.
            cache.put(key, emb, disk=False)
    return emb


def activations_by_modality(
    timeline: Timeline,
    bank: ConceptBank,
    encoder: TextEncoder,
    mode: Literal["only", "without"] = "without",
    cache: ActivationCache | None = None,
    joint: "JointEvidence | None" = None,
) -> dict[str, Activations]:
    """Activations per present modality, from the timeline rendered restricted to it.

    Args:
        mode: ``only`` renders each modality alone (what that modality says by
            itself); ``without`` renders everything but it (the counterfactual
            used for modality ablation and the drop-modality intervention).
        joint: joint-model evidence to blend in; a modality left out loses its
            joint part too (dropping ``sight`` also drops CLIP's contribution),
            and a modality only a joint model sees is a group of its own.
    """
    seen = set(timeline.modalities) | set(joint.present if joint is not None else ())
    present = tuple(m for m in MODALITIES if m in seen)
    out = {}
    for m in present:
        keep = (m,) if mode == "only" else tuple(x for x in present if x != m)
        text = concept_activations(timeline, bank, encoder, keep, cache)
        out[m] = text if joint is None else joint.apply(text, keep)
    return out


# ---------------------------------------------------------------------------
# Joint image-text / audio-text evidence (the scorers live in vidsense.concepts.joint)


@dataclass(frozen=True, eq=False)
class JointPart:
    """One joint scorer's ``[T, C]`` similarities for a video."""

    name: str
    modality: str
    matrix: np.ndarray


@dataclass(frozen=True, eq=False)
class JointEvidence:
    """The joint models' activations of one video, and how much they weigh against the text.

    The joint matrix is the mean over :attr:`parts`; a part whose modality is
    left out (:meth:`only`, or ``keep`` in :meth:`matrix`) contributes zeros but
    still counts in the mean, so leaving ``sight`` out removes exactly CLIP's
    share and nothing else.

    Attributes:
        parts: one per (model, modality it reads).
        weight: ``settings.concept_joint_weight``.
        bank_hash: the bank the columns belong to.
        modalities: the modalities kept (``None``: all).
    """

    parts: tuple[JointPart, ...]
    weight: float
    bank_hash: str
    modalities: tuple[str, ...] | None = None

    @property
    def encoder(self) -> str:
        """The joint models' names, joined by ``+``."""
        return "+".join(dict.fromkeys(p.name for p in self.parts))

    @property
    def present(self) -> tuple[str, ...]:
        """The kept modalities some part reads, in :data:`MODALITIES` order."""
        seen = {p.modality for p in self.parts if self.modalities is None or p.modality in self.modalities}
        return tuple(m for m in MODALITIES if m in seen)

    def only(self, modalities: Iterable[str] | None) -> "JointEvidence":
        """The evidence restricted to ``modalities`` (``None``: unchanged)."""
        if modalities is None:
            return self
        kept = set(modalities) if self.modalities is None else set(modalities) & set(self.modalities)
        return replace(self, modalities=tuple(sorted(kept)))

    def matrix(self, keep: Iterable[str] | None = None) -> np.ndarray:
        """``[T, C]`` mean over the parts, with the parts outside ``keep`` (and :attr:`modalities`) zeroed."""
        kept = self.only(keep)
        total = np.zeros_like(self.parts[0].matrix)
        for p in self.parts:
            if kept.modalities is None or p.modality in kept.modalities:
                total += p.matrix
        return (total / len(self.parts)).astype(np.float32)

    def apply(self, text: Activations, keep: Iterable[str] | None = None) -> Activations:
        """``text`` blended with the joint matrix restricted to ``keep``."""
        if text.bank_hash != self.bank_hash:
            raise ValueError("joint evidence and text activations use different concept banks")
        joint = Activations(self.matrix(keep), text.windows, text.concepts, self.bank_hash, self.encoder, text.modalities)
        return blend(text, joint, self.weight)


def blend(text: Activations, joint: Activations, joint_weight: float = 0.5) -> Activations:
    """Weighted mean of text and joint activations (same windows and bank); the encoder names both."""
    if text.bank_hash != joint.bank_hash or text.shape != joint.shape:
        raise ValueError("blend needs activations of the same windows and concept bank")
    matrix = (1.0 - joint_weight) * text.matrix + joint_weight * joint.matrix
    if text.evidence is not None:
        # A perception score is not a similarity: it stays as the model gave it.
        matrix[:, text.evidence] = text.matrix[:, text.evidence]
    return replace(text, matrix=matrix.astype(np.float32), encoder=f"{text.encoder}+{joint.encoder}")
