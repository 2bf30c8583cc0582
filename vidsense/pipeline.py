"""The Pipeline: one object that owns the loaded models and answers every verb."""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from vidsense.agents.labels import load_labels
from vidsense.agents.reasoner import REASONERS, Reasoner
from vidsense.results import ClassificationResult, ExplanationResult
from vidsense.services.errors import InputError
from vidsense.services.perceiver import Perceiver
from vidsense.services.settings import Settings, load_settings
from vidsense.services.timeline import Timeline
from vidsense.services.schema import LabelSet

if TYPE_CHECKING:
    from vidsense.batch import BatchError

log = logging.getLogger(__name__)

LabelsArg = str | list[str] | tuple[str, ...] | LabelSet
# Sharpens the zero-shot concept model's probabilities (class rows of its weights
# sum to 1, so raw logits differ by tenths). Tried 1, 5 and 10 on the shared
# clips (before the 1.5 specificity margin): at 1 the top class had 0.02-0.04
# (flat over 101), at 10 wrong answers came out at 0.98-0.99; 5 keeps clear
# cases clear (bikes: Biking 0.72) and unclear ones unclear.
ZERO_SHOT_LOGIT_SCALE = 5.0


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
        self._reasoner_lock = threading.Lock()
        self._concept_models: dict[str, tuple[Any, Any, Any]] = {}
        self._encoder: Any = None
        self._activation_cache: Any = None

    def reasoner(self, name: str = "llm") -> Reasoner:
        """The reasoner ``name`` (``llm`` or ``embedding``), created once (thread-safe)."""
        with self._reasoner_lock:
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

    def concept_model(self, labelset: LabelSet) -> tuple[Any, Any, Any]:
        """(bank, model, card) of the concept bottleneck for ``labelset``.

        A model trained with ``vidsense concepts fit`` (stored under
        ``$VIDSENSE_HOME/concepts/models/<label set>``) wins; otherwise the
        zero-shot model initialised from the concept bank (bundled, or built from
        the label names when the set has none).
        """
        key = labelset.sha256
        if key not in self._concept_models:
            from vidsense.concepts import bank as banks
            from vidsense.concepts import motif

            trained = Path(self.settings.home) / "concepts" / "models" / labelset.name
            if (trained / motif.CARD_FILE).is_file() and (trained / "bank.json").is_file() and banks.ConceptBank.load(trained / "bank.json").labels == labelset.labels:
                model, card = motif.load_model(trained)
                bank = banks.ConceptBank.load(trained / "bank.json")
                card.check_bank(bank)
            else:
                bank = banks.bundled_bank(labelset.name)
                if bank is None or bank.labels != labelset.labels:
                    bank = banks.fallback_bank(labelset.labels, label_set=labelset.name, readable=labelset.readable)
                model, card = motif.zero_shot_model(bank, specificity=self._specificity(labelset, bank), logit_scale=ZERO_SHOT_LOGIT_SCALE)
            self._concept_models[key] = (bank, model, card)
        return self._concept_models[key]

    def _specificity(self, labelset: LabelSet, bank: Any):
        """Concept-to-class specificity from the label descriptions (names where there are none)."""
        from vidsense.agents.describe_labels import label_descriptions, template
        from vidsense.concepts.bank import class_specificity

        desc = label_descriptions(self.settings, labelset, generate=False)
        texts = [desc.get(lab) or template(read) for lab, read in zip(labelset.labels, labelset.readable)]
        return class_specificity(bank, self.encoder.encode, texts)

    @property
    def encoder(self):
        """The sentence encoder the concept activations use (shared with the shortlist)."""
        if self._encoder is None:
            from vidsense.concepts.activations import SentenceEncoder

            self._encoder = SentenceEncoder(self.settings)
        return self._encoder

    @property
    def activation_cache(self):
        """The concept-activation cache (``$VIDSENSE_HOME/cache/concepts``; memory only with ``cache`` off)."""
        if self._activation_cache is None:
            from vidsense.concepts.activations import ActivationCache

            self._activation_cache = ActivationCache.for_settings(self.settings)
        return self._activation_cache

    def score_fn(self, labelset: LabelSet, candidates: Iterable[str], reasoner: str = "llm"):
        """``timeline -> {label: probability}`` over a fixed candidate list (for occlusion).

        The candidates stay fixed so that removing a window cannot change which
        labels are compared, only how the reasoner scores them.
        """
        sub = LabelSet.from_labels(labelset.name, list(candidates))
        r = self.reasoner(reasoner)

        def score(timeline: Timeline) -> dict[str, float]:
            pred = r.classify(timeline, sub, top_k=len(sub))
            return {c.label: c.score for c in pred.candidates}

        return score

    def explain(
        self,
        video: str | os.PathLike[str],
        labels: LabelsArg,
        *,
        modalities: Iterable[str] | None = None,
        interventions: Iterable[Any] = (),
        llm_occlusion: bool = True,
        reasoner: str = "llm",
        top_k: int | None = None,
    ) -> ExplanationResult:
        """Classify ``video`` and explain the prediction over time.

        Args:
            video: path of a video file.
            labels: label set (as for :meth:`classify`).
            modalities: limit what the reasoner and the concepts read.
            interventions: extra :class:`~vidsense.concepts.explain.InterventionSpec` s to run.
            llm_occlusion: re-score the LLM with each window and modality removed
                (one re-score per window; the faithful view of the actual prediction).
            reasoner: ``llm`` or ``embedding``.
            top_k: labels to report.
        """
        from vidsense.concepts.explain import ExplainOptions, explain_timeline
        from vidsense.concepts.joint import joint_evidence, joint_scorers

        scorers = joint_scorers(self.settings)  # a missing joint model fails before the slow part
        result = self.classify(video, labels, top_k=top_k, modalities=modalities, reasoner=reasoner)
        labelset = load_labels(labels)
        timeline = result.timeline.only(modalities) if modalities is not None else result.timeline
        bank, model, card = self.concept_model(labelset)
        pred = result.prediction
        llm_scores = {c.label: c.score for c in pred.candidates} if pred else None
        score_fn = self.score_fn(labelset, [c.label for c in pred.candidates], reasoner) if (llm_occlusion and pred) else None
        t0 = time.perf_counter()
        # The joint models read the video file itself; a modality restriction applies to them too.
        joint = joint_evidence(self.settings, result.timeline, bank, cache=self.activation_cache, scorers=scorers)
        joint = joint.only(modalities) if joint is not None else None
        options = ExplainOptions(top_k=top_k or self.settings.top_k, interventions=tuple(interventions))
        expl = explain_timeline(
            timeline, bank, model, card, self.encoder, llm_scores=llm_scores, score_fn=score_fn, target=result.label,
            cache=self.activation_cache, joint=joint, options=options,
        )
        trained_on = card.metrics.get("encoder") if card.trained else None
        if trained_on and expl.encoder not in trained_on.split("|"):
            # Activations from other encoders sit on another scale: the model reads them poorly.
            log.warning("concept model for %s was trained on activations from %s, explaining with %s", labelset.name, trained_on, expl.encoder)
        timings = dict(result.timings, explanation=time.perf_counter() - t0)
        return ExplanationResult(video=str(video), classification=result, explanation=expl, timings=timings)

    def fit_concepts(self, manifest: str | os.PathLike[str], labels: LabelsArg, *, epochs: int = 100, seed: int = 0) -> dict[str, Any]:
        """Train the concept model on a labelled manifest and save it under ``$VIDSENSE_HOME``.

        Videos that fail are listed in the report and skipped; labels outside the
        label set are an error naming the manifest line.

        Returns:
            The saved folder, the fit metrics and the skipped videos.
        """
        from vidsense.concepts import motif, train
        from vidsense.concepts.activations import activations_for
        from vidsense.concepts.joint import joint_scorers
        from vidsense.services.errors import VidsenseError
        from vidsense.services.schema import read_manifest

        labelset = load_labels(labels)
        rows = read_manifest(manifest)
        for r in rows:
            if r.label not in labelset.labels:
                raise InputError(f"{manifest}:{r.line}: label {r.label!r} is not in label set {labelset.name!r}")
        bank, _, _ = self.concept_model(labelset)
        scorers = joint_scorers(self.settings)  # a missing joint model fails before any video is described
        examples, skipped, encoders = [], [], set()
        for r in rows:
            try:
                tl = self.describe(r.path)
            except VidsenseError as exc:
                skipped.append({"video": str(r.path), "error": str(exc)})
                continue
            acts = activations_for(self.settings, tl, bank, encoder=self.encoder, cache=self.activation_cache, scorers=scorers)
            encoders.add(acts.encoder)
            examples.append(train.LabelledActivations(acts.matrix, r.label, str(r.path)))
        if not examples:
            raise InputError(f"{manifest}: no usable videos to train on")
        model, metrics = train.fit(examples, bank, labelset.labels, epochs=epochs, seed=seed)
        # The card says what the activations came from: a model fitted on blended activations reads those best.
        card = train.trained_card(bank, model, metrics, {"manifest": str(manifest), "encoder": "|".join(sorted(encoders))})
        folder = Path(self.settings.home) / "concepts" / "models" / labelset.name
        motif.save_model(model, card, folder)
        # The bank travels with the model: a later change of the bundled bank must not
        # silently re-map a trained model's columns.
        bank.save(folder / "bank.json")
        self._concept_models.pop(labelset.sha256, None)
        return {"saved": str(folder), "metrics": metrics.to_dict(), "skipped": skipped}

    def classify(
        self,
        video: str | os.PathLike[str],
        labels: LabelsArg,
        *,
        top_k: int | None = None,
        modalities: Iterable[str] | None = None,
        reasoner: str = "llm",
        explain_text: bool = False,
    ) -> ClassificationResult:
        """Classify one video into one of ``labels``.

        Args:
            video: path of a video file.
            labels: a bundled label-set name, a label file, ``"a,b,c"``, or a list.
            top_k: how many labels to return (default ``settings.top_k``).
            modalities: limit what the reasoner reads (``sight``, ``speech``, ``sound``, ``text``).
            reasoner: ``llm`` (default) or ``embedding``.
            explain_text: also ask the LLM for a one- or two-sentence justification
                citing what was seen or heard (costs a short generation).
        """
        labelset = load_labels(labels)
        mods = list(modalities) if modalities is not None else None
        r = self.reasoner(reasoner)
        t0 = time.perf_counter()
        timeline = self.perceiver.describe(video, mods)
        t1 = time.perf_counter()
        pred = r.classify(timeline, labelset, modalities=mods, top_k=top_k or self.settings.top_k)
        if explain_text:
            pred = self.reasoner("llm").explain(timeline, pred, labelset, modalities=mods)
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

    def classify_many(
        self,
        videos: Iterable[str | os.PathLike[str]],
        labels: LabelsArg,
        *,
        workers: int = 1,
        ordered: bool = False,
        top_k: int | None = None,
        modalities: Iterable[str] | None = None,
        reasoner: str = "llm",
        explain_text: bool = False,
    ) -> Iterator["ClassificationResult | BatchError"]:
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
            reasoner: ``llm`` or ``embedding``.

        Yields:
            :class:`ClassificationResult` or :class:`~vidsense.batch.BatchError`.

        Example:
            >>> pipe = Pipeline()
            >>> for r in pipe.classify_many(["a.mp4", "b.mp4"], "ucf101", workers=2):  # doctest: +SKIP
            ...     print(r.video, getattr(r, "label", None) or r.error)
        """
        from vidsense.batch import classify_many

        return classify_many(self, videos, labels, workers=workers, ordered=ordered, top_k=top_k, modalities=modalities, reasoner=reasoner, explain_text=explain_text)

    def evaluate(
        self,
        manifest: str | os.PathLike[str],
        labels: str | None = None,
        *,
        reasoner: str = "llm",
        ablate: bool = False,
    ) -> Any:
        """Accuracy of this Pipeline over a labelled manifest (see :mod:`vidsense.agents.evaluate`).

        Args:
            manifest: CSV with ``path,label[,labelset]`` (relative paths are
                relative to the manifest).
            labels: label set for rows without a ``labelset`` column.
            reasoner: ``llm`` or ``embedding``.
            ablate: also score every single modality and every all-but-one subset.

        Returns:
            An ``EvalReport``: ``top1``, ``top5``, per-label-set scores, latency,
            confusion and per-row results (``to_dict()`` for JSON). Failing
            videos are counted as errors, never abort the run.

        Example:
            >>> report = Pipeline().evaluate("ucf_sample.csv", labels="ucf101")  # doctest: +SKIP
            >>> print(report.top1, report.top5)  # doctest: +SKIP
        """
        from vidsense.agents.evaluate import evaluate

        return evaluate(manifest, self, labels=labels, reasoner=reasoner, ablate=ablate)
