"""Reasoners: turn a timeline and a label set into a prediction.

:class:`LLMReasoner` shortlists candidates by embedding similarity, then scores
each shortlisted label's log-likelihood under the LLM given the classification
prompt, so the answer is always a member of the label set.
:class:`EmbeddingReasoner` stops after the similarity ranking (fast mode, and
the baseline the LLM must beat). Reasoners are picked by name from
:data:`REASONERS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from vidsense.agents import prompts, shortlist
from vidsense.agents.labels import LabelSet
from vidsense.agents.llm import LanguageModel, load_llm
from vidsense.services.timeline import Timeline

log = logging.getLogger(__name__)

# Tokens kept free in the context for the longest candidate and the chat template's tail.
CONTEXT_MARGIN = 64
# Below this top-1 probability (or with nothing observed) a prediction is flagged.
LOW_CONFIDENCE = 0.2


@dataclass(frozen=True)
class LabelScore:
    """A label (exact spelling of its set) and its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """A reasoner's answer for one timeline.

    Attributes:
        label: the chosen label, spelled as in the label set.
        top_k: best labels with probabilities, best first.
        labelset: name of the label set.
        reasoner: registry name of the reasoner.
        candidates: every label the reasoner scored, with its probability
            (the shortlist for large sets), best first.
        low_confidence: nothing was observed, or the top probability is low.
        stats: timings (seconds) and token counts.
    """

    label: str
    top_k: tuple[LabelScore, ...]
    labelset: str
    reasoner: str
    candidates: tuple[LabelScore, ...]
    low_confidence: bool = False
    justification: str = ""
    stats: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def probability(self, label: str) -> float:
        """Probability of ``label`` (0 when it was not a candidate)."""
        return next((c.score for c in self.candidates if c.label == label), 0.0)


class Reasoner(Protocol):
    """Something that classifies a timeline into a label set."""

    name: str

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        ...


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _prediction(name: str, labelset: LabelSet, idx: np.ndarray, probs: np.ndarray, top_k: int, empty: bool, stats: dict[str, float]) -> Prediction:
    order = np.argsort(-probs, kind="stable")
    cands = tuple(LabelScore(labelset.labels[int(idx[i])], round(float(probs[i]), 6)) for i in order)
    top = cands[:top_k]
    low = empty or top[0].score < LOW_CONFIDENCE
    return Prediction(top[0].label, top, labelset.name, name, cands, low, "", stats)


class EmbeddingReasoner:
    """Nearest label description to the timeline text in sentence-embedding space."""

    name = "embedding"

    def __init__(self, settings, descriptions: Callable[[LabelSet], dict[str, str]] | None = None) -> None:
        self.settings = settings
        self._descriptions = descriptions

    def ranking(self, timeline: Timeline, labelset: LabelSet, modalities: Iterable[str] | None = None) -> np.ndarray:
        """Similarity of the timeline to every label of the set."""
        desc = self._descriptions(labelset) if self._descriptions else None
        return shortlist.similarities(self.settings, labelset, timeline.render(modalities), desc)

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        t0 = time.perf_counter()
        sims = self.ranking(timeline, labelset, modalities)
        idx = np.arange(len(labelset))
        # Cosine similarities are squeezed into a narrow band; a temperature makes them usable as probabilities.
        probs = _softmax(sims / 0.05)
        stats = {"embedding_s": time.perf_counter() - t0}
        return _prediction(self.name, labelset, idx, probs, top_k, timeline.only(modalities).is_empty, stats)


class LLMReasoner:
    """Shortlist by embeddings, then let the LLM score every shortlisted label."""

    name = "llm"

    def __init__(self, settings, llm: LanguageModel | None = None, descriptions: Callable[[LabelSet], dict[str, str]] | None = None) -> None:
        self.settings = settings
        self._llm = llm
        self.embedding = EmbeddingReasoner(settings, descriptions)

    @property
    def llm(self) -> LanguageModel:
        if self._llm is None:
            self._llm = load_llm(self.settings)
        return self._llm

    def fit_prompt(self, candidates: list[str], timeline: Timeline, modalities: Iterable[str] | None) -> tuple[str, int]:
        """The chat prompt, with the timeline shortened until it fits the context.

        Priority when shortening: candidates are never dropped; the timeline keeps
        its earliest windows whole and loses later ones (render's ``max_chars``),
        halving the budget until the prompt fits.

        Returns:
            The prompt text and its token count.
        """
        mods = list(modalities) if modalities is not None else None
        text = timeline.render(mods)
        budget: int | None = None
        while True:
            chat = prompts.classification_prompt(candidates, text)
            rendered = self.llm.render_chat(chat.messages())
            n = self.llm.count_tokens(rendered)
            if n + CONTEXT_MARGIN <= self.llm.n_ctx:
                return rendered, n
            budget = len(text) // 2 if budget is None else budget // 2
            if budget < 40:
                text = ""
                chat = prompts.classification_prompt(candidates, text)
                rendered = self.llm.render_chat(chat.messages())
                return rendered, self.llm.count_tokens(rendered)
            text = timeline.render(mods, max_chars=budget)

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        t0 = time.perf_counter()
        n = self.settings.shortlist
        if len(labelset) > n:
            sims = self.embedding.ranking(timeline, labelset, modalities)
            idx = shortlist.shortlist(sims, n)
        else:
            idx = np.arange(len(labelset))
        t1 = time.perf_counter()
        candidates = [labelset.readable[int(i)] for i in idx]
        prompt, n_prompt = self.fit_prompt(candidates, timeline, modalities)
        scores, st = self.llm.score(prompt, candidates)
        logp = np.array([s.logprob for s in scores])
        probs = _softmax(logp)
        stats = {
            "shortlist_s": t1 - t0,
            "prompt_s": st.prompt_s,
            "scoring_s": st.scoring_s,
            "prompt_tokens": float(n_prompt),
            "prompt_tokens_reused": float(st.prompt_tokens_reused),
            "scored_tokens": float(st.scored_tokens),
            "candidates": float(len(candidates)),
        }
        return _prediction(self.name, labelset, idx, probs, top_k, timeline.only(modalities).is_empty, stats)


REASONERS: dict[str, Callable[..., Reasoner]] = {"llm": LLMReasoner, "embedding": EmbeddingReasoner}
