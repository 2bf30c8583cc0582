"""Candidate shortlist: keep the labels whose description is nearest the timeline.

Large label sets (Kinetics-700, SSv2) do not fit a prompt and cost one LLM
score each, so the labels are first ranked by sentence-embedding similarity
between the timeline text and each label's description, and only the top N go
to the LLM. The same ranking is the embedding-only reasoner (zsarcap-style).
"""

from __future__ import annotations

import numpy as np

from vidsense.agents.labels import LabelSet
from vidsense.services import embeddings

# Prompted label texts embed much closer to timeline text than bare names do.
LABEL_TEMPLATE = "a video of a person {label}"


def label_texts(labelset: LabelSet, descriptions: dict[str, str] | None = None) -> list[str]:
    """The text embedded for each label: its description when known, else the template."""
    out = []
    for lab, read in zip(labelset.labels, labelset.readable):
        desc = (descriptions or {}).get(lab)
        out.append(f"{LABEL_TEMPLATE.format(label=read)}. {desc}" if desc else LABEL_TEMPLATE.format(label=read))
    return out


def similarities(settings, labelset: LabelSet, timeline_text: str, descriptions: dict[str, str] | None = None) -> np.ndarray:
    """Cosine similarity between the timeline and every label, shape ``[len(labelset)]``."""
    texts = label_texts(labelset, descriptions)
    vecs = embeddings.embed(settings, [timeline_text or "nothing observed", *texts])
    return vecs[1:] @ vecs[0]


def shortlist(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` most similar labels, best first."""
    n = min(n, len(sims))
    return np.argsort(-sims, kind="stable")[:n]
