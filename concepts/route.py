"""The concept bottleneck as a route: the MoTIF model itself answers, so its explanation is of the model that answered.

Offered as ``--reasoner concepts`` (the SDK adds it to the reasoning room). It is not the
default: on the labelled eval set its top-1 is below the fused route's (the closing note of
issue #13 and ``benchmarks/routes.py`` have the numbers), and the fused route's answer is
explained exactly by its own decomposition (:mod:`vidsense.concepts.answer_view`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable

import numpy as np

from vidsense.agents.prompts import split_modalities
from vidsense.agents.scoring import ONLY_WORDS, bounded_words, make_prediction, words_shift
from vidsense.services.schema import LabelSet, Prediction
from vidsense.services.timeline import Timeline

if TYPE_CHECKING:
    from vidsense.concepts.explainer import ConceptExplainer

NAME = "concepts"


class ConceptRoute:
    """Classify with the concept model of the label set (zero-shot or fitted).

    Args:
        explainer: the concept room (it holds the banks, the models and the activation cache).
    """

    name = NAME

    def __init__(self, explainer: "ConceptExplainer") -> None:
        self.explainer = explainer

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        """The concept model's ranking of what was seen and heard; speech and on-screen text move it by at most
        :data:`~vidsense.agents.scoring.WORDS_NATS`, as on the other routes (the text concepts read every
        window's sentence, words included, so unbounded they could name a label into the answer)."""
        t0 = time.perf_counter()
        seen, said = split_modalities(modalities)
        said_present = bool(said) and not timeline.only(said).is_empty
        warnings: tuple[str, ...] = ()
        stats: dict[str, float] = {}
        if said_present and timeline.only(seen).is_empty:
            logp, warnings = self._logp(timeline, labelset, [*seen, *said]), (ONLY_WORDS,)
        else:
            logp = self._logp(timeline, labelset, seen)
            if said_present:
                quoted = self._logp(timeline, labelset, [*seen, *said])
                stats["words_shift"] = float(np.abs(words_shift(logp, quoted)).max())
                logp = bounded_words(logp, quoted)
        stats["concepts_s"] = time.perf_counter() - t0
        probs = np.exp(logp - np.logaddexp.reduce(logp))
        pred = make_prediction(self.name, labelset, np.arange(len(labelset)), probs, top_k, timeline.only(modalities).is_empty, stats)
        return replace(pred, route=NAME, route_reason="the concept bottleneck answers", warnings=warnings)

    def _logp(self, timeline: Timeline, labelset: LabelSet, modalities: list[str]) -> np.ndarray:
        """Every label's log-probability under the concept model, in label-set order."""
        out = np.empty(len(labelset))
        for s in self.explainer.predict(timeline, labelset, modalities=modalities):
            out[labelset.index(s.label)] = np.log(max(s.score, 1e-30))
        return out
