"""Explain one prediction of the concept model: which concepts, when, and how they relate in time.

:func:`explain` assembles an :class:`~vidsense.concepts.explanation.Explanation`
(the schema and its JSON sections are documented in :mod:`vidsense.concepts.explanation`)
from the concept views computed here, the Captum attributions
(:mod:`vidsense.concepts.attribution`), the interventions
(:mod:`vidsense.concepts.interventions`) and, given a scorer, LLM occlusion
(:mod:`vidsense.agents.occlusion`). :func:`explain_timeline` first computes the
activations of a timeline.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from vidsense.agents.occlusion import ScoreFn, occlusion
from vidsense.concepts.activations import (
    ActivationCache,
    Activations,
    JointEvidence,
    TextEncoder,
    activations_by_modality,
    concept_activations,
)
from vidsense.concepts.attribution import _floats, _scores, feature_ablation, integrated_gradients
from vidsense.concepts.bank import ConceptBank
from vidsense.concepts.explanation import (
    Agreement,
    Attributions,
    ConceptAttention,
    ConceptInfo,
    ConceptPrediction,
    ExplainOptions,
    Explanation,
    GlobalView,
    LocalView,
    TemporalView,
    WindowContribution,
    WindowInfo,
)
from vidsense.concepts.interventions import NEEDS_WINDOWS, default_interventions, intervene
from vidsense.concepts.motif import MotifCard, MotifModel
from vidsense.services.errors import InputError
from vidsense.services.schema import LabelScore

if TYPE_CHECKING:
    from vidsense.services.timeline import Timeline


# A contribution under this (in logit units) is no evidence: a concept the text view would
# print as "+0.000" (a faint Kinetics neighbour at a time weight near 0) is left out.
SHOWN_MIN = 5e-4


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
    route: str = "",
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
        score_fn=score_fn, target=target, route=route, options=options,
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
    route: str = "",
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
            the returned label to explain the concept evidence for the answer the user got).
        route: the route that answered (``fused``, ``llm``), for the agreement section.
        options: sizes and switches.
    """
    card.check_bank(bank)
    if activations.bank_hash != bank.hash:
        raise InputError("activations were computed with a different concept bank")
    labels = list(card.labels)
    kinds = [c.kind for c in bank.concepts]
    sources = [c.source for c in bank.concepts]
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
    top_k = [LabelScore(label=labels[i], score=float(probs[i])) for i in order[: options.top_k]]
    pred_idx = order[0]
    if target is not None and target not in labels:
        raise InputError(f"label {target!r} is not in label set {card.label_set!r}")
    k = labels.index(target) if target is not None else pred_idx
    prediction = ConceptPrediction(label=labels[pred_idx], index=pred_idx, probability=float(probs[pred_idx]), logit=float(out.logits[0, pred_idx]), top_k=top_k)
    agreement = _agreement(labels, order, probs, top_k, llm_scores, labels[k], route)

    # Time importance of the explained class (the forward pass reports it for the top-1).
    tau = model.config.tau
    logits_k = out.logits_t[0, :, k]
    w_t = torch.softmax(logits_k / tau, dim=0)
    weight_k = model.classifier_weight()[k].detach()
    contrib_t = out.concepts_t[0] * weight_k  # [T, C]
    contrib = (w_t[:, None] * contrib_t).sum(dim=0)  # [C]
    bias = float(model.bias[k].detach())
    top_c = [int(j) for j in torch.argsort(contrib, descending=True)[: options.top_concepts] if contrib[j] > SHOWN_MIN]
    global_view = GlobalView(
        label=labels[k],
        concepts=_scores(top_c, contrib, texts, kinds, sources),
        bias=bias,
        total=float(contrib.sum()) + bias,
    )
    top_w = [int(t) for t in torch.argsort(w_t, descending=True)[: options.top_windows]]
    local_windows = []
    for t in range(contrib_t.shape[0]):
        row = contrib_t[t]
        best = [int(j) for j in torch.argsort(row, descending=True)[: options.window_concepts] if row[j] > SHOWN_MIN]
        local_windows.append(WindowContribution(window=t, importance=float(w_t[t]), score=float(logits_k[t]), top_concepts=_scores(best, row, texts, kinds, sources)))
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
            integrated_gradients=integrated_gradients(model, x, k, texts, kinds, options.ig_steps, options.top_concepts, sources),
            feature_ablation=feature_ablation(model, x, k, modality_activations or {}),
        )
    timings["attributions"] = round(time.perf_counter() - t0, 4)

    t0 = time.perf_counter()
    n_windows = int(x.shape[1])
    specs = list(default_interventions(top_c, top_w, modality_activations or {}, options.boost, n_windows) if options.default_interventions else [])
    notes = []
    for spec in options.interventions:
        # A clip shorter than one window is a normal input (most HMDB-51 clips are 1-3 s): what
        # needs two windows is skipped and said, the rest of the explanation still comes.
        if spec.action in NEEDS_WINDOWS and n_windows < 2:
            notes.append(f"intervention {spec.action} skipped: the video has a single window")
        else:
            specs.append(spec)
    if n_windows < 2:
        notes.append("single window: no window is compared with another (temporal views are trivial)")
    results = [intervene(model, x, spec, k, labels, texts, modality_activations or {}, before=probs) for spec in specs]
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
        concepts=[ConceptInfo(index=j, text=c.text, kind=c.kind, source=c.source) for j, c in enumerate(bank.concepts)],
        global_=global_view,
        local=local_view,
        temporal=temporal,
        attributions=attributions,
        occlusion=occ,
        interventions=results,
        timings=timings,
        notes=notes,
    )


def _agreement(
    labels: list[str], order: list[int], probs: torch.Tensor, top_k: list[LabelScore], llm_scores: Mapping[str, float] | None, explained: str, route: str
) -> Agreement:
    concept_label = labels[order[0]]
    if not llm_scores:
        return Agreement(llm_label=None, concept_label=concept_label, agrees=None, explained_label=explained, concept_top_k=top_k)
    answer = max(llm_scores, key=lambda lab: llm_scores[lab])
    rank = next((r + 1 for r, i in enumerate(order) if labels[i] == answer), None)
    return Agreement(
        llm_label=answer,
        concept_label=concept_label,
        agrees=answer == concept_label,
        llm_label_rank=rank,
        answer_probability=float(probs[labels.index(answer)]) if answer in labels else None,
        answer_route=route,
        explained_label=explained,
        concept_top_k=top_k,
    )
