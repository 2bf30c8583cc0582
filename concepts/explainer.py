"""The concept room's owner: bank and model choice, storage, activations, explanations.

:class:`ConceptExplainer` is built from explicit, typed arguments (a
:class:`ConceptConfig`, the sentence encoder the reasoning room already loaded,
and the label descriptions it serves) and answers every concept question the
SDK asks: which concept model explains a label set (a trained one saved under
``<home>/concepts/models/<label set>``, else the zero-shot model initialised
from the concept bank), the activations of a timeline (text, blended with the
joint models when configured), the explanation of a prediction, interventions
on a finished explanation, and few-shot training.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from vidsense.agents.describe_labels import template
from vidsense.agents.embeddings import TextEncoder
from vidsense.agents.evidence import TransferScorer
from vidsense.agents.fusion import FusedReasoner
from vidsense.agents.occlusion import ScoreFn, occlusion
from vidsense.concepts.activations import ActivationCache, Activations, JointEvidence, activations_by_modality, concept_activations
from vidsense.concepts.answer_view import answer_view
from vidsense.concepts.bank import ConceptBank, bundled_bank, fallback_bank
from vidsense.concepts.bottleneck import AnswerModel, Rebuild, explain_answer, intervene_answer
from vidsense.concepts.evidence_concepts import evidence_concepts, with_evidence
from vidsense.concepts.explanation import ExplainOptions, Explanation, InterventionResult, InterventionSpec, WindowInfo
from vidsense.concepts.joint import JointConfig, JointScorer, joint_evidence, joint_scorers
from vidsense.concepts.merge import class_specificity
from vidsense.services.errors import InputError
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.schema import LabelScore, LabelSet, Prediction
from vidsense.services.settings import Settings
from vidsense.services.timeline import MODALITIES, Timeline

if TYPE_CHECKING:  # torch loads only when the concept bank's model runs
    from vidsense.concepts import motif

log = logging.getLogger(__name__)

# Sharpens the zero-shot concept model's probabilities (class rows of its weights
# sum to 1, so raw logits differ by tenths). Tried 1, 5 and 10 on the shared
# clips (before the 1.5 specificity margin): at 1 the top class had 0.02-0.04
# (flat over 101), at 10 wrong answers came out at 0.98-0.99; 5 keeps clear
# cases clear (bikes: Biking 0.72) and unclear ones unclear.
ZERO_SHOT_LOGIT_SCALE = 5.0
# Weight of the evidence concepts (times each source's fusion weight) against the text
# concepts, whose class rows sum to ZERO_SHOT_LOGIT_SCALE. Tried on the 32 labelled rows
# of benchmarks/eval_set.py (benchmarks/faithfulness.py): text concepts alone gave top-1
# 0.19, agreement with the fused answer 0.22, mean rank of the truth 43.7; evidence
# alone 0.31 / 0.47 / 39.6; both at 5: 0.19 / 0.22 / 25.0, at 20: 0.22 / 0.28 / 18.4, at 50:
# 0.34 / 0.41 / 17.8, at 100: 0.34 / 0.50 / 17.4 (top-5 0.63).
EVIDENCE_SCALE = 100.0
# Divides the zero-shot model's class scores (calibration; the ranking is unchanged). At 1 the
# concept model said p=1.00 on clips it got wrong; on the 32 labelled rows
# (benchmarks/concept_calibration.py) the mean negative log-likelihood of the truth was 6.98 at
# 1, 4.10 at 2, 3.54 at 3, 3.47 at 4, 3.54 at 5, 3.97 at 10, and at 4 the mean top-1
# probability (0.32) matches the top-1 accuracy (0.34).
ZERO_SHOT_TEMPERATURE = 4.0
BANK_FILE = "bank.json"
# labelset -> (the fast route's transfer scorers, its fusion weight per source).
EvidenceSources = Callable[[LabelSet], tuple[Sequence[TransferScorer], Mapping[str, float]]]


@dataclass(frozen=True)
class ConceptConfig:
    """Where the concept room keeps its files and how it builds activations.

    Attributes:
        home: ``$VIDSENSE_HOME``: trained models under ``concepts/models/<label set>``,
            activation matrices under ``cache/concepts``.
        cache: keep activation matrices on disk (off: memory only).
        joint: joint models blended into the text activations.
        logit_scale: sharpening of the zero-shot model's probabilities.
        evidence_scale: weight of the evidence concepts against the text concepts.
        temperature: divides the zero-shot model's class scores (calibration).
    """

    home: Path
    cache: bool = True
    joint: JointConfig = field(default_factory=JointConfig)
    logit_scale: float = ZERO_SHOT_LOGIT_SCALE
    evidence_scale: float = EVIDENCE_SCALE
    temperature: float = ZERO_SHOT_TEMPERATURE

    @classmethod
    def from_settings(cls, settings: Settings) -> "ConceptConfig":
        """The concept room's part of the product settings."""
        joint = JointConfig(
            models=tuple(settings.concept_joint_models),
            weight=settings.concept_joint_weight,
            frames_per_window=settings.frames_per_window,
            frame_max_side=settings.frame_max_side,
            imagebind=settings.imagebind_model,
        )
        return cls(home=Path(settings.home), cache=settings.cache, joint=joint)


@dataclass(frozen=True, eq=False)
class ConceptModel:
    """The concept bottleneck for one label set: its bank, the MoTIF model and the model's card."""

    bank: ConceptBank
    model: motif.MotifModel
    card: motif.MotifCard


@dataclass(frozen=True)
class FitReport:
    """What :meth:`ConceptExplainer.fit` saved and measured.

    Attributes:
        saved: the model's folder.
        metrics: the fit metrics (train / held-out accuracy, epochs, ...).
        encoders: the encoders the activations came from.
    """

    saved: Path
    metrics: dict[str, Any]
    encoders: tuple[str, ...]


class ConceptExplainer:
    """Explains predictions with a concept bottleneck; owns the banks, models and activation cache.

    Args:
        config: storage and activation settings.
        encoder: the sentence encoder (the reasoning room's: one model in memory),
            or a function returning it, called on first use (so configuration
            errors surface before a model loads).
        descriptions: ``labelset -> {label: description}`` without generating
            (for class specificity; label names stand in where one is missing).
        env: where joint models come from (needed only with ``config.joint.models``).
        scorers: ready joint scorers (instead of locating ``config.joint.models``).
        evidence: ``labelset -> (transfer scorers, source weights)``: the fast route's
            scorers and fusion weights, from which the zero-shot model gains evidence
            concepts (:mod:`vidsense.concepts.evidence_concepts`). ``None``: text concepts only.
        answering: returns the fast route, whose bottleneck form (:mod:`vidsense.concepts.bottleneck`)
            explains the fused and cascade routes' answers. ``None``: no such view.
    """

    def __init__(
        self,
        config: ConceptConfig,
        encoder: TextEncoder | Callable[[], TextEncoder],
        *,
        descriptions: Callable[[LabelSet], Mapping[str, str]] | None = None,
        env: ModelEnv | None = None,
        scorers: Sequence[JointScorer] | None = None,
        evidence: EvidenceSources | None = None,
        answering: Callable[[], FusedReasoner] | None = None,
    ) -> None:
        self.config = config
        self._evidence = evidence
        self._answering = answering
        self._encoder = encoder
        self._descriptions = descriptions or (lambda labelset: {})
        self._env = env
        self._scorers = tuple(scorers) if scorers is not None else None
        self.cache = ActivationCache(Path(config.home) / "cache" / "concepts" if config.cache else None)
        self._models: dict[str, ConceptModel] = {}
        self._lock = threading.RLock()

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder the text activations use."""
        with self._lock:
            if not hasattr(self._encoder, "encode"):
                self._encoder = self._encoder()  # type: ignore[operator]
            return self._encoder  # type: ignore[return-value]

    # -- models ---------------------------------------------------------------

    def model_folder(self, labelset: LabelSet) -> Path:
        """Where a trained concept model for ``labelset`` is saved."""
        return Path(self.config.home) / "concepts" / "models" / labelset.name

    def model_for(self, labelset: LabelSet) -> ConceptModel:
        """The concept model for ``labelset``, built once.

        A model trained with :meth:`fit` wins when its bank has exactly these
        labels; otherwise the zero-shot model initialised from the concept bank
        (bundled, or built from the label names when the set has none).
        """
        with self._lock:
            if labelset.sha256 not in self._models:
                self._models[labelset.sha256] = self._trained(labelset) or self._zero_shot(labelset)
            return self._models[labelset.sha256]

    def _trained(self, labelset: LabelSet) -> ConceptModel | None:
        from vidsense.concepts import motif

        folder = self.model_folder(labelset)
        if not (folder / motif.CARD_FILE).is_file() or not (folder / BANK_FILE).is_file():
            return None
        bank = ConceptBank.load(folder / BANK_FILE)
        if bank.labels != labelset.labels:
            return None
        model, card = motif.load_model(folder)
        card.check_bank(bank)
        return ConceptModel(bank, model, card)

    def _zero_shot(self, labelset: LabelSet) -> ConceptModel:
        from vidsense.concepts import motif

        bank = bundled_bank(labelset.name)
        if bank is None or bank.labels != labelset.labels:
            bank = fallback_bank(labelset.labels, label_set=labelset.name, readable=labelset.readable)
        spec = self.specificity(labelset, bank)
        weights: Mapping[str, float] | None = None
        if self._evidence is not None:
            scorers, weights = self._evidence(labelset)
            bank = with_evidence(bank, evidence_concepts(labelset, scorers))
            # Evidence concepts carry the fast route's transfer weights; specificity is for text concepts.
            spec = np.pad(spec, ((0, 0), (0, len(bank) - spec.shape[1])))
        model, card = motif.zero_shot_model(
            bank, specificity=spec, logit_scale=self.config.logit_scale, source_weights=weights, evidence_scale=self.config.evidence_scale,
            temperature=self.config.temperature,
        )
        return ConceptModel(bank, model, card)

    def specificity(self, labelset: LabelSet, bank: ConceptBank) -> np.ndarray:
        """Concept-to-class specificity of the bank's text concepts from the label descriptions (names where there are none)."""


        desc = self._descriptions(labelset)
        texts = [desc.get(lab) or template(read) for lab, read in zip(labelset.labels, labelset.readable)]
        return class_specificity(bank, self.encoder.encode, texts)

    # -- activations ----------------------------------------------------------

    @property
    def scorers(self) -> tuple[JointScorer, ...]:
        """The joint scorers of ``config.joint.models`` (located once; nothing is loaded).

        Raises:
            InputError: a configured joint model cannot be found.
        """
        with self._lock:
            if self._scorers is None:
                if self.config.joint.models and self._env is None:
                    raise InputError("joint concept models are configured but no model environment was given")
                joint = self.config.joint
                self._scorers = joint_scorers(joint.models, self._env, joint.imagebind) if joint.models else ()
            return self._scorers

    def activations(self, timeline: Timeline, bank: ConceptBank, *, modalities: Iterable[str] | None = None, media: Media | None = None) -> Activations:
        """The activations the concept model reads for one video.

        Text activations, blended with the joint models' evidence when some are
        configured, their weight is above 0 and the video file is available.
        """
        text = concept_activations(timeline, bank, self.encoder, modalities, self.cache)
        joint = joint_evidence(timeline, bank, self.scorers, self.config.joint, media=media, cache=self.cache)
        return text if joint is None else joint.apply(text, modalities)

    def predict(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None) -> list[LabelScore]:
        """The concept model's own ranking of every label of ``labelset`` (probabilities, best first)."""
        import torch

        cm = self.model_for(labelset)
        seen, joint = self._restricted(timeline, cm.bank, modalities)
        acts = concept_activations(seen, cm.bank, self.encoder, cache=self.cache)
        if joint is not None:
            acts = joint.apply(acts)
        cm.model.eval()
        with torch.no_grad():
            probs = torch.softmax(cm.model(torch.from_numpy(np.asarray(acts.matrix, dtype=np.float32))).logits[0], dim=0)
        order = torch.argsort(probs, descending=True).tolist()
        return [LabelScore(label=cm.card.labels[i], score=float(probs[i])) for i in order]

    # -- explanations ---------------------------------------------------------

    def _restricted(self, timeline: Timeline, bank: ConceptBank, modalities: Iterable[str] | None) -> tuple[Timeline, JointEvidence | None]:
        """The timeline and the joint evidence, both limited to ``modalities``.

        The joint models read the whole video the timeline names, so a modality restriction applies to them too.
        """
        joint = joint_evidence(timeline, bank, self.scorers, self.config.joint, cache=self.cache)
        joint = joint.only(modalities) if joint is not None else None
        return (timeline.only(modalities) if modalities is not None else timeline), joint

    def explain(
        self,
        timeline: Timeline,
        labelset: LabelSet,
        *,
        prediction: Prediction | None = None,
        score_fn: ScoreFn | None = None,
        modalities: Iterable[str] | None = None,
        options: ExplainOptions = ExplainOptions(),
    ) -> Explanation:
        """Explain ``prediction`` (or the concept model's own top-1) on ``timeline``.

        Args:
            timeline: the whole timeline (joint models read the video it names).
            labelset: the label set the prediction is in.
            prediction: the reasoner's answer: the explained label, and the
                scores the agreement section compares with.
            score_fn: ``timeline -> {label: probability}`` for LLM occlusion.
            modalities: restrict what the concepts read.
            options: sizes and switches.
        """
        answering = prediction is not None and bool(prediction.evidence) and self._answering is not None
        if options.concept_model or (options.concept_model is None and not answering):
            expl, seen = self._concept_model_explanation(timeline, labelset, prediction, score_fn, modalities, options)
        else:
            # The model that answered explains it; the concept bank's model (torch, a second
            # model) is not run. The LLM occlusion of a re-ranked answer stays.
            seen = timeline.only(list(modalities)) if modalities is not None else timeline
            t0 = time.perf_counter()
            occ = occlusion(seen, score_fn, label=prediction.label) if score_fn is not None and prediction is not None else None
            expl = Explanation(
                label_set=labelset.name,
                windows=[WindowInfo(index=w.index, start_s=w.start_s, end_s=w.end_s, label=w.label) for w in timeline.windows],
                occlusion=occ,
                timings={"occlusion": round(time.perf_counter() - t0, 4)} if occ is not None else {},
                notes=["the concept bank's model was not run: the answering model is what answered (explain --concept-model adds that second model)"],
            )
        if answering:
            assert prediction is not None and self._answering is not None
            t0 = time.perf_counter()
            scorers = [s for s in self._answering().scorers if isinstance(s, TransferScorer)]
            # The answer as the route that gave it weighed it: exact push above the average label.
            model, rebuild, mods = self.answer_model(timeline, labelset, modalities)
            view = explain_answer(model, prediction, rebuild=rebuild, modalities=mods, top_k=options.top_k)
            timings = {**expl.timings, "answer_model": round(time.perf_counter() - t0, 4)}
            expl = expl.model_copy(update={"answer": answer_view(seen, labelset, prediction, scorers), "answer_model": view, "timings": timings})
        return expl

    def _concept_model_explanation(
        self, timeline: Timeline, labelset: LabelSet, prediction: Prediction | None, score_fn: ScoreFn | None, modalities: Iterable[str] | None, options: ExplainOptions
    ) -> tuple[Explanation, Timeline]:
        """The concept bank's model's explanation (MoTIF views), and the timeline it read."""
        from vidsense.concepts.views import explain_timeline

        cm = self.model_for(labelset)
        seen, joint = self._restricted(timeline, cm.bank, modalities)
        llm_scores = {c.label: c.score for c in prediction.candidates} if prediction is not None else None
        expl = explain_timeline(
            seen, cm.bank, cm.model, cm.card, self.encoder,
            llm_scores=llm_scores, score_fn=score_fn, target=prediction.label if prediction is not None else None,
            cache=self.cache, joint=joint, route=(prediction.route or prediction.reasoner) if prediction is not None else "", options=options,
        )
        trained_on = cm.card.metrics.get("encoder") if cm.card.trained else None
        if trained_on and expl.encoder not in str(trained_on).split("|"):
            # Activations from other encoders sit on another scale: the model reads them poorly.
            log.warning("concept model for %s was trained on activations from %s, explaining with %s", labelset.name, trained_on, expl.encoder)
        return expl, seen

    def answer_model(self, timeline: Timeline, labelset: LabelSet, modalities: Iterable[str] | None = None) -> tuple[AnswerModel, Rebuild, list[str]]:
        """The fused route on ``timeline`` in bottleneck form, how to rebuild it without a modality, and the modalities it read.

        Raises:
            InputError: this room was built without the fast route (``answering``).
        """
        if self._answering is None:
            raise InputError("the answering model needs the fast route: build the concept room with answering=...")
        fused = self._answering()
        mods = list(modalities) if modalities is not None else [m for m in MODALITIES if not timeline.only([m]).is_empty]
        return AnswerModel.build(fused, timeline, labelset, modalities), (lambda keep: AnswerModel.build(fused, timeline, labelset, keep)), mods

    def intervene(
        self,
        timeline: Timeline,
        labelset: LabelSet,
        specs: Iterable[InterventionSpec],
        *,
        target: str | None = None,
        modalities: Iterable[str] | None = None,
        model: str = "concepts",
    ) -> list[InterventionResult]:
        """Run interventions for ``timeline`` without perceiving again.

        Args:
            target: the label whose probability is recorded (default: the model's top-1).
            model: ``concepts``, the concept bank's model (activations come from the cache), or
                ``answer``, the answering model (the fused route in bottleneck form: each result
                is the answer the route would give).

        Raises:
            InputError: a spec names a concept, window, source or modality that does not exist,
                or ``target`` is not in the label set.
        """
        if model == "answer":
            answering, rebuild, mods = self.answer_model(timeline, labelset, modalities)
            k = answering.label_index(target) if target is not None else int(np.argmax(answering.probabilities()))
            return [intervene_answer(answering, spec, k, rebuild, mods) for spec in specs]
        import torch

        from vidsense.concepts.interventions import intervene

        cm = self.model_for(labelset)
        seen, joint = self._restricted(timeline, cm.bank, modalities)
        acts = concept_activations(seen, cm.bank, self.encoder, cache=self.cache)
        if joint is not None:
            acts = joint.apply(acts)
        by_modality = activations_by_modality(seen, cm.bank, self.encoder, "without", self.cache, joint)
        x = torch.from_numpy(np.asarray(acts.matrix, dtype=np.float32)).unsqueeze(0)
        labels = list(cm.card.labels)
        if target is not None and target not in labels:
            raise InputError(f"label {target!r} is not in label set {labelset.name!r}")
        cm.model.eval()
        if target is None:
            with torch.no_grad():
                k = int(cm.model(x).logits[0].argmax())
        else:
            k = labels.index(target)
        return [intervene(cm.model, x, spec, k, labels, list(cm.bank.texts), by_modality) for spec in specs]

    # -- training -------------------------------------------------------------

    def fit(self, labelset: LabelSet, examples: Iterable[tuple[Timeline, str]], *, epochs: int = 100, seed: int = 0, source: str = "") -> FitReport:
        """Train the concept model on labelled timelines and save it (with its bank) for this label set.

        Args:
            labelset: the label set every label belongs to.
            examples: ``(timeline, true label)`` pairs.
            epochs / seed: training length and seed.
            source: what the examples came from (a manifest path), recorded on the card.

        Raises:
            InputError: no example, or a label outside the label set.
        """
        from vidsense.concepts import motif, train

        bank = self.model_for(labelset).bank
        data, encoders = [], set()
        for timeline, label in examples:
            if label not in labelset.labels:
                raise InputError(f"{timeline.video.path}: label {label!r} is not in label set {labelset.name!r}")
            acts = self.activations(timeline, bank)
            encoders.add(acts.encoder)
            data.append(train.LabelledActivations(acts.matrix, label, timeline.video.path))
        if not data:
            raise InputError(f"{source or 'training set'}: no usable videos to train on")
        model, metrics = train.fit(data, bank, labelset.labels, epochs=epochs, seed=seed)
        # The card says what the activations came from: a model fitted on blended activations reads those best.
        card = train.trained_card(bank, model, metrics, {"manifest": source, "encoder": "|".join(sorted(encoders))})
        folder = self.model_folder(labelset)
        motif.save_model(model, card, folder)
        # The bank travels with the model: a later change of the bundled bank must not
        # silently re-map a trained model's columns.
        bank.save(folder / BANK_FILE)
        with self._lock:
            self._models.pop(labelset.sha256, None)
        return FitReport(folder, metrics.to_dict(), tuple(sorted(encoders)))
