"""Explanations of one prediction: which concepts, when, and how they relate in time.

:func:`explain` returns an :class:`Explanation`, the one documented schema
everything downstream (CLI ``--format json|text``, SDK, dashboard) reads. Its
top-level sections, in JSON (``Explanation.to_dict()``):

``prediction``
    The concept model's top-1 label, its probability, and the top-k.
``agreement``
    The LLM's label (when given), whether the concept model agrees, and the
    concept model's own top-k, so a reader sees when the explanation is of a
    different decision than the one the LLM made.
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
    (``None`` unless a ``score_fn`` is given).
``interventions``
    Remove / boost a concept, drop a window or a modality, or replace the
    attention maps; each records the label and probability before and after.
``timings``
    Seconds spent per part.

Probabilities are a softmax over the concept model's pooled logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vidsense.concepts.activations import (
    ActivationCache,
    Activations,
    JointEvidence,
    TextEncoder,
    activations_by_modality,
    concept_activations,
    present_modalities,
)
from vidsense.concepts.bank import ConceptBank
from vidsense.concepts.motif import AttentionMode, MotifCard, MotifModel
from vidsense.services.errors import InputError

if TYPE_CHECKING:
    from vidsense.services.timeline import Timeline

SCHEMA_VERSION = "1"
ScoreFn = Callable[["Timeline"], Mapping[str, float]]
InterventionAction = Literal["remove_concept", "boost_concept", "drop_window", "drop_modality", "attention"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class LabelScore(_Frozen):
    """A label and its probability."""

    label: str
    probability: float


class Prediction(_Frozen):
    """The concept model's decision."""

    label: str
    index: int
    probability: float
    logit: float
    top_k: list[LabelScore]


class Agreement(_Frozen):
    """Whether the concept model and the LLM chose the same label."""

    llm_label: str | None = Field(description="the LLM's top-1 label (None when no LLM result was given)")
    concept_label: str
    agrees: bool | None = Field(description="concept top-1 == LLM top-1 (None without an LLM result)")
    llm_label_rank: int | None = Field(None, description="1-based rank of the LLM's label in the concept model's ranking")
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


class ConceptScore(_Frozen):
    """A concept's contribution to the explained class."""

    concept: int
    text: str
    kind: str
    value: float
    share: float = Field(0.0, description="value / sum of positive values in the same list")


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


class Explanation(_Frozen):
    """One explanation; see the module docstring for each section."""

    schema_version: str = SCHEMA_VERSION
    label_set: str
    bank_hash: str
    encoder: str = Field("", description="what produced the activations: the sentence encoder, then any joint models blended in, joined by '+'")
    model: dict[str, Any] = Field(description="trained flag, seed, config of the concept model")
    prediction: Prediction
    agreement: Agreement
    windows: list[WindowInfo]
    concepts: list[ConceptInfo]
    global_: GlobalView = Field(alias="global")
    local: LocalView
    temporal: TemporalView
    attributions: Attributions
    occlusion: Occlusion | None
    interventions: list[InterventionResult]
    timings: dict[str, float]

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
    """

    action: InterventionAction
    concept: int | None = None
    window: int | None = None
    modality: str | None = None
    factor: float = 2.0
    attention: AttentionMode | None = None


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
    """

    top_k: int = 5
    top_concepts: int = 10
    window_concepts: int = 3
    top_windows: int = 3
    attention_maps: int = 5
    ig_steps: int = 64
    attributions: bool = True
    default_interventions: bool = True
    interventions: tuple[InterventionSpec, ...] = field(default_factory=tuple)
    boost: float = 2.0


def explain_timeline(
    timeline: "Timeline",
    bank: ConceptBank,
    model: MotifModel,
    card: MotifCard,
    encoder: TextEncoder,
    *,
    llm_scores: Mapping[str, float] | None = None,
    score_fn: ScoreFn | None = None,
    target: str | None = None,
    cache: ActivationCache | None = None,
    joint: JointEvidence | None = None,
    options: ExplainOptions = ExplainOptions(),
) -> Explanation:
    """Compute activations for ``timeline`` (all modalities and each modality left out) and :func:`explain`.

    ``joint`` (from :func:`~vidsense.concepts.joint.joint_evidence`) is blended
    into every one of them, its parts of a left-out modality zeroed.
    """
    start = time.perf_counter()
    acts = concept_activations(timeline, bank, encoder, cache=cache)
    if joint is not None:
        acts = joint.apply(acts)
    by_modality = activations_by_modality(timeline, bank, encoder, "without", cache, joint)
    seconds = time.perf_counter() - start
    expl = explain(
        model, card, bank, acts,
        modality_activations=by_modality, timeline=timeline, llm_scores=llm_scores,
        score_fn=score_fn, target=target, options=options,
    )
    return expl.model_copy(update={"timings": {"activations": round(seconds, 4), **expl.timings}})


def explain(
    model: MotifModel,
    card: MotifCard,
    bank: ConceptBank,
    activations: Activations,
    *,
    modality_activations: Mapping[str, Activations] | None = None,
    timeline: "Timeline | None" = None,
    llm_scores: Mapping[str, float] | None = None,
    score_fn: ScoreFn | None = None,
    target: str | None = None,
    options: ExplainOptions = ExplainOptions(),
) -> Explanation:
    """Explain the concept model's decision on one video.

    Args:
        model: the MoTIF model.
        card: its card (checked against ``bank``).
        bank: the concept bank (columns of ``activations``).
        activations: the video's activations.
        modality_activations: per modality, the activations of the timeline
            rendered *without* it (for modality ablation / interventions).
        timeline: the timeline (needed for ``occlusion``).
        llm_scores: the LLM's ``{label: probability}`` for the agreement section.
        score_fn: ``timeline -> {label: probability}`` (the LLM) for occlusion.
        target: the label to explain (default: the concept model's top-1; pass
            the LLM's label to explain the concept evidence for its decision).
        options: sizes and switches.
    """
    card.check_bank(bank)
    if activations.bank_hash != bank.hash:
        raise InputError("activations were computed with a different concept bank")
    labels = list(card.labels)
    kinds = [c.kind for c in bank.concepts]
    texts = list(bank.texts)
    model.eval()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    x = torch.from_numpy(np.asarray(activations.matrix, dtype=np.float32)).unsqueeze(0)
    with torch.no_grad():
        out = model(x)
    probs = torch.softmax(out.logits[0], dim=0)
    timings["classify"] = round(time.perf_counter() - t0, 4)

    t0 = time.perf_counter()
    order = torch.argsort(probs, descending=True).tolist()
    top_k = [LabelScore(label=labels[i], probability=float(probs[i])) for i in order[: options.top_k]]
    pred_idx = order[0]
    if target is not None and target not in labels:
        raise InputError(f"label {target!r} is not in label set {card.label_set!r}")
    k = labels.index(target) if target is not None else pred_idx
    prediction = Prediction(label=labels[pred_idx], index=pred_idx, probability=float(probs[pred_idx]), logit=float(out.logits[0, pred_idx]), top_k=top_k)
    agreement = _agreement(labels, order, top_k, llm_scores, labels[k])

    # Time importance of the explained class (the forward pass reports it for the top-1).
    tau = model.config.tau
    logits_k = out.logits_t[0, :, k]
    w_t = torch.softmax(logits_k / tau, dim=0)
    weight_k = model.classifier_weight()[k].detach()
    contrib_t = out.concepts_t[0] * weight_k  # [T, C]
    contrib = (w_t[:, None] * contrib_t).sum(dim=0)  # [C]
    bias = float(model.bias[k].detach())
    top_c = [int(j) for j in torch.argsort(contrib, descending=True)[: options.top_concepts] if contrib[j] > 0]
    global_view = GlobalView(
        label=labels[k],
        concepts=_scores(top_c, contrib, texts, kinds),
        bias=bias,
        total=float(contrib.sum()) + bias,
    )
    top_w = [int(t) for t in torch.argsort(w_t, descending=True)[: options.top_windows]]
    local_windows = []
    for t in range(contrib_t.shape[0]):
        row = contrib_t[t]
        best = [int(j) for j in torch.argsort(row, descending=True)[: options.window_concepts] if row[j] > 0]
        local_windows.append(WindowContribution(window=t, importance=float(w_t[t]), score=float(logits_k[t]), top_concepts=_scores(best, row, texts, kinds)))
    local_view = LocalView(
        time_importance=_floats(w_t),
        top_windows=top_w,
        windows=local_windows,
        concepts=top_c,
        matrix=[_floats(contrib_t[t, top_c]) for t in range(contrib_t.shape[0])],
    )
    gates = torch.sigmoid(model.gate).detach()
    temporal = TemporalView(
        concepts=[
            ConceptAttention(
                concept=j,
                text=texts[j],
                gate=float(gates[j]),
                attention=[_floats(r) for r in out.attention[0, j]],
                peak_source=[int(i) for i in out.attention[0, j].argmax(dim=-1)],
            )
            for j in top_c[: options.attention_maps]
        ]
    )
    timings["concept_views"] = round(time.perf_counter() - t0, 4)

    t0 = time.perf_counter()
    attributions = Attributions(integrated_gradients=None, feature_ablation=None)
    if options.attributions:
        attributions = Attributions(
            integrated_gradients=integrated_gradients(model, x, k, texts, kinds, options.ig_steps, options.top_concepts),
            feature_ablation=feature_ablation(model, x, k, modality_activations or {}),
        )
    timings["attributions"] = round(time.perf_counter() - t0, 4)

    t0 = time.perf_counter()
    specs = list(default_interventions(top_c, top_w, modality_activations or {}, options.boost) if options.default_interventions else [])
    specs += list(options.interventions)
    results = [intervene(model, x, spec, k, labels, texts, modality_activations or {}) for spec in specs]
    timings["interventions"] = round(time.perf_counter() - t0, 4)

    occ = None
    if score_fn is not None:
        if timeline is None:
            raise ValueError("occlusion needs the timeline")
        t0 = time.perf_counter()
        occ = occlusion(timeline, score_fn, label=agreement.llm_label)
        timings["occlusion"] = round(time.perf_counter() - t0, 4)

    window_texts = activations.texts or ("",) * len(activations.windows)
    return Explanation(
        label_set=card.label_set,
        bank_hash=bank.hash,
        encoder=activations.encoder,
        model={"trained": card.trained, "seed": card.seed, "tau": model.config.tau, "nonneg": model.config.nonneg},
        prediction=prediction,
        agreement=agreement,
        windows=[WindowInfo(index=w.index, start_s=w.start_s, end_s=w.end_s, label=w.label, text=txt) for w, txt in zip(activations.windows, window_texts)],
        concepts=[ConceptInfo(index=j, text=c.text, kind=c.kind) for j, c in enumerate(bank.concepts)],
        global_=global_view,
        local=local_view,
        temporal=temporal,
        attributions=attributions,
        occlusion=occ,
        interventions=results,
        timings=timings,
    )


def _agreement(labels: list[str], order: list[int], top_k: list[LabelScore], llm_scores: Mapping[str, float] | None, explained: str) -> Agreement:
    concept_label = labels[order[0]]
    if not llm_scores:
        return Agreement(llm_label=None, concept_label=concept_label, agrees=None, explained_label=explained, concept_top_k=top_k)
    llm_label = max(llm_scores, key=lambda lab: llm_scores[lab])
    rank = next((r + 1 for r, i in enumerate(order) if labels[i] == llm_label), None)
    return Agreement(
        llm_label=llm_label,
        concept_label=concept_label,
        agrees=llm_label == concept_label,
        llm_label_rank=rank,
        explained_label=explained,
        concept_top_k=top_k,
    )


def integrated_gradients(
    model: MotifModel, x: torch.Tensor, target: int, texts: Sequence[str], kinds: Sequence[str], n_steps: int = 64, top: int = 10
) -> IntegratedGradients:
    """Captum Integrated Gradients of the ``target`` logit over the ``[T, C]`` input (baseline zeros)."""
    from captum.attr import IntegratedGradients as CaptumIG

    def logit(inp: torch.Tensor) -> torch.Tensor:
        return model(inp).logits[:, target]

    baseline = torch.zeros_like(x)
    attr, delta = CaptumIG(logit).attribute(x, baselines=baseline, n_steps=n_steps, return_convergence_delta=True)
    attr = attr[0].detach()
    with torch.no_grad():
        diff = float(logit(x)[0] - logit(baseline)[0])
    by_concept = attr.sum(dim=0)
    top_c = [int(j) for j in torch.argsort(by_concept.abs(), descending=True)[:top] if by_concept[j] != 0]
    flat = torch.argsort(attr.abs().flatten(), descending=True)[:top]
    cells = [divmod(int(i), attr.shape[1]) for i in flat]
    return IntegratedGradients(
        n_steps=n_steps,
        convergence_delta=float(delta.abs().max()),
        output_difference=diff,
        by_concept=_scores(top_c, by_concept, texts, kinds),
        by_window=_floats(attr.sum(dim=1)),
        top_cells=[CellScore(window=t, concept=j, text=texts[j], value=float(attr[t, j])) for t, j in cells],
    )


def feature_ablation(model: MotifModel, x: torch.Tensor, target: int, modality_activations: Mapping[str, Activations]) -> FeatureAblation:
    """Probability drop of ``target`` with each window zeroed (Captum) and each modality left out (recomputed)."""
    from captum.attr import FeatureAblation as CaptumFA

    def prob(inp: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(inp).logits, dim=1)[:, target]

    with torch.no_grad():
        base = float(prob(x)[0])
        t = x.shape[1]
        groups = torch.arange(t).view(1, t, 1).expand_as(x)
        attr = CaptumFA(prob).attribute(x, baselines=0.0, feature_mask=groups)[0, :, 0]
        by_window = [AblationScore(group=str(i), probability=base - float(attr[i]), delta=float(attr[i])) for i in range(t)]
        by_modality = []
        for m, acts in modality_activations.items():
            p = float(prob(torch.from_numpy(acts.matrix).unsqueeze(0))[0])
            by_modality.append(AblationScore(group=m, probability=p, delta=base - p))
    return FeatureAblation(base_probability=base, by_window=by_window, by_modality=by_modality)


def default_interventions(top_concepts: Sequence[int], top_windows: Sequence[int], modality_activations: Mapping[str, Activations], boost: float = 2.0) -> list[InterventionSpec]:
    """The standard set: remove each of the top 3 concepts, boost the top one, drop the top window, drop each modality, every attention mode."""
    specs = [InterventionSpec("remove_concept", concept=j) for j in top_concepts[:3]]
    specs += [InterventionSpec("boost_concept", concept=j, factor=boost) for j in top_concepts[:1]]
    specs += [InterventionSpec("drop_window", window=t) for t in top_windows[:1]]
    specs += [InterventionSpec("drop_modality", modality=m) for m in modality_activations]
    specs += [InterventionSpec("attention", attention=mode) for mode in ("identity", "uniform", "reversed")]
    return specs


def intervene(
    model: MotifModel,
    x: torch.Tensor,
    spec: InterventionSpec,
    target: int,
    labels: Sequence[str],
    texts: Sequence[str],
    modality_activations: Mapping[str, Activations] | None = None,
) -> InterventionResult:
    """Re-predict under one intervention and record what changed.

    Raises:
        InputError: the intervention names a concept, window or modality that does not exist.
    """
    inp, kwargs, name, factor = x, {}, "", None
    if spec.action in ("remove_concept", "boost_concept"):
        if spec.concept is None or not 0 <= spec.concept < len(texts):
            raise InputError(f"intervention {spec.action}: no concept #{spec.concept}")
        factor = 0.0 if spec.action == "remove_concept" else spec.factor
        kwargs["concept_scale"] = {spec.concept: factor}
        name = texts[spec.concept]
    elif spec.action == "drop_window":
        if spec.window is None or not 0 <= spec.window < x.shape[1]:
            raise InputError(f"intervention drop_window: no window #{spec.window}")
        if x.shape[1] < 2:
            raise InputError("intervention drop_window: the video has a single window")
        kwargs["drop_windows"] = [spec.window]
        name = str(spec.window)
    elif spec.action == "drop_modality":
        acts = (modality_activations or {}).get(spec.modality or "")
        if acts is None:
            raise InputError(f"intervention drop_modality: no activations without modality {spec.modality!r}")
        inp = torch.from_numpy(acts.matrix).unsqueeze(0)
        name = spec.modality or ""
    else:
        kwargs["attention"] = spec.attention
        name = str(spec.attention)
    with torch.no_grad():
        before = torch.softmax(model(x).logits[0], dim=0)
        after = torch.softmax(model(inp, **kwargs).logits[0], dim=0)
    lb, la = int(before.argmax()), int(after.argmax())
    return InterventionResult(
        action=spec.action,
        target=name,
        factor=factor,
        label_before=labels[lb],
        label_after=labels[la],
        probability_before=float(before[target]),
        probability_after=float(after[target]),
        changed=lb != la,
    )


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
    present = present_modalities(timeline)
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


def render_text(expl: Explanation, max_concepts: int = 6) -> str:
    """A plain-text view of an explanation for terminals (``--format text``)."""
    p, a, g = expl.prediction, expl.agreement, expl.global_
    lines = [f"Concept model: {p.label} ({p.probability:.2f})   top-{len(p.top_k)}: " + ", ".join(f"{s.label} {s.probability:.2f}" for s in p.top_k)]
    if a.llm_label is not None:
        verdict = "agrees" if a.agrees else f"disagrees (LLM's label is #{a.llm_label_rank} for the concept model)"
        lines.append(f"LLM: {a.llm_label} - concept model {verdict}")
    lines.append(f"\nWhy {g.label}: concepts (time-weighted contribution)")
    peak = max((c.value for c in g.concepts), default=0.0) or 1.0
    for c in g.concepts[:max_concepts]:
        lines.append(f"  {c.text:28.28s} {c.kind:10s} {c.value:+.3f} {_bar(c.value / peak)}")
    lines.append("\nWhen: most important windows")
    for t in expl.local.top_windows:
        w, lw = expl.windows[t], expl.local.windows[t]
        tops = ", ".join(f"{c.text} {c.value:+.2f}" for c in lw.top_concepts) or "-"
        lines.append(f"  [{w.label:>9s}] weight {lw.importance:.2f} {_bar(lw.importance)}  {tops}")
    if expl.temporal.concepts:
        lines.append("\nHow in time: where each top concept's evidence comes from")
        for ca in expl.temporal.concepts[:3]:
            src = ", ".join(f"{expl.windows[q].label}<-{expl.windows[s].label}" for q, s in enumerate(ca.peak_source) if q != s)
            lines.append(f"  {ca.text}: gate {ca.gate:.2f}; " + (src or "each window uses its own evidence"))
    ig = expl.attributions.integrated_gradients
    if ig is not None:
        lines.append(f"\nIntegrated Gradients (delta {ig.convergence_delta:.1e}): " + ", ".join(f"{c.text} {c.value:+.3f}" for c in ig.by_concept[:max_concepts]))
    fa = expl.attributions.feature_ablation
    if fa is not None and fa.by_modality:
        lines.append("Without each modality: " + ", ".join(f"{m.group} {-m.delta:+.3f}" for m in fa.by_modality))
    if expl.occlusion is not None:
        o = expl.occlusion
        worst = sorted(o.windows, key=lambda s: -s.drop)[:3]
        lines.append(f"\nLLM occlusion of {o.label} (p={o.base_probability:.2f}): windows " + ", ".join(f"{expl.windows[int(s.group)].label} {-s.drop:+.2f}" for s in worst))
        if o.modalities:
            lines.append("  modalities: " + ", ".join(f"{s.group} {-s.drop:+.2f}" for s in o.modalities))
    if expl.interventions:
        lines.append("\nInterventions")
        for r in expl.interventions:
            what = f"{r.action} {r.target}" + (f" x{r.factor:g}" if r.action == "boost_concept" else "")
            change = f"-> {r.label_after}" if r.changed else "(same label)"
            lines.append(f"  {what:36.36s} p({g.label}) {r.probability_before:.2f} -> {r.probability_after:.2f} {change}")
    return "\n".join(lines)


def _scores(indices: Sequence[int], values: torch.Tensor, texts: Sequence[str], kinds: Sequence[str]) -> list[ConceptScore]:
    positive = float(sum(max(float(values[j]), 0.0) for j in indices)) or 1.0
    return [ConceptScore(concept=j, text=texts[j], kind=kinds[j], value=float(values[j]), share=max(float(values[j]), 0.0) / positive) for j in indices]


def _floats(t: torch.Tensor) -> list[float]:
    return [round(float(v), 6) for v in t.detach().flatten()]


def _bar(frac: float, width: int = 12) -> str:
    n = int(round(max(0.0, min(1.0, frac)) * width))
    return "#" * n + "." * (width - n)
