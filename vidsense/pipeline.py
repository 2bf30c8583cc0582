"""The Pipeline: resolves the settings once and wires the three rooms together.

Each room owns its models and is built from explicit, typed arguments:
:class:`~vidsense.services.perception.perceiver.Perceiver` (video -> timeline),
:class:`~vidsense.agents.reasoner.Reasoner` (timeline -> label; it holds the
LLM and the sentence encoder) and
:class:`~vidsense.concepts.explainer.ConceptExplainer` (label -> explanation;
it reads with the Reasoner's encoder). The settings are read once, here: each
room's ``Config.from_settings`` picks its part, and the rooms never see the
settings again. Every SDK verb is a method.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from vidsense.agents.evaluate import EvalReport, compare_variants, evaluate
from vidsense.agents.labels import load_labels
from vidsense.agents.reasoner import Reasoner, ReasonerConfig
from vidsense.agents.routing import choose, load_table
from vidsense.batch import BatchError
from vidsense.engines import LocalEngine, SharedPipeline
from vidsense.results import ClassificationResult, ExplanationResult
from vidsense.services.errors import InputError, VidsenseError
from vidsense.services.perception import PerceptionConfig
from vidsense.services.perception.cache import PerceptionCache
from vidsense.services.perception.perceiver import Perceiver
from vidsense.services.progress import Counts, Stages, counted
from vidsense.services.schema import LabelSet, Prediction, read_manifest
from vidsense.services.settings import Settings, load_settings
from vidsense.services.timeline import Timeline

if TYPE_CHECKING:
    from vidsense.agents.scoring import ReasoningMethod
    from vidsense.concepts.explainer import ConceptExplainer, ConceptModel, FitReport
    from vidsense.concepts.explanation import InterventionResult, InterventionSpec
    from vidsense.engines import BatchEngine

LabelsArg = str | list[str] | tuple[str, ...] | LabelSet
# Told the stage a call is in (``perceiving``, ``reasoning``, ``explaining``, then ``done``) and
# the fraction of the whole call done, from the thread that runs it (a server streams these).
Progress = Stages


def _part(progress: Progress | None, start: float, end: float) -> Progress | None:
    """``progress`` for a step that is ``[start, end]`` of the whole call; the step's ``done`` is not the call's."""
    if progress is None:
        return None

    def report(stage: str, fraction: float) -> None:
        if stage != "done":
            progress(stage, start + (end - start) * fraction)

    return report


def example_video() -> Path:
    """Path of the real example clip that ships with vidsense (a cyclist on a street, 10 s)."""
    return Path(str(resources.files("vidsense").joinpath("examples", "bikes.mp4")))


class Pipeline:
    """Perception + reasoning + explanation, with models loaded once and reused.

    Args:
        profile: ``"embedded"`` (bundled models) or ``"full"``; ignored when
            ``settings`` is given.
        settings: a ready :class:`Settings`.
        **overrides: any :class:`Settings` field (``window_s=1.0``, ``llm_model=...``).

    Attributes:
        perceiver: the perception room (video -> timeline).
        reasoner: the reasoning room (timeline -> prediction).
        concepts: the concept room (prediction -> explanation), built on first use.

    Example:
        >>> import vidsense
        >>> with vidsense.Pipeline() as pipe:  # closes its models at the end of the block
        ...     result = pipe.classify(vidsense.example_video(), labels="ucf101")
        >>> result.label in vidsense.load_labels("ucf101").labels
        True
    """

    def __init__(self, profile: str | None = None, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else load_settings(profile=profile, **overrides)
        s = self.settings
        self.env = s.model_env()
        self.perceiver = Perceiver(PerceptionConfig.from_settings(s), cache=PerceptionCache.for_home(s.home, s.cache_max_mb) if s.cache else None)
        self.reasoner = Reasoner(ReasonerConfig.from_settings(s), self.env)
        self.reasoner.add_method("concepts", self._concept_route)
        self._concepts: ConceptExplainer | None = None
        self._lock = threading.Lock()

    @property
    def concepts(self) -> "ConceptExplainer":
        """The concept room; it embeds with the reasoner's sentence encoder."""
        with self._lock:
            if self._concepts is None:
                from vidsense.concepts.explainer import ConceptConfig, ConceptExplainer

                self._concepts = ConceptExplainer(
                    ConceptConfig.from_settings(self.settings),
                    lambda: self.reasoner.encoder,
                    descriptions=functools.partial(self.reasoner.descriptions, generate=False),
                    env=self.env,
                    evidence=self.reasoner.evidence_sources if self.settings.concept_evidence else None,
                    answering=self.reasoner.fused_method,
                )
            return self._concepts

    def _concept_route(self) -> "ReasoningMethod":
        """The concept bottleneck as a route (``reasoner="concepts"``)."""
        from vidsense.concepts.route import ConceptRoute

        return ConceptRoute(self.concepts)

    def load(self, modalities: Iterable[str] | None = None, reasoner: str = "llm") -> dict[str, str]:
        """Load every model that classifying with ``reasoner`` over ``modalities`` uses (e.g. before threads start).

        Returns:
            The perception models that could not load, with the cause: every answer
            is then made without them and says so in its warnings.
        """
        failed = self.perceiver.load(modalities)
        self.reasoner.load(reasoner)
        return failed

    def close(self) -> None:
        """Free the models now instead of at exit: the LLM's contexts, the perception models and the
        concept room. The Pipeline stays usable; a later call loads what it needs again."""
        self.reasoner.close()
        self.perceiver.close()
        with self._lock:
            self._concepts = None

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self, video: str | os.PathLike[str], modalities: Iterable[str] | None = None, *, progress: Progress | None = None) -> Timeline:
        """The timeline of ``video``: every modality as timed text (``progress``: see :data:`Progress`)."""
        timeline = self._perceive(video, modalities, progress)
        if progress is not None:
            progress("done", 1.0)
        return timeline

    def _perceive(self, video: str | os.PathLike[str], modalities: Iterable[str] | None, progress: Progress | None) -> Timeline:
        """The perceiver's timeline, reporting ``perceiving`` as each model finishes."""
        if progress is None:
            return self.perceiver.describe(video, modalities)
        progress("perceiving", 0.0)
        return self.perceiver.describe(video, modalities, progress=lambda _name, done, total: progress("perceiving", (done + 1) / total))

    def classify_timeline(
        self, timeline: Timeline, labels: LabelsArg, *, top_k: int | None = None, modalities: Iterable[str] | None = None, reasoner: str | None = None
    ) -> Prediction:
        """The reasoner's prediction for a timeline already made (e.g. one with windows removed).

        Args:
            timeline: a timeline (from :meth:`describe`, or edited).
            labels: label set (as for :meth:`classify`).
            top_k: labels to report.
            modalities: limit what the reasoner reads.
            reasoner: ``llm`` or ``embedding``.
        """
        mods = list(modalities) if modalities is not None else None
        method = reasoner or self.settings.reasoner
        return self.reasoner.classify(timeline, load_labels(labels), method=method, modalities=mods, top_k=top_k or self.settings.top_k)

    def classify(
        self,
        video: str | os.PathLike[str],
        labels: LabelsArg,
        *,
        top_k: int | None = None,
        modalities: Iterable[str] | None = None,
        reasoner: str | None = None,
        explain_text: bool = False,
        budget: str | float | None = None,
        progress: Progress | None = None,
    ) -> ClassificationResult:
        """Classify one video into one of ``labels``.

        Args:
            video: path of a video file.
            labels: a bundled label-set name, a label file, ``"a,b,c"``, or a list.
            top_k: how many labels to return (default ``settings.top_k``).
            modalities: limit what the reasoner reads (``sight``, ``speech``, ``sound``, ``text``).
            reasoner: ``cascade`` (default: evidence fusion; the LLM re-ranks close calls when
                ``cascade_margin`` > 0), ``fused`` (evidence fusion, no LLM), ``llm`` (the LLM over an
                embedding shortlist) or ``embedding``.
            explain_text: also ask the LLM for a one- or two-sentence justification
                citing what was seen or heard (costs a short generation).
            budget: ``fast``, ``balanced``, ``best`` or seconds of reasoning: the most
                accurate route whose measured time fits is used (instead of ``reasoner``;
                default ``settings.budget``).
            progress: told each stage and the fraction done (see :data:`Progress`).
        """
        labelset = load_labels(labels)
        mods = list(modalities) if modalities is not None else None
        reasoner, why = self.route(reasoner, budget)
        self.reasoner.method(reasoner)  # an unknown reasoner fails before the video is read
        t0 = time.perf_counter()
        timeline = self._perceive(video, mods, _part(progress, 0.0, 0.8))
        t1 = time.perf_counter()
        # After the video is read, so that a bad file fails before minutes of describing labels.
        self.reasoner.prepare(labelset, reasoner, progress=None if progress is None else lambda done, total: progress(f"describing labels {done}/{total}", 0.8))
        if progress is not None:
            progress("reasoning", 0.8)
        pred = self.reasoner.classify(timeline, labelset, method=reasoner, modalities=mods, top_k=top_k or self.settings.top_k)
        if explain_text:
            pred = self.reasoner.justify(timeline, pred, labelset, modalities=mods)
        t2 = time.perf_counter()
        timings = {"perception": t1 - t0, "reasoning": t2 - t1, "total": t2 - t0}
        timings.update({f"model.{k}": v for k, v in timeline.timings.items()})
        timings.update({f"reasoner.{k}": v for k, v in pred.stats.items() if k.endswith("_s")})
        if progress is not None:
            progress("done", 1.0)
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
            labels=labelset,
            route=pred.route or reasoner,
            route_reason="; ".join(r for r in (why, pred.route_reason) if r),
            evidence=pred.evidence,
            failures=timeline.failures,
        )

    def prepare(self, labels: LabelsArg, *, reasoner: str | None = None, budget: str | float | None = None, progress: Counts | None = None) -> LabelSet:
        """Do the one-time work a route needs on a label set before its first video, and return the set.

        The ``llm`` route has the LLM describe every label of a user's set once (cached under
        ``settings.home``): about 5 s a label on 2 cores, half an hour for 400. :meth:`classify`
        does this itself (its ``progress`` shows ``describing labels 12/400``); call this first to
        show it apart, e.g. before :meth:`classify_many`, whose first video would otherwise seem to
        hang. Other routes and bundled sets return at once.

        Args:
            labels: as for :meth:`classify`.
            reasoner: the route (as for :meth:`classify`).
            budget: pick the route by latency budget (as for :meth:`classify`).
            progress: called with ``(labels described, labels to describe)`` after each label.
        """
        labelset = load_labels(labels)
        method = self.route(reasoner, budget)[0]
        self.reasoner.method(method)  # an unknown reasoner is an error here too
        self.reasoner.prepare(labelset, method, progress=progress)
        return labelset

    def route(self, reasoner: str | None = None, budget: str | float | None = None) -> tuple[str, str]:
        """The reasoning method a call uses and why: ``reasoner`` when named, else the route the
        budget (or ``settings.budget``) affords on this machine's measured cost table, else
        ``settings.reasoner``."""
        if reasoner is not None:
            return reasoner, ""
        budget = budget if budget is not None else self.settings.budget
        if budget is None:
            return self.settings.reasoner, ""
        return choose(load_table(self.settings.home), budget)

    def classify_many(
        self,
        videos: Iterable[str | os.PathLike[str]],
        labels: LabelsArg,
        *,
        workers: int = 1,
        ordered: bool = False,
        top_k: int | None = None,
        modalities: Iterable[str] | None = None,
        reasoner: str | None = None,
        explain_text: bool = False,
        budget: str | float | None = None,
        engine: "BatchEngine | None" = None,
    ) -> Iterator[ClassificationResult | BatchError]:
        """Classify many videos, yielding each result as it finishes.

        A video that fails yields a :class:`~vidsense.batch.BatchError` (its
        one-line ``error``) instead of raising, so one bad file never stops a
        batch. With ``workers > 1``, threads share this Pipeline's models
        (loaded once, each called by one thread at a time): stages of different
        videos overlap, e.g. perception of one while the LLM reads another.

        Args:
            videos: video paths (see :func:`vidsense.batch.collect_videos` to
                expand folders, globs and manifests).
            labels: label set (as for :meth:`classify`), resolved once.
            workers: videos in flight at once.
            ordered: yield in input order instead of completion order.
            top_k: labels per result.
            modalities: limit what the reasoner reads.
            reasoner: the route (as for :meth:`classify`).
            budget: pick the route by latency budget (as for :meth:`classify`).
            engine: where the batch runs (a :class:`~vidsense.engines.BatchEngine`, e.g.
                ``vidsense.make_engine("ray")``: actors each building a Pipeline from these
                settings); None: threads in this process sharing this Pipeline.

        Yields:
            :class:`ClassificationResult` or :class:`~vidsense.batch.BatchError`.

        Example:
            >>> pipe = Pipeline()
            >>> for r in pipe.classify_many(["a.mp4", "b.mp4"], "ucf101", workers=2):  # doctest: +SKIP
            ...     print(r.video, getattr(r, "label", None) or r.error)
        """
        labelset = load_labels(labels)
        mods = list(modalities) if modalities is not None else None
        options = {"top_k": top_k, "modalities": mods, "reasoner": reasoner, "explain_text": explain_text, "budget": budget}
        engine = engine if engine is not None else LocalEngine()
        return engine.classify_many(SharedPipeline(self), videos, labelset, workers=workers, ordered=ordered, **options)

    def explain(
        self,
        video: str | os.PathLike[str],
        labels: LabelsArg,
        *,
        modalities: Iterable[str] | None = None,
        interventions: Iterable["InterventionSpec"] = (),
        llm_occlusion: bool = True,
        concept_model: bool | None = None,
        reasoner: str | None = None,
        top_k: int | None = None,
        budget: str | float | None = None,
        progress: Progress | None = None,
    ) -> ExplanationResult:
        """Classify ``video`` and explain the prediction over time.

        Args:
            video: path of a video file.
            labels: label set (as for :meth:`classify`).
            modalities: limit what the reasoner and the concepts read.
            interventions: extra :class:`~vidsense.concepts.explanation.InterventionSpec` s to run.
            llm_occlusion: re-score the LLM with each window and modality removed
                (one re-score per window; the faithful view of the actual prediction).
            reasoner: the route (as for :meth:`classify`).
            top_k: labels to report.
            budget: pick the route by latency budget (as for :meth:`classify`).
            progress: told each stage and the fraction done (see :data:`Progress`).
            concept_model: also run the concept bank's model (MoTIF views of a second model).
                Default: only when no answering model explains the answer (routes llm,
                embedding, concepts); on the fused and cascade routes the route itself in
                bottleneck form explains its answer (``explanation.answer_model``).
        """
        from vidsense.concepts.explanation import ExplainOptions

        concepts = self.concepts
        _ = concepts.scorers  # a missing joint model fails before the slow part
        labelset = load_labels(labels)
        result = self.classify(video, labelset, top_k=top_k, modalities=modalities, reasoner=reasoner, budget=budget, progress=_part(progress, 0.0, 0.6))
        if progress is not None:
            progress("explaining", 0.6)
        pred = result.prediction
        score_fn = self.reasoner.scorer(labelset, [c.label for c in pred.candidates], pred.reasoner) if (llm_occlusion and pred) else None
        t0 = time.perf_counter()
        options = ExplainOptions(top_k=top_k or self.settings.top_k, interventions=tuple(interventions), concept_model=concept_model)
        expl = concepts.explain(result.timeline, labelset, prediction=pred, score_fn=score_fn, modalities=modalities, options=options)
        timings = dict(result.timings, explanation=time.perf_counter() - t0)
        if progress is not None:
            progress("done", 1.0)
        return ExplanationResult(video=str(video), classification=result, explanation=expl, timings=timings)

    def intervene(
        self,
        result: ExplanationResult | Timeline,
        interventions: Iterable["InterventionSpec"],
        *,
        labels: LabelsArg | None = None,
        target: str | None = None,
        modalities: Iterable[str] | None = None,
        model: str | None = None,
    ) -> list["InterventionResult"]:
        """Run interventions on an explained video without perceiving or reasoning again.

        Args:
            result: an :class:`ExplanationResult` (its timeline, label set and
                explained label are used), or a timeline.
            interventions: what to change (remove / boost a concept, drop a window,
                a source or a modality, replace the concept model's attention maps).
            labels: the label set (needed with a bare timeline).
            target: the label whose probability is recorded (default: the
                explained label of ``result``, else the model's top-1).
            modalities: limit what the model reads.
            model: ``answer``, the model that answered (the fused route in bottleneck form:
                concept indices are ``explanation.answer_model`` columns, and each result is the
                re-ranked answer a user would get), or ``concepts``, the concept bank's model.
                Default: ``answer`` when the explanation has that view, or for a bare timeline
                when the configured route is fused or cascade; else ``concepts``.

        Raises:
            InputError: no label set is known, or an intervention names something that does not exist.
        """
        if isinstance(result, ExplanationResult):
            timeline = result.classification.timeline
            labelset = result.classification.labels if labels is None else load_labels(labels)
            answered = result.explanation.answer_model
            agreement = result.explanation.agreement
            target = target or (answered.label if answered is not None else agreement.explained_label if agreement is not None else None)
            model = model or ("answer" if answered is not None else "concepts")
        else:
            timeline, labelset = result, load_labels(labels) if labels is not None else None
            model = model or ("answer" if self.settings.reasoner in ("fused", "cascade") else "concepts")
        if timeline is None or labelset is None:
            raise InputError("intervene: needs a timeline and its label set (pass labels=...)")
        if model not in ("answer", "concepts"):
            raise InputError(f"intervene: model {model!r} is neither 'answer' nor 'concepts'")
        return self.concepts.intervene(timeline, labelset, list(interventions), target=target, modalities=modalities, model=model)

    def concept_model(self, labels: LabelsArg) -> "ConceptModel":
        """The concept bottleneck (bank, model, card) that explains ``labels``."""
        return self.concepts.model_for(load_labels(labels))

    def fit_concepts(
        self, manifest: str | os.PathLike[str], labels: LabelsArg, *, epochs: int = 100, seed: int = 0, progress: Counts | None = None
    ) -> dict[str, Any]:
        """Train the concept model on a labelled manifest and save it under ``$VIDSENSE_HOME``.

        Videos that fail are listed in the report and skipped; labels outside the
        label set are an error naming the manifest line. ``progress`` is told
        ``(videos described, videos)`` after each video.

        Returns:
            The saved folder, the fit metrics and the skipped videos.
        """
        labelset = load_labels(labels)
        concepts = self.concepts
        # A missing joint model fails before any video is described.
        examples, skipped = self._labelled_timelines(manifest, labelset, before=lambda: concepts.scorers, progress=progress)
        report: FitReport = concepts.fit(labelset, examples, epochs=epochs, seed=seed, source=str(manifest))
        return {"saved": str(report.saved), "metrics": report.metrics, "skipped": skipped}

    def fit_fusion(self, manifest: str | os.PathLike[str], labels: LabelsArg) -> dict[str, Any]:
        """Fit the fused routes' per-source weights for ``labels`` on a labelled manifest and store them.

        Videos that fail are listed and skipped; labels outside the label set are an error naming the line.

        Returns:
            The weights, where they were saved, how many videos they were fitted on, and the skipped videos.
        """
        labelset = load_labels(labels)
        examples, skipped = self._labelled_timelines(manifest, labelset)
        weights, path = self.reasoner.fit_fusion(labelset, examples, source=str(manifest))
        return {"weights": dict(weights.weights), "saved": str(path), "videos": len(examples), "skipped": skipped}

    def _labelled_timelines(
        self, manifest: str | os.PathLike[str], labelset: LabelSet, before: Any = None, progress: Counts | None = None
    ) -> tuple[list[tuple[Timeline, str]], list[dict[str, str]]]:
        """``(timeline, label)`` for every describable manifest row, and the rows that failed.

        Labels are checked first (an error naming the line), then ``before()`` runs, then videos are described.

        Raises:
            InputError: a label outside the label set, or no usable video.
        """
        rows = read_manifest(manifest)
        for r in rows:
            if r.label not in labelset.labels:
                raise InputError(f"{manifest}:{r.line}: label {r.label!r} is not in label set {labelset.name!r}")
        if before is not None:
            before()
        examples, skipped = [], []
        for r in counted(rows, progress):
            try:
                examples.append((self.describe(r.path), r.label))
            except VidsenseError as exc:
                skipped.append({"video": str(r.path), "error": str(exc)})
        if not examples:
            raise InputError(f"{manifest}: no usable videos to fit on")
        return examples, skipped

    def evaluate(
        self,
        manifest: str | os.PathLike[str],
        labels: str | None = None,
        *,
        reasoner: str | None = None,
        ablate: bool = False,
        concepts: bool = True,
        progress: Counts | None = None,
    ) -> EvalReport:
        """Accuracy of this Pipeline over a labelled manifest (see :mod:`vidsense.agents.evaluate`).

        Args:
            manifest: CSV with ``path,label[,labelset]`` (relative paths are
                relative to the manifest).
            labels: label set for rows without a ``labelset`` column.
            reasoner: ``llm`` or ``embedding``.
            ablate: also score every single modality and every all-but-one subset.
            concepts: also ask the concept model for its top-1 on every row (the
                ``agreement`` of explanations with answers, per label set).
            progress: called with ``(rows done, rows)`` after each row.

        Returns:
            An ``EvalReport``: ``top1``, ``top5``, per-label-set scores, latency,
            confusion and per-row results (``to_dict()`` for JSON, ``to_text()``
            for people). Failing videos are counted as errors, never abort the run.

        Example:
            >>> report = Pipeline().evaluate("ucf_sample.csv", labels="ucf101")  # doctest: +SKIP
            >>> print(report.top1, report.top5)  # doctest: +SKIP
        """
        method, _ = self.route(reasoner)
        classify = functools.partial(self.reasoner.classify, method=method)
        concept_label = None
        if concepts:
            room = self.concepts

            def concept_label(timeline: Timeline, labelset: LabelSet) -> str:
                return room.predict(timeline, labelset)[0].label

        return evaluate(
            manifest, self.describe, classify, labels, name=method, ablate=ablate, shortlist_size=self.settings.shortlist, concept_label=concept_label, progress=progress
        )

    def compare(self, manifest: str | os.PathLike[str], labels: str | None = None, *, progress: Counts | None = None) -> dict[str, EvalReport]:
        """Accuracy of every reasoning variant (embedding only, raw / calibrated LLM, with and without
        the embedding evidence and descriptions, grammar) over one manifest, each video described once
        (``progress``: ``(rows done, rows)`` over every variant's pass)."""
        return compare_variants(manifest, self.describe, self.reasoner, labels, progress=progress)
