"""The answering model in bottleneck form: the fused route as concepts -> per-window class evidence -> pooling -> labels.

The default route (:class:`~vidsense.agents.fusion.FusedReasoner`) already is a concept
bottleneck in all but form. Its concepts are the classes the perception models name (Kinetics
actions, COCO objects, ImageNet classes, AudioSet sounds, gestures), each active in a window
with the model's own score there:

    A[t, c]      activation of concept c in window t (the sum of the scores naming it there)
    E_s[t, k]  = sum_c A[t, c] W_s[c, k]                  per-window class evidence of source s
    m_s[k]     = mean_t E_s[t, k] + OPEN_MASS             temporal pooling
    z[k]       = sum_s w_s / T * log(m_s[k] / sum_l m_s[l])  +  sum_u w_u / T * g_u * b_u[k]
    p          = softmax(z)                                the probabilities the user gets

``W_s`` are the route's own transfer weights (label-name similarity, an exact name passing
straight through), ``w_s`` and ``T`` its fusion weights and temperature. The text sources
(pose phrases, what is said, on-screen text, the whole timeline's text) compare a whole text
with the labels, so they enter as whole-video terms ``b_u`` (their bounded log-probabilities),
each with a gate ``g_u`` (1 when present). :class:`AnswerModel` computes ``p`` from the
activation matrix along its own code path; ``tests/test_bottleneck.py`` checks it equals the
route's answer to 1e-6.

Its views are of the model that answered: Integrated Gradients over ``(A, g)`` from the empty
video (every concept at 0, every text term absent: the uniform distribution) with the
completeness gap, per concept (global), per window and cell (local), window ablation
(temporal), and interventions that re-rank the real answer without perceiving again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from vidsense.agents.evidence import OPEN_MASS, TransferScorer
from vidsense.agents.fusion import FusedReasoner, bounded_logp
from vidsense.concepts.explanation import AnswerConceptScore, AnswerModelView, AnswerWindowScore, InterventionResult, InterventionSpec
from vidsense.services.errors import InputError
from vidsense.services.schema import LabelScore, LabelSet, Prediction
from vidsense.services.timeline import Timeline, Window

# Integrated Gradients: the path from the empty video is integrated on a grid of this many
# points, geometric in alpha (a source's vote moves where its mass passes OPEN_MASS, at
# alpha of about 1e-6 / mass, so a uniform grid would step over it).
IG_STEPS = 256
IG_FIRST = 1e-12


@dataclass(frozen=True)
class Block:
    """A transfer source's part of the model: its concepts' columns and their weights into the labels."""

    source: str
    columns: tuple[int, ...]
    transfer: np.ndarray  # [len(columns), K]
    weight: float


@dataclass(frozen=True)
class TextTerm:
    """A text source's whole-video vote (its bounded log-probabilities) and its fusion weight."""

    source: str
    logp: np.ndarray  # [K]
    weight: float


@dataclass(frozen=True)
class Attribution:
    """Integrated Gradients of ``log p(target)`` from the empty video to this one.

    Attributes:
        cells: ``[T, C]`` attribution of each concept in each window.
        texts: attribution of each text term (in :attr:`AnswerModel.texts` order).
        gap: ``log p(target) - log p_empty(target) - (cells.sum() + texts.sum())``.
        total: ``log p(target) - log p_empty(target)``, what the attributions share out.
    """

    cells: np.ndarray
    texts: np.ndarray
    gap: float
    total: float


@dataclass(frozen=True)
class AnswerModel:
    """The fused route for one timeline and label set, as a concept bottleneck.

    Attributes:
        labels: the label set's labels (the columns of every class vector).
        windows: the timeline's windows (the rows of :attr:`activations`).
        concepts: ``(source, class name)`` of each column.
        activations: ``[T, C]`` the concepts' activations.
        blocks: the transfer sources that saw anything.
        texts: the text sources that read anything.
        temperature: the fused softmax's temperature.
    """

    labels: tuple[str, ...]
    windows: tuple[Window, ...]
    concepts: tuple[tuple[str, str], ...]
    activations: np.ndarray
    blocks: tuple[Block, ...]
    texts: tuple[TextTerm, ...]
    temperature: float

    @classmethod
    def build(cls, fused: FusedReasoner, timeline: Timeline, labelset: LabelSet, modalities: Iterable[str] | None = None) -> "AnswerModel":
        """The bottleneck of ``fused`` on ``timeline``: activations read from the observations, the
        route's transfer weights, fusion weights and text sources' votes (restricted to ``modalities``
        as the route would be)."""
        mods = None if modalities is None else list(modalities)
        weights = fused.weights(labelset)
        row_of = {w.index: i for i, w in enumerate(timeline.windows)}
        concepts: list[tuple[str, str]] = []
        cells: list[tuple[int, int, float]] = []
        blocks: list[Block] = []
        texts: list[TextTerm] = []
        for scorer in fused.scorers:
            w = float(weights.weights.get(scorer.name, 0.0))
            if isinstance(scorer, TransferScorer):
                read = scorer.modalities if mods is None else tuple(m for m in scorer.modalities if m in set(mods))
                column: dict[str, int] = {}
                for o in timeline.only(read).observations:
                    name = scorer.name_of(o.text) if o.kind in scorer.kinds else ""
                    if not name or o.window not in row_of:
                        continue
                    if name not in column:
                        column[name] = len(concepts)
                        concepts.append((scorer.name, name))
                    cells.append((row_of[o.window], column[name], float(o.score)))
                if column:
                    names = sorted(column)
                    blocks.append(Block(scorer.name, tuple(column[n] for n in names), scorer.transfer(names, labelset), w))
            else:
                s = scorer.score(timeline, labelset, mods)
                if s is not None:
                    texts.append(TextTerm(scorer.name, bounded_logp(s), w))
        a = np.zeros((len(timeline.windows), len(concepts)))
        for t, c, v in cells:
            a[t, c] += v
        return cls(tuple(labelset.labels), tuple(timeline.windows), tuple(concepts), a, tuple(blocks), tuple(texts), float(weights.temperature))

    # -- the forward pass ------------------------------------------------------

    def _masses(self, a: np.ndarray) -> list[np.ndarray]:
        pooled = a.mean(axis=0) if len(a) else np.zeros(a.shape[1])
        return [pooled[list(b.columns)] @ b.transfer + OPEN_MASS for b in self.blocks]

    def logits(self, activations: np.ndarray | None = None, gates: np.ndarray | None = None) -> np.ndarray:
        """``z``: the fused log-scores over the labels (``activations`` default: the video's; ``gates`` default: all text terms present)."""
        a = self.activations if activations is None else activations
        g = np.ones(len(self.texts)) if gates is None else gates
        z = np.zeros(len(self.labels))
        for b, m in zip(self.blocks, self._masses(a)):
            z += b.weight * np.log(m / m.sum())
        for u, gate in zip(self.texts, g):
            z += gate * u.weight * u.logp
        return z / self.temperature

    def probabilities(self, activations: np.ndarray | None = None, gates: np.ndarray | None = None) -> np.ndarray:
        """The label probabilities (softmax of :meth:`logits`)."""
        z = self.logits(activations, gates)
        e = np.exp(z - z.max())
        return e / e.sum()

    def label_index(self, label: str) -> int:
        """Column of ``label`` (raises :class:`InputError` when it is not in the label set)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise InputError(f"label {label!r} is not in the label set") from None

    # -- attributions ----------------------------------------------------------

    def gradient(self, target: int, activations: np.ndarray | None = None, gates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``d log p(target) / d A`` ``[T, C]`` and ``/ d g`` ``[texts]``, analytically.

        For a concept ``c`` of source ``s``: ``w_s / (T n) * (W[c, target] / m_s[target] - sum_k p_k W[c, k] / m_s[k])``,
        the same in every window (pooling is a mean); for a text term: ``w_u / T * (b_u[target] - sum_k p_k b_u[k])``.
        """
        a = self.activations if activations is None else activations
        g = np.ones(len(self.texts)) if gates is None else gates
        p = self.probabilities(a, g)
        n = max(len(a), 1)
        grad = np.zeros(a.shape[1])
        for b, m in zip(self.blocks, self._masses(a)):
            r = b.transfer / m  # [C_s, K]
            grad[list(b.columns)] = b.weight / (self.temperature * n) * (r[:, target] - r @ p)
        dg = np.array([u.weight / self.temperature * (u.logp[target] - float(u.logp @ p)) for u in self.texts])
        return np.broadcast_to(grad, a.shape).copy(), dg

    def integrated_gradients(self, target: int, steps: int = IG_STEPS) -> Attribution:
        """IG of ``log p(target)`` along ``alpha * (A, g)``, ``alpha`` from 0 (the empty video) to 1,
        trapezoids on a geometric grid; the gap says how well the sum matches the change."""
        alphas = np.concatenate([[0.0], np.geomspace(IG_FIRST, 1.0, steps)])
        ones = np.ones(len(self.texts))
        grads = [self.gradient(target, al * self.activations, al * ones) for al in alphas]
        da = np.diff(alphas)
        cell = sum(d * (g0[0] + g1[0]) / 2 for d, g0, g1 in zip(da, grads, grads[1:]))
        text = sum(d * (g0[1] + g1[1]) / 2 for d, g0, g1 in zip(da, grads, grads[1:]))
        cells = self.activations * cell
        texts = np.asarray(text, dtype=float)
        logp = np.log(self.probabilities()[target])
        empty = np.log(self.probabilities(np.zeros_like(self.activations), np.zeros(len(self.texts)))[target])
        total = float(logp - empty)
        return Attribution(cells, texts, total - float(cells.sum() + texts.sum()), total)

    # -- interventions ---------------------------------------------------------

    def without_windows(self, windows: Sequence[int]) -> np.ndarray:
        """The activations with the given windows (rows) emptied."""
        a = self.activations.copy()
        a[list(windows)] = 0.0
        return a

    def scaled(self, factors: Mapping[int, float]) -> np.ndarray:
        """The activations with concept columns scaled (0 removes a concept)."""
        a = self.activations.copy()
        for c, f in factors.items():
            if not 0 <= c < a.shape[1]:
                raise InputError(f"no concept #{c} in the answering model ({a.shape[1]} concepts)")
            a[:, c] *= f
        return a

    def without_source(self, source: str) -> "AnswerModel":
        """The model as the route would be with ``source`` absent (neither voting nor diluting)."""
        if source not in self.sources:
            raise InputError(f"no source {source!r} in the answering model (it has {', '.join(self.sources)})")
        return AnswerModel(
            self.labels, self.windows, self.concepts, self.activations,
            tuple(b for b in self.blocks if b.source != source), tuple(u for u in self.texts if u.source != source), self.temperature,
        )

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source that votes, transfer sources first."""
        return tuple(b.source for b in self.blocks) + tuple(u.source for u in self.texts)


# -- views and interventions of the answering model ------------------------------

# Concepts listed in the global view, and per window.
TOP_CONCEPTS = 10
WINDOW_CONCEPTS = 3
BOOST = 2.0
# Labels an intervention's result lists after re-ranking.
TOP_AFTER = 5
# Where an intervention that drops a modality rebuilds the model: the route read without it.
Rebuild = Callable[[list[str]], "AnswerModel"]


def _logp(p: np.ndarray, k: int) -> float:
    return float(np.log(max(float(p[k]), 1e-300)))


def _result(spec: InterventionSpec, name: str, labels: Sequence[str], before: np.ndarray, after: np.ndarray, target: int, factor: float | None = None) -> InterventionResult:
    lb, la = int(np.argmax(before)), int(np.argmax(after))
    ranked = np.argsort(-after, kind="stable")[:TOP_AFTER]
    return InterventionResult(
        action=spec.action, target=name, factor=factor, label_before=labels[lb], label_after=labels[la],
        probability_before=float(before[target]), probability_after=float(after[target]), changed=lb != la,
        top_k_after=[LabelScore(labels[int(i)], round(float(after[i]), 6)) for i in ranked],
    )


def intervene_answer(model: AnswerModel, spec: InterventionSpec, target: int, rebuild: Rebuild | None = None, modalities: Sequence[str] = ()) -> InterventionResult:
    """Re-rank the answer under one intervention on the answering model (no perception, no LLM).

    Args:
        model: the answering model.
        spec: remove / boost a concept (a column of ``model``), drop a window, a source or a modality.
        target: the label whose probability is recorded.
        rebuild: ``modalities -> model`` for ``drop_modality`` (the route reading the timeline without it).
        modalities: the modalities the model was built from (what ``drop_modality`` removes one of).

    Raises:
        InputError: the spec names a concept, window, source or modality that does not exist,
            or asks for an attention mode (the answering model pools windows by their mean).
    """
    before = model.probabilities()
    labels = model.labels
    if spec.action in ("remove_concept", "boost_concept"):
        if spec.concept is None or not 0 <= spec.concept < len(model.concepts):
            raise InputError(f"intervention {spec.action}: no concept #{spec.concept} in the answering model ({len(model.concepts)} concepts)")
        factor = 0.0 if spec.action == "remove_concept" else spec.factor
        after = model.probabilities(model.scaled({spec.concept: factor}))
        return _result(spec, f"{model.concepts[spec.concept][0]}: {model.concepts[spec.concept][1]}", labels, before, after, target, factor)
    if spec.action == "drop_window":
        if spec.window is None or not 0 <= spec.window < len(model.windows):
            raise InputError(f"intervention drop_window: no window #{spec.window}")
        return _result(spec, str(spec.window), labels, before, model.probabilities(model.without_windows([spec.window])), target)
    if spec.action == "drop_source":
        return _result(spec, str(spec.source), labels, before, model.without_source(str(spec.source)).probabilities(), target)
    if spec.action == "drop_modality":
        if rebuild is None or spec.modality not in modalities:
            raise InputError(f"intervention drop_modality: no modality {spec.modality!r} to drop (the answer read {', '.join(modalities) or 'none'})")
        return _result(spec, str(spec.modality), labels, before, rebuild([m for m in modalities if m != spec.modality]).probabilities(), target)
    raise InputError(f"intervention {spec.action}: the answering model pools windows by their mean; it has no attention to replace")


def default_answer_interventions(model: AnswerModel, top_concepts: Sequence[int], top_window: int | None) -> list[InterventionSpec]:
    """Remove each of the top 3 concepts, boost the top one, drop the most relevant window, drop each source."""
    specs = [InterventionSpec("remove_concept", concept=c) for c in top_concepts[:3]]
    specs += [InterventionSpec("boost_concept", concept=c, factor=BOOST) for c in top_concepts[:1]]
    specs += [InterventionSpec("drop_window", window=top_window)] if top_window is not None and len(model.windows) > 1 else []
    specs += [InterventionSpec("drop_source", source=s) for s in model.sources]
    return specs


def explain_answer(
    model: AnswerModel,
    prediction: Prediction,
    *,
    rebuild: Rebuild | None = None,
    modalities: Sequence[str] = (),
    extra: Iterable[InterventionSpec] = (),
    top_k: int = 5,
    top: int = TOP_CONCEPTS,
) -> AnswerModelView:
    """The views of the answering model for the answer the user got (``prediction.label``).

    Args:
        model: the fused route in bottleneck form for the prediction's timeline.
        prediction: the route's answer (fused, or cascade with or without its LLM step).
        rebuild / modalities: for interventions that drop a modality (see :func:`intervene_answer`).
        extra: interventions to run besides the standard ones.
        top_k: labels listed.
        top: concepts listed in the global view.
    """
    k = model.label_index(prediction.label)
    p = model.probabilities()
    base = _logp(p, k)
    ig = model.integrated_gradients(k)
    per_concept = ig.cells.sum(axis=0)

    def score(c: int, value: float, removal: float = 0.0) -> AnswerConceptScore:
        source, text = model.concepts[c]
        return AnswerConceptScore(concept=c, source=source, text=text, attribution=round(float(value), 6), removal=round(removal, 6))

    order = [int(c) for c in np.argsort(-np.abs(per_concept), kind="stable")]
    concepts = [score(c, per_concept[c], _logp(model.probabilities(model.scaled({c: 0.0})), k) - base) for c in order[:top]]
    texts = [AnswerConceptScore(concept=-1, source=u.source, text=f"{u.source} (whole video)", attribution=round(float(v), 6)) for u, v in zip(model.texts, ig.texts)]
    windows = []
    for t, w in enumerate(model.windows):
        cells = ig.cells[t]
        best = [int(c) for c in np.argsort(-cells, kind="stable")[:WINDOW_CONCEPTS] if cells[c] > 0]
        ablation = _logp(model.probabilities(model.without_windows([t])), k) - base
        windows.append(AnswerWindowScore(window=w.index, start_s=w.start_s, end_s=w.end_s, relevance=round(float(cells.sum()), 6),
                                         ablation=round(ablation, 6), top_concepts=[score(c, cells[c]) for c in best]))
    supporting = [c for c in order if per_concept[c] > 0]
    top_window = int(np.argmax([w.relevance for w in windows])) if windows else None
    specs = [*default_answer_interventions(model, supporting, top_window), *extra]
    fused_label = model.labels[int(np.argmax(p))]
    llm = prediction.route == "llm"
    note = ""
    if llm and fused_label != prediction.label:
        note = f"the LLM step re-ranked the fused candidates and chose {prediction.label}; the fused evidence ranked {fused_label} first"
    elif llm:
        note = "the LLM step re-ranked the fused candidates and kept the fused evidence's first label"
    ranked = np.argsort(-p, kind="stable")[:top_k]
    return AnswerModelView(
        label=prediction.label, fused_label=fused_label, probability=round(float(p[k]), 6), route=prediction.route or prediction.reasoner,
        decided_by="the LLM step" if llm and fused_label != prediction.label else "the fused evidence", note=note,
        top_k=[LabelScore(model.labels[int(i)], round(float(p[i]), 6)) for i in ranked], sources=list(model.sources),
        n_concepts=len(model.concepts), concepts=concepts, text_terms=texts, windows=windows,
        ig_total=round(ig.total, 6), ig_gap=round(ig.gap, 6), ig_steps=IG_STEPS,
        interventions=[intervene_answer(model, s, k, rebuild, modalities) for s in specs],
    )
