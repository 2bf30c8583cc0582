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

from vidsense.agents.scoring import make_prediction
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
        t0 = time.perf_counter()
        ranking = self.explainer.predict(timeline, labelset, modalities=modalities)
        idx = np.array([labelset.index(s.label) for s in ranking])
        probs = np.array([s.score for s in ranking])
        order = np.argsort(idx)
        stats = {"concepts_s": time.perf_counter() - t0}
        pred = make_prediction(self.name, labelset, idx[order], probs[order], top_k, timeline.only(modalities).is_empty, stats)
        return replace(pred, route=NAME, route_reason="the concept bottleneck answers")
