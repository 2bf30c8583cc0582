"""The answer explained by the model that gave it: the fused route's sources, classes and windows.

The fused route scores a label ``k`` as ``sum_s w_s log p_s(k)``; its vote for each
source (:class:`~vidsense.services.schema.SourceVote`) already says how far that
source pushed ``k`` above the average label. A transfer source's ``p_s(k)`` is
proportional to ``m_s(k) = sum_o score_o / T * transfer(class_o, k)`` over its
observations ``o`` (:class:`~vidsense.agents.evidence.TransferScorer`), so each
observation carries the share ``score_o / T * transfer(class_o, k) / m_s(k)`` of the
source's mass for ``k``. Splitting the source's push by those shares gives, exactly,
which recognised classes (``bicycle`` seen by the detector in windows 3-5) and which
windows made the answer, with no second model in between. Text sources (speech,
on-screen text, the whole timeline) push as a whole: they have no classes to split into.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vidsense.agents.evidence import TransferScorer
from vidsense.concepts.evidence_concepts import KIND_OF_SOURCE, observed_name
from vidsense.concepts.explanation import AnswerView, ConceptScore, SourceContribution
from vidsense.services.schema import LabelSet, Prediction
from vidsense.services.timeline import Timeline

TOP_CLASSES = 5


def answer_view(timeline: Timeline, labelset: LabelSet, prediction: Prediction, scorers: Sequence[TransferScorer], top: int = TOP_CLASSES) -> AnswerView | None:
    """The fused route's own decomposition of ``prediction.label`` (``None`` when the prediction has no source votes).

    Args:
        timeline: the timeline the prediction was made from.
        labelset: its label set.
        prediction: a fused or cascade prediction (its ``evidence`` votes).
        scorers: the fast route's transfer scorers (to split their push over classes and windows).
        top: classes listed per source.
    """
    if not prediction.evidence or prediction.label not in labelset.labels:
        return None
    k = labelset.index(prediction.label)
    by_name = {s.name: s for s in scorers}
    n = max(len(timeline.windows), 1)
    row_of = {w.index: i for i, w in enumerate(timeline.windows)}
    windows = np.zeros(len(timeline.windows))
    sources = []
    for vote in prediction.evidence:
        scorer = by_name.get(vote.source)
        concepts: list[ConceptScore] = []
        if scorer is not None and vote.contribution > 0:
            seen = timeline.only(scorer.modalities)
            obs = [o for o in seen.observations if o.kind in scorer.kinds and scorer.name_of(o.text)]
            if obs:
                classes = sorted({scorer.name_of(o.text) for o in obs})
                transfer = scorer.transfer(classes, labelset)[:, k]
                weight = dict(zip(classes, transfer))
                mass = np.array([o.score / n * weight[scorer.name_of(o.text)] for o in obs])
                total = float(mass.sum())
                if total > 0:
                    per_class: dict[str, float] = {}
                    for o, m in zip(obs, mass):
                        push = vote.contribution * float(m) / total
                        name = observed_name(vote.source, o.text)
                        per_class[name] = per_class.get(name, 0.0) + push
                        if o.window in row_of:
                            windows[row_of[o.window]] += push
                    best = sorted(per_class.items(), key=lambda kv: -kv[1])[:top]
                    concepts = [
                        ConceptScore(concept=-1, text=name, kind=KIND_OF_SOURCE.get(vote.source, "object"), value=v, share=v / vote.contribution, source=vote.source)
                        for name, v in best
                    ]
        sources.append(SourceContribution(source=vote.source, weight=vote.weight, contribution=vote.contribution, concepts=concepts))
    note = ""
    if prediction.route == "llm":
        note = "the LLM re-ranked the fused candidates: this is the fused evidence for its answer, not the LLM's reasoning (see the occlusion view)"
    return AnswerView(label=prediction.label, route=prediction.route or prediction.reasoner, sources=sources, windows=[round(float(v), 6) for v in windows], note=note)
