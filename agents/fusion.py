"""Fusion: the evidence scorers' log-probabilities combined log-linearly into one prediction.

``z(label) = sum_s w_s * log p_s(label)`` over the sources that saw anything,
then ``softmax(z / temperature)``. Sources absent from a video (no speech, no
action recogniser) neither vote nor dilute.

Untrusted text (speech, on-screen text: words anyone can put in a video) is
evidence with a bounded say, by construction rather than by a list of bad
phrases: its weight is capped at :data:`UNTRUSTED_CAP`, and its log-probabilities
are clipped to :data:`UNTRUSTED_SPREAD` nats below its best label, so one
untrusted source moves the fused log-odds of any label against any other by at
most ``w * UNTRUSTED_SPREAD / temperature``, and both together by at most
:func:`untrusted_bound` (1.5 nats with the bundled weights), whatever the words
are. A sentence spoken in the video can tip a close call but cannot outvote what
is seen; when it did tip one against what is seen, the prediction says so
(:func:`untrusted_warnings`).

:class:`FusedReasoner` is the fast route of the reasoning cascade;
:class:`CascadeReasoner` adds the LLM as a second stage that re-ranks the
fused top candidates only when the fused margin is small.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from vidsense.agents.evidence import EvidenceScorer, SourceScores
from vidsense.agents.scoring import ONLY_WORDS, LLMReasoner, make_prediction, softmax
from vidsense.services.errors import InputError
from vidsense.services.files import write_text_atomically
from vidsense.services.schema import LabelScore, LabelSet, Prediction, SourceVote
from vidsense.services.timeline import Timeline

# The hand-set weights every fit starts from and is pulled toward: the action recogniser
# first, what the pose rules name next, the other sources as support.
PRIOR_WEIGHTS: dict[str, float] = {
    "action": 1.0,
    "objects": 0.3,
    "scene": 0.3,
    "sound": 0.2,
    "gesture": 0.6,
    "body": 0.3,
    "speech": 0.3,
    "text": 0.2,
    "timeline": 0.3,
}
# Bundled weights: the prior. On the development set (benchmarks/devset.py: 85 rows of 82 real
# clips in 7 families, benchmarks/fusion_cv.py) no fit beat it out of fold on every family, with
# one family left out or 5 folds by footage: fitted at the library's L2 0.1 it scored top-1 26/85
# (family left out) and 36/85 (5-fold) against the prior's 37; the pull toward the prior chosen
# inside each fold, 36 and 35. Fits silence the action recogniser (0.16 on every row), pulled by
# the face and talk clips of eval_set.py, and lose UCF-101, HMDB-51 and Kinetics clips for it. The
# weights bundled before (action 0.09, fitted on eval_set.py's 32 rows) scored 22/53 on the rows
# that are not those 32 (the prior 30/53). Rechecked on the 25-frames/s recogniser's observations
# (5 shuffles of the 5-fold split): the pull chosen in each fold holds with one family left out
# (47 against 46) and in 4 shuffles, but in one it loses two UCF-101 clips (45). Any fixed pull of 3
# or more gains one clip, an NTU pick-up second to a near tie, and does so at weights within 0.02 of
# these (pull 30): that is a tie breaking, not a better weighting. Weights fitted per label set
# lose eval-set clips in every shuffle. Weights scaled by each source's
# own confidence (benchmarks/confidence_cv.py) gain a clip or two, names and plain words, but in
# every split lose a free-text or an eval-set clip, so they are not used either. A user's own labelled
# clips refit them per label set (``vidsense fusion fit``).
DEFAULT_WEIGHTS: dict[str, float] = dict(PRIOR_WEIGHTS)
# Most any untrusted source may weigh, whatever a fitted file says.
UNTRUSTED = ("speech", "text")
UNTRUSTED_CAP = 0.5
# Widest log-ratio (nats) an untrusted source may put between two labels. On the labelled set
# (benchmarks/routes.py rows, fused route) 3 kept top-1 and top-5 of the unclipped sources
# (0.50 / 0.72; mean rank 10.1 against 9.8), 2 cost mean rank 11.1 and 1 cost top-5 0.66;
# unclipped, one spoken "archery" gave the speech source a 10-nat log-ratio and flipped the
# real cycling clip (benchmarks/injection.py).
UNTRUSTED_SPREAD = 3.0
# A label that words lifted to the top is flagged when the other sources rank it more than this
# many nats below their own pick (under e^-1, 37%, as likely). The LLM's reading of the words
# cannot move two labels that far (scoring.WORDS_NATS), so only the fused sources can do it.
SIGHT_GAP = 1.0
# Fused top-1 minus top-2 probability below which the cascade asks the LLM. Measured on the
# development set (benchmarks/cascade_cv.py, 85 rows, margin and LLM weight chosen out of fold,
# one family left out and 5 folds by footage): every fold chose 0; at margins 0.05 to 1 the LLM
# stage gave 37 top-1 against the fused route's 38, at 0.5-5.6 s a clip (5.6 s a call, 405
# prompt tokens). So by default it does not run: the cascade answers with the fused route, and
# the LLM re-ranks only when a margin is set (``cascade_margin``) or asked for (``--reasoner llm``).
# Rerun on the 25-frames/s recogniser's observations (5 shuffles of the 5-fold split): the margin
# chosen in each fold (0.05-0.1) gains one clip in five of six splits and none in the sixth, and
# loses a plain-words HMDB-51 clip in every split, at about 1 s a clip, so it stays 0
# (docs/routes-and-accuracy.md).
MARGIN = 0.0
# Fused candidates the LLM re-ranks.
RERANK = 8
# The cascade's LLM reads a compact prompt: no descriptions, the timeline capped at this
# many characters (the whole-video digest first). Prefill costs about 1 s per 100 tokens
# on 2 cores, and a long clip's full timeline runs to thousands. Measured at margin 0.3 on
# the labelled set: 1,200 characters gave top-1 0.41 and about 530 prompt tokens (LLM stage
# 9.6 s on a new video); 600 give 0.47 and about 220 (2.4-2.9 s): the digest carries it.
COMPACT_TIMELINE_CHARS = 600
SOURCES_SHOWN = 3


@dataclass(frozen=True)
class FusionWeights:
    """Per-source weights and the temperature of the fused softmax.

    Attributes:
        weights: ``{source: weight}``; a source not listed weighs 0.
        temperature: the fused log-scores are divided by it before the softmax.
        fitted_on: what the weights were fitted on ('' for the bundled defaults).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    temperature: float = 1.0
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise InputError(f"fusion temperature must be above 0, got {self.temperature}")
        bad = {k: v for k, v in self.weights.items() if v < 0}
        if bad:
            raise InputError(f"fusion weights must not be negative: {bad}")
        capped = {k: (min(v, UNTRUSTED_CAP) if k in UNTRUSTED else v) for k, v in self.weights.items()}
        object.__setattr__(self, "weights", capped)

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "temperature": self.temperature, "fitted_on": self.fitted_on}

    def save(self, path: str | Path) -> Path:
        """Write as JSON (atomically)."""
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "FusionWeights":
        """Read a file written by :meth:`save`.

        Raises:
            InputError: unreadable or malformed file.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(weights={str(k): float(v) for k, v in data["weights"].items()}, temperature=float(data.get("temperature", 1.0)), fitted_on=str(data.get("fitted_on", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: not a fusion weights file ({exc})") from None


def bounded_logp(s: SourceScores) -> np.ndarray:
    """The log-probabilities a source votes with: an untrusted source's clipped to :data:`UNTRUSTED_SPREAD` below its best."""
    if s.source not in UNTRUSTED:
        return s.logp
    return np.maximum(s.logp, s.logp.max() - UNTRUSTED_SPREAD)


def untrusted_bound(weights: FusionWeights) -> float:
    """Most speech and on-screen text together can move the fused log-odds of any label against any other (nats).

    From no words to any words; replacing some words with others moves them by at most twice this.
    """
    return sum(weights.weights.get(name, 0.0) for name in UNTRUSTED) * UNTRUSTED_SPREAD / weights.temperature


def fuse(scores: Sequence[SourceScores], weights: FusionWeights, n_labels: int) -> np.ndarray:
    """Fused log-scores ``[n_labels]`` (not normalised): the weighted sum of the sources' (bounded) log-probabilities."""
    z = np.zeros(n_labels)
    for s in scores:
        w = weights.weights.get(s.source, 0.0)
        if w:
            z += w * bounded_logp(s)
    return z / weights.temperature


def untrusted_warnings(scores: Sequence[SourceScores], weights: FusionWeights, label: int) -> tuple[str, ...]:
    """:data:`ONLY_WORDS` when label ``label`` (an index) is where it is because of speech or on-screen text, against the rest.

    That is: the untrusted sources prefer it to the label the other sources (sight, sound)
    fused alone would pick, and those rank it more than :data:`SIGHT_GAP` nats below their
    pick. Also when no other source had any evidence. A label the picture agrees with, or
    one the picture cannot tell from its own pick, is not flagged.
    """
    words = [s for s in scores if s.source in UNTRUSTED and weights.weights.get(s.source, 0.0)]
    if not words:
        return ()
    seen = [s for s in scores if s.source not in UNTRUSTED and weights.weights.get(s.source, 0.0)]
    said = fuse(words, weights, len(words[0].logp))
    if not seen:
        return (ONLY_WORDS,) if said[label] >= said.max() else ()
    sight = fuse(seen, weights, len(said))
    best = int(np.argmax(sight))
    return (ONLY_WORDS,) if sight[best] - sight[label] > SIGHT_GAP and said[label] > said[best] else ()


def votes(scores: Sequence[SourceScores], weights: FusionWeights, labelset: LabelSet, label: str) -> tuple[SourceVote, ...]:
    """What each source said: its own top labels, and how much it pushed ``label`` above the average label."""
    k = labelset.index(label)
    out = []
    for s in scores:
        w = weights.weights.get(s.source, 0.0)
        order = np.argsort(-s.logp, kind="stable")[:SOURCES_SHOWN]
        top = tuple(LabelScore(labelset.labels[int(i)], round(float(np.exp(s.logp[i])), 4)) for i in order)
        logp = bounded_logp(s)
        push = w * float(logp[k] - logp.mean()) / weights.temperature
        out.append(SourceVote(s.source, round(w, 4), round(s.weight, 4), top, round(push, 4)))
    return tuple(sorted(out, key=lambda v: -v.contribution))


class FusedReasoner:
    """The fast route: every evidence scorer, fused log-linearly (no LLM).

    Args:
        scorers: the evidence scorers.
        weights: ``labelset -> FusionWeights`` (fitted per label set, else the bundled defaults).
    """

    name = "fused"

    def __init__(self, scorers: Sequence[EvidenceScorer], weights: Callable[[LabelSet], FusionWeights] | None = None) -> None:
        self.scorers = tuple(scorers)
        self.weights = weights or (lambda labelset: FusionWeights())

    def sources(self, timeline: Timeline, labelset: LabelSet, modalities: Iterable[str] | None = None) -> tuple[list[SourceScores], dict[str, float]]:
        """Every source's scores for ``timeline`` and the seconds each took."""
        out, stats = [], {}
        for scorer in self.scorers:
            t0 = time.perf_counter()
            s = scorer.score(timeline, labelset, modalities)
            stats[f"{scorer.name}_s"] = time.perf_counter() - t0
            if s is not None:
                out.append(s)
        return out, stats

    def fused(self, timeline: Timeline, labelset: LabelSet, modalities: Iterable[str] | None = None) -> tuple[np.ndarray, list[SourceScores], FusionWeights, dict[str, float]]:
        """Fused log-scores over the whole label set, the sources, the weights used and timings."""
        scores, stats = self.sources(timeline, labelset, modalities)
        weights = self.weights(labelset)
        return fuse(scores, weights, len(labelset)), scores, weights, stats

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        t0 = time.perf_counter()
        z, scores, weights, stats = self.fused(timeline, labelset, modalities)
        probs = softmax(z)
        stats = {**stats, "fusion_s": time.perf_counter() - t0, "sources": float(len(scores))}
        empty = timeline.only(modalities).is_empty or not scores
        pred = make_prediction(self.name, labelset, np.arange(len(labelset)), probs, top_k, empty, stats)
        k = labelset.index(pred.label)
        return replace(pred, route="fused", evidence=votes(scores, weights, labelset, pred.label), warnings=untrusted_warnings(scores, weights, k))


class CascadeReasoner:
    """Fused evidence first; the LLM re-ranks the fused top candidates only when the call is close.

    Args:
        fused: the fast route.
        llm: the LLM method (its shortlist is replaced by the fused top candidates).
        margin: fused top-1 minus top-2 probability below which the LLM runs.
        rerank: fused candidates the LLM scores.
        llm_weight: weight of the LLM's calibrated log-probabilities added to the fused log-scores.
        always: run the LLM whatever the margin.
    """

    name = "cascade"

    def __init__(self, fused: FusedReasoner, llm: LLMReasoner, *, margin: float = MARGIN, rerank: int = RERANK, llm_weight: float = 1.0, always: bool = False) -> None:
        self.fused, self.llm = fused, llm
        self.margin, self.rerank, self.llm_weight, self.always = margin, rerank, llm_weight, always

    def classify(self, timeline: Timeline, labelset: LabelSet, *, modalities: Iterable[str] | None = None, top_k: int = 5) -> Prediction:
        t0 = time.perf_counter()
        z, scores, weights, stats = self.fused.fused(timeline, labelset, modalities)
        probs = softmax(z)
        order = np.argsort(-probs, kind="stable")
        gap = float(probs[order[0]] - probs[order[1]]) if len(order) > 1 else 1.0
        stats = {**stats, "fusion_s": time.perf_counter() - t0, "sources": float(len(scores)), "fused_margin": gap}
        empty = timeline.only(modalities).is_empty or not scores
        if (gap >= self.margin and not self.always) or len(labelset) < 2:
            pred = make_prediction(self.name, labelset, np.arange(len(labelset)), probs, top_k, empty, stats)
            why = f"fused margin {gap:.2f} >= {self.margin:.2f}"
            flags = untrusted_warnings(scores, weights, labelset.index(pred.label))
            return replace(pred, route="fused", route_reason=why, evidence=votes(scores, weights, labelset, pred.label), warnings=flags)
        idx = order[: self.rerank]
        ev = self.llm.evidence(timeline, labelset, modalities, candidates=idx)
        llm = self.llm_weight * (ev.llm - self.llm.calibration_weight * ev.prior)
        # Labels the LLM did not read keep their fused order below the worst LLM verdict.
        full = z + float(llm.min())
        full[idx] = z[idx] + llm
        stats.update(ev.stats)
        pred = make_prediction(self.name, labelset, np.arange(len(labelset)), softmax(full), top_k, empty, stats)
        why = "asked for the LLM" if self.always else f"fused margin {gap:.2f} < {self.margin:.2f}"
        flags = untrusted_warnings(scores, weights, labelset.index(pred.label))
        return replace(pred, route="llm", route_reason=why, evidence=votes(scores, weights, labelset, pred.label), warnings=flags)


def fitted_path(home: Path, labelset: LabelSet) -> Path:
    """Where weights fitted for ``labelset`` are stored."""
    return Path(home) / "fusion" / f"{labelset.name}-{labelset.sha256[:12]}.json"


def weights_for(home: Path) -> Callable[[LabelSet], FusionWeights]:
    """``labelset -> FusionWeights``: fitted weights under ``home`` when present, else the bundled defaults."""

    def lookup(labelset: LabelSet) -> FusionWeights:
        path = fitted_path(home, labelset)
        return FusionWeights.load(path) if path.is_file() else FusionWeights()

    return lookup



@dataclass(frozen=True)
class FitExample:
    """One labelled video for fitting: every source's scores and the true label's index."""

    scores: tuple[SourceScores, ...]
    target: int


def fit_weights(examples: Sequence[FitExample], start: FusionWeights | None = None, l2: float = 0.1, fitted_on: str = "") -> FusionWeights:
    """Per-source weights that maximise the log-likelihood of the true labels.

    The fused log-score is linear in the weights, so the negative log-likelihood
    is convex; an L2 pull toward ``start`` (the bundled defaults, the hand-set prior) keeps sources
    that few examples show near their default. Untrusted sources stay capped.
    Examples may come from label sets of different sizes.

    Raises:
        InputError: no example.
    """
    from scipy.optimize import minimize

    if not examples:
        raise InputError("fusion fit: no labelled example to fit on")
    start = start or FusionWeights()
    sources = sorted({s.source for ex in examples for s in ex.scores} | set(start.weights))
    pos = {name: i for i, name in enumerate(sources)}
    # One [sources, labels] matrix per example (rows of zeros where a source is absent).
    xs = []
    for ex in examples:
        x = np.zeros((len(sources), len(ex.scores[0].logp) if ex.scores else 1))
        for s in ex.scores:
            x[pos[s.source]] = bounded_logp(s)
        xs.append(x)
    w0 = np.array([start.weights.get(name, 0.0) for name in sources])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        nll, grad = 0.0, np.zeros_like(w)
        for x, ex in zip(xs, examples):
            z = (w @ x) / start.temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            nll -= float(np.log(max(p[ex.target], 1e-12)))
            p[ex.target] -= 1.0
            grad += (x @ p) / start.temperature
        n = len(examples)
        return nll / n + l2 * float(np.sum((w - w0) ** 2)), grad / n + 2 * l2 * (w - w0)

    bounds = [(0.0, UNTRUSTED_CAP if name in UNTRUSTED else None) for name in sources]
    res = minimize(loss, w0, jac=True, method="L-BFGS-B", bounds=bounds)
    return FusionWeights({name: round(float(v), 4) for name, v in zip(sources, res.x)}, start.temperature, fitted_on)
