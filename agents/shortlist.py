"""Candidate shortlist: keep the labels whose description is nearest the timeline.

Large label sets (Kinetics-700, SSv2) do not fit a prompt and cost one LLM
score each, so the labels are first ranked by sentence-embedding similarity
between the timeline text and each label's description, and only the top N go
to the LLM. The same ranking is the embedding-only reasoner (zsarcap-style).
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from vidsense.agents.prompts import redact_instructions
from vidsense.services import embeddings
from vidsense.services.schema import LabelSet

# Prompted label texts embed much closer to timeline text than bare names do.
LABEL_TEMPLATE = "a video of a person {label}"

# Label embeddings keyed by (embedding model, hash of the label texts): a
# 700-label set costs seconds to embed, and it is the same for every video.
_MATRICES: dict[tuple[str, str], np.ndarray] = {}
_LOCK = threading.Lock()


def label_texts(labelset: LabelSet, descriptions: dict[str, str] | None = None) -> list[str]:
    """The text embedded for each label: template plus its description when known."""
    out = []
    for lab, read in zip(labelset.labels, labelset.readable):
        desc = (descriptions or {}).get(lab)
        out.append(f"{LABEL_TEMPLATE.format(label=read)}. {desc}" if desc else LABEL_TEMPLATE.format(label=read))
    return out


def label_matrix(settings, labelset: LabelSet, descriptions: dict[str, str] | None = None) -> np.ndarray:
    """Normalised embeddings of every label text, shape ``[len(labelset), dim]`` (cached)."""
    texts = label_texts(labelset, descriptions)
    key = (str(settings.embedding_model), hashlib.sha256("\n".join(texts).encode()).hexdigest())
    with _LOCK:
        cached = _MATRICES.get(key)
    if cached is None:
        cached = embeddings.embed(settings, texts)
        with _LOCK:
            _MATRICES[key] = cached
    return cached


def similarities(settings, labelset: LabelSet, timeline_text: str, descriptions: dict[str, str] | None = None) -> np.ndarray:
    """Cosine similarity between the timeline and every label, shape ``[len(labelset)]``."""
    # The same redaction as the prompt's: an instruction spoken in the video must not pull the shortlist.
    query = embeddings.embed(settings, [redact_instructions(timeline_text) or "nothing observed"])[0]
    return label_matrix(settings, labelset, descriptions) @ query


def shortlist(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` most similar labels, best first."""
    n = min(n, len(sims))
    return np.argsort(-sims, kind="stable")[:n]
