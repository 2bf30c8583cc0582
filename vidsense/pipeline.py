"""The Pipeline: one object that owns the loaded models and answers every verb."""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from vidsense.agents.labels import LabelSet, load_labels
from vidsense.agents.reasoner import REASONERS, Reasoner
from vidsense.results import ClassificationResult
from vidsense.services.errors import InputError
from vidsense.services.perceiver import Perceiver
from vidsense.services.settings import Settings, load_settings
from vidsense.services.timeline import Timeline

LabelsArg = str | list[str] | tuple[str, ...] | LabelSet


def example_video() -> Path:
    """Path of the real example clip that ships with vidsense (a cyclist on a street, 10 s)."""
    return Path(str(resources.files("vidsense").joinpath("examples", "bikes.mp4")))


class Pipeline:
    """Perception + reasoning with models loaded once and reused.

    Args:
        profile: ``"embedded"`` (bundled models) or ``"full"``; ignored when
            ``settings`` is given.
        settings: a ready :class:`Settings`.
        **overrides: any :class:`Settings` field (``window_s=1.0``, ``llm_model=...``).

    Example:
        >>> import vidsense
        >>> pipe = vidsense.Pipeline()
        >>> result = pipe.classify(vidsense.example_video(), labels="ucf101")
        >>> result.label in vidsense.load_labels("ucf101").labels
        True
    """

    def __init__(self, profile: str | None = None, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else load_settings(profile=profile, **overrides)
        self.perceiver = Perceiver(self.settings)
        self._reasoners: dict[str, Reasoner] = {}

    def reasoner(self, name: str = "llm") -> Reasoner:
        """The reasoner ``name`` (``llm`` or ``embedding``), created once."""
        if name not in self._reasoners:
            try:
                factory = REASONERS[name]
            except KeyError:
                raise InputError(f"unknown reasoner {name!r}; known: {', '.join(REASONERS)}") from None
            self._reasoners[name] = factory(self.settings)
        return self._reasoners[name]

    def describe(self, video: str | os.PathLike[str], modalities: Iterable[str] | None = None) -> Timeline:
        """The timeline of ``video``: every modality as timed text."""
        return self.perceiver.describe(video, modalities)

    def classify(
        self,
        video: str | os.PathLike[str],
        labels: LabelsArg,
        *,
        top_k: int | None = None,
        modalities: Iterable[str] | None = None,
        reasoner: str = "llm",
    ) -> ClassificationResult:
        """Classify one video into one of ``labels``.

        Args:
            video: path of a video file.
            labels: a bundled label-set name, a label file, ``"a,b,c"``, or a list.
            top_k: how many labels to return (default ``settings.top_k``).
            modalities: limit what the reasoner reads (``sight``, ``speech``, ``sound``, ``text``).
            reasoner: ``llm`` (default) or ``embedding``.
        """
        labelset = load_labels(labels)
        mods = list(modalities) if modalities is not None else None
        r = self.reasoner(reasoner)
        t0 = time.perf_counter()
        timeline = self.perceiver.describe(video, mods)
        t1 = time.perf_counter()
        pred = r.classify(timeline, labelset, modalities=mods, top_k=top_k or self.settings.top_k)
        t2 = time.perf_counter()
        timings = {"perception": t1 - t0, "reasoning": t2 - t1, "total": t2 - t0}
        timings.update({f"model.{k}": v for k, v in timeline.extra.get("timings", {}).items()})
        timings.update({f"reasoner.{k}": v for k, v in pred.stats.items() if k.endswith("_s")})
        return ClassificationResult(
            video=str(video),
            label=pred.label,
            top_k=pred.top_k,
            labelset=labelset.name,
            reasoner=pred.reasoner,
            low_confidence=pred.low_confidence,
            timings=timings,
            notes=timeline.notes,
            justification=pred.justification,
            sha256=timeline.video.sha256,
            timeline=timeline,
            prediction=pred,
        )
