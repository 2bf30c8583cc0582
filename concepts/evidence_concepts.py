"""Evidence concepts: the perception models' own vocabulary as concepts of the bottleneck.

A text concept ("repeated kicking") is active in a window as far as the window's
sentence resembles it (a MiniLM cosine), which blurs what decided the answer: the
Kinetics recogniser saying *riding a bike* at 0.7 reaches the bottleneck only as
one phrase among many in a sentence. An evidence concept is one class a
perception model can name (the 400 Kinetics actions, the COCO objects, the ImageNet
classes, the AudioSet sounds, the pose gestures; :mod:`vidsense.agents.vocabulary`)
and its activation in a window is that model's score there, read straight from
the timeline's observations.

Its zero-shot class weights are the reasoning cascade's own transfer
(:class:`vidsense.agents.evidence.TransferScorer`: ConSE by label-name
similarity, an exact name passing straight through; on its own sharpness scale,
:data:`SUPPORT_SHARPNESS`), so the concept model weighs a recognised class toward
the labels the fast route carries it to, and each source is scaled by the fast
route's fusion weight for it. Supports below
:data:`MIN_SUPPORT` are dropped: a class that resembles no label (most ImageNet
dog breeds against UCF-101) stays in the bank, shown when it fires, but votes for nothing.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from vidsense.agents.evidence import SHARPNESS, TransferScorer, class_name
from vidsense.agents.vocabulary import vocabulary
from vidsense.concepts.bank import Concept, ConceptBank, make_concept, normalise_text
from vidsense.services.perception.motion.gestures import gesture_name
from vidsense.services.schema import LabelSet
from vidsense.services.timeline import Timeline

# The bank's kind of each source's concepts.
KIND_OF_SOURCE: dict[str, str] = {"action": "sub-action", "objects": "object", "scene": "scene", "sound": "sound", "gesture": "sub-action"}
# The transfer's sharpness for supports: the concept model's thresholds below (and its route's
# accuracy) were set on the prior's scale, 10. The fast route's own values (action 7.5, tags 15,
# chosen out of fold for fusion) cost the concept route 7 top-1 of the development set's 158 rows
# when its supports followed them (benchmarks/routes.py --routes concepts: 0.462 -> 0.418).
SUPPORT_SHARPNESS = SHARPNESS
# Transfer weight below which a class does not support a label: exp(10 * (cos - 1)) < 0.02
# is a cosine under 0.61, names that share a word at most ("playing cello" vs "PlayingDaf").
MIN_SUPPORT = 0.02
# At most this many labels per class (a generic class like "person" would support dozens).
MAX_SUPPORTS = 8
# How an evidence score becomes a concept value: softplus(SCALE * score) - log 2 is about the
# score itself for scores up to 1 (see :func:`vidsense.concepts.motif.zero_shot_model`).
SCORE_SCALE = 2.0


def observed_name(source: str, text: str) -> str:
    """The class an observation of ``source`` names, as its concept's text (``car x2`` -> ``car``)."""
    return normalise_text(gesture_name(text) if source == "gesture" else class_name(text))


def evidence_concepts(labelset: LabelSet, scorers: Iterable[TransferScorer]) -> tuple[Concept, ...]:
    """One concept per class of each scorer's vocabulary, supporting the labels its transfer reaches.

    Args:
        labelset: the label set the supports point into.
        scorers: the fast route's transfer scorers (their names pick the vocabularies,
            their ``transfer`` gives the weights; a scorer without a vocabulary is skipped).
    """
    out: list[Concept] = []
    seen: set[tuple[str, str]] = set()
    for scorer in scorers:
        try:
            names = vocabulary(scorer.name)
        except KeyError:
            continue
        weights = scorer.transfer([scorer.name_of(n) for n in names], labelset, SUPPORT_SHARPNESS)
        for name, row in zip(names, weights):
            text = normalise_text(name)
            if (scorer.name, text) in seen:
                continue
            seen.add((scorer.name, text))
            best = np.argsort(-row, kind="stable")[:MAX_SUPPORTS]
            supports = {labelset.labels[int(i)]: float(row[i]) for i in best if row[i] >= MIN_SUPPORT}
            out.append(make_concept(text, KIND_OF_SOURCE.get(scorer.name, "object"), supports, source=scorer.name))
    return tuple(out)


def with_evidence(bank: ConceptBank, concepts: Sequence[Concept]) -> ConceptBank:
    """``bank`` with ``concepts`` appended (text concepts first, so their columns keep their places)."""
    text = tuple(c for c in bank.concepts if not c.evidence)
    return ConceptBank(bank.label_set, bank.labels, text + tuple(concepts), bank.generator)


# Observation kinds and modalities each source reads (as the fast route's default scorers do).
READS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "action": (frozenset({"action"}), frozenset({"sight"})),
    "objects": (frozenset({"objects"}), frozenset({"sight"})),
    "scene": (frozenset({"scene"}), frozenset({"sight"})),
    "sound": (frozenset({"sound", "tags"}), frozenset({"sound"})),
    "gesture": (frozenset({"gesture"}), frozenset({"sight"})),
}


def evidence_matrix(timeline: Timeline, bank: ConceptBank) -> np.ndarray:
    """``[T, C]`` perception scores of the bank's evidence concepts per window (0 elsewhere, and in text columns).

    A class named twice in one window (two detections, two gesture phrases) keeps its highest score.
    """
    matrix = np.zeros((len(timeline.windows), len(bank)), dtype=np.float32)
    column = {(c.source, c.text): j for j, c in enumerate(bank.concepts) if c.evidence}
    if not column:
        return matrix
    row_of = {w.index: i for i, w in enumerate(timeline.windows)}
    for o in timeline.observations:
        if o.window not in row_of:
            continue
        for source, (kinds, mods) in READS.items():
            if o.kind in kinds and o.modality in mods:
                j = column.get((source, observed_name(source, o.text)))
                if j is not None:
                    i = row_of[o.window]
                    matrix[i, j] = max(matrix[i, j], float(o.score))
    return matrix
