"""Results the SDK hands back: frozen, JSON-ready, and flat enough for a DataFrame."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vidsense.services.schema import LabelScore, LabelSet, Prediction, SourceVote
from vidsense.services.timeline import Timeline


def failure_warning(failure: str) -> str:
    """The warning for a model that failed (``"name: cause"``): what is lost and where the fix is."""
    name, _, cause = failure.partition(": ")
    return f"model {name} failed: {cause}; the answer was made without it (run 'vidsense doctor' for the fix)"


@dataclass(frozen=True)
class ClassificationResult:
    """The classification of one video.

    Attributes:
        video: the path as given.
        label: the predicted label, spelled exactly as in the label set.
        top_k: best labels with probabilities, best first.
        labelset: name of the label set.
        reasoner: ``llm`` or ``embedding``.
        low_confidence: nothing was observed, or the top probability is low.
        timings: seconds per stage (``decode+perception``, ``reasoning``, ``total``, per model).
        notes: facts about the timeline (no audio track, Kinetics-trained recogniser used, ...).
        justification: the LLM's short reason (only with ``explain_text``).
        sha256: content hash of the video file.
        timeline: the timeline the decision was made from.
        prediction: the reasoner's full output (all scored candidates, token counts).
        labels: the label set classified into.
        route: which route answered (``fused`` or ``llm`` for the cascade; the reasoner's name otherwise).
        route_reason: why that route ran (the budget's choice, the cascade's margin).
        evidence: each evidence source's vote (fused and cascade reasoners).
        failures: configured perception models that could not load or run
            (``"visual-tags: cannot load (...)"``): the answer was made without them.
    """

    video: str
    label: str
    top_k: tuple[LabelScore, ...]
    labelset: str
    reasoner: str
    low_confidence: bool
    timings: dict[str, float]
    notes: tuple[str, ...] = ()
    justification: str = ""
    sha256: str = ""
    timeline: Timeline | None = field(default=None, compare=False, repr=False)
    prediction: Prediction | None = field(default=None, compare=False, repr=False)
    labels: LabelSet | None = field(default=None, compare=False, repr=False)
    route: str = ""
    route_reason: str = ""
    evidence: tuple[SourceVote, ...] = ()
    failures: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What to know before trusting the label: models that failed (the product is degraded),
        then the prediction's warnings (e.g. only words in the video support it)."""
        own = self.prediction.warnings if self.prediction is not None else ()
        return tuple(failure_warning(f) for f in self.failures) + own

    def to_dict(self, with_timeline: bool = False) -> dict[str, Any]:
        """JSON-ready dict: ``{"video", "label", "top_k": [{"label", "score"}], "labelset", "timings", ...}``."""
        out: dict[str, Any] = {
            "video": self.video,
            "label": self.label,
            "top_k": [{"label": s.label, "score": s.score} for s in self.top_k],
            "labelset": self.labelset,
            "reasoner": self.reasoner,
            "low_confidence": self.low_confidence,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "sha256": self.sha256,
        }
        if self.justification:
            out["justification"] = self.justification
        if self.route:
            out["route"], out["route_reason"] = self.route, self.route_reason
        if self.evidence:
            out["evidence"] = [asdict(v) for v in self.evidence]
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if with_timeline and self.timeline is not None:
            out["timeline"] = self.timeline.to_dict()
        return out

    def votes_text(self, sources: int = 6) -> str:
        """Which evidence voted for what, strongest push first ('' without fused evidence).

        One line per source: ``gesture (weight 0.60, 50% of windows): wave 0.81, clap 0.07 -> +2.31``,
        the push being how far it raised the predicted label above the average label.
        """
        if not self.evidence:
            return ""
        lines = [f"Which evidence voted for what (route {self.route or self.reasoner}{': ' + self.route_reason if self.route_reason else ''}):"]
        for v in sorted(self.evidence, key=lambda v: -abs(v.contribution))[:sources]:
            top = ", ".join(f"{s.label} {s.score:.2f}" for s in v.top[:3])
            lines.append(f"  {v.source} (weight {v.weight:.2f}, {v.coverage:.0%} of windows): {top} -> {v.contribution:+.2f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ExplanationResult:
    """A classification and its explanation.

    Attributes:
        video: the path as given.
        classification: the LLM's (or embedding reasoner's) prediction.
        explanation: the concept-bottleneck explanation
            (:class:`vidsense.concepts.explanation.Explanation`; sections ``global``,
            ``local``, ``temporal``, ``attributions``, ``occlusion``, ``interventions``).
        timings: seconds per stage, ``explanation`` included.
    """

    video: str
    classification: ClassificationResult
    explanation: Any
    timings: dict[str, float]

    @property
    def label(self) -> str:
        return self.classification.label

    def to_dict(self) -> dict[str, Any]:
        """``{"video", "classification": {...}, "explanation": {...}, "timings"}``."""
        return {
            "video": self.video,
            "classification": self.classification.to_dict(),
            "explanation": self.explanation.to_dict(),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def to_text(self, max_concepts: int = 6) -> str:
        """What ``vidsense explain --format text`` prints: the label, then the explanation's views."""
        from vidsense.concepts.render import render_text

        c = self.classification
        head = f"{c.video}: {c.label} ({c.top_k[0].score:.2f})  [{c.labelset}, {c.reasoner}]"
        head += "".join(f"\nwarning: {w}" for w in c.warnings)
        votes = c.votes_text()
        return head + "\n" + (votes + "\n" if votes else "") + render_text(self.explanation, max_concepts=max_concepts)
