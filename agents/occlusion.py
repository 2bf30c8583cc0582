"""LLM occlusion: re-score a timeline with each window, then each modality, removed.

This explains the LLM (or whatever scorer the caller passes), not the concept
model: its probability of its own label when part of the evidence is taken
away. :func:`vidsense.concepts.views.explain` records the result in the
``occlusion`` section of an explanation.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from vidsense.services.timeline import Timeline

ScoreFn = Callable[["Timeline"], Mapping[str, float]]


class _Frozen(BaseModel):
    # The same base as vidsense.concepts.explanation's sections (agents cannot import concepts).
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class OcclusionScore(_Frozen):
    """The LLM's probability of its label with one window or modality removed."""

    group: str
    probability: float
    drop: float = Field(description="base probability - occluded probability")
    label_after: str = Field(description="the LLM's top label after occlusion")


class Occlusion(_Frozen):
    """Occlusion against the scorer the caller passed (the LLM)."""

    label: str
    base_probability: float
    windows: list[OcclusionScore]
    modalities: list[OcclusionScore]
    calls: int
    seconds: float
    scorer: str = ""
    skipped_windows: list[int] = Field(default_factory=list, description="windows with no observations (nothing to remove)")


def occlusion(timeline: "Timeline", score_fn: ScoreFn, label: str | None = None, scorer: str = "") -> Occlusion:
    """Re-score the timeline with each window, then each modality, removed.

    Args:
        timeline: the video's timeline.
        score_fn: ``timeline -> {label: probability}``, e.g. the LLM scorer.
        label: the label whose probability to track (default: the top label of the full timeline).
        scorer: recorded name of the scorer.
    """
    start = time.perf_counter()
    base_scores = dict(score_fn(timeline))
    calls = 1
    if not base_scores:
        raise ValueError("score_fn returned no scores")
    label = label or max(base_scores, key=lambda lab: base_scores[lab])
    base = float(base_scores.get(label, 0.0))

    def score(tl: "Timeline", group: str) -> OcclusionScore:
        nonlocal calls
        s = dict(score_fn(tl))
        calls += 1
        p = float(s.get(label, 0.0))
        top = max(s, key=lambda lab: s[lab]) if s else ""
        return OcclusionScore(group=group, probability=p, drop=base - p, label_after=top)

    observed = {o.window for o in timeline.observations}
    windows = [score(timeline.without_windows([w.index]), str(w.index)) for w in timeline.windows if w.index in observed]
    present = timeline.modalities
    modalities = [score(timeline.only([m for m in present if m != mod]), mod) for mod in present]
    return Occlusion(
        label=label,
        base_probability=base,
        windows=windows,
        modalities=modalities,
        calls=calls,
        seconds=round(time.perf_counter() - start, 4),
        scorer=scorer,
        skipped_windows=[w.index for w in timeline.windows if w.index not in observed],
    )
