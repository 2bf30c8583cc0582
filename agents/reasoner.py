"""The reasoning room's owner: one object that holds the LLM and the sentence encoder.

:class:`Reasoner` is built from explicit, typed arguments (a
:class:`ReasonerConfig` and a :class:`~vidsense.services.model_store.ModelEnv`),
loads each model once, on first use, and hands them to the reasoning methods
of :mod:`vidsense.agents.scoring` (``llm``, ``embedding``), to label
descriptions and to anyone downstream that needs the same encoder (the concept
room). Only :meth:`ReasonerConfig.from_settings` reads the product settings;
the Pipeline calls it once.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from vidsense.agents.describe_labels import bundled_descriptions, label_descriptions
from vidsense.agents.embeddings import TextEncoder, load_sentence_encoder
from vidsense.agents.evidence import TransferScorer, default_scorers
from vidsense.agents.fusion import COMPACT_TIMELINE_CHARS, MARGIN, CascadeReasoner, FitExample, FusedReasoner, FusionWeights, fit_weights, fitted_path, weights_for
from vidsense.agents.llm import LanguageModel, LLMConfig, check_gguf, load_llm
from vidsense.agents.priors import priors_dir
from vidsense.agents.scoring import EmbeddingReasoner, LLMReasoner, ReasoningMethod
from vidsense.agents.shortlist import LabelIndex
from vidsense.agents.vocabulary import transfer_vocabulary
from vidsense.services.errors import InputError
from vidsense.services.model_store import ModelEnv
from vidsense.services.progress import Counts
from vidsense.services.registry import resolve
from vidsense.services.schema import LabelSet, Prediction
from vidsense.services.settings import Settings
from vidsense.services.timeline import Timeline

ScoreFn = Callable[[Timeline], Mapping[str, float]]


@dataclass(frozen=True)
class ReasonerConfig:
    """What the reasoning room loads and how it reasons.

    Attributes:
        llm: the language model.
        embedding_model: sentence encoder (store name, local path, or hub id with ``allow_hub``).
        shortlist: labels the LLM scores at most.
        cascade_margin: fused top-1 minus top-2 probability below which the cascade asks the LLM.
        llm_options: extra keyword arguments of :class:`~vidsense.agents.scoring.LLMReasoner`
            (``strategy``, ``calibration_weight``, ``embedding_weight``, ``hints``).
    """

    llm: LLMConfig = field(default_factory=LLMConfig)
    embedding_model: str = "minilm-l6-v2"
    shortlist: int = 20
    cascade_margin: float = MARGIN
    llm_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ReasonerConfig":
        """The reasoning room's part of the product settings."""
        llm = LLMConfig(
            backend=settings.llm_backend,
            model=settings.llm_model or "",
            n_ctx=settings.llm_n_ctx,
            threads=settings.llm_threads,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            timeout_s=settings.llm_timeout_s,
        )
        return cls(llm=llm, embedding_model=str(settings.embedding_model), shortlist=settings.shortlist, cascade_margin=settings.cascade_margin)


# name -> builder(room): the reasoning methods a caller can pick.
def llm_route(room: "Reasoner") -> ReasoningMethod:
    """``llm``: an embedding shortlist, then the LLM scores every candidate."""
    return room.llm_method()


def embedding_route(room: "Reasoner") -> ReasoningMethod:
    """``embedding``: the timeline against label descriptions."""
    # Bundled descriptions only: the embedding route never loads the LLM.
    return EmbeddingReasoner(room.index, functools.partial(room.descriptions, generate=False))


def fused_route(room: "Reasoner") -> ReasoningMethod:
    """``fused``: evidence fusion, no LLM."""
    return room.fused_method()


def cascade_route(room: "Reasoner") -> ReasoningMethod:
    """``cascade``: fused; the LLM re-ranks close calls (``cascade_margin``)."""
    # The stage reads the fused candidates' names (no hints, no embedding shortlist), so it needs no
    # label descriptions: generating them for a user's set would cost its first close call every
    # label's LLM sentence (400 Kinetics labels in plain words: tens of minutes on 2 cores).
    llm = room.llm_method(hints=False, max_timeline_chars=COMPACT_TIMELINE_CHARS, generate_descriptions=False)
    return CascadeReasoner(room.fused_method(), llm, margin=room.config.cascade_margin)


# name -> "module:attr" of a builder (room) -> ReasoningMethod (see services/registry.py); a
# Pipeline adds routes built from other rooms with Reasoner.add_method (``concepts``).
REASONERS: dict[str, str] = {
    "llm": "vidsense.agents.reasoner:llm_route",
    "embedding": "vidsense.agents.reasoner:embedding_route",
    "fused": "vidsense.agents.reasoner:fused_route",
    "cascade": "vidsense.agents.reasoner:cascade_route",
}


class Reasoner:
    """Classifies timelines into label sets; owns the LLM and the sentence encoder.

    Models load on first use (an ``embedding``-only run never loads the LLM),
    once, under a lock, so batch threads can share one Reasoner.

    Args:
        config: what to load.
        env: where models come from and where they run.
        llm: a ready language model (instead of loading ``config.llm``).
        encoder: a ready sentence encoder (instead of loading ``config.embedding_model``).
        descriptions: ``labelset -> {label: description}`` (default: bundled,
            cached, or generated with this room's LLM and cached under ``env.home``).
    """

    def __init__(
        self,
        config: ReasonerConfig,
        env: ModelEnv,
        *,
        llm: LanguageModel | None = None,
        encoder: TextEncoder | None = None,
        descriptions: Callable[[LabelSet], dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.env = env
        # The default route may never load the LLM; a model file the user named is still
        # checked now (8 bytes), so a wrong path fails at once instead of passing unnoticed.
        if llm is None and config.llm.backend == "llama-cpp" and _names_a_file(config.llm.model):
            check_gguf(Path(config.llm.model).expanduser())
        self._llm = llm
        self._encoder = encoder
        self._descriptions = descriptions
        self._index: LabelIndex | None = None
        self._methods: dict[str, ReasoningMethod] = {}
        self._added: dict[str, Callable[[], ReasoningMethod]] = {}
        self._lock = threading.RLock()

    def _once(self, attr: str, load: Callable[[], Any]) -> Any:
        """``self.<attr>``, set by ``load()`` on first use (under the lock: threads share a room)."""
        with self._lock:
            if getattr(self, attr) is None:
                setattr(self, attr, load())
            return getattr(self, attr)

    @property
    def llm(self) -> LanguageModel:
        """The language model (loaded on first use)."""
        return self._once("_llm", lambda: load_llm(self.config.llm, self.env))

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder (loaded on first use); the concept room embeds with it too."""
        return self._once("_encoder", lambda: load_sentence_encoder(self.config.embedding_model, self.env))

    @property
    def index(self) -> LabelIndex:
        """Label embeddings of every label set in use."""
        # Named without loading the encoder: a cached re-run reads every vector it needs from disk.
        name = self.config.embedding_model if self._encoder is None else getattr(self._encoder, "name", None)
        return self._once(
            "_index",
            lambda: LabelIndex(lambda: self.encoder, cache_dir=Path(self.env.home) / "label-index", name=name, vocabulary=transfer_vocabulary),
        )

    def descriptions(self, labelset: LabelSet, generate: bool = True, progress: Counts | None = None) -> dict[str, str]:
        """``{label: description}`` for ``labelset`` (a user set's are generated with the LLM once, then cached).

        Args:
            generate: when False, the bundled descriptions only (none for a user's set), without
                loading the LLM: what the routes without an LLM read, so that their answer for a
                user's set does not depend on whether the ``llm`` route generated descriptions
                for it before (measured: those descriptions cost the fast route 2 of 85 top-1).
            progress: called with ``(labels described, labels to describe)`` while they are generated.
        """
        if self._descriptions is not None:
            return self._descriptions(labelset)
        if not generate:
            return bundled_descriptions(labelset)
        return label_descriptions(labelset, self.env.home, llm=lambda: self.llm, encoder=lambda: self.encoder, progress=progress)

    def prepare(self, labelset: LabelSet, method: str, progress: Counts | None = None) -> None:
        """Do the one-time work route ``method`` needs on ``labelset`` before its first video.

        The ``llm`` route reads a description of every label: a user's set is described by the LLM
        once (a sentence a label, cached under ``env.home``), which on 2 cores takes about 5 s a
        label (measured: 8 labels in 46 s), half an hour for a set of 400. Done here, a caller can
        show it (``progress``: ``(labels described, labels to describe)``) instead of a first video
        that seems to hang. The other routes need nothing and return at once, without loading a model.
        """
        if method == "llm":
            self.descriptions(labelset, progress=progress)

    def llm_method(self, generate_descriptions: bool = True, **options: Any) -> LLMReasoner:
        """A new :class:`~vidsense.agents.scoring.LLMReasoner` on this room's models.

        Args:
            generate_descriptions: a user's set gets LLM-written label descriptions (see
                :meth:`descriptions`); when False it is read by its names (bundled sets keep theirs).
            options: overrides of ``config.llm_options`` (for comparing variants).
        """
        kwargs = {**self.config.llm_options, **options}
        descriptions = self.descriptions if generate_descriptions else functools.partial(self.descriptions, generate=False)
        return LLMReasoner(lambda: self.llm, self.index, descriptions, shortlist=self.config.shortlist, prior_dir=priors_dir(self.env.home), **kwargs)

    def fused_method(self) -> FusedReasoner:
        """The fast route: every evidence scorer on this room's encoder, fused with the label set's weights
        (fitted ones under ``env.home``, else the bundled defaults)."""
        with self._lock:
            if "fused" not in self._methods:
                # The fast route never loads the LLM: a user's set is read by its names.
                descriptions = functools.partial(self.descriptions, generate=False)
                self._methods["fused"] = FusedReasoner(default_scorers(self.index, descriptions), weights_for(self.env.home))
            return self._methods["fused"]  # type: ignore[return-value]

    def evidence_sources(self, labelset: LabelSet) -> tuple[list[TransferScorer], dict[str, float]]:
        """The fast route's transfer scorers and its fusion weight per source for ``labelset``
        (what the concept room turns into evidence concepts)."""
        fused = self.fused_method()
        return [s for s in fused.scorers if isinstance(s, TransferScorer)], dict(fused.weights(labelset).weights)

    def fit_fusion(self, labelset: LabelSet, examples: Iterable[tuple[Timeline, str]], source: str = "") -> tuple[FusionWeights, Path]:
        """Fit the fusion weights of ``labelset`` on labelled timelines and store them for the fused routes.

        Raises:
            InputError: a label outside the label set, or no example.
        """
        fused = self.fused_method()
        data = []
        for timeline, label in examples:
            if label not in labelset.labels:
                raise InputError(f"{timeline.video.path}: label {label!r} is not in label set {labelset.name!r}")
            scores, _ = fused.sources(timeline, labelset)
            data.append(FitExample(tuple(scores), labelset.index(label)))
        weights = fit_weights(data, fused.weights(labelset), fitted_on=source)
        return weights, weights.save(fitted_path(self.env.home, labelset))

    def method(self, name: str = "llm") -> ReasoningMethod:
        """The reasoning method ``name`` (a :data:`REASONERS` name or one added with :meth:`add_method`), built once.

        Raises:
            InputError: an unknown name.
        """
        with self._lock:
            if name not in self._methods:
                if name in REASONERS:
                    self._methods[name] = resolve(REASONERS, name, "reasoner")(self)
                elif name in self._added:
                    self._methods[name] = self._added[name]()
                else:
                    raise InputError(f"unknown reasoner {name!r}; known: {', '.join([*REASONERS, *self._added])}")
            return self._methods[name]

    def add_method(self, name: str, build: Callable[[], ReasoningMethod]) -> None:
        """Offer a method a later room builds (the SDK adds ``concepts``: the concept bottleneck
        answers), under ``name``; built on first use like the others."""
        with self._lock:
            self._added[name] = build

    def load(self, name: str = "llm") -> None:
        """Load every model method ``name`` uses (before batch threads start), and, for the routes
        that carry perception classes into labels, the vocabulary's vectors."""
        _ = self.encoder
        if name in ("fused", "cascade"):
            self.index.warm()
        if name == "llm":
            _ = self.llm
        self.method(name)

    def classify(self, timeline: Timeline, labelset: LabelSet, *, method: str = "llm", modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        """The prediction of method ``method`` for ``timeline``."""
        return self.method(method).classify(timeline, labelset, modalities=modalities, top_k=top_k)

    def justify(self, timeline: Timeline, prediction: Prediction, labelset: LabelSet, *, modalities: Iterable[str] | None = None) -> Prediction:
        """``prediction`` with the LLM's one- or two-sentence reason for its label."""
        method = self.method("llm")
        assert isinstance(method, LLMReasoner)
        return method.explain(timeline, prediction, labelset, modalities=modalities)

    def scorer(self, labelset: LabelSet, candidates: Iterable[str], method: str = "llm") -> ScoreFn:
        """``timeline -> {label: probability}`` over a fixed candidate list (for occlusion).

        The candidates stay fixed so that removing a window cannot change which
        labels are compared, only how the method scores them.
        """
        sub = LabelSet.from_labels(labelset.name, list(candidates))
        m = self.method(method)

        def score(timeline: Timeline) -> dict[str, float]:
            pred = m.classify(timeline, sub, top_k=len(sub))
            return {c.label: c.score for c in pred.candidates}

        return score

    def close(self) -> None:
        """Free the LLM now (llama.cpp contexts hold memory until closed)."""
        with self._lock:
            close = getattr(self._llm, "close", None)
            if callable(close):
                close()
            self._llm = None
            self._methods.clear()


def _names_a_file(model: str) -> bool:
    """Whether an LLM setting is a file path rather than a model-store name."""
    return bool(model) and (os.sep in model or model.lower().endswith(".gguf") or Path(model).expanduser().is_file())
