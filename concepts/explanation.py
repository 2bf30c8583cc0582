"""The schema of an explanation: which concepts, when, and how they relate in time.

:func:`~vidsense.concepts.views.explain` returns an :class:`Explanation`,
the one documented schema everything downstream (CLI ``--format json|text``,
SDK, dashboard) reads. Its top-level sections, in JSON (``Explanation.to_dict()``):

``prediction``
    The concept model's top-1 label, its probability, and the top-k as
    ``{"label", "score"}`` entries (the shared
    :class:`~vidsense.services.schema.LabelScore`; ``score`` is the probability).
``agreement``
    The LLM's label (when given), whether the concept model agrees, and the
    concept model's own top-k (``{"label", "score"}``), so a reader sees when
    the explanation is of a different decision than the one the LLM made.
``windows`` / ``concepts``
    The windows (time spans and the text the activations were computed from)
    and the concept bank (index, text, kind) that the other sections index.
``global``
    Concept importance for the explained class: each concept's time-weighted
    contribution ``sum_t w_t * z[t, c] * W[k, c]`` with ``w = softmax_t(l_t / tau)``,
    the weights of the log-sum-exp pooling (MoTIF's global explanation).
``local``
    Per-window importance ``w_t``, each window's score and its top concepts,
    the most important windows, and a windows x top-concepts contribution matrix.
``temporal``
    Per-concept attention maps (``T x T``, row = query window) for the most
    important concepts, with each concept's gate (share of attended signal).
``attributions``
    Captum Integrated Gradients over the windows x concepts input (per concept,
    per window, top cells, and the convergence delta: the gap between the sum
    of attributions and the change of the explained logit from an all-zero
    input), and Feature Ablation of the explained class's probability grouped
    by window (Captum, baseline = empty window) and by modality (recomputed:
    activations of the timeline rendered without that modality).
``occlusion``
    Faithfulness to the LLM: its probability of its own label when each window
    and each modality is removed from the timeline and re-scored
    (``None`` unless a ``score_fn`` is given; see :mod:`vidsense.agents.occlusion`).
``interventions``
    Remove / boost a concept, drop a window or a modality, or replace the
    attention maps; each records the label and probability before and after.
``timings``
    Seconds spent per part.
``answer_model``
    On the fused and cascade routes, the views of the model that answered (the route in
    bottleneck form, whose probabilities equal the answer's): Integrated Gradients per
    concept, window and text term with the completeness gap, window ablation, and
    interventions that re-rank the real answer. The concept bank's sections above
    (``prediction`` to ``interventions``) are then empty unless asked for
    (``ExplainOptions.concept_model``, ``explain --concept-model``): they are a second model's,
    and explain the answer only on ``--reasoner concepts``.

Probabilities are a softmax over the concept model's pooled logits.

Schema version 2 (``schema_version``): the top-k entries of ``prediction.top_k``
and ``agreement.concept_top_k`` are ``{"label", "score"}`` (version 1 named
the probability ``probability``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from vidsense.agents.occlusion import Occlusion
from vidsense.services.schema import LabelScore

if TYPE_CHECKING:
    from vidsense.concepts.motif import AttentionMode

SCHEMA_VERSION = "2"
InterventionAction = Literal["remove_concept", "boost_concept", "drop_window", "drop_modality", "drop_source", "attention"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class ConceptPrediction(_Frozen):
    """The concept model's decision."""

    label: str
    index: int
    probability: float
    logit: float
    top_k: list[LabelScore]


class Agreement(_Frozen):
    """Whether the concept model chose the label the user was given (by any route: fused evidence or the LLM)."""

    llm_label: str | None = Field(description="the returned label: the reasoner's top-1 (None when no prediction was given)")
    concept_label: str
    agrees: bool | None = Field(description="concept top-1 == returned label (None without a prediction)")
    llm_label_rank: int | None = Field(None, description="1-based rank of the returned label in the concept model's ranking")
    answer_probability: float | None = Field(None, description="the concept model's probability of the returned label")
    answer_route: str = Field("", description="the route that answered (fused, llm, embedding)")
    explained_label: str = Field(description="the class every view below explains")
    concept_top_k: list[LabelScore]


class WindowInfo(_Frozen):
    """One window of the video."""

    index: int
    start_s: float
    end_s: float
    label: str
    text: str = Field("", description="the window text the activations were computed from")


class ConceptInfo(_Frozen):
    """One concept of the bank."""

    index: int
    text: str
    kind: str
    source: str = Field("", description="'' for a text concept; the perception source of an evidence concept (action, objects, ...)")


class ConceptScore(_Frozen):
    """A concept's contribution to the explained class."""

    concept: int
    text: str
    kind: str
    value: float
    share: float = Field(0.0, description="value / sum of positive values in the same list")
    source: str = Field("", description="'' for a text concept; the perception source of an evidence concept")


class GlobalView(_Frozen):
    """Time-weighted concept importance for the explained class."""

    label: str
    concepts: list[ConceptScore] = Field(description="top concepts with a positive contribution, largest first")
    bias: float
    total: float = Field(description="sum of all concepts' contributions plus the bias")


class WindowContribution(_Frozen):
    """One window's part in the decision."""

    window: int
    importance: float = Field(description="softmax_t(l_t / tau): the window's weight in the pooled score")
    score: float = Field(description="the window's logit for the explained class")
    top_concepts: list[ConceptScore]


class LocalView(_Frozen):
    """Per-window contributions."""

    time_importance: list[float]
    top_windows: list[int] = Field(description="window indices, most important first")
    windows: list[WindowContribution]
    concepts: list[int] = Field(description="columns of `matrix`: the global top concepts")
    matrix: list[list[float]] = Field(description="[windows x concepts] contribution z[t,c]*W[k,c]")


class ConceptAttention(_Frozen):
    """One concept's attention over time."""

    concept: int
    text: str
    gate: float = Field(description="share of the attended signal in the concept's value")
    attention: list[list[float]] = Field(description="[T x T], row = query window, rows sum to 1")
    peak_source: list[int] = Field(description="for each query window, the window it attends to most")


class TemporalView(_Frozen):
    """Per-concept attention maps for the top concepts."""

    concepts: list[ConceptAttention]


class CellScore(_Frozen):
    """An attribution of one (window, concept) input cell."""

    window: int
    concept: int
    text: str
    value: float


class IntegratedGradients(_Frozen):
    """Captum Integrated Gradients of the explained logit, baseline all-zero activations."""

    n_steps: int
    convergence_delta: float = Field(description="sum(attributions) - (f(x) - f(baseline))")
    output_difference: float = Field(description="f(x) - f(baseline)")
    by_concept: list[ConceptScore]
    by_window: list[float]
    top_cells: list[CellScore]


class AblationScore(_Frozen):
    """The explained class's probability with one group removed."""

    group: str = Field(description="window index as text, or a modality name")
    probability: float
    delta: float = Field(description="base probability - probability without the group")


class FeatureAblation(_Frozen):
    """Feature ablation of the explained class's probability."""

    base_probability: float
    by_window: list[AblationScore]
    by_modality: list[AblationScore]


class Attributions(_Frozen):
    """Gradient and ablation attributions."""

    integrated_gradients: IntegratedGradients | None
    feature_ablation: FeatureAblation | None


class InterventionResult(_Frozen):
    """What one intervention changed."""

    action: InterventionAction
    target: str = Field(description="the concept text, window index, modality or attention mode")
    factor: float | None = None
    label_before: str
    label_after: str
    probability_before: float = Field(description="probability of the explained label before")
    probability_after: float = Field(description="probability of the explained label after")
    changed: bool = Field(description="the top-1 label changed")
    top_k_after: list[LabelScore] = Field(default_factory=list, description="the re-ranked labels after it (answering model only)")


class SourceContribution(_Frozen):
    """One evidence source's part in the fused route's score of the answer."""

    source: str
    weight: float = Field(description="the source's fusion weight")
    contribution: float = Field(description="how far it pushed the answer above the average label (fused log-score units)")
    concepts: list[ConceptScore] = Field(description="the classes it saw that carried its push, largest first (value = share of the push)")


class AnswerView(_Frozen):
    """The answer decomposed by the model that gave it: the fast route's own sources, classes and windows.

    Exact for the fused route: the contributions of the sources sum to the answer's
    fused log-score above the average label, and each transfer source's push is split
    over the classes it saw in proportion to the mass each gave the answer
    (time-averaged score x transfer weight), and over the windows they were seen in.
    """

    label: str
    route: str
    sources: list[SourceContribution]
    windows: list[float] = Field(description="per window, the transfer sources' push that came from it")
    note: str = ""


class AnswerConceptScore(_Frozen):
    """A concept of the answering model and what it did to the answer (log-probability units)."""

    concept: int = Field(description="column of the answering model (-1: a whole-video text term)")
    source: str
    text: str
    attribution: float = Field(description="Integrated Gradients share of log p(answer) - log p_empty(answer)")
    removal: float = Field(0.0, description="log p(answer) with the concept removed minus now (negative: it supported the answer)")


class AnswerWindowScore(_Frozen):
    """A window's part in the answer."""

    window: int
    start_s: float
    end_s: float
    relevance: float = Field(description="Integrated Gradients summed over the window's concepts")
    ablation: float = Field(description="log p(answer) with the window emptied minus now")
    top_concepts: list[AnswerConceptScore]


class AnswerModelView(_Frozen):
    """The views of the model that answered: the fused route in bottleneck form (concepts/bottleneck.py).

    Its probabilities equal the route's; an LLM step, when the cascade ran one, is on top of it
    and named in ``decided_by``.
    """

    label: str = Field(description="the answer the user got")
    fused_label: str = Field(description="the bottleneck's own top-1 (differs from label only when an LLM step changed it)")
    probability: float = Field(description="the bottleneck's probability of the answer")
    route: str
    decided_by: str = Field(description="'the fused evidence' or 'the LLM step'")
    note: str = ""
    top_k: list[LabelScore]
    sources: list[str] = Field(description="the sources that voted")
    n_concepts: int
    concepts: list[AnswerConceptScore] = Field(description="global concept importance: largest |attribution| first")
    text_terms: list[AnswerConceptScore] = Field(description="the text sources, whole-video terms (concept -1)")
    windows: list[AnswerWindowScore] = Field(description="local relevance and temporal importance (window ablation), in time order")
    ig_total: float = Field(description="log p(answer) - log p(answer | empty video)")
    ig_gap: float = Field(description="ig_total minus the sum of every attribution (completeness gap)")
    ig_steps: int
    interventions: list[InterventionResult]


class Explanation(_Frozen):
    """One explanation; see the module docstring for each section."""

    schema_version: str = SCHEMA_VERSION
    label_set: str
    bank_hash: str = ""
    encoder: str = Field("", description="what produced the activations: the sentence encoder, then any joint models blended in, joined by '+'")
    model: dict[str, Any] = Field(default_factory=dict, description="trained flag, seed, config of the concept model")
    prediction: ConceptPrediction | None = Field(None, description="the concept model's decision (None when it was not run)")
    agreement: Agreement | None = None
    windows: list[WindowInfo] = Field(default_factory=list)
    concepts: list[ConceptInfo] = Field(default_factory=list)
    global_: GlobalView | None = Field(None, alias="global")
    local: LocalView | None = None
    temporal: TemporalView | None = None
    attributions: Attributions | None = None
    occlusion: Occlusion | None
    interventions: list[InterventionResult] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="what was skipped and why (a single-window video, ...)")
    answer: AnswerView | None = Field(None, description="the answer decomposed by the route that gave it (fused and cascade routes)")
    answer_model: AnswerModelView | None = Field(None, description="the views of the model that answered (fused and cascade routes)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the documented section names (``global``, not ``global_``)."""
        return self.model_dump(by_alias=True, mode="json")

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to JSON."""
        return self.model_dump_json(by_alias=True, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Explanation":
        """Parse :meth:`to_dict` output."""
        return cls.model_validate(data)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of an explanation."""
        return cls.model_json_schema(by_alias=True)


@dataclass(frozen=True)
class InterventionSpec:
    """An intervention to run and record.

    Attributes:
        action: what to do.
        concept: concept index (``remove_concept`` / ``boost_concept``).
        window: window index (``drop_window``).
        modality: modality name (``drop_modality``).
        factor: multiplier for ``boost_concept``.
        attention: ``identity`` / ``uniform`` / ``reversed`` (``attention``).
        source: evidence source (``drop_source``: the answering model only).
    """

    action: InterventionAction
    concept: int | None = None
    window: int | None = None
    modality: str | None = None
    factor: float = 2.0
    attention: AttentionMode | None = None
    source: str | None = None


@dataclass(frozen=True)
class ExplainOptions:
    """Sizes and switches of an explanation.

    Attributes:
        top_k: labels in ``prediction.top_k`` / ``agreement.concept_top_k``.
        top_concepts: concepts in the global view and local matrix.
        window_concepts: concepts listed per window.
        top_windows: windows in ``local.top_windows``.
        attention_maps: concepts with an attention map in ``temporal``.
        ig_steps: Integrated Gradients steps.
        attributions: compute Captum attributions.
        default_interventions: run the standard interventions (top concepts removed,
            the top concept boosted, the top window dropped, each modality dropped,
            each attention mode).
        interventions: extra interventions to run.
        boost: factor of the standard boost intervention.
        concept_model: run the concept bank's model too (default: only when the answer has no
            answering model to explain it, i.e. routes llm, embedding and concepts).
    """

    top_k: int = 5
    top_concepts: int = 10
    window_concepts: int = 3
    top_windows: int = 3
    attention_maps: int = 5
    # 32 steps: on the labelled eval set (benchmarks/concept_calibration.py, 32 rows) the
    # completeness gap stayed under 2.7% of the explained score difference, median 0.3%
    # (16 steps: up to 8.4%; 64 steps: under 1.5%, at about twice the time).
    ig_steps: int = 32
    attributions: bool = True
    default_interventions: bool = True
    interventions: tuple[InterventionSpec, ...] = field(default_factory=tuple)
    boost: float = 2.0
    # None: the concept bank's model runs only when no answering model explains the answer
    # (routes llm, embedding, concepts); True: always, as a second model beside it.
    concept_model: bool | None = None
